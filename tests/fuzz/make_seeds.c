/* make_seeds.c: writes the seed corpora of the fuzz targets whose inputs are easier to
 * build than to type: protobuf events, JSON of every field kind, cursors, AMQP header
 * tables; plus the hand-written HTTP requests and responses and parser inputs, so that
 * every seed has one source. Run by tests/fuzz/make-seeds (see docs/FUZZING.md):
 *
 *   fuzz_make_seeds OUTDIR      writes OUTDIR/<target>/<name> (existing files replaced)
 *
 *   fuzz_make_seeds --strip-request IN OUT   a CodeGeneratorRequest without
 *                              google/protobuf/descriptor.proto (see strip_request)
 *
 * Seeds are small and meaningful: each is a real, valid input of its target (plus a few
 * classic near-misses), prefixed with the selector byte the target reads first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <amqp.h>
#include <warren/json.h>
#include <warren/schema.h>

#include "cursor.h"
#include "google/protobuf/compiler/plugin.pb-c.h"
#include "customer/v1/customer.warren.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "jsontest/v1/jsontest.pb-c.h"
#include "jsontest/v1/legacy.pb-c.h"
#include "order/v1/order.warren.h"
#include "testev_schema.h"

static const char *outdir;
static int failures;

static void put(const char *target, const char *name, uint8_t sel, const void *data, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", outdir, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "make_seeds: mkdir %s: %s\n", path, strerror(errno));
    failures++;
    return;
  }
  snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(&sel, 1, 1, f) != 1 || (len && fwrite(data, 1, len, f) != len)) {
    fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
    failures++;
  }
  if (f)
    fclose(f);
}

/* A seed without a selector byte (targets that read the whole input as-is). */
static void put_raw(const char *target, const char *name, const void *data, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", outdir, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    failures++;
  snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len)) {
    fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
    failures++;
  }
  if (f)
    fclose(f);
}

static void put_str(const char *target, const char *name, uint8_t sel, const char *s) {
  put(target, name, sel, s, strlen(s));
}

/* ---- events (fuzz_event: selector = index into its type table) ------------------- */

static Google__Protobuf__Timestamp ts_2024 = {
    PROTOBUF_C_MESSAGE_INIT(&google__protobuf__timestamp__descriptor), 1706702400, 250000000};

static void meta_fill(Warren__V1__EventMeta *m, const char *type, const char *agg, const char *id,
                      uint64_t version) {
  warren__v1__event_meta__init(m);
  m->event_id = "018d5f3e-7a2b-7c3d-8e4f-5a6b7c8d9e0f";
  m->event_type = (char *)type;
  m->aggregate_type = (char *)agg;
  m->aggregate_id = (char *)id;
  m->version = version;
  m->occurred_at = &ts_2024;
  m->correlation_id = "req-7f3a9c";
  m->causation_id = "";
  m->source_service = "customer";
  m->source_instance = "customer-1";
}

static void put_msg(const char *target, const char *name, uint8_t sel, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(n + 16);
  protobuf_c_message_pack(m, b);
  put(target, name, sel, b, n);
  free(b);
}

static void event_seeds(void) {
  Warren__V1__EventMeta meta;
  /* testev: 0 created, 1 updated, 2 deleted */
  Testev__V1__Widget w = TESTEV__V1__WIDGET__INIT;
  w.id = "w-42";
  w.name = "sprocket \xc3\xa9";
  w.count = -3;
  Testev__V1__WidgetCreated wc = TESTEV__V1__WIDGET_CREATED__INIT;
  meta_fill(&meta, "testev.v1.WidgetCreated", "widget", "w-42", 1);
  wc.meta = &meta;
  wc.data = &w;
  put_msg("event", "testev-created", 0, &wc.base);
  Testev__V1__WidgetUpdated wu = TESTEV__V1__WIDGET_UPDATED__INIT;
  meta_fill(&meta, "testev.v1.WidgetUpdated", "widget", "w-42", 2);
  wu.meta = &meta;
  wu.data = &w;
  put_msg("event", "testev-updated", 1, &wu.base);
  Testev__V1__WidgetDeleted wd = TESTEV__V1__WIDGET_DELETED__INIT;
  meta_fill(&meta, "testev.v1.WidgetDeleted", "widget", "w-42", 3);
  wd.meta = &meta;
  wd.reason = "gdpr";
  put_msg("event", "testev-deleted", 2, &wd.base);

  /* customer.v1: 3 created, 4 updated, 5 deleted, 6 snapshot */
  Customer__V1__Customer c = CUSTOMER__V1__CUSTOMER__INIT;
  c.id = "0b7e3c1a-cus";
  c.name = "Ada Lovelace";
  c.email = "ada@example.com";
  c.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  c.created_at = &ts_2024;
  c.updated_at = &ts_2024;
  c.version = 4;
  Customer__V1__CustomerCreated cc = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", c.id, 1);
  cc.meta = &meta;
  cc.data = &c;
  put_msg("event", "customer-created", 3, &cc.base);
  Customer__V1__FieldChange ch1 = CUSTOMER__V1__FIELD_CHANGE__INIT, ch2 = ch1;
  ch1.field = "email";
  ch1.old_value = "ada@old.example";
  ch1.new_value = "ada@example.com";
  ch2.field = "status";
  ch2.old_value = "CUSTOMER_STATUS_PENDING";
  ch2.new_value = "CUSTOMER_STATUS_ACTIVE";
  Customer__V1__FieldChange *changes[] = {&ch1, &ch2};
  Customer__V1__CustomerUpdated cu = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  meta_fill(&meta, "customer.v1.CustomerUpdated", "customer", c.id, 4);
  cu.meta = &meta;
  cu.data = &c;
  cu.n_changes = 2;
  cu.changes = changes;
  put_msg("event", "customer-updated", 4, &cu.base);
  Customer__V1__CustomerDeleted cd = CUSTOMER__V1__CUSTOMER_DELETED__INIT;
  meta_fill(&meta, "customer.v1.CustomerDeleted", "customer", c.id, 5);
  cd.meta = &meta;
  cd.reason = "closed";
  cd.deleted_by = "admin";
  put_msg("event", "customer-deleted", 5, &cd.base);
  Customer__V1__CustomerSnapshot cs = CUSTOMER__V1__CUSTOMER_SNAPSHOT__INIT;
  meta_fill(&meta, "customer.v1.CustomerSnapshot", "customer", c.id, 4);
  cs.meta = &meta;
  cs.data = &c;
  put_msg("event", "customer-snapshot", 6, &cs.base);

  /* order.v1: 7 */
  Order__V1__Order o = ORDER__V1__ORDER__INIT;
  o.id = "ord-1";
  o.customer_id = c.id;
  o.amount_cents = 129900;
  o.currency = "EUR";
  o.status = ORDER__V1__ORDER_STATUS__ORDER_STATUS_PLACED;
  o.created_at = &ts_2024;
  Order__V1__OrderPlaced op = ORDER__V1__ORDER_PLACED__INIT;
  meta_fill(&meta, "order.v1.OrderPlaced", "order", "ord-1", 1);
  op.meta = &meta;
  op.data = &o;
  put_msg("event", "order-placed", 7, &op.base);

  /* near misses: version 0, aggregate mismatch, max version + 1 */
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", c.id, 0);
  cc.meta = &meta;
  put_msg("event", "customer-created-version0", 3, &cc.base);
  meta_fill(&meta, "customer.v1.CustomerCreated", "order", c.id, 1);
  put_msg("event", "customer-created-wrong-aggregate", 3, &cc.base);
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", c.id, (uint64_t)INT64_MAX + 1);
  put_msg("event", "customer-created-version-too-big", 3, &cc.base);

  /* unknown fields (a newer producer): accepted */
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", c.id, 1);
  size_t n = protobuf_c_message_get_packed_size(&cc.base);
  uint8_t *b = malloc(n + 32);
  protobuf_c_message_pack(&cc.base, b);
  static const uint8_t extra[] = {0xa2, 0x06, 0x03, 'n', 'e', 'w', /* field 100, bytes */
                                  0xa8, 0x06, 0x07,                /* field 101, varint */
                                  0xb5, 0x06, 1,    2,   3,   4};  /* field 102, fixed32 */
  memcpy(b + n, extra, sizeof extra);
  put("event", "customer-created-unknown-fields", 3, b, n + sizeof extra);
  free(b);

  /* DeepEvent (8): a recursive payload at depth 60 (accepted) */
  Jsontest__V1__Recursive nodes[60];
  for (int i = 0; i < 60; i++) {
    jsontest__v1__recursive__init(&nodes[i]);
    nodes[i].depth = i;
    nodes[i].child = i + 1 < 60 ? &nodes[i + 1] : NULL;
  }
  Jsontest__V1__DeepEvent de = JSONTEST__V1__DEEP_EVENT__INIT;
  meta_fill(&meta, "jsontest.v1.DeepEvent", "deep", "d-1", 1);
  char *tags[] = {"alpha", "\xe2\x82\xac", ""};
  de.meta = &meta;
  de.tree = &nodes[0];
  de.n_tags = 3;
  de.tags = tags;
  put_msg("event", "deep-event", 8, &de.base);
}

/* ---- JSON (fuzz_json: selector low 4 bits = type index, bit 4 = ignore unknown) --- */

static void put_json(const char *name, uint8_t sel, const ProtobufCMessage *m, unsigned flags) {
  char *s = NULL;
  wr_err e;
  if (wr_json_encode_string(m, flags, &s, &e) != 0) {
    fprintf(stderr, "make_seeds: json %s: %s\n", name, e.msg);
    failures++;
    return;
  }
  put_str("json", name, sel, s);
  free(s);
}

static void json_seeds(void) {
  Jsontest__V1__Inner in = JSONTEST__V1__INNER__INIT;
  in.a = 7;
  in.s = "inner";
  Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
  s.f_int32 = -42;
  s.f_int64 = INT64_MIN;
  s.f_uint32 = UINT32_MAX;
  s.f_uint64 = UINT64_MAX;
  s.f_sint32 = -1;
  s.f_sint64 = INT64_MAX;
  s.f_fixed32 = 1;
  s.f_fixed64 = 2;
  s.f_sfixed32 = -3;
  s.f_sfixed64 = -4;
  s.f_float = 0.1f;
  s.f_double = 1e300;
  s.f_bool = 1;
  s.f_string = "h\xc3\xa9llo \"quoted\" \\ \t";
  s.f_bytes = (ProtobufCBinaryData){5, (uint8_t *)"\x00\xff\xfe\x01z"};
  s.f_enum = JSONTEST__V1__COLOR__COLOR_NEGATIVE;
  s.f_inner = &in;
  s.f_ts = &ts_2024;
  put_json("scalars", 0, &s.base, 0);
  put_json("scalars-defaults", 0, &s.base, WR_JSON_EMIT_DEFAULTS);
  put_str("json", "scalars-special-floats", 0,
          "{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\",\"fInt64\":1e3,\"fUint64\":"
          "\"18446744073709551615\","
          "\"fBytes\":\"-_8\",\"fEnum\":2,\"f_int32\":null}");
  put_str("json", "scalars-unknown-ignored", 16, "{\"nope\":{\"x\":[1,2]},\"fBool\":true}");

  Jsontest__V1__Repeated r = JSONTEST__V1__REPEATED__INIT;
  int32_t i32[] = {1, -2, 3};
  int64_t i64[] = {INT64_MIN, 0};
  float fl[] = {1.5f, -0.0f};
  char *strs[] = {"a", "", "\xf0\x9f\x90\x87"};
  Jsontest__V1__Inner *inners[] = {&in, &in};
  Google__Protobuf__Timestamp *tss[] = {&ts_2024};
  protobuf_c_boolean bools[] = {1, 0};
  r.n_r_int32 = 3;
  r.r_int32 = i32;
  r.n_r_int64 = 2;
  r.r_int64 = i64;
  r.n_r_float = 2;
  r.r_float = fl;
  r.n_r_string = 3;
  r.r_string = strs;
  r.n_r_inner = 2;
  r.r_inner = inners;
  r.n_r_ts = 1;
  r.r_ts = tss;
  r.n_r_bool = 2;
  r.r_bool = bools;
  put_json("repeated", 1, &r.base, 0);

  put_str("json", "maps", 2,
          "{\"mStringString\":{\"k\":\"v\",\"\":\"empty\"},\"mInt32Inner\":{\"-3\":{\"a\":1}},"
          "\"mInt64Int64\":{\"9223372036854775807\":\"-1\"},\"mUint32Enum\":{\"4\":\"COLOR_RED\"},"
          "\"mUint64Bytes\":{\"1\":\"AAE=\"},\"mSint32Double\":{\"-1\":2.5},"
          "\"mSint64Bool\":{\"0\":true},\"mFixed32Float\":{\"7\":\"Infinity\"},"
          "\"mFixed64Uint64\":{\"8\":\"9\"},\"mSfixed32Sint64\":{\"-9\":\"10\"},"
          "\"mSfixed64String\":{\"11\":\"x\"},\"mBoolInt32\":{\"true\":1,\"false\":0},"
          "\"mStringTs\":{\"t\":\"2024-01-31T12:00:00.250Z\"}}");
  put_str("json", "oneofs", 3, "{\"oInner\":{\"a\":5,\"s\":\"x\"},\"plain\":\"p\",\"xDouble\":0}");
  put_str("json", "oneofs-ts", 3, "{\"oTs\":\"1970-01-01T00:00:00Z\",\"xBool\":false}");
  put_str("json", "recursive", 4,
          "{\"child\":{\"child\":{\"depth\":3,\"children\":[{\"depth\":4},{}]},\"depth\":2},"
          "\"depth\":1}");
  put_str("json", "names", 5,
          "{\"fooBar\":1,\"Leading\":2,\"trailing\":3,\"aB\":4,\"x1y\":5,\"FooBaz\":6,"
          "\"renamed\":7,\"already_lowerCamel\":8}");
  put_str("json", "deep-event", 6,
          "{\"meta\":{\"eventId\":\"018d5f3e-7a2b-7c3d-8e4f-5a6b7c8d9e0f\",\"eventType\":"
          "\"jsontest.v1.DeepEvent\",\"aggregateType\":\"deep\",\"aggregateId\":\"d\","
          "\"version\":\"1\",\"occurredAt\":\"2024-01-31T12:00:00Z\"},"
          "\"tree\":{\"child\":{\"child\":{}}},\"tags\":[\"a\",\"b\"]}");
  put_str("json", "legacy", 7,
          "{\"id\":5,\"name\":\"x\",\"count\":\"12\",\"note\":\"n\",\"blob\":\"AA==\","
          "\"flag\":false,\"child\":{\"key\":\"k\"},\"values\":[1,2,3]}");
  put_str("json", "legacy-holder", 8, "{\"child\":{\"key\":\"k\"}}");
  put_str("json", "timestamp", 9, "\"2024-01-31T12:00:00.123456789+01:00\"");

  Warren__V1__EventMeta meta;
  Customer__V1__Customer c = CUSTOMER__V1__CUSTOMER__INIT;
  c.id = "cus-1";
  c.name = "Grace Hopper";
  c.email = "grace@example.com";
  c.status = CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED;
  c.created_at = &ts_2024;
  c.updated_at = &ts_2024;
  c.version = 9;
  Customer__V1__CustomerCreated cc = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", "cus-1", 9);
  cc.meta = &meta;
  cc.data = &c;
  put_json("customer-created", 10, &cc.base, 0);
  Customer__V1__FieldChange ch = CUSTOMER__V1__FIELD_CHANGE__INIT;
  ch.field = "name";
  ch.old_value = "G. Hopper";
  ch.new_value = "Grace Hopper";
  Customer__V1__FieldChange *chs[] = {&ch};
  Customer__V1__CustomerUpdated cu = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  meta_fill(&meta, "customer.v1.CustomerUpdated", "customer", "cus-1", 9);
  cu.meta = &meta;
  cu.data = &c;
  cu.n_changes = 1;
  cu.changes = chs;
  put_json("customer-updated", 11, &cu.base, WR_JSON_EMIT_DEFAULTS);
  Customer__V1__CustomerDeleted cd = CUSTOMER__V1__CUSTOMER_DELETED__INIT;
  meta_fill(&meta, "customer.v1.CustomerDeleted", "customer", "cus-1", 10);
  cd.meta = &meta;
  cd.reason = "request";
  put_json("customer-deleted", 12, &cd.base, 0);
  Order__V1__Order o = ORDER__V1__ORDER__INIT;
  o.id = "ord-9";
  o.customer_id = "cus-1";
  o.amount_cents = -5;
  o.currency = "EUR";
  o.created_at = &ts_2024;
  Order__V1__OrderPlaced op = ORDER__V1__ORDER_PLACED__INIT;
  meta_fill(&meta, "order.v1.OrderPlaced", "order", "ord-9", 1);
  op.meta = &meta;
  op.data = &o;
  put_json("order-placed", 13, &op.base, 0);
  Testev__V1__Widget w = TESTEV__V1__WIDGET__INIT;
  w.id = "w";
  w.count = 3;
  Testev__V1__WidgetCreated wc = TESTEV__V1__WIDGET_CREATED__INIT;
  meta_fill(&meta, "testev.v1.WidgetCreated", "widget", "w", 1);
  wc.meta = &meta;
  wc.data = &w;
  put_json("widget-created", 14, &wc.base, 0);
  meta_fill(&meta, "customer.v1.CustomerCreated", "customer", "cus-1", UINT64_MAX);
  put_json("event-meta", 15, &meta.base, WR_JSON_EMIT_DEFAULTS);
  put_str("json", "not-json", 10, "{\"meta\": [1, 2,, }");
  put_str("json", "duplicate-key", 10, "{\"meta\":{},\"meta\":{}}");
}

/* ---- cursors ----------------------------------------------------------------------- */

static void cursor_seeds(void) {
  struct {
    int64_t us;
    const char *id;
  } cs[] = {
      {1706702400250000, "0b7e3c1a-6f2d-7c3d-8e4f-5a6b7c8d9e0f"},
      {-62135596800000000, "a"},
      {INT64_MAX, "cus_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    cursor c = {.updated_us = cs[i].us};
    snprintf(c.id, sizeof c.id, "%s", cs[i].id);
    char out[CURSOR_MAX + 1];
    if (cursor_encode(&c, out, sizeof out) != 0) {
      fprintf(stderr, "make_seeds: cursor %zu does not encode\n", i);
      failures++;
      continue;
    }
    char name[32];
    snprintf(name, sizeof name, "cursor-%zu", i);
    put_raw("cursor", name, out, strlen(out));
  }
  put_raw("cursor", "not-base64", "c1:12:abc", 9);
}

/* ---- HTTP parsers (selector: 0 pct, 1 pct+plus, 2 corr, 3 content type, 4 addr, 5 url;
 * byte 1: host buffer size of the URL parser) ----------------------------------------- */

static void put_parser(const char *name, uint8_t which, uint8_t hostsz, const char *s) {
  size_t n = strlen(s);
  uint8_t *b = malloc(n + 1);
  b[0] = hostsz;
  memcpy(b + 1, s, n);
  put("http_parsers", name, which, b, n + 1);
  free(b);
}

static void parser_seeds(void) {
  put_parser("pct-path", 0, 0, "/customers/caf%C3%A9%2Fx");
  put_parser("pct-query", 1, 0, "after=MTcwNjcw+x%2B01%3A00&limit=10&flag");
  put_parser("pct-bad", 0, 0, "%zz%0");
  put_parser("corr", 2, 0, "req-7f3a9c.01:abc_DEF");
  put_parser("content-type", 3, 0, "Application/JSON ; charset=\"UTF-8\"; q=1");
  put_parser("content-type-bad", 3, 0, "application/json; charset=latin1");
  put_parser("addr-v4", 4, 0, "127.0.0.1:8081");
  put_parser("addr-any", 4, 0, ":0");
  put_parser("addr-v6", 4, 0, "[::1]:65535");
  put_parser("url", 5, 255, "http://localhost:8081/customers?after=x&limit=5#frag");
  put_parser("url-v6", 5, 64, "http://[::1]:80/customers/checksums");
  put_parser("url-query-only", 5, 16, "HTTP://example.com?x=1");
}

/* ---- HTTP requests (fuzz_http_server: raw bytes on the wire) ------------------------ */

static void server_seeds(void) {
  static const struct {
    const char *name, *req;
  } reqs[] = {
      {"get-param", "GET /things/caf%C3%A9?limit=10&after=abc%3D&flag HTTP/1.1\r\n"
                    "Host: localhost\r\nX-Correlation-Id: req-1\r\nUser-Agent: seed\r\n\r\n"},
      {"get-literal", "GET /things/special HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"head", "HEAD /things/7 HTTP/1.0\r\n\r\n"},
      {"get-echo-error",
       "GET /things?limit=x%C3%A9 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x01b\r\n\r\n"},
      {"post-json",
       "POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; "
       "charset=utf-8\r\nContent-Length: 27\r\n\r\n{\"name\":\"a\",\"n\":[1,2,{}]}\r\n"},
      {"post-chunked", "POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n12}\r\n0\r\n\r\n"},
      {"put-empty", "PUT /things/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"},
      {"patch-wrong-type", "PATCH /things/1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 2\r\n\r\n{}"},
      {"admin", "POST /admin/things/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                "fuzz-admin-token\r\nContent-Length: 0\r\n\r\n"},
      {"admin-wrong", "POST /admin/things/1 HTTP/1.1\r\nAuthorization: bearer nope\r\n\r\n"},
      {"delete-two-params", "DELETE /things/a/parts/b%20c HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"method-not-allowed", "DELETE /things HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"too-big", "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nabc"},
      {"raw", "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Type: "
              "a/b\r\n\r\n\x00\x01\x02\x03"},
      {"pipelined", "GET /things/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /things/2 HTTP/1.1\r\nHost: x\r\n"
                    "Connection: close\r\n\r\n"},
      {"bad-target", "GET things%00/x HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"expect-continue", "POST /things HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                          "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
    put_raw("http_server", reqs[i].name, reqs[i].req,
            strlen(reqs[i].req) + (strcmp(reqs[i].name, "raw") == 0 ? 4 : 0));
}

/* ---- HTTP responses (fuzz_http_client: selector bit 0 HEAD, bit 1 get_json, bit 2
 * 100-byte limit) -------------------------------------------------------------------- */

static void client_seeds(void) {
  static const struct {
    const char *name;
    uint8_t sel;
    const char *resp;
  } rs[] = {
      {"json-200", 2,
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n"
       "X-Correlation-Id: abc\r\n\r\n{\"items\":[],\"next\":null}"},
      {"chunked", 0,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nwiki\r\n"
       "5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"},
      {"continue-then-204", 0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"},
      {"to-eof", 0, "HTTP/1.0 200 OK\nServer: old\n\nbody until close"},
      {"head", 1, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"},
      {"error-json", 2,
       "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: "
       "53\r\n\r\n{\"error\":{\"code\":\"not_found\",\"message\":\"no such\"}}"},
      {"too-big", 4, "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n"},
      {"dup-length", 0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"no-reason", 0, "HTTP/1.1 503\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"},
  };
  for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
    put_str("http_client", rs[i].name, rs[i].sel, rs[i].resp);
}

/* ---- AMQP header tables (fuzz_amqp_headers: selector bit 0 "<q>.dlq" name, bit 1
 * properties from the bytes) --------------------------------------------------------- */

static amqp_field_value_t fstr(const char *s) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = amqp_cstring_bytes(s);
  return v;
}

static amqp_table_entry_t ent(const char *k, amqp_field_value_t v) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(k);
  e.value = v;
  return e;
}

static void put_table(const char *name, uint8_t sel, amqp_table_t *t) {
  uint8_t buf[8192];
  size_t off = 0;
  int st = amqp_encode_table((amqp_bytes_t){sizeof buf, buf}, t, &off);
  if (st != AMQP_STATUS_OK) {
    fprintf(stderr, "make_seeds: table %s: %s\n", name, amqp_error_string2(st));
    failures++;
    return;
  }
  put("amqp_headers", name, sel, buf, off);
}

static void amqp_seeds(void) {
  /* What RabbitMQ 3.10 writes after reject -> retry tier (TTL) -> back -> reject to the
   * DLX: newest first, one entry per {queue, reason}. */
  amqp_field_value_t rks_work[] = {fstr("customer.v1.CustomerUpdated")};
  amqp_field_value_t rks_retry[] = {fstr("order.customer-sync.retry.1")};
  amqp_table_entry_t d0[] = {
      ent("count", (amqp_field_value_t){AMQP_FIELD_KIND_I64, {.i64 = 3}}),
      ent("reason", fstr("rejected")),
      ent("queue", fstr("order.customer-sync")),
      ent("time", (amqp_field_value_t){AMQP_FIELD_KIND_TIMESTAMP, {.u64 = 1706702400}}),
      ent("exchange", fstr("customer.events")),
      ent("routing-keys", (amqp_field_value_t){AMQP_FIELD_KIND_ARRAY, {.array = {1, rks_work}}}),
  };
  amqp_table_entry_t d1[] = {
      ent("count", (amqp_field_value_t){AMQP_FIELD_KIND_I64, {.i64 = 2}}),
      ent("reason", fstr("expired")),
      ent("queue", fstr("order.customer-sync.retry.1")),
      ent("time", (amqp_field_value_t){AMQP_FIELD_KIND_TIMESTAMP, {.u64 = 1706702399}}),
      ent("exchange", fstr("order.customer-sync.retry")),
      ent("routing-keys", (amqp_field_value_t){AMQP_FIELD_KIND_ARRAY, {.array = {1, rks_retry}}}),
  };
  amqp_field_value_t deaths[] = {
      {AMQP_FIELD_KIND_TABLE, {.table = {6, d0}}},
      {AMQP_FIELD_KIND_TABLE, {.table = {6, d1}}},
  };
  amqp_table_entry_t h1[] = {
      ent("x-death", (amqp_field_value_t){AMQP_FIELD_KIND_ARRAY, {.array = {2, deaths}}}),
      ent("x-first-death-exchange", fstr("customer.events")),
      ent("x-first-death-queue", fstr("order.customer-sync")),
      ent("x-first-death-reason", fstr("rejected")),
      ent("x-aggregate-type", fstr("customer")),
      ent("x-aggregate-id", fstr("0b7e3c1a-cus")),
  };
  amqp_table_t t1 = {6, h1};
  put_table("x-death-rabbitmq", 1, &t1);

  /* warren's own headers, as the consumer writes them on the DLQ copy */
  amqp_table_entry_t h2[] = {
      ent("x-warren-original-exchange", fstr("customer.events")),
      ent("x-warren-original-routing-key", fstr("customer.v1.CustomerUpdated")),
      ent("x-warren-error",
          fstr("WR_EMETA: customer.v1.CustomerUpdated: meta.version must be >= 1")),
      ent("x-warren-attempts", (amqp_field_value_t){AMQP_FIELD_KIND_I64, {.i64 = 4}}),
      ent("x-warren-failed-at", (amqp_field_value_t){AMQP_FIELD_KIND_I64, {.i64 = 1706702400250}}),
      ent("x-warren-consumer", fstr("order.customer-sync")),
      ent("x-warren-attempt", (amqp_field_value_t){AMQP_FIELD_KIND_U8, {.u8 = 2}}),
      ent("x-aggregate-type", fstr("customer")),
  };
  amqp_table_t t2 = {8, h2};
  put_table("x-warren-dlq", 3, &t2);

  /* other encodings a republisher might use: failed-at as RFC 3339, counts as strings */
  amqp_table_entry_t d2[] = {
      ent("count", fstr("7")),
      ent("queue",
          (amqp_field_value_t){AMQP_FIELD_KIND_BYTES, {.bytes = amqp_cstring_bytes("q\n1")}}),
      ent("exchange", fstr("x.dlx")),
      ent("routing-keys", (amqp_field_value_t){AMQP_FIELD_KIND_ARRAY, {.array = {0, NULL}}}),
  };
  amqp_field_value_t deaths2[] = {{AMQP_FIELD_KIND_TABLE, {.table = {4, d2}}}, fstr("not a table")};
  amqp_table_entry_t h3[] = {
      ent("x-death", (amqp_field_value_t){AMQP_FIELD_KIND_ARRAY, {.array = {2, deaths2}}}),
      ent("x-warren-failed-at", fstr("2024-01-31T12:00:00.250+01:00")),
      ent("x-warren-attempts", (amqp_field_value_t){AMQP_FIELD_KIND_U64, {.u64 = UINT64_MAX}}),
      ent("x-warren-original-exchange", (amqp_field_value_t){AMQP_FIELD_KIND_I32, {.i32 = 5}}),
  };
  amqp_table_t t3 = {4, h3};
  put_table("odd-kinds", 0, &t3);
}

/* A captured CodeGeneratorRequest carries google/protobuf/descriptor.proto (imported by
 * warren/v1/options.proto): 60 KB that the plugin never reads (it looks up only the
 * files to generate) and that would slow every fuzzing iteration. Writes the request
 * without it. */
static int strip_request(const char *in, const char *out) {
  FILE *f = fopen(in, "rb");
  if (!f)
    return 1;
  static uint8_t buf[4 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  Google__Protobuf__Compiler__CodeGeneratorRequest *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, n, buf);
  if (!req) {
    fprintf(stderr, "make_seeds: %s is not a CodeGeneratorRequest\n", in);
    return 1;
  }
  Google__Protobuf__FileDescriptorProto **all = req->proto_file;
  size_t n_all = req->n_proto_file, kept = 0;
  Google__Protobuf__FileDescriptorProto **some = malloc((n_all + 1) * sizeof *some);
  for (size_t i = 0; some && i < n_all; i++)
    if (strcmp(all[i]->name, "google/protobuf/descriptor.proto") != 0)
      some[kept++] = all[i];
  req->proto_file = some;
  req->n_proto_file = kept;
  size_t len = some ? google__protobuf__compiler__code_generator_request__pack(req, buf) : 0;
  req->proto_file = all; /* free the original */
  req->n_proto_file = n_all;
  free(some);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  f = fopen(out, "wb");
  int rc = !f || fwrite(buf, 1, len, f) != len;
  if (f)
    fclose(f);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--strip-request") == 0)
    return strip_request(argv[2], argv[3]);
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR | --strip-request IN OUT\n", argv[0]);
    return 2;
  }
  outdir = argv[1];
  wr_schema_register(&customer_v1_schema);
  wr_schema_register(&order_v1_schema);
  wr_schema_register(&testev_schema);
  event_seeds();
  json_seeds();
  cursor_seeds();
  parser_seeds();
  server_seeds();
  client_seeds();
  amqp_seeds();
  if (failures) {
    fprintf(stderr, "make_seeds: %d failures\n", failures);
    return 1;
  }
  return 0;
}
