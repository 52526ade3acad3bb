/* model.h: the typed model protoc-gen-warren builds from a CodeGeneratorRequest, after
 * every schema rule has been checked. The emitter (gen_c.h) reads only this model. */
#ifndef WARREN_CODEGEN_MODEL_H
#define WARREN_CODEGEN_MODEL_H

#include <stdint.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "support.h"

/* One field, as needed for the JSON name table. */
typedef struct cg_field {
  const char *name;      /* proto name: "old_value" */
  const char *json_name; /* protoc's json_name: "oldValue" (or the explicit one) */
  int32_t number;
} cg_field;

/* One message defined in a file (nested ones and map entries included). */
typedef struct cg_message {
  const char *full_name; /* "customer.v1.CustomerUpdated" */
  const char *c_type;    /* protoc-c's type: "Customer__V1__CustomerUpdated" */
  const char *c_lower;   /* protoc-c's lower name: "customer__v1__customer_updated" */
  size_t n_fields;
  cg_field *fields;    /* sorted by number, like protoc-c's descriptor->fields */
  const char *comment; /* leading comment from the .proto (NULL if none) */

  /* Events only (is_event): */
  bool is_event;
  const char *aggregate_type; /* "customer" */
  int kind;                   /* warren.v1.EventKind value, 1..5 */
  const char *snake;          /* "customer_updated" */
  const char *ident;          /* "customer_v1_customer_updated" */
  const char *macro;          /* "CUSTOMER_V1_CUSTOMER_UPDATED" */
  cg_loc loc;                 /* the message name, for cross-file diagnostics */
} cg_message;

/* One file to generate. */
typedef struct cg_file {
  const char *name;     /* "customer/v1/customer.proto" */
  const char *base;     /* "customer/v1/customer" */
  const char *package;  /* "customer.v1" ("" if none) */
  const char *prefix;   /* "customer_v1" (events only) */
  const char *macro;    /* "CUSTOMER_V1" (events only) */
  const char *guard;    /* "CUSTOMER_V1_CUSTOMER_WARREN_H" */
  const char *exchange; /* "customer.events" (events only) */
  cg_loc loc;           /* the package statement, for cross-file diagnostics */
  size_t n_messages;
  cg_message *messages; /* every message of the file, parents before their children */
  size_t n_events;
  cg_message **events; /* the events among them, in declaration order */
} cg_file;

typedef struct cg_model {
  size_t n_files;
  cg_file *files; /* in the order of file_to_generate */
} cg_model;

/* Builds the model of every file in req->file_to_generate and checks the schema rules
 * (docs/codegen.md, "Schema errors"), across files too. Every violation is appended to
 * d; the model is usable for generation only when d->count is 0. Allocates in a. */
void cg_model_build(cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                    cg_model *out, cg_diag *d);

#endif
