/* log.c: one-line logs through a replaceable sink (stderr by default). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <warren/error.h>
#include <warren/log.h>
#include <warren/util.h>

static wr_log_fn log_fn;
static void *log_user;
static wr_log_level log_min = WR_LOG_INFO;
static char log_service[64];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void wr_log_configure(wr_log_fn fn, void *user, wr_log_level min_level) {
  pthread_mutex_lock(&log_mu);
  log_fn = fn;
  log_user = user;
  log_min = min_level;
  pthread_mutex_unlock(&log_mu);
}

void wr_log_set_service(const char *service) {
  pthread_mutex_lock(&log_mu);
  snprintf(log_service, sizeof log_service, "%s", service ? service : "");
  pthread_mutex_unlock(&log_mu);
}

int wr_log_level_parse(const char *s, wr_log_level *out) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (s && strcmp(s, names[i]) == 0) {
      *out = (wr_log_level)i;
      return 0;
    }
  return WR_EINVAL;
}

void wr_log(wr_log_level level, const char *corr, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (level < log_min)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* Keep one event on one line whatever the message holds, and no control bytes from
   * outside input (terminal escapes in a quoted request path) in the line. */
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';

  int64_t ns = wr_now_ns();
  time_t secs = (time_t)(ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char line[1400];
  pthread_mutex_lock(&log_mu);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (int)(ns / 1000000 % 1000), names[level & 3]);
  if (log_service[0] && n > 0 && (size_t)n < sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, " svc=%s", log_service);
  if (corr && *corr && n > 0 && (size_t)n < sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, " corr=%s", corr);
  if (n > 0 && (size_t)n < sizeof line)
    snprintf(line + n, sizeof line - (size_t)n, " %s", msg);
  wr_log_fn fn = log_fn;
  void *user = log_user;
  if (fn)
    fn(level, line, user);
  else
    fprintf(stderr, "%s\n", line);
  pthread_mutex_unlock(&log_mu);
}
