/* events.h: customer rows -> CustomerCreated/Updated/Deleted/Snapshot events, appended
 * to the outbox inside the caller's transaction. */
#ifndef CUSTOMER_EVENTS_H
#define CUSTOMER_EVENTS_H

#include <warren/outbox.h>

#include "store.h"

/* One changed field of an update, values as text. */
typedef struct field_change {
  const char *field;
  const char *old_value;
  const char *new_value;
} field_change;

int events_created(wr_outbox *ob, const customer *cu);
int events_updated(wr_outbox *ob, const customer *cu, const field_change *changes, size_t n);
int events_deleted(wr_outbox *ob, const customer *cu, const char *reason, const char *deleted_by);
int events_snapshot(wr_outbox *ob, const customer *cu);

#endif
