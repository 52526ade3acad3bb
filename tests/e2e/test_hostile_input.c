// warren-test: link=warren_devkit,warren_schemas timeout=300
/* test_hostile_input.c: a corpus of hostile requests against every endpoint of both
 * services (real processes, real databases and broker): malformed and truncated JSON,
 * wrong types, huge numbers, invalid UTF-8, NUL bytes, SQL-injection strings (stored
 * and returned literally), invalid cursors and timestamps, unknown routes and methods,
 * missing or wrong admin tokens.
 *
 * Every answer must be the documented one: the right 4xx with the JSON error body
 * {"error":{"code","message"}} and X-Correlation-Id, never a 5xx; afterwards both
 * processes still run, answer /healthz 200, logged no error for any of it, and stop
 * cleanly on SIGTERM. Connection-level abuse (10 MiB bodies, slow clients, thousands
 * of connections, HTTP/2 prefaces, header floods) is in test_hostile_conns.c. */
#include "test_hostile.h"

static hx_env env;
static char cid[WR_UUID_STRLEN];  /* a live customer */
static char dcid[WR_UUID_STRLEN]; /* a deleted customer (tombstone) */

typedef struct hcase {
  const char *label;
  const char *method;
  const char *target; /* "{cid}" / "{dcid}" are replaced */
  const char *extra;  /* header lines, "{tok}" is replaced by the admin token */
  const char *ctype;
  const char *body; /* NULL: no body */
  size_t body_len;  /* 0: strlen(body) */
  int status;
  const char *code;
} hcase;

#define JSON "application/json"

/* Replaces every "{key}" in s by val (into out). */
static void subst(const char *s, const char *key, const char *val, char *out, size_t outsz) {
  size_t kl = strlen(key), o = 0;
  while (*s && o + 1 < outsz) {
    if (!strncmp(s, key, kl)) {
      o += (size_t)snprintf(out + o, outsz - o, "%s", val);
      s += kl;
    } else {
      out[o++] = *s++;
    }
  }
  out[o < outsz ? o : outsz - 1] = '\0';
}

static void run_case(unsigned port, const hcase *c) {
  char t1[4096], target[4096], extra[4096];
  subst(c->target, "{cid}", cid, t1, sizeof t1);
  subst(t1, "{dcid}", dcid, target, sizeof target);
  if (c->extra)
    subst(c->extra, "{tok}", env.token, extra, sizeof extra);
  char b1[4096], body[4096];
  const char *bp = c->body;
  size_t blen = c->body ? (c->body_len ? c->body_len : strlen(c->body)) : 0;
  if (c->body && !c->body_len) {
    subst(c->body, "{cid}", cid, b1, sizeof b1);
    subst(b1, "{dcid}", dcid, body, sizeof body);
    bp = body;
    blen = strlen(body);
  }
  hx_resp r;
  hx_send(port, c->method, target, c->extra ? extra : NULL, c->ctype, bp, blen, &r);
  hx_expect(c->label, &r, c->status, c->code);
  hx_resp_free(&r);
}

static void run_cases(unsigned port, const hcase *cases, size_t n) {
  for (size_t i = 0; i < n; i++)
    run_case(port, &cases[i]);
}

/* ---- bodies shared by every JSON route ------------------------------------------- */

/* Malformed JSON: every one of them is 400 invalid_json on any JSON-body route. */
static const struct {
  const char *label, *body;
  size_t len;
} BAD_JSON[] = {
    {"empty body", "", 0},
    {"whitespace only", " \r\n\t ", 0},
    {"truncated object", "{", 0},
    {"truncated member", "{\"name\":", 0},
    {"truncated string", "{\"name\":\"abc", 0},
    {"trailing comma", "{\"name\":\"a\",}", 0},
    {"single quotes", "{'name':'a'}", 0},
    {"bare word", "{name:1}", 0},
    {"array", "[1,2,3]", 0},
    {"string", "\"customer\"", 0},
    {"number", "42", 0},
    {"null", "null", 0},
    {"trailing garbage", "{}xyz", 0},
    {"two objects", "{}{}", 0},
    {"duplicate keys", "{\"name\":\"a\",\"name\":\"b\"}", 0},
    {"escaped NUL", "{\"name\":\"a\\u0000b\"}", 0},
    {"raw NUL byte", "{\"name\":\"a\0b\"}", 14},
    {"NUL after the object", "{}\0", 3},
    {"invalid UTF-8", "{\"name\":\"\xff\xfe\"}", 0},
    {"overlong UTF-8", "{\"name\":\"\xc0\xaf\"}", 0},
    {"UTF-8 surrogate", "{\"name\":\"\xed\xa0\x80\"}", 0},
    {"lone surrogate escape", "{\"name\":\"\\ud800\"}", 0},
    {"truncated UTF-8", "{\"name\":\"\xe2\x82\"}", 0},
    {"byte order mark", "\xef\xbb\xbf{}", 0},
    {"integer beyond int64", "{\"amount_cents\":123456789012345678901234567890}", 0},
    {"real overflow", "{\"amount_cents\":1e99999}", 0},
    {"bad escape", "{\"name\":\"\\x41\"}", 0},
    {"control char in string", "{\"name\":\"a\tb\"}", 0},
    {"NaN", "{\"amount_cents\":NaN}", 0},
};

/* Every BAD_JSON body against one JSON route; `extra` for admin routes. */
static void bad_json_on(unsigned port, const char *method, const char *target, const char *extra,
                        bool optional_body) {
  char t[256], label[300];
  subst(target, "{cid}", cid, t, sizeof t);
  for (size_t i = 0; i < sizeof BAD_JSON / sizeof BAD_JSON[0]; i++) {
    size_t len = BAD_JSON[i].len ? BAD_JSON[i].len : strlen(BAD_JSON[i].body);
    if (len == 0 && optional_body)
      continue; /* an empty body is allowed there */
    hx_resp r;
    hx_send(port, method, t, extra, JSON, BAD_JSON[i].body, len, &r);
    snprintf(label, sizeof label, "%s %s: %s", method, target, BAD_JSON[i].label);
    hx_expect(label, &r, 400, "invalid_json");
    hx_resp_free(&r);
  }
  /* deep nesting: jansson stops at 2048 levels */
  char deep[20001];
  memset(deep, '[', 10000);
  memset(deep + 10000, ']', 10000);
  deep[20000] = '\0';
  hx_resp r;
  hx_send(port, method, t, extra, JSON, deep, 20000, &r);
  snprintf(label, sizeof label, "%s %s: 10000 nested arrays", method, target);
  hx_expect(label, &r, 400, "invalid_json");
  hx_resp_free(&r);
  /* wrong or missing Content-Type */
  static const char *const ctypes[] = {"text/plain", "application/x-www-form-urlencoded",
                                       "application/json; charset=latin1", "application/jsonx",
                                       "multipart/form-data; boundary=x"};
  for (size_t i = 0; i < sizeof ctypes / sizeof ctypes[0]; i++) {
    hx_send(port, method, t, extra, ctypes[i], "{}", 2, &r);
    snprintf(label, sizeof label, "%s %s: Content-Type %s", method, target, ctypes[i]);
    hx_expect(label, &r, 415, "unsupported_media_type");
    hx_resp_free(&r);
  }
  hx_send(port, method, t, extra, NULL, "{}", 2, &r);
  snprintf(label, sizeof label, "%s %s: body without Content-Type", method, target);
  hx_expect(label, &r, 415, "unsupported_media_type");
  hx_resp_free(&r);
}

/* ---- setup -------------------------------------------------------------------------- */

static json_t *customer_call(const char *method, const char *path, json_t *body, int *status) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", env.e.customer.url, path);
  json_t *out = NULL;
  wr_err err = {0};
  if (dk_http(method, url, body, NULL, status, &out, &err) != 0)
    fail_msg("%s %s: %s", method, path, err.msg);
  return out;
}

static int group_setup(void **state) {
  hx_services_start(&env, "hostile_input");
  int st;
  json_t *c =
      customer_call("POST", "/customers",
                    json_pack("{s:s,s:s}", "name", "Live", "email", "live@example.org"), &st);
  assert_int_equal(st, 201);
  snprintf(cid, sizeof cid, "%s", json_string_value(json_object_get(c, "id")));
  json_decref(c);
  c = customer_call("POST", "/customers",
                    json_pack("{s:s,s:s}", "name", "Gone", "email", "gone@example.org"), &st);
  assert_int_equal(st, 201);
  snprintf(dcid, sizeof dcid, "%s", json_string_value(json_object_get(c, "id")));
  json_decref(c);
  char path[96];
  snprintf(path, sizeof path, "/customers/%s", dcid);
  json_decref(customer_call("DELETE", path, NULL, &st));
  assert_int_equal(st, 204);
  return 0;
}

static int group_teardown(void **state) {
  hx_services_stop(&env);
  return 0;
}

/* ---- customer service ----------------------------------------------------------------- */

static const hcase CUSTOMER_CASES[] = {
    /* POST /customers: wrong types and values (valid JSON) */
    {"create: empty object", "POST", "/customers", NULL, JSON, "{}", 0, 422, "missing_field"},
    {"create: name null", "POST", "/customers", NULL, JSON,
     "{\"name\":null,\"email\":\"a@example.org\"}", 0, 422, "missing_field"},
    {"create: name number", "POST", "/customers", NULL, JSON,
     "{\"name\":1,\"email\":\"a@example.org\"}", 0, 422, "invalid_type"},
    {"create: name array", "POST", "/customers", NULL, JSON,
     "{\"name\":[\"a\"],\"email\":\"a@example.org\"}", 0, 422, "invalid_type"},
    {"create: name object", "POST", "/customers", NULL, JSON,
     "{\"name\":{\"a\":1},\"email\":\"a@example.org\"}", 0, 422, "invalid_type"},
    {"create: name bool", "POST", "/customers", NULL, JSON,
     "{\"name\":true,\"email\":\"a@example.org\"}", 0, 422, "invalid_type"},
    {"create: email number", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":12345678901234567890}", 0, 400, "invalid_json"},
    {"create: email float", "POST", "/customers", NULL, JSON, "{\"name\":\"a\",\"email\":1.5}", 0,
     422, "invalid_type"},
    {"create: status number", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"status\":1}", 0, 422, "invalid_type"},
    {"create: unknown field", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"id\":\"x\"}", 0, 422, "unknown_field"},
    {"create: unknown field with odd bytes", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"\\u00e9\\\"\\n\":1}", 0, 422, "unknown_field"},
    {"create: empty name", "POST", "/customers", NULL, JSON,
     "{\"name\":\"\",\"email\":\"a@example.org\"}", 0, 422, "invalid_value"},
    {"create: control char in name", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\\u0001b\",\"email\":\"a@example.org\"}", 0, 422, "invalid_value"},
    {"create: DEL in name", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\\u007fb\",\"email\":\"a@example.org\"}", 0, 422, "invalid_value"},
    {"create: newline in name", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\\nb\",\"email\":\"a@example.org\"}", 0, 422, "invalid_value"},
    {"create: email without @", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"example.org\"}", 0, 422, "invalid_value"},
    {"create: email two @", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@@example.org\"}", 0, 422, "invalid_value"},
    {"create: email no tld", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example\"}", 0, 422, "invalid_value"},
    {"create: email double dot", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a..b@example.org\"}", 0, 422, "invalid_value"},
    {"create: email with space", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a b@example.org\"}", 0, 422, "invalid_value"},
    {"create: email SQL", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org' OR '1'='1\"}", 0, 422, "invalid_value"},
    {"create: email unicode", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"\\u00e9@example.org\"}", 0, 422, "invalid_value"},
    {"create: status deleted", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"status\":\"deleted\"}", 0, 422,
     "invalid_value"},
    {"create: status upper case", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"status\":\"ACTIVE\"}", 0, 422, "invalid_value"},
    {"create: status SQL", "POST", "/customers", NULL, JSON,
     "{\"name\":\"a\",\"email\":\"a@example.org\",\"status\":\"active'--\"}", 0, 422,
     "invalid_value"},

    /* GET /customers/{id} */
    {"get: unknown id", "GET", "/customers/no-such-customer", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"get: tombstone", "GET", "/customers/{dcid}", NULL, NULL, NULL, 0, 404, "not_found"},
    {"get: SQL in id", "GET", "/customers/x%27%20OR%20%271%27%3D%271", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"get: SQL in id (unencoded quote)", "GET", "/customers/x';DROP%20TABLE%20customers;--", NULL,
     NULL, NULL, 0, 404, "not_found"},
    {"get: invalid UTF-8 in id", "GET", "/customers/%ff%fe", NULL, NULL, NULL, 0, 400,
     "bad_request"},
    {"get: NUL in id", "GET", "/customers/a%00b", NULL, NULL, NULL, 0, 400, "bad_request"},
    {"get: bad percent escape", "GET", "/customers/%zz", NULL, NULL, NULL, 0, 400, "bad_request"},
    {"get: truncated percent escape", "GET", "/customers/abc%4", NULL, NULL, NULL, 0, 400,
     "bad_request"},
    {"get: encoded slash", "GET", "/customers/a%2Fb", NULL, NULL, NULL, 0, 404, "not_found"},
    {"get: unicode id", "GET", "/customers/%E5%90%8D%E5%89%8D", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"get: trailing slash", "GET", "/customers/", NULL, NULL, NULL, 0, 404, "not_found"},
    {"get: extra segment", "GET", "/customers/{cid}/orders", NULL, NULL, NULL, 0, 404, "not_found"},
    {"get: dot segments", "GET", "/customers/../admin/snapshots", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"get: double slash", "GET", "//customers", NULL, NULL, NULL, 0, 404, "not_found"},

    /* GET /customers (bulk) */
    {"list: limit 0", "GET", "/customers?limit=0", NULL, NULL, NULL, 0, 400, "invalid_parameter"},
    {"list: limit negative", "GET", "/customers?limit=-1", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: limit too big", "GET", "/customers?limit=1001", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: limit huge", "GET", "/customers?limit=99999999999999999999999", NULL, NULL, NULL, 0,
     400, "invalid_parameter"},
    {"list: limit text", "GET", "/customers?limit=ten", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: limit empty", "GET", "/customers?limit=", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: limit with space", "GET", "/customers?limit=%2010", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: unknown parameter", "GET", "/customers?order=name", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: SQL parameter name", "GET", "/customers?1%3D1;--=x", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: cursor garbage", "GET", "/customers?cursor=garbage!", NULL, NULL, NULL, 0, 400,
     "invalid_cursor"},
    {"list: cursor empty", "GET", "/customers?cursor=", NULL, NULL, NULL, 0, 400, "invalid_cursor"},
    {"list: cursor not base64", "GET", "/customers?cursor=%E5%90%8D", NULL, NULL, NULL, 0, 400,
     "invalid_cursor"},
    {"list: cursor invalid UTF-8", "GET", "/customers?cursor=%ff", NULL, NULL, NULL, 0, 400,
     "bad_request"},
    {"list: cursor NUL", "GET", "/customers?cursor=a%00b", NULL, NULL, NULL, 0, 400, "bad_request"},
    /* base64url("c1:x:id"), base64url("c2:0:id"), base64url("c1:0:") */
    {"list: cursor bad number", "GET", "/customers?cursor=YzE6eDppZA", NULL, NULL, NULL, 0, 400,
     "invalid_cursor"},
    {"list: cursor wrong version", "GET", "/customers?cursor=YzI6MDppZA", NULL, NULL, NULL, 0, 400,
     "invalid_cursor"},
    {"list: cursor without id", "GET", "/customers?cursor=YzE6MDo", NULL, NULL, NULL, 0, 400,
     "invalid_cursor"},
    /* base64url("c1:99999999999999999999:id"): beyond int64 */
    {"list: cursor number overflow", "GET", "/customers?cursor=YzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk6aWQ",
     NULL, NULL, NULL, 0, 400, "invalid_cursor"},
    /* base64url("c1:0:x'OR'1'='1"): a well-formed cursor holding SQL, harmless */
    {"list: cursor with SQL id", "GET", "/customers?cursor=YzE6MDp4J09SJzEnPScx", NULL, NULL, NULL,
     0, 200, NULL},
    {"list: updated_since word", "GET", "/customers?updated_since=yesterday", NULL, NULL, NULL, 0,
     400, "invalid_parameter"},
    {"list: updated_since date only", "GET", "/customers?updated_since=2024-01-01", NULL, NULL,
     NULL, 0, 400, "invalid_parameter"},
    {"list: updated_since out of range", "GET", "/customers?updated_since=2024-13-45T25:61:61Z",
     NULL, NULL, NULL, 0, 400, "invalid_parameter"},
    {"list: updated_since year 99999", "GET", "/customers?updated_since=99999-01-01T00:00:00Z",
     NULL, NULL, NULL, 0, 400, "invalid_parameter"},
    {"list: updated_since 10 fraction digits", "GET",
     "/customers?updated_since=2024-01-01T00:00:00.1234567891Z", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: updated_since unencoded +", "GET", "/customers?updated_since=2024-01-01T00:00:00+01:00",
     NULL, NULL, NULL, 0, 400, "invalid_parameter"},
    {"list: updated_since SQL", "GET",
     "/customers?updated_since=2024-01-01T00:00:00Z%27;DROP%20TABLE%20customers;--", NULL, NULL,
     NULL, 0, 400, "invalid_parameter"},
    {"list: updated_since encoded +", "GET", "/customers?updated_since=2024-01-01T00:00:00%2B01:00",
     NULL, NULL, NULL, 0, 200, NULL},
    {"list: ids empty", "GET", "/customers?ids=", NULL, NULL, NULL, 0, 400, "invalid_parameter"},
    {"list: ids empty element", "GET", "/customers?ids=a,,b", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: ids trailing comma", "GET", "/customers?ids=a,", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: ids with paging", "GET", "/customers?ids=a&limit=5", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"list: ids with SQL", "GET", "/customers?ids=x%27)%20OR%20(%271%27=%271,y", NULL, NULL, NULL,
     0, 200, NULL},
    {"list: query invalid UTF-8", "GET", "/customers?ids=%c0%af", NULL, NULL, NULL, 0, 400,
     "bad_request"},

    /* GET /customers/checksums */
    {"checksums: buckets 0", "GET", "/customers/checksums?buckets=0", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"checksums: buckets too many", "GET", "/customers/checksums?buckets=4097", NULL, NULL, NULL, 0,
     400, "invalid_parameter"},
    {"checksums: buckets huge", "GET", "/customers/checksums?buckets=184467440737095516160", NULL,
     NULL, NULL, 0, 400, "invalid_parameter"},
    {"checksums: bucket out of range", "GET", "/customers/checksums?buckets=8&bucket=8", NULL, NULL,
     NULL, 0, 400, "invalid_parameter"},
    {"checksums: bucket negative", "GET", "/customers/checksums?bucket=-1", NULL, NULL, NULL, 0,
     400, "invalid_parameter"},
    {"checksums: bucket text", "GET", "/customers/checksums?bucket=first", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"checksums: unknown parameter", "GET", "/customers/checksums?all=1", NULL, NULL, NULL, 0, 400,
     "invalid_parameter"},
    {"checksums: valid", "GET", "/customers/checksums?buckets=8&bucket=7", NULL, NULL, NULL, 0, 200,
     NULL},

    /* PATCH /customers/{id} */
    {"patch: unknown customer", "PATCH", "/customers/no-such-customer", NULL, JSON,
     "{\"name\":\"x\"}", 0, 404, "not_found"},
    {"patch: tombstone", "PATCH", "/customers/{dcid}", NULL, JSON, "{\"name\":\"x\"}", 0, 404,
     "not_found"},
    {"patch: name number", "PATCH", "/customers/{cid}", NULL, JSON, "{\"name\":5}", 0, 422,
     "invalid_type"},
    {"patch: status deleted", "PATCH", "/customers/{cid}", NULL, JSON, "{\"status\":\"deleted\"}",
     0, 422, "invalid_value"},
    {"patch: unknown field", "PATCH", "/customers/{cid}", NULL, JSON, "{\"version\":99}", 0, 422,
     "unknown_field"},
    {"patch: bad email", "PATCH", "/customers/{cid}", NULL, JSON, "{\"email\":\"@\"}", 0, 422,
     "invalid_value"},
    {"patch: weak If-Match", "PATCH", "/customers/{cid}", "If-Match: W/\"1\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match text", "PATCH", "/customers/{cid}", "If-Match: \"abc\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match empty", "PATCH", "/customers/{cid}", "If-Match: \"\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match star", "PATCH", "/customers/{cid}", "If-Match: *\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match negative", "PATCH", "/customers/{cid}", "If-Match: \"-1\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match beyond uint64", "PATCH", "/customers/{cid}",
     "If-Match: \"99999999999999999999\"\r\n", JSON, "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match 23 digits", "PATCH", "/customers/{cid}",
     "If-Match: \"99999999999999999999999\"\r\n", JSON, "{\"name\":\"x\"}", 0, 400,
     "invalid_header"},
    {"patch: If-Match list", "PATCH", "/customers/{cid}", "If-Match: \"1\", \"2\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 400, "invalid_header"},
    {"patch: If-Match stale", "PATCH", "/customers/{cid}", "If-Match: \"999\"\r\n", JSON,
     "{\"name\":\"x\"}", 0, 409, "version_conflict"},

    /* DELETE /customers/{id} */
    {"delete: unknown customer", "DELETE", "/customers/no-such-customer", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"delete: tombstone again", "DELETE", "/customers/{dcid}", NULL, NULL, NULL, 0, 404,
     "not_found"},
    {"delete: reason number", "DELETE", "/customers/{cid}", NULL, JSON, "{\"reason\":5}", 0, 422,
     "invalid_type"},
    {"delete: unknown field", "DELETE", "/customers/{cid}", NULL, JSON, "{\"force\":true}", 0, 422,
     "unknown_field"},
    {"delete: reason with control", "DELETE", "/customers/{cid}", NULL, JSON,
     "{\"reason\":\"a\\u0000\"}", 0, 400, "invalid_json"},
    {"delete: text body", "DELETE", "/customers/{cid}", NULL, "text/plain", "bye", 0, 415,
     "unsupported_media_type"},
    {"delete: X-Actor invalid UTF-8", "DELETE", "/customers/{cid}", "X-Actor: \xff\xfe\r\n", NULL,
     NULL, 0, 400, "invalid_header"},
    {"delete: X-Actor control char", "DELETE", "/customers/{cid}", "X-Actor: a\x01z\r\n", NULL,
     NULL, 0, 400, "invalid_header"},
    {"delete: weak If-Match", "DELETE", "/customers/{cid}", "If-Match: W/\"1\"\r\n", NULL, NULL, 0,
     400, "invalid_header"},
    {"delete: If-Match stale", "DELETE", "/customers/{cid}", "If-Match: \"999\"\r\n", NULL, NULL, 0,
     409, "version_conflict"},

    /* POST /admin/snapshots: the bearer token */
    {"admin: no token", "POST", "/admin/snapshots", NULL, NULL, NULL, 0, 401, "unauthorized"},
    {"admin: wrong token", "POST", "/admin/snapshots", "Authorization: Bearer wrong\r\n", NULL,
     NULL, 0, 401, "unauthorized"},
    {"admin: token prefix", "POST", "/admin/snapshots", "Authorization: Bearer hostile\r\n", NULL,
     NULL, 0, 401, "unauthorized"},
    {"admin: token plus suffix", "POST", "/admin/snapshots", "Authorization: Bearer {tok}x\r\n",
     NULL, NULL, 0, 401, "unauthorized"},
    {"admin: empty bearer", "POST", "/admin/snapshots", "Authorization: Bearer \r\n", NULL, NULL, 0,
     401, "unauthorized"},
    {"admin: token without scheme", "POST", "/admin/snapshots", "Authorization: {tok}\r\n", NULL,
     NULL, 0, 401, "unauthorized"},
    {"admin: basic auth", "POST", "/admin/snapshots", "Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n",
     NULL, NULL, 0, 401, "unauthorized"},
    {"admin: token in query", "POST", "/admin/snapshots?token={tok}", NULL, NULL, NULL, 0, 401,
     "unauthorized"},
    {"admin: SQL token", "POST", "/admin/snapshots", "Authorization: Bearer ' OR '1'='1\r\n", NULL,
     NULL, 0, 401, "unauthorized"},
    {"admin: unknown field", "POST", "/admin/snapshots", "Authorization: Bearer {tok}\r\n", JSON,
     "{\"all\":true}", 0, 422, "unknown_field"},
    {"admin: valid", "POST", "/admin/snapshots", "Authorization: Bearer {tok}\r\n", NULL, NULL, 0,
     200, NULL},

    /* unknown routes and methods */
    {"route: root", "GET", "/", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: unknown", "GET", "/users", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: case differs", "GET", "/Customers", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: healthz slash", "GET", "/healthz/", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: orders here", "POST", "/orders", NULL, JSON, "{}", 0, 404, "not_found"},
    {"method: PUT /customers", "PUT", "/customers", NULL, JSON, "{}", 0, 405, "method_not_allowed"},
    {"method: DELETE /customers", "DELETE", "/customers", NULL, NULL, NULL, 0, 405,
     "method_not_allowed"},
    {"method: POST /customers/{id}", "POST", "/customers/{cid}", NULL, JSON, "{}", 0, 405,
     "method_not_allowed"},
    {"method: PUT /customers/{id}", "PUT", "/customers/{cid}", NULL, JSON, "{}", 0, 405,
     "method_not_allowed"},
    {"method: POST /healthz", "POST", "/healthz", NULL, NULL, NULL, 0, 405, "method_not_allowed"},
    {"method: GET /admin/snapshots", "GET", "/admin/snapshots", NULL, NULL, NULL, 0, 405,
     "method_not_allowed"},
    {"method: DELETE /metrics", "DELETE", "/metrics", NULL, NULL, NULL, 0, 405,
     "method_not_allowed"},
    {"method: OPTIONS", "OPTIONS", "/customers", NULL, NULL, NULL, 0, 405, "method_not_allowed"},
    {"method: TRACE", "TRACE", "/customers", NULL, NULL, NULL, 0, 405, "method_not_allowed"},
    {"method: made up", "BREW", "/customers", NULL, NULL, NULL, 0, 405, "method_not_allowed"},
    {"target: absolute form", "GET", "http://127.0.0.1/customers", NULL, NULL, NULL, 0, 400,
     "bad_request"},
    {"target: asterisk", "GET", "*", NULL, NULL, NULL, 0, 400, "bad_request"},
    {"target: relative", "GET", "customers", NULL, NULL, NULL, 0, 400, "bad_request"},
};

/* SQL-injection and exotic strings are data: stored and returned byte for byte, and
 * they reach the order service's view the same way. */
static void sql_strings_are_data(void **state) {
  static const char *const names[] = {
      "Robert'); DROP TABLE customers;--",
      "x' OR '1'='1",
      "\"; DELETE FROM warren_outbox; --",
      "$$; SELECT pg_sleep(10); $$",
      "\\x00\\'\\\"%_*?",
      "名前 Zoë 🎉 \u202e", /* RTL override: printable, kept */
  };
  static const char *const emails[] = {"o'reilly@example.org", "a+b%c@example.org",
                                       "x'--@example.org",     "{$}@example.org",
                                       "_%@example.org",       "~!#$&*=?^`|@example.org"};
  char ids[6][WR_UUID_STRLEN];
  for (int i = 0; i < 6; i++) {
    int st;
    json_t *c = customer_call("POST", "/customers",
                              json_pack("{s:s,s:s}", "name", names[i], "email", emails[i]), &st);
    assert_int_equal(st, 201);
    assert_string_equal(json_string_value(json_object_get(c, "name")), names[i]);
    assert_string_equal(json_string_value(json_object_get(c, "email")), emails[i]);
    snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(c, "id")));
    json_decref(c);
    char path[96];
    snprintf(path, sizeof path, "/customers/%s", ids[i]);
    c = customer_call("GET", path, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(c, "name")), names[i]);
    assert_string_equal(json_string_value(json_object_get(c, "email")), emails[i]);
    json_decref(c);
  }
  /* the tables are intact and hold the strings literally */
  PGconn *db = wt_pg_connect(env.e.customer_db);
  assert_true(wt_pg_scalar(db, "SELECT count(*) FROM customers") >= 8);
  const char *p[1] = {names[0]};
  PGresult *r =
      PQexecParams(db, "SELECT count(*) FROM customers WHERE name = $1", 1, NULL, p, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_string_equal(PQgetvalue(r, 0, 0), "1");
  PQclear(r);
  PQfinish(db);
  /* the order service's view gets the same bytes through the event */
  for (int i = 0; i < 6; i++) {
    char url[256];
    snprintf(url, sizeof url, "%s/customers/%s", env.e.order.url, ids[i]);
    int64_t end = wt_now_ms() + 30000;
    const char *got = NULL;
    json_t *v = NULL;
    while (wt_now_ms() < end) {
      int st = 0;
      wr_err err = {0};
      json_decref(v);
      v = NULL;
      if (dk_http("GET", url, NULL, NULL, &st, &v, &err) == 0 && st == 200) {
        got = json_string_value(json_object_get(v, "name"));
        break;
      }
      usleep(50000);
    }
    assert_non_null(got);
    assert_string_equal(got, names[i]);
    assert_string_equal(json_string_value(json_object_get(v, "email")), emails[i]);
    json_decref(v);
  }
}

/* Boundaries that must be accepted: 200 four-byte characters, the longest e-mail. */
static void boundaries_accepted(void **state) {
  hx_failures = 0;
  char name[200 * 4 + 1], email[260];
  for (int i = 0; i < 200; i++)
    memcpy(name + 4 * i, "\xf0\x9f\x8e\x89", 4); /* U+1F389 */
  name[800] = '\0';
  memset(email, 'a', 64);
  email[64] = '@';
  size_t o = 65;
  while (o < 254 - 4) { /* labels of up to 63 characters */
    size_t l = 254 - 4 - o < 60 ? 254 - 4 - o : 60;
    memset(email + o, 'b', l);
    o += l;
    if (o < 254 - 4)
      email[o++] = '.';
  }
  memcpy(email + o, ".org", 5);
  assert_int_equal(strlen(email), 254);
  int st;
  json_t *c = customer_call("POST", "/customers",
                            json_pack("{s:s,s:s}", "name", name, "email", email), &st);
  assert_int_equal(st, 201);
  assert_string_equal(json_string_value(json_object_get(c, "name")), name);
  json_decref(c);
  /* one more character, one more byte: refused */
  char name2[805];
  memcpy(name2, name, 800);
  memcpy(name2 + 800, "x", 2);
  hx_resp r;
  json_t *b = json_pack("{s:s,s:s}", "name", name2, "email", "a@example.org");
  char *txt = json_dumps(b, JSON_COMPACT);
  hx_send(env.e.customer.port, "POST", "/customers", NULL, JSON, txt, strlen(txt), &r);
  hx_expect("create: 201 characters", &r, 422, "invalid_value");
  hx_resp_free(&r);
  free(txt);
  json_decref(b);
  char email2[262];
  snprintf(email2, sizeof email2, "a%s", email);
  b = json_pack("{s:s,s:s}", "name", "a", "email", email2);
  txt = json_dumps(b, JSON_COMPACT);
  hx_send(env.e.customer.port, "POST", "/customers", NULL, JSON, txt, strlen(txt), &r);
  hx_expect("create: 255-byte email", &r, 422, "invalid_value");
  hx_resp_free(&r);
  free(txt);
  json_decref(b);
  /* ids: 500 accepted, 501 refused; a 65-byte id refused */
  size_t cap = 501 * 40 + 64;
  char *q = malloc(cap);
  size_t n = (size_t)snprintf(q, cap, "/customers?ids=");
  for (int i = 0; i < 501; i++)
    n += (size_t)snprintf(q + n, cap - n, "%sid%d", i ? "," : "", i);
  hx_send(env.e.customer.port, "GET", q, NULL, NULL, NULL, 0, &r);
  hx_expect("list: 501 ids", &r, 400, "invalid_parameter");
  hx_resp_free(&r);
  *strrchr(q, ',') = '\0';
  hx_send(env.e.customer.port, "GET", q, NULL, NULL, NULL, 0, &r);
  hx_expect("list: 500 ids", &r, 200, NULL);
  hx_resp_free(&r);
  char longid[128];
  memset(longid, 'x', 65);
  longid[65] = '\0';
  snprintf(q, cap, "/customers?ids=%s", longid);
  hx_send(env.e.customer.port, "GET", q, NULL, NULL, NULL, 0, &r);
  hx_expect("list: 65-byte id", &r, 400, "invalid_parameter");
  hx_resp_free(&r);
  free(q);
  /* an X-Actor of 201 bytes, a reason of 501 characters */
  char hdr[300];
  memset(hdr, 'a', 201);
  hdr[201] = '\0';
  char extra[320], path[96];
  snprintf(extra, sizeof extra, "X-Actor: %s\r\n", hdr);
  snprintf(path, sizeof path, "/customers/%s", cid);
  hx_send(env.e.customer.port, "DELETE", path, extra, NULL, NULL, 0, &r);
  hx_expect("delete: 201-byte X-Actor", &r, 400, "invalid_header");
  hx_resp_free(&r);
  char reason[520];
  memset(reason, 'r', 501);
  reason[501] = '\0';
  b = json_pack("{s:s}", "reason", reason);
  txt = json_dumps(b, JSON_COMPACT);
  hx_send(env.e.customer.port, "DELETE", path, NULL, JSON, txt, strlen(txt), &r);
  hx_expect("delete: 501-character reason", &r, 422, "invalid_value");
  hx_resp_free(&r);
  free(txt);
  json_decref(b);
  assert_int_equal(hx_failures, 0);
}

static void customer_corpus(void **state) {
  hx_failures = 0;
  unsigned port = env.e.customer.port;
  run_cases(port, CUSTOMER_CASES, sizeof CUSTOMER_CASES / sizeof CUSTOMER_CASES[0]);
  bad_json_on(port, "POST", "/customers", NULL, false);
  bad_json_on(port, "PATCH", "/customers/{cid}", NULL, false);
  bad_json_on(port, "DELETE", "/customers/{cid}", NULL, true);
  char auth[128];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", env.token);
  bad_json_on(port, "POST", "/admin/snapshots", auth, true);
  /* the live customer survived everything above */
  int st;
  char path[96];
  snprintf(path, sizeof path, "/customers/%s", cid);
  json_t *c = customer_call("GET", path, NULL, &st);
  assert_int_equal(st, 200);
  assert_string_equal(json_string_value(json_object_get(c, "name")), "Live");
  json_decref(c);
  hx_assert_alive(&env.e.customer);
  assert_int_equal(hx_failures, 0);
}

/* ---- order service -------------------------------------------------------------------- */

static const hcase ORDER_CASES[] = {
    {"order: empty object", "POST", "/orders", NULL, JSON, "{}", 0, 422, "missing_field"},
    {"order: customer_id number", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":7,\"amount_cents\":100,\"currency\":\"EUR\"}", 0, 422, "invalid_type"},
    {"order: customer_id too long", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
     "\"amount_cents\":100,\"currency\":\"EUR\"}",
     0, 422, "invalid_value"},
    {"order: customer_id control char", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"a\\u001bb\",\"amount_cents\":100,\"currency\":\"EUR\"}", 0, 422,
     "invalid_value"},
    {"order: amount string", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":\"100\",\"currency\":\"EUR\"}", 0, 422,
     "invalid_type"},
    {"order: amount fraction", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":1.5,\"currency\":\"EUR\"}", 0, 422,
     "invalid_type"},
    {"order: amount exponent", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":1e30,\"currency\":\"EUR\"}", 0, 422,
     "invalid_type"},
    {"order: amount zero", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":0,\"currency\":\"EUR\"}", 0, 422,
     "invalid_value"},
    {"order: amount negative", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":-100,\"currency\":\"EUR\"}", 0, 422,
     "invalid_value"},
    {"order: amount above the limit", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":1000000000001,\"currency\":\"EUR\"}", 0, 422,
     "invalid_value"},
    {"order: amount int64 max", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":9223372036854775807,\"currency\":\"EUR\"}", 0,
     422, "invalid_value"},
    {"order: amount beyond int64", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":9223372036854775808,\"currency\":\"EUR\"}", 0,
     400, "invalid_json"},
    {"order: amount int64 min", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":-9223372036854775808,\"currency\":\"EUR\"}", 0,
     422, "invalid_value"},
    {"order: currency lower case", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":\"eur\"}", 0, 422,
     "invalid_value"},
    {"order: currency four letters", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":\"EURO\"}", 0, 422,
     "invalid_value"},
    {"order: currency unicode", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":\"E\\u00dcR\"}", 0, 422,
     "invalid_value"},
    {"order: currency number", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":978}", 0, 422, "invalid_type"},
    {"order: unknown field", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":\"EUR\",\"status\":\"paid\"}", 0,
     422, "unknown_field"},
    {"order: SQL customer", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"x' OR '1'='1\",\"amount_cents\":100,\"currency\":\"EUR\"}", 0, 422,
     "customer_unknown"},
    {"order: deleted customer", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{dcid}\",\"amount_cents\":100,\"currency\":\"EUR\"}", 0, 422,
     "customer_inactive"},
    {"order: valid", "POST", "/orders", NULL, JSON,
     "{\"customer_id\":\"{cid}\",\"amount_cents\":100,\"currency\":\"EUR\"}", 0, 201, NULL},

    {"order get: unknown", "GET", "/orders/no-such-order", NULL, NULL, NULL, 0, 404, "not_found"},
    {"order get: SQL", "GET", "/orders/%27%20OR%201=1--", NULL, NULL, NULL, 0, 404, "not_found"},
    {"order get: invalid UTF-8", "GET", "/orders/%80", NULL, NULL, NULL, 0, 400, "bad_request"},
    {"order get: NUL", "GET", "/orders/%00", NULL, NULL, NULL, 0, 400, "bad_request"},
    {"view: unknown", "GET", "/customers/no-such-customer", NULL, NULL, NULL, 0, 404, "not_found"},
    {"view: SQL", "GET", "/customers/x%27;DELETE%20FROM%20customer_view;--", NULL, NULL, NULL, 0,
     404, "not_found"},
    {"view: long id", "GET",
     "/customers/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NULL, NULL, NULL, 0, 404, "not_found"},

    {"admin: no token", "POST", "/admin/reconcile", NULL, NULL, NULL, 0, 401, "unauthorized"},
    {"admin: wrong token", "POST", "/admin/reconcile", "Authorization: Bearer nope\r\n", NULL, NULL,
     0, 401, "unauthorized"},
    {"admin: token twice", "POST", "/admin/reconcile", "Authorization: Bearer {tok} {tok}\r\n",
     NULL, NULL, 0, 401, "unauthorized"},
    {"admin: unknown field", "POST", "/admin/reconcile", "Authorization: Bearer {tok}\r\n", JSON,
     "{\"dry_run\":true}", 0, 422, "unknown_field"},
    {"admin: valid", "POST", "/admin/reconcile", "Authorization: Bearer {tok}\r\n", NULL, NULL, 0,
     200, NULL},

    {"route: root", "GET", "/", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: customers list here", "GET", "/customers", NULL, NULL, NULL, 0, 404, "not_found"},
    {"route: snapshots here", "POST", "/admin/snapshots", NULL, NULL, NULL, 0, 404, "not_found"},
    {"method: GET /orders", "GET", "/orders", NULL, NULL, NULL, 0, 405, "method_not_allowed"},
    {"method: PATCH /orders/{id}", "PATCH", "/orders/x", NULL, JSON, "{}", 0, 405,
     "method_not_allowed"},
    {"method: DELETE /customers/{id}", "DELETE", "/customers/{cid}", NULL, NULL, NULL, 0, 405,
     "method_not_allowed"},
    {"method: GET /admin/reconcile", "GET", "/admin/reconcile", NULL, NULL, NULL, 0, 405,
     "method_not_allowed"},
    {"target: absolute form", "GET", "http://127.0.0.1/orders/x", NULL, NULL, NULL, 0, 400,
     "bad_request"},
};

static void order_corpus(void **state) {
  hx_failures = 0;
  /* the order service knows both customers once their events arrived */
  char url[256];
  snprintf(url, sizeof url, "%s/customers/%s", env.e.order.url, dcid);
  int64_t end = wt_now_ms() + 30000;
  for (;;) {
    int st = 0;
    json_t *v = NULL;
    wr_err err = {0};
    bool done = dk_http("GET", url, NULL, NULL, &st, &v, &err) == 0 && st == 200 &&
                !strcmp(json_string_value(json_object_get(v, "status")), "deleted");
    json_decref(v);
    if (done)
      break;
    if (wt_now_ms() > end)
      fail_msg("the order view never saw the deleted customer");
    usleep(50000);
  }
  unsigned port = env.e.order.port;
  run_cases(port, ORDER_CASES, sizeof ORDER_CASES / sizeof ORDER_CASES[0]);
  bad_json_on(port, "POST", "/orders", NULL, false);
  char auth[128];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", env.token);
  bad_json_on(port, "POST", "/admin/reconcile", auth, true);
  hx_assert_alive(&env.e.order);
  assert_int_equal(hx_failures, 0);
}

/* Without a configured token, admin routes are closed: 403 whatever is sent. */
static void admin_without_token(void **state) {
  hx_failures = 0;
  dk_proc p;
  hx_start_customer(&env, &p, NULL);
  static const char *const auths[] = {NULL, "Authorization: Bearer \r\n",
                                      "Authorization: Bearer anything\r\n"};
  for (int i = 0; i < 3; i++) {
    hx_resp r;
    hx_send(p.port, "POST", "/admin/snapshots", auths[i], NULL, NULL, 0, &r);
    hx_expect("admin without a configured token", &r, 403, "forbidden");
    hx_resp_free(&r);
  }
  hx_assert_alive(&p);
  hx_stop_clean(&p);
  assert_int_equal(hx_failures, 0);
}

static bool line_has(const char *l, size_t n, const char *s) {
  return memmem(l, n, s, strlen(s)) != NULL;
}

/* Nothing above was a server error: no error line in either log, and no 5xx counted
 * in the metrics (but /readyz's 503 while starting). */
static void no_server_errors(void **state) {
  hx_assert_alive(&env.e.customer);
  hx_assert_alive(&env.e.order);
  int ce = hx_log_count(env.e.customer.log_path, "level=error");
  int oe = hx_log_count(env.e.order.log_path, "level=error");
  if (ce || oe) {
    dk_tail(env.e.customer.log_path, 20);
    dk_tail(env.e.order.log_path, 20);
  }
  assert_int_equal(ce, 0);
  assert_int_equal(oe, 0);
  static const char *const services[2] = {"customer", "order"};
  for (int s = 0; s < 2; s++) {
    hx_resp r;
    hx_send(s ? env.e.order.port : env.e.customer.port, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    /* /readyz answers 503 while a service starts: that is its job, not an error */
    int fives = 0;
    for (const char *l = r.body; l && *l;) {
      const char *nl = strchr(l, '\n');
      size_t n = nl ? (size_t)(nl - l) : strlen(l);
      if (line_has(l, n, "warren_http_requests_total{") && line_has(l, n, "status=\"5") &&
          !line_has(l, n, "route=\"/readyz\"")) {
        printf("%s: %.*s\n", services[s], (int)n, l);
        fives++;
      }
      l = nl ? nl + 1 : NULL;
    }
    assert_int_equal(fives, 0);
    hx_resp_free(&r);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(customer_corpus),     cmocka_unit_test(sql_strings_are_data),
      cmocka_unit_test(boundaries_accepted), cmocka_unit_test(order_corpus),
      cmocka_unit_test(admin_without_token), cmocka_unit_test(no_server_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
