# Finds every dependency warren builds on: through CMake configs where Debian ships
# them (rabbitmq-c, cmocka), pkg-config otherwise. Imported targets are named warren::*.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

find_package(rabbitmq-c CONFIG QUIET)
if(TARGET rabbitmq::rabbitmq)
  add_library(warren::rabbitmq ALIAS rabbitmq::rabbitmq)
else()
  pkg_check_modules(RABBITMQ REQUIRED IMPORTED_TARGET librabbitmq>=0.11)
  add_library(warren::rabbitmq ALIAS PkgConfig::RABBITMQ)
endif()

pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.4)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd>=0.9.70)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson>=2.13)
add_library(warren::pq ALIAS PkgConfig::PQ)
add_library(warren::protobuf-c ALIAS PkgConfig::PROTOBUFC)
add_library(warren::mhd ALIAS PkgConfig::MHD)
add_library(warren::jansson ALIAS PkgConfig::JANSSON)

find_program(PROTOC protoc REQUIRED)
find_program(PROTOC_C protoc-c REQUIRED)
# The directory holding google/protobuf/*.proto (libprotobuf-dev, libprotoc-dev).
find_path(PROTOBUF_IMPORT_DIR google/protobuf/compiler/plugin.proto
  PATHS /usr/include /usr/local/include REQUIRED)

# warren_protoc_c(<out_var> <import_dir> <proto>...): protoc-c C sources for protos
# (relative to import_dir) into ${WARREN_GEN_DIR}; sets <out_var> to the .c files.
function(warren_protoc_c out_var import_dir)
  set(srcs)
  foreach(proto ${ARGN})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(c ${WARREN_GEN_DIR}/${base}.pb-c.c)
    set(h ${WARREN_GEN_DIR}/${base}.pb-c.h)
    add_custom_command(OUTPUT ${c} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${WARREN_GEN_DIR}
      COMMAND ${PROTOC_C} -I${import_dir} -I${WARREN_SCHEMA_DIR} -I${PROTOBUF_IMPORT_DIR}
              --c_out=${WARREN_GEN_DIR} ${proto}
      DEPENDS ${import_dir}/${proto}
      COMMENT "protoc-c ${proto}" VERBATIM)
    list(APPEND srcs ${c})
  endforeach()
  set(${out_var} ${srcs} PARENT_SCOPE)
endfunction()
