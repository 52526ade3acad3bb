// warren-test: timeout=180
/* The deployment files against the code they deploy (no docker engine needed):
 * - docker-compose.yml is valid for docker-compose (`config -q`), and its services use
 *   the binaries, environment variables and ports the binaries themselves document in
 *   --help (and docs/SERVICES.md and the README name), with healthchecks on /readyz and
 *   depends_on conditions; the credentials in the URLs match the broker's and the
 *   database's; the postgres init script creates both databases;
 * - the Dockerfile is a two-stage Debian 12 build whose build stage installs the -dev
 *   packages of scripts/deps and whose runtime stage installs the package of every
 *   shared library the binaries load (DT_NEEDED, resolved with ldconfig and dpkg);
 * - deploy/prometheus/alerts.yml passes `promtool check rules`, `promtool test rules`
 *   (alerts_test.yml: every alert fires on a bad series, stays quiet on a good one),
 *   the example prometheus.yml passes `promtool check config`, and every warren metric
 *   the rules use is one the runtime registers.
 * Needs the built binaries (WARREN_BIN_DIR), docker-compose, python3 with yaml,
 * promtool, readelf, dpkg: all installed by scripts/deps. */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

static const char *src_dir(void) {
  const char *s = getenv("WARREN_SOURCE_DIR");
  if (!s)
    fail_msg("WARREN_SOURCE_DIR is not set (run through ctest)");
  return s;
}

static const char *bin_path(const char *name) {
  static char path[PATH_MAX];
  const char *d = getenv("WARREN_BIN_DIR");
  if (!d)
    fail_msg("WARREN_BIN_DIR is not set (run through ctest)");
  snprintf(path, sizeof path, "%s/%s", d, name);
  return path;
}

/* Runs a shell command; returns its exit status and its output (stdout + stderr),
 * malloc'd, in *out (may be NULL). */
static int sh(char **out, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[8300];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p)
    fail_msg("popen %s", cmd);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += k;
    if (cap - n < 4096) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  buf[n] = '\0';
  int st = pclose(p);
  if (out)
    *out = buf;
  else
    free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    fail_msg("cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = '\0';
  fclose(f);
  return s;
}

/* The compose file as docker-compose resolves it, as JSON. */
static json_t *compose_config(void) {
  char *out = NULL;
  int rc = sh(&out,
              "cd '%s' && docker-compose -f docker-compose.yml config | python3 -c "
              "'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'",
              src_dir());
  if (rc != 0)
    fail_msg("docker-compose config | yaml->json failed:\n%s", out);
  json_error_t je;
  json_t *j = json_loads(out, 0, &je);
  if (!j)
    fail_msg("compose JSON: %s", je.text);
  free(out);
  return j;
}

/* "[env NAME]" entries of a binary's --help, and its default listen address. */
static json_t *help_env(const char *bin, char *default_addr, size_t addrsz) {
  char *out = NULL;
  if (sh(&out, "env -i '%s' --help", bin_path(bin)) != 0)
    fail_msg("%s --help failed:\n%s", bin, out);
  json_t *set = json_object();
  for (const char *p = out; (p = strstr(p, "[env ")) != NULL; p += 5) {
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p + 5, "]"), p + 5);
    json_object_set_new(set, name, json_true());
  }
  const char *a = strstr(out, "[env WARREN_HTTP_ADDR] (default: ");
  if (!a)
    fail_msg("%s --help shows no default for WARREN_HTTP_ADDR", bin);
  a += strlen("[env WARREN_HTTP_ADDR] (default: ");
  snprintf(default_addr, addrsz, "%.*s", (int)strcspn(a, ")"), a);
  free(out);
  return set;
}

static const char *jstr(json_t *j, const char *k) {
  const char *s = json_string_value(json_object_get(j, k));
  return s ? s : "";
}

/* user, password and host of scheme://user:pass@host:port/path */
static void url_parts(const char *url, char *user, char *pass, char *host, char *path) {
  const char *p = strstr(url, "://");
  assert_non_null(p);
  p += 3;
  const char *at = strchr(p, '@');
  assert_non_null(at);
  const char *colon = memchr(p, ':', (size_t)(at - p));
  assert_non_null(colon);
  sprintf(user, "%.*s", (int)(colon - p), p);
  sprintf(pass, "%.*s", (int)(at - colon - 1), colon + 1);
  const char *h = at + 1;
  sprintf(host, "%.*s", (int)strcspn(h, ":/"), h);
  const char *slash = strchr(h, '/');
  sprintf(path, "%s", slash ? slash : "");
}

static void compose_valid(void **state) {
  (void)state;
  char *out = NULL;
  int rc = sh(&out, "cd '%s' && docker-compose -f docker-compose.yml config -q", src_dir());
  if (rc != 0)
    fail_msg("docker-compose config -q: exit %d\n%s", rc, out);
  free(out);
  rc = sh(&out, "cd '%s' && docker-compose -f docker-compose.yml --profile monitoring config -q",
          src_dir());
  if (rc != 0)
    fail_msg("docker-compose --profile monitoring config -q: exit %d\n%s", rc, out);
  free(out);
}

static void compose_matches_services(void **state) {
  (void)state;
  json_t *cfg = compose_config();
  json_t *svcs = json_object_get(cfg, "services");
  json_t *rmq = json_object_get(svcs, "rabbitmq"), *pg = json_object_get(svcs, "postgres");
  assert_non_null(rmq);
  assert_non_null(pg);
  assert_string_equal(jstr(rmq, "image"), "rabbitmq:3.10-management");
  assert_string_equal(jstr(pg, "image"), "postgres:15");
  json_t *t = json_object_get(json_object_get(rmq, "healthcheck"), "test");
  char *ts = json_dumps(t, JSON_COMPACT);
  assert_string_equal(ts, "[\"CMD\",\"rabbitmq-diagnostics\",\"-q\",\"ping\"]");
  free(ts);
  assert_non_null(json_object_get(pg, "healthcheck"));
  json_t *renv = json_object_get(rmq, "environment"), *penv = json_object_get(pg, "environment");

  /* the init script: mounted into the entrypoint dir, creating both databases */
  bool init = false;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(pg, "volumes"), i, v) {
    char srcp[PATH_MAX] = "", target[PATH_MAX] = "";
    if (json_is_string(v)) {
      sscanf(json_string_value(v), "%[^:]:%[^:]", srcp, target);
    } else {
      snprintf(srcp, sizeof srcp, "%s", jstr(v, "source"));
      snprintf(target, sizeof target, "%s", jstr(v, "target"));
    }
    if (strncmp(target, "/docker-entrypoint-initdb.d/", 28) == 0) {
      char *sql = read_file(srcp);
      assert_non_null(strstr(sql, "CREATE DATABASE warren_customer"));
      assert_non_null(strstr(sql, "CREATE DATABASE warren_order"));
      free(sql);
      init = true;
    }
  }
  assert_true(init);

  char *readme = NULL, *services_md = NULL, path[PATH_MAX];
  snprintf(path, sizeof path, "%s/README.md", src_dir());
  readme = read_file(path);
  snprintf(path, sizeof path, "%s/docs/SERVICES.md", src_dir());
  services_md = read_file(path);

  struct {
    const char *svc, *bin, *db, *port;
  } want[] = {{"customer", "customer-service", "/warren_customer", "8081"},
              {"order", "order-service", "/warren_order", "8082"}};
  for (int k = 0; k < 2; k++) {
    json_t *s = json_object_get(svcs, want[k].svc);
    if (!s)
      fail_msg("compose has no service %s", want[k].svc);
    /* the binary */
    json_t *cmd = json_object_get(s, "command");
    assert_string_equal(json_string_value(json_array_get(cmd, 0)), want[k].bin);
    assert_int_equal(access(bin_path(want[k].bin), X_OK), 0);
    assert_string_equal(jstr(json_object_get(s, "build"), "dockerfile"), "Dockerfile");
    char binref[64];
    snprintf(binref, sizeof binref, "build/bin/%s", want[k].bin);
    if (!strstr(readme, binref))
      fail_msg("README.md does not name %s", binref);
    if (!strstr(services_md, binref))
      fail_msg("docs/SERVICES.md does not name %s", binref);

    /* variables: every one the binary knows, documented; the essential ones set */
    char def_addr[64];
    json_t *known = help_env(want[k].bin, def_addr, sizeof def_addr);
    const char *key;
    json_t *val;
    json_object_foreach(known, key, val) {
      char tick[160];
      snprintf(tick, sizeof tick, "`%s`", key);
      if (!strstr(services_md, tick))
        fail_msg("docs/SERVICES.md does not document %s (listed by %s --help)", key, want[k].bin);
    }
    json_t *env = json_object_get(s, "environment");
    json_object_foreach(env, key, val) {
      if (!json_object_get(known, key))
        fail_msg("compose sets %s for %s, which %s --help does not know", key, want[k].svc,
                 want[k].bin);
    }
    const char *must[] = {"WARREN_AMQP_URL", "WARREN_DATABASE_URL", "WARREN_HTTP_ADDR",
                          "WARREN_ADMIN_TOKEN"};
    for (size_t m = 0; m < 4; m++)
      if (!json_object_get(env, must[m]))
        fail_msg("compose service %s does not set %s", want[k].svc, must[m]);

    /* ports: the default of --help, the listen address, the published port and the
     * healthcheck agree */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", want[k].port);
    assert_string_equal(def_addr, addr);
    snprintf(addr, sizeof addr, "0.0.0.0:%s", want[k].port);
    assert_string_equal(jstr(env, "WARREN_HTTP_ADDR"), addr);
    char portref[16];
    snprintf(portref, sizeof portref, "%s", want[k].port);
    if (!strstr(services_md, portref))
      fail_msg("docs/SERVICES.md does not mention port %s", portref);
    bool published = false;
    json_array_foreach(json_object_get(s, "ports"), i, v) {
      long tgt = 0, pub = 0;
      if (json_is_object(v)) {
        json_t *jt = json_object_get(v, "target"), *jp = json_object_get(v, "published");
        tgt = json_is_integer(jt) ? (long)json_integer_value(jt)
                                  : atol(json_string_value(jt) ? json_string_value(jt) : "0");
        pub = json_is_integer(jp) ? (long)json_integer_value(jp)
                                  : atol(json_string_value(jp) ? json_string_value(jp) : "0");
      } else if (json_is_string(v)) {
        sscanf(json_string_value(v), "%ld:%ld", &pub, &tgt);
      }
      published = published || (tgt == atol(want[k].port) && pub == atol(want[k].port));
    }
    assert_true(published);
    char *hc = json_dumps(json_object_get(json_object_get(s, "healthcheck"), "test"), JSON_COMPACT);
    char readyz[64];
    snprintf(readyz, sizeof readyz, "http://127.0.0.1:%s/readyz", want[k].port);
    if (!strstr(hc, readyz))
      fail_msg("healthcheck of %s does not probe %s: %s", want[k].svc, readyz, hc);
    free(hc);

    /* dependencies wait for health */
    json_t *deps = json_object_get(s, "depends_on");
    const char *need[] = {"rabbitmq", "postgres", k == 1 ? "customer" : NULL};
    for (size_t d = 0; d < 3 && need[d]; d++)
      if (strcmp(jstr(json_object_get(deps, need[d]), "condition"), "service_healthy") != 0)
        fail_msg("%s does not depend on %s being healthy", want[k].svc, need[d]);

    /* the URLs point at the compose servers with their credentials */
    char u[128], p[128], h[128], pth[256];
    url_parts(jstr(env, "WARREN_AMQP_URL"), u, p, h, pth);
    assert_string_equal(h, "rabbitmq");
    assert_string_equal(u, jstr(renv, "RABBITMQ_DEFAULT_USER"));
    assert_string_equal(p, jstr(renv, "RABBITMQ_DEFAULT_PASS"));
    url_parts(jstr(env, "WARREN_DATABASE_URL"), u, p, h, pth);
    assert_string_equal(h, "postgres");
    assert_string_equal(u, jstr(penv, "POSTGRES_USER"));
    assert_string_equal(p, jstr(penv, "POSTGRES_PASSWORD"));
    assert_string_equal(pth, want[k].db);
    if (k == 1) {
      char cu[64];
      snprintf(cu, sizeof cu, "http://customer:%s", want[0].port);
      assert_string_equal(jstr(env, "CUSTOMER_SERVICE_URL"), cu);
    }
    json_decref(known);
  }
  free(readme);
  free(services_md);
  json_decref(cfg);
}

/* ---- Dockerfile ------------------------------------------------------------------------ */

/* Package names given to "apt-get install" in one Dockerfile stage. */
static json_t *stage_packages(const char *stage) {
  json_t *set = json_object();
  for (const char *p = stage; (p = strstr(p, "apt-get install")) != NULL;) {
    p += strlen("apt-get install");
    for (;;) {
      while (*p == ' ' || *p == '\t' || *p == '\\' || *p == '\n')
        p++;
      if (!*p || *p == '&' || *p == ';')
        break;
      size_t n = strcspn(p, " \t\n\\;&");
      char name[128];
      snprintf(name, sizeof name, "%.*s", (int)n, p);
      if (name[0] != '-')
        json_object_set_new(set, name, json_true());
      p += n;
    }
  }
  return set;
}

/* Packages of scripts/deps under the given comment headings (a heading is a line
 * "  # <heading>..."). */
static json_t *deps_packages(const char *const *headings) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/scripts/deps", src_dir());
  char *deps = read_file(path);
  json_t *set = json_object();
  const char *start = strstr(deps, "PACKAGES=(");
  assert_non_null(start);
  const char *end = strstr(start, "\n)");
  assert_non_null(end);
  bool take = false;
  for (const char *line = strchr(start, '\n') + 1; line < end;) {
    const char *nl = strchr(line, '\n');
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(nl - line), line);
    const char *t = buf;
    while (*t == ' ')
      t++;
    if (*t == '#') {
      take = false;
      for (size_t i = 0; headings[i]; i++)
        take = take || strncmp(t + 2, headings[i], strlen(headings[i])) == 0;
    } else if (take) {
      for (char *tok = strtok(buf, " \t"); tok; tok = strtok(NULL, " \t"))
        json_object_set_new(set, tok, json_true());
    }
    line = nl + 1;
  }
  free(deps);
  return set;
}

static void dockerfile_packages(void **state) {
  (void)state;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/Dockerfile", src_dir());
  char *df = read_file(path);
  char *second = strstr(df, "\nFROM debian:bookworm\n");
  if (strncmp(df, "FROM debian:bookworm AS build", 29) != 0 &&
      !strstr(df, "\nFROM debian:bookworm AS build\n"))
    fail_msg("the Dockerfile's first stage must be FROM debian:bookworm AS build");
  if (!second)
    fail_msg("the Dockerfile's runtime stage must be FROM debian:bookworm");
  *second = '\0';
  json_t *build = stage_packages(df), *runtime = stage_packages(second + 1);
  assert_non_null(strstr(second + 1, "COPY --from=build /src/build/bin/"));
  assert_non_null(strstr(df, "cmake --build build"));

  /* the build stage has every build, library and code generation package */
  const char *groups[] = {"build", "libraries", "code generation", NULL};
  json_t *need = deps_packages(groups);
  assert_true(json_object_size(need) >= 10);
  const char *key;
  json_t *v;
  json_object_foreach(need, key, v) if (!json_object_get(build, key))
      fail_msg("the Dockerfile's build stage lacks %s (scripts/deps)", key);
  json_decref(need);

  /* the runtime stage has the package of every library the binaries load directly */
  const char *bins[] = {"customer-service", "order-service", "warren"};
  for (size_t b = 0; b < 3; b++) {
    char *out = NULL;
    if (sh(&out, "readelf -d '%s' | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'",
           bin_path(bins[b])) != 0)
      fail_msg("readelf %s:\n%s", bins[b], out);
    for (char *lib = strtok(out, "\n"); lib; lib = strtok(NULL, "\n")) {
      if (strncmp(lib, "libc.so", 7) == 0 || strncmp(lib, "libasan", 7) == 0 ||
          strncmp(lib, "libubsan", 8) == 0 || strncmp(lib, "liblsan", 7) == 0 ||
          strncmp(lib, "libtsan", 7) == 0 || strncmp(lib, "ld-linux", 8) == 0 ||
          strncmp(lib, "libm.so", 7) == 0 || strncmp(lib, "libgcc_s", 8) == 0)
        continue; /* base image (libc6, libgcc-s1) or sanitizer builds */
      char *pkg = NULL;
      if (sh(&pkg,
             "p=$(ldconfig -p | awk -v l='%s' '$1 == l && /x86-64|x86_64|64bit/ {print $NF; "
             "exit}');"
             " [ -n \"$p\" ] && dpkg -S \"$(readlink -f \"$p\")\" 2>/dev/null | head -1 | cut -d: "
             "-f1"
             " || dpkg -S \"$p\" | head -1 | cut -d: -f1",
             lib) != 0 ||
          !pkg[0])
        fail_msg("cannot find the package of %s (needed by %s)", lib, bins[b]);
      pkg[strcspn(pkg, "\n")] = '\0';
      if (!json_object_get(runtime, pkg))
        fail_msg("%s needs %s from package %s, which the Dockerfile's runtime stage does not "
                 "install",
                 bins[b], lib, pkg);
      free(pkg);
    }
    free(out);
  }
  /* healthchecks use curl */
  assert_non_null(json_object_get(runtime, "curl"));
  json_decref(build);
  json_decref(runtime);
  free(df);

  snprintf(path, sizeof path, "%s/.dockerignore", src_dir());
  char *ign = read_file(path);
  assert_non_null(strstr(ign, "\nbuild\n"));
  assert_non_null(strstr(ign, "\nbuild-*\n"));
  free(ign);
}

/* ---- alert rules ----------------------------------------------------------------------- */

static void alert_rules(void **state) {
  (void)state;
  char *out = NULL;
  const char *dir = src_dir();
  int rc = sh(&out, "cd '%s/deploy/prometheus' && promtool check rules alerts.yml", dir);
  if (rc != 0)
    fail_msg("promtool check rules:\n%s", out);
  free(out);
  rc = sh(&out, "cd '%s/deploy/prometheus' && promtool test rules alerts_test.yml", dir);
  if (rc != 0)
    fail_msg("promtool test rules:\n%s", out);
  free(out);
  rc = sh(&out, "cd '%s/deploy/prometheus' && promtool check config prometheus.yml", dir);
  if (rc != 0)
    fail_msg("promtool check config:\n%s", out);
  free(out);

  /* every warren_* metric the rules use is registered somewhere in the runtime */
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/deploy/prometheus/alerts.yml", dir);
  char *rules = read_file(path);
  int checked = 0;
  for (const char *p = rules; (p = strstr(p, "warren_")) != NULL;) {
    if (p > rules && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '-' ||
                      p[-1] == '/' || p[-1] == '.')) {
      p += 7;
      continue;
    }
    char name[128];
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
    snprintf(name, sizeof name, "%.*s", (int)n, p);
    p += n;
    /* histogram series carry a suffix the registry adds */
    const char *sfx[] = {"_bucket", "_sum", "_count"};
    for (size_t s = 0; s < 3; s++) {
      size_t l = strlen(name), sl = strlen(sfx[s]);
      if (l > sl && strcmp(name + l - sl, sfx[s]) == 0)
        name[l - sl] = '\0';
    }
    rc = sh(NULL, "grep -rqF '\"%s\"' '%s/runtime/src'", name, dir);
    if (rc != 0)
      fail_msg("alerts.yml uses %s, which the runtime does not register", name);
    checked++;
  }
  assert_true(checked >= 5);
  free(rules);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(compose_valid),
      cmocka_unit_test(compose_matches_services),
      cmocka_unit_test(dockerfile_packages),
      cmocka_unit_test(alert_rules),
  };
  return cmocka_run_group_tests_name("deploy files", tests, NULL, NULL);
}
