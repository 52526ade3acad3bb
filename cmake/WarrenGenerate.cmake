# warren_generate(): typed C from event schemas, for warren itself and for its users.
#
#   warren_generate(TARGET <target>
#                   PROTOS <file.proto>...
#                   [IMPORT_DIRS <dir>...]
#                   [OUT_DIR <dir>]
#                   [WARREN_SOURCES <variable>])
#
# For each proto, one protoc call writes protoc-c's <name>.pb-c.h/.c and
# protoc-gen-warren's <name>.warren.h/.c into OUT_DIR (default
# ${CMAKE_BINARY_DIR}/gen/<target>), keeping the proto's path below its import dir:
# schemas/customer/v1/customer.proto with IMPORT_DIRS schemas gives
# customer/v1/customer.warren.h, included as "customer/v1/customer.warren.h".
#
# - TARGET: an existing library or executable. The generated .c files are added to its
#   sources, OUT_DIR to its PUBLIC include directories, and warren::warren to its PUBLIC
#   link libraries (keyword form of target_link_libraries: use the keyword form for
#   this target everywhere).
# - PROTOS: .proto files, absolute or relative to the current source directory. Each
#   must lie below one of IMPORT_DIRS.
# - IMPORT_DIRS: where the protos and the ones they import live (default: the current
#   source directory). warren's own protos (warren/v1/options.proto) and protobuf's
#   (google/protobuf/*.proto) are always added after them.
# - WARREN_SOURCES: receives the generated .warren.c files (e.g. to give them stricter
#   warnings than protoc-c's output).
#
# Regeneration: protoc writes a depfile, so editing a proto or anything it imports
# regenerates; so does rebuilding protoc-gen-warren (in-tree) or reinstalling it.
# Schema errors fail the build with protoc's "file.proto:line:col: message" lines.
#
# Works in warren's own tree (plugin = target protoc-gen-warren) and from an installed
# warren (find_package(warren): plugin = imported target warren::protoc-gen-warren).
include_guard(GLOBAL)
if(CMAKE_VERSION VERSION_LESS 3.20)
  message(FATAL_ERROR "warren_generate() needs CMake 3.20 or newer (DEPFILE with every "
    "generator); this is ${CMAKE_VERSION}")
endif()

# Depfile paths are relative to the build tree with Ninja (CMP0116 NEW); recorded here
# for the function whatever the caller's cmake_minimum_required says.
cmake_policy(PUSH)
cmake_policy(SET CMP0116 NEW)

if(NOT DEFINED WARREN_PROTO_IMPORT_DIR)
  if(DEFINED WARREN_SCHEMA_DIR)
    set(WARREN_PROTO_IMPORT_DIR ${WARREN_SCHEMA_DIR})
  else()
    message(FATAL_ERROR "WarrenGenerate: WARREN_PROTO_IMPORT_DIR (the directory holding "
      "warren/v1/options.proto) is not set; use find_package(warren)")
  endif()
endif()
set_property(GLOBAL PROPERTY WARREN_PROTO_IMPORT_DIR ${WARREN_PROTO_IMPORT_DIR})

find_program(WARREN_PROTOC_EXECUTABLE protoc DOC "protoc (protobuf compiler)")
find_program(WARREN_PROTOC_GEN_C_EXECUTABLE protoc-gen-c DOC "protoc-gen-c (protobuf-c's plugin)")
find_path(WARREN_PROTOBUF_IMPORT_DIR google/protobuf/timestamp.proto
  PATHS /usr/include /usr/local/include DOC "directory holding google/protobuf/*.proto")
foreach(_warren_req WARREN_PROTOC_EXECUTABLE WARREN_PROTOC_GEN_C_EXECUTABLE
        WARREN_PROTOBUF_IMPORT_DIR)
  if(NOT ${_warren_req})
    message(FATAL_ERROR "WarrenGenerate: ${_warren_req} not found (Debian: apt-get install "
      "protobuf-compiler protobuf-c-compiler libprotobuf-dev)")
  endif()
endforeach()

function(warren_generate)
  cmake_parse_arguments(PARSE_ARGV 0 WG "" "TARGET;OUT_DIR;WARREN_SOURCES" "PROTOS;IMPORT_DIRS")
  if(WG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "warren_generate: unknown arguments: ${WG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT WG_TARGET)
    message(FATAL_ERROR "warren_generate: TARGET is required")
  endif()
  if(NOT TARGET ${WG_TARGET})
    message(FATAL_ERROR "warren_generate: ${WG_TARGET} is not a target; create it first "
      "(add_library(${WG_TARGET} STATIC) or add_executable)")
  endif()
  if(NOT WG_PROTOS)
    message(FATAL_ERROR "warren_generate(${WG_TARGET}): PROTOS is empty")
  endif()

  if(TARGET protoc-gen-warren)
    set(plugin $<TARGET_FILE:protoc-gen-warren>)
    set(plugin_dep protoc-gen-warren)
  elseif(TARGET warren::protoc-gen-warren)
    set(plugin $<TARGET_FILE:warren::protoc-gen-warren>)
    set(plugin_dep $<TARGET_FILE:warren::protoc-gen-warren>)
  else()
    message(FATAL_ERROR "warren_generate: no protoc-gen-warren target (find_package(warren))")
  endif()

  if(NOT WG_OUT_DIR)
    set(WG_OUT_DIR ${CMAKE_BINARY_DIR}/gen/${WG_TARGET})
  endif()
  get_filename_component(out ${WG_OUT_DIR} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_BINARY_DIR})

  set(user_dirs)
  if(NOT WG_IMPORT_DIRS)
    set(WG_IMPORT_DIRS ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(dir ${WG_IMPORT_DIRS})
    get_filename_component(dir ${dir} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND user_dirs ${dir})
  endforeach()
  get_property(warren_dir GLOBAL PROPERTY WARREN_PROTO_IMPORT_DIR)
  set(all_dirs ${user_dirs} ${warren_dir} ${WARREN_PROTOBUF_IMPORT_DIR})
  list(REMOVE_DUPLICATES all_dirs)

  set(warren_srcs)
  foreach(proto ${WG_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${abs})
      message(FATAL_ERROR "warren_generate(${WG_TARGET}): ${abs} does not exist")
    endif()
    set(rel)
    foreach(dir ${user_dirs})
      string(LENGTH "${dir}/" n)
      string(SUBSTRING "${abs}" 0 ${n} head)
      if(head STREQUAL "${dir}/")
        string(SUBSTRING "${abs}" ${n} -1 rel)
        set(home ${dir})
        break()
      endif()
    endforeach()
    if(NOT rel)
      message(FATAL_ERROR "warren_generate(${WG_TARGET}): ${abs} is not below any of "
        "IMPORT_DIRS (${user_dirs})")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    # The proto's own import dir goes first so that protoc maps it to `rel` and nothing
    # shadows it.
    set(includes -I${home})
    foreach(dir ${all_dirs})
      if(NOT dir STREQUAL home)
        list(APPEND includes -I${dir})
      endif()
    endforeach()
    # Sorted like the targets in protoc's depfile: Ninja wants its first target first.
    set(outputs ${out}/${base}.pb-c.c ${out}/${base}.pb-c.h ${out}/${base}.warren.c
                ${out}/${base}.warren.h)
    set(depfile ${out}/${base}.d)
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
      COMMAND ${WARREN_PROTOC_EXECUTABLE}
              --plugin=protoc-gen-c=${WARREN_PROTOC_GEN_C_EXECUTABLE}
              --plugin=protoc-gen-warren=${plugin}
              --c_out=${out} --warren_out=${out} --dependency_out=${depfile}
              ${includes} ${abs}
      DEPENDS ${abs} ${plugin_dep}
      DEPFILE ${depfile}
      COMMENT "protoc-gen-warren ${rel}"
      VERBATIM)
    target_sources(${WG_TARGET} PRIVATE ${outputs})
    list(APPEND warren_srcs ${out}/${base}.warren.c)
  endforeach()

  target_include_directories(${WG_TARGET} PUBLIC $<BUILD_INTERFACE:${out}>)
  target_link_libraries(${WG_TARGET} PUBLIC warren::warren)
  set_property(TARGET ${WG_TARGET} APPEND PROPERTY WARREN_GENERATED_DIR ${out})
  if(WG_WARREN_SOURCES)
    set(${WG_WARREN_SOURCES} ${warren_srcs} PARENT_SCOPE)
  endif()
endfunction()

cmake_policy(POP)
