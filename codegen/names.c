/* names.c: name mangling. The first four functions reproduce protoc-c 1.4.1
 * (protoc-c/c_helpers.cc) exactly, because the generated code refers to the types and
 * descriptors protoc-c emits; tests/codegen compiles the result against protoc-c's
 * output, so a drift shows up as a compile error there. */
#include <ctype.h>
#include <string.h>

#include "names.h"

char *cg_camel_to_lower(cg_arena *a, const char *name) {
  cg_buf b = {0};
  bool was_upper = true; /* no leading underscore */
  for (const char *p = name; *p; p++) {
    bool is_upper = isupper((unsigned char)*p) != 0;
    if (is_upper) {
      if (!was_upper)
        cg_buf_putc(&b, '_');
      cg_buf_putc(&b, (char)tolower((unsigned char)*p));
    } else {
      cg_buf_putc(&b, *p);
    }
    was_upper = is_upper;
  }
  char *s = cg_strndup(a, b.len ? b.data : "", b.len);
  cg_buf_free(&b);
  return s;
}

char *cg_to_camel(cg_arena *a, const char *name) {
  cg_buf b = {0};
  bool next_upper = true;
  for (const char *p = name; *p; p++) {
    if (*p == '_') {
      next_upper = true;
    } else if (next_upper) {
      cg_buf_putc(&b, (char)toupper((unsigned char)*p));
      next_upper = false;
    } else {
      cg_buf_putc(&b, *p);
    }
  }
  char *s = cg_strndup(a, b.len ? b.data : "", b.len);
  cg_buf_free(&b);
  return s;
}

/* Splits full_name on dots (empty pieces skipped, as protoc-c does), maps each piece
 * and joins with sep. */
static char *map_pieces(cg_arena *a, const char *full_name, char *(*fn)(cg_arena *, const char *),
                        const char *sep) {
  cg_buf b = {0};
  const char *p = full_name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      char *piece = cg_strndup(a, p, n);
      if (b.len > 0)
        cg_buf_puts(&b, sep);
      cg_buf_puts(&b, fn(a, piece));
    }
    p += n;
    if (*p == '.')
      p++;
  }
  char *s = cg_strndup(a, b.len ? b.data : "", b.len);
  cg_buf_free(&b);
  return s;
}

char *cg_c_type_name(cg_arena *a, const char *full_name) {
  return map_pieces(a, full_name, cg_to_camel, "__");
}

char *cg_c_lower_name(cg_arena *a, const char *full_name) {
  return map_pieces(a, full_name, cg_camel_to_lower, "__");
}

char *cg_package_prefix(cg_arena *a, const char *package) {
  return map_pieces(a, package, cg_camel_to_lower, "_");
}

char *cg_upper(cg_arena *a, const char *s) {
  char *u = cg_strdup(a, s);
  for (char *p = u; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  return u;
}

char *cg_default_json_name(cg_arena *a, const char *field_name) {
  cg_buf b = {0};
  bool cap_next = false;
  for (const char *p = field_name; *p; p++) {
    if (*p == '_') {
      cap_next = true;
    } else if (cap_next) {
      cg_buf_putc(&b, (char)toupper((unsigned char)*p));
      cap_next = false;
    } else {
      cg_buf_putc(&b, *p);
    }
  }
  char *s = cg_strndup(a, b.len ? b.data : "", b.len);
  cg_buf_free(&b);
  return s;
}

char *cg_path_macro(cg_arena *a, const char *path) {
  char *m = cg_strdup(a, path);
  for (char *p = m; *p; p++)
    *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
  return m;
}
