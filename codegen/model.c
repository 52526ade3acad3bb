/* model.c: CodeGeneratorRequest -> cg_model, with every schema rule checked.
 *
 * protobuf-c has no extensions: the custom options (warren.v1.event on messages,
 * warren.v1.exchange on files) arrive as unknown fields of MessageOptions/FileOptions.
 * A length-delimited unknown field keeps its length varint in front of the payload, and
 * an option written as several `option (x).a = ...;` lines arrives as several entries
 * with the same tag: their payloads are concatenated and parsed once (protobuf merge
 * semantics), with protoc-c's own code for warren.v1.EventOptions.
 *
 * Diagnostics point into the .proto through SourceCodeInfo: every element has a path
 * (4 = message_type, 2 = field, 7 = options, ...) and a span. Rules are checked in file
 * order and declaration order, so the output is deterministic. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "names.h"
#include "warren/v1/options.pb-c.h"

/* Field numbers of descriptor.proto used in SourceCodeInfo paths. */
enum {
  FILE_PACKAGE = 2,
  FILE_MESSAGE_TYPE = 4,
  FILE_OPTIONS = 8,
  FILE_SYNTAX = 12,
  MSG_NAME = 1,
  MSG_FIELD = 2,
  MSG_NESTED_TYPE = 3,
  MSG_OPTIONS = 7,
  FIELD_NAME = 1,
  FIELD_NUMBER = 3,
  FIELD_LABEL = 4,
  FIELD_TYPE = 5,
  FIELD_TYPE_NAME = 6,
  FIELD_JSON_NAME = 10,
};

/* Extension and field numbers of schemas/warren/v1/options.proto. */
enum { EXT_EVENT = 51730, EXT_EXCHANGE = 51731, OPT_AGGREGATE_TYPE = 1, OPT_KIND = 2 };

#define META_TYPE          ".warren.v1.EventMeta"
#define MAX_AGGREGATE_TYPE 64
#define MAX_AMQP_NAME      255

/* protoc always names things; a hand-made request may not. */
static const char *str(const char *s) {
  return s ? s : "";
}

/* A SourceCodeInfo path under construction. Paths are short (2 per nesting level). */
typedef struct path {
  int32_t v[128];
  size_t n;
} path;

static path path_plus(const path *p, int32_t a, int32_t b) {
  path q = *p;
  if (q.n + 2 <= sizeof q.v / sizeof q.v[0]) {
    q.v[q.n++] = a;
    q.v[q.n++] = b;
  }
  return q;
}

static path path_plus1(const path *p, int32_t a) {
  path q = *p;
  if (q.n < sizeof q.v / sizeof q.v[0])
    q.v[q.n++] = a;
  return q;
}

/* Per-file context of the walk. */
typedef struct fctx {
  cg_arena *a;
  cg_diag *d;
  const Google__Protobuf__FileDescriptorProto *fd;
  cg_file *file;
  size_t next_message;
} fctx;

static bool path_has_prefix(const Google__Protobuf__SourceCodeInfo__Location *l, const int32_t *p,
                            size_t n) {
  if (l->n_path < n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (l->path[i] != p[i])
      return false;
  return true;
}

static const Google__Protobuf__SourceCodeInfo__Location *
find_location(const fctx *c, const int32_t *p, size_t n, bool exact) {
  const Google__Protobuf__SourceCodeInfo *sci = c->fd->source_code_info;
  if (sci == NULL)
    return NULL;
  for (size_t i = 0; i < sci->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
    if (l->n_span >= 3 && path_has_prefix(l, p, n) && (!exact || l->n_path == n))
      return l;
  }
  return NULL;
}

/* The location of an element: its own span; else the first element inside it (an
 * option written as `option (x).a = 1;` only has spans for its sub-fields); else its
 * parent's. Without SourceCodeInfo only the file name is known. */
static cg_loc locate(const fctx *c, const path *p) {
  cg_loc loc = {c->file->name, 0, 0};
  for (size_t n = p->n + 1; n-- > 0;) {
    const Google__Protobuf__SourceCodeInfo__Location *l = find_location(c, p->v, n, true);
    if (l == NULL && n == p->n)
      l = find_location(c, p->v, n, false);
    if (l != NULL) {
      loc.line = l->span[0] + 1;
      loc.col = l->span[1] + 1;
      return loc;
    }
  }
  return loc;
}

static const char *leading_comment(const fctx *c, const path *p) {
  const Google__Protobuf__SourceCodeInfo__Location *l = find_location(c, p->v, p->n, true);
  if (l == NULL || l->leading_comments == NULL || l->leading_comments[0] == '\0')
    return NULL;
  return cg_strdup(c->a, l->leading_comments);
}

/* Reads a varint; returns its length in bytes, 0 if malformed. */
static size_t read_varint(const uint8_t *p, size_t len, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && i < 10; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if ((p[i] & 0x80) == 0) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

typedef enum opt_state { OPT_ABSENT, OPT_PRESENT, OPT_MALFORMED } opt_state;

/* Concatenates the payloads of every length-delimited unknown field `tag` of an options
 * message into out. */
static opt_state option_payload(const ProtobufCMessage *opts, uint32_t tag, cg_buf *out) {
  opt_state st = OPT_ABSENT;
  if (opts == NULL)
    return st;
  for (unsigned i = 0; i < opts->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &opts->unknown_fields[i];
    if (u->tag != tag)
      continue;
    if (u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
      return OPT_MALFORMED;
    uint64_t n = 0;
    size_t vl = read_varint(u->data, u->len, &n);
    if (vl == 0 || n != u->len - vl)
      return OPT_MALFORMED;
    cg_buf_append(out, (const char *)u->data + vl, (size_t)n);
    st = OPT_PRESENT;
  }
  return st;
}

static bool valid_name_char(char ch, const char *extra) {
  return isalnum((unsigned char)ch) || (ch != '\0' && strchr(extra, ch) != NULL);
}

static bool valid_name(const char *s, size_t max, const char *extra) {
  size_t n = strlen(s);
  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!valid_name_char(s[i], extra))
      return false;
  return true;
}

static const char *kind_names = "CREATED, UPDATED, DELETED, SNAPSHOT or OTHER";

/* The type of a field as written in the .proto ("string", "customer.v1.Customer"). */
static const char *field_type_text(const Google__Protobuf__FieldDescriptorProto *f) {
  if (f->type_name != NULL && f->type_name[0] != '\0')
    return f->type_name[0] == '.' ? f->type_name + 1 : f->type_name;
  static const char *const scalar[] = {
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE] = "double",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FLOAT] = "float",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64] = "int64",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT64] = "uint64",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32] = "int32",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED64] = "fixed64",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED32] = "fixed32",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BOOL] = "bool",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING] = "string",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES] = "bytes",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT32] = "uint32",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED32] = "sfixed32",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED64] = "sfixed64",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT32] = "sint32",
      [GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64] = "sint64",
  };
  unsigned t = (unsigned)f->type;
  if (t < sizeof scalar / sizeof scalar[0] && scalar[t] != NULL)
    return scalar[t];
  return "an unknown type";
}

static bool is_meta_type(const Google__Protobuf__FieldDescriptorProto *f) {
  return f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE &&
         f->type_name != NULL && strcmp(f->type_name, META_TYPE) == 0;
}

/* The meta rule: field 1 is `warren.v1.EventMeta meta = 1`, singular, outside oneofs. */
static void check_meta(const fctx *c, const Google__Protobuf__DescriptorProto *dp, const path *mp,
                       const char *full_name) {
  const Google__Protobuf__FieldDescriptorProto *meta = NULL, *first = NULL;
  size_t meta_i = 0, first_i = 0;
  for (size_t i = 0; i < dp->n_field; i++) {
    const Google__Protobuf__FieldDescriptorProto *f = dp->field[i];
    if (meta == NULL && f->name != NULL && strcmp(f->name, "meta") == 0) {
      meta = f;
      meta_i = i;
    }
    if (first == NULL && f->number == 1) {
      first = f;
      first_i = i;
    }
  }
  if (meta == NULL) {
    path np = path_plus1(mp, MSG_NAME);
    if (first != NULL && is_meta_type(first)) {
      path fp = path_plus(mp, MSG_FIELD, (int32_t)first_i);
      path fnp = path_plus1(&fp, FIELD_NAME);
      cg_error(c->d, locate(c, &fnp),
               "event %s: field 1 of type warren.v1.EventMeta must be named `meta`, not `%s`",
               full_name, str(first->name));
    } else if (first != NULL) {
      cg_error(c->d, locate(c, &np),
               "event %s has no field `warren.v1.EventMeta meta = 1` (field 1 is `%s %s`); "
               "every event carries its metadata in field 1",
               full_name, field_type_text(first), str(first->name));
    } else {
      cg_error(c->d, locate(c, &np),
               "event %s has no field `warren.v1.EventMeta meta = 1`; every event carries its "
               "metadata in field 1",
               full_name);
    }
    return;
  }
  path fp = path_plus(mp, MSG_FIELD, (int32_t)meta_i);
  if (!is_meta_type(meta)) {
    path tp = path_plus1(&fp, meta->type_name != NULL ? FIELD_TYPE_NAME : FIELD_TYPE);
    cg_error(c->d, locate(c, &tp),
             "event %s: field `meta` must be of type warren.v1.EventMeta, not %s", full_name,
             field_type_text(meta));
  }
  if (meta->number != 1) {
    path np = path_plus1(&fp, FIELD_NUMBER);
    cg_error(c->d, locate(c, &np), "event %s: field `meta` must have number 1, not %d", full_name,
             (int)meta->number);
  }
  if (meta->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
    path lp = path_plus1(&fp, FIELD_LABEL);
    cg_error(c->d, locate(c, &lp), "event %s: field `meta` must not be repeated", full_name);
  }
  if (meta->has_oneof_index) {
    cg_error(c->d, locate(c, &fp), "event %s: field `meta` must not be part of a oneof", full_name);
  }
}

/* Parses and checks (warren.v1.event) of one message. Returns true if the message is an
 * event (whether or not its option is valid). */
static bool check_event(fctx *c, const Google__Protobuf__DescriptorProto *dp, const path *mp,
                        cg_message *m, bool nested, const char *parent) {
  cg_buf payload = {0};
  opt_state st = option_payload(dp->options ? &dp->options->base : NULL, EXT_EVENT, &payload);
  if (st == OPT_ABSENT) {
    cg_buf_free(&payload);
    return false;
  }
  path op = path_plus(mp, MSG_OPTIONS, EXT_EVENT);
  cg_loc oloc = locate(c, &op);
  const char *name = m->full_name;
  Warren__V1__EventOptions *eo = NULL;
  if (st == OPT_PRESENT)
    eo = warren__v1__event_options__unpack(NULL, payload.len, (const uint8_t *)payload.data);
  cg_buf_free(&payload);
  if (eo == NULL) {
    cg_error(c->d, oloc, "event %s: option (warren.v1.event) is malformed", name);
    return true;
  }
  if (nested)
    cg_error(c->d, oloc, "event %s: events must be top-level messages (this one is inside %s)",
             name, parent);
  for (unsigned i = 0; i < eo->base.n_unknown_fields; i++)
    cg_error(c->d, oloc,
             "event %s: option (warren.v1.event) has unknown field %u (is options.proto newer "
             "than this protoc-gen-warren?)",
             name, (unsigned)eo->base.unknown_fields[i].tag);

  const char *agg = eo->aggregate_type ? eo->aggregate_type : "";
  path ap = path_plus1(&op, OPT_AGGREGATE_TYPE);
  if (agg[0] == '\0') {
    const char *pkg = c->fd->package ? c->fd->package : "";
    size_t n = strcspn(pkg, ".");
    cg_error(c->d, oloc,
             "event %s: option (warren.v1.event) needs aggregate_type (e.g. "
             "aggregate_type: \"%.*s\")",
             name, (int)(n ? n : 8), n ? pkg : "customer");
  } else if (!valid_name(agg, MAX_AGGREGATE_TYPE, "_-.")) {
    cg_error(c->d, locate(c, &ap),
             "event %s: aggregate_type \"%s\" is invalid: use 1 to %d letters, digits, '_', '-' "
             "or '.'",
             name, agg, MAX_AGGREGATE_TYPE);
  }
  path kp = path_plus1(&op, OPT_KIND);
  int kind = (int)eo->kind;
  if (kind == WARREN__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED)
    cg_error(c->d, oloc, "event %s: option (warren.v1.event) needs kind (%s)", name, kind_names);
  else if (kind < WARREN__V1__EVENT_KIND__CREATED || kind > WARREN__V1__EVENT_KIND__OTHER)
    cg_error(c->d, locate(c, &kp),
             "event %s: option (warren.v1.event) has unknown kind %d (expected %s)", name, kind,
             kind_names);

  m->aggregate_type = cg_strdup(c->a, agg);
  m->kind = kind;
  warren__v1__event_options__free_unpacked(eo, NULL);

  if (strlen(name) > MAX_AMQP_NAME) {
    path np = path_plus1(mp, MSG_NAME);
    cg_error(c->d, locate(c, &np),
             "event %s: the event type is %zu bytes long, but AMQP routing keys are limited to "
             "%d",
             name, strlen(name), MAX_AMQP_NAME);
  }
  check_meta(c, dp, mp, name);
  return true;
}

static int cmp_field_number(const void *x, const void *y) {
  const cg_field *a = x, *b = y;
  return (a->number > b->number) - (a->number < b->number);
}

static size_t count_messages(Google__Protobuf__DescriptorProto *const *v, size_t n) {
  size_t total = n;
  for (size_t i = 0; i < n; i++)
    total += count_messages(v[i]->nested_type, v[i]->n_nested_type);
  return total;
}

static void walk_messages(fctx *c, Google__Protobuf__DescriptorProto *const *v, size_t n,
                          const path *parent_path, int32_t list_field, const char *scope,
                          bool nested) {
  for (size_t i = 0; i < n; i++) {
    const Google__Protobuf__DescriptorProto *dp = v[i];
    path mp = path_plus(parent_path, list_field, (int32_t)i);
    cg_message *m = &c->file->messages[c->next_message++];
    m->full_name =
        scope[0] ? cg_sprintf(c->a, "%s.%s", scope, str(dp->name)) : cg_strdup(c->a, str(dp->name));
    m->c_type = cg_c_type_name(c->a, m->full_name);
    m->c_lower = cg_c_lower_name(c->a, m->full_name);
    m->comment = leading_comment(c, &mp);
    path np = path_plus1(&mp, MSG_NAME);
    m->loc = locate(c, &np);
    m->n_fields = dp->n_field;
    m->fields = cg_alloc(c->a, sizeof(cg_field) * (dp->n_field ? dp->n_field : 1));
    for (size_t j = 0; j < dp->n_field; j++) {
      const Google__Protobuf__FieldDescriptorProto *f = dp->field[j];
      m->fields[j].name = cg_strdup(c->a, str(f->name));
      m->fields[j].number = f->number;
      m->fields[j].json_name =
          cg_strdup(c->a, f->json_name ? f->json_name : cg_default_json_name(c->a, str(f->name)));
    }
    qsort(m->fields, m->n_fields, sizeof(cg_field), cmp_field_number);
    m->is_event = check_event(c, dp, &mp, m, nested, scope);
    walk_messages(c, dp->nested_type, dp->n_nested_type, &mp, MSG_NESTED_TYPE, m->full_name, true);
  }
}

/* An event-less file gets no JSON name table (docs/codegen.md); an explicit json_name
 * there would silently not be used by wr_json, so it is refused. */
static void check_json_names_without_events(fctx *c, Google__Protobuf__DescriptorProto *const *v,
                                            size_t n, const path *parent_path, int32_t list_field,
                                            const char *scope) {
  for (size_t i = 0; i < n; i++) {
    const Google__Protobuf__DescriptorProto *dp = v[i];
    path mp = path_plus(parent_path, list_field, (int32_t)i);
    const char *full = scope[0] ? cg_sprintf(c->a, "%s.%s", scope, str(dp->name)) : str(dp->name);
    for (size_t j = 0; j < dp->n_field; j++) {
      const Google__Protobuf__FieldDescriptorProto *f = dp->field[j];
      const char *dflt = cg_default_json_name(c->a, str(f->name));
      if (f->json_name == NULL || strcmp(f->json_name, dflt) == 0)
        continue;
      path fp = path_plus(&mp, MSG_FIELD, (int32_t)j);
      path jp = path_plus1(&fp, FIELD_JSON_NAME);
      cg_error(c->d, locate(c, &jp),
               "field %s.%s sets json_name \"%s\", but this file defines no events, so "
               "protoc-gen-warren emits no JSON names for it and wr_json would use \"%s\"; move "
               "the message into a file with events or drop json_name",
               full, str(f->name), f->json_name, dflt);
    }
    check_json_names_without_events(c, dp->nested_type, dp->n_nested_type, &mp, MSG_NESTED_TYPE,
                                    full);
  }
}

static void check_exchange(fctx *c) {
  cg_file *f = c->file;
  const char *pkg = f->package;
  size_t n = strcspn(pkg, ".");
  f->exchange = cg_sprintf(c->a, "%.*s.events", (int)n, pkg);

  cg_buf payload = {0};
  opt_state st =
      option_payload(c->fd->options ? &c->fd->options->base : NULL, EXT_EXCHANGE, &payload);
  path xp = {.n = 0};
  xp = path_plus(&xp, FILE_OPTIONS, EXT_EXCHANGE);
  if (st == OPT_MALFORMED) {
    cg_error(c->d, locate(c, &xp), "option (warren.v1.exchange) is malformed");
  } else if (st == OPT_PRESENT) {
    f->exchange = cg_strndup(c->a, payload.len ? payload.data : "", payload.len);
    if (strlen(f->exchange) != payload.len || !valid_name(f->exchange, MAX_AMQP_NAME, "-_.:"))
      cg_error(c->d, locate(c, &xp),
               "exchange \"%s\" is invalid: use 1 to %d letters, digits, '-', '_', '.' or ':'",
               f->exchange, MAX_AMQP_NAME);
    else if (strncmp(f->exchange, "amq.", 4) == 0)
      cg_error(c->d, locate(c, &xp),
               "exchange \"%s\" is invalid: names starting with \"amq.\" are reserved by "
               "RabbitMQ",
               f->exchange);
  }
  cg_buf_free(&payload);
}

static const Google__Protobuf__FileDescriptorProto *
find_file(const Google__Protobuf__Compiler__CodeGeneratorRequest *req, const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (req->proto_file[i]->name != NULL && strcmp(req->proto_file[i]->name, name) == 0)
      return req->proto_file[i];
  return NULL;
}

static void build_file(cg_arena *a, cg_diag *d, const Google__Protobuf__FileDescriptorProto *fd,
                       cg_file *f) {
  fctx c = {.a = a, .d = d, .fd = fd, .file = f};
  size_t nlen = strlen(f->name);
  f->base = (nlen > 6 && strcmp(f->name + nlen - 6, ".proto") == 0)
                ? cg_strndup(a, f->name, nlen - 6)
                : f->name;
  f->guard = cg_sprintf(a, "%s_WARREN_H", cg_path_macro(a, f->base));
  f->package = cg_strdup(a, fd->package ? fd->package : "");
  path pp = {.n = 0};
  pp = path_plus1(&pp, FILE_PACKAGE);
  f->loc = locate(&c, &pp);

  f->n_messages = count_messages(fd->message_type, fd->n_message_type);
  f->messages = cg_alloc(a, sizeof(cg_message) * (f->n_messages ? f->n_messages : 1));
  path root = {.n = 0};
  walk_messages(&c, fd->message_type, fd->n_message_type, &root, FILE_MESSAGE_TYPE, f->package,
                false);

  f->events = cg_alloc(a, sizeof(cg_message *) * (f->n_messages ? f->n_messages : 1));
  for (size_t i = 0; i < f->n_messages; i++)
    if (f->messages[i].is_event)
      f->events[f->n_events++] = &f->messages[i];

  if (f->n_events == 0) {
    check_json_names_without_events(&c, fd->message_type, fd->n_message_type, &root,
                                    FILE_MESSAGE_TYPE, f->package);
    /* The exchange is per file: set here, it would route nothing (a likely mix-up with
     * the package's events file). */
    cg_buf payload = {0};
    if (option_payload(fd->options ? &fd->options->base : NULL, EXT_EXCHANGE, &payload) !=
        OPT_ABSENT) {
      path xp = path_plus(&root, FILE_OPTIONS, EXT_EXCHANGE);
      cg_error(d, locate(&c, &xp),
               "option (warren.v1.exchange) has no effect: this file defines no events (set it "
               "in the file that defines them)");
    }
    cg_buf_free(&payload);
    return;
  }

  const char *syntax = fd->syntax ? fd->syntax : "proto2";
  if (strcmp(syntax, "proto3") != 0) {
    path sp = path_plus1(&root, FILE_SYNTAX);
    cg_error(d, locate(&c, &sp), "events need syntax = \"proto3\"; this file uses \"%s\"", syntax);
  }
  if (f->package[0] == '\0') {
    cg_error(d, locate(&c, &root),
             "events need a package (e.g. \"package billing.v1;\"): it names the generated code "
             "and the default exchange");
    return;
  }
  f->prefix = cg_package_prefix(a, f->package);
  f->macro = cg_upper(a, f->prefix);
  check_exchange(&c);
  for (size_t i = 0; i < f->n_events; i++) {
    cg_message *m = f->events[i];
    const char *last = strrchr(m->full_name, '.');
    m->snake = cg_camel_to_lower(a, last ? last + 1 : m->full_name);
    m->ident = cg_sprintf(a, "%s_%s", f->prefix, m->snake);
    m->macro = cg_upper(a, m->ident);
  }
}

/* ---- checks across the files of one run ------------------------------------------- */

typedef struct ident {
  const char *name;
  const char *owner; /* "file x.proto" or "event a.B" */
  const char *stem;  /* what all the owner's names start with: prefix or event ident */
  cg_loc loc;
  size_t order;
} ident;

static void push_ident(ident *v, size_t *n, const char *name, const char *owner, const char *stem,
                       cg_loc loc) {
  v[*n] = (ident){name, owner, stem, loc, *n};
  (*n)++;
}

static int cmp_ident(const void *x, const void *y) {
  const ident *a = x, *b = y;
  int r = strcmp(a->name, b->name);
  if (r != 0)
    return r;
  return (a->order > b->order) - (a->order < b->order);
}

/* Every external name the generated code defines, so that two files or two events that
 * map to the same C name are refused here rather than by the linker or compiler. */
static void check_identifiers(cg_arena *a, const cg_model *m, cg_diag *d) {
  size_t cap = 0;
  for (size_t i = 0; i < m->n_files; i++)
    if (m->files[i].n_events > 0 && m->files[i].prefix != NULL)
      cap += 5 + 4 * m->files[i].n_events;
  if (cap == 0)
    return;
  ident *v = cg_alloc(a, sizeof(ident) * cap);
  size_t n = 0;
  for (size_t i = 0; i < m->n_files; i++) {
    const cg_file *f = &m->files[i];
    if (f->n_events == 0 || f->prefix == NULL)
      continue;
    const char *fowner = cg_sprintf(a, "file %s", f->name);
    push_ident(v, &n, cg_sprintf(a, "%s_schema", f->prefix), fowner, f->prefix, f->loc);
    push_ident(v, &n, cg_sprintf(a, "%s_events", f->prefix), fowner, f->prefix, f->loc);
    push_ident(v, &n, cg_sprintf(a, "%s_handlers", f->prefix), fowner, f->prefix, f->loc);
    push_ident(v, &n, cg_sprintf(a, "%s_subscribe", f->prefix), fowner, f->prefix, f->loc);
    push_ident(v, &n, cg_sprintf(a, "%s_EXCHANGE", f->macro), fowner, f->prefix, f->loc);
    for (size_t e = 0; e < f->n_events; e++) {
      const cg_message *ev = f->events[e];
      const char *owner = cg_sprintf(a, "event %s", ev->full_name);
      push_ident(v, &n, cg_sprintf(a, "%s_publish", ev->ident), owner, ev->ident, ev->loc);
      push_ident(v, &n, cg_sprintf(a, "%s_fn", ev->ident), owner, ev->ident, ev->loc);
      push_ident(v, &n, cg_sprintf(a, "%s_TYPE", ev->macro), owner, ev->ident, ev->loc);
      push_ident(v, &n, cg_sprintf(a, "%s_EVENT", ev->macro), owner, ev->ident, ev->loc);
    }
  }
  qsort(v, n, sizeof *v, cmp_ident);
  /* One report per pair of owners: two events that collide do so on all their names. */
  const char **reported = cg_alloc(a, sizeof(char *) * 2 * n);
  size_t n_reported = 0;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(v[i].name, v[i - 1].name) != 0)
      continue;
    const ident *first = &v[i - 1];
    while (first > v && strcmp((first - 1)->name, v[i].name) == 0)
      first--;
    if (strcmp(first->owner, v[i].owner) == 0)
      continue;
    bool seen = false;
    for (size_t k = 0; k < n_reported && !seen; k++)
      seen = strcmp(reported[2 * k], first->owner) == 0 &&
             strcmp(reported[2 * k + 1], v[i].owner) == 0;
    if (seen)
      continue;
    reported[2 * n_reported] = first->owner;
    reported[2 * n_reported + 1] = v[i].owner;
    n_reported++;
    bool same_file = strcmp(first->loc.file, v[i].loc.file) == 0;
    const char *what = strcmp(first->stem, v[i].stem) == 0
                           ? cg_sprintf(a, "both map to the C names %s_*", v[i].stem)
                           : cg_sprintf(a, "both define the C name %s", v[i].name);
    cg_error(d, v[i].loc, "%s and %s (%s:%d:%d) %s; %s", v[i].owner, first->owner, first->loc.file,
             first->loc.line, first->loc.col, what,
             same_file ? "rename one of the messages"
                       : "rename a package or message (a package's events belong in one file)");
  }
}

/* protoc refuses two definitions of one full name in a run, so this only fires for
 * requests merged from several protoc runs (other drivers, descriptor sets); it keeps
 * the rule "one routing key per exchange" true whatever produced the request. */
static void check_routing_keys(const cg_model *m, cg_diag *d) {
  for (size_t i = 0; i < m->n_files; i++) {
    const cg_file *f = &m->files[i];
    if (f->exchange == NULL)
      continue;
    for (size_t e = 0; e < f->n_events; e++) {
      const cg_message *ev = f->events[e];
      bool done = false;
      for (size_t pi = 0; pi <= i && !done; pi++) {
        const cg_file *pf = &m->files[pi];
        if (pf->exchange == NULL || strcmp(pf->exchange, f->exchange) != 0)
          continue;
        size_t pend = pi == i ? e : pf->n_events;
        for (size_t pe = 0; pe < pend; pe++) {
          const cg_message *prev = pf->events[pe];
          if (strcmp(prev->full_name, ev->full_name) != 0)
            continue;
          cg_error(d, ev->loc,
                   "event %s: routing key \"%s\" is already used on exchange \"%s\" by %s:%d:%d",
                   ev->full_name, ev->full_name, f->exchange, prev->loc.file, prev->loc.line,
                   prev->loc.col);
          done = true;
          break;
        }
      }
    }
  }
}

void cg_model_build(cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    cg_model *out, cg_diag *d) {
  out->n_files = 0;
  out->files =
      cg_alloc(a, sizeof(cg_file) * (req->n_file_to_generate ? req->n_file_to_generate : 1));
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const char *name = req->file_to_generate[i];
    const Google__Protobuf__FileDescriptorProto *fd = find_file(req, name);
    if (fd == NULL) {
      cg_loc loc = {name, 0, 0};
      cg_error(d, loc, "the request has no descriptor for this file (protoc bug?)");
      continue;
    }
    cg_file *f = &out->files[out->n_files++];
    f->name = cg_strdup(a, name);
    build_file(a, d, fd, f);
  }
  check_routing_keys(out, d);
  check_identifiers(a, out, d);
}
