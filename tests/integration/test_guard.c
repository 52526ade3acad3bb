// warren-test: link=warren_test_events timeout=300
/* test_guard.c: the version guard on a real PostgreSQL.
 *
 * - the rule itself (newer applies, older/equal is stale, a tombstone blocks updates
 *   but not a newer deletion, FORCE overwrites, scopes are independent);
 * - bad input is refused with WR_EINVAL and hostile ids are stored literally;
 * - four connections advancing one aggregate concurrently never both apply one
 *   version and end at the highest;
 * - two consumers competing on one queue, fed shuffled versions and duplicates, end
 *   with the newest version of every aggregate and never applied an older version
 *   after a newer one (the committed history is increasing per aggregate). */
#include "test_consumer_fixture.h"

static PGconn *guard_db(const char **url_out) {
  const char *url = wt_db_create("guard");
  PGconn *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_db_connect(url, "test_guard", &c, &e) != 0)
    fail_msg("connect: %s", e.msg);
  if (wr_db_migrate_runtime(c, &e) != 0)
    fail_msg("migrate: %s", e.msg);
  *url_out = url;
  return c;
}

static void expect_state(PGconn *c, const char *scope, const char *id, uint64_t version,
                         bool tomb) {
  uint64_t v = 99;
  bool t = !tomb;
  assert_int_equal(wr_guard_get(c, scope, "widget", id, &v, &t, NULL), 0);
  assert_int_equal(v, version);
  assert_int_equal(t, tomb);
}

static void guard_rules(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  const char *s = "svc";
  expect_state(c, s, "w1", 0, false);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 3, 0, NULL), 1);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 2, 0, NULL), 0);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 3, 0, NULL), 0);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 5, 0, NULL), 1);
  expect_state(c, s, "w1", 5, false);
  /* a deletion leaves a tombstone; a late or even newer update cannot resurrect */
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 6, WR_GUARD_TOMBSTONE, NULL), 1);
  expect_state(c, s, "w1", 6, true);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 4, 0, NULL), 0);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 7, 0, NULL), 0);
  expect_state(c, s, "w1", 6, true);
  /* a newer deletion still applies (its version is recorded), an equal one does not */
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 8, WR_GUARD_TOMBSTONE, NULL), 1);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 8, WR_GUARD_TOMBSTONE, NULL), 0);
  expect_state(c, s, "w1", 8, true);
  /* FORCE repairs: any version, tombstone cleared unless asked for */
  assert_int_equal(wr_guard_advance(c, s, "widget", "w1", 2, WR_GUARD_FORCE, NULL), 1);
  expect_state(c, s, "w1", 2, false);
  /* scopes and aggregate types are independent */
  assert_int_equal(wr_guard_advance(c, "other", "widget", "w1", 1, 0, NULL), 1);
  assert_int_equal(wr_guard_advance(c, s, "gadget", "w1", 1, 0, NULL), 1);
  expect_state(c, s, "w1", 2, false);
  /* the guard joins the caller's transaction: a rollback undoes it */
  assert_int_equal(wr_db_exec(c, "BEGIN", NULL), 0);
  assert_int_equal(wr_guard_advance(c, s, "widget", "w2", 9, 0, NULL), 1);
  assert_int_equal(wr_db_exec(c, "ROLLBACK", NULL), 0);
  expect_state(c, s, "w2", 0, false);
  PQfinish(c);
  wt_db_drop(url);
}

static void guard_bad_input(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(wr_guard_advance(NULL, "s", "widget", "x", 1, 0, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "", "widget", "x", 1, 0, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "s", NULL, "x", 1, 0, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "s", "widget", "", 1, 0, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "s", "widget", "x", 0, 0, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "s", "widget", "x", (uint64_t)INT64_MAX + 1, 0, &e),
                   WR_EINVAL);
  assert_int_equal(wr_guard_advance(c, "s", "widget", "x", 1, 0x80, &e), WR_EINVAL);
  assert_non_null(strstr(e.msg, "flags"));
  uint64_t v;
  bool t;
  assert_int_equal(wr_guard_get(c, "s", "widget", "x", NULL, &t, &e), WR_EINVAL);
  assert_int_equal(wr_guard_get(c, "s", "widget", "", &v, &t, &e), WR_EINVAL);
  /* the largest version is fine; hostile ids are data */
  assert_int_equal(wr_guard_advance(c, "s", "widget", "x", (uint64_t)INT64_MAX, 0, &e), 1);
  expect_state(c, "s", "x", (uint64_t)INT64_MAX, false);
  const char *evil = "'); DROP TABLE warren_versions; --\"\\{,}";
  assert_int_equal(wr_guard_advance(c, "s", "widget", evil, 4, 0, &e), 1);
  expect_state(c, "s", evil, 4, false);
  /* invalid UTF-8 is a database error, reported, not a crash */
  assert_int_equal(wr_guard_advance(c, "s", "widget", "bad\xff\xfe", 1, 0, &e), WR_EDB);
  assert_true(e.msg[0] != '\0');
  PQfinish(c);
  wt_db_drop(url);
}

#define RACE_THREADS  4
#define RACE_VERSIONS 150

typedef struct race_arg {
  const char *url;
  unsigned seed;
  int applied[RACE_VERSIONS + 1];
} race_arg;

static void *race_thread(void *p) {
  race_arg *a = p;
  PGconn *c = NULL;
  if (wr_db_connect(a->url, "race", &c, NULL) != 0)
    return NULL;
  unsigned order[RACE_VERSIONS];
  for (unsigned i = 0; i < RACE_VERSIONS; i++)
    order[i] = i + 1;
  for (unsigned i = RACE_VERSIONS - 1; i > 0; i--) {
    unsigned j = (unsigned)rand_r(&a->seed) % (i + 1);
    unsigned x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (unsigned i = 0; i < RACE_VERSIONS; i++) {
    int r = wr_guard_advance(c, "race", "widget", "hot", order[i], 0, NULL);
    a->applied[order[i]] = r;
  }
  PQfinish(c);
  return NULL;
}

static void guard_concurrent(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  pthread_t th[RACE_THREADS];
  race_arg args[RACE_THREADS];
  for (int i = 0; i < RACE_THREADS; i++) {
    memset(&args[i], 0, sizeof args[i]);
    args[i].url = url;
    args[i].seed = 1234u + (unsigned)i * 77u;
    assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
  }
  for (int i = 0; i < RACE_THREADS; i++)
    pthread_join(th[i], NULL);
  int total = 0;
  for (unsigned v = 1; v <= RACE_VERSIONS; v++) {
    int n = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
      assert_true(args[i].applied[v] == 0 || args[i].applied[v] == 1);
      n += args[i].applied[v];
    }
    assert_true(n <= 1); /* one version is never applied twice */
    total += n;
  }
  assert_true(total >= 1);
  expect_state(c, "race", "hot", RACE_VERSIONS, false);
  printf("[ figures  ] %d of %d versions applied by %d racing connections\n", total, RACE_VERSIONS,
         RACE_THREADS);
  PQfinish(c);
  wt_db_drop(url);
}

/* Two consumers on one queue; 20 aggregates x 30 versions, shuffled, 10% duplicates,
 * every 7th aggregate deleted at its last version. */
static void competing_consumers(void **state) {
  (void)state;
  enum { AGGS = 20, VERSIONS = 30 };
  fx f;
  fx_init(&f, "compete");
  f.opts.batch_size = 40;
  f.opts.batch_wait_ms = 5;
  fx_create(&f);
  /* a second consumer instance on the same queue and database */
  wr_consumer *c2 = NULL;
  assert_int_equal(wr_consumer_new(&f.opts, &c2, NULL), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_consumer_on(c2, &f.types[i], fx_handle, NULL, &f), 0);

  typedef struct pub {
    int agg, version;
    char id[WR_UUID_STRLEN];
  } pub;
  size_t n = AGGS * VERSIONS;
  pub *list = calloc(n + n / 10 + 1, sizeof *list);
  assert_non_null(list);
  for (int a = 0; a < AGGS; a++)
    for (int v = 1; v <= VERSIONS; v++) {
      pub *p = &list[a * VERSIONS + (v - 1)];
      p->agg = a;
      p->version = v;
      assert_int_equal(wr_uuid_v7(p->id), 0);
    }
  unsigned seed = 42;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)rand_r(&seed) % (i + 1);
    pub x = list[i];
    list[i] = list[j];
    list[j] = x;
  }
  size_t total = n;
  for (size_t i = 0; i < n / 10; i++)
    list[total++] = list[(size_t)rand_r(&seed) % n];

  assert_int_equal(wr_consumer_start(f.c), 0);
  assert_int_equal(wr_consumer_start(c2), 0);
  for (size_t i = 0; i < total; i++) {
    char agg[32];
    snprintf(agg, sizeof agg, "w%02d", list[i].agg);
    bool del = list[i].agg % 7 == 0 && list[i].version == VERSIONS;
    fx_ev ev = {.kind = del ? TESTEV_DELETED : TESTEV_UPDATED,
                .event_id = list[i].id,
                .agg_id = agg,
                .version = (uint64_t)list[i].version,
                .name = "n"};
    fx_event(&f, &ev, NULL);
  }
  /* every delivery is accounted for by one of the two */
  for (int64_t end = wt_now_ms() + 120000;;) {
    wr_consumer_stats a, b;
    wr_consumer_stats_get(f.c, &a);
    wr_consumer_stats_get(c2, &b);
    uint64_t seen = a.applied + a.duplicates + a.stale + b.applied + b.duplicates + b.stale;
    if (seen >= total)
      break;
    if (wt_now_ms() > end)
      fail_msg("competing consumers settled %llu of %zu", (unsigned long long)seen, total);
    usleep(50000);
  }
  wr_consumer_stop(c2);
  assert_int_equal(wr_consumer_join(c2), 0);
  wr_consumer_stats b;
  wr_consumer_stats_get(c2, &b);
  printf("[ stats    ] second consumer: applied=%" PRIu64 " duplicates=%" PRIu64 " stale=%" PRIu64
         " fallbacks=%" PRIu64 "\n",
         b.applied, b.duplicates, b.stale, b.batch_fallbacks);
  wr_consumer_free(c2);
  wr_consumer_stats a = fx_stats(&f);
  assert_int_equal(a.retried + b.retried + a.dead_lettered + b.dead_lettered, 0);
  assert_int_equal(a.duplicates + b.duplicates, n / 10);

  /* newest version everywhere, deletions kept */
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets"), AGGS);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE version <> %d", VERSIONS), 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE deleted"), (AGGS + 6) / 7);
  /* never an older version after a newer one, in commit order */
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM (SELECT version, lag(version) OVER"
                                 " (PARTITION BY id ORDER BY seq) AS prev FROM history) h"
                                 " WHERE prev IS NOT NULL AND version <= prev"),
                   0);
  /* each event applied at most once */
  assert_int_equal(fx_scalar(&f, "SELECT count(*) - count(DISTINCT event_id) FROM history"), 0);
  free(list);
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(guard_rules),
      cmocka_unit_test(guard_bad_input),
      cmocka_unit_test(guard_concurrent),
      cmocka_unit_test(competing_consumers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
