/* sync.c: reconciliation checksums and the catch-up pager (warren/sync.h).
 *
 * The hashes must be identical in SQL (where the rows live) and in C (tests,
 * in-memory comparisons), so they are built from md5, which PostgreSQL has built in:
 *   bucket(id)       = first 4 bytes of md5(id) as big-endian uint32, mod n
 *   member(id, ver)  = first 8 bytes of md5(id || ':' || ver) as big-endian int64
 * md5 is used as a well-distributed fingerprint here, not for security. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <warren/http_client.h>
#include <warren/sync.h>
#include <warren/util.h>

/* ---- md5 (RFC 1321), compact ---------------------------------------------------- */

static uint32_t rol(uint32_t x, unsigned c) {
  return (x << c) | (x >> (32 - c));
}

static void md5(const void *data, size_t len, unsigned char out[16]) {
  static const uint32_t K[64] = {
      0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
      0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
      0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
      0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
      0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
      0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
      0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
      0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
      0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
      0xeb86d391};
  static const unsigned R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
  uint32_t h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476;
  const unsigned char *p = data;
  uint64_t bits = (uint64_t)len * 8;
  size_t total = ((len + 8) / 64 + 1) * 64;
  for (size_t off = 0; off < total; off += 64) {
    unsigned char blk[64];
    for (size_t i = 0; i < 64; i++) {
      size_t k = off + i;
      if (k < len)
        blk[i] = p[k];
      else if (k == len)
        blk[i] = 0x80;
      else if (k >= total - 8)
        blk[i] = (unsigned char)(bits >> (8 * (k - (total - 8))));
      else
        blk[i] = 0;
    }
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)blk[i * 4] | (uint32_t)blk[i * 4 + 1] << 8 | (uint32_t)blk[i * 4 + 2] << 16 |
             (uint32_t)blk[i * 4 + 3] << 24;
    uint32_t a = h0, b = h1, c = h2, d = h3;
    for (unsigned i = 0; i < 64; i++) {
      uint32_t f;
      unsigned g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      uint32_t tmp = d;
      d = c;
      c = b;
      b = b + rol(a + f + K[i] + w[g], R[i]);
      a = tmp;
    }
    h0 += a;
    h1 += b;
    h2 += c;
    h3 += d;
  }
  uint32_t h[4] = {h0, h1, h2, h3};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      out[i * 4 + j] = (unsigned char)(h[i] >> (8 * j));
}

unsigned wr_sync_bucket_of(const char *id, unsigned n_buckets) {
  unsigned char d[16];
  md5(id, strlen(id), d);
  uint32_t v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
  return n_buckets ? v % n_buckets : 0;
}

uint64_t wr_sync_member_hash(const char *id, uint64_t version) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "%s:%" PRIu64, id, version);
  size_t len = n < 0 ? 0 : (size_t)n;
  char *heap = NULL;
  const char *p = buf;
  if (len >= sizeof buf) { /* ids are bounded by callers, but never truncate a hash */
    heap = malloc(len + 1);
    if (!heap)
      return 0;
    snprintf(heap, len + 1, "%s:%" PRIu64, id, version);
    p = heap;
  }
  unsigned char d[16];
  md5(p, len, d);
  free(heap);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | d[i];
  return v;
}

/* ---- SQL side ------------------------------------------------------------------ */

/* Builds the quoted identifiers of src into q_table/q_id/q_ver (PQescapeIdentifier). */
static int quote_source(PGconn *c, const wr_sync_source *src, char **t, char **id, char **ver,
                        wr_err *err) {
  *t = *id = *ver = NULL;
  if (!src || !src->table || !src->id_column || !src->version_column)
    return wr_err_set(err, WR_EINVAL, "sync source needs table, id and version columns");
  *t = PQescapeIdentifier(c, src->table, strlen(src->table));
  *id = PQescapeIdentifier(c, src->id_column, strlen(src->id_column));
  *ver = PQescapeIdentifier(c, src->version_column, strlen(src->version_column));
  if (!*t || !*id || !*ver) {
    PQfreemem(*t);
    PQfreemem(*id);
    PQfreemem(*ver);
    *t = *id = *ver = NULL;
    return wr_err_set(err, WR_EDB, "cannot quote identifiers: %s", PQerrorMessage(c));
  }
  return 0;
}

#define BUCKET_EXPR "((('x' || substr(md5(%s::text), 1, 8))::bit(32)::bigint) %% $1)"
#define MEMBER_EXPR "(('x' || substr(md5(%s::text || ':' || %s::text), 1, 16))::bit(64)::bigint)"

int wr_sync_checksums(PGconn *c, const wr_sync_source *src, unsigned n_buckets, wr_bucket *out,
                      wr_err *err) {
  if (n_buckets == 0 || n_buckets > WR_SYNC_BUCKETS_MAX || !out)
    return wr_err_set(err, WR_EINVAL, "bucket count must be 1..%u", WR_SYNC_BUCKETS_MAX);
  char *t, *id, *ver;
  int rc = quote_source(c, src, &t, &id, &ver, err);
  if (rc)
    return rc;
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT " BUCKET_EXPR " AS b, count(*), bit_xor(" MEMBER_EXPR ") FROM %s%s%s%s "
           "GROUP BY 1",
           id, id, ver, t, src->where ? " WHERE (" : "", src->where ? src->where : "",
           src->where ? ")" : "");
  PQfreemem(t);
  PQfreemem(id);
  PQfreemem(ver);
  for (unsigned i = 0; i < n_buckets; i++)
    out[i] = (wr_bucket){.bucket = i, .count = 0, .checksum = 0};
  char nb[16];
  snprintf(nb, sizeof nb, "%u", n_buckets);
  const char *params[1] = {nb};
  PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    wr_err_set(err, WR_EDB, "checksums of %s: %s", src->table, PQresultErrorMessage(r));
    PQclear(r);
    return WR_EDB;
  }
  for (int i = 0; i < PQntuples(r); i++) {
    unsigned long b = strtoul(PQgetvalue(r, i, 0), NULL, 10);
    if (b >= n_buckets)
      continue;
    out[b].count = strtoull(PQgetvalue(r, i, 1), NULL, 10);
    out[b].checksum = (uint64_t)strtoll(PQgetvalue(r, i, 2), NULL, 10);
  }
  PQclear(r);
  return 0;
}

int wr_sync_bucket_members(PGconn *c, const wr_sync_source *src, unsigned n_buckets,
                           unsigned bucket, wr_sync_member_fn fn, void *user, wr_err *err) {
  if (n_buckets == 0 || n_buckets > WR_SYNC_BUCKETS_MAX || bucket >= n_buckets || !fn)
    return wr_err_set(err, WR_EINVAL, "bucket %u out of range 0..%u", bucket,
                      n_buckets ? n_buckets - 1 : 0);
  char *t, *id, *ver;
  int rc = quote_source(c, src, &t, &id, &ver, err);
  if (rc)
    return rc;
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT %s::text, %s FROM %s WHERE " BUCKET_EXPR " = $2%s%s%s ORDER BY 1", id, ver, t,
           id, src->where ? " AND (" : "", src->where ? src->where : "", src->where ? ")" : "");
  PQfreemem(t);
  PQfreemem(id);
  PQfreemem(ver);
  char nb[16], bk[16];
  snprintf(nb, sizeof nb, "%u", n_buckets);
  snprintf(bk, sizeof bk, "%u", bucket);
  const char *params[2] = {nb, bk};
  PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    wr_err_set(err, WR_EDB, "members of bucket %u of %s: %s", bucket, src->table,
               PQresultErrorMessage(r));
    PQclear(r);
    return WR_EDB;
  }
  rc = 0;
  for (int i = 0; i < PQntuples(r) && rc == 0; i++)
    rc = fn(PQgetvalue(r, i, 0), strtoull(PQgetvalue(r, i, 1), NULL, 10), user);
  PQclear(r);
  return rc;
}

/* ---- catch-up pager ------------------------------------------------------------ */

/* Appends "cursor=<escaped>" to url. */
static char *url_with_cursor(const char *url, const char *cursor) {
  size_t n = strlen(url), cl = strlen(cursor);
  char *out = malloc(n + 8 + cl * 3 + 1);
  if (!out)
    return NULL;
  char *o = out;
  memcpy(o, url, n);
  o += n;
  *o++ = strchr(url, '?') ? '&' : '?';
  memcpy(o, "cursor=", 7);
  o += 7;
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)cursor; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = '\0';
  return out;
}

/* One fetched page: the HTTP response and what was parsed from it. */
typedef struct page {
  wr_http_response res;
  json_t *json;        /* JSON mode: the parsed body */
  wr_sync_item *items; /* binary mode: spans into res.body (the array is reused) */
  size_t n, cap;
  char *next; /* binary mode: the next cursor (malloc'd), NULL on the last page */
} page;

static void page_reset(page *pg) {
  wr_http_response_free(&pg->res);
  json_decref(pg->json);
  pg->json = NULL;
  free(pg->next);
  pg->next = NULL;
  pg->n = 0;
}

/* A varint at *pos (at most 10 bytes, bounded by end). 0 or -1. */
static int read_varint(const uint8_t *b, size_t end, size_t *pos, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 70; shift += 7) {
    if (*pos >= end)
      return -1;
    uint8_t c = b[(*pos)++];
    if (shift == 63 && c > 1)
      return -1;
    x |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Walks a warren.v1.Page body without copying its items. */
static int parse_binary_page(page *pg, wr_err *err) {
  const uint8_t *b = (const uint8_t *)pg->res.body;
  size_t len = pg->res.len, pos = 0;
  const uint8_t *cursor = NULL;
  size_t cursor_len = 0;
  pg->n = 0;
  while (pos < len) {
    size_t at = pos;
    uint64_t key, l;
    if (read_varint(b, len, &pos, &key) != 0)
      return wr_err_set(err, WR_EDECODE, "binary page: bad field key at byte %zu", at);
    uint64_t field = key >> 3;
    unsigned wt = (unsigned)(key & 7);
    if (field == 0 || field > 536870911)
      return wr_err_set(err, WR_EDECODE, "binary page: field number %" PRIu64 " at byte %zu", field,
                        at);
    if ((field == 1 || field == 2) && wt != 2)
      return wr_err_set(err, WR_EDECODE, "binary page: field %u with wire type %u at byte %zu",
                        (unsigned)field, wt, at);
    switch (wt) {
    case 0:
      if (read_varint(b, len, &pos, &l) != 0)
        return wr_err_set(err, WR_EDECODE, "binary page: bad varint at byte %zu", pos);
      continue;
    case 1:
    case 5:
      l = wt == 1 ? 8 : 4;
      if (len - pos < l)
        return wr_err_set(err, WR_EDECODE, "binary page: truncated at byte %zu", at);
      pos += (size_t)l;
      continue;
    case 2:
      if (read_varint(b, len, &pos, &l) != 0 || l > len - pos)
        return wr_err_set(err, WR_EDECODE,
                          "binary page: length of field %" PRIu64 " at byte %zu runs past the "
                          "end of the page (%zu bytes)",
                          field, at, len);
      break;
    default:
      return wr_err_set(err, WR_EDECODE, "binary page: wire type %u at byte %zu", wt, at);
    }
    if (field == 1) {
      if (pg->n == pg->cap) {
        size_t cap = pg->cap ? pg->cap * 2 : 1024;
        wr_sync_item *ni = realloc(pg->items, cap * sizeof *ni);
        if (!ni)
          return wr_err_set(err, WR_ENOMEM, "out of memory");
        pg->items = ni;
        pg->cap = cap;
      }
      pg->items[pg->n++] = (wr_sync_item){.data = b + pos, .len = (size_t)l};
    } else if (field == 2) {
      cursor = b + pos; /* the last one wins, as protobuf merges scalars */
      cursor_len = (size_t)l;
    }
    pos += (size_t)l;
  }
  if (cursor_len > 0) {
    if (memchr(cursor, '\0', cursor_len))
      return wr_err_set(err, WR_EDECODE, "binary page: next_cursor holds a NUL byte");
    if (!(pg->next = strndup((const char *)cursor, cursor_len)))
      return wr_err_set(err, WR_ENOMEM, "out of memory");
  }
  return 0;
}

/* What a pager asks for: JSON pages, binary pages, or binary preferred and JSON taken. */
typedef enum page_mode { PAGES_JSON, PAGES_BINARY, PAGES_EITHER } page_mode;

/* Whether a Content-Type value names `type` (parameters after ';' ignored). */
static bool media_type_is(const char *ct, const char *type) {
  size_t tl = strcspn(ct, ";");
  while (tl > 0 && (ct[tl - 1] == ' ' || ct[tl - 1] == '\t'))
    tl--;
  return tl == strlen(type) && strncasecmp(ct, type, tl) == 0;
}

static int parse_json_page(page *pg, wr_err *err) {
  json_error_t je;
  json_t *body = json_loadb(pg->res.body, pg->res.len, JSON_REJECT_DUPLICATES, &je);
  if (!body)
    return wr_err_set(err, WR_EJSON, "page is not JSON: %s", je.text);
  pg->json = body;
  if (!json_is_object(body) || !json_is_array(json_object_get(body, "items")))
    return wr_err_set(err, WR_EJSON, "page without an \"items\" array");
  json_t *next = json_object_get(body, "next_cursor");
  if (next && !json_is_null(next) && !json_is_string(next))
    return wr_err_set(err, WR_EJSON, "next_cursor is neither a string nor null");
  return 0;
}

/* The page of a 200 reply: binary (pg->json stays NULL) or JSON. WR_EJSON / WR_EDECODE
 * / WR_EHTTP (content type): never transient. The JSON mode takes the body as JSON
 * whatever its type, as it always did. */
static int parse_page(page_mode mode, page *pg, wr_err *err) {
  if (mode == PAGES_JSON)
    return parse_json_page(pg, err);
  char ct[128];
  wr_http_response_header(&pg->res, "Content-Type", ct, sizeof ct);
  if (media_type_is(ct, WR_SYNC_PROTOBUF_TYPE))
    return parse_binary_page(pg, err);
  if (mode == PAGES_EITHER && media_type_is(ct, "application/json"))
    return parse_json_page(pg, err);
  return wr_err_set(err, WR_EHTTP, "page with Content-Type \"%.64s\", expected %s", ct,
                    mode == PAGES_EITHER ? WR_SYNC_PROTOBUF_TYPE " or application/json"
                                         : WR_SYNC_PROTOBUF_TYPE);
}

/* One page with retries of transient failures. On 0, *pg holds the parsed page (the
 * caller resets it). */
static int fetch_page(const wr_sync_pager *p, page_mode mode, const char *url,
                      const char *const *headers, page *pg, wr_err *err) {
  wr_http_request req = {.method = "GET",
                         .url = url,
                         .headers = headers,
                         .timeout_ms = p->timeout_ms ? p->timeout_ms : 30000,
                         .max_response = p->max_page_bytes};
  for (unsigned attempt = 0;; attempt++) {
    page_reset(pg);
    int rc = wr_http_do(&req, &pg->res, err);
    if (rc == 0 && pg->res.status == 200)
      return parse_page(mode, pg, err);
    bool transient =
        rc == WR_EIO || rc == WR_ETIMEDOUT || rc == WR_EHTTP || (rc == 0 && pg->res.status >= 500);
    if (rc == WR_ETOOBIG) {
      rc = wr_err_set(err, WR_ETOOBIG, "page larger than %zu bytes",
                      p->max_page_bytes ? p->max_page_bytes : (size_t)64 << 20);
    } else if (rc == 0) {
      /* error replies are JSON problems {"error":{"code":...,"message":...}} */
      json_t *body = json_loadb(pg->res.body, pg->res.len, 0, NULL);
      const char *m = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
      wr_err_set(err, WR_EHTTP, "GET page: HTTP %d%s%.400s", pg->res.status, m ? ": " : "",
                 m ? m : "");
      json_decref(body);
      rc = WR_EHTTP;
    }
    if (!transient || attempt >= p->retries)
      return rc;
    if (wr_sleep_ms(wr_backoff_ms(attempt, 200, 5000), p->stop) != 0)
      return wr_err_set(err, WR_ESTOPPED, "catch-up stopped");
  }
}

/* Whether a "Name: value" line names the header `name`. */
static bool names_header(const char *line, const char *name) {
  size_t n = strlen(name);
  return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static int run_pages(const wr_sync_pager *p, page_mode mode, wr_sync_page_fn jfn,
                     wr_sync_bin_page_fn bfn, void *user, size_t *pages, size_t *items,
                     wr_err *err) {
  if (pages)
    *pages = 0;
  if (items)
    *items = 0;
  if (!p || !p->url || (mode != PAGES_JSON && !bfn) || (mode != PAGES_BINARY && !jfn))
    return wr_err_set(err, WR_EINVAL, "pager needs a URL and a page function");
  const char *hs[34];
  size_t nh = 0;
  bool has_accept = false;
  for (const char *const *h = p->headers; h && *h; h++) {
    if (nh == 32)
      return wr_err_set(err, WR_EINVAL, "pager: at most 32 request headers");
    has_accept |= names_header(*h, "Accept");
    hs[nh++] = *h;
  }
  if (mode != PAGES_JSON && has_accept)
    return wr_err_set(err, WR_EINVAL, "pager: binary pages set their own Accept header");
  if (!has_accept)
    hs[nh++] = mode == PAGES_JSON     ? "Accept: application/json"
               : mode == PAGES_BINARY ? "Accept: " WR_SYNC_PROTOBUF_TYPE
                                      : "Accept: " WR_SYNC_PROTOBUF_TYPE ", application/json;q=0.5";
  hs[nh] = NULL;
  char *url = strdup(p->url);
  if (!url)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  page pg = {0};
  int rc = 0;
  for (;;) {
    if (p->stop && *p->stop) {
      rc = wr_err_set(err, WR_ESTOPPED, "catch-up stopped");
      break;
    }
    rc = fetch_page(p, mode, url, hs, &pg, err);
    if (rc)
      break;
    size_t n;
    const char *next;
    if (!pg.json) {
      n = pg.n;
      rc = bfn(pg.items, n, user);
      next = pg.next;
    } else {
      json_t *arr = json_object_get(pg.json, "items");
      n = json_array_size(arr);
      rc = jfn(arr, user);
      next = json_string_value(json_object_get(pg.json, "next_cursor"));
    }
    if (rc)
      break;
    if (pages)
      (*pages)++;
    if (items)
      *items += n;
    if (!next)
      break;
    char *nu = url_with_cursor(p->url, next);
    if (!nu) {
      rc = wr_err_set(err, WR_ENOMEM, "out of memory");
      break;
    }
    free(url);
    url = nu;
  }
  page_reset(&pg);
  free(pg.items);
  free(url);
  return rc;
}

int wr_sync_pages(const wr_sync_pager *p, wr_sync_page_fn fn, void *user, size_t *pages,
                  size_t *items, wr_err *err) {
  return run_pages(p, PAGES_JSON, fn, NULL, user, pages, items, err);
}

int wr_sync_pages_protobuf(const wr_sync_pager *p, wr_sync_bin_page_fn fn, void *user,
                           size_t *pages, size_t *items, wr_err *err) {
  return run_pages(p, PAGES_BINARY, NULL, fn, user, pages, items, err);
}

int wr_sync_pages_prefer_protobuf(const wr_sync_pager *p, wr_sync_bin_page_fn bfn,
                                  wr_sync_page_fn jfn, void *user, size_t *pages, size_t *items,
                                  wr_err *err) {
  return run_pages(p, PAGES_EITHER, jfn, bfn, user, pages, items, err);
}
