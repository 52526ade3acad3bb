/* warren/http_client.h: a small blocking HTTP/1.1 client (plain TCP, no TLS) for
 * service-to-service calls (catch-up, reconciliation), tools and tests. One request
 * per connection; Content-Length and chunked responses; every wait bounded by a
 * timeout; response size bounded. */
#ifndef WARREN_HTTP_CLIENT_H
#define WARREN_HTTP_CLIENT_H

#include <jansson.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_http_response {
  int status;
  char *body;          /* NUL-terminated (the NUL is not counted in len); malloc'd */
  size_t len;
  char *headers;       /* raw header block, malloc'd */
} wr_http_response;

typedef struct wr_http_request {
  const char *method;              /* "GET" ... */
  const char *url;                 /* "http://host:port/path?query" */
  const char *const *headers;      /* NULL-terminated "Name: value" lines, or NULL */
  const void *body;                /* may be NULL */
  size_t body_len;
  unsigned timeout_ms;             /* whole request (0 = 30 s) */
  size_t max_response;             /* bytes (0 = 64 MiB) */
} wr_http_request;

/* Performs the request. On 0, *res is filled (any HTTP status) and must be released
 * with wr_http_response_free(). Returns WR_EURL, WR_EIO (connect/read/write), 
 * WR_ETIMEDOUT, WR_ETOOBIG, WR_EHTTP (malformed response). */
WR_EXPORT int wr_http_do(const wr_http_request *req, wr_http_response *res, wr_err *err);
WR_EXPORT void wr_http_response_free(wr_http_response *res);

/* A response header's value copied into out (case-insensitive name); false if absent. */
WR_EXPORT bool wr_http_response_header(const wr_http_response *res, const char *name,
                                       char *out, size_t outsz);

/* GET url and parse a JSON body. On 0, *status is the HTTP status and *out the parsed
 * JSON (caller decrefs; any status). WR_EJSON when the body is not JSON. */
WR_EXPORT int wr_http_get_json(const char *url, const char *const *headers, unsigned timeout_ms,
                               int *status, json_t **out, wr_err *err);

WR_END_DECLS

#endif
