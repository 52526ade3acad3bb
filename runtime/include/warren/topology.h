/* warren/topology.h: what a service declares on the broker, as data.
 *
 * A wr_topology is an ordered list of exchanges, queues and bindings. It is built
 * from code (a consumer adds its work queue, retry tiers, DLX and DLQ; a publisher its
 * domain exchange), declared idempotently on every (re)connect, and rendered as text
 * for `warren topology`. Declaration order is the list order, and builders add
 * dead-letter targets before the queues that dead-letter into them (RabbitMQ silently
 * drops messages sent to a DLX that does not exist). */
#ifndef WARREN_TOPOLOGY_H
#define WARREN_TOPOLOGY_H

#include <warren/common.h>
#include <warren/conn.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef enum wr_queue_type {
  WR_QUEUE_QUORUM = 0, /* replicated, x-delivery-limit crash-loop guard (default) */
  WR_QUEUE_CLASSIC = 1,
} wr_queue_type;

typedef struct wr_topology wr_topology;

/* *out is owned by the caller (wr_topology_free). Returns 0, WR_EINVAL, WR_ENOMEM. */
WR_EXPORT int wr_topology_new(wr_topology **out);
WR_EXPORT void wr_topology_free(wr_topology *t); /* NULL allowed */

/* Names are 1..255 bytes without control characters; names starting with "amq." are
 * reserved by the broker and refused (WR_EINVAL) for exchanges and queues (binding to
 * amq.* exchanges is fine). On any failure nothing is added. */

/* Adds a durable exchange ("topic", "direct", "fanout", "headers",
 * "x-consistent-hash"; any other type is WR_EINVAL: an unknown type such as
 * x-delayed-message makes the broker close the whole connection). Adding the same name
 * twice with the same type is a no-op; with another type it is WR_ECONFLICT. Strings
 * are copied. Returns 0, WR_EINVAL, WR_ECONFLICT, WR_ENOMEM. */
WR_EXPORT int wr_topology_exchange(wr_topology *t, const char *name, const char *type);

/* Exchange arguments understood by the builder; zero/NULL means "not set". */
typedef struct wr_exchange_args {
  const char *hash_header; /* x-consistent-hash only: hash the value of this message
                              header instead of the routing key ("hash-header") */
} wr_exchange_args;

/* wr_topology_exchange with arguments (args may be NULL: none). The same name twice
 * is a no-op if type and arguments are equal, else WR_ECONFLICT. WR_EINVAL for a
 * hash_header on another type than x-consistent-hash, or one that is not a valid
 * name (1..255 bytes, no control characters). Strings are copied. */
WR_EXPORT int wr_topology_exchange_args(wr_topology *t, const char *name, const char *type,
                                        const wr_exchange_args *args);

/* Queue arguments understood by the builder; zero/NULL means "not set". */
typedef struct wr_queue_args {
  wr_queue_type type;
  const char *dead_letter_exchange;
  const char *dead_letter_routing_key;
  int64_t message_ttl_ms;      /* x-message-ttl (integer) when > 0 */
  unsigned delivery_limit;     /* quorum x-delivery-limit when > 0 */
  bool single_active_consumer; /* x-single-active-consumer */
  bool at_least_once_dlx;      /* quorum: x-dead-letter-strategy=at-least-once +
                                  x-overflow=reject-publish */
  const char *stream_max_age;  /* streams: x-max-age ("7D"; see
                                  wr_topology_max_age_valid) */
  int64_t stream_max_bytes;    /* streams: x-max-length-bytes */
  bool stream;                 /* x-queue-type=stream (overrides type) */
} wr_queue_args;

/* True if s is a stream retention age the broker accepts: a positive number followed
 * by one unit, Y (years), M (months), D (days), h, m or s ("7D", "12h"). The broker
 * refuses anything else when the stream is declared. Cannot fail. */
WR_EXPORT bool wr_topology_max_age_valid(const char *s);

/* Adds a durable queue. Same name twice: no-op if the arguments are equal, else
 * WR_ECONFLICT (RabbitMQ would refuse the second declaration with 406). Strings are
 * copied. NULL and "" differ for dead_letter_exchange ("" is the default exchange).
 * WR_EINVAL for combinations the broker would refuse or ignore: delivery_limit or
 * at_least_once_dlx on a classic queue, at_least_once_dlx without a DLX, a routing key
 * without a DLX, a TTL outside 0..2^32-1, DLX/TTL/delivery limit on a stream, stream
 * options on a non-stream, a stream_max_age that wr_topology_max_age_valid refuses. A classic queue
 * is declared without x-queue-type (the broker's default), so queues declared earlier without it
 * stay equivalent. */
WR_EXPORT int wr_topology_queue(wr_topology *t, const char *name, const wr_queue_args *args);

/* Adds a binding (duplicates are no-ops; routing_key NULL = ""). The queue and the
 * exchange must be declared earlier in the list or exist on the broker. */
WR_EXPORT int wr_topology_bind(wr_topology *t, const char *queue, const char *exchange,
                               const char *routing_key);

/* Adds an exchange-to-exchange binding: what `source` routes with routing_key also
 * goes to exchange `destination` (duplicates are no-ops; routing_key NULL = ""). Both
 * exchanges must be declared earlier in the list or exist on the broker. Returns 0,
 * WR_EINVAL, WR_ENOMEM. */
WR_EXPORT int wr_topology_bind_exchange(wr_topology *t, const char *destination, const char *source,
                                        const char *routing_key);

/* The standard consumer-group layout for `queue` with retry tiers, added in this
 * (declaration) order, every dead-letter target before the queue that dead-letters
 * into it:
 *   exchange <queue>.dlx (direct)
 *   queue <queue>.dlq (same type as the work queue, durable, no delivery limit so
 *     browsing it never drops anything)
 *   bind <queue>.dlq <- <queue>.dlx [<queue>]
 *   queue <queue> (type, DLX <queue>.dlx, DLX routing key <queue>, delivery limit)
 *   queue <queue>.retry.<n> (x-message-ttl = delays_ms[n-1] as an integer, DLX "" with
 *     routing key <queue>, i.e. back to the work queue)
 * Quorum work and retry queues also get x-dead-letter-strategy=at-least-once with
 * x-overflow=reject-publish (else the broker silently dead-letters at most once); for
 * classic queues delivery_limit is ignored. Bindings of the work queue are added
 * separately (wr_topology_bind). All or nothing: WR_EINVAL (empty/long names, a zero
 * delay, more than 100 tiers), WR_ECONFLICT (a clash with what t already holds),
 * WR_ENOMEM. */
typedef struct wr_consumer_queue {
  const char *queue;
  wr_queue_type type;
  const unsigned *retry_delays_ms;
  size_t n_retry_delays;
  unsigned delivery_limit; /* quorum only; 0 = none */
} wr_consumer_queue;
WR_EXPORT int wr_topology_consumer_queue(wr_topology *t, const wr_consumer_queue *q);

/* The partitioned consumer-group layout for group `queue`: events of one aggregate go
 * to one of n partition queues (consistent hash of the x-aggregate-id header that the
 * relay sets), and each partition queue has a single active consumer, so the events
 * of an aggregate are processed one at a time and in order while partitions are
 * processed in parallel by the instances of the group. Added in this (declaration)
 * order:
 *   exchange <queue>.dlx (direct)
 *   queue <queue>.dlq, bind <queue>.dlq <- <queue>.dlx [<queue>]  (one DLQ, shared)
 *   exchange <queue>.partitions (x-consistent-hash, hash-header=x-aggregate-id)
 *   queue <queue>.p<k> for k = 0..n-1 (type, DLX <queue>.dlx with routing key
 *     <queue>, delivery limit, x-single-active-consumer), each bound to
 *     <queue>.partitions with weight "1"
 *   queue <queue>.retry.<n> (x-message-ttl, DLX <queue>.partitions: a message comes
 *     back to the partition of its aggregate)
 *   queue <queue>.members (same type, no arguments, never holds messages): every
 *     instance of the group consumes it, so its consumer count is the number of live
 *     instances (the consumer uses it to spread partitions evenly)
 * Quorum queues get at-least-once dead-lettering as in wr_topology_consumer_queue.
 * The domain exchanges are bound to <queue>.partitions (wr_topology_bind_exchange) by
 * the caller. A message without the hash header is routed too (all of them to the
 * same partition). All or nothing: WR_EINVAL (empty/long names, partitions outside
 * 1..WR_PARTITIONS_MAX, a zero delay, more than 100 tiers), WR_ECONFLICT, WR_ENOMEM. */
#define WR_PARTITIONS_MAX        1024
#define WR_PARTITION_HASH_HEADER "x-aggregate-id"
typedef struct wr_partitioned_queue {
  const char *queue;   /* group name */
  unsigned partitions; /* n, 1..WR_PARTITIONS_MAX */
  wr_queue_type type;
  const unsigned *retry_delays_ms;
  size_t n_retry_delays;
  unsigned delivery_limit; /* quorum only; 0 = none */
} wr_partitioned_queue;
WR_EXPORT int wr_topology_partitioned_queue(wr_topology *t, const wr_partitioned_queue *q);

/* Names derived from a work queue, written into out (truncated to outsz). */
WR_EXPORT void wr_topology_dlx_name(const char *queue, char *out, size_t outsz);
WR_EXPORT void wr_topology_dlq_name(const char *queue, char *out, size_t outsz);
WR_EXPORT void wr_topology_retry_name(const char *queue, unsigned tier, char *out, size_t outsz);
/* Partitioned layout: <queue>.p<k>, <queue>.partitions, <queue>.members. */
WR_EXPORT void wr_topology_partition_name(const char *queue, unsigned k, char *out, size_t outsz);
WR_EXPORT void wr_topology_partition_exchange_name(const char *queue, char *out, size_t outsz);
WR_EXPORT void wr_topology_members_name(const char *queue, char *out, size_t outsz);

/* Declares everything, in order, on c's channel 1 (idempotent: declaring twice is
 * fine). Returns 0 or the first failure (e.g. WR_EAMQP with err->amqp_reply 406
 * PRECONDITION_FAILED when a queue exists with other arguments: the message holds the
 * broker's text, which names the queue and the inequivalent argument, and our
 * rendered declaration). After a broker refusal the channel is reopened and c stays
 * usable; what was declared before the failure stays declared. */
WR_EXPORT int wr_topology_declare(const wr_topology *t, wr_conn *c, wr_err *err);

/* A deterministic human-readable listing, one declaration per line (names and values
 * that are empty or contain spaces, quotes, '=', brackets or non-ASCII bytes are
 * "quoted" with \" \\ and \xNN escapes):
 *   exchange customer.events topic durable
 *   queue order.customer-sync quorum durable x-dead-letter-exchange=... x-delivery-limit=20
 *   bind order.customer-sync <- customer.events [customer.v1.CustomerCreated]
 *   bind-exchange order.customer-sync.partitions <- customer.events [customer.v1.CustomerCreated]
 * (an exchange with arguments lists them after "durable", e.g. hash-header=x-aggregate-id)
 * Returns a malloc'd string (caller frees) or NULL on ENOMEM. */
WR_EXPORT char *wr_topology_render(const wr_topology *t);

/* An on-open hook that declares `user` (a const wr_topology *) on every connect:
 *   wr_conn_on_open(conn, wr_topology_on_open, topo); */
WR_EXPORT int wr_topology_on_open(wr_conn *c, void *user, wr_err *err);

WR_END_DECLS

#endif
