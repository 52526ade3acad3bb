/* warren/service.h: what every warren service process needs and would otherwise copy:
 * configuration from environment and flags with --help, signal handling for a clean
 * shutdown, and the standard /healthz, /readyz and /metrics replies. */
#ifndef WARREN_SERVICE_H
#define WARREN_SERVICE_H

#include <warren/common.h>
#include <warren/db.h>
#include <warren/error.h>
#include <warren/http.h>
#include <warren/metrics.h>

WR_BEGIN_DECLS

/* One configuration option: `--flag value` or `--flag=value` on the command line,
 * else the environment variable `env`, else `def` (may be NULL = unset). The result
 * is stored in *dest (a borrowed pointer into argv, the environment, or def).
 * `secret` options are never printed (--help shows only whether they are set) and
 * cannot be given as flags (a command line is visible to every user of the machine):
 * use the environment variable or `--<flag>-file PATH` (first line of the file). */
typedef struct wr_option {
  const char *flag; /* "database-url" (without dashes) */
  const char *env;  /* "WARREN_DATABASE_URL" (may be NULL) */
  const char *def;  /* default value (may be NULL) */
  const char *help; /* one line */
  const char **dest;
  bool secret;
  bool required;
} wr_option;

/* Parses argv against opts. Returns 0; 1 when --help or --version was printed to
 * stdout (exit 0); WR_EINVAL with a message in err for an unknown flag, a missing
 * value, a secret given as a flag, an unreadable --x-file, or a required option left
 * unset. `summary` is the first line of --help. Values read from files are kept in
 * static storage for the life of the process. */
WR_EXPORT int wr_options_parse(const char *prog, const char *summary, wr_option *opts, size_t n,
                               int argc, char **argv, wr_err *err);

/* Parses a positive integer option value with bounds (for intervals, sizes). Returns 0
 * or WR_EINVAL naming the option. */
WR_EXPORT int wr_option_uint(const char *name, const char *value, unsigned min, unsigned max,
                             unsigned *out, wr_err *err);

/* ---- the options every warren service takes ---------------------------------- */

/* Filled by wr_options_parse (strings) and wr_service_std_apply (numbers, instance).
 * Strings are borrowed from argv, the environment or defaults. */
typedef struct wr_service_std {
  const char *amqp_url;     /* WARREN_AMQP_URL (required, secret: holds credentials) */
  const char *amqp_cacert;  /* --amqp-cacert / WARREN_AMQP_CACERT */
  const char *database_url; /* WARREN_DATABASE_URL (required, secret) */
  const char *http_addr;    /* --http-addr / WARREN_HTTP_ADDR */
  const char *admin_token;  /* WARREN_ADMIN_TOKEN (secret) */
  const char *log_level;    /* --log-level / WARREN_LOG_LEVEL */
  const char *http_threads_s, *db_pool_s, *max_body_s;
  unsigned http_threads;
  unsigned db_pool;
  unsigned max_body;
  char instance[96]; /* "<hostname>:<pid>": meta.source_instance */
} wr_service_std;

#define WR_SERVICE_STD_N 9

/* Writes the standard options into out[0..WR_SERVICE_STD_N-1], bound to s; `db_what`
 * describes the database ("the customer database"), default_addr the listen address.
 * The strings must outlive the parse. Cannot fail. */
WR_EXPORT void wr_service_std_options(wr_service_std *s, const char *db_what,
                                      const char *default_addr, wr_option *out);

/* After wr_options_parse: checks the numeric options and the syntax of the broker
 * URL list (with its CA file for amqps://) and of the database URL, without
 * connecting; configures logging (service name on every line, level) and fills the
 * instance id. Returns 0, WR_EINVAL naming the option (never quoting a URL: they hold
 * passwords), or WR_ENOMEM. */
WR_EXPORT int wr_service_std_apply(wr_service_std *s, const char *service, wr_err *err);

/* The database start every service with its own relay does: on one connection (under
 * the migration lock) the runtime's migrations, then the service's own (`migrate`, may
 * be NULL), then a pool of s->db_pool connections named `application_name`, whose
 * sessions skip the outbox's NOTIFY (warren.outbox_notify = off): the service wakes its
 * in-process relay after each COMMIT (wr_relay_wake), and notifying commits are
 * serialised by PostgreSQL (docs/PERFORMANCE.md). Returns 0 with *pool set, or an
 * error whose text never quotes the URL. */
WR_EXPORT int wr_service_db_open(const wr_service_std *s, const char *application_name,
                                 int (*migrate)(PGconn *c, wr_err *err), wr_db_pool **pool,
                                 wr_err *err);

/* HTTP options from the standard ones (address, threads, body limit, admin token). */
WR_EXPORT void wr_service_http_opts(const wr_service_std *s, wr_http_opts *o);

/* True if a pooled connection answers SELECT 1 within timeout_ms (readiness). */
WR_EXPORT bool wr_db_pool_ping(wr_db_pool *p, unsigned timeout_ms);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; call first in main() so
 * every thread started afterwards inherits the mask and the signals are taken only
 * by wr_signals_wait(). SIGPIPE is ignored (sockets report EPIPE instead). */
WR_EXPORT void wr_signals_block(void);

/* Waits for SIGTERM or SIGINT (returns its number) or until timeout_ms passes (returns
 * 0; 0 = wait forever). SIGHUP is ignored. */
WR_EXPORT int wr_signals_wait(unsigned timeout_ms);

/* The standard replies:
 * /healthz: 200 {"status":"ok"} while the process serves HTTP.
 * /readyz: 200 {"status":"ready"} or 503 {"status":"not_ready","checks":{...}} from
 *   the named checks (true = ready).
 * /metrics: the registry in Prometheus text format (text/plain; version=0.0.4). */
WR_EXPORT int wr_reply_healthz(wr_http_req *req);
typedef struct wr_ready_check {
  const char *name;
  bool ok;
} wr_ready_check;
WR_EXPORT int wr_reply_readyz(wr_http_req *req, const wr_ready_check *checks, size_t n);
WR_EXPORT int wr_reply_metrics(wr_http_req *req, wr_metrics *m);

/* ---- database failures inside HTTP handlers ---------------------------------- */

/* Replies for a failed database operation: 503 {"error":{"code":"unavailable"}} when
 * the database is out of reach (pool timeout, lost connection, server shutting down:
 * SQLSTATE class 08 or 57, or none) so the client may retry; 500 "internal" for
 * anything else (a bug or a server fault). The detail is logged with the request's
 * correlation id and never shown to the client. */
WR_EXPORT int wr_reply_db_error(wr_http_req *req, int rc, const wr_err *err);

/* Takes a connection from the pool (waiting up to timeout_ms); on failure replies
 * with wr_reply_db_error and returns NULL. Release with wr_db_pool_release(). */
WR_EXPORT PGconn *wr_http_db_acquire(wr_http_req *req, wr_db_pool *pool, unsigned timeout_ms);

/* ---- JSON request bodies: validation that answers 422 by itself ----------------- *
 * Each returns 1 when the value is present and valid (*out set), 0 when it is absent
 * and not required, and -1 after replying 422 {"error":{"code":...}} (the handler
 * must then return without replying again). Codes: "unknown_field",
 * "missing_field", "invalid_type", "invalid_value". */

/* Refuses keys not in `allowed` (NULL-terminated): 1 ok, -1 replied. */
WR_EXPORT int wr_body_only(wr_http_req *req, json_t *obj, const char *const *allowed);
/* A string of min..max characters (UTF-8 code points) without control characters.
 * *out is borrowed from obj. */
WR_EXPORT int wr_body_string(wr_http_req *req, json_t *obj, const char *key, bool required,
                             size_t min_chars, size_t max_chars, const char **out);
/* An integer in [min, max]; a JSON real with a fraction or out of range is refused. */
WR_EXPORT int wr_body_int(wr_http_req *req, json_t *obj, const char *key, bool required,
                          int64_t min, int64_t max, int64_t *out);

/* The number of UTF-8 code points in s, or -1 if s is not valid UTF-8 or contains a
 * control character (U+0000..U+001F, U+007F). Cannot fail otherwise. */
WR_EXPORT long wr_utf8_chars(const char *s, size_t len);

WR_END_DECLS

#endif
