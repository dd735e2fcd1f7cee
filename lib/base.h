/*
 * portcullis base layer: what every module uses. lib/ includes nothing of
 * portcullis above it (make check-layers holds that true).
 *
 * This header gathers the primitives: allocation (mem.h), clocks
 * (clock.h), strings (str.h), numbers (num.h), hashing (hash.h) and the
 * growable buffer (buf.h). The rest of lib/ has one header per concern:
 * log.h, hist.h, pool.h, h1.h, url.h, yaml.h, cfg.h.
 */
#ifndef PC_BASE_H
#define PC_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PC_VERSION "0.2.0"

#define PC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PC_UNUSED(x) ((void)(x))
#define PC_LIKELY(x) __builtin_expect(!!(x), 1)
#define PC_UNLIKELY(x) __builtin_expect(!!(x), 0)

#include "mem.h"
#include "clock.h"
#include "str.h"
#include "num.h"
#include "hash.h"
#include "buf.h"

#endif
