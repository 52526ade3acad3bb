/* fuzz_http_server.c: raw bytes to a real wr_http_server over loopback TCP.
 *
 * One server (libmicrohttpd underneath, like the services) runs for the whole process,
 * with routes of every kind: path parameters, a literal beating a parameter, JSON
 * bodies (required and optional), an admin route behind a bearer token, a raw-body
 * route. Each input is written as-is on a fresh connection, which is then half-closed;
 * the target reads until the server closes. This drives the request line, header,
 * target, query, correlation id, Content-Type, Content-Length, chunked body and JSON
 * body paths of runtime/src/http.c through libmicrohttpd's own parser, as a client
 * would.
 *
 * Properties: the server never crashes, never leaks, always closes the connection
 * (within the timeout below), never answers with a 5xx other than libmicrohttpd's own
 * 505 (bad HTTP version), and every log line it writes stays one line of printable
 * text whatever the client sent (log injection). Handlers check the accessors'
 * contracts: decoded parameters and query strings are UTF-8 without NUL. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <warren/http.h>
#include <warren/log.h>
#include <warren/util.h>

#include "fuzz.h"
#include "utf8.h"

#define ADMIN_TOKEN      "fuzz-admin-token"
#define FUZZ_MAX_INPUT   (64 * 1024)
#define CLOSE_TIMEOUT_MS 20000 /* well above the server's own connection timeout */

static wr_http_server *srv;
static unsigned srv_port;

static void check_text(const char *what, const char *s) {
  if (!s)
    return;
  size_t n = strlen(s);
  FUZZ_CHECK(wr__utf8_valid(s, n, NULL), "%s \"%s\" is not UTF-8", what, s);
}

static void on_query(const char *k, const char *v, void *u) {
  check_text("query key", k);
  check_text("query value", v);
  (*(size_t *)u)++;
}

/* Reads everything a handler may read, then answers with what it saw. */
static void h_echo(wr_http_req *r, void *user) {
  (void)user;
  const char *id = wr_http_req_param(r, "id");
  check_text("path parameter", id);
  FUZZ_CHECK(wr_http_req_path(r)[0] == '/', "path \"%s\"", wr_http_req_path(r));
  size_t nq = 0;
  wr_http_req_query_foreach(r, on_query, &nq);
  const char *limit = wr_http_req_query(r, "limit");
  check_text("query limit", limit);
  const char *corr = wr_http_req_correlation_id(r);
  FUZZ_CHECK(corr && corr[0], "no correlation id");
  size_t blen = 0;
  const char *body = wr_http_req_body(r, &blen);
  FUZZ_CHECK((body == NULL) == (blen == 0), "body pointer and length disagree");
  const char *ua = wr_http_req_header(r, "User-Agent");
  if (limit && limit[0] == 'x') {
    /* echoed client input through the formatted error path (UTF-8 sanitized) */
    wr_http_reply_error(r, 400, "bad_limit", "bad limit \"%s\" from %s", limit, ua ? ua : "-");
    return;
  }
  json_t *o = json_pack("{s:s?, s:I, s:I, s:s}", "id", id, "queries", (json_int_t)nq, "body",
                        (json_int_t)blen, "method", wr_http_req_method(r));
  FUZZ_CHECK(o != NULL, "json_pack failed");
  if (ua && wr_http_reply_header(r, "X-Seen-Agent", ua) != 0)
    wr_http_reply_header(r, "X-Seen-Agent", "invalid");
  wr_http_reply_json(r, 200, o);
}

static void h_json(wr_http_req *r, void *user) {
  (void)user;
  json_t *j = wr_http_req_json(r);
  if (!j) {
    wr_http_reply_empty(r, 204);
    return;
  }
  FUZZ_CHECK(json_is_object(j), "JSON body is not an object");
  wr_http_reply_json(r, 201, json_incref(j));
}

static void h_admin(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_empty(r, 204);
}

static void h_raw(wr_http_req *r, void *user) {
  (void)user;
  size_t len = 0;
  const char *b = wr_http_req_body(r, &len);
  const char *ct = wr_http_req_header(r, "Content-Type");
  wr_http_reply_bytes(r, 200, ct && strlen(ct) < 100 ? "application/octet-stream" : NULL, b, len);
}

static const wr_http_route routes[] = {
    {"GET", "/things/{id}", h_echo, 0},
    {"GET", "/things/special", h_echo, 0},
    {"GET", "/things", h_echo, 0},
    {"DELETE", "/things/{id}/parts/{part}", h_echo, 0},
    {"POST", "/things", h_json, WR_ROUTE_JSON_BODY},
    {"PUT", "/things/{id}", h_json, WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
    {"PATCH", "/things/{id}", h_json, WR_ROUTE_JSON_BODY},
    {"POST", "/admin/things/{id}", h_admin, WR_ROUTE_ADMIN},
    {"POST", "/raw", h_raw, 0},
};

/* Every log line the server writes while handling outside input: one printable line. */
static void log_sink(wr_log_level level, const char *line, void *user) {
  (void)level;
  (void)user;
  for (const unsigned char *p = (const unsigned char *)line; *p; p++)
    FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in log line: %s", *p, line);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  wr_log_configure(log_sink, NULL, WR_LOG_DEBUG);
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = sizeof routes / sizeof routes[0];
  o.threads = 2;
  o.max_body = 4096; /* small, so that inputs reach the 413 paths */
  o.connection_timeout_s = 5;
  o.request_timeout_s = 5;
  o.max_connections = 64;
  o.admin_token = ADMIN_TOKEN;
  wr_err e;
  int rc = wr_http_server_start(&o, &srv, &e);
  FUZZ_CHECK(rc == 0, "server start: %s", e.msg);
  srv_port = wr_http_server_port(srv);
  /* The server lives as long as the process (libFuzzer never returns from main). */
  return 0;
}

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)srv_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  return fd;
}

/* Sends while reading (a server answering early must not deadlock us), then half-closes.
 *
 * When the half-close arrives together with the request, libmicrohttpd 0.9.75 (edge-
 * triggered epoll) misses the end of stream and keeps the connection open until its
 * idle timeout after answering. So the FIN goes out only once the answer has started
 * to arrive, or after FIN_DELAY_MS without one (an incomplete request): it then wakes
 * the server up on its own and the server closes at once. */
#define FIN_DELAY_MS 3
static size_t exchange(int fd, const uint8_t *data, size_t size, char *resp, size_t respsz) {
  size_t sent = 0, got = 0;
  bool wr_done = false;
  int64_t deadline = wr_mono_ns() + (int64_t)CLOSE_TIMEOUT_MS * 1000000;
  int64_t fin_at = -1;
  for (;;) {
    if (!wr_done && sent == size) {
      if (fin_at < 0)
        fin_at = wr_mono_ns() + (int64_t)FIN_DELAY_MS * 1000000;
      if (got > 0 || wr_mono_ns() >= fin_at) {
        shutdown(fd, SHUT_WR);
        wr_done = true;
      }
    }
    bool sending = !wr_done && sent < size;
    struct pollfd p = {fd, (short)(POLLIN | (sending ? POLLOUT : 0)), 0};
    int64_t left_ms = (deadline - wr_mono_ns()) / 1000000;
    FUZZ_CHECK(left_ms > 0, "the server neither answered nor closed within %d ms",
               CLOSE_TIMEOUT_MS);
    int wait_ms = (int)left_ms;
    if (!wr_done && !sending)
      wait_ms = 1; /* until the FIN is due */
    int n = poll(&p, 1, wait_ms);
    if (n < 0 && errno == EINTR)
      continue;
    FUZZ_CHECK(n >= 0, "poll: %s", strerror(errno));
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char tmp[4096];
      ssize_t r = recv(fd, tmp, sizeof tmp, 0);
      if (r == 0 || (r < 0 && errno == ECONNRESET))
        return got;
      if (r > 0) {
        size_t take = (size_t)r < respsz - 1 - got ? (size_t)r : respsz - 1 - got;
        memcpy(resp + got, tmp, take);
        got += take;
        resp[got] = '\0';
      }
      continue;
    }
    if (sending && (p.revents & POLLOUT)) {
      ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0)
        sent += (size_t)w;
      else if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
        wr_done = true; /* closed early: read what it said */
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT)
    return 0;
  int fd = connect_server();
  static char resp[64 * 1024];
  resp[0] = '\0';
  int64_t t0 = wr_mono_ns();
  size_t got = exchange(fd, data, size, resp, sizeof resp);
  close(fd);
  if (getenv("WARREN_FUZZ_DEBUG")) /* to look at what a regression input gets */
    fprintf(stderr, "--- %zu bytes in %.1f ms:\n%s\n", got, (double)(wr_mono_ns() - t0) / 1e6,
            resp);
  if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && resp[9] == '5') {
    FUZZ_CHECK(strncmp(resp + 9, "505", 3) == 0, "server error for client input:\n%.2000s", resp);
  }
  return 0;
}
