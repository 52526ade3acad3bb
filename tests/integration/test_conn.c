/* test_conn.c: wr_conn against the real broker: URLs and failover, login failures,
 * TLS, publisher confirms (ack, return, missing exchange, many in flight with
 * multiple acks), deliveries interleaved with confirms, acks, consumer cancel, and
 * heartbeats serviced during long waits. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/error.h>

/* ---- helpers ----------------------------------------------------------------------- */

static wr_conn *conn_new_opts(const wr_conn_opts *o) {
  wr_conn *c = NULL;
  wr_err err;
  int rc = wr_conn_new(o, &c, &err);
  if (rc != 0)
    fail_msg("wr_conn_new: %s", err.msg);
  return c;
}

static wr_conn *conn_open_default(void) {
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  o.connection_name = "test_conn";
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  int rc = wr_conn_open(c, &err);
  if (rc != 0)
    fail_msg("wr_conn_open: %s", err.msg);
  return c;
}

/* A TCP port on localhost with nothing listening (bound, then closed). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* The first URL of WARREN_AMQP_URL with user:password replaced. */
static void url_with_creds(char *out, size_t outsz, const char *creds) {
  const char *urls = wt_require("WARREN_AMQP_URL");
  const char *at = strchr(urls, '@');
  assert_non_null(at);
  size_t n = strcspn(at, ",");
  snprintf(out, outsz, "amqp://%s%.*s", creds, (int)n, at);
}

static void declare_temp_queue(wr_conn *c, const char *q) {
  wr_queue_decl d = {.name = q,
                     .durable = false,
                     .exclusive = false,
                     .auto_delete = false,
                     .arguments = amqp_empty_table};
  wr_err err;
  int rc = wr_conn_declare_queue(c, &d, false, NULL, NULL, &err);
  if (rc != 0)
    fail_msg("declare %s: %s", q, err.msg);
}

typedef struct confirms {
  size_t n;
  size_t acked, nacked, returned, closed, other;
  uint64_t last_seq;
  bool dup;
  unsigned char seen[4096];
} confirms;

static void on_confirm(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  confirms *k = user;
  k->n++;
  if (seq < sizeof k->seen) {
    if (k->seen[seq])
      k->dup = true;
    k->seen[seq] = 1;
  }
  k->last_seq = seq;
  switch (status) {
  case 0:
    k->acked++;
    break;
  case WR_ENACK:
    k->nacked++;
    break;
  case WR_ERETURNED:
    k->returned++;
    break;
  case WR_ECLOSED:
    k->closed++;
    break;
  default:
    k->other++;
    break;
  }
}

static int publish_str(wr_conn *c, const char *exchange, const char *rk, const char *body,
                       const char *msgid, bool mandatory, uint64_t *seq, wr_err *err) {
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;
  if (msgid) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = amqp_cstring_bytes(msgid);
  }
  wr_publish p = {.exchange = exchange,
                  .routing_key = rk,
                  .body = body,
                  .len = strlen(body),
                  .props = &props,
                  .mandatory = mandatory};
  return wr_conn_publish(c, &p, seq, err);
}

/* ---- URLs, login, TLS ---------------------------------------------------------------- */

static void connect_ok(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  assert_true(wr_conn_is_open(c));
  assert_false(wr_conn_is_blocked(c));
  assert_true(wr_conn_generation(c) >= 1);
  assert_non_null(wr_conn_amqp(c));
  assert_int_equal(wr_conn_channel(c), 1);
  /* the shown URL never carries the password */
  assert_null(strstr(wr_conn_url(c), "guest:guest"));
  assert_non_null(strstr(wr_conn_url(c), "***"));
  wr_conn_close(c);
  assert_false(wr_conn_is_open(c));
  /* a closed wr_conn can be opened again */
  wr_err err;
  assert_int_equal(wr_conn_open(c, &err), 0);
  assert_true(wr_conn_is_open(c));
  wr_conn_free(c);
  wr_conn_free(NULL);
}

static void bad_urls(void **state) {
  (void)state;
  const char *bad[] = {"http://h:1/", "amqp://h:notaport/",         "",
                       " , ",         "amqp://u:secretpw@h:99999/", "amqp://h:5672,,amqp://h:5673",
                       "amqp://",     "amqp://u:secretpw,xx@h:5672"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    wr_conn_opts o = WR_CONN_OPTS_INIT;
    o.urls = bad[i];
    wr_conn *c = (wr_conn *)0x1;
    wr_err err;
    int rc = wr_conn_new(&o, &c, &err);
    if (rc != WR_EURL)
      fail_msg("URL '%s': expected WR_EURL, got %s (%s)", bad[i], wr_errname(rc), err.msg);
    assert_null(c);
    assert_int_equal(err.code, WR_EURL);
    assert_null(strstr(err.msg, "secretpw"));
  }
  /* amqps without a CA file */
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = "amqps://u:p@localhost:5671/";
  wr_conn *c = NULL;
  wr_err err;
  assert_int_equal(wr_conn_new(&o, &c, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "CA"));
  /* other invalid options */
  assert_int_equal(wr_conn_new(NULL, &c, &err), WR_EINVAL);
  o = (wr_conn_opts)WR_CONN_OPTS_INIT;
  assert_int_equal(wr_conn_new(&o, &c, &err), WR_EINVAL); /* no URL */
  o.urls = "amqp://localhost";
  o.rpc_timeout_ms = 0;
  assert_int_equal(wr_conn_new(&o, &c, &err), WR_EINVAL);
  o = (wr_conn_opts)WR_CONN_OPTS_INIT;
  o.urls = "amqp://localhost";
  o.client_cert = "/x.pem"; /* without a key */
  assert_int_equal(wr_conn_new(&o, &c, &err), WR_EINVAL);
  /* a valid list with spaces is accepted */
  o = (wr_conn_opts)WR_CONN_OPTS_INIT;
  o.urls = " amqp://a:b@h1:5672/v , amqp://h2 ,amqp://h3/%2f";
  assert_int_equal(wr_conn_new(&o, &c, &err), 0);
  wr_conn_free(c);
}

static void wrong_password(void **state) {
  (void)state;
  char url[512];
  url_with_creds(url, sizeof url, "guest:Sup3rSecretPw");
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  int rc = wr_conn_open(c, &err);
  assert_int_equal(rc, WR_EAUTH);
  assert_int_equal(err.code, WR_EAUTH);
  assert_null(strstr(err.msg, "Sup3rSecretPw"));
  assert_false(wr_conn_is_open(c));
  assert_null(strstr(wr_conn_url(c), "Sup3rSecretPw"));
  wr_conn_free(c);
}

static void unknown_vhost(void **state) {
  (void)state;
  char url[512], base[480];
  url_with_creds(base, sizeof base, "guest:guest");
  snprintf(url, sizeof url, "%s/no-such-vhost-%d", base, (int)getpid());
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  int rc = wr_conn_open(c, &err);
  assert_int_equal(rc, WR_EAUTH);
  assert_non_null(strstr(err.msg, "no-such-vhost"));
  wr_conn_free(c);
}

static void closed_port_fails_fast(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d", closed_port());
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  o.connect_timeout_ms = 30000;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  int64_t t0 = wt_now_ms();
  int rc = wr_conn_open(c, &err);
  int64_t took = wt_now_ms() - t0;
  assert_int_equal(rc, WR_EIO);
  /* refused at once, not after the 30 s connect timeout */
  assert_true(took < 20000);
  assert_false(wr_conn_is_open(c));
  wr_conn_free(c);
}

static void failover_skips_dead_first_url(void **state) {
  (void)state;
  char url[1024], good[480];
  url_with_creds(good, sizeof good, "guest:guest");
  snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d,%s", closed_port(), good);
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  assert_int_equal(wr_conn_open(c, &err), 0);
  assert_true(wr_conn_is_open(c));
  char good_port[16];
  snprintf(good_port, sizeof good_port, ":%s", strrchr(good, ':') + 1);
  assert_non_null(strstr(wr_conn_url(c), good_port));
  /* reconnect rotates through the list and still lands on the live node */
  assert_int_equal(wr_conn_reconnect(c, NULL, &err), 0);
  assert_true(wr_conn_is_open(c));
  assert_int_equal(wr_conn_reconnect(c, NULL, &err), 0);
  assert_true(wr_conn_is_open(c));
  wr_conn_free(c);

  /* every URL dead: the last failure is returned */
  snprintf(url, sizeof url, "amqp://127.0.0.1:%d,amqp://127.0.0.1:%d", closed_port(),
           closed_port());
  o.urls = url;
  c = conn_new_opts(&o);
  assert_int_equal(wr_conn_open(c, &err), WR_EIO);
  /* reconnect gives up when asked to stop */
  volatile int stop = 1;
  assert_int_equal(wr_conn_reconnect(c, &stop, &err), WR_ESTOPPED);
  wr_conn_free(c);
}

static void tls_ok(void **state) {
  (void)state;
  const char *url = wt_env("WARREN_AMQPS_URL");
  const char *ca = wt_env("WARREN_AMQP_CACERT");
  if (!url || !ca)
    skip();
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  o.cacert = ca;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  int rc = wr_conn_open(c, &err);
  if (rc != 0)
    fail_msg("TLS open: %s", err.msg);
  assert_true(wr_conn_is_open(c));
  /* the TLS connection really works: confirms round-trip */
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-tls");
  declare_temp_queue(c, q);
  uint64_t seq;
  assert_int_equal(publish_str(c, "", q, "over tls", "m1", true, &seq, &err), 0);
  confirms k;
  memset(&k, 0, sizeof k);
  assert_int_equal(wr_conn_wait_confirms(c, seq, 10000, on_confirm, &k, &err), 0);
  assert_int_equal(k.acked, 1);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);

  /* a client certificate is loaded and presented (the test broker accepts any);
   * a missing one fails as a TLS error naming the file */
  const char *dir = wt_env("WARREN_STACK_DIR");
  if (!dir)
    return;
  char cert[512], key[512];
  snprintf(cert, sizeof cert, "%s/tls/server.pem", dir);
  snprintf(key, sizeof key, "%s/tls/server.key", dir);
  o.client_cert = cert;
  o.client_key = key;
  c = conn_new_opts(&o);
  rc = wr_conn_open(c, &err);
  if (rc != 0)
    fail_msg("TLS open with a client certificate: %s", err.msg);
  wr_conn_free(c);
  o.client_key = "/nonexistent/client.key";
  c = conn_new_opts(&o);
  assert_int_equal(wr_conn_open(c, &err), WR_ETLS);
  assert_non_null(strstr(err.msg, "/nonexistent/client.key"));
  wr_conn_free(c);
}

static void tls_wrong_ca(void **state) {
  (void)state;
  const char *url = wt_env("WARREN_AMQPS_URL");
  if (!url)
    skip();
  /* a CA that did not sign the server's certificate */
  char dir[] = "/tmp/warren-ca-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[1024], ca[256];
  snprintf(ca, sizeof ca, "%s/other-ca.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=not-the-ca "
           "-keyout %s/k.pem -out %s >/dev/null 2>&1",
           dir, ca);
  assert_int_equal(system(cmd), 0);
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  o.cacert = ca;
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  assert_int_equal(wr_conn_open(c, &err), WR_ETLS);
  assert_false(wr_conn_is_open(c));
  wr_conn_free(c);

  /* a CA file that does not exist */
  o.cacert = "/nonexistent/ca.pem";
  c = conn_new_opts(&o);
  assert_int_equal(wr_conn_open(c, &err), WR_ETLS);
  assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
  wr_conn_free(c);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ---- publisher confirms ------------------------------------------------------------- */

static void publish_confirm_ack(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  char q[64];
  wt_unique(q, sizeof q, "conn-ack");
  declare_temp_queue(c, q);
  /* publishing needs confirm mode */
  assert_int_equal(publish_str(c, "", q, "x", NULL, false, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0); /* idempotent */
  uint64_t s1, s2;
  assert_int_equal(publish_str(c, "", q, "one", "id-1", true, &s1, &err), 0);
  assert_int_equal(publish_str(c, "", q, "two", "id-2", true, &s2, &err), 0);
  assert_true(s2 > s1);
  assert_true(wr_conn_unconfirmed(c) <= 2);
  confirms k;
  memset(&k, 0, sizeof k);
  assert_int_equal(wr_conn_wait_confirms(c, s2, 10000, on_confirm, &k, &err), 0);
  assert_int_equal(k.acked, 2);
  assert_int_equal(k.n, 2);
  assert_int_equal(wr_conn_unconfirmed(c), 0);
  /* nothing left: returns at once */
  assert_int_equal(wr_conn_wait_confirms(c, s2, 0, on_confirm, &k, &err), 0);
  assert_int_equal(k.n, 2);
  amqp_connection_state_t raw = wt_amqp_connect();
  assert_int_equal(wt_amqp_queue_depth(raw, q), 2);
  wt_amqp_close(raw);
  /* invalid arguments */
  wr_publish p = {.exchange = NULL, .routing_key = "x"};
  assert_int_equal(wr_conn_publish(c, &p, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_conn_publish(c, NULL, NULL, &err), WR_EINVAL);
  p = (wr_publish){.exchange = "", .routing_key = "x", .body = NULL, .len = 3};
  assert_int_equal(wr_conn_publish(c, &p, NULL, &err), WR_EINVAL);
  /* properties that cannot be encoded are refused before anything is sent: the
   * connection stays open */
  char longid[300];
  memset(longid, 'i', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  assert_int_equal(publish_str(c, "", q, "x", longid, true, NULL, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "message_id"));
  assert_true(wr_conn_is_open(c));
  size_t hl = 200 * 1024;
  char *huge = malloc(hl + 1);
  memset(huge, 'h', hl);
  huge[hl] = '\0';
  amqp_table_entry_t he;
  he.key = amqp_cstring_bytes("x-huge");
  he.value.kind = AMQP_FIELD_KIND_UTF8;
  he.value.value.bytes = amqp_cstring_bytes(huge);
  amqp_basic_properties_t hp;
  memset(&hp, 0, sizeof hp);
  hp._flags = AMQP_BASIC_HEADERS_FLAG;
  hp.headers = (amqp_table_t){1, &he};
  p = (wr_publish){.exchange = "", .routing_key = q, .body = "x", .len = 1, .props = &hp};
  assert_int_equal(wr_conn_publish(c, &p, NULL, &err), WR_ETOOBIG);
  assert_true(wr_conn_is_open(c));
  free(huge);
  he.value.kind = 0x7f; /* no such field kind */
  assert_int_equal(wr_conn_publish(c, &p, NULL, &err), WR_EINVAL);
  assert_true(wr_conn_is_open(c));
  /* and the connection still works */
  assert_int_equal(publish_str(c, "", q, "three", "id-3", true, &s2, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(c, s2, 10000, on_confirm, &k, &err), 0);
  assert_int_equal(k.acked, 3);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
}

static void mandatory_unroutable_returned(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64], nowhere[64];
  wt_unique(q, sizeof q, "conn-ret");
  wt_unique(nowhere, sizeof nowhere, "conn-nowhere");
  declare_temp_queue(c, q);
  uint64_t s1, s2, s3, s4;
  /* routable, unroutable (by message id), routable, unroutable without message id */
  assert_int_equal(publish_str(c, "", q, "a", "r-1", true, &s1, &err), 0);
  assert_int_equal(publish_str(c, "", nowhere, "b", "r-2", true, &s2, &err), 0);
  assert_int_equal(publish_str(c, "", q, "c", "r-3", true, &s3, &err), 0);
  assert_int_equal(publish_str(c, "", nowhere, "d", NULL, true, &s4, &err), 0);
  /* unroutable but not mandatory: silently acked (the broker's rule) */
  uint64_t s5;
  assert_int_equal(publish_str(c, "", nowhere, "e", "r-5", false, &s5, &err), 0);
  confirms k;
  memset(&k, 0, sizeof k);
  assert_int_equal(wr_conn_wait_confirms(c, s5, 10000, on_confirm, &k, &err), 0);
  assert_int_equal(k.n, 5);
  assert_int_equal(k.returned, 2);
  assert_int_equal(k.acked, 3);
  assert_false(k.dup);
  assert_true(k.seen[s2] && k.seen[s4]);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
}

typedef struct status_by_seq {
  uint64_t seq[8];
  int status[8];
  size_t n;
} status_by_seq;

static void record_status(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  status_by_seq *s = user;
  if (s->n < 8) {
    s->seq[s->n] = seq;
    s->status[s->n] = status;
    s->n++;
  }
}

static void publish_missing_exchange_keeps_connection(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char ex[64], q[64];
  wt_unique(ex, sizeof ex, "conn-noex");
  wt_unique(q, sizeof q, "conn-after");
  declare_temp_queue(c, q);
  uint64_t gen = wr_conn_generation(c);
  uint64_t s1;
  assert_int_equal(publish_str(c, ex, "rk", "lost", "m-1", true, &s1, &err), 0);
  status_by_seq st;
  memset(&st, 0, sizeof st);
  int rc = wr_conn_wait_confirms(c, s1, 10000, record_status, &st, &err);
  assert_int_equal(rc, WR_ENOTFOUND);
  assert_int_equal(err.amqp_reply, 404);
  assert_non_null(strstr(err.msg, ex));
  assert_int_equal(st.n, 1);
  assert_int_equal(st.seq[0], s1);
  assert_int_equal(st.status[0], WR_ECLOSED);
  /* still usable: the channel was reopened in confirm mode */
  assert_true(wr_conn_is_open(c));
  assert_true(wr_conn_generation(c) > gen);
  uint64_t s2;
  assert_int_equal(publish_str(c, "", q, "fine", "m-2", true, &s2, &err), 0);
  assert_true(s2 > s1); /* numbers never restart */
  memset(&st, 0, sizeof st);
  assert_int_equal(wr_conn_wait_confirms(c, s2, 10000, record_status, &st, &err), 0);
  assert_int_equal(st.n, 1);
  assert_int_equal(st.status[0], 0);
  /* a broker refusal of an rpc also leaves the connection usable */
  assert_int_equal(wr_conn_bind_queue(c, q, ex, "k", amqp_empty_table, &err), WR_ENOTFOUND);
  assert_int_equal(err.amqp_reply, 404);
  assert_true(wr_conn_is_open(c));
  uint32_t n = 0;
  wr_queue_decl d = {.name = q, .arguments = amqp_empty_table};
  assert_int_equal(wr_conn_declare_queue(c, &d, true, &n, NULL, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  /* passive declare of a missing queue: WR_ENOTFOUND, channel 1 untouched */
  gen = wr_conn_generation(c);
  assert_int_equal(wr_conn_declare_queue(c, &d, true, NULL, NULL, &err), WR_ENOTFOUND);
  assert_int_equal(wr_conn_generation(c), gen);
  wr_conn_free(c);
}

static void many_in_flight_multiple_acks(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-500");
  declare_temp_queue(c, q);
  uint64_t first = 0, last = 0;
  for (int i = 0; i < 500; i++) {
    char id[32], body[32];
    snprintf(id, sizeof id, "m-%d", i);
    snprintf(body, sizeof body, "body %d", i);
    uint64_t s;
    int rc = publish_str(c, "", q, body, id, true, &s, &err);
    if (rc != 0)
      fail_msg("publish %d: %s", i, err.msg);
    if (i == 0)
      first = s;
    assert_true(s > last);
    last = s;
  }
  assert_int_equal(last - first, 499);
  confirms k;
  memset(&k, 0, sizeof k);
  assert_int_equal(wr_conn_wait_confirms(c, last, 30000, on_confirm, &k, &err), 0);
  assert_int_equal(k.n, 500);
  assert_int_equal(k.acked, 500);
  assert_false(k.dup);
  for (uint64_t s = first; s <= last; s++)
    assert_true(k.seen[s]);
  assert_int_equal(wr_conn_unconfirmed(c), 0);
  amqp_connection_state_t raw = wt_amqp_connect();
  assert_int_equal(wt_amqp_queue_depth(raw, q), 500);
  wt_amqp_delete_queue(raw, q);
  wt_amqp_close(raw);
  wr_conn_free(c);
}

/* A confirm callback that publishes again (a relay retrying at once): the unsettled
 * table grows under the report loop and nothing is lost or reported twice. */
typedef struct republisher {
  const char *q;
  int budget;
  confirms k;
  uint64_t last;
} republisher;

static void republish_on_confirm(wr_conn *c, uint64_t seq, int status, void *user) {
  republisher *r = user;
  on_confirm(c, seq, status, &r->k);
  if (r->budget > 0) {
    r->budget--;
    wr_err err;
    uint64_t s;
    assert_int_equal(publish_str(c, "", r->q, "again", NULL, true, &s, &err), 0);
    r->last = s;
  }
}

static void confirm_callback_may_publish(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-repub");
  declare_temp_queue(c, q);
  republisher r;
  memset(&r, 0, sizeof r);
  r.q = q;
  r.budget = 300;
  for (int i = 0; i < 100; i++)
    assert_int_equal(publish_str(c, "", q, "first", NULL, true, &r.last, &err), 0);
  /* keep waiting until the callback has stopped publishing and all are settled */
  for (int round = 0; round < 50 && (r.budget > 0 || wr_conn_unconfirmed(c) > 0); round++)
    assert_int_equal(wr_conn_wait_confirms(c, r.last, 10000, republish_on_confirm, &r, &err), 0);
  assert_int_equal(r.budget, 0);
  assert_int_equal(wr_conn_wait_confirms(c, r.last, 10000, republish_on_confirm, &r, &err), 0);
  assert_int_equal(r.k.n, 400);
  assert_int_equal(r.k.acked, 400);
  assert_false(r.k.dup);
  assert_int_equal(wr_conn_unconfirmed(c), 0);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
}

/* ---- consuming ------------------------------------------------------------------------ */

static void deliveries_interleaved_with_confirms(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  char q[64], out[64];
  wt_unique(q, sizeof q, "conn-in");
  wt_unique(out, sizeof out, "conn-out");
  declare_temp_queue(c, q);
  declare_temp_queue(c, out);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  /* 200 messages waiting in q, consumed on the same connection that publishes */
  amqp_connection_state_t raw = wt_amqp_connect();
  for (int i = 0; i < 200; i++) {
    char body[32];
    snprintf(body, sizeof body, "in-%d", i);
    assert_int_equal(amqp_basic_publish(raw, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
                                        amqp_cstring_bytes(body)),
                     0);
  }
  assert_true(wt_amqp_queue_depth(raw, q) >= 0);
  assert_int_equal(wr_conn_consume(c, q, 50, false, amqp_empty_table, &err), 0);
  /* same queue again with the same settings: no-op; other settings: conflict */
  assert_int_equal(wr_conn_consume(c, q, 50, false, amqp_empty_table, &err), 0);
  assert_int_equal(wr_conn_consume(c, q, 7, false, amqp_empty_table, &err), WR_ECONFLICT);
  /* publish 100 and wait for confirms while deliveries pour in */
  uint64_t last = 0;
  for (int i = 0; i < 100; i++) {
    char id[32];
    snprintf(id, sizeof id, "o-%d", i);
    assert_int_equal(publish_str(c, "", out, "x", id, true, &last, &err), 0);
  }
  confirms k;
  memset(&k, 0, sizeof k);
  assert_int_equal(wr_conn_wait_confirms(c, last, 30000, on_confirm, &k, &err), 0);
  assert_int_equal(k.acked, 100);
  /* every one of the 200 deliveries is still there, in order, exactly once */
  unsigned char seen[200];
  memset(seen, 0, sizeof seen);
  int got = 0;
  uint64_t prev_tag = 0;
  while (got < 200) {
    amqp_envelope_t env;
    int rc = wr_conn_next_delivery(c, 10000, &env, &err);
    if (rc != 0)
      fail_msg("next_delivery after %d: %s", got, err.msg);
    int i = -1;
    char body[32];
    snprintf(body, sizeof body, "%.*s", (int)env.message.body.len, (char *)env.message.body.bytes);
    assert_int_equal(sscanf(body, "in-%d", &i), 1);
    assert_true(i >= 0 && i < 200);
    assert_false(seen[i]);
    seen[i] = 1;
    assert_int_equal(i, got); /* one queue, one consumer: broker order */
    assert_true(env.delivery_tag > prev_tag);
    prev_tag = env.delivery_tag;
    /* ack in batches of 10 with multiple */
    if (got % 10 == 9)
      assert_int_equal(wr_conn_ack(c, env.delivery_tag, true, &err), 0);
    amqp_destroy_envelope(&env);
    got++;
  }
  amqp_envelope_t env;
  assert_int_equal(wr_conn_next_delivery(c, 300, &env, &err), WR_ETIMEDOUT);
  /* tags never handed out / zero are refused */
  assert_int_equal(wr_conn_ack(c, prev_tag + 1000, false, &err), WR_EINVAL);
  assert_int_equal(wr_conn_ack(c, 0, false, &err), WR_EINVAL);
  wr_conn_free(c);
  assert_int_equal(wt_amqp_queue_depth(raw, q), 0);
  assert_int_equal(wt_amqp_queue_depth(raw, out), 100);
  wt_amqp_delete_queue(raw, q);
  wt_amqp_delete_queue(raw, out);
  wt_amqp_close(raw);
}

static void stale_tags_after_reconnect(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  char q[64];
  wt_unique(q, sizeof q, "conn-stale");
  declare_temp_queue(c, q);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  uint64_t s;
  assert_int_equal(publish_str(c, "", q, "m", "s-1", true, &s, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(c, s, 10000, NULL, NULL, &err), 0);
  assert_int_equal(wr_conn_consume(c, q, 10, false, amqp_empty_table, &err), 0);
  amqp_envelope_t env;
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  uint64_t old_tag = env.delivery_tag;
  assert_false(env.redelivered);
  amqp_destroy_envelope(&env);
  uint64_t gen = wr_conn_generation(c);
  assert_int_equal(wr_conn_reconnect(c, NULL, &err), 0);
  assert_true(wr_conn_generation(c) > gen);
  /* the consumer was restored: the unacked message comes back, redelivered, with a
   * new tag; the old tag is refused instead of acking the new delivery */
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_true(env.redelivered);
  assert_true(env.delivery_tag > old_tag);
  assert_int_equal(wr_conn_ack(c, old_tag, false, &err), WR_ESTATE);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  /* double ack: the broker closes the channel (406); reported by the next read,
   * after which the connection is usable again */
  assert_int_equal(publish_str(c, "", q, "m2", "s-2", true, &s, &err), 0);
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  uint64_t t2 = env.delivery_tag;
  amqp_destroy_envelope(&env);
  assert_int_equal(wr_conn_ack(c, t2, false, &err), 0);
  assert_int_equal(wr_conn_ack(c, t2, false, &err), 0); /* not detectable locally */
  int rc = wr_conn_next_delivery(c, 5000, &env, &err);
  assert_int_equal(rc, WR_EAMQP);
  assert_int_equal(err.amqp_reply, 406);
  assert_true(wr_conn_is_open(c));
  assert_int_equal(wr_conn_ack(c, t2, false, &err), WR_ESTATE);
  assert_int_equal(publish_str(c, "", q, "m3", "s-3", true, &s, &err), 0);
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
}

static void reject_and_get(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  char q[64];
  wt_unique(q, sizeof q, "conn-get");
  declare_temp_queue(c, q);
  amqp_envelope_t env;
  assert_int_equal(wr_conn_get(c, q, &env, &err), WR_ENOTFOUND);
  assert_int_equal(err.amqp_reply, 0);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  uint64_t s;
  assert_int_equal(publish_str(c, "", q, "hello", "g-1", true, &s, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(c, s, 10000, NULL, NULL, &err), 0);
  assert_int_equal(wr_conn_get(c, q, &env, &err), 0);
  assert_int_equal(env.message.body.len, 5);
  assert_memory_equal(env.message.body.bytes, "hello", 5);
  assert_true(env.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
  /* requeue, get it again, reject for good */
  assert_int_equal(wr_conn_reject(c, env.delivery_tag, true, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(wr_conn_get(c, q, &env, &err), 0);
  assert_true(env.redelivered);
  assert_int_equal(wr_conn_reject(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(wr_conn_get(c, q, &env, &err), WR_ENOTFOUND);
  /* a missing queue */
  char missing[64];
  wt_unique(missing, sizeof missing, "conn-missing");
  assert_int_equal(wr_conn_get(c, missing, &env, &err), WR_ENOTFOUND);
  assert_int_equal(err.amqp_reply, 404);
  assert_true(wr_conn_is_open(c));
  uint32_t purged = 99;
  assert_int_equal(wr_conn_purge_queue(c, q, &purged, &err), 0);
  assert_int_equal(purged, 0);
  assert_int_equal(wr_conn_purge_queue(c, missing, &purged, &err), WR_ENOTFOUND);
  assert_int_equal(wr_conn_delete_queue(c, q, &err), 0);
  wr_conn_free(c);
}

static void consumer_cancelled_when_queue_deleted(void **state) {
  (void)state;
  wr_conn *c = conn_open_default();
  wr_err err;
  char q[64], q2[64];
  wt_unique(q, sizeof q, "conn-cancel");
  wt_unique(q2, sizeof q2, "conn-keep");
  declare_temp_queue(c, q);
  declare_temp_queue(c, q2);
  assert_int_equal(wr_conn_consume(c, q, 10, false, amqp_empty_table, &err), 0);
  assert_int_equal(wr_conn_consume(c, q2, 10, false, amqp_empty_table, &err), 0);
  amqp_connection_state_t raw = wt_amqp_connect();
  wt_amqp_delete_queue(raw, q);
  amqp_envelope_t env;
  int rc = wr_conn_next_delivery(c, 10000, &env, &err);
  assert_int_equal(rc, WR_ESTOPPED);
  assert_non_null(strstr(err.msg, q));
  /* the other consumer keeps working */
  assert_int_equal(amqp_basic_publish(raw, 1, amqp_empty_bytes, amqp_cstring_bytes(q2), 0, 0, NULL,
                                      amqp_cstring_bytes("still here")),
                   0);
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_int_equal(env.message.body.len, 10);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  /* consuming a queue that does not exist */
  assert_int_equal(wr_conn_consume(c, q, 10, false, amqp_empty_table, &err), WR_ENOTFOUND);
  assert_true(wr_conn_is_open(c));
  assert_int_equal(amqp_basic_publish(raw, 1, amqp_empty_bytes, amqp_cstring_bytes(q2), 0, 0, NULL,
                                      amqp_cstring_bytes("and here")),
                   0);
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  wt_amqp_delete_queue(raw, q2);
  wt_amqp_close(raw);
  wr_conn_free(c);
}

static void heartbeats_serviced_while_waiting(void **state) {
  (void)state;
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  o.heartbeat_s = 1; /* the broker closes us after ~2 missed heartbeats */
  wr_conn *c = conn_new_opts(&o);
  wr_err err;
  assert_int_equal(wr_conn_open(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-hb");
  declare_temp_queue(c, q);
  assert_int_equal(wr_conn_consume(c, q, 1, false, amqp_empty_table, &err), 0);
  amqp_envelope_t env;
  /* one long wait inside the library, then short idle gaps outside it + service */
  assert_int_equal(wr_conn_next_delivery(c, 6000, &env, &err), WR_ETIMEDOUT);
  assert_true(wr_conn_is_open(c));
  for (int i = 0; i < 8; i++) {
    usleep(400 * 1000);
    assert_int_equal(wr_conn_service(c, &err), 0);
  }
  assert_true(wr_conn_is_open(c));
  amqp_connection_state_t raw = wt_amqp_connect();
  assert_int_equal(amqp_basic_publish(raw, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
                                      amqp_cstring_bytes("ping")),
                   0);
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  wt_amqp_delete_queue(raw, q);
  wt_amqp_close(raw);
  wr_conn_free(c);
}

typedef struct hook_state {
  int calls;
  const char *queue;
  int fail_with;
} hook_state;

static int hook_declare_and_consume(wr_conn *c, void *user, wr_err *err) {
  hook_state *h = user;
  h->calls++;
  if (h->fail_with)
    return wr_err_set(err, h->fail_with, "hook refused");
  wr_queue_decl d = {.name = h->queue, .durable = true, .arguments = amqp_empty_table};
  int rc = wr_conn_declare_queue(c, &d, false, NULL, NULL, err);
  if (rc != 0)
    return rc;
  return wr_conn_consume(c, h->queue, 5, false, amqp_empty_table, err);
}

static void on_open_hooks(void **state) {
  (void)state;
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  wr_conn *c = conn_new_opts(&o);
  char q[64];
  wt_unique(q, sizeof q, "conn-hook");
  hook_state h = {.calls = 0, .queue = q, .fail_with = 0};
  assert_int_equal(wr_conn_on_open(c, hook_declare_and_consume, &h), 0);
  assert_int_equal(wr_conn_on_open(c, NULL, NULL), WR_EINVAL);
  wr_err err;
  assert_int_equal(wr_conn_open(c, &err), 0);
  assert_int_equal(h.calls, 1);
  assert_int_equal(wr_conn_reconnect(c, NULL, &err), 0);
  assert_int_equal(h.calls, 2);
  amqp_connection_state_t raw = wt_amqp_connect();
  assert_int_equal(amqp_basic_publish(raw, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
                                      amqp_cstring_bytes("hooked")),
                   0);
  amqp_envelope_t env;
  assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  /* a failing hook fails the open and leaves the connection closed */
  h.fail_with = WR_EDB;
  wr_conn_close(c);
  assert_int_equal(wr_conn_open(c, &err), WR_EDB);
  assert_non_null(strstr(err.msg, "hook refused"));
  assert_false(wr_conn_is_open(c));
  wt_amqp_delete_queue(raw, q);
  wt_amqp_close(raw);
  wr_conn_free(c);
}

static void table_helpers(void **state) {
  (void)state;
  amqp_table_entry_t e[5];
  e[0].key = amqp_cstring_bytes("s");
  e[0].value.kind = AMQP_FIELD_KIND_UTF8;
  e[0].value.value.bytes = amqp_cstring_bytes("hello world");
  e[1].key = amqp_cstring_bytes("i8");
  e[1].value.kind = AMQP_FIELD_KIND_I8;
  e[1].value.value.i8 = -5;
  e[2].key = amqp_cstring_bytes("u64big");
  e[2].value.kind = AMQP_FIELD_KIND_U64;
  e[2].value.value.u64 = UINT64_MAX;
  e[3].key = amqp_cstring_bytes("l");
  e[3].value.kind = AMQP_FIELD_KIND_I64;
  e[3].value.value.i64 = 1234567890123LL;
  e[4].key = amqp_cstring_bytes("b");
  e[4].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e[4].value.value.boolean = 1;
  amqp_table_t t = {5, e};
  int64_t v;
  char buf[6];
  assert_true(wr_table_get_str(&t, "s", buf, sizeof buf));
  assert_string_equal(buf, "hello"); /* truncated */
  assert_false(wr_table_get_str(&t, "i8", buf, sizeof buf));
  assert_true(wr_table_get_int(&t, "i8", &v));
  assert_int_equal(v, -5);
  assert_true(wr_table_get_int(&t, "l", &v));
  assert_int_equal(v, 1234567890123LL);
  assert_false(wr_table_get_int(&t, "u64big", &v));
  assert_false(wr_table_get_int(&t, "b", &v));
  assert_false(wr_table_get_int(&t, "missing", &v));
  assert_non_null(wr_table_get(&t, "b"));
  assert_null(wr_table_get(&t, "bb"));
  assert_null(wr_table_get(NULL, "b"));
  amqp_table_t empty = amqp_empty_table;
  assert_null(wr_table_get(&empty, "b"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connect_ok),
      cmocka_unit_test(bad_urls),
      cmocka_unit_test(wrong_password),
      cmocka_unit_test(unknown_vhost),
      cmocka_unit_test(closed_port_fails_fast),
      cmocka_unit_test(failover_skips_dead_first_url),
      cmocka_unit_test(tls_ok),
      cmocka_unit_test(tls_wrong_ca),
      cmocka_unit_test(publish_confirm_ack),
      cmocka_unit_test(mandatory_unroutable_returned),
      cmocka_unit_test(publish_missing_exchange_keeps_connection),
      cmocka_unit_test(many_in_flight_multiple_acks),
      cmocka_unit_test(confirm_callback_may_publish),
      cmocka_unit_test(deliveries_interleaved_with_confirms),
      cmocka_unit_test(stale_tags_after_reconnect),
      cmocka_unit_test(reject_and_get),
      cmocka_unit_test(consumer_cancelled_when_queue_deleted),
      cmocka_unit_test(heartbeats_serviced_while_waiting),
      cmocka_unit_test(on_open_hooks),
      cmocka_unit_test(table_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
