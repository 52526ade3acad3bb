# golden.cmake: runs protoc-gen-warren on the repo's schemas and compares its output
# byte for byte with tests/codegen/golden (MODE=check), or rewrites the golden files
# (MODE=update; review the diff before committing it).
#   cmake -DPROTOC=... -DPLUGIN=... -DSCHEMA_DIR=... -DTEST_PROTO_DIR=...
#         -DPROTOBUF_IMPORT_DIR=... -DGOLDEN_DIR=... -DWORK_DIR=... -DMODE=check|update
#         -P golden.cmake
cmake_minimum_required(VERSION 3.20)

foreach(v PROTOC PLUGIN SCHEMA_DIR TEST_PROTO_DIR PROTOBUF_IMPORT_DIR GOLDEN_DIR WORK_DIR MODE)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "golden.cmake: -D${v}= is required")
  endif()
endforeach()

# <import dir>|<proto> pairs: the repo schemas, the every-kind test schema, and a
# types-only file (the minimal output for files without events).
set(cases
  "${SCHEMA_DIR}|customer/v1/customer.proto"
  "${SCHEMA_DIR}|order/v1/order.proto"
  "${TEST_PROTO_DIR}|kinds/v1/kinds.proto"
  "${TEST_PROTO_DIR}|kinds/v1/shared.proto")

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(failed)
foreach(case ${cases})
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 dir)
  list(GET parts 1 proto)
  execute_process(
    COMMAND ${PROTOC} --plugin=protoc-gen-warren=${PLUGIN} --warren_out=${WORK_DIR}
            -I${dir} -I${SCHEMA_DIR} -I${PROTOBUF_IMPORT_DIR} ${proto}
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "protoc failed for ${proto}:\n${err}")
  endif()
  string(REGEX REPLACE "\\.proto$" "" base ${proto})
  foreach(ext warren.h warren.c)
    set(got ${WORK_DIR}/${base}.${ext})
    set(want ${GOLDEN_DIR}/${base}.${ext})
    if(MODE STREQUAL "update")
      get_filename_component(want_dir ${want} DIRECTORY)
      file(MAKE_DIRECTORY ${want_dir})
      file(COPY_FILE ${got} ${want})
      message(STATUS "updated ${want}")
    else()
      execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${want} ${got}
                      RESULT_VARIABLE same)
      if(NOT same EQUAL 0)
        list(APPEND failed ${base}.${ext})
        find_program(DIFF diff)
        if(DIFF)
          execute_process(COMMAND ${DIFF} -u ${want} ${got})
        endif()
      endif()
    endif()
  endforeach()
endforeach()

if(failed)
  message(FATAL_ERROR "generated code differs from tests/codegen/golden for: ${failed}\n"
    "If the change is intended: cmake --build <build> --target codegen-golden-update, "
    "review `git diff tests/codegen/golden`, commit.")
endif()
