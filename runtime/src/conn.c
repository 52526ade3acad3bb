/* conn.c: one recovering AMQP 0-9-1 connection over rabbitmq-c 0.11.
 *
 * Design notes (see also ../../docs/DESIGN.md and /work/shared/FACTS.md):
 *
 * - One wr_conn, one thread. rabbitmq-c reads the socket only inside its calls, so
 *   everything the broker sends (confirms, returns, deliveries, channel and connection
 *   closes, connection.blocked, heartbeats) is handled by whichever warren call is
 *   reading at the time: wr_conn_next_delivery, wr_conn_wait_confirms,
 *   wr_conn_service, and, without waiting, wr_conn_publish. One frame dispatcher
 *   (handle_frame) serves them all, so no frame is lost whichever call reads it:
 *   confirms are recorded in the unsettled table and reported by the next
 *   wr_conn_wait_confirms, deliveries are buffered for wr_conn_next_delivery.
 *
 * - Numbers that survive reconnects. The broker restarts confirm sequence numbers and
 *   delivery tags at 1 on every new channel. warren hands out its own numbers, which
 *   only grow over the life of the wr_conn: public = base + broker number, with the
 *   base moved past everything handed out whenever a channel is (re)opened. A stale
 *   number can therefore never be mistaken for a current one: an ack with a delivery
 *   tag from before a reopen is refused with WR_ESTATE instead of acking some other
 *   message, and a confirm callback never sees one sequence number twice.
 *
 * - Nothing blocks forever. Connect is bounded by connect_timeout_ms
 *   (amqp_socket_open_noblock + the handshake timeout), every rpc by rpc_timeout_ms
 *   (amqp_set_rpc_timeout). rabbitmq-c 0.11 sends with an infinite deadline
 *   (basic.publish, basic.ack, content reads), and a broker under a resource alarm
 *   stops reading the socket: once the kernel buffers are full such a call would hang.
 *   A per-connection watchdog thread is armed around those calls and, when one takes
 *   longer than rpc_timeout_ms, shuts the socket down; the call then fails, the
 *   connection is marked closed and the caller gets WR_ETIMEDOUT. Publishing first
 *   reads whatever the broker has sent, so a connection.blocked that has arrived makes
 *   the publish fail fast with WR_EBLOCKED without sending anything.
 *
 * - Side channels (conn_internal.h) keep tool traffic (DLQ browse/replay, queue
 *   probes) away from channel 1, so a 404 there costs neither consumers nor
 *   unconfirmed messages. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include <warren/conn.h>
#include <warren/log.h>
#include <warren/util.h>

#include "conn_internal.h"

#define MAIN          WR__CONN_MAIN_CHANNEL
#define FRAME_MAX     131072
#define URL_SHOWN_MAX 256

/* ---- small helpers ------------------------------------------------------------- */

static int64_t now_ms(void) {
  return wr_mono_ns() / 1000000;
}

static struct timeval ms_tv(int64_t ms) {
  if (ms < 0)
    ms = 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static amqp_bytes_t cbytes(const char *s) {
  return amqp_cstring_bytes(s ? s : "");
}

/* Copies broker text (not NUL-terminated, maybe hostile) into out, printable ASCII
 * only, so error messages and logs stay one clean line. */
static void text_copy(char *out, size_t outsz, amqp_bytes_t b) {
  if (outsz == 0)
    return;
  size_t n = 0;
  const unsigned char *p = b.bytes;
  for (size_t i = 0; p && i < b.len && n + 1 < outsz; i++)
    out[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  out[n] = '\0';
}

static bool bytes_eq(amqp_bytes_t b, const char *s) {
  size_t n = strlen(s);
  return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static uint64_t route_hash(amqp_bytes_t exchange, amqp_bytes_t rk) {
  uint64_t h = 1469598103934665603ULL;
  const unsigned char *p = exchange.bytes;
  for (size_t i = 0; p && i < exchange.len; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  h = (h ^ 0xffu) * 1099511628211ULL;
  p = rk.bytes;
  for (size_t i = 0; p && i < rk.len; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static bool status_is_tls(int st) {
  return st == AMQP_STATUS_SSL_ERROR || st == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
         st == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || st == AMQP_STATUS_SSL_CONNECTION_FAILED ||
         st == AMQP_STATUS_SSL_SET_ENGINE_FAILED;
}

static bool name_ok(const char *s) {
  return s && strlen(s) <= 255;
}

/* ---- watchdog ------------------------------------------------------------------ */

typedef struct watchdog {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started;
  bool quit;
  bool idle;  /* waiting without a deadline */
  bool fired; /* the armed call overran and its socket was shut down */
  int fd;
  int64_t deadline_ns;   /* 0 = disarmed */
  int64_t waiting_until; /* deadline of the thread's current timed wait */
} watchdog;

static void *watchdog_main(void *arg) {
  watchdog *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->quit) {
    if (w->deadline_ns == 0) {
      w->idle = true;
      pthread_cond_wait(&w->cv, &w->mu);
      w->idle = false;
      continue;
    }
    int64_t now = wr_mono_ns();
    if (now >= w->deadline_ns) {
      /* shutdown(), not close(): the descriptor stays owned by rabbitmq-c, whose
       * pending poll()/send() now fail, and cannot be reused under its feet. */
      if (w->fd >= 0)
        shutdown(w->fd, SHUT_RDWR);
      w->fired = true;
      w->deadline_ns = 0;
      continue;
    }
    struct timespec ts = {(time_t)(w->deadline_ns / 1000000000),
                          (long)(w->deadline_ns % 1000000000)};
    w->waiting_until = w->deadline_ns;
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    w->waiting_until = 0;
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static int watchdog_start(watchdog *w) {
  if (w->started)
    return 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0)
    return WR_ENOMEM;
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    pthread_cond_destroy(&w->cv);
    return WR_ENOMEM;
  }
  w->quit = false;
  w->fired = false;
  w->deadline_ns = 0;
  w->fd = -1;
  /* The watchdog must never receive the process's signals (SIGTERM handlers of the
   * services expect to run on their own threads). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&w->thread, NULL, watchdog_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return WR_ENOMEM;
  }
  w->started = true;
  return 0;
}

static void watchdog_stop(watchdog *w) {
  if (!w->started)
    return;
  pthread_mutex_lock(&w->mu);
  w->quit = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  w->started = false;
}

static void watchdog_arm(watchdog *w, int fd, int64_t ms) {
  if (!w->started || fd < 0)
    return;
  pthread_mutex_lock(&w->mu);
  w->fd = fd;
  w->fired = false;
  w->deadline_ns = wr_mono_ns() + (int64_t)ms * 1000000;
  if (w->idle || (w->waiting_until != 0 && w->deadline_ns < w->waiting_until))
    pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Returns true when the armed call overran (its socket has been shut down). */
static bool watchdog_disarm(watchdog *w) {
  if (!w->started)
    return false;
  pthread_mutex_lock(&w->mu);
  w->deadline_ns = 0;
  w->fd = -1;
  bool fired = w->fired;
  w->fired = false;
  pthread_mutex_unlock(&w->mu);
  return fired;
}

/* ---- the connection object ----------------------------------------------------- */

typedef struct url_ent {
  char *buf; /* parsed in place by amqp_parse_url; info points into it */
  struct amqp_connection_info info;
  char shown[URL_SHOWN_MAX]; /* redacted */
} url_ent;

typedef struct hook {
  wr_conn_open_fn fn;
  void *user;
} hook;

typedef struct consumer {
  char *queue;
  uint16_t prefetch;
  bool exclusive;
  amqp_pool_t pool; /* owns args */
  amqp_table_t args;
  char tag[256];
  bool active; /* basic.consume-ok seen on the current channel */
} consumer;

enum { PEND_WAIT = 0, PEND_SETTLED = 1, PEND_REPORTED = 2 };

typedef struct pend {
  uint64_t seq;     /* public sequence number */
  uint64_t route;   /* hash of exchange + routing key (return matching fallback) */
  char *message_id; /* malloc'd copy, or NULL */
  int status;       /* once settled */
  uint8_t state;
  bool mandatory;
  bool returned;
} pend;

struct wr_conn {
  /* options (copied) */
  char *cacert, *client_cert, *client_key, *connection_name;
  bool verify_hostname;
  unsigned heartbeat_s, connect_timeout_ms, rpc_timeout_ms, backoff_base_ms, backoff_max_ms;
  url_ent *urls;
  size_t n_urls;
  size_t next_url;
  char url_shown[URL_SHOWN_MAX];

  amqp_connection_state_t amqp;
  bool open;
  bool blocked;
  uint64_t generation;

  bool want_confirm, confirm_active;

  hook *hooks;
  size_t n_hooks, cap_hooks;
  consumer **consumers;
  size_t n_consumers, cap_consumers;

  /* publisher confirms */
  pend *pv;
  size_t ph, pn, pcap; /* live entries are pv[ph..pn) in seq order */
  size_t n_wait;
  unsigned in_report; /* pend_report running: entries must not move */
  uint64_t seq_last, seq_base;

  /* deliveries */
  uint64_t tag_last, tag_base;
  amqp_envelope_t *dq;
  size_t dq_head, dq_len, dq_cap;

  /* consumers cancelled by the broker that could not be restarted */
  unsigned stops;
  char stop_msg[400];

  /* side channel state (one synchronous publish at a time) */
  uint64_t side_seq;
  bool side_open[8]; /* channels 2..7 */

  void *scratch; /* header pre-encoding buffer (validate_props) */

  watchdog wd;
};

/* ---- unsettled publishes ------------------------------------------------------- */

static int pend_push(wr_conn *c, uint64_t seq, const amqp_basic_properties_t *props,
                     const wr_publish *p) {
  if (c->ph > 0 && c->ph == c->pn && !c->in_report) {
    c->ph = c->pn = 0;
  }
  if (c->pn == c->pcap) {
    if (c->ph > c->pcap / 2 && !c->in_report) {
      memmove(c->pv, c->pv + c->ph, (c->pn - c->ph) * sizeof *c->pv);
      c->pn -= c->ph;
      c->ph = 0;
    } else {
      size_t ncap = c->pcap ? c->pcap * 2 : 64;
      pend *nv = realloc(c->pv, ncap * sizeof *nv);
      if (!nv)
        return WR_ENOMEM;
      c->pv = nv;
      c->pcap = ncap;
    }
  }
  pend *e = &c->pv[c->pn];
  memset(e, 0, sizeof *e);
  e->seq = seq;
  e->mandatory = p->mandatory;
  e->route = route_hash(cbytes(p->exchange), cbytes(p->routing_key));
  if (props && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && props->message_id.len > 0) {
    e->message_id = malloc(props->message_id.len + 1);
    if (!e->message_id)
      return WR_ENOMEM;
    memcpy(e->message_id, props->message_id.bytes, props->message_id.len);
    e->message_id[props->message_id.len] = '\0';
  }
  e->state = PEND_WAIT;
  c->pn++;
  c->n_wait++;
  return 0;
}

static void pend_settle_one(wr_conn *c, pend *e, int status) {
  if (e->state != PEND_WAIT)
    return;
  e->status = (status == 0 && e->returned) ? WR_ERETURNED : status;
  e->state = PEND_SETTLED;
  c->n_wait--;
}

/* Settles by public sequence number: one, or everything up to it (multiple). */
static void pend_settle(wr_conn *c, uint64_t seq, bool multiple, int status) {
  if (multiple) {
    for (size_t i = c->ph; i < c->pn && c->pv[i].seq <= seq; i++)
      pend_settle_one(c, &c->pv[i], status);
    return;
  }
  size_t lo = c->ph, hi = c->pn;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->pv[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < c->pn && c->pv[lo].seq == seq)
    pend_settle_one(c, &c->pv[lo], status);
}

static void pend_settle_all(wr_conn *c, int status) {
  for (size_t i = c->ph; i < c->pn; i++)
    pend_settle_one(c, &c->pv[i], status);
}

/* A basic.return precedes the ack of the same message: mark the oldest unsettled
 * mandatory message that matches by message_id (or, without one, by exchange and
 * routing key) so its ack is reported as WR_ERETURNED. */
static void pend_mark_returned(wr_conn *c, const amqp_basic_properties_t *props, uint64_t route) {
  bool by_id = props && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && props->message_id.len > 0;
  for (size_t i = c->ph; i < c->pn; i++) {
    pend *e = &c->pv[i];
    if (e->state != PEND_WAIT || !e->mandatory || e->returned)
      continue;
    if (by_id) {
      if (e->message_id && bytes_eq(props->message_id, e->message_id)) {
        e->returned = true;
        return;
      }
    } else if (!e->message_id && e->route == route) {
      e->returned = true;
      return;
    }
  }
}

/* Reports every settled, unreported message. fn may publish on c (the table may grow
 * meanwhile: entries are addressed by index). */
static void pend_report(wr_conn *c, wr_confirm_fn fn, void *user) {
  c->in_report++;
  for (size_t i = c->ph; i < c->pn; i++) {
    if (c->pv[i].state != PEND_SETTLED)
      continue;
    c->pv[i].state = PEND_REPORTED;
    free(c->pv[i].message_id);
    c->pv[i].message_id = NULL;
    uint64_t seq = c->pv[i].seq;
    int st = c->pv[i].status;
    if (fn)
      fn(c, seq, st, user);
  }
  c->in_report--;
  while (c->ph < c->pn && c->pv[c->ph].state == PEND_REPORTED)
    c->ph++;
}

static bool pend_done_upto(const wr_conn *c, uint64_t upto) {
  for (size_t i = c->ph; i < c->pn; i++) {
    if (c->pv[i].seq > upto)
      return true;
    if (c->pv[i].state == PEND_WAIT)
      return false;
  }
  return true;
}

/* ---- buffered deliveries ------------------------------------------------------- */

static int dq_push(wr_conn *c, const amqp_envelope_t *e) {
  if (c->dq_len == c->dq_cap) {
    size_t ncap = c->dq_cap ? c->dq_cap * 2 : 16;
    amqp_envelope_t *nq = malloc(ncap * sizeof *nq);
    if (!nq)
      return WR_ENOMEM;
    for (size_t i = 0; i < c->dq_len; i++)
      nq[i] = c->dq[(c->dq_head + i) % c->dq_cap];
    free(c->dq);
    c->dq = nq;
    c->dq_cap = ncap;
    c->dq_head = 0;
  }
  c->dq[(c->dq_head + c->dq_len) % c->dq_cap] = *e;
  c->dq_len++;
  return 0;
}

static bool dq_pop(wr_conn *c, amqp_envelope_t *out) {
  if (c->dq_len == 0)
    return false;
  *out = c->dq[c->dq_head];
  c->dq_head = (c->dq_head + 1) % c->dq_cap;
  c->dq_len--;
  return true;
}

static void dq_clear(wr_conn *c) {
  amqp_envelope_t e;
  while (dq_pop(c, &e))
    amqp_destroy_envelope(&e);
}

/* ---- failure paths ------------------------------------------------------------- */

/* The connection is gone (or unusable): forget it. Unsettled publishes become
 * WR_ECLOSED, buffered deliveries are dropped (the broker requeues them), consumers
 * will be restarted by the next open. */
static void conn_drop(wr_conn *c) {
  if (c->amqp) {
    amqp_destroy_connection(c->amqp);
    c->amqp = NULL;
  }
  c->open = false;
  c->blocked = false;
  c->confirm_active = false;
  memset(c->side_open, 0, sizeof c->side_open);
  pend_settle_all(c, WR_ECLOSED);
  dq_clear(c);
  c->tag_base = c->tag_last;
  for (size_t i = 0; i < c->n_consumers; i++) {
    c->consumers[i]->active = false;
    c->consumers[i]->tag[0] = '\0';
  }
}

static int lib_fail(wr_conn *c, int status, const char *what, wr_err *err) {
  int code = status == AMQP_STATUS_TIMEOUT ? WR_ETIMEDOUT
             : status_is_tls(status)       ? WR_ETLS
                                           : WR_ECLOSED;
  wr_err_set(err, code, "%s: %s (%s); connection closed", what, amqp_error_string2(status),
             c->url_shown);
  conn_drop(c);
  return code;
}

static int overrun_fail(wr_conn *c, const char *what, wr_err *err) {
  wr_err_set(err, WR_ETIMEDOUT,
             "%s: the broker did not read or answer for %u ms (resource alarm or dead peer; %s); "
             "connection closed",
             what, c->rpc_timeout_ms, c->url_shown);
  conn_drop(c);
  return WR_ETIMEDOUT;
}

static int reply_code_to_wr(uint16_t code) {
  switch (code) {
  case 404: /* NOT_FOUND */
    return WR_ENOTFOUND;
  case 403: /* ACCESS_REFUSED */
  case 530: /* NOT_ALLOWED (vhost) */
    return WR_EAUTH;
  default:
    return WR_EAMQP;
  }
}

static int conn_closed_by_broker(wr_conn *c, const amqp_connection_close_t *m, const char *what,
                                 wr_err *err) {
  char text[300];
  text_copy(text, sizeof text, m->reply_text);
  uint16_t code = m->reply_code;
  amqp_connection_close_ok_t ok;
  memset(&ok, 0, sizeof ok);
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  watchdog_disarm(&c->wd);
  wr_log_warn(NULL, "amqp connection closed by the broker: %u %s (%s)", code, text, c->url_shown);
  conn_drop(c);
  wr_err_set(err, WR_ECLOSED, "%s: connection closed by the broker: %u %s (%s)", what, code, text,
             c->url_shown);
  if (err)
    err->amqp_reply = code;
  return WR_ECLOSED;
}

static int send_channel_close_ok(wr_conn *c, amqp_channel_t ch) {
  amqp_channel_close_ok_t ok;
  memset(&ok, 0, sizeof ok);
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  int st = amqp_send_method(c->amqp, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  bool fired = watchdog_disarm(&c->wd);
  if (fired)
    return AMQP_STATUS_TIMEOUT;
  return st;
}

static int channel_setup(wr_conn *c, bool with_consumers, wr_err *err);

/* The broker closed channel ch. Main channel: everything in flight on it is lost
 * (unsettled -> WR_ECLOSED, buffered deliveries dropped, to be redelivered), and,
 * when `reopen`, the channel is opened again with confirm mode, qos and consumers, so
 * the connection stays usable. Returns the verdict as a WR_E* code. */
static int channel_closed(wr_conn *c, amqp_channel_t ch, const amqp_channel_close_t *m, bool reopen,
                          const char *what, wr_err *err) {
  char text[300];
  text_copy(text, sizeof text, m->reply_text);
  uint16_t code = m->reply_code;
  int st = send_channel_close_ok(c, ch);
  if (st != AMQP_STATUS_OK)
    return lib_fail(c, st, "channel.close-ok", err);
  if (ch < sizeof c->side_open)
    c->side_open[ch] = false;
  if (ch == MAIN) {
    c->confirm_active = false;
    pend_settle_all(c, WR_ECLOSED);
    dq_clear(c);
    c->tag_base = c->tag_last;
    for (size_t i = 0; i < c->n_consumers; i++) {
      c->consumers[i]->active = false;
      c->consumers[i]->tag[0] = '\0';
    }
    if (reopen) {
      int rc = channel_setup(c, true, err);
      if (rc != 0)
        return rc;
    }
  }
  int wr = reply_code_to_wr(code);
  wr_err_set(err, wr, "%s: %u %s", what, code, text);
  if (err)
    err->amqp_reply = code;
  return wr;
}

/* rpc reply -> 0 or WR_E*. */
static int check(wr_conn *c, amqp_channel_t ch, amqp_rpc_reply_t r, const char *what, bool reopen,
                 wr_err *err) {
  switch (r.reply_type) {
  case AMQP_RESPONSE_NORMAL:
    return 0;
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    return lib_fail(c, r.library_error, what, err);
  case AMQP_RESPONSE_SERVER_EXCEPTION:
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD && r.reply.decoded)
      return conn_closed_by_broker(c, r.reply.decoded, what, err);
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD && r.reply.decoded)
      return channel_closed(c, ch, r.reply.decoded, reopen, what, err);
    return wr_err_set(err, WR_EAMQP, "%s: unexpected reply method 0x%08x", what,
                      (unsigned)r.reply.id);
  case AMQP_RESPONSE_NONE:
  default:
    return wr_err_set(err, WR_EINVAL, "%s: no rpc reply to check", what);
  }
}

static amqp_rpc_reply_t rpc(wr_conn *c, amqp_channel_t ch, amqp_method_number_t req,
                            amqp_method_number_t rep, void *decoded) {
  amqp_method_number_t replies[2] = {rep, 0};
  return amqp_simple_rpc(c->amqp, ch, req, replies, decoded);
}

/* ---- channel and consumers ----------------------------------------------------- */

#define CONSUMERS_RESTART 1 /* internal: a consumer was dropped, channel 1 closed */

static void consumer_free(consumer *k) {
  if (!k)
    return;
  free(k->queue);
  empty_amqp_pool(&k->pool);
  free(k);
}

static void consumer_remove(wr_conn *c, size_t i) {
  consumer_free(c->consumers[i]);
  memmove(c->consumers + i, c->consumers + i + 1, (c->n_consumers - i - 1) * sizeof *c->consumers);
  c->n_consumers--;
}

static void note_stop(wr_conn *c, const char *queue, const char *why) {
  c->stops++;
  snprintf(c->stop_msg, sizeof c->stop_msg,
           "consumer on queue '%s' was cancelled by the broker and cannot be restarted: %s", queue,
           why);
  wr_log_warn(NULL, "%s", c->stop_msg);
}

/* basic.qos + basic.consume for one consumer. Does not reopen the channel on a
 * broker error (the caller decides). */
static int consumer_start(wr_conn *c, consumer *k, wr_err *err) {
  char what[320];
  amqp_basic_qos_t q;
  memset(&q, 0, sizeof q);
  q.prefetch_count = k->prefetch;
  q.global = 0; /* per consumer: quorum queues refuse global qos (540) */
  snprintf(what, sizeof what, "basic.qos(%u) for queue '%s'", (unsigned)k->prefetch, k->queue);
  int rc = check(c, MAIN, rpc(c, MAIN, AMQP_BASIC_QOS_METHOD, AMQP_BASIC_QOS_OK_METHOD, &q), what,
                 false, err);
  if (rc != 0)
    return rc;
  amqp_basic_consume_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(k->queue);
  /* The tag is the queue name (one consumer per queue on a wr_conn), so a delivery
   * names the queue it came from: a consumer of several queues (partitions) needs it,
   * and it stays readable for deliveries buffered before a cancel. */
  m.consumer_tag = cbytes(k->queue);
  m.no_local = 0;
  m.no_ack = 0;
  m.exclusive = k->exclusive;
  m.nowait = 0;
  m.arguments = k->args;
  snprintf(what, sizeof what, "basic.consume on queue '%s'", k->queue);
  amqp_rpc_reply_t r = rpc(c, MAIN, AMQP_BASIC_CONSUME_METHOD, AMQP_BASIC_CONSUME_OK_METHOD, &m);
  rc = check(c, MAIN, r, what, false, err);
  if (rc != 0)
    return rc;
  amqp_basic_consume_ok_t *ok = r.reply.decoded;
  text_copy(k->tag, sizeof k->tag, ok->consumer_tag);
  k->active = true;
  return 0;
}

/* Starts every inactive consumer. A consumer whose queue is gone (404) is dropped and
 * reported through wr_conn_next_delivery (WR_ESTOPPED); since the broker closed
 * channel 1 for it, CONSUMERS_RESTART tells the caller to set the channel up again. */
static int consumers_start(wr_conn *c, wr_err *err) {
  for (size_t i = 0; i < c->n_consumers; i++) {
    consumer *k = c->consumers[i];
    if (k->active)
      continue;
    wr_err e2;
    wr_err_clear(&e2);
    int rc = consumer_start(c, k, &e2);
    if (rc == 0)
      continue;
    if (err)
      *err = e2;
    if (!c->open)
      return rc;
    if (rc == WR_ENOTFOUND) {
      note_stop(c, k->queue, e2.msg);
      consumer_remove(c, i);
      return CONSUMERS_RESTART;
    }
    /* Any other refusal (exclusive use, access) leaves channel 1 closed: the
     * connection is no good to the caller, who reconnects. */
    conn_drop(c);
    return rc;
  }
  return 0;
}

/* Opens channel 1, restores confirm mode and (optionally) the consumers. Each
 * (re)open moves the public number bases past everything handed out. */
static int channel_setup(wr_conn *c, bool with_consumers, wr_err *err) {
  for (size_t round = 0; round <= c->n_consumers + 1; round++) {
    amqp_channel_open_t o;
    memset(&o, 0, sizeof o);
    o.out_of_band = amqp_empty_bytes;
    int rc = check(c, MAIN, rpc(c, MAIN, AMQP_CHANNEL_OPEN_METHOD, AMQP_CHANNEL_OPEN_OK_METHOD, &o),
                   "channel.open", false, err);
    if (rc != 0) {
      if (c->open)
        conn_drop(c);
      return rc;
    }
    c->seq_base = c->seq_last;
    c->tag_base = c->tag_last;
    c->confirm_active = false;
    c->generation++;
    if (c->want_confirm) {
      amqp_confirm_select_t s;
      memset(&s, 0, sizeof s);
      rc = check(c, MAIN,
                 rpc(c, MAIN, AMQP_CONFIRM_SELECT_METHOD, AMQP_CONFIRM_SELECT_OK_METHOD, &s),
                 "confirm.select", false, err);
      if (rc != 0) {
        if (c->open)
          conn_drop(c);
        return rc;
      }
      c->confirm_active = true;
    }
    if (!with_consumers)
      return 0;
    rc = consumers_start(c, err);
    if (rc == CONSUMERS_RESTART)
      continue;
    return rc;
  }
  conn_drop(c);
  return wr_err_set(err, WR_EAMQP, "channel.open: consumers could not be restored");
}

/* ---- frames -------------------------------------------------------------------- */

static int on_return(wr_conn *c, amqp_channel_t ch, const amqp_basic_return_t *m, wr_err *err) {
  uint64_t route = route_hash(m->exchange, m->routing_key);
  amqp_message_t msg;
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  amqp_rpc_reply_t r = amqp_read_message(c->amqp, ch, &msg, 0);
  if (watchdog_disarm(&c->wd))
    return overrun_fail(c, "reading a returned message", err);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    return check(c, ch, r, "reading a returned message", true, err);
  if (ch == MAIN)
    pend_mark_returned(c, &msg.properties, route);
  amqp_destroy_message(&msg);
  return 0;
}

static int on_deliver(wr_conn *c, amqp_channel_t ch, const amqp_basic_deliver_t *d, wr_err *err) {
  amqp_envelope_t e;
  memset(&e, 0, sizeof e);
  e.channel = ch;
  e.delivery_tag = d->delivery_tag;
  e.redelivered = d->redelivered;
  e.consumer_tag = amqp_bytes_malloc_dup(d->consumer_tag);
  e.exchange = amqp_bytes_malloc_dup(d->exchange);
  e.routing_key = amqp_bytes_malloc_dup(d->routing_key);
  if ((d->consumer_tag.len && !e.consumer_tag.bytes) || (d->exchange.len && !e.exchange.bytes) ||
      (d->routing_key.len && !e.routing_key.bytes)) {
    amqp_destroy_envelope(&e);
    conn_drop(c); /* the delivery cannot be kept: let the broker redeliver it */
    return wr_err_set(err, WR_ENOMEM, "buffering a delivery: out of memory; connection closed");
  }
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  amqp_rpc_reply_t r = amqp_read_message(c->amqp, ch, &e.message, 0);
  if (watchdog_disarm(&c->wd)) {
    amqp_bytes_free(e.consumer_tag);
    amqp_bytes_free(e.exchange);
    amqp_bytes_free(e.routing_key);
    return overrun_fail(c, "reading a delivery", err);
  }
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_bytes_free(e.consumer_tag);
    amqp_bytes_free(e.exchange);
    amqp_bytes_free(e.routing_key);
    return check(c, ch, r, "reading a delivery", true, err);
  }
  if (ch != MAIN) { /* nobody consumes on side channels */
    amqp_destroy_envelope(&e);
    return 0;
  }
  e.delivery_tag += c->tag_base;
  if (e.delivery_tag > c->tag_last)
    c->tag_last = e.delivery_tag;
  if (dq_push(c, &e) != 0) {
    amqp_destroy_envelope(&e);
    conn_drop(c);
    return wr_err_set(err, WR_ENOMEM, "buffering a delivery: out of memory; connection closed");
  }
  return 0;
}

static int probe_queue(wr_conn *c, const char *queue, wr_err *err);

static int on_cancel(wr_conn *c, const amqp_basic_cancel_t *m, wr_err *err) {
  size_t i;
  for (i = 0; i < c->n_consumers; i++)
    if (c->consumers[i]->active && bytes_eq(m->consumer_tag, c->consumers[i]->tag))
      break;
  if (i == c->n_consumers)
    return 0;
  consumer *k = c->consumers[i];
  k->active = false;
  k->tag[0] = '\0';
  wr_log_warn(NULL, "consumer on queue '%s' cancelled by the broker; trying to restart it",
              k->queue);
  wr_err e2;
  wr_err_clear(&e2);
  bool consume_tried = false;
  int rc = probe_queue(c, k->queue, &e2);
  if (rc == 0) {
    consume_tried = true;
    rc = consumer_start(c, k, &e2);
    if (rc == 0) {
      wr_log_info(NULL, "consumer on queue '%s' restarted", k->queue);
      return 0;
    }
  }
  if (!c->open) {
    if (err)
      *err = e2;
    return rc;
  }
  note_stop(c, k->queue, e2.msg);
  consumer_remove(c, i);
  if (consume_tried) /* basic.consume was refused: the broker closed channel 1 */
    return channel_setup(c, true, err);
  return 0;
}

/* The one frame dispatcher. Returns 0, or the code of a channel/connection failure
 * (err filled). */
static int handle_frame(wr_conn *c, const amqp_frame_t *f, wr_err *err) {
  if (f->frame_type != AMQP_FRAME_METHOD)
    return 0; /* heartbeats are consumed by rabbitmq-c; stray content is ignored */
  amqp_method_number_t id = f->payload.method.id;
  void *d = f->payload.method.decoded;
  if (f->channel == 0) {
    switch (id) {
    case AMQP_CONNECTION_BLOCKED_METHOD: {
      char why[200];
      text_copy(why, sizeof why, ((amqp_connection_blocked_t *)d)->reason);
      if (!c->blocked)
        wr_log_warn(NULL, "amqp connection blocked by the broker: %s (%s)", why, c->url_shown);
      c->blocked = true;
      return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      if (c->blocked)
        wr_log_info(NULL, "amqp connection unblocked (%s)", c->url_shown);
      c->blocked = false;
      return 0;
    case AMQP_CONNECTION_CLOSE_METHOD:
      return conn_closed_by_broker(c, d, "connection", err);
    default:
      return 0;
    }
  }
  if (f->channel != MAIN) {
    if (id == AMQP_CHANNEL_CLOSE_METHOD) {
      int st = send_channel_close_ok(c, f->channel);
      if (st != AMQP_STATUS_OK)
        return lib_fail(c, st, "channel.close-ok", err);
      if (f->channel < sizeof c->side_open)
        c->side_open[f->channel] = false;
    } else if (id == AMQP_BASIC_RETURN_METHOD) {
      return on_return(c, f->channel, d, err);
    } else if (id == AMQP_BASIC_DELIVER_METHOD) {
      return on_deliver(c, f->channel, d, err);
    }
    return 0;
  }
  switch (id) {
  case AMQP_BASIC_ACK_METHOD: {
    const amqp_basic_ack_t *a = d;
    if (a->multiple && a->delivery_tag == 0)
      pend_settle_all(c, 0);
    else
      pend_settle(c, c->seq_base + a->delivery_tag, a->multiple, 0);
    return 0;
  }
  case AMQP_BASIC_NACK_METHOD: {
    const amqp_basic_nack_t *n = d;
    if (n->multiple && n->delivery_tag == 0)
      pend_settle_all(c, WR_ENACK);
    else
      pend_settle(c, c->seq_base + n->delivery_tag, n->multiple, WR_ENACK);
    return 0;
  }
  case AMQP_BASIC_RETURN_METHOD:
    return on_return(c, MAIN, d, err);
  case AMQP_BASIC_DELIVER_METHOD:
    return on_deliver(c, MAIN, d, err);
  case AMQP_BASIC_CANCEL_METHOD:
    return on_cancel(c, d, err);
  case AMQP_CHANNEL_CLOSE_METHOD:
    return channel_closed(c, MAIN, d, true, "channel closed by the broker", err);
  default:
    return 0;
  }
}

/* Reads one frame, waiting up to timeout_ms, and dispatches it. Returns 0 (a frame was
 * handled), 1 (nothing arrived in time) or a WR_E* failure. */
static int pump_one(wr_conn *c, int64_t timeout_ms, wr_err *err) {
  amqp_frame_t f;
  struct timeval tv = ms_tv(timeout_ms);
  if (!amqp_frames_enqueued(c->amqp))
    amqp_maybe_release_buffers(c->amqp);
  int st = amqp_simple_wait_frame_noblock(c->amqp, &f, &tv);
  if (st == AMQP_STATUS_TIMEOUT)
    return 1;
  if (st != AMQP_STATUS_OK)
    return lib_fail(c, st, "reading from the broker", err);
  return handle_frame(c, &f, err);
}

/* Handles whatever has already arrived, without waiting: at most max_frames frames
 * (0 = until nothing is left in rabbitmq-c's or OpenSSL's buffers, so that poll() on
 * the socket afterwards cannot miss anything; what can arrive is bounded by prefetch
 * and the publishes in flight). */
static int pump_available(wr_conn *c, unsigned max_frames, wr_err *err) {
  for (unsigned i = 0; (max_frames == 0 || i < max_frames) && c->open; i++) {
    int rc = pump_one(c, 0, err);
    if (rc == 1)
      return 0;
    if (rc != 0)
      return rc;
  }
  return c->open ? 0 : WR_ECLOSED;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void free_urls(wr_conn *c) {
  for (size_t i = 0; i < c->n_urls; i++)
    free(c->urls[i].buf);
  free(c->urls);
  c->urls = NULL;
  c->n_urls = 0;
}

static int parse_urls(wr_conn *c, const char *list, wr_err *err) {
  size_t n = 1;
  for (const char *p = list; *p; p++)
    n += *p == ',';
  c->urls = calloc(n, sizeof *c->urls);
  if (!c->urls)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  const char *p = list;
  for (;;) {
    const char *end = strchr(p, ',');
    if (!end)
      end = p + strlen(p);
    const char *s = p, *e = end;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    char *raw = strndup(s, (size_t)(e - s));
    if (!raw)
      return wr_err_set(err, WR_ENOMEM, "out of memory");
    url_ent *u = &c->urls[c->n_urls];
    wr_redact_url(raw, u->shown, sizeof u->shown);
    if (e == s) {
      free(raw);
      return wr_err_set(err, WR_EURL, "empty URL in the list (entry %zu)", c->n_urls + 1);
    }
    u->buf = raw; /* parsed in place: info's strings point into it */
    c->n_urls++;
    amqp_default_connection_info(&u->info);
    /* rabbitmq-c fills a missing host with "localhost": refuse "amqp://" and
     * "amqp:///vhost", a configuration mistake rather than a wish for localhost. */
    const char *auth = strstr(raw, "://");
    bool no_host = !auth || auth[3] == '\0' || auth[3] == '/' || auth[3] == ':';
    if (no_host || amqp_parse_url(u->buf, &u->info) != AMQP_STATUS_OK || !u->info.host ||
        !*u->info.host)
      /* The entry is not echoed: a password with an unencoded ',' splits the list,
       * and the fragment would be part of the password. */
      return wr_err_set(err, WR_EURL,
                        "URL %zu of the list is not a valid amqp[s]://user:pass@host:port/vhost "
                        "(',' '@' '/' ':' in a user or password must be percent-encoded)",
                        c->n_urls);
    /* By the AMQP URI spec "amqp://h:5672/" names the vhost "", which RabbitMQ
     * cannot have: everybody who writes it means the default vhost. */
    static char default_vhost[] = "/";
    if (!u->info.vhost || !*u->info.vhost)
      u->info.vhost = default_vhost;
    if (u->info.ssl && !c->cacert)
      return wr_err_set(err, WR_EINVAL, "'%s' is amqps:// but no CA file is configured (cacert)",
                        u->shown);
    if (!*end)
      break;
    p = end + 1;
  }
  return 0;
}

int wr_conn_new(const wr_conn_opts *opts, wr_conn **out, wr_err *err) {
  wr_err_clear(err);
  if (!out)
    return wr_err_set(err, WR_EINVAL, "wr_conn_new: out is NULL");
  *out = NULL;
  if (!opts || !opts->urls)
    return wr_err_set(err, WR_EINVAL, "wr_conn_new: no broker URL (opts->urls)");
  if (opts->connect_timeout_ms == 0 || opts->rpc_timeout_ms == 0)
    return wr_err_set(err, WR_EINVAL,
                      "wr_conn_new: connect_timeout_ms and rpc_timeout_ms must be > 0");
  if (opts->backoff_base_ms == 0 || opts->backoff_max_ms < opts->backoff_base_ms)
    return wr_err_set(err, WR_EINVAL, "wr_conn_new: need 0 < backoff_base_ms <= backoff_max_ms");
  if (opts->heartbeat_s > 65535)
    return wr_err_set(err, WR_EINVAL, "wr_conn_new: heartbeat_s must be <= 65535");
  if ((opts->client_cert == NULL) != (opts->client_key == NULL))
    return wr_err_set(err, WR_EINVAL, "wr_conn_new: client_cert and client_key go together");
  wr_conn *c = calloc(1, sizeof *c);
  if (!c)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  c->verify_hostname = opts->verify_hostname;
  c->heartbeat_s = opts->heartbeat_s;
  c->connect_timeout_ms = opts->connect_timeout_ms;
  c->rpc_timeout_ms = opts->rpc_timeout_ms;
  c->backoff_base_ms = opts->backoff_base_ms;
  c->backoff_max_ms = opts->backoff_max_ms;
  c->cacert = dup_or_null(opts->cacert);
  c->client_cert = dup_or_null(opts->client_cert);
  c->client_key = dup_or_null(opts->client_key);
  c->connection_name = dup_or_null(opts->connection_name);
  if ((opts->cacert && !c->cacert) || (opts->client_cert && !c->client_cert) ||
      (opts->client_key && !c->client_key) || (opts->connection_name && !c->connection_name)) {
    wr_conn_free(c);
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  }
  int rc = parse_urls(c, opts->urls, err);
  if (rc != 0) {
    wr_conn_free(c);
    return rc;
  }
  snprintf(c->url_shown, sizeof c->url_shown, "%s", c->urls[0].shown);
  *out = c;
  return 0;
}

void wr_conn_close(wr_conn *c) {
  if (!c || !c->amqp)
    return;
  if (c->open && !c->blocked) {
    /* Polite close, briefly: a broker that does not answer within 2 s gets the
     * socket closed under it. A blocked broker does not read at all: skip. */
    struct timeval tv = ms_tv(c->rpc_timeout_ms < 2000 ? c->rpc_timeout_ms : 2000);
    amqp_set_rpc_timeout(c->amqp, &tv);
    amqp_connection_close(c->amqp, AMQP_REPLY_SUCCESS);
  }
  conn_drop(c);
}

void wr_conn_free(wr_conn *c) {
  if (!c)
    return;
  wr_conn_close(c);
  watchdog_stop(&c->wd);
  for (size_t i = c->ph; i < c->pn; i++)
    free(c->pv[i].message_id);
  free(c->pv);
  free(c->dq);
  free(c->scratch);
  for (size_t i = 0; i < c->n_consumers; i++)
    consumer_free(c->consumers[i]);
  free(c->consumers);
  free(c->hooks);
  free_urls(c);
  free(c->cacert);
  free(c->client_cert);
  free(c->client_key);
  free(c->connection_name);
  free(c);
}

int wr_conn_on_open(wr_conn *c, wr_conn_open_fn fn, void *user) {
  if (!c || !fn)
    return WR_EINVAL;
  if (c->n_hooks == c->cap_hooks) {
    size_t ncap = c->cap_hooks ? c->cap_hooks * 2 : 4;
    hook *nh = realloc(c->hooks, ncap * sizeof *nh);
    if (!nh)
      return WR_ENOMEM;
    c->hooks = nh;
    c->cap_hooks = ncap;
  }
  c->hooks[c->n_hooks].fn = fn;
  c->hooks[c->n_hooks].user = user;
  c->n_hooks++;
  return 0;
}

static amqp_table_entry_t bool_entry(const char *key, bool v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e.value.value.boolean = v;
  return e;
}

static amqp_table_entry_t str_entry(const char *key, const char *v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(v);
  return e;
}

static int login_fail(wr_conn *c, amqp_rpc_reply_t r, const url_ent *u, wr_err *err) {
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CONNECTION_CLOSE_METHOD && r.reply.decoded) {
    const amqp_connection_close_t *m = r.reply.decoded;
    char text[300];
    text_copy(text, sizeof text, m->reply_text);
    int code = reply_code_to_wr(m->reply_code);
    if (code == WR_ENOTFOUND)
      code = WR_EAMQP;
    wr_err_set(err, code, "login to %s refused: %u %s", u->shown, m->reply_code, text);
    if (err)
      err->amqp_reply = m->reply_code;
    return code;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    int st = r.library_error;
    if (st == AMQP_STATUS_TIMEOUT)
      return wr_err_set(err, WR_ETIMEDOUT, "login to %s: no answer within %u ms", u->shown,
                        c->connect_timeout_ms);
    if (status_is_tls(st))
      return wr_err_set(err, WR_ETLS, "login to %s: %s", u->shown, amqp_error_string2(st));
    /* RabbitMQ refuses bad credentials by closing the socket unless the client
     * advertises authentication_failure_close (we do; older brokers do not honour
     * it): a connection dropped during the handshake is an authentication failure. */
    if (st == AMQP_STATUS_CONNECTION_CLOSED || st == AMQP_STATUS_SOCKET_CLOSED ||
        st == AMQP_STATUS_SOCKET_ERROR)
      return wr_err_set(err, WR_EAUTH,
                        "login to %s refused (connection closed during the "
                        "handshake: wrong user/password or vhost?): %s",
                        u->shown, amqp_error_string2(st));
    return wr_err_set(err, WR_ECLOSED, "login to %s: %s", u->shown, amqp_error_string2(st));
  }
  return wr_err_set(err, WR_EAMQP, "login to %s: unexpected reply", u->shown);
}

/* One attempt on one URL: socket (+TLS), login, channel. */
static int open_url(wr_conn *c, const url_ent *u, wr_err *err) {
  amqp_connection_state_t a = amqp_new_connection();
  if (!a)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  amqp_socket_t *s;
  if (u->info.ssl) {
    s = amqp_ssl_socket_new(a);
    if (!s) {
      amqp_destroy_connection(a);
      return wr_err_set(err, WR_ETLS, "%s: cannot create a TLS socket", u->shown);
    }
    int st = amqp_ssl_socket_set_cacert(s, c->cacert);
    if (st != AMQP_STATUS_OK) {
      amqp_destroy_connection(a);
      return wr_err_set(err, WR_ETLS, "%s: cannot load CA file '%s': %s", u->shown, c->cacert,
                        amqp_error_string2(st));
    }
    if (c->client_cert) {
      st = amqp_ssl_socket_set_key(s, c->client_cert, c->client_key);
      if (st != AMQP_STATUS_OK) {
        amqp_destroy_connection(a);
        return wr_err_set(err, WR_ETLS, "%s: cannot load client certificate '%s' / key '%s': %s",
                          u->shown, c->client_cert, c->client_key, amqp_error_string2(st));
      }
    }
    amqp_ssl_socket_set_verify_peer(s, 1);
    amqp_ssl_socket_set_verify_hostname(s, c->verify_hostname ? 1 : 0);
  } else {
    s = amqp_tcp_socket_new(a);
    if (!s) {
      amqp_destroy_connection(a);
      return wr_err_set(err, WR_ENOMEM, "%s: cannot create a socket", u->shown);
    }
  }
  struct timeval ctv = ms_tv(c->connect_timeout_ms);
  errno = 0;
  int st = amqp_socket_open_noblock(s, u->info.host, u->info.port, &ctv);
  if (st != AMQP_STATUS_OK) {
    int saved = errno; /* the socket error behind AMQP_STATUS_SOCKET_ERROR */
    amqp_destroy_connection(a);
    int code = st == AMQP_STATUS_TIMEOUT ? WR_ETIMEDOUT : status_is_tls(st) ? WR_ETLS : WR_EIO;
    if (st == AMQP_STATUS_SOCKET_ERROR && saved != 0)
      return wr_err_set(err, code, "connect to %s: %s (%s)", u->shown, amqp_error_string2(st),
                        strerror(saved));
    return wr_err_set(err, code, "connect to %s: %s", u->shown, amqp_error_string2(st));
  }
  amqp_set_handshake_timeout(a, &ctv);
  struct timeval rtv = ms_tv(c->rpc_timeout_ms);
  amqp_set_rpc_timeout(a, &rtv);

  amqp_table_entry_t caps[6] = {
      bool_entry("publisher_confirms", true),
      bool_entry("basic.nack", true),
      bool_entry("consumer_cancel_notify", true),
      bool_entry("connection.blocked", true),
      bool_entry("authentication_failure_close", true),
      bool_entry("exchange_exchange_bindings", true),
  };
  amqp_table_entry_t props[5];
  int np = 0;
  props[np++] = str_entry("product", "warren");
  props[np++] = str_entry("version", WR_VERSION_STRING);
  props[np++] = str_entry("platform", "C (rabbitmq-c)");
  props[np].key = amqp_cstring_bytes("capabilities");
  props[np].value.kind = AMQP_FIELD_KIND_TABLE;
  props[np].value.value.table.num_entries = 6;
  props[np].value.value.table.entries = caps;
  np++;
  if (c->connection_name)
    props[np++] = str_entry("connection_name", c->connection_name);
  amqp_table_t ptab = {np, props};
  amqp_rpc_reply_t r =
      amqp_login_with_properties(a, u->info.vhost, 0, FRAME_MAX, (int)c->heartbeat_s, &ptab,
                                 AMQP_SASL_METHOD_PLAIN, u->info.user, u->info.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    int rc = login_fail(c, r, u, err);
    amqp_destroy_connection(a);
    return rc;
  }
  c->amqp = a;
  c->open = true;
  c->blocked = false;
  snprintf(c->url_shown, sizeof c->url_shown, "%s", u->shown);
  return 0;
}

int wr_conn_open(wr_conn *c, wr_err *err) {
  wr_err_clear(err);
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_conn_open: c is NULL");
  if (c->amqp)
    wr_conn_close(c);
  int rc = watchdog_start(&c->wd);
  if (rc != 0)
    return wr_err_set(err, rc, "cannot start the connection watchdog thread");
  rc = WR_ECLOSED;
  for (size_t k = 0; k < c->n_urls; k++) {
    size_t i = (c->next_url + k) % c->n_urls;
    const url_ent *u = &c->urls[i];
    rc = open_url(c, u, err);
    if (rc != 0)
      continue; /* err keeps the last failure */
    c->next_url = (i + 1) % c->n_urls;
    rc = channel_setup(c, false, err);
    if (rc != 0)
      return rc;
    for (size_t h = 0; h < c->n_hooks; h++) {
      rc = c->hooks[h].fn(c, c->hooks[h].user, err);
      if (rc != 0) {
        if (rc > 0)
          rc = WR_EINVAL;
        if (err && err->code == 0)
          wr_err_set(err, rc, "on-open hook %zu failed: %s", h, wr_strerror(rc));
        if (c->amqp)
          wr_conn_close(c);
        return rc;
      }
      if (!c->open)
        return wr_err_set(err, WR_ECLOSED, "on-open hook %zu closed the connection", h);
    }
    rc = consumers_start(c, err);
    if (rc == CONSUMERS_RESTART)
      rc = channel_setup(c, true, err);
    if (rc != 0)
      return rc;
    wr_err_clear(err);
    return 0;
  }
  return rc;
}

int wr_conn_reconnect(wr_conn *c, const volatile int *stop, wr_err *err) {
  wr_err_clear(err);
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_conn_reconnect: c is NULL");
  wr_conn_close(c);
  for (unsigned attempt = 0;; attempt++) {
    if (stop && *stop)
      return wr_err_set(err, WR_ESTOPPED, "reconnect stopped");
    wr_err e2;
    int rc = wr_conn_open(c, &e2);
    if (rc == 0) {
      if (attempt > 0)
        wr_log_info(NULL, "amqp reconnected to %s after %u failed attempt(s)", c->url_shown,
                    attempt);
      wr_err_clear(err);
      return 0;
    }
    unsigned delay = wr_backoff_ms(attempt, c->backoff_base_ms, c->backoff_max_ms);
    wr_log_warn(NULL, "amqp connect failed (attempt %u): %s; retrying in %u ms", attempt + 1,
                e2.msg, delay);
    if (err)
      *err = e2;
    if (wr_sleep_ms(delay, stop) != 0)
      return wr_err_set(err, WR_ESTOPPED, "reconnect stopped (last failure: %s)", e2.msg);
  }
}

bool wr_conn_is_open(const wr_conn *c) {
  return c && c->open;
}
bool wr_conn_is_blocked(const wr_conn *c) {
  return c && c->open && c->blocked;
}
const char *wr_conn_url(const wr_conn *c) {
  return c ? c->url_shown : "";
}
amqp_connection_state_t wr_conn_amqp(wr_conn *c) {
  return c ? c->amqp : NULL;
}
amqp_channel_t wr_conn_channel(const wr_conn *c) {
  return MAIN;
}
uint64_t wr_conn_generation(const wr_conn *c) {
  return c ? c->generation : 0;
}
size_t wr_conn_unconfirmed(const wr_conn *c) {
  return c ? c->n_wait : 0;
}

int wr_conn_check_reply(wr_conn *c, amqp_rpc_reply_t r, const char *what, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_conn_check_reply: c is NULL");
  if (r.reply_type != AMQP_RESPONSE_NORMAL && !c->open)
    return wr_err_set(err, WR_ECLOSED, "%s: connection closed", what ? what : "rpc");
  return check(c, MAIN, r, what ? what : "rpc", true, err);
}

int wr_conn_service(wr_conn *c, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_conn_service: c is NULL");
  if (!c->open)
    return wr_err_set(err, WR_ECLOSED, "connection closed (%s)", c->url_shown);
  return pump_available(c, 0, err);
}

/* ---- topology primitives ------------------------------------------------------- */

#define NEED_OPEN(c, err)                                                                          \
  do {                                                                                             \
    if (!(c)->open)                                                                                \
      return wr_err_set(err, WR_ECLOSED, "connection closed (%s)", (c)->url_shown);                \
  } while (0)

int wr_conn_declare_exchange(wr_conn *c, const wr_exchange_decl *d, wr_err *err) {
  if (!c || !d || !d->name || !*d->name || !name_ok(d->name) || !d->type || !*d->type ||
      !name_ok(d->type))
    return wr_err_set(err, WR_EINVAL, "declare exchange: name and type required (1..255 bytes)");
  NEED_OPEN(c, err);
  amqp_exchange_declare_t m;
  memset(&m, 0, sizeof m);
  m.exchange = cbytes(d->name);
  m.type = cbytes(d->type);
  m.durable = d->durable;
  m.arguments = d->arguments;
  char what[400];
  snprintf(what, sizeof what, "declare exchange '%s' (%s%s)", d->name, d->type,
           d->durable ? " durable" : "");
  return check(c, MAIN,
               rpc(c, MAIN, AMQP_EXCHANGE_DECLARE_METHOD, AMQP_EXCHANGE_DECLARE_OK_METHOD, &m),
               what, true, err);
}

static int queue_declare_on(wr_conn *c, amqp_channel_t ch, const wr_queue_decl *d, bool passive,
                            uint32_t *message_count, uint32_t *consumer_count, wr_err *err) {
  amqp_queue_declare_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(d->name);
  m.passive = passive;
  m.durable = d->durable;
  m.exclusive = d->exclusive;
  m.auto_delete = d->auto_delete;
  m.arguments = d->arguments;
  char what[400];
  snprintf(what, sizeof what, "%s queue '%s'", passive ? "check" : "declare", d->name);
  amqp_rpc_reply_t r = rpc(c, ch, AMQP_QUEUE_DECLARE_METHOD, AMQP_QUEUE_DECLARE_OK_METHOD, &m);
  int rc = check(c, ch, r, what, ch == MAIN, err);
  if (rc != 0)
    return rc;
  const amqp_queue_declare_ok_t *ok = r.reply.decoded;
  if (message_count)
    *message_count = ok->message_count;
  if (consumer_count)
    *consumer_count = ok->consumer_count;
  return 0;
}

/* Passive declares run on the probe channel: a missing queue closes that channel
 * only, never channel 1 with its consumers and unconfirmed messages. */
static int passive_declare(wr_conn *c, const wr_queue_decl *d, uint32_t *message_count,
                           uint32_t *consumer_count, wr_err *err) {
  int rc = wr__conn_side_open(c, WR__CONN_PROBE_CHANNEL, err);
  if (rc != 0)
    return rc;
  rc = queue_declare_on(c, WR__CONN_PROBE_CHANNEL, d, true, message_count, consumer_count, err);
  wr__conn_side_close(c, WR__CONN_PROBE_CHANNEL); /* no-op if the broker closed it */
  return rc;
}

static int probe_queue(wr_conn *c, const char *queue, wr_err *err) {
  wr_queue_decl d;
  memset(&d, 0, sizeof d);
  d.name = queue;
  return passive_declare(c, &d, NULL, NULL, err);
}

int wr_conn_declare_queue(wr_conn *c, const wr_queue_decl *d, bool passive, uint32_t *message_count,
                          uint32_t *consumer_count, wr_err *err) {
  if (!c || !d || !d->name || !*d->name || !name_ok(d->name))
    return wr_err_set(err, WR_EINVAL, "declare queue: name required (1..255 bytes)");
  NEED_OPEN(c, err);
  if (passive)
    return passive_declare(c, d, message_count, consumer_count, err);
  return queue_declare_on(c, MAIN, d, false, message_count, consumer_count, err);
}

int wr_conn_bind_queue(wr_conn *c, const char *queue, const char *exchange, const char *routing_key,
                       amqp_table_t arguments, wr_err *err) {
  if (!c || !queue || !*queue || !name_ok(queue) || !exchange || !name_ok(exchange) ||
      !name_ok(routing_key ? routing_key : ""))
    return wr_err_set(err, WR_EINVAL, "bind queue: queue and exchange required (<= 255 bytes)");
  NEED_OPEN(c, err);
  amqp_queue_bind_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(queue);
  m.exchange = cbytes(exchange);
  m.routing_key = cbytes(routing_key);
  m.arguments = arguments;
  char what[800];
  snprintf(what, sizeof what, "bind queue '%s' to exchange '%s' with key '%s'", queue, exchange,
           routing_key ? routing_key : "");
  return check(c, MAIN, rpc(c, MAIN, AMQP_QUEUE_BIND_METHOD, AMQP_QUEUE_BIND_OK_METHOD, &m), what,
               true, err);
}

int wr_conn_bind_exchange(wr_conn *c, const char *destination, const char *source,
                          const char *routing_key, amqp_table_t arguments, wr_err *err) {
  if (!c || !destination || !*destination || !name_ok(destination) || !source || !*source ||
      !name_ok(source) || !name_ok(routing_key ? routing_key : ""))
    return wr_err_set(err, WR_EINVAL,
                      "bind exchange: destination and source required (1..255 bytes)");
  NEED_OPEN(c, err);
  amqp_exchange_bind_t m;
  memset(&m, 0, sizeof m);
  m.destination = cbytes(destination);
  m.source = cbytes(source);
  m.routing_key = cbytes(routing_key);
  m.arguments = arguments;
  char what[800];
  snprintf(what, sizeof what, "bind exchange '%s' to exchange '%s' with key '%s'", destination,
           source, routing_key ? routing_key : "");
  return check(c, MAIN, rpc(c, MAIN, AMQP_EXCHANGE_BIND_METHOD, AMQP_EXCHANGE_BIND_OK_METHOD, &m),
               what, true, err);
}

int wr_conn_delete_queue(wr_conn *c, const char *queue, wr_err *err) {
  if (!c || !queue || !*queue || !name_ok(queue))
    return wr_err_set(err, WR_EINVAL, "delete queue: name required (1..255 bytes)");
  NEED_OPEN(c, err);
  amqp_queue_delete_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(queue);
  char what[300];
  snprintf(what, sizeof what, "delete queue '%s'", queue);
  return check(c, MAIN, rpc(c, MAIN, AMQP_QUEUE_DELETE_METHOD, AMQP_QUEUE_DELETE_OK_METHOD, &m),
               what, true, err);
}

int wr_conn_purge_queue(wr_conn *c, const char *queue, uint32_t *purged, wr_err *err) {
  if (!c || !queue || !*queue || !name_ok(queue))
    return wr_err_set(err, WR_EINVAL, "purge queue: name required (1..255 bytes)");
  NEED_OPEN(c, err);
  amqp_queue_purge_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(queue);
  char what[300];
  snprintf(what, sizeof what, "purge queue '%s'", queue);
  amqp_rpc_reply_t r = rpc(c, MAIN, AMQP_QUEUE_PURGE_METHOD, AMQP_QUEUE_PURGE_OK_METHOD, &m);
  int rc = check(c, MAIN, r, what, true, err);
  if (rc != 0)
    return rc;
  if (purged)
    *purged = ((const amqp_queue_purge_ok_t *)r.reply.decoded)->message_count;
  return 0;
}

/* ---- publishing ---------------------------------------------------------------- */

int wr_conn_confirm_mode(wr_conn *c, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wr_conn_confirm_mode: c is NULL");
  c->want_confirm = true;
  if (!c->open || c->confirm_active)
    return 0;
  amqp_confirm_select_t s;
  memset(&s, 0, sizeof s);
  int rc =
      check(c, MAIN, rpc(c, MAIN, AMQP_CONFIRM_SELECT_METHOD, AMQP_CONFIRM_SELECT_OK_METHOD, &s),
            "confirm.select", true, err);
  if (rc != 0)
    return rc;
  c->seq_base = c->seq_last;
  c->confirm_active = true;
  return 0;
}

/* rabbitmq-c sends the basic.publish method frame before it encodes the content
 * header: a property that cannot be encoded would leave the broker with half a
 * message and the connection would have to die. Everything is checked first. */
static int validate_props(wr_conn *c, const amqp_basic_properties_t *pr, wr_err *err) {
  static const struct {
    amqp_flags_t flag;
    size_t off;
    const char *name;
  } shortstrs[] = {
      {AMQP_BASIC_CONTENT_TYPE_FLAG, offsetof(amqp_basic_properties_t, content_type),
       "content_type"},
      {AMQP_BASIC_CONTENT_ENCODING_FLAG, offsetof(amqp_basic_properties_t, content_encoding),
       "content_encoding"},
      {AMQP_BASIC_CORRELATION_ID_FLAG, offsetof(amqp_basic_properties_t, correlation_id),
       "correlation_id"},
      {AMQP_BASIC_REPLY_TO_FLAG, offsetof(amqp_basic_properties_t, reply_to), "reply_to"},
      {AMQP_BASIC_EXPIRATION_FLAG, offsetof(amqp_basic_properties_t, expiration), "expiration"},
      {AMQP_BASIC_MESSAGE_ID_FLAG, offsetof(amqp_basic_properties_t, message_id), "message_id"},
      {AMQP_BASIC_TYPE_FLAG, offsetof(amqp_basic_properties_t, type), "type"},
      {AMQP_BASIC_USER_ID_FLAG, offsetof(amqp_basic_properties_t, user_id), "user_id"},
      {AMQP_BASIC_APP_ID_FLAG, offsetof(amqp_basic_properties_t, app_id), "app_id"},
      {AMQP_BASIC_CLUSTER_ID_FLAG, offsetof(amqp_basic_properties_t, cluster_id), "cluster_id"},
  };
  for (size_t i = 0; i < sizeof shortstrs / sizeof *shortstrs; i++) {
    if (!(pr->_flags & shortstrs[i].flag))
      continue;
    const amqp_bytes_t *b = (const amqp_bytes_t *)((const char *)pr + shortstrs[i].off);
    if (b->len > 255 || (b->len > 0 && !b->bytes))
      return wr_err_set(err, WR_EINVAL, "publish: property %s must be 0..255 bytes",
                        shortstrs[i].name);
  }
  if (!(pr->_flags & AMQP_BASIC_HEADERS_FLAG))
    return 0;
  if (pr->headers.num_entries < 0 || (pr->headers.num_entries > 0 && !pr->headers.entries))
    return wr_err_set(err, WR_EINVAL, "publish: malformed headers table");
  if (pr->headers.num_entries == 0)
    return 0;
  /* The whole content header must fit in one frame: leave room for the other
   * properties (10 short strings at most) and the frame overhead. */
  size_t room = FRAME_MAX - 8 - 14 - 10 * 256 - 64;
  if (!c->scratch) {
    c->scratch = malloc(room);
    if (!c->scratch)
      return wr_err_set(err, WR_ENOMEM, "out of memory");
  }
  amqp_bytes_t buf = {room, c->scratch};
  size_t off = 0;
  amqp_table_t h = pr->headers;
  int st = amqp_encode_table(buf, &h, &off);
  if (st == AMQP_STATUS_TABLE_TOO_BIG)
    return wr_err_set(err, WR_ETOOBIG, "publish: headers do not fit in one %d-byte frame",
                      FRAME_MAX);
  if (st != AMQP_STATUS_OK)
    return wr_err_set(err, WR_EINVAL, "publish: headers cannot be encoded: %s",
                      amqp_error_string2(st));
  return 0;
}

static int validate_publish(wr_conn *c, const wr_publish *p, wr_err *err) {
  if (!p || !p->exchange || !p->routing_key)
    return wr_err_set(err, WR_EINVAL, "publish: exchange and routing_key required (\"\" allowed)");
  if (!name_ok(p->exchange) || !name_ok(p->routing_key))
    return wr_err_set(err, WR_EINVAL, "publish: exchange and routing key must be <= 255 bytes");
  if (p->len > 0 && !p->body)
    return wr_err_set(err, WR_EINVAL, "publish: body is NULL but len > 0");
  return p->props ? validate_props(c, p->props, err) : 0;
}

static int publish_raw(wr_conn *c, amqp_channel_t ch, const wr_publish *p, wr_err *err) {
  amqp_bytes_t body = {p->len, (void *)p->body};
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  int st = amqp_basic_publish(c->amqp, ch, cbytes(p->exchange), cbytes(p->routing_key),
                              p->mandatory, 0, p->props, body);
  if (watchdog_disarm(&c->wd))
    return overrun_fail(c, "publish", err);
  if (st != AMQP_STATUS_OK)
    return lib_fail(c, st, "publish", err);
  return 0;
}

int wr_conn_publish(wr_conn *c, const wr_publish *p, uint64_t *seq, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "publish: c is NULL");
  int rc = validate_publish(c, p, err);
  if (rc != 0)
    return rc;
  NEED_OPEN(c, err);
  /* Read what the broker has sent first: a connection.blocked that has arrived turns
   * this publish into a fast WR_EBLOCKED instead of a write into a socket nobody
   * reads. */
  rc = pump_available(c, 256, err); /* bounded: publishing stays fast under a flood */
  if (rc != 0)
    return rc;
  if (c->blocked)
    return wr_err_set(err, WR_EBLOCKED,
                      "publish: connection blocked by the broker (resource alarm; %s)",
                      c->url_shown);
  if (!c->confirm_active)
    return wr_err_set(err, WR_EINVAL,
                      "publish: the channel is not in confirm mode (wr_conn_confirm_mode)");
  /* Reserve the bookkeeping first so an ENOMEM cannot leave a sent message untracked. */
  uint64_t s = c->seq_last + 1;
  rc = pend_push(c, s, p->props, p);
  if (rc != 0)
    return wr_err_set(err, rc, "publish: out of memory");
  rc = publish_raw(c, MAIN, p, err);
  if (rc != 0) {
    /* The connection is gone and the caller gets the failure here: withdraw the
     * reserved entry (the last one) so it is not reported a second time. */
    c->pn--;
    free(c->pv[c->pn].message_id);
    c->pv[c->pn].message_id = NULL;
    return rc;
  }
  c->seq_last = s;
  if (seq)
    *seq = s;
  return 0;
}

int wr_conn_wait_confirms(wr_conn *c, uint64_t upto, unsigned timeout_ms, wr_confirm_fn fn,
                          void *user, wr_err *err) {
  if (!c)
    return wr_err_set(err, WR_EINVAL, "wait_confirms: c is NULL");
  int64_t deadline = now_ms() + timeout_ms;
  int rc = 0;
  for (;;) {
    pend_report(c, fn, user);
    if (rc != 0)
      return rc;
    if (!c->open)
      return wr_err_set(err, WR_ECLOSED,
                        "connection closed (%s): unconfirmed messages reported WR_ECLOSED",
                        c->url_shown);
    if (pend_done_upto(c, upto))
      return 0;
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      return wr_err_set(err, WR_ETIMEDOUT,
                        "publisher confirms: %zu message(s) unsettled after %u ms%s", c->n_wait,
                        timeout_ms, c->blocked ? " (connection blocked by the broker)" : "");
    }
    int r = pump_one(c, left, err);
    if (r == 1)
      continue;
    rc = r; /* channel/connection failure: report what it settled, then return it */
  }
}

/* ---- consuming ----------------------------------------------------------------- */

/* basic.consume for k failed with rc while the connection stayed open: the broker
 * closed channel 1. Set it up again for the other consumers and return rc with the
 * original verdict in err. */
static int consume_failed(wr_conn *c, int rc, const wr_err *why, wr_err *err) {
  if (err)
    *err = *why;
  if (!c->open)
    return rc;
  wr_err e2;
  int rc2 = channel_setup(c, true, &e2);
  if (rc2 != 0) {
    if (err)
      *err = e2;
    return rc2;
  }
  return rc;
}

int wr_conn_consume(wr_conn *c, const char *queue, uint16_t prefetch, bool exclusive,
                    amqp_table_t arguments, wr_err *err) {
  if (!c || !queue || !*queue || !name_ok(queue))
    return wr_err_set(err, WR_EINVAL, "consume: queue name required (1..255 bytes)");
  wr_err e2;
  wr_err_clear(&e2);
  for (size_t i = 0; i < c->n_consumers; i++) {
    consumer *k = c->consumers[i];
    if (strcmp(k->queue, queue) != 0)
      continue;
    if (k->prefetch != prefetch || k->exclusive != exclusive)
      return wr_err_set(err, WR_ECONFLICT,
                        "consume: queue '%s' is already consumed with other settings", queue);
    if (!c->open || k->active)
      return 0;
    int rc = consumer_start(c, k, &e2);
    if (rc == 0)
      return 0;
    consumer_remove(c, i);
    return consume_failed(c, rc, &e2, err);
  }
  if (c->n_consumers == c->cap_consumers) {
    size_t ncap = c->cap_consumers ? c->cap_consumers * 2 : 4;
    consumer **nv = realloc(c->consumers, ncap * sizeof *nv);
    if (!nv)
      return wr_err_set(err, WR_ENOMEM, "out of memory");
    c->consumers = nv;
    c->cap_consumers = ncap;
  }
  consumer *k = calloc(1, sizeof *k);
  if (!k)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  init_amqp_pool(&k->pool, 1024);
  k->queue = strdup(queue);
  k->prefetch = prefetch;
  k->exclusive = exclusive;
  if (!k->queue || amqp_table_clone(&arguments, &k->args, &k->pool) != AMQP_STATUS_OK) {
    consumer_free(k);
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  }
  if (c->open) {
    int rc = consumer_start(c, k, &e2);
    if (rc != 0) {
      consumer_free(k);
      return consume_failed(c, rc, &e2, err);
    }
  }
  c->consumers[c->n_consumers++] = k;
  return 0;
}

int wr_conn_cancel(wr_conn *c, const char *queue, wr_err *err) {
  if (!c || !queue)
    return wr_err_set(err, WR_EINVAL, "cancel: queue name required");
  size_t i;
  for (i = 0; i < c->n_consumers; i++)
    if (strcmp(c->consumers[i]->queue, queue) == 0)
      break;
  if (i == c->n_consumers)
    return wr_err_set(err, WR_ENOTFOUND, "cancel: queue '%s' is not consumed", queue);
  consumer *k = c->consumers[i];
  bool active = c->open && k->active;
  char tag[sizeof k->tag];
  memcpy(tag, k->tag, sizeof tag);
  /* Forgotten first: whatever happens on the wire, it is not restarted later. */
  consumer_remove(c, i);
  if (!active)
    return 0;
  amqp_basic_cancel_t m;
  memset(&m, 0, sizeof m);
  m.consumer_tag = amqp_cstring_bytes(tag);
  m.nowait = 0;
  char what[320];
  snprintf(what, sizeof what, "basic.cancel on queue '%s'", queue);
  /* Deliveries that arrive before the cancel-ok are queued by rabbitmq-c and buffered
   * by the next read as usual. A channel close here reopens the channel (which ends
   * the consumer anyway). */
  return check(c, MAIN, rpc(c, MAIN, AMQP_BASIC_CANCEL_METHOD, AMQP_BASIC_CANCEL_OK_METHOD, &m),
               what, true, err);
}

int wr_conn_next_delivery(wr_conn *c, unsigned timeout_ms, amqp_envelope_t *env, wr_err *err) {
  if (!c || !env)
    return wr_err_set(err, WR_EINVAL, "next_delivery: c and env required");
  memset(env, 0, sizeof *env);
  if (dq_pop(c, env))
    return 0;
  if (c->stops > 0) {
    c->stops--;
    return wr_err_set(err, WR_ESTOPPED, "%s", c->stop_msg);
  }
  if (!c->open)
    return wr_err_set(err, WR_ECLOSED, "connection closed (%s)", c->url_shown);
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline - now_ms();
    struct timeval tv = ms_tv(left);
    if (!amqp_frames_enqueued(c->amqp))
      amqp_maybe_release_buffers(c->amqp);
    /* The wait for the first frame is bounded by tv; the content frames that follow
     * a basic.deliver are read without a deadline by rabbitmq-c, hence the watchdog. */
    watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp),
                 (int64_t)c->rpc_timeout_ms + (left > 0 ? left : 0));
    amqp_rpc_reply_t r = amqp_consume_message(c->amqp, env, &tv, 0);
    if (watchdog_disarm(&c->wd)) {
      if (r.reply_type == AMQP_RESPONSE_NORMAL)
        amqp_destroy_envelope(env);
      memset(env, 0, sizeof *env);
      return overrun_fail(c, "reading a delivery", err);
    }
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      if (env->channel != MAIN) {
        amqp_destroy_envelope(env);
        memset(env, 0, sizeof *env);
        continue;
      }
      env->delivery_tag += c->tag_base;
      if (env->delivery_tag > c->tag_last)
        c->tag_last = env->delivery_tag;
      return 0;
    }
    memset(env, 0, sizeof *env);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
      if (r.library_error == AMQP_STATUS_TIMEOUT)
        return wr_err_set(err, WR_ETIMEDOUT, "no delivery within %u ms", timeout_ms);
      if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* Not a delivery: rabbitmq-c put the frame back; take it and dispatch it. */
        amqp_frame_t f;
        int st = amqp_simple_wait_frame(c->amqp, &f);
        if (st != AMQP_STATUS_OK)
          return lib_fail(c, st, "reading from the broker", err);
        int rc = handle_frame(c, &f, err);
        if (rc != 0)
          return rc;
        if (dq_pop(c, env))
          return 0;
        if (c->stops > 0) {
          c->stops--;
          return wr_err_set(err, WR_ESTOPPED, "%s", c->stop_msg);
        }
        if (deadline - now_ms() <= 0 && timeout_ms > 0)
          return wr_err_set(err, WR_ETIMEDOUT, "no delivery within %u ms", timeout_ms);
        continue;
      }
      return lib_fail(c, r.library_error, "waiting for a delivery", err);
    }
    return check(c, MAIN, r, "waiting for a delivery", true, err);
  }
}

static int settle_delivery(wr_conn *c, uint64_t tag, const char *what, wr_err *err) {
  if (tag == 0)
    return wr_err_set(err, WR_EINVAL, "%s: delivery tag 0", what);
  if (tag <= c->tag_base)
    return wr_err_set(err, WR_ESTATE,
                      "%s: delivery tag %llu is from before the last reconnect or channel reopen "
                      "(the broker has requeued that message)",
                      what, (unsigned long long)tag);
  if (tag > c->tag_last)
    return wr_err_set(err, WR_EINVAL, "%s: unknown delivery tag %llu", what,
                      (unsigned long long)tag);
  NEED_OPEN(c, err);
  return 0;
}

/* Acks (flag = multiple) or rejects (flag = requeue) one delivery on the wire. */
static int settle(wr_conn *c, uint64_t delivery_tag, bool ack, bool flag, wr_err *err) {
  const char *what = ack ? "ack" : "reject";
  if (!c)
    return wr_err_set(err, WR_EINVAL, "%s: c is NULL", what);
  int rc = settle_delivery(c, delivery_tag, what, err);
  if (rc != 0)
    return rc;
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  uint64_t wire_tag = delivery_tag - c->tag_base;
  int st = ack ? amqp_basic_ack(c->amqp, MAIN, wire_tag, flag)
               : amqp_basic_reject(c->amqp, MAIN, wire_tag, flag);
  if (watchdog_disarm(&c->wd))
    return overrun_fail(c, what, err);
  if (st != AMQP_STATUS_OK)
    return lib_fail(c, st, what, err);
  return 0;
}

int wr_conn_ack(wr_conn *c, uint64_t delivery_tag, bool multiple, wr_err *err) {
  return settle(c, delivery_tag, true, multiple, err);
}

int wr_conn_reject(wr_conn *c, uint64_t delivery_tag, bool requeue, wr_err *err) {
  return settle(c, delivery_tag, false, requeue, err);
}

/* basic.get on channel ch; fills env (tags raw). */
static int get_on(wr_conn *c, amqp_channel_t ch, const char *queue, amqp_envelope_t *env,
                  uint32_t *remaining, wr_err *err) {
  memset(env, 0, sizeof *env);
  amqp_basic_get_t m;
  memset(&m, 0, sizeof m);
  m.queue = cbytes(queue);
  m.no_ack = 0;
  amqp_method_number_t replies[3] = {AMQP_BASIC_GET_OK_METHOD, AMQP_BASIC_GET_EMPTY_METHOD, 0};
  if (!amqp_frames_enqueued(c->amqp))
    amqp_maybe_release_buffers(c->amqp);
  amqp_rpc_reply_t r = amqp_simple_rpc(c->amqp, ch, AMQP_BASIC_GET_METHOD, replies, &m);
  char what[300];
  snprintf(what, sizeof what, "basic.get from queue '%s'", queue);
  int rc = check(c, ch, r, what, ch == MAIN, err);
  if (rc != 0)
    return rc;
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
    return wr_err_set(err, WR_ENOTFOUND, "queue '%s' is empty", queue);
  const amqp_basic_get_ok_t *ok = r.reply.decoded;
  env->channel = ch;
  env->delivery_tag = ok->delivery_tag;
  env->redelivered = ok->redelivered;
  if (remaining)
    *remaining = ok->message_count;
  env->exchange = amqp_bytes_malloc_dup(ok->exchange);
  env->routing_key = amqp_bytes_malloc_dup(ok->routing_key);
  if ((ok->exchange.len && !env->exchange.bytes) ||
      (ok->routing_key.len && !env->routing_key.bytes)) {
    amqp_destroy_envelope(env);
    memset(env, 0, sizeof *env);
    conn_drop(c);
    return wr_err_set(err, WR_ENOMEM, "basic.get: out of memory; connection closed");
  }
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  r = amqp_read_message(c->amqp, ch, &env->message, 0);
  bool fired = watchdog_disarm(&c->wd);
  if (fired || r.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_bytes_free(env->exchange);
    amqp_bytes_free(env->routing_key);
    memset(env, 0, sizeof *env);
    if (fired)
      return overrun_fail(c, what, err);
    return check(c, ch, r, what, ch == MAIN, err);
  }
  return 0;
}

int wr_conn_get(wr_conn *c, const char *queue, amqp_envelope_t *env, wr_err *err) {
  if (!c || !env || !queue || !*queue || !name_ok(queue))
    return wr_err_set(err, WR_EINVAL, "get: queue name (1..255 bytes) and env required");
  memset(env, 0, sizeof *env);
  NEED_OPEN(c, err);
  int rc = get_on(c, MAIN, queue, env, NULL, err);
  if (rc != 0)
    return rc;
  env->delivery_tag += c->tag_base;
  if (env->delivery_tag > c->tag_last)
    c->tag_last = env->delivery_tag;
  return 0;
}

/* ---- side channels (conn_internal.h) ------------------------------------------- */

int wr__conn_side_open(wr_conn *c, amqp_channel_t ch, wr_err *err) {
  NEED_OPEN(c, err);
  if (ch <= MAIN || ch >= sizeof c->side_open)
    return wr_err_set(err, WR_EINVAL, "side channel %u out of range", (unsigned)ch);
  if (c->side_open[ch]) /* a second channel.open would make the broker drop the connection */
    return wr_err_set(err, WR_ESTATE, "side channel %u is already in use", (unsigned)ch);
  amqp_channel_open_t o;
  memset(&o, 0, sizeof o);
  o.out_of_band = amqp_empty_bytes;
  int rc = check(c, ch, rpc(c, ch, AMQP_CHANNEL_OPEN_METHOD, AMQP_CHANNEL_OPEN_OK_METHOD, &o),
                 "channel.open (side channel)", false, err);
  if (rc == 0)
    c->side_open[ch] = true;
  return rc;
}

bool wr__conn_side_is_open(const wr_conn *c, amqp_channel_t ch) {
  return c->open && ch < sizeof c->side_open && c->side_open[ch];
}

void wr__conn_side_close(wr_conn *c, amqp_channel_t ch) {
  /* closing a channel the broker already closed would be a connection error (504) */
  if (!wr__conn_side_is_open(c, ch))
    return;
  amqp_channel_close_t m;
  memset(&m, 0, sizeof m);
  m.reply_code = AMQP_REPLY_SUCCESS;
  m.reply_text = amqp_cstring_bytes("done");
  wr_err e2;
  check(c, ch, rpc(c, ch, AMQP_CHANNEL_CLOSE_METHOD, AMQP_CHANNEL_CLOSE_OK_METHOD, &m),
        "channel.close (side channel)", false, &e2);
  if (ch < sizeof c->side_open)
    c->side_open[ch] = false;
}

int wr__conn_side_confirm(wr_conn *c, amqp_channel_t ch, wr_err *err) {
  NEED_OPEN(c, err);
  amqp_confirm_select_t s;
  memset(&s, 0, sizeof s);
  c->side_seq = 0;
  return check(c, ch, rpc(c, ch, AMQP_CONFIRM_SELECT_METHOD, AMQP_CONFIRM_SELECT_OK_METHOD, &s),
               "confirm.select (side channel)", false, err);
}

int wr__conn_side_get(wr_conn *c, amqp_channel_t ch, const char *queue, amqp_envelope_t *env,
                      uint32_t *remaining, wr_err *err) {
  NEED_OPEN(c, err);
  return get_on(c, ch, queue, env, remaining, err);
}

int wr__conn_side_ack(wr_conn *c, amqp_channel_t ch, uint64_t tag, bool multiple, wr_err *err) {
  NEED_OPEN(c, err);
  watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
  int st = amqp_basic_ack(c->amqp, ch, tag, multiple);
  if (watchdog_disarm(&c->wd))
    return overrun_fail(c, "ack (side channel)", err);
  if (st != AMQP_STATUS_OK)
    return lib_fail(c, st, "ack (side channel)", err);
  return 0;
}

int wr__conn_side_check(wr_conn *c, amqp_channel_t ch, amqp_rpc_reply_t r, const char *what,
                        wr_err *err) {
  return check(c, ch, r, what, false, err);
}

unsigned wr__conn_rpc_timeout_ms(const wr_conn *c) {
  return c->rpc_timeout_ms;
}

int wr__conn_side_publish_confirmed(wr_conn *c, amqp_channel_t ch, const wr_publish *p,
                                    unsigned timeout_ms, wr_err *err) {
  int rc = validate_publish(c, p, err);
  if (rc != 0)
    return rc;
  NEED_OPEN(c, err);
  rc = pump_available(c, 256, err);
  if (rc != 0 && !c->open)
    return rc;
  if (c->blocked)
    return wr_err_set(err, WR_EBLOCKED,
                      "publish: connection blocked by the broker (resource alarm; %s)",
                      c->url_shown);
  rc = publish_raw(c, ch, p, err);
  if (rc != 0)
    return rc;
  uint64_t want = ++c->side_seq;
  bool returned = false;
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left < 0)
      return wr_err_set(err, WR_ETIMEDOUT, "publish: no confirm within %u ms%s", timeout_ms,
                        c->blocked ? " (connection blocked by the broker)" : "");
    amqp_frame_t f;
    struct timeval tv = ms_tv(left);
    if (!amqp_frames_enqueued(c->amqp))
      amqp_maybe_release_buffers(c->amqp);
    int st = amqp_simple_wait_frame_noblock(c->amqp, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT)
      continue;
    if (st != AMQP_STATUS_OK)
      return lib_fail(c, st, "waiting for a confirm", err);
    if (f.channel != ch || f.frame_type != AMQP_FRAME_METHOD) {
      wr_err e2;
      rc = handle_frame(c, &f, &e2);
      if (rc != 0 && !c->open) {
        if (err)
          *err = e2;
        return rc;
      }
      continue;
    }
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const amqp_basic_ack_t *a = f.payload.method.decoded;
      if (a->delivery_tag == want ||
          (a->multiple && (a->delivery_tag >= want || a->delivery_tag == 0)))
        return returned ? wr_err_set(err, WR_ERETURNED,
                                     "publish to '%s' with key '%s': unroutable (returned)",
                                     p->exchange, p->routing_key)
                        : 0;
      break;
    }
    case AMQP_BASIC_NACK_METHOD: {
      const amqp_basic_nack_t *n = f.payload.method.decoded;
      if (n->delivery_tag == want ||
          (n->multiple && (n->delivery_tag >= want || n->delivery_tag == 0)))
        return wr_err_set(err, WR_ENACK, "publish to '%s' with key '%s': nacked by the broker",
                          p->exchange, p->routing_key);
      break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_message_t msg;
      watchdog_arm(&c->wd, amqp_get_sockfd(c->amqp), c->rpc_timeout_ms);
      amqp_rpc_reply_t r = amqp_read_message(c->amqp, ch, &msg, 0);
      if (watchdog_disarm(&c->wd))
        return overrun_fail(c, "reading a returned message", err);
      if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return check(c, ch, r, "reading a returned message", false, err);
      amqp_destroy_message(&msg);
      returned = true;
      break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
      return channel_closed(c, ch, f.payload.method.decoded, false, "publish", err);
    default:
      break;
    }
  }
}

/* ---- amqp_table helpers -------------------------------------------------------- */

const amqp_field_value_t *wr_table_get(const amqp_table_t *t, const char *key) {
  if (!t || !key || !t->entries || t->num_entries <= 0)
    return NULL;
  size_t kl = strlen(key);
  for (int i = 0; i < t->num_entries; i++) {
    const amqp_table_entry_t *e = &t->entries[i];
    if (e->key.len == kl && (kl == 0 || (e->key.bytes && memcmp(e->key.bytes, key, kl) == 0)))
      return &e->value;
  }
  return NULL;
}

bool wr_table_get_int(const amqp_table_t *t, const char *key, int64_t *out) {
  const amqp_field_value_t *v = wr_table_get(t, key);
  if (!v)
    return false;
  int64_t x;
  switch (v->kind) {
  case AMQP_FIELD_KIND_I8:
    x = v->value.i8;
    break;
  case AMQP_FIELD_KIND_U8:
    x = v->value.u8;
    break;
  case AMQP_FIELD_KIND_I16:
    x = v->value.i16;
    break;
  case AMQP_FIELD_KIND_U16:
    x = v->value.u16;
    break;
  case AMQP_FIELD_KIND_I32:
    x = v->value.i32;
    break;
  case AMQP_FIELD_KIND_U32:
    x = v->value.u32;
    break;
  case AMQP_FIELD_KIND_I64:
    x = v->value.i64;
    break;
  case AMQP_FIELD_KIND_U64:
    if (v->value.u64 > (uint64_t)INT64_MAX)
      return false;
    x = (int64_t)v->value.u64;
    break;
  default:
    return false;
  }
  if (out)
    *out = x;
  return true;
}

bool wr_table_get_str(const amqp_table_t *t, const char *key, char *out, size_t outsz) {
  const amqp_field_value_t *v = wr_table_get(t, key);
  if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES))
    return false;
  if (out && outsz > 0) {
    size_t n = v->value.bytes.len < outsz - 1 ? v->value.bytes.len : outsz - 1;
    if (n > 0 && v->value.bytes.bytes)
      memcpy(out, v->value.bytes.bytes, n);
    else
      n = 0;
    out[n] = '\0';
  }
  return true;
}
