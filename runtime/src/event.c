/* event.c: generic access to an event's meta, its validation, and the decoding of
 * incoming event bytes (see warren/event.h).
 *
 * Event bytes come from the broker, i.e. from anyone who can publish to the
 * exchange, so decoding treats them as hostile:
 * - the size limit is checked before anything else;
 * - an iterative scan walks the wire format first, following the descriptors into
 *   submessages with an explicit, bounded stack. protobuf_c_message_unpack recurses
 *   once per nested message with no limit: for a recursive schema, about 9,000 levels
 *   (30 KB of input) overflow an 8 MiB thread stack (measured with protobuf-c 1.4.1). The same scan
 * rejects strings that are not UTF-8 or contain NUL (proto3 requires UTF-8; protobuf-c hands out C
 * strings, so "a\0b" would silently become "a", e.g. another aggregate id);
 * - protobuf-c then unpacks with an allocator that records allocation failure, so an
 *   out-of-memory condition is reported as WR_ENOMEM (retryable) rather than as a
 *   malformed message (which a consumer would dead-letter).
 * protobuf-c itself rejects wrong wire types for known fields, truncated varints,
 * length prefixes beyond the buffer and missing proto2 required fields, and keeps
 * unknown fields in message->unknown_fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/event.h>
#include <warren/util.h>

#include "printable.h"
#include "utf8.h"

#define META_FIELD 1

/* --------------------------------------------------------------- meta access */

/* True if d is warren.v1.EventMeta: our descriptor, or an identical copy (another
 * protoc-c build of options.proto linked into the program): same name, size and
 * field layout, so reading it as Warren__V1__EventMeta is sound. */
static bool is_meta_descriptor(const ProtobufCMessageDescriptor *d) {
  const ProtobufCMessageDescriptor *ours = &warren__v1__event_meta__descriptor;
  if (d == ours)
    return true;
  if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || strcmp(d->name, ours->name) != 0 ||
      d->sizeof_message != ours->sizeof_message || d->n_fields != ours->n_fields)
    return false;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *a = &d->fields[i], *b = &ours->fields[i];
    if (a->id != b->id || a->type != b->type || a->label != b->label || a->offset != b->offset ||
        a->quantifier_offset != b->quantifier_offset || a->flags != b->flags)
      return false;
  }
  return true;
}

wr_meta *wr_event_meta(const ProtobufCMessage *ev) {
  if (!ev || !ev->descriptor || ev->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
    return NULL;
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field(ev->descriptor, META_FIELD);
  if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
      !is_meta_descriptor(f->descriptor))
    return NULL;
  const char *base = (const char *)ev;
  if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
      *(const uint32_t *)(base + f->quantifier_offset) != META_FIELD)
    return NULL;
  return *(wr_meta *const *)(base + f->offset);
}

/* --------------------------------------------------------------- validation */

/* Printable rendering of an untrusted string for an error message. */
static const char *show(const char *s, char *buf, size_t bufsz) {
  return s ? wr__printable(s, strlen(s), 64, buf, bufsz) : "";
}

static bool str_utf8(const char *s) {
  return !s || wr__utf8_valid(s, strlen(s), NULL);
}

int wr_event_validate(const wr_event_type *t, const ProtobufCMessage *ev, wr_err *err) {
  char b1[300];
  if (!t || !ev || !t->type || !t->aggregate_type)
    return wr_err_set(err, WR_EINVAL, "wr_event_validate: NULL %s",
                      !t    ? "event type"
                      : !ev ? "event"
                            : "type name");
  if (t->descriptor && ev->descriptor != t->descriptor)
    return wr_err_set(err, WR_EINVAL, "wr_event_validate: message is %s, not %s",
                      ev->descriptor ? ev->descriptor->name : "(no descriptor)",
                      t->descriptor->name);
  const wr_meta *m = wr_event_meta(ev);
  if (!m)
    return wr_err_set(err, WR_EMETA, "%s: meta missing (field 1, warren.v1.EventMeta)", t->type);
  if (!m->event_id || !wr_uuid_valid(m->event_id))
    return wr_err_set(err, WR_EMETA, "%s: meta.event_id \"%s\" is not a UUID", t->type,
                      show(m->event_id, b1, sizeof b1));
  if (!m->event_type || strcmp(m->event_type, t->type) != 0)
    return wr_err_set(err, WR_EMETA, "%s: meta.event_type \"%s\" does not match the type", t->type,
                      show(m->event_type, b1, sizeof b1));
  if (!m->aggregate_type || strcmp(m->aggregate_type, t->aggregate_type) != 0)
    return wr_err_set(err, WR_EMETA, "%s: meta.aggregate_type \"%s\" is not \"%s\"", t->type,
                      show(m->aggregate_type, b1, sizeof b1), t->aggregate_type);
  size_t idlen = m->aggregate_id ? strlen(m->aggregate_id) : 0;
  if (idlen == 0)
    return wr_err_set(err, WR_EMETA, "%s: meta.aggregate_id is empty", t->type);
  if (idlen > WR_EVENT_AGGREGATE_ID_MAX)
    return wr_err_set(err, WR_EMETA, "%s: meta.aggregate_id has %zu bytes (limit %d)", t->type,
                      idlen, WR_EVENT_AGGREGATE_ID_MAX);
  if (m->version < 1)
    return wr_err_set(err, WR_EMETA, "%s: meta.version must be >= 1", t->type);
  if (m->version > (uint64_t)INT64_MAX) /* versions are stored as PostgreSQL bigint */
    return wr_err_set(err, WR_EMETA, "%s: meta.version %llu is above 2^63-1", t->type,
                      (unsigned long long)m->version);
  if (!m->occurred_at)
    return wr_err_set(err, WR_EMETA, "%s: meta.occurred_at is not set", t->type);
  char ts[WR_RFC3339_STRLEN];
  if (wr_rfc3339_format(m->occurred_at->seconds, m->occurred_at->nanos, ts) != 0)
    return wr_err_set(err, WR_EMETA,
                      "%s: meta.occurred_at is not a valid timestamp (seconds %lld, nanos %d)",
                      t->type, (long long)m->occurred_at->seconds, (int)m->occurred_at->nanos);
  const struct {
    const char *name, *value;
  } strs[] = {
      {"aggregate_id", m->aggregate_id},       {"correlation_id", m->correlation_id},
      {"causation_id", m->causation_id},       {"source_service", m->source_service},
      {"source_instance", m->source_instance},
  };
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (!str_utf8(strs[i].value))
      return wr_err_set(err, WR_EMETA, "%s: meta.%s is not valid UTF-8", t->type, strs[i].name);
  return 0;
}

/* --------------------------------------------------------------- wire scan */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (unsigned i = 0; i < 10; i++) {
    if (*p >= end)
      return false;
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false; /* more than 10 bytes: not a varint */
}

/* Walks the protobuf encoding of a `root` message without recursion: checks that
 * tags, varints and length prefixes are well-formed and inside their enclosing
 * message, bounds the nesting of known message fields, and checks known string fields
 * for UTF-8 and NUL. Wire-type mismatches of known fields are left to protobuf-c,
 * which refuses them. */
static int wire_scan(const ProtobufCMessageDescriptor *root, const uint8_t *data, size_t len,
                     wr_err *err) {
  struct {
    const uint8_t *end;
    const ProtobufCMessageDescriptor *desc;
  } st[WR_EVENT_MAX_DEPTH];
  int top = 0;
  const uint8_t *p = data;
  st[0].end = data + len;
  st[0].desc = root;
  for (;;) {
    if (p == st[top].end) {
      if (top == 0)
        return 0;
      top--;
      continue;
    }
    const uint8_t *end = st[top].end;
    size_t at = (size_t)(p - data);
    uint64_t key;
    if (!read_varint(&p, end, &key))
      return wr_err_set(err, WR_EDECODE, "malformed tag at byte %zu", at);
    uint64_t num = key >> 3;
    unsigned wt = (unsigned)(key & 7);
    if (num == 0 || num > 536870911u)
      return wr_err_set(err, WR_EDECODE, "invalid field number %llu at byte %zu",
                        (unsigned long long)num, at);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(st[top].desc, (unsigned)num);
    uint64_t n;
    switch (wt) {
    case 0: /* varint */
      if (!read_varint(&p, end, &n))
        return wr_err_set(err, WR_EDECODE, "truncated varint in field %llu at byte %zu",
                          (unsigned long long)num, at);
      break;
    case 1: /* 64-bit */
      if (end - p < 8)
        return wr_err_set(err, WR_EDECODE, "truncated 64-bit field %llu at byte %zu",
                          (unsigned long long)num, at);
      p += 8;
      break;
    case 5: /* 32-bit */
      if (end - p < 4)
        return wr_err_set(err, WR_EDECODE, "truncated 32-bit field %llu at byte %zu",
                          (unsigned long long)num, at);
      p += 4;
      break;
    case 2: /* length-delimited */
      if (!read_varint(&p, end, &n))
        return wr_err_set(err, WR_EDECODE, "malformed length of field %llu at byte %zu",
                          (unsigned long long)num, at);
      if (n > (uint64_t)(end - p))
        return wr_err_set(err, WR_EDECODE,
                          "field %llu at byte %zu claims %llu bytes, only %zu left",
                          (unsigned long long)num, at, (unsigned long long)n, (size_t)(end - p));
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (top + 1 >= WR_EVENT_MAX_DEPTH)
          return wr_err_set(err, WR_EDECODE, "messages nested deeper than %d at byte %zu",
                            WR_EVENT_MAX_DEPTH, at);
        top++;
        st[top].end = p + n;
        st[top].desc = f->descriptor;
        continue;
      }
      if (f && f->type == PROTOBUF_C_TYPE_STRING) {
        if (memchr(p, '\0', (size_t)n))
          return wr_err_set(err, WR_EDECODE, "string field %s at byte %zu contains a NUL byte",
                            f->name, at);
        if (!wr__utf8_valid((const char *)p, (size_t)n, NULL))
          return wr_err_set(err, WR_EDECODE, "string field %s at byte %zu is not valid UTF-8",
                            f->name, at);
      }
      p += n;
      break;
    default: /* 3, 4: groups (protobuf-c has no support), 6, 7: invalid */
      return wr_err_set(err, WR_EDECODE, "unsupported wire type %u in field %llu at byte %zu", wt,
                        (unsigned long long)num, at);
    }
  }
}

/* --------------------------------------------------------------- decode */

typedef struct track_alloc {
  bool failed;
} track_alloc;

static void *track_malloc(void *data, size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p)
    ((track_alloc *)data)->failed = true;
  return p;
}

static void track_free(void *data, void *p) {
  (void)data;
  free(p);
}

int wr_event_decode(const wr_event_type *t, const void *data, size_t len, size_t max_size,
                    ProtobufCMessage **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!t || !t->descriptor || !out || (!data && len))
    return wr_err_set(err, WR_EINVAL, "wr_event_decode: NULL %s",
                      !t || !t->descriptor ? "event type"
                      : !out               ? "out"
                                           : "data");
  if (max_size && len > max_size)
    return wr_err_set(err, WR_ETOOBIG, "%s: %zu bytes exceed the limit of %zu", t->type, len,
                      max_size);
  static const uint8_t empty[1];
  const uint8_t *bytes = len ? data : empty;
  int rc = wire_scan(t->descriptor, bytes, len, err);
  if (rc) {
    /* Prefix the type for the operator reading a DLQ entry. */
    if (err) {
      char tmp[sizeof err->msg];
      snprintf(tmp, sizeof tmp, "%s", err->msg);
      wr_err_set(err, rc, "%s: %s", t->type, tmp);
    }
    return rc;
  }
  /* Same malloc/free as protobuf-c's default allocator, so wr_event_free (and
   * protobuf_c_message_free_unpacked(ev, NULL)) release the result. */
  track_alloc ta = {false};
  ProtobufCAllocator alloc = {track_malloc, track_free, &ta};
  ProtobufCMessage *m = protobuf_c_message_unpack(t->descriptor, &alloc, len, bytes);
  if (!m) {
    if (ta.failed)
      return wr_err_set(err, WR_ENOMEM, "%s: out of memory while unpacking %zu bytes", t->type,
                        len);
    return wr_err_set(err, WR_EDECODE,
                      "%s: not a valid encoding of this type (wrong wire type or missing "
                      "required field)",
                      t->type);
  }
  rc = wr_event_validate(t, m, err);
  if (rc) {
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

void wr_event_free(ProtobufCMessage *ev) {
  if (ev)
    protobuf_c_message_free_unpacked(ev, NULL);
}
