/*
 * portcullis: config loading. One table of top-level sections; each section
 * is parsed by the module that owns it.
 */
#include "config.h"
#include "match.h"
#include "../policies/identity.h"
#include "../policies/policy.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* ---- addresses ---- */

int cfg_parse_hostport(const char *s, int need_resolve, struct pc_addr *out, char *err, size_t errlen)
{
    char host[256];
    const char *port_s;
    size_t hl;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "invalid address '%s' (write [v6addr]:port)", s);
            return -1;
        }
        hl = (size_t)(close - s - 1);
        if (hl >= sizeof(host)) {
            snprintf(err, errlen, "host too long in '%s'", s);
            return -1;
        }
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        port_s = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon) {
            snprintf(err, errlen, "invalid address '%s' (write host:port, or [v6addr]:port)", s);
            return -1;
        }
        hl = (size_t)(colon - s);
        if (hl >= sizeof(host)) {
            snprintf(err, errlen, "host too long in '%s'", s);
            return -1;
        }
        memcpy(host, s, hl);
        host[hl] = '\0';
        port_s = colon + 1;
    }
    if (need_resolve && host[0] == '\0') {
        /* an empty host means "any address" only when listening */
        snprintf(err, errlen, "missing host in '%s'", s);
        return -1;
    }
    uint64_t port;
    if (pc_parse_u64(port_s, strlen(port_s), &port) != 0 || port == 0 || port > 65535) {
        snprintf(err, errlen, "invalid port in '%s'", s);
        return -1;
    }

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST | (host[0] == '\0' ? AI_PASSIVE : 0);
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &res);
    out->numeric = rc == 0 && res != NULL;
    if (!out->numeric && need_resolve) {
        hints.ai_flags &= ~AI_NUMERICHOST;
        rc = getaddrinfo(host, port_s, &hints, &res);
    }
    out->text = pc_strdup(s);
    out->host = pc_strdup(host);
    out->port = (int)port;
    if (rc != 0 || res == NULL) {
        out->resolved = 0;
        if (!need_resolve)
            snprintf(err, errlen, "'%s' must be a numeric address and port", s);
        else
            snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        if (need_resolve == 2)
            return 1; /* resolved again later, at run time */
        free(out->text);
        free(out->host);
        out->text = out->host = NULL;
        return -1;
    }
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    out->resolved = 1;
    freeaddrinfo(res);
    return 0;
}

static void cfg_addr_free(struct pc_addr *a)
{
    free(a->text);
    free(a->host);
    a->text = a->host = NULL;
}

/* ---- core sections (owned by proxy/) ---- */

static void sec_listen(struct cfg_ctx *ctx, struct yt_node *n)
{
    char err[256];
    if (cfg_expect(ctx, n, YT_SCALAR, "listen") != 0)
        return;
    cfg_addr_free(&ctx->cfg->listen);
    if (cfg_parse_hostport(n->str, 0, &ctx->cfg->listen, err, sizeof(err)) != 0)
        cfg_error(ctx, n, "listen: %s", err);
}

static void sec_admin_listen(struct cfg_ctx *ctx, struct yt_node *n)
{
    char err[256];
    if (yt_is_null(n))
        return;
    if (cfg_expect(ctx, n, YT_SCALAR, "admin_listen") != 0)
        return;
    if (cfg_parse_hostport(n->str, 0, &ctx->cfg->admin_listen, err, sizeof(err)) != 0)
        cfg_error(ctx, n, "admin_listen: %s", err);
}

static void sec_upstream(struct cfg_ctx *ctx, struct yt_node *n)
{
    char err[256];
    if (cfg_expect(ctx, n, YT_SCALAR, "upstream") != 0)
        return;
    if (strncmp(n->str, "http://", 7) != 0) {
        cfg_error(ctx, n, "upstream must be http://host:port, found '%s'", n->str);
        return;
    }
    const char *hp = n->str + 7;
    size_t l = strlen(hp);
    if (l > 0 && hp[l - 1] == '/')
        l--;
    char *tmp = pc_strndup(hp, l);
    if (strchr(tmp, '/') != NULL) {
        cfg_error(ctx, n, "upstream must not have a path: '%s'", n->str);
    } else {
        int rc = cfg_parse_hostport(tmp, 2, &ctx->cfg->upstream, err, sizeof(err));
        if (rc < 0)
            cfg_error(ctx, n, "upstream: %s", err);
        else if (rc > 0)
            cfg_warn(ctx, n, "upstream: %s; it is resolved again while serving", err);
    }
    free(tmp);
}

static void sec_path(struct cfg_ctx *ctx, struct yt_node *n, char **dst, const char *what)
{
    if (cfg_expect(ctx, n, YT_SCALAR, what) != 0)
        return;
    if (n->str[0] != '/' || strpbrk(n->str, "?# %") != NULL) {
        cfg_error(ctx, n, "%s must be an absolute path without query, found '%s'", what, n->str);
        return;
    }
    free(*dst);
    *dst = pc_strdup(n->str);
}

static void sec_health_path(struct cfg_ctx *ctx, struct yt_node *n)
{
    sec_path(ctx, n, &ctx->cfg->health_path, "health_path");
}

static void sec_ready_path(struct cfg_ctx *ctx, struct yt_node *n)
{
    sec_path(ctx, n, &ctx->cfg->ready_path, "ready_path");
}

static void sec_workers(struct cfg_ctx *ctx, struct yt_node *n)
{
    int64_t v;
    if (cfg_scalar(ctx, n, CFG_INT, &v, 1, 256) == 0)
        ctx->cfg->workers = (int)v;
}

#define TO(f) offsetof(struct pc_timeouts, f)
static const struct cfg_field timeout_fields[] = {
    {"header", CFG_DURATION, TO(header), 1, 86400000, NULL},
    {"connect", CFG_DURATION, TO(connect), 1, 86400000, NULL},
    {"upstream", CFG_DURATION, TO(upstream), 1, 7 * 86400000LL, NULL},
    {"idle", CFG_DURATION, TO(idle), 1, 86400000, NULL},
    {"drain", CFG_DURATION, TO(drain), 0, 86400000, NULL},
    {"body", CFG_DURATION, TO(body), 1, 86400000, NULL},
    {"keepalive", CFG_DURATION, TO(keepalive), 0, 86400000, NULL},
    {"policy", CFG_DURATION, TO(policy), 1, 600000, NULL},
};
#undef TO

static void sec_timeouts(struct cfg_ctx *ctx, struct yt_node *n)
{
    if (cfg_expect(ctx, n, YT_MAP, "timeouts") != 0)
        return;
    cfg_fields(ctx, n, timeout_fields, PC_ARRAY_LEN(timeout_fields), &ctx->cfg->timeouts);
}

#define LO(f) offsetof(struct pc_limits, f)
static const struct cfg_field limit_fields[] = {
    {"header_bytes", CFG_SIZE, LO(header_bytes), 1024, 1024 * 1024, NULL},
    {"body_bytes", CFG_SIZE, LO(body_bytes), 0, INT64_MAX, NULL},
    {"connections", CFG_INT, LO(connections), 0, 10000000, NULL},
};
#undef LO

static void sec_limits(struct cfg_ctx *ctx, struct yt_node *n)
{
    if (cfg_expect(ctx, n, YT_MAP, "limits") != 0)
        return;
    cfg_fields(ctx, n, limit_fields, PC_ARRAY_LEN(limit_fields), &ctx->cfg->limits);
}

static void sec_log(struct cfg_ctx *ctx, struct yt_node *n)
{
    static const char *const keys[] = {"format", "level", "access"};
    if (cfg_expect(ctx, n, YT_MAP, "log") != 0)
        return;
    for (size_t i = 0; i < n->n; i++) {
        struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "format") == 0) {
            if (cfg_expect(ctx, v, YT_SCALAR, "log.format") != 0)
                continue;
            if (strcmp(v->str, "json") == 0)
                ctx->cfg->log_format = PC_LOG_JSON;
            else if (strcmp(v->str, "text") == 0)
                ctx->cfg->log_format = PC_LOG_TEXT;
            else
                cfg_error(ctx, v, "log.format must be json or text, found '%s'", v->str);
        } else if (strcmp(k->str, "level") == 0) {
            static const char *const levels[] = {"debug", "info", "warn", "error"};
            size_t l;
            if (cfg_expect(ctx, v, YT_SCALAR, "log.level") != 0)
                continue;
            for (l = 0; l < PC_ARRAY_LEN(levels); l++)
                if (strcmp(v->str, levels[l]) == 0)
                    break;
            if (l == PC_ARRAY_LEN(levels))
                cfg_error(ctx, v, "log.level must be debug, info, warn or error, found '%s'", v->str);
            else
                ctx->cfg->log_level = (enum pc_log_level)l;
        } else if (strcmp(k->str, "access") == 0) {
            cfg_scalar(ctx, v, CFG_BOOL, &ctx->cfg->access_log, 0, 0);
        } else {
            cfg_unknown_key(ctx, k, "log", keys, PC_ARRAY_LEN(keys));
        }
    }
}

static void sec_default(struct cfg_ctx *ctx, struct yt_node *n)
{
    if (cfg_expect(ctx, n, YT_SCALAR, "default") != 0)
        return;
    if (strcmp(n->str, "deny") == 0)
        ctx->cfg->default_forward = 0;
    else if (strcmp(n->str, "forward") == 0)
        ctx->cfg->default_forward = 1;
    else
        cfg_error(ctx, n, "default must be deny or forward, found '%s'", n->str);
}

#define CO(f) offsetof(struct pc_cache, f)
static const struct cfg_field cache_fields[] = {
    {"ttl", CFG_DURATION, CO(ttl), 0, 86400000, NULL},
    {"max_entries", CFG_INT, CO(max_entries), 1, 100000000, NULL},
    {"invalidate_channel", CFG_STR, CO(invalidate_channel), 0, 0, NULL},
    {"token_ttl", CFG_DURATION, CO(token_ttl), 0, 86400000, NULL},
};
#undef CO

static void sec_cache(struct cfg_ctx *ctx, struct yt_node *n)
{
    if (cfg_expect(ctx, n, YT_MAP, "cache") != 0)
        return;
    cfg_fields(ctx, n, cache_fields, PC_ARRAY_LEN(cache_fields), &ctx->cfg->cache);
    const char *ch = ctx->cfg->cache.invalidate_channel;
    if (ch != NULL && (ch[0] == '\0' || strspn(ch, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ch)))
        cfg_error(ctx, yt_get(n, "invalidate_channel"),
                  "cache.invalidate_channel must be a lower-case identifier ([a-z0-9_])");
}

static void sec_schema_version(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    static const char *const keys[] = {"query", "known"};
    struct pc_schema_version *sv = dst;
    if (cfg_expect(ctx, n, YT_MAP, "database.schema_version") != 0)
        return;
    sv->line = n->line;
    sv->col = n->col;
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "query") == 0) {
            free(sv->query);
            sv->query = NULL;
            cfg_scalar(ctx, v, CFG_STR, &sv->query, 0, 0);
        } else if (strcmp(k->str, "known") == 0) {
            if (cfg_expect(ctx, v, YT_SEQ, "database.schema_version.known") != 0)
                continue;
            sv->known = pc_calloc(v->n ? v->n : 1, sizeof(*sv->known));
            for (size_t j = 0; j < v->n; j++)
                if (cfg_scalar(ctx, v->items[j], CFG_STR, &sv->known[sv->nknown], 0, 0) == 0)
                    sv->nknown++;
        } else {
            cfg_unknown_key(ctx, k, "database.schema_version", keys, PC_ARRAY_LEN(keys));
        }
    }
    if (sv->query == NULL || sv->query[0] == '\0')
        cfg_error(ctx, n, "database.schema_version needs a query");
    if (sv->nknown == 0)
        cfg_error(ctx, n, "database.schema_version needs known: [the versions this config was checked against]");
}

#define DO(f) offsetof(struct pc_database, f)
static const struct cfg_field database_fields[] = {
    {"url", CFG_STR, DO(url), 0, 0, NULL},
    {"host", CFG_STR, DO(host), 0, 0, NULL},
    {"port", CFG_STR, DO(port), 0, 0, NULL},
    {"dbname", CFG_STR, DO(dbname), 0, 0, NULL},
    {"user", CFG_STR, DO(user), 0, 0, NULL},
    {"password", CFG_STR, DO(password), 0, 0, NULL},
    {"sslmode", CFG_STR, DO(sslmode), 0, 0, NULL},
    {"pool", CFG_INT, DO(pool), 1, 256, NULL},
    {"connect_timeout", CFG_DURATION, DO(connect_timeout), 1, 600000, NULL},
    {"schema_version", CFG_CUSTOM, DO(schema_version), 0, 0, sec_schema_version},
};
#undef DO

static void sec_database(struct cfg_ctx *ctx, struct yt_node *n)
{
    if (cfg_expect(ctx, n, YT_MAP, "database") != 0)
        return;
    ctx->cfg->database.line = n->line;
    ctx->cfg->database.col = n->col;
    ctx->cfg->database.configured = 1;
    cfg_fields(ctx, n, database_fields, PC_ARRAY_LEN(database_fields), &ctx->cfg->database);
    const struct pc_database *d = &ctx->cfg->database;
    if ((d->url == NULL || d->url[0] == '\0') && (d->host == NULL || d->host[0] == '\0') &&
        (d->dbname == NULL || d->dbname[0] == '\0'))
        cfg_error(ctx, n, "database needs a url, or a host and dbname");
}

/* ---- the section table ---- */

struct cfg_section {
    const char *name;
    void (*parse)(struct cfg_ctx *ctx, struct yt_node *n);
};

static void sec_identity(struct cfg_ctx *ctx, struct yt_node *n)
{
    id_config_parse(ctx, n);
}

static void sec_policies(struct cfg_ctx *ctx, struct yt_node *n)
{
    pol_config_parse(ctx, n);
}

static void sec_rules(struct cfg_ctx *ctx, struct yt_node *n)
{
    PC_UNUSED(n); /* compiled after every other section, see cfg_finish() */
    PC_UNUSED(ctx);
}

static const struct cfg_section cfg_sections[] = {
    {"listen", sec_listen},
    {"upstream", sec_upstream},
    {"health_path", sec_health_path},
    {"ready_path", sec_ready_path},
    {"workers", sec_workers},
    {"timeouts", sec_timeouts},
    {"limits", sec_limits},
    {"admin_listen", sec_admin_listen},
    {"log", sec_log},
    {"identity", sec_identity},
    {"rules", sec_rules},
    {"default", sec_default},
    {"policies", sec_policies},
    {"database", sec_database},
    {"cache", sec_cache},
};

static void cfg_defaults(struct pc_config *c)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = ncpu > 0 ? (int)PC_MIN(ncpu, 64) : 1;
    c->timeouts.header = 10000;
    c->timeouts.connect = 5000;
    c->timeouts.upstream = 3600000;
    c->timeouts.idle = 75000;
    c->timeouts.drain = 30000;
    c->timeouts.body = 60000;
    c->timeouts.keepalive = 1000;
    c->timeouts.policy = 2000;
    c->limits.header_bytes = 32 * 1024;
    c->limits.body_bytes = 100 * 1024 * 1024;
    c->limits.connections = 0;
    c->health_path = pc_strdup("/healthz");
    c->ready_path = pc_strdup("/readyz");
    c->log_format = PC_LOG_JSON;
    c->log_level = PC_LOG_INFO;
    c->access_log = 1;
    c->default_forward = 0;
    c->database.pool = 4;
    c->database.connect_timeout = 5000;
    c->cache.ttl = 5000;
    c->cache.max_entries = 100000;
    c->cache.token_ttl = 60000;
}

void cfg_free(struct pc_config *c);

static struct pc_config *cfg_from_doc(struct yt_doc *doc, char **errors)
{
    struct cfg_ctx ctx = {0};
    struct pc_config *c = pc_calloc(1, sizeof(*c));
    ctx.file = doc->file;
    ctx.cfg = c;
    c->refcnt = 1;
    c->file = pc_strdup(doc->file);
    cfg_defaults(c);

    if (doc->root->type != YT_MAP) {
        cfg_error(&ctx, doc->root, "the configuration must be a mapping of sections");
        goto out;
    }
    const char *names[PC_ARRAY_LEN(cfg_sections)];
    for (size_t s = 0; s < PC_ARRAY_LEN(cfg_sections); s++)
        names[s] = cfg_sections[s].name;
    for (size_t i = 0; i < doc->root->n; i++) {
        struct yt_node *k = doc->root->keys[i];
        size_t s;
        for (s = 0; s < PC_ARRAY_LEN(cfg_sections); s++)
            if (strcmp(k->str, cfg_sections[s].name) == 0)
                break;
        if (s == PC_ARRAY_LEN(cfg_sections)) {
            cfg_unknown_key(&ctx, k, "the top level", names, PC_ARRAY_LEN(names));
            continue;
        }
        cfg_sections[s].parse(&ctx, doc->root->items[i]);
    }
    if (c->listen.text == NULL)
        cfg_error(&ctx, doc->root, "listen is required");
    if (c->upstream.text == NULL)
        cfg_error(&ctx, doc->root, "upstream is required");
    if (strcmp(c->health_path, c->ready_path) == 0)
        cfg_error(&ctx, yt_get(doc->root, "ready_path"), "health_path and ready_path must differ");

    /* Cross-section checks, in dependency order: policies need the
     * database; rules need identity and policies. */
    pol_config_finish(&ctx, doc->root);
    rule_config_parse(&ctx, yt_get(doc->root, "rules"));

out:
    if (ctx.nerrors > 0) {
        *errors = pc_strdup(pc_buf_cstr(&ctx.errors));
        pc_buf_free(&ctx.errors);
        pc_buf_free(&ctx.warnings);
        cfg_free(c);
        return NULL;
    }
    pc_buf_free(&ctx.errors);
    if (ctx.warnings.len > 0)
        c->warnings = pc_strdup(pc_buf_cstr(&ctx.warnings));
    pc_buf_free(&ctx.warnings);
    return c;
}

struct pc_config *cfg_load_text(const char *file, const char *text, size_t len,
                                yt_getenv_fn getenv_fn, char **errors)
{
    char err[512];
    struct yt_doc *doc = yt_load(file, text, len, getenv_fn, err, sizeof(err));
    *errors = NULL;
    if (doc == NULL) {
        *errors = pc_sprintf("%s\n", err);
        return NULL;
    }
    struct pc_config *c = cfg_from_doc(doc, errors);
    yt_free(doc);
    return c;
}

struct pc_config *cfg_load(const char *file, yt_getenv_fn getenv_fn, char **errors)
{
    return cfg_load_text(file, NULL, 0, getenv_fn, errors);
}

void cfg_free(struct pc_config *c)
{
    if (c == NULL)
        return;
    free(c->file);
    free(c->warnings);
    cfg_addr_free(&c->listen);
    cfg_addr_free(&c->upstream);
    cfg_addr_free(&c->admin_listen);
    free(c->health_path);
    free(c->ready_path);
    id_config_free(c->identity);
    rule_set_free(c->rules);
    pol_set_free(c->policies);
    free(c->database.url);
    free(c->database.host);
    free(c->database.port);
    free(c->database.dbname);
    free(c->database.user);
    if (c->database.password != NULL)
        memset(c->database.password, 0, strlen(c->database.password));
    free(c->database.password);
    free(c->database.sslmode);
    free(c->database.schema_version.query);
    for (size_t i = 0; i < c->database.schema_version.nknown; i++)
        free(c->database.schema_version.known[i]);
    free(c->database.schema_version.known);
    free(c->cache.invalidate_channel);
    free(c);
}

struct pc_config *cfg_ref(struct pc_config *cfg)
{
    __atomic_add_fetch(&cfg->refcnt, 1, __ATOMIC_RELAXED);
    return cfg;
}

void cfg_unref(struct pc_config *cfg)
{
    if (cfg == NULL)
        return;
    if (__atomic_sub_fetch(&cfg->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        cfg_free(cfg);
}
