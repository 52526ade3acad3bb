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
 * its customers, then the view rows it let through) plus the watermark, committed
 * without waiting for its WAL flush (one synchronous commit at the end makes the whole
 * load durable); the next page is fetched meanwhile (see the pipeline below). A full
 * load into an empty view uses plain inserts for both (view_batch_insert_new), about
 * half the database work of the upserts, until a customer turns out to be there
 * already.
 *
 * Pages travel in binary (Accept: application/x-protobuf, warren.v1.Page of
 * customer.v1.Customer items): decoding them costs a fraction of parsing the same page
 * as JSON, and it happens on the fetcher thread. A customer service that answers JSON
 * (an older version) is still loaded, as JSON, with a warning
 * (wr_sync_pages_prefer_protobuf). */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "customer/v1/customer.pb-c.h"
#include "view.h"

#define WATERMARK_MARGIN_US (5LL * 60 * 1000000)

/* One decoded page on its way from the fetcher to a writer. */
typedef struct page {
  view_batch *rows;
  size_t n;           /* items of the page */
  int64_t max_upd_us; /* the newest source updated_at of the page */
  uint64_t seq;       /* 1, 2, ...: the order of the pages */
  bool committed;     /* written, waiting for an earlier page to commit */
} page;

/* A bump allocator for decoding one item: protobuf-c allocates the message, its strings
 * and its timestamps one by one; here they come from a buffer that is reused for every
 * item (it grows to the largest item's needs and is released with the fetcher). */
typedef struct bump {
  char *p;
  size_t len, cap;
  bool oom;
} bump;

static void *bump_alloc(void *data, size_t size) {
  bump *b = data;
  size = size ? (size + 15) & ~(size_t)15 : 16;
  if (b->len + size > b->cap) {
    /* the buffer cannot move while the message points into it: fail, and add_item
     * grows it and decodes the item again */
    b->oom = true;
    return NULL;
  }
  void *r = b->p + b->len;
  b->len += size;
  return r;
}

static void bump_free(void *data, void *ptr) {
  (void)data;
  (void)ptr;
}

/* One bulk-API item (a packed customer.v1.Customer; item `index`, from 0, of page
 * `page_no`, from 1) into the page's batch. Returns 0, WR_EDECODE naming the problem,
 * or WR_ENOMEM. */
static int add_item(const wr_sync_item *it, size_t page_no, size_t index, bump *mem, page *pg,
                    wr_err *err) {
  ProtobufCAllocator alloc = {.alloc = bump_alloc, .free = bump_free, .allocator_data = mem};
  Customer__V1__Customer *cu = NULL;
  /* An item needs its packed size plus the structs (and unknown fields, kept by
   * protobuf-c): grow until it fits, up to a bound that no sane item reaches. */
  size_t limit = it->len * 8 + ((size_t)1 << 20);
  for (;;) {
    mem->len = 0;
    mem->oom = false;
    cu = customer__v1__customer__unpack(&alloc, it->len, it->data);
    if (cu || !mem->oom || mem->cap >= limit)
      break;
    size_t cap = mem->cap ? mem->cap * 2 : 0;
    if (cap < it->len * 2 + 4096)
      cap = (it->len * 2 + 4096 + 15) & ~(size_t)15;
    char *np = realloc(mem->p, cap);
    if (!np)
      return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
    mem->p = np;
    mem->cap = cap;
  }
  if (!cu && mem->oom)
    return wr_err_set(err, WR_EDECODE,
                      "bulk item %zu of page %zu (%zu bytes) needs more than %zu bytes decoded",
                      index, page_no, it->len, mem->cap);
  if (!cu)
    return wr_err_set(err, WR_EDECODE,
                      "bulk item %zu of page %zu (%zu bytes) is not a customer.v1.Customer", index,
                      page_no, it->len);
  const char *status = view_status_name(cu->status);
  size_t idl = strlen(cu->id);
  char bad[64] = "";
  if (idl == 0 || idl > VIEW_ID_MAX)
    snprintf(bad, sizeof bad, "id of %zu bytes", idl);
  else if (!status)
    snprintf(bad, sizeof bad, "status %d", (int)cu->status);
  else if (cu->version < 1 || cu->version > INT64_MAX)
    snprintf(bad, sizeof bad, "version %" PRIu64, cu->version);
  else if (!cu->updated_at)
    snprintf(bad, sizeof bad, "no updated_at");
  else if (cu->updated_at->nanos < 0 || cu->updated_at->nanos > 999999999 ||
           cu->updated_at->seconds < -62135596800LL || cu->updated_at->seconds > 253402300799LL)
    snprintf(bad, sizeof bad, "updated_at out of range");
  if (bad[0])
    return wr_err_set(err, WR_EDECODE, "bulk item %zu of page %zu (id \"%.64s\"): %s", index,
                      page_no, cu->id, bad);
  int64_t upd = cu->updated_at->seconds * 1000000 + cu->updated_at->nanos / 1000;
  if (upd > pg->max_upd_us)
    pg->max_upd_us = upd;
  if (view_batch_add(pg->rows, cu->id, cu->name, cu->email, status, cu->version, upd) != 0)
    return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
  return 0;
}

/* The same from a JSON page (a customer service without binary pages). */
static int add_json_item(json_t *it, size_t page_no, size_t index, page *pg, wr_err *err) {
  const char *id, *name, *email, *status, *created, *updated;
  json_int_t version;
  json_error_t je;
  if (json_unpack_ex(it, &je, JSON_STRICT, "{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id", &id, "name",
                     &name, "email", &email, "status", &status, "version", &version, "created_at",
                     &created, "updated_at", &updated) != 0)
    return wr_err_set(err, WR_EJSON, "bulk item %zu of page %zu: %s", index, page_no, je.text);
  int64_t secs;
  int32_t nanos;
  if (strlen(id) == 0 || strlen(id) > VIEW_ID_MAX || version < 1 ||
      wr_rfc3339_parse(updated, &secs, &nanos) != 0 ||
      (strcmp(status, "active") && strcmp(status, "pending") && strcmp(status, "suspended") &&
       strcmp(status, "deleted")))
    return wr_err_set(err, WR_EJSON, "bulk item %zu of page %zu (id \"%.64s\"): invalid values",
                      index, page_no, id);
  int64_t upd = secs * 1000000 + nanos / 1000;
  if (upd > pg->max_upd_us)
    pg->max_upd_us = upd;
  if (view_batch_add(pg->rows, id, name, email, status, (uint64_t)version, upd) != 0)
    return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
  return 0;
}

/* The pipeline between the page fetcher (HTTP, decoding) and the writers (database):
 * the fetcher runs on its own thread a few pages ahead, so fetching and decoding
 * overlaps writing, and WRITERS threads write pages at the same time, each on its own
 * connection (PostgreSQL works on two pages at once). PIPE_PAGES pages circulate
 * between a free list, the fetcher (filling one), the queue (room for all of them) and
 * the writers; a page written before an earlier one is still being written is held
 * until that one commits, which bounds how far the pages' order can spread.
 *
 * Two pages in flight may hold the same customer (changed during the load, listed
 * again with its new version): the version guard keeps the newer, whichever commits
 * first; in a fresh load the second insert of the key fails, and from there on every
 * page merges (as when the view was not empty). The watermark written with a page
 * covers only pages committed before it, and the page itself when all earlier ones
 * are committed, so a crash never leaves a watermark past a page that was lost. */
#define PIPE_PAGES 6
#define WRITERS    2

typedef struct pipe_q {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  page pages[PIPE_PAGES];
  page *queue[PIPE_PAGES];
  size_t head, n;
  page *free_list[PIPE_PAGES];
  size_t n_free;
  bool done;        /* the fetcher returned */
  int rc;           /* ... with this */
  bool abort;       /* a writer failed: stop fetching and writing */
  wr_err err;       /* the fetcher's failure (the pager's or add_item's) */
  bump mem;         /* the fetcher's decoding buffer */
  uint64_t fetched; /* pages received by the fetcher */
  bool json_pages;  /* the customer service answered a JSON page (logged once) */
  const wr_sync_pager *pager;
  /* the writers' shared state */
  app *a;
  bool fresh;            /* a full load so far into an empty view: plain inserts */
  uint64_t next_commit;  /* the lowest page seq not committed yet */
  int64_t committed_max; /* the watermark covered by pages 1..next_commit-1 */
} pipe_q;

typedef struct writer {
  pipe_q *q;
  PGconn *c;
  pthread_t th;
  int rc;
  wr_err err;
  uint64_t applied, stale;
  size_t pages, items;
  int64_t waited_ns;
} writer;

/* Fetcher thread: a free page to fill (seq set, rows cleared), or NULL when the
 * writers stopped. */
static page *take_page(pipe_q *q, size_t n) {
  pthread_mutex_lock(&q->mu);
  while (q->n_free == 0 && !q->abort)
    pthread_cond_wait(&q->cv, &q->mu);
  page *pg = q->abort ? NULL : q->free_list[--q->n_free];
  pthread_mutex_unlock(&q->mu);
  if (pg) {
    view_batch_clear(pg->rows);
    pg->n = n;
    pg->max_upd_us = 0;
    pg->seq = ++q->fetched;
    pg->committed = false;
  }
  return pg;
}

/* Fetcher thread: queues a filled page (rc 0) or gives it back. Returns what the
 * pager gets. */
static int put_page(pipe_q *q, page *pg, int rc) {
  pthread_mutex_lock(&q->mu);
  if (rc != 0 || q->abort) {
    q->free_list[q->n_free++] = pg;
    if (rc == 0)
      rc = WR_ESTOPPED;
  } else {
    q->queue[(q->head + q->n) % PIPE_PAGES] = pg;
    q->n++;
  }
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

/* Pager callbacks, fetcher thread: decode the items into a free page, queue it. */
static int enqueue_page(const wr_sync_item *items, size_t n, void *user) {
  pipe_q *q = user;
  page *pg = take_page(q, n);
  if (!pg)
    return WR_ESTOPPED;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = add_item(&items[i], (size_t)pg->seq, i, &q->mem, pg, &q->err);
  return put_page(q, pg, rc);
}

static int enqueue_json_page(json_t *items, void *user) {
  pipe_q *q = user;
  if (!q->json_pages) {
    q->json_pages = true;
    wr_log_warn(NULL, "catch-up: the customer service answers JSON pages, not binary ones "
                      "(an older version?); loading them as JSON, which costs more CPU");
  }
  page *pg = take_page(q, json_array_size(items));
  if (!pg)
    return WR_ESTOPPED;
  int rc = 0;
  for (size_t i = 0; i < pg->n && rc == 0; i++)
    rc = add_json_item(json_array_get(items, i), (size_t)pg->seq, i, pg, &q->err);
  return put_page(q, pg, rc);
}

static void *fetcher(void *arg) {
  pipe_q *q = arg;
  int rc = wr_sync_pages_prefer_protobuf(q->pager, enqueue_page, enqueue_json_page, q, NULL, NULL,
                                         &q->err);
  pthread_mutex_lock(&q->mu);
  q->done = true;
  q->rc = rc;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* A writer's next page, or NULL at the end or after a failure. */
static page *dequeue_page(pipe_q *q) {
  pthread_mutex_lock(&q->mu);
  while (q->n == 0 && !q->done && !q->abort)
    pthread_cond_wait(&q->cv, &q->mu);
  page *pg = NULL;
  if (q->n > 0 && !q->abort) {
    pg = q->queue[q->head];
    q->head = (q->head + 1) % PIPE_PAGES;
    q->n--;
  }
  pthread_mutex_unlock(&q->mu);
  return pg;
}

/* After a page committed: advances the committed prefix, freeing its pages. */
static void page_committed(pipe_q *q, page *pg) {
  pthread_mutex_lock(&q->mu);
  pg->committed = true;
  for (bool more = true; more;) {
    more = false;
    for (size_t i = 0; i < PIPE_PAGES; i++) {
      page *p = &q->pages[i];
      if (p->committed && p->seq == q->next_commit) {
        if (p->max_upd_us > q->committed_max)
          q->committed_max = p->max_upd_us;
        p->committed = false;
        q->next_commit++;
        q->free_list[q->n_free++] = p;
        more = true;
      }
    }
  }
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* After a writer failed: the page goes back, everyone stops. */
static void page_failed(pipe_q *q, page *pg) {
  pthread_mutex_lock(&q->mu);
  q->free_list[q->n_free++] = pg;
  q->abort = true;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* A page in one transaction: the guard and the view writes of all its customers in
 * two statements (view_batch_insert_new or view_batch_apply_source), the watermark,
 * COMMIT. *applied = rows written. */
static int load_page(writer *w, page *pg, size_t *applied) {
  pipe_q *q = w->q;
  int rc;
  for (;;) {
    pthread_mutex_lock(&q->mu);
    bool fresh = q->fresh;
    pthread_mutex_unlock(&q->mu);
    /* Not synchronous: see the flush at the end of catchup_run. */
    rc = wr_db_exec(w->c, "BEGIN; SET LOCAL synchronous_commit = off", &w->err);
    if (rc)
      return rc;
    rc = fresh ? view_batch_insert_new(w->c, pg->rows, applied, &w->err)
               : view_batch_apply_source(w->c, pg->rows, applied, &w->err);
    if (rc == WR_EEXIST && fresh) {
      /* the view was not empty after all (another instance, a load that failed half
       * way, a customer listed again): this page again, and every later one, through
       * the guard's upsert */
      wr_db_exec(w->c, "ROLLBACK", NULL);
      pthread_mutex_lock(&q->mu);
      if (q->fresh)
        wr_log_info(NULL, "catch-up: customers already in the view, merging from here on");
      q->fresh = false;
      pthread_mutex_unlock(&q->mu);
      continue;
    }
    break;
  }
  if (rc == 0) {
    pthread_mutex_lock(&q->mu);
    int64_t wm = q->committed_max;
    if (pg->seq == q->next_commit && pg->max_upd_us > wm)
      wm = pg->max_upd_us;
    pthread_mutex_unlock(&q->mu);
    rc = view_watermark_set(w->c, wm, &w->err);
  }
  if (rc == 0)
    rc = wr_db_exec(w->c, "COMMIT", &w->err);
  if (rc)
    wr_db_exec(w->c, "ROLLBACK", NULL);
  return rc;
}

static void *writer_run(void *arg) {
  writer *w = arg;
  for (;;) {
    int64_t t = wr_mono_ns();
    page *pg = dequeue_page(w->q);
    w->waited_ns += wr_mono_ns() - t;
    if (!pg)
      break;
    size_t applied = 0, n = pg->n;
    w->rc = load_page(w, pg, &applied);
    if (w->rc) {
      page_failed(w->q, pg);
      break;
    }
    page_committed(w->q, pg);
    w->pages++;
    w->items += n;
    w->applied += applied;
    w->stale += n - applied;
    wr_counter_add(w->q->a->catchup_items, n);
  }
  return NULL;
}

long catchup_run(app *a, wr_err *err) {
  writer w[WRITERS];
  memset(w, 0, sizeof w);
  size_t nw = 0;
  int rc = 0;
  for (; nw < WRITERS && rc == 0; nw++)
    rc = wr_db_pool_acquire(a->pool, 10000, &w[nw].c, err);
  if (rc)
    nw--;
  int64_t wm = 0;
  if (rc == 0)
    rc = view_watermark_get(w[0].c, &wm, err);
  if (rc) {
    for (size_t i = 0; i < nw; i++)
      wr_db_pool_release(a->pool, w[i].c);
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
  wr_sync_pager p = {.url = url, .timeout_ms = 30000, .retries = 5, .stop = &a->stopping};
  /* A full load starts with plain inserts (the view is normally empty then); the first
   * conflict switches to the upsert. An incremental one merges from the start. */
  pipe_q q = {.pager = &p, .a = a, .fresh = wm == 0, .next_commit = 1, .committed_max = wm};
  for (size_t i = 0; i < PIPE_PAGES; i++) {
    if (view_batch_new(&q.pages[i].rows) != 0)
      rc = wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
    q.free_list[q.n_free++] = &q.pages[i];
  }
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.cv, NULL);
  pthread_t th;
  bool fetching = false;
  size_t writing = 0;
  int64_t t0 = wr_mono_ns();
  if (rc == 0) {
    fetching = pthread_create(&th, NULL, fetcher, &q) == 0;
    for (; fetching && writing < nw; writing++) {
      w[writing].q = &q;
      if (pthread_create(&w[writing].th, NULL, writer_run, &w[writing]) != 0)
        break;
    }
    if (!fetching || writing == 0)
      rc = wr_err_set(err, WR_ENOMEM, "catch-up: cannot start its threads");
  }
  if (fetching && writing == 0) {
    /* no writer: stop the fetcher */
    pthread_mutex_lock(&q.mu);
    q.abort = true;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
  }
  size_t pages = 0, items = 0;
  uint64_t applied = 0, stale = 0;
  int64_t waited_ns = 0;
  for (size_t i = 0; i < writing; i++) {
    pthread_join(w[i].th, NULL);
    if (rc == 0 && w[i].rc != 0) {
      rc = w[i].rc;
      if (err)
        *err = w[i].err;
    }
    pages += w[i].pages;
    items += w[i].items;
    applied += w[i].applied;
    stale += w[i].stale;
    waited_ns += w[i].waited_ns;
  }
  if (fetching) {
    pthread_join(th, NULL);
    /* the fetcher's failure, unless a writer's came first (then it is WR_ESTOPPED) */
    if (rc == 0 && q.rc != 0) {
      rc = q.rc;
      if (err)
        *err = q.err;
    }
  }
  /* The pages commit without waiting for their WAL flush (a page's rows and its
   * watermark commit together, so a crash loses the last pages and their watermark
   * advance at once, and the next start loads them again). This synchronous commit
   * flushes them all before the catch-up counts as done. */
  if (rc == 0 && pages > 0 && q.committed_max > 0)
    rc = view_watermark_set(w[0].c, q.committed_max, err);
  pthread_cond_destroy(&q.cv);
  pthread_mutex_destroy(&q.mu);
  for (size_t i = 0; i < nw; i++)
    wr_db_pool_release(a->pool, w[i].c);
  for (size_t i = 0; i < PIPE_PAGES; i++)
    view_batch_free(q.pages[i].rows);
  free(q.mem.p);
  if (rc)
    return rc;
  double secs = (double)(wr_mono_ns() - t0) / 1e9;
  wr_log_info(NULL,
              "catch-up done: %zu customers in %zu pages, %" PRIu64 " applied, %" PRIu64
              " already current, %.2f s (%s; %zu writers, waiting %.2f s for pages in all)",
              items, pages, applied, stale, secs, wm > 0 ? "incremental" : "full", writing,
              (double)waited_ns / 1e9);
  return (long)items;
}
