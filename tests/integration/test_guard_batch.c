// warren-test: timeout=300
/* test_guard_batch.c: wr_guard_advance_many, the set-based version guard (catch-up
 * pages), on a real PostgreSQL.
 *
 * - it decides exactly like wr_guard_advance: random sequences of versions and
 *   deletions applied batch by batch in one scope and one by one in another give the
 *   same verdicts and the same stored state;
 * - the verdicts come back in the caller's order; a rollback undoes a batch;
 * - bad input (NULL arguments, empty names, version 0 or above INT64_MAX, a repeated
 *   id, too many ids) is WR_EINVAL and writes nothing; hostile ids are data; invalid
 *   UTF-8 is WR_EDB and writes nothing of the batch;
 * - two connections advancing the same ids in opposite orders never deadlock and end
 *   at the highest versions;
 * - wr_guard_record_new (first load into an empty scope) records everything, refuses
 *   with WR_EEXIST (writing nothing) when one aggregate has a row, and afterwards the
 *   ordinary guard judges against what it recorded. */
#include "harness.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>

static PGconn *guard_db(const char **url_out) {
  const char *url = wt_db_create("guardb");
  PGconn *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_db_connect(url, "test_guard_batch", &c, &e) != 0)
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

static void batch_rules(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  const char *ids[4] = {"a", "b", "c", "d"};
  uint64_t v[4] = {3, 3, 3, 3};
  bool tomb[4] = {false, false, true, false};
  bool applied[4] = {false, false, false, false};
  /* everything new applies; the deletion leaves a tombstone */
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 4, ids, v, tomb, applied, NULL), 4);
  for (int i = 0; i < 4; i++)
    assert_true(applied[i]);
  expect_state(c, "s", "c", 3, true);
  /* the same versions again: all stale; verdicts come back false */
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 4, ids, v, tomb, applied, NULL), 0);
  for (int i = 0; i < 4; i++)
    assert_false(applied[i]);
  /* mixed: a newer, b older, c newer update (tombstoned: refused), d newer deletion */
  uint64_t v2[4] = {5, 2, 9, 4};
  bool tomb2[4] = {false, false, false, true};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 4, ids, v2, tomb2, applied, NULL), 2);
  assert_true(applied[0]);
  assert_false(applied[1]);
  assert_false(applied[2]);
  assert_true(applied[3]);
  expect_state(c, "s", "a", 5, false);
  expect_state(c, "s", "b", 3, false);
  expect_state(c, "s", "c", 3, true);
  expect_state(c, "s", "d", 4, true);
  /* a newer deletion of a tombstoned aggregate is recorded; tombstones may be NULL */
  const char *one[1] = {"c"};
  uint64_t ten[1] = {10};
  bool del[1] = {true};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 1, one, ten, del, NULL, NULL), 1);
  expect_state(c, "s", "c", 10, true);
  uint64_t eleven[1] = {11};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 1, one, eleven, NULL, NULL, NULL), 0);
  /* scopes are independent; n == 0 is a no-op */
  assert_int_equal(wr_guard_advance_many(c, "other", "widget", 1, one, ten, NULL, NULL, NULL), 1);
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 0, ids, v, NULL, NULL, NULL), 0);
  /* the batch joins the caller's transaction */
  const char *fresh[2] = {"x", "y"};
  assert_int_equal(wr_db_exec(c, "BEGIN", NULL), 0);
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, fresh, v, NULL, NULL, NULL), 2);
  assert_int_equal(wr_db_exec(c, "ROLLBACK", NULL), 0);
  expect_state(c, "s", "x", 0, false);
  PQfinish(c);
  wt_db_drop(url);
}

/* Random sequences of (id, version, deletion) in batches of distinct ids, applied by
 * the batch call in scope "many" and one by one by wr_guard_advance in scope "one". */
static void batch_equals_single(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  enum { IDS = 40, ROUNDS = 60 };
  char names[IDS][16];
  for (int i = 0; i < IDS; i++)
    snprintf(names[i], sizeof names[i], "agg-%02d", i);
  unsigned seed = 7;
  size_t checked = 0;
  for (int round = 0; round < ROUNDS; round++) {
    const char *ids[IDS];
    uint64_t vers[IDS];
    bool tombs[IDS], applied[IDS];
    size_t n = 0;
    for (int i = 0; i < IDS; i++) {
      if (rand_r(&seed) % 3 == 0)
        continue;
      ids[n] = names[i];
      vers[n] = 1 + (uint64_t)(rand_r(&seed) % 30);
      tombs[n] = rand_r(&seed) % 10 == 0;
      n++;
    }
    int got = wr_guard_advance_many(c, "many", "widget", n, ids, vers, tombs, applied, NULL);
    assert_true(got >= 0);
    int expect = 0;
    for (size_t k = 0; k < n; k++) {
      int one = wr_guard_advance(c, "one", "widget", ids[k], vers[k],
                                 tombs[k] ? WR_GUARD_TOMBSTONE : 0, NULL);
      assert_true(one == 0 || one == 1);
      assert_int_equal(applied[k], one == 1);
      expect += one;
      checked++;
    }
    assert_int_equal(got, expect);
  }
  for (int i = 0; i < IDS; i++) {
    uint64_t v1 = 0, v2 = 0;
    bool t1 = false, t2 = false;
    assert_int_equal(wr_guard_get(c, "many", "widget", names[i], &v1, &t1, NULL), 0);
    assert_int_equal(wr_guard_get(c, "one", "widget", names[i], &v2, &t2, NULL), 0);
    assert_int_equal(v1, v2);
    assert_int_equal(t1, t2);
  }
  printf("[ figures  ] %zu verdicts of the batch guard equal the single guard's\n", checked);
  PQfinish(c);
  wt_db_drop(url);
}

static void batch_bad_input(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  wr_err e;
  wr_err_clear(&e);
  const char *ids[2] = {"p", "q"};
  uint64_t v[2] = {1, 2};
  assert_int_equal(wr_guard_advance_many(NULL, "s", "widget", 2, ids, v, NULL, NULL, &e),
                   WR_EINVAL);
  assert_int_equal(wr_guard_advance_many(c, "", "widget", 2, ids, v, NULL, NULL, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance_many(c, "s", NULL, 2, ids, v, NULL, NULL, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, NULL, v, NULL, NULL, &e), WR_EINVAL);
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, ids, NULL, NULL, NULL, &e),
                   WR_EINVAL);
  const char *empty[2] = {"p", ""};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, empty, v, NULL, NULL, &e), WR_EINVAL);
  const char *null_id[2] = {"p", NULL};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, null_id, v, NULL, NULL, &e),
                   WR_EINVAL);
  uint64_t zero[2] = {1, 0};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, ids, zero, NULL, NULL, &e),
                   WR_EINVAL);
  uint64_t huge[2] = {1, (uint64_t)INT64_MAX + 1};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, ids, huge, NULL, NULL, &e),
                   WR_EINVAL);
  const char *twice[3] = {"p", "q", "p"};
  uint64_t v3[3] = {1, 2, 3};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 3, twice, v3, NULL, NULL, &e),
                   WR_EINVAL);
  assert_non_null(strstr(e.msg, "twice"));
  assert_int_equal(
      wr_guard_advance_many(c, "s", "widget", WR_GUARD_BATCH_MAX + 1, ids, v, NULL, NULL, &e),
      WR_EINVAL);
  /* nothing of the refused calls was written */
  expect_state(c, "s", "p", 0, false);
  expect_state(c, "s", "q", 0, false);
  /* hostile ids are data: quotes, backslashes, array syntax, the word NULL, spaces */
  const char *evil[6] = {"'); DROP TABLE warren_versions; --",
                         "\"quoted\"",
                         "back\\slash",
                         "{a,b}",
                         "NULL",
                         "  spaced  "};
  uint64_t ev[6] = {1, 2, 3, 4, 5, 6};
  bool applied[6];
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 6, evil, ev, NULL, applied, &e), 6);
  for (int i = 0; i < 6; i++) {
    assert_true(applied[i]);
    expect_state(c, "s", evil[i], ev[i], false);
  }
  /* the largest version is fine */
  const char *big[1] = {"big"};
  uint64_t max[1] = {(uint64_t)INT64_MAX};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 1, big, max, NULL, NULL, &e), 1);
  expect_state(c, "s", "big", (uint64_t)INT64_MAX, false);
  /* invalid UTF-8 in one id fails the whole statement: the others are not written */
  const char *bad[2] = {"fine", "bad\xff\xfe"};
  wr_err_clear(&e);
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 2, bad, v, NULL, NULL, &e), WR_EDB);
  assert_true(e.msg[0] != '\0');
  expect_state(c, "s", "fine", 0, false);
  PQfinish(c);
  wt_db_drop(url);
}

#define RACE_IDS    200
#define RACE_ROUNDS 40

typedef struct race_arg {
  const char *url;
  bool reverse;
  int failures;
} race_arg;

static void *race_thread(void *p) {
  race_arg *a = p;
  PGconn *c = NULL;
  if (wr_db_connect(a->url, "race", &c, NULL) != 0) {
    a->failures++;
    return NULL;
  }
  static char names[RACE_IDS][16];
  for (int i = 0; i < RACE_IDS; i++)
    snprintf(names[i], sizeof names[i], "hot-%03d", i);
  const char *ids[RACE_IDS];
  uint64_t v[RACE_IDS];
  for (int round = 1; round <= RACE_ROUNDS; round++) {
    for (int i = 0; i < RACE_IDS; i++) {
      ids[i] = names[a->reverse ? RACE_IDS - 1 - i : i];
      v[i] = (uint64_t)round;
    }
    /* in a transaction that holds the locks a moment, as a catch-up page does */
    if (wr_db_exec(c, "BEGIN", NULL) != 0 ||
        wr_guard_advance_many(c, "race", "widget", RACE_IDS, ids, v, NULL, NULL, NULL) < 0 ||
        wr_db_exec(c, "COMMIT", NULL) != 0) {
      a->failures++;
      wr_db_exec(c, "ROLLBACK", NULL);
    }
  }
  PQfinish(c);
  return NULL;
}

static void batch_concurrent(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  pthread_t th[2];
  race_arg args[2] = {{url, false, 0}, {url, true, 0}};
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  /* no deadlock (PostgreSQL would abort one side), every id at the last round */
  assert_int_equal(args[0].failures + args[1].failures, 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_versions WHERE scope = 'race'"
                                   " AND version = 40"),
                   RACE_IDS);
  PQfinish(c);
  wt_db_drop(url);
}

static void record_new(void **state) {
  (void)state;
  const char *url;
  PGconn *c = guard_db(&url);
  wr_err e;
  wr_err_clear(&e);
  const char *ids[3] = {"n1", "n2", "n3"};
  uint64_t v[3] = {4, 1, 7};
  bool tomb[3] = {false, true, false};
  assert_int_equal(wr_guard_record_new(c, "s", "widget", 3, ids, v, tomb, &e), 3);
  expect_state(c, "s", "n1", 4, false);
  expect_state(c, "s", "n2", 1, true);
  expect_state(c, "s", "n3", 7, false);
  /* the ordinary guard goes on from there */
  bool applied[3];
  uint64_t v2[3] = {4, 2, 8};
  assert_int_equal(wr_guard_advance_many(c, "s", "widget", 3, ids, v2, NULL, applied, &e), 1);
  assert_false(applied[0]); /* equal: stale */
  assert_false(applied[1]); /* tombstoned */
  assert_true(applied[2]);
  /* one aggregate with a row: WR_EEXIST, nothing of the batch recorded, transaction
   * aborted */
  const char *mixed[3] = {"m1", "n1", "m2"};
  uint64_t v3[3] = {1, 9, 1};
  assert_int_equal(wr_db_exec(c, "BEGIN", NULL), 0);
  wr_err_clear(&e);
  assert_int_equal(wr_guard_record_new(c, "s", "widget", 3, mixed, v3, NULL, &e), WR_EEXIST);
  assert_true(e.msg[0] != '\0');
  assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
  assert_int_equal(wr_db_exec(c, "ROLLBACK", NULL), 0);
  expect_state(c, "s", "m1", 0, false);
  expect_state(c, "s", "n1", 4, false);
  /* another scope is another namespace; n == 0 is a no-op; bad input as the batch */
  assert_int_equal(wr_guard_record_new(c, "other", "widget", 3, ids, v, NULL, &e), 3);
  assert_int_equal(wr_guard_record_new(c, "s", "widget", 0, ids, v, NULL, &e), 0);
  const char *twice[2] = {"z", "z"};
  assert_int_equal(wr_guard_record_new(c, "s", "widget", 2, twice, v, NULL, &e), WR_EINVAL);
  assert_int_equal(wr_guard_record_new(NULL, "s", "widget", 1, ids, v, NULL, &e), WR_EINVAL);
  uint64_t zero[1] = {0};
  assert_int_equal(wr_guard_record_new(c, "s", "widget", 1, ids, zero, NULL, &e), WR_EINVAL);
  assert_int_equal(wr_guard_record_new(c, "", "widget", 1, ids, v, NULL, &e), WR_EINVAL);
  expect_state(c, "s", "z", 0, false);
  PQfinish(c);
  wt_db_drop(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(batch_rules),     cmocka_unit_test(batch_equals_single),
      cmocka_unit_test(batch_bad_input), cmocka_unit_test(batch_concurrent),
      cmocka_unit_test(record_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
