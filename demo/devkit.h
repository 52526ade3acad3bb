/* devkit.h: running warren services as child processes and talking to them over
 * HTTP: shared by the demo (warren-demo) and the end-to-end tests. Functions return 0
 * or a negative WR_E* code with a message in err; nothing here aborts. */
#ifndef WARREN_DEVKIT_H
#define WARREN_DEVKIT_H

#include <jansson.h>
#include <sys/types.h>
#include <warren/error.h>

typedef struct dk_proc {
  pid_t pid;
  char name[32];
  char url[64]; /* http://127.0.0.1:<port> */
  unsigned port;
  char log_path[512]; /* stdout+stderr of the process */
} dk_proc;

/* A TCP port that was free a moment ago on 127.0.0.1. */
unsigned dk_free_port(void);

/* Starts `bin` with the current environment plus `env` ("KEY=VALUE", NULL-terminated)
 * and WARREN_HTTP_ADDR=127.0.0.1:<port>; output appended to log_path. */
int dk_start(dk_proc *p, const char *name, const char *bin, unsigned port, const char *const *env,
             const char *log_path, wr_err *err);

/* Polls GET /readyz until 200, the process exits, or timeout. */
int dk_wait_ready(dk_proc *p, unsigned timeout_ms, wr_err *err);

/* Sends sig (SIGTERM for a clean stop, SIGKILL for a crash) and waits up to
 * timeout_ms for the exit. Returns the exit status (>= 0), or a negative code. A
 * process that does not exit in time is killed with SIGKILL. */
int dk_stop(dk_proc *p, int sig, unsigned timeout_ms);

/* True while the process runs. */
bool dk_alive(dk_proc *p);

/* One HTTP request with an optional JSON body (a jansson value, stolen) and extra
 * headers (NULL-terminated "Name: value"). *status and *out (parsed body or NULL,
 * caller decrefs) are filled. */
int dk_http(const char *method, const char *url, json_t *body, const char *const *headers,
            int *status, json_t **out, wr_err *err);

/* GET url/metrics and the value of the first sample whose line starts with `series`
 * (name plus labels, e.g. "warren_events_consumed_total{queue=\"q\",result=\"stale\"}").
 * Returns 0 and *value, or WR_ENOTFOUND. */
int dk_metric(const char *base_url, const char *series, double *value, wr_err *err);

/* Prints the last `lines` lines of a log file to stderr (for failures). */
void dk_tail(const char *path, int lines);

#endif
