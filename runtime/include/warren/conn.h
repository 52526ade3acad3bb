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
 * WR_ECLOSED: the caller publishes it again.
 *
 * Numbers that survive reconnects: confirm sequence numbers and delivery tags handed
 * out by warren grow over the whole life of the wr_conn (the broker's restart at 1 on
 * every new channel is hidden). A number is therefore never reused, and a delivery tag
 * from before a reconnect is recognised (WR_ESTATE) instead of acking another message.
 * Use warren's tags only with wr_conn_ack/wr_conn_reject, never with amqp_basic_ack.
 *
 * Nothing blocks forever: connect and login are bounded by connect_timeout_ms, every
 * rpc by rpc_timeout_ms, and sends or content reads that rabbitmq-c 0.11 would do
 * without a deadline (publish, ack, a broker that stops reading under a resource alarm)
 * are cut by a per-connection watchdog thread after rpc_timeout_ms: the socket is shut
 * down, the call returns WR_ETIMEDOUT and the connection is closed.
 *
 * Heartbeats and everything else the broker sends are handled only inside warren's
 * calls. A thread that is busy elsewhere for longer than heartbeat_s/2 should call
 * wr_conn_service() now and then. */
#ifndef WARREN_CONN_H
#define WARREN_CONN_H

#include <amqp.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_conn_opts {
  const char *urls;            /* "amqp://u:p@h:5672/vhost,amqps://..." (required);
                                  no path, "/" or "/%2f" = the default vhost "/" */
  const char *cacert;          /* PEM CA file for amqps:// (required for amqps) */
  const char *client_cert;     /* optional client certificate (PEM) */
  const char *client_key;      /* optional client key (PEM) */
  bool verify_hostname;        /* check the server name against the certificate */
  unsigned heartbeat_s;        /* 0 disables heartbeats (dead peers go unnoticed) */
  unsigned connect_timeout_ms; /* TCP + TLS + login */
  unsigned rpc_timeout_ms;     /* any synchronous broker call; guards blocked sockets */
  unsigned backoff_base_ms;    /* reconnect backoff: base ... */
  unsigned backoff_max_ms;     /* ... capped, with jitter */
  const char *connection_name; /* shown in the management UI (may be NULL) */
} wr_conn_opts;

#define WR_CONN_OPTS_INIT                                                                          \
  {                                                                                                \
    .urls = NULL, .cacert = NULL, .client_cert = NULL, .client_key = NULL,                         \
    .verify_hostname = true, .heartbeat_s = 30, .connect_timeout_ms = 5000,                        \
    .rpc_timeout_ms = 15000, .backoff_base_ms = 200, .backoff_max_ms = 10000,                      \
    .connection_name = NULL                                                                        \
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
 * starting after the last one used), opens the channel, applies confirm mode if
 * requested before, runs the on-open hooks, then (re)starts the consumers registered
 * with wr_conn_consume that a hook did not start itself. A connection that is open is
 * closed first. Returns 0 or the last failure: WR_EIO (refused, unresolvable),
 * WR_ETIMEDOUT, WR_EAUTH (credentials or vhost refused), WR_ETLS (handshake or
 * certificate verification), WR_ECLOSED, WR_EAMQP, or a hook's code. A consumer whose
 * queue no longer exists does not fail the open: it is dropped and reported by
 * wr_conn_next_delivery (WR_ESTOPPED). */
WR_EXPORT int wr_conn_open(wr_conn *c, wr_err *err);

/* Closes the current connection (if any) and opens again, retrying with capped
 * exponential backoff and jitter until it succeeds or *stop becomes non-zero
 * (WR_ESTOPPED). stop may be NULL (retries forever). */
WR_EXPORT int wr_conn_reconnect(wr_conn *c, const volatile int *stop, wr_err *err);

/* Closes the current connection; the wr_conn can be opened again. */
WR_EXPORT void wr_conn_close(wr_conn *c);

/* True while a connection is open and no fatal error has been seen on it. */
WR_EXPORT bool wr_conn_is_open(const wr_conn *c);

/* Handles whatever the broker has sent, without waiting: confirms (kept for
 * wr_conn_wait_confirms), returns, connection.blocked/unblocked, channel and
 * connection closes, consumer cancels; sends a heartbeat if one is due. Deliveries are
 * buffered for wr_conn_next_delivery. On return nothing is left in rabbitmq-c's (or
 * OpenSSL's) buffers, so a caller may then poll() the socket
 * (amqp_get_sockfd(wr_conn_amqp(c))) to sleep until the broker sends more. Returns 0,
 * WR_ECLOSED (connection lost), or a channel-close verdict (see
 * wr_conn_check_reply). */
WR_EXPORT int wr_conn_service(wr_conn *c, wr_err *err);

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
  const char *type; /* "topic", "direct", "fanout", "x-consistent-hash" */
  bool durable;
  amqp_table_t arguments; /* may be empty */
} wr_exchange_decl;

typedef struct wr_queue_decl {
  const char *name;
  bool durable;
  bool exclusive;
  bool auto_delete;
  amqp_table_t arguments; /* x-queue-type, x-dead-letter-exchange, ... */
} wr_queue_decl;

WR_EXPORT int wr_conn_declare_exchange(wr_conn *c, const wr_exchange_decl *d, wr_err *err);
/* *message_count / *consumer_count may be NULL. passive=true only checks existence
 * (WR_ENOTFOUND if missing); it runs on a side channel, so a missing queue costs
 * channel 1 nothing. Non-passive declares, binds, deletes and purges run on channel 1:
 * a broker refusal (406 PRECONDITION_FAILED, 404...) closes it, warren reopens it
 * (see wr_conn_check_reply) and returns WR_EAMQP / WR_ENOTFOUND / WR_EAUTH (403) with
 * err->amqp_reply and the broker's text. */
WR_EXPORT int wr_conn_declare_queue(wr_conn *c, const wr_queue_decl *d, bool passive,
                                    uint32_t *message_count, uint32_t *consumer_count, wr_err *err);
WR_EXPORT int wr_conn_bind_queue(wr_conn *c, const char *queue, const char *exchange,
                                 const char *routing_key, amqp_table_t arguments, wr_err *err);
/* Exchange-to-exchange binding: messages routed by source with routing_key also go
 * to destination (which routes them again by its own type). Same failure rules as
 * wr_conn_bind_queue (404 for a missing exchange). */
WR_EXPORT int wr_conn_bind_exchange(wr_conn *c, const char *destination, const char *source,
                                    const char *routing_key, amqp_table_t arguments, wr_err *err);
WR_EXPORT int wr_conn_delete_queue(wr_conn *c, const char *queue, wr_err *err);
WR_EXPORT int wr_conn_purge_queue(wr_conn *c, const char *queue, uint32_t *purged, wr_err *err);

/* ---- publishing with confirms ---------------------------------------------------- */

/* Puts the channel in confirm mode (re-applied after every reconnect and channel
 * reopen). Without an open connection it is only recorded and applied at the next
 * open. */
WR_EXPORT int wr_conn_confirm_mode(wr_conn *c, wr_err *err);

typedef struct wr_publish {
  const char *exchange; /* "" = default exchange */
  const char *routing_key;
  const void *body;
  size_t len;
  const amqp_basic_properties_t *props; /* may be NULL; message_id should be set so
                                           that returns can be matched */
  bool mandatory;
} wr_publish;

/* Sends one basic.publish (does not wait for the broker). Frames that have already
 * arrived are handled first, so a known connection.blocked fails fast. On success
 * *seq (may be NULL) is the confirm sequence number of this message: unique over the
 * life of c (not reset by reconnects), to be matched in the wr_confirm_fn. p and its
 * buffers are only read during the call. Returns 0, WR_EBLOCKED (connection blocked:
 * nothing was sent), WR_ECLOSED, WR_ETIMEDOUT (the broker stopped reading: connection
 * closed), WR_EINVAL (bad arguments, a property over 255 bytes, headers that cannot be
 * encoded, or not in confirm mode), WR_ETOOBIG (headers do not fit in one frame), or
 * the verdict of a broker channel close that the pre-read just found (caused by an
 * earlier message, e.g. WR_ENOTFOUND for a missing exchange; see
 * wr_conn_wait_confirms): the channel has been reopened and this message can be
 * published again at once. On failure no sequence number is consumed and nothing
 * will be reported for this message: publish it again (after a connection failure
 * the broker may have received it, so this is at-least-once). */
WR_EXPORT int wr_conn_publish(wr_conn *c, const wr_publish *p, uint64_t *seq, wr_err *err);

/* Settles one published message: status is 0 (acked), WR_ENACK, WR_ERETURNED, or
 * WR_ECLOSED (connection lost before the broker answered). */
typedef void (*wr_confirm_fn)(wr_conn *c, uint64_t seq, int status, void *user);

/* Reads broker frames until every sequence number <= upto is settled or timeout_ms
 * passes, calling fn (may be NULL) once per settled message (in no particular order),
 * including messages settled earlier while another call was reading and messages
 * above upto that happened to settle. fn may publish on c. Deliveries for consumers
 * on this connection that arrive meanwhile are kept for wr_conn_next_delivery().
 * Returns 0, WR_ETIMEDOUT (some still unsettled), WR_ECLOSED (connection lost: every
 * unsettled message was reported WR_ECLOSED), or the verdict of a broker channel
 * close (e.g. WR_ENOTFOUND, err->amqp_reply 404, after a publish to a missing
 * exchange): every message unsettled on the closed channel was reported WR_ECLOSED,
 * the channel has been reopened and the connection stays usable. Settled messages are
 * kept until reported: call this regularly when publishing. */
WR_EXPORT int wr_conn_wait_confirms(wr_conn *c, uint64_t upto, unsigned timeout_ms,
                                    wr_confirm_fn fn, void *user, wr_err *err);

/* Number of published messages not yet settled. */
WR_EXPORT size_t wr_conn_unconfirmed(const wr_conn *c);

/* ---- consuming ------------------------------------------------------------------- */

/* basic.qos(prefetch, per consumer) + basic.consume on queue (re-applied after every
 * reconnect and channel reopen). Several queues may be consumed on one connection.
 * The queue name and arguments are copied. Consuming a queue that is already consumed
 * on c with the same settings is a no-op (so an on-open hook may call it every time);
 * with other settings it is WR_ECONFLICT. Without an open connection the consumer is
 * only recorded and started at the next open. Returns 0, WR_ENOTFOUND (no such queue;
 * nothing recorded), WR_EAUTH (403, e.g. exclusive use), WR_EAMQP, WR_ECLOSED. */
WR_EXPORT int wr_conn_consume(wr_conn *c, const char *queue, uint16_t prefetch, bool exclusive,
                              amqp_table_t arguments, wr_err *err);
/* The consumer tag of a consumer started by wr_conn_consume is its queue name, so
 * env->consumer_tag of a delivery names the queue it came from (also for deliveries
 * still buffered after a wr_conn_cancel). */

/* basic.cancel of the consumer on queue (waiting for cancel-ok) and forgets it: later
 * reconnects do not restart it, and wr_conn_consume may start it again (with other
 * settings too). Deliveries it received before the cancel-ok stay buffered for
 * wr_conn_next_delivery and can still be acked. Without an open connection only the
 * record is dropped. Returns 0, WR_ENOTFOUND (queue not consumed on c), WR_EINVAL,
 * or a connection/channel failure (the consumer is forgotten in every case; a channel
 * close has reopened channel 1 without it). */
WR_EXPORT int wr_conn_cancel(wr_conn *c, const char *queue, wr_err *err);

/* Waits up to timeout_ms for the next delivery. On 0, *env is filled and owned by the
 * caller: release it with amqp_destroy_envelope(); env->delivery_tag is warren's (see
 * the top of this file). Returns WR_ETIMEDOUT when nothing arrived, WR_ECLOSED when
 * the connection died (reconnect), WR_ESTOPPED when the broker cancelled a consumer
 * (queue deleted) and it could not be restarted (the consumer is dropped; a cancelled
 * consumer whose queue still exists is restarted silently), or the verdict of a
 * broker channel close (WR_EAMQP/WR_ENOTFOUND, e.g. 406 after acking an unknown tag:
 * unacked deliveries are requeued by the broker, the channel and consumers are
 * restored, older tags become WR_ESTATE). Handles confirms, returns,
 * connection.blocked/unblocked and heartbeats that arrive in between. On failure *env
 * is zeroed. */
WR_EXPORT int wr_conn_next_delivery(wr_conn *c, unsigned timeout_ms, amqp_envelope_t *env,
                                    wr_err *err);

/* basic.ack (multiple = everything up to tag) / basic.reject (requeue or not). A tag
 * from before the last reconnect or channel reopen is ignored and returns WR_ESTATE
 * (the broker has already requeued that message); a tag never handed out is
 * WR_EINVAL. Acking one tag twice makes the broker close the channel (406), which the
 * next reading call reports. Returns 0, WR_ESTATE, WR_EINVAL, WR_ECLOSED,
 * WR_ETIMEDOUT (broker stopped reading: connection closed). */
WR_EXPORT int wr_conn_ack(wr_conn *c, uint64_t delivery_tag, bool multiple, wr_err *err);
WR_EXPORT int wr_conn_reject(wr_conn *c, uint64_t delivery_tag, bool requeue, wr_err *err);

/* The connection generation: incremented by every successful open and every reopen
 * of channel 1 (after a broker channel close). Delivery tags are valid only within
 * one generation. */
WR_EXPORT uint64_t wr_conn_generation(const wr_conn *c);

/* basic.get one message (no_ack=false) on channel 1 for tools. Returns 0 with *env
 * filled (owned by the caller, amqp_destroy_envelope; tag usable with wr_conn_ack /
 * wr_conn_reject), or WR_ENOTFOUND when the queue is empty (err->amqp_reply 0) or does
 * not exist (err->amqp_reply 404; channel 1 was reopened). */
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
