/* order-service: keeps a local customer view in sync with the customer service and
 * owns orders.
 *
 * Start: migrate -> HTTP (health answers, ready says no) -> declare and bind the
 * consumer queue -> catch-up through the bulk API -> consume. The order matters:
 * events published while the catch-up runs wait in the bound queue, and the version
 * guard sorts out whichever path delivers a version second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "view.h"

#include "customer/v1/customer.warren.h"
#include "order/v1/order.warren.h"

typedef struct config {
  wr_service_std std;
  const char *customer_url, *reconcile_interval, *buckets, *page_size;
  const char *queue_type, *prefetch, *batch, *retry_delays, *delivery_limit, *log_max_age;
  const char *partitions, *rebalance_interval, *replay_from, *replay_stream;
} config;

static unsigned reconcile_interval_s;

static void *reconcile_loop(void *arg) {
  app *a = arg;
  while (!a->stopping) {
    if (wr_sleep_ms(reconcile_interval_s * 1000u, &a->stopping) != 0)
      break;
    reconcile_result res;
    wr_err err = {0};
    if (reconcile_run(a, NULL, &res, &err) != 0 && !a->stopping)
      wr_log_warn(NULL, "periodic reconciliation failed: %s", err.msg);
  }
  return NULL;
}

/* "1000,5000,30000" -> delays (ms). Returns the count or -1. */
static int parse_delays(const char *s, unsigned *out, int max) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p || v == 0 || v > 86400000UL || n >= max || (*end && *end != ','))
      return -1;
    out[n++] = (unsigned)v;
    p = *end ? end + 1 : end;
  }
  return n;
}

/* Retries fn until it succeeds or a signal arrives (returns the signal, or 0). */
static int retry_until_done(const char *what, int (*fn)(app *, wr_err *), app *a) {
  for (unsigned attempt = 0;; attempt++) {
    wr_err err = {0};
    int rc = fn(a, &err);
    if (rc >= 0)
      return 0;
    unsigned delay = wr_backoff_ms(attempt, 500, 15000);
    wr_log_warn(NULL, "%s failed (%s), retrying in %u ms", what, err.msg, delay);
    int sig = wr_signals_wait(delay);
    if (sig)
      return sig;
  }
}

static int declare_step(app *a, wr_err *err) {
  return wr_consumer_declare(a->consumer, err);
}

/* --replay-from: the view from the retained log instead of the bulk API. Waits for the
 * replay while watching for signals. Returns 0 (finished), the signal, or -1 (failed:
 * logged; a missing log or a bad position does not get better by retrying). */
static int startup_replay(app *a, const char *stream, const char *from) {
  wr_err err = {0};
  if (replay_start(a, stream, from, false, &err) != 0) {
    wr_log_error(NULL, "replay of %s from %s: %s", stream, from, err.msg);
    return -1;
  }
  for (;;) {
    int sig = wr_signals_wait(200);
    bool running = false;
    int rc = replay_poll(a, &running);
    if (sig) {
      replay_stop(a);
      return sig;
    }
    if (!running) {
      if (rc != 0)
        wr_log_error(NULL, "replay of %s from %s failed: %s", stream, from, wr_strerror(rc));
      return rc ? -1 : 0;
    }
  }
}
static int catchup_step(app *a, wr_err *err) {
  long n = catchup_run(a, err);
  return n < 0 ? (int)n : 0;
}

int main(int argc, char **argv) {
  wr_signals_block();
  config cf = {0};
  wr_option opts[WR_SERVICE_STD_N + 14];
  wr_service_std_options(&cf.std, "the order database", "127.0.0.1:8082", opts);
  wr_option extra[] = {
      {"customer-service-url", "CUSTOMER_SERVICE_URL", "http://127.0.0.1:8081",
       "base URL of the customer service (catch-up, reconciliation)", &cf.customer_url, false,
       false},
      {"reconcile-interval", "WARREN_RECONCILE_INTERVAL", "300",
       "seconds between reconciliations (0: only on POST /admin/reconcile)", &cf.reconcile_interval,
       false, false},
      {"buckets", "WARREN_RECONCILE_BUCKETS", "64", "reconciliation checksum buckets", &cf.buckets,
       false, false},
      {"catchup-page-size", "WARREN_CATCHUP_PAGE_SIZE", "1000", "customers per catch-up page",
       &cf.page_size, false, false},
      {"queue-type", "WARREN_QUEUE_TYPE", "quorum", "quorum or classic", &cf.queue_type, false,
       false},
      /* 1000 per transaction, twice that in flight: measured by bench/run against 200
       * per transaction (docs/PERFORMANCE.md) */
      {"prefetch", "WARREN_PREFETCH", "2000", "consumer prefetch", &cf.prefetch, false, false},
      {"batch-size", "WARREN_BATCH_SIZE", "1000", "deliveries per transaction", &cf.batch, false,
       false},
      {"retry-delays", "WARREN_RETRY_DELAYS", "1000,5000,30000,120000",
       "retry tiers in ms, comma-separated", &cf.retry_delays, false, false},
      {"delivery-limit", "WARREN_DELIVERY_LIMIT", "20",
       "quorum x-delivery-limit (crash-loop guard; 0: none)", &cf.delivery_limit, false, false},
      {"event-log-max-age", "WARREN_EVENT_LOG_MAX_AGE", "7D",
       "retention of the order.events.log stream", &cf.log_max_age, false, false},
      {"partitions", "WARREN_PARTITIONS", "0",
       "consume as a partitioned group of N queues (0: one queue; docs/SCALING.md)", &cf.partitions,
       false, false},
      {"rebalance-interval", "WARREN_REBALANCE_INTERVAL_MS", "5000",
       "partitioned: ms between checks that this instance holds no more than its share "
       "(0: never hand partitions over)",
       &cf.rebalance_interval, false, false},
      {"replay-from", "WARREN_REPLAY_FROM", NULL,
       "at start, load the view by replaying the customer event log from first, last, "
       "next, an offset or an RFC 3339 time, instead of the bulk catch-up",
       &cf.replay_from, false, false},
      {"replay-stream", "WARREN_REPLAY_STREAM", CUSTOMER_V1_EXCHANGE ".log",
       "the customer event log (stream queue) for replays", &cf.replay_stream, false, false},
  };
  memcpy(opts + WR_SERVICE_STD_N, extra, sizeof extra);
  wr_err err = {0};
  int rc = wr_options_parse("order-service",
                            "order-service: keeps a customer view in sync and owns orders", opts,
                            sizeof opts / sizeof opts[0], argc, argv, &err);
  if (rc == 1)
    return 0;
  unsigned buckets = 64, page = 1000, prefetch = 2000, batch = 1000, limit = 20, partitions = 0,
           rebalance_ms = 5000;
  unsigned delays[8];
  int n_delays = 0;
  if (rc == 0)
    rc = wr_option_uint("reconcile-interval", cf.reconcile_interval, 0, 7 * 86400,
                        &reconcile_interval_s, &err);
  if (rc == 0)
    rc = wr_option_uint("buckets", cf.buckets, 1, WR_SYNC_BUCKETS_MAX, &buckets, &err);
  if (rc == 0)
    rc = wr_option_uint("catchup-page-size", cf.page_size, 1, 1000, &page, &err);
  if (rc == 0)
    rc = wr_option_uint("prefetch", cf.prefetch, 1, 65535, &prefetch, &err);
  if (rc == 0)
    rc = wr_option_uint("batch-size", cf.batch, 1, 10000, &batch, &err);
  if (rc == 0)
    rc = wr_option_uint("delivery-limit", cf.delivery_limit, 0, 100000, &limit, &err);
  if (rc == 0)
    rc = wr_option_uint("partitions", cf.partitions, 0, WR_PARTITIONS_MAX, &partitions, &err);
  if (rc == 0)
    rc = wr_option_uint("rebalance-interval", cf.rebalance_interval, 0, 3600000, &rebalance_ms,
                        &err);
  if (rc == 0 && (n_delays = parse_delays(cf.retry_delays, delays, 8)) < 0)
    rc = wr_err_set(&err, WR_EINVAL, "--retry-delays must be up to 8 positive ms values");
  if (rc == 0 && strcmp(cf.queue_type, "quorum") && strcmp(cf.queue_type, "classic"))
    rc = wr_err_set(&err, WR_EINVAL, "--queue-type must be quorum or classic");
  if (rc == 0 && !wr_topology_max_age_valid(cf.log_max_age))
    rc = wr_err_set(&err, WR_EINVAL,
                    "--event-log-max-age must be a number and a unit (Y, M, D, h, m or s)");
  if (rc == 0 && strncmp(cf.customer_url, "http://", 7) != 0)
    rc = wr_err_set(&err, WR_EINVAL, "--customer-service-url must be an http:// URL");
  if (rc == 0)
    rc = wr_service_std_apply(&cf.std, "order", &err);
  if (rc) {
    fprintf(stderr, "order-service: %s\n", err.msg);
    return 2;
  }

  app a = {.service = "order", .buckets = buckets, .page_size = page};
  pthread_mutex_init(&a.reconcile_mu, NULL);
  snprintf(a.instance, sizeof a.instance, "%s", cf.std.instance);
  /* trailing slashes would double in "/customers" paths */
  char *cu = strdup(cf.customer_url);
  while (cu && strlen(cu) > 7 && cu[strlen(cu) - 1] == '/')
    cu[strlen(cu) - 1] = '\0';
  a.customer_url = cu;
  char redacted[512];
  wr_redact_url(cf.std.database_url, redacted, sizeof redacted);
  wr_topology *topo = NULL;
  wr_http_server *srv = NULL;
  if (!cu || wr_metrics_new(&a.metrics) != 0) {
    wr_log_error(NULL, "out of memory");
    goto fail;
  }
  a.reconcile_found = wr_metrics_counter(a.metrics, "order_reconcile_discrepancies_total",
                                         "view rows found different from the source", NULL);
  a.reconcile_fixed = wr_metrics_counter(a.metrics, "order_reconcile_repairs_total",
                                         "view rows repaired by reconciliation", NULL);
  a.reconcile_retries =
      wr_metrics_counter(a.metrics, "order_reconcile_retries_total",
                         "row repairs rolled back by a deadlock or serialization failure with a "
                         "concurrent writer and run again",
                         NULL);
  a.catchup_items = wr_metrics_counter(a.metrics, "order_catchup_items_total",
                                       "customers read through the bulk catch-up API", NULL);

  /* Schema first (runtime, then ours), then the pool; POST /orders wakes the relay
   * after its COMMIT, so the pool's sessions skip the outbox NOTIFY. */
  rc = wr_service_db_open(&cf.std, "order-service", view_migrate, &a.pool, &err);
  if (rc) {
    wr_log_error(NULL, "database %s: %s", redacted, err.msg);
    goto fail;
  }

  wr_conn_opts amqp = WR_CONN_OPTS_INIT;
  amqp.urls = cf.std.amqp_url;
  amqp.cacert = cf.std.amqp_cacert;

  /* Publisher side: order.events plus a retained log, so OrderPlaced is always
   * routable and can be replayed by future consumers. */
  wr_queue_args log_args = {
      .stream = true, .stream_max_age = cf.log_max_age, .stream_max_bytes = 1LL << 30};
  rc = wr_topology_new(&topo);
  if (rc == 0)
    rc = wr_topology_exchange(topo, ORDER_V1_EXCHANGE, "topic");
  if (rc == 0)
    rc = wr_topology_queue(topo, ORDER_V1_EXCHANGE ".log", &log_args);
  if (rc == 0)
    rc = wr_topology_bind(topo, ORDER_V1_EXCHANGE ".log", ORDER_V1_EXCHANGE, "#");
  if (rc) {
    wr_log_error(NULL, "topology: %s", wr_strerror(rc));
    goto fail;
  }
  wr_conn_opts relay_amqp = amqp;
  relay_amqp.connection_name = "order-service relay";
  wr_relay_opts ro = WR_RELAY_OPTS_INIT;
  ro.database_url = cf.std.database_url;
  ro.amqp = &relay_amqp;
  ro.topology = topo;
  ro.metrics = a.metrics;
  ro.name = "order";
  if ((rc = wr_relay_new(&ro, &a.relay, &err)) != 0 || (rc = wr_relay_start(a.relay)) != 0) {
    wr_log_error(NULL, "relay: %s", err.msg);
    goto fail;
  }

  wr_conn_opts cons_amqp = amqp;
  cons_amqp.connection_name = "order-service consumer";
  wr_consumer_opts co = WR_CONSUMER_OPTS_INIT;
  co.queue = VIEW_SCOPE;
  co.database_url = cf.std.database_url;
  co.amqp = &cons_amqp;
  co.queue_type = strcmp(cf.queue_type, "classic") == 0 ? WR_QUEUE_CLASSIC : WR_QUEUE_QUORUM;
  co.prefetch = (uint16_t)prefetch;
  co.batch_size = batch;
  co.retry_delays_ms = delays;
  co.n_retry_delays = (size_t)n_delays;
  co.delivery_limit = limit;
  co.source_service = a.service;
  co.source_instance = a.instance;
  co.metrics = a.metrics;
  co.partitions = partitions;
  co.rebalance_interval_ms = rebalance_ms;
  a.consumer_opts = &co;
  a.replay_stream = cf.replay_stream;
  if (replay_init(&a) != 0) {
    wr_log_error(NULL, "out of memory");
    goto fail;
  }
  if ((rc = wr_consumer_new(&co, &a.consumer, &err)) != 0 ||
      (rc = handlers_subscribe(&a, a.consumer)) != 0) {
    wr_log_error(NULL, "consumer: %s", rc == WR_EINVAL ? err.msg : wr_strerror(rc));
    goto fail;
  }

  wr_http_opts ho = WR_HTTP_OPTS_INIT;
  wr_service_http_opts(&cf.std, &ho);
  ho.routes = order_routes;
  ho.n_routes = order_routes_n;
  ho.user = &a;
  ho.metrics = a.metrics;
  if ((rc = wr_http_server_start(&ho, &srv, &err)) != 0) {
    wr_log_error(NULL, "http: %s", err.msg);
    goto fail;
  }
  wr_log_info(NULL, "order-service listening on %s (port %u), database %s, customer service %s",
              cf.std.http_addr, wr_http_server_port(srv), redacted, a.customer_url);

  int sig = retry_until_done("declaring the consumer queue", declare_step, &a);
  if (!sig && cf.replay_from)
    sig = startup_replay(&a, cf.replay_stream, cf.replay_from);
  else if (!sig)
    sig = retry_until_done("catch-up", catchup_step, &a);
  pthread_t rec;
  bool rec_started = false;
  if (!sig) {
    /* started before it counts as caught up: an admin replay (allowed from then on)
     * pauses a running consumer, never races its start */
    if ((rc = wr_consumer_start(a.consumer)) != 0) {
      wr_log_error(NULL, "consumer start: %s", wr_strerror(rc));
      sig = -1;
    }
    a.caught_up = 1;
    rec_started =
        !sig && reconcile_interval_s > 0 && pthread_create(&rec, NULL, reconcile_loop, &a) == 0;
  }
  if (!sig)
    sig = wr_signals_wait(0);
  wr_log_info(NULL, "signal %d: shutting down", sig);
  a.stopping = 1;
  wr_http_server_stop(srv);
  if (rec_started)
    pthread_join(rec, NULL);
  replay_free(&a); /* before the live consumer: a finishing replay may restart it */
  wr_consumer_stop(a.consumer);
  wr_consumer_join(a.consumer); /* commits and acks the batch in flight */
  wr_consumer_free(a.consumer);
  if (wr_relay_stop(a.relay, 10000) != 0)
    wr_log_warn(NULL, "outbox not drained at shutdown: rows stay for the next start");
  wr_relay_free(a.relay);
  wr_topology_free(topo);
  wr_db_pool_free(a.pool);
  wr_metrics_free(a.metrics);
  pthread_mutex_destroy(&a.reconcile_mu);
  free(cu);
  wr_log_info(NULL, "stopped");
  return sig > 0 ? 0 : 1;

fail: /* a start that failed: free what was built (clean under LeakSanitizer) */
  replay_free(&a);
  wr_consumer_free(a.consumer);
  wr_relay_free(a.relay);
  wr_topology_free(topo);
  wr_db_pool_free(a.pool);
  wr_metrics_free(a.metrics);
  pthread_mutex_destroy(&a.reconcile_mu);
  free(cu);
  return 1;
}
