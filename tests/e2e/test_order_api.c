// warren-test: link=warren_devkit,warren_schemas timeout=600
/* The order service's REST API against a running customer service: the local view
 * (GET /customers/{id}: live, tombstone, never seen), POST /orders (201 and the
 * OrderPlaced event with the request's correlation id; 422 customer_unknown,
 * customer_inactive for pending/suspended/deleted customers; every validation 422;
 * transport errors), GET /orders/{id}, POST /admin/reconcile (403/401/422/200),
 * /healthz, /readyz and /metrics. */
#include "e2e.h"

#define TAP "e2e.tap.order"

static const char *const TOKEN_ENV[] = {"WARREN_ADMIN_TOKEN=" E2E_TOKEN, NULL};

static int setup(void **state) {
  return e2e_setup_state(state, "order_api");
}

static e2e *start(void **state) {
  e2e *e = *state;
  e2e_tap(e, TAP, ORDER_V1_EXCHANGE);
  e2e_start_customer(e, TOKEN_ENV);
  e2e_start_order(e, TOKEN_ENV);
  return e;
}

static e2e_resp order(e2e *e, const char *customer_id, long long amount, const char *currency,
                      const char *const *headers) {
  return e2e_json("POST", e->order.url, "/orders",
                  json_pack("{s:s,s:I,s:s}", "customer_id", customer_id, "amount_cents",
                            (json_int_t)amount, "currency", currency),
                  headers);
}

/* ---- the view ----------------------------------------------------------------------- */

static void customer_view(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "Ada", "ada@example.org", "pending");
  const char *id = e2e_str(c, "id");
  e2e_wait_view(e, id, 1, "pending", 30000);
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", id);
  e2e_resp r = e2e_json("GET", e->order.url, path, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_object_size(r.json), 6);
  assert_string_equal(e2e_str(r.json, "id"), id);
  assert_string_equal(e2e_str(r.json, "name"), "Ada");
  assert_string_equal(e2e_str(r.json, "email"), "ada@example.org");
  assert_string_equal(e2e_str(r.json, "status"), "pending");
  assert_int_equal(e2e_int(r.json, "version"), 1);
  int64_t s;
  int32_t ns;
  assert_int_equal(wr_rfc3339_parse(e2e_str(r.json, "synced_at"), &s, &ns), 0);
  e2e_resp_free(&r);

  /* update and delete reach the view; the tombstone is shown */
  r = e2e_json("PATCH", e->customer.url, path, json_pack("{s:s}", "name", "Ada L."), NULL);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
  e2e_wait_view(e, id, 2, "pending", 30000);
  r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);
  e2e_wait_view(e, id, 3, "deleted", 30000);
  r = e2e_json("GET", e->order.url, path, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_string_equal(e2e_str(r.json, "status"), "deleted");
  e2e_resp_free(&r);

  r = e2e_json("GET", e->order.url, "/customers/0190a000-0000-7000-8000-00000000f00d", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->order.url, "/customers/%ff", NULL, NULL);
  E2E_EXPECT(r, 400, "bad_request");
  e2e_resp_free(&r);
  /* the order service has no customer list or write API */
  r = e2e_json("GET", e->order.url, "/customers", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("PATCH", e->order.url, path, json_object(), NULL);
  E2E_EXPECT(r, 405, "method_not_allowed");
  e2e_resp_free(&r);
  json_decref(c);
}

/* ---- orders ------------------------------------------------------------------------- */

static void place_and_read_orders(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "Buyer", "buyer@example.org", NULL);
  const char *id = e2e_str(c, "id");
  e2e_wait_view(e, id, 1, "active", 30000);

  const char *h[] = {"X-Correlation-Id: e2e-order-1", NULL};
  e2e_resp r = order(e, id, 4200, "EUR", h);
  E2E_EXPECT(r, 201, NULL);
  char v[256];
  assert_string_equal(e2e_header(&r, "X-Correlation-Id", v, sizeof v), "e2e-order-1");
  json_t *o = json_incref(r.json);
  const char *oid = e2e_str(o, "id");
  assert_true(wr_uuid_valid(oid));
  char path[128];
  snprintf(path, sizeof path, "/orders/%s", oid);
  assert_string_equal(e2e_header(&r, "Location", v, sizeof v), path);
  assert_string_equal(e2e_str(o, "customer_id"), id);
  assert_int_equal(e2e_int(o, "amount_cents"), 4200);
  assert_string_equal(e2e_str(o, "currency"), "EUR");
  assert_string_equal(e2e_str(o, "status"), "placed");
  int64_t s;
  int32_t ns;
  assert_int_equal(wr_rfc3339_parse(e2e_str(o, "created_at"), &s, &ns), 0);
  e2e_resp_free(&r);

  r = e2e_json("GET", e->order.url, path, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_true(json_equal(r.json, o));
  e2e_resp_free(&r);
  r = e2e_json("GET", e->order.url, "/orders/0190a000-0000-7000-8000-00000000cafe", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);

  /* OrderPlaced through the order service's outbox, with the request's correlation */
  e2e_event ev;
  assert_true(e2e_next_event(e, TAP, 30000, &ev));
  assert_string_equal(ev.type, ORDER_V1_ORDER_PLACED_TYPE);
  assert_string_equal(ev.meta->aggregate_type, "order");
  assert_string_equal(ev.meta->aggregate_id, oid);
  assert_int_equal(ev.meta->version, 1);
  assert_string_equal(ev.meta->correlation_id, "e2e-order-1");
  assert_string_equal(ev.meta->source_service, "order");
  Order__V1__OrderPlaced *op = (Order__V1__OrderPlaced *)ev.msg;
  assert_string_equal(op->data->id, oid);
  assert_string_equal(op->data->customer_id, id);
  assert_int_equal(op->data->amount_cents, 4200);
  assert_string_equal(op->data->currency, "EUR");
  assert_int_equal(op->data->status, ORDER__V1__ORDER_STATUS__ORDER_STATUS_PLACED);
  e2e_event_free(&ev);

  /* the largest amount accepted */
  r = order(e, id, 1000000000000LL, "JPY", NULL);
  E2E_EXPECT(r, 201, NULL);
  e2e_resp_free(&r);
  assert_true(e2e_next_event(e, TAP, 30000, &ev));
  e2e_event_free(&ev);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM orders"), 2);
  json_decref(o);
  json_decref(c);
}

/* Orders are checked against the local view only: unknown customers, customers that
 * are not active and deleted customers are refused, and a refused order leaves
 * nothing behind (no row, no event). Activation is picked up from events. */
static void refused_orders(void **state) {
  e2e *e = start(state);
  json_t *pending = e2e_create_customer(e, "Pending", "p@example.org", "pending");
  json_t *susp = e2e_create_customer(e, "Suspended", "s@example.org", "suspended");
  json_t *gone = e2e_create_customer(e, "Gone", "g@example.org", NULL);
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", e2e_str(gone, "id"));
  e2e_resp r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);
  e2e_wait_view(e, e2e_str(pending, "id"), 1, "pending", 30000);
  e2e_wait_view(e, e2e_str(susp, "id"), 1, "suspended", 30000);
  e2e_wait_view(e, e2e_str(gone, "id"), 2, "deleted", 30000);

  struct {
    const char *id;
    const char *code;
  } cases[] = {
      {"0190a000-0000-7000-8000-000000000bad", "customer_unknown"},
      {"not-even-a-uuid", "customer_unknown"},
      {e2e_str(pending, "id"), "customer_inactive"},
      {e2e_str(susp, "id"), "customer_inactive"},
      {e2e_str(gone, "id"), "customer_inactive"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r = order(e, cases[i].id, 100, "EUR", NULL);
    if (r.status != 422 || strcmp(e2e_error_code(&r), cases[i].code) != 0)
      fail_msg("order for %s: expected 422 %s, got %d %s", cases[i].id, cases[i].code, r.status,
               r.body);
    e2e_resp_free(&r);
  }
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM orders"), 0);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                                           " FROM warren_outbox_id_seq"),
                   0);
  assert_int_equal(e2e_depth(e, TAP), 0);

  /* activating the pending customer at the source makes it orderable here */
  snprintf(path, sizeof path, "/customers/%s", e2e_str(pending, "id"));
  r = e2e_json("PATCH", e->customer.url, path, json_pack("{s:s}", "status", "active"), NULL);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
  e2e_wait_view(e, e2e_str(pending, "id"), 2, "active", 30000);
  r = order(e, e2e_str(pending, "id"), 100, "EUR", NULL);
  E2E_EXPECT(r, 201, NULL);
  e2e_resp_free(&r);
  json_decref(pending);
  json_decref(susp);
  json_decref(gone);
}

static void order_validation(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "Val", "val@example.org", NULL);
  const char *id = e2e_str(c, "id");
  e2e_wait_view(e, id, 1, "active", 30000);
  char b[32][512];
  const char *codes[32];
  int n = 0;
#define CASE(code, ...)                                                                            \
  do {                                                                                             \
    snprintf(b[n], sizeof b[n], __VA_ARGS__);                                                      \
    codes[n++] = code;                                                                             \
  } while (0)
  CASE("missing_field", "{\"amount_cents\":1,\"currency\":\"EUR\"}");
  CASE("missing_field", "{\"customer_id\":\"%s\",\"currency\":\"EUR\"}", id);
  CASE("missing_field", "{\"customer_id\":\"%s\",\"amount_cents\":1}", id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":0,\"currency\":\"EUR\"}", id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":-5,\"currency\":\"EUR\"}", id);
  CASE("invalid_value",
       "{\"customer_id\":\"%s\",\"amount_cents\":1000000000001,\"currency\":\"EUR\"}", id);
  CASE("invalid_type", "{\"customer_id\":\"%s\",\"amount_cents\":1.5,\"currency\":\"EUR\"}", id);
  CASE("invalid_type", "{\"customer_id\":\"%s\",\"amount_cents\":\"100\",\"currency\":\"EUR\"}",
       id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"eur\"}", id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"EURO\"}", id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"E1R\"}", id);
  CASE("invalid_value", "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"\"}", id);
  CASE("invalid_type", "{\"customer_id\":7,\"amount_cents\":1,\"currency\":\"EUR\"}");
  CASE("invalid_value", "{\"customer_id\":\"\",\"amount_cents\":1,\"currency\":\"EUR\"}");
  CASE("invalid_value", "{\"customer_id\":\"%065d\",\"amount_cents\":1,\"currency\":\"EUR\"}", 0);
  CASE("unknown_field",
       "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"EUR\",\"status\":\"paid\"}", id);
  CASE("unknown_field",
       "{\"customer_id\":\"%s\",\"amount_cents\":1,\"currency\":\"EUR\",\"id\":\"x\"}", id);
#undef CASE
  for (int i = 0; i < n; i++) {
    e2e_resp r =
        e2e_raw("POST", e->order.url, "/orders", b[i], strlen(b[i]), "application/json", NULL);
    if (r.status != 422 || strcmp(e2e_error_code(&r), codes[i]) != 0)
      fail_msg("%s: expected 422 %s, got %d %s", b[i], codes[i], r.status, r.body);
    e2e_resp_free(&r);
  }
  const char *notjson[] = {"", "{", "[]", "{\"a\":1,\"a\":2}"};
  for (size_t i = 0; i < sizeof notjson / sizeof notjson[0]; i++) {
    e2e_resp r = e2e_raw("POST", e->order.url, "/orders", notjson[i], strlen(notjson[i]),
                         "application/json", NULL);
    E2E_EXPECT(r, 400, "invalid_json");
    e2e_resp_free(&r);
  }
  e2e_resp r = e2e_raw("POST", e->order.url, "/orders", b[0], strlen(b[0]), "text/plain", NULL);
  E2E_EXPECT(r, 415, "unsupported_media_type");
  e2e_resp_free(&r);
  size_t big = 64 * 1024 + 1;
  char *body = malloc(big);
  memset(body, ' ', big);
  body[0] = '{';
  body[big - 1] = '}';
  r = e2e_raw("POST", e->order.url, "/orders", body, big, "application/json", NULL);
  E2E_EXPECT(r, 413, "payload_too_large");
  e2e_resp_free(&r);
  free(body);
  r = e2e_json("DELETE", e->order.url, "/orders/x", NULL, NULL);
  E2E_EXPECT(r, 405, "method_not_allowed");
  e2e_resp_free(&r);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM orders"), 0);
  assert_int_equal(e2e_depth(e, TAP), 0);
  json_decref(c);
}

/* ---- admin ---------------------------------------------------------------------------- */

static void reconcile_auth(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "rec", 20, 2);
  for (size_t i = 0; i < json_array_size(ids); i++)
    e2e_wait_view(e, json_string_value(json_array_get(ids, i)), 1, NULL, 30000);
  e2e_resp r = e2e_json("POST", e->order.url, "/admin/reconcile", NULL, NULL);
  E2E_EXPECT(r, 401, "unauthorized");
  e2e_resp_free(&r);
  const char *wrong[] = {"Authorization: Bearer " E2E_TOKEN "x", NULL};
  r = e2e_json("POST", e->order.url, "/admin/reconcile", NULL, wrong);
  E2E_EXPECT(r, 401, "unauthorized");
  e2e_resp_free(&r);
  const char *auth[] = {"Authorization: Bearer " E2E_TOKEN, NULL};
  r = e2e_json("POST", e->order.url, "/admin/reconcile", json_pack("{s:i}", "buckets", 3), auth);
  E2E_EXPECT(r, 422, "unknown_field");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->order.url, "/admin/reconcile", NULL, auth);
  E2E_EXPECT(r, 405, "method_not_allowed");
  e2e_resp_free(&r);
  /* in sync: everything checked, nothing found */
  r = e2e_json("POST", e->order.url, "/admin/reconcile", NULL, auth);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "checked"), 20);
  assert_int_equal(e2e_int(r.json, "buckets_differing"), 0);
  assert_int_equal(e2e_int(r.json, "discrepancies_found"), 0);
  assert_int_equal(e2e_int(r.json, "discrepancies_fixed"), 0);
  e2e_resp_free(&r);
  r = e2e_json("POST", e->order.url, "/admin/reconcile", json_object(), auth);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);

  /* an order service without a token: 403 */
  dk_proc second;
  e2e_start(e, &second, "order", NULL, true);
  r = e2e_json("POST", second.url, "/admin/reconcile", NULL, auth);
  E2E_EXPECT(r, 403, "forbidden");
  e2e_resp_free(&r);
  assert_int_equal(e2e_stop(&second), 0);
  json_decref(ids);
}

/* If the customer service cannot be reached, reconciliation answers 502 and says so,
 * without touching the view. */
static void reconcile_source_down(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "X", "x@example.org", NULL);
  e2e_wait_view(e, e2e_str(c, "id"), 1, NULL, 30000);
  assert_int_equal(e2e_stop(&e->customer), 0);
  const char *auth[] = {"Authorization: Bearer " E2E_TOKEN, NULL};
  e2e_resp r = e2e_json("POST", e->order.url, "/admin/reconcile", NULL, auth);
  E2E_EXPECT(r, 502, "reconcile_failed");
  e2e_resp_free(&r);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view"), 1);
  json_decref(c);
}

/* ---- health and metrics ----------------------------------------------------------------- */

static void health_and_metrics(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "m", 10, 2);
  for (size_t i = 0; i < json_array_size(ids); i++)
    e2e_wait_view(e, json_string_value(json_array_get(ids, i)), 1, NULL, 30000);
  e2e_resp r = e2e_json("GET", e->order.url, "/healthz", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_string_equal(e2e_str(r.json, "status"), "ok");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->order.url, "/readyz", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_string_equal(e2e_str(r.json, "status"), "ready");
  e2e_resp_free(&r);
  const char *q = "{queue=\"" E2E_QUEUE "\"";
  char series[256];
  snprintf(series, sizeof series, "warren_events_consumed_total%s,result=\"applied\"}", q);
  /* counted right after the commit that made the rows visible: wait, do not race */
  e2e_wait_metric(&e->order, series, 10, 30000);
  snprintf(series, sizeof series, "warren_sync_latency_seconds_count%s}", q);
  e2e_wait_metric(&e->order, series, 10, 30000);
  snprintf(series, sizeof series, "warren_consumer_lag_messages%s}", q);
  assert_true(e2e_metric(&e->order, series) >= 0);
  assert_true(e2e_metric(&e->order, "order_catchup_items_total") >= 0);
  assert_true(e2e_metric(&e->order, "warren_outbox_pending") >= 0);
  r = e2e_json("GET", e->order.url, "/metrics", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  const char *expect[] = {"# TYPE warren_sync_latency_seconds histogram",
                          "# TYPE warren_consumer_lag_messages gauge",
                          "# TYPE warren_events_consumed_total counter",
                          "# TYPE order_reconcile_discrepancies_total counter",
                          "# TYPE order_reconcile_repairs_total counter",
                          "# TYPE warren_http_requests_total counter"};
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
    if (!strstr(r.body, expect[i]))
      fail_msg("/metrics lacks \"%s\"", expect[i]);
  e2e_resp_free(&r);
  json_decref(ids);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(customer_view, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(place_and_read_orders, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(refused_orders, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(order_validation, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(reconcile_auth, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(reconcile_source_down, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(health_and_metrics, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e order api", tests, NULL, NULL);
}
