/*
 * portcullis: the decision engine. Runs a rule's policies for one request
 * against PostgreSQL, through the decision cache, without blocking the
 * event loop. One engine per worker.
 *
 * Any policy that passes allows. No pass and no error denies. No pass and
 * any error, timeout or unavailable connection is an error (503): fail
 * closed.
 */
#ifndef PC_DECIDE_H
#define PC_DECIDE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "../lib/hist.h"

struct pol_gen;
struct dec_ctx;
struct dec_lookup;
struct db_driver;
struct pol_data_view;

enum dec_result { DEC_ALLOW = 1, DEC_DENY, DEC_ERROR };

#define DEC_MAX_POLICIES 16

/*
 * The binding plan: what rules/ compiles an allow: list into. One step per
 * policy, in the order the rule lists them; each binds the policy's
 * parameters (pol_policy.params, in order) to the subject, a capture of
 * the request, or a claim of the verified token. The engine never sees a
 * rule, only its plan.
 */
enum dec_bind_kind { DEC_B_CAPTURE, DEC_B_SUBJECT, DEC_B_CLAIM, DEC_B_DATA };

struct dec_bind {
    enum dec_bind_kind kind;
    int capture;                /* DEC_B_CAPTURE: index into the request's captures;
                                 * DEC_B_DATA: the data slot (data.h pol_data_slot) */
    char *claim;                /* DEC_B_CLAIM: claim name */
};

struct dec_step {
    int policy;                 /* index into pol_gen.set */
    struct dec_bind *binds;     /* one per policy parameter */
    size_t nbinds;
};

struct dec_plan {
    const char *name;           /* the rule's name: part of every cache key */
    struct dec_step *steps;
    size_t nsteps;
    int needs_claims;           /* some step binds a claim */
    int binds_data;             /* some step binds operator data (data.h) */
};

/* Does step i bind operator data? */
int dec_step_binds_data(const struct dec_plan *p, size_t i);

void dec_plan_clear(struct dec_plan *p);

/* What one policy of a decision came to. DEC_O_LEFT_OUT: the policy does
 * not fit the database's schema (schema.h); the decision is made without
 * it, as if it had not passed. A rule whose policies are all left out
 * denies: never open. */
enum dec_outcome { DEC_O_PENDING = 0, DEC_O_PASS, DEC_O_FAIL, DEC_O_ERROR, DEC_O_LEFT_OUT };

/* One policy of a decision: its wait on a lookup (shared by coalesced
 * requests) and, once known, its outcome. Reasons are built from these in
 * the order the rule lists its policies, never in the order the database
 * answers. */
struct dec_wait {
    struct dec_request *req;
    struct dec_lookup *lookup;
    int policy;
    enum dec_outcome outcome;
    char detail[64];            /* DEC_O_ERROR, DEC_O_LEFT_OUT: why */
    TAILQ_ENTRY(dec_wait) link;
};

struct dec_request {
    /* in */
    struct pol_gen *cfg;
    const struct dec_plan *plan;
    const char *const *captures;    /* bound capture values (NUL-terminated) */
    const size_t *capture_lens;
    const int *capture_present;     /* absent captures are SQL NULL */
    const char *subject;
    size_t subject_len;
    const char *payload;        /* claims JSON, for claims.<name> */
    size_t payload_len;
    /* operator data bound by DEC_B_DATA: NULL is the generation's own
     * (cfg->data->full); the empty view asks "and without the data?" */
    const struct pol_data_view *data_view;
    void (*done)(struct dec_request *d, enum dec_result res, const char *reason);
    void *done_arg;             /* the caller's, for done */
    /* explain: run every policy (no early allow) and report each one */
    int run_all;
    void (*trace_bind)(struct dec_request *d, int policy, const char *const *values, const int *lengths, size_t n);
    /* outcome: 1 pass, 0 fail, -1 error, -2 left out */
    void (*trace_outcome)(struct dec_request *d, int policy, int outcome, const char *detail);

    /* out, for logs and metrics */
    int cache_hit;              /* every policy consulted was answered by the cache */
    char reason[256];

    /* private */
    struct event timer;
    int timer_on;
    int finished;
    struct dec_wait waits[DEC_MAX_POLICIES];
};

/*
 * What an engine publishes for other threads (metrics, readiness): plain
 * counters and gauges that the owning worker updates with relaxed atomics
 * and others only read. The memory is the caller's and outlives the engine;
 * nothing else of the engine is ever touched by another thread.
 */
enum dec_q_result { DEC_Q_PASS, DEC_Q_FAIL, DEC_Q_ERROR, DEC_Q__COUNT };

struct dec_counters {
    uint64_t queries[PC_LABEL_SLOTS][DEC_Q__COUNT]; /* [policy metric slot][result] */
    struct pc_hist query_duration;
    uint64_t cache_hits, cache_misses;
    uint64_t cache_invalidations;   /* the database said decisions may be stale */
    uint64_t cache_entries;     /* gauge */
    int db_up, db_connecting, db_down;
    int db_configured;          /* the generation runs policies */
    int db_ready;               /* a connection is up, or none is needed */
};

/* An engine for one worker (worker_id of nworkers share gen->db.pool
 * connections), talking to the database through drv (NULL: the one the
 * generation names, policy.h db_driver_for). */
struct dec_ctx *dec_ctx_new(struct event_base *base, int worker_id, int nworkers, struct pol_gen *gen,
                            const struct db_driver *drv, struct dec_counters *counters);
/* A new config generation: rebuild database connections if needed and
 * empty the cache. */
void dec_ctx_set_config(struct dec_ctx *ctx, struct pol_gen *gen);
/* The context, its database pool (pending queries end as errors) and its
 * cache. */
void dec_ctx_free(struct dec_ctx *ctx);

/* Start a decision; d->done is called exactly once, possibly before this
 * returns (cache hit), unless dec_cancel() is called first. */
void dec_start(struct dec_ctx *ctx, struct dec_request *d);
void dec_cancel(struct dec_request *d);

/* Readiness from published counters (any thread). */
int dec_counters_ready(const struct dec_counters *c);
int dec_counters_configured(const struct dec_counters *c);

#endif
