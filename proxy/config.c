/*
 * portcullis: config loading (see config.h): the table of top-level
 * sections, each parsed by the module that owns it, then the finishing
 * checks in dependency order, then installation.
 */
#include "config.h"
#include "metrics.h"
#include "../rules/match.h"
#include "../policies/data.h"
#include "../policies/gen.h"
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

int cfg_parse_hostport(const char *s, int allow_name, struct pc_addr *out, char *err, size_t errlen)
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
    if (allow_name && host[0] == '\0') {
        /* an empty host means "any address" only when listening */
        snprintf(err, errlen, "missing host in '%s'", s);
        return -1;
    }
    uint64_t port;
    if (pc_parse_u64(port_s, strlen(port_s), &port) != 0 || port == 0 || port > 65535) {
        snprintf(err, errlen, "invalid port in '%s'", s);
        return -1;
    }
    /* an address literal only: AI_NUMERICHOST never asks DNS */
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST | (host[0] == '\0' ? AI_PASSIVE : 0);
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &res);
    out->numeric = rc == 0 && res != NULL;
    if (!out->numeric && !allow_name) {
        snprintf(err, errlen, "'%s' must be a numeric address and port", s);
        if (res != NULL)
            freeaddrinfo(res);
        return -1;
    }
    out->text = pc_strdup(s);
    out->host = pc_strdup(host);
    out->port = (int)port;
    out->resolved = out->numeric;
    if (out->numeric) {
        memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
        out->len = res->ai_addrlen;
        freeaddrinfo(res);
    }
    return 0;
}

int cfg_resolve(struct pc_addr *a, char *err, size_t errlen)
{
    if (a->resolved)
        return 0;
    char port[8];
    struct addrinfo hints = {0}, *res = NULL;
    snprintf(port, sizeof(port), "%d", a->port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", a->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    a->resolved = 1;
    freeaddrinfo(res);
    return 0;
}

static void cfg_addr_free(struct pc_addr *a)
{
    free(a->text);
    free(a->host);
    a->text = a->host = NULL;
}

/* ---- the proxy's own sections ---- */

static void sec_listen(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct pc_addr *a = dst;
    char err[256];
    if (cfg_expect(ctx, n, YT_SCALAR, "listen") != 0)
        return;
    cfg_addr_free(a);
    if (cfg_parse_hostport(n->str, 0, a, err, sizeof(err)) != 0)
        cfg_error(ctx, n, "listen: %s", err);
}

static void sec_admin_listen(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct pc_addr *a = dst;
    char err[256];
    if (yt_is_null(n))
        return;
    if (cfg_expect(ctx, n, YT_SCALAR, "admin_listen") != 0)
        return;
    cfg_addr_free(a);
    if (cfg_parse_hostport(n->str, 0, a, err, sizeof(err)) != 0)
        cfg_error(ctx, n, "admin_listen: %s", err);
}

static void sec_upstream(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct pc_addr *a = dst;
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
    cfg_addr_free(a);
    if (strchr(tmp, '/') != NULL)
        cfg_error(ctx, n, "upstream must not have a path: '%s'", n->str);
    else if (cfg_parse_hostport(tmp, 1, a, err, sizeof(err)) != 0)
        cfg_error(ctx, n, "upstream: %s", err);
    else
        a->line = n->line, a->col = n->col;
    free(tmp);
}

#define TO(f) offsetof(struct pc_timeouts, f)
static const struct cfg_row timeout_rows[] = {
    CFG_ROW("header", CFG_DURATION, TO(header), 1, 86400000, "10s", "the whole request head must arrive within this"),
    CFG_ROW("connect", CFG_DURATION, TO(connect), 1, 86400000, "5s", "upstream TCP connect"),
    CFG_ROW("upstream", CFG_DURATION, TO(upstream), 1, 7 * 86400000LL, "3600s",
            "idle time between bytes of an upstream exchange"),
    CFG_ROW("idle", CFG_DURATION, TO(idle), 1, 86400000, "75s",
            "client keep-alive, and how long a client may stop reading"),
    CFG_ROW("drain", CFG_DURATION, TO(drain), 0, 86400000, "30s", "SIGTERM grace period"),
    CFG_ROW("body", CFG_DURATION, TO(body), 1, 86400000, "60s", "idle time between request body bytes"),
    CFG_ROW("keepalive", CFG_DURATION, TO(keepalive), 0, 86400000, "1s",
            "how long an idle upstream connection stays pooled; 0: no pooling"),
    CFG_ROW("policy", CFG_DURATION, TO(policy), 1, 600000, "2s",
            "the whole decision budget; also the database's statement and lock timeouts"),
};
#undef TO

#define LO(f) offsetof(struct pc_limits, f)
static const struct cfg_row limit_rows[] = {
    CFG_ROW("header_bytes", CFG_SIZE, LO(header_bytes), 1024, 1024 * 1024, "32KiB", "request line plus headers"),
    CFG_ROW("body_bytes", CFG_SIZE, LO(body_bytes), 0, INT64_MAX, "100MiB", "request body"),
    CFG_ROW("connections", CFG_INT, LO(connections), 0, 10000000, "0", "client connections in all; 0: no limit"),
};
#undef LO

static const char *const log_formats[] = {"json", "text", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

#define LG(f) offsetof(struct pc_config, f)
static const struct cfg_row log_rows[] = {
    CFG_ROW_ENUM("format", LG(log_format), log_formats, "json", "access lines and diagnostics: json or text"),
    CFG_ROW_ENUM("level", LG(log_level), log_levels, "info", "diagnostics: debug, info, warn, error"),
    CFG_ROW("access", CFG_BOOL, LG(access_log), 0, 0, "true", "one access line per request on stdout"),
};
#undef LG

static void sec_timeouts(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    cfg_rows(ctx, n, "timeouts", timeout_rows, PC_ARRAY_LEN(timeout_rows), dst);
}

static void sec_limits(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    cfg_rows(ctx, n, "limits", limit_rows, PC_ARRAY_LEN(limit_rows), dst);
}

static void sec_log(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    cfg_rows(ctx, n, "log", log_rows, PC_ARRAY_LEN(log_rows), dst);
}

static void sec_path(struct cfg_ctx *ctx, const struct yt_node *n, const char *what, char **p)
{
    if (cfg_expect(ctx, n, YT_SCALAR, what) != 0)
        return;
    if (n->str[0] != '/' || strpbrk(n->str, "?# %") != NULL) {
        cfg_error(ctx, n, "%s must be an absolute path without query, found '%s'", what, n->str);
        return;
    }
    free(*p);
    *p = pc_strdup(n->str);
}

/* ---- the other modules' sections ---- */

/* What loading one file keeps besides the generation itself. */
struct cfg_load {
    struct pc_config *c;
    const struct yt_node *rules;     /* compiled once policies and identity are known */
    const struct yt_node *policies;
};

static void sec_identity(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    id_config_parse(ctx, n, &((struct cfg_load *)dst)->c->identity);
}

static void sec_policies(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    struct cfg_load *l = dst;
    l->policies = n;
    pol_set_parse(ctx, n, l->c->pol);
}

static void sec_data(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    pol_data_parse(ctx, n, ((struct cfg_load *)dst)->c->pol);
}

static void sec_database(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    pol_db_parse(ctx, n, &((struct cfg_load *)dst)->c->pol->db);
}

static void sec_cache(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    pol_cache_parse(ctx, n, &((struct cfg_load *)dst)->c->pol->cache);
}

static void sec_rules(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    PC_UNUSED(ctx);
    ((struct cfg_load *)dst)->rules = n;
}

static void sec_default(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    rule_default_parse(ctx, n, &((struct cfg_load *)dst)->c->default_forward);
}

/* Proxy sections write into the generation, the others through the load. */
static void sec_on_config(struct cfg_ctx *ctx, const struct yt_node *n, void *dst,
                          void (*fn)(struct cfg_ctx *, const struct yt_node *, void *), size_t off)
{
    fn(ctx, n, (char *)((struct cfg_load *)dst)->c + off);
}

#define ON_CONFIG(name, fn, field)                                                \
    static void name(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)     \
    {                                                                             \
        sec_on_config(ctx, n, dst, fn, offsetof(struct pc_config, field));        \
    }
ON_CONFIG(top_listen, sec_listen, listen)
ON_CONFIG(top_upstream, sec_upstream, upstream)
ON_CONFIG(top_admin_listen, sec_admin_listen, admin_listen)
ON_CONFIG(top_timeouts, sec_timeouts, timeouts)
ON_CONFIG(top_limits, sec_limits, limits)
#undef ON_CONFIG

static void top_log(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    sec_log(ctx, n, ((struct cfg_load *)dst)->c); /* log_rows are offsets in pc_config */
}

static void top_health_path(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    sec_path(ctx, n, "health_path", &((struct cfg_load *)dst)->c->health_path);
}

static void top_ready_path(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    sec_path(ctx, n, "ready_path", &((struct cfg_load *)dst)->c->ready_path);
}

static void top_workers(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    int64_t v;
    if (cfg_scalar(ctx, n, CFG_INT, &v, 1, 256) == 0)
        ((struct cfg_load *)dst)->c->workers = (int)v;
}

/* The top level: every section, and the module that owns it. */
static const struct cfg_row cfg_sections[] = {
    CFG_ROW_CUSTOM("listen", 0, top_listen, "host:port the proxy listens on (required)"),
    CFG_ROW_CUSTOM("upstream", 0, top_upstream, "http://host:port of the backend (required)"),
    CFG_ROW_CUSTOM("admin_listen", 0, top_admin_listen, "host:port of /metrics, /status, health and readiness"),
    CFG_ROW_CUSTOM("health_path", 0, top_health_path, "answered 200 while the process runs"),
    CFG_ROW_CUSTOM("ready_path", 0, top_ready_path, "answered 200 when the upstream and the database are up"),
    CFG_ROW_CUSTOM("workers", 0, top_workers, "worker threads (default: the number of cores)"),
    CFG_ROW_CUSTOM("timeouts", 0, top_timeouts, "see timeouts: below"),
    CFG_ROW_CUSTOM("limits", 0, top_limits, "see limits: below"),
    CFG_ROW_CUSTOM("log", 0, top_log, "see log: below"),
    CFG_ROW_CUSTOM("identity", 0, sec_identity, "JWT verification and credential sources (policies/identity.c)"),
    CFG_ROW_CUSTOM("rules", 0, sec_rules, "path templates and what each allows (rules/match.c)"),
    CFG_ROW_CUSTOM("default", 0, sec_default, "deny or forward what no rule matches"),
    CFG_ROW_CUSTOM("policies", 0, sec_policies, "named SQL checks (policies/policy.c)"),
    CFG_ROW_CUSTOM("data", 0, sec_data, "operator data files that policies bind (policies/data.c)"),
    CFG_ROW_CUSTOM("database", 0, sec_database, "where policies run (policies/gen.c)"),
    CFG_ROW_CUSTOM("cache", 0, sec_cache, "the decision and token caches (policies/gen.c)"),
};

/* ---- loading ---- */

static struct pc_config *cfg_new(const char *file)
{
    struct pc_config *c = pc_calloc(1, sizeof(*c));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c->refcnt = 1;
    c->file = pc_strdup(file);
    c->workers = ncpu > 0 ? (int)PC_MIN(ncpu, 64) : 1;
    cfg_rows_defaults(timeout_rows, PC_ARRAY_LEN(timeout_rows), &c->timeouts);
    cfg_rows_defaults(limit_rows, PC_ARRAY_LEN(limit_rows), &c->limits);
    cfg_rows_defaults(log_rows, PC_ARRAY_LEN(log_rows), c);
    c->health_path = pc_strdup("/healthz");
    c->ready_path = pc_strdup("/readyz");
    c->default_forward = 0;
    c->pol = pol_gen_new(file);
    return c;
}

/* Cross-section checks and compilation, in dependency order. */
static void cfg_finish(struct cfg_ctx *ctx, struct cfg_load *l, const struct yt_node *root)
{
    struct pc_config *c = l->c;
    if (c->listen.text == NULL)
        cfg_error(ctx, root, "listen is required");
    if (c->upstream.text == NULL)
        cfg_error(ctx, root, "upstream is required");
    if (strcmp(c->health_path, c->ready_path) == 0)
        cfg_error(ctx, yt_get(root, "ready_path"), "health_path and ready_path must differ");
    /* the decision budget is a timeout, and the policy engine's */
    c->pol->policy_timeout = c->timeouts.policy;
    pol_gen_finish(ctx, c->pol, l->policies);
    pol_db_finish(ctx, c->pol, yt_get(root, "database"));
    pol_data_finish(ctx, c->pol);
    if (c->identity == NULL && l->rules != NULL && l->rules->type == YT_SEQ) {
        /* rules with allow: need identity; the error points at the first */
        for (size_t i = 0; i < l->rules->n; i++) {
            const struct yt_node *a = yt_get(l->rules->items[i], "allow");
            if (a != NULL) {
                cfg_error(ctx, a, "rules with allow: need an identity section");
                break;
            }
        }
    }
    rule_config_parse(ctx, l->rules, c->pol->set, c->pol->data, &c->rules);
}

void cfg_free(struct pc_config *c);

static struct pc_config *cfg_from_doc(struct yt_doc *doc, char **errors)
{
    struct cfg_ctx ctx = {0};
    struct pc_config *c = cfg_new(doc->file);
    struct cfg_load load = {c, NULL, NULL};
    ctx.file = doc->file;

    if (doc->root->type != YT_MAP)
        cfg_error(&ctx, doc->root, "the configuration must be a mapping of sections");
    else
        cfg_rows(&ctx, doc->root, "the top level", cfg_sections, PC_ARRAY_LEN(cfg_sections), &load);
    if (ctx.nerrors == 0)
        cfg_finish(&ctx, &load, doc->root);
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

/* ---- installing ---- */

static void cfg_release_policy_slots(struct pol_gen *g)
{
    for (size_t i = 0; g->set != NULL && i < g->set->n; i++)
        pc_metrics_policy_slot_release(g->set->p[i].metric_slot);
}

char *cfg_install(struct pc_config *c)
{
    struct pc_buf w = {0};
    char err[300];
    if (!c->upstream.numeric && cfg_resolve(&c->upstream, err, sizeof(err)) != 0)
        pc_buf_addf(&w, "%s:%d:%d: warning: upstream: %s; it is resolved again while serving\n", c->file,
                    c->upstream.line, c->upstream.col, err);
    for (size_t i = 0; c->rules != NULL && i < c->rules->n; i++)
        c->rules->rules[i].metric_slot = pc_metrics_rule_slot(c->rules->rules[i].name);
    for (size_t i = 0; c->pol->set != NULL && i < c->pol->set->n; i++)
        c->pol->set->p[i].metric_slot = pc_metrics_policy_slot(c->pol->set->p[i].name);
    /* the policies' slots go back when the last lookup of this generation
     * is done, the rules' when the config is freed (cfg_free) */
    c->pol->on_free = cfg_release_policy_slots;
    c->pol->generation = c->generation;
    if (w.len == 0)
        return NULL;
    char *out = pc_strdup(pc_buf_cstr(&w));
    pc_buf_free(&w);
    return out;
}

/* ---- printing the effective config ---- */

static void cfg_print_addr(struct pc_buf *b, const char *key, const struct pc_addr *a, const char *doc)
{
    if (a->text != NULL)
        pc_buf_addf(b, "%s: \"%s\"    # %s\n", key, a->text, doc);
    else
        pc_buf_addf(b, "%s: null    # %s\n", key, doc);
}

void cfg_print(struct pc_buf *b, const struct pc_config *c)
{
    pc_buf_addf(b, "# %s, every default filled in\n", c->file);
    cfg_print_addr(b, "listen", &c->listen, cfg_sections[0].doc);
    pc_buf_addf(b, "upstream: \"http://%s\"    # %s\n", c->upstream.text ? c->upstream.text : "", cfg_sections[1].doc);
    cfg_print_addr(b, "admin_listen", &c->admin_listen, cfg_sections[2].doc);
    pc_buf_addf(b, "health_path: \"%s\"    # %s\n", c->health_path, cfg_sections[3].doc);
    pc_buf_addf(b, "ready_path: \"%s\"    # %s\n", c->ready_path, cfg_sections[4].doc);
    pc_buf_addf(b, "workers: %d    # %s\n", c->workers, cfg_sections[5].doc);
    pc_buf_adds(b, "timeouts:\n");
    cfg_rows_print(b, "  ", timeout_rows, PC_ARRAY_LEN(timeout_rows), &c->timeouts);
    pc_buf_adds(b, "limits:\n");
    cfg_rows_print(b, "  ", limit_rows, PC_ARRAY_LEN(limit_rows), &c->limits);
    pc_buf_adds(b, "log:\n");
    cfg_rows_print(b, "  ", log_rows, PC_ARRAY_LEN(log_rows), c);
    if (c->identity != NULL) {
        pc_buf_adds(b, "identity:\n");
        id_config_print(b, "  ", c->identity);
    }
    if (c->pol->db.configured) {
        pc_buf_adds(b, "database:\n");
        cfg_rows_print(b, "  ", pol_db_rows, pol_db_nrows, &c->pol->db);
    }
    pc_buf_adds(b, "cache:\n");
    cfg_rows_print(b, "  ", pol_cache_rows, pol_cache_nrows, &c->pol->cache);
    const struct pol_data *d = c->pol->data;
    if (d != NULL && d->nsets > 0) {
        pc_buf_adds(b, "data:    # operator data files that policies bind; shapes as written\n");
        for (size_t i = 0; i < d->nsets; i++) {
            size_t n = 0;
            for (size_t t = 0; t < d->sets[i].ntops; t++)
                n += d->sets[i].tops[t].nentries;
            pc_buf_addf(b, "  %s:\n    file: \"%s\"    # %zu %s; empty: no file\n", d->sets[i].name,
                        d->sets[i].file ? d->sets[i].file : "", n, n == 1 ? "entry" : "entries");
        }
    }
    pc_buf_addf(b, "default: %s    # %s\n", c->default_forward ? "forward" : "deny", cfg_sections[11].doc);
    pc_buf_addf(b, "# policies: %zu, rules: %zu (as written in the file)\n", c->pol->set ? c->pol->set->n : 0,
                c->rules ? c->rules->n : 0);
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
    for (size_t i = 0; c->rules != NULL && i < c->rules->n; i++)
        pc_metrics_rule_slot_release(c->rules->rules[i].metric_slot);
    rule_set_free(c->rules);
    pol_gen_unref(c->pol);
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
