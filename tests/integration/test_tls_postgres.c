// warren-test: timeout=180
/* test_tls_postgres.c: PostgreSQL connection parameters pass through warren's
 * connect and pool (runtime/include/warren/db.h) untouched, TLS included.
 *
 * The test runs its own PostgreSQL 15 cluster (initdb in a temporary directory, a
 * CA and a server certificate generated here with openssl) that accepts TLS
 * connections only (pg_hba: hostssl trust, hostnossl reject). Then:
 * - sslmode=disable is honoured: refused by the server (no TLS);
 * - sslmode=require and verify-full with sslrootcert connect, and the server sees a
 *   TLS session (pg_stat_ssl); the pool's connections too;
 * - verify-full with another CA, or with a host name the certificate does not carry,
 *   fails (WR_EDB) with libpq's reason and without the password of the URL;
 * - application_name in the URL wins over the name the code passes; without it the
 *   code's name is used.
 * Needs root (the server runs as user postgres, like scripts/stack). */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <warren/db.h>
#include <warren/error.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define SECRET "pg-tls-s3cret-Qx7"

static char dir[64];
static unsigned port;

static int sh(const char *fmt, ...) WR_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  unsigned p = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    p = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return p;
}

static int setup(void **state) {
  if (getuid() != 0 || access(PG_BIN "/initdb", X_OK) != 0) {
    printf("needs root and PostgreSQL 15 binaries\n");
    return -1;
  }
  snprintf(dir, sizeof dir, "/tmp/warren-pgtls-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  port = free_port();
  /* a CA, a server certificate for localhost/127.0.0.1, and an unrelated CA */
  if (sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pgtls-ca "
         "-keyout ca.key -out ca.pem >/dev/null 2>&1 && "
         "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key "
         "-out server.csr >/dev/null 2>&1 && "
         "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
         "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
         "-extfile ext.cnf -out server.pem >/dev/null 2>&1 && "
         "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
         "-keyout other.key -out other.pem >/dev/null 2>&1",
         dir) != 0)
    return -1;
  if (sh("chown -R postgres:postgres %s && chmod 0700 %s && chmod 0600 %s/server.key", dir, dir,
         dir) != 0)
    return -1;
  if (sh("runuser -u postgres -- " PG_BIN "/initdb -D %s/data -U postgres --auth=trust -E UTF8 "
         "--locale=C.UTF-8 >%s/initdb.log 2>&1",
         dir, dir) != 0)
    return -1;
  if (sh("cat >>%s/data/postgresql.conf <<EOF\n"
         "listen_addresses = '127.0.0.1,127.0.0.2'\nport = %u\nunix_socket_directories = '%s'\n"
         "ssl = on\nssl_cert_file = '%s/server.pem'\nssl_key_file = '%s/server.key'\n"
         "max_connections = 20\nshared_buffers = 16MB\nfsync = off\n"
         "EOF\n"
         "printf 'local all all trust\\nhostssl all all 127.0.0.1/32 trust\\n"
         "hostssl all all 127.0.0.2/32 trust\\nhostnossl all all 127.0.0.1/32 reject\\n' > "
         "%s/data/pg_hba.conf",
         dir, port, dir, dir, dir, dir) != 0)
    return -1;
  if (sh("runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -l %s/server.log -w -t 60 start "
         ">/dev/null 2>&1",
         dir, dir) != 0) {
    sh("tail -20 %s/server.log >&2", dir);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  if (dir[0]) {
    sh("runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -m immediate -w -t 30 stop "
       ">/dev/null 2>&1",
       dir);
    sh("rm -rf %s", dir);
  }
  return 0;
}

static void url(char *out, size_t outsz, const char *host, const char *params) {
  snprintf(out, outsz, "postgres://postgres:%s@%s:%u/postgres?%s", SECRET, host, port, params);
}

static char *query1(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    PQclear(r);
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  }
  char *v = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

static void assert_tls(PGconn *c, bool want) {
  char *v = query1(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  assert_string_equal(v, want ? "t" : "f");
  free(v);
}

static void sslmode_passes_through(void **state) {
  char u[512], ca[128];
  wr_err err = {0};
  PGconn *c = NULL;

  /* disable: no TLS, and this server refuses that */
  url(u, sizeof u, "127.0.0.1", "sslmode=disable");
  assert_int_equal(wr_db_connect(u, "test_tls_postgres", &c, &err), WR_EDB);
  assert_null(c);
  printf("sslmode=disable: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "no encryption"));
  assert_null(strstr(err.msg, SECRET));

  /* require: TLS without verification */
  url(u, sizeof u, "127.0.0.1", "sslmode=require");
  if (wr_db_connect(u, "test_tls_postgres", &c, &err) != 0)
    fail_msg("sslmode=require: %s", err.msg);
  assert_tls(c, true);
  PQfinish(c);

  /* verify-full with the right CA, by name and by address */
  snprintf(ca, sizeof ca, "sslmode=verify-full&sslrootcert=%s/ca.pem", dir);
  url(u, sizeof u, "localhost", ca);
  if (wr_db_connect(u, "test_tls_postgres", &c, &err) != 0)
    fail_msg("verify-full: %s", err.msg);
  assert_tls(c, true);
  PQfinish(c);
  url(u, sizeof u, "127.0.0.1", ca);
  if (wr_db_connect(u, "test_tls_postgres", &c, &err) != 0)
    fail_msg("verify-full by address: %s", err.msg);
  PQfinish(c);

  /* verify-full with a name the certificate does not carry */
  url(u, sizeof u, "127.0.0.2", ca);
  assert_int_equal(wr_db_connect(u, "test_tls_postgres", &c, &err), WR_EDB);
  printf("verify-full, 127.0.0.2: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "does not match host name"));
  assert_null(strstr(err.msg, SECRET));

  /* verify-full with another CA */
  snprintf(ca, sizeof ca, "sslmode=verify-full&sslrootcert=%s/other.pem", dir);
  url(u, sizeof u, "localhost", ca);
  assert_int_equal(wr_db_connect(u, "test_tls_postgres", &c, &err), WR_EDB);
  printf("verify-full, other CA: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "certificate verify failed"));
  assert_null(strstr(err.msg, SECRET));

  /* key=value form too */
  char kv[512];
  snprintf(kv, sizeof kv,
           "host=localhost port=%u dbname=postgres user=postgres password=%s "
           "sslmode=verify-full sslrootcert=%s/ca.pem",
           port, SECRET, dir);
  if (wr_db_connect(kv, "test_tls_postgres", &c, &err) != 0)
    fail_msg("key=value verify-full: %s", err.msg);
  assert_tls(c, true);
  PQfinish(c);
  snprintf(kv, sizeof kv,
           "host=localhost port=%u dbname=postgres user=postgres password=%s sslmode=disable", port,
           SECRET);
  assert_int_equal(wr_db_connect(kv, "test_tls_postgres", &c, &err), WR_EDB);
  assert_null(strstr(err.msg, SECRET));
}

static void pool_over_tls(void **state) {
  char u[512], ca[128];
  snprintf(ca, sizeof ca, "sslmode=verify-full&sslrootcert=%s/ca.pem", dir);
  url(u, sizeof u, "localhost", ca);
  wr_db_pool *pool = NULL;
  wr_err err = {0};
  if (wr_db_pool_new(u, "test_tls_postgres", 3, &pool, &err) != 0)
    fail_msg("pool: %s", err.msg);
  PGconn *a = NULL, *b = NULL;
  assert_int_equal(wr_db_pool_acquire(pool, 5000, &a, &err), 0);
  assert_int_equal(wr_db_pool_acquire(pool, 5000, &b, &err), 0);
  assert_tls(a, true);
  assert_tls(b, true);
  wr_db_pool_release(pool, a);
  wr_db_pool_release(pool, b);
  wr_db_pool_free(pool);

  /* a pool that cannot verify the server does not start, and says why */
  snprintf(ca, sizeof ca, "sslmode=verify-full&sslrootcert=%s/other.pem", dir);
  url(u, sizeof u, "localhost", ca);
  pool = NULL;
  assert_int_equal(wr_db_pool_new(u, "test_tls_postgres", 2, &pool, &err), WR_EDB);
  assert_null(pool);
  assert_null(strstr(err.msg, SECRET));
}

static void application_name_passes_through(void **state) {
  char u[512];
  wr_err err = {0};
  PGconn *c = NULL;
  url(u, sizeof u, "127.0.0.1", "sslmode=require&application_name=ops-chosen-name");
  assert_int_equal(wr_db_connect(u, "code-name", &c, &err), 0);
  char *v = query1(c, "SELECT current_setting('application_name')");
  assert_string_equal(v, "ops-chosen-name");
  free(v);
  PQfinish(c);
  url(u, sizeof u, "127.0.0.1", "sslmode=require");
  assert_int_equal(wr_db_connect(u, "code-name", &c, &err), 0);
  v = query1(c, "SELECT current_setting('application_name')");
  assert_string_equal(v, "code-name");
  free(v);
  /* other libpq parameters pass through too: connect_timeout, options */
  PQfinish(c);
  url(u, sizeof u, "127.0.0.1",
      "sslmode=require&connect_timeout=7&options=-c%20statement_timeout%3D4321");
  assert_int_equal(wr_db_connect(u, "code-name", &c, &err), 0);
  v = query1(c, "SELECT current_setting('statement_timeout')");
  assert_string_equal(v, "4321ms");
  free(v);
  v = query1(c, "SELECT current_setting('TimeZone')"); /* warren's own option kept */
  assert_string_equal(v, "UTC");
  free(v);
  PQfinish(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sslmode_passes_through),
      cmocka_unit_test(pool_over_tls),
      cmocka_unit_test(application_name_passes_through),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
