/*
 * portcullis: policy config, SQL placeholder rewriting, and the
 * synchronous database check used by -t, start-up and reload.
 */
#include "policy.h"
#include "../rules/config.h"
#include "../proxy/metrics.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

void pol_set_free(struct pol_set *ps)
{
    if (ps == NULL)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->p[i].name);
        free(ps->p[i].sql);
        for (size_t j = 0; j < ps->p[i].nparams; j++)
            free(ps->p[i].params[j]);
        free(ps->p[i].params);
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
                /* claims.<name> */
                if (j - i - 1 == 6 && memcmp(sql + i + 1, "claims", 6) == 0 && j < len &&
                    sql[j] == '.' && j + 1 < len && pol_ident_start(sql[j + 1])) {
                    j++;
                    while (j < len && pol_ident_char(sql[j]))
                        j++;
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

void pol_config_parse(struct cfg_ctx *ctx, struct yt_node *n)
{
    struct pol_set *ps = pc_calloc(1, sizeof(*ps));
    pol_set_free(ctx->cfg->policies);
    ctx->cfg->policies = ps;
    if (cfg_expect(ctx, n, YT_MAP, "policies") != 0)
        return;
    ps->p = pc_calloc(n->n ? n->n : 1, sizeof(*ps->p));
    for (size_t i = 0; i < n->n; i++) {
        struct yt_node *k = n->keys[i], *v = n->items[i];
        struct pol_policy *p = &ps->p[ps->n];
        const char *why;
        if (k->len == 0 || strspn(k->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != k->len) {
            cfg_error(ctx, k, "policy names use [A-Za-z0-9_-], found '%s'", k->str);
            continue;
        }
        if (cfg_expect(ctx, v, YT_SCALAR, "a policy's SQL") != 0)
            continue;
        p->sql = pol_rewrite_sql(v->str, &p->params, &p->nparams, &why);
        if (p->sql == NULL) {
            cfg_error(ctx, v, "policy '%s': %s", k->str, why);
            continue;
        }
        p->name = pc_strdup(k->str);
        p->metric_slot = pc_metrics_policy_slot(p->name);
        p->line = v->line;
        p->col = v->col;
        for (size_t j = 0; j < p->nparams; j++) {
            const char *pn = p->params[j];
            if (strncmp(pn, "claims.", 7) != 0 && strchr(pn, '.') != NULL)
                cfg_error(ctx, v, "policy '%s': bad parameter :%s", k->str, pn);
        }
        ps->n++;
    }
}

void pol_config_finish(struct cfg_ctx *ctx, struct yt_node *root)
{
    struct pol_set *ps = ctx->cfg->policies;
    if (ps != NULL && ps->n > 0 && !ctx->cfg->database.configured)
        cfg_error(ctx, yt_get(root, "policies"), "policies need a database section");
    if (ctx->cfg->identity == NULL) {
        /* rules with allow: need identity; checked here so that the error
         * points at the first such rule */
        struct yt_node *rules = yt_get(root, "rules");
        if (rules != NULL && rules->type == YT_SEQ) {
            for (size_t i = 0; i < rules->n; i++) {
                struct yt_node *a = yt_get(rules->items[i], "allow");
                if (a != NULL) {
                    cfg_error(ctx, a, "rules with allow: need an identity section");
                    break;
                }
            }
        }
    }
}

static void pol_pg_message(struct pc_buf *b, const char *msg)
{
    size_t start = b->len;
    pc_buf_adds(b, msg);
    pc_buf_cstr(b);
    b->len = start + pc_one_line(b->p + start);
}

int pol_check_database(const struct pc_config *cfg, char **errors)
{
    struct pc_buf b = {0};
    const struct pol_set *ps = cfg->policies;
    char timeout[32];
    int rc = 0;

    *errors = NULL;
    if (ps == NULL || ps->n == 0 || !cfg->database.configured)
        return 0;
    const char *keys[PG_MAX_PARAMS], *vals[PG_MAX_PARAMS];
    pg_conn_params(&cfg->database, "portcullis-check", keys, vals, timeout, sizeof(timeout));
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        pc_buf_addf(&b, "%s:%d:%d: database unreachable, policies were not checked: ", cfg->file,
                    cfg->database.line, cfg->database.col);
        pol_pg_message(&b, c ? PQerrorMessage(c) : "out of memory");
        pc_buf_addc(&b, '\n');
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < ps->n; i++) {
        PGresult *r = PQprepare(c, "", ps->p[i].sql, (int)ps->p[i].nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pc_buf_addf(&b, "%s:%d:%d: policy '%s' does not prepare: ", cfg->file, ps->p[i].line,
                        ps->p[i].col, ps->p[i].name);
            pol_pg_message(&b, PQresultErrorMessage(r));
            pc_buf_addc(&b, '\n');
            rc = -1;
        }
        PQclear(r);
    }
out:
    if (c)
        PQfinish(c);
    if (b.len > 0)
        *errors = pc_strdup(pc_buf_cstr(&b));
    pc_buf_free(&b);
    return rc;
}
