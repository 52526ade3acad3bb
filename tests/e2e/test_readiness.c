// warren-test: link=warren_devkit,warren_schemas timeout=600
/* /healthz and /readyz while a dependency is missing, and recovery without a restart:
 * - the order service before its catch-up (customer service not there yet): alive,
 *   not ready (catch_up false), ready once the customer service appears;
 * - the broker gone for both services (their vhost deleted under them: the broker
 *   closes their connections and refuses new ones, without touching the shared broker
 *   other tests use): not ready (broker false), writes still accepted into the outbox;
 *   ready again when the vhost is back, and the change made during the outage arrives;
 * - the database gone (connections refused and terminated): not ready (database
 *   false), requests answer 503 unavailable; ready again when it is back. */
#include "e2e.h"

static int setup(void **state) {
  return e2e_setup_state(state, "readiness");
}

/* GET /readyz: status and the value of one check ("" = not present). */
static int readyz(const dk_proc *p, const char *check, bool *value) {
  e2e_resp r = e2e_json("GET", p->url, "/readyz", NULL, NULL);
  int st = r.status;
  json_t *c = json_object_get(json_object_get(r.json, "checks"), check);
  if (value)
    *value = json_is_true(c);
  if (st == 503 && !json_is_boolean(c))
    fail_msg("503 from %s without the \"%s\" check: %s", p->name, check, r.body);
  if (st == 503)
    assert_string_equal(e2e_str(r.json, "status"), "not_ready");
  e2e_resp_free(&r);
  return st;
}

/* Waits until /readyz is 503 with check == false. */
static void wait_not_ready(const dk_proc *p, const char *check, int timeout_ms) {
  for (int64_t end = wt_now_ms() + timeout_ms;;) {
    bool v = true;
    if (readyz(p, check, &v) == 503 && !v)
      return;
    if (wt_now_ms() > end) {
      dk_tail(p->log_path, 20);
      fail_msg("%s did not report %s=false within %d ms", p->name, check, timeout_ms);
    }
    usleep(100000);
  }
}

static void wait_ready(dk_proc *p, int timeout_ms) {
  wr_err err = {0};
  if (dk_wait_ready(p, (unsigned)timeout_ms, &err) != 0) {
    dk_tail(p->log_path, 30);
    fail_msg("%s", err.msg);
  }
}

static void assert_alive(const dk_proc *p) {
  e2e_resp r = e2e_json("GET", p->url, "/healthz", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
}

/* ---- before catch-up -------------------------------------------------------------------- */

static void order_not_ready_before_catchup(void **state) {
  e2e *e = *state;
  unsigned port = dk_free_port();
  char cu[96], addr[64];
  snprintf(cu, sizeof cu, "CUSTOMER_SERVICE_URL=http://127.0.0.1:%u", port);
  snprintf(addr, sizeof addr, "WARREN_HTTP_ADDR=127.0.0.1:%u", port);
  const char *oenv[] = {cu, NULL};
  e2e_start(e, &e->order, "order", oenv, false);
  /* for a few seconds: alive, serving metrics, not ready because of the catch-up */
  int64_t until = wt_now_ms() + 3000;
  int polls = 0;
  while (wt_now_ms() < until) {
    bool v = true;
    assert_int_equal(readyz(&e->order, "catch_up", &v), 503);
    assert_false(v);
    assert_alive(&e->order);
    polls++;
    usleep(200000);
  }
  bool db = false;
  readyz(&e->order, "database", &db);
  assert_true(db);
  e2e_resp r = e2e_json("GET", e->order.url, "/metrics", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
  assert_true(polls >= 5);

  /* the customer service appears (with a customer): the order service gets ready by
   * itself and its view holds the customer */
  const char *cenv[] = {addr, NULL};
  e2e_start(e, &e->customer, "customer", cenv, true);
  assert_int_equal(e->customer.port, port);
  json_t *c = e2e_create_customer(e, "Early", "early@example.org", NULL);
  wait_ready(&e->order, 60000);
  e2e_wait_view(e, e2e_str(c, "id"), 1, "active", 30000);
  json_decref(c);
}

/* ---- broker gone ---------------------------------------------------------------------- */

static void mgmt(const char *method, const char *path, const char *body) {
  int st = wt_mgmt(method, path, body, NULL);
  if (st >= 300)
    fail_msg("management API %s %s: HTTP %d", method, path, st);
}

static void broker_gone_and_back(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, NULL);
  e2e_start_order(e, NULL);
  json_t *before = e2e_create_customer(e, "Before", "before@example.org", NULL);
  e2e_wait_view(e, e2e_str(before, "id"), 1, NULL, 30000);
  const char *vhost = strrchr(e->amqp_url, '/') + 1;
  char path[256];
  snprintf(path, sizeof path, "/api/vhosts/%s", vhost);

  mgmt("DELETE", path, NULL);
  wait_not_ready(&e->customer, "broker", 60000);
  wait_not_ready(&e->order, "broker", 60000);
  bool v = false;
  readyz(&e->order, "database", &v);
  assert_true(v);
  assert_alive(&e->customer);
  assert_alive(&e->order);
  /* the owner keeps accepting changes: they wait in its outbox */
  json_t *during = e2e_create_customer(e, "During", "during@example.org", NULL);
  assert_true(e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox") >= 1);
  /* the view still answers, orders are still checked against it */
  e2e_resp r = e2e_json("POST", e->order.url, "/orders",
                        json_pack("{s:s,s:i,s:s}", "customer_id", e2e_str(before, "id"),
                                  "amount_cents", 100, "currency", "EUR"),
                        NULL);
  E2E_EXPECT(r, 201, NULL);
  e2e_resp_free(&r);
  usleep(2000000); /* a few reconnect attempts fail meanwhile */
  assert_true(dk_alive(&e->customer));
  assert_true(dk_alive(&e->order));

  int64_t t0 = wt_now_ms();
  mgmt("PUT", path, NULL);
  char perm[256];
  snprintf(perm, sizeof perm, "/api/permissions/%s/guest", vhost);
  mgmt("PUT", perm, "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}");
  wait_ready(&e->customer, 90000);
  wait_ready(&e->order, 90000);
  int64_t ready_ms = wt_now_ms() - t0;
  /* the change made during the outage arrives (the consumer declared its queue again,
   * the relay published what waited) */
  int64_t conv = e2e_wait_view(e, e2e_str(during, "id"), 1, NULL, 120000);
  print_message("broker back: both ready after %lld ms, outage change in the view %lld ms "
                "later\n",
                (long long)ready_ms, (long long)conv);
  assert_int_equal(e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox"), 0);
  json_decref(before);
  json_decref(during);
}

/* ---- database gone --------------------------------------------------------------------- */

/* Lets connections to db in (allow) or not; refusing also ends the current ones. */
static void allow_connections(const char *db, bool allow) {
  char sql[512];
  if (allow)
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", db);
  else
    snprintf(sql, sizeof sql,
             "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false;"
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
             db, db);
  PGconn *c = wt_pg_connect(wt_require("WARREN_PG_URL"));
  PQclear(wt_pg_exec(c, sql));
  PQfinish(c);
}

static void database_gone_and_back(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, NULL);
  json_t *c = e2e_create_customer(e, "Db", "db@example.org", NULL);
  const char *db = strrchr(e->customer_db, '/') + 1;
  allow_connections(db, false);
  wait_not_ready(&e->customer, "database", 60000);
  assert_alive(&e->customer);
  e2e_resp r = e2e_json("POST", e->customer.url, "/customers",
                        json_pack("{s:s,s:s}", "name", "No", "email", "no@example.org"), NULL);
  E2E_EXPECT(r, 503, "unavailable");
  e2e_resp_free(&r);
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", e2e_str(c, "id"));
  r = e2e_json("GET", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 503, "unavailable");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/customers", NULL, NULL);
  E2E_EXPECT(r, 503, "unavailable");
  e2e_resp_free(&r);

  allow_connections(db, true);
  wait_ready(&e->customer, 60000);
  r = e2e_json("GET", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
  json_t *after = e2e_create_customer(e, "After", "after@example.org", NULL);
  json_decref(after);
  json_decref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(order_not_ready_before_catchup, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(broker_gone_and_back, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(database_gone_and_back, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e readiness", tests, NULL, NULL);
}
