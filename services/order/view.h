/* view.h: the order service's local copy of customers (customer_view) and its orders
 * table. The view is written only after the version guard said "apply" (events,
 * catch-up) or by reconciliation's repair. */
#ifndef ORDER_VIEW_H
#define ORDER_VIEW_H

#include <libpq-fe.h>
#include <warren/error.h>
#include <warren/sync.h>

#define VIEW_ID_MAX 64

typedef struct view_row {
  char id[VIEW_ID_MAX + 1];
  char name[801];
  char email[255];
  char status[16];          /* active, pending, suspended, deleted */
  uint64_t version;
  int64_t source_updated_us; /* the source's updated_at (0 if unknown) */
  int64_t synced_us;        /* when this row was last written here */
} view_row;

/* The guard scope shared by the consumer, catch-up and reconciliation. */
#define VIEW_SCOPE "order.customer-sync"
#define VIEW_AGGREGATE "customer"

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

/* Deletes a row that the source does not know (reconciliation only). */
int view_remove(PGconn *c, const char *id, wr_err *err);

/* Catch-up watermark: the source updated_at (Unix us) up to which the view has been
 * loaded through the bulk API; 0 if never. */
int view_watermark_get(PGconn *c, int64_t *us, wr_err *err);
int view_watermark_set(PGconn *c, int64_t us, wr_err *err);

extern const wr_sync_source view_sync_source;

#endif
