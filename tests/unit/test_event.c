// warren-test: link=warren_test_events,warren_test_jsonprotos
/* test_event.c: wr_event_meta, wr_event_validate and wr_event_decode against valid
 * events and hostile bytes: garbage, truncation at every offset, wrong wire types,
 * broken varints and length prefixes, groups, deep nesting far beyond what
 * protobuf-c's recursive unpack survives, strings with NUL or bad UTF-8, bad meta,
 * size limits; and unknown fields, which must be accepted and kept. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/error.h>
#include <warren/event.h>
#include <warren/util.h>

#include "jsontest/v1/jsontest.pb-c.h"
#include "testev_schema.h"

static const wr_event_type *const CREATED = &testev_events[TESTEV_CREATED];
static const wr_event_type deep_type = {"jsontest.v1.DeepEvent",
                                        "deep",
                                        WR_KIND_OTHER,
                                        "jsontest.events",
                                        &jsontest__v1__deep_event__descriptor,
                                        NULL};

/* ------------------------------------------------------------------ byte builder */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    assert_non_null(b->p);
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_varint(buf *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    tmp[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v)
      tmp[n] |= 0x80;
    n++;
  } while (v);
  put(b, tmp, n);
}

static void put_tag(buf *b, uint32_t field, unsigned wire) {
  put_varint(b, (uint64_t)field << 3 | wire);
}

static void put_ld(buf *b, uint32_t field, const void *data, size_t n) {
  put_tag(b, field, 2);
  put_varint(b, n);
  put(b, data, n);
}

static void put_msg(buf *b, uint32_t field, const void *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *tmp = malloc(n + 1);
  assert_non_null(tmp);
  protobuf_c_message_pack(msg, tmp);
  put_ld(b, field, tmp, n);
  free(tmp);
}

/* ------------------------------------------------------------------ fixtures */

typedef struct fixture {
  char id[WR_UUID_STRLEN];
  Google__Protobuf__Timestamp ts;
  Warren__V1__EventMeta meta;
  Testev__V1__Widget widget;
  Testev__V1__WidgetCreated ev;
} fixture;

static void fixture_init(fixture *f, const char *type, const char *aggregate_type) {
  assert_int_equal(wr_uuid_v7(f->id), 0);
  f->ts = (Google__Protobuf__Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  f->ts.seconds = 1795892647;
  f->ts.nanos = 5;
  f->meta = (Warren__V1__EventMeta)WARREN__V1__EVENT_META__INIT;
  f->meta.event_id = f->id;
  f->meta.event_type = (char *)type;
  f->meta.aggregate_type = (char *)aggregate_type;
  f->meta.aggregate_id = "w-1";
  f->meta.version = 7;
  f->meta.occurred_at = &f->ts;
  f->meta.correlation_id = "corr";
  f->meta.source_service = "svc";
  f->widget = (Testev__V1__Widget)TESTEV__V1__WIDGET__INIT;
  f->widget.id = "w-1";
  f->widget.name = "sprocket \xe2\x82\xac";
  f->widget.count = -3;
  f->ev = (Testev__V1__WidgetCreated)TESTEV__V1__WIDGET_CREATED__INIT;
  f->ev.meta = &f->meta;
  f->ev.data = &f->widget;
}

static uint8_t *pack(const void *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *p = malloc(*len + 1);
  assert_non_null(p);
  protobuf_c_message_pack(m, p);
  return p;
}

/* Decoding must fail with code and a message containing want (NULL: any). */
static void expect_fail(const wr_event_type *t, const void *data, size_t len, size_t max, int code,
                        const char *want) {
  ProtobufCMessage *m = (ProtobufCMessage *)0x1;
  wr_err err = {0};
  int rc = wr_event_decode(t, data, len, max, &m, &err);
  if (rc != code)
    fail_msg("got %s (%s), want %s", wr_errname(rc), err.msg, wr_errname(code));
  assert_null(m);
  assert_int_equal(err.code, code);
  if (want && !strstr(err.msg, want))
    fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
  assert_null(strchr(err.msg, '\n'));
}

static ProtobufCMessage *expect_ok(const wr_event_type *t, const void *data, size_t len) {
  ProtobufCMessage *m = NULL;
  wr_err err = {0};
  int rc = wr_event_decode(t, data, len, 0, &m, &err);
  if (rc != 0)
    fail_msg("decode failed: %s (%s)", wr_errname(rc), err.msg);
  assert_non_null(m);
  assert_ptr_equal(m->descriptor, t->descriptor);
  return m;
}

/* ------------------------------------------------------------------ valid */

static void decode_valid(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f, CREATED->type, CREATED->aggregate_type);
  size_t len;
  uint8_t *bytes = pack(&f.ev, &len);
  Testev__V1__WidgetCreated *ev = (Testev__V1__WidgetCreated *)expect_ok(CREATED, bytes, len);
  assert_string_equal(ev->meta->event_id, f.id);
  assert_string_equal(ev->meta->event_type, "testev.v1.WidgetCreated");
  assert_string_equal(ev->meta->aggregate_id, "w-1");
  assert_true(ev->meta->version == 7);
  assert_true(ev->meta->occurred_at->seconds == 1795892647);
  assert_int_equal(ev->meta->occurred_at->nanos, 5);
  assert_string_equal(ev->meta->correlation_id, "corr");
  assert_string_equal(ev->data->name, "sprocket \xe2\x82\xac");
  assert_true(ev->data->count == -3);
  assert_ptr_equal(wr_event_meta(&ev->base), ev->meta);
  wr_event_free(&ev->base);
  wr_event_free(NULL);

  /* Exactly at the size limit is fine; no data payload is fine too. */
  ProtobufCMessage *m = NULL;
  assert_int_equal(wr_event_decode(CREATED, bytes, len, len, &m, NULL), 0);
  wr_event_free(m);
  free(bytes);
  f.ev.data = NULL;
  bytes = pack(&f.ev, &len);
  wr_event_free(expect_ok(CREATED, bytes, len));
  free(bytes);

  /* The longest aggregate id allowed. */
  char id[WR_EVENT_AGGREGATE_ID_MAX + 1];
  memset(id, 'a', WR_EVENT_AGGREGATE_ID_MAX);
  id[WR_EVENT_AGGREGATE_ID_MAX] = '\0';
  f.meta.aggregate_id = id;
  bytes = pack(&f.ev, &len);
  wr_event_free(expect_ok(CREATED, bytes, len));
  free(bytes);
}

/* ------------------------------------------------------------------ meta rules */

static void decode_bad_meta(void **state) {
  (void)state;
  char long_id[WR_EVENT_AGGREGATE_ID_MAX + 2];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  for (int i = 0; i < 14; i++) {
    fixture f;
    fixture_init(&f, CREATED->type, CREATED->aggregate_type);
    const char *want = NULL;
    switch (i) {
    case 0:
      f.ev.meta = NULL;
      want = "meta missing";
      break;
    case 1:
      f.meta.event_id = "not-a-uuid\x01";
      want = "meta.event_id \"not-a-uuid\\x01\" is not a UUID";
      break;
    case 2:
      f.meta.event_id = "";
      want = "is not a UUID";
      break;
    case 3:
      f.meta.event_type = "testev.v1.WidgetUpdated";
      want = "meta.event_type \"testev.v1.WidgetUpdated\" does not match";
      break;
    case 4:
      f.meta.event_type = "";
      want = "meta.event_type";
      break;
    case 5:
      f.meta.aggregate_type = "gadget";
      want = "meta.aggregate_type \"gadget\" is not \"widget\"";
      break;
    case 6:
      f.meta.aggregate_id = "";
      want = "meta.aggregate_id is empty";
      break;
    case 7:
      f.meta.aggregate_id = long_id;
      want = "meta.aggregate_id has 257 bytes (limit 256)";
      break;
    case 8:
      f.meta.version = 0;
      want = "meta.version must be >= 1";
      break;
    case 9:
      f.meta.occurred_at = NULL;
      want = "meta.occurred_at is not set";
      break;
    case 10:
      f.ts.nanos = 1000000000;
      want = "meta.occurred_at is not a valid timestamp";
      break;
    case 11:
      f.ts.seconds = 253402300800LL;
      want = "meta.occurred_at is not a valid timestamp";
      break;
    case 12:
      f.ts.nanos = -1;
      want = "meta.occurred_at is not a valid timestamp";
      break;
    default:
      f.meta.version = (uint64_t)INT64_MAX + 1;
      want = "meta.version 9223372036854775808 is above 2^63-1";
      break;
    }
    size_t len;
    uint8_t *bytes = pack(&f.ev, &len);
    expect_fail(CREATED, bytes, len, 0, WR_EMETA, want);
    free(bytes);
  }

  /* Bytes of another event type decode (same layout) but fail the type check. */
  fixture f;
  fixture_init(&f, "testev.v1.WidgetUpdated", "widget");
  size_t len;
  uint8_t *bytes = pack(&f.ev, &len);
  wr_event_free(expect_ok(&testev_events[TESTEV_UPDATED], bytes, len));
  expect_fail(CREATED, bytes, len, 0, WR_EMETA, "does not match");
  free(bytes);

  /* Empty input is a valid empty message: no meta. */
  expect_fail(CREATED, "", 0, 0, WR_EMETA, "testev.v1.WidgetCreated: meta missing");
  expect_fail(CREATED, NULL, 0, 0, WR_EMETA, "meta missing");
}

static void validate_directly(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f, CREATED->type, CREATED->aggregate_type);
  wr_err err = {0};
  assert_int_equal(wr_event_validate(CREATED, &f.ev.base, &err), 0);
  /* What the outbox may hand over from C code: invalid UTF-8 in any meta string. */
  f.meta.source_instance = "host\xff";
  assert_int_equal(wr_event_validate(CREATED, &f.ev.base, &err), WR_EMETA);
  assert_non_null(strstr(err.msg, "meta.source_instance is not valid UTF-8"));
  f.meta.source_instance = "";
  f.meta.aggregate_id = "\xc3";
  assert_int_equal(wr_event_validate(CREATED, &f.ev.base, &err), WR_EMETA);
  assert_non_null(strstr(err.msg, "meta.aggregate_id is not valid UTF-8"));
  f.meta.aggregate_id = "w-1";
  f.meta.event_id = NULL;
  assert_int_equal(wr_event_validate(CREATED, &f.ev.base, &err), WR_EMETA);
  f.meta.event_id = f.id;

  /* Caller bugs. */
  assert_int_equal(wr_event_validate(NULL, &f.ev.base, &err), WR_EINVAL);
  assert_int_equal(wr_event_validate(CREATED, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_event_validate(&testev_events[TESTEV_DELETED], &f.ev.base, &err), WR_EINVAL);
  assert_non_null(
      strstr(err.msg, "message is testev.v1.WidgetCreated, not testev.v1.WidgetDeleted"));
  assert_int_equal(wr_event_validate(CREATED, &f.ev.base, NULL), 0);
}

/* ------------------------------------------------------------------ meta access */

static void meta_access(void **state) {
  (void)state;
  assert_null(wr_event_meta(NULL));
  /* Field 1 of a Widget is a string: not a meta. */
  Testev__V1__Widget w = TESTEV__V1__WIDGET__INIT;
  assert_null(wr_event_meta(&w.base));
  Jsontest__V1__NotAnEvent nae = JSONTEST__V1__NOT_AN_EVENT__INIT;
  nae.meta = "looks like one";
  assert_null(wr_event_meta(&nae.base));
  /* A message without field 1 at all. */
  Jsontest__V1__Inner inner = JSONTEST__V1__INNER__INIT;
  assert_null(wr_event_meta(&inner.base)); /* field 1 is int32 a */
  Jsontest__V1__Recursive rec = JSONTEST__V1__RECURSIVE__INIT;
  assert_null(wr_event_meta(&rec.base)); /* field 1 is a message, but not EventMeta */

  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  Jsontest__V1__OneofMetaEvent one = JSONTEST__V1__ONEOF_META_EVENT__INIT;
  assert_null(wr_event_meta(&one.base));
  one.m_case = JSONTEST__V1__ONEOF_META_EVENT__M_NONE;
  one.none = "x";
  assert_null(wr_event_meta(&one.base));
  one.m_case = JSONTEST__V1__ONEOF_META_EVENT__M_META;
  one.meta = &meta;
  assert_ptr_equal(wr_event_meta(&one.base), &meta);

  Testev__V1__WidgetDeleted del = TESTEV__V1__WIDGET_DELETED__INIT;
  assert_null(wr_event_meta(&del.base)); /* meta not set */
  del.meta = &meta;
  assert_ptr_equal(wr_event_meta(&del.base), &meta);

  ProtobufCMessage bogus = {0};
  assert_null(wr_event_meta(&bogus));
}

/* ------------------------------------------------------------------ hostile bytes */

static void garbage_and_truncation(void **state) {
  (void)state;
  const uint8_t ff[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  expect_fail(CREATED, ff, sizeof ff, 0, WR_EDECODE, "malformed tag at byte 0");
  expect_fail(CREATED, "\x00", 1, 0, WR_EDECODE, "invalid field number 0");
  expect_fail(CREATED, "hello, world", 12, 0, WR_EDECODE, NULL);
  expect_fail(CREATED, "{\"meta\":{}}", 11, 0, WR_EDECODE, NULL);

  /* Random bytes: never a crash, never accepted. */
  uint32_t x = 12345;
  uint8_t rnd[512];
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(i % 64) + 1 + (i % 7 == 0 ? 400 : 0);
    for (size_t k = 0; k < n; k++) {
      x = x * 1103515245u + 12345u;
      rnd[k] = (uint8_t)(x >> 16);
    }
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    int rc = wr_event_decode(CREATED, rnd, n, 0, &m, NULL);
    assert_true(rc == WR_EDECODE || rc == WR_EMETA);
    assert_null(m);
  }

  /* Truncation at every offset: inside meta is malformed, at the end of meta is a
   * complete event without data, inside data is malformed again. */
  fixture f;
  fixture_init(&f, CREATED->type, CREATED->aggregate_type);
  size_t len;
  uint8_t *bytes = pack(&f.ev, &len);
  size_t meta_len = protobuf_c_message_get_packed_size(&f.meta.base);
  size_t meta_end = 1 + (meta_len < 128 ? 1 : 2) + meta_len;
  assert_true(meta_end < len);
  for (size_t cut = 1; cut < len; cut++) {
    ProtobufCMessage *m = NULL;
    wr_err err = {0};
    int rc = wr_event_decode(CREATED, bytes, cut, 0, &m, &err);
    if (cut == meta_end) {
      assert_int_equal(rc, 0);
      wr_event_free(m);
    } else {
      if (rc != WR_EDECODE)
        fail_msg("cut at %zu: %s (%s)", cut, wr_errname(rc), err.msg);
      assert_null(m);
    }
  }
  free(bytes);
}

static void wire_format_attacks(void **state) {
  (void)state;
  buf b = {0};
  /* meta (a message) sent as a varint: protobuf-c refuses the wire type. */
  put_tag(&b, 1, 0);
  put_varint(&b, 1);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "not a valid encoding");
  b.len = 0;
  /* meta.version sent length-delimited. */
  uint8_t inner[] = {0x2a, 0x01, 0x00};
  put_ld(&b, 1, inner, sizeof inner);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "not a valid encoding");
  b.len = 0;
  /* Truncated varint value, and an 11-byte varint. */
  put(&b, "\x08\xff\xff", 3);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "truncated varint in field 1");
  b.len = 0;
  put_tag(&b, 5, 0);
  put(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "truncated varint");
  b.len = 0;
  /* Length prefixes larger than the input: 4 GiB, 2^63, and one byte too many. */
  put_tag(&b, 2, 2);
  put_varint(&b, 0xffffffffULL);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "claims 4294967295 bytes, only 0 left");
  b.len = 0;
  put_tag(&b, 2, 2);
  put_varint(&b, 1ULL << 63);
  put(&b, "abc", 3);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "only 3 left");
  b.len = 0;
  put_tag(&b, 3, 2);
  put_varint(&b, 4);
  put(&b, "abc", 3);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "claims 4 bytes, only 3 left");
  b.len = 0;
  /* A submessage whose inner field runs past the submessage's end. */
  uint8_t sub[] = {0x0a, 0x05, 'a', 'b'}; /* event_id claims 5 bytes, 2 inside meta */
  put_ld(&b, 1, sub, sizeof sub);
  put(&b, "xyz", 3);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "claims 5 bytes, only 2 left");
  b.len = 0;
  /* Truncated fixed-width values. */
  put_tag(&b, 9, 1);
  put(&b, "1234567", 7);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "truncated 64-bit field 9");
  b.len = 0;
  put_tag(&b, 9, 5);
  put(&b, "123", 3);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "truncated 32-bit field 9");
  b.len = 0;
  /* Groups and invalid wire types, field numbers out of range. */
  for (unsigned wt = 3; wt <= 7; wt++) {
    if (wt == 5)
      continue;
    b.len = 0;
    put_tag(&b, 1, wt);
    put(&b, "\x00\x00\x00\x00\x00\x00\x00\x00", 8);
    expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "unsupported wire type");
  }
  b.len = 0;
  put_varint(&b, (uint64_t)536870912 << 3);
  put_varint(&b, 0);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "invalid field number 536870912");
  b.len = 0;
  /* Too big: refused before parsing, whatever the bytes. */
  put(&b, "\xff\xff\xff", 3);
  expect_fail(CREATED, b.p, b.len, 2, WR_ETOOBIG, "3 bytes exceed the limit of 2");
  free(b.p);
}

static void unknown_fields_accepted(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f, CREATED->type, CREATED->aggregate_type);
  size_t len;
  uint8_t *orig = pack(&f.ev, &len);
  buf b = {0};
  put(&b, orig, len);
  /* A newer producer's fields, of every wire type; an unknown field's content is
   * not ours to judge (not UTF-8 here). */
  put_tag(&b, 99, 0);
  put_varint(&b, 123456789);
  put_ld(&b, 100, "new\xff", 4);
  put_tag(&b, 101, 5);
  put(&b, "\x01\x02\x03\x04", 4);
  put_tag(&b, 102, 1);
  put(&b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  Testev__V1__WidgetCreated *ev = (Testev__V1__WidgetCreated *)expect_ok(CREATED, b.p, b.len);
  assert_int_equal(ev->base.n_unknown_fields, 4);
  assert_int_equal(ev->base.unknown_fields[0].tag, 99);
  assert_int_equal(ev->base.unknown_fields[1].tag, 100);
  assert_string_equal(ev->meta->event_id, f.id);
  /* Kept: packing again reproduces the input byte for byte. */
  size_t again_len;
  uint8_t *again = pack(ev, &again_len);
  assert_int_equal(again_len, b.len);
  assert_memory_equal(again, b.p, b.len);
  free(again);
  wr_event_free(&ev->base);

  /* An unknown field inside meta (a newer EventMeta), and inside the payload. */
  b.len = 0;
  buf meta = {0};
  size_t ml;
  uint8_t *mb = pack(&f.meta, &ml);
  put(&meta, mb, ml);
  put_ld(&meta, 11, "tenant-7", 8);
  put_ld(&b, 1, meta.p, meta.len);
  put_ld(&b, 2, "\xa0\x06\x01", 3); /* Widget with only an unknown field 100 = 1 */
  ev = (Testev__V1__WidgetCreated *)expect_ok(CREATED, b.p, b.len);
  assert_int_equal(ev->meta->base.n_unknown_fields, 1);
  assert_int_equal(ev->meta->base.unknown_fields[0].tag, 11);
  wr_event_free(&ev->base);
  free(mb);
  free(meta.p);
  free(orig);
  free(b.p);
}

static void strings_on_the_wire(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f, CREATED->type, CREATED->aggregate_type);
  struct {
    const char *bytes;
    size_t n;
    int code;
    const char *want;
  } ids[] = {
      {"w\0x", 3, WR_EDECODE, "contains a NUL byte"},
      {"w\xc3\x28", 3, WR_EDECODE, "string field aggregate_id at byte"},
      {"\xed\xa0\x80", 3, WR_EDECODE, "is not valid UTF-8"},
      {"\xe2\x82\xac-\xf0\x9f\x90\x87", 8, 0, NULL},
  };
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    /* meta without aggregate_id, then the raw field appended (same message). */
    f.meta.aggregate_id = "";
    buf meta = {0};
    size_t ml;
    uint8_t *mb = pack(&f.meta, &ml);
    put(&meta, mb, ml);
    put_ld(&meta, 4, ids[i].bytes, ids[i].n);
    buf b = {0};
    put_ld(&b, 1, meta.p, meta.len);
    if (ids[i].code)
      expect_fail(CREATED, b.p, b.len, 0, ids[i].code, ids[i].want);
    else
      wr_event_free(expect_ok(CREATED, b.p, b.len));
    free(mb);
    free(meta.p);
    free(b.p);
  }
  buf b = {0};
  /* Nested payload strings are checked too (Widget.name = field 2 of data). */
  f.meta.aggregate_id = "w-1";
  put_msg(&b, 1, &f.meta);
  put_ld(&b, 2, "\x12\x02\xff\xfe", 4);
  expect_fail(CREATED, b.p, b.len, 0, WR_EDECODE, "string field name");
  free(b.p);
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* DeepEvent bytes: meta, then `levels` nested Recursive messages as tree, then a tag.
 * Each level holds only its child, so the encoding is every level's header, outermost
 * first, followed by the innermost message: lengths are computed inside out. */
static uint8_t *deep_event(size_t levels, size_t *len) {
  size_t *lens = malloc(levels * sizeof *lens); /* lens[i]: size of level i's content */
  assert_non_null(lens);
  lens[levels - 1] = 2; /* innermost: depth = 1 (field 2, varint) */
  for (size_t i = levels - 1; i > 0; i--)
    lens[i - 1] = 1 + varint_size(lens[i]) + lens[i];
  fixture f;
  fixture_init(&f, deep_type.type, deep_type.aggregate_type);
  buf ev = {0};
  put_msg(&ev, 1, &f.meta);
  put_tag(&ev, 2, 2);
  put_varint(&ev, lens[0]);
  for (size_t i = 0; i + 1 < levels; i++) {
    put_tag(&ev, 1, 2);
    put_varint(&ev, lens[i + 1]);
  }
  put(&ev, "\x10\x01", 2);
  put_ld(&ev, 3, "tag", 3);
  free(lens);
  *len = ev.len;
  return ev.p;
}

static void nesting_depth(void **state) {
  (void)state;
  size_t len;
  /* The event is level 1, its tree level 2: 63 tree levels reach the limit of 64. */
  uint8_t *ok = deep_event(WR_EVENT_MAX_DEPTH - 1, &len);
  Jsontest__V1__DeepEvent *ev = (Jsontest__V1__DeepEvent *)expect_ok(&deep_type, ok, len);
  size_t levels = 0;
  for (Jsontest__V1__Recursive *r = ev->tree; r; r = r->child)
    levels++;
  assert_int_equal(levels, WR_EVENT_MAX_DEPTH - 1);
  wr_event_free(&ev->base);
  free(ok);

  uint8_t *deep = deep_event(WR_EVENT_MAX_DEPTH, &len);
  expect_fail(&deep_type, deep, len, 0, WR_EDECODE, "messages nested deeper than 64");
  free(deep);
  /* 200,000 levels (under 1 MB). Measured: protobuf-c 1.4.1's recursive unpack alone
   * overflows an 8 MiB stack at about 9,000 levels (30 KB of input); the bounded scan
   * refuses this before protobuf-c sees it. */
  deep = deep_event(200000, &len);
  expect_fail(&deep_type, deep, len, 0, WR_EDECODE, "nested deeper than 64");
  free(deep);

  /* Repeated strings of the payload are checked one by one. */
  fixture f;
  fixture_init(&f, deep_type.type, deep_type.aggregate_type);
  buf b = {0};
  put_msg(&b, 1, &f.meta);
  put_ld(&b, 3, "ok", 2);
  put_ld(&b, 3, "\xc0\x80", 2); /* overlong NUL */
  expect_fail(&deep_type, b.p, b.len, 0, WR_EDECODE, "string field tags");
  free(b.p);
}

static void bad_arguments(void **state) {
  (void)state;
  ProtobufCMessage *m = (ProtobufCMessage *)0x1;
  wr_err err = {0};
  assert_int_equal(wr_event_decode(NULL, "", 0, 0, &m, &err), WR_EINVAL);
  assert_null(m);
  assert_int_equal(wr_event_decode(CREATED, "", 0, 0, NULL, &err), WR_EINVAL);
  assert_int_equal(wr_event_decode(CREATED, NULL, 5, 0, &m, &err), WR_EINVAL);
  wr_event_type no_desc = *CREATED;
  no_desc.descriptor = NULL;
  assert_int_equal(wr_event_decode(&no_desc, "", 0, 0, &m, &err), WR_EINVAL);
  assert_int_equal(err.code, WR_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decode_valid),
      cmocka_unit_test(decode_bad_meta),
      cmocka_unit_test(validate_directly),
      cmocka_unit_test(meta_access),
      cmocka_unit_test(garbage_and_truncation),
      cmocka_unit_test(wire_format_attacks),
      cmocka_unit_test(unknown_fields_accepted),
      cmocka_unit_test(strings_on_the_wire),
      cmocka_unit_test(nesting_depth),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
