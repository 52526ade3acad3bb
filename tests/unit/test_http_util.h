/* test_http_util.h: helpers shared by the test_http_*.c unit tests (static, header
 * only: each test is its own executable). Real sockets on 127.0.0.1, no mocks:
 *   - th_get/th_do: requests through wr_http_do, failing the test on transport errors;
 *   - th_raw: a raw TCP exchange (send bytes, read until close or timeout) for what a
 *     well-behaved client cannot send (NUL bytes, trickling, truncation);
 *   - th_fake: a scripted fake server for the client tests. */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <warren/error.h>
#include <warren/http.h>
#include <warren/http_client.h>
#include <warren/util.h>

/* ---- client side ------------------------------------------------------------------ */

static inline wr_http_response th_do(const char *method, const char *url,
                                     const char *const *headers, const void *body, size_t len) {
  wr_http_request req = {.method = method,
                         .url = url,
                         .headers = headers,
                         .body = body,
                         .body_len = len,
                         .timeout_ms = 20000};
  wr_http_response res;
  wr_err err = {0};
  int rc = wr_http_do(&req, &res, &err);
  if (rc != 0)
    fail_msg("%s %s: %s (%s)", method, url, wr_errname(rc), err.msg);
  return res;
}

static inline wr_http_response th_get(const char *url) {
  return th_do("GET", url, NULL, NULL, 0);
}

/* Parses the body as JSON or fails. Caller decrefs. */
static inline json_t *th_json(const wr_http_response *res) {
  json_error_t e;
  json_t *j = json_loadb(res->body, res->len, 0, &e);
  if (!j)
    fail_msg("body is not JSON (%s): %.200s", e.text, res->body);
  return j;
}

/* Asserts a JSON error reply: status, error.code, a message string, the content type
 * and a correlation id header. */
static inline void th_assert_error(const wr_http_response *res, int status, const char *code) {
  if (res->status != status)
    fail_msg("want %d %s, got %d: %.300s", status, code, res->status, res->body);
  char ct[128], cid[200];
  assert_true(wr_http_response_header(res, "Content-Type", ct, sizeof ct));
  assert_string_equal(ct, "application/json");
  assert_true(wr_http_response_header(res, "X-Correlation-Id", cid, sizeof cid));
  assert_true(strlen(cid) > 0);
  json_t *j = th_json(res);
  json_t *e = json_object_get(j, "error");
  assert_true(json_is_object(e));
  assert_int_equal(json_object_size(e), 2);
  assert_string_equal(json_string_value(json_object_get(e, "code")), code);
  assert_true(json_is_string(json_object_get(e, "message")));
  json_decref(j);
}

/* ---- raw sockets ------------------------------------------------------------------ */

static inline int th_connect(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    fail_msg("connect to %u: %s", port, strerror(errno));
  return fd;
}

/* Sends everything; false if the peer closed (some tests want exactly that). */
static inline bool th_send(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    c += w;
    n -= (size_t)w;
  }
  return true;
}

/* True once the peer has closed fd (checked without consuming real data for long). */
static inline bool th_peer_closed(int fd, int wait_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, wait_ms) <= 0)
    return false;
  char b[4096];
  return recv(fd, b, sizeof b, MSG_DONTWAIT) == 0 || (p.revents & (POLLHUP | POLLERR));
}

/* Reads until the peer closes or timeout_ms passes. Returns a malloc'd NUL-terminated
 * buffer (caller frees); *closed tells whether the peer closed (EOF or reset). */
static inline char *th_read_all(int fd, int timeout_ms, bool *closed) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  int64_t deadline = wt_now_ms() + timeout_ms;
  *closed = false;
  for (;;) {
    int left = (int)(deadline - wt_now_ms());
    if (left <= 0)
      break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, left) <= 0)
      continue;
    if (len + 1024 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    *closed = true;
    break;
  }
  buf[len] = '\0';
  return buf;
}

/* Sends `req` (n bytes) on a fresh connection and returns everything the server sent
 * until it closed (or timeout_ms). */
static inline char *th_raw(unsigned port, const void *req, size_t n, int timeout_ms, bool *closed) {
  int fd = th_connect(port);
  th_send(fd, req, n);
  char *out = th_read_all(fd, timeout_ms, closed);
  close(fd);
  return out;
}

/* The status code of a raw HTTP response text, or 0. */
static inline int th_status(const char *raw) {
  int st = 0;
  if (sscanf(raw, "HTTP/1.%*d %d", &st) != 1)
    return 0;
  return st;
}

/* ---- scripted fake server (client tests) ------------------------------------------ */

typedef struct th_step {
  const char *bytes; /* NULL ends the script */
  size_t len;        /* 0: strlen(bytes) */
  int delay_ms;      /* before sending */
} th_step;

typedef struct th_fake {
  int lfd;
  unsigned port;
  pthread_t thread;
  const th_step *script;
  int hold_ms;  /* after the script, keep the connection open this long */
  bool no_read; /* do not read the request before answering */
  char request[65536];
  size_t request_len;
} th_fake;

static inline void *th_fake_main(void *arg) {
  th_fake *f = arg;
  int fd = accept(f->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  if (!f->no_read) {
    /* Read the head, then Content-Length bytes of body. */
    int64_t deadline = wt_now_ms() + 5000;
    size_t want = 0;
    bool have_head = false;
    while (wt_now_ms() < deadline && f->request_len < sizeof f->request - 1) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0)
        continue;
      ssize_t n = recv(fd, f->request + f->request_len, sizeof f->request - 1 - f->request_len, 0);
      if (n <= 0)
        break;
      f->request_len += (size_t)n;
      f->request[f->request_len] = '\0';
      char *end = strstr(f->request, "\r\n\r\n");
      if (end && !have_head) {
        have_head = true;
        const char *cl = strcasestr(f->request, "\r\nContent-Length:");
        want = (size_t)(end + 4 - f->request) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
      }
      if (have_head && f->request_len >= want)
        break;
    }
  }
  /* The script stops early once the client has gone (it timed out, or refused). */
  for (const th_step *s = f->script; s && s->bytes; s++) {
    if (s->delay_ms && th_peer_closed(fd, s->delay_ms))
      break;
    if (!th_send(fd, s->bytes, s->len ? s->len : strlen(s->bytes)))
      break;
  }
  int64_t until = wt_now_ms() + f->hold_ms;
  while (wt_now_ms() < until && !th_peer_closed(fd, 50)) {
  }
  close(fd);
  return NULL;
}

/* Starts a fake server on an ephemeral port answering one connection with script. */
static inline void th_fake_start(th_fake *f, const th_step *script, int hold_ms) {
  memset(f, 0, sizeof *f);
  f->script = script;
  f->hold_ms = hold_ms;
  f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(f->lfd >= 0);
  int one = 1;
  setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->lfd, 16), 0);
  socklen_t sl = sizeof a;
  getsockname(f->lfd, (struct sockaddr *)&a, &sl);
  f->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&f->thread, NULL, th_fake_main, f), 0);
}

static inline void th_fake_stop(th_fake *f) {
  shutdown(f->lfd, SHUT_RDWR); /* unblocks accept() if no client ever came */
  pthread_join(f->thread, NULL);
  close(f->lfd);
}

#endif
