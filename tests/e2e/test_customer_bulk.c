// warren-test: link=warren_devkit,warren_schemas timeout=900
/* The customer service's catch-up and reconciliation endpoints, as the order service
 * (or any other consumer) uses them:
 * - GET /customers?updated_since=&limit=&cursor=: keyset pages in (updated_at, id)
 *   order, limit bounds, updated_since semantics, tombstones included, and paging while
 *   other clients create, update and delete (no row missed, every row ends at its
 *   final version);
 * - GET /customers?ids=: up to 500, missing ids absent, tombstones included;
 * - bad cursors and unknown or malformed parameters: 400;
 * - GET /customers/checksums: counts and checksums equal to a recomputation with
 *   wr_sync_* over the database AND to one in C from the bulk list (independent of
 *   the SQL); ?bucket=K members; parameter errors. */
#include "e2e.h"

static int setup(void **state) {
  return e2e_setup_state(state, "customer_bulk");
}

static e2e *start(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, NULL);
  return e;
}

/* The customers table's row for the source, as the service's store defines it. */
static const wr_sync_source SOURCE = {"customers", "id", "version", NULL};

static e2e_resp get(e2e *e, const char *path) {
  return e2e_json("GET", e->customer.url, path, NULL, NULL);
}

static int64_t updated_us(json_t *item) {
  int64_t s;
  int32_t ns;
  if (wr_rfc3339_parse(e2e_str(item, "updated_at"), &s, &ns) != 0)
    fail_msg("bad updated_at %s", e2e_str(item, "updated_at"));
  return s * 1000000 + ns / 1000;
}

/* Asserts that items are in strictly increasing (updated_at, id) order after *last. */
static void assert_ordered(json_t *items, int64_t *last_us, char *last_id) {
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    int64_t us = updated_us(it);
    const char *id = e2e_str(it, "id");
    if (us < *last_us || (us == *last_us && strcmp(id, last_id) <= 0))
      fail_msg("page order broken at %s", id);
    *last_us = us;
    snprintf(last_id, 80, "%s", id);
  }
}

/* Pages through the whole bulk API with `limit` and returns every item seen, in
 * order, duplicates included (a row updated during the walk shows up again). */
static json_t *walk(e2e *e, const char *first_query, int *pages) {
  json_t *seen = json_array();
  char path[1024];
  snprintf(path, sizeof path, "/customers?%s", first_query);
  int64_t last_us = INT64_MIN;
  char last_id[80] = "";
  *pages = 0;
  for (;;) {
    e2e_resp r = get(e, path);
    E2E_EXPECT(r, 200, NULL);
    json_t *items = json_object_get(r.json, "items");
    assert_true(json_is_array(items));
    assert_ordered(items, &last_us, last_id);
    json_array_extend(seen, items);
    (*pages)++;
    json_t *next = json_object_get(r.json, "next_cursor");
    if (json_is_null(next)) {
      e2e_resp_free(&r);
      return seen;
    }
    assert_true(json_is_string(next));
    snprintf(path, sizeof path, "/customers?%s&cursor=%s", first_query, json_string_value(next));
    e2e_resp_free(&r);
  }
}

/* ---- paging --------------------------------------------------------------------------- */

static void paging_and_limits(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "page", 250, 4);
  /* a tombstone: still listed, with status deleted */
  char path[256];
  snprintf(path, sizeof path, "/customers/%s", json_string_value(json_array_get(ids, 7)));
  e2e_resp r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);

  /* default limit 100 */
  r = get(e, "/customers");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 100);
  assert_true(json_is_string(json_object_get(r.json, "next_cursor")));
  /* an item is the full representation */
  json_t *it = json_array_get(json_object_get(r.json, "items"), 0);
  assert_int_equal(json_object_size(it), 7);
  e2e_resp_free(&r);

  int pages;
  json_t *all = walk(e, "limit=100", &pages);
  assert_int_equal(pages, 3);
  assert_int_equal(json_array_size(all), 250);
  size_t i;
  int deleted = 0;
  json_t *set = json_object();
  json_array_foreach(all, i, it) {
    assert_null(json_object_get(set, e2e_str(it, "id")));
    json_object_set_new(set, e2e_str(it, "id"), json_true());
    if (strcmp(e2e_str(it, "status"), "deleted") == 0) {
      deleted++;
      assert_string_equal(e2e_str(it, "id"), json_string_value(json_array_get(ids, 7)));
      assert_int_equal(e2e_int(it, "version"), 2);
    }
  }
  assert_int_equal(deleted, 1);
  json_decref(set);
  json_decref(all);

  /* exactly a multiple of the limit: the last full page says "more", the next is empty */
  all = walk(e, "limit=125", &pages);
  assert_int_equal(json_array_size(all), 250);
  assert_true(pages == 2 || pages == 3);
  json_decref(all);
  all = walk(e, "limit=1000", &pages);
  assert_int_equal(pages, 1);
  assert_int_equal(json_array_size(all), 250);
  json_decref(all);
  all = walk(e, "limit=1", &pages);
  assert_int_equal(pages, 250);
  json_decref(all);

  const char *bad[] = {"limit=0",
                       "limit=1001",
                       "limit=-1",
                       "limit=abc",
                       "limit=",
                       "limit=10.5",
                       "limit=99999999999999999999"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    snprintf(path, sizeof path, "/customers?%s", bad[k]);
    r = get(e, path);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_parameter") != 0)
      fail_msg("%s: expected 400 invalid_parameter, got %d %s", bad[k], r.status, r.body);
    e2e_resp_free(&r);
  }
  json_decref(ids);
}

/* updated_since is inclusive, accepts offsets (sent as %2B), and combines with the
 * cursor; a time after the newest row gives an empty last page. */
static void updated_since(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "since", 60, 1);
  int pages;
  json_t *all = walk(e, "limit=1000", &pages);
  json_t *pivot = json_array_get(all, 25);
  char q[256];
  snprintf(q, sizeof q, "limit=10&updated_since=%s", e2e_str(pivot, "updated_at"));
  json_t *tail = walk(e, q, &pages);
  /* rows with updated_at >= pivot's: the pivot and everything after it */
  size_t expect = 0, i;
  json_t *it;
  json_array_foreach(all, i, it) if (updated_us(it) >= updated_us(pivot)) expect++;
  assert_int_equal(json_array_size(tail), expect);
  assert_true(expect <= 35 && expect >= 34 - 0); /* 35 unless timestamps tie */
  assert_string_equal(e2e_str(json_array_get(tail, json_array_size(tail) - 1), "id"),
                      e2e_str(json_array_get(all, 59), "id"));
  json_decref(tail);

  /* the same instant written with a +02:00 offset */
  int64_t us = updated_us(pivot);
  time_t secs = (time_t)(us / 1000000) + 2 * 3600;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char ts[64];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%%2B02:00", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
  snprintf(q, sizeof q, "limit=1000&updated_since=%s", ts);
  tail = walk(e, q, &pages);
  assert_int_equal(json_array_size(tail), expect);
  json_decref(tail);

  e2e_resp r = get(e, "/customers?updated_since=2999-01-01T00:00:00Z");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
  assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
  e2e_resp_free(&r);
  r = get(e, "/customers?updated_since=1970-01-01T00:00:00Z&limit=1000");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 60);
  e2e_resp_free(&r);
  const char *bad[] = {"updated_since=yesterday", "updated_since=2024-13-01T00:00:00Z",
                       "updated_since=2024-01-01",
                       "updated_since=", "updated_since=2024-01-01T00:00:00"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    snprintf(q, sizeof q, "/customers?%s", bad[k]);
    r = get(e, q);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_parameter") != 0)
      fail_msg("%s: expected 400, got %d %s", bad[k], r.status, r.body);
    e2e_resp_free(&r);
  }
  json_decref(all);
  json_decref(ids);
}

/* ---- paging under concurrent writes ------------------------------------------------ */

struct writer {
  e2e *e;
  json_t *ids; /* pre-existing customers to update/delete (read-only here) */
  int seed;
  volatile int *stop;
  int creates, updates, deletes, errors;
};

static void *writer_run(void *arg) {
  struct writer *w = arg;
  unsigned seed = (unsigned)w->seed;
  char url[256];
  for (int n = 0; !*w->stop; n++) {
    int op = rand_r(&seed) % 10;
    json_t *body = NULL;
    const char *method;
    if (op < 5) {
      method = "POST";
      snprintf(url, sizeof url, "%s/customers", w->e->customer.url);
      char name[64], email[96];
      snprintf(name, sizeof name, "new %d-%d", w->seed, n);
      snprintf(email, sizeof email, "new-%d-%d@example.org", w->seed, n);
      body = json_pack("{s:s,s:s}", "name", name, "email", email);
    } else {
      size_t k = (size_t)rand_r(&seed) % json_array_size(w->ids);
      snprintf(url, sizeof url, "%s/customers/%s", w->e->customer.url,
               json_string_value(json_array_get(w->ids, k)));
      if (op == 9) {
        method = "DELETE";
      } else {
        method = "PATCH";
        char name[64];
        snprintf(name, sizeof name, "upd %d-%d", w->seed, n);
        body = json_pack("{s:s}", "name", name);
      }
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *h[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = method,
                          .url = url,
                          .headers = text ? h : NULL,
                          .body = text,
                          .body_len = text ? strlen(text) : 0,
                          .timeout_ms = 60000};
    wr_http_response res;
    int rc = wr_http_do(&rq, &res, NULL);
    free(text);
    if (rc != 0 || res.status >= 500)
      w->errors++;
    else if (res.status == 201)
      w->creates++;
    else if (res.status == 200)
      w->updates++;
    else if (res.status == 204)
      w->deletes++;
    wr_http_response_free(&res);
  }
  return NULL;
}

/* A reader tails the bulk API (pages of 50, following next_cursor, and re-reading
 * from its last cursor when it reaches the end) while 8 clients create, update and
 * delete as fast as they can, for several seconds. When the writers have stopped the
 * reader walks to the end once more. Keyset paging on (updated_at, id) must then have
 * shown every row of the final state at its final version: a row changed behind the
 * cursor moves ahead of it and is seen again, and a row committed late (its
 * updated_at is taken before the commit, so concurrent transactions commit out of
 * updated_at order) must not fall behind a cursor that has already passed its
 * timestamp. */
static void paging_under_writes(void **state) {
  e2e *e = *state;
  const char *env[] = {"WARREN_HTTP_THREADS=8", "WARREN_DB_POOL=16", NULL};
  e2e_start_customer(e, env);
  json_t *ids = e2e_create_many(e, "base", 200, 4);
  volatile int stop = 0;
  struct writer w[8];
  pthread_t th[8];
  for (int t = 0; t < 8; t++) {
    w[t] = (struct writer){.e = e, .ids = ids, .seed = t + 1, .stop = &stop};
    assert_int_equal(pthread_create(&th[t], NULL, writer_run, &w[t]), 0);
  }
  json_t *last = json_object(); /* id -> highest version seen */
  char cursor[256] = "";
  int pages = 0;
  int64_t t0 = wt_now_ms();
  bool writers_done = false;
  for (;;) {
    if (!writers_done && wt_now_ms() - t0 > 8000) {
      stop = 1;
      for (int t = 0; t < 8; t++)
        pthread_join(th[t], NULL);
      writers_done = true;
    }
    char path[512];
    snprintf(path, sizeof path, "/customers?limit=50%s%s", cursor[0] ? "&cursor=" : "", cursor);
    e2e_resp r = get(e, path);
    E2E_EXPECT(r, 200, NULL);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(r.json, "items"), i, it) {
      json_t *prev = json_object_get(last, e2e_str(it, "id"));
      if (!prev || json_integer_value(prev) < e2e_int(it, "version"))
        json_object_set_new(last, e2e_str(it, "id"), json_integer(e2e_int(it, "version")));
    }
    pages++;
    const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
    if (next)
      snprintf(cursor, sizeof cursor, "%s", next);
    e2e_resp_free(&r);
    if (!next && writers_done)
      break;
    if (!next)
      usleep(2000);
  }
  int total_w[3] = {0};
  for (int t = 0; t < 8; t++) {
    assert_int_equal(w[t].errors, 0);
    total_w[0] += w[t].creates;
    total_w[1] += w[t].updates;
    total_w[2] += w[t].deletes;
  }
  /* the final state, straight from the database */
  PGconn *c = wt_pg_connect(e->customer_db);
  PGresult *res = wt_pg_exec(c, "SELECT id, version FROM customers");
  int missing = 0, behind = 0;
  for (int k = 0; k < PQntuples(res); k++) {
    json_t *s = json_object_get(last, PQgetvalue(res, k, 0));
    long long v = strtoll(PQgetvalue(res, k, 1), NULL, 10);
    if (!s)
      missing++;
    else if (json_integer_value(s) != v)
      behind++;
  }
  print_message("paging under writes: %d pages; writers created %d, updated %d, deleted %d; "
                "%d rows never seen, %d seen only at an older version\n",
                pages, total_w[0], total_w[1], total_w[2], missing, behind);
  assert_int_equal(missing, 0);
  assert_int_equal(behind, 0);
  assert_int_equal(json_object_size(last), PQntuples(res));
  assert_true(total_w[0] > 0 && total_w[1] > 0);
  PQclear(res);
  PQfinish(c);
  json_decref(last);
  json_decref(ids);
}

/* ---- ids= ------------------------------------------------------------------------------- */

static void by_ids(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "ids", 520, 4);
  char path[256];
  snprintf(path, sizeof path, "/customers/%s", json_string_value(json_array_get(ids, 3)));
  e2e_resp r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);
  /* 500 ids: 498 known (one of them deleted) + 2 unknown */
  size_t cap = 64 * 1024;
  char *q = malloc(cap);
  int o = snprintf(q, cap, "/customers?ids=");
  for (int i = 0; i < 498; i++)
    o += snprintf(q + o, cap - (size_t)o, "%s%s", i ? "," : "",
                  json_string_value(json_array_get(ids, (size_t)i)));
  o += snprintf(q + o, cap - (size_t)o, ",0190a000-0000-7000-8000-000000000001,unknown-id");
  r = get(e, q);
  E2E_EXPECT(r, 200, NULL);
  json_t *items = json_object_get(r.json, "items");
  assert_int_equal(json_array_size(items), 498);
  assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
  size_t i;
  json_t *it;
  int deleted = 0;
  json_array_foreach(items, i, it) if (strcmp(e2e_str(it, "status"), "deleted") == 0) deleted++;
  assert_int_equal(deleted, 1);
  e2e_resp_free(&r);
  /* 501 is one too many */
  o += snprintf(q + o, cap - (size_t)o, ",%s", json_string_value(json_array_get(ids, 500)));
  r = get(e, q);
  E2E_EXPECT(r, 400, "invalid_parameter");
  e2e_resp_free(&r);
  /* one id, a repeated id */
  const char *one = json_string_value(json_array_get(ids, 0));
  snprintf(q, cap, "/customers?ids=%s,%s", one, one);
  r = get(e, q);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
  e2e_resp_free(&r);
  char long_id[70];
  memset(long_id, 'x', 65);
  long_id[65] = 0;
  const char *bad[] = {
      "ids=", "ids=a,,b",      "ids=a,",           "ids=,a",
      NULL,   "ids=a&limit=5", "ids=a&cursor=abc", "ids=a&updated_since=2024-01-01T00:00:00Z"};
  char long_q[128];
  snprintf(long_q, sizeof long_q, "ids=%s", long_id);
  bad[4] = long_q;
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    snprintf(q, cap, "/customers?%s", bad[k]);
    r = get(e, q);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_parameter") != 0)
      fail_msg("%s: expected 400 invalid_parameter, got %d %s", bad[k], r.status, r.body);
    e2e_resp_free(&r);
  }
  free(q);
  json_decref(ids);
}

/* ---- cursors and parameters ------------------------------------------------------------ */

static void bad_cursors_and_parameters(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "cur", 30, 1);
  e2e_resp r = get(e, "/customers?limit=10");
  E2E_EXPECT(r, 200, NULL);
  char good[256];
  snprintf(good, sizeof good, "%s", json_string_value(json_object_get(r.json, "next_cursor")));
  e2e_resp_free(&r);

  char enc[256], path[600];
  struct {
    const char *raw; /* base64url-encoded by the test; NULL = use `text` as is */
    const char *text;
  } cases[] = {
      {NULL, "not-a-cursor!"},
      {NULL, "%20"},
      {NULL, "AAAA"},
      {"c2:1700000000000000:abc", NULL},
      {"c1::abc", NULL},
      {"c1:12x:abc", NULL},
      {"c1:1700000000000000:", NULL},
      {"c1:1700000000000000", NULL},
      {"c1:99999999999999999999:abc", NULL},
      {"c1:1700000000000000:a b", NULL},
      {"c1:1700000000000000:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
       NULL},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *c = cases[k].text;
    if (cases[k].raw) {
      wr_base64_encode(cases[k].raw, strlen(cases[k].raw), true, enc, sizeof enc);
      c = enc;
    }
    snprintf(path, sizeof path, "/customers?limit=10&cursor=%s", c);
    r = get(e, path);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_cursor") != 0)
      fail_msg("cursor %s: expected 400 invalid_cursor, got %d %s", cases[k].raw ? cases[k].raw : c,
               r.status, r.body);
    e2e_resp_free(&r);
  }
  /* a truncated real cursor */
  good[strlen(good) / 2] = '\0';
  snprintf(path, sizeof path, "/customers?cursor=%s", good);
  r = get(e, path);
  E2E_EXPECT(r, 400, "invalid_cursor");
  e2e_resp_free(&r);

  const char *unknown[] = {"/customers?foo=1",
                           "/customers?limit=10&LIMIT=5",
                           "/customers?page=2",
                           "/customers?limit=10&since=x",
                           "/customers/checksums?bucketz=1",
                           "/customers/checksums?limit=5"};
  for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
    r = get(e, unknown[k]);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_parameter") != 0)
      fail_msg("%s: expected 400 invalid_parameter, got %d %s", unknown[k], r.status, r.body);
    e2e_resp_free(&r);
  }
  json_decref(ids);
}

/* ---- checksums ---------------------------------------------------------------------------- */

static void checksums(void **state) {
  e2e *e = start(state);
  json_t *ids = e2e_create_many(e, "sum", 300, 4);
  /* versions above 1 and tombstones count too */
  for (int i = 0; i < 20; i++) {
    char path[256];
    snprintf(path, sizeof path, "/customers/%s", json_string_value(json_array_get(ids, (size_t)i)));
    e2e_resp r = i % 4 == 0 ? e2e_json("DELETE", e->customer.url, path, NULL, NULL)
                            : e2e_json("PATCH", e->customer.url, path,
                                       json_pack("{s:s}", "name", "changed"), NULL);
    assert_true(r.status == 200 || r.status == 204);
    e2e_resp_free(&r);
  }
  int pages;
  json_t *all = walk(e, "limit=1000", &pages);
  assert_int_equal(json_array_size(all), 300);
  PGconn *db = wt_pg_connect(e->customer_db);
  unsigned sizes[] = {64, 1, 7, 4096};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    unsigned nb = sizes[s];
    char path[128];
    if (nb == 64)
      snprintf(path, sizeof path, "/customers/checksums");
    else
      snprintf(path, sizeof path, "/customers/checksums?buckets=%u", nb);
    e2e_resp r = get(e, path);
    E2E_EXPECT(r, 200, NULL);
    assert_int_equal(e2e_int(r.json, "buckets"), nb);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), nb);
    /* recomputed over the database by the runtime ... */
    wr_bucket *b = calloc(nb, sizeof *b);
    wr_err err = {0};
    assert_int_equal(wr_sync_checksums(db, &SOURCE, nb, b, &err), 0);
    /* ... and in C from the bulk API's list */
    uint64_t *cnt = calloc(nb, sizeof *cnt), *sum = calloc(nb, sizeof *sum);
    size_t i;
    json_t *it;
    json_array_foreach(all, i, it) {
      unsigned k = wr_sync_bucket_of(e2e_str(it, "id"), nb);
      cnt[k]++;
      sum[k] ^= wr_sync_member_hash(e2e_str(it, "id"), (uint64_t)e2e_int(it, "version"));
    }
    uint64_t total = 0;
    json_array_foreach(items, i, it) {
      assert_int_equal(e2e_int(it, "bucket"), i);
      char hex[17];
      snprintf(hex, sizeof hex, "%016" PRIx64, b[i].checksum);
      assert_string_equal(e2e_str(it, "checksum"), hex);
      snprintf(hex, sizeof hex, "%016" PRIx64, sum[i]);
      assert_string_equal(e2e_str(it, "checksum"), hex);
      assert_int_equal(e2e_int(it, "count"), b[i].count);
      assert_int_equal(e2e_int(it, "count"), cnt[i]);
      total += cnt[i];
    }
    assert_int_equal(total, 300);
    free(b);
    free(cnt);
    free(sum);
    e2e_resp_free(&r);
  }

  /* members of a bucket: exactly the ids hashed into it, ordered by id, with versions */
  for (unsigned k = 0; k < 64; k += 9) {
    char path[128];
    snprintf(path, sizeof path, "/customers/checksums?bucket=%u", k);
    e2e_resp r = get(e, path);
    E2E_EXPECT(r, 200, NULL);
    assert_int_equal(e2e_int(r.json, "bucket"), k);
    assert_int_equal(e2e_int(r.json, "buckets"), 64);
    json_t *items = json_object_get(r.json, "items");
    size_t expect = 0, i;
    json_t *it;
    json_array_foreach(all, i, it) if (wr_sync_bucket_of(e2e_str(it, "id"), 64) == k) expect++;
    assert_int_equal(json_array_size(items), expect);
    const char *prev = "";
    json_array_foreach(items, i, it) {
      const char *id = e2e_str(it, "id");
      assert_int_equal(wr_sync_bucket_of(id, 64), k);
      assert_true(strcmp(prev, id) < 0);
      prev = id;
      size_t j;
      json_t *src;
      bool found = false;
      json_array_foreach(all, j, src) if (!strcmp(e2e_str(src, "id"), id)) {
        assert_int_equal(e2e_int(it, "version"), e2e_int(src, "version"));
        found = true;
      }
      assert_true(found);
    }
    e2e_resp_free(&r);
  }
  /* with another bucket count */
  e2e_resp r = get(e, "/customers/checksums?buckets=4096&bucket=4095");
  E2E_EXPECT(r, 200, NULL);
  e2e_resp_free(&r);

  const char *bad[] = {"buckets=0",  "buckets=4097",       "bucket=64", "bucket=-1",
                       "bucket=abc", "buckets=8&bucket=8", "buckets=",  "bucket="};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    char path[128];
    snprintf(path, sizeof path, "/customers/checksums?%s", bad[k]);
    r = get(e, path);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_parameter") != 0)
      fail_msg("%s: expected 400 invalid_parameter, got %d %s", bad[k], r.status, r.body);
    e2e_resp_free(&r);
  }
  PQfinish(db);
  json_decref(all);
  json_decref(ids);
}

/* An empty source: every bucket empty (count 0, checksum 0), no next page. */
static void empty_source(void **state) {
  e2e *e = start(state);
  e2e_resp r = get(e, "/customers");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
  assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
  e2e_resp_free(&r);
  r = get(e, "/customers/checksums");
  E2E_EXPECT(r, 200, NULL);
  size_t i;
  json_t *it;
  json_array_foreach(json_object_get(r.json, "items"), i, it) {
    assert_int_equal(e2e_int(it, "count"), 0);
    assert_string_equal(e2e_str(it, "checksum"), "0000000000000000");
  }
  e2e_resp_free(&r);
  r = get(e, "/customers/checksums?bucket=3");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
  e2e_resp_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(paging_and_limits, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(updated_since, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(paging_under_writes, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(by_ids, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(bad_cursors_and_parameters, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(checksums, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(empty_source, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e customer bulk api", tests, NULL, NULL);
}
