/*
 * portcullis: the policy engine's part of a config generation (see gen.h).
 */
#include "gen.h"
#include "policy.h"
#include "../lib/base.h"

#include <stdlib.h>
#include <string.h>

struct pol_gen *pol_gen_new(const char *file)
{
    struct pol_gen *g = pc_calloc(1, sizeof(*g));
    g->refcnt = 1;
    g->file = pc_strdup(file);
    cfg_rows_defaults(pol_db_rows, pol_db_nrows, &g->db);
    cfg_rows_defaults(pol_cache_rows, pol_cache_nrows, &g->cache);
    g->policy_timeout = 2000;
    return g;
}

struct pol_gen *pol_gen_ref(struct pol_gen *g)
{
    __atomic_add_fetch(&g->refcnt, 1, __ATOMIC_RELAXED);
    return g;
}

static void pol_gen_free(struct pol_gen *g)
{
    struct pol_db *d = &g->db;
    free(g->file);
    pol_set_free(g->set);
    free(d->url);
    free(d->host);
    free(d->port);
    free(d->dbname);
    free(d->user);
    if (d->password != NULL)
        memset(d->password, 0, strlen(d->password));
    free(d->password);
    free(d->sslmode);
    free(d->schema_version.query);
    for (size_t i = 0; i < d->schema_version.nknown; i++)
        free(d->schema_version.known[i]);
    free(d->schema_version.known);
    free(g->cache.invalidate_channel);
    free(g);
}

void pol_gen_unref(struct pol_gen *g)
{
    if (g != NULL && __atomic_sub_fetch(&g->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        pol_gen_free(g);
}

int pol_gen_active(const struct pol_gen *g)
{
    return g != NULL && g->set != NULL && g->set->n > 0 && g->db.configured;
}

#define CO(f) offsetof(struct pol_cache, f)
const struct cfg_row pol_cache_rows[] = {
    CFG_ROW("ttl", CFG_DURATION, CO(ttl), 0, 86400000, "5s", "how long a policy result is reused; 0s: no decision cache"),
    CFG_ROW("max_entries", CFG_INT, CO(max_entries), 1, 100000000, "100000", "decision cache size, split between workers"),
    CFG_ROW("invalidate_channel", CFG_STR, CO(invalidate_channel), 0, 0, NULL,
            "LISTEN here; any NOTIFY empties the cache"),
    CFG_ROW("token_ttl", CFG_DURATION, CO(token_ttl), 0, 86400000, "60s", "verified-token cache lifetime cap; 0s: off"),
};
const size_t pol_cache_nrows = PC_ARRAY_LEN(pol_cache_rows);
#undef CO

static void pol_schema_version_parse(struct cfg_ctx *ctx, const struct yt_node *n, void *dst)
{
    static const char *const keys[] = {"query", "known"};
    struct pol_schema_version *sv = dst;
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

#define DO(f) offsetof(struct pol_db, f)
const struct cfg_row pol_db_rows[] = {
    CFG_ROW("url", CFG_STR, DO(url), 0, 0, NULL, "libpq conninfo or postgresql:// URI"),
    CFG_ROW("host", CFG_STR, DO(host), 0, 0, NULL, "libpq host (several: a,b)"),
    CFG_ROW("port", CFG_STR, DO(port), 0, 0, NULL, "libpq port"),
    CFG_ROW("dbname", CFG_STR, DO(dbname), 0, 0, NULL, "libpq dbname"),
    CFG_ROW("user", CFG_STR, DO(user), 0, 0, NULL, "libpq user"),
    CFG_ROW("password", CFG_STR, DO(password), 0, 0, NULL, "libpq password, any characters"),
    CFG_ROW("sslmode", CFG_STR, DO(sslmode), 0, 0, NULL, "libpq sslmode"),
    CFG_ROW("pool", CFG_INT, DO(pool), 1, 256, "4", "connections in all, split between workers"),
    CFG_ROW("connect_timeout", CFG_DURATION, DO(connect_timeout), 1, 600000, "5s", "per connection attempt"),
    CFG_ROW_CUSTOM("schema_version", DO(schema_version), pol_schema_version_parse,
                   "{query, known}: the schema versions this config was checked against"),
};
const size_t pol_db_nrows = PC_ARRAY_LEN(pol_db_rows);
#undef DO

void pol_cache_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_cache *c)
{
    cfg_rows(ctx, n, "cache", pol_cache_rows, pol_cache_nrows, c);
    const char *ch = c->invalidate_channel;
    if (ch != NULL && (ch[0] == '\0' || strspn(ch, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ch)))
        cfg_error(ctx, yt_get(n, "invalidate_channel"),
                  "cache.invalidate_channel must be a lower-case identifier ([a-z0-9_])");
}

void pol_db_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_db *db)
{
    if (cfg_expect(ctx, n, YT_MAP, "database") != 0)
        return;
    db->line = n->line;
    db->col = n->col;
    db->configured = 1;
    cfg_rows(ctx, n, "database", pol_db_rows, pol_db_nrows, db);
    const struct pol_db *d = db;
    if ((d->url == NULL || d->url[0] == '\0') && (d->host == NULL || d->host[0] == '\0') &&
        (d->dbname == NULL || d->dbname[0] == '\0'))
        cfg_error(ctx, n, "database needs a url, or a host and dbname");
}
