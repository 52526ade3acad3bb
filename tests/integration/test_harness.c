/* test_harness.c: proves the test harness talks to the real servers: a queue is
 * declared, a message published and consumed back with rabbitmq-c, and a row
 * round-trips through a fresh PostgreSQL database with libpq. */
#include "harness.h"

#include <string.h>
#include <sys/time.h>

static void amqp_round_trip(void **state) {
  (void)state;
  amqp_connection_state_t c = wt_amqp_connect();
  char q[64];
  wt_unique(q, sizeof q, "harness");
  amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 0, 1, amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);

  const char *body = "hello warren";
  assert_int_equal(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
                                      amqp_cstring_bytes(body)),
                   AMQP_STATUS_OK);
  amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);

  amqp_envelope_t env;
  struct timeval tv = {10, 0};
  amqp_maybe_release_buffers(c);
  amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
  assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
  assert_int_equal(env.message.body.len, strlen(body));
  assert_memory_equal(env.message.body.bytes, body, strlen(body));
  amqp_destroy_envelope(&env);
  wt_amqp_close(c);
}

static void pg_round_trip(void **state) {
  (void)state;
  const char *url = wt_db_create("harness");
  PGconn *c = wt_pg_connect(url);
  PQclear(wt_pg_exec(c, "CREATE TABLE t (id int primary key, v text)"));
  const char *params[2] = {"7", "seven"};
  PGresult *r = PQexecParams(c, "INSERT INTO t VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  r = wt_pg_exec(c, "SELECT v FROM t WHERE id = 7");
  assert_int_equal(PQntuples(r), 1);
  assert_string_equal(PQgetvalue(r, 0, 0), "seven");
  PQclear(r);
  PQfinish(c);
  wt_db_drop(url);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(amqp_round_trip),
      cmocka_unit_test(pg_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
