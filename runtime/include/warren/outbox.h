/* warren/outbox.h: the publishing side of the transactional outbox.
 *
 * An event is appended to the warren_outbox table inside the caller's open database
 * transaction: a rolled-back transaction publishes nothing, a committed one is
 * published at least once by a relay (warren/relay.h). Generated
 * `<pkg>_<event>_publish()` functions are typed fronts for wr_outbox_append().
 *
 *   wr_outbox ob = { .conn = pg, .source_service = "customer", .correlation_id = corr };
 *   // BEGIN; update the customer row; then:
 *   rc = customer_v1_customer_updated_publish(&ob, &ev);   // COMMIT when rc == 0
 */
#ifndef WARREN_OUTBOX_H
#define WARREN_OUTBOX_H

#include <libpq-fe.h>
#include <warren/common.h>
#include <warren/error.h>
#include <warren/schema.h>
#include <warren/util.h>

WR_BEGIN_DECLS

/* A publishing context: cheap, caller-owned (usually on the stack). All pointers are
 * borrowed and must stay valid during each append. */
typedef struct wr_outbox {
  PGconn *conn;                 /* connection with an open transaction */
  const char *source_service;   /* meta.source_service when the event leaves it empty */
  const char *source_instance;  /* meta.source_instance, idem (may be NULL) */
  const char *correlation_id;   /* default meta.correlation_id (may be NULL: then the
                                   event id is used, starting a new flow) */
  const char *causation_id;     /* default meta.causation_id (may be NULL) */
  const char *exchange;         /* overrides the schema's exchange (may be NULL) */
  wr_err *err;                  /* optional: detail of a failure */
  char last_event_id[WR_UUID_STRLEN]; /* out: id of the last appended event */
} wr_outbox;

/* Appends one event of type t. Fills, in the encoded copy only, what the caller left
 * empty in ev's meta: event_id (UUIDv7), event_type, aggregate_type, occurred_at
 * (now), source_service/instance, correlation_id, causation_id; `ev` itself is not
 * modified (read ob->last_event_id for the id). The caller must set
 * meta.aggregate_id and meta.version (>= 1).
 * Returns 0; WR_EINVAL (no transaction open, missing aggregate_id or version, meta of
 * another type); WR_EDB (insert failed: the transaction is aborted and must be rolled
 * back); WR_ENOMEM. */
WR_EXPORT int wr_outbox_append(wr_outbox *ob, const wr_event_type *t, ProtobufCMessage *ev);

/* Number of rows waiting in the outbox (for metrics and tests); <0 on error. */
WR_EXPORT int64_t wr_outbox_pending(PGconn *c, wr_err *err);

WR_END_DECLS

#endif
