/* test_schema_registry.c: the process-wide schema registry (runtime/src/schema.c) with
 * generated schemas (customer.v1, order.v1, kinds.v1) and the hand-written testev one.
 *
 * The registry is global and append-only, so the tests run in a fixed order and each
 * states what it expects to be registered already. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testev_schema.h"
#include "customer/v1/customer.warren.h"
#include "kinds/v1/kinds.warren.h"
#include "order/v1/order.warren.h"

static void count_cb(const wr_event_type *t, void *user) {
  (*(size_t *)user)++;
}

static size_t registered_events(void) {
  size_t n = 0;
  wr_schema_foreach_event(count_cb, &n);
  return n;
}

static void test_kind_names(void **state) {
  assert_string_equal(wr_event_kind_name(WR_KIND_CREATED), "created");
  assert_string_equal(wr_event_kind_name(WR_KIND_UPDATED), "updated");
  assert_string_equal(wr_event_kind_name(WR_KIND_DELETED), "deleted");
  assert_string_equal(wr_event_kind_name(WR_KIND_SNAPSHOT), "snapshot");
  assert_string_equal(wr_event_kind_name(WR_KIND_OTHER), "other");
  assert_string_equal(wr_event_kind_name(WR_KIND_UNSPECIFIED), "unspecified");
  assert_string_equal(wr_event_kind_name((wr_event_kind)99), "unspecified");
  assert_string_equal(wr_event_kind_name((wr_event_kind)-1), "unspecified");
}

/* Nothing registered yet. */
static void test_empty_registry(void **state) {
  assert_null(wr_schema_find_event(CUSTOMER_V1_CUSTOMER_CREATED_TYPE));
  assert_null(wr_schema_find_event(NULL));
  assert_null(wr_schema_json_names(&customer__v1__customer__descriptor));
  assert_null(wr_schema_json_names(NULL));
  assert_int_equal(registered_events(), 0);
  wr_schema_foreach_event(NULL, NULL); /* no-op */
}

/* A copy of testev's table (testev_schema.c) that each case below breaks in one way. */
static wr_event_type bad_events[1];
static const char *const bad_names[] = {"id", "name", "count"};
static wr_json_names bad_json[1];
static wr_schema bad;

static void reset_bad(void) {
  bad_events[0] = testev_events[TESTEV_CREATED];
  bad_events[0].schema = &bad;
  bad_json[0] = (wr_json_names){&testev__v1__widget__descriptor, bad_names};
  bad = (wr_schema){WR_CODEGEN_ABI, "bad.proto", "testev.v1", TESTEV_EXCHANGE, 1,
                    bad_events,     1,           bad_json};
}

static void test_refuses_malformed_tables(void **state) {
  assert_int_equal(wr_schema_register(NULL), WR_EINVAL);

  reset_bad();
  assert_int_equal(wr_schema_register(&bad), 0); /* the unbroken copy is fine... */
  /* ...which registered testev.v1.WidgetCreated: undo by using fresh tables below is
   * impossible (append-only), so the copy keeps that type for later tests. */
  assert_ptr_equal(wr_schema_find_event("testev.v1.WidgetCreated"), &bad_events[0]);

  static wr_event_type e2[1];
  static wr_schema s2;
  struct {
    const char *what;
    int want;
  } cases[] = {
      {"abi", WR_ESCHEMA},
      {"type differs from descriptor", WR_EINVAL},
      {"kind unspecified", WR_EINVAL},
      {"kind unknown", WR_EINVAL},
      {"no exchange", WR_EINVAL},
      {"no aggregate type", WR_EINVAL},
      {"schema back-pointer", WR_EINVAL},
      {"no meta field", WR_EINVAL},
      {"not a descriptor", WR_EINVAL},
      {"events NULL", WR_EINVAL},
      {"names NULL", WR_EINVAL},
      {"json descriptor NULL", WR_EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    e2[0] = testev_events[TESTEV_UPDATED];
    e2[0].schema = &s2;
    s2 = (wr_schema){WR_CODEGEN_ABI, "bad2.proto", "testev.v1", TESTEV_EXCHANGE, 1, e2, 0, NULL};
    static const ProtobufCMessageDescriptor not_a_descriptor;
    static const wr_json_names json_null_names[] = {{&testev__v1__widget__descriptor, NULL}};
    static const wr_json_names json_null_desc[] = {{NULL, bad_names}};
    switch (i) {
    case 0:
      s2.abi = WR_CODEGEN_ABI + 1;
      break;
    case 1:
      e2[0].type = "testev.v1.SomethingElse";
      break;
    case 2:
      e2[0].kind = WR_KIND_UNSPECIFIED;
      break;
    case 3:
      e2[0].kind = (wr_event_kind)6;
      break;
    case 4:
      e2[0].exchange = "";
      break;
    case 5:
      e2[0].aggregate_type = NULL;
      break;
    case 6:
      e2[0].schema = &bad;
      break;
    case 7: /* Widget is no event: its field 1 is `string id` */
      e2[0].type = "testev.v1.Widget";
      e2[0].descriptor = &testev__v1__widget__descriptor;
      break;
    case 8:
      e2[0].descriptor = &not_a_descriptor;
      break;
    case 9:
      s2.events = NULL;
      break;
    case 10:
      s2.n_json = 1;
      s2.json = json_null_names;
      break;
    default:
      s2.n_json = 1;
      s2.json = json_null_desc;
      break;
    }
    int rc = wr_schema_register(&s2);
    if (rc != cases[i].want)
      fail_msg("%s: got %s, want %s", cases[i].what, wr_errname(rc), wr_errname(cases[i].want));
    /* a refused schema leaves no trace */
    assert_null(wr_schema_find_event("testev.v1.WidgetUpdated"));
    assert_int_equal(registered_events(), 1);
  }
}

static void test_register_and_find(void **state) {
  assert_int_equal(wr_schema_register(&customer_v1_schema), 0);
  for (size_t i = 0; i < customer_v1_schema.n_events; i++) {
    const wr_event_type *t = &customer_v1_events[i];
    assert_ptr_equal(wr_schema_find_event(t->type), t);
  }
  assert_ptr_equal(wr_schema_find_event(CUSTOMER_V1_CUSTOMER_DELETED_TYPE),
                   CUSTOMER_V1_CUSTOMER_DELETED_EVENT);
  assert_null(wr_schema_find_event("customer.v1.CustomerMerged"));
  assert_null(wr_schema_find_event("customer.v1.customercreated")); /* case matters */
  assert_null(wr_schema_find_event(""));

  const char *const *names = wr_schema_json_names(&customer__v1__customer__descriptor);
  assert_non_null(names);
  assert_string_equal(names[0], "id");
  assert_string_equal(names[4], "createdAt");
  assert_string_equal(names[6], "version");
  names = wr_schema_json_names(&customer__v1__field_change__descriptor);
  assert_string_equal(names[1], "oldValue");
  /* messages of other files are not part of customer's table */
  assert_null(wr_schema_json_names(&warren__v1__event_meta__descriptor));
  assert_null(wr_schema_json_names(&google__protobuf__timestamp__descriptor));

  /* idempotent */
  assert_int_equal(registered_events(), 1 + 4);
  assert_int_equal(wr_schema_register(&customer_v1_schema), 0);
  assert_int_equal(registered_events(), 1 + 4);
}

typedef struct order_log {
  const char *types[64];
  size_t n;
} order_log;

static void log_cb(const wr_event_type *t, void *user) {
  order_log *l = user;
  if (l->n < 64)
    l->types[l->n++] = t->type;
}

static void test_foreach_in_registration_order(void **state) {
  assert_int_equal(wr_schema_register(&order_v1_schema), 0);
  assert_int_equal(wr_schema_register(&kinds_v1_schema), 0);
  order_log l = {0};
  wr_schema_foreach_event(log_cb, &l);
  assert_int_equal(l.n, 1 + 4 + 1 + 5);
  assert_string_equal(l.types[0], "testev.v1.WidgetCreated");
  assert_string_equal(l.types[1], CUSTOMER_V1_CUSTOMER_CREATED_TYPE);
  assert_string_equal(l.types[4], CUSTOMER_V1_CUSTOMER_SNAPSHOT_TYPE);
  assert_string_equal(l.types[5], ORDER_V1_ORDER_PLACED_TYPE);
  assert_string_equal(l.types[6], KINDS_V1_SCALARS_SET_TYPE);
  assert_string_equal(l.types[10], KINDS_V1_KINDS_SNAPSHOT_TYPE);
  const char *const *names = wr_schema_json_names(&kinds__v1__scalars_set__descriptor);
  assert_string_equal(names[2], "customName");
}

/* Two definitions of one routing key: refused, and the refused schema adds nothing. */
static void test_conflicting_definitions(void **state) {
  static ProtobufCMessageDescriptor other_desc; /* "customer.v1.CustomerCreated", elsewhere */
  memcpy(&other_desc, &customer__v1__customer_created__descriptor, sizeof other_desc);
  static wr_event_type ev[2];
  static wr_schema s;
  ev[0] = testev_events[TESTEV_DELETED]; /* a type not registered yet */
  ev[0].schema = &s;
  ev[1] = customer_v1_events[0];
  ev[1].descriptor = &other_desc;
  ev[1].schema = &s;
  s = (wr_schema){
      WR_CODEGEN_ABI, "other/customer.proto", "customer.v1", "customer.events", 2, ev, 0, NULL};
  size_t before = registered_events();
  assert_int_equal(wr_schema_register(&s), WR_ESCHEMA);
  assert_null(wr_schema_find_event("testev.v1.WidgetDeleted"));
  assert_ptr_equal(wr_schema_find_event(CUSTOMER_V1_CUSTOMER_CREATED_TYPE),
                   CUSTOMER_V1_CUSTOMER_CREATED_EVENT);
  assert_int_equal(registered_events(), before);

  /* same descriptor, another exchange: also two definitions of the routing */
  ev[1].descriptor = customer_v1_events[0].descriptor;
  ev[1].exchange = "elsewhere.events";
  assert_int_equal(wr_schema_register(&s), WR_ESCHEMA);
  assert_int_equal(registered_events(), before);

  /* two events of one type inside one schema */
  ev[1] = ev[0];
  assert_int_equal(wr_schema_register(&s), 0); /* same descriptor + exchange: harmless */
  assert_int_equal(registered_events(), before + 1);
  assert_ptr_equal(wr_schema_find_event("testev.v1.WidgetDeleted"), &ev[0]);
}

/* The same generated type reached through a second table (e.g. a hand-written one):
 * accepted, lookups keep the first, the walk reports the type once; for JSON names the
 * first registration wins. */
static void test_same_type_twice_first_wins(void **state) {
  static const char *const other_names[] = {"ID", "NAME", "COUNT"};
  static const wr_json_names json[] = {{&testev__v1__widget__descriptor, other_names}};
  static wr_event_type ev[1];
  static wr_schema s;
  ev[0] = testev_events[TESTEV_CREATED];
  ev[0].schema = &s;
  s = (wr_schema){WR_CODEGEN_ABI, "again.proto", "testev.v1", TESTEV_EXCHANGE, 1, ev, 1, json};
  size_t before = registered_events();
  assert_int_equal(wr_schema_register(&s), 0);
  assert_int_equal(registered_events(), before);
  assert_ptr_equal(wr_schema_find_event("testev.v1.WidgetCreated"), &bad_events[0]);
  assert_string_equal(wr_schema_json_names(&testev__v1__widget__descriptor)[0], "id");

  /* the real testev table: WidgetUpdated is new, the other two are known */
  assert_int_equal(wr_schema_register(&testev_schema), 0);
  assert_int_equal(registered_events(), before + 1);
  assert_ptr_equal(wr_schema_find_event("testev.v1.WidgetUpdated"), &testev_events[TESTEV_UPDATED]);
}

static size_t callbacks;
static void register_from_callback(const wr_event_type *t, void *user) {
  callbacks++;
  /* the walk holds no lock: calling back into the registry must not deadlock */
  assert_int_equal(wr_schema_register(&customer_v1_schema), 0);
  assert_non_null(wr_schema_find_event(t->type));
}

static void test_callback_may_use_registry(void **state) {
  callbacks = 0;
  wr_schema_foreach_event(register_from_callback, NULL);
  assert_int_equal(callbacks, registered_events());
}

/* ---- concurrency ------------------------------------------------------------------- */

static const wr_schema *const all[] = {&customer_v1_schema, &order_v1_schema, &kinds_v1_schema,
                                       &testev_schema};

static void *hammer(void *arg) {
  size_t id = (size_t)arg;
  intptr_t bad_results = 0;
  for (int i = 0; i < 300; i++) {
    const wr_schema *s = all[(id + (size_t)i) % 4];
    if (wr_schema_register(s) != 0)
      bad_results++;
    for (size_t k = 0; k < s->n_events; k++)
      if (wr_schema_find_event(s->events[k].type) == NULL)
        bad_results++;
    for (size_t k = 0; k < s->n_json; k++)
      if (wr_schema_json_names(s->json[k].descriptor) == NULL)
        bad_results++;
    size_t n = 0;
    wr_schema_foreach_event(count_cb, &n);
    if (n < 13)
      bad_results++;
  }
  return (void *)bad_results;
}

static void test_concurrent_use(void **state) {
  pthread_t th[8];
  for (size_t i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)i), 0);
  for (size_t i = 0; i < 8; i++) {
    void *bad_results = NULL;
    assert_int_equal(pthread_join(th[i], &bad_results), 0);
    assert_int_equal((intptr_t)bad_results, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kind_names),
      cmocka_unit_test(test_empty_registry),
      cmocka_unit_test(test_refuses_malformed_tables),
      cmocka_unit_test(test_register_and_find),
      cmocka_unit_test(test_foreach_in_registration_order),
      cmocka_unit_test(test_conflicting_definitions),
      cmocka_unit_test(test_same_type_twice_first_wins),
      cmocka_unit_test(test_callback_may_use_registry),
      cmocka_unit_test(test_concurrent_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
