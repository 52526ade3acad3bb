/* handlers.c: customer events -> customer_view. Each handler runs inside the
 * consumer's transaction after the inbox check; the version guard (wr_msg_guard)
 * makes duplicates and late events harmless, and a Deleted event's tombstone stops a
 * late Updated from resurrecting the customer. Events are fat: every handler can
 * rebuild the row from the event alone. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "view.h"

#include "customer/v1/customer.warren.h"

static const char *status_name(Customer__V1__CustomerStatus s) {
  switch (s) {
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

/* Checks that the data agrees with the meta, then guards and upserts. A message
 * whose payload contradicts its own metadata is poison: dead-letter it. */
static int apply_data(wr_msg *m, const Customer__V1__Customer *d) {
  const wr_meta *meta = wr_msg_meta(m);
  if (!d)
    return wr_msg_fail(m, WR_EREJECT, "event has no customer data");
  if (strcmp(d->id, meta->aggregate_id) != 0)
    return wr_msg_fail(m, WR_EREJECT, "data.id \"%.64s\" differs from meta.aggregate_id \"%.64s\"",
                       d->id, meta->aggregate_id);
  if (d->version != meta->version)
    return wr_msg_fail(m, WR_EREJECT,
                       "data.version %" PRIu64 " differs from meta.version %" PRIu64, d->version,
                       meta->version);
  const char *st = status_name(d->status);
  if (!st)
    return wr_msg_fail(m, WR_EREJECT, "unknown customer status %d", (int)d->status);
  if (strlen(d->id) > VIEW_ID_MAX)
    return wr_msg_fail(m, WR_EREJECT, "customer id longer than %d bytes", VIEW_ID_MAX);
  int g = wr_msg_guard(m);
  if (g <= 0)
    return g; /* 0: stale or tombstoned, counted by the runtime; <0: retry */
  view_row r = {.version = d->version};
  snprintf(r.id, sizeof r.id, "%s", d->id);
  snprintf(r.name, sizeof r.name, "%s", d->name);
  snprintf(r.email, sizeof r.email, "%s", d->email);
  snprintf(r.status, sizeof r.status, "%s", st);
  if (d->updated_at)
    r.source_updated_us = d->updated_at->seconds * 1000000 + d->updated_at->nanos / 1000;
  wr_err err = {0};
  int rc = strcmp(st, "deleted") == 0
               ? view_tombstone(wr_msg_db(m), r.id, r.version, r.source_updated_us, &err)
               : view_put(wr_msg_db(m), &r, &err);
  return rc ? wr_msg_fail(m, WR_EHANDLER, "%s", err.msg) : 0;
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
  wr_err err = {0};
  int64_t at = meta->occurred_at
                   ? meta->occurred_at->seconds * 1000000 + meta->occurred_at->nanos / 1000
                   : 0;
  int rc = view_tombstone(wr_msg_db(m), meta->aggregate_id, meta->version, at, &err);
  return rc ? wr_msg_fail(m, WR_EHANDLER, "%s", err.msg) : 0;
}

int handlers_subscribe(app *a, wr_consumer *c) {
  static const customer_v1_handlers h = {
      .on_customer_created = on_created,
      .on_customer_updated = on_updated,
      .on_customer_deleted = on_deleted,
      .on_customer_snapshot = on_snapshot,
  };
  return customer_v1_subscribe(c, &h, a);
}
