/* topology.c: declarations as data (exchanges, queues, bindings), the consumer-queue
 * layout (DLX, DLQ, retry tiers), idempotent declaration and a deterministic listing.
 *
 * The list is kept in insertion order, which is the declaration order. Adding an
 * item that exists with the same content is a no-op, with different content a
 * WR_ECONFLICT: the broker would refuse the second declaration with 406 anyway, and
 * finding out while building is cheaper than finding out at the broker. Queue
 * arguments are rendered and declared in one fixed order, so two runs of `warren
 * topology` print the same text. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/topology.h>

typedef enum decl_kind { D_EXCHANGE, D_QUEUE, D_BIND } decl_kind;

typedef struct decl {
  decl_kind kind;
  char *name;        /* exchange or queue; binding: queue */
  char *type;        /* exchange type */
  char *hash_header; /* exchange: x-consistent-hash hash-header, or NULL */
  char *exchange;    /* binding: the source exchange */
  char *rk;          /* binding */
  bool to_exchange;  /* binding: name is a destination exchange, not a queue */
  wr_queue_args a;   /* queue; strings owned */
} decl;

struct wr_topology {
  decl *v;
  size_t n, cap;
};

#define MAX_NAME        255
#define MAX_TTL_MS      4294967295LL /* the broker's limit for x-message-ttl (2^32 - 1) */
#define MAX_RETRY_TIERS 100

/* ---- lifecycle ----------------------------------------------------------------- */

int wr_topology_new(wr_topology **out) {
  if (!out)
    return WR_EINVAL;
  *out = calloc(1, sizeof **out);
  return *out ? 0 : WR_ENOMEM;
}

static void decl_clear(decl *d) {
  free(d->name);
  free(d->type);
  free(d->hash_header);
  free(d->exchange);
  free(d->rk);
  free((char *)d->a.dead_letter_exchange);
  free((char *)d->a.dead_letter_routing_key);
  free((char *)d->a.stream_max_age);
}

void wr_topology_free(wr_topology *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++)
    decl_clear(&t->v[i]);
  free(t->v);
  free(t);
}

static decl *push(wr_topology *t) {
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    decl *nv = realloc(t->v, ncap * sizeof *nv);
    if (!nv)
      return NULL;
    t->v = nv;
    t->cap = ncap;
  }
  decl *d = &t->v[t->n];
  memset(d, 0, sizeof *d);
  return d;
}

/* ---- validation ---------------------------------------------------------------- */

/* 1..255 bytes, no control characters (they would break the listing and logs). */
static bool valid_name(const char *s, bool allow_empty) {
  if (!s)
    return false;
  size_t n = strlen(s);
  if ((n == 0 && !allow_empty) || n > MAX_NAME)
    return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return false;
  return true;
}

/* "amq." names are reserved by the broker (declaring them is refused with 403). */
static bool reserved(const char *s) {
  return strncmp(s, "amq.", 4) == 0;
}

static bool known_exchange_type(const char *type) {
  static const char *const types[] = {"direct", "topic", "fanout", "headers", "x-consistent-hash"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (strcmp(type, types[i]) == 0)
      return true;
  return false;
}

bool wr_topology_max_age_valid(const char *s) {
  if (!s)
    return false;
  size_t digits = strspn(s, "0123456789");
  if (digits == 0 || digits > 9 || strspn(s, "0") == digits)
    return false;
  return s[digits] && strchr("YMDhms", s[digits]) && s[digits + 1] == '\0';
}

static int validate_args(const wr_queue_args *a) {
  if (a->type != WR_QUEUE_QUORUM && a->type != WR_QUEUE_CLASSIC)
    return WR_EINVAL;
  if (a->dead_letter_exchange && !valid_name(a->dead_letter_exchange, true))
    return WR_EINVAL;
  if (a->dead_letter_routing_key &&
      (!a->dead_letter_exchange || !valid_name(a->dead_letter_routing_key, true)))
    return WR_EINVAL; /* a routing key without an exchange is meaningless */
  if (a->message_ttl_ms < 0 || a->message_ttl_ms > MAX_TTL_MS)
    return WR_EINVAL;
  if (a->stream_max_bytes < 0)
    return WR_EINVAL;
  if (a->stream) {
    /* streams keep messages by age/size; they do not dead-letter or expire */
    if (a->dead_letter_exchange || a->message_ttl_ms > 0 || a->delivery_limit > 0 ||
        a->at_least_once_dlx)
      return WR_EINVAL;
    if (a->stream_max_age && !wr_topology_max_age_valid(a->stream_max_age))
      return WR_EINVAL;
    return 0;
  }
  if (a->stream_max_age || a->stream_max_bytes > 0)
    return WR_EINVAL;
  if (a->type == WR_QUEUE_CLASSIC && (a->delivery_limit > 0 || a->at_least_once_dlx))
    return WR_EINVAL; /* quorum-only features */
  if (a->at_least_once_dlx && !a->dead_letter_exchange)
    return WR_EINVAL;
  return 0;
}

static bool str_eq_null(const char *a, const char *b) {
  if (!a || !b)
    return a == b;
  return strcmp(a, b) == 0;
}

static bool args_eq(const wr_queue_args *x, const wr_queue_args *y) {
  return x->stream == y->stream && (x->stream || x->type == y->type) &&
         str_eq_null(x->dead_letter_exchange, y->dead_letter_exchange) &&
         str_eq_null(x->dead_letter_routing_key, y->dead_letter_routing_key) &&
         x->message_ttl_ms == y->message_ttl_ms && x->delivery_limit == y->delivery_limit &&
         x->single_active_consumer == y->single_active_consumer &&
         x->at_least_once_dlx == y->at_least_once_dlx &&
         str_eq_null(x->stream_max_age, y->stream_max_age) &&
         x->stream_max_bytes == y->stream_max_bytes;
}

static decl *find(const wr_topology *t, decl_kind kind, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].kind == kind && strcmp(t->v[i].name, name) == 0)
      return &t->v[i];
  return NULL;
}

static decl *find_bind(const wr_topology *t, bool to_exchange, const char *queue,
                       const char *exchange, const char *rk) {
  for (size_t i = 0; i < t->n; i++) {
    decl *d = &t->v[i];
    if (d->kind == D_BIND && d->to_exchange == to_exchange && strcmp(d->name, queue) == 0 &&
        strcmp(d->exchange, exchange) == 0 && strcmp(d->rk, rk) == 0)
      return d;
  }
  return NULL;
}

/* ---- building ------------------------------------------------------------------ */

static int exchange_check(const wr_topology *t, const char *name, const char *type,
                          const char *hash_header) {
  if (!t || !valid_name(name, false) || reserved(name) || !type || !known_exchange_type(type))
    return WR_EINVAL;
  if (hash_header && (strcmp(type, "x-consistent-hash") != 0 || !valid_name(hash_header, false)))
    return WR_EINVAL;
  decl *d = find(t, D_EXCHANGE, name);
  if (d && (strcmp(d->type, type) != 0 || !str_eq_null(d->hash_header, hash_header)))
    return WR_ECONFLICT;
  return 0;
}

int wr_topology_exchange_args(wr_topology *t, const char *name, const char *type,
                              const wr_exchange_args *args) {
  const char *hh = args ? args->hash_header : NULL;
  int rc = exchange_check(t, name, type, hh);
  if (rc != 0)
    return rc;
  if (find(t, D_EXCHANGE, name))
    return 0;
  decl *d = push(t);
  if (!d)
    return WR_ENOMEM;
  d->kind = D_EXCHANGE;
  d->name = strdup(name);
  d->type = strdup(type);
  d->hash_header = hh ? strdup(hh) : NULL;
  if (!d->name || !d->type || (hh && !d->hash_header)) {
    decl_clear(d);
    return WR_ENOMEM;
  }
  t->n++;
  return 0;
}

int wr_topology_exchange(wr_topology *t, const char *name, const char *type) {
  return wr_topology_exchange_args(t, name, type, NULL);
}

static int queue_check(const wr_topology *t, const char *name, const wr_queue_args *args) {
  if (!t || !args || !valid_name(name, false) || reserved(name))
    return WR_EINVAL;
  int rc = validate_args(args);
  if (rc != 0)
    return rc;
  decl *d = find(t, D_QUEUE, name);
  if (d && !args_eq(&d->a, args))
    return WR_ECONFLICT;
  return 0;
}

static char *dup_opt(const char *s, bool *oom) {
  if (!s)
    return NULL;
  char *r = strdup(s);
  if (!r)
    *oom = true;
  return r;
}

int wr_topology_queue(wr_topology *t, const char *name, const wr_queue_args *args) {
  int rc = queue_check(t, name, args);
  if (rc != 0)
    return rc;
  if (find(t, D_QUEUE, name))
    return 0;
  decl *d = push(t);
  if (!d)
    return WR_ENOMEM;
  bool oom = false;
  d->kind = D_QUEUE;
  d->name = dup_opt(name, &oom);
  d->a = *args;
  d->a.dead_letter_exchange = dup_opt(args->dead_letter_exchange, &oom);
  d->a.dead_letter_routing_key = dup_opt(args->dead_letter_routing_key, &oom);
  d->a.stream_max_age = dup_opt(args->stream_max_age, &oom);
  if (oom) {
    decl_clear(d);
    return WR_ENOMEM;
  }
  t->n++;
  return 0;
}

static int bind_check(const wr_topology *t, const char *queue, const char *exchange,
                      const char *routing_key) {
  if (!t || !valid_name(queue, false) || !valid_name(exchange, false) ||
      !valid_name(routing_key ? routing_key : "", true))
    return WR_EINVAL;
  return 0;
}

static int bind_add(wr_topology *t, bool to_exchange, const char *queue, const char *exchange,
                    const char *routing_key) {
  int rc = bind_check(t, queue, exchange, routing_key);
  if (rc != 0)
    return rc;
  if (!routing_key)
    routing_key = "";
  if (find_bind(t, to_exchange, queue, exchange, routing_key))
    return 0;
  decl *d = push(t);
  if (!d)
    return WR_ENOMEM;
  d->kind = D_BIND;
  d->to_exchange = to_exchange;
  d->name = strdup(queue);
  d->exchange = strdup(exchange);
  d->rk = strdup(routing_key);
  if (!d->name || !d->exchange || !d->rk) {
    decl_clear(d);
    return WR_ENOMEM;
  }
  t->n++;
  return 0;
}

int wr_topology_bind(wr_topology *t, const char *queue, const char *exchange,
                     const char *routing_key) {
  return bind_add(t, false, queue, exchange, routing_key);
}

int wr_topology_bind_exchange(wr_topology *t, const char *destination, const char *source,
                              const char *routing_key) {
  return bind_add(t, true, destination, source, routing_key);
}

void wr_topology_dlx_name(const char *queue, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.dlx", queue ? queue : "");
}

void wr_topology_dlq_name(const char *queue, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.dlq", queue ? queue : "");
}

void wr_topology_retry_name(const char *queue, unsigned tier, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.retry.%u", queue ? queue : "", tier);
}

void wr_topology_partition_name(const char *queue, unsigned k, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.p%u", queue ? queue : "", k);
}

void wr_topology_partition_exchange_name(const char *queue, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.partitions", queue ? queue : "");
}

void wr_topology_members_name(const char *queue, char *out, size_t outsz) {
  if (out && outsz)
    snprintf(out, outsz, "%s.members", queue ? queue : "");
}

/* The declarations of the consumer layout, computed once so they can be checked as a
 * whole before anything is added (all or nothing). */
typedef struct layout {
  char dlx[MAX_NAME + 1], dlq[MAX_NAME + 1];
  wr_queue_args dlq_args, work_args;
  wr_queue_args retry_args[MAX_RETRY_TIERS];
  char retry[MAX_RETRY_TIERS][MAX_NAME + 1];
} layout;

static int layout_make(const wr_consumer_queue *q, layout *l) {
  if (!q || !valid_name(q->queue, false) || reserved(q->queue))
    return WR_EINVAL;
  if (q->type != WR_QUEUE_QUORUM && q->type != WR_QUEUE_CLASSIC)
    return WR_EINVAL;
  if (q->n_retry_delays > MAX_RETRY_TIERS || (q->n_retry_delays > 0 && !q->retry_delays_ms))
    return WR_EINVAL;
  /* the longest derived name must fit the broker's 255 bytes */
  char longest[MAX_NAME + 64];
  wr_topology_retry_name(q->queue, (unsigned)(q->n_retry_delays ? q->n_retry_delays : 1), longest,
                         sizeof longest);
  if (strlen(longest) > MAX_NAME)
    return WR_EINVAL;
  bool quorum = q->type == WR_QUEUE_QUORUM;
  memset(l, 0, sizeof *l);
  wr_topology_dlx_name(q->queue, l->dlx, sizeof l->dlx);
  wr_topology_dlq_name(q->queue, l->dlq, sizeof l->dlq);
  l->dlq_args.type = q->type;
  l->work_args.type = q->type;
  l->work_args.dead_letter_exchange = l->dlx;
  l->work_args.dead_letter_routing_key = q->queue;
  /* delivery-limit and at-least-once dead-lettering are quorum features; for a
   * classic queue they are left out rather than refused, so one configuration
   * works for both types. */
  l->work_args.delivery_limit = quorum ? q->delivery_limit : 0;
  l->work_args.at_least_once_dlx = quorum;
  for (size_t i = 0; i < q->n_retry_delays; i++) {
    if (q->retry_delays_ms[i] == 0)
      return WR_EINVAL;
    wr_topology_retry_name(q->queue, (unsigned)(i + 1), l->retry[i], sizeof l->retry[i]);
    wr_queue_args *a = &l->retry_args[i];
    a->type = q->type;
    a->message_ttl_ms = q->retry_delays_ms[i];
    a->dead_letter_exchange = "";
    a->dead_letter_routing_key = q->queue;
    a->at_least_once_dlx = quorum;
  }
  return 0;
}

int wr_topology_consumer_queue(wr_topology *t, const wr_consumer_queue *q) {
  if (!t)
    return WR_EINVAL;
  layout *l = malloc(sizeof *l);
  if (!l)
    return WR_ENOMEM;
  int rc = layout_make(q, l);
  /* check everything first: nothing is added when anything conflicts */
  if (rc == 0)
    rc = exchange_check(t, l->dlx, "direct", NULL);
  if (rc == 0)
    rc = queue_check(t, l->dlq, &l->dlq_args);
  if (rc == 0)
    rc = bind_check(t, l->dlq, l->dlx, q->queue);
  if (rc == 0)
    rc = queue_check(t, q->queue, &l->work_args);
  for (size_t i = 0; rc == 0 && i < q->n_retry_delays; i++)
    rc = queue_check(t, l->retry[i], &l->retry_args[i]);
  /* Order: every dead-letter target before the queue that dead-letters into it. The
   * work queue dead-letters into the DLX (-> DLQ); each retry queue into the work
   * queue (default exchange). */
  if (rc == 0)
    rc = wr_topology_exchange(t, l->dlx, "direct");
  if (rc == 0)
    rc = wr_topology_queue(t, l->dlq, &l->dlq_args);
  if (rc == 0)
    rc = wr_topology_bind(t, l->dlq, l->dlx, q->queue);
  if (rc == 0)
    rc = wr_topology_queue(t, q->queue, &l->work_args);
  for (size_t i = 0; rc == 0 && i < q->n_retry_delays; i++)
    rc = wr_topology_queue(t, l->retry[i], &l->retry_args[i]);
  free(l);
  return rc;
}

/* ---- the partitioned layout ------------------------------------------------------ */

/* Built on the consumer layout (DLX, DLQ, retry tiers), whose work queue becomes the
 * partitions and whose retry tiers dead-letter into the hash exchange instead of the
 * default exchange. */
typedef struct playout {
  layout base;
  char xname[MAX_NAME + 1], members[MAX_NAME + 1];
  wr_queue_args part_args, members_args;
  char (*part)[MAX_NAME + 1];
  unsigned n;
} playout;

static int playout_make(const wr_partitioned_queue *q, playout *p) {
  if (!q || q->partitions == 0 || q->partitions > WR_PARTITIONS_MAX)
    return WR_EINVAL;
  wr_consumer_queue cq = {.queue = q->queue,
                          .type = q->type,
                          .retry_delays_ms = q->retry_delays_ms,
                          .n_retry_delays = q->n_retry_delays,
                          .delivery_limit = q->delivery_limit};
  int rc = layout_make(&cq, &p->base);
  if (rc != 0)
    return rc;
  char longest[MAX_NAME + 64];
  wr_topology_partition_exchange_name(q->queue, longest, sizeof longest);
  if (strlen(longest) > MAX_NAME)
    return WR_EINVAL;
  wr_topology_partition_name(q->queue, q->partitions - 1, longest, sizeof longest);
  if (strlen(longest) > MAX_NAME)
    return WR_EINVAL;
  wr_topology_partition_exchange_name(q->queue, p->xname, sizeof p->xname);
  wr_topology_members_name(q->queue, p->members, sizeof p->members);
  p->part_args = p->base.work_args;
  p->part_args.single_active_consumer = true;
  memset(&p->members_args, 0, sizeof p->members_args);
  p->members_args.type = q->type;
  for (size_t i = 0; i < q->n_retry_delays; i++) {
    p->base.retry_args[i].dead_letter_exchange = p->xname;
    p->base.retry_args[i].dead_letter_routing_key = q->queue;
  }
  p->n = q->partitions;
  p->part = malloc((size_t)p->n * sizeof *p->part);
  if (!p->part)
    return WR_ENOMEM;
  for (unsigned k = 0; k < p->n; k++)
    wr_topology_partition_name(q->queue, k, p->part[k], sizeof p->part[k]);
  return 0;
}

int wr_topology_partitioned_queue(wr_topology *t, const wr_partitioned_queue *q) {
  if (!t)
    return WR_EINVAL;
  playout *p = calloc(1, sizeof *p);
  if (!p)
    return WR_ENOMEM;
  const wr_exchange_args xa = {.hash_header = WR_PARTITION_HASH_HEADER};
  layout *l = &p->base;
  int rc = playout_make(q, p);
  /* check everything first: nothing is added when anything conflicts */
  if (rc == 0)
    rc = exchange_check(t, l->dlx, "direct", NULL);
  if (rc == 0)
    rc = queue_check(t, l->dlq, &l->dlq_args);
  if (rc == 0)
    rc = bind_check(t, l->dlq, l->dlx, q->queue);
  if (rc == 0)
    rc = exchange_check(t, p->xname, "x-consistent-hash", xa.hash_header);
  for (unsigned k = 0; rc == 0 && k < p->n; k++)
    rc = queue_check(t, p->part[k], &p->part_args);
  for (size_t i = 0; rc == 0 && i < q->n_retry_delays; i++)
    rc = queue_check(t, l->retry[i], &l->retry_args[i]);
  if (rc == 0)
    rc = queue_check(t, p->members, &p->members_args);
  /* Order: dead-letter targets first (DLX -> DLQ for the partitions, the hash exchange
   * for the retry tiers). */
  if (rc == 0)
    rc = wr_topology_exchange(t, l->dlx, "direct");
  if (rc == 0)
    rc = wr_topology_queue(t, l->dlq, &l->dlq_args);
  if (rc == 0)
    rc = wr_topology_bind(t, l->dlq, l->dlx, q->queue);
  if (rc == 0)
    rc = wr_topology_exchange_args(t, p->xname, "x-consistent-hash", &xa);
  for (unsigned k = 0; rc == 0 && k < p->n; k++) {
    rc = wr_topology_queue(t, p->part[k], &p->part_args);
    /* binding key = the partition's weight on the hash ring: all equal */
    if (rc == 0)
      rc = wr_topology_bind(t, p->part[k], p->xname, "1");
  }
  for (size_t i = 0; rc == 0 && i < q->n_retry_delays; i++)
    rc = wr_topology_queue(t, l->retry[i], &l->retry_args[i]);
  if (rc == 0)
    rc = wr_topology_queue(t, p->members, &p->members_args);
  free(p->part);
  free(p);
  return rc;
}

/* ---- arguments: one order for listing and declaring ---------------------------- */

enum { MAX_ARGS = 10 };

typedef struct arg {
  const char *key;
  bool is_int;
  bool is_bool;
  const char *s;
  int64_t i;
} arg;

static size_t queue_arguments(const wr_queue_args *a, arg out[MAX_ARGS]) {
  size_t n = 0;
  if (a->stream)
    out[n++] = (arg){.key = "x-queue-type", .s = "stream"};
  else if (a->type == WR_QUEUE_QUORUM)
    out[n++] = (arg){.key = "x-queue-type", .s = "quorum"};
  /* classic: no x-queue-type, the broker's default, so queues declared before warren
   * existed (without the argument) stay equivalent */
  if (a->dead_letter_exchange)
    out[n++] = (arg){.key = "x-dead-letter-exchange", .s = a->dead_letter_exchange};
  if (a->dead_letter_routing_key)
    out[n++] = (arg){.key = "x-dead-letter-routing-key", .s = a->dead_letter_routing_key};
  if (a->message_ttl_ms > 0)
    out[n++] = (arg){.key = "x-message-ttl", .is_int = true, .i = a->message_ttl_ms};
  if (a->delivery_limit > 0)
    out[n++] = (arg){.key = "x-delivery-limit", .is_int = true, .i = a->delivery_limit};
  if (a->at_least_once_dlx) {
    out[n++] = (arg){.key = "x-dead-letter-strategy", .s = "at-least-once"};
    out[n++] = (arg){.key = "x-overflow", .s = "reject-publish"};
  }
  if (a->single_active_consumer)
    out[n++] = (arg){.key = "x-single-active-consumer", .is_bool = true, .i = 1};
  if (a->stream_max_age)
    out[n++] = (arg){.key = "x-max-age", .s = a->stream_max_age};
  if (a->stream_max_bytes > 0)
    out[n++] = (arg){.key = "x-max-length-bytes", .is_int = true, .i = a->stream_max_bytes};
  return n;
}

static const char *queue_type_name(const wr_queue_args *a) {
  return a->stream ? "stream" : a->type == WR_QUEUE_QUORUM ? "quorum" : "classic";
}

/* ---- rendering ----------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->n + n + 1 > b->cap) {
    size_t ncap = b->cap ? b->cap : 256;
    while (b->n + n + 1 > ncap)
      ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void sb_put(sbuf *b, const char *s) {
  sb_putn(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) WR_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A name or value as one token: bare when it is plain, else "quoted" with \" \\ and
 * \xNN escapes (an empty string, spaces, '=', brackets, quotes, non-ASCII). */
static void sb_token(sbuf *b, const char *s) {
  bool plain = *s != '\0';
  for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '=' || *p == '[' || *p == ']')
      plain = false;
  if (plain) {
    sb_put(b, s);
    return;
  }
  sb_put(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      sb_putn(b, e, 2);
    } else if (*p < 0x20 || *p >= 0x7f) {
      sb_printf(b, "\\x%02x", *p);
    } else {
      sb_putn(b, (const char *)p, 1);
    }
  }
  sb_put(b, "\"");
}

static void render_decl(sbuf *b, const decl *d) {
  switch (d->kind) {
  case D_EXCHANGE:
    sb_put(b, "exchange ");
    sb_token(b, d->name);
    sb_put(b, " ");
    sb_put(b, d->type);
    sb_put(b, " durable");
    if (d->hash_header) {
      sb_put(b, " hash-header=");
      sb_token(b, d->hash_header);
    }
    break;
  case D_QUEUE: {
    sb_put(b, "queue ");
    sb_token(b, d->name);
    sb_put(b, " ");
    sb_put(b, queue_type_name(&d->a));
    sb_put(b, " durable");
    arg args[MAX_ARGS];
    size_t n = queue_arguments(&d->a, args);
    for (size_t i = 0; i < n; i++) {
      if (strcmp(args[i].key, "x-queue-type") == 0)
        continue; /* already shown as the type word */
      sb_put(b, " ");
      sb_put(b, args[i].key);
      sb_put(b, "=");
      if (args[i].is_bool)
        sb_put(b, args[i].i ? "true" : "false");
      else if (args[i].is_int)
        sb_printf(b, "%" PRId64, args[i].i);
      else
        sb_token(b, args[i].s);
    }
    break;
  }
  case D_BIND:
    sb_put(b, d->to_exchange ? "bind-exchange " : "bind ");
    sb_token(b, d->name);
    sb_put(b, " <- ");
    sb_token(b, d->exchange);
    sb_put(b, " [");
    if (*d->rk)
      sb_token(b, d->rk);
    sb_put(b, "]");
    break;
  }
}

char *wr_topology_render(const wr_topology *t) {
  sbuf b = {0};
  sb_put(&b, ""); /* an empty topology renders as "" (not NULL) */
  for (size_t i = 0; t && i < t->n; i++) {
    render_decl(&b, &t->v[i]);
    sb_put(&b, "\n");
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* ---- declaring ----------------------------------------------------------------- */

static int declare_one(const decl *d, wr_conn *c, wr_err *err) {
  switch (d->kind) {
  case D_EXCHANGE: {
    amqp_table_entry_t e[1];
    wr_exchange_decl x = {
        .name = d->name, .type = d->type, .durable = true, .arguments = amqp_empty_table};
    if (d->hash_header) {
      e[0].key = amqp_cstring_bytes("hash-header");
      e[0].value.kind = AMQP_FIELD_KIND_UTF8;
      e[0].value.value.bytes = amqp_cstring_bytes(d->hash_header);
      x.arguments = (amqp_table_t){1, e};
    }
    return wr_conn_declare_exchange(c, &x, err);
  }
  case D_QUEUE: {
    arg args[MAX_ARGS];
    size_t n = queue_arguments(&d->a, args);
    amqp_table_entry_t e[MAX_ARGS];
    for (size_t i = 0; i < n; i++) {
      e[i].key = amqp_cstring_bytes(args[i].key);
      if (args[i].is_bool) {
        e[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        e[i].value.value.boolean = args[i].i != 0;
      } else if (args[i].is_int) {
        /* integers as long ('l'): RabbitMQ refuses x-message-ttl as a string */
        e[i].value.kind = AMQP_FIELD_KIND_I64;
        e[i].value.value.i64 = args[i].i;
      } else {
        e[i].value.kind = AMQP_FIELD_KIND_UTF8;
        e[i].value.value.bytes = amqp_cstring_bytes(args[i].s);
      }
    }
    wr_queue_decl q = {.name = d->name,
                       .durable = true,
                       .exclusive = false,
                       .auto_delete = false,
                       .arguments = {(int)n, n ? e : NULL}};
    return wr_conn_declare_queue(c, &q, false, NULL, NULL, err);
  }
  case D_BIND:
    if (d->to_exchange)
      return wr_conn_bind_exchange(c, d->name, d->exchange, d->rk, amqp_empty_table, err);
    return wr_conn_bind_queue(c, d->name, d->exchange, d->rk, amqp_empty_table, err);
  }
  return WR_EINVAL;
}

int wr_topology_declare(const wr_topology *t, wr_conn *c, wr_err *err) {
  if (!t || !c)
    return wr_err_set(err, WR_EINVAL, "topology declare: topology and connection required");
  for (size_t i = 0; i < t->n; i++) {
    wr_err e2;
    wr_err_clear(&e2);
    int rc = declare_one(&t->v[i], c, &e2);
    if (rc == 0)
      continue;
    /* Say which of our declarations the broker refused, next to its own text
     * (which for 406 names the inequivalent argument and the current value). */
    sbuf b = {0};
    render_decl(&b, &t->v[i]);
    wr_err_set(err, rc, "topology: %s [our declaration: %s]", e2.msg, b.p && !b.oom ? b.p : "?");
    if (err)
      err->amqp_reply = e2.amqp_reply;
    free(b.p);
    return rc;
  }
  return 0;
}

int wr_topology_on_open(wr_conn *c, void *user, wr_err *err) {
  return wr_topology_declare((const wr_topology *)user, c, err);
}
