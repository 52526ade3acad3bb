/* view.h: the order service's local copy of customers (customer_view) and its orders
 * table. The view is written only after the version guard said "apply" (events,
 * catch-up) or by reconciliation's repair. */
#ifndef ORDER_VIEW_H
#define ORDER_VIEW_H

#include <libpq-fe.h>
#include <warren/error.h>
#include <warren/sync.h>

#include "customer/v1/customer.pb-c.h"

#define VIEW_ID_MAX 64

typedef struct view_row {
  char id[VIEW_ID_MAX + 1];
  char name[801];
  char email[255];
  char status[16]; /* active, pending, suspended, deleted */
  uint64_t version;
  int64_t source_updated_us; /* the source's updated_at (0 if unknown) */
  int64_t synced_us;         /* when this row was last written here */
} view_row;

/* The guard scope shared by the consumer, catch-up and reconciliation. */
#define VIEW_SCOPE     "order.customer-sync"
#define VIEW_AGGREGATE "customer"

/* The view's text for a customer status (as the customer service's API writes it), or
 * NULL for a value this service does not know (the caller refuses the item). */
const char *view_status_name(Customer__V1__CustomerStatus st);

int view_migrate(PGconn *c, wr_err *err);

/* Upserts the whole row (name/email kept when r->name is NULL-empty for tombstones
 * of unknown content). The caller has checked the version guard. */
int view_put(PGconn *c, const view_row *r, wr_err *err);

/* Marks a customer deleted at `version` (inserting a tombstone row if unknown). */
int view_tombstone(PGconn *c, const char *id, uint64_t version, int64_t source_updated_us,
                   wr_err *err);

/* Reads one row (for_update locks it). 0, WR_ENOTFOUND, WR_EDB. */
int view_get(PGconn *c, const char *id, bool for_update, view_row *out, wr_err *err);

/* Applies one customer from the source (catch-up or repair): guard, then put or
 * tombstone. force = repair (overwrites the guard). Returns 1 applied, 0 stale, <0. */
int view_apply_source(PGconn *c, const view_row *r, bool force, wr_err *err);

/* ---- set-based writes ----------------------------------------------------------
 * A view_batch collects rows and writes them with one statement: the consumer's
 * handlers buffer into one and its batch flush writes it (wr_consumer_on_batch), and
 * catch-up applies one per bulk-API page. Rows are copied. For one id only the highest
 * version is written (equal versions: the row added last), so a batch holding several
 * versions of a customer ends at the newest. A row whose status is "deleted" is
 * written as view_tombstone does (name and email kept on an existing row, empty on a
 * new one; the source time kept when the new one is unknown), every other row as
 * view_put does. One user at a time (not thread-safe). */
typedef struct view_batch view_batch;

/* 0 or WR_ENOMEM; *out is freed with view_batch_free (NULL allowed). */
int view_batch_new(view_batch **out);
void view_batch_free(view_batch *b);

/* Adds a row (strings copied; name/email ignored for status "deleted";
 * source_updated_us 0 = unknown). 0 or WR_ENOMEM (nothing added). */
int view_batch_add(view_batch *b, const char *id, const char *name, const char *email,
                   const char *status, uint64_t version, int64_t source_updated_us);

/* Rows added since the last clear (before merging versions of one id). */
size_t view_batch_size(const view_batch *b);

/* Forgets the rows; keeps the memory for the next batch. */
void view_batch_clear(view_batch *b);

/* Writes the rows, whose version guard the caller has already passed (the consumer's
 * wr_msg_guard), in one upsert inside the caller's transaction. Returns 0 (the batch is
 * cleared), WR_EDB (the transaction is aborted) or WR_ENOMEM; on failure the rows stay. */
int view_batch_write(PGconn *c, view_batch *b, wr_err *err);

/* Catch-up: passes every row through the version guard in one statement
 * (wr_guard_advance_many, scope VIEW_SCOPE, a "deleted" status is a tombstone) and
 * writes those it applied with one upsert, inside the caller's transaction. Same rule
 * as view_apply_source without force, row by row. *applied = rows written (the others
 * were stale or tombstoned). Returns 0 (batch cleared) or <0 (rows kept). */
int view_batch_apply_source(PGconn *c, view_batch *b, size_t *applied, wr_err *err);

/* The first load into an empty view (a fresh service's full catch-up): records every
 * row in the guard (wr_guard_record_new) and inserts it into the view with plain
 * inserts, about half the database work of view_batch_apply_source. When a customer of
 * the batch has a guard or view row after all, nothing is written, the result is
 * WR_EEXIST, the transaction is aborted and the rows stay: roll back and use
 * view_batch_apply_source. *applied = rows written. Returns 0 (batch cleared) or <0. */
int view_batch_insert_new(PGconn *c, view_batch *b, size_t *applied, wr_err *err);

/* Deletes a row that the source does not know (reconciliation only). */
int view_remove(PGconn *c, const char *id, wr_err *err);

/* Catch-up watermark: the source updated_at (Unix us) up to which the view has been
 * loaded through the bulk API; 0 if never. */
int view_watermark_get(PGconn *c, int64_t *us, wr_err *err);
int view_watermark_set(PGconn *c, int64_t us, wr_err *err);

extern const wr_sync_source view_sync_source;

#endif
