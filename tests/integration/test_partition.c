// warren-test: link=warren_test_events timeout=1200
/* test_partition.c: the partitioned consumer group (wr_consumer_opts.partitions).
 *
 * - the layout as data: names, order, arguments, refusals, conflicts;
 * - routing on the broker: the consistent-hash exchange sends every event of an
 *   aggregate (header x-aggregate-id) to one partition, messages without the header
 *   are routed too, and a retry tier hands a message back to its aggregate's partition;
 * - one instance: every partition is consumed, per-aggregate order holds, a failing
 *   event goes through a retry tier and comes back;
 * - three instances (child processes) sharing the group: the partitions spread over
 *   them, per-aggregate apply order is strictly increasing for every aggregate, no
 *   event is skipped as stale in steady state, one instance is killed (SIGKILL)
 *   mid-run and the others take its partitions over with nothing lost;
 * - throughput with 1, 2 and 3 instances (reported, not asserted: the machine is
 *   shared).
 *
 * The handler records every applied event in `applied` and every stale skip in
 * `stale`, inside the consumer's transaction, with the pid of the instance. */
#include "test_consumer_fixture.h"

#include <signal.h>
#include <sys/wait.h>

#define PT_PARTS 6

/* ---- the recording handler ------------------------------------------------------- */

typedef struct pt_cfg {
  unsigned work_us; /* per-event "remote call" inside the handler (0 = none) */
} pt_cfg;

static int pt_exec(wr_msg *m, const char *sql, int n, const char *const *p) {
  PGresult *r = PQexecParams(wr_msg_db(m), sql, n, NULL, p, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok ? 0 : wr_msg_fail(m, WR_EDB, "%s", PQerrorMessage(wr_msg_db(m)));
}

static int pt_handle(wr_msg *m, const ProtobufCMessage *ev, wr_fnptr fn, void *user) {
  (void)fn;
  const pt_cfg *cfg = user;
  const wr_meta *meta = wr_msg_meta(m);
  const Testev__V1__Widget *w = wr_msg_type(m)->kind == WR_KIND_DELETED
                                    ? NULL
                                    : ((const Testev__V1__WidgetCreated *)ev)->data;
  const char *name = w && w->name ? w->name : "";
  if (strncmp(name, "fail-until-", 11) == 0 && wr_msg_attempt(m) < (unsigned)atoi(name + 11))
    return wr_msg_fail(m, WR_EHANDLER, "transient failure at attempt %u", wr_msg_attempt(m));
  if (cfg && cfg->work_us)
    usleep(cfg->work_us);
  char ver[24], pid[16];
  snprintf(ver, sizeof ver, "%" PRIu64, meta->version);
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  const char *p[3] = {meta->aggregate_id, ver, pid};
  int g = wr_msg_guard(m);
  if (g < 0)
    return g;
  if (g == 0)
    return pt_exec(m, "INSERT INTO stale (id, version, pid) VALUES ($1, $2, $3)", 3, p);
  int rc = pt_exec(m, "INSERT INTO applied (id, version, pid) VALUES ($1, $2, $3)", 3, p);
  if (rc == 0)
    rc = pt_exec(m,
                 "INSERT INTO widgets (id, name, count, version) VALUES ($1, 'w', 0, $2)"
                 " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                 2, p);
  return rc;
}

/* ---- setup --------------------------------------------------------------------- */

static void pt_init(fx *f, const char *name, unsigned parts) {
  fx_init(f, name);
  PQclear(wt_pg_exec(f->pg, "CREATE TABLE applied (seq bigserial PRIMARY KEY, id text NOT NULL,"
                            " version bigint NOT NULL, pid int NOT NULL,"
                            " at timestamptz NOT NULL DEFAULT clock_timestamp())"));
  PQclear(wt_pg_exec(f->pg, "CREATE TABLE stale (seq bigserial PRIMARY KEY, id text NOT NULL,"
                            " version bigint NOT NULL, pid int NOT NULL)"));
  f->opts.partitions = parts;
  f->opts.rebalance_interval_ms = 1000;
  f->opts.prefetch = 100;
  f->opts.batch_size = 50;
  f->opts.batch_wait_ms = 5;
}

static wr_consumer *pt_consumer(fx *f, pt_cfg *cfg) {
  wr_consumer *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_new(&f->opts, &c, &e) != 0)
    return NULL;
  for (int i = 0; i < 3; i++)
    if (wr_consumer_on(c, &f->types[i], pt_handle, NULL, cfg) != 0) {
      wr_consumer_free(c);
      return NULL;
    }
  return c;
}

/* Declares the layout (without consuming) so events published before any instance
 * runs are kept. */
static void pt_declare(fx *f) {
  pt_cfg cfg = {0};
  wr_consumer *c = pt_consumer(f, &cfg);
  assert_non_null(c);
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_declare(c, &e) != 0)
    fail_msg("declare: %s", e.msg);
  wr_consumer_free(c);
}

static void pt_done(fx *f) {
  amqp_connection_state_t a = wt_amqp_connect();
  char name[200];
  for (unsigned k = 0; k < f->opts.partitions; k++) {
    wr_topology_partition_name(f->queue, k, name, sizeof name);
    wt_amqp_delete_queue(a, name);
  }
  wr_topology_members_name(f->queue, name, sizeof name);
  wt_amqp_delete_queue(a, name);
  wr_topology_partition_exchange_name(f->queue, name, sizeof name);
  wt_amqp_delete_exchange(a, name);
  wt_amqp_close(a);
  fx_done(f);
}

/* ---- publishing the way the relay does (type, message id, x-aggregate-id) ------- */

typedef struct pt_pub {
  uint64_t last_seq;
  unsigned unconfirmed;
  int worst;
} pt_pub;

static void pt_confirm_cb(wr_conn *c, uint64_t seq, int status, void *user) {
  (void)c;
  (void)seq;
  pt_pub *p = user;
  if (status != 0)
    p->worst = status;
}

static void pt_flush(fx *f, pt_pub *p) {
  if (p->unconfirmed == 0)
    return;
  wr_err e;
  wr_err_clear(&e);
  if (wr_conn_wait_confirms(f->pub, p->last_seq, 30000, pt_confirm_cb, p, &e) != 0)
    fail_msg("confirms: %s", e.msg);
  assert_int_equal(p->worst, 0);
  p->unconfirmed = 0;
}

static void pt_send(fx *f, pt_pub *p, const char *agg, uint64_t version, const char *name,
                    bool header) {
  fx_ev ev = {.kind = version == 1 ? TESTEV_CREATED : TESTEV_UPDATED,
              .agg_id = agg,
              .version = version,
              .name = name ? name : "w"};
  uint8_t *buf;
  char id[WR_UUID_STRLEN];
  size_t n = fx_pack(f, &ev, &buf, id);
  const char *type = f->types[ev.kind].type;
  amqp_table_entry_t h[1];
  h[0].key = amqp_cstring_bytes(WR_PARTITION_HASH_HEADER);
  h[0].value.kind = AMQP_FIELD_KIND_UTF8;
  h[0].value.value.bytes = amqp_cstring_bytes(agg);
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/x-protobuf");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.type = amqp_cstring_bytes(type);
  props.message_id = amqp_cstring_bytes(id);
  if (header) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = (amqp_table_t){1, h};
  }
  wr_publish pub = {.exchange = f->exchange,
                    .routing_key = type,
                    .body = buf,
                    .len = n,
                    .props = &props,
                    .mandatory = true};
  wr_err e;
  wr_err_clear(&e);
  if (wr_conn_publish(f->pub, &pub, &p->last_seq, &e) != 0)
    fail_msg("publish: %s", e.msg);
  free(buf);
  if (++p->unconfirmed >= 500)
    pt_flush(f, p);
}

/* Events v_from..v_to of aggregates 0..n_aggs-1, interleaved (all aggregates at v,
 * then v+1): each aggregate's events leave in version order. */
static void pt_load(fx *f, pt_pub *p, const char *prefix, unsigned n_aggs, uint64_t v_from,
                    uint64_t v_to) {
  for (uint64_t v = v_from; v <= v_to; v++)
    for (unsigned a = 0; a < n_aggs; a++) {
      char agg[48];
      snprintf(agg, sizeof agg, "%s%04u", prefix, a);
      pt_send(f, p, agg, v, NULL, true);
    }
  pt_flush(f, p);
}

static long long pt_count(fx *f, const char *sql) {
  return wt_pg_scalar(f->pg, sql);
}

typedef struct pt_wait {
  fx *f;
  long long want;
} pt_wait;

/* Every published event settled: applied or skipped as stale. */
static bool pt_settled(void *user) {
  pt_wait *w = user;
  return pt_count(w->f, "SELECT (SELECT count(*) FROM applied) + (SELECT count(*) FROM stale)") >=
         w->want;
}

static void pt_wait_settled(fx *f, long long want, int timeout_ms) {
  pt_wait w = {f, want};
  if (!wt_wait_until(pt_settled, &w, timeout_ms))
    fail_msg("only %lld of %lld events settled",
             pt_count(f, "SELECT (SELECT count(*) FROM applied) + (SELECT count(*) FROM stale)"),
             want);
}

/* Per-aggregate apply order, by commit order (the guard's row lock orders the inserts
 * of one aggregate): never a version at or below the previous one. */
static void pt_assert_order(fx *f) {
  assert_int_equal(pt_count(f, "SELECT count(*) FROM (SELECT version, lag(version) OVER"
                               " (PARTITION BY id ORDER BY seq) AS prev FROM applied) x"
                               " WHERE prev IS NOT NULL AND version <= prev"),
                   0);
}

/* ---- the layout as data ------------------------------------------------------------ */

static void layout_as_data(void **state) {
  (void)state;
  wr_topology *t = NULL;
  assert_int_equal(wr_topology_new(&t), 0);
  unsigned delays[2] = {1000, 5000};
  wr_partitioned_queue q = {.queue = "g",
                            .partitions = 3,
                            .type = WR_QUEUE_QUORUM,
                            .retry_delays_ms = delays,
                            .n_retry_delays = 2,
                            .delivery_limit = 20};
  assert_int_equal(wr_topology_partitioned_queue(t, &q), 0);
  assert_int_equal(wr_topology_bind_exchange(t, "g.partitions", "dom", "a.b.C"), 0);
  char *txt = wr_topology_render(t);
  assert_non_null(txt);
  const char *want =
      "exchange g.dlx direct durable\n"
      "queue g.dlq quorum durable\n"
      "bind g.dlq <- g.dlx [g]\n"
      "exchange g.partitions x-consistent-hash durable hash-header=x-aggregate-id\n"
      "queue g.p0 quorum durable x-dead-letter-exchange=g.dlx x-dead-letter-routing-key=g"
      " x-delivery-limit=20 x-dead-letter-strategy=at-least-once x-overflow=reject-publish"
      " x-single-active-consumer=true\n"
      "bind g.p0 <- g.partitions [1]\n"
      "queue g.p1 quorum durable x-dead-letter-exchange=g.dlx x-dead-letter-routing-key=g"
      " x-delivery-limit=20 x-dead-letter-strategy=at-least-once x-overflow=reject-publish"
      " x-single-active-consumer=true\n"
      "bind g.p1 <- g.partitions [1]\n"
      "queue g.p2 quorum durable x-dead-letter-exchange=g.dlx x-dead-letter-routing-key=g"
      " x-delivery-limit=20 x-dead-letter-strategy=at-least-once x-overflow=reject-publish"
      " x-single-active-consumer=true\n"
      "bind g.p2 <- g.partitions [1]\n"
      "queue g.retry.1 quorum durable x-dead-letter-exchange=g.partitions"
      " x-dead-letter-routing-key=g x-message-ttl=1000 x-dead-letter-strategy=at-least-once"
      " x-overflow=reject-publish\n"
      "queue g.retry.2 quorum durable x-dead-letter-exchange=g.partitions"
      " x-dead-letter-routing-key=g x-message-ttl=5000 x-dead-letter-strategy=at-least-once"
      " x-overflow=reject-publish\n"
      "queue g.members quorum durable\n"
      "bind-exchange g.partitions <- dom [a.b.C]\n";
  if (strcmp(txt, want) != 0)
    fail_msg("rendered:\n%s\nwanted:\n%s", txt, want);
  free(txt);

  /* the same layout again: no-op; another partition count of the same group only adds
   * partitions (the shared declarations are equal) */
  assert_int_equal(wr_topology_partitioned_queue(t, &q), 0);
  /* a plain consumer layout of the same name clashes on the retry tiers (DLX) */
  wr_consumer_queue plain = {.queue = "g",
                             .type = WR_QUEUE_QUORUM,
                             .retry_delays_ms = delays,
                             .n_retry_delays = 2,
                             .delivery_limit = 20};
  size_t before = strlen(txt = wr_topology_render(t));
  free(txt);
  assert_int_equal(wr_topology_consumer_queue(t, &plain), WR_ECONFLICT);
  txt = wr_topology_render(t);
  assert_int_equal(strlen(txt), before); /* all or nothing */
  free(txt);

  /* refusals */
  wr_partitioned_queue bad = q;
  bad.partitions = 0;
  assert_int_equal(wr_topology_partitioned_queue(t, &bad), WR_EINVAL);
  bad.partitions = WR_PARTITIONS_MAX + 1;
  assert_int_equal(wr_topology_partitioned_queue(t, &bad), WR_EINVAL);
  bad = q;
  bad.queue = "amq.nope";
  assert_int_equal(wr_topology_partitioned_queue(t, &bad), WR_EINVAL);
  char longname[260];
  memset(longname, 'x', 246);
  longname[246] = '\0'; /* "<246>.partitions" is 257 bytes */
  bad.queue = longname;
  assert_int_equal(wr_topology_partitioned_queue(t, &bad), WR_EINVAL);
  assert_int_equal(wr_topology_partitioned_queue(t, NULL), WR_EINVAL);
  assert_int_equal(wr_topology_partitioned_queue(NULL, &q), WR_EINVAL);

  /* exchange arguments */
  wr_exchange_args xa = {.hash_header = "x-other"};
  assert_int_equal(wr_topology_exchange_args(t, "g.partitions", "x-consistent-hash", &xa),
                   WR_ECONFLICT);
  assert_int_equal(wr_topology_exchange_args(t, "g.partitions", "x-consistent-hash", NULL),
                   WR_ECONFLICT);
  assert_int_equal(wr_topology_exchange_args(t, "t2", "topic", &xa), WR_EINVAL);
  xa.hash_header = "";
  assert_int_equal(wr_topology_exchange_args(t, "h2", "x-consistent-hash", &xa), WR_EINVAL);
  xa.hash_header = "bad\nheader";
  assert_int_equal(wr_topology_exchange_args(t, "h2", "x-consistent-hash", &xa), WR_EINVAL);
  assert_int_equal(wr_topology_bind_exchange(t, "", "dom", "k"), WR_EINVAL);
  assert_int_equal(wr_topology_bind_exchange(t, "g.partitions", NULL, "k"), WR_EINVAL);
  /* a duplicate exchange binding is a no-op, and it is not a queue binding */
  assert_int_equal(wr_topology_bind_exchange(t, "g.partitions", "dom", "a.b.C"), 0);
  assert_int_equal(wr_topology_bind(t, "g.partitions", "dom", "a.b.C"), 0);
  txt = wr_topology_render(t);
  assert_non_null(strstr(txt, "\nbind g.partitions <- dom [a.b.C]\n"));
  free(txt);

  char name[64];
  wr_topology_partition_name("q", 12, name, sizeof name);
  assert_string_equal(name, "q.p12");
  wr_topology_partition_exchange_name("q", name, sizeof name);
  assert_string_equal(name, "q.partitions");
  wr_topology_members_name("q", name, sizeof name);
  assert_string_equal(name, "q.members");
  wr_topology_free(t);

  /* consumer options */
  fx f;
  fx_init(&f, "ptopts");
  wr_consumer *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  f.opts.partitions = WR_PARTITIONS_MAX + 1;
  assert_int_equal(wr_consumer_new(&f.opts, &c, &e), WR_EINVAL);
  assert_non_null(strstr(e.msg, "partitions"));
  f.opts.partitions = 0;
  fx_done(&f);
}

/* ---- routing on the broker ----------------------------------------------------------- */

static long pt_depth(const char *queue) {
  amqp_connection_state_t a = wt_amqp_connect();
  long n = wt_amqp_queue_depth(a, queue);
  wt_amqp_close(a);
  return n;
}

/* Reads every message of a queue and returns the aggregate ids seen (x-aggregate-id
 * header, "-" when absent), newline-separated, malloc'd. A consumer, not basic.get:
 * the broker refuses basic.get on a single-active-consumer queue. */
static char *pt_drain_ids(fx *f, const char *queue, long n) {
  wr_conn *c = NULL;
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(wr_conn_new(&f->copts, &c, &e), 0);
  assert_int_equal(wr_conn_open(c, &e), 0);
  assert_int_equal(wr_conn_consume(c, queue, 500, false, amqp_empty_table, &e), 0);
  size_t cap = 4096, len = 0;
  char *out = calloc(1, cap);
  assert_non_null(out);
  uint64_t last = 0;
  for (long i = 0; i < n; i++) {
    amqp_envelope_t env;
    if (wr_conn_next_delivery(c, 10000, &env, &e) != 0)
      fail_msg("%s: %ld of %ld messages read: %s", queue, i, n, e.msg);
    char id[64] = "-";
    if (env.message.properties._flags & AMQP_BASIC_HEADERS_FLAG)
      wr_table_get_str(&env.message.properties.headers, WR_PARTITION_HASH_HEADER, id, sizeof id);
    last = env.delivery_tag;
    amqp_destroy_envelope(&env);
    if (len + strlen(id) + 2 > cap) {
      cap *= 2;
      out = realloc(out, cap);
      assert_non_null(out);
    }
    len += (size_t)sprintf(out + len, "%s\n", id);
  }
  /* One multiple ack, then a pause before closing: RabbitMQ 3.10 sends a quorum
   * queue's settlements from the channel with at most ~32 in flight and drops the rest
   * when the channel closes (100 single acks right before a close: 67 messages came
   * back). The consumer acks a batch with one multiple ack for the same reason. */
  assert_int_equal(wr_conn_ack(c, last, true, &e), 0);
  for (int i = 0; i < 10; i++) {
    wr_conn_service(c, &e);
    usleep(50000);
  }
  wr_conn_free(c);
  return out;
}

static void routing_by_aggregate(void **state) {
  (void)state;
  fx f;
  pt_init(&f, "ptroute", 3);
  f.delays[0] = 300;
  f.opts.n_retry_delays = 1;
  pt_declare(&f);
  pt_pub p = {0};
  pt_load(&f, &p, "r", 60, 1, 5); /* 300 events */
  pt_send(&f, &p, "nohdr", 1, NULL, false);
  pt_flush(&f, &p);

  /* every partition got some, nothing was lost */
  char q[3][200];
  long total = 0, depth[3];
  for (unsigned k = 0; k < 3; k++) {
    wr_topology_partition_name(f.queue, k, q[k], sizeof q[k]);
    depth[k] = pt_depth(q[k]);
    printf("[ routing  ] %s: %ld messages\n", q[k], depth[k]);
    assert_true(depth[k] > 0);
    total += depth[k];
  }
  assert_int_equal(total, 301);

  /* one aggregate, one partition */
  char *ids[3];
  for (unsigned k = 0; k < 3; k++)
    ids[k] = pt_drain_ids(&f, q[k], depth[k]);
  for (unsigned a = 0; a < 60; a++) {
    char line[32];
    snprintf(line, sizeof line, "r%04u\n", a);
    int holders = 0;
    for (unsigned k = 0; k < 3; k++) {
      const char *at = strstr(ids[k], line);
      if (at)
        holders++;
    }
    if (holders != 1)
      fail_msg("aggregate r%04u found in %d partitions:\n%s\n--\n%s\n--\n%s", a, holders, ids[0],
               ids[1], ids[2]);
  }
  /* the retry tier hands a message back to the partition of its aggregate */
  unsigned home = 3;
  for (unsigned k = 0; k < 3; k++)
    if (strstr(ids[k], "r0007\n"))
      home = k;
  assert_true(home < 3);
  for (unsigned k = 0; k < 3; k++)
    free(ids[k]);
  char retry[200];
  wr_topology_retry_name(f.queue, 1, retry, sizeof retry);
  amqp_table_entry_t h[1];
  h[0].key = amqp_cstring_bytes(WR_PARTITION_HASH_HEADER);
  h[0].value.kind = AMQP_FIELD_KIND_UTF8;
  h[0].value.value.bytes = amqp_cstring_bytes("r0007");
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_HEADERS_FLAG;
  props.headers = (amqp_table_t){1, h};
  wr_publish pub = {.exchange = "",
                    .routing_key = retry,
                    .body = "x",
                    .len = 1,
                    .props = &props,
                    .mandatory = true};
  wr_err e;
  wr_err_clear(&e);
  assert_int_equal(wr_conn_publish(f.pub, &pub, &p.last_seq, &e), 0);
  p.unconfirmed = 1;
  pt_flush(&f, &p);
  int64_t end = wt_now_ms() + 10000;
  /* (the depth of a quorum queue follows acks with a short delay) */
  while (pt_depth(q[home]) != 1 && wt_now_ms() < end)
    usleep(50000);
  assert_int_equal(pt_depth(q[home]), 1);
  pt_done(&f);
}

/* ---- one instance ---------------------------------------------------------------------- */

static void one_instance(void **state) {
  (void)state;
  fx f;
  pt_init(&f, "ptone", 4);
  assert_int_equal(wr_metrics_new(&f.metrics), 0);
  f.opts.metrics = f.metrics;
  pt_cfg cfg = {0};
  f.c = pt_consumer(&f, &cfg);
  assert_non_null(f.c);
  wr_err e;
  wr_err_clear(&e);
  if (wr_consumer_declare(f.c, &e) != 0)
    fail_msg("declare: %s", e.msg);
  pt_pub p = {0};
  pt_load(&f, &p, "o", 40, 1, 20); /* 800 events queued before the start */
  pt_send(&f, &p, "flaky", 1, "fail-until-1", true);
  pt_flush(&f, &p);
  assert_int_equal(wr_consumer_start(f.c), 0);
  pt_wait_settled(&f, 801, 60000);
  pt_load(&f, &p, "o", 40, 21, 25);
  pt_wait_settled(&f, 1001, 60000);
  wr_consumer_stats s = fx_stats(&f);
  fx_print_stats(&f, "one instance");
  assert_int_equal(s.partitions_active, 4); /* alone: it serves every partition */
  assert_int_equal(s.handovers, 0);
  assert_int_equal(s.stale, 0);
  assert_int_equal(s.retried, 1);
  assert_int_equal(pt_count(&f, "SELECT count(*) FROM stale"), 0);
  assert_int_equal(pt_count(&f, "SELECT count(*) FROM applied WHERE id = 'flaky'"), 1);
  assert_int_equal(pt_count(&f, "SELECT count(*) FROM widgets WHERE version = 25"), 40);
  pt_assert_order(&f);
  /* the group's backlog and this instance's partitions, for operators */
  char *txt = wr_metrics_render(f.metrics);
  assert_non_null(txt);
  char want[300];
  snprintf(want, sizeof want, "warren_consumer_partitions_active{queue=\"%s\"} 4", f.queue);
  if (!strstr(txt, want))
    fail_msg("metrics lack \"%s\":\n%s", want, txt);
  snprintf(want, sizeof want, "warren_consumer_handovers_total{queue=\"%s\"} 0", f.queue);
  assert_non_null(strstr(txt, want));
  free(txt);
  fx_stop(&f, "one instance");
  pt_done(&f);
}

/* ---- instances in child processes -------------------------------------------------- */

static volatile sig_atomic_t child_stop;
static void on_term(int sig) {
  (void)sig;
  child_stop = 1;
}

/* Runs one instance of the group in a child process until SIGTERM (clean stop, exit
 * 0) or SIGKILL. */
static pid_t pt_spawn(fx *f, unsigned work_us) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid > 0)
    return pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  pt_cfg cfg = {.work_us = work_us};
  wr_consumer *c = pt_consumer(f, &cfg);
  if (!c || wr_consumer_start(c) != 0)
    _exit(20);
  while (!child_stop)
    usleep(20000);
  wr_consumer_stop(c);
  int rc = wr_consumer_join(c);
  wr_consumer_free(c);
  _exit(rc == 0 ? 0 : 21);
}

static int pt_reap(pid_t pid, bool kill_it) {
  int status = 0;
  kill(pid, kill_it ? SIGKILL : SIGTERM);
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

typedef struct pt_spread {
  fx *f;
  long long since;
  int want;
} pt_spread;

/* At least `want` instances applied events with seq > since. */
static bool pt_spread_ok(void *user) {
  pt_spread *s = user;
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(DISTINCT pid) FROM applied WHERE seq > %lld", s->since);
  return pt_count(s->f, sql) >= s->want;
}

static void instances_takeover(void **state) {
  (void)state;
  fx f;
  pt_init(&f, "ptinst", PT_PARTS);
  pt_declare(&f);
  pid_t pid[3];
  for (int i = 0; i < 3; i++)
    pid[i] = pt_spawn(&f, 0);
  pt_pub p = {0};
  const unsigned aggs = 120;
  long long total = 0;

  /* Warm-up: the first instance to register gets every partition; deliveries show who
   * holds what, and the rebalancing spreads the partitions. Keep events flowing
   * until three instances apply events. */
  uint64_t v = 0;
  pt_spread sp = {&f, 0, 3};
  int64_t end = wt_now_ms() + 90000;
  for (;;) {
    v++;
    pt_load(&f, &p, "i", aggs, v, v);
    total += aggs;
    pt_wait_settled(&f, total, 60000);
    sp.since = pt_count(&f, "SELECT coalesce(max(seq), 0) FROM applied") - 2 * aggs;
    if (v > 3 && pt_spread_ok(&sp))
      break;
    if (wt_now_ms() > end)
      fail_msg("partitions did not spread over three instances");
    usleep(300000);
  }
  long long warm_stale = pt_count(&f, "SELECT count(*) FROM stale");
  printf("[ instances] spread after %" PRIu64 " rounds; stale during warm-up (handovers): %lld\n",
         v, warm_stale);
  /* Let handovers in flight finish: a few rebalance intervals of trickle. */
  for (int i = 0; i < 4; i++) {
    v++;
    pt_load(&f, &p, "i", aggs, v, v);
    total += aggs;
    pt_wait_settled(&f, total, 60000);
    usleep(500000);
  }

  /* Steady state: no stale skip at all. */
  long long stale0 = pt_count(&f, "SELECT count(*) FROM stale");
  long long seq0 = pt_count(&f, "SELECT coalesce(max(seq), 0) FROM applied");
  uint64_t v0 = v + 1;
  v += 30;
  pt_load(&f, &p, "i", aggs, v0, v);
  total += (long long)aggs * 30;
  pt_wait_settled(&f, total, 120000);
  long long stale1 = pt_count(&f, "SELECT count(*) FROM stale");
  char sql[300];
  snprintf(sql, sizeof sql, "SELECT count(DISTINCT pid) FROM applied WHERE seq > %lld", seq0);
  long long busy = pt_count(&f, sql);
  printf("[ instances] steady state: %lld events, %lld instances applied, stale %lld\n",
         (long long)aggs * 30, busy, stale1 - stale0);
  assert_int_equal(stale1 - stale0, 0);
  assert_true(busy >= 2);

  /* Kill one instance mid-run; its partitions are taken over. */
  uint64_t kill_at = v + 10;
  for (uint64_t w = v + 1; w <= v + 40; w++) {
    pt_load(&f, &p, "i", aggs, w, w);
    total += aggs;
    if (w == kill_at) {
      assert_int_equal(pt_reap(pid[1], true), 128 + SIGKILL);
      printf("[ instances] killed instance %d at version %" PRIu64 "\n", (int)pid[1], w);
    }
  }
  v += 40;
  pt_wait_settled(&f, total, 180000);
  long long stale2 = pt_count(&f, "SELECT count(*) FROM stale");
  printf("[ instances] after the kill: stale %lld (takeover)\n", stale2 - stale1);

  /* Nothing lost: every aggregate at its last version; order held everywhere. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM widgets WHERE version = %" PRIu64, v);
  assert_int_equal(pt_count(&f, sql), aggs);
  pt_assert_order(&f);
  assert_int_equal(pt_count(&f, "SELECT count(*) FROM (SELECT id, version FROM applied"
                                " GROUP BY 1, 2 HAVING count(*) > 1) x"),
                   0);
  /* the survivors applied events after the kill */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM applied WHERE pid = %d AND version > %" PRIu64,
           (int)pid[1], kill_at + 1);
  assert_int_equal(pt_count(&f, sql), 0);
  assert_int_equal(pt_reap(pid[0], false), 0);
  assert_int_equal(pt_reap(pid[2], false), 0);
  pt_done(&f);
}

/* ---- throughput by instance count (reported) --------------------------------------- */

static double pt_run_throughput(unsigned n_inst, unsigned work_us, unsigned events) {
  fx f;
  pt_init(&f, "ptthru", PT_PARTS);
  f.opts.prefetch = 200;
  f.opts.batch_size = 100;
  pt_declare(&f);
  pid_t pid[3];
  for (unsigned i = 0; i < n_inst; i++)
    pid[i] = pt_spawn(&f, work_us);
  pt_pub p = {0};
  const unsigned aggs = 600;
  long long total = 0;
  /* balance first (handovers need deliveries to see who holds what) */
  uint64_t v = 0;
  pt_spread sp = {&f, 0, (int)n_inst};
  for (int round = 0; round < 40; round++) {
    v++;
    pt_load(&f, &p, "t", aggs, v, v);
    total += aggs;
    pt_wait_settled(&f, total, 120000);
    sp.since = pt_count(&f, "SELECT coalesce(max(seq), 0) FROM applied") - aggs;
    if (round > 3 && pt_spread_ok(&sp))
      break;
    usleep(300000);
  }
  /* then a backlog published at full speed, timed until everything is applied */
  unsigned rounds = events / aggs;
  int64_t t0 = wt_now_ms();
  pt_load(&f, &p, "t", aggs, v + 1, v + rounds);
  total += (long long)aggs * rounds;
  pt_wait_settled(&f, total, 600000);
  double secs = (double)(wt_now_ms() - t0) / 1000.0;
  double rate = (double)aggs * rounds / secs;
  long long stale = pt_count(&f, "SELECT count(*) FROM stale");
  pt_assert_order(&f);
  for (unsigned i = 0; i < n_inst; i++)
    assert_int_equal(pt_reap(pid[i], false), 0);
  printf("[ thruput  ] %u instance(s), %u partitions, handler work %u us: %u events in %.2f s"
         " = %.0f events/s (stale during balancing: %lld)\n",
         n_inst, PT_PARTS, work_us, aggs * rounds, secs, rate, stale);
  fflush(stdout);
  pt_done(&f);
  return rate;
}

static void throughput_by_instances(void **state) {
  (void)state;
  const char *env = getenv("WARREN_PARTITION_EVENTS");
  unsigned events = env ? (unsigned)atoi(env) : 12000;
  if (events < 600)
    events = 600;
  for (unsigned work = 0; work <= 1000; work += 1000)
    for (unsigned n = 1; n <= 3; n++)
      pt_run_throughput(n, work, work ? events / 4 : events);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(layout_as_data),
      cmocka_unit_test(routing_by_aggregate),
      cmocka_unit_test(one_instance),
      cmocka_unit_test(instances_takeover),
      cmocka_unit_test(throughput_by_instances),
  };
  if (getenv("WT_TEST_FILTER")) /* e.g. WT_TEST_FILTER=instances_takeover */
    cmocka_set_test_filter(getenv("WT_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
