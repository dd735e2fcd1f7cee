/*
 * portcullis: decision test files (see testfile.h).
 */
#include "testfile.h"
#include "judge.h"
#include "../lib/cfg.h"
#include "../lib/yaml.h"
#include "../policies/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one value each ---- */

static void tf_request_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_request *r = dst;
    if (cfg_expect(ctx, n, YT_SCALAR, "request (\"METHOD URL\")") != 0)
        return;
    const char *sp = strchr(n->str, ' ');
    if (sp == NULL || sp == n->str || sp[1] == '\0') {
        cfg_error(ctx, n, "request must be \"METHOD URL\", found '%s'", n->str);
        return;
    }
    for (const char *p = n->str; p < sp; p++) {
        if (!pc_is_tchar((unsigned char)*p)) {
            cfg_error(ctx, n, "invalid method '%.*s'", (int)(sp - n->str), n->str);
            return;
        }
    }
    if (strpbrk(sp + 1, " \t\r\n") != NULL) {
        cfg_error(ctx, n, "the URL of a request must not contain spaces or line breaks: '%s'", sp + 1);
        return;
    }
    r->method = pc_strndup(n->str, (size_t)(sp - n->str));
    r->url = pc_strdup(sp + 1);
}

static void tf_headers_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_strings *h = dst;
    if (cfg_expect(ctx, n, YT_SEQ, "headers (a list of \"Name: value\")") != 0)
        return;
    h->v = pc_calloc(n->n ? n->n : 1, sizeof(*h->v));
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *it = n->items[i];
        if (it->type != YT_SCALAR) {
            cfg_error(ctx, it, "a header must be a quoted \"Name: value\" string");
            continue;
        }
        const char *colon = strchr(it->str, ':');
        if (colon == NULL || colon == it->str || strpbrk(it->str, "\r\n") != NULL) {
            cfg_error(ctx, it, "a header must be \"Name: value\" on one line, found '%s'", it->str);
            continue;
        }
        h->v[h->n++] = pc_strndup(it->str, it->len);
    }
}

/* A claim's type as a plain YAML scalar reads: digits a number, true and
 * false booleans, null left out; quoted values are strings. */
static enum pc_claim_type tf_scalar_type(const struct yt_node *n)
{
    uint64_t u;
    if (n->quoted)
        return PC_CLAIM_STR;
    if (yt_is_null(n))
        return PC_CLAIM_OMIT;
    if (pc_parse_u64(n->str, n->len, &u) == 0 && u <= INT64_MAX)
        return PC_CLAIM_INT;
    if (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)
        return PC_CLAIM_BOOL;
    return PC_CLAIM_STR;
}

/* A list or a map claim as JSON, scalars typed as above. */
static void tf_json(struct pc_buf *b, const struct yt_node *n)
{
    if (n->type == YT_SCALAR) {
        enum pc_claim_type t = tf_scalar_type(n);
        if (t == PC_CLAIM_OMIT)
            pc_buf_adds(b, "null");
        else if (t != PC_CLAIM_STR)
            pc_buf_add(b, n->str, n->len);
        else {
            pc_buf_addc(b, '"');
            pc_buf_add_json_str(b, n->str, n->len);
            pc_buf_addc(b, '"');
        }
        return;
    }
    pc_buf_addc(b, n->type == YT_MAP ? '{' : '[');
    for (size_t i = 0; i < n->n; i++) {
        if (i > 0)
            pc_buf_addc(b, ',');
        if (n->type == YT_MAP) {
            pc_buf_addc(b, '"');
            pc_buf_add_json_str(b, n->keys[i]->str, n->keys[i]->len);
            pc_buf_adds(b, "\":");
        }
        tf_json(b, n->items[i]);
    }
    pc_buf_addc(b, n->type == YT_MAP ? '}' : ']');
}

static void tf_claims_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_claims *c = dst;
    if (cfg_expect(ctx, n, YT_MAP, "claims") != 0)
        return;
    c->v = pc_calloc(n->n ? n->n : 1, sizeof(*c->v));
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *v = n->items[i];
        struct pc_claim *cl = &c->v[c->n++];
        cl->name = pc_strndup(n->keys[i]->str, n->keys[i]->len);
        if (v->type == YT_SCALAR) {
            cl->type = tf_scalar_type(v);
            cl->value = pc_strndup(v->str, v->len);
            continue;
        }
        struct pc_buf b = {0};
        tf_json(&b, v);
        cl->type = PC_CLAIM_JSON;
        cl->value = pc_strndup(b.p, b.len);
        pc_buf_free(&b);
    }
}

/* credential: one source or a list of them, as identity.sources writes them */
static void tf_creds_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_creds *c = dst;
    const struct yt_node *const *items = (const struct yt_node *const *)&n;
    size_t k = 1;
    if (n->type == YT_SEQ) {
        items = (const struct yt_node *const *)n->items;
        k = n->n;
        if (k == 0)
            cfg_error(ctx, n, "credential must not be an empty list");
    }
    c->v = pc_calloc(k ? k : 1, sizeof(*c->v));
    for (size_t i = 0; i < k; i++) {
        if (items[i]->type != YT_SCALAR) {
            cfg_error(ctx, items[i], "credential must be cookie:NAME, header:NAME or query:NAME (or a list of them)");
            continue;
        }
        if (id_source_parse(ctx, items[i], &c->v[c->n]) == 0)
            c->n++;
    }
}

static void tf_pos_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_pos *p = dst;
    if (cfg_expect(ctx, n, YT_SCALAR, "the value") != 0)
        return;
    if (n->len == 0) {
        cfg_error(ctx, n, "the value must not be empty");
        return;
    }
    p->str = pc_strndup(n->str, n->len);
    p->line = n->line;
    p->col = n->col;
}

static void tf_forge_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_pos *p = dst;
    tf_pos_parse(ctx, n, dst);
    if (p->str == NULL)
        return;
    if (strcmp(p->str, "random-key") == 0)
        p->kind = TF_FORGE_RANDOM;
    else if (strcmp(p->str, "public-secret") == 0)
        p->kind = TF_FORGE_PUBLIC;
    else
        cfg_error(ctx, n, "forge must be random-key or public-secret, found '%s'", p->str);
}

/* ---- expect ---- */

static void tf_status_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct tf_expect *e)
{
    uint64_t s;
    if (cfg_expect(ctx, n, YT_SCALAR, "expect.status") != 0)
        return;
    e->given |= TF_E_STATUS;
    if (strcmp(n->str, "forwarded") == 0)
        e->status = PC_JUDGE_FORWARD;
    else if (strcmp(n->str, "local") == 0)
        e->status = PC_JUDGE_LOCAL;
    else if (!n->quoted && pc_parse_u64(n->str, n->len, &s) == 0 && s >= 100 && s <= 599)
        e->status = (int)s;
    else
        cfg_error(ctx, n, "expect.status must be an HTTP status (100..599), forwarded or local, found '%s'", n->str);
}

static void tf_decision_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct tf_expect *e)
{
    struct pc_buf names = {0};
    if (cfg_expect(ctx, n, YT_SCALAR, "expect.decision") != 0)
        return;
    e->given |= TF_E_DECISION;
    for (int d = PC_D_NONE + 1; d < PC_D__COUNT; d++) {
        if (strcmp(n->str, pc_decision_names[d]) == 0) {
            e->decision = d;
            return;
        }
    }
    for (int d = PC_D_NONE + 1; d < PC_D__COUNT; d++)
        pc_buf_addf(&names, "%s%s", d > PC_D_NONE + 1 ? ", " : "", pc_decision_names[d]);
    cfg_error(ctx, n, "expect.decision must be one of %s, found '%s'", pc_buf_cstr(&names), n->str);
    pc_buf_free(&names);
}

static void tf_expect_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    static const char *const keys[] = {"status", "decision", "rule", "reason", "data_decided"};
    struct tf_expect *e = dst;
    if (cfg_expect(ctx, n, YT_MAP, "expect") != 0)
        return;
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "status") == 0) {
            tf_status_parse(ctx, v, e);
        } else if (strcmp(k->str, "decision") == 0) {
            tf_decision_parse(ctx, v, e);
        } else if (strcmp(k->str, "rule") == 0) {
            e->given |= TF_E_RULE;
            if (!yt_is_null(v)) /* null: no rule applies */
                cfg_scalar(ctx, v, CFG_STR, &e->rule, 0, 0);
        } else if (strcmp(k->str, "reason") == 0) {
            cfg_scalar(ctx, v, CFG_STR, &e->reason, 0, 0);
        } else if (strcmp(k->str, "data_decided") == 0) {
            if (cfg_scalar(ctx, v, CFG_BOOL, &e->data_decided, 0, 0) == 0)
                e->given |= TF_E_DATA;
        } else {
            cfg_unknown_key(ctx, k, "expect", keys, PC_ARRAY_LEN(keys));
        }
    }
    if ((e->given & (TF_E_STATUS | TF_E_DECISION | TF_E_RULE)) != (TF_E_STATUS | TF_E_DECISION | TF_E_RULE))
        cfg_error(ctx, n, "expect needs status, decision and rule (rule: null when no rule applies)");
}

/* ---- data ---- */

static void tf_data_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct tf_data *d = dst;
    if (cfg_expect(ctx, n, YT_MAP, "data (a mapping of data set: file)") != 0)
        return;
    d->names = pc_calloc(n->n ? n->n : 1, sizeof(*d->names));
    d->paths = pc_calloc(n->n ? n->n : 1, sizeof(*d->paths));
    d->at = pc_calloc(n->n ? n->n : 1, sizeof(*d->at));
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *v = n->items[i];
        char *path = NULL;
        if (!yt_is_null(v)) {
            if (cfg_expect(ctx, v, YT_SCALAR, "a data file's path") != 0)
                continue;
            if (v->len > 0)
                path = pc_strdup(v->str); /* relative to the test file: packtest.c */
        }
        d->names[d->n] = pc_strdup(n->keys[i]->str);
        d->paths[d->n] = path;
        d->at[d->n] = pc_sprintf("%s:%d:%d", ctx->file, v->line, v->col);
        d->n++;
    }
}

/* ---- a case ---- */

static const struct cfg_row tf_case_rows[] = {
    CFG_ROW("name", CFG_STR, offsetof(struct tf_case, name), 0, 0, NULL, "what the case proves, unique in the file"),
    CFG_ROW_CUSTOM("request", offsetof(struct tf_case, req), tf_request_parse, "\"METHOD URL\""),
    CFG_ROW_CUSTOM("headers", offsetof(struct tf_case, headers), tf_headers_parse, "[\"Name: value\", ...]"),
    CFG_ROW("subject", CFG_STR, offsetof(struct tf_case, subject), 0, 0, NULL, "mint a token for this subject"),
    CFG_ROW_CUSTOM("as", offsetof(struct tf_case, as), tf_pos_parse, "mint a token for a subject named in subjects:"),
    CFG_ROW_CUSTOM("claims", offsetof(struct tf_case, claims), tf_claims_parse, "claims added to the token"),
    CFG_ROW_CUSTOM("credential", offsetof(struct tf_case, creds), tf_creds_parse, "where the token goes"),
    CFG_ROW_CUSTOM("key", offsetof(struct tf_case, key), tf_pos_parse, "sign with this identity.keys id"),
    CFG_ROW_CUSTOM("forge", offsetof(struct tf_case, forge), tf_forge_parse, "random-key or public-secret"),
    CFG_ROW_CUSTOM("data", offsetof(struct tf_case, data), tf_data_parse, "operator data files for this case"),
    CFG_ROW_CUSTOM("expect", offsetof(struct tf_case, expect), tf_expect_parse,
                   "status, decision, rule, reason, data_decided"),
};

struct tf_subjects {
    const struct yt_node *map;  /* name -> subject, or NULL */
};

static void tf_resolve_as(struct cfg_ctx *ctx, const struct tf_subjects *s, struct tf_case *c)
{
    const struct yt_node *v = s->map ? yt_get(s->map, c->as.str) : NULL;
    struct yt_node at = {.line = c->as.line, .col = c->as.col};
    if (v != NULL && v->type == YT_SCALAR) {
        c->subject = pc_strndup(v->str, v->len);
        return;
    }
    const char *best = NULL;
    for (size_t i = 0; s->map != NULL && i < s->map->n; i++)
        if (pc_edit_distance(c->as.str, s->map->keys[i]->str) < 3)
            best = s->map->keys[i]->str;
    cfg_error(ctx, &at, "'%s' is not a name in subjects:%s%s%s", c->as.str, best ? " (did you mean '" : "",
              best ? best : "", best ? "'?)" : "");
}

static void tf_case_check(struct cfg_ctx *ctx, const struct yt_node *n, const struct tf_subjects *s,
                          struct tf_case *c)
{
    if (c->name == NULL || c->name[0] == '\0')
        cfg_error(ctx, n, "a test needs a name");
    if (yt_get(n, "request") == NULL)
        cfg_error(ctx, n, "a test needs a request (\"METHOD URL\")");
    if (yt_get(n, "expect") == NULL)
        cfg_error(ctx, n, "a test needs expect: {status, decision, rule}");
    if (c->subject != NULL && c->as.str != NULL)
        cfg_error(ctx, yt_get(n, "as"), "a test names its subject once: subject: or as:, not both");
    else if (c->as.str != NULL)
        tf_resolve_as(ctx, s, c);
    int token_opts = c->claims.n || c->creds.n || c->key.str || c->forge.str;
    if (token_opts && c->subject == NULL && c->as.str == NULL)
        cfg_error(ctx, n, "claims, credential, key and forge shape a token: name its subject (subject: or as:)");
    if (c->key.str != NULL && c->forge.str != NULL)
        cfg_error(ctx, yt_get(n, "forge"), "a test signs with key: or forges, not both");
}

static void tf_cases_parse(struct cfg_ctx *ctx, const struct yt_node *tests, const struct tf_subjects *s,
                           struct tf_file *f)
{
    f->cases = pc_calloc(tests->n ? tests->n : 1, sizeof(*f->cases));
    for (size_t i = 0; i < tests->n; i++) {
        const struct yt_node *n = tests->items[i];
        struct tf_case *c = &f->cases[f->n++];
        c->line = n->line;
        c->col = n->col;
        if (cfg_expect(ctx, n, YT_MAP, "a test") != 0)
            continue;
        cfg_rows(ctx, n, "a test", tf_case_rows, PC_ARRAY_LEN(tf_case_rows), c);
        tf_case_check(ctx, n, s, c);
        for (size_t j = 0; j < i && c->name != NULL; j++) {
            if (f->cases[j].name != NULL && strcmp(f->cases[j].name, c->name) == 0) {
                cfg_error(ctx, yt_get(n, "name"), "duplicate test name '%s' (first at line %d)", c->name,
                          f->cases[j].line);
                break;
            }
        }
    }
}

static void tf_subjects_parse(struct cfg_ctx *ctx, const struct yt_node *v, struct tf_subjects *s)
{
    if (cfg_expect(ctx, v, YT_MAP, "subjects") != 0)
        return;
    for (size_t i = 0; i < v->n; i++)
        if (cfg_expect(ctx, v->items[i], YT_SCALAR, "a subject") != 0 || v->items[i]->len == 0)
            return;
    s->map = v;
}

static void tf_root_parse(struct cfg_ctx *ctx, const struct yt_node *root, struct tf_file *f)
{
    static const char *const keys[] = {"subjects", "tests"};
    struct tf_subjects s = {0};
    const struct yt_node *tests = NULL;
    if (cfg_expect(ctx, root, YT_MAP, "a test file") != 0)
        return;
    for (size_t i = 0; i < root->n; i++) {
        const struct yt_node *k = root->keys[i], *v = root->items[i];
        if (strcmp(k->str, "subjects") == 0)
            tf_subjects_parse(ctx, v, &s);
        else if (strcmp(k->str, "tests") == 0)
            tests = v;
        else
            cfg_unknown_key(ctx, k, "a test file", keys, PC_ARRAY_LEN(keys));
    }
    if (tests == NULL)
        cfg_error(ctx, root, "a test file needs tests: (a list of tests)");
    else if (cfg_expect(ctx, tests, YT_SEQ, "tests") == 0 && tests->n == 0)
        cfg_error(ctx, tests, "tests: is empty");
    else if (tests->type == YT_SEQ)
        tf_cases_parse(ctx, tests, &s, f);
}

struct tf_file *tf_load(const char *path, struct pc_buf *errors)
{
    char err[1024];
    struct cfg_ctx ctx = {.file = path};
    struct yt_doc *doc = yt_load(path, NULL, 0, NULL, err, sizeof(err));
    if (doc == NULL) {
        pc_buf_addf(errors, "%s\n", err);
        return NULL;
    }
    struct tf_file *f = pc_calloc(1, sizeof(*f));
    f->path = pc_strdup(path);
    tf_root_parse(&ctx, doc->root, f);
    yt_free(doc);
    if (ctx.nerrors > 0) {
        pc_buf_add(errors, ctx.errors.p, ctx.errors.len);
        tf_free(f);
        f = NULL;
    }
    pc_buf_free(&ctx.errors);
    pc_buf_free(&ctx.warnings);
    return f;
}

static void tf_case_free(struct tf_case *c)
{
    free(c->name);
    free(c->req.method);
    free(c->req.url);
    for (size_t i = 0; i < c->headers.n; i++)
        free(c->headers.v[i]);
    free(c->headers.v);
    free(c->subject);
    free(c->as.str);
    for (size_t i = 0; i < c->claims.n; i++) {
        free((char *)c->claims.v[i].name);
        free((char *)c->claims.v[i].value);
    }
    free(c->claims.v);
    for (size_t i = 0; i < c->creds.n; i++)
        free(c->creds.v[i].name);
    free(c->creds.v);
    free(c->key.str);
    free(c->forge.str);
    free(c->expect.rule);
    free(c->expect.reason);
    for (size_t i = 0; i < c->data.n; i++) {
        free(c->data.names[i]);
        free(c->data.paths[i]);
        free(c->data.at[i]);
    }
    free(c->data.names);
    free(c->data.paths);
    free(c->data.at);
}

void tf_free(struct tf_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        tf_case_free(&f->cases[i]);
    free(f->cases);
    free(f->path);
    free(f);
}
