/* harness.h: what tests share: the stack's URLs, fresh databases and unique names, so
 * tests can run in parallel against one stack without seeing each other.
 *
 * All helpers fail the current cmocka test (fail_msg) instead of returning errors. */
#ifndef WARREN_TEST_HARNESS_H
#define WARREN_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <amqp.h>
#include <jansson.h>
#include <libpq-fe.h>

/* A value from the process environment, else from the stack's env file
 * ($WARREN_STACK_DIR/env), else NULL. Keys: WARREN_AMQP_URL, WARREN_PG_URL, ... */
const char *wt_env(const char *key);

/* Like wt_env but fails the test (skips if WARREN_TEST_SKIP_MISSING is set) when
 * missing. */
const char *wt_require(const char *key);

/* Writes "<prefix>-<pid>-<counter>-<random>" (lowercase, [a-z0-9-_.]) into out. */
void wt_unique(char *out, size_t outsz, const char *prefix);

/* Creates a fresh database named after prefix and returns its URL (static storage
 * per call slot: copy it if needed; up to 16 live at once). */
const char *wt_db_create(const char *prefix);
/* Drops a database created by wt_db_create (terminating its connections). */
void wt_db_drop(const char *url);

/* Connects with libpq or fails the test. */
PGconn *wt_pg_connect(const char *url);
/* Runs SQL that must succeed; returns the result (caller PQclear) */
PGresult *wt_pg_exec(PGconn *c, const char *sql);
/* First column of first row as integer of a query that must return one row. */
long long wt_pg_scalar(PGconn *c, const char *sql);

/* A raw rabbitmq-c connection (channel 1 open) to the first node of the stack. */
amqp_connection_state_t wt_amqp_connect(void);
void wt_amqp_close(amqp_connection_state_t c);
/* Message count of a queue via passive declare on a fresh channel (-1 if missing). */
long wt_amqp_queue_depth(amqp_connection_state_t c, const char *queue);
/* Deletes a queue/exchange if present (errors ignored). */
void wt_amqp_delete_queue(amqp_connection_state_t c, const char *queue);
void wt_amqp_delete_exchange(amqp_connection_state_t c, const char *exchange);

/* Creates a fresh RabbitMQ virtual host (management API) with full permissions for
 * guest, and returns the AMQP URL list of the stack pointing at it (static storage
 * per slot, up to 16 live). Isolates tests that use fixed exchange/queue names. */
const char *wt_vhost_create(const char *prefix);
/* One request to the broker's management API (WARREN_AMQP_MGMT_URL, as guest): returns
 * the HTTP status; *out (if out) gets the parsed JSON body or NULL (caller decrefs).
 * Fails the test when the API cannot be reached. */
int wt_mgmt(const char *method, const char *path, const char *body, json_t **out);
/* Deletes a vhost created by wt_vhost_create (given its AMQP URL). */
void wt_vhost_delete(const char *amqp_url);

/* Runs `scripts/stack <args>` against the test stack (chaos: rabbit-stop...). Returns
 * the exit status. */
int wt_stack(const char *args);

/* Path of a built binary in build/bin (customer-service, ...), static storage. */
const char *wt_bin(const char *name);

/* Milliseconds on the monotonic clock. */
int64_t wt_now_ms(void);

/* Polls cond(user) every 20 ms until true or timeout_ms; returns true if it held. */
bool wt_wait_until(bool (*cond)(void *user), void *user, int timeout_ms);

#endif
