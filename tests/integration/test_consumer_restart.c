// warren-test: link=warren_test_events timeout=600 serial
/* test_consumer_restart.c: the consumer rides through server restarts (serial: it
 * stops the shared broker and database).
 *
 * - broker restart: the consumer reconnects with backoff, its durable queue and
 *   bindings are declared again, events published after the restart are applied,
 *   and nothing is applied twice;
 * - database restart in the middle of a stream: the batch in flight is kept, the
 *   consumer reconnects to PostgreSQL and runs it again; every event is applied
 *   exactly once. */
#include "test_consumer_fixture.h"

static void publish_range(fx *f, const char *prefix, int from, int to) {
  for (int i = from; i < to; i++) {
    char agg[32];
    snprintf(agg, sizeof agg, "%s%03d", prefix, i);
    fx_simple(f, TESTEV_CREATED, agg, 1, "ok");
  }
}

static void broker_restart_resumes(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "brestart");
  fx_start(&f);
  publish_range(&f, "a", 0, 20);
  FX_WAIT_STAT(&f, applied, 20, 30000);

  assert_int_equal(wt_stack("rabbit-stop"), 0);
  usleep(500000);
  assert_int_equal(wt_stack("rabbit-start"), 0);
  wr_err e;
  wr_err_clear(&e);
  if (wr_conn_reconnect(f.pub, NULL, &e) != 0)
    fail_msg("publisher reconnect: %s", e.msg);

  publish_range(&f, "b", 0, 20);
  FX_WAIT_STAT(&f, applied, 40, 120000);
  wr_consumer_stats s = fx_stats(&f);
  assert_true(s.reconnects >= 1);
  assert_int_equal(s.dead_lettered + s.retried, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 40);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) - count(DISTINCT event_id) FROM history"), 0);
  fx_stop(&f, "broker restart");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

static void database_restart_resumes(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "pgrestart");
  f.opts.batch_size = 10;
  f.opts.batch_wait_ms = 5;
  fx_start(&f);
  publish_range(&f, "a", 0, 20);
  FX_WAIT_STAT(&f, applied, 20, 30000);

  assert_int_equal(wt_stack("pg-restart"), 0);
  publish_range(&f, "b", 0, 100);
  FX_WAIT_STAT(&f, applied, 120, 120000);
  PQreset(f.pg);
  assert_int_equal(PQstatus(f.pg), CONNECTION_OK);
  wr_consumer_stats s = fx_stats(&f);
  assert_true(s.reconnects >= 1);
  assert_int_equal(s.dead_lettered + s.retried, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 120);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) - count(DISTINCT event_id) FROM history"), 0);
  fx_stop(&f, "database restart");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(broker_restart_resumes),
      cmocka_unit_test(database_restart_resumes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
