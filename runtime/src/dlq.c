/* dlq.c: browse, replay and purge a dead-letter queue.
 *
 * Everything runs on a side channel (conn_internal.h), never on channel 1: a missing
 * queue or exchange closes the side channel only, and closing the side channel is how
 * messages are given back. Messages are taken with basic.get and held unacked while
 * the walk goes on, so each basic.get returns the next message instead of the one just
 * looked at; closing the channel at the end requeues everything not acked. (On a
 * quorum DLQ requeued messages go to the back, so the order may rotate; nothing is
 * lost, and the DLQ has no delivery limit that could drop a browsed message.)
 *
 * A walk is bounded by the queue's length when it starts: a replay whose copy lands in
 * the same DLQ again (a message whose origin routes back into it), or producers that
 * keep dead-lettering meanwhile, cannot make it run forever.
 *
 * Headers are outside input: a message in a DLQ may carry anything. Every header is
 * read by kind (a wrong kind is ignored, never trusted), strings are copied with
 * truncation and control characters replaced, and x-death arrays of any size are
 * walked once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include <warren/dlq.h>
#include <warren/util.h>

#include "conn_internal.h"

#define TOOL WR__CONN_TOOL_CHANNEL

/* A wr_dlq_* call in progress on this thread: the callback of a browse must not
 * start another walk on the same connection (the side channel is in use). */
static _Thread_local const wr_conn *busy_conn;

/* ---- reading headers ----------------------------------------------------------- */

/* Copies bytes for display: truncated, NUL-terminated, control characters -> '?'. */
static void show_copy(char *out, size_t outsz, const void *bytes, size_t len) {
  if (!out || outsz == 0)
    return;
  const unsigned char *p = bytes;
  size_t n = 0;
  for (size_t i = 0; p && i < len && n + 1 < outsz; i++)
    out[n++] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
  out[n] = '\0';
}

static const amqp_bytes_t *field_str(const amqp_field_value_t *v) {
  if (v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
    return &v->value.bytes;
  return NULL;
}

static const amqp_bytes_t *header_str(const amqp_table_t *h, const char *key) {
  return field_str(wr_table_get(h, key));
}

static bool field_int(const amqp_field_value_t *v, int64_t *out) {
  if (!v)
    return false;
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes("k");
  e.value = *v;
  amqp_table_t t = {1, &e};
  return wr_table_get_int(&t, "k", out);
}

/* A point in time as Unix ms: an integer (ms), an AMQP timestamp (seconds) or an
 * RFC 3339 string. */
static bool field_time_ms(const amqp_field_value_t *v, int64_t *out) {
  if (!v)
    return false;
  if (v->kind == AMQP_FIELD_KIND_TIMESTAMP) {
    if (v->value.u64 > (uint64_t)INT64_MAX / 1000)
      return false;
    *out = (int64_t)v->value.u64 * 1000;
    return true;
  }
  int64_t i;
  if (field_int(v, &i)) {
    if (i < 0)
      return false;
    *out = i;
    return true;
  }
  const amqp_bytes_t *s = field_str(v);
  if (s && s->len > 0 && s->len < 64) {
    char buf[64];
    memcpy(buf, s->bytes, s->len);
    buf[s->len] = '\0';
    int64_t sec;
    int32_t ns;
    if (wr_rfc3339_parse(buf, &sec, &ns) == 0 && sec >= 0 && sec < INT64_MAX / 1000) {
      *out = sec * 1000 + ns / 1000000;
      return true;
    }
  }
  return false;
}

/* One x-death entry, read defensively. */
typedef struct death {
  const amqp_bytes_t *queue, *reason, *exchange, *routing_key;
  int64_t count;
  bool has_count;
  int64_t time_ms;
  bool has_time;
} death;

static bool death_read(const amqp_field_value_t *v, death *d) {
  memset(d, 0, sizeof *d);
  if (!v || v->kind != AMQP_FIELD_KIND_TABLE)
    return false;
  const amqp_table_t *t = &v->value.table;
  d->queue = header_str(t, "queue");
  d->reason = header_str(t, "reason");
  d->exchange = header_str(t, "exchange");
  const amqp_field_value_t *rks = wr_table_get(t, "routing-keys");
  if (rks && rks->kind == AMQP_FIELD_KIND_ARRAY && rks->value.array.num_entries > 0 &&
      rks->value.array.entries)
    d->routing_key = field_str(&rks->value.array.entries[0]);
  d->has_count = field_int(wr_table_get(t, "count"), &d->count);
  d->has_time = field_time_ms(wr_table_get(t, "time"), &d->time_ms);
  return true;
}

/* Where a message should go back to, as raw broker bytes (not truncated). */
typedef struct origin {
  amqp_bytes_t exchange, routing_key;
  bool known;
  amqp_bytes_t died_in; /* raw name of the queue it died in (fallback target) */
} origin;

static bool ends_with(amqp_bytes_t b, const char *suffix) {
  size_t n = strlen(suffix);
  return b.len >= n && memcmp((const char *)b.bytes + b.len - n, suffix, n) == 0;
}

static void headers_read(const amqp_table_t *h, wr_dlq_entry *e, origin *o);

/* Fills e from the envelope and finds the origin. dlq names the queue browsed. */
static void entry_read(const amqp_envelope_t *env, const char *dlq, uint64_t index, wr_dlq_entry *e,
                       origin *o) {
  memset(e, 0, sizeof *e);
  memset(o, 0, sizeof *o);
  const amqp_basic_properties_t *p = &env->message.properties;
  e->index = index;
  e->body = env->message.body.bytes;
  e->body_len = env->message.body.len;
  e->props = p;
  if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
    show_copy(e->message_id, sizeof e->message_id, p->message_id.bytes, p->message_id.len);
  if (p->_flags & AMQP_BASIC_TYPE_FLAG)
    show_copy(e->type, sizeof e->type, p->type.bytes, p->type.len);
  if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
    show_copy(e->correlation_id, sizeof e->correlation_id, p->correlation_id.bytes,
              p->correlation_id.len);
  /* The queue it died in: the DLQ's work queue by naming convention, else what the
   * broker recorded. */
  size_t dl = strlen(dlq);
  if (dl > 4 && strcmp(dlq + dl - 4, ".dlq") == 0)
    o->died_in = (amqp_bytes_t){dl - 4, (void *)dlq};

  const amqp_table_t *h = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
  if (h)
    headers_read(h, e, o);
  if (!o->known && o->died_in.len > 0) {
    /* no origin anywhere: the default exchange straight to the queue it died in
     * (which delivers to this consumer group only) */
    o->exchange = amqp_empty_bytes;
    o->routing_key = o->died_in;
    o->known = true;
  }
  if (o->died_in.len > 0)
    show_copy(e->queue, sizeof e->queue, o->died_in.bytes, o->died_in.len);
  if (o->known) {
    show_copy(e->exchange, sizeof e->exchange, o->exchange.bytes, o->exchange.len);
    show_copy(e->routing_key, sizeof e->routing_key, o->routing_key.bytes, o->routing_key.len);
  }
}

static void headers_read(const amqp_table_t *h, wr_dlq_entry *e, origin *o) {
  const amqp_bytes_t *s;
  if ((s = header_str(h, "x-aggregate-type")))
    show_copy(e->aggregate_type, sizeof e->aggregate_type, s->bytes, s->len);
  if ((s = header_str(h, "x-aggregate-id")))
    show_copy(e->aggregate_id, sizeof e->aggregate_id, s->bytes, s->len);

  /* x-death: newest first. The newest entry gives reason, count and time; the origin
   * is the oldest entry that names a real exchange (not a dead-letter exchange). */
  death first;
  bool have_first = false;
  const amqp_field_value_t *xd = wr_table_get(h, "x-death");
  if (xd && xd->kind == AMQP_FIELD_KIND_ARRAY && xd->value.array.entries) {
    int n = xd->value.array.num_entries;
    for (int i = 0; i < n && !have_first; i++)
      have_first = death_read(&xd->value.array.entries[i], &first);
    for (int i = n - 1; i >= 0 && !o->known; i--) {
      death d;
      if (!death_read(&xd->value.array.entries[i], &d))
        continue;
      if (d.exchange && d.exchange->len > 0 && !ends_with(*d.exchange, ".dlx") && d.routing_key) {
        o->exchange = *d.exchange;
        o->routing_key = *d.routing_key;
        o->known = true;
      }
    }
  }
  if (have_first) {
    if (o->died_in.len == 0 && first.queue)
      o->died_in = *first.queue;
    if (first.reason)
      show_copy(e->error, sizeof e->error, first.reason->bytes, first.reason->len);
    if (first.has_count && first.count > 0)
      e->attempts = first.count > UINT32_MAX ? UINT32_MAX : (unsigned)first.count;
    if (first.has_time)
      e->failed_at_ms = first.time_ms;
  }
  if (o->died_in.len == 0 && (s = header_str(h, "x-first-death-queue")))
    o->died_in = *s;

  /* warren's own headers win over what is derived from x-death */
  if ((s = header_str(h, "x-warren-error")))
    show_copy(e->error, sizeof e->error, s->bytes, s->len);
  int64_t i64;
  if (wr_table_get_int(h, "x-warren-attempts", &i64) && i64 >= 0)
    e->attempts = i64 > UINT32_MAX ? UINT32_MAX : (unsigned)i64;
  if (field_time_ms(wr_table_get(h, "x-warren-failed-at"), &i64))
    e->failed_at_ms = i64;
  const amqp_bytes_t *ox = header_str(h, "x-warren-original-exchange");
  const amqp_bytes_t *ork = header_str(h, "x-warren-original-routing-key");
  if (ox && ork) {
    o->exchange = *ox;
    o->routing_key = *ork;
    o->known = true;
  }
}

/* ---- selection ----------------------------------------------------------------- */

static bool selected(const wr_dlq_filter *f, const amqp_basic_properties_t *p) {
  if (f->all)
    return true;
  if (f->type) {
    if (!(p->_flags & AMQP_BASIC_TYPE_FLAG) || p->type.len != strlen(f->type) ||
        memcmp(p->type.bytes, f->type, p->type.len) != 0)
      return false;
  }
  if (f->ids) {
    if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG))
      return false;
    for (const char *const *id = f->ids; *id; id++)
      if (p->message_id.len == strlen(*id) &&
          memcmp(p->message_id.bytes, *id, p->message_id.len) == 0)
        return true;
    return false;
  }
  return true;
}

static int check_filter(const wr_dlq_filter *f, wr_err *err) {
  if (!f || (!f->all && !f->ids && !f->type))
    return wr_err_set(err, WR_EINVAL, "dlq: select messages with all, ids or type");
  return 0;
}

static int check_common(wr_conn *c, const char *dlq, wr_err *err) {
  if (!c || !dlq || !*dlq || strlen(dlq) > 255)
    return wr_err_set(err, WR_EINVAL, "dlq: connection and queue name (1..255 bytes) required");
  if (busy_conn == c)
    return wr_err_set(err, WR_ESTATE, "dlq: another DLQ operation is running on this connection");
  return 0;
}

/* Takes the next message. Returns 0, 1 (queue empty) or a failure. A missing queue is
 * WR_ENOTFOUND with a clear message. */
static int take(wr_conn *c, const char *dlq, amqp_envelope_t *env, uint32_t *remaining,
                wr_err *err) {
  wr_err e2;
  wr_err_clear(&e2);
  int rc = wr__conn_side_get(c, TOOL, dlq, env, remaining, &e2);
  if (rc == WR_ENOTFOUND && e2.amqp_reply == 0)
    return 1;
  if (err)
    *err = e2;
  if (rc == WR_ENOTFOUND) {
    wr_err_set(err, WR_ENOTFOUND, "dlq: no queue '%s'", dlq);
    if (err)
      err->amqp_reply = 404;
  }
  return rc;
}

/* Closes the side channel, which gives back the `held` messages not removed, and waits
 * (bounded by the rpc timeout, at most 5 s) until the queue shows at least that many
 * ready messages again. A quorum queue takes them back asynchronously after the
 * channel is gone; without the wait, a walk started right after this one (a replay
 * after a list) could miss them. Best effort: a concurrent consumer of the DLQ can
 * keep the count low, and then the wait just ends. */
static void give_back(wr_conn *c, const char *dlq, uint64_t held) {
  bool was_open = wr__conn_side_is_open(c, TOOL);
  wr__conn_side_close(c, TOOL);
  if (!was_open || held == 0 || !wr_conn_is_open(c))
    return;
  unsigned limit = wr__conn_rpc_timeout_ms(c) < 5000 ? wr__conn_rpc_timeout_ms(c) : 5000;
  int64_t end = wr_mono_ns() / 1000000 + limit;
  wr_queue_decl d = {.name = dlq, .arguments = amqp_empty_table};
  for (;;) {
    uint32_t ready = 0;
    wr_err e2;
    if (wr_conn_declare_queue(c, &d, true, &ready, NULL, &e2) != 0 || ready >= held)
      return;
    if (wr_mono_ns() / 1000000 >= end)
      return;
    wr_sleep_ms(20, NULL);
  }
}

/* ---- browse -------------------------------------------------------------------- */

int wr_dlq_browse(wr_conn *c, const char *dlq, size_t limit, wr_dlq_fn fn, void *user,
                  wr_err *err) {
  wr_err_clear(err);
  int rc = check_common(c, dlq, err);
  if (rc != 0)
    return rc;
  if (!fn)
    return wr_err_set(err, WR_EINVAL, "dlq browse: fn required");
  rc = wr__conn_side_open(c, TOOL, err);
  if (rc != 0)
    return rc;
  busy_conn = c;
  uint64_t budget = UINT64_MAX, held = 0;
  for (uint64_t index = 0; index < budget && (limit == 0 || index < limit); index++) {
    amqp_envelope_t env;
    uint32_t remaining = 0;
    rc = take(c, dlq, &env, &remaining, err);
    if (rc == 1) {
      rc = 0;
      break;
    }
    if (rc != 0)
      break;
    if (index == 0)
      budget = (uint64_t)remaining + 1;
    held++;
    wr_dlq_entry e;
    origin o;
    entry_read(&env, dlq, index, &e, &o);
    int stop = fn(&e, user);
    amqp_destroy_envelope(&env);
    if (stop)
      break;
  }
  busy_conn = NULL;
  give_back(c, dlq, held);
  return rc;
}

/* ---- replay -------------------------------------------------------------------- */

static bool strip_header(amqp_bytes_t key) {
  static const char *const prefixes[] = {"x-warren-", "x-first-death-", "x-last-death-"};
  if (key.len == 7 && memcmp(key.bytes, "x-death", 7) == 0)
    return true;
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
    size_t n = strlen(prefixes[i]);
    if (key.len >= n && memcmp(key.bytes, prefixes[i], n) == 0)
      return true;
  }
  return false;
}

static int replay_one(wr_conn *c, const amqp_envelope_t *env, const wr_dlq_entry *e,
                      const origin *o, wr_err *err) {
  if (!o->known)
    return wr_err_set(err, WR_EINVAL,
                      "dlq replay: message '%s' carries no original exchange/routing key",
                      e->message_id);
  if (o->exchange.len > 255 || o->routing_key.len > 255 ||
      memchr(o->exchange.bytes ? o->exchange.bytes : "", '\0', o->exchange.len) ||
      memchr(o->routing_key.bytes ? o->routing_key.bytes : "", '\0', o->routing_key.len))
    return wr_err_set(err, WR_EINVAL,
                      "dlq replay: message '%s' has an invalid original exchange/routing key",
                      e->message_id);
  char exchange[256], rk[256];
  memcpy(exchange, o->exchange.bytes ? o->exchange.bytes : "", o->exchange.len);
  exchange[o->exchange.len] = '\0';
  memcpy(rk, o->routing_key.bytes ? o->routing_key.bytes : "", o->routing_key.len);
  rk[o->routing_key.len] = '\0';

  /* The copy starts again at attempt 0: without x-death and x-warren-* headers. */
  amqp_basic_properties_t props = env->message.properties;
  amqp_table_entry_t *kept = NULL;
  if ((props._flags & AMQP_BASIC_HEADERS_FLAG) && props.headers.num_entries > 0 &&
      props.headers.entries) {
    kept = malloc((size_t)props.headers.num_entries * sizeof *kept);
    if (!kept)
      return wr_err_set(err, WR_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < props.headers.num_entries; i++)
      if (!strip_header(props.headers.entries[i].key))
        kept[n++] = props.headers.entries[i];
    props.headers.num_entries = n;
    props.headers.entries = kept;
    if (n == 0)
      props._flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
  }
  wr_publish pub = {.exchange = exchange,
                    .routing_key = rk,
                    .body = env->message.body.bytes,
                    .len = env->message.body.len,
                    .props = &props,
                    .mandatory = true};
  wr_err e2;
  wr_err_clear(&e2);
  int rc = wr__conn_side_publish_confirmed(c, TOOL, &pub, wr__conn_rpc_timeout_ms(c), &e2);
  free(kept);
  if (rc != 0) {
    wr_err_set(err, rc, "dlq replay of '%s' to exchange '%s' key '%s': %s", e->message_id,
               e->exchange, e->routing_key, e2.msg);
    if (err)
      err->amqp_reply = e2.amqp_reply;
    return rc;
  }
  /* the copy is safe with the broker: only now leave the DLQ */
  return wr__conn_side_ack(c, TOOL, env->delivery_tag, false, err);
}

typedef enum walk_op { OP_REPLAY, OP_PURGE } walk_op;

static int walk(wr_conn *c, const char *dlq, const wr_dlq_filter *f, walk_op op, size_t *count,
                wr_err *err) {
  int rc = wr__conn_side_open(c, TOOL, err);
  if (rc != 0)
    return rc;
  if (op == OP_REPLAY) {
    rc = wr__conn_side_confirm(c, TOOL, err);
    if (rc != 0) {
      wr__conn_side_close(c, TOOL);
      return rc;
    }
  }
  busy_conn = c;
  uint64_t budget = UINT64_MAX, held = 0;
  for (uint64_t index = 0; index < budget; index++) {
    amqp_envelope_t env;
    uint32_t remaining = 0;
    rc = take(c, dlq, &env, &remaining, err);
    if (rc == 1) {
      rc = 0;
      break;
    }
    if (rc != 0)
      break;
    if (index == 0)
      budget = (uint64_t)remaining + 1;
    held++;
    if (!selected(f, &env.message.properties)) {
      amqp_destroy_envelope(&env); /* held unacked: given back at the end */
      continue;
    }
    if (op == OP_REPLAY) {
      wr_dlq_entry e;
      origin o;
      entry_read(&env, dlq, index, &e, &o);
      rc = replay_one(c, &env, &e, &o, err);
    } else {
      rc = wr__conn_side_ack(c, TOOL, env.delivery_tag, false, err);
    }
    amqp_destroy_envelope(&env);
    if (rc != 0)
      break;
    held--;
    (*count)++;
  }
  busy_conn = NULL;
  give_back(c, dlq, held);
  return rc;
}

int wr_dlq_replay(wr_conn *c, const char *dlq, const wr_dlq_filter *f, size_t *replayed,
                  wr_err *err) {
  wr_err_clear(err);
  size_t n = 0;
  if (replayed)
    *replayed = 0;
  int rc = check_common(c, dlq, err);
  if (rc == 0)
    rc = check_filter(f, err);
  if (rc == 0)
    rc = walk(c, dlq, f, OP_REPLAY, &n, err);
  if (replayed)
    *replayed = n;
  return rc;
}

int wr_dlq_purge(wr_conn *c, const char *dlq, const wr_dlq_filter *f, size_t *removed,
                 wr_err *err) {
  wr_err_clear(err);
  size_t n = 0;
  if (removed)
    *removed = 0;
  int rc = check_common(c, dlq, err);
  if (rc == 0)
    rc = check_filter(f, err);
  if (rc != 0)
    return rc;
  if (f->all) {
    rc = wr__conn_side_open(c, TOOL, err);
    if (rc != 0)
      return rc;
    amqp_queue_purge_t m;
    memset(&m, 0, sizeof m);
    m.queue = amqp_cstring_bytes(dlq);
    amqp_method_number_t replies[2] = {AMQP_QUEUE_PURGE_OK_METHOD, 0};
    amqp_rpc_reply_t r =
        amqp_simple_rpc(wr_conn_amqp(c), TOOL, AMQP_QUEUE_PURGE_METHOD, replies, &m);
    char what[300];
    snprintf(what, sizeof what, "dlq purge of '%s'", dlq);
    rc = wr__conn_side_check(c, TOOL, r, what, err);
    if (rc == 0)
      n = ((const amqp_queue_purge_ok_t *)r.reply.decoded)->message_count;
    wr__conn_side_close(c, TOOL);
  } else {
    rc = walk(c, dlq, f, OP_PURGE, &n, err);
  }
  if (removed)
    *removed = n;
  return rc;
}
