// warren-test: link=warren_test_events timeout=120
/* test_outbox.c: wr_outbox_append against the real PostgreSQL: a committed append
 * leaves one row whose payload decodes to the event with every meta field filled; a
 * rolled-back one leaves nothing; bad input (no transaction, missing aggregate_id or
 * version, wrong types, bad ids) fails with WR_EINVAL and inserts nothing, keeping the
 * caller's transaction usable; the caller's event is never modified. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/db.h>
#include <warren/error.h>
#include <warren/outbox.h>
#include <warren/util.h>

#include "testev_schema.h"

typedef struct fixture {
  char url[512];
  PGconn *c;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->url, sizeof f->url, "%s", wt_db_create("outbox"));
  wr_err err = {0};
  if (wr_db_connect(f->url, "test-outbox", &f->c, &err) != 0)
    fail_msg("connect: %s", err.msg);
  if (wr_db_migrate_runtime(f->c, &err) != 0)
    fail_msg("migrate: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  PQfinish(f->c);
  wt_db_drop(f->url);
  free(f);
  return 0;
}

static long long rows(PGconn *c) {
  return wt_pg_scalar(c, "SELECT count(*) FROM warren_outbox");
}

/* A WidgetCreated with meta aggregate_id/version set and everything else empty. */
typedef struct widget_ev {
  Testev__V1__WidgetCreated ev;
  Warren__V1__EventMeta meta;
  Testev__V1__Widget data;
} widget_ev;

static void widget_init(widget_ev *w, const char *agg, uint64_t version) {
  Testev__V1__WidgetCreated e = TESTEV__V1__WIDGET_CREATED__INIT;
  Warren__V1__EventMeta m = WARREN__V1__EVENT_META__INIT;
  Testev__V1__Widget d = TESTEV__V1__WIDGET__INIT;
  w->ev = e;
  w->meta = m;
  w->data = d;
  w->meta.aggregate_id = (char *)agg;
  w->meta.version = version;
  w->data.id = (char *)agg;
  w->data.name = "sprocket";
  w->data.count = 42;
  w->ev.meta = &w->meta;
  w->ev.data = &w->data;
}

/* Decodes the payload of the row with this event id. Caller frees with
 * testev__v1__widget_created__free_unpacked. */
static Testev__V1__WidgetCreated *row_event(PGconn *c, const char *event_id) {
  const char *p[1] = {event_id};
  PGresult *r = PQexecParams(c, "SELECT payload FROM warren_outbox WHERE event_id = $1", 1, NULL, p,
                             NULL, NULL, 1);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  Testev__V1__WidgetCreated *e = testev__v1__widget_created__unpack(
      NULL, (size_t)PQgetlength(r, 0, 0), (const uint8_t *)PQgetvalue(r, 0, 0));
  PQclear(r);
  assert_non_null(e);
  return e;
}

static void append_commit_fills_meta(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-1", 3);
  wr_err err = {0};
  wr_outbox ob = {.conn = f->c,
                  .source_service = "widgets",
                  .source_instance = "widgets-1",
                  .correlation_id = "req-77",
                  .causation_id = "0190a000-0000-7000-8000-000000000001",
                  .err = &err};
  int64_t before = wr_now_ns() / 1000000000;
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), 0);
  assert_int_equal(wr_db_exec(f->c, "COMMIT", NULL), 0);
  int64_t after = wr_now_ns() / 1000000000 + 1;
  assert_true(wr_uuid_valid(ob.last_event_id));

  /* The caller's event is untouched. */
  assert_ptr_equal(w.ev.meta, &w.meta);
  assert_string_equal(w.meta.event_id, "");
  assert_string_equal(w.meta.event_type, "");
  assert_null(w.meta.occurred_at);
  assert_string_equal(w.meta.correlation_id, "");

  /* The row's columns. */
  const char *p[1] = {ob.last_event_id};
  PGresult *r = PQexecParams(
      f->c,
      "SELECT event_type, exchange, routing_key, aggregate_type, aggregate_id, version, "
      "correlation_id, causation_id, source_service, attempts, last_error IS NULL, "
      "floor(extract(epoch from occurred_at))::bigint, next_attempt_at <= now() "
      "FROM warren_outbox WHERE event_id = $1",
      1, NULL, p, NULL, NULL, 0);
  assert_int_equal(PQntuples(r), 1);
  assert_string_equal(PQgetvalue(r, 0, 0), "testev.v1.WidgetCreated");
  assert_string_equal(PQgetvalue(r, 0, 1), TESTEV_EXCHANGE);
  assert_string_equal(PQgetvalue(r, 0, 2), "testev.v1.WidgetCreated");
  assert_string_equal(PQgetvalue(r, 0, 3), "widget");
  assert_string_equal(PQgetvalue(r, 0, 4), "w-1");
  assert_string_equal(PQgetvalue(r, 0, 5), "3");
  assert_string_equal(PQgetvalue(r, 0, 6), "req-77");
  assert_string_equal(PQgetvalue(r, 0, 7), "0190a000-0000-7000-8000-000000000001");
  assert_string_equal(PQgetvalue(r, 0, 8), "widgets");
  assert_string_equal(PQgetvalue(r, 0, 9), "0");
  assert_string_equal(PQgetvalue(r, 0, 10), "t");
  long long occ = strtoll(PQgetvalue(r, 0, 11), NULL, 10);
  assert_true(occ >= before && occ <= after);
  assert_string_equal(PQgetvalue(r, 0, 12), "t");
  PQclear(r);

  /* The payload: every meta field filled, data intact. */
  Testev__V1__WidgetCreated *e = row_event(f->c, ob.last_event_id);
  assert_non_null(e->meta);
  assert_string_equal(e->meta->event_id, ob.last_event_id);
  assert_string_equal(e->meta->event_type, "testev.v1.WidgetCreated");
  assert_string_equal(e->meta->aggregate_type, "widget");
  assert_string_equal(e->meta->aggregate_id, "w-1");
  assert_int_equal(e->meta->version, 3);
  assert_non_null(e->meta->occurred_at);
  assert_int_equal(e->meta->occurred_at->seconds, occ);
  assert_string_equal(e->meta->correlation_id, "req-77");
  assert_string_equal(e->meta->causation_id, "0190a000-0000-7000-8000-000000000001");
  assert_string_equal(e->meta->source_service, "widgets");
  assert_string_equal(e->meta->source_instance, "widgets-1");
  assert_non_null(e->data);
  assert_string_equal(e->data->id, "w-1");
  assert_string_equal(e->data->name, "sprocket");
  assert_int_equal(e->data->count, 42);
  testev__v1__widget_created__free_unpacked(e, NULL);
  assert_int_equal(wr_outbox_pending(f->c, &err), 1);
}

static void caller_values_win_and_defaults(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-2", 1);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1700000000;
  ts.nanos = 123456000;
  w.meta.occurred_at = &ts;
  w.meta.event_id = "0190A000-0000-7ABC-8DEF-00000000BEEF"; /* uppercase is normalised */
  w.meta.correlation_id = "from-meta";
  w.meta.source_service = "meta-svc";
  wr_outbox ob = {.conn = f->c,
                  .source_service = "ob-svc",
                  .correlation_id = "from-ob",
                  .exchange = "other.events"};
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), 0);
  assert_string_equal(ob.last_event_id, "0190a000-0000-7abc-8def-00000000beef");

  /* No correlation anywhere: the event starts its own flow. No causation: NULL. */
  widget_ev w2;
  widget_init(&w2, "w-3", 9);
  wr_outbox ob2 = {.conn = f->c};
  assert_int_equal(wr_outbox_append(&ob2, &testev_events[TESTEV_CREATED], &w2.ev.base), 0);
  assert_int_equal(wr_db_exec(f->c, "COMMIT", NULL), 0);

  Testev__V1__WidgetCreated *e = row_event(f->c, ob.last_event_id);
  assert_string_equal(e->meta->event_id, "0190a000-0000-7abc-8def-00000000beef");
  assert_int_equal(e->meta->occurred_at->seconds, 1700000000);
  assert_int_equal(e->meta->occurred_at->nanos, 123456000);
  assert_string_equal(e->meta->correlation_id, "from-meta");
  assert_string_equal(e->meta->source_service, "meta-svc");
  testev__v1__widget_created__free_unpacked(e, NULL);
  const char *p[1] = {ob.last_event_id};
  PGresult *r = PQexecParams(f->c,
                             "SELECT exchange, occurred_at = '2023-11-14T22:13:20.123456Z',"
                             " source_service, correlation_id FROM warren_outbox "
                             "WHERE event_id = $1",
                             1, NULL, p, NULL, NULL, 0);
  assert_string_equal(PQgetvalue(r, 0, 0), "other.events");
  assert_string_equal(PQgetvalue(r, 0, 1), "t");
  assert_string_equal(PQgetvalue(r, 0, 2), "meta-svc");
  assert_string_equal(PQgetvalue(r, 0, 3), "from-meta");
  PQclear(r);

  e = row_event(f->c, ob2.last_event_id);
  assert_string_equal(e->meta->correlation_id, ob2.last_event_id);
  assert_string_equal(e->meta->causation_id, "");
  assert_string_equal(e->meta->source_service, "");
  testev__v1__widget_created__free_unpacked(e, NULL);
  p[0] = ob2.last_event_id;
  r = PQexecParams(f->c,
                   "SELECT causation_id IS NULL, source_service FROM warren_outbox "
                   "WHERE event_id = $1",
                   1, NULL, p, NULL, NULL, 0);
  assert_string_equal(PQgetvalue(r, 0, 0), "t");
  assert_string_equal(PQgetvalue(r, 0, 1), "");
  PQclear(r);
}

static void rollback_leaves_nothing(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-rb", 1);
  wr_outbox ob = {.conn = f->c, .source_service = "widgets"};
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), 0);
  assert_int_equal(rows(f->c), 5); /* visible inside the transaction */
  assert_int_equal(wr_db_exec(f->c, "ROLLBACK", NULL), 0);
  assert_int_equal(rows(f->c), 0);
  assert_int_equal(wr_outbox_pending(f->c, NULL), 0);
}

static void outside_transaction_is_einval(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-out", 1);
  wr_err err = {0};
  wr_outbox ob = {.conn = f->c, .source_service = "widgets", .err = &err};
  strcpy(ob.last_event_id, "unchanged");
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), WR_EINVAL);
  assert_int_equal(err.code, WR_EINVAL);
  assert_non_null(strstr(err.msg, "transaction"));
  assert_string_equal(ob.last_event_id, "unchanged");
  assert_int_equal(rows(f->c), 0);
  /* A failed transaction does not count as open. */
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  assert_int_equal(wr_db_exec(f->c, "SELECT 1/0", NULL), WR_EDB);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), WR_EINVAL);
  assert_int_equal(wr_db_exec(f->c, "ROLLBACK", NULL), 0);
  assert_int_equal(rows(f->c), 0);
}

/* Appends inside a transaction, expects `want`, checks the transaction is still
 * usable, and that nothing was inserted. */
static void expect_refused(fixture *f, wr_outbox *ob, const wr_event_type *t, ProtobufCMessage *ev,
                           int want, const char *msg_part) {
  wr_err err = {0};
  ob->err = &err;
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  int rc = wr_outbox_append(ob, t, ev);
  if (rc != want)
    fail_msg("expected %s, got %s: %s", wr_errname(want), wr_errname(rc), err.msg);
  if (msg_part && !strstr(err.msg, msg_part))
    fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg_part);
  assert_int_equal(PQtransactionStatus(f->c), PQTRANS_INTRANS);
  assert_int_equal(wr_db_exec(f->c, "COMMIT", NULL), 0);
  assert_int_equal(rows(f->c), 0);
  ob->err = NULL;
}

static void bad_input_is_refused(void **state) {
  fixture *f = *state;
  wr_outbox ob = {.conn = f->c, .source_service = "widgets"};
  const wr_event_type *created = &testev_events[TESTEV_CREATED];
  widget_ev w;

  widget_init(&w, "", 1);
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "aggregate_id");
  widget_init(&w, NULL, 1);
  w.meta.aggregate_id = NULL;
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "aggregate_id");
  char longid[300];
  memset(longid, 'x', 257);
  longid[257] = '\0';
  widget_init(&w, longid, 1);
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "256");
  widget_init(&w, "w", 0);
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "version");
  widget_init(&w, "w", (uint64_t)INT64_MAX + 1);
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "version");
  /* No meta at all: a fresh one has no aggregate_id. */
  widget_init(&w, "w", 1);
  w.ev.meta = NULL;
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "aggregate_id");
  /* Meta of another type. */
  widget_init(&w, "w", 1);
  w.meta.event_type = "testev.v1.WidgetUpdated";
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "event_type");
  widget_init(&w, "w", 1);
  w.meta.aggregate_type = "gadget";
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "aggregate_type");
  /* The message is not of the type given. */
  widget_init(&w, "w", 1);
  expect_refused(f, &ob, &testev_events[TESTEV_UPDATED], &w.ev.base, WR_EINVAL, "not a");
  /* A message without a meta field. */
  Testev__V1__Widget plain = TESTEV__V1__WIDGET__INIT;
  wr_event_type fake = *created;
  fake.descriptor = &testev__v1__widget__descriptor;
  expect_refused(f, &ob, &fake, &plain.base, WR_EINVAL, "EventMeta");
  /* Bad caller-set ids and times. */
  widget_init(&w, "w", 1);
  w.meta.event_id = "not-a-uuid";
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "UUID");
  widget_init(&w, "w", 1);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1;
  ts.nanos = -5;
  w.meta.occurred_at = &ts;
  expect_refused(f, &ob, created, &w.ev.base, WR_EINVAL, "occurred_at");
  /* NULL arguments. */
  widget_init(&w, "w", 1);
  expect_refused(f, &ob, NULL, &w.ev.base, WR_EINVAL, NULL);
  expect_refused(f, &ob, created, NULL, WR_EINVAL, NULL);
  assert_int_equal(wr_outbox_append(NULL, created, &w.ev.base), WR_EINVAL);
  wr_outbox noconn = {.conn = NULL};
  assert_int_equal(wr_outbox_append(&noconn, created, &w.ev.base), WR_EINVAL);
  assert_int_equal(wr_outbox_pending(NULL, NULL), WR_EINVAL);
}

static void duplicate_event_id_is_edb(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-dup", 1);
  w.meta.event_id = "0190a000-0000-7000-8000-0000000000aa";
  wr_err err = {0};
  wr_outbox ob = {.conn = f->c, .err = &err};
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), 0);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), WR_EDB);
  assert_string_equal(err.sqlstate, "23505");
  assert_int_equal(PQtransactionStatus(f->c), PQTRANS_INERROR);
  assert_int_equal(wr_db_exec(f->c, "ROLLBACK", NULL), 0);
  assert_int_equal(rows(f->c), 0);
}

static void large_event_round_trips(void **state) {
  fixture *f = *state;
  widget_ev w;
  widget_init(&w, "w-big", 2);
  size_t n = 100000;
  char *name = malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    name[i] = (char)('a' + i % 26);
  name[n] = '\0';
  w.data.name = name;
  wr_outbox ob = {.conn = f->c};
  assert_int_equal(wr_db_exec(f->c, "BEGIN", NULL), 0);
  assert_int_equal(wr_outbox_append(&ob, &testev_events[TESTEV_CREATED], &w.ev.base), 0);
  assert_int_equal(wr_db_exec(f->c, "COMMIT", NULL), 0);
  Testev__V1__WidgetCreated *e = row_event(f->c, ob.last_event_id);
  assert_string_equal(e->data->name, name);
  assert_string_equal(e->meta->aggregate_id, "w-big");
  testev__v1__widget_created__free_unpacked(e, NULL);
  free(name);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(append_commit_fills_meta, setup, teardown),
      cmocka_unit_test_setup_teardown(caller_values_win_and_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(rollback_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(outside_transaction_is_einval, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_input_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(duplicate_event_id_is_edb, setup, teardown),
      cmocka_unit_test_setup_teardown(large_event_round_trips, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
