// warren-test: link=warren_devkit,warren_schemas timeout=600
/* The order service's catch-up against a bulk endpoint that serves bad binary pages:
 * a real order-service process whose customer service is an HTTP server of the
 * runtime in this test, serving warren.v1.Page bodies of customer.v1.Customer items
 * packed with the generated code. Each kind of bad input stops the catch-up with its
 * own clear error in the log (and the service stays not ready, retrying), and nothing
 * of a bad page reaches the view:
 * - an item that is not a customer.v1.Customer;
 * - an item that decodes but holds invalid values (status unspecified, version 0,
 *   no updated_at, an empty id);
 * - a page that is not a well-formed protobuf message;
 * - an item of a JSON page with invalid values;
 * - a 200 page that is neither binary nor JSON (text/html);
 * - a problem reply (403).
 * Then the endpoint serves good pages and the same process finishes its catch-up on
 * its next retry: every customer in the view with its content, ready. A customer
 * service that answers JSON pages only (an older one) is loaded from them all the
 * same, with a warning in the log. */
#include "e2e.h"

#include <warren/http.h>
#include <warren/sync.h>

#include "customer/v1/customer.pb-c.h"
#include "warren/v1/page.pb-c.h"

#define N 60 /* customers, in pages of 25 */

enum mode {
  GOOD,
  BAD_ITEM,
  BAD_STATUS,
  BAD_VERSION,
  NO_UPDATED_AT,
  EMPTY_ID,
  BAD_PAGE,
  BAD_JSON_ITEM, /* a JSON page whose third item has an unknown status */
  HTML_PAGE,     /* a 200 text/html page */
  FORBIDDEN,
  GOOD_JSON /* the customers as JSON pages (a customer service without binary pages) */
};

struct fake {
  volatile int mode;
  int requests;
};

/* Customer i, packed, into out (at least 256 bytes); its length. The page's third item
 * carries the fault of the bad modes. */
static size_t customer_bytes(int i, enum mode mode, uint8_t *out) {
  char id[40], name[40], email[40];
  snprintf(id, sizeof id, "0190ca7c-0000-7000-8000-%012d", i);
  snprintf(name, sizeof name, "Fake %d \"q\" \xe6\x9d\xb1", i);
  snprintf(email, sizeof email, "f%d@fake.example.com", i);
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                              updated = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  created.seconds = 1795900000 + i;
  updated.seconds = 1795900000 + i;
  updated.nanos = 123456000;
  Customer__V1__Customer c = CUSTOMER__V1__CUSTOMER__INIT;
  c.id = id;
  c.name = name;
  c.email = email;
  c.status = i % 9 == 4 ? CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED
                        : CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  c.version = 1 + (uint64_t)(i % 4);
  c.created_at = &created;
  c.updated_at = &updated;
  bool faulty = i == 2;
  if (faulty && mode == BAD_ITEM) {
    static const uint8_t junk[] = {0x0a, 0x7f, 'x'}; /* id longer than the item */
    memcpy(out, junk, sizeof junk);
    return sizeof junk;
  }
  if (faulty && mode == BAD_STATUS)
    c.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_UNSPECIFIED;
  if (faulty && mode == BAD_VERSION)
    c.version = 0;
  if (faulty && mode == NO_UPDATED_AT)
    c.updated_at = NULL;
  if (faulty && mode == EMPTY_ID)
    c.id = (char *)"";
  return customer__v1__customer__pack(&c, out);
}

/* A packed customer as the JSON form of the bulk API renders it. */
static json_t *customer_json(const uint8_t *data, size_t len) {
  Customer__V1__Customer *c = customer__v1__customer__unpack(NULL, len, data);
  assert_non_null(c);
  char created[WR_RFC3339_STRLEN], updated[WR_RFC3339_STRLEN];
  wr_rfc3339_format(c->created_at->seconds, c->created_at->nanos, created);
  wr_rfc3339_format(c->updated_at->seconds, c->updated_at->nanos, updated);
  json_t *j = json_pack(
      "{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id", c->id, "name", c->name, "email", c->email, "status",
      c->status == CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED ? "deleted" : "active",
      "version", (json_int_t)c->version, "created_at", created, "updated_at", updated);
  customer__v1__customer__free_unpacked(c, NULL);
  return j;
}

static void fake_customers(wr_http_req *req, void *user) {
  struct fake *f = user;
  __atomic_add_fetch(&f->requests, 1, __ATOMIC_SEQ_CST);
  enum mode mode = (enum mode)f->mode;
  const char *acc = wr_http_req_header(req, "Accept");
  if (!acc || strcmp(acc, WR_SYNC_PROTOBUF_TYPE ", application/json;q=0.5") != 0) {
    wr_http_reply_error(req, 406, "not_acceptable", "expected binary pages first, JSON second");
    return;
  }
  if (mode == FORBIDDEN) {
    wr_http_reply_error(req, 403, "forbidden", "catch-up not allowed for this client");
    return;
  }
  if (mode == HTML_PAGE) {
    wr_http_reply_bytes(req, 200, "text/html", "<p>maintenance</p>", 18);
    return;
  }
  if (mode == BAD_PAGE) {
    static const uint8_t bad[] = {0x0a, 0x02, 0x08}; /* an item cut short */
    wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, bad, sizeof bad);
    return;
  }
  const char *cur = wr_http_req_query(req, "cursor");
  int start = cur ? atoi(cur) : 0;
  uint8_t data[25][256];
  ProtobufCBinaryData items[25];
  size_t n = 0;
  for (int i = start; i < start + 25 && i < N; i++, n++)
    items[n] = (ProtobufCBinaryData){.len = customer_bytes(i, mode, data[n]), .data = data[n]};
  char next[16] = "";
  if (start + 25 < N)
    snprintf(next, sizeof next, "%d", start + 25);
  if (mode == GOOD_JSON || mode == BAD_JSON_ITEM) {
    json_t *arr = json_array();
    for (size_t k = 0; k < n; k++) {
      json_t *j = customer_json(items[k].data, items[k].len);
      if (mode == BAD_JSON_ITEM && start + (int)k == 2)
        json_object_set_new(j, "status", json_string("frozen"));
      json_array_append_new(arr, j);
    }
    wr_http_reply_json(req, 200,
                       json_pack("{s:o,s:o}", "items", arr, "next_cursor",
                                 next[0] ? json_string(next) : json_null()));
    return;
  }
  Warren__V1__Page pg = WARREN__V1__PAGE__INIT;
  pg.n_items = n;
  pg.items = items;
  pg.next_cursor = next;
  size_t len = warren__v1__page__get_packed_size(&pg);
  uint8_t *buf = malloc(len);
  assert_non_null(buf);
  warren__v1__page__pack(&pg, buf);
  wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, buf, len);
  free(buf);
}

/* Whether the log holds `text` after byte `from`; *end = the log's size. */
static bool log_has(const char *path, long from, const char *text, long *end) {
  FILE *fp = fopen(path, "r");
  if (!fp)
    return false;
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  if (end)
    *end = size;
  bool found = false;
  if (size > from) {
    char *buf = malloc((size_t)(size - from) + 1);
    fseek(fp, from, SEEK_SET);
    size_t got = fread(buf, 1, (size_t)(size - from), fp);
    buf[got] = '\0';
    found = strstr(buf, text) != NULL;
    free(buf);
  }
  fclose(fp);
  return found;
}

/* Waits for a "catch-up failed (...)" warning starting with `text` after byte *from
 * of the log, then moves *from past it. Each case's text is its own, so a failure of
 * the previous case logged after the switch does not count. */
static void wait_failure(const dk_proc *p, long *from, const char *text) {
  char want[256];
  snprintf(want, sizeof want, "catch-up failed (%s", text);
  for (int64_t end = wt_now_ms() + 60000;;) {
    long size;
    if (log_has(p->log_path, *from, want, &size)) {
      *from = size;
      return;
    }
    if (wt_now_ms() > end) {
      dk_tail(p->log_path, 20);
      fail_msg("no \"%s\" in the order service's log within 60 s", want);
    }
    usleep(50000);
  }
}

/* Every customer of the fake in the view, as served. */
static void assert_view_as_served(e2e *e) {
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view"), N);
  for (int i = 0; i < N; i++) {
    uint8_t buf[256];
    size_t len = customer_bytes(i, GOOD, buf);
    Customer__V1__Customer *c = customer__v1__customer__unpack(NULL, len, buf);
    assert_non_null(c);
    bool deleted = c->status == CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED;
    /* a tombstone of a customer the view did not know keeps no content */
    long long row = e2e_scalar(
        e->order_db,
        "SELECT count(*) FROM customer_view WHERE id = '%s' AND version = %llu AND status = '%s'"
        " AND name = '%s' AND email = '%s' AND extract(epoch FROM source_updated_at) = "
        "%lld.123456",
        c->id, (unsigned long long)c->version, deleted ? "deleted" : "active",
        deleted ? "" : c->name, deleted ? "" : c->email, (long long)c->updated_at->seconds);
    if (row != 1)
      fail_msg("customer %d is not in the view as served", i);
    customer__v1__customer__free_unpacked(c, NULL);
  }
}

static void bad_pages_then_good(void **state) {
  e2e *e = *state;
  struct fake f = {.mode = BAD_ITEM};
  static const wr_http_route routes[] = {{"GET", "/customers", fake_customers, 0}};
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = 1;
  o.user = &f;
  wr_http_server *srv;
  wr_err err;
  assert_int_equal(wr_http_server_start(&o, &srv, &err), 0);
  /* the order service's customer service is the fake */
  snprintf(e->customer.url, sizeof e->customer.url, "http://127.0.0.1:%u",
           wr_http_server_port(srv));
  e2e_start(e, &e->order, "order", NULL, false);
  long from = 0;
  static const struct {
    enum mode mode;
    const char *error; /* the start of the logged reason */
  } cases[] = {
      {BAD_ITEM, "bulk item 2 of page 1 (3 bytes) is not a customer.v1.Customer"},
      {BAD_STATUS, "bulk item 2 of page 1 (id \"0190ca7c-0000-7000-8000-000000000002\"): status 0"},
      {BAD_VERSION,
       "bulk item 2 of page 1 (id \"0190ca7c-0000-7000-8000-000000000002\"): version 0"},
      {NO_UPDATED_AT,
       "bulk item 2 of page 1 (id \"0190ca7c-0000-7000-8000-000000000002\"): no updated_at"},
      {EMPTY_ID, "bulk item 2 of page 1 (id \"\"): id of 0 bytes"},
      {BAD_PAGE, "binary page: length of field 1 at byte 0 runs past the end"},
      {BAD_JSON_ITEM,
       "bulk item 2 of page 1 (id \"0190ca7c-0000-7000-8000-000000000002\"): invalid values"},
      {HTML_PAGE, "page with Content-Type \"text/html\", expected application/x-protobuf or "
                  "application/json"},
      {FORBIDDEN, "GET page: HTTP 403: catch-up not allowed for this client"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    f.mode = cases[k].mode;
    wait_failure(&e->order, &from, cases[k].error);
    /* not ready while it cannot load; nothing of a bad page was written */
    e2e_resp r = e2e_json("GET", e->order.url, "/readyz", NULL, NULL);
    assert_int_not_equal(r.status, 200);
    e2e_resp_free(&r);
    assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view"), 0);
  }
  /* good pages: the next retry loads everything */
  f.mode = GOOD;
  wr_err werr = {0};
  if (dk_wait_ready(&e->order, 120000, &werr) != 0) {
    dk_tail(e->order.log_path, 30);
    fail_msg("%s", werr.msg);
  }
  assert_view_as_served(e);
  e2e_stop(&e->order);
  wr_http_server_stop(srv);
}

/* A customer service that answers JSON pages only: loaded all the same, with a
 * warning that says so. */
static void json_pages_loaded(void **state) {
  e2e *e = *state;
  struct fake f = {.mode = GOOD_JSON};
  static const wr_http_route routes[] = {{"GET", "/customers", fake_customers, 0}};
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = 1;
  o.user = &f;
  wr_http_server *srv;
  wr_err err;
  assert_int_equal(wr_http_server_start(&o, &srv, &err), 0);
  snprintf(e->customer.url, sizeof e->customer.url, "http://127.0.0.1:%u",
           wr_http_server_port(srv));
  e2e_start(e, &e->order, "order", NULL, true);
  assert_view_as_served(e);
  assert_true(log_has(e->order.log_path, 0, "answers JSON pages, not binary ones", NULL));
  assert_int_equal(f.requests, 3);
  e2e_stop(&e->order);
  wr_http_server_stop(srv);
}

static int setup(void **state) {
  return e2e_setup_state(state, "catchup_bad");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(bad_pages_then_good, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(json_pages_loaded, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
