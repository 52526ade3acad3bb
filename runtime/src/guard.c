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
 * batch with one read and one write; its rule is the same as here.
 *
 * wr_guard_advance_many is the same upsert over unnest()ed arrays: one round trip for
 * a whole catch-up page instead of one per aggregate. RETURNING names the rows that
 * were written; they are matched back to the caller's order by id (ids are distinct,
 * which also keeps ON CONFLICT from meeting one row twice, an error in PostgreSQL).
 * wr_guard_record_new is the same without ON CONFLICT: a plain insert, for aggregates
 * that have no row yet, about half the cost of the upsert (docs/PERFORMANCE.md); a
 * row that exists after all is a unique violation, reported as WR_EEXIST. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>

#include "sbuf.h"

static const char advance_sql[] =
    "INSERT INTO warren_versions AS v (scope, aggregate_type, aggregate_id, version,"
    " tombstone, updated_at) VALUES ($1, $2, $3, $4::bigint, $5::boolean, now())"
    " ON CONFLICT (scope, aggregate_type, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, tombstone = EXCLUDED.tombstone,"
    " updated_at = EXCLUDED.updated_at"
    " WHERE $6::boolean OR (v.version < EXCLUDED.version"
    " AND (NOT v.tombstone OR EXCLUDED.tombstone))"
    " RETURNING 1";

static const char advance_many_sql[] =
    "INSERT INTO warren_versions AS v (scope, aggregate_type, aggregate_id, version,"
    " tombstone, updated_at)"
    " SELECT $1, $2, k.id, k.ver, k.tomb, now()"
    " FROM unnest($3::text[], $4::bigint[], $5::boolean[]) AS k(id, ver, tomb)"
    " ORDER BY k.id"
    " ON CONFLICT (scope, aggregate_type, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, tombstone = EXCLUDED.tombstone,"
    " updated_at = EXCLUDED.updated_at"
    " WHERE v.version < EXCLUDED.version AND (NOT v.tombstone OR EXCLUDED.tombstone)"
    " RETURNING v.aggregate_id";

/* The first load into an empty scope: no row can be stale, nothing to lock first. */
static const char record_new_sql[] =
    "INSERT INTO warren_versions (scope, aggregate_type, aggregate_id, version, tombstone,"
    " updated_at)"
    " SELECT $1, $2, k.id, k.ver, k.tomb, now()"
    " FROM unnest($3::text[], $4::bigint[], $5::boolean[]) AS k(id, ver, tomb)";

static const char get_sql[] = "SELECT version, tombstone FROM warren_versions"
                              " WHERE scope = $1 AND aggregate_type = $2 AND aggregate_id = $3";

static int check_key(const char *scope, const char *aggregate_type, const char *aggregate_id,
                     wr_err *err) {
  if (!scope || !*scope || !aggregate_type || !*aggregate_type || !aggregate_id || !*aggregate_id)
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

typedef struct id_ref {
  const char *id;
  size_t i;
} id_ref;

static int id_ref_cmp(const void *a, const void *b) {
  return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id);
}

/* The arguments of a batch call: validated, ids checked distinct (order: sorted index,
 * for matching RETURNING rows back), and the three array literals. 0 or <0 (nothing
 * to free then). */
typedef struct batch_args {
  id_ref *order;
  wr__sbuf ids, versions, tombs;
} batch_args;

static void batch_args_free(batch_args *a) {
  free(a->order);
  wr__sb_free(&a->ids);
  wr__sb_free(&a->versions);
  wr__sb_free(&a->tombs);
}

static int batch_args_make(PGconn *c, const char *scope, const char *aggregate_type, size_t n,
                           const char *const *ids, const uint64_t *versions, const bool *tombstones,
                           batch_args *a, wr_err *err) {
  memset(a, 0, sizeof *a);
  if (!c || !ids || !versions)
    return wr_err_set(err, WR_EINVAL, "version guard: NULL connection, ids or versions");
  if (!scope || !*scope || !aggregate_type || !*aggregate_type)
    return wr_err_set(err, WR_EINVAL, "version guard: scope and aggregate type are required");
  if (n > WR_GUARD_BATCH_MAX)
    return wr_err_set(err, WR_EINVAL, "version guard: %zu aggregates in one call (max %u)", n,
                      WR_GUARD_BATCH_MAX);
  for (size_t i = 0; i < n; i++) {
    if (!ids[i] || !*ids[i])
      return wr_err_set(err, WR_EINVAL, "version guard: aggregate %zu has no id", i);
    if (versions[i] == 0 || versions[i] > (uint64_t)INT64_MAX)
      return wr_err_set(err, WR_EINVAL,
                        "version guard: version %" PRIu64
                        " of aggregate %zu out of range 1..%" PRId64,
                        versions[i], i, INT64_MAX);
  }
  if (n == 0)
    return 0;
  a->order = malloc(n * sizeof *a->order);
  if (!a->order)
    return wr_err_set(err, WR_ENOMEM, "version guard: out of memory");
  for (size_t i = 0; i < n; i++)
    a->order[i] = (id_ref){ids[i], i};
  qsort(a->order, n, sizeof *a->order, id_ref_cmp);
  for (size_t i = 1; i < n; i++)
    if (strcmp(a->order[i - 1].id, a->order[i].id) == 0) {
      /* the id belongs to the caller: name it, then free the index */
      const char *dup = a->order[i].id;
      batch_args_free(a);
      return wr_err_set(err, WR_EINVAL, "version guard: aggregate id \"%.64s\" given twice", dup);
    }
  wr__sb_put(&a->ids, "{", 1);
  wr__sb_put(&a->versions, "{", 1);
  wr__sb_put(&a->tombs, "{", 1);
  for (size_t i = 0; i < n; i++) {
    char num[24];
    int len = snprintf(num, sizeof num, "%s%" PRIu64, i ? "," : "", versions[i]);
    wr__sb_pg_elem(&a->ids, ids[i], i == 0);
    wr__sb_put(&a->versions, num, (size_t)len);
    wr__sb_cstr(&a->tombs, i ? "," : "");
    wr__sb_cstr(&a->tombs, tombstones && tombstones[i] ? "t" : "f");
  }
  wr__sb_put(&a->ids, "}", 1);
  wr__sb_put(&a->versions, "}", 1);
  wr__sb_put(&a->tombs, "}", 1);
  if (a->ids.oom || a->versions.oom || a->tombs.oom) {
    batch_args_free(a);
    return wr_err_set(err, WR_ENOMEM, "version guard: out of memory");
  }
  return 0;
}

int wr_guard_advance_many(PGconn *c, const char *scope, const char *aggregate_type, size_t n,
                          const char *const *ids, const uint64_t *versions, const bool *tombstones,
                          bool *applied, wr_err *err) {
  batch_args a;
  int rc = batch_args_make(c, scope, aggregate_type, n, ids, versions, tombstones, &a, err);
  if (rc)
    return rc;
  if (applied)
    memset(applied, 0, n * sizeof *applied);
  if (n == 0)
    return 0;
  const char *params[5] = {scope, aggregate_type, a.ids.p, a.versions.p, a.tombs.p};
  PGresult *r = PQexecParams(c, advance_many_sql, 5, NULL, params, NULL, NULL, 0);
  rc = wr_db_check(c, r, PGRES_TUPLES_OK, "version guard", err);
  if (rc == 0) {
    rc = PQntuples(r);
    for (int row = 0; applied && row < PQntuples(r); row++) {
      id_ref key = {PQgetvalue(r, row, 0), 0};
      const id_ref *hit = bsearch(&key, a.order, n, sizeof *a.order, id_ref_cmp);
      if (hit)
        applied[hit->i] = true;
    }
  }
  PQclear(r);
  batch_args_free(&a);
  return rc;
}

int wr_guard_record_new(PGconn *c, const char *scope, const char *aggregate_type, size_t n,
                        const char *const *ids, const uint64_t *versions, const bool *tombstones,
                        wr_err *err) {
  batch_args a;
  int rc = batch_args_make(c, scope, aggregate_type, n, ids, versions, tombstones, &a, err);
  if (rc || n == 0)
    return rc;
  const char *params[5] = {scope, aggregate_type, a.ids.p, a.versions.p, a.tombs.p};
  PGresult *r = PQexecParams(c, record_new_sql, 5, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_COMMAND_OK) {
    rc = (int)n;
  } else {
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    rc = wr_db_check(c, r, PGRES_COMMAND_OK, "version guard", err);
    if (st && strcmp(st, "23505") == 0) /* unique_violation: an aggregate has a row */
      rc = wr_err_set(err, WR_EEXIST, "version guard: an aggregate of the batch has a row already");
  }
  PQclear(r);
  batch_args_free(&a);
  return rc;
}

int wr_guard_get(PGconn *c, const char *scope, const char *aggregate_type, const char *aggregate_id,
                 uint64_t *version, bool *tombstone, wr_err *err) {
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
