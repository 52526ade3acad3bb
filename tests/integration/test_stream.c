// warren-test: link=warren_test_events timeout=600
/* test_stream.c: replay from a retained log (wr_consumer_opts.stream).
 *
 * A stream queue (x-queue-type=stream) bound to the domain exchange keeps every event.
 * A consumer in replay mode runs the same handler, inbox and version guard over it:
 * - rebuild: an empty view rebuilt from the stream alone equals the source, although
 *   the log holds duplicates (same event id twice) and out-of-order segments (an
 *   older version after a newer one, an update after a delete);
 * - a second replay applies nothing (duplicates), a replay from an offset or a
 *   timestamp starts there, and a run ends by itself at the end of the stream;
 * - a failing event goes to the group's retry tier and from there to the live queue;
 * - bad input: an unknown stream (WR_ENOTFOUND), an empty stream (finished at once),
 *   start positions that are none of the accepted forms (WR_EINVAL). */
#include "test_consumer_fixture.h"

typedef struct st {
  fx f;
  char stream[128];
} st;

static void st_init(st *s, const char *name) {
  fx_init(&s->f, name);
  snprintf(s->stream, sizeof s->stream, "%s.log", s->f.queue);
  wr_queue_args a = {.stream = true, .stream_max_age = "1D", .stream_max_bytes = 100000000};
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_topology_queue(t, s->stream, &a), 0);
  assert_int_equal(wr_topology_bind(t, s->stream, s->f.exchange, "#"), 0);
  wr_err e;
  wr_err_clear(&e);
  if (wr_topology_declare(t, s->f.pub, &e) != 0)
    fail_msg("declare stream: %s", e.msg);
  wr_topology_free(t);
}

static void st_done(st *s) {
  amqp_connection_state_t a = wt_amqp_connect();
  wt_amqp_delete_queue(a, s->stream);
  wt_amqp_close(a);
  fx_done(&s->f);
}

/* Runs a replay consumer on the fixture's database to its end. Returns
 * wr_consumer_run's result; *out gets the stats. */
static int st_replay(st *s, const char *from, wr_consumer_stats *out) {
  fx *f = &s->f;
  wr_consumer_opts o = f->opts;
  o.stream = s->stream;
  o.stream_from = from;
  o.unknown_types = WR_UNKNOWN_SKIP;
  wr_consumer *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_new(&o, &c, &e) != 0)
    fail_msg("replay consumer: %s", e.msg);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_consumer_on(c, &f->types[i], fx_handle, NULL, f), 0);
  int64_t t0 = wt_now_ms();
  int rc = wr_consumer_run(c);
  wr_consumer_stats_get(c, out);
  printf("[ replay   ] from %s: rc=%d applied=%" PRIu64 " duplicates=%" PRIu64 " stale=%" PRIu64
         " retried=%" PRIu64 " batches=%" PRIu64 " offset=%" PRId64 " end=%" PRId64
         " finished=%d in %lld ms\n",
         from ? from : "(default)", rc, out->applied, out->duplicates, out->stale, out->retried,
         out->batches, out->stream_offset, out->stream_end, out->finished,
         (long long)(wt_now_ms() - t0));
  fflush(stdout);
  wr_consumer_free(c);
  return rc;
}

typedef struct want {
  char id[16];
  uint64_t version;
  bool deleted;
} want;

static void st_assert_view(st *s, const want *w, size_t n) {
  for (size_t i = 0; i < n; i++) {
    long long v =
        fx_scalar(&s->f, "SELECT coalesce(max(version), 0) FROM widgets WHERE id = '%s'", w[i].id);
    long long del =
        fx_scalar(&s->f, "SELECT count(*) FROM widgets WHERE id = '%s' AND deleted", w[i].id);
    if ((uint64_t)v != w[i].version || (del == 1) != w[i].deleted)
      fail_msg("%s: view has version %lld deleted=%lld, source has %" PRIu64 " deleted=%d", w[i].id,
               v, del, w[i].version, w[i].deleted);
  }
  assert_int_equal(fx_scalar(&s->f, "SELECT count(*) FROM widgets"), (long long)n);
}

static void rebuild_from_stream(void **state) {
  (void)state;
  st s;
  st_init(&s, "strebuild");
  fx *f = &s.f;
  enum { N = 40 };
  want w[N];
  char dup_id[WR_UUID_STRLEN];
  /* the source: N widgets, each created and updated to version 1 + i % 5; every
   * fifth deleted afterwards */
  for (int i = 0; i < N; i++) {
    snprintf(w[i].id, sizeof w[i].id, "w%03d", i);
    w[i].version = 1 + (uint64_t)(i % 5);
    w[i].deleted = false;
    fx_simple(f, TESTEV_CREATED, w[i].id, 1, "ok");
    for (uint64_t v = 2; v <= w[i].version; v++)
      fx_simple(f, TESTEV_UPDATED, w[i].id, v, "ok");
    if (i % 5 == 4) {
      w[i].version++;
      w[i].deleted = true;
      fx_simple(f, TESTEV_DELETED, w[i].id, w[i].version, "gone");
    }
  }
  /* what a years-old log also holds: a duplicate (same event id again), an older
   * version after a newer one, an update after the delete */
  fx_ev ev = {.kind = TESTEV_UPDATED, .agg_id = "w002", .version = 4, .name = "ok"};
  fx_event(f, &ev, dup_id);
  w[2].version = 4;
  ev.event_id = dup_id;
  fx_event(f, &ev, NULL);
  fx_simple(f, TESTEV_UPDATED, "w003", 2, "older");
  fx_simple(f, TESTEV_UPDATED, "w004", 5, "after-delete");

  /* an empty view (fresh database), rebuilt from the stream alone */
  wr_consumer_stats r;
  assert_int_equal(st_replay(&s, "first", &r), 0);
  assert_true(r.finished);
  assert_int_equal(r.stream_offset, r.stream_end);
  st_assert_view(&s, w, N);
  assert_int_equal(r.duplicates, 1);
  assert_int_equal(r.stale, 2);
  long long total = fx_scalar(f, "SELECT count(*) FROM history");
  assert_int_equal((long long)r.applied, total);

  /* again: nothing new (every event id is in the inbox) */
  assert_int_equal(st_replay(&s, "first", &r), 0);
  assert_int_equal(r.applied, 0);
  assert_int_equal(r.duplicates + r.stale, (uint64_t)r.stream_end + 1);
  st_assert_view(&s, w, N);

  /* from an offset: only the tail is read */
  char from[32];
  snprintf(from, sizeof from, "%" PRId64, r.stream_end - 2);
  assert_int_equal(st_replay(&s, from, &r), 0);
  assert_int_equal(r.duplicates + r.stale, 3);
  assert_true(r.finished);
  st_done(&s);
}

static void from_timestamp(void **state) {
  (void)state;
  st s;
  st_init(&s, "stts");
  fx *f = &s.f;
  for (int i = 0; i < 10; i++) {
    char id[16];
    snprintf(id, sizeof id, "a%02d", i);
    fx_simple(f, TESTEV_CREATED, id, 1, "ok");
  }
  sleep(2); /* stream timestamps have one-second resolution */
  char ts[WR_RFC3339_STRLEN];
  assert_int_equal(wr_rfc3339_format(wr_now_ns() / 1000000000, 0, ts), 0);
  sleep(1);
  for (int i = 0; i < 5; i++) {
    char id[16];
    snprintf(id, sizeof id, "b%02d", i);
    fx_simple(f, TESTEV_CREATED, id, 1, "ok");
  }
  wr_consumer_stats r;
  assert_int_equal(st_replay(&s, ts, &r), 0);
  assert_int_equal(r.applied, 5);
  assert_int_equal(fx_scalar(f, "SELECT count(*) FROM widgets WHERE id LIKE 'b%%'"), 5);
  assert_int_equal(fx_scalar(f, "SELECT count(*) FROM widgets WHERE id LIKE 'a%%'"), 0);
  /* "next" and an offset after the end: nothing to replay, the run ends at once */
  assert_int_equal(st_replay(&s, "next", &r), 0);
  assert_int_equal(r.applied, 0);
  assert_true(r.finished);
  assert_int_equal(r.stream_offset, -1);
  assert_int_equal(st_replay(&s, "1000", &r), 0);
  assert_true(r.finished);
  assert_int_equal(r.stream_offset, -1);
  /* "last" reads the last chunk: the five b events, all in the inbox by now */
  assert_int_equal(st_replay(&s, "last", &r), 0);
  assert_int_equal(r.applied, 0);
  assert_true(r.duplicates >= 1);
  assert_int_equal(r.stream_offset, r.stream_end);
  st_done(&s);
}

static void failure_goes_to_live_retry(void **state) {
  (void)state;
  st s;
  st_init(&s, "stfail");
  fx *f = &s.f;
  fx_create(f); /* the live group's layout: work queue, retry tiers, DLQ */
  wr_consumer_free(f->c);
  f->c = NULL;
  fx_simple(f, TESTEV_CREATED, "ok1", 1, "ok");
  fx_simple(f, TESTEV_CREATED, "bad1", 1, "fail-until-1");
  fx_simple(f, TESTEV_CREATED, "ok2", 1, "ok");
  /* the live queue has the three events too: empty it to see the retried copy */
  fx_wait_depth(f, "", 3, 10000);
  amqp_connection_state_t a = wt_amqp_connect();
  amqp_queue_purge(a, 1, amqp_cstring_bytes(f->queue));
  wt_amqp_close(a);
  wr_consumer_stats r;
  assert_int_equal(st_replay(&s, "first", &r), 0);
  assert_int_equal(r.applied, 2);
  assert_int_equal(r.retried, 1);
  /* the copy waits in retry tier 1 (200 ms) and comes back to the live work queue */
  fx_wait_depth(f, "", 1, 10000);
  st_done(&s);
}

/* A partitioned group replays the same way (it declares its partitioned layout and
 * reads the stream); a retried copy goes through the shared retry tier into the
 * group's partitions (test_partition checks which one). */
static void partitioned_replay(void **state) {
  (void)state;
  st s;
  st_init(&s, "stpart");
  fx *f = &s.f;
  f->opts.partitions = 3;
  fx_simple(f, TESTEV_CREATED, "p1", 1, "ok");
  fx_simple(f, TESTEV_CREATED, "p2", 1, "fail-until-1");
  fx_simple(f, TESTEV_UPDATED, "p1", 2, "ok");
  wr_consumer_stats r;
  assert_int_equal(st_replay(&s, "first", &r), 0);
  assert_int_equal(r.applied, 2);
  assert_int_equal(r.retried, 1);
  char q[3][200];
  long total = 0;
  for (int64_t end = wt_now_ms() + 10000; total != 1 && wt_now_ms() < end;) {
    total = 0;
    for (unsigned k = 0; k < 3; k++) {
      wr_topology_partition_name(f->queue, k, q[k], sizeof q[k]);
      amqp_connection_state_t a = wt_amqp_connect();
      long d = wt_amqp_queue_depth(a, q[k]);
      wt_amqp_close(a);
      total += d > 0 ? d : 0;
    }
    if (total != 1)
      usleep(100000);
  }
  assert_int_equal(total, 1);
  amqp_connection_state_t a = wt_amqp_connect();
  char name[200];
  for (unsigned k = 0; k < 3; k++)
    wt_amqp_delete_queue(a, q[k]);
  wr_topology_members_name(f->queue, name, sizeof name);
  wt_amqp_delete_queue(a, name);
  wr_topology_partition_exchange_name(f->queue, name, sizeof name);
  wt_amqp_delete_exchange(a, name);
  wt_amqp_close(a);
  st_done(&s);
}

static void bad_input(void **state) {
  (void)state;
  st s;
  st_init(&s, "stbad");
  fx *f = &s.f;
  wr_consumer_opts o = f->opts;
  wr_consumer *c = NULL;
  wr_err e;
  static const char *const bad_from[] = {
      "", "fist", "-1", "12x", "99999999999999999999", "2026-13-01T00:00:00Z", "yesterday"};
  o.stream = s.stream;
  for (size_t i = 0; i < sizeof bad_from / sizeof *bad_from; i++) {
    o.stream_from = bad_from[i];
    wr_err_clear(&e);
    assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
    assert_non_null(strstr(e.msg, "stream_from"));
  }
  o.stream_from = "first";
  o.stream = "";
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);
  o.stream = "bad\nname";
  assert_int_equal(wr_consumer_new(&o, &c, &e), WR_EINVAL);

  /* an empty stream: finished at once, nothing applied */
  wr_consumer_stats r;
  assert_int_equal(st_replay(&s, NULL, &r), 0);
  assert_true(r.finished);
  assert_int_equal(r.stream_end, -1);
  assert_int_equal(r.applied, 0);

  /* a stream that does not exist */
  snprintf(s.stream, sizeof s.stream, "%s.nosuchlog", f->queue);
  assert_int_equal(st_replay(&s, "first", &r), WR_ENOTFOUND);
  assert_false(r.finished);
  snprintf(s.stream, sizeof s.stream, "%s.log", f->queue);
  st_done(&s);
}

/* Replay speed on a longer log (reported, not asserted). WARREN_REPLAY_EVENTS sets the
 * size (default 5000). */
static void replay_rate(void **state) {
  (void)state;
  st s;
  st_init(&s, "strate");
  fx *f = &s.f;
  const char *env = getenv("WARREN_REPLAY_EVENTS");
  int n = env ? atoi(env) : 5000;
  if (n < 100)
    n = 100;
  for (int i = 0; i < n; i++) {
    char id[16];
    snprintf(id, sizeof id, "r%05d", i % 1000);
    fx_simple(f, i < 1000 ? TESTEV_CREATED : TESTEV_UPDATED, id, (uint64_t)(i / 1000 + 1), "ok");
  }
  wr_consumer_stats r;
  int64_t t0 = wt_now_ms();
  assert_int_equal(st_replay(&s, "first", &r), 0);
  double secs = (double)(wt_now_ms() - t0) / 1000.0;
  assert_int_equal((int)r.applied, n);
  printf("[ replay   ] %d events replayed into an empty view in %.2f s = %.0f events/s"
         " (including the end probe)\n",
         n, secs, n / secs);
  assert_true(wr_topology_max_age_valid("7D") && wr_topology_max_age_valid("12h") &&
              wr_topology_max_age_valid("1Y") && wr_topology_max_age_valid("30m") &&
              wr_topology_max_age_valid("10s") && wr_topology_max_age_valid("6M"));
  static const char *const bad[] = {"", "0D", "7", "D", "7d", "7DD", "-1D", "1.5D", "9999999999D"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(wr_topology_max_age_valid(bad[i]));
  assert_false(wr_topology_max_age_valid(NULL));
  st_done(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rebuild_from_stream),
      cmocka_unit_test(from_timestamp),
      cmocka_unit_test(failure_goes_to_live_retry),
      cmocka_unit_test(partitioned_replay),
      cmocka_unit_test(bad_input),
      cmocka_unit_test(replay_rate),
  };
  if (getenv("WT_TEST_FILTER"))
    cmocka_set_test_filter(getenv("WT_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
