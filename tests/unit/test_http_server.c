/* test_http_server.c: the HTTP layer answered through real sockets by our own client
 * (and curl for a chunked upload): routing, parameters, query strings, JSON bodies,
 * 400/401/403/404/405/413/415/500 with JSON error bodies, correlation ids, handler
 * misuse, metrics, start-up validation, and 8 threads x 200 concurrent requests. */
#include "test_http_util.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <strings.h>

#include <warren/metrics.h>

#define TOKEN "s3cret-token"

static char base[64];
static unsigned port;
static wr_http_server *srv;
static wr_metrics *metrics;
static _Atomic int second_reply_rc = 1;
static _Atomic int header_rcs[4];
/* Handlers run on MHD's threads, where cmocka's assertions must not jump: they count
 * failed expectations here and the test checks the count. */
static _Atomic int handler_failures;
#define EXPECT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      handler_failures++;                                                                          \
  } while (0)

/* ---- handlers --------------------------------------------------------------------- */

static void h_hello(wr_http_req *r, void *user) {
  EXPECT(user == &srv); /* opts.user reaches the handler */
  wr_http_reply_json(r, 200, json_pack("{s:s}", "hello", "world"));
}

static void h_customer(wr_http_req *r, void *user) {
  (void)user;
  const char *q = wr_http_req_query(r, "x");
  wr_http_reply_json(r, 200,
                     json_pack("{s:s,s:s,s:s?,s:s}", "id", wr_http_req_param(r, "id"), "method",
                               wr_http_req_method(r), "x", q, "path", wr_http_req_path(r)));
}

static void h_checksums(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 200, json_pack("{s:s}", "route", "checksums"));
}

static void h_echo_json(wr_http_req *r, void *user) {
  (void)user;
  json_t *j = wr_http_req_json(r);
  json_t *out = json_object();
  json_object_set(out, "body", j ? j : json_null());
  const char *id = wr_http_req_param(r, "id");
  if (id)
    json_object_set_new(out, "id", json_string(id));
  wr_http_reply_json(r, strcmp(wr_http_req_method(r), "POST") == 0 ? 201 : 200, out);
}

static void h_delete(wr_http_req *r, void *user) {
  (void)user;
  if (!wr_http_req_json(r)) {
    wr_http_reply_empty(r, 204);
    return;
  }
  wr_http_reply_json(r, 200,
                     json_pack("{s:O}", "reason", json_object_get(wr_http_req_json(r), "reason")));
}

static void h_admin(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 202, json_pack("{s:b}", "ok", 1));
}

static void h_forget(wr_http_req *r, void *user) {
  (void)r;
  (void)user;
}

static void h_twice(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 200, json_pack("{s:i}", "n", 1));
  second_reply_rc = wr_http_reply_json(r, 201, json_pack("{s:i}", "n", 2));
}

static void h_headers(wr_http_req *r, void *user) {
  (void)user;
  header_rcs[0] = wr_http_reply_header(r, "X-Custom", "yes");
  header_rcs[1] = wr_http_reply_header(r, "Content-Type", "text/html");
  header_rcs[2] = wr_http_reply_header(r, "X-Evil", "a\r\nSet-Cookie: x=1");
  header_rcs[3] = wr_http_reply_header(r, "Bad Name", "v");
  wr_http_reply_bytes(r, 200, "text/plain; charset=utf-8", "plain\0text", 10);
  EXPECT(wr_http_reply_header(r, "X-Late", "no") == WR_ESTATE);
}

static void h_raw(wr_http_req *r, void *user) {
  (void)user;
  size_t n = 0;
  const char *b = wr_http_req_body(r, &n);
  EXPECT(wr_http_req_json(r) == NULL);
  wr_http_reply_bytes(r, 200, "application/octet-stream", b, n);
}

static void collect_query(const char *k, const char *v, void *u) {
  json_array_append_new(u, json_pack("[s,s]", k, v));
}

static void h_query(wr_http_req *r, void *user) {
  (void)user;
  json_t *a = json_array();
  wr_http_req_query_foreach(r, collect_query, a);
  wr_http_reply_json(r, 200, a);
}

static void h_corr(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 200, json_pack("{s:s}", "corr", wr_http_req_correlation_id(r)));
}

static void h_two_params(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 200,
                     json_pack("{s:s,s:s,s:b}", "x", wr_http_req_param(r, "x"), "y",
                               wr_http_req_param(r, "y"), "none",
                               wr_http_req_param(r, "nope") == NULL));
}

static void h_bad_reply(wr_http_req *r, void *user) {
  (void)user;
  /* invalid calls record nothing; the layer then answers 500 */
  EXPECT(wr_http_reply_json(r, 99, json_object()) == WR_EINVAL);
  EXPECT(wr_http_reply_json(r, 200, NULL) == WR_EINVAL);
  EXPECT(wr_http_reply_bytes(r, 200, "text/plain", NULL, 3) == WR_EINVAL);
  EXPECT(wr_http_reply_bytes(r, 200, "text/plain\r\nX: y", "abc", 3) == WR_EINVAL);
}

static void h_error_utf8(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_error(r, 422, "invalid_field", "bad value \"%s\"", "\xff\xfe ok");
}

static void h_head(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_header(r, "X-Head", "explicit");
  wr_http_reply_empty(r, 204);
}

static void h_root(wr_http_req *r, void *user) {
  (void)user;
  wr_http_reply_json(r, 200, json_pack("{s:s}", "root", "yes"));
}

static const wr_http_route routes[] = {
    {"GET", "/", h_root, 0},
    {"GET", "/hello", h_hello, 0},
    {"GET", "/customers/{id}", h_customer, 0},
    {"PATCH", "/customers/{id}", h_echo_json, WR_ROUTE_JSON_BODY},
    {"DELETE", "/customers/{id}", h_delete, WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
    {"GET", "/customers/checksums", h_checksums, 0},
    {"POST", "/customers", h_echo_json, WR_ROUTE_JSON_BODY},
    {"POST", "/admin/snapshots", h_admin, WR_ROUTE_ADMIN},
    {"POST", "/admin/json", h_echo_json, WR_ROUTE_ADMIN | WR_ROUTE_JSON_BODY},
    {"GET", "/forget", h_forget, 0},
    {"GET", "/twice", h_twice, 0},
    {"GET", "/headers", h_headers, 0},
    {"POST", "/raw", h_raw, 0},
    {"GET", "/query", h_query, 0},
    {"GET", "/corr", h_corr, 0},
    {"HEAD", "/corr", h_head, 0},
    {"GET", "/a/{x}/b/{y}", h_two_params, 0},
    {"GET", "/bad-reply", h_bad_reply, 0},
    {"GET", "/error-utf8", h_error_utf8, 0},
};

static int setup(void **state) {
  (void)state;
  assert_int_equal(wr_metrics_new(&metrics), 0);
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = sizeof routes / sizeof routes[0];
  o.user = &srv;
  o.max_body = 4096;
  o.admin_token = TOKEN;
  o.metrics = metrics;
  wr_err err = {0};
  int rc = wr_http_server_start(&o, &srv, &err);
  if (rc)
    fail_msg("start: %s", err.msg);
  port = wr_http_server_port(srv);
  assert_true(port > 0);
  snprintf(base, sizeof base, "http://127.0.0.1:%u", port);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  wr_http_server_stop(srv);
  assert_int_equal(handler_failures, 0);
  wr_metrics_free(metrics);
  return 0;
}

static char *url(const char *path) {
  static __thread char buf[4][600];
  static __thread int i;
  char *b = buf[i++ % 4];
  snprintf(b, sizeof buf[0], "%s%s", base, path);
  return b;
}

/* ---- routing ------------------------------------------------------------------------ */

static void routing(void **state) {
  (void)state;
  wr_http_response res = th_get(url("/hello"));
  assert_int_equal(res.status, 200);
  json_t *j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "hello")), "world");
  json_decref(j);
  wr_http_response_free(&res);

  res = th_get(url("/"));
  assert_int_equal(res.status, 200);
  wr_http_response_free(&res);

  /* parameters are percent-decoded, one segment each, %2F stays inside */
  res = th_get(url("/customers/a%20b%2Fc%C3%A9?x=1"));
  assert_int_equal(res.status, 200);
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "id")), "a b/c\xc3\xa9");
  assert_string_equal(json_string_value(json_object_get(j, "x")), "1");
  assert_string_equal(json_string_value(json_object_get(j, "path")), "/customers/a%20b%2Fc%C3%A9");
  json_decref(j);
  wr_http_response_free(&res);

  /* the literal route beats the parameter route */
  res = th_get(url("/customers/checksums"));
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "route")), "checksums");
  json_decref(j);
  wr_http_response_free(&res);

  res = th_get(url("/a/1/b/2"));
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "x")), "1");
  assert_string_equal(json_string_value(json_object_get(j, "y")), "2");
  assert_true(json_is_true(json_object_get(j, "none")));
  json_decref(j);
  wr_http_response_free(&res);

  /* 404: unknown path, trailing slash, empty parameter segment, extra segment */
  const char *missing[] = {"/nope",         "/hello/",    "/customers/",
                           "/customers//x", "/a/1/b/2/c", "//hello"};
  for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
    res = th_get(url(missing[i]));
    th_assert_error(&res, 404, "not_found");
    wr_http_response_free(&res);
  }

  /* 405 with Allow for a known path and another method, unknown methods included */
  res = th_do("PUT", url("/customers/42"), NULL, "{}", 2);
  th_assert_error(&res, 405, "method_not_allowed");
  char allow[200];
  assert_true(wr_http_response_header(&res, "Allow", allow, sizeof allow));
  assert_string_equal(allow, "GET, PATCH, DELETE, HEAD");
  wr_http_response_free(&res);
  res = th_do("BREW", url("/hello"), NULL, NULL, 0);
  th_assert_error(&res, 405, "method_not_allowed");
  assert_true(wr_http_response_header(&res, "Allow", allow, sizeof allow));
  assert_string_equal(allow, "GET, HEAD");
  wr_http_response_free(&res);
  res = th_do("BREW", url("/unknown"), NULL, NULL, 0);
  th_assert_error(&res, 404, "not_found");
  wr_http_response_free(&res);
  res = th_do("POST", url("/customers/checksums"), NULL, "{}", 2);
  th_assert_error(&res, 405, "method_not_allowed");
  wr_http_response_free(&res);

  /* an explicit HEAD route wins over the GET fallback */
  res = th_do("HEAD", url("/corr"), NULL, NULL, 0);
  assert_int_equal(res.status, 204);
  assert_true(wr_http_response_header(&res, "X-Head", allow, sizeof allow));
  wr_http_response_free(&res);
  res = th_do("BREW", url("/corr"), NULL, NULL, 0);
  assert_true(wr_http_response_header(&res, "Allow", allow, sizeof allow));
  assert_string_equal(allow, "GET, HEAD");
  wr_http_response_free(&res);

  /* HEAD is served by the GET route, without a body */
  res = th_do("HEAD", url("/hello"), NULL, NULL, 0);
  assert_int_equal(res.status, 200);
  assert_int_equal(res.len, 0);
  wr_http_response_free(&res);
}

static void bad_encoding(void **state) {
  (void)state;
  const char *bad[] = {"/customers/%zz", "/customers/%00",    "/customers/a%4",
                       "/customers/%ff", "/customers/%C3%28", "/customers/%ED%A0%80",
                       "/query?a=%00",   "/query?a=%g1",      "/query?%ff=1",
                       "/query?a=%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wr_http_response res = th_get(url(bad[i]));
    th_assert_error(&res, 400, "bad_request");
    wr_http_response_free(&res);
  }
  /* Bytes a URL cannot carry, sent raw: NUL in the target, raw invalid UTF-8, a target
   * that is not a path. Never a crash, never a 5xx. */
  const char raw_nul[] = "GET /customers/a\0b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const char raw_nul_query[] =
      "GET /query?a=1\0&b=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const char raw_nul_header[] =
      "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nConnection: close\r\n\r\n";
  const char *raws[][2] = {
      {raw_nul, (const char *)(uintptr_t)(sizeof raw_nul - 1)},
      {"GET /customers/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {"GET http://x/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {"GET /customers/a b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {"GET /customers/a\tb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {"GET /query?a=1\x01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL},
      {raw_nul_query, (const char *)(uintptr_t)(sizeof raw_nul_query - 1)},
  };
  for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
    size_t n = raws[i][1] ? (size_t)(uintptr_t)raws[i][1] : strlen(raws[i][0]);
    bool closed;
    char *out = th_raw(port, raws[i][0], n, 5000, &closed);
    int st = th_status(out);
    if (st < 400 || st > 499)
      fail_msg("raw case %zu: want a 4xx, got: %.200s", i, out);
    free(out);
  }
  /* A NUL inside a header value ends the value (libmicrohttpd parses headers as C
   * strings): the request is served with the shortened value, never a 5xx. */
  bool closed;
  char *out = th_raw(port, raw_nul_header, sizeof raw_nul_header - 1, 5000, &closed);
  int st = th_status(out);
  assert_true(st == 200 || st == 400);
  free(out);
}

static void query_strings(void **state) {
  (void)state;
  wr_http_response res = th_get(url("/query?a=1&b=x+y%2Bz&a=2&&flag&=v&e="));
  assert_int_equal(res.status, 200);
  json_t *j = th_json(&res);
  const char *want[][2] = {{"a", "1"},   {"b", "x y+z"}, {"a", "2"},
                           {"flag", ""}, {"", "v"},      {"e", ""}};
  assert_int_equal(json_array_size(j), 6);
  for (size_t i = 0; i < 6; i++) {
    json_t *p = json_array_get(j, i);
    assert_string_equal(json_string_value(json_array_get(p, 0)), want[i][0]);
    assert_string_equal(json_string_value(json_array_get(p, 1)), want[i][1]);
  }
  json_decref(j);
  wr_http_response_free(&res);
  /* first of a repeated parameter; absent is NULL */
  res = th_get(url("/customers/1?x=first&x=second"));
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "x")), "first");
  json_decref(j);
  wr_http_response_free(&res);
  res = th_get(url("/customers/1?y=1"));
  j = th_json(&res);
  assert_true(json_is_null(json_object_get(j, "x")));
  json_decref(j);
  wr_http_response_free(&res);
}

/* ---- JSON bodies -------------------------------------------------------------------- */

static wr_http_response post_json(const char *path, const char *ct, const char *body, size_t n) {
  char h[200];
  snprintf(h, sizeof h, "Content-Type: %s", ct ? ct : "");
  const char *hs[] = {h, NULL};
  return th_do("POST", url(path), ct ? hs : NULL, body, n);
}

static void json_bodies(void **state) {
  (void)state;
  /* accepted: plain and with parameters */
  const char *good_ct[] = {"application/json", "Application/JSON",
                           "application/json; charset=utf-8", "application/json;charset=\"UTF-8\"",
                           "application/json ; foo=bar"};
  for (size_t i = 0; i < sizeof good_ct / sizeof good_ct[0]; i++) {
    wr_http_response res = post_json("/customers", good_ct[i], "{\"name\":\"x\"}", 12);
    if (res.status != 201)
      fail_msg("%s: %d %s", good_ct[i], res.status, res.body);
    json_t *j = th_json(&res);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "body"), "name")),
                        "x");
    json_decref(j);
    wr_http_response_free(&res);
  }
  /* 415 */
  const char *bad_ct[] = {NULL,
                          "text/plain",
                          "application/jsonx",
                          "application/json; charset=latin1",
                          "application/x-www-form-urlencoded",
                          "",
                          "application/json; x"};
  for (size_t i = 0; i < sizeof bad_ct / sizeof bad_ct[0]; i++) {
    wr_http_response res = post_json("/customers", bad_ct[i], "{}", 2);
    th_assert_error(&res, 415, "unsupported_media_type");
    wr_http_response_free(&res);
  }
  /* 400 invalid_json, including the hostile corpus */
  static char deep[3001]; /* deeper than jansson's depth limit (2048), within max_body */
  memset(deep, '[', 3000);
  const struct {
    const char *b;
    size_t n;
  } bad[] = {
      {"", 0},
      {"{", 1},
      {"{\"a\":1", 6},
      {"[1,2]", 5},
      {"\"str\"", 5},
      {"42", 2},
      {"null", 4},
      {"{\"a\":1,\"a\":2}", 13},
      {"{\"a\":\"x\\u0000y\"}", 16},
      {"{\"a\":\"x\0y\"}", 11},
      {"{\"a\":\"\xff\"}", 9},
      {"{\"a\":\"\xc0\xaf\"}", 10},
      {"{\"a\":\"\xed\xa0\x80\"}", 11},
      {"{\"a\":123456789012345678901234567890}", 36},
      {"{\"a\":1e999}", 11},
      {"{\"a\":1} trailing", 16},
      {"{'a':1}", 7},
      {deep, 3000},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wr_http_response res = post_json("/customers", "application/json", bad[i].b, bad[i].n);
    th_assert_error(&res, 400, "invalid_json");
    wr_http_response_free(&res);
  }
  /* optional body: empty without Content-Type is fine; a body needs the type */
  wr_http_response res = th_do("DELETE", url("/customers/7"), NULL, NULL, 0);
  assert_int_equal(res.status, 204);
  assert_int_equal(res.len, 0);
  wr_http_response_free(&res);
  res = th_do("DELETE", url("/customers/7"), NULL, "{\"reason\":\"gdpr\"}", 17);
  th_assert_error(&res, 415, "unsupported_media_type");
  wr_http_response_free(&res);
  const char *hs[] = {"Content-Type: application/json", NULL};
  res = th_do("DELETE", url("/customers/7"), hs, "{\"reason\":\"gdpr\"}", 17);
  assert_int_equal(res.status, 200);
  json_t *j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "reason")), "gdpr");
  json_decref(j);
  wr_http_response_free(&res);
  res = th_do("PATCH", url("/customers/9"), hs, "{\"name\":\"\xc3\xa9\"}", 13);
  assert_int_equal(res.status, 200);
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "id")), "9");
  json_decref(j);
  wr_http_response_free(&res);
  /* SQL-looking strings are just strings */
  const char *sqli = "{\"name\":\"x'); DROP TABLE customers;--\"}";
  res = post_json("/customers", "application/json", sqli, strlen(sqli));
  assert_int_equal(res.status, 201);
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "body"), "name")),
                      "x'); DROP TABLE customers;--");
  json_decref(j);
  wr_http_response_free(&res);
}

static void body_limits(void **state) {
  (void)state;
  /* max_body is 4096 here: exactly the limit passes, one more byte is 413 */
  char *big = malloc(10 * 1024 * 1024);
  assert_non_null(big);
  memset(big, 'a', 10 * 1024 * 1024);
  wr_http_response res = th_do("POST", url("/raw"), NULL, big, 4096);
  assert_int_equal(res.status, 200);
  assert_int_equal(res.len, 4096);
  wr_http_response_free(&res);
  res = th_do("POST", url("/raw"), NULL, big, 4097);
  th_assert_error(&res, 413, "payload_too_large");
  wr_http_response_free(&res);
  /* 10 MiB announced: answered before the body is read */
  res = th_do("POST", url("/raw"), NULL, big, 10 * 1024 * 1024);
  th_assert_error(&res, 413, "payload_too_large");
  wr_http_response_free(&res);
  /* a JSON route checks the size before the JSON */
  res = post_json("/customers", "application/json", big, 10 * 1024 * 1024);
  th_assert_error(&res, 413, "payload_too_large");
  wr_http_response_free(&res);
  /* an absurd Content-Length */
  bool closed;
  const char *huge =
      "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n";
  char *out = th_raw(port, huge, strlen(huge), 5000, &closed);
  int st = th_status(out);
  assert_true(st == 413 || st == 400);
  free(out);
  free(big);
}

/* Chunked uploads: accepted under the limit, 413 over it (the body is read on and
 * discarded, not buffered). curl sends them the way real clients do. */
static void chunked_uploads(void **state) {
  (void)state;
  char tmpl[] = "/tmp/warren-http-chunk-XXXXXX";
  int fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  char *data = malloc(3 * 1024 * 1024);
  memset(data, 'z', 3 * 1024 * 1024);
  assert_int_equal(write(fd, data, 3000), 3000);
  close(fd);
  char cmd[800];
  snprintf(cmd, sizeof cmd,
           "curl -s -o /dev/null -w '%%{http_code}' -H 'Transfer-Encoding: chunked' "
           "--data-binary @%s %s",
           tmpl, url("/raw"));
  FILE *p = popen(cmd, "r");
  char code[16] = "";
  assert_non_null(fgets(code, sizeof code, p));
  pclose(p);
  assert_string_equal(code, "200");
  /* over the limit, 3 MiB chunked */
  fd = open(tmpl, O_WRONLY | O_TRUNC);
  assert_int_equal(write(fd, data, 3 * 1024 * 1024), 3 * 1024 * 1024);
  close(fd);
  snprintf(cmd, sizeof cmd,
           "curl -s -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' "
           "--data-binary @%s %s",
           tmpl, url("/customers"));
  p = popen(cmd, "r");
  char body[512] = "";
  size_t n = fread(body, 1, sizeof body - 1, p);
  body[n] = '\0';
  pclose(p);
  json_t *j = json_loads(body, 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                      "payload_too_large");
  json_decref(j);
  unlink(tmpl);
  free(data);
  /* A raw chunked body in several chunks reaches the handler whole. */
  const char *req = "POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  bool closed;
  char *out = th_raw(port, req, strlen(req), 5000, &closed);
  assert_int_equal(th_status(out), 200);
  assert_non_null(strstr(out, "\r\n\r\nhello world"));
  free(out);
}

/* ---- admin -------------------------------------------------------------------------- */

static void admin_token(void **state) {
  (void)state;
  wr_http_response res = th_do("POST", url("/admin/snapshots"), NULL, NULL, 0);
  th_assert_error(&res, 401, "unauthorized");
  char www[200];
  assert_true(wr_http_response_header(&res, "WWW-Authenticate", www, sizeof www));
  assert_string_equal(www, "Bearer realm=\"warren\"");
  wr_http_response_free(&res);

  const char *wrong[] = {"Authorization: Bearer nope",
                         "Authorization: Bearer s3cret-toke",
                         "Authorization: Bearer s3cret-token2",
                         "Authorization: Basic czNjcmV0",
                         "Authorization: Bearer",
                         "Authorization: s3cret-token",
                         "Authorization: Bearers3cret-token"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    const char *hs[] = {wrong[i], NULL};
    res = th_do("POST", url("/admin/snapshots"), hs, NULL, 0);
    th_assert_error(&res, 401, "unauthorized");
    assert_true(wr_http_response_header(&res, "WWW-Authenticate", www, sizeof www));
    wr_http_response_free(&res);
  }
  const char *right[] = {"Authorization: Bearer " TOKEN, "authorization: bearer   " TOKEN "  "};
  for (size_t i = 0; i < 2; i++) {
    const char *hs[] = {right[i], NULL};
    res = th_do("POST", url("/admin/snapshots"), hs, NULL, 0);
    assert_int_equal(res.status, 202);
    wr_http_response_free(&res);
  }
  /* authentication comes before the body checks */
  const char *ct[] = {"Content-Type: text/plain", NULL};
  res = th_do("POST", url("/admin/json"), ct, "x", 1);
  th_assert_error(&res, 401, "unauthorized");
  wr_http_response_free(&res);

  /* no token configured: 403 whatever is sent */
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = sizeof routes / sizeof routes[0];
  o.admin_token = "";
  wr_http_server *s2 = NULL;
  assert_int_equal(wr_http_server_start(&o, &s2, NULL), 0);
  char u[100];
  snprintf(u, sizeof u, "http://127.0.0.1:%u/admin/snapshots", wr_http_server_port(s2));
  const char *hs[] = {"Authorization: Bearer " TOKEN, NULL};
  res = th_do("POST", u, hs, NULL, 0);
  th_assert_error(&res, 403, "forbidden");
  wr_http_response_free(&res);
  res = th_do("POST", u, NULL, NULL, 0);
  th_assert_error(&res, 403, "forbidden");
  wr_http_response_free(&res);
  wr_http_server_stop(s2);
}

/* ---- correlation id ----------------------------------------------------------------- */

static void correlation_id(void **state) {
  (void)state;
  char cid[200];
  const char *hs[] = {"X-Correlation-Id: order-42:abc.DEF_9", NULL};
  wr_http_response res = th_do("GET", url("/corr"), hs, NULL, 0);
  json_t *j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(j, "corr")), "order-42:abc.DEF_9");
  assert_true(wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid));
  assert_string_equal(cid, "order-42:abc.DEF_9");
  json_decref(j);
  wr_http_response_free(&res);

  char long_ok[160] = "X-Correlation-Id: ";
  memset(long_ok + strlen(long_ok), 'a', 128);
  char long_bad[160] = "X-Correlation-Id: ";
  memset(long_bad + strlen(long_bad), 'a', 129);
  const char *invalid[] = {"X-Correlation-Id: has space", "X-Correlation-Id: semi;colon",
                           "X-Correlation-Id: \xc3\xa9",  long_bad,
                           "X-Correlation-Id: a/b",       NULL};
  for (size_t i = 0; invalid[i]; i++) {
    const char *h1[] = {invalid[i], NULL};
    res = th_do("GET", url("/corr"), h1, NULL, 0);
    assert_true(wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid));
    assert_true(wr_uuid_valid(cid)); /* replaced by a generated UUIDv7 */
    assert_int_equal(cid[14], '7');
    wr_http_response_free(&res);
  }
  const char *h2[] = {long_ok, NULL};
  res = th_do("GET", url("/corr"), h2, NULL, 0);
  assert_true(wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid));
  assert_int_equal(strlen(cid), 128);
  wr_http_response_free(&res);
  /* absent: generated, and different per request; also on layer errors */
  char first[64];
  res = th_get(url("/corr"));
  assert_true(wr_http_response_header(&res, "X-Correlation-Id", first, sizeof first));
  assert_true(wr_uuid_valid(first));
  wr_http_response_free(&res);
  res = th_get(url("/nowhere"));
  assert_true(wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid));
  assert_true(wr_uuid_valid(cid));
  assert_string_not_equal(cid, first);
  wr_http_response_free(&res);
  const char *h3[] = {"X-Correlation-Id: keep-me", NULL};
  res = th_do("GET", url("/nowhere"), h3, NULL, 0);
  assert_true(wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid));
  assert_string_equal(cid, "keep-me");
  wr_http_response_free(&res);
}

/* ---- handler misuse ----------------------------------------------------------------- */

static void handler_misuse(void **state) {
  (void)state;
  wr_http_response res = th_get(url("/forget"));
  th_assert_error(&res, 500, "internal");
  wr_http_response_free(&res);

  res = th_get(url("/twice"));
  assert_int_equal(res.status, 200);
  json_t *j = th_json(&res);
  assert_int_equal(json_integer_value(json_object_get(j, "n")), 1);
  json_decref(j);
  assert_int_equal(second_reply_rc, WR_ESTATE);
  wr_http_response_free(&res);

  res = th_get(url("/headers"));
  assert_int_equal(res.status, 200);
  assert_int_equal(res.len, 10);
  assert_memory_equal(res.body, "plain\0text", 10);
  char v[100];
  assert_true(wr_http_response_header(&res, "X-Custom", v, sizeof v));
  assert_string_equal(v, "yes");
  assert_true(wr_http_response_header(&res, "Content-Type", v, sizeof v));
  assert_string_equal(v, "text/plain; charset=utf-8");
  assert_false(wr_http_response_header(&res, "X-Evil", v, sizeof v));
  assert_false(wr_http_response_header(&res, "Set-Cookie", v, sizeof v));
  assert_int_equal(header_rcs[0], 0);
  assert_int_equal(header_rcs[1], WR_EINVAL);
  assert_int_equal(header_rcs[2], WR_EINVAL);
  assert_int_equal(header_rcs[3], WR_EINVAL);
  wr_http_response_free(&res);

  res = th_get(url("/bad-reply"));
  th_assert_error(&res, 500, "internal");
  wr_http_response_free(&res);

  /* invalid UTF-8 in an error message is replaced, the body stays JSON */
  res = th_get(url("/error-utf8"));
  th_assert_error(&res, 422, "invalid_field");
  j = th_json(&res);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                      "bad value \"?? ok\"");
  json_decref(j);
  wr_http_response_free(&res);
}

/* ---- metrics ------------------------------------------------------------------------ */

typedef struct wait_text {
  wr_metrics *m;
  const char *want;
} wait_text;

static bool metrics_show(void *user) {
  const wait_text *w = user;
  char *text = wr_metrics_render(w->m);
  bool ok = text && strstr(text, w->want);
  free(text);
  return ok;
}

static void metrics_recorded(void **state) {
  (void)state;
  /* A fresh server with its own registry, so counts are exact. */
  wr_metrics *m = NULL;
  assert_int_equal(wr_metrics_new(&m), 0);
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = sizeof routes / sizeof routes[0];
  o.metrics = m;
  o.user = &srv;
  wr_http_server *s2 = NULL;
  assert_int_equal(wr_http_server_start(&o, &s2, NULL), 0);
  char u[3][100];
  snprintf(u[0], sizeof u[0], "http://127.0.0.1:%u/hello", wr_http_server_port(s2));
  snprintf(u[1], sizeof u[1], "http://127.0.0.1:%u/customers/x", wr_http_server_port(s2));
  snprintf(u[2], sizeof u[2], "http://127.0.0.1:%u/zzz/%%22quoted", wr_http_server_port(s2));
  for (int i = 0; i < 3; i++) {
    wr_http_response res = th_get(u[0]);
    wr_http_response_free(&res);
  }
  wr_http_response res = th_get(u[1]);
  wr_http_response_free(&res);
  res = th_get(u[2]);
  wr_http_response_free(&res);
  res = th_do("BREW", u[2], NULL, NULL, 0);
  wr_http_response_free(&res);
  /* metrics are recorded once the response is sent: wait for the last one */
  wait_text w = {m, "warren_http_requests_total{route=\"unmatched\",method=\"other\","
                    "status=\"404\"} 1\n"};
  assert_true(wt_wait_until(metrics_show, &w, 5000));
  char *text = wr_metrics_render(m);
  assert_non_null(strstr(text, "# TYPE warren_http_requests_total counter\n"));
  assert_non_null(strstr(
      text, "warren_http_requests_total{route=\"/hello\",method=\"GET\",status=\"200\"} 3\n"));
  assert_non_null(strstr(
      text,
      "warren_http_requests_total{route=\"/customers/{id}\",method=\"GET\",status=\"200\"} 1\n"));
  assert_non_null(strstr(
      text, "warren_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"));
  assert_non_null(strstr(text, "# TYPE warren_http_request_duration_seconds histogram\n"));
  assert_non_null(strstr(
      text, "warren_http_request_duration_seconds_count{route=\"/hello\",method=\"GET\"} 3\n"));
  free(text);
  wr_http_server_stop(s2);
  wr_metrics_free(m);
}

/* ---- start-up validation ------------------------------------------------------------ */

static void start_validation(void **state) {
  (void)state;
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = sizeof routes / sizeof routes[0];
  wr_http_server *s2 = NULL;
  wr_err err = {0};
  const char *bad_addrs[] = {"",       "8080",  "127.0.0.1", "127.0.0.1:",    ":65536", ":-1",
                             "::1:80", "[::1]", "[]:80",     "127.0.0.1:80x", ":123456"};
  for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
    o.addr = bad_addrs[i];
    assert_int_equal(wr_http_server_start(&o, &s2, &err), WR_EINVAL);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "address"));
  }
  o.addr = NULL;
  assert_int_equal(wr_http_server_start(&o, &s2, &err), WR_EINVAL);
  assert_int_equal(wr_http_server_start(NULL, &s2, &err), WR_EINVAL);
  o.addr = "127.0.0.1:0";
  assert_int_equal(wr_http_server_start(&o, NULL, &err), WR_EINVAL);

  /* bad route tables */
  const wr_http_route bad_routes[][1] = {
      {{"GET", "nohead", h_hello, 0}},  {{"GET", "/a//b", h_hello, 0}},
      {{"GET", "/a/{}", h_hello, 0}},   {{"GET", "/a/{b-c}", h_hello, 0}},
      {{"GET", "/a/x{b}", h_hello, 0}}, {{"GET", "/a/", h_hello, 0}},
      {{"GET", "/a?b", h_hello, 0}},    {{"G ET", "/a", h_hello, 0}},
      {{NULL, "/a", h_hello, 0}},       {{"GET", NULL, h_hello, 0}},
      {{"GET", "/a", NULL, 0}},         {{"GET", "/{x}/{x}", h_hello, 0}},
      {{"GET", "/a%20", h_hello, 0}},
  };
  for (size_t i = 0; i < sizeof bad_routes / sizeof bad_routes[0]; i++) {
    o.routes = bad_routes[i];
    o.n_routes = 1;
    if (wr_http_server_start(&o, &s2, &err) != WR_EINVAL)
      fail_msg("route %zu accepted", i);
  }
  const wr_http_route dup[] = {{"GET", "/a/{x}", h_hello, 0}, {"GET", "/a/{y}", h_hello, 0}};
  o.routes = dup;
  o.n_routes = 2;
  assert_int_equal(wr_http_server_start(&o, &s2, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "twice"));
  o.routes = NULL;
  o.n_routes = 1;
  assert_int_equal(wr_http_server_start(&o, &s2, &err), WR_EINVAL);
  o.n_routes = 0; /* no routes at all is a valid (all-404) server */
  o.threads = 300;
  assert_int_equal(wr_http_server_start(&o, &s2, &err), WR_EINVAL);
  o.threads = 1;
  assert_int_equal(wr_http_server_start(&o, &s2, &err), 0);
  wr_http_response res = th_get(url("/hello")); /* the main server is unaffected */
  wr_http_response_free(&res);
  char u[100];
  snprintf(u, sizeof u, "http://127.0.0.1:%u/hello", wr_http_server_port(s2));
  res = th_get(u);
  th_assert_error(&res, 404, "not_found");
  wr_http_response_free(&res);

  /* the port is taken: WR_EIO naming the address and the reason */
  char taken[64];
  snprintf(taken, sizeof taken, "127.0.0.1:%u", port);
  o.addr = taken;
  wr_http_server *s3 = NULL;
  assert_int_equal(wr_http_server_start(&o, &s3, &err), WR_EIO);
  assert_null(s3);
  assert_non_null(strstr(err.msg, taken));
  assert_non_null(strstr(err.msg, "in use"));
  wr_http_server_stop(s2);

  /* ":0" and "localhost:0" and (where configured) IPv6 loopback */
  const char *good[] = {":0", "localhost:0", "0.0.0.0:0"};
  for (size_t i = 0; i < 3; i++) {
    o.addr = good[i];
    assert_int_equal(wr_http_server_start(&o, &s2, &err), 0);
    assert_true(wr_http_server_port(s2) > 0);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/", wr_http_server_port(s2));
    res = th_get(u);
    assert_int_equal(res.status, 404);
    wr_http_response_free(&res);
    wr_http_server_stop(s2);
  }
  o.addr = "[::1]:0";
  if (wr_http_server_start(&o, &s2, &err) == 0) {
    snprintf(u, sizeof u, "http://[::1]:%u/", wr_http_server_port(s2));
    res = th_get(u);
    assert_int_equal(res.status, 404);
    wr_http_response_free(&res);
    wr_http_server_stop(s2);
  }
  wr_http_server_stop(NULL);
  assert_int_equal(wr_http_server_port(NULL), 0);
}

/* ---- concurrency -------------------------------------------------------------------- */

#define CLIENTS    8
#define PER_CLIENT 200

static void *client_main(void *arg) {
  intptr_t id = (intptr_t)arg;
  for (int i = 0; i < PER_CLIENT; i++) {
    char u[128], want[64], cid[64], hdr[100];
    snprintf(want, sizeof want, "c%ld-%d", (long)id, i);
    snprintf(u, sizeof u, "%s/customers/%s", base, want);
    snprintf(hdr, sizeof hdr, "X-Correlation-Id: %s", want);
    const char *hs[] = {hdr, NULL};
    wr_http_request req = {.method = "GET", .url = u, .headers = hs, .timeout_ms = 30000};
    wr_http_response res;
    if (wr_http_do(&req, &res, NULL) != 0 || res.status != 200)
      return (void *)1;
    json_t *j = json_loadb(res.body, res.len, 0, NULL);
    bool ok = j && strcmp(json_string_value(json_object_get(j, "id")), want) == 0 &&
              wr_http_response_header(&res, "X-Correlation-Id", cid, sizeof cid) &&
              strcmp(cid, want) == 0;
    json_decref(j);
    wr_http_response_free(&res);
    if (!ok)
      return (void *)1;
  }
  return NULL;
}

static void concurrent_requests(void **state) {
  (void)state;
  pthread_t t[CLIENTS];
  for (intptr_t i = 0; i < CLIENTS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, client_main, (void *)i), 0);
  int failed = 0;
  for (int i = 0; i < CLIENTS; i++) {
    void *ret;
    pthread_join(t[i], &ret);
    failed += ret != NULL;
  }
  assert_int_equal(failed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(routing),          cmocka_unit_test(bad_encoding),
      cmocka_unit_test(query_strings),    cmocka_unit_test(json_bodies),
      cmocka_unit_test(body_limits),      cmocka_unit_test(chunked_uploads),
      cmocka_unit_test(admin_token),      cmocka_unit_test(correlation_id),
      cmocka_unit_test(handler_misuse),   cmocka_unit_test(metrics_recorded),
      cmocka_unit_test(start_validation), cmocka_unit_test(concurrent_requests),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
