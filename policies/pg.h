/*
 * portcullis: asynchronous PostgreSQL connections for one worker.
 *
 * Connections are opened with PQconnectStartParams/PQconnectPoll under our
 * own connect timer, set default_transaction_read_only, statement_timeout
 * and lock_timeout, LISTEN for invalidations (first connection only),
 * prepare every policy, then enter pipeline mode: one connection carries
 * queries from many requests, each followed by a sync so that one error
 * never poisons another request's query.
 *
 * A connection that dies fails its queries (the decision becomes 503) and
 * reconnects with backoff. A connection whose oldest query is far past the
 * policy budget is presumed wedged and is replaced.
 */
#ifndef PC_PG_H
#define PC_PG_H

#include <stdint.h>
#include <sys/queue.h>
#include <event2/event.h>

struct pc_config;
struct pg_pool;
struct pg_conn;

/* PGQ_SKIPPED: the policy is left out on this schema (schema.h): no
 * query was sent, err says what the database lacks. */
enum pg_status { PGQ_OK = 0, PGQ_ERROR = 1, PGQ_SKIPPED = 2 };

struct pg_query {
    struct pc_config *cfg;          /* the generation whose statements it uses */
    int policy;                     /* statement index */
    int nparams;
    const char *const *values;      /* NULL entries are SQL NULL */
    const int *lengths;
    void (*done)(struct pg_query *q, enum pg_status st, int ntuples, const char *err);
    /* private */
    int phase;
    int64_t sent_at;
    enum pg_status st;
    int ntuples;
    char err[128];
    TAILQ_ENTRY(pg_query) link;
};

TAILQ_HEAD(pg_query_list, pg_query);

/*
 * libpq keywords for a database section: url first (expanded as a conninfo
 * or URI), then each key given on its own, which overrides it. Empty
 * values are left out. keys/vals need PG_MAX_PARAMS entries.
 */
#define PG_MAX_PARAMS 16
struct pc_database;
void pg_conn_params(const struct pc_database *db, const char *appname, const char **keys,
                    const char **vals, char *timeout, size_t timeout_len);

struct pg_pool *pg_pool_new(struct event_base *base, int worker, int nconns, struct pc_config *cfg, int listener,
                            void (*on_invalidate)(void *arg), void (*on_state)(void *arg, int up),
                            void *arg);
void pg_pool_free(struct pg_pool *p);
/* A new generation: connections are replaced as soon as they are idle. */
void pg_pool_set_config(struct pg_pool *p, struct pc_config *cfg);
/* Queue a query. -1 when no connection is up or coming up (fail fast). */
int pg_pool_submit(struct pg_pool *p, struct pg_query *q);

struct pg_pool_state {
    int up, connecting, down;
};
void pg_pool_state(const struct pg_pool *p, struct pg_pool_state *st);

#endif
