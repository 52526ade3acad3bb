/* warren/metrics.h: a small, thread-safe metrics registry rendered in the Prometheus
 * text exposition format (version 0.0.4). Services expose it at GET /metrics.
 *
 * Series are created on first use and live as long as the registry; updating one is
 * lock-free (atomics), so hot paths may update them per event. Label sets are given
 * already formatted ("queue=\"order.customer-sync\",result=\"applied\"") and are
 * escaped by the caller with wr_metrics_label_escape() when they hold outside text. */
#ifndef WARREN_METRICS_H
#define WARREN_METRICS_H

#include <warren/common.h>

WR_BEGIN_DECLS

typedef struct wr_metrics wr_metrics;
typedef struct wr_counter wr_counter;
typedef struct wr_gauge wr_gauge;
typedef struct wr_histogram wr_histogram;

WR_EXPORT int wr_metrics_new(wr_metrics **out);
WR_EXPORT void wr_metrics_free(wr_metrics *m); /* NULL allowed; handles become invalid */

/* Returns the series (name, labels), creating it on first call. The same name must
 * always be used with the same kind and help (else NULL). labels may be NULL or "".
 * Handles are owned by the registry. Thread-safe. NULL on ENOMEM or misuse; updating
 * a NULL handle is a no-op, so instrumentation never crashes a service. */
WR_EXPORT wr_counter *wr_metrics_counter(wr_metrics *m, const char *name, const char *help,
                                         const char *labels);
WR_EXPORT wr_gauge *wr_metrics_gauge(wr_metrics *m, const char *name, const char *help,
                                     const char *labels);
/* buckets: strictly increasing upper bounds (the +Inf bucket is implicit), copied. */
WR_EXPORT wr_histogram *wr_metrics_histogram(wr_metrics *m, const char *name, const char *help,
                                             const char *labels, const double *buckets,
                                             size_t n_buckets);

WR_EXPORT void wr_counter_add(wr_counter *c, uint64_t n);
WR_EXPORT uint64_t wr_counter_value(const wr_counter *c);
WR_EXPORT void wr_gauge_set(wr_gauge *g, double v);
WR_EXPORT void wr_gauge_add(wr_gauge *g, double delta);
WR_EXPORT double wr_gauge_value(const wr_gauge *g);
WR_EXPORT void wr_histogram_observe(wr_histogram *h, double v);
WR_EXPORT uint64_t wr_histogram_count(const wr_histogram *h);
/* The q-quantile (0..1) estimated by linear interpolation inside buckets (as
 * Prometheus' histogram_quantile does). NaN when empty. */
WR_EXPORT double wr_histogram_quantile(const wr_histogram *h, double q);

/* A gauge computed at render time (queue depth, outbox backlog). fn runs on the
 * rendering thread and must be thread-safe; return NaN to omit the sample. */
typedef double (*wr_gauge_fn)(void *user);
WR_EXPORT int wr_metrics_gauge_fn(wr_metrics *m, const char *name, const char *help,
                                  const char *labels, wr_gauge_fn fn, void *user);

/* Renders every series grouped by name with # HELP / # TYPE lines. Returns a malloc'd
 * NUL-terminated string (caller frees), NULL on ENOMEM. */
WR_EXPORT char *wr_metrics_render(wr_metrics *m);

/* Escapes a label value (backslash, quote, newline) into out; truncates. */
WR_EXPORT void wr_metrics_label_escape(const char *in, char *out, size_t outsz);

/* Default latency buckets in seconds: 1 ms .. 60 s. */
extern WR_EXPORT const double wr_metrics_latency_buckets[];
extern WR_EXPORT const size_t wr_metrics_latency_buckets_n;

WR_END_DECLS

#endif
