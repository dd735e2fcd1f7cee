/*
 * portcullis: policies. A policy is a named SQL check against the backing
 * app's database; it passes when the query returns at least one row.
 *
 * :name placeholders (outside quotes, dollar quotes and comments) become
 * the driver's parameters ($n on PostgreSQL, ? on MySQL); values are always
 * bound, never interpolated.
 *
 * A policy's SQL is one text, or one per dialect ({postgresql: ..., mysql:
 * ...}); the database section's driver picks which one runs (gen.h).
 */
#ifndef PC_POLICY_H
#define PC_POLICY_H

#include <stddef.h>
#include <stdint.h>

struct cfg_ctx;
struct yt_node;
struct pol_gen;

/* Named parameters in one policy's SQL; the decision engine binds this
 * many at most. */
#define POL_MAX_PARAMS 64
#define POL_MAX_VARIANTS 8
#define POL_MAX_REQUIRES 16

/*
 * One way of writing a policy: SQL, and what that SQL needs from the
 * database's schema ("table" or "table.column"). A policy has one variant
 * or several; on each database connection the first variant whose
 * requirements the schema meets is prepared and used. A policy none of
 * whose variants fits is left out on that connection: rules that list it
 * decide without it, and never fall open (see decide.h).
 */
#define POL_NDIALECTS 2

struct pol_variant {
    char *sql;          /* rewritten for the driver: $1..$n, or one ? per use */
    size_t nparams;
    int *param;         /* parameter k (0-based) is pol_policy.params[param[k]] */
    char **requires;
    size_t nrequires;
    int line, col;      /* of the SQL that runs */
    /* while the config loads: the SQL as written for each dialect (enum
     * pol_dialect; NULL: none), rewritten for the configured one by
     * pol_gen_finish and then freed */
    char *text[POL_NDIALECTS];
    int text_line[POL_NDIALECTS], text_col[POL_NDIALECTS];
};

struct pol_policy {
    char *name;
    int line, col;
    char **params;      /* every variant's parameter names: what a rule binds */
    size_t nparams;
    struct pol_variant *variants;
    size_t nvariants;
    int metric_slot;    /* label slot for portcullis_policy_queries_total, set at install */
};

struct pol_set {
    struct pol_policy *p;
    size_t n;
    int any_requires;   /* some variant has requires: the schema is read */
};

/* The `policies` section, into gen->set. */
void pol_set_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_gen *gen);
/* After every section: each variant's SQL for the configured driver is
 * rewritten (its parameters become the policy's), and policies need a
 * database (policies: the section's node, for the message). */
void pol_gen_finish(struct cfg_ctx *ctx, struct pol_gen *gen, const struct yt_node *policies);
void pol_set_free(struct pol_set *ps);
int pol_find(const struct pol_set *ps, const char *name);
size_t pol_nparams(const struct pol_set *ps, int idx);
const char *pol_param(const struct pol_set *ps, int idx, size_t i);

/*
 * Rewrite :name placeholders into $n. Returns the new SQL (malloc'd) and
 * the parameter names, or NULL with *why. Exposed for tests.
 */
char *pol_rewrite_sql(const char *sql, char ***params, size_t *nparams, const char **why);
/*
 * The same in MySQL's lexical grammar (myrewrite.c): one ? per :name, and
 * names[k] is the name of the k-th ? (a name used twice is listed twice).
 */
char *pol_rewrite_sql_mysql(const char *sql, char ***names, size_t *nnames, const char **why);

/*
 * Check every policy against the database synchronously (for -t, start-up
 * and reload): connect, read the schema when a policy declares what it
 * needs, prepare each policy's chosen variant, and check the schema
 * version. Errors go to *errors and warnings (policies left out, an
 * unknown schema version) to *warnings, as file:line:col lines. Returns 0
 * when every policy that fits the schema prepared, 1 when the database was
 * unreachable (with *errors saying so), -1 on policy errors.
 */
int pol_check_database(const struct pol_gen *cfg, char **errors, char **warnings);

/* The database driver a generation uses (db.h). */
struct db_driver;
const struct db_driver *db_driver_for(const struct pol_gen *gen);

#endif
