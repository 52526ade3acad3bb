# Warnings for warren's own code (not for protoc-c output, which gets a lighter set).
set(WARREN_WARNINGS -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow
    -Wpointer-arith -Wformat=2 -Wno-unused-parameter -Wvla)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  # snprintf into fixed buffers truncates on purpose (names, log lines).
  list(APPEND WARREN_WARNINGS -Wno-format-truncation)
endif()
if(WARREN_WERROR)
  list(APPEND WARREN_WARNINGS -Werror)
endif()

# warren_target_warnings(<target>): apply the project's warning set.
function(warren_target_warnings target)
  target_compile_options(${target} PRIVATE ${WARREN_WARNINGS})
endfunction()
