/* handlers.c: customer events -> customer_view. Each handler runs inside the
 * consumer's transaction after the inbox check; the version guard (wr_msg_guard)
 * makes duplicates and late events harmless, and a Deleted event's tombstone stops a
 * late Updated from resurrecting the customer. Events are fat: every handler can
 * rebuild the row from the event alone.
 *
 * Writes are set-based: a handler checks its event and asks the guard, then only
 * buffers the row; the consumer's batch flush (wr_consumer_on_batch) writes the whole
 * transaction's rows with one statement before the guard is saved and the
 * transaction commits, and its discard hook forgets them when the transaction is
 * rolled back. A statement per event would cap the consumer at the database's round
 * trips (docs/PERFORMANCE.md). A flush that fails fails the transaction; the consumer
 * then runs the batch one message per transaction, so a bad row is attributed to its
 * own message. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "view.h"

#include "customer/v1/customer.warren.h"

/* The rows buffered by the handlers of the transaction in progress. One consumer per
 * process, and its handlers and hooks all run on its thread: allocated once by
 * handlers_subscribe, it lives as long as the process. */
static view_batch *pending;

static int64_t ts_us(const Google__Protobuf__Timestamp *t) {
  return t ? t->seconds * 1000000 + t->nanos / 1000 : 0;
}

/* Checks that the data agrees with the meta, then guards and buffers the row. A
 * message whose payload contradicts its own metadata is poison: dead-letter it. */
static int apply_data(wr_msg *m, const Customer__V1__Customer *d) {
  const wr_meta *meta = wr_msg_meta(m);
  if (!d)
    return wr_msg_fail(m, WR_EREJECT, "event has no customer data");
  if (strcmp(d->id, meta->aggregate_id) != 0)
    return wr_msg_fail(m, WR_EREJECT, "data.id \"%.64s\" differs from meta.aggregate_id \"%.64s\"",
                       d->id, meta->aggregate_id);
  if (d->version != meta->version)
    return wr_msg_fail(m, WR_EREJECT, "data.version %" PRIu64 " differs from meta.version %" PRIu64,
                       d->version, meta->version);
  const char *st = view_status_name(d->status);
  if (!st)
    return wr_msg_fail(m, WR_EREJECT, "unknown customer status %d", (int)d->status);
  if (strlen(d->id) > VIEW_ID_MAX)
    return wr_msg_fail(m, WR_EREJECT, "customer id longer than %d bytes", VIEW_ID_MAX);
  int g = wr_msg_guard(m);
  if (g <= 0)
    return g; /* 0: stale or tombstoned, counted by the runtime; <0: retry */
  if (view_batch_add(pending, d->id, d->name, d->email, st, d->version, ts_us(d->updated_at)) != 0)
    return wr_msg_fail(m, WR_EHANDLER, "out of memory buffering the view row");
  return 0;
}

static int on_created(wr_msg *m, const Customer__V1__CustomerCreated *ev, void *user) {
  return apply_data(m, ev->data);
}

static int on_updated(wr_msg *m, const Customer__V1__CustomerUpdated *ev, void *user) {
  return apply_data(m, ev->data);
}

static int on_snapshot(wr_msg *m, const Customer__V1__CustomerSnapshot *ev, void *user) {
  return apply_data(m, ev->data);
}

static int on_deleted(wr_msg *m, const Customer__V1__CustomerDeleted *ev, void *user) {
  const wr_meta *meta = wr_msg_meta(m);
  if (strlen(meta->aggregate_id) > VIEW_ID_MAX)
    return wr_msg_fail(m, WR_EREJECT, "customer id longer than %d bytes", VIEW_ID_MAX);
  int g = wr_msg_guard(m); /* kind DELETED: leaves a tombstone in the guard */
  if (g <= 0)
    return g;
  if (view_batch_add(pending, meta->aggregate_id, "", "", "deleted", meta->version,
                     ts_us(meta->occurred_at)) != 0)
    return wr_msg_fail(m, WR_EHANDLER, "out of memory buffering the view row");
  return 0;
}

/* Batch hooks: write what the handlers buffered, or forget it. */
static int flush(wr_consumer *c, PGconn *db, void *user, wr_err *err) {
  return view_batch_write(db, user, err);
}

static void discard(wr_consumer *c, void *user) {
  view_batch_clear(user);
}

int handlers_subscribe(app *a, wr_consumer *c) {
  static const customer_v1_handlers h = {
      .on_customer_created = on_created,
      .on_customer_updated = on_updated,
      .on_customer_deleted = on_deleted,
      .on_customer_snapshot = on_snapshot,
  };
  if (!pending && view_batch_new(&pending) != 0)
    return WR_ENOMEM;
  int rc = customer_v1_subscribe(c, &h, a);
  if (rc == 0)
    rc = wr_consumer_on_batch(c, flush, discard, pending);
  return rc;
}
