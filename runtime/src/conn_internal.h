/* conn_internal.h: private hooks of conn.c for the other broker-side modules
 * (topology.c, dlq.c). Not installed; `wr__` prefix.
 *
 * Side channels: warren's own traffic (publishing with confirms, consumers, acks) runs
 * on channel 1 (WR__CONN_MAIN_CHANNEL). Tools that must be able to close a channel to
 * give messages back (DLQ browse) or that probe for queues use a side channel, so a
 * broker error there (404, 406) never closes channel 1 and never costs its consumers
 * or its unconfirmed messages. Frames for channel 1 that arrive while a side-channel
 * call waits are handled as usual (confirms settled, deliveries buffered). */
#ifndef WARREN_CONN_INTERNAL_H
#define WARREN_CONN_INTERNAL_H

#include <amqp.h>
#include <amqp_framing.h>

#include <warren/conn.h>

#define WR__CONN_MAIN_CHANNEL  ((amqp_channel_t)1)
#define WR__CONN_TOOL_CHANNEL  ((amqp_channel_t)2) /* dlq.c */
#define WR__CONN_PROBE_CHANNEL ((amqp_channel_t)3) /* conn.c: queue existence checks */

/* Opens side channel ch (2..7). Returns 0, WR_ESTATE (already open), or a WR_E* code
 * (err filled). */
int wr__conn_side_open(wr_conn *c, amqp_channel_t ch, wr_err *err);

/* Closes side channel ch politely if it is open (a no-op after the broker closed it
 * or the connection dropped); every unacked basic.get on it goes back to its queue.
 * Errors are ignored (a broken connection is marked closed). Cannot fail. */
void wr__conn_side_close(wr_conn *c, amqp_channel_t ch);

/* True while side channel ch is open (opened and not closed by either side). */
bool wr__conn_side_is_open(const wr_conn *c, amqp_channel_t ch);

/* Puts side channel ch in confirm mode. 0 or WR_E*. */
int wr__conn_side_confirm(wr_conn *c, amqp_channel_t ch, wr_err *err);

/* basic.get (no_ack=false) on side channel ch. On 0, *env is filled with the
 * broker's raw delivery tag (valid only on ch) and owned by the caller
 * (amqp_destroy_envelope); *remaining (may be NULL) is the broker's message count
 * after this one. WR_ENOTFOUND when the queue is empty; a missing queue is also
 * WR_ENOTFOUND with err->amqp_reply = 404 (the side channel is then closed). */
int wr__conn_side_get(wr_conn *c, amqp_channel_t ch, const char *queue, amqp_envelope_t *env,
                      uint32_t *remaining, wr_err *err);

/* Publishes one message on side channel ch (in confirm mode) and waits up to
 * timeout_ms for its verdict: 0 (acked), WR_ENACK, WR_ERETURNED (mandatory and
 * unroutable), WR_ETIMEDOUT, WR_EBLOCKED, or a channel/connection failure. */
int wr__conn_side_publish_confirmed(wr_conn *c, amqp_channel_t ch, const wr_publish *p,
                                    unsigned timeout_ms, wr_err *err);

/* basic.ack of a raw delivery tag on side channel ch. 0 or WR_E*. */
int wr__conn_side_ack(wr_conn *c, amqp_channel_t ch, uint64_t tag, bool multiple, wr_err *err);

/* Turns an rpc reply on side channel ch into 0 or a WR_E* code (same mapping as
 * wr_conn_check_reply; a channel.close on ch is acknowledged and leaves ch closed). */
int wr__conn_side_check(wr_conn *c, amqp_channel_t ch, amqp_rpc_reply_t r, const char *what,
                        wr_err *err);

/* The rpc timeout configured for c, in ms (DLQ replay waits this long for a confirm). */
unsigned wr__conn_rpc_timeout_ms(const wr_conn *c);

#endif
