// warren-test: link=warren_devkit,warren_schemas timeout=1200
/* Customer -> Order synchronization end to end, compared row by row (every customer of
 * the source against customer_view, both ways):
 * - the view converges after a burst of creates, updates and deletes from parallel
 *   clients (time to convergence and the consumer's sync latency are reported);
 * - catch-up: a first order service on a source of a few thousand customers reaches
 *   its state through the bulk API while clients keep changing customers (catch-up
 *   rate reported), and a restart on an empty database with a queue full of old
 *   events converges too;
 * - reconciliation repairs a corrupted view (missing rows, older versions, rows the
 *   source does not know), reports exact counts, leaves the guard consistent (later
 *   events still apply), and a second run finds nothing; a repair rolled back by a
 *   deadlock with a concurrent writer of the same customer runs again. */
#include "e2e.h"

static const char *const TOKEN_ENV[] = {"WARREN_ADMIN_TOKEN=" E2E_TOKEN, NULL};
static const char *const AUTH[] = {"Authorization: Bearer " E2E_TOKEN, NULL};

static int setup(void **state) {
  return e2e_setup_state(state, "view_sync");
}

/* ---- change traffic ------------------------------------------------------------------- */

struct churn {
  e2e *e;
  json_t *ids; /* borrowed */
  unsigned seed;
  int ops; /* how many (0: until *stop) */
  volatile int *stop;
  int done, errors;
};

static void *churn_run(void *arg) {
  struct churn *w = arg;
  static const char *const st[] = {"active", "pending", "suspended"};
  for (int n = 0; w->ops ? n < w->ops : !*w->stop; n++) {
    size_t k = (size_t)rand_r(&w->seed) % json_array_size(w->ids);
    char url[256];
    snprintf(url, sizeof url, "%s/customers/%s", w->e->customer.url,
             json_string_value(json_array_get(w->ids, k)));
    int op = rand_r(&w->seed) % 20;
    json_t *body = NULL;
    char v[96];
    if (op == 0) {
      body = NULL; /* delete */
    } else if (op < 8) {
      snprintf(v, sizeof v, "name %u-%d", w->seed % 1000, n);
      body = json_pack("{s:s}", "name", v);
    } else if (op < 14) {
      snprintf(v, sizeof v, "mail-%u-%d@example.org", w->seed % 1000, n);
      body = json_pack("{s:s}", "email", v);
    } else {
      body = json_pack("{s:s}", "status", st[op % 3]);
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *h[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = text ? "PATCH" : "DELETE",
                          .url = url,
                          .headers = text ? h : NULL,
                          .body = text,
                          .body_len = text ? strlen(text) : 0,
                          .timeout_ms = 60000};
    wr_http_response res;
    int rc = wr_http_do(&rq, &res, NULL);
    free(text);
    /* 404: the customer was deleted earlier; anything else must succeed */
    if (rc != 0 || (res.status != 200 && res.status != 204 && res.status != 404))
      w->errors++;
    else
      w->done++;
    wr_http_response_free(&res);
  }
  return NULL;
}

/* Runs `threads` churn clients: ops each, or until *stop when ops is 0 (then the
 * caller joins with churn_join). */
static void churn_start(struct churn *w, pthread_t *th, int threads, e2e *e, json_t *ids, int ops,
                        volatile int *stop) {
  for (int t = 0; t < threads; t++) {
    w[t] = (struct churn){
        .e = e, .ids = ids, .seed = (unsigned)(t * 7919 + 17), .ops = ops, .stop = stop};
    assert_int_equal(pthread_create(&th[t], NULL, churn_run, &w[t]), 0);
  }
}

static int churn_join(struct churn *w, pthread_t *th, int threads) {
  int done = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    assert_int_equal(w[t].errors, 0);
    done += w[t].done;
  }
  return done;
}

/* The consumer's sync latency histogram (occurred_at -> handler commit): count, mean,
 * and the upper bound of the bucket holding the 99th percentile. */
static void report_latency(e2e *e, const char *label) {
  e2e_resp r = e2e_raw("GET", e->order.url, "/metrics", NULL, 0, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  double count = 0, sum = 0, le[64], cum[64];
  int nb = 0;
  for (char *line = r.body; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    if (strncmp(line, "warren_sync_latency_seconds_bucket{", 35) == 0 && nb < 64) {
      const char *lep = strstr(line, "le=\"");
      const char *val = strrchr(line, ' ');
      if (lep && val) {
        le[nb] = strncmp(lep + 4, "+Inf", 4) == 0 ? 1e9 : strtod(lep + 4, NULL);
        cum[nb++] = strtod(val + 1, NULL);
      }
    } else if (strncmp(line, "warren_sync_latency_seconds_sum{", 32) == 0) {
      sum = strtod(strrchr(line, ' ') + 1, NULL);
    } else if (strncmp(line, "warren_sync_latency_seconds_count{", 34) == 0) {
      count = strtod(strrchr(line, ' ') + 1, NULL);
    }
    line = nl ? nl + 1 : NULL;
  }
  double p50 = 0, p99 = 0;
  for (int i = nb - 1; i >= 0; i--) {
    if (cum[i] >= 0.5 * count)
      p50 = le[i];
    if (cum[i] >= 0.99 * count)
      p99 = le[i];
  }
  print_message("%s: sync latency over %.0f events: mean %.1f ms, p50 <= %.0f ms, "
                "p99 <= %.0f ms (histogram buckets)\n",
                label, count, count ? sum / count * 1000 : 0, p50 * 1000, p99 * 1000);
  assert_true(count > 0);
  e2e_resp_free(&r);
}

/* ---- convergence ------------------------------------------------------------------------ */

static void converges_after_changes(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, TOKEN_ENV);
  e2e_start_order(e, TOKEN_ENV);
  int64_t t0 = wt_now_ms();
  json_t *ids = e2e_create_many(e, "conv", 300, 4);
  struct churn w[4];
  pthread_t th[4];
  churn_start(w, th, 4, e, ids, 150, NULL);
  int ops = churn_join(w, th, 4);
  int64_t t_last = wt_now_ms();
  int64_t wait = e2e_wait_converged(e, 60000);
  print_message("converged %lld ms after the last of %d creates and %d updates/deletes "
                "(writes took %lld ms)\n",
                (long long)wait, 300, ops, (long long)(t_last - t0));
  /* every version was applied or skipped, none retried or dead-lettered */
  char series[200];
  snprintf(series, sizeof series,
           "warren_events_consumed_total{queue=\"" E2E_QUEUE "\",result=\"dead_lettered\"}");
  assert_int_equal(e2e_metric(&e->order, series), 0);
  snprintf(series, sizeof series,
           "warren_events_consumed_total{queue=\"" E2E_QUEUE "\",result=\"retried\"}");
  assert_int_equal(e2e_metric(&e->order, series), 0);
  assert_int_equal(e2e_depth(e, E2E_QUEUE ".dlq"), 0);
  report_latency(e, "convergence");
  /* deleted customers are tombstones in the view, never removed rows */
  long long deleted =
      e2e_scalar(e->customer_db, "SELECT count(*) FROM customers WHERE status = 'deleted'");
  assert_int_equal(
      e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view WHERE status = 'deleted'"),
      deleted);
  json_decref(ids);
}

/* ---- catch-up ------------------------------------------------------------------------------ */

static double logged_catchup_seconds(const dk_proc *p, long *items) {
  FILE *f = fopen(p->log_path, "r");
  char line[2048];
  double secs = -1;
  while (f && fgets(line, sizeof line, f)) {
    const char *at = strstr(line, "catch-up done: ");
    if (at) {
      *items = strtol(at + 15, NULL, 10);
      const char *s = strstr(at, " already current, ");
      if (s)
        secs = strtod(s + 18, NULL);
    }
  }
  if (f)
    fclose(f);
  return secs;
}

#define CATCHUP_N 3000

/* Waits until the customer outbox is empty; returns the time (wt_now_ms) it was. */
static int64_t wait_outbox_drained(e2e *e, int timeout_ms) {
  for (int64_t end = wt_now_ms() + timeout_ms;;) {
    if (e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox") == 0)
      return wt_now_ms();
    if (wt_now_ms() > end)
      fail_msg("the customer outbox did not drain within %d ms", timeout_ms);
    usleep(50000);
  }
}

static void catchup_from_empty(void **state) {
  e2e *e = *state;
  const char *cenv[] = {"WARREN_ADMIN_TOKEN=" E2E_TOKEN, "WARREN_HTTP_THREADS=8",
                        "WARREN_DB_POOL=12", NULL};
  e2e_start_customer(e, cenv);
  int64_t t0 = wt_now_ms();
  json_t *ids = e2e_create_many(e, "cu", CATCHUP_N, 8);
  int64_t t_created = wt_now_ms();
  /* some history: updates and deletes before the order service exists */
  struct churn w[4];
  pthread_t th[4];
  churn_start(w, th, 4, e, ids, 100, NULL);
  churn_join(w, th, 4);
  print_message("created %d customers in %lld ms (%.0f/s over HTTP, 8 clients)\n", CATCHUP_N,
                (long long)(t_created - t0), CATCHUP_N * 1000.0 / (double)(t_created - t0));

  /* first start of the order service, with clients changing customers meanwhile */
  volatile int stop = 0;
  churn_start(w, th, 2, e, ids, 0, &stop);
  int64_t t1 = wt_now_ms();
  e2e_start_order(e, TOKEN_ENV);
  int64_t ready_ms = wt_now_ms() - t1;
  usleep(500000);
  stop = 1;
  int during = churn_join(w, th, 2);
  long items = 0;
  double secs = logged_catchup_seconds(&e->order, &items);
  assert_true(secs >= 0);
  assert_true(items >= CATCHUP_N);
  print_message("first start: ready after %lld ms; catch-up loaded %ld customers in %.2f s "
                "(%.0f/s); %d changes made during the start\n",
                (long long)ready_ms, items, secs, secs > 0 ? (double)items / secs : 0, during);
  assert_true(e2e_metric(&e->order, "order_catchup_items_total") >= CATCHUP_N);
  int64_t wait = e2e_wait_converged(e, 120000);
  print_message("view equal to the source (%d customers) %lld ms after ready\n", CATCHUP_N,
                (long long)wait);
  /* The events of the customers created before any queue was bound were returned by
   * the broker (unroutable) and wait in the customer outbox, retried with backoff (at
   * most a minute apart): once the order queue exists they all get through. */
  int64_t drained = wait_outbox_drained(e, 120000);
  print_message("customer outbox (events returned while no queue was bound) drained %lld ms "
                "after the order service was ready\n",
                (long long)(drained - t1 - ready_ms));

  /* restart on an empty database: the queue still holds whatever was not consumed */
  assert_int_equal(e2e_stop(&e->order), 0);
  churn_start(w, th, 4, e, ids, 50, NULL);
  churn_join(w, th, 4);
  /* the relay publishes after the commits: let it finish before counting the queue
   * (rows returned while no queue was bound wait up to the relay's retry_max_ms, 60 s,
   * between attempts; on a loaded machine or under ASan they may still be waiting) */
  wait_outbox_drained(e, 120000);
  long queued = e2e_depth(e, E2E_QUEUE);
  wt_db_drop(e->order_db);
  PGconn *adm = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", strrchr(e->order_db, '/') + 1);
  PQclear(wt_pg_exec(adm, sql));
  PQfinish(adm);
  t1 = wt_now_ms();
  e2e_start_order(e, TOKEN_ENV);
  ready_ms = wt_now_ms() - t1;
  secs = logged_catchup_seconds(&e->order, &items);
  print_message("restart on an empty database with %ld events queued: ready after %lld ms, "
                "catch-up %ld customers in %.2f s\n",
                queued, (long long)ready_ms, items, secs);
  assert_true(queued > 0);
  wait = e2e_wait_converged(e, 120000);
  print_message("converged %lld ms after ready\n", (long long)wait);
  /* the queued events were older than what the catch-up loaded: skipped, not applied */
  char series[200];
  snprintf(series, sizeof series,
           "warren_events_consumed_total{queue=\"" E2E_QUEUE "\",result=\"dead_lettered\"}");
  assert_int_equal(e2e_metric(&e->order, series), 0);
  json_decref(ids);
}

/* ---- reconciliation ------------------------------------------------------------------------ */

static json_t *reconcile(e2e *e) {
  e2e_resp r = e2e_json("POST", e->order.url, "/admin/reconcile", NULL, AUTH);
  E2E_EXPECT(r, 200, NULL);
  json_t *j = json_incref(r.json);
  e2e_resp_free(&r);
  return j;
}

static void reconcile_repairs(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, TOKEN_ENV);
  e2e_start_order(e, TOKEN_ENV);
  json_t *ids = e2e_create_many(e, "rc", 300, 4);
  /* ids 10..19 get versions 2 and 3 at the source */
  for (int i = 10; i < 20; i++)
    for (int k = 0; k < 2; k++) {
      char path[128];
      snprintf(path, sizeof path, "/customers/%s",
               json_string_value(json_array_get(ids, (size_t)i)));
      e2e_resp r = e2e_json("PATCH", e->customer.url, path,
                            json_pack("{s:s}", "name", k ? "third" : "second"), NULL);
      E2E_EXPECT(r, 200, NULL);
      e2e_resp_free(&r);
    }
  e2e_wait_converged(e, 60000);
  json_t *clean = reconcile(e);
  assert_int_equal(e2e_int(clean, "checked"), 300);
  assert_int_equal(e2e_int(clean, "discrepancies_found"), 0);
  json_decref(clean);

  /* break the view behind the service's back: 10 rows gone, 10 rolled back to
   * version 1 with stale contents, 5 rows nobody created (one a tombstone) */
  char list_missing[2048] = "", list_old[2048] = "";
  for (int i = 0; i < 10; i++) {
    snprintf(list_missing + strlen(list_missing), sizeof list_missing - strlen(list_missing),
             "%s'%s'", i ? "," : "", json_string_value(json_array_get(ids, (size_t)(100 + i))));
    snprintf(list_old + strlen(list_old), sizeof list_old - strlen(list_old), "%s'%s'",
             i ? "," : "", json_string_value(json_array_get(ids, (size_t)(10 + i))));
  }
  e2e_sql(e->order_db,
          "DELETE FROM customer_view WHERE id IN (%s);"
          "UPDATE customer_view SET version = 1, name = 'stale', email = 'stale@example.org'"
          " WHERE id IN (%s);"
          "INSERT INTO customer_view (id, name, email, status, version)"
          " SELECT 'ghost-' || g, 'Ghost', 'ghost@example.org',"
          " CASE WHEN g = 5 THEN 'deleted' ELSE 'active' END, g FROM generate_series(1, 5) g",
          list_missing, list_old);
  assert_int_not_equal(e2e_view_diff(e, false), 0);
  int64_t t0 = wt_now_ms();
  json_t *res = reconcile(e);
  int64_t took = wt_now_ms() - t0;
  print_message("reconciliation of 300 customers: %lld ms, %lld buckets differed, found %lld, "
                "fixed %lld\n",
                (long long)took, e2e_int(res, "buckets_differing"),
                e2e_int(res, "discrepancies_found"), e2e_int(res, "discrepancies_fixed"));
  assert_int_equal(e2e_int(res, "checked"), 300);
  assert_int_equal(e2e_int(res, "discrepancies_found"), 25);
  assert_int_equal(e2e_int(res, "discrepancies_fixed"), 25);
  assert_true(e2e_int(res, "buckets_differing") >= 1 && e2e_int(res, "buckets_differing") <= 25);
  json_decref(res);
  assert_int_equal(e2e_view_diff(e, true), 0);
  assert_int_equal(
      e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view WHERE id LIKE 'ghost-%%'"), 0);
  assert_int_equal(e2e_metric(&e->order, "order_reconcile_discrepancies_total"), 25);
  assert_int_equal(e2e_metric(&e->order, "order_reconcile_repairs_total"), 25);
  res = reconcile(e);
  assert_int_equal(e2e_int(res, "discrepancies_found"), 0);
  assert_int_equal(e2e_int(res, "buckets_differing"), 0);
  json_decref(res);

  /* the repaired rows keep following events: the guard agrees with the view */
  for (int i = 0; i < 2; i++) {
    const char *id = json_string_value(json_array_get(ids, (size_t)(i ? 100 : 10)));
    char path[128];
    snprintf(path, sizeof path, "/customers/%s", id);
    e2e_resp r =
        e2e_json("PATCH", e->customer.url, path, json_pack("{s:s}", "status", "suspended"), NULL);
    E2E_EXPECT(r, 200, NULL);
    long long v = e2e_int(r.json, "version");
    e2e_resp_free(&r);
    e2e_wait_view(e, id, v, "suspended", 30000);
  }
  assert_int_equal(e2e_view_diff(e, true), 0);
  json_decref(ids);
}

/* A repair that meets a concurrent writer of the same customer in the opposite lock
 * order. The live consumer writes the view row first and the guard row at commit; a
 * repair writes the guard row first. Here a test transaction plays the consumer: it
 * holds a new view row of the customer while the repair waits for it, then updates the
 * guard row the repair holds. PostgreSQL breaks the cycle by rolling the repair back
 * (its deadlock check runs first: this session's deadlock_timeout is longer). The
 * repair runs again: 200, the row repaired, one retry counted (it was a 503 before). */
struct reconcile_call {
  e2e *e;
  int status;
  json_t *json;
};

static void *reconcile_thread(void *arg) {
  struct reconcile_call *rc = arg;
  e2e_resp r = e2e_json("POST", rc->e->order.url, "/admin/reconcile", NULL, AUTH);
  rc->status = r.status;
  rc->json = r.json ? json_incref(r.json) : NULL;
  e2e_resp_free(&r);
  return NULL;
}

/* Both services started, and one new customer that has reached the view. */
static json_t *one_customer_synced(e2e *e, const char *name, const char *email) {
  e2e_start_customer(e, TOKEN_ENV);
  e2e_start_order(e, TOKEN_ENV);
  json_t *c = e2e_create_customer(e, name, email, NULL);
  e2e_wait_view(e, e2e_str(c, "id"), 1, "active", 30000);
  return c;
}

static void reconcile_retries_a_deadlock(void **state) {
  e2e *e = *state;
  json_t *c = one_customer_synced(e, "Knot", "knot@example.org");
  const char *id = e2e_str(c, "id");
  /* the row goes missing here; its guard row stays */
  e2e_sql(e->order_db, "DELETE FROM customer_view WHERE id = '%s'", id);

  PGconn *blocker = wt_pg_connect(e->order_db);
  char sql[512];
  PQclear(wt_pg_exec(blocker, "BEGIN"));
  PQclear(wt_pg_exec(blocker, "SET LOCAL deadlock_timeout = '20s'"));
  snprintf(sql, sizeof sql,
           "INSERT INTO customer_view (id, name, email, status, version)"
           " VALUES ('%s', 'Knot', 'knot@example.org', 'active', 1)",
           id);
  PQclear(wt_pg_exec(blocker, sql));

  struct reconcile_call call = {.e = e};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, reconcile_thread, &call), 0);
  /* the repair holds the guard row and waits for the blocker's view row; close the
   * cycle well within the repair's deadlock_timeout (1 s) so that its check finds it */
  PGconn *watch = wt_pg_connect(e->order_db);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
           " AND wait_event_type = 'Lock' AND pid <> %d AND query LIKE '%%customer_view%%'",
           PQbackendPID(blocker));
  for (int64_t end = wt_now_ms() + 20000; wt_pg_scalar(watch, sql) == 0;) {
    if (wt_now_ms() > end)
      fail_msg("the repair never waited for the blocker's row");
    usleep(5000);
  }
  PQfinish(watch);
  snprintf(sql, sizeof sql,
           "UPDATE warren_versions SET updated_at = now() WHERE aggregate_id = '%s'", id);
  PGresult *r = PQexec(blocker, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("the blocker, not the repair, was rolled back: %s", PQresultErrorMessage(r));
  PQclear(r);
  PQclear(wt_pg_exec(blocker, "ROLLBACK"));
  PQfinish(blocker);

  assert_int_equal(pthread_join(th, NULL), 0);
  if (call.status != 200)
    fail_msg("reconcile answered %d: %s", call.status,
             call.json ? json_dumps(call.json, JSON_COMPACT) : "");
  assert_int_equal(e2e_int(call.json, "discrepancies_found"), 1);
  assert_int_equal(e2e_int(call.json, "discrepancies_fixed"), 1);
  json_decref(call.json);
  assert_true(e2e_metric(&e->order, "order_reconcile_retries_total") >= 1);
  assert_int_equal(e2e_view_diff(e, true), 0);
  json_decref(c);
}

/* What reconciliation cannot see, by design: a row whose contents changed here without
 * a version change has the same checksum (the checksum covers id and version), so it
 * stays wrong after reconciliation. A snapshot repairs it: the version guard lets a
 * SNAPSHOT event apply at the stored version (same state, rewritten). This test pins
 * both halves down (docs/OPERATIONS.md describes them). */
static void reconcile_blind_spot_repaired_by_snapshot(void **state) {
  e2e *e = *state;
  json_t *c = one_customer_synced(e, "Blind", "blind@example.org");
  const char *id = e2e_str(c, "id");
  e2e_sql(e->order_db, "UPDATE customer_view SET name = 'tampered' WHERE id = '%s'", id);
  json_t *res = reconcile(e);
  assert_int_equal(e2e_int(res, "discrepancies_found"), 0);
  json_decref(res);
  assert_int_equal(
      e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view WHERE name = 'tampered'"), 1);
  e2e_resp r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, AUTH);
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);
  for (int64_t end = wt_now_ms() + 30000;
       e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view WHERE name = 'tampered'") !=
       0;) {
    if (wt_now_ms() > end)
      fail_msg("the snapshot did not repair the tampered row");
    usleep(20000);
  }
  assert_int_equal(e2e_view_diff(e, true), 0);
  assert_int_equal(
      e2e_scalar(e->order_db, "SELECT version FROM customer_view WHERE name = 'Blind'"), 1);
  json_decref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(converges_after_changes, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(catchup_from_empty, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(reconcile_repairs, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(reconcile_blind_spot_repaired_by_snapshot, setup,
                                      e2e_teardown_state),
      cmocka_unit_test_setup_teardown(reconcile_retries_a_deadlock, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e view sync", tests, NULL, NULL);
}
