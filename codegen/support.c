/* support.c: arena, text buffer and diagnostics of protoc-gen-warren. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static void out_of_memory(void) {
  fputs("protoc-gen-warren: out of memory\n", stderr);
  exit(2);
}

void *cg_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    out_of_memory();
  return p;
}

void *cg_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    out_of_memory();
  return q;
}

/* One allocation per block keeps the arena trivial; the plugin allocates a few thousand
 * small objects at most. */
struct cg_block {
  struct cg_block *next;
  _Alignas(max_align_t) unsigned char data[];
};

void *cg_alloc(cg_arena *a, size_t n) {
  if (n > SIZE_MAX - sizeof(struct cg_block))
    out_of_memory();
  struct cg_block *b = cg_xmalloc(sizeof *b + n);
  memset(b->data, 0, n);
  b->next = a->head;
  a->head = b;
  return b->data;
}

char *cg_strndup(cg_arena *a, const char *s, size_t n) {
  char *p = cg_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *cg_strdup(cg_arena *a, const char *s) {
  return cg_strndup(a, s, strlen(s));
}

char *cg_sprintf(cg_arena *a, const char *fmt, ...) {
  cg_buf b = {0};
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  char *s = cg_strndup(a, b.len ? b.data : "", b.len);
  cg_buf_free(&b);
  return s;
}

void cg_arena_free(cg_arena *a) {
  struct cg_block *b = a->head;
  while (b != NULL) {
    struct cg_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}

static void reserve(cg_buf *b, size_t more) {
  if (more > SIZE_MAX / 2 - b->len)
    out_of_memory();
  size_t need = b->len + more + 1;
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  b->data = cg_xrealloc(b->data, cap);
  b->cap = cap;
}

void cg_buf_append(cg_buf *b, const char *p, size_t n) {
  reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void cg_buf_puts(cg_buf *b, const char *s) {
  cg_buf_append(b, s, strlen(s));
}

void cg_buf_putc(cg_buf *b, char c) {
  cg_buf_append(b, &c, 1);
}

void cg_buf_vprintf(cg_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) { /* only on an invalid format: a bug in the plugin itself */
    fputs("protoc-gen-warren: internal error: bad format string\n", stderr);
    exit(2);
  }
  reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void cg_buf_printf(cg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void cg_buf_free(cg_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

struct cg_diag_entry {
  char *file;
  int line, col;
  unsigned seq;
  unsigned file_rank; /* index of the first entry that named this file */
  char *text;
};

void cg_error(cg_diag *d, cg_loc loc, const char *fmt, ...) {
  if (d->count == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 16;
    d->entries = cg_xrealloc(d->entries, sizeof(*d->entries) * d->cap);
  }
  struct cg_diag_entry *en = &d->entries[d->count];
  cg_buf b = {0};
  cg_buf_puts(&b, loc.file ? loc.file : "");
  en->file = b.data;
  b = (cg_buf){0};
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  en->text = b.data;
  en->line = loc.line;
  en->col = loc.col;
  en->seq = d->count;
  en->file_rank = d->count;
  for (unsigned i = 0; i < d->count; i++) {
    if (strcmp(d->entries[i].file ? d->entries[i].file : "", en->file ? en->file : "") == 0) {
      en->file_rank = d->entries[i].file_rank;
      break;
    }
  }
  d->count++;
}

static int cmp_entry(const void *x, const void *y) {
  const struct cg_diag_entry *a = *(const struct cg_diag_entry *const *)x;
  const struct cg_diag_entry *b = *(const struct cg_diag_entry *const *)y;
  if (a->file_rank != b->file_rank)
    return a->file_rank < b->file_rank ? -1 : 1;
  if (a->line != b->line)
    return a->line < b->line ? -1 : 1;
  if (a->col != b->col)
    return a->col < b->col ? -1 : 1;
  return (a->seq > b->seq) - (a->seq < b->seq);
}

void cg_diag_render(const cg_diag *d, cg_buf *out) {
  if (d->count == 0)
    return;
  const struct cg_diag_entry **v = cg_xmalloc(sizeof(*v) * d->count);
  for (unsigned i = 0; i < d->count; i++)
    v[i] = &d->entries[i];
  qsort(v, d->count, sizeof *v, cmp_entry);
  for (unsigned i = 0; i < d->count; i++) {
    const struct cg_diag_entry *en = v[i];
    if (i > 0)
      cg_buf_putc(out, '\n');
    if (en->line > 0)
      cg_buf_printf(out, "%s:%d:%d: ", en->file ? en->file : "", en->line, en->col);
    else
      cg_buf_printf(out, "%s: ", en->file ? en->file : "");
    cg_buf_puts(out, en->text ? en->text : "");
  }
  free(v);
}

void cg_diag_free(cg_diag *d) {
  for (unsigned i = 0; i < d->count; i++) {
    free(d->entries[i].file);
    free(d->entries[i].text);
  }
  free(d->entries);
  d->entries = NULL;
  d->count = d->cap = 0;
}
