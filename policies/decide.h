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

struct pc_config;
struct rule;
struct rule_match;
struct dec_ctx;
struct dec_lookup;

enum dec_result { DEC_ALLOW = 1, DEC_DENY, DEC_ERROR };

#define DEC_MAX_POLICIES 16

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
    struct pc_config *cfg;
    const struct rule *rule;
    const struct rule_match *match;
    const char *subject;
    size_t subject_len;
    const char *payload;        /* claims JSON, for claims.<name> */
    size_t payload_len;
    void (*done)(struct dec_request *d, enum dec_result res, const char *reason);
    /* explain: run every policy (no early allow) and report each one */
    int run_all;
    void (*trace_bind)(struct dec_request *d, int policy, const char *const *values, const int *lengths, size_t n);
    /* outcome: 1 pass, 0 fail, -1 error, -2 left out */
    void (*trace_outcome)(struct dec_request *d, int policy, int outcome, const char *detail);

    /* out, for logs and metrics */
    int cache_hit;              /* every policy consulted was answered by the cache */
    char reason[96];

    /* private */
    struct event timer;
    int timer_on;
    int finished;
    struct dec_wait waits[DEC_MAX_POLICIES];
};

struct pc_metrics;
struct dec_ctx *dec_ctx_new(struct event_base *base, int worker_id, int nworkers,
                            struct pc_config *cfg, struct pc_metrics *m);
/* A new config generation: rebuild database connections if needed and
 * empty the cache. */
void dec_ctx_set_config(struct dec_ctx *ctx, struct pc_config *cfg);
/* Is at least one database connection up (or no database configured)? */
int dec_ctx_ready(const struct dec_ctx *ctx);
int dec_ctx_db_configured(const struct dec_ctx *ctx);

/* Start a decision; d->done is called exactly once, possibly before this
 * returns (cache hit), unless dec_cancel() is called first. */
void dec_start(struct dec_ctx *ctx, struct dec_request *d);
void dec_cancel(struct dec_request *d);

/* Counters for metrics. */
struct dec_stats {
    uint64_t cache_entries;
    int db_connected, db_connecting, db_down;
};
void dec_ctx_stats(const struct dec_ctx *ctx, struct dec_stats *st);

#endif
