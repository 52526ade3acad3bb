/* consume.c: the order service's consumer draining pre-loaded events into its view.
 *
 * N CustomerUpdated events over C customers (versions increasing per customer), 5% of
 * them duplicates (an earlier event delivered again: same event id, same bytes) and 5%
 * stale (an older version of a customer, new event id, different content that must not
 * win), are published to customer.events while the order service is stopped, so they
 * wait in its queue. Then the service starts and drains them through its consumer into
 * customer_view with real commits. Figures: events/s (from the first to the last
 * commit, polled on its metrics), CPU per 1000 events. Checks: every customer of the
 * view holds exactly its newest version's content, the outcome counters are exactly
 * applied = N - duplicates - stale, and nothing was retried or dead-lettered.
 *
 * The ceiling is measured on the same messages: the exchange also routes them into a
 * raw queue of the same type, which a bare rabbitmq-c loop (prefetch 1000, multiple-ack
 * every 100) drains, half right before the order service starts and half right after
 * it is done, so that a machine getting busier or quieter meanwhile does not tilt the
 * ratio.
 *
 * The same is run with batch size 1 (one transaction and one ack per message: a
 * per-message-commit consumer) on fewer events; its rate is the baseline of the
 * batching ratio. */
#include "bench.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "customer/v1/customer.warren.h"

enum { EV_NORMAL, EV_DUP, EV_STALE };

typedef struct planned {
  uint32_t customer;
  uint32_t version;
  uint32_t ref; /* EV_DUP: the index of the event delivered again */
  uint8_t kind;
  char event_id[WR_UUID_STRLEN];
  int64_t occurred_us;
} planned;

typedef struct plan {
  planned *ev;
  size_t n;
  uint32_t customers;
  uint32_t *final_version; /* per customer: newest normal version (0: none) */
  size_t n_normal, n_dup, n_stale;
  /* publishing */
  uint8_t *buf;
  size_t cap;
  char name[96], email[96], cid[48];
  amqp_table_entry_t h[3];
} plan;

static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

static void customer_id(uint32_t c, char *out, size_t outsz) {
  snprintf(out, outsz, "0190c0de-0000-7000-8000-%012u", c);
}

static void content(uint32_t c, uint32_t v, bool stale, char *name, size_t nsz, char *email,
                    size_t esz, int *status) {
  snprintf(name, nsz, "%s %u v%u", stale ? "STALE customer" : "Customer", c, v);
  snprintf(email, esz, "c%u.v%u@%s.example.com", c, v, stale ? "stale" : "bench");
  *status = stale        ? CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING
            : v % 5 == 0 ? CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED
                         : CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
}

static int plan_make(plan *p, size_t n, uint32_t customers) {
  memset(p, 0, sizeof *p);
  p->ev = calloc(n, sizeof *p->ev);
  p->final_version = calloc(customers, sizeof *p->final_version);
  if (!p->ev || !p->final_version)
    return WR_ENOMEM;
  p->n = n;
  p->customers = customers;
  rng_state = 0x9e3779b97f4a7c15ULL;
  int64_t t = wr_now_ns() / 1000;
  for (size_t i = 0; i < n; i++) {
    planned *e = &p->ev[i];
    uint32_t r = rnd() % 100;
    e->occurred_us = t + (int64_t)i;
    if (r < 5 && i > 0) {
      size_t back = 1 + rnd() % (i < 1000 ? i : 1000);
      size_t j = i - back;
      if (p->ev[j].kind == EV_DUP)
        j = p->ev[j].ref;
      *e = p->ev[j];
      e->kind = EV_DUP;
      e->ref = (uint32_t)j;
      p->n_dup++;
      continue;
    }
    if (r < 10) {
      uint32_t c = 0;
      bool found = false;
      for (int tries = 0; tries < 8 && !found; tries++) {
        c = rnd() % customers;
        found = p->final_version[c] >= 2;
      }
      if (found) {
        e->kind = EV_STALE;
        e->customer = c;
        e->version = 1 + rnd() % (p->final_version[c] - 1);
        wr_uuid_v7(e->event_id);
        p->n_stale++;
        continue;
      }
    }
    e->kind = EV_NORMAL;
    e->customer = rnd() % customers;
    e->version = ++p->final_version[e->customer];
    wr_uuid_v7(e->event_id);
    p->n_normal++;
  }
  return 0;
}

static void plan_free(plan *p) {
  free(p->ev);
  free(p->final_version);
  free(p->buf);
}

static void plan_msg(size_t i, bx_msg *m, void *user) {
  plan *p = user;
  const planned *e = &p->ev[i];
  int status;
  customer_id(e->customer, p->cid, sizeof p->cid);
  content(e->customer, e->version, e->kind == EV_STALE, p->name, sizeof p->name, p->email,
          sizeof p->email, &status);
  bx_event ev = {.event_id = e->event_id,
                 .customer_id = p->cid,
                 .version = e->version,
                 .name = p->name,
                 .email = p->email,
                 .status = status,
                 .occurred_us = e->occurred_us};
  size_t len = bx_event_pack(&ev, &p->buf, &p->cap);
  bx_event_msg(&ev, p->buf, len, p->h, m);
}

/* Compares customer_view with the plan's expected final state. */
static bool view_matches(const char *scn, PGconn *c, const plan *p) {
  PGresult *r = PQexec(c, "SELECT id, name, email, status, version FROM customer_view");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    PQclear(r);
    return bx_check(scn, false, "cannot read customer_view");
  }
  size_t expected = 0;
  for (uint32_t k = 0; k < p->customers; k++)
    if (p->final_version[k])
      expected++;
  size_t wrong = 0;
  char first[200] = "";
  for (int i = 0; i < PQntuples(r); i++) {
    const char *id = PQgetvalue(r, i, 0);
    unsigned long k = strlen(id) == 36 ? strtoul(id + 24, NULL, 10) : (unsigned long)-1;
    char want_id[48], name[96], email[96];
    int st;
    bool ok = k < p->customers && p->final_version[k] > 0;
    if (ok) {
      customer_id((uint32_t)k, want_id, sizeof want_id);
      content((uint32_t)k, p->final_version[k], false, name, sizeof name, email, sizeof email, &st);
      const char *sname =
          st == CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED ? "suspended" : "active";
      ok = strcmp(id, want_id) == 0 && strcmp(PQgetvalue(r, i, 1), name) == 0 &&
           strcmp(PQgetvalue(r, i, 2), email) == 0 && strcmp(PQgetvalue(r, i, 3), sname) == 0 &&
           strtoull(PQgetvalue(r, i, 4), NULL, 10) == p->final_version[k];
    }
    if (!ok && wrong++ == 0)
      snprintf(first, sizeof first, "%s: %s v%s", id, PQgetvalue(r, i, 1), PQgetvalue(r, i, 4));
  }
  size_t rows = (size_t)PQntuples(r);
  PQclear(r);
  return bx_check(scn, wrong == 0 && rows == expected,
                  "view holds the newest version of every customer: %zu rows (expected %zu), "
                  "%zu wrong%s%s",
                  rows, expected, wrong, wrong ? ", first: " : "", first);
}

#define Q "order.customer-sync"
static const char *const outcome_series[] = {
    "warren_events_consumed_total{queue=\"" Q "\",result=\"applied\"}",
    "warren_events_consumed_total{queue=\"" Q "\",result=\"duplicate\"}",
    "warren_events_consumed_total{queue=\"" Q "\",result=\"stale\"}",
    "warren_events_consumed_total{queue=\"" Q "\",result=\"retried\"}",
    "warren_events_consumed_total{queue=\"" Q "\",result=\"dead_lettered\"}",
};
enum { O_APPLIED, O_DUP, O_STALE, O_RETRIED, O_DEAD, O_N };

typedef struct run_out {
  double rate;             /* events/s */
  double cpu_per_k;        /* CPU ms per 1000 events */
  double raw_drain;        /* msgs/s of the raw drain of the same events (0: not measured) */
  double raw_before;       /* ... of its first half, drained before the service */
  double raw_after;        /* ... of its second half, drained after it */
  double broker_per_k;     /* broker CPU ms per 1000 events during the service's run */
  double pg_per_k;         /* PostgreSQL CPU ms per 1000 events (all its processes) */
  double raw_broker_per_k; /* broker CPU ms per 1000 messages of the raw drain */
} run_out;

#define RAW_Q "bench.raw-drain"

/* One full run: fresh vhost and databases, services up, events loaded, drained,
 * checked. batch: the order service's batch size (NULL: its default). */
static int run(const char *label, size_t n, uint32_t customers, const char *batch, bool note_idle,
               bool raw, run_out *out) {
  char scn[32];
  snprintf(scn, sizeof scn, "%s", label);
  char vhost[768], cdb[512], odb[512];
  memset(out, 0, sizeof *out);
  int rc = bx_vhost_create(label, vhost, sizeof vhost);
  char n1[64], n2[64];
  snprintf(n1, sizeof n1, "%s_customer", label);
  snprintf(n2, sizeof n2, "%s_order", label);
  if (rc == 0)
    rc = bx_db_create(n1, cdb, sizeof cdb);
  if (rc == 0)
    rc = bx_db_create(n2, odb, sizeof odb);
  if (rc)
    return rc;
  plan p;
  bx_svc cust = {0}, ord = {0};
  char e_amqp[800], e_cdb[600], e_odb[600], e_curl[128], e_qt[64], e_batch[64];
  snprintf(e_amqp, sizeof e_amqp, "WARREN_AMQP_URL=%s", vhost);
  snprintf(e_cdb, sizeof e_cdb, "WARREN_DATABASE_URL=%s", cdb);
  snprintf(e_odb, sizeof e_odb, "WARREN_DATABASE_URL=%s", odb);
  snprintf(e_qt, sizeof e_qt, "WARREN_QUEUE_TYPE=%s", bx.queue_type);
  snprintf(e_batch, sizeof e_batch, "WARREN_BATCH_SIZE=%s", batch ? batch : "");
  const char *cenv[] = {e_amqp, e_cdb, NULL};
  rc = plan_make(&p, n, customers);
  if (rc == 0)
    rc = bx_svc_start(&cust, "customer-service", n1, cenv, 60);
  snprintf(e_curl, sizeof e_curl, "CUSTOMER_SERVICE_URL=%s", cust.p.url);
  const char *oenv[] = {
      e_amqp, e_odb, e_curl, e_qt, "WARREN_RECONCILE_INTERVAL=0", batch ? e_batch : NULL, NULL};
  /* First start: migrations, the queue and its bindings; then stop, so the events
   * wait in the queue. */
  if (rc == 0)
    rc = bx_svc_start(&ord, "order-service", n2, oenv, 60);
  if (rc == 0 && note_idle) {
    sleep(2);
    bx_result("footprint.customer_rss_idle", (double)bx_rss_kib(cust.p.pid) / 1024, "MiB",
              "VmRSS, ready, nothing to do");
    bx_result("footprint.order_rss_idle", (double)bx_rss_kib(ord.p.pid) / 1024, "MiB",
              "VmRSS, ready, nothing to do");
  }
  bx_svc_stop(&ord);
  amqp_connection_state_t a = rc == 0 ? bx_amqp_open(vhost) : NULL;
  if (rc == 0 && !a)
    rc = WR_ECLOSED;
  if (rc == 0 && raw)
    rc = bx_amqp_queue(a, RAW_Q, bx.queue_type, CUSTOMER_V1_EXCHANGE,
                       CUSTOMER_V1_CUSTOMER_UPDATED_TYPE);
  if (rc == 0) {
    double prate = 0;
    bx_log("%s: publishing %zu events (%zu duplicates, %zu stale) over %u customers", label, n,
           p.n_dup, p.n_stale, customers);
    rc = bx_publish(a, n, 1000, plan_msg, &p, &prate);
    long depth = rc == 0 ? bx_amqp_depth(a, Q) : -1;
    if (rc == 0 &&
        !bx_check(scn, depth == (long)n, "%zu events waiting in %s (found %ld)", n, Q, depth))
      rc = WR_ESTATE;
  }
  bx_amqp_close(a);
  if (rc == 0 && raw) {
    /* the ceiling, on the same messages: the first half just before the service
     * starts, the second half right after it is done */
    a = bx_amqp_open(vhost);
    double b0 = bx_broker_cpu_s();
    rc = a ? bx_drain(a, RAW_Q, n / 2, 1000, 100, &out->raw_before) : WR_ECLOSED;
    out->raw_broker_per_k = (bx_broker_cpu_s() - b0) * 1000.0 / (double)(n / 2) * 1000.0;
    bx_amqp_close(a);
  }
  if (rc == 0)
    rc = bx_svc_start(&ord, "order-service", n2, oenv, 120);
  double v[O_N] = {0};
  if (rc == 0) {
    int64_t t0 = 0, last_progress = wr_mono_ns();
    double c0 = 0, cpu0 = 0, seen = -1, broker0 = 0, pg0 = 0;
    for (;;) {
      if (bx_metrics(ord.p.url, outcome_series, v, O_N) == 0) {
        double settled = v[O_APPLIED] + v[O_DUP] + v[O_STALE] + v[O_RETRIED] + v[O_DEAD];
        int64_t now = wr_mono_ns();
        if (t0 == 0 && settled > 0 && settled < (double)n) {
          t0 = now;
          c0 = settled;
          cpu0 = bx_cpu_s(ord.p.pid);
          broker0 = bx_broker_cpu_s();
          pg0 = bx_pg_cpu_s();
        }
        if (settled > seen) {
          seen = settled;
          last_progress = now;
        }
        if (settled >= (double)n) {
          double secs = (double)(now - t0) / 1e9;
          if (t0 > 0 && secs > 0) {
            out->rate = (settled - c0) / secs;
            out->cpu_per_k = (bx_cpu_s(ord.p.pid) - cpu0) * 1000.0 / (settled - c0) * 1000.0;
            out->broker_per_k = (bx_broker_cpu_s() - broker0) * 1000.0 / (settled - c0) * 1000.0;
            out->pg_per_k = (bx_pg_cpu_s() - pg0) * 1000.0 / (settled - c0) * 1000.0;
          } else {
            bx_log("%s: drained before the first poll; no rate", label);
            out->rate = NAN;
            out->cpu_per_k = out->broker_per_k = out->pg_per_k = NAN;
          }
          break;
        }
      }
      if (wr_mono_ns() - last_progress > 120 * (int64_t)1000000000) {
        bx_check(scn, false, "no progress for 120 s (%.0f of %zu settled)", seen, n);
        rc = WR_ETIMEDOUT;
        break;
      }
      usleep(50000);
    }
  }
  if (rc == 0 && raw) {
    a = bx_amqp_open(vhost);
    rc = a ? bx_drain(a, RAW_Q, n - n / 2, 1000, 100, &out->raw_after) : WR_ECLOSED;
    if (a) {
      bx_amqp_delete(a, RAW_Q);
      bx_amqp_close(a);
    }
    /* the rate of the whole: n messages over the two drain times */
    if (rc == 0)
      out->raw_drain =
          (double)n / ((double)(n / 2) / out->raw_before + (double)(n - n / 2) / out->raw_after);
  }
  if (rc == 0) {
    bx_check(scn,
             v[O_APPLIED] == (double)p.n_normal && v[O_DUP] == (double)p.n_dup &&
                 v[O_STALE] == (double)p.n_stale && v[O_RETRIED] == 0 && v[O_DEAD] == 0,
             "outcomes applied %.0f/%zu duplicate %.0f/%zu stale %.0f/%zu retried %.0f "
             "dead-lettered %.0f",
             v[O_APPLIED], p.n_normal, v[O_DUP], p.n_dup, v[O_STALE], p.n_stale, v[O_RETRIED],
             v[O_DEAD]);
    PGconn *c = bx_pg(odb);
    if (c) {
      view_matches(scn, c, &p);
      PQfinish(c);
    } else {
      bx_check(scn, false, "cannot connect to the order database");
    }
  }
  bx_svc_stop(&ord);
  bx_svc_stop(&cust);
  plan_free(&p);
  bx_db_drop(cdb);
  bx_db_drop(odb);
  bx_vhost_delete(vhost);
  return rc;
}

int scenario_consume(void) {
  run_out batched, single;
  bx_log("consume: %u events over %u customers (order service defaults)", bx.n.consume_n,
         bx.n.consume_customers);
  int rc = run("consume", bx.n.consume_n, bx.n.consume_customers, NULL, true, true, &batched);
  if (rc) {
    bx_check("consume", false, "the batched run failed (%s)", wr_strerror(rc));
    return rc;
  }
  uint32_t b1_customers = bx.n.consume_b1_n / 10 ? bx.n.consume_b1_n / 10 : 1;
  bx_log("consume: batch size 1 on %u events over %u customers", bx.n.consume_b1_n, b1_customers);
  rc = run("consume-b1", bx.n.consume_b1_n, b1_customers, "1", false, false, &single);
  if (rc) {
    bx_check("consume-b1", false, "the batch-size-1 run failed (%s)", wr_strerror(rc));
    return rc;
  }
  bx_result("consume.events_per_s", batched.rate, "ev/s", "order service, default batch");
  bx_result("consume.cpu_per_1000", batched.cpu_per_k, "ms", "order-service CPU per 1000 events");
  bx_result("consume.batch1_events_per_s", single.rate, "ev/s", "same, batch size 1");
  bx_result("consume.batch1_cpu_per_1000", single.cpu_per_k, "ms", "CPU per 1000, batch size 1");
  char note[96];
  snprintf(note, sizeof note, "same messages, %s queue; halves %.0f before, %.0f after",
           bx.queue_type, batched.raw_before, batched.raw_after);
  bx_result("consume.raw_drain_per_s", batched.raw_drain, "msg/s", note);
  double ratio = batched.rate / batched.raw_drain;
  snprintf(note, sizeof note, "warren / raw drain; target >= 0.60: %s", bx_verdict(ratio >= 0.6));
  bx_result("consume.ratio_raw_drain", ratio, "x", note);
  /* Where the CPU of one event goes, and the rate the machine's cores would allow if
   * they did nothing else: the bound the ratio above runs into (docs/PERFORMANCE.md). */
  bx_result("consume.broker_cpu_per_1000", batched.broker_per_k, "ms",
            "RabbitMQ CPU per 1000 events during the service's run");
  bx_result("consume.pg_cpu_per_1000", batched.pg_per_k, "ms",
            "PostgreSQL CPU per 1000 events (all its processes)");
  bx_result("consume.raw_broker_cpu_per_1000", batched.raw_broker_per_k, "ms",
            "RabbitMQ CPU per 1000 messages of the raw drain");
  double per_event_ms = (batched.cpu_per_k + batched.broker_per_k + batched.pg_per_k) / 1000.0;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  double bound = per_event_ms > 0 ? (double)cores * 1000.0 / per_event_ms : NAN;
  snprintf(note, sizeof note, "%ld cores / CPU per event (service+broker+db) = ratio %.2f", cores,
           bound / batched.raw_drain);
  bx_result("consume.cpu_bound_per_s", bound, "ev/s", note);
  double x = batched.rate / single.rate;
  snprintf(note, sizeof note, "batched / batch size 1; target >= 25: %s", bx_verdict(x >= 25));
  bx_result("consume.ratio_batch1", x, "x", note);
  return 0;
}
