/* warren/consumer.h: the reliable, idempotent consumer.
 *
 * For each delivery: decode the protobuf body by its AMQP type (the routing key) and
 * validate meta -> BEGIN -> inbox insert (consumer, event_id); a duplicate is skipped
 * -> call the handler with the open transaction -> COMMIT -> ack. Deliveries are
 * processed in batches (one transaction, one multiple-ack after the commit); if a
 * batch fails, its messages are processed one by one so a poison message fails alone.
 *
 * A handler failure (WR_EHANDLER, or any other negative code) rolls back and sends a
 * copy of the message to the next retry tier <queue>.retry.<n> (TTL wait queue that
 * dead-letters back to the work queue) with header x-warren-attempt = n, then acks
 * the original. After the last tier, or for WR_EREJECT, the copy goes to <queue>.dlx
 * (-> <queue>.dlq) with x-warren-error, x-warren-attempts, x-warren-failed-at,
 * x-warren-consumer and the x-death entries RabbitMQ added on the way. Every copy
 * keeps the original's body, properties and headers, is persistent, and carries
 * x-warren-original-exchange / x-warren-original-routing-key (those of the first
 * delivery, kept across hops; `warren dlq replay` uses them). Copies are
 * published with confirms before the original is acked: nothing is lost, at worst
 * duplicated (and the inbox absorbs it). Undecodable bodies, invalid meta and
 * unhandled types go straight to the DLQ with the reason (unhandled types may be
 * skipped instead).
 *
 * The consumer owns its threads' connections: one AMQP connection and one PGconn,
 * reconnected with backoff. A lost broker connection costs nothing but redeliveries
 * (unacked deliveries come back; the inbox absorbs what was already committed); a
 * lost database keeps the batch in memory and runs it again after reconnecting. A
 * copy (retry tier or DLQ) the broker does not confirm is not acked away: its
 * original is requeued after a backoff, never in a hot loop.
 *
 * Throughput comes from the batch: one inbox statement, one read and one write of
 * the version guard (wr_msg_guard decides in memory), optionally one set-based write
 * of the handlers' rows (wr_consumer_on_batch), one COMMIT and one ack per batch. */
#ifndef WARREN_CONSUMER_H
#define WARREN_CONSUMER_H

#include <libpq-fe.h>
#include <warren/common.h>
#include <warren/conn.h>
#include <warren/error.h>
#include <warren/event.h>
#include <warren/metrics.h>
#include <warren/outbox.h>
#include <warren/schema.h>
#include <warren/topology.h>

WR_BEGIN_DECLS

typedef enum wr_unknown_policy {
  WR_UNKNOWN_DEAD_LETTER = 0, /* unhandled event types go to the DLQ (default) */
  WR_UNKNOWN_SKIP = 1,        /* acked and counted as skipped */
} wr_unknown_policy;

typedef struct wr_consumer_opts {
  const char *queue;        /* "order.customer-sync" (required) */
  const char *name;         /* inbox/guard scope; default = queue */
  const char *database_url; /* required */
  const wr_conn_opts *amqp; /* required; copied */
  wr_queue_type queue_type;
  uint16_t prefetch;               /* broker-side window (basic.qos), >= 1; keep it
                                      >= batch_size or batches never fill */
  unsigned batch_size;             /* deliveries per transaction, 1..10000 (1 = none) */
  unsigned batch_wait_ms;          /* how long to wait to fill a batch (<= 60000) */
  const unsigned *retry_delays_ms; /* retry tiers, each > 0, at most 32; NULL =
                                      default 1s, 5s, 30s, 120s */
  size_t n_retry_delays;           /* 0 with a non-NULL array = no retries */
  unsigned delivery_limit;         /* quorum crash-loop guard (0 = none). RabbitMQ
                                      counts a delivery for every unacked message of
                                      a connection that dies, so messages prefetched
                                      with a process-killing one count too: they may
                                      reach the DLQ with it (replayable) */
  wr_unknown_policy unknown_types;
  size_t max_message_size;           /* larger bodies go to the DLQ undecoded (0 = no
                                        limit) */
  unsigned inbox_retention_s;        /* inbox rows older than this are deleted; the
                                        trade-off: a duplicate arriving later than
                                        that is no longer recognised by the inbox (the
                                        version guard still refuses it as stale) */
  unsigned inbox_cleanup_interval_s; /* 0 (or retention 0) = no cleanup */
  const char *source_service;        /* for events handlers publish via wr_msg_outbox */
  const char *source_instance;
  wr_metrics *metrics; /* optional */

  /* Partitioned group (0 = one work queue named `queue`). With n >= 1 the layout of
   * wr_topology_partitioned_queue is declared and the consumer consumes every
   * partition queue <queue>.p0 .. p<n-1> (prefetch = the window of each) plus
   * <queue>.members. Each partition has a single active consumer among all instances
   * of the group: the events of one aggregate are processed by one instance at a
   * time, in the order the relay published them, and when that instance dies the
   * next one waiting takes over (its unacked deliveries come back first). Every
   * rebalance_interval_ms an instance that receives from more partitions than its
   * share (ceil(n / instances), instances = consumers of <queue>.members) hands the
   * excess over to the instances waiting longest for them (basic.cancel; it queues
   * up again, at the back, one interval later). An instance that gets a partition
   * while others are around waits 1 s before processing it, so that the previous
   * holder can settle what it had received: order holds across handovers and
   * takeovers unless the previous holder is stuck longer, and then the version
   * guard skips the older events as stale, never applies them after newer ones.
   * Changing n moves aggregates between partitions: see docs/SCALING.md. */
  unsigned partitions;
  unsigned rebalance_interval_ms; /* 0 = never hand partitions over */

  /* Replay mode: consume this stream queue (x-queue-type=stream, bound to the domain
   * exchange) instead of the work queue(s), with the same handlers, inbox and
   * version guard (same name), from stream_from: "first", "last", "next", an offset
   * ("12345") or an RFC 3339 timestamp. The run ends by itself (wr_consumer_run
   * returns 0, stats.finished) once it has processed the messages that were in the
   * stream when it started (found by reading the stream's last chunk on a separate
   * connection first), or after 10 s without a delivery. The topology (retry tiers,
   * DLQ, work queue or partitions) is declared as for the live consumer: a failing
   * event goes to a retry tier, which hands it to the live consumer of the group.
   * A copy the broker does not confirm cannot be requeued on a stream: the run
   * stops with WR_EIO, stats.stream_offset says where to start again. Events
   * already applied are skipped as duplicates or stale, so a replay is safe to
   * repeat and to run beside the live consumer. */
  const char *stream;
  const char *stream_from; /* NULL = "first" */
} wr_consumer_opts;

#define WR_CONSUMER_OPTS_INIT                                                                      \
  {                                                                                                \
    .queue = NULL, .name = NULL, .database_url = NULL, .amqp = NULL,                               \
    .queue_type = WR_QUEUE_QUORUM, .prefetch = 500, .batch_size = 200, .batch_wait_ms = 2,         \
    .retry_delays_ms = NULL, .n_retry_delays = 0, .delivery_limit = 20,                            \
    .unknown_types = WR_UNKNOWN_DEAD_LETTER, .max_message_size = 4u << 20,                         \
    .inbox_retention_s = 7 * 24 * 3600, .inbox_cleanup_interval_s = 600, .source_service = NULL,   \
    .source_instance = NULL, .metrics = NULL, .partitions = 0, .rebalance_interval_ms = 5000,      \
    .stream = NULL, .stream_from = NULL                                                            \
  }

typedef struct wr_consumer wr_consumer;
typedef struct wr_msg wr_msg;

/* Generic handler pointer stored by the runtime and handed back to the dispatcher. */
typedef void (*wr_fnptr)(void);

/* The dispatcher generated per event type: casts ev and calls the typed handler.
 * Returns the handler's result: 0 = done (applied or deliberately skipped),
 * WR_EHANDLER (or any negative code) = retry, WR_EREJECT = dead-letter now. A
 * positive value is a contract breach and treated like WR_EHANDLER. Success while
 * the transaction is aborted (a failed statement whose error the handler ignored) is
 * a failure too. Handlers run on the consumer's thread, in delivery order. */
typedef int (*wr_dispatch_fn)(wr_msg *msg, const ProtobufCMessage *ev, wr_fnptr handler,
                              void *user);

/* Copies opts (strings, retry tiers and opts->amqp). Nothing connects yet. Returns 0,
 * WR_EINVAL (with the offending option in err: also partitions above
 * WR_PARTITIONS_MAX, a stream name that is empty or longer than 255 bytes, a
 * stream_from that is none of the accepted forms), WR_EURL (opts->amqp->urls),
 * WR_ENOMEM. *out is owned by the caller: wr_consumer_free(). */
WR_EXPORT int wr_consumer_new(const wr_consumer_opts *opts, wr_consumer **out, wr_err *err);

/* Registers the handler for event type t and binds the work queue to t->exchange with
 * routing key t->type. Must be called before wr_consumer_declare/start (else
 * WR_ESTATE). A second registration for the same type is WR_EEXIST; NULL t, dispatch
 * or a type without an exchange is WR_EINVAL. `t` must outlive the consumer; user is
 * handed back to dispatch as is. */
WR_EXPORT int wr_consumer_on(wr_consumer *c, const wr_event_type *t, wr_dispatch_fn dispatch,
                             wr_fnptr handler, void *user);

/* Optional hooks for handlers that buffer their writes to do them set-based: flush
 * runs once per transaction, after its handlers and before the version guard is
 * written and COMMIT, on the transaction's connection (if at least one handler ran).
 * It returns 0 or a negative code: a failure fails the transaction like a handler
 * failure (the batch is run again one message per transaction, so a bad row ends up
 * attributed to its message). discard (may be NULL) runs whenever a transaction is
 * abandoned (ROLLBACK): forget what the handlers buffered since the last flush.
 * Rows buffered for one key within a batch must be merged by the flush (the guard
 * makes later ones newer). Register before declare/start (else WR_ESTATE); once
 * (else WR_EEXIST). Both run on the consumer's thread. */
typedef int (*wr_batch_flush_fn)(wr_consumer *c, PGconn *db, void *user, wr_err *err);
typedef void (*wr_batch_discard_fn)(wr_consumer *c, void *user);
WR_EXPORT int wr_consumer_on_batch(wr_consumer *c, wr_batch_flush_fn flush,
                                   wr_batch_discard_fn discard, void *user);

/* Adds everything the consumer declares (domain exchanges, DLX, DLQ, retry tiers, work
 * queue, bindings) to t. For `warren topology` and tests. */
WR_EXPORT int wr_consumer_topology(const wr_consumer *c, wr_topology *t);

/* Connects (database: applies runtime migrations; broker: declares the topology) on
 * the calling thread without consuming, so a service can bind its queue before a
 * catch-up load and miss nothing published meanwhile. Returns 0 or the failure. */
WR_EXPORT int wr_consumer_declare(wr_consumer *c, wr_err *err);

/* Consumes on the calling thread until wr_consumer_stop() (from another thread or a
 * signal handler via the flag), reconnecting to both servers with backoff. Returns 0
 * after a clean stop: the batch in progress is committed and acked, nothing
 * half-done; deliveries prefetched but not started go back to the queue when the
 * connection closes. Returns an error only for what retrying cannot fix, before
 * consuming: WR_EURL/WR_EAUTH/WR_EINVAL, a topology conflict (WR_EAMQP, 406/403) or
 * failed runtime migrations (WR_EDB); the reason is logged. Replay mode also returns
 * 0 when the replay is finished, WR_ENOTFOUND when the stream does not exist and
 * WR_EIO when a copy could not be confirmed (see opts.stream). */
WR_EXPORT int wr_consumer_run(wr_consumer *c);

/* Runs wr_consumer_run on a new thread. 0, WR_ESTATE (already started), WR_ENOMEM. */
WR_EXPORT int wr_consumer_start(wr_consumer *c);

/* Asks to stop (async-signal-safe: sets a flag). With a thread started by
 * wr_consumer_start, wr_consumer_join() waits for it and returns wr_consumer_run's
 * result (WR_ESTATE if no thread was started). */
WR_EXPORT void wr_consumer_stop(wr_consumer *c);
WR_EXPORT int wr_consumer_join(wr_consumer *c);

/* Stops, joins, closes, frees. NULL allowed. */
WR_EXPORT void wr_consumer_free(wr_consumer *c);

typedef struct wr_consumer_stats {
  uint64_t applied;         /* handler returned 0 and the transaction committed */
  uint64_t duplicates;      /* inbox hit: already processed */
  uint64_t stale;           /* handler reported the event as stale (wr_msg_guard) */
  uint64_t retried;         /* sent to a retry tier */
  uint64_t dead_lettered;   /* sent to the DLQ */
  uint64_t skipped;         /* unknown type with WR_UNKNOWN_SKIP */
  uint64_t batches;         /* transactions committed */
  uint64_t batch_fallbacks; /* batches re-run one by one */
  uint64_t reconnects;
  uint64_t guard_conflicts; /* optimistic batches run again with the guard's row locks
                             * because a competing writer changed a guard row (wr_msg_guard) */
  uint64_t txn_reruns;      /* one message's transaction run again at once because PostgreSQL
                             * rolled it back as a deadlock or serialization failure with
                             * another writer (a flush, the guard's write, the commit or a
                             * handler's statement reported by wr_msg_fail_err; up to 5
                             * times, then it is a failed attempt) */
  bool connected;           /* broker and database connections currently open */
  /* partitioned: partitions this instance received from since it last registered
   * on them (a lower bound of those it serves), and partitions handed over */
  uint32_t partitions_active;
  uint64_t handovers;
  /* replay: offset of the last message settled (-1: none yet), the offset the run
   * ends at (-1: the stream was empty), and whether it has ended */
  int64_t stream_offset;
  int64_t stream_end;
  bool finished;
} wr_consumer_stats;
WR_EXPORT void wr_consumer_stats_get(const wr_consumer *c, wr_consumer_stats *out);

/* ---- inside a handler: the message ------------------------------------------------ */

/* The open transaction's connection. Borrowed; valid until the handler returns. The
 * handler must not COMMIT or ROLLBACK it. */
WR_EXPORT PGconn *wr_msg_db(wr_msg *m);
/* The validated meta. Borrowed; valid until the handler returns. */
WR_EXPORT const wr_meta *wr_msg_meta(const wr_msg *m);
WR_EXPORT const wr_event_type *wr_msg_type(const wr_msg *m);
/* 0 for the first delivery, n after n retry tiers. */
WR_EXPORT unsigned wr_msg_attempt(const wr_msg *m);
WR_EXPORT bool wr_msg_redelivered(const wr_msg *m);
/* The consumer's name (inbox/guard scope). */
WR_EXPORT const char *wr_msg_consumer(const wr_msg *m);

/* An outbox bound to the handler's transaction, with correlation_id = the incoming
 * event's correlation id and causation_id = its event id: events published through
 * it are committed atomically with the handler's changes. Borrowed. */
WR_EXPORT wr_outbox *wr_msg_outbox(wr_msg *m);

/* Version guard for the message's aggregate in this consumer's scope: records the
 * event's version if it is newer than the stored one and returns 1 (apply), else
 * returns 0 (stale: counted, the handler should return 0 without applying). An event
 * of kind DELETED leaves a tombstone: afterwards only a newer DELETED applies, so a
 * late update cannot resurrect the aggregate. An event of kind SNAPSHOT also applies
 * at the stored version (not over a tombstone): it carries the same state, so
 * rewriting it is harmless and repairs contents that reconciliation's version
 * checksums cannot see. <0 on database error (return it: the
 * batch is retried). Same rule as wr_guard_advance (except the snapshot case), decided for the
 * whole transaction: the first call reads the stored versions of all aggregates of the transaction,
 * later calls decide in memory in delivery order, and the new versions are written before COMMIT. A
 * transaction of one message reads with row locks (FOR UPDATE, in key order); a batch of several
 * reads without them and writes as a compare-and-set, and if a competing consumer changed one of
 * its aggregates in between, the whole transaction (handlers' writes included) is rolled back and
 * run again with the locks (stats.guard_conflicts). Either way nothing stale is ever applied.
 * Calling it twice for one message returns the same answer. Inside a handler use this, not
 * wr_guard_advance on the same aggregates, and call it before writing. Handlers of competing
 * consumers that write shared rows in different orders may deadlock; PostgreSQL then aborts one
 * statement and the consumer runs that batch again the locking way (a handler reports
 * its own statement's failure with wr_msg_fail_err so that the consumer can tell). */
WR_EXPORT int wr_msg_guard(wr_msg *m);

/* Marks the message stale for accounting when the handler guards by itself. */
WR_EXPORT void wr_msg_set_stale(wr_msg *m);

/* Records why the handler fails and returns code (for `return wr_msg_fail(...)`). The
 * text ends up in x-warren-error. */
WR_EXPORT int wr_msg_fail(wr_msg *m, int code, const char *fmt, ...) WR_PRINTF(3, 4);

/* The same for a failure a warren call reported in err (wr_db_check, wr_outbox_append...):
 * returns err->code (WR_EHANDLER if err is NULL or has no code). When err is a deadlock
 * or serialization failure PostgreSQL rolled back (wr_db_retryable), the consumer runs
 * the message's transaction again at once (stats.txn_reruns, up to 5 times) instead of
 * counting an attempt: use this for the handler's own SQL errors. */
WR_EXPORT int wr_msg_fail_err(wr_msg *m, const wr_err *err);

/* ---- the guard outside of a consumer (catch-up, reconciliation) ------------------ */

enum {
  WR_GUARD_TOMBSTONE = 1 << 0, /* the version being recorded deletes the aggregate */
  WR_GUARD_FORCE = 1 << 1,     /* overwrite whatever is stored (repair) */
};

/* Same rule as wr_msg_guard on table warren_versions, inside the caller's
 * transaction (or autocommit), in one statement that takes the row lock. Returns 1
 * (apply), 0 (stale or tombstoned), WR_EDB, or WR_EINVAL (NULL connection, empty
 * scope/type/id, version 0 or above INT64_MAX, unknown flags). With WR_GUARD_FORCE
 * the version and tombstone flag are written whatever is stored (returns 1). */
WR_EXPORT int wr_guard_advance(PGconn *c, const char *scope, const char *aggregate_type,
                               const char *aggregate_id, uint64_t version, unsigned flags,
                               wr_err *err);

/* Batch form of wr_guard_advance (catch-up pages, bulk loads): the same rule for n
 * aggregates of one type in one scope, in one statement that takes the row locks in
 * id order (so concurrent callers cannot deadlock on each other). Aggregate i is
 * ids[i] at versions[i], a deletion when tombstones[i] (tombstones may be NULL: none
 * is). applied[i] (applied may be NULL) receives its verdict: true = recorded, apply
 * it; false = stale or tombstoned. Ids must be distinct. Runs inside the caller's
 * transaction (or autocommit); the statement is atomic: on failure nothing of it is
 * written (and an open transaction is aborted). Returns the number applied (0..n;
 * 0 for n == 0 without a round trip), WR_EDB, WR_ENOMEM, or WR_EINVAL (NULL
 * connection, scope, type, ids or versions; an empty scope, type or id; a version 0
 * or above INT64_MAX; a repeated id; n above WR_GUARD_BATCH_MAX). Nothing is kept
 * after the call. */
#define WR_GUARD_BATCH_MAX 100000u
WR_EXPORT int wr_guard_advance_many(PGconn *c, const char *scope, const char *aggregate_type,
                                    size_t n, const char *const *ids, const uint64_t *versions,
                                    const bool *tombstones, bool *applied, wr_err *err);

/* The first load of aggregates that have no row yet in the scope (the catch-up of a
 * fresh service into an empty view): records versions[i] (a tombstone when
 * tombstones[i]) for every ids[i] with a plain insert, about half the cost of the
 * upsert of wr_guard_advance_many. Every aggregate counts as applied (no row = apply,
 * the rule of wr_guard_advance). If one of them has a row after all (written before,
 * or meanwhile by someone else), nothing is recorded, the result is WR_EEXIST and the
 * caller's transaction is aborted: roll it back and use wr_guard_advance_many. Returns
 * n, WR_EEXIST, WR_EDB, WR_ENOMEM, or WR_EINVAL as wr_guard_advance_many. */
WR_EXPORT int wr_guard_record_new(PGconn *c, const char *scope, const char *aggregate_type,
                                  size_t n, const char *const *ids, const uint64_t *versions,
                                  const bool *tombstones, wr_err *err);

/* The stored version (0 if none) and whether it is a tombstone. 0, WR_EDB, or
 * WR_EINVAL (NULL arguments, empty scope/type/id). */
WR_EXPORT int wr_guard_get(PGconn *c, const char *scope, const char *aggregate_type,
                           const char *aggregate_id, uint64_t *version, bool *tombstone,
                           wr_err *err);

WR_END_DECLS

#endif
