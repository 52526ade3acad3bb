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
 *
 * Waking relays: the table's insert trigger sends `NOTIFY warren_outbox` once per
 * committed transaction that appended, which wakes every LISTENing relay at once.
 * A session with the setting warren.outbox_notify = off appends without it: set by
 * wr_db_pool_opts.outbox_notify = false, by `options=-c warren.outbox_notify=off` in a
 * connection string, or by `SET [LOCAL] warren.outbox_notify = off`. Such a session's
 * process must wake its own relay after the COMMIT (wr_relay_wake); relays elsewhere
 * find its rows within their poll interval. Why a service turns it off: PostgreSQL
 * serialises the commits of notifying transactions (no group commit), which caps a
 * service that commits one transaction per request (docs/PERFORMANCE.md). Unset,
 * empty or on: NOTIFY. A value that is not a PostgreSQL boolean makes the append fail
 * (WR_EDB, sqlstate 22P02).
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
  PGconn *conn;                       /* connection with an open transaction */
  const char *source_service;         /* meta.source_service when the event leaves it empty */
  const char *source_instance;        /* meta.source_instance, idem (may be NULL) */
  const char *correlation_id;         /* default meta.correlation_id (may be NULL: then the
                                         event id is used, starting a new flow) */
  const char *causation_id;           /* default meta.causation_id (may be NULL) */
  const char *exchange;               /* overrides the schema's exchange (may be NULL) */
  wr_err *err;                        /* optional: detail of a failure */
  char last_event_id[WR_UUID_STRLEN]; /* out: id of the last appended event */
} wr_outbox;

/* Appends one event of type t. Fills, in the encoded copy only, what the caller left
 * empty in ev's meta: event_id (UUIDv7), event_type, aggregate_type, occurred_at
 * (now; a zero timestamp counts as empty), source_service/instance, correlation_id
 * (ob's, else the event id), causation_id; `ev` itself is not modified (read
 * ob->last_event_id for the id). The caller must set meta.aggregate_id (1..256 bytes)
 * and meta.version (1..2^63-1); an event_id set by the caller must be a UUID.
 * While packing, ev's meta pointer briefly points to the filled copy: `ev` must not be
 * read by another thread during the call. Nothing is kept after return.
 * Returns 0; WR_EINVAL (no healthy transaction open, missing or invalid
 * aggregate_id/version/event_id/occurred_at, meta of another type, ev not of type t);
 * WR_ETOOBIG (encoded event above 128 MiB, RabbitMQ's default limit); WR_EDB (insert
 * failed, e.g. a duplicate event_id, sqlstate 23505: the transaction is aborted and
 * must be rolled back); WR_ENOMEM; WR_EIO (no randomness for the id). On any failure
 * no row was inserted. */
WR_EXPORT int wr_outbox_append(wr_outbox *ob, const wr_event_type *t, ProtobufCMessage *ev);

/* Number of rows waiting in the outbox (for metrics and tests), including rows that
 * are being published or wait for a retry; a negative WR_E* code on error (WR_EDB with
 * err filled). Runs count(*): meant for once-a-second gauges, not hot paths. */
WR_EXPORT int64_t wr_outbox_pending(PGconn *c, wr_err *err);

WR_END_DECLS

#endif
