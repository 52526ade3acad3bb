/* bench.h: what the scenarios of warren-bench share (bench/README in docs/PERFORMANCE.md).
 *
 * warren-bench measures warren against the broker's own ceiling on the same machine, in
 * the same run: every comparison it prints is a ratio of two figures it measured itself.
 * It runs the real services as child processes (demo/devkit.h) against a stack that
 * bench/run brings up, each scenario in its own RabbitMQ vhost and its own databases.
 *
 * Two kinds of output: figures (bx_result: a name, a value, a unit, printed as one table
 * and as `RESULT <name> <value> <unit>` lines) and checks (bx_check: a correctness
 * verdict; any failed check makes the run fail). Figures are never asserted: the
 * machine is shared and noisy. Checks are: a fast wrong answer fails. */
#ifndef WARREN_BENCH_H
#define WARREN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <amqp.h>
#include <libpq-fe.h>

#include <warren/warren.h>

#include "devkit.h"

/* ---- configuration ---------------------------------------------------------------- */

typedef struct bx_sizes {
  unsigned ceiling_n;         /* messages per raw publish/drain */
  unsigned consume_n;         /* pre-loaded events drained by the order service */
  unsigned consume_customers; /* customers those events are spread over */
  unsigned consume_b1_n;      /* events of the batch-size-1 baseline */
  unsigned relay_n;           /* outbox rows */
  unsigned e2e_rates[2];      /* PATCH requests per second */
  unsigned e2e_seconds;       /* per rate */
  unsigned catchup_n;         /* customers loaded through the bulk API */
} bx_sizes;

typedef struct bx_cfg {
  bool quick;
  bx_sizes n;
  char bin_dir[512];      /* where customer-service and order-service are */
  char work_dir[512];     /* service logs */
  char amqp_url[512];     /* first node of the stack, no vhost */
  char mgmt_url[512];     /* management API, http://guest:guest@host:port/ */
  char pg_url[512];       /* maintenance database of the stack */
  const char *queue_type; /* the order service's queue type for the scenarios */
  bool keep;              /* keep vhosts and databases (debugging) */
  char run_id[32];        /* makes vhost and database names unique per run */
} bx_cfg;

extern bx_cfg bx;

/* ---- results and checks ----------------------------------------------------------- */

/* Records a figure. name: "scenario.figure" ([a-z0-9._-]); unit: "msg/s", "ms", ...;
 * note: short text for the table (may be NULL). */
void bx_result(const char *name, double value, const char *unit, const char *note);
/* "met" / "NOT met" for a target note; "not judged (quick run)" in a quick run, whose
 * small sizes make rates meaningless. */
const char *bx_verdict(bool met);
/* The value of a figure recorded earlier in this run, or -1. */
double bx_result_get(const char *name);
/* Records a correctness verdict; returns ok. Failed checks make the run fail. */
bool bx_check(const char *scenario, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Progress on stderr (timestamped, flushed). */
void bx_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the table to stdout and writes RESULT/CHECK lines to `path` (may be NULL).
 * Returns the number of failed checks. */
int bx_report(const char *path);

/* ---- the stack: vhosts and databases ---------------------------------------------- */

/* Creates vhost bench-<run>-<name> with full permissions for guest; *url is the AMQP URL
 * pointing at it. 0 or <0 with a message on stderr. */
int bx_vhost_create(const char *name, char *url, size_t urlsz);
void bx_vhost_delete(const char *url);

/* Creates database bench_<run>_<name>; *url is its libpq URL. */
int bx_db_create(const char *name, char *url, size_t urlsz);
void bx_db_drop(const char *url);

/* libpq helpers; on error they print the server's message and return NULL / -1. */
PGconn *bx_pg(const char *url);
int bx_exec(PGconn *c, const char *sql);
/* First column of the first row as an integer (-1 on error or no row). */
long long bx_scalar(PGconn *c, const char *sql);
/* First column of the first row as a double (NAN on error). */
double bx_scalar_f(PGconn *c, const char *sql);

/* ---- services as child processes -------------------------------------------------- */

typedef struct bx_svc {
  dk_proc p;
  bool up;
  long hwm_kib; /* VmHWM read just before the stop */
} bx_svc;

/* Starts bin_dir/<bin> with env (NULL-terminated "K=V"; WARREN_HTTP_ADDR is added) and
 * waits until /readyz answers 200 (timeout_s). Log: work_dir/<log>.log. To measure
 * other settings than the services' defaults, WARREN_BENCH_ORDER_ENV and
 * WARREN_BENCH_CUSTOMER_ENV ("K=V K=V", space-separated) are added to the environment
 * of every order-service / customer-service started. */
int bx_svc_start(bx_svc *s, const char *bin, const char *log, const char *const *env,
                 unsigned timeout_s);
/* The two halves of bx_svc_start: start without waiting, then wait for /readyz. */
int bx_svc_spawn(bx_svc *s, const char *bin, const char *log, const char *const *env);
int bx_svc_wait_ready(bx_svc *s, unsigned timeout_s);
/* Reads VmHWM, then SIGTERM (clean stop) and waits. NULL or stopped: nothing. */
void bx_svc_stop(bx_svc *s);

/* Peak RSS of each service over the run (max VmHWM of all its processes), KiB. */
void bx_note_peak(const char *service, long hwm_kib);
long bx_peak(const char *service);

/* /proc/<pid>: resident set now and its high-water mark (KiB), CPU time (s). */
long bx_rss_kib(pid_t pid);
long bx_hwm_kib(pid_t pid);
double bx_cpu_s(pid_t pid);
/* CPU seconds so far of the stack's servers (WARREN_STACK_DIR): the RabbitMQ node's
 * beam process; PostgreSQL's postmaster with every backend and auxiliary process, live
 * or exited. NAN when not found. */
double bx_broker_cpu_s(void);
double bx_pg_cpu_s(void);

/* Fetches base_url/metrics once and sums, for each of the n series prefixes, every
 * sample whose name-and-labels start with it (so "x{queue=\"q\"" adds up every result
 * label). 0 or <0. */
int bx_metrics(const char *base_url, const char *const *series, double *values, size_t n);

/* ---- raw rabbitmq-c ---------------------------------------------------------------- */

/* Opens a connection (channel 1) to an amqp:// URL (vhost in the path). NULL on error. */
amqp_connection_state_t bx_amqp_open(const char *url);
void bx_amqp_close(amqp_connection_state_t c);
/* Declares a durable queue ("quorum" or "classic") on channel 1, optionally bound to
 * exchange with key. 0 or <0. */
int bx_amqp_queue(amqp_connection_state_t c, const char *queue, const char *type,
                  const char *exchange, const char *key);
/* Messages ready in queue (passive declare on a side channel), -1 if it is missing. */
long bx_amqp_depth(amqp_connection_state_t c, const char *queue);
int bx_amqp_delete(amqp_connection_state_t c, const char *queue);

/* One message of a raw publish run; the pointers stay valid until the next call. */
typedef struct bx_msg {
  const char *exchange;
  const char *routing_key;
  const void *body;
  size_t len;
  amqp_basic_properties_t props;
} bx_msg;
typedef void (*bx_msg_fn)(size_t i, bx_msg *out, void *user);

/* Publishes n messages made by fn on channel 1 (put in confirm mode) with at most
 * `window` unconfirmed; returns when all are confirmed. *rate = msgs/s from the first
 * publish to the last confirm. 0, or <0 (a nack, a lost connection, 60 s without a
 * confirm). */
int bx_publish(amqp_connection_state_t c, size_t n, unsigned window, bx_msg_fn fn, void *user,
               double *rate);
/* Consumes n messages from queue on channel 1 (prefetch, multiple-ack every ack_every
 * and at the end). *rate = msgs/s. 0 or <0 (30 s without a delivery). */
int bx_drain(amqp_connection_state_t c, const char *queue, size_t n, uint16_t prefetch,
             unsigned ack_every, double *rate);

/* ---- customer events ---------------------------------------------------------------- */

/* A CustomerUpdated as the customer service's relay would publish it. */
typedef struct bx_event {
  const char *event_id; /* UUID */
  const char *customer_id;
  uint64_t version;
  const char *name, *email;
  int status; /* Customer__V1__CustomerStatus */
  int64_t occurred_us;
} bx_event;

/* Packs ev into buf (grown as needed; *cap its size) and returns the length, 0 on
 * failure. */
size_t bx_event_pack(const bx_event *ev, uint8_t **buf, size_t *cap);
/* Fills *m (exchange customer.events, routing key and type CustomerUpdated, the
 * relay's properties and headers) for a packed event. headers must have room for 3
 * entries and live as long as *m. */
void bx_event_msg(const bx_event *ev, const uint8_t *body, size_t len, amqp_table_entry_t *headers,
                  bx_msg *m);

/* ---- scenarios ---------------------------------------------------------------------- */

int scenario_ceiling(void);
int scenario_consume(void);
int scenario_relay(void);
int scenario_e2e(void);
int scenario_catchup(void);

#endif
