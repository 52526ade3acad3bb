/* protoc-gen-warren: the protoc plugin that turns event schemas into typed C.
 *
 *   protoc --plugin=protoc-gen-warren=build/bin/protoc-gen-warren \
 *          --c_out=OUT --warren_out=OUT -Ischemas -I/usr/include customer/v1/customer.proto
 *
 * A small compiler: read the CodeGeneratorRequest (stdin) -> typed model with every
 * schema rule checked (model.c) -> emit C (gen_c.c) -> write the CodeGeneratorResponse
 * (stdout). Schema errors are returned in the response, one "file.proto:line:col:
 * message" per line; protoc prints them and exits with status 1. This process exits
 * non-zero only when it cannot do its job at all (bad input, out of memory, I/O). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <warren/common.h>

#include "gen_c.h"
#include "model.h"

/* A CodeGeneratorRequest carries descriptors, not data: far below this. */
#define MAX_REQUEST (256u << 20)

static int usage(FILE *to) {
  fprintf(to,
          "protoc-gen-warren %s (codegen ABI %d): the warren plugin for protoc.\n"
          "Run it through protoc:\n"
          "  protoc --plugin=protoc-gen-warren=PATH --c_out=DIR --warren_out=DIR "
          "-IDIR... FILE.proto\n"
          "It writes FILE.warren.h and FILE.warren.c next to protoc-c's FILE.pb-c.h/.c.\n"
          "See docs/codegen.md.\n",
          WR_VERSION_STRING, WR_CODEGEN_ABI);
  return to == stdout ? 0 : 2;
}

static int read_all(FILE *in, cg_buf *b) {
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
    if (b->len + n > MAX_REQUEST) {
      fprintf(stderr, "protoc-gen-warren: request larger than %u bytes\n", MAX_REQUEST);
      return -1;
    }
    cg_buf_append(b, chunk, n);
  }
  if (ferror(in)) {
    fprintf(stderr, "protoc-gen-warren: reading the request: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

static int write_all(FILE *out, const uint8_t *data, size_t len) {
  if (fwrite(data, 1, len, out) != len || fflush(out) != 0) {
    fprintf(stderr, "protoc-gen-warren: writing the response: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

static Google__Protobuf__Compiler__CodeGeneratorResponse__File *
response_file(cg_arena *a, const char *name, const cg_buf *content) {
  Google__Protobuf__Compiler__CodeGeneratorResponse__File *rf = cg_alloc(a, sizeof *rf);
  google__protobuf__compiler__code_generator_response__file__init(rf);
  rf->name = (char *)name;
  rf->content = cg_strndup(a, content->len ? content->data : "", content->len);
  return rf;
}

/* Fills resp from the request; everything lives in a. */
static void run(cg_arena *a, const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                Google__Protobuf__Compiler__CodeGeneratorResponse *resp) {
  cg_diag d = {0};
  if (req->parameter != NULL && req->parameter[0] != '\0') {
    cg_loc loc = {"protoc-gen-warren", 0, 0};
    cg_error(&d, loc, "unknown parameter \"%s\" (protoc-gen-warren takes none)", req->parameter);
  }
  cg_model model;
  cg_model_build(a, req, &model, &d);
  if (d.count > 0) {
    /* protoc prints "--warren_out: " + this text: a first line of its own keeps every
     * diagnostic at the start of a line, where editors and CI annotators find them. */
    cg_buf text = {0};
    cg_diag_render(&d, &text);
    resp->error = cg_sprintf(a, "protoc-gen-warren found %u error%s:\n%s", d.count,
                             d.count == 1 ? "" : "s", text.data);
    cg_buf_free(&text);
    cg_diag_free(&d);
    return;
  }
  cg_diag_free(&d);
  resp->n_file = model.n_files * 2;
  resp->file = cg_alloc(a, sizeof(*resp->file) * (resp->n_file ? resp->n_file : 1));
  for (size_t i = 0; i < model.n_files; i++) {
    const cg_file *f = &model.files[i];
    cg_buf h = {0}, c = {0};
    cg_gen_header(a, f, &h);
    cg_gen_source(a, f, &c);
    resp->file[2 * i] = response_file(a, cg_sprintf(a, "%s.warren.h", f->base), &h);
    resp->file[2 * i + 1] = response_file(a, cg_sprintf(a, "%s.warren.c", f->base), &c);
    cg_buf_free(&h);
    cg_buf_free(&c);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "--version") == 0) {
      printf("protoc-gen-warren %s (codegen ABI %d)\n", WR_VERSION_STRING, WR_CODEGEN_ABI);
      return 0;
    }
    return usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
  }
  if (isatty(STDIN_FILENO))
    return usage(stderr);

  cg_buf in = {0};
  if (read_all(stdin, &in) != 0) {
    cg_buf_free(&in);
    return 1;
  }
  Google__Protobuf__Compiler__CodeGeneratorRequest *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, in.len,
                                                                 (const uint8_t *)in.data);
  cg_buf_free(&in);
  if (req == NULL) {
    fputs("protoc-gen-warren: stdin is not a CodeGeneratorRequest; run me through protoc\n",
          stderr);
    return 1;
  }

  cg_arena arena = {0};
  Google__Protobuf__Compiler__CodeGeneratorResponse resp;
  google__protobuf__compiler__code_generator_response__init(&resp);
  run(&arena, req, &resp);

  size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
  uint8_t *out = cg_xmalloc(len);
  google__protobuf__compiler__code_generator_response__pack(&resp, out);
  int rc = write_all(stdout, out, len);
  free(out);
  cg_arena_free(&arena);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc == 0 ? 0 : 1;
}
