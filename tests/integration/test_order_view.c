// warren-test: link=order_core timeout=300
/* test_order_view.c: the order service's set-based view writes (services/order/view.c)
 * on a real PostgreSQL.
 *
 * - view_batch_write has exactly the effect of writing its rows one by one with
 *   view_put / view_tombstone in the order they were added (random sequences of
 *   versions, deletions, unknown source times, several versions of one customer in one
 *   batch, an update followed by a deletion in one batch), compared table to table;
 * - view_batch_apply_source decides and writes like view_apply_source row by row
 *   (guard verdicts included), compared the same way;
 * - view_batch_insert_new (first load into an empty view) writes what
 *   view_batch_apply_source would, and refuses with WR_EEXIST, writing nothing and
 *   keeping its rows, when a customer is there already;
 * - hostile strings are stored literally; invalid UTF-8 fails the write with WR_EDB
 *   and keeps the rows; a cleared batch is reusable. */
#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>

#include "view.h"

static PGconn *view_db(const char **url_out) {
  const char *url = wt_db_create("oview");
  PGconn *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_db_connect(url, "test_order_view", &c, &e) != 0)
    fail_msg("connect: %s", e.msg);
  if (wr_db_migrate_runtime(c, &e) != 0 || view_migrate(c, &e) != 0)
    fail_msg("migrate: %s", e.msg);
  *url_out = url;
  return c;
}

/* The view's content without synced_at, one line per row, ordered: equal strings mean
 * equal views. Caller frees. */
static char *dump(PGconn *c) {
  PGresult *r = wt_pg_exec(
      c, "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s', id, name, email, status, version,"
         " coalesce((extract(epoch FROM source_updated_at) * 1000000)::bigint::text, '-')),"
         " E'\\n' ORDER BY id), '') FROM customer_view");
  char *s = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return s;
}

typedef struct row {
  char id[16];
  char name[32];
  char email[48];
  const char *status;
  uint64_t version;
  int64_t upd;
} row;

static const char *const statuses[] = {"active", "pending", "suspended", "deleted"};

static void random_row(row *r, unsigned *seed, int ids, uint64_t version) {
  snprintf(r->id, sizeof r->id, "cust-%02d", rand_r(seed) % ids);
  snprintf(r->name, sizeof r->name, "Name %u", (unsigned)rand_r(seed) % 1000);
  snprintf(r->email, sizeof r->email, "e%u@example.com", (unsigned)rand_r(seed) % 1000);
  r->status = statuses[rand_r(seed) % 4];
  r->version = version;
  r->upd = rand_r(seed) % 4 == 0 ? 0 : 1700000000000000LL + rand_r(seed) % 1000000;
}

/* The consumer's use: rows that passed the guard (increasing versions per id within a
 * batch, as wr_msg_guard allows them), written by the flush. */
static void write_equals_sequential(void **state) {
  (void)state;
  const char *u1, *u2;
  PGconn *seq = view_db(&u1), *set = view_db(&u2);
  view_batch *b = NULL;
  assert_int_equal(view_batch_new(&b), 0);
  unsigned seed = 11;
  uint64_t version = 0;
  for (int batch = 0; batch < 80; batch++) {
    int n = 1 + rand_r(&seed) % 12;
    assert_int_equal(wr_db_exec(seq, "BEGIN", NULL), 0);
    assert_int_equal(wr_db_exec(set, "BEGIN", NULL), 0);
    for (int k = 0; k < n; k++) {
      row r;
      random_row(&r, &seed, 8, ++version);
      wr_err e;
      wr_err_clear(&e);
      if (strcmp(r.status, "deleted") == 0) {
        assert_int_equal(view_tombstone(seq, r.id, r.version, r.upd, &e), 0);
      } else {
        view_row vr = {.version = r.version, .source_updated_us = r.upd};
        snprintf(vr.id, sizeof vr.id, "%s", r.id);
        snprintf(vr.name, sizeof vr.name, "%s", r.name);
        snprintf(vr.email, sizeof vr.email, "%s", r.email);
        snprintf(vr.status, sizeof vr.status, "%s", r.status);
        assert_int_equal(view_put(seq, &vr, &e), 0);
      }
      assert_int_equal(view_batch_add(b, r.id, r.name, r.email, r.status, r.version, r.upd), 0);
    }
    assert_int_equal(view_batch_size(b), (size_t)n);
    wr_err e;
    wr_err_clear(&e);
    assert_int_equal(view_batch_write(set, b, &e), 0);
    assert_int_equal(view_batch_size(b), 0);
    assert_int_equal(wr_db_exec(seq, "COMMIT", NULL), 0);
    assert_int_equal(wr_db_exec(set, "COMMIT", NULL), 0);
    char *a = dump(seq), *z = dump(set);
    assert_string_equal(a, z);
    free(a);
    free(z);
  }
  view_batch_free(b);
  PQfinish(seq);
  PQfinish(set);
  wt_db_drop(u1);
  wt_db_drop(u2);
}

/* Catch-up's use: pages of distinct ids with any versions, guarded. */
static void apply_source_equals_single(void **state) {
  (void)state;
  const char *u1, *u2;
  PGconn *seq = view_db(&u1), *set = view_db(&u2);
  view_batch *b = NULL;
  assert_int_equal(view_batch_new(&b), 0);
  unsigned seed = 5;
  size_t applied_total = 0, stale_total = 0;
  for (int page = 0; page < 60; page++) {
    bool used[20] = {false};
    size_t expect = 0, added = 0;
    assert_int_equal(wr_db_exec(seq, "BEGIN", NULL), 0);
    for (int k = 0; k < 10; k++) {
      row r;
      /* versions drift upwards page by page, so most rows apply and some are stale */
      random_row(&r, &seed, 20, 1 + (uint64_t)page + (uint64_t)(rand_r(&seed) % 6));
      if (strcmp(r.status, "deleted") == 0 && rand_r(&seed) % 4)
        r.status = "active"; /* fewer deletions: a tombstone blocks the customer for good */
      int idx = atoi(r.id + 5);
      if (used[idx])
        continue; /* a page lists a customer once */
      used[idx] = true;
      view_row vr = {.version = r.version, .source_updated_us = r.upd};
      snprintf(vr.id, sizeof vr.id, "%s", r.id);
      snprintf(vr.name, sizeof vr.name, "%s", r.name);
      snprintf(vr.email, sizeof vr.email, "%s", r.email);
      snprintf(vr.status, sizeof vr.status, "%s", r.status);
      int one = view_apply_source(seq, &vr, false, NULL);
      assert_true(one == 0 || one == 1);
      expect += (size_t)one;
      assert_int_equal(view_batch_add(b, r.id, r.name, r.email, r.status, r.version, r.upd), 0);
      added++;
    }
    assert_int_equal(wr_db_exec(seq, "COMMIT", NULL), 0);
    size_t applied = 99;
    assert_int_equal(wr_db_exec(set, "BEGIN", NULL), 0);
    assert_int_equal(view_batch_apply_source(set, b, &applied, NULL), 0);
    assert_int_equal(wr_db_exec(set, "COMMIT", NULL), 0);
    assert_int_equal(applied, expect);
    applied_total += applied;
    char *a = dump(seq), *z = dump(set);
    assert_string_equal(a, z);
    free(a);
    free(z);
    stale_total += added - applied;
  }
  /* the guard rows agree too */
  assert_int_equal(wt_pg_scalar(seq, "SELECT count(*) FROM warren_versions"),
                   wt_pg_scalar(set, "SELECT count(*) FROM warren_versions"));
  printf("[ figures  ] %zu source rows applied, %zu stale or tombstoned, both ways alike\n",
         applied_total, stale_total);
  view_batch_free(b);
  PQfinish(seq);
  PQfinish(set);
  wt_db_drop(u1);
  wt_db_drop(u2);
}

static void insert_new(void **state) {
  (void)state;
  const char *u1, *u2;
  PGconn *a = view_db(&u1), *z = view_db(&u2);
  view_batch *b = NULL;
  assert_int_equal(view_batch_new(&b), 0);
  unsigned seed = 9;
  /* two pages of distinct customers: plain inserts on one side, the guarded upsert on
   * the other; same view, same guard rows */
  for (int page = 0; page < 2; page++) {
    row rows[50];
    for (int k = 0; k < 50; k++) {
      random_row(&rows[k], &seed, 1000, 1 + (uint64_t)(rand_r(&seed) % 9));
      snprintf(rows[k].id, sizeof rows[k].id, "p%d-%02d", page, k);
    }
    for (int side = 0; side < 2; side++) {
      PGconn *c = side ? z : a;
      for (int k = 0; k < 50; k++)
        assert_int_equal(view_batch_add(b, rows[k].id, rows[k].name, rows[k].email, rows[k].status,
                                        rows[k].version, rows[k].upd),
                         0);
      size_t applied = 0;
      assert_int_equal(wr_db_exec(c, "BEGIN", NULL), 0);
      if (side)
        assert_int_equal(view_batch_apply_source(c, b, &applied, NULL), 0);
      else
        assert_int_equal(view_batch_insert_new(c, b, &applied, NULL), 0);
      assert_int_equal(wr_db_exec(c, "COMMIT", NULL), 0);
      assert_int_equal(applied, 50);
    }
  }
  char *x = dump(a), *y = dump(z);
  assert_string_equal(x, y);
  free(x);
  free(y);
  assert_int_equal(wt_pg_scalar(a, "SELECT count(*) FROM warren_versions"), 100);
  /* a customer already there: WR_EEXIST, nothing of the batch written, rows kept */
  assert_int_equal(view_batch_add(b, "fresh-1", "n", "e@example.com", "active", 1, 0), 0);
  assert_int_equal(view_batch_add(b, "p0-07", "n", "e@example.com", "active", 99, 0), 0);
  size_t applied = 7;
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(wr_db_exec(a, "BEGIN", NULL), 0);
  assert_int_equal(view_batch_insert_new(a, b, &applied, &e), WR_EEXIST);
  assert_true(e.msg[0] != '\0');
  assert_int_equal(applied, 0);
  assert_int_equal(view_batch_size(b), 2);
  assert_int_equal(wr_db_exec(a, "ROLLBACK", NULL), 0);
  assert_int_equal(wt_pg_scalar(a, "SELECT count(*) FROM customer_view WHERE id = 'fresh-1'"), 0);
  /* ... and the same rows through the guarded path */
  assert_int_equal(wr_db_exec(a, "BEGIN", NULL), 0);
  assert_int_equal(view_batch_apply_source(a, b, &applied, NULL), 0);
  assert_int_equal(wr_db_exec(a, "COMMIT", NULL), 0);
  assert_int_equal(applied, 2);
  assert_int_equal(wt_pg_scalar(a, "SELECT version FROM customer_view WHERE id = 'p0-07'"), 99);
  /* a view row without its guard row is a conflict too */
  assert_int_equal(
      wr_db_exec(a, "DELETE FROM warren_versions WHERE aggregate_id = 'fresh-1'", NULL), 0);
  assert_int_equal(view_batch_add(b, "fresh-1", "n", "e@example.com", "active", 5, 0), 0);
  assert_int_equal(wr_db_exec(a, "BEGIN", NULL), 0);
  assert_int_equal(view_batch_insert_new(a, b, &applied, NULL), WR_EEXIST);
  assert_int_equal(wr_db_exec(a, "ROLLBACK", NULL), 0);
  view_batch_free(b);
  PQfinish(a);
  PQfinish(z);
  wt_db_drop(u1);
  wt_db_drop(u2);
}

static void hostile_and_failures(void **state) {
  (void)state;
  const char *url;
  PGconn *c = view_db(&url);
  view_batch *b = NULL;
  assert_int_equal(view_batch_new(&b), 0);
  const char *names[] = {"O'Brien \"Bob\"", "back\\slash", "{a,b}", "NULL", "  ", "Zoë 東京 🚀"};
  for (int i = 0; i < 6; i++) {
    char id[16];
    snprintf(id, sizeof id, "h%d", i);
    assert_int_equal(view_batch_add(b, id, names[i], names[5 - i], "active", 1, 0), 0);
  }
  assert_int_equal(view_batch_write(c, b, NULL), 0);
  for (int i = 0; i < 6; i++) {
    view_row r;
    char id[16];
    snprintf(id, sizeof id, "h%d", i);
    assert_int_equal(view_get(c, id, false, &r, NULL), 0);
    assert_string_equal(r.name, names[i]);
    assert_string_equal(r.email, names[5 - i]);
    assert_int_equal(r.source_updated_us, 0);
  }
  /* invalid UTF-8: WR_EDB, the rows stay for the caller to retry or discard */
  assert_int_equal(wr_db_exec(c, "BEGIN", NULL), 0);
  assert_int_equal(view_batch_add(b, "ok", "fine", "f@example.com", "active", 2, 0), 0);
  assert_int_equal(view_batch_add(b, "bad", "bad\xff", "f@example.com", "active", 2, 0), 0);
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(view_batch_write(c, b, &e), WR_EDB);
  assert_true(e.msg[0] != '\0');
  assert_int_equal(view_batch_size(b), 2);
  assert_int_equal(wr_db_exec(c, "ROLLBACK", NULL), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM customer_view WHERE id = 'ok'"), 0);
  /* cleared, reusable; an empty batch writes nothing and does not fail */
  view_batch_clear(b);
  assert_int_equal(view_batch_size(b), 0);
  assert_int_equal(view_batch_write(c, b, NULL), 0);
  size_t applied = 9;
  assert_int_equal(view_batch_apply_source(c, b, &applied, NULL), 0);
  assert_int_equal(applied, 0);
  assert_int_equal(view_batch_add(b, "ok", "fine", "f@example.com", "deleted", 3, 0), 0);
  assert_int_equal(view_batch_write(c, b, NULL), 0);
  view_row r;
  assert_int_equal(view_get(c, "ok", false, &r, NULL), 0);
  assert_string_equal(r.status, "deleted");
  assert_string_equal(r.name, ""); /* a tombstone of a customer never seen */
  view_batch_free(b);
  view_batch_free(NULL);
  PQfinish(c);
  wt_db_drop(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(write_equals_sequential),
      cmocka_unit_test(apply_source_equals_single),
      cmocka_unit_test(insert_new),
      cmocka_unit_test(hostile_and_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
