/* gen_c.h: the C emitter: one cg_file of the model -> <base>.warren.h and <base>.warren.c.
 * Output depends only on the model (no timestamps, no paths of the build machine). */
#ifndef WARREN_CODEGEN_GEN_C_H
#define WARREN_CODEGEN_GEN_C_H

#include "model.h"

/* Appends the header, respectively the source, of f to out. a holds temporaries. */
void cg_gen_header(cg_arena *a, const cg_file *f, cg_buf *out);
void cg_gen_source(cg_arena *a, const cg_file *f, cg_buf *out);

#endif
