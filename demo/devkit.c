/* devkit.c: see devkit.h. */
#include "devkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <warren/http_client.h>
#include <warren/util.h>

unsigned dk_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  unsigned port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

int dk_start(dk_proc *p, const char *name, const char *bin, unsigned port, const char *const *env,
             const char *log_path, wr_err *err) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->log_path, sizeof p->log_path, "%s", log_path);
  p->port = port;
  snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", port);
  int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return wr_err_set(err, WR_EIO, "cannot open %s: %s", log_path, strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return wr_err_set(err, WR_EIO, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, STDIN_FILENO);
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    char addr[64];
    snprintf(addr, sizeof addr, "WARREN_HTTP_ADDR=127.0.0.1:%u", port);
    putenv(addr);
    /* a fresh signal state: the parent may block or ignore signals */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execl(bin, bin, (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(fd);
  p->pid = pid;
  return 0;
}

bool dk_alive(dk_proc *p) {
  if (p->pid <= 0)
    return false;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == p->pid) {
    p->pid = 0;
    return false;
  }
  return true;
}

int dk_wait_ready(dk_proc *p, unsigned timeout_ms, wr_err *err) {
  int64_t end = wr_mono_ns() + (int64_t)timeout_ms * 1000000;
  char url[128];
  snprintf(url, sizeof url, "%s/readyz", p->url);
  for (;;) {
    if (!dk_alive(p))
      return wr_err_set(err, WR_ECLOSED, "%s exited during start (log: %s)", p->name, p->log_path);
    int status = 0;
    json_t *body = NULL;
    if (wr_http_get_json(url, NULL, 2000, &status, &body, NULL) == 0) {
      json_decref(body);
      if (status == 200)
        return 0;
    }
    if (wr_mono_ns() > end)
      return wr_err_set(err, WR_ETIMEDOUT, "%s not ready after %u ms (log: %s)", p->name,
                        timeout_ms, p->log_path);
    usleep(100000);
  }
}

int dk_stop(dk_proc *p, int sig, unsigned timeout_ms) {
  if (p->pid <= 0)
    return WR_ESTATE;
  kill(p->pid, sig);
  int64_t end = wr_mono_ns() + (int64_t)timeout_ms * 1000000;
  for (;;) {
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (wr_mono_ns() > end) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &st, 0);
      p->pid = 0;
      return WR_ETIMEDOUT;
    }
    usleep(20000);
  }
}

int dk_http(const char *method, const char *url, json_t *body, const char *const *headers,
            int *status, json_t **out, wr_err *err) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  const char *hdrs[16];
  size_t n = 0;
  if (text)
    hdrs[n++] = "Content-Type: application/json";
  for (size_t i = 0; headers && headers[i] && n < 15; i++)
    hdrs[n++] = headers[i];
  hdrs[n] = NULL;
  wr_http_request rq = {.method = method,
                        .url = url,
                        .headers = hdrs,
                        .body = text,
                        .body_len = text ? strlen(text) : 0,
                        .timeout_ms = 30000};
  wr_http_response res;
  int rc = wr_http_do(&rq, &res, err);
  free(text);
  if (rc)
    return rc;
  *status = res.status;
  if (out) {
    *out = NULL;
    if (res.len > 0) {
      json_error_t je;
      *out = json_loadb(res.body, res.len, 0, &je);
    }
  }
  wr_http_response_free(&res);
  return 0;
}

int dk_metric(const char *base_url, const char *series, double *value, wr_err *err) {
  char url[256];
  snprintf(url, sizeof url, "%s/metrics", base_url);
  wr_http_request rq = {.method = "GET", .url = url, .timeout_ms = 10000};
  wr_http_response res;
  int rc = wr_http_do(&rq, &res, err);
  if (rc)
    return rc;
  rc = wr_err_set(err, WR_ENOTFOUND, "no series %s", series);
  size_t sl = strlen(series);
  for (char *line = res.body; line && *line;) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, series, sl) == 0 && line[sl] == ' ') {
      *value = strtod(line + sl + 1, NULL);
      rc = 0;
      break;
    }
    line = nl ? nl + 1 : NULL;
  }
  wr_http_response_free(&res);
  return rc;
}

void dk_tail(const char *path, int lines) {
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  char *ring[200] = {0};
  if (lines > 200)
    lines = 200;
  int n = 0;
  char buf[2048];
  while (fgets(buf, sizeof buf, f)) {
    free(ring[n % lines]);
    ring[n % lines] = strdup(buf);
    n++;
  }
  fclose(f);
  int start = n > lines ? n - lines : 0;
  fprintf(stderr, "---- last lines of %s ----\n", path);
  for (int i = start; i < n; i++)
    fputs(ring[i % lines] ? ring[i % lines] : "", stderr);
  for (int i = 0; i < lines; i++)
    free(ring[i]);
}
