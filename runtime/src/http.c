/* http.c: the services' HTTP layer over libmicrohttpd 0.9.75.
 *
 * Request life cycle (one wr_http_req per request, owned by this file):
 *   1. MHD's URI-log callback runs before MHD touches the request line: we allocate the
 *      request there and keep the raw target, because MHD would otherwise decode the
 *      path and query in place (turning %00 into a terminator, %2F into a separator).
 *      The unescape callback is the identity for the same reason: all decoding is ours.
 *   2. First access-handler call (headers complete, no body yet): correlation id,
 *      target parsing (400), routing (404/405), admin token (403/401), announced
 *      Content-Length (413) and Content-Type (415). An error is answered right here,
 *      before any body byte is read; MHD then closes the connection.
 *   3. Body chunks: appended up to max_body. MHD 0.9.75 refuses a response while the
 *      body is still arriving, so a chunked body that crosses the limit is read on and
 *      discarded (never buffered) and answered 413 when it ends. Every chunk checks the
 *      request deadline: a body trickling in longer than request_timeout_s closes the
 *      connection (slow-body clients cannot pin a connection forever).
 *   4. Last call: JSON checks (UTF-8, syntax, duplicates, object), then the handler. The
 *      handler's reply is only recorded; it is queued after the handler returns, with
 *      the correlation id added; no reply means 500 (logged).
 *   5. MHD's completed callback: metrics (status, latency including sending) and free.
 *
 * What MHD answers itself, without us: request lines or header blocks over the memory
 * limit (431 or 414), malformed requests (400), unsupported HTTP versions (505). Those
 * bodies are MHD's own short HTML; 0.9.75 offers no hook to replace them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <warren/http.h>
#include <warren/log.h>
#include <warren/util.h>

#include "http_internal.h"
#include "utf8.h"

#define MAX_SEGMENTS     32    /* path segments a pattern may have */
#define MAX_CORR_LEN     128   /* X-Correlation-Id */
#define MHD_MEMORY_LIMIT 32768 /* per connection: request line + headers + read buffer */

static const char REQUESTS_NAME[] = "warren_http_requests_total";
static const char REQUESTS_HELP[] = "HTTP requests answered, by route pattern, method and status.";
static const char LATENCY_NAME[] = "warren_http_request_duration_seconds";
static const char LATENCY_HELP[] =
    "Time from the request's headers to the end of its response, by route pattern and method.";

/* ---- routes, compiled ------------------------------------------------------------- */

typedef struct seg {
  char *text; /* literal text, or the parameter name */
  bool param;
} seg;

typedef struct croute {
  const wr_http_route *r;
  seg segs[MAX_SEGMENTS];
  size_t nseg;
} croute;

struct wr_http_server {
  struct MHD_Daemon *d;
  croute *routes;
  size_t n_routes;
  void *user;
  size_t max_body;
  int64_t request_timeout_ns;
  char *token; /* NULL: admin routes answer 403 */
  size_t token_len;
  wr_metrics *metrics;
  unsigned port;
  int inflight; /* requests between the URI callback and the completed callback, except
                 * those begun after the stop (late: answered 503, not waited for) */
  int stopping; /* wr_http_server_stop has begun: answers carry Connection: close */
};

typedef struct kv {
  const char *k; /* query: malloc'd; params: borrowed from the route */
  char *v;
} kv;

typedef struct hdr {
  struct hdr *next;
  char *name, *value;
} hdr;

struct wr_http_req {
  wr_http_server *srv;
  struct MHD_Connection *conn;
  char *target;        /* the raw request target as received */
  uintptr_t target_at; /* where MHD had it (see nul_in_target) */
  size_t target_len;
  const char *method;
  char *path; /* raw path (target without the query) */
  const croute *route;
  char *segs[MAX_SEGMENTS]; /* decoded path segments */
  size_t nseg;
  kv *query;
  size_t n_query;
  char corr[MAX_CORR_LEN + 1];
  int64_t start_ns;
  bool started;
  bool too_big;     /* the body crossed max_body: discarding */
  bool oom;         /* could not grow the body buffer */
  bool ct_deferred; /* optional JSON body without Content-Type: check once the body is known */
  bool late;        /* begun after wr_http_server_stop: answered 503 shutting_down */
  char *body;
  size_t body_len, body_cap;
  json_t *json;
  hdr *headers, **headers_tail;
  struct MHD_Response *resp; /* the recorded reply */
  unsigned status;
  bool queued;
};

/* ---- parsers of outside bytes ------------------------------------------------------ */

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int wr__http_pct_decode(const char *in, size_t len, bool plus_as_space, char **out,
                        size_t *out_len) {
  char *o = malloc(len + 1);
  if (!o)
    return WR_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= len) {
        free(o);
        return WR_EINVAL;
      }
      int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
      if (h < 0 || l < 0 || (h == 0 && l == 0)) {
        free(o);
        return WR_EINVAL;
      }
      o[j++] = (char)(h * 16 + l);
      i += 2;
    } else if (c == '\0') {
      free(o);
      return WR_EINVAL;
    } else {
      o[j++] = (plus_as_space && c == '+') ? ' ' : c;
    }
  }
  o[j] = '\0';
  if (!wr__utf8_valid(o, j, NULL)) {
    free(o);
    return WR_EINVAL;
  }
  *out = o;
  if (out_len)
    *out_len = j;
  return 0;
}

bool wr__http_corr_valid(const char *s) {
  if (!s)
    return false;
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (n >= MAX_CORR_LEN)
      return false;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == ':' || c == '-'))
      return false;
  }
  return n > 0;
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

bool wr__http_content_type_is_json(const char *ct) {
  if (!ct)
    return false;
  while (is_ows(*ct))
    ct++;
  static const char mt[] = "application/json";
  if (strncasecmp(ct, mt, sizeof mt - 1) != 0)
    return false;
  const char *p = ct + sizeof mt - 1;
  while (is_ows(*p))
    p++;
  if (*p == '\0')
    return true;
  if (*p != ';')
    return false; /* "application/jsonx", "application/json foo" */
  /* Parameters: only charset matters, and JSON is UTF-8 (RFC 8259). */
  while (*p == ';') {
    p++;
    while (is_ows(*p))
      p++;
    const char *name = p;
    while (*p && *p != '=' && *p != ';')
      p++;
    size_t nlen = (size_t)(p - name);
    while (nlen > 0 && is_ows(name[nlen - 1]))
      nlen--;
    if (*p != '=') {
      if (nlen > 0)
        return false; /* a parameter without a value is malformed */
      continue;
    }
    p++;
    const char *val = p;
    size_t vlen;
    if (*p == '"') {
      val = ++p;
      while (*p && *p != '"')
        p++;
      if (*p != '"')
        return false;
      vlen = (size_t)(p - val);
      p++;
      while (is_ows(*p))
        p++;
      if (*p && *p != ';')
        return false;
    } else {
      while (*p && *p != ';')
        p++;
      vlen = (size_t)(p - val);
      while (vlen > 0 && is_ows(val[vlen - 1]))
        vlen--;
    }
    if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
        !(vlen == 5 && strncasecmp(val, "utf-8", 5) == 0) &&
        !(vlen == 4 && strncasecmp(val, "utf8", 4) == 0))
      return false;
  }
  return *p == '\0';
}

int wr__http_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen) {
  if (!addr || !*addr || strlen(addr) > 300)
    return WR_EINVAL;
  char host[300];
  const char *port_s;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (!close || close[1] != ':' || close == addr + 1)
      return WR_EINVAL;
    size_t hl = (size_t)(close - addr - 1);
    memcpy(host, addr + 1, hl);
    host[hl] = '\0';
    port_s = close + 2;
  } else {
    const char *colon = strrchr(addr, ':');
    if (!colon)
      return WR_EINVAL;
    size_t hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (strchr(host, ':'))
      return WR_EINVAL; /* an IPv6 literal needs brackets */
    port_s = colon + 1;
  }
  size_t pl = strlen(port_s);
  if (pl == 0 || pl > 5 || strspn(port_s, "0123456789") != pl)
    return WR_EINVAL;
  unsigned long port = strtoul(port_s, NULL, 10);
  if (port > 65535)
    return WR_EINVAL;
  memset(ss, 0, sizeof *ss);
  if (host[0] == '\0') {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    in->sin_port = htons((uint16_t)port);
    *sslen = sizeof *in;
    return 0;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
    return WR_EINVAL;
  int rc = WR_EINVAL;
  if (res->ai_addrlen <= sizeof *ss && (res->ai_family == AF_INET || res->ai_family == AF_INET6)) {
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (socklen_t)res->ai_addrlen;
    if (res->ai_family == AF_INET)
      ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
      ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    rc = 0;
  }
  freeaddrinfo(res);
  return rc;
}

/* Makes text safe for a JSON string: invalid UTF-8 bytes become '?'. Returns a malloc'd
 * copy, or NULL on ENOMEM. */
static char *utf8_sanitize(const char *s) {
  size_t n = strlen(s);
  char *o = malloc(n + 1);
  if (!o)
    return NULL;
  size_t i = 0;
  while (i < n) {
    size_t l = wr__utf8_seq_len((const unsigned char *)s + i, n - i);
    if (l == 0) {
      o[i] = '?';
      i++;
    } else {
      memcpy(o + i, s + i, l);
      i += l;
    }
  }
  o[n] = '\0';
  return o;
}

/* ---- responses --------------------------------------------------------------------- */

static bool token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool header_name_valid(const char *n) {
  if (!n || !*n || strlen(n) > 256)
    return false;
  for (; *n; n++)
    if (!token_char(*n))
      return false;
  return true;
}

static bool header_value_valid(const char *v) {
  if (!v || strlen(v) > 8192)
    return false;
  for (; *v; v++)
    if (*v == '\r' || *v == '\n')
      return false;
  return true;
}

static int add_header(wr_http_req *r, const char *name, const char *value) {
  hdr *h = calloc(1, sizeof *h);
  if (!h)
    return WR_ENOMEM;
  h->name = strdup(name);
  h->value = strdup(value);
  if (!h->name || !h->value) {
    free(h->name);
    free(h->value);
    free(h);
    return WR_ENOMEM;
  }
  *r->headers_tail = h;
  r->headers_tail = &h->next;
  return 0;
}

/* Records the one reply: takes `data` (malloc'd, freed by MHD with free()) or copies
 * `copy`. Returns WR_ESTATE if a reply exists already, WR_ENOMEM. */
static int set_reply(wr_http_req *r, unsigned status, const char *content_type, char *data,
                     const void *copy, size_t len) {
  if (r->resp) {
    free(data);
    return WR_ESTATE;
  }
  if (status < 100 || status > 599) {
    free(data);
    return WR_EINVAL;
  }
  struct MHD_Response *resp;
  if (data)
    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  else
    resp = MHD_create_response_from_buffer(len, (void *)(copy ? copy : ""), MHD_RESPMEM_MUST_COPY);
  if (!resp) {
    free(data);
    return WR_ENOMEM;
  }
  bool ok = true;
  if (content_type)
    ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
  if (ok && r->corr[0])
    ok = MHD_add_response_header(resp, "X-Correlation-Id", r->corr) == MHD_YES;
  for (hdr *h = r->headers; ok && h; h = h->next)
    ok = MHD_add_response_header(resp, h->name, h->value) == MHD_YES;
  if (!ok) {
    MHD_destroy_response(resp);
    return WR_ENOMEM;
  }
  r->resp = resp;
  r->status = status;
  return 0;
}

/* Serializes with jansson's sizing pass so the buffer comes from our malloc (MHD frees
 * it with free(), whatever allocator jansson was configured with). Steals body. */
static int reply_json_steal(wr_http_req *r, unsigned status, json_t *body) {
  if (!body)
    return WR_EINVAL;
  const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
  size_t n = json_dumpb(body, NULL, 0, flags);
  char *buf = n ? malloc(n) : NULL;
  if (!buf || json_dumpb(body, buf, n, flags) != n) {
    free(buf);
    json_decref(body);
    return WR_ENOMEM;
  }
  json_decref(body);
  return set_reply(r, status, "application/json", buf, NULL, n);
}

static int reply_error_v(wr_http_req *r, unsigned status, const char *code, const char *fmt,
                         va_list ap) WR_PRINTF(4, 0);

static int reply_error_v(wr_http_req *r, unsigned status, const char *code, const char *fmt,
                         va_list ap) {
  if (r->resp)
    return WR_ESTATE;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char *m = utf8_sanitize(msg);
  char *c = utf8_sanitize(code);
  json_t *body = (m && c) ? json_pack("{s:{s:s,s:s}}", "error", "code", c, "message", m) : NULL;
  free(m);
  free(c);
  if (!body)
    return WR_ENOMEM;
  return reply_json_steal(r, status, body);
}

static int reply_error(wr_http_req *r, unsigned status, const char *code, const char *fmt, ...)
    WR_PRINTF(4, 5);

static int reply_error(wr_http_req *r, unsigned status, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = reply_error_v(r, status, code, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- public reply API -------------------------------------------------------------- */

int wr_http_reply_header(wr_http_req *r, const char *name, const char *value) {
  if (!r || !header_name_valid(name) || !header_value_valid(value))
    return WR_EINVAL;
  if (r->resp)
    return WR_ESTATE;
  /* Framing and the layer's own headers are not the handler's to set. */
  static const char *reserved[] = {"Content-Type", "Content-Length", "Transfer-Encoding",
                                   "Connection", "X-Correlation-Id"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcasecmp(name, reserved[i]) == 0)
      return WR_EINVAL;
  return add_header(r, name, value);
}

int wr_http_reply_json(wr_http_req *r, unsigned status, json_t *body) {
  if (!r) {
    json_decref(body);
    return WR_EINVAL;
  }
  if (r->resp) {
    json_decref(body);
    return WR_ESTATE;
  }
  return reply_json_steal(r, status, body);
}

int wr_http_reply_error(wr_http_req *r, unsigned status, const char *code, const char *fmt, ...) {
  if (!r || !code || !*code || !fmt)
    return WR_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  int rc = reply_error_v(r, status, code, fmt, ap);
  va_end(ap);
  return rc;
}

int wr_http_reply_bytes(wr_http_req *r, unsigned status, const char *content_type, const void *data,
                        size_t len) {
  if (!r || (len > 0 && !data) || (content_type && !header_value_valid(content_type)))
    return WR_EINVAL;
  return set_reply(r, status, content_type, NULL, data, len);
}

int wr_http_reply_empty(wr_http_req *r, unsigned status) {
  if (!r)
    return WR_EINVAL;
  return set_reply(r, status, NULL, NULL, NULL, 0);
}

/* ---- request accessors ------------------------------------------------------------- */

const char *wr_http_req_method(const wr_http_req *r) {
  return r ? r->method : NULL;
}

const char *wr_http_req_path(const wr_http_req *r) {
  return r ? r->path : NULL;
}

const char *wr_http_req_param(const wr_http_req *r, const char *name) {
  if (!r || !r->route || !name)
    return NULL;
  for (size_t i = 0; i < r->route->nseg; i++)
    if (r->route->segs[i].param && strcmp(r->route->segs[i].text, name) == 0)
      return r->segs[i];
  return NULL;
}

const char *wr_http_req_query(const wr_http_req *r, const char *name) {
  if (!r || !name)
    return NULL;
  for (size_t i = 0; i < r->n_query; i++)
    if (strcmp(r->query[i].k, name) == 0)
      return r->query[i].v;
  return NULL;
}

void wr_http_req_query_foreach(const wr_http_req *r,
                               void (*fn)(const char *k, const char *v, void *u), void *u) {
  if (!r || !fn)
    return;
  for (size_t i = 0; i < r->n_query; i++)
    fn(r->query[i].k, r->query[i].v, u);
}

const char *wr_http_req_header(const wr_http_req *r, const char *name) {
  if (!r || !name || !r->conn)
    return NULL;
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *wr_http_req_body(const wr_http_req *r, size_t *len) {
  if (len)
    *len = (r && r->body_len) ? r->body_len : 0;
  return (r && r->body_len) ? r->body : NULL;
}

json_t *wr_http_req_json(const wr_http_req *r) {
  return r ? r->json : NULL;
}

const char *wr_http_req_correlation_id(const wr_http_req *r) {
  return r ? r->corr : NULL;
}

/* ---- request state ----------------------------------------------------------------- */

static wr_http_req *req_new(wr_http_server *s, const char *target) {
  wr_http_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->srv = s;
  r->target = strdup(target ? target : "");
  if (!r->target) {
    free(r);
    return NULL;
  }
  r->target_at = (uintptr_t)target;
  r->target_len = strlen(r->target);
  r->headers_tail = &r->headers;
  r->start_ns = wr_mono_ns();
  return r;
}

static void req_free(wr_http_req *r) {
  if (!r)
    return;
  free(r->target);
  free(r->path);
  for (size_t i = 0; i < r->nseg; i++)
    free(r->segs[i]);
  for (size_t i = 0; i < r->n_query; i++) {
    free((char *)r->query[i].k);
    free(r->query[i].v);
  }
  free(r->query);
  free(r->body);
  json_decref(r->json);
  for (hdr *h = r->headers; h;) {
    hdr *n = h->next;
    free(h->name);
    free(h->value);
    free(h);
    h = n;
  }
  if (r->resp)
    MHD_destroy_response(r->resp);
  free(r);
}

/* Splits and decodes the query string. Returns 0, WR_EINVAL or WR_ENOMEM. */
static int parse_query(wr_http_req *r, const char *q) {
  size_t cap = 0;
  while (*q) {
    const char *end = strchr(q, '&');
    size_t len = end ? (size_t)(end - q) : strlen(q);
    if (len > 0) {
      const char *eq = memchr(q, '=', len);
      size_t klen = eq ? (size_t)(eq - q) : len;
      char *k = NULL, *v = NULL;
      int rc = wr__http_pct_decode(q, klen, true, &k, NULL);
      if (rc == 0)
        rc = eq ? wr__http_pct_decode(eq + 1, len - klen - 1, true, &v, NULL)
                : ((v = strdup("")) ? 0 : WR_ENOMEM);
      if (rc == 0 && r->n_query == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        kv *nq = realloc(r->query, ncap * sizeof *nq);
        if (nq) {
          r->query = nq;
          cap = ncap;
        } else {
          rc = WR_ENOMEM;
        }
      }
      if (rc != 0) {
        free(k);
        free(v);
        return rc;
      }
      r->query[r->n_query].k = k;
      r->query[r->n_query].v = v;
      r->n_query++;
    }
    if (!end)
      break;
    q = end + 1;
  }
  return 0;
}

/* Splits the raw path into decoded segments. Returns 0, WR_EINVAL (bad encoding),
 * WR_ETOOBIG (more segments than any route can have) or WR_ENOMEM. */
static int split_path(wr_http_req *r) {
  const char *p = r->path + 1; /* after the leading '/' */
  if (*p == '\0')
    return 0; /* "/" has no segments */
  for (;;) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (r->nseg == MAX_SEGMENTS)
      return WR_ETOOBIG;
    int rc = wr__http_pct_decode(p, len, false, &r->segs[r->nseg], NULL);
    if (rc != 0)
      return rc;
    r->nseg++;
    if (!end)
      return 0;
    p = end + 1;
  }
}

static bool route_path_matches(const croute *cr, const wr_http_req *r) {
  if (cr->nseg != r->nseg)
    return false;
  for (size_t i = 0; i < cr->nseg; i++) {
    if (cr->segs[i].param ? r->segs[i][0] == '\0' : strcmp(cr->segs[i].text, r->segs[i]) != 0)
      return false;
  }
  return true;
}

/* True if a is more specific than b: at the first position where one has a literal and
 * the other a parameter, the literal wins. */
static bool more_specific(const croute *a, const croute *b) {
  for (size_t i = 0; i < a->nseg && i < b->nseg; i++)
    if (a->segs[i].param != b->segs[i].param)
      return !a->segs[i].param;
  return false;
}

static bool method_matches(const char *route_method, const char *method) {
  return strcmp(route_method, method) == 0 ||
         (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

/* Routing: sets r->route, or records a 404, or a 405 with Allow. */
static void route(wr_http_req *r) {
  const wr_http_server *s = r->srv;
  const croute *best = NULL;
  bool path_known = false;
  for (size_t i = 0; i < s->n_routes; i++) {
    const croute *cr = &s->routes[i];
    if (!route_path_matches(cr, r))
      continue;
    path_known = true;
    if (!method_matches(cr->r->method, r->method))
      continue;
    /* An explicit HEAD route beats the GET fallback at equal specificity. */
    if (!best || more_specific(cr, best) ||
        (!more_specific(best, cr) && strcmp(cr->r->method, r->method) == 0 &&
         strcmp(best->r->method, r->method) != 0))
      best = cr;
  }
  if (best) {
    r->route = best;
    return;
  }
  if (!path_known) {
    reply_error(r, 404, "not_found", "no route for %s", r->path);
    return;
  }
  /* Allow: every method of every route whose pattern matches this path (plus HEAD where
   * GET is allowed), each once. */
  char allow[512] = "";
  size_t used = 0;
  bool has_get = false, has_head = false;
  for (size_t i = 0; i < s->n_routes; i++) {
    const croute *cr = &s->routes[i];
    if (!route_path_matches(cr, r))
      continue;
    const char *m = cr->r->method;
    bool dup = false;
    for (size_t j = 0; j < i; j++)
      if (route_path_matches(&s->routes[j], r) && strcmp(s->routes[j].r->method, m) == 0)
        dup = true;
    if (dup)
      continue;
    has_get |= strcmp(m, "GET") == 0;
    has_head |= strcmp(m, "HEAD") == 0;
    int n = snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", m);
    if (n > 0 && (size_t)n < sizeof allow - used)
      used += (size_t)n;
  }
  if (has_get && !has_head) {
    int n = snprintf(allow + used, sizeof allow - used, "%sHEAD", used ? ", " : "");
    if (n > 0 && (size_t)n < sizeof allow - used)
      used += (size_t)n;
  }
  if (add_header(r, "Allow", allow) == 0)
    reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r->method,
                r->path, allow);
}

/* Authorization: Bearer <token>, compared in constant time. */
static void check_admin(wr_http_req *r) {
  const wr_http_server *s = r->srv;
  if (!s->token) {
    reply_error(r, 403, "forbidden", "admin routes are disabled: no admin token is configured");
    return;
  }
  const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
  const char *tok = NULL;
  size_t tlen = 0;
  if (h) {
    while (is_ows(*h))
      h++;
    if (strncasecmp(h, "Bearer", 6) == 0 && is_ows(h[6])) {
      tok = h + 6;
      while (is_ows(*tok))
        tok++;
      tlen = strlen(tok);
      while (tlen > 0 && is_ows(tok[tlen - 1]))
        tlen--;
    }
  }
  if (tok && tlen > 0 && wr_consttime_eq(tok, tlen, s->token, s->token_len))
    return;
  if (add_header(r, "WWW-Authenticate",
                 tok ? "Bearer realm=\"warren\", error=\"invalid_token\""
                     : "Bearer realm=\"warren\"") == 0)
    reply_error(r, 401, "unauthorized",
                tok ? "invalid admin token" : "this route requires Authorization: Bearer <token>");
}

/* MHD hands us the request target as a C string, so a NUL byte inside it ("GET
 * /customers/a\0b HTTP/1.1") silently shortens it to "/customers/a". MHD 0.9.75 keeps the
 * request line in one buffer and points `version` just past the target (target, one
 * separator, version): when `version` lies further than that, bytes were hidden behind
 * a NUL. This leans on MHD's layout: after an MHD upgrade, the NUL and routing cases of
 * test_http_server show at once whether it still holds. */
static bool nul_in_target(const wr_http_req *r, const char *version) {
  uintptr_t v = (uintptr_t)version;
  return r->target_at && version && v > r->target_at + r->target_len + 1 &&
         v - r->target_at <= MHD_MEMORY_LIMIT;
}

/* Raw spaces and control characters never belong in a request target (RFC 9112 3.2). */
static bool target_chars_valid(const char *t) {
  for (const unsigned char *p = (const unsigned char *)t; *p; p++)
    if (*p <= 0x20 || *p == 0x7f)
      return false;
  return true;
}

/* Everything decided from the request line and headers (first access-handler call). */
static void begin(wr_http_req *r, const char *version) {
  const wr_http_server *s = r->srv;
  const char *cid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Correlation-Id");
  if (wr__http_corr_valid(cid)) {
    snprintf(r->corr, sizeof r->corr, "%s", cid);
  } else if (wr_uuid_v7(r->corr) != 0) {
    r->corr[0] = '\0';
    reply_error(r, 500, "internal", "cannot generate a correlation id");
    return;
  }

  const char *q = strchr(r->target, '?');
  size_t plen = q ? (size_t)(q - r->target) : strlen(r->target);
  r->path = strndup(r->target, plen);
  if (!r->path) {
    reply_error(r, 500, "internal", "out of memory");
    return;
  }
  if (nul_in_target(r, version) || !target_chars_valid(r->target)) {
    reply_error(r, 400, "bad_request",
                "the request target holds a NUL byte, a space or a control character");
    return;
  }
  if (r->path[0] != '/') {
    reply_error(r, 400, "bad_request", "the request target must be an absolute path");
    return;
  }
  int rc = split_path(r);
  if (rc == WR_ETOOBIG) {
    reply_error(r, 404, "not_found", "no route for this path");
    return;
  }
  if (rc == 0 && q)
    rc = parse_query(r, q + 1);
  if (rc == WR_EINVAL) {
    reply_error(r, 400, "bad_request",
                "the path or query is not valid percent-encoded UTF-8 (or holds a NUL byte)");
    return;
  }
  if (rc != 0) {
    reply_error(r, 500, "internal", "out of memory");
    return;
  }

  route(r);
  if (r->resp)
    return;
  if (r->route->r->flags & WR_ROUTE_ADMIN) {
    check_admin(r);
    if (r->resp)
      return;
  }

  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
  if (cl) {
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno == ERANGE || n > s->max_body) {
      reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes", s->max_body);
      return;
    }
  }

  if (r->route->r->flags & WR_ROUTE_JSON_BODY) {
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (ct && !wr__http_content_type_is_json(ct)) {
      reply_error(r, 415, "unsupported_media_type", "Content-Type must be application/json");
      return;
    }
    if (!ct) {
      if (r->route->r->flags & WR_ROUTE_OPTIONAL_BODY) {
        r->ct_deferred = true;
      } else {
        reply_error(r, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
      }
    }
  }
}

static void append_body(wr_http_req *r, const char *data, size_t n) {
  const wr_http_server *s = r->srv;
  if (r->too_big || r->oom)
    return;
  if (n > s->max_body - r->body_len) {
    r->too_big = true;
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    return;
  }
  if (r->body_len + n > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 1024;
    while (cap < r->body_len + n)
      cap *= 2;
    if (cap > s->max_body)
      cap = s->max_body;
    char *nb = realloc(r->body, cap);
    if (!nb) {
      r->oom = true;
      return;
    }
    r->body = nb;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, n);
  r->body_len += n;
}

/* The JSON checks of WR_ROUTE_JSON_BODY. Records an error reply on failure. */
static void parse_json_body(wr_http_req *r) {
  unsigned flags = r->route->r->flags;
  if (r->body_len == 0) {
    if (!(flags & WR_ROUTE_OPTIONAL_BODY))
      reply_error(r, 400, "invalid_json", "a JSON object body is required");
    return;
  }
  if (r->ct_deferred) {
    reply_error(r, 415, "unsupported_media_type", "Content-Type must be application/json");
    return;
  }
  size_t bad = 0;
  if (!wr__utf8_valid(r->body, r->body_len, &bad)) {
    reply_error(r, 400, "invalid_json", "the body is not valid UTF-8 (byte %zu)", bad);
    return;
  }
  json_error_t e;
  /* Without JSON_ALLOW_NUL jansson refuses \u0000 in strings; a raw NUL byte is a
   * syntax error. Nesting depth is bounded by jansson (2048). */
  json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
  if (!j) {
    reply_error(r, 400, "invalid_json", "line %d, column %d: %s", e.line, e.column, e.text);
    return;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    reply_error(r, 400, "invalid_json", "the body must be a JSON object");
    return;
  }
  r->json = j;
}

/* The last access-handler call: body complete. */
static void finish(wr_http_req *r) {
  const wr_http_server *s = r->srv;
  if (r->late) {
    reply_error(r, 503, "shutting_down", "the service is stopping: try again");
    return;
  }
  if (r->too_big) {
    reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes", s->max_body);
    return;
  }
  if (r->oom) {
    reply_error(r, 500, "internal", "out of memory");
    return;
  }
  if (r->route->r->flags & WR_ROUTE_JSON_BODY) {
    parse_json_body(r);
    if (r->resp)
      return;
  }
  r->route->r->fn(r, s->user);
  if (!r->resp) {
    wr_log_error(r->corr, "http: handler for %s %s returned without replying: answered 500",
                 r->route->r->method, r->route->r->pattern);
    reply_error(r, 500, "internal", "the handler did not produce a response");
  }
}

static enum MHD_Result queue(wr_http_req *r) {
  if (!r->resp)
    return MHD_NO; /* not even a 500 could be built (out of memory): drop the connection */
  /* while stopping, keep-alive clients are told to go: no new request on this connection */
  if (__atomic_load_n(&r->srv->stopping, __ATOMIC_ACQUIRE))
    MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result q = MHD_queue_response(r->conn, r->status, r->resp);
  MHD_destroy_response(r->resp);
  r->resp = NULL;
  r->queued = q == MHD_YES;
  return q;
}

/* ---- MHD callbacks ----------------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  (void)c;
  wr_http_server *s = cls;
  wr_http_req *r = req_new(s, uri);
  if (r) {
    /* counted first, then the stop checked (the stop does the reverse, both
     * sequentially consistent): either the stop waits for this request, or this
     * request sees the stop, is answered 503 and does not hold the drain up */
    __atomic_add_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
    r->late = __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST) != 0;
    if (r->late)
      __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_SEQ_CST);
  }
  return r;
}

/* Identity: keep the target raw, we decode it ourselves (see the top of the file). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls;
  (void)c;
  return strlen(s);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **cc) {
  wr_http_server *s = cls;
  wr_http_req *r = *cc;
  if (!r) { /* the URI callback could not allocate */
    r = req_new(s, url);
    if (!r)
      return MHD_NO;
    *cc = r;
  }
  if (r->queued) { /* defensive: MHD does not call again once a reply is queued */
    *upload_size = 0;
    return MHD_YES;
  }
  if (!r->started) {
    r->started = true;
    r->conn = c;
    r->method = method;
    begin(r, version);
    return r->resp ? queue(r) : MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (wr_mono_ns() - r->start_ns > s->request_timeout_ns) {
      wr_log_debug(r->corr,
                   "http: %s %s: body still arriving after the request timeout, "
                   "connection closed",
                   r->method, r->path);
      return MHD_NO;
    }
    append_body(r, upload_data, n);
    return MHD_YES;
  }
  finish(r);
  return queue(r);
}

static const char *method_label(const char *m) {
  static const char *known[] = {"GET",    "HEAD",    "POST",  "PUT",    "PATCH",
                                "DELETE", "OPTIONS", "TRACE", "CONNECT"};
  for (size_t i = 0; m && i < sizeof known / sizeof known[0]; i++)
    if (strcmp(m, known[i]) == 0)
      return known[i];
  return "other"; /* bounded label cardinality whatever clients send */
}

static void on_completed(void *cls, struct MHD_Connection *c, void **cc,
                         enum MHD_RequestTerminationCode toe) {
  (void)c;
  (void)toe;
  wr_http_server *s = cls;
  wr_http_req *r = *cc;
  *cc = NULL;
  if (!r)
    return;
  if (!r->late)
    __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
  if (r->queued) {
    double secs = (double)(wr_mono_ns() - r->start_ns) / 1e9;
    const char *m = method_label(r->method);
    if (s->metrics) {
      char route_esc[256], labels[512];
      wr_metrics_label_escape(r->route ? r->route->r->pattern : "unmatched", route_esc,
                              sizeof route_esc);
      snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%u\"", route_esc, m,
               r->status);
      wr_counter_add(wr_metrics_counter(s->metrics, REQUESTS_NAME, REQUESTS_HELP, labels), 1);
      snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"", route_esc, m);
      wr_histogram_observe(wr_metrics_histogram(s->metrics, LATENCY_NAME, LATENCY_HELP, labels,
                                                wr_metrics_latency_buckets,
                                                wr_metrics_latency_buckets_n),
                           secs);
    }
    wr_log_debug(r->corr, "http: %s %s -> %u (%.1f ms)", m, r->path ? r->path : "?", r->status,
                 secs * 1e3);
  }
  req_free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) WR_PRINTF(2, 0);

/* MHD's own messages (refused connections, protocol errors) are per-client noise under
 * attack: debug level only. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  wr_log_debug(NULL, "http: libmicrohttpd: %s", buf);
}

/* ---- server ------------------------------------------------------------------------ */

static void routes_free(croute *routes, size_t n) {
  for (size_t i = 0; routes && i < n; i++)
    for (size_t j = 0; j < routes[i].nseg; j++)
      free(routes[i].segs[j].text);
  free(routes);
}

static bool param_name_valid(const char *s, size_t n) {
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return false;
  return true;
}

static int compile_route(const wr_http_route *rt, croute *out, wr_err *err) {
  out->r = rt;
  out->nseg = 0;
  if (!rt->method || !header_name_valid(rt->method) || !rt->fn || !rt->pattern ||
      rt->pattern[0] != '/')
    return wr_err_set(err, WR_EINVAL,
                      "http: route %s %s: needs a method, a handler and a "
                      "pattern starting with '/'",
                      rt->method ? rt->method : "(null)", rt->pattern ? rt->pattern : "(null)");
  const char *p = rt->pattern + 1;
  if (*p == '\0')
    return 0;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (out->nseg == MAX_SEGMENTS)
      return wr_err_set(err, WR_EINVAL, "http: pattern %s: more than %d segments", rt->pattern,
                        MAX_SEGMENTS);
    seg *sg = &out->segs[out->nseg];
    if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
      if (!param_name_valid(p + 1, len - 2))
        return wr_err_set(err, WR_EINVAL, "http: pattern %s: bad parameter name", rt->pattern);
      for (size_t i = 0; i < out->nseg; i++)
        if (out->segs[i].param && strlen(out->segs[i].text) == len - 2 &&
            memcmp(out->segs[i].text, p + 1, len - 2) == 0)
          return wr_err_set(err, WR_EINVAL, "http: pattern %s: parameter used twice", rt->pattern);
      sg->param = true;
      sg->text = strndup(p + 1, len - 2);
    } else {
      if (len == 0 || memchr(p, '{', len) || memchr(p, '}', len) || memchr(p, '%', len) ||
          memchr(p, '?', len))
        return wr_err_set(err, WR_EINVAL,
                          "http: pattern %s: empty segment or stray '{', '}', "
                          "'%%' or '?'",
                          rt->pattern);
      sg->param = false;
      sg->text = strndup(p, len);
    }
    if (!sg->text)
      return wr_err_set(err, WR_ENOMEM, "http: out of memory");
    out->nseg++;
    if (!end)
      return 0;
    p = end + 1;
  }
}

static bool same_pattern(const croute *a, const croute *b) {
  if (a->nseg != b->nseg)
    return false;
  for (size_t i = 0; i < a->nseg; i++)
    if (a->segs[i].param != b->segs[i].param ||
        (!a->segs[i].param && strcmp(a->segs[i].text, b->segs[i].text) != 0))
      return false;
  return true;
}

/* Names the reason a listen address cannot be used, by trying it ourselves (MHD only
 * says "NULL"). */
static void diagnose_bind(const struct sockaddr_storage *ss, socklen_t sl, const char *addr,
                          wr_err *err) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, sl) != 0 || listen(fd, 1) != 0)
      e = errno;
    close(fd);
  }
  if (e)
    wr_err_set(err, WR_EIO, "http: cannot listen on %s: %s", addr, strerror(e));
  else
    wr_err_set(err, WR_EIO, "http: cannot start the server on %s (libmicrohttpd refused)", addr);
}

int wr_http_server_start(const wr_http_opts *opts, wr_http_server **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!opts || !out || (opts->n_routes > 0 && !opts->routes))
    return wr_err_set(err, WR_EINVAL, "http: options, routes and out are required");
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  if (wr__http_parse_addr(opts->addr, &ss, &sl) != 0)
    return wr_err_set(err, WR_EINVAL,
                      "http: bad listen address \"%.100s\" (want host:port, :port or [v6]:port)",
                      opts->addr ? opts->addr : "(null)");
  wr_http_opts defaults = WR_HTTP_OPTS_INIT;
  unsigned threads = opts->threads ? opts->threads : defaults.threads;
  unsigned timeout_s =
      opts->connection_timeout_s ? opts->connection_timeout_s : defaults.connection_timeout_s;
  unsigned request_s =
      opts->request_timeout_s ? opts->request_timeout_s : defaults.request_timeout_s;
  unsigned max_conn = opts->max_connections ? opts->max_connections : defaults.max_connections;
  if (threads > 256 || max_conn < threads)
    return wr_err_set(err, WR_EINVAL,
                      "http: threads must be 1..256 and max_connections at "
                      "least threads");

  wr_http_server *s = calloc(1, sizeof *s);
  if (!s)
    return wr_err_set(err, WR_ENOMEM, "http: out of memory");
  s->user = opts->user;
  s->max_body = opts->max_body ? opts->max_body : defaults.max_body;
  s->request_timeout_ns = (int64_t)request_s * 1000000000;
  s->metrics = opts->metrics;
  if (opts->admin_token && opts->admin_token[0]) {
    s->token = strdup(opts->admin_token);
    s->token_len = strlen(opts->admin_token);
    if (!s->token) {
      free(s);
      return wr_err_set(err, WR_ENOMEM, "http: out of memory");
    }
  }
  s->routes = calloc(opts->n_routes ? opts->n_routes : 1, sizeof *s->routes);
  if (!s->routes) {
    free(s->token);
    free(s);
    return wr_err_set(err, WR_ENOMEM, "http: out of memory");
  }
  int rc = 0;
  for (size_t i = 0; i < opts->n_routes && rc == 0; i++) {
    rc = compile_route(&opts->routes[i], &s->routes[i], err);
    s->n_routes = i + 1;
    for (size_t j = 0; j < i && rc == 0; j++)
      if (same_pattern(&s->routes[i], &s->routes[j]) &&
          strcmp(opts->routes[i].method, opts->routes[j].method) == 0)
        rc = wr_err_set(err, WR_EINVAL, "http: route %s %s is declared twice",
                        opts->routes[i].method, opts->routes[i].pattern);
  }
  if (rc != 0) {
    routes_free(s->routes, s->n_routes);
    free(s->token);
    free(s);
    return rc;
  }

  /* ITC: wakes the internal threads for MHD_stop_daemon */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  struct MHD_OptionItem pool[] = {
      {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
      {MHD_OPTION_END, 0, NULL}};
  s->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_conn,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)opts->per_ip_connections,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEMORY_LIMIT, MHD_OPTION_LISTEN_BACKLOG_SIZE,
      (unsigned int)511, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_UNESCAPE_CALLBACK,
      no_unescape, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_ARRAY, pool,
      MHD_OPTION_END);
  if (!s->d) {
    diagnose_bind(&ss, sl, opts->addr, err);
    routes_free(s->routes, s->n_routes);
    free(s->token);
    free(s);
    return WR_EIO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : 0;
  *out = s;
  return 0;
}

/* Graceful: requests already received or being received are answered (their responses
 * say Connection: close), requests begun after this point are answered 503
 * shutting_down without running their handler, and only then does MHD_stop_daemon
 * close what is left (idle keep-alive connections). MHD_stop_daemon alone would close
 * connections whose handler has finished but whose answer is not sent yet. The wait
 * is bounded by the request timeout.
 *
 * The listening socket stays open until MHD_stop_daemon: MHD_quiesce_daemon, which
 * would close it first, races with the epoll worker threads of libmicrohttpd 0.9.75
 * (both remove the listening socket from a worker's epoll set; the loser's
 * epoll_ctl fails with ENOENT and MHD aborts the process: "Failed to remove listen FD
 * from epoll set", seen in CI in unit.test_http_limits). */
void wr_http_server_stop(wr_http_server *s) {
  if (!s)
    return;
  __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
  int64_t end = wr_mono_ns() + s->request_timeout_ns;
  while (__atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) > 0 && wr_mono_ns() < end)
    usleep(10000);
  MHD_stop_daemon(s->d);
  routes_free(s->routes, s->n_routes);
  free(s->token);
  free(s);
}

unsigned wr_http_server_port(const wr_http_server *s) {
  return s ? s->port : 0;
}
