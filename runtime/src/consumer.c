/* consumer.c: the reliable, idempotent consumer (warren/consumer.h).
 *
 * One cycle, on one thread with one AMQP connection and one PGconn:
 *
 *   collect  wait (bounded) for a first delivery, then take up to batch_size - 1 more
 *            arriving within batch_wait_ms;
 *   classify resolve the event type (AMQP `type`, else the original routing key, else
 *            the routing key), find the handler, decode + validate; what cannot be
 *            handled is marked for the DLQ (or skipped) right here;
 *   settle   one transaction for the batch: one multi-row inbox insert (duplicates,
 *            also within the batch, are not handed to handlers), handlers in delivery
 *            order, the batch flush hook (set-based writes of what handlers buffered),
 *            one multi-row write of the version guard, COMMIT. If anything
 *            fails, ROLLBACK and run the batch again one message per transaction, so
 *            only the failing message is sent to a retry tier or the DLQ;
 *   copy     publish the retry/DLQ copies with confirms;
 *   ack      one multiple-ack for the batch. A copy the broker did not confirm means
 *            its original is not acked but rejected with requeue after a backoff, so
 *            it comes back; nothing is lost, at worst a duplicate the inbox absorbs.
 *
 * Why the guard is decided per batch: a round trip per message for the version check
 * would cap the consumer at a few thousand events per second. wr_msg_guard instead
 * reads the stored versions of every aggregate in the transaction once, decides in
 * memory with the rule of wr_guard_advance, and writes the final versions with one
 * statement before COMMIT. Two ways, same verdicts:
 *
 *   optimistic (a batch of several messages, the default): the read takes no lock;
 *            the write is a compare-and-set: every aggregate the transaction applied
 *            an event to is updated only where its row still holds the version (and
 *            tombstone) that was read, or inserted only where it still has no row.
 *            If any row does not match, a competing transaction changed it after the
 *            read: the transaction is rolled back (so are the handlers' writes) and
 *            run again the locking way. A row lock per aggregate read costs the
 *            database a WAL record and a page write per event; competing consumers
 *            on one queue are the exception, not the rule.
 *   locking  (one message per transaction, the rerun after a conflict, and the next
 *            LOCKED_AFTER_CONFLICT batches): SELECT ... FOR UPDATE in key order,
 *            which serialises competing consumers on existing aggregates, then one
 *            upsert that repeats the rule in its WHERE clause. An aggregate seen for
 *            the first time has no row to lock: if a competing transaction created it
 *            meanwhile, the upsert writes fewer rows than decided, the transaction is
 *            rolled back and run again, and the second run sees the committed row.
 *
 * An aggregate whose events were all stale is not written either way: a stored version
 * only grows, so what was stale at the read stays stale. Handlers therefore never
 * apply a stale version, even with several consumers on one queue. Without the row
 * locks, competing consumers whose handlers write shared rows in different orders can
 * deadlock; PostgreSQL aborts one of them, and a statement that failed in an
 * optimistic transaction also makes it run again the locking way before anything is
 * concluded about its messages.
 *
 * Connection loss: deliveries belong to one connection generation; after a broker
 * reconnect they are simply redelivered by RabbitMQ (their tags are never acked). A
 * lost database keeps the batch in memory, reconnects with backoff and runs the batch
 * again. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>
#include <warren/log.h>
#include <warren/util.h>

#include "sbuf.h"
#include "consumer_internal.h"
#include "utf8.h"

/* How long one wait for a first delivery lasts: bounds the reaction to stop and keeps
 * the library servicing heartbeats while idle. */
#define FIRST_WAIT_MS 200
/* Queue depth refresh for warren_consumer_lag_messages. */
#define LAG_INTERVAL_MS 2000
/* Inbox cleanup: rows per DELETE, DELETEs per cleanup slot (the rest waits a second). */
#define CLEANUP_CHUNK           1000
#define CLEANUP_CHUNKS_PER_SLOT 20
/* Attempts to run one message again when a competing consumer created its aggregate's
 * guard row concurrently (see above), before it counts as a handler failure. */
#define GUARD_CONFLICT_RETRIES 3
/* After an optimistic transaction met a competing writer (or a failed statement, which
 * may be a deadlock with one), this many following batches take the row locks right
 * away (competition tends to last: a second consumer on the queue), then the consumer
 * tries without them again. */
#define LOCKED_AFTER_CONFLICT 64

/* Times one message's transaction is run again at once when PostgreSQL rolled it back
 * as a deadlock or a serialization failure, before it counts as a failed attempt
 * (retry tier). */
#define TXN_RERUNS 5
/* Backoff of database outages and of unconfirmed copies. */
#define BACKOFF_BASE_MS    250
#define BACKOFF_MAX_MS     15000
#define MAX_RETRY_TIERS    32
#define MAX_ATTEMPT_HEADER 1000000
#define ERR_TEXT_MAX       1000
/* Replay: how long the probe reads the stream's last chunk to find its end, how long
 * it waits for one more delivery, and how long a replay may sit without deliveries
 * before it counts as finished. */
/* Partitioned: a partition that starts delivering to this instance while other
 * instances are around, or more than ACQUIRE_AFTER_MS after it registered on it, may
 * come from another instance (handover or takeover). Before its first batch this
 * instance waits HANDOVER_GRACE_MS, so that the previous holder can settle what it had
 * already received (a handover leaves it up to `prefetch` deliveries): events of one
 * aggregate then stay in order across the change, instead of the older ones being
 * skipped as stale. */
#define ACQUIRE_AFTER_MS  1000
#define HANDOVER_GRACE_MS 1000
#define PROBE_MAX_MS      3000
#define PROBE_GAP_MS      300
#define STREAM_IDLE_MS    10000

static const unsigned default_delays_ms[] = {1000, 5000, 30000, 120000};

static const char inbox_stmt[] = "warren_consumer_inbox";
static const char inbox_sql[] =
    "INSERT INTO warren_inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])"
    " ON CONFLICT DO NOTHING RETURNING event_id::text";
static const char gload_stmt[] = "warren_consumer_guard_load";
static const char gload_sql[] = "SELECT v.aggregate_type, v.aggregate_id, v.version, v.tombstone"
                                " FROM warren_versions v"
                                " JOIN unnest($2::text[], $3::text[]) AS k(t, id)"
                                "   ON v.aggregate_type = k.t AND v.aggregate_id = k.id"
                                " WHERE v.scope = $1"
                                " ORDER BY v.aggregate_type, v.aggregate_id FOR UPDATE OF v";
/* The optimistic read: the same rows, no lock. */
static const char gpeek_stmt[] = "warren_consumer_guard_peek";
static const char gpeek_sql[] = "SELECT v.aggregate_type, v.aggregate_id, v.version, v.tombstone"
                                " FROM warren_versions v"
                                " JOIN unnest($2::text[], $3::text[]) AS k(t, id)"
                                "   ON v.aggregate_type = k.t AND v.aggregate_id = k.id"
                                " WHERE v.scope = $1";
/* The optimistic write, a compare-and-set per aggregate: k.had = a row was read, with
 * version k.old and tombstone k.old_tomb. Updates wait for a competing writer's row
 * lock and then re-check their condition against its committed row (READ COMMITTED),
 * inserts wait for a competing uncommitted insert of the key and then do nothing: the
 * count is the number of aggregates that still held what was read. Keys come sorted,
 * so row locks are taken in key order. */
static const char gcas_stmt[] = "warren_consumer_guard_cas";
static const char gcas_sql[] =
    "WITH k AS (SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[],"
    "   $6::boolean[], $7::bigint[], $8::boolean[]) AS k(t, id, ver, tomb, had, old, old_tomb)),"
    " u AS (UPDATE warren_versions v SET version = k.ver, tombstone = k.tomb,"
    "   updated_at = now() FROM k"
    "   WHERE k.had AND v.scope = $1 AND v.aggregate_type = k.t AND v.aggregate_id = k.id"
    "   AND v.version = k.old AND v.tombstone = k.old_tomb RETURNING 1),"
    " i AS (INSERT INTO warren_versions (scope, aggregate_type, aggregate_id, version,"
    "   tombstone, updated_at)"
    "   SELECT $1, k.t, k.id, k.ver, k.tomb, now() FROM k WHERE NOT k.had ORDER BY k.t, k.id"
    "   ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM i)";
static const char gsave_stmt[] = "warren_consumer_guard_save";
static const char gsave_sql[] =
    "INSERT INTO warren_versions AS v (scope, aggregate_type, aggregate_id, version,"
    " tombstone, updated_at)"
    " SELECT $1, k.t, k.id, k.ver, k.tomb, now()"
    " FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[]) AS k(t, id, ver, tomb)"
    " ORDER BY k.t, k.id"
    " ON CONFLICT (scope, aggregate_type, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, tombstone = EXCLUDED.tombstone,"
    " updated_at = EXCLUDED.updated_at"
    " WHERE v.version < EXCLUDED.version AND (NOT v.tombstone OR EXCLUDED.tombstone)"
    " RETURNING 1";
static const char cleanup_stmt[] = "warren_consumer_inbox_cleanup";
/* By ctid, so that each chunk is an index range scan plus a TID scan; an IN over the
 * key makes the generic plan hash-join the whole inbox. */
static const char cleanup_sql[] =
    "DELETE FROM warren_inbox WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM warren_inbox"
    " WHERE consumer = $1 AND processed_at < now() - make_interval(secs => $2::double precision)"
    " LIMIT $3::integer))";

/* ---- types ---------------------------------------------------------------------------- */

typedef struct handler {
  const wr_event_type *t;
  wr_dispatch_fn dispatch;
  wr_fnptr fn;
  void *user;
} handler;

/* What became of a delivery. */
typedef enum disp {
  D_PENDING = 0, /* waiting for its transaction */
  D_APPLIED,
  D_STALE,
  D_DUPLICATE,
  D_SKIPPED,
  D_RETRY, /* a copy goes to the next retry tier */
  D_DLQ,   /* a copy goes to <queue>.dlx */
} disp;

/* One aggregate touched by the guard in the current transaction. */
typedef struct gkey {
  const char *type; /* borrowed from the item's meta */
  const char *id;
  uint64_t cur; /* newest version: stored, then advanced in memory */
  bool cur_tomb;
  bool dirty;    /* cur differs from what was read */
  bool applied;  /* an event of the transaction applied to it (also a same-version snapshot) */
  bool had;      /* a row was read ... */
  uint64_t read; /* ... holding this version */
  bool read_tomb;
} gkey;

typedef struct item item;

struct wr_msg {
  wr_consumer *c;
  item *it;
  wr_outbox ob;
  bool ob_ready;
};

struct item {
  amqp_envelope_t env;
  const handler *h;
  ProtobufCMessage *ev;
  const wr_meta *meta;
  char event_id[WR_UUID_STRLEN]; /* lowercase */
  char type_name[256];
  unsigned attempt;
  int64_t offset; /* replay: x-stream-offset of the delivery, -1 if none */
  disp d;
  int code;               /* failure code (retry/DLQ) */
  char err[ERR_TEXT_MAX]; /* failure text (x-warren-error) */
  bool db_retryable;      /* the handler's failure was a deadlock (wr_msg_fail_err) */
  /* per transaction */
  bool fresh; /* first occurrence of a new event id in this transaction */
  bool stale;
  int guard; /* -1 not asked, 0 stale, 1 apply */
  int gkey;  /* index in c->keys, -1 */
  /* copy */
  bool copy_sent;
  int copy_status; /* 1 = waiting, 0 = confirmed, <0 = failed */
  uint64_t copy_seq;
  wr_msg msg;
};

enum { SF_WORD, SF_OFFSET, SF_TIMESTAMP };

/* Where a replay starts: "first" | "last" | "next" | an offset | an RFC 3339 timestamp
 * (whole seconds: the broker's x-stream-offset timestamps have no fraction). */
typedef struct stream_from {
  int kind; /* SF_* */
  char word[8];
  int64_t value;
} stream_from;

typedef struct counters {
  uint64_t applied, duplicates, stale, retried, dead_lettered, skipped, batches, fallbacks,
      reconnects, guard_conflicts, txn_reruns;
} counters;

struct wr_consumer {
  char *queue;
  char *name;
  char *database_url;
  char *source_service;
  char *source_instance;
  wr_conn *conn;
  unsigned confirm_timeout_ms;
  wr_queue_type queue_type;
  uint16_t prefetch;
  unsigned batch_size;
  unsigned batch_wait_ms;
  unsigned *delays;
  size_t n_delays;
  unsigned delivery_limit;
  wr_unknown_policy unknown;
  size_t max_message_size;
  unsigned retention_s;
  unsigned cleanup_interval_s;
  wr_metrics *metrics;

  handler *handlers;
  size_t n_handlers;

  wr_topology *topo;
  bool hook_registered;
  bool confirm_on;
  bool consuming;
  PGconn *db;
  int link_up; /* broker consuming and database usable (read by other threads) */
  bool migrated;
  bool db_down_logged;
  bool amqp_ever_open;

  volatile int stop;
  pthread_t thread;
  bool thread_started;
  int thread_rc;

  counters st; /* updated with __atomic builtins: read from other threads */

  /* the current batch */
  item *items;
  size_t n_items;
  gkey *keys;
  size_t n_keys;
  bool keys_loaded;
  bool txn_lock;        /* the transaction in progress takes the guard's row locks */
  bool txn_stmt_failed; /* its failure came with a failed statement */
  bool txn_retryable;   /* ... that PostgreSQL rolled back as a deadlock or a
                         * serialization failure (wr_db_retryable): run it again */
  unsigned locked_left; /* batches still to run the locking way (LOCKED_AFTER_CONFLICT) */
  size_t *txn;          /* indexes of the items of the current transaction */
  size_t n_txn;
  size_t *pending; /* the items left for the one-by-one pass */

  int64_t next_cleanup_ns;
  int64_t next_lag_ns;
  unsigned copy_fail_streak;

  wr_counter *m_result[6]; /* applied duplicate stale retried dead_lettered skipped */
  wr_histogram *m_latency;
  wr_histogram *m_batch;
  wr_gauge *m_lag;
  wr_gauge *m_parts;       /* partitioned: partitions delivering to this instance */
  wr_counter *m_handovers; /* partitioned: partitions handed over */

  wr_batch_flush_fn batch_flush;
  wr_batch_discard_fn batch_discard;
  void *batch_user;

  wr__consumer_hook_fn hook;
  void *hook_user;

  /* partitioned group */
  unsigned n_parts;
  char **parts;         /* <queue>.p<k> */
  char *members;        /* <queue>.members */
  bool *part_seen;      /* a delivery came from it since we (re)registered */
  bool *part_out;       /* handed over: not consumed until the next rebalance tick */
  int64_t *part_reg_ns; /* when we (re)registered on it */
  bool acquired;        /* a partition came over from another instance */
  uint32_t others;      /* other instances seen at registration / last rebalance */
  uint64_t parts_gen;   /* connection generation part_seen belongs to */
  unsigned rebalance_ms;
  int64_t next_rebalance_ns;
  uint32_t parts_active; /* atomic: stats */
  uint64_t handovers;    /* atomic: stats */

  /* replay */
  char *stream;
  stream_from from;
  wr_conn *probe;
  int64_t stream_done; /* atomic: offset of the last settled message, -1 */
  int64_t stream_end;  /* atomic: where the run ends, -1 = empty stream */
  int64_t last_delivery_ns;
  int finished; /* atomic */
  bool stream_failed;
};

enum { R_APPLIED, R_DUPLICATE, R_STALE, R_RETRIED, R_DEAD, R_SKIPPED };

/* ---- small helpers --------------------------------------------------------------------- */

static void count(wr_consumer *c, uint64_t *field, int result, uint64_t n) {
  __atomic_fetch_add(field, n, __ATOMIC_RELAXED);
  if (result >= 0 && c->metrics)
    wr_counter_add(c->m_result[result], n);
}

static char *dup_or_null(const char *s, bool *oom) {
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

/* Makes a failure text one clean line for a header and a log: control characters (a
 * PostgreSQL message has newlines) become spaces, runs of spaces one, bytes that are
 * not UTF-8 (from outside, or a multi-byte character cut by truncation) '?', no
 * trailing space. In place. */
static void one_line(char *s) {
  size_t len = strlen(s), w = 0;
  bool space = false;
  for (size_t r = 0; r < len;) {
    unsigned char ch = (unsigned char)s[r];
    if (ch < 0x20 || ch == 0x7f || ch == ' ') {
      if (!space && w > 0)
        s[w++] = ' ';
      space = true;
      r++;
      continue;
    }
    space = false;
    size_t n = wr__utf8_seq_len((const unsigned char *)s + r, len - r);
    if (n == 0) {
      s[w++] = '?';
      r++;
      continue;
    }
    memmove(s + w, s + r, n);
    w += n;
    r += n;
  }
  while (w > 0 && s[w - 1] == ' ')
    w--;
  s[w] = '\0';
}

/* ---- construction ------------------------------------------------------------------- */

static void free_fields(wr_consumer *c) {
  free(c->queue);
  free(c->name);
  free(c->database_url);
  free(c->source_service);
  free(c->source_instance);
  free(c->delays);
  free(c->handlers);
  free(c->items);
  free(c->keys);
  free(c->txn);
  free(c->pending);
  for (unsigned k = 0; c->parts && k < c->n_parts; k++)
    free(c->parts[k]);
  free(c->parts);
  free(c->members);
  free(c->part_seen);
  free(c->part_out);
  free(c->part_reg_ns);
  free(c->stream);
}

static int parse_stream_from(const char *from, stream_from *out) {
  memset(out, 0, sizeof *out);
  if (!from || strcmp(from, "first") == 0 || strcmp(from, "last") == 0 ||
      strcmp(from, "next") == 0) {
    out->kind = SF_WORD;
    snprintf(out->word, sizeof out->word, "%s", from ? from : "first");
    return 0;
  }
  if (*from >= '0' && *from <= '9' && strlen(from) <= 19 &&
      strspn(from, "0123456789") == strlen(from)) {
    errno = 0;
    unsigned long long v = strtoull(from, NULL, 10);
    if (errno || v > (unsigned long long)INT64_MAX)
      return WR_EINVAL;
    out->kind = SF_OFFSET;
    out->value = (int64_t)v;
    return 0;
  }
  int64_t secs;
  int32_t nanos;
  if (wr_rfc3339_parse(from, &secs, &nanos) != 0 || secs < 0)
    return WR_EINVAL;
  out->kind = SF_TIMESTAMP;
  out->value = secs;
  return 0;
}

/* Partition and member queue names, replay state. */
static int setup_modes(wr_consumer *c, const wr_consumer_opts *opts, wr_err *err) {
  c->stream_done = -1;
  c->stream_end = -1;
  c->rebalance_ms = opts->rebalance_interval_ms;
  if (opts->partitions > 0) {
    c->n_parts = opts->partitions;
    c->parts = calloc(c->n_parts, sizeof *c->parts);
    c->part_seen = calloc(c->n_parts, sizeof *c->part_seen);
    c->part_reg_ns = calloc(c->n_parts, sizeof *c->part_reg_ns);
    c->part_out = calloc(c->n_parts, sizeof *c->part_out);
    if (!c->parts || !c->part_seen || !c->part_reg_ns || !c->part_out)
      return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
    char name[300];
    for (unsigned k = 0; k < c->n_parts; k++) {
      wr_topology_partition_name(c->queue, k, name, sizeof name);
      if (!(c->parts[k] = strdup(name)))
        return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
    }
    wr_topology_members_name(c->queue, name, sizeof name);
    if (!(c->members = strdup(name)))
      return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
  }
  if (opts->stream) {
    if (!(c->stream = strdup(opts->stream)))
      return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
    parse_stream_from(opts->stream_from, &c->from); /* validated by the caller */
    wr_conn_opts po = *opts->amqp;
    po.connection_name = "warren replay probe";
    int rc = wr_conn_new(&po, &c->probe, err);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void setup_metrics(wr_consumer *c) {
  static const char *results[6] = {"applied", "duplicate",     "stale",
                                   "retried", "dead_lettered", "skipped"};
  static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
  char q[300], labels[400];
  wr_metrics_label_escape(c->queue, q, sizeof q);
  for (int i = 0; i < 6; i++) {
    snprintf(labels, sizeof labels, "queue=\"%s\",result=\"%s\"", q, results[i]);
    c->m_result[i] = wr_metrics_counter(c->metrics, "warren_events_consumed_total",
                                        "Events consumed, by outcome.", labels);
  }
  snprintf(labels, sizeof labels, "queue=\"%s\"", q);
  c->m_latency =
      wr_metrics_histogram(c->metrics, "warren_sync_latency_seconds",
                           "Time from an event's occurred_at to the commit of its handler.", labels,
                           wr_metrics_latency_buckets, wr_metrics_latency_buckets_n);
  c->m_batch = wr_metrics_histogram(c->metrics, "warren_consumer_batch_size",
                                    "Deliveries per consumer batch.", labels, batch_buckets,
                                    sizeof batch_buckets / sizeof batch_buckets[0]);
  c->m_lag = wr_metrics_gauge(c->metrics, "warren_consumer_lag_messages",
                              "Messages ready in the consumer's queue.", labels);
  if (c->n_parts > 0) {
    c->m_parts =
        wr_metrics_gauge(c->metrics, "warren_consumer_partitions_active",
                         "Partitions delivering to this instance (partitioned group).", labels);
    c->m_handovers = wr_metrics_counter(c->metrics, "warren_consumer_handovers_total",
                                        "Partitions handed over to other instances.", labels);
  }
}

int wr_consumer_new(const wr_consumer_opts *opts, wr_consumer **out, wr_err *err) {
  if (!out)
    return wr_err_set(err, WR_EINVAL, "consumer: NULL out");
  *out = NULL;
  if (!opts || !opts->queue || !*opts->queue || !opts->database_url || !opts->amqp)
    return wr_err_set(err, WR_EINVAL, "consumer: queue, database_url and amqp are required");
  if (strlen(opts->queue) > 200)
    return wr_err_set(err, WR_EINVAL,
                      "consumer: queue name longer than 200 bytes (derived names must fit 255)");
  if (opts->name && (!*opts->name || strlen(opts->name) > 200))
    return wr_err_set(err, WR_EINVAL, "consumer: name must be 1..200 bytes");
  if (opts->batch_size == 0 || opts->batch_size > 10000)
    return wr_err_set(err, WR_EINVAL, "consumer: batch_size must be 1..10000");
  if (opts->prefetch == 0)
    return wr_err_set(err, WR_EINVAL, "consumer: prefetch must be at least 1 (0 is unbounded)");
  if (opts->batch_wait_ms > 60000)
    return wr_err_set(err, WR_EINVAL, "consumer: batch_wait_ms above 60000");
  if (!opts->retry_delays_ms && opts->n_retry_delays > 0)
    return wr_err_set(err, WR_EINVAL, "consumer: n_retry_delays without retry_delays_ms");
  if (opts->n_retry_delays > MAX_RETRY_TIERS)
    return wr_err_set(err, WR_EINVAL, "consumer: more than %d retry tiers", MAX_RETRY_TIERS);
  for (size_t i = 0; opts->retry_delays_ms && i < opts->n_retry_delays; i++)
    if (opts->retry_delays_ms[i] == 0)
      return wr_err_set(err, WR_EINVAL, "consumer: retry tier %zu has a zero delay", i + 1);
  if (opts->unknown_types != WR_UNKNOWN_DEAD_LETTER && opts->unknown_types != WR_UNKNOWN_SKIP)
    return wr_err_set(err, WR_EINVAL, "consumer: unknown_types policy out of range");
  if (opts->queue_type != WR_QUEUE_QUORUM && opts->queue_type != WR_QUEUE_CLASSIC)
    return wr_err_set(err, WR_EINVAL, "consumer: queue_type out of range");
  if (opts->partitions > WR_PARTITIONS_MAX)
    return wr_err_set(err, WR_EINVAL, "consumer: partitions above %d", WR_PARTITIONS_MAX);
  if (opts->stream) {
    size_t sl = strlen(opts->stream);
    bool ctl = false;
    for (const unsigned char *q = (const unsigned char *)opts->stream; *q; q++)
      ctl |= *q < 0x20 || *q == 0x7f;
    if (sl == 0 || sl > 255 || ctl)
      return wr_err_set(err, WR_EINVAL, "consumer: stream name must be 1..255 bytes");
    stream_from sf;
    if (parse_stream_from(opts->stream_from, &sf) != 0)
      return wr_err_set(err, WR_EINVAL,
                        "consumer: stream_from must be first, last, next, an offset or an "
                        "RFC 3339 timestamp");
  }

  wr_consumer *c = calloc(1, sizeof *c);
  if (!c)
    return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
  bool oom = false;
  c->queue = dup_or_null(opts->queue, &oom);
  c->name = dup_or_null(opts->name ? opts->name : opts->queue, &oom);
  c->database_url = dup_or_null(opts->database_url, &oom);
  c->source_service = dup_or_null(opts->source_service, &oom);
  c->source_instance = dup_or_null(opts->source_instance, &oom);
  const unsigned *delays = opts->retry_delays_ms;
  size_t n_delays = opts->n_retry_delays;
  if (!delays) {
    delays = default_delays_ms;
    n_delays = sizeof default_delays_ms / sizeof default_delays_ms[0];
  }
  c->n_delays = n_delays;
  c->delays = calloc(n_delays ? n_delays : 1, sizeof *c->delays);
  if (c->delays)
    memcpy(c->delays, delays, n_delays * sizeof *delays);
  c->items = calloc(opts->batch_size, sizeof *c->items);
  c->keys = calloc(opts->batch_size, sizeof *c->keys);
  c->txn = calloc(opts->batch_size, sizeof *c->txn);
  c->pending = calloc(opts->batch_size, sizeof *c->pending);
  if (oom || !c->delays || !c->items || !c->keys || !c->txn || !c->pending) {
    free_fields(c);
    free(c);
    return wr_err_set(err, WR_ENOMEM, "consumer: out of memory");
  }
  int rc = wr_conn_new(opts->amqp, &c->conn, err);
  if (rc < 0) {
    free_fields(c);
    free(c);
    return rc;
  }
  c->confirm_timeout_ms = opts->amqp->rpc_timeout_ms ? opts->amqp->rpc_timeout_ms : 15000;
  c->queue_type = opts->queue_type;
  c->prefetch = opts->prefetch;
  c->batch_size = opts->batch_size;
  c->batch_wait_ms = opts->batch_wait_ms;
  c->delivery_limit = opts->delivery_limit;
  c->unknown = opts->unknown_types;
  c->max_message_size = opts->max_message_size;
  c->retention_s = opts->inbox_retention_s;
  c->cleanup_interval_s = opts->inbox_cleanup_interval_s;
  c->metrics = opts->metrics;
  if ((rc = setup_modes(c, opts, err)) < 0) {
    wr_conn_free(c->probe);
    wr_conn_free(c->conn);
    free_fields(c);
    free(c);
    return rc;
  }
  if (c->metrics)
    setup_metrics(c);
  *out = c;
  return 0;
}

int wr_consumer_on(wr_consumer *c, const wr_event_type *t, wr_dispatch_fn dispatch,
                   wr_fnptr handler_fn, void *user) {
  if (!c || !t || !t->type || !*t->type || !t->aggregate_type || !t->descriptor || !dispatch)
    return WR_EINVAL;
  const char *exchange = t->exchange ? t->exchange : (t->schema ? t->schema->exchange : NULL);
  if (!exchange || !*exchange)
    return WR_EINVAL;
  if (c->topo || c->thread_started)
    return WR_ESTATE;
  for (size_t i = 0; i < c->n_handlers; i++)
    if (strcmp(c->handlers[i].t->type, t->type) == 0)
      return WR_EEXIST;
  handler *nh = realloc(c->handlers, (c->n_handlers + 1) * sizeof *nh);
  if (!nh)
    return WR_ENOMEM;
  c->handlers = nh;
  c->handlers[c->n_handlers++] = (handler){t, dispatch, handler_fn, user};
  return 0;
}

int wr_consumer_on_batch(wr_consumer *c, wr_batch_flush_fn flush, wr_batch_discard_fn discard,
                         void *user) {
  if (!c || !flush)
    return WR_EINVAL;
  if (c->thread_started)
    return WR_ESTATE;
  if (c->batch_flush)
    return WR_EEXIST;
  c->batch_flush = flush;
  c->batch_discard = discard;
  c->batch_user = user;
  return 0;
}

static const char *type_exchange(const wr_event_type *t) {
  return t->exchange ? t->exchange : t->schema->exchange;
}

int wr_consumer_topology(const wr_consumer *c, wr_topology *t) {
  if (!c || !t)
    return WR_EINVAL;
  int rc;
  for (size_t i = 0; i < c->n_handlers; i++)
    if ((rc = wr_topology_exchange(t, type_exchange(c->handlers[i].t), "topic")) < 0)
      return rc;
  if (c->n_parts > 0) {
    wr_partitioned_queue pq = {.queue = c->queue,
                               .partitions = c->n_parts,
                               .type = c->queue_type,
                               .retry_delays_ms = c->delays,
                               .n_retry_delays = c->n_delays,
                               .delivery_limit =
                                   c->queue_type == WR_QUEUE_QUORUM ? c->delivery_limit : 0};
    if ((rc = wr_topology_partitioned_queue(t, &pq)) < 0)
      return rc;
    char x[300];
    wr_topology_partition_exchange_name(c->queue, x, sizeof x);
    for (size_t i = 0; i < c->n_handlers; i++)
      if ((rc = wr_topology_bind_exchange(t, x, type_exchange(c->handlers[i].t),
                                          c->handlers[i].t->type)) < 0)
        return rc;
    return 0;
  }
  wr_consumer_queue q = {.queue = c->queue,
                         .type = c->queue_type,
                         .retry_delays_ms = c->delays,
                         .n_retry_delays = c->n_delays,
                         .delivery_limit =
                             c->queue_type == WR_QUEUE_QUORUM ? c->delivery_limit : 0};
  if ((rc = wr_topology_consumer_queue(t, &q)) < 0)
    return rc;
  for (size_t i = 0; i < c->n_handlers; i++)
    if ((rc = wr_topology_bind(t, c->queue, type_exchange(c->handlers[i].t),
                               c->handlers[i].t->type)) < 0)
      return rc;
  return 0;
}

static int build_topology(wr_consumer *c, wr_err *err) {
  if (c->topo)
    return 0;
  wr_topology *t = NULL;
  int rc = wr_topology_new(&t);
  if (rc < 0)
    return wr_err_set(err, rc, "consumer: cannot create topology");
  rc = wr_consumer_topology(c, t);
  if (rc < 0) {
    wr_topology_free(t);
    return wr_err_set(err, rc, "consumer %s: topology: %s", c->queue, wr_strerror(rc));
  }
  c->topo = t;
  if (!c->hook_registered) {
    rc = wr_conn_on_open(c->conn, wr_topology_on_open, c->topo);
    if (rc < 0)
      return wr_err_set(err, rc, "consumer: cannot register the topology hook");
    c->hook_registered = true;
  }
  return 0;
}

/* Sleeps ms (returning early on stop) while keeping the broker link serviced:
 * heartbeats are only sent from inside rabbitmq-c calls, and the unacked deliveries
 * of the batch stay valid only as long as the connection lives. */
static void pause_ms(wr_consumer *c, unsigned ms) {
  int64_t end = wr_mono_ns() + (int64_t)ms * 1000000;
  for (;;) {
    if (wr_conn_is_open(c->conn))
      wr_conn_service(c->conn, NULL);
    int64_t left = (end - wr_mono_ns()) / 1000000;
    if (left <= 0 || c->stop)
      return;
    if (wr_sleep_ms(left > 1000 ? 1000 : (unsigned)left, &c->stop) < 0)
      return;
  }
}

/* ---- database ------------------------------------------------------------------------- */

static void db_close(wr_consumer *c) {
  if (c->db)
    PQfinish(c->db);
  c->db = NULL;
}

static int prepare(wr_consumer *c, const char *stmt, const char *sql, int n, wr_err *err) {
  PGresult *r = PQprepare(c->db, stmt, sql, n, NULL);
  int rc = wr_db_check(c->db, r, PGRES_COMMAND_OK, "consumer: prepare", err);
  PQclear(r);
  return rc;
}

/* Connects, migrates once per consumer, prepares the statements. */
static int db_open(wr_consumer *c, wr_err *err) {
  db_close(c);
  char app[64];
  snprintf(app, sizeof app, "warren-consumer %s", c->name);
  int rc = wr_db_connect(c->database_url, app, &c->db, err);
  if (rc < 0)
    return rc;
  if (!c->migrated) {
    rc = wr_db_migrate_runtime(c->db, err);
    if (rc < 0) {
      db_close(c);
      return rc;
    }
    c->migrated = true;
  }
  if ((rc = prepare(c, inbox_stmt, inbox_sql, 2, err)) < 0 ||
      (rc = prepare(c, gload_stmt, gload_sql, 3, err)) < 0 ||
      (rc = prepare(c, gsave_stmt, gsave_sql, 5, err)) < 0 ||
      (rc = prepare(c, gpeek_stmt, gpeek_sql, 3, err)) < 0 ||
      (rc = prepare(c, gcas_stmt, gcas_sql, 8, err)) < 0 ||
      (rc = prepare(c, cleanup_stmt, cleanup_sql, 3, err)) < 0) {
    db_close(c);
    return rc;
  }
  return 0;
}

/* Waits until the database is usable again: reconnects a broken connection with
 * backoff, or (for a connection that works but fails our statements, e.g. a missing
 * table) waits one backoff step. Logs once per outage. Returns 0 or WR_ESTOPPED. */
static int db_recover(wr_consumer *c, const wr_err *why, bool broken) {
  if (!c->db_down_logged) {
    wr_log_error(NULL, "consumer %s: database unavailable, retrying with backoff: %s", c->queue,
                 why && why->msg[0] ? why->msg : "connection lost");
    c->db_down_logged = true;
  }
  for (unsigned attempt = 0;; attempt++) {
    if (c->stop)
      return WR_ESTOPPED;
    if (!broken && c->db && !wr_db_broken(c->db)) {
      pause_ms(c, wr_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS));
      return c->stop ? WR_ESTOPPED : 0;
    }
    wr_err e;
    wr_err_clear(&e);
    if (db_open(c, &e) == 0) {
      count(c, &c->st.reconnects, -1, 1);
      return 0;
    }
    pause_ms(c, wr_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS));
  }
}

static void db_ok(wr_consumer *c) {
  if (c->db_down_logged) {
    wr_log_info(NULL, "consumer %s: database available again", c->queue);
    c->db_down_logged = false;
  }
}

/* ---- the broker ------------------------------------------------------------------------- */

static void parts_active_add(wr_consumer *c, int delta);

/* Partitioned: this instance has just (re)registered on every partition it has not
 * handed out (a new connection or channel): it holds none it knows of yet, and any
 * partition that starts delivering from now on more than ACQUIRE_AFTER_MS later
 * comes from another instance. */
static void parts_registered(wr_consumer *c) {
  int64_t now = wr_mono_ns();
  if (wr_conn_is_open(c->conn)) {
    wr_queue_decl d = {.name = c->members, .durable = true, .arguments = amqp_empty_table};
    uint32_t n = 0;
    if (wr_conn_declare_queue(c->conn, &d, true, NULL, &n, NULL) == 0)
      c->others = n > 0 ? n - 1 : 0;
  }
  memset(c->part_seen, 0, c->n_parts * sizeof *c->part_seen);
  for (unsigned k = 0; k < c->n_parts; k++)
    c->part_reg_ns[k] = now;
  parts_active_add(c, -(int)__atomic_load_n(&c->parts_active, __ATOMIC_RELAXED));
  c->parts_gen = wr_conn_generation(c->conn);
}

/* Partitioned: the members queue first (so the others count this instance as soon as
 * it competes for partitions), then every partition. wr_conn replays them after a
 * reconnect, which puts this instance at the back of every waiting list. */
static int consume_partitions(wr_consumer *c, wr_err *err) {
  int rc = wr_conn_consume(c->conn, c->members, 1, false, amqp_empty_table, err);
  for (unsigned k = 0; rc == 0 && k < c->n_parts; k++) {
    rc = wr_conn_consume(c->conn, c->parts[k], c->prefetch, false, amqp_empty_table, err);
    if (rc == 0)
      c->part_out[k] = false;
  }
  return rc;
}

/* Replay: consume the stream from where the run stands (the last settled offset + 1
 * after a reconnect, else the requested start). */
static int consume_stream(wr_consumer *c, wr_err *err) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes("x-stream-offset");
  int64_t done = __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED);
  if (done >= 0) {
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = done + 1;
  } else if (c->from.kind == SF_OFFSET) {
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = c->from.value;
  } else if (c->from.kind == SF_TIMESTAMP) {
    e.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
    e.value.value.u64 = (uint64_t)c->from.value;
  } else {
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(c->from.word);
  }
  amqp_table_t args = {1, &e};
  return wr_conn_consume(c->conn, c->stream, c->prefetch, false, args, err);
}

/* Opens (or reopens) the broker connection; the first time also turns on confirms and
 * starts consuming (both replayed by wr_conn after every reconnect). */
static int amqp_ready(wr_consumer *c, bool consume, bool retry, wr_err *err) {
  int rc;
  if (!wr_conn_is_open(c->conn) && c->stream && c->consuming) {
    /* A replay resumes after its last settled offset, not at its original start:
     * forget the recorded consumer so the reconnect does not restart it as it was. */
    wr_conn_cancel(c->conn, c->stream, NULL);
    c->consuming = false;
  }
  if (!wr_conn_is_open(c->conn)) {
    if (retry && c->amqp_ever_open) {
      rc = wr_conn_reconnect(c->conn, &c->stop, err);
      if (rc < 0)
        return rc;
      count(c, &c->st.reconnects, -1, 1);
      wr_log_info(NULL, "consumer %s: broker connection restored (%s)", c->queue,
                  wr_conn_url(c->conn));
    } else {
      rc = retry ? wr_conn_reconnect(c->conn, &c->stop, err) : wr_conn_open(c->conn, err);
      if (rc < 0)
        return rc;
    }
    c->amqp_ever_open = true;
  }
  if (!c->confirm_on) {
    if ((rc = wr_conn_confirm_mode(c->conn, err)) < 0)
      return rc;
    c->confirm_on = true;
  }
  if (consume && !c->consuming) {
    if (c->stream)
      rc = consume_stream(c, err);
    else if (c->n_parts > 0)
      rc = consume_partitions(c, err);
    else
      rc = wr_conn_consume(c->conn, c->queue, c->prefetch, false, amqp_empty_table, err);
    if (rc < 0)
      return rc;
    c->consuming = true;
  }
  if (consume && c->n_parts > 0 && !c->stream && wr_conn_generation(c->conn) != c->parts_gen)
    parts_registered(c);
  return 0;
}

/* ---- classify --------------------------------------------------------------------------- */

static const handler *find_handler(const wr_consumer *c, const char *type) {
  for (size_t i = 0; i < c->n_handlers; i++)
    if (strcmp(c->handlers[i].t->type, type) == 0)
      return &c->handlers[i];
  return NULL;
}

static const amqp_table_t *headers_of(const amqp_envelope_t *env) {
  const amqp_basic_properties_t *p = &env->message.properties;
  return (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
}

static void set_fail(item *it, disp d, int code, const char *fmt, ...) WR_PRINTF(4, 5);
static void set_fail(item *it, disp d, int code, const char *fmt, ...) {
  it->d = d;
  it->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(it->err, sizeof it->err, fmt, ap);
  va_end(ap);
  one_line(it->err);
}

/* Copies at most outsz-1 bytes of b, reporting whether it fit and held no NUL. */
static bool bytes_to_str(amqp_bytes_t b, char *out, size_t outsz) {
  if (b.len >= outsz || memchr(b.bytes, '\0', b.len)) {
    out[0] = '\0';
    return false;
  }
  memcpy(out, b.bytes, b.len);
  out[b.len] = '\0';
  return true;
}

static void classify(wr_consumer *c, item *it) {
  const amqp_basic_properties_t *p = &it->env.message.properties;
  const amqp_table_t *hdr = headers_of(&it->env);
  bool fits;
  it->offset = -1;
  if (c->stream) {
    int64_t off;
    if (hdr && wr_table_get_int(hdr, "x-stream-offset", &off) && off >= 0)
      it->offset = off;
    /* Redelivered from an earlier start of this run (a reopened channel restarts the
     * consumer where it began): already settled, nothing to do. */
    if (it->offset >= 0 && it->offset <= __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED)) {
      it->d = D_DUPLICATE;
      return;
    }
  }
  if ((p->_flags & AMQP_BASIC_TYPE_FLAG) && p->type.len > 0) {
    fits = bytes_to_str(p->type, it->type_name, sizeof it->type_name);
  } else if (hdr && wr_table_get(hdr, "x-warren-original-routing-key")) {
    /* A copy coming back from a retry tier carries the queue name as routing key. */
    fits = wr_table_get_str(hdr, "x-warren-original-routing-key", it->type_name,
                            sizeof it->type_name) &&
           strlen(it->type_name) + 1 < sizeof it->type_name;
  } else {
    fits = bytes_to_str(it->env.routing_key, it->type_name, sizeof it->type_name);
  }
  it->h = fits ? find_handler(c, it->type_name) : NULL;
  if (!it->h) {
    if (c->unknown == WR_UNKNOWN_SKIP) {
      it->d = D_SKIPPED;
      return;
    }
    set_fail(it, D_DLQ, WR_ENOHANDLER,
             "WR_ENOHANDLER: no handler registered for event type \"%.200s\"",
             fits ? it->type_name : "(unreadable type)");
    return;
  }
  int64_t attempt = 0;
  if (hdr && wr_table_get_int(hdr, "x-warren-attempt", &attempt)) {
    if (attempt < 0)
      attempt = 0;
    if (attempt > MAX_ATTEMPT_HEADER)
      attempt = MAX_ATTEMPT_HEADER;
  }
  it->attempt = (unsigned)attempt;

  wr_err e;
  wr_err_clear(&e);
  int rc = wr_event_decode(it->h->t, it->env.message.body.bytes, it->env.message.body.len,
                           c->max_message_size, &it->ev, &e);
  if (rc < 0) {
    set_fail(it, D_DLQ, rc, "%s: %s", wr_errname(rc), e.msg[0] ? e.msg : wr_strerror(rc));
    return;
  }
  it->meta = wr_event_meta(it->ev);
  if (!it->meta) { /* wr_event_decode validated it; defend anyway */
    set_fail(it, D_DLQ, WR_EMETA, "WR_EMETA: event has no meta");
    return;
  }
  if (it->meta->version > (uint64_t)INT64_MAX) {
    set_fail(it, D_DLQ, WR_EMETA, "WR_EMETA: meta.version %" PRIu64 " above the supported maximum",
             it->meta->version);
    return;
  }
  if (!wr__utf8_valid(it->meta->aggregate_type, strlen(it->meta->aggregate_type), NULL) ||
      !wr__utf8_valid(it->meta->aggregate_id, strlen(it->meta->aggregate_id), NULL)) {
    set_fail(it, D_DLQ, WR_EMETA, "WR_EMETA: meta.aggregate_id is not valid UTF-8");
    return;
  }
  snprintf(it->event_id, sizeof it->event_id, "%s", it->meta->event_id);
  for (char *q = it->event_id; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  it->d = D_PENDING;
}

/* ---- inside a handler -------------------------------------------------------------------- */

PGconn *wr_msg_db(wr_msg *m) {
  return m ? m->c->db : NULL;
}
const wr_meta *wr_msg_meta(const wr_msg *m) {
  return m ? m->it->meta : NULL;
}
const wr_event_type *wr_msg_type(const wr_msg *m) {
  return m ? m->it->h->t : NULL;
}
unsigned wr_msg_attempt(const wr_msg *m) {
  return m ? m->it->attempt : 0;
}
bool wr_msg_redelivered(const wr_msg *m) {
  return m && m->it->env.redelivered;
}
const char *wr_msg_consumer(const wr_msg *m) {
  return m ? m->c->name : NULL;
}

void wr_msg_set_stale(wr_msg *m) {
  if (m)
    m->it->stale = true;
}

int wr_msg_fail(wr_msg *m, int code, const char *fmt, ...) {
  if (!m)
    return code;
  m->it->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->it->err, sizeof m->it->err, fmt ? fmt : "", ap);
  va_end(ap);
  return code;
}

int wr_msg_fail_err(wr_msg *m, const wr_err *err) {
  int code = err && err->code < 0 ? err->code : WR_EHANDLER;
  if (!m)
    return code;
  m->it->code = code;
  m->it->db_retryable = wr_db_retryable(err);
  snprintf(m->it->err, sizeof m->it->err, "%s", err && err->msg[0] ? err->msg : wr_strerror(code));
  return code;
}

wr_outbox *wr_msg_outbox(wr_msg *m) {
  if (!m)
    return NULL;
  if (!m->ob_ready) {
    const wr_meta *meta = m->it->meta;
    memset(&m->ob, 0, sizeof m->ob);
    m->ob.conn = m->c->db;
    m->ob.source_service = m->c->source_service;
    m->ob.source_instance = m->c->source_instance;
    /* The flow goes on: same correlation; an event that started a flow without one
     * is its own correlation. */
    m->ob.correlation_id =
        meta->correlation_id && *meta->correlation_id ? meta->correlation_id : meta->event_id;
    m->ob.causation_id = meta->event_id;
    m->ob_ready = true;
  }
  return &m->ob;
}

static int key_cmp(const char *t1, const char *i1, const char *t2, const char *i2) {
  int r = strcmp(t1, t2);
  return r ? r : strcmp(i1, i2);
}

static int gkey_sort(const void *a, const void *b) {
  const gkey *x = a, *y = b;
  return key_cmp(x->type, x->id, y->type, y->id);
}

static int gkey_find(const wr_consumer *c, const char *type, const char *id) {
  size_t lo = 0, hi = c->n_keys;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int r = key_cmp(c->keys[mid].type, c->keys[mid].id, type, id);
    if (r == 0)
      return (int)mid;
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Reads (and in a locking transaction locks) the stored versions of every aggregate
 * in the transaction. */
static int guard_load(wr_consumer *c, wr_err *err) {
  c->n_keys = 0;
  for (size_t k = 0; k < c->n_txn; k++) {
    const item *it = &c->items[c->txn[k]];
    c->keys[c->n_keys++] = (gkey){.type = it->meta->aggregate_type, .id = it->meta->aggregate_id};
  }
  qsort(c->keys, c->n_keys, sizeof *c->keys, gkey_sort);
  size_t w = 0;
  for (size_t r = 0; r < c->n_keys; r++)
    if (w == 0 || gkey_sort(&c->keys[w - 1], &c->keys[r]) != 0)
      c->keys[w++] = c->keys[r];
  c->n_keys = w;
  for (size_t k = 0; k < c->n_txn; k++) {
    item *it = &c->items[c->txn[k]];
    it->gkey = gkey_find(c, it->meta->aggregate_type, it->meta->aggregate_id);
  }
  wr__sbuf ts = {0}, ids = {0};
  wr__sb_cstr(&ts, "{");
  wr__sb_cstr(&ids, "{");
  for (size_t k = 0; k < c->n_keys; k++) {
    wr__sb_pg_elem(&ts, c->keys[k].type, k == 0);
    wr__sb_pg_elem(&ids, c->keys[k].id, k == 0);
  }
  wr__sb_cstr(&ts, "}");
  wr__sb_cstr(&ids, "}");
  int rc = 0;
  if (ts.oom || ids.oom) {
    rc = wr_err_set(err, WR_ENOMEM, "version guard: out of memory");
  } else {
    const char *params[3] = {c->name, ts.p, ids.p};
    PGresult *r =
        PQexecPrepared(c->db, c->txn_lock ? gload_stmt : gpeek_stmt, 3, params, NULL, NULL, 0);
    rc = wr_db_check(c->db, r, PGRES_TUPLES_OK, "version guard read", err);
    for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
      int k = gkey_find(c, PQgetvalue(r, row, 0), PQgetvalue(r, row, 1));
      if (k < 0)
        continue;
      gkey *g = &c->keys[k];
      g->cur = g->read = strtoull(PQgetvalue(r, row, 2), NULL, 10);
      g->cur_tomb = g->read_tomb = PQgetvalue(r, row, 3)[0] == 't';
      g->had = true;
    }
    PQclear(r);
  }
  wr__sb_free(&ts);
  wr__sb_free(&ids);
  if (rc == 0)
    c->keys_loaded = true;
  return rc;
}

int wr_msg_guard(wr_msg *m) {
  if (!m)
    return WR_EINVAL;
  item *it = m->it;
  wr_consumer *c = m->c;
  if (it->guard >= 0)
    return it->guard;
  if (!c->keys_loaded) {
    wr_err e;
    wr_err_clear(&e);
    int rc = guard_load(c, &e);
    if (rc < 0) {
      snprintf(it->err, sizeof it->err, "%s", e.msg);
      it->code = rc;
      return rc;
    }
  }
  if (it->gkey < 0)
    return WR_ESTATE; /* cannot happen: every item of the transaction has a key */
  gkey *k = &c->keys[it->gkey];
  bool tomb = it->h->t->kind == WR_KIND_DELETED;
  uint64_t v = it->meta->version;
  /* A snapshot also applies at the stored version: it carries the same state, and
   * rewriting it repairs contents that version checksums cannot see. */
  bool same_snapshot = it->h->t->kind == WR_KIND_SNAPSHOT && v == k->cur && !k->cur_tomb;
  int apply = (v > k->cur || same_snapshot) && (!k->cur_tomb || tomb);
  if (apply)
    k->applied = true;
  if (apply && same_snapshot) {
    /* nothing to record: the stored version stays */
  } else if (apply) {
    k->cur = v;
    k->cur_tomb = tomb;
    k->dirty = true;
  } else {
    it->stale = true;
  }
  it->guard = apply;
  return apply;
}

/* Writes the versions decided in memory. Returns 0, 1 when a competing transaction
 * created one of the rows meanwhile (run the transaction again), or <0. */
static int guard_save(wr_consumer *c, wr_err *err) {
  size_t n = 0;
  wr__sbuf ts = {0}, ids = {0}, vs = {0}, tbs = {0};
  wr__sb_cstr(&ts, "{");
  wr__sb_cstr(&ids, "{");
  wr__sb_cstr(&vs, "{");
  wr__sb_cstr(&tbs, "{");
  for (size_t k = 0; k < c->n_keys; k++) {
    if (!c->keys[k].dirty)
      continue;
    char num[24];
    snprintf(num, sizeof num, "%s%" PRIu64, n ? "," : "", c->keys[k].cur);
    wr__sb_pg_elem(&ts, c->keys[k].type, n == 0);
    wr__sb_pg_elem(&ids, c->keys[k].id, n == 0);
    wr__sb_cstr(&vs, num);
    wr__sb_cstr(&tbs, n ? (c->keys[k].cur_tomb ? ",t" : ",f") : (c->keys[k].cur_tomb ? "t" : "f"));
    n++;
  }
  wr__sb_cstr(&ts, "}");
  wr__sb_cstr(&ids, "}");
  wr__sb_cstr(&vs, "}");
  wr__sb_cstr(&tbs, "}");
  int rc = 0;
  if (n == 0) {
    rc = 0;
  } else if (ts.oom || ids.oom || vs.oom || tbs.oom) {
    rc = wr_err_set(err, WR_ENOMEM, "version guard: out of memory");
  } else {
    const char *params[5] = {c->name, ts.p, ids.p, vs.p, tbs.p};
    PGresult *r = PQexecPrepared(c->db, gsave_stmt, 5, params, NULL, NULL, 0);
    rc = wr_db_check(c->db, r, PGRES_TUPLES_OK, "version guard write", err);
    if (rc == 0 && (size_t)PQntuples(r) != n)
      rc = 1;
    PQclear(r);
  }
  wr__sb_free(&ts);
  wr__sb_free(&ids);
  wr__sb_free(&vs);
  wr__sb_free(&tbs);
  return rc;
}

/* The optimistic write: compare-and-set of every aggregate an event applied to (see
 * the top of the file). Returns 0, 1 when a competing transaction changed one of the
 * rows after the read (run the transaction again the locking way), or <0. */
static int guard_cas(wr_consumer *c, wr_err *err) {
  size_t n = 0;
  wr__sbuf ts = {0}, ids = {0}, vs = {0}, tbs = {0}, had = {0}, olds = {0}, otbs = {0};
  wr__sbuf *all[7] = {&ts, &ids, &vs, &tbs, &had, &olds, &otbs};
  for (size_t a = 0; a < 7; a++)
    wr__sb_cstr(all[a], "{");
  for (size_t k = 0; k < c->n_keys; k++) {
    const gkey *g = &c->keys[k];
    if (!g->applied)
      continue;
    const char *sep = n ? "," : "";
    char num[24];
    wr__sb_pg_elem(&ts, g->type, n == 0);
    wr__sb_pg_elem(&ids, g->id, n == 0);
    snprintf(num, sizeof num, "%s%" PRIu64, sep, g->cur);
    wr__sb_cstr(&vs, num);
    wr__sb_cstr(&tbs, sep);
    wr__sb_cstr(&tbs, g->cur_tomb ? "t" : "f");
    wr__sb_cstr(&had, sep);
    wr__sb_cstr(&had, g->had ? "t" : "f");
    snprintf(num, sizeof num, "%s%" PRIu64, sep, g->read);
    wr__sb_cstr(&olds, num);
    wr__sb_cstr(&otbs, sep);
    wr__sb_cstr(&otbs, g->read_tomb ? "t" : "f");
    n++;
  }
  bool oom = false;
  for (size_t a = 0; a < 7; a++) {
    wr__sb_cstr(all[a], "}");
    oom = oom || all[a]->oom;
  }
  int rc = 0;
  if (n == 0) {
    rc = 0;
  } else if (oom) {
    rc = wr_err_set(err, WR_ENOMEM, "version guard: out of memory");
  } else {
    const char *params[8] = {c->name, ts.p, ids.p, vs.p, tbs.p, had.p, olds.p, otbs.p};
    PGresult *r = PQexecPrepared(c->db, gcas_stmt, 8, params, NULL, NULL, 0);
    rc = wr_db_check(c->db, r, PGRES_TUPLES_OK, "version guard write", err);
    if (rc == 0 && (PQntuples(r) != 1 || strtoull(PQgetvalue(r, 0, 0), NULL, 10) != n))
      rc = 1;
    PQclear(r);
  }
  for (size_t a = 0; a < 7; a++)
    wr__sb_free(all[a]);
  return rc;
}

/* ---- settle: transactions ------------------------------------------------------------- */

typedef enum txn_result {
  TX_OK = 0,
  TX_FAIL,     /* a handler (or a statement it caused) failed: c->txn_failed */
  TX_CONFLICT, /* guard rows created concurrently: run again */
  TX_DB,       /* database trouble not caused by a message: recover, run again */
} txn_result;

static void rollback(wr_consumer *c) {
  if (c->db && PQtransactionStatus(c->db) != PQTRANS_IDLE &&
      PQtransactionStatus(c->db) != PQTRANS_UNKNOWN) {
    PGresult *r = PQexec(c->db, "ROLLBACK");
    PQclear(r);
  }
}

/* Abandons the transaction: ROLLBACK, and tell the batch hooks to forget what their
 * handlers buffered. */
static void txn_abort(wr_consumer *c) {
  rollback(c);
  if (c->batch_discard)
    c->batch_discard(c, c->batch_user);
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Inserts the distinct event ids of the transaction into the inbox and marks as fresh
 * the first item of every id that was not there yet. */
static int inbox_insert(wr_consumer *c, wr_err *err) {
  const char **ids = malloc(c->n_txn * sizeof *ids);
  const char **fresh = malloc(c->n_txn * sizeof *fresh);
  if (!ids || !fresh) {
    free(ids);
    free(fresh);
    return wr_err_set(err, WR_ENOMEM, "inbox: out of memory");
  }
  for (size_t k = 0; k < c->n_txn; k++)
    ids[k] = c->items[c->txn[k]].event_id;
  qsort(ids, c->n_txn, sizeof *ids, str_cmp);
  wr__sbuf b = {0};
  wr__sb_cstr(&b, "{");
  size_t nd = 0;
  for (size_t k = 0; k < c->n_txn; k++) {
    if (k > 0 && strcmp(ids[k - 1], ids[k]) == 0)
      continue;
    if (nd++)
      wr__sb_cstr(&b, ",");
    wr__sb_cstr(&b, ids[k]);
  }
  wr__sb_cstr(&b, "}");
  int rc = 0;
  size_t nf = 0;
  PGresult *r = NULL;
  if (b.oom) {
    rc = wr_err_set(err, WR_ENOMEM, "inbox: out of memory");
  } else {
    const char *params[2] = {c->name, b.p};
    r = PQexecPrepared(c->db, inbox_stmt, 2, params, NULL, NULL, 0);
    rc = wr_db_check(c->db, r, PGRES_TUPLES_OK, "inbox insert", err);
    if (rc == 0) {
      for (int row = 0; row < PQntuples(r) && nf < c->n_txn; row++)
        fresh[nf++] = PQgetvalue(r, row, 0);
      qsort(fresh, nf, sizeof *fresh, str_cmp);
      /* used[i]: fresh[i] already went to an earlier item (a duplicate in the batch). */
      bool *used = calloc(nf ? nf : 1, sizeof *used);
      if (!used) {
        rc = wr_err_set(err, WR_ENOMEM, "inbox: out of memory");
      } else {
        for (size_t k = 0; k < c->n_txn; k++) {
          item *it = &c->items[c->txn[k]];
          const char *key = it->event_id;
          const char **hit = nf ? bsearch(&key, fresh, nf, sizeof *fresh, str_cmp) : NULL;
          if (hit && !used[hit - fresh]) {
            it->fresh = true;
            used[hit - fresh] = true;
          }
        }
        free(used);
      }
    }
  }
  PQclear(r);
  wr__sb_free(&b);
  free(ids);
  free(fresh);
  return rc;
}

static double occurred_to_now_s(const wr_meta *m, int64_t now_ns) {
  if (!m->occurred_at)
    return -1;
  int64_t occ = (int64_t)m->occurred_at->seconds * 1000000000 + m->occurred_at->nanos;
  double d = (double)(now_ns - occ) / 1e9;
  return d < 0 ? 0 : d;
}

/* Runs the items listed in c->txn in one transaction, taking the guard's row locks
 * (lock) or optimistic. On TX_FAIL *failed is the index (into c->txn) of the item
 * whose handler failed, or -1 if the failure is not attributable to one item, and
 * c->txn_stmt_failed tells whether a statement failed; err holds the database detail
 * for TX_DB. */
static txn_result run_txn(wr_consumer *c, bool lock, int *failed, wr_err *err) {
  *failed = -1;
  c->txn_lock = lock;
  c->txn_stmt_failed = false;
  c->txn_retryable = false;
  c->keys_loaded = false;
  c->n_keys = 0;
  for (size_t k = 0; k < c->n_txn; k++) {
    item *it = &c->items[c->txn[k]];
    it->fresh = false;
    it->stale = false;
    it->guard = -1;
    it->gkey = -1;
    it->code = 0;
    it->err[0] = '\0';
    it->db_retryable = false;
  }
  if (wr_db_exec(c->db, "BEGIN", err) < 0) {
    txn_abort(c);
    return TX_DB;
  }
  if (inbox_insert(c, err) < 0) {
    txn_abort(c);
    return TX_DB;
  }
  bool any_fresh = false;
  for (size_t k = 0; k < c->n_txn; k++) {
    item *it = &c->items[c->txn[k]];
    if (!it->fresh)
      continue;
    any_fresh = true;
    it->msg = (wr_msg){.c = c, .it = it, .ob_ready = false};
    int rc = it->h->dispatch(&it->msg, it->ev, it->h->fn, it->h->user);
    if (rc > 0) {
      snprintf(it->err, sizeof it->err, "handler returned %d (expected 0 or a WR_E* code)", rc);
      rc = WR_EHANDLER;
    }
    if (rc == 0 && PQtransactionStatus(c->db) == PQTRANS_INERROR) {
      rc = WR_EDB;
      if (!it->err[0])
        snprintf(it->err, sizeof it->err, "handler returned success but a statement failed: %.400s",
                 PQerrorMessage(c->db));
    }
    if (rc != 0) {
      bool broken = wr_db_broken(c->db);
      c->txn_stmt_failed = PQtransactionStatus(c->db) == PQTRANS_INERROR;
      c->txn_retryable = c->txn_stmt_failed && it->db_retryable;
      txn_abort(c);
      if (broken) {
        wr_err_set(err, WR_EDB, "connection lost during a handler");
        return TX_DB;
      }
      it->code = rc;
      if (!it->err[0])
        snprintf(it->err, sizeof it->err, "%s", wr_strerror(rc));
      *failed = (int)k;
      return TX_FAIL;
    }
  }
  if (c->batch_flush && any_fresh) {
    wr_err e;
    wr_err_clear(&e);
    int rc = c->batch_flush(c, c->db, c->batch_user, &e);
    if (rc > 0)
      rc = WR_EHANDLER;
    if (rc == 0 && PQtransactionStatus(c->db) == PQTRANS_INERROR)
      rc = wr_err_set(&e, WR_EDB, "batch flush returned success but a statement failed: %.400s",
                      PQerrorMessage(c->db));
    if (rc != 0) {
      bool broken = wr_db_broken(c->db);
      c->txn_stmt_failed = PQtransactionStatus(c->db) == PQTRANS_INERROR;
      c->txn_retryable = wr_db_retryable(&e);
      txn_abort(c);
      if (broken) {
        *err = e;
        return TX_DB;
      }
      if (c->n_txn == 1) {
        item *it = &c->items[c->txn[0]];
        it->code = rc;
        snprintf(it->err, sizeof it->err, "batch flush: %s", e.msg[0] ? e.msg : wr_strerror(rc));
        *failed = 0;
      }
      return TX_FAIL;
    }
  }
  if (c->keys_loaded) {
    wr_err e;
    wr_err_clear(&e);
    int rc = c->txn_lock ? guard_save(c, &e) : guard_cas(c, &e);
    if (rc != 0) {
      bool broken = wr_db_broken(c->db);
      c->txn_stmt_failed = rc < 0;
      c->txn_retryable = rc < 0 && wr_db_retryable(&e);
      txn_abort(c);
      if (rc == 1)
        return TX_CONFLICT;
      if (broken) {
        *err = e;
        return TX_DB;
      }
      if (c->n_txn == 1) {
        item *it = &c->items[c->txn[0]];
        it->code = rc;
        snprintf(it->err, sizeof it->err, "%s", e.msg);
        *failed = 0;
      }
      return TX_FAIL;
    }
  }
  PGresult *r = PQexec(c->db, "COMMIT");
  bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
  if (!committed) {
    wr_err e;
    wr_err_clear(&e);
    wr_db_check(c->db, r, PGRES_COMMAND_OK, "commit", &e);
    PQclear(r);
    bool broken = wr_db_broken(c->db);
    c->txn_stmt_failed = true;
    c->txn_retryable = wr_db_retryable(&e);
    txn_abort(c);
    if (broken) {
      /* The commit may or may not have happened: running the batch again is safe
       * either way, the inbox turns the second run into duplicates. */
      *err = e;
      return TX_DB;
    }
    if (c->n_txn == 1) {
      item *it = &c->items[c->txn[0]];
      it->code = WR_EDB;
      snprintf(it->err, sizeof it->err, "%s", e.msg[0] ? e.msg : "commit failed");
      *failed = 0;
    }
    return TX_FAIL; /* e.g. a deferred constraint of the handler's */
  }
  PQclear(r);
  int64_t now = wr_now_ns();
  uint64_t n_applied = 0, n_dup = 0, n_stale = 0;
  for (size_t k = 0; k < c->n_txn; k++) {
    item *it = &c->items[c->txn[k]];
    if (!it->fresh) {
      it->d = D_DUPLICATE;
      n_dup++;
    } else if (it->stale) {
      it->d = D_STALE;
      n_stale++;
    } else {
      it->d = D_APPLIED;
      n_applied++;
      if (c->metrics) {
        double lat = occurred_to_now_s(it->meta, now);
        if (lat >= 0)
          wr_histogram_observe(c->m_latency, lat);
      }
    }
  }
  count(c, &c->st.applied, R_APPLIED, n_applied);
  count(c, &c->st.duplicates, R_DUPLICATE, n_dup);
  count(c, &c->st.stale, R_STALE, n_stale);
  count(c, &c->st.batches, -1, 1);
  return TX_OK;
}

/* A handler failure: the next retry tier, or the DLQ after the last one (or at once
 * for WR_EREJECT). */
static void decide_failure(wr_consumer *c, item *it) {
  one_line(it->err);
  if (it->code == WR_EREJECT || it->attempt >= c->n_delays)
    it->d = D_DLQ;
  else
    it->d = D_RETRY;
}

/* Settles every pending item in the database. Returns 0, or WR_ESTOPPED when a stop
 * was requested during a database outage (the remaining items stay pending). */
static int settle(wr_consumer *c) {
  bool one_by_one = false;
  for (;;) {
    c->n_txn = 0;
    for (size_t i = 0; i < c->n_items; i++)
      if (c->items[i].d == D_PENDING)
        c->txn[c->n_txn++] = i;
    if (c->n_txn == 0)
      return 0;
    if (!one_by_one && c->n_txn > 1) {
      int failed;
      wr_err e;
      wr_err_clear(&e);
      bool lock = c->locked_left > 0;
      if (lock)
        c->locked_left--;
      txn_result r = run_txn(c, lock, &failed, &e);
      if (r == TX_OK) {
        db_ok(c);
        return 0;
      }
      if (r == TX_DB) {
        if (db_recover(c, &e, wr_db_broken(c->db)) < 0)
          return WR_ESTOPPED;
        continue;
      }
      if (!lock && (r == TX_CONFLICT || c->txn_stmt_failed)) {
        /* A competing writer (or a failed statement, e.g. a deadlock with one): the
         * same batch again, the locking way, before anything is concluded. */
        if (r == TX_CONFLICT)
          count(c, &c->st.guard_conflicts, -1, 1);
        c->locked_left = LOCKED_AFTER_CONFLICT + 1;
        continue;
      }
      one_by_one = true;
      count(c, &c->st.fallbacks, -1, 1);
      continue;
    }
    /* One message per transaction. */
    size_t n_pending = c->n_txn;
    size_t *list = c->pending;
    memcpy(list, c->txn, n_pending * sizeof *list);
    int stopped = 0;
    for (size_t j = 0; j < n_pending && !stopped; j++) {
      unsigned conflicts = 0, reruns = 0;
      for (;;) {
        c->txn[0] = list[j];
        c->n_txn = 1;
        int failed;
        wr_err e;
        wr_err_clear(&e);
        txn_result r = run_txn(c, true, &failed, &e);
        item *it = &c->items[list[j]];
        if (r == TX_OK) {
          db_ok(c);
          break;
        }
        if (r == TX_DB) {
          if (db_recover(c, &e, wr_db_broken(c->db)) < 0) {
            stopped = 1;
            break;
          }
          continue;
        }
        if (r == TX_CONFLICT && ++conflicts < GUARD_CONFLICT_RETRIES)
          continue;
        /* rolled back by PostgreSQL to break a deadlock (or a serialization failure)
         * with another writer: not the message's fault, run it again at once */
        if (r == TX_FAIL && c->txn_retryable && ++reruns < TXN_RERUNS) {
          count(c, &c->st.txn_reruns, -1, 1);
          continue;
        }
        if (r == TX_CONFLICT) {
          it->code = WR_ECONFLICT;
          snprintf(it->err, sizeof it->err,
                   "version guard: concurrent writers kept creating the aggregate's row");
        }
        if (it->code == 0)
          it->code = WR_EHANDLER;
        if (!it->err[0])
          snprintf(it->err, sizeof it->err, "%s", wr_strerror(it->code));
        decide_failure(c, it);
        break;
      }
    }
    return stopped ? WR_ESTOPPED : 0;
  }
}

/* ---- copies to retry tiers and the DLQ ------------------------------------------------ */

static bool is_override(const amqp_bytes_t key, const char *const *keys, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (key.len == strlen(keys[i]) && memcmp(key.bytes, keys[i], key.len) == 0)
      return true;
  return false;
}

static amqp_table_entry_t entry_str(const char *key, amqp_bytes_t v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = v;
  return e;
}

static amqp_table_entry_t entry_int(const char *key, int64_t v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = v;
  return e;
}

/* Builds the copy's headers: every original header except the ones warren sets, then
 * warren's. The entries borrow from the envelope and from `it`; *out is malloc'd. */
static int copy_headers(wr_consumer *c, item *it, unsigned tier, amqp_table_t *out) {
  static const char *const retry_keys[] = {"x-warren-attempt", "x-warren-error"};
  static const char *const dlq_keys[] = {"x-warren-error", "x-warren-attempts",
                                         "x-warren-failed-at", "x-warren-consumer"};
  const char *const *keys = tier ? retry_keys : dlq_keys;
  size_t n_keys = tier ? 2 : 4;
  const amqp_table_t *h = headers_of(&it->env);
  size_t n_old = h ? (size_t)(h->num_entries > 0 ? h->num_entries : 0) : 0;
  amqp_table_entry_t *e = malloc((n_old + 8) * sizeof *e);
  if (!e)
    return WR_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < n_old; i++)
    if (!is_override(h->entries[i].key, keys, n_keys))
      e[n++] = h->entries[i];
  if (!h || !wr_table_get(h, "x-warren-original-exchange"))
    e[n++] = entry_str("x-warren-original-exchange", it->env.exchange);
  if (!h || !wr_table_get(h, "x-warren-original-routing-key"))
    e[n++] = entry_str("x-warren-original-routing-key", it->env.routing_key);
  size_t elen = strlen(it->err);
  e[n++] = entry_str("x-warren-error", (amqp_bytes_t){elen, it->err});
  if (tier) {
    e[n++] = entry_int("x-warren-attempt", tier);
  } else {
    e[n++] = entry_int("x-warren-attempts", (int64_t)it->attempt + 1);
    e[n++] = entry_int("x-warren-failed-at", wr_now_ns() / 1000000);
    e[n++] = entry_str("x-warren-consumer", amqp_cstring_bytes(c->name));
  }
  out->num_entries = (int)n;
  out->entries = e;
  return 0;
}

static void on_confirm(wr_conn *conn, uint64_t seq, int status, void *user) {
  (void)conn;
  wr_consumer *c = user;
  for (size_t i = 0; i < c->n_items; i++) {
    item *it = &c->items[i];
    if (it->copy_sent && it->copy_seq == seq) {
      it->copy_status = status;
      return;
    }
  }
}

static void log_copy(const wr_consumer *c, const item *it, const char *what, const char *where) {
  char mid[WR_UUID_STRLEN + 8];
  const amqp_basic_properties_t *p = &it->env.message.properties;
  const char *corr = it->meta && it->meta->correlation_id && *it->meta->correlation_id
                         ? it->meta->correlation_id
                         : NULL;
  if (it->meta)
    snprintf(mid, sizeof mid, "%s", it->meta->event_id);
  else if (!((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
             bytes_to_str(p->message_id, mid, sizeof mid)))
    snprintf(mid, sizeof mid, "-");
  /* Values from outside go in quotes: keep their own quotes from ending them. */
  char type[200], err[300];
  snprintf(type, sizeof type, "%s", it->type_name[0] ? it->type_name : "-");
  snprintf(err, sizeof err, "%s", it->err);
  for (char *q = type; *q; q++)
    if (*q == '"' || (unsigned char)*q < 0x20)
      *q = '\'';
  for (char *q = err; *q; q++)
    if (*q == '"')
      *q = '\'';
  for (char *q = mid; *q; q++)
    if (*q == '"' || *q == ' ' || (unsigned char)*q < 0x20)
      *q = '_';
  wr_log_warn(corr, "event %s queue=%s to=%s event_id=%s type=\"%s\" attempt=%u error=\"%s\"", what,
              c->queue, where, mid, type, it->attempt, err);
}

/* Publishes the copies of the batch and waits for their confirms. */
static void publish_copies(wr_consumer *c) {
  uint64_t max_seq = 0;
  size_t n_sent = 0;
  char rk[300], dlx[300];
  wr_topology_dlx_name(c->queue, dlx, sizeof dlx);
  for (size_t i = 0; i < c->n_items; i++) {
    item *it = &c->items[i];
    it->copy_sent = false;
    if (it->d != D_RETRY && it->d != D_DLQ)
      continue;
    it->copy_status = WR_ECLOSED;
    unsigned tier = it->d == D_RETRY ? it->attempt + 1 : 0;
    amqp_table_t headers;
    if (copy_headers(c, it, tier, &headers) < 0) {
      it->copy_status = WR_ENOMEM;
      continue;
    }
    amqp_basic_properties_t props = it->env.message.properties;
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.headers = headers;
    /* A copy is the only remaining instance of the event: make it survive a restart. */
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    wr_publish pub = {.exchange = "",
                      .routing_key = rk,
                      .body = it->env.message.body.bytes,
                      .len = it->env.message.body.len,
                      .props = &props,
                      .mandatory = true};
    if (tier) {
      wr_topology_retry_name(c->queue, tier, rk, sizeof rk);
    } else {
      pub.exchange = dlx;
      pub.routing_key = c->queue;
    }
    wr_err e;
    wr_err_clear(&e);
    uint64_t seq = 0;
    int rc = wr_conn_publish(c->conn, &pub, &seq, &e);
    free(headers.entries);
    if (rc < 0) {
      it->copy_status = rc;
      continue;
    }
    it->copy_sent = true;
    it->copy_status = 1;
    it->copy_seq = seq;
    if (seq > max_seq)
      max_seq = seq;
    n_sent++;
  }
  if (n_sent == 0)
    return;
  wr_err e;
  wr_err_clear(&e);
  wr_conn_wait_confirms(c->conn, max_seq, c->confirm_timeout_ms, on_confirm, c, &e);
  for (size_t i = 0; i < c->n_items; i++) {
    item *it = &c->items[i];
    if (!it->copy_sent)
      continue;
    if (it->copy_status == 1)
      it->copy_status = WR_ETIMEDOUT;
    if (it->copy_status != 0)
      continue;
    if (it->d == D_RETRY) {
      count(c, &c->st.retried, R_RETRIED, 1);
      char where[300];
      wr_topology_retry_name(c->queue, it->attempt + 1, where, sizeof where);
      log_copy(c, it, "retried", where);
    } else {
      count(c, &c->st.dead_lettered, R_DEAD, 1);
      log_copy(c, it, "dead-lettered", dlx);
    }
  }
}

/* ---- acks -------------------------------------------------------------------------- */

static bool item_done(const item *it) {
  switch (it->d) {
  case D_APPLIED:
  case D_STALE:
  case D_DUPLICATE:
  case D_SKIPPED:
    return true;
  case D_RETRY:
  case D_DLQ:
    return it->copy_status == 0;
  case D_PENDING:
    return false;
  }
  return false;
}

static void ack_batch(wr_consumer *c, uint64_t gen) {
  if (c->n_items == 0)
    return;
  wr_err e;
  bool requeue = false, pending = false;
  for (size_t i = 0; i < c->n_items; i++) {
    const item *it = &c->items[i];
    if (it->d == D_PENDING)
      pending = true;
    else if (!item_done(it))
      requeue = true;
  }
  if (requeue && c->stream) {
    /* A stream does not redeliver: the message would be skipped for good. Stop the
     * replay where it stands instead (see stream_settle). */
    c->stream_failed = true;
    requeue = false;
    pending = true; /* ack only what is done */
  }
  if (requeue && wr_conn_is_open(c->conn)) {
    /* Not a hot loop: the messages whose copies failed come back only after a pause,
     * also when the failure closed the channel and the broker requeued them itself
     * (a missing DLX exchange: 404). A lost connection has its own reconnect backoff. */
    unsigned ms = wr_backoff_ms(c->copy_fail_streak++, BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    wr_log_warn(NULL, "consumer %s: retry/DLQ copies not confirmed, requeueing originals in %u ms",
                c->queue, ms);
    pause_ms(c, ms);
  } else {
    c->copy_fail_streak = 0;
  }
  if (!wr_conn_is_open(c->conn) || wr_conn_generation(c->conn) != gen)
    return; /* the broker redelivers everything of the old connection or channel */
  uint64_t n_skipped = 0;
  for (size_t i = 0; i < c->n_items; i++)
    if (c->items[i].d == D_SKIPPED)
      n_skipped++;
  count(c, &c->st.skipped, R_SKIPPED, n_skipped);
  if (requeue)
    for (size_t i = 0; i < c->n_items; i++) {
      const item *it = &c->items[i];
      if (it->d != D_PENDING && !item_done(it))
        wr_conn_reject(c->conn, it->env.delivery_tag, true, &e);
    }
  if (!pending) {
    /* Everything else is done: one multiple-ack for the highest done tag covers them
     * (the requeued ones are no longer outstanding). */
    uint64_t top = 0;
    for (size_t i = 0; i < c->n_items; i++)
      if (item_done(&c->items[i]) && c->items[i].env.delivery_tag > top)
        top = c->items[i].env.delivery_tag;
    if (top)
      wr_conn_ack(c->conn, top, true, &e);
    return;
  }
  /* Some items are left pending (stop during a database outage): ack the done ones
   * one by one, the pending ones return to the queue when the connection closes. */
  for (size_t i = 0; i < c->n_items; i++)
    if (item_done(&c->items[i]))
      wr_conn_ack(c->conn, c->items[i].env.delivery_tag, false, &e);
}

/* Replay: the offset up to which every message of the batch is settled (deliveries
 * come in offset order). */
static void stream_settle(wr_consumer *c) {
  int64_t done = __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED);
  for (size_t i = 0; i < c->n_items; i++) {
    const item *it = &c->items[i];
    if (!item_done(it))
      break;
    if (it->offset > done)
      done = it->offset;
  }
  __atomic_store_n(&c->stream_done, done, __ATOMIC_RELAXED);
}

static void batch_clear(wr_consumer *c) {
  for (size_t i = 0; i < c->n_items; i++) {
    item *it = &c->items[i];
    wr_event_free(it->ev);
    amqp_destroy_envelope(&it->env);
    memset(it, 0, sizeof *it);
  }
  c->n_items = 0;
  c->n_txn = 0;
  c->n_keys = 0;
  c->keys_loaded = false;
}

static void process_batch(wr_consumer *c) {
  uint64_t gen = wr_conn_generation(c->conn);
  if (c->metrics)
    wr_histogram_observe(c->m_batch, (double)c->n_items);
  for (size_t i = 0; i < c->n_items; i++)
    classify(c, &c->items[i]);
  settle(c);
  if (c->hook)
    c->hook(c, WR__CONSUMER_AFTER_COMMIT, c->hook_user);
  publish_copies(c);
  if (c->hook)
    c->hook(c, WR__CONSUMER_BEFORE_ACK, c->hook_user);
  ack_batch(c, gen);
  if (c->stream)
    stream_settle(c);
  batch_clear(c);
}

/* Fills the batch. Returns the number of deliveries, 0 when none came, or <0 when the
 * connection failed (the batch is then empty: its deliveries come back). */
/* The partitions-active count, for the stats and the gauge. Consumer thread only. */
static void parts_active_add(wr_consumer *c, int delta) {
  uint32_t v = (uint32_t)((int)__atomic_load_n(&c->parts_active, __ATOMIC_RELAXED) + delta);
  __atomic_store_n(&c->parts_active, v, __ATOMIC_RELAXED);
  if (c->m_parts)
    wr_gauge_set(c->m_parts, (double)v);
}

/* Partitioned: remembers which partitions deliver to this instance (it is their active
 * consumer until it cancels or disconnects). The consumer tag is the queue name. */
static void note_delivery(wr_consumer *c, const amqp_envelope_t *env) {
  c->last_delivery_ns = wr_mono_ns();
  if (c->n_parts == 0 || c->stream)
    return;
  int64_t now = c->last_delivery_ns;
  if (wr_conn_generation(c->conn) != c->parts_gen)
    parts_registered(c); /* channel 1 was reopened inside wr_conn */
  size_t ql = strlen(c->queue);
  const char *tag = env->consumer_tag.bytes;
  size_t tl = env->consumer_tag.len;
  if (tl < ql + 3 || memcmp(tag, c->queue, ql) != 0 || tag[ql] != '.' || tag[ql + 1] != 'p')
    return;
  unsigned k = 0;
  for (size_t i = ql + 2; i < tl; i++) {
    if (tag[i] < '0' || tag[i] > '9' || k > WR_PARTITIONS_MAX)
      return;
    k = k * 10 + (unsigned)(tag[i] - '0');
  }
  /* A partition handed over still delivers what it had sent before the cancel: that
   * says nothing about holding it. */
  if (k >= c->n_parts || c->part_seen[k] || c->part_out[k])
    return;
  c->part_seen[k] = true;
  if (c->others > 0 || now - c->part_reg_ns[k] > (int64_t)ACQUIRE_AFTER_MS * 1000000) {
    c->acquired = true;
    wr_log_info(NULL, "consumer %s: %s now delivers here (waiting %d ms for a previous holder)",
                c->queue, c->parts[k], HANDOVER_GRACE_MS);
  }
  parts_active_add(c, 1);
}

static int collect(wr_consumer *c) {
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_conn_next_delivery(c->conn, FIRST_WAIT_MS, &c->items[0].env, &e);
  if (rc == WR_ETIMEDOUT)
    return 0;
  if (rc < 0)
    return rc;
  note_delivery(c, &c->items[0].env);
  c->n_items = 1;
  int64_t deadline = wr_mono_ns() + (int64_t)c->batch_wait_ms * 1000000;
  while (c->n_items < c->batch_size) {
    int64_t left = deadline - wr_mono_ns();
    unsigned ms = left > 0 ? (unsigned)((left + 999999) / 1000000) : 0;
    rc = wr_conn_next_delivery(c->conn, ms, &c->items[c->n_items].env, &e);
    if (rc == WR_ETIMEDOUT)
      break;
    if (rc < 0) {
      batch_clear(c);
      return rc;
    }
    note_delivery(c, &c->items[c->n_items].env);
    c->n_items++;
  }
  return (int)c->n_items;
}

/* ---- housekeeping --------------------------------------------------------------------- */

static void cleanup_inbox(wr_consumer *c) {
  if (c->cleanup_interval_s == 0 || c->retention_s == 0)
    return;
  int64_t now = wr_mono_ns();
  if (now < c->next_cleanup_ns)
    return;
  char secs[24], lim[16];
  snprintf(secs, sizeof secs, "%u", c->retention_s);
  snprintf(lim, sizeof lim, "%d", CLEANUP_CHUNK);
  const char *params[3] = {c->name, secs, lim};
  long total = 0;
  bool more = false;
  for (int chunk = 0; chunk < CLEANUP_CHUNKS_PER_SLOT; chunk++) {
    PGresult *r = PQexecPrepared(c->db, cleanup_stmt, 3, params, NULL, NULL, 0);
    wr_err e;
    wr_err_clear(&e);
    int rc = wr_db_check(c->db, r, PGRES_COMMAND_OK, "inbox cleanup", &e);
    long n = rc == 0 ? strtol(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    if (rc < 0) {
      wr_log_warn(NULL, "consumer %s: %s", c->queue, e.msg);
      break;
    }
    total += n;
    if (n < CLEANUP_CHUNK)
      break;
    more = chunk + 1 == CLEANUP_CHUNKS_PER_SLOT;
  }
  if (total > 0)
    wr_log_debug(NULL, "consumer %s: inbox cleanup removed %ld rows", c->queue, total);
  c->next_cleanup_ns = now + (more ? 1000000000LL : (int64_t)c->cleanup_interval_s * 1000000000LL);
}

static void refresh_lag(wr_consumer *c) {
  if (!c->metrics)
    return;
  int64_t now = wr_mono_ns();
  if (now < c->next_lag_ns)
    return;
  c->next_lag_ns = now + (int64_t)LAG_INTERVAL_MS * 1000000;
  if (c->stream)
    return; /* a stream has no backlog to report */
  /* Partitioned: the backlog of the whole group (every partition). */
  unsigned nq = c->n_parts ? c->n_parts : 1;
  double total = 0;
  for (unsigned k = 0; k < nq; k++) {
    wr_queue_decl d = {.name = c->n_parts ? c->parts[k] : c->queue,
                       .durable = true,
                       .arguments = amqp_empty_table};
    uint32_t n = 0;
    wr_err e;
    wr_err_clear(&e);
    if (wr_conn_declare_queue(c->conn, &d, true, &n, NULL, &e) != 0)
      return;
    total += n;
  }
  wr_gauge_set(c->m_lag, total);
}

/* Partitioned: hands over the partitions this instance holds beyond its share, so
 * that every instance of the group gets some. The instance count is the consumer
 * count of <queue>.members (the broker counts live connections, nothing to
 * maintain). Which partitions an instance holds is known only from its deliveries,
 * so an idle partition is never handed over: balance matters only under load. A
 * handed-over partition goes to the instance that has waited longest for it; that
 * instance hands it on if it then holds more than its share, so the group converges
 * within a few intervals. Runs between batches. */
static void rebalance(wr_consumer *c) {
  if (c->n_parts < 2 || c->rebalance_ms == 0 || c->stream)
    return;
  int64_t now = wr_mono_ns();
  if (now < c->next_rebalance_ns)
    return;
  c->next_rebalance_ns = now + (int64_t)c->rebalance_ms * 1000000;
  wr_err e;
  /* Queue up again behind the others for the partitions handed over a tick ago (not
   * at once: what they had delivered before the cancel has been processed since,
   * and cannot be mistaken for holding them). */
  for (unsigned k = 0; k < c->n_parts; k++) {
    if (!c->part_out[k])
      continue;
    wr_err_clear(&e);
    if (wr_conn_consume(c->conn, c->parts[k], c->prefetch, false, amqp_empty_table, &e) != 0) {
      wr_log_warn(NULL, "consumer %s: consuming %s again failed: %s", c->queue, c->parts[k], e.msg);
      if (wr_conn_is_open(c->conn))
        wr_conn_close(c->conn); /* the reconnect registers every partition */
      c->consuming = false;
      return;
    }
    c->part_out[k] = false;
    c->part_reg_ns[k] = wr_mono_ns();
  }
  if (wr_conn_generation(c->conn) != c->parts_gen)
    return; /* re-registered since: nothing seen yet on this connection */
  wr_queue_decl d = {.name = c->members, .durable = true, .arguments = amqp_empty_table};
  uint32_t instances = 0;
  wr_err_clear(&e);
  if (wr_conn_declare_queue(c->conn, &d, true, NULL, &instances, &e) != 0 || instances == 0)
    return;
  c->others = instances - 1;
  unsigned share = (c->n_parts + instances - 1) / instances;
  unsigned held = 0;
  for (unsigned k = 0; k < c->n_parts; k++)
    held += c->part_seen[k];
  if (held <= share)
    return;
  unsigned excess = held - share;
  wr_log_info(NULL,
              "consumer %s: receiving from %u of %u partitions with %u instances: handing %u "
              "over",
              c->queue, held, c->n_parts, instances, excess);
  /* From the highest index down: instances that hand over at the same time give
   * away the same partitions first, the low ones stay where they are. */
  for (unsigned k = c->n_parts; k-- > 0 && excess > 0;) {
    if (!c->part_seen[k])
      continue;
    wr_err_clear(&e);
    int rc = wr_conn_cancel(c->conn, c->parts[k], &e);
    if (rc != 0) {
      /* The connection or channel failed: the reconnect registers every partition
       * again (at the back of the waiting lists). */
      wr_log_warn(NULL, "consumer %s: handing over %s failed: %s", c->queue, c->parts[k], e.msg);
      if (wr_conn_is_open(c->conn))
        wr_conn_close(c->conn);
      c->consuming = false;
      return;
    }
    c->part_seen[k] = false;
    c->part_out[k] = true;
    parts_active_add(c, -1);
    __atomic_fetch_add(&c->handovers, 1, __ATOMIC_RELAXED);
    if (c->m_handovers)
      wr_counter_add(c->m_handovers, 1);
    excess--;
  }
}

/* Replay: finds where the run ends by reading the stream's last chunk on a separate
 * connection (the offset spec "last" starts there) until it goes quiet; the highest
 * offset seen is the end (-1: the stream is empty). Returns 0, WR_ENOTFOUND (no such
 * stream), or a connection failure. */
static int stream_probe_end(wr_consumer *c, int64_t *end, wr_err *err) {
  *end = -1;
  int rc = wr_conn_open(c->probe, err);
  if (rc < 0)
    return rc;
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes("x-stream-offset");
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes("last");
  amqp_table_t args = {1, &e};
  rc = wr_conn_consume(c->probe, c->stream, 1000, false, args, err);
  int64_t start = wr_mono_ns();
  while (rc == 0) {
    amqp_envelope_t env;
    int64_t left = PROBE_MAX_MS - (wr_mono_ns() - start) / 1000000;
    if (left <= 0)
      break;
    rc = wr_conn_next_delivery(c->probe, left < PROBE_GAP_MS ? (unsigned)left : PROBE_GAP_MS, &env,
                               err);
    if (rc == WR_ETIMEDOUT) {
      rc = 0;
      break;
    }
    if (rc < 0)
      break;
    const amqp_table_t *hdr = headers_of(&env);
    int64_t off;
    if (hdr && wr_table_get_int(hdr, "x-stream-offset", &off) && off > *end)
      *end = off;
    wr_conn_ack(c->probe, env.delivery_tag, false, NULL);
    amqp_destroy_envelope(&env);
  }
  wr_conn_cancel(c->probe, c->stream, NULL);
  wr_conn_close(c->probe);
  return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int wr_consumer_declare(wr_consumer *c, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "consumer: NULL");
  if (c->thread_started)
    return wr_err_set(err, WR_ESTATE, "consumer: already running");
  int rc = build_topology(c, err);
  if (rc < 0)
    return rc;
  if (!c->db && (rc = db_open(c, err)) < 0)
    return rc;
  return amqp_ready(c, false, false, err);
}

/* Errors that retrying cannot fix: the consumer refuses to start. */
static bool fatal_open_error(const wr_err *e, int rc) {
  return rc == WR_EURL || rc == WR_EAUTH || rc == WR_EINVAL ||
         (rc == WR_EAMQP && (e->amqp_reply == 406 || e->amqp_reply == 403));
}

/* Replay: finds the end of the run once (retrying connection failures), then starts
 * the idle clock. Returns 0 (also when there is nothing to replay: finished) or what
 * retrying cannot fix (no such stream, refused credentials...). */
static int replay_setup(wr_consumer *c) {
  if (__atomic_load_n(&c->stream_end, __ATOMIC_RELAXED) >= 0 ||
      __atomic_load_n(&c->finished, __ATOMIC_RELAXED))
    return 0;
  for (unsigned attempt = 0; !c->stop; attempt++) {
    wr_err e;
    wr_err_clear(&e);
    int64_t end = -1;
    int rc = stream_probe_end(c, &end, &e);
    if (rc == 0) {
      __atomic_store_n(&c->stream_end, end, __ATOMIC_RELAXED);
      /* Nothing before the end to replay: an empty stream, or a start after its end
       * ("next", a larger offset). A timestamp after the last message is only seen
       * as a run without deliveries. */
      bool after_end = (c->from.kind == SF_WORD && strcmp(c->from.word, "next") == 0) ||
                       (c->from.kind == SF_OFFSET && c->from.value > end);
      if (end < 0 || after_end) {
        wr_log_info(NULL, "consumer %s: stream %s: nothing to replay (%s)", c->queue, c->stream,
                    end < 0 ? "empty" : "the start is after its end");
        __atomic_store_n(&c->finished, 1, __ATOMIC_RELAXED);
      } else {
        wr_log_info(NULL, "consumer %s: replaying stream %s up to offset %" PRId64, c->queue,
                    c->stream, end);
      }
      c->last_delivery_ns = wr_mono_ns();
      return 0;
    }
    if (rc == WR_ENOTFOUND || fatal_open_error(&e, rc)) {
      wr_log_error(NULL, "consumer %s: replay of stream %s: %s", c->queue, c->stream, e.msg);
      return rc;
    }
    if (attempt == 0)
      wr_log_warn(NULL, "consumer %s: replay of stream %s: %s; retrying", c->queue, c->stream,
                  e.msg);
    wr_sleep_ms(wr_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS), &c->stop);
  }
  return 0;
}

/* Replay: true when the run is over (end reached, idle too long, or failed). */
static bool replay_over(wr_consumer *c, int *result) {
  if (c->stream_failed) {
    wr_log_error(NULL,
                 "consumer %s: replay of stream %s stopped: a retry/DLQ copy was not "
                 "confirmed and a stream cannot deliver the message again; start again from "
                 "offset %" PRId64,
                 c->queue, c->stream, __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED) + 1);
    *result = WR_EIO;
    return true;
  }
  int64_t done = __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED);
  int64_t end = __atomic_load_n(&c->stream_end, __ATOMIC_RELAXED);
  bool idle = wr_mono_ns() - c->last_delivery_ns > (int64_t)STREAM_IDLE_MS * 1000000;
  if (done < end && !idle)
    return false;
  if (done < end)
    wr_log_warn(NULL,
                "consumer %s: replay of stream %s ends after %d s without deliveries at "
                "offset %" PRId64 " (the end was %" PRId64 ")",
                c->queue, c->stream, STREAM_IDLE_MS / 1000, done, end);
  else
    wr_log_info(NULL, "consumer %s: replay of stream %s finished at offset %" PRId64, c->queue,
                c->stream, done);
  __atomic_store_n(&c->finished, 1, __ATOMIC_RELAXED);
  return true;
}

static int run_setup(wr_consumer *c) {
  wr_err e;
  wr_err_clear(&e);
  int rc = build_topology(c, &e);
  if (rc < 0) {
    wr_log_error(NULL, "consumer %s: %s", c->queue, e.msg);
    return rc;
  }
  for (unsigned attempt = 0; !c->db && !c->stop; attempt++) {
    wr_err_clear(&e);
    rc = db_open(c, &e);
    if (rc == 0)
      break;
    if (c->migrated || wr_db_broken(c->db) || !e.sqlstate[0] || strncmp(e.sqlstate, "08", 2) == 0 ||
        strncmp(e.sqlstate, "57", 2) == 0) {
      if (attempt == 0)
        wr_log_error(NULL, "consumer %s: database unavailable, retrying: %s", c->queue, e.msg);
      wr_sleep_ms(wr_backoff_ms(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS), &c->stop);
      continue;
    }
    wr_log_error(NULL, "consumer %s: cannot prepare the database: %s", c->queue, e.msg);
    return rc;
  }
  if (c->stop)
    return 0;
  if (c->stream && (rc = replay_setup(c)) != 0)
    return rc;
  if (c->stop || __atomic_load_n(&c->finished, __ATOMIC_RELAXED))
    return 0;
  if (!wr_conn_is_open(c->conn) || !c->consuming) {
    wr_err_clear(&e);
    rc = amqp_ready(c, true, false, &e);
    if (rc < 0 && fatal_open_error(&e, rc)) {
      wr_log_error(NULL, "consumer %s: %s", c->queue, e.msg);
      return rc;
    }
  }
  return 0;
}

int wr_consumer_run(wr_consumer *c) {
  if (!c)
    return WR_EINVAL;
  int rc = run_setup(c);
  if (rc < 0)
    return rc;
  int result = 0;
  while (!c->stop && !__atomic_load_n(&c->finished, __ATOMIC_RELAXED)) {
    wr_err e;
    wr_err_clear(&e);
    if (!wr_conn_is_open(c->conn) || !c->consuming) {
      __atomic_store_n(&c->link_up, 0, __ATOMIC_RELAXED);
      if (amqp_ready(c, true, true, &e) < 0) {
        if (c->stop)
          break;
        if (!c->consuming && wr_conn_is_open(c->conn))
          wr_conn_close(c->conn); /* consume refused: start over */
        wr_sleep_ms(wr_backoff_ms(0, BACKOFF_BASE_MS, BACKOFF_MAX_MS), &c->stop);
        continue;
      }
    }
    if (!c->db || wr_db_broken(c->db)) {
      __atomic_store_n(&c->link_up, 0, __ATOMIC_RELAXED);
      wr_err_set(&e, WR_EDB, "connection lost");
      if (db_recover(c, &e, true) < 0)
        break;
      db_ok(c);
    }
    __atomic_store_n(&c->link_up, 1, __ATOMIC_RELAXED);
    cleanup_inbox(c);
    refresh_lag(c);
    rebalance(c);
    rc = collect(c);
    if (rc > 0) {
      if (c->acquired) {
        c->acquired = false;
        pause_ms(c, HANDOVER_GRACE_MS);
      }
      process_batch(c);
    }
    if (rc >= 0 && c->stream && replay_over(c, &result))
      break;
    if (rc < 0 && rc != WR_ETIMEDOUT) {
      if (rc == WR_ESTOPPED)
        c->consuming = false; /* wr_conn dropped the consumer: start it again */
      if (wr_conn_is_open(c->conn)) {
        /* The consumer was cancelled (queue deleted) or the channel failed: reconnect
         * from scratch, which declares the topology again. */
        wr_log_warn(NULL, "consumer %s: delivery failed (%s), reconnecting", c->queue,
                    wr_strerror(rc));
        wr_conn_close(c->conn);
      }
    }
  }
  __atomic_store_n(&c->link_up, 0, __ATOMIC_RELAXED);
  batch_clear(c);
  wr_conn_close(c->conn);
  db_close(c);
  return result;
}

static void *thread_main(void *arg) {
  wr_consumer *c = arg;
  c->thread_rc = wr_consumer_run(c);
  return NULL;
}

int wr_consumer_start(wr_consumer *c) {
  if (!c)
    return WR_EINVAL;
  if (c->thread_started)
    return WR_ESTATE;
  c->stop = 0;
  if (pthread_create(&c->thread, NULL, thread_main, c) != 0)
    return WR_ENOMEM;
  c->thread_started = true;
  return 0;
}

void wr_consumer_stop(wr_consumer *c) {
  if (c)
    c->stop = 1;
}

int wr_consumer_join(wr_consumer *c) {
  if (!c || !c->thread_started)
    return WR_ESTATE;
  pthread_join(c->thread, NULL);
  c->thread_started = false;
  return c->thread_rc;
}

void wr_consumer_free(wr_consumer *c) {
  if (!c)
    return;
  if (c->thread_started) {
    wr_consumer_stop(c);
    wr_consumer_join(c);
  }
  batch_clear(c);
  wr_conn_free(c->conn);
  wr_conn_free(c->probe);
  db_close(c);
  wr_topology_free(c->topo);
  free_fields(c);
  free(c);
}

void wr_consumer_stats_get(const wr_consumer *c, wr_consumer_stats *out) {
  if (!out)
    return;
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  out->applied = __atomic_load_n(&c->st.applied, __ATOMIC_RELAXED);
  out->duplicates = __atomic_load_n(&c->st.duplicates, __ATOMIC_RELAXED);
  out->stale = __atomic_load_n(&c->st.stale, __ATOMIC_RELAXED);
  out->retried = __atomic_load_n(&c->st.retried, __ATOMIC_RELAXED);
  out->dead_lettered = __atomic_load_n(&c->st.dead_lettered, __ATOMIC_RELAXED);
  out->skipped = __atomic_load_n(&c->st.skipped, __ATOMIC_RELAXED);
  out->batches = __atomic_load_n(&c->st.batches, __ATOMIC_RELAXED);
  out->batch_fallbacks = __atomic_load_n(&c->st.fallbacks, __ATOMIC_RELAXED);
  out->reconnects = __atomic_load_n(&c->st.reconnects, __ATOMIC_RELAXED);
  out->guard_conflicts = __atomic_load_n(&c->st.guard_conflicts, __ATOMIC_RELAXED);
  out->txn_reruns = __atomic_load_n(&c->st.txn_reruns, __ATOMIC_RELAXED);
  out->connected = __atomic_load_n(&c->link_up, __ATOMIC_RELAXED) != 0;
  out->partitions_active = __atomic_load_n(&c->parts_active, __ATOMIC_RELAXED);
  out->handovers = __atomic_load_n(&c->handovers, __ATOMIC_RELAXED);
  out->stream_offset = __atomic_load_n(&c->stream_done, __ATOMIC_RELAXED);
  out->stream_end = __atomic_load_n(&c->stream_end, __ATOMIC_RELAXED);
  out->finished = __atomic_load_n(&c->finished, __ATOMIC_RELAXED) != 0;
}

void wr__consumer_set_hook(wr_consumer *c, wr__consumer_hook_fn fn, void *user) {
  if (!c)
    return;
  c->hook = fn;
  c->hook_user = user;
}

wr_conn *wr__consumer_conn(wr_consumer *c) {
  return c ? c->conn : NULL;
}
