/* catchup.c: hybrid catch-up at start. The consumer's queue is declared and bound
 * before this runs, so anything published during the load waits in the queue; the
 * load itself goes through the same version guard as events, so whichever of the two
 * paths brings a version first wins and the other is skipped as stale.
 *
 * An empty view loads everything; a view that was loaded before resumes from its
 * watermark (the newest source updated_at it has seen) minus a safety margin that
 * covers transactions which committed late with an earlier updated_at. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "view.h"

#define WATERMARK_MARGIN_US (5LL * 60 * 1000000)

struct load {
  app *a;
  PGconn *c;
  view_batch *rows; /* one page, written set-based */
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
    int64_t upd;
    if ((rc = add_item(it, l->rows, &upd, l->err)) != 0)
      return rc;
    if (upd > page_max)
      page_max = upd;
  }
  size_t applied = 0;
  rc = wr_db_exec(l->c, "BEGIN", l->err);
  if (rc)
    return rc;
  rc = view_batch_apply_source(l->c, l->rows, &applied, l->err);
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
  struct load l = {.a = a, .c = c, .max_updated_us = wm, .err = err};
  if (view_batch_new(&l.rows) != 0) {
    wr_db_pool_release(a->pool, c);
    return wr_err_set(err, WR_ENOMEM, "catch-up: out of memory");
  }
  wr_sync_pager p = {.url = url, .timeout_ms = 30000, .retries = 5, .stop = &a->stopping};
  size_t pages = 0, items = 0;
  int64_t t0 = wr_mono_ns();
  rc = wr_sync_pages(&p, load_page, &l, &pages, &items, err);
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
