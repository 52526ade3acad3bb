/* snapshot.c: CustomerSnapshot for every customer (tombstones included, so consumers
 * that missed a deletion learn it), through the outbox in batches: one transaction
 * per batch keeps locks and the outbox's working set small, and a crash midway
 * leaves whole batches, never half of one. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "events.h"
#include "store.h"

struct batch {
  wr_outbox *ob;
  char last_id[WR_UUID_STRLEN];
  unsigned n;
  int rc;
};

static int emit(const customer *cu, void *user) {
  struct batch *b = user;
  int rc = events_snapshot(b->ob, cu);
  if (rc)
    return rc;
  snprintf(b->last_id, sizeof b->last_id, "%s", cu->id);
  b->n++;
  return 0;
}

long snapshot_run(app *a, const char *correlation_id, wr_err *err) {
  pthread_mutex_lock(&a->snapshot_mu);
  PGconn *c;
  int rc = wr_db_pool_acquire(a->pool, 5000, &c, err);
  if (rc) {
    pthread_mutex_unlock(&a->snapshot_mu);
    return rc;
  }
  /* All events of one run share a correlation id, so a run can be traced as a whole. */
  char corr[WR_UUID_STRLEN];
  if (!correlation_id) {
    wr_uuid_v7(corr);
    correlation_id = corr;
  }
  wr_outbox ob = {.conn = c,
                  .source_service = a->service,
                  .source_instance = a->instance,
                  .correlation_id = correlation_id,
                  .err = err};
  char after[WR_UUID_STRLEN] = "";
  long total = 0;
  for (;;) {
    if (a->stopping) {
      rc = wr_err_set(err, WR_ESTOPPED, "snapshot interrupted by shutdown");
      break;
    }
    struct batch b = {.ob = &ob};
    rc = wr_db_exec(c, "BEGIN", err);
    if (rc)
      break;
    rc = store_by_id_from(c, after[0] ? after : NULL, a->snapshot_batch, emit, &b, err);
    if (rc == 0)
      rc = wr_db_exec(c, "COMMIT", err);
    else
      wr_db_exec(c, "ROLLBACK", NULL);
    if (rc)
      break;
    /* after every commit, the last one too: the pool's sessions send no NOTIFY */
    wr_relay_wake(a->relay);
    total += b.n;
    if (b.n < a->snapshot_batch)
      break;
    memcpy(after, b.last_id, sizeof after);
  }
  wr_db_pool_release(a->pool, c);
  pthread_mutex_unlock(&a->snapshot_mu);
  if (rc)
    return rc;
  wr_counter_add(a->snapshots_emitted, (uint64_t)total);
  wr_log_info(correlation_id, "snapshot emitted %ld customers", total);
  return total;
}
