/* test_topology.c: the topology model without a broker: the consumer-queue layout and
 * its order, deterministic rendering, idempotent adds, conflict detection, validation
 * of names and arguments, derived names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <warren/topology.h>

static wr_topology *topo(void) {
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  assert_non_null(t);
  return t;
}

static void consumer_layout_render(void **state) {
  (void)state;
  wr_topology *t = topo();
  assert_int_equal(wr_topology_exchange(t, "customer.events", "topic"), 0);
  unsigned delays[] = {1000, 5000};
  wr_consumer_queue q = {.queue = "order.customer-sync",
                         .type = WR_QUEUE_QUORUM,
                         .retry_delays_ms = delays,
                         .n_retry_delays = 2,
                         .delivery_limit = 20};
  assert_int_equal(wr_topology_consumer_queue(t, &q), 0);
  assert_int_equal(
      wr_topology_bind(t, "order.customer-sync", "customer.events", "customer.v1.CustomerCreated"),
      0);
  char *s = wr_topology_render(t);
  assert_non_null(s);
  const char *want =
      "exchange customer.events topic durable\n"
      "exchange order.customer-sync.dlx direct durable\n"
      "queue order.customer-sync.dlq quorum durable\n"
      "bind order.customer-sync.dlq <- order.customer-sync.dlx [order.customer-sync]\n"
      "queue order.customer-sync quorum durable x-dead-letter-exchange=order.customer-sync.dlx "
      "x-dead-letter-routing-key=order.customer-sync x-delivery-limit=20 "
      "x-dead-letter-strategy=at-least-once x-overflow=reject-publish\n"
      "queue order.customer-sync.retry.1 quorum durable x-dead-letter-exchange=\"\" "
      "x-dead-letter-routing-key=order.customer-sync x-message-ttl=1000 "
      "x-dead-letter-strategy=at-least-once x-overflow=reject-publish\n"
      "queue order.customer-sync.retry.2 quorum durable x-dead-letter-exchange=\"\" "
      "x-dead-letter-routing-key=order.customer-sync x-message-ttl=5000 "
      "x-dead-letter-strategy=at-least-once x-overflow=reject-publish\n"
      "bind order.customer-sync <- customer.events [customer.v1.CustomerCreated]\n";
  assert_string_equal(s, want);
  /* deterministic: the same input renders the same text */
  char *s2 = wr_topology_render(t);
  assert_string_equal(s, s2);
  free(s2);
  /* idempotent: adding the same layout again changes nothing */
  assert_int_equal(wr_topology_consumer_queue(t, &q), 0);
  assert_int_equal(wr_topology_exchange(t, "customer.events", "topic"), 0);
  assert_int_equal(
      wr_topology_bind(t, "order.customer-sync", "customer.events", "customer.v1.CustomerCreated"),
      0);
  s2 = wr_topology_render(t);
  assert_string_equal(s, s2);
  free(s2);
  free(s);
  wr_topology_free(t);
}

static void classic_layout(void **state) {
  (void)state;
  wr_topology *t = topo();
  unsigned delays[] = {250};
  wr_consumer_queue q = {.queue = "svc.q",
                         .type = WR_QUEUE_CLASSIC,
                         .retry_delays_ms = delays,
                         .n_retry_delays = 1,
                         .delivery_limit = 20 /* quorum only: left out */};
  assert_int_equal(wr_topology_consumer_queue(t, &q), 0);
  char *s = wr_topology_render(t);
  assert_string_equal(s, "exchange svc.q.dlx direct durable\n"
                         "queue svc.q.dlq classic durable\n"
                         "bind svc.q.dlq <- svc.q.dlx [svc.q]\n"
                         "queue svc.q classic durable x-dead-letter-exchange=svc.q.dlx "
                         "x-dead-letter-routing-key=svc.q\n"
                         "queue svc.q.retry.1 classic durable x-dead-letter-exchange=\"\" "
                         "x-dead-letter-routing-key=svc.q x-message-ttl=250\n");
  free(s);
  /* no retry tiers */
  wr_consumer_queue q2 = {.queue = "svc.r", .type = WR_QUEUE_QUORUM};
  assert_int_equal(wr_topology_consumer_queue(t, &q2), 0);
  s = wr_topology_render(t);
  assert_non_null(strstr(s, "queue svc.r quorum durable x-dead-letter-exchange=svc.r.dlx "
                            "x-dead-letter-routing-key=svc.r x-dead-letter-strategy=at-least-once "
                            "x-overflow=reject-publish\n"));
  assert_null(strstr(s, "svc.r.retry"));
  free(s);
  wr_topology_free(t);
}

static void conflicts(void **state) {
  (void)state;
  wr_topology *t = topo();
  assert_int_equal(wr_topology_exchange(t, "ex", "topic"), 0);
  assert_int_equal(wr_topology_exchange(t, "ex", "fanout"), WR_ECONFLICT);
  wr_queue_args a = {.type = WR_QUEUE_QUORUM, .delivery_limit = 5};
  assert_int_equal(wr_topology_queue(t, "q", &a), 0);
  assert_int_equal(wr_topology_queue(t, "q", &a), 0);
  wr_queue_args b = a;
  b.delivery_limit = 6;
  assert_int_equal(wr_topology_queue(t, "q", &b), WR_ECONFLICT);
  b = a;
  b.type = WR_QUEUE_CLASSIC;
  b.delivery_limit = 0;
  assert_int_equal(wr_topology_queue(t, "q", &b), WR_ECONFLICT);
  /* NULL vs "" dead-letter exchange are different declarations */
  wr_queue_args c1 = {.type = WR_QUEUE_CLASSIC, .dead_letter_exchange = ""};
  wr_queue_args c2 = {.type = WR_QUEUE_CLASSIC};
  assert_int_equal(wr_topology_queue(t, "q2", &c1), 0);
  assert_int_equal(wr_topology_queue(t, "q2", &c2), WR_ECONFLICT);
  /* equal strings at other addresses are equal */
  char dlx[] = "";
  wr_queue_args c3 = {.type = WR_QUEUE_CLASSIC, .dead_letter_exchange = dlx};
  assert_int_equal(wr_topology_queue(t, "q2", &c3), 0);
  /* a consumer layout that clashes with an existing queue adds nothing at all */
  wr_queue_args other = {.type = WR_QUEUE_CLASSIC};
  assert_int_equal(wr_topology_queue(t, "w.dlq", &other), 0);
  char *before = wr_topology_render(t);
  wr_consumer_queue q = {.queue = "w", .type = WR_QUEUE_QUORUM};
  assert_int_equal(wr_topology_consumer_queue(t, &q), WR_ECONFLICT);
  char *after = wr_topology_render(t);
  assert_string_equal(before, after);
  free(before);
  free(after);
  /* the same layout with other retry delays conflicts */
  unsigned d1[] = {1000}, d2[] = {2000};
  wr_consumer_queue r1 = {
      .queue = "r", .type = WR_QUEUE_QUORUM, .retry_delays_ms = d1, .n_retry_delays = 1};
  wr_consumer_queue r2 = r1;
  r2.retry_delays_ms = d2;
  assert_int_equal(wr_topology_consumer_queue(t, &r1), 0);
  assert_int_equal(wr_topology_consumer_queue(t, &r2), WR_ECONFLICT);
  wr_topology_free(t);
}

static void validation(void **state) {
  (void)state;
  wr_topology *t = topo();
  wr_queue_args ok = {.type = WR_QUEUE_QUORUM};
  /* names */
  assert_int_equal(wr_topology_exchange(t, "", "topic"), WR_EINVAL);
  assert_int_equal(wr_topology_exchange(t, NULL, "topic"), WR_EINVAL);
  assert_int_equal(wr_topology_exchange(t, "amq.topic", "topic"), WR_EINVAL);
  assert_int_equal(wr_topology_exchange(t, "a\nb", "topic"), WR_EINVAL);
  char long_name[300];
  memset(long_name, 'x', 256);
  long_name[256] = '\0';
  assert_int_equal(wr_topology_exchange(t, long_name, "topic"), WR_EINVAL);
  assert_int_equal(wr_topology_queue(t, long_name, &ok), WR_EINVAL);
  long_name[255] = '\0';
  assert_int_equal(wr_topology_queue(t, long_name, &ok), 0);
  /* exchange types: the delayed-message type would kill the connection (503) */
  assert_int_equal(wr_topology_exchange(t, "d", "x-delayed-message"), WR_EINVAL);
  assert_int_equal(wr_topology_exchange(t, "d", NULL), WR_EINVAL);
  assert_int_equal(wr_topology_exchange(t, "h", "x-consistent-hash"), 0);
  assert_int_equal(wr_topology_exchange(t, "hd", "headers"), 0);
  /* queue arguments */
  assert_int_equal(wr_topology_queue(t, "amq.q", &ok), WR_EINVAL);
  assert_int_equal(wr_topology_queue(t, "q", NULL), WR_EINVAL);
  wr_queue_args a = {.type = WR_QUEUE_CLASSIC, .delivery_limit = 3};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .dead_letter_routing_key = "k"};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .message_ttl_ms = -1};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .message_ttl_ms = 4294967296LL};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .at_least_once_dlx = true};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL); /* needs a DLX */
  a = (wr_queue_args){.type = (wr_queue_type)7};
  assert_int_equal(wr_topology_queue(t, "q", &a), WR_EINVAL);
  a = (wr_queue_args){.stream = true, .dead_letter_exchange = "x"};
  assert_int_equal(wr_topology_queue(t, "s", &a), WR_EINVAL);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .stream_max_age = "7D"};
  assert_int_equal(wr_topology_queue(t, "s", &a), WR_EINVAL); /* stream option on a non-stream */
  a = (wr_queue_args){.stream = true, .stream_max_age = "7D", .stream_max_bytes = 1000000};
  assert_int_equal(wr_topology_queue(t, "s", &a), 0);
  a = (wr_queue_args){.type = WR_QUEUE_QUORUM, .single_active_consumer = true};
  assert_int_equal(wr_topology_queue(t, "sac", &a), 0);
  /* bindings */
  assert_int_equal(wr_topology_bind(t, "", "ex", "k"), WR_EINVAL);
  assert_int_equal(wr_topology_bind(t, "q", NULL, "k"), WR_EINVAL);
  assert_int_equal(wr_topology_bind(t, "sac", "amq.topic", NULL), 0); /* binding to amq.* is fine */
  /* consumer layouts */
  wr_consumer_queue q = {.queue = NULL};
  assert_int_equal(wr_topology_consumer_queue(t, &q), WR_EINVAL);
  assert_int_equal(wr_topology_consumer_queue(t, NULL), WR_EINVAL);
  unsigned zero[] = {0};
  q = (wr_consumer_queue){.queue = "z", .retry_delays_ms = zero, .n_retry_delays = 1};
  assert_int_equal(wr_topology_consumer_queue(t, &q), WR_EINVAL);
  q = (wr_consumer_queue){.queue = "z", .retry_delays_ms = NULL, .n_retry_delays = 2};
  assert_int_equal(wr_topology_consumer_queue(t, &q), WR_EINVAL);
  memset(long_name, 'y', 250); /* "<250>.retry.1" is too long */
  long_name[250] = '\0';
  unsigned one[] = {10};
  q = (wr_consumer_queue){.queue = long_name, .retry_delays_ms = one, .n_retry_delays = 1};
  assert_int_equal(wr_topology_consumer_queue(t, &q), WR_EINVAL);
  char *s = wr_topology_render(t);
  assert_non_null(strstr(s, "queue s stream durable x-max-age=7D x-max-length-bytes=1000000\n"));
  assert_non_null(strstr(s, "queue sac quorum durable x-single-active-consumer=true\n"));
  assert_non_null(strstr(s, "bind sac <- amq.topic []\n"));
  assert_null(strstr(s, "queue q "));
  free(s);
  assert_int_equal(wr_topology_new(NULL), WR_EINVAL);
  wr_topology_free(NULL);
  wr_topology_free(t);
}

static void quoting_and_empty(void **state) {
  (void)state;
  wr_topology *t = topo();
  char *s = wr_topology_render(t);
  assert_non_null(s);
  assert_string_equal(s, "");
  free(s);
  s = wr_topology_render(NULL);
  assert_string_equal(s, "");
  free(s);
  wr_queue_args a = {.type = WR_QUEUE_CLASSIC};
  assert_int_equal(wr_topology_queue(t, "with space", &a), 0);
  assert_int_equal(wr_topology_queue(t, "q\"uote=", &a), 0);
  assert_int_equal(wr_topology_queue(t, "caf\xc3\xa9", &a), 0);
  s = wr_topology_render(t);
  assert_string_equal(s, "queue \"with space\" classic durable\n"
                         "queue \"q\\\"uote=\" classic durable\n"
                         "queue \"caf\\xc3\\xa9\" classic durable\n");
  free(s);
  wr_topology_free(t);
}

static void derived_names(void **state) {
  (void)state;
  char b[64];
  wr_topology_dlx_name("a.b", b, sizeof b);
  assert_string_equal(b, "a.b.dlx");
  wr_topology_dlq_name("a.b", b, sizeof b);
  assert_string_equal(b, "a.b.dlq");
  wr_topology_retry_name("a.b", 3, b, sizeof b);
  assert_string_equal(b, "a.b.retry.3");
  char small[6];
  wr_topology_retry_name("abcdef", 1, small, sizeof small);
  assert_string_equal(small, "abcde"); /* truncated, terminated */
  wr_topology_dlq_name(NULL, b, sizeof b);
  assert_string_equal(b, ".dlq");
  wr_topology_dlx_name("x", NULL, 0); /* no output buffer: nothing happens */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(consumer_layout_render),
      cmocka_unit_test(classic_layout),
      cmocka_unit_test(conflicts),
      cmocka_unit_test(validation),
      cmocka_unit_test(quoting_and_empty),
      cmocka_unit_test(derived_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
