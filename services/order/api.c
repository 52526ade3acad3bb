/* api.c: the order service's REST API: the local customer view, orders (checked
 * against the view, published through the outbox), reconciliation, health. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "view.h"

#include "order/v1/order.warren.h"

#define DB_WAIT_MS 5000

static PGconn *take_conn(app *a, wr_http_req *req) {
  return wr_http_db_acquire(req, a->pool, DB_WAIT_MS);
}

static void us_to_rfc3339(int64_t us, char out[WR_RFC3339_STRLEN]) {
  if (wr_rfc3339_format(us / 1000000, (int32_t)(us % 1000000) * 1000, out) != 0)
    snprintf(out, WR_RFC3339_STRLEN, "%s", "");
}

/* ---- GET /customers/{id}: the local view ---------------------------------------- */

static void get_customer(wr_http_req *req, void *user) {
  app *a = user;
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  view_row r;
  wr_err err = {0};
  int rc = view_get(c, wr_http_req_param(req, "id"), false, &r, &err);
  wr_db_pool_release(a->pool, c);
  if (rc == WR_ENOTFOUND) {
    wr_http_reply_error(req, 404, "not_found", "customer never seen by this service");
    return;
  }
  if (rc) {
    wr_reply_db_error(req, rc, &err);
    return;
  }
  char synced[WR_RFC3339_STRLEN];
  us_to_rfc3339(r.synced_us, synced);
  wr_http_reply_json(req, 200,
                     json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "id", r.id, "name", r.name, "email",
                               r.email, "status", r.status, "version", (json_int_t)r.version,
                               "synced_at", synced));
}

/* ---- orders -------------------------------------------------------------------- */

static json_t *order_json(const char *id, const char *customer_id, int64_t amount,
                          const char *currency, const char *status, int64_t created_us) {
  char created[WR_RFC3339_STRLEN];
  us_to_rfc3339(created_us, created);
  return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "id", id, "customer_id", customer_id,
                   "amount_cents", (json_int_t)amount, "currency", currency, "status", status,
                   "created_at", created);
}

static bool currency_valid(const char *c) {
  return strlen(c) == 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' &&
         c[2] >= 'A' && c[2] <= 'Z';
}

static void post_order(wr_http_req *req, void *user) {
  app *a = user;
  json_t *body = wr_http_req_json(req);
  static const char *const allowed[] = {"customer_id", "amount_cents", "currency", NULL};
  const char *customer_id, *currency;
  int64_t amount;
  if (wr_body_only(req, body, allowed) < 0 ||
      wr_body_string(req, body, "customer_id", true, 1, VIEW_ID_MAX, &customer_id) < 0 ||
      wr_body_int(req, body, "amount_cents", true, 1, 1000000000000LL, &amount) < 0 ||
      wr_body_string(req, body, "currency", true, 3, 3, &currency) < 0)
    return;
  if (!currency_valid(currency)) {
    wr_http_reply_error(req, 422, "invalid_value",
                        "field \"currency\" must be an ISO 4217 code such as \"EUR\"");
    return;
  }
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  wr_err err = {0};
  char id[WR_UUID_STRLEN];
  wr_uuid_v7(id);
  int64_t created_us = wr_now_ns() / 1000;
  const char *refusal = NULL;
  view_row cust;
  char event_id[WR_UUID_STRLEN] = "";
  int rc = wr_db_exec(c, "BEGIN", &err);
  if (rc == 0) {
    /* FOR SHARE: a concurrent delete of the customer waits for this order's commit,
     * so an order never lands on a customer deleted in between */
    const char *p1[1] = {customer_id};
    PGresult *r = PQexecParams(c, "SELECT status FROM customer_view WHERE id = $1 FOR SHARE", 1,
                               NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      rc = wr_err_set(&err, WR_EDB, "read customer_view: %s", PQresultErrorMessage(r));
    } else if (PQntuples(r) == 0) {
      refusal = "customer_unknown";
    } else {
      snprintf(cust.status, sizeof cust.status, "%s", PQgetvalue(r, 0, 0));
      if (strcmp(cust.status, "active") != 0)
        refusal = "customer_inactive";
    }
    PQclear(r);
    if (rc == 0 && !refusal) {
      char amt[24], created[24];
      snprintf(amt, sizeof amt, "%" PRId64, amount);
      snprintf(created, sizeof created, "%" PRId64, created_us);
      const char *p[5] = {id, customer_id, amt, currency, created};
      r = PQexecParams(c,
                       "INSERT INTO orders (id, customer_id, amount_cents, currency, status, "
                       "created_at) VALUES ($1, $2, $3, $4, 'placed', "
                       "to_timestamp($5::numeric / 1000000))",
                       5, NULL, p, NULL, NULL, 0);
      if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = wr_err_set(&err, WR_EDB, "insert order: %s", PQresultErrorMessage(r));
      PQclear(r);
    }
    if (rc == 0 && !refusal) {
      Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
      ts.seconds = created_us / 1000000;
      ts.nanos = (int32_t)(created_us % 1000000) * 1000;
      Order__V1__Order o = ORDER__V1__ORDER__INIT;
      o.id = id;
      o.customer_id = (char *)customer_id;
      o.amount_cents = amount;
      o.currency = (char *)currency;
      o.status = ORDER__V1__ORDER_STATUS__ORDER_STATUS_PLACED;
      o.created_at = &ts;
      Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
      meta.aggregate_id = id;
      meta.version = 1;
      Order__V1__OrderPlaced ev = ORDER__V1__ORDER_PLACED__INIT;
      ev.meta = &meta;
      ev.data = &o;
      wr_outbox ob = {.conn = c,
                      .source_service = a->service,
                      .source_instance = a->instance,
                      .correlation_id = wr_http_req_correlation_id(req),
                      .err = &err};
      rc = order_v1_order_placed_publish(&ob, &ev);
      snprintf(event_id, sizeof event_id, "%s", ob.last_event_id);
    }
    if (rc == 0 && !refusal)
      rc = wr_db_exec(c, "COMMIT", &err);
    else
      wr_db_exec(c, "ROLLBACK", NULL);
  }
  wr_db_pool_release(a->pool, c);
  if (rc) {
    wr_reply_db_error(req, rc, &err);
    return;
  }
  if (refusal) {
    wr_http_reply_error(req, 422, refusal,
                        strcmp(refusal, "customer_unknown") == 0
                            ? "customer %.64s is not known here"
                            : "customer %.64s is not active",
                        customer_id);
    return;
  }
  wr_relay_wake(a->relay);
  wr_log_info(wr_http_req_correlation_id(req), "order placed id=%s customer=%s event_id=%s", id,
              customer_id, event_id);
  char loc[80];
  snprintf(loc, sizeof loc, "/orders/%s", id);
  wr_http_reply_header(req, "Location", loc);
  wr_http_reply_json(req, 201, order_json(id, customer_id, amount, currency, "placed", created_us));
}

static void get_order(wr_http_req *req, void *user) {
  app *a = user;
  PGconn *c = take_conn(a, req);
  if (!c)
    return;
  const char *p[1] = {wr_http_req_param(req, "id")};
  PGresult *r = PQexecParams(c,
                             "SELECT id, customer_id, amount_cents, currency, status, "
                             "(extract(epoch FROM created_at) * 1000000)::bigint "
                             "FROM orders WHERE id = $1",
                             1, NULL, p, NULL, NULL, 0);
  wr_db_pool_release(a->pool, c);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    wr_err err;
    wr_err_set(&err, WR_EDB, "read order: %s", PQresultErrorMessage(r));
    PQclear(r);
    wr_reply_db_error(req, WR_EDB, &err);
    return;
  }
  if (PQntuples(r) == 0) {
    PQclear(r);
    wr_http_reply_error(req, 404, "not_found", "no such order");
    return;
  }
  json_t *j =
      order_json(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), strtoll(PQgetvalue(r, 0, 2), NULL, 10),
                 PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4), strtoll(PQgetvalue(r, 0, 5), NULL, 10));
  PQclear(r);
  wr_http_reply_json(req, 200, j);
}

/* ---- admin, health ------------------------------------------------------------- */

static void post_reconcile(wr_http_req *req, void *user) {
  app *a = user;
  if (wr_http_req_json(req) && json_object_size(wr_http_req_json(req)) > 0) {
    wr_http_reply_error(req, 422, "unknown_field", "this endpoint takes no fields");
    return;
  }
  reconcile_result res;
  wr_err err = {0};
  int rc = reconcile_run(a, wr_http_req_correlation_id(req), &res, &err);
  if (rc) {
    wr_log_error(wr_http_req_correlation_id(req), "reconciliation failed: %s", err.msg);
    wr_http_reply_error(req, rc == WR_EDB ? 503 : 502, "reconcile_failed", "%s",
                        rc == WR_EDB ? "database unavailable" : "customer service unavailable");
    return;
  }
  wr_http_reply_json(req, 200,
                     json_pack("{s:I,s:I,s:I,s:I}", "checked", (json_int_t)res.checked,
                               "buckets_differing", (json_int_t)res.buckets_differing,
                               "discrepancies_found", (json_int_t)res.found, "discrepancies_fixed",
                               (json_int_t)res.fixed));
}

static void healthz(wr_http_req *req, void *user) {
  wr_reply_healthz(req);
}

static void readyz(wr_http_req *req, void *user) {
  app *a = user;
  bool db = wr_db_pool_ping(a->pool, 1000);
  wr_consumer_stats cs;
  wr_consumer_stats_get(a->consumer, &cs);
  wr_ready_check checks[] = {
      {"database", db}, {"broker", cs.connected}, {"catch_up", a->caught_up != 0}};
  wr_reply_readyz(req, checks, 3);
}

static void metrics(wr_http_req *req, void *user) {
  app *a = user;
  wr_reply_metrics(req, a->metrics);
}

const wr_http_route order_routes[] = {
    {"GET", "/healthz", healthz, 0},
    {"GET", "/readyz", readyz, 0},
    {"GET", "/metrics", metrics, 0},
    {"GET", "/customers/{id}", get_customer, 0},
    {"POST", "/orders", post_order, WR_ROUTE_JSON_BODY},
    {"GET", "/orders/{id}", get_order, 0},
    {"POST", "/admin/reconcile", post_reconcile,
     WR_ROUTE_ADMIN | WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
    {"POST", "/admin/replay", replay_http_post,
     WR_ROUTE_ADMIN | WR_ROUTE_JSON_BODY | WR_ROUTE_OPTIONAL_BODY},
    {"GET", "/admin/replay", replay_http_get, WR_ROUTE_ADMIN},
};
const size_t order_routes_n = sizeof order_routes / sizeof order_routes[0];
