/* json.c: the proto3 JSON mapping over protobuf-c descriptors (see warren/json.h).
 *
 * Everything is driven by ProtobufCMessageDescriptor: field offsets, labels and
 * quantifier offsets tell where a value lives and whether it is present, exactly as
 * protobuf-c's own pack/unpack read them. Decoded messages are built so that
 * protobuf_c_message_free_unpacked(msg, NULL) releases them: every string, array,
 * bytes buffer and submessage is malloc'd and linked into the message as soon as it
 * exists (array counts grow element by element), so the one cleanup call also covers
 * every failure path. Fields that are not given keep what message_init put there
 * (for strings: protobuf_c_empty_string or the declared default, never freed).
 *
 * Both directions recurse once per message level and stop at WR_JSON_MAX_DEPTH.
 * Serialization is done here rather than with json_dumps() because jansson prints
 * every real with 17 significant digits (0.1 becomes 0.10000000000000001); proto3
 * JSON wants the shortest text that reads back to the same value. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <langinfo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/json.h>
#include <warren/schema.h>
#include <warren/util.h>

#include "sbuf.h"
#include "printable.h"
#include "utf8.h"

#define SKIP        1 /* internal: value ignored (unknown enum name with IGNORE_UNKNOWN) */
#define KNOWN_FLAGS (WR_JSON_EMIT_DEFAULTS | WR_JSON_IGNORE_UNKNOWN)

static bool utf8_ok(const char *s, size_t n) {
  return wr__utf8_valid(s, n, NULL);
}

/* ---------------------------------------------------------------- context, errors */

typedef struct jctx {
  unsigned flags;
  wr_err *err;
  unsigned depth; /* message levels entered so far */
  size_t plen;
  char path[320];
} jctx;

/* Appends to the path (truncating when full) and returns the previous length, which
 * path_pop() restores. */
static size_t path_append(jctx *c, const char *s, size_t n) {
  size_t prev = c->plen;
  size_t room = sizeof c->path - 1 - c->plen;
  if (n > room)
    n = room;
  memcpy(c->path + c->plen, s, n);
  c->plen += n;
  c->path[c->plen] = '\0';
  return prev;
}

static void path_pop(jctx *c, size_t prev) {
  c->plen = prev;
  c->path[prev] = '\0';
}

static const char *printable(const char *s, size_t n, char *buf, size_t bufsz) {
  return wr__printable(s, n, 40, buf, bufsz);
}

static size_t path_push_field(jctx *c, const char *name, size_t n) {
  char tmp[200];
  printable(name, n, tmp, sizeof tmp);
  size_t prev = c->plen;
  if (c->plen)
    path_append(c, ".", 1);
  path_append(c, tmp, strlen(tmp));
  return prev;
}

static size_t path_push_index(jctx *c, size_t i) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "[%zu]", i);
  return path_append(c, tmp, (size_t)n);
}

static size_t path_push_key(jctx *c, const char *key, size_t n) {
  char tmp[200];
  printable(key, n, tmp, sizeof tmp);
  size_t prev = path_append(c, "[\"", 2);
  path_append(c, tmp, strlen(tmp));
  path_append(c, "\"]", 2);
  return prev;
}

static int jfail(jctx *c, int code, const char *fmt, ...) WR_PRINTF(3, 4);
static int jfail(jctx *c, int code, const char *fmt, ...) {
  char reason[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  if (c->plen)
    return wr_err_set(c->err, code, "%s: %s", c->path, reason);
  return wr_err_set(c->err, code, "%s", reason);
}

static int oom(jctx *c) {
  return jfail(c, WR_ENOMEM, "out of memory");
}

static const char *jtype(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  }
  return "an unknown JSON value";
}

/* ---------------------------------------------------------------- descriptors */

#define MEMBER(m, off)  ((char *)(m) + (off))
#define CMEMBER(m, off) ((const char *)(m) + (off))

static size_t elt_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  default:
    return 4; /* int32, sint32, sfixed32, uint32, fixed32, float, enum */
  }
}

static bool is_message_desc(const ProtobufCMessageDescriptor *d) {
  return d && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

/* google.protobuf.Timestamp, recognized by name and shape (so a second protoc-c copy
 * of timestamp.proto linked by a user works too). */
static bool is_timestamp(const ProtobufCMessageDescriptor *d) {
  return d && strcmp(d->name, "google.protobuf.Timestamp") == 0 && d->n_fields == 2 &&
         d->fields[0].id == 1 && d->fields[0].type == PROTOBUF_C_TYPE_INT64 &&
         d->fields[0].label != PROTOBUF_C_LABEL_REPEATED && d->fields[1].id == 2 &&
         d->fields[1].type == PROTOBUF_C_TYPE_INT32 &&
         d->fields[1].label != PROTOBUF_C_LABEL_REPEATED;
}

/* protoc's MapEntryName: "tag_ids" -> "TagIdsEntry". Compares e's full name with
 * parent's full name + "." + that, without allocating. */
static bool map_entry_name_matches(const ProtobufCMessageDescriptor *parent,
                                   const ProtobufCFieldDescriptor *f,
                                   const ProtobufCMessageDescriptor *e) {
  size_t pl = strlen(parent->name);
  const char *n = e->name;
  if (strncmp(n, parent->name, pl) != 0 || n[pl] != '.')
    return false;
  n += pl + 1;
  bool cap = true;
  for (const char *s = f->name; *s; s++) {
    char ch = *s;
    if (ch == '_') {
      cap = true;
      continue;
    }
    if (cap && ch >= 'a' && ch <= 'z')
      ch = (char)(ch - 'a' + 'A');
    cap = false;
    if (*n++ != ch)
      return false;
  }
  return strcmp(n, "Entry") == 0;
}

/* A map field: what protoc-c makes of `map<K, V> f`: a repeated field of a nested
 * message named after the field, with exactly key = 1 and value = 2. */
static bool is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
    return false;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  if (!is_message_desc(e) || !e->message_init || e->n_fields != 2)
    return false;
  const ProtobufCFieldDescriptor *k = &e->fields[0], *v = &e->fields[1];
  if (k->id != 1 || v->id != 2 || strcmp(k->name, "key") != 0 || strcmp(v->name, "value") != 0 ||
      k->label == PROTOBUF_C_LABEL_REPEATED || v->label == PROTOBUF_C_LABEL_REPEATED)
    return false;
  switch (k->type) {
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
  case PROTOBUF_C_TYPE_ENUM:
    return false;
  default:
    break;
  }
  return map_entry_name_matches(parent, f, e);
}

/* protoc's ToJsonName: drop every '_' and upper-case the character after it (ASCII
 * letters only). out must hold strlen(in) + 1 bytes. */
static size_t derive_json_name(const char *in, char *out) {
  size_t o = 0;
  bool cap = false;
  for (; *in; in++) {
    char ch = *in;
    if (ch == '_') {
      cap = true;
      continue;
    }
    if (cap && ch >= 'a' && ch <= 'z')
      ch = (char)(ch - 'a' + 'A');
    cap = false;
    out[o++] = ch;
  }
  out[o] = '\0';
  return o;
}

/* Same, compared with key[0..klen) without building the name. */
static bool derived_name_eq(const char *in, const char *key, size_t klen) {
  size_t o = 0;
  bool cap = false;
  for (; *in; in++) {
    char ch = *in;
    if (ch == '_') {
      cap = true;
      continue;
    }
    if (cap && ch >= 'a' && ch <= 'z')
      ch = (char)(ch - 'a' + 'A');
    cap = false;
    if (o >= klen || key[o] != ch)
      return false;
    o++;
  }
  return o == klen;
}

static bool name_eq(const char *name, const char *key, size_t klen) {
  return strlen(name) == klen && memcmp(name, key, klen) == 0;
}

/* Marks a singular field present after its value was stored: the oneof case, or the
 * has_ flag of a proto2 optional scalar/bytes field. */
static void mark_present(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)MEMBER(m, f->quantifier_offset) = f->id;
  else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
           f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
}

/* ---------------------------------------------------------------- numbers as text */

/* Replaces the first occurrence of the current locale's decimal point in buf with
 * '.' (never longer), so output does not depend on setlocale(LC_NUMERIC). */
static void to_c_decimal_point(char *buf) {
  const char *dp = nl_langinfo(RADIXCHAR);
  if (!dp || strcmp(dp, ".") == 0 || !*dp)
    return;
  char *p = strstr(buf, dp);
  if (!p)
    return;
  size_t dl = strlen(dp);
  *p = '.';
  memmove(p + 1, p + dl, strlen(p + dl) + 1);
}

/* The shortest "%.Ng" rendering of v that strtod reads back exactly (v finite).
 * Negative zero is written "-0.0": a JSON parser reads "-0" as the integer 0. */
static void format_double(double v, char *buf, size_t cap) {
  if (v == 0 && signbit(v)) {
    snprintf(buf, cap, "-0.0");
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      break;
  }
  to_c_decimal_point(buf);
}

/* The double nearest to the shortest decimal that reads back as the float f. */
static double float_as_double(float f) {
  char buf[48];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
    if (strtof(buf, NULL) == f)
      return strtod(buf, NULL);
  }
  return (double)f;
}

/* True if s[0..n) is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number_syntax(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-')
    i++;
  if (i >= n)
    return false;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == d)
      return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == d)
      return false;
  }
  return i == n;
}

/* Parses a JSON-syntax decimal number with strtod in any locale. Returns 0, -1 for
 * bad syntax or over-long text, -2 for overflow to infinity. */
static int parse_decimal(const char *s, size_t n, double *out) {
  char buf[128];
  if (n >= sizeof buf - 8 || !json_number_syntax(s, n))
    return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  const char *dp = nl_langinfo(RADIXCHAR);
  char *dot = strchr(buf, '.');
  if (dot && dp && *dp && strcmp(dp, ".") != 0) {
    size_t dl = strlen(dp);
    if (n + dl >= sizeof buf)
      return -1;
    memmove(dot + dl, dot + 1, strlen(dot + 1) + 1);
    memcpy(dot, dp, dl);
  }
  errno = 0;
  double v = strtod(buf, NULL);
  if (errno == ERANGE && isinf(v))
    return -2;
  *out = v;
  return 0;
}

/* ---------------------------------------------------------------- encode */

static int enc_message(jctx *c, const ProtobufCMessage *m, json_t **out);

static int enc_double(jctx *c, double v, bool is_float, json_t **out) {
  if (isnan(v))
    *out = json_string("NaN");
  else if (isinf(v))
    *out = json_string(v > 0 ? "Infinity" : "-Infinity");
  else
    *out = json_real(is_float ? float_as_double((float)v) : v);
  return *out ? 0 : oom(c);
}

static int enc_timestamp(jctx *c, const ProtobufCMessage *m, json_t **out) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  int64_t s = *(const int64_t *)CMEMBER(m, d->fields[0].offset);
  int32_t ns = *(const int32_t *)CMEMBER(m, d->fields[1].offset);
  char buf[WR_RFC3339_STRLEN];
  if (wr_rfc3339_format(s, ns, buf) != 0)
    return jfail(c, WR_EINVAL,
                 "timestamp out of range (seconds %" PRId64 ", nanos %" PRId32
                 "; years 1-9999, nanos 0-999999999)",
                 s, ns);
  /* buf is "YYYY-MM-DDTHH:MM:SS.ffffffZ"; keep the seconds, then print the fraction
   * with 0, 3, 6 or 9 digits as protoc does, so nanoseconds survive. */
  char text[48];
  memcpy(text, buf, 19);
  if (ns == 0)
    snprintf(text + 19, sizeof text - 19, "Z");
  else if (ns % 1000000 == 0)
    snprintf(text + 19, sizeof text - 19, ".%03dZ", (int)(ns / 1000000));
  else if (ns % 1000 == 0)
    snprintf(text + 19, sizeof text - 19, ".%06dZ", (int)(ns / 1000));
  else
    snprintf(text + 19, sizeof text - 19, ".%09dZ", (int)ns);
  *out = json_string(text);
  return *out ? 0 : oom(c);
}

static int enc_string(jctx *c, const char *s, json_t **out) {
  if (!s)
    s = "";
  size_t n = strlen(s);
  if (!utf8_ok(s, n))
    return jfail(c, WR_EINVAL, "string is not valid UTF-8");
  *out = json_stringn_nocheck(s, n);
  return *out ? 0 : oom(c);
}

static int enc_bytes(jctx *c, const ProtobufCBinaryData *bd, json_t **out) {
  if (bd->len > (size_t)INT32_MAX / 4 * 3 - 3)
    return jfail(c, WR_EINVAL, "bytes value of %zu bytes is too large for JSON", bd->len);
  size_t cap = (bd->len + 2) / 3 * 4 + 1;
  char *buf = malloc(cap);
  if (!buf)
    return oom(c);
  int n = wr_base64_encode(bd->data, bd->len, false, buf, cap);
  if (n < 0) {
    free(buf);
    return jfail(c, WR_EINVAL, "cannot encode bytes: %s", wr_strerror(n));
  }
  *out = json_stringn_nocheck(buf, (size_t)n);
  free(buf);
  return *out ? 0 : oom(c);
}

/* The JSON value of one field value; p points at the value (the struct member, an
 * array element or a map entry member). */
static int enc_value(jctx *c, const ProtobufCFieldDescriptor *f, const void *p, json_t **out) {
  char num[32];
  *out = NULL;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *out = json_integer(*(const int32_t *)p);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *out = json_integer(*(const uint32_t *)p);
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)p);
    *out = json_string(num);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    snprintf(num, sizeof num, "%" PRIu64, *(const uint64_t *)p);
    *out = json_string(num);
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    return enc_double(c, *(const float *)p, true, out);
  case PROTOBUF_C_TYPE_DOUBLE:
    return enc_double(c, *(const double *)p, false, out);
  case PROTOBUF_C_TYPE_BOOL:
    *out = json_boolean(*(const protobuf_c_boolean *)p);
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    int32_t v = *(const int32_t *)p;
    const ProtobufCEnumValue *ev =
        f->descriptor ? protobuf_c_enum_descriptor_get_value(f->descriptor, v) : NULL;
    *out = ev ? json_string(ev->name) : json_integer(v);
    break;
  }
  case PROTOBUF_C_TYPE_STRING:
    return enc_string(c, *(char *const *)p, out);
  case PROTOBUF_C_TYPE_BYTES:
    return enc_bytes(c, p, out);
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sm = *(ProtobufCMessage *const *)p;
    if (sm)
      return enc_message(c, sm, out);
    /* A NULL element of a repeated field or map value: the message's default. */
    if (is_timestamp(f->descriptor)) {
      *out = json_string("1970-01-01T00:00:00Z");
      break;
    }
    *out = json_object();
    break;
  }
  default:
    return jfail(c, WR_EINVAL, "unsupported field type %d", (int)f->type);
  }
  return *out ? 0 : oom(c);
}

static bool value_is_zero(const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    return !s || !*s;
  }
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)p)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(ProtobufCMessage *const *)p == NULL;
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p == 0;
  default:
    /* Bit patterns, so -0.0 counts as set and keeps its sign. */
    if (elt_size(f->type) == 8)
      return *(const uint64_t *)p == 0;
    return *(const uint32_t *)p == 0;
  }
}

/* Whether a singular field is written. */
static bool singular_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                             unsigned flags) {
  const void *p = CMEMBER(m, f->offset);
  bool ptr_type = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    if (*(const uint32_t *)CMEMBER(m, f->quantifier_offset) != f->id)
      return false;
    return !ptr_type || *(void *const *)p != NULL;
  }
  switch (f->label) {
  case PROTOBUF_C_LABEL_REQUIRED:
    return true;
  case PROTOBUF_C_LABEL_OPTIONAL:
    if (ptr_type) {
      const void *v = *(void *const *)p;
      return v != NULL && v != f->default_value;
    }
    return f->quantifier_offset != 0 &&
           *(const protobuf_c_boolean *)CMEMBER(m, f->quantifier_offset);
  default: /* PROTOBUF_C_LABEL_NONE: proto3 without presence; messages by pointer */
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
      return *(ProtobufCMessage *const *)p != NULL;
    return (flags & WR_JSON_EMIT_DEFAULTS) || !value_is_zero(f, p);
  }
}

static int enc_map(jctx *c, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *arr,
                   size_t n, json_t **out) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  json_t *obj = json_object();
  if (!obj)
    return oom(c);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessage *e = arr[i];
    if (!e) {
      json_decref(obj);
      return jfail(c, WR_EINVAL, "map entry %zu is NULL", i);
    }
    const void *kp = CMEMBER(e, kf->offset);
    char num[32];
    const char *key = num;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING:
      key = *(char *const *)kp ? *(char *const *)kp : "";
      break;
    case PROTOBUF_C_TYPE_BOOL:
      key = *(const protobuf_c_boolean *)kp ? "true" : "false";
      break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      snprintf(num, sizeof num, "%" PRId32, *(const int32_t *)kp);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      snprintf(num, sizeof num, "%" PRIu32, *(const uint32_t *)kp);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      snprintf(num, sizeof num, "%" PRIu64, *(const uint64_t *)kp);
      break;
    default: /* int64, sint64, sfixed64 */
      snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)kp);
      break;
    }
    size_t klen = strlen(key);
    size_t prev = path_push_key(c, key, klen);
    if (!utf8_ok(key, klen)) {
      int rc = jfail(c, WR_EINVAL, "map key is not valid UTF-8");
      json_decref(obj);
      return rc;
    }
    json_t *v;
    int rc = enc_value(c, vf, CMEMBER(e, vf->offset), &v);
    if (rc) {
      json_decref(obj);
      return rc;
    }
    path_pop(c, prev);
    /* Repeated keys (possible on the wire): the last one wins, as in protobuf. */
    if (json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
      json_decref(obj);
      return oom(c);
    }
  }
  *out = obj;
  return 0;
}

static int enc_repeated(jctx *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                        json_t **out) {
  size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset);
  const char *arr = *(char *const *)CMEMBER(m, f->offset);
  if (n > 0 && !arr)
    return jfail(c, WR_EINVAL, "repeated field has %zu elements but no array", n);
  if (is_map(m->descriptor, f))
    return enc_map(c, f, (ProtobufCMessage *const *)arr, n, out);
  json_t *a = json_array();
  if (!a)
    return oom(c);
  size_t sz = elt_size(f->type);
  for (size_t i = 0; i < n; i++) {
    size_t prev = path_push_index(c, i);
    json_t *v;
    int rc = enc_value(c, f, arr + i * sz, &v);
    if (rc) {
      json_decref(a);
      return rc;
    }
    path_pop(c, prev);
    if (json_array_append_new(a, v) != 0) {
      json_decref(a);
      return oom(c);
    }
  }
  *out = a;
  return 0;
}

static int enc_message(jctx *c, const ProtobufCMessage *m, json_t **out) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  *out = NULL;
  if (!is_message_desc(d))
    return jfail(c, WR_EINVAL, "not a protobuf-c message (bad descriptor)");
  if (c->depth >= WR_JSON_MAX_DEPTH)
    return jfail(c, WR_EINVAL, "messages nested deeper than %d", WR_JSON_MAX_DEPTH);
  if (is_timestamp(d))
    return enc_timestamp(c, m, out);
  json_t *obj = json_object();
  if (!obj)
    return oom(c);
  const char *const *names = wr_schema_json_names(d);
  int rc = 0;
  c->depth++;
  for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      if (*(const size_t *)CMEMBER(m, f->quantifier_offset) == 0 &&
          !(c->flags & WR_JSON_EMIT_DEFAULTS))
        continue;
    } else if (f->label == PROTOBUF_C_LABEL_REQUIRED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
               *(ProtobufCMessage *const *)CMEMBER(m, f->offset) == NULL) {
      /* protobuf-c could not pack this either. */
      rc = jfail(c, WR_EINVAL, "required field %s is not set", f->name);
      break;
    } else if (!singular_present(m, f, c->flags)) {
      continue;
    }
    char small[128], *big = NULL;
    const char *name;
    size_t nlen;
    if (names && names[i]) {
      name = names[i];
      nlen = strlen(name);
    } else {
      size_t l = strlen(f->name);
      char *buf = small;
      if (l >= sizeof small && !(buf = big = malloc(l + 1))) {
        rc = oom(c);
        break;
      }
      nlen = derive_json_name(f->name, buf);
      name = buf;
    }
    size_t prev = path_push_field(c, name, nlen);
    json_t *v = NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
      rc = enc_repeated(c, m, f, &v);
    else
      rc = enc_value(c, f, CMEMBER(m, f->offset), &v);
    if (rc == 0) {
      path_pop(c, prev);
      if (!utf8_ok(name, nlen)) { /* a registered name, from a hand-written table */
        json_decref(v);
        rc = jfail(c, WR_EINVAL, "JSON name of field %s is not valid UTF-8", f->name);
      } else if (json_object_setn_new_nocheck(obj, name, nlen, v) != 0) {
        rc = oom(c);
      }
    }
    free(big);
  }
  c->depth--;
  if (rc) {
    json_decref(obj);
    return rc;
  }
  *out = obj;
  return 0;
}

int wr_json_encode(const ProtobufCMessage *m, unsigned flags, json_t **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!m || !out)
    return wr_err_set(err, WR_EINVAL, "wr_json_encode: NULL %s", m ? "out" : "message");
  if (flags & ~(unsigned)KNOWN_FLAGS)
    return wr_err_set(err, WR_EINVAL, "wr_json_encode: unknown flags 0x%x", flags);
  jctx c = {.flags = flags, .err = err};
  return enc_message(&c, m, out);
}

/* ---------------------------------------------------------------- serialize */

/* Appends s (n bytes) as a JSON string literal. */
static void sb_json_str(wr__sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  wr__sb_put(b, "\"", 1);
  size_t run = 0; /* bytes copied verbatim in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    if (ch == '"')
      esc = "\\\"";
    else if (ch == '\\')
      esc = "\\\\";
    else if (ch == '\n')
      esc = "\\n";
    else if (ch == '\r')
      esc = "\\r";
    else if (ch == '\t')
      esc = "\\t";
    else if (ch == '\b')
      esc = "\\b";
    else if (ch == '\f')
      esc = "\\f";
    else if (ch < 0x20) {
      memcpy(u, "\\u00", 4);
      u[4] = hex[ch >> 4];
      u[5] = hex[ch & 15];
      u[6] = '\0';
      esc = u;
    }
    if (!esc) {
      run++;
      continue;
    }
    wr__sb_put(b, s + i - run, run);
    run = 0;
    wr__sb_put(b, esc, strlen(esc));
  }
  wr__sb_put(b, s + n - run, run);
  wr__sb_put(b, "\"", 1);
}

/* Our own trees are at most 2 JSON levels per message level (a message and an array
 * or map object). */
#define DUMP_MAX_DEPTH (2 * WR_JSON_MAX_DEPTH + 2)

static int dump(wr__sbuf *b, const json_t *v, unsigned depth) {
  char num[48];
  if (depth > DUMP_MAX_DEPTH)
    return WR_EINVAL;
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    wr__sb_put(b, "{", 1);
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
      if (!first)
        wr__sb_put(b, ",", 1);
      first = false;
      sb_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
      wr__sb_put(b, ":", 1);
      int rc = dump(b, json_object_iter_value(it), depth + 1);
      if (rc)
        return rc;
    }
    wr__sb_put(b, "}", 1);
    break;
  }
  case JSON_ARRAY:
    wr__sb_put(b, "[", 1);
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i)
        wr__sb_put(b, ",", 1);
      int rc = dump(b, json_array_get(v, i), depth + 1);
      if (rc)
        return rc;
    }
    wr__sb_put(b, "]", 1);
    break;
  case JSON_STRING:
    sb_json_str(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    wr__sb_put(b, num, strlen(num));
    break;
  case JSON_REAL: {
    double d = json_real_value(v);
    if (!isfinite(d))
      return WR_EINVAL;
    format_double(d, num, sizeof num);
    wr__sb_put(b, num, strlen(num));
    break;
  }
  case JSON_TRUE:
    wr__sb_put(b, "true", 4);
    break;
  case JSON_FALSE:
    wr__sb_put(b, "false", 5);
    break;
  case JSON_NULL:
    wr__sb_put(b, "null", 4);
    break;
  }
  return 0;
}

int wr_json_encode_string(const ProtobufCMessage *m, unsigned flags, char **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!out)
    return wr_err_set(err, WR_EINVAL, "wr_json_encode_string: NULL out");
  json_t *j;
  int rc = wr_json_encode(m, flags, &j, err);
  if (rc)
    return rc;
  wr__sbuf b = {0};
  rc = dump(&b, j, 0);
  json_decref(j);
  if (rc == 0 && (b.oom || !b.p))
    rc = wr_err_set(err, WR_ENOMEM, "out of memory");
  else if (rc)
    wr_err_set(err, rc, "cannot serialize the encoded message");
  if (rc) {
    free(b.p);
    return rc;
  }
  *out = b.p;
  return 0;
}

/* ---------------------------------------------------------------- decode: scalars */

/* A decimal integer in a string: optional '-', then digits only. Returns false on
 * anything else or on overflow of the magnitude. canonical: no leading zeros, no
 * "-0" (map keys, so distinct keys stay distinct values). */
static bool parse_int_text(const char *s, size_t n, bool canonical, bool *neg, uint64_t *mag) {
  size_t i = 0;
  *neg = false;
  if (n > 0 && s[0] == '-') {
    *neg = true;
    i = 1;
  }
  if (i >= n)
    return false;
  if (canonical && s[i] == '0' && (n - i > 1 || *neg))
    return false;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    unsigned dgt = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - dgt) / 10)
      return false;
    v = v * 10 + dgt;
  }
  *mag = v;
  return true;
}

/* Range-checks a sign+magnitude against [min, max] for signed targets. */
static bool signed_from_mag(bool neg, uint64_t mag, int64_t min, int64_t max, int64_t *out) {
  if (neg) {
    if (mag > (uint64_t)INT64_MAX + 1)
      return false;
    int64_t v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    if (v < min)
      return false;
    *out = v;
    return true;
  }
  if (mag > (uint64_t)max)
    return false;
  *out = (int64_t)mag;
  return true;
}

/* A JSON value as an integer: an integral number or a decimal string. Signed targets
 * pass is_unsigned=false and [smin, smax]; unsigned ones umax. */
static int get_integer(jctx *c, const json_t *v, bool is_unsigned, int64_t smin, int64_t smax,
                       uint64_t umax, const char *tname, int64_t *sout, uint64_t *uout) {
  bool neg = false;
  uint64_t mag = 0;
  char show[200];
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    neg = x < 0;
    mag = neg ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
    snprintf(show, sizeof show, "%" JSON_INTEGER_FORMAT, x);
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    format_double(d, show, sizeof show);
    if (!isfinite(d) || d != floor(d))
      return jfail(c, WR_EJSON, "%s is not an integer", show);
    /* 2^64 and -2^63 are exact doubles; anything at or beyond them is out of every
     * 64-bit range. */
    if (d >= 18446744073709551616.0 || d < -9223372036854775808.0)
      return jfail(c, WR_EJSON, "%s is out of range for %s", show, tname);
    neg = d < 0;
    mag = (uint64_t)(neg ? -d : d); /* -d <= 2^63: fits */
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    printable(s, n, show, sizeof show);
    if (!parse_int_text(s, n, false, &neg, &mag)) {
      /* Distinguish "too many digits" from "not a number" for a useful message. */
      size_t digits = 0;
      for (size_t i = (n && s[0] == '-'); i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
      if (digits > 0 && digits == n - (n && s[0] == '-'))
        return jfail(c, WR_EJSON, "\"%s\" is out of range for %s", show, tname);
      return jfail(c, WR_EJSON, "\"%s\" is not a decimal integer", show);
    }
  } else {
    return jfail(c, WR_EJSON, "expected an integer (number or string), got %s", jtype(v));
  }
  if (is_unsigned) {
    if ((neg && mag != 0) || mag > umax)
      return jfail(c, WR_EJSON, "%s%s%s is out of range for %s", json_is_string(v) ? "\"" : "",
                   show, json_is_string(v) ? "\"" : "", tname);
    *uout = mag;
    return 0;
  }
  if (!signed_from_mag(neg, mag, smin, smax, sout))
    return jfail(c, WR_EJSON, "%s%s%s is out of range for %s", json_is_string(v) ? "\"" : "", show,
                 json_is_string(v) ? "\"" : "", tname);
  return 0;
}

/* The largest magnitude that still rounds to a finite float: FLT_MAX + half an ulp. */
#define FLOAT_ROUND_LIMIT 3.4028235677973366e38

static int get_double(jctx *c, const json_t *v, bool is_float, double *out) {
  double d;
  if (json_is_integer(v)) {
    d = (double)json_integer_value(v);
  } else if (json_is_real(v)) {
    d = json_real_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char show[200];
    if (name_eq("NaN", s, n)) {
      *out = NAN;
      return 0;
    }
    if (name_eq("Infinity", s, n)) {
      *out = INFINITY;
      return 0;
    }
    if (name_eq("-Infinity", s, n)) {
      *out = -INFINITY;
      return 0;
    }
    int rc = parse_decimal(s, n, &d);
    if (rc == -2)
      return jfail(c, WR_EJSON, "\"%s\" is out of range for %s", printable(s, n, show, sizeof show),
                   is_float ? "float" : "double");
    if (rc)
      return jfail(c, WR_EJSON, "\"%s\" is not a number", printable(s, n, show, sizeof show));
  } else {
    return jfail(c, WR_EJSON, "expected a number, got %s", jtype(v));
  }
  if (is_float && isfinite(d) && fabs(d) >= FLOAT_ROUND_LIMIT) {
    char show[48];
    format_double(d, show, sizeof show);
    return jfail(c, WR_EJSON, "%s is out of range for float", show);
  }
  *out = d;
  return 0;
}

static int get_string(jctx *c, const json_t *v, char **out) {
  if (!json_is_string(v))
    return jfail(c, WR_EJSON, "expected a string, got %s", jtype(v));
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (memchr(s, '\0', n))
    return jfail(c, WR_EJSON, "string contains U+0000, which a protobuf-c string cannot hold");
  if (!utf8_ok(s, n))
    return jfail(c, WR_EJSON, "string is not valid UTF-8");
  char *copy = malloc(n + 1);
  if (!copy)
    return oom(c);
  memcpy(copy, s, n);
  copy[n] = '\0';
  *out = copy;
  return 0;
}

/* Base64 in either alphabet, padded or not: normalized to padded standard base64 and
 * decoded by wr_base64_decode (strict: canonical trailing bits). */
static int get_bytes(jctx *c, const json_t *v, ProtobufCBinaryData *out) {
  if (!json_is_string(v))
    return jfail(c, WR_EJSON, "expected a base64 string, got %s", jtype(v));
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n > (size_t)INT32_MAX / 2)
    return jfail(c, WR_EJSON, "base64 text of %zu bytes is too long", n);
  size_t pad = 0;
  while (pad < n && s[n - 1 - pad] == '=')
    pad++;
  size_t body = n - pad;
  bool bad = pad > 2 || body % 4 == 1 || (pad && (body + pad) % 4 != 0);
  char *norm = NULL;
  uint8_t *data = NULL;
  int len = 0;
  if (!bad) {
    size_t nlen = (body + 3) / 4 * 4;
    norm = malloc(nlen + 1);
    if (!norm)
      return oom(c);
    for (size_t i = 0; i < body; i++)
      norm[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    for (size_t i = body; i < nlen; i++)
      norm[i] = '=';
    norm[nlen] = '\0';
    size_t cap = body / 4 * 3 + 3;
    data = malloc(cap);
    if (!data) {
      free(norm);
      return oom(c);
    }
    /* '+' or '/' given in a URL-safe string and vice versa are both accepted; the
     * alphabets only differ in those two characters. */
    len = wr_base64_decode(norm, nlen, false, data, cap);
    free(norm);
    bad = len < 0;
  }
  if (bad) {
    free(data);
    char show[200];
    return jfail(c, WR_EJSON, "\"%s\" is not valid base64", printable(s, n, show, sizeof show));
  }
  if (len == 0) {
    free(data);
    data = NULL;
  }
  out->data = data;
  out->len = (size_t)len;
  return 0;
}

static int dec_message(jctx *c, const ProtobufCMessageDescriptor *d, const json_t *in,
                       ProtobufCMessage **out);

/* Decodes one value of field f into dst (the member, an array slot, or an entry
 * member). dst is written only on success. Returns 0, SKIP, or an error. */
static int dec_value(jctx *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst) {
  int64_t s = 0;
  uint64_t u = 0;
  double d = 0;
  int rc;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    if ((rc = get_integer(c, v, false, INT32_MIN, INT32_MAX, 0, "int32", &s, &u)))
      return rc;
    *(int32_t *)dst = (int32_t)s;
    return 0;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    if ((rc = get_integer(c, v, true, 0, 0, UINT32_MAX, "uint32", &s, &u)))
      return rc;
    *(uint32_t *)dst = (uint32_t)u;
    return 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    if ((rc = get_integer(c, v, false, INT64_MIN, INT64_MAX, 0, "int64", &s, &u)))
      return rc;
    *(int64_t *)dst = s;
    return 0;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    if ((rc = get_integer(c, v, true, 0, 0, UINT64_MAX, "uint64", &s, &u)))
      return rc;
    *(uint64_t *)dst = u;
    return 0;
  case PROTOBUF_C_TYPE_FLOAT:
    if ((rc = get_double(c, v, true, &d)))
      return rc;
    *(float *)dst = (float)d;
    return 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    if ((rc = get_double(c, v, false, &d)))
      return rc;
    *(double *)dst = d;
    return 0;
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(v))
      return jfail(c, WR_EJSON, "expected true or false, got %s", jtype(v));
    *(protobuf_c_boolean *)dst = json_is_true(v);
    return 0;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (json_is_string(v)) {
      const char *name = json_string_value(v);
      size_t n = json_string_length(v);
      const ProtobufCEnumValue *ev =
          ed && strlen(name) == n ? protobuf_c_enum_descriptor_get_value_by_name(ed, name) : NULL;
      if (!ev) {
        if (c->flags & WR_JSON_IGNORE_UNKNOWN)
          return SKIP;
        char show[200];
        return jfail(c, WR_EJSON, "unknown enum value \"%s\"%s%s",
                     printable(name, n, show, sizeof show), ed ? " for " : "", ed ? ed->name : "");
      }
      *(int32_t *)dst = ev->value;
      return 0;
    }
    if (json_is_integer(v) || json_is_real(v)) {
      if ((rc = get_integer(c, v, false, INT32_MIN, INT32_MAX, 0, "enum", &s, &u)))
        return rc;
      *(int32_t *)dst = (int32_t)s;
      return 0;
    }
    return jfail(c, WR_EJSON, "expected an enum name or number, got %s", jtype(v));
  }
  case PROTOBUF_C_TYPE_STRING:
    return get_string(c, v, dst);
  case PROTOBUF_C_TYPE_BYTES:
    return get_bytes(c, v, dst);
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *sm;
    if ((rc = dec_message(c, f->descriptor, v, &sm)))
      return rc;
    *(ProtobufCMessage **)dst = sm;
    return 0;
  }
  default:
    return jfail(c, WR_EINVAL, "unsupported field type %d", (int)f->type);
  }
}

/* A map key (JSON object key) into the entry's key member. */
static int dec_map_key(jctx *c, const ProtobufCFieldDescriptor *kf, const char *key, size_t n,
                       void *dst) {
  char show[200];
  if (kf->type == PROTOBUF_C_TYPE_STRING) {
    if (memchr(key, '\0', n))
      return jfail(c, WR_EJSON, "map key contains U+0000, which a protobuf-c string cannot hold");
    if (!utf8_ok(key, n))
      return jfail(c, WR_EJSON, "map key is not valid UTF-8");
    char *copy = malloc(n + 1);
    if (!copy)
      return oom(c);
    memcpy(copy, key, n);
    copy[n] = '\0';
    *(char **)dst = copy;
    return 0;
  }
  if (kf->type == PROTOBUF_C_TYPE_BOOL) {
    if (name_eq("true", key, n))
      *(protobuf_c_boolean *)dst = 1;
    else if (name_eq("false", key, n))
      *(protobuf_c_boolean *)dst = 0;
    else
      return jfail(c, WR_EJSON, "map key \"%s\" is not true or false",
                   printable(key, n, show, sizeof show));
    return 0;
  }
  bool neg;
  uint64_t mag;
  if (!parse_int_text(key, n, true, &neg, &mag))
    return jfail(c, WR_EJSON, "map key \"%s\" is not a canonical decimal integer",
                 printable(key, n, show, sizeof show));
  int64_t s;
  switch (kf->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    if (!signed_from_mag(neg, mag, INT32_MIN, INT32_MAX, &s))
      break;
    *(int32_t *)dst = (int32_t)s;
    return 0;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    if (neg || mag > UINT32_MAX)
      break;
    *(uint32_t *)dst = (uint32_t)mag;
    return 0;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    if (neg)
      break;
    *(uint64_t *)dst = mag;
    return 0;
  default: /* int64, sint64, sfixed64 */
    if (!signed_from_mag(neg, mag, INT64_MIN, INT64_MAX, &s))
      break;
    *(int64_t *)dst = s;
    return 0;
  }
  return jfail(c, WR_EJSON, "map key \"%s\" is out of range", printable(key, n, show, sizeof show));
}

static int dec_map(jctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                   const json_t *v) {
  if (!json_is_object(v))
    return jfail(c, WR_EJSON, "expected an object (map), got %s", jtype(v));
  size_t total = json_object_size(v);
  if (total == 0)
    return 0;
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  ProtobufCMessage **arr = calloc(total, sizeof *arr);
  if (!arr)
    return oom(c);
  size_t *count = (size_t *)MEMBER(m, f->quantifier_offset);
  *(ProtobufCMessage ***)MEMBER(m, f->offset) = arr;
  *count = 0;
  for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    const json_t *val = json_object_iter_value(it);
    size_t prev = path_push_key(c, key, klen);
    if (json_is_null(val))
      return jfail(c, WR_EJSON, "map value cannot be null");
    ProtobufCMessage *e = malloc(ed->sizeof_message);
    if (!e)
      return oom(c);
    protobuf_c_message_init(ed, e);
    int rc = dec_map_key(c, kf, key, klen, MEMBER(e, kf->offset));
    if (rc == 0) {
      mark_present(e, kf);
      rc = dec_value(c, vf, val, MEMBER(e, vf->offset));
    }
    if (rc != 0) {
      protobuf_c_message_free_unpacked(e, NULL);
      if (rc == SKIP) {
        path_pop(c, prev);
        continue;
      }
      return rc;
    }
    mark_present(e, vf);
    arr[(*count)++] = e;
    path_pop(c, prev);
  }
  return 0;
}

static int dec_repeated(jctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                        const json_t *v) {
  if (is_map(m->descriptor, f))
    return dec_map(c, m, f, v);
  if (!json_is_array(v))
    return jfail(c, WR_EJSON, "expected an array, got %s", jtype(v));
  size_t total = json_array_size(v);
  if (total == 0)
    return 0;
  size_t sz = elt_size(f->type);
  char *arr = calloc(total, sz);
  if (!arr)
    return oom(c);
  size_t *count = (size_t *)MEMBER(m, f->quantifier_offset);
  *(char **)MEMBER(m, f->offset) = arr;
  *count = 0;
  for (size_t i = 0; i < total; i++) {
    const json_t *e = json_array_get(v, i);
    size_t prev = path_push_index(c, i);
    if (json_is_null(e))
      return jfail(c, WR_EJSON, "null is not allowed in a repeated field");
    int rc = dec_value(c, f, e, arr + *count * sz);
    if (rc < 0)
      return rc;
    if (rc == 0)
      (*count)++;
    path_pop(c, prev);
  }
  return 0;
}

static int dec_timestamp(jctx *c, const ProtobufCMessageDescriptor *d, const json_t *v,
                         ProtobufCMessage **out) {
  if (!json_is_string(v))
    return jfail(c, WR_EJSON, "expected an RFC 3339 timestamp string, got %s", jtype(v));
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  int64_t secs = 0;
  int32_t ns = 0;
  char show[200];
  if (n > 64 || memchr(s, '\0', n) || wr_rfc3339_parse(s, &secs, &ns) != 0)
    return jfail(c, WR_EJSON,
                 "invalid timestamp \"%s\" (want RFC 3339 like 2024-01-31T12:00:00Z, years "
                 "1-9999)",
                 printable(s, n, show, sizeof show));
  ProtobufCMessage *m = malloc(d->sizeof_message);
  if (!m)
    return oom(c);
  protobuf_c_message_init(d, m);
  *(int64_t *)MEMBER(m, d->fields[0].offset) = secs;
  mark_present(m, &d->fields[0]);
  *(int32_t *)MEMBER(m, d->fields[1].offset) = ns;
  mark_present(m, &d->fields[1]);
  *out = m;
  return 0;
}

/* Index of the field named key (JSON name or proto name), or -1. */
static int find_field(const ProtobufCMessageDescriptor *d, const char *const *names,
                      const char *key, size_t klen) {
  for (unsigned i = 0; i < d->n_fields; i++) {
    const char *pn = d->fields[i].name;
    if (names && names[i] ? name_eq(names[i], key, klen) : derived_name_eq(pn, key, klen))
      return (int)i;
    if (name_eq(pn, key, klen))
      return (int)i;
  }
  return -1;
}

static int dec_fields(jctx *c, ProtobufCMessage *m, const json_t *in, unsigned char *seen) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *const *names = wr_schema_json_names(d);
  for (void *it = json_object_iter((json_t *)in); it;
       it = json_object_iter_next((json_t *)in, it)) {
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    const json_t *v = json_object_iter_value(it);
    int idx = find_field(d, names, key, klen);
    if (idx < 0) {
      if (c->flags & WR_JSON_IGNORE_UNKNOWN)
        continue;
      path_push_field(c, key, klen);
      return jfail(c, WR_EJSON, "unknown field");
    }
    const ProtobufCFieldDescriptor *f = &d->fields[idx];
    size_t prev = path_push_field(c, key, klen);
    if (json_is_null(v)) { /* null = not set */
      path_pop(c, prev);
      continue;
    }
    if (seen[idx / 8] & (1u << (idx % 8)))
      return jfail(c, WR_EJSON, "field given twice (by JSON name and proto name)");
    seen[idx / 8] |= (unsigned char)(1u << (idx % 8));
    int rc;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      rc = dec_repeated(c, m, f, v);
    } else {
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t cs = *(const uint32_t *)MEMBER(m, f->quantifier_offset);
        if (cs != 0) {
          const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(d, cs);
          return jfail(c, WR_EJSON, "oneof already has member %s set; only one may be given",
                       other ? other->name : "?");
        }
      }
      rc = dec_value(c, f, v, MEMBER(m, f->offset));
      if (rc == 0)
        mark_present(m, f);
    }
    if (rc < 0)
      return rc;
    path_pop(c, prev);
  }
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->label == PROTOBUF_C_LABEL_REQUIRED && !f->default_value &&
        !(seen[i / 8] & (1u << (i % 8))))
      return jfail(c, WR_EJSON, "missing required field %s", f->name);
  }
  return 0;
}

static int dec_message(jctx *c, const ProtobufCMessageDescriptor *d, const json_t *in,
                       ProtobufCMessage **out) {
  *out = NULL;
  if (!is_message_desc(d) || !d->message_init)
    return jfail(c, WR_EINVAL, "not a protobuf-c message descriptor");
  if (c->depth >= WR_JSON_MAX_DEPTH)
    return jfail(c, WR_EJSON, "messages nested deeper than %d", WR_JSON_MAX_DEPTH);
  if (is_timestamp(d))
    return dec_timestamp(c, d, in, out);
  if (!json_is_object(in))
    return jfail(c, WR_EJSON, "expected an object (%s), got %s", d->name, jtype(in));
  ProtobufCMessage *m = malloc(d->sizeof_message);
  if (!m)
    return oom(c);
  protobuf_c_message_init(d, m);
  unsigned char small[32], *seen = small;
  size_t nbytes = (d->n_fields + 7) / 8;
  if (nbytes > sizeof small && !(seen = calloc(nbytes, 1))) {
    free(m);
    return oom(c);
  }
  if (seen == small)
    memset(small, 0, sizeof small);
  c->depth++;
  int rc = dec_fields(c, m, in, seen);
  c->depth--;
  if (seen != small)
    free(seen);
  if (rc) {
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

int wr_json_decode(const ProtobufCMessageDescriptor *desc, const json_t *in, unsigned flags,
                   ProtobufCMessage **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!desc || !in || !out)
    return wr_err_set(err, WR_EINVAL, "wr_json_decode: NULL %s",
                      !desc ? "descriptor"
                      : !in ? "input"
                            : "out");
  if (flags & ~(unsigned)KNOWN_FLAGS)
    return wr_err_set(err, WR_EINVAL, "wr_json_decode: unknown flags 0x%x", flags);
  jctx c = {.flags = flags, .err = err};
  return dec_message(&c, desc, in, out);
}

int wr_json_decode_string(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                          unsigned flags, ProtobufCMessage **out, wr_err *err) {
  if (out)
    *out = NULL;
  if (!desc || (!text && len) || !out)
    return wr_err_set(err, WR_EINVAL, "wr_json_decode_string: NULL %s",
                      !desc  ? "descriptor"
                      : !out ? "out"
                             : "text");
  json_error_t je;
  json_t *j = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!j) {
    char show[400];
    return wr_err_set(err, WR_EJSON, "invalid JSON at line %d, column %d: %s", je.line, je.column,
                      wr__printable(je.text, strlen(je.text), 160, show, sizeof show));
  }
  int rc = wr_json_decode(desc, j, flags, out, err);
  json_decref(j);
  return rc;
}
