// warren-test: link=warren_devkit,warren_schemas timeout=600
/* test_hostile_conns.c: connection-level abuse of both services (real processes):
 * 10 MiB bodies (declared and chunked), slow clients (idle, slow body, slowloris
 * headers), thousands of concurrent connections, HTTP/2 prefaces, header floods,
 * garbage bytes, pipelining. The services must answer with the documented limits
 * (413 JSON error body; libmicrohttpd's own 414/431/505 for protocol-level abuse, see
 * runtime/include/warren/http.h), close slow clients by their timeouts, keep the
 * number of open connections bounded (max_connections 512: counted as the process's
 * open sockets), never answer another 5xx, stay alive and answer /healthz, and stop
 * cleanly on SIGTERM afterwards. The request corpus is in test_hostile_input.c. */
#include "test_hostile.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>

#define TEN_MIB         (10u << 20)
#define MAX_CONNECTIONS 512 /* the services' default (WR_HTTP_OPTS_INIT) */

static hx_env env;

static int group_setup(void **state) {
  hx_services_start(&env, "hostile_conns");
  return 0;
}

static int group_teardown(void **state) {
  hx_services_stop(&env);
  return 0;
}

/* Sockets the process has open (its fds that are sockets). */
static int open_sockets(pid_t pid) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char path[320], target[64];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ssize_t l = readlink(path, target, sizeof target - 1);
    if (l > 0) {
      target[l] = '\0';
      n += strncmp(target, "socket:", 7) == 0;
    }
  }
  closedir(d);
  return n;
}

/* ---- 10 MiB bodies --------------------------------------------------------------- */

typedef struct sender {
  int fd;
  const char *buf;
  size_t len;
} sender;

static void *send_all(void *arg) {
  sender *s = arg;
  size_t off = 0;
  while (off < s->len) {
    ssize_t n = send(s->fd, s->buf + off, s->len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the server answered and stopped reading: expected */
    off += (size_t)n;
  }
  return NULL;
}

/* Sends head + body from a thread while reading the answer here (the server answers
 * 413 before reading a declared body). */
static void big_request(unsigned port, const char *head, const char *body, size_t body_len,
                        hx_resp *r) {
  memset(r, 0, sizeof *r);
  int fd = hx_connect(port);
  assert_true(fd >= 0);
  size_t hl = strlen(head);
  char *all = malloc(hl + body_len);
  memcpy(all, head, hl);
  memcpy(all + hl, body, body_len);
  sender s = {fd, all, hl + body_len};
  pthread_t t;
  pthread_create(&t, NULL, send_all, &s);
  hx_read_response(fd, wt_now_ms() + 60000, r);
  shutdown(fd, SHUT_RDWR); /* unblocks the sender */
  pthread_join(t, NULL);
  close(fd);
  free(all);
}

static void ten_mib_bodies(void **state) {
  hx_failures = 0;
  char *body = malloc(TEN_MIB);
  memset(body, ' ', TEN_MIB);
  body[0] = '{';
  body[TEN_MIB - 1] = '}';
  char auth[128];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", env.token);
  struct {
    unsigned port;
    const char *method, *path, *extra;
    int want;
    const char *code;
  } routes[] = {
      {env.e.customer.port, "POST", "/customers", "", 413, "payload_too_large"},
      {env.e.customer.port, "PATCH", "/customers/x", "", 413, "payload_too_large"},
      {env.e.customer.port, "DELETE", "/customers/x", "", 413, "payload_too_large"},
      {env.e.customer.port, "GET", "/customers", "", 413, "payload_too_large"},
      {env.e.customer.port, "POST", "/admin/snapshots", "", 401, "unauthorized"},
      {env.e.customer.port, "POST", "/admin/snapshots", auth, 413, "payload_too_large"},
      {env.e.order.port, "POST", "/orders", "", 413, "payload_too_large"},
      {env.e.order.port, "GET", "/orders/x", "", 413, "payload_too_large"},
      {env.e.order.port, "POST", "/admin/reconcile", "", 401, "unauthorized"},
      {env.e.order.port, "POST", "/admin/reconcile", auth, 413, "payload_too_large"},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    char head[512], label[200];
    /* declared: answered from the headers */
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json"
             "\r\nContent-Length: %u\r\n%s\r\n",
             routes[i].method, routes[i].path, TEN_MIB, routes[i].extra);
    hx_resp r;
    big_request(routes[i].port, head, body, TEN_MIB, &r);
    snprintf(label, sizeof label, "%s %s with 10 MiB (Content-Length)", routes[i].method,
             routes[i].path);
    hx_expect(label, &r, routes[i].want, routes[i].code);
    hx_resp_free(&r);
    /* chunked: read on and discarded, then answered */
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json"
             "\r\nTransfer-Encoding: chunked\r\n%s\r\n",
             routes[i].method, routes[i].path, routes[i].extra);
    size_t chunk = 65536, n = TEN_MIB / chunk;
    size_t cap = TEN_MIB + n * 16 + 16, o = 0;
    char *chunked = malloc(cap);
    for (size_t k = 0; k < n; k++) {
      o += (size_t)snprintf(chunked + o, cap - o, "%zx\r\n", chunk);
      memcpy(chunked + o, body + k * chunk, chunk);
      o += chunk;
      memcpy(chunked + o, "\r\n", 2);
      o += 2;
    }
    memcpy(chunked + o, "0\r\n\r\n", 5);
    o += 5;
    big_request(routes[i].port, head, chunked, o, &r);
    snprintf(label, sizeof label, "%s %s with 10 MiB (chunked)", routes[i].method, routes[i].path);
    hx_expect(label, &r, routes[i].want, routes[i].code);
    hx_resp_free(&r);
    free(chunked);
  }
  free(body);
  hx_assert_alive(&env.e.customer);
  hx_assert_alive(&env.e.order);
  assert_int_equal(hx_failures, 0);
}

/* ---- slow clients ------------------------------------------------------------------ */

/* Seconds until the server closes fd (it sends nothing), or -1 after limit_s. Sends
 * one byte of `trickle` every interval_ms while waiting (NULL: nothing). */
static int wait_closed(int fd, const char *trickle, int interval_ms, int limit_s) {
  int64_t start = wt_now_ms();
  size_t pos = 0, tl = trickle ? strlen(trickle) : 0;
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, trickle ? interval_ms : 200);
    if (r > 0) {
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        return (int)((wt_now_ms() - start) / 1000);
      /* an answer (e.g. 408) is fine: keep reading until the close */
    }
    if (trickle && pos < tl) {
      if (send(fd, trickle + pos, 1, MSG_NOSIGNAL) < 0)
        return (int)((wt_now_ms() - start) / 1000);
      pos++;
    }
    if (wt_now_ms() - start > (int64_t)limit_s * 1000)
      return -1;
  }
}

typedef struct slow_case {
  unsigned port;
  const char *trickle; /* bytes sent one by one after `prefix` */
  const char *prefix;
  int interval_ms;
  int closed_after_s; /* result */
} slow_case;

static void *slow_main(void *arg) {
  slow_case *c = arg;
  int fd = hx_connect(c->port);
  if (fd < 0) {
    c->closed_after_s = -2;
    return NULL;
  }
  if (c->prefix)
    send(fd, c->prefix, strlen(c->prefix), MSG_NOSIGNAL);
  c->closed_after_s = wait_closed(fd, c->trickle, c->interval_ms, 120);
  close(fd);
  return NULL;
}

/* Idle connections are closed by connection_timeout (10 s); a body trickling in is
 * cut by request_timeout (30 s) although every byte resets the idle timer; clients
 * trickling their headers hold a slot (bounded by the 32 KiB header limit and
 * max_connections) while everyone else is still served. */
static void slow_clients(void **state) {
  static char slow_body[200];
  memset(slow_body, 'x', sizeof slow_body - 1);
  slow_case cases[] = {
      {env.e.customer.port, NULL, NULL, 0, 0},
      {env.e.order.port, NULL, NULL, 0, 0},
      {env.e.customer.port, NULL, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 0, 0},
      {env.e.customer.port, slow_body,
       "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       "Content-Length: 199\r\n\r\n",
       2000, 0},
      {env.e.order.port, slow_body,
       "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       "Content-Length: 199\r\n\r\n",
       2000, 0},
  };
  size_t n = sizeof cases / sizeof cases[0];
  pthread_t th[8];
  for (size_t i = 0; i < n; i++)
    pthread_create(&th[i], NULL, slow_main, &cases[i]);

  /* slowloris: 100 connections trickling a never-ending header, one byte a second */
  enum { LORIS = 100 };
  int loris[LORIS];
  for (int i = 0; i < LORIS; i++) {
    loris[i] = hx_connect(i % 2 ? env.e.order.port : env.e.customer.port);
    assert_true(loris[i] >= 0);
    send(loris[i], "GET /healthz HTTP/1.1\r\nX-Slow: ", 31, MSG_NOSIGNAL);
  }
  int served = 0;
  for (int s = 0; s < 15; s++) {
    for (int i = 0; i < LORIS; i++)
      send(loris[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* everyone else is still served meanwhile */
    hx_resp r;
    hx_send(s % 2 ? env.e.order.port : env.e.customer.port, "GET", "/healthz", NULL, NULL, NULL, 0,
            &r);
    served += r.status == 200;
    hx_resp_free(&r);
    sleep(1);
  }
  for (int i = 0; i < LORIS; i++)
    close(loris[i]);
  assert_int_equal(served, 15);

  for (size_t i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  /* idle: connection_timeout 10 s; slow body: request_timeout 30 s (generous bounds:
   * the machine is shared) */
  static const int bound_s[] = {60, 60, 60, 90, 90};
  for (size_t i = 0; i < n; i++) {
    printf("slow case %zu: closed by the server after %d s\n", i, cases[i].closed_after_s);
    assert_true(cases[i].closed_after_s >= 0 && cases[i].closed_after_s <= bound_s[i]);
  }
  hx_assert_alive(&env.e.customer);
  hx_assert_alive(&env.e.order);
}

/* ---- thousands of connections ------------------------------------------------------ */

typedef struct flood_stats {
  int opened, answered, ok, five, other, closed_unanswered, unfinished, max_sockets;
} flood_stats;

/* Opens n connections at once (non-blocking), sends a request on each as soon as it
 * is connected, reads the answers for up to wait_ms, sampling the service's open
 * sockets meanwhile. */
static void flood(dk_proc *p, int n, bool send_request, int wait_ms, flood_stats *st) {
  memset(st, 0, sizeof *st);
  struct pollfd *pf = calloc((size_t)n, sizeof *pf);
  bool *sent = calloc((size_t)n, sizeof *sent);
  char **buf = calloc((size_t)n, sizeof *buf);
  size_t *len = calloc((size_t)n, sizeof *len);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
      close(fd);
      pf[i].fd = -1;
      continue;
    }
    pf[i].fd = fd;
    pf[i].events = POLLOUT;
    st->opened++;
  }
  static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  int64_t end = wt_now_ms() + wait_ms;
  int pending = st->opened;
  while (pending > 0 && wt_now_ms() < end) {
    int s = open_sockets(p->pid);
    if (s > st->max_sockets)
      st->max_sockets = s;
    if (poll(pf, (nfds_t)n, 100) <= 0)
      continue;
    for (int i = 0; i < n; i++) {
      if (pf[i].fd < 0 || !pf[i].revents)
        continue;
      if (!sent[i] && (pf[i].revents & POLLOUT)) {
        sent[i] = true;
        if (send_request)
          send(pf[i].fd, req, sizeof req - 1, MSG_NOSIGNAL);
        pf[i].events = POLLIN;
        continue;
      }
      if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char tmp[4096];
        ssize_t got = recv(pf[i].fd, tmp, sizeof tmp, 0);
        if (got > 0) {
          buf[i] = realloc(buf[i], len[i] + (size_t)got + 1);
          memcpy(buf[i] + len[i], tmp, (size_t)got);
          len[i] += (size_t)got;
          buf[i][len[i]] = '\0';
          continue;
        }
        /* closed: classify what came back */
        if (len[i] >= 12 && !strncmp(buf[i], "HTTP/1.", 7)) {
          st->answered++;
          int code = atoi(buf[i] + 9);
          if (code == 200)
            st->ok++;
          else if (code >= 500)
            st->five++;
          else
            st->other++;
        } else {
          st->closed_unanswered++;
        }
        close(pf[i].fd);
        pf[i].fd = -1;
        pending--;
      }
    }
  }
  st->unfinished = pending;
  for (int i = 0; i < n; i++) {
    if (pf[i].fd >= 0)
      close(pf[i].fd);
    free(buf[i]);
  }
  free(pf);
  free(sent);
  free(buf);
  free(len);
}

static void thousands_of_connections(void **state) {
  dk_proc *procs[2] = {&env.e.customer, &env.e.order};
  for (int k = 0; k < 2; k++) {
    dk_proc *p = procs[k];
    int base = open_sockets(p->pid);
    flood_stats st;
    /* 3000 clients at once, each asking for /healthz: the server holds at most
     * max_connections, the others wait in the backlog and are served in turn */
    flood(p, 3000, true, 90000, &st);
    printf("%s: 3000 concurrent requests: %d connected, %d answered (%d x 200, %d x 5xx, %d "
           "other), %d closed unanswered, %d still waiting after 90 s; at most %d sockets open "
           "(%d before)\n",
           p->name, st.opened, st.answered, st.ok, st.five, st.other, st.closed_unanswered,
           st.unfinished, st.max_sockets, base);
    assert_int_equal(st.five, 0);
    assert_int_equal(st.other, 0);
    assert_true(st.ok >= MAX_CONNECTIONS);
    assert_true(st.max_sockets <= base + MAX_CONNECTIONS + 2);
    /* 2000 idle clients: at most max_connections are accepted, the server stays
     * bounded and closes them by its idle timeout */
    flood(p, 2000, false, 3000, &st);
    printf("%s: 2000 idle connections: at most %d sockets open\n", p->name, st.max_sockets);
    assert_true(st.max_sockets <= base + MAX_CONNECTIONS + 2);
    hx_assert_alive(p);
  }
}

/* ---- protocol-level abuse ------------------------------------------------------------ */

static void protocol_abuse(void **state) {
  dk_proc *procs[2] = {&env.e.customer, &env.e.order};
  for (int k = 0; k < 2; k++) {
    unsigned port = procs[k]->port;
    hx_resp r;
    /* HTTP/2 prior knowledge: libmicrohttpd answers 505 (the one documented 5xx) */
    static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    hx_raw(port, h2, sizeof h2 - 1, 10000, &r);
    printf("%s: HTTP/2 preface -> %d\n", procs[k]->name, r.status);
    assert_true(r.status == 505 || r.status == 0);
    hx_resp_free(&r);
    static const char h3[] = "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n";
    hx_raw(port, h3, sizeof h3 - 1, 10000, &r);
    assert_true(r.status == 505 || r.status == 0);
    hx_resp_free(&r);

    /* header floods: a 40 KiB header value, 3000 headers, a 40 KiB request line */
    size_t big = 40 * 1024;
    char *req = malloc(big + 256);
    int n = snprintf(req, big + 256, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'h', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    hx_raw(port, req, strlen(req), 10000, &r);
    printf("%s: 40 KiB header -> %d\n", procs[k]->name, r.status);
    assert_true(r.status == 431 || r.status == 413 || r.status == 400 || r.status == 0);
    hx_resp_free(&r);
    n = snprintf(req, big + 256, "GET /");
    memset(req + n, 'u', big);
    memcpy(req + n + big, " HTTP/1.1\r\nHost: x\r\n\r\n", 23);
    hx_raw(port, req, strlen(req), 10000, &r);
    printf("%s: 40 KiB request line -> %d\n", procs[k]->name, r.status);
    assert_true(r.status == 414 || r.status == 431 || r.status == 400 || r.status == 0);
    hx_resp_free(&r);
    free(req);
    size_t cap = 3000 * 16 + 64;
    req = malloc(cap);
    size_t o = (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 3000; i++)
      o += (size_t)snprintf(req + o, cap - o, "X-%d: v\r\n", i);
    o += (size_t)snprintf(req + o, cap - o, "\r\n");
    hx_raw(port, req, o, 10000, &r);
    printf("%s: 3000 headers -> %d\n", procs[k]->name, r.status);
    assert_true(r.status == 431 || r.status == 413 || r.status == 400 || r.status == 0);
    hx_resp_free(&r);
    free(req);

    /* garbage and near-HTTP */
    static const struct {
      const char *label, *bytes;
      size_t len;
    } junk[] = {
        {"TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11},
        {"binary zeros", "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16},
        {"NUL in the method", "G\0T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34},
        {"NUL in the target", "GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n", 35},
        {"NUL in a header name", "GET /healthz HTTP/1.1\r\nHo\0st: x\r\n\r\n", 35},
        {"NUL in a header value", "GET /healthz HTTP/1.1\r\nHost: x\0y\r\n\r\n", 35},
        {"bare LF", "GET /healthz HTTP/1.1\nHost: x\n\n", 0},
        {"no version", "GET /healthz\r\n\r\n", 0},
        {"lower-case version", "GET /healthz http/1.1\r\nHost: x\r\n\r\n", 0},
        {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 0},
        {"header without colon", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 0},
        {"space before colon", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 0},
        {"obsolete line folding", "GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 0},
        {"two Content-Lengths",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
         "\r\n{}",
         0},
        {"Content-Length and chunked",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nContent-Length: 2\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         0},
        {"negative Content-Length",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nContent-Length: -1\r\n\r\n{}",
         0},
        {"huge Content-Length",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nContent-Length: "
         "99999999999999999999999999\r\n\r\n{}",
         0},
        {"bad chunk size",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n"
         "0\r\n\r\n",
         0},
        {"huge chunk size",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
         "ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
         0},
        {"unknown transfer coding",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}",
         0},
        {"Expect 100-continue, no body",
         "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Type: "
         "application/json\r\nExpect: 100-continue\r\n"
         "Content-Length: 2\r\n\r\n",
         0},
        {"CONNECT", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 0},
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
      size_t len = junk[i].len ? junk[i].len : strlen(junk[i].bytes);
      hx_raw(port, junk[i].bytes, len, 3000, &r); /* some are left hanging: no wait */
      printf("%s: %s -> %d\n", procs[k]->name, junk[i].label, r.status);
      if (r.status >= 500)
        fail_msg("%s: %s answered %d", procs[k]->name, junk[i].label, r.status);
      hx_resp_free(&r);
    }

    /* 200 pipelined requests on one keep-alive connection */
    static const char one[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t pl = (sizeof one - 1) * 200;
    char *pipe = malloc(pl + 64);
    for (int i = 0; i < 200; i++)
      memcpy(pipe + (size_t)i * (sizeof one - 1), one, sizeof one - 1);
    static const char last[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    memcpy(pipe + pl, last, sizeof last - 1);
    pl += sizeof last - 1;
    int pfd = hx_connect(port);
    assert_true(pfd >= 0);
    assert_int_equal(send(pfd, pipe, pl, MSG_NOSIGNAL), (ssize_t)pl);
    memset(&r, 0, sizeof r);
    size_t rcap = 1 << 20;
    r.raw = malloc(rcap + 1);
    int64_t pend = wt_now_ms() + 30000;
    for (;;) { /* until the server closes after the last request */
      struct pollfd ppf = {.fd = pfd, .events = POLLIN};
      if (wt_now_ms() > pend || poll(&ppf, 1, 1000) < 0)
        break;
      ssize_t got = recv(pfd, r.raw + r.len, rcap - r.len, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN) || r.len == rcap)
        break;
      if (got > 0)
        r.len += (size_t)got;
    }
    r.raw[r.len] = '\0';
    close(pfd);
    int answers = 0;
    for (const char *q = r.raw; q && (q = strstr(q, "HTTP/1.1 200")); q++)
      answers++;
    printf("%s: 201 pipelined requests -> %d answers\n", procs[k]->name, answers);
    assert_int_equal(answers, 201);
    assert_null(strstr(r.raw ? r.raw : "", "HTTP/1.1 5"));
    hx_resp_free(&r);
    free(pipe);
    hx_assert_alive(procs[k]);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ten_mib_bodies),
      cmocka_unit_test(protocol_abuse),
      cmocka_unit_test(slow_clients),
      cmocka_unit_test(thousands_of_connections),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
