/* support.h: memory and text helpers of protoc-gen-warren.
 *
 * The plugin is a short-lived process that reads one request and writes one response.
 * Allocation failure therefore ends it (exit status 2, a line on stderr) instead of
 * threading ENOMEM through every helper: protoc then reports that the plugin failed.
 * Everything the model needs lives in one arena, released at exit. */
#ifndef WARREN_CODEGEN_SUPPORT_H
#define WARREN_CODEGEN_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define CG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CG_PRINTF(fmt, args)
#endif

/* malloc/realloc that never return NULL: on failure they print "protoc-gen-warren: out
 * of memory" to stderr and exit(2). */
void *cg_xmalloc(size_t n);
void *cg_xrealloc(void *p, size_t n);

/* An arena: allocations are zeroed and live until cg_arena_free(). */
typedef struct cg_arena {
  struct cg_block *head;
} cg_arena;

void *cg_alloc(cg_arena *a, size_t n);
char *cg_strdup(cg_arena *a, const char *s);
char *cg_strndup(cg_arena *a, const char *s, size_t n);
char *cg_sprintf(cg_arena *a, const char *fmt, ...) CG_PRINTF(2, 3);
/* Frees every allocation of the arena; the arena can be reused. */
void cg_arena_free(cg_arena *a);

/* A growable text buffer. Zero-initialize ({0}); data is NUL-terminated whenever
 * len > 0. Release with cg_buf_free(). */
typedef struct cg_buf {
  char *data;
  size_t len;
  size_t cap;
} cg_buf;

void cg_buf_append(cg_buf *b, const char *p, size_t n);
void cg_buf_puts(cg_buf *b, const char *s);
void cg_buf_putc(cg_buf *b, char c);
void cg_buf_printf(cg_buf *b, const char *fmt, ...) CG_PRINTF(2, 3);
void cg_buf_vprintf(cg_buf *b, const char *fmt, va_list ap) CG_PRINTF(2, 0);
void cg_buf_free(cg_buf *b);

/* Where a diagnostic points: proto file name as protoc knows it, 1-based line and
 * column (0 = unknown: then only the file is printed). */
typedef struct cg_loc {
  const char *file;
  int line;
  int col;
} cg_loc;

/* The diagnostics of one run. Zero-initialize; release with cg_diag_free(). */
typedef struct cg_diag {
  struct cg_diag_entry *entries;
  unsigned count;
  unsigned cap;
} cg_diag;

/* Records one error at loc (the file name is copied). */
void cg_error(cg_diag *d, cg_loc loc, const char *fmt, ...) CG_PRINTF(3, 4);
/* Appends every error to out as "file.proto:line:col: message" lines (no newline after
 * the last), ordered by file (in order of first mention), then line and column, so the
 * report reads top to bottom whatever order the rules ran in. */
void cg_diag_render(const cg_diag *d, cg_buf *out);
void cg_diag_free(cg_diag *d);

#endif
