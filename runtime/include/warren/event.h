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

/* The meta field of an event message (NULL if the event has none set). Borrowed from
 * `ev`. Cannot fail. */
WR_EXPORT wr_meta *wr_event_meta(const ProtobufCMessage *ev);

/* Validates an incoming event's meta against the type it was decoded as: meta present,
 * event_id a UUID, event_type equal to t->type, aggregate_type equal to
 * t->aggregate_type, aggregate_id non-empty (<= 256 bytes), version >= 1, occurred_at
 * set. Returns 0 or WR_EMETA with the reason in err. */
WR_EXPORT int wr_event_validate(const wr_event_type *t, const ProtobufCMessage *ev, wr_err *err);

/* Decodes `len` bytes as an event of type t (protobuf-c unpack + wr_event_validate).
 * On success *out is owned by the caller: free with wr_event_free(). On failure *out is
 * NULL and the result is WR_EDECODE (not protobuf of that type) or WR_EMETA. Messages
 * above max_size (0 = no limit) fail with WR_ETOOBIG before any parsing. */
WR_EXPORT int wr_event_decode(const wr_event_type *t, const void *data, size_t len,
                              size_t max_size, ProtobufCMessage **out, wr_err *err);

/* Frees a message returned by wr_event_decode (NULL allowed). */
WR_EXPORT void wr_event_free(ProtobufCMessage *ev);

WR_END_DECLS

#endif
