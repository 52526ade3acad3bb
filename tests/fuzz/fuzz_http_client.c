/* fuzz_http_client.c: wr_http_do's response parsing (runtime/src/http_client.c), fed by a
 * fake server on loopback.
 *
 * A server thread accepts one connection per input, reads the client's request head,
 * writes the input as the response, half-closes and waits for the client to close.
 * Byte 0 of the input picks the client side: bit 0 HEAD instead of GET (no body is
 * read), bit 1 wr_http_get_json instead of wr_http_do, bit 2 a 100-byte response limit
 * (the ETOOBIG paths); the rest is the response bytes: status line, headers,
 * Content-Length / chunked / read-to-close bodies, interim 1xx responses.
 *
 * Properties: no crash, no leak, no hang (the server always closes, so the client must
 * finish well before its timeout, never with WR_ETIMEDOUT); the result is one of the
 * documented codes; on success the status is 100..999 (not 1xx except 101), the body is
 * NUL-terminated at its length and within the limit, the header block starts with
 * the status line and carries no empty line; on failure the response is zeroed. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <warren/http_client.h>

#include "fuzz.h"

#define FUZZ_MAX_INPUT    (256 * 1024)
#define CLIENT_TIMEOUT_MS 20000

static int listen_fd = -1;
static unsigned port;

/* The response the server thread writes next, handed over under mu; `served` counts
 * finished connections, so an input's bytes are not released while the server thread
 * still sends them. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *next_resp;
static size_t next_len;
static uint64_t served;

/* Waits up to ms for fd to be readable; false on timeout. */
static bool wait_in(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  for (;;) {
    int n = poll(&p, 1, ms);
    if (n < 0 && errno == EINTR)
      continue;
    return n > 0;
  }
}

static void serve_one(int fd) {
  /* the request head: up to the empty line (GET/HEAD carry no body) */
  char req[8192];
  size_t got = 0;
  while (got < sizeof req - 1 && wait_in(fd, 5000)) {
    ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n"))
      break;
  }
  pthread_mutex_lock(&mu);
  const uint8_t *p = next_resp;
  size_t n = next_len;
  pthread_mutex_unlock(&mu);
  size_t sent = 0;
  while (sent < n) {
    ssize_t w = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
    if (w <= 0)
      break; /* the client gave up early (limit, malformed): fine */
    sent += (size_t)w;
  }
  shutdown(fd, SHUT_WR);
  char sink[4096];
  while (wait_in(fd, 5000) && recv(fd, sink, sizeof sink, 0) > 0)
    ;
  close(fd);
  pthread_mutex_lock(&mu);
  served++;
  pthread_cond_broadcast(&done_cv);
  pthread_mutex_unlock(&mu);
}

static void *server_main(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      FUZZ_CHECK(0, "accept: %s", strerror(errno));
    }
    serve_one(fd);
  }
  return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(listen_fd >= 0, "socket: %s", strerror(errno));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  FUZZ_CHECK(bind(listen_fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(listen_fd, 16) == 0 &&
                 getsockname(listen_fd, (struct sockaddr *)&a, &al) == 0,
             "listen: %s", strerror(errno));
  port = ntohs(a.sin_port);
  pthread_t t;
  FUZZ_CHECK(pthread_create(&t, NULL, server_main, NULL) == 0, "pthread_create");
  pthread_detach(t);
  return 0;
}

static void check_response(const wr_http_response *res, size_t max, bool head) {
  FUZZ_CHECK(res->status >= 100 && res->status <= 999, "status %d", res->status);
  FUZZ_CHECK(res->status >= 200 || res->status == 101, "interim status %d returned", res->status);
  FUZZ_CHECK(res->body != NULL && res->body[res->len] == '\0', "body not terminated");
  FUZZ_CHECK(res->len <= max, "body of %zu bytes over the limit %zu", res->len, max);
  FUZZ_CHECK(!head || res->len == 0, "HEAD response with a body");
  FUZZ_CHECK(res->headers != NULL && strncmp(res->headers, "HTTP/1.", 7) == 0,
             "header block does not start with the status line");
  FUZZ_CHECK(strstr(res->headers, "\r\n\r\n") == NULL, "empty line in the header block");
  char v[64];
  /* lookups over whatever headers arrived */
  wr_http_response_header(res, "Content-Type", v, sizeof v);
  wr_http_response_header(res, "X-Correlation-Id", v, sizeof v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT)
    return 0;
  bool head = data[0] & 1;
  bool get_json = data[0] & 2;
  size_t max = (data[0] & 4) ? 100 : 0;

  pthread_mutex_lock(&mu);
  next_resp = data + 1;
  next_len = size - 1;
  uint64_t want = served + 1;
  pthread_mutex_unlock(&mu);

  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/fuzz?x=1", port);
  wr_err e;
  wr_err_clear(&e);
  int rc;
  if (get_json) {
    int status = 0;
    json_t *j = NULL;
    rc = wr_http_get_json(url, NULL, CLIENT_TIMEOUT_MS, &status, &j, &e);
    if (rc == 0) {
      FUZZ_CHECK(j != NULL, "success without JSON");
      FUZZ_CHECK(status >= 200 && status <= 999, "status %d", status);
      json_decref(j);
    } else {
      FUZZ_CHECK(j == NULL, "JSON left on failure");
    }
  } else {
    wr_http_request req = {.method = head ? "HEAD" : "GET",
                           .url = url,
                           .timeout_ms = CLIENT_TIMEOUT_MS,
                           .max_response = max};
    wr_http_response res;
    rc = wr_http_do(&req, &res, &e);
    if (rc == 0) {
      check_response(&res, max ? max : (size_t)64 * 1024 * 1024, head);
    } else {
      FUZZ_CHECK(res.body == NULL && res.headers == NULL && res.status == 0,
                 "response not zeroed on failure");
    }
    wr_http_response_free(&res);
  }
  /* the server thread is done with data before it goes back to the fuzzer */
  pthread_mutex_lock(&mu);
  while (served < want)
    pthread_cond_wait(&done_cv, &mu);
  pthread_mutex_unlock(&mu);
  FUZZ_CHECK(rc != WR_ETIMEDOUT, "client timed out although the server closed: %s", e.msg);
  FUZZ_CHECK(rc == 0 || rc == WR_EIO || rc == WR_EHTTP || rc == WR_ETOOBIG || rc == WR_ENOMEM ||
                 (get_json && rc == WR_EJSON),
             "unexpected code %d: %s", rc, e.msg);
  return 0;
}
