/* error.c: wr_strerror/wr_errname from the one X-macro list in warren/error.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <warren/error.h>

const char *wr_strerror(int code) {
  switch (code) {
  case WR_OK:
    return "success";
#define WR__ERR_TEXT(name, value, text)                                                            \
  case WR_##name:                                                                                  \
    return text;
    WR_ERRNO_MAP(WR__ERR_TEXT)
#undef WR__ERR_TEXT
  default:
    return "unknown error";
  }
}

const char *wr_errname(int code) {
  switch (code) {
  case WR_OK:
    return "WR_OK";
#define WR__ERR_NAME(name, value, text)                                                            \
  case WR_##name:                                                                                  \
    return "WR_" #name;
    WR_ERRNO_MAP(WR__ERR_NAME)
#undef WR__ERR_NAME
  default:
    return "WR_UNKNOWN";
  }
}

int wr_err_set(wr_err *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    err->amqp_reply = 0;
    err->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void wr_err_clear(wr_err *err) {
  if (err)
    memset(err, 0, sizeof *err);
}

const char *wr_version(void) {
  return WR_VERSION_STRING;
}
