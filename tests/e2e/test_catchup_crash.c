// warren-test: link=warren_devkit,warren_schemas timeout=900 serial
/* Catch-up killed in the middle of a load: the order service is killed (SIGKILL) while
 * it pages through the customer service's bulk API, then started again. Its pages
 * commit without waiting for their WAL flush and two writers commit them out of order,
 * so this pins what the design promises: the view never holds a page its watermark
 * claims without the rows, the restart resumes from the watermark (it does not load
 * everything again: the customers' updated_at are spread far wider than the resume
 * margin) and ends with the view equal to the source row by row. The customers are
 * written by SQL so that no event can fill in for the catch-up.
 *
 * The second case crashes PostgreSQL instead (an immediate stop: no checkpoint, the
 * commits that were not flushed yet are lost) while the order service keeps running:
 * its catch-up fails, retries with backoff, resumes from whatever watermark survived
 * and converges, without a restart of the service. Serial: it restarts the shared
 * database server. */
#include "e2e.h"

#include <signal.h>

#define N         60000
#define PAGE_SIZE "100"

static int setup(void **state) {
  return e2e_setup_state(state, "catchup_crash");
}

/* N customers written by SQL, updated_at spread over 100 minutes in the past. */
static void insert_customers(e2e *e) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "INSERT INTO customers SELECT '0190ca7c-0000-7000-8000-' || lpad(i::text, 12, '0'),"
           " 'Customer ' || i || CASE WHEN i %% 997 = 5 THEN ' \"q\" ' || chr(92) ELSE '' END,"
           " 'c' || i || '@crash.example.com',"
           " CASE WHEN i %% 100 = 7 THEN 'deleted' WHEN i %% 10 = 3 THEN 'suspended'"
           " ELSE 'active' END, 1 + i %% 5,"
           /* updated_at spread over 100 minutes in the past: the restart resumes from
            * the watermark minus its 5-minute margin, well before the end */
           " now() - interval '2 hours' + i * interval '100 milliseconds',"
           " now() - interval '2 hours' + i * interval '100 milliseconds'"
           " FROM generate_series(0, %d) AS i",
           N - 1);
  e2e_sql(e->customer_db, "%s", sql);
}

static const char *const SMALL_PAGES[] = {"WARREN_CATCHUP_PAGE_SIZE=" PAGE_SIZE, NULL};

/* The source with N customers, and an order service started on it with small pages
 * (so that the load takes long enough to be cut) that has read a fifth of them.
 * Returns how many it has read. */
static double load_a_fifth(e2e *e) {
  e2e_start_customer(e, NULL);
  insert_customers(e);
  e2e_start(e, &e->order, "order", SMALL_PAGES, false);
  return e2e_wait_metric(&e->order, "order_catchup_items_total", N / 5, 120000);
}

static void killed_mid_load_resumes(void **state) {
  e2e *e = *state;
  double loaded = load_a_fifth(e);
  assert_int_equal(dk_stop(&e->order, SIGKILL, 10000), 128 + SIGKILL);
  long long rows = e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view");
  print_message("killed after %.0f of %d customers were read; %lld rows in the view\n", loaded, N,
                rows);
  if (rows >= N)
    fail_msg("the catch-up finished before the kill (%lld rows): nothing was cut", rows);
  assert_true(rows > 0);
  /* whatever committed is whole: every row the watermark covers is in the view */
  long long behind =
      e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view v, catchup_state s"
                              " WHERE s.source = 'customer' AND v.source_updated_at > s.watermark");
  print_message("%lld view rows newer than the committed watermark (pages committed ahead)\n",
                behind);

  /* second start: resumes from the watermark and converges */
  e2e_start(e, &e->order, "order", SMALL_PAGES, true);
  double again = e2e_metric(&e->order, "order_catchup_items_total");
  print_message("the restart read %.0f customers (of %d) to finish the load\n", again, N);
  assert_true(again < N);
  assert_true(again >= (double)(N - rows));
  assert_int_equal(e2e_view_diff(e, true), 0);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view"), N);
}

static void database_crash_mid_load_resumes(void **state) {
  e2e *e = *state;
  double loaded = load_a_fifth(e);
  int64_t t0 = wt_now_ms();
  assert_int_equal(wt_stack("pg-restart"), 0);
  print_message("PostgreSQL stopped (immediate) and started again in %lld ms, after %.0f of %d "
                "customers were read\n",
                (long long)(wt_now_ms() - t0), loaded, N);
  long long rows = e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view");
  print_message("%lld rows in the view after the crash\n", rows);
  if (rows >= N)
    fail_msg("the catch-up finished before the crash (%lld rows): nothing was cut", rows);
  /* the same process finishes the load: no restart */
  wr_err err = {0};
  if (dk_wait_ready(&e->order, 120000, &err) != 0) {
    dk_tail(e->order.log_path, 40);
    fail_msg("%s", err.msg);
  }
  assert_true(dk_alive(&e->order));
  double total = e2e_metric(&e->order, "order_catchup_items_total");
  print_message("caught up %lld ms after the crash; %.0f customers read in all\n",
                (long long)(wt_now_ms() - t0), total);
  /* it resumed from the surviving watermark: it read the rest, not everything again */
  assert_true(total >= loaded + (double)(N - rows));
  assert_true(total < loaded + N);
  assert_int_equal(e2e_view_diff(e, true), 0);
  assert_int_equal(e2e_scalar(e->order_db, "SELECT count(*) FROM customer_view"), N);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(killed_mid_load_resumes, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(database_crash_mid_load_resumes, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
