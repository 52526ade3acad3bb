/* test_hostile.h: shared by the hostile-input end-to-end tests (test_hostile_*.c).
 *
 * - hx_services_start/stop: customer-service and order-service through e2e.h (child
 *   processes on a fresh RabbitMQ vhost and fresh databases, parallel-safe) with a
 *   random admin token; stopped with SIGTERM and required to exit 0 (under
 *   AddressSanitizer that includes LeakSanitizer's verdict at exit);
 * - hx_raw: a raw HTTP/1.1 client that sends exactly the bytes it is given (malformed
 *   requests included) and reads whatever comes back until the server closes, the
 *   response is complete, or a deadline passes;
 * - checks: a 4xx must carry the layer's JSON error body {"error":{"code","message"}}
 *   and an X-Correlation-Id header; a service must still answer /healthz 200.
 *
 * Helpers fail the running cmocka test on setup errors; hx_expect only counts and
 * prints mismatches so that one run shows all of them. */
#ifndef WARREN_TEST_HOSTILE_H
#define WARREN_TEST_HOSTILE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

typedef struct hx_env {
  e2e e;
  char token[64];
} hx_env;

/* Starts customer-service (admin token admin_token, NULL = none configured) into p. */
static inline void hx_start_customer(hx_env *h, dk_proc *p, const char *admin_token) {
  static __thread char tok[128];
  snprintf(tok, sizeof tok, "WARREN_ADMIN_TOKEN=%s", admin_token ? admin_token : "");
  const char *extra[] = {tok, NULL};
  e2e_start(&h->e, p, "customer", admin_token ? extra : NULL, true);
}

static inline void hx_services_start(hx_env *h, const char *name) {
  memset(h, 0, sizeof *h);
  e2e_init(&h->e, name);
  char rnd[WR_UUID_STRLEN];
  wr_uuid_v7(rnd);
  snprintf(h->token, sizeof h->token, "hostile-%.12s", rnd + 24);
  hx_start_customer(h, &h->e.customer, h->token);
  char tok[128];
  snprintf(tok, sizeof tok, "WARREN_ADMIN_TOKEN=%s", h->token);
  const char *extra[] = {tok, NULL};
  e2e_start_order(&h->e, extra);
}

/* SIGTERM; the exit status must be 0 (a leak report under ASan makes it non-zero). */
static inline void hx_stop_clean(dk_proc *p) {
  if (p->pid <= 0)
    return;
  char logp[sizeof p->log_path];
  snprintf(logp, sizeof logp, "%s", p->log_path);
  int code = e2e_stop(p);
  if (code != 0) {
    dk_tail(logp, 40);
    fail_msg("%s exited with %d on SIGTERM (log %s)", p->name, code, logp);
  }
}

static inline void hx_services_stop(hx_env *h) {
  hx_stop_clean(&h->e.order);
  hx_stop_clean(&h->e.customer);
  e2e_done(&h->e);
}

/* Counts lines of a log file containing `needle`. */
static inline int hx_log_count(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, needle) != NULL;
  fclose(f);
  return n;
}

/* ---- the raw client ---------------------------------------------------------------- */

typedef struct hx_resp {
  int status; /* 0: no (parsable) response */
  char *raw;  /* everything received, NUL-terminated */
  size_t len;
  const char *body; /* into raw, after the header block (or NULL) */
  size_t body_len;
} hx_resp;

static inline void hx_resp_free(hx_resp *r) {
  free(r->raw);
  memset(r, 0, sizeof *r);
}

static inline int hx_connect(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* Reads from fd until the response is complete (Content-Length), the peer closes, or
 * the deadline. Fills r. */
static inline void hx_read_response(int fd, int64_t deadline_ms, hx_resp *r) {
  size_t cap = 65536;
  r->raw = malloc(cap + 1);
  r->len = 0;
  for (;;) {
    int64_t left = deadline_ms - wt_now_ms();
    if (left <= 0)
      break;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, (int)left) <= 0)
      break;
    if (r->len == cap) {
      cap *= 2;
      r->raw = realloc(r->raw, cap + 1);
    }
    ssize_t n = recv(fd, r->raw + r->len, cap - r->len, 0);
    if (n <= 0)
      break;
    r->len += (size_t)n;
    r->raw[r->len] = '\0';
    char *end = strstr(r->raw, "\r\n\r\n");
    if (end) {
      const char *cl = strcasestr(r->raw, "\r\nContent-Length:");
      if (cl && cl < end) {
        size_t want = (size_t)strtoul(cl + 17, NULL, 10);
        if (r->len >= (size_t)(end + 4 - r->raw) + want)
          break;
      }
    }
  }
  r->raw[r->len] = '\0';
  if (r->len >= 12 && strncmp(r->raw, "HTTP/1.", 7) == 0)
    r->status = atoi(r->raw + 9);
  char *end = strstr(r->raw, "\r\n\r\n");
  if (end) {
    r->body = end + 4;
    r->body_len = r->len - (size_t)(r->body - r->raw);
  }
}

/* Sends req (len bytes) on a new connection, then reads the answer (see above). A
 * server that answers and closes while the request is still being sent (early 413) is
 * fine: the answer is read anyway. Returns 0, or -1 if no connection could be made. */
static inline int hx_raw(unsigned port, const void *req, size_t len, unsigned timeout_ms,
                         hx_resp *r) {
  memset(r, 0, sizeof *r);
  int fd = hx_connect(port);
  if (fd < 0)
    return -1;
  int64_t deadline = wt_now_ms() + timeout_ms;
  const char *p = req;
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the server stopped reading (answered early or closed) */
    off += (size_t)n;
  }
  hx_read_response(fd, deadline, r);
  close(fd);
  return 0;
}

/* Builds "METHOD target HTTP/1.1" + Host + Connection: close + [Content-Type] +
 * Content-Length (when body) + extra header lines ("A: b\r\n...") + body. */
static inline char *hx_build(const char *method, const char *target, const char *extra,
                             const char *ctype, const void *body, size_t body_len,
                             size_t *out_len) {
  size_t cap = strlen(method) + strlen(target) + (extra ? strlen(extra) : 0) +
               (ctype ? strlen(ctype) : 0) + body_len + 256;
  char *b = malloc(cap);
  int n = snprintf(b, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method,
                   target);
  if (ctype)
    n += snprintf(b + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
  if (body)
    n += snprintf(b + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
  if (extra)
    n += snprintf(b + n, cap - (size_t)n, "%s", extra);
  n += snprintf(b + n, cap - (size_t)n, "\r\n");
  if (body && body_len)
    memcpy(b + n, body, body_len);
  *out_len = (size_t)n + body_len;
  return b;
}

/* One request; *r filled (status 0 when nothing came back). */
static inline void hx_send(unsigned port, const char *method, const char *target, const char *extra,
                           const char *ctype, const void *body, size_t body_len, hx_resp *r) {
  size_t len;
  char *req = hx_build(method, target, extra, ctype, body, body_len, &len);
  if (hx_raw(port, req, len, 30000, r) != 0)
    r->status = 0;
  free(req);
}

/* True if r carries the layer's JSON error body (with `code` when given) and an
 * X-Correlation-Id header. */
static inline bool hx_json_error(const hx_resp *r, const char *code) {
  if (!r->body || !strcasestr(r->raw, "\r\nContent-Type: application/json") ||
      !strcasestr(r->raw, "\r\nX-Correlation-Id: "))
    return false;
  json_error_t je;
  json_t *j = json_loadb(r->body, r->body_len, 0, &je);
  json_t *e = json_object_get(j, "error");
  const char *c = json_string_value(json_object_get(e, "code"));
  bool ok = c && json_is_string(json_object_get(e, "message")) && (!code || !strcmp(c, code));
  json_decref(j);
  return ok;
}

/* Mismatches counted by hx_expect (per process: tests run one at a time). */
static int hx_failures;

/* Checks status and, for 4xx, the JSON error body and code (NULL = any code). A 5xx is
 * always a failure unless `status` asks for it. Prints and counts mismatches. */
static inline void hx_expect(const char *label, const hx_resp *r, int status, const char *code) {
  bool ok = r->status == status;
  if (ok && status >= 400 && !hx_json_error(r, code))
    ok = false;
  if (!ok) {
    hx_failures++;
    printf("  MISMATCH %s: want %d %s, got %d: %.300s\n", label, status, code ? code : "",
           r->status,
           r->body  ? r->body
           : r->raw ? r->raw
                    : "");
  }
}

/* The process runs and /healthz answers 200. */
static inline void hx_assert_alive(dk_proc *p) {
  assert_true(dk_alive(p));
  hx_resp r;
  hx_send(p->port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
  if (r.status != 200)
    fail_msg("%s: /healthz -> %d after the hostile input", p->name, r.status);
  hx_resp_free(&r);
}

#endif
