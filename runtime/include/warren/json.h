/* warren/json.h: the proto3 JSON mapping over protobuf-c descriptors (protobuf-c has
 * none). Field names are the JSON names protoc-gen-warren emits (registered with
 * wr_schema_register); for messages without registered names they are derived from
 * the proto field names the way protoc derives json_name (lowerCamelCase).
 *
 * Mapping: int64/uint64/fixed64/sint64 as decimal strings (numbers accepted on
 * input when exact), 32-bit integers as numbers, float/double as numbers ("NaN",
 * "Infinity", "-Infinity" strings), bool, enums by value name (numbers accepted on
 * input), bytes as standard base64 (URL-safe accepted on input), repeated as arrays,
 * maps as objects (keys as strings), oneof by the set member,
 * google.protobuf.Timestamp as RFC 3339 UTC strings. Encoding omits fields with
 * default values (proto3 rules) unless WR_JSON_EMIT_DEFAULTS is given. */
#ifndef WARREN_JSON_H
#define WARREN_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

enum {
  WR_JSON_EMIT_DEFAULTS = 1 << 0,   /* encode: include fields at their default value */
  WR_JSON_IGNORE_UNKNOWN = 1 << 1,  /* decode: skip unknown fields instead of failing */
};

/* Encodes m into a new jansson object (*out, caller decrefs). Returns 0, WR_ENOMEM,
 * or WR_EINVAL (a value JSON cannot hold, e.g. a Timestamp out of range) with the
 * field path in err ("data.created_at: ..."). */
WR_EXPORT int wr_json_encode(const ProtobufCMessage *m, unsigned flags, json_t **out,
                             wr_err *err);

/* Same, serialized (compact, keys in field order). *out is malloc'd (caller frees). */
WR_EXPORT int wr_json_encode_string(const ProtobufCMessage *m, unsigned flags, char **out,
                                    wr_err *err);

/* Decodes a JSON object into a new message of type desc. *out is allocated with
 * protobuf-c's default allocator: free with protobuf_c_message_free_unpacked(*out,
 * NULL). Returns 0 or WR_EJSON with the path and reason in err ("data.status:
 * unknown enum value \"ACTIV\""), for: wrong types, unknown fields (unless
 * WR_JSON_IGNORE_UNKNOWN), numbers out of range or not integral, bad base64, bad
 * timestamps, two members of one oneof, nesting deeper than 64. *out is NULL on
 * failure. */
WR_EXPORT int wr_json_decode(const ProtobufCMessageDescriptor *desc, const json_t *in,
                             unsigned flags, ProtobufCMessage **out, wr_err *err);

/* Same from text (len bytes, need not be NUL-terminated). */
WR_EXPORT int wr_json_decode_string(const ProtobufCMessageDescriptor *desc, const char *text,
                                    size_t len, unsigned flags, ProtobufCMessage **out,
                                    wr_err *err);

WR_END_DECLS

#endif
