/*
 * portcullis base: the config framework (see cfg.h).
 */
#include "cfg.h"
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One "file:line:col: message" line. Messages quote config values, which
 * may hold line breaks and other control characters: those are escaped, so
 * that one message stays one line. */
static void cfg_vmessage(struct pc_buf *out, const char *file, const struct yt_node *at, const char *kind,
                         const char *fmt, va_list ap)
{
    struct pc_buf m = {0};
    pc_buf_addf(out, "%s:%d:%d: %s", file, at ? at->line : 1, at ? at->col : 1, kind);
    pc_buf_vaddf(&m, fmt, ap);
    pc_buf_add_printable(out, m.p, m.len);
    pc_buf_addc(out, '\n');
    pc_buf_free(&m);
}

void cfg_error(struct cfg_ctx *ctx, const struct yt_node *at, const char *fmt, ...)
{
    va_list ap;
    if (ctx->nerrors >= 50)
        return;
    va_start(ap, fmt);
    cfg_vmessage(&ctx->errors, ctx->file, at, "", fmt, ap);
    va_end(ap);
    ctx->nerrors++;
}

void cfg_warn(struct cfg_ctx *ctx, const struct yt_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vmessage(&ctx->warnings, ctx->file, at, "warning: ", fmt, ap);
    va_end(ap);
}

static const char *cfg_type_name(enum yt_type t)
{
    switch (t) {
    case YT_SCALAR: return "a scalar";
    case YT_MAP: return "a mapping";
    case YT_SEQ: return "a list";
    }
    return "?";
}

int cfg_expect(struct cfg_ctx *ctx, const struct yt_node *n, enum yt_type t, const char *what)
{
    if (n->type == t)
        return 0;
    cfg_error(ctx, n, "%s must be %s", what, cfg_type_name(t));
    return -1;
}

void cfg_unknown_key(struct cfg_ctx *ctx, const struct yt_node *key, const char *where,
                     const char *const *candidates, size_t ncandidates)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < ncandidates; i++) {
        size_t d = pc_edit_distance(key->str, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (best != NULL)
        cfg_error(ctx, key, "unknown key '%s' in %s (did you mean '%s'?)", key->str, where, best);
    else
        cfg_error(ctx, key, "unknown key '%s' in %s", key->str, where);
}

int cfg_scalar(struct cfg_ctx *ctx, const struct yt_node *n, enum cfg_ftype t, void *out,
               int64_t min, int64_t max)
{
    if (n->type != YT_SCALAR) {
        cfg_error(ctx, n, "expected a scalar value, found %s", cfg_type_name(n->type));
        return -1;
    }
    switch (t) {
    case CFG_STR:
        *(char **)out = pc_strndup(n->str, n->len);
        return 0;
    case CFG_DURATION: {
        int64_t ms;
        if (pc_parse_duration(n->str, &ms) != 0) {
            cfg_error(ctx, n, "invalid duration '%s' (write e.g. 500ms, 10s, 5m, 1h)", n->str);
            return -1;
        }
        if (max > 0 && (ms < min || ms > max)) {
            cfg_error(ctx, n, "duration '%s' out of range", n->str);
            return -1;
        }
        *(int64_t *)out = ms;
        return 0;
    }
    case CFG_SIZE: {
        uint64_t b;
        if (pc_parse_size(n->str, &b) != 0) {
            cfg_error(ctx, n, "invalid size '%s' (write e.g. 32KiB, 100MiB)", n->str);
            return -1;
        }
        if (max > 0 && (b < (uint64_t)min || b > (uint64_t)max)) {
            cfg_error(ctx, n, "size '%s' out of range", n->str);
            return -1;
        }
        *(uint64_t *)out = b;
        return 0;
    }
    case CFG_INT: {
        uint64_t v;
        if (pc_parse_u64(n->str, n->len, &v) != 0 || v > INT64_MAX) {
            cfg_error(ctx, n, "invalid number '%s'", n->str);
            return -1;
        }
        if (max > 0 && ((int64_t)v < min || (int64_t)v > max)) {
            cfg_error(ctx, n, "%s is out of range (%lld..%lld)", n->str, (long long)min, (long long)max);
            return -1;
        }
        *(int64_t *)out = (int64_t)v;
        return 0;
    }
    case CFG_BOOL:
        if (!n->quoted && strcmp(n->str, "true") == 0) {
            *(int *)out = 1;
            return 0;
        }
        if (!n->quoted && strcmp(n->str, "false") == 0) {
            *(int *)out = 0;
            return 0;
        }
        cfg_error(ctx, n, "expected true or false, found '%s'", n->str);
        return -1;
    case CFG_CUSTOM:
        break; /* a row's own parse function */
    }
    return -1;
}

void cfg_fields(struct cfg_ctx *ctx, const struct yt_node *map,
                const struct cfg_field *fields, size_t nfields, void *base)
{
    const char *names[32];
    for (size_t i = 0; i < nfields && i < 32; i++)
        names[i] = fields[i].key;
    for (size_t i = 0; i < map->n; i++) {
        const struct yt_node *k = map->keys[i], *v = map->items[i];
        size_t f;
        for (f = 0; f < nfields; f++)
            if (strcmp(k->str, fields[f].key) == 0)
                break;
        if (f == nfields) {
            cfg_unknown_key(ctx, k, "this section", names, PC_MIN(nfields, (size_t)32));
            continue;
        }
        void *dst = (char *)base + fields[f].offset;
        if (fields[f].type == CFG_CUSTOM) {
            fields[f].parse(ctx, v, dst);
            continue;
        }
        if (fields[f].type == CFG_STR)
            free(*(char **)dst);
        cfg_scalar(ctx, v, fields[f].type, dst, fields[f].min, fields[f].max);
    }
}
