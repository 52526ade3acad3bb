// warren-test: link=warren_test_events timeout=300
/* test_relay.c: the outbox relay against the real PostgreSQL and RabbitMQ of the test
 * stack. Proves: committed rows arrive exactly once, in id order, with every AMQP
 * property and header and a body that decodes to the appended event; rolled-back
 * appends never arrive; rows are deleted only after the broker's ack (nacks from a
 * full reject-publish queue, returns of unroutable messages and rows for a missing
 * exchange stay with attempts and last_error, and go out later); the relay thread
 * survives such rows; two relays on one outbox publish every row once; NOTIFY and
 * wr_relay_wake wake a relay whose polling interval is 10 s (a session with
 * warren.outbox_notify = off sends no NOTIFY; its rows are found by wake or poll); an idle relay
 * keeps its AMQP connection alive (heartbeats); stop() drains; metrics; the topology is declared on
 * connect; bad options and states. Broker and database restarts are in test_relay_chaos.c. */
#include "test_relay_fixture.h"

#include <pthread.h>
#include <unistd.h>

#include <warren/metrics.h>
#include <warren/topology.h>

#define UPDATED "testev.v1.WidgetUpdated"

static long long rows_where(PGconn *pg, const char *cond) {
  char sql[400];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM warren_outbox WHERE %s", cond);
  return wt_pg_scalar(pg, sql);
}

/* Runs cycles until `want` rows were published in total or `max` cycles ran. */
static size_t run_until(wr_relay *r, size_t want, int max) {
  size_t total = 0;
  for (int i = 0; i < max && total < want; i++) {
    size_t n = 0;
    wr_err err = {0};
    int rc = wr_relay_run_once(r, &n, &err);
    if (rc != 0)
      fail_msg("run_once: %s: %s", wr_errname(rc), err.msg);
    total += n;
    if (n == 0)
      usleep(50 * 1000);
  }
  return total;
}

/* ---- properties and order ----------------------------------------------------------- */

typedef struct order_check {
  char (*ids)[WR_UUID_STRLEN];
  int k;
  const char *exchange;
} order_check;

static void check_message(const amqp_envelope_t *env, void *user) {
  order_check *oc = user;
  int k = oc->k++;
  const amqp_basic_properties_t *p = &env->message.properties;
  char s[256];
  rfx_bytes(env->exchange, s, sizeof s);
  assert_string_equal(s, oc->exchange);
  rfx_bytes(env->routing_key, s, sizeof s);
  assert_string_equal(s, UPDATED);
  amqp_flags_t need = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                      AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG |
                      AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_APP_ID_FLAG |
                      AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
  assert_true((p->_flags & need) == need);
  rfx_bytes(p->content_type, s, sizeof s);
  assert_string_equal(s, "application/x-protobuf");
  assert_int_equal(p->delivery_mode, 2);
  rfx_bytes(p->message_id, s, sizeof s);
  assert_string_equal(s, oc->ids[k]);
  rfx_bytes(p->type, s, sizeof s);
  assert_string_equal(s, UPDATED);
  rfx_bytes(p->correlation_id, s, sizeof s);
  assert_string_equal(s, "corr-1");
  rfx_bytes(p->app_id, s, sizeof s);
  assert_string_equal(s, "relay-test");

  const amqp_field_value_t *v = rfx_header(&p->headers, "x-aggregate-type");
  assert_non_null(v);
  assert_int_equal(v->kind, AMQP_FIELD_KIND_UTF8);
  rfx_bytes(v->value.bytes, s, sizeof s);
  assert_string_equal(s, "widget");
  v = rfx_header(&p->headers, "x-aggregate-id");
  assert_non_null(v);
  rfx_bytes(v->value.bytes, s, sizeof s);
  char want[32];
  snprintf(want, sizeof want, "w-%d", k % 3);
  assert_string_equal(s, want);
  v = rfx_header(&p->headers, "x-version");
  assert_non_null(v);
  assert_int_equal(v->kind, AMQP_FIELD_KIND_I64);
  assert_int_equal(v->value.i64, 1 + k);
  v = rfx_header(&p->headers, "x-causation-id");
  if (k % 2 == 0) {
    assert_non_null(v);
    rfx_bytes(v->value.bytes, s, sizeof s);
    assert_string_equal(s, "0190a000-0000-7000-8000-00000000cafe");
  } else {
    assert_null(v);
  }

  Testev__V1__WidgetUpdated *e =
      testev__v1__widget_updated__unpack(NULL, env->message.body.len, env->message.body.bytes);
  assert_non_null(e);
  assert_non_null(e->meta);
  assert_string_equal(e->meta->event_id, oc->ids[k]);
  assert_string_equal(e->meta->event_type, UPDATED);
  assert_int_equal(e->meta->version, 1 + k);
  assert_non_null(e->meta->occurred_at);
  assert_int_equal((int64_t)p->timestamp, e->meta->occurred_at->seconds);
  assert_int_equal(e->data->count, 1 + k);
  testev__v1__widget_updated__free_unpacked(e, NULL);
}

static void publishes_in_order_with_properties(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_order", true);
  /* A rolled-back append: must never reach the broker. */
  assert_int_equal(wr_db_exec(f.pg, "BEGIN", NULL), 0);
  Testev__V1__WidgetUpdated ev = TESTEV__V1__WIDGET_UPDATED__INIT;
  Warren__V1__EventMeta m = WARREN__V1__EVENT_META__INIT;
  m.aggregate_id = "ghost";
  m.version = 1;
  ev.meta = &m;
  wr_outbox ob = {.conn = f.pg, .exchange = f.exchange};
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_UPDATED], &ev.base), 0);
  char ghost[WR_UUID_STRLEN];
  memcpy(ghost, ob.last_event_id, sizeof ghost);
  assert_int_equal(wr_db_exec(f.pg, "ROLLBACK", NULL), 0);

  enum { N = 250 };
  static char ids[N][WR_UUID_STRLEN];
  rfx_append(f.pg, f.exchange, "w", 3, N, 1, ids);
  f.ro.batch_size = 100;
  wr_relay *r = NULL;
  wr_err err = {0};
  assert_int_equal(wr_relay_new(&f.ro, &r, &err), 0);
  assert_int_equal(run_until(r, N, 100), N);
  assert_int_equal(rfx_outbox_rows(f.pg), 0);
  size_t n = 99;
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 0);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  assert_int_equal(st.published, N);
  assert_int_equal(st.failed, 0);
  assert_int_equal(st.batches, 3);

  rfx_consume(f.amqp, f.queue);
  order_check oc = {.ids = ids, .exchange = f.exchange};
  got_msg g;
  for (int k = 0; k < N; k++) {
    if (!rfx_receive(f.amqp, 10000, &g, check_message, &oc))
      fail_msg("message %d of %d did not arrive", k, N);
    assert_string_not_equal(g.message_id, ghost);
  }
  /* Nothing else: no duplicate, no rolled-back event. */
  assert_false(rfx_receive(f.amqp, 700, &g, NULL, NULL));
  wr_relay_free(r);
  rfx_fini(&f);
}

/* ---- verdicts: nack, return, missing exchange ---------------------------------------- */

static void nacked_rows_stay_until_acked(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_nack", false);
  /* A queue that refuses (nacks) publishes beyond 5 messages. */
  amqp_table_entry_t a[2];
  a[0].key = amqp_cstring_bytes("x-max-length");
  a[0].value.kind = AMQP_FIELD_KIND_I32;
  a[0].value.value.i32 = 5;
  a[1].key = amqp_cstring_bytes("x-overflow");
  a[1].value.kind = AMQP_FIELD_KIND_UTF8;
  a[1].value.value.bytes = amqp_cstring_bytes("reject-publish");
  amqp_table_t args = {.num_entries = 2, .entries = a};
  rfx_bind_queue(f.amqp, f.queue, f.exchange, args);

  enum { N = 12 };
  static char ids[N][WR_UUID_STRLEN];
  rfx_append(f.pg, f.exchange, "n", 2, N, 1, ids);
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  size_t n = 0;
  wr_err err = {0};
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 5);
  assert_int_equal(rfx_outbox_rows(f.pg), N - 5);
  assert_int_equal(rows_where(f.pg, "attempts = 1 AND last_error LIKE 'nacked%' AND "
                                    "next_attempt_at > created_at"),
                   N - 5);
  /* The acked ones are exactly the first five (id order). */
  for (int i = 0; i < 5; i++) {
    char cond[120];
    snprintf(cond, sizeof cond, "event_id = '%s'", ids[i]);
    assert_int_equal(rows_where(f.pg, cond), 0);
  }
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  assert_int_equal(st.published, 5);
  assert_int_equal(st.failed, N - 5);

  /* Make room, let the backoff pass, publish again: everything arrives once. */
  rfx_consume(f.amqp, f.queue);
  static got_msg got[64];
  int total = 0;
  for (int round = 0; round < 40 && (total < N || rfx_outbox_rows(f.pg) > 0); round++) {
    total += rfx_receive_all(f.amqp, N - total, 300, got + total, 64 - total);
    if (rfx_outbox_rows(f.pg) > 0)
      assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  }
  total += rfx_receive_all(f.amqp, N, 500, got + total, 64 - total);
  assert_int_equal(total, N);
  assert_int_equal(rfx_outbox_rows(f.pg), 0);
  for (int i = 0; i < N; i++) {
    int seen = 0;
    for (int j = 0; j < total; j++)
      seen += strcmp(got[j].message_id, ids[i]) == 0;
    if (seen != 1)
      fail_msg("event %d seen %d times", i, seen);
  }
  wr_relay_free(r);
  rfx_fini(&f);
}

static void unroutable_rows_stay_and_retry(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_ret", false); /* exchange, no queue: returned */
  rfx_append(f.pg, f.exchange, "u", 1, 4, 1, NULL);
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  size_t n = 9;
  wr_err err = {0};
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 0);
  assert_int_equal(rfx_outbox_rows(f.pg), 4);
  assert_int_equal(rows_where(f.pg, "attempts = 1 AND last_error LIKE 'returned by the broker%' "
                                    "AND last_error LIKE '%" UPDATED "%'"),
                   4);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  assert_int_equal(st.failed, 4);
  assert_int_equal(st.published, 0);
  /* Again after the backoff: still unroutable, attempts grow. */
  usleep(500 * 1000);
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(rows_where(f.pg, "attempts = 2"), 4);

  /* A queue appears: the rows go out. */
  rfx_bind_queue(f.amqp, f.queue, f.exchange, amqp_empty_table);
  usleep(500 * 1000);
  assert_int_equal(run_until(r, 4, 40), 4);
  assert_int_equal(rfx_outbox_rows(f.pg), 0);
  rfx_consume(f.amqp, f.queue);
  got_msg got[8];
  assert_int_equal(rfx_receive_all(f.amqp, 5, 700, got, 8), 4);
  wr_relay_free(r);
  rfx_fini(&f);
}

typedef struct attempts_cond {
  PGconn *pg;
  const char *cond;
  long long want;
} attempts_cond;

static bool rows_match(void *user) {
  attempts_cond *a = user;
  return rows_where(a->pg, a->cond) == a->want;
}

static void missing_exchange_keeps_relay_running(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_miss", true);
  char missing[80];
  wt_unique(missing, sizeof missing, "rly-missing-x");
  /* Interleaved: good, missing, good, missing, good, missing (id order). */
  for (int i = 0; i < 3; i++) {
    rfx_append(f.pg, f.exchange, "good", 1, 1, 1 + i, NULL);
    rfx_append(f.pg, missing, "bad", 1, 1, 1 + i, NULL);
  }
  f.ro.poll_interval_ms = 100;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  assert_int_equal(wr_relay_start(r), WR_ESTATE);
  assert_int_equal(wr_relay_run_once(r, NULL, NULL), WR_ESTATE);

  rfx_consume(f.amqp, f.queue);
  got_msg got[8];
  assert_int_equal(rfx_receive_all(f.amqp, 3, 10000, got, 8), 3);
  for (int i = 0; i < 3; i++)
    assert_string_equal(got[i].aggregate_id, "good-0");
  /* The bad rows are retried again and again; the relay carries on. */
  attempts_cond ac = {.pg = f.pg,
                      .cond = "attempts >= 3 AND last_error LIKE 'exchange % does "
                              "not exist'",
                      .want = 3};
  assert_true(wt_wait_until(rows_match, &ac, 20000));
  /* Meanwhile new good rows still flow. */
  rfx_append(f.pg, f.exchange, "later", 1, 2, 10, NULL);
  assert_int_equal(rfx_receive_all(f.amqp, 2, 10000, got, 8), 2);
  assert_string_equal(got[0].aggregate_id, "later-0");

  /* The exchange appears (bound to the queue): the parked rows arrive. */
  rfx_declare_exchange(f.amqp, missing);
  amqp_queue_bind(f.amqp, 1, amqp_cstring_bytes(f.queue), amqp_cstring_bytes(missing),
                  amqp_cstring_bytes("#"), amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(f.amqp).reply_type, AMQP_RESPONSE_NORMAL);
  assert_int_equal(rfx_receive_all(f.amqp, 3, 10000, got, 8), 3);
  for (int i = 0; i < 3; i++)
    assert_string_equal(got[i].aggregate_id, "bad-0");
  assert_int_equal(wr_relay_stop(r, 5000), 0);
  assert_int_equal(rfx_outbox_rows(f.pg), 0);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  assert_int_equal(st.published, 8);
  assert_true(st.failed >= 9);
  wr_relay_free(r);
  wt_amqp_delete_exchange(f.amqp, missing);
  rfx_fini(&f);
}

/* ---- several relays ----------------------------------------------------------------- */

static void two_relays_publish_each_row_once(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_two", true);
  enum { TX = 20, PER = 100, N = TX * PER };
  static char ids[N][WR_UUID_STRLEN];
  for (int t = 0; t < TX / 2; t++)
    rfx_append(f.pg, f.exchange, "two", 7, PER, 1 + t * PER, ids + t * PER);
  f.ro.batch_size = 50;
  f.ro.poll_interval_ms = 200;
  wr_relay *a = NULL, *b = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &a, NULL), 0);
  f.ro.name = "rly_two_b";
  assert_int_equal(wr_relay_new(&f.ro, &b, NULL), 0);
  assert_int_equal(wr_relay_start(a), 0);
  assert_int_equal(wr_relay_start(b), 0);
  /* The second half is committed while both run. */
  for (int t = TX / 2; t < TX; t++)
    rfx_append(f.pg, f.exchange, "two", 7, PER, 1 + t * PER, ids + t * PER);
  rfx_wait_rows w = {.pg = f.pg, .want = 0};
  assert_true(wt_wait_until(rfx_rows_are, &w, 60000));
  assert_int_equal(wr_relay_stop(a, 5000), 0);
  assert_int_equal(wr_relay_stop(b, 5000), 0);
  wr_relay_stats sa, sb;
  wr_relay_stats_get(a, &sa);
  wr_relay_stats_get(b, &sb);
  printf("two relays: %" PRIu64 " + %" PRIu64 " rows\n", sa.published, sb.published);
  assert_int_equal(sa.published + sb.published, N);
  assert_int_equal(sa.failed + sb.failed, 0);

  rfx_consume(f.amqp, f.queue);
  static got_msg got[N + 10];
  int total = rfx_receive_all(f.amqp, N + 10, 1500, got, N + 10);
  assert_int_equal(total, N);
  /* Every id exactly once: sort-free check through the version (unique per row). */
  static unsigned char seen[N + 1];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < total; i++) {
    assert_true(got[i].version >= 1 && got[i].version <= N);
    if (seen[got[i].version]++)
      fail_msg("version %" PRId64 " delivered twice", got[i].version);
  }
  wr_relay_free(a);
  wr_relay_free(b);
  rfx_fini(&f);
}

/* ---- waking ------------------------------------------------------------------------- */

static int cmp_ll(const void *x, const void *y) {
  long long a = *(const long long *)x, b = *(const long long *)y;
  return (a > b) - (a < b);
}

static void notify_wakes_relay(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_notify", true);
  f.ro.poll_interval_ms = 10000;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  rfx_consume(f.amqp, f.queue);
  usleep(500 * 1000); /* the relay has found nothing and sleeps */
  enum { ROUNDS = 20 };
  long long lat[ROUNDS];
  got_msg g;
  for (int i = 0; i < ROUNDS; i++) {
    usleep(50 * 1000);
    int64_t t0 = wt_now_ms();
    rfx_append(f.pg, f.exchange, "nfy", 1, 1, 1 + i, NULL); /* returns after COMMIT */
    if (!rfx_receive(f.amqp, 9000, &g, NULL, NULL))
      fail_msg("round %d: not delivered within 9 s (poll interval is 10 s)", i);
    lat[i] = wt_now_ms() - t0;
    assert_int_equal(g.version, 1 + i);
  }
  qsort(lat, ROUNDS, sizeof lat[0], cmp_ll);
  printf("commit -> delivery with NOTIFY (poll 10 s): median %lld ms, max %lld ms\n",
         lat[ROUNDS / 2], lat[ROUNDS - 1]);
  /* Well under the polling interval: NOTIFY, not polling, woke the relay. */
  assert_true(lat[ROUNDS - 1] < 5000);
  assert_int_equal(wr_relay_stop(r, 5000), 0);
  wr_relay_free(r);
  rfx_fini(&f);
}

static void wake_wakes_relay_without_notify(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_wake", true);
  /* A session that turned the NOTIFY off (as the services' pools do): only polling or
   * wr_relay_wake can find its rows. */
  PQclear(wt_pg_exec(f.pg, "SET warren.outbox_notify = off"));
  f.ro.poll_interval_ms = 10000;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  rfx_consume(f.amqp, f.queue);
  usleep(500 * 1000);
  rfx_append(f.pg, f.exchange, "wk", 1, 1, 1, NULL);
  got_msg g;
  /* Not woken by anything: nothing for a while. */
  assert_false(rfx_receive(f.amqp, 1500, &g, NULL, NULL));
  int64_t t0 = wt_now_ms();
  wr_relay_wake(r);
  assert_true(rfx_receive(f.amqp, 8000, &g, NULL, NULL));
  printf("wr_relay_wake -> delivery: %lld ms\n", (long long)(wt_now_ms() - t0));
  assert_true(wt_now_ms() - t0 < 5000);
  assert_int_equal(wr_relay_stop(r, 5000), 0);
  wr_relay_free(r);
  rfx_fini(&f);
}

/* Rows of a session without NOTIFY whose process does not wake the relay (another
 * service instance, for example) are found by polling, within the interval. */
static void poll_finds_rows_without_notify(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_poll", true);
  PQclear(wt_pg_exec(f.pg, "SET warren.outbox_notify = off"));
  f.ro.poll_interval_ms = 1000;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  rfx_consume(f.amqp, f.queue);
  usleep(500 * 1000);
  long long worst = 0;
  got_msg g;
  for (int i = 0; i < 3; i++) {
    int64_t t0 = wt_now_ms();
    rfx_append(f.pg, f.exchange, "pl", 1, 1, 1 + i, NULL);
    /* one interval plus a cycle; generous for a loaded machine */
    if (!rfx_receive(f.amqp, 8000, &g, NULL, NULL))
      fail_msg("round %d: not delivered within 8 s with a 1 s poll interval", i);
    assert_int_equal(g.version, 1 + i);
    if (wt_now_ms() - t0 > worst)
      worst = wt_now_ms() - t0;
  }
  printf("commit -> delivery without NOTIFY or wake (poll 1 s): max %lld ms\n", worst);
  assert_int_equal(wr_relay_stop(r, 5000), 0);
  wr_relay_free(r);
  rfx_fini(&f);
}

/* An idle relay sleeps in poll() for its whole polling interval; the broker must
 * still hear from it, or it drops the connection after two missed heartbeats. */
static void idle_relay_keeps_amqp_alive(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_idle", true);
  f.co.heartbeat_s = 2;
  f.ro.poll_interval_ms = 10000;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  rfx_consume(f.amqp, f.queue);
  rfx_append(f.pg, f.exchange, "idle", 1, 1, 1, NULL);
  got_msg g;
  assert_true(rfx_receive(f.amqp, 8000, &g, NULL, NULL));
  sleep(9); /* > 4 heartbeat intervals without a row */
  rfx_append(f.pg, f.exchange, "idle", 1, 1, 2, NULL);
  assert_true(rfx_receive(f.amqp, 8000, &g, NULL, NULL));
  assert_int_equal(g.version, 2);
  wr_relay_stats st;
  wr_relay_stats_get(r, &st);
  assert_int_equal(st.reconnects, 0);
  assert_int_equal(wr_relay_stop(r, 5000), 0);
  wr_relay_free(r);
  rfx_fini(&f);
}

/* ---- stop --------------------------------------------------------------------------- */

static void stop_drains_outbox(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_drain", true);
  f.ro.poll_interval_ms = 10000;
  f.ro.batch_size = 200;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  assert_int_equal(wr_relay_start(r), 0);
  for (int t = 0; t < 3; t++)
    rfx_append(f.pg, f.exchange, "dr", 5, 500, 1 + t * 500, NULL);
  assert_int_equal(wr_relay_stop(r, 60000), 0);
  assert_int_equal(rfx_outbox_rows(f.pg), 0);
  assert_int_equal(wt_amqp_queue_depth(f.amqp, f.queue), 1500);

  /* Rows that cannot go out: stop gives up at the deadline and leaves them. */
  char dead_x[80];
  wt_unique(dead_x, sizeof dead_x, "rly-drain-noq");
  rfx_declare_exchange(f.amqp, dead_x);
  rfx_append(f.pg, dead_x, "stuck", 1, 3, 1, NULL);
  assert_int_equal(wr_relay_start(r), 0);
  int64_t t0 = wt_now_ms();
  assert_int_equal(wr_relay_stop(r, 800), WR_ETIMEDOUT);
  assert_true(wt_now_ms() - t0 >= 700);
  assert_int_equal(rfx_outbox_rows(f.pg), 3);
  /* Stopping a stopped relay is a no-op. */
  assert_int_equal(wr_relay_stop(r, 0), 0);
  wr_relay_free(r);
  wt_amqp_delete_exchange(f.amqp, dead_x);
  rfx_fini(&f);
}

/* ---- metrics ------------------------------------------------------------------------ */

static void metrics_are_updated(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_metrics", true);
  wr_metrics *m = NULL;
  assert_int_equal(wr_metrics_new(&m), 0);
  f.ro.metrics = m;
  rfx_append(f.pg, f.exchange, "mt", 2, 10, 1, NULL);
  char noq[80];
  wt_unique(noq, sizeof noq, "rly-metrics-noq");
  rfx_declare_exchange(f.amqp, noq);
  rfx_append(f.pg, noq, "mt-noq", 1, 2, 1, NULL);
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  size_t n = 0;
  assert_int_equal(wr_relay_run_once(r, &n, NULL), 0);
  assert_int_equal(n, 10);
  char *text = wr_metrics_render(m);
  assert_non_null(text);
  assert_non_null(strstr(text, "warren_outbox_published_total 10"));
  assert_non_null(strstr(text, "warren_outbox_failed_total 2"));
  assert_non_null(strstr(text, "warren_publish_confirm_seconds_count 1"));
  assert_non_null(strstr(text, "warren_outbox_pending 2"));
  free(text);
  wr_relay_free(r);
  wr_metrics_free(m);
  wt_amqp_delete_exchange(f.amqp, noq);
  rfx_fini(&f);
}

/* ---- topology ----------------------------------------------------------------------- */

static void topology_declared_on_connect(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_topo", false);
  char own_x[80];
  wt_unique(own_x, sizeof own_x, "rly-topo-own");
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_topology_exchange(t, own_x, "topic"), 0);
  f.ro.topology = t;
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  size_t n = 1;
  wr_err err = {0};
  /* Nothing pending, but the cycle connects, and connecting declares the exchange. */
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 0);
  rfx_bind_queue(f.amqp, f.queue, own_x, amqp_empty_table); /* 404 if it did not exist */
  rfx_append(f.pg, own_x, "topo", 1, 3, 1, NULL);
  assert_int_equal(run_until(r, 3, 20), 3);
  assert_int_equal(wt_amqp_queue_depth(f.amqp, f.queue), 3);
  wr_relay_free(r);
  wr_topology_free(t);
  wt_amqp_delete_exchange(f.amqp, own_x);
  rfx_fini(&f);
}

/* Rows written by other means than wr_outbox_append (plain SQL): optional columns
 * empty, and names AMQP cannot carry. The good ones go out without the optional
 * properties, the bad one is pushed back with a reason, the batch goes on. */
static void rows_from_sql(void **state) {
  (void)state;
  rfx f;
  rfx_init(&f, "rly_sql", true);
  char sql[1200];
  snprintf(sql, sizeof sql,
           "INSERT INTO warren_outbox (event_id, event_type, exchange, routing_key, "
           "aggregate_type, aggregate_id, version, occurred_at, payload) VALUES "
           "('0190a000-0000-7000-8000-000000000001', 't.A', '%s', 't.A', 'a', 'x', 1, "
           "'2024-01-02T03:04:05.9Z', decode('0a00', 'hex')), "
           "('0190a000-0000-7000-8000-000000000002', 't.B', '%s', repeat('k', 300), 'a', 'x', "
           "2, now(), decode('0a00', 'hex')), "
           "('0190a000-0000-7000-8000-000000000003', 't.C', '%s', 't.C', 'a', 'x', 3, now(), "
           "'')",
           f.exchange, f.exchange, f.exchange);
  PQclear(wt_pg_exec(f.pg, sql));
  wr_relay *r = NULL;
  assert_int_equal(wr_relay_new(&f.ro, &r, NULL), 0);
  size_t n = 0;
  wr_err err = {0};
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_int_equal(rows_where(f.pg, "version = 2 AND attempts = 1 AND last_error LIKE "
                                    "'refused before publishing: %255 bytes'"),
                   1);
  assert_int_equal(rfx_outbox_rows(f.pg), 1);

  rfx_consume(f.amqp, f.queue);
  amqp_envelope_t env;
  struct timeval tv = {10, 0};
  for (int i = 0; i < 2; i++) {
    amqp_maybe_release_buffers(f.amqp);
    amqp_rpc_reply_t rr = amqp_consume_message(f.amqp, &env, &tv, 0);
    assert_int_equal(rr.reply_type, AMQP_RESPONSE_NORMAL);
    const amqp_basic_properties_t *p = &env.message.properties;
    assert_false(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG);
    assert_false(p->_flags & AMQP_BASIC_APP_ID_FLAG);
    assert_null(rfx_header(&p->headers, "x-causation-id"));
    if (i == 0) {
      /* occurred_at 2024-01-02T03:04:05.9Z: the timestamp is whole seconds, floored */
      assert_int_equal(p->timestamp, 1704164645);
      assert_int_equal(env.message.body.len, 2);
    } else {
      assert_int_equal(env.message.body.len, 0); /* an empty payload is still a message */
    }
    amqp_destroy_envelope(&env);
  }
  wr_relay_free(r);
  rfx_fini(&f);
}

/* ---- options, states, missing table -------------------------------------------------- */

static void bad_options_and_states(void **state) {
  (void)state;
  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = wt_require("WARREN_AMQP_URL");
  wr_relay_opts o = WR_RELAY_OPTS_INIT;
  o.database_url = "postgres://nowhere/x";
  o.amqp = &co;
  wr_relay *r = (wr_relay *)1;
  wr_err err = {0};
  assert_int_equal(wr_relay_new(NULL, &r, &err), WR_EINVAL);
  assert_null(r);
  wr_relay_opts bad = o;
  bad.database_url = NULL;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EINVAL);
  bad = o;
  bad.amqp = NULL;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EINVAL);
  bad = o;
  bad.batch_size = 0;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EINVAL);
  bad = o;
  bad.retry_max_ms = 10;
  bad.retry_base_ms = 100;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EINVAL);
  bad = o;
  bad.poll_interval_ms = 0;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EINVAL);
  wr_conn_opts badurl = co;
  badurl.urls = "http://guest:sekrit@h/";
  bad = o;
  bad.amqp = &badurl;
  assert_int_equal(wr_relay_new(&bad, &r, &err), WR_EURL);
  assert_null(strstr(err.msg, "sekrit"));
  assert_int_equal(wr_relay_run_once(NULL, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_relay_start(NULL), WR_EINVAL);
  wr_relay_free(NULL);
  wr_relay_wake(NULL);
  wr_relay_stats st;
  wr_relay_stats_get(NULL, &st);
  assert_int_equal(st.published, 0);

  /* A database that cannot be reached: run_once reports it, password redacted. */
  o.database_url = "postgres://u:pgsekrit@127.0.0.1:1/x";
  assert_int_equal(wr_relay_new(&o, &r, &err), 0);
  assert_int_equal(wr_relay_run_once(r, NULL, &err), WR_EDB);
  assert_null(strstr(err.msg, "pgsekrit"));
  wr_relay_free(r);
}

static void outbox_table_missing_then_migrated(void **state) {
  (void)state;
  char url[512];
  snprintf(url, sizeof url, "%s", wt_db_create("rly_nomig"));
  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = wt_require("WARREN_AMQP_URL");
  wr_relay_opts o = WR_RELAY_OPTS_INIT;
  o.database_url = url;
  o.amqp = &co;
  wr_relay *r = NULL;
  wr_err err = {0};
  assert_int_equal(wr_relay_new(&o, &r, &err), 0);
  assert_int_equal(wr_relay_run_once(r, NULL, &err), WR_EDB);
  assert_string_equal(err.sqlstate, "42P01");
  PGconn *pg = wt_pg_connect(url);
  assert_int_equal(wr_db_migrate_runtime(pg, &err), 0);
  size_t n = 5;
  assert_int_equal(wr_relay_run_once(r, &n, &err), 0);
  assert_int_equal(n, 0);
  wr_relay_free(r);
  PQfinish(pg);
  wt_db_drop(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(publishes_in_order_with_properties),
      cmocka_unit_test(nacked_rows_stay_until_acked),
      cmocka_unit_test(unroutable_rows_stay_and_retry),
      cmocka_unit_test(missing_exchange_keeps_relay_running),
      cmocka_unit_test(two_relays_publish_each_row_once),
      cmocka_unit_test(notify_wakes_relay),
      cmocka_unit_test(wake_wakes_relay_without_notify),
      cmocka_unit_test(poll_finds_rows_without_notify),
      cmocka_unit_test(idle_relay_keeps_amqp_alive),
      cmocka_unit_test(stop_drains_outbox),
      cmocka_unit_test(metrics_are_updated),
      cmocka_unit_test(topology_declared_on_connect),
      cmocka_unit_test(rows_from_sql),
      cmocka_unit_test(bad_options_and_states),
      cmocka_unit_test(outbox_table_missing_then_migrated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
