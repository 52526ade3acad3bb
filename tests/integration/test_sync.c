// warren-test: timeout=120
/* test_sync.c: reconciliation checksums agree between SQL and C, detect every kind of
 * difference, and the catch-up pager walks a real paginated HTTP endpoint, retrying
 * transient failures and refusing malformed pages. */
#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <warren/http.h>
#include <warren/sync.h>

static const wr_sync_source SRC = {"items", "id", "version", NULL};

static void fill(PGconn *c, int n) {
  PQclear(wt_pg_exec(c, "CREATE TABLE items (id text primary key, version bigint not null)"));
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO items SELECT 'cust-' || g, g %% 7 + 1 FROM generate_series(1, %d) g", n);
  PQclear(wt_pg_exec(c, sql));
}

static void checksums_match_c(void **state) {
  (void)state;
  const char *url = wt_db_create("sync");
  PGconn *c = wt_pg_connect(url);
  fill(c, 2000);
  wr_bucket b[64];
  wr_err err;
  assert_int_equal(wr_sync_checksums(c, &SRC, 64, b, &err), 0);
  uint64_t expect_sum[64] = {0}, expect_n[64] = {0};
  for (int g = 1; g <= 2000; g++) {
    char id[32];
    snprintf(id, sizeof id, "cust-%d", g);
    unsigned k = wr_sync_bucket_of(id, 64);
    expect_sum[k] ^= wr_sync_member_hash(id, (uint64_t)(g % 7 + 1));
    expect_n[k]++;
  }
  uint64_t total = 0;
  for (int k = 0; k < 64; k++) {
    assert_int_equal(b[k].bucket, k);
    assert_int_equal(b[k].count, expect_n[k]);
    assert_true(b[k].checksum == expect_sum[k]);
    total += b[k].count;
  }
  assert_int_equal(total, 2000);

  /* one version changed, one row missing: exactly those buckets differ */
  PQclear(wt_pg_exec(c, "UPDATE items SET version = version + 1 WHERE id = 'cust-17'"));
  PQclear(wt_pg_exec(c, "DELETE FROM items WHERE id = 'cust-1500'"));
  wr_bucket b2[64];
  assert_int_equal(wr_sync_checksums(c, &SRC, 64, b2, &err), 0);
  unsigned k17 = wr_sync_bucket_of("cust-17", 64), k1500 = wr_sync_bucket_of("cust-1500", 64);
  for (unsigned k = 0; k < 64; k++) {
    bool differs = b2[k].checksum != b[k].checksum || b2[k].count != b[k].count;
    assert_int_equal(differs, k == k17 || k == k1500);
  }
  PQfinish(c);
  wt_db_drop(url);
}

struct members {
  int n;
  char last[64];
  bool sorted;
  unsigned bucket;
};

static int on_member(const char *id, uint64_t version, void *user) {
  struct members *m = user;
  assert_int_equal(wr_sync_bucket_of(id, 16), m->bucket);
  assert_true(version >= 1 && version <= 7);
  if (m->n && strcmp(m->last, id) >= 0)
    m->sorted = false;
  snprintf(m->last, sizeof m->last, "%s", id);
  m->n++;
  return 0;
}

static void bucket_members(void **state) {
  (void)state;
  const char *url = wt_db_create("sync");
  PGconn *c = wt_pg_connect(url);
  fill(c, 500);
  wr_bucket b[16];
  assert_int_equal(wr_sync_checksums(c, &SRC, 16, b, NULL), 0);
  for (unsigned k = 0; k < 16; k++) {
    struct members m = {.sorted = true, .bucket = k};
    assert_int_equal(wr_sync_bucket_members(c, &SRC, 16, k, on_member, &m, NULL), 0);
    assert_int_equal((uint64_t)m.n, b[k].count);
    assert_true(m.sorted);
  }
  /* bad input */
  wr_err err;
  assert_int_equal(wr_sync_checksums(c, &SRC, 0, b, &err), WR_EINVAL);
  assert_int_equal(wr_sync_checksums(c, &SRC, WR_SYNC_BUCKETS_MAX + 1, b, &err), WR_EINVAL);
  assert_int_equal(wr_sync_bucket_members(c, &SRC, 16, 16, on_member, NULL, &err), WR_EINVAL);
  /* a hostile identifier is quoted, not executed */
  wr_sync_source evil = {"items; DROP TABLE items; --", "id", "version", NULL};
  assert_int_equal(wr_sync_checksums(c, &evil, 16, b, &err), WR_EDB);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM items"), 500);
  /* a where clause restricts */
  wr_sync_source some = {"items", "id", "version", "version > 3"};
  assert_int_equal(wr_sync_checksums(c, &some, 16, b, &err), 0);
  uint64_t n = 0;
  for (int k = 0; k < 16; k++)
    n += b[k].count;
  assert_int_equal(n, wt_pg_scalar(c, "SELECT count(*) FROM items WHERE version > 3"));
  PQfinish(c);
  wt_db_drop(url);
}

/* ---- pager against a real HTTP server ------------------------------------------ */

struct pages_srv {
  int total;      /* items served in pages of 10 */
  int fail_first; /* answer 503 to this many requests first */
  int requests;
  bool malformed; /* serve a page without items */
};

static void pages_handler(wr_http_req *req, void *user) {
  struct pages_srv *s = user;
  __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
  if (s->fail_first > 0) {
    s->fail_first--;
    wr_http_reply_error(req, 503, "unavailable", "try later");
    return;
  }
  if (s->malformed) {
    wr_http_reply_json(req, 200, json_pack("{s:i}", "nope", 1));
    return;
  }
  const char *cur = wr_http_req_query(req, "cursor");
  int start = cur ? atoi(cur + 2) : 0; /* cursor "c:<n>" */
  if (cur && strncmp(cur, "c:", 2) != 0) {
    wr_http_reply_error(req, 400, "invalid_cursor", "bad cursor");
    return;
  }
  json_t *items = json_array();
  for (int i = start; i < start + 10 && i < s->total; i++)
    json_array_append_new(items, json_pack("{s:i}", "n", i));
  json_t *next = json_null();
  if (start + 10 < s->total) {
    char c[32];
    snprintf(c, sizeof c, "c:%d", start + 10);
    next = json_string(c);
  }
  wr_http_reply_json(req, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

static int count_items(json_t *items, void *user) {
  int *seen = user;
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    assert_int_equal(json_integer_value(json_object_get(it, "n")), *seen);
    (*seen)++;
  }
  return 0;
}

static void pager(void **state) {
  (void)state;
  struct pages_srv s = {.total = 95, .fail_first = 2};
  static const wr_http_route routes[] = {{"GET", "/items", pages_handler, 0}};
  wr_http_opts o = WR_HTTP_OPTS_INIT;
  o.routes = routes;
  o.n_routes = 1;
  o.user = &s;
  wr_http_server *srv;
  wr_err err;
  assert_int_equal(wr_http_server_start(&o, &srv, &err), 0);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/items?limit=10", wr_http_server_port(srv));
  wr_sync_pager p = {.url = url, .timeout_ms = 5000, .retries = 3};
  int seen = 0;
  size_t pages, items;
  assert_int_equal(wr_sync_pages(&p, count_items, &seen, &pages, &items, &err), 0);
  assert_int_equal(seen, 95);
  assert_int_equal(pages, 10);
  assert_int_equal(items, 95);
  assert_int_equal(s.requests, 12); /* 2 transient failures retried */

  /* retries exhausted: a clear error */
  s.fail_first = 10;
  p.retries = 1;
  seen = 0;
  assert_int_equal(wr_sync_pages(&p, count_items, &seen, NULL, NULL, &err), WR_EHTTP);
  assert_non_null(strstr(err.msg, "503"));
  /* malformed page: fails at once */
  s.fail_first = 0;
  s.malformed = true;
  assert_int_equal(wr_sync_pages(&p, count_items, &seen, NULL, NULL, &err), WR_EJSON);
  wr_http_server_stop(srv);
  /* nothing listening */
  assert_int_not_equal(wr_sync_pages(&p, count_items, &seen, NULL, NULL, &err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(checksums_match_c),
      cmocka_unit_test(bucket_members),
      cmocka_unit_test(pager),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
