/* emit.h: the one helper through which generated text is written. It owns indentation
 * (two spaces per level, none on empty lines, never trailing whitespace) so the
 * generators only say what to write. */
#ifndef WARREN_CODEGEN_EMIT_H
#define WARREN_CODEGEN_EMIT_H

#include "support.h"

/* The width generated lines are kept within (where the content allows). */
#define CG_EMIT_WIDTH 100

typedef struct cg_emitter {
  cg_buf *out; /* borrowed */
  int indent;
} cg_emitter;

/* Writes the formatted text followed by a newline. Text with embedded newlines becomes
 * several lines, each indented. */
void cg_emit(cg_emitter *e, const char *fmt, ...) CG_PRINTF(2, 3);
/* An empty line. */
void cg_emit_blank(cg_emitter *e);
/* cg_emit, then one level deeper ("... {"). */
void cg_emit_open(cg_emitter *e, const char *fmt, ...) CG_PRINTF(2, 3);
/* One level shallower, then cg_emit ("}"). */
void cg_emit_close(cg_emitter *e, const char *fmt, ...) CG_PRINTF(2, 3);
/* A C block comment of free text (e.g. a .proto comment): lines are kept (longer ones
 * wrapped at spaces to CG_EMIT_WIDTH), trailing blanks trimmed, and comment delimiters
 * inside the text defused. Nothing for NULL or blank text. */
void cg_emit_comment(cg_emitter *e, const char *text);

#endif
