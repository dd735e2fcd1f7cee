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
    case CFG_ENUM:
    case CFG_CUSTOM:
        break; /* cfg_rows: choices, or a row's own parse function */
    }
    return -1;
}

/* One of the row's choices, by name. */
static int cfg_enum(struct cfg_ctx *ctx, const struct yt_node *v, const char *where, const struct cfg_row *r,
                    int *dst)
{
    struct pc_buf names = {0};
    if (cfg_expect(ctx, v, YT_SCALAR, r->key) != 0)
        return -1;
    for (int i = 0; r->choices[i] != NULL; i++) {
        if (strcmp(v->str, r->choices[i]) == 0) {
            *dst = i;
            pc_buf_free(&names);
            return 0;
        }
        pc_buf_addf(&names, "%s%s", i ? ", " : "", r->choices[i]);
    }
    cfg_error(ctx, v, "%s.%s must be one of %s, found '%s'", where, r->key, pc_buf_cstr(&names), v->str);
    pc_buf_free(&names);
    return -1;
}

void cfg_rows(struct cfg_ctx *ctx, const struct yt_node *map, const char *where, const struct cfg_row *rows,
              size_t nrows, void *base)
{
    const char *names[32];
    for (size_t i = 0; i < nrows && i < 32; i++)
        names[i] = rows[i].key;
    if (cfg_expect(ctx, map, YT_MAP, where) != 0)
        return;
    for (size_t i = 0; i < map->n; i++) {
        const struct yt_node *k = map->keys[i], *v = map->items[i];
        size_t f;
        for (f = 0; f < nrows; f++)
            if (strcmp(k->str, rows[f].key) == 0)
                break;
        if (f == nrows) {
            cfg_unknown_key(ctx, k, where, names, PC_MIN(nrows, (size_t)32));
            continue;
        }
        void *dst = (char *)base + rows[f].offset;
        if (rows[f].type == CFG_CUSTOM) {
            rows[f].parse(ctx, v, dst);
            continue;
        }
        if (rows[f].type == CFG_ENUM) {
            cfg_enum(ctx, v, where, &rows[f], dst);
            continue;
        }
        if (rows[f].type == CFG_STR) {
            free(*(char **)dst);
            *(char **)dst = NULL;
        }
        cfg_scalar(ctx, v, rows[f].type, dst, rows[f].min, rows[f].max);
    }
}

void cfg_rows_defaults(const struct cfg_row *rows, size_t nrows, void *base)
{
    for (size_t i = 0; i < nrows; i++) {
        const struct cfg_row *r = &rows[i];
        if (r->def == NULL || r->type == CFG_CUSTOM)
            continue;
        struct yt_node n = {.type = YT_SCALAR, .line = 1, .col = 1, .str = (char *)r->def, .len = strlen(r->def)};
        struct cfg_ctx quiet = {.file = "(default)"};
        void *dst = (char *)base + r->offset;
        if (r->type == CFG_STR)
            free(*(char **)dst);
        if (r->type == CFG_ENUM)
            cfg_enum(&quiet, &n, "(default)", r, dst);
        else
            cfg_scalar(&quiet, &n, r->type, dst, r->min, r->max);
        /* a default that does not parse is a bug in a row table */
        if (quiet.nerrors > 0)
            abort();
        pc_buf_free(&quiet.errors);
    }
}

static void cfg_value_print(struct pc_buf *b, const struct cfg_row *r, const void *base)
{
    const void *v = (const char *)base + r->offset;
    switch (r->type) {
    case CFG_STR: {
        const char *s = *(char *const *)v;
        if (s == NULL) {
            pc_buf_adds(b, "null");
        } else {
            pc_buf_addc(b, '"');
            pc_buf_add_json_str(b, s, strlen(s));
            pc_buf_addc(b, '"');
        }
        return;
    }
    case CFG_DURATION: {
        int64_t ms = *(const int64_t *)v;
        if (ms % 1000 == 0)
            pc_buf_addf(b, "%llds", (long long)(ms / 1000));
        else
            pc_buf_addf(b, "%lldms", (long long)ms);
        return;
    }
    case CFG_SIZE: {
        uint64_t n = *(const uint64_t *)v;
        if (n != 0 && n % (1024 * 1024) == 0)
            pc_buf_addf(b, "%lluMiB", (unsigned long long)(n / (1024 * 1024)));
        else if (n != 0 && n % 1024 == 0)
            pc_buf_addf(b, "%lluKiB", (unsigned long long)(n / 1024));
        else
            pc_buf_addf(b, "%llu", (unsigned long long)n);
        return;
    }
    case CFG_INT:
        pc_buf_addf(b, "%lld", (long long)*(const int64_t *)v);
        return;
    case CFG_BOOL:
        pc_buf_adds(b, *(const int *)v ? "true" : "false");
        return;
    case CFG_ENUM:
        pc_buf_adds(b, r->choices[*(const int *)v]);
        return;
    case CFG_CUSTOM:
        return;
    }
}

void cfg_rows_print(struct pc_buf *b, const char *indent, const struct cfg_row *rows, size_t nrows,
                    const void *base)
{
    for (size_t i = 0; i < nrows; i++) {
        const struct cfg_row *r = &rows[i];
        if (r->type == CFG_CUSTOM) {
            pc_buf_addf(b, "%s# %s: %s\n", indent, r->key, r->doc ? r->doc : "");
            continue;
        }
        if (r->type == CFG_STR && strcmp(r->key, "password") == 0) {
            pc_buf_addf(b, "%s%s: %s", indent, r->key, *(char *const *)((const char *)base + r->offset) ? "(set)" : "null");
        } else {
            pc_buf_addf(b, "%s%s: ", indent, r->key);
            cfg_value_print(b, r, base);
        }
        if (r->doc != NULL)
            pc_buf_addf(b, "    # %s", r->doc);
        pc_buf_addc(b, '\n');
    }
}
