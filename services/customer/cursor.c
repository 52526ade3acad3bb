/* cursor.c: see cursor.h. */
#include "cursor.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <warren/error.h>
#include <warren/util.h>

int cursor_encode(const cursor *c, char *out, size_t outsz) {
  size_t idlen = strlen(c->id);
  if (idlen == 0 || idlen > CURSOR_ID_MAX)
    return WR_EINVAL;
  char raw[128];
  int n = snprintf(raw, sizeof raw, "c1:%" PRId64 ":%s", c->updated_us, c->id);
  if (n < 0 || (size_t)n >= sizeof raw)
    return WR_EINVAL;
  return wr_base64_encode(raw, (size_t)n, true, out, outsz) < 0 ? WR_EINVAL : 0;
}

int cursor_decode(const char *text, cursor *c) {
  size_t len = strlen(text);
  if (len == 0 || len > CURSOR_MAX)
    return WR_EINVAL;
  char raw[CURSOR_MAX];
  int n = wr_base64_decode(text, len, true, raw, sizeof raw - 1);
  if (n < 0)
    return WR_EINVAL;
  raw[n] = '\0';
  if ((size_t)n != strlen(raw) || strncmp(raw, "c1:", 3) != 0) /* NUL inside: refuse */
    return WR_EINVAL;
  const char *p = raw + 3;
  int64_t us = 0;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  const char *digits = p;
  while (*p >= '0' && *p <= '9') {
    if (us > (INT64_MAX - 9) / 10)
      return WR_EINVAL;
    us = us * 10 + (*p - '0');
    p++;
  }
  if (p == digits || p - digits > 19 || *p != ':')
    return WR_EINVAL;
  const char *id = p + 1;
  size_t idlen = strlen(id);
  if (idlen == 0 || idlen > CURSOR_ID_MAX)
    return WR_EINVAL;
  for (const char *q = id; *q; q++)
    if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
      return WR_EINVAL;
  c->updated_us = neg ? -us : us;
  memcpy(c->id, id, idlen + 1);
  return 0;
}
