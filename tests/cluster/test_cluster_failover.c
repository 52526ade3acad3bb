// warren-test: link=warren_devkit,warren_schemas timeout=1500
/* test_cluster_failover.c: the services on a 3-node RabbitMQ cluster while nodes go away.
 *
 * customer-service and order-service get the list of the three node URLs. The order
 * queue is a quorum queue replicated on every node (x-quorum-initial-group-size is not
 * set: the broker's default is the cluster size, checked here). Under steady load
 * (customers created and renamed through the REST API all the time):
 *   1. the node that leads the order queue is stopped: clients on it fail over to
 *      another node, the queue elects a new leader, the view converges with nothing
 *      lost; the node comes back;
 *   2. then another node (the new leader) is stopped, same checks, back;
 *   3. then two nodes at once: the quorum queue has no majority, publishes are not
 *      confirmed (the relay keeps the rows and publishes them again) and nothing is
 *      consumed; both come back and the view converges with nothing lost.
 * Times are printed (docs/SCALING.md quotes them). */
#include "../e2e/e2e.h"

static char vhost[96];

static void stack_cmd(const char *args) {
  int rc = wt_stack(args);
  if (rc != 0)
    fail_msg("scripts/stack %s failed (%d)", args, rc);
}

/* The index of the node leading quorum queue q in the test's vhost. */
static int queue_leader(const char *q) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/scripts/stack queue-leader --queue %s --vhost %s --dir %s",
           getenv("WARREN_SOURCE_DIR"), q, vhost, getenv("WARREN_STACK_DIR"));
  for (int attempt = 0; attempt < 50; attempt++) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int k = -1;
    if (fscanf(p, "%d", &k) != 1)
      k = -1;
    pclose(p);
    if (k >= 0)
      return k;
    usleep(200000); /* an election in progress */
  }
  fail_msg("no leader for %s", q);
  return -1;
}

static int queue_members(const char *q) {
  char cmd[1024];
  snprintf(
      cmd, sizeof cmd,
      "%s/scripts/stack ctl list_queues -p %s name members --dir %s | awk -F'\\t' '$1 == \"%s\"'"
      " | grep -o '@localhost' | wc -l",
      getenv("WARREN_SOURCE_DIR"), vhost, getenv("WARREN_STACK_DIR"), q);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  int n = 0;
  if (fscanf(p, "%d", &n) != 1)
    n = 0;
  pclose(p);
  return n;
}

/* ---- steady load --------------------------------------------------------------- */

typedef struct load {
  e2e *e;
  volatile int stop;
  pthread_mutex_t mu;
  json_t *ids;
  long created, renamed, failed;
  pthread_t th;
} load;

static void *load_run(void *arg) {
  load *l = arg;
  for (long i = 0; !l->stop; i++) {
    char url[300], body[200];
    const char *method = "POST";
    pthread_mutex_lock(&l->mu);
    size_t n = json_array_size(l->ids);
    if (i % 3 != 0 && n > 0) {
      method = "PATCH";
      snprintf(url, sizeof url, "%s/customers/%s", l->e->customer.url,
               json_string_value(json_array_get(l->ids, (size_t)i % n)));
      snprintf(body, sizeof body, "{\"name\":\"renamed %ld\"}", i);
    } else {
      snprintf(url, sizeof url, "%s/customers", l->e->customer.url);
      snprintf(body, sizeof body, "{\"name\":\"load %ld\",\"email\":\"load-%ld-%d@example.org\"}",
               i, i, (int)getpid());
    }
    pthread_mutex_unlock(&l->mu);
    const char *h[] = {"Content-Type: application/json", NULL};
    wr_http_request rq = {.method = method,
                          .url = url,
                          .headers = h,
                          .body = body,
                          .body_len = strlen(body),
                          .timeout_ms = 30000};
    wr_http_response res;
    int rc = wr_http_do(&rq, &res, NULL);
    pthread_mutex_lock(&l->mu);
    if (rc == 0 && res.status == 201) {
      json_t *j = json_loadb(res.body, res.len, 0, NULL);
      json_array_append(l->ids, json_object_get(j, "id"));
      json_decref(j);
      l->created++;
    } else if (rc == 0 && res.status == 200) {
      l->renamed++;
    } else {
      l->failed++;
    }
    pthread_mutex_unlock(&l->mu);
    wr_http_response_free(&res);
    usleep(20000);
  }
  return NULL;
}

static void load_start(load *l) {
  l->stop = 0;
  assert_int_equal(pthread_create(&l->th, NULL, load_run, l), 0);
}

static void load_stop(load *l) {
  l->stop = 1;
  pthread_join(l->th, NULL);
}

static double metric(dk_proc *p, const char *series) {
  double v = 0;
  wr_err err = {0};
  if (dk_metric(p->url, series, &v, &err) != 0)
    return 0;
  return v;
}

static bool outbox_empty(void *user) {
  e2e *e = user;
  return e2e_scalar(e->customer_db, "SELECT count(*) FROM warren_outbox") == 0;
}

/* Stops `down` nodes under load, keeps the load on for hold_ms, checks convergence
 * (while they are down if the queue keeps a majority, else after they are back),
 * starts them again. */
static void phase(e2e *e, load *l, const char *what, const int *down, int n_down, int hold_ms) {
  long before = l->created + l->renamed;
  double relay_failed0 = metric(&e->customer, "warren_outbox_failed_total");
  load_start(l);
  usleep(2000000);
  int64_t t0 = wt_now_ms();
  for (int i = 0; i < n_down; i++) {
    char args[64];
    snprintf(args, sizeof args, "rabbit-stop --node %d", down[i]);
    stack_cmd(args);
  }
  int64_t t_down = wt_now_ms();
  usleep((useconds_t)hold_ms * 1000);
  load_stop(l);
  bool majority = n_down < 2;
  int64_t conv = -1;
  if (majority) {
    int leader = queue_leader(E2E_QUEUE);
    for (int i = 0; i < n_down; i++)
      assert_int_not_equal(leader, down[i]);
    conv = e2e_wait_converged(e, 180000);
    printf("[ cluster  ] %s: new leader n%d; view equal to the source %lld ms after the last"
           " write\n",
           what, leader, (long long)conv);
  }
  int64_t t_start = wt_now_ms();
  for (int i = 0; i < n_down; i++) {
    char args[64];
    snprintf(args, sizeof args, "rabbit-start --node %d", down[i]);
    stack_cmd(args);
  }
  int64_t t_up = wt_now_ms();
  if (!majority) {
    conv = e2e_wait_converged(e, 300000);
    printf("[ cluster  ] %s: down %lld ms under load; view equal to the source %lld ms after"
           " the nodes were back\n",
           what, (long long)(t_start - t_down), (long long)conv);
  }
  if (!wt_wait_until(outbox_empty, e, 120000))
    fail_msg("%s: the outbox did not drain", what);
  printf("[ cluster  ] %s: %ld writes (stopping took %lld ms, starting %lld ms); relay"
         " publishes not confirmed and published again: %.0f; failed writes: %ld\n",
         what, l->created + l->renamed - before, (long long)(t_down - t0),
         (long long)(t_up - t_start),
         metric(&e->customer, "warren_outbox_failed_total") - relay_failed0, l->failed);
  assert_int_equal(l->failed, 0); /* the REST API never depends on the broker */
  assert_int_equal(e2e_view_diff(e, true), 0);
}

static void failover(void **state) {
  (void)state;
  assert_true(atoi(wt_require("WARREN_RABBIT_NODES")) == 3);
  e2e e;
  e2e_init(&e, "cluster");
  /* the vhost is the path of every URL of the list */
  char url0[512];
  snprintf(url0, sizeof url0, "%.*s", (int)strcspn(e.amqp_url, ","), e.amqp_url);
  snprintf(vhost, sizeof vhost, "%s", strrchr(url0, '/') + 1);
  e2e_start_customer(&e, NULL);
  e2e_start_order(&e, NULL);
  json_t *ids = e2e_create_many(&e, "cluster", 100, 4);
  e2e_wait_converged(&e, 60000);
  assert_int_equal(queue_members(E2E_QUEUE), 3); /* replicated on every node */

  load l = {.e = &e, .ids = ids};
  pthread_mutex_init(&l.mu, NULL);

  int k1 = queue_leader(E2E_QUEUE);
  int down1[1] = {k1};
  phase(&e, &l, "leader stopped", down1, 1, 8000);

  int k2 = queue_leader(E2E_QUEUE);
  if (k2 == k1) /* leadership went back to the restarted node: take another */
    k2 = (k1 + 1) % 3;
  int down2[1] = {k2};
  phase(&e, &l, "another node stopped", down2, 1, 8000);

  int down3[2] = {(k2 + 1) % 3, (k2 + 2) % 3};
  phase(&e, &l, "two nodes stopped (no majority)", down3, 2, 10000);

  printf("[ cluster  ] in all: %ld customers created, %ld renames under load\n", l.created,
         l.renamed);
  assert_int_equal(e2e_stop(&e.order), 0);
  assert_int_equal(e2e_stop(&e.customer), 0);
  pthread_mutex_destroy(&l.mu);
  json_decref(ids);
  e2e_done(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failover),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
