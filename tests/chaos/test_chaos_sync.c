// warren-test: link=warren_devkit timeout=1500 serial
/* test_chaos_sync.c: the Customer -> Order synchronization under load while the
 * infrastructure fails, then proof that nothing was lost, applied twice or left stale.
 *
 * Setup: a fresh RabbitMQ vhost and two fresh databases; customer-service and
 * order-service as child processes, each reaching the broker through its own TCP
 * proxy (tcp_proxy.c) so the test can stall and cut their links. The order service's
 * CUSTOMER_SERVICE_URL points at a small gateway in this process: it answers the bulk
 * catch-up with empty pages (so every change must arrive as an event: a catch-up
 * after each restart would otherwise repair lost events and hide them) and forwards
 * the checksum and ids requests of reconciliation to the real customer service.
 *
 * Load: `clients` threads, each owning its own customers, send creates, updates (some
 * with If-Match) and deletes to the customer service at a steady pace (plus a few
 * orders to the order service), until `mutations` were sent and every fault of the
 * schedule was injected. A 5xx or a connection error is an unknown outcome: the
 * client re-reads that customer from the source before touching it again.
 *
 * Faults, in random order at random points (per round): kill -9 of the order service
 * (x3, restarted each time), kill -9 of the customer service, a relay crash between
 * publish and mark (the proxy withholds the broker's confirms, then kill -9), a
 * RabbitMQ stop/start, a PostgreSQL restart, proxy cuts with refused reconnects,
 * a long stall of both links, a stall followed by a cut.
 *
 * Then it waits for convergence and checks: the view equals the source row by row
 * (version, status, name, email; tombstones: version and status) and by the checksum
 * API (both sides' bucket checksums, and POST /admin/reconcile finding nothing); the
 * guard has every version and every tombstone; the inbox holds exactly one row per
 * event the source produced (sum of versions: no event lost, none applied twice); work
 * queue, retry tiers and DLQ empty; both outboxes drained; every acknowledged write is
 * in the source; both services still alive and stopping cleanly on SIGTERM. It prints
 * the figures (duplicates absorbed, stale skipped, retries, time to converge...).
 *
 * Options (flags or environment; CI uses the defaults):
 *   --mutations N   WARREN_CHAOS_MUTATIONS  customer mutations to send (20000)
 *   --clients N     WARREN_CHAOS_CLIENTS    concurrent client threads (8)
 *   --customers N   WARREN_CHAOS_CUSTOMERS  live customers to keep (3000)
 *   --duration S    WARREN_CHAOS_DURATION   seconds over which load and faults spread (75)
 *   --rounds N      WARREN_CHAOS_ROUNDS     times the fault schedule repeats (1)
 *   --converge S    WARREN_CHAOS_CONVERGE   convergence timeout in seconds (300)
 *   --seed N        WARREN_CHAOS_SEED       random seed (default: time; printed)
 *   --keep          WARREN_CHAOS_KEEP=1     keep databases, vhost and logs afterwards */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devkit.h"
#include "harness.h"
#include "tcp_proxy.h"

#include <warren/warren.h>

#define QUEUE         "order.customer-sync"
#define ADMIN_TOKEN   "chaos-admin-token"
#define RETRY_DELAYS  "200,1000,5000"
#define N_RETRY_TIERS 3
#define BUCKETS       64

/* ---- configuration ------------------------------------------------------------------ */

typedef struct config {
  unsigned mutations, clients, customers, duration_s, rounds, converge_s, seed;
  bool keep;
} config;

static config cfg = {20000, 8, 3000, 75, 1, 300, 0, false};

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v < min || v > max)
    return false;
  *out = (unsigned)v;
  return true;
}

static int parse_args(int argc, char **argv) {
  static const struct {
    const char *flag, *env;
    unsigned *dest, min, max;
  } opts[] = {
      {"--mutations", "WARREN_CHAOS_MUTATIONS", &cfg.mutations, 100, 100000000},
      {"--clients", "WARREN_CHAOS_CLIENTS", &cfg.clients, 1, 256},
      {"--customers", "WARREN_CHAOS_CUSTOMERS", &cfg.customers, 10, 10000000},
      {"--duration", "WARREN_CHAOS_DURATION", &cfg.duration_s, 10, 86400},
      {"--rounds", "WARREN_CHAOS_ROUNDS", &cfg.rounds, 1, 1000},
      {"--converge", "WARREN_CHAOS_CONVERGE", &cfg.converge_s, 10, 86400},
      {"--seed", "WARREN_CHAOS_SEED", &cfg.seed, 1, 0xffffffffu},
  };
  size_t n = sizeof opts / sizeof opts[0];
  for (size_t i = 0; i < n; i++) {
    const char *v = getenv(opts[i].env);
    if (v && *v && !parse_uint(v, opts[i].min, opts[i].max, opts[i].dest)) {
      fprintf(stderr, "chaos: %s must be %u..%u\n", opts[i].env, opts[i].min, opts[i].max);
      return 2;
    }
  }
  if (getenv("WARREN_CHAOS_KEEP") && !strcmp(getenv("WARREN_CHAOS_KEEP"), "1"))
    cfg.keep = true;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--keep")) {
      cfg.keep = true;
      continue;
    }
    if (!strcmp(argv[a], "--help")) {
      printf("usage: test_chaos_sync [--mutations N] [--clients N] [--customers N] "
             "[--duration S] [--rounds N] [--converge S] [--seed N] [--keep]\n");
      return 1;
    }
    size_t i;
    for (i = 0; i < n; i++)
      if (!strcmp(argv[a], opts[i].flag))
        break;
    if (i == n || a + 1 >= argc ||
        !parse_uint(argv[a + 1], opts[i].min, opts[i].max, opts[i].dest)) {
      fprintf(stderr, "chaos: bad argument %s (see --help)\n", argv[a]);
      return 2;
    }
    a++;
  }
  if (!cfg.seed)
    cfg.seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
  return 0;
}

/* ---- reporting ---------------------------------------------------------------------- */

static int64_t t0_ms;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned violations;

static void note(const char *fmt, ...) WR_PRINTF(1, 2);
static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&out_mu);
  printf("[%7.1fs] ", (double)(wt_now_ms() - t0_ms) / 1000.0);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  pthread_mutex_unlock(&out_mu);
  va_end(ap);
}

/* A broken promise: counted, the first 40 printed; the test fails at the end. */
static void violation(const char *fmt, ...) WR_PRINTF(1, 2);
static void violation(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&out_mu);
  if (violations++ < 40) {
    printf("  VIOLATION: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
  }
  pthread_mutex_unlock(&out_mu);
  va_end(ap);
}

/* ---- the environment: vhost, databases, proxies, services ------------------------- */

static char vhost_urls[1024]; /* direct to the broker (checks at the end) */
static const char *customer_db, *order_db;
static tp_proxy *px_customer, *px_order;
static char amqp_customer[512], amqp_order[512]; /* through the proxies */
static char log_dir[1024];
static dk_proc cust_proc, order_proc;
static char cust_url[64], order_url[64], gateway_url[64];
static unsigned cust_port, order_port;
static wr_http_server *gateway;
static uint64_t gateway_catchups;

/* "amqp://u:p@h:port[/vhost],..." -> host and port of the first URL. */
static void first_host_port(const char *urls, char *host, size_t hostsz, unsigned *port) {
  const char *at = strchr(urls, '@');
  const char *h = at ? at + 1 : strstr(urls, "://") + 3;
  size_t n = strcspn(h, ":/,");
  snprintf(host, hostsz, "%.*s", (int)n, h);
  *port = h[n] == ':' ? (unsigned)strtoul(h + n + 1, NULL, 10) : 5672;
}

static void proxy_url(const tp_proxy *p, char *out, size_t outsz) {
  const char *slash = strrchr(vhost_urls, '/'); /* the vhost of the (only) first URL */
  snprintf(out, outsz, "amqp://guest:guest@127.0.0.1:%u/%.*s", tp_port(p),
           (int)strcspn(slash + 1, ","), slash + 1);
}

static bool start_customer_wait(bool wait) {
  static char db[600], amqp[600];
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=%s", customer_db);
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=%s", amqp_customer);
  const char *env[] = {db, amqp, "WARREN_ADMIN_TOKEN=" ADMIN_TOKEN, "WARREN_LOG_LEVEL=info", NULL};
  char logp[1100];
  snprintf(logp, sizeof logp, "%s/customer-service.log", log_dir);
  wr_err err = {0};
  if (dk_start(&cust_proc, "customer-service", wt_bin("customer-service"), cust_port, env, logp,
               &err) != 0 ||
      (wait && dk_wait_ready(&cust_proc, 120000, &err) != 0)) {
    violation("customer-service did not start: %s", err.msg);
    dk_tail(logp, 30);
    return false;
  }
  return true;
}

static bool start_order_wait(bool wait) {
  static char db[600], amqp[600], cu[128];
  snprintf(db, sizeof db, "WARREN_DATABASE_URL=%s", order_db);
  snprintf(amqp, sizeof amqp, "WARREN_AMQP_URL=%s", amqp_order);
  snprintf(cu, sizeof cu, "CUSTOMER_SERVICE_URL=%s", gateway_url);
  const char *env[] = {db,
                       amqp,
                       cu,
                       "WARREN_ADMIN_TOKEN=" ADMIN_TOKEN,
                       "WARREN_RECONCILE_INTERVAL=0",
                       "WARREN_RETRY_DELAYS=" RETRY_DELAYS,
                       "WARREN_LOG_LEVEL=info",
                       NULL};
  char logp[1100];
  snprintf(logp, sizeof logp, "%s/order-service.log", log_dir);
  wr_err err = {0};
  if (dk_start(&order_proc, "order-service", wt_bin("order-service"), order_port, env, logp,
               &err) != 0 ||
      (wait && dk_wait_ready(&order_proc, 120000, &err) != 0)) {
    violation("order-service did not start: %s", err.msg);
    dk_tail(logp, 30);
    return false;
  }
  return true;
}

static bool start_customer(void) {
  return start_customer_wait(true);
}
static bool start_order(void) {
  return start_order_wait(true);
}

/* Waits for a service started without waiting. */
static bool wait_ready(dk_proc *p) {
  wr_err err = {0};
  if (dk_wait_ready(p, 120000, &err) != 0) {
    violation("%s did not become ready: %s", p->name, err.msg);
    dk_tail(p->log_path, 30);
    return false;
  }
  return true;
}

/* ---- the catch-up gateway ----------------------------------------------------------- */

static bool only_chars(const char *s, const char *allowed) {
  return s && *s && strspn(s, allowed) == strlen(s);
}

static void forward(wr_http_req *req, const char *path_and_query) {
  char url[8192];
  snprintf(url, sizeof url, "%s%s", cust_url, path_and_query);
  wr_http_request rq = {.method = "GET", .url = url, .timeout_ms = 30000};
  wr_http_response res;
  wr_err err = {0};
  if (wr_http_do(&rq, &res, &err) != 0) {
    wr_http_reply_error(req, 502, "upstream", "customer service: %s", err.msg);
    return;
  }
  wr_http_reply_bytes(req, (unsigned)res.status, "application/json", res.body, res.len);
  wr_http_response_free(&res);
}

static void gw_customers(wr_http_req *req, void *user) {
  const char *ids = wr_http_req_query(req, "ids");
  if (!ids) {
    /* catch-up page: nothing, so that only events can bring changes */
    __atomic_add_fetch(&gateway_catchups, 1, __ATOMIC_RELAXED);
    wr_http_reply_json(req, 200, json_pack("{s:[],s:n}", "items", "next_cursor"));
    return;
  }
  if (!only_chars(ids, "0123456789abcdefABCDEF-,") || strlen(ids) > 7000) {
    wr_http_reply_error(req, 400, "invalid_parameter", "ids");
    return;
  }
  char pq[7200];
  snprintf(pq, sizeof pq, "/customers?ids=%s", ids);
  forward(req, pq);
}

static void gw_checksums(wr_http_req *req, void *user) {
  const char *b = wr_http_req_query(req, "bucket"), *n = wr_http_req_query(req, "buckets");
  if ((b && !only_chars(b, "0123456789")) || (n && !only_chars(n, "0123456789")) ||
      (b && strlen(b) > 8) || (n && strlen(n) > 8)) {
    wr_http_reply_error(req, 400, "invalid_parameter", "bucket(s)");
    return;
  }
  char pq[128];
  snprintf(pq, sizeof pq, "/customers/checksums%s%s%s%s%s", (b || n) ? "?" : "",
           n ? "buckets=" : "", n ? n : "", (b && n) ? "&bucket=" : (b ? "bucket=" : ""),
           b ? b : "");
  forward(req, pq);
}

static const wr_http_route gateway_routes[] = {
    {"GET", "/customers", gw_customers, 0},
    {"GET", "/customers/checksums", gw_checksums, 0},
};

/* ---- counters of processes that die: sampled, banked before each kill ------------ */

typedef struct svc_counters {
  const char *name;
  const char *const *series;
  size_t n;
  const char *base_url;
  double banked[8], cur[8];
  bool up;
} svc_counters;

static const char *const ORDER_SERIES[] = {
    "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"applied\"}",
    "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"duplicate\"}",
    "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"stale\"}",
    "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"retried\"}",
    "warren_events_consumed_total{queue=\"" QUEUE "\",result=\"dead_lettered\"}",
    "warren_outbox_published_total",
};
enum { O_APPLIED, O_DUPLICATE, O_STALE, O_RETRIED, O_DEAD, O_PUBLISHED };
static const char *const CUSTOMER_SERIES[] = {"warren_outbox_published_total",
                                              "warren_outbox_failed_total"};
enum { C_PUBLISHED, C_FAILED };

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static svc_counters order_ctr = {"order-service", ORDER_SERIES, 6, order_url, {0}, {0}, false};
static svc_counters cust_ctr = {"customer-service", CUSTOMER_SERIES, 2, cust_url, {0}, {0}, false};

/* Reads the process's counters into cur (metrics_mu held). */
static void counters_sample_locked(svc_counters *s) {
  if (!s->up)
    return;
  char url[128];
  snprintf(url, sizeof url, "%s/metrics", s->base_url);
  wr_http_request rq = {.method = "GET", .url = url, .timeout_ms = 3000};
  wr_http_response res;
  if (wr_http_do(&rq, &res, NULL) != 0)
    return;
  for (size_t i = 0; i < s->n; i++) {
    size_t sl = strlen(s->series[i]);
    for (char *line = res.body; line && *line;) {
      if (strncmp(line, s->series[i], sl) == 0 && line[sl] == ' ') {
        double v = strtod(line + sl + 1, NULL);
        if (v >= s->cur[i])
          s->cur[i] = v;
        break;
      }
      char *nl = strchr(line, '\n');
      line = nl ? nl + 1 : NULL;
    }
  }
  wr_http_response_free(&res);
}

/* Before a process goes away: last sample, then its counts join the banked ones. */
static void counters_bank(svc_counters *s) {
  pthread_mutex_lock(&metrics_mu);
  counters_sample_locked(s);
  for (size_t i = 0; i < s->n; i++) {
    s->banked[i] += s->cur[i];
    s->cur[i] = 0;
  }
  s->up = false;
  pthread_mutex_unlock(&metrics_mu);
}

static void counters_up(svc_counters *s) {
  pthread_mutex_lock(&metrics_mu);
  for (size_t i = 0; i < s->n; i++)
    s->cur[i] = 0;
  s->up = true;
  pthread_mutex_unlock(&metrics_mu);
}

static double counters_total(svc_counters *s, size_t i) {
  pthread_mutex_lock(&metrics_mu);
  double v = s->banked[i] + s->cur[i];
  pthread_mutex_unlock(&metrics_mu);
  return v;
}

static volatile int monitor_stop;

static void *monitor_main(void *arg) {
  while (!monitor_stop) {
    pthread_mutex_lock(&metrics_mu);
    counters_sample_locked(&order_ctr);
    counters_sample_locked(&cust_ctr);
    pthread_mutex_unlock(&metrics_mu);
    wr_sleep_ms(250, &monitor_stop);
  }
  return NULL;
}

/* ---- clients ------------------------------------------------------------------------ */

typedef struct cstate {
  char id[WR_UUID_STRLEN];
  char name[96], email[96], status[16];
  uint64_t version;   /* last known version */
  unsigned unknown;   /* operations with unknown outcome since then */
  bool maybe_deleted; /* one of them was a delete */
  bool deleted;       /* known deleted (tombstone) */
} cstate;

typedef struct client {
  int k;
  pthread_t th;
  unsigned seed;
  cstate *v;
  size_t n, cap, live;
  unsigned *lost_creates; /* sequence numbers of creates with unknown outcome */
  size_t n_lost, cap_lost;
  unsigned seq;
  uint64_t creates, updates, deletes, acked, unknown, http500, if_match;
  uint64_t orders_placed, orders_refused, orders_unknown, resolved;
} client;

static volatile int clients_stop;
static volatile int schedule_done;
static uint64_t attempted_total;
static int64_t load_start_ms;

static const char *const STATUSES[3] = {"active", "pending", "suspended"};

static unsigned rnd(client *c, unsigned n) {
  return (unsigned)rand_r(&c->seed) % n;
}

/* Outcome classes of one request. */
enum { OUT_OK, OUT_UNKNOWN, OUT_CLIENT };

static int classify(client *c, int rc, int status) {
  if (rc != 0 || status >= 500) {
    if (rc == 0 && status == 500)
      c->http500++;
    return OUT_UNKNOWN;
  }
  return status >= 200 && status < 300 ? OUT_OK : OUT_CLIENT;
}

static int call(const char *method, const char *base, const char *path, json_t *body,
                const char *const *headers, int *status, json_t **out) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", base, path);
  wr_err err = {0};
  *status = 0;
  if (out)
    *out = NULL;
  return dk_http(method, url, body, headers, status, out, &err);
}

static const char *jstr(json_t *j, const char *k) {
  const char *s = json_string_value(json_object_get(j, k));
  return s ? s : "";
}

/* A JSON value as compact text in buf (for messages). */
static const char *jtext(json_t *j, char *buf, size_t sz) {
  size_t n = j ? json_dumpb(j, buf, sz - 1, JSON_COMPACT) : 0;
  buf[n < sz ? n : sz - 1] = '\0';
  return buf;
}

static uint64_t jver(json_t *j) {
  return (uint64_t)json_integer_value(json_object_get(j, "version"));
}

static void take_state(cstate *s, json_t *j) {
  snprintf(s->name, sizeof s->name, "%s", jstr(j, "name"));
  snprintf(s->email, sizeof s->email, "%s", jstr(j, "email"));
  snprintf(s->status, sizeof s->status, "%s", jstr(j, "status"));
  s->version = jver(j);
}

static bool push_customer(client *c, const cstate *s) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 256;
    cstate *nv = realloc(c->v, cap * sizeof *nv);
    if (!nv)
      return false;
    c->v = nv;
    c->cap = cap;
  }
  c->v[c->n++] = *s;
  return true;
}

static void make_name(client *c, char *out, size_t outsz) {
  unsigned seq = ++c->seq;
  switch (rnd(c, 4)) {
  case 0:
    snprintf(out, outsz, "Chaos c%d #%u", c->k, seq);
    break;
  case 1:
    snprintf(out, outsz, "Zoë Ünïcødé c%d #%u", c->k, seq);
    break;
  case 2:
    snprintf(out, outsz, "O'Brien; DROP TABLE customers;-- c%d #%u", c->k, seq);
    break;
  default:
    snprintf(out, outsz, "名前 c%d #%u", c->k, seq);
  }
}

static void op_create(client *c) {
  char jbuf[300];
  char name[96], email[96];
  make_name(c, name, sizeof name);
  unsigned seq = ++c->seq;
  snprintf(email, sizeof email, "c%d.n%u@chaos.example", c->k, seq);
  const char *st = STATUSES[rnd(c, 3)];
  int status;
  json_t *out;
  int rc = call("POST", cust_url, "/customers",
                json_pack("{s:s,s:s,s:s}", "name", name, "email", email, "status", st), NULL,
                &status, &out);
  c->creates++;
  switch (classify(c, rc, status)) {
  case OUT_OK: {
    cstate s = {0};
    snprintf(s.id, sizeof s.id, "%s", jstr(out, "id"));
    take_state(&s, out);
    if (s.version != 1 || strcmp(s.name, name) || strcmp(s.email, email) || strcmp(s.status, st))
      violation("create answered %s v%" PRIu64 " %s/%s/%s, sent %s/%s/%s", s.id, s.version, s.name,
                s.email, s.status, name, email, st);
    if (push_customer(c, &s))
      c->live++;
    c->acked++;
    break;
  }
  case OUT_UNKNOWN:
    c->unknown++;
    if (c->n_lost == c->cap_lost) {
      size_t cap = c->cap_lost ? c->cap_lost * 2 : 64;
      unsigned *nv = realloc(c->lost_creates, cap * sizeof *nv);
      if (!nv)
        break;
      c->lost_creates = nv;
      c->cap_lost = cap;
    }
    c->lost_creates[c->n_lost++] = seq;
    break;
  default:
    violation("POST /customers -> %d %s", status, jtext(out, jbuf, sizeof jbuf));
  }
  json_decref(out);
}

/* Re-reads a customer whose last operations had unknown outcomes from the source.
 * Returns true when its state is exact again. */
static bool resolve(client *c, cstate *s) {
  char path[96];
  snprintf(path, sizeof path, "/customers/%s", s->id);
  int status;
  json_t *out;
  int rc = call("GET", cust_url, path, NULL, NULL, &status, &out);
  bool done = false;
  if (rc == 0 && status == 200) {
    uint64_t v = jver(out);
    if (v < s->version || v > s->version + s->unknown)
      violation("customer %s: source v%" PRIu64 " outside [%" PRIu64 ", %" PRIu64
                "] (acknowledged v%" PRIu64 ", %u unknown outcomes)",
                s->id, v, s->version, s->version + s->unknown, s->version, s->unknown);
    take_state(s, out);
    s->unknown = 0;
    s->maybe_deleted = false;
    done = true;
  } else if (rc == 0 && status == 404) {
    if (!s->maybe_deleted)
      violation("customer %s: source says deleted, but no delete was sent", s->id);
    /* deleted by the unknown delete; its version is checked against the database at
     * the end */
    s->deleted = true;
    c->live--;
    done = true;
  }
  json_decref(out);
  if (done)
    c->resolved++;
  return done;
}

/* A live customer of this client with an exact state, or NULL. */
static cstate *pick(client *c) {
  for (int tries = 0; tries < 16 && c->n > 0; tries++) {
    cstate *s = &c->v[rnd(c, (unsigned)c->n)];
    if (s->deleted)
      continue;
    if (s->unknown && !resolve(c, s))
      continue;
    if (!s->deleted)
      return s;
  }
  return NULL;
}

static void op_update(client *c, cstate *s) {
  char jbuf[300];
  json_t *body = json_object();
  unsigned what = 1 + rnd(c, 7); /* non-empty subset of name, email, status */
  char name[96], email[96];
  if (what & 1) {
    make_name(c, name, sizeof name);
    json_object_set_new(body, "name", json_string(name));
  }
  if (what & 2) {
    snprintf(email, sizeof email, "c%d.u%u.v%" PRIu64 "@chaos.example", c->k, ++c->seq,
             s->version + 1);
    json_object_set_new(body, "email", json_string(email));
  }
  if (what & 4) {
    const char *st;
    do
      st = STATUSES[rnd(c, 3)];
    while (!strcmp(st, s->status));
    json_object_set_new(body, "status", json_string(st));
  }
  char path[96], ifm[48];
  snprintf(path, sizeof path, "/customers/%s", s->id);
  snprintf(ifm, sizeof ifm, "If-Match: \"%" PRIu64 "\"", s->version);
  const char *h[] = {ifm, NULL};
  bool use_if = rnd(c, 3) == 0;
  c->if_match += use_if;
  json_t *sent = json_deep_copy(body);
  int status;
  json_t *out;
  int rc = call("PATCH", cust_url, path, body, use_if ? h : NULL, &status, &out);
  c->updates++;
  switch (classify(c, rc, status)) {
  case OUT_OK: {
    uint64_t want = s->version + 1;
    take_state(s, out);
    const char *k;
    json_t *v;
    bool same = s->version == want;
    json_object_foreach(sent, k, v) same = same && !strcmp(jstr(out, k), json_string_value(v));
    if (!same)
      violation("PATCH %s answered v%" PRIu64 " (want v%" PRIu64 ") or other values", s->id,
                s->version, want);
    c->acked++;
    break;
  }
  case OUT_UNKNOWN:
    s->unknown++;
    c->unknown++;
    break;
  default:
    violation("PATCH %s -> %d %s", s->id, status, jtext(out, jbuf, sizeof jbuf));
  }
  json_decref(sent);
  json_decref(out);
}

static void op_delete(client *c, cstate *s) {
  char jbuf[300];
  char path[96], ifm[48];
  snprintf(path, sizeof path, "/customers/%s", s->id);
  snprintf(ifm, sizeof ifm, "If-Match: \"%" PRIu64 "\"", s->version);
  const char *h[] = {ifm, "X-Actor: chaos-test", NULL};
  const char *h2[] = {"X-Actor: chaos-test", NULL};
  bool use_if = rnd(c, 2) == 0;
  c->if_match += use_if;
  int status;
  json_t *out;
  int rc = call("DELETE", cust_url, path, json_pack("{s:s}", "reason", "chaos"), use_if ? h : h2,
                &status, &out);
  c->deletes++;
  switch (classify(c, rc, status)) {
  case OUT_OK:
    if (status != 204)
      violation("DELETE %s -> %d (want 204)", s->id, status);
    s->version++;
    snprintf(s->status, sizeof s->status, "deleted");
    s->deleted = true;
    c->live--;
    c->acked++;
    break;
  case OUT_UNKNOWN:
    s->unknown++;
    s->maybe_deleted = true;
    c->unknown++;
    break;
  default:
    violation("DELETE %s -> %d %s", s->id, status, jtext(out, jbuf, sizeof jbuf));
  }
  json_decref(out);
}

static void op_order(client *c) {
  char jbuf[300];
  cstate *s = pick(c);
  if (!s)
    return;
  int status;
  json_t *out;
  int rc = call("POST", order_url, "/orders",
                json_pack("{s:s,s:i,s:s}", "customer_id", s->id, "amount_cents",
                          100 + (int)rnd(c, 100000), "currency", "EUR"),
                NULL, &status, &out);
  if (rc != 0 || status >= 500)
    c->orders_unknown++;
  else if (status == 201)
    c->orders_placed++;
  else if (status == 422) /* the view may not know the customer yet, or it is inactive */
    c->orders_refused++;
  else
    violation("POST /orders -> %d %s", status, jtext(out, jbuf, sizeof jbuf));
  json_decref(out);
}

static void *client_main(void *arg) {
  client *c = arg;
  size_t target_live = cfg.customers / cfg.clients + 1;
  double rate = (double)cfg.mutations / cfg.duration_s; /* per second, all clients */
  int64_t interval_us = (int64_t)(1e6 * cfg.clients / rate);
  int64_t next_us = wr_mono_ns() / 1000;
  for (;;) {
    if (clients_stop)
      break;
    bool done = schedule_done;
    if (done && __atomic_load_n(&attempted_total, __ATOMIC_RELAXED) >= cfg.mutations)
      break;
    if (!done) {
      int64_t now = wr_mono_ns() / 1000;
      if (next_us > now)
        usleep((useconds_t)(next_us - now));
      else if (now - next_us > 1000000)
        next_us = now; /* fell behind (an outage): no burst afterwards */
      next_us += interval_us;
    }
    unsigned r = rnd(c, 1000);
    if (c->live < target_live || r < 50) {
      op_create(c);
    } else if (r < 60) {
      op_order(c);
      continue;
    } else {
      cstate *s = pick(c);
      if (!s) {
        op_create(c);
      } else if (r < 130) {
        op_delete(c, s);
      } else {
        op_update(c, s);
      }
    }
    __atomic_add_fetch(&attempted_total, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

/* ---- faults ------------------------------------------------------------------------- */

typedef enum fault {
  F_ORDER_KILL,
  F_CUSTOMER_KILL,
  F_RELAY_CRASH,
  F_RABBIT_RESTART,
  F_PG_RESTART,
  F_PROXY_CUT,
  F_PROXY_STALL,
  F_PROXY_STALL_CUT,
  F__N
} fault;

static const unsigned FAULTS_PER_ROUND[F__N] = {3, 1, 1, 1, 1, 2, 1, 1};
static const char *const FAULT_NAMES[F__N] = {
    "kill -9 order-service",    "kill -9 customer-service", "relay crash (publish, no mark)",
    "RabbitMQ stop/start",      "PostgreSQL restart",       "proxy cut + refused reconnects",
    "proxy stall (both links)", "proxy stall then cut"};
static unsigned faults_done[F__N];
static int64_t last_fault_end_ms; /* when the last fault had healed */
static int64_t fault_ms_total[F__N];

static unsigned fault_rand(unsigned *seed, unsigned lo, unsigned hi) {
  return lo + (unsigned)rand_r(seed) % (hi - lo + 1);
}

static bool inject(fault f, unsigned *seed) {
  int64_t t = wt_now_ms();
  bool ok = true;
  char detail[256] = "";
  switch (f) {
  case F_ORDER_KILL: {
    counters_bank(&order_ctr);
    dk_stop(&order_proc, SIGKILL, 5000);
    unsigned pause = fault_rand(seed, 0, 2000);
    usleep(pause * 1000u);
    ok = start_order();
    counters_up(&order_ctr);
    snprintf(detail, sizeof detail, "down %u ms before the restart", pause);
    break;
  }
  case F_CUSTOMER_KILL: {
    counters_bank(&cust_ctr);
    dk_stop(&cust_proc, SIGKILL, 5000);
    unsigned pause = fault_rand(seed, 0, 2000);
    usleep(pause * 1000u);
    ok = start_customer();
    counters_up(&cust_ctr);
    snprintf(detail, sizeof detail, "down %u ms before the restart", pause);
    break;
  }
  case F_RELAY_CRASH: {
    /* A relay killed with a full batch published and unconfirmed: its link is cut and
     * reconnects are refused for a while (rows pile up in the outbox); then it may
     * reconnect, and once it has sent 16 KiB (the handshake and the first messages of
     * its next batch) the proxy withholds everything the broker sends back. The relay
     * publishes the rest of the batch, waits for confirms that never come, and is
     * killed: those rows reached the broker but stay in the outbox, and go out again
     * after the restart (duplicates for the inbox). */
    unsigned pile = fault_rand(seed, 2000, 4000);
    tp_refuse(px_customer, true);
    tp_cut(px_customer);
    usleep(pile * 1000u);
    tp_stall_down_after(px_customer, 16384);
    uint64_t up0 = tp_bytes(px_customer, TP_UP);
    tp_refuse(px_customer, false);
    /* wait for the batch to go out: the up count grows, then stays put */
    uint64_t last = up0;
    int64_t until = wt_now_ms() + 20000, quiet_since = wt_now_ms();
    while (wt_now_ms() < until) {
      usleep(100000);
      uint64_t now_up = tp_bytes(px_customer, TP_UP);
      if (now_up != last) {
        last = now_up;
        quiet_since = wt_now_ms();
      } else if (last - up0 > 16384 && wt_now_ms() - quiet_since >= 500) {
        break;
      }
    }
    counters_bank(&cust_ctr);
    dk_stop(&cust_proc, SIGKILL, 5000);
    uint64_t sent = tp_bytes(px_customer, TP_UP) - up0;
    tp_stall(px_customer, 0);
    ok = start_customer();
    counters_up(&cust_ctr);
    snprintf(detail, sizeof detail,
             "outbox piled up %u ms; %" PRIu64 " bytes published, confirms withheld, kill -9", pile,
             sent);
    break;
  }
  case F_RABBIT_RESTART: {
    /* Half of the time the order service also crashes during the outage and starts
     * again while the broker is still down (its start retries the declaration). */
    bool with_kill = fault_rand(seed, 0, 1) == 1;
    int a = wt_stack("rabbit-stop");
    if (with_kill) {
      counters_bank(&order_ctr);
      dk_stop(&order_proc, SIGKILL, 5000);
      ok = start_order_wait(false);
    }
    unsigned pause = fault_rand(seed, 0, 3000);
    usleep(pause * 1000u);
    int b = wt_stack("rabbit-start");
    if (with_kill) {
      ok = ok && wait_ready(&order_proc);
      counters_up(&order_ctr);
    }
    if (a != 0 || b != 0) {
      ok = false;
      violation("scripts/stack rabbit-stop/start failed (%d, %d)", a, b);
    }
    snprintf(detail, sizeof detail, "down %u ms between stop and start%s", pause,
             with_kill ? "; order-service killed and started during the outage" : "");
    break;
  }
  case F_PG_RESTART: {
    int a = wt_stack("pg-restart");
    ok = a == 0;
    if (!ok)
      violation("scripts/stack pg-restart failed (%d)", a);
    break;
  }
  case F_PROXY_CUT: {
    unsigned which = fault_rand(seed, 0, 2); /* customer, order, both */
    unsigned refuse = fault_rand(seed, 500, 5000);
    size_t n = 0;
    if (which != 1) {
      tp_refuse(px_customer, true);
      n += tp_cut(px_customer);
    }
    if (which != 0) {
      tp_refuse(px_order, true);
      n += tp_cut(px_order);
    }
    usleep(refuse * 1000u);
    tp_refuse(px_customer, false);
    tp_refuse(px_order, false);
    snprintf(detail, sizeof detail, "%s link(s): %zu connections reset, reconnects refused %u ms",
             which == 0   ? "customer"
             : which == 1 ? "order"
                          : "both",
             n, refuse);
    break;
  }
  case F_PROXY_STALL: {
    unsigned ms = fault_rand(seed, 4000, 20000);
    tp_stall(px_customer, TP_UP | TP_DOWN);
    tp_stall(px_order, TP_UP | TP_DOWN);
    usleep(ms * 1000u);
    tp_stall(px_customer, 0);
    tp_stall(px_order, 0);
    snprintf(detail, sizeof detail, "%u ms", ms);
    break;
  }
  case F_PROXY_STALL_CUT: {
    unsigned ms = fault_rand(seed, 2000, 8000);
    tp_proxy *p = fault_rand(seed, 0, 1) ? px_order : px_customer;
    tp_stall(p, TP_UP | TP_DOWN);
    usleep(ms * 1000u);
    size_t n = tp_cut(p);
    tp_stall(p, 0);
    snprintf(detail, sizeof detail, "%s link stalled %u ms, then %zu connections reset",
             p == px_order ? "order" : "customer", ms, n);
    break;
  }
  default:
    break;
  }
  int64_t took = wt_now_ms() - t;
  last_fault_end_ms = wt_now_ms();
  faults_done[f]++;
  fault_ms_total[f] += took;
  note("fault: %-32s %s (%.1f s)", FAULT_NAMES[f], detail, (double)took / 1000.0);
  return ok;
}

static void *injector_main(void *arg) {
  unsigned seed = cfg.seed ^ 0x9e3779b9u;
  size_t n = 0;
  size_t cap = 0;
  for (int f = 0; f < F__N; f++)
    cap += FAULTS_PER_ROUND[f] * cfg.rounds;
  fault *plan = calloc(cap, sizeof *plan);
  if (!plan) {
    schedule_done = 1;
    return NULL;
  }
  for (unsigned r = 0; r < cfg.rounds; r++) {
    size_t first = n;
    for (int f = 0; f < F__N; f++)
      for (unsigned i = 0; i < FAULTS_PER_ROUND[f]; i++)
        plan[n++] = (fault)f;
    for (size_t i = n - 1; i > first; i--) { /* shuffle within the round */
      size_t j = first + (size_t)rand_r(&seed) % (i - first + 1);
      fault t = plan[i];
      plan[i] = plan[j];
      plan[j] = t;
    }
  }
  /* Between faults, a random quiet gap around duration / (faults + 1): the load runs
   * before the first fault and after the last one, and the faults' own durations
   * (a broker restart takes seconds) add to the run. */
  int64_t slot = (int64_t)cfg.duration_s * 1000 / (int64_t)(n + 1);
  for (size_t i = 0; i < n && !clients_stop; i++) {
    int64_t at = wt_now_ms() + slot / 2 + (int64_t)rand_r(&seed) % slot;
    while (wt_now_ms() < at && !clients_stop)
      usleep(50000);
    if (!inject(plan[i], &seed)) {
      clients_stop = 1; /* a service that does not come back: no point in going on */
      break;
    }
  }
  int64_t tail = wt_now_ms() + slot;
  while (wt_now_ms() < tail && !clients_stop)
    usleep(50000);
  free(plan);
  schedule_done = 1;
  return NULL;
}

/* ---- the final comparison ----------------------------------------------------------- */

typedef struct row {
  char *id, *name, *email, *status;
  uint64_t version;
  bool tomb;
} row;

typedef struct rows {
  row *v;
  size_t n;
} rows;

static int row_cmp(const void *a, const void *b) {
  return strcmp(((const row *)a)->id, ((const row *)b)->id);
}

static void rows_free(rows *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->v[i].id);
    free(r->v[i].name);
    free(r->v[i].email);
    free(r->v[i].status);
  }
  free(r->v);
  r->v = NULL;
  r->n = 0;
}

static PGconn *pg_try(const char *url) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return NULL;
  }
  return c;
}

/* Loads (id, name, email, status, version) rows sorted by id (byte order). The
 * query's columns: id, name, email, status, version[, tombstone]. Returns false if the
 * database did not answer. */
static bool load_rows(const char *url, const char *sql, rows *out) {
  memset(out, 0, sizeof *out);
  PGconn *c = pg_try(url);
  if (!c)
    return false;
  PGresult *r = PQexec(c, sql);
  bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  if (ok) {
    out->n = (size_t)PQntuples(r);
    out->v = calloc(out->n ? out->n : 1, sizeof *out->v);
    for (size_t i = 0; i < out->n; i++) {
      row *w = &out->v[i];
      w->id = strdup(PQgetvalue(r, (int)i, 0));
      w->name = strdup(PQgetvalue(r, (int)i, 1));
      w->email = strdup(PQgetvalue(r, (int)i, 2));
      w->status = strdup(PQgetvalue(r, (int)i, 3));
      w->version = strtoull(PQgetvalue(r, (int)i, 4), NULL, 10);
      w->tomb = PQnfields(r) > 5 && PQgetvalue(r, (int)i, 5)[0] == 't';
    }
    qsort(out->v, out->n, sizeof *out->v, row_cmp);
  }
  PQclear(r);
  PQfinish(c);
  return ok;
}

static long long scalar(const char *url, const char *sql) {
  PGconn *c = pg_try(url);
  if (!c)
    return -1;
  PGresult *r = PQexec(c, sql);
  long long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  PQfinish(c);
  return v;
}

static const char SRC_SQL[] = "SELECT id, name, email, status, version FROM customers";
static const char VIEW_SQL[] = "SELECT id, name, email, status, version FROM customer_view";
static const char GUARD_SQL[] =
    "SELECT aggregate_id, '', '', '', version, tombstone FROM warren_versions "
    "WHERE scope = '" QUEUE "' AND aggregate_type = 'customer'";

/* Compares the view (or guard) with the source. full: names and emails of live rows
 * too; report: each difference is a violation. Returns the number of differences. */
static size_t compare(const rows *src, const rows *view, bool full, bool guard, bool report) {
  size_t i = 0, j = 0, diffs = 0;
  while (i < src->n || j < view->n) {
    int c = i == src->n ? 1 : j == view->n ? -1 : strcmp(src->v[i].id, view->v[j].id);
    if (c < 0) {
      if (report)
        violation("%s: customer %s (source v%" PRIu64 " %s) missing", guard ? "guard" : "view",
                  src->v[i].id, src->v[i].version, src->v[i].status);
      diffs++;
      i++;
      continue;
    }
    if (c > 0) {
      if (report)
        violation("%s: customer %s v%" PRIu64 " is not in the source", guard ? "guard" : "view",
                  view->v[j].id, view->v[j].version);
      diffs++;
      j++;
      continue;
    }
    const row *s = &src->v[i++], *v = &view->v[j++];
    bool deleted = !strcmp(s->status, "deleted");
    bool same =
        s->version == v->version && (guard ? v->tomb == deleted : !strcmp(s->status, v->status));
    if (same && full && !guard && !deleted)
      same = !strcmp(s->name, v->name) && !strcmp(s->email, v->email);
    if (!same) {
      diffs++;
      if (report && guard)
        violation("guard: customer %s source v%" PRIu64 " %s, guard v%" PRIu64 " tombstone=%d",
                  s->id, s->version, s->status, v->version, v->tomb);
      else if (report)
        violation("view: customer %s source v%" PRIu64 " %s \"%s\" <%s>, view v%" PRIu64
                  " %s \"%s\" <%s>",
                  s->id, s->version, s->status, s->name, s->email, v->version, v->status, v->name,
                  v->email);
    }
  }
  return diffs;
}

static uint64_t sum_versions(const rows *r) {
  uint64_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->v[i].version;
  return n;
}

static const row *find_row(const rows *r, const char *id) {
  row key = {.id = (char *)id};
  return bsearch(&key, r->v, r->n, sizeof *r->v, row_cmp);
}

/* Every acknowledged write is in the source; unknown outcomes stay within bounds;
 * every source row was created by a client. */
static void check_clients(client *cl, const rows *src) {
  size_t known = 0, lost_creates_committed = 0, lost_creates = 0;
  unsigned char *claimed = calloc(src->n ? src->n : 1, 1);
  for (unsigned k = 0; k < cfg.clients; k++) {
    client *c = &cl[k];
    for (size_t i = 0; i < c->n; i++) {
      cstate *s = &c->v[i];
      const row *r = find_row(src, s->id);
      known++;
      if (!r) {
        violation("acknowledged customer %s is not in the source", s->id);
        continue;
      }
      claimed[r - src->v] = 1;
      if (s->unknown == 0 && !s->deleted) {
        if (r->version != s->version || strcmp(r->status, s->status) || strcmp(r->name, s->name) ||
            strcmp(r->email, s->email))
          violation("customer %s: acknowledged v%" PRIu64 " %s \"%s\" <%s>, source v%" PRIu64
                    " %s \"%s\" <%s>",
                    s->id, s->version, s->status, s->name, s->email, r->version, r->status, r->name,
                    r->email);
      } else if (s->unknown == 0) { /* acknowledged delete (or a 404 after an unknown one) */
        if (strcmp(r->status, "deleted") != 0)
          violation("customer %s: deleted, source says %s", s->id, r->status);
        else if (!s->maybe_deleted && r->version != s->version)
          violation("customer %s: deleted at v%" PRIu64 ", source v%" PRIu64, s->id, s->version,
                    r->version);
      } else {
        if (r->version < s->version || r->version > s->version + s->unknown)
          violation("customer %s: source v%" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", s->id,
                    r->version, s->version, s->version + s->unknown);
        if (s->deleted && strcmp(r->status, "deleted") != 0)
          violation("customer %s: seen deleted, source says %s", s->id, r->status);
      }
    }
    for (size_t i = 0; i < c->n_lost; i++) {
      char email[96];
      snprintf(email, sizeof email, "c%d.n%u@chaos.example", c->k, c->lost_creates[i]);
      lost_creates++;
      for (size_t j = 0; j < src->n; j++)
        if (!claimed[j] && !strcmp(src->v[j].email, email)) {
          claimed[j] = 1;
          lost_creates_committed++;
          if (src->v[j].version != 1)
            violation("customer %s created with an unknown outcome is at v%" PRIu64, src->v[j].id,
                      src->v[j].version);
          break;
        }
    }
  }
  for (size_t j = 0; j < src->n; j++)
    if (!claimed[j])
      violation("source customer %s <%s> was created by nobody", src->v[j].id, src->v[j].email);
  free(claimed);
  note("clients: %zu customers known to clients, %zu creates with unknown outcome "
       "(%zu of them committed)",
       known, lost_creates, lost_creates_committed);
}

/* Queue depth through a direct connection to the vhost (-1 if it cannot be read). */
static long queue_depth(wr_conn *c, const char *queue) {
  wr_queue_decl d = {.name = queue, .durable = true};
  uint32_t n = 0;
  wr_err err = {0};
  if (wr_conn_declare_queue(c, &d, true, &n, NULL, &err) != 0)
    return -1;
  return (long)n;
}

static int print_dlq(const wr_dlq_entry *e, void *user) {
  violation("DLQ holds %s %s (aggregate %s): %s (attempts %u)", e->type, e->message_id,
            e->aggregate_id, e->error, e->attempts);
  return 0;
}

static void check_queues(void) {
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = vhost_urls;
  o.connection_name = "chaos checks";
  wr_conn *c = NULL;
  wr_err err = {0};
  if (wr_conn_new(&o, &c, &err) != 0 || wr_conn_open(c, &err) != 0) {
    violation("cannot connect to the broker for the queue checks: %s", err.msg);
    wr_conn_free(c);
    return;
  }
  char names[2 + N_RETRY_TIERS][200];
  snprintf(names[0], sizeof names[0], "%s", QUEUE);
  wr_topology_dlq_name(QUEUE, names[1], sizeof names[1]);
  for (unsigned t = 1; t <= N_RETRY_TIERS; t++)
    wr_topology_retry_name(QUEUE, t, names[1 + t], sizeof names[0]);
  for (size_t i = 0; i < 2 + N_RETRY_TIERS; i++) {
    long d = queue_depth(c, names[i]);
    if (d != 0)
      violation("queue %s holds %ld message(s) after convergence", names[i], d);
    if (i == 1 && d > 0)
      wr_dlq_browse(c, names[1], 20, print_dlq, NULL, &err);
  }
  wr_conn_free(c);
}

/* The checksum API: the customer service's buckets against the view's (computed on the
 * order database with the same wr_sync functions the order service uses), then the
 * order service's own reconciliation, which must find nothing. */
static void check_checksums(void) {
  char url[160];
  snprintf(url, sizeof url, "%s/customers/checksums?buckets=%u", cust_url, BUCKETS);
  int status = 0;
  json_t *j = NULL;
  wr_err err = {0};
  if (wr_http_get_json(url, NULL, 30000, &status, &j, &err) != 0 || status != 200) {
    violation("GET %s -> %d %s", url, status, err.msg);
    json_decref(j);
    return;
  }
  wr_bucket local[BUCKETS];
  PGconn *c = pg_try(order_db);
  static const wr_sync_source view = {"customer_view", "id", "version", NULL};
  if (!c || wr_sync_checksums(c, &view, BUCKETS, local, &err) != 0) {
    violation("view checksums: %s", err.msg);
  } else {
    size_t differing = 0;
    json_t *items = json_object_get(j, "items");
    for (unsigned b = 0; b < BUCKETS; b++) {
      json_t *it = json_array_get(items, b);
      char hex[17];
      snprintf(hex, sizeof hex, "%016" PRIx64, local[b].checksum);
      if (!it || strcmp(jstr(it, "checksum"), hex) != 0 ||
          (uint64_t)json_integer_value(json_object_get(it, "count")) != local[b].count)
        differing++;
    }
    if (differing)
      violation("checksums: %zu of %u buckets differ", differing, BUCKETS);
    else
      note("checksums: all %u buckets equal (customer API vs view)", BUCKETS);
  }
  PQfinish(c);
  json_decref(j);

  const char *auth[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
  json_t *r = NULL;
  if (call("POST", order_url, "/admin/reconcile", NULL, auth, &status, &r) != 0 || status != 200) {
    violation("POST /admin/reconcile -> %d", status);
  } else {
    json_int_t found = json_integer_value(json_object_get(r, "discrepancies_found"));
    json_int_t bd = json_integer_value(json_object_get(r, "buckets_differing"));
    if (found != 0 || bd != 0)
      violation("reconciliation found %lld discrepancies in %lld buckets", (long long)found,
                (long long)bd);
    else
      note("order-service reconciliation: checked %lld, 0 buckets differ, 0 discrepancies",
           (long long)json_integer_value(json_object_get(r, "checked")));
  }
  json_decref(r);
}

/* ---- the test ----------------------------------------------------------------------- */

static void setup(void) {
  const char *v = wt_vhost_create("chaos");
  snprintf(vhost_urls, sizeof vhost_urls, "%s", v);
  customer_db = wt_db_create("chaos_customer");
  order_db = wt_db_create("chaos_order");
  char host[64];
  unsigned port;
  first_host_port(vhost_urls, host, sizeof host, &port);
  assert_int_equal(tp_start(host, port, &px_customer), 0);
  assert_int_equal(tp_start(host, port, &px_order), 0);
  proxy_url(px_customer, amqp_customer, sizeof amqp_customer);
  proxy_url(px_order, amqp_order, sizeof amqp_order);

  snprintf(log_dir, sizeof log_dir, "%s../chaos-logs", wt_bin(""));
  mkdir(log_dir, 0755);
  size_t l = strlen(log_dir);
  snprintf(log_dir + l, sizeof log_dir - l, "/%u", cfg.seed);
  mkdir(log_dir, 0755);

  wr_http_opts ho = WR_HTTP_OPTS_INIT;
  ho.routes = gateway_routes;
  ho.n_routes = sizeof gateway_routes / sizeof gateway_routes[0];
  wr_err err = {0};
  if (wr_http_server_start(&ho, &gateway, &err) != 0)
    fail_msg("gateway: %s", err.msg);
  snprintf(gateway_url, sizeof gateway_url, "http://127.0.0.1:%u", wr_http_server_port(gateway));
  cust_port = dk_free_port();
  order_port = dk_free_port();
  snprintf(cust_url, sizeof cust_url, "http://127.0.0.1:%u", cust_port);
  snprintf(order_url, sizeof order_url, "http://127.0.0.1:%u", order_port);
  if (!start_customer() || !start_order())
    fail_msg("services did not start (logs in %s)", log_dir);
  counters_up(&cust_ctr);
  counters_up(&order_ctr);
}

static void teardown(void) {
  wr_http_server_stop(gateway);
  tp_stop(px_customer);
  tp_stop(px_order);
  if (cfg.keep) {
    printf("kept: customer db %s, order db %s, vhost %s, logs %s\n", customer_db, order_db,
           vhost_urls, log_dir);
    return;
  }
  wt_db_drop(customer_db);
  wt_db_drop(order_db);
  wt_vhost_delete(vhost_urls);
}

static void chaos_sync(void **state) {
  t0_ms = wt_now_ms();
  printf("chaos: seed %u, %u mutations, %u clients, %u customers, %u s, %u round(s)\n", cfg.seed,
         cfg.mutations, cfg.clients, cfg.customers, cfg.duration_s, cfg.rounds);
  setup();
  note("services up: customer %s, order %s; broker links through proxies :%u and :%u; logs %s",
       cust_url, order_url, tp_port(px_customer), tp_port(px_order), log_dir);

  pthread_t monitor, injector;
  pthread_create(&monitor, NULL, monitor_main, NULL);
  client *cl = calloc(cfg.clients, sizeof *cl);
  load_start_ms = wt_now_ms();
  for (unsigned k = 0; k < cfg.clients; k++) {
    cl[k].k = (int)k;
    cl[k].seed = cfg.seed + 7919u * (k + 1);
    pthread_create(&cl[k].th, NULL, client_main, &cl[k]);
  }
  pthread_create(&injector, NULL, injector_main, NULL);
  int64_t last_progress = wt_now_ms();
  while (!schedule_done || __atomic_load_n(&attempted_total, __ATOMIC_RELAXED) < cfg.mutations) {
    if (clients_stop)
      break;
    usleep(100000);
    if (wt_now_ms() - last_progress >= 10000) {
      last_progress = wt_now_ms();
      note("load: %" PRIu64 " mutations sent", __atomic_load_n(&attempted_total, __ATOMIC_RELAXED));
    }
  }
  pthread_join(injector, NULL);
  for (unsigned k = 0; k < cfg.clients; k++)
    pthread_join(cl[k].th, NULL);
  int64_t load_end = wt_now_ms();
  client tot = {0};
  for (unsigned k = 0; k < cfg.clients; k++) {
    tot.creates += cl[k].creates;
    tot.updates += cl[k].updates;
    tot.deletes += cl[k].deletes;
    tot.acked += cl[k].acked;
    tot.unknown += cl[k].unknown;
    tot.http500 += cl[k].http500;
    tot.if_match += cl[k].if_match;
    tot.resolved += cl[k].resolved;
    tot.orders_placed += cl[k].orders_placed;
    tot.orders_refused += cl[k].orders_refused;
    tot.orders_unknown += cl[k].orders_unknown;
  }
  uint64_t sent = tot.creates + tot.updates + tot.deletes;
  note("load done: %" PRIu64 " mutations in %.1f s (%" PRIu64 " creates, %" PRIu64
       " updates, %" PRIu64 " deletes; %" PRIu64 " with If-Match): %" PRIu64
       " acknowledged, %" PRIu64 " unknown outcome (%" PRIu64 " of them HTTP 500), %" PRIu64
       " re-read from the source",
       sent, (double)(load_end - load_start_ms) / 1000.0, tot.creates, tot.updates, tot.deletes,
       tot.if_match, tot.acked, tot.unknown, tot.http500, tot.resolved);
  if (clients_stop)
    violation("the fault schedule was aborted (a service did not come back)");
  if (sent < cfg.mutations)
    violation("only %" PRIu64 " of %u mutations sent", sent, cfg.mutations);
  if (tot.acked * 10 < sent * 8)
    violation("only %" PRIu64 " of %" PRIu64 " mutations acknowledged: the load did not run",
              tot.acked, sent);

  /* convergence: outboxes empty, the view equals the source, one inbox row per event */
  int64_t conv_start = wt_now_ms(), converged_ms = -1;
  rows src = {0}, view = {0};
  long long inbox = -1, ob_c = -1, ob_o = -1;
  size_t diffs = 0;
  int64_t last_note = 0;
  while (wt_now_ms() - conv_start < (int64_t)cfg.converge_s * 1000) {
    rows_free(&src);
    rows_free(&view);
    ob_c = scalar(customer_db, "SELECT count(*) FROM warren_outbox");
    ob_o = scalar(order_db, "SELECT count(*) FROM warren_outbox");
    inbox = scalar(order_db, "SELECT count(*) FROM warren_inbox WHERE consumer = '" QUEUE "'");
    if (load_rows(customer_db, SRC_SQL, &src) && load_rows(order_db, VIEW_SQL, &view)) {
      diffs = compare(&src, &view, false, false, false);
      if (ob_c == 0 && ob_o == 0 && diffs == 0 && (uint64_t)inbox == sum_versions(&src)) {
        converged_ms = wt_now_ms() - conv_start;
        break;
      }
    }
    if (wt_now_ms() - last_note >= 10000) {
      last_note = wt_now_ms();
      note("converging: outbox %lld/%lld rows, %zu view rows differ, inbox %lld of %" PRIu64
           " events",
           ob_c, ob_o, diffs, inbox, sum_versions(&src));
    }
    usleep(500000);
  }
  if (converged_ms < 0) {
    violation("no convergence after %u s: outboxes %lld/%lld, %zu view rows differ, inbox %lld "
              "of %" PRIu64 " events",
              cfg.converge_s, ob_c, ob_o, diffs, inbox, sum_versions(&src));
  } else {
    note("converged %.1f s after the load ended: %zu customers, %" PRIu64 " events",
         (double)converged_ms / 1000.0, src.n, sum_versions(&src));
  }

  /* the checks, all of them, whatever happened before */
  rows_free(&src);
  rows_free(&view);
  rows guard = {0};
  if (!load_rows(customer_db, SRC_SQL, &src) || !load_rows(order_db, VIEW_SQL, &view) ||
      !load_rows(order_db, GUARD_SQL, &guard)) {
    violation("cannot read the databases for the final checks");
  } else {
    size_t deleted = 0;
    for (size_t i = 0; i < src.n; i++)
      deleted += !strcmp(src.v[i].status, "deleted");
    size_t d1 = compare(&src, &view, true, false, true);
    size_t d2 = compare(&src, &guard, false, true, true);
    note("row by row: %zu customers (%zu tombstones): %zu view rows and %zu guard rows differ",
         src.n, deleted, d1, d2);
    inbox = scalar(order_db, "SELECT count(*) FROM warren_inbox WHERE consumer = '" QUEUE "'");
    if ((uint64_t)inbox != sum_versions(&src))
      violation("inbox holds %lld events, the source produced %" PRIu64 " (sum of versions): %s",
                inbox, sum_versions(&src),
                (uint64_t)inbox < sum_versions(&src) ? "events lost" : "unexpected events");
    check_clients(cl, &src);
  }
  ob_c = scalar(customer_db, "SELECT count(*) FROM warren_outbox");
  ob_o = scalar(order_db, "SELECT count(*) FROM warren_outbox");
  if (ob_c != 0 || ob_o != 0)
    violation("outbox not drained: customer %lld rows, order %lld rows", ob_c, ob_o);
  check_queues();
  check_checksums();

  monitor_stop = 1;
  pthread_join(monitor, NULL);
  bool alive_c = dk_alive(&cust_proc), alive_o = dk_alive(&order_proc);
  if (!alive_c || !alive_o)
    violation("a service died on its own: customer %s, order %s", alive_c ? "alive" : "DEAD",
              alive_o ? "alive" : "DEAD");
  counters_bank(&order_ctr);
  counters_bank(&cust_ctr);
  int ec = alive_o ? dk_stop(&order_proc, SIGTERM, 30000) : -1;
  int cc = alive_c ? dk_stop(&cust_proc, SIGTERM, 30000) : -1;
  if (ec != 0 || cc != 0) {
    violation("shutdown on SIGTERM: order-service exit %d, customer-service exit %d", ec, cc);
    dk_tail(order_proc.log_path, 20);
    dk_tail(cust_proc.log_path, 20);
  }

  double dead = counters_total(&order_ctr, O_DEAD);
  if (dead > 0)
    violation("%.0f events dead-lettered", dead);
  printf("\n== chaos figures (seed %u) ==\n", cfg.seed);
  printf("  mutations sent          %" PRIu64 " (%" PRIu64 " acknowledged, %" PRIu64
         " unknown outcome) by %u clients in %.1f s\n",
         sent, tot.acked, tot.unknown, cfg.clients, (double)(load_end - load_start_ms) / 1000.0);
  printf("  orders                  %" PRIu64 " placed, %" PRIu64 " refused (422), %" PRIu64
         " unknown outcome\n",
         tot.orders_placed, tot.orders_refused, tot.orders_unknown);
  printf("  customers               %zu in the source, events produced %" PRIu64 "\n", src.n,
         sum_versions(&src));
  for (int f = 0; f < F__N; f++)
    printf("  fault %-32s x%u (%.1f s in total)\n", FAULT_NAMES[f], faults_done[f],
           (double)fault_ms_total[f] / 1000.0);
  printf("  events applied          %.0f\n", counters_total(&order_ctr, O_APPLIED));
  printf("  duplicates absorbed     %.0f (inbox hits)\n", counters_total(&order_ctr, O_DUPLICATE));
  printf("  stale events skipped    %.0f (version guard)\n", counters_total(&order_ctr, O_STALE));
  printf("  retries (retry tiers)   %.0f\n", counters_total(&order_ctr, O_RETRIED));
  printf("  dead-lettered           %.0f\n", dead);
  printf("  relay publishes         customer %.0f confirmed, %.0f failed attempts; order %.0f "
         "confirmed\n",
         counters_total(&cust_ctr, C_PUBLISHED), counters_total(&cust_ctr, C_FAILED),
         counters_total(&order_ctr, O_PUBLISHED));
  printf("  client unknown outcomes %" PRIu64 " (re-read from the source: %" PRIu64 ")\n",
         tot.unknown, tot.resolved);
  printf("  catch-up pages served   %" PRIu64 " (empty: events only)\n",
         __atomic_load_n(&gateway_catchups, __ATOMIC_RELAXED));
  if (converged_ms >= 0)
    printf("  time to converge        %.1f s after the load ended (%.1f s after the last fault "
           "healed, load running meanwhile)\n",
           (double)converged_ms / 1000.0,
           (double)(conv_start + converged_ms - last_fault_end_ms) / 1000.0);
  else
    printf("  time to converge        NOT CONVERGED within %u s\n", cfg.converge_s);
  printf("  (consumer and relay counts are lower bounds: increments between the last metrics\n"
         "   sample and a kill -9 are not seen)\n");
  printf("  total run               %.1f s\n", (double)(wt_now_ms() - t0_ms) / 1000.0);
  printf("  violations              %u\n\n", violations);
  fflush(stdout);

  rows_free(&src);
  rows_free(&view);
  rows_free(&guard);
  for (unsigned k = 0; k < cfg.clients; k++) {
    free(cl[k].v);
    free(cl[k].lost_creates);
  }
  free(cl);
  teardown();
  if (violations)
    fail_msg("%u violation(s); service logs in %s (seed %u reproduces the schedule)", violations,
             log_dir, cfg.seed);
}

int main(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc)
    return rc == 1 ? 0 : rc;
  signal(SIGPIPE, SIG_IGN);
  wr_log_configure(NULL, NULL, WR_LOG_ERROR);
  const struct CMUnitTest tests[] = {cmocka_unit_test(chaos_sync)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
