/* test_error.c: every error code has a distinct name and a real description. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <warren/db.h>
#include <warren/error.h>

static void every_code_has_text(void **state) {
  (void)state;
  int n = 0;
#define CHECK(name, value, text)                                                                   \
  assert_string_equal(wr_strerror(WR_##name), text);                                               \
  assert_string_equal(wr_errname(WR_##name), "WR_" #name);                                         \
  assert_true((value) < 0);                                                                        \
  n++;
  WR_ERRNO_MAP(CHECK)
#undef CHECK
  assert_true(n > 20);
  assert_string_equal(wr_strerror(12345), "unknown error");
  assert_string_equal(wr_errname(12345), "WR_UNKNOWN");
  assert_string_equal(wr_strerror(0), "success");
}

static void codes_are_unique(void **state) {
  (void)state;
  static const int codes[] = {
#define CODE(name, value, text) value,
      WR_ERRNO_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      assert_int_not_equal(codes[i], codes[j]);
}

static void err_set_formats(void **state) {
  (void)state;
  wr_err e;
  assert_int_equal(wr_err_set(&e, WR_EDB, "insert %s failed (%d)", "outbox", 3), WR_EDB);
  assert_int_equal(e.code, WR_EDB);
  assert_string_equal(e.msg, "insert outbox failed (3)");
  assert_int_equal(wr_err_set(NULL, WR_EIO, "ignored"), WR_EIO);
  wr_err_clear(&e);
  assert_int_equal(e.code, 0);
}

/* Only a deadlock or a serialization failure reported by the database is worth running
 * the transaction again for; everything else (a constraint, a lost connection, another
 * code carrying the same sqlstate text) is not. */
static void db_retryable(void **state) {
  wr_err e;
  wr_err_set(&e, WR_EDB, "deadlock detected");
  snprintf(e.sqlstate, sizeof e.sqlstate, "40P01");
  assert_true(wr_db_retryable(&e));
  snprintf(e.sqlstate, sizeof e.sqlstate, "40001");
  assert_true(wr_db_retryable(&e));
  snprintf(e.sqlstate, sizeof e.sqlstate, "23505");
  assert_false(wr_db_retryable(&e));
  e.sqlstate[0] = '\0';
  assert_false(wr_db_retryable(&e));
  wr_err_set(&e, WR_EAMQP, "not a database error");
  snprintf(e.sqlstate, sizeof e.sqlstate, "40P01");
  assert_false(wr_db_retryable(&e));
  assert_false(wr_db_retryable(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_code_has_text),
      cmocka_unit_test(codes_are_unique),
      cmocka_unit_test(err_set_formats),
      cmocka_unit_test(db_retryable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
