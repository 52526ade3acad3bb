/* warren-demo: the narrated Customer -> Order scenario. Starts both services on the
 * stack given by the environment, plays every pattern warren implements against
 * them, checks each step, and exits 0 only if every check held.
 *
 * Environment: WARREN_AMQP_URL, WARREN_PG_URL (an admin database URL: the demo makes
 * its own databases), optionally WARREN_AMQP_MGMT_URL (the demo then runs in a fresh
 * RabbitMQ vhost), WARREN_BIN_DIR (default: this binary's directory).
 * Flags: --keep (leave the services running and print their URLs). */
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <warren/warren.h>

#include "customer/v1/customer.warren.h"
#include "devkit.h"

#define ADMIN_TOKEN "demo-admin-token"
#define QUEUE       "order.customer-sync"

static int failures;
static int checks;
static char bin_dir[PATH_MAX];
static char amqp_url[1024];
static char pg_admin[512], customer_db[512], order_db[512];
static char log_dir[PATH_MAX];
static dk_proc customer_svc, order_svc;
static double latencies_ms[64];
static int n_latencies;

/* ---- narration ------------------------------------------------------------------ */

static void step(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("\n== ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("   ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

static bool check(bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("   [%s] ", ok ? "ok" : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  checks++;
  if (!ok)
    failures++;
  return ok;
}

static void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "demo: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (customer_svc.pid > 0) {
    dk_tail(customer_svc.log_path, 30);
    dk_stop(&customer_svc, SIGKILL, 2000);
  }
  if (order_svc.pid > 0) {
    dk_tail(order_svc.log_path, 30);
    dk_stop(&order_svc, SIGKILL, 2000);
  }
  exit(1);
}

/* ---- setup ----------------------------------------------------------------------- */

static void quiet(void *arg, const char *msg) {}

static void psql_admin(const char *sql) {
  PGconn *c = PQconnectdb(pg_admin);
  if (PQstatus(c) != CONNECTION_OK)
    fatal("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
  PQsetNoticeProcessor(c, quiet, NULL); /* "does not exist, skipping" is expected */
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fatal("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

static void db_url(const char *name, char *out, size_t outsz) {
  const char *scheme = strstr(pg_admin, "://");
  const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
  size_t n = slash ? (size_t)(slash - pg_admin) : strlen(pg_admin);
  snprintf(out, outsz, "%.*s/%s", (int)n, pg_admin, name);
}

static void fresh_db(const char *name, char *url, size_t urlsz) {
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
  psql_admin(sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  psql_admin(sql);
  db_url(name, url, urlsz);
}

static void mgmt(const char *method, const char *path, const char *body) {
  const char *base = getenv("WARREN_AMQP_MGMT_URL");
  const char *at = strchr(base + 7, '@');
  char url[512];
  snprintf(url, sizeof url, "http://%s", at ? at + 1 : base + 7);
  size_t n = strlen(url);
  if (n && url[n - 1] == '/')
    url[n - 1] = '\0';
  strncat(url, path, sizeof url - strlen(url) - 1);
  char auth[128], b64[64];
  wr_base64_encode("guest:guest", 11, false, b64, sizeof b64);
  snprintf(auth, sizeof auth, "Authorization: Basic %s", b64);
  const char *h[] = {auth, NULL};
  int status = 0;
  wr_err err = {0};
  if (dk_http(method, url, body ? json_loads(body, 0, NULL) : NULL, h, &status, NULL, &err) != 0 ||
      (status >= 300 && status != 404))
    fatal("management API %s %s: %s (HTTP %d)", method, path, err.msg, status);
}

static void setup_broker(void) {
  const char *urls = getenv("WARREN_AMQP_URL");
  if (!getenv("WARREN_AMQP_MGMT_URL")) {
    snprintf(amqp_url, sizeof amqp_url, "%s", urls);
    say("broker: %s (no management URL: using it as is)", urls);
    return;
  }
  /* a fresh vhost per run: no queue or message of an earlier run leaks in */
  mgmt("DELETE", "/api/vhosts/warren-demo", NULL);
  mgmt("PUT", "/api/vhosts/warren-demo", NULL);
  mgmt("PUT", "/api/permissions/warren-demo/guest",
       "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}");
  size_t o = 0;
  for (const char *p = urls; *p;) {
    size_t n = strcspn(p, ",");
    o += (size_t)snprintf(amqp_url + o, sizeof amqp_url - o, "%s%.*s/warren-demo", o ? "," : "",
                          (int)n, p);
    p += n + (p[n] == ',');
  }
  char red[1024];
  wr_redact_url(amqp_url, red, sizeof red);
  say("broker: %s (fresh vhost warren-demo)", red);
}

static void start_customer(void) {
  char db[600], amqp[1100], port_log[PATH_MAX + 32], bin[PATH_MAX + 32];
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=%s", customer_db);
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=%s", amqp_url);
  const char *env[] = {db, amqp, "WARREN_ADMIN_TOKEN=" ADMIN_TOKEN, NULL};
  snprintf(bin, sizeof bin, "%s/customer-service", bin_dir);
  snprintf(port_log, sizeof port_log, "%s/customer-service.log", log_dir);
  wr_err err = {0};
  unsigned port = customer_svc.port ? customer_svc.port : dk_free_port();
  if (dk_start(&customer_svc, "customer-service", bin, port, env, port_log, &err) != 0 ||
      dk_wait_ready(&customer_svc, 30000, &err) != 0)
    fatal("%s", err.msg);
}

static void start_order(void) {
  char db[600], amqp[1100], cust[128], log[PATH_MAX + 32], bin[PATH_MAX + 32];
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=%s", order_db);
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=%s", amqp_url);
  snprintf(cust, sizeof cust, "CUSTOMER_SERVICE_URL=%s", customer_svc.url);
  /* short retry tiers so the poison step fits in a demo */
  const char *env[] = {db,
                       amqp,
                       cust,
                       "WARREN_ADMIN_TOKEN=" ADMIN_TOKEN,
                       "WARREN_RETRY_DELAYS=400,800",
                       "WARREN_RECONCILE_INTERVAL=0",
                       NULL};
  snprintf(bin, sizeof bin, "%s/order-service", bin_dir);
  snprintf(log, sizeof log, "%s/order-service.log", log_dir);
  wr_err err = {0};
  unsigned port = order_svc.port ? order_svc.port : dk_free_port();
  if (dk_start(&order_svc, "order-service", bin, port, env, log, &err) != 0 ||
      dk_wait_ready(&order_svc, 60000, &err) != 0)
    fatal("%s", err.msg);
}

/* ---- HTTP helpers ------------------------------------------------------------------ */

static json_t *call(const char *method, const dk_proc *svc, const char *path, json_t *body,
                    const char *const *headers, int *status) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", svc->url, path);
  json_t *out = NULL;
  wr_err err = {0};
  if (dk_http(method, url, body, headers, status, &out, &err) != 0)
    fatal("%s %s: %s", method, url, err.msg);
  return out;
}

static const char *jstr(json_t *j, const char *k) {
  const char *s = json_string_value(json_object_get(j, k));
  return s ? s : "";
}

static uint64_t jver(json_t *j) {
  return (uint64_t)json_integer_value(json_object_get(j, "version"));
}

/* Waits until the order view shows customer id at version (and status if given).
 * Returns the wait in ms, or -1 on timeout. */
static double wait_view(const char *id, uint64_t version, const char *status, int timeout_ms) {
  int64_t t0 = wr_mono_ns();
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", id);
  for (;;) {
    int st = 0;
    json_t *v = call("GET", &order_svc, path, NULL, NULL, &st);
    bool ok =
        st == 200 && jver(v) == version && (!status || strcmp(jstr(v, "status"), status) == 0);
    json_decref(v);
    double ms = (double)(wr_mono_ns() - t0) / 1e6;
    if (ok)
      return ms;
    if (ms > timeout_ms)
      return -1;
    usleep(2000);
  }
}

static json_t *create_customer(const char *name, const char *email, const char *status) {
  int st = 0;
  json_t *c =
      call("POST", &customer_svc, "/customers",
           json_pack("{s:s,s:s,s:s}", "name", name, "email", email, "status", status), NULL, &st);
  if (!check(st == 201, "POST /customers %s -> %d", name, st))
    fatal("cannot create customers");
  say("created %-14s id=%s status=%s version=%" PRIu64, name, jstr(c, "id"), jstr(c, "status"),
      jver(c));
  return c;
}

static void record_latency(double ms) {
  if (ms >= 0 && n_latencies < 64)
    latencies_ms[n_latencies++] = ms;
}

/* ---- event injection (straight to the exchange, as a misbehaving publisher would) -- */

static wr_conn *broker;

static void publish_raw(const char *type, const char *event_id, const void *body, size_t len) {
  amqp_basic_properties_t props = {0};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/x-protobuf");
  props.delivery_mode = 2;
  props.type = amqp_cstring_bytes(type);
  props.message_id = amqp_cstring_bytes(event_id);
  wr_publish p = {.exchange = CUSTOMER_V1_EXCHANGE,
                  .routing_key = type,
                  .body = body,
                  .len = len,
                  .props = &props,
                  .mandatory = true};
  uint64_t seq = 0;
  wr_err err = {0};
  if (wr_conn_publish(broker, &p, &seq, &err) != 0 ||
      wr_conn_wait_confirms(broker, seq, 10000, NULL, NULL, &err) != 0)
    fatal("inject %s: %s", type, err.msg);
}

/* Packs a CustomerCreated/Updated for a synthetic customer and publishes it; returns
 * the packed bytes so the caller can publish them again (a duplicate). */
static uint8_t *inject_customer(bool created, const char *id, uint64_t version, const char *name,
                                char event_id[WR_UUID_STRLEN], size_t *len) {
  wr_uuid_v7(event_id);
  Google__Protobuf__Timestamp now = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  int64_t ns = wr_now_ns();
  now.seconds = ns / 1000000000;
  now.nanos = (int32_t)(ns % 1000000000);
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.event_id = event_id;
  meta.event_type = created ? CUSTOMER_V1_CUSTOMER_CREATED_TYPE : CUSTOMER_V1_CUSTOMER_UPDATED_TYPE;
  meta.aggregate_type = "customer";
  meta.aggregate_id = (char *)id;
  meta.version = version;
  meta.occurred_at = &now;
  meta.correlation_id = event_id;
  meta.source_service = "demo-injector";
  Customer__V1__Customer d = CUSTOMER__V1__CUSTOMER__INIT;
  d.id = (char *)id;
  d.name = (char *)name;
  d.email = "injected@example.org";
  d.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  d.version = version;
  d.created_at = &now;
  d.updated_at = &now;
  ProtobufCMessage *m;
  Customer__V1__CustomerCreated c = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  Customer__V1__CustomerUpdated u = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  if (created) {
    c.meta = &meta;
    c.data = &d;
    m = &c.base;
  } else {
    u.meta = &meta;
    u.data = &d;
    m = &u.base;
  }
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len ? *len : 1);
  protobuf_c_message_pack(m, buf);
  publish_raw(meta.event_type, event_id, buf, *len);
  return buf;
}

/* Outcomes counted by order-service processes that have stopped (the counters of a
 * process die with it). */
static double consumed_before[6];
static const char *const RESULTS[6] = {"applied", "duplicate",     "stale",
                                       "retried", "dead_lettered", "skipped"};

static double consumed(const char *result) {
  char series[160];
  snprintf(series, sizeof series, "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"%s\"}",
           result);
  double v = 0;
  dk_metric(order_svc.url, series, &v, NULL);
  return v;
}

/* Waits for a consumed_total counter to reach at least `target`. */
static bool wait_counter(const char *result, double target, int timeout_ms) {
  int64_t end = wr_mono_ns() + (int64_t)timeout_ms * 1000000;
  while (consumed(result) < target) {
    if (wr_mono_ns() > end)
      return false;
    usleep(20000);
  }
  return true;
}

/* ---- the CLI, as an operator runs it -------------------------------------------- */

static int run_cli(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "WARREN_AMQP_URL='%s' '%s/warren' %s 2>&1 | sed 's/^/      | /'",
           amqp_url, bin_dir, args);
  say("$ warren %s", args);
  fflush(stdout);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct dlq_count {
  size_t n;
  char ids[8][80];
  char types[8][160];
};

static int count_dlq(const wr_dlq_entry *e, void *user) {
  struct dlq_count *d = user;
  if (d->n < 8) {
    snprintf(d->ids[d->n], sizeof d->ids[0], "%s", e->message_id);
    snprintf(d->types[d->n], sizeof d->types[0], "%s", e->type);
  }
  d->n++;
  return 0;
}

static size_t dlq_depth(struct dlq_count *out) {
  memset(out, 0, sizeof *out);
  wr_err err = {0};
  if (wr_dlq_browse(broker, QUEUE ".dlq", 0, count_dlq, out, &err) != 0)
    fatal("browse DLQ: %s", err.msg);
  return out->n;
}

/* ---- source vs view --------------------------------------------------------------- */

static int compare_all(const char *label) {
  int st = 0, diffs = 0, n = 0;
  char path[256] = "/customers?limit=1000";
  for (;;) {
    json_t *page = call("GET", &customer_svc, path, NULL, NULL, &st);
    if (st != 200)
      fatal("bulk API answered %d", st);
    size_t i;
    json_t *src;
    json_array_foreach(json_object_get(page, "items"), i, src) {
      char vp[128];
      snprintf(vp, sizeof vp, "/customers/%s", jstr(src, "id"));
      json_t *v = call("GET", &order_svc, vp, NULL, NULL, &st);
      bool same =
          st == 200 && jver(v) == jver(src) && !strcmp(jstr(v, "status"), jstr(src, "status"));
      if (same && strcmp(jstr(src, "status"), "deleted") != 0)
        same = !strcmp(jstr(v, "name"), jstr(src, "name")) &&
               !strcmp(jstr(v, "email"), jstr(src, "email"));
      if (!same) {
        diffs++;
        say("  differs: %s source v%" PRIu64 " %s, view %s", jstr(src, "id"), jver(src),
            jstr(src, "status"), st == 200 ? jstr(v, "status") : "missing");
      }
      json_decref(v);
      n++;
    }
    const char *next = json_string_value(json_object_get(page, "next_cursor"));
    if (!next) {
      json_decref(page);
      break;
    }
    snprintf(path, sizeof path, "/customers?limit=1000&cursor=%s", next);
    json_decref(page);
  }
  check(diffs == 0, "%s: all %d customers of the source match the view", label, n);
  return diffs;
}

static void sql_order(const char *sql) {
  PGconn *c = PQconnectdb(order_db);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fatal("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  bool keep = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--keep"))
      keep = true;
    else if (!strcmp(argv[i], "--help")) {
      printf("usage: warren-demo [--keep]\n"
             "Needs WARREN_AMQP_URL and WARREN_PG_URL (scripts/demo sets them).\n");
      return 0;
    } else {
      fprintf(stderr, "warren-demo: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  const char *pg = getenv("WARREN_PG_URL");
  if (!getenv("WARREN_AMQP_URL") || !pg) {
    fprintf(stderr, "warren-demo: set WARREN_AMQP_URL and WARREN_PG_URL (see scripts/demo)\n");
    return 2;
  }
  snprintf(pg_admin, sizeof pg_admin, "%s", pg);
  if (getenv("WARREN_BIN_DIR")) {
    snprintf(bin_dir, sizeof bin_dir, "%s", getenv("WARREN_BIN_DIR"));
  } else {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(bin_dir, sizeof bin_dir, "%s", dirname(self));
  }
  snprintf(log_dir, sizeof log_dir, "%s/../demo-logs", bin_dir);
  mkdir(log_dir, 0755);
  wr_log_configure(NULL, NULL, WR_LOG_WARN);

  printf("warren demo: a Customer service owns customers, an Order service keeps a copy.\n"
         "Every change travels REST -> database + outbox -> relay -> RabbitMQ -> consumer\n"
         "(inbox, version guard) -> view. Service logs: %s\n",
         log_dir);

  step("Setup: fresh databases and broker vhost, start both services");
  setup_broker();
  fresh_db("warren_demo_customer", customer_db, sizeof customer_db);
  fresh_db("warren_demo_order", order_db, sizeof order_db);
  start_customer();
  say("customer-service ready at %s", customer_svc.url);
  start_order();
  say("order-service    ready at %s", order_svc.url);
  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = amqp_url;
  co.cacert = getenv("WARREN_AMQP_CACERT");
  co.connection_name = "warren-demo";
  wr_err err = {0};
  if (wr_conn_new(&co, &broker, &err) || wr_conn_open(broker, &err) ||
      wr_conn_confirm_mode(broker, &err))
    fatal("broker: %s", err.msg);

  /* 1 */
  step("1. Create customers: each becomes a CustomerCreated event and reaches the order view");
  json_t *ada = create_customer("Ada Lovelace", "ada@example.org", "active");
  json_t *grace = create_customer("Grace Hopper", "grace@example.org", "pending");
  json_t *linus = create_customer("Linus Torvalds", "linus@example.org", "active");
  json_t *all[] = {ada, grace, linus};
  for (int i = 0; i < 3; i++) {
    double ms = wait_view(jstr(all[i], "id"), 1, NULL, 15000);
    record_latency(ms);
    check(ms >= 0, "order view has %s at version 1 after %.1f ms", jstr(all[i], "name"), ms);
  }

  /* 2 */
  step("2. Update: PATCH with If-Match, the view converges; a stale If-Match is refused");
  char path[160];
  snprintf(path, sizeof path, "/customers/%s", jstr(ada, "id"));
  const char *if1[] = {"If-Match: \"1\"", "X-Correlation-Id: demo-step-2", NULL};
  int st = 0;
  int64_t t0 = wr_mono_ns();
  json_t *r = call("PATCH", &customer_svc, path,
                   json_pack("{s:s}", "email", "ada.lovelace@example.org"), if1, &st);
  check(st == 200 && jver(r) == 2, "PATCH email -> %d, version %" PRIu64, st, jver(r));
  json_decref(r);
  double ms = wait_view(jstr(ada, "id"), 2, NULL, 15000);
  double total_ms = (double)(wr_mono_ns() - t0) / 1e6;
  record_latency(ms);
  check(ms >= 0,
        "order view shows version 2 (%.1f ms after the PATCH answered, %.1f ms end to end)", ms,
        total_ms);
  r = call("PATCH", &customer_svc, path, json_pack("{s:s}", "name", "Ada"), if1, &st);
  check(st == 409, "PATCH with If-Match \"1\" on version 2 -> %d %s", st,
        jstr(json_object_get(r, "error"), "code"));
  json_decref(r);

  /* 3 */
  step("3. Delete: the source keeps a tombstone, the view shows the customer as deleted");
  snprintf(path, sizeof path, "/customers/%s", jstr(linus, "id"));
  r = call("DELETE", &customer_svc, path, json_pack("{s:s}", "reason", "closed account"), NULL,
           &st);
  check(st == 204, "DELETE -> %d", st);
  json_decref(r);
  r = call("GET", &customer_svc, path, NULL, NULL, &st);
  check(st == 404, "GET on the customer service -> %d", st);
  json_decref(r);
  ms = wait_view(jstr(linus, "id"), 2, "deleted", 15000);
  record_latency(ms);
  check(ms >= 0, "order view: status deleted, version 2 (tombstone) after %.1f ms", ms);

  /* 4 */
  step("4. Orders are checked against the local view: no call to the customer service");
  struct {
    json_t *who;
    const char *id;
    int want;
    const char *code;
  } orders[] = {{ada, NULL, 201, NULL},
                {grace, NULL, 422, "customer_inactive"},
                {linus, NULL, 422, "customer_inactive"},
                {NULL, "no-such-customer", 422, "customer_unknown"}};
  for (int i = 0; i < 4; i++) {
    const char *cid = orders[i].who ? jstr(orders[i].who, "id") : orders[i].id;
    r = call(
        "POST", &order_svc, "/orders",
        json_pack("{s:s,s:i,s:s}", "customer_id", cid, "amount_cents", 4200, "currency", "EUR"),
        NULL, &st);
    const char *code = jstr(json_object_get(r, "error"), "code");
    check(st == orders[i].want && (!orders[i].code || !strcmp(code, orders[i].code)),
          "order for %s -> %d %s", orders[i].who ? jstr(orders[i].who, "name") : cid, st,
          st == 201 ? jstr(r, "id") : code);
    json_decref(r);
  }

  /* 5 */
  step("5. Duplicates and out-of-order events are absorbed (inbox and version guard)");
  char inj_id[WR_UUID_STRLEN], e1[WR_UUID_STRLEN], e2[WR_UUID_STRLEN], e3[WR_UUID_STRLEN];
  wr_uuid_v7(inj_id);
  double dup0 = consumed("duplicate"), stale0 = consumed("stale");
  size_t len;
  uint8_t *created = inject_customer(true, inj_id, 1, "Injected v1", e1, &len);
  publish_raw(CUSTOMER_V1_CUSTOMER_CREATED_TYPE, e1, created, len); /* the same event again */
  free(created);
  free(inject_customer(false, inj_id, 3, "Injected v3", e3, &len));
  free(inject_customer(false, inj_id, 2, "Injected v2 (late)", e2, &len));
  say("published CustomerCreated v1 twice, then Updated v3, then a late Updated v2");
  check(wait_counter("duplicate", dup0 + 1, 15000),
        "the second copy of v1 was skipped as a duplicate");
  check(wait_counter("stale", stale0 + 1, 15000), "the late v2 was skipped as stale");
  snprintf(path, sizeof path, "/customers/%s", inj_id);
  r = call("GET", &order_svc, path, NULL, NULL, &st);
  check(st == 200 && jver(r) == 3 && !strcmp(jstr(r, "name"), "Injected v3"),
        "view holds version 3 \"%s\"", jstr(r, "name"));
  json_decref(r);

  /* 6 */
  step("6. Poison: a broken message and a consumer bug end in the DLQ; healthy events flow on");
  struct dlq_count d;
  char junk_id[WR_UUID_STRLEN];
  wr_uuid_v7(junk_id);
  publish_raw(CUSTOMER_V1_CUSTOMER_UPDATED_TYPE, junk_id, "\xff\xfe not protobuf", 15);
  say("published 15 bytes that are not protobuf as a CustomerUpdated");
  /* the "bug": the view refuses a name, as a faulty deploy would */
  sql_order(
      "CREATE FUNCTION demo_bug() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.name LIKE '%Poison%' THEN RAISE EXCEPTION 'demo bug: cannot store %', NEW.name; "
      "END IF; RETURN NEW; END $$;"
      "CREATE TRIGGER demo_bug BEFORE INSERT OR UPDATE ON customer_view "
      "FOR EACH ROW EXECUTE FUNCTION demo_bug()");
  say("installed a 'bug' in the order service's database: names containing Poison fail");
  snprintf(path, sizeof path, "/customers/%s", jstr(grace, "id"));
  r = call("PATCH", &customer_svc, path, json_pack("{s:s}", "name", "Grace Poison Hopper"), NULL,
           &st);
  check(st == 200, "PATCH Grace's name -> %d (version %" PRIu64 ")", st, jver(r));
  json_decref(r);
  snprintf(path, sizeof path, "/customers/%s", jstr(ada, "id"));
  r = call("PATCH", &customer_svc, path, json_pack("{s:s}", "name", "Ada King"), NULL, &st);
  json_decref(r);
  ms = wait_view(jstr(ada, "id"), 3, NULL, 15000);
  check(ms >= 0,
        "meanwhile Ada's next update reached the view (%.1f ms): the poison blocks nothing", ms);
  int64_t dl = wr_mono_ns() + 30000000000LL;
  while (dlq_depth(&d) < 2 && wr_mono_ns() < dl)
    usleep(100000);
  check(d.n == 2, "after the retry tiers (400 ms, 800 ms) both are in the DLQ: %zu message(s)",
        d.n);
  run_cli("dlq list --queue " QUEUE);
  say("the fix is deployed: the bug is removed");
  sql_order("DROP TRIGGER demo_bug ON customer_view; DROP FUNCTION demo_bug()");
  char args[256];
  const char *grace_event = NULL;
  for (size_t i = 0; i < d.n && i < 8; i++)
    if (strcmp(d.ids[i], junk_id) != 0)
      grace_event = d.ids[i];
  snprintf(args, sizeof args, "dlq show --queue " QUEUE " --id %s", junk_id);
  run_cli(args);
  snprintf(args, sizeof args, "dlq replay --queue " QUEUE " --id %s",
           grace_event ? grace_event : "?");
  check(run_cli(args) == 0, "replayed Grace's update");
  snprintf(args, sizeof args, "dlq purge --queue " QUEUE " --id %s --yes", junk_id);
  check(run_cli(args) == 0, "purged the undecodable message");
  ms = wait_view(jstr(grace, "id"), 2, NULL, 15000);
  check(ms >= 0, "Grace's view converged to version 2 after the replay");
  check(dlq_depth(&d) == 0, "DLQ is empty");

  /* 7 */
  step("7. Catch-up: the order service restarts on an empty database while customers change");
  for (int i = 0; i < 6; i++)
    consumed_before[i] += consumed(RESULTS[i]);
  int code = dk_stop(&order_svc, SIGTERM, 20000);
  check(code == 0, "order-service stopped cleanly (exit %d)", code);
  json_t *more[2];
  more[0] = create_customer("Margaret Hamilton", "margaret@example.org", "active");
  more[1] = create_customer("Barbara Liskov", "barbara@example.org", "suspended");
  snprintf(path, sizeof path, "/customers/%s", jstr(grace, "id"));
  r = call("PATCH", &customer_svc, path, json_pack("{s:s}", "status", "active"), NULL, &st);
  json_decref(r);
  say("created 2 customers and activated Grace while the order service was down");
  fresh_db("warren_demo_order", order_db, sizeof order_db);
  say("order database dropped and recreated: no view, no inbox, no history");
  t0 = wr_mono_ns();
  start_order();
  say("order-service ready again after %.0f ms (bulk catch-up, then the queue)",
      (double)(wr_mono_ns() - t0) / 1e6);
  /* events that waited in the queue are applied or skipped as stale; give them a moment */
  wait_view(jstr(grace, "id"), 3, "active", 15000);
  compare_all("after catch-up");

  /* 8 */
  step("8. Reconciliation: break the view behind the service's back, then repair it");
  char sql[512];
  snprintf(sql, sizeof sql,
           "DELETE FROM customer_view WHERE id = '%s';"
           "UPDATE customer_view SET version = 1, name = 'stale' WHERE id = '%s';"
           "INSERT INTO customer_view (id, name, email, status, version) "
           "VALUES ('ghost-customer', 'Ghost', 'ghost@example.org', 'active', 9)",
           jstr(ada, "id"), jstr(grace, "id"));
  sql_order(sql);
  say("deleted Ada's row, rolled Grace back to version 1, added a customer nobody created");
  const char *auth[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
  r = call("POST", &order_svc, "/admin/reconcile", NULL, NULL, &st);
  check(st == 403 || st == 401, "POST /admin/reconcile without the token -> %d", st);
  json_decref(r);
  r = call("POST", &order_svc, "/admin/reconcile", NULL, auth, &st);
  json_int_t found = json_integer_value(json_object_get(r, "discrepancies_found"));
  json_int_t fixed = json_integer_value(json_object_get(r, "discrepancies_fixed"));
  check(st == 200 && found >= 3 && fixed == found,
        "POST /admin/reconcile -> %d: checked %lld, found %lld, fixed %lld", st,
        (long long)json_integer_value(json_object_get(r, "checked")), (long long)found,
        (long long)fixed);
  json_decref(r);
  compare_all("after reconciliation");

  /* summary */
  step("Summary");
  double sum = 0, max = 0;
  for (int i = 0; i < n_latencies; i++) {
    sum += latencies_ms[i];
    if (latencies_ms[i] > max)
      max = latencies_ms[i];
  }
  if (n_latencies)
    say("sync latency seen by the demo (source answered -> view shows it): avg %.1f ms, max %.1f "
        "ms "
        "over %d changes",
        sum / n_latencies, max, n_latencies);
  double total[6];
  for (int i = 0; i < 6; i++)
    total[i] = consumed_before[i] + consumed(RESULTS[i]);
  say("consumer outcomes over both order-service runs: applied %.0f, duplicate %.0f, stale %.0f, "
      "retried %.0f, dead-lettered %.0f",
      total[0], total[1], total[2], total[3], total[4]);
  for (int i = 0; i < 3; i++)
    json_decref(all[i]);
  json_decref(more[0]);
  json_decref(more[1]);
  wr_conn_free(broker);
  if (keep) {
    printf("\nservices left running (--keep):\n  customer-service %s (pid %d)\n"
           "  order-service    %s (pid %d)\n  admin token: %s\n  logs: %s\n",
           customer_svc.url, (int)customer_svc.pid, order_svc.url, (int)order_svc.pid, ADMIN_TOKEN,
           log_dir);
  } else {
    int c1 = dk_stop(&order_svc, SIGTERM, 20000), c2 = dk_stop(&customer_svc, SIGTERM, 20000);
    check(c1 == 0 && c2 == 0, "both services shut down cleanly on SIGTERM");
  }
  printf("\n%s: %d of %d checks held\n", failures ? "DEMO FAILED" : "demo passed",
         checks - failures, checks);
  return failures ? 1 : 0;
}
