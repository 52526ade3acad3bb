/* test_http_client.c: wr_http_do against scripted fake servers on real sockets: the
 * request it writes, Content-Length / chunked / read-to-close bodies, interim 1xx,
 * early answers, size caps, timeouts against silent and trickling servers, malformed
 * responses, bad URLs and header injection; wr_http_get_json; header lookup. */
#include "test_http_util.h"

#include <strings.h>

#include "http_internal.h"

static char *url_of(const th_fake *f, const char *path) {
  static char buf[200];
  snprintf(buf, sizeof buf, "http://127.0.0.1:%u%s", f->port, path);
  return buf;
}

/* Runs one request against a fake server answering with script; returns rc. */
static int run(const th_step *script, int hold_ms, wr_http_request *req, wr_http_response *res,
               wr_err *err, th_fake *f) {
  th_fake_start(f, script, hold_ms);
  req->url = url_of(f, "/p?q=1");
  int rc = wr_http_do(req, res, err);
  th_fake_stop(f);
  return rc;
}

static void request_shape(void **state) {
  (void)state;
  static const th_step ok[] = {{"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 0, 0},
                               {NULL, 0, 0}};
  th_fake f;
  const char *hs[] = {"X-Correlation-Id: abc", "Content-Type: application/json", NULL};
  wr_http_request req = {
      .method = "POST", .headers = hs, .body = "{\"a\":1}", .body_len = 7, .timeout_ms = 5000};
  wr_http_response res;
  wr_err err = {0};
  assert_int_equal(run(ok, 0, &req, &res, &err, &f), 0);
  assert_int_equal(res.status, 201);
  assert_int_equal(res.len, 2);
  assert_string_equal(res.body, "ok");
  char expect_host[64];
  snprintf(expect_host, sizeof expect_host, "\r\nHost: 127.0.0.1:%u\r\n", f.port);
  assert_true(strncmp(f.request, "POST /p?q=1 HTTP/1.1\r\n", 22) == 0);
  assert_non_null(strstr(f.request, expect_host));
  assert_non_null(strstr(f.request, "\r\nConnection: close\r\n"));
  assert_non_null(strstr(f.request, "\r\nX-Correlation-Id: abc\r\n"));
  assert_non_null(strstr(f.request, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
  wr_http_response_free(&res);
  assert_null(res.body);
  wr_http_response_free(&res); /* twice is harmless */
  wr_http_response_free(NULL);

  /* POST without body still says Content-Length: 0; GET says nothing */
  req.body = NULL;
  req.body_len = 0;
  assert_int_equal(run(ok, 0, &req, &res, &err, &f), 0);
  assert_non_null(strstr(f.request, "\r\nContent-Length: 0\r\n"));
  wr_http_response_free(&res);
  req.method = "GET";
  req.headers = NULL;
  assert_int_equal(run(ok, 0, &req, &res, &err, &f), 0);
  assert_null(strcasestr(f.request, "Content-Length"));
  wr_http_response_free(&res);
  /* an explicit Host wins */
  const char *h2[] = {"Host: customer:8081", NULL};
  req.headers = h2;
  assert_int_equal(run(ok, 0, &req, &res, &err, &f), 0);
  assert_non_null(strstr(f.request, "\r\nHost: customer:8081\r\n"));
  assert_null(strstr(f.request, "Host: 127.0.0.1"));
  wr_http_response_free(&res);
}

static void bodies(void **state) {
  (void)state;
  th_fake f;
  wr_http_request req = {.method = "GET", .timeout_ms = 5000};
  wr_http_response res;
  wr_err err = {0};
  /* chunked, split across writes, with extensions and trailers */
  static const th_step chunked[] = {
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  padded value  \r\n\r\n", 0, 0},
      {"5;ext=1\r\nhel", 0, 0},
      {"lo\r\n", 0, 20},
      {"7\r\n, world\r\n", 0, 20},
      {"A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n", 0, 20},
      {NULL, 0, 0}};
  assert_int_equal(run(chunked, 0, &req, &res, &err, &f), 0);
  assert_int_equal(res.len, 22);
  assert_string_equal(res.body, "hello, world0123456789");
  char v[64];
  assert_true(wr_http_response_header(&res, "x-a", v, sizeof v));
  assert_string_equal(v, "padded value");
  assert_true(wr_http_response_header(&res, "TRANSFER-ENCODING", v, sizeof v));
  assert_false(wr_http_response_header(&res, "X-Trailer", v, sizeof v));
  assert_false(wr_http_response_header(&res, "X-A", v, 5)); /* does not fit */
  assert_string_equal(v, "");
  assert_false(wr_http_response_header(&res, "X", v, sizeof v));
  assert_non_null(strstr(res.headers, "HTTP/1.1 200 OK\r\n"));
  wr_http_response_free(&res);

  /* read to close (no length), with a NUL byte inside, and an interim 100 first */
  static const th_step eof[] = {{"HTTP/1.1 100 Continue\r\n\r\n", 0, 0},
                                {"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nab\0cd", 35, 10},
                                {NULL, 0, 0}};
  assert_int_equal(run(eof, 0, &req, &res, &err, &f), 0);
  assert_int_equal(res.status, 200);
  assert_int_equal(res.len, 5);
  assert_memory_equal(res.body, "ab\0cd", 6);
  wr_http_response_free(&res);

  /* 204 and HEAD carry no body even with a Content-Length */
  static const th_step nobody[] = {{"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 0},
                                   {NULL, 0, 0}};
  assert_int_equal(run(nobody, 1000, &req, &res, &err, &f), 0);
  assert_int_equal(res.status, 204);
  assert_int_equal(res.len, 0);
  assert_string_equal(res.body, "");
  wr_http_response_free(&res);
  static const th_step head[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 0, 0},
                                 {NULL, 0, 0}};
  req.method = "HEAD";
  assert_int_equal(run(head, 1000, &req, &res, &err, &f), 0);
  assert_int_equal(res.len, 0);
  wr_http_response_free(&res);
  req.method = "GET";

  /* bare LF line ends are tolerated */
  static const th_step lf[] = {{"HTTP/1.1 404 Not Found\nContent-Length: 3\n\nabc", 0, 0},
                               {NULL, 0, 0}};
  assert_int_equal(run(lf, 0, &req, &res, &err, &f), 0);
  assert_int_equal(res.status, 404);
  assert_string_equal(res.body, "abc");
  wr_http_response_free(&res);

  /* the server answers early and closes while a large body is being sent */
  static const th_step early[] = {
      {"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!", 0,
       0},
      {NULL, 0, 0}};
  size_t n = 8 * 1024 * 1024;
  char *big = malloc(n);
  memset(big, 'x', n);
  req.method = "POST";
  req.body = big;
  req.body_len = n;
  th_fake_start(&f, early, 0);
  f.no_read = true;
  req.url = url_of(&f, "/");
  int rc = wr_http_do(&req, &res, &err);
  th_fake_stop(&f);
  /* Either the answer was read (the usual case) or the reset won the race: never a hang,
   * never a crash. */
  if (rc == 0) {
    assert_int_equal(res.status, 413);
    assert_string_equal(res.body, "big!");
  } else {
    assert_int_equal(rc, WR_EIO);
  }
  wr_http_response_free(&res);
  free(big);
}

static void size_caps(void **state) {
  (void)state;
  th_fake f;
  wr_http_request req = {.method = "GET", .timeout_ms = 5000, .max_response = 10};
  wr_http_response res;
  wr_err err = {0};
  static const th_step cl[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890", 0, 0},
                               {NULL, 0, 0}};
  assert_int_equal(run(cl, 0, &req, &res, &err, &f), WR_ETOOBIG);
  assert_null(res.body);
  static const th_step exact[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0, 0},
                                  {NULL, 0, 0}};
  assert_int_equal(run(exact, 0, &req, &res, &err, &f), 0);
  wr_http_response_free(&res);
  static const th_step ch[] = {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                "chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n",
                                0, 0},
                               {NULL, 0, 0}};
  assert_int_equal(run(ch, 0, &req, &res, &err, &f), WR_ETOOBIG);
  static const th_step eof[] = {{"HTTP/1.1 200 OK\r\n\r\n0123456789A", 0, 0}, {NULL, 0, 0}};
  assert_int_equal(run(eof, 0, &req, &res, &err, &f), WR_ETOOBIG);
  /* a header block over 64 KiB */
  char *huge = malloc(100 * 1024);
  strcpy(huge, "HTTP/1.1 200 OK\r\nX-Big: ");
  size_t off = strlen(huge);
  memset(huge + off, 'h', 68 * 1024);
  strcpy(huge + off + 68 * 1024, "\r\n\r\n");
  th_step big[] = {{huge, 0, 0}, {NULL, 0, 0}};
  req.max_response = 0;
  assert_int_equal(run(big, 0, &req, &res, &err, &f), WR_ETOOBIG);
  /* many small header lines adding up to more than 64 KiB */
  size_t at = (size_t)sprintf(huge, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < 3000; i++)
    at += (size_t)sprintf(huge + at, "X-H-%04d: 0123456789\r\n", i);
  strcpy(huge + at, "\r\n");
  assert_true(at > 64 * 1024 && at < 70 * 1024);
  assert_int_equal(run(big, 0, &req, &res, &err, &f), WR_ETOOBIG);
  free(huge);
  /* the default cap is 64 MiB: an announced 100 MiB is refused before reading */
  static const th_step announced[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\nxx", 0, 0}, {NULL, 0, 0}};
  assert_int_equal(run(announced, 0, &req, &res, &err, &f), WR_ETOOBIG);
}

/* Times one request against a fake server; returns rc and the elapsed ms of the call
 * alone (not of the fake server's hold). */
static int timed(const th_step *script, int hold_ms, wr_http_request *req, wr_err *err,
                 int64_t *elapsed) {
  th_fake f;
  wr_http_response res;
  th_fake_start(&f, script, hold_ms);
  req->url = url_of(&f, "/");
  int64_t t0 = wt_now_ms();
  int rc = wr_http_do(req, &res, err);
  *elapsed = wt_now_ms() - t0;
  th_fake_stop(&f);
  assert_null(res.body);
  wr_http_response_free(&res);
  return rc;
}

/* The deadline holds whatever the server does. Bounds are generous: a 300 ms timeout
 * must return well before the fake server would have closed (5 s or 8 s). */
static void timeouts(void **state) {
  (void)state;
  wr_http_request req = {.method = "GET", .timeout_ms = 300};
  wr_err err = {0};
  int64_t ms;
  /* accepts, reads the request, never answers */
  static const th_step silent[] = {{NULL, 0, 0}};
  assert_int_equal(timed(silent, 5000, &req, &err, &ms), WR_ETIMEDOUT);
  assert_non_null(strstr(err.msg, "timed out"));
  assert_true(ms < 4500);
  /* accepts and never even reads */
  th_fake f;
  th_fake_start(&f, silent, 5000);
  f.no_read = true;
  wr_http_response res;
  req.url = url_of(&f, "/");
  int64_t t0 = wt_now_ms();
  assert_int_equal(wr_http_do(&req, &res, &err), WR_ETIMEDOUT);
  assert_true(wt_now_ms() - t0 < 4500);
  th_fake_stop(&f);
  /* headers, then a body that never comes */
  static const th_step stall[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", 0, 0},
                                  {NULL, 0, 0}};
  assert_int_equal(timed(stall, 5000, &req, &err, &ms), WR_ETIMEDOUT);
  assert_true(ms < 4500);
  /* a trickle: one byte every 100 ms, each read "succeeds" but the deadline holds */
  static th_step trickle[81];
  static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n";
  for (int i = 0; i < 80; i++)
    trickle[i] = (th_step){resp + (i % (int)(sizeof resp - 1)), 1, 100};
  trickle[80] = (th_step){NULL, 0, 0};
  assert_int_equal(timed(trickle, 0, &req, &err, &ms), WR_ETIMEDOUT);
  assert_true(ms < 6000);
}

static void malformed_responses(void **state) {
  (void)state;
  th_fake f;
  wr_http_request req = {.method = "GET", .timeout_ms = 5000};
  wr_http_response res;
  wr_err err = {0};
  struct {
    const char *resp;
    int rc;
  } cases[] = {
      {"", WR_EIO},                                                 /* closed at once */
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", WR_EIO}, /* truncated */
      {"HTTP/1.1 200 OK\r\nContent-Le", WR_EIO},                    /* cut in the head */
      {"SMTP ready\r\n\r\n", WR_EHTTP},                             /* not HTTP */
      {"HTTP/1.1 20 OK\r\n\r\n", WR_EHTTP},                         /* bad status */
      {"HTTP/1.1 2000 OK\r\n\r\n", WR_EHTTP},
      {"HTTP/2 200\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", WR_EIO},
      {"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", WR_EHTTP},
      {"HTTP/1.1 200 OK\r\n folded\r\n\r\n", WR_EHTTP},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    th_step s[] = {{cases[i].resp, 0, 0}, {NULL, 0, 0}};
    if (!cases[i].resp[0])
      s[0].bytes = NULL;
    int rc = run(s, 0, &req, &res, &err, &f);
    if (rc != cases[i].rc)
      fail_msg("case %zu: want %s, got %s (%s)", i, wr_errname(cases[i].rc), wr_errname(rc),
               err.msg);
    assert_null(res.body);
    assert_null(res.headers);
  }
  /* a repeated but equal Content-Length is fine */
  static const th_step same[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 0, 0}, {NULL, 0, 0}};
  assert_int_equal(run(same, 0, &req, &res, &err, &f), 0);
  wr_http_response_free(&res);
}

static void bad_requests(void **state) {
  (void)state;
  wr_http_response res;
  wr_err err = {0};
  const char *bad_urls[] = {"https://x/",
                            "ftp://x/",
                            "http://",
                            "http:///p",
                            "http://u:p@x/",
                            "http://x:0/",
                            "http://x:65536/",
                            "http://x:8a/",
                            "http://x/ a",
                            "http://x/\r\nX: y",
                            "http://[::1/",
                            "http://x:/",
                            "x",
                            "http://[]/",
                            "http://[::1]x/"};
  for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
    wr_http_request req = {.method = "GET", .url = bad_urls[i], .timeout_ms = 1000};
    if (wr_http_do(&req, &res, &err) != WR_EURL)
      fail_msg("url %s accepted", bad_urls[i]);
    assert_null(res.body);
  }
  wr_http_request req = {.method = "GET", .url = NULL};
  assert_int_equal(wr_http_do(&req, &res, &err), WR_EURL);
  const char *inject[][2] = {{"X-A: b\r\nX-Injected: 1", NULL},
                             {"NoColon", NULL},
                             {": empty name", NULL},
                             {"Content-Length: 5", NULL},
                             {"transfer-encoding: chunked", NULL},
                             {"Connection: keep-alive", NULL},
                             {"Bad Name: v", NULL}};
  for (size_t i = 0; i < sizeof inject / sizeof inject[0]; i++) {
    wr_http_request r2 = {.method = "GET", .url = "http://127.0.0.1:1/", .headers = inject[i]};
    assert_int_equal(wr_http_do(&r2, &res, &err), WR_EINVAL);
  }
  const char *methods[] = {"", "G T", "GET\r\n", NULL};
  for (size_t i = 0; i < 4; i++) {
    wr_http_request r3 = {.method = methods[i], .url = "http://127.0.0.1:1/"};
    assert_int_equal(wr_http_do(&r3, &res, &err), WR_EINVAL);
  }
  wr_http_request r4 = {.method = "POST", .url = "http://127.0.0.1:1/", .body_len = 3};
  assert_int_equal(wr_http_do(&r4, &res, &err), WR_EINVAL); /* length without bytes */
  assert_int_equal(wr_http_do(NULL, &res, &err), WR_EINVAL);
  assert_int_equal(wr_http_do(&r4, NULL, &err), WR_EINVAL);

  /* nothing listens: connection refused is WR_EIO with the reason */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  socklen_t sl = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &sl);
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%u/", ntohs(a.sin_port));
  close(fd); /* bound, never listened, now closed: the port refuses */
  wr_http_request r5 = {.method = "GET", .url = u, .timeout_ms = 2000};
  assert_int_equal(wr_http_do(&r5, &res, &err), WR_EIO);
  assert_non_null(strstr(err.msg, "refused"));
}

static void get_json(void **state) {
  (void)state;
  th_fake f;
  int status = 0;
  json_t *j = NULL;
  wr_err err = {0};
  static const th_step ok[] = {{"HTTP/1.1 404 Not Found\r\nContent-Length: "
                                "36\r\n\r\n{\"error\":{\"code\":\"x\",\"message\":\"y\"}}",
                                0, 0},
                               {NULL, 0, 0}};
  th_fake_start(&f, ok, 0);
  assert_int_equal(wr_http_get_json(url_of(&f, "/c"), NULL, 5000, &status, &j, &err), 0);
  th_fake_stop(&f);
  assert_int_equal(status, 404);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "x");
  assert_non_null(strstr(f.request, "\r\nAccept: application/json\r\n"));
  json_decref(j);
  static const th_step html[] = {
      {"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 6\r\n\r\n<html>", 0, 0}, {NULL, 0, 0}};
  th_fake_start(&f, html, 0);
  const char *hs[] = {"Accept: */*", NULL};
  assert_int_equal(wr_http_get_json(url_of(&f, "/c"), hs, 5000, &status, &j, &err), WR_EJSON);
  th_fake_stop(&f);
  assert_null(j);
  assert_non_null(strstr(err.msg, "502"));
  assert_null(strstr(f.request, "application/json")); /* the caller's Accept only */
  static const th_step dup[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"a\":2}", 0, 0}, {NULL, 0, 0}};
  th_fake_start(&f, dup, 0);
  assert_int_equal(wr_http_get_json(url_of(&f, "/c"), NULL, 5000, &status, &j, &err), WR_EJSON);
  th_fake_stop(&f);
  assert_int_equal(wr_http_get_json("http://x/", NULL, 0, NULL, &j, &err), WR_EINVAL);
}

/* ---- internal parsers ---------------------------------------------------------------- */

static void url_parser(void **state) {
  (void)state;
  char host[64];
  unsigned port;
  const char *target;
  assert_int_equal(wr__http_parse_url("http://example.org", host, sizeof host, &port, &target), 0);
  assert_string_equal(host, "example.org");
  assert_int_equal(port, 80);
  assert_null(target);
  assert_int_equal(wr__http_parse_url("HTTP://h:8081/a/b?c=d#f", host, sizeof host, &port, &target),
                   0);
  assert_string_equal(host, "h");
  assert_int_equal(port, 8081);
  assert_string_equal(target, "/a/b?c=d#f");
  assert_int_equal(wr__http_parse_url("http://[::1]:9/x", host, sizeof host, &port, &target), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 9);
  assert_int_equal(wr__http_parse_url("http://[fe80::1]", host, sizeof host, &port, &target), 0);
  assert_int_equal(port, 80);
  assert_int_equal(wr__http_parse_url("http://h?x=1", host, sizeof host, &port, &target), 0);
  assert_null(target);
  char tiny[4];
  assert_int_equal(wr__http_parse_url("http://longhost/", tiny, sizeof tiny, &port, &target),
                   WR_EURL);
  assert_int_equal(wr__http_parse_url("http://h#frag", host, sizeof host, &port, &target), WR_EURL);
  assert_int_equal(wr__http_parse_url("http://h:123456/", host, sizeof host, &port, &target),
                   WR_EURL);
}

static void server_parsers(void **state) {
  (void)state;
  char *o = NULL;
  size_t n = 0;
  assert_int_equal(wr__http_pct_decode("a%20b+c%2b", 10, true, &o, &n), 0);
  assert_string_equal(o, "a b c+");
  assert_int_equal(n, 6);
  free(o);
  assert_int_equal(wr__http_pct_decode("a+b", 3, false, &o, NULL), 0);
  assert_string_equal(o, "a+b");
  free(o);
  assert_int_equal(wr__http_pct_decode("", 0, false, &o, &n), 0);
  assert_string_equal(o, "");
  free(o);
  assert_int_equal(wr__http_pct_decode("%e2%82%ac", 9, false, &o, NULL), 0);
  assert_string_equal(o, "\xe2\x82\xac");
  free(o);
  /* the length bounds the read: "%4" followed by bytes outside the slice is invalid */
  assert_int_equal(wr__http_pct_decode("%41BC", 2, false, &o, NULL), WR_EINVAL);
  const char *bad[] = {"%",      "%a",           "%zz",  "%00",       "a%0",   "%c3",
                       "%c3%28", "%f4%90%80%80", "\xff", "%ed%a0%80", "%C0%AF"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o = NULL;
    if (wr__http_pct_decode(bad[i], strlen(bad[i]), false, &o, NULL) != WR_EINVAL)
      fail_msg("decoded %s", bad[i]);
    assert_null(o);
  }
  assert_int_equal(wr__http_pct_decode("a\0b", 3, false, &o, NULL), WR_EINVAL);

  assert_true(wr__http_corr_valid("a"));
  assert_true(wr__http_corr_valid("Az09._:-"));
  assert_false(wr__http_corr_valid(""));
  assert_false(wr__http_corr_valid(NULL));
  assert_false(wr__http_corr_valid("a b"));
  assert_false(wr__http_corr_valid("a/b"));
  char c128[130], c129[131];
  memset(c128, 'x', 128);
  c128[128] = '\0';
  memset(c129, 'x', 129);
  c129[129] = '\0';
  assert_true(wr__http_corr_valid(c128));
  assert_false(wr__http_corr_valid(c129));

  const char *json_ct[] = {"application/json",
                           " APPLICATION/JSON ",
                           "application/json;charset=utf-8",
                           "application/json; charset=\"utf-8\"",
                           "application/json; charset=UTF8",
                           "application/json; a=b; charset=utf-8",
                           "application/json;"};
  for (size_t i = 0; i < sizeof json_ct / sizeof json_ct[0]; i++)
    if (!wr__http_content_type_is_json(json_ct[i]))
      fail_msg("refused %s", json_ct[i]);
  const char *other_ct[] = {NULL,
                            "",
                            "text/json",
                            "application/json+x",
                            "application/jsonp",
                            "application/json; charset=iso-8859-1",
                            "application/json; charset=\"utf-8",
                            "application/json; charset",
                            "application/json x",
                            "application/json; charset=\"utf-8\" junk",
                            "multipart/form-data"};
  for (size_t i = 0; i < sizeof other_ct / sizeof other_ct[0]; i++)
    if (wr__http_content_type_is_json(other_ct[i]))
      fail_msg("accepted %s", other_ct[i] ? other_ct[i] : "(null)");

  struct sockaddr_storage ss;
  socklen_t sl;
  assert_int_equal(wr__http_parse_addr(":8081", &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8081);
  assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
  assert_int_equal(wr__http_parse_addr("127.0.0.1:0", &ss, &sl), 0);
  assert_int_equal(wr__http_parse_addr("[::1]:65535", &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
  const char *bad_addr[] = {NULL, "", ":", "1.2.3.4", ":99999", ":1x", "[::1]80", "::1:80", "[:80"};
  for (size_t i = 0; i < sizeof bad_addr / sizeof bad_addr[0]; i++)
    assert_int_equal(wr__http_parse_addr(bad_addr[i], &ss, &sl), WR_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(request_shape),
      cmocka_unit_test(bodies),
      cmocka_unit_test(size_caps),
      cmocka_unit_test(timeouts),
      cmocka_unit_test(malformed_responses),
      cmocka_unit_test(bad_requests),
      cmocka_unit_test(get_json),
      cmocka_unit_test(url_parser),
      cmocka_unit_test(server_parsers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
