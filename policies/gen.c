/*
 * portcullis: the policy engine's part of a config generation (see gen.h).
 */
#include "gen.h"
#include "policy.h"
#include "data.h"
#include "../lib/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

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
    if (g->on_free != NULL)
        g->on_free(g);
    free(g->file);
    pol_set_free(g->set);
    pol_data_free(g->data);
    free(d->url);
    free(d->host);
    free(d->port);
    free(d->dbname);
    free(d->user);
    if (d->password != NULL)
        memset(d->password, 0, strlen(d->password));
    free(d->password);
    free(d->sslmode);
    free(d->sslrootcert);
    free(d->sslcert);
    free(d->sslkey);
    free(d->server_public_key);
    free(d->target_session_attrs);
    free(d->schema_version.query);
    for (size_t i = 0; i < d->schema_version.nknown; i++)
        free(d->schema_version.known[i]);
    free(d->schema_version.known);
    free(g->cache.invalidate_channel);
    free(g->cache.invalidate_query);
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
            "PostgreSQL: LISTEN here; any NOTIFY empties the cache"),
    CFG_ROW("invalidate_query", CFG_STR, CO(invalidate_query), 0, 0, NULL,
            "SQL returning one value, run every invalidate_poll; a change empties the cache"),
    CFG_ROW("invalidate_poll", CFG_DURATION, CO(invalidate_poll), 100, 3600000, "1s",
            "how often invalidate_query runs"),
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

/* The driver's names: Dify's DB_TYPE values are among them, so that a
 * config can say driver: "${DB_TYPE}". */
const char *const pol_db_drivers[] = {"postgresql", "mysql", "postgres", "mariadb", "oceanbase", "seekdb", NULL};
static const enum pol_dialect pol_db_driver_dialect[] = {POL_DIALECT_PG, POL_DIALECT_MYSQL, POL_DIALECT_PG,
                                                         POL_DIALECT_MYSQL, POL_DIALECT_MYSQL, POL_DIALECT_MYSQL};

#define DO(f) offsetof(struct pol_db, f)
const struct cfg_row pol_db_rows[] = {
    CFG_ROW_ENUM("driver", DO(driver), pol_db_drivers, "postgresql",
                 "postgresql (or postgres), or mysql (or mariadb, oceanbase, seekdb: one driver)"),
    CFG_ROW("url", CFG_STR, DO(url), 0, 0, NULL, "postgresql: libpq conninfo or postgresql:// URI"),
    CFG_ROW("host", CFG_STR, DO(host), 0, 0, NULL, "host name or address (postgresql: several, a,b); /path: a Unix socket"),
    CFG_ROW("port", CFG_STR, DO(port), 0, 0, NULL, "port (default 5432, mysql 3306)"),
    CFG_ROW("dbname", CFG_STR, DO(dbname), 0, 0, NULL, "database name"),
    CFG_ROW("user", CFG_STR, DO(user), 0, 0, NULL, "user name"),
    CFG_ROW("password", CFG_STR, DO(password), 0, 0, NULL, "password, any characters"),
    CFG_ROW("sslmode", CFG_STR, DO(sslmode), 0, 0, NULL, "disable, prefer (default), require, verify-ca, verify-full"),
    CFG_ROW("sslrootcert", CFG_STR, DO(sslrootcert), 0, 0, NULL, "CA certificates (PEM) for verify-ca and verify-full"),
    CFG_ROW("sslcert", CFG_STR, DO(sslcert), 0, 0, NULL, "client certificate (PEM)"),
    CFG_ROW("sslkey", CFG_STR, DO(sslkey), 0, 0, NULL, "client certificate's key (PEM)"),
    CFG_ROW("server_public_key", CFG_STR, DO(server_public_key), 0, 0, NULL,
            "mysql: the server's RSA public key (PEM) for caching_sha2_password without TLS"),
    CFG_ROW("target_session_attrs", CFG_STR, DO(target_session_attrs), 0, 0, NULL,
            "postgresql, several hosts: any, read-write, read-only, primary, standby, prefer-standby"),
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
    if (c->invalidate_query != NULL && c->invalidate_query[0] == '\0') {
        /* "${VAR:-}": not configured */
        free(c->invalidate_query);
        c->invalidate_query = NULL;
    }
    const struct yt_node *iq = yt_get(n, "invalidate_query");
    if (iq != NULL) {
        c->invalidate_line = iq->line;
        c->invalidate_col = iq->col;
    }
    const char *ch = c->invalidate_channel;
    if (ch != NULL && (ch[0] == '\0' || strspn(ch, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ch)))
        cfg_error(ctx, yt_get(n, "invalidate_channel"),
                  "cache.invalidate_channel must be a lower-case identifier ([a-z0-9_])");
}

static int pol_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* libpq 15's target_session_attrs values */
static const char *const pol_session_attrs[] = {"any", "read-write", "read-only", "primary", "standby",
                                                "prefer-standby"};

/* Can target_session_attrs a put a connection on a standby? */
static int pol_may_be_standby(const char *a)
{
    return a != NULL && (strcmp(a, "read-only") == 0 || strcmp(a, "standby") == 0 || strcmp(a, "prefer-standby") == 0);
}

static void pol_db_check_pg(struct cfg_ctx *ctx, const struct yt_node *n, const struct pol_db *d)
{
    if (pol_empty(d->url) && pol_empty(d->host) && pol_empty(d->dbname))
        cfg_error(ctx, n, "database needs a url, or a host and dbname");
    if (!pol_empty(d->target_session_attrs)) {
        size_t i;
        for (i = 0; i < PC_ARRAY_LEN(pol_session_attrs); i++)
            if (strcmp(d->target_session_attrs, pol_session_attrs[i]) == 0)
                break;
        if (i == PC_ARRAY_LEN(pol_session_attrs))
            cfg_error(ctx, yt_get(n, "target_session_attrs"),
                      "database.target_session_attrs must be one of any, read-write, read-only, primary, standby, "
                      "prefer-standby, found '%s'", d->target_session_attrs);
    }
    if (!pol_empty(d->server_public_key))
        cfg_error(ctx, yt_get(n, "server_public_key"),
                  "database.server_public_key is for driver mysql (caching_sha2_password); "
                  "PostgreSQL authenticates with SCRAM");
}

static void pol_db_check_mysql(struct cfg_ctx *ctx, const struct yt_node *n, const struct pol_db *d)
{
    static const char *const modes[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
    if (!pol_empty(d->url))
        cfg_error(ctx, yt_get(n, "url"),
                  "database.url is a libpq conninfo; with driver mysql give host, port, dbname, user and password");
    if (pol_empty(d->host) || pol_empty(d->dbname))
        cfg_error(ctx, n, "database needs a host and a dbname (driver mysql)");
    if (!pol_empty(d->target_session_attrs))
        cfg_error(ctx, yt_get(n, "target_session_attrs"),
                  "database.target_session_attrs is libpq's (driver postgresql); the mysql driver connects to its "
                  "one host");
    if (!pol_empty(d->port)) {
        uint64_t port;
        if (pc_parse_u64(d->port, strlen(d->port), &port) != 0 || port < 1 || port > 65535)
            cfg_error(ctx, yt_get(n, "port"), "database.port must be a port number, found '%s'", d->port);
    }
    if (!pol_empty(d->sslmode)) {
        size_t i;
        for (i = 0; i < PC_ARRAY_LEN(modes); i++)
            if (strcmp(d->sslmode, modes[i]) == 0)
                break;
        if (i == PC_ARRAY_LEN(modes))
            cfg_error(ctx, yt_get(n, "sslmode"),
                      "database.sslmode must be one of disable, prefer, require, verify-ca, verify-full "
                      "(driver mysql), found '%s'", d->sslmode);
        else if (i >= 3 && pol_empty(d->sslrootcert))
            cfg_error(ctx, yt_get(n, "sslmode"),
                      "database.sslmode %s needs sslrootcert: the CA certificates to verify the server with",
                      d->sslmode);
    }
}

void pol_db_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_db *db)
{
    if (cfg_expect(ctx, n, YT_MAP, "database") != 0)
        return;
    db->line = n->line;
    db->col = n->col;
    db->configured = 1;
    cfg_rows(ctx, n, "database", pol_db_rows, pol_db_nrows, db);
    db->dialect = pol_db_driver_dialect[db->driver];
    if (db->dialect == POL_DIALECT_MYSQL)
        pol_db_check_mysql(ctx, n, db);
    else
        pol_db_check_pg(ctx, n, db);
}

/* The target_session_attrs libpq will apply, and where it comes from: the
 * key (passed after url, so it wins), else the url's (either form), else
 * the environment's PGTARGETSESSIONATTRS. NULL: libpq's any. *from is
 * set for a message; the value of a url is copied into buf. */
static const char *pol_session_attrs_of(const struct pol_db *d, char *buf, size_t len, const char **from)
{
    if (!pol_empty(d->target_session_attrs)) {
        *from = "database.target_session_attrs";
        return d->target_session_attrs;
    }
    if (!pol_empty(d->url)) {
        /* an unparsable url fails at the check (-t, start-up) with libpq's message */
        PQconninfoOption *opts = PQconninfoParse(d->url, NULL);
        const char *v = NULL;
        for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
            if (strcmp(o->keyword, "target_session_attrs") == 0 && !pol_empty(o->val)) {
                snprintf(buf, len, "%s", o->val);
                v = buf;
            }
        PQconninfoFree(opts);
        if (v != NULL) {
            *from = "database.url's target_session_attrs";
            return v;
        }
    }
    const char *env = getenv("PGTARGETSESSIONATTRS");
    if (!pol_empty(env)) {
        *from = "PGTARGETSESSIONATTRS";
        return env;
    }
    return NULL;
}

void pol_db_finish(struct cfg_ctx *ctx, const struct pol_gen *gen, const struct yt_node *database)
{
    const struct pol_db *d = &gen->db;
    if (!d->configured || d->dialect != POL_DIALECT_PG || gen->cache.invalidate_channel == NULL)
        return;
    /* LISTEN is refused on a standby ("cannot execute LISTEN during
     * recovery"), and a NOTIFY sent at commit on the primary arrives
     * before a standby has replayed the change: a decision read from the
     * standby just after it would be stale, and cached. The url and the
     * environment put connections there as surely as the key. */
    char buf[64];
    const char *from = NULL;
    const char *attrs = pol_session_attrs_of(d, buf, sizeof(buf), &from);
    if (!pol_may_be_standby(attrs))
        return;
    const struct yt_node *at = !pol_empty(d->target_session_attrs) ? yt_get(database, "target_session_attrs")
                               : strcmp(from, "PGTARGETSESSIONATTRS") != 0 ? yt_get(database, "url") : database;
    cfg_error(ctx, at,
              "%s %s may put connections on a standby, where "
              "cache.invalidate_channel cannot LISTEN (and a NOTIFY comes before the standby has the change): "
              "use read-write or primary with it, or leave it out and rely on cache.ttl or "
              "cache.invalidate_query", from, attrs);
}
