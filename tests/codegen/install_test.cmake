# install_test.cmake: `cmake --install` of a built warren into a fresh prefix, then a
# user project (tests/codegen/userproj) configured with find_package(warren), built
# with warren_generate(), and run. Then the depfile: touching an imported proto (the
# installed warren/v1/options.proto) must regenerate, a second build must do nothing.
#   cmake -DBUILD_DIR=... -DUSERPROJ=... -DWORK_DIR=... -DGENERATOR=... [-DSANITIZE=...]
#         -P install_test.cmake
cmake_minimum_required(VERSION 3.20)
foreach(v BUILD_DIR USERPROJ WORK_DIR GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install_test.cmake: -D${v}= is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/userproj-build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/warren/warren.h include/warren/schema.h
          include/warren/gen/warren/v1/options.pb-c.h include/warren/gen/warren/v1/page.pb-c.h
          include/warren/gen/google/protobuf/timestamp.pb-c.h
          lib/libwarren.a lib/libwarren_protos.a bin/protoc-gen-warren
          lib/cmake/warren/warrenConfig.cmake lib/cmake/warren/warrenConfigVersion.cmake
          lib/cmake/warren/warrenTargets.cmake lib/cmake/warren/WarrenGenerate.cmake
          share/warren/proto/warren/v1/options.proto share/warren/proto/warren/v1/page.proto)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# The user project sees only the prefix: nothing of warren's source or build tree.
set(flags)
if(SANITIZE)
  set(flags "-DCMAKE_C_FLAGS=-fsanitize=${SANITIZE}"
            "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()
run(${CMAKE_COMMAND} -S ${USERPROJ} -B ${build} -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Debug ${flags})
run(${CMAKE_COMMAND} --build ${build})
if(NOT run_output MATCHES "protoc-gen-warren shop/v1/shop.proto")
  message(FATAL_ERROR "the first build did not generate shop.proto:\n${run_output}")
endif()
run(${build}/shop)
if(NOT run_output STREQUAL "ok\n")
  message(FATAL_ERROR "shop printed: ${run_output}")
endif()

# Up to date: nothing to do.
run(${CMAKE_COMMAND} --build ${build})
if(run_output MATCHES "protoc-gen-warren")
  message(FATAL_ERROR "a second build regenerated:\n${run_output}")
endif()
# An imported proto changed (found through the depfile): shop.proto regenerates,
# money.proto (which does not import it) does not.
file(TOUCH ${prefix}/share/warren/proto/warren/v1/options.proto)
run(${CMAKE_COMMAND} --build ${build})
if(NOT run_output MATCHES "protoc-gen-warren shop/v1/shop.proto" OR
   run_output MATCHES "protoc-gen-warren shop/v1/money.proto")
  message(FATAL_ERROR "touching options.proto regenerated the wrong files:\n${run_output}")
endif()
# The plugin changed (a reinstall): everything regenerates.
file(TOUCH ${prefix}/bin/protoc-gen-warren)
run(${CMAKE_COMMAND} --build ${build})
if(NOT run_output MATCHES "protoc-gen-warren shop/v1/money.proto")
  message(FATAL_ERROR "a new plugin did not regenerate:\n${run_output}")
endif()
message(STATUS "install test passed")
