/* ceiling.c: what the broker can do for a bare rabbitmq-c client on this machine, now.
 *
 * publish: persistent messages (the same CustomerUpdated body and properties the relay
 *          sends) to a durable queue, publisher confirms with 1000 in flight;
 * drain:   the same messages consumed with prefetch 1000 and a multiple-ack every 100.
 * Both for classic and quorum queues: the order service's queue is a quorum queue by
 * default, so its ratios are taken against the quorum figures (same broker work), and
 * the classic ones show what the broker does without replication machinery. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gen {
  const char *queue;
  uint8_t *buf;
  size_t cap, len;
  char ids[2][WR_UUID_STRLEN];
  amqp_table_entry_t h[3];
} gen;

static void next_msg(size_t i, bx_msg *m, void *user) {
  gen *g = user;
  char *id = g->ids[i & 1];
  wr_uuid_v7(id);
  bx_event ev = {.event_id = id,
                 .customer_id = "0190c0de-0000-7000-8000-000000000001",
                 .version = i + 1,
                 .name = "Ada Lovelace",
                 .email = "ada@example.com",
                 .status = 1,
                 .occurred_us = wr_now_ns() / 1000};
  g->len = bx_event_pack(&ev, &g->buf, &g->cap);
  bx_event_msg(&ev, g->buf, g->len, g->h, m);
  /* straight to the queue through the default exchange */
  m->exchange = "";
  m->routing_key = g->queue;
}

static int one_type(const char *vhost_url, const char *type) {
  char queue[64];
  snprintf(queue, sizeof queue, "bench.ceiling.%s", type);
  amqp_connection_state_t c = bx_amqp_open(vhost_url);
  if (!c)
    return WR_ECLOSED;
  int rc = bx_amqp_queue(c, queue, type, NULL, NULL);
  gen g = {.queue = queue};
  double pub = 0, drain = 0;
  if (rc == 0)
    rc = bx_publish(c, bx.n.ceiling_n, 1000, next_msg, &g, &pub);
  free(g.buf);
  bx_amqp_close(c);
  /* drain on a fresh connection, as a consumer would */
  c = rc == 0 ? bx_amqp_open(vhost_url) : NULL;
  if (c) {
    rc = bx_drain(c, queue, bx.n.ceiling_n, 1000, 100, &drain);
    bx_amqp_close(c);
  }
  c = bx_amqp_open(vhost_url);
  if (c) {
    bx_amqp_delete(c, queue);
    bx_amqp_close(c);
  }
  if (rc)
    return rc;
  char name[64];
  snprintf(name, sizeof name, "ceiling.publish_%s", type);
  bx_result(name, pub, "msg/s", "rabbitmq-c, confirms, 1000 in flight");
  snprintf(name, sizeof name, "ceiling.drain_%s", type);
  bx_result(name, drain, "msg/s", "rabbitmq-c, prefetch 1000, ack every 100");
  return 0;
}

int scenario_ceiling(void) {
  char url[768];
  int rc = bx_vhost_create("ceiling", url, sizeof url);
  if (rc)
    return rc;
  bx_log("ceiling: %u messages per queue type", bx.n.ceiling_n);
  rc = one_type(url, "classic");
  if (rc == 0)
    rc = one_type(url, "quorum");
  bx_check("ceiling", rc == 0, "raw publish and drain of %u messages per queue type",
           bx.n.ceiling_n);
  bx_vhost_delete(url);
  return rc;
}
