// warren-test: link=warren_devkit,warren_schemas timeout=300
/* test_secrets.c: secrets never leave the process: not in logs, not in HTTP answers,
 * not in /metrics, not in the CLI's output, whatever goes wrong.
 *
 * Both services and the CLI run with
 * - a RabbitMQ user of their own with a distinctive password holding characters that
 *   must be percent-encoded in the URL (created through the management API), over
 *   amqps:// with the stack's CA when the stack has TLS (this is also the TLS
 *   end-to-end test: the broker must report every connection of that user as TLS);
 * - a PostgreSQL role of their own with a distinctive password (the stack uses trust
 *   authentication, so it is not checked, but it is in the URL) and an
 *   application_name in the URL that must show up in pg_stat_activity;
 * - a distinctive admin token.
 * Then everything that produces error text is provoked: bad requests, a wrong token
 * (itself a secret a log must not keep), the broker refusing the password and
 * dropping the connections, the database dropping the connections, a service started
 * with a wrong password, a service whose database demands TLS it cannot have
 * (sslmode=require), the CLI with good and bad URLs and a URL in the wrong place.
 * Every log line, every HTTP answer (headers and body), every /metrics page and every
 * CLI output is searched for each secret, raw and percent-encoded: zero hits. The logs
 * must show the redacted forms (so the search is not vacuous). */
#include "e2e.h"

static e2e env;
static char amqp_user[64], amqp_pass[64], amqp_pass_enc[128], bad_pass[64], bad_pass_enc[128];
static char pg_role[64], pg_pass[64], pg_pass_enc[128], token[64], wrong_token[64];
static char amqp_url[1024], amqp_bad_url[1024], cust_db_url[600], order_db_url[600];
static char vhost[128];
static const char *cacert;
static bool tls;

/* Everything the outside world received: HTTP answers, CLI output. */
static char *transcript;
static size_t transcript_len;

static void record(const char *what, const char *data, size_t len) {
  size_t wl = strlen(what);
  transcript = realloc(transcript, transcript_len + wl + len + 3);
  memcpy(transcript + transcript_len, what, wl);
  transcript[transcript_len + wl] = '\n';
  memcpy(transcript + transcript_len + wl + 1, data, len);
  transcript_len += wl + 1 + len;
  transcript[transcript_len++] = '\n';
  transcript[transcript_len] = '\0';
}

/* One HTTP request; the full answer goes into the transcript. Returns the status. */
static int http(const char *method, const char *base, const char *path, const char *body,
                const char *const *headers) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", base, path);
  const char *h[8];
  size_t n = 0;
  if (body)
    h[n++] = "Content-Type: application/json";
  for (size_t i = 0; headers && headers[i] && n < 7; i++)
    h[n++] = headers[i];
  h[n] = NULL;
  wr_http_request rq = {.method = method,
                        .url = url,
                        .headers = h,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .timeout_ms = 30000};
  wr_http_response res;
  wr_err err = {0};
  if (wr_http_do(&rq, &res, &err) != 0) {
    record("transport error", err.msg, strlen(err.msg));
    return 0;
  }
  record(res.headers ? res.headers : "", res.body ? res.body : "", res.len);
  int st = res.status;
  wr_http_response_free(&res);
  return st;
}

/* Percent-encodes everything but unreserved characters. */
static void pct(const char *s, char *out, size_t outsz) {
  size_t o = 0;
  for (; *s && o + 4 < outsz; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        strchr("-._~", ch))
      out[o++] = (char)ch;
    else
      o += (size_t)snprintf(out + o, outsz - o, "%%%02X", ch);
  }
  out[o] = '\0';
}

static void set_amqp_password(const char *pw) {
  char path[160], body[256];
  snprintf(path, sizeof path, "/api/users/%s", amqp_user);
  snprintf(body, sizeof body, "{\"password\":\"%s\",\"tags\":\"\"}", pw);
  int st = wt_mgmt("PUT", path, body, NULL);
  assert_true(st == 201 || st == 204);
}

/* Connections of our user: closed by the broker when close is set; counts them and
 * how many are TLS. */
static int user_connections(bool close, int *n_tls) {
  json_t *list = NULL;
  assert_int_equal(wt_mgmt("GET", "/api/connections", NULL, &list), 200);
  int n = 0;
  if (n_tls)
    *n_tls = 0;
  size_t i;
  json_t *c;
  json_array_foreach(list, i, c) {
    const char *user = json_string_value(json_object_get(c, "user"));
    if (!user || strcmp(user, amqp_user) != 0)
      continue;
    n++;
    if (n_tls && json_is_true(json_object_get(c, "ssl")))
      (*n_tls)++;
    if (close) {
      char name[300], path[400];
      pct(json_string_value(json_object_get(c, "name")), name, sizeof name);
      snprintf(path, sizeof path, "/api/connections/%s", name);
      wt_mgmt("DELETE", path, NULL, NULL);
    }
  }
  json_decref(list);
  return n;
}

/* ---- setup ---------------------------------------------------------------------------- */

static void make_secret(char *out, size_t outsz, const char *prefix) {
  char u[WR_UUID_STRLEN];
  wr_uuid_v7(u);
  /* characters that need percent-encoding in a URL, and a random tail */
  snprintf(out, outsz, "%s/S3c:r@t#%.12s", prefix, u + 24);
}

static void db_url_for(const char *stack_db_url, const char *app, char *out, size_t outsz) {
  /* postgres://postgres@host:port/db -> postgres://role:pass@host:port/db?application_name */
  const char *at = strchr(stack_db_url, '@');
  assert_non_null(at);
  snprintf(out, outsz, "postgres://%s:%s@%s?application_name=%s", pg_role, pg_pass_enc, at + 1,
           app);
}

static int setup(void **state) {
  e2e_init(&env, "secrets");
  const char *vh = strrchr(env.amqp_url, '/') + 1;
  snprintf(vhost, sizeof vhost, "%.*s", (int)strcspn(vh, ","), vh);

  char u[WR_UUID_STRLEN];
  wr_uuid_v7(u);
  snprintf(amqp_user, sizeof amqp_user, "warren-sec-%.8s", u + 28);
  make_secret(amqp_pass, sizeof amqp_pass, "Amqp");
  make_secret(bad_pass, sizeof bad_pass, "Wrong");
  make_secret(pg_pass, sizeof pg_pass, "Pg");
  pct(amqp_pass, amqp_pass_enc, sizeof amqp_pass_enc);
  pct(bad_pass, bad_pass_enc, sizeof bad_pass_enc);
  pct(pg_pass, pg_pass_enc, sizeof pg_pass_enc);
  wr_uuid_v7(u);
  snprintf(token, sizeof token, "Admin-T0ken-%.12s", u + 24);
  wr_uuid_v7(u);
  snprintf(wrong_token, sizeof wrong_token, "Guess-T0ken-%.12s", u + 24);

  /* the broker user */
  set_amqp_password(amqp_pass);
  char path[256];
  snprintf(path, sizeof path, "/api/permissions/%s/%s", vhost, amqp_user);
  int st = wt_mgmt("PUT", path, "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}", NULL);
  assert_true(st == 201 || st == 204);
  const char *tls_urls = wt_env("WARREN_AMQPS_URL");
  cacert = wt_env("WARREN_AMQP_CACERT");
  tls = tls_urls && cacert;
  const char *base = tls ? tls_urls : wt_require("WARREN_AMQP_URL");
  const char *hp = strrchr(base, '@') + 1;
  int hpl = (int)strcspn(hp, ",/");
  snprintf(amqp_url, sizeof amqp_url, "%s://%s:%s@%.*s/%s", tls ? "amqps" : "amqp", amqp_user,
           amqp_pass_enc, hpl, hp, vhost);
  snprintf(amqp_bad_url, sizeof amqp_bad_url, "%s://%s:%s@%.*s/%s", tls ? "amqps" : "amqp",
           amqp_user, bad_pass_enc, hpl, hp, vhost);

  /* the database role: owns both databases */
  snprintf(pg_role, sizeof pg_role, "warren_sec_%.8s", u + 28);
  for (char *p = pg_role; *p; p++)
    if (*p == '-')
      *p = '_';
  PGconn *c = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[512];
  snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN PASSWORD '%s'", pg_role, pg_pass);
  PQclear(wt_pg_exec(c, sql));
  const char *dbs[2] = {strrchr(env.customer_db, '/') + 1, strrchr(env.order_db, '/') + 1};
  for (int i = 0; i < 2; i++) {
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" OWNER TO %s", dbs[i], pg_role);
    PQclear(wt_pg_exec(c, sql));
  }
  PQfinish(c);
  db_url_for(env.customer_db, "secrets-customer", cust_db_url, sizeof cust_db_url);
  db_url_for(env.order_db, "secrets-order", order_db_url, sizeof order_db_url);
  return 0;
}

static int teardown(void **state) {
  e2e_done(&env);
  char path[160];
  snprintf(path, sizeof path, "/api/users/%s", amqp_user);
  wt_mgmt("DELETE", path, NULL, NULL);
  PGconn *c = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[160];
  snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", pg_role);
  PQclear(PQexec(c, sql));
  PQfinish(c);
  free(transcript);
  return 0;
}

/* ---- the run ------------------------------------------------------------------------- */

static void start_services(void) {
  static char a[1100], ca[600], cdb[700], odb[700], tok[128];
  snprintf(a, sizeof a, "WARREN_AMQP_URL=%s", amqp_url);
  snprintf(ca, sizeof ca, "WARREN_AMQP_CACERT=%s", cacert ? cacert : "");
  snprintf(cdb, sizeof cdb, "WARREN_DATABASE_URL=%s", cust_db_url);
  snprintf(odb, sizeof odb, "WARREN_DATABASE_URL=%s", order_db_url);
  snprintf(tok, sizeof tok, "WARREN_ADMIN_TOKEN=%s", token);
  /* debug: the most log lines there are */
  const char *ce[] = {a, cdb, tok, "WARREN_LOG_LEVEL=debug", tls ? ca : NULL, NULL};
  const char *oe[] = {a, odb, tok, "WARREN_LOG_LEVEL=debug", tls ? ca : NULL, NULL};
  e2e_start(&env, &env.customer, "customer", ce, true);
  e2e_start(&env, &env.order, "order", oe, true);
}

static bool ready(dk_proc *p) {
  char url[128];
  snprintf(url, sizeof url, "%s/readyz", p->url);
  int st = 0;
  json_t *j = NULL;
  bool ok = wr_http_get_json(url, NULL, 5000, &st, &j, NULL) == 0 && st == 200;
  json_decref(j);
  return ok;
}

static bool both_ready(void *u) {
  return ready(&env.customer) && ready(&env.order);
}

static char *run_cli(const char *const *envp, const char *args, int *code) {
  char cmd[4096];
  int n = snprintf(cmd, sizeof cmd, "env -i PATH=/usr/bin:/bin");
  for (size_t i = 0; envp && envp[i]; i++)
    n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", envp[i]);
  snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s' %s 2>&1", wt_bin("warren"), args);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  char *out = NULL;
  size_t len = 0, cap = 0;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
    if (len + got + 1 > cap) {
      cap = (len + got + 1) * 2;
      out = realloc(out, cap);
    }
    memcpy(out + len, buf, got);
    len += got;
  }
  int st = pclose(f);
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (!out)
    out = strdup("");
  else
    out[len] = '\0';
  record("CLI output:", out, len); /* (the arguments hold secrets: not recorded) */
  return out;
}

static bool has_secret(const char *text, const char **which) {
  const char *const secrets[] = {amqp_pass,   amqp_pass_enc, bad_pass,    bad_pass_enc, pg_pass,
                                 pg_pass_enc, token,         wrong_token, NULL};
  /* the random tails alone, too (a secret cut or re-encoded differently) */
  for (int i = 0; secrets[i]; i++) {
    const char *tail = strrchr(secrets[i], '#');
    const char *tail_enc = strstr(secrets[i], "%23");
    if (strstr(text, secrets[i]) || (tail && strstr(text, tail + 1)) ||
        (tail_enc && strstr(text, tail_enc + 3)) ||
        (strncmp(secrets[i], "Admin", 5) == 0 && strstr(text, secrets[i] + 12)) ||
        (strncmp(secrets[i], "Guess", 5) == 0 && strstr(text, secrets[i] + 12))) {
      *which = secrets[i];
      return true;
    }
  }
  return false;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return strdup("");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = '\0';
  fclose(f);
  return s;
}

static void no_secret_anywhere(void **state) {
  start_services();
  char logs[6][600];
  int n_logs = 0;
  snprintf(logs[n_logs++], sizeof logs[0], "%s", env.customer.log_path);
  snprintf(logs[n_logs++], sizeof logs[0], "%s", env.order.log_path);
  char auth[128], wrong[128];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  snprintf(wrong, sizeof wrong, "Authorization: Bearer %s", wrong_token);
  const char *good[] = {auth, NULL}, *bad[] = {wrong, NULL};

  /* TLS end to end: every connection of the services' user is TLS */
  if (tls) {
    int n_tls = 0, n = 0;
    for (int i = 0; i < 100 && (n < 3 || n_tls < n); i++) {
      n = user_connections(false, &n_tls);
      usleep(100000);
    }
    printf("connections of %s: %d, TLS: %d\n", amqp_user, n, n_tls);
    assert_true(n >= 3); /* customer relay, order relay, order consumer */
    assert_int_equal(n_tls, n);
  }
  /* application_name from the URL reaches PostgreSQL */
  PGconn *pg = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[300];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s' AND "
           "application_name IN ('secrets-customer', 'secrets-order')",
           pg_role);
  assert_true(wt_pg_scalar(pg, sql) >= 2);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s' AND "
           "application_name NOT IN ('secrets-customer', 'secrets-order')",
           pg_role);
  assert_int_equal(wt_pg_scalar(pg, sql), 0);

  /* normal traffic and bad requests */
  assert_int_equal(http("POST", env.customer.url, "/customers",
                        "{\"name\":\"Sec\",\"email\":\"sec@example.org\"}", NULL),
                   201);
  http("POST", env.customer.url, "/customers", "{\"name\":", NULL);
  http("POST", env.customer.url, "/customers", "{\"name\":1}", NULL);
  http("GET", env.customer.url, "/nope", NULL, NULL);
  http("GET", env.customer.url, "/customers?cursor=zzz", NULL, NULL);
  assert_int_equal(http("POST", env.customer.url, "/admin/snapshots", NULL, bad), 401);
  assert_int_equal(http("POST", env.order.url, "/admin/reconcile", NULL, bad), 401);
  assert_int_equal(http("POST", env.customer.url, "/admin/snapshots", NULL, good), 200);
  assert_int_equal(http("POST", env.order.url, "/admin/reconcile", NULL, good), 200);
  http("POST", env.order.url, "/orders",
       "{\"customer_id\":\"x\",\"amount_cents\":1,"
       "\"currency\":\"EUR\"}",
       NULL);

  /* the broker refuses the password and drops the connections: the services retry,
   * logging every failure */
  set_amqp_password(bad_pass);
  int dropped = user_connections(true, NULL);
  printf("dropped %d broker connections; password changed\n", dropped);
  assert_true(dropped >= 3);
  sleep(4);
  http("GET", env.customer.url, "/readyz", NULL, NULL);
  http("GET", env.order.url, "/readyz", NULL, NULL);
  http("POST", env.customer.url, "/customers",
       "{\"name\":\"During\",\"email\":\"during@example.org\"}", NULL);
  set_amqp_password(amqp_pass);
  assert_true(wt_wait_until(both_ready, NULL, 60000));

  /* the database drops every connection of the services */
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '%s'",
           pg_role);
  printf("terminated %lld database sessions\n", wt_pg_scalar(pg, sql));
  http("POST", env.customer.url, "/customers",
       "{\"name\":\"After\",\"email\":\"after@example.org\"}", NULL);
  http("GET", env.order.url, "/customers/x", NULL, NULL);
  assert_true(wt_wait_until(both_ready, NULL, 60000));
  PQfinish(pg);

  /* a service with the wrong broker password: retries, never ready, logs each try */
  dk_proc wrongpw;
  static char a[1100], ca[600], cdb[700], tok[128];
  snprintf(a, sizeof a, "WARREN_AMQP_URL=%s", amqp_bad_url);
  snprintf(ca, sizeof ca, "WARREN_AMQP_CACERT=%s", cacert ? cacert : "");
  snprintf(cdb, sizeof cdb, "WARREN_DATABASE_URL=%s", cust_db_url);
  snprintf(tok, sizeof tok, "WARREN_ADMIN_TOKEN=%s", token);
  const char *we[] = {a, cdb, tok, tls ? ca : NULL, NULL};
  e2e_start(&env, &wrongpw, "customer", we, false);
  snprintf(logs[n_logs++], sizeof logs[0], "%s", wrongpw.log_path);
  sleep(3);
  http("GET", wrongpw.url, "/readyz", NULL, NULL);
  assert_int_equal(e2e_stop(&wrongpw), 0);

  /* a service whose database demands TLS the server does not offer: exits at once */
  dk_proc nossl;
  static char sdb[800];
  snprintf(sdb, sizeof sdb, "WARREN_DATABASE_URL=%s&sslmode=require", cust_db_url);
  char logp[600];
  e2e_log_path(&env, "customer-sslmode", logp, sizeof logp);
  const char *se[] = {a, sdb, tok, "WARREN_HTTP_ADDR=127.0.0.1:0", tls ? ca : NULL, NULL};
  e2e_spawn(&nossl, "customer-service", wt_bin("customer-service"), se, logp);
  int64_t end = wt_now_ms() + 30000;
  while (dk_alive(&nossl) && wt_now_ms() < end)
    usleep(50000);
  assert_false(dk_alive(&nossl));
  snprintf(logs[n_logs++], sizeof logs[0], "%s", logp);
  char *sl = slurp(logp);
  printf("sslmode=require: %s", sl);
  assert_non_null(strstr(sl, "SSL"));
  free(sl);

  /* the CLI: good URL in the environment, bad URL as a flag, a URL where an option
   * belongs */
  static char ea[1100], eca[600];
  snprintf(ea, sizeof ea, "WARREN_AMQP_URL=%s", amqp_url);
  snprintf(eca, sizeof eca, "WARREN_AMQP_CACERT=%s", cacert ? cacert : "");
  const char *cenv[] = {ea, tls ? eca : NULL, NULL};
  int code;
  free(run_cli(cenv, "dlq list --queue order.customer-sync", &code));
  assert_int_equal(code, 0);
  char args[1400];
  snprintf(args, sizeof args, "--amqp-url '%s' dlq list --queue order.customer-sync", amqp_bad_url);
  const char *cenv_ca[] = {tls ? eca : NULL, NULL};
  free(run_cli(cenv_ca, args, &code));
  assert_int_equal(code, 1);
  snprintf(args, sizeof args, "dlq list --queue order.customer-sync '%s'", amqp_url);
  free(run_cli(cenv, args, &code));
  assert_int_equal(code, 2);
  snprintf(args, sizeof args, "'%s' dlq list", amqp_url);
  free(run_cli(cenv, args, &code));
  assert_int_equal(code, 2);
  snprintf(args, sizeof args, "--amqp-url 'amqp://%s:%s@127.0.0.1:1/x' dlq list --queue q",
           amqp_user, amqp_pass_enc);
  free(run_cli(NULL, args, &code));
  assert_int_equal(code, 1);

  /* /metrics of both */
  http("GET", env.customer.url, "/metrics", NULL, NULL);
  http("GET", env.order.url, "/metrics", NULL, NULL);

  /* clean stop: the shutdown path logs too */
  assert_int_equal(e2e_stop(&env.order), 0);
  assert_int_equal(e2e_stop(&env.customer), 0);

  /* the search */
  int hits = 0, redacted = 0;
  for (int i = 0; i < n_logs; i++) {
    char *text = slurp(logs[i]);
    const char *which;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
      if (has_secret(line, &which)) {
        if (hits++ < 10)
          printf("SECRET %s in %s: %s\n", which, logs[i], line);
      }
      if (strstr(line, ":***@"))
        redacted++;
    }
    free(text);
  }
  const char *which;
  for (char *line = transcript ? strtok(transcript, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    if (has_secret(line, &which) && hits++ < 20)
      printf("SECRET %s in an answer or CLI output: %s\n", which, line);
  }
  printf("%d log lines show a redacted URL; %d secret hits\n", redacted, hits);
  assert_int_equal(hits, 0);
  assert_true(redacted > 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {cmocka_unit_test(no_secret_anywhere)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
