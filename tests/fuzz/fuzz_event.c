/* fuzz_event.c: wr_event_decode + meta validation over bytes from the broker.
 *
 * Input: byte 0 selects the event type (testev's three, the four customer.v1 events,
 * order.v1.OrderPlaced, and jsontest.v1.DeepEvent whose recursive payload reaches the
 * nesting limit); the rest is the message body as it would arrive in a delivery.
 *
 * Properties checked beyond "no crash, no leak, no undefined behaviour":
 * - failure: *out is NULL, the code is one wr_event_decode documents, err says why in
 *   one printable line (an error text ends up in logs and DLQ headers);
 * - success: the meta validates again; the event re-packed by protobuf-c decodes again
 *   and re-packs to the same bytes (what the consumer accepts, a republish keeps);
 * - success: when the event has a JSON form (wr_json_encode succeeds; it may refuse a
 *   payload Timestamp out of range), that JSON decodes back, and encodes to the same
 *   text (the DLQ tools show events as JSON). */
#include <string.h>

#include <warren/event.h>
#include <warren/json.h>
#include <warren/schema.h>

#include "customer/v1/customer.warren.h"
#include "fuzz.h"
#include "jsontest/v1/jsontest.pb-c.h"
#include "order/v1/order.warren.h"
#include "testev_schema.h"

/* jsontest.v1.DeepEvent as an event type (it has no generated wr_schema). */
static const wr_schema deep_schema;
static const wr_event_type deep_events[] = {
    {"jsontest.v1.DeepEvent", "deep", WR_KIND_OTHER, "jsontest.events",
     &jsontest__v1__deep_event__descriptor, &deep_schema},
};
static const wr_schema deep_schema = {WR_CODEGEN_ABI,
                                      "jsontest/v1/jsontest.proto",
                                      "jsontest.v1",
                                      "jsontest.events",
                                      1,
                                      deep_events,
                                      0,
                                      NULL};

static const wr_event_type *types[] = {
    &testev_events[0],      &testev_events[1],      &testev_events[2],
    &customer_v1_events[0], &customer_v1_events[1], &customer_v1_events[2],
    &customer_v1_events[3], &order_v1_events[0],    &deep_events[0],
};
#define N_TYPES (sizeof types / sizeof types[0])

/* The largest body the target looks at: bigger inputs only cost time (the size check
 * comes first and is exercised by the selector's limit variant below). */
#define FUZZ_MAX_INPUT (256 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* JSON names for the round trip; a second registration of the same table is fine. */
  wr_schema_register(&testev_schema);
  wr_schema_register(&customer_v1_schema);
  wr_schema_register(&order_v1_schema);
  return 0;
}

static void check_err_text(const wr_err *e, int rc) {
  size_t n = strnlen(e->msg, sizeof e->msg);
  FUZZ_CHECK(n > 0 && n < sizeof e->msg, "rc %d with an empty or unterminated message", rc);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK((unsigned char)e->msg[i] >= 0x20 && e->msg[i] != 0x7f,
               "control byte 0x%02x at %zu in error text \"%s\"", (unsigned char)e->msg[i], i,
               e->msg);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  FUZZ_CHECK(b != NULL, "out of memory");
  FUZZ_CHECK(protobuf_c_message_pack(m, b) == *len, "pack size differs from packed size");
  return b;
}

static void json_round_trip(const wr_event_type *t, const ProtobufCMessage *ev) {
  char *j1 = NULL;
  wr_err e;
  wr_err_clear(&e);
  if (wr_json_encode_string(ev, 0, &j1, &e) != 0) {
    FUZZ_CHECK(j1 == NULL, "output left on failure");
    return; /* e.g. a payload Timestamp outside years 1-9999: no JSON form */
  }
  ProtobufCMessage *back = NULL;
  int rc = wr_json_decode_string(t->descriptor, j1, strlen(j1), 0, &back, &e);
  FUZZ_CHECK(rc == 0, "%s: own JSON does not decode: %s\n%s", t->type, e.msg, j1);
  char *j2 = NULL;
  rc = wr_json_encode_string(back, 0, &j2, &e);
  FUZZ_CHECK(rc == 0, "%s: decoded JSON does not encode: %s", t->type, e.msg);
  FUZZ_CHECK(strcmp(j1, j2) == 0, "%s: JSON not stable:\n%s\n%s", t->type, j1, j2);
  /* the JSON form holds a valid event too (unknown wire fields are not part of it) */
  rc = wr_event_validate(t, back, &e);
  FUZZ_CHECK(rc == 0, "%s: event from its own JSON does not validate: %s", t->type, e.msg);
  free(j1);
  free(j2);
  protobuf_c_message_free_unpacked(back, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT)
    return 0;
  const wr_event_type *t = types[data[0] % N_TYPES];
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  /* selector 0xff also sets a size limit just below the body: WR_ETOOBIG first */
  size_t limit = data[0] == 0xff && len > 1 ? len - 1 : 0;

  ProtobufCMessage *ev = (ProtobufCMessage *)(uintptr_t)1;
  wr_err e;
  wr_err_clear(&e);
  int rc = wr_event_decode(t, len ? body : NULL, len, limit, &ev, &e);
  if (rc != 0) {
    FUZZ_CHECK(ev == NULL, "*out not NULL on failure");
    FUZZ_CHECK(rc == WR_EDECODE || rc == WR_EMETA || rc == WR_ETOOBIG || rc == WR_ENOMEM,
               "undocumented code %d (%s)", rc, e.msg);
    FUZZ_CHECK(e.code == rc, "err->code %d, returned %d", e.code, rc);
    check_err_text(&e, rc);
    return 0;
  }
  FUZZ_CHECK(ev != NULL && ev->descriptor == t->descriptor, "success without a %s", t->type);
  FUZZ_CHECK(limit == 0 || len <= limit, "accepted %zu bytes over the limit %zu", len, limit);
  FUZZ_CHECK(wr_event_meta(ev) != NULL, "decoded event without meta");
  FUZZ_CHECK(wr_event_validate(t, ev, &e) == 0, "decoded event does not validate: %s", e.msg);

  size_t l1, l2;
  uint8_t *b1 = pack(ev, &l1);
  ProtobufCMessage *again = NULL;
  rc = wr_event_decode(t, l1 ? b1 : NULL, l1, 0, &again, &e);
  FUZZ_CHECK(rc == 0, "%s: re-packed event refused: %s", t->type, e.msg);
  uint8_t *b2 = pack(again, &l2);
  FUZZ_CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0, "%s: packing not stable (%zu vs %zu bytes)",
             t->type, l1, l2);
  free(b1);
  free(b2);
  wr_event_free(again);

  json_round_trip(t, ev);
  wr_event_free(ev);
  return 0;
}
