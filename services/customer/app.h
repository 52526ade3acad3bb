/* app.h: the customer service's process-wide state, shared by its modules. */
#ifndef CUSTOMER_APP_H
#define CUSTOMER_APP_H

#include <pthread.h>
#include <warren/warren.h>

typedef struct app {
  wr_db_pool *pool; /* HTTP handlers and the snapshot job take connections here */
  wr_metrics *metrics;
  wr_relay *relay;
  const char *service;          /* "customer" */
  char instance[96];            /* hostname:pid */
  unsigned snapshot_batch;      /* customers per snapshot transaction */
  unsigned buckets;             /* reconciliation buckets */
  unsigned snapshot_interval_s; /* periodic snapshots (0: off) */
  volatile int stopping;
  pthread_mutex_t snapshot_mu; /* one snapshot run at a time */
  wr_counter *snapshots_emitted;
} app;

/* The HTTP routes (api.c). */
extern const wr_http_route customer_routes[];
extern const size_t customer_routes_n;

/* Emits CustomerSnapshot for every customer, batch by batch (snapshot.c). Returns the
 * number emitted (>= 0) or a WR_E* code. */
long snapshot_run(app *a, const char *correlation_id, wr_err *err);

#endif
