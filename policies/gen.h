/*
 * portcullis: what the policy engine takes from one config generation.
 *
 * The database, the decision cache, the policies and the decision budget,
 * parsed by this module from the `database`, `cache` and `policies`
 * sections (the section list itself is assembled in proxy/). A pol_gen is
 * immutable once loaded and shared by reference: database connections and
 * lookups in flight hold the generation they were made for.
 */
#ifndef PC_GEN_H
#define PC_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/cfg.h"

struct pol_set;
struct pol_data;

/* database.schema_version: a query whose rows name the schema's version,
 * and the versions the config was checked against. */
struct pol_schema_version {
    char *query;
    char **known;
    size_t nknown;
    int line, col;
};

/* The SQL a driver speaks: which of a policy's `sql:` texts it runs, and
 * how :name placeholders are rewritten (policy.h). */
enum pol_dialect { POL_DIALECT_PG = 0, POL_DIALECT_MYSQL = 1 };

struct pol_db {
    int driver;         /* index into pol_db_drivers (synonyms included) */
    enum pol_dialect dialect; /* what driver comes to */
    char *url;          /* PostgreSQL: conninfo or postgresql:// URI */
    /* given one by one: no quoting, and they override url */
    char *host, *port, *dbname, *user, *password, *sslmode;
    char *sslrootcert, *sslcert, *sslkey;
    char *server_public_key; /* mysql: caching_sha2_password's RSA key, pinned */
    char *target_session_attrs; /* PostgreSQL: which of several hosts (libpq's keyword); NULL: url's or any */
    int64_t pool;
    int64_t connect_timeout;
    struct pol_schema_version schema_version; /* query == NULL: not checked */
    int configured;     /* a database section is present */
    int line, col;
};

struct pol_cache {
    int64_t ttl;         /* ms; 0 turns the decision cache off */
    uint64_t max_entries;
    char *invalidate_channel;
    char *invalidate_query;  /* polled; a change of its value empties the cache */
    int64_t invalidate_poll; /* ms between two runs of invalidate_query */
    int invalidate_line, invalidate_col; /* where invalidate_query is written */
    int64_t token_ttl;   /* ms; verified-token cache lifetime cap; 0 = off */
};

struct pol_gen {
    int refcnt;          /* atomic */
    uint64_t generation; /* set when the generation is installed */
    char *file;          /* for file:line:col messages */
    struct pol_set *set;
    struct pol_data *data;  /* operator data: the `data` section and its files (data.h) */
    struct pol_db db;
    struct pol_cache cache;
    int64_t policy_timeout; /* ms: the whole decision budget (timeouts.policy) */
    /* Called when the last reference goes, before anything is freed: the
     * installer hands back what it registered for the generation (metric
     * label slots). Lookups in flight hold references, so nothing counts
     * into those slots any more. */
    void (*on_free)(struct pol_gen *g);
};

struct pol_gen *pol_gen_new(const char *file);
struct pol_gen *pol_gen_ref(struct pol_gen *g);
void pol_gen_unref(struct pol_gen *g);

/* The `database` and `cache` sections, and their rows (defaults, docs). */
extern const struct cfg_row pol_db_rows[], pol_cache_rows[];
/* database.driver's names, and the dialect each one means */
extern const char *const pol_db_drivers[];
extern const size_t pol_db_nrows, pol_cache_nrows;
void pol_db_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_db *db);
/* Checks across database and cache, once every section is read; database:
 * the section's node (NULL when absent). */
void pol_db_finish(struct cfg_ctx *ctx, const struct pol_gen *gen, const struct yt_node *database);
void pol_cache_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_cache *c);

/* Does the generation run policies (some, and a database to run them)? */
int pol_gen_active(const struct pol_gen *g);

#endif
