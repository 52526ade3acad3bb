/* printable.h (private): a printable, bounded rendering of untrusted text (names,
 * values from the wire) for error messages, shared by event.c and json.c. */
#ifndef WARREN_SRC_PRINTABLE_H
#define WARREN_SRC_PRINTABLE_H

#include <stdio.h>
#include <string.h>

/* Writes s[0..n) into buf: printable ASCII as is, other bytes (and quotes and
 * backslashes) as \xNN, cut with "..." after max bytes or when buf is nearly full.
 * bufsz must be at least 12. Returns buf. Cannot fail. */
static inline const char *wr__printable(const char *s, size_t n, size_t max, char *buf,
                                        size_t bufsz) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (i >= max || o + 8 >= bufsz) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
      buf[o++] = (char)ch;
    } else {
      snprintf(buf + o, bufsz - o, "\\x%02x", ch);
      o += 4;
    }
  }
  buf[o] = '\0';
  return buf;
}

#endif
