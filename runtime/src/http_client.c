/* http_client.c: a blocking HTTP/1.1 client, one request per connection.
 *
 * Every wait (connect, each write, each read) polls with what is left of one deadline
 * computed at the start, so a request never takes longer than its timeout whatever the
 * peer does: a server that accepts and stays silent, trickles bytes, or announces a
 * body it never sends all end in WR_ETIMEDOUT. Name resolution (getaddrinfo) is the one
 * step outside the deadline; services address their peers by host names that resolve
 * locally (/etc/hosts, container DNS).
 *
 * Framing: we send Content-Length (never chunked) and "Connection: close"; we read
 * Content-Length, chunked (trailers skipped), or until EOF. Interim 1xx responses are
 * skipped. A server that answers early and closes while we are still sending (413 on an
 * announced Content-Length) is handled like curl does: stop writing, read the answer.
 * The response body is bounded by max_response and the header block by 64 KiB. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <warren/http_client.h>
#include <warren/util.h>

#include "http_internal.h"

#define MAX_HEADER_BLOCK     (64 * 1024)
#define DEFAULT_TIMEOUT_MS   30000
#define DEFAULT_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

/* ---- URL ------------------------------------------------------------------------- */

int wr__http_parse_url(const char *url, char *host, size_t hostsz, unsigned *port,
                       const char **target) {
  static const char scheme[] = "http://";
  if (!url || strncasecmp(url, scheme, sizeof scheme - 1) != 0)
    return WR_EURL;
  for (const unsigned char *c = (const unsigned char *)url; *c; c++)
    if (*c <= 0x20 || *c == 0x7f)
      return WR_EURL; /* spaces and control characters would break the request line */
  const char *a = url + sizeof scheme - 1;
  size_t alen = strcspn(a, "/?#");
  const char *rest = a + alen;
  if (alen == 0 || memchr(a, '@', alen))
    return WR_EURL; /* no host, or userinfo (credentials do not belong in our URLs) */
  const char *hs = a, *pe = NULL;
  size_t hl;
  if (a[0] == '[') {
    const char *close = memchr(a, ']', alen);
    if (!close || close == a + 1)
      return WR_EURL;
    hs = a + 1;
    hl = (size_t)(close - hs);
    if (close + 1 < a + alen) {
      if (close[1] != ':')
        return WR_EURL;
      pe = close + 2;
    }
  } else {
    const char *colon = memchr(a, ':', alen);
    hl = colon ? (size_t)(colon - a) : alen;
    if (colon)
      pe = colon + 1;
    if (hl == 0)
      return WR_EURL;
  }
  if (hl + 1 > hostsz)
    return WR_EURL;
  unsigned p = 80;
  if (pe) {
    size_t pl = (size_t)(a + alen - pe);
    if (pl == 0 || pl > 5)
      return WR_EURL;
    p = 0;
    for (size_t i = 0; i < pl; i++) {
      if (pe[i] < '0' || pe[i] > '9')
        return WR_EURL;
      p = p * 10 + (unsigned)(pe[i] - '0');
    }
    if (p == 0 || p > 65535)
      return WR_EURL;
  }
  if (*rest == '#')
    return WR_EURL; /* a fragment with no path: nothing sensible to send */
  memcpy(host, hs, hl);
  host[hl] = '\0';
  *port = p;
  *target = (*rest == '\0' || *rest == '?') ? NULL : rest;
  return 0;
}

/* ---- growing buffer ---------------------------------------------------------------- */

typedef struct dbuf {
  char *p;
  size_t len, cap;
} dbuf;

static int db_reserve(dbuf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1)
    return WR_ENOMEM;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + extra + 1)
    cap = cap > SIZE_MAX / 2 ? b->len + extra + 1 : cap * 2;
  char *p = realloc(b->p, cap);
  if (!p)
    return WR_ENOMEM;
  b->p = p;
  b->cap = cap;
  b->p[b->len] = '\0'; /* terminated even when nothing is appended (Content-Length: 0) */
  return 0;
}

static int db_put(dbuf *b, const void *s, size_t n) {
  int rc = db_reserve(b, n);
  if (rc)
    return rc;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static int db_str(dbuf *b, const char *s) {
  return db_put(b, s, strlen(s));
}

/* ---- connection with a deadline ---------------------------------------------------- */

typedef struct conn {
  int fd;
  int64_t deadline; /* wr_mono_ns */
  char buf[16384];
  size_t pos, len; /* unread bytes are buf[pos..len) */
  bool eof;
  wr_err *err;
} conn;

static int remaining_ms(const conn *c) {
  int64_t left = c->deadline - wr_mono_ns();
  if (left <= 0)
    return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms > 1000000 ? 1000000 : (int)ms;
}

/* Waits for `events` on the socket until the deadline. */
static int wait_fd(conn *c, short events, const char *what) {
  for (;;) {
    int ms = remaining_ms(c);
    if (ms == 0)
      return wr_err_set(c->err, WR_ETIMEDOUT, "http: timed out %s", what);
    struct pollfd p = {.fd = c->fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n > 0)
      return 0; /* ready, or an error the next syscall reports */
    if (n < 0 && errno != EINTR)
      return wr_err_set(c->err, WR_EIO, "http: poll: %s", strerror(errno));
  }
}

/* Reads more bytes into the buffer (compacting it first). Sets eof on a clean close. */
static int fill(conn *c) {
  if (c->pos > 0) {
    memmove(c->buf, c->buf + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = 0;
  }
  if (c->len == sizeof c->buf)
    return 0;
  for (;;) {
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n > 0) {
      c->len += (size_t)n;
      return 0;
    }
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return wr_err_set(c->err, WR_EIO, "http: read: %s", strerror(errno));
    int rc = wait_fd(c, POLLIN, "waiting for the response");
    if (rc)
      return rc;
  }
}

/* Reads one line ending in LF (CR LF or bare LF) of at most max bytes into line
 * (without the line end). Returns 0, WR_EIO on EOF first, WR_ETOOBIG/WR_EHTTP. */
static int read_line(conn *c, dbuf *line, size_t max, int too_long_code) {
  line->len = 0;
  if (line->p)
    line->p[0] = '\0';
  for (;;) {
    char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
    size_t take = nl ? (size_t)(nl - (c->buf + c->pos)) : c->len - c->pos;
    if (line->len + take > max)
      return wr_err_set(c->err, too_long_code, "http: response line or header block too long");
    int rc = db_put(line, c->buf + c->pos, take);
    if (rc)
      return wr_err_set(c->err, rc, "http: out of memory");
    c->pos += take;
    if (nl) {
      c->pos++;
      if (line->len > 0 && line->p[line->len - 1] == '\r')
        line->p[--line->len] = '\0';
      if (!line->p)
        return db_put(line, "", 0);
      return 0;
    }
    if (c->eof)
      return wr_err_set(c->err, WR_EIO, "http: connection closed in the middle of the response");
    rc = fill(c);
    if (rc)
      return rc;
  }
}

/* Appends exactly n body bytes to body (n already checked against the cap). */
static int read_exact(conn *c, dbuf *body, size_t n) {
  int rc = db_reserve(body, n);
  if (rc)
    return wr_err_set(c->err, rc, "http: out of memory");
  while (n > 0) {
    if (c->pos == c->len) {
      if (c->eof)
        return wr_err_set(c->err, WR_EIO, "http: connection closed before the end of the body");
      rc = fill(c);
      if (rc)
        return rc;
      continue;
    }
    size_t take = c->len - c->pos < n ? c->len - c->pos : n;
    db_put(body, c->buf + c->pos, take);
    c->pos += take;
    n -= take;
  }
  return 0;
}

static int write_all(conn *c, const char *p, size_t n, bool *peer_closed) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(c, POLLOUT, "sending the request");
      if (rc)
        return rc;
      continue;
    }
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      *peer_closed = true; /* the server may have answered early: read what it said */
      return 0;
    }
    return wr_err_set(c->err, WR_EIO, "http: write: %s", strerror(errno));
  }
  return 0;
}

static int connect_one(conn *c, const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0)
    return wr_err_set(c->err, WR_EIO, "http: socket: %s", strerror(errno));
  c->fd = fd;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return 0;
  if (errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    c->fd = -1;
    return wr_err_set(c->err, WR_EIO, "http: connect: %s", strerror(e));
  }
  int rc = wait_fd(c, POLLOUT, "connecting");
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
    return 0;
  close(fd);
  c->fd = -1;
  if (rc)
    return rc;
  return wr_err_set(c->err, WR_EIO, "http: connect: %s", strerror(soerr ? soerr : errno));
}

/* ---- response parsing ------------------------------------------------------------- */

/* Finds header `name` in a raw block (status line first, then "Name: value" lines
 * separated by CR LF or LF). Returns a pointer to the value (OWS trimmed at the start)
 * and its length without trailing OWS, or NULL. */
static const char *find_header(const char *block, const char *name, size_t *vlen) {
  if (!block || !name)
    return NULL;
  size_t nlen = strlen(name);
  const char *line = strchr(block, '\n'); /* skip the status line */
  while (line) {
    line++;
    const char *end = strchr(line, '\n');
    size_t llen = end ? (size_t)(end - line) : strlen(line);
    if (llen > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      const char *ve = line + llen;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
        ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    line = end;
  }
  return NULL;
}

bool wr_http_response_header(const wr_http_response *res, const char *name, char *out,
                             size_t outsz) {
  if (!res || !out || outsz == 0)
    return false;
  out[0] = '\0';
  size_t vlen = 0;
  const char *v = find_header(res->headers, name, &vlen);
  if (!v || vlen + 1 > outsz)
    return false;
  memcpy(out, v, vlen);
  out[vlen] = '\0';
  return true;
}

/* True if the comma-separated header value list contains token (case-insensitive). */
static bool list_has(const char *v, size_t vlen, const char *token) {
  size_t tl = strlen(token);
  size_t i = 0;
  while (i < vlen) {
    while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t s = i;
    while (i < vlen && v[i] != ',')
      i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
      e--;
    if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
      return true;
  }
  return false;
}

/* Reads the status line and headers of one response into *headers (raw block without
 * the final empty line). */
static int read_head(conn *c, dbuf *headers, int *status) {
  dbuf line = {0};
  headers->len = 0;
  int rc = read_line(c, &line, MAX_HEADER_BLOCK, WR_ETOOBIG);
  if (rc == WR_EIO && headers->len == 0 && line.len == 0)
    rc = wr_err_set(c->err, WR_EIO, "http: connection closed without a response");
  if (rc)
    goto out;
  /* HTTP/1.x SSS[ reason] */
  const char *l = line.p;
  if (line.len < 12 || strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
      l[8] != ' ' || l[9] < '1' || l[9] > '9' || l[10] < '0' || l[10] > '9' || l[11] < '0' ||
      l[11] > '9' || (line.len > 12 && l[12] != ' ')) {
    rc = wr_err_set(c->err, WR_EHTTP, "http: malformed status line");
    goto out;
  }
  *status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
  rc = db_put(headers, line.p, line.len);
  while (rc == 0) {
    /* the block's budget: each stored line also costs its CR LF separator */
    size_t left = headers->len + 2 >= MAX_HEADER_BLOCK ? 0 : MAX_HEADER_BLOCK - headers->len - 2;
    rc = read_line(c, &line, left, WR_ETOOBIG);
    if (rc || line.len == 0)
      break;
    if (memchr(line.p, '\0', line.len) || !memchr(line.p, ':', line.len) || line.p[0] == ' ' ||
        line.p[0] == '\t' || line.p[0] == ':') {
      rc = wr_err_set(c->err, WR_EHTTP, "http: malformed response header");
      break;
    }
    rc = db_put(headers, "\r\n", 2);
    if (rc == 0)
      rc = db_put(headers, line.p, line.len);
    if (rc)
      rc = wr_err_set(c->err, rc, "http: out of memory");
  }
out:
  free(line.p);
  return rc;
}

static int parse_size(const char *v, size_t vlen, int base, uint64_t *out) {
  if (vlen == 0 || vlen > 16)
    return -1;
  uint64_t n = 0;
  for (size_t i = 0; i < vlen; i++) {
    int d;
    char ch = v[i];
    if (ch >= '0' && ch <= '9')
      d = ch - '0';
    else if (base == 16 && ch >= 'a' && ch <= 'f')
      d = ch - 'a' + 10;
    else if (base == 16 && ch >= 'A' && ch <= 'F')
      d = ch - 'A' + 10;
    else
      return -1;
    n = n * (uint64_t)base + (uint64_t)d;
  }
  *out = n;
  return 0;
}

static int read_chunked(conn *c, dbuf *body, size_t max) {
  dbuf line = {0};
  int rc;
  for (;;) {
    rc = read_line(c, &line, 1024, WR_EHTTP);
    if (rc)
      break;
    size_t hl = strcspn(line.p, "; \t");
    uint64_t n;
    if (parse_size(line.p, hl, 16, &n) != 0) {
      rc = wr_err_set(c->err, WR_EHTTP, "http: malformed chunk size");
      break;
    }
    if (n == 0) { /* last chunk: skip trailers up to the empty line */
      do
        rc = read_line(c, &line, MAX_HEADER_BLOCK, WR_EHTTP);
      while (rc == 0 && line.len > 0);
      break;
    }
    if (n > max - body->len) {
      rc = wr_err_set(c->err, WR_ETOOBIG, "http: response body larger than %zu bytes", max);
      break;
    }
    rc = read_exact(c, body, (size_t)n);
    if (rc == 0)
      rc = read_line(c, &line, 1, WR_EHTTP); /* the CRLF after the data */
    if (rc == 0 && line.len != 0)
      rc = wr_err_set(c->err, WR_EHTTP, "http: chunk data longer than its size");
    if (rc)
      break;
  }
  free(line.p);
  return rc;
}

static int read_to_eof(conn *c, dbuf *body, size_t max) {
  for (;;) {
    size_t avail = c->len - c->pos;
    if (avail > max - body->len)
      return wr_err_set(c->err, WR_ETOOBIG, "http: response body larger than %zu bytes", max);
    if (db_put(body, c->buf + c->pos, avail) != 0)
      return wr_err_set(c->err, WR_ENOMEM, "http: out of memory");
    c->pos = c->len;
    if (c->eof)
      return 0;
    int rc = fill(c);
    if (rc)
      return rc;
  }
}

static int read_response(conn *c, bool head_request, size_t max, wr_http_response *res) {
  dbuf headers = {0}, body = {0};
  int status = 0, rc;
  /* Interim responses (100 Continue, 103 Early Hints) precede the real one. */
  do
    rc = read_head(c, &headers, &status);
  while (rc == 0 && status >= 100 && status < 200 && status != 101);
  if (rc)
    goto fail;
  size_t vlen;
  const char *te = find_header(headers.p, "Transfer-Encoding", &vlen);
  size_t cl_len;
  const char *cl = find_header(headers.p, "Content-Length", &cl_len);
  if (head_request || status == 204 || status == 304 || status == 101) {
    rc = 0;
  } else if (te) {
    if (!list_has(te, vlen, "chunked")) {
      rc = wr_err_set(c->err, WR_EHTTP, "http: unsupported Transfer-Encoding");
      goto fail;
    }
    rc = read_chunked(c, &body, max);
  } else if (cl) {
    uint64_t n;
    if (parse_size(cl, cl_len, 10, &n) != 0) {
      rc = wr_err_set(c->err, WR_EHTTP, "http: malformed Content-Length");
      goto fail;
    }
    /* A repeated Content-Length must agree (RFC 9112 6.3). */
    for (const char *p = cl + cl_len; (p = find_header(p, "Content-Length", &vlen)); p += vlen) {
      uint64_t m;
      if (parse_size(p, vlen, 10, &m) != 0 || m != n) {
        rc = wr_err_set(c->err, WR_EHTTP, "http: conflicting Content-Length headers");
        goto fail;
      }
    }
    if (n > max) {
      rc = wr_err_set(c->err, WR_ETOOBIG, "http: response body of %llu bytes exceeds %zu",
                      (unsigned long long)n, max);
      goto fail;
    }
    rc = read_exact(c, &body, (size_t)n);
  } else {
    rc = read_to_eof(c, &body, max);
  }
  if (rc)
    goto fail;
  if (!body.p && db_put(&body, "", 0) != 0) {
    rc = wr_err_set(c->err, WR_ENOMEM, "http: out of memory");
    goto fail;
  }
  res->status = status;
  res->body = body.p;
  res->len = body.len;
  res->headers = headers.p;
  return 0;
fail:
  free(headers.p);
  free(body.p);
  return rc;
}

/* ---- request --------------------------------------------------------------------- */

static bool header_line_valid(const char *h) {
  const char *colon = strchr(h, ':');
  if (!colon || colon == h)
    return false;
  for (const char *p = h; p < colon; p++)
    if (*p <= 0x20 || *p == 0x7f)
      return false;
  for (const char *p = h; *p; p++)
    if (*p == '\r' || *p == '\n')
      return false;
  return true;
}

static bool header_named(const char *h, const char *name) {
  size_t n = strlen(name);
  return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static bool method_valid(const char *m) {
  if (!m || !*m || strlen(m) > 32)
    return false;
  for (; *m; m++)
    if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') || *m == '-' || *m == '_'))
      return false;
  return true;
}

int wr_http_do(const wr_http_request *req, wr_http_response *res, wr_err *err) {
  if (res)
    memset(res, 0, sizeof *res);
  if (!req || !res || !method_valid(req->method) || (req->body_len > 0 && !req->body))
    return wr_err_set(err, WR_EINVAL, "http: request, response, method and body are required");
  char host[256];
  unsigned port;
  const char *target;
  if (wr__http_parse_url(req->url, host, sizeof host, &port, &target) != 0)
    return wr_err_set(err, WR_EURL, "http: invalid URL (only http://host[:port]/path)");
  bool has_host = false;
  for (const char *const *h = req->headers; h && *h; h++) {
    if (!header_line_valid(*h))
      return wr_err_set(err, WR_EINVAL, "http: malformed request header line");
    if (header_named(*h, "Content-Length") || header_named(*h, "Transfer-Encoding") ||
        header_named(*h, "Connection"))
      return wr_err_set(err, WR_EINVAL,
                        "http: Content-Length, Transfer-Encoding and "
                        "Connection are set by the client");
    has_host |= header_named(*h, "Host");
  }

  /* The request head. The target keeps the URL's query; a bare "?q" gets "/" first. */
  dbuf out = {0};
  char line[400];
  const char *q = strchr(req->url + 7, '?');
  int rc = db_str(&out, req->method);
  rc |= db_str(&out, " ");
  if (target) {
    size_t tl = strcspn(target, "#");
    rc |= db_put(&out, target, tl);
  } else {
    rc |= db_str(&out, "/");
    if (q)
      rc |= db_put(&out, q, strcspn(q, "#"));
  }
  rc |= db_str(&out, " HTTP/1.1\r\n");
  if (!has_host) {
    bool v6 = strchr(host, ':') != NULL;
    if (port == 80)
      snprintf(line, sizeof line, "Host: %s%s%s\r\n", v6 ? "[" : "", host, v6 ? "]" : "");
    else
      snprintf(line, sizeof line, "Host: %s%s%s:%u\r\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
    rc |= db_str(&out, line);
  }
  rc |= db_str(&out, "Connection: close\r\nUser-Agent: warren/" WR_VERSION_STRING "\r\n");
  for (const char *const *h = req->headers; h && *h; h++) {
    rc |= db_str(&out, *h);
    rc |= db_str(&out, "\r\n");
  }
  bool send_len = req->body_len > 0 || strcmp(req->method, "POST") == 0 ||
                  strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
  if (send_len) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", req->body_len);
    rc |= db_str(&out, line);
  }
  rc |= db_str(&out, "\r\n");
  if (rc) {
    free(out.p);
    return wr_err_set(err, WR_ENOMEM, "http: out of memory");
  }

  conn c = {.fd = -1, .err = err};
  c.deadline =
      wr_mono_ns() + (int64_t)(req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS) * 1000000;
  char port_s[8];
  snprintf(port_s, sizeof port_s, "%u", port);
  struct addrinfo hints = {0}, *ais = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int gai = getaddrinfo(host, port_s, &hints, &ais);
  if (gai != 0) {
    free(out.p);
    return wr_err_set(err, WR_EIO, "http: cannot resolve %s: %s", host, gai_strerror(gai));
  }
  rc = WR_EIO;
  for (const struct addrinfo *ai = ais; ai; ai = ai->ai_next) {
    rc = connect_one(&c, ai);
    if (rc == 0 || rc == WR_ETIMEDOUT)
      break;
  }
  freeaddrinfo(ais);
  if (rc == 0) {
    bool peer_closed = false;
    rc = write_all(&c, out.p, out.len, &peer_closed);
    if (rc == 0 && !peer_closed && req->body_len > 0)
      rc = write_all(&c, req->body, req->body_len, &peer_closed);
    if (rc == 0) {
      size_t max = req->max_response ? req->max_response : DEFAULT_MAX_RESPONSE;
      rc = read_response(&c, strcmp(req->method, "HEAD") == 0, max, res);
      if (rc == WR_EIO && peer_closed)
        rc = wr_err_set(err, WR_EIO,
                        "http: the server closed the connection while the "
                        "request was being sent");
    }
  }
  if (c.fd >= 0)
    close(c.fd);
  free(out.p);
  if (rc == 0)
    wr_err_clear(err);
  return rc;
}

void wr_http_response_free(wr_http_response *res) {
  if (!res)
    return;
  free(res->body);
  free(res->headers);
  memset(res, 0, sizeof *res);
}

int wr_http_get_json(const char *url, const char *const *headers, unsigned timeout_ms, int *status,
                     json_t **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!status || !out)
    return wr_err_set(err, WR_EINVAL, "http: status and out are required");
  /* Accept: application/json unless the caller says otherwise. */
  const char *hs[34];
  size_t n = 0;
  bool has_accept = false;
  for (const char *const *h = headers; h && *h; h++) {
    if (n == 32)
      return wr_err_set(err, WR_EINVAL, "http: at most 32 request headers");
    has_accept |= header_named(*h, "Accept");
    hs[n++] = *h;
  }
  if (!has_accept)
    hs[n++] = "Accept: application/json";
  hs[n] = NULL;
  wr_http_request req = {.method = "GET", .url = url, .headers = hs, .timeout_ms = timeout_ms};
  wr_http_response res;
  int rc = wr_http_do(&req, &res, err);
  if (rc)
    return rc;
  *status = res.status;
  json_error_t je;
  json_t *j = json_loadb(res.body, res.len, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    rc = wr_err_set(err, WR_EJSON, "http: GET answered %d with a body that is not JSON: %s",
                    res.status, je.text);
  } else {
    *out = j;
  }
  wr_http_response_free(&res);
  return rc;
}
