/* test_generated_api.c: the generated publish/subscribe wrappers of customer.v1 against
 * the real runtime, without servers: argument checks, what subscribe registers with a
 * consumer (handlers, bindings of its queue to the file's exchange by routing key) and
 * with the schema registry. The broker/database path of the same functions is covered
 * by the services' and the consumer's integration tests. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "customer/v1/customer.warren.h"
#include "order/v1/order.warren.h"

static int on_created(wr_msg *m, const Customer__V1__CustomerCreated *ev, void *user) {
  return 0;
}
static int on_deleted(wr_msg *m, const Customer__V1__CustomerDeleted *ev, void *user) {
  return 0;
}

static wr_consumer *new_consumer(const char *queue) {
  static wr_conn_opts amqp = WR_CONN_OPTS_INIT; /* never connects in these tests */
  amqp.urls = "amqp://guest:guest@127.0.0.1:1";
  wr_consumer_opts o = WR_CONSUMER_OPTS_INIT;
  o.queue = queue;
  o.database_url = "postgresql://nobody@127.0.0.1:1/none";
  o.amqp = &amqp;
  wr_consumer *c = NULL;
  wr_err err = {0};
  if (wr_consumer_new(&o, &c, &err) != 0)
    fail_msg("wr_consumer_new: %s", err.msg);
  return c;
}

static void test_publish_checks_arguments(void **state) {
  Customer__V1__CustomerCreated ev = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  wr_outbox ob = {0};
  assert_int_equal(customer_v1_customer_created_publish(NULL, &ev), WR_EINVAL);
  assert_int_equal(customer_v1_customer_created_publish(&ob, NULL), WR_EINVAL);
  /* no connection, no meta: wr_outbox_append refuses, the wrapper passes it on */
  assert_int_equal(customer_v1_customer_created_publish(&ob, &ev), WR_EINVAL);
  assert_int_equal(order_v1_order_placed_publish(NULL, NULL), WR_EINVAL);
}

static void test_subscribe_checks_arguments(void **state) {
  wr_consumer *c = new_consumer("codegen.api-args");
  customer_v1_handlers none = {0};
  customer_v1_handlers some = {.on_customer_created = on_created};
  assert_int_equal(customer_v1_subscribe(NULL, &some, NULL), WR_EINVAL);
  assert_int_equal(customer_v1_subscribe(c, NULL, NULL), WR_EINVAL);
  assert_int_equal(customer_v1_subscribe(c, &none, NULL), WR_EINVAL);
  wr_consumer_free(c);
}

static void test_subscribe_registers_handlers_and_bindings(void **state) {
  wr_consumer *c = new_consumer("codegen.api-queue");
  customer_v1_handlers h = {.on_customer_created = on_created, .on_customer_deleted = on_deleted};
  int user = 0;
  assert_int_equal(customer_v1_subscribe(c, &h, &user), 0);
  /* the schema is now known to tools (wr_json, DLQ decoding) */
  assert_ptr_equal(wr_schema_find_event(CUSTOMER_V1_CUSTOMER_UPDATED_TYPE),
                   CUSTOMER_V1_CUSTOMER_UPDATED_EVENT);

  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_int_equal(wr_consumer_topology(c, t), 0);
  char *text = wr_topology_render(t);
  assert_non_null(text);
  /* bound: the two handled events, by routing key, to customer.events; not the others */
  assert_non_null(strstr(text, CUSTOMER_V1_EXCHANGE));
  assert_non_null(strstr(text, CUSTOMER_V1_CUSTOMER_CREATED_TYPE));
  assert_non_null(strstr(text, CUSTOMER_V1_CUSTOMER_DELETED_TYPE));
  assert_null(strstr(text, CUSTOMER_V1_CUSTOMER_UPDATED_TYPE));
  assert_null(strstr(text, CUSTOMER_V1_CUSTOMER_SNAPSHOT_TYPE));
  free(text);
  wr_topology_free(t);

  /* a second subscription of an already handled event is refused by the consumer */
  customer_v1_handlers again = {.on_customer_created = on_created};
  assert_int_equal(customer_v1_subscribe(c, &again, NULL), WR_EEXIST);
  wr_consumer_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_checks_arguments),
      cmocka_unit_test(test_subscribe_checks_arguments),
      cmocka_unit_test(test_subscribe_registers_handlers_and_bindings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
