/* fuzz_codegen.c: protoc-gen-warren's request handling: CodeGeneratorRequest bytes ->
 * unpack -> model with every schema rule (codegen/model.c) -> C emitter (gen_c.c) ->
 * response, exactly as the plugin's main() does with its stdin.
 *
 * The plugin's run() is static in codegen/main.c; this file compiles main.c itself
 * with its main() renamed, so the code under test is the shipped one. (The plugin is a
 * short-lived process: it exits on out-of-memory, see codegen/support.h.)
 *
 * Properties: no crash, no leak; a request that unpacks gets a response that packs;
 * a response is either an error (text starting with "protoc-gen-warren found") or
 * files named "<base>.warren.h"/".warren.c" with content; the output is deterministic
 * (the same request twice gives byte-identical responses). */
#include <string.h>

#include "fuzz.h"

int protoc_gen_warren_main(int argc, char **argv);
#define main protoc_gen_warren_main
#include "main.c" /* see above */
#undef main

#define FUZZ_MAX_INPUT (1024 * 1024)

static uint8_t *respond(const Google__Protobuf__Compiler__CodeGeneratorRequest *req, size_t *len) {
  cg_arena arena = {0};
  Google__Protobuf__Compiler__CodeGeneratorResponse resp;
  google__protobuf__compiler__code_generator_response__init(&resp);
  run(&arena, req, &resp);
  if (resp.error) {
    FUZZ_CHECK(strncmp(resp.error, "protoc-gen-warren found ", 24) == 0, "error text: %.200s",
               resp.error);
    FUZZ_CHECK(resp.n_file == 0, "error with %zu files", resp.n_file);
  }
  for (size_t i = 0; i < resp.n_file; i++) {
    const char *name = resp.file[i]->name;
    size_t nl = name ? strlen(name) : 0;
    FUZZ_CHECK(nl > 9 && strcmp(name + nl - 9, i % 2 ? ".warren.c" : ".warren.h") == 0,
               "file %zu named \"%s\"", i, name ? name : "(null)");
    FUZZ_CHECK(resp.file[i]->content != NULL, "%s without content", name);
  }
  *len = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
  uint8_t *out = malloc(*len ? *len : 1);
  FUZZ_CHECK(out != NULL, "out of memory");
  FUZZ_CHECK(google__protobuf__compiler__code_generator_response__pack(&resp, out) == *len,
             "packed size mismatch");
  cg_arena_free(&arena);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT)
    return 0;
  Google__Protobuf__Compiler__CodeGeneratorRequest *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, size, data);
  if (!req)
    return 0; /* main() reports "stdin is not a CodeGeneratorRequest" */
  size_t l1, l2;
  uint8_t *r1 = respond(req, &l1);
  uint8_t *r2 = respond(req, &l2);
  FUZZ_CHECK(l1 == l2 && memcmp(r1, r2, l1) == 0, "output not deterministic");
  free(r1);
  free(r2);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return 0;
}
