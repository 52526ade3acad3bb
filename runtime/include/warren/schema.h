/* warren/schema.h: the tables protoc-gen-warren emits for every .proto with events, and
 * the process-wide registry tools use to decode any event generically.
 *
 * Generated code fills these with constant data; the runtime never writes to them. */
#ifndef WARREN_SCHEMA_H
#define WARREN_SCHEMA_H

#include <protobuf-c/protobuf-c.h>
#include <warren/common.h>

WR_BEGIN_DECLS

/* Mirrors warren.v1.EventKind (schemas/warren/v1/options.proto). */
typedef enum wr_event_kind {
  WR_KIND_UNSPECIFIED = 0,
  WR_KIND_CREATED = 1,
  WR_KIND_UPDATED = 2,
  WR_KIND_DELETED = 3,
  WR_KIND_SNAPSHOT = 4,
  WR_KIND_OTHER = 5,
} wr_event_kind;

/* "created", "updated", ... ("unspecified" for unknown values). Cannot fail. */
WR_EXPORT const char *wr_event_kind_name(wr_event_kind kind);

struct wr_schema;

/* One event message. `type` is the full proto name and also the AMQP routing key. The
 * message's field number 1 is `warren.v1.EventMeta meta` (the plugin guarantees it). */
typedef struct wr_event_type {
  const char *type;           /* "customer.v1.CustomerUpdated" */
  const char *aggregate_type; /* "customer" */
  wr_event_kind kind;
  const char *exchange;                         /* "customer.events" */
  const ProtobufCMessageDescriptor *descriptor; /* protoc-c's descriptor */
  const struct wr_schema *schema;               /* the file it belongs to */
} wr_event_type;

/* proto3 JSON names of one message's fields, in the order of descriptor->fields (by
 * field number). `names` is NULL for a message without fields. */
typedef struct wr_json_names {
  const ProtobufCMessageDescriptor *descriptor;
  const char *const *names;
} wr_json_names;

/* One .proto file's events and JSON names. */
typedef struct wr_schema {
  unsigned abi;           /* WR_CODEGEN_ABI at generation time */
  const char *proto_file; /* "customer/v1/customer.proto" */
  const char *package;    /* "customer.v1" */
  const char *exchange;   /* default exchange of the file's events */
  size_t n_events;
  const wr_event_type *events;
  size_t n_json; /* every message defined in the file */
  const wr_json_names *json;
} wr_schema;

/* Adds a schema to the process-wide registry used by wr_json and the DLQ tools.
 * Idempotent (registering the same schema again returns 0) and thread-safe; the schema
 * is borrowed for the rest of the process (generated tables are static) and never
 * unregistered. An event type may be registered by two schemas only with the same
 * descriptor and exchange (the first registration is what lookups return); for a JSON
 * names entry of an already registered descriptor, the first one wins.
 * Returns 0; WR_EINVAL (NULL, or a malformed table: an event without type, aggregate
 * type, exchange or known kind, whose descriptor is not a protobuf-c message named like
 * the type with `warren.v1.EventMeta meta = 1`, whose `schema` does not point back, or
 * JSON names missing for a field); WR_ESCHEMA (schema->abi differs from WR_CODEGEN_ABI,
 * or an event type is already registered with another descriptor or exchange: two
 * definitions of one routing key); WR_ENOMEM. On failure the registry is unchanged.
 * Generated `<pkg>_subscribe` calls it; tools call it for each schema. */
WR_EXPORT int wr_schema_register(const wr_schema *schema);

/* The registered event type named `type` (NULL allowed), or NULL. Borrowed, valid for
 * the life of the process. Thread-safe. */
WR_EXPORT const wr_event_type *wr_schema_find_event(const char *type);

/* The registered JSON names of a message descriptor, or NULL when none were
 * registered (wr_json then derives them from the proto field names the way protoc
 * does). Borrowed, valid for the life of the process. Thread-safe. */
WR_EXPORT const char *const *wr_schema_json_names(const ProtobufCMessageDescriptor *desc);

/* Calls fn for every registered event type, in registration order, each type once.
 * Thread-safe; no lock is held while fn runs, so fn may call any wr_schema_ function
 * (a schema registered meanwhile may or may not be visited). fn NULL: no-op. */
WR_EXPORT void wr_schema_foreach_event(void (*fn)(const wr_event_type *t, void *user), void *user);

WR_END_DECLS

#endif
