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
 * upserts, until a customer turns out to be there already.
 *
 * Pages travel in binary (Accept: application/x-protobuf, warren.v1.Page of
 * customer.v1.Customer items, wr_sync_pages_protobuf): decoding them costs a fraction
 * of parsing the same page as JSON, and it happens on the fetcher thread. */
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

struct load {
  app *a;
  PGconn *c;
  bool fresh; /* a full load so far into an empty view: plain inserts */
  int64_t max_updated_us;
  uint64_t applied, stale;
  wr_err *err;
};

/* One decoded page on its way from the fetcher to the writer. */
typedef struct page {
  view_batch *rows;
  size_t n;           /* items of the page */
  int64_t max_upd_us; /* the newest source updated_at of the page */
} page;

static const char *status_name(Customer__V1__CustomerStatus st) {
  switch (st) {
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE:
    return "active";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING:
    return "pending";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED:
    return "suspended";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED:
    return "deleted";
  default:
    return NULL;
  }
}

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
  size = (size + 15) & ~(size_t)15;
  if (b->len + size > b->cap) {
    /* the buffer cannot move while the message points into it: fail, and the caller
     * retries the item once with a buffer that fits (see decode_item) */
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
 * `page_no`, from 1) into the page's batch. Returns 0,
 * WR_EDECODE naming the problem, or WR_ENOMEM. */
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
  if (!cu)
    return wr_err_set(err, WR_EDECODE,
                      "bulk item %zu of page %zu (%zu bytes) is not a customer.v1.Customer", index,
                      page_no, it->len);
  const char *status = status_name(cu->status);
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

/* A page in one transaction: the guard and the view writes of all its customers in
 * two statements (view_batch_apply_source), the watermark, COMMIT. */
static int load_page(page *pg, struct load *l) {
  int64_t page_max = pg->max_upd_us > l->max_updated_us ? pg->max_upd_us : l->max_updated_us;
  size_t applied = 0;
  int rc;
  for (;;) {
    rc = wr_db_exec(l->c, "BEGIN", l->err);
    if (rc)
      return rc;
    rc = l->fresh ? view_batch_insert_new(l->c, pg->rows, &applied, l->err)
                  : view_batch_apply_source(l->c, pg->rows, &applied, l->err);
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
  l->max_updated_us = page_max;
  l->applied += applied;
  l->stale += pg->n - applied;
  wr_counter_add(l->a->catchup_items, pg->n);
  return 0;
}

/* The pipeline between the page fetcher (HTTP, decoding) and the writer (database):
 * the fetcher runs on its own thread a page or two ahead, so fetching and decoding the
 * next page overlaps writing this one. PIPE_PAGES pages circulate between a free list,
 * the fetcher (filling one), the queue and the writer (writing one); the queue has room
 * for all of them, so the fetcher is held back by the free list alone. */
#define PIPE_PAGES 4

typedef struct pipe_q {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  page pages[PIPE_PAGES];
  page *queue[PIPE_PAGES];
  size_t head, n;
  page *free_list[PIPE_PAGES];
  size_t n_free;
  bool done;      /* the fetcher returned */
  int rc;         /* ... with this */
  bool abort;     /* the writer failed: stop fetching */
  wr_err err;     /* the fetcher's failure (the pager's or add_item's) */
  bump mem;       /* the fetcher's decoding buffer */
  size_t fetched; /* pages received by the fetcher */
  const wr_sync_pager *pager;
} pipe_q;

/* Pager callback, fetcher thread: decodes the items into a free page, queues it. */
static int enqueue_page(const wr_sync_item *items, size_t n, void *user) {
  pipe_q *q = user;
  pthread_mutex_lock(&q->mu);
  while (q->n_free == 0 && !q->abort)
    pthread_cond_wait(&q->cv, &q->mu);
  page *pg = q->abort ? NULL : q->free_list[--q->n_free];
  pthread_mutex_unlock(&q->mu);
  if (!pg)
    return WR_ESTOPPED;
  view_batch_clear(pg->rows);
  pg->n = n;
  pg->max_upd_us = 0;
  q->fetched++;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = add_item(&items[i], q->fetched, i, &q->mem, pg, &q->err);
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

static void *fetcher(void *arg) {
  pipe_q *q = arg;
  int rc = wr_sync_pages_protobuf(q->pager, enqueue_page, q, NULL, NULL, &q->err);
  pthread_mutex_lock(&q->mu);
  q->done = true;
  q->rc = rc;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* Writer side: the next page, or NULL at the end. Give it back with release_page. */
static page *dequeue_page(pipe_q *q) {
  pthread_mutex_lock(&q->mu);
  while (q->n == 0 && !q->done)
    pthread_cond_wait(&q->cv, &q->mu);
  page *pg = NULL;
  if (q->n > 0) {
    pg = q->queue[q->head];
    q->head = (q->head + 1) % PIPE_PAGES;
    q->n--;
  }
  pthread_mutex_unlock(&q->mu);
  return pg;
}

static void release_page(pipe_q *q, page *pg, bool abort) {
  pthread_mutex_lock(&q->mu);
  q->free_list[q->n_free++] = pg;
  if (abort)
    q->abort = true;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
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
  wr_sync_pager p = {.url = url, .timeout_ms = 30000, .retries = 5, .stop = &a->stopping};
  pipe_q q = {.pager = &p};
  for (size_t i = 0; i < PIPE_PAGES; i++) {
    if (view_batch_new(&q.pages[i].rows) != 0)
      rc = wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
    q.free_list[q.n_free++] = &q.pages[i];
  }
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.cv, NULL);
  pthread_t th;
  size_t pages = 0, items = 0;
  int64_t t0 = wr_mono_ns();
  if (rc == 0 && pthread_create(&th, NULL, fetcher, &q) != 0)
    rc = wr_err_set(err, WR_ENOMEM, "catch-up: cannot start the page fetcher");
  else if (rc == 0) {
    page *pg;
    while ((pg = dequeue_page(&q)) != NULL) {
      if (rc == 0) {
        rc = load_page(pg, &l);
        pages++;
        items += pg->n;
      }
      release_page(&q, pg, rc != 0);
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
  for (size_t i = 0; i < PIPE_PAGES; i++)
    view_batch_free(q.pages[i].rows);
  free(q.mem.p);
  if (rc)
    return rc;
  double secs = (double)(wr_mono_ns() - t0) / 1e9;
  wr_log_info(NULL,
              "catch-up done: %zu customers in %zu pages, %" PRIu64 " applied, %" PRIu64
              " already current, %.2f s (%s)",
              items, pages, l.applied, l.stale, secs, wm > 0 ? "incremental" : "full");
  return (long)items;
}
