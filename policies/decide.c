/*
 * portcullis: decisions (see decide.h).
 *
 * The cache key of a policy lookup is: config generation, rule name,
 * policy name, subject, and every bound parameter value, each length-
 * prefixed. No entry can answer for another subject, resource, rule or
 * workspace. Errors are never cached. Identical concurrent lookups share
 * one query (coalescing); a lookup older than the policy budget is not
 * joined, so one wedged query cannot hold every later request hostage.
 */
#include "decide.h"
#include "cache.h"
#include "jwt.h"
#include "json.h"
#include "db.h"
#include "gen.h"
#include "policy.h"
#include "data.h"
#include "../lib/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEC_INFLIGHT_BUCKETS 1024
#define DEC_PASS ((void *)(intptr_t)1)
#define DEC_FAIL ((void *)(intptr_t)2)

/*
 * One policy lookup in flight. The one object a request creates that does
 * not live in the request's pool, on purpose: later requests with the same
 * key join it (coalescing), and a request that ends (client gone, reload)
 * only leaves its waiter list, so the lookup outlives the request that
 * started it. It owns copies of its key and bound values, and dies when
 * its query answers, fails or times out.
 */
struct dec_lookup {
    struct dec_ctx *ctx;
    struct db_query q;
    struct pol_gen *cfg;
    int policy;
    char *key;
    size_t klen;
    uint64_t hash;
    char **values;
    int *lengths;
    int nvalues;
    int64_t started;          /* µs */
    uint64_t inval_seq;       /* the cache's invalidation count when sent */
    TAILQ_HEAD(, dec_wait) waiters;
    struct dec_lookup *hnext;
    int in_table;
};

struct dec_ctx {
    struct event_base *base;
    struct pol_gen *cfg;
    const struct db_driver *drv;
    struct db_pool *pool;
    struct lru *cache;
    struct dec_lookup *inflight[DEC_INFLIGHT_BUCKETS];
    struct dec_counters *m;   /* published: see decide.h */
    int worker_id, nworkers;
    int fixed_drv;            /* drv given by the caller (tests), not chosen per generation */
    uint64_t inval_seq;       /* bumped by every invalidation */
    struct pc_buf key;
};

/* ---- pool lifecycle ---- */

static void dec_publish_entries(struct dec_ctx *ctx)
{
    __atomic_store_n(&ctx->m->cache_entries, (uint64_t)lru_count(ctx->cache), __ATOMIC_RELAXED);
}

static void dec_on_invalidate(void *arg)
{
    struct dec_ctx *ctx = arg;
    lru_clear(ctx->cache);
    ctx->inval_seq++; /* answers to queries sent before now are not cached */
    pc_metric_add(&ctx->m->cache_invalidations, 1);
    dec_publish_entries(ctx);
}

static void dec_on_state(void *arg, const struct db_state *st)
{
    struct dec_ctx *ctx = arg;
    __atomic_store_n(&ctx->m->db_up, st->up, __ATOMIC_RELAXED);
    __atomic_store_n(&ctx->m->db_connecting, st->connecting, __ATOMIC_RELAXED);
    __atomic_store_n(&ctx->m->db_down, st->down, __ATOMIC_RELAXED);
    __atomic_store_n(&ctx->m->db_ready, st->up > 0, __ATOMIC_RELAXED);
}

static int dec_share(const struct pol_gen *cfg, int worker_id, int nworkers)
{
    /* the pool is split between workers; each gets at least one */
    int pool = (int)cfg->db.pool;
    int n = pool / nworkers + (worker_id < pool % nworkers ? 1 : 0);
    return n < 1 ? 1 : n;
}

static void dec_build_pool(struct dec_ctx *ctx)
{
    struct pol_gen *cfg = ctx->cfg;
    int configured = pol_gen_active(cfg);
    __atomic_store_n(&ctx->m->db_configured, configured, __ATOMIC_RELAXED);
    if (!configured) {
        struct db_state none = {0, 0, 0};
        dec_on_state(ctx, &none);
        __atomic_store_n(&ctx->m->db_ready, 1, __ATOMIC_RELAXED);
        return;
    }
    if (!ctx->fixed_drv)
        ctx->drv = db_driver_for(cfg);
    struct db_events ev = {dec_on_invalidate, dec_on_state, ctx};
    ctx->pool = ctx->drv->pool_new(ctx->base, ctx->worker_id, dec_share(cfg, ctx->worker_id, ctx->nworkers), cfg,
                                   1, &ev);
}

struct dec_ctx *dec_ctx_new(struct event_base *base, int worker_id, int nworkers, struct pol_gen *cfg,
                            const struct db_driver *drv, struct dec_counters *m)
{
    struct dec_ctx *ctx = pc_calloc(1, sizeof(*ctx));
    ctx->base = base;
    ctx->cfg = pol_gen_ref(cfg);
    ctx->m = m;
    ctx->drv = drv;
    ctx->fixed_drv = drv != NULL;
    ctx->worker_id = worker_id;
    ctx->nworkers = nworkers;
    size_t max = cfg->cache.max_entries / (size_t)nworkers;
    ctx->cache = lru_new(max ? max : 1, NULL);
    dec_build_pool(ctx);
    return ctx;
}

void dec_ctx_free(struct dec_ctx *ctx)
{
    if (ctx == NULL)
        return;
    /* the pool answers what is still pending with an error: the lookups
     * and their waiters end there */
    if (ctx->pool != NULL)
        ctx->drv->pool_free(ctx->pool);
    lru_free(ctx->cache);
    pc_buf_free(&ctx->key);
    pol_gen_unref(ctx->cfg);
    free(ctx);
}

void dec_ctx_set_config(struct dec_ctx *ctx, struct pol_gen *cfg)
{
    struct pol_gen *old = ctx->cfg;
    ctx->cfg = pol_gen_ref(cfg);
    /* a reload invalidates every cached decision */
    lru_free(ctx->cache);
    size_t max = cfg->cache.max_entries / (size_t)ctx->nworkers;
    ctx->cache = lru_new(max ? max : 1, NULL);
    dec_publish_entries(ctx);
    const struct db_driver *drv = ctx->fixed_drv ? ctx->drv : db_driver_for(cfg);
    if (ctx->pool != NULL && pol_gen_active(cfg) && drv == ctx->drv &&
        dec_share(cfg, ctx->worker_id, ctx->nworkers) == dec_share(old, ctx->worker_id, ctx->nworkers)) {
        ctx->drv->pool_set_gen(ctx->pool, cfg);
    } else {
        if (ctx->pool != NULL)
            ctx->drv->pool_free(ctx->pool);
        ctx->pool = NULL;
        dec_build_pool(ctx);
    }
    pol_gen_unref(old);
}

int dec_counters_ready(const struct dec_counters *c)
{
    return __atomic_load_n(&c->db_ready, __ATOMIC_RELAXED);
}

int dec_counters_configured(const struct dec_counters *c)
{
    return __atomic_load_n(&c->db_configured, __ATOMIC_RELAXED);
}

int dec_step_binds_data(const struct dec_plan *p, size_t i)
{
    for (size_t b = 0; b < p->steps[i].nbinds; b++)
        if (p->steps[i].binds[b].kind == DEC_B_DATA)
            return 1;
    return 0;
}

void dec_plan_clear(struct dec_plan *p)
{
    for (size_t i = 0; i < p->nsteps; i++) {
        for (size_t b = 0; b < p->steps[i].nbinds; b++)
            free(p->steps[i].binds[b].claim);
        free(p->steps[i].binds);
    }
    free(p->steps);
    p->steps = NULL;
    p->nsteps = 0;
}

/* ---- keys and parameters ---- */

static void dec_key_part(struct pc_buf *b, const char *p, size_t len, int present)
{
    uint32_t l = present ? (uint32_t)len : UINT32_MAX;
    pc_buf_add(b, &l, sizeof(l));
    if (present)
        pc_buf_add(b, p, len);
}

/* A policy's parameters for one request, as views: no copies except for
 * claims (parsed out of the payload). NULL is SQL NULL. A rule binds each
 * of its policies' parameters, and a policy has at most POL_MAX_PARAMS. */
struct dec_vals {
    const char *v[POL_MAX_PARAMS];
    int len[POL_MAX_PARAMS];
    char *owned[POL_MAX_PARAMS];
    const unsigned char *digest[POL_MAX_PARAMS]; /* operator data: what the cache key holds */
    size_t n;
};

static void dec_bind(const struct dec_request *d, const struct dec_step *ra, const struct json_value *claims,
                     struct dec_vals *out)
{
    out->n = ra->nbinds;
    for (size_t i = 0; i < out->n; i++) {
        const struct dec_bind *b = &ra->binds[i];
        out->v[i] = NULL;
        out->len[i] = 0;
        out->owned[i] = NULL;
        out->digest[i] = NULL;
        switch (b->kind) {
        case DEC_B_SUBJECT:
            out->v[i] = d->subject;
            out->len[i] = (int)d->subject_len;
            break;
        case DEC_B_CAPTURE:
            if (d->capture_present[b->capture]) {
                out->v[i] = d->captures[b->capture];
                out->len[i] = (int)d->capture_lens[b->capture];
            }
            break;
        case DEC_B_CLAIM: {
            int is_null = 1;
            char *v = NULL;
            if (claims != NULL)
                tok_claim_value(claims, b->claim, &v, &is_null);
            out->owned[i] = v; /* the JSON reader refuses NUL: strlen is the length */
            out->v[i] = v;
            out->len[i] = v ? (int)strlen(v) : 0;
            break;
        }
        case DEC_B_DATA: {
            const struct pol_data_view *dv = d->data_view ? d->data_view : d->cfg->data->full;
            out->v[i] = dv->value[b->capture];
            out->len[i] = dv->len[b->capture];
            out->digest[i] = dv->digest[b->capture];
            break;
        }
        }
    }
}

static void dec_vals_release(struct dec_vals *vals)
{
    for (size_t i = 0; i < vals->n; i++)
        free(vals->owned[i]);
    vals->n = 0;
}

static void dec_build_key(struct pc_buf *b, const struct dec_request *d, const struct dec_step *ra,
                          const struct dec_vals *vals)
{
    const struct pol_policy *p = &d->cfg->set->p[ra->policy];
    b->len = 0;
    pc_buf_add(b, &d->cfg->generation, sizeof(d->cfg->generation));
    dec_key_part(b, d->plan->name, strlen(d->plan->name), 1);
    dec_key_part(b, p->name, strlen(p->name), 1);
    dec_key_part(b, d->subject, d->subject_len, 1);
    for (size_t i = 0; i < vals->n; i++) {
        if (vals->digest[i] != NULL) /* a file's worth of data: its SHA-256 */
            dec_key_part(b, (const char *)vals->digest[i], 32, 1);
        else
            dec_key_part(b, vals->v[i], (size_t)vals->len[i], vals->v[i] != NULL);
    }
}

/* ---- in-flight table ---- */

static struct dec_lookup *dec_inflight_find(struct dec_ctx *ctx, const char *key, size_t klen, uint64_t h)
{
    for (struct dec_lookup *l = ctx->inflight[h % DEC_INFLIGHT_BUCKETS]; l; l = l->hnext)
        if (l->hash == h && l->klen == klen && memcmp(l->key, key, klen) == 0)
            return l;
    return NULL;
}

static void dec_inflight_remove(struct dec_lookup *l)
{
    if (!l->in_table)
        return;
    struct dec_lookup **pp = &l->ctx->inflight[l->hash % DEC_INFLIGHT_BUCKETS];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    l->in_table = 0;
}

static void dec_lookup_free(struct dec_lookup *l)
{
    for (int i = 0; i < l->nvalues; i++)
        free(l->values[i]);
    free(l->values);
    free(l->lengths);
    free(l->key);
    pol_gen_unref(l->cfg);
    free(l);
}

/* ---- decisions ---- */

/* Stop the budget timer and leave every lookup: d is finished. */
static void dec_detach(struct dec_request *d)
{
    d->finished = 1;
    if (d->timer_on) {
        evtimer_del(&d->timer);
        d->timer_on = 0;
    }
    for (size_t i = 0; i < d->plan->nsteps; i++) {
        struct dec_wait *w = &d->waits[i];
        if (w->lookup != NULL) {
            TAILQ_REMOVE(&w->lookup->waiters, w, link);
            w->lookup = NULL;
        }
    }
}

static void dec_finish(struct dec_request *d, enum dec_result res, const char *reason)
{
    if (d->finished)
        return;
    dec_detach(d);
    if (reason != d->reason)
        snprintf(d->reason, sizeof(d->reason), "%s", reason);
    d->done(d, res, d->reason);
}

void dec_cancel(struct dec_request *d)
{
    if (!d->finished)
        dec_detach(d);
}

/* Append to d->reason without printf (it is on the hot path), truncating. */
static void dec_reason_cat(struct dec_request *d, const char *s)
{
    size_t l = strlen(d->reason), n = strlen(s);
    if (l + n >= sizeof(d->reason))
        n = sizeof(d->reason) - 1 - l;
    memcpy(d->reason + l, s, n);
    d->reason[l + n] = '\0';
}

static void dec_reason_add(struct dec_request *d, const char *policy, const char *what)
{
    if (d->reason[0] != '\0')
        dec_reason_cat(d, "; ");
    dec_reason_cat(d, "policy ");
    dec_reason_cat(d, policy);
    dec_reason_cat(d, ": ");
    dec_reason_cat(d, what);
}

/* Finish d from its slots, in the order the rule lists its policies: the
 * first pass allows and names itself; otherwise every policy is listed
 * with what it came to, and any error (or a policy still pending when the
 * budget ran out) makes the decision an error. The reason never depends on
 * the order in which the database answered. */
static void dec_conclude(struct dec_request *d)
{
    size_t n = d->plan->nsteps;
    const struct pol_policy *ps = d->cfg->set->p;
    int errors = 0;
    d->reason[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (d->waits[i].outcome == DEC_O_PASS) {
            dec_reason_add(d, ps[d->waits[i].policy].name, "row");
            dec_finish(d, DEC_ALLOW, d->reason);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct dec_wait *w = &d->waits[i];
        const char *what = "no row";
        if (w->outcome == DEC_O_LEFT_OUT) {
            what = w->detail;
        } else if (w->outcome == DEC_O_ERROR) {
            what = w->detail;
            errors++;
        } else if (w->outcome == DEC_O_PENDING) {
            what = "db timeout";
            errors++;
        }
        dec_reason_add(d, ps[w->policy].name, what);
    }
    dec_finish(d, errors ? DEC_ERROR : DEC_DENY, d->reason);
}

/* Slot i of d has an outcome (err: what went wrong, for DEC_O_ERROR).
 * The decision is concluded as soon as it cannot change: when a pass is
 * known and every policy listed before it has an outcome (so that the
 * policy named is always the first passing one in rule order), or when
 * every policy has an outcome. explain (run_all) waits for every policy.
 * Returns 1 when the decision finished (d may be gone: do not touch it). */
static int dec_outcome(struct dec_request *d, size_t i, enum dec_outcome o, const char *err)
{
    struct dec_wait *w = &d->waits[i];
    w->outcome = o;
    if (o == DEC_O_ERROR || o == DEC_O_LEFT_OUT)
        snprintf(w->detail, sizeof(w->detail), "%s", err && *err ? err : "error");
    if (d->trace_outcome)
        d->trace_outcome(d, w->policy, o == DEC_O_PASS ? 1 : o == DEC_O_FAIL ? 0 : o == DEC_O_LEFT_OUT ? -2 : -1,
                         w->detail);
    size_t n = d->plan->nsteps;
    for (size_t k = 0; k < n; k++) {
        enum dec_outcome ok = d->waits[k].outcome;
        if (ok == DEC_O_PENDING)
            return 0;
        if (ok == DEC_O_PASS && !d->run_all)
            break;
    }
    dec_conclude(d);
    return 1;
}

static void dec_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dec_request *d = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    d->timer_on = 0;
    /* the budget is spent: what is known decides, pending policies are
     * errors ("db timeout") */
    dec_conclude(d);
}

static void dec_query_done(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    struct dec_lookup *l = (struct dec_lookup *)((char *)q - offsetof(struct dec_lookup, q));
    struct dec_ctx *ctx = l->ctx;
    int outcome = st == DBQ_SKIPPED ? -2 : st != DBQ_OK ? -1 : ntuples > 0 ? 1 : 0;
    int slot = l->cfg->set->p[l->policy].metric_slot;
    enum dec_outcome o = outcome > 0 ? DEC_O_PASS : outcome == 0 ? DEC_O_FAIL :
                         outcome == -2 ? DEC_O_LEFT_OUT : DEC_O_ERROR;

    dec_inflight_remove(l);
    if (outcome != -2) { /* a left-out policy sends no query */
        pc_metric_add(&ctx->m->queries[slot][outcome > 0 ? DEC_Q_PASS : outcome == 0 ? DEC_Q_FAIL : DEC_Q_ERROR], 1);
        pc_hist_observe(&ctx->m->query_duration, pc_now_us() - l->started);
    }
    /* Errors are never cached; neither is anything from an old generation,
     * nor an answer to a query sent before the last invalidation (it may
     * predate the revocation that caused it). */
    if (outcome >= 0 && l->cfg == ctx->cfg && l->inval_seq == ctx->inval_seq && ctx->cfg->cache.ttl > 0) {
        lru_put_h(ctx->cache, l->key, l->klen, l->hash, outcome ? DEC_PASS : DEC_FAIL,
                pc_now_ms() + ctx->cfg->cache.ttl);
        dec_publish_entries(ctx);
    }
    /* One waiter at a time, straight off the lookup's own list: a decision
     * that finishes (or a request freed by its callback) unlinks its other
     * waits from this list itself, so nothing here can reach a wait that
     * is gone. New decisions cannot join: l left the in-flight table above. */
    struct dec_wait *w;
    while ((w = TAILQ_FIRST(&l->waiters)) != NULL) {
        TAILQ_REMOVE(&l->waiters, w, link);
        w->lookup = NULL;
        dec_outcome(w->req, (size_t)(w - w->req->waits), o, err);
    }
    dec_lookup_free(l);
}

void dec_start(struct dec_ctx *ctx, struct dec_request *d)
{
    const struct dec_plan *r = d->plan;
    int64_t now_ms = pc_now_ms();
    int64_t now_us = pc_now_us();

    d->finished = 0;
    d->timer_on = 0;
    d->cache_hit = 1;
    d->reason[0] = '\0';
    evtimer_assign(&d->timer, ctx->base, dec_timer_cb, d);

    /* the claims, parsed once for every policy that binds one */
    struct json_value *claims = NULL;
    if (r->needs_claims && d->payload != NULL) {
        const char *jwhy;
        claims = json_parse(d->payload, d->payload_len, &jwhy);
    }

    /* every slot pending first, so that early outcomes cannot finish early */
    size_t n = r->nsteps;
    for (size_t i = 0; i < n; i++) {
        d->waits[i].lookup = NULL;
        d->waits[i].policy = r->steps[i].policy;
        d->waits[i].outcome = DEC_O_PENDING;
        d->waits[i].detail[0] = '\0';
    }

    for (size_t i = 0; i < n; i++) {
        const struct dec_step *ra = &r->steps[i];
        struct dec_vals vals;
        dec_bind(d, ra, claims, &vals);
        if (d->trace_bind)
            d->trace_bind(d, ra->policy, vals.v, vals.len, vals.n);
        dec_build_key(&ctx->key, d, ra, &vals);
        uint64_t h = pc_hash(ctx->key.p, ctx->key.len);

        if (d->cfg == ctx->cfg && d->cfg->cache.ttl > 0) {
            void *hit = lru_get_h(ctx->cache, ctx->key.p, ctx->key.len, h, now_ms);
            if (hit != NULL) {
                pc_metric_add(&ctx->m->cache_hits, 1);
                dec_vals_release(&vals);
                if (dec_outcome(d, i, hit == DEC_PASS ? DEC_O_PASS : DEC_O_FAIL, NULL))
                    goto out; /* d may be gone */
                continue;
            }
            pc_metric_add(&ctx->m->cache_misses, 1);
        }
        d->cache_hit = 0;

        struct dec_lookup *l = dec_inflight_find(ctx, ctx->key.p, ctx->key.len, h);
        if (l != NULL && (now_us - l->started > d->cfg->policy_timeout * 1000 || l->inval_seq != ctx->inval_seq)) {
            /* too old to join, or sent before an invalidation: start afresh */
            dec_inflight_remove(l);
            l = NULL;
        }
        if (l != NULL) {
            dec_vals_release(&vals);
        } else {
            l = pc_calloc(1, sizeof(*l));
            l->ctx = ctx;
            l->cfg = pol_gen_ref(d->cfg);
            l->policy = ra->policy;
            l->key = pc_malloc(ctx->key.len);
            memcpy(l->key, ctx->key.p, ctx->key.len);
            l->klen = ctx->key.len;
            l->hash = h;
            l->nvalues = (int)vals.n;
            l->values = pc_calloc(vals.n ? vals.n : 1, sizeof(*l->values));
            l->lengths = pc_calloc(vals.n ? vals.n : 1, sizeof(*l->lengths));
            for (size_t k = 0; k < vals.n; k++) {
                /* the lookup outlives the request: it owns its values */
                if (vals.owned[k] != NULL)
                    l->values[k] = vals.owned[k];
                else if (vals.v[k] != NULL)
                    l->values[k] = pc_strndup(vals.v[k], (size_t)vals.len[k]);
                l->lengths[k] = vals.len[k];
            }
            l->started = now_us;
            l->inval_seq = ctx->inval_seq;
            TAILQ_INIT(&l->waiters);
            l->q.gen = l->cfg;
            l->q.policy = ra->policy;
            l->q.nparams = (int)vals.n;
            l->q.values = (const char *const *)l->values;
            l->q.lengths = l->lengths;
            l->q.done = dec_query_done;
            if (ctx->pool == NULL || ctx->drv->submit(ctx->pool, &l->q) != 0) {
                int slot = d->cfg->set->p[ra->policy].metric_slot;
                pc_metric_add(&ctx->m->queries[slot][DEC_Q_ERROR], 1);
                dec_lookup_free(l);
                if (dec_outcome(d, i, DEC_O_ERROR, "database unavailable"))
                    goto out;
                continue;
            }
            /* submit never completes a query synchronously (db.h) */
            l->hnext = ctx->inflight[h % DEC_INFLIGHT_BUCKETS];
            ctx->inflight[h % DEC_INFLIGHT_BUCKETS] = l;
            l->in_table = 1;
        }
        struct dec_wait *w = &d->waits[i];
        w->req = d;
        w->lookup = l;
        TAILQ_INSERT_TAIL(&l->waiters, w, link);
    }
    {
        int64_t t = d->cfg->policy_timeout;
        struct timeval tv = {(time_t)(t / 1000), (suseconds_t)((t % 1000) * 1000)};
        evtimer_add(&d->timer, &tv);
        d->timer_on = 1;
    }
out:
    json_free(claims);
}
