/* warren/sync.h: the two safety nets beside the event stream, shared by the owner and
 * the consumer side so both compute exactly the same thing:
 *
 * - Reconciliation checksums: ids are spread over N buckets by a hash of the id; each
 *   bucket's checksum is the XOR of a 64-bit hash of "id:version" over its members
 *   (order- and collation-independent, computed in SQL where the rows are). Comparing
 *   N checksums finds the buckets that differ; fetching their members finds the rows.
 * - Catch-up paging: a client for bulk endpoints answering {"items":[...],
 *   "next_cursor":"..."|null}, or the same page in binary (a warren.v1.Page protobuf,
 *   schemas/warren/v1/page.proto), with retries of transient failures. */
#ifndef WARREN_SYNC_H
#define WARREN_SYNC_H

#include <jansson.h>
#include <libpq-fe.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

#define WR_SYNC_BUCKETS_DEFAULT 64u
#define WR_SYNC_BUCKETS_MAX     4096u

typedef struct wr_bucket {
  unsigned bucket;
  uint64_t count;
  uint64_t checksum; /* XOR over members; 0 for an empty bucket */
} wr_bucket;

/* The source of (id, version) rows: a table or view and its columns, plus an optional
 * SQL condition. Identifiers are quoted by the library; `where` is trusted SQL from
 * the program (never user input). */
typedef struct wr_sync_source {
  const char *table;
  const char *id_column;
  const char *version_column;
  const char *where; /* may be NULL */
} wr_sync_source;

/* Fills out[0..n_buckets-1] with every bucket's count and checksum (empty buckets
 * included). Returns 0, WR_EINVAL (n_buckets 0 or above the max), WR_EDB. */
WR_EXPORT int wr_sync_checksums(PGconn *c, const wr_sync_source *src, unsigned n_buckets,
                                wr_bucket *out, wr_err *err);

/* Calls fn(id, version) for every member of one bucket, ordered by id. fn returns 0 to
 * go on. Returns 0, WR_EINVAL, WR_EDB, or fn's non-zero value. */
typedef int (*wr_sync_member_fn)(const char *id, uint64_t version, void *user);
WR_EXPORT int wr_sync_bucket_members(PGconn *c, const wr_sync_source *src, unsigned n_buckets,
                                     unsigned bucket, wr_sync_member_fn fn, void *user,
                                     wr_err *err);

/* The bucket of an id and the hash of one member, computed in C exactly as the SQL
 * does (for tests and for in-memory comparisons). Cannot fail. */
WR_EXPORT unsigned wr_sync_bucket_of(const char *id, unsigned n_buckets);
WR_EXPORT uint64_t wr_sync_member_hash(const char *id, uint64_t version);

/* Pages through a bulk endpoint: GET url (which must already carry its query, e.g.
 * "http://h:8081/customers?updated_since=...&limit=1000"), then the same URL with
 * &cursor=<next_cursor> until next_cursor is null. fn receives each page's "items"
 * array (borrowed, valid during the call) and returns 0 to continue. Transient
 * failures (connection errors, 5xx) are retried with backoff up to `retries` times
 * per page; a 4xx or a malformed page fails at once (WR_EHTTP / WR_EJSON with the
 * status and message; the message of an error reply is taken from its JSON problem
 * body {"error":{"message":...}} when it has one). A page body over max_page_bytes
 * fails at once with WR_ETOOBIG. fn's non-zero value ends the paging and is returned.
 * *pages / *items (may be NULL) count what was delivered. */
typedef int (*wr_sync_page_fn)(json_t *items, void *user);
typedef struct wr_sync_pager {
  const char *url;
  const char *const *headers; /* NULL-terminated "Name: value" (at most 32), or NULL */
  unsigned timeout_ms;        /* per request */
  unsigned retries;
  const volatile int *stop; /* may be NULL */
  size_t max_page_bytes;    /* a page body's limit; 0 = 64 MiB */
} wr_sync_pager;
WR_EXPORT int wr_sync_pages(const wr_sync_pager *p, wr_sync_page_fn fn, void *user, size_t *pages,
                            size_t *items, wr_err *err);

/* ---- binary pages ----------------------------------------------------------------
 * The same paging with "Accept: application/x-protobuf" (the caller's headers must not
 * name an Accept: WR_EINVAL). Every 200 reply must carry that Content-Type (anything
 * else, e.g. a server that only speaks JSON: WR_EHTTP naming the type it sent) and a
 * body that is a warren.v1.Page: field 1 `repeated bytes items`, field 2 `string
 * next_cursor`, empty on the last page. Unknown fields are skipped as protobuf
 * requires; a body that is not a well-formed protobuf message (truncated, bad varint
 * or length, group wire types, a wrong wire type for field 1 or 2, a cursor holding a
 * NUL byte) fails at once with WR_EDECODE naming the offset. Error replies are JSON
 * problems as above, retried or not by status. The runtime knows nothing of the items:
 * fn receives each page's items as bytes, each one serialized entity message (for
 * GET /customers a customer.v1.Customer), for the caller to decode with the entity's
 * generated code. items[0..n) are borrowed and valid during the call only; they point
 * into the page's body (no copy). */
#define WR_SYNC_PROTOBUF_TYPE "application/x-protobuf"
typedef struct wr_sync_item {
  const uint8_t *data;
  size_t len;
} wr_sync_item;
typedef int (*wr_sync_bin_page_fn)(const wr_sync_item *items, size_t n, void *user);
WR_EXPORT int wr_sync_pages_protobuf(const wr_sync_pager *p, wr_sync_bin_page_fn fn, void *user,
                                     size_t *pages, size_t *items, wr_err *err);

/* Binary pages preferred, JSON taken: sends "Accept: application/x-protobuf,
 * application/json;q=0.5" and hands each 200 page to bfn or jfn by its Content-Type
 * (a server without binary pages, e.g. an older version, still serves a catch-up; the
 * caller sees which form came). Any other Content-Type: WR_EHTTP naming it. Otherwise
 * as wr_sync_pages_protobuf and wr_sync_pages. Both functions are required. */
WR_EXPORT int wr_sync_pages_prefer_protobuf(const wr_sync_pager *p, wr_sync_bin_page_fn bfn,
                                            wr_sync_page_fn jfn, void *user, size_t *pages,
                                            size_t *items, wr_err *err);

WR_END_DECLS

#endif
