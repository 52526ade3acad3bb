/* warren/relay.h: moves committed outbox rows to RabbitMQ.
 *
 * Cycle: claim up to batch_size rows `ORDER BY id FOR UPDATE SKIP LOCKED` (several
 * relays get disjoint rows), publish each as a persistent, mandatory message with
 * publisher confirms, wait for the broker's verdicts, then in the same transaction
 * delete the acked rows and push back the others (nack, return, lost connection:
 * attempts + 1, next_attempt_at with backoff, last_error), commit. A row is removed
 * only after the broker acked it; a crash before the commit leaves the rows locked by
 * a dead session, which PostgreSQL releases, and they are published again
 * (at-least-once). The relay sleeps on LISTEN warren_outbox (NOTIFY from the insert
 * trigger, unless the appending session turned it off: warren/outbox.h) and
 * wr_relay_wake, with a polling fallback (poll_interval_ms).
 *
 * Within one relay, rows are published in id order, so per-aggregate order is kept
 * unless a row fails and a later row of the same aggregate succeeds (the consumer's
 * version guard makes that harmless for fat events).
 *
 * AMQP message: body = the protobuf event; content_type application/x-protobuf,
 * delivery_mode 2, message_id = event_id, type = event_type, correlation_id,
 * app_id = source_service, timestamp = occurred_at (s), headers x-aggregate-type,
 * x-aggregate-id, x-version (long), x-causation-id. Routing key = event type. */
#ifndef WARREN_RELAY_H
#define WARREN_RELAY_H

#include <warren/common.h>
#include <warren/conn.h>
#include <warren/error.h>
#include <warren/metrics.h>
#include <warren/topology.h>

WR_BEGIN_DECLS

typedef struct wr_relay_opts {
  const char *database_url;    /* required */
  const wr_conn_opts *amqp;    /* required; copied */
  const wr_topology *topology; /* exchanges to declare on connect (may be NULL);
                                  borrowed: must outlive the relay */
  unsigned batch_size;         /* rows per claim (1..100000); the default 2000 was
                                  measured against 500 and 1000 by bench/run
                                  (docs/PERFORMANCE.md): fewer round trips per row */
  unsigned poll_interval_ms;   /* fallback when no NOTIFY arrives */
  unsigned confirm_timeout_ms; /* a batch not confirmed by then is retried */
  unsigned retry_base_ms;      /* backoff for rows that failed ... */
  unsigned retry_max_ms;       /* ... capped */
  wr_metrics *metrics;         /* optional */
  const char *name;            /* for logs and connection names (may be NULL) */
} wr_relay_opts;

#define WR_RELAY_OPTS_INIT                                                                         \
  {                                                                                                \
    .database_url = NULL, .amqp = NULL, .topology = NULL, .batch_size = 2000,                      \
    .poll_interval_ms = 1000, .confirm_timeout_ms = 15000, .retry_base_ms = 500,                   \
    .retry_max_ms = 60000, .metrics = NULL, .name = NULL                                           \
  }

typedef struct wr_relay wr_relay;

typedef struct wr_relay_stats {
  uint64_t published; /* rows acked and removed */
  uint64_t failed;    /* row publish attempts that were nacked/returned/lost */
  uint64_t batches;
  uint64_t reconnects;
  bool connected; /* broker connection currently open (for readiness) */
} wr_relay_stats;

/* Copies opts (strings and the AMQP options; the topology and metrics registry are
 * borrowed) and validates the AMQP URLs; connects nothing yet. Returns 0, WR_EINVAL
 * (missing database_url/amqp, a zero batch_size, poll_interval_ms, confirm_timeout_ms
 * or retry_base_ms, retry_max_ms < retry_base_ms), WR_EURL, WR_ENOMEM, WR_EIO. *out is
 * owned by the caller: wr_relay_free().
 *
 * Thread-safety: wr_relay_wake() and wr_relay_stats_get() may be called from any
 * thread; the other functions from one controlling thread.
 *
 * Rows whose exchange does not exist are not published (a publish to a missing
 * exchange would close the channel under the rest of the batch): exchanges are
 * checked with a passive declare once per connection, and such rows are pushed back
 * like returned ones with last_error "exchange ... does not exist". */
WR_EXPORT int wr_relay_new(const wr_relay_opts *opts, wr_relay **out, wr_err *err);

/* Runs one cycle on the calling thread (connecting if needed, one attempt per side):
 * claims one batch, publishes it, settles it. *published (may be NULL) = rows removed.
 * Returns 0 (also when nothing was pending, and when rows were pushed back after a
 * nack/return/missing exchange: see the stats and last_error), WR_ESTATE while the
 * relay thread runs, or the failure (WR_EDB, WR_ECLOSED, WR_EBLOCKED...; rows not
 * acked are left for a later cycle). */
WR_EXPORT int wr_relay_run_once(wr_relay *r, size_t *published, wr_err *err);

/* Starts the relay thread: cycles until stopped, reconnecting to PostgreSQL and
 * RabbitMQ with backoff, never giving up. Returns 0 or WR_ESTATE (already running). */
WR_EXPORT int wr_relay_start(wr_relay *r);

/* Asks the thread to stop. It finishes the batch in flight, then keeps publishing
 * until the outbox is empty or drain_timeout_ms passes (flush on shutdown), and
 * joins. "Empty" counts every row, including rows other relays are publishing and
 * rows waiting for their retry time (retried when due before the deadline). Returns 0
 * (also when the thread was not running) or WR_ETIMEDOUT (rows left, they stay in the
 * outbox). Connections stay open for a later start() or run_once(). */
WR_EXPORT int wr_relay_stop(wr_relay *r, unsigned drain_timeout_ms);

/* Wakes a sleeping relay now (e.g. right after a commit in the same process). */
WR_EXPORT void wr_relay_wake(wr_relay *r);

WR_EXPORT void wr_relay_stats_get(const wr_relay *r, wr_relay_stats *out);

/* Stops if running, closes connections, frees. NULL allowed. */
WR_EXPORT void wr_relay_free(wr_relay *r);

WR_END_DECLS

#endif
