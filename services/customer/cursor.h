/* cursor.h: the bulk API's opaque keyset cursor: the (updated_at, id) of the last row
 * of a page, as base64url("c1:<unix microseconds>:<id>"). Decoding is strict: any
 * cursor this service did not produce is refused. */
#ifndef CUSTOMER_CURSOR_H
#define CUSTOMER_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#define CURSOR_MAX    160 /* encoded length bound */
#define CURSOR_ID_MAX 64

typedef struct cursor {
  int64_t updated_us;
  char id[CURSOR_ID_MAX + 1];
} cursor;

/* Writes the encoded cursor into out (>= CURSOR_MAX + 1 bytes). Returns 0 or WR_EINVAL
 * (id too long). */
int cursor_encode(const cursor *c, char *out, size_t outsz);

/* Parses text (NUL-terminated). Returns 0 or WR_EINVAL; *c untouched on failure. */
int cursor_decode(const char *text, cursor *c);

#endif
