// warren-test: timeout=300 serial
/* test_conn_restart.c: the broker stops and starts again. Everything in flight is
 * reported (acked or WR_ECLOSED, each exactly once), wr_conn_reconnect retries with
 * backoff while the broker is down, then restores topology (on-open hook) and the
 * consumer, and the persistent messages of the durable queue are all consumed
 * afterwards. Serial: it stops the shared broker. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/topology.h>

typedef struct tally {
  size_t acked, closed, other;
} tally;

static void count(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  (void)seq;
  tally *t = user;
  if (status == 0)
    t->acked++;
  else if (status == WR_ECLOSED)
    t->closed++;
  else
    t->other++;
}

static int publish_id(wr_conn *c, const char *q, int i, uint64_t *seq, wr_err *err) {
  char id[32];
  snprintf(id, sizeof id, "%d", i);
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  p.delivery_mode = 2;
  p.message_id = amqp_cstring_bytes(id);
  wr_publish pub = {.exchange = "",
                    .routing_key = q,
                    .body = id,
                    .len = strlen(id),
                    .props = &p,
                    .mandatory = true};
  return wr_conn_publish(c, &pub, seq, err);
}

static void *start_later(void *arg) {
  (void)arg;
  sleep(2);
  if (wt_stack("rabbit-start") != 0)
    fprintf(stderr, "rabbit-start failed\n");
  return NULL;
}

static void broker_restart_restores_everything(void **state) {
  (void)state;
  char q[64];
  wt_unique(q, sizeof q, "conn-restart");
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  wr_consumer_queue cq = {.queue = q, .type = WR_QUEUE_QUORUM, .delivery_limit = 50};
  assert_int_equal(wr_topology_consumer_queue(t, &cq), 0);

  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  o.heartbeat_s = 5;
  o.backoff_base_ms = 100;
  o.backoff_max_ms = 1000;
  wr_conn *c = NULL;
  wr_err err;
  assert_int_equal(wr_conn_new(&o, &c, &err), 0);
  assert_int_equal(wr_conn_on_open(c, wr_topology_on_open, t), 0);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0); /* recorded, applied at open */
  assert_int_equal(wr_conn_consume(c, q, 5, false, amqp_empty_table, &err), 0); /* ditto */
  if (wr_conn_open(c, &err) != 0)
    fail_msg("open: %s", err.msg);
  uint64_t gen1 = wr_conn_generation(c);

  /* 30 persistent messages, confirmed */
  uint64_t seq = 0;
  for (int i = 0; i < 30; i++)
    assert_int_equal(publish_id(c, q, i, &seq, &err), 0);
  tally tl = {0};
  assert_int_equal(wr_conn_wait_confirms(c, seq, 30000, count, &tl, &err), 0);
  assert_int_equal(tl.acked, 30);
  /* consume and ack 5 */
  unsigned char done[30];
  memset(done, 0, sizeof done);
  int acked = 0;
  while (acked < 5) {
    amqp_envelope_t env;
    assert_int_equal(wr_conn_next_delivery(c, 10000, &env, &err), 0);
    char body[16];
    snprintf(body, sizeof body, "%.*s", (int)env.message.body.len, (char *)env.message.body.bytes);
    int i = atoi(body);
    assert_true(i >= 0 && i < 30);
    assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
    assert_false(done[i]);
    done[i] = 1;
    acked++;
    amqp_destroy_envelope(&env);
  }
  /* 3 more in flight when the broker goes away */
  uint64_t first_inflight = 0, last_inflight = 0;
  for (int i = 100; i < 103; i++) {
    assert_int_equal(publish_id(c, q, i, &last_inflight, &err), 0);
    if (!first_inflight)
      first_inflight = last_inflight;
  }
  assert_int_equal(wt_stack("rabbit-stop"), 0);
  /* the loss is noticed by the next reading call */
  int64_t t0 = wt_now_ms();
  for (;;) {
    amqp_envelope_t env;
    int rc = wr_conn_next_delivery(c, 1000, &env, &err);
    if (rc == 0) { /* prefetched before the stop: not acked, the broker keeps them */
      amqp_destroy_envelope(&env);
      continue;
    }
    if (rc == WR_ECLOSED)
      break;
    assert_int_equal(rc, WR_ETIMEDOUT);
    assert_true(wt_now_ms() - t0 < 60000);
  }
  assert_false(wr_conn_is_open(c));
  /* every in-flight publish is reported exactly once: acked or WR_ECLOSED */
  tally t2 = {0};
  assert_int_equal(wr_conn_wait_confirms(c, last_inflight, 1000, count, &t2, &err), WR_ECLOSED);
  assert_int_equal(t2.acked + t2.closed, 3);
  assert_int_equal(t2.other, 0);
  assert_int_equal(wr_conn_unconfirmed(c), 0);
  assert_int_equal(publish_id(c, q, 999, NULL, &err), WR_ECLOSED);

  /* reconnect retries with backoff while the broker is down, then succeeds */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, start_later, NULL), 0);
  int rc = wr_conn_reconnect(c, NULL, &err);
  pthread_join(th, NULL);
  if (rc != 0)
    fail_msg("reconnect: %s", err.msg);
  assert_true(wr_conn_generation(c) > gen1);
  assert_true(wr_conn_is_open(c));
  /* the confirm mode came back with the connection */
  uint64_t s2;
  assert_int_equal(publish_id(c, q, 200, &s2, &err), 0);
  assert_true(s2 > last_inflight);
  assert_int_equal(wr_conn_wait_confirms(c, s2, 30000, count, &t2, &err), 0);

  /* the consumer came back: the 25 unacked persistent messages (+ the in-flight ones
   * that made it + #200) are delivered */
  int64_t t1 = wt_now_ms();
  int got = 0;
  bool seen200 = false;
  while (wt_now_ms() - t1 < 60000) {
    amqp_envelope_t env;
    rc = wr_conn_next_delivery(c, 3000, &env, &err);
    if (rc == WR_ETIMEDOUT && got >= 25 && seen200)
      break;
    if (rc == WR_ETIMEDOUT)
      continue;
    if (rc != 0)
      fail_msg("next_delivery after restart: %s", err.msg);
    char body[16];
    snprintf(body, sizeof body, "%.*s", (int)env.message.body.len, (char *)env.message.body.bytes);
    int i = atoi(body);
    if (i < 30) {
      assert_false(done[i]);
      done[i] = 1;
      got++;
    } else if (i == 200) {
      seen200 = true;
    }
    assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
    amqp_destroy_envelope(&env);
  }
  assert_int_equal(got, 25);
  assert_true(seen200);
  for (int i = 0; i < 30; i++)
    assert_true(done[i]);
  wr_conn_free(c);
  amqp_connection_state_t raw = wt_amqp_connect();
  char b[300];
  wt_amqp_delete_queue(raw, q);
  wr_topology_dlq_name(q, b, sizeof b);
  wt_amqp_delete_queue(raw, b);
  wr_topology_dlx_name(q, b, sizeof b);
  wt_amqp_delete_exchange(raw, b);
  wt_amqp_close(raw);
  wr_topology_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(broker_restart_restores_everything),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
