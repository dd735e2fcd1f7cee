/*
 * portcullis: identity config and credential collection.
 */
#include "identity.h"
#include "../lib/cfg.h"
#include "../lib/base.h"
#include "../lib/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void id_config_free(struct id_config *c)
{
    if (c == NULL)
        return;
    if (c->secret)
        OPENSSL_cleanse(c->secret, c->secret_len);
    free(c->secret);
    free(c->secret_file);
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].id);
        if (c->keys[i].secret)
            OPENSSL_cleanse(c->keys[i].secret, c->keys[i].secret_len);
        free(c->keys[i].secret);
    }
    free(c->keys);
    for (size_t i = 0; i < c->nsources; i++)
        free(c->sources[i].name);
    free(c->sources);
    free(c->subject_claim);
    for (size_t i = 0; i < c->nissuers; i++)
        free(c->issuers[i]);
    free(c->issuers);
    free(c->audience);
    for (size_t i = 0; i < c->npublic; i++)
        free(c->public_secrets[i]);
    free(c->public_secrets);
    free(c);
}

int id_read_secret_file(const char *path, unsigned char **out, size_t *outlen, char *err,
                               size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read secret_file %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char buf[4097];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        snprintf(err, errlen, "cannot read secret_file %s", path);
        return -1;
    }
    if (n == sizeof(buf)) {
        snprintf(err, errlen, "secret_file %s is larger than 4096 bytes", path);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0) {
        snprintf(err, errlen, "secret_file %s is empty", path);
        return -1;
    }
    *out = pc_malloc(n);
    memcpy(*out, buf, n);
    *outlen = n;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int id_source_parse(struct cfg_ctx *ctx, const struct yt_node *v, struct id_source *s)
{
    if (cfg_expect(ctx, v, YT_SCALAR, "identity.sources item") != 0)
        return -1;
    const char *colon = strchr(v->str, ':');
    if (colon == NULL) {
        cfg_error(ctx, v, "identity source must be cookie:NAME, header:NAME or query:NAME, found '%s'", v->str);
        return -1;
    }
    size_t kl = (size_t)(colon - v->str);
    const char *name = colon + 1;
    if (pc_memeq(v->str, kl, "cookie", 6)) {
        s->kind = ID_SRC_COOKIE;
    } else if (pc_memeq(v->str, kl, "query", 5)) {
        s->kind = ID_SRC_QUERY;
    } else if (pc_memeq(v->str, kl, "header", 6)) {
        s->kind = ID_SRC_HEADER;
    } else {
        cfg_error(ctx, v, "identity source kind must be cookie, header or query, found '%.*s'", (int)kl, v->str);
        return -1;
    }
    if (*name == '\0') {
        cfg_error(ctx, v, "identity source '%s' has no name", v->str);
        return -1;
    }
    for (const char *p = name; *p; p++) {
        if (!pc_is_tchar((unsigned char)*p) || (s->kind == ID_SRC_HEADER && *p == '_')) {
            cfg_error(ctx, v, "invalid %s name '%s'%s",
                      s->kind == ID_SRC_COOKIE ? "cookie" : s->kind == ID_SRC_QUERY ? "query parameter" : "header",
                      name, s->kind == ID_SRC_HEADER && *p == '_' ? " (header names with '_' are dropped before forwarding)" : "");
            return -1;
        }
    }
    s->name = pc_strdup(name);
    s->name_len = strlen(name);
    return 0;
}

static int id_algorithms_parse(struct cfg_ctx *ctx, struct yt_node *v, unsigned *out)
{
    unsigned bits = 0;
    if (cfg_expect(ctx, v, YT_SEQ, "identity.algorithms") != 0)
        return -1;
    for (size_t i = 0; i < v->n; i++) {
        struct yt_node *a = v->items[i];
        if (cfg_expect(ctx, a, YT_SCALAR, "identity.algorithms item") != 0)
            return -1;
        unsigned bit = tok_alg_from_name(a->str, a->len);
        if (bit == 0) {
            cfg_error(ctx, a, "algorithm '%s' is not supported (HS256, HS384 and HS512 are; 'none' never is)", a->str);
            return -1;
        }
        bits |= bit;
    }
    if (bits == 0) {
        cfg_error(ctx, v, "identity.algorithms must not be empty");
        return -1;
    }
    *out = bits;
    return 0;
}

static int id_keys_parse(struct cfg_ctx *ctx, struct id_config *c, struct yt_node *v)
{
    if (cfg_expect(ctx, v, YT_SEQ, "identity.keys") != 0)
        return -1;
    c->keys = pc_calloc(v->n ? v->n : 1, sizeof(*c->keys));
    for (size_t i = 0; i < v->n; i++) {
        static const char *const kk[] = {"id", "secret", "secret_file"};
        struct yt_node *k = v->items[i];
        struct id_key *key = &c->keys[c->nkeys];
        char *file = NULL;
        if (cfg_expect(ctx, k, YT_MAP, "identity.keys item") != 0)
            return -1;
        for (size_t j = 0; j < k->n; j++) {
            struct yt_node *kn = k->keys[j], *kv = k->items[j];
            if (strcmp(kn->str, "id") == 0) {
                cfg_scalar(ctx, kv, CFG_STR, &key->id, 0, 0);
            } else if (strcmp(kn->str, "secret") == 0) {
                if (cfg_expect(ctx, kv, YT_SCALAR, "secret") == 0 && kv->len > 0) {
                    key->secret = (unsigned char *)pc_strndup(kv->str, kv->len);
                    key->secret_len = kv->len;
                }
            } else if (strcmp(kn->str, "secret_file") == 0) {
                free(file);
                file = NULL;
                cfg_scalar(ctx, kv, CFG_STR, &file, 0, 0);
            } else {
                cfg_unknown_key(ctx, kn, "identity.keys item", kk, PC_ARRAY_LEN(kk));
            }
        }
        if (key->secret == NULL && file != NULL && file[0] != '\0') {
            char err[300];
            if (id_read_secret_file(file, &key->secret, &key->secret_len, err, sizeof(err)) != 0)
                cfg_error(ctx, k, "identity.keys: %s", err);
        }
        free(file);
        if (key->id == NULL || key->id[0] == '\0') {
            cfg_error(ctx, k, "identity.keys item needs an id");
        } else if (key->secret == NULL) {
            cfg_error(ctx, k, "identity key '%s' has no secret (an empty key is never used)", key->id);
        } else {
            for (size_t j = 0; j < c->nkeys; j++)
                if (c->keys[j].id != NULL && strcmp(c->keys[j].id, key->id) == 0)
                    cfg_error(ctx, k, "duplicate identity key id '%s'", key->id);
        }
        c->nkeys++;
    }
    return 0;
}

/* issuer: one value, or a list of accepted values (an application that
 * sets iss from its edition, such as Dify's SELF_HOSTED and CLOUD). */
static void id_issuers_parse(struct cfg_ctx *ctx, const struct yt_node *v, struct id_config *c)
{
    if (yt_is_null(v))
        return;
    if (v->type == YT_SCALAR) {
        c->issuers = pc_calloc(1, sizeof(*c->issuers));
        if (cfg_scalar(ctx, v, CFG_STR, &c->issuers[0], 0, 0) == 0)
            c->nissuers = 1;
        return;
    }
    if (cfg_expect(ctx, v, YT_SEQ, "identity.issuer (a value or a list)") != 0)
        return;
    if (v->n == 0)
        cfg_error(ctx, v, "identity.issuer must not be an empty list (leave it out not to check iss)");
    c->issuers = pc_calloc(v->n ? v->n : 1, sizeof(*c->issuers));
    for (size_t i = 0; i < v->n; i++) {
        const struct yt_node *it = v->items[i];
        if (cfg_expect(ctx, it, YT_SCALAR, "an issuer") != 0)
            continue;
        if (it->len == 0) {
            cfg_error(ctx, it, "an issuer must not be empty");
            continue;
        }
        c->issuers[c->nissuers++] = pc_strndup(it->str, it->len);
    }
}

/* identity.public_secrets, kept: `portcullis test` forges tokens with
 * them to show they are refused. */
static void id_public_keep(const struct yt_node *list, struct id_config *c)
{
    c->public_secrets = pc_calloc(list->n ? list->n : 1, sizeof(*c->public_secrets));
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i]->type == YT_SCALAR && list->items[i]->len > 0)
            c->public_secrets[c->npublic++] = pc_strndup(list->items[i]->str, list->items[i]->len);
}

/* A key equal to one of identity.public_secrets is published: anyone can
 * mint tokens with it, and no rule would protect anything. */
static void id_refuse_public(struct cfg_ctx *ctx, const struct yt_node *n, const struct id_config *c,
                             const struct yt_node *list, int allow)
{
    for (size_t i = 0; list != NULL && i < list->n; i++) {
        const struct yt_node *p = list->items[i];
        if (cfg_expect(ctx, p, YT_SCALAR, "a public secret") != 0 || p->len == 0)
            continue;
        const char *which = NULL;
        if (c->secret != NULL && c->secret_len == p->len && memcmp(c->secret, p->str, p->len) == 0)
            which = c->secret_file ? c->secret_file : "identity.secret";
        for (size_t k = 0; which == NULL && k < c->nkeys; k++)
            if (c->keys[k].secret_len == p->len && memcmp(c->keys[k].secret, p->str, p->len) == 0)
                which = c->keys[k].id;
        if (which == NULL)
            continue;
        if (allow) {
            cfg_warn(ctx, p, "identity: the signing secret (%s) is public (listed in identity.public_secrets); "
                             "allow_public_secret is true: anyone can mint tokens, use this for a throwaway demo only",
                     which);
        } else {
            cfg_error(ctx, n, "identity: the signing secret (%s) is public: it is listed in identity.public_secrets "
                              "(line %d), a published default. Anyone can mint tokens with it, so no rule would "
                              "protect anything. Generate a new secret (for example: openssl rand -base64 42), "
                              "configure it in the application and here, and restart both; for a throwaway demo "
                              "only, set identity.allow_public_secret: true",
                      which, p->line);
        }
        return;
    }
}

void id_config_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct id_config **out)
{
    static const char *const keys[] = {
        "secret", "secret_file", "keys", "algorithms", "sources", "subject_claim",
        "issuer", "audience", "require_exp", "leeway", "public_secrets", "allow_public_secret",
    };
    const struct yt_node *public_secrets = NULL;
    int allow_public = 0;
    struct id_config *c = pc_calloc(1, sizeof(*c));
    struct yt_node *secret_node = NULL;
    char *secret_file = NULL;

    id_config_free(*out);
    *out = c;
    c->algorithms = TOK_HS256;
    c->require_exp = 1;
    c->leeway_ms = 30000;
    if (cfg_expect(ctx, n, YT_MAP, "identity") != 0)
        return;

    for (size_t i = 0; i < n->n; i++) {
        struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "secret") == 0) {
            if (cfg_expect(ctx, v, YT_SCALAR, "identity.secret") == 0)
                secret_node = v;
        } else if (strcmp(k->str, "secret_file") == 0) {
            cfg_scalar(ctx, v, CFG_STR, &secret_file, 0, 0);
        } else if (strcmp(k->str, "keys") == 0) {
            id_keys_parse(ctx, c, v);
        } else if (strcmp(k->str, "algorithms") == 0) {
            id_algorithms_parse(ctx, v, &c->algorithms);
        } else if (strcmp(k->str, "sources") == 0) {
            if (cfg_expect(ctx, v, YT_SEQ, "identity.sources") != 0)
                continue;
            c->sources = pc_calloc(v->n ? v->n : 1, sizeof(*c->sources));
            for (size_t j = 0; j < v->n; j++)
                if (id_source_parse(ctx, v->items[j], &c->sources[c->nsources]) == 0)
                    c->nsources++;
            if (v->n == 0)
                cfg_error(ctx, v, "identity.sources must not be empty");
        } else if (strcmp(k->str, "subject_claim") == 0) {
            cfg_scalar(ctx, v, CFG_STR, &c->subject_claim, 0, 0);
        } else if (strcmp(k->str, "issuer") == 0) {
            id_issuers_parse(ctx, v, c);
        } else if (strcmp(k->str, "audience") == 0) {
            if (!yt_is_null(v))
                cfg_scalar(ctx, v, CFG_STR, &c->audience, 0, 0);
        } else if (strcmp(k->str, "require_exp") == 0) {
            cfg_scalar(ctx, v, CFG_BOOL, &c->require_exp, 0, 0);
        } else if (strcmp(k->str, "leeway") == 0) {
            cfg_scalar(ctx, v, CFG_DURATION, &c->leeway_ms, 0, 3600000);
        } else if (strcmp(k->str, "public_secrets") == 0) {
            if (cfg_expect(ctx, v, YT_SEQ, "identity.public_secrets") == 0) {
                public_secrets = v;
                id_public_keep(v, c);
            }
        } else if (strcmp(k->str, "allow_public_secret") == 0) {
            cfg_scalar(ctx, v, CFG_BOOL, &allow_public, 0, 0);
        } else {
            cfg_unknown_key(ctx, k, "identity", keys, PC_ARRAY_LEN(keys));
        }
    }

    /* secret wins when it is non-empty; otherwise secret_file is read. */
    if (secret_node != NULL && secret_node->len > 0) {
        c->secret = (unsigned char *)pc_strndup(secret_node->str, secret_node->len);
        c->secret_len = secret_node->len;
    } else if (secret_file != NULL && secret_file[0] != '\0') {
        char err[300];
        c->secret_file = pc_strdup(secret_file);
        if (id_read_secret_file(secret_file, &c->secret, &c->secret_len, err, sizeof(err)) != 0)
            cfg_error(ctx, yt_get(n, "secret_file"), "identity: %s", err);
    } else if (c->nkeys == 0) {
        cfg_error(ctx, secret_node ? secret_node : n,
                  "identity needs a non-empty secret, a secret_file, or keys");
    }
    free(secret_file);
    id_refuse_public(ctx, n, c, public_secrets, allow_public);

    if (c->subject_claim == NULL)
        c->subject_claim = pc_strdup("sub");
    if (c->nsources == 0 && yt_get(n, "sources") == NULL) {
        /* default: the Authorization header, as in Oathkeeper */
        c->sources = pc_calloc(1, sizeof(*c->sources));
        c->sources[0].kind = ID_SRC_HEADER;
        c->sources[0].name = pc_strdup("Authorization");
        c->sources[0].name_len = strlen("Authorization");
        c->nsources = 1;
    }
}

/* ---- cookies, parsed the way Werkzeug's parse_cookie does ---- */

static int id_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the character at p (n bytes available) if Python's
 * str.isspace() holds for it, else 0. Werkzeug strip()s cookie names and
 * values: 2.2 after decoding the header as UTF-8 (so U+00A0, U+3000 and
 * friends go), 2.3+ on the latin-1 string (so single bytes 0x85 and 0xA0
 * go). Both readings count here: collecting a credential the backend would
 * not see is harmless (it must still verify), missing one is not. */
static size_t id_pyspace(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n >= 1 && (u[0] == ' ' || (u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x1f) ||
                   u[0] == 0x85 || u[0] == 0xa0))
        return 1;
    if (n >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0))
        return 2;
    if (n >= 3 && ((u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80) ||              /* U+1680 */
                   (u[0] == 0xe2 && u[1] == 0x80 &&
                    ((u[2] >= 0x80 && u[2] <= 0x8a) || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf)) || /* U+2000-200A, 2028, 2029, 202F */
                   (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f) ||               /* U+205F */
                   (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80)))                /* U+3000 */
        return 3;
    return 0;
}

/* Python's str.strip() on v[*s, *e). */
static void id_strip(const char *v, size_t *s, size_t *e)
{
    size_t k;
    while (*s < *e && (k = id_pyspace(v + *s, *e - *s)) > 0)
        *s += k;
    for (;;) {
        /* longest reading first: "\xC2\xA0" is U+00A0 as a whole */
        size_t found = 0;
        for (k = 3; k >= 1; k--) {
            if (k <= *e - *s && id_pyspace(v + *e - k, k) == k) {
                found = k;
                break;
            }
        }
        if (found == 0)
            break;
        *e -= found;
    }
}

void id_parse_cookies(const char *v, size_t len, id_cookie_fn fn, void *arg)
{
    size_t i = 0;
    while (i < len) {
        /* name: up to '=' or ';' */
        size_t ns = i;
        while (i < len && v[i] != '=' && v[i] != ';')
            i++;
        size_t ne = i;
        id_strip(v, &ns, &ne);
        const char *val = v + i;
        size_t vl = 0;
        int quoted = 0;
        if (i < len && v[i] == '=') {
            i++;
            while (i < len && id_ws(v[i]))
                i++;
            size_t vs = i;
            int done = 0;
            if (i < len && v[i] == '"') {
                /* "(?:[^\\"]|\\.)*" followed by optional space and ';' or end */
                size_t j = i + 1;
                while (j < len && v[j] != '"') {
                    if (v[j] == '\\' && j + 1 < len)
                        j++;
                    j++;
                }
                if (j < len) {
                    size_t k = j + 1;
                    while (k < len && id_ws(v[k]))
                        k++;
                    if (k == len || v[k] == ';') {
                        val = v + vs;
                        vl = j + 1 - vs;
                        quoted = 1;
                        i = k;
                        done = 1;
                    }
                }
            }
            if (!done) {
                while (i < len && v[i] != ';')
                    i++;
                size_t ve = i;
                id_strip(v, &vs, &ve);
                val = v + vs;
                vl = ve - vs;
                /* Werkzeug unquotes any value that starts and ends with '"' */
                quoted = vl >= 2 && val[0] == '"' && val[vl - 1] == '"';
            }
        }
        if (i < len && v[i] == ';')
            i++;
        if (ne > ns)
            fn(arg, v + ns, ne - ns, val, vl, quoted);
    }
}

/* Werkzeug's _cookie_unquote: strip quotes, then \ooo octal ([0-3][0-7]{2},
 * one byte) and \X. */
static char *id_cookie_unquote(const char *v, size_t len, size_t *outlen, struct pc_pool *pool)
{
    char *o = pc_pool_alloc(pool, len + 1);
    size_t n = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (v[i] == '\\' && i + 2 < len) {
            if (i + 4 < len && v[i + 1] >= '0' && v[i + 1] <= '3' && v[i + 2] >= '0' &&
                v[i + 2] <= '7' && v[i + 3] >= '0' && v[i + 3] <= '7') {
                o[n++] = (char)(((v[i + 1] - '0') << 6) | ((v[i + 2] - '0') << 3) | (v[i + 3] - '0'));
                i += 3;
            } else {
                o[n++] = v[i + 1];
                i++;
            }
            continue;
        }
        o[n++] = v[i];
    }
    o[n] = '\0';
    *outlen = n;
    return o;
}

struct id_collect_ctx {
    const struct id_config *cfg;
    struct id_cred *out;
    struct pc_pool *pool;
    int n;
    int overflow;
};

static void id_push(struct id_collect_ctx *cc, int source, const char *tok, size_t len)
{
    if (cc->n >= ID_MAX_CREDS) {
        cc->overflow = 1;
        return;
    }
    cc->out[cc->n].source = source;
    cc->out[cc->n].token = tok;
    cc->out[cc->n].len = len;
    cc->n++;
}

static void id_cookie_cb(void *arg, const char *name, size_t nl, const char *val, size_t vl, int quoted)
{
    struct id_collect_ctx *cc = arg;
    for (size_t s = 0; s < cc->cfg->nsources; s++) {
        const struct id_source *src = &cc->cfg->sources[s];
        if (src->kind != ID_SRC_COOKIE || !pc_memeq(name, nl, src->name, src->name_len))
            continue;
        if (quoted) {
            size_t ul;
            char *u = id_cookie_unquote(val, vl, &ul, cc->pool);
            id_push(cc, (int)s, u, ul);
        } else {
            id_push(cc, (int)s, val, vl);
        }
    }
}

/* Query parameters as Werkzeug reads them: '&'-separated, '+' is a space,
 * malformed escapes stay literal. Every occurrence counts. */
static void id_collect_query(struct id_collect_ctx *cc, const char *q, size_t len)
{
    size_t pos = 0;
    struct url_qpair qp;
    while (url_query_next(q, len, &pos, &qp)) {
        for (size_t s = 0; s < cc->cfg->nsources; s++) {
            const struct id_source *src = &cc->cfg->sources[s];
            if (src->kind != ID_SRC_QUERY || !url_query_key_is(&qp, src->name, src->name_len))
                continue;
            char *val = pc_pool_alloc(cc->pool, qp.val_len + 1);
            long dvl = url_pct_decode(qp.val, qp.val_len, val, 1, 0);
            val[dvl] = '\0';
            id_push(cc, (int)s, val, (size_t)dvl);
        }
    }
}

const char *id_joined_cookies(const struct h1_header *h, size_t nh, size_t *len, struct pc_pool *pool)
{
    const struct h1_header *first = NULL;
    size_t n = 0, total = 0;
    *len = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!pc_caseeq_lit(h[i].name, h[i].name_len, "cookie"))
            continue;
        if (n++ == 0)
            first = &h[i];
        total += h[i].value_len + 2;
    }
    if (n == 0)
        return NULL;
    if (n == 1) {
        *len = first->value_len;
        return first->value;
    }
    char *buf = pc_pool_alloc(pool, total);
    size_t o = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!pc_caseeq_lit(h[i].name, h[i].name_len, "cookie"))
            continue;
        if (o > 0) {
            buf[o++] = ';';
            buf[o++] = ' ';
        }
        memcpy(buf + o, h[i].value, h[i].value_len);
        o += h[i].value_len;
    }
    buf[o] = '\0'; /* room: two bytes per header were counted, one separator fewer used */
    *len = o;
    return buf;
}

int id_collect(const struct id_config *cfg, const struct h1_header *h, size_t nh, const char *cookie,
               size_t cookie_len, const char *query, size_t query_len, struct id_cred *out, struct pc_pool *pool)
{
    struct id_collect_ctx cc = {cfg, out, pool, 0, 0};
    int want_cookies = 0, want_query = 0;
    for (size_t s = 0; s < cfg->nsources; s++) {
        if (cfg->sources[s].kind == ID_SRC_COOKIE)
            want_cookies = 1;
        if (cfg->sources[s].kind == ID_SRC_QUERY)
            want_query = 1;
    }

    if (want_cookies && cookie != NULL)
        id_parse_cookies(cookie, cookie_len, id_cookie_cb, &cc);
    for (size_t i = 0; i < nh; i++) {
        if (pc_caseeq_lit(h[i].name, h[i].name_len, "cookie"))
            continue;
        for (size_t s = 0; s < cfg->nsources; s++) {
            const struct id_source *src = &cfg->sources[s];
            if (src->kind != ID_SRC_HEADER ||
                !pc_caseeq(h[i].name, h[i].name_len, src->name, src->name_len))
                continue;
            const char *v = h[i].value;
            size_t vl = h[i].value_len;
            if (!pc_caseeq_lit(src->name, src->name_len, "authorization")) {
                /* any other header carries the token itself */
                id_push(&cc, (int)s, v, vl);
                continue;
            }
            /* Authorization: "Bearer <token>", scheme case-insensitive, as
             * Dify splits it. Any other value is still a credential, and it
             * will not verify. */
            size_t sp = 0;
            while (sp < vl && v[sp] != ' ' && v[sp] != '\t')
                sp++;
            size_t t = sp;
            while (t < vl && (v[t] == ' ' || v[t] == '\t'))
                t++;
            if (sp < vl && pc_caseeq_lit(v, sp, "bearer"))
                id_push(&cc, (int)s, v + t, vl - t);
            else
                id_push(&cc, (int)s, v, vl);
        }
    }
    if (want_query && query != NULL)
        id_collect_query(&cc, query, query_len);
    return cc.overflow ? -1 : cc.n;
}

void id_config_print(struct pc_buf *b, const char *indent, const struct id_config *c)
{
    static const char *const kinds[] = {"cookie", "header", "query"};
    pc_buf_addf(b, "%ssecret: %s\n", indent, c->secret ? "(set)" : "null");
    if (c->secret_file != NULL)
        pc_buf_addf(b, "%ssecret_file: \"%s\"\n", indent, c->secret_file);
    pc_buf_addf(b, "%skeys: %zu    # by kid\n", indent, c->nkeys);
    pc_buf_addf(b, "%salgorithms: [", indent);
    const char *names[] = {"HS256", "HS384", "HS512"};
    for (unsigned i = 0, n = 0; i < 3; i++)
        if (c->algorithms & (1u << i))
            pc_buf_addf(b, "%s%s", n++ ? ", " : "", names[i]);
    pc_buf_addf(b, "]\n%ssources: [", indent);
    for (size_t i = 0; i < c->nsources; i++)
        pc_buf_addf(b, "%s\"%s:%s\"", i ? ", " : "", kinds[c->sources[i].kind], c->sources[i].name);
    pc_buf_addf(b, "]\n%ssubject_claim: \"%s\"\n%sissuer: [", indent, c->subject_claim, indent);
    for (size_t i = 0; i < c->nissuers; i++)
        pc_buf_addf(b, "%s\"%s\"", i ? ", " : "", c->issuers[i]);
    pc_buf_addf(b, "]\n%saudience: %s%s%s\n", indent, c->audience ? "\"" : "", c->audience ? c->audience : "null",
                c->audience ? "\"" : "");
    pc_buf_addf(b, "%srequire_exp: %s\n%sleeway: %lldms\n", indent, c->require_exp ? "true" : "false", indent,
                (long long)c->leeway_ms);
}
