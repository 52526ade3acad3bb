// warren-test: link=warren_devkit,warren_schemas timeout=900
/* test_partition_services.c: several instances of each service, as real processes.
 *
 * Two customer-service instances share one database: both take REST writes, both
 * relays claim outbox rows with FOR UPDATE SKIP LOCKED, and no event is published
 * twice (a tap queue on customer.events sees every event id exactly once). Three
 * order-service instances consume as one partitioned group (--partitions 6): the
 * partitions spread over them, no event is skipped as stale in steady state, one
 * instance is killed (SIGKILL) under load and the view still converges to the source
 * with nothing lost. Then two order-service instances without partitions on one queue:
 * the view converges too (stale skips possible, reported). Figures (per-instance
 * shares, time to converge) are printed. */
#include "../e2e/e2e.h"

#define PARTS "6"
#define TAP   "tap.customer-events"

static const char *const ORDER_ENV[] = {"WARREN_PARTITIONS=" PARTS,
                                        "WARREN_REBALANCE_INTERVAL_MS=1000", NULL};

/* ---- load through both customer instances ------------------------------------------ */

typedef struct load {
  const char *urls[2];
  json_t *ids;  /* borrowed */
  int from, to; /* PATCHes i = from..to-1 rename customer ids[i % n] */
  int serial;   /* makes every name new: a PATCH that changes nothing publishes nothing */
  const char *tag;
  int failed;
} load;

static void *patch_run(void *arg) {
  load *l = arg;
  size_t n = json_array_size(l->ids);
  for (int i = l->from; i < l->to; i++) {
    char url[300], body[200];
    snprintf(url, sizeof url, "%s/customers/%s", l->urls[i % 2],
             json_string_value(json_array_get(l->ids, (size_t)i % n)));
    snprintf(body, sizeof body, "{\"name\":\"%s %d.%d\"}", l->tag, l->serial, i);
    const char *h[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = "PATCH",
                          .url = url,
                          .headers = h,
                          .body = body,
                          .body_len = strlen(body),
                          .timeout_ms = 60000};
    wr_http_response res;
    if (wr_http_do(&rq, &res, NULL) != 0 || res.status != 200)
      l->failed++;
    wr_http_response_free(&res);
  }
  return NULL;
}

/* n PATCHes from 4 threads, alternating between the two customer instances. */
static void patch_many(dk_proc *cust, json_t *ids, int n, const char *tag) {
  static int serial;
  serial++;
  load l[4];
  pthread_t th[4];
  for (int t = 0; t < 4; t++) {
    l[t] = (load){.urls = {cust[0].url, cust[1].url},
                  .ids = ids,
                  .from = n * t / 4,
                  .to = n * (t + 1) / 4,
                  .tag = tag,
                  .serial = serial};
    assert_int_equal(pthread_create(&th[t], NULL, patch_run, &l[t]), 0);
  }
  int failed = 0;
  for (int t = 0; t < 4; t++) {
    pthread_join(th[t], NULL);
    failed += l[t].failed;
  }
  assert_int_equal(failed, 0);
}

typedef struct bg {
  dk_proc *cust;
  json_t *ids;
  int n;
  const char *tag;
} bg;

static void *patch_bg(void *arg) {
  bg *b = arg;
  patch_many(b->cust, b->ids, b->n, b->tag);
  return NULL;
}

/* ---- metrics -------------------------------------------------------------------- */

static double consumed(dk_proc *p, const char *result) {
  char series[200];
  snprintf(series, sizeof series,
           "warren_events_consumed_total{queue=\"" E2E_QUEUE "\",result=\"%s\"}", result);
  double v = 0;
  wr_err err = {0};
  if (dk_metric(p->url, series, &v, &err) != 0)
    return 0; /* not counted yet */
  return v;
}

static double published(dk_proc *p) {
  double v = 0;
  wr_err err = {0};
  if (dk_metric(p->url, "warren_outbox_published_total", &v, &err) != 0)
    return 0;
  return v;
}

typedef struct spread_arg {
  dk_proc *ord;
  double base[3];
} spread_arg;

static bool all_applied_since(void *user) {
  spread_arg *s = user;
  for (int i = 0; i < 3; i++)
    if (consumed(&s->ord[i], "applied") <= s->base[i])
      return false;
  return true;
}

static bool outbox_empty(void *user) {
  e2e *e = user;
  return e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox") == 0;
}

static void instances(void **state) {
  (void)state;
  e2e e;
  e2e_init(&e, "instances");
  e2e_tap(&e, TAP, CUSTOMER_V1_EXCHANGE);
  dk_proc cust[2];
  e2e_start_customer(&e, NULL);
  cust[0] = e.customer;
  e2e_start(&e, &cust[1], "customer", NULL, true);
  dk_proc ord[3];
  for (int i = 0; i < 3; i++)
    e2e_start(&e, &ord[i], "order", ORDER_ENV, true);
  e.order = ord[0]; /* e2e_wait_converged reads the view through e.order's database */

  /* warm-up: customers, then renames until every order instance applies events */
  long long events = 0;
  json_t *ids = e2e_create_many(&e, "multi", 300, 4);
  events += 300;
  spread_arg sp = {.ord = ord};
  int64_t t_spread = wt_now_ms();
  for (int round = 0; !all_applied_since(&sp); round++) {
    if (round > 60) {
      for (int i = 0; i < 3; i++) {
        printf("[ multi    ] order instance %d applied %.0f; its log:\n", i,
               consumed(&ord[i], "applied"));
        dk_tail(ord[i].log_path, 15);
      }
      fail_msg("the partitions did not spread over the three order instances");
    }
    patch_many(cust, ids, 100, "warm");
    events += 100;
    usleep(300000);
  }
  printf("[ multi    ] partitions spread over 3 instances in %lld ms\n",
         (long long)(wt_now_ms() - t_spread));
  e2e_wait_converged(&e, 120000);
  sleep(3); /* handovers in flight settle (rebalance interval 1 s) */
  patch_many(cust, ids, 100, "settle");
  events += 100;
  e2e_wait_converged(&e, 120000);

  /* steady state */
  double stale0 = 0, applied0[3];
  for (int i = 0; i < 3; i++) {
    stale0 += consumed(&ord[i], "stale");
    applied0[i] = consumed(&ord[i], "applied");
  }
  int64_t t0 = wt_now_ms();
  patch_many(cust, ids, 900, "steady");
  events += 900;
  int64_t conv = e2e_wait_converged(&e, 120000);
  int64_t t1 = wt_now_ms();
  double stale1 = 0;
  printf("[ multi    ] steady: 900 updates through 2 customer instances, view converged %lld ms"
         " after the last write (%lld ms in all)\n",
         (long long)conv, (long long)(t1 - t0));
  for (int i = 0; i < 3; i++) {
    double a = consumed(&ord[i], "applied");
    stale1 += consumed(&ord[i], "stale");
    printf("[ multi    ] order instance %d applied %.0f of them\n", i, a - applied0[i]);
  }
  assert_true(stale1 - stale0 == 0);

  /* one order instance killed under load */
  double surv0 = consumed(&ord[0], "stale") + consumed(&ord[2], "stale");
  bg b = {.cust = cust, .ids = ids, .n = 900, .tag = "killed"};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, patch_bg, &b), 0);
  usleep(700000);
  assert_int_equal(dk_stop(&ord[1], SIGKILL, 5000), 128 + SIGKILL);
  pthread_join(th, NULL);
  events += 900;
  conv = e2e_wait_converged(&e, 180000);
  double stale2 = consumed(&ord[0], "stale") + consumed(&ord[2], "stale");
  printf("[ multi    ] instance 1 killed during 900 updates: converged %lld ms after the last"
         " write; stale skips on the survivors since: %.0f\n",
         (long long)conv, stale2 - surv0);

  /* no event published twice by the two relays */
  if (!wt_wait_until(outbox_empty, &e, 60000))
    fail_msg("the customer outbox did not drain");
  double p0 = published(&cust[0]), p1 = published(&cust[1]);
  printf("[ multi    ] relays published %.0f + %.0f events (%lld written)\n", p0, p1, events);
  assert_true(p0 > 0 && p1 > 0);
  assert_true(p0 + p1 == (double)events);
  json_t *seen = json_object();
  long long msgs = 0;
  e2e_event ev;
  while (e2e_next_event(&e, TAP, 2000, &ev)) {
    msgs++;
    if (json_object_get(seen, ev.message_id))
      fail_msg("event %s published twice", ev.message_id);
    json_object_set_new(seen, ev.message_id, json_true());
    e2e_event_free(&ev);
  }
  assert_int_equal(msgs, events);
  json_decref(seen);
  json_decref(ids);

  for (int i = 0; i < 3; i += 2)
    assert_int_equal(e2e_stop(&ord[i]), 0);
  e.order.pid = 0;
  assert_int_equal(e2e_stop(&cust[1]), 0);
  assert_int_equal(e2e_stop(&cust[0]), 0);
  e.customer.pid = 0;
  e2e_done(&e);
}

/* Without partitions: two order-service instances compete on one queue. The view
 * converges; events of one customer may be processed by both at once, and then the
 * older is skipped as stale (reported). */
static void instances_one_queue(void **state) {
  (void)state;
  e2e e;
  e2e_init(&e, "onequeue");
  dk_proc cust[2];
  e2e_start_customer(&e, NULL);
  cust[0] = e.customer;
  e2e_start(&e, &cust[1], "customer", NULL, true);
  dk_proc ord[2];
  for (int i = 0; i < 2; i++)
    e2e_start(&e, &ord[i], "order", NULL, true);
  e.order = ord[0];
  json_t *ids = e2e_create_many(&e, "one", 200, 4);
  e2e_wait_converged(&e, 120000);
  int64_t t0 = wt_now_ms();
  patch_many(cust, ids, 900, "compete");
  int64_t conv = e2e_wait_converged(&e, 120000);
  double a0 = consumed(&ord[0], "applied"), a1 = consumed(&ord[1], "applied");
  double stale = consumed(&ord[0], "stale") + consumed(&ord[1], "stale");
  printf("[ onequeue ] 900 updates: view equal to the source %lld ms after the last write"
         " (%lld ms in all); applied %.0f + %.0f, stale %.0f\n",
         (long long)conv, (long long)(wt_now_ms() - t0), a0, a1, stale);
  assert_true(a0 > 0 && a1 > 0); /* both instances work */
  json_decref(ids);
  for (int i = 0; i < 2; i++)
    assert_int_equal(e2e_stop(&ord[i]), 0);
  e.order.pid = 0;
  assert_int_equal(e2e_stop(&cust[1]), 0);
  assert_int_equal(e2e_stop(&cust[0]), 0);
  e.customer.pid = 0;
  e2e_done(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(instances),
      cmocka_unit_test(instances_one_queue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
