/* api.c: the customer service's REST API. Every change writes the row and its event
 * in one transaction (the outbox); the relay publishes after the commit. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "cursor.h"
#include "events.h"
#include "store.h"

#include <warren/sync.h>

#include "customer/v1/customer.pb-c.h"
#include "warren/v1/page.pb-c.h"

#define BULK_LIMIT_MAX     1000
#define BULK_LIMIT_DEFAULT 100
#define IDS_MAX            500
#define DB_WAIT_MS         5000

/* ---- helpers ----------------------------------------------------------------- */

static json_t *customer_json(const customer *cu) {
  char created[WR_RFC3339_STRLEN], updated[WR_RFC3339_STRLEN];
  wr_rfc3339_format(cu->created_us / 1000000, (int32_t)(cu->created_us % 1000000) * 1000, created);
  wr_rfc3339_format(cu->updated_us / 1000000, (int32_t)(cu->updated_us % 1000000) * 1000, updated);
  return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id", cu->id, "name", cu->name, "email",
                   cu->email, "status", customer_status_name(cu->status), "version",
                   (json_int_t)cu->version, "created_at", created, "updated_at", updated);
}

static PGconn *take_conn(app *a, wr_http_req *req) {
  return wr_http_db_acquire(req, a->pool, DB_WAIT_MS);
}

/* A plausible e-mail address: local@domain.tld, ASCII, bounded. Deliverability is
 * not this service's business; shape is. */
static bool email_valid(const char *e) {
  size_t len = strlen(e);
  if (len < 6 || len > CUSTOMER_EMAIL_MAX)
    return false;
  const char *at = strchr(e, '@');
  if (!at || strchr(at + 1, '@') || at == e || at - e > 64)
    return false;
  for (const char *p = e; p < at; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          strchr(".!#$%&'*+/=?^_`{|}~-", *p)))
      return false;
  if (e[0] == '.' || at[-1] == '.' || strstr(e, ".."))
    return false;
  const char *dom = at + 1;
  const char *dot = strrchr(dom, '.');
  if (!dot || dot == dom || strlen(dot + 1) < 2)
    return false;
  size_t label = 0;
  for (const char *p = dom; *p; p++) {
    if (*p == '.') {
      if (label == 0 || p[-1] == '-')
        return false;
      label = 0;
    } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               (*p == '-' && label > 0)) {
      if (++label > 63)
        return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

/* Validated fields of a create/patch body. NULL = not given. */
typedef struct body_fields {
  const char *name, *email, *status;
  customer_status st;
} body_fields;

static int read_fields(wr_http_req *req, json_t *body, bool require_all, body_fields *f) {
  static const char *const allowed[] = {"name", "email", "status", NULL};
  memset(f, 0, sizeof *f);
  if (wr_body_only(req, body, allowed) < 0 ||
      wr_body_string(req, body, "name", require_all, 1, CUSTOMER_NAME_MAX, &f->name) < 0 ||
      wr_body_string(req, body, "email", require_all, 1, CUSTOMER_EMAIL_MAX, &f->email) < 0 ||
      wr_body_string(req, body, "status", false, 1, 16, &f->status) < 0)
    return -1;
  if (f->email && !email_valid(f->email)) {
    wr_http_reply_error(req, 422, "invalid_value", "field \"email\" is not an e-mail address");
    return -1;
  }
  if (f->status && (customer_status_parse(f->status, &f->st) != 0 || f->st == CUSTOMER_DELETED)) {
    wr_http_reply_error(req, 422, "invalid_value",
                        "field \"status\" must be one of active, pending, suspended");
    return -1;
  }
  return 0;
}

static void outbox_for(app *a, wr_http_req *req, PGconn *c, wr_outbox *ob, wr_err *err) {
  memset(ob, 0, sizeof *ob);
  ob->conn = c;
  ob->source_service = a->service;
  ob->source_instance = a->instance;
  ob->correlation_id = wr_http_req_correlation_id(req);
  ob->err = err;
}

/* Ends a transaction: commit if rc == 0, else roll back. Returns rc or the commit's
 * failure. */
static int finish_tx(PGconn *c, int rc, wr_err *err) {
  if (rc == 0)
    return wr_db_exec(c, "COMMIT", err);
  wr_err ignore;
  wr_db_exec(c, "ROLLBACK", &ignore);
  return rc;
}

static void reply_customer(wr_http_req *req, unsigned status, const customer *cu) {
  char etag[32];
  snprintf(etag, sizeof etag, "\"%" PRIu64 "\"", cu->version);
  wr_http_reply_header(req, "ETag", etag);
  wr_http_reply_json(req, status, customer_json(cu));
}

/* ---- POST /customers ----------------------------------------------------------- */

static void create_customer(wr_http_req *req, void *user) {
  app *a = user;
  body_fields f;
  if (read_fields(req, wr_http_req_json(req), true, &f) < 0)
    return;
  customer cu = {.status = f.status ? f.st : CUSTOMER_ACTIVE};
  snprintf(cu.name, sizeof cu.name, "%s", f.name);
  snprintf(cu.email, sizeof cu.email, "%s", f.email);
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  wr_err err = {0};
  wr_outbox ob;
  outbox_for(a, req, c, &ob, &err);
  int rc = wr_db_exec(c, "BEGIN", &err);
  if (rc == 0) {
    rc = store_insert(c, &cu, &err);
    if (rc == 0)
      rc = events_created(&ob, &cu);
    rc = finish_tx(c, rc, &err);
  }
  wr_db_pool_release(a->pool, c);
  if (rc) {
    wr_reply_db_error(req, rc, &err);
    return;
  }
  wr_relay_wake(a->relay);
  wr_log_info(wr_http_req_correlation_id(req), "customer created id=%s event_id=%s", cu.id,
              ob.last_event_id);
  char loc[80];
  snprintf(loc, sizeof loc, "/customers/%s", cu.id);
  wr_http_reply_header(req, "Location", loc);
  reply_customer(req, 201, &cu);
}

/* ---- GET /customers/{id} ------------------------------------------------------- */

static void get_customer(wr_http_req *req, void *user) {
  app *a = user;
  const char *id = wr_http_req_param(req, "id");
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  customer cu;
  wr_err err = {0};
  int rc = store_get(c, id, false, &cu, &err);
  wr_db_pool_release(a->pool, c);
  if (rc == WR_ENOTFOUND || (rc == 0 && cu.status == CUSTOMER_DELETED)) {
    wr_http_reply_error(req, 404, "not_found", "no such customer");
    return;
  }
  if (rc) {
    wr_reply_db_error(req, rc, &err);
    return;
  }
  reply_customer(req, 200, &cu);
}

/* If-Match: "<version>" (quotes optional; W/ weak tags refused). 1 = given, 0 = absent,
 * -1 = replied 400. */
static int if_match(wr_http_req *req, uint64_t *version) {
  const char *h = wr_http_req_header(req, "If-Match");
  if (!h)
    return 0;
  const char *p = h;
  size_t len = strlen(p);
  if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
    p++;
    len -= 2;
  }
  char buf[24];
  if (len == 0 || len >= sizeof buf)
    goto bad;
  memcpy(buf, p, len);
  buf[len] = '\0';
  for (size_t i = 0; i < len; i++)
    if (buf[i] < '0' || buf[i] > '9')
      goto bad;
  errno = 0;
  *version = strtoull(buf, NULL, 10);
  if (errno == ERANGE) /* beyond any version: malformed, not a conflict */
    goto bad;
  return 1;
bad:
  wr_http_reply_error(req, 400, "invalid_header", "If-Match must be \"<version>\"");
  return -1;
}

/* ---- PATCH /customers/{id} ----------------------------------------------------- */

static void patch_customer(wr_http_req *req, void *user) {
  app *a = user;
  const char *id = wr_http_req_param(req, "id");
  body_fields f;
  uint64_t expect = 0;
  int has_expect = if_match(req, &expect);
  if (has_expect < 0 || read_fields(req, wr_http_req_json(req), false, &f) < 0)
    return;
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  wr_err err = {0};
  wr_outbox ob;
  outbox_for(a, req, c, &ob, &err);
  customer cu, old;
  field_change ch[3];
  size_t n = 0;
  unsigned status = 200;
  int rc = wr_db_exec(c, "BEGIN", &err);
  if (rc == 0) {
    rc = store_get(c, id, true, &cu, &err);
    if (rc == 0 && cu.status == CUSTOMER_DELETED)
      rc = WR_ENOTFOUND;
    if (rc == 0 && has_expect && expect != cu.version) {
      rc = WR_ECONFLICT;
      status = 409;
    }
    if (rc == 0) {
      old = cu;
      if (f.name && strcmp(f.name, cu.name) != 0) {
        snprintf(cu.name, sizeof cu.name, "%s", f.name);
        ch[n++] = (field_change){"name", old.name, cu.name};
      }
      if (f.email && strcmp(f.email, cu.email) != 0) {
        snprintf(cu.email, sizeof cu.email, "%s", f.email);
        ch[n++] = (field_change){"email", old.email, cu.email};
      }
      if (f.status && f.st != cu.status) {
        cu.status = f.st;
        ch[n++] = (field_change){"status", customer_status_name(old.status),
                                 customer_status_name(cu.status)};
      }
      if (n > 0) {
        rc = store_update(c, &cu, &err);
        if (rc == 0)
          rc = events_updated(&ob, &cu, ch, n);
      }
    }
    rc = finish_tx(c, rc, &err);
  }
  wr_db_pool_release(a->pool, c);
  if (rc == WR_ENOTFOUND) {
    wr_http_reply_error(req, 404, "not_found", "no such customer");
  } else if (rc == WR_ECONFLICT) {
    wr_http_reply_error(req, status, "version_conflict",
                        "If-Match version %" PRIu64 " does not match current version %" PRIu64,
                        expect, cu.version);
  } else if (rc) {
    wr_reply_db_error(req, rc, &err);
  } else {
    if (n > 0) {
      wr_relay_wake(a->relay);
      wr_log_info(wr_http_req_correlation_id(req),
                  "customer updated id=%s version=%" PRIu64 " changes=%zu event_id=%s", cu.id,
                  cu.version, n, ob.last_event_id);
    }
    reply_customer(req, 200, &cu);
  }
}

/* ---- DELETE /customers/{id} ---------------------------------------------------- */

static void delete_customer(wr_http_req *req, void *user) {
  app *a = user;
  const char *id = wr_http_req_param(req, "id");
  const char *reason = NULL, *actor = wr_http_req_header(req, "X-Actor");
  json_t *body = wr_http_req_json(req);
  static const char *const allowed[] = {"reason", NULL};
  if (body && (wr_body_only(req, body, allowed) < 0 ||
               wr_body_string(req, body, "reason", false, 0, 500, &reason) < 0))
    return;
  if (actor && (wr_utf8_chars(actor, strlen(actor)) < 0 || strlen(actor) > 200)) {
    wr_http_reply_error(req, 400, "invalid_header", "X-Actor must be printable, at most 200 bytes");
    return;
  }
  uint64_t expect = 0;
  int has_expect = if_match(req, &expect);
  if (has_expect < 0)
    return;
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  wr_err err = {0};
  wr_outbox ob;
  outbox_for(a, req, c, &ob, &err);
  customer cu;
  int rc = wr_db_exec(c, "BEGIN", &err);
  if (rc == 0) {
    rc = store_get(c, id, true, &cu, &err);
    if (rc == 0 && cu.status == CUSTOMER_DELETED)
      rc = WR_ENOTFOUND;
    if (rc == 0 && has_expect && expect != cu.version)
      rc = WR_ECONFLICT;
    if (rc == 0) {
      cu.status = CUSTOMER_DELETED; /* the row stays as a tombstone */
      rc = store_update(c, &cu, &err);
      if (rc == 0)
        rc = events_deleted(&ob, &cu, reason, actor ? actor : "api");
    }
    rc = finish_tx(c, rc, &err);
  }
  wr_db_pool_release(a->pool, c);
  if (rc == WR_ENOTFOUND) {
    wr_http_reply_error(req, 404, "not_found", "no such customer");
  } else if (rc == WR_ECONFLICT) {
    wr_http_reply_error(req, 409, "version_conflict",
                        "If-Match version %" PRIu64 " does not match current version %" PRIu64,
                        expect, cu.version);
  } else if (rc) {
    wr_reply_db_error(req, rc, &err);
  } else {
    wr_relay_wake(a->relay);
    wr_log_info(wr_http_req_correlation_id(req),
                "customer deleted id=%s version=%" PRIu64 " event_id=%s", cu.id, cu.version,
                ob.last_event_id);
    wr_http_reply_empty(req, 204);
  }
}

/* ---- GET /customers (bulk catch-up) -------------------------------------------- */

/* The bulk response is written as JSON text directly: a jansson value per customer,
 * then serialising them, took more CPU than the page's query (measured with perf on a
 * catch-up of 1,000,000 customers: malloc and jansson were the top of the profile;
 * docs/PERFORMANCE.md). The text is the same JSON, compact. */
typedef struct jbuf {
  char *p;
  size_t len, cap;
  bool oom;
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void jb_lit(jbuf *b, const char *s) {
  jb_put(b, s, strlen(s));
}

/* s as a JSON string: quote, backslash and control characters escaped, everything else
 * (UTF-8 text from the database) as it is, as jansson writes it. */
static void jb_string(jbuf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  jb_put(b, "\"", 1);
  const char *run = s;
  for (const char *p = s;; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch >= 0x20 && ch != '"' && ch != '\\')
      continue;
    jb_put(b, run, (size_t)(p - run));
    if (!ch)
      break;
    char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
    switch (ch) {
    case '"':
      jb_put(b, "\\\"", 2);
      break;
    case '\\':
      jb_put(b, "\\\\", 2);
      break;
    case '\n':
      jb_put(b, "\\n", 2);
      break;
    case '\r':
      jb_put(b, "\\r", 2);
      break;
    case '\t':
      jb_put(b, "\\t", 2);
      break;
    default:
      jb_put(b, esc, sizeof esc);
    }
    run = p + 1;
  }
  jb_put(b, "\"", 1);
}

/* One customer as customer_json() renders it. */
static void jb_customer(jbuf *b, const customer *cu) {
  char created[WR_RFC3339_STRLEN], updated[WR_RFC3339_STRLEN], num[24];
  wr_rfc3339_format(cu->created_us / 1000000, (int32_t)(cu->created_us % 1000000) * 1000, created);
  wr_rfc3339_format(cu->updated_us / 1000000, (int32_t)(cu->updated_us % 1000000) * 1000, updated);
  int n = snprintf(num, sizeof num, "%" PRIu64, cu->version);
  jb_lit(b, "{\"id\":");
  jb_string(b, cu->id);
  jb_lit(b, ",\"name\":");
  jb_string(b, cu->name);
  jb_lit(b, ",\"email\":");
  jb_string(b, cu->email);
  jb_lit(b, ",\"status\":");
  jb_string(b, customer_status_name(cu->status));
  jb_lit(b, ",\"version\":");
  jb_put(b, num, (size_t)n);
  jb_lit(b, ",\"created_at\":");
  jb_string(b, created);
  jb_lit(b, ",\"updated_at\":");
  jb_string(b, updated);
  jb_lit(b, "}");
}

/* The binary page (Accept: application/x-protobuf): every item a packed
 * customer.v1.Customer, in a warren.v1.Page (schemas/warren/v1/page.proto). */
static Customer__V1__CustomerStatus proto_status(customer_status st) {
  switch (st) {
  case CUSTOMER_ACTIVE:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  case CUSTOMER_PENDING:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING;
  case CUSTOMER_SUSPENDED:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED;
  case CUSTOMER_DELETED:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED;
  }
  return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_UNSPECIFIED;
}

struct list_state {
  bool binary;
  jbuf out;     /* JSON: {"items":[ ...; binary: the packed items, back to back */
  size_t *ends; /* binary: where each item ends in out */
  size_t n, ends_cap;
  int64_t last_updated_us;
  char last_id[WR_UUID_STRLEN];
};

/* Appends one packed customer.v1.Customer to the binary page. */
static void pb_customer(struct list_state *s, const customer *cu) {
  Customer__V1__Customer m = CUSTOMER__V1__CUSTOMER__INIT;
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                              updated = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  created.seconds = cu->created_us / 1000000;
  created.nanos = (int32_t)(cu->created_us % 1000000) * 1000;
  updated.seconds = cu->updated_us / 1000000;
  updated.nanos = (int32_t)(cu->updated_us % 1000000) * 1000;
  m.id = (char *)cu->id;
  m.name = (char *)cu->name;
  m.email = (char *)cu->email;
  m.status = proto_status(cu->status);
  m.created_at = &created;
  m.updated_at = &updated;
  m.version = cu->version;
  size_t len = customer__v1__customer__get_packed_size(&m);
  jbuf *b = &s->out;
  if (s->n == s->ends_cap) {
    size_t cap = s->ends_cap ? s->ends_cap * 2 : 256;
    size_t *ne = realloc(s->ends, cap * sizeof *ne);
    if (!ne) {
      b->oom = true;
      return;
    }
    s->ends = ne;
    s->ends_cap = cap;
  }
  size_t at = b->len;
  jb_put(b, "", 0); /* room for the terminating NUL, then grow to fit the item */
  if (!b->oom && b->len + len + 1 > b->cap) {
    size_t cap = b->cap;
    while (cap < b->len + len + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  if (b->oom)
    return;
  b->len = at + customer__v1__customer__pack(&m, (uint8_t *)b->p + at);
  s->ends[s->n] = b->len;
}

static int collect(const customer *cu, void *user) {
  struct list_state *s = user;
  if (s->binary) {
    pb_customer(s, cu);
  } else {
    if (s->n)
      jb_put(&s->out, ",", 1);
    jb_customer(&s->out, cu);
  }
  s->n++;
  s->last_updated_us = cu->updated_us;
  memcpy(s->last_id, cu->id, sizeof s->last_id);
  return s->out.oom ? WR_ENOMEM : 0;
}

static void list_state_free(struct list_state *s) {
  free(s->out.p);
  free(s->ends);
}

/* Ends the page and replies with it: JSON {"items":[...],"next_cursor":null|"..."}, or
 * binary a warren.v1.Page (next_cursor empty on the last page). */
static void reply_page(wr_http_req *req, struct list_state *s, const char *next_cursor) {
  if (s->binary) {
    ProtobufCBinaryData *items = s->n ? malloc(s->n * sizeof *items) : NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s->n == 0 || items) {
      Warren__V1__Page pg = WARREN__V1__PAGE__INIT;
      for (size_t i = 0; i < s->n; i++) {
        size_t start = i ? s->ends[i - 1] : 0;
        items[i] =
            (ProtobufCBinaryData){.len = s->ends[i] - start, .data = (uint8_t *)s->out.p + start};
      }
      pg.n_items = s->n;
      pg.items = items;
      pg.next_cursor = next_cursor ? (char *)next_cursor : (char *)"";
      len = warren__v1__page__get_packed_size(&pg);
      buf = malloc(len ? len : 1);
      if (buf)
        warren__v1__page__pack(&pg, buf);
    }
    if (!buf)
      wr_http_reply_error(req, 503, "unavailable", "out of memory");
    else
      wr_http_reply_bytes(req, 200, WR_SYNC_PROTOBUF_TYPE, buf, len);
    free(buf);
    free(items);
    list_state_free(s);
    return;
  }
  jb_lit(&s->out, "],\"next_cursor\":");
  if (next_cursor)
    jb_string(&s->out, next_cursor);
  else
    jb_lit(&s->out, "null");
  jb_lit(&s->out, "}");
  if (s->out.oom)
    wr_http_reply_error(req, 503, "unavailable", "out of memory");
  else
    wr_http_reply_bytes(req, 200, "application/json", s->out.p, s->out.len);
  list_state_free(s);
}

/* The q value of one Accept element's parameters (";q=0.5"): 1000 for 1, 0 for 0,
 * 1000 when absent or not a valid qvalue. */
static int accept_q(const char *params, size_t len) {
  int q = 1000;
  for (size_t i = 0; i < len; i++) {
    if (params[i] != ';')
      continue;
    size_t j = i + 1;
    while (j < len && (params[j] == ' ' || params[j] == '\t'))
      j++;
    if (j + 2 > len || (params[j] != 'q' && params[j] != 'Q') || params[j + 1] != '=')
      continue;
    j += 2;
    if (j < len && params[j] == '1')
      return 1000;
    if (j >= len || params[j] != '0')
      return 1000;
    q = 0;
    j++;
    if (j < len && params[j] == '.') {
      int scale = 100;
      for (j++; j < len && params[j] >= '0' && params[j] <= '9' && scale > 0; j++, scale /= 10)
        q += (params[j] - '0') * scale;
    }
    return q;
  }
  return q;
}

/* Content negotiation of the bulk endpoint: binary pages when Accept names
 * application/x-protobuf with a q value above 0 and at least that of the JSON it
 * would otherwise get (application/json, any application type, any type). Anything else, no
 * Accept included, gets JSON, the default. */
static bool wants_protobuf(wr_http_req *req) {
  const char *acc = wr_http_req_header(req, "Accept");
  if (!acc)
    return false;
  int q_pb = -1, q_json = -1;
  for (const char *p = acc; *p;) {
    size_t el = strcspn(p, ",");
    const char *e = p;
    while (e < p + el && (*e == ' ' || *e == '\t'))
      e++;
    size_t tl = strcspn(e, ";,");
    size_t ml = tl;
    while (ml > 0 && (e[ml - 1] == ' ' || e[ml - 1] == '\t'))
      ml--;
    int q = accept_q(e + tl, (size_t)(p + el - (e + tl)));
    if (ml == strlen(WR_SYNC_PROTOBUF_TYPE) && strncasecmp(e, WR_SYNC_PROTOBUF_TYPE, ml) == 0) {
      if (q > q_pb)
        q_pb = q;
    } else if ((ml == 16 && strncasecmp(e, "application/json", 16) == 0) ||
               (ml == 13 && strncasecmp(e, "application/*", 13) == 0) ||
               (ml == 3 && strncmp(e, "*/*", 3) == 0)) {
      if (q > q_json)
        q_json = q;
    }
    p += el;
    if (*p == ',')
      p++;
  }
  return q_pb > 0 && q_pb >= q_json;
}

struct query_check {
  const char *bad;
};

static void check_query_key(const char *k, const char *v, void *u) {
  struct query_check *q = u;
  if (!q->bad && strcmp(k, "updated_since") != 0 && strcmp(k, "limit") != 0 &&
      strcmp(k, "cursor") != 0 && strcmp(k, "ids") != 0)
    q->bad = k;
}

/* Splits "a,b,c" into ids (in place in buf). Returns the count, or -1 (empty element,
 * too many, too long). */
static int split_ids(char *buf, const char **ids) {
  int n = 0;
  for (char *p = buf;;) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    if (*p == '\0' || strlen(p) > 64 || n >= IDS_MAX)
      return -1;
    ids[n++] = p;
    if (!comma)
      return n;
    p = comma + 1;
  }
}

static void list_customers(wr_http_req *req, void *user) {
  app *a = user;
  struct query_check q = {0};
  wr_http_req_query_foreach(req, check_query_key, &q);
  if (q.bad) {
    wr_http_reply_error(req, 400, "invalid_parameter",
                        "unknown parameter (allowed: updated_since, limit, cursor, ids)");
    return;
  }
  const char *ids_p = wr_http_req_query(req, "ids"),
             *since_p = wr_http_req_query(req, "updated_since"),
             *limit_p = wr_http_req_query(req, "limit"),
             *cursor_p = wr_http_req_query(req, "cursor");
  struct list_state s = {.binary = wants_protobuf(req)};
  wr_http_reply_header(req, "Vary", "Accept");
  if (!s.binary)
    jb_lit(&s.out, "{\"items\":[");
  wr_err err = {0};
  int rc;
  if (ids_p) {
    if (since_p || limit_p || cursor_p) {
      list_state_free(&s);
      wr_http_reply_error(req, 400, "invalid_parameter", "ids cannot be combined with paging");
      return;
    }
    size_t len = strlen(ids_p);
    char *buf = malloc(len + 1);
    const char **ids = malloc(sizeof *ids * IDS_MAX);
    int n = -1;
    if (buf && ids) {
      memcpy(buf, ids_p, len + 1);
      n = split_ids(buf, ids);
    }
    if (n < 0) {
      free(buf);
      free(ids);
      list_state_free(&s);
      wr_http_reply_error(req, 400, "invalid_parameter",
                          "ids must be 1..%d comma-separated ids of at most 64 bytes", IDS_MAX);
      return;
    }
    PGconn *c = take_conn(a, req);
    if (!c) {
      free(buf);
      free(ids);
      list_state_free(&s);
      return;
    }
    rc = store_by_ids(c, ids, (size_t)n, collect, &s, &err);
    wr_db_pool_release(a->pool, c);
    free(buf);
    free(ids);
    if (rc) {
      list_state_free(&s);
      wr_reply_db_error(req, rc, &err);
      return;
    }
    reply_page(req, &s, NULL);
    return;
  }
  unsigned limit = BULK_LIMIT_DEFAULT;
  int64_t since_us = STORE_SINCE_ALL;
  cursor cur;
  bool has_cursor = false;
  if (limit_p && wr_option_uint("limit", limit_p, 1, BULK_LIMIT_MAX, &limit, &err) != 0) {
    list_state_free(&s);
    wr_http_reply_error(req, 400, "invalid_parameter", "limit must be 1..%d", BULK_LIMIT_MAX);
    return;
  }
  if (since_p) {
    int64_t secs;
    int32_t nanos;
    if (wr_rfc3339_parse(since_p, &secs, &nanos) != 0) {
      list_state_free(&s);
      wr_http_reply_error(req, 400, "invalid_parameter", "updated_since must be RFC 3339");
      return;
    }
    since_us = secs * 1000000 + nanos / 1000;
  }
  if (cursor_p) {
    if (cursor_decode(cursor_p, &cur) != 0) {
      list_state_free(&s);
      wr_http_reply_error(req, 400, "invalid_cursor", "cursor is not valid");
      return;
    }
    has_cursor = true;
  }
  PGconn *c = take_conn(a, req);
  if (!c) {
    list_state_free(&s);
    return;
  }
  bool more = false;
  rc = store_page(c, since_us, has_cursor ? cur.updated_us : 0, has_cursor ? cur.id : NULL, limit,
                  collect, &s, &more, &err);
  wr_db_pool_release(a->pool, c);
  if (rc) {
    list_state_free(&s);
    wr_reply_db_error(req, rc, &err);
    return;
  }
  char enc[CURSOR_MAX + 1];
  if (more) {
    cursor nc = {.updated_us = s.last_updated_us};
    snprintf(nc.id, sizeof nc.id, "%s", s.last_id);
    if (cursor_encode(&nc, enc, sizeof enc) != 0) {
      /* never a null cursor here: the client would take the page for the last one */
      list_state_free(&s);
      wr_http_reply_error(req, 500, "internal", "cannot encode the next cursor");
      return;
    }
  }
  reply_page(req, &s, more ? enc : NULL);
}

/* ---- GET /customers/checksums -------------------------------------------------- */

static int member_json(const char *id, uint64_t version, void *user) {
  json_array_append_new(user, json_pack("{s:s,s:I}", "id", id, "version", (json_int_t)version));
  return 0;
}

struct checksum_query {
  const char *bad;
};

static void check_checksum_key(const char *k, const char *v, void *u) {
  struct checksum_query *q = u;
  if (!q->bad && strcmp(k, "bucket") != 0 && strcmp(k, "buckets") != 0)
    q->bad = k;
}

static void checksums(wr_http_req *req, void *user) {
  app *a = user;
  struct checksum_query q = {0};
  wr_http_req_query_foreach(req, check_checksum_key, &q);
  unsigned buckets = a->buckets, bucket = 0;
  const char *bp = wr_http_req_query(req, "bucket"), *np = wr_http_req_query(req, "buckets");
  wr_err err = {0};
  if (q.bad || (np && wr_option_uint("buckets", np, 1, WR_SYNC_BUCKETS_MAX, &buckets, &err)) ||
      (bp && wr_option_uint("bucket", bp, 0, buckets - 1, &bucket, &err))) {
    wr_http_reply_error(req, 400, "invalid_parameter",
                        "parameters: buckets (1..%u), bucket (0..buckets-1)", WR_SYNC_BUCKETS_MAX);
    return;
  }
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  int rc;
  json_t *out = NULL;
  if (bp) {
    json_t *items = json_array();
    rc = wr_sync_bucket_members(c, &store_sync_source, buckets, bucket, member_json, items, &err);
    out = json_pack("{s:I,s:I,s:o}", "bucket", (json_int_t)bucket, "buckets", (json_int_t)buckets,
                    "items", items);
  } else {
    wr_bucket *b = calloc(buckets, sizeof *b);
    rc = b ? wr_sync_checksums(c, &store_sync_source, buckets, b, &err) : WR_ENOMEM;
    if (rc == 0) {
      json_t *items = json_array();
      for (unsigned i = 0; i < buckets; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, b[i].checksum);
        json_array_append_new(items, json_pack("{s:I,s:I,s:s}", "bucket", (json_int_t)i, "count",
                                               (json_int_t)b[i].count, "checksum", hex));
      }
      out = json_pack("{s:I,s:o}", "buckets", (json_int_t)buckets, "items", items);
    }
    free(b);
  }
  wr_db_pool_release(a->pool, c);
  if (rc) {
    json_decref(out);
    wr_reply_db_error(req, rc, &err);
    return;
  }
  wr_http_reply_json(req, 200, out);
}

/* ---- admin, health ------------------------------------------------------------- */

static void post_snapshots(wr_http_req *req, void *user) {
  app *a = user;
  if (wr_http_req_json(req) && json_object_size(wr_http_req_json(req)) > 0) {
    wr_http_reply_error(req, 422, "unknown_field", "this endpoint takes no fields");
    return;
  }
  wr_err err = {0};
  long n = snapshot_run(a, wr_http_req_correlation_id(req), &err);
  if (n < 0) {
    wr_reply_db_error(req, (int)n, &err);
    return;
  }
  wr_relay_wake(a->relay);
  wr_http_reply_json(req, 200, json_pack("{s:I}", "emitted", (json_int_t)n));
}

static void healthz(wr_http_req *req, void *user) {
  wr_reply_healthz(req);
}

static void readyz(wr_http_req *req, void *user) {
  app *a = user;
  bool db = wr_db_pool_ping(a->pool, 1000);
  wr_relay_stats st;
  wr_relay_stats_get(a->relay, &st);
  wr_ready_check checks[] = {{"database", db}, {"broker", st.connected}};
  wr_reply_readyz(req, checks, 2);
}

static void metrics(wr_http_req *req, void *user) {
  app *a = user;
  wr_reply_metrics(req, a->metrics);
}

/* Literal paths before patterns: /customers/checksums is not a customer id. */
const wr_http_route customer_routes[] = {
    {"GET", "/healthz", healthz, 0},
    {"GET", "/readyz", readyz, 0},
    {"GET", "/metrics", metrics, 0},
    {"GET", "/customers/checksums", checksums, 0},
    {"GET", "/customers", list_customers, 0},
    {"POST", "/customers", create_customer, WR_ROUTE_JSON_BODY},
    {"GET", "/customers/{id}", get_customer, 0},
    {"PATCH", "/customers/{id}", patch_customer, WR_ROUTE_JSON_BODY},
    {"DELETE", "/customers/{id}", delete_customer, WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
    {"POST", "/admin/snapshots", post_snapshots,
     WR_ROUTE_ADMIN | WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
};
const size_t customer_routes_n = sizeof customer_routes / sizeof customer_routes[0];
