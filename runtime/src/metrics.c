/* metrics.c: a thread-safe metrics registry rendered in the Prometheus text format 0.0.4.
 *
 * Shape. The registry is a list of families (one per metric name: kind, help, and for
 * histograms the bucket bounds), each with a list of series (one per label string).
 * Both lists are append-only until wr_metrics_free(): a series, once created, never
 * moves, so the handle given out is simply a pointer to it and updating it needs no
 * lock, only an atomic. Creating or looking up a series takes the registry mutex.
 *
 * Values. Counters are 64-bit atomic integers. Gauges and histogram sums are doubles
 * stored as their bit patterns in 64-bit atomics and updated with compare-and-swap
 * loops (C11 has no atomic double add). Histogram buckets are kept non-cumulative (one
 * atomic increment per observation) and summed into cumulative counts at render time;
 * _count is rendered as the sum of the buckets, so it always equals the +Inf bucket in
 * one rendering even while observations race with it.
 *
 * Rendering. wr_metrics_render() snapshots the series pointers under the mutex and then
 * renders without it, so a slow gauge callback (a queue-depth query) never blocks a hot
 * path that creates a series, and a callback may itself use the registry.
 *
 * Validation. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label strings must be a
 * well-formed, already escaped `name="value",...` list (so nothing a caller passes can
 * break the exposition format); histograms may not use the label `le`. Misuse returns
 * NULL (or WR_EINVAL), never aborts. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "sbuf.h"
#include <warren/error.h>
#include <warren/metrics.h>

#include "utf8.h"

typedef enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind;

struct family;

/* One series. wr_counter, wr_gauge and wr_histogram handles all point at one of these
 * (the public types are opaque; the casts below are the only place they meet). */
typedef struct series {
  struct series *next;
  struct family *fam;
  char *labels;             /* "" when none; validated */
  _Atomic uint64_t value;   /* counter value, or gauge double bits */
  _Atomic uint64_t sum;     /* histogram: double bits of the sum */
  _Atomic uint64_t *counts; /* histogram: n_buckets + 1 non-cumulative counts */
  wr_gauge_fn fn;           /* computed gauge, or NULL */
  void *fn_user;
} series;

typedef struct family {
  struct family *next;
  char *name;
  char *help;
  kind kind;
  double *buckets; /* histogram upper bounds, strictly increasing, finite */
  size_t n_buckets;
  series *head, *tail;
  size_t n_series;
} family;

struct wr_metrics {
  pthread_mutex_t mu;
  family *head, *tail;
  size_t n_series;
};

const double wr_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};
const size_t wr_metrics_latency_buckets_n =
    sizeof wr_metrics_latency_buckets / sizeof wr_metrics_latency_buckets[0];

/* ---- double <-> bits ------------------------------------------------------------- */

static uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double bitsd(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double delta) {
  uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + delta),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* ---- validation ------------------------------------------------------------------ */

static bool name_valid(const char *s) {
  if (!s || !*s)
    return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(p != s && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

/* Checks `k="v",k2="v2"`: label names [a-zA-Z_][a-zA-Z0-9_]*, values with only the
 * escapes \\ \" \n and no raw newline, no duplicate names, and (for histograms) no `le`.
 * The empty string is a valid (empty) label set. */
static bool labels_valid(const char *s, bool forbid_le) {
  const char *names[32];
  size_t lens[32], n = 0;
  const char *p = s;
  if (*p == '\0')
    return true;
  for (;;) {
    const char *k = p;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
      return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
           (*p >= '0' && *p <= '9'))
      p++;
    size_t klen = (size_t)(p - k);
    if (forbid_le && klen == 2 && memcmp(k, "le", 2) == 0)
      return false;
    for (size_t i = 0; i < n; i++)
      if (lens[i] == klen && memcmp(names[i], k, klen) == 0)
        return false;
    if (n == sizeof names / sizeof names[0])
      return false;
    names[n] = k;
    lens[n++] = klen;
    if (p[0] != '=' || p[1] != '"')
      return false;
    p += 2;
    for (;;) {
      if (*p == '\0' || *p == '\n')
        return false;
      if (*p == '"')
        break;
      if (*p == '\\') {
        if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
          return false;
        p += 2;
        continue;
      }
      size_t n_utf8 = wr__utf8_seq_len((const unsigned char *)p, 4);
      if (n_utf8 == 0)
        return false; /* the exposition format is UTF-8 */
      p += n_utf8;
    }
    p++; /* closing quote */
    if (*p == '\0')
      return true;
    if (*p != ',')
      return false;
    p++;
  }
}

static bool buckets_valid(const double *b, size_t n) {
  if (n > 0 && !b)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(b[i]))
      return false;
    if (i > 0 && !(b[i] > b[i - 1]))
      return false;
  }
  return true;
}

/* ---- registry -------------------------------------------------------------------- */

int wr_metrics_new(wr_metrics **out) {
  if (!out)
    return WR_EINVAL;
  *out = NULL;
  wr_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return WR_ENOMEM;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return WR_ENOMEM;
  }
  *out = m;
  return 0;
}

void wr_metrics_free(wr_metrics *m) {
  if (!m)
    return;
  family *f = m->head;
  while (f) {
    family *fn = f->next;
    series *s = f->head;
    while (s) {
      series *sn = s->next;
      free(s->labels);
      free(s->counts);
      free(s);
      s = sn;
    }
    free(f->name);
    free(f->help);
    free(f->buckets);
    free(f);
    f = fn;
  }
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* Finds or creates family `name` (mu held). NULL on misuse (other kind, help or
 * buckets) or ENOMEM. */
static family *family_get(wr_metrics *m, const char *name, const char *help, kind k,
                          const double *buckets, size_t n_buckets) {
  for (family *f = m->head; f; f = f->next) {
    if (strcmp(f->name, name) != 0)
      continue;
    if (f->kind != k || strcmp(f->help, help) != 0)
      return NULL;
    if (k == KIND_HISTOGRAM &&
        (f->n_buckets != n_buckets ||
         (n_buckets > 0 && memcmp(f->buckets, buckets, n_buckets * sizeof *buckets) != 0)))
      return NULL;
    return f;
  }
  family *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->name = strdup(name);
  f->help = strdup(help);
  f->kind = k;
  if (k == KIND_HISTOGRAM && n_buckets > 0) {
    f->buckets = malloc(n_buckets * sizeof *buckets);
    if (f->buckets)
      memcpy(f->buckets, buckets, n_buckets * sizeof *buckets);
  }
  f->n_buckets = n_buckets;
  if (!f->name || !f->help || (k == KIND_HISTOGRAM && n_buckets > 0 && !f->buckets)) {
    free(f->name);
    free(f->help);
    free(f->buckets);
    free(f);
    return NULL;
  }
  if (m->tail)
    m->tail->next = f;
  else
    m->head = f;
  m->tail = f;
  return f;
}

static series *series_find(family *f, const char *labels) {
  for (series *s = f->head; s; s = s->next)
    if (strcmp(s->labels, labels) == 0)
      return s;
  return NULL;
}

static series *series_add(wr_metrics *m, family *f, const char *labels) {
  series *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->fam = f;
  s->labels = strdup(labels);
  if (f->kind == KIND_HISTOGRAM)
    s->counts = calloc(f->n_buckets + 1, sizeof *s->counts);
  if (!s->labels || (f->kind == KIND_HISTOGRAM && !s->counts)) {
    free(s->labels);
    free(s->counts);
    free(s);
    return NULL;
  }
  atomic_init(&s->value, f->kind == KIND_GAUGE ? dbits(0.0) : 0);
  atomic_init(&s->sum, dbits(0.0));
  for (size_t i = 0; f->kind == KIND_HISTOGRAM && i <= f->n_buckets; i++)
    atomic_init(&s->counts[i], 0);
  if (f->tail)
    f->tail->next = s;
  else
    f->head = s;
  f->tail = s;
  f->n_series++;
  m->n_series++;
  return s;
}

/* The common lookup: validates, finds or creates. A computed gauge (wr_metrics_gauge_fn)
 * is never returned as an updatable handle. */
static series *lookup(wr_metrics *m, const char *name, const char *help, const char *labels, kind k,
                      const double *buckets, size_t n_buckets) {
  if (!m || !name_valid(name))
    return NULL;
  if (!help)
    help = "";
  if (!labels)
    labels = "";
  if (!labels_valid(labels, k == KIND_HISTOGRAM))
    return NULL;
  if (k == KIND_HISTOGRAM && !buckets_valid(buckets, n_buckets))
    return NULL;
  pthread_mutex_lock(&m->mu);
  series *s = NULL;
  family *f = family_get(m, name, help, k, buckets, n_buckets);
  if (f) {
    s = series_find(f, labels);
    if (s && s->fn)
      s = NULL; /* a computed gauge has no handle to update */
    else if (!s)
      s = series_add(m, f, labels);
  }
  pthread_mutex_unlock(&m->mu);
  return s;
}

wr_counter *wr_metrics_counter(wr_metrics *m, const char *name, const char *help,
                               const char *labels) {
  return (wr_counter *)lookup(m, name, help, labels, KIND_COUNTER, NULL, 0);
}

wr_gauge *wr_metrics_gauge(wr_metrics *m, const char *name, const char *help, const char *labels) {
  return (wr_gauge *)lookup(m, name, help, labels, KIND_GAUGE, NULL, 0);
}

wr_histogram *wr_metrics_histogram(wr_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *buckets, size_t n_buckets) {
  return (wr_histogram *)lookup(m, name, help, labels, KIND_HISTOGRAM, buckets, n_buckets);
}

int wr_metrics_gauge_fn(wr_metrics *m, const char *name, const char *help, const char *labels,
                        wr_gauge_fn fn, void *user) {
  if (!m || !fn || !name_valid(name))
    return WR_EINVAL;
  if (!help)
    help = "";
  if (!labels)
    labels = "";
  if (!labels_valid(labels, false))
    return WR_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&m->mu);
  family *f = NULL;
  for (family *it = m->head; it; it = it->next)
    if (strcmp(it->name, name) == 0)
      f = it;
  if (f && (f->kind != KIND_GAUGE || strcmp(f->help, help) != 0)) {
    rc = WR_EINVAL;
  } else if (f && series_find(f, labels)) {
    rc = WR_EEXIST;
  } else {
    if (!f)
      f = family_get(m, name, help, KIND_GAUGE, NULL, 0);
    series *s = f ? series_add(m, f, labels) : NULL;
    if (!s) {
      rc = WR_ENOMEM;
    } else {
      s->fn = fn;
      s->fn_user = user;
    }
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

/* ---- updates (lock-free; NULL handles are no-ops) --------------------------------- */

void wr_counter_add(wr_counter *c, uint64_t n) {
  if (c)
    atomic_fetch_add_explicit(&((series *)c)->value, n, memory_order_relaxed);
}

uint64_t wr_counter_value(const wr_counter *c) {
  return c ? atomic_load_explicit(&((series *)c)->value, memory_order_relaxed) : 0;
}

void wr_gauge_set(wr_gauge *g, double v) {
  if (g)
    atomic_store_explicit(&((series *)g)->value, dbits(v), memory_order_relaxed);
}

void wr_gauge_add(wr_gauge *g, double delta) {
  if (g)
    atomic_add_double(&((series *)g)->value, delta);
}

double wr_gauge_value(const wr_gauge *g) {
  return g ? bitsd(atomic_load_explicit(&((series *)g)->value, memory_order_relaxed)) : NAN;
}

void wr_histogram_observe(wr_histogram *h, double v) {
  if (!h || isnan(v))
    return;
  series *s = (series *)h;
  const family *f = s->fam;
  /* Binary search for the first bound >= v ("le" is inclusive); past the end = +Inf. */
  size_t lo = 0, hi = f->n_buckets;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= f->buckets[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
  atomic_add_double(&s->sum, v);
}

uint64_t wr_histogram_count(const wr_histogram *h) {
  if (!h)
    return 0;
  const series *s = (const series *)h;
  uint64_t total = 0;
  for (size_t i = 0; i <= s->fam->n_buckets; i++)
    total += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
  return total;
}

/* Prometheus' histogram_quantile(): find the bucket holding rank q*count and
 * interpolate linearly between its lower and upper bound (the first bucket starts at
 * 0 unless its bound is <= 0; the +Inf bucket answers the highest finite bound). */
double wr_histogram_quantile(const wr_histogram *h, double q) {
  if (!h || isnan(q) || q < 0 || q > 1)
    return NAN;
  const series *s = (const series *)h;
  const family *f = s->fam;
  size_t nb = f->n_buckets;
  uint64_t cum[64]; /* enough for usual histograms; larger ones allocate */
  uint64_t *c = cum;
  uint64_t *heap = NULL;
  if (nb + 1 > 64) {
    heap = malloc((nb + 1) * sizeof *heap);
    if (!heap)
      return NAN;
    c = heap;
  }
  uint64_t total = 0;
  for (size_t i = 0; i <= nb; i++) {
    total += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    c[i] = total;
  }
  double result = NAN;
  if (total > 0) {
    double rank = q * (double)total;
    size_t b = 0;
    while (b < nb && (double)c[b] < rank)
      b++;
    if (b == nb) { /* landed in +Inf */
      result = nb > 0 ? f->buckets[nb - 1] : NAN;
    } else {
      double end = f->buckets[b];
      double start = b > 0 ? f->buckets[b - 1] : (end > 0 ? 0.0 : end);
      double below = b > 0 ? (double)c[b - 1] : 0.0;
      double in = (double)c[b] - below;
      if (b == 0 && end <= 0)
        result = end;
      else
        result = in > 0 ? start + (end - start) * ((rank - below) / in) : start;
    }
  }
  free(heap);
  return result;
}

/* ---- rendering ------------------------------------------------------------------- */

/* Shortest text that reads back as the same double (Go's 'g' -1 in spirit), with the
 * exposition format's spellings of the special values. */
static void fmt_double(double v, char out[40]) {
  if (isnan(v)) {
    strcpy(out, "NaN");
    return;
  }
  if (isinf(v)) {
    strcpy(out, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, 40, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      return;
  }
}

/* HELP text escaping: backslash and newline. */
static void sb_help(wr__sbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      wr__sb_cstr(b, "\\\\");
    else if (*s == '\n')
      wr__sb_cstr(b, "\\n");
    else
      wr__sb_put(b, s, 1);
  }
}

/* name[suffix]{labels[,extra]} value\n */
static void sb_sample(wr__sbuf *b, const char *name, const char *suffix, const char *labels,
                      const char *extra, const char *value) {
  wr__sb_cstr(b, name);
  wr__sb_cstr(b, suffix);
  bool has = labels[0] != '\0', has_extra = extra && extra[0];
  if (has || has_extra) {
    wr__sb_cstr(b, "{");
    wr__sb_cstr(b, labels);
    if (has && has_extra)
      wr__sb_cstr(b, ",");
    if (has_extra)
      wr__sb_cstr(b, extra);
    wr__sb_cstr(b, "}");
  }
  wr__sb_cstr(b, " ");
  wr__sb_cstr(b, value);
  wr__sb_cstr(b, "\n");
}

static void render_series(wr__sbuf *b, const series *s) {
  const family *f = s->fam;
  char v[64];
  switch (f->kind) {
  case KIND_COUNTER:
    snprintf(v, sizeof v, "%" PRIu64, atomic_load_explicit(&s->value, memory_order_relaxed));
    sb_sample(b, f->name, "", s->labels, NULL, v);
    break;
  case KIND_GAUGE: {
    double d =
        s->fn ? s->fn(s->fn_user) : bitsd(atomic_load_explicit(&s->value, memory_order_relaxed));
    if (s->fn && isnan(d))
      break; /* the callback has nothing to say right now */
    fmt_double(d, v);
    sb_sample(b, f->name, "", s->labels, NULL, v);
    break;
  }
  case KIND_HISTOGRAM: {
    uint64_t total = 0;
    char le[64], bound[40];
    for (size_t i = 0; i <= f->n_buckets; i++) {
      total += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
      if (i < f->n_buckets)
        fmt_double(f->buckets[i], bound);
      else
        strcpy(bound, "+Inf");
      snprintf(le, sizeof le, "le=\"%s\"", bound);
      snprintf(v, sizeof v, "%" PRIu64, total);
      sb_sample(b, f->name, "_bucket", s->labels, le, v);
    }
    fmt_double(bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)), v);
    sb_sample(b, f->name, "_sum", s->labels, NULL, v);
    snprintf(v, sizeof v, "%" PRIu64, total);
    sb_sample(b, f->name, "_count", s->labels, NULL, v);
    break;
  }
  }
}

char *wr_metrics_render(wr_metrics *m) {
  if (!m)
    return NULL;
  /* Snapshot the series (grouped by family, in creation order) under the lock. */
  pthread_mutex_lock(&m->mu);
  size_t n = m->n_series;
  series **snap = malloc((n ? n : 1) * sizeof *snap);
  if (!snap) {
    pthread_mutex_unlock(&m->mu);
    return NULL;
  }
  size_t k = 0;
  for (family *f = m->head; f; f = f->next)
    for (series *s = f->head; s; s = s->next)
      snap[k++] = s;
  pthread_mutex_unlock(&m->mu);

  wr__sbuf b = {0};
  wr__sb_put(&b, "", 0); /* an empty registry renders as "" rather than NULL */
  static const char *type_names[] = {"counter", "gauge", "histogram"};
  const family *cur = NULL;
  for (size_t i = 0; i < k; i++) {
    const family *f = snap[i]->fam;
    if (f != cur) {
      cur = f;
      if (f->help[0]) {
        wr__sb_cstr(&b, "# HELP ");
        wr__sb_cstr(&b, f->name);
        wr__sb_cstr(&b, " ");
        sb_help(&b, f->help);
        wr__sb_cstr(&b, "\n");
      }
      wr__sb_cstr(&b, "# TYPE ");
      wr__sb_cstr(&b, f->name);
      wr__sb_cstr(&b, " ");
      wr__sb_cstr(&b, type_names[f->kind]);
      wr__sb_cstr(&b, "\n");
    }
    render_series(&b, snap[i]);
  }
  free(snap);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

void wr_metrics_label_escape(const char *in, char *out, size_t outsz) {
  if (!out || outsz == 0)
    return;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)(in ? in : "");
  while (*p) {
    const char *rep = NULL;
    size_t clen = 1;
    if (*p == '\\')
      rep = "\\\\";
    else if (*p == '"')
      rep = "\\\"";
    else if (*p == '\n')
      rep = "\\n";
    else if ((clen = wr__utf8_seq_len(p, 4)) == 0) {
      rep = "?"; /* the exposition format is UTF-8: never pass a broken byte on */
      clen = 1;
    }
    size_t need = rep ? strlen(rep) : clen;
    if (o + need >= outsz)
      break; /* truncate before a whole character, never inside an escape */
    if (rep)
      memcpy(out + o, rep, need);
    else
      memcpy(out + o, p, need);
    o += need;
    p += clen;
  }
  out[o] = '\0';
}
