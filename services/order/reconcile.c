/* reconcile.c: compares the view with the source by bucket checksums over
 * (id, version) and repairs what differs.
 *
 * 1. local and remote checksums of N buckets; equal buckets are done;
 * 2. for each differing bucket, both member lists (id, version), merged by id;
 * 3. rows missing here or older here are fetched in full from the source
 *    (GET /customers?ids=...) and written over the view and its guard (repair);
 *    rows the source does not have are removed; rows newer here than in the source's
 *    answer are left alone: an event overtook the fetch, the view is ahead, not wrong.
 * The checksum covers versions, not contents: a row changed here without a version
 * change is not detected here; a snapshot (POST /admin/snapshots on the customer
 * service, or its periodic snapshots) rewrites contents at the same version. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "view.h"

#define IDS_PER_FETCH 200

typedef struct member {
  char id[VIEW_ID_MAX + 1];
  uint64_t version;
} member;

typedef struct members {
  member *v;
  size_t n, cap;
} members;

static int push(members *m, const char *id, uint64_t version) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    member *nv = realloc(m->v, cap * sizeof *nv);
    if (!nv)
      return WR_ENOMEM;
    m->v = nv;
    m->cap = cap;
  }
  snprintf(m->v[m->n].id, sizeof m->v[0].id, "%s", id);
  m->v[m->n].version = version;
  m->n++;
  return 0;
}

static int cmp_member(const void *a, const void *b) {
  return strcmp(((const member *)a)->id, ((const member *)b)->id);
}

static int local_member(const char *id, uint64_t version, void *user) {
  return push(user, id, version);
}

static int get_json(app *a, const char *url, json_t **out, wr_err *err) {
  int status = 0;
  int rc = wr_http_get_json(url, NULL, 30000, &status, out, err);
  if (rc)
    return rc;
  if (status != 200) {
    json_decref(*out);
    *out = NULL;
    return wr_err_set(err, WR_EHTTP, "GET %s: HTTP %d", url, status);
  }
  return 0;
}

static int remote_checksums(app *a, wr_bucket *out, wr_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/customers/checksums?buckets=%u", a->customer_url, a->buckets);
  json_t *j;
  int rc = get_json(a, url, &j, err);
  if (rc)
    return rc;
  json_t *items = json_object_get(j, "items");
  if (!json_is_array(items) || json_array_size(items) != a->buckets) {
    json_decref(j);
    return wr_err_set(err, WR_EJSON, "checksums: expected %u buckets", a->buckets);
  }
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    json_int_t b, count;
    const char *sum;
    if (json_unpack(it, "{s:I,s:I,s:s}", "bucket", &b, "count", &count, "checksum", &sum) != 0 ||
        b < 0 || (unsigned)b >= a->buckets || count < 0 || strlen(sum) != 16) {
      json_decref(j);
      return wr_err_set(err, WR_EJSON, "checksums: malformed bucket entry");
    }
    out[b].bucket = (unsigned)b;
    out[b].count = (uint64_t)count;
    out[b].checksum = strtoull(sum, NULL, 16);
  }
  json_decref(j);
  return 0;
}

static int remote_members(app *a, unsigned bucket, members *out, wr_err *err) {
  char url[1024];
  snprintf(url, sizeof url, "%s/customers/checksums?buckets=%u&bucket=%u", a->customer_url,
           a->buckets, bucket);
  json_t *j;
  int rc = get_json(a, url, &j, err);
  if (rc)
    return rc;
  json_t *items = json_object_get(j, "items");
  size_t i;
  json_t *it;
  if (!json_is_array(items))
    rc = wr_err_set(err, WR_EJSON, "bucket members: no items");
  json_array_foreach(items, i, it) {
    const char *id;
    json_int_t v;
    if (rc == 0 && (json_unpack(it, "{s:s,s:I}", "id", &id, "version", &v) != 0 ||
                    strlen(id) > VIEW_ID_MAX || v < 1))
      rc = wr_err_set(err, WR_EJSON, "bucket members: malformed entry");
    if (rc == 0)
      rc = push(out, id, (uint64_t)v);
  }
  json_decref(j);
  return rc;
}

/* Attempts of one row's repair that PostgreSQL rolls back as a deadlock or a
 * serialization failure before the repair gives up. The live consumer writes a view
 * row first and its guard row at commit; a repair writes the guard row first (and, in
 * the consumer's locking rerun, the consumer too): when both touch the same customer
 * at the same moment, PostgreSQL breaks the cycle by rolling one back. */
#define REPAIR_ATTEMPTS 5

/* One row's repair in its own short transaction: the row, locked, is replaced when it
 * is missing or not newer than the source's. 1 written, 0 left, <0 error (rolled back). */
static int repair_row(PGconn *c, const view_row *r, wr_err *err) {
  int rc = wr_db_exec(c, "BEGIN", err);
  if (rc)
    return rc;
  view_row cur;
  int g = view_get(c, r->id, true, &cur, err);
  if (g == WR_ENOTFOUND || (g == 0 && cur.version <= r->version))
    g = view_apply_source(c, r, true, err);
  if (g < 0 && g != WR_ENOTFOUND) {
    wr_db_exec(c, "ROLLBACK", NULL);
    return g;
  }
  if ((rc = wr_db_exec(c, "COMMIT", err)) != 0) {
    wr_db_exec(c, "ROLLBACK", NULL);
    return rc;
  }
  return g == 1 ? 1 : 0;
}

/* Fetches full rows for ids and repairs each in its own short transaction. */
static int repair(app *a, PGconn *c, const char *const *ids, size_t n, uint64_t *fixed,
                  const char *correlation_id, wr_err *err) {
  size_t len = strlen(a->customer_url) + 32;
  for (size_t i = 0; i < n; i++)
    len += strlen(ids[i]) * 3 + 1;
  char *url = malloc(len);
  if (!url)
    return WR_ENOMEM;
  int o = snprintf(url, len, "%s/customers?ids=", a->customer_url);
  for (size_t i = 0; i < n; i++) {
    if (i)
      url[o++] = ',';
    for (const unsigned char *p = (const unsigned char *)ids[i]; *p; p++) {
      if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_' || *p == '.')
        url[o++] = (char)*p;
      else
        o += snprintf(url + o, len - (size_t)o, "%%%02X", *p);
    }
  }
  url[o] = '\0';
  json_t *j;
  int rc = get_json(a, url, &j, err);
  free(url);
  if (rc)
    return rc;
  json_t *items = json_object_get(j, "items");
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    const char *id, *name, *email, *status, *updated;
    json_int_t version;
    if (json_unpack(it, "{s:s,s:s,s:s,s:s,s:I,s:s}", "id", &id, "name", &name, "email", &email,
                    "status", &status, "version", &version, "updated_at", &updated) != 0 ||
        strlen(id) > VIEW_ID_MAX || version < 1) {
      rc = wr_err_set(err, WR_EJSON, "repair: malformed customer");
      break;
    }
    view_row r = {.version = (uint64_t)version};
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.email, sizeof r.email, "%s", email);
    snprintf(r.status, sizeof r.status, "%s", status);
    int64_t s;
    int32_t ns;
    if (wr_rfc3339_parse(updated, &s, &ns) == 0)
      r.source_updated_us = s * 1000000 + ns / 1000;
    for (int attempt = 1;; attempt++) {
      rc = repair_row(c, &r, err);
      if (rc >= 0 || !wr_db_retryable(err) || attempt == REPAIR_ATTEMPTS)
        break;
      wr_log_warn(correlation_id, "repair of customer %s rolled back (%s), attempt %d of %d", r.id,
                  err->msg, attempt, REPAIR_ATTEMPTS);
      wr_counter_add(a->reconcile_retries, 1);
      wr_sleep_ms(10u * (unsigned)attempt, NULL);
    }
    if (rc < 0)
      break;
    *fixed += (uint64_t)rc;
    rc = 0;
  }
  json_decref(j);
  return rc;
}

static int reconcile_bucket(app *a, PGconn *c, unsigned b, reconcile_result *res,
                            const char *correlation_id, wr_err *err) {
  members remote = {0}, local = {0};
  int rc = remote_members(a, b, &remote, err);
  if (rc == 0)
    rc = wr_sync_bucket_members(c, &view_sync_source, a->buckets, b, local_member, &local, err);
  const char **todo = NULL;
  size_t ntodo = 0;
  if (rc == 0) {
    /* an empty side has no array at all: qsort(NULL, 0, ...) is undefined */
    if (remote.n)
      qsort(remote.v, remote.n, sizeof *remote.v, cmp_member);
    if (local.n)
      qsort(local.v, local.n, sizeof *local.v, cmp_member);
    todo = malloc((remote.n + 1) * sizeof *todo);
    if (!todo)
      rc = WR_ENOMEM;
  }
  size_t i = 0, k = 0;
  while (rc == 0 && (i < remote.n || k < local.n)) {
    int d = i >= remote.n ? 1 : k >= local.n ? -1 : strcmp(remote.v[i].id, local.v[k].id);
    if (d < 0) { /* missing here */
      todo[ntodo++] = remote.v[i++].id;
      res->found++;
    } else if (d > 0) { /* unknown to the source: not a copy of anything */
      rc = wr_db_exec(c, "BEGIN", err);
      if (rc == 0)
        rc = view_remove(c, local.v[k].id, err);
      rc = rc == 0 ? wr_db_exec(c, "COMMIT", err) : (wr_db_exec(c, "ROLLBACK", NULL), rc);
      res->found++;
      if (rc == 0)
        res->fixed++;
      k++;
    } else {
      if (local.v[k].version < remote.v[i].version) {
        todo[ntodo++] = remote.v[i].id;
        res->found++;
      }
      i++;
      k++;
    }
  }
  for (size_t s = 0; rc == 0 && s < ntodo; s += IDS_PER_FETCH) {
    size_t n = ntodo - s < IDS_PER_FETCH ? ntodo - s : IDS_PER_FETCH;
    rc = repair(a, c, todo + s, n, &res->fixed, correlation_id, err);
  }
  free(todo);
  free(remote.v);
  free(local.v);
  return rc;
}

int reconcile_run(app *a, const char *correlation_id, reconcile_result *res, wr_err *err) {
  memset(res, 0, sizeof *res);
  pthread_mutex_lock(&a->reconcile_mu);
  wr_bucket *remote = calloc(a->buckets, sizeof *remote);
  wr_bucket *local = calloc(a->buckets, sizeof *local);
  PGconn *c = NULL;
  int rc = (!remote || !local) ? WR_ENOMEM : 0;
  if (rc == 0)
    rc = wr_db_pool_acquire(a->pool, 10000, &c, err);
  /* local first: a row that changes between the two reads then shows as "older here",
   * and the fetch of the source's current row repairs it; never the reverse */
  if (rc == 0)
    rc = wr_sync_checksums(c, &view_sync_source, a->buckets, local, err);
  if (rc == 0)
    rc = remote_checksums(a, remote, err);
  for (unsigned b = 0; rc == 0 && b < a->buckets; b++) {
    res->checked += remote[b].count;
    if (remote[b].checksum == local[b].checksum && remote[b].count == local[b].count)
      continue;
    res->buckets_differing++;
    rc = reconcile_bucket(a, c, b, res, correlation_id, err);
  }
  if (c)
    wr_db_pool_release(a->pool, c);
  free(remote);
  free(local);
  pthread_mutex_unlock(&a->reconcile_mu);
  if (rc == 0) {
    wr_counter_add(a->reconcile_found, res->found);
    wr_counter_add(a->reconcile_fixed, res->fixed);
    wr_log_info(correlation_id,
                "reconciliation: %" PRIu64 " customers checked, %" PRIu64
                " buckets differed, %" PRIu64 " discrepancies found, %" PRIu64 " fixed",
                res->checked, res->buckets_differing, res->found, res->fixed);
  }
  return rc;
}
