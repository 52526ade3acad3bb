/* db.c: PostgreSQL plumbing: connect, migrations under an advisory lock, statement
 * helpers, and a fixed-size connection pool. See warren/db.h for the contracts.
 *
 * Connecting goes through PQconninfoParse + PQconnectdbParams instead of handing the
 * caller's string to PQconnectdb, so that the runtime can add its session settings
 * (TimeZone=UTC in the startup packet, where PQreset keeps it) on top of whatever
 * the URL says, without string surgery on a URL that may hold a password. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbuf.h"
#include <warren/db.h>
#include <warren/log.h>
#include <warren/util.h>

/* ---- messages --------------------------------------------------------------------- */

/* Copies a libpq message into dst: newlines become "; ", trailing whitespace goes, and
 * every occurrence of `secret` (the connection's password, when known) is replaced by
 * "***" so that no message built here can leak it. */
static void copy_msg(char *dst, size_t n, const char *src, const char *secret) {
  size_t o = 0;
  size_t slen = secret ? strlen(secret) : 0;
  if (n == 0)
    return;
  if (!src)
    src = "";
  while (*src && o + 1 < n) {
    if (slen > 0 && strncmp(src, secret, slen) == 0) {
      for (const char *r = "***"; *r && o + 1 < n; r++)
        dst[o++] = *r;
      src += slen;
      continue;
    }
    if (*src == '\n' || *src == '\r') {
      while (*src == '\n' || *src == '\r' || *src == '\t' || *src == ' ')
        src++;
      if (*src && o + 2 < n) {
        dst[o++] = ';';
        dst[o++] = ' ';
      }
      continue;
    }
    dst[o++] = *src == '\t' ? ' ' : *src;
    src++;
  }
  while (o > 0 && (dst[o - 1] == ' ' || dst[o - 1] == '\t' || dst[o - 1] == ';'))
    o--;
  dst[o] = '\0';
}

/* Fills err from a failed result (or from the connection when res is NULL). */
static int db_fail(wr_err *err, PGconn *c, const PGresult *res, const char *what) {
  if (!err)
    return WR_EDB;
  char msg[400];
  const char *state = NULL;
  if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) {
    /* Server errors: the primary message and its detail, without the statement
     * excerpt ("LINE 1: ...") that the full text carries. Client-side errors (lost
     * connection) have no fields: take the whole text. */
    const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (prim) {
      char raw[600];
      snprintf(raw, sizeof raw, "%s%s%s%s", prim, detail ? " (" : "", detail ? detail : "",
               detail ? ")" : "");
      copy_msg(msg, sizeof msg, raw, NULL);
    } else {
      copy_msg(msg, sizeof msg, PQresultErrorMessage(res), NULL);
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  } else if (res) {
    snprintf(msg, sizeof msg, "unexpected result status %s", PQresStatus(PQresultStatus(res)));
  } else {
    copy_msg(msg, sizeof msg, c ? PQerrorMessage(c) : "no connection", NULL);
  }
  if (!msg[0])
    snprintf(msg, sizeof msg, "%s",
             c && PQstatus(c) == CONNECTION_BAD ? "connection lost" : "unknown error");
  wr_err_set(err, WR_EDB, "%s: %s", what ? what : "database", msg);
  snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state ? state : "");
  return WR_EDB;
}

int wr_db_check(PGconn *c, const PGresult *res, ExecStatusType expect, const char *what,
                wr_err *err) {
  if (res && PQresultStatus(res) == expect)
    return 0;
  return db_fail(err, c, res, what);
}

bool wr_db_retryable(const wr_err *err) {
  return err && err->code == WR_EDB &&
         (strcmp(err->sqlstate, "40P01") == 0 || strcmp(err->sqlstate, "40001") == 0);
}

int wr_db_exec(PGconn *c, const char *sql, wr_err *err) {
  if (!c || !sql)
    return wr_err_set(err, WR_EINVAL, "wr_db_exec: NULL connection or statement");
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    rc = db_fail(err, c, r, "statement failed");
  PQclear(r);
  return rc;
}

bool wr_db_broken(PGconn *c) {
  if (!c || PQstatus(c) != CONNECTION_OK)
    return true;
  /* A server that went away while the connection sat idle is only noticed on the next
   * read. Peek without blocking: if the socket is readable (a FATAL "terminating
   * connection" message, or EOF), let libpq consume it, which flips the status.
   * An idle connection treats the server's FATAL message as a notice and stays OK
   * until it reads the EOF behind it, hence the few rounds. */
  int fd = PQsocket(c);
  if (fd < 0)
    return true;
  for (int round = 0; round < 4 && PQstatus(c) == CONNECTION_OK; round++) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
      break;
    if (!PQconsumeInput(c))
      return true;
  }
  return PQstatus(c) != CONNECTION_OK;
}

/* ---- connect ------------------------------------------------------------------------ */

/* libpq's default notice processor writes to stderr; the library never prints.
 * Server notices (and the FATAL message of a terminated idle session) go to the log
 * at debug level instead. Kept across PQreset. */
static void notice_to_log(void *user, const char *message) {
  (void)user;
  char msg[400];
  copy_msg(msg, sizeof msg, message, NULL);
  wr_log_debug(NULL, "postgres: %s", msg);
}

/* Session defaults added unless the caller's string sets them: a bounded connect (so
 * reconnect loops can be stopped) and TCP keepalives that notice a vanished server in
 * about a minute instead of the kernel's two hours. */
static const char *const connect_defaults[][2] = {
    {"connect_timeout", "10"},
    {"keepalives_idle", "30"},
    {"keepalives_interval", "10"},
    {"keepalives_count", "3"},
};
#define N_DEFAULTS (sizeof connect_defaults / sizeof connect_defaults[0])

/* The session settings the runtime puts into the startup packet (so that PQreset keeps
 * them), after the string's own `options`: the time zone always, and the outbox NOTIFY
 * switch (migrations.c, v2) when a caller turns it off. */
#define SESSION_TZ        "-c TimeZone=UTC"
#define SESSION_NO_NOTIFY " -c warren.outbox_notify=off"

static int connect_session(const char *url, const char *application_name, bool outbox_notify,
                           PGconn **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!url || !out)
    return wr_err_set(err, WR_EINVAL, "wr_db_connect: NULL url or out");

  char redacted[512];
  wr_redact_url(url, redacted, sizeof redacted);

  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(url, &perr);
  if (!opts) {
    char msg[300];
    copy_msg(msg, sizeof msg, perr ? perr : "out of memory", NULL);
    PQfreemem(perr);
    return wr_err_set(err, WR_EDB, "invalid PostgreSQL connection string %s: %s", redacted, msg);
  }

  size_t n_opts = 0;
  for (PQconninfoOption *o = opts; o->keyword; o++)
    n_opts++;
  /* Every parsed option + application fallback + options + defaults + terminator. */
  size_t cap = n_opts + 2 + N_DEFAULTS + 1;
  const char **keys = calloc(cap, sizeof *keys);
  const char **vals = calloc(cap, sizeof *vals);
  char *options = NULL;
  if (!keys || !vals) {
    free(keys);
    free(vals);
    PQconninfoFree(opts);
    return wr_err_set(err, WR_ENOMEM, "wr_db_connect: out of memory");
  }

  size_t k = 0;
  const char *password = NULL;
  const char *user_options = NULL;
  bool have_default[N_DEFAULTS] = {false};
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (!o->val)
      continue;
    if (strcmp(o->keyword, "options") == 0) {
      user_options = o->val;
      continue;
    }
    if (strcmp(o->keyword, "password") == 0)
      password = o->val;
    for (size_t d = 0; d < N_DEFAULTS; d++)
      if (strcmp(o->keyword, connect_defaults[d][0]) == 0)
        have_default[d] = true;
    keys[k] = o->keyword;
    vals[k] = o->val;
    k++;
  }
  for (size_t d = 0; d < N_DEFAULTS; d++) {
    if (!have_default[d]) {
      keys[k] = connect_defaults[d][0];
      vals[k] = connect_defaults[d][1];
      k++;
    }
  }
  /* The URL's own application_name (an operator's choice) wins over the code's. */
  if (application_name && *application_name) {
    keys[k] = "fallback_application_name";
    vals[k] = application_name;
    k++;
  }
  /* Settings go into the startup packet (not a SET) so that PQreset keeps them. Ours
   * come last: a caller that turned the NOTIFY off is not overridden by the string. */
  const char *extra = outbox_notify ? "" : SESSION_NO_NOTIFY;
  size_t olen =
      (user_options ? strlen(user_options) + 1 : 0) + strlen(SESSION_TZ) + strlen(extra) + 1;
  options = malloc(olen);
  if (!options) {
    free(keys);
    free(vals);
    PQconninfoFree(opts);
    return wr_err_set(err, WR_ENOMEM, "wr_db_connect: out of memory");
  }
  snprintf(options, olen, "%s%s%s%s", user_options ? user_options : "", user_options ? " " : "",
           SESSION_TZ, extra);
  keys[k] = "options";
  vals[k] = options;
  k++;
  keys[k] = NULL;
  vals[k] = NULL;

  PGconn *c = PQconnectdbParams(keys, vals, 0);
  int rc = 0;
  if (!c) {
    rc = wr_err_set(err, WR_ENOMEM, "connect to %s: out of memory", redacted);
  } else if (PQstatus(c) != CONNECTION_OK) {
    char msg[400];
    copy_msg(msg, sizeof msg, PQerrorMessage(c), password);
    rc = wr_err_set(err, WR_EDB, "connect to %s: %s", redacted, msg);
    PQfinish(c);
    c = NULL;
  } else {
    PQsetNoticeProcessor(c, notice_to_log, NULL);
  }
  free(options);
  free(keys);
  free(vals);
  PQconninfoFree(opts);
  *out = c;
  return rc;
}

int wr_db_connect(const char *url, const char *application_name, PGconn **out, wr_err *err) {
  return connect_session(url, application_name, true, out, err);
}

/* ---- migrations --------------------------------------------------------------------- */

/* Advisory lock space: the first key says "warren migrations", the second is
 * hashtext(component) (or 0 for the bookkeeping table itself). Other code using
 * two-key advisory locks with this first key would contend with migrations only. */
#define MIGRATE_LOCK_CLASS "2002874226" /* 0x77617272, "warr" */

static int exec_params(PGconn *c, const char *sql, int n, const char *const *params,
                       ExecStatusType expect, const char *what, PGresult **out, wr_err *err) {
  PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
  if (!r || PQresultStatus(r) != expect) {
    int rc = db_fail(err, c, r, what);
    PQclear(r);
    return rc;
  }
  if (out)
    *out = r;
  else
    PQclear(r);
  return 0;
}

static void rollback_quietly(PGconn *c) {
  if (PQtransactionStatus(c) == PQTRANS_INTRANS || PQtransactionStatus(c) == PQTRANS_INERROR)
    PQclear(PQexec(c, "ROLLBACK"));
}

/* Creates warren_schema_migrations if needed. CREATE TABLE IF NOT EXISTS alone races
 * (two sessions can both pass the check and one fails on pg_type's unique index), so
 * it runs under a transaction-scoped advisory lock shared by all components. */
static int ensure_bookkeeping(PGconn *c, wr_err *err) {
  int rc = wr_db_exec(c, "BEGIN", err);
  if (rc)
    return rc;
  static const char *const sql =
      "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_CLASS ", 0);"
      "SET LOCAL client_min_messages = warning;" /* no "already exists" notice */
      "CREATE TABLE IF NOT EXISTS warren_schema_migrations ("
      "  component text NOT NULL,"
      "  version integer NOT NULL CHECK (version > 0),"
      "  name text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT now(),"
      "  PRIMARY KEY (component, version))";
  rc = wr_db_exec(c, sql, err);
  if (rc == 0)
    rc = wr_db_exec(c, "COMMIT", err);
  if (rc) {
    rollback_quietly(c);
    if (err) {
      char m[sizeof err->msg];
      snprintf(m, sizeof m, "%s", err->msg);
      snprintf(err->msg, sizeof err->msg, "create warren_schema_migrations: %s", m);
    }
  }
  return rc;
}

/* Applies one migration in its own transaction and records it. */
static int apply_one(PGconn *c, const char *component, const wr_migration *m, wr_err *err) {
  char ver[16];
  snprintf(ver, sizeof ver, "%d", m->version);
  int rc = wr_db_exec(c, "BEGIN", err);
  if (rc == 0)
    rc = wr_db_exec(c, m->sql, err);
  if (rc == 0) {
    const char *p[3] = {component, ver, m->name};
    rc = exec_params(c,
                     "INSERT INTO warren_schema_migrations (component, version, name) "
                     "VALUES ($1, $2::integer, $3)",
                     3, p, PGRES_COMMAND_OK, "record migration", NULL, err);
  }
  if (rc == 0)
    rc = wr_db_exec(c, "COMMIT", err);
  if (rc) {
    rollback_quietly(c);
    if (err) {
      char detail[sizeof err->msg];
      snprintf(detail, sizeof detail, "%s", err->msg);
      snprintf(err->msg, sizeof err->msg, "migration %s v%d (%s): %s", component, m->version,
               m->name, detail);
    }
  }
  return rc;
}

int wr_db_migrate(PGconn *c, const char *component, const wr_migration *m, size_t n, wr_err *err) {
  if (!c || !component || !*component || (n > 0 && !m))
    return wr_err_set(err, WR_EINVAL, "wr_db_migrate: NULL connection, component or list");
  for (size_t i = 0; i < n; i++) {
    if (m[i].version <= 0 || !m[i].name || !m[i].sql)
      return wr_err_set(err, WR_EINVAL,
                        "migration #%zu of %s: version must be > 0, name "
                        "and sql set",
                        i, component);
    if (i > 0 && m[i].version <= m[i - 1].version)
      return wr_err_set(err, WR_EINVAL,
                        "migrations of %s: versions must be strictly "
                        "increasing (%d after %d)",
                        component, m[i].version, m[i - 1].version);
  }
  if (PQtransactionStatus(c) != PQTRANS_IDLE)
    return wr_err_set(err, WR_EINVAL,
                      "wr_db_migrate: the connection must not be inside a "
                      "transaction");

  int rc = ensure_bookkeeping(c, err);
  if (rc)
    return rc;

  /* A session lock (not a transaction lock) because each migration commits on its own;
   * if the session dies, the server releases it. */
  const char *cp[1] = {component};
  rc = exec_params(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_CLASS ", hashtext($1))", 1, cp,
                   PGRES_TUPLES_OK, "migration lock", NULL, err);
  if (rc)
    return rc;

  PGresult *r = NULL;
  rc = exec_params(c,
                   "SELECT coalesce(max(version), 0) FROM warren_schema_migrations "
                   "WHERE component = $1",
                   1, cp, PGRES_TUPLES_OK, "read migrations", &r, err);
  long current = 0;
  if (rc == 0) {
    current = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
  }
  size_t applied = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (m[i].version <= current)
      continue;
    rc = apply_one(c, component, &m[i], err);
    if (rc == 0)
      applied++;
  }
  if (rc == 0 && n > 0 && current > m[n - 1].version)
    wr_log_warn(NULL,
                "database schema of %s is at version %ld, newer than this program "
                "knows (%d); continuing",
                component, current, m[n - 1].version);
  if (rc == 0 && applied > 0)
    wr_log_info(NULL, "applied %zu migration(s) of %s, now at version %d", applied, component,
                m[n - 1].version);

  /* Unlock even after a failure; a broken connection has lost the lock anyway. */
  if (PQstatus(c) == CONNECTION_OK)
    PQclear(PQexecParams(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_CLASS ", hashtext($1))", 1,
                         NULL, cp, NULL, NULL, 0));
  return rc;
}

/* ---- pool --------------------------------------------------------------------------- */

typedef struct pool_slot {
  PGconn *conn;
  bool busy;
  bool needs_reset; /* left in a state release() could not clean: PQreset on acquire */
} pool_slot;

struct wr_db_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned size;
  unsigned free_count;
  pool_slot *slots;
};

int wr_db_pool_new(const char *url, const char *application_name, unsigned size, wr_db_pool **out,
                   wr_err *err) {
  wr_db_pool_opts o = WR_DB_POOL_OPTS_INIT;
  o.url = url;
  o.application_name = application_name;
  o.size = size;
  return wr_db_pool_new_opts(&o, out, err);
}

int wr_db_pool_new_opts(const wr_db_pool_opts *opts, wr_db_pool **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!opts || !opts->url || !out || opts->size == 0 || opts->size > 1024)
    return wr_err_set(err, WR_EINVAL, "wr_db_pool_new: need a url, out and 1..1024 connections");
  unsigned size = opts->size;
  wr_db_pool *p = calloc(1, sizeof *p);
  if (!p)
    return wr_err_set(err, WR_ENOMEM, "wr_db_pool_new: out of memory");
  p->slots = calloc(size, sizeof *p->slots);
  pthread_condattr_t ca;
  bool cv_ok = false, mu_ok = false;
  if (p->slots && pthread_mutex_init(&p->mu, NULL) == 0) {
    mu_ok = true;
    if (pthread_condattr_init(&ca) == 0) {
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
      cv_ok = pthread_cond_init(&p->cv, &ca) == 0;
      pthread_condattr_destroy(&ca);
    }
  }
  if (!cv_ok) {
    if (mu_ok)
      pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
    return wr_err_set(err, WR_ENOMEM, "wr_db_pool_new: out of memory");
  }
  p->size = size;
  p->free_count = size;
  /* Connect every slot now: a wrong URL or password fails at start, not on the first
   * request. */
  for (unsigned i = 0; i < size; i++) {
    int rc = connect_session(opts->url, opts->application_name, opts->outbox_notify,
                             &p->slots[i].conn, err);
    if (rc) {
      wr_db_pool_free(p);
      return rc;
    }
  }
  *out = p;
  return 0;
}

static void deadline_after(struct timespec *ts, unsigned ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

int wr_db_pool_acquire(wr_db_pool *p, unsigned timeout_ms, PGconn **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!p || !out)
    return wr_err_set(err, WR_EINVAL, "wr_db_pool_acquire: NULL pool or out");
  struct timespec until;
  deadline_after(&until, timeout_ms);
  pthread_mutex_lock(&p->mu);
  while (p->free_count == 0) {
    int w = pthread_cond_timedwait(&p->cv, &p->mu, &until);
    if (w == ETIMEDOUT && p->free_count == 0) {
      pthread_mutex_unlock(&p->mu);
      return wr_err_set(err, WR_ETIMEDOUT,
                        "no database connection free within %u ms "
                        "(pool of %u)",
                        timeout_ms, p->size);
    }
  }
  pool_slot *s = NULL;
  for (unsigned i = 0; i < p->size; i++) {
    if (!p->slots[i].busy) {
      s = &p->slots[i];
      break;
    }
  }
  s->busy = true;
  p->free_count--;
  pthread_mutex_unlock(&p->mu);

  /* Outside the lock: a reset is a full reconnect and may take a while. */
  if (s->needs_reset || wr_db_broken(s->conn)) {
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
      char msg[400];
      copy_msg(msg, sizeof msg, PQerrorMessage(s->conn), PQpass(s->conn));
      s->needs_reset = true;
      wr_db_pool_release(p, s->conn);
      return wr_err_set(err, WR_EDB, "database connection lost and reconnect failed: %s", msg);
    }
    s->needs_reset = false;
  }
  *out = s->conn;
  return 0;
}

void wr_db_pool_release(wr_db_pool *p, PGconn *c) {
  if (!p || !c)
    return;
  pool_slot *s = NULL;
  for (unsigned i = 0; i < p->size; i++)
    if (p->slots[i].conn == c)
      s = &p->slots[i];
  if (!s || !s->busy)
    return; /* not ours, or released twice: nothing safe to do */

  /* Hand the next user a clean session: no open transaction, no pending results. A
   * connection in a state that cannot be cleaned cheaply is reset on next acquire. */
  if (PQstatus(c) != CONNECTION_OK || PQpipelineStatus(c) != PQ_PIPELINE_OFF) {
    s->needs_reset = true;
  } else {
    switch (PQtransactionStatus(c)) {
    case PQTRANS_IDLE:
      break;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR: {
      PGresult *r = PQexec(c, "ROLLBACK");
      if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
        s->needs_reset = true;
      PQclear(r);
      break;
    }
    default: /* a query still running, or unknown */
      s->needs_reset = true;
      break;
    }
  }
  PGnotify *nf;
  while ((nf = PQnotifies(c)) != NULL)
    PQfreemem(nf);

  pthread_mutex_lock(&p->mu);
  s->busy = false;
  p->free_count++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void wr_db_pool_free(wr_db_pool *p) {
  if (!p)
    return;
  for (unsigned i = 0; i < p->size; i++)
    if (p->slots[i].conn)
      PQfinish(p->slots[i].conn);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->slots);
  free(p);
}

char *wr_db_text_array(const char *const *items, size_t n) {
  wr__sbuf b = {0};
  wr__sb_put(&b, "{", 1);
  for (size_t i = 0; i < n; i++)
    wr__sb_pg_elem(&b, items[i], i == 0);
  wr__sb_put(&b, "}", 1);
  if (b.oom) {
    wr__sb_free(&b);
    return NULL;
  }
  return b.p;
}
