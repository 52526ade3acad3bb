/* sbuf.h (internal): a growable NUL-terminated string buffer for building SQL array
 * literals, JSON text and metric renderings. Appends never fail loudly: on
 * allocation failure the buffer is marked `oom` and further appends are ignored, so a
 * caller checks once at the end. */
#ifndef WARREN_SBUF_H
#define WARREN_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct wr__sbuf {
  char *p; /* NULL until the first append; always NUL-terminated after */
  size_t len;
  size_t cap;
  bool oom;
} wr__sbuf;

/* Appends n bytes of s. */
void wr__sb_put(wr__sbuf *b, const char *s, size_t n);

/* Appends the NUL-terminated s. */
static inline void wr__sb_cstr(wr__sbuf *b, const char *s) {
  wr__sb_put(b, s, strlen(s));
}

/* Appends s as one double-quoted element of a PostgreSQL array literal (backslash
 * and quote escaped), preceded by ',' unless first. */
void wr__sb_pg_elem(wr__sbuf *b, const char *s, bool first);

/* Empties the buffer, keeping its memory (and clearing oom). */
void wr__sb_reset(wr__sbuf *b);

/* Frees the memory; the buffer is empty and reusable afterwards. */
void wr__sb_free(wr__sbuf *b);

#endif
