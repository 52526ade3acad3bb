/* test_metrics.c: the Prometheus registry: exact rendered text, exact counts under
 * concurrency, quantile estimates, and misuse refused without crashing. */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <warren/error.h>
#include <warren/metrics.h>

static wr_metrics *new_registry(void) {
  wr_metrics *m = NULL;
  assert_int_equal(wr_metrics_new(&m), 0);
  assert_non_null(m);
  return m;
}

static double depth_fn(void *user) {
  return *(double *)user;
}

static double nan_fn(void *user) {
  (void)user;
  return NAN;
}

/* A known registry renders to exactly this text. */
static void render_exact(void **state) {
  (void)state;
  wr_metrics *m = new_registry();
  wr_counter *applied = wr_metrics_counter(m, "warren_events_consumed_total", "Events consumed.",
                                           "queue=\"q1\",result=\"applied\"");
  wr_counter *dup = wr_metrics_counter(m, "warren_events_consumed_total", "Events consumed.",
                                       "queue=\"q1\",result=\"duplicate\"");
  assert_non_null(applied);
  assert_non_null(dup);
  wr_counter_add(applied, 41);
  wr_counter_add(applied, 1);
  wr_counter_add(dup, 3);
  /* The same (name, labels) is the same handle. */
  assert_ptr_equal(applied,
                   wr_metrics_counter(m, "warren_events_consumed_total", "Events consumed.",
                                      "queue=\"q1\",result=\"applied\""));

  wr_gauge *pending =
      wr_metrics_gauge(m, "warren_outbox_pending", "Rows waiting.\nSecond \\ line", NULL);
  wr_gauge_set(pending, 7);
  wr_gauge_add(pending, 0.5);

  const double b[] = {0.1, 0.5, 1};
  wr_histogram *h =
      wr_metrics_histogram(m, "warren_sync_latency_seconds", "Sync latency.", "queue=\"q1\"", b, 3);
  assert_non_null(h);
  wr_histogram_observe(h, 0.05);
  wr_histogram_observe(h, 0.1); /* le is inclusive: lands in 0.1 */
  wr_histogram_observe(h, 0.7);
  wr_histogram_observe(h, 3);
  wr_histogram_observe(h, NAN); /* ignored */
  assert_int_equal(wr_histogram_count(h), 4);

  char esc[64];
  wr_metrics_label_escape("a\"b\\c\nd", esc, sizeof esc);
  char labels[128];
  snprintf(labels, sizeof labels, "queue=\"%s\"", esc);
  static double depth = 12;
  assert_int_equal(wr_metrics_gauge_fn(m, "warren_consumer_lag_messages", "Queue depth.", labels,
                                       depth_fn, &depth),
                   0);
  assert_int_equal(wr_metrics_gauge_fn(m, "warren_consumer_lag_messages", "Queue depth.",
                                       "queue=\"gone\"", nan_fn, NULL),
                   0);
  wr_counter *bare = wr_metrics_counter(m, "warren_bare_total", NULL, "");
  wr_counter_add(bare, 18446744073709551615ULL);

  char *text = wr_metrics_render(m);
  assert_non_null(text);
  const char *want = "# HELP warren_events_consumed_total Events consumed.\n"
                     "# TYPE warren_events_consumed_total counter\n"
                     "warren_events_consumed_total{queue=\"q1\",result=\"applied\"} 42\n"
                     "warren_events_consumed_total{queue=\"q1\",result=\"duplicate\"} 3\n"
                     "# HELP warren_outbox_pending Rows waiting.\\nSecond \\\\ line\n"
                     "# TYPE warren_outbox_pending gauge\n"
                     "warren_outbox_pending 7.5\n"
                     "# HELP warren_sync_latency_seconds Sync latency.\n"
                     "# TYPE warren_sync_latency_seconds histogram\n"
                     "warren_sync_latency_seconds_bucket{queue=\"q1\",le=\"0.1\"} 2\n"
                     "warren_sync_latency_seconds_bucket{queue=\"q1\",le=\"0.5\"} 2\n"
                     "warren_sync_latency_seconds_bucket{queue=\"q1\",le=\"1\"} 3\n"
                     "warren_sync_latency_seconds_bucket{queue=\"q1\",le=\"+Inf\"} 4\n"
                     "warren_sync_latency_seconds_sum{queue=\"q1\"} 3.85\n"
                     "warren_sync_latency_seconds_count{queue=\"q1\"} 4\n"
                     "# HELP warren_consumer_lag_messages Queue depth.\n"
                     "# TYPE warren_consumer_lag_messages gauge\n"
                     "warren_consumer_lag_messages{queue=\"a\\\"b\\\\c\\nd\"} 12\n"
                     "# TYPE warren_bare_total counter\n"
                     "warren_bare_total 18446744073709551615\n";
  assert_string_equal(text, want);
  free(text);

  /* Computed gauges are read at each render. */
  depth = 0.25;
  text = wr_metrics_render(m);
  assert_non_null(strstr(text, "warren_consumer_lag_messages{queue=\"a\\\"b\\\\c\\nd\"} 0.25\n"));
  free(text);
  wr_metrics_free(m);
}

static void render_special_values(void **state) {
  (void)state;
  wr_metrics *m = new_registry();
  char *text = wr_metrics_render(m);
  assert_string_equal(text, ""); /* empty registry: empty text, not NULL */
  free(text);
  wr_gauge *g1 = wr_metrics_gauge(m, "g", "", "k=\"inf\"");
  wr_gauge *g2 = wr_metrics_gauge(m, "g", "", "k=\"ninf\"");
  wr_gauge *g3 = wr_metrics_gauge(m, "g", "", "k=\"nan\"");
  wr_gauge *g4 = wr_metrics_gauge(m, "g", "", "k=\"third\"");
  wr_gauge *g5 = wr_metrics_gauge(m, "g", "", "k=\"tiny\"");
  wr_gauge *g6 = wr_metrics_gauge(m, "g", "", "k=\"big\"");
  wr_gauge_set(g1, INFINITY);
  wr_gauge_set(g2, -INFINITY);
  wr_gauge_set(g3, NAN);
  wr_gauge_set(g4, 1.0 / 3.0);
  wr_gauge_set(g5, 1e-6);
  wr_gauge_set(g6, 0.1 + 0.2);
  text = wr_metrics_render(m);
  assert_string_equal(text, "# TYPE g gauge\n"
                            "g{k=\"inf\"} +Inf\n"
                            "g{k=\"ninf\"} -Inf\n"
                            "g{k=\"nan\"} NaN\n"
                            "g{k=\"third\"} 0.3333333333333333\n"
                            "g{k=\"tiny\"} 1e-06\n"
                            "g{k=\"big\"} 0.30000000000000004\n");
  free(text);
  /* A histogram without finite buckets has only +Inf. */
  wr_histogram *h = wr_metrics_histogram(m, "h", "H.", NULL, NULL, 0);
  assert_non_null(h);
  wr_histogram_observe(h, -2);
  text = wr_metrics_render(m);
  assert_non_null(
      strstr(text, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum -2\nh_count 1\n"));
  free(text);
  wr_metrics_free(m);
}

/* ---- concurrency ----------------------------------------------------------------- */

#define THREADS    4
#define PER_THREAD 100000

typedef struct worker {
  wr_metrics *m;
  int id;
} worker;

static void *hammer(void *arg) {
  worker *w = arg;
  /* Every thread looks the series up itself: creation races must yield one series. */
  wr_counter *c = wr_metrics_counter(w->m, "hits_total", "Hits.", "k=\"shared\"");
  wr_gauge *g = wr_metrics_gauge(w->m, "level", "Level.", NULL);
  wr_histogram *h = wr_metrics_histogram(w->m, "lat_seconds", "Latency.", NULL,
                                         wr_metrics_latency_buckets, wr_metrics_latency_buckets_n);
  char labels[32];
  snprintf(labels, sizeof labels, "thread=\"%d\"", w->id);
  wr_counter *mine = wr_metrics_counter(w->m, "per_thread_total", "Per thread.", labels);
  if (!c || !g || !h || !mine)
    return (void *)1;
  for (int i = 0; i < PER_THREAD; i++) {
    wr_counter_add(c, 1);
    wr_counter_add(mine, 2);
    wr_gauge_add(g, 1.0);
    wr_histogram_observe(h, (i % 2) ? 0.002 : 100.0);
    if (i % 20000 == 0) { /* renders race with updates */
      char *t = wr_metrics_render(w->m);
      if (!t)
        return (void *)1;
      free(t);
    }
  }
  return NULL;
}

static void concurrent_updates_are_exact(void **state) {
  (void)state;
  wr_metrics *m = new_registry();
  pthread_t t[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){m, i};
    assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    void *ret = NULL;
    pthread_join(t[i], &ret);
    assert_null(ret);
  }
  wr_counter *c = wr_metrics_counter(m, "hits_total", "Hits.", "k=\"shared\"");
  assert_int_equal(wr_counter_value(c), (uint64_t)THREADS * PER_THREAD);
  wr_gauge *g = wr_metrics_gauge(m, "level", "Level.", NULL);
  assert_true(wr_gauge_value(g) == (double)THREADS * PER_THREAD);
  wr_histogram *h = wr_metrics_histogram(m, "lat_seconds", "Latency.", NULL,
                                         wr_metrics_latency_buckets, wr_metrics_latency_buckets_n);
  assert_int_equal(wr_histogram_count(h), (uint64_t)THREADS * PER_THREAD);
  char *text = wr_metrics_render(m);
  assert_non_null(text);
  assert_non_null(strstr(text, "hits_total{k=\"shared\"} 400000\n"));
  assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0025\"} 200000\n"));
  assert_non_null(strstr(text, "lat_seconds_bucket{le=\"60\"} 200000\n"));
  assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 400000\n"));
  assert_non_null(strstr(text, "lat_seconds_count 400000\n"));
  for (int i = 0; i < THREADS; i++) {
    char line[64];
    snprintf(line, sizeof line, "per_thread_total{thread=\"%d\"} 200000\n", i);
    assert_non_null(strstr(text, line));
  }
  /* HELP/TYPE once per name. */
  const char *p = text;
  int types = 0;
  while ((p = strstr(p, "# TYPE per_thread_total ")) != NULL) {
    types++;
    p++;
  }
  assert_int_equal(types, 1);
  free(text);
  wr_metrics_free(m);
}

/* ---- quantiles ------------------------------------------------------------------- */

static void quantile_estimates(void **state) {
  (void)state;
  wr_metrics *m = new_registry();
  const double b[] = {1, 2, 4};
  wr_histogram *h = wr_metrics_histogram(m, "q", "", NULL, b, 3);
  assert_true(isnan(wr_histogram_quantile(h, 0.5))); /* empty */
  /* 10 in (0,1], 10 in (1,2], 0 in (2,4], 0 in +Inf */
  for (int i = 0; i < 10; i++) {
    wr_histogram_observe(h, 0.5);
    wr_histogram_observe(h, 1.5);
  }
  assert_true(fabs(wr_histogram_quantile(h, 0.5) - 1.0) < 1e-9);  /* rank 10: end of bucket 1 */
  assert_true(fabs(wr_histogram_quantile(h, 0.25) - 0.5) < 1e-9); /* rank 5: middle of (0,1] */
  assert_true(fabs(wr_histogram_quantile(h, 0.75) - 1.5) < 1e-9); /* rank 15: middle of (1,2] */
  assert_true(fabs(wr_histogram_quantile(h, 1.0) - 2.0) < 1e-9);
  assert_true(fabs(wr_histogram_quantile(h, 0.0) - 0.0) < 1e-9);
  /* Ranks in the +Inf bucket answer the highest finite bound. */
  for (int i = 0; i < 80; i++)
    wr_histogram_observe(h, 1000);
  assert_true(fabs(wr_histogram_quantile(h, 0.99) - 4.0) < 1e-9);
  assert_true(isnan(wr_histogram_quantile(h, -0.1)));
  assert_true(isnan(wr_histogram_quantile(h, 1.1)));
  assert_true(isnan(wr_histogram_quantile(h, NAN)));
  assert_true(isnan(wr_histogram_quantile(NULL, 0.5)));
  /* Many buckets (beyond the on-stack buffer). */
  double many[100];
  for (int i = 0; i < 100; i++)
    many[i] = i + 1;
  wr_histogram *hm = wr_metrics_histogram(m, "qm", "", NULL, many, 100);
  for (int i = 0; i < 100; i++)
    wr_histogram_observe(hm, i + 0.5);
  assert_true(fabs(wr_histogram_quantile(hm, 0.5) - 50.0) < 1e-9);
  wr_metrics_free(m);
}

/* ---- misuse ---------------------------------------------------------------------- */

static void misuse_is_refused(void **state) {
  (void)state;
  static double one = 1;
  wr_metrics *m = new_registry();
  assert_non_null(wr_metrics_counter(m, "x_total", "X.", NULL));
  /* same name, different kind or help */
  assert_null(wr_metrics_gauge(m, "x_total", "X.", NULL));
  assert_null(wr_metrics_histogram(m, "x_total", "X.", NULL, wr_metrics_latency_buckets,
                                   wr_metrics_latency_buckets_n));
  assert_null(wr_metrics_counter(m, "x_total", "Other help.", NULL));
  assert_int_equal(wr_metrics_gauge_fn(m, "x_total", "X.", NULL, depth_fn, &one), WR_EINVAL);
  /* names */
  const char *bad_names[] = {"", "1abc", "a-b", "a b", "é", "a\nb"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    assert_null(wr_metrics_counter(m, bad_names[i], "", NULL));
    assert_int_equal(wr_metrics_gauge_fn(m, bad_names[i], "", NULL, depth_fn, &one), WR_EINVAL);
  }
  assert_null(wr_metrics_counter(m, NULL, "", NULL));
  assert_non_null(wr_metrics_counter(m, "ns:sub_total", "", NULL)); /* colons are fine */
  /* labels */
  const char *bad_labels[] = {
      "a",        "a=1",        "a=\"1",         "a=\"1\",",        "a=\"1\"b=\"2\"",
      "1a=\"x\"", "a=\"x\\q\"", "a=\"x\ny\"",    "a=\"1\",a=\"2\"", "a=\"\xff\"",
      " a=\"1\"", "a =\"1\"",   "a=\"\xc0\xaf\""};
  for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
    assert_null(wr_metrics_counter(m, "y_total", "", bad_labels[i]));
    assert_int_equal(wr_metrics_gauge_fn(m, "y_g", "", bad_labels[i], depth_fn, &one), WR_EINVAL);
  }
  assert_non_null(wr_metrics_counter(m, "y_total", "", "a=\"\",b=\"x\\\"y\\\\z\\n\",_c=\"é\""));
  /* histograms: le is reserved; buckets strictly increasing, finite; same per name */
  const double ok[] = {1, 2};
  const double unsorted[] = {2, 1};
  const double equal[] = {1, 1};
  const double inf[] = {1, INFINITY};
  const double nan_b[] = {NAN};
  assert_null(wr_metrics_histogram(m, "h1", "", "le=\"1\"", ok, 2));
  assert_null(wr_metrics_histogram(m, "h1", "", NULL, unsorted, 2));
  assert_null(wr_metrics_histogram(m, "h1", "", NULL, equal, 2));
  assert_null(wr_metrics_histogram(m, "h1", "", NULL, inf, 2));
  assert_null(wr_metrics_histogram(m, "h1", "", NULL, nan_b, 1));
  assert_null(wr_metrics_histogram(m, "h1", "", NULL, NULL, 2));
  assert_non_null(wr_metrics_histogram(m, "h1", "", "a=\"1\"", ok, 2));
  assert_null(wr_metrics_histogram(m, "h1", "", "a=\"2\"", ok, 1));
  assert_non_null(wr_metrics_counter(m, "c_le", "", "le=\"fine on a counter\""));
  /* computed gauges: no duplicate, no updatable handle for them */
  assert_int_equal(wr_metrics_gauge_fn(m, "depth", "", "q=\"a\"", depth_fn, &one), 0);
  assert_int_equal(wr_metrics_gauge_fn(m, "depth", "", "q=\"a\"", depth_fn, &one), WR_EEXIST);
  assert_null(wr_metrics_gauge(m, "depth", "", "q=\"a\""));
  assert_non_null(wr_metrics_gauge(m, "depth", "", "q=\"b\"")); /* same family, plain series */
  assert_int_equal(wr_metrics_gauge_fn(m, "depth", "", "q=\"b\"", depth_fn, &one), WR_EEXIST);
  assert_int_equal(wr_metrics_gauge_fn(m, "depth", "", "q=\"c\"", NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_metrics_gauge_fn(NULL, "depth", "", NULL, depth_fn, &one), WR_EINVAL);
  /* NULL everywhere is harmless */
  assert_null(wr_metrics_counter(NULL, "z_total", "", NULL));
  wr_counter_add(NULL, 1);
  wr_gauge_set(NULL, 1);
  wr_gauge_add(NULL, 1);
  wr_histogram_observe(NULL, 1);
  assert_int_equal(wr_counter_value(NULL), 0);
  assert_true(isnan(wr_gauge_value(NULL)));
  assert_int_equal(wr_histogram_count(NULL), 0);
  assert_null(wr_metrics_render(NULL));
  assert_int_equal(wr_metrics_new(NULL), WR_EINVAL);
  wr_metrics_free(NULL);
  /* The refused calls left nothing behind: the text holds only the accepted series. */
  char *text = wr_metrics_render(m);
  assert_null(strstr(text, "y_g"));
  assert_null(strstr(text, "h1_bucket{a=\"2\""));
  free(text);
  wr_metrics_free(m);
}

static void label_escape(void **state) {
  (void)state;
  char out[64];
  wr_metrics_label_escape("plain", out, sizeof out);
  assert_string_equal(out, "plain");
  wr_metrics_label_escape("q\"b\\n\nx", out, sizeof out);
  assert_string_equal(out, "q\\\"b\\\\n\\nx");
  wr_metrics_label_escape(NULL, out, sizeof out);
  assert_string_equal(out, "");
  wr_metrics_label_escape("bad\xff\xc0utf8", out, sizeof out);
  assert_string_equal(out, "bad??utf8");
  wr_metrics_label_escape("h\xc3\xa9", out, sizeof out);
  assert_string_equal(out, "h\xc3\xa9");
  /* truncation never splits an escape or a UTF-8 character */
  char small[4];
  wr_metrics_label_escape("ab\"", small, sizeof small);
  assert_string_equal(small, "ab");
  wr_metrics_label_escape("a\xc3\xa9\xc3\xa9", small, sizeof small);
  assert_string_equal(small, "a\xc3\xa9");
  wr_metrics_label_escape("abcdef", small, sizeof small);
  assert_string_equal(small, "abc");
  char one[1];
  wr_metrics_label_escape("abc", one, sizeof one);
  assert_string_equal(one, "");
  wr_metrics_label_escape("abc", NULL, 0); /* no crash */
  /* An escaped value is always accepted back as a label value. */
  char labels[200];
  wr_metrics_label_escape("x\"\\\n\xfe", out, sizeof out);
  snprintf(labels, sizeof labels, "v=\"%s\"", out);
  wr_metrics *m = new_registry();
  assert_non_null(wr_metrics_counter(m, "e_total", "", labels));
  wr_metrics_free(m);
}

/* A computed gauge may use the registry while rendering (no lock is held). */
static wr_metrics *reentrant_m;
static double reentrant_fn(void *user) {
  (void)user;
  wr_counter_add(wr_metrics_counter(reentrant_m, "made_during_render_total", "", NULL), 1);
  return 1;
}

static void gauge_fn_may_use_registry(void **state) {
  (void)state;
  reentrant_m = new_registry();
  assert_int_equal(wr_metrics_gauge_fn(reentrant_m, "r", "", NULL, reentrant_fn, NULL), 0);
  char *text = wr_metrics_render(reentrant_m);
  assert_non_null(text);
  assert_non_null(strstr(text, "r 1\n"));
  free(text);
  text = wr_metrics_render(reentrant_m);
  assert_non_null(strstr(text, "made_during_render_total 2\n")); /* fn ran first */
  free(text);
  wr_metrics_free(reentrant_m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(render_exact),
      cmocka_unit_test(render_special_values),
      cmocka_unit_test(concurrent_updates_are_exact),
      cmocka_unit_test(quantile_estimates),
      cmocka_unit_test(misuse_is_refused),
      cmocka_unit_test(label_escape),
      cmocka_unit_test(gauge_fn_may_use_registry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
