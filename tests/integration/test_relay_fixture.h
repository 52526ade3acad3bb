/* test_relay_fixture.h: shared by test_relay.c and test_relay_chaos.c: a fresh database with
 * the runtime tables, a unique exchange and queue on the test broker, helpers to
 * append events through the outbox and to read messages back with plain rabbitmq-c
 * (the code under test is never used to verify itself). Header-only (static inline). */
#ifndef WARREN_TEST_RELAY_FIXTURE_H
#define WARREN_TEST_RELAY_FIXTURE_H

#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <warren/db.h>
#include <warren/error.h>
#include <warren/outbox.h>
#include <warren/relay.h>
#include <warren/util.h>

#include "testev_schema.h"

typedef struct rfx {
  char db[512];
  PGconn *pg;
  amqp_connection_state_t amqp;
  char exchange[80];
  char queue[80];
  wr_conn_opts co;
  wr_relay_opts ro;
} rfx;

/* One message read back. */
typedef struct got_msg {
  char message_id[64];
  char routing_key[256];
  int64_t version;
  char aggregate_id[64];
} got_msg;

static inline void rfx_declare_exchange(amqp_connection_state_t c, const char *name) {
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(name), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                        amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
}

/* Declares a durable classic queue bound to exchange with "#". */
static inline void rfx_bind_queue(amqp_connection_state_t c, const char *queue,
                                  const char *exchange, amqp_table_t args) {
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                  amqp_cstring_bytes("#"), amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
}

static inline void rfx_init(rfx *f, const char *prefix, bool with_queue) {
  memset(f, 0, sizeof *f);
  snprintf(f->db, sizeof f->db, "%s", wt_db_create(prefix));
  wr_err err = {0};
  if (wr_db_connect(f->db, "relay-test", &f->pg, &err) != 0)
    fail_msg("connect: %s", err.msg);
  if (wr_db_migrate_runtime(f->pg, &err) != 0)
    fail_msg("migrate: %s", err.msg);
  f->amqp = wt_amqp_connect();
  char base[40];
  snprintf(base, sizeof base, "%s-x", prefix);
  wt_unique(f->exchange, sizeof f->exchange, base);
  snprintf(base, sizeof base, "%s-q", prefix);
  wt_unique(f->queue, sizeof f->queue, base);
  rfx_declare_exchange(f->amqp, f->exchange);
  if (with_queue)
    rfx_bind_queue(f->amqp, f->queue, f->exchange, amqp_empty_table);
  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = wt_require("WARREN_AMQP_URL");
  co.backoff_base_ms = 100;
  co.backoff_max_ms = 1000;
  f->co = co;
  wr_relay_opts ro = WR_RELAY_OPTS_INIT;
  ro.database_url = f->db;
  ro.amqp = &f->co;
  ro.name = prefix;
  ro.retry_base_ms = 100;
  ro.retry_max_ms = 400;
  f->ro = ro;
}

static inline void rfx_fini(rfx *f) {
  wt_amqp_delete_queue(f->amqp, f->queue);
  wt_amqp_delete_exchange(f->amqp, f->exchange);
  wt_amqp_close(f->amqp);
  PQfinish(f->pg);
  wt_db_drop(f->db);
}

/* Appends n WidgetUpdated events in one transaction to `exchange`, aggregate
 * "<agg>-<i % aggs>", version = seq (increasing), causation set on even ones. Event ids
 * are written to ids (may be NULL, n entries). */
static inline void rfx_append(PGconn *pg, const char *exchange, const char *agg, int aggs, int n,
                              int64_t first_version, char (*ids)[WR_UUID_STRLEN]) {
  wr_err err = {0};
  if (wr_db_exec(pg, "BEGIN", &err) != 0)
    fail_msg("BEGIN: %s", err.msg);
  for (int i = 0; i < n; i++) {
    Testev__V1__WidgetUpdated ev = TESTEV__V1__WIDGET_UPDATED__INIT;
    Warren__V1__EventMeta m = WARREN__V1__EVENT_META__INIT;
    Testev__V1__Widget d = TESTEV__V1__WIDGET__INIT;
    char aid[64];
    snprintf(aid, sizeof aid, "%s-%d", agg, aggs > 0 ? i % aggs : i);
    m.aggregate_id = aid;
    m.version = (uint64_t)(first_version + i);
    d.id = aid;
    d.name = "relay";
    d.count = first_version + i;
    ev.meta = &m;
    ev.data = &d;
    wr_outbox ob = {.conn = pg,
                    .source_service = "relay-test",
                    .correlation_id = "corr-1",
                    .causation_id = i % 2 == 0 ? "0190a000-0000-7000-8000-00000000cafe" : NULL,
                    .exchange = exchange,
                    .err = &err};
    if (wr_outbox_append(&ob, &testev_events[TESTEV_UPDATED], &ev.base) != 0)
      fail_msg("append: %s", err.msg);
    if (ids)
      memcpy(ids[i], ob.last_event_id, WR_UUID_STRLEN);
  }
  if (wr_db_exec(pg, "COMMIT", &err) != 0)
    fail_msg("COMMIT: %s", err.msg);
}

static inline long long rfx_outbox_rows(PGconn *pg) {
  return wt_pg_scalar(pg, "SELECT count(*) FROM warren_outbox");
}

static inline const amqp_field_value_t *rfx_header(const amqp_table_t *t, const char *key) {
  for (int i = 0; i < t->num_entries; i++)
    if (t->entries[i].key.len == strlen(key) &&
        memcmp(t->entries[i].key.bytes, key, t->entries[i].key.len) == 0)
      return &t->entries[i].value;
  return NULL;
}

static inline void rfx_bytes(amqp_bytes_t b, char *out, size_t outsz) {
  snprintf(out, outsz, "%.*s", (int)b.len, (const char *)b.bytes);
}

/* Starts a no-ack consumer on queue (channel 1 of c). */
static inline void rfx_consume(amqp_connection_state_t c, const char *queue) {
  amqp_basic_qos(c, 1, 0, 2000, 0);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
}

/* Receives one message within timeout_ms. Returns false on timeout. Fills g; the
 * envelope is checked by check (may be NULL) before it is destroyed. */
static inline bool rfx_receive(amqp_connection_state_t c, int timeout_ms, got_msg *g,
                               void (*check)(const amqp_envelope_t *env, void *user), void *user) {
  amqp_envelope_t env;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  amqp_maybe_release_buffers(c);
  amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return false;
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    fail_msg("consume failed: reply type %d, library error %d", r.reply_type, r.library_error);
  memset(g, 0, sizeof *g);
  rfx_bytes(env.message.properties.message_id, g->message_id, sizeof g->message_id);
  rfx_bytes(env.routing_key, g->routing_key, sizeof g->routing_key);
  const amqp_field_value_t *v = rfx_header(&env.message.properties.headers, "x-version");
  g->version = v && v->kind == AMQP_FIELD_KIND_I64 ? v->value.i64 : -1;
  v = rfx_header(&env.message.properties.headers, "x-aggregate-id");
  if (v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
    rfx_bytes(v->value.bytes, g->aggregate_id, sizeof g->aggregate_id);
  if (check)
    check(&env, user);
  amqp_destroy_envelope(&env);
  return true;
}

/* Receives until `want` messages arrived or nothing came for idle_ms. Returns the
 * count; messages in out (capacity cap). */
static inline int rfx_receive_all(amqp_connection_state_t c, int want, int idle_ms, got_msg *out,
                                  int cap) {
  int n = 0;
  got_msg g;
  while (n < want && rfx_receive(c, idle_ms, &g, NULL, NULL)) {
    if (n < cap)
      out[n] = g;
    n++;
  }
  return n;
}

typedef struct rfx_wait_rows {
  PGconn *pg;
  long long want;
} rfx_wait_rows;

static inline bool rfx_rows_are(void *user) {
  rfx_wait_rows *w = user;
  return rfx_outbox_rows(w->pg) == w->want;
}

#endif
