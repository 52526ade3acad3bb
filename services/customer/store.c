/* store.c: SQL of the customer service. Times travel as Unix microseconds (exact:
 * PostgreSQL 15's extract() returns numeric). */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/db.h>

static const wr_migration MIGRATIONS[] = {
    {1, "customers",
     "CREATE TABLE customers ("
     "  id text PRIMARY KEY,"
     "  name text NOT NULL,"
     "  email text NOT NULL,"
     "  status text NOT NULL CHECK (status IN ('active','pending','suspended','deleted')),"
     "  version bigint NOT NULL CHECK (version >= 1),"
     "  created_at timestamptz NOT NULL,"
     "  updated_at timestamptz NOT NULL);"
     /* keyset pagination of the bulk API; covering so a page is an index-only scan */
     "CREATE INDEX customers_updated ON customers (updated_at, id) INCLUDE (version);"},
};

int store_migrate(PGconn *c, wr_err *err) {
  return wr_db_migrate(c, "customer", MIGRATIONS, sizeof MIGRATIONS / sizeof MIGRATIONS[0], err);
}

static const char *const STATUS_NAMES[] = {NULL, "active", "pending", "suspended", "deleted"};

const char *customer_status_name(customer_status s) {
  return (s >= CUSTOMER_ACTIVE && s <= CUSTOMER_DELETED) ? STATUS_NAMES[s] : "unknown";
}

int customer_status_parse(const char *s, customer_status *out) {
  for (int i = CUSTOMER_ACTIVE; i <= CUSTOMER_DELETED; i++)
    if (s && strcmp(s, STATUS_NAMES[i]) == 0) {
      *out = (customer_status)i;
      return 0;
    }
  return WR_EINVAL;
}

#define COLS                                                                                       \
  "id, name, email, status, version, "                                                             \
  "(extract(epoch FROM created_at) * 1000000)::bigint, "                                           \
  "(extract(epoch FROM updated_at) * 1000000)::bigint"

static int row_to_customer(PGresult *r, int i, customer *cu) {
  snprintf(cu->id, sizeof cu->id, "%s", PQgetvalue(r, i, 0));
  snprintf(cu->name, sizeof cu->name, "%s", PQgetvalue(r, i, 1));
  snprintf(cu->email, sizeof cu->email, "%s", PQgetvalue(r, i, 2));
  if (customer_status_parse(PQgetvalue(r, i, 3), &cu->status) != 0)
    return WR_EDB;
  cu->version = strtoull(PQgetvalue(r, i, 4), NULL, 10);
  cu->created_us = strtoll(PQgetvalue(r, i, 5), NULL, 10);
  cu->updated_us = strtoll(PQgetvalue(r, i, 6), NULL, 10);
  return 0;
}

static int fail(PGresult *r, wr_err *err, const char *what) {
  wr_err_set(err, WR_EDB, "%s: %s", what, PQresultErrorMessage(r));
  if (err) {
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st ? st : "");
  }
  PQclear(r);
  return WR_EDB;
}

int store_insert(PGconn *c, customer *cu, wr_err *err) {
  int rc = wr_uuid_v7(cu->id);
  if (rc)
    return wr_err_set(err, rc, "no randomness for a customer id");
  const char *p[4] = {cu->id, cu->name, cu->email, customer_status_name(cu->status)};
  PGresult *r = PQexecParams(c,
                             "INSERT INTO customers VALUES ($1, $2, $3, $4, 1, "
                             "clock_timestamp(), clock_timestamp()) RETURNING " COLS,
                             4, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "insert customer");
  rc = row_to_customer(r, 0, cu);
  PQclear(r);
  return rc;
}

int store_get(PGconn *c, const char *id, bool for_update, customer *out, wr_err *err) {
  const char *p[1] = {id};
  PGresult *r = PQexecParams(c,
                             for_update ? "SELECT " COLS " FROM customers WHERE id = $1 FOR UPDATE"
                                        : "SELECT " COLS " FROM customers WHERE id = $1",
                             1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "get customer");
  int rc = PQntuples(r) == 1 ? row_to_customer(r, 0, out)
                             : wr_err_set(err, WR_ENOTFOUND, "customer %s not found", id);
  PQclear(r);
  return rc;
}

int store_update(PGconn *c, customer *cu, wr_err *err) {
  const char *p[4] = {cu->id, cu->name, cu->email, customer_status_name(cu->status)};
  /* clock_timestamp(), not now(): several changes in one transaction stay ordered,
   * and the bulk API's updated_at follows the order of the changes. */
  PGresult *r = PQexecParams(c,
                             "UPDATE customers SET name = $2, email = $3, status = $4, "
                             "version = version + 1, "
                             "updated_at = greatest(clock_timestamp(), updated_at) "
                             "WHERE id = $1 RETURNING " COLS,
                             4, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "update customer");
  int rc = PQntuples(r) == 1 ? row_to_customer(r, 0, cu)
                             : wr_err_set(err, WR_ENOTFOUND, "customer %s not found", cu->id);
  PQclear(r);
  return rc;
}

static int each_row(PGresult *r, int n, store_row_fn fn, void *user) {
  for (int i = 0; i < n; i++) {
    customer cu;
    int rc = row_to_customer(r, i, &cu);
    if (rc == 0)
      rc = fn(&cu, user);
    if (rc)
      return rc;
  }
  return 0;
}

/* The visibility horizon of a page. updated_at is stamped inside the writing
 * transaction (clock_timestamp()), before its COMMIT, so concurrent writers commit
 * out of updated_at order: after a page that ended at T, a row stamped before T may
 * still commit, and a cursor already past T would never show it (measured: a reader
 * tailing the API under 8 concurrent writers missed a handful of rows in seconds).
 * A page therefore returns only rows stamped before the start of every transaction
 * that is writing customers right now (it holds RowExclusiveLock on the table from
 * before it stamps anything until it ends), capped by the current time. Rows at or
 * after the horizon are returned by a later request, once those transactions ended.
 * The horizon is read in its own statement, BEFORE the page's snapshot: a writer that
 * commits between the two is either counted in it or stamps its rows after it.
 * Limits: pg_stat_activity hides the transaction start of other roles' sessions
 * (writes outside the service are outside the sync contract anyway), and a long-open
 * writing transaction holds the horizon back for as long as it stays open. */
static int page_horizon(PGconn *c, char *out, size_t outsz, wr_err *err) {
  PGresult *r = PQexec(c, "SELECT least(clock_timestamp(), (SELECT min(a.xact_start)"
                          " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                          " WHERE l.locktype = 'relation' AND l.relation = 'customers'::regclass"
                          " AND l.database = (SELECT oid FROM pg_database"
                          "                   WHERE datname = current_database())"
                          " AND l.mode = 'RowExclusiveLock' AND l.granted"
                          " AND l.pid <> pg_backend_pid()))::text");
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    return fail(r, err, "page horizon");
  snprintf(out, outsz, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  return 0;
}

int store_page(PGconn *c, int64_t since_us, int64_t after_us, const char *after_id, unsigned limit,
               store_row_fn fn, void *user, bool *more, wr_err *err) {
  char ts[32], lim[16], horizon[64];
  snprintf(lim, sizeof lim, "%u", limit + 1);
  int rc = page_horizon(c, horizon, sizeof horizon, err);
  if (rc)
    return rc;
  PGresult *r;
  if (after_id) {
    snprintf(ts, sizeof ts, "%" PRId64, after_us);
    const char *p[4] = {ts, after_id, lim, horizon};
    r = PQexecParams(c,
                     "SELECT " COLS " FROM customers "
                     "WHERE (updated_at, id) > (to_timestamp($1::numeric / 1000000), $2) "
                     "AND updated_at < $4::timestamptz "
                     "ORDER BY updated_at, id LIMIT $3",
                     4, NULL, p, NULL, NULL, 0);
  } else if (since_us != STORE_SINCE_ALL) {
    snprintf(ts, sizeof ts, "%" PRId64, since_us);
    const char *p[3] = {ts, lim, horizon};
    r = PQexecParams(c,
                     "SELECT " COLS " FROM customers "
                     "WHERE updated_at >= to_timestamp($1::numeric / 1000000) "
                     "AND updated_at < $3::timestamptz "
                     "ORDER BY updated_at, id LIMIT $2",
                     3, NULL, p, NULL, NULL, 0);
  } else {
    const char *p[2] = {lim, horizon};
    r = PQexecParams(c,
                     "SELECT " COLS " FROM customers WHERE updated_at < $2::timestamptz "
                     "ORDER BY updated_at, id LIMIT $1",
                     2, NULL, p, NULL, NULL, 0);
  }
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "page customers");
  int n = PQntuples(r);
  *more = n > (int)limit;
  rc = each_row(r, *more ? (int)limit : n, fn, user);
  PQclear(r);
  return rc;
}

int store_by_ids(PGconn *c, const char *const *ids, size_t n, store_row_fn fn, void *user,
                 wr_err *err) {
  char *arr = wr_db_text_array(ids, n);
  if (!arr)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  const char *p[1] = {arr};
  PGresult *r =
      PQexecParams(c, "SELECT " COLS " FROM customers WHERE id = ANY($1::text[]) ORDER BY id", 1,
                   NULL, p, NULL, NULL, 0);
  free(arr);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "customers by ids");
  int rc = each_row(r, PQntuples(r), fn, user);
  PQclear(r);
  return rc;
}

int store_by_id_from(PGconn *c, const char *after_id, unsigned limit, store_row_fn fn, void *user,
                     wr_err *err) {
  char lim[16];
  snprintf(lim, sizeof lim, "%u", limit);
  const char *p[2] = {after_id ? after_id : "", lim};
  PGresult *r = PQexecParams(c, "SELECT " COLS " FROM customers WHERE id > $1 ORDER BY id LIMIT $2",
                             2, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "customers by id");
  int rc = each_row(r, PQntuples(r), fn, user);
  PQclear(r);
  return rc;
}

const wr_sync_source store_sync_source = {"customers", "id", "version", NULL};
