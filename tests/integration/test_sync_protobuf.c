// warren-test: timeout=120
/* test_sync_protobuf.c: the catch-up pager's binary mode (wr_sync_pages_protobuf)
 * against a real HTTP server of the runtime serving warren.v1.Page bodies packed by
 * protobuf-c's generated code:
 * - it sends Accept: application/x-protobuf, walks every page by cursor, hands the
 *   items over as the exact bytes the server packed (the runtime does not interpret
 *   them), skips unknown fields, retries transient failures (503 problems) and counts
 *   pages and items;
 * - bad input fails at once, without a retry, each with its own error: a malformed
 *   body (truncated, length past the end, wrong wire type of a known field, a group,
 *   field number 0 or above 2^29-1, a cursor holding a NUL byte: WR_EDECODE), a 200
 *   reply that is not application/x-protobuf (a JSON-only server: WR_EHTTP naming the
 *   type), a page over max_page_bytes (WR_ETOOBIG), a 4xx problem (WR_EHTTP with its
 *   message); a caller's own Accept header is refused (WR_EINVAL); the page
 *   function's value stops paging;
 * - wr_sync_pages_prefer_protobuf asks for binary first and JSON second and hands
 *   each page to the function of its form; any other type is refused;
 * - the JSON mode honours max_page_bytes too and now retries a 5xx whose body is not
 *   JSON (a proxy's HTML error page). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <warren/http.h>
#include <warren/sync.h>

#include "warren/v1/page.pb-c.h"

enum mode {
  SERVE_OK,
  SERVE_TRUNCATED,      /* the page cut in the middle of an item */
  SERVE_LEN_PAST_END,   /* an item length beyond the body */
  SERVE_ITEMS_VARINT,   /* field 1 as a varint */
  SERVE_GROUP,          /* a start-group wire type */
  SERVE_FIELD0,         /* field number 0 */
  SERVE_BIG_FIELD,      /* field number 2^29, above the largest */
  SERVE_CURSOR_NUL,     /* next_cursor with a NUL byte */
  SERVE_JSON,           /* a 200 JSON page, as a server that only speaks JSON */
  SERVE_404,            /* a problem reply */
  SERVE_HTML_503,       /* a 503 with a body that is not JSON, then normal pages */
  SERVE_UNKNOWN_FIELDS, /* normal pages with unknown fields of every wire type */
  SERVE_HTML_200        /* a 200 text/html page */
};

struct srv {
  int total; /* items, in pages of 10 */
  enum mode mode;
  int fail_first; /* this many 503 problems first */
  int requests;
  bool accept_ok;   /* every request asked for application/x-protobuf */
  char accept[128]; /* the last request's Accept */
};

/* Item i: arbitrary bytes, NUL and 0xff included, of a length that varies. */
static size_t item_bytes(int i, uint8_t *out) {
  size_t n = (size_t)(i % 7) + 1;
  for (size_t k = 0; k < n; k++)
    out[k] = (uint8_t)(i * 31 + (int)k * 17);
  out[0] = 0;
  return n;
}

static void reply_page(wr_http_req *req, struct srv *s, int start) {
  Warren__V1__Page pg = WARREN__V1__PAGE__INIT;
  ProtobufCBinaryData items[10];
  uint8_t data[10][8];
  size_t n = 0;
  for (int i = start; i < start + 10 && i < s->total; i++, n++)
    items[n] = (ProtobufCBinaryData){.len = item_bytes(i, data[n]), .data = data[n]};
  pg.n_items = n;
  pg.items = items;
  char cursor[32] = "";
  if (start + 10 < s->total)
    snprintf(cursor, sizeof cursor, "c:%d", start + 10);
  pg.next_cursor = cursor;
  size_t len = warren__v1__page__get_packed_size(&pg);
  uint8_t *buf = malloc(len + 64);
  assert_non_null(buf);
  size_t at = 0;
  if (s->mode == SERVE_UNKNOWN_FIELDS) {
    /* before the known fields: 7 varint, 8 fixed64, 9 length-delimited, 10 fixed32 */
    static const uint8_t unk[] = {7 << 3 | 0, 0x96, 0x01, 8 << 3 | 1, 1, 2,   3,   4,   5,
                                  6,          7,    8,    9 << 3 | 2, 3, 'x', 'y', 'z', 10 << 3 | 5,
                                  1,          2,    3,    4};
    memcpy(buf, unk, sizeof unk);
    at = sizeof unk;
  }
  len = at + warren__v1__page__pack(&pg, buf + at);
  wr_http_reply_bytes(req, 200, "application/x-protobuf; charset=binary", buf, len);
  free(buf);
}

static void handler(wr_http_req *req, void *user) {
  struct srv *s = user;
  __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
  const char *acc = wr_http_req_header(req, "Accept");
  if (!acc || strcmp(acc, WR_SYNC_PROTOBUF_TYPE) != 0)
    s->accept_ok = false;
  snprintf(s->accept, sizeof s->accept, "%s", acc ? acc : "");
  if (s->fail_first > 0) {
    s->fail_first--;
    wr_http_reply_error(req, 503, "unavailable", "try later");
    return;
  }
  static const uint8_t truncated[] = {0x0a, 5, 'a', 'b'};
  static const uint8_t past_end[] = {0x0a, 1, 'a', 0x0a, 0x80, 0x01, 'b'};
  static const uint8_t items_varint[] = {0x08, 1};
  static const uint8_t group[] = {0x0a, 1, 'a', 3 << 3 | 3};
  static const uint8_t field0[] = {0x02, 1, 'a'};
  static const uint8_t big_field[] = {0x80, 0x80, 0x80, 0x80, 0x10, 1};
  static const uint8_t cursor_nul[] = {0x0a, 1, 'a', 0x12, 3, 'c', 0, 'd'};
  switch (s->mode) {
  case SERVE_TRUNCATED:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, truncated, sizeof truncated);
    return;
  case SERVE_LEN_PAST_END:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, past_end, sizeof past_end);
    return;
  case SERVE_ITEMS_VARINT:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, items_varint, sizeof items_varint);
    return;
  case SERVE_GROUP:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, group, sizeof group);
    return;
  case SERVE_FIELD0:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, field0, sizeof field0);
    return;
  case SERVE_BIG_FIELD:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, big_field, sizeof big_field);
    return;
  case SERVE_CURSOR_NUL:
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, cursor_nul, sizeof cursor_nul);
    return;
  case SERVE_JSON:
    wr_http_reply_json(req, 200, json_pack("{s:[],s:n}", "items", "next_cursor"));
    return;
  case SERVE_404:
    wr_http_reply_error(req, 404, "not_found", "no such collection");
    return;
  case SERVE_HTML_200:
    wr_http_reply_bytes(req, 200, "text/html", "<h1>hello</h1>", 14);
    return;
  case SERVE_HTML_503:
    s->mode = SERVE_OK;
    wr_http_reply_bytes(req, 503, "text/html", "<h1>busy</h1>", 13);
    return;
  case SERVE_OK:
  case SERVE_UNKNOWN_FIELDS:
    break;
  }
  const char *cur = wr_http_req_query(req, "cursor");
  if (cur && strncmp(cur, "c:", 2) != 0) {
    wr_http_reply_error(req, 400, "invalid_cursor", "bad cursor");
    return;
  }
  reply_page(req, s, cur ? atoi(cur + 2) : 0);
}

struct seen {
  int next;    /* the index of the next expected item */
  int stop_at; /* return 42 on the page holding this item (-1: never) */
  size_t calls;
};

static int check_items(const wr_sync_item *items, size_t n, void *user) {
  struct seen *sn = user;
  sn->calls++;
  for (size_t k = 0; k < n; k++) {
    uint8_t want[8];
    size_t wl = item_bytes(sn->next, want);
    assert_int_equal(items[k].len, wl);
    assert_memory_equal(items[k].data, want, wl);
    if (sn->next++ == sn->stop_at)
      return 42;
  }
  return 0;
}

typedef struct fixture {
  struct srv s;
  wr_http_server *srv;
  char url[128];
  wr_sync_pager p;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  static const wr_http_route routes[] = {{"GET", "/items", handler, 0}};
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = 1;
  o.user = &f->s;
  wr_err err;
  if (wr_http_server_start(&o, &f->srv, &err) != 0)
    return -1;
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/items?limit=10",
           wr_http_server_port(f->srv));
  f->p = (wr_sync_pager){.url = f->url, .timeout_ms = 5000, .retries = 3};
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  wr_http_server_stop(f->srv);
  free(f);
  return 0;
}

/* Resets the server to `mode` with `total` items and runs the binary pager. */
static int run(fixture *f, enum mode mode, int total, struct seen *sn, size_t *pages, size_t *items,
               wr_err *err) {
  f->s = (struct srv){.total = total, .mode = mode, .accept_ok = true};
  *sn = (struct seen){.stop_at = -1};
  return wr_sync_pages_protobuf(&f->p, check_items, sn, pages, items, err);
}

static void walks_all_pages(void **state) {
  fixture *f = *state;
  struct seen sn;
  size_t pages, items;
  wr_err err;
  assert_int_equal(run(f, SERVE_OK, 95, &sn, &pages, &items, &err), 0);
  assert_int_equal(sn.next, 95);
  assert_int_equal(pages, 10);
  assert_int_equal(items, 95);
  assert_int_equal(f->s.requests, 10);
  assert_true(f->s.accept_ok);
  /* an exact multiple: the last page is full and carries no cursor */
  assert_int_equal(run(f, SERVE_OK, 30, &sn, &pages, &items, &err), 0);
  assert_int_equal(pages, 3);
  assert_int_equal(items, 30);
  /* an empty collection: one page without items */
  assert_int_equal(run(f, SERVE_OK, 0, &sn, &pages, &items, &err), 0);
  assert_int_equal(pages, 1);
  assert_int_equal(items, 0);
  assert_int_equal(sn.calls, 1);
  /* unknown fields of every wire type are skipped */
  assert_int_equal(run(f, SERVE_UNKNOWN_FIELDS, 25, &sn, &pages, &items, &err), 0);
  assert_int_equal(sn.next, 25);
  assert_int_equal(pages, 3);
}

static void retries_and_stops(void **state) {
  fixture *f = *state;
  struct seen sn;
  size_t pages, items;
  wr_err err;
  f->s = (struct srv){.total = 35, .fail_first = 2, .accept_ok = true};
  sn = (struct seen){.stop_at = -1};
  assert_int_equal(wr_sync_pages_protobuf(&f->p, check_items, &sn, &pages, &items, &err), 0);
  assert_int_equal(items, 35);
  assert_int_equal(f->s.requests, 6); /* 2 transient failures retried */
  /* retries exhausted: the problem's status and message */
  f->s = (struct srv){.total = 35, .fail_first = 10, .accept_ok = true};
  f->p.retries = 1;
  assert_int_equal(wr_sync_pages_protobuf(&f->p, check_items, &sn, NULL, NULL, &err), WR_EHTTP);
  assert_non_null(strstr(err.msg, "503"));
  assert_non_null(strstr(err.msg, "try later"));
  assert_int_equal(f->s.requests, 2);
  f->p.retries = 3;
  /* the page function's value stops the paging and is returned */
  f->s = (struct srv){.total = 95, .accept_ok = true};
  sn = (struct seen){.stop_at = 23};
  assert_int_equal(wr_sync_pages_protobuf(&f->p, check_items, &sn, &pages, &items, &err), 42);
  assert_int_equal(f->s.requests, 3);
  assert_int_equal(pages, 2); /* delivered before the one that stopped */
  /* the caller cannot choose the Accept header of binary pages */
  const char *hs[] = {"X-Trace: 1", "accept: application/json", NULL};
  f->p.headers = hs;
  assert_int_equal(wr_sync_pages_protobuf(&f->p, check_items, &sn, NULL, NULL, &err), WR_EINVAL);
  /* other headers are sent along */
  const char *hs2[] = {"X-Trace: 1", NULL};
  f->p.headers = hs2;
  assert_int_equal(run(f, SERVE_OK, 12, &sn, &pages, &items, &err), 0);
  assert_int_equal(items, 12);
  f->p.headers = NULL;
  /* no page function, no URL */
  assert_int_equal(wr_sync_pages_protobuf(&f->p, NULL, NULL, NULL, NULL, &err), WR_EINVAL);
  wr_sync_pager none = {0};
  assert_int_equal(wr_sync_pages_protobuf(&none, check_items, &sn, NULL, NULL, &err), WR_EINVAL);
}

static void malformed_pages_fail_at_once(void **state) {
  fixture *f = *state;
  struct seen sn;
  size_t pages, items;
  wr_err err;
  static const struct {
    enum mode mode;
    const char *msg;
  } bad[] = {
      {SERVE_TRUNCATED, "runs past the end"},
      {SERVE_LEN_PAST_END, "runs past the end"},
      {SERVE_ITEMS_VARINT, "field 1 with wire type 0"},
      {SERVE_GROUP, "wire type 3"},
      {SERVE_FIELD0, "field number 0 "},
      {SERVE_BIG_FIELD, "field number 536870912"},
      {SERVE_CURSOR_NUL, "NUL"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    assert_int_equal(run(f, bad[k].mode, 10, &sn, &pages, &items, &err), WR_EDECODE);
    if (!strstr(err.msg, bad[k].msg))
      fail_msg("case %zu: \"%s\" lacks \"%s\"", k, err.msg, bad[k].msg);
    assert_int_equal(f->s.requests, 1); /* never retried */
    assert_int_equal(sn.calls, 0);      /* nothing delivered from a bad page */
    assert_int_equal(pages, 0);
  }
}

static void wrong_type_size_and_status(void **state) {
  fixture *f = *state;
  struct seen sn;
  size_t pages, items;
  wr_err err;
  /* a server that answers JSON whatever the Accept: a clear error, not a parse attempt */
  assert_int_equal(run(f, SERVE_JSON, 10, &sn, &pages, &items, &err), WR_EHTTP);
  assert_non_null(strstr(err.msg, "application/json"));
  assert_non_null(strstr(err.msg, "expected application/x-protobuf"));
  assert_int_equal(f->s.requests, 1);
  /* a 4xx problem: at once, with its message */
  assert_int_equal(run(f, SERVE_404, 10, &sn, &pages, &items, &err), WR_EHTTP);
  assert_non_null(strstr(err.msg, "404"));
  assert_non_null(strstr(err.msg, "no such collection"));
  assert_int_equal(f->s.requests, 1);
  /* a page over the limit: WR_ETOOBIG, not retried */
  f->p.max_page_bytes = 32;
  assert_int_equal(run(f, SERVE_OK, 95, &sn, &pages, &items, &err), WR_ETOOBIG);
  assert_non_null(strstr(err.msg, "32 bytes"));
  assert_int_equal(f->s.requests, 1);
  f->p.max_page_bytes = 0;
  /* a 503 whose body is not JSON (an HTML error page) is transient like any 5xx */
  assert_int_equal(run(f, SERVE_HTML_503, 15, &sn, &pages, &items, &err), 0);
  assert_int_equal(items, 15);
  assert_int_equal(f->s.requests, 3);
}

static int json_count(json_t *items, void *user) {
  *(size_t *)user += json_array_size(items);
  return 0;
}

static void json_mode_limits(void **state) {
  fixture *f = *state;
  wr_err err;
  size_t n = 0;
  f->s = (struct srv){.total = 0, .mode = SERVE_JSON, .accept_ok = true};
  f->p.max_page_bytes = 10; /* the JSON page is 31 bytes */
  assert_int_equal(wr_sync_pages(&f->p, json_count, &n, NULL, NULL, &err), WR_ETOOBIG);
  assert_int_equal(f->s.requests, 1);
  f->p.max_page_bytes = 0;
  assert_int_equal(wr_sync_pages(&f->p, json_count, &n, NULL, NULL, &err), 0);
  /* the JSON mode sends Accept: application/json */
  assert_false(f->s.accept_ok);
}

static int json_pages(json_t *items, void *user) {
  struct seen *sn = user;
  sn->calls += 1000; /* told apart from binary pages */
  sn->next += (int)json_array_size(items);
  return 0;
}

/* Binary preferred, JSON taken: each page goes to the function of its form. */
static void either_form(void **state) {
  fixture *f = *state;
  struct seen sn = {.stop_at = -1};
  size_t pages, items;
  wr_err err;
  f->s = (struct srv){.total = 25, .mode = SERVE_OK};
  assert_int_equal(
      wr_sync_pages_prefer_protobuf(&f->p, check_items, json_pages, &sn, &pages, &items, &err), 0);
  assert_string_equal(f->s.accept, "application/x-protobuf, application/json;q=0.5");
  assert_int_equal(items, 25);
  assert_int_equal(sn.calls, 3); /* binary pages only */
  /* a server that only answers JSON: its pages go to the JSON function */
  f->s = (struct srv){.total = 25, .mode = SERVE_JSON};
  sn = (struct seen){.stop_at = -1};
  assert_int_equal(
      wr_sync_pages_prefer_protobuf(&f->p, check_items, json_pages, &sn, &pages, &items, &err), 0);
  assert_int_equal(sn.calls, 1000);
  assert_int_equal(pages, 1);
  /* anything else is refused, naming what came */
  f->s = (struct srv){.total = 25, .mode = SERVE_HTML_200};
  assert_int_equal(
      wr_sync_pages_prefer_protobuf(&f->p, check_items, json_pages, &sn, &pages, &items, &err),
      WR_EHTTP);
  assert_non_null(strstr(err.msg, "\"text/html\", expected application/x-protobuf or "
                                  "application/json"));
  assert_int_equal(f->s.requests, 1);
  /* the binary-only mode refuses it too */
  assert_int_equal(run(f, SERVE_HTML_200, 10, &sn, &pages, &items, &err), WR_EHTTP);
  /* both functions are required */
  assert_int_equal(wr_sync_pages_prefer_protobuf(&f->p, check_items, NULL, &sn, NULL, NULL, &err),
                   WR_EINVAL);
  assert_int_equal(wr_sync_pages_prefer_protobuf(&f->p, NULL, json_pages, &sn, NULL, NULL, &err),
                   WR_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(walks_all_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(retries_and_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(malformed_pages_fail_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(wrong_type_size_and_status, setup, teardown),
      cmocka_unit_test_setup_teardown(json_mode_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(either_form, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
