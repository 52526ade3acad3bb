/* fuzz_cursor.c: the customer service's keyset cursor (services/customer/cursor.c),
 * which arrives in the query string of GET /customers (?after=...).
 *
 * Input: the cursor text (cut at the first NUL byte, as a C string from the query
 * decoder would be).
 *
 * Properties: a refused cursor leaves *c untouched; an accepted one re-encodes, and
 * the re-encoded text decodes to the same (updated_at, id) and is canonical (encoding
 * it again gives the same text). */
#include <string.h>

#include <warren/error.h>

#include "cursor.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4 * CURSOR_MAX)
    return 0; /* refused on length before any parsing */
  char *text = malloc(size + 1);
  FUZZ_CHECK(text != NULL, "out of memory");
  memcpy(text, data, size);
  text[size] = '\0';

  cursor sentinel;
  memset(&sentinel, 0x5a, sizeof sentinel);
  cursor c = sentinel;
  int rc = cursor_decode(text, &c);
  if (rc != 0) {
    FUZZ_CHECK(rc == WR_EINVAL, "undocumented code %d", rc);
    FUZZ_CHECK(memcmp(&c, &sentinel, sizeof c) == 0, "cursor changed on failure");
    free(text);
    return 0;
  }
  size_t idlen = strnlen(c.id, sizeof c.id);
  FUZZ_CHECK(idlen > 0 && idlen <= CURSOR_ID_MAX, "id of %zu bytes accepted", idlen);

  char enc[CURSOR_MAX + 1];
  rc = cursor_encode(&c, enc, sizeof enc);
  FUZZ_CHECK(rc == 0, "an accepted cursor does not re-encode (id \"%s\")", c.id);
  cursor back = sentinel;
  rc = cursor_decode(enc, &back);
  FUZZ_CHECK(rc == 0, "own encoding \"%s\" refused", enc);
  FUZZ_CHECK(back.updated_us == c.updated_us && strcmp(back.id, c.id) == 0,
             "round trip changed the cursor: %lld/%s -> %lld/%s", (long long)c.updated_us, c.id,
             (long long)back.updated_us, back.id);
  char enc2[CURSOR_MAX + 1];
  FUZZ_CHECK(cursor_encode(&back, enc2, sizeof enc2) == 0 && strcmp(enc, enc2) == 0,
             "encoding not canonical: %s vs %s", enc, enc2);
  free(text);
  return 0;
}
