/* outbox.c: wr_outbox_append() writes one event into warren_outbox inside the
 * caller's transaction (see warren/outbox.h; the table is in migrations.c).
 *
 * The caller's event is packed with a filled-in COPY of its meta: the meta pointer
 * inside the event is swapped for the copy while protobuf-c packs, and restored before
 * returning, so the caller's message is unchanged afterwards and nothing is allocated
 * per string. The row duplicates the routing-relevant meta fields in columns, so the
 * relay never decodes payloads. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/db.h>
#include <warren/event.h>
#include <warren/outbox.h>
#include <warren/util.h>

/* Largest encoded event accepted. RabbitMQ 3.10 refuses messages above its
 * max_message_size (128 MiB by default); a row the broker can never take would be
 * retried forever, so it is refused here, inside the caller's transaction. */
#define OUTBOX_MAX_PAYLOAD ((size_t)128 * 1024 * 1024)
/* AMQP short strings: exchange names and routing keys (the event type). */
#define SHORTSTR_MAX 255

static bool empty(const char *s) {
  return !s || !*s;
}

/* The address of the event's meta pointer (field 1, a singular warren.v1.EventMeta
 * outside any oneof, as protoc-gen-warren guarantees), or NULL when the message has
 * no such field. */
static ProtobufCMessage **meta_slot(ProtobufCMessage *ev) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(ev->descriptor, 1);
  if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED ||
      (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
      f->descriptor != &warren__v1__event_meta__descriptor)
    return NULL;
  return (ProtobufCMessage **)((char *)ev + f->offset);
}

static const char *const insert_sql =
    "INSERT INTO warren_outbox (event_id, event_type, exchange, routing_key, aggregate_type,"
    " aggregate_id, version, correlation_id, causation_id, source_service, occurred_at,"
    " payload) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7::bigint, $8, $9, $10,"
    " $11::timestamptz, $12::bytea)";

int wr_outbox_append(wr_outbox *ob, const wr_event_type *t, ProtobufCMessage *ev) {
  if (!ob)
    return WR_EINVAL;
  wr_err *err = ob->err;
  if (!ob->conn || !t || !ev || !t->descriptor || !t->type || !t->aggregate_type)
    return wr_err_set(err, WR_EINVAL, "wr_outbox_append: NULL connection, type or event");
  if (ev->descriptor != t->descriptor)
    return wr_err_set(err, WR_EINVAL, "event is a %s, not a %s", ev->descriptor->name,
                      t->descriptor->name);
  if (PQtransactionStatus(ob->conn) != PQTRANS_INTRANS)
    return wr_err_set(err, WR_EINVAL,
                      "wr_outbox_append needs an open, healthy transaction "
                      "on the connection (BEGIN first; a failed one must be rolled back)");
  const char *exchange = ob->exchange ? ob->exchange : t->exchange;
  if (!exchange)
    return wr_err_set(err, WR_EINVAL, "no exchange for %s", t->type);
  if (strlen(exchange) > SHORTSTR_MAX || strlen(t->type) > SHORTSTR_MAX)
    return wr_err_set(err, WR_EINVAL, "%s: exchange name and event type must fit in %d bytes",
                      t->type, SHORTSTR_MAX);
  ProtobufCMessage **slot = meta_slot(ev);
  if (!slot)
    return wr_err_set(err, WR_EINVAL, "%s has no warren.v1.EventMeta meta = 1 field", t->type);

  /* The copy: starts from the caller's meta (or an empty one) and fills the blanks. */
  const wr_meta *given = wr_event_meta(ev);
  wr_meta m;
  if (given) {
    m = *given;
  } else {
    wr_meta fresh = WARREN__V1__EVENT_META__INIT;
    m = fresh;
  }

  if (empty(m.aggregate_id))
    return wr_err_set(err, WR_EINVAL, "%s: meta.aggregate_id is required", t->type);
  if (strlen(m.aggregate_id) > WR_EVENT_AGGREGATE_ID_MAX)
    return wr_err_set(err, WR_EINVAL, "%s: meta.aggregate_id is longer than %d bytes", t->type,
                      WR_EVENT_AGGREGATE_ID_MAX);
  if (m.version < 1)
    return wr_err_set(err, WR_EINVAL, "%s: meta.version is required (>= 1)", t->type);
  if (m.version > (uint64_t)INT64_MAX)
    return wr_err_set(err, WR_EINVAL, "%s: meta.version %" PRIu64 " is above 2^63-1", t->type,
                      m.version);
  if (empty(m.event_type))
    m.event_type = (char *)t->type;
  else if (strcmp(m.event_type, t->type) != 0)
    return wr_err_set(err, WR_EINVAL, "meta.event_type is %s but the event is a %s", m.event_type,
                      t->type);
  if (empty(m.aggregate_type))
    m.aggregate_type = (char *)t->aggregate_type;
  else if (strcmp(m.aggregate_type, t->aggregate_type) != 0)
    return wr_err_set(err, WR_EINVAL, "meta.aggregate_type is %s but %s belongs to %s",
                      m.aggregate_type, t->type, t->aggregate_type);

  char event_id[WR_UUID_STRLEN];
  if (empty(m.event_id)) {
    if (wr_uuid_v7(event_id) != 0)
      return wr_err_set(err, WR_EIO, "no randomness for a new event id");
  } else {
    if (!wr_uuid_valid(m.event_id))
      return wr_err_set(err, WR_EINVAL, "meta.event_id \"%.40s\" is not a UUID", m.event_id);
    /* Lowercase, as PostgreSQL prints it: message_id and the payload then agree. */
    for (size_t i = 0; i < WR_UUID_STRLEN; i++)
      event_id[i] =
          (char)(m.event_id[i] >= 'A' && m.event_id[i] <= 'F' ? m.event_id[i] + 32 : m.event_id[i]);
  }
  m.event_id = event_id;

  Google__Protobuf__Timestamp now_ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  if (!m.occurred_at || (m.occurred_at->seconds == 0 && m.occurred_at->nanos == 0)) {
    int64_t ns = wr_now_ns();
    now_ts.seconds = ns / 1000000000;
    now_ts.nanos = (int32_t)(ns % 1000000000);
    m.occurred_at = &now_ts;
  }
  char occurred[WR_RFC3339_STRLEN];
  if (m.occurred_at->nanos < 0 || m.occurred_at->nanos > 999999999 ||
      wr_rfc3339_format(m.occurred_at->seconds, m.occurred_at->nanos, occurred) != 0)
    return wr_err_set(err, WR_EINVAL, "%s: meta.occurred_at is out of range", t->type);

  if (empty(m.correlation_id))
    m.correlation_id = (char *)(empty(ob->correlation_id) ? event_id : ob->correlation_id);
  if (empty(m.causation_id) && !empty(ob->causation_id))
    m.causation_id = (char *)ob->causation_id;
  if (empty(m.source_service) && !empty(ob->source_service))
    m.source_service = (char *)ob->source_service;
  if (empty(m.source_instance) && !empty(ob->source_instance))
    m.source_instance = (char *)ob->source_instance;

  /* Pack with the copy in place of the caller's meta. Nothing below may return before
   * the pointer is restored. */
  ProtobufCMessage *saved = *slot;
  *slot = &m.base;
  size_t need = protobuf_c_message_get_packed_size(ev);
  uint8_t stackbuf[4096];
  uint8_t *buf = stackbuf;
  size_t packed = 0;
  if (need <= OUTBOX_MAX_PAYLOAD) {
    if (need > sizeof stackbuf)
      buf = malloc(need);
    if (buf)
      packed = protobuf_c_message_pack(ev, buf);
  }
  *slot = saved;
  if (need > OUTBOX_MAX_PAYLOAD)
    return wr_err_set(err, WR_ETOOBIG, "%s encodes to %zu bytes (limit %zu)", t->type, need,
                      OUTBOX_MAX_PAYLOAD);
  if (!buf)
    return wr_err_set(err, WR_ENOMEM, "no memory for a %zu-byte event", need);
  if (packed != need) {
    if (buf != stackbuf)
      free(buf);
    return wr_err_set(err, WR_EINVAL, "%s: protobuf-c packed %zu bytes, expected %zu", t->type,
                      packed, need);
  }

  char version[24];
  snprintf(version, sizeof version, "%" PRIu64, m.version);
  const char *values[12] = {
      event_id,
      m.event_type,
      exchange,
      m.event_type,
      m.aggregate_type,
      m.aggregate_id,
      version,
      m.correlation_id,
      empty(m.causation_id) ? NULL : m.causation_id,
      empty(m.source_service) ? "" : m.source_service,
      occurred,
      (const char *)buf,
  };
  int lengths[12] = {0};
  int formats[12] = {0};
  lengths[11] = (int)need;
  formats[11] = 1;
  PGresult *r = PQexecParams(ob->conn, insert_sql, 12, NULL, values, lengths, formats, 0);
  if (buf != stackbuf)
    free(buf);
  int rc = wr_db_check(ob->conn, r, PGRES_COMMAND_OK, "outbox insert", err);
  PQclear(r);
  if (rc)
    return rc;
  memcpy(ob->last_event_id, event_id, WR_UUID_STRLEN);
  return 0;
}

int64_t wr_outbox_pending(PGconn *c, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_outbox_pending: NULL connection");
  PGresult *r = PQexec(c, "SELECT count(*) FROM warren_outbox");
  int rc = wr_db_check(c, r, PGRES_TUPLES_OK, "count outbox", err);
  int64_t n = rc ? rc : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return n;
}
