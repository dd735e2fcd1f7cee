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


struct cfg_ctx {
    const char *file;
    struct pc_buf errors;   /* one "file:line:col: message" per line */
    struct pc_buf warnings; /* same form; the config still loads */
    int nerrors;
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
    CFG_ENUM,       /* int: the index of the value in the row's choices */
    CFG_CUSTOM,     /* parsed by the row's parse function */
};

/*
 * One key of a section: its type, bounds, default and a one-line doc, in
 * one row (as nginx's ngx_command_t, pgbouncer's CfKey). The default is
 * written as in a config file ("5s", "4", "true") and applied through the
 * same parser, so what the docs say is what runs; NULL: no default.
 */
struct cfg_row {
    const char *key;
    enum cfg_ftype type;
    size_t offset;
    int64_t min, max;       /* CFG_INT / CFG_DURATION / CFG_SIZE bounds when max > 0 */
    void (*parse)(struct cfg_ctx *ctx, const struct yt_node *n, void *dst); /* CFG_CUSTOM */
    const char *def;
    const char *doc;
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
};

#define CFG_ROW(k, t, off, lo, hi, d, doc) {(k), (t), (off), (lo), (hi), NULL, (d), (doc), NULL}
#define CFG_ROW_ENUM(k, off, ch, d, doc) {(k), CFG_ENUM, (off), 0, 0, NULL, (d), (doc), (ch)}
#define CFG_ROW_CUSTOM(k, off, fn, doc) {(k), CFG_CUSTOM, (off), 0, 0, (fn), NULL, (doc), NULL}

/* Parse map keys into base+offset per the rows; unknown keys are errors
 * that name where (e.g. "timeouts"). */
void cfg_rows(struct cfg_ctx *ctx, const struct yt_node *map, const char *where, const struct cfg_row *rows,
              size_t nrows, void *base);
/* Set every row that has a default to it. */
void cfg_rows_defaults(const struct cfg_row *rows, size_t nrows, void *base);
/* Append "<indent>key: value  # doc" for every row, as the values are now
 * (portcullis -t --print-defaults). Custom rows print their doc only. */
void cfg_rows_print(struct pc_buf *b, const char *indent, const struct cfg_row *rows, size_t nrows,
                    const void *base);

int cfg_expect(struct cfg_ctx *ctx, const struct yt_node *n, enum yt_type t, const char *what);
int cfg_scalar(struct cfg_ctx *ctx, const struct yt_node *n, enum cfg_ftype t, void *out,
               int64_t min, int64_t max);
/* Report an unknown key, with a suggestion from candidates. */
void cfg_unknown_key(struct cfg_ctx *ctx, const struct yt_node *key, const char *where,
                     const char *const *candidates, size_t ncandidates);

#endif
