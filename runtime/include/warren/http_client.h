/* warren/http_client.h: a small blocking HTTP/1.1 client (plain TCP, no TLS) for
 * service-to-service calls (catch-up, reconciliation), tools and tests. One request
 * per connection ("Connection: close"); Content-Length, chunked and read-to-close
 * responses; every connect, write and read bounded by one deadline; response size
 * bounded. Thread-safe: no shared state (each call has its own socket). */
#ifndef WARREN_HTTP_CLIENT_H
#define WARREN_HTTP_CLIENT_H

#include <jansson.h>
#include <warren/common.h>
#include <warren/error.h>

WR_BEGIN_DECLS

typedef struct wr_http_response {
  int status;
  char *body; /* NUL-terminated (the NUL is not counted in len); malloc'd; the
                 body may itself contain NUL bytes */
  size_t len;
  char *headers; /* raw header block, malloc'd: the status line, then one
                    "Name: value" per line, CR LF separated, no final empty line */
} wr_http_response;

typedef struct wr_http_request {
  const char *method;         /* "GET" ... (letters, '-', '_') */
  const char *url;            /* "http://host:port/path?query", already encoded;
                                 "[v6]" hosts; no userinfo, no spaces */
  const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL. Host
                                 may be overridden; Content-Length, Transfer-Encoding
                                 and Connection may not (WR_EINVAL) */
  const void *body;           /* may be NULL */
  size_t body_len;
  unsigned timeout_ms; /* whole request (0 = 30 s) */
  size_t max_response; /* bytes (0 = 64 MiB) */
} wr_http_request;

/* Performs the request: Content-Length is sent when there is a body (and for POST, PUT,
 * PATCH), never chunked. On 0, *res is filled (any HTTP status; interim 1xx skipped)
 * and must be released with wr_http_response_free(). On failure *res is zeroed (free
 * is harmless). Returns WR_EINVAL (bad method, header line or arguments), WR_EURL,
 * WR_EIO (resolve, connect, read, write, or the peer closed before the end of the
 * response), WR_ETIMEDOUT (the whole request exceeded timeout_ms; name resolution is
 * not bounded by it), WR_ETOOBIG (body over max_response, header block over 64 KiB),
 * WR_EHTTP (malformed response), WR_ENOMEM. Details in err. If the server answers and
 * closes while the body is still being sent (e.g. an early 413), that answer is
 * returned. */
WR_EXPORT int wr_http_do(const wr_http_request *req, wr_http_response *res, wr_err *err);
/* Frees body and headers and zeroes *res. NULL allowed. */
WR_EXPORT void wr_http_response_free(wr_http_response *res);

/* A response header's value (the first if repeated; surrounding blanks trimmed) copied
 * into out (case-insensitive name). False, with out = "", if absent or if the value
 * does not fit in outsz - 1 bytes. */
WR_EXPORT bool wr_http_response_header(const wr_http_response *res, const char *name, char *out,
                                       size_t outsz);

/* GET url and parse a JSON body (sends Accept: application/json unless headers name
 * one; at most 32 headers). On 0, *status is the HTTP status and *out the parsed JSON
 * (caller decrefs; any status). WR_EJSON when the body is not JSON (duplicate keys
 * included); otherwise the errors of wr_http_do. timeout_ms 0 = 30 s. */
WR_EXPORT int wr_http_get_json(const char *url, const char *const *headers, unsigned timeout_ms,
                               int *status, json_t **out, wr_err *err);

WR_END_DECLS

#endif
