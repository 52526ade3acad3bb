/* e2e.h: what the end-to-end tests share. The services run as real child processes
 * (build/bin/customer-service, build/bin/order-service) against the test stack, each
 * test file in its own RabbitMQ vhost and its own databases, so the files run in
 * parallel although the services use fixed exchange and queue names.
 *
 * Header-only (CMake builds one executable per test_*.c): every function is static
 * inline so that a test which does not use one does not warn. All helpers fail the
 * current cmocka test (fail_msg) instead of returning errors, except where a status
 * is the point (HTTP calls return the status).
 *
 * Processes are spawned with PR_SET_PDEATHSIG: a test killed by its timeout takes its
 * services with it instead of leaving them running against the shared stack. */
#ifndef WARREN_E2E_H
#define WARREN_E2E_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devkit.h"
#include "harness.h"

#include <warren/warren.h>

#include "customer/v1/customer.warren.h"
#include "order/v1/order.warren.h"

#define E2E_TOKEN "e2e-admin-token-4f9a"
#define E2E_QUEUE "order.customer-sync"

typedef struct e2e {
  char name[64];
  char amqp_url[1024]; /* the stack's URL list with this test's vhost */
  char customer_db[512];
  char order_db[512];
  char log_dir[512];
  dk_proc customer, order;
  wr_conn *broker; /* lazily opened test connection to the vhost (e2e_broker) */
} e2e;

/* ---- setup and processes ------------------------------------------------------------ */

/* A fresh vhost and two fresh databases; logs under <bin dir>/../e2e-logs. */
static inline void e2e_init(e2e *e, const char *name) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->amqp_url, sizeof e->amqp_url, "%s", wt_vhost_create("e2e"));
  snprintf(e->customer_db, sizeof e->customer_db, "%s", wt_db_create("e2e_customer"));
  snprintf(e->order_db, sizeof e->order_db, "%s", wt_db_create("e2e_order"));
  snprintf(e->log_dir, sizeof e->log_dir, "%s", wt_bin("../e2e-logs"));
  mkdir(e->log_dir, 0755);
}

/* Starts bin with a controlled environment: PATH/HOME/LANG and sanitizer settings of
 * the test process, then `env` ("KEY=VALUE", NULL-terminated; later entries win).
 * Nothing else leaks in (a WARREN_ADMIN_TOKEN of the caller's shell would change what
 * admin routes answer). Output goes to log_path (truncated). */
static inline void e2e_spawn(dk_proc *p, const char *name, const char *bin, const char *const *env,
                             const char *log_path) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->log_path, sizeof p->log_path, "%s", log_path);
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_msg("cannot open %s: %s", log_path, strerror(errno));
  static const char *const keep[] = {"PATH",          "HOME",         "LANG", "ASAN_OPTIONS",
                                     "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ",   NULL};
  char *kept[8] = {0};
  for (int i = 0; keep[i]; i++) {
    const char *v = getenv(keep[i]);
    if (v && asprintf(&kept[i], "%s=%s", keep[i], v) < 0)
      kept[i] = NULL;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, STDIN_FILENO);
    clearenv();
    for (int i = 0; i < 8; i++)
      if (kept[i])
        putenv(kept[i]);
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execl(bin, bin, (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(fd);
  for (int i = 0; i < 8; i++)
    free(kept[i]);
  p->pid = pid;
}

/* The port a service logged in "listening on ... (port N)", waiting up to timeout_ms.
 * Services are started on port 0, so no two tests can race for a port. */
static inline unsigned e2e_logged_port(dk_proc *p, int timeout_ms) {
  int64_t end = wt_now_ms() + timeout_ms;
  for (;;) {
    FILE *f = fopen(p->log_path, "r");
    char line[2048];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, "listening on ");
      const char *port = at ? strstr(at, "(port ") : NULL;
      if (port) {
        fclose(f);
        return (unsigned)strtoul(port + 6, NULL, 10);
      }
    }
    if (f)
      fclose(f);
    if (!dk_alive(p)) {
      dk_tail(p->log_path, 30);
      fail_msg("%s exited during start (log %s)", p->name, p->log_path);
    }
    if (wt_now_ms() > end) {
      dk_tail(p->log_path, 30);
      fail_msg("%s did not log its port in %d ms", p->name, timeout_ms);
    }
    usleep(20000);
  }
}

/* <log dir>/<test>-<pid>-<n>-<svc>.log: one file per process started. */
static inline void e2e_log_path(const e2e *e, const char *svc, char *out, size_t outsz) {
  static int seq;
  snprintf(out, outsz, "%s/%s-%d-%02d-%s.log", e->log_dir, e->name, (int)getpid(), ++seq, svc);
}

/* Starts a service with the test's URLs plus `extra` (NULL-terminated, may override),
 * waits for its port; with wait_ready also for /readyz 200. */
static inline void e2e_start(e2e *e, dk_proc *p, const char *svc, const char *const *extra,
                             bool wait_ready) {
  bool customer = strcmp(svc, "customer") == 0;
  static __thread char db[600], amqp[1100], cust[160];
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=%s", customer ? e->customer_db : e->order_db);
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=%s", e->amqp_url);
  snprintf(cust, sizeof cust, "CUSTOMER_SERVICE_URL=%s", e->customer.url);
  const char *env[32];
  size_t n = 0;
  env[n++] = db;
  env[n++] = amqp;
  env[n++] = "WARREN_HTTP_ADDR=127.0.0.1:0";
  if (!customer) {
    env[n++] = cust;
    env[n++] = "WARREN_RECONCILE_INTERVAL=0";
  }
  for (size_t i = 0; extra && extra[i] && n < 31; i++)
    env[n++] = extra[i];
  env[n] = NULL;
  char log[1024];
  e2e_log_path(e, svc, log, sizeof log);
  char name[32];
  snprintf(name, sizeof name, "%s-service", svc);
  e2e_spawn(p, name, wt_bin(name), env, log);
  p->port = e2e_logged_port(p, 30000);
  snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", p->port);
  if (wait_ready) {
    wr_err err = {0};
    if (dk_wait_ready(p, 120000, &err) != 0) {
      dk_tail(p->log_path, 40);
      fail_msg("%s", err.msg);
    }
  }
}

static inline void e2e_start_customer(e2e *e, const char *const *extra) {
  e2e_start(e, &e->customer, "customer", extra, true);
}

static inline void e2e_start_order(e2e *e, const char *const *extra) {
  e2e_start(e, &e->order, "order", extra, true);
}

/* SIGTERM and the exit status (fails the test on a timeout). */
static inline int e2e_stop(dk_proc *p) {
  if (p->pid <= 0)
    return 0;
  int code = dk_stop(p, SIGTERM, 60000);
  if (code < 0)
    fail_msg("%s did not stop within 60 s of SIGTERM (log %s)", p->name, p->log_path);
  return code;
}

/* Stops whatever runs (SIGKILL: teardown after a failure must be quick), closes the
 * broker connection, drops the databases and the vhost. */
static inline void e2e_done(e2e *e) {
  if (e->order.pid > 0)
    dk_stop(&e->order, SIGKILL, 5000);
  if (e->customer.pid > 0)
    dk_stop(&e->customer, SIGKILL, 5000);
  wr_conn_free(e->broker);
  e->broker = NULL;
  wt_db_drop(e->customer_db);
  wt_db_drop(e->order_db);
  wt_vhost_delete(e->amqp_url);
}

/* ---- HTTP ----------------------------------------------------------------------- */

typedef struct e2e_resp {
  int status;
  json_t *json; /* parsed body, NULL if empty or not JSON */
  char *body;   /* raw body (NUL-terminated) */
  size_t len;
  char *headers;
} e2e_resp;

static inline void e2e_resp_free(e2e_resp *r) {
  json_decref(r->json);
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

/* A request with a raw body (content_type NULL = no Content-Type header) and extra
 * headers. Fails the test if no answer arrives. */
static inline e2e_resp e2e_raw(const char *method, const char *base, const char *path,
                               const char *body, size_t body_len, const char *content_type,
                               const char *const *headers) {
  char *url = NULL;
  if (asprintf(&url, "%s%s", base, path) < 0)
    fail_msg("out of memory");
  const char *h[40];
  size_t n = 0;
  char ct[200];
  if (content_type) {
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    h[n++] = ct;
  }
  for (size_t i = 0; headers && headers[i] && n < 39; i++)
    h[n++] = headers[i];
  h[n] = NULL;
  wr_http_request rq = {.method = method,
                        .url = url,
                        .headers = h,
                        .body = body,
                        .body_len = body_len,
                        .timeout_ms = 60000};
  wr_http_response res;
  wr_err err = {0};
  int rc = wr_http_do(&rq, &res, &err);
  if (rc != 0)
    fail_msg("%s %.200s: %s", method, url, err.msg);
  free(url);
  e2e_resp r = {.status = res.status, .body = res.body, .len = res.len, .headers = res.headers};
  if (res.len > 0)
    r.json = json_loadb(res.body, res.len, JSON_REJECT_DUPLICATES, NULL);
  return r;
}

/* A JSON request: body (stolen, may be NULL) serialized with Content-Type JSON. */
static inline e2e_resp e2e_json(const char *method, const char *base, const char *path,
                                json_t *body, const char *const *headers) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  e2e_resp r = e2e_raw(method, base, path, text, text ? strlen(text) : 0,
                       text ? "application/json" : NULL, headers);
  free(text);
  return r;
}

/* A response header's value, "" when absent. */
static inline const char *e2e_header(const e2e_resp *r, const char *name, char *out, size_t outsz) {
  wr_http_response res = {
      .status = r->status, .body = r->body, .len = r->len, .headers = r->headers};
  wr_http_response_header(&res, name, out, outsz);
  return out;
}

static inline const char *e2e_str(json_t *j, const char *key) {
  const char *s = json_string_value(json_object_get(j, key));
  return s ? s : "";
}

static inline long long e2e_int(json_t *j, const char *key) {
  return (long long)json_integer_value(json_object_get(j, key));
}

/* The "code" of an {"error":{"code":...}} body, "" if none. */
static inline const char *e2e_error_code(const e2e_resp *r) {
  return e2e_str(json_object_get(r->json, "error"), "code");
}

/* Asserts status (and error code when given); prints the body on mismatch. */
#define E2E_EXPECT(resp, want_status, want_code)                                                   \
  do {                                                                                             \
    const e2e_resp *r__ = &(resp);                                                                 \
    const char *c__ = (want_code);                                                                 \
    if (r__->status != (want_status) || (c__ && strcmp(e2e_error_code(r__), c__) != 0))            \
      fail_msg("%s:%d: expected %d %s, got %d: %.400s", __FILE__, __LINE__, (want_status),         \
               c__ ? c__ : "", r__->status, r__->body ? r__->body : "");                           \
  } while (0)

/* POST /customers and return the created customer (caller decrefs). */
static inline json_t *e2e_create_customer(e2e *e, const char *name, const char *email,
                                          const char *status) {
  json_t *b = json_pack("{s:s,s:s}", "name", name, "email", email);
  if (status)
    json_object_set_new(b, "status", json_string(status));
  e2e_resp r = e2e_json("POST", e->customer.url, "/customers", b, NULL);
  E2E_EXPECT(r, 201, NULL);
  json_t *c = json_incref(r.json);
  e2e_resp_free(&r);
  return c;
}

/* Creates n customers "<prefix> i" <prefix-i@example.org> from `threads` parallel
 * clients (statuses cycle active, pending, suspended). Returns their ids (caller
 * decrefs). */
struct e2e_many {
  e2e *e;
  const char *prefix;
  int from, to;
  json_t *ids;
  int failed;
};

static inline void *e2e_many_run(void *arg) {
  struct e2e_many *m = arg;
  static const char *const st[] = {"active", "pending", "suspended"};
  for (int i = m->from; i < m->to; i++) {
    char name[96], email[128], url[256];
    snprintf(name, sizeof name, "%s %d", m->prefix, i);
    snprintf(email, sizeof email, "%s-%d@example.org", m->prefix, i);
    snprintf(url, sizeof url, "%s/customers", m->e->customer.url);
    json_t *b = json_pack("{s:s,s:s,s:s}", "name", name, "email", email, "status", st[i % 3]);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    const char *h[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = "POST",
                          .url = url,
                          .headers = h,
                          .body = text,
                          .body_len = strlen(text),
                          .timeout_ms = 60000};
    wr_http_response res;
    int rc = wr_http_do(&rq, &res, NULL);
    free(text);
    json_t *j = rc == 0 && res.status == 201 ? json_loadb(res.body, res.len, 0, NULL) : NULL;
    if (j)
      json_array_append(m->ids, json_object_get(j, "id"));
    else
      m->failed++;
    json_decref(j);
    wr_http_response_free(&res);
  }
  return NULL;
}

static inline json_t *e2e_create_many(e2e *e, const char *prefix, int n, int threads) {
  struct e2e_many m[16];
  pthread_t th[16];
  if (threads > 16)
    threads = 16;
  for (int t = 0; t < threads; t++) {
    m[t] = (struct e2e_many){.e = e,
                             .prefix = prefix,
                             .from = n * t / threads,
                             .to = n * (t + 1) / threads,
                             .ids = json_array()};
    if (pthread_create(&th[t], NULL, e2e_many_run, &m[t]) != 0)
      fail_msg("pthread_create");
  }
  json_t *ids = json_array();
  int failed = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    json_array_extend(ids, m[t].ids);
    json_decref(m[t].ids);
    failed += m[t].failed;
  }
  if (failed)
    fail_msg("%d of %d creates failed", failed, n);
  return ids;
}

/* ---- the order view against the source ------------------------------------------ */

/* Every customer of the source through the bulk API (tombstones included), as one
 * array (caller decrefs). */
static inline json_t *e2e_source_all(e2e *e) {
  json_t *all = json_array();
  char path[512] = "/customers?limit=1000";
  for (;;) {
    e2e_resp r = e2e_json("GET", e->customer.url, path, NULL, NULL);
    E2E_EXPECT(r, 200, NULL);
    json_array_extend(all, json_object_get(r.json, "items"));
    const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
    if (!next) {
      e2e_resp_free(&r);
      return all;
    }
    snprintf(path, sizeof path, "/customers?limit=1000&cursor=%s", next);
    e2e_resp_free(&r);
  }
}

/* Compares the order service's customer_view with the source row by row: same ids
 * (no row missing, none extra), same version and status, same name and email for
 * live customers. Returns the number of differing rows; with `report` the first ones
 * are printed. */
static inline int e2e_view_diff(e2e *e, bool report) {
  json_t *src = e2e_source_all(e);
  PGconn *c = wt_pg_connect(e->order_db);
  PGresult *r = wt_pg_exec(c, "SELECT id, name, email, status, version FROM customer_view "
                              "ORDER BY id");
  int rows = PQntuples(r), diffs = 0;
  /* the source list is ordered by (updated_at, id): index it by id */
  json_t *by_id = json_object();
  size_t i;
  json_t *it;
  json_array_foreach(src, i, it) json_object_set(by_id, e2e_str(it, "id"), it);
  for (int k = 0; k < rows; k++) {
    const char *id = PQgetvalue(r, k, 0);
    json_t *s = json_object_get(by_id, id);
    bool same = s && strcmp(PQgetvalue(r, k, 3), e2e_str(s, "status")) == 0 &&
                strtoll(PQgetvalue(r, k, 4), NULL, 10) == e2e_int(s, "version");
    if (same && strcmp(e2e_str(s, "status"), "deleted") != 0)
      same = strcmp(PQgetvalue(r, k, 1), e2e_str(s, "name")) == 0 &&
             strcmp(PQgetvalue(r, k, 2), e2e_str(s, "email")) == 0;
    if (!same) {
      if (report && diffs < 10)
        print_message("differs: %s view v%s %s, source %s\n", id, PQgetvalue(r, k, 4),
                      PQgetvalue(r, k, 3),
                      s ? json_string_value(json_object_get(s, "status")) : "(none)");
      diffs++;
    }
    if (s)
      json_object_del(by_id, id);
  }
  /* what is left in by_id is missing from the view */
  const char *key;
  json_t *val;
  json_object_foreach(by_id, key, val) {
    if (report && diffs < 10)
      print_message("missing from the view: %s v%lld\n", key, e2e_int(val, "version"));
    diffs++;
  }
  json_decref(by_id);
  json_decref(src);
  PQclear(r);
  PQfinish(c);
  return diffs;
}

/* Waits until the view equals the source (e2e_view_diff == 0); returns the time it
 * took in ms or fails the test after timeout_ms (printing the differences). */
static inline int64_t e2e_wait_converged(e2e *e, int timeout_ms) {
  int64_t t0 = wt_now_ms();
  while (e2e_view_diff(e, false) != 0) {
    if (wt_now_ms() - t0 > timeout_ms) {
      e2e_view_diff(e, true);
      dk_tail(e->order.log_path, 20);
      fail_msg("the order view did not converge within %d ms", timeout_ms);
    }
    usleep(50000);
  }
  return wt_now_ms() - t0;
}

/* Waits until the order service's GET /customers/{id} shows `version` (and `status`
 * when not NULL); returns the wait in ms or fails after timeout_ms. */
static inline int64_t e2e_wait_view(e2e *e, const char *id, long long version, const char *status,
                                    int timeout_ms) {
  int64_t t0 = wt_now_ms();
  char path[160];
  snprintf(path, sizeof path, "/customers/%s", id);
  for (;;) {
    e2e_resp r = e2e_json("GET", e->order.url, path, NULL, NULL);
    bool ok = r.status == 200 && e2e_int(r.json, "version") == version &&
              (!status || strcmp(e2e_str(r.json, "status"), status) == 0);
    e2e_resp_free(&r);
    if (ok)
      return wt_now_ms() - t0;
    if (wt_now_ms() - t0 > timeout_ms) {
      dk_tail(e->order.log_path, 20);
      fail_msg("view of %s did not reach version %lld %s within %d ms", id, version,
               status ? status : "", timeout_ms);
    }
    usleep(5000);
  }
}

/* ---- SQL on the services' databases ----------------------------------------------- */

static inline long long e2e_scalar(const char *db_url, const char *fmt, ...) WR_PRINTF(2, 3);
static inline long long e2e_scalar(const char *db_url, const char *fmt, ...) {
  char sql[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGconn *c = wt_pg_connect(db_url);
  long long v = wt_pg_scalar(c, sql);
  PQfinish(c);
  return v;
}

static inline void e2e_sql(const char *db_url, const char *fmt, ...) WR_PRINTF(2, 3);
static inline void e2e_sql(const char *db_url, const char *fmt, ...) {
  char sql[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGconn *c = wt_pg_connect(db_url);
  PQclear(wt_pg_exec(c, sql));
  PQfinish(c);
}

/* ---- the broker: a test queue bound to an exchange of the vhost ------------------ */

static inline wr_conn *e2e_broker(e2e *e) {
  if (e->broker)
    return e->broker;
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = e->amqp_url;
  o.connection_name = "e2e test";
  wr_err err = {0};
  if (wr_conn_new(&o, &e->broker, &err) != 0 || wr_conn_open(e->broker, &err) != 0)
    fail_msg("broker: %s", err.msg);
  return e->broker;
}

/* Declares `queue` (classic, durable) and binds it to exchange with routing key "#"
 * (every event). The exchange is declared too (topic, durable, as the services do) so
 * the binding can be made before the service first connects. */
static inline void e2e_tap(e2e *e, const char *queue, const char *exchange) {
  wr_conn *b = e2e_broker(e);
  wr_err err = {0};
  wr_exchange_decl x = {.name = exchange, .type = "topic", .durable = true};
  wr_queue_decl q = {.name = queue, .durable = true};
  if (wr_conn_declare_exchange(b, &x, &err) != 0 ||
      wr_conn_declare_queue(b, &q, false, NULL, NULL, &err) != 0 ||
      wr_conn_bind_queue(b, queue, exchange, "#", amqp_empty_table, &err) != 0)
    fail_msg("tap %s <- %s: %s", queue, exchange, err.msg);
}

/* One event taken from a tap queue, decoded. */
typedef struct e2e_event {
  char type[160]; /* AMQP type property = event type */
  char routing_key[160];
  char message_id[80];
  char content_type[80];
  const wr_event_type *t;
  ProtobufCMessage *msg; /* decoded (wr_event_free) */
  const wr_meta *meta;   /* borrowed from msg */
} e2e_event;

static inline void e2e_event_free(e2e_event *ev) {
  wr_event_free(ev->msg);
  memset(ev, 0, sizeof *ev);
}

static inline const wr_event_type *e2e_type_by_name(const char *type) {
  for (size_t i = 0; i < 4; i++)
    if (strcmp(customer_v1_events[i].type, type) == 0)
      return &customer_v1_events[i];
  for (size_t i = 0; i < sizeof order_v1_events / sizeof order_v1_events[0]; i++)
    if (strcmp(order_v1_events[i].type, type) == 0)
      return &order_v1_events[i];
  return NULL;
}

static inline void e2e_cp(char *out, size_t outsz, amqp_bytes_t b) {
  snprintf(out, outsz, "%.*s", (int)b.len, b.bytes ? (const char *)b.bytes : "");
}

/* Takes the next message of `queue` (acked), waiting up to timeout_ms, and decodes it.
 * Returns false when nothing arrived in time. */
static inline bool e2e_next_event(e2e *e, const char *queue, int timeout_ms, e2e_event *out) {
  memset(out, 0, sizeof *out);
  wr_conn *b = e2e_broker(e);
  int64_t end = wt_now_ms() + timeout_ms;
  for (;;) {
    amqp_envelope_t env;
    wr_err err = {0};
    int rc = wr_conn_get(b, queue, &env, &err);
    if (rc == 0) {
      amqp_basic_properties_t *p = &env.message.properties;
      if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        e2e_cp(out->type, sizeof out->type, p->type);
      if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        e2e_cp(out->message_id, sizeof out->message_id, p->message_id);
      if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        e2e_cp(out->content_type, sizeof out->content_type, p->content_type);
      e2e_cp(out->routing_key, sizeof out->routing_key, env.routing_key);
      out->t = e2e_type_by_name(out->type);
      if (!out->t)
        fail_msg("message of unknown type \"%s\" in %s", out->type, queue);
      int drc =
          wr_event_decode(out->t, env.message.body.bytes, env.message.body.len, 0, &out->msg, &err);
      if (drc != 0)
        fail_msg("cannot decode a %s from %s: %s", out->type, queue, err.msg);
      out->meta = wr_event_meta(out->msg);
      wr_conn_ack(b, env.delivery_tag, false, NULL);
      amqp_destroy_envelope(&env);
      return true;
    }
    if (rc != WR_ENOTFOUND)
      fail_msg("basic.get %s: %s", queue, err.msg);
    if (wt_now_ms() > end)
      return false;
    usleep(20000);
  }
}

/* Messages ready in a queue of the vhost. */
static inline long e2e_depth(e2e *e, const char *queue) {
  wr_queue_decl q = {.name = queue, .durable = true};
  uint32_t n = 0;
  wr_err err = {0};
  if (wr_conn_declare_queue(e2e_broker(e), &q, true, &n, NULL, &err) != 0)
    return -1;
  return (long)n;
}

/* ---- metrics ---------------------------------------------------------------------- */

/* A sample of /metrics (name with labels, exactly as exposed); fails if absent. */
static inline double e2e_metric(const dk_proc *p, const char *series) {
  double v = 0;
  wr_err err = {0};
  if (dk_metric(p->url, series, &v, &err) != 0)
    fail_msg("%s /metrics: %s", p->name, err.msg);
  return v;
}

/* Waits until a sample reaches at least `min` (counters are bumped after the work they
 * count is committed, which may be after its effect is visible elsewhere). Returns the
 * value; fails after timeout_ms. */
static inline double e2e_wait_metric(const dk_proc *p, const char *series, double min,
                                     int timeout_ms) {
  for (int64_t end = wt_now_ms() + timeout_ms;;) {
    double v = 0;
    if (dk_metric(p->url, series, &v, NULL) == 0 && v >= min)
      return v;
    if (wt_now_ms() > end)
      fail_msg("%s: %s stayed below %g for %d ms (last %g)", p->name, series, min, timeout_ms, v);
    usleep(20000);
  }
}

/* ---- cmocka glue -------------------------------------------------------------------- */

/* Runs a test group with a fresh e2e per test (state). */
static inline int e2e_setup_state(void **state, const char *name) {
  e2e *e = calloc(1, sizeof *e);
  if (!e)
    return -1;
  e2e_init(e, name);
  *state = e;
  return 0;
}

static inline int e2e_teardown_state(void **state) {
  e2e *e = *state;
  if (e) {
    e2e_done(e);
    free(e);
  }
  *state = NULL;
  return 0;
}

#endif
