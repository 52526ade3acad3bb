// warren-test: link=warren_test_events timeout=600
/* test_consumer.c: the reliable consumer against a real RabbitMQ and PostgreSQL.
 *
 * Each test has its own queue, exchange and database; events are published straight
 * to the exchange. What each test proves is written above it. */
#include "test_consumer_fixture.h"

/* ---- options and topology ---------------------------------------------------------- */

/* Bad options are refused before anything connects; the declared layout is the one
 * DESIGN.md describes. */
static void options_and_topology(void **state) {
  (void)state;
  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = "amqp://guest:guest@127.0.0.1:1/";
  wr_consumer_opts o = WR_CONSUMER_OPTS_INIT;
  wr_consumer *c = NULL;
  wr_err e;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  assert_null(c);
  o.queue = "q.topo";
  o.database_url = "postgres://nowhere/db";
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL); /* no amqp */
  o.amqp = &co;
  o.batch_size = 0;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.batch_size = 10;
  o.prefetch = 0;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.prefetch = 10;
  unsigned zero[1] = {0};
  o.retry_delays_ms = zero;
  o.n_retry_delays = 1;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.retry_delays_ms = NULL;
  o.n_retry_delays = 3;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.n_retry_delays = 0;
  o.unknown_types = (wr_unknown_policy)7;
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.unknown_types = WR_UNKNOWN_DEAD_LETTER;
  co.urls = "not a url";
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EURL);
  co.urls = "amqp://guest:guest@127.0.0.1:1/";

  unsigned delays[2] = {1000, 5000};
  o.retry_delays_ms = delays;
  o.n_retry_delays = 2;
  assert_int_equal(wr_consumer_new(&o, &c, &e), 0);
  assert_int_equal(wr_consumer_on(c, &testev_events[TESTEV_CREATED], fx_handle, NULL, NULL), 0);
  assert_int_equal(wr_consumer_on(c, &testev_events[TESTEV_CREATED], fx_handle, NULL, NULL),
                   WR_EEXIST);
  assert_int_equal(wr_consumer_on(c, NULL, fx_handle, NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_consumer_on(c, &testev_events[TESTEV_DELETED], NULL, NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_consumer_on(c, &testev_events[TESTEV_DELETED], fx_handle, NULL, NULL), 0);
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_consumer_topology(c, t), 0);
  char *text = wr_topology_render(t);
  assert_non_null(text);
  printf("%s", text);
  assert_non_null(strstr(text, "exchange testev.events topic"));
  assert_non_null(strstr(text, "exchange q.topo.dlx"));
  assert_non_null(strstr(text, "queue q.topo.dlq"));
  assert_non_null(strstr(text, "queue q.topo.retry.1"));
  assert_non_null(strstr(text, "queue q.topo.retry.2"));
  assert_null(strstr(text, "queue q.topo.retry.3"));
  assert_non_null(strstr(text, "x-delivery-limit=20"));
  assert_non_null(strstr(text, "testev.v1.WidgetCreated"));
  assert_non_null(strstr(text, "testev.v1.WidgetDeleted"));
  assert_null(strstr(text, "testev.v1.WidgetUpdated"));
  /* the DLQ is declared before the work queue that dead-letters into it */
  assert_true(strstr(text, "queue q.topo.dlq") < strstr(text, "queue q.topo "));
  free(text);
  wr_topology_free(t);
  wr_consumer_free(c);
  wr_consumer_free(NULL);
}

/* ---- the happy path ------------------------------------------------------------------ */

/* 10 widgets x 5 versions are applied once each, in version order, everything is
 * acked (nothing comes back after a restart), and the metrics say so. */
static void applied_once(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "applied");
  assert_int_equal(wr_metrics_new(&f.metrics), 0);
  f.opts.metrics = f.metrics;
  fx_start(&f);
  for (int v = 1; v <= 5; v++)
    for (int w = 0; w < 10; w++) {
      char agg[16];
      snprintf(agg, sizeof agg, "w%d", w);
      fx_simple(&f, v == 1 ? TESTEV_CREATED : TESTEV_UPDATED, agg, (uint64_t)v, "ok");
    }
  FX_WAIT_STAT(&f, applied, 50, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.applied, 50);
  assert_int_equal(s.duplicates + s.stale + s.retried + s.dead_lettered, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 50);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE version = 5 AND count = 50"),
                   10);
  assert_int_equal(
      fx_scalar(&f, "SELECT count(*) FROM warren_inbox WHERE consumer = '%s'", f.queue), 50);
  assert_int_equal(fx_scalar(&f,
                             "SELECT count(*) FROM warren_versions WHERE scope = '%s'"
                             " AND version = 5",
                             f.queue),
                   10);
  char *m = wr_metrics_render(f.metrics);
  assert_non_null(m);
  char want[300];
  snprintf(want, sizeof want, "warren_events_consumed_total{queue=\"%s\",result=\"applied\"} 50",
           f.queue);
  assert_non_null(strstr(m, want));
  assert_non_null(strstr(m, "warren_sync_latency_seconds_count"));
  assert_non_null(strstr(m, "warren_consumer_batch_size"));
  free(m);
  fx_stop(&f, "applied_once");
  /* nothing unacked came back */
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* The same event id three times in separate batches, and three more times inside one
 * batch, is applied once; the others are counted as duplicates and acked. */
static void duplicates_applied_once(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "dups");
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 300;
  fx_create(&f);
  char id[WR_UUID_STRLEN];
  assert_int_equal(wr_uuid_v7(id), 0);
  fx_ev ev = {.kind = TESTEV_CREATED, .event_id = id, .agg_id = "d1", .version = 1, .name = "x"};
  /* three copies queued before the consumer starts: one batch */
  for (int i = 0; i < 3; i++)
    fx_event(&f, &ev, NULL);
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, duplicates, 2, 20000);
  assert_int_equal(fx_stats(&f).batches, 1);
  /* three more, one at a time */
  for (int i = 0; i < 3; i++) {
    fx_event(&f, &ev, NULL);
    FX_WAIT_STAT(&f, duplicates, 3 + (uint64_t)i, 20000);
  }
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.applied, 1);
  assert_int_equal(s.duplicates, 5);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 1);
  fx_stop(&f, "duplicates");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* Versions 1..40 of one widget arrive shuffled: the view ends at 40 and never went
 * back (each applied version is higher than the previous applied one). */
static void out_of_order_never_regresses(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "order");
  fx_start(&f);
  unsigned order[40];
  for (unsigned i = 0; i < 40; i++)
    order[i] = i + 1;
  unsigned seed = 7;
  for (unsigned i = 39; i > 0; i--) {
    unsigned j = (unsigned)rand_r(&seed) % (i + 1);
    unsigned x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (unsigned i = 0; i < 40; i++)
    fx_simple(&f, TESTEV_UPDATED, "o1", order[i], "v");
  for (int64_t end = wt_now_ms() + 30000;;) {
    wr_consumer_stats s = fx_stats(&f);
    if (s.applied + s.stale >= 40)
      break;
    if (wt_now_ms() > end)
      fail_msg("not all versions settled");
    usleep(20000);
  }
  wr_consumer_stats s = fx_stats(&f);
  assert_true(s.stale > 0);
  assert_int_equal(s.applied + s.stale, 40);
  assert_int_equal(fx_scalar(&f, "SELECT version FROM widgets WHERE id = 'o1'"), 40);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM (SELECT version, lag(version) OVER"
                                 " (ORDER BY seq) AS prev FROM history) h WHERE version <= prev"),
                   0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), (long long)s.applied);
  fx_stop(&f, "out_of_order");
  fx_done(&f);
}

/* Created v1, Deleted v3, then a late Updated v2 and a newer Updated v4: the widget
 * stays deleted at version 3. A newer deletion (v5) is still recorded. */
static void tombstone_stops_resurrection(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "tomb");
  fx_start(&f);
  fx_simple(&f, TESTEV_CREATED, "t1", 1, "alive");
  fx_simple(&f, TESTEV_DELETED, "t1", 3, "gone");
  fx_simple(&f, TESTEV_UPDATED, "t1", 2, "late");
  fx_simple(&f, TESTEV_UPDATED, "t1", 4, "zombie");
  for (int64_t end = wt_now_ms() + 20000;;) {
    wr_consumer_stats s = fx_stats(&f);
    if (s.applied + s.stale >= 4)
      break;
    if (wt_now_ms() > end)
      fail_msg("tombstone events not settled");
    usleep(20000);
  }
  assert_int_equal(fx_stats(&f).applied, 2);
  assert_int_equal(fx_stats(&f).stale, 2);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 't1' AND deleted"
                                 " AND version = 3 AND name = 'alive'"),
                   1);
  uint64_t v = 0;
  bool tomb = false;
  assert_int_equal(wr_guard_get(f.pg, f.queue, "widget", "t1", &v, &tomb, NULL), 0);
  assert_int_equal(v, 3);
  assert_true(tomb);
  fx_simple(&f, TESTEV_DELETED, "t1", 5, "again");
  FX_WAIT_STAT(&f, applied, 3, 20000);
  assert_int_equal(wr_guard_get(f.pg, f.queue, "widget", "t1", &v, &tomb, NULL), 0);
  assert_int_equal(v, 5);
  assert_true(tomb);
  fx_stop(&f, "tombstone");
  fx_done(&f);
}

/* ---- failures --------------------------------------------------------------------- */

/* A handler failing on attempts 0 and 1 succeeds on attempt 2, after waiting in tier 1
 * (200 ms) and tier 2 (400 ms): the observed gaps are at least the tiers' TTLs. */
static void transient_failure_retries(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "retry");
  fx_start(&f);
  fx_simple(&f, TESTEV_CREATED, "r1", 1, "fail-until-2");
  fx_simple(&f, TESTEV_CREATED, "r2", 1, "ok"); /* not held up meanwhile */
  FX_WAIT_STAT(&f, applied, 2, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.retried, 2);
  assert_int_equal(s.dead_lettered, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history WHERE id = 'r1'"), 1);
  int64_t at[3] = {0, 0, 0};
  int seen = 0;
  pthread_mutex_lock(&f.mu);
  for (size_t i = 0; i < f.n_attempts; i++)
    if (strcmp(f.attempts[i].agg_id, "r1") == 0 && f.attempts[i].attempt < 3) {
      at[f.attempts[i].attempt] = f.attempts[i].at_ms;
      seen |= 1 << f.attempts[i].attempt;
    }
  pthread_mutex_unlock(&f.mu);
  assert_int_equal(seen, 7);
  printf("[ figures  ] retry gaps: %lld ms (tier 200 ms), %lld ms (tier 400 ms)\n",
         (long long)(at[1] - at[0]), (long long)(at[2] - at[1]));
  assert_true(at[1] - at[0] >= 200);
  assert_true(at[2] - at[1] >= 400);
  fx_stop(&f, "transient");
  assert_int_equal(fx_depth(&f, ".dlq"), 0);
  assert_int_equal(fx_depth(&f, ".retry.1"), 0);
  assert_int_equal(fx_depth(&f, ".retry.2"), 0);
  fx_done(&f);
}

static bool hdr_str(const amqp_table_t *t, const char *key, char *out, size_t n) {
  return wr_table_get_str(t, key, out, n);
}

/* Takes the one message of the DLQ (basic.get + ack). */
static void dlq_take(fx *f, amqp_envelope_t *env) {
  char q[160];
  snprintf(q, sizeof q, "%s.dlq", f->queue);
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_conn_get(f->pub, q, env, &e);
  if (rc != 0)
    fail_msg("DLQ get: %s", e.msg);
  assert_int_equal(wr_conn_ack(f->pub, env->delivery_tag, false, &e), 0);
}

/* A handler that always fails goes through both tiers and lands in the DLQ with
 * x-warren-error, x-warren-attempts = 3, x-warren-failed-at, x-warren-consumer, the
 * original exchange/routing key, RabbitMQ's x-death from the tiers, and its body and
 * properties intact. A rejecting handler goes to the DLQ at once. */
static void permanent_failure_dead_letters(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "perm");
  fx_start(&f);
  char id[WR_UUID_STRLEN];
  fx_ev ev = {.kind = TESTEV_UPDATED, .agg_id = "p1", .version = 1, .name = "fail-always"};
  fx_event(&f, &ev, id);
  int64_t t0 = wt_now_ms();
  FX_WAIT_STAT(&f, dead_lettered, 1, 30000);
  int64_t t1 = wt_now_ms();
  fx_wait_depth(&f, ".dlq", 1, 10000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.retried, 2);
  assert_int_equal(s.applied, 0);

  amqp_envelope_t env;
  dlq_take(&f, &env);
  const amqp_basic_properties_t *p = &env.message.properties;
  assert_true(p->_flags & AMQP_BASIC_HEADERS_FLAG);
  const amqp_table_t *h = &p->headers;
  char buf[600];
  assert_true(hdr_str(h, "x-warren-error", buf, sizeof buf));
  printf("[ dlq      ] x-warren-error: %s\n", buf);
  assert_non_null(strstr(buf, "always fails"));
  int64_t n = 0;
  assert_true(wr_table_get_int(h, "x-warren-attempts", &n));
  assert_int_equal(n, 3);
  assert_true(wr_table_get_int(h, "x-warren-failed-at", &n));
  int64_t now_ms = wr_now_ns() / 1000000;
  assert_true(n <= now_ms && n >= now_ms - (t1 - t0) - 60000);
  assert_true(hdr_str(h, "x-warren-consumer", buf, sizeof buf));
  assert_string_equal(buf, f.queue);
  assert_true(hdr_str(h, "x-warren-original-exchange", buf, sizeof buf));
  assert_string_equal(buf, f.exchange);
  assert_true(hdr_str(h, "x-warren-original-routing-key", buf, sizeof buf));
  assert_string_equal(buf, "testev.v1.WidgetUpdated");
  const amqp_field_value_t *xd = wr_table_get(h, "x-death");
  assert_non_null(xd);
  assert_int_equal(xd->kind, AMQP_FIELD_KIND_ARRAY);
  assert_true(xd->value.array.num_entries >= 2); /* both retry tiers expired into it */
  assert_true(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG);
  assert_int_equal(p->message_id.len, strlen(id));
  assert_memory_equal(p->message_id.bytes, id, strlen(id));
  assert_int_equal(p->delivery_mode, AMQP_DELIVERY_PERSISTENT);
  /* the body is the original event */
  wr_err e;
  ProtobufCMessage *dec = NULL;
  assert_int_equal(wr_event_decode(&f.types[TESTEV_UPDATED], env.message.body.bytes,
                                   env.message.body.len, 0, &dec, &e),
                   0);
  assert_string_equal(wr_event_meta(dec)->event_id, id);
  wr_event_free(dec);
  amqp_destroy_envelope(&env);

  /* WR_EREJECT: straight to the DLQ, one attempt */
  fx_simple(&f, TESTEV_UPDATED, "p2", 1, "reject");
  FX_WAIT_STAT(&f, dead_lettered, 2, 30000);
  fx_wait_depth(&f, ".dlq", 1, 10000);
  dlq_take(&f, &env);
  assert_true(wr_table_get_int(&env.message.properties.headers, "x-warren-attempts", &n));
  assert_int_equal(n, 1);
  assert_true(hdr_str(&env.message.properties.headers, "x-warren-error", buf, sizeof buf));
  assert_non_null(strstr(buf, "rejected"));
  amqp_destroy_envelope(&env);
  assert_int_equal(fx_stats(&f).retried, 2);
  fx_stop(&f, "permanent");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* ---- poison and malformed events ---------------------------------------------------- */

typedef struct poison {
  const char *label;
  const char *expect_error; /* substring of x-warren-error */
} poison;

/* Published in one burst with healthy events between them: bytes that are not
 * protobuf, an unknown type, no meta, version 0, a wrong aggregate type, a 1 MiB body
 * over the size limit, data.id != meta.aggregate_id (the handler rejects), a handler
 * that leaves its transaction aborted, and an empty body. Each lands in the DLQ with
 * its reason; every healthy event is applied; a 1 MiB event under the limit and an
 * event with unknown fields are accepted. */
static void poison_never_blocks(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "poison");
  f.opts.max_message_size = 1536 * 1024;
  f.opts.n_retry_delays = 0; /* handler failures go straight to the DLQ */
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 200;
  fx_create(&f);
  int healthy = 0;
#define HEALTHY()                                                                                  \
  do {                                                                                             \
    char agg_[16];                                                                                 \
    snprintf(agg_, sizeof agg_, "h%d", healthy++);                                                 \
    fx_simple(&f, TESTEV_CREATED, agg_, 1, "ok");                                                  \
  } while (0)
  const char *created = f.types[TESTEV_CREATED].type;

  HEALTHY();
  fx_send(&f, created, created, "\xff\xff\xff garbage \x01", 13, "garbage-1");
  HEALTHY();
  {
    uint8_t *b;
    fx_ev ev = {.kind = TESTEV_CREATED, .agg_id = "u1", .version = 1};
    size_t n = fx_pack(&f, &ev, &b, NULL);
    fx_send(&f, created, "testev.v1.NoSuchEvent", b, n, "unknown-1");
    free(b);
  }
  HEALTHY();
  fx_ev nometa = {.kind = TESTEV_CREATED, .agg_id = "m1", .version = 1, .no_meta = true};
  fx_event(&f, &nometa, NULL);
  HEALTHY();
  fx_ev v0 = {.kind = TESTEV_CREATED, .agg_id = "v0", .version = 0};
  fx_event(&f, &v0, NULL);
  HEALTHY();
  fx_ev wrongtype = {.kind = TESTEV_CREATED, .agg_id = "g1", .version = 1, .agg_type = "gadget"};
  fx_event(&f, &wrongtype, NULL);
  HEALTHY();
  {
    size_t big = 2u << 20;
    char *name = malloc(big + 1);
    assert_non_null(name);
    memset(name, 'a', big);
    name[big] = '\0';
    fx_ev ev = {.kind = TESTEV_CREATED, .agg_id = "big2", .version = 1, .name = name};
    fx_event(&f, &ev, NULL); /* 2 MiB: over the 1.5 MiB limit */
    name[1u << 20] = '\0';
    fx_ev ok = {.kind = TESTEV_CREATED, .agg_id = "big1", .version = 1, .name = name};
    fx_event(&f, &ok, NULL); /* 1 MiB: accepted */
    free(name);
  }
  HEALTHY();
  fx_ev mismatch = {.kind = TESTEV_CREATED, .agg_id = "x1", .version = 1, .data_id = "x2"};
  fx_event(&f, &mismatch, NULL);
  HEALTHY();
  fx_simple(&f, TESTEV_CREATED, "s1", 1, "sqlerr");
  HEALTHY();
  fx_send(&f, created, created, "", 0, "empty-1");
  HEALTHY();
  {
    /* unknown fields (forward compatibility): field 99 varint and field 100 bytes */
    uint8_t *b;
    fx_ev ev = {.kind = TESTEV_CREATED, .agg_id = "fwd", .version = 1, .name = "future"};
    size_t n = fx_pack(&f, &ev, &b, NULL);
    uint8_t *b2 = malloc(n + 16);
    memcpy(b2, b, n);
    const uint8_t extra[] = {0x98, 0x06, 0x2a, 0xa2, 0x06, 0x03, 'n', 'e', 'w'};
    memcpy(b2 + n, extra, sizeof extra);
    fx_send(&f, created, created, b2, n + sizeof extra, NULL);
    free(b);
    free(b2);
  }
  HEALTHY();
#undef HEALTHY
  const int n_poison = 9;
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, dead_lettered, (uint64_t)n_poison, 60000);
  FX_WAIT_STAT(&f, applied, (uint64_t)healthy + 2, 60000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.applied, healthy + 2);
  assert_int_equal(s.dead_lettered, n_poison);
  assert_true(s.batch_fallbacks >= 1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id LIKE 'h%%'"), healthy);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id IN ('big1', 'fwd')"), 2);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id IN ('x1','x2','s1',"
                                 "'m1','v0','g1','big2','u1')"),
                   0);
  fx_wait_depth(&f, ".dlq", n_poison, 10000);

  static const char *const reasons[] = {"WR_EDECODE", "WR_ENOHANDLER",    "WR_EMETA", "WR_ETOOBIG",
                                        "mismatch",   "statement failed", "failed"};
  int found[7] = {0};
  for (int i = 0; i < n_poison; i++) {
    amqp_envelope_t env;
    dlq_take(&f, &env);
    char err[600] = "";
    assert_true(hdr_str(&env.message.properties.headers, "x-warren-error", err, sizeof err));
    printf("[ dlq      ] %s\n", err);
    for (int r = 0; r < 7; r++)
      if (strstr(err, reasons[r]))
        found[r]++;
    int64_t attempts = 0;
    assert_true(wr_table_get_int(&env.message.properties.headers, "x-warren-attempts", &attempts));
    assert_int_equal(attempts, 1);
    amqp_destroy_envelope(&env);
  }
  /* garbage; an empty body decodes to an empty message, so it may be either */
  assert_true(found[0] >= 1);
  assert_int_equal(found[1], 1);
  assert_true(found[0] + found[2] >= 5); /* + no meta, version 0, aggregate type */
  assert_int_equal(found[3], 1);
  assert_int_equal(found[4], 1);
  assert_true(found[5] + found[6] >= 1); /* the aborted transaction */
  fx_stop(&f, "poison");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* Unknown types with WR_UNKNOWN_SKIP are acked and counted, not dead-lettered; a type
 * taken from the routing key (no `type` property) works too. */
static void unknown_types_skipped(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "skip");
  f.opts.unknown_types = WR_UNKNOWN_SKIP;
  fx_start(&f);
  uint8_t *b;
  fx_ev ev = {.kind = TESTEV_CREATED, .agg_id = "k1", .version = 1};
  size_t n = fx_pack(&f, &ev, &b, NULL);
  fx_send(&f, f.types[TESTEV_CREATED].type, "testev.v1.Other", b, n, NULL);
  fx_send(&f, f.types[TESTEV_CREATED].type, NULL, b, n, NULL); /* routing key = type */
  free(b);
  FX_WAIT_STAT(&f, skipped, 1, 20000);
  FX_WAIT_STAT(&f, applied, 1, 20000);
  assert_int_equal(fx_stats(&f).dead_lettered, 0);
  fx_stop(&f, "skip");
  assert_int_equal(fx_depth(&f, ".dlq"), 0);
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* One batch of 30 with one failing message in the middle: the batch is rolled back
 * and re-run one by one, the 29 others are applied, the failing one alone goes to the
 * DLQ, and nothing of it was committed. */
static void batch_fallback_isolates_poison(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "fallback");
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 300;
  f.opts.n_retry_delays = 0;
  fx_create(&f);
  for (int i = 0; i < 30; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "b%02d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, i == 15 ? "fail-always" : "ok");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, dead_lettered, 1, 30000);
  FX_WAIT_STAT(&f, applied, 29, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.batch_fallbacks, 1);
  assert_int_equal(s.applied, 29);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets"), 29);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'b15'"), 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM warren_inbox"), 29);
  fx_stop(&f, "fallback");
  fx_done(&f);
}

/* Attempts of aggregate `agg` at attempt number `attempt`, in order. */
static size_t attempts_of(fx *f, const char *agg, unsigned attempt, int64_t *at, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < f->n_attempts && n < max; i++)
    if (strcmp(f->attempts[i].agg_id, agg) == 0 && f->attempts[i].attempt == attempt)
      at[n++] = f->attempts[i].at_ms;
  pthread_mutex_unlock(&f->mu);
  return n;
}

typedef struct att_arg {
  fx *f;
  const char *agg;
  size_t n;
} att_arg;

static bool attempts_reached(void *user) {
  att_arg *a = user;
  int64_t at[16];
  return attempts_of(a->f, a->agg, 0, at, 16) >= a->n;
}

static void redeclare(fx *f) {
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_consumer_topology(f->c, t), 0);
  wr_err e;
  wr_err_clear(&e);
  if (wr_topology_declare(t, f->pub, &e) != 0)
    fail_msg("redeclare: %s", e.msg);
  wr_topology_free(t);
}

/* A copy the broker does not take (the retry tier's queue was deleted: unroutable;
 * the DLX exchange was deleted: 404 closes the channel) is never acked away: the
 * original comes back, only after a backoff (no hot loop), and goes through once the
 * topology is there again. Nothing is lost. */
static void unconfirmed_copy_requeued_after_backoff(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "nocopy");
  fx_start(&f);
  amqp_connection_state_t a = wt_amqp_connect();
  char name[200];
  snprintf(name, sizeof name, "%s.retry.1", f.queue);
  wt_amqp_delete_queue(a, name);

  fx_simple(&f, TESTEV_CREATED, "n1", 1, "fail-until-1");
  att_arg aa = {&f, "n1", 4};
  assert_true(wt_wait_until(attempts_reached, &aa, 30000));
  int64_t at[16];
  size_t n = attempts_of(&f, "n1", 0, at, 16);
  for (size_t i = 1; i < n; i++) {
    printf("[ figures  ] unroutable copy: attempt gap %lld ms\n", (long long)(at[i] - at[i - 1]));
    assert_true(at[i] - at[i - 1] >= 125); /* backoff floor: base 250 ms / 2 */
  }
  assert_int_equal(fx_stats(&f).retried, 0);
  redeclare(&f);
  FX_WAIT_STAT(&f, applied, 1, 30000);
  assert_int_equal(fx_stats(&f).retried, 1);

  /* the DLX exchange is gone: the DLQ copy closes the channel (404) */
  snprintf(name, sizeof name, "%s.dlx", f.queue);
  wt_amqp_delete_exchange(a, name);
  fx_simple(&f, TESTEV_CREATED, "n2", 1, "reject");
  att_arg ab = {&f, "n2", 3};
  assert_true(wt_wait_until(attempts_reached, &ab, 30000));
  n = attempts_of(&f, "n2", 0, at, 16);
  for (size_t i = 1; i < n; i++) {
    printf("[ figures  ] missing DLX: attempt gap %lld ms\n", (long long)(at[i] - at[i - 1]));
    assert_true(at[i] - at[i - 1] >= 125);
  }
  assert_int_equal(fx_stats(&f).dead_lettered, 0);
  redeclare(&f);
  FX_WAIT_STAT(&f, dead_lettered, 1, 30000);
  fx_wait_depth(&f, ".dlq", 1, 10000);
  wt_amqp_close(a);
  fx_stop(&f, "unconfirmed copies");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* Set-based handlers (wr_consumer_on_batch): the flush writes the batch's rows; when
 * it refuses (one bad row), the transaction is rolled back, the buffer discarded, and
 * the batch run one by one: only the bad row's message fails (to the DLQ here), the
 * others are applied. */
static void batch_hooks_flush_and_discard(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "hooks");
  f.buffered = true;
  snprintf(f.flush_refuse, sizeof f.flush_refuse, "bad");
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 300;
  f.opts.n_retry_delays = 0;
  fx_create(&f);
  assert_int_equal(wr_consumer_on_batch(f.c, fx_flush, fx_discard, &f), WR_EEXIST);
  assert_int_equal(wr_consumer_on_batch(f.c, NULL, NULL, NULL), WR_EINVAL);
  for (int i = 0; i < 10; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "f%d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "ok");
    fx_simple(&f, TESTEV_UPDATED, agg, 2, "ok"); /* two rows of one widget in a batch */
    if (i == 4)
      fx_simple(&f, TESTEV_CREATED, "bad", 1, "ok");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, applied, 20, 30000);
  FX_WAIT_STAT(&f, dead_lettered, 1, 30000);
  fx_stop(&f, "hooks");
  printf("[ figures  ] flushes=%d discards=%d\n", f.flushes, f.discards);
  assert_true(f.discards >= 2); /* the batch, and the bad message alone */
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE version = 2 AND count = 20"),
                   10);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'bad'"), 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 20);
  assert_int_equal(f.n_rows, 0);
  amqp_envelope_t env;
  dlq_take(&f, &env);
  char err[300];
  assert_true(hdr_str(&env.message.properties.headers, "x-warren-error", err, sizeof err));
  assert_non_null(strstr(err, "flush refuses widget bad"));
  amqp_destroy_envelope(&env);
  fx_done(&f);
}

typedef struct lag_arg {
  wr_gauge *g;
} lag_arg;

static bool lag_positive(void *user) {
  lag_arg *a = user;
  return wr_gauge_value(a->g) > 0;
}

/* warren_consumer_lag_messages follows the queue depth while a backlog drains. */
static void lag_metric(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "lag");
  assert_int_equal(wr_metrics_new(&f.metrics), 0);
  f.opts.metrics = f.metrics;
  f.opts.batch_size = 5;
  f.opts.prefetch = 5;
  f.handler_sleep_ms = 20;
  fx_create(&f);
  for (int i = 0; i < 200; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "l%03d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "slow");
  }
  char labels[200];
  snprintf(labels, sizeof labels, "queue=\"%s\"", f.queue);
  lag_arg a = {wr_metrics_gauge(f.metrics, "warren_consumer_lag_messages",
                                "Messages ready in the consumer's queue.", labels)};
  assert_non_null(a.g);
  assert_int_equal(wr_consumer_start(f.c), 0);
  assert_true(wt_wait_until(lag_positive, &a, 20000));
  printf("[ figures  ] lag gauge %.0f while draining 200\n", wr_gauge_value(a.g));
  assert_true(wr_gauge_value(a.g) <= 200);
  fx_stop(&f, "lag");
  fx_done(&f);
}

typedef struct exists_arg {
  fx *f;
} exists_arg;

static bool queue_exists(void *user) {
  exists_arg *a = user;
  return fx_depth(a->f, "") >= 0;
}

/* The work queue is deleted under a running consumer: the broker cancels it, the
 * consumer reconnects, declares its topology again and consumes the new queue. */
static void queue_deleted_is_recreated(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "qdel");
  fx_start(&f);
  fx_simple(&f, TESTEV_CREATED, "q1", 1, "ok");
  FX_WAIT_STAT(&f, applied, 1, 20000);
  amqp_connection_state_t a = wt_amqp_connect();
  wt_amqp_delete_queue(a, f.queue);
  wt_amqp_close(a);
  usleep(300000);
  exists_arg ea = {&f};
  assert_true(wt_wait_until(queue_exists, &ea, 30000));
  /* bound again: an event published now is delivered and applied */
  for (int64_t end = wt_now_ms() + 30000; fx_stats(&f).applied < 2;) {
    fx_simple(&f, TESTEV_UPDATED, "q1", 2 + (uint64_t)(fx_stats(&f).applied), "ok");
    if (wt_now_ms() > end)
      fail_msg("nothing consumed after the queue was recreated");
    usleep(500000);
  }
  assert_true(fx_stats(&f).reconnects >= 1);
  fx_stop(&f, "queue deleted");
  fx_done(&f);
}

/* ---- crash windows and stop ------------------------------------------------------------ */

static void drop_link_once(wr_consumer *c, wr__consumer_point point, void *user) {
  int *armed = user;
  if (point == WR__CONSUMER_AFTER_COMMIT && *armed) {
    *armed = 0;
    wr_conn_close(wr__consumer_conn(c)); /* the link dies after COMMIT, before the ack */
  }
}

/* The broker link dies between the commit and the ack: RabbitMQ redelivers the batch,
 * the inbox turns it into duplicates, and every event is applied exactly once. */
static void crash_between_commit_and_ack(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "crash");
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 300;
  fx_create(&f);
  int armed = 1;
  wr__consumer_set_hook(f.c, drop_link_once, &armed);
  for (int i = 0; i < 20; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "c%02d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "ok");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, applied, 20, 30000);
  FX_WAIT_STAT(&f, duplicates, 20, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.applied, 20);
  assert_int_equal(s.duplicates, 20);
  assert_true(s.reconnects >= 1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 20);
  fx_stop(&f, "crash");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

static bool handler_started(void *user) {
  fx *f = user;
  pthread_mutex_lock(&f->mu);
  bool r = f->n_attempts > 0;
  pthread_mutex_unlock(&f->mu);
  return r;
}

/* Stop while a batch of slow handlers runs: the batch is finished (committed and
 * acked) before the consumer returns. What was not processed goes back to the queue;
 * a second consumer then applies the rest with no duplicate, which proves nothing was
 * committed without its ack. */
static void clean_stop_acks_in_flight(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "stop");
  f.opts.batch_size = 5;
  f.opts.batch_wait_ms = 200;
  f.opts.prefetch = 50;
  f.handler_sleep_ms = 100;
  fx_create(&f);
  for (int i = 0; i < 30; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "s%02d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "slow");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  assert_true(wt_wait_until(handler_started, &f, 20000));
  wr_consumer_stop(f.c);
  assert_int_equal(wr_consumer_join(f.c), 0);
  wr_consumer_stats s = fx_stats(&f);
  fx_print_stats(&f, "stopped");
  assert_true(s.applied >= 1 && s.applied < 30);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), (long long)s.applied);
  fx_wait_depth(&f, "", 30 - (long)s.applied, 10000);
  wr_consumer_free(f.c);
  f.c = NULL;
  f.handler_sleep_ms = 0;
  fx_start(&f);
  FX_WAIT_STAT(&f, applied, 30 - s.applied, 30000);
  assert_int_equal(fx_stats(&f).duplicates, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 30);
  fx_stop(&f, "after restart");
  fx_done(&f);
}

/* The consumer's database session is killed while a batch of slow handlers runs: the
 * batch is kept, the consumer reconnects and runs it again, and every event is
 * applied exactly once (no retry tier, no DLQ: a lost database is not the message's
 * fault). */
static void database_killed_mid_batch(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "pgkill");
  f.opts.batch_size = 20;
  f.opts.batch_wait_ms = 300;
  f.handler_sleep_ms = 50;
  fx_create(&f);
  for (int i = 0; i < 20; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "k%02d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "slow");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  assert_true(wt_wait_until(handler_started, &f, 20000));
  assert_int_equal(fx_scalar(&f, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE datname = current_database()"
                                 " AND application_name LIKE 'warren-consumer%%'"),
                   1);
  FX_WAIT_STAT(&f, applied, 20, 60000);
  wr_consumer_stats s = fx_stats(&f);
  assert_true(s.reconnects >= 1);
  assert_int_equal(s.retried + s.dead_lettered + s.duplicates, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 20);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM warren_inbox"), 20);
  fx_stop(&f, "database killed");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* ---- handler helpers -------------------------------------------------------------- */

/* wr_msg_outbox: an event published by a handler is committed with its changes, with
 * the incoming correlation id and the incoming event id as causation. */
static void handler_outbox(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "outbox");
  fx_start(&f);
  char id[WR_UUID_STRLEN];
  fx_ev ev = {.kind = TESTEV_CREATED,
              .agg_id = "ob1",
              .version = 1,
              .name = "outbox",
              .correlation_id = "corr-123"};
  fx_event(&f, &ev, id);
  FX_WAIT_STAT(&f, applied, 1, 20000);
  assert_int_equal(fx_scalar(&f,
                             "SELECT count(*) FROM warren_outbox WHERE aggregate_id = 'ob1-follow'"
                             " AND correlation_id = 'corr-123' AND causation_id = '%s'"
                             " AND source_service = 'fixture'",
                             id),
                   1);
  fx_stop(&f, "outbox");
  fx_done(&f);
}

/* Inbox rows older than the retention are deleted by the cleanup job; recent ones of
 * the same consumer stay, and other consumers' rows are untouched. */
static void inbox_cleanup(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "cleanup");
  f.opts.inbox_retention_s = 3600;
  f.opts.inbox_cleanup_interval_s = 1;
  fx_create(&f);
  /* what an older run left behind: 2500 old rows (several chunks), 3 recent */
  char sql[600];
  snprintf(
      sql, sizeof sql,
      "INSERT INTO warren_inbox (consumer, event_id, processed_at)"
      " SELECT '%s', gen_random_uuid(), now() - interval '2 hours' FROM generate_series(1, 2500)",
      f.queue);
  PQclear(wt_pg_exec(f.pg, sql));
  snprintf(sql, sizeof sql,
           "INSERT INTO warren_inbox (consumer, event_id, processed_at)"
           " SELECT 'someone-else', gen_random_uuid(), now() - interval '2 hours'"
           " FROM generate_series(1, 10)");
  PQclear(wt_pg_exec(f.pg, sql));
  assert_int_equal(wr_consumer_start(f.c), 0);
  for (int i = 0; i < 3; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "i%d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "ok");
  }
  FX_WAIT_STAT(&f, applied, 3, 20000);
  for (int64_t end = wt_now_ms() + 20000;;) {
    if (fx_scalar(&f, "SELECT count(*) FROM warren_inbox WHERE consumer = '%s'", f.queue) == 3)
      break;
    if (wt_now_ms() > end)
      fail_msg("cleanup did not remove old rows");
    usleep(100000);
  }
  assert_int_equal(
      fx_scalar(&f, "SELECT count(*) FROM warren_inbox WHERE consumer = 'someone-else'"), 10);
  fx_stop(&f, "cleanup");
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(options_and_topology),
      cmocka_unit_test(applied_once),
      cmocka_unit_test(duplicates_applied_once),
      cmocka_unit_test(out_of_order_never_regresses),
      cmocka_unit_test(tombstone_stops_resurrection),
      cmocka_unit_test(transient_failure_retries),
      cmocka_unit_test(permanent_failure_dead_letters),
      cmocka_unit_test(poison_never_blocks),
      cmocka_unit_test(unknown_types_skipped),
      cmocka_unit_test(batch_fallback_isolates_poison),
      cmocka_unit_test(unconfirmed_copy_requeued_after_backoff),
      cmocka_unit_test(batch_hooks_flush_and_discard),
      cmocka_unit_test(lag_metric),
      cmocka_unit_test(queue_deleted_is_recreated),
      cmocka_unit_test(crash_between_commit_and_ack),
      cmocka_unit_test(clean_stop_acks_in_flight),
      cmocka_unit_test(database_killed_mid_batch),
      cmocka_unit_test(handler_outbox),
      cmocka_unit_test(inbox_cleanup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
