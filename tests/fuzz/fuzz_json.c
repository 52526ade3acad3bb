/* fuzz_json.c: wr_json_decode_string over arbitrary text (request bodies, tool input).
 *
 * Input: byte 0 selects the message type (low 4 bits: every kind of field from
 * jsontest.v1, proto2 presence and required fields, the reference events, the event
 * meta, a bare google.protobuf.Timestamp) and the decode flags (bit 4:
 * WR_JSON_IGNORE_UNKNOWN); the rest is the JSON text.
 *
 * Properties, whenever the text decodes:
 * - it encodes (what was accepted has a JSON form), and that JSON decodes again and
 *   encodes to the same text (stable after one round);
 * - with WR_JSON_EMIT_DEFAULTS too, and decoding that gives the same message;
 * - the message survives protobuf-c's binary round trip (pack, unpack, pack: same
 *   bytes, and it still encodes): the decoder built a well-formed protobuf-c message
 *   (counts, pointers, oneof cases, presence flags in step). */
#include <string.h>

#include <warren/json.h>
#include <warren/schema.h>

#include "customer/v1/customer.warren.h"
#include "fuzz.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "jsontest/v1/jsontest.pb-c.h"
#include "jsontest/v1/legacy.pb-c.h"
#include "order/v1/order.warren.h"
#include "testev_schema.h"

static const ProtobufCMessageDescriptor *descs[16] = {
    &jsontest__v1__scalars__descriptor,
    &jsontest__v1__repeated__descriptor,
    &jsontest__v1__maps__descriptor,
    &jsontest__v1__oneofs__descriptor,
    &jsontest__v1__recursive__descriptor,
    &jsontest__v1__names__descriptor,
    &jsontest__v1__deep_event__descriptor,
    &jsontest__v1__legacy__descriptor,
    &jsontest__v1__legacy_holder__descriptor,
    &google__protobuf__timestamp__descriptor,
    &customer__v1__customer_created__descriptor,
    &customer__v1__customer_updated__descriptor,
    &customer__v1__customer_deleted__descriptor,
    &order__v1__order_placed__descriptor,
    &testev__v1__widget_created__descriptor,
    &warren__v1__event_meta__descriptor,
};

/* Texts past this size only cost time: jansson and wr_json scale linearly. */
#define FUZZ_MAX_INPUT (256 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* generated JSON names (json_name options) for the reference schemas */
  wr_schema_register(&customer_v1_schema);
  wr_schema_register(&order_v1_schema);
  wr_schema_register(&testev_schema);
  return 0;
}

static char *encode(const ProtobufCMessage *m, unsigned flags, const char *what) {
  char *s = NULL;
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_json_encode_string(m, flags, &s, &e);
  FUZZ_CHECK(rc == 0 && s != NULL, "%s: %s: encoding a decoded message failed: %s",
             m->descriptor->name, what, e.msg);
  return s;
}

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const char *text,
                                const char *what) {
  ProtobufCMessage *m = NULL;
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_json_decode_string(d, text, strlen(text), 0, &m, &e);
  FUZZ_CHECK(rc == 0 && m != NULL, "%s: %s does not decode: %s\n%s", d->name, what, e.msg, text);
  return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT)
    return 0;
  const ProtobufCMessageDescriptor *d = descs[data[0] & 15];
  unsigned flags = (data[0] & 16) ? WR_JSON_IGNORE_UNKNOWN : 0;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;

  ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)1;
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_json_decode_string(d, text, len, flags, &m, &e);
  if (rc != 0) {
    FUZZ_CHECK(m == NULL, "*out not NULL on failure");
    FUZZ_CHECK(rc == WR_EJSON || rc == WR_ENOMEM, "undocumented code %d (%s)", rc, e.msg);
    FUZZ_CHECK(e.code == rc && e.msg[0] != '\0', "no reason given for %d", rc);
    return 0;
  }
  FUZZ_CHECK(m != NULL && m->descriptor == d, "success without a %s", d->name);

  char *j1 = encode(m, 0, "first encoding");
  ProtobufCMessage *m2 = decode(d, j1, "its own JSON");
  char *j2 = encode(m2, 0, "second encoding");
  FUZZ_CHECK(strcmp(j1, j2) == 0, "%s: JSON not stable:\n%s\n%s", d->name, j1, j2);

  char *jd = encode(m, WR_JSON_EMIT_DEFAULTS, "encoding with defaults");
  ProtobufCMessage *m3 = decode(d, jd, "its JSON with defaults");
  char *j3 = encode(m3, 0, "encoding after defaults");
  FUZZ_CHECK(strcmp(j1, j3) == 0, "%s: defaults change the message:\n%s\n%s\n%s", d->name, j1, jd,
             j3);

  /* Binary round trip. Compared as protobuf, not as JSON: protobuf-c does not write a
   * proto3 float/double of -0.0 (it compares with 0), while the JSON mapping keeps the
   * sign, as protoc's C++ runtime does on both sides. */
  size_t plen = protobuf_c_message_get_packed_size(m);
  uint8_t *pb = malloc(plen ? plen : 1);
  FUZZ_CHECK(pb != NULL, "out of memory");
  FUZZ_CHECK(protobuf_c_message_pack(m, pb) == plen, "%s: pack size mismatch", d->name);
  ProtobufCMessage *m4 = protobuf_c_message_unpack(d, NULL, plen, pb);
  FUZZ_CHECK(m4 != NULL, "%s: protobuf-c refuses the packed form of a decoded message", d->name);
  char *j4 = encode(m4, 0, "encoding after pack/unpack");
  size_t plen4 = protobuf_c_message_get_packed_size(m4);
  uint8_t *pb4 = malloc(plen4 ? plen4 : 1);
  FUZZ_CHECK(pb4 != NULL, "out of memory");
  FUZZ_CHECK(protobuf_c_message_pack(m4, pb4) == plen4 && plen4 == plen &&
                 memcmp(pb, pb4, plen) == 0,
             "%s: binary round trip changes the message:\n%s\n%s", d->name, j1, j4);
  free(pb4);
  free(pb);
  free(j1);
  free(j2);
  free(jd);
  free(j3);
  free(j4);
  protobuf_c_message_free_unpacked(m, NULL);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m3, NULL);
  protobuf_c_message_free_unpacked(m4, NULL);
  return 0;
}
