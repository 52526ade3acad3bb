/* schema.c: the process-wide registry of generated schemas (warren/schema.h).
 *
 * Registration is rare (once per schema at start-up) and lookups are frequent (wr_json
 * asks for the JSON names of every message it encodes), so the registry keeps two
 * sorted indexes that a registration rebuilds whole and lookups search under a read
 * lock: event types by name, JSON names by descriptor address.
 *
 * wr_schema_foreach_event() walks an append-only list of registered schemas without
 * holding the lock, so its callback may itself call into the registry (even register).
 * The list's links are atomic: a registration publishes a fully built node with a
 * release store, the walk reads links with acquire loads.
 *
 * Nothing is ever unregistered: schemas are static data that outlive the process, and
 * the registry's own memory stays reachable until exit. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <warren/error.h>
#include <warren/schema.h>
#include "warren/v1/options.pb-c.h"

/* One registered schema. shadowed[i] is true when events[i] repeats a type that an
 * earlier schema already registered with the same descriptor (the walk skips it). */
typedef struct node {
  const wr_schema *schema;
  bool *shadowed;
  _Atomic(struct node *) next;
} node;

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static _Atomic(node *) head;
static node *tail;                    /* under the write lock */
static const wr_event_type **by_type; /* sorted by type name */
static size_t n_by_type;
static const wr_json_names **by_desc; /* sorted by descriptor address */
static size_t n_by_desc;

const char *wr_event_kind_name(wr_event_kind kind) {
  switch (kind) {
  case WR_KIND_CREATED:
    return "created";
  case WR_KIND_UPDATED:
    return "updated";
  case WR_KIND_DELETED:
    return "deleted";
  case WR_KIND_SNAPSHOT:
    return "snapshot";
  case WR_KIND_OTHER:
    return "other";
  case WR_KIND_UNSPECIFIED:
  default:
    return "unspecified";
  }
}

static bool is_descriptor(const ProtobufCMessageDescriptor *d) {
  return d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

/* What protoc-gen-warren guarantees about an event message, checked again here because
 * a table may also be written by hand (tests, tools). */
static bool valid_event(const wr_schema *s, const wr_event_type *t) {
  if (t->type == NULL || t->type[0] == '\0' || t->aggregate_type == NULL ||
      t->aggregate_type[0] == '\0' || t->exchange == NULL || t->exchange[0] == '\0' ||
      t->schema != s || t->kind < WR_KIND_CREATED || t->kind > WR_KIND_OTHER ||
      !is_descriptor(t->descriptor))
    return false;
  const ProtobufCMessageDescriptor *d = t->descriptor;
  if (d->name == NULL || strcmp(d->name, t->type) != 0 || d->n_fields == 0)
    return false;
  const ProtobufCFieldDescriptor *meta = &d->fields[0]; /* protoc-c sorts by number */
  return meta->id == 1 && meta->type == PROTOBUF_C_TYPE_MESSAGE &&
         meta->label != PROTOBUF_C_LABEL_REPEATED &&
         meta->descriptor == &warren__v1__event_meta__descriptor;
}

static bool valid_json(const wr_json_names *j) {
  if (!is_descriptor(j->descriptor))
    return false;
  if (j->names == NULL)
    return j->descriptor->n_fields == 0;
  for (unsigned i = 0; i < j->descriptor->n_fields; i++)
    if (j->names[i] == NULL || j->names[i][0] == '\0')
      return false;
  return true;
}

static int cmp_type(const void *a, const void *b) {
  const wr_event_type *x = *(const wr_event_type *const *)a;
  const wr_event_type *y = *(const wr_event_type *const *)b;
  return strcmp(x->type, y->type);
}

static int cmp_desc(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)(*(const wr_json_names *const *)a)->descriptor;
  uintptr_t y = (uintptr_t)(*(const wr_json_names *const *)b)->descriptor;
  return (x > y) - (x < y);
}

/* The entry of this type in by_type, or NULL. Caller holds the lock. */
static const wr_event_type *find_locked(const char *type) {
  size_t lo = 0, hi = n_by_type;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = strcmp(type, by_type[mid]->type);
    if (r == 0)
      return by_type[mid];
    if (r < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static const wr_json_names *json_locked(const ProtobufCMessageDescriptor *d) {
  size_t lo = 0, hi = n_by_desc;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    uintptr_t x = (uintptr_t)d, y = (uintptr_t)by_desc[mid]->descriptor;
    if (x == y)
      return by_desc[mid];
    if (x < y)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static bool registered_locked(const wr_schema *s) {
  for (node *n = atomic_load_explicit(&head, memory_order_relaxed); n != NULL;
       n = atomic_load_explicit(&n->next, memory_order_relaxed))
    if (n->schema == s)
      return true;
  return false;
}

int wr_schema_register(const wr_schema *s) {
  if (s == NULL)
    return WR_EINVAL;
  if (s->abi != WR_CODEGEN_ABI)
    return WR_ESCHEMA;
  if ((s->n_events > 0 && s->events == NULL) || (s->n_json > 0 && s->json == NULL) ||
      s->proto_file == NULL)
    return WR_EINVAL;
  for (size_t i = 0; i < s->n_events; i++)
    if (!valid_event(s, &s->events[i]))
      return WR_EINVAL;
  for (size_t i = 0; i < s->n_json; i++)
    if (!valid_json(&s->json[i]))
      return WR_EINVAL;

  pthread_rwlock_wrlock(&lock);
  int rc = 0;
  node *n = NULL;
  const wr_event_type **types = NULL;
  const wr_json_names **jsons = NULL;
  if (registered_locked(s))
    goto out;

  n = calloc(1, sizeof *n);
  types = malloc(sizeof *types * (n_by_type + s->n_events + 1));
  jsons = malloc(sizeof *jsons * (n_by_desc + s->n_json + 1));
  if (n == NULL || types == NULL || jsons == NULL ||
      (n->shadowed = calloc(s->n_events + 1, sizeof(bool))) == NULL) {
    rc = WR_ENOMEM;
    goto out;
  }
  /* Conflicts first, so that a refused schema leaves the registry unchanged: a type
   * may be registered again only with the same descriptor (the same generated code
   * reached through two tables); another definition of it is a schema mismatch. */
  size_t nt = n_by_type;
  if (n_by_type > 0)
    memcpy(types, by_type, sizeof *types * n_by_type);
  for (size_t i = 0; i < s->n_events; i++) {
    const wr_event_type *t = &s->events[i];
    const wr_event_type *prev = find_locked(t->type);
    for (size_t k = 0; prev == NULL && k < i; k++)
      if (strcmp(s->events[k].type, t->type) == 0)
        prev = &s->events[k];
    if (prev != NULL) {
      if (prev->descriptor != t->descriptor || strcmp(prev->exchange, t->exchange) != 0) {
        rc = WR_ESCHEMA;
        goto out;
      }
      n->shadowed[i] = true;
      continue;
    }
    types[nt++] = t;
  }
  size_t nj = n_by_desc;
  if (n_by_desc > 0)
    memcpy(jsons, by_desc, sizeof *jsons * n_by_desc);
  for (size_t i = 0; i < s->n_json; i++) {
    bool seen = json_locked(s->json[i].descriptor) != NULL;
    for (size_t k = 0; !seen && k < i; k++)
      seen = s->json[k].descriptor == s->json[i].descriptor;
    if (!seen) /* first registration of a descriptor's names wins */
      jsons[nj++] = &s->json[i];
  }
  qsort(types, nt, sizeof *types, cmp_type);
  qsort(jsons, nj, sizeof *jsons, cmp_desc);

  free(by_type);
  free(by_desc);
  by_type = types;
  n_by_type = nt;
  by_desc = jsons;
  n_by_desc = nj;
  types = NULL;
  jsons = NULL;

  n->schema = s;
  atomic_init(&n->next, NULL);
  if (tail == NULL)
    atomic_store_explicit(&head, n, memory_order_release);
  else
    atomic_store_explicit(&tail->next, n, memory_order_release);
  tail = n;
  n = NULL;

out:
  pthread_rwlock_unlock(&lock);
  if (n != NULL)
    free(n->shadowed);
  free(n);
  free(types);
  free(jsons);
  return rc;
}

const wr_event_type *wr_schema_find_event(const char *type) {
  if (type == NULL)
    return NULL;
  pthread_rwlock_rdlock(&lock);
  const wr_event_type *t = find_locked(type);
  pthread_rwlock_unlock(&lock);
  return t;
}

const char *const *wr_schema_json_names(const ProtobufCMessageDescriptor *desc) {
  if (desc == NULL)
    return NULL;
  pthread_rwlock_rdlock(&lock);
  const wr_json_names *j = json_locked(desc);
  pthread_rwlock_unlock(&lock);
  return j ? j->names : NULL;
}

void wr_schema_foreach_event(void (*fn)(const wr_event_type *t, void *user), void *user) {
  if (fn == NULL)
    return;
  for (node *n = atomic_load_explicit(&head, memory_order_acquire); n != NULL;
       n = atomic_load_explicit(&n->next, memory_order_acquire))
    for (size_t i = 0; i < n->schema->n_events; i++)
      if (!n->shadowed[i])
        fn(&n->schema->events[i], user);
}
