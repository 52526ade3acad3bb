// warren-test: timeout=180
/* test_conn_watchdog.c: a peer that stops reading must never hang a thread.
 *
 * rabbitmq-c 0.11 sends without a deadline, so a broker that stops reading its socket
 * (resource alarm before connection.blocked arrives, a wedged node) would block
 * amqp_basic_publish forever once the kernel buffers are full. A TCP proxy between
 * wr_conn and the broker is "frozen" (it stops reading from the client): publishing
 * large messages fills the buffers, and the watchdog must cut the blocked publish after
 * rpc_timeout_ms with WR_ETIMEDOUT, leaving the connection closed and reconnectable. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <warren/conn.h>

typedef struct proxy {
  int listen_fd;
  int port;
  int upstream_port;
  atomic_bool frozen;
  atomic_bool quit;
  pthread_t thread;
} proxy;

static int connect_upstream(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One client at a time; forwards both ways until either side closes. While frozen it
 * reads nothing from the client (the broker side keeps flowing). */
static void *proxy_main(void *arg) {
  proxy *p = arg;
  while (!atomic_load(&p->quit)) {
    struct pollfd lp = {p->listen_fd, POLLIN, 0};
    if (poll(&lp, 1, 100) <= 0)
      continue;
    int cfd = accept(p->listen_fd, NULL, NULL);
    if (cfd < 0)
      continue;
    int ufd = connect_upstream(p->upstream_port);
    if (ufd < 0) {
      close(cfd);
      continue;
    }
    char buf[16384];
    bool open = true;
    while (open && !atomic_load(&p->quit)) {
      struct pollfd fds[2] = {{cfd, atomic_load(&p->frozen) ? 0 : POLLIN, 0}, {ufd, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0)
        continue;
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = read(cfd, buf, sizeof buf);
        if (n <= 0 || write(ufd, buf, (size_t)n) != n)
          open = false;
      }
      if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = read(ufd, buf, sizeof buf);
        if (n <= 0 || write(cfd, buf, (size_t)n) != n)
          open = false;
      }
    }
    close(cfd);
    close(ufd);
  }
  return NULL;
}

static void proxy_start(proxy *p, int upstream_port) {
  memset(p, 0, sizeof *p);
  p->upstream_port = upstream_port;
  p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 32 * 1024; /* inherited by accepted sockets: fills up quickly */
  setsockopt(p->listen_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &l), 0);
  p->port = ntohs(a.sin_port);
  assert_int_equal(listen(p->listen_fd, 4), 0);
  assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p) {
  atomic_store(&p->quit, true);
  pthread_join(p->thread, NULL);
  close(p->listen_fd);
}

static void stalled_peer_cannot_hang_publish(void **state) {
  (void)state;
  /* the broker's port from the first URL */
  const char *urls = wt_require("WARREN_AMQP_URL");
  const char *colon = strrchr(urls, ':');
  assert_non_null(colon);
  int broker_port = atoi(colon + 1);
  proxy p;
  proxy_start(&p, broker_port);
  char url[128];
  snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d/", p.port); /* "/": default vhost */
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  o.rpc_timeout_ms = 1500;
  wr_conn *c = NULL;
  wr_err err;
  assert_int_equal(wr_conn_new(&o, &c, &err), 0);
  if (wr_conn_open(c, &err) != 0)
    fail_msg("open through the proxy: %s", err.msg);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-wd");
  wr_queue_decl d = {.name = q, .arguments = amqp_empty_table};
  assert_int_equal(wr_conn_declare_queue(c, &d, false, NULL, NULL, &err), 0);

  atomic_store(&p.frozen, true);
  size_t len = 1 << 20;
  char *big = calloc(1, len);
  wr_publish pub = {.exchange = "", .routing_key = q, .body = big, .len = len, .mandatory = false};
  int rc = 0;
  int64_t t0 = wt_now_ms();
  int n = 0;
  for (; n < 200; n++) {
    rc = wr_conn_publish(c, &pub, NULL, &err);
    if (rc != 0)
      break;
  }
  int64_t took = wt_now_ms() - t0;
  assert_int_equal(rc, WR_ETIMEDOUT);
  assert_non_null(strstr(err.msg, "did not read"));
  assert_true(n < 200);
  assert_true(took < 60000); /* the design bound is rpc_timeout_ms per call */
  assert_false(wr_conn_is_open(c));
  assert_int_equal(wr_conn_publish(c, &pub, NULL, &err), WR_ECLOSED);
  free(big);

  /* the peer reads again: the same wr_conn reconnects and works */
  atomic_store(&p.frozen, false);
  if (wr_conn_reconnect(c, NULL, &err) != 0)
    fail_msg("reconnect: %s", err.msg);
  uint64_t seq;
  wr_publish small = {.exchange = "", .routing_key = q, .body = "ok", .len = 2, .mandatory = true};
  assert_int_equal(wr_conn_publish(c, &small, &seq, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(c, seq, 10000, NULL, NULL, &err), 0);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
  proxy_stop(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stalled_peer_cannot_hang_publish),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
