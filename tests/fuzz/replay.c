/* replay.c: the main() of a fuzz target built without libFuzzer (gcc, or clang without
 * -DWARREN_FUZZ=ON). Runs LLVMFuzzerTestOneInput once per input file, so the seed corpus
 * and every regression input are checked on each build (ctest fuzz.<target>).
 *
 *   fuzz_<target> PATH...   PATH is a file or a directory (its regular files, sorted by
 *                           name, dot files skipped; not recursive)
 *
 * Each input is copied into a buffer of exactly its size, as libFuzzer does, so that
 * AddressSanitizer catches a read one byte past the end. A missing path or an empty run
 * is an error: a replay that ran nothing proves nothing. Exit status: 0 when every input
 * ran (a failing property aborts the process), 2 on a usage or I/O error. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* libFuzzer treats LLVMFuzzerInitialize as optional; so does the replay. */
extern int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf || bad) {
    fprintf(stderr, "replay: %s: cannot read\n", path);
    free(buf);
    return -1;
  }
  /* exactly len bytes, so an overread is caught */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  if (len)
    memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir; adds the count to *count. */
static int run_dir(const char *dir, size_t *count) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      char **nn = realloc(names, ncap * sizeof *nn);
      if (!nn) {
        rc = -1;
        break;
      }
      names = nn;
      cap = ncap;
    }
    size_t pl = strlen(dir) + strlen(de->d_name) + 2;
    names[n] = malloc(pl);
    if (!names[n]) {
      rc = -1;
      break;
    }
    snprintf(names[n], pl, "%s/%s", dir, de->d_name);
    n++;
  }
  closedir(d);
  if (rc == 0)
    qsort(names, n, sizeof *names, by_name);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    rc = run_file(names[i]);
    if (rc == 0)
      (*count)++;
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  size_t count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      return 2;
    }
    int rc;
    if (S_ISDIR(st.st_mode)) {
      rc = run_dir(argv[i], &count);
    } else {
      rc = run_file(argv[i]);
      if (rc == 0)
        count++;
    }
    if (rc != 0)
      return 2;
  }
  if (count == 0) {
    fprintf(stderr, "replay: no input found in the given paths\n");
    return 2;
  }
  printf("fuzz replay: %zu inputs, all passed\n", count);
  return 0;
}
