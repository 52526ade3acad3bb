/* replay.c: the customer view from the retained log.
 *
 * The customer service can keep every event it publishes in a stream queue
 * (customer.events.log, option --event-log-max-age). A replay runs the order
 * service's own handlers over it with the live consumer's inbox and version guard
 * (wr_consumer_opts.stream): events already applied are skipped as duplicates or stale,
 * so a replay can rebuild an empty view, repair a damaged one, or be repeated.
 *
 * Two ways in:
 *  - at start, --replay-from replaces the bulk catch-up (the view is loaded from the
 *    log alone, the customer service's API is not called); the live queue is declared
 *    first, so nothing published meanwhile is missed;
 *  - at run time, POST /admin/replay {"from": ..., "stream": ...} (what `warren
 *    replay` calls) runs one in the background: the live consumer pauses (its events
 *    wait in the queue; other instances of a partitioned group take its partitions
 *    meanwhile), the replay runs to the end of the log, the live consumer resumes.
 *    Pausing keeps one consumer at a time on the handlers' per-process state and
 *    avoids racing the live consumer on the same aggregates. GET /admin/replay tells
 *    how the last one went.
 * One replay at a time per process. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "view.h"

typedef enum job_status { JOB_IDLE, JOB_RUNNING, JOB_FINISHED, JOB_FAILED } job_status;

struct replay_job {
  pthread_mutex_t mu;
  job_status status;
  bool thread_live; /* a thread to join */
  pthread_t thread;
  wr_consumer *c;  /* the replay consumer while it runs (under mu) */
  bool pause_live; /* stop the live consumer during the run (it was running) */
  char stream[256];
  char from[64];
  int result;
  wr_consumer_stats stats;
  char started[WR_RFC3339_STRLEN], finished[WR_RFC3339_STRLEN];
  char error[300];
};

static void now_rfc3339(char out[WR_RFC3339_STRLEN]) {
  int64_t ns = wr_now_ns();
  if (wr_rfc3339_format(ns / 1000000000, (int32_t)(ns % 1000000000), out) != 0)
    out[0] = '\0';
}

int replay_init(app *a) {
  a->replay = calloc(1, sizeof *a->replay);
  if (!a->replay)
    return WR_ENOMEM;
  pthread_mutex_init(&a->replay->mu, NULL);
  return 0;
}

static void *job_main(void *arg) {
  app *a = arg;
  struct replay_job *j = a->replay;
  bool was_running = false;
  if (j->pause_live) {
    wr_consumer_stop(a->consumer);
    /* commits and acks the batch in flight; WR_ESTATE: it was not running */
    was_running = wr_consumer_join(a->consumer) != WR_ESTATE;
  }
  int rc = wr_consumer_run(j->c);
  pthread_mutex_lock(&j->mu);
  wr_consumer_stats_get(j->c, &j->stats);
  wr_consumer_free(j->c);
  j->c = NULL;
  j->result = rc;
  j->status = rc == 0 && j->stats.finished ? JOB_FINISHED : JOB_FAILED;
  if (j->status == JOB_FAILED)
    snprintf(j->error, sizeof j->error, "%s", rc ? wr_strerror(rc) : "stopped before the end");
  now_rfc3339(j->finished);
  /* Under mu: replay_stop (shutdown) sets stopping before it joins this thread, so the
   * live consumer is never started again behind its back. */
  if (was_running && !a->stopping && wr_consumer_start(a->consumer) != 0)
    wr_log_error(NULL, "replay: the live consumer could not be started again");
  pthread_mutex_unlock(&j->mu);
  wr_log_info(NULL,
              "replay of %s from %s %s: applied=%" PRIu64 " duplicates=%" PRIu64 " stale=%" PRIu64
              " retried=%" PRIu64 " offset=%" PRId64,
              j->stream, j->from, j->status == JOB_FINISHED ? "finished" : "failed",
              j->stats.applied, j->stats.duplicates, j->stats.stale, j->stats.retried,
              j->stats.stream_offset);
  return NULL;
}

int replay_start(app *a, const char *stream, const char *from, bool pause_live, wr_err *err) {
  struct replay_job *j = a->replay;
  if (!j || !a->consumer_opts)
    return wr_err_set(err, WR_ESTATE, "replay: not initialised");
  if (!stream || !*stream || strlen(stream) >= sizeof j->stream || !from || !*from ||
      strlen(from) >= sizeof j->from)
    return wr_err_set(err, WR_EINVAL, "replay: stream (1..255 bytes) and from (1..63) required");
  pthread_mutex_lock(&j->mu);
  if (j->status == JOB_RUNNING) {
    pthread_mutex_unlock(&j->mu);
    return wr_err_set(err, WR_ESTATE, "a replay is already running");
  }
  if (j->thread_live) { /* the previous one has finished: reap its thread */
    pthread_join(j->thread, NULL);
    j->thread_live = false;
  }
  wr_conn_opts amqp = *a->consumer_opts->amqp;
  amqp.connection_name = "order-service replay";
  wr_consumer_opts o = *a->consumer_opts;
  o.amqp = &amqp;
  o.stream = stream;
  o.stream_from = from;
  o.metrics = NULL;                  /* the live consumer owns the consumer metrics */
  o.unknown_types = WR_UNKNOWN_SKIP; /* the log may hold types this service ignores */
  o.inbox_cleanup_interval_s = 0;    /* the live consumer cleans the shared inbox */
  wr_consumer *c = NULL;
  int rc = wr_consumer_new(&o, &c, err);
  if (rc == 0)
    rc = handlers_subscribe(a, c);
  if (rc != 0) {
    wr_consumer_free(c);
    pthread_mutex_unlock(&j->mu);
    if (rc == WR_EINVAL && strstr(err ? err->msg : "", "stream_from"))
      wr_err_set(err, rc, "\"from\" must be first, last, next, an offset or an RFC 3339 time");
    else if (rc == WR_EINVAL)
      wr_err_set(err, rc, "\"stream\" is not a valid queue name");
    else
      wr_err_set(err, rc, "replay: %s", wr_strerror(rc));
    return rc;
  }
  j->c = c;
  j->pause_live = pause_live;
  snprintf(j->stream, sizeof j->stream, "%s", stream);
  snprintf(j->from, sizeof j->from, "%s", from);
  memset(&j->stats, 0, sizeof j->stats);
  j->stats.stream_offset = j->stats.stream_end = -1;
  j->result = 0;
  j->error[0] = j->finished[0] = '\0';
  now_rfc3339(j->started);
  j->status = JOB_RUNNING;
  if (pthread_create(&j->thread, NULL, job_main, a) != 0) {
    j->status = JOB_IDLE;
    j->c = NULL;
    pthread_mutex_unlock(&j->mu);
    wr_consumer_free(c);
    return wr_err_set(err, WR_ENOMEM, "replay: cannot start a thread");
  }
  j->thread_live = true;
  pthread_mutex_unlock(&j->mu);
  wr_log_info(NULL, "replay of %s from %s started", stream, from);
  return 0;
}

int replay_poll(app *a, bool *running) {
  struct replay_job *j = a->replay;
  pthread_mutex_lock(&j->mu);
  *running = j->status == JOB_RUNNING;
  int rc = j->status == JOB_FAILED ? (j->result ? j->result : WR_ESTOPPED) : 0;
  pthread_mutex_unlock(&j->mu);
  return rc;
}

void replay_stop(app *a) {
  struct replay_job *j = a->replay;
  if (!j)
    return;
  pthread_mutex_lock(&j->mu);
  if (j->c)
    wr_consumer_stop(j->c);
  bool join = j->thread_live;
  j->thread_live = false;
  pthread_mutex_unlock(&j->mu);
  if (join)
    pthread_join(j->thread, NULL);
}

void replay_free(app *a) {
  if (!a->replay)
    return;
  replay_stop(a);
  pthread_mutex_destroy(&a->replay->mu);
  free(a->replay);
  a->replay = NULL;
}

/* ---- admin endpoints ---------------------------------------------------------- */

static json_t *status_json(struct replay_job *j) {
  static const char *const names[] = {"idle", "running", "finished", "failed"};
  wr_consumer_stats s = j->stats;
  if (j->status == JOB_RUNNING && j->c)
    wr_consumer_stats_get(j->c, &s);
  json_t *o = json_pack("{s:s}", "status", names[j->status]);
  if (!o || j->status == JOB_IDLE)
    return o;
  json_object_set_new(o, "stream", json_string(j->stream));
  json_object_set_new(o, "from", json_string(j->from));
  json_object_set_new(o, "started_at", json_string(j->started));
  if (j->finished[0])
    json_object_set_new(o, "finished_at", json_string(j->finished));
  json_object_set_new(o, "applied", json_integer((json_int_t)s.applied));
  json_object_set_new(o, "duplicates", json_integer((json_int_t)s.duplicates));
  json_object_set_new(o, "stale", json_integer((json_int_t)s.stale));
  json_object_set_new(o, "retried", json_integer((json_int_t)s.retried));
  json_object_set_new(o, "dead_lettered", json_integer((json_int_t)s.dead_lettered));
  json_object_set_new(o, "offset", json_integer((json_int_t)s.stream_offset));
  json_object_set_new(o, "end", json_integer((json_int_t)s.stream_end));
  if (j->error[0])
    json_object_set_new(o, "error", json_string(j->error));
  return o;
}

void replay_http_get(wr_http_req *req, void *user) {
  app *a = user;
  struct replay_job *j = a->replay;
  pthread_mutex_lock(&j->mu);
  json_t *o = status_json(j);
  pthread_mutex_unlock(&j->mu);
  if (!o) {
    wr_http_reply_error(req, 500, "internal", "out of memory");
    return;
  }
  wr_http_reply_json(req, 200, o);
}

/* POST /admin/replay {"from": "first"|"last"|"next"|"<offset>"|"<RFC 3339>",
 * "stream": "customer.events.log"}: 202 with the status, 409 while one runs, 422 for
 * a bad position. The outcome: GET /admin/replay. */
void replay_http_post(wr_http_req *req, void *user) {
  app *a = user;
  json_t *body = wr_http_req_json(req);
  static const char *const allowed[] = {"from", "stream", NULL};
  const char *from = NULL, *stream = NULL;
  if (!body) {
    wr_http_reply_error(req, 422, "missing_field", "field \"from\" is required");
    return;
  }
  if (wr_body_only(req, body, allowed) < 0 ||
      wr_body_string(req, body, "from", true, 1, 63, &from) < 0 ||
      wr_body_string(req, body, "stream", false, 1, 255, &stream) < 0)
    return;
  if (!a->caught_up) {
    /* the startup load (catch-up or replay) is still running */
    wr_http_reply_error(req, 503, "not_ready", "the service is still loading its view");
    return;
  }
  wr_err err = {0};
  int rc = replay_start(a, stream ? stream : a->replay_stream, from, true, &err);
  if (rc == WR_ESTATE) {
    wr_http_reply_error(req, 409, "replay_running", "%s", err.msg);
    return;
  }
  if (rc == WR_EINVAL) {
    wr_http_reply_error(req, 422, "invalid_value", "%s", err.msg);
    return;
  }
  if (rc) {
    wr_http_reply_error(req, 500, "internal", "%s", err.msg);
    return;
  }
  pthread_mutex_lock(&a->replay->mu);
  json_t *o = status_json(a->replay);
  pthread_mutex_unlock(&a->replay->mu);
  if (!o) {
    wr_http_reply_error(req, 500, "internal", "out of memory");
    return;
  }
  wr_http_reply_json(req, 202, o);
}
