/* warren-bench: the benchmark suite of issue 7 (docs/PERFORMANCE.md). Normally run by
 * bench/run, which brings up a private stack and passes its environment.
 *
 *   warren-bench [--quick] [--only LIST] [--out FILE] [--queue-type quorum|classic] [--keep]
 *
 * Scenarios, in this order: ceiling, consume, relay, e2e, catchup (footprint figures are
 * collected along the way). --only runs a comma-separated subset (ratios then need the
 * ceiling in the same run). Exit status: 0 when every correctness check passed, 1 when
 * one failed, 2 on usage or environment errors. */
#include "bench.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const bx_sizes full = {
    .ceiling_n = 200000,
    .consume_n = 200000,
    .consume_customers = 20000,
    .consume_b1_n = 10000,
    .relay_n = 200000,
    .e2e_rates = {500, 2000},
    .e2e_seconds = 30,
    .catchup_n = 1000000,
};

static const bx_sizes quick = {
    .ceiling_n = 5000,
    .consume_n = 5000,
    .consume_customers = 500,
    .consume_b1_n = 500,
    .relay_n = 5000,
    .e2e_rates = {100, 200},
    .e2e_seconds = 3,
    .catchup_n = 20000,
};

typedef struct scenario {
  const char *name;
  int (*fn)(void);
} scenario;

static const scenario scenarios[] = {
    {"ceiling", scenario_ceiling}, {"consume", scenario_consume}, {"relay", scenario_relay},
    {"e2e", scenario_e2e},         {"catchup", scenario_catchup},
};
#define N_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

static bool wanted(const char *only, const char *name) {
  if (!only)
    return true;
  size_t nl = strlen(name);
  for (const char *p = only; *p;) {
    size_t len = strcspn(p, ",");
    if (len == nl && strncmp(p, name, nl) == 0)
      return true;
    p += len;
    if (*p == ',')
      p++;
  }
  return false;
}

static int usage(void) {
  fprintf(stderr, "usage: warren-bench [--quick] [--only ceiling,consume,relay,e2e,catchup] "
                  "[--out FILE] [--queue-type quorum|classic] [--keep]\n"
                  "needs WARREN_AMQP_URL, WARREN_AMQP_MGMT_URL and WARREN_PG_URL (bench/run "
                  "sets them)\n");
  return 2;
}

static bool env_into(const char *key, char *out, size_t outsz) {
  const char *v = getenv(key);
  if (!v || !*v)
    return false;
  /* the first URL of a failover list */
  snprintf(out, outsz, "%.*s", (int)strcspn(v, ","), v);
  return true;
}

/* A line about the machine, for the record. */
static void machine(void) {
  struct utsname u;
  uname(&u);
  char model[128] = "unknown CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "model name", 10) == 0) {
        const char *colon = strchr(line, ':');
        if (colon)
          snprintf(model, sizeof model, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
        break;
      }
    fclose(f);
  }
  long mem_mb = sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024;
  double load[3] = {0};
  if (getloadavg(load, 3) < 0)
    load[0] = -1;
  bx_log("machine: %s, %ld cores, %ld MiB, %s %s, load %.2f", model, sysconf(_SC_NPROCESSORS_ONLN),
         mem_mb, u.sysname, u.release, load[0]);
  bx_result("machine.cores", (double)sysconf(_SC_NPROCESSORS_ONLN), "cores", model);
  bx_result("machine.load_at_start", load[0], "load", "1-minute load average when the run began");
}

int main(int argc, char **argv) {
  const char *only = NULL, *out = NULL;
  bx.queue_type = "quorum";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      bx.quick = true;
    else if (strcmp(argv[i], "--keep") == 0)
      bx.keep = true;
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
      out = argv[++i];
    else if (strcmp(argv[i], "--queue-type") == 0 && i + 1 < argc)
      bx.queue_type = argv[++i];
    else
      return usage();
  }
  if (strcmp(bx.queue_type, "quorum") && strcmp(bx.queue_type, "classic"))
    return usage();
  for (const char *p = only; p && *p;) {
    size_t len = strcspn(p, ",");
    bool known = false;
    for (size_t k = 0; k < N_SCENARIOS; k++)
      known |= strlen(scenarios[k].name) == len && strncmp(p, scenarios[k].name, len) == 0;
    if (!known) {
      fprintf(stderr, "warren-bench: unknown scenario \"%.*s\"\n", (int)len, p);
      return usage();
    }
    p += len;
    if (*p == ',')
      p++;
  }
  bx.n = bx.quick ? quick : full;
  if (!env_into("WARREN_AMQP_URL", bx.amqp_url, sizeof bx.amqp_url) ||
      !env_into("WARREN_AMQP_MGMT_URL", bx.mgmt_url, sizeof bx.mgmt_url) ||
      !env_into("WARREN_PG_URL", bx.pg_url, sizeof bx.pg_url))
    return usage();
  /* a trailing slash would make "<url>/<vhost>" name the wrong vhost */
  size_t al = strlen(bx.amqp_url);
  while (al > 0 && bx.amqp_url[al - 1] == '/')
    bx.amqp_url[--al] = '\0';
  char self[PATH_MAX];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0)
    return usage();
  self[sl] = '\0';
  const char *bin = getenv("WARREN_BIN_DIR");
  if (bin && *bin)
    snprintf(bx.bin_dir, sizeof bx.bin_dir, "%s", bin);
  else
    snprintf(bx.bin_dir, sizeof bx.bin_dir, "%.*s", (int)(strrchr(self, '/') - self), self);
  const char *work = getenv("WARREN_BENCH_WORK_DIR");
  snprintf(bx.work_dir, sizeof bx.work_dir, "%s", work && *work ? work : "/tmp/warren-bench");
  mkdir(bx.work_dir, 0755);
  snprintf(bx.run_id, sizeof bx.run_id, "%ld%d", (long)time(NULL) % 100000, (int)getpid() % 1000);
  bx_log("warren-bench %s run %s, services from %s, logs in %s", bx.quick ? "quick" : "full",
         bx.run_id, bx.bin_dir, bx.work_dir);
  machine();

  int failed_scenarios = 0;
  for (size_t k = 0; k < N_SCENARIOS; k++) {
    if (!wanted(only, scenarios[k].name))
      continue;
    int64_t t0 = wr_mono_ns();
    bx_log("---- %s ----", scenarios[k].name);
    int rc = scenarios[k].fn();
    bx_log("---- %s: %s in %.1f s ----", scenarios[k].name, rc == 0 ? "done" : wr_strerror(rc),
           (double)(wr_mono_ns() - t0) / 1e9);
    if (rc)
      failed_scenarios++;
  }
  long pc = bx_peak("customer-service"), po = bx_peak("order-service");
  if (pc > 0)
    bx_result("footprint.customer_rss_peak", (double)pc / 1024, "MiB",
              pc / 1024.0 < 32 ? "max VmHWM of the run; target < 32: met"
                               : "max VmHWM of the run; target < 32: NOT met");
  if (po > 0)
    bx_result("footprint.order_rss_peak", (double)po / 1024, "MiB",
              po / 1024.0 < 32 ? "max VmHWM of the run; target < 32: met"
                               : "max VmHWM of the run; target < 32: NOT met");
  int failed = bx_report(out);
  if (out)
    bx_log("results written to %s", out);
  return failed || failed_scenarios ? 1 : 0;
}
