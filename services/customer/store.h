/* store.h: the customer service's tables and every SQL statement on them. Functions
 * take a PGconn owned by the caller; those that change data expect an open
 * transaction (the outbox append joins it). */
#ifndef CUSTOMER_STORE_H
#define CUSTOMER_STORE_H

#include <libpq-fe.h>
#include <warren/error.h>
#include <warren/sync.h>
#include <warren/util.h>

#define CUSTOMER_NAME_MAX  200 /* characters */
#define CUSTOMER_EMAIL_MAX 254 /* bytes */

typedef enum customer_status {
  CUSTOMER_ACTIVE = 1,
  CUSTOMER_PENDING = 2,
  CUSTOMER_SUSPENDED = 3,
  CUSTOMER_DELETED = 4,
} customer_status;

typedef struct customer {
  char id[WR_UUID_STRLEN];
  char name[CUSTOMER_NAME_MAX * 4 + 1]; /* UTF-8: up to 4 bytes a character */
  char email[CUSTOMER_EMAIL_MAX + 1];
  customer_status status;
  uint64_t version;
  int64_t created_us; /* Unix microseconds */
  int64_t updated_us;
} customer;

/* "active" <-> CUSTOMER_ACTIVE ...; parse returns 0 or WR_EINVAL. */
const char *customer_status_name(customer_status s);
int customer_status_parse(const char *s, customer_status *out);

/* Schema migrations of the customer service (component "customer"). */
int store_migrate(PGconn *c, wr_err *err);

/* Inserts a new customer (id, version 1, timestamps = now) and fills *cu. */
int store_insert(PGconn *c, customer *cu, wr_err *err);

/* Reads one customer; for_update locks the row (inside a transaction). Tombstones are
 * returned too (status CUSTOMER_DELETED). Returns 0, WR_ENOTFOUND, WR_EDB. */
int store_get(PGconn *c, const char *id, bool for_update, customer *out, wr_err *err);

/* Writes name/email/status of cu, version + 1, updated_at = now; updates cu. */
int store_update(PGconn *c, customer *cu, wr_err *err);

/* since_us value meaning "from the beginning". */
#define STORE_SINCE_ALL INT64_MIN

/* A keyset page ordered by (updated_at, id). `after_us/after_id` is the cursor
 * position (after_id NULL = from `since_us`, inclusive). Calls fn per row; *more is
 * set when rows remain after `limit`. Rows stamped at or after the start of a
 * transaction that is still writing customers are held back until it ends, so a
 * walk never passes a row that commits late (see page_horizon in store.c). */
typedef int (*store_row_fn)(const customer *cu, void *user);
int store_page(PGconn *c, int64_t since_us, int64_t after_us, const char *after_id, unsigned limit,
               store_row_fn fn, void *user, bool *more, wr_err *err);

/* Rows whose ids are in `ids` (n <= 500), in the order of the database; missing ids
 * are simply absent. */
int store_by_ids(PGconn *c, const char *const *ids, size_t n, store_row_fn fn, void *user,
                 wr_err *err);

/* Snapshot walk: rows with id > after_id (NULL = from the start), ordered by id. */
int store_by_id_from(PGconn *c, const char *after_id, unsigned limit, store_row_fn fn, void *user,
                     wr_err *err);

/* The (id, version) source for reconciliation checksums (tombstones included). */
extern const wr_sync_source store_sync_source;

#endif
