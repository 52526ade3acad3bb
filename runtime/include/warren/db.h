/* warren/db.h: PostgreSQL plumbing shared by the runtime and the services: connecting
 * (credentials never logged), versioned migrations under an advisory lock, small
 * statement helpers, and a connection pool for HTTP handler threads.
 *
 * A PGconn is used by one thread at a time (libpq rule); the pool hands out one
 * connection per caller. */
#ifndef WARREN_DB_H
#define WARREN_DB_H

#include <libpq-fe.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

/* Connects to a libpq URL or key=value string (sslmode and every libpq parameter pass
 * through). application_name (may be NULL) is used unless the string sets its own.
 * The session time zone is UTC (in the startup packet, so PQreset keeps it; the
 * string's own `options` are kept). Unless the string says otherwise: connect_timeout
 * 10 s and TCP keepalives (idle 30 s, interval 10 s, 3 probes), so that a vanished
 * server is noticed. Server notices go to wr_log at debug level, never to stderr.
 * On success *out is owned by the caller (PQfinish). On failure *out = NULL and the
 * result is WR_EDB (unparsable string, or the server's/libpq's message, with the URL
 * and password redacted, in err), WR_EINVAL (NULL url or out), WR_ENOMEM. */
WR_EXPORT int wr_db_connect(const char *url, const char *application_name, PGconn **out,
                            wr_err *err);

/* One schema migration. Versions are per component and strictly increasing. */
typedef struct wr_migration {
  int version;
  const char *name;
  const char *sql; /* may hold several statements */
} wr_migration;

/* Applies, in one transaction per migration and under a session advisory lock keyed
 * by component (so several instances starting together are safe), every migration of
 * `component` newer than the highest recorded one; records each in
 * warren_schema_migrations (created if missing). Idempotent. A database already newer
 * than m[n-1] is left alone (logged as a warning). Migration SQL runs inside the
 * transaction: it must not contain BEGIN/COMMIT or statements that cannot run in a
 * transaction block (CREATE INDEX CONCURRENTLY). c must be outside any transaction.
 * Blocks while another session migrates the same component.
 * Returns 0; WR_EINVAL (NULL/empty arguments, versions not > 0 and strictly
 * increasing, a transaction open on c: nothing touched); WR_EDB with "migration
 * <component> v<N> (<name>): ..." and the sqlstate (migrations before it stay applied,
 * nothing of the failing one is). */
WR_EXPORT int wr_db_migrate(PGconn *c, const char *component, const wr_migration *m, size_t n,
                            wr_err *err);

/* Applies the runtime's own tables (outbox, inbox, version guard) and their later
 * changes (v2: the outbox NOTIFY follows the session setting warren.outbox_notify,
 * warren/outbox.h). Same contract as wr_db_migrate; component "warren". */
WR_EXPORT int wr_db_migrate_runtime(PGconn *c, wr_err *err);

/* Runs a statement without parameters or rows (BEGIN, COMMIT, DDL). Returns 0 or
 * WR_EDB with err filled (sqlstate included). */
WR_EXPORT int wr_db_exec(PGconn *c, const char *sql, wr_err *err);

/* Checks a PGresult: returns 0 when its status is `expect` (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK), else WR_EDB with message and sqlstate in err. Does not clear res. */
WR_EXPORT int wr_db_check(PGconn *c, const PGresult *res, ExecStatusType expect, const char *what,
                          wr_err *err);

/* A PostgreSQL text[] literal of n strings ({"a","b\\"c"}), every element quoted and
 * escaped, to pass as one `$1::text[]` parameter (set-based statements). Returns a
 * malloc'd string (caller frees), or NULL on ENOMEM. */
WR_EXPORT char *wr_db_text_array(const char *const *items, size_t n);

/* True when err is a conflict between concurrent transactions that PostgreSQL
 * resolved by rolling one back: a deadlock (SQLSTATE 40P01) or a serialization failure
 * (40001). The transaction is gone; running it again from BEGIN is the remedy. Two
 * writers of the same rows in different orders (the live consumer writes a view row
 * before its version guard, a repair the guard before the row) meet this. */
WR_EXPORT bool wr_db_retryable(const wr_err *err);

/* True when the connection is unusable (server gone, restart): the caller should
 * reconnect (PQreset) rather than retry the statement. Cannot fail. */
WR_EXPORT bool wr_db_broken(PGconn *c);

/* A fixed-size pool, thread-safe. new() opens all `size` (1..1024) connections at
 * once with wr_db_connect (a wrong URL fails at start: WR_EDB, WR_EINVAL, WR_ENOMEM).
 * acquire() blocks up to timeout_ms for a free connection (WR_ETIMEDOUT), resets one
 * found broken (PQreset; WR_EDB if the server is still unreachable, the connection
 * stays in the pool and is reset again next time), and hands it over exclusively: the
 * caller must release it, and must not PQfinish it. release() takes it back: an open
 * or failed transaction is rolled back; a connection left mid-query, in pipeline mode
 * or broken is reset on its next acquire; pending notifications are dropped. Other
 * session state (SET, prepared statements, LISTEN) stays with the connection.
 * Releasing NULL, a foreign connection or one twice is ignored. */
typedef struct wr_db_pool wr_db_pool;
WR_EXPORT int wr_db_pool_new(const char *url, const char *application_name, unsigned size,
                             wr_db_pool **out, wr_err *err);

/* The pool with session options; wr_db_pool_new(url, app, size) is this with the
 * defaults of WR_DB_POOL_OPTS_INIT. Same contract and errors (WR_EINVAL also for NULL
 * opts); strings are used during the call only.
 *
 * outbox_notify = false: the pool's sessions append to the outbox without the insert
 * trigger's `NOTIFY warren_outbox` (session setting warren.outbox_notify = off, in the
 * startup packet, so a reset connection keeps it; see warren/outbox.h). For services
 * that wake their own relay after every commit that appended (wr_relay_wake): the
 * NOTIFY would make PostgreSQL serialise their commits (no group commit), and relays
 * of other processes then find these rows by polling (wr_relay_opts.poll_interval_ms)
 * instead. Keep the default (true) for any writer whose relay lives elsewhere. */
typedef struct wr_db_pool_opts {
  const char *url;              /* required: libpq URL or key=value string */
  const char *application_name; /* may be NULL (as in wr_db_connect) */
  unsigned size;                /* connections, 1..1024, all opened at once */
  bool outbox_notify;           /* default true */
} wr_db_pool_opts;

#define WR_DB_POOL_OPTS_INIT                                                                       \
  { .url = NULL, .application_name = NULL, .size = 8, .outbox_notify = true }

WR_EXPORT int wr_db_pool_new_opts(const wr_db_pool_opts *opts, wr_db_pool **out, wr_err *err);
WR_EXPORT int wr_db_pool_acquire(wr_db_pool *p, unsigned timeout_ms, PGconn **out, wr_err *err);
WR_EXPORT void wr_db_pool_release(wr_db_pool *p, PGconn *c);
/* Frees the pool and closes every connection; all must have been released. NULL ok. */
WR_EXPORT void wr_db_pool_free(wr_db_pool *p);

WR_END_DECLS

#endif
