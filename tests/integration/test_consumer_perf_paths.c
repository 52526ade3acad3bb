// warren-test: link=warren_test_events timeout=300
/* test_consumer_perf_paths.c: the consumer's fast paths keep its promises, on the real
 * broker and PostgreSQL.
 *
 * - optimistic guard, conflict: a batch reads the guard without row locks (a second
 *   connection can advance one aggregate's row and create another's while the batch's
 *   handlers run, without waiting); the compare-and-set write then finds both rows
 *   changed, the batch is rolled back (its handlers' writes with it) and run again with
 *   the locks, where both events are judged stale against the competing versions.
 *   Counted once in stats.guard_conflicts, no one-by-one fallback, nothing retried;
 * - optimistic guard, no conflict: a plain batch commits without a conflict, applies
 *   new and existing aggregates and skips stale and tombstoned ones, leaving the guard
 *   exactly where the rule says;
 * - competing consumers with large batches (conflicts likely): every event is settled
 *   once, the view ends at the newest versions, history never goes back;
 * - a deadlock with another writer: PostgreSQL rolls the consumer's transaction back
 *   in its flush, or in a handler's own statement reported with wr_msg_fail_err; the
 *   message runs again at once (stats.txn_reruns), not through a retry tier, and is
 *   applied once. */
#include "test_consumer_fixture.h"

/* The handler wrapper: the first time it sees an aggregate named in bump[], it asks
 * the guard (the batch's read) and then, on another connection in autocommit, moves
 * that aggregate's guard row to bump_to[] before the fixture's handler writes. */
typedef struct bump_ctx {
  fx *f;
  PGconn *other;
  const char *bump[2];
  uint64_t bump_to[2];
  bool done[2];
  int rc[2];
} bump_ctx;

static int bump_handle(wr_msg *m, const ProtobufCMessage *ev, wr_fnptr fn, void *user) {
  bump_ctx *x = user;
  const wr_meta *meta = wr_msg_meta(m);
  for (int i = 0; i < 2; i++) {
    if (!x->bump[i] || x->done[i] || strcmp(meta->aggregate_id, x->bump[i]) != 0)
      continue;
    x->done[i] = true;
    int g = wr_msg_guard(m); /* the batch's read has happened now */
    if (g != 1) {
      x->rc[i] = 100 + g;
      continue;
    }
    wr_err e;
    wr_err_clear(&e);
    x->rc[i] =
        wr_guard_advance(x->other, x->f->queue, "widget", meta->aggregate_id, x->bump_to[i], 0, &e);
    if (x->rc[i] < 0)
      printf("[ info     ] bump of %s: %s\n", meta->aggregate_id, e.msg);
  }
  return fx_handle(m, ev, fn, x->f);
}

static PGconn *other_conn(fx *f) {
  PGconn *c = wt_pg_connect(f->db_url);
  wr_err e;
  wr_err_clear(&e);
  if (wr_db_migrate_runtime(c, &e) != 0)
    fail_msg("migrate: %s", e.msg);
  /* a bump that had to wait for a row lock of the consumer fails instead of hanging */
  PQclear(wt_pg_exec(c, "SET lock_timeout = '5s'"));
  return c;
}

static void optimistic_conflict(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "optconf");
  f.opts.batch_size = 50;
  f.opts.batch_wait_ms = 500;
  bump_ctx x = {.f = &f, .bump = {"w-exist", "w-new"}, .bump_to = {9, 7}};
  x.other = other_conn(&f);
  /* w-exist is at version 1 in the guard and the view */
  assert_int_equal(wr_guard_advance(x.other, f.queue, "widget", "w-exist", 1, 0, NULL), 1);
  PQclear(wt_pg_exec(f.pg, "INSERT INTO widgets (id, name, count, version)"
                           " VALUES ('w-exist', 'orig', 10, 1)"));
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_new(&f.opts, &f.c, &e) != 0)
    fail_msg("consumer new: %s", e.msg);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_consumer_on(f.c, &f.types[i], bump_handle, NULL, &x), 0);
  if (wr_consumer_declare(f.c, &e) != 0)
    fail_msg("consumer declare: %s", e.msg);
  /* one batch: two events the competitor overtakes, two ordinary ones */
  fx_simple(&f, TESTEV_UPDATED, "w-exist", 5, "ok");
  fx_simple(&f, TESTEV_CREATED, "w-new", 3, "ok");
  fx_simple(&f, TESTEV_CREATED, "w-plain", 1, "ok");
  fx_simple(&f, TESTEV_UPDATED, "w-plain", 2, "ok");
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, applied, 2, 30000);
  FX_WAIT_STAT(&f, stale, 2, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.guard_conflicts, 1);
  assert_int_equal(s.batches, 1);
  assert_int_equal(s.applied, 2);
  assert_int_equal(s.stale, 2);
  assert_int_equal(s.batch_fallbacks, 0);
  assert_int_equal(s.retried + s.dead_lettered + s.duplicates, 0);
  fx_stop(&f, "optimistic_conflict");
  /* the second connection advanced both rows without waiting: the batch held no lock */
  assert_true(x.done[0] && x.done[1]);
  assert_int_equal(x.rc[0], 1);
  assert_int_equal(x.rc[1], 1);
  /* the competitor's versions stand; the batch's writes for them were rolled back */
  assert_int_equal(fx_scalar(&f,
                             "SELECT version FROM warren_versions WHERE scope = '%s'"
                             " AND aggregate_id = 'w-exist'",
                             f.queue),
                   9);
  assert_int_equal(fx_scalar(&f,
                             "SELECT version FROM warren_versions WHERE scope = '%s'"
                             " AND aggregate_id = 'w-new'",
                             f.queue),
                   7);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'w-exist'"
                                 " AND version = 1 AND name = 'orig'"),
                   1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'w-new'"), 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history WHERE id IN ('w-exist', 'w-new')"),
                   0);
  /* the ordinary events are applied once, by the rerun */
  assert_int_equal(fx_scalar(&f, "SELECT version FROM widgets WHERE id = 'w-plain'"), 2);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history WHERE id = 'w-plain'"), 2);
  assert_int_equal(
      fx_scalar(&f, "SELECT count(*) FROM warren_inbox WHERE consumer = '%s'", f.queue), 4);
  /* every handler ran twice: once optimistic, once with the locks */
  size_t exist_calls = 0;
  for (size_t i = 0; i < f.n_attempts; i++)
    if (strcmp(f.attempts[i].agg_id, "w-exist") == 0)
      exist_calls++;
  assert_int_equal(exist_calls, 2);
  assert_int_equal(f.n_attempts, 8);
  assert_int_equal(fx_depth(&f, ""), 0);
  PQfinish(x.other);
  fx_done(&f);
}

/* A batch without competition: new and existing aggregates applied, stale and
 * tombstoned events skipped; no conflict is counted and the guard ends exactly where
 * the rule says. */
static void optimistic_no_conflict(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "optplain");
  f.opts.batch_size = 50;
  f.opts.batch_wait_ms = 500;
  PGconn *other = other_conn(&f);
  assert_int_equal(wr_guard_advance(other, f.queue, "widget", "old", 3, 0, NULL), 1);
  assert_int_equal(wr_guard_advance(other, f.queue, "widget", "gone", 4, WR_GUARD_TOMBSTONE, NULL),
                   1);
  PQclear(wt_pg_exec(f.pg, "INSERT INTO widgets (id, name, count, version)"
                           " VALUES ('old', 'orig', 30, 3)"));
  fx_create(&f);
  fx_simple(&f, TESTEV_UPDATED, "old", 2, "stale");   /* older: stale */
  fx_simple(&f, TESTEV_UPDATED, "old", 4, "newer");   /* applies */
  fx_simple(&f, TESTEV_UPDATED, "gone", 5, "zombie"); /* tombstoned: stale */
  fx_simple(&f, TESTEV_CREATED, "fresh", 1, "one");
  fx_simple(&f, TESTEV_UPDATED, "fresh", 2, "two");
  fx_simple(&f, TESTEV_DELETED, "fresh", 3, "bye");
  assert_int_equal(wr_consumer_start(f.c), 0);
  FX_WAIT_STAT(&f, applied, 4, 30000);
  FX_WAIT_STAT(&f, stale, 2, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.guard_conflicts, 0);
  assert_int_equal(s.batch_fallbacks, 0);
  assert_int_equal(s.batches, 1);
  assert_int_equal(s.applied, 4);
  assert_int_equal(s.stale, 2);
  assert_int_equal(fx_scalar(&f,
                             "SELECT count(*) FROM warren_versions WHERE scope = '%s'"
                             " AND ((aggregate_id = 'old' AND version = 4 AND NOT tombstone)"
                             " OR (aggregate_id = 'gone' AND version = 4 AND tombstone)"
                             " OR (aggregate_id = 'fresh' AND version = 3 AND tombstone))",
                             f.queue),
                   3);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'old' AND version = 4"
                                 " AND name = 'newer'"),
                   1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'fresh' AND deleted"
                                 " AND version = 3"),
                   1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'gone'"), 0);
  fx_stop(&f, "optimistic_no_conflict");
  PQfinish(other);
  fx_done(&f);
}

/* Two consumers on one queue with batches of 200 over few aggregates, set-less
 * handlers writing in delivery order: conflicts (and deadlocks between the handlers'
 * writes) are likely; every event is still settled exactly once and the view ends at
 * the newest versions, history never going back. */
static void competing_large_batches(void **state) {
  (void)state;
  enum { AGGS = 8, VERSIONS = 150 };
  fx f;
  fx_init(&f, "optcompete");
  f.opts.batch_size = 200;
  f.opts.batch_wait_ms = 50;
  f.opts.prefetch = 400;
  fx_create(&f);
  wr_consumer *c2 = NULL;
  assert_int_equal(wr_consumer_new(&f.opts, &c2, NULL), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_consumer_on(c2, &f.types[i], fx_handle, NULL, &f), 0);
  size_t n = AGGS * VERSIONS;
  int *agg = calloc(n, sizeof *agg), *ver = calloc(n, sizeof *ver);
  assert_non_null(agg);
  assert_non_null(ver);
  for (int a = 0; a < AGGS; a++)
    for (int v = 1; v <= VERSIONS; v++) {
      agg[a * VERSIONS + v - 1] = a;
      ver[a * VERSIONS + v - 1] = v;
    }
  unsigned seed = 5;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)rand_r(&seed) % (i + 1);
    int ta = agg[i], tv = ver[i];
    agg[i] = agg[j];
    ver[i] = ver[j];
    agg[j] = ta;
    ver[j] = tv;
  }
  /* queued first, so that both take full batches over the same aggregates at once */
  for (size_t i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "c%02d", agg[i]);
    fx_simple(&f, TESTEV_UPDATED, id, (uint64_t)ver[i], "n");
  }
  assert_int_equal(wr_consumer_start(f.c), 0);
  assert_int_equal(wr_consumer_start(c2), 0);
  wr_consumer_stats a, b;
  for (int64_t end = wt_now_ms() + 180000;;) {
    wr_consumer_stats_get(f.c, &a);
    wr_consumer_stats_get(c2, &b);
    if (a.applied + a.stale + b.applied + b.stale >= n)
      break;
    if (wt_now_ms() > end)
      fail_msg("competing consumers settled %llu of %zu",
               (unsigned long long)(a.applied + a.stale + b.applied + b.stale), n);
    usleep(50000);
  }
  wr_consumer_stop(c2);
  assert_int_equal(wr_consumer_join(c2), 0);
  wr_consumer_stats_get(c2, &b);
  printf("[ figures  ] guard conflicts %" PRIu64 " + %" PRIu64 ", fallbacks %" PRIu64 " + %" PRIu64
         "\n",
         a.guard_conflicts, b.guard_conflicts, a.batch_fallbacks, b.batch_fallbacks);
  wr_consumer_free(c2);
  a = fx_stats(&f);
  assert_int_equal(a.applied + a.stale + b.applied + b.stale, n);
  assert_int_equal(a.retried + b.retried + a.dead_lettered + b.dead_lettered, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE version = %d", VERSIONS),
                   AGGS);
  assert_int_equal(fx_scalar(&f,
                             "SELECT count(*) FROM warren_versions WHERE scope = '%s'"
                             " AND version = %d",
                             f.queue, VERSIONS),
                   AGGS);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM (SELECT version, lag(version) OVER"
                                 " (PARTITION BY id ORDER BY seq) AS prev FROM history) h"
                                 " WHERE prev IS NOT NULL AND version <= prev"),
                   0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) - count(DISTINCT event_id) FROM history"), 0);
  assert_int_equal((uint64_t)fx_scalar(&f, "SELECT count(*) FROM history"), a.applied + b.applied);
  free(agg);
  free(ver);
  fx_done(&f);
}

/* Another transaction holds a new widgets row the consumer must write (in its flush, or
 * in the handler's own statement), then inserts the consumer's own (uncommitted) inbox
 * row: a cycle. PostgreSQL's check runs in the consumer's backend first (this session's
 * deadlock_timeout is longer) and rolls the consumer's transaction back with 40P01. The
 * message is run again at once and applied: nothing retried, nothing dead-lettered, the
 * reruns counted. */
static void deadlock_rerun(bool buffered) {
  fx f;
  fx_init(&f, buffered ? "deadlock" : "deadlockh");
  f.buffered = buffered;
  fx_create(&f);
  PGconn *blocker = other_conn(&f);
  PQclear(wt_pg_exec(blocker, "BEGIN"));
  PQclear(wt_pg_exec(blocker, "SET LOCAL deadlock_timeout = '20s'"));
  PQclear(wt_pg_exec(blocker, "SET LOCAL lock_timeout = 0"));
  PQclear(wt_pg_exec(blocker, "INSERT INTO widgets (id, name, count, version)"
                              " VALUES ('w-knot', 'blocker', 0, 1)"));
  char event_id[64];
  fx_ev ev = {.kind = TESTEV_CREATED, .agg_id = "w-knot", .version = 1, .name = "knot"};
  fx_event(&f, &ev, event_id);
  assert_int_equal(wr_consumer_start(f.c), 0);
  /* the consumer's flush waits for the blocker's row: close the cycle well within the
   * consumer's deadlock_timeout (1 s) */
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
           " AND wait_event_type = 'Lock' AND pid <> %d AND query LIKE '%%widgets%%'",
           PQbackendPID(blocker));
  for (int64_t end = wt_now_ms() + 20000; fx_scalar(&f, "%s", sql) == 0;) {
    if (wt_now_ms() > end)
      fail_msg("the consumer never waited for the blocker's row");
    usleep(5000);
  }
  snprintf(sql, sizeof sql, "INSERT INTO warren_inbox (consumer, event_id) VALUES ('%s', '%s')",
           f.queue, event_id);
  int64_t t0 = wt_now_ms();
  PGresult *r = PQexec(blocker, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("the blocker, not the consumer, was rolled back: %s", PQresultErrorMessage(r));
  printf("[ info     ] the blocker's inbox insert waited %lld ms (%s)\n",
         (long long)(wt_now_ms() - t0), PQcmdStatus(r));
  PQclear(r);
  PQclear(wt_pg_exec(blocker, "ROLLBACK"));
  PQfinish(blocker);
  FX_WAIT_STAT(&f, applied, 1, 30000);
  wr_consumer_stats s = fx_stats(&f);
  fx_stop(&f, buffered ? "deadlock in the flush" : "deadlock in a handler's statement");
  /* usually one rerun; when the rerun inserts its inbox row again before the blocker's
   * waiting insert wakes up, the blocker waits for the rerun and the cycle forms once
   * more (observed under load: the blocker then waits 2 s, two reruns) */
  printf("[ info     ] %" PRIu64 " rerun(s)\n", s.txn_reruns);
  assert_true(s.txn_reruns >= 1 && s.txn_reruns < 5);
  assert_int_equal(s.applied, 1);
  assert_int_equal(s.retried + s.dead_lettered + s.duplicates, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'w-knot'"
                                 " AND name = 'knot' AND version = 1"),
                   1);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history WHERE id = 'w-knot'"), 1);
  /* the handler ran once more per rerun, every time as the first delivery (no retry
   * tier) */
  assert_int_equal(f.n_attempts, s.txn_reruns + 1);
  for (size_t i = 0; i < f.n_attempts; i++)
    assert_int_equal(f.attempts[i].attempt, 0);
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

/* in the consumer's batch flush */
static void deadlock_reruns_at_once(void **state) {
  (void)state;
  deadlock_rerun(true);
}

/* in a handler's own statement, reported with wr_msg_fail_err */
static void deadlock_in_handler_reruns_at_once(void **state) {
  (void)state;
  deadlock_rerun(false);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(optimistic_conflict),
      cmocka_unit_test(optimistic_no_conflict),
      cmocka_unit_test(competing_large_batches),
      cmocka_unit_test(deadlock_reruns_at_once),
      cmocka_unit_test(deadlock_in_handler_reruns_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
