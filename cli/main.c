/* warren: the operator's command line.
 *
 *   warren dlq list    --queue Q [--limit N] [--json]
 *   warren dlq show    --queue Q --id EVENT_ID
 *   warren dlq replay  --queue Q (--id ID ... | --type T | --all)
 *   warren dlq purge   --queue Q (--id ID ... | --type T | --all) [--yes]
 *   warren topology    --queue Q --events PKG[,PKG] [--queue-type quorum|classic]
 *                      [--retry-delays MS,...] [--delivery-limit N] [--partitions N]
 *                      [--apply]
 *   warren replay      --from first|last|next|OFFSET|RFC3339 --into URL
 *                      [--stream S] [--admin-token T] [--timeout SECONDS]
 *
 * `replay` drives a running consumer service (its POST /admin/replay): the service runs
 * its own handlers over the retained log (a stream queue such as customer.events.log)
 * with its inbox and version guard; this command starts the run, follows it and prints
 * the outcome. The admin token comes from --admin-token or WARREN_ADMIN_TOKEN.
 *
 * --queue names the work queue ("order.customer-sync") or its DLQ
 * ("order.customer-sync.dlq"). The broker comes from --amqp-url or WARREN_AMQP_URL
 * (CA file: --amqp-cacert / WARREN_AMQP_CACERT).
 *
 * Exit codes: 0 done; 1 broker, service or I/O failure (a replay that failed or is
 * already running); 2 usage error; 3 queue, message or stream not found; 4 purge not
 * confirmed. Errors go to stderr as one line "warren: ...". */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <warren/warren.h>

#include "customer/v1/customer.warren.h"
#include "order/v1/order.warren.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3, EXIT_UNCONFIRMED = 4 };

static const wr_schema *const SCHEMAS[] = {&customer_v1_schema, &order_v1_schema};

static void usage(FILE *f) {
  fprintf(f, "usage: warren [--amqp-url URL] [--amqp-cacert FILE] <command> [options]\n"
             "\n"
             "commands:\n"
             "  dlq list    --queue Q [--limit N] [--json]    messages in the DLQ of Q\n"
             "  dlq show    --queue Q --id EVENT_ID            one message, event decoded to JSON\n"
             "  dlq replay  --queue Q (--id ID... | --type T | --all)\n"
             "                                                 republish to the original exchange\n"
             "  dlq purge   --queue Q (--id ID... | --type T | --all) [--yes]\n"
             "  topology    --queue Q --events PKG[,PKG] [--queue-type quorum|classic]\n"
             "              [--retry-delays MS,...] [--delivery-limit N] [--partitions N]\n"
             "              [--apply]\n"
             "  replay      --from first|last|next|OFFSET|RFC3339 --into SERVICE_URL\n"
             "              [--stream S] [--admin-token T] [--timeout SECONDS]\n"
             "                                                 the service replays a retained log\n"
             "  version\n"
             "\n"
             "Q is a work queue (order.customer-sync) or its DLQ (order.customer-sync.dlq).\n"
             "Broker: --amqp-url or WARREN_AMQP_URL; CA: --amqp-cacert or WARREN_AMQP_CACERT.\n"
             "Exit: 0 ok, 1 failure, 2 usage, 3 not found, 4 purge not confirmed.\n");
}

static int die(int code, const char *fmt, ...) WR_PRINTF(2, 3);
static int die(int code, const char *fmt, ...) {
  /* Messages may echo arguments, and an argument may be a URL with a password (given
   * in the wrong place): redact whatever is printed. */
  char msg[2048], shown[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  wr_redact_url(msg, shown, sizeof shown);
  fprintf(stderr, "warren: %s\n", shown);
  return code;
}

typedef struct args {
  const char *amqp_url, *cacert;
  const char *queue, *type, *events, *queue_type, *retry_delays, *delivery_limit;
  const char *partitions, *stream, *from, *into, *admin_token, *timeout;
  const char *ids[256];
  size_t n_ids;
  size_t limit;
  bool all, yes, json, apply;
} args;

/* Parses the options after the command words. Returns 0 or EXIT_USAGE. */
static int parse_args(int argc, char **argv, int i, args *a) {
  for (; i < argc; i++) {
    const char *o = argv[i];
    const char **dest = NULL;
    if (!strcmp(o, "--all")) {
      a->all = true;
      continue;
    } else if (!strcmp(o, "--yes")) {
      a->yes = true;
      continue;
    } else if (!strcmp(o, "--json")) {
      a->json = true;
      continue;
    } else if (!strcmp(o, "--apply")) {
      a->apply = true;
      continue;
    } else if (!strcmp(o, "--queue")) {
      dest = &a->queue;
    } else if (!strcmp(o, "--type")) {
      dest = &a->type;
    } else if (!strcmp(o, "--events")) {
      dest = &a->events;
    } else if (!strcmp(o, "--queue-type")) {
      dest = &a->queue_type;
    } else if (!strcmp(o, "--retry-delays")) {
      dest = &a->retry_delays;
    } else if (!strcmp(o, "--delivery-limit")) {
      dest = &a->delivery_limit;
    } else if (!strcmp(o, "--partitions")) {
      dest = &a->partitions;
    } else if (!strcmp(o, "--stream")) {
      dest = &a->stream;
    } else if (!strcmp(o, "--from")) {
      dest = &a->from;
    } else if (!strcmp(o, "--into")) {
      dest = &a->into;
    } else if (!strcmp(o, "--admin-token")) {
      dest = &a->admin_token;
    } else if (!strcmp(o, "--timeout")) {
      dest = &a->timeout;
    } else if (!strcmp(o, "--amqp-url")) {
      dest = &a->amqp_url;
    } else if (!strcmp(o, "--amqp-cacert")) {
      dest = &a->cacert;
    } else if (!strcmp(o, "--id") || !strcmp(o, "--limit")) {
      if (i + 1 >= argc)
        return die(EXIT_USAGE, "%s needs a value", o);
      if (!strcmp(o, "--limit")) {
        char *end;
        unsigned long v = strtoul(argv[++i], &end, 10);
        if (*end || v == 0)
          return die(EXIT_USAGE, "--limit must be a positive number");
        a->limit = v;
      } else {
        if (a->n_ids >= sizeof a->ids / sizeof a->ids[0])
          return die(EXIT_USAGE, "too many --id options (at most 255)");
        a->ids[a->n_ids++] = argv[++i];
      }
      continue;
    } else {
      return die(EXIT_USAGE, "unknown option %s (see warren --help)", o);
    }
    if (i + 1 >= argc)
      return die(EXIT_USAGE, "%s needs a value", o);
    *dest = argv[++i];
  }
  return 0;
}

static void dlq_name(const char *queue, char *out, size_t outsz) {
  size_t n = strlen(queue);
  if (n > 4 && strcmp(queue + n - 4, ".dlq") == 0)
    snprintf(out, outsz, "%s", queue);
  else
    wr_topology_dlq_name(queue, out, outsz);
}

static int connect(const args *a, wr_conn **c) {
  const char *url = a->amqp_url ? a->amqp_url : getenv("WARREN_AMQP_URL");
  const char *ca = a->cacert ? a->cacert : getenv("WARREN_AMQP_CACERT");
  if (!url || !*url)
    return die(EXIT_USAGE, "no broker: give --amqp-url or set WARREN_AMQP_URL");
  wr_conn_opts o = WR_CONN_OPTS_INIT;
  o.urls = url;
  o.cacert = ca;
  o.connection_name = "warren cli";
  wr_err err = {0};
  int rc = wr_conn_new(&o, c, &err);
  if (rc == 0)
    rc = wr_conn_open(*c, &err);
  if (rc) {
    wr_conn_free(*c);
    *c = NULL;
    return die(rc == WR_EURL || rc == WR_EINVAL ? EXIT_USAGE : EXIT_FAIL, "broker: %s", err.msg);
  }
  return 0;
}

static void fmt_age(int64_t failed_ms, char *out, size_t outsz) {
  if (failed_ms <= 0) {
    snprintf(out, outsz, "-");
    return;
  }
  int64_t s = (wr_now_ns() / 1000000 - failed_ms) / 1000;
  if (s < 0)
    s = 0;
  if (s < 120)
    snprintf(out, outsz, "%" PRId64 "s", s);
  else if (s < 7200)
    snprintf(out, outsz, "%" PRId64 "m", s / 60);
  else if (s < 172800)
    snprintf(out, outsz, "%" PRId64 "h", s / 3600);
  else
    snprintf(out, outsz, "%" PRId64 "d", s / 86400);
}

/* The entry as JSON; with the decoded event when the type is known and decodes. */
static json_t *entry_json(const wr_dlq_entry *e, bool with_event) {
  char failed[WR_RFC3339_STRLEN] = "";
  if (e->failed_at_ms > 0)
    wr_rfc3339_format(e->failed_at_ms / 1000, (int32_t)(e->failed_at_ms % 1000) * 1000000, failed);
  json_t *j = json_pack(
      "{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:I}", "index", (json_int_t)e->index,
      "event_id", e->message_id, "type", e->type, "aggregate_type", e->aggregate_type,
      "aggregate_id", e->aggregate_id, "correlation_id", e->correlation_id, "error", e->error,
      "attempts", (json_int_t)e->attempts, "failed_at", failed, "exchange", e->exchange,
      "routing_key", e->routing_key, "queue", e->queue, "size", (json_int_t)e->body_len);
  if (!with_event || !j)
    return j;
  const wr_event_type *t = wr_schema_find_event(e->type);
  ProtobufCMessage *ev = NULL;
  wr_err err = {0};
  json_t *decoded = NULL;
  if (!t) {
    json_object_set_new(j, "decode_error", json_string("unknown event type"));
  } else if (!(ev = protobuf_c_message_unpack(t->descriptor, NULL, e->body_len, e->body))) {
    json_object_set_new(j, "decode_error", json_string("body is not a valid protobuf message"));
  } else if (wr_json_encode(ev, 0, &decoded, &err) != 0) {
    json_object_set_new(j, "decode_error", json_string(err.msg));
  } else {
    json_object_set_new(j, "event", decoded);
  }
  if (ev)
    protobuf_c_message_free_unpacked(ev, NULL);
  if (!json_object_get(j, "event")) {
    /* undecodable: show the raw bytes so nothing is hidden from the operator */
    size_t cap = (e->body_len + 2) / 3 * 4 + 1;
    char *b64 = malloc(cap);
    if (b64 && wr_base64_encode(e->body, e->body_len, false, b64, cap) >= 0)
      json_object_set_new(j, "body_base64", json_string(b64));
    free(b64);
  }
  return j;
}

struct list_ctx {
  const args *a;
  size_t n;
  json_t *arr;
  const char *want_id;
  json_t *found;
};

static int list_one(const wr_dlq_entry *e, void *user) {
  struct list_ctx *l = user;
  l->n++;
  if (l->want_id) {
    if (strcmp(e->message_id, l->want_id) == 0) {
      l->found = entry_json(e, true);
      return 1;
    }
    return 0;
  }
  if (l->a->json) {
    json_array_append_new(l->arr, entry_json(e, false));
    return 0;
  }
  char age[16];
  fmt_age(e->failed_at_ms, age, sizeof age);
  printf("%-5" PRIu64 " %-36s %-32s %-10s %-36s %3u %5s  %s\n", e->index,
         e->message_id[0] ? e->message_id : "-", e->type[0] ? e->type : "-",
         e->aggregate_type[0] ? e->aggregate_type : "-", e->aggregate_id[0] ? e->aggregate_id : "-",
         e->attempts, age, e->error[0] ? e->error : "-");
  return 0;
}

static int cmd_dlq(const char *sub, const args *a) {
  if (!a->queue)
    return die(EXIT_USAGE, "dlq %s needs --queue", sub);
  char dlq[256];
  dlq_name(a->queue, dlq, sizeof dlq);
  bool select = a->all || a->n_ids > 0 || a->type;
  if ((!strcmp(sub, "replay") || !strcmp(sub, "purge")) && !select)
    return die(EXIT_USAGE, "dlq %s needs --all, --id or --type", sub);
  if (!strcmp(sub, "show") && a->n_ids != 1)
    return die(EXIT_USAGE, "dlq show needs exactly one --id");
  if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "replay") && strcmp(sub, "purge"))
    return die(EXIT_USAGE, "unknown dlq command '%s' (list, show, replay, purge)", sub);
  if (!strcmp(sub, "purge") && !a->yes) {
    if (!isatty(STDIN_FILENO))
      return die(EXIT_UNCONFIRMED, "purge of %s not confirmed: pass --yes", dlq);
    fprintf(stderr, "Remove the selected messages from %s for good? Type the queue name: ", dlq);
    char line[256];
    if (!fgets(line, sizeof line, stdin) || (line[strcspn(line, "\n")] = '\0', strcmp(line, dlq)))
      return die(EXIT_UNCONFIRMED, "purge not confirmed");
  }
  wr_conn *c;
  int rc = connect(a, &c);
  if (rc)
    return rc;
  wr_err err = {0};
  int code = EXIT_OK;
  const char *ids[257];
  for (size_t i = 0; i < a->n_ids; i++)
    ids[i] = a->ids[i];
  ids[a->n_ids] = NULL;
  wr_dlq_filter f = {.all = a->all, .ids = a->n_ids ? ids : NULL, .type = a->type};
  if (!strcmp(sub, "list") || !strcmp(sub, "show")) {
    struct list_ctx l = {
        .a = a, .arr = json_array(), .want_id = !strcmp(sub, "show") ? a->ids[0] : NULL};
    if (!l.want_id && !a->json)
      printf("%-5s %-36s %-32s %-10s %-36s %3s %5s  %s\n", "#", "EVENT ID", "TYPE", "AGGREGATE",
             "AGGREGATE ID", "ATT", "AGE", "ERROR");
    rc = wr_dlq_browse(c, dlq, l.want_id ? 0 : a->limit, list_one, &l, &err);
    if (rc == WR_ENOTFOUND) {
      code = die(EXIT_NOTFOUND, "no queue %s", dlq);
    } else if (rc) {
      code = die(EXIT_FAIL, "%s", err.msg);
    } else if (l.want_id) {
      if (!l.found) {
        code = die(EXIT_NOTFOUND, "no message %s in %s", l.want_id, dlq);
      } else {
        char *s = json_dumps(l.found, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "{}");
        free(s);
      }
    } else if (a->json) {
      char *s = json_dumps(l.arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
      printf("%s\n", s ? s : "[]");
      free(s);
    } else {
      printf("%zu message(s) in %s\n", l.n, dlq);
    }
    json_decref(l.found);
    json_decref(l.arr);
  } else {
    size_t n = 0;
    bool replay = !strcmp(sub, "replay");
    rc = replay ? wr_dlq_replay(c, dlq, &f, &n, &err) : wr_dlq_purge(c, dlq, &f, &n, &err);
    if (rc == WR_ENOTFOUND)
      code = die(EXIT_NOTFOUND, "no queue %s", dlq);
    else if (rc)
      code = die(EXIT_FAIL, "%s after %zu message(s): %s",
                 replay ? "replay stopped" : "purge stopped", n, err.msg);
    else if (n == 0 && !a->all)
      code = die(EXIT_NOTFOUND, "no matching message in %s", dlq);
    else
      printf("%s %zu message(s) %s %s\n", replay ? "replayed" : "purged", n,
             replay ? "from" : "from", dlq);
  }
  wr_conn_free(c);
  return code;
}

static int cmd_topology(const args *a) {
  if (!a->queue || !a->events)
    return die(EXIT_USAGE, "topology needs --queue and --events");
  wr_consumer_queue q = {.queue = a->queue, .type = WR_QUEUE_QUORUM, .delivery_limit = 20};
  unsigned delays[8] = {1000, 5000, 30000, 120000};
  q.retry_delays_ms = delays;
  q.n_retry_delays = 4;
  if (a->queue_type) {
    if (!strcmp(a->queue_type, "classic"))
      q.type = WR_QUEUE_CLASSIC;
    else if (strcmp(a->queue_type, "quorum"))
      return die(EXIT_USAGE, "--queue-type must be quorum or classic");
  }
  if (a->delivery_limit) {
    char *end;
    unsigned long v = strtoul(a->delivery_limit, &end, 10);
    if (*end || v > 100000)
      return die(EXIT_USAGE, "--delivery-limit must be 0..100000");
    q.delivery_limit = (unsigned)v;
  }
  if (a->retry_delays) {
    size_t n = 0;
    const char *p = a->retry_delays;
    while (*p) {
      char *end;
      unsigned long v = strtoul(p, &end, 10);
      if (end == p || v == 0 || n >= 8 || (*end && *end != ','))
        return die(EXIT_USAGE, "--retry-delays must be up to 8 positive ms values");
      delays[n++] = (unsigned)v;
      p = *end ? end + 1 : end;
    }
    q.n_retry_delays = n;
  }
  unsigned partitions = 0;
  if (a->partitions) {
    char *end;
    unsigned long v = strtoul(a->partitions, &end, 10);
    if (*end || end == a->partitions || v > WR_PARTITIONS_MAX)
      return die(EXIT_USAGE, "--partitions must be 0..%d", WR_PARTITIONS_MAX);
    partitions = (unsigned)v;
  }
  wr_partitioned_queue pq = {.queue = q.queue,
                             .partitions = partitions,
                             .type = q.type,
                             .retry_delays_ms = q.retry_delays_ms,
                             .n_retry_delays = q.n_retry_delays,
                             .delivery_limit = q.delivery_limit};
  char hash_x[300];
  wr_topology_partition_exchange_name(a->queue, hash_x, sizeof hash_x);
  wr_topology *t;
  if (wr_topology_new(&t) != 0)
    return die(EXIT_FAIL, "out of memory");
  int rc = 0;
  /* exchanges first, then the consumer's queues, then the bindings (a partitioned
   * group binds its hash exchange, not a queue) */
  char pkgs[512];
  snprintf(pkgs, sizeof pkgs, "%s", a->events);
  size_t matched = 0;
  for (int pass = 0; pass < 2 && rc == 0; pass++) {
    if (pass == 1)
      rc = partitions ? wr_topology_partitioned_queue(t, &pq) : wr_topology_consumer_queue(t, &q);
    char buf[512];
    memcpy(buf, pkgs, sizeof buf);
    for (char *save, *pkg = strtok_r(buf, ",", &save); pkg && rc == 0;
         pkg = strtok_r(NULL, ",", &save)) {
      const wr_schema *s = NULL;
      for (size_t i = 0; i < sizeof SCHEMAS / sizeof SCHEMAS[0]; i++)
        if (!strcmp(SCHEMAS[i]->package, pkg))
          s = SCHEMAS[i];
      if (!s) {
        wr_topology_free(t);
        return die(EXIT_USAGE, "unknown event package %s (known: customer.v1, order.v1)", pkg);
      }
      for (size_t e = 0; e < s->n_events && rc == 0; e++) {
        if (pass == 0) {
          rc = wr_topology_exchange(t, s->events[e].exchange, "topic");
        } else {
          rc = partitions
                   ? wr_topology_bind_exchange(t, hash_x, s->events[e].exchange, s->events[e].type)
                   : wr_topology_bind(t, a->queue, s->events[e].exchange, s->events[e].type);
          matched++;
        }
      }
    }
  }
  if (rc) {
    wr_topology_free(t);
    return die(EXIT_FAIL, "topology: %s", wr_strerror(rc));
  }
  char *text = wr_topology_render(t);
  printf("%s", text ? text : "");
  free(text);
  int code = EXIT_OK;
  if (a->apply) {
    wr_conn *c;
    code = connect(a, &c);
    if (code == 0) {
      wr_err err = {0};
      if (wr_topology_declare(t, c, &err) != 0)
        code = die(EXIT_FAIL, "declare: %s", err.msg);
      else
        fprintf(stderr, "declared on %s\n", wr_conn_url(c));
      wr_conn_free(c);
    }
  }
  wr_topology_free(t);
  return code;
}

/* ---- replay --------------------------------------------------------------------- */

/* POSTs or GETs {base}/admin/replay. On 0, *status and *out (caller decrefs; NULL if
 * the body was not JSON). */
static int replay_call(const char *base, const char *token, const char *body, int *status,
                       json_t **out, wr_err *err) {
  char url[1100], auth[600];
  snprintf(url, sizeof url, "%s/admin/replay", base);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  const char *headers[] = {auth, "Content-Type: application/json", "Accept: application/json",
                           NULL};
  wr_http_request req = {.method = body ? "POST" : "GET",
                         .url = url,
                         .headers = headers,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .timeout_ms = 15000};
  wr_http_response res;
  int rc = wr_http_do(&req, &res, err);
  if (rc != 0)
    return rc;
  *status = res.status;
  *out = json_loadb(res.body, res.len, 0, NULL);
  wr_http_response_free(&res);
  return 0;
}

static const char *jstr(json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? v : "";
}

static long long jint(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static int cmd_replay(const args *a) {
  if (!a->from || !a->into)
    return die(EXIT_USAGE, "replay needs --from and --into");
  if (strncmp(a->into, "http://", 7) != 0 || strlen(a->into) > 1000)
    return die(EXIT_USAGE, "--into must be the service's http:// base URL");
  const char *token = a->admin_token ? a->admin_token : getenv("WARREN_ADMIN_TOKEN");
  if (!token || !*token)
    return die(EXIT_USAGE, "no admin token: give --admin-token or set WARREN_ADMIN_TOKEN");
  if (strlen(token) > 512)
    return die(EXIT_USAGE, "admin token too long");
  unsigned long timeout_s = 3600;
  if (a->timeout) {
    char *end;
    timeout_s = strtoul(a->timeout, &end, 10);
    if (*end || end == a->timeout || timeout_s == 0 || timeout_s > 7 * 86400)
      return die(EXIT_USAGE, "--timeout must be 1..604800 seconds");
  }
  char base[1001];
  snprintf(base, sizeof base, "%s", a->into);
  while (strlen(base) > 7 && base[strlen(base) - 1] == '/')
    base[strlen(base) - 1] = '\0';
  json_t *req = json_pack("{s:s}", "from", a->from);
  if (req && a->stream)
    json_object_set_new(req, "stream", json_string(a->stream));
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body)
    return die(EXIT_FAIL, "out of memory");
  wr_err err = {0};
  int status = 0;
  json_t *out = NULL;
  int rc = replay_call(base, token, body, &status, &out, &err);
  free(body);
  if (rc != 0)
    return die(EXIT_FAIL, "%s: %s", base, err.msg);
  if (status != 202) {
    json_t *e = json_object_get(out, "error");
    int code = status == 422 ? EXIT_USAGE : EXIT_FAIL;
    code = die(code, "%s refused the replay (HTTP %d): %s", base, status,
               e ? jstr(e, "message") : "no explanation");
    json_decref(out);
    return code;
  }
  fprintf(stderr, "replay of %s from %s started on %s\n", jstr(out, "stream"), a->from, base);
  json_decref(out);
  time_t deadline = time(NULL) + (time_t)timeout_s;
  long long shown = -1;
  for (;;) {
    usleep(500000);
    out = NULL;
    rc = replay_call(base, token, NULL, &status, &out, &err);
    if (rc != 0 || status != 200 || !out) {
      json_decref(out);
      return die(EXIT_FAIL, "%s: status not readable: %s", base,
                 rc ? err.msg : "unexpected answer");
    }
    const char *st = jstr(out, "status");
    long long off = jint(out, "offset");
    if (!strcmp(st, "running")) {
      if (off != shown) {
        fprintf(stderr, "  offset %lld of %lld, applied %lld\n", off, jint(out, "end"),
                jint(out, "applied"));
        shown = off;
      }
      json_decref(out);
      if (time(NULL) > deadline)
        return die(EXIT_FAIL, "replay still running after %lu s (it goes on in the service)",
                   timeout_s);
      continue;
    }
    printf("replay %s: stream %s from %s, applied %lld, duplicates %lld, stale %lld, "
           "retried %lld, dead-lettered %lld, last offset %lld (end %lld)%s%s\n",
           st, jstr(out, "stream"), jstr(out, "from"), jint(out, "applied"),
           jint(out, "duplicates"), jint(out, "stale"), jint(out, "retried"),
           jint(out, "dead_lettered"), off, jint(out, "end"), *jstr(out, "error") ? ": " : "",
           jstr(out, "error"));
    int code = !strcmp(st, "finished")                   ? EXIT_OK
               : strstr(jstr(out, "error"), "not found") ? EXIT_NOTFOUND
                                                         : EXIT_FAIL;
    json_decref(out);
    return code;
  }
}

int main(int argc, char **argv) {
  for (size_t i = 0; i < sizeof SCHEMAS / sizeof SCHEMAS[0]; i++)
    wr_schema_register(SCHEMAS[i]);
  args a = {0};
  int i = 1;
  /* global options before the command */
  while (i < argc && argv[i][0] == '-') {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return EXIT_OK;
    }
    if (i + 1 < argc && !strcmp(argv[i], "--amqp-url")) {
      a.amqp_url = argv[i + 1];
      i += 2;
    } else if (i + 1 < argc && !strcmp(argv[i], "--amqp-cacert")) {
      a.cacert = argv[i + 1];
      i += 2;
    } else {
      usage(stderr);
      return die(EXIT_USAGE, "unknown option %s", argv[i]);
    }
  }
  if (i >= argc) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[i++];
  if (!strcmp(cmd, "version")) {
    printf("warren %s\n", wr_version());
    return EXIT_OK;
  }
  if (!strcmp(cmd, "dlq")) {
    if (i >= argc)
      return die(EXIT_USAGE, "dlq needs a command: list, show, replay, purge");
    const char *sub = argv[i++];
    int rc = parse_args(argc, argv, i, &a);
    return rc ? rc : cmd_dlq(sub, &a);
  }
  if (!strcmp(cmd, "topology")) {
    int rc = parse_args(argc, argv, i, &a);
    return rc ? rc : cmd_topology(&a);
  }
  if (!strcmp(cmd, "replay")) {
    int rc = parse_args(argc, argv, i, &a);
    return rc ? rc : cmd_replay(&a);
  }
  usage(stderr);
  return die(EXIT_USAGE, "unknown command %s", cmd);
}
