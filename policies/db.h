/*
 * portcullis: the database driver interface. The decision engine talks to
 * a pool of connections through one of these; PostgreSQL (pg.c) is one,
 * MySQL (my.c) another, and a unit test's fake a third.
 *
 * A pool belongs to one worker thread and runs in its event loop: every
 * call, and every callback, happens on that thread. submit() never
 * completes a query before it returns; q->done is called exactly once,
 * later, from the loop (unless the pool is freed first: then it is called
 * with DBQ_ERROR "shutting down").
 */
#ifndef PC_DB_H
#define PC_DB_H

#include <stdint.h>
#include <sys/queue.h>
#include <event2/event.h>

struct pol_gen;
struct db_pool;

/* DBQ_SKIPPED: the policy is left out on this connection's schema
 * (schema.h): no query was sent, err says what the database lacks. */
enum db_status { DBQ_OK = 0, DBQ_ERROR = 1, DBQ_SKIPPED = 2 };

struct db_query {
    struct pol_gen *gen;            /* the generation whose statements it uses */
    int policy;                     /* index into gen->set */
    int nparams;                    /* the policy's parameters (pol_policy.params) */
    const char *const *values;      /* NULL entries are SQL NULL */
    const int *lengths;
    void (*done)(struct db_query *q, enum db_status st, int ntuples, const char *err);
    /* the driver's */
    int phase;
    int64_t sent_at;
    enum db_status st;
    int ntuples;
    char err[128];
    void *drv;                      /* the driver's own state for the query (pg.c: its hedge) */
    TAILQ_ENTRY(db_query) link;
};

TAILQ_HEAD(db_query_list, db_query);

/* Connections by state, published to the pool's owner on every change. */
struct db_state {
    int up, connecting, down;
};

struct db_events {
    void (*invalidate)(void *arg);  /* cached decisions may be stale: empty the cache */
    void (*state)(void *arg, const struct db_state *st);
    void *arg;
};

struct db_driver {
    const char *name;
    /* nconns connections for generation gen; listener: connection 0
     * listens for invalidations (cache.invalidate_channel, PostgreSQL) and
     * runs cache.invalidate_query every cache.invalidate_poll, reporting
     * through ev->invalidate. */
    struct db_pool *(*pool_new)(struct event_base *base, int worker, int nconns, struct pol_gen *gen,
                                int listener, const struct db_events *ev);
    void (*pool_free)(struct db_pool *p);
    /* A new generation: connections move to it as soon as they are idle. */
    void (*pool_set_gen)(struct db_pool *p, struct pol_gen *gen);
    /* Queue a query. -1 when no connection is up or coming up (fail fast). */
    int (*submit)(struct db_pool *p, struct db_query *q);
    /* The synchronous check of -t, start-up and reload (policy.h). */
    int (*check)(const struct pol_gen *gen, char **errors, char **warnings);
};

extern const struct db_driver db_driver_pg;  /* pg.c */
extern const struct db_driver db_driver_my;  /* my.c: MySQL, MariaDB and compatible servers */

#endif
