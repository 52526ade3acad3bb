/* sbuf.c: see sbuf.h. */
#include "sbuf.h"

#include <stdlib.h>

void wr__sb_put(wr__sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void wr__sb_pg_elem(wr__sbuf *b, const char *s, bool first) {
  if (!first)
    wr__sb_put(b, ",", 1);
  wr__sb_put(b, "\"", 1);
  /* runs of plain characters in one copy; each '"' or '\\' escaped */
  for (const char *p = s; *p;) {
    size_t run = strcspn(p, "\"\\");
    if (run)
      wr__sb_put(b, p, run);
    p += run;
    if (*p) {
      char esc[2] = {'\\', *p++};
      wr__sb_put(b, esc, 2);
    }
  }
  wr__sb_put(b, "\"", 1);
}

void wr__sb_reset(wr__sbuf *b) {
  b->len = 0;
  b->oom = false;
  if (b->p)
    b->p[0] = '\0';
}

void wr__sb_free(wr__sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = false;
}
