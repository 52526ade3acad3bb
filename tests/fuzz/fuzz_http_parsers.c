/* fuzz_http_parsers.c: the HTTP layer's parsers of outside bytes
 * (runtime/src/http_internal.h): percent-decoding of paths and query strings, the
 * X-Correlation-Id check, the Content-Type check, listen addresses (configuration) and
 * client URLs (configuration, peers' links).
 *
 * Input: byte 0 selects the parser (mod 6), byte 1 sizes the host buffer of the URL
 * parser; the rest is the text (given with its length to the percent-decoder, as a C
 * string cut at the first NUL to the others, as they receive it).
 *
 * Name resolution: wr__http_parse_addr resolves host names. A fuzzer must not send
 * millions of DNS queries, so this file interposes getaddrinfo with a version that only
 * accepts numeric hosts (AI_NUMERICHOST): the parsing around it is what is fuzzed. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include <warren/error.h>

#include "fuzz.h"
#include "http_internal.h"
#include "utf8.h"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  static gai_fn real;
  if (!real)
    real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  FUZZ_CHECK(real != NULL, "libc's getaddrinfo not found");
  struct addrinfo h = {0};
  if (hints)
    h = *hints;
  h.ai_flags |= AI_NUMERICHOST;
  return real(node, service, &h, res);
}

static void fuzz_pct(const char *in, size_t len, bool plus) {
  char *sentinel = (char *)(uintptr_t)1;
  char *out = sentinel;
  size_t out_len = (size_t)-1;
  int rc = wr__http_pct_decode(in, len, plus, &out, &out_len);
  if (rc != 0) {
    FUZZ_CHECK(rc == WR_EINVAL || rc == WR_ENOMEM, "undocumented code %d", rc);
    FUZZ_CHECK(out == sentinel, "*out touched on failure");
    return;
  }
  FUZZ_CHECK(out_len <= len, "decoded %zu bytes from %zu", out_len, len);
  FUZZ_CHECK(strlen(out) == out_len, "NUL inside the decoded text (%zu vs %zu)", strlen(out),
             out_len);
  FUZZ_CHECK(wr__utf8_valid(out, out_len, NULL), "decoded text is not UTF-8");
  /* without escapes the text is its own decoding */
  if (!memchr(in, '%', len) && !(plus && memchr(in, '+', len)))
    FUZZ_CHECK(out_len == len && memcmp(out, in, len) == 0, "plain text changed");
  /* re-encoding every byte decodes back to the same text */
  char *enc = malloc(out_len * 3 + 1);
  FUZZ_CHECK(enc != NULL, "out of memory");
  for (size_t i = 0; i < out_len; i++)
    snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)out[i]);
  char *back = NULL;
  size_t back_len = 0;
  FUZZ_CHECK(wr__http_pct_decode(enc, out_len * 3, plus, &back, &back_len) == 0,
             "fully escaped form refused");
  FUZZ_CHECK(back_len == out_len && memcmp(back, out, out_len) == 0, "escaped form differs");
  free(back);
  free(enc);
  free(out);
}

static bool corr_char(char c) {
  return isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '-';
}

static void fuzz_corr(const char *s) {
  size_t n = strlen(s);
  bool want = n >= 1 && n <= 128;
  for (size_t i = 0; want && i < n; i++)
    want = corr_char(s[i]) && (unsigned char)s[i] < 0x80;
  FUZZ_CHECK(wr__http_corr_valid(s) == want, "\"%s\": %s expected", s, want ? "valid" : "invalid");
}

static void fuzz_ct(const char *s) {
  if (!wr__http_content_type_is_json(s))
    return;
  while (*s == ' ' || *s == '\t')
    s++;
  FUZZ_CHECK(strncasecmp(s, "application/json", 16) == 0, "\"%s\" accepted as JSON", s);
  char c = s[16];
  FUZZ_CHECK(c == '\0' || c == ';' || c == ' ' || c == '\t', "\"%s\" accepted as JSON", s);
}

static void fuzz_addr(const char *s) {
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  if (wr__http_parse_addr(s, &ss, &sl) != 0)
    return;
  FUZZ_CHECK((ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in)) ||
                 (ss.ss_family == AF_INET6 && sl == sizeof(struct sockaddr_in6)),
             "\"%s\": family %d, length %u", s, ss.ss_family, (unsigned)sl);
  FUZZ_CHECK(strrchr(s, ':') != NULL, "\"%s\" accepted without a port", s);
}

static void fuzz_url(const char *s, size_t hostsz) {
  char *host = malloc(hostsz ? hostsz : 1);
  FUZZ_CHECK(host != NULL, "out of memory");
  unsigned port = 0;
  const char *target = (const char *)(uintptr_t)1;
  int rc = wr__http_parse_url(s, host, hostsz, &port, &target);
  if (rc == 0) {
    FUZZ_CHECK(hostsz > 0 && strnlen(host, hostsz) < hostsz, "host not terminated in %zu bytes",
               hostsz);
    FUZZ_CHECK(host[0] != '\0', "\"%s\": empty host", s);
    FUZZ_CHECK(port >= 1 && port <= 65535, "\"%s\": port %u", s, port);
    FUZZ_CHECK(target == NULL || (target >= s && target < s + strlen(s) && target[0] == '/'),
               "\"%s\": target outside the URL or not a path", s);
    for (const char *p = host; *p; p++)
      FUZZ_CHECK((unsigned char)*p > 0x20 && *p != 0x7f && *p != '/' && *p != '@',
                 "\"%s\": host \"%s\"", s, host);
  } else {
    FUZZ_CHECK(rc == WR_EURL, "undocumented code %d", rc);
  }
  free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 64 * 1024)
    return 0;
  unsigned which = data[0] % 6;
  size_t hostsz = data[1];
  size_t len = size - 2;
  /* exact-size copy for the length-taking parser, NUL-terminated copy for the others */
  char *raw = malloc(len ? len : 1);
  char *str = malloc(len + 1);
  FUZZ_CHECK(raw && str, "out of memory");
  memcpy(raw, data + 2, len);
  memcpy(str, data + 2, len);
  str[len] = '\0';
  switch (which) {
  case 0:
    fuzz_pct(raw, len, false);
    break;
  case 1:
    fuzz_pct(raw, len, true);
    break;
  case 2:
    fuzz_corr(str);
    break;
  case 3:
    fuzz_ct(str);
    break;
  case 4:
    fuzz_addr(str);
    break;
  default:
    fuzz_url(str, hostsz);
    break;
  }
  free(raw);
  free(str);
  return 0;
}
