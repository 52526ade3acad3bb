/* test_generated_e2e.c: the generated customer.v1 code on the real path: typed
 * ..._publish() into the outbox inside a transaction -> relay -> RabbitMQ (exchange
 * customer.events, in a private vhost so parallel tests never share it) -> consumer
 * with customer_v1_subscribe() -> the generated dispatcher -> typed handlers, which
 * receive every field as published and the meta the outbox filled in. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/db.h>
#include <warren/relay.h>
#include <warren/util.h>

#include "customer/v1/customer.warren.h"
#include "harness.h"

typedef struct seen {
  pthread_mutex_t mu;
  int created, deleted;
  bool type_ok, meta_ok;
  char name[64], email[64], reason[64], deleted_by[64], event_id[WR_UUID_STRLEN];
  uint64_t version;
  int64_t created_at_s;
  Customer__V1__CustomerStatus status;
  void *user;
} seen;

static void copy(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src ? src : "");
}

static int on_created(wr_msg *m, const Customer__V1__CustomerCreated *ev, void *user) {
  seen *s = user;
  const wr_meta *meta = wr_msg_meta(m);
  pthread_mutex_lock(&s->mu);
  s->created++;
  s->user = user;
  s->type_ok = wr_msg_type(m) == CUSTOMER_V1_CUSTOMER_CREATED_EVENT;
  s->meta_ok = meta == ev->meta && !strcmp(meta->event_type, CUSTOMER_V1_CUSTOMER_CREATED_TYPE) &&
               !strcmp(meta->aggregate_type, "customer") && !strcmp(meta->aggregate_id, "c-1") &&
               !strcmp(meta->source_service, "codegen-e2e") && wr_uuid_valid(meta->event_id) &&
               meta->occurred_at != NULL;
  copy(s->event_id, sizeof s->event_id, meta->event_id);
  copy(s->name, sizeof s->name, ev->data ? ev->data->name : NULL);
  copy(s->email, sizeof s->email, ev->data ? ev->data->email : NULL);
  s->status = ev->data ? ev->data->status : 0;
  s->version = ev->data ? ev->data->version : 0;
  s->created_at_s = ev->data && ev->data->created_at ? ev->data->created_at->seconds : 0;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int on_deleted(wr_msg *m, const Customer__V1__CustomerDeleted *ev, void *user) {
  seen *s = user;
  pthread_mutex_lock(&s->mu);
  s->deleted++;
  copy(s->reason, sizeof s->reason, ev->reason);
  copy(s->deleted_by, sizeof s->deleted_by, ev->deleted_by);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static bool both_seen(void *user) {
  seen *s = user;
  pthread_mutex_lock(&s->mu);
  bool done = s->created >= 1 && s->deleted >= 1;
  pthread_mutex_unlock(&s->mu);
  return done;
}

static void publish_all(PGconn *pg, char *created_id) {
  wr_err err = {0};
  if (wr_db_exec(pg, "BEGIN", &err) != 0)
    fail_msg("BEGIN: %s", err.msg);
  wr_outbox ob = {.conn = pg, .source_service = "codegen-e2e", .err = &err};

  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  at.seconds = 1700000000;
  Customer__V1__Customer data = CUSTOMER__V1__CUSTOMER__INIT;
  data.id = "c-1";
  data.name = "Ada Lovelace";
  data.email = "ada@example.org";
  data.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  data.created_at = &at;
  data.version = 1;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.aggregate_id = "c-1";
  meta.version = 1;
  Customer__V1__CustomerCreated created = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  created.meta = &meta;
  created.data = &data;
  if (customer_v1_customer_created_publish(&ob, &created) != 0)
    fail_msg("publish created: %s", err.msg);
  memcpy(created_id, ob.last_event_id, WR_UUID_STRLEN);

  /* not handled by the consumer below: its routing key is not bound, so the broker
   * returns it (mandatory) and it stays in the outbox */
  Customer__V1__CustomerUpdated updated = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  Warren__V1__EventMeta meta2 = WARREN__V1__EVENT_META__INIT;
  meta2.aggregate_id = "c-1";
  meta2.version = 2;
  updated.meta = &meta2;
  updated.data = &data;
  if (customer_v1_customer_updated_publish(&ob, &updated) != 0)
    fail_msg("publish updated: %s", err.msg);

  Customer__V1__CustomerDeleted deleted = CUSTOMER__V1__CUSTOMER_DELETED__INIT;
  Warren__V1__EventMeta meta3 = WARREN__V1__EVENT_META__INIT;
  meta3.aggregate_id = "c-1";
  meta3.version = 3;
  deleted.meta = &meta3;
  deleted.reason = "gdpr";
  deleted.deleted_by = "admin";
  if (customer_v1_customer_deleted_publish(&ob, &deleted) != 0)
    fail_msg("publish deleted: %s", err.msg);
  if (wr_db_exec(pg, "COMMIT", &err) != 0)
    fail_msg("COMMIT: %s", err.msg);
}

static void test_publish_relay_consume_typed(void **state) {
  const char *amqp_url = wt_vhost_create("codegen-e2e");
  char url[1024];
  snprintf(url, sizeof url, "%s", amqp_url);
  char db[512];
  snprintf(db, sizeof db, "%s", wt_db_create("codegen_e2e"));
  wr_err err = {0};
  PGconn *pg = NULL;
  if (wr_db_connect(db, "codegen-e2e", &pg, &err) != 0 || wr_db_migrate_runtime(pg, &err) != 0)
    fail_msg("database: %s", err.msg);

  wr_conn_opts co = WR_CONN_OPTS_INIT;
  co.urls = url;
  co.backoff_base_ms = 100;
  co.backoff_max_ms = 1000;
  static const unsigned delays[] = {200};
  wr_consumer_opts o = WR_CONSUMER_OPTS_INIT;
  o.queue = "codegen.e2e";
  o.database_url = db;
  o.amqp = &co;
  o.batch_size = 10;
  o.retry_delays_ms = delays;
  o.n_retry_delays = 1;
  wr_consumer *c = NULL;
  if (wr_consumer_new(&o, &c, &err) != 0)
    fail_msg("consumer: %s", err.msg);
  seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  customer_v1_handlers h = {.on_customer_created = on_created, .on_customer_deleted = on_deleted};
  assert_int_equal(customer_v1_subscribe(c, &h, &s), 0);
  /* declares customer.events, the queue and its two bindings before anything is sent */
  if (wr_consumer_declare(c, &err) != 0)
    fail_msg("declare: %s", err.msg);
  assert_int_equal(wr_consumer_start(c), 0);

  char created_id[WR_UUID_STRLEN];
  publish_all(pg, created_id);
  assert_int_equal(wt_pg_scalar(pg, "SELECT count(*) FROM warren_outbox"), 3);

  wr_relay_opts ro = WR_RELAY_OPTS_INIT;
  ro.database_url = db;
  ro.amqp = &co;
  ro.name = "codegen-e2e";
  wr_relay *r = NULL;
  if (wr_relay_new(&ro, &r, &err) != 0)
    fail_msg("relay: %s", err.msg);
  size_t total = 0;
  for (int i = 0; i < 200 && total < 2; i++) {
    size_t n = 0;
    if (wr_relay_run_once(r, &n, &err) != 0)
      wr_sleep_ms(100, NULL);
    total += n;
  }
  assert_int_equal(total, 2);
  assert_true(wt_wait_until(both_seen, &s, 60000));
  /* subscribe bound only the handled events: CustomerUpdated found no queue */
  assert_int_equal(wt_pg_scalar(pg, "SELECT count(*) FROM warren_outbox WHERE event_type = "
                                    "'customer.v1.CustomerUpdated'"),
                   1);
  assert_int_equal(wt_pg_scalar(pg, "SELECT count(*) FROM warren_outbox"), 1);

  wr_consumer_stop(c);
  assert_int_equal(wr_consumer_join(c), 0);
  pthread_mutex_lock(&s.mu);
  assert_int_equal(s.created, 1);
  assert_int_equal(s.deleted, 1);
  assert_true(s.type_ok);
  assert_true(s.meta_ok);
  assert_ptr_equal(s.user, &s);
  assert_string_equal(s.event_id, created_id);
  assert_string_equal(s.name, "Ada Lovelace");
  assert_string_equal(s.email, "ada@example.org");
  assert_int_equal(s.status, CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE);
  assert_int_equal(s.version, 1);
  assert_int_equal(s.created_at_s, 1700000000);
  assert_string_equal(s.reason, "gdpr");
  assert_string_equal(s.deleted_by, "admin");
  pthread_mutex_unlock(&s.mu);

  wr_consumer_stats st;
  wr_consumer_stats_get(c, &st);
  assert_int_equal(st.applied, 2);
  assert_int_equal(st.dead_lettered, 0);

  wr_relay_free(r);
  wr_consumer_free(c);
  PQfinish(pg);
  wt_db_drop(db);
  wt_vhost_delete(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_relay_consume_typed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
