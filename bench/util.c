/* util.c: results, the stack (vhosts, databases), child services, /proc figures and
 * the raw rabbitmq-c publisher and drainer of warren-bench (bench.h). */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "customer/v1/customer.pb-c.h"
#include "customer/v1/customer.warren.h"

bx_cfg bx;

/* ---- results -------------------------------------------------------------------------- */

#define MAX_RESULTS 160
#define MAX_CHECKS  160

typedef struct result {
  char name[64];
  double value;
  char unit[16];
  char note[96];
} result;

typedef struct check {
  char scenario[24];
  bool ok;
  char text[240];
} check;

static result results[MAX_RESULTS];
static size_t n_results;
static check checks[MAX_CHECKS];
static size_t n_checks;

void bx_result(const char *name, double value, const char *unit, const char *note) {
  if (n_results == MAX_RESULTS)
    return;
  result *r = &results[n_results++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->value = value;
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  snprintf(r->note, sizeof r->note, "%s", note ? note : "");
  bx_log("RESULT %s %.4g %s%s%s", name, value, unit, note ? "  " : "", note ? note : "");
}

const char *bx_verdict(bool met) {
  return bx.quick ? "not judged (quick run)" : met ? "met" : "NOT met";
}

double bx_result_get(const char *name) {
  for (size_t i = n_results; i-- > 0;)
    if (strcmp(results[i].name, name) == 0)
      return results[i].value;
  return -1;
}

bool bx_check(const char *scenario, bool ok, const char *fmt, ...) {
  char text[240];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n_checks < MAX_CHECKS) {
    check *c = &checks[n_checks++];
    snprintf(c->scenario, sizeof c->scenario, "%s", scenario);
    c->ok = ok;
    snprintf(c->text, sizeof c->text, "%s", text);
  }
  bx_log("CHECK %s %s: %s", scenario, ok ? "ok" : "FAILED", text);
  return ok;
}

void bx_log(const char *fmt, ...) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "[bench %02d:%02d:%02d] ", tm.tm_hour, tm.tm_min, tm.tm_sec);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

/* Numbers for people: thousands separators for big rates, a few digits otherwise. */
static void human(double v, char *out, size_t outsz) {
  if (isnan(v)) {
    snprintf(out, outsz, "n/a");
  } else if (fabs(v) >= 10000) {
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t len = strlen(raw), o = 0;
    size_t lead = raw[0] == '-' ? 1 : 0;
    for (size_t i = 0; i < len && o + 2 < outsz; i++) {
      if (i > lead && (len - i) % 3 == 0)
        out[o++] = ',';
      out[o++] = raw[i];
    }
    out[o] = '\0';
  } else if (fabs(v) >= 100) {
    snprintf(out, outsz, "%.0f", v);
  } else if (fabs(v) >= 10) {
    snprintf(out, outsz, "%.1f", v);
  } else {
    snprintf(out, outsz, "%.2f", v);
  }
}

int bx_report(const char *path) {
  int failed = 0;
  for (size_t i = 0; i < n_checks; i++)
    if (!checks[i].ok)
      failed++;
  printf("\nwarren-bench (%s run, order-service queue type %s)\n", bx.quick ? "quick" : "full",
         bx.queue_type);
  printf("%-36s %14s  %-10s %s\n", "figure", "value", "unit", "note");
  printf("%-36s %14s  %-10s %s\n", "------------------------------------", "--------------",
         "----------", "----");
  char last_scn[32] = "";
  for (size_t i = 0; i < n_results; i++) {
    const result *r = &results[i];
    char scn[32];
    snprintf(scn, sizeof scn, "%.*s", (int)strcspn(r->name, "."), r->name);
    if (last_scn[0] && strcmp(scn, last_scn) != 0)
      printf("\n");
    snprintf(last_scn, sizeof last_scn, "%s", scn);
    char v[32];
    human(r->value, v, sizeof v);
    printf("%-36s %14s  %-10s %s\n", r->name, v, r->unit, r->note);
  }
  printf("\nchecks: %zu, failed: %d\n", n_checks, failed);
  for (size_t i = 0; i < n_checks; i++)
    if (!checks[i].ok)
      printf("  FAILED %s: %s\n", checks[i].scenario, checks[i].text);
  fflush(stdout);
  if (path) {
    FILE *f = fopen(path, "w");
    if (!f) {
      bx_log("cannot write %s: %s", path, strerror(errno));
      return failed + 1;
    }
    for (size_t i = 0; i < n_results; i++)
      fprintf(f, "RESULT %s %.6g %s\n", results[i].name, results[i].value, results[i].unit);
    for (size_t i = 0; i < n_checks; i++)
      fprintf(f, "CHECK %s %s %s\n", checks[i].scenario, checks[i].ok ? "ok" : "FAILED",
              checks[i].text);
    fclose(f);
  }
  return failed;
}

/* ---- vhosts (management API) ------------------------------------------------------------- */

static int mgmt(const char *method, const char *path, const char *body) {
  /* mgmt_url: http://user:password@host:port/ -> credentials in a header */
  const char *base = bx.mgmt_url;
  const char *auth_start = base + 7;
  const char *at = strchr(auth_start, '@');
  char hostpart[256], cred[128] = "guest:guest";
  if (at) {
    snprintf(cred, sizeof cred, "%.*s", (int)(at - auth_start), auth_start);
    snprintf(hostpart, sizeof hostpart, "http://%s", at + 1);
  } else {
    snprintf(hostpart, sizeof hostpart, "%s", base);
  }
  size_t hl = strlen(hostpart);
  if (hl && hostpart[hl - 1] == '/')
    hostpart[hl - 1] = '\0';
  char url[512], b64[192], auth[224];
  snprintf(url, sizeof url, "%s%s", hostpart, path);
  wr_base64_encode(cred, strlen(cred), false, b64, sizeof b64);
  snprintf(auth, sizeof auth, "Authorization: Basic %s", b64);
  const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
  wr_http_request rq = {.method = method,
                        .url = url,
                        .headers = hdrs,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .timeout_ms = 30000};
  wr_http_response res;
  wr_err err = {0};
  int rc = wr_http_do(&rq, &res, &err);
  if (rc) {
    bx_log("management API %s %s: %s", method, path, err.msg);
    return rc;
  }
  int status = res.status;
  wr_http_response_free(&res);
  if (status >= 300 && !(status == 404 && strcmp(method, "DELETE") == 0)) {
    bx_log("management API %s %s: HTTP %d", method, path, status);
    return WR_EHTTP;
  }
  return 0;
}

int bx_vhost_create(const char *name, char *url, size_t urlsz) {
  char vh[96], path[160];
  snprintf(vh, sizeof vh, "bench-%s-%s", bx.run_id, name);
  snprintf(path, sizeof path, "/api/vhosts/%s", vh);
  int rc = mgmt("PUT", path, NULL);
  snprintf(path, sizeof path, "/api/permissions/%s/guest", vh);
  if (rc == 0)
    rc = mgmt("PUT", path, "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}");
  if (rc == 0)
    snprintf(url, urlsz, "%s/%s", bx.amqp_url, vh);
  return rc;
}

void bx_vhost_delete(const char *url) {
  if (bx.keep || !url || !*url)
    return;
  const char *slash = strrchr(url, '/');
  if (!slash || strchr(slash, ':'))
    return;
  char path[200];
  snprintf(path, sizeof path, "/api/vhosts/%s", slash + 1);
  mgmt("DELETE", path, NULL);
}

/* ---- databases -------------------------------------------------------------------------- */

PGconn *bx_pg(const char *url) {
  PGconn *c = NULL;
  wr_err err = {0};
  if (wr_db_connect(url, "warren-bench", &c, &err) != 0) {
    bx_log("database: %s", err.msg);
    return NULL;
  }
  return c;
}

int bx_exec(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
  if (rc)
    bx_log("SQL failed: %s (%.200s)", PQresultErrorMessage(r), sql);
  PQclear(r);
  return rc;
}

long long bx_scalar(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  long long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    bx_log("SQL failed: %s (%.200s)", PQresultErrorMessage(r), sql);
  PQclear(r);
  return v;
}

double bx_scalar_f(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  double v = NAN;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
    v = strtod(PQgetvalue(r, 0, 0), NULL);
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    bx_log("SQL failed: %s (%.200s)", PQresultErrorMessage(r), sql);
  PQclear(r);
  return v;
}

/* pg_url with its database (the last path element) replaced. */
static void db_url(const char *db, char *url, size_t urlsz) {
  const char *slash = strrchr(bx.pg_url, '/');
  size_t keep = slash ? (size_t)(slash - bx.pg_url) : strlen(bx.pg_url);
  const char *query = slash ? strchr(slash, '?') : NULL;
  snprintf(url, urlsz, "%.*s/%s%s", (int)keep, bx.pg_url, db, query ? query : "");
}

int bx_db_create(const char *name, char *url, size_t urlsz) {
  char db[96], sql[200];
  snprintf(db, sizeof db, "bench_%s_%s", bx.run_id, name);
  for (char *p = db; *p; p++)
    if (*p == '-')
      *p = '_';
  PGconn *c = bx_pg(bx.pg_url);
  if (!c)
    return WR_EDB;
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
  int rc = bx_exec(c, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
  if (rc == 0)
    rc = bx_exec(c, sql);
  PQfinish(c);
  if (rc == 0)
    db_url(db, url, urlsz);
  return rc ? WR_EDB : 0;
}

void bx_db_drop(const char *url) {
  if (bx.keep || !url || !*url)
    return;
  const char *slash = strrchr(url, '/');
  if (!slash)
    return;
  char db[128], sql[200];
  snprintf(db, sizeof db, "%.*s", (int)strcspn(slash + 1, "?"), slash + 1);
  PGconn *c = bx_pg(bx.pg_url);
  if (!c)
    return;
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
  bx_exec(c, sql);
  PQfinish(c);
}

/* ---- services ------------------------------------------------------------------------- */

/* Appends the WARREN_BENCH_<SERVICE>_ENV entries to env (NULL-terminated, room for max
 * entries in all). */
static void env_extra(const char *service, const char **env, size_t max) {
  static char *split[2][16];
  static bool done[2];
  int k = strcmp(service, "customer-service") == 0 ? 1 : 0;
  if (!done[k]) {
    done[k] = true;
    const char *v = getenv(k ? "WARREN_BENCH_CUSTOMER_ENV" : "WARREN_BENCH_ORDER_ENV");
    char *copy = v ? strdup(v) : NULL, *save = NULL;
    size_t n = 0;
    for (char *t = copy ? strtok_r(copy, " ", &save) : NULL; t && n < 15;
         t = strtok_r(NULL, " ", &save))
      split[k][n++] = t; /* copy stays allocated: the entries point into it */
  }
  size_t n = 0;
  while (n < max && env[n])
    n++;
  for (size_t i = 0; split[k][i] && n + 1 < max; i++)
    env[n++] = split[k][i];
  env[n] = NULL;
}

int bx_svc_spawn(bx_svc *s, const char *bin, const char *log, const char *const *base_env) {
  memset(s, 0, sizeof *s);
  /* the extra entries first: the scenario's own settings (given later) win */
  const char *env[40] = {NULL};
  env_extra(bin, env, 17);
  size_t n = 0;
  while (env[n])
    n++;
  for (size_t i = 0; base_env && base_env[i] && n + 1 < 40; i++)
    env[n++] = base_env[i];
  env[n] = NULL;
  char path[600], logp[600];
  snprintf(path, sizeof path, "%s/%s", bx.bin_dir, bin);
  snprintf(logp, sizeof logp, "%s/%s.log", bx.work_dir, log);
  wr_err err = {0};
  unsigned port = dk_free_port();
  int rc = dk_start(&s->p, log, path, port, env, logp, &err);
  if (rc) {
    bx_log("%s: %s", log, err.msg);
    return rc;
  }
  s->up = true;
  return 0;
}

int bx_svc_wait_ready(bx_svc *s, unsigned timeout_s) {
  wr_err err = {0};
  int rc = dk_wait_ready(&s->p, timeout_s * 1000, &err);
  if (rc) {
    bx_log("%s: %s", s->p.name, err.msg);
    dk_tail(s->p.log_path, 20);
    if (s->p.pid > 0)
      dk_stop(&s->p, SIGKILL, 5000);
    s->up = false;
  }
  return rc;
}

int bx_svc_start(bx_svc *s, const char *bin, const char *log, const char *const *env,
                 unsigned timeout_s) {
  int rc = bx_svc_spawn(s, bin, log, env);
  return rc ? rc : bx_svc_wait_ready(s, timeout_s);
}

void bx_svc_stop(bx_svc *s) {
  if (!s || !s->up)
    return;
  s->hwm_kib = bx_hwm_kib(s->p.pid);
  const char *svc = strstr(s->p.name, "customer") ? "customer-service" : "order-service";
  bx_note_peak(svc, s->hwm_kib);
  int st = dk_stop(&s->p, SIGTERM, 30000);
  if (st != 0)
    bx_log("%s exited with status %d (log %s)", s->p.name, st, s->p.log_path);
  s->up = false;
}

static long peak_customer, peak_order;

void bx_note_peak(const char *service, long hwm_kib) {
  long *p = strcmp(service, "customer-service") == 0 ? &peak_customer : &peak_order;
  if (hwm_kib > *p)
    *p = hwm_kib;
}

long bx_peak(const char *service) {
  return strcmp(service, "customer-service") == 0 ? peak_customer : peak_order;
}

static long status_kib(pid_t pid, const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

long bx_rss_kib(pid_t pid) {
  return status_kib(pid, "VmRSS");
}
long bx_hwm_kib(pid_t pid) {
  return status_kib(pid, "VmHWM");
}

/* utime + stime (+ cutime + cstime with children: the CPU of reaped children), in
 * clock ticks, and the parent pid, from /proc/<pid>/stat. -1 if unreadable. */
static long long proc_ticks(pid_t pid, bool children, pid_t *ppid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* the command may hold spaces and parentheses: fields start after the last ')' */
  char *p = strrchr(buf, ')');
  if (!p || !p[1])
    return -1;
  p += 2; /* field 3 (state) */
  long long sum = 0;
  for (int field = 3; field <= 17 && *p; field++) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (field == 4 && ppid)
      *ppid = (pid_t)v;
    if (field == 14 || field == 15 || (children && (field == 16 || field == 17)))
      sum += v;
    p = strchr(p, ' ');
    if (!p)
      break;
    p++;
  }
  return sum;
}

double bx_cpu_s(pid_t pid) {
  long long t = proc_ticks(pid, false, NULL);
  return t < 0 ? NAN : (double)t / (double)sysconf(_SC_CLK_TCK);
}

/* The first number in a file of the stack directory (a pid file), or 0. */
static pid_t stack_pid(const char *rel) {
  const char *dir = getenv("WARREN_STACK_DIR");
  if (!dir)
    return 0;
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  long v = 0;
  if (fscanf(f, "%ld", &v) != 1)
    v = 0;
  fclose(f);
  return (pid_t)v;
}

double bx_broker_cpu_s(void) {
  pid_t pid = stack_pid("rabbit/n0/pid");
  return pid > 0 ? bx_cpu_s(pid) : NAN;
}

double bx_pg_cpu_s(void) {
  pid_t pm = stack_pid("pg/data/postmaster.pid");
  if (pm <= 0)
    return NAN;
  long long total = proc_ticks(pm, true, NULL); /* with the backends that have exited */
  if (total < 0)
    return NAN;
  DIR *d = opendir("/proc");
  if (!d)
    return NAN;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0 || pid == pm)
      continue;
    pid_t parent = 0;
    long long t = proc_ticks((pid_t)pid, false, &parent);
    if (t > 0 && parent == pm)
      total += t; /* a live backend or auxiliary process */
  }
  closedir(d);
  return (double)total / (double)sysconf(_SC_CLK_TCK);
}

int bx_metrics(const char *base_url, const char *const *series, double *values, size_t n) {
  char url[256];
  snprintf(url, sizeof url, "%s/metrics", base_url);
  wr_http_request rq = {.method = "GET", .url = url, .timeout_ms = 10000};
  wr_http_response res;
  wr_err err = {0};
  int rc = wr_http_do(&rq, &res, &err);
  if (rc)
    return rc;
  if (res.status != 200) {
    wr_http_response_free(&res);
    return WR_EHTTP;
  }
  for (size_t k = 0; k < n; k++)
    values[k] = 0;
  for (char *line = res.body; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    if (*line != '#')
      for (size_t k = 0; k < n; k++)
        if (strncmp(line, series[k], strlen(series[k])) == 0) {
          const char *sp = strrchr(line, ' ');
          if (sp)
            values[k] += strtod(sp + 1, NULL);
        }
    line = nl ? nl + 1 : NULL;
  }
  wr_http_response_free(&res);
  return 0;
}

/* ---- raw rabbitmq-c ---------------------------------------------------------------------- */

static bool reply_ok(amqp_connection_state_t c, const char *what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return true;
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    amqp_channel_close_t *m = r.reply.decoded;
    bx_log("%s: channel closed %u %.*s", what, m->reply_code, (int)m->reply_text.len,
           (char *)m->reply_text.bytes);
  } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    bx_log("%s: %s", what, amqp_error_string2(r.library_error));
  } else {
    bx_log("%s: failed (%d)", what, (int)r.reply_type);
  }
  return false;
}

amqp_connection_state_t bx_amqp_open(const char *url) {
  char *copy = strdup(url);
  struct amqp_connection_info ci;
  if (!copy || amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
    bx_log("bad AMQP URL");
    free(copy);
    return NULL;
  }
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (!s || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) {
    bx_log("cannot connect to %s:%d", ci.host, ci.port);
    amqp_destroy_connection(c);
    free(copy);
    return NULL;
  }
  amqp_rpc_reply_t r =
      amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  free(copy);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    bx_log("AMQP login failed");
    amqp_destroy_connection(c);
    return NULL;
  }
  amqp_channel_open(c, 1);
  if (!reply_ok(c, "channel.open")) {
    amqp_destroy_connection(c);
    return NULL;
  }
  return c;
}

void bx_amqp_close(amqp_connection_state_t c) {
  if (!c)
    return;
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

int bx_amqp_queue(amqp_connection_state_t c, const char *queue, const char *type,
                  const char *exchange, const char *key) {
  amqp_table_entry_t e[1];
  amqp_table_t args = amqp_empty_table;
  if (strcmp(type, "quorum") == 0) {
    e[0].key = amqp_cstring_bytes("x-queue-type");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = amqp_cstring_bytes("quorum");
    args.num_entries = 1;
    args.entries = e;
  }
  amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
  if (!reply_ok(c, "queue.declare"))
    return WR_EAMQP;
  if (exchange) {
    amqp_queue_bind(c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    if (!reply_ok(c, "queue.bind"))
      return WR_EAMQP;
  }
  return 0;
}

long bx_amqp_depth(amqp_connection_state_t c, const char *queue) {
  amqp_channel_open(c, 7);
  if (!reply_ok(c, "channel.open"))
    return -1;
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(c, 7, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL || !ok)
    return -1; /* 404 closed the side channel */
  long n = (long)ok->message_count;
  amqp_channel_close(c, 7, AMQP_REPLY_SUCCESS);
  return n;
}

int bx_amqp_delete(amqp_connection_state_t c, const char *queue) {
  amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
  return reply_ok(c, "queue.delete") ? 0 : WR_EAMQP;
}

/* Reads one frame (waiting up to timeout_s) and applies confirms to done[] (1-based
 * sequence numbers). Returns 0, or <0 on a nack/return/close/timeout. */
static int read_confirm(amqp_connection_state_t c, uint8_t *done, size_t n, size_t *low,
                        size_t *n_done, int timeout_s) {
  amqp_frame_t f;
  struct timeval tv = {timeout_s, 0};
  int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
  if (st == AMQP_STATUS_TIMEOUT) {
    bx_log("publish: no confirm within %d s", timeout_s);
    return WR_ETIMEDOUT;
  }
  if (st != AMQP_STATUS_OK) {
    bx_log("publish: %s", amqp_error_string2(st));
    return WR_ECLOSED;
  }
  if (f.frame_type != AMQP_FRAME_METHOD)
    return 0;
  switch (f.payload.method.id) {
  case AMQP_BASIC_ACK_METHOD: {
    amqp_basic_ack_t *a = f.payload.method.decoded;
    size_t tag = (size_t)a->delivery_tag;
    if (tag == 0 || tag > n)
      return 0;
    if (a->multiple) {
      for (size_t s = *low; s <= tag; s++)
        if (!done[s]) {
          done[s] = 1;
          (*n_done)++;
        }
    } else if (!done[tag]) {
      done[tag] = 1;
      (*n_done)++;
    }
    while (*low <= n && done[*low])
      (*low)++;
    return 0;
  }
  case AMQP_BASIC_NACK_METHOD:
    bx_log("publish: the broker nacked a message");
    return WR_ENACK;
  case AMQP_BASIC_RETURN_METHOD:
    bx_log("publish: a message was returned (unroutable)");
    return WR_ERETURNED;
  case AMQP_CHANNEL_CLOSE_METHOD:
  case AMQP_CONNECTION_CLOSE_METHOD:
    bx_log("publish: the broker closed the channel or connection");
    return WR_ECLOSED;
  default:
    return 0;
  }
}

int bx_publish(amqp_connection_state_t c, size_t n, unsigned window, bx_msg_fn fn, void *user,
               double *rate) {
  *rate = 0;
  amqp_confirm_select(c, 1);
  if (!reply_ok(c, "confirm.select"))
    return WR_EAMQP;
  uint8_t *done = calloc(n + 2, 1);
  if (!done)
    return WR_ENOMEM;
  size_t low = 1, n_done = 0;
  int rc = 0;
  int64_t t0 = wr_mono_ns();
  for (size_t i = 0; i < n && rc == 0; i++) {
    while (rc == 0 && (i - n_done) >= window)
      rc = read_confirm(c, done, n, &low, &n_done, 60);
    if (rc)
      break;
    bx_msg m;
    fn(i, &m, user);
    int st =
        amqp_basic_publish(c, 1, amqp_cstring_bytes(m.exchange), amqp_cstring_bytes(m.routing_key),
                           0, 0, &m.props, (amqp_bytes_t){m.len, (void *)m.body});
    if (st != AMQP_STATUS_OK) {
      bx_log("publish: %s", amqp_error_string2(st));
      rc = WR_ECLOSED;
    }
    if ((i & 255) == 255)
      amqp_maybe_release_buffers(c);
  }
  while (rc == 0 && n_done < n) {
    rc = read_confirm(c, done, n, &low, &n_done, 60);
    amqp_maybe_release_buffers(c);
  }
  double s = (double)(wr_mono_ns() - t0) / 1e9;
  free(done);
  if (rc == 0)
    *rate = (double)n / s;
  return rc;
}

int bx_drain(amqp_connection_state_t c, const char *queue, size_t n, uint16_t prefetch,
             unsigned ack_every, double *rate) {
  *rate = 0;
  amqp_basic_qos(c, 1, 0, prefetch, 0);
  if (!reply_ok(c, "basic.qos"))
    return WR_EAMQP;
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  if (!reply_ok(c, "basic.consume"))
    return WR_EAMQP;
  int64_t t0 = wr_mono_ns();
  for (size_t i = 0; i < n; i++) {
    amqp_envelope_t env;
    struct timeval tv = {30, 0};
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      bx_log("drain: no delivery after %zu of %zu messages", i, n);
      return WR_ETIMEDOUT;
    }
    if (i % ack_every == ack_every - 1 || i + 1 == n)
      amqp_basic_ack(c, 1, env.delivery_tag, 1);
    amqp_destroy_envelope(&env);
  }
  double s = (double)(wr_mono_ns() - t0) / 1e9;
  *rate = (double)n / s;
  return 0;
}

/* ---- customer events ---------------------------------------------------------------------- */

size_t bx_event_pack(const bx_event *ev, uint8_t **buf, size_t *cap) {
  Google__Protobuf__Timestamp occ = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  occ.seconds = ev->occurred_us / 1000000;
  occ.nanos = (int32_t)(ev->occurred_us % 1000000) * 1000;
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  created.seconds = 1700000000;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.event_id = (char *)ev->event_id;
  meta.event_type = CUSTOMER_V1_CUSTOMER_UPDATED_TYPE;
  meta.aggregate_type = "customer";
  meta.aggregate_id = (char *)ev->customer_id;
  meta.version = ev->version;
  meta.occurred_at = &occ;
  meta.correlation_id = (char *)ev->event_id;
  meta.source_service = "customer";
  meta.source_instance = "warren-bench";
  Customer__V1__Customer d = CUSTOMER__V1__CUSTOMER__INIT;
  d.id = (char *)ev->customer_id;
  d.name = (char *)ev->name;
  d.email = (char *)ev->email;
  d.status = (Customer__V1__CustomerStatus)ev->status;
  d.created_at = &created;
  d.updated_at = &occ;
  d.version = ev->version;
  Customer__V1__FieldChange ch = CUSTOMER__V1__FIELD_CHANGE__INIT;
  ch.field = "name";
  ch.old_value = "";
  ch.new_value = (char *)ev->name;
  Customer__V1__FieldChange *chs[1] = {&ch};
  Customer__V1__CustomerUpdated u = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  u.meta = &meta;
  u.data = &d;
  u.n_changes = 1;
  u.changes = chs;
  size_t len = protobuf_c_message_get_packed_size(&u.base);
  if (len > *cap) {
    uint8_t *nb = realloc(*buf, len);
    if (!nb)
      return 0;
    *buf = nb;
    *cap = len;
  }
  return protobuf_c_message_pack(&u.base, *buf);
}

void bx_event_msg(const bx_event *ev, const uint8_t *body, size_t len, amqp_table_entry_t *h,
                  bx_msg *m) {
  memset(m, 0, sizeof *m);
  m->exchange = CUSTOMER_V1_EXCHANGE;
  m->routing_key = CUSTOMER_V1_CUSTOMER_UPDATED_TYPE;
  m->body = body;
  m->len = len;
  h[0].key = amqp_cstring_bytes("x-aggregate-type");
  h[0].value.kind = AMQP_FIELD_KIND_UTF8;
  h[0].value.value.bytes = amqp_cstring_bytes("customer");
  h[1].key = amqp_cstring_bytes("x-aggregate-id");
  h[1].value.kind = AMQP_FIELD_KIND_UTF8;
  h[1].value.value.bytes = amqp_cstring_bytes(ev->customer_id);
  h[2].key = amqp_cstring_bytes("x-version");
  h[2].value.kind = AMQP_FIELD_KIND_I64;
  h[2].value.value.i64 = (int64_t)ev->version;
  amqp_basic_properties_t *p = &m->props;
  p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
              AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
              AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
  p->content_type = amqp_cstring_bytes("application/x-protobuf");
  p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p->message_id = amqp_cstring_bytes(ev->event_id);
  p->type = amqp_cstring_bytes(CUSTOMER_V1_CUSTOMER_UPDATED_TYPE);
  p->timestamp = (uint64_t)(ev->occurred_us / 1000000);
  p->correlation_id = amqp_cstring_bytes(ev->event_id);
  p->app_id = amqp_cstring_bytes("customer");
  p->headers.num_entries = 3;
  p->headers.entries = h;
}
