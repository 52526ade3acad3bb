/* test_schema_errors.c: every schema rule of protoc-gen-warren, through the real protoc
 * and the real plugin.
 *
 * Each case is a .proto in tests/codegen/proto/bad/ that ends with the exact
 * diagnostics the user must see, one per "// expect: " line. The test runs protoc with
 * --c_out and --warren_out, and asserts: exit status 1, stderr exactly
 * "--warren_out: protoc-gen-warren found N error(s):" followed by those lines, and no
 * file written (a refused schema generates nothing, not even protoc-c's half). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PROTO_DIR CODEGEN_TEST_DIR "/proto"

/* ---- helpers ------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("open %s: %s", path, strerror(errno));
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    size_t got = fread(buf + n, 1, 4096, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

/* Runs argv (argv[0] a path) with stdin from in_path (or /dev/null), stdout to out_path
 * (or /dev/null) and stderr to err_path; returns the exit status (-1 if killed). */
static int run(char *const argv[], const char *in_path, const char *out_path,
               const char *err_path) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
    int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0)
      _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    assert_int_equal(errno, EINTR);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void make_tmpdir(char *out, size_t outsz) {
  const char *base = getenv("TMPDIR");
  snprintf(out, outsz, "%s/warren-codegen-XXXXXX", base && base[0] ? base : "/tmp");
  assert_non_null(mkdtemp(out));
}

static void rm_rf(const char *path) {
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* Number of regular files below path (recursively). */
static int count_files(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[4096];
    struct stat st;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (stat(sub, &st) == 0)
      n += S_ISDIR(st.st_mode) ? count_files(sub) : 1;
  }
  closedir(d);
  return n;
}

/* The "// <tag> " lines of a proto file, joined by newlines; *count gets their number. */
static char *expectations(const char *proto, const char *tag, int *count) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", PROTO_DIR, proto);
  char *text = read_file(path, NULL);
  size_t taglen = strlen(tag);
  char *out = calloc(1, strlen(text) + 1);
  assert_non_null(out);
  *count = 0;
  for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    if (strncmp(line, tag, taglen) != 0)
      continue;
    if (*count > 0)
      strcat(out, "\n");
    strcat(out, line + taglen);
    (*count)++;
  }
  free(text);
  return out;
}

typedef struct result {
  int status;
  char *err; /* protoc's stderr */
  int files; /* files written to the output directory */
} result;

/* protoc --c_out --warren_out on the given files (relative to PROTO_DIR). */
static result protoc(const char *first_import, const char *parameter, const char *const *files,
                     size_t n) {
  char tmp[4096], outdir[4200], errpath[4200], c_out[4300], w_out[4300];
  make_tmpdir(tmp, sizeof tmp);
  snprintf(outdir, sizeof outdir, "%s/out", tmp);
  snprintf(errpath, sizeof errpath, "%s/stderr", tmp);
  assert_int_equal(mkdir(outdir, 0700), 0);
  snprintf(c_out, sizeof c_out, "--c_out=%s", outdir);
  if (parameter)
    snprintf(w_out, sizeof w_out, "--warren_out=%s:%s", parameter, outdir);
  else
    snprintf(w_out, sizeof w_out, "--warren_out=%s", outdir);
  char imp0[4200] = "";
  if (first_import)
    snprintf(imp0, sizeof imp0, "-I%s/%s", PROTO_DIR, first_import);
  char *argv[32];
  int a = 0;
  argv[a++] = PROTOC;
  argv[a++] = "--plugin=protoc-gen-warren=" PLUGIN;
  argv[a++] = c_out;
  argv[a++] = w_out;
  if (first_import)
    argv[a++] = imp0;
  argv[a++] = "-I" PROTO_DIR;
  argv[a++] = "-I" WARREN_SCHEMA_DIR;
  argv[a++] = "-I" PROTOBUF_IMPORT_DIR;
  for (size_t i = 0; i < n; i++)
    argv[a++] = (char *)files[i];
  argv[a] = NULL;
  result r;
  r.status = run(argv, NULL, NULL, errpath);
  r.err = read_file(errpath, NULL);
  r.files = count_files(outdir);
  rm_rf(tmp);
  return r;
}

/* Asserts the run failed with exactly the expected diagnostics of `proto`. */
static void expect_diagnostics(const result *r, const char *proto) {
  int n = 0;
  char *lines = expectations(proto, "// expect: ", &n);
  assert_true(n > 0);
  size_t sz = strlen(lines) + 200;
  char *want = malloc(sz);
  assert_non_null(want);
  snprintf(want, sz, "--warren_out: protoc-gen-warren found %d error%s:\n%s\n", n,
           n == 1 ? "" : "s", lines);
  if (strcmp(r->err, want) != 0)
    fail_msg("%s: protoc said:\n%s\nexpected:\n%s", proto, r->err, want);
  assert_int_equal(r->status, 1);
  assert_int_equal(r->files, 0);
  free(want);
  free(lines);
}

static void check_case(const char *first_import, const char *proto) {
  const char *files[] = {proto};
  result r = protoc(first_import, NULL, files, 1);
  expect_diagnostics(&r, proto);
  free(r.err);
}

/* ---- one test per rule ------------------------------------------------------------- */

static void test_event_without_meta(void **state) {
  check_case(NULL, "bad/no_meta.proto");
}

static void test_meta_of_wrong_type(void **state) {
  check_case(NULL, "bad/meta_wrong_type.proto");
}

static void test_meta_of_wrong_number(void **state) {
  check_case(NULL, "bad/meta_wrong_number.proto");
}

static void test_meta_repeated_in_oneof_or_misnamed(void **state) {
  check_case(NULL, "bad/meta_shape.proto");
}

static void test_option_without_aggregate_type(void **state) {
  check_case(NULL, "bad/no_aggregate_type.proto");
}

static void test_invalid_aggregate_type(void **state) {
  check_case(NULL, "bad/bad_aggregate_type.proto");
}

static void test_kind_missing_or_unspecified(void **state) {
  check_case(NULL, "bad/no_kind.proto");
}

static void test_unknown_kind_value(void **state) {
  check_case(NULL, "bad/unknown_kind.proto");
}

static void test_unknown_option_field(void **state) {
  check_case("future", "bad/unknown_option_field.proto");
}

static void test_proto2_file(void **state) {
  check_case(NULL, "bad/proto2.proto");
}

static void test_file_without_package(void **state) {
  check_case(NULL, "bad/no_package.proto");
}

static void test_nested_event(void **state) {
  check_case(NULL, "bad/nested_event.proto");
}

static void test_exchange_with_illegal_characters(void **state) {
  check_case(NULL, "bad/bad_exchange.proto");
}

static void test_reserved_exchange(void **state) {
  check_case(NULL, "bad/reserved_exchange.proto");
}

static void test_exchange_in_file_without_events(void **state) {
  check_case(NULL, "bad/exchange_without_events.proto");
}

static void test_json_name_in_file_without_events(void **state) {
  check_case(NULL, "bad/json_name_without_events.proto");
}

static void test_routing_key_too_long(void **state) {
  check_case(NULL, "bad/long_type.proto");
}

static void test_two_events_one_c_name(void **state) {
  check_case(NULL, "bad/same_c_name.proto");
}

static void test_two_files_one_c_prefix(void **state) {
  /* Two files of one protoc run: the expectations are in the second. */
  const char *files[] = {"bad/collide_a.proto", "bad/collide_b.proto"};
  result r = protoc(NULL, NULL, files, 2);
  expect_diagnostics(&r, "bad/collide_b.proto");
  free(r.err);
}

static void test_unknown_parameter(void **state) {
  const char *files[] = {"kinds/v1/shared.proto"};
  result r = protoc(NULL, "verbose", files, 1);
  assert_string_equal(r.err, "--warren_out: protoc-gen-warren found 1 error:\n"
                             "protoc-gen-warren: unknown parameter \"verbose\" "
                             "(protoc-gen-warren takes none)\n");
  assert_int_equal(r.status, 1);
  assert_int_equal(r.files, 0);
  free(r.err);
}

/* Two events with one routing key on one exchange. Within one protoc run, protoc itself
 * refuses the second definition of the full name (the routing key) before any plugin
 * runs. */
static void test_same_routing_key_one_run(void **state) {
  const char *files[] = {"bad/dup_a.proto", "bad/dup_b.proto"};
  result r = protoc(NULL, NULL, files, 2);
  assert_int_equal(r.status, 1);
  assert_non_null(
      strstr(r.err, "\"dup.v1.ThingCreated\" is already defined in file \"bad/dup_a.proto\""));
  assert_null(strstr(r.err, "--warren_out"));
  assert_int_equal(r.files, 0);
  free(r.err);
}

/* ...and a request merged from two protoc runs (what another driver or a merged
 * descriptor set produces) reaches the plugin, which refuses it. The requests are
 * captured by a plugin that only saves its stdin, concatenated (protobuf merge:
 * repeated fields append), and fed to protoc-gen-warren directly. */
static void test_same_routing_key_merged_request(void **state) {
  char tmp[4096], dump[4200], req[4200], resp[4200], errp[4200], cmd[4300];
  make_tmpdir(tmp, sizeof tmp);
  snprintf(dump, sizeof dump, "%s/protoc-gen-dump", tmp);
  FILE *f = fopen(dump, "w");
  assert_non_null(f);
  fputs("#!/bin/sh\ncat >> \"$WARREN_DUMP_TO\"\n", f);
  fclose(f);
  assert_int_equal(chmod(dump, 0700), 0);
  snprintf(req, sizeof req, "%s/request.bin", tmp);
  snprintf(resp, sizeof resp, "%s/response.bin", tmp);
  snprintf(errp, sizeof errp, "%s/stderr", tmp);
  setenv("WARREN_DUMP_TO", req, 1);
  const char *inputs[] = {"bad/dup_a.proto", "bad/dup_b.proto"};
  for (int i = 0; i < 2; i++) {
    char plugin[4300], out[4300];
    snprintf(plugin, sizeof plugin, "--plugin=protoc-gen-dump=%s", dump);
    snprintf(out, sizeof out, "--dump_out=%s", tmp);
    char *argv[] = {PROTOC,
                    plugin,
                    out,
                    "-I" PROTO_DIR,
                    "-I" WARREN_SCHEMA_DIR,
                    "-I" PROTOBUF_IMPORT_DIR,
                    (char *)inputs[i],
                    NULL};
    assert_int_equal(run(argv, NULL, NULL, errp), 0);
  }
  unsetenv("WARREN_DUMP_TO");
  char *argv[] = {PLUGIN, NULL};
  assert_int_equal(run(argv, req, resp, errp), 0);

  /* CodeGeneratorResponse: field 1 (error) is a length-delimited string; nothing else
   * may be present when the plugin refuses the request. */
  size_t len = 0;
  unsigned char *b = (unsigned char *)read_file(resp, &len);
  assert_true(len > 2);
  assert_int_equal(b[0], 0x0a);
  size_t n = 0, i = 1;
  for (int shift = 0; i < len; i++, shift += 7) {
    n |= (size_t)(b[i] & 0x7f) << shift;
    if (!(b[i] & 0x80))
      break;
  }
  i++;
  assert_int_equal(i + n, len);
  char *error = strndup((const char *)b + i, n);
  int count = 0;
  char *lines = expectations("bad/dup_b.proto", "// expect-merged: ", &count);
  assert_int_equal(count, 2);
  snprintf(cmd, sizeof cmd, "protoc-gen-warren found 2 errors:\n%s", lines);
  assert_string_equal(error, cmd);
  free(lines);
  free(error);
  free(b);
  rm_rf(tmp);
}

/* ---- the plugin outside protoc ------------------------------------------------------ */

static void test_garbage_on_stdin(void **state) {
  char tmp[4096], in[4200], errp[4200];
  make_tmpdir(tmp, sizeof tmp);
  snprintf(in, sizeof in, "%s/in", tmp);
  snprintf(errp, sizeof errp, "%s/err", tmp);
  FILE *f = fopen(in, "wb");
  assert_non_null(f);
  fputs("\xff\xff\xff\xff not protobuf", f);
  fclose(f);
  char *argv[] = {PLUGIN, NULL};
  assert_int_equal(run(argv, in, NULL, errp), 1);
  char *err = read_file(errp, NULL);
  assert_string_equal(err, "protoc-gen-warren: stdin is not a CodeGeneratorRequest; run me "
                           "through protoc\n");
  free(err);
  rm_rf(tmp);
}

static void test_version_and_usage(void **state) {
  char tmp[4096], out[4200], errp[4200];
  make_tmpdir(tmp, sizeof tmp);
  snprintf(out, sizeof out, "%s/out", tmp);
  snprintf(errp, sizeof errp, "%s/err", tmp);
  char *version[] = {PLUGIN, "--version", NULL};
  assert_int_equal(run(version, NULL, out, errp), 0);
  char *text = read_file(out, NULL);
  assert_non_null(strstr(text, "protoc-gen-warren "));
  assert_non_null(strstr(text, "(codegen ABI 1)"));
  free(text);
  char *bad[] = {PLUGIN, "--frobnicate", NULL};
  assert_int_equal(run(bad, NULL, out, errp), 2);
  text = read_file(errp, NULL);
  assert_non_null(strstr(text, "Run it through protoc"));
  free(text);
  rm_rf(tmp);
}

/* A valid schema is accepted (the counterpart of every refusal above). */
static void test_valid_schema_generates(void **state) {
  char tmp[4096], outdir[4200], errp[4200], w_out[4300], h[4300];
  make_tmpdir(tmp, sizeof tmp);
  snprintf(outdir, sizeof outdir, "%s/out", tmp);
  snprintf(errp, sizeof errp, "%s/err", tmp);
  assert_int_equal(mkdir(outdir, 0700), 0);
  snprintf(w_out, sizeof w_out, "--warren_out=%s", outdir);
  char *argv[] = {PROTOC,
                  "--plugin=protoc-gen-warren=" PLUGIN,
                  w_out,
                  "-I" PROTO_DIR,
                  "-I" WARREN_SCHEMA_DIR,
                  "-I" PROTOBUF_IMPORT_DIR,
                  "kinds/v1/kinds.proto",
                  "kinds/v1/shared.proto",
                  NULL};
  assert_int_equal(run(argv, NULL, NULL, errp), 0);
  assert_int_equal(count_files(outdir), 4);
  snprintf(h, sizeof h, "%s/kinds/v1/kinds.warren.h", outdir);
  char *text = read_file(h, NULL);
  assert_non_null(strstr(text, "#define KINDS_V1_EXCHANGE \"kinds.test-events\""));
  free(text);
  rm_rf(tmp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_without_meta),
      cmocka_unit_test(test_meta_of_wrong_type),
      cmocka_unit_test(test_meta_of_wrong_number),
      cmocka_unit_test(test_meta_repeated_in_oneof_or_misnamed),
      cmocka_unit_test(test_option_without_aggregate_type),
      cmocka_unit_test(test_invalid_aggregate_type),
      cmocka_unit_test(test_kind_missing_or_unspecified),
      cmocka_unit_test(test_unknown_kind_value),
      cmocka_unit_test(test_unknown_option_field),
      cmocka_unit_test(test_proto2_file),
      cmocka_unit_test(test_file_without_package),
      cmocka_unit_test(test_nested_event),
      cmocka_unit_test(test_exchange_with_illegal_characters),
      cmocka_unit_test(test_reserved_exchange),
      cmocka_unit_test(test_exchange_in_file_without_events),
      cmocka_unit_test(test_json_name_in_file_without_events),
      cmocka_unit_test(test_routing_key_too_long),
      cmocka_unit_test(test_two_events_one_c_name),
      cmocka_unit_test(test_two_files_one_c_prefix),
      cmocka_unit_test(test_unknown_parameter),
      cmocka_unit_test(test_same_routing_key_one_run),
      cmocka_unit_test(test_same_routing_key_merged_request),
      cmocka_unit_test(test_garbage_on_stdin),
      cmocka_unit_test(test_version_and_usage),
      cmocka_unit_test(test_valid_schema_generates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
