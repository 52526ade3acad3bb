// warren-test: link=warren_test_events timeout=300
/* test_consumer_crash.c: the consumer in a child process that really dies.
 *
 * - kill between commit and ack: the child _exits right after its batch committed;
 *   RabbitMQ requeues the unacked batch, a fresh consumer finds every event in the
 *   inbox (duplicates) and nothing is applied twice;
 * - crash loop: a handler that kills the process every time. RabbitMQ's quorum
 *   x-delivery-limit (opts.delivery_limit) ends the loop by dead-lettering the message
 *   itself (x-death reason delivery_limit); the events behind it are applied. The
 *   broker counts a delivery for every unacked message of a dying connection, so the
 *   messages prefetched together with the crashing one count too: with prefetch 200
 *   they would reach the DLQ with it (replayable). This test uses prefetch 1 to show
 *   the mechanism; docs/RELIABILITY.md should state the trade-off.
 *
 * Children only use the consumer they create (never the parent's connections) and
 * leave with _exit. */
#include "test_consumer_fixture.h"

#include <signal.h>
#include <sys/wait.h>

static void exit_after_commit(wr_consumer *c, wr__consumer_point point, void *user) {
  (void)c;
  (void)user;
  if (point == WR__CONSUMER_AFTER_COMMIT)
    _exit(7);
}

/* Runs a consumer for f in a child process until it exits by itself or timeout_ms
 * passes (then it is killed). Returns the child's exit code, or 128 + signal. */
static int run_child(fx *f, bool hook, int timeout_ms) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    wr_consumer *c = NULL;
    if (wr_consumer_new(&f->opts, &c, NULL) != 0)
      _exit(20);
    for (int i = 0; i < 3; i++)
      if (wr_consumer_on(c, &f->types[i], fx_handle, NULL, f) != 0)
        _exit(21);
    if (hook)
      wr__consumer_set_hook(c, exit_after_commit, NULL);
    if (wr_consumer_start(c) != 0)
      _exit(22);
    sleep(60);
    _exit(23);
  }
  int status = 0;
  for (int64_t end = wt_now_ms() + timeout_ms;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (wt_now_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(20000);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void killed_between_commit_and_ack(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "killack");
  f.opts.batch_size = 100;
  f.opts.batch_wait_ms = 300;
  fx_create(&f); /* declares the topology; this consumer itself never runs */
  wr_consumer_free(f.c);
  f.c = NULL;
  for (int i = 0; i < 25; i++) {
    char agg[16];
    snprintf(agg, sizeof agg, "k%02d", i);
    fx_simple(&f, TESTEV_CREATED, agg, 1, "ok");
  }
  assert_int_equal(run_child(&f, true, 30000), 7);
  /* committed in the child, never acked */
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 25);
  fx_wait_depth(&f, "", 25, 20000);
  fx_start(&f);
  FX_WAIT_STAT(&f, duplicates, 25, 30000);
  wr_consumer_stats s = fx_stats(&f);
  assert_int_equal(s.applied, 0);
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM history"), 25);
  fx_stop(&f, "after kill");
  assert_int_equal(fx_depth(&f, ""), 0);
  fx_done(&f);
}

static void crash_loop_ends_in_dlq(void **state) {
  (void)state;
  fx f;
  fx_init(&f, "crashloop");
  f.opts.delivery_limit = 2;
  f.opts.batch_size = 1;
  f.opts.prefetch = 1; /* only the crashing message is in flight when the process dies */
  fx_create(&f);
  wr_consumer_free(f.c);
  f.c = NULL;
  fx_simple(&f, TESTEV_CREATED, "boom", 1, "crash");
  fx_simple(&f, TESTEV_CREATED, "fine1", 1, "ok");
  fx_simple(&f, TESTEV_CREATED, "fine2", 1, "ok");
  int runs = 0;
  while (fx_depth(&f, ".dlq") < 1) {
    assert_true(runs < 8);
    int code = run_child(&f, false, 30000);
    runs++;
    printf("[ crash    ] child run %d exited with %d\n", runs, code);
    /* the broker requeues or dead-letters the crashing message after the process's
     * death, asynchronously: wait for either before deciding that another run is
     * needed (a run started too early consumes the healthy messages and then waits
     * for its timeout) */
    for (int64_t end = wt_now_ms() + 10000;
         fx_depth(&f, ".dlq") < 1 && fx_depth(&f, "") < 3 && wt_now_ms() < end;)
      usleep(20000);
  }
  printf("[ figures  ] crash loop ended by the broker after %d process deaths\n", runs);
  /* the DLQ copy is RabbitMQ's own, with reason delivery_limit */
  char q[160];
  snprintf(q, sizeof q, "%s.dlq", f.queue);
  amqp_envelope_t env;
  wr_err e;
  wr_err_clear(&e);
  /* the publisher's connection sat idle while the children ran: on a loaded machine
   * long enough for the broker to close it for missed heartbeats. A fresh one. */
  wr_conn_close(f.pub);
  if (wr_conn_open(f.pub, &e) != 0)
    fail_msg("reopen: %s", e.msg);
  if (wr_conn_get(f.pub, q, &env, &e) != 0)
    fail_msg("get from %s: %s", q, e.msg);
  const amqp_field_value_t *xd = wr_table_get(&env.message.properties.headers, "x-death");
  assert_non_null(xd);
  assert_int_equal(xd->kind, AMQP_FIELD_KIND_ARRAY);
  assert_true(xd->value.array.num_entries >= 1);
  const amqp_field_value_t *first = &xd->value.array.entries[0];
  assert_int_equal(first->kind, AMQP_FIELD_KIND_TABLE);
  char reason[64];
  assert_true(wr_table_get_str(&first->value.table, "reason", reason, sizeof reason));
  assert_string_equal(reason, "delivery_limit");
  assert_int_equal(wr_conn_ack(f.pub, env.delivery_tag, false, &e), 0);
  amqp_destroy_envelope(&env);
  /* and the healthy ones behind it are applied */
  fx_start(&f);
  for (int64_t end = wt_now_ms() + 30000;;) {
    if (fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id IN ('fine1', 'fine2')") == 2)
      break;
    if (wt_now_ms() > end)
      fail_msg("healthy events behind the crashing one were not applied");
    usleep(50000);
  }
  assert_int_equal(fx_scalar(&f, "SELECT count(*) FROM widgets WHERE id = 'boom'"), 0);
  fx_stop(&f, "crash loop");
  fx_done(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_between_commit_and_ack),
      cmocka_unit_test(crash_loop_ends_in_dlq),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
