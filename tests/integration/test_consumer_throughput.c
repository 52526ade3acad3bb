// warren-test: link=warren_test_events timeout=900 labels=perf serial
/* test_consumer_throughput.c: figures, not assertions on speed (the machine is shared).
 *
 * The same pre-loaded events (WARREN_PERF_N, default 10000 WidgetUpdated events over
 * N/10 widgets, versions increasing, 5% duplicates; WARREN_PERF_BATCH, default 200) are routed to
 * two queues: one is drained by a bare rabbitmq-c loop (prefetch 1000, multiple-ack every 100: the
 * ceiling), the other by the warren consumer with the fixture handler (inbox, version
 * guard, a view upsert and a history insert per event, real commits), once with the
 * handler's writes buffered and flushed set-based per batch (wr_consumer_on_batch),
 * once with one statement per write. Smaller shares are then consumed with
 * batch_size 1 (a per-message-commit consumer). Printed: events/s of each and the
 * ratios. Asserted: the final view is right (a fast wrong answer
 * fails). Serial, so that parallel tests do not distort the figures. */
#include "test_consumer_fixture.h"

static unsigned perf_n(void) {
  const char *s = getenv("WARREN_PERF_N");
  unsigned n = s ? (unsigned)strtoul(s, NULL, 10) : 10000;
  return n < 100 ? 100 : n;
}

/* WARREN_PERF_BATCH (default 200): batch size of the batched phases. */
static unsigned perf_batch(void) {
  const char *s = getenv("WARREN_PERF_BATCH");
  unsigned n = s ? (unsigned)strtoul(s, NULL, 10) : 200;
  return n < 2 ? 2 : n > 5000 ? 5000 : n;
}

static void count_cb(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  (void)seq;
  if (status != 0)
    (*(int *)user)++;
}

/* Publishes n events (pipelined, confirms at the end of every 1000). */
static void preload(fx *f, unsigned n, unsigned widgets, const char *prefix) {
  unsigned *ver = calloc(widgets, sizeof *ver);
  assert_non_null(ver);
  char last_id[WR_UUID_STRLEN] = "";
  int bad = 0;
  uint64_t seq = 0;
  unsigned seed = 99;
  for (unsigned i = 0; i < n; i++) {
    unsigned w = (unsigned)rand_r(&seed) % widgets;
    char agg[32];
    snprintf(agg, sizeof agg, "%s%05u", prefix, w);
    bool dup = i > 0 && rand_r(&seed) % 100 < 5;
    fx_ev ev = {.kind = TESTEV_UPDATED,
                .agg_id = agg,
                .version = ++ver[w],
                .name = "p",
                .event_id = dup ? last_id : NULL};
    if (dup)
      ver[w]--; /* a duplicate of the previous event, whatever its widget */
    uint8_t *buf;
    char id[WR_UUID_STRLEN];
    size_t len = fx_pack(f, &ev, &buf, id);
    if (!dup)
      snprintf(last_id, sizeof last_id, "%s", id);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TYPE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG;
    p.content_type = amqp_cstring_bytes("application/x-protobuf");
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.type = amqp_cstring_bytes(f->types[TESTEV_UPDATED].type);
    p.message_id = amqp_cstring_bytes(id);
    wr_publish pub = {.exchange = f->exchange,
                      .routing_key = f->types[TESTEV_UPDATED].type,
                      .body = buf,
                      .len = len,
                      .props = &p};
    wr_err e;
    if (wr_conn_publish(f->pub, &pub, &seq, &e) != 0)
      fail_msg("publish: %s", e.msg);
    free(buf);
    if (i % 1000 == 999 || i + 1 == n)
      assert_int_equal(wr_conn_wait_confirms(f->pub, seq, 60000, count_cb, &bad, &e), 0);
  }
  assert_int_equal(bad, 0);
  free(ver);
}

/* The ceiling: a bare rabbitmq-c drain of `queue`. Returns msgs/s. */
static double raw_drain(const char *queue, unsigned n) {
  amqp_connection_state_t a = wt_amqp_connect();
  amqp_basic_qos(a, 1, 0, 1000, 0);
  assert_int_equal(amqp_get_rpc_reply(a).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_basic_consume(a, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(a).reply_type, AMQP_RESPONSE_NORMAL);
  int64_t t0 = wr_mono_ns();
  for (unsigned i = 0; i < n; i++) {
    amqp_envelope_t env;
    struct timeval tv = {30, 0};
    amqp_maybe_release_buffers(a);
    amqp_rpc_reply_t r = amqp_consume_message(a, &env, &tv, 0);
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    if (i % 100 == 99 || i + 1 == n)
      amqp_basic_ack(a, 1, env.delivery_tag, 1);
    amqp_destroy_envelope(&env);
  }
  double s = (double)(wr_mono_ns() - t0) / 1e9;
  wt_amqp_close(a);
  return n / s;
}

typedef struct settled_arg {
  fx *f;
  uint64_t n;
} settled_arg;

static bool all_settled(void *user) {
  settled_arg *a = user;
  wr_consumer_stats s = fx_stats(a->f);
  return s.applied + s.duplicates + s.stale >= a->n;
}

/* Runs the consumer over the n queued events; returns events/s (start to last commit). */
static double run_consumer(fx *f, uint64_t n) {
  fx_create(f);
  int64_t t0 = wr_mono_ns();
  assert_int_equal(wr_consumer_start(f->c), 0);
  settled_arg a = {f, n};
  if (!wt_wait_until(all_settled, &a, 600000))
    fail_msg("consumer did not settle %llu events", (unsigned long long)n);
  double s = (double)(wr_mono_ns() - t0) / 1e9;
  return (double)n / s;
}

/* Drains n freshly preloaded events with the current f->opts / f->buffered; checks the
 * view and returns events/s. */
static double phase(fx *f, unsigned n, const char *prefix, const char *label) {
  preload(f, n, n / 10 ? n / 10 : 1, prefix);
  double rate = run_consumer(f, n);
  wr_consumer_stats s = fx_stats(f);
  assert_int_equal(s.retried + s.dead_lettered + s.batch_fallbacks, 0);
  /* the view is exact: every widget at its highest published version */
  assert_int_equal(fx_scalar(f, "SELECT count(*) FROM widgets w JOIN warren_versions v"
                                " ON v.aggregate_id = w.id WHERE v.version <> w.version"),
                   0);
  assert_int_equal(
      fx_scalar(f, "SELECT count(*) FROM widgets WHERE id LIKE '%s%%'", prefix),
      fx_scalar(f, "SELECT count(*) FROM warren_versions WHERE aggregate_id LIKE '%s%%'", prefix));
  fx_stop(f, label);
  return rate;
}

static void throughput(void **state) {
  (void)state;
  unsigned n = perf_n();
  fx f;
  fx_init(&f, "perf");
  f.opts.batch_size = perf_batch();
  f.opts.prefetch = (uint16_t)(f.opts.batch_size * 4 > 1000
                                   ? (f.opts.batch_size * 4 > 20000 ? 20000 : f.opts.batch_size * 4)
                                   : 1000);
  f.opts.batch_wait_ms = 2;
  fx_create(&f); /* declares the work queue and binds it */
  wr_consumer_free(f.c);
  f.c = NULL;

  /* the ceiling, on a queue of its own bound to the same exchange */
  char raw[160];
  snprintf(raw, sizeof raw, "%s.raw", f.queue);
  wr_queue_decl d = {.name = raw, .durable = true, .arguments = amqp_empty_table};
  wr_err e;
  assert_int_equal(wr_conn_declare_queue(f.pub, &d, false, NULL, NULL, &e), 0);
  assert_int_equal(wr_conn_bind_queue(f.pub, raw, f.exchange, "#", amqp_empty_table, &e), 0);
  int64_t t0 = wr_mono_ns();
  preload(&f, n, n / 10, "r");
  printf("[ figures  ] preloaded %u events in %.1f s\n", n, (double)(wr_mono_ns() - t0) / 1e9);
  double ceiling = raw_drain(raw, n);
  amqp_connection_state_t a = wt_amqp_connect();
  wt_amqp_delete_queue(a, raw);
  wt_amqp_close(a);
  /* the raw phase also filled the work queue: drain that first (warm-up) */
  f.buffered = true;
  run_consumer(&f, n);
  fx_stop(&f, "warm-up");
  double buffered = phase(&f, n, "b", "set-based, batched");
  f.buffered = false;
  double plain = phase(&f, n / 2, "p", "per-statement, batched");
  f.opts.batch_size = 1;
  double single = phase(&f, n / 20, "s", "per-statement batch 1");
  unsigned bs = perf_batch();
  printf("[ figures  ] raw drain %.0f msg/s | warren, set-based handler, batch %u: %.0f ev/s "
         "(%.0f%% of raw) | per-statement handler, batch %u: %.0f ev/s (%.0f%%) | batch 1: "
         "%.0f ev/s | batch %u / batch 1: x%.1f (set-based) x%.1f (per-statement)\n",
         ceiling, bs, buffered, 100.0 * buffered / ceiling, bs, plain, 100.0 * plain / ceiling,
         single, bs, buffered / single, plain / single);
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(throughput),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
