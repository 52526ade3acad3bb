/* names.h: the C names protoc-c 1.4.1 gives to protobuf types, and the names
 * protoc-gen-warren derives from them. All results are allocated in the arena. */
#ifndef WARREN_CODEGEN_NAMES_H
#define WARREN_CODEGEN_NAMES_H

#include "support.h"

/* protoc-c's CamelToLower: "CustomerUpdated" -> "customer_updated". An underscore is
 * inserted before an upper-case letter that follows a non-upper-case character, so
 * "HTTPServer" -> "httpserver" and "Foo_Bar" -> "foo__bar". */
char *cg_camel_to_lower(cg_arena *a, const char *name);

/* protoc-c's ToCamel: "lower_case" -> "LowerCase" (underscores dropped, the letter after
 * one capitalized, the first letter capitalized). */
char *cg_to_camel(cg_arena *a, const char *name);

/* protoc-c's type name of a message: every dot-separated piece through ToCamel, joined
 * by "__": "customer.v1.CustomerUpdated" -> "Customer__V1__CustomerUpdated". */
char *cg_c_type_name(cg_arena *a, const char *full_name);

/* protoc-c's lower-case name: pieces through CamelToLower joined by "__":
 * "customer.v1.CustomerUpdated" -> "customer__v1__customer_updated" (the descriptor is
 * that + "__descriptor"). */
char *cg_c_lower_name(cg_arena *a, const char *full_name);

/* warren's prefix of a package: pieces through CamelToLower joined by "_":
 * "customer.v1" -> "customer_v1". */
char *cg_package_prefix(cg_arena *a, const char *package);

/* ASCII upper case. */
char *cg_upper(cg_arena *a, const char *s);

/* The JSON name protoc derives from a field name when none is given ("old_value" ->
 * "oldValue"), used to tell an explicit json_name from the default one. */
char *cg_default_json_name(cg_arena *a, const char *field_name);

/* A C identifier made from a file path: non-alphanumerics become '_', upper case
 * ("customer/v1/customer" -> "CUSTOMER_V1_CUSTOMER"). */
char *cg_path_macro(cg_arena *a, const char *path);

#endif
