/* test_consumer_fixture.h: what the consumer tests share (included by test_consumer*.c
 * and test_guard*.c; it is not a test by itself).
 *
 * A fixture owns: a unique work queue and a unique topic exchange (the test event
 * types are copied with that exchange, so parallel tests never see each other's
 * events), a fresh database with a `widgets` view and a `history` of applied events,
 * a publisher connection with confirms, and the consumer under test. The handler's
 * behaviour is steered by the widget's name (or the deletion reason):
 *   "fail-always"   fails (retryable) every time
 *   "fail-until-N"  fails while the attempt is below N
 *   "reject"        rejects (straight to the DLQ)
 *   "sqlerr"        runs a failing statement and returns 0 (must still be a failure)
 *   "slow"          sleeps fx.handler_sleep_ms first
 *   "outbox"        publishes a follow-up event through wr_msg_outbox
 *   "crash"         ends the process (_exit(3)): for tests running the consumer in a
 *                   child process
 * and a data.id different from meta.aggregate_id is rejected. Everything else is
 * applied through the version guard. With fx.buffered (set before fx_create), created
 * and updated widgets are buffered and written set-based by a batch flush hook
 * (wr_consumer_on_batch); a flush refuses a batch holding the widget fx.flush_refuse. */
#ifndef WARREN_TEST_CONSUMER_FIXTURE_H
#define WARREN_TEST_CONSUMER_FIXTURE_H

#include "harness.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/consumer.h>
#include <warren/db.h>
#include <warren/event.h>
#include <warren/metrics.h>
#include <warren/outbox.h>
#include <warren/topology.h>
#include <warren/util.h>

#include "consumer_internal.h"
#include "testev_schema.h"

#define FX_MAX_ATTEMPTS 4096

typedef struct fx_attempt {
  char agg_id[64];
  unsigned attempt;
  int64_t at_ms;
} fx_attempt;

typedef struct fx_row {
  char id[64];
  char name[64];
  char event_id[WR_UUID_STRLEN];
  int64_t count;
  uint64_t version;
  const char *kind;
} fx_row;

typedef struct fx {
  char queue[96];
  char exchange[96];
  wr_event_type types[3];
  char db_url[512];
  PGconn *pg;
  wr_conn_opts copts;
  wr_conn *pub;
  wr_consumer_opts opts;
  unsigned delays[8];
  wr_consumer *c;
  wr_metrics *metrics;
  int handler_sleep_ms;
  pthread_mutex_t mu;
  fx_attempt attempts[FX_MAX_ATTEMPTS];
  size_t n_attempts;
  bool buffered;
  char flush_refuse[64];
  fx_row *rows;
  size_t n_rows, cap_rows;
  int flushes, discards;
} fx;

/* ---- the handler ------------------------------------------------------------------ */

static inline void fx_log_attempt(fx *f, const char *agg_id, unsigned attempt) {
  pthread_mutex_lock(&f->mu);
  if (f->n_attempts < FX_MAX_ATTEMPTS) {
    fx_attempt *a = &f->attempts[f->n_attempts++];
    snprintf(a->agg_id, sizeof a->agg_id, "%s", agg_id);
    a->attempt = attempt;
    a->at_ms = wt_now_ms();
  }
  pthread_mutex_unlock(&f->mu);
}

/* A handler's own statement; its failure is reported with the sqlstate
 * (wr_msg_fail_err), so that a deadlock is run again, not retried. */
static inline int fx_sql(wr_msg *m, const char *sql, int n, const char *const *params) {
  PGresult *r = PQexecParams(wr_msg_db(m), sql, n, NULL, params, NULL, NULL, 0);
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_db_check(wr_msg_db(m), r,
                       PQresultStatus(r) == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK,
                       "view write", &e);
  PQclear(r);
  return rc ? wr_msg_fail_err(m, &e) : 0;
}

/* The dispatcher the generated code would provide, with the handler inlined. */
static inline int fx_handle(wr_msg *m, const ProtobufCMessage *ev, wr_fnptr fn, void *user) {
  (void)fn;
  fx *f = user;
  const wr_meta *meta = wr_msg_meta(m);
  const wr_event_type *t = wr_msg_type(m);
  const Testev__V1__Widget *w = NULL;
  const char *behaviour = "";
  if (t->kind == WR_KIND_DELETED) {
    behaviour = ((const Testev__V1__WidgetDeleted *)ev)->reason;
  } else {
    w = ((const Testev__V1__WidgetCreated *)ev)->data;
    behaviour = w ? w->name : "";
  }
  fx_log_attempt(f, meta->aggregate_id, wr_msg_attempt(m));
  if (strcmp(behaviour, "slow") == 0 && f->handler_sleep_ms > 0)
    usleep((useconds_t)f->handler_sleep_ms * 1000);
  if (strcmp(behaviour, "crash") == 0)
    _exit(3);
  if (strcmp(behaviour, "fail-always") == 0)
    return wr_msg_fail(m, WR_EHANDLER, "boom: %s always fails", meta->aggregate_id);
  if (strncmp(behaviour, "fail-until-", 11) == 0 &&
      wr_msg_attempt(m) < (unsigned)atoi(behaviour + 11))
    return wr_msg_fail(m, WR_EHANDLER, "transient failure at attempt %u", wr_msg_attempt(m));
  if (strcmp(behaviour, "reject") == 0)
    return wr_msg_fail(m, WR_EREJECT, "rejected by the handler");
  if (strcmp(behaviour, "sqlerr") == 0) {
    PGresult *r = PQexec(wr_msg_db(m), "SELECT * FROM no_such_table");
    PQclear(r);
    return 0; /* a buggy handler that ignores the error */
  }
  if (w && w->id && *w->id && strcmp(w->id, meta->aggregate_id) != 0)
    return wr_msg_fail(m, WR_EREJECT, "aggregate id mismatch: data.id=%s meta.aggregate_id=%s",
                       w->id, meta->aggregate_id);
  int g = wr_msg_guard(m);
  if (g < 0)
    return g;
  if (g == 0)
    return 0; /* stale */
  if (f->buffered && t->kind != WR_KIND_DELETED && strcmp(behaviour, "outbox") != 0) {
    if (f->n_rows == f->cap_rows) {
      size_t cap = f->cap_rows ? f->cap_rows * 2 : 256;
      fx_row *nr = realloc(f->rows, cap * sizeof *nr);
      if (!nr)
        return WR_ENOMEM;
      f->rows = nr;
      f->cap_rows = cap;
    }
    fx_row *r = &f->rows[f->n_rows++];
    snprintf(r->id, sizeof r->id, "%s", meta->aggregate_id);
    snprintf(r->name, sizeof r->name, "%s", w ? w->name : "");
    snprintf(r->event_id, sizeof r->event_id, "%s", meta->event_id);
    r->count = w ? w->count : 0;
    r->version = meta->version;
    r->kind = wr_event_kind_name(t->kind);
    return 0;
  }
  char ver[24], cnt[24];
  snprintf(ver, sizeof ver, "%" PRIu64, meta->version);
  snprintf(cnt, sizeof cnt, "%" PRId64, w ? w->count : (int64_t)0);
  int rc;
  if (t->kind == WR_KIND_DELETED) {
    const char *p[2] = {meta->aggregate_id, ver};
    rc = fx_sql(
        m,
        "INSERT INTO widgets (id, name, count, version, deleted) VALUES ($1, '', 0, $2, true)"
        " ON CONFLICT (id) DO UPDATE SET deleted = true, version = EXCLUDED.version",
        2, p);
  } else {
    const char *p[4] = {meta->aggregate_id, w ? w->name : "", cnt, ver};
    rc = fx_sql(m,
                "INSERT INTO widgets (id, name, count, version) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, count = EXCLUDED.count,"
                " version = EXCLUDED.version",
                4, p);
  }
  if (rc < 0)
    return rc;
  const char *hp[4] = {meta->aggregate_id, ver, meta->event_id, wr_event_kind_name(t->kind)};
  rc =
      fx_sql(m, "INSERT INTO history (id, version, event_id, kind) VALUES ($1, $2, $3, $4)", 4, hp);
  if (rc < 0)
    return rc;
  if (strcmp(behaviour, "outbox") == 0) {
    wr_outbox *ob = wr_msg_outbox(m);
    Warren__V1__EventMeta om = WARREN__V1__EVENT_META__INIT;
    char follow[80];
    snprintf(follow, sizeof follow, "%s-follow", meta->aggregate_id);
    om.aggregate_id = follow;
    om.version = 1;
    Testev__V1__Widget d = TESTEV__V1__WIDGET__INIT;
    d.id = follow;
    d.name = "follow-up";
    Testev__V1__WidgetCreated out = TESTEV__V1__WIDGET_CREATED__INIT;
    out.meta = &om;
    out.data = &d;
    rc = wr_outbox_append(ob, &f->types[TESTEV_CREATED], &out.base);
    if (rc < 0)
      return wr_msg_fail(m, rc, "outbox append failed");
  }
  return 0;
}

/* Appends s as an element to the PostgreSQL array literal buf[0..*len) (capacity cap;
 * test data fits). */
static inline void fx_arr_add(char *buf, size_t cap, size_t *len, const char *s, bool quote) {
  size_t n = *len;
  if (n > 1 && n + 1 < cap)
    buf[n++] = ',';
  if (quote && n + 1 < cap)
    buf[n++] = '"';
  for (const char *p = s; *p && n + 3 < cap; p++) {
    if (quote && (*p == '"' || *p == '\\'))
      buf[n++] = '\\';
    buf[n++] = *p;
  }
  if (quote && n + 1 < cap)
    buf[n++] = '"';
  buf[n] = '\0';
  *len = n;
}

static inline int fx_flush(wr_consumer *c, PGconn *db, void *user, wr_err *err) {
  (void)c;
  fx *f = user;
  f->flushes++;
  for (size_t i = 0; i < f->n_rows; i++)
    if (f->flush_refuse[0] && strcmp(f->rows[i].id, f->flush_refuse) == 0)
      return wr_err_set(err, WR_EHANDLER, "flush refuses widget %s", f->rows[i].id);
  size_t cap = 256 + f->n_rows * 160;
  char *a[8];
  size_t len[8];
  for (int k = 0; k < 8; k++) {
    a[k] = malloc(cap);
    if (!a[k])
      return WR_ENOMEM;
    snprintf(a[k], cap, "{");
    len[k] = 1;
  }
  for (size_t i = 0; i < f->n_rows; i++) {
    const fx_row *r = &f->rows[i];
    char num[32], ver[32];
    snprintf(num, sizeof num, "%" PRId64, r->count);
    snprintf(ver, sizeof ver, "%" PRIu64, r->version);
    bool last = true; /* the view takes the last (newest) row of each widget */
    for (size_t j = i + 1; j < f->n_rows; j++)
      if (strcmp(f->rows[j].id, r->id) == 0)
        last = false;
    if (last) {
      fx_arr_add(a[0], cap, &len[0], r->id, true);
      fx_arr_add(a[1], cap, &len[1], r->name, true);
      fx_arr_add(a[2], cap, &len[2], num, false);
      fx_arr_add(a[3], cap, &len[3], ver, false);
    }
    fx_arr_add(a[4], cap, &len[4], r->id, true);
    fx_arr_add(a[5], cap, &len[5], ver, false);
    fx_arr_add(a[6], cap, &len[6], r->event_id, false);
    fx_arr_add(a[7], cap, &len[7], r->kind, true);
  }
  for (int k = 0; k < 8; k++) {
    a[k][len[k]] = '}';
    a[k][len[k] + 1] = '\0';
  }
  const char *p1[4] = {a[0], a[1], a[2], a[3]};
  const char *p2[4] = {a[4], a[5], a[6], a[7]};
  int rc = 0;
  PGresult *r =
      PQexecParams(db,
                   "INSERT INTO widgets (id, name, count, version)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])"
                   " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                   " count = EXCLUDED.count, version = EXCLUDED.version",
                   4, NULL, p1, NULL, NULL, 0);
  rc = wr_db_check(db, r, PGRES_COMMAND_OK, "flush widgets", err); /* sqlstate too */
  PQclear(r);
  if (rc == 0) {
    r = PQexecParams(db,
                     "INSERT INTO history (id, version, event_id, kind)"
                     " SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[])",
                     4, NULL, p2, NULL, NULL, 0);
    rc = wr_db_check(db, r, PGRES_COMMAND_OK, "flush history", err);
    PQclear(r);
  }
  for (int k = 0; k < 8; k++)
    free(a[k]);
  if (rc == 0)
    f->n_rows = 0;
  return rc;
}

static inline void fx_discard(wr_consumer *c, void *user) {
  (void)c;
  fx *f = user;
  f->discards++;
  f->n_rows = 0;
}

/* ---- setup and teardown ------------------------------------------------------------ */

static inline void fx_init(fx *f, const char *name) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  wt_unique(f->queue, sizeof f->queue, name);
  snprintf(f->exchange, sizeof f->exchange, "%s.events", f->queue);
  for (int i = 0; i < 3; i++) {
    f->types[i] = testev_events[i];
    f->types[i].exchange = f->exchange;
  }
  snprintf(f->db_url, sizeof f->db_url, "%s", wt_db_create(name));
  f->pg = wt_pg_connect(f->db_url);
  PQclear(wt_pg_exec(f->pg, "CREATE TABLE widgets (id text PRIMARY KEY, name text NOT NULL,"
                            " count bigint NOT NULL, version bigint NOT NULL,"
                            " deleted boolean NOT NULL DEFAULT false)"));
  PQclear(wt_pg_exec(f->pg,
                     "CREATE TABLE history (seq bigserial PRIMARY KEY, id text NOT NULL,"
                     " version bigint NOT NULL, event_id uuid NOT NULL, kind text NOT NULL)"));

  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = wt_require("WARREN_AMQP_URL");
  co.heartbeat_s = 10;
  co.backoff_base_ms = 100;
  co.backoff_max_ms = 1000;
  co.connection_name = f->queue;
  f->copts = co;
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(wr_conn_new(&f->copts, &f->pub, &e), 0);
  if (wr_conn_open(f->pub, &e) != 0)
    fail_msg("publisher open: %s", e.msg);
  assert_int_equal(wr_conn_confirm_mode(f->pub, &e), 0);
  wr_exchange_decl x = {
      .name = f->exchange, .type = "topic", .durable = true, .arguments = amqp_empty_table};
  if (wr_conn_declare_exchange(f->pub, &x, &e) != 0)
    fail_msg("declare exchange: %s", e.msg);

  wr_consumer_opts o = WR_CONSUMER_OPTS_INIT;
  o.queue = f->queue;
  o.database_url = f->db_url;
  o.amqp = &f->copts;
  o.source_service = "fixture";
  o.batch_size = 50;
  o.batch_wait_ms = 20;
  o.prefetch = 200;
  f->delays[0] = 200;
  f->delays[1] = 400;
  o.retry_delays_ms = f->delays;
  o.n_retry_delays = 2;
  f->opts = o;
}

/* Creates the consumer from f->opts, registers the three test types and declares
 * everything (so messages published before the start are queued). */
static inline void fx_create(fx *f) {
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_new(&f->opts, &f->c, &e) != 0)
    fail_msg("consumer new: %s", e.msg);
  for (int i = 0; i < 3; i++)
    assert_int_equal(wr_consumer_on(f->c, &f->types[i], fx_handle, NULL, f), 0);
  if (f->buffered)
    assert_int_equal(wr_consumer_on_batch(f->c, fx_flush, fx_discard, f), 0);
  if (wr_consumer_declare(f->c, &e) != 0)
    fail_msg("consumer declare: %s", e.msg);
}

static inline void fx_start(fx *f) {
  if (!f->c)
    fx_create(f);
  assert_int_equal(wr_consumer_start(f->c), 0);
}

static inline void fx_print_stats(const fx *f, const char *label) {
  wr_consumer_stats s;
  wr_consumer_stats_get(f->c, &s);
  printf("[ stats    ] %s: applied=%" PRIu64 " duplicates=%" PRIu64 " stale=%" PRIu64
         " retried=%" PRIu64 " dead_lettered=%" PRIu64 " skipped=%" PRIu64 " batches=%" PRIu64
         " fallbacks=%" PRIu64 " reconnects=%" PRIu64 "\n",
         label, s.applied, s.duplicates, s.stale, s.retried, s.dead_lettered, s.skipped, s.batches,
         s.batch_fallbacks, s.reconnects);
  fflush(stdout);
}

/* Stops, joins and frees the consumer (stats printed first). */
static inline void fx_stop(fx *f, const char *label) {
  if (!f->c)
    return;
  wr_consumer_stop(f->c);
  assert_int_equal(wr_consumer_join(f->c), 0);
  fx_print_stats(f, label);
  wr_consumer_free(f->c);
  f->c = NULL;
}

static inline void fx_done(fx *f) {
  if (f->c)
    fx_stop(f, "teardown");
  wr_conn_free(f->pub);
  amqp_connection_state_t a = wt_amqp_connect();
  char name[160];
  wt_amqp_delete_queue(a, f->queue);
  snprintf(name, sizeof name, "%s.dlq", f->queue);
  wt_amqp_delete_queue(a, name);
  for (int i = 1; i <= 8; i++) {
    snprintf(name, sizeof name, "%s.retry.%d", f->queue, i);
    wt_amqp_delete_queue(a, name);
  }
  snprintf(name, sizeof name, "%s.dlx", f->queue);
  wt_amqp_delete_exchange(a, name);
  wt_amqp_delete_exchange(a, f->exchange);
  wt_amqp_close(a);
  PQfinish(f->pg);
  wt_db_drop(f->db_url);
  wr_metrics_free(f->metrics);
  free(f->rows);
  pthread_mutex_destroy(&f->mu);
}

/* ---- publishing -------------------------------------------------------------------- */

typedef struct fx_ev {
  int kind;             /* TESTEV_CREATED / UPDATED / DELETED */
  const char *event_id; /* NULL = a new UUIDv7 */
  const char *agg_type; /* NULL = "widget" */
  const char *agg_id;
  uint64_t version;
  const char *name;    /* widget name or deletion reason (the behaviour) */
  const char *data_id; /* NULL = agg_id */
  const char *correlation_id;
  bool no_meta;
} fx_ev;

static inline void fx_confirm_cb(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  (void)seq;
  int *worst = user;
  if (status != 0)
    *worst = status;
}

/* Publishes raw bytes to the fixture's exchange (or `exchange`), with confirms. */
static inline void fx_send_to(fx *f, const char *exchange, const char *routing_key,
                              const char *type_prop, const void *body, size_t len,
                              const char *message_id) {
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.content_type = amqp_cstring_bytes("application/x-protobuf");
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  if (type_prop) {
    p._flags |= AMQP_BASIC_TYPE_FLAG;
    p.type = amqp_cstring_bytes(type_prop);
  }
  if (message_id) {
    p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p.message_id = amqp_cstring_bytes(message_id);
  }
  wr_publish pub = {.exchange = exchange,
                    .routing_key = routing_key,
                    .body = body,
                    .len = len,
                    .props = &p,
                    .mandatory = false};
  wr_err e;
  wr_err_clear(&e);
  uint64_t seq = 0;
  if (wr_conn_publish(f->pub, &pub, &seq, &e) != 0)
    fail_msg("publish: %s", e.msg);
  int worst = 0;
  if (wr_conn_wait_confirms(f->pub, seq, 10000, fx_confirm_cb, &worst, &e) != 0)
    fail_msg("confirm wait: %s", e.msg);
  assert_int_equal(worst, 0);
}

static inline void fx_send(fx *f, const char *routing_key, const char *type_prop, const void *body,
                           size_t len, const char *message_id) {
  fx_send_to(f, f->exchange, routing_key, type_prop, body, len, message_id);
}

/* Packs an event; *out is malloc'd. Returns the length. id_out (may be NULL) receives
 * the event id. */
static inline size_t fx_pack(fx *f, const fx_ev *ev, uint8_t **out, char *id_out) {
  char id[WR_UUID_STRLEN];
  if (ev->event_id)
    snprintf(id, sizeof id, "%s", ev->event_id);
  else
    assert_int_equal(wr_uuid_v7(id), 0);
  if (id_out)
    snprintf(id_out, WR_UUID_STRLEN, "%s", id);
  const wr_event_type *t = &f->types[ev->kind];
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  int64_t now = wr_now_ns();
  ts.seconds = now / 1000000000;
  ts.nanos = (int32_t)(now % 1000000000);
  Warren__V1__EventMeta m = WARREN__V1__EVENT_META__INIT;
  m.event_id = id;
  m.event_type = (char *)t->type;
  m.aggregate_type = (char *)(ev->agg_type ? ev->agg_type : "widget");
  m.aggregate_id = (char *)ev->agg_id;
  m.version = ev->version;
  m.occurred_at = &ts;
  m.correlation_id = (char *)(ev->correlation_id ? ev->correlation_id : "");
  m.source_service = "fixture";
  Testev__V1__Widget w = TESTEV__V1__WIDGET__INIT;
  w.id = (char *)(ev->data_id ? ev->data_id : ev->agg_id);
  w.name = (char *)(ev->name ? ev->name : "");
  w.count = (int64_t)ev->version * 10;
  ProtobufCMessage *msg;
  Testev__V1__WidgetCreated cr = TESTEV__V1__WIDGET_CREATED__INIT;
  Testev__V1__WidgetUpdated up = TESTEV__V1__WIDGET_UPDATED__INIT;
  Testev__V1__WidgetDeleted de = TESTEV__V1__WIDGET_DELETED__INIT;
  if (ev->kind == TESTEV_CREATED) {
    cr.meta = ev->no_meta ? NULL : &m;
    cr.data = &w;
    msg = &cr.base;
  } else if (ev->kind == TESTEV_UPDATED) {
    up.meta = ev->no_meta ? NULL : &m;
    up.data = &w;
    msg = &up.base;
  } else {
    de.meta = ev->no_meta ? NULL : &m;
    de.reason = (char *)(ev->name ? ev->name : "");
    msg = &de.base;
  }
  size_t n = protobuf_c_message_get_packed_size(msg);
  *out = malloc(n ? n : 1);
  assert_non_null(*out);
  protobuf_c_message_pack(msg, *out);
  return n;
}

/* Publishes one event the way the relay does (type property, routing key = type). */
static inline void fx_event(fx *f, const fx_ev *ev, char *id_out) {
  uint8_t *buf;
  char id[WR_UUID_STRLEN];
  size_t n = fx_pack(f, ev, &buf, id);
  const char *type = f->types[ev->kind].type;
  fx_send(f, type, type, buf, n, id);
  free(buf);
  if (id_out)
    snprintf(id_out, WR_UUID_STRLEN, "%s", id);
}

/* Shorthand: one event of a kind for widget `agg` at `version`. */
static inline void fx_simple(fx *f, int kind, const char *agg, uint64_t version, const char *name) {
  fx_ev ev = {.kind = kind, .agg_id = agg, .version = version, .name = name};
  fx_event(f, &ev, NULL);
}

/* ---- waiting and inspecting ------------------------------------------------------- */

typedef struct fx_wait_arg {
  fx *f;
  size_t offset; /* into wr_consumer_stats */
  uint64_t at_least;
} fx_wait_arg;

static inline bool fx_stat_reached(void *user) {
  fx_wait_arg *a = user;
  wr_consumer_stats s;
  wr_consumer_stats_get(a->f->c, &s);
  uint64_t v;
  memcpy(&v, (const char *)&s + a->offset, sizeof v);
  return v >= a->at_least;
}

#define FX_WAIT_STAT(f, field, n, timeout_ms)                                                      \
  do {                                                                                             \
    fx_wait_arg wa_ = {(f), offsetof(wr_consumer_stats, field), (n)};                              \
    if (!wt_wait_until(fx_stat_reached, &wa_, (timeout_ms))) {                                     \
      fx_print_stats((f), "timeout");                                                              \
      fail_msg("timed out waiting for stats." #field " >= %llu", (unsigned long long)(n));         \
    }                                                                                              \
  } while (0)

static inline wr_consumer_stats fx_stats(const fx *f) {
  wr_consumer_stats s;
  wr_consumer_stats_get(f->c, &s);
  return s;
}

static inline long long fx_scalar(fx *f, const char *fmt, ...) WR_PRINTF(2, 3);
static inline long long fx_scalar(fx *f, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  return wt_pg_scalar(f->pg, sql);
}

static inline long fx_depth(fx *f, const char *suffix) {
  char q[200];
  snprintf(q, sizeof q, "%s%s", f->queue, suffix);
  amqp_connection_state_t a = wt_amqp_connect();
  long n = wt_amqp_queue_depth(a, q);
  wt_amqp_close(a);
  return n;
}

typedef struct fx_depth_arg {
  fx *f;
  const char *suffix;
  long want;
} fx_depth_arg;

static inline bool fx_depth_is(void *user) {
  fx_depth_arg *a = user;
  return fx_depth(a->f, a->suffix) == a->want;
}

static inline void fx_wait_depth(fx *f, const char *suffix, long want, int timeout_ms) {
  fx_depth_arg a = {f, suffix, want};
  if (!wt_wait_until(fx_depth_is, &a, timeout_ms))
    fail_msg("queue %s%s: depth %ld, expected %ld", f->queue, suffix, fx_depth(f, suffix), want);
}

#endif
