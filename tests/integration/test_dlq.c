/* test_dlq.c: DLQ tooling on the real broker: browsing keeps every message and parses
 * warren's and RabbitMQ's headers; replay moves selected messages back to their
 * original exchange exactly once (stripped of x-death/x-warren-*), removing them only
 * after the broker confirmed the copy, and leaves them in place when the copy cannot
 * be delivered; purge removes the selected ones; hostile headers are survived. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/dlq.h>
#include <warren/topology.h>

typedef struct fixture {
  char q[64], ex[64], dlq[300], dlx[300];
  wr_conn *c;
  wr_topology *t;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  wt_unique(f->q, sizeof f->q, "dlq-work");
  wt_unique(f->ex, sizeof f->ex, "dlq-ex");
  wr_topology_dlq_name(f->q, f->dlq, sizeof f->dlq);
  wr_topology_dlx_name(f->q, f->dlx, sizeof f->dlx);
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  o.rpc_timeout_ms = 10000;
  wr_err err;
  if (wr_conn_new(&o, &f->c, &err) != 0 || wr_conn_open(f->c, &err) != 0 ||
      wr_conn_confirm_mode(f->c, &err) != 0)
    fail_msg("connect: %s", err.msg);
  assert_int_equal(wr_topology_new(&f->t), 0);
  assert_int_equal(wr_topology_exchange(f->t, f->ex, "topic"), 0);
  wr_consumer_queue cq = {.queue = f->q, .type = WR_QUEUE_QUORUM, .delivery_limit = 5};
  assert_int_equal(wr_topology_consumer_queue(f->t, &cq), 0);
  assert_int_equal(wr_topology_bind(f->t, f->q, f->ex, "test.v1.Created"), 0);
  if (wr_topology_declare(f->t, f->c, &err) != 0)
    fail_msg("declare: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  amqp_connection_state_t raw = wt_amqp_connect();
  wt_amqp_delete_queue(raw, f->q);
  wt_amqp_delete_queue(raw, f->dlq);
  wt_amqp_delete_exchange(raw, f->dlx);
  wt_amqp_delete_exchange(raw, f->ex);
  wt_amqp_close(raw);
  wr_conn_free(f->c);
  wr_topology_free(f->t);
  free(f);
  return 0;
}

static amqp_table_entry_t hstr(const char *k, const char *v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(k);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(v);
  return e;
}

static amqp_table_entry_t hint(const char *k, int64_t v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(k);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = v;
  return e;
}

/* Puts a message into the DLQ the way the consumer does: a copy published to the DLX
 * with warren's headers. */
static void dead_letter(fixture *f, const char *id, const char *type, const char *body,
                        const char *error, int attempts) {
  amqp_table_entry_t h[8];
  int n = 0;
  h[n++] = hstr("x-aggregate-type", "customer");
  h[n++] = hstr("x-aggregate-id", id);
  h[n++] = hint("x-version", 3);
  h[n++] = hstr("x-warren-error", error);
  h[n++] = hint("x-warren-attempts", attempts);
  h[n++] = hint("x-warren-failed-at", 1700000000123LL);
  h[n++] = hstr("x-warren-original-exchange", f->ex);
  h[n++] = hstr("x-warren-original-routing-key", "test.v1.Created");
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG |
             AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  p.delivery_mode = 2;
  p.message_id = amqp_cstring_bytes(id);
  p.type = amqp_cstring_bytes(type);
  p.correlation_id = amqp_cstring_bytes("corr-1");
  p.headers = (amqp_table_t){n, h};
  wr_publish pub = {.exchange = f->dlx,
                    .routing_key = f->q,
                    .body = body,
                    .len = strlen(body),
                    .props = &p,
                    .mandatory = true};
  uint64_t seq;
  wr_err err;
  if (wr_conn_publish(f->c, &pub, &seq, &err) != 0 ||
      wr_conn_wait_confirms(f->c, seq, 10000, NULL, NULL, &err) != 0)
    fail_msg("dead-letter: %s", err.msg);
}

static long depth_now(const char *q) {
  amqp_connection_state_t raw = wt_amqp_connect();
  long n = wt_amqp_queue_depth(raw, q);
  wt_amqp_close(raw);
  return n;
}

/* The ready-message count, once it equals `want` (or the last value after 10 s): when
 * a walk closes its channel, a quorum queue takes the held messages back
 * asynchronously, so the count may lag for a moment. */
static long depth_is(const char *q, long want) {
  long n = depth_now(q);
  for (int i = 0; i < 200 && n != want; i++) {
    usleep(50 * 1000);
    n = depth_now(q);
  }
  return n;
}

typedef struct seen {
  size_t n;
  wr_dlq_entry e[16];
  char body[16][64];
  int stop_after;
} seen;

static int collect(const wr_dlq_entry *e, void *user) {
  seen *s = user;
  if (s->n < 16) {
    s->e[s->n] = *e;
    snprintf(s->body[s->n], sizeof s->body[s->n], "%.*s", (int)e->body_len, (const char *)e->body);
    s->e[s->n].body = NULL;
    s->e[s->n].props = NULL;
  }
  s->n++;
  return s->stop_after && (int)s->n >= s->stop_after;
}

static void browse_keeps_messages(void **state) {
  fixture *f = *state;
  dead_letter(f, "id-1", "test.v1.Created", "body-1", "handler said no", 4);
  dead_letter(f, "id-2", "test.v1.Updated", "body-2", "boom", 2);
  dead_letter(f, "id-3", "test.v1.Created", "body-3", "again", 1);
  seen s;
  memset(&s, 0, sizeof s);
  wr_err err;
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 3);
  assert_string_equal(s.e[0].message_id, "id-1");
  assert_string_equal(s.e[0].type, "test.v1.Created");
  assert_string_equal(s.e[0].aggregate_type, "customer");
  assert_string_equal(s.e[0].aggregate_id, "id-1");
  assert_string_equal(s.e[0].correlation_id, "corr-1");
  assert_string_equal(s.e[0].error, "handler said no");
  assert_string_equal(s.e[0].exchange, f->ex);
  assert_string_equal(s.e[0].routing_key, "test.v1.Created");
  assert_string_equal(s.e[0].queue, f->q);
  assert_int_equal(s.e[0].attempts, 4);
  assert_int_equal(s.e[0].failed_at_ms, 1700000000123LL);
  assert_string_equal(s.body[0], "body-1");
  assert_int_equal(s.e[2].index, 2);
  /* nothing was taken away */
  assert_int_equal(depth_is(f->dlq, 3), 3);
  memset(&s, 0, sizeof s);
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 3);
  /* limit, and a callback that stops */
  memset(&s, 0, sizeof s);
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 2, collect, &s, &err), 0);
  assert_int_equal(s.n, 2);
  memset(&s, 0, sizeof s);
  s.stop_after = 1;
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(depth_is(f->dlq, 3), 3);
  /* a missing queue: WR_ENOTFOUND, and channel 1 is untouched */
  uint64_t gen = wr_conn_generation(f->c);
  char missing[64];
  wt_unique(missing, sizeof missing, "dlq-missing");
  assert_int_equal(wr_dlq_browse(f->c, missing, 0, collect, &s, &err), WR_ENOTFOUND);
  assert_non_null(strstr(err.msg, missing));
  assert_int_equal(wr_conn_generation(f->c), gen);
  assert_true(wr_conn_is_open(f->c));
  /* bad arguments */
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, NULL, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_dlq_browse(NULL, f->dlq, 0, collect, &s, &err), WR_EINVAL);
  assert_int_equal(wr_dlq_browse(f->c, "", 0, collect, &s, &err), WR_EINVAL);
  /* the connection still publishes fine */
  dead_letter(f, "id-4", "test.v1.Created", "body-4", "x", 1);
  assert_int_equal(depth_is(f->dlq, 4), 4);
}

/* Reads all messages of the work queue (acking them); returns how many. */
static size_t drain_work(fixture *f, char ids[][64], size_t max, bool *clean) {
  size_t n = 0;
  *clean = true;
  for (;;) {
    amqp_envelope_t env;
    wr_err err;
    int rc = wr_conn_get(f->c, f->q, &env, &err);
    if (rc == WR_ENOTFOUND)
      break;
    assert_int_equal(rc, 0);
    const amqp_basic_properties_t *p = &env.message.properties;
    if (n < max)
      snprintf(ids[n], 64, "%.*s", (int)p->message_id.len, (const char *)p->message_id.bytes);
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
      for (int i = 0; i < p->headers.num_entries; i++) {
        amqp_bytes_t k = p->headers.entries[i].key;
        if ((k.len >= 9 && memcmp(k.bytes, "x-warren-", 9) == 0) ||
            (k.len == 7 && memcmp(k.bytes, "x-death", 7) == 0))
          *clean = false;
      }
      if (!wr_table_get(&p->headers, "x-aggregate-type"))
        *clean = false; /* other headers are kept */
    }
    assert_int_equal(wr_conn_ack(f->c, env.delivery_tag, false, &err), 0);
    amqp_destroy_envelope(&env);
    n++;
  }
  return n;
}

static void replay_moves_exactly_once(void **state) {
  fixture *f = *state;
  dead_letter(f, "r-1", "test.v1.Created", "b1", "e1", 4);
  dead_letter(f, "r-2", "test.v1.Updated", "b2", "e2", 4);
  dead_letter(f, "r-3", "test.v1.Created", "b3", "e3", 4);
  dead_letter(f, "r-4", "test.v1.Deleted", "b4", "e4", 4);
  wr_err err;
  size_t n = 99;
  /* by id */
  const char *ids[] = {"r-2", NULL};
  wr_dlq_filter by_id = {.ids = ids};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &by_id, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(depth_is(f->dlq, 3), 3);
  char got[8][64];
  bool clean;
  assert_int_equal(drain_work(f, got, 8, &clean), 1);
  assert_string_equal(got[0], "r-2");
  assert_true(clean);
  /* the same id again: nothing left to replay */
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &by_id, &n, &err), 0);
  assert_int_equal(n, 0);
  /* by type */
  wr_dlq_filter by_type = {.type = "test.v1.Created"};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &by_type, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_int_equal(drain_work(f, got, 8, &clean), 2);
  assert_true(clean);
  assert_int_equal(depth_is(f->dlq, 1), 1);
  /* all */
  wr_dlq_filter all = {.all = true};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(depth_is(f->dlq, 0), 0);
  assert_int_equal(drain_work(f, got, 8, &clean), 1);
  assert_string_equal(got[0], "r-4");
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 0);
  /* selecting nothing is an error, not a silent no-op */
  wr_dlq_filter none = {0};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &none, &n, &err), WR_EINVAL);
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, NULL, &n, &err), WR_EINVAL);
}

static void replay_from_broker_dead_lettering(void **state) {
  fixture *f = *state;
  /* published to the domain exchange, rejected by the work queue's consumer: only
   * RabbitMQ's x-death says where it came from */
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.delivery_mode = 2;
  p.message_id = amqp_cstring_bytes("x-1");
  p.type = amqp_cstring_bytes("test.v1.Created");
  wr_publish pub = {.exchange = f->ex,
                    .routing_key = "test.v1.Created",
                    .body = "xd",
                    .len = 2,
                    .props = &p,
                    .mandatory = true};
  uint64_t seq;
  wr_err err;
  assert_int_equal(wr_conn_publish(f->c, &pub, &seq, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(f->c, seq, 10000, NULL, NULL, &err), 0);
  amqp_envelope_t env;
  assert_int_equal(wr_conn_get(f->c, f->q, &env, &err), 0);
  assert_int_equal(wr_conn_reject(f->c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(depth_is(f->dlq, 1), 1);
  seen s;
  memset(&s, 0, sizeof s);
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.e[0].error, "rejected");
  assert_string_equal(s.e[0].exchange, f->ex);
  assert_string_equal(s.e[0].routing_key, "test.v1.Created");
  assert_string_equal(s.e[0].queue, f->q);
  assert_int_equal(s.e[0].attempts, 1);
  assert_true(s.e[0].failed_at_ms > 1600000000000LL);
  size_t n;
  wr_dlq_filter all = {.all = true};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 1);
  char got[4][64];
  bool clean;
  assert_int_equal(drain_work(f, got, 4, &clean), 1);
  assert_string_equal(got[0], "x-1");
}

static void replay_failure_keeps_message(void **state) {
  fixture *f = *state;
  dead_letter(f, "k-1", "test.v1.Created", "b", "e", 1);
  wr_err err;
  size_t n = 99;
  wr_dlq_filter all = {.all = true};
  /* the work queue's binding is gone: the mandatory copy comes back unroutable */
  amqp_connection_state_t raw = wt_amqp_connect();
  amqp_queue_unbind(raw, 1, amqp_cstring_bytes(f->q), amqp_cstring_bytes(f->ex),
                    amqp_cstring_bytes("test.v1.Created"), amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(raw).reply_type, AMQP_RESPONSE_NORMAL);
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), WR_ERETURNED);
  assert_int_equal(n, 0);
  assert_non_null(strstr(err.msg, "k-1"));
  assert_int_equal(depth_is(f->dlq, 1), 1);
  /* the exchange is gone: the broker closes the side channel (404); still kept */
  wt_amqp_delete_exchange(raw, f->ex);
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), WR_ENOTFOUND);
  assert_int_equal(err.amqp_reply, 404);
  assert_int_equal(depth_is(f->dlq, 1), 1);
  assert_true(wr_conn_is_open(f->c));
  wt_amqp_close(raw);
  /* restored: the replay goes through */
  if (wr_topology_declare(f->t, f->c, &err) != 0)
    fail_msg("redeclare: %s", err.msg);
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(depth_is(f->dlq, 0), 0);
  char got[4][64];
  bool clean;
  assert_int_equal(drain_work(f, got, 4, &clean), 1);
}

static void purge_selected_and_all(void **state) {
  fixture *f = *state;
  dead_letter(f, "p-1", "test.v1.Created", "b", "e", 1);
  dead_letter(f, "p-2", "test.v1.Updated", "b", "e", 1);
  dead_letter(f, "p-3", "test.v1.Created", "b", "e", 1);
  wr_err err;
  size_t n = 99;
  const char *ids[] = {"p-3", "nope", NULL};
  wr_dlq_filter by_id = {.ids = ids};
  assert_int_equal(wr_dlq_purge(f->c, f->dlq, &by_id, &n, &err), 0);
  assert_int_equal(n, 1);
  seen s;
  memset(&s, 0, sizeof s);
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 2);
  assert_true(strcmp(s.e[0].message_id, "p-3") != 0 && strcmp(s.e[1].message_id, "p-3") != 0);
  /* type and ids together: both must match */
  const char *ids2[] = {"p-1", "p-2", NULL};
  wr_dlq_filter both = {.ids = ids2, .type = "test.v1.Updated"};
  assert_int_equal(wr_dlq_purge(f->c, f->dlq, &both, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(depth_is(f->dlq, 1), 1);
  wr_dlq_filter all = {.all = true};
  assert_int_equal(wr_dlq_purge(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(depth_is(f->dlq, 0), 0);
  char missing[64];
  wt_unique(missing, sizeof missing, "dlq-missing");
  assert_int_equal(wr_dlq_purge(f->c, missing, &all, &n, &err), WR_ENOTFOUND);
  assert_int_equal(wr_dlq_purge(f->c, missing, &by_id, &n, &err), WR_ENOTFOUND);
  assert_true(wr_conn_is_open(f->c));
}

/* ---- hostile headers -------------------------------------------------------------- */

static void publish_raw_headers(fixture *f, const char *id, amqp_table_t headers) {
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
  p.message_id = amqp_cstring_bytes(id);
  p.headers = headers;
  wr_publish pub = {
      .exchange = "", .routing_key = f->dlq, .body = "h", .len = 1, .props = &p, .mandatory = true};
  uint64_t seq;
  wr_err err;
  if (wr_conn_publish(f->c, &pub, &seq, &err) != 0 ||
      wr_conn_wait_confirms(f->c, seq, 10000, NULL, NULL, &err) != 0)
    fail_msg("publish hostile: %s", err.msg);
}

static void hostile_headers(void **state) {
  fixture *f = *state;
  /* 1: every header of the wrong kind */
  amqp_table_entry_t h1[8];
  h1[0] = hint("x-death", 42);
  h1[1] = hint("x-warren-error", 7);
  h1[2] = hstr("x-warren-attempts", "seven");
  h1[3] = hstr("x-warren-failed-at", "not a time");
  h1[4] = hint("x-warren-original-exchange", 1);
  h1[5] = hint("x-aggregate-id", 5);
  h1[6] = hstr("x-first-death-queue", "");
  h1[7] = hint("x-warren-original-routing-key", 2);
  publish_raw_headers(f, "h-1", (amqp_table_t){8, h1});

  /* 2: x-death with entries of every wrong shape, then a huge array */
  amqp_field_value_t weird[4];
  weird[0].kind = AMQP_FIELD_KIND_I32;
  weird[0].value.i32 = -1;
  weird[1].kind = AMQP_FIELD_KIND_UTF8;
  weird[1].value.bytes = amqp_cstring_bytes("queue");
  amqp_table_entry_t bad_entry[5];
  bad_entry[0] = hint("queue", 3);
  bad_entry[1] = hint("reason", 4);
  bad_entry[2] = hstr("count", "many");
  bad_entry[3] = hstr("routing-keys", "not-an-array");
  bad_entry[4].key = amqp_cstring_bytes("time");
  bad_entry[4].value.kind = AMQP_FIELD_KIND_TIMESTAMP;
  bad_entry[4].value.value.u64 = UINT64_MAX;
  weird[2].kind = AMQP_FIELD_KIND_TABLE;
  weird[2].value.table = (amqp_table_t){5, bad_entry};
  amqp_field_value_t empty_rks[1];
  amqp_table_entry_t odd_entry[3];
  odd_entry[0] = hstr("exchange", "");
  odd_entry[1].key = amqp_cstring_bytes("routing-keys");
  odd_entry[1].value.kind = AMQP_FIELD_KIND_ARRAY;
  odd_entry[1].value.value.array = (amqp_array_t){0, empty_rks};
  odd_entry[2] = hint("count", -5);
  weird[3].kind = AMQP_FIELD_KIND_TABLE;
  weird[3].value.table = (amqp_table_t){3, odd_entry};
  amqp_table_entry_t h2[2];
  h2[0].key = amqp_cstring_bytes("x-death");
  h2[0].value.kind = AMQP_FIELD_KIND_ARRAY;
  h2[0].value.value.array = (amqp_array_t){4, weird};
  /* an error text longer than the entry, with control characters */
  char longtext[3000];
  for (size_t i = 0; i < sizeof longtext - 1; i++)
    longtext[i] = (char)(i % 50 == 0 ? '\n' : 'a' + (char)(i % 26));
  longtext[sizeof longtext - 1] = '\0';
  h2[1] = hstr("x-warren-error", longtext);
  publish_raw_headers(f, "h-2", (amqp_table_t){2, h2});

  /* 3: 1000 x-death entries (about as many as fit in one 128 KiB header frame) */
  size_t big = 1000;
  amqp_field_value_t *many = calloc(big, sizeof *many);
  amqp_table_entry_t(*ents)[3] = calloc(big, sizeof *ents);
  amqp_field_value_t rk;
  rk.kind = AMQP_FIELD_KIND_UTF8;
  rk.value.bytes = amqp_cstring_bytes("test.v1.Created");
  for (size_t i = 0; i < big; i++) {
    ents[i][0] = hstr("queue", f->q);
    ents[i][1] = hstr("exchange", i == big - 1 ? f->ex : "");
    ents[i][2].key = amqp_cstring_bytes("routing-keys");
    ents[i][2].value.kind = AMQP_FIELD_KIND_ARRAY;
    ents[i][2].value.value.array = (amqp_array_t){1, &rk};
    many[i].kind = AMQP_FIELD_KIND_TABLE;
    many[i].value.table = (amqp_table_t){3, ents[i]};
  }
  amqp_table_entry_t h3[1];
  h3[0].key = amqp_cstring_bytes("x-death");
  h3[0].value.kind = AMQP_FIELD_KIND_ARRAY;
  h3[0].value.value.array = (amqp_array_t){(int)big, many};
  publish_raw_headers(f, "h-3", (amqp_table_t){1, h3});
  free(many);
  free(ents);

  seen s;
  memset(&s, 0, sizeof s);
  wr_err err;
  assert_int_equal(wr_dlq_browse(f->c, f->dlq, 0, collect, &s, &err), 0);
  assert_int_equal(s.n, 3);
  for (size_t i = 0; i < 3; i++) {
    /* every text field is a terminated, printable string */
    const wr_dlq_entry *e = &s.e[i];
    const char *fields[] = {e->message_id, e->type,     e->aggregate_type, e->aggregate_id,
                            e->error,      e->exchange, e->routing_key,    e->queue};
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
      for (const char *p = fields[k]; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
  }
  /* 1: nothing usable but the DLQ's name: origin = default exchange -> work queue */
  assert_string_equal(s.e[0].error, "");
  assert_int_equal(s.e[0].attempts, 0);
  assert_int_equal(s.e[0].failed_at_ms, 0);
  assert_string_equal(s.e[0].aggregate_id, "");
  assert_string_equal(s.e[0].exchange, "");
  assert_string_equal(s.e[0].routing_key, f->q);
  /* 2: the error is truncated, its newlines replaced */
  assert_int_equal(strlen(s.e[1].error), sizeof s.e[1].error - 1);
  assert_null(strchr(s.e[1].error, '\n'));
  assert_int_equal(s.e[1].attempts, 0);
  /* 3: the origin is the oldest entry that names an exchange */
  assert_string_equal(s.e[2].exchange, f->ex);
  assert_string_equal(s.e[2].routing_key, "test.v1.Created");
  assert_string_equal(s.e[2].queue, f->q);

  /* replaying them works and delivers each exactly once to the work queue */
  size_t n;
  wr_dlq_filter all = {.all = true};
  assert_int_equal(wr_dlq_replay(f->c, f->dlq, &all, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_int_equal(depth_is(f->dlq, 0), 0);
  char got[8][64];
  bool clean;
  assert_int_equal(drain_work(f, got, 8, &clean), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(browse_keeps_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(replay_moves_exactly_once, setup, teardown),
      cmocka_unit_test_setup_teardown(replay_from_broker_dead_lettering, setup, teardown),
      cmocka_unit_test_setup_teardown(replay_failure_keeps_message, setup, teardown),
      cmocka_unit_test_setup_teardown(purge_selected_and_all, setup, teardown),
      cmocka_unit_test_setup_teardown(hostile_headers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
