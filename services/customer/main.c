/* customer-service: owns customers. REST API -> customers table + outbox in one
 * transaction -> relay thread -> RabbitMQ exchange customer.events. Also serves the
 * bulk catch-up API, reconciliation checksums and snapshots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "store.h"

#include "customer/v1/customer.warren.h"

typedef struct config {
  wr_service_std std;
  const char *snapshot_interval, *snapshot_batch, *buckets, *log_max_age, *log_max_bytes;
} config;

static void *snapshot_loop(void *arg) {
  app *a = arg;
  while (!a->stopping) {
    if (wr_sleep_ms(a->snapshot_interval_s * 1000u, &a->stopping) != 0)
      break;
    wr_err err = {0};
    if (snapshot_run(a, NULL, &err) < 0 && !a->stopping)
      wr_log_error(NULL, "periodic snapshot failed: %s", err.msg);
  }
  return NULL;
}

int main(int argc, char **argv) {
  wr_signals_block();
  config cf = {0};
  wr_option opts[WR_SERVICE_STD_N + 5];
  wr_service_std_options(&cf.std, "the customer database", "127.0.0.1:8081", opts);
  wr_option extra[] = {
      {"snapshot-interval", "WARREN_SNAPSHOT_INTERVAL", "0",
       "seconds between periodic snapshots (0: off)", &cf.snapshot_interval, false, false},
      {"snapshot-batch", "WARREN_SNAPSHOT_BATCH", "500", "customers per snapshot transaction",
       &cf.snapshot_batch, false, false},
      {"buckets", "WARREN_RECONCILE_BUCKETS", "64", "reconciliation checksum buckets", &cf.buckets,
       false, false},
      {"event-log-max-age", "WARREN_EVENT_LOG_MAX_AGE", NULL,
       "keep every published event in the stream customer.events.log for this long (e.g. "
       "7D, 12h; unset: no log) so consumers can replay it",
       &cf.log_max_age, false, false},
      {"event-log-max-bytes", "WARREN_EVENT_LOG_MAX_BYTES", "1073741824",
       "size limit of customer.events.log (bytes; the oldest segments go first)", &cf.log_max_bytes,
       false, false},
  };
  memcpy(opts + WR_SERVICE_STD_N, extra, sizeof extra);
  wr_err err = {0};
  int rc = wr_options_parse("customer-service",
                            "customer-service: owns customers and publishes their events", opts,
                            sizeof opts / sizeof opts[0], argc, argv, &err);
  if (rc == 1)
    return 0;
  unsigned batch = 500, buckets = 64, interval = 0;
  if (rc == 0)
    rc = wr_option_uint("snapshot-interval", cf.snapshot_interval, 0, 7 * 86400, &interval, &err);
  if (rc == 0)
    rc = wr_option_uint("snapshot-batch", cf.snapshot_batch, 1, 10000, &batch, &err);
  if (rc == 0)
    rc = wr_option_uint("buckets", cf.buckets, 1, WR_SYNC_BUCKETS_MAX, &buckets, &err);
  long long log_bytes = 0;
  if (rc == 0) {
    char *end;
    log_bytes = strtoll(cf.log_max_bytes, &end, 10);
    if (*end || end == cf.log_max_bytes || log_bytes < 1024 * 1024)
      rc = wr_err_set(&err, WR_EINVAL, "--event-log-max-bytes must be at least 1048576");
  }
  if (rc == 0 && cf.log_max_age && !wr_topology_max_age_valid(cf.log_max_age))
    rc = wr_err_set(&err, WR_EINVAL,
                    "--event-log-max-age must be a number and a unit (Y, M, D, h, m or s)");
  if (rc == 0)
    rc = wr_service_std_apply(&cf.std, "customer", &err);
  if (rc) {
    fprintf(stderr, "customer-service: %s\n", err.msg);
    return 2;
  }
  app a = {.service = "customer",
           .snapshot_batch = batch,
           .buckets = buckets,
           .snapshot_interval_s = interval};
  pthread_mutex_init(&a.snapshot_mu, NULL);
  snprintf(a.instance, sizeof a.instance, "%s", cf.std.instance);

  char redacted[512];
  wr_redact_url(cf.std.database_url, redacted, sizeof redacted);
  wr_topology *topo = NULL;
  if (wr_metrics_new(&a.metrics) != 0) {
    wr_log_error(NULL, "out of memory");
    goto fail;
  }
  a.snapshots_emitted = wr_metrics_counter(a.metrics, "customer_snapshot_events_total",
                                           "CustomerSnapshot events emitted", NULL);

  /* Schema first (runtime, then ours), then the pool; its sessions skip the outbox
   * NOTIFY: every handler that appends to the outbox wakes the relay below after its
   * COMMIT (wr_service_db_open). */
  rc = wr_service_db_open(&cf.std, "customer-service", store_migrate, &a.pool, &err);
  if (rc) {
    wr_log_error(NULL, "database %s: %s", redacted, err.msg);
    goto fail;
  }

  /* The relay declares the domain exchange on every connect, and the retained log
   * (a stream bound to it) when one is configured. */
  rc = wr_topology_new(&topo);
  if (rc == 0)
    rc = wr_topology_exchange(topo, CUSTOMER_V1_EXCHANGE, "topic");
  if (rc == 0 && cf.log_max_age) {
    wr_queue_args log_args = {
        .stream = true, .stream_max_age = cf.log_max_age, .stream_max_bytes = log_bytes};
    rc = wr_topology_queue(topo, CUSTOMER_V1_EXCHANGE ".log", &log_args);
    if (rc == 0)
      rc = wr_topology_bind(topo, CUSTOMER_V1_EXCHANGE ".log", CUSTOMER_V1_EXCHANGE, "#");
  }
  if (rc) {
    wr_log_error(NULL, "topology: %s", wr_strerror(rc));
    goto fail;
  }
  wr_conn_opts amqp = WR_CONN_OPTS_INIT;
  amqp.urls = cf.std.amqp_url;
  amqp.cacert = cf.std.amqp_cacert;
  amqp.connection_name = "customer-service relay";
  wr_relay_opts ro = WR_RELAY_OPTS_INIT;
  ro.database_url = cf.std.database_url;
  ro.amqp = &amqp;
  ro.topology = topo;
  ro.metrics = a.metrics;
  ro.name = "customer";
  rc = wr_relay_new(&ro, &a.relay, &err);
  if (rc == 0)
    rc = wr_relay_start(a.relay);
  if (rc) {
    wr_log_error(NULL, "relay: %s", err.msg);
    goto fail;
  }

  wr_http_opts ho = WR_HTTP_OPTS_INIT;
  wr_service_http_opts(&cf.std, &ho);
  ho.routes = customer_routes;
  ho.n_routes = customer_routes_n;
  ho.user = &a;
  ho.metrics = a.metrics;
  wr_http_server *srv = NULL;
  rc = wr_http_server_start(&ho, &srv, &err);
  if (rc) {
    wr_log_error(NULL, "http: %s", err.msg);
    goto fail;
  }
  pthread_t snap;
  bool snap_started = interval > 0 && pthread_create(&snap, NULL, snapshot_loop, &a) == 0;
  wr_log_info(NULL, "customer-service listening on %s (port %u), database %s", cf.std.http_addr,
              wr_http_server_port(srv), redacted);

  int sig = wr_signals_wait(0);
  wr_log_info(NULL, "signal %d: shutting down", sig);
  a.stopping = 1;
  wr_http_server_stop(srv); /* finishes requests in flight */
  if (snap_started)
    pthread_join(snap, NULL);
  if (wr_relay_stop(a.relay, 10000) != 0)
    wr_log_warn(NULL, "outbox not drained at shutdown: rows stay for the next start");
  wr_relay_free(a.relay);
  wr_topology_free(topo);
  wr_db_pool_free(a.pool);
  wr_metrics_free(a.metrics);
  pthread_mutex_destroy(&a.snapshot_mu);
  wr_log_info(NULL, "stopped");
  return 0;

fail: /* a start that failed: free what was built (clean under LeakSanitizer) */
  wr_relay_free(a.relay);
  wr_topology_free(topo);
  wr_db_pool_free(a.pool);
  wr_metrics_free(a.metrics);
  pthread_mutex_destroy(&a.snapshot_mu);
  return 1;
}
