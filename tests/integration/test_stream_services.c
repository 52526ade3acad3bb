// warren-test: link=warren_devkit,warren_schemas timeout=600
/* test_stream_services.c: the retained customer log and replay, with the real services.
 *
 * - customer-service --event-log-max-age keeps every published event in the stream
 *   customer.events.log (without the option there is no log);
 * - an order-service on an EMPTY database started with --replay-from first loads its
 *   view from the log alone (its customer-service URL points nowhere, so neither the
 *   bulk catch-up nor reconciliation can help) and the view equals the source row by
 *   row;
 * - `warren replay` drives a running order-service (POST /admin/replay) and repairs
 *   a damaged view (rows, guard versions and inbox entries deleted);
 * - bad input: an unknown start position (CLI exit 2, HTTP 422), no admin token (401),
 *   a second replay while one runs (409), a log that does not exist (the service
 *   refuses to start). */
#include "../e2e/e2e.h"

#define LOG_STREAM "customer.events.log"

static bool stream_exists(e2e *e) {
  wr_conn *b = e2e_broker(e);
  wr_queue_decl d = {.name = LOG_STREAM, .durable = true, .arguments = amqp_empty_table};
  wr_err err = {0};
  return wr_conn_declare_queue(b, &d, true, NULL, NULL, &err) == 0;
}

/* Runs the CLI, returns its exit code; its stdout (first line) into out. */
static int run_cli(const char *args, char *out, size_t outsz) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1", wt_bin("warren"), args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = 0;
  out[0] = '\0';
  char line[1024];
  while (fgets(line, sizeof line, p)) {
    printf("[ cli      ] %s", line);
    size_t l = strlen(line);
    if (n + l < outsz) {
      memcpy(out + n, line, l + 1);
      n += l;
    }
  }
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

typedef struct outbox_arg {
  e2e *e;
} outbox_arg;

static bool outbox_empty(void *user) {
  e2e *e = user;
  return e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox") == 0;
}

static json_t *replay_status(e2e *e) {
  const char *h[] = {"Authorization: Bearer " E2E_TOKEN, NULL};
  e2e_resp r = e2e_json("GET", e->order.url, "/admin/replay", NULL, h);
  E2E_EXPECT(r, 200, NULL);
  json_t *j = json_incref(r.json);
  e2e_resp_free(&r);
  return j;
}

static void rebuild_from_log(void **state) {
  (void)state;
  e2e e;
  e2e_init(&e, "streamsvc");
  const char *cust_env[] = {"WARREN_EVENT_LOG_MAX_AGE=1D", NULL};
  e2e_start_customer(&e, cust_env);
  assert_true(stream_exists(&e));

  /* history: 60 created, 30 updated, 10 deleted */
  json_t *ids = e2e_create_many(&e, "replayed", 60, 4);
  for (int i = 0; i < 30; i++) {
    char path[128];
    snprintf(path, sizeof path, "/customers/%s", json_string_value(json_array_get(ids, i)));
    e2e_resp r =
        e2e_json("PATCH", e.customer.url, path, json_pack("{s:s}", "name", "renamed"), NULL);
    E2E_EXPECT(r, 200, NULL);
    e2e_resp_free(&r);
  }
  for (int i = 50; i < 60; i++) {
    char path[128];
    snprintf(path, sizeof path, "/customers/%s", json_string_value(json_array_get(ids, i)));
    e2e_resp r = e2e_json("DELETE", e.customer.url, path, NULL, NULL);
    if (r.status != 200 && r.status != 204)
      fail_msg("DELETE: %d %s", r.status, r.body ? r.body : "");
    e2e_resp_free(&r);
  }
  if (!wt_wait_until(outbox_empty, &e, 60000))
    fail_msg("the customer outbox did not drain");

  /* an order service on an empty database, from the log alone */
  const char *order_env[] = {"WARREN_REPLAY_FROM=first", "CUSTOMER_SERVICE_URL=http://127.0.0.1:9",
                             "WARREN_ADMIN_TOKEN=" E2E_TOKEN, NULL};
  e2e_start_order(&e, order_env);
  int64_t ms = e2e_wait_converged(&e, 60000);
  printf("[ replay   ] view equal to the source %lld ms after ready\n", (long long)ms);
  double catchup = -1;
  wr_err err = {0};
  assert_int_equal(dk_metric(e.order.url, "order_catchup_items_total", &catchup, &err), 0);
  assert_true(catchup == 0); /* the bulk API was never used */
  json_t *st = replay_status(&e);
  char *shown = json_dumps(st, JSON_COMPACT);
  printf("[ replay   ] startup: %s\n", shown ? shown : "?");
  free(shown);
  assert_string_equal(e2e_str(st, "status"), "finished");
  assert_int_equal(e2e_int(st, "applied"), 100);
  assert_int_equal(e2e_int(st, "stale"), 0);
  assert_int_equal(e2e_int(st, "offset"), e2e_int(st, "end"));
  json_decref(st);

  /* damage: rows gone, with their guard versions and every inbox entry */
  e2e_sql(e.order_db,
          "DELETE FROM customer_view WHERE id IN ('%s', '%s', '%s', '%s', '%s');"
          " DELETE FROM warren_versions WHERE aggregate_id IN ('%s', '%s', '%s', '%s', '%s');"
          " DELETE FROM warren_inbox",
          json_string_value(json_array_get(ids, 0)), json_string_value(json_array_get(ids, 10)),
          json_string_value(json_array_get(ids, 35)), json_string_value(json_array_get(ids, 52)),
          json_string_value(json_array_get(ids, 59)), json_string_value(json_array_get(ids, 0)),
          json_string_value(json_array_get(ids, 10)), json_string_value(json_array_get(ids, 35)),
          json_string_value(json_array_get(ids, 52)), json_string_value(json_array_get(ids, 59)));
  assert_int_equal(e2e_view_diff(&e, false), 5);

  /* bad input first */
  char out[4096], args[1024];
  snprintf(args, sizeof args, "replay --from yesterday --into %s --admin-token %s", e.order.url,
           E2E_TOKEN);
  assert_int_equal(run_cli(args, out, sizeof out), 2);
  assert_non_null(strstr(out, "422"));
  snprintf(args, sizeof args, "replay --from first --into %s --admin-token wrong", e.order.url);
  assert_int_equal(run_cli(args, out, sizeof out), 1);
  e2e_resp r =
      e2e_json("POST", e.order.url, "/admin/replay", json_pack("{s:s}", "from", "first"), NULL);
  E2E_EXPECT(r, 401, NULL);
  e2e_resp_free(&r);
  const char *h[] = {"Authorization: Bearer " E2E_TOKEN, NULL};
  r = e2e_json("POST", e.order.url, "/admin/replay",
               json_pack("{s:s,s:i}", "from", "first", "x", 1), h);
  E2E_EXPECT(r, 422, NULL);
  e2e_resp_free(&r);

  /* the repair, driven by the CLI */
  snprintf(args, sizeof args, "replay --from first --into %s --admin-token %s --timeout 120",
           e.order.url, E2E_TOKEN);
  assert_int_equal(run_cli(args, out, sizeof out), 0);
  assert_non_null(strstr(out, "replay finished"));
  assert_int_equal(e2e_view_diff(&e, true), 0);
  st = replay_status(&e);
  /* the damaged aggregates came back; the others are stale against their guard rows */
  assert_true(e2e_int(st, "applied") >= 5);
  json_decref(st);

  /* one at a time */
  r = e2e_json("POST", e.order.url, "/admin/replay", json_pack("{s:s}", "from", "first"), h);
  E2E_EXPECT(r, 202, NULL);
  e2e_resp_free(&r);
  r = e2e_json("POST", e.order.url, "/admin/replay", json_pack("{s:s}", "from", "first"), h);
  E2E_EXPECT(r, 409, "replay_running");
  e2e_resp_free(&r);
  for (int64_t end = wt_now_ms() + 60000;;) {
    st = replay_status(&e);
    bool done = strcmp(e2e_str(st, "status"), "running") != 0;
    json_decref(st);
    if (done)
      break;
    if (wt_now_ms() > end)
      fail_msg("replay did not end");
    usleep(100000);
  }
  /* the live consumer runs again after a replay: a new customer reaches the view */
  json_t *c = e2e_create_customer(&e, "after replay", "after-replay@example.org", NULL);
  e2e_wait_view(&e, e2e_str(c, "id"), 1, "active", 30000);
  json_decref(c);
  json_decref(ids);
  assert_int_equal(e2e_stop(&e.order), 0);

  /* a log that does not exist: the service says so and exits */
  const char *bad_env[] = {"WARREN_REPLAY_FROM=first", "WARREN_REPLAY_STREAM=no.such.log",
                           "CUSTOMER_SERVICE_URL=http://127.0.0.1:9", NULL};
  e2e_start(&e, &e.order, "order", bad_env, false);
  int code = dk_stop(&e.order, 0, 30000); /* signal 0: wait for it to exit by itself */
  assert_int_equal(code, 1);
  assert_int_equal(e2e_stop(&e.customer), 0);
  e2e_done(&e);
}

static void no_log_without_option(void **state) {
  (void)state;
  e2e e;
  e2e_init(&e, "streamoff");
  e2e_start_customer(&e, NULL);
  assert_false(stream_exists(&e));
  /* a retention the broker would refuse: the service refuses to start (usage, 2) */
  static const char *const bad[] = {"7 days", "0D", "7", "7d", "1.5D"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char env_age[64], env_db[600], env_amqp[1100], log[1024];
    snprintf(env_age, sizeof env_age, "WARREN_EVENT_LOG_MAX_AGE=%s", bad[i]);
    snprintf(env_db, sizeof env_db, "WARREN_DATABASE_URL=%s", e.customer_db);
    snprintf(env_amqp, sizeof env_amqp, "WARREN_AMQP_URL=%s", e.amqp_url);
    const char *env[] = {env_db, env_amqp, "WARREN_HTTP_ADDR=127.0.0.1:0", env_age, NULL};
    e2e_log_path(&e, "customer-bad", log, sizeof log);
    dk_proc p;
    e2e_spawn(&p, "customer-service", wt_bin("customer-service"), env, log);
    assert_int_equal(dk_stop(&p, 0, 30000), 2);
  }
  assert_int_equal(e2e_stop(&e.customer), 0);
  e2e_done(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rebuild_from_log),
      cmocka_unit_test(no_log_without_option),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
