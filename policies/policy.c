/*
 * portcullis: policy config, SQL placeholder rewriting, and the
 * synchronous database check used by -t, start-up and reload.
 */
#include "policy.h"
#include "gen.h"
#include "../lib/base.h"
#include "db.h"
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const pol_dialect_names[POL_NDIALECTS] = {"postgresql", "mysql"};

static void pol_variant_texts_free(struct pol_variant *v)
{
    for (int d = 0; d < POL_NDIALECTS; d++) {
        free(v->text[d]);
        v->text[d] = NULL;
    }
}

static void pol_variant_clear(struct pol_variant *v)
{
    pol_variant_texts_free(v);
    free(v->sql);
    free(v->param);
    for (size_t r = 0; r < v->nrequires; r++)
        free(v->requires[r]);
    free(v->requires);
}

void pol_set_free(struct pol_set *ps)
{
    if (ps == NULL)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        struct pol_policy *p = &ps->p[i];
        free(p->name);
        for (size_t j = 0; j < p->nparams; j++)
            free(p->params[j]);
        free(p->params);
        for (size_t v = 0; v < p->nvariants; v++)
            pol_variant_clear(&p->variants[v]);
        free(p->variants);
    }
    free(ps->p);
    free(ps);
}

int pol_find(const struct pol_set *ps, const char *name)
{
    if (ps == NULL)
        return -1;
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i].name, name) == 0)
            return (int)i;
    return -1;
}

size_t pol_nparams(const struct pol_set *ps, int idx)
{
    return ps->p[idx].nparams;
}

const char *pol_param(const struct pol_set *ps, int idx, size_t i)
{
    return ps->p[idx].params[i];
}

static int pol_ident_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int pol_ident_char(char c)
{
    return pol_ident_start(c) || (c >= '0' && c <= '9');
}

/* Length of a dollar-quote tag "$tag$" at s, or 0 if s does not start one. */
static size_t pol_dollar_tag(const char *s)
{
    if (s[0] != '$')
        return 0;
    size_t i = 1;
    if (s[i] == '$')
        return 2;
    if (!pol_ident_start(s[i]))
        return 0;
    while (pol_ident_char(s[i]))
        i++;
    return s[i] == '$' ? i + 1 : 0;
}

char *pol_rewrite_sql(const char *sql, char ***params_out, size_t *nparams_out, const char **why)
{
    struct pc_buf b = {0};
    char **params = NULL;
    size_t np = 0;
    size_t i = 0, len = strlen(sql);

    while (i < len) {
        char c = sql[i];
        if (c == '\'' || c == '"') {
            /* quoted string or identifier; doubled quote escapes */
            size_t j = i + 1;
            int escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                          (i < 2 || !pol_ident_char(sql[i - 2]));
            for (;;) {
                if (j >= len) {
                    *why = c == '\'' ? "unterminated string literal" : "unterminated quoted identifier";
                    goto fail;
                }
                if (escapes && sql[j] == '\\' && j + 1 < len) {
                    j += 2;
                    continue;
                }
                if (sql[j] == c) {
                    if (j + 1 < len && sql[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
            pc_buf_add(&b, sql + i, j + 1 - i);
            i = j + 1;
            continue;
        }
        if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
            size_t j = i;
            while (j < len && sql[j] != '\n' && sql[j] != '\r') /* PostgreSQL: [\n\r] */
                j++;
            pc_buf_add(&b, sql + i, j - i);
            i = j;
            continue;
        }
        if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
            int depth = 0;
            size_t j = i;
            while (j < len) {
                if (sql[j] == '/' && j + 1 < len && sql[j + 1] == '*') {
                    depth++;
                    j += 2;
                } else if (sql[j] == '*' && j + 1 < len && sql[j + 1] == '/') {
                    depth--;
                    j += 2;
                    if (depth == 0)
                        break;
                } else {
                    j++;
                }
            }
            if (depth != 0) {
                *why = "unterminated comment";
                goto fail;
            }
            pc_buf_add(&b, sql + i, j - i);
            i = j;
            continue;
        }
        if (c == '$') {
            size_t tl = pol_dollar_tag(sql + i);
            if (tl > 0 && !(i > 0 && pol_ident_char(sql[i - 1]))) {
                const char *end = NULL;
                for (size_t j = i + tl; j + tl <= len; j++) {
                    if (memcmp(sql + j, sql + i, tl) == 0) {
                        end = sql + j;
                        break;
                    }
                }
                if (end == NULL) {
                    *why = "unterminated dollar-quoted string";
                    goto fail;
                }
                size_t stop = (size_t)(end - sql) + tl;
                pc_buf_add(&b, sql + i, stop - i);
                i = stop;
                continue;
            }
            if (i + 1 < len && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
                *why = "write parameters as :name, not $n";
                goto fail;
            }
        }
        if (c == ':') {
            if (i + 1 < len && sql[i + 1] == ':') {
                pc_buf_add(&b, "::", 2); /* a cast */
                i += 2;
                continue;
            }
            if (i + 1 < len && pol_ident_start(sql[i + 1])) {
                size_t j = i + 1;
                while (j < len && pol_ident_char(sql[j]))
                    j++;
                /* claims.<name>; data.<set>.<key>[.<field>] */
                if (j - i - 1 == 6 && memcmp(sql + i + 1, "claims", 6) == 0 && j < len &&
                    sql[j] == '.' && j + 1 < len && pol_ident_start(sql[j + 1])) {
                    j++;
                    while (j < len && pol_ident_char(sql[j]))
                        j++;
                } else if (j - i - 1 == 4 && memcmp(sql + i + 1, "data", 4) == 0) {
                    for (int part = 0; part < 3 && j + 1 < len && sql[j] == '.' && pol_ident_start(sql[j + 1]);
                         part++) {
                        j++;
                        while (j < len && pol_ident_char(sql[j]))
                            j++;
                    }
                }
                char *name = pc_strndup(sql + i + 1, j - i - 1);
                size_t k;
                for (k = 0; k < np; k++)
                    if (strcmp(params[k], name) == 0)
                        break;
                if (k == np) {
                    if (np == POL_MAX_PARAMS) {
                        free(name);
                        *why = "too many parameters";
                        goto fail;
                    }
                    params = pc_realloc(params, (np + 1) * sizeof(*params));
                    params[np++] = name;
                } else {
                    free(name);
                }
                pc_buf_addf(&b, "$%zu", k + 1);
                i = j;
                continue;
            }
        }
        pc_buf_addc(&b, c);
        i++;
    }
    *params_out = params;
    *nparams_out = np;
    pc_buf_cstr(&b);
    return b.p;
fail:
    for (size_t k = 0; k < np; k++)
        free(params[k]);
    free(params);
    pc_buf_free(&b);
    return NULL;
}

/* An identifier of the schema: [A-Za-z0-9_]+ */
static int pol_is_ident(const char *s, size_t len)
{
    return len > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == len;
}

static void pol_requires_parse(struct cfg_ctx *ctx, const char *policy, const struct yt_node *n,
                               struct pol_variant *v)
{
    if (cfg_expect(ctx, n, YT_SEQ, "requires") != 0)
        return;
    if (n->n > POL_MAX_REQUIRES) {
        cfg_error(ctx, n, "policy '%s': more than %d requirements", policy, POL_MAX_REQUIRES);
        return;
    }
    v->requires = pc_calloc(n->n ? n->n : 1, sizeof(*v->requires));
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *r = n->items[i];
        if (cfg_expect(ctx, r, YT_SCALAR, "a requirement") != 0)
            continue;
        const char *dot = memchr(r->str, '.', r->len);
        size_t tl = dot ? (size_t)(dot - r->str) : r->len;
        if (!pol_is_ident(r->str, tl) || (dot != NULL && !pol_is_ident(dot + 1, r->len - tl - 1))) {
            cfg_error(ctx, r, "policy '%s': a requirement is a table or table.column, found '%s'", policy, r->str);
            continue;
        }
        v->requires[v->nrequires++] = pc_strdup(r->str);
    }
}

/* A variant's sql: one text for every dialect, or {postgresql: ..., mysql:
 * ...}. Kept as written until every section is read (pol_gen_finish). */
static void pol_variant_texts(struct cfg_ctx *ctx, struct pol_policy *p, const struct yt_node *n,
                              struct pol_variant *v)
{
    v->line = n->line;
    v->col = n->col;
    if (n->type == YT_SCALAR) {
        for (int d = 0; d < POL_NDIALECTS; d++) {
            v->text[d] = pc_strdup(n->str);
            v->text_line[d] = n->line;
            v->text_col[d] = n->col;
        }
        return;
    }
    if (cfg_expect(ctx, n, YT_MAP, "a policy's SQL (text, or a mapping of postgresql: and mysql: texts)") != 0)
        return;
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *t = n->items[i];
        int d;
        for (d = 0; d < POL_NDIALECTS; d++)
            if (strcmp(k->str, pol_dialect_names[d]) == 0)
                break;
        if (d == POL_NDIALECTS) {
            cfg_unknown_key(ctx, k, "a policy's sql", pol_dialect_names, POL_NDIALECTS);
            continue;
        }
        if (cfg_expect(ctx, t, YT_SCALAR, "a policy's SQL") != 0)
            continue;
        v->text[d] = pc_strdup(t->str);
        v->text_line[d] = t->line;
        v->text_col[d] = t->col;
    }
    if (n->n == 0)
        cfg_error(ctx, n, "policy '%s': sql: lists no SQL", p->name);
}

/* Rewrite a variant's SQL for dialect d and map its parameters onto the
 * policy's. */
static void pol_variant_sql(struct cfg_ctx *ctx, struct pol_policy *p, struct pol_variant *v, int d)
{
    const char *why;
    char **names = NULL;
    size_t nn = 0;
    struct yt_node at = {.type = YT_SCALAR, .line = v->line, .col = v->col};
    if (v->text[d] == NULL) {
        cfg_error(ctx, &at, "policy '%s' has no SQL for driver %s", p->name, pol_dialect_names[d]);
        return;
    }
    v->line = at.line = v->text_line[d];
    v->col = at.col = v->text_col[d];
    v->sql = d == POL_DIALECT_MYSQL ? pol_rewrite_sql_mysql(v->text[d], &names, &nn, &why)
                                    : pol_rewrite_sql(v->text[d], &names, &nn, &why);
    if (v->sql == NULL) {
        cfg_error(ctx, &at, "policy '%s': %s", p->name, why);
        return;
    }
    v->nparams = nn;
    v->param = pc_calloc(nn ? nn : 1, sizeof(*v->param));
    for (size_t j = 0; j < nn; j++) {
        if (strncmp(names[j], "claims.", 7) != 0 && strncmp(names[j], "data.", 5) != 0 && strchr(names[j], '.') != NULL)
            cfg_error(ctx, &at, "policy '%s': bad parameter :%s", p->name, names[j]);
        size_t k;
        for (k = 0; k < p->nparams; k++)
            if (strcmp(p->params[k], names[j]) == 0)
                break;
        if (k == p->nparams) {
            if (p->nparams == POL_MAX_PARAMS) {
                cfg_error(ctx, &at, "policy '%s': too many parameters", p->name);
                k = 0;
            } else {
                p->params = pc_realloc(p->params, (p->nparams + 1) * sizeof(*p->params));
                p->params[p->nparams++] = pc_strdup(names[j]);
            }
        }
        v->param[j] = (int)k;
        free(names[j]);
    }
    free(names);
}

/* { sql, requires } or one item of variants: */
static void pol_variant_parse(struct cfg_ctx *ctx, struct pol_policy *p, const struct yt_node *n, int top)
{
    static const char *const keys[] = {"sql", "requires", "variants"};
    struct pol_variant *v = &p->variants[p->nvariants++];
    const struct yt_node *sql = NULL;
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *val = n->items[i];
        if (strcmp(k->str, "sql") == 0)
            sql = val;
        else if (strcmp(k->str, "requires") == 0)
            pol_requires_parse(ctx, p->name, val, v);
        else if (!(top && strcmp(k->str, "variants") == 0))
            cfg_unknown_key(ctx, k, top ? "a policy" : "a policy variant", keys, top ? 3 : 2);
    }
    if (sql == NULL)
        cfg_error(ctx, n, "policy '%s' needs sql:", p->name);
    else
        pol_variant_texts(ctx, p, sql, v);
}

static void pol_parse_one(struct cfg_ctx *ctx, struct pol_policy *p, const struct yt_node *v)
{
    if (v->type == YT_SCALAR) {
        /* the short form: SQL that every schema can run */
        p->variants = pc_calloc(1, sizeof(*p->variants));
        p->nvariants = 1;
        pol_variant_texts(ctx, p, v, &p->variants[0]);
        return;
    }
    if (cfg_expect(ctx, v, YT_MAP, "a policy (SQL, or a mapping with sql: and requires:, or variants:)") != 0)
        return;
    const struct yt_node *vs = yt_get(v, "variants");
    if (vs == NULL) {
        p->variants = pc_calloc(1, sizeof(*p->variants));
        pol_variant_parse(ctx, p, v, 1);
        return;
    }
    if (yt_get(v, "sql") != NULL || yt_get(v, "requires") != NULL)
        cfg_error(ctx, v, "policy '%s': either variants: or sql: and requires:, not both", p->name);
    if (cfg_expect(ctx, vs, YT_SEQ, "variants") != 0)
        return;
    if (vs->n == 0 || vs->n > POL_MAX_VARIANTS) {
        cfg_error(ctx, vs, "policy '%s': variants must list 1 to %d variants", p->name, POL_MAX_VARIANTS);
        return;
    }
    p->variants = pc_calloc(vs->n, sizeof(*p->variants));
    for (size_t i = 0; i < vs->n; i++) {
        if (cfg_expect(ctx, vs->items[i], YT_MAP, "a policy variant (sql: and requires:)") != 0)
            continue;
        pol_variant_parse(ctx, p, vs->items[i], 0);
    }
}

void pol_set_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_gen *gen)
{
    struct pol_set *ps = pc_calloc(1, sizeof(*ps));
    pol_set_free(gen->set);
    gen->set = ps;
    if (cfg_expect(ctx, n, YT_MAP, "policies") != 0)
        return;
    ps->p = pc_calloc(n->n ? n->n : 1, sizeof(*ps->p));
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        struct pol_policy *p = &ps->p[ps->n];
        if (k->len == 0 || strspn(k->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != k->len) {
            cfg_error(ctx, k, "policy names use [A-Za-z0-9_-], found '%s'", k->str);
            continue;
        }
        p->name = pc_strdup(k->str);
        p->line = v->line;
        p->col = v->col;
        pol_parse_one(ctx, p, v);
        for (size_t j = 0; j < p->nvariants; j++)
            ps->any_requires |= p->variants[j].nrequires > 0;
        ps->n++;
    }
}

void pol_gen_finish(struct cfg_ctx *ctx, struct pol_gen *gen, const struct yt_node *policies)
{
    struct pol_set *ps = gen->set;
    for (size_t i = 0; ps != NULL && i < ps->n; i++) {
        struct pol_policy *p = &ps->p[i];
        for (size_t j = 0; j < p->nvariants; j++) {
            pol_variant_sql(ctx, p, &p->variants[j], (int)gen->db.dialect);
            pol_variant_texts_free(&p->variants[j]);
        }
    }
    if (ps != NULL && ps->n > 0 && !gen->db.configured)
        cfg_error(ctx, policies, "policies need a database section");
}

int pol_check_database(const struct pol_gen *gen, char **errors, char **warnings)
{
    *errors = NULL;
    *warnings = NULL;
    if (!pol_gen_active(gen))
        return 0;
    return db_driver_for(gen)->check(gen, errors, warnings);
}

const struct db_driver *db_driver_for(const struct pol_gen *gen)
{
    return gen->db.dialect == POL_DIALECT_MYSQL ? &db_driver_my : &db_driver_pg;
}
