/* view.c: SQL of the order service (customer_view, orders, catch-up state). */
#include "view.h"

#include <inttypes.h>
#include <stdint.h>
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

const char *view_status_name(Customer__V1__CustomerStatus st) {
  switch (st) {
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE:
    return "active";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING:
    return "pending";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED:
    return "suspended";
  case CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED:
    return "deleted";
  default:
    return NULL;
  }
}

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
  const char *p[6] = {r->id, r->name, r->email, r->status, ver, r->source_updated_us ? upd : NULL};
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

/* ---- set-based writes ------------------------------------------------------------
 *
 * Rows live in one growable array plus one string arena (offsets, not pointers, so the
 * arena may move when it grows). A write sorts the rows by (id, version, order added),
 * keeps the last row of every id and sends the columns as six array parameters that
 * unnest() turns back into rows: one statement, one round trip, whatever the batch
 * size (measured: one statement per event capped the consumer at the database's round
 * trips, docs/PERFORMANCE.md). The statement repeats view_put's and view_tombstone's effect per
 * row, chosen by the status. */

static const char batch_upsert_sql[] =
    "INSERT INTO customer_view AS v (id, name, email, status, version, source_updated_at)"
    " SELECT k.id, k.name, k.email, k.status, k.version,"
    " to_timestamp(k.upd::numeric / 1000000)"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])"
    " AS k(id, name, email, status, version, upd)"
    " ORDER BY k.id"
    " ON CONFLICT (id) DO UPDATE SET"
    " name = CASE WHEN EXCLUDED.status = 'deleted' THEN v.name ELSE EXCLUDED.name END,"
    " email = CASE WHEN EXCLUDED.status = 'deleted' THEN v.email ELSE EXCLUDED.email END,"
    " status = EXCLUDED.status, version = EXCLUDED.version,"
    " source_updated_at = CASE WHEN EXCLUDED.status = 'deleted'"
    " THEN coalesce(EXCLUDED.source_updated_at, v.source_updated_at)"
    " ELSE EXCLUDED.source_updated_at END,"
    " synced_at = clock_timestamp()";

/* The first load into an empty view: plain inserts, no conflict possible. */
/* The first load's plain insert. The source time is computed without numeric
 * arithmetic (exact: a bigint count of microseconds times an interval of one), which
 * took about a tenth of the statement's time as to_timestamp(numeric / 1000000). */
static const char batch_insert_sql[] =
    "INSERT INTO customer_view (id, name, email, status, version, source_updated_at)"
    " SELECT k.id, k.name, k.email, k.status, k.version,"
    " timestamptz 'epoch' + k.upd * interval '1 microsecond'"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])"
    " AS k(id, name, email, status, version, upd)";

typedef struct vb_row {
  size_t id, name, email, status; /* offsets into the arena */
  uint64_t version;
  int64_t upd_us;
  size_t seq;
} vb_row;

struct view_batch {
  vb_row *rows;
  size_t n, cap;
  char *arena;
  size_t alen, acap;
  size_t *order; /* sorted row indexes, then the kept ones */
  size_t *pre;   /* rows written before the kept ones (see merge) */
  size_t order_cap;
  const char **text[4]; /* a write's text columns: id, name, email, status */
  size_t text_cap;
  char *nums; /* a write's two integer array literals: version, source time */
  size_t nums_cap;
  const char **ids; /* guard arguments (catch-up) */
  uint64_t *versions;
  bool *tombs, *applied;
  size_t guard_cap;
  uint8_t *bin; /* a catch-up write's binary array parameters */
  size_t bin_cap;
};

int view_batch_new(view_batch **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : WR_ENOMEM;
}

void view_batch_free(view_batch *b) {
  if (!b)
    return;
  free(b->rows);
  free(b->arena);
  free(b->order);
  free(b->pre);
  for (int i = 0; i < 4; i++)
    free(b->text[i]);
  free(b->nums);
  free(b->ids);
  free(b->versions);
  free(b->tombs);
  free(b->applied);
  free(b->bin);
  free(b);
}

size_t view_batch_size(const view_batch *b) {
  return b ? b->n : 0;
}

void view_batch_clear(view_batch *b) {
  if (b) {
    b->n = 0;
    b->alen = 0;
  }
}

/* Copies s (with its NUL) into the arena; returns its offset or SIZE_MAX. */
static size_t arena_put(view_batch *b, const char *s) {
  size_t len = strlen(s) + 1;
  if (b->alen + len > b->acap) {
    size_t cap = b->acap ? b->acap : 16384;
    while (cap < b->alen + len)
      cap *= 2;
    char *np = realloc(b->arena, cap);
    if (!np)
      return SIZE_MAX;
    b->arena = np;
    b->acap = cap;
  }
  memcpy(b->arena + b->alen, s, len);
  b->alen += len;
  return b->alen - len;
}

int view_batch_add(view_batch *b, const char *id, const char *name, const char *email,
                   const char *status, uint64_t version, int64_t source_updated_us) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    vb_row *nr = realloc(b->rows, cap * sizeof *nr);
    if (!nr)
      return WR_ENOMEM;
    b->rows = nr;
    b->cap = cap;
  }
  bool deleted = strcmp(status, "deleted") == 0;
  size_t mark = b->alen;
  vb_row r = {.version = version, .upd_us = source_updated_us, .seq = b->n};
  r.id = arena_put(b, id);
  r.name = arena_put(b, deleted ? "" : name);
  r.email = arena_put(b, deleted ? "" : email);
  r.status = arena_put(b, status);
  if (r.id == SIZE_MAX || r.name == SIZE_MAX || r.email == SIZE_MAX || r.status == SIZE_MAX) {
    b->alen = mark;
    return WR_ENOMEM;
  }
  b->rows[b->n++] = r;
  return 0;
}

/* qsort has no context argument: the batch being sorted, on this thread. */
static _Thread_local const view_batch *sorting;

static int row_cmp(const void *pa, const void *pb) {
  const vb_row *x = &sorting->rows[*(const size_t *)pa], *y = &sorting->rows[*(const size_t *)pb];
  int c = strcmp(sorting->arena + x->id, sorting->arena + y->id);
  if (c)
    return c;
  if (x->version != y->version)
    return x->version < y->version ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorts the rows and keeps, in b->order[0..*kept), the last row of every id. When that
 * row is a tombstone preceded by an ordinary row of the same id, the last such row is
 * listed in b->pre[0..*n_pre): writing those first and then the kept rows has exactly
 * the effect of writing every row in order (the tombstone keeps the name and e-mail
 * the earlier row wrote). */
static int merge(view_batch *b, size_t *kept, size_t *n_pre) {
  if (b->order_cap < b->n) {
    size_t *no = realloc(b->order, b->n * sizeof *no);
    if (no)
      b->order = no;
    size_t *np = realloc(b->pre, b->n * sizeof *np);
    if (np)
      b->pre = np;
    if (!no || !np)
      return WR_ENOMEM;
    b->order_cap = b->n;
  }
  for (size_t i = 0; i < b->n; i++)
    b->order[i] = i;
  sorting = b;
  qsort(b->order, b->n, sizeof *b->order, row_cmp);
  sorting = NULL;
  size_t w = 0, np = 0;
  size_t group = 0; /* first index (in order) of the current id's rows */
  for (size_t i = 0; i < b->n; i++) {
    const vb_row *r = &b->rows[b->order[i]];
    const char *id = b->arena + r->id;
    if (i + 1 < b->n && strcmp(id, b->arena + b->rows[b->order[i + 1]].id) == 0)
      continue; /* a newer row of this id follows */
    if (strcmp(b->arena + r->status, "deleted") == 0) {
      /* Written in order, the trailing tombstones each keep the source time unless they
       * bring one: the newest they bring wins, else the earlier row's (or the stored
       * one's, through the statement's coalesce). */
      vb_row *kept_row = &b->rows[b->order[i]];
      size_t j = i; /* order[j..i]: the trailing tombstones */
      while (j > group && strcmp(b->arena + b->rows[b->order[j - 1]].status, "deleted") == 0)
        j--;
      for (size_t t = i; !kept_row->upd_us && t > j; t--)
        kept_row->upd_us = b->rows[b->order[t - 1]].upd_us;
      if (j > group) /* the row before them is an ordinary one: written first */
        b->pre[np++] = b->order[j - 1];
    }
    b->order[w++] = b->order[i];
    group = i + 1;
  }
  *kept = w;
  *n_pre = np;
  return 0;
}

/* Room per value of an integer array literal: a comma and up to 20 characters. */
#define NUM_ROOM 22

/* The upsert of the rows idx[i] with keep[i] (keep NULL: all), i < n. Text columns
 * travel as text[] literals (wr_db_text_array quotes and escapes every element), the
 * integers as bigint[] literals written here. */
static int upsert(PGconn *c, view_batch *b, const size_t *idx, size_t n, const bool *keep,
                  const char *sql, wr_err *err) {
  if (b->text_cap < n) {
    for (int k = 0; k < 4; k++) {
      const char **nt = realloc(b->text[k], n * sizeof *nt);
      if (!nt)
        return wr_err_set(err, WR_ENOMEM, "customer_view batch: out of memory");
      b->text[k] = nt;
    }
    b->text_cap = n;
  }
  size_t room = n * NUM_ROOM + 3;
  if (b->nums_cap < 2 * room) {
    char *nn = realloc(b->nums, 2 * room);
    if (!nn)
      return wr_err_set(err, WR_ENOMEM, "customer_view batch: out of memory");
    b->nums = nn;
    b->nums_cap = 2 * room;
  }
  char *vers = b->nums, *upds = b->nums + room;
  size_t m = 0, vl = 0, ul = 0;
  vers[vl++] = '{';
  upds[ul++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (keep && !keep[i])
      continue;
    const vb_row *r = &b->rows[idx[i]];
    b->text[0][m] = b->arena + r->id;
    b->text[1][m] = b->arena + r->name;
    b->text[2][m] = b->arena + r->email;
    b->text[3][m] = b->arena + r->status;
    if (m++) {
      vers[vl++] = ',';
      upds[ul++] = ',';
    }
    vl += (size_t)snprintf(vers + vl, NUM_ROOM, "%" PRIu64, r->version);
    if (r->upd_us) {
      ul += (size_t)snprintf(upds + ul, NUM_ROOM, "%" PRId64, r->upd_us);
    } else {
      memcpy(upds + ul, "NULL", 4);
      ul += 4;
    }
  }
  vers[vl++] = '}';
  vers[vl] = '\0';
  upds[ul++] = '}';
  upds[ul] = '\0';
  if (m == 0)
    return 0;
  char *t[4] = {NULL, NULL, NULL, NULL};
  int rc = 0;
  for (int k = 0; k < 4 && rc == 0; k++)
    if (!(t[k] = wr_db_text_array(b->text[k], m)))
      rc = wr_err_set(err, WR_ENOMEM, "customer_view batch: out of memory");
  if (rc == 0) {
    const char *p[6] = {t[0], t[1], t[2], t[3], vers, upds};
    rc = command(c, sql, 6, p, "write customer_view batch", err);
  }
  for (int k = 0; k < 4; k++)
    free(t[k]);
  return rc;
}

/* PostgreSQL's binary array format: big-endian words. */
static uint8_t *put32(uint8_t *o, uint32_t v) {
  o[0] = (uint8_t)(v >> 24);
  o[1] = (uint8_t)(v >> 16);
  o[2] = (uint8_t)(v >> 8);
  o[3] = (uint8_t)v;
  return o + 4;
}

static uint8_t *put64(uint8_t *o, uint64_t v) {
  return put32(put32(o, (uint32_t)(v >> 32)), (uint32_t)v);
}

#define ARRAY_HEAD 20 /* ndim, has-null flag, element type, length, lower bound */
#define TEXT_OID   25
#define INT8_OID   20

static uint8_t *array_head(uint8_t *o, bool has_null, uint32_t oid, size_t n) {
  return put32(put32(put32(put32(put32(o, 1), has_null), oid), (uint32_t)n), 1);
}

/* The catch-up's writes: the same statements as upsert() takes, with the rows idx[i]
 * with keep[i] (keep NULL: all), i < n, passed as binary arrays (no quoting here, no
 * array literal parsing in the server: together about a tenth of the statement's cost
 * in a profile of a catch-up). */
static int write_binary(PGconn *c, view_batch *b, const size_t *idx, size_t n, const bool *keep,
                        const char *sql, wr_err *err) {
  size_t m = 0, text = 0;
  bool upd_null = false;
  for (size_t i = 0; i < n; i++) {
    if (keep && !keep[i])
      continue;
    const vb_row *r = &b->rows[idx[i]];
    text += strlen(b->arena + r->id) + strlen(b->arena + r->name) + strlen(b->arena + r->email) +
            strlen(b->arena + r->status);
    upd_null |= r->upd_us == 0;
    m++;
  }
  if (m == 0)
    return 0;
  size_t need = 6 * ARRAY_HEAD + 4 * 4 * m + text + 2 * 12 * m;
  if (b->bin_cap < need) {
    uint8_t *nb = realloc(b->bin, need);
    if (!nb)
      return wr_err_set(err, WR_ENOMEM, "customer_view batch: out of memory");
    b->bin = nb;
    b->bin_cap = need;
  }
  const char *vals[6];
  int lens[6];
  static const int formats[6] = {1, 1, 1, 1, 1, 1};
  uint8_t *o = b->bin;
  for (int k = 0; k < 4; k++) {
    uint8_t *start = o;
    o = array_head(o, false, TEXT_OID, m);
    for (size_t i = 0; i < n; i++) {
      if (keep && !keep[i])
        continue;
      const vb_row *r = &b->rows[idx[i]];
      const char *v = b->arena + (k == 0   ? r->id
                                  : k == 1 ? r->name
                                  : k == 2 ? r->email
                                           : r->status);
      size_t len = strlen(v);
      o = put32(o, (uint32_t)len);
      memcpy(o, v, len);
      o += len;
    }
    vals[k] = (const char *)start;
    lens[k] = (int)(o - start);
  }
  for (int k = 4; k < 6; k++) {
    uint8_t *start = o;
    o = array_head(o, k == 5 && upd_null, INT8_OID, m);
    for (size_t i = 0; i < n; i++) {
      if (keep && !keep[i])
        continue;
      const vb_row *r = &b->rows[idx[i]];
      if (k == 5 && r->upd_us == 0) {
        o = put32(o, UINT32_MAX); /* -1: NULL */
        continue;
      }
      o = put64(put32(o, 8), k == 4 ? r->version : (uint64_t)r->upd_us);
    }
    vals[k] = (const char *)start;
    lens[k] = (int)(o - start);
  }
  PGresult *r = PQexecParams(c, sql, 6, NULL, vals, lens, formats, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    return fail(r, err, "write customer_view batch");
  PQclear(r);
  return 0;
}

int view_batch_write(PGconn *c, view_batch *b, wr_err *err) {
  if (b->n == 0)
    return 0;
  size_t kept, n_pre;
  int rc = merge(b, &kept, &n_pre);
  if (rc)
    return wr_err_set(err, rc, "customer_view batch: out of memory");
  if (n_pre)
    rc = upsert(c, b, b->pre, n_pre, NULL, batch_upsert_sql, err);
  if (rc == 0)
    rc = upsert(c, b, b->order, kept, NULL, batch_upsert_sql, err);
  if (rc == 0)
    view_batch_clear(b);
  return rc;
}

/* Merges the rows and fills the guard arguments (ids, versions, tombstones) of the
 * kept ones. */
static int guard_args(view_batch *b, size_t *kept, wr_err *err) {
  /* Only the newest row of an id is guarded and written (n_pre is not used: the bulk
   * API lists an id once per page, so a page never holds two rows of one customer). */
  size_t n_pre;
  int rc = merge(b, kept, &n_pre);
  if (rc)
    return wr_err_set(err, rc, "customer_view batch: out of memory");
  if (b->guard_cap < *kept) {
    const char **ni = realloc(b->ids, *kept * sizeof *ni);
    if (ni)
      b->ids = ni;
    uint64_t *nv = realloc(b->versions, *kept * sizeof *nv);
    if (nv)
      b->versions = nv;
    bool *nt = realloc(b->tombs, *kept * sizeof *nt);
    if (nt)
      b->tombs = nt;
    bool *na = realloc(b->applied, *kept * sizeof *na);
    if (na)
      b->applied = na;
    if (!ni || !nv || !nt || !na)
      return wr_err_set(err, WR_ENOMEM, "customer_view batch: out of memory");
    b->guard_cap = *kept;
  }
  for (size_t i = 0; i < *kept; i++) {
    const vb_row *r = &b->rows[b->order[i]];
    b->ids[i] = b->arena + r->id;
    b->versions[i] = r->version;
    b->tombs[i] = strcmp(b->arena + r->status, "deleted") == 0;
  }
  return 0;
}

int view_batch_apply_source(PGconn *c, view_batch *b, size_t *applied, wr_err *err) {
  *applied = 0;
  if (b->n == 0)
    return 0;
  size_t kept;
  int rc = guard_args(b, &kept, err);
  if (rc)
    return rc;
  rc = wr_guard_advance_many(c, VIEW_SCOPE, VIEW_AGGREGATE, kept, b->ids, b->versions, b->tombs,
                             b->applied, err);
  if (rc < 0)
    return rc;
  size_t n_applied = (size_t)rc;
  rc = n_applied ? write_binary(c, b, b->order, kept, b->applied, batch_upsert_sql, err) : 0;
  if (rc)
    return rc;
  *applied = n_applied;
  view_batch_clear(b);
  return 0;
}

int view_batch_insert_new(PGconn *c, view_batch *b, size_t *applied, wr_err *err) {
  *applied = 0;
  if (b->n == 0)
    return 0;
  size_t kept;
  int rc = guard_args(b, &kept, err);
  if (rc)
    return rc;
  rc = wr_guard_record_new(c, VIEW_SCOPE, VIEW_AGGREGATE, kept, b->ids, b->versions, b->tombs, err);
  if (rc < 0)
    return rc;
  wr_err e = {0};
  rc = write_binary(c, b, b->order, kept, NULL, batch_insert_sql, &e);
  if (rc == WR_EDB && strcmp(e.sqlstate, "23505") == 0)
    rc = wr_err_set(&e, WR_EEXIST, "customer_view: a customer of the batch has a row already");
  if (rc) {
    if (err)
      *err = e;
    return rc;
  }
  *applied = kept;
  view_batch_clear(b);
  return 0;
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
