/* harness.c: see harness.h. Test support code: it fails tests loudly instead of
 * returning errors, and favours clarity over speed. */
#include "harness.h"

#include <warren/http_client.h>
#include <warren/util.h>

#include <amqp_tcp_socket.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef WARREN_SOURCE_DIR
#define WARREN_SOURCE_DIR "."
#endif
#ifndef WARREN_BINARY_DIR
#define WARREN_BINARY_DIR "./build"
#endif

static pthread_mutex_t env_mu = PTHREAD_MUTEX_INITIALIZER;
static char env_keys[32][64];
static char env_vals[32][1024];
static int env_n = -1;

static void env_load(void) {
  env_n = 0;
  const char *dir = getenv("WARREN_STACK_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/env", dir ? dir : WARREN_BINARY_DIR "/stack");
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  char line[1200];
  while (env_n < 32 && fgets(line, sizeof line, f)) {
    /* export KEY='value' */
    char *p = line;
    if (strncmp(p, "export ", 7) == 0)
      p += 7;
    char *eq = strchr(p, '=');
    if (!eq)
      continue;
    *eq = '\0';
    char *v = eq + 1;
    size_t n = strcspn(v, "\n");
    v[n] = '\0';
    if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
      v[n - 1] = '\0';
      v++;
    }
    snprintf(env_keys[env_n], sizeof env_keys[0], "%s", p);
    snprintf(env_vals[env_n], sizeof env_vals[0], "%s", v);
    env_n++;
  }
  fclose(f);
}

const char *wt_env(const char *key) {
  const char *v = getenv(key);
  if (v && *v)
    return v;
  pthread_mutex_lock(&env_mu);
  if (env_n < 0)
    env_load();
  const char *r = NULL;
  for (int i = 0; i < env_n; i++)
    if (strcmp(env_keys[i], key) == 0)
      r = env_vals[i];
  pthread_mutex_unlock(&env_mu);
  return r;
}

const char *wt_require(const char *key) {
  const char *v = wt_env(key);
  if (!v) {
    if (getenv("WARREN_TEST_SKIP_MISSING"))
      skip();
    fail_msg("%s is not set and no stack env file was found (run scripts/stack up)", key);
  }
  return v;
}

void wt_unique(char *out, size_t outsz, const char *prefix) {
  static unsigned counter;
  static unsigned seed;
  if (!seed)
    seed = (unsigned)time(NULL) ^ (unsigned)getpid() << 8;
  unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
  snprintf(out, outsz, "%s_%d_%u_%04x", prefix, (int)getpid(), n, rand_r(&seed) & 0xffff);
  for (char *p = out; *p; p++)
    *p = (char)tolower((unsigned char)*p);
}

static char db_urls[16][512];
static unsigned db_next;

/* Replaces the database name (path) of a postgres:// URL. */
static void url_with_db(const char *url, const char *db, char *out, size_t outsz) {
  const char *scheme = strstr(url, "://");
  const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
  size_t n = slash ? (size_t)(slash - url) : strlen(url);
  snprintf(out, outsz, "%.*s/%s", (int)n, url, db);
}

const char *wt_db_create(const char *prefix) {
  const char *admin = wt_require("WARREN_PG_URL");
  char name[64];
  wt_unique(name, sizeof name, prefix);
  PGconn *c = wt_pg_connect(admin);
  char sql[200];
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
  PQclear(wt_pg_exec(c, sql));
  PQfinish(c);
  pthread_mutex_lock(&env_mu);
  char *slot = db_urls[db_next++ % 16];
  pthread_mutex_unlock(&env_mu);
  url_with_db(admin, name, slot, sizeof db_urls[0]);
  return slot;
}

void wt_db_drop(const char *url) {
  const char *slash = strrchr(url, '/');
  if (!slash)
    return;
  PGconn *c = wt_pg_connect(wt_require("WARREN_PG_URL"));
  char sql[300];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", slash + 1);
  PQclear(wt_pg_exec(c, sql));
  PQfinish(c);
}

PGconn *wt_pg_connect(const char *url) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
    PQfinish(c);
    fail_msg("cannot connect to PostgreSQL: %s", msg);
  }
  return c;
}

PGresult *wt_pg_exec(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
    PQclear(r);
    fail_msg("SQL failed: %s\n  %s", sql, msg);
  }
  return r;
}

long long wt_pg_scalar(PGconn *c, const char *sql) {
  PGresult *r = wt_pg_exec(c, sql);
  if (PQntuples(r) != 1) {
    PQclear(r);
    fail_msg("expected one row from: %s", sql);
  }
  long long v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

amqp_connection_state_t wt_amqp_connect(void) {
  const char *urls = wt_require("WARREN_AMQP_URL");
  char url[512];
  snprintf(url, sizeof url, "%.*s", (int)strcspn(urls, ","), urls);
  struct amqp_connection_info ci;
  if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
    fail_msg("bad WARREN_AMQP_URL");
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  struct timeval tv = {5, 0};
  if (amqp_socket_open_noblock(s, ci.host, ci.port, &tv) != AMQP_STATUS_OK)
    fail_msg("cannot connect to RabbitMQ at %s:%d", ci.host, ci.port);
  amqp_rpc_reply_t r =
      amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    fail_msg("RabbitMQ login failed");
  amqp_channel_open(c, 1);
  r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    fail_msg("channel.open failed");
  return c;
}

void wt_amqp_close(amqp_connection_state_t c) {
  if (!c)
    return;
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

/* Runs one queue/exchange operation on a throwaway channel so a 404 cannot break
 * channel 1. */
static amqp_channel_t scratch_open(amqp_connection_state_t c) {
  static amqp_channel_t next = 100;
  amqp_channel_t ch = next++;
  if (next > 60000)
    next = 100;
  amqp_channel_open(c, ch);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
    fail_msg("scratch channel.open failed");
  return ch;
}

long wt_amqp_queue_depth(amqp_connection_state_t c, const char *queue) {
  amqp_channel_t ch = scratch_open(c);
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(c, ch, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL || !ok)
    return -1; /* channel closed by the broker (404) */
  long n = (long)ok->message_count;
  amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
  return n;
}

void wt_amqp_delete_queue(amqp_connection_state_t c, const char *queue) {
  amqp_channel_t ch = scratch_open(c);
  amqp_queue_delete(c, ch, amqp_cstring_bytes(queue), 0, 0);
  if (amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL)
    amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

void wt_amqp_delete_exchange(amqp_connection_state_t c, const char *exchange) {
  amqp_channel_t ch = scratch_open(c);
  amqp_exchange_delete(c, ch, amqp_cstring_bytes(exchange), 0);
  if (amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL)
    amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

int wt_stack(const char *args) {
  const char *src = getenv("WARREN_SOURCE_DIR");
  const char *dir = getenv("WARREN_STACK_DIR");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/scripts/stack %s --dir %s >&2", src ? src : WARREN_SOURCE_DIR, args,
           dir ? dir : WARREN_BINARY_DIR "/stack");
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *wt_bin(const char *name) {
  static __thread char path[1024];
  const char *dir = getenv("WARREN_BIN_DIR");
  snprintf(path, sizeof path, "%s/%s", dir ? dir : WARREN_BINARY_DIR "/bin", name);
  return path;
}

int64_t wt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool wt_wait_until(bool (*cond)(void *user), void *user, int timeout_ms) {
  int64_t end = wt_now_ms() + timeout_ms;
  while (!cond(user)) {
    if (wt_now_ms() >= end)
      return false;
    usleep(20000);
  }
  return true;
}

/* ---- vhosts through the management API ------------------------------------------ */

int wt_mgmt(const char *method, const char *path, const char *body, json_t **out) {
  const char *base = wt_require("WARREN_AMQP_MGMT_URL"); /* http://guest:guest@host:port/ */
  const char *at = strchr(base + 7, '@');
  char hostpart[256];
  snprintf(hostpart, sizeof hostpart, "http://%s", at ? at + 1 : base + 7);
  size_t hl = strlen(hostpart);
  if (hl && hostpart[hl - 1] == '/')
    hostpart[hl - 1] = '\0';
  char url[512];
  snprintf(url, sizeof url, "%s%s", hostpart, path);
  char auth[128], b64[96];
  wr_base64_encode("guest:guest", 11, false, b64, sizeof b64);
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
  if (wr_http_do(&rq, &res, &err) != 0)
    fail_msg("management API %s %s: %s", method, path, err.msg);
  if (out)
    *out = res.len ? json_loadb(res.body, res.len, 0, NULL) : NULL;
  int status = res.status;
  wr_http_response_free(&res);
  return status;
}

static void mgmt(const char *method, const char *path, const char *body) {
  int status = wt_mgmt(method, path, body, NULL);
  if (status >= 300 && !(status == 404 && strcmp(method, "DELETE") == 0))
    fail_msg("management API %s %s: HTTP %d", method, path, status);
}

static char vhost_urls[16][1024];
static unsigned vhost_next;

const char *wt_vhost_create(const char *prefix) {
  char name[64], path[160];
  wt_unique(name, sizeof name, prefix);
  snprintf(path, sizeof path, "/api/vhosts/%s", name);
  mgmt("PUT", path, NULL);
  snprintf(path, sizeof path, "/api/permissions/%s/guest", name);
  mgmt("PUT", path, "{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}");
  pthread_mutex_lock(&env_mu);
  char *slot = vhost_urls[vhost_next++ % 16];
  pthread_mutex_unlock(&env_mu);
  /* every URL of the list gets the vhost as its path */
  const char *urls = wt_require("WARREN_AMQP_URL");
  size_t o = 0;
  for (const char *p = urls; *p;) {
    size_t n = strcspn(p, ",");
    o += (size_t)snprintf(slot + o, sizeof vhost_urls[0] - o, "%s%.*s/%s", o ? "," : "", (int)n, p,
                          name);
    p += n;
    if (*p == ',')
      p++;
  }
  return slot;
}

void wt_vhost_delete(const char *amqp_url) {
  const char *slash = strrchr(amqp_url, '/');
  if (!slash || strchr(slash, ':'))
    return;
  char name[96], path[160];
  snprintf(name, sizeof name, "%.*s", (int)strcspn(slash + 1, ","), slash + 1);
  snprintf(path, sizeof path, "/api/vhosts/%s", name);
  mgmt("DELETE", path, NULL);
}
