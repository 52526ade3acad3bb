/* catchup.c: a fresh order service loading every customer through the bulk API.
 *
 * N customers are written into the customer database by SQL (generate_series: not
 * through REST, which would measure the API instead), with a mix of statuses including
 * 1% deleted (tombstones must travel too), versions 1..5, and every 1000th name full of
 * what JSON must escape. A fresh order service then
 * starts with an empty view and pages through GET /customers. Figure: customers/s from
 * the first loaded page to the last (polled on order_catchup_items_total), CPU of both
 * services. Checks: the view holds every customer, and a content fingerprint computed
 * the same way on both sides (id, version, status, and name and e-mail unless deleted)
 * is equal. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char fingerprint_sql[] =
    "SELECT count(*)::text || '/' || coalesce(sum(hashtext(id || ':' || version || ':' || status"
    " || ':' || CASE WHEN status = 'deleted' THEN '' ELSE name || ':' || email END)::bigint), 0)"
    " FROM %s";

static void fingerprint(PGconn *c, const char *table, char *out, size_t outsz) {
  char sql[512];
  snprintf(sql, sizeof sql, fingerprint_sql, table);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    snprintf(out, outsz, "%s", PQgetvalue(r, 0, 0));
  else
    snprintf(out, outsz, "error: %s", PQresultErrorMessage(r));
  PQclear(r);
}

int scenario_catchup(void) {
  const size_t n = bx.n.catchup_n;
  char vhost[768], cdb[512], odb[512];
  int rc = bx_vhost_create("catchup", vhost, sizeof vhost);
  if (rc == 0)
    rc = bx_db_create("catchup_customer", cdb, sizeof cdb);
  if (rc == 0)
    rc = bx_db_create("catchup_order", odb, sizeof odb);
  if (rc)
    return rc;
  char e_amqp[800], e_cdb[600], e_odb[600], e_curl[128], e_qt[64];
  snprintf(e_amqp, sizeof e_amqp, "WARREN_AMQP_URL=%s", vhost);
  snprintf(e_cdb, sizeof e_cdb, "WARREN_DATABASE_URL=%s", cdb);
  snprintf(e_odb, sizeof e_odb, "WARREN_DATABASE_URL=%s", odb);
  snprintf(e_qt, sizeof e_qt, "WARREN_QUEUE_TYPE=%s", bx.queue_type);
  const char *cenv[] = {e_amqp, e_cdb, NULL};
  bx_svc cust = {0}, ord = {0};
  PGconn *c = NULL, *o = NULL;
  rc = bx_svc_start(&cust, "customer-service", "catchup_customer", cenv, 60);
  if (rc == 0 && !(c = bx_pg(cdb)))
    rc = WR_EDB;
  if (rc == 0) {
    int64_t t0 = wr_mono_ns();
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO customers SELECT '0190ca7c-0000-7000-8000-' || lpad(i::text, 12, '0'),"
             /* every 1000th name needs escaping in JSON: quote, backslash, control
              * characters, non-ASCII; the fingerprint proves it arrived intact */
             " CASE WHEN i %% 1000 = 5 THEN 'Zoë \"q\" ' || chr(92) || chr(9) || chr(10) ||"
             " chr(1) || ' 東京 🚀 ' || i ELSE 'Customer ' || i || ' ' || md5(i::text) END,"
             " 'c' || i || '@catchup.example.com',"
             " CASE WHEN i %% 100 = 7 THEN 'deleted' WHEN i %% 10 = 3 THEN 'suspended'"
             " WHEN i %% 10 = 4 THEN 'pending' ELSE 'active' END, 1 + i %% 5,"
             " clock_timestamp(), clock_timestamp() FROM generate_series(0, %zu) AS i",
             n - 1);
    rc = bx_exec(c, sql) || bx_exec(c, "VACUUM ANALYZE customers") ? WR_EDB : 0;
    if (rc == 0)
      bx_log("catchup: %zu customers written by SQL in %.1f s", n,
             (double)(wr_mono_ns() - t0) / 1e9);
  }
  snprintf(e_curl, sizeof e_curl, "CUSTOMER_SERVICE_URL=%s", cust.p.url);
  const char *oenv[] = {e_amqp, e_odb, e_curl, e_qt, "WARREN_RECONCILE_INTERVAL=0", NULL};
  double rate = NAN, cpu_c = NAN, cpu_o = NAN;
  if (rc == 0)
    rc = bx_svc_spawn(&ord, "order-service", "catchup_order", oenv);
  if (rc == 0) {
    static const char *const series[] = {"order_catchup_items_total"};
    double cpu_c0 = bx_cpu_s(cust.p.pid), cpu_o0 = 0, v = 0, first = 0, seen = -1;
    int64_t t_first = 0, last_progress = wr_mono_ns();
    for (;;) {
      if (!dk_alive(&ord.p)) {
        bx_log("catchup: order-service exited");
        dk_tail(ord.p.log_path, 20);
        ord.up = false;
        rc = WR_ECLOSED;
        break;
      }
      if (bx_metrics(ord.p.url, series, &v, 1) == 0) {
        int64_t now = wr_mono_ns();
        if (t_first == 0 && v > 0) {
          t_first = now;
          first = v;
          cpu_o0 = bx_cpu_s(ord.p.pid);
          cpu_c0 = bx_cpu_s(cust.p.pid);
        }
        if (v > seen) {
          seen = v;
          last_progress = now;
        }
        if (v >= (double)n) {
          double secs = (double)(now - t_first) / 1e9;
          if (secs > 0 && v > first)
            rate = (v - first) / secs;
          cpu_o = (bx_cpu_s(ord.p.pid) - cpu_o0) * 1e6 / (v - first);
          cpu_c = (bx_cpu_s(cust.p.pid) - cpu_c0) * 1e6 / (v - first);
          break;
        }
      }
      if (wr_mono_ns() - last_progress > 120 * (int64_t)1000000000) {
        bx_log("catchup: no progress for 120 s (%.0f of %zu)", seen, n);
        rc = WR_ETIMEDOUT;
        break;
      }
      usleep(50000);
    }
  }
  if (rc == 0)
    rc = bx_svc_wait_ready(&ord, 120);
  if (rc == 0 && !(o = bx_pg(odb)))
    rc = WR_EDB;
  if (rc == 0) {
    char src[128], dst[128];
    fingerprint(c, "customers", src, sizeof src);
    fingerprint(o, "customer_view", dst, sizeof dst);
    bx_check("catchup", strcmp(src, dst) == 0 && strtoull(dst, NULL, 10) == n,
             "view fingerprint %s equals the source's %s (%zu customers)", dst, src, n);
    char note[96];
    snprintf(note, sizeof note, "fresh order service, bulk API; target >= 100,000: %s",
             bx_verdict(rate >= 100000));
    bx_result("catchup.customers_per_s", rate, "cust/s", note);
    bx_result("catchup.order_cpu_per_1000", cpu_o, "ms", "order-service CPU per 1000 customers");
    bx_result("catchup.customer_cpu_per_1000", cpu_c, "ms",
              "customer-service CPU per 1000 customers served");
  } else {
    bx_check("catchup", false, "the catch-up run failed (%s)", wr_strerror(rc));
  }
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
