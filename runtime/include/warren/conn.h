/* warren/conn.h: one AMQP 0-9-1 connection (rabbitmq-c 0.11) that recovers.
 *
 * A wr_conn belongs to one thread (rabbitmq-c is not thread-safe). It knows a list of
 * broker URLs (cluster failover: each reconnect tries the next), speaks TLS for
 * amqps:// (CA file + peer verification), sends heartbeats, advertises the
 * connection.blocked and consumer_cancel_notify capabilities, and after every
 * (re)connect replays what was set up on it: confirm mode, qos, topology (via
 * on-open hooks) and consumers. Nothing is restored silently wrong: if a hook fails,
 * the open fails.
 *
 * Publishing uses publisher confirms and `mandatory`: every publish gets a sequence
 * number, and wr_conn_wait_confirms() settles them as acked, nacked, or returned
 * (unroutable). A message not settled when the connection drops is reported as
 * WR_ECLOSED: the caller publishes it again. */
#ifndef WARREN_CONN_H
#define WARREN_CONN_H

#include <amqp.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_conn_opts {
  const char *urls;             /* "amqp://u:p@h:5672/vhost,amqps://..." (required) */
  const char *cacert;           /* PEM CA file for amqps:// (required for amqps) */
  const char *client_cert;      /* optional client certificate (PEM) */
  const char *client_key;       /* optional client key (PEM) */
  bool verify_hostname;         /* check the server name against the certificate */
  unsigned heartbeat_s;         /* 0 disables heartbeats (dead peers go unnoticed) */
  unsigned connect_timeout_ms;  /* TCP + TLS + login */
  unsigned rpc_timeout_ms;      /* any synchronous broker call; guards blocked sockets */
  unsigned backoff_base_ms;     /* reconnect backoff: base ... */
  unsigned backoff_max_ms;      /* ... capped, with jitter */
  const char *connection_name;  /* shown in the management UI (may be NULL) */
} wr_conn_opts;

#define WR_CONN_OPTS_INIT                                                              \
  {                                                                                    \
    .urls = NULL, .cacert = NULL, .client_cert = NULL, .client_key = NULL,             \
    .verify_hostname = true, .heartbeat_s = 30, .connect_timeout_ms = 5000,            \
    .rpc_timeout_ms = 15000, .backoff_base_ms = 200, .backoff_max_ms = 10000,          \
    .connection_name = NULL                                                            \
  }

typedef struct wr_conn wr_conn;

/* Validates and copies opts (strings are copied) and parses every URL; does not
 * connect. Returns 0, WR_EURL (with the offending URL, redacted, in err), WR_EINVAL,
 * WR_ENOMEM. *out is owned by the caller: wr_conn_free(). */
WR_EXPORT int wr_conn_new(const wr_conn_opts *opts, wr_conn **out, wr_err *err);

/* Closes (politely if possible) and frees. NULL allowed. */
WR_EXPORT void wr_conn_free(wr_conn *c);

/* Called after every successful open, in registration order, with the fresh
 * connection: declare topology, set qos, start consumers. Return 0 or a WR_E* code
 * (the open then fails and the connection is closed). */
typedef int (*wr_conn_open_fn)(wr_conn *c, void *user, wr_err *err);
WR_EXPORT int wr_conn_on_open(wr_conn *c, wr_conn_open_fn fn, void *user);

/* Opens a connection to the next URL of the list (one attempt per URL, in rotation
 * starting after the last one used), opens the channel, applies confirm mode and
 * qos if requested before, and runs the on-open hooks. Returns 0 or the last
 * failure (WR_ECLOSED, WR_ETIMEDOUT, WR_EAUTH, WR_ETLS, WR_EAMQP...). */
WR_EXPORT int wr_conn_open(wr_conn *c, wr_err *err);

/* Closes the current connection (if any) and opens again, retrying with capped
 * exponential backoff and jitter until it succeeds or *stop becomes non-zero
 * (WR_ESTOPPED). stop may be NULL (retries forever). */
WR_EXPORT int wr_conn_reconnect(wr_conn *c, const volatile int *stop, wr_err *err);

/* Closes the current connection; the wr_conn can be opened again. */
WR_EXPORT void wr_conn_close(wr_conn *c);

/* True while a connection is open and no fatal error has been seen on it. */
WR_EXPORT bool wr_conn_is_open(const wr_conn *c);

/* True while the broker has blocked the connection (resource alarm). Publishing then
 * fails fast with WR_EBLOCKED instead of hanging. */
WR_EXPORT bool wr_conn_is_blocked(const wr_conn *c);

/* The URL (redacted) of the current or last connection. Borrowed; valid until the
 * next open. */
WR_EXPORT const char *wr_conn_url(const wr_conn *c);

/* The rabbitmq-c state and the channel warren uses (1), for direct calls. Borrowed;
 * invalid after the next reconnect. */
WR_EXPORT amqp_connection_state_t wr_conn_amqp(wr_conn *c);
WR_EXPORT amqp_channel_t wr_conn_channel(const wr_conn *c);

/* Turns an rpc reply into 0 or a WR_E* code, filling err with the broker's verdict
 * (reply code and text). A channel close reopens the channel (and re-applies
 * confirm/qos) so the connection stays usable; a connection close marks it closed.
 * `what` names the operation for the message. */
WR_EXPORT int wr_conn_check_reply(wr_conn *c, amqp_rpc_reply_t r, const char *what, wr_err *err);

/* ---- topology primitives (idempotent declarations) ------------------------------ */

typedef struct wr_exchange_decl {
  const char *name;
  const char *type;           /* "topic", "direct", "fanout", "x-consistent-hash" */
  bool durable;
  amqp_table_t arguments;     /* may be empty */
} wr_exchange_decl;

typedef struct wr_queue_decl {
  const char *name;
  bool durable;
  bool exclusive;
  bool auto_delete;
  amqp_table_t arguments;     /* x-queue-type, x-dead-letter-exchange, ... */
} wr_queue_decl;

WR_EXPORT int wr_conn_declare_exchange(wr_conn *c, const wr_exchange_decl *d, wr_err *err);
/* *message_count / *consumer_count may be NULL. passive=true only checks existence
 * (WR_ENOTFOUND if missing; the channel is reopened). */
WR_EXPORT int wr_conn_declare_queue(wr_conn *c, const wr_queue_decl *d, bool passive,
                                    uint32_t *message_count, uint32_t *consumer_count,
                                    wr_err *err);
WR_EXPORT int wr_conn_bind_queue(wr_conn *c, const char *queue, const char *exchange,
                                 const char *routing_key, amqp_table_t arguments, wr_err *err);
WR_EXPORT int wr_conn_delete_queue(wr_conn *c, const char *queue, wr_err *err);
WR_EXPORT int wr_conn_purge_queue(wr_conn *c, const char *queue, uint32_t *purged, wr_err *err);

/* ---- publishing with confirms ---------------------------------------------------- */

/* Puts the channel in confirm mode (re-applied after every reconnect). */
WR_EXPORT int wr_conn_confirm_mode(wr_conn *c, wr_err *err);

typedef struct wr_publish {
  const char *exchange;                  /* "" = default exchange */
  const char *routing_key;
  const void *body;
  size_t len;
  const amqp_basic_properties_t *props;  /* may be NULL; message_id should be set so
                                            that returns can be matched */
  bool mandatory;
} wr_publish;

/* Sends one basic.publish (does not wait). On success *seq (may be NULL) is the
 * confirm sequence number of this message on this connection. Returns 0,
 * WR_EBLOCKED (connection blocked: nothing was sent), WR_ECLOSED, WR_EINVAL (not in
 * confirm mode). */
WR_EXPORT int wr_conn_publish(wr_conn *c, const wr_publish *p, uint64_t *seq, wr_err *err);

/* Settles one published message: status is 0 (acked), WR_ENACK, WR_ERETURNED, or
 * WR_ECLOSED (connection lost before the broker answered). */
typedef void (*wr_confirm_fn)(wr_conn *c, uint64_t seq, int status, void *user);

/* Reads broker frames until every sequence number <= upto is settled or timeout_ms
 * passes, calling fn once per settled message (in no particular order). Deliveries
 * for consumers on this connection that arrive meanwhile are kept for
 * wr_conn_next_delivery(). Returns 0, WR_ETIMEDOUT (some still unsettled), or
 * WR_ECLOSED (connection lost: every unsettled message was reported WR_ECLOSED). */
WR_EXPORT int wr_conn_wait_confirms(wr_conn *c, uint64_t upto, unsigned timeout_ms,
                                    wr_confirm_fn fn, void *user, wr_err *err);

/* Number of published messages not yet settled. */
WR_EXPORT size_t wr_conn_unconfirmed(const wr_conn *c);

/* ---- consuming ------------------------------------------------------------------- */

/* basic.qos(prefetch) + basic.consume on queue (re-applied after every reconnect).
 * Several queues may be consumed on one connection. */
WR_EXPORT int wr_conn_consume(wr_conn *c, const char *queue, uint16_t prefetch,
                              bool exclusive, amqp_table_t arguments, wr_err *err);

/* Waits up to timeout_ms for the next delivery. On 0, *env is filled and must be
 * released with amqp_destroy_envelope(). Returns WR_ETIMEDOUT when nothing arrived,
 * WR_ECLOSED when the connection died (reconnect), WR_ESTOPPED when the broker
 * cancelled the consumer (queue deleted) and it could not be restarted. Handles
 * confirms, returns, channel closes, connection.blocked/unblocked and heartbeats
 * that arrive in between. */
WR_EXPORT int wr_conn_next_delivery(wr_conn *c, unsigned timeout_ms, amqp_envelope_t *env,
                                    wr_err *err);

/* basic.ack (multiple = everything up to tag) / basic.reject (requeue or not). A tag
 * from before the last reconnect is ignored and returns WR_ESTATE (the broker has
 * already requeued that message). */
WR_EXPORT int wr_conn_ack(wr_conn *c, uint64_t delivery_tag, bool multiple, wr_err *err);
WR_EXPORT int wr_conn_reject(wr_conn *c, uint64_t delivery_tag, bool requeue, wr_err *err);

/* The connection generation: incremented by every successful open. Delivery tags are
 * valid only within one generation. */
WR_EXPORT uint64_t wr_conn_generation(const wr_conn *c);

/* basic.get one message (no_ack=false) for tools. Returns 0 with *env filled, or
 * WR_ENOTFOUND when the queue is empty. */
WR_EXPORT int wr_conn_get(wr_conn *c, const char *queue, amqp_envelope_t *env, wr_err *err);

/* ---- amqp_table helpers ---------------------------------------------------------- */

/* Looks up a header. Returns NULL when absent. Borrowed from the table. */
WR_EXPORT const amqp_field_value_t *wr_table_get(const amqp_table_t *t, const char *key);
/* Integer value of any AMQP integer kind; false if absent or not an integer. */
WR_EXPORT bool wr_table_get_int(const amqp_table_t *t, const char *key, int64_t *out);
/* String value (bytes kind) copied into out (NUL-terminated, truncated); false if absent. */
WR_EXPORT bool wr_table_get_str(const amqp_table_t *t, const char *key, char *out, size_t outsz);

WR_END_DECLS

#endif
