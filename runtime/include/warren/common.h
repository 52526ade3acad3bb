/* warren/common.h: export macro, version, and the codegen ABI handshake.
 *
 * Generated code (protoc-gen-warren) checks WR_CODEGEN_ABI at compile time: a header
 * generated for another ABI fails with "#error regenerate". */
#ifndef WARREN_COMMON_H
#define WARREN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define WR_EXPORT            __attribute__((visibility("default")))
#define WR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define WR_NODISCARD         __attribute__((warn_unused_result))
#else
#define WR_EXPORT
#define WR_PRINTF(fmt, args)
#define WR_NODISCARD
#endif

#ifdef __cplusplus
#define WR_BEGIN_DECLS extern "C" {
#define WR_END_DECLS   }
#else
#define WR_BEGIN_DECLS
#define WR_END_DECLS
#endif

#define WR_VERSION_MAJOR  0
#define WR_VERSION_MINOR  1
#define WR_VERSION_PATCH  0
#define WR_VERSION_STRING "0.1.0"

/* Bumped whenever the contract between generated code and the runtime changes
 * (wr_event_type / wr_schema layout, dispatch signature). */
#define WR_CODEGEN_ABI 1

WR_BEGIN_DECLS

/* The runtime's version string ("0.1.0"). Cannot fail. */
WR_EXPORT const char *wr_version(void);

WR_END_DECLS

#endif
