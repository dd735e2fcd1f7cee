/*
 * portcullis base: the config framework. Modules parse their own sections
 * of a YAML tree (yaml.h) and report every problem as one
 * "file:line:col: message" line; warnings do not stop a config loading.
 */
#ifndef PC_CFG_H
#define PC_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "yaml.h"

struct pc_config;


struct cfg_ctx {
    const char *file;
    struct pc_buf errors;   /* one "file:line:col: message" per line */
    struct pc_buf warnings; /* same form; the config still loads */
    int nerrors;
    struct pc_config *cfg;
};

void cfg_error(struct cfg_ctx *ctx, const struct yt_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning: the config still loads; printed at start-up, on reload and by -t. */
void cfg_warn(struct cfg_ctx *ctx, const struct yt_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum cfg_ftype {
    CFG_STR,        /* char * */
    CFG_DURATION,   /* int64_t ms */
    CFG_SIZE,       /* uint64_t bytes */
    CFG_INT,        /* int64_t */
    CFG_BOOL,       /* int */
    CFG_CUSTOM,     /* parsed by the row's parse function */
};

struct cfg_field {
    const char *key;
    enum cfg_ftype type;
    size_t offset;
    int64_t min, max;       /* CFG_INT / CFG_DURATION / CFG_SIZE bounds when max > 0 */
    void (*parse)(struct cfg_ctx *ctx, const struct yt_node *n, void *dst); /* CFG_CUSTOM */
};

/* Parse map keys into base+offset per the table; unknown keys are errors. */
void cfg_fields(struct cfg_ctx *ctx, const struct yt_node *map,
                const struct cfg_field *fields, size_t nfields, void *base);
int cfg_expect(struct cfg_ctx *ctx, const struct yt_node *n, enum yt_type t, const char *what);
int cfg_scalar(struct cfg_ctx *ctx, const struct yt_node *n, enum cfg_ftype t, void *out,
               int64_t min, int64_t max);
/* Report an unknown key, with a suggestion from candidates. */
void cfg_unknown_key(struct cfg_ctx *ctx, const struct yt_node *key, const char *where,
                     const char *const *candidates, size_t ncandidates);

#endif
