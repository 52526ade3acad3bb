/* view.c: SQL of the order service (customer_view, orders, catch-up state). */
#include "view.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/consumer.h>
#include <warren/db.h>

static const wr_migration MIGRATIONS[] = {
    {1, "customer view, orders",
     "CREATE TABLE customer_view ("
     "  id text PRIMARY KEY,"
     "  name text NOT NULL,"
     "  email text NOT NULL,"
     "  status text NOT NULL,"
     "  version bigint NOT NULL,"
     "  source_updated_at timestamptz,"
     "  synced_at timestamptz NOT NULL DEFAULT clock_timestamp());"
     "CREATE TABLE orders ("
     "  id text PRIMARY KEY,"
     "  customer_id text NOT NULL,"
     "  amount_cents bigint NOT NULL CHECK (amount_cents > 0),"
     "  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),"
     "  status text NOT NULL,"
     "  created_at timestamptz NOT NULL DEFAULT clock_timestamp());"
     "CREATE INDEX orders_customer ON orders (customer_id);"
     "CREATE TABLE catchup_state ("
     "  source text PRIMARY KEY,"
     "  watermark timestamptz NOT NULL,"
     "  updated_at timestamptz NOT NULL DEFAULT clock_timestamp());"},
};

int view_migrate(PGconn *c, wr_err *err) {
  return wr_db_migrate(c, "order", MIGRATIONS, sizeof MIGRATIONS / sizeof MIGRATIONS[0], err);
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

static int command(PGconn *c, const char *sql, int n, const char *const *p, const char *what,
                   wr_err *err) {
  PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, what);
  PQclear(r);
  return 0;
}

int view_put(PGconn *c, const view_row *r, wr_err *err) {
  char ver[24], upd[24];
  snprintf(ver, sizeof ver, "%" PRIu64, r->version);
  snprintf(upd, sizeof upd, "%" PRId64, r->source_updated_us);
  const char *p[6] = {r->id, r->name, r->email, r->status, ver,
                      r->source_updated_us ? upd : NULL};
  return command(c,
                 "INSERT INTO customer_view (id, name, email, status, version, source_updated_at) "
                 "VALUES ($1, $2, $3, $4, $5, to_timestamp($6::numeric / 1000000)) "
                 "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, "
                 "status = EXCLUDED.status, version = EXCLUDED.version, "
                 "source_updated_at = EXCLUDED.source_updated_at, synced_at = clock_timestamp()",
                 6, p, "upsert customer_view", err);
}

int view_tombstone(PGconn *c, const char *id, uint64_t version, int64_t source_updated_us,
                   wr_err *err) {
  char ver[24], upd[24];
  snprintf(ver, sizeof ver, "%" PRIu64, version);
  snprintf(upd, sizeof upd, "%" PRId64, source_updated_us);
  const char *p[3] = {id, ver, source_updated_us ? upd : NULL};
  return command(c,
                 "INSERT INTO customer_view (id, name, email, status, version, source_updated_at) "
                 "VALUES ($1, '', '', 'deleted', $2, to_timestamp($3::numeric / 1000000)) "
                 "ON CONFLICT (id) DO UPDATE SET status = 'deleted', version = EXCLUDED.version, "
                 "source_updated_at = coalesce(EXCLUDED.source_updated_at, "
                 "customer_view.source_updated_at), synced_at = clock_timestamp()",
                 3, p, "tombstone customer_view", err);
}

int view_get(PGconn *c, const char *id, bool for_update, view_row *out, wr_err *err) {
  const char *p[1] = {id};
  PGresult *r = PQexecParams(
      c,
      for_update
          ? "SELECT id, name, email, status, version, "
            "coalesce((extract(epoch FROM source_updated_at) * 1000000)::bigint, 0), "
            "(extract(epoch FROM synced_at) * 1000000)::bigint FROM customer_view WHERE id = $1 "
            "FOR UPDATE"
          : "SELECT id, name, email, status, version, "
            "coalesce((extract(epoch FROM source_updated_at) * 1000000)::bigint, 0), "
            "(extract(epoch FROM synced_at) * 1000000)::bigint FROM customer_view WHERE id = $1",
      1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "read customer_view");
  if (PQntuples(r) != 1) {
    PQclear(r);
    return WR_ENOTFOUND;
  }
  snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
  snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 1));
  snprintf(out->email, sizeof out->email, "%s", PQgetvalue(r, 0, 2));
  snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, 0, 3));
  out->version = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
  out->source_updated_us = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
  out->synced_us = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
  PQclear(r);
  return 0;
}

int view_apply_source(PGconn *c, const view_row *r, bool force, wr_err *err) {
  bool deleted = strcmp(r->status, "deleted") == 0;
  unsigned flags = (deleted ? WR_GUARD_TOMBSTONE : 0) | (force ? WR_GUARD_FORCE : 0);
  int rc = wr_guard_advance(c, VIEW_SCOPE, VIEW_AGGREGATE, r->id, r->version, flags, err);
  if (rc != 1)
    return rc;
  rc = deleted ? view_tombstone(c, r->id, r->version, r->source_updated_us, err)
               : view_put(c, r, err);
  return rc ? rc : 1;
}

int view_remove(PGconn *c, const char *id, wr_err *err) {
  const char *p[1] = {id};
  return command(c, "DELETE FROM customer_view WHERE id = $1", 1, p, "remove customer_view row",
                 err);
}

int view_watermark_get(PGconn *c, int64_t *us, wr_err *err) {
  PGresult *r = PQexec(c, "SELECT (extract(epoch FROM watermark) * 1000000)::bigint "
                          "FROM catchup_state WHERE source = 'customer'");
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "read catch-up watermark");
  *us = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  return 0;
}

int view_watermark_set(PGconn *c, int64_t us, wr_err *err) {
  char v[24];
  snprintf(v, sizeof v, "%" PRId64, us);
  const char *p[1] = {v};
  return command(c,
                 "INSERT INTO catchup_state (source, watermark) VALUES ('customer', "
                 "to_timestamp($1::numeric / 1000000)) ON CONFLICT (source) DO UPDATE SET "
                 "watermark = greatest(catchup_state.watermark, EXCLUDED.watermark), "
                 "updated_at = clock_timestamp()",
                 1, p, "write catch-up watermark", err);
}

const wr_sync_source view_sync_source = {"customer_view", "id", "version", NULL};
