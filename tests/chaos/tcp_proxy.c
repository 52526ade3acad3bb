/* tcp_proxy.c: see tcp_proxy.h. Test code: simple over fast (a thread per connection,
 * a 50 ms tick to notice control changes). */
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE           65536
#define TICK_MS            50
#define CONNECT_TIMEOUT_MS 2000

typedef struct tp_conn {
  struct tp_conn *next;
  tp_proxy *p;
  int client, upstream;
  pthread_t thread;
  int done; /* set by the connection thread when it has closed its sockets */
} tp_conn;

struct tp_proxy {
  int listen_fd;
  unsigned port;
  struct sockaddr_in upstream;
  pthread_t acceptor;
  int stop;
  unsigned stall;    /* TP_UP | TP_DOWN, atomic */
  unsigned cut_gen;  /* bumped by tp_cut, atomic */
  int refuse;        /* atomic */
  uint64_t accepted; /* atomic */
  uint64_t bytes[2]; /* forwarded up / down, atomic */
  uint64_t trigger;  /* tp_stall_down_after: up-byte count that stalls down (0 = none) */
  pthread_mutex_t mu;
  tp_conn *conns;
};

static void reset_close(int fd) {
  if (fd < 0)
    return;
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Non-blocking connect bounded by CONNECT_TIMEOUT_MS. Returns the socket or -1. */
static int connect_upstream(const struct sockaddr_in *a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0)
    return fd;
  if (errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (poll(&pf, 1, CONNECT_TIMEOUT_MS) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

typedef struct pipe_dir {
  int from, to;
  unsigned flag; /* TP_UP or TP_DOWN */
  char buf[BUF_SIZE];
  size_t len, off;
} pipe_dir;

static void *conn_main(void *arg) {
  tp_conn *c = arg;
  tp_proxy *p = c->p;
  unsigned gen = __atomic_load_n(&p->cut_gen, __ATOMIC_ACQUIRE);
  bool reset = false;
  c->upstream = connect_upstream(&p->upstream);
  if (c->upstream < 0 || set_nonblock(c->client) != 0) {
    reset = true; /* the upstream is down: the client sees its connection reset */
    goto out;
  }
  int one = 1;
  setsockopt(c->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c->upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pipe_dir *d = calloc(2, sizeof *d);
  if (!d) {
    reset = true;
    goto out;
  }
  d[0].from = c->client;
  d[0].to = c->upstream;
  d[0].flag = TP_UP;
  d[1].from = c->upstream;
  d[1].to = c->client;
  d[1].flag = TP_DOWN;
  while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
    if (__atomic_load_n(&p->cut_gen, __ATOMIC_ACQUIRE) != gen) {
      reset = true;
      break;
    }
    unsigned stall = __atomic_load_n(&p->stall, __ATOMIC_ACQUIRE);
    struct pollfd pf[2];
    int map[2];
    int n = 0;
    for (int i = 0; i < 2; i++) {
      if (stall & d[i].flag)
        continue;
      if (d[i].len == 0)
        pf[n] = (struct pollfd){.fd = d[i].from, .events = POLLIN};
      else
        pf[n] = (struct pollfd){.fd = d[i].to, .events = POLLOUT};
      map[n++] = i;
    }
    int r = poll(pf, (nfds_t)n, TICK_MS);
    if (r < 0 && errno != EINTR)
      break;
    bool closed = false;
    for (int k = 0; r > 0 && k < n && !closed; k++) {
      if (!pf[k].revents)
        continue;
      pipe_dir *x = &d[map[k]];
      if (x->len == 0) {
        ssize_t got = read(x->from, x->buf, sizeof x->buf);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
          closed = true; /* one side closed: close both, as a broker or client would see */
        else if (got > 0) {
          x->len = (size_t)got;
          x->off = 0;
        }
      } else {
        ssize_t put = write(x->to, x->buf + x->off, x->len - x->off);
        if (put < 0 && errno != EAGAIN && errno != EINTR)
          closed = true;
        else if (put > 0) {
          uint64_t total = __atomic_add_fetch(&p->bytes[x->flag == TP_UP ? 0 : 1], (uint64_t)put,
                                              __ATOMIC_RELAXED);
          uint64_t trig = __atomic_load_n(&p->trigger, __ATOMIC_ACQUIRE);
          if (x->flag == TP_UP && trig && total >= trig &&
              __atomic_compare_exchange_n(&p->trigger, &trig, 0, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE))
            __atomic_or_fetch(&p->stall, TP_DOWN, __ATOMIC_ACQ_REL);
          x->off += (size_t)put;
          if (x->off == x->len)
            x->len = x->off = 0;
        }
      }
    }
    if (closed)
      break;
  }
  free(d);
out:
  if (reset) {
    reset_close(c->client);
    reset_close(c->upstream);
  } else {
    close(c->client);
    if (c->upstream >= 0)
      close(c->upstream);
  }
  __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Joins and frees finished connections (all of them when `all`). */
static void reap(tp_proxy *p, bool all) {
  pthread_mutex_lock(&p->mu);
  tp_conn **pp = &p->conns;
  while (*pp) {
    tp_conn *c = *pp;
    if (all || __atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
      *pp = c->next;
      pthread_mutex_unlock(&p->mu);
      pthread_join(c->thread, NULL);
      free(c);
      pthread_mutex_lock(&p->mu);
    } else {
      pp = &c->next;
    }
  }
  pthread_mutex_unlock(&p->mu);
}

static void *accept_main(void *arg) {
  tp_proxy *p = arg;
  while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
    struct pollfd pf = {.fd = p->listen_fd, .events = POLLIN};
    if (poll(&pf, 1, 100) <= 0) {
      reap(p, false);
      continue;
    }
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    __atomic_add_fetch(&p->accepted, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&p->refuse, __ATOMIC_ACQUIRE)) {
      reset_close(fd);
      continue;
    }
    tp_conn *c = calloc(1, sizeof *c);
    if (!c) {
      reset_close(fd);
      continue;
    }
    c->p = p;
    c->client = fd;
    c->upstream = -1;
    pthread_mutex_lock(&p->mu);
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
      pthread_mutex_unlock(&p->mu);
      reset_close(fd);
      free(c);
      continue;
    }
    c->next = p->conns;
    p->conns = c;
    pthread_mutex_unlock(&p->mu);
    reap(p, false);
  }
  return NULL;
}

int tp_start(const char *upstream_host, unsigned upstream_port, tp_proxy **out) {
  *out = NULL;
  tp_proxy *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  p->upstream.sin_family = AF_INET;
  p->upstream.sin_port = htons((uint16_t)upstream_port);
  if (inet_pton(AF_INET, upstream_host, &p->upstream.sin_addr) != 1) {
    free(p);
    return -EINVAL;
  }
  p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int one = 1;
  if (p->listen_fd < 0 ||
      setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 128) != 0 ||
      getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    if (p->listen_fd >= 0)
      close(p->listen_fd);
    free(p);
    return -e;
  }
  p->port = ntohs(a.sin_port);
  int rc = pthread_create(&p->acceptor, NULL, accept_main, p);
  if (rc != 0) {
    close(p->listen_fd);
    free(p);
    return -rc;
  }
  *out = p;
  return 0;
}

unsigned tp_port(const tp_proxy *p) {
  return p->port;
}

void tp_stall(tp_proxy *p, unsigned dirs) {
  __atomic_store_n(&p->trigger, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&p->stall, dirs & (TP_UP | TP_DOWN), __ATOMIC_RELEASE);
}

void tp_stall_down_after(tp_proxy *p, uint64_t up_bytes) {
  uint64_t at = __atomic_load_n(&p->bytes[0], __ATOMIC_ACQUIRE) + (up_bytes ? up_bytes : 1);
  __atomic_store_n(&p->trigger, at, __ATOMIC_RELEASE);
}

size_t tp_cut(tp_proxy *p) {
  size_t n = tp_open_connections(p);
  __atomic_add_fetch(&p->cut_gen, 1, __ATOMIC_ACQ_REL);
  return n;
}

void tp_refuse(tp_proxy *p, bool on) {
  __atomic_store_n(&p->refuse, on ? 1 : 0, __ATOMIC_RELEASE);
}

size_t tp_open_connections(tp_proxy *p) {
  size_t n = 0;
  pthread_mutex_lock(&p->mu);
  for (tp_conn *c = p->conns; c; c = c->next)
    n += !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
  pthread_mutex_unlock(&p->mu);
  return n;
}

uint64_t tp_accepted(const tp_proxy *p) {
  return __atomic_load_n(&p->accepted, __ATOMIC_RELAXED);
}

uint64_t tp_bytes(const tp_proxy *p, unsigned dir) {
  return __atomic_load_n(&p->bytes[dir == TP_UP ? 0 : 1], __ATOMIC_RELAXED);
}

void tp_stop(tp_proxy *p) {
  if (!p)
    return;
  __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
  pthread_join(p->acceptor, NULL);
  reap(p, true);
  close(p->listen_fd);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
