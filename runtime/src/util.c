/* util.c: UUIDv7, clocks, RFC 3339, redaction, constant-time compare, backoff. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <warren/error.h>
#include <warren/util.h>

int64_t wr_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t wr_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fill_random(void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return WR_EIO;
    }
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

/* UUIDv7 with the RFC 9562 "method 1" monotonic counter: within one millisecond the
 * 12-bit rand_a field counts up from a random start, so ids sort in creation order
 * inside a process (outbox rows and inbox keys stay index-friendly). */
static pthread_mutex_t uuid_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t uuid_last_ms;
static uint16_t uuid_seq;

int wr_uuid_v7(char out[WR_UUID_STRLEN]) {
  unsigned char b[16];
  if (fill_random(b, sizeof b) != 0)
    return WR_EIO;
  uint64_t ms = (uint64_t)(wr_now_ns() / 1000000);
  pthread_mutex_lock(&uuid_mu);
  if (ms <= uuid_last_ms) {
    ms = uuid_last_ms;
    if (++uuid_seq > 0x0fff) { /* counter exhausted: borrow the next millisecond */
      ms = ++uuid_last_ms;
      uuid_seq = (uint16_t)(b[6] & 0x03);
    }
  } else {
    uuid_last_ms = ms;
    uuid_seq = (uint16_t)(((b[6] << 8) | b[7]) & 0x01ff); /* leave room to count */
  }
  uint16_t seq = uuid_seq;
  pthread_mutex_unlock(&uuid_mu);
  b[0] = (unsigned char)(ms >> 40);
  b[1] = (unsigned char)(ms >> 32);
  b[2] = (unsigned char)(ms >> 24);
  b[3] = (unsigned char)(ms >> 16);
  b[4] = (unsigned char)(ms >> 8);
  b[5] = (unsigned char)ms;
  b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
  b[7] = (unsigned char)seq;
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = '\0';
  return 0;
}

bool wr_uuid_valid(const char *s) {
  if (!s)
    return false;
  for (int i = 0; i < 36; i++) {
    char ch = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (ch != '-')
        return false;
    } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                 (ch >= 'A' && ch <= 'F'))) {
      return false;
    }
  }
  return s[36] == '\0';
}

/* Days since 1970-01-01 from a civil date, and back (Howard Hinnant's algorithms):
 * exact for the whole proleptic Gregorian range, no timegm()/TZ dependence. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (proto3 Timestamp range). */
#define WR_TS_MIN (-62135596800LL)
#define WR_TS_MAX (253402300799LL)

int wr_rfc3339_format(int64_t seconds, int32_t nanos, char out[WR_RFC3339_STRLEN]) {
  if (seconds < WR_TS_MIN || seconds > WR_TS_MAX || nanos < 0 || nanos > 999999999)
    return WR_EINVAL;
  int64_t days = seconds / 86400, rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  snprintf(out, WR_RFC3339_STRLEN, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", (int)y, mo, d,
           (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)(nanos / 1000));
  return 0;
}

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int wr_rfc3339_parse(const char *s, int64_t *seconds, int32_t *nanos) {
  int Y, M, D, h, mi, sec;
  if (!s || strlen(s) < 20)
    return WR_EINVAL;
  if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
      !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
      !digits(s + 17, 2, &sec))
    return WR_EINVAL;
  static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (Y < 1 || M < 1 || M > 12 || D < 1 || (unsigned)D > mdays[M - 1] || h > 23 || mi > 59 ||
      sec > 60)
    return WR_EINVAL;
  bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  if (M == 2 && D == 29 && !leap)
    return WR_EINVAL;
  if (sec == 60) /* leap second: proto3 smears it, so clamp */
    sec = 59;
  const char *p = s + 19;
  int32_t ns = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (p[n] >= '0' && p[n] <= '9')
      n++;
    if (n == 0 || n > 9)
      return WR_EINVAL;
    for (int i = 0; i < 9; i++)
      ns = ns * 10 + (i < n ? p[i] - '0' : 0);
    p += n;
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return WR_EINVAL;
    off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return WR_EINVAL;
  }
  if (*p != '\0')
    return WR_EINVAL;
  int64_t secs =
      days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec - off;
  if (secs < WR_TS_MIN || secs > WR_TS_MAX)
    return WR_EINVAL;
  *seconds = secs;
  *nanos = ns;
  return 0;
}

/* Redacts "scheme://user:PASSWORD@host" in every comma-separated element, and the
 * value of a "password=" keyword (libpq key=value strings). */
void wr_redact_url(const char *url, char *out, size_t outsz) {
  if (!out || outsz == 0)
    return;
  size_t o = 0;
  if (!url)
    url = "";
#define PUT(ch)                                                                                    \
  do {                                                                                             \
    if (o + 1 < outsz)                                                                             \
      out[o++] = (ch);                                                                             \
  } while (0)
  const char *p = url;
  while (*p) {
    /* one element up to ',' */
    const char *end = strchr(p, ',');
    if (!end)
      end = p + strlen(p);
    const char *scheme = NULL;
    for (const char *q = p; q + 2 < end; q++)
      if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
        scheme = q + 3;
        break;
      }
    const char *at = NULL, *colon = NULL;
    if (scheme) {
      for (const char *q = scheme; q < end && *q != '/'; q++)
        if (*q == '@')
          at = q; /* last '@' before the path */
      if (at)
        for (const char *q = scheme; q < at; q++)
          if (*q == ':') {
            colon = q;
            break;
          }
    }
    for (const char *q = p; q < end;) {
      if (colon && q == colon + 1) {
        PUT('*');
        PUT('*');
        PUT('*');
        q = at;
        continue;
      }
      if (!scheme && strncmp(q, "password=", 9) == 0 && (q == p || q[-1] == ' ')) {
        for (const char *s = "password=***"; *s; s++)
          PUT(*s);
        q += 9;
        if (*q == '\'') { /* quoted value */
          q++;
          while (q < end && *q != '\'')
            q += (*q == '\\' && q + 1 < end) ? 2 : 1;
          if (q < end)
            q++;
        } else {
          while (q < end && *q != ' ')
            q++;
        }
        continue;
      }
      PUT(*q);
      q++;
    }
    if (*end == ',') {
      PUT(',');
      p = end + 1;
    } else {
      p = end;
    }
  }
  out[o] = '\0';
#undef PUT
}

bool wr_consttime_eq(const char *a, size_t alen, const char *b, size_t blen) {
  /* Walk the longer length so the time depends on lengths only, never on where the
   * first difference is. */
  size_t n = alen > blen ? alen : blen;
  unsigned char diff = (unsigned char)(alen != blen);
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < alen ? (unsigned char)a[i] : 0;
    unsigned char y = i < blen ? (unsigned char)b[i] : 0;
    diff |= (unsigned char)(x ^ y);
  }
  return diff == 0;
}

unsigned wr_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms) {
  if (base_ms == 0)
    base_ms = 1;
  if (cap_ms < base_ms)
    cap_ms = base_ms;
  uint64_t ceil_ms = base_ms;
  for (unsigned i = 0; i < attempt && ceil_ms < cap_ms; i++)
    ceil_ms *= 2;
  if (ceil_ms > cap_ms)
    ceil_ms = cap_ms;
  uint32_t r = 0;
  if (fill_random(&r, sizeof r) != 0)
    r = (uint32_t)wr_mono_ns();
  uint64_t floor_ms = base_ms / 2;
  return (unsigned)(floor_ms + r % (ceil_ms - floor_ms + 1));
}

int wr_sleep_ms(unsigned ms, const volatile int *stop) {
  int64_t end = wr_mono_ns() + (int64_t)ms * 1000000;
  for (;;) {
    if (stop && *stop)
      return WR_ESTOPPED;
    int64_t left = end - wr_mono_ns();
    if (left <= 0)
      return 0;
    if (left > 50000000)
      left = 50000000;
    struct timespec ts = {0, (long)left};
    nanosleep(&ts, NULL);
  }
}

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int wr_base64_encode(const void *data, size_t len, bool url, char *out, size_t outsz) {
  const char *abc = url ? B64_URL : B64_STD;
  const unsigned char *p = data;
  size_t need = (len + 2) / 3 * 4 + 1;
  if (!out || outsz < need)
    return WR_ETOOBIG;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    if (i + 1 < len)
      out[o++] = abc[v >> 6 & 63];
    else if (!url)
      out[o++] = '=';
    if (i + 2 < len)
      out[o++] = abc[v & 63];
    else if (!url)
      out[o++] = '=';
  }
  out[o] = '\0';
  return (int)o;
}

int wr_base64_decode(const char *text, size_t len, bool url, void *out, size_t outsz) {
  const char *abc = url ? B64_URL : B64_STD;
  unsigned char *o = out;
  size_t pad = 0;
  while (pad < 2 && len > 0 && text[len - 1] == '=') {
    len--;
    pad++;
  }
  if (!url && (len + pad) % 4 != 0)
    return WR_EINVAL;
  if (len % 4 == 1)
    return WR_EINVAL;
  size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  if (n > outsz)
    return WR_ETOOBIG;
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t w = 0;
  for (size_t i = 0; i < len; i++) {
    const char *q = text[i] ? strchr(abc, text[i]) : NULL;
    if (!q)
      return WR_EINVAL;
    acc = acc << 6 | (uint32_t)(q - abc);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[w++] = (unsigned char)(acc >> bits);
    }
  }
  /* leftover bits must be zero (canonical encoding) */
  if (bits && (acc & ((1u << bits) - 1)))
    return WR_EINVAL;
  return (int)w;
}
