/* warren/http.h: a thin HTTP/JSON server layer over libmicrohttpd for warren services.
 *
 * Routing by method and path pattern ("/customers/{id}"), JSON bodies via jansson,
 * a body size limit (413), Content-Type checks (415), idle timeouts and a connection
 * limit, JSON error bodies {"error":{"code":"...","message":"..."}}, a bearer-token
 * check for admin routes (compared in constant time; no token configured => 403),
 * X-Correlation-Id (taken from the request or generated, echoed in the response),
 * 404 for unknown paths and 405 (with Allow) for known paths with another method.
 *
 * Handlers run on MHD's pool threads, concurrently: they must not share a PGconn or
 * an AMQP connection (take one from a wr_db_pool). */
#ifndef WARREN_HTTP_H
#define WARREN_HTTP_H

#include <jansson.h>
#include <warren/common.h>
#include <warren/error.h>
#include <warren/metrics.h>

WR_BEGIN_DECLS

typedef struct wr_http_server wr_http_server;
typedef struct wr_http_req wr_http_req;

/* A handler answers exactly once through one of the wr_http_reply_* calls. If it
 * returns without replying, the layer answers 500 {"error":{"code":"internal",...}}. */
typedef void (*wr_http_handler)(wr_http_req *req, void *user);

enum {
  WR_ROUTE_ADMIN = 1 << 0,     /* requires Authorization: Bearer <admin_token> */
  WR_ROUTE_JSON_BODY = 1 << 1, /* requires a JSON object body (415 / 400 otherwise) */
  WR_ROUTE_OPTIONAL_BODY = 1 << 2, /* with JSON_BODY: an empty body is allowed */
};

typedef struct wr_http_route {
  const char *method;   /* "GET", "POST", "PATCH", "DELETE", "PUT" */
  const char *pattern;  /* "/customers/{id}"; "{name}" matches one non-empty segment */
  wr_http_handler fn;
  unsigned flags;
} wr_http_route;

typedef struct wr_http_opts {
  const char *addr;              /* "127.0.0.1:8081", ":8081", "0.0.0.0:0" (0 = any port) */
  const wr_http_route *routes;   /* borrowed; must outlive the server */
  size_t n_routes;
  void *user;                    /* passed to every handler */
  unsigned threads;              /* MHD thread pool size */
  size_t max_body;               /* bytes; larger bodies get 413 */
  unsigned connection_timeout_s; /* idle connections are closed (slow clients) */
  unsigned max_connections;      /* further connections are refused */
  unsigned per_ip_connections;   /* 0 = unlimited */
  const char *admin_token;       /* NULL/"" => admin routes answer 403 */
  wr_metrics *metrics;           /* optional: warren_http_requests_total{route,status} */
} wr_http_opts;

#define WR_HTTP_OPTS_INIT                                                               \
  {                                                                                     \
    .addr = "127.0.0.1:0", .routes = NULL, .n_routes = 0, .user = NULL, .threads = 4,   \
    .max_body = 64 * 1024, .connection_timeout_s = 10, .max_connections = 512,          \
    .per_ip_connections = 0, .admin_token = NULL, .metrics = NULL                      \
  }

/* Starts listening (threads run until stop). Returns 0, WR_EINVAL (bad addr, bad
 * pattern), WR_EIO (cannot bind: the message names the address). */
WR_EXPORT int wr_http_server_start(const wr_http_opts *opts, wr_http_server **out, wr_err *err);
/* Stops accepting, waits for running handlers, frees. NULL allowed. */
WR_EXPORT void wr_http_server_stop(wr_http_server *s);
/* The bound port (useful with port 0). */
WR_EXPORT unsigned wr_http_server_port(const wr_http_server *s);

/* ---- request accessors: borrowed, valid until the handler returns ------------- */
WR_EXPORT const char *wr_http_req_method(const wr_http_req *r);
WR_EXPORT const char *wr_http_req_path(const wr_http_req *r);
/* A path parameter ("id" for "{id}"), percent-decoded; NULL if the pattern has none. */
WR_EXPORT const char *wr_http_req_param(const wr_http_req *r, const char *name);
/* A query parameter (decoded), or NULL. A parameter given twice yields the first. */
WR_EXPORT const char *wr_http_req_query(const wr_http_req *r, const char *name);
/* Calls fn for every query parameter (to reject unknown ones). */
WR_EXPORT void wr_http_req_query_foreach(const wr_http_req *r,
                                         void (*fn)(const char *k, const char *v, void *u),
                                         void *u);
WR_EXPORT const char *wr_http_req_header(const wr_http_req *r, const char *name);
/* Raw body (not NUL-terminated) and its length; NULL/0 when empty. */
WR_EXPORT const char *wr_http_req_body(const wr_http_req *r, size_t *len);
/* The parsed JSON object of a WR_ROUTE_JSON_BODY route (NULL when the optional body
 * was empty). Borrowed. */
WR_EXPORT json_t *wr_http_req_json(const wr_http_req *r);
/* The request's correlation id (from X-Correlation-Id if valid, else generated). */
WR_EXPORT const char *wr_http_req_correlation_id(const wr_http_req *r);

/* ---- replies: exactly one per request ---------------------------------------- */
/* Adds a response header (before the reply call). Strings are copied. */
WR_EXPORT int wr_http_reply_header(wr_http_req *r, const char *name, const char *value);
/* Replies with `body` serialized (the reference is stolen, even on failure). */
WR_EXPORT int wr_http_reply_json(wr_http_req *r, unsigned status, json_t *body);
/* Replies {"error":{"code":code,"message":...}}. */
WR_EXPORT int wr_http_reply_error(wr_http_req *r, unsigned status, const char *code,
                                  const char *fmt, ...) WR_PRINTF(4, 5);
/* Replies with bytes (copied) and a content type. */
WR_EXPORT int wr_http_reply_bytes(wr_http_req *r, unsigned status, const char *content_type,
                                  const void *data, size_t len);
/* Replies with no body (204, or any status). */
WR_EXPORT int wr_http_reply_empty(wr_http_req *r, unsigned status);

WR_END_DECLS

#endif
