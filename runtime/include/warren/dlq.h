/* warren/dlq.h: operating a dead-letter queue (used by `warren dlq`).
 *
 * Browsing takes every message with basic.get and returns them all to the queue by
 * closing the channel unacked, so listing never loses a message. Replay republishes a
 * message to its original exchange and routing key with confirms, and removes it from
 * the DLQ only after the broker acked the copy; the copy starts again at attempt 0
 * (x-warren-* and x-death headers stripped). Other consumer groups bound to the same
 * routing key receive the replay too and drop it as a duplicate by their inbox. */
#ifndef WARREN_DLQ_H
#define WARREN_DLQ_H

#include <warren/common.h>
#include <warren/conn.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_dlq_entry {
  uint64_t index;              /* position in the queue at browse time, from 0 */
  char message_id[80];         /* AMQP message_id = event_id ("" if none) */
  char type[160];              /* AMQP type = event type ("" if none) */
  char aggregate_type[64];
  char aggregate_id[160];
  char correlation_id[80];
  char error[512];             /* x-warren-error, or the x-death reason */
  char exchange[160];          /* original exchange */
  char routing_key[160];       /* original routing key */
  char queue[160];             /* queue it died in */
  unsigned attempts;           /* x-warren-attempts, else x-death count */
  int64_t failed_at_ms;        /* x-warren-failed-at or x-death time, Unix ms; 0 if unknown */
  const void *body;            /* borrowed: valid during the callback */
  size_t body_len;
  const amqp_basic_properties_t *props; /* borrowed: valid during the callback */
} wr_dlq_entry;

/* Return 0 to continue, non-zero to stop browsing. */
typedef int (*wr_dlq_fn)(const wr_dlq_entry *e, void *user);

/* Calls fn for each message in the DLQ (at most `limit`, 0 = all). Returns 0,
 * WR_ENOTFOUND (no such queue), or a broker error. */
WR_EXPORT int wr_dlq_browse(wr_conn *c, const char *dlq, size_t limit, wr_dlq_fn fn,
                            void *user, wr_err *err);

/* Selects messages for replay/purge: all, by message ids, or by type. */
typedef struct wr_dlq_filter {
  bool all;
  const char *const *ids;   /* message ids (event ids), NULL-terminated, or NULL */
  const char *type;         /* event type, or NULL */
} wr_dlq_filter;

/* Replays the selected messages (see above). *replayed (may be NULL) counts the
 * messages acked by the broker and removed from the DLQ. Messages not selected stay.
 * Returns 0, or the first failure (messages not yet replayed stay in the DLQ). */
WR_EXPORT int wr_dlq_replay(wr_conn *c, const char *dlq, const wr_dlq_filter *f,
                            size_t *replayed, wr_err *err);

/* Removes the selected messages (all: queue.purge). *removed may be NULL. */
WR_EXPORT int wr_dlq_purge(wr_conn *c, const char *dlq, const wr_dlq_filter *f, size_t *removed,
                           wr_err *err);

WR_END_DECLS

#endif
