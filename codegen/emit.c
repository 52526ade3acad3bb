/* emit.c: indentation-aware text output for the generators. */
#include <stdarg.h>
#include <string.h>

#include "emit.h"

static void put_lines(cg_emitter *e, const char *text, size_t len) {
  const char *p = text, *end = text + len;
  for (;;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if (n > 0)
      for (int i = 0; i < e->indent; i++)
        cg_buf_puts(e->out, "  ");
    cg_buf_append(e->out, p, n);
    cg_buf_putc(e->out, '\n');
    if (nl == NULL)
      break;
    p = nl + 1;
  }
}

CG_PRINTF(2, 0) static void vemit(cg_emitter *e, const char *fmt, va_list ap) {
  cg_buf tmp = {0};
  cg_buf_vprintf(&tmp, fmt, ap);
  put_lines(e, tmp.len ? tmp.data : "", tmp.len);
  cg_buf_free(&tmp);
}

void cg_emit(cg_emitter *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(e, fmt, ap);
  va_end(ap);
}

void cg_emit_blank(cg_emitter *e) {
  cg_buf_putc(e->out, '\n');
}

void cg_emit_open(cg_emitter *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(e, fmt, ap);
  va_end(ap);
  e->indent++;
}

void cg_emit_close(cg_emitter *e, const char *fmt, ...) {
  if (e->indent > 0)
    e->indent--;
  va_list ap;
  va_start(ap, fmt);
  vemit(e, fmt, ap);
  va_end(ap);
}

void cg_emit_comment(cg_emitter *e, const char *text) {
  if (text == NULL)
    return;
  /* Split into lines, drop one leading space (protoc keeps the one after "//"), trim
   * trailing blanks and empty lines at both ends. */
  cg_buf body = {0};
  size_t lines = 0, pending_blank = 0;
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    const char *s = p;
    if (n > 0 && *s == ' ') {
      s++;
      n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
      n--;
    if (n == 0) {
      if (lines > 0)
        pending_blank++;
    } else {
      for (; pending_blank > 0; pending_blank--)
        cg_buf_puts(&body, "\n *");
      /* Long lines wrap at the last space that keeps them within the width. */
      size_t width = CG_EMIT_WIDTH - 3 - (size_t)e->indent * 2;
      while (n > 0) {
        size_t take = n;
        if (n > width) {
          size_t sp = width;
          while (sp > 0 && s[sp] != ' ')
            sp--;
          take = sp > 0 ? sp : n;
        }
        cg_buf_puts(&body, lines > 0 ? "\n * " : "/* ");
        for (size_t i = 0; i < take; i++) {
          cg_buf_putc(&body, s[i]);
          /* "*" "/" would end the comment, "/" "*" nests: split both with a space. */
          if (i + 1 < take &&
              ((s[i] == '*' && s[i + 1] == '/') || (s[i] == '/' && s[i + 1] == '*')))
            cg_buf_putc(&body, ' ');
        }
        lines++;
        s += take;
        n -= take;
        while (n > 0 && *s == ' ') {
          s++;
          n--;
        }
      }
    }
    p = nl ? nl + 1 : p + strlen(p);
  }
  if (lines > 0) {
    cg_buf_puts(&body, " */");
    put_lines(e, body.data, body.len);
  }
  cg_buf_free(&body);
}
