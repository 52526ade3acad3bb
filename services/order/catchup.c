/* catchup.c: hybrid catch-up at start. The consumer's queue is declared and bound
 * before this runs, so anything published during the load waits in the queue; the
 * load itself goes through the same version guard as events, so whichever of the two
 * paths brings a version first wins and the other is skipped as stale.
 *
 * An empty view loads everything; a view that was loaded before resumes from its
 * watermark (the newest source updated_at it has seen) minus a safety margin that
 * covers transactions which committed late with an earlier updated_at.
 *
 * Each page is one transaction of two set-based statements (the version guard of all
 * its customers, then the view rows it let through) plus the watermark; the next page
 * is fetched meanwhile (see the pipeline below). A full load into an empty view uses
 * plain inserts for both (view_batch_insert_new), about half the database work of the
 * upserts, until a customer turns out to be there already. */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "view.h"

#define WATERMARK_MARGIN_US (5LL * 60 * 1000000)

struct load {
  app *a;
  PGconn *c;
  view_batch *rows; /* one page, written set-based */
  bool fresh;       /* a full load so far into an empty view: plain inserts */
  int64_t max_updated_us;
  uint64_t applied, stale;
  wr_err *err;
};

/* One bulk-API item into the page's batch. Returns 0, WR_EJSON naming the problem, or
 * WR_ENOMEM. */
static int add_item(json_t *it, view_batch *rows, int64_t *updated_us, wr_err *err) {
  const char *id, *name, *email, *status, *updated;
  json_int_t version;
  json_error_t je;
  if (json_unpack_ex(it, &je, JSON_STRICT, "{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id", &id, "name",
                     &name, "email", &email, "status", &status, "version", &version, "created_at",
                     &updated, "updated_at", &updated) != 0)
    return wr_err_set(err, WR_EJSON, "bulk item: %s", je.text);
  int64_t secs;
  int32_t nanos;
  if (strlen(id) == 0 || strlen(id) > VIEW_ID_MAX || version < 1 ||
      wr_rfc3339_parse(updated, &secs, &nanos) != 0 ||
      (strcmp(status, "active") && strcmp(status, "pending") && strcmp(status, "suspended") &&
       strcmp(status, "deleted")))
    return wr_err_set(err, WR_EJSON, "bulk item with invalid values (id \"%.64s\")", id);
  *updated_us = secs * 1000000 + nanos / 1000;
  if (view_batch_add(rows, id, name, email, status, (uint64_t)version, *updated_us) != 0)
    return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
  return 0;
}

/* A page in one transaction: the guard and the view writes of all its customers in
 * two statements (view_batch_apply_source), the watermark, COMMIT. */
static int load_page(json_t *items, void *user) {
  struct load *l = user;
  size_t i;
  json_t *it;
  int64_t page_max = l->max_updated_us;
  int rc = 0;
  view_batch_clear(l->rows);
  json_array_foreach(items, i, it) {
    int64_t upd = 0;
    if ((rc = add_item(it, l->rows, &upd, l->err)) != 0)
      return rc;
    if (upd > page_max)
      page_max = upd;
  }
  size_t applied = 0;
  for (;;) {
    rc = wr_db_exec(l->c, "BEGIN", l->err);
    if (rc)
      return rc;
    rc = l->fresh ? view_batch_insert_new(l->c, l->rows, &applied, l->err)
                  : view_batch_apply_source(l->c, l->rows, &applied, l->err);
    if (rc == WR_EEXIST && l->fresh) {
      /* the view was not empty after all (another instance, a load that failed half
       * way): this page again, and every later one, through the guard's upsert */
      wr_db_exec(l->c, "ROLLBACK", NULL);
      l->fresh = false;
      wr_log_info(NULL, "catch-up: customers already in the view, merging from here on");
      continue;
    }
    break;
  }
  if (rc == 0)
    rc = view_watermark_set(l->c, page_max, l->err);
  if (rc == 0)
    rc = wr_db_exec(l->c, "COMMIT", l->err);
  if (rc) {
    wr_db_exec(l->c, "ROLLBACK", NULL);
    return rc;
  }
  size_t n = json_array_size(items);
  l->max_updated_us = page_max;
  l->applied += applied;
  l->stale += n - applied;
  wr_counter_add(l->a->catchup_items, n);
  return 0;
}

/* The pipeline between the page fetcher (HTTP, JSON parsing) and the writer (database):
 * the fetcher runs on its own thread a page or two ahead, so fetching and parsing the
 * next page overlaps writing this one (they use different processes' CPU: the
 * customer service and PostgreSQL). Pages are handed over as jansson arrays
 * (reference counts are atomic in jansson 2.14). */
#define PIPE_DEPTH 2

typedef struct pipe_q {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  json_t *pages[PIPE_DEPTH];
  size_t head, n;
  bool done;  /* the fetcher returned */
  int rc;     /* ... with this */
  bool abort; /* the writer failed: stop fetching */
  wr_err err; /* the fetcher's failure */
  const wr_sync_pager *pager;
} pipe_q;

/* Pager callback, fetcher thread: waits for room, hands the page over. */
static int enqueue_page(json_t *items, void *user) {
  pipe_q *q = user;
  pthread_mutex_lock(&q->mu);
  while (q->n == PIPE_DEPTH && !q->abort)
    pthread_cond_wait(&q->cv, &q->mu);
  int rc = WR_ESTOPPED;
  if (!q->abort) {
    q->pages[(q->head + q->n) % PIPE_DEPTH] = json_incref(items);
    q->n++;
    rc = 0;
  }
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static void *fetcher(void *arg) {
  pipe_q *q = arg;
  wr_err e = {0};
  int rc = wr_sync_pages(q->pager, enqueue_page, q, NULL, NULL, &e);
  pthread_mutex_lock(&q->mu);
  q->done = true;
  q->rc = rc;
  q->err = e;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* Writer side: the next page (a reference the caller drops), or NULL at the end. */
static json_t *dequeue_page(pipe_q *q) {
  pthread_mutex_lock(&q->mu);
  while (q->n == 0 && !q->done)
    pthread_cond_wait(&q->cv, &q->mu);
  json_t *items = NULL;
  if (q->n > 0) {
    items = q->pages[q->head];
    q->head = (q->head + 1) % PIPE_DEPTH;
    q->n--;
    pthread_cond_broadcast(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
  return items;
}

long catchup_run(app *a, wr_err *err) {
  PGconn *c;
  int rc = wr_db_pool_acquire(a->pool, 10000, &c, err);
  if (rc)
    return rc;
  int64_t wm = 0;
  rc = view_watermark_get(c, &wm, err);
  if (rc) {
    wr_db_pool_release(a->pool, c);
    return rc;
  }
  char url[1024];
  if (wm > 0) {
    char since[WR_RFC3339_STRLEN];
    int64_t from = wm - WATERMARK_MARGIN_US;
    wr_rfc3339_format(from / 1000000, (int32_t)(from % 1000000) * 1000, since);
    snprintf(url, sizeof url, "%s/customers?limit=%u&updated_since=%s", a->customer_url,
             a->page_size, since);
  } else {
    snprintf(url, sizeof url, "%s/customers?limit=%u", a->customer_url, a->page_size);
  }
  /* A full load starts with plain inserts (the view is normally empty then); the first
   * conflict switches to the upsert. An incremental one merges from the start. */
  struct load l = {.a = a, .c = c, .max_updated_us = wm, .err = err, .fresh = wm == 0};
  if (view_batch_new(&l.rows) != 0) {
    wr_db_pool_release(a->pool, c);
    return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
  }
  wr_sync_pager p = {.url = url, .timeout_ms = 30000, .retries = 5, .stop = &a->stopping};
  pipe_q q = {.pager = &p};
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.cv, NULL);
  pthread_t th;
  size_t pages = 0, items = 0;
  int64_t t0 = wr_mono_ns();
  if (pthread_create(&th, NULL, fetcher, &q) != 0) {
    rc = wr_err_set(err, WR_ENOMEM, "catch-up: cannot start the page fetcher");
  } else {
    json_t *page;
    while ((page = dequeue_page(&q)) != NULL) {
      if (rc == 0) {
        rc = load_page(page, &l);
        pages++;
        items += json_array_size(page);
      }
      json_decref(page);
      if (rc) {
        pthread_mutex_lock(&q.mu);
        q.abort = true;
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.mu);
      }
    }
    pthread_join(th, NULL);
    if (rc == 0 && q.rc != 0) {
      rc = q.rc;
      if (err)
        *err = q.err;
    }
  }
  pthread_cond_destroy(&q.cv);
  pthread_mutex_destroy(&q.mu);
  wr_db_pool_release(a->pool, c);
  view_batch_free(l.rows);
  if (rc)
    return rc;
  double secs = (double)(wr_mono_ns() - t0) / 1e9;
  wr_log_info(NULL,
              "catch-up done: %zu customers in %zu pages, %" PRIu64 " applied, %" PRIu64
              " already current, %.2f s (%s)",
              items, pages, l.applied, l.stale, secs, wm > 0 ? "incremental" : "full");
  return (long)items;
}
