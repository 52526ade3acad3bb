/* fuzz.h: shared helpers of the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Every target defines LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize).
 * Built with -DWARREN_FUZZ=ON and clang, the target links libFuzzer; otherwise it links
 * replay.c, a main() that runs the target once over every file of the directories or
 * files named on its command line (the seed corpus and the regression inputs), so the
 * same code runs as an ordinary unit test on every build. */
#ifndef WARREN_FUZZ_H
#define WARREN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#ifdef __cplusplus
}
#endif

/* A property the target checks: when it does not hold, the input found a bug. Prints
 * what failed and aborts, which libFuzzer (and the replay driver, through the abort)
 * reports as a crash with the input saved. Test code only: the library never aborts. */
#define FUZZ_CHECK(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: fuzz property failed: %s: ", __FILE__, __LINE__, #cond);             \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
