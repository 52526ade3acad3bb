/* warren/json.h: the proto3 JSON mapping over protobuf-c descriptors (protobuf-c has
 * none). Field names are the JSON names protoc-gen-warren emits (registered with
 * wr_schema_register); for messages without registered names they are derived from
 * the proto field names the way protoc derives json_name (lowerCamelCase: every '_'
 * is dropped and the next character upper-cased). Decoding accepts both the JSON name
 * and the original proto field name, as protoc's parsers do.
 *
 * Mapping: int64/uint64/fixed64/sint64 as decimal strings (numbers accepted on
 * input when exact), 32-bit integers as numbers, float/double as numbers ("NaN",
 * "Infinity", "-Infinity" strings), bool, enums by value name (numbers accepted on
 * input), bytes as standard base64 (URL-safe accepted on input), repeated as arrays,
 * maps as objects (keys as strings), oneof by the set member,
 * google.protobuf.Timestamp as RFC 3339 UTC strings. Encoding omits fields with
 * default values (proto3 rules) unless WR_JSON_EMIT_DEFAULTS is given.
 *
 * Details a caller may rely on:
 * - Output: keys in field-number order; Timestamps with 0, 3, 6 or 9 fractional
 *   digits ("2024-01-31T12:00:00.250Z"); floats and doubles as the shortest decimal
 *   that reads back to the same value (a float field 0.1f gives 0.1); enum values
 *   without a name as numbers; proto3 message fields when set (even if empty); oneof
 *   members when set (even at their default); proto2 fields by their presence.
 *   With WR_JSON_EMIT_DEFAULTS, fields without presence are written at their default
 *   ("", 0, false, [], {}, first enum name); unset message fields stay omitted.
 * - Strings must be valid UTF-8 both ways. A string read from the wire that is not
 *   (protobuf-c does not check) makes encoding fail with WR_EINVAL.
 * - NUL: a protobuf-c string is a C string, so a JSON string holding U+0000 (in a
 *   string field or a string map key) is refused with WR_EJSON instead of being cut
 *   short silently. Bytes fields carry NUL fine (base64).
 * - Integers: a JSON number must be integral and in range (1e3 is 1000; 1.5 and
 *   4294967296 for a uint32 are errors); strings hold a decimal integer ("-12", no
 *   '+', no spaces, no exponent). Numbers beyond the int64 range are refused by the
 *   JSON parser (jansson): send large uint64 values as strings, as the encoder does.
 * - Floats: numbers, the three special strings, or a decimal number in a string;
 *   a value beyond the float range (for float fields) or the double range fails.
 * - Bytes: standard or URL-safe alphabet, padding optional; anything else (spaces,
 *   non-zero trailing bits) fails.
 * - Enums: a value name or any int32 number (proto3 enums are open). An unknown
 *   name fails, or with WR_JSON_IGNORE_UNKNOWN leaves the field at its default
 *   (drops the element in a repeated field, the entry in a map).
 * - Maps: keys of integer maps must be canonical decimal ("7", "-3"; not "07" or
 *   "+7"), bool keys "true"/"false"; a null map value or array element fails.
 *   A repeated field of message `XEntry {key = 1; value = 2}` nested in the parent
 *   and named after the field is taken as a map, the way protoc generates maps.
 * - null for a field means "not set" (the default). A field given twice (by JSON
 *   name and proto name) or two members of one oneof fail. A proto2 required field
 *   without a declared default that is missing fails.
 * - Other well-known types (Duration, Struct, wrappers, Any...) have no special
 *   mapping: they are written and read as ordinary messages.
 * - Unknown fields that protobuf-c kept from the wire are not written (JSON has no
 *   representation for them).
 * Thread-safe: no shared state besides the schema registry (read-only lookups). */
#ifndef WARREN_JSON_H
#define WARREN_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

enum {
  WR_JSON_EMIT_DEFAULTS = 1 << 0,  /* encode: include fields at their default value */
  WR_JSON_IGNORE_UNKNOWN = 1 << 1, /* decode: skip unknown fields instead of failing */
};

/* Messages nest at most this deep (the top-level message is level 1), both ways: it
 * bounds the recursion of the encoder and decoder (and catches cycles between
 * in-memory messages). */
#define WR_JSON_MAX_DEPTH 64

/* Encodes m into a new jansson value (*out, caller decrefs): an object, or a string
 * when m itself is a google.protobuf.Timestamp. Returns 0, WR_ENOMEM, or WR_EINVAL
 * (NULL argument, unknown flag bit, a value JSON cannot hold: a Timestamp out of
 * years 1-9999 or with nanos outside 0..999999999, a string that is not valid UTF-8,
 * an unset proto2 required message, nesting deeper than WR_JSON_MAX_DEPTH) with the
 * field path in err ("data.created_at: ..."). *out is NULL on failure. */
WR_EXPORT int wr_json_encode(const ProtobufCMessage *m, unsigned flags, json_t **out, wr_err *err);

/* Same, serialized: compact, keys in field order, numbers as described above.
 * *out is a malloc'd NUL-terminated string (caller frees), NULL on failure. */
WR_EXPORT int wr_json_encode_string(const ProtobufCMessage *m, unsigned flags, char **out,
                                    wr_err *err);

/* Decodes a JSON object into a new message of type desc (a JSON string when desc is
 * google.protobuf.Timestamp). `in` is only read. *out is allocated with protobuf-c's
 * default allocator: free with protobuf_c_message_free_unpacked(*out, NULL). Returns
 * 0 or WR_EJSON with the path and reason in err ("data.status: unknown enum value
 * \"ACTIV\""), for: wrong types, unknown fields (unless WR_JSON_IGNORE_UNKNOWN),
 * numbers out of range or not integral, bad base64, bad timestamps, two members of
 * one oneof, nesting deeper than WR_JSON_MAX_DEPTH; WR_EINVAL for a NULL argument,
 * an unknown flag bit or a descriptor that is not a protobuf-c message descriptor;
 * WR_ENOMEM. *out is NULL on failure and nothing is leaked. */
WR_EXPORT int wr_json_decode(const ProtobufCMessageDescriptor *desc, const json_t *in,
                             unsigned flags, ProtobufCMessage **out, wr_err *err);

/* Same from text (len bytes, need not be NUL-terminated). Text that is not JSON, or
 * has an object with a duplicate key, fails with WR_EJSON ("invalid JSON at line 1,
 * column 9: ..."). */
WR_EXPORT int wr_json_decode_string(const ProtobufCMessageDescriptor *desc, const char *text,
                                    size_t len, unsigned flags, ProtobufCMessage **out,
                                    wr_err *err);

WR_END_DECLS

#endif
