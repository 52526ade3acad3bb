// warren-test: link=warren_devkit,warren_schemas timeout=300
/* Tracing across hops: an X-Correlation-Id sent to the customer service becomes
 * meta.correlation_id of CustomerCreated; an event emitted while handling another
 * event carries causation_id = that event's id and keeps the correlation id, hop after
 * hop.
 *
 * Neither reference service emits an event while handling one today (the order
 * service's handlers only write its view), so the handlers here are the test's own:
 * two wr_consumers in this process with the generated typed subscriptions, publishing
 * through wr_msg_outbox() (the handler's transaction) and a wr_relay, against the real
 * customer-service process and broker:
 *
 *   POST /customers (X-Correlation-Id: C)
 *     -> CustomerCreated E1 {correlation C, causation ""}          customer-service
 *     -> handler on e2e.welcome emits OrderPlaced E2                 this test
 *        {correlation C, causation E1}
 *     -> handler on e2e.audit emits CustomerSnapshot E3              this test
 *        {correlation C, causation E2}
 * Every event is read back from the broker (a tap queue) and decoded. */
#include "e2e.h"

#define TAP_CUSTOMER "e2e.tap.customer"
#define TAP_ORDER    "e2e.tap.order"

static int setup(void **state) {
  return e2e_setup_state(state, "causation");
}

/* customer created -> a welcome order, in the handler's transaction */
static int on_created(wr_msg *m, const Customer__V1__CustomerCreated *ev, void *user) {
  (void)user;
  char id[WR_UUID_STRLEN];
  wr_uuid_v7(id);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = wr_now_ns() / 1000000000;
  Order__V1__Order o = ORDER__V1__ORDER__INIT;
  o.id = id;
  o.customer_id = ev->data->id;
  o.amount_cents = 100;
  o.currency = "EUR";
  o.status = ORDER__V1__ORDER_STATUS__ORDER_STATUS_PLACED;
  o.created_at = &ts;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.aggregate_id = id;
  meta.version = 1;
  Order__V1__OrderPlaced out = ORDER__V1__ORDER_PLACED__INIT;
  out.meta = &meta;
  out.data = &o;
  int rc = order_v1_order_placed_publish(wr_msg_outbox(m), &out);
  return rc ? wr_msg_fail(m, WR_EHANDLER, "publish: %s", wr_strerror(rc)) : 0;
}

/* order placed -> an audit snapshot of its customer */
static int on_placed(wr_msg *m, const Order__V1__OrderPlaced *ev, void *user) {
  (void)user;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = wr_now_ns() / 1000000000;
  Customer__V1__Customer d = CUSTOMER__V1__CUSTOMER__INIT;
  d.id = ev->data->customer_id;
  d.name = "audit";
  d.email = "audit@example.org";
  d.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  d.version = 1;
  d.created_at = &ts;
  d.updated_at = &ts;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.aggregate_id = ev->data->customer_id;
  meta.version = 1;
  Customer__V1__CustomerSnapshot out = CUSTOMER__V1__CUSTOMER_SNAPSHOT__INIT;
  out.meta = &meta;
  out.data = &d;
  int rc = customer_v1_customer_snapshot_publish(wr_msg_outbox(m), &out);
  return rc ? wr_msg_fail(m, WR_EHANDLER, "publish: %s", wr_strerror(rc)) : 0;
}

static wr_consumer *consumer(e2e *e, const char *queue, const wr_conn_opts *amqp) {
  wr_consumer_opts o = WR_CONSUMER_OPTS_INIT;
  o.queue = queue;
  o.database_url = e->order_db;
  o.amqp = amqp;
  o.queue_type = WR_QUEUE_CLASSIC;
  o.batch_size = 1;
  o.source_service = "e2e-causation";
  wr_consumer *c = NULL;
  wr_err err = {0};
  if (wr_consumer_new(&o, &c, &err) != 0)
    fail_msg("consumer %s: %s", queue, err.msg);
  return c;
}

static void correlation_and_causation_chain(void **state) {
  e2e *e = *state;
  e2e_tap(e, TAP_CUSTOMER, CUSTOMER_V1_EXCHANGE);
  e2e_tap(e, TAP_ORDER, ORDER_V1_EXCHANGE);
  e2e_start_customer(e, NULL);

  wr_conn_opts amqp = WR_CONN_OPTS_INIT;
  amqp.urls = e->amqp_url;
  wr_consumer *welcome = consumer(e, "e2e.welcome", &amqp);
  wr_consumer *audit = consumer(e, "e2e.audit", &amqp);
  static const customer_v1_handlers ch = {.on_customer_created = on_created};
  static const order_v1_handlers oh = {.on_order_placed = on_placed};
  assert_int_equal(customer_v1_subscribe(welcome, &ch, NULL), 0);
  assert_int_equal(order_v1_subscribe(audit, &oh, NULL), 0);
  wr_err err = {0};
  if (wr_consumer_declare(welcome, &err) != 0 || wr_consumer_declare(audit, &err) != 0)
    fail_msg("declare: %s", err.msg);
  assert_int_equal(wr_consumer_start(welcome), 0);
  assert_int_equal(wr_consumer_start(audit), 0);
  wr_topology *topo = NULL;
  wr_topology_new(&topo);
  wr_topology_exchange(topo, CUSTOMER_V1_EXCHANGE, "topic");
  wr_topology_exchange(topo, ORDER_V1_EXCHANGE, "topic");
  wr_relay_opts ro = WR_RELAY_OPTS_INIT;
  ro.database_url = e->order_db;
  ro.amqp = &amqp;
  ro.topology = topo;
  ro.name = "e2e-causation";
  wr_relay *relay = NULL;
  if (wr_relay_new(&ro, &relay, &err) != 0)
    fail_msg("relay: %s", err.msg);
  assert_int_equal(wr_relay_start(relay), 0);

  const char *h[] = {"X-Correlation-Id: e2e-trace-7", NULL};
  e2e_resp r = e2e_json("POST", e->customer.url, "/customers",
                        json_pack("{s:s,s:s}", "name", "Traced", "email", "t@example.org"), h);
  E2E_EXPECT(r, 201, NULL);
  char cid[64];
  snprintf(cid, sizeof cid, "%s", e2e_str(r.json, "id"));
  e2e_resp_free(&r);

  /* hop 1: the customer service's event */
  e2e_event e1, e2, e3;
  assert_true(e2e_next_event(e, TAP_CUSTOMER, 30000, &e1));
  assert_string_equal(e1.type, CUSTOMER_V1_CUSTOMER_CREATED_TYPE);
  assert_string_equal(e1.meta->correlation_id, "e2e-trace-7");
  assert_string_equal(e1.meta->causation_id, "");
  /* hop 2: emitted while handling E1 */
  assert_true(e2e_next_event(e, TAP_ORDER, 30000, &e2));
  assert_string_equal(e2.type, ORDER_V1_ORDER_PLACED_TYPE);
  assert_string_equal(e2.meta->correlation_id, "e2e-trace-7");
  assert_string_equal(e2.meta->causation_id, e1.meta->event_id);
  assert_string_equal(e2.meta->source_service, "e2e-causation");
  assert_string_equal(((Order__V1__OrderPlaced *)e2.msg)->data->customer_id, cid);
  /* hop 3: emitted while handling E2 */
  assert_true(e2e_next_event(e, TAP_CUSTOMER, 30000, &e3));
  assert_string_equal(e3.type, CUSTOMER_V1_CUSTOMER_SNAPSHOT_TYPE);
  assert_string_equal(e3.meta->correlation_id, "e2e-trace-7");
  assert_string_equal(e3.meta->causation_id, e2.meta->event_id);
  assert_string_not_equal(e1.meta->event_id, e2.meta->event_id);
  assert_string_not_equal(e2.meta->event_id, e3.meta->event_id);
  e2e_event_free(&e1);
  e2e_event_free(&e2);
  e2e_event_free(&e3);

  /* nothing else was emitted: each hop ran once */
  e2e_event extra;
  assert_false(e2e_next_event(e, TAP_ORDER, 1000, &extra));
  assert_false(e2e_next_event(e, TAP_CUSTOMER, 500, &extra));
  wr_consumer_stats st;
  wr_consumer_stats_get(welcome, &st);
  assert_int_equal(st.applied, 1);
  wr_consumer_stats_get(audit, &st);
  assert_int_equal(st.applied, 1);

  wr_consumer_stop(welcome);
  wr_consumer_stop(audit);
  assert_int_equal(wr_consumer_join(welcome), 0);
  assert_int_equal(wr_consumer_join(audit), 0);
  wr_consumer_free(welcome);
  wr_consumer_free(audit);
  assert_int_equal(wr_relay_stop(relay, 10000), 0);
  wr_relay_free(relay);
  wr_topology_free(topo);
}

int main(void) {
  wr_log_configure(NULL, NULL, WR_LOG_WARN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(correlation_and_causation_chain, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e causation", tests, NULL, NULL);
}
