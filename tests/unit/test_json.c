// warren-test: link=warren_test_jsonprotos,warren_test_events
/* test_json.c: wr_json, the proto3 JSON mapping over protobuf-c descriptors.
 *
 * Round trips compare field by field (typed struct access) and, for the bigger
 * messages, also by protobuf-c's own encoding of both sides; exact texts pin the
 * output format; every decode error has a case that checks the code, the path and
 * the reason, and that *out stays NULL (ASan runs prove nothing leaks on those
 * paths). */
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/error.h>
#include <warren/json.h>
#include <warren/schema.h>

#include "jsontest/v1/jsontest.pb-c.h"
#include "jsontest/v1/legacy.pb-c.h"
#include "testev_schema.h"

/* ------------------------------------------------------------------ helpers */

static char *enc_text(const ProtobufCMessage *m, unsigned flags) {
  char *s = NULL;
  wr_err err = {0};
  int rc = wr_json_encode_string(m, flags, &s, &err);
  if (rc != 0)
    fail_msg("encode failed: %s (%s)", wr_errname(rc), err.msg);
  assert_non_null(s);
  return s;
}

static void expect_json(const void *m, unsigned flags, const char *want) {
  char *s = enc_text(m, flags);
  if (strcmp(s, want) != 0)
    fail_msg("JSON mismatch\n got: %s\nwant: %s", s, want);
  free(s);
}

static void *dec_text(const ProtobufCMessageDescriptor *d, const char *text, unsigned flags) {
  ProtobufCMessage *m = NULL;
  wr_err err = {0};
  int rc = wr_json_decode_string(d, text, strlen(text), flags, &m, &err);
  if (rc != 0)
    fail_msg("decode of %s failed: %s (%s)", text, wr_errname(rc), err.msg);
  assert_non_null(m);
  assert_ptr_equal(m->descriptor, d);
  return m;
}

/* Decoding `text` must fail with `code` and a message containing `want`. */
static void expect_dec_fail(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                            unsigned flags, int code, const char *want) {
  ProtobufCMessage *m = (ProtobufCMessage *)0x1;
  wr_err err = {0};
  int rc = wr_json_decode_string(d, text, len, flags, &m, &err);
  if (rc != code)
    fail_msg("decode of %s: got %s (%s), want %s", text, wr_errname(rc), err.msg, wr_errname(code));
  assert_null(m);
  assert_int_equal(err.code, code);
  if (!strstr(err.msg, want))
    fail_msg("decode of %s: message \"%s\" lacks \"%s\"", text, err.msg, want);
  assert_null(strchr(err.msg, '\n'));
}

#define DEC_FAIL(d, text, want) expect_dec_fail(d, text, strlen(text), 0, WR_EJSON, want)

/* The same failure through the json_t API. */
static void expect_json_t_fail(const ProtobufCMessageDescriptor *d, json_t *in, const char *want) {
  ProtobufCMessage *m = (ProtobufCMessage *)0x1;
  wr_err err = {0};
  int rc = wr_json_decode(d, in, 0, &m, &err);
  json_decref(in);
  if (rc != WR_EJSON)
    fail_msg("got %s (%s), want WR_EJSON", wr_errname(rc), err.msg);
  assert_null(m);
  if (!strstr(err.msg, want))
    fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static void expect_enc_fail(const void *m, int code, const char *want) {
  char *s = (char *)0x1;
  json_t *j = (json_t *)0x1;
  wr_err err = {0};
  int rc = wr_json_encode_string(m, 0, &s, &err);
  if (rc != code)
    fail_msg("encode: got %s (%s), want %s", wr_errname(rc), err.msg, wr_errname(code));
  assert_null(s);
  if (!strstr(err.msg, want))
    fail_msg("encode message \"%s\" lacks \"%s\"", err.msg, want);
  assert_int_equal(wr_json_encode(m, 0, &j, NULL), code);
  assert_null(j);
}

/* Both messages have the same protobuf encoding (protobuf-c packs fields in order,
 * so equal bytes mean equal field values, presence flags and oneof cases). */
static void assert_same_wire(const void *a, const void *b) {
  size_t na = protobuf_c_message_get_packed_size(a);
  size_t nb = protobuf_c_message_get_packed_size(b);
  assert_int_equal(na, nb);
  uint8_t *ba = malloc(na + 1), *bb = malloc(nb + 1);
  assert_non_null(ba);
  assert_non_null(bb);
  protobuf_c_message_pack(a, ba);
  protobuf_c_message_pack(b, bb);
  assert_memory_equal(ba, bb, na);
  free(ba);
  free(bb);
}

/* m -> JSON text -> message and m -> json_t -> message; returns the text result. */
static void *round_trip(const void *m, unsigned flags) {
  const ProtobufCMessageDescriptor *d = ((const ProtobufCMessage *)m)->descriptor;
  char *text = enc_text(m, flags);
  ProtobufCMessage *back = dec_text(d, text, 0);
  free(text);
  json_t *j = NULL;
  assert_int_equal(wr_json_encode(m, flags, &j, NULL), 0);
  ProtobufCMessage *back2 = NULL;
  assert_int_equal(wr_json_decode(d, j, 0, &back2, NULL), 0);
  json_decref(j);
  assert_same_wire(back, back2);
  protobuf_c_message_free_unpacked(back2, NULL);
  return back;
}

static void assert_bytes_eq(ProtobufCBinaryData a, ProtobufCBinaryData b) {
  assert_int_equal(a.len, b.len);
  if (a.len)
    assert_memory_equal(a.data, b.data, a.len);
}

static void assert_double_same(double a, double b) {
  if (isnan(a)) {
    assert_true(isnan(b));
    return;
  }
  assert_true(a == b);
  assert_int_equal(signbit(a) != 0, signbit(b) != 0);
}

/* ------------------------------------------------------------------ scalars */

static void scalars_exact_text(void **state) {
  (void)state;
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  inner.a = 7;
  inner.s = "in";
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1795892647;
  ts.nanos = 123000000;
  uint8_t raw[] = {0x00, 0xff, 'h', 'i'};
  Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
  s.f_int32 = -42;
  s.f_int64 = INT64_MIN;
  s.f_uint32 = UINT32_MAX;
  s.f_uint64 = UINT64_MAX;
  s.f_sint32 = INT32_MIN;
  s.f_sint64 = INT64_MAX;
  s.f_fixed32 = 7;
  s.f_fixed64 = 1234567890123ULL;
  s.f_sfixed32 = -5;
  s.f_sfixed64 = -9;
  s.f_float = 0.1f;
  s.f_double = 2.5;
  s.f_bool = 1;
  s.f_string = "h\xc3\xa9llo \"q\"\n\x01";
  s.f_bytes.len = sizeof raw;
  s.f_bytes.data = raw;
  s.f_enum = JSONTEST__V1__COLOR__COLOR_GREEN;
  s.f_inner = &inner;
  s.f_ts = &ts;
  expect_json(&s, 0,
              "{\"fInt32\":-42,\"fInt64\":\"-9223372036854775808\",\"fUint32\":4294967295,"
              "\"fUint64\":\"18446744073709551615\",\"fSint32\":-2147483648,"
              "\"fSint64\":\"9223372036854775807\",\"fFixed32\":7,\"fFixed64\":\"1234567890123\","
              "\"fSfixed32\":-5,\"fSfixed64\":\"-9\",\"fFloat\":0.1,\"fDouble\":2.5,\"fBool\":true,"
              "\"fString\":\"h\xc3\xa9llo \\\"q\\\"\\n\\u0001\",\"fBytes\":\"AP9oaQ==\","
              "\"fEnum\":\"COLOR_GREEN\",\"fInner\":{\"a\":7,\"s\":\"in\"},"
              "\"fTs\":\"2026-11-28T19:04:07.123Z\"}");

  /* The json_t form carries the same values (64-bit as strings, float shortened). */
  json_t *j = NULL;
  assert_int_equal(wr_json_encode(&s.base, 0, &j, NULL), 0);
  assert_string_equal(json_string_value(json_object_get(j, "fUint64")), "18446744073709551615");
  assert_true(json_real_value(json_object_get(j, "fFloat")) == 0.1);
  assert_int_equal(json_integer_value(json_object_get(j, "fUint32")), 4294967295LL);
  json_decref(j);
}

static void check_scalars_equal(const Jsontest__V1__Scalars *a, const Jsontest__V1__Scalars *b) {
  assert_int_equal(a->f_int32, b->f_int32);
  assert_true(a->f_int64 == b->f_int64);
  assert_int_equal(a->f_uint32, b->f_uint32);
  assert_true(a->f_uint64 == b->f_uint64);
  assert_int_equal(a->f_sint32, b->f_sint32);
  assert_true(a->f_sint64 == b->f_sint64);
  assert_int_equal(a->f_fixed32, b->f_fixed32);
  assert_true(a->f_fixed64 == b->f_fixed64);
  assert_int_equal(a->f_sfixed32, b->f_sfixed32);
  assert_true(a->f_sfixed64 == b->f_sfixed64);
  assert_double_same(a->f_float, b->f_float);
  assert_double_same(a->f_double, b->f_double);
  assert_int_equal(a->f_bool, b->f_bool);
  assert_string_equal(a->f_string, b->f_string);
  assert_bytes_eq(a->f_bytes, b->f_bytes);
  assert_int_equal(a->f_enum, b->f_enum);
  assert_int_equal(a->f_inner == NULL, b->f_inner == NULL);
  if (a->f_inner) {
    assert_int_equal(a->f_inner->a, b->f_inner->a);
    assert_string_equal(a->f_inner->s, b->f_inner->s);
  }
  assert_int_equal(a->f_ts == NULL, b->f_ts == NULL);
  if (a->f_ts) {
    assert_true(a->f_ts->seconds == b->f_ts->seconds);
    assert_int_equal(a->f_ts->nanos, b->f_ts->nanos);
  }
}

static void scalars_round_trip(void **state) {
  (void)state;
  uint8_t raw[256];
  for (int i = 0; i < 256; i++)
    raw[i] = (uint8_t)i;
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  inner.s = "\xf0\x9f\x90\x87 rabbit";
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

  struct {
    float f;
    double d;
    int64_t s64;
    uint64_t u64;
    int32_t s32;
    int e;
    int64_t secs;
    int32_t nanos;
    size_t nbytes;
  } cases[] = {
      {0.0f, 0.0, 0, 0, 0, 0, 0, 0, 0},
      {-0.0f, -0.0, -1, 1, -1, 1, -62135596800LL, 0, 1},
      {FLT_MAX, DBL_MAX, INT64_MIN, UINT64_MAX, INT32_MIN, 2, 253402300799LL, 999999999, 2},
      {-FLT_MAX, -DBL_MAX, INT64_MAX, (uint64_t)INT64_MAX + 1, INT32_MAX, -7, -1, 1, 3},
      {FLT_MIN, DBL_MIN, 9007199254740993LL, 9007199254740993ULL, 1, 99, 1, 500000000, 255},
      {1e-45f, 5e-324, 1, 2, 3, -100, 1795892647, 123456000, 256},
      {NAN, NAN, 2, 3, 4, 0, 0, 1000, 17},
      {INFINITY, -INFINITY, 3, 4, 5, 0, 0, 0, 0},
      {-INFINITY, INFINITY, 4, 5, 6, 0, 0, 0, 0},
      {3.14159274f, 0.1 + 0.2, 5, 6, 7, 0, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
    s.f_int32 = cases[i].s32;
    s.f_int64 = cases[i].s64;
    s.f_uint32 = (uint32_t)cases[i].u64;
    s.f_uint64 = cases[i].u64;
    s.f_sint32 = -(cases[i].s32 / 2);
    s.f_sint64 = cases[i].s64 / 3;
    s.f_fixed32 = (uint32_t)(cases[i].u64 >> 32);
    s.f_fixed64 = ~cases[i].u64;
    s.f_sfixed32 = cases[i].s32;
    s.f_sfixed64 = -(cases[i].s64 / 2);
    s.f_float = cases[i].f;
    s.f_double = cases[i].d;
    s.f_bool = (protobuf_c_boolean)(i % 2);
    s.f_string = i % 2 ? "line1\nline2\t\"\\/\x7f" : "";
    s.f_bytes.len = cases[i].nbytes;
    s.f_bytes.data = cases[i].nbytes ? raw : NULL;
    s.f_enum = (Jsontest__V1__Color)cases[i].e;
    if (i % 3 == 1) {
      inner.a = (int32_t)i;
      s.f_inner = &inner;
    }
    if (cases[i].secs || cases[i].nanos || i == 0) {
      ts.seconds = cases[i].secs;
      ts.nanos = cases[i].nanos;
      s.f_ts = &ts;
    }
    Jsontest__V1__Scalars *back = round_trip(&s, 0);
    check_scalars_equal(&s, back);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    /* With defaults written, the result is the same. */
    back = round_trip(&s, WR_JSON_EMIT_DEFAULTS);
    check_scalars_equal(&s, back);
    protobuf_c_message_free_unpacked(&back->base, NULL);
  }
}

static void defaults_omitted_or_emitted(void **state) {
  (void)state;
  Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
  expect_json(&s, 0, "{}");
  expect_json(&s, WR_JSON_EMIT_DEFAULTS,
              "{\"fInt32\":0,\"fInt64\":\"0\",\"fUint32\":0,\"fUint64\":\"0\",\"fSint32\":0,"
              "\"fSint64\":\"0\",\"fFixed32\":0,\"fFixed64\":\"0\",\"fSfixed32\":0,"
              "\"fSfixed64\":\"0\",\"fFloat\":0,\"fDouble\":0,\"fBool\":false,\"fString\":\"\","
              "\"fBytes\":\"\",\"fEnum\":\"COLOR_UNSPECIFIED\"}");
  /* A set message field is written even when empty; -0.0 is not a default. */
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  s.f_inner = &inner;
  s.f_double = -0.0;
  expect_json(&s, 0, "{\"fDouble\":-0.0,\"fInner\":{}}");

  Jsontest__V1__Repeated r = JSONTEST__V1__REPEATED__INIT;
  expect_json(&r, 0, "{}");
  Jsontest__V1__Maps mp = JSONTEST__V1__MAPS__INIT;
  expect_json(&mp, 0, "{}");
  char *txt = enc_text(&mp.base, WR_JSON_EMIT_DEFAULTS);
  assert_non_null(strstr(txt, "\"mStringString\":{}"));
  assert_non_null(strstr(txt, "\"mStringTs\":{}"));
  free(txt);
  txt = enc_text(&r.base, WR_JSON_EMIT_DEFAULTS);
  assert_non_null(strstr(txt, "{\"rInt32\":[],\"rInt64\":[]"));
  free(txt);

  /* Decoding {} and explicit nulls both give the defaults. */
  Jsontest__V1__Scalars *d = dec_text(
      &jsontest__v1__scalars__descriptor,
      "{\"fInt32\":null,\"fString\":null,\"fInner\":null,\"fTs\":null,\"fBytes\":null}", 0);
  Jsontest__V1__Scalars empty = JSONTEST__V1__SCALARS__INIT;
  check_scalars_equal(&empty, d);
  assert_ptr_equal(d->f_string, protobuf_c_empty_string); /* default left in place */
  protobuf_c_message_free_unpacked(&d->base, NULL);
}

static void float_and_double_text(void **state) {
  (void)state;
  Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
  s.f_float = 0.1f;
  s.f_double = 0.1;
  expect_json(&s, 0, "{\"fFloat\":0.1,\"fDouble\":0.1}");
  s.f_float = 1.0f / 3.0f;
  s.f_double = 1e300;
  expect_json(&s, 0, "{\"fFloat\":0.33333334,\"fDouble\":1e+300}");
  s.f_float = 16777216.0f;
  s.f_double = -2.0;
  expect_json(&s, 0, "{\"fFloat\":16777216,\"fDouble\":-2}");
  s.f_float = NAN;
  s.f_double = -INFINITY;
  expect_json(&s, 0, "{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\"}");
  s.f_float = FLT_MAX;
  s.f_double = INFINITY;
  expect_json(&s, 0, "{\"fFloat\":3.4028235e+38,\"fDouble\":\"Infinity\"}");
}

static void integers_and_floats_accepted(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *d = &jsontest__v1__scalars__descriptor;
  Jsontest__V1__Scalars *s =
      dec_text(d,
               "{\"fInt32\":1e3,\"fInt64\":5,\"fUint32\":\"4294967295\",\"fUint64\":\"-0\","
               "\"fSint32\":\"-2147483648\",\"fSint64\":-9223372036854775808,\"fFixed32\":7.0,"
               "\"fFixed64\":\"18446744073709551615\",\"fSfixed32\":\"007\",\"fSfixed64\":-1e18,"
               "\"fFloat\":3.4028235e38,\"fDouble\":\"1.5e-3\",\"fEnum\":-7}",
               0);
  assert_int_equal(s->f_int32, 1000);
  assert_true(s->f_int64 == 5);
  assert_int_equal(s->f_uint32, UINT32_MAX);
  assert_true(s->f_uint64 == 0);
  assert_int_equal(s->f_sint32, INT32_MIN);
  assert_true(s->f_sint64 == INT64_MIN);
  assert_int_equal(s->f_fixed32, 7);
  assert_true(s->f_fixed64 == UINT64_MAX);
  assert_int_equal(s->f_sfixed32, 7);
  assert_true(s->f_sfixed64 == -1000000000000000000LL);
  assert_true(s->f_float == FLT_MAX);
  assert_true(s->f_double == 1.5e-3);
  assert_int_equal(s->f_enum, JSONTEST__V1__COLOR__COLOR_NEGATIVE);
  protobuf_c_message_free_unpacked(&s->base, NULL);

  s = dec_text(d, "{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\",\"fEnum\":99}", 0);
  assert_true(isnan(s->f_float));
  assert_true(isinf(s->f_double) && s->f_double < 0);
  assert_int_equal(s->f_enum, 99);
  /* An enum number without a name is written back as a number. */
  expect_json(s, 0, "{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\",\"fEnum\":99}");
  protobuf_c_message_free_unpacked(&s->base, NULL);

  s = dec_text(d, "{\"fFloat\":\"Infinity\",\"fDouble\":\"-0.0\",\"fEnum\":\"COLOR_RED\"}", 0);
  assert_true(isinf(s->f_float) && s->f_float > 0);
  assert_true(s->f_double == 0 && signbit(s->f_double));
  assert_int_equal(s->f_enum, JSONTEST__V1__COLOR__COLOR_RED);
  protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void bytes_alphabets(void **state) {
  (void)state;
  const char *inputs[] = {"+/8=", "+/8", "-_8=", "-_8", "-/8"};
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "{\"fBytes\":\"%s\"}", inputs[i]);
    Jsontest__V1__Scalars *s = dec_text(&jsontest__v1__scalars__descriptor, text, 0);
    assert_int_equal(s->f_bytes.len, 2);
    assert_int_equal(s->f_bytes.data[0], 0xfb);
    assert_int_equal(s->f_bytes.data[1], 0xff);
    expect_json(s, 0, "{\"fBytes\":\"+/8=\"}");
    protobuf_c_message_free_unpacked(&s->base, NULL);
  }
  Jsontest__V1__Scalars *s =
      dec_text(&jsontest__v1__scalars__descriptor, "{\"fBytes\":\"\",\"f_bytes\":null}", 0);
  assert_int_equal(s->f_bytes.len, 0);
  protobuf_c_message_free_unpacked(&s->base, NULL);
  s = dec_text(&jsontest__v1__scalars__descriptor, "{\"fBytes\":\"AAAA\"}", 0);
  assert_int_equal(s->f_bytes.len, 3);
  assert_memory_equal(s->f_bytes.data, "\0\0\0", 3);
  protobuf_c_message_free_unpacked(&s->base, NULL);
}

/* ------------------------------------------------------------------ timestamps */

static void timestamps(void **state) {
  (void)state;
  struct {
    int64_t s;
    int32_t ns;
    const char *text;
  } ok[] = {
      {0, 0, "\"1970-01-01T00:00:00Z\""},
      {1706702400, 500000000, "\"2024-01-31T12:00:00.500Z\""},
      {1706702400, 123456000, "\"2024-01-31T12:00:00.123456Z\""},
      {1706702400, 1, "\"2024-01-31T12:00:00.000000001Z\""},
      {-1, 999999999, "\"1969-12-31T23:59:59.999999999Z\""},
      {-62135596800LL, 0, "\"0001-01-01T00:00:00Z\""},
      {253402300799LL, 999000000, "\"9999-12-31T23:59:59.999Z\""},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = ok[i].s;
    ts.nanos = ok[i].ns;
    expect_json(&ts, 0, ok[i].text); /* a Timestamp on its own is a JSON string */
    Google__Protobuf__Timestamp *back =
        dec_text(&google__protobuf__timestamp__descriptor, ok[i].text, 0);
    assert_true(back->seconds == ok[i].s);
    assert_int_equal(back->nanos, ok[i].ns);
    protobuf_c_message_free_unpacked(&back->base, NULL);
  }
  /* Offsets and other accepted spellings normalize to UTC. */
  Jsontest__V1__Scalars *s =
      dec_text(&jsontest__v1__scalars__descriptor, "{\"fTs\":\"2024-01-31T12:00:00.25+01:00\"}", 0);
  assert_true(s->f_ts->seconds == 1706702400 - 3600);
  assert_int_equal(s->f_ts->nanos, 250000000);
  expect_json(s, 0, "{\"fTs\":\"2024-01-31T11:00:00.250Z\"}");
  protobuf_c_message_free_unpacked(&s->base, NULL);

  /* Values JSON cannot hold fail on encode with the path. */
  Google__Protobuf__Timestamp bad = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Jsontest__V1__Scalars holder = JSONTEST__V1__SCALARS__INIT;
  holder.f_ts = &bad;
  bad.seconds = 253402300800LL;
  expect_enc_fail(&holder, WR_EINVAL, "fTs: timestamp out of range");
  bad.seconds = -62135596801LL;
  expect_enc_fail(&holder, WR_EINVAL, "fTs: timestamp out of range");
  bad.seconds = 0;
  bad.nanos = -1;
  expect_enc_fail(&holder, WR_EINVAL, "fTs: timestamp out of range");
  bad.nanos = 1000000000;
  expect_enc_fail(&holder, WR_EINVAL, "nanos 1000000000");
}

/* ------------------------------------------------------------------ repeated */

static void repeated_round_trip(void **state) {
  (void)state;
  int32_t i32[] = {0, -1, INT32_MIN, INT32_MAX};
  int64_t i64[] = {0, INT64_MIN, INT64_MAX};
  uint32_t u32[] = {UINT32_MAX, 0};
  uint64_t u64[] = {UINT64_MAX, 1};
  float fl[] = {0.5f, NAN, -INFINITY};
  double db[] = {-0.0, 1e-300};
  protobuf_c_boolean bl[] = {1, 0, 1};
  char *strs[] = {"a", "", "\xe2\x82\xac"};
  uint8_t b1[] = {1, 2, 3};
  ProtobufCBinaryData bys[] = {{3, b1}, {0, NULL}};
  Jsontest__V1__Color en[] = {JSONTEST__V1__COLOR__COLOR_RED, 42, 0};
  Jsontest__V1__Inner in1 = JSONTEST__V1__INNER__INIT, in2 = JSONTEST__V1__INNER__INIT;
  in1.a = 1;
  in2.s = "two";
  Jsontest__V1__Inner *inners[] = {&in1, &in2};
  Google__Protobuf__Timestamp t1 = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  t1.seconds = 1706702400;
  Google__Protobuf__Timestamp *tss[] = {&t1};

  Jsontest__V1__Repeated r = JSONTEST__V1__REPEATED__INIT;
#define SET(field, arr)                                                                            \
  do {                                                                                             \
    r.n_##field = sizeof arr / sizeof arr[0];                                                      \
    r.field = arr;                                                                                 \
  } while (0)
  SET(r_int32, i32);
  SET(r_int64, i64);
  SET(r_uint32, u32);
  SET(r_uint64, u64);
  SET(r_sint32, i32);
  SET(r_sint64, i64);
  SET(r_fixed32, u32);
  SET(r_fixed64, u64);
  SET(r_sfixed32, i32);
  SET(r_sfixed64, i64);
  SET(r_float, fl);
  SET(r_double, db);
  SET(r_bool, bl);
  SET(r_string, strs);
  SET(r_bytes, bys);
  SET(r_enum, en);
  SET(r_inner, inners);
  SET(r_ts, tss);
#undef SET
  expect_json(&r, 0,
              "{\"rInt32\":[0,-1,-2147483648,2147483647],"
              "\"rInt64\":[\"0\",\"-9223372036854775808\",\"9223372036854775807\"],"
              "\"rUint32\":[4294967295,0],\"rUint64\":[\"18446744073709551615\",\"1\"],"
              "\"rSint32\":[0,-1,-2147483648,2147483647],"
              "\"rSint64\":[\"0\",\"-9223372036854775808\",\"9223372036854775807\"],"
              "\"rFixed32\":[4294967295,0],\"rFixed64\":[\"18446744073709551615\",\"1\"],"
              "\"rSfixed32\":[0,-1,-2147483648,2147483647],"
              "\"rSfixed64\":[\"0\",\"-9223372036854775808\",\"9223372036854775807\"],"
              "\"rFloat\":[0.5,\"NaN\",\"-Infinity\"],\"rDouble\":[-0.0,1e-300],"
              "\"rBool\":[true,false,true],\"rString\":[\"a\",\"\",\"\xe2\x82\xac\"],"
              "\"rBytes\":[\"AQID\",\"\"],\"rEnum\":[\"COLOR_RED\",42,\"COLOR_UNSPECIFIED\"],"
              "\"rInner\":[{\"a\":1},{\"s\":\"two\"}],\"rTs\":[\"2024-01-31T12:00:00Z\"]}");
  Jsontest__V1__Repeated *b = round_trip(&r, 0);
  assert_int_equal(b->n_r_int32, 4);
  assert_memory_equal(b->r_int32, i32, sizeof i32);
  assert_int_equal(b->n_r_int64, 3);
  assert_memory_equal(b->r_int64, i64, sizeof i64);
  assert_memory_equal(b->r_uint32, u32, sizeof u32);
  assert_memory_equal(b->r_uint64, u64, sizeof u64);
  assert_memory_equal(b->r_sint32, i32, sizeof i32);
  assert_memory_equal(b->r_sint64, i64, sizeof i64);
  assert_memory_equal(b->r_fixed32, u32, sizeof u32);
  assert_memory_equal(b->r_fixed64, u64, sizeof u64);
  assert_memory_equal(b->r_sfixed32, i32, sizeof i32);
  assert_memory_equal(b->r_sfixed64, i64, sizeof i64);
  assert_int_equal(b->n_r_float, 3);
  for (int i = 0; i < 3; i++)
    assert_double_same(fl[i], b->r_float[i]);
  for (int i = 0; i < 2; i++)
    assert_double_same(db[i], b->r_double[i]);
  assert_memory_equal(b->r_bool, bl, sizeof bl);
  assert_int_equal(b->n_r_string, 3);
  for (int i = 0; i < 3; i++)
    assert_string_equal(b->r_string[i], strs[i]);
  assert_int_equal(b->n_r_bytes, 2);
  assert_bytes_eq(b->r_bytes[0], bys[0]);
  assert_bytes_eq(b->r_bytes[1], bys[1]);
  assert_memory_equal(b->r_enum, en, sizeof en);
  assert_int_equal(b->n_r_inner, 2);
  assert_int_equal(b->r_inner[0]->a, 1);
  assert_string_equal(b->r_inner[1]->s, "two");
  assert_int_equal(b->n_r_ts, 1);
  assert_true(b->r_ts[0]->seconds == 1706702400);
  assert_same_wire(&r, b);
  protobuf_c_message_free_unpacked(&b->base, NULL);
}

/* ------------------------------------------------------------------ maps */

static void maps_round_trip(void **state) {
  (void)state;
  Jsontest__V1__Maps m = JSONTEST__V1__MAPS__INIT;
  Jsontest__V1__Maps__MStringStringEntry ss1 = JSONTEST__V1__MAPS__MSTRING_STRING_ENTRY__INIT,
                                         ss2 = JSONTEST__V1__MAPS__MSTRING_STRING_ENTRY__INIT;
  ss1.key = "k\xc3\xa9y";
  ss1.value = "v";
  ss2.key = "";
  ss2.value = "empty key";
  Jsontest__V1__Maps__MStringStringEntry *ss[] = {&ss1, &ss2};
  m.n_m_string_string = 2;
  m.m_string_string = ss;

  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  inner.a = 3;
  Jsontest__V1__Maps__MInt32InnerEntry ii1 = JSONTEST__V1__MAPS__MINT32_INNER_ENTRY__INIT,
                                       ii2 = JSONTEST__V1__MAPS__MINT32_INNER_ENTRY__INIT;
  ii1.key = -5;
  ii1.value = &inner;
  ii2.key = INT32_MAX;
  ii2.value = NULL; /* unset message value: written as {} */
  Jsontest__V1__Maps__MInt32InnerEntry *ii[] = {&ii1, &ii2};
  m.n_m_int32_inner = 2;
  m.m_int32_inner = ii;

  Jsontest__V1__Maps__MInt64Int64Entry e3 = JSONTEST__V1__MAPS__MINT64_INT64_ENTRY__INIT;
  e3.key = INT64_MIN;
  e3.value = INT64_MAX;
  Jsontest__V1__Maps__MInt64Int64Entry *a3[] = {&e3};
  m.n_m_int64_int64 = 1;
  m.m_int64_int64 = a3;

  Jsontest__V1__Maps__MUint32EnumEntry e4 = JSONTEST__V1__MAPS__MUINT32_ENUM_ENTRY__INIT;
  e4.key = UINT32_MAX;
  e4.value = JSONTEST__V1__COLOR__COLOR_RED;
  Jsontest__V1__Maps__MUint32EnumEntry *a4[] = {&e4};
  m.n_m_uint32_enum = 1;
  m.m_uint32_enum = a4;

  uint8_t raw[] = {0, 0xff};
  Jsontest__V1__Maps__MUint64BytesEntry e5 = JSONTEST__V1__MAPS__MUINT64_BYTES_ENTRY__INIT;
  e5.key = UINT64_MAX;
  e5.value.len = 2;
  e5.value.data = raw;
  Jsontest__V1__Maps__MUint64BytesEntry *a5[] = {&e5};
  m.n_m_uint64_bytes = 1;
  m.m_uint64_bytes = a5;

  Jsontest__V1__Maps__MSint32DoubleEntry e6 = JSONTEST__V1__MAPS__MSINT32_DOUBLE_ENTRY__INIT;
  e6.key = INT32_MIN;
  e6.value = 0.25;
  Jsontest__V1__Maps__MSint32DoubleEntry *a6[] = {&e6};
  m.n_m_sint32_double = 1;
  m.m_sint32_double = a6;

  Jsontest__V1__Maps__MSint64BoolEntry e7 = JSONTEST__V1__MAPS__MSINT64_BOOL_ENTRY__INIT;
  e7.key = -1;
  e7.value = 1;
  Jsontest__V1__Maps__MSint64BoolEntry *a7[] = {&e7};
  m.n_m_sint64_bool = 1;
  m.m_sint64_bool = a7;

  Jsontest__V1__Maps__MFixed32FloatEntry e8 = JSONTEST__V1__MAPS__MFIXED32_FLOAT_ENTRY__INIT;
  e8.key = 0;
  e8.value = NAN;
  Jsontest__V1__Maps__MFixed32FloatEntry *a8[] = {&e8};
  m.n_m_fixed32_float = 1;
  m.m_fixed32_float = a8;

  Jsontest__V1__Maps__MFixed64Uint64Entry e9 = JSONTEST__V1__MAPS__MFIXED64_UINT64_ENTRY__INIT;
  e9.key = 10;
  e9.value = UINT64_MAX;
  Jsontest__V1__Maps__MFixed64Uint64Entry *a9[] = {&e9};
  m.n_m_fixed64_uint64 = 1;
  m.m_fixed64_uint64 = a9;

  Jsontest__V1__Maps__MSfixed32Sint64Entry e10 = JSONTEST__V1__MAPS__MSFIXED32_SINT64_ENTRY__INIT;
  e10.key = -32;
  e10.value = -64;
  Jsontest__V1__Maps__MSfixed32Sint64Entry *a10[] = {&e10};
  m.n_m_sfixed32_sint64 = 1;
  m.m_sfixed32_sint64 = a10;

  Jsontest__V1__Maps__MSfixed64StringEntry e11 = JSONTEST__V1__MAPS__MSFIXED64_STRING_ENTRY__INIT;
  e11.key = 64;
  e11.value = "sf64";
  Jsontest__V1__Maps__MSfixed64StringEntry *a11[] = {&e11};
  m.n_m_sfixed64_string = 1;
  m.m_sfixed64_string = a11;

  Jsontest__V1__Maps__MBoolInt32Entry e12a = JSONTEST__V1__MAPS__MBOOL_INT32_ENTRY__INIT,
                                      e12b = JSONTEST__V1__MAPS__MBOOL_INT32_ENTRY__INIT;
  e12a.key = 1;
  e12a.value = 1;
  e12b.key = 0;
  e12b.value = 0;
  Jsontest__V1__Maps__MBoolInt32Entry *a12[] = {&e12a, &e12b};
  m.n_m_bool_int32 = 2;
  m.m_bool_int32 = a12;

  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1706702400;
  Jsontest__V1__Maps__MStringTsEntry e13 = JSONTEST__V1__MAPS__MSTRING_TS_ENTRY__INIT;
  e13.key = "t";
  e13.value = &ts;
  Jsontest__V1__Maps__MStringTsEntry *a13[] = {&e13};
  m.n_m_string_ts = 1;
  m.m_string_ts = a13;

  expect_json(&m, 0,
              "{\"mStringString\":{\"k\xc3\xa9y\":\"v\",\"\":\"empty key\"},"
              "\"mInt32Inner\":{\"-5\":{\"a\":3},\"2147483647\":{}},"
              "\"mInt64Int64\":{\"-9223372036854775808\":\"9223372036854775807\"},"
              "\"mUint32Enum\":{\"4294967295\":\"COLOR_RED\"},"
              "\"mUint64Bytes\":{\"18446744073709551615\":\"AP8=\"},"
              "\"mSint32Double\":{\"-2147483648\":0.25},\"mSint64Bool\":{\"-1\":true},"
              "\"mFixed32Float\":{\"0\":\"NaN\"},"
              "\"mFixed64Uint64\":{\"10\":\"18446744073709551615\"},"
              "\"mSfixed32Sint64\":{\"-32\":\"-64\"},\"mSfixed64String\":{\"64\":\"sf64\"},"
              "\"mBoolInt32\":{\"true\":1,\"false\":0},"
              "\"mStringTs\":{\"t\":\"2024-01-31T12:00:00Z\"}}");
  Jsontest__V1__Maps *b = round_trip(&m, 0);
  assert_int_equal(b->n_m_string_string, 2);
  assert_string_equal(b->m_string_string[0]->key, "k\xc3\xa9y");
  assert_string_equal(b->m_string_string[0]->value, "v");
  assert_string_equal(b->m_string_string[1]->key, "");
  assert_int_equal(b->n_m_int32_inner, 2);
  assert_int_equal(b->m_int32_inner[0]->key, -5);
  assert_int_equal(b->m_int32_inner[0]->value->a, 3);
  assert_int_equal(b->m_int32_inner[1]->key, INT32_MAX);
  assert_non_null(b->m_int32_inner[1]->value); /* {} decodes to an empty message */
  assert_true(b->m_int64_int64[0]->key == INT64_MIN);
  assert_true(b->m_uint64_bytes[0]->key == UINT64_MAX);
  assert_bytes_eq(b->m_uint64_bytes[0]->value, e5.value);
  assert_int_equal(b->m_sint32_double[0]->key, INT32_MIN);
  assert_true(b->m_sint32_double[0]->value == 0.25);
  assert_true(isnan(b->m_fixed32_float[0]->value));
  assert_int_equal(b->m_bool_int32[0]->key, 1);
  assert_int_equal(b->m_bool_int32[1]->key, 0);
  assert_true(b->m_string_ts[0]->value->seconds == 1706702400);
  protobuf_c_message_free_unpacked(&b->base, NULL);

  /* Repeated keys (possible on the wire): the last value wins, as in protobuf. */
  Jsontest__V1__Maps__MStringStringEntry d1 = JSONTEST__V1__MAPS__MSTRING_STRING_ENTRY__INIT,
                                         d2 = JSONTEST__V1__MAPS__MSTRING_STRING_ENTRY__INIT;
  d1.key = d2.key = "k";
  d1.value = "first";
  d2.value = "last";
  Jsontest__V1__Maps__MStringStringEntry *dup[] = {&d1, &d2};
  Jsontest__V1__Maps m2 = JSONTEST__V1__MAPS__INIT;
  m2.n_m_string_string = 2;
  m2.m_string_string = dup;
  expect_json(&m2, 0, "{\"mStringString\":{\"k\":\"last\"}}");
}

/* ------------------------------------------------------------------ oneof */

static void oneofs(void **state) {
  (void)state;
  Jsontest__V1__Oneofs o = JSONTEST__V1__ONEOFS__INIT;
  expect_json(&o, 0, "{}");
  expect_json(&o, WR_JSON_EMIT_DEFAULTS, "{\"plain\":\"\"}"); /* unset members stay out */

  o.choice_case = JSONTEST__V1__ONEOFS__CHOICE_O_INT32;
  o.o_int32 = 0; /* a set member is written even at its default */
  o.other_case = JSONTEST__V1__ONEOFS__OTHER_X_BOOL;
  o.x_bool = 0;
  expect_json(&o, 0, "{\"oInt32\":0,\"xBool\":false}");
  Jsontest__V1__Oneofs *b = round_trip(&o, 0);
  assert_int_equal(b->choice_case, JSONTEST__V1__ONEOFS__CHOICE_O_INT32);
  assert_int_equal(b->o_int32, 0);
  assert_int_equal(b->other_case, JSONTEST__V1__ONEOFS__OTHER_X_BOOL);
  assert_int_equal(b->x_bool, 0);
  protobuf_c_message_free_unpacked(&b->base, NULL);

  o = (Jsontest__V1__Oneofs)JSONTEST__V1__ONEOFS__INIT;
  o.choice_case = JSONTEST__V1__ONEOFS__CHOICE_O_STRING;
  o.o_string = "s";
  o.plain = "p";
  o.other_case = JSONTEST__V1__ONEOFS__OTHER_X_DOUBLE;
  o.x_double = -1.5;
  expect_json(&o, 0, "{\"oString\":\"s\",\"plain\":\"p\",\"xDouble\":-1.5}");
  b = round_trip(&o, 0);
  assert_int_equal(b->choice_case, JSONTEST__V1__ONEOFS__CHOICE_O_STRING);
  assert_string_equal(b->o_string, "s");
  assert_string_equal(b->plain, "p");
  assert_true(b->x_double == -1.5);
  protobuf_c_message_free_unpacked(&b->base, NULL);

  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  uint8_t raw[] = {9};
  struct {
    int kase;
    const char *want;
  } members[] = {
      {JSONTEST__V1__ONEOFS__CHOICE_O_INNER, "{\"oInner\":{}}"},
      {JSONTEST__V1__ONEOFS__CHOICE_O_ENUM, "{\"oEnum\":\"COLOR_UNSPECIFIED\"}"},
      {JSONTEST__V1__ONEOFS__CHOICE_O_BYTES, "{\"oBytes\":\"CQ==\"}"},
      {JSONTEST__V1__ONEOFS__CHOICE_O_TS, "{\"oTs\":\"1970-01-01T00:00:00Z\"}"},
      {JSONTEST__V1__ONEOFS__CHOICE_O_INT64, "{\"oInt64\":\"-3\"}"},
  };
  for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
    o = (Jsontest__V1__Oneofs)JSONTEST__V1__ONEOFS__INIT;
    o.choice_case = (Jsontest__V1__Oneofs__ChoiceCase)members[i].kase;
    switch (members[i].kase) {
    case JSONTEST__V1__ONEOFS__CHOICE_O_INNER:
      o.o_inner = &inner;
      break;
    case JSONTEST__V1__ONEOFS__CHOICE_O_ENUM:
      o.o_enum = JSONTEST__V1__COLOR__COLOR_UNSPECIFIED;
      break;
    case JSONTEST__V1__ONEOFS__CHOICE_O_BYTES:
      o.o_bytes.len = 1;
      o.o_bytes.data = raw;
      break;
    case JSONTEST__V1__ONEOFS__CHOICE_O_TS:
      o.o_ts = &ts;
      break;
    default:
      o.o_int64 = -3;
      break;
    }
    expect_json(&o, 0, members[i].want);
    b = round_trip(&o, 0);
    assert_int_equal(b->choice_case, members[i].kase);
    assert_same_wire(&o, b);
    protobuf_c_message_free_unpacked(&b->base, NULL);
  }
  /* null for one member and a value for another is fine: null means "not given". */
  b = dec_text(&jsontest__v1__oneofs__descriptor, "{\"oInt32\":null,\"oString\":\"x\"}", 0);
  assert_int_equal(b->choice_case, JSONTEST__V1__ONEOFS__CHOICE_O_STRING);
  protobuf_c_message_free_unpacked(&b->base, NULL);
}

/* ------------------------------------------------------------------ names */

static const char *const names_json[] = {"fooBar", "Leading", "trailing",   "aB",
                                         "x1y",    "FooBaz",  "customName", "alreadyLowerCamel"};
static const wr_schema jt_schema;
static const wr_json_names jt_json[] = {{&jsontest__v1__names__descriptor, names_json}};
static const wr_event_type jt_events[] = {
    {"jsontest.v1.DeepEvent", "deep", WR_KIND_OTHER, "jsontest.events",
     &jsontest__v1__deep_event__descriptor, &jt_schema},
};
static const wr_schema jt_schema = {
    WR_CODEGEN_ABI, "jsontest/v1/jsontest.proto", "jsontest.v1", "jsontest.events", 1, jt_events, 1,
    jt_json};

static void json_names(void **state) {
  (void)state;
  Jsontest__V1__Names n = JSONTEST__V1__NAMES__INIT;
  n.foo_bar = 1;
  n._leading = 2;
  n.trailing_ = 3;
  n.a__b = 4;
  n.x_1y = 5;
  n.foobaz = 6;
  n.renamed = 7;
  n.already_lowercamel = 8;
  /* Not registered: derived like protoc's ToJsonName (json_name options unknown). */
  expect_json(&n, 0,
              "{\"fooBar\":1,\"Leading\":2,\"trailing\":3,\"aB\":4,\"x1y\":5,\"FooBaz\":6,"
              "\"renamed\":7,\"alreadyLowerCamel\":8}");
  /* Both the JSON name and the proto name are accepted. */
  Jsontest__V1__Names *b =
      dec_text(&jsontest__v1__names__descriptor,
               "{\"foo_bar\":1,\"_leading\":2,\"trailing_\":3,\"a__b\":4,\"x_1y\":5,\"FooBaz\":6,"
               "\"renamed\":7,\"already_lowerCamel\":8}",
               0);
  assert_same_wire(&n, b);
  protobuf_c_message_free_unpacked(&b->base, NULL);
  DEC_FAIL(&jsontest__v1__names__descriptor, "{\"fooBar\":1,\"foo_bar\":1}",
           "foo_bar: field given twice");
  DEC_FAIL(&jsontest__v1__names__descriptor, "{\"foobar\":1}", "foobar: unknown field");
  DEC_FAIL(&jsontest__v1__names__descriptor, "{\"customName\":1}", "customName: unknown field");

  /* Registered names (what protoc-gen-warren emits, json_name honoured) win. */
  assert_int_equal(wr_schema_register(&jt_schema), 0);
  assert_ptr_equal(wr_schema_json_names(&jsontest__v1__names__descriptor), names_json);
  expect_json(&n, 0,
              "{\"fooBar\":1,\"Leading\":2,\"trailing\":3,\"aB\":4,\"x1y\":5,\"FooBaz\":6,"
              "\"customName\":7,\"alreadyLowerCamel\":8}");
  b = dec_text(&jsontest__v1__names__descriptor, "{\"customName\":7}", 0);
  assert_int_equal(b->renamed, 7);
  protobuf_c_message_free_unpacked(&b->base, NULL);
  b = dec_text(&jsontest__v1__names__descriptor, "{\"renamed\":7}", 0); /* proto name */
  assert_int_equal(b->renamed, 7);
  protobuf_c_message_free_unpacked(&b->base, NULL);
  DEC_FAIL(&jsontest__v1__names__descriptor, "{\"customName\":1,\"renamed\":2}",
           "field given twice");
}

static void testev_event_text(void **state) {
  (void)state;
  assert_int_equal(wr_schema_register(&testev_schema), 0);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1795892647;
  ts.nanos = 123000000;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.event_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  meta.event_type = "testev.v1.WidgetCreated";
  meta.aggregate_type = "widget";
  meta.aggregate_id = "w1";
  meta.version = 3;
  meta.occurred_at = &ts;
  Testev__V1__Widget w = TESTEV__V1__WIDGET__INIT;
  w.id = "w1";
  w.name = "sprocket";
  w.count = 5;
  Testev__V1__WidgetCreated ev = TESTEV__V1__WIDGET_CREATED__INIT;
  ev.meta = &meta;
  ev.data = &w;
  const char *want =
      "{\"meta\":{\"eventId\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\","
      "\"eventType\":\"testev.v1.WidgetCreated\",\"aggregateType\":\"widget\","
      "\"aggregateId\":\"w1\",\"version\":\"3\",\"occurredAt\":\"2026-11-28T19:04:07.123Z\"},"
      "\"data\":{\"id\":\"w1\",\"name\":\"sprocket\",\"count\":\"5\"}}";
  expect_json(&ev, 0, want);
  Testev__V1__WidgetCreated *b = dec_text(&testev__v1__widget_created__descriptor, want, 0);
  assert_string_equal(b->meta->event_id, meta.event_id);
  assert_true(b->meta->version == 3);
  assert_true(b->data->count == 5);
  assert_same_wire(&ev, b);
  protobuf_c_message_free_unpacked(&b->base, NULL);
}

/* ------------------------------------------------------------------ proto2 */

static void proto2_presence(void **state) {
  (void)state;
  Jsontest__V1__Legacy l = JSONTEST__V1__LEGACY__INIT;
  l.name = "n";
  /* Required fields are always written; unset optionals (even with a declared
   * default) are not. */
  expect_json(&l, 0, "{\"id\":0,\"name\":\"n\"}");
  l.has_count = 1;
  l.count = 0;
  l.note = "hello";
  l.has_blob = 1;
  l.has_flag = 1;
  l.flag = 0;
  Jsontest__V1__LegacyChild child = JSONTEST__V1__LEGACY_CHILD__INIT;
  child.key = "k";
  l.child = &child;
  expect_json(&l, 0,
              "{\"id\":0,\"name\":\"n\",\"count\":\"0\",\"note\":\"hello\",\"blob\":\"\","
              "\"flag\":false,\"child\":{\"key\":\"k\"}}");
  Jsontest__V1__Legacy *b = round_trip(&l, 0);
  assert_int_equal(b->has_count, 1);
  assert_true(b->count == 0);
  assert_int_equal(b->has_blob, 1);
  assert_int_equal(b->has_flag, 1);
  assert_int_equal(b->flag, 0);
  assert_string_equal(b->note, "hello");
  assert_same_wire(&l, b);
  protobuf_c_message_free_unpacked(&b->base, NULL);

  b = dec_text(&jsontest__v1__legacy__descriptor, "{\"id\":5,\"name\":\"x\"}", 0);
  assert_int_equal(b->has_count, 0);
  assert_int_equal(b->has_flag, 0);
  assert_int_equal(b->flag, 1);                                         /* declared default */
  assert_ptr_equal(b->note, jsontest__v1__legacy__note__default_value); /* untouched */
  protobuf_c_message_free_unpacked(&b->base, NULL);

  DEC_FAIL(&jsontest__v1__legacy__descriptor, "{\"name\":\"x\"}", "missing required field id");
  DEC_FAIL(&jsontest__v1__legacy__descriptor, "{\"id\":1}", "missing required field name");
  DEC_FAIL(&jsontest__v1__legacy__descriptor, "{\"id\":1,\"name\":\"n\",\"child\":{}}",
           "child: missing required field key");
  DEC_FAIL(&jsontest__v1__legacy__descriptor, "{\"id\":null,\"name\":\"n\"}",
           "missing required field id");

  /* A required string left NULL is written as "" (protobuf-c packs it so too); an
   * unset required message cannot be written at all. */
  Jsontest__V1__LegacyChild empty_child = JSONTEST__V1__LEGACY_CHILD__INIT;
  expect_json(&empty_child, 0, "{\"key\":\"\"}");
  Jsontest__V1__LegacyHolder holder = JSONTEST__V1__LEGACY_HOLDER__INIT;
  expect_enc_fail(&holder, WR_EINVAL, "required field child is not set");
  holder.child = &empty_child;
  expect_json(&holder, 0, "{\"child\":{\"key\":\"\"}}");
  DEC_FAIL(&jsontest__v1__legacy_holder__descriptor, "{}", "missing required field child");
}

/* ------------------------------------------------------------------ errors */

static void decode_errors(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *S = &jsontest__v1__scalars__descriptor;
  const ProtobufCMessageDescriptor *R = &jsontest__v1__repeated__descriptor;
  const ProtobufCMessageDescriptor *M = &jsontest__v1__maps__descriptor;
  const ProtobufCMessageDescriptor *O = &jsontest__v1__oneofs__descriptor;
  static const struct {
    char which;
    const char *json, *want;
  } cases[] = {
      /* structure */
      {'S', "[]", "expected an object (jsontest.v1.Scalars), got an array"},
      {'S', "\"x\"", "expected an object"},
      {'S', "{\"fInt32\":1", "invalid JSON at line 1"},
      {'S', "", "invalid JSON"},
      {'S', "{\"fInt32\":1,\"fInt32\":2}", "duplicate object key"},
      {'S', "{\"fInt32\":1} x", "invalid JSON"},
      {'S', "{\"fString\":\"\xff\"}", "invalid JSON"},
      {'S', "{\"fString\":\"a\\u0000b\"}", "invalid JSON"},
      {'S', "{\"bogus\":1}", "bogus: unknown field"},
      {'S', "{\"fInner\":{\"zzz\":1}}", "fInner.zzz: unknown field"},
      {'S', "{\"fInt32\":1,\"f_int32\":2}", "f_int32: field given twice"},
      /* integers */
      {'S', "{\"fInt32\":\"x\"}", "fInt32: \"x\" is not a decimal integer"},
      {'S', "{\"fInt32\":1.5}", "fInt32: 1.5 is not an integer"},
      {'S', "{\"fInt32\":2147483648}", "fInt32: 2147483648 is out of range for int32"},
      {'S', "{\"fInt32\":-2147483649}", "-2147483649 is out of range for int32"},
      {'S', "{\"fSint32\":\"2147483648\"}", "\"2147483648\" is out of range for int32"},
      {'S', "{\"fInt32\":true}", "fInt32: expected an integer (number or string), got a boolean"},
      {'S', "{\"fInt32\":{}}", "got an object"},
      {'S', "{\"fUint32\":-1}", "fUint32: -1 is out of range for uint32"},
      {'S', "{\"fFixed32\":4294967296}", "4294967296 is out of range for uint32"},
      {'S', "{\"fInt64\":\"9223372036854775808\"}",
       "fInt64: \"9223372036854775808\" is out of range for int64"},
      {'S', "{\"fInt64\":\"-9223372036854775809\"}", "out of range for int64"},
      {'S', "{\"fInt64\":\"99999999999999999999999\"}", "out of range for int64"},
      {'S', "{\"fInt64\":\"1e3\"}", "\"1e3\" is not a decimal integer"},
      {'S', "{\"fInt64\":\"+1\"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":\" 1\"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":\"1 \"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":\"\"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":\"-\"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":\"0x10\"}", "is not a decimal integer"},
      {'S', "{\"fInt64\":1e19}", "1e+19 is out of range for int64"},
      {'S', "{\"fInt64\":9.2233720368547758e18}", "out of range for int64"},
      {'S', "{\"fUint64\":\"18446744073709551616\"}", "out of range for uint64"},
      {'S', "{\"fUint64\":\"-1\"}", "\"-1\" is out of range for uint64"},
      {'S', "{\"fUint64\":2e19}", "out of range for uint64"},
      {'S', "{\"fFixed64\":18446744073709551615}", "too big integer"},
      /* floats */
      {'S', "{\"fFloat\":1e39}", "fFloat: 1e+39 is out of range for float"},
      {'S', "{\"fFloat\":\"-3.5e38\"}", "out of range for float"},
      {'S', "{\"fDouble\":1e400}", "invalid JSON"},
      {'S', "{\"fDouble\":\"1e400\"}", "fDouble: \"1e400\" is out of range for double"},
      {'S', "{\"fDouble\":\"abc\"}", "fDouble: \"abc\" is not a number"},
      {'S', "{\"fDouble\":\"nan\"}", "\"nan\" is not a number"},
      {'S', "{\"fDouble\":\"inf\"}", "is not a number"},
      {'S', "{\"fDouble\":\"0x10\"}", "is not a number"},
      {'S', "{\"fDouble\":\" 1\"}", "is not a number"},
      {'S', "{\"fDouble\":\"1.\"}", "is not a number"},
      {'S', "{\"fDouble\":[]}", "fDouble: expected a number, got an array"},
      {'S', "{\"fDouble\":true}", "expected a number, got a boolean"},
      /* bool, string, bytes, enum, message, timestamp */
      {'S', "{\"fBool\":1}", "fBool: expected true or false, got a number"},
      {'S', "{\"fBool\":\"true\"}", "expected true or false, got a string"},
      {'S', "{\"fString\":5}", "fString: expected a string, got a number"},
      {'S', "{\"fBytes\":\"QQ=\"}", "fBytes: \"QQ=\" is not valid base64"},
      {'S', "{\"fBytes\":\"Q\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"QQ===\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"Q Q=\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"QR==\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"QQ==QQ==\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"*A==\"}", "is not valid base64"},
      {'S', "{\"fBytes\":\"AAAA\\n\"}", "is not valid base64"},
      {'S', "{\"fBytes\":5}", "fBytes: expected a base64 string, got a number"},
      {'S', "{\"fEnum\":\"COLOR_BLUE\"}",
       "fEnum: unknown enum value \"COLOR_BLUE\" for jsontest.v1.Color"},
      {'S', "{\"fEnum\":\"color_red\"}", "unknown enum value \"color_red\""},
      {'S', "{\"fEnum\":1.5}", "fEnum: 1.5 is not an integer"},
      {'S', "{\"fEnum\":4294967296}", "out of range for enum"},
      {'S', "{\"fEnum\":true}", "fEnum: expected an enum name or number, got a boolean"},
      {'S', "{\"fInner\":5}", "fInner: expected an object (jsontest.v1.Inner), got a number"},
      {'S', "{\"fInner\":[]}", "got an array"},
      {'S', "{\"fInner\":{\"a\":\"x\"}}", "fInner.a: \"x\" is not a decimal integer"},
      {'S', "{\"fTs\":\"yesterday\"}", "fTs: invalid timestamp \"yesterday\""},
      {'S', "{\"fTs\":\"2024-13-01T00:00:00Z\"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"2023-02-29T00:00:00Z\"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"2024-01-31T12:00:00\"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"2024-01-31T12:00:00.1234567890Z\"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"2024-01-31T12:00:00Z \"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"0000-12-31T00:00:00Z\"}", "invalid timestamp"},
      {'S', "{\"fTs\":\"0001-01-01T00:00:00+01:00\"}", "invalid timestamp"},
      {'S', "{\"fTs\":1706702400}", "fTs: expected an RFC 3339 timestamp string, got a number"},
      {'S', "{\"fTs\":{\"seconds\":1}}", "expected an RFC 3339 timestamp string, got an object"},
      /* repeated */
      {'R', "{\"rInt32\":5}", "rInt32: expected an array, got a number"},
      {'R', "{\"rInt32\":{}}", "expected an array, got an object"},
      {'R', "{\"rInt32\":[1,null]}", "rInt32[1]: null is not allowed in a repeated field"},
      {'R', "{\"rInt32\":[1,\"x\"]}", "rInt32[1]: \"x\" is not a decimal integer"},
      {'R', "{\"rString\":[\"a\",[]]}", "rString[1]: expected a string, got an array"},
      {'R', "{\"rInner\":[{},{\"a\":[]}]}", "rInner[1].a: expected an integer"},
      {'R', "{\"rTs\":[\"2024-01-31T12:00:00Z\",\"bad\"]}", "rTs[1]: invalid timestamp"},
      {'R', "{\"rEnum\":[\"COLOR_RED\",\"NOPE\"]}", "rEnum[1]: unknown enum value \"NOPE\""},
      {'R', "{\"rBytes\":[\"AA==\",\"!\"]}", "rBytes[1]: \"!\" is not valid base64"},
      /* maps */
      {'M', "{\"mStringString\":[]}", "mStringString: expected an object (map), got an array"},
      {'M', "{\"mInt32Inner\":{\"x\":{}}}",
       "mInt32Inner[\"x\"]: map key \"x\" is not a canonical decimal integer"},
      {'M', "{\"mInt32Inner\":{\"01\":{}}}", "is not a canonical decimal integer"},
      {'M', "{\"mInt32Inner\":{\"-0\":{}}}", "is not a canonical decimal integer"},
      {'M', "{\"mInt32Inner\":{\"+1\":{}}}", "is not a canonical decimal integer"},
      {'M', "{\"mInt32Inner\":{\"\":{}}}", "is not a canonical decimal integer"},
      {'M', "{\"mInt32Inner\":{\"2147483648\":{}}}", "map key \"2147483648\" is out of range"},
      {'M', "{\"mUint32Enum\":{\"-1\":\"COLOR_RED\"}}", "map key \"-1\" is out of range"},
      {'M', "{\"mUint64Bytes\":{\"18446744073709551616\":\"\"}}", "is not a canonical decimal"},
      {'M', "{\"mBoolInt32\":{\"yes\":1}}",
       "mBoolInt32[\"yes\"]: map key \"yes\" is not true or false"},
      {'M', "{\"mBoolInt32\":{\"True\":1}}", "is not true or false"},
      {'M', "{\"mStringString\":{\"a\":null}}", "mStringString[\"a\"]: map value cannot be null"},
      {'M', "{\"mStringString\":{\"a\":1}}", "mStringString[\"a\"]: expected a string"},
      {'M', "{\"mUint32Enum\":{\"1\":\"NOPE\"}}", "mUint32Enum[\"1\"]: unknown enum value"},
      {'M', "{\"mInt32Inner\":{\"1\":{\"b\":1}}}", "mInt32Inner[\"1\"].b: unknown field"},
      {'M', "{\"mStringTs\":{\"t\":\"never\"}}", "mStringTs[\"t\"]: invalid timestamp"},
      /* oneof */
      {'O', "{\"oInt32\":1,\"oString\":\"x\"}",
       "oString: oneof already has member o_int32 set; only one may be given"},
      {'O', "{\"oInner\":{},\"o_enum\":\"COLOR_RED\"}", "oneof already has member o_inner"},
      {'O', "{\"xBool\":true,\"x_double\":1}", "oneof already has member x_bool"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const ProtobufCMessageDescriptor *d = cases[i].which == 'S'   ? S
                                          : cases[i].which == 'R' ? R
                                          : cases[i].which == 'M' ? M
                                                                  : O;
    DEC_FAIL(d, cases[i].json, cases[i].want);
  }
  /* Text with an embedded NUL byte (not \u0000) is not JSON either. */
  expect_dec_fail(S, "{\"fString\":\"a\0b\"}", 16, 0, WR_EJSON, "invalid JSON");
}

static void decode_errors_json_t(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *S = &jsontest__v1__scalars__descriptor;
  const ProtobufCMessageDescriptor *M = &jsontest__v1__maps__descriptor;
  /* jansson values built in code can hold what its parser refuses. */
  json_t *o = json_object();
  json_object_set_new(o, "fString", json_stringn("a\0b", 3));
  expect_json_t_fail(S, o, "fString: string contains U+0000");
  o = json_object();
  json_object_set_new(o, "fString", json_stringn_nocheck("\xc3\x28", 2));
  expect_json_t_fail(S, o, "fString: string is not valid UTF-8");
  o = json_object();
  json_object_set_new(o, "fTs", json_stringn("2024-01-31T12:00:00Z\0junk", 25));
  expect_json_t_fail(S, o, "fTs: invalid timestamp");
  o = json_object();
  json_object_set_new(o, "fEnum", json_stringn("COLOR_RED\0x", 11));
  expect_json_t_fail(S, o, "unknown enum value \"COLOR_RED\\x00x\"");
  o = json_object();
  json_object_set_new(o, "fInt64", json_stringn("12\0", 3));
  expect_json_t_fail(S, o, "is not a decimal integer");
  o = json_object();
  json_object_setn_new_nocheck(o, "f\xffx\n", 4, json_integer(1));
  expect_json_t_fail(S, o, "f\\xffx\\x0a: unknown field");
  o = json_object();
  json_object_setn_new_nocheck(o, "fInt32\0", 7, json_integer(1));
  expect_json_t_fail(S, o, "unknown field");

  json_t *map = json_object();
  json_object_setn_new_nocheck(map, "a\0b", 3, json_string("v"));
  o = json_object();
  json_object_set_new(o, "mStringString", map);
  expect_json_t_fail(M, o, "map key contains U+0000");
  map = json_object();
  json_object_setn_new_nocheck(map, "\xff", 1, json_string("v"));
  o = json_object();
  json_object_set_new(o, "mStringString", map);
  expect_json_t_fail(M, o, "mStringString[\"\\xff\"]: map key is not valid UTF-8");
}

static void ignore_unknown(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *S = &jsontest__v1__scalars__descriptor;
  Jsontest__V1__Scalars *s =
      dec_text(S,
               "{\"bogus\":1,\"fInt32\":2,\"fInner\":{\"zz\":[1,{}],\"a\":4},\"fEnum\":\"NOPE\","
               "\"more\":{\"deep\":null}}",
               WR_JSON_IGNORE_UNKNOWN);
  assert_int_equal(s->f_int32, 2);
  assert_int_equal(s->f_inner->a, 4);
  assert_int_equal(s->f_enum, 0); /* unknown enum name: left at the default */
  protobuf_c_message_free_unpacked(&s->base, NULL);

  Jsontest__V1__Repeated *r =
      dec_text(&jsontest__v1__repeated__descriptor,
               "{\"rEnum\":[\"COLOR_RED\",\"NOPE\",\"COLOR_GREEN\"]}", WR_JSON_IGNORE_UNKNOWN);
  assert_int_equal(r->n_r_enum, 2);
  assert_int_equal(r->r_enum[0], JSONTEST__V1__COLOR__COLOR_RED);
  assert_int_equal(r->r_enum[1], JSONTEST__V1__COLOR__COLOR_GREEN);
  protobuf_c_message_free_unpacked(&r->base, NULL);

  Jsontest__V1__Maps *m =
      dec_text(&jsontest__v1__maps__descriptor,
               "{\"mUint32Enum\":{\"1\":\"NOPE\",\"2\":\"COLOR_RED\"}}", WR_JSON_IGNORE_UNKNOWN);
  assert_int_equal(m->n_m_uint32_enum, 1);
  assert_int_equal(m->m_uint32_enum[0]->key, 2);
  protobuf_c_message_free_unpacked(&m->base, NULL);

  Jsontest__V1__Oneofs *o = dec_text(&jsontest__v1__oneofs__descriptor,
                                     "{\"oEnum\":\"NOPE\",\"oInt32\":3}", WR_JSON_IGNORE_UNKNOWN);
  assert_int_equal(o->choice_case, JSONTEST__V1__ONEOFS__CHOICE_O_INT32);
  assert_int_equal(o->o_int32, 3);
  protobuf_c_message_free_unpacked(&o->base, NULL);

  /* Still errors: wrong types of known fields. */
  const char *bad = "{\"bogus\":1,\"fInt32\":\"x\"}";
  expect_dec_fail(S, bad, strlen(bad), WR_JSON_IGNORE_UNKNOWN, WR_EJSON,
                  "fInt32: \"x\" is not a decimal integer");
}

/* ------------------------------------------------------------------ depth */

static char *nested_json(int levels) {
  /* levels Recursive messages: {"child":{"child":{...{"depth":1}}}} */
  size_t cap = (size_t)levels * 10 + 32;
  char *s = malloc(cap), *p = s;
  assert_non_null(s);
  for (int i = 1; i < levels; i++)
    p += sprintf(p, "{\"child\":");
  p += sprintf(p, "{\"depth\":1}");
  for (int i = 1; i < levels; i++)
    *p++ = '}';
  *p = '\0';
  return s;
}

static void depth_limits(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *D = &jsontest__v1__recursive__descriptor;
  char *ok = nested_json(WR_JSON_MAX_DEPTH);
  Jsontest__V1__Recursive *r = dec_text(D, ok, 0);
  int levels = 1;
  for (Jsontest__V1__Recursive *p = r; p->child; p = p->child)
    levels++;
  assert_int_equal(levels, WR_JSON_MAX_DEPTH);
  char *again = enc_text(&r->base, 0);
  assert_string_equal(again, ok);
  free(again);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  free(ok);

  char *deep = nested_json(WR_JSON_MAX_DEPTH + 1);
  expect_dec_fail(D, deep, strlen(deep), 0, WR_EJSON, "messages nested deeper than 64");
  free(deep);
  /* Through arrays too. */
  char buf[4096], *p = buf;
  for (int i = 1; i <= WR_JSON_MAX_DEPTH; i++)
    p += sprintf(p, "{\"children\":[");
  p += sprintf(p, "{}");
  for (int i = 1; i <= WR_JSON_MAX_DEPTH; i++)
    p += sprintf(p, "]}");
  expect_dec_fail(D, buf, strlen(buf), 0, WR_EJSON, "nested deeper than 64");
  /* Far deeper than anything: jansson's own parser limit answers first. */
  size_t n = 100000;
  char *huge = malloc(2 * n + 1);
  memset(huge, '[', n);
  memset(huge + n, ']', n);
  huge[2 * n] = '\0';
  expect_dec_fail(D, huge, 2 * n, 0, WR_EJSON, "invalid JSON");
  free(huge);

  /* Encoding: a chain built in memory, and a cycle, stop at the limit. */
  Jsontest__V1__Recursive chain[WR_JSON_MAX_DEPTH + 1];
  for (int i = 0; i <= WR_JSON_MAX_DEPTH; i++) {
    chain[i] = (Jsontest__V1__Recursive)JSONTEST__V1__RECURSIVE__INIT;
    chain[i].child = i < WR_JSON_MAX_DEPTH ? &chain[i + 1] : NULL;
  }
  expect_enc_fail(&chain[0], WR_EINVAL, "messages nested deeper than 64");
  char *s = enc_text(&chain[1].base, 0); /* 64 levels are fine */
  free(s);
  Jsontest__V1__Recursive cyc = JSONTEST__V1__RECURSIVE__INIT;
  cyc.child = &cyc;
  expect_enc_fail(&cyc, WR_EINVAL, "nested deeper than 64");
}

/* ------------------------------------------------------------------ encode errors */

static void encode_errors(void **state) {
  (void)state;
  Jsontest__V1__Scalars s = JSONTEST__V1__SCALARS__INIT;
  s.f_string = "ok\xc3\x28";
  expect_enc_fail(&s, WR_EINVAL, "fString: string is not valid UTF-8");
  s.f_string = "\xed\xa0\x80"; /* a UTF-16 surrogate in UTF-8 form */
  expect_enc_fail(&s, WR_EINVAL, "fString: string is not valid UTF-8");
  s.f_string = "\xc0\xaf"; /* overlong '/' */
  expect_enc_fail(&s, WR_EINVAL, "not valid UTF-8");
  s.f_string = "";
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  inner.s = "\xf4\x90\x80\x80"; /* above U+10FFFF */
  s.f_inner = &inner;
  expect_enc_fail(&s, WR_EINVAL, "fInner.s: string is not valid UTF-8");

  Jsontest__V1__Repeated r = JSONTEST__V1__REPEATED__INIT;
  char *strs[] = {"fine", "\x80"};
  r.n_r_string = 2;
  r.r_string = strs;
  expect_enc_fail(&r, WR_EINVAL, "rString[1]: string is not valid UTF-8");

  Jsontest__V1__Maps m = JSONTEST__V1__MAPS__INIT;
  Jsontest__V1__Maps__MStringStringEntry e = JSONTEST__V1__MAPS__MSTRING_STRING_ENTRY__INIT;
  e.key = "\xff";
  e.value = "v";
  Jsontest__V1__Maps__MStringStringEntry *ea[] = {&e};
  m.n_m_string_string = 1;
  m.m_string_string = ea;
  expect_enc_fail(&m, WR_EINVAL, "mStringString[\"\\xff\"]: map key is not valid UTF-8");
  e.key = "k";
  e.value = "\xff";
  expect_enc_fail(&m, WR_EINVAL, "mStringString[\"k\"]: string is not valid UTF-8");

  /* Strings that protobuf-c unpacked from the wire are checked the same way. */
  Jsontest__V1__Inner wire = JSONTEST__V1__INNER__INIT;
  wire.s = "\xfe\xfe";
  uint8_t buf[16];
  size_t n = protobuf_c_message_pack(&wire.base, buf);
  ProtobufCMessage *u = protobuf_c_message_unpack(&jsontest__v1__inner__descriptor, NULL, n, buf);
  assert_non_null(u);
  expect_enc_fail(u, WR_EINVAL, "s: string is not valid UTF-8");
  protobuf_c_message_free_unpacked(u, NULL);
}

static void bad_arguments(void **state) {
  (void)state;
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  json_t *j = (json_t *)0x1;
  char *s = (char *)0x1;
  ProtobufCMessage *m = (ProtobufCMessage *)0x1;
  wr_err err = {0};
  assert_int_equal(wr_json_encode(NULL, 0, &j, &err), WR_EINVAL);
  assert_null(j);
  assert_int_equal(err.code, WR_EINVAL);
  assert_int_equal(wr_json_encode(&inner.base, 0, NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_json_encode(&inner.base, 0x100, &j, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "unknown flags"));
  assert_int_equal(wr_json_encode_string(&inner.base, 0, NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_json_encode_string(NULL, 0, &s, NULL), WR_EINVAL);
  assert_null(s);
  ProtobufCMessage bogus = {0};
  assert_int_equal(wr_json_encode(&bogus, 0, &j, &err), WR_EINVAL);
  assert_non_null(strstr(err.msg, "not a protobuf-c message"));

  json_t *in = json_object();
  assert_int_equal(wr_json_decode(NULL, in, 0, &m, NULL), WR_EINVAL);
  assert_null(m);
  assert_int_equal(wr_json_decode(&jsontest__v1__inner__descriptor, NULL, 0, &m, NULL), WR_EINVAL);
  assert_int_equal(wr_json_decode(&jsontest__v1__inner__descriptor, in, 0, NULL, NULL), WR_EINVAL);
  assert_int_equal(wr_json_decode(&jsontest__v1__inner__descriptor, in, 0x8, &m, NULL), WR_EINVAL);
  /* Not a message descriptor (an enum descriptor has another magic). */
  assert_int_equal(
      wr_json_decode((const ProtobufCMessageDescriptor *)&jsontest__v1__color__descriptor, in, 0,
                     &m, &err),
      WR_EINVAL);
  assert_null(m);
  json_decref(in);
  assert_int_equal(wr_json_decode_string(&jsontest__v1__inner__descriptor, NULL, 3, 0, &m, NULL),
                   WR_EINVAL);
  assert_int_equal(wr_json_decode_string(&jsontest__v1__inner__descriptor, NULL, 0, 0, &m, &err),
                   WR_EJSON);
  /* Not NUL-terminated: only len bytes are read. */
  const char text[] = "{\"a\":12}garbage";
  assert_int_equal(wr_json_decode_string(&jsontest__v1__inner__descriptor, text, 8, 0, &m, NULL),
                   0);
  assert_int_equal(((Jsontest__V1__Inner *)m)->a, 12);
  protobuf_c_message_free_unpacked(m, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scalars_exact_text),
      cmocka_unit_test(scalars_round_trip),
      cmocka_unit_test(defaults_omitted_or_emitted),
      cmocka_unit_test(float_and_double_text),
      cmocka_unit_test(integers_and_floats_accepted),
      cmocka_unit_test(bytes_alphabets),
      cmocka_unit_test(timestamps),
      cmocka_unit_test(repeated_round_trip),
      cmocka_unit_test(maps_round_trip),
      cmocka_unit_test(oneofs),
      cmocka_unit_test(json_names),
      cmocka_unit_test(testev_event_text),
      cmocka_unit_test(proto2_presence),
      cmocka_unit_test(decode_errors),
      cmocka_unit_test(decode_errors_json_t),
      cmocka_unit_test(ignore_unknown),
      cmocka_unit_test(depth_limits),
      cmocka_unit_test(encode_errors),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
