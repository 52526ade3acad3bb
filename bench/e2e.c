/* e2e.c: end-to-end latency, from a commit at the source to the commit in the order
 * service's view, under a fixed rate of PATCH requests.
 *
 * Customers are written into the customer database by SQL (no events), and the order
 * service loads them through its catch-up at start. Then PATCH /customers/{id} requests
 * go out at a fixed rate (open loop: request i is due at t0 + i/rate, whatever the
 * previous ones took) for a fixed time, each to a different customer, so every view row
 * that reaches version 2 carries exactly one event's journey:
 *   source updated_at (clock_timestamp() of the UPDATE, in the customer's transaction)
 *   -> view synced_at (clock_timestamp() of the view write, in the consumer's transaction).
 * Both are statement times on the same PostgreSQL server clock; each side's COMMIT
 * follows within the same transaction, so the difference is commit-to-commit latency
 * up to the two commits' own durations. The path in between: relay woken by the
 * request (and by NOTIFY), publish with confirms, broker, consumer batch, COMMIT.
 * Figures: p50, p99, max of that latency; the achieved rate; the PATCH round trip as
 * the client saw it. Checks: every accepted PATCH reached the view. The customer
 * service runs with its default HTTP threads and database connections (see below). */
#include "bench.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct load {
  const char *base_url;
  unsigned rate;
  size_t total;
  size_t first_customer; /* customer number of request 0 */
  int64_t t0_ns;         /* monotonic */
  size_t next;           /* atomic */
  size_t ok, failed;     /* atomic */
  double *rtt_ms;        /* per request, NAN when it failed */
  double *late_ms;       /* how late the request was sent */
} load;

static void customer_id(size_t k, char *out, size_t outsz) {
  snprintf(out, outsz, "0190e2e0-0000-7000-8000-%012zu", k);
}

static void sleep_until(int64_t t_ns) {
  for (;;) {
    int64_t left = t_ns - wr_mono_ns();
    if (left <= 0)
      return;
    struct timespec ts = {left / 1000000000, left % 1000000000};
    nanosleep(&ts, NULL);
  }
}

static void *worker(void *arg) {
  load *l = arg;
  for (;;) {
    size_t i = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    if (i >= l->total)
      return NULL;
    int64_t due = l->t0_ns + (int64_t)((double)i * 1e9 / l->rate);
    sleep_until(due);
    char id[48], url[256], body[96];
    customer_id(l->first_customer + i, id, sizeof id);
    snprintf(url, sizeof url, "%s/customers/%s", l->base_url, id);
    int len = snprintf(body, sizeof body, "{\"name\":\"Renamed customer %zu\"}", i);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = "PATCH",
                          .url = url,
                          .headers = hdrs,
                          .body = body,
                          .body_len = (size_t)len,
                          .timeout_ms = 30000};
    wr_http_response res;
    wr_err err = {0};
    int64_t start = wr_mono_ns();
    int rc = wr_http_do(&rq, &res, &err);
    int64_t end = wr_mono_ns();
    l->late_ms[i] = (double)(start - due) / 1e6;
    if (rc == 0 && res.status == 200) {
      l->rtt_ms[i] = (double)(end - start) / 1e6;
      __atomic_fetch_add(&l->ok, 1, __ATOMIC_RELAXED);
    } else {
      l->rtt_ms[i] = NAN;
      if (__atomic_fetch_add(&l->failed, 1, __ATOMIC_RELAXED) < 3)
        bx_log("e2e: PATCH %s failed: %s", id, rc ? err.msg : "HTTP status not 200");
    }
    wr_http_response_free(&res);
  }
}

static int dbl_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of the non-NaN values (sorted copy). */
static double quantile(const double *v, size_t n, double q) {
  double *s = malloc((n ? n : 1) * sizeof *s);
  size_t m = 0;
  for (size_t i = 0; s && i < n; i++)
    if (!isnan(v[i]))
      s[m++] = v[i];
  double r = NAN;
  if (s && m) {
    qsort(s, m, sizeof *s, dbl_cmp);
    size_t k = (size_t)ceil(q * (double)m);
    r = s[k ? k - 1 : 0];
  }
  free(s);
  return r;
}

/* One rate: the load, the wait for the view, the figures. */
static int one_rate(bx_svc *cust, bx_svc *ord, PGconn *odb, unsigned rate, size_t first) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "e2e.r%u", rate);
  load l = {.base_url = cust->p.url,
            .rate = rate,
            .total = (size_t)rate * bx.n.e2e_seconds,
            .first_customer = first};
  l.rtt_ms = calloc(l.total, sizeof *l.rtt_ms);
  l.late_ms = calloc(l.total, sizeof *l.late_ms);
  if (!l.rtt_ms || !l.late_ms) {
    free(l.rtt_ms);
    free(l.late_ms);
    return WR_ENOMEM;
  }
  unsigned threads = rate / 40 < 8 ? 8 : rate / 40 > 64 ? 64 : rate / 40;
  pthread_t th[64];
  double cpu_c0 = bx_cpu_s(cust->p.pid), cpu_o0 = bx_cpu_s(ord->p.pid);
  bx_log("e2e: %u PATCH/s for %u s (%zu requests, %u client threads)", rate, bx.n.e2e_seconds,
         l.total, threads);
  l.t0_ns = wr_mono_ns() + 100000000;
  unsigned started = 0;
  for (; started < threads; started++)
    if (pthread_create(&th[started], NULL, worker, &l) != 0)
      break;
  for (unsigned t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  double secs = (double)(wr_mono_ns() - l.t0_ns) / 1e9;
  /* wait for the view: every accepted PATCH is version 2 there */
  char lo[48], hi[48], sql[512];
  customer_id(first, lo, sizeof lo);
  customer_id(first + l.total - 1, hi, sizeof hi);
  long long seen = -1;
  int64_t deadline = wr_mono_ns() + 120 * (int64_t)1000000000;
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM customer_view WHERE id BETWEEN '%s' AND '%s' AND version = 2", lo,
           hi);
  while (wr_mono_ns() < deadline) {
    seen = bx_scalar(odb, sql);
    if (seen >= (long long)l.ok)
      break;
    usleep(100000);
  }
  double cpu_c = bx_cpu_s(cust->p.pid) - cpu_c0, cpu_o = bx_cpu_s(ord->p.pid) - cpu_o0;
  bool all =
      bx_check("e2e", seen == (long long)l.ok && l.failed == 0,
               "%u/s: %zu of %zu PATCH accepted, %lld reached the view", rate, l.ok, l.total, seen);
  snprintf(sql, sizeof sql,
           "SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY l), max(l) FROM ("
           "SELECT extract(epoch FROM synced_at - source_updated_at) * 1000 AS l"
           " FROM customer_view WHERE id BETWEEN '%s' AND '%s' AND version = 2) x",
           lo, hi);
  PGresult *r = PQexec(odb, sql);
  double p50 = NAN, p99 = NAN, mx = NAN;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
    sscanf(PQgetvalue(r, 0, 0), "{%lf,%lf}", &p50, &p99);
    mx = strtod(PQgetvalue(r, 0, 1), NULL);
  } else {
    bx_log("e2e: latency query: %s", PQresultErrorMessage(r));
  }
  PQclear(r);
  char name[64], note[96];
  snprintf(name, sizeof name, "%s.achieved_rate", prefix);
  bx_result(name, (double)l.ok / secs, "req/s", "PATCH accepted per second");
  snprintf(name, sizeof name, "%s.latency_p50", prefix);
  bx_result(name, p50, "ms", "source commit -> view commit");
  snprintf(name, sizeof name, "%s.latency_p99", prefix);
  if (rate == bx.n.e2e_rates[0] && !bx.quick)
    snprintf(note, sizeof note, "target < 25 at 500/s: %s", bx_verdict(p99 < 25));
  else
    snprintf(note, sizeof note, "source commit -> view commit");
  bx_result(name, p99, "ms", note);
  snprintf(name, sizeof name, "%s.latency_max", prefix);
  bx_result(name, mx, "ms", "source commit -> view commit");
  snprintf(name, sizeof name, "%s.patch_rtt_p99", prefix);
  bx_result(name, quantile(l.rtt_ms, l.total, 0.99), "ms", "PATCH round trip seen by the client");
  snprintf(name, sizeof name, "%s.send_late_p99", prefix);
  bx_result(name, quantile(l.late_ms, l.total, 0.99), "ms", "load generator behind schedule");
  snprintf(name, sizeof name, "%s.customer_cpu_per_1000", prefix);
  bx_result(name, cpu_c * 1e6 / (double)(l.ok ? l.ok : 1), "ms",
            "customer-service CPU per 1000 PATCH");
  snprintf(name, sizeof name, "%s.order_cpu_per_1000", prefix);
  bx_result(name, cpu_o * 1e6 / (double)(l.ok ? l.ok : 1), "ms",
            "order-service CPU per 1000 events");
  free(l.rtt_ms);
  free(l.late_ms);
  return all ? 0 : WR_ESTATE;
}

int scenario_e2e(void) {
  size_t total = 0;
  for (int k = 0; k < 2; k++)
    total += (size_t)bx.n.e2e_rates[k] * bx.n.e2e_seconds;
  char vhost[768], cdb[512], odb[512];
  int rc = bx_vhost_create("e2e", vhost, sizeof vhost);
  if (rc == 0)
    rc = bx_db_create("e2e_customer", cdb, sizeof cdb);
  if (rc == 0)
    rc = bx_db_create("e2e_order", odb, sizeof odb);
  if (rc)
    return rc;
  char e_amqp[800], e_cdb[600], e_odb[600], e_curl[128], e_qt[64];
  snprintf(e_amqp, sizeof e_amqp, "WARREN_AMQP_URL=%s", vhost);
  snprintf(e_cdb, sizeof e_cdb, "WARREN_DATABASE_URL=%s", cdb);
  snprintf(e_odb, sizeof e_odb, "WARREN_DATABASE_URL=%s", odb);
  snprintf(e_qt, sizeof e_qt, "WARREN_QUEUE_TYPE=%s", bx.queue_type);
  /* The service's own defaults for HTTP threads and pool (WARREN_BENCH_CUSTOMER_ENV can
   * set others): every PATCH holds its thread until its synchronous COMMIT, so the
   * thread count bounds the PATCH rate (docs/PERFORMANCE.md) */
  const char *cenv[] = {e_amqp, e_cdb, NULL};
  bx_svc cust = {0}, ord = {0};
  PGconn *c = NULL, *o = NULL;
  rc = bx_svc_start(&cust, "customer-service", "e2e_customer", cenv, 60);
  if (rc == 0 && !(c = bx_pg(cdb)))
    rc = WR_EDB;
  if (rc == 0) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO customers SELECT '0190e2e0-0000-7000-8000-' || lpad(i::text, 12, '0'),"
             " 'Customer ' || i, 'c' || i || '@e2e.example.com', 'active', 1,"
             " clock_timestamp(), clock_timestamp() FROM generate_series(0, %zu) AS i",
             total - 1);
    rc = bx_exec(c, sql) ? WR_EDB : 0;
  }
  snprintf(e_curl, sizeof e_curl, "CUSTOMER_SERVICE_URL=%s", cust.p.url);
  const char *oenv[] = {e_amqp, e_odb, e_curl, e_qt, "WARREN_RECONCILE_INTERVAL=0", NULL};
  if (rc == 0)
    rc = bx_svc_start(&ord, "order-service", "e2e_order", oenv, 300);
  if (rc == 0 && !(o = bx_pg(odb)))
    rc = WR_EDB;
  if (rc == 0) {
    long long loaded = bx_scalar(o, "SELECT count(*) FROM customer_view");
    if (!bx_check("e2e", loaded == (long long)total, "catch-up loaded %lld of %zu customers",
                  loaded, total))
      rc = WR_ESTATE;
  }
  size_t first = 0;
  for (int k = 0; rc == 0 && k < 2; k++) {
    rc = one_rate(&cust, &ord, o, bx.n.e2e_rates[k], first);
    first += (size_t)bx.n.e2e_rates[k] * bx.n.e2e_seconds;
  }
  if (rc)
    bx_check("e2e", false, "the end-to-end run failed (%s)", wr_strerror(rc));
  bx_svc_stop(&ord);
  bx_svc_stop(&cust);
  if (c)
    PQfinish(c);
  if (o)
    PQfinish(o);
  bx_db_drop(cdb);
  bx_db_drop(odb);
  bx_vhost_delete(vhost);
  return rc;
}
