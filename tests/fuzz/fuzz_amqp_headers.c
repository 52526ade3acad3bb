/* fuzz_amqp_headers.c: AMQP message headers as warren reads them: x-death (set by the
 * broker, but copied by anyone who republishes) and the x-warren-* headers, in the DLQ
 * tools (runtime/src/dlq.c: what `warren dlq list/show/replay` display and where a
 * replay goes) and in the consumer (x-warren-attempt, x-warren-original-routing-key).
 *
 * Input: byte 0 picks the envelope around the headers (bit 0: the DLQ is named
 * "<queue>.dlq", else something else; bit 1: message_id, type and correlation_id
 * properties are taken from the header bytes too); the rest is an AMQP field table in
 * wire format (4-byte length, then entries), decoded by rabbitmq-c's amqp_decode_table
 * as it decodes a content header's headers.
 *
 * dlq.c's header reader is file-static (entry_read), so this file compiles dlq.c
 * itself (#include below): the statically linked libwarren then contributes no second
 * copy, and the function under test is exactly the shipped one, without a test-only
 * export.
 *
 * Properties: every text field of the entry is NUL-terminated within its array and
 * holds no control character (they go to terminals and logs); a found origin is
 * within the header bytes or the queue name, at most as long; the headers left for a
 * replay (x-death and x-warren-* stripped) hold none of the stripped keys and encode
 * again (the replay publishes them). */
#include <string.h>

#include <amqp.h>

#include "dlq.c" /* see above */
#include "fuzz.h"

#define FUZZ_MAX_INPUT (128 * 1024) /* one AMQP frame at warren's frame_max */

#define CHECK_TEXT(field)                                                                          \
  do {                                                                                             \
    size_t n_ = strnlen(e.field, sizeof e.field);                                                  \
    FUZZ_CHECK(n_ < sizeof e.field, #field " not terminated");                                     \
    for (size_t i_ = 0; i_ < n_; i_++)                                                             \
      FUZZ_CHECK((unsigned char)e.field[i_] >= 0x20 && e.field[i_] != 0x7f,                        \
                 #field ": control byte 0x%02x", (unsigned char)e.field[i_]);                      \
  } while (0)

static bool within(amqp_bytes_t b, const uint8_t *lo, size_t n) {
  if (b.len == 0)
    return true;
  const uint8_t *p = b.bytes;
  return p >= lo && p + b.len <= lo + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT)
    return 0;
  uint8_t flags = data[0];
  /* rabbitmq-c decodes from a frame buffer it owns: give it an exact-size copy */
  size_t len = size - 1;
  uint8_t *buf = malloc(len ? len : 1);
  FUZZ_CHECK(buf != NULL, "out of memory");
  memcpy(buf, data + 1, len);

  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t headers;
  size_t off = 0;
  if (len < 4 ||
      amqp_decode_table((amqp_bytes_t){len, buf}, &pool, &headers, &off) != AMQP_STATUS_OK) {
    empty_amqp_pool(&pool);
    free(buf);
    return 0;
  }

  amqp_envelope_t env;
  memset(&env, 0, sizeof env);
  env.message.properties._flags = AMQP_BASIC_HEADERS_FLAG;
  env.message.properties.headers = headers;
  if (flags & 2) {
    /* outside-controlled properties: slices of the same bytes */
    size_t third = len / 3;
    env.message.properties._flags |=
        AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    env.message.properties.message_id = (amqp_bytes_t){third, buf};
    env.message.properties.type = (amqp_bytes_t){third, buf + third};
    env.message.properties.correlation_id = (amqp_bytes_t){len - 2 * third, buf + 2 * third};
  }
  env.message.body = (amqp_bytes_t){len, buf};
  const char *dlq = (flags & 1) ? "order.customer-sync.dlq" : "parking-lot";

  wr_dlq_entry e;
  origin o;
  entry_read(&env, dlq, 7, &e, &o);
  FUZZ_CHECK(e.index == 7 && e.body == buf && e.body_len == len, "envelope fields not copied");
  CHECK_TEXT(message_id);
  CHECK_TEXT(type);
  CHECK_TEXT(aggregate_type);
  CHECK_TEXT(aggregate_id);
  CHECK_TEXT(correlation_id);
  CHECK_TEXT(error);
  CHECK_TEXT(exchange);
  CHECK_TEXT(routing_key);
  CHECK_TEXT(queue);
  if (o.known) {
    FUZZ_CHECK(within(o.exchange, buf, len) || o.exchange.len == 0, "exchange outside the input");
    FUZZ_CHECK(within(o.routing_key, buf, len) ||
                   within(o.routing_key, (const uint8_t *)dlq, strlen(dlq)),
               "routing key outside the input and the queue name");
  }
  FUZZ_CHECK(within(o.died_in, buf, len) || within(o.died_in, (const uint8_t *)dlq, strlen(dlq)),
             "queue name outside the input");

  /* the consumer's reads of the same headers */
  int64_t attempt;
  (void)wr_table_get_int(&headers, "x-warren-attempt", &attempt);
  char rk[256];
  if (wr_table_get_str(&headers, "x-warren-original-routing-key", rk, sizeof rk))
    FUZZ_CHECK(strnlen(rk, sizeof rk) < sizeof rk, "routing key not terminated");

  /* the replay's copy: stripped headers, which must encode again */
  if (headers.num_entries > 0) {
    amqp_table_entry_t *kept = malloc((size_t)headers.num_entries * sizeof *kept);
    FUZZ_CHECK(kept != NULL, "out of memory");
    int n = 0;
    for (int i = 0; i < headers.num_entries; i++)
      if (!strip_header(headers.entries[i].key))
        kept[n++] = headers.entries[i];
    amqp_table_t t = {n, kept};
    FUZZ_CHECK(wr_table_get(&t, "x-death") == NULL && wr_table_get(&t, "x-warren-error") == NULL,
               "stripped header kept");
    size_t room = len + 64;
    uint8_t *out = malloc(room);
    FUZZ_CHECK(out != NULL, "out of memory");
    size_t eoff = 0;
    int st = amqp_encode_table((amqp_bytes_t){room, out}, &t, &eoff);
    FUZZ_CHECK(st == AMQP_STATUS_OK, "decoded headers do not encode again: %s",
               amqp_error_string2(st));
    free(out);
    free(kept);
  }
  empty_amqp_pool(&pool);
  free(buf);
  return 0;
}
