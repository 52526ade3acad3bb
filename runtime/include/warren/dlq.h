/* warren/dlq.h: operating a dead-letter queue (used by `warren dlq`).
 *
 * Browsing takes every message with basic.get and returns them all to the queue by
 * closing the channel unacked, so listing never loses a message. Replay republishes a
 * message to its original exchange and routing key with confirms, and removes it from
 * the DLQ only after the broker acked the copy; the copy starts again at attempt 0
 * (x-warren-* and x-death headers stripped). Other consumer groups bound to the same
 * routing key receive the replay too and drop it as a duplicate by their inbox.
 *
 * All operations run on a side channel of c (never channel 1: a missing queue or
 * exchange costs c's consumers and unconfirmed messages nothing) and walk the queue
 * with basic.get, holding messages unacked until the end, when closing the channel
 * gives back everything not removed. On a quorum DLQ the order of the given-back
 * messages may rotate. A walk stops after as many messages as the queue held when it
 * started. One DLQ operation at a time per connection (a browse callback that starts
 * another one on the same c gets WR_ESTATE).
 *
 * Where a message goes back to: x-warren-original-exchange/-routing-key (set by the
 * consumer), else the oldest x-death entry that names an exchange other than a
 * "*.dlx", else the default exchange with the name of the queue it died in as routing
 * key (straight back to that consumer group). Headers are outside input: wrong kinds
 * are ignored, texts truncated and control characters replaced by '?'. */
#ifndef WARREN_DLQ_H
#define WARREN_DLQ_H

#include <warren/common.h>
#include <warren/conn.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_dlq_entry {
  uint64_t index;      /* position in the queue at browse time, from 0 */
  char message_id[80]; /* AMQP message_id = event_id ("" if none) */
  char type[160];      /* AMQP type = event type ("" if none) */
  char aggregate_type[64];
  char aggregate_id[160];
  char correlation_id[80];
  char error[512];       /* x-warren-error, or the newest x-death reason */
  char exchange[160];    /* where a replay goes (see above) */
  char routing_key[160]; /* its routing key */
  char queue[160];       /* queue it died in: "<q>" for "<q>.dlq", else x-death */
  unsigned attempts;     /* x-warren-attempts, else the newest x-death count */
  int64_t failed_at_ms;  /* x-warren-failed-at (integer ms, AMQP timestamp or RFC 3339)
                            or the newest x-death time, Unix ms; 0 if unknown */
  const void *body;      /* borrowed: valid during the callback */
  size_t body_len;
  const amqp_basic_properties_t *props; /* borrowed: valid during the callback */
} wr_dlq_entry;

/* Return 0 to continue, non-zero to stop browsing. */
typedef int (*wr_dlq_fn)(const wr_dlq_entry *e, void *user);

/* Calls fn for each message in the DLQ (at most `limit`, 0 = all); every message stays
 * in the queue. e and what it points to are valid during the call only. Returns 0,
 * WR_EINVAL, WR_ENOTFOUND (no such queue, err->amqp_reply 404), WR_ESTATE, or a
 * connection failure. */
WR_EXPORT int wr_dlq_browse(wr_conn *c, const char *dlq, size_t limit, wr_dlq_fn fn, void *user,
                            wr_err *err);

/* Selects messages for replay/purge: all, or by message ids and/or type (both given:
 * both must match). Selecting nothing (no field set) is WR_EINVAL. Borrowed for the
 * duration of the call. */
typedef struct wr_dlq_filter {
  bool all;
  const char *const *ids; /* message ids (event ids), NULL-terminated, or NULL */
  const char *type;       /* event type, or NULL */
} wr_dlq_filter;

/* Replays the selected messages (see above): each copy is published mandatory with
 * confirms (waiting up to the connection's rpc_timeout_ms) and the original is acked
 * only after the broker acked the copy. *replayed (may be NULL) counts the messages
 * moved. Messages not selected stay. Returns 0, or the first failure, which stops the
 * replay and leaves that message and all not yet replayed in the DLQ: WR_ERETURNED
 * (no queue bound for the original routing key), WR_ENACK, WR_ENOTFOUND (the DLQ or
 * the original exchange does not exist), WR_ETIMEDOUT, WR_EBLOCKED, WR_EINVAL (no
 * usable origin), connection failures. A crash between the copy's confirm and the
 * ack leaves the message in both places (the consumer's inbox absorbs the
 * duplicate). */
WR_EXPORT int wr_dlq_replay(wr_conn *c, const char *dlq, const wr_dlq_filter *f, size_t *replayed,
                            wr_err *err);

/* Removes the selected messages (all: queue.purge). *removed (may be NULL) counts
 * them. Returns 0, WR_EINVAL, WR_ENOTFOUND (no such queue), or a broker/connection
 * failure (what was removed before it stays removed). */
WR_EXPORT int wr_dlq_purge(wr_conn *c, const char *dlq, const wr_dlq_filter *f, size_t *removed,
                           wr_err *err);

WR_END_DECLS

#endif
