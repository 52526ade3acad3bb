/* warren/event.h: generic access to an event message's metadata (field 1, a
 * warren.v1.EventMeta) and its validation. Used by the outbox on the way out and by
 * the consumer on the way in; also by tools. */
#ifndef WARREN_EVENT_H
#define WARREN_EVENT_H

#include <warren/common.h>
#include <warren/error.h>
#include <warren/schema.h>
#include "warren/v1/options.pb-c.h"

WR_BEGIN_DECLS

typedef Warren__V1__EventMeta wr_meta;

/* Limits applied to incoming events (see wr_event_decode / wr_event_validate). */
#define WR_EVENT_MAX_DEPTH        64  /* message nesting, the event itself is level 1 */
#define WR_EVENT_AGGREGATE_ID_MAX 256 /* bytes */

/* The meta field of an event message: field number 1 when it is a singular
 * warren.v1.EventMeta message field (checked on the descriptor, not assumed from the
 * layout) that is set. NULL otherwise, or if ev is NULL. Borrowed from `ev` (valid
 * while ev lives). Cannot fail. */
WR_EXPORT wr_meta *wr_event_meta(const ProtobufCMessage *ev);

/* Validates an incoming event's meta against the type it was decoded as: meta present,
 * event_id a UUID, event_type equal to t->type, aggregate_type equal to
 * t->aggregate_type, aggregate_id non-empty (<= WR_EVENT_AGGREGATE_ID_MAX bytes),
 * version in 1..2^63-1 (stored as a PostgreSQL bigint), occurred_at set and a valid
 * Timestamp (years 1-9999, nanos 0..999999999), and every meta string valid UTF-8.
 * Returns 0, WR_EMETA with the reason in err (untrusted values are quoted printable
 * and cut short), or WR_EINVAL if t or ev is NULL or ev is not a t->descriptor message
 * (a caller bug). Reads only. */
WR_EXPORT int wr_event_validate(const wr_event_type *t, const ProtobufCMessage *ev, wr_err *err);

/* Decodes `len` bytes as an event of type t (protobuf-c unpack + wr_event_validate).
 * On success *out is owned by the caller: free with wr_event_free(). On failure *out is
 * NULL, nothing is leaked, and the result is:
 * - WR_ETOOBIG: len above max_size (0 = no limit), checked before any parsing;
 * - WR_EDECODE: not protobuf of that type: truncated or malformed tags, varints or
 *   length prefixes, wrong wire types, groups, submessages nested deeper than
 *   WR_EVENT_MAX_DEPTH (checked by an iterative scan before protobuf-c, whose unpack
 *   recurses without limit), a string field that is not valid UTF-8 or holds a NUL
 *   byte (protobuf-c's char * would silently cut it short), a missing proto2 required
 *   field;
 * - WR_EMETA: decoded, but the meta fails wr_event_validate;
 * - WR_ENOMEM; WR_EINVAL for a NULL t, t->descriptor or out, or NULL data with len > 0.
 * Unknown fields are accepted (forward compatibility: a newer producer may add
 * fields) and kept in the message's unknown_fields, so re-packing preserves them.
 * Empty input is a valid empty message, hence WR_EMETA (meta missing). */
WR_EXPORT int wr_event_decode(const wr_event_type *t, const void *data, size_t len, size_t max_size,
                              ProtobufCMessage **out, wr_err *err);

/* Frees a message returned by wr_event_decode (NULL allowed). */
WR_EXPORT void wr_event_free(ProtobufCMessage *ev);

WR_END_DECLS

#endif
