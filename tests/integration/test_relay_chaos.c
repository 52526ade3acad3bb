// warren-test: link=warren_test_events timeout=400 labels=chaos serial
/* test_relay_chaos.c: the relay while its servers go away (serial: restarts the shared
 * broker and database of the test stack).
 * - broker restart mid-stream: every committed row reaches the (durable) queue; the
 *   only duplicates are rows of the batch that was in flight;
 * - PostgreSQL restart mid-stream: the relay reconnects by itself and publishes what
 *   was committed before and after the restart. */
#include "test_relay_fixture.h"

#include <pthread.h>
#include <unistd.h>

typedef struct producer {
  const char *db;
  const char *exchange;
  int tx, per;
  int64_t first_version;
  int done;
} producer;

/* Appends tx transactions of per rows, versions first_version.., with short pauses,
 * from its own connection (the relay's outage must not stop the producer). */
static void *produce(void *p) {
  producer *pr = p;
  PGconn *pg = wt_pg_connect(pr->db);
  for (int t = 0; t < pr->tx; t++) {
    rfx_append(pg, pr->exchange, "chaos", 11, pr->per, pr->first_version + (int64_t)t * pr->per,
               NULL);
    usleep(30 * 1000);
  }
  PQfinish(pg);
  __atomic_store_n(&pr->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Reads everything in the queue and checks versions 1..n all arrived; returns the
 * number of duplicates. */
static int collect_and_check(const char *queue, int n) {
  amqp_connection_state_t c = wt_amqp_connect();
  long depth = wt_amqp_queue_depth(c, queue);
  rfx_consume(c, queue);
  unsigned char *seen = calloc((size_t)n + 1, 1);
  int total = 0, dups = 0;
  got_msg g;
  while (rfx_receive(c, 2000, &g, NULL, NULL)) {
    total++;
    if (g.version < 1 || g.version > n)
      fail_msg("unexpected version %" PRId64, g.version);
    if (seen[g.version]++)
      dups++;
  }
  int missing = 0;
  for (int v = 1; v <= n; v++)
    missing += seen[v] == 0;
  printf("queue depth %ld, received %d, duplicates %d, missing %d\n", depth, total, dups, missing);
  free(seen);
  wt_amqp_close(c);
  if (missing)
    fail_msg("%d committed events never reached the queue", missing);
  return dups;
}

static void broker_restart_loses_nothing(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_chaos_mq", true);
  f.ro.batch_size = 100;
  f.ro.poll_interval_ms = 200;
  f.ro.confirm_timeout_ms = 5000;
  f.co.heartbeat_s = 5;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);

  enum { TX = 60, PER = 50, N = TX * PER };
  producer pr = {.db = f.db, .exchange = f.exchange, .tx = TX, .per = PER, .first_version = 1};
  pthread_t th;
  pthread_create(&th, NULL, produce, &pr);
  usleep(700 * 1000); /* mid-stream */
  wt_amqp_close(f.amqp);
  f.amqp = NULL;
  assert_int_equal(wt_stack("rabbit-stop"), 0);
  sleep(1);
  assert_int_equal(wt_stack("rabbit-start"), 0);
  pthread_join(th, NULL);

  rfx_wait_rows w = {.pg = f.pg, .want = 0};
  assert_true(wt_wait_until(rfx_rows_are, &w, 120000));
  assert_int_equal(wr_relay_stop(r, 10000), 0);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  printf("broker restart: published %" PRIu64 ", failed attempts %" PRIu64 ", reconnects %" PRIu64
         "\n",
         st.published, st.failed, st.reconnects);
  assert_true(st.reconnects >= 1);
  assert_true(st.published >= N);

  int dups = collect_and_check(f.queue, N);
  /* At-least-once: only the batch in flight when the broker went away may repeat. */
  assert_true(dups <= (int)f.ro.batch_size);
  wr_relay_free(r);
  f.amqp = wt_amqp_connect();
  rfx_fini(&f);
}

static void postgres_restart_relay_recovers(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_chaos_pg", true);
  f.ro.batch_size = 100;
  f.ro.poll_interval_ms = 200;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);

  enum { FIRST = 2000, SECOND = 500, N = FIRST + SECOND };
  rfx_append(f.pg, f.exchange, "pg", 7, FIRST, 1, NULL);
  assert_int_equal(wt_stack("pg-restart"), 0);
  /* The test's own session died with the server. */
  PQreset(f.pg);
  assert_int_equal(PQstatus(f.pg), CONNECTION_OK);
  rfx_append(f.pg, f.exchange, "pg", 7, SECOND, FIRST + 1, NULL);

  rfx_wait_rows w = {.pg = f.pg, .want = 0};
  assert_true(wt_wait_until(rfx_rows_are, &w, 120000));
  assert_int_equal(wr_relay_stop(r, 10000), 0);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  printf("postgres restart: published %" PRIu64 ", reconnects %" PRIu64 "\n", st.published,
         st.reconnects);
  assert_true(st.reconnects >= 1);
  int dups = collect_and_check(f.queue, N);
  assert_true(dups <= (int)f.ro.batch_size);
  wr_relay_free(r);
  rfx_fini(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(broker_restart_loses_nothing),
      cmocka_unit_test(postgres_restart_relay_recovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
