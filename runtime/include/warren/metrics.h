/* warren/metrics.h: a small, thread-safe metrics registry rendered in the Prometheus
 * text exposition format (version 0.0.4). Services expose it at GET /metrics.
 *
 * Series are created on first use and live as long as the registry; updating one is
 * lock-free (atomics), so hot paths may update them per event (looking one up takes a
 * mutex: keep the handle where the label set is fixed). Label sets are given already
 * formatted ("queue=\"order.customer-sync\",result=\"applied\"") and are escaped by the
 * caller with wr_metrics_label_escape() when they hold outside text; a malformed label
 * string is refused, so nothing a caller passes can corrupt the rendered text. Series
 * are identified by the exact label string: write the labels in one fixed order.
 *
 * Names: [a-zA-Z_:][a-zA-Z0-9_:]*. Labels: name="value" pairs joined by ',', names
 * [a-zA-Z_][a-zA-Z0-9_]* (each once, at most 32), values UTF-8 with only \\ \" \n escapes. */
#ifndef WARREN_METRICS_H
#define WARREN_METRICS_H

#include <warren/common.h>

WR_BEGIN_DECLS

typedef struct wr_metrics wr_metrics;
typedef struct wr_counter wr_counter;
typedef struct wr_gauge wr_gauge;
typedef struct wr_histogram wr_histogram;

/* Creates an empty registry. Returns 0 and *out (free with wr_metrics_free), WR_EINVAL
 * (out NULL) or WR_ENOMEM. */
WR_EXPORT int wr_metrics_new(wr_metrics **out);
/* Frees the registry and every series. NULL allowed; handles become invalid, so stop
 * every user (HTTP server, consumers, renderers) first. */
WR_EXPORT void wr_metrics_free(wr_metrics *m);

/* Returns the series (name, labels), creating it on first call. The same name must
 * always be used with the same kind and help (else NULL); help NULL means "" (no HELP
 * line). labels may be NULL or "". Handles are owned by the registry. Thread-safe.
 * NULL on ENOMEM or misuse (bad name or labels, other kind/help, a computed gauge's
 * series); updating a NULL handle is a no-op, so instrumentation never crashes a
 * service. */
WR_EXPORT wr_counter *wr_metrics_counter(wr_metrics *m, const char *name, const char *help,
                                         const char *labels);
WR_EXPORT wr_gauge *wr_metrics_gauge(wr_metrics *m, const char *name, const char *help,
                                     const char *labels);
/* buckets: strictly increasing finite upper bounds (the +Inf bucket is implicit),
 * copied; every series of one name must use the same buckets (else NULL). The label
 * `le` is reserved. */
WR_EXPORT wr_histogram *wr_metrics_histogram(wr_metrics *m, const char *name, const char *help,
                                             const char *labels, const double *buckets,
                                             size_t n_buckets);

/* Updates and reads. All accept NULL (no-op; reads give 0, or NaN for a gauge). Counter
 * values are exact 64-bit integers; gauges are doubles. A NaN observation is ignored. */
WR_EXPORT void wr_counter_add(wr_counter *c, uint64_t n);
WR_EXPORT uint64_t wr_counter_value(const wr_counter *c);
WR_EXPORT void wr_gauge_set(wr_gauge *g, double v);
WR_EXPORT void wr_gauge_add(wr_gauge *g, double delta);
WR_EXPORT double wr_gauge_value(const wr_gauge *g);
WR_EXPORT void wr_histogram_observe(wr_histogram *h, double v);
WR_EXPORT uint64_t wr_histogram_count(const wr_histogram *h);
/* The q-quantile (0..1) estimated by linear interpolation inside buckets (as
 * Prometheus' histogram_quantile does: the first bucket starts at 0, a rank in the +Inf
 * bucket answers the highest finite bound). NaN when empty or q outside 0..1. */
WR_EXPORT double wr_histogram_quantile(const wr_histogram *h, double q);

/* A gauge computed at render time (queue depth, outbox backlog). fn runs on the
 * rendering thread, without the registry lock (it may use the registry), and must be
 * thread-safe; return NaN to omit the sample. user is borrowed until the registry is
 * freed. Returns 0, WR_EINVAL (bad name/labels, fn NULL, the name is another kind or
 * has another help), WR_EEXIST (this name and label set exist already), WR_ENOMEM. */
typedef double (*wr_gauge_fn)(void *user);
WR_EXPORT int wr_metrics_gauge_fn(wr_metrics *m, const char *name, const char *help,
                                  const char *labels, wr_gauge_fn fn, void *user);

/* Renders every series grouped by name (names in order of first use, series in order of
 * creation) with # HELP (when help is not empty) and # TYPE lines: counters as
 * integers, gauges as shortest round-trip doubles (NaN, +Inf, -Inf spelled so),
 * histograms as cumulative _bucket{le="..."} lines ending with le="+Inf", then _sum and
 * _count (= the +Inf bucket). Returns a malloc'd NUL-terminated string (caller frees;
 * "" for an empty registry), NULL on ENOMEM or m NULL. */
WR_EXPORT char *wr_metrics_render(wr_metrics *m);

/* Escapes a label value (backslash, quote, newline; invalid UTF-8 bytes become '?')
 * into out, always NUL-terminated; truncates at a character boundary, never inside an
 * escape. Cannot fail. */
WR_EXPORT void wr_metrics_label_escape(const char *in, char *out, size_t outsz);

/* Default latency buckets in seconds: 1 ms .. 60 s. */
extern WR_EXPORT const double wr_metrics_latency_buckets[];
extern WR_EXPORT const size_t wr_metrics_latency_buckets_n;

WR_END_DECLS

#endif
