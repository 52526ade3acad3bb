// warren-test: link=warren_devkit,warren_schemas timeout=600
/* The services and the CLI as an operator meets them: --help and --version of
 * customer-service, order-service and warren (exit 0, every option and environment
 * variable listed); bad configuration (missing or malformed URLs, bad numbers, unknown
 * flags, secrets on the command line) exits 2 with one line that names the problem and
 * never prints a secret; SIGTERM ends a service with exit 0 after answering the
 * request in flight and publishing its event. */
#include "e2e.h"

#define SECRET_PW    "pw-s3cr3t-e2e"
#define SECRET_TOKEN "tok-s3cr3t-e2e"

static int setup(void **state) {
  return e2e_setup_state(state, "process");
}

typedef struct run_result {
  int code;
  char out[32768];
  char err[8192];
} run_result;

static void drain(int fd, char *buf, size_t cap) {
  size_t n = strlen(buf);
  ssize_t k;
  while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
    n += (size_t)k;
  buf[n] = '\0';
}

/* Runs bin with argv (NULL-terminated, argv[0] excluded) and exactly the environment
 * env; collects stdout and stderr (sequentially: the outputs are small). */
static void run(const char *bin, const char *const *args, const char *const *env, run_result *res) {
  memset(res, 0, sizeof *res);
  int po[2], pe[2];
  assert_int_equal(pipe(po), 0);
  assert_int_equal(pipe(pe), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(po[1], STDOUT_FILENO);
    dup2(pe[1], STDERR_FILENO);
    close(po[0]);
    close(pe[0]);
    const char *argv[32] = {bin};
    for (int i = 0; args && args[i] && i < 30; i++)
      argv[i + 1] = args[i];
    clearenv();
    if (getenv("ASAN_OPTIONS"))
      setenv("ASAN_OPTIONS", getenv("ASAN_OPTIONS"), 1);
    for (int i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  drain(po[0], res->out, sizeof res->out);
  drain(pe[0], res->err, sizeof res->err);
  close(po[0]);
  close(pe[0]);
  int st;
  /* a service given a valid configuration would run: bound the wait */
  for (int i = 0; i < 600; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      res->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return;
    }
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  fail_msg("%s did not exit", bin);
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* ---- --help ------------------------------------------------------------------------- */

/* The lists below are what an operator of the reference deployment needs; services may
 * list more (tests/unit/test_deploy.c checks that docs/SERVICES.md documents every
 * variable --help lists). */

static void help_texts(void **state) {
  (void)state;
  static const char *const customer_env[] = {"WARREN_AMQP_URL",
                                             "WARREN_AMQP_CACERT",
                                             "WARREN_DATABASE_URL",
                                             "WARREN_HTTP_ADDR",
                                             "WARREN_ADMIN_TOKEN",
                                             "WARREN_LOG_LEVEL",
                                             "WARREN_HTTP_THREADS",
                                             "WARREN_DB_POOL",
                                             "WARREN_HTTP_MAX_BODY",
                                             "WARREN_SNAPSHOT_INTERVAL",
                                             "WARREN_SNAPSHOT_BATCH",
                                             "WARREN_RECONCILE_BUCKETS",
                                             NULL};
  static const char *const order_env[] = {"WARREN_AMQP_URL",           "WARREN_AMQP_CACERT",
                                          "WARREN_DATABASE_URL",       "WARREN_HTTP_ADDR",
                                          "WARREN_ADMIN_TOKEN",        "WARREN_LOG_LEVEL",
                                          "WARREN_HTTP_THREADS",       "WARREN_DB_POOL",
                                          "WARREN_HTTP_MAX_BODY",      "CUSTOMER_SERVICE_URL",
                                          "WARREN_RECONCILE_INTERVAL", "WARREN_RECONCILE_BUCKETS",
                                          "WARREN_CATCHUP_PAGE_SIZE",  "WARREN_QUEUE_TYPE",
                                          "WARREN_PREFETCH",           "WARREN_BATCH_SIZE",
                                          "WARREN_RETRY_DELAYS",       "WARREN_DELIVERY_LIMIT",
                                          "WARREN_EVENT_LOG_MAX_AGE",  NULL};
  struct {
    const char *bin;
    const char *const *vars;
    const char *addr;
  } svcs[] = {{"customer-service", customer_env, "127.0.0.1:8081"},
              {"order-service", order_env, "127.0.0.1:8082"}};
  run_result *r = malloc(sizeof *r);
  for (int s = 0; s < 2; s++) {
    const char *args[] = {"--help", NULL};
    /* the secrets are set: --help must not show them */
    const char *env[] = {"WARREN_ADMIN_TOKEN=" SECRET_TOKEN,
                         "WARREN_DATABASE_URL=postgres://u:" SECRET_PW "@db/x", NULL};
    run(wt_bin(svcs[s].bin), args, env, r);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->err, "");
    if (strncmp(r->out, svcs[s].bin, strlen(svcs[s].bin)) != 0)
      fail_msg("%s --help does not start with its name:\n%s", svcs[s].bin, r->out);
    assert_non_null(strstr(r->out, "usage: "));
    for (int i = 0; svcs[s].vars[i]; i++) {
      char tag[96];
      snprintf(tag, sizeof tag, "[env %s]", svcs[s].vars[i]);
      if (!strstr(r->out, tag))
        fail_msg("%s --help does not list %s", svcs[s].bin, svcs[s].vars[i]);
    }
    assert_non_null(strstr(r->out, svcs[s].addr));
    assert_null(strstr(r->out, SECRET_TOKEN));
    assert_null(strstr(r->out, SECRET_PW));
    const char *vargs[] = {"--version", NULL};
    run(wt_bin(svcs[s].bin), vargs, NULL, r);
    assert_int_equal(r->code, 0);
    assert_int_equal(count_lines(r->out), 1);
  }
  const char *args[] = {"--help", NULL};
  run(wt_bin("warren"), args, NULL, r);
  assert_int_equal(r->code, 0);
  const char *cmds[] = {"dlq list",  "dlq show", "dlq replay",
                        "dlq purge", "topology", "WARREN_AMQP_URL"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strstr(r->out, cmds[i]))
      fail_msg("warren --help lacks \"%s\":\n%s", cmds[i], r->out);
  free(r);
}

/* ---- bad configuration -------------------------------------------------------------- */

struct bad_case {
  const char *bin;
  const char *arg; /* one argument or NULL */
  const char *env[6];
  const char *mentions; /* the message must name this */
};

static void bad_configuration(void **state) {
  e2e *e = *state;
  /* valid URLs carrying secrets; each case breaks one thing */
  char amqp[1200], db[700];
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=amqp://guest:" SECRET_PW "@127.0.0.1:1/x");
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=postgres://u:" SECRET_PW "@127.0.0.1:1/x");
  const char *tok = "WARREN_ADMIN_TOKEN=" SECRET_TOKEN;
  struct bad_case cases[] = {
      {"customer-service", NULL, {db, tok}, "WARREN_AMQP_URL"},
      {"customer-service", NULL, {amqp, tok}, "WARREN_DATABASE_URL"},
      {"order-service", NULL, {db, tok}, "WARREN_AMQP_URL"},
      {"order-service", NULL, {amqp}, "WARREN_DATABASE_URL"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_DB_POOL=abc"}, "db-pool"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_DB_POOL=0"}, "db-pool"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_HTTP_THREADS=100000"}, "http-threads"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_HTTP_MAX_BODY=-1"}, "max-body"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_LOG_LEVEL=loud"}, "log-level"},
      {"customer-service",
       NULL,
       {amqp, db, tok, "WARREN_SNAPSHOT_INTERVAL=1e3"},
       "snapshot-interval"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_SNAPSHOT_BATCH=0"}, "snapshot-batch"},
      {"customer-service", NULL, {amqp, db, tok, "WARREN_RECONCILE_BUCKETS=5000"}, "buckets"},
      {"customer-service", "--no-such-flag", {amqp, db, tok}, "--no-such-flag"},
      {"customer-service", "--admin-token=" SECRET_TOKEN, {amqp, db}, "admin-token"},
      {"customer-service",
       "--database-url=postgres://u:" SECRET_PW "@h/x",
       {amqp, tok},
       "database-url"},
      {"order-service", NULL, {amqp, db, "WARREN_QUEUE_TYPE=stream"}, "queue-type"},
      {"order-service", NULL, {amqp, db, "WARREN_RETRY_DELAYS=1000,0"}, "retry-delays"},
      {"order-service", NULL, {amqp, db, "WARREN_RETRY_DELAYS=1,2,3,4,5,6,7,8,9"}, "retry-delays"},
      {"order-service", NULL, {amqp, db, "WARREN_PREFETCH=70000"}, "prefetch"},
      {"order-service", NULL, {amqp, db, "WARREN_BATCH_SIZE=0"}, "batch-size"},
      {"order-service", NULL, {amqp, db, "WARREN_CATCHUP_PAGE_SIZE=1001"}, "catchup-page-size"},
      {"order-service", NULL, {amqp, db, "WARREN_RECONCILE_INTERVAL=-5"}, "reconcile-interval"},
      {"order-service", NULL, {amqp, db, "WARREN_DELIVERY_LIMIT=x"}, "delivery-limit"},
      {"order-service",
       NULL,
       {amqp, db, "CUSTOMER_SERVICE_URL=https://c.example"},
       "customer-service-url"},
      {"order-service",
       NULL,
       {amqp, db, "CUSTOMER_SERVICE_URL=127.0.0.1:8081"},
       "customer-service-url"},
      /* malformed URLs are configuration errors too, found before anything connects */
      {"customer-service",
       NULL,
       {"WARREN_AMQP_URL=bogus://guest:" SECRET_PW "@h", db, tok},
       "WARREN_AMQP_URL"},
      {"order-service",
       NULL,
       {"WARREN_AMQP_URL=amqp://guest:" SECRET_PW "@h:notaport", db},
       "WARREN_AMQP_URL"},
      {"customer-service",
       NULL,
       {amqp, "WARREN_DATABASE_URL=postgres://u:" SECRET_PW "@h/x?nosuchoption=1", tok},
       "WARREN_DATABASE_URL"},
      {"customer-service",
       NULL,
       {"WARREN_AMQP_URL=amqps://guest:" SECRET_PW "@127.0.0.1:1/x", db, tok},
       "WARREN_AMQP_CACERT"},
  };
  run_result *r = malloc(sizeof *r);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *args[] = {cases[i].arg, NULL};
    run(wt_bin(cases[i].bin), args, cases[i].env, r);
    char all[40000];
    snprintf(all, sizeof all, "%s%s", r->out, r->err);
    if (r->code != 2 || count_lines(all) != 1 || strstr(all, SECRET_PW) ||
        strstr(all, SECRET_TOKEN) || strncmp(r->err, cases[i].bin, strlen(cases[i].bin)) != 0 ||
        !strstr(r->err, cases[i].mentions))
      fail_msg("case %zu (%s %s %s): want exit 2 and one line naming %s without secrets; "
               "got exit %d:\n%s",
               i, cases[i].bin, cases[i].arg ? cases[i].arg : "",
               cases[i].env[3] ? cases[i].env[3] : cases[i].env[0], cases[i].mentions, r->code,
               all);
  }
  /* a well-formed configuration whose servers cannot be reached is not a usage error:
   * exit 1, and the log line shows the URL with its password masked */
  const char *env[] = {amqp, db, tok, NULL};
  run(wt_bin("customer-service"), NULL, env, r);
  assert_int_equal(r->code, 1);
  assert_null(strstr(r->err, SECRET_PW));
  assert_null(strstr(r->out, SECRET_PW));
  assert_non_null(strstr(r->err, "postgres://u:***@127.0.0.1:1/x"));

  /* the CLI */
  struct {
    const char *args[8]; /* NULL-terminated */
    int code;
  } cli[] = {{{NULL}, 2},
             {{"bogus", NULL}, 2},
             {{"dlq", "list", NULL}, 2},
             {{"dlq", "list", "--queue", "q", "--limit", "0"}, 2},
             {{"dlq", "purge", "--queue", "q", NULL}, 2},
             {{"dlq", "list", "--queue", "q", "--nope", NULL}, 2}};
  for (size_t i = 0; i < sizeof cli / sizeof cli[0]; i++) {
    const char *cenv[] = {"WARREN_AMQP_URL=amqp://guest:" SECRET_PW "@127.0.0.1:1/x", NULL};
    run(wt_bin("warren"), cli[i].args, cenv, r);
    if (r->code != cli[i].code || strstr(r->err, SECRET_PW) || strstr(r->out, SECRET_PW))
      fail_msg("warren %s %s: exit %d, want %d:\n%s", cli[i].args[0] ? cli[i].args[0] : "",
               cli[i].args[0] && cli[i].args[1] ? cli[i].args[1] : "", r->code, cli[i].code,
               r->err);
  }
  /* the broker unreachable: exit 1, password masked */
  const char *largs[] = {"dlq", "list", "--queue", E2E_QUEUE, NULL};
  const char *cenv[] = {"WARREN_AMQP_URL=amqp://guest:" SECRET_PW "@127.0.0.1:1/x", NULL};
  run(wt_bin("warren"), largs, cenv, r);
  assert_int_equal(r->code, 1);
  assert_null(strstr(r->err, SECRET_PW));
  assert_int_equal(count_lines(r->err), 1);
  (void)e;
  free(r);
}

/* ---- graceful shutdown -------------------------------------------------------------- */

struct inflight {
  e2e *e;
  const char *method, *base, *path;
  json_t *body;
  e2e_resp resp;
};

static void *inflight_run(void *arg) {
  struct inflight *f = arg;
  char *text = json_dumps(f->body, JSON_COMPACT);
  char url[512];
  snprintf(url, sizeof url, "%s%s", f->base, f->path);
  const char *h[] = {"Content-Type: application/json", NULL};
  wr_http_request rq = {.method = f->method,
                        .url = url,
                        .headers = h,
                        .body = text,
                        .body_len = strlen(text),
                        .timeout_ms = 60000};
  wr_http_response res;
  if (wr_http_do(&rq, &res, NULL) == 0) {
    f->resp.status = res.status;
    f->resp.json = json_loadb(res.body, res.len, 0, NULL);
    wr_http_response_free(&res);
  } else {
    f->resp.status = -1;
  }
  free(text);
  return NULL;
}

/* Waits until a session of db waits for a lock (the request is parked on our lock). */
static void wait_lock_waiter(const char *db_url) {
  const char *name = strrchr(db_url, '/') + 1;
  for (int64_t end = wt_now_ms() + 30000;;) {
    if (e2e_scalar(db_url,
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
                   " AND wait_event_type = 'Lock'",
                   name) > 0)
      return;
    if (wt_now_ms() > end)
      fail_msg("the request never waited for the lock");
    usleep(20000);
  }
}

/* SIGTERM while a request waits inside a transaction: the request is finished and
 * answered, its event is published before the process exits, and the exit code is 0.
 * Same for the order service with POST /orders. */
static void sigterm_finishes_inflight(void **state) {
  e2e *e = *state;
  e2e_tap(e, "e2e.tap.customer", CUSTOMER_V1_EXCHANGE);
  e2e_tap(e, "e2e.tap.order", ORDER_V1_EXCHANGE);
  e2e_start_customer(e, NULL);
  e2e_start_order(e, NULL);
  json_t *c = e2e_create_customer(e, "Term", "term@example.org", NULL);
  const char *id = e2e_str(c, "id");
  e2e_wait_view(e, id, 1, "active", 30000);

  /* customer service: PATCH parked on a row lock */
  PGconn *lk = wt_pg_connect(e->customer_db);
  char sql[256];
  PQclear(wt_pg_exec(lk, "BEGIN"));
  snprintf(sql, sizeof sql, "SELECT 1 FROM customers WHERE id = '%s' FOR UPDATE", id);
  PQclear(wt_pg_exec(lk, sql));
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", id);
  struct inflight f = {.e = e,
                       .method = "PATCH",
                       .base = e->customer.url,
                       .path = path,
                       .body = json_pack("{s:s}", "name", "during shutdown")};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, inflight_run, &f), 0);
  wait_lock_waiter(e->customer_db);
  kill(e->customer.pid, SIGTERM);
  usleep(300000);
  assert_true(dk_alive(&e->customer)); /* waits for the request */
  PQclear(wt_pg_exec(lk, "COMMIT"));
  PQfinish(lk);
  pthread_join(th, NULL);
  json_decref(f.body);
  assert_int_equal(f.resp.status, 200);
  assert_int_equal(e2e_int(f.resp.json, "version"), 2);
  json_decref(f.resp.json);
  int code = dk_stop(&e->customer, SIGTERM, 60000);
  assert_int_equal(code, 0);
  /* the event left the outbox before the exit */
  assert_int_equal(e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox"), 0);
  e2e_event ev;
  assert_true(e2e_next_event(e, "e2e.tap.customer", 10000, &ev));
  assert_string_equal(ev.type, CUSTOMER_V1_CUSTOMER_CREATED_TYPE);
  e2e_event_free(&ev);
  assert_true(e2e_next_event(e, "e2e.tap.customer", 10000, &ev));
  assert_string_equal(ev.type, CUSTOMER_V1_CUSTOMER_UPDATED_TYPE);
  assert_int_equal(ev.meta->version, 2);
  e2e_event_free(&ev);
  /* shutdown is logged */
  FILE *lf = fopen(e->customer.log_path, "r");
  char line[2048];
  bool stopped = false;
  while (lf && fgets(line, sizeof line, lf))
    stopped = stopped || strstr(line, " stopped") != NULL;
  if (lf)
    fclose(lf);
  assert_true(stopped);

  /* order service: POST /orders parked on the view row */
  lk = wt_pg_connect(e->order_db);
  PQclear(wt_pg_exec(lk, "BEGIN"));
  snprintf(sql, sizeof sql, "SELECT 1 FROM customer_view WHERE id = '%s' FOR UPDATE", id);
  PQclear(wt_pg_exec(lk, sql));
  struct inflight g = {.e = e,
                       .method = "POST",
                       .base = e->order.url,
                       .path = "/orders",
                       .body = json_pack("{s:s,s:i,s:s}", "customer_id", id, "amount_cents", 999,
                                         "currency", "EUR")};
  assert_int_equal(pthread_create(&th, NULL, inflight_run, &g), 0);
  wait_lock_waiter(e->order_db);
  kill(e->order.pid, SIGTERM);
  usleep(300000);
  assert_true(dk_alive(&e->order));
  PQclear(wt_pg_exec(lk, "COMMIT"));
  PQfinish(lk);
  pthread_join(th, NULL);
  json_decref(g.body);
  assert_int_equal(g.resp.status, 201);
  char oid[64];
  snprintf(oid, sizeof oid, "%s", e2e_str(g.resp.json, "id"));
  json_decref(g.resp.json);
  assert_int_equal(dk_stop(&e->order, SIGTERM, 60000), 0);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM warren_outbox"), 0);
  assert_true(e2e_next_event(e, "e2e.tap.order", 10000, &ev));
  assert_string_equal(ev.meta->aggregate_id, oid);
  e2e_event_free(&ev);

  /* SIGINT is a clean stop as well, also for an idle service */
  e2e_start_customer(e, NULL);
  assert_int_equal(dk_stop(&e->customer, SIGINT, 60000), 0);
  json_decref(c);
}

static bool log_has(const dk_proc *p, const char *text) {
  FILE *f = fopen(p->log_path, "r");
  char line[4096];
  bool found = false;
  while (f && fgets(line, sizeof line, f))
    found = found || strstr(line, text) != NULL;
  if (f)
    fclose(f);
  return found;
}

/* SIGTERM while the broker is out of reach: a clean exit 0. With an empty outbox the
 * relay has nothing to flush and says nothing about it; with a change waiting it
 * reports that the rows stay for the next start, and they do (nothing is lost). */
static void sigterm_with_broker_unreachable(void **state) {
  e2e *e = *state;
  char amqp[128];
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=amqp://guest:guest@127.0.0.1:%u/", dk_free_port());
  const char *env[] = {amqp, NULL};
  e2e_start(e, &e->customer, "customer", env, false);
  e2e_start(e, &e->order, "order", env, false);
  /* both run, alive, not ready */
  for (int i = 0; i < 2; i++) {
    dk_proc *p = i ? &e->order : &e->customer;
    e2e_resp r = e2e_json("GET", p->url, "/readyz", NULL, NULL);
    E2E_EXPECT(r, 503, NULL);
    assert_false(json_is_true(json_object_get(json_object_get(r.json, "checks"), "broker")));
    e2e_resp_free(&r);
  }
  assert_int_equal(dk_stop(&e->order, SIGTERM, 60000), 0);
  assert_false(log_has(&e->order, "not drained"));
  assert_int_equal(dk_stop(&e->customer, SIGTERM, 60000), 0);
  assert_false(log_has(&e->customer, "not drained"));

  /* again with a change waiting in the outbox */
  e2e_start(e, &e->customer, "customer", env, false);
  json_t *c = e2e_create_customer(e, "Kept", "kept@example.org", NULL);
  assert_int_equal(dk_stop(&e->customer, SIGTERM, 60000), 0);
  assert_true(log_has(&e->customer, "outbox not drained at shutdown"));
  assert_int_equal(e2e_scalar(e->customer_db,
                              "SELECT count(*) FROM warren_outbox WHERE aggregate_id = '%s'",
                              e2e_str(c, "id")),
                   1);
  json_decref(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(help_texts, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(bad_configuration, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(sigterm_finishes_inflight, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(sigterm_with_broker_unreachable, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e processes", tests, NULL, NULL);
}
