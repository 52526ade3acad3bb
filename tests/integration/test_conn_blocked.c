// warren-test: timeout=300 serial
/* test_conn_blocked.c: a broker resource alarm (memory high watermark 0) blocks
 * publishing connections. wr_conn notices connection.blocked, fails publishes fast
 * with WR_EBLOCKED instead of hanging, and recovers when the alarm clears: the
 * messages published before the block are confirmed and publishing works again.
 * Serial: the alarm blocks every publisher on the shared broker. The setting is
 * restored in the teardown whatever happens. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <warren/conn.h>

static int restore_watermark(void **state) {
  (void)state;
  wt_stack("ctl set_vm_memory_high_watermark 0.4");
  return 0;
}

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

static int publish(wr_conn *c, const char *q, uint64_t *seq, wr_err *err) {
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.delivery_mode = 2;
  wr_publish pub = {.exchange = "",
                    .routing_key = q,
                    .body = "payload",
                    .len = 7,
                    .props = &p,
                    .mandatory = true};
  return wr_conn_publish(c, &pub, seq, err);
}

static void blocked_publish_fails_fast_and_recovers(void **state) {
  (void)state;
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  o.rpc_timeout_ms = 5000;
  wr_conn *c = NULL;
  wr_err err;
  assert_int_equal(wr_conn_new(&o, &c, &err), 0);
  if (wr_conn_open(c, &err) != 0)
    fail_msg("open: %s", err.msg);
  assert_int_equal(wr_conn_confirm_mode(c, &err), 0);
  char q[64];
  wt_unique(q, sizeof q, "conn-blocked");
  wr_queue_decl d = {.name = q, .arguments = amqp_empty_table};
  assert_int_equal(wr_conn_declare_queue(c, &d, false, NULL, NULL, &err), 0);
  uint64_t seq;
  assert_int_equal(publish(c, q, &seq, &err), 0);
  tally t = {0};
  assert_int_equal(wr_conn_wait_confirms(c, seq, 10000, count, &t, &err), 0);
  assert_int_equal(t.acked, 1);

  assert_int_equal(wt_stack("ctl set_vm_memory_high_watermark 0"), 0);
  /* Keep publishing until the broker's connection.blocked has arrived. Publishes that
   * went out before it are not confirmed while the alarm lasts. */
  int64_t t0 = wt_now_ms();
  uint64_t last = seq;
  size_t sent_before_block = 0;
  for (;;) {
    int rc = publish(c, q, &seq, &err);
    if (rc == WR_EBLOCKED)
      break;
    if (rc != 0)
      fail_msg("publish during alarm: %s", err.msg);
    last = seq;
    sent_before_block++;
    /* service the connection for a moment: connection.blocked arrives asynchronously */
    int w = wr_conn_wait_confirms(c, last, 200, count, &t, &err);
    assert_true(w == 0 || w == WR_ETIMEDOUT);
    if (wt_now_ms() - t0 > 60000)
      fail_msg("no connection.blocked within 60 s");
  }
  assert_true(wr_conn_is_blocked(c));
  assert_true(wr_conn_is_open(c));
  assert_non_null(strstr(err.msg, "blocked"));
  /* while blocked, publishing fails at once every time (no hang, nothing sent) */
  for (int i = 0; i < 20; i++) {
    int64_t s = wt_now_ms();
    assert_int_equal(publish(c, q, NULL, &err), WR_EBLOCKED);
    assert_true(wt_now_ms() - s < 5000); /* bound by design, far from a hang */
  }
  /* waiting for confirms while blocked times out instead of hanging */
  if (wr_conn_unconfirmed(c) > 0)
    assert_int_equal(wr_conn_wait_confirms(c, last, 500, count, &t, &err), WR_ETIMEDOUT);

  assert_int_equal(wt_stack("ctl set_vm_memory_high_watermark 0.4"), 0);
  t0 = wt_now_ms();
  while (wr_conn_is_blocked(c)) {
    int rc = wr_conn_wait_confirms(c, last, 200, count, &t, &err);
    assert_true(rc == 0 || rc == WR_ETIMEDOUT);
    if (wt_now_ms() - t0 > 60000)
      fail_msg("still blocked 60 s after the alarm cleared");
  }
  /* everything published before the block is confirmed, nothing was lost */
  assert_int_equal(wr_conn_wait_confirms(c, last, 30000, count, &t, &err), 0);
  assert_int_equal(t.acked, 1 + sent_before_block);
  assert_int_equal(t.closed + t.other, 0);
  assert_int_equal(publish(c, q, &seq, &err), 0);
  assert_int_equal(wr_conn_wait_confirms(c, seq, 10000, count, &t, &err), 0);
  assert_int_equal(t.acked, 2 + sent_before_block);
  amqp_connection_state_t raw = wt_amqp_connect();
  assert_int_equal(wt_amqp_queue_depth(raw, q), (long)(2 + sent_before_block));
  wt_amqp_delete_queue(raw, q);
  wt_amqp_close(raw);
  wr_conn_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(blocked_publish_fails_fast_and_recovers, restore_watermark),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
