/* warren/error.h: one error model for the whole library.
 *
 * Every function that can fail returns int: 0 (or a documented non-negative value) on
 * success, a negative WR_E* code on failure. Codes are never reused or renumbered.
 * Where the outside world has more to say (a broker's channel.close with reply code and
 * text, a PostgreSQL error message, a JSON path), the function takes an optional
 * `wr_err *` (may be NULL) and fills it; there is no "last error" global. */
#ifndef WARREN_ERROR_H
#define WARREN_ERROR_H

#include <warren/common.h>

WR_BEGIN_DECLS

/* X(name, value, text): the one list that makes both the enum and wr_strerror(). */
#define WR_ERRNO_MAP(X)                                                                            \
  X(EINVAL, -1, "invalid argument")                                                                \
  X(ENOMEM, -2, "out of memory")                                                                   \
  X(EIO, -3, "I/O error")                                                                          \
  X(ETIMEDOUT, -4, "timed out")                                                                    \
  X(ECLOSED, -5, "connection closed")                                                              \
  X(EURL, -6, "invalid URL")                                                                       \
  X(ETLS, -7, "TLS error")                                                                         \
  X(EAUTH, -8, "authentication refused")                                                           \
  X(EAMQP, -9, "broker refused the operation")                                                     \
  X(ENACK, -10, "broker nacked the message")                                                       \
  X(ERETURNED, -11, "message unroutable (returned by the broker)")                                 \
  X(EBLOCKED, -12, "connection blocked by the broker (resource alarm)")                            \
  X(EDB, -13, "database error")                                                                    \
  X(EDECODE, -14, "malformed message")                                                             \
  X(EMETA, -15, "missing or invalid event metadata")                                               \
  X(ENOHANDLER, -16, "no handler registered for the event type")                                   \
  X(EHANDLER, -17, "handler failed (retryable)")                                                   \
  X(EREJECT, -18, "handler rejected the event (not retryable)")                                    \
  X(EJSON, -19, "invalid JSON")                                                                    \
  X(ETOOBIG, -20, "too large")                                                                     \
  X(ENOTFOUND, -21, "not found")                                                                   \
  X(ECONFLICT, -22, "conflict")                                                                    \
  X(ESTOPPED, -23, "stopped")                                                                      \
  X(EHTTP, -24, "HTTP error")                                                                      \
  X(ESCHEMA, -25, "schema mismatch")                                                               \
  X(EEXIST, -26, "already exists")                                                                 \
  X(ESTATE, -27, "operation not valid in the current state")

typedef enum wr_errno {
  WR_OK = 0,
#define WR__ERR_ENUM(name, value, text) WR_##name = (value),
  WR_ERRNO_MAP(WR__ERR_ENUM)
#undef WR__ERR_ENUM
} wr_errno;

/* A static English description of `code` ("unknown error" for an unknown code). Never
 * NULL; cannot fail. */
WR_EXPORT const char *wr_strerror(int code);

/* The symbolic name of `code` ("WR_ETIMEDOUT"), or "WR_UNKNOWN". Cannot fail. */
WR_EXPORT const char *wr_errname(int code);

/* Detail for a failure: filled by functions that take a `wr_err *` (NULL allowed). */
typedef struct wr_err {
  int code;         /* the WR_E* code the function returned */
  int amqp_reply;   /* AMQP reply code of a channel/connection close (404, 406, 530...), or 0 */
  char sqlstate[6]; /* PostgreSQL SQLSTATE ("23505"), or "" */
  char msg[512];    /* human-readable, never contains credentials */
} wr_err;

/* Sets err (if not NULL) to code + formatted message and returns `code`, so a failing
 * path can `return wr_err_set(err, WR_EDB, "insert: %s", ...)`. Cannot fail. */
WR_EXPORT int wr_err_set(wr_err *err, int code, const char *fmt, ...) WR_PRINTF(3, 4);

/* Clears err (if not NULL). Cannot fail. */
WR_EXPORT void wr_err_clear(wr_err *err);

WR_END_DECLS

#endif
