/* consumer_internal.h: test seams of the consumer (not part of the public API).
 *
 * Tests need to stop a consumer at an exact point of its cycle, e.g. right after the
 * database commit and before the broker ack, to prove that a crash there is harmless.
 * The hook is called on the consumer's thread; it may close the consumer's broker
 * connection (wr__consumer_conn + wr_conn_close) or end the process (_exit). The
 * symbols are exported so that tests link against a shared libwarren too. */
#ifndef WARREN_CONSUMER_INTERNAL_H
#define WARREN_CONSUMER_INTERNAL_H

#include <warren/consumer.h>

WR_BEGIN_DECLS

typedef enum wr__consumer_point {
  /* The batch's database work is committed; copies not yet published, nothing acked. */
  WR__CONSUMER_AFTER_COMMIT = 1,
  /* Copies are confirmed; the acks are about to be sent. */
  WR__CONSUMER_BEFORE_ACK = 2,
} wr__consumer_point;

typedef void (*wr__consumer_hook_fn)(wr_consumer *c, wr__consumer_point point, void *user);

/* Installs (or with fn = NULL removes) the hook. Call before wr_consumer_start. */
WR_EXPORT void wr__consumer_set_hook(wr_consumer *c, wr__consumer_hook_fn fn, void *user);

/* The consumer's broker connection. Borrowed; only for use on the consumer's thread
 * (inside the hook) or while it is not running. */
WR_EXPORT wr_conn *wr__consumer_conn(wr_consumer *c);

WR_END_DECLS

#endif
