/* warren/util.h: small pure helpers shared by the runtime, the services and tools:
 * UUIDv7, clocks, RFC 3339 timestamps, credential redaction, constant-time compare. */
#ifndef WARREN_UTIL_H
#define WARREN_UTIL_H

#include <warren/common.h>

WR_BEGIN_DECLS

#define WR_UUID_STRLEN 37 /* 36 chars + NUL */

/* Writes a new UUIDv7 (RFC 9562: 48-bit Unix ms timestamp, random rest; monotonic
 * within a process) as lowercase text into out. Thread-safe. Returns 0, or WR_EIO if
 * no randomness is available. */
WR_EXPORT int wr_uuid_v7(char out[WR_UUID_STRLEN]);

/* True if s is a canonical UUID text (8-4-4-4-12 hex). Cannot fail. */
WR_EXPORT bool wr_uuid_valid(const char *s);

/* Wall clock in nanoseconds since the Unix epoch / monotonic clock in nanoseconds.
 * Cannot fail. */
WR_EXPORT int64_t wr_now_ns(void);
WR_EXPORT int64_t wr_mono_ns(void);

#define WR_RFC3339_STRLEN 32
/* Formats seconds+nanos as RFC 3339 UTC with microseconds ("2026-11-28T19:04:07.123456Z").
 * Returns 0 or WR_EINVAL (out of the years 1-9999). */
WR_EXPORT int wr_rfc3339_format(int64_t seconds, int32_t nanos, char out[WR_RFC3339_STRLEN]);

/* Parses RFC 3339 ("2026-11-28T19:04:07Z", fractional seconds up to 9 digits, "Z" or
 * "+hh:mm" offsets). Returns 0 or WR_EINVAL; nothing is written on failure. */
WR_EXPORT int wr_rfc3339_parse(const char *s, int64_t *seconds, int32_t *nanos);

/* Copies url into out with any password replaced by "***" (amqp://u:***@h/, also in
 * comma-separated lists and postgres key=value strings' password=). Always
 * NUL-terminates; truncates to outsz. Cannot fail. */
WR_EXPORT void wr_redact_url(const char *url, char *out, size_t outsz);

/* Compares two byte strings in time that depends only on the lengths. True if equal.
 * Cannot fail. */
WR_EXPORT bool wr_consttime_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Capped exponential backoff with full jitter: a random delay in [0, min(cap, base *
 * 2^attempt)] ms, never below base/2. Thread-safe. */
WR_EXPORT unsigned wr_backoff_ms(unsigned attempt, unsigned base_ms, unsigned cap_ms);

/* Base64 (RFC 4648). url=true uses the URL-safe alphabet without padding. encode
 * writes NUL-terminated text into out (outsz >= 4 * ceil(len / 3) + 1) and returns
 * its length, or WR_ETOOBIG. decode accepts exactly one alphabet (padding optional
 * when url=true, required otherwise), rejects any other byte, and returns the decoded
 * length or WR_EINVAL / WR_ETOOBIG (outsz too small). */
WR_EXPORT int wr_base64_encode(const void *data, size_t len, bool url, char *out, size_t outsz);
WR_EXPORT int wr_base64_decode(const char *text, size_t len, bool url, void *out, size_t outsz);

/* Sleeps ms milliseconds, returning early (WR_ESTOPPED) when *stop becomes true
 * (polled every 50 ms). stop may be NULL. Returns 0 otherwise. */
WR_EXPORT int wr_sleep_ms(unsigned ms, const volatile int *stop);

WR_END_DECLS

#endif
