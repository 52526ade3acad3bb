/* http_internal.h (private): the parsers of outside bytes used by http.c and
 * http_client.c, exposed to the unit tests and fuzz targets (tests include runtime/src).
 * Each takes untrusted input and never reads past `len`. */
#ifndef WARREN_SRC_HTTP_INTERNAL_H
#define WARREN_SRC_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <warren/common.h>

/* Percent-decodes in[0..len) into a new malloc'd NUL-terminated string (*out, caller
 * frees; its length in *out_len if not NULL). With plus_as_space, '+' becomes ' '
 * (query strings). Returns 0, WR_EINVAL (a '%' not followed by two hex digits, a
 * decoded or raw NUL byte, or a result that is not UTF-8; *out untouched) or
 * WR_ENOMEM. */
int wr__http_pct_decode(const char *in, size_t len, bool plus_as_space, char **out,
                        size_t *out_len);

/* True if s is an acceptable X-Correlation-Id: 1..128 characters of [A-Za-z0-9._:-]. */
bool wr__http_corr_valid(const char *s);

/* True if a Content-Type value names JSON: "application/json" (any case), optional
 * parameters; a charset parameter, if present, must be utf-8. */
bool wr__http_content_type_is_json(const char *ct);

/* Parses a listen address "host:port", ":port", "[v6]:port" (port 0..65535) into *ss.
 * An empty host means all IPv4 interfaces; a host name is resolved (first result).
 * Returns 0 or WR_EINVAL. */
int wr__http_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen);

/* Splits "http://host[:port][/path][?query]" into host (brackets of an IPv6 literal
 * removed), port (default 80) and the request target ("/" when empty; a pointer into
 * url). Rejects other schemes, userinfo, control characters, spaces and bad ports.
 * Returns 0 or WR_EURL. */
int wr__http_parse_url(const char *url, char *host, size_t hostsz, unsigned *port,
                       const char **target);

#endif
