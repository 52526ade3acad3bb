/* test_topology.c: the consumer-queue layout on the real broker: declared twice without
 * error, a conflicting redeclaration refused with 406 and a message naming the queue,
 * retry tiers that really dead-letter back to the work queue after their TTL, a
 * rejected message and a crash-looping message (quorum delivery limit) landing in the
 * DLQ, and the on-open hook redeclaring everything after a reconnect. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/topology.h>

static wr_conn *open_conn(void) {
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = wt_require("WARREN_AMQP_URL");
  wr_conn *c = NULL;
  wr_err err;
  if (wr_conn_new(&o, &c, &err) != 0 || wr_conn_open(c, &err) != 0)
    fail_msg("connect: %s", err.msg);
  if (wr_conn_confirm_mode(c, &err) != 0)
    fail_msg("confirm mode: %s", err.msg);
  return c;
}

static void delete_layout(const char *q, size_t tiers) {
  amqp_connection_state_t raw = wt_amqp_connect();
  char b[300];
  wt_amqp_delete_queue(raw, q);
  wr_topology_dlq_name(q, b, sizeof b);
  wt_amqp_delete_queue(raw, b);
  for (unsigned i = 1; i <= tiers; i++) {
    wr_topology_retry_name(q, i, b, sizeof b);
    wt_amqp_delete_queue(raw, b);
  }
  wr_topology_dlx_name(q, b, sizeof b);
  wt_amqp_delete_exchange(raw, b);
  wt_amqp_close(raw);
}

static void publish_confirmed(wr_conn *c, const char *exchange, const char *rk, const char *body,
                              const char *msgid) {
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = 2;
  props.message_id = amqp_cstring_bytes(msgid);
  wr_publish p = {.exchange = exchange,
                  .routing_key = rk,
                  .body = body,
                  .len = strlen(body),
                  .props = &props,
                  .mandatory = true};
  uint64_t seq;
  wr_err err;
  if (wr_conn_publish(c, &p, &seq, &err) != 0)
    fail_msg("publish: %s", err.msg);
  if (wr_conn_wait_confirms(c, seq, 10000, NULL, NULL, &err) != 0)
    fail_msg("confirm: %s", err.msg);
}

/* basic.get until a message arrives or timeout; 0 on success. */
static int get_within(wr_conn *c, const char *q, int timeout_ms, amqp_envelope_t *env) {
  int64_t end = wt_now_ms() + timeout_ms;
  wr_err err;
  for (;;) {
    int rc = wr_conn_get(c, q, env, &err);
    if (rc == 0)
      return 0;
    if (rc != WR_ENOTFOUND || err.amqp_reply != 0)
      fail_msg("get %s: %s", q, err.msg);
    if (wt_now_ms() > end)
      return rc;
    usleep(50 * 1000);
  }
}

static bool xdeath_has(const amqp_envelope_t *env, const char *queue, const char *reason) {
  const amqp_basic_properties_t *p = &env->message.properties;
  if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
    return false;
  const amqp_field_value_t *xd = wr_table_get(&p->headers, "x-death");
  if (!xd || xd->kind != AMQP_FIELD_KIND_ARRAY)
    return false;
  for (int i = 0; i < xd->value.array.num_entries; i++) {
    const amqp_field_value_t *e = &xd->value.array.entries[i];
    if (e->kind != AMQP_FIELD_KIND_TABLE)
      continue;
    char q[300], r[64];
    if (wr_table_get_str(&e->value.table, "queue", q, sizeof q) &&
        wr_table_get_str(&e->value.table, "reason", r, sizeof r) && strcmp(q, queue) == 0 &&
        strcmp(r, reason) == 0)
      return true;
  }
  return false;
}

static void declare_twice_and_conflict(void **state) {
  (void)state;
  char q[64], ex[64];
  wt_unique(q, sizeof q, "topo-twice");
  wt_unique(ex, sizeof ex, "topo-ex");
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_topology_exchange(t, ex, "topic"), 0);
  unsigned delays[] = {1000, 5000};
  wr_consumer_queue cq = {.queue = q,
                          .type = WR_QUEUE_QUORUM,
                          .retry_delays_ms = delays,
                          .n_retry_delays = 2,
                          .delivery_limit = 20};
  assert_int_equal(wr_topology_consumer_queue(t, &cq), 0);
  assert_int_equal(wr_topology_bind(t, q, ex, "a.b.c"), 0);
  wr_conn *c = open_conn();
  wr_err err;
  int rc = wr_topology_declare(t, c, &err);
  if (rc != 0)
    fail_msg("declare: %s", err.msg);
  rc = wr_topology_declare(t, c, &err);
  if (rc != 0)
    fail_msg("second declare: %s", err.msg);
  /* the binding works: a message to the domain exchange reaches the work queue */
  publish_confirmed(c, ex, "a.b.c", "routed", "t-1");
  amqp_envelope_t env;
  assert_int_equal(get_within(c, q, 5000, &env), 0);
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);

  /* the same queue declared as classic: the broker refuses (406), the message names
   * the queue and shows our declaration; the connection stays usable */
  wr_topology *t2 = NULL;
  assert_int_equal(wr_topology_new(&t2), 0);
  wr_consumer_queue cq2 = cq;
  cq2.type = WR_QUEUE_CLASSIC;
  assert_int_equal(wr_topology_consumer_queue(t2, &cq2), 0);
  rc = wr_topology_declare(t2, c, &err);
  assert_int_equal(rc, WR_EAMQP);
  assert_int_equal(err.amqp_reply, 406);
  assert_non_null(strstr(err.msg, q));
  assert_non_null(strstr(err.msg, "PRECONDITION_FAILED"));
  assert_non_null(strstr(err.msg, "our declaration: queue"));
  assert_true(wr_conn_is_open(c));
  publish_confirmed(c, ex, "a.b.c", "still fine", "t-2");

  /* on-open hook: a reconnect redeclares everything */
  assert_int_equal(wr_conn_on_open(c, wr_topology_on_open, t), 0);
  amqp_connection_state_t raw = wt_amqp_connect();
  wt_amqp_delete_queue(raw, q);
  wt_amqp_close(raw);
  assert_int_equal(wr_conn_reconnect(c, NULL, &err), 0);
  publish_confirmed(c, ex, "a.b.c", "after reconnect", "t-3");
  assert_int_equal(get_within(c, q, 5000, &env), 0);
  assert_int_equal(env.message.body.len, strlen("after reconnect"));
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(wr_topology_declare(NULL, c, &err), WR_EINVAL);
  wr_conn_free(c);
  delete_layout(q, 2);
  raw = wt_amqp_connect();
  wt_amqp_delete_exchange(raw, ex);
  wt_amqp_close(raw);
  wr_topology_free(t);
  wr_topology_free(t2);
}

static void layout_really_dead_letters(wr_queue_type type) {
  char q[64];
  wt_unique(q, sizeof q, type == WR_QUEUE_QUORUM ? "topo-dlq-qq" : "topo-dlq-cl");
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  unsigned delays[] = {400};
  wr_consumer_queue cq = {.queue = q,
                          .type = type,
                          .retry_delays_ms = delays,
                          .n_retry_delays = 1,
                          .delivery_limit = 2};
  assert_int_equal(wr_topology_consumer_queue(t, &cq), 0);
  wr_conn *c = open_conn();
  wr_err err;
  if (wr_topology_declare(t, c, &err) != 0)
    fail_msg("declare: %s", err.msg);
  char retry1[300], dlq[300];
  wr_topology_retry_name(q, 1, retry1, sizeof retry1);
  wr_topology_dlq_name(q, dlq, sizeof dlq);

  /* retry tier: waits its TTL, then goes back to the work queue */
  int64_t t0 = wt_now_ms();
  publish_confirmed(c, "", retry1, "retry me", "r-1");
  amqp_envelope_t env;
  assert_int_equal(get_within(c, q, 15000, &env), 0);
  assert_true(wt_now_ms() - t0 >= 350); /* not before the TTL */
  assert_int_equal(env.message.body.len, strlen("retry me"));
  assert_true(xdeath_has(&env, retry1, "expired"));
  /* rejected (requeue=false) from the work queue: to the DLQ via the DLX */
  assert_int_equal(wr_conn_reject(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);
  assert_int_equal(get_within(c, dlq, 15000, &env), 0);
  assert_true(xdeath_has(&env, q, "rejected"));
  assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
  amqp_destroy_envelope(&env);

  if (type == WR_QUEUE_QUORUM) {
    /* crash loop: delivered and requeued until the delivery limit, then to the DLQ */
    publish_confirmed(c, "", q, "poison", "p-1");
    int deliveries = 0;
    while (get_within(c, q, 2000, &env) == 0) {
      deliveries++;
      assert_true(deliveries <= 5);
      assert_int_equal(wr_conn_reject(c, env.delivery_tag, true, &err), 0);
      amqp_destroy_envelope(&env);
    }
    assert_true(deliveries >= 2);
    assert_int_equal(get_within(c, dlq, 15000, &env), 0);
    assert_true(xdeath_has(&env, q, "delivery_limit"));
    assert_int_equal(wr_conn_ack(c, env.delivery_tag, false, &err), 0);
    amqp_destroy_envelope(&env);
  }
  wr_conn_free(c);
  delete_layout(q, 1);
  wr_topology_free(t);
}

static void quorum_layout_dead_letters(void **state) {
  (void)state;
  layout_really_dead_letters(WR_QUEUE_QUORUM);
}

static void classic_layout_dead_letters(void **state) {
  (void)state;
  layout_really_dead_letters(WR_QUEUE_CLASSIC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(declare_twice_and_conflict),
      cmocka_unit_test(quorum_layout_dead_letters),
      cmocka_unit_test(classic_layout_dead_letters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
