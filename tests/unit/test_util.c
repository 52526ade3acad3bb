/* test_util.c: UUIDv7, RFC 3339, redaction, constant-time compare, backoff. */
#include "harness.h"

#include <string.h>
#include <warren/error.h>
#include <warren/util.h>

static void uuid_v7_shape_and_order(void **state) {
  (void)state;
  char prev[WR_UUID_STRLEN] = "";
  for (int i = 0; i < 5000; i++) {
    char u[WR_UUID_STRLEN];
    assert_int_equal(wr_uuid_v7(u), 0);
    assert_true(wr_uuid_valid(u));
    assert_int_equal(u[14], '7');           /* version */
    assert_non_null(strchr("89ab", u[19])); /* variant */
    if (prev[0])
      assert_true(strcmp(prev, u) < 0); /* monotonic within the process */
    memcpy(prev, u, sizeof u);
  }
  assert_false(wr_uuid_valid("not-a-uuid"));
  assert_false(wr_uuid_valid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5"));
  assert_false(wr_uuid_valid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb"));
  assert_false(wr_uuid_valid(NULL));
}

static void rfc3339_round_trip(void **state) {
  (void)state;
  char buf[WR_RFC3339_STRLEN];
  assert_int_equal(wr_rfc3339_format(0, 0, buf), 0);
  assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
  assert_int_equal(wr_rfc3339_format(1795892647, 123456789, buf), 0);
  assert_string_equal(buf, "2026-11-28T19:04:07.123456Z");
  int64_t s;
  int32_t ns;
  assert_int_equal(wr_rfc3339_parse("2026-11-28T19:04:07.123456Z", &s, &ns), 0);
  assert_int_equal(s, 1795892647);
  assert_int_equal(ns, 123456000);
  assert_int_equal(wr_rfc3339_parse("2026-11-28T20:04:07+01:00", &s, &ns), 0);
  assert_int_equal(s, 1795892647);
  assert_int_equal(wr_rfc3339_parse("0001-01-01T00:00:00Z", &s, &ns), 0);
  assert_int_equal(s, -62135596800LL);
  assert_int_equal(wr_rfc3339_parse("9999-12-31T23:59:59.999999999Z", &s, &ns), 0);
  assert_int_equal(ns, 999999999);
  assert_int_equal(wr_rfc3339_parse("2024-02-29T00:00:00Z", &s, &ns), 0);
  /* hostile */
  const char *bad[] = {"",
                       "2026-11-28",
                       "2026-13-01T00:00:00Z",
                       "2026-02-30T00:00:00Z",
                       "2023-02-29T00:00:00Z",
                       "2026-11-28T24:00:00Z",
                       "2026-11-28T19:04:07",
                       "2026-11-28T19:04:07.Z",
                       "2026-11-28T19:04:07.1234567890Z",
                       "2026-11-28T19:04:07Zjunk",
                       "x026-11-28T19:04:07Z",
                       "0000-01-01T00:00:00Z",
                       "2026-11-28T19:04:07+25:00"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(wr_rfc3339_parse(bad[i], &s, &ns), WR_EINVAL);
  assert_int_equal(wr_rfc3339_format(253402300800LL, 0, buf), WR_EINVAL);
  assert_int_equal(wr_rfc3339_format(0, -1, buf), WR_EINVAL);
}

static void redaction(void **state) {
  (void)state;
  char out[256];
  wr_redact_url("amqp://guest:secret@host:5672/vh", out, sizeof out);
  assert_string_equal(out, "amqp://guest:***@host:5672/vh");
  wr_redact_url("amqps://u:p%40ss@a:1,amqp://v:w@b:2", out, sizeof out);
  assert_string_equal(out, "amqps://u:***@a:1,amqp://v:***@b:2");
  wr_redact_url("postgres://app@db/x", out, sizeof out);
  assert_string_equal(out, "postgres://app@db/x");
  wr_redact_url("host=db user=app password=hunter2 dbname=x", out, sizeof out);
  assert_string_equal(out, "host=db user=app password=*** dbname=x");
  wr_redact_url("host=db password='a b\\' c' dbname=x", out, sizeof out);
  assert_string_equal(out, "host=db password=*** dbname=x");
  wr_redact_url("amqp://u:pw@h", out, 8);
  assert_int_equal(strlen(out), 7);
  assert_null(strstr(out, "pw"));
}

static void consttime(void **state) {
  (void)state;
  assert_true(wr_consttime_eq("token", 5, "token", 5));
  assert_false(wr_consttime_eq("token", 5, "tokex", 5));
  assert_false(wr_consttime_eq("token", 5, "token2", 6));
  assert_false(wr_consttime_eq("", 0, "a", 1));
  assert_true(wr_consttime_eq("", 0, "", 0));
}

static void backoff_bounds(void **state) {
  (void)state;
  for (unsigned a = 0; a < 40; a++)
    for (int i = 0; i < 50; i++) {
      unsigned d = wr_backoff_ms(a, 100, 5000);
      assert_true(d >= 50 && d <= 5000);
      if (a == 0)
        assert_true(d <= 100);
    }
}

static void base64(void **state) {
  (void)state;
  char out[64];
  unsigned char back[64];
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    size_t n = strlen(in[i]);
    assert_int_equal(wr_base64_encode(in[i], n, false, out, sizeof out), strlen(std[i]));
    assert_string_equal(out, std[i]);
    assert_int_equal(wr_base64_encode(in[i], n, true, out, sizeof out), strlen(url[i]));
    assert_string_equal(out, url[i]);
    assert_int_equal(wr_base64_decode(std[i], strlen(std[i]), false, back, sizeof back), n);
    assert_memory_equal(back, in[i], n);
    assert_int_equal(wr_base64_decode(url[i], strlen(url[i]), true, back, sizeof back), n);
    assert_memory_equal(back, in[i], n);
  }
  unsigned char bin[3] = {0xfb, 0xff, 0xfe};
  assert_int_equal(wr_base64_encode(bin, 3, false, out, sizeof out), 4);
  assert_string_equal(out, "+//+");
  assert_int_equal(wr_base64_encode(bin, 3, true, out, sizeof out), 4);
  assert_string_equal(out, "-__-");
  /* hostile */
  assert_int_equal(wr_base64_decode("Zm9v!", 5, true, back, sizeof back), WR_EINVAL);
  assert_int_equal(wr_base64_decode("Zm9", 3, false, back, sizeof back), WR_EINVAL);
  assert_int_equal(wr_base64_decode("Z", 1, true, back, sizeof back), WR_EINVAL);
  assert_int_equal(wr_base64_decode("Zh", 2, true, back, sizeof back),
                   WR_EINVAL); /* non-canonical */
  assert_int_equal(wr_base64_decode("-__-", 4, false, back, sizeof back), WR_EINVAL);
  assert_int_equal(wr_base64_decode("Zm\0v", 4, true, back, sizeof back), WR_EINVAL);
  assert_int_equal(wr_base64_decode("Zm9vYmFy", 8, true, back, 5), WR_ETOOBIG);
  assert_int_equal(wr_base64_encode("foo", 3, false, out, 4), WR_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(uuid_v7_shape_and_order),
      cmocka_unit_test(rfc3339_round_trip),
      cmocka_unit_test(redaction),
      cmocka_unit_test(consttime),
      cmocka_unit_test(backoff_bounds),
      cmocka_unit_test(base64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
