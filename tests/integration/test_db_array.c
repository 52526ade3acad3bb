/* test_db_array.c: wr_db_text_array literals survive PostgreSQL's array parser
 * unchanged for hostile elements (quotes, backslashes, commas, braces, the word NULL,
 * spaces, UTF-8), so set-based statements never split or merge ids. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <warren/db.h>

static void hostile_elements_round_trip(void **state) {
  (void)state;
  const char *items[] = {"plain",
                         "",
                         "a,b",
                         "{braces}",
                         "quo\"te",
                         "back\\slash",
                         "NULL",
                         " spaced ",
                         "ünï",
                         "\\\"",
                         "x'y; DROP TABLE t; --"};
  size_t n = sizeof items / sizeof items[0];
  char *lit = wr_db_text_array(items, n);
  assert_non_null(lit);
  PGconn *c = wt_pg_connect(wt_require("WARREN_PG_URL"));
  const char *p[1] = {lit};
  PGresult *r = PQexecParams(
      c, "SELECT x, x IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i", 1,
      NULL, p, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), n);
  for (int i = 0; i < (int)n; i++) {
    assert_string_equal(PQgetvalue(r, i, 0), items[i]);
    assert_string_equal(PQgetvalue(r, i, 1), "f"); /* "NULL" stays a string */
  }
  PQclear(r);
  free(lit);
  char *empty = wr_db_text_array(NULL, 0);
  assert_string_equal(empty, "{}");
  p[0] = empty;
  r = PQexecParams(c, "SELECT cardinality($1::text[])", 1, NULL, p, NULL, NULL, 0);
  assert_string_equal(PQgetvalue(r, 0, 0), "0");
  PQclear(r);
  free(empty);
  PQfinish(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(hostile_elements_round_trip)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
