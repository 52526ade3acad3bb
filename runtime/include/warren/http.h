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
 * an AMQP connection (take one from a wr_db_pool).
 *
 * What the layer answers by itself, before or instead of a handler, in this order:
 *   400 bad_request        target not an absolute path; path or query not valid
 *                          percent-encoding, holding a NUL byte (%00) or not UTF-8
 *   404 not_found          no route pattern matches the path
 *   405 method_not_allowed a pattern matches but not with this method (Allow: lists them)
 *   403 forbidden          WR_ROUTE_ADMIN and no admin token configured
 *   401 unauthorized       WR_ROUTE_ADMIN and Authorization: Bearer missing or wrong
 *                          (WWW-Authenticate: Bearer realm="warren"[, error="invalid_token"])
 *   413 payload_too_large  Content-Length above max_body (answered before reading it), or
 *                          a chunked body crossing max_body (read on, discarded, then 413)
 *   415 unsupported_media_type  WR_ROUTE_JSON_BODY without Content-Type application/json
 *                          (parameters allowed; a charset must be utf-8)
 *   400 invalid_json       WR_ROUTE_JSON_BODY: body missing, not UTF-8, not JSON (incl.
 *                          duplicate keys, \u0000, numbers out of range), or not an object
 *   500 internal           the handler returned without replying (logged as an error)
 * Every one of them has a JSON error body and the X-Correlation-Id header. Protocol-
 * level errors are answered by libmicrohttpd 0.9.75 itself, with its own short HTML
 * body (it has no hook to replace them): request line or headers over 32 KiB (414/431),
 * malformed requests and NUL bytes in header names (400), and HTTP versions other than
 * 1.0/1.1 (505, the one 5xx a client can provoke). A NUL byte inside a header VALUE
 * ends the value (libmicrohttpd parses headers as C strings); a NUL byte in the request
 * target is detected and answered 400.
 *
 * Routing details: a pattern is '/' followed by '/'-separated segments, each a literal
 * or "{name}" ([A-Za-z0-9_]+, matching one non-empty segment, percent-decoded). Paths
 * match exactly (no trailing-slash folding). When several routes match method and path,
 * the most specific wins: at the first position where they differ, a literal beats a
 * parameter ("/customers/checksums" beats "/customers/{id}"). HEAD is served by the GET
 * route (libmicrohttpd drops the body). In the query string '+' decodes to a space, as
 * in HTML forms: a client sends a literal '+' (RFC 3339 offsets) as %2B.
 *
 * Slow clients: connection_timeout_s closes connections idle that long (also between
 * keep-alive requests); request_timeout_s closes a connection whose request body is
 * still arriving that long after its headers. A client trickling its header block one
 * byte per interval is bounded only by the 32 KiB header limit, max_connections and
 * per_ip_connections.
 *
 * Connection limits: at max_connections the server stops accepting (libmicrohttpd
 * takes the listen socket out of its poll set): further clients wait in the kernel's
 * listen backlog (511) and are served as slots free up, or give up by their own
 * timeout; the server's memory stays bounded (32 KiB per connection plus max_body).
 * Connections beyond per_ip_connections from one address are accepted and closed at
 * once.
 *
 * Metrics (when opts.metrics is set), recorded once the response has been sent:
 *   warren_http_requests_total{route,method,status}   counter
 *   warren_http_request_duration_seconds{route,method} histogram (wr_metrics_latency_buckets)
 * route is the matched pattern or "unmatched"; method is a standard method or "other". */
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
  WR_ROUTE_ADMIN = 1 << 0,         /* requires Authorization: Bearer <admin_token> */
  WR_ROUTE_JSON_BODY = 1 << 1,     /* requires a JSON object body (415 / 400 otherwise) */
  WR_ROUTE_OPTIONAL_BODY = 1 << 2, /* with JSON_BODY: an empty body is allowed */
};

typedef struct wr_http_route {
  const char *method;  /* "GET", "POST", "PATCH", "DELETE", "PUT" */
  const char *pattern; /* "/customers/{id}"; "{name}" matches one non-empty segment */
  wr_http_handler fn;
  unsigned flags;
} wr_http_route;

typedef struct wr_http_opts {
  const char *addr;            /* "127.0.0.1:8081", ":8081" (all IPv4 interfaces),
                                  "[::1]:8081", "0.0.0.0:0" (0 = any free port) */
  const wr_http_route *routes; /* borrowed; must outlive the server */
  size_t n_routes;
  void *user;                    /* passed to every handler */
  unsigned threads;              /* MHD thread pool size (1..256) */
  size_t max_body;               /* bytes; larger bodies get 413 */
  unsigned connection_timeout_s; /* idle connections are closed (slow clients) */
  unsigned request_timeout_s;    /* a body still arriving after this is cut off */
  unsigned max_connections;      /* further connections wait in the listen backlog */
  unsigned per_ip_connections;   /* 0 = unlimited */
  const char *admin_token;       /* copied; NULL/"" => admin routes answer 403 */
  wr_metrics *metrics;           /* optional, borrowed: must outlive the server */
} wr_http_opts;

/* Zero in threads, max_body, connection_timeout_s, request_timeout_s or max_connections
 * means the default below. */
#define WR_HTTP_OPTS_INIT                                                                          \
  {                                                                                                \
    .addr = "127.0.0.1:0", .routes = NULL, .n_routes = 0, .user = NULL, .threads = 4,              \
    .max_body = 64 * 1024, .connection_timeout_s = 10, .request_timeout_s = 30,                    \
    .max_connections = 512, .per_ip_connections = 0, .admin_token = NULL, .metrics = NULL          \
  }

/* Starts listening (threads run until stop). The routes are validated: bad patterns,
 * duplicate (method, pattern) pairs, a missing handler are WR_EINVAL. Returns 0 and
 * *out (free with wr_http_server_stop), WR_EINVAL (bad addr or routes, err says which),
 * WR_ENOMEM, WR_EIO (cannot bind: the message names the address and the reason). */
WR_EXPORT int wr_http_server_start(const wr_http_opts *opts, wr_http_server **out, wr_err *err);
/* Stops gracefully: lets every request already received or being received finish and
 * get its answer (sent with Connection: close), answers requests begun after the call
 * 503 shutting_down without running their handler, waits at most request_timeout_s,
 * then closes the listening socket and the remaining connections and frees. NULL
 * allowed. Must not be called from a handler. */
WR_EXPORT void wr_http_server_stop(wr_http_server *s);
/* The bound port (useful with port 0). 0 for NULL. Cannot fail. */
WR_EXPORT unsigned wr_http_server_port(const wr_http_server *s);

/* ---- request accessors: borrowed, valid until the handler returns ------------- */
/* The request method as sent ("GET", "HEAD" for a HEAD served by a GET route). */
WR_EXPORT const char *wr_http_req_method(const wr_http_req *r);
/* The path as sent: still percent-encoded, without the query string. */
WR_EXPORT const char *wr_http_req_path(const wr_http_req *r);
/* A path parameter ("id" for "{id}"), percent-decoded; NULL if the pattern has none. */
WR_EXPORT const char *wr_http_req_param(const wr_http_req *r, const char *name);
/* A query parameter (decoded, valid UTF-8, no NUL), or NULL. A parameter given twice
 * yields the first; "?flag" yields "". */
WR_EXPORT const char *wr_http_req_query(const wr_http_req *r, const char *name);
/* Calls fn for every query parameter, in order, duplicates included (to reject unknown
 * ones). The strings are valid until the handler returns. */
WR_EXPORT void wr_http_req_query_foreach(const wr_http_req *r,
                                         void (*fn)(const char *k, const char *v, void *u),
                                         void *u);
/* A request header (case-insensitive name; the first if repeated), raw bytes as sent
 * (not validated as UTF-8), or NULL. */
WR_EXPORT const char *wr_http_req_header(const wr_http_req *r, const char *name);
/* Raw body (not NUL-terminated, at most max_body bytes) and its length; NULL/0 when
 * empty. len may be NULL. */
WR_EXPORT const char *wr_http_req_body(const wr_http_req *r, size_t *len);
/* The parsed JSON object of a WR_ROUTE_JSON_BODY route (NULL when the optional body
 * was empty). Borrowed. */
WR_EXPORT json_t *wr_http_req_json(const wr_http_req *r);
/* The request's correlation id: X-Correlation-Id if it is 1..128 characters of
 * [A-Za-z0-9._:-], else a generated UUIDv7. Always echoed in the response. */
WR_EXPORT const char *wr_http_req_correlation_id(const wr_http_req *r);

/* ---- replies: exactly one per request ---------------------------------------- */
/* Called from the handler only. The first reply wins: a second one returns WR_ESTATE
 * and changes nothing. A reply call that fails (WR_EINVAL, WR_ENOMEM) records nothing,
 * so unless the handler replies again the layer answers 500. The reply is sent after
 * the handler returns. */

/* Adds a response header (before the reply call). Strings are copied. WR_EINVAL for a
 * name that is not an HTTP token, a value with CR/LF, or a header the layer owns
 * (Content-Type, Content-Length, Transfer-Encoding, Connection, X-Correlation-Id);
 * WR_ESTATE after the reply; WR_ENOMEM. */
WR_EXPORT int wr_http_reply_header(wr_http_req *r, const char *name, const char *value);
/* Replies with `body` serialized compactly, Content-Type application/json (the reference
 * is stolen, even on failure). status 100..599 else WR_EINVAL. */
WR_EXPORT int wr_http_reply_json(wr_http_req *r, unsigned status, json_t *body);
/* Replies {"error":{"code":code,"message":...}}. Invalid UTF-8 in the formatted message
 * (e.g. echoed client input) is replaced by '?'; the message is cut at 511 bytes. */
WR_EXPORT int wr_http_reply_error(wr_http_req *r, unsigned status, const char *code,
                                  const char *fmt, ...) WR_PRINTF(4, 5);
/* Replies with bytes (copied) and a content type (NULL: no Content-Type header). */
WR_EXPORT int wr_http_reply_bytes(wr_http_req *r, unsigned status, const char *content_type,
                                  const void *data, size_t len);
/* Replies with no body (204, or any status). */
WR_EXPORT int wr_http_reply_empty(wr_http_req *r, unsigned status);

WR_END_DECLS

#endif
