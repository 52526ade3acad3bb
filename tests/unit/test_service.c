/* test_service.c: option parsing (flags, environment, defaults, secrets only from the
 * environment or a file, required options), numeric option bounds, UTF-8 character
 * counting used by body validation. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <warren/service.h>

static const char *url, *token, *addr, *level;

static wr_option *opts(void) {
  static wr_option o[4];
  wr_option def[4] = {
      {"database-url", "WT_DB_URL", NULL, "db", &url, true, true},
      {"admin-token", "WT_TOKEN", NULL, "token", &token, true, false},
      {"http-addr", "WT_ADDR", "127.0.0.1:1", "addr", &addr, false, false},
      {"log-level", NULL, "info", "level", &level, false, false},
  };
  memcpy(o, def, sizeof def);
  url = token = addr = level = NULL;
  return o;
}

static int parse(int argc, char **argv, wr_err *err) {
  return wr_options_parse("prog", "summary", opts(), 4, argc, argv, err);
}

static void flags_env_defaults(void **state) {
  (void)state;
  wr_err err;
  setenv("WT_DB_URL", "postgres://env", 1);
  unsetenv("WT_TOKEN");
  unsetenv("WT_ADDR");
  char *a1[] = {"prog", "--http-addr", ":9", "--log-level=debug"};
  assert_int_equal(parse(4, a1, &err), 0);
  assert_string_equal(url, "postgres://env");
  assert_null(token);
  assert_string_equal(addr, ":9");
  assert_string_equal(level, "debug");
  char *a2[] = {"prog"};
  setenv("WT_ADDR", "0.0.0.0:7", 1);
  assert_int_equal(parse(1, a2, &err), 0);
  assert_string_equal(addr, "0.0.0.0:7"); /* env beats default */
  char *a3[] = {"prog", "--http-addr", ":5"};
  assert_int_equal(parse(3, a3, &err), 0);
  assert_string_equal(addr, ":5"); /* flag beats env */
  unsetenv("WT_ADDR");
}

static void secrets_never_from_argv(void **state) {
  (void)state;
  wr_err err;
  setenv("WT_DB_URL", "postgres://env", 1);
  char *a1[] = {"prog", "--admin-token", "hunter2"};
  assert_int_equal(parse(3, a1, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "secret"));
  assert_null(strstr(err.msg, "hunter2"));
  char path[] = "/tmp/wt_token_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "s3cr3t\nsecond line\n", 19), 19);
  close(fd);
  char *a2[] = {"prog", "--admin-token-file", path};
  assert_int_equal(parse(3, a2, &err), 0);
  assert_string_equal(token, "s3cr3t");
  unlink(path);
  char *a3[] = {"prog", "--admin-token-file", "/nonexistent/file"};
  assert_int_equal(parse(3, a3, &err), WR_EINVAL);
  char *a4[] = {"prog", "--http-addr-file", "/etc/hostname"}; /* not a secret option */
  assert_int_equal(parse(3, a4, &err), WR_EINVAL);
}

static void bad_command_lines(void **state) {
  (void)state;
  wr_err err;
  setenv("WT_DB_URL", "postgres://env", 1);
  char *a1[] = {"prog", "--nope", "1"};
  assert_int_equal(parse(3, a1, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "--nope"));
  char *a2[] = {"prog", "--http-addr"};
  assert_int_equal(parse(2, a2, &err), WR_EINVAL);
  char *a3[] = {"prog", "stray"};
  assert_int_equal(parse(2, a3, &err), WR_EINVAL);
  unsetenv("WT_DB_URL");
  char *a4[] = {"prog"};
  assert_int_equal(parse(1, a4, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "WT_DB_URL"));
  setenv("WT_DB_URL", "", 1); /* empty counts as unset */
  assert_int_equal(parse(1, a4, &err), WR_EINVAL);
  unsetenv("WT_DB_URL");
}

static void help_prints_no_secret(void **state) {
  (void)state;
  setenv("WT_TOKEN", "do-not-print-me", 1);
  fflush(stdout);
  char path[] = "/tmp/wt_help_XXXXXX";
  int fd = mkstemp(path);
  int saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  char *a1[] = {"prog", "--help"};
  wr_err err;
  int rc = parse(2, a1, &err);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  assert_int_equal(rc, 1);
  char buf[4096] = {0};
  lseek(fd, 0, SEEK_SET);
  assert_true(read(fd, buf, sizeof buf - 1) > 0);
  close(fd);
  unlink(path);
  assert_non_null(strstr(buf, "--admin-token-file"));
  assert_non_null(strstr(buf, "WT_TOKEN"));
  assert_null(strstr(buf, "do-not-print-me"));
  unsetenv("WT_TOKEN");
}

static void uint_bounds(void **state) {
  (void)state;
  unsigned v;
  wr_err err;
  assert_int_equal(wr_option_uint("n", "42", 1, 100, &v, &err), 0);
  assert_int_equal(v, 42);
  const char *bad[] = {"", "0", "101", "-1", "4x", " 4", "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(wr_option_uint("n", bad[i], 1, 100, &v, &err), WR_EINVAL);
  assert_int_equal(wr_option_uint("n", NULL, 1, 100, &v, &err), WR_EINVAL);
}

static void utf8_chars(void **state) {
  (void)state;
  assert_int_equal(wr_utf8_chars("abc", 3), 3);
  assert_int_equal(wr_utf8_chars("ünï", strlen("ünï")), 3);
  assert_int_equal(wr_utf8_chars("\xf0\x9f\x98\x80", 4), 1); /* emoji */
  assert_int_equal(wr_utf8_chars("", 0), 0);
  assert_int_equal(wr_utf8_chars("a\x01", 2), -1); /* control */
  assert_int_equal(wr_utf8_chars("a\x7f", 2), -1);
  assert_int_equal(wr_utf8_chars("\xc3", 1), -1);             /* truncated */
  assert_int_equal(wr_utf8_chars("\xc0\xaf", 2), -1);         /* overlong */
  assert_int_equal(wr_utf8_chars("\xed\xa0\x80", 3), -1);     /* surrogate */
  assert_int_equal(wr_utf8_chars("\xf4\x90\x80\x80", 4), -1); /* > U+10FFFF */
  assert_int_equal(wr_utf8_chars("\xff", 1), -1);
  assert_int_equal(wr_utf8_chars("a\0b", 3), -1); /* NUL */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flags_env_defaults), cmocka_unit_test(secrets_never_from_argv),
      cmocka_unit_test(bad_command_lines),  cmocka_unit_test(help_prints_no_secret),
      cmocka_unit_test(uint_bounds),        cmocka_unit_test(utf8_chars),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
