/* utf8.h (private): strict UTF-8 validation shared by http.c, http_client.c and
 * metrics.c. "Strict" is RFC 3629: no overlong forms, no UTF-16 surrogates, nothing
 * above U+10FFFF, no stray continuation bytes. jansson and the Prometheus format both
 * require exactly this, so bytes from outside are checked with it before they reach
 * either. */
#ifndef WARREN_SRC_UTF8_H
#define WARREN_SRC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence at p[0..avail), or 0 if the bytes
 * there are not one (including a sequence cut short by avail). Cannot fail. */
static inline size_t wr__utf8_seq_len(const unsigned char *p, size_t avail) {
  if (avail == 0)
    return 0;
  unsigned char c = p[0];
  if (c < 0x80)
    return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0)
      lo = 0xa0; /* overlong */
    else if (c == 0xed)
      hi = 0x9f; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0)
      lo = 0x90; /* overlong */
    else if (c == 0xf4)
      hi = 0x8f; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (avail < n || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if ((p[i] & 0xc0) != 0x80)
      return 0;
  return n;
}

/* True if s[0..len) is entirely well-formed UTF-8. On false, *bad_at (if not NULL) is
 * the offset of the first offending byte. NUL bytes are valid UTF-8 here: callers that
 * must refuse them check separately. Cannot fail. */
static inline bool wr__utf8_valid(const char *s, size_t len, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = wr__utf8_seq_len(p + i, len - i);
    if (n == 0) {
      if (bad_at)
        *bad_at = i;
      return false;
    }
    i += n;
  }
  return true;
}

#endif
