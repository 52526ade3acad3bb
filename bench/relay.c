/* relay.c: the customer service's relay publishing a full outbox.
 *
 * N outbox rows (a real CustomerUpdated payload, written by SQL while the service is
 * stopped) are published by the customer service's relay thread with confirms to
 * customer.events, where one durable queue of the scenario's type is bound. Figures:
 * rows/s from the first to the last confirmed batch (polled on the service's
 * warren_outbox_published_total), CPU per 1000 rows, and the ratio to the raw
 * publish ceiling measured on the same route right before and right after the relay
 * (the same number of messages with the relay's properties to the same exchange and
 * queue, 1000 in flight; the mean of the two, so that a machine getting busier or
 * quieter during the scenario does not tilt the ratio). Checks: the outbox is empty,
 * the queue holds exactly N messages, nothing failed. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "customer/v1/customer.warren.h"

static const char *const relay_series[] = {"warren_outbox_published_total",
                                           "warren_outbox_failed_total"};

/* Writes n rows in chunks (one statement each) with the packed event as payload. */
static int fill_outbox(PGconn *c, size_t n, const uint8_t *payload, size_t len) {
  const size_t chunk = 50000;
  char lo[24], hi[24];
  const char *params[3] = {(const char *)payload, lo, hi};
  const int lengths[3] = {(int)len, 0, 0};
  const int formats[3] = {1, 0, 0};
  for (size_t from = 1; from <= n; from += chunk) {
    size_t to = from + chunk - 1 < n ? from + chunk - 1 : n;
    snprintf(lo, sizeof lo, "%zu", from);
    snprintf(hi, sizeof hi, "%zu", to);
    PGresult *r = PQexecParams(
        c,
        "INSERT INTO warren_outbox (event_id, event_type, exchange, routing_key, aggregate_type,"
        " aggregate_id, version, correlation_id, source_service, occurred_at, payload)"
        " SELECT gen_random_uuid(), 'customer.v1.CustomerUpdated', 'customer.events',"
        " 'customer.v1.CustomerUpdated', 'customer',"
        " '0190c0de-0000-7000-8000-' || lpad((i % 20000)::text, 12, '0'), i,"
        " gen_random_uuid()::text, 'customer', now(), $1::bytea"
        " FROM generate_series($2::bigint, $3::bigint) AS i",
        3, NULL, params, lengths, formats, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
      bx_log("fill outbox: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (!ok)
      return WR_EDB;
  }
  return 0;
}

typedef struct raw_gen {
  uint8_t *buf;
  size_t cap;
  char id[WR_UUID_STRLEN];
  amqp_table_entry_t h[3];
} raw_gen;

static void raw_msg(size_t i, bx_msg *m, void *user) {
  raw_gen *g = user;
  wr_uuid_v7(g->id);
  bx_event ev = {.event_id = g->id,
                 .customer_id = "0190c0de-0000-7000-8000-000000000001",
                 .version = i + 1,
                 .name = "Customer 1 v1",
                 .email = "c1.v1@bench.example.com",
                 .status = 1,
                 .occurred_us = wr_now_ns() / 1000};
  size_t len = bx_event_pack(&ev, &g->buf, &g->cap);
  bx_event_msg(&ev, g->buf, len, g->h, m);
}

/* Raw publish of n messages to customer.events (-> queue), then the queue emptied. */
static int raw_publish(const char *vhost, const char *queue, size_t n, double *rate) {
  amqp_connection_state_t a = bx_amqp_open(vhost);
  if (!a)
    return WR_ECLOSED;
  raw_gen g = {0};
  int rc = bx_publish(a, n, 1000, raw_msg, &g, rate);
  free(g.buf);
  long depth = rc == 0 ? bx_amqp_depth(a, queue) : -1;
  if (rc == 0 && depth != (long)n)
    bx_log("relay: raw publish left %ld messages in the queue (expected %zu)", depth, n);
  amqp_queue_purge(a, 1, amqp_cstring_bytes(queue));
  bx_amqp_close(a);
  return rc;
}

int scenario_relay(void) {
  const size_t n = bx.n.relay_n;
  char vhost[768], db[512];
  int rc = bx_vhost_create("relay", vhost, sizeof vhost);
  if (rc == 0)
    rc = bx_db_create("relay_customer", db, sizeof db);
  if (rc)
    return rc;
  char e_amqp[800], e_db[600];
  snprintf(e_amqp, sizeof e_amqp, "WARREN_AMQP_URL=%s", vhost);
  snprintf(e_db, sizeof e_db, "WARREN_DATABASE_URL=%s", db);
  const char *env[] = {e_amqp, e_db, NULL};
  bx_svc cust = {0};
  /* first start: tables and the exchange; stopped while the outbox fills */
  rc = bx_svc_start(&cust, "customer-service", "relay_customer", env, 60);
  bx_svc_stop(&cust);
  const char *queue = "bench.relay";
  amqp_connection_state_t a = rc == 0 ? bx_amqp_open(vhost) : NULL;
  if (rc == 0 && (!a || bx_amqp_queue(a, queue, bx.queue_type, CUSTOMER_V1_EXCHANGE, "#") != 0))
    rc = WR_EAMQP;
  PGconn *c = rc == 0 ? bx_pg(db) : NULL;
  if (rc == 0 && !c)
    rc = WR_EDB;
  if (rc == 0) {
    uint8_t *buf = NULL;
    size_t cap = 0;
    char id[WR_UUID_STRLEN];
    wr_uuid_v7(id);
    bx_event ev = {.event_id = id,
                   .customer_id = "0190c0de-0000-7000-8000-000000000001",
                   .version = 1,
                   .name = "Customer 1 v1",
                   .email = "c1.v1@bench.example.com",
                   .status = 1,
                   .occurred_us = wr_now_ns() / 1000};
    size_t len = bx_event_pack(&ev, &buf, &cap);
    int64_t t0 = wr_mono_ns();
    rc = len ? fill_outbox(c, n, buf, len) : WR_ENOMEM;
    free(buf);
    if (rc == 0)
      bx_log("relay: %zu outbox rows written in %.1f s", n, (double)(wr_mono_ns() - t0) / 1e9);
  }
  double rate = NAN, cpu_per_k = NAN, v[2] = {0}, raw_before = NAN, raw_after = NAN;
  if (rc == 0)
    rc = raw_publish(vhost, queue, n, &raw_before);
  if (rc == 0)
    rc = bx_svc_start(&cust, "customer-service", "relay_customer", env, 60);
  if (rc == 0) {
    int64_t t0 = 0, last_progress = wr_mono_ns();
    double c0 = 0, cpu0 = 0, seen = -1;
    for (;;) {
      if (bx_metrics(cust.p.url, relay_series, v, 2) == 0) {
        int64_t now = wr_mono_ns();
        if (t0 == 0 && v[0] > 0 && v[0] < (double)n) {
          t0 = now;
          c0 = v[0];
          cpu0 = bx_cpu_s(cust.p.pid);
        }
        if (v[0] > seen) {
          seen = v[0];
          last_progress = now;
        }
        if (v[0] >= (double)n) {
          double secs = (double)(now - t0) / 1e9;
          if (t0 > 0 && secs > 0) {
            rate = (v[0] - c0) / secs;
            cpu_per_k = (bx_cpu_s(cust.p.pid) - cpu0) * 1000.0 / (v[0] - c0) * 1000.0;
          }
          break;
        }
      }
      if (wr_mono_ns() - last_progress > 120 * (int64_t)1000000000) {
        bx_check("relay", false, "no progress for 120 s (%.0f of %zu published)", seen, n);
        rc = WR_ETIMEDOUT;
        break;
      }
      usleep(50000);
    }
  }
  if (rc == 0) {
    long left = (long)bx_scalar(c, "SELECT count(*) FROM warren_outbox");
    long depth = bx_amqp_depth(a, queue);
    bx_check("relay", left == 0 && depth == (long)n && v[1] == 0,
             "outbox empty (%ld rows left), %ld of %zu messages in the queue, %.0f failures", left,
             depth, n, v[1]);
    amqp_queue_purge(a, 1, amqp_cstring_bytes(queue));
    rc = raw_publish(vhost, queue, n, &raw_after);
  }
  if (rc == 0) {
    double raw = (raw_before + raw_after) / 2;
    bx_result("relay.rows_per_s", rate, "rows/s", "customer-service relay, confirms");
    bx_result("relay.cpu_per_1000", cpu_per_k, "ms", "customer-service CPU per 1000 rows");
    char note[96];
    snprintf(note, sizeof note, "same route, %s queue; before %.0f, after %.0f", bx.queue_type,
             raw_before, raw_after);
    bx_result("relay.raw_publish_per_s", raw, "msg/s", note);
    snprintf(note, sizeof note, "relay / raw publish; target >= 0.70: %s",
             bx_verdict(rate / raw >= 0.7));
    bx_result("relay.ratio_raw_publish", rate / raw, "x", note);
  } else {
    bx_check("relay", false, "the relay run failed (%s)", wr_strerror(rc));
  }
  bx_svc_stop(&cust);
  if (c)
    PQfinish(c);
  if (a) {
    bx_amqp_delete(a, queue);
    bx_amqp_close(a);
  }
  bx_db_drop(db);
  bx_vhost_delete(vhost);
  return rc;
}
