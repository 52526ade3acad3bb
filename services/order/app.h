/* app.h: the order service's process-wide state, shared by its modules. */
#ifndef ORDER_APP_H
#define ORDER_APP_H

#include <pthread.h>
#include <warren/warren.h>

typedef struct app {
  wr_db_pool *pool;
  wr_metrics *metrics;
  wr_consumer *consumer;
  wr_relay *relay;
  const char *service; /* "order" */
  char instance[96];
  const char *customer_url; /* base URL of the customer service */
  unsigned buckets;         /* reconciliation buckets */
  unsigned page_size;       /* catch-up page size */
  volatile int stopping;
  volatile int caught_up;                /* catch-up finished: ready */
  pthread_mutex_t reconcile_mu;          /* one reconciliation at a time */
  const wr_consumer_opts *consumer_opts; /* the live consumer's (a replay reuses them) */
  const char *replay_stream;             /* default stream of POST /admin/replay */
  struct replay_job *replay;             /* replay.c */
  wr_counter *reconcile_found, *reconcile_fixed, *reconcile_retries, *catchup_items;
} app;

/* Customer event handlers (handlers.c): registers them on the consumer. */
int handlers_subscribe(app *a, wr_consumer *c);

/* Catch-up (catchup.c): pages the customer service's bulk API into the view. Full on
 * an empty view, else from the stored watermark. Returns items loaded or <0. */
long catchup_run(app *a, wr_err *err);

/* Reconciliation (reconcile.c). */
typedef struct reconcile_result {
  uint64_t checked; /* customers covered by the compared checksums */
  uint64_t buckets_differing;
  uint64_t found; /* rows whose version differs or that are missing/extra */
  uint64_t fixed;
} reconcile_result;
int reconcile_run(app *a, const char *correlation_id, reconcile_result *out, wr_err *err);

/* Replay from the retained log (replay.c). replay_init allocates the state (0 or
 * WR_ENOMEM). replay_start starts one in the background with the live consumer's
 * options (pause_live: stop the live consumer for the run and start it again after):
 * 0, WR_ESTATE (one is running), WR_EINVAL (stream or from refused, message in err),
 * WR_ENOMEM. replay_poll: *running, and the last run's failure (0 if it finished).
 * replay_stop stops a running one and waits for it; replay_free also frees the state
 * (call both before freeing the live consumer). */
int replay_init(app *a);
int replay_start(app *a, const char *stream, const char *from, bool pause_live, wr_err *err);
int replay_poll(app *a, bool *running);
void replay_stop(app *a);
void replay_free(app *a);
void replay_http_get(wr_http_req *req, void *user);
void replay_http_post(wr_http_req *req, void *user);

extern const wr_http_route order_routes[];
extern const size_t order_routes_n;

#endif
