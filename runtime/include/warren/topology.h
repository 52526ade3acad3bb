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

WR_EXPORT int wr_topology_new(wr_topology **out);
WR_EXPORT void wr_topology_free(wr_topology *t); /* NULL allowed */

/* Adds a durable exchange ("topic", "direct", "fanout", "x-consistent-hash").
 * Adding the same name twice with the same type is a no-op; with another type it is
 * WR_ECONFLICT. Strings are copied. */
WR_EXPORT int wr_topology_exchange(wr_topology *t, const char *name, const char *type);

/* Queue arguments understood by the builder; zero/NULL means "not set". */
typedef struct wr_queue_args {
  wr_queue_type type;
  const char *dead_letter_exchange;
  const char *dead_letter_routing_key;
  int64_t message_ttl_ms;       /* x-message-ttl (integer) when > 0 */
  unsigned delivery_limit;      /* quorum x-delivery-limit when > 0 */
  bool single_active_consumer;  /* x-single-active-consumer */
  bool at_least_once_dlx;       /* quorum: x-dead-letter-strategy=at-least-once +
                                   x-overflow=reject-publish */
  const char *stream_max_age;   /* streams: x-max-age ("7D") */
  int64_t stream_max_bytes;     /* streams: x-max-length-bytes */
  bool stream;                  /* x-queue-type=stream (overrides type) */
} wr_queue_args;

/* Adds a durable queue. Same name twice: no-op if the arguments are equal, else
 * WR_ECONFLICT (RabbitMQ would refuse the second declaration with 406). */
WR_EXPORT int wr_topology_queue(wr_topology *t, const char *name, const wr_queue_args *args);

/* Adds a binding (duplicates are no-ops). */
WR_EXPORT int wr_topology_bind(wr_topology *t, const char *queue, const char *exchange,
                               const char *routing_key);

/* The standard consumer-group layout for `queue` with retry tiers:
 *   exchange <queue>.dlx (direct)  ->  queue <queue>.dlq (bound with key <queue>)
 *   queue <queue>.retry.<n> (x-message-ttl = delays_ms[n-1], DLX "" -> <queue>)
 *   queue <queue> (type, DLX <queue>.dlx, delivery limit)
 * Bindings of the work queue are added separately (wr_topology_bind). */
typedef struct wr_consumer_queue {
  const char *queue;
  wr_queue_type type;
  const unsigned *retry_delays_ms;
  size_t n_retry_delays;
  unsigned delivery_limit;  /* quorum only; 0 = none */
} wr_consumer_queue;
WR_EXPORT int wr_topology_consumer_queue(wr_topology *t, const wr_consumer_queue *q);

/* Names derived from a work queue, written into out (truncated to outsz). */
WR_EXPORT void wr_topology_dlx_name(const char *queue, char *out, size_t outsz);
WR_EXPORT void wr_topology_dlq_name(const char *queue, char *out, size_t outsz);
WR_EXPORT void wr_topology_retry_name(const char *queue, unsigned tier, char *out, size_t outsz);

/* Declares everything, in order. Returns 0 or the first failure (e.g. WR_EAMQP with
 * reply 406 PRECONDITION_FAILED when a queue exists with other arguments: the message
 * names the queue and says which declaration conflicts). */
WR_EXPORT int wr_topology_declare(const wr_topology *t, wr_conn *c, wr_err *err);

/* A deterministic human-readable listing, one declaration per line:
 *   exchange customer.events topic durable
 *   queue order.customer-sync quorum durable x-dead-letter-exchange=... x-delivery-limit=20
 *   bind order.customer-sync <- customer.events [customer.v1.CustomerCreated]
 * Returns a malloc'd string (caller frees) or NULL on ENOMEM. */
WR_EXPORT char *wr_topology_render(const wr_topology *t);

/* An on-open hook that declares `user` (a const wr_topology *) on every connect:
 *   wr_conn_on_open(conn, wr_topology_on_open, topo); */
WR_EXPORT int wr_topology_on_open(wr_conn *c, void *user, wr_err *err);

WR_END_DECLS

#endif
