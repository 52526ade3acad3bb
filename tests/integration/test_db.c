// warren-test: timeout=180
/* test_db.c: the database layer against the real PostgreSQL of the test stack:
 * connecting (session settings, errors without credentials), migrations (idempotent,
 * atomic per migration, safe with concurrent starters), the runtime tables and their
 * NOTIFY trigger (and its session switch warren.outbox_notify: SET, connection string
 * options, pools with outbox_notify = false, also after a reset), statement helpers,
 * broken-connection detection and the pool (timeouts, hand-over between threads, rollback on
 * release, reset of broken connections). */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/db.h>
#include <warren/error.h>

/* ---- connect ---------------------------------------------------------------------- */

static void connect_sets_session(void **state) {
  (void)state;
  PGconn *c = NULL;
  wr_err err = {0};
  assert_int_equal(wr_db_connect(wt_require("WARREN_PG_URL"), "warren-test-db", &c, &err), 0);
  assert_non_null(c);
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  assert_string_equal(PQparameterStatus(c, "application_name"), "warren-test-db");
  PGresult *r = wt_pg_exec(c, "SELECT current_setting('TimeZone'), now()::text LIKE '%+00'");
  assert_string_equal(PQgetvalue(r, 0, 0), "UTC");
  assert_string_equal(PQgetvalue(r, 0, 1), "t");
  PQclear(r);
  PQfinish(c);

  /* The URL's own settings win: application_name and options pass through. */
  char url[600];
  snprintf(url, sizeof url, "%s?application_name=from-url&options=-c%%20statement_timeout%%3D4321",
           wt_require("WARREN_PG_URL"));
  assert_int_equal(wr_db_connect(url, "from-code", &c, &err), 0);
  assert_string_equal(PQparameterStatus(c, "application_name"), "from-url");
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  r = wt_pg_exec(c, "SHOW statement_timeout");
  assert_string_equal(PQgetvalue(r, 0, 0), "4321ms");
  PQclear(r);
  /* PQreset reconnects with the same startup packet: the session keeps UTC. */
  PQreset(c);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  PQfinish(c);
}

static void connect_errors_hide_password(void **state) {
  (void)state;
  const char *base = wt_require("WARREN_PG_URL"); /* postgres://postgres@host:port/db */
  const char *at = strchr(strstr(base, "://") + 3, '@');
  const char *slash = strchr(at, '/');
  char url[600];
  PGconn *c = (PGconn *)1;
  wr_err err = {0};

  /* A database that does not exist: the server answers with an error. */
  snprintf(url, sizeof url, "postgres://postgres:Sekr3tPw@%.*s/no_such_db_here",
           (int)(slash - at - 1), at + 1);
  assert_int_equal(wr_db_connect(url, NULL, &c, &err), WR_EDB);
  assert_null(c);
  assert_int_equal(err.code, WR_EDB);
  assert_non_null(strstr(err.msg, "no_such_db_here"));
  assert_null(strstr(err.msg, "Sekr3tPw"));
  assert_non_null(strstr(err.msg, "***"));

  /* Nothing listening there. */
  assert_int_equal(wr_db_connect("postgres://u:Sekr3tPw@127.0.0.1:1/x", NULL, &c, &err), WR_EDB);
  assert_null(c);
  assert_null(strstr(err.msg, "Sekr3tPw"));

  /* key=value form with a password. */
  assert_int_equal(
      wr_db_connect("host=127.0.0.1 port=1 password=Sekr3tPw dbname=x", NULL, &c, &err), WR_EDB);
  assert_null(strstr(err.msg, "Sekr3tPw"));

  /* Malformed strings. */
  assert_int_equal(wr_db_connect("postgres://u:Sekr3tPw@h:notaport/x", NULL, &c, &err), WR_EDB);
  assert_null(strstr(err.msg, "Sekr3tPw"));
  assert_int_equal(wr_db_connect("host=h bogus_option=1", NULL, &c, &err), WR_EDB);
  assert_non_null(strstr(err.msg, "bogus_option"));
  assert_int_equal(wr_db_connect(NULL, NULL, &c, &err), WR_EINVAL);
  assert_int_equal(wr_db_connect("host=h", NULL, NULL, NULL), WR_EINVAL);
}

/* ---- statement helpers ------------------------------------------------------------ */

static void exec_and_check_report_sqlstate(void **state) {
  (void)state;
  const char *url = wt_db_create("db_exec");
  PGconn *c = wt_pg_connect(url);
  wr_err err = {0};
  assert_int_equal(wr_db_exec(c, "CREATE TABLE t (id int PRIMARY KEY)", &err), 0);
  assert_int_equal(wr_db_exec(c, "INSERT INTO t VALUES (1)", &err), 0);
  assert_int_equal(wr_db_exec(c, "INSERT INTO t VALUES (1)", &err), WR_EDB);
  assert_string_equal(err.sqlstate, "23505");
  assert_non_null(strstr(err.msg, "duplicate key"));
  assert_null(strchr(err.msg, '\n'));
  assert_int_equal(wr_db_exec(c, "SELECT 1/0", &err), WR_EDB);
  assert_string_equal(err.sqlstate, "22012");
  assert_int_equal(wr_db_exec(c, "SELECT 1", NULL), 0);
  assert_int_equal(wr_db_exec(NULL, "SELECT 1", &err), WR_EINVAL);

  PGresult *r = PQexec(c, "SELECT 1");
  assert_int_equal(wr_db_check(c, r, PGRES_TUPLES_OK, "select", &err), 0);
  assert_int_equal(wr_db_check(c, r, PGRES_COMMAND_OK, "select", &err), WR_EDB);
  assert_non_null(strstr(err.msg, "select"));
  assert_string_equal(err.sqlstate, "");
  PQclear(r);
  r = PQexec(c, "SELECT * FROM no_such_table");
  assert_int_equal(wr_db_check(c, r, PGRES_TUPLES_OK, "lookup", &err), WR_EDB);
  assert_string_equal(err.sqlstate, "42P01");
  assert_non_null(strstr(err.msg, "lookup: "));
  PQclear(r);
  PQfinish(c);
  wt_db_drop(url);
}

/* Kills the backend of c from another session (what a server restart or an admin
 * does) and waits until wr_db_broken notices, without running a statement on c. */
static void terminate_backend(PGconn *c) {
  PGconn *admin = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[100];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(c));
  assert_int_equal(wt_pg_scalar(admin, "SELECT 1"), 1);
  PQclear(wt_pg_exec(admin, sql));
  PQfinish(admin);
}

static bool broken_cond(void *user) {
  return wr_db_broken(user);
}

static void broken_connection_detected(void **state) {
  (void)state;
  PGconn *c = NULL;
  assert_int_equal(wr_db_connect(wt_require("WARREN_PG_URL"), "broken-test", &c, NULL), 0);
  assert_false(wr_db_broken(c));
  /* Pending notifications are not lost by the liveness peek. */
  PQclear(wt_pg_exec(c, "LISTEN broken_test"));
  PQclear(wt_pg_exec(c, "NOTIFY broken_test, 'x'"));
  assert_false(wr_db_broken(c));
  PGnotify *n = PQnotifies(c);
  assert_non_null(n);
  assert_string_equal(n->relname, "broken_test");
  PQfreemem(n);

  terminate_backend(c);
  assert_true(wt_wait_until(broken_cond, c, 10000));
  assert_true(wr_db_broken(NULL));
  PQfinish(c);
}

/* ---- migrations ------------------------------------------------------------------- */

static const wr_migration app_migrations[] = {
    {1, "create items",
     "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);"
     "CREATE TABLE applied_log (what text)"},
    {2, "seed items",
     "INSERT INTO items (id) VALUES (1), (2); INSERT INTO applied_log "
     "VALUES ('v2')"},
    {5, "add column",
     "ALTER TABLE items ADD COLUMN label text; INSERT INTO applied_log "
     "VALUES ('v5')"},
};

static void migrate_idempotent_and_incremental(void **state) {
  (void)state;
  const char *url = wt_db_create("db_migrate");
  PGconn *c = wt_pg_connect(url);
  wr_err err = {0};

  assert_int_equal(wr_db_migrate(c, "app", app_migrations, 2, &err), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM items"), 2);
  assert_int_equal(wt_pg_scalar(c, "SELECT max(version) FROM warren_schema_migrations "
                                   "WHERE component = 'app'"),
                   2);
  /* Again: nothing re-runs (a re-run seed would fail on the primary key). */
  assert_int_equal(wr_db_migrate(c, "app", app_migrations, 2, &err), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM applied_log"), 1);
  /* A newer program adds v5: only v5 runs. */
  assert_int_equal(wr_db_migrate(c, "app", app_migrations, 3, &err), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM applied_log"), 2);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_schema_migrations "
                                   "WHERE component = 'app'"),
                   3);
  PGresult *r = wt_pg_exec(c, "SELECT name FROM warren_schema_migrations WHERE component = "
                              "'app' AND version = 5");
  assert_string_equal(PQgetvalue(r, 0, 0), "add column");
  PQclear(r);
  /* An older program (knows v1..v2) against the newer schema: nothing to do, no error. */
  assert_int_equal(wr_db_migrate(c, "app", app_migrations, 2, &err), 0);
  /* Components are independent. */
  static const wr_migration other[] = {{1, "other", "CREATE TABLE other_t (x int)"}};
  assert_int_equal(wr_db_migrate(c, "other", other, 1, &err), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_schema_migrations"), 4);
  /* The session lock was released: another session can migrate at once. */
  PGconn *c2 = wt_pg_connect(url);
  assert_int_equal(wr_db_migrate(c2, "app", app_migrations, 3, &err), 0);
  PQfinish(c2);
  PQfinish(c);
  wt_db_drop(url);
}

static void migrate_failure_is_atomic(void **state) {
  (void)state;
  const char *url = wt_db_create("db_migfail");
  PGconn *c = wt_pg_connect(url);
  wr_err err = {0};
  static const wr_migration bad[] = {
      {1, "good", "CREATE TABLE good_t (x int)"},
      {2, "half bad",
       "CREATE TABLE half_t (x int); INSERT INTO half_t VALUES (1); "
       "SELECT * FROM missing_table"},
      {3, "never", "CREATE TABLE never_t (x int)"},
  };
  assert_int_equal(wr_db_migrate(c, "bad", bad, 3, &err), WR_EDB);
  assert_string_equal(err.sqlstate, "42P01");
  assert_non_null(strstr(err.msg, "migration bad v2 (half bad)"));
  assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
  /* v1 stays applied, v2 left nothing behind, v3 never ran. */
  assert_int_equal(wt_pg_scalar(c, "SELECT max(version) FROM warren_schema_migrations "
                                   "WHERE component = 'bad'"),
                   1);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename IN "
                                   "('half_t', 'never_t')"),
                   0);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename = "
                                   "'good_t'"),
                   1);
  /* The advisory lock was released despite the failure. */
  PGconn *c2 = wt_pg_connect(url);
  assert_int_equal(wr_db_migrate(c2, "bad", bad, 1, &err), 0);
  PQfinish(c2);

  /* Bad arguments: nothing touches the database. */
  static const wr_migration unordered[] = {{2, "b", "SELECT 1"}, {2, "c", "SELECT 1"}};
  assert_int_equal(wr_db_migrate(c, "x", unordered, 2, &err), WR_EINVAL);
  static const wr_migration zero[] = {{0, "z", "SELECT 1"}};
  assert_int_equal(wr_db_migrate(c, "x", zero, 1, &err), WR_EINVAL);
  static const wr_migration nosql[] = {{1, "n", NULL}};
  assert_int_equal(wr_db_migrate(c, "x", nosql, 1, &err), WR_EINVAL);
  assert_int_equal(wr_db_migrate(c, "", app_migrations, 1, &err), WR_EINVAL);
  assert_int_equal(wr_db_migrate(NULL, "x", app_migrations, 1, &err), WR_EINVAL);
  PQclear(wt_pg_exec(c, "BEGIN"));
  assert_int_equal(wr_db_migrate(c, "x", app_migrations, 1, &err), WR_EINVAL);
  PQclear(wt_pg_exec(c, "ROLLBACK"));
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_schema_migrations "
                                   "WHERE component = 'x'"),
                   0);
  PQfinish(c);
  wt_db_drop(url);
}

typedef struct migrate_arg {
  const char *url;
  pthread_barrier_t *barrier;
  int rc_runtime;
  int rc_app;
  char msg[512];
} migrate_arg;

static void *migrate_thread(void *p) {
  migrate_arg *a = p;
  PGconn *c = NULL;
  wr_err err = {0};
  if (wr_db_connect(a->url, "migrate-race", &c, &err) != 0) {
    a->rc_runtime = a->rc_app = -1000;
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    pthread_barrier_wait(a->barrier);
    return NULL;
  }
  pthread_barrier_wait(a->barrier);
  a->rc_runtime = wr_db_migrate_runtime(c, &err);
  if (a->rc_runtime)
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
  a->rc_app = wr_db_migrate(c, "app", app_migrations, 3, &err);
  if (a->rc_app)
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
  PQfinish(c);
  return NULL;
}

static void migrate_concurrent_starters(void **state) {
  (void)state;
  /* Several rounds on fresh databases: the race window is small. */
  for (int round = 0; round < 3; round++) {
    char url[512];
    snprintf(url, sizeof url, "%s", wt_db_create("db_migrace"));
    enum { N = 4 };
    pthread_t th[N];
    migrate_arg args[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
      args[i] = (migrate_arg){.url = url, .barrier = &barrier};
      assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
      pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < N; i++) {
      if (args[i].rc_runtime || args[i].rc_app)
        fail_msg("thread %d: runtime %d app %d: %s", i, args[i].rc_runtime, args[i].rc_app,
                 args[i].msg);
    }
    PGconn *c = wt_pg_connect(url);
    assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_schema_migrations "
                                     "WHERE component = 'warren'"),
                     2);
    assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_schema_migrations "
                                     "WHERE component = 'app'"),
                     3);
    assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM applied_log"), 2);
    assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM items"), 2);
    PQfinish(c);
    wt_db_drop(url);
  }
}

static void runtime_tables_and_notify(void **state) {
  (void)state;
  const char *url = wt_db_create("db_runtime");
  PGconn *c = wt_pg_connect(url);
  wr_err err = {0};
  assert_int_equal(wr_db_migrate_runtime(c, &err), 0);
  assert_int_equal(wr_db_migrate_runtime(c, &err), 0);

  /* The columns other modules rely on (docs/DESIGN.md "Runtime tables"). */
  static const char *const cols[][2] = {
      {"warren_outbox", "id"},
      {"warren_outbox", "event_id"},
      {"warren_outbox", "event_type"},
      {"warren_outbox", "exchange"},
      {"warren_outbox", "routing_key"},
      {"warren_outbox", "aggregate_type"},
      {"warren_outbox", "aggregate_id"},
      {"warren_outbox", "version"},
      {"warren_outbox", "correlation_id"},
      {"warren_outbox", "causation_id"},
      {"warren_outbox", "source_service"},
      {"warren_outbox", "occurred_at"},
      {"warren_outbox", "payload"},
      {"warren_outbox", "created_at"},
      {"warren_outbox", "attempts"},
      {"warren_outbox", "next_attempt_at"},
      {"warren_outbox", "last_error"},
      {"warren_inbox", "consumer"},
      {"warren_inbox", "event_id"},
      {"warren_inbox", "processed_at"},
      {"warren_versions", "scope"},
      {"warren_versions", "aggregate_type"},
      {"warren_versions", "aggregate_id"},
      {"warren_versions", "version"},
      {"warren_versions", "tombstone"},
      {"warren_versions", "updated_at"},
      {"warren_schema_migrations", "component"},
      {"warren_schema_migrations", "version"},
      {"warren_schema_migrations", "name"},
      {"warren_schema_migrations", "applied_at"},
  };
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM information_schema.columns WHERE "
             "table_name = '%s' AND column_name = '%s'",
             cols[i][0], cols[i][1]);
    if (wt_pg_scalar(c, sql) != 1)
      fail_msg("missing column %s.%s", cols[i][0], cols[i][1]);
  }

  /* One notification per committed inserting transaction, none for a rollback. */
  PGconn *l = wt_pg_connect(url);
  PQclear(wt_pg_exec(l, "LISTEN warren_outbox"));
  static const char *insert =
      "INSERT INTO warren_outbox (event_id, event_type, exchange, routing_key, aggregate_type,"
      " aggregate_id, version, occurred_at, payload) VALUES (gen_random_uuid(), 't', 'x', 't',"
      " 'a', '1', 1, now(), '\\x00')";
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(wt_pg_exec(c, insert));
  PQclear(wt_pg_exec(c, "ROLLBACK"));
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(wt_pg_exec(c, insert));
  PQclear(wt_pg_exec(c, insert));
  PQclear(wt_pg_exec(c, "COMMIT"));
  int got = 0;
  int64_t end = wt_now_ms() + 5000;
  while (wt_now_ms() < end) {
    struct pollfd p = {.fd = PQsocket(l), .events = POLLIN};
    poll(&p, 1, 200);
    assert_int_equal(PQconsumeInput(l), 1);
    PGnotify *n;
    while ((n = PQnotifies(l)) != NULL) {
      assert_string_equal(n->relname, "warren_outbox");
      got++;
      PQfreemem(n);
    }
    if (got > 0 && wt_now_ms() > end - 4500)
      break;
  }
  assert_int_equal(got, 1);
  /* Constraints: version >= 1, unique event ids. */
  PGresult *r = PQexec(c, "INSERT INTO warren_outbox (event_id, event_type, exchange, "
                          "routing_key, aggregate_type, aggregate_id, version, occurred_at, "
                          "payload) VALUES (gen_random_uuid(), 't', 'x', 't', 'a', '1', 0, "
                          "now(), '\\x00')");
  assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
  PQclear(r);
  PQfinish(l);
  PQfinish(c);
  wt_db_drop(url);
}

/* ---- the outbox NOTIFY switch (warren.outbox_notify) ------------------------------ */

static const char *const outbox_insert_sql =
    "INSERT INTO warren_outbox (event_id, event_type, exchange, routing_key, aggregate_type,"
    " aggregate_id, version, occurred_at, payload) VALUES (gen_random_uuid(), 't', 'x', 't',"
    " 'a', '1', 1, now(), '\\x00')";

/* Notifications the listener l receives within wait_ms (stops at the first). */
static int notifies_within(PGconn *l, int wait_ms) {
  int got = 0;
  int64_t end = wt_now_ms() + wait_ms;
  while (wt_now_ms() < end && got == 0) {
    struct pollfd p = {.fd = PQsocket(l), .events = POLLIN};
    poll(&p, 1, 50);
    assert_int_equal(PQconsumeInput(l), 1);
    PGnotify *n;
    while ((n = PQnotifies(l)) != NULL) {
      assert_string_equal(n->relname, "warren_outbox");
      got++;
      PQfreemem(n);
    }
  }
  return got;
}

/* Appends one row in its own transaction on c: did the listener l hear of it? */
static int notifies_after_append(PGconn *c, PGconn *l, int wait_ms) {
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(wt_pg_exec(c, outbox_insert_sql));
  PQclear(wt_pg_exec(c, "COMMIT"));
  return notifies_within(l, wait_ms);
}

static void outbox_notify_setting(void **state) {
  (void)state;
  const char *url = wt_db_create("db_notify");
  PGconn *c = wt_pg_connect(url);
  wr_err err = {0};
  assert_int_equal(wr_db_migrate_runtime(c, &err), 0);
  PGconn *l = wt_pg_connect(url);
  PQclear(wt_pg_exec(l, "LISTEN warren_outbox"));
  /* A notification arrives within milliseconds; 1.5 s for a busy machine. Absence is
   * checked over the same window. */
  enum { WAIT = 1500 };

  /* Default session (setting unset): NOTIFY. */
  assert_int_equal(notifies_after_append(c, l, WAIT), 1);
  /* Turned off by SET, on again by SET LOCAL for one transaction, empty = default. */
  PQclear(wt_pg_exec(c, "SET warren.outbox_notify = off"));
  assert_int_equal(notifies_after_append(c, l, WAIT), 0);
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(wt_pg_exec(c, "SET LOCAL warren.outbox_notify = on"));
  PQclear(wt_pg_exec(c, outbox_insert_sql));
  PQclear(wt_pg_exec(c, "COMMIT"));
  assert_int_equal(notifies_within(l, WAIT), 1);
  assert_int_equal(notifies_after_append(c, l, WAIT), 0); /* SET LOCAL ended */
  PQclear(wt_pg_exec(c, "SET warren.outbox_notify = ''"));
  assert_int_equal(notifies_after_append(c, l, WAIT), 1);
  /* Not a boolean: the append fails (no silent loss of wake-ups), nothing inserted. */
  PQclear(wt_pg_exec(c, "SET warren.outbox_notify = 'disabled'"));
  long long before = wt_pg_scalar(c, "SELECT count(*) FROM warren_outbox");
  PGresult *r = PQexec(c, outbox_insert_sql);
  assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
  assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02");
  PQclear(r);
  assert_int_equal(wt_pg_scalar(c, "SELECT count(*) FROM warren_outbox"), before);
  PQfinish(c);

  /* The connection string's options: wr_db_connect keeps them next to its own. */
  char off_url[700];
  snprintf(off_url, sizeof off_url, "%s%soptions=-c%%20warren.outbox_notify%%3Doff", url,
           strchr(url, '?') ? "&" : "?");
  c = NULL;
  assert_int_equal(wr_db_connect(off_url, "notify-url", &c, &err), 0);
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  assert_int_equal(notifies_after_append(c, l, WAIT), 0);
  PQfinish(c);

  /* A pool with outbox_notify = false: no NOTIFY, also after its connection was reset. */
  wr_db_pool_opts po = WR_DB_POOL_OPTS_INIT;
  po.url = url;
  po.application_name = "pool-quiet";
  po.size = 1;
  po.outbox_notify = false;
  wr_db_pool *p = NULL;
  assert_int_equal(wr_db_pool_new_opts(&po, &p, &err), 0);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, &err), 0);
  assert_string_equal(PQparameterStatus(c, "application_name"), "pool-quiet");
  assert_int_equal(notifies_after_append(c, l, WAIT), 0);
  int pid = PQbackendPID(c);
  wr_db_pool_release(p, c);
  terminate_backend(c);
  usleep(200 * 1000);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, &err), 0);
  assert_int_not_equal(PQbackendPID(c), pid);
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  assert_int_equal(notifies_after_append(c, l, WAIT), 0);
  wr_db_pool_release(p, c);
  wr_db_pool_free(p);

  /* The default pool notifies, like wr_db_pool_new. */
  po.outbox_notify = true;
  assert_int_equal(wr_db_pool_new_opts(&po, &p, &err), 0);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, &err), 0);
  assert_int_equal(notifies_after_append(c, l, WAIT), 1);
  wr_db_pool_release(p, c);
  wr_db_pool_free(p);
  assert_int_equal(wr_db_pool_new_opts(NULL, &p, &err), WR_EINVAL);
  po.size = 0;
  assert_int_equal(wr_db_pool_new_opts(&po, &p, &err), WR_EINVAL);
  assert_null(p);

  PQfinish(l);
  wt_db_drop(url);
}

/* ---- pool ------------------------------------------------------------------------- */

static void pool_timeout_and_reuse(void **state) {
  (void)state;
  const char *url = wt_db_create("db_pool");
  wr_db_pool *p = NULL;
  wr_err err = {0};
  assert_int_equal(wr_db_pool_new(url, "pool-test", 2, &p, &err), 0);
  PGconn *a = NULL, *b = NULL, *x = (PGconn *)1;
  assert_int_equal(wr_db_pool_acquire(p, 1000, &a, &err), 0);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &b, &err), 0);
  assert_ptr_not_equal(a, b);
  assert_string_equal(PQparameterStatus(a, "application_name"), "pool-test");
  int64_t t0 = wt_now_ms();
  assert_int_equal(wr_db_pool_acquire(p, 200, &x, &err), WR_ETIMEDOUT);
  assert_true(wt_now_ms() - t0 >= 190);
  assert_null(x);
  assert_int_equal(err.code, WR_ETIMEDOUT);
  assert_int_equal(wr_db_pool_acquire(p, 0, &x, &err), WR_ETIMEDOUT);
  wr_db_pool_release(p, b);
  assert_int_equal(wr_db_pool_acquire(p, 0, &x, &err), 0);
  assert_ptr_equal(x, b);
  wr_db_pool_release(p, x);
  /* Releasing something foreign or twice is ignored. */
  wr_db_pool_release(p, x);
  PGconn *foreign = wt_pg_connect(url);
  wr_db_pool_release(p, foreign);
  PQfinish(foreign);
  assert_int_equal(wr_db_pool_acquire(p, 0, &x, &err), 0);
  assert_int_equal(wr_db_pool_acquire(p, 50, &b, &err), WR_ETIMEDOUT);
  wr_db_pool_release(p, x);
  wr_db_pool_release(p, a);
  wr_db_pool_free(p);
  wr_db_pool_free(NULL);

  /* A pool that cannot connect fails at creation with the cause. */
  p = (wr_db_pool *)1;
  assert_int_equal(wr_db_pool_new("postgres://u:pw123456@127.0.0.1:1/x", NULL, 2, &p, &err),
                   WR_EDB);
  assert_null(p);
  assert_null(strstr(err.msg, "pw123456"));
  assert_int_equal(wr_db_pool_new(url, NULL, 0, &p, &err), WR_EINVAL);
  wt_db_drop(url);
}

typedef struct waiter_arg {
  wr_db_pool *pool;
  int rc;
  PGconn *got;
  int64_t waited_ms;
} waiter_arg;

static void *waiter(void *p) {
  waiter_arg *a = p;
  int64_t t0 = wt_now_ms();
  a->rc = wr_db_pool_acquire(a->pool, 20000, &a->got, NULL);
  a->waited_ms = wt_now_ms() - t0;
  if (a->rc == 0) {
    PGresult *r = PQexec(a->got, "SELECT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      a->rc = -999;
    PQclear(r);
    wr_db_pool_release(a->pool, a->got);
  }
  return NULL;
}

static void pool_hands_over_between_threads(void **state) {
  (void)state;
  const char *url = wt_db_create("db_poolthr");
  wr_db_pool *p = NULL;
  assert_int_equal(wr_db_pool_new(url, NULL, 1, &p, NULL), 0);
  PGconn *held = NULL;
  assert_int_equal(wr_db_pool_acquire(p, 1000, &held, NULL), 0);
  enum { N = 6 };
  pthread_t th[N];
  waiter_arg args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (waiter_arg){.pool = p};
    pthread_create(&th[i], NULL, waiter, &args[i]);
  }
  usleep(300 * 1000);
  wr_db_pool_release(p, held);
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].rc, 0);
    assert_ptr_equal(args[i].got, held);
    assert_true(args[i].waited_ms >= 250);
  }
  wr_db_pool_free(p);
  wt_db_drop(url);
}

static void pool_release_rolls_back(void **state) {
  (void)state;
  const char *url = wt_db_create("db_poolrb");
  PGconn *admin = wt_pg_connect(url);
  PQclear(wt_pg_exec(admin, "CREATE TABLE t (x int)"));
  wr_db_pool *p = NULL;
  assert_int_equal(wr_db_pool_new(url, NULL, 1, &p, NULL), 0);
  PGconn *c = NULL;
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(wt_pg_exec(c, "INSERT INTO t VALUES (1)"));
  wr_db_pool_release(p, c);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
  assert_int_equal(wt_pg_scalar(admin, "SELECT count(*) FROM t"), 0);
  /* A failed transaction is rolled back too. */
  PQclear(wt_pg_exec(c, "BEGIN"));
  PQclear(PQexec(c, "SELECT * FROM nope"));
  assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
  wr_db_pool_release(p, c);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
  assert_int_equal(wt_pg_scalar(c, "SELECT 41 + 1"), 42);
  /* A query left running (sent, results not read) makes release reset it. */
  assert_int_equal(PQsendQuery(c, "SELECT pg_sleep(0.2)"), 1);
  wr_db_pool_release(p, c);
  assert_int_equal(wr_db_pool_acquire(p, 5000, &c, NULL), 0);
  assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
  assert_int_equal(wt_pg_scalar(c, "SELECT 7"), 7);
  wr_db_pool_release(p, c);
  wr_db_pool_free(p);
  PQfinish(admin);
  wt_db_drop(url);
}

static void pool_resets_broken_connection(void **state) {
  (void)state;
  const char *url = wt_db_create("db_poolbrk");
  wr_db_pool *p = NULL;
  assert_int_equal(wr_db_pool_new(url, "pool-brk", 1, &p, NULL), 0);
  PGconn *c = NULL;
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  int pid = PQbackendPID(c);
  wr_db_pool_release(p, c);
  terminate_backend(c);
  /* Give the FATAL message time to reach the socket. */
  usleep(200 * 1000);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  assert_int_not_equal(PQbackendPID(c), pid);
  assert_string_equal(PQparameterStatus(c, "TimeZone"), "UTC");
  assert_int_equal(wt_pg_scalar(c, "SELECT 5"), 5);

  /* Broken while held (statement failed): reset on the next acquire. */
  terminate_backend(c);
  PGresult *r = NULL;
  for (int i = 0; i < 50 && PQstatus(c) == CONNECTION_OK; i++) {
    PQclear(r);
    r = PQexec(c, "SELECT 1");
    usleep(20 * 1000);
  }
  PQclear(r);
  assert_int_equal(PQstatus(c), CONNECTION_BAD);
  wr_db_pool_release(p, c);
  assert_int_equal(wr_db_pool_acquire(p, 1000, &c, NULL), 0);
  assert_int_equal(wt_pg_scalar(c, "SELECT 6"), 6);
  wr_db_pool_release(p, c);
  wr_db_pool_free(p);
  wt_db_drop(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connect_sets_session),
      cmocka_unit_test(connect_errors_hide_password),
      cmocka_unit_test(exec_and_check_report_sqlstate),
      cmocka_unit_test(broken_connection_detected),
      cmocka_unit_test(migrate_idempotent_and_incremental),
      cmocka_unit_test(migrate_failure_is_atomic),
      cmocka_unit_test(migrate_concurrent_starters),
      cmocka_unit_test(runtime_tables_and_notify),
      cmocka_unit_test(outbox_notify_setting),
      cmocka_unit_test(pool_timeout_and_reuse),
      cmocka_unit_test(pool_hands_over_between_threads),
      cmocka_unit_test(pool_release_rolls_back),
      cmocka_unit_test(pool_resets_broken_connection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
