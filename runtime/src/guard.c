/* guard.c: the version guard on table warren_versions (warren/consumer.h).
 *
 * One row per (scope, aggregate_type, aggregate_id) holds the newest version a scope
 * (a consumer) has applied, and whether that version deleted the aggregate. Advancing
 * is one statement: an upsert whose DO UPDATE only fires when the incoming version is
 * newer and the stored row is not a tombstone (unless the incoming version is itself
 * a deletion). RETURNING tells whether the row was written, which is the verdict:
 * written = apply, nothing = stale. The statement takes the row lock, so two
 * transactions advancing the same aggregate are serialised by PostgreSQL and the
 * second one is judged against the first one's committed version.
 *
 * Inside a consumer, handlers use wr_msg_guard (consumer.c), which decides a whole
 * batch with one read and one write; its rule is the same as here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>

static const char advance_sql[] =
    "INSERT INTO warren_versions AS v (scope, aggregate_type, aggregate_id, version,"
    " tombstone, updated_at) VALUES ($1, $2, $3, $4::bigint, $5::boolean, now())"
    " ON CONFLICT (scope, aggregate_type, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, tombstone = EXCLUDED.tombstone,"
    " updated_at = EXCLUDED.updated_at"
    " WHERE $6::boolean OR (v.version < EXCLUDED.version"
    " AND (NOT v.tombstone OR EXCLUDED.tombstone))"
    " RETURNING 1";

static const char get_sql[] =
    "SELECT version, tombstone FROM warren_versions"
    " WHERE scope = $1 AND aggregate_type = $2 AND aggregate_id = $3";

static int check_key(const char *scope, const char *aggregate_type, const char *aggregate_id,
                     wr_err *err) {
  if (!scope || !*scope || !aggregate_type || !*aggregate_type || !aggregate_id ||
      !*aggregate_id)
    return wr_err_set(err, WR_EINVAL, "version guard: scope, aggregate type and id are required");
  return 0;
}

int wr_guard_advance(PGconn *c, const char *scope, const char *aggregate_type,
                     const char *aggregate_id, uint64_t version, unsigned flags, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "version guard: NULL connection");
  int rc = check_key(scope, aggregate_type, aggregate_id, err);
  if (rc < 0)
    return rc;
  if (version == 0 || version > (uint64_t)INT64_MAX)
    return wr_err_set(err, WR_EINVAL, "version guard: version %" PRIu64 " out of range 1..%" PRId64,
                      version, INT64_MAX);
  if (flags & ~(unsigned)(WR_GUARD_TOMBSTONE | WR_GUARD_FORCE))
    return wr_err_set(err, WR_EINVAL, "version guard: unknown flags 0x%x", flags);
  char ver[24];
  snprintf(ver, sizeof ver, "%" PRIu64, version);
  const char *params[6] = {scope,
                           aggregate_type,
                           aggregate_id,
                           ver,
                           (flags & WR_GUARD_TOMBSTONE) ? "true" : "false",
                           (flags & WR_GUARD_FORCE) ? "true" : "false"};
  PGresult *r = PQexecParams(c, advance_sql, 6, NULL, params, NULL, NULL, 0);
  rc = wr_db_check(c, r, PGRES_TUPLES_OK, "version guard", err);
  if (rc == 0)
    rc = PQntuples(r) > 0 ? 1 : 0;
  PQclear(r);
  return rc;
}

int wr_guard_get(PGconn *c, const char *scope, const char *aggregate_type,
                 const char *aggregate_id, uint64_t *version, bool *tombstone, wr_err *err) {
  if (!c || !version || !tombstone)
    return wr_err_set(err, WR_EINVAL, "version guard: NULL argument");
  int rc = check_key(scope, aggregate_type, aggregate_id, err);
  if (rc < 0)
    return rc;
  const char *params[3] = {scope, aggregate_type, aggregate_id};
  PGresult *r = PQexecParams(c, get_sql, 3, NULL, params, NULL, NULL, 0);
  rc = wr_db_check(c, r, PGRES_TUPLES_OK, "version guard read", err);
  if (rc == 0) {
    if (PQntuples(r) == 0) {
      *version = 0;
      *tombstone = false;
    } else {
      *version = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
      *tombstone = PQgetvalue(r, 0, 1)[0] == 't';
    }
  }
  PQclear(r);
  return rc;
}
