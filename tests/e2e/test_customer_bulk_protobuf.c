// warren-test: link=warren_devkit,warren_schemas timeout=600
/* The customer service's bulk endpoint in binary (docs/SERVICES.md): GET /customers
 * with Accept: application/x-protobuf answers warren.v1.Page bodies whose items are
 * customer.v1.Customer messages, through the runtime's binary pager as the order
 * service uses it:
 * - the binary walk lists exactly what the JSON walk lists (both through the runtime's
 *   pager), item for item, in the same order and the same number of pages: ids, names
 *   that JSON must escape (quote, backslash, control characters, non-ASCII), e-mails,
 *   every status including tombstones, versions, both timestamps to the microsecond;
 * - ?ids= in binary: known ones, tombstones included, unknown ones absent, no cursor;
 * - content negotiation: binary only when asked for with a q above 0 and at least that
 *   of JSON; no Accept, * / *, application/json or q=0 get the unchanged JSON; every
 *   page reply says Vary: Accept;
 * - errors stay JSON problems whatever the Accept (bad cursor, unknown parameter, bad
 *   limit). */
#include "e2e.h"

#include <warren/sync.h>

#include "customer/v1/customer.pb-c.h"
#include "warren/v1/page.pb-c.h"

#define N 2345

static int setup(void **state) {
  return e2e_setup_state(state, "bulk_protobuf");
}

/* N customers by SQL: every 100th name full of what JSON must escape, every 50th
 * deleted, the others spread over the statuses and versions. */
static e2e *start(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, NULL);
  e2e_sql(e->customer_db,
          "INSERT INTO customers SELECT '0190ca7c-0000-7000-8000-' || lpad(i::text, 12, '0'),"
          " CASE WHEN i %% 100 = 5 THEN 'Zoë \"q\" ' || chr(92) || chr(9) || chr(10) ||"
          " chr(1) || ' 東京 🚀 ' || i ELSE 'Customer ' || i END,"
          " 'c' || i || '@bulk.example.com',"
          " CASE WHEN i %% 50 = 7 THEN 'deleted' WHEN i %% 10 = 3 THEN 'suspended'"
          " WHEN i %% 10 = 4 THEN 'pending' ELSE 'active' END, 1 + i %% 5,"
          " clock_timestamp() - interval '1 day', clock_timestamp()"
          " FROM generate_series(0, %d) AS i",
          N - 1);
  return e;
}

static const char *status_name(Customer__V1__CustomerStatus s) {
  switch (s) {
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE:
    return "active";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING:
    return "pending";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED:
    return "suspended";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED:
    return "deleted";
  default:
    return "?";
  }
}

/* A decoded item as the JSON form renders it. */
static json_t *as_json(const uint8_t *data, size_t len) {
  Customer__V1__Customer *c = customer__v1__customer__unpack(NULL, len, data);
  if (!c)
    fail_msg("an item of %zu bytes is not a customer.v1.Customer", len);
  assert_non_null(c->created_at);
  assert_non_null(c->updated_at);
  char created[WR_RFC3339_STRLEN], updated[WR_RFC3339_STRLEN];
  wr_rfc3339_format(c->created_at->seconds, c->created_at->nanos, created);
  wr_rfc3339_format(c->updated_at->seconds, c->updated_at->nanos, updated);
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id", c->id, "name", c->name, "email",
                        c->email, "status", status_name(c->status), "version",
                        (json_int_t)c->version, "created_at", created, "updated_at", updated);
  customer__v1__customer__free_unpacked(c, NULL);
  return j;
}

static int collect_binary(const wr_sync_item *items, size_t n, void *user) {
  for (size_t i = 0; i < n; i++)
    json_array_append_new(user, as_json(items[i].data, items[i].len));
  return 0;
}

static int collect_json(json_t *items, void *user) {
  json_array_extend(user, items);
  return 0;
}

static void same_items_both_ways(void **state) {
  e2e *e = start(state);
  char url[256];
  snprintf(url, sizeof url, "%s/customers?limit=1000", e->customer.url);
  wr_sync_pager p = {.url = url, .timeout_ms = 30000};
  json_t *bin = json_array(), *txt = json_array();
  size_t bin_pages, bin_items, txt_pages, txt_items;
  wr_err err = {0};
  if (wr_sync_pages_protobuf(&p, collect_binary, bin, &bin_pages, &bin_items, &err) != 0)
    fail_msg("binary walk: %s", err.msg);
  if (wr_sync_pages(&p, collect_json, txt, &txt_pages, &txt_items, &err) != 0)
    fail_msg("JSON walk: %s", err.msg);
  assert_int_equal(bin_items, N);
  assert_int_equal(txt_items, N);
  assert_int_equal(bin_pages, txt_pages);
  assert_int_equal(bin_pages, 3);
  int deleted = 0, escaped = 0;
  for (size_t i = 0; i < N; i++) {
    json_t *b = json_array_get(bin, i), *t = json_array_get(txt, i);
    if (!json_equal(b, t)) {
      char *bs = json_dumps(b, 0), *ts = json_dumps(t, 0);
      fail_msg("item %zu differs:\n binary %s\n JSON   %s", i, bs, ts);
    }
    deleted += strcmp(e2e_str(b, "status"), "deleted") == 0;
    escaped += strstr(e2e_str(b, "name"), "東京") != NULL;
  }
  assert_int_equal(deleted, N / 50 + (N % 50 > 7));
  assert_int_equal(escaped, N / 100 + (N % 100 > 5));
  json_decref(bin);
  json_decref(txt);

  /* a page on the wire: type, Vary, a cursor, and again with limit 1 */
  const char *hs[] = {"Accept: " WR_SYNC_PROTOBUF_TYPE, NULL};
  e2e_resp r = e2e_raw("GET", e->customer.url, "/customers?limit=1", NULL, 0, NULL, hs);
  E2E_EXPECT(r, 200, NULL);
  char v[128];
  assert_string_equal(e2e_header(&r, "Content-Type", v, sizeof v), WR_SYNC_PROTOBUF_TYPE);
  assert_string_equal(e2e_header(&r, "Vary", v, sizeof v), "Accept");
  Warren__V1__Page *pg = warren__v1__page__unpack(NULL, r.len, (const uint8_t *)r.body);
  assert_non_null(pg);
  assert_int_equal(pg->n_items, 1);
  assert_true(strlen(pg->next_cursor) > 0);
  warren__v1__page__free_unpacked(pg, NULL);
  e2e_resp_free(&r);
}

static void by_ids_binary(void **state) {
  e2e *e = start(state);
  const char *hs[] = {"Accept: " WR_SYNC_PROTOBUF_TYPE, NULL};
  /* ids 7 (deleted) and 8, one unknown */
  e2e_resp r = e2e_raw("GET", e->customer.url,
                       "/customers?ids=0190ca7c-0000-7000-8000-000000000007,"
                       "0190ca7c-0000-7000-8000-000000000008,0190a000-0000-7000-8000-00000000ffff",
                       NULL, 0, NULL, hs);
  E2E_EXPECT(r, 200, NULL);
  Warren__V1__Page *pg = warren__v1__page__unpack(NULL, r.len, (const uint8_t *)r.body);
  assert_non_null(pg);
  assert_int_equal(pg->n_items, 2);
  assert_string_equal(pg->next_cursor, "");
  int deleted = 0;
  for (size_t i = 0; i < pg->n_items; i++) {
    json_t *j = as_json(pg->items[i].data, pg->items[i].len);
    deleted += strcmp(e2e_str(j, "status"), "deleted") == 0;
    json_decref(j);
  }
  assert_int_equal(deleted, 1);
  warren__v1__page__free_unpacked(pg, NULL);
  e2e_resp_free(&r);
}

static void negotiation_and_errors(void **state) {
  e2e *e = start(state);
  static const struct {
    const char *accept; /* NULL: no Accept header */
    bool binary;
  } cases[] = {
      {NULL, false},
      {"application/json", false},
      {"*/*", false},
      {"text/html", false},
      {"application/x-protobuf", true},
      {"APPLICATION/X-PROTOBUF", true},
      {"application/json;q=0.5, application/x-protobuf", true},
      {"application/x-protobuf;q=0.9, application/json", false},
      {"application/x-protobuf; q=0", false},
      {"application/x-protobuf;q=0.000", false},
      {"application/x-protobuf;q=0.001", true},
      {"application/json, application/x-protobuf", true},
      {"text/plain, application/x-protobuf ; charset=x ; q=1", true},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char h[200];
    snprintf(h, sizeof h, "Accept: %s", cases[k].accept ? cases[k].accept : "");
    const char *hs[] = {h, NULL};
    e2e_resp r = e2e_raw("GET", e->customer.url, "/customers?limit=3", NULL, 0, NULL,
                         cases[k].accept ? hs : NULL);
    E2E_EXPECT(r, 200, NULL);
    char ct[128], vary[64];
    e2e_header(&r, "Content-Type", ct, sizeof ct);
    const char *want = cases[k].binary ? WR_SYNC_PROTOBUF_TYPE : "application/json";
    if (strcmp(ct, want) != 0)
      fail_msg("Accept \"%s\": Content-Type %s, expected %s", cases[k].accept, ct, want);
    assert_string_equal(e2e_header(&r, "Vary", vary, sizeof vary), "Accept");
    if (cases[k].binary) {
      Warren__V1__Page *pg = warren__v1__page__unpack(NULL, r.len, (const uint8_t *)r.body);
      assert_non_null(pg);
      assert_int_equal(pg->n_items, 3);
      warren__v1__page__free_unpacked(pg, NULL);
    } else {
      assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
    }
    e2e_resp_free(&r);
  }
  /* errors are JSON problems whatever the Accept */
  static const struct {
    const char *path, *code;
  } bad[] = {
      {"/customers?cursor=not-a-cursor", "invalid_cursor"},
      {"/customers?limit=0", "invalid_parameter"},
      {"/customers?colour=red", "invalid_parameter"},
      {"/customers?ids=a,,b", "invalid_parameter"},
  };
  const char *hs[] = {"Accept: " WR_SYNC_PROTOBUF_TYPE, NULL};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    e2e_resp r = e2e_raw("GET", e->customer.url, bad[k].path, NULL, 0, NULL, hs);
    E2E_EXPECT(r, 400, bad[k].code);
    char ct[128];
    assert_string_equal(e2e_header(&r, "Content-Type", ct, sizeof ct), "application/json");
    e2e_resp_free(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(same_items_both_ways, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(by_ids_binary, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(negotiation_and_errors, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
