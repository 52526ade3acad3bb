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
 * through), sets application_name if given (may be NULL) and a UTC session time zone.
 * On success *out is owned by the caller (PQfinish). On failure returns WR_EDB with
 * the server's message (password redacted) in err and *out = NULL. */
WR_EXPORT int wr_db_connect(const char *url, const char *application_name, PGconn **out,
                            wr_err *err);

/* One schema migration. Versions are per component and strictly increasing. */
typedef struct wr_migration {
  int version;
  const char *name;
  const char *sql; /* may hold several statements */
} wr_migration;

/* Applies, in one transaction per migration and under a session advisory lock (so
 * several instances starting together are safe), every migration of `component`
 * newer than the recorded one; records them in warren_schema_migrations. Idempotent.
 * Returns 0, or WR_EDB (nothing of the failing migration is applied). */
WR_EXPORT int wr_db_migrate(PGconn *c, const char *component, const wr_migration *m,
                            size_t n, wr_err *err);

/* Applies the runtime's own tables (outbox, inbox, version guard). Same contract as
 * wr_db_migrate; component "warren". */
WR_EXPORT int wr_db_migrate_runtime(PGconn *c, wr_err *err);

/* Runs a statement without parameters or rows (BEGIN, COMMIT, DDL). Returns 0 or
 * WR_EDB with err filled (sqlstate included). */
WR_EXPORT int wr_db_exec(PGconn *c, const char *sql, wr_err *err);

/* Checks a PGresult: returns 0 when its status is `expect` (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK), else WR_EDB with message and sqlstate in err. Does not clear res. */
WR_EXPORT int wr_db_check(PGconn *c, const PGresult *res, ExecStatusType expect,
                          const char *what, wr_err *err);

/* True when the connection is unusable (server gone, restart): the caller should
 * reconnect (PQreset) rather than retry the statement. Cannot fail. */
WR_EXPORT bool wr_db_broken(PGconn *c);

/* A fixed-size pool. acquire() blocks up to timeout_ms for a free connection, resets
 * broken ones, and returns WR_ETIMEDOUT or WR_EDB on failure. release() takes the
 * connection back; a connection left inside a transaction is rolled back. */
typedef struct wr_db_pool wr_db_pool;
WR_EXPORT int wr_db_pool_new(const char *url, const char *application_name, unsigned size,
                             wr_db_pool **out, wr_err *err);
WR_EXPORT int wr_db_pool_acquire(wr_db_pool *p, unsigned timeout_ms, PGconn **out, wr_err *err);
WR_EXPORT void wr_db_pool_release(wr_db_pool *p, PGconn *c);
/* Frees the pool and closes every connection; all must have been released. NULL ok. */
WR_EXPORT void wr_db_pool_free(wr_db_pool *p);

WR_END_DECLS

#endif
