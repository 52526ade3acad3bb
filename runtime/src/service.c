/* service.c: options, signals and standard replies shared by warren services. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <warren/conn.h>
#include <warren/log.h>
#include <warren/service.h>
#include <warren/util.h>

/* Values read from --x-file live for the whole process (options hold borrowed
 * pointers), so they are kept here rather than freed. */
static char *file_values[32];
static size_t n_file_values;

static int read_first_line(const char *path, const char **out, wr_err *err) {
  FILE *f = fopen(path, "r");
  if (!f)
    return wr_err_set(err, WR_EINVAL, "cannot read %s: %s", path, strerror(errno));
  char buf[4096];
  if (!fgets(buf, sizeof buf, f))
    buf[0] = '\0';
  fclose(f);
  buf[strcspn(buf, "\r\n")] = '\0';
  if (n_file_values >= sizeof file_values / sizeof file_values[0])
    return wr_err_set(err, WR_EINVAL, "too many --*-file options");
  char *v = strdup(buf);
  if (!v)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  file_values[n_file_values++] = v;
  *out = v;
  return 0;
}

static void print_help(const char *prog, const char *summary, const wr_option *opts, size_t n) {
  printf("%s\n\nusage: %s [options]\n\noptions (flag, environment variable, default):\n", summary,
         prog);
  for (size_t i = 0; i < n; i++) {
    const wr_option *o = &opts[i];
    if (o->secret)
      printf("  --%s-file PATH\n", o->flag);
    else
      printf("  --%s VALUE\n", o->flag);
    printf("      %s", o->help);
    if (o->env)
      printf(" [env %s]", o->env);
    if (o->secret)
      printf(" (secret: environment or file only)");
    else if (o->def)
      printf(" (default: %s)", o->def);
    if (o->required)
      printf(" (required)");
    printf("\n");
  }
  printf("  --help      this text\n  --version   print the version\n");
}

int wr_options_parse(const char *prog, const char *summary, wr_option *opts, size_t n, int argc,
                     char **argv, wr_err *err) {
  bool *from_flag = calloc(n ? n : 1, sizeof *from_flag);
  if (!from_flag)
    return wr_err_set(err, WR_ENOMEM, "out of memory");
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      print_help(prog, summary, opts, n);
      free(from_flag);
      return 1;
    }
    if (strcmp(a, "--version") == 0) {
      printf("%s (warren %s)\n", prog, wr_version());
      free(from_flag);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0) {
      rc = wr_err_set(err, WR_EINVAL, "unexpected argument '%s' (see --help)", a);
      break;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    bool is_file = nlen > 5 && strncmp(name + nlen - 5, "-file", 5) == 0;
    size_t base = is_file ? nlen - 5 : nlen;
    size_t k;
    for (k = 0; k < n; k++)
      if (strlen(opts[k].flag) == base && strncmp(opts[k].flag, name, base) == 0)
        break;
    if (k == n || (is_file && !opts[k].secret)) {
      rc = wr_err_set(err, WR_EINVAL, "unknown option --%.*s (see --help)", (int)nlen, name);
      break;
    }
    if (opts[k].secret && !is_file) {
      rc = wr_err_set(err, WR_EINVAL,
                      "--%s is a secret: give it in %s or with --%s-file (command lines are "
                      "visible to every user)",
                      opts[k].flag, opts[k].env ? opts[k].env : "the environment", opts[k].flag);
      break;
    }
    const char *val = eq ? eq + 1 : NULL;
    if (!val) {
      if (i + 1 >= argc) {
        rc = wr_err_set(err, WR_EINVAL, "--%.*s needs a value", (int)nlen, name);
        break;
      }
      val = argv[++i];
    }
    if (is_file)
      rc = read_first_line(val, opts[k].dest, err);
    else
      *opts[k].dest = val;
    from_flag[k] = true;
  }
  for (size_t k = 0; k < n && rc == 0; k++) {
    if (from_flag[k])
      continue;
    const char *v = opts[k].env ? getenv(opts[k].env) : NULL;
    *opts[k].dest = (v && *v) ? v : opts[k].def;
    if (opts[k].required && (!*opts[k].dest || !**opts[k].dest))
      rc = wr_err_set(err, WR_EINVAL, "missing required option --%s%s%s", opts[k].flag,
                      opts[k].env ? " / " : "", opts[k].env ? opts[k].env : "");
  }
  free(from_flag);
  return rc;
}

int wr_option_uint(const char *name, const char *value, unsigned min, unsigned max, unsigned *out,
                   wr_err *err) {
  if (!value || !*value)
    return wr_err_set(err, WR_EINVAL, "--%s needs a number", name);
  char *end;
  errno = 0;
  unsigned long v = strtoul(value, &end, 10);
  if (errno || *end || value[0] < '0' || value[0] > '9' || v < min || v > max)
    return wr_err_set(err, WR_EINVAL, "--%s must be a number in %u..%u (got '%s')", name, min, max,
                      value);
  *out = (unsigned)v;
  return 0;
}

void wr_signals_block(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int wr_signals_wait(unsigned timeout_ms) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  int64_t end = wr_mono_ns() + (int64_t)timeout_ms * 1000000;
  for (;;) {
    int sig;
    if (timeout_ms == 0) {
      if (sigwait(&set, &sig) != 0)
        continue;
    } else {
      int64_t left = end - wr_mono_ns();
      if (left <= 0)
        return 0;
      struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
      sig = sigtimedwait(&set, NULL, &ts);
      if (sig < 0) {
        if (errno == EAGAIN)
          return 0;
        continue; /* EINTR */
      }
    }
    if (sig == SIGTERM || sig == SIGINT)
      return sig;
  }
}

int wr_reply_healthz(wr_http_req *req) {
  return wr_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

int wr_reply_readyz(wr_http_req *req, const wr_ready_check *checks, size_t n) {
  json_t *c = json_object();
  bool ready = true;
  for (size_t i = 0; i < n; i++) {
    json_object_set_new(c, checks[i].name, json_boolean(checks[i].ok));
    ready = ready && checks[i].ok;
  }
  return wr_http_reply_json(
      req, ready ? 200 : 503,
      json_pack("{s:s,s:o}", "status", ready ? "ready" : "not_ready", "checks", c));
}

int wr_reply_metrics(wr_http_req *req, wr_metrics *m) {
  char *text = wr_metrics_render(m);
  if (!text)
    return wr_http_reply_error(req, 500, "internal", "cannot render metrics");
  int rc =
      wr_http_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
  free(text);
  return rc;
}

long wr_utf8_chars(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  long n = 0;
  while (p < end) {
    unsigned c = *p;
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        return -1;
      p++;
      n++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      k = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if ((size_t)(end - p) <= k)
      return -1;
    for (size_t i = 1; i <= k; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return -1;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return -1;
    p += k + 1;
    n++;
  }
  return n;
}

int wr_body_only(wr_http_req *req, json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    bool ok = false;
    for (size_t i = 0; allowed[i] && !ok; i++)
      ok = strcmp(key, allowed[i]) == 0;
    if (!ok) {
      /* the key is outside text: print a bounded, sanitized prefix of it */
      char shown[64];
      size_t j = 0;
      for (const char *p = key; *p && j + 1 < sizeof shown; p++)
        shown[j++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '?';
      shown[j] = '\0';
      wr_http_reply_error(req, 422, "unknown_field", "unknown field \"%s\"", shown);
      return -1;
    }
  }
  return 1;
}

int wr_body_string(wr_http_req *req, json_t *obj, const char *key, bool required, size_t min_chars,
                   size_t max_chars, const char **out) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (!required)
      return 0;
    wr_http_reply_error(req, 422, "missing_field", "field \"%s\" is required", key);
    return -1;
  }
  if (!json_is_string(v)) {
    wr_http_reply_error(req, 422, "invalid_type", "field \"%s\" must be a string", key);
    return -1;
  }
  long n = wr_utf8_chars(json_string_value(v), json_string_length(v));
  if (n < 0) {
    wr_http_reply_error(req, 422, "invalid_value",
                        "field \"%s\" contains control characters or invalid UTF-8", key);
    return -1;
  }
  if ((size_t)n < min_chars || (size_t)n > max_chars) {
    wr_http_reply_error(req, 422, "invalid_value", "field \"%s\" must have %zu to %zu characters",
                        key, min_chars, max_chars);
    return -1;
  }
  *out = json_string_value(v);
  return 1;
}

int wr_body_int(wr_http_req *req, json_t *obj, const char *key, bool required, int64_t min,
                int64_t max, int64_t *out) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (!required)
      return 0;
    wr_http_reply_error(req, 422, "missing_field", "field \"%s\" is required", key);
    return -1;
  }
  if (!json_is_integer(v)) {
    wr_http_reply_error(req, 422, "invalid_type", "field \"%s\" must be an integer", key);
    return -1;
  }
  json_int_t i = json_integer_value(v);
  if (i < min || i > max) {
    wr_http_reply_error(req, 422, "invalid_value", "field \"%s\" must be in %lld..%lld", key,
                        (long long)min, (long long)max);
    return -1;
  }
  *out = i;
  return 1;
}

int wr_reply_db_error(wr_http_req *req, int rc, const wr_err *err) {
  const char *st = err ? err->sqlstate : "";
  bool unreachable = rc == WR_ETIMEDOUT || !st[0] || strncmp(st, "08", 2) == 0 ||
                     strncmp(st, "57", 2) == 0 || strncmp(st, "53", 2) == 0;
  wr_log_error(wr_http_req_correlation_id(req), "%s %s: %s%s%s", wr_http_req_method(req),
               wr_http_req_path(req), err && err->msg[0] ? err->msg : wr_strerror(rc),
               st[0] ? " sqlstate=" : "", st);
  if (unreachable)
    return wr_http_reply_error(req, 503, "unavailable", "database unavailable, retry later");
  return wr_http_reply_error(req, 500, "internal", "internal error");
}

PGconn *wr_http_db_acquire(wr_http_req *req, wr_db_pool *pool, unsigned timeout_ms) {
  PGconn *c = NULL;
  wr_err err = {0};
  int rc = wr_db_pool_acquire(pool, timeout_ms, &c, &err);
  if (rc) {
    wr_reply_db_error(req, rc, &err);
    return NULL;
  }
  return c;
}

void wr_service_std_options(wr_service_std *s, const char *db_what, const char *default_addr,
                            wr_option *out) {
  static char db_help[160];
  snprintf(db_help, sizeof db_help, "PostgreSQL URL of %s", db_what);
  const wr_option std[WR_SERVICE_STD_N] = {
      {"amqp-url", "WARREN_AMQP_URL", NULL,
       "broker URL(s) with credentials, comma-separated for failover", &s->amqp_url, true, true},
      {"amqp-cacert", "WARREN_AMQP_CACERT", NULL, "CA file for amqps:// URLs", &s->amqp_cacert,
       false, false},
      {"database-url", "WARREN_DATABASE_URL", NULL, db_help, &s->database_url, true, true},
      {"http-addr", "WARREN_HTTP_ADDR", default_addr, "HTTP listen address", &s->http_addr, false,
       false},
      {"admin-token", "WARREN_ADMIN_TOKEN", NULL,
       "bearer token for /admin routes (unset: they answer 403)", &s->admin_token, true, false},
      {"log-level", "WARREN_LOG_LEVEL", "info", "debug, info, warn or error", &s->log_level, false,
       false},
      {"http-threads", "WARREN_HTTP_THREADS", "4", "HTTP worker threads", &s->http_threads_s, false,
       false},
      {"db-pool", "WARREN_DB_POOL", "8", "database connections for HTTP handlers", &s->db_pool_s,
       false, false},
      {"max-body", "WARREN_HTTP_MAX_BODY", "65536", "largest accepted request body (bytes)",
       &s->max_body_s, false, false},
  };
  memcpy(out, std, sizeof std);
}

int wr_service_std_apply(wr_service_std *s, const char *service, wr_err *err) {
  wr_log_level level;
  if (wr_log_level_parse(s->log_level, &level) != 0)
    return wr_err_set(err, WR_EINVAL, "--log-level must be debug, info, warn or error");
  int rc = wr_option_uint("http-threads", s->http_threads_s, 1, 256, &s->http_threads, err);
  if (rc == 0)
    rc = wr_option_uint("db-pool", s->db_pool_s, 1, 256, &s->db_pool, err);
  if (rc == 0)
    rc = wr_option_uint("max-body", s->max_body_s, 1024, 64u << 20, &s->max_body, err);
  if (rc)
    return rc;
  /* Malformed URLs are configuration errors: found here, before anything connects
   * (a bad broker URL would otherwise surface only after the database migrations).
   * wr_conn_new parses every URL of the list without connecting and never echoes a
   * URL; libpq's parser message could quote the URL, so it is not shown. */
  if (s->amqp_url) {
    wr_conn_opts co = WR_CONN_OPTS_INIT;
    co.urls = s->amqp_url;
    co.cacert = s->amqp_cacert;
    wr_conn *probe = NULL;
    wr_err why = {0};
    rc = wr_conn_new(&co, &probe, &why);
    wr_conn_free(probe);
    if (rc == WR_ENOMEM)
      return wr_err_set(err, rc, "out of memory");
    if (rc)
      return wr_err_set(err, WR_EINVAL,
                        "WARREN_AMQP_URL / --amqp-url (CA file: WARREN_AMQP_CACERT / "
                        "--amqp-cacert): %s",
                        why.msg);
  }
  if (s->database_url) {
    char *pqerr = NULL;
    PQconninfoOption *o = PQconninfoParse(s->database_url, &pqerr);
    PQfreemem(pqerr);
    if (!o)
      return wr_err_set(err, WR_EINVAL,
                        "WARREN_DATABASE_URL / --database-url is not a valid PostgreSQL URL or "
                        "connection string (value not shown: it may hold a password)");
    PQconninfoFree(o);
  }
  wr_log_set_service(service);
  wr_log_configure(NULL, NULL, level);
  char host[64] = "localhost";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  snprintf(s->instance, sizeof s->instance, "%s:%d", host, (int)getpid());
  return 0;
}

void wr_service_http_opts(const wr_service_std *s, wr_http_opts *o) {
  o->addr = s->http_addr;
  o->threads = s->http_threads;
  o->max_body = s->max_body;
  o->admin_token = s->admin_token;
}

bool wr_db_pool_ping(wr_db_pool *p, unsigned timeout_ms) {
  PGconn *c = NULL;
  if (wr_db_pool_acquire(p, timeout_ms, &c, NULL) != 0)
    return false;
  PGresult *r = PQexec(c, "SELECT 1");
  bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  wr_db_pool_release(p, c);
  return ok;
}

int wr_service_db_open(const wr_service_std *s, const char *application_name,
                       int (*migrate)(PGconn *c, wr_err *err), wr_db_pool **pool, wr_err *err) {
  *pool = NULL;
  PGconn *mc = NULL;
  int rc = wr_db_connect(s->database_url, application_name, &mc, err);
  if (rc == 0)
    rc = wr_db_migrate_runtime(mc, err);
  if (rc == 0 && migrate)
    rc = migrate(mc, err);
  if (mc)
    PQfinish(mc);
  if (rc)
    return rc;
  wr_db_pool_opts po = WR_DB_POOL_OPTS_INIT;
  po.url = s->database_url;
  po.application_name = application_name;
  po.size = s->db_pool;
  po.outbox_notify = false;
  return wr_db_pool_new_opts(&po, pool, err);
}
