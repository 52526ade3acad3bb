/* warren/log.h: one-line structured logs. The library reports failures through return
 * codes; it logs only what an operator needs to see (reconnects, dead-lettered events,
 * relay stalls), through a sink the application may replace.
 *
 * Line format of the default sink (stderr):
 *   2026-11-28T19:04:07.123Z level=info svc=order corr=<id> msg="..." key=value ...
 * Secrets never reach a log line: URLs go through wr_redact_url() first. */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <warren/common.h>

WR_BEGIN_DECLS

typedef enum wr_log_level {
  WR_LOG_DEBUG = 0,
  WR_LOG_INFO = 1,
  WR_LOG_WARN = 2,
  WR_LOG_ERROR = 3,
} wr_log_level;

/* A sink receives one formatted line without trailing newline. Must be thread-safe. */
typedef void (*wr_log_fn)(wr_log_level level, const char *line, void *user);

/* Replaces the sink (NULL restores the stderr sink) and the minimum level. Call before
 * starting threads. Cannot fail. */
WR_EXPORT void wr_log_configure(wr_log_fn fn, void *user, wr_log_level min_level);

/* Sets the service name put on every line ("svc=..."). The string is copied. */
WR_EXPORT void wr_log_set_service(const char *service);

/* Parses "debug|info|warn|error"; returns 0 and sets *out, or WR_EINVAL. */
WR_EXPORT int wr_log_level_parse(const char *s, wr_log_level *out);

/* Logs one line. corr may be NULL. fmt is the human message; `kv` pairs can be
 * appended to it by the caller ("event_id=%s"). Thread-safe. */
WR_EXPORT void wr_log(wr_log_level level, const char *corr, const char *fmt, ...) WR_PRINTF(3, 4);

#define wr_log_debug(corr, ...) wr_log(WR_LOG_DEBUG, corr, __VA_ARGS__)
#define wr_log_info(corr, ...)  wr_log(WR_LOG_INFO, corr, __VA_ARGS__)
#define wr_log_warn(corr, ...)  wr_log(WR_LOG_WARN, corr, __VA_ARGS__)
#define wr_log_error(corr, ...) wr_log(WR_LOG_ERROR, corr, __VA_ARGS__)

WR_END_DECLS

#endif
