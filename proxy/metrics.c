/*
 * portcullis: Prometheus text exposition.
 */
#include "metrics.h"
#include "worker.h"
#include "upstream.h"
#include "../policies/schema.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PC_D__COUNT <= sizeof(((struct pc_metrics *)0)->requests[0]) / sizeof(uint64_t),
               "pc_metrics.requests has a column for every decision");

/* Label slots (metrics.h). The bases are the counters a reused slot held
 * for earlier names, subtracted when rendering, so that every name's
 * counters start at 0. */
struct pc_slots {
    char *names[PC_METRIC_SLOTS];
    int refs[PC_METRIC_SLOTS];      /* live generations using the name; < 0: permanent */
    int n;                          /* slots handed out so far */
};

static pthread_mutex_t pc_slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pc_slots pc_rule_slots, pc_policy_slots;
static uint64_t pc_rule_base[PC_METRIC_SLOTS][16], pc_fallback_base[PC_METRIC_SLOTS];
static uint64_t pc_policy_base[PC_METRIC_SLOTS][DEC_Q__COUNT];
static struct pc_worker *const *pc_slot_workers;
static int pc_slot_nworkers;

static uint64_t pc_reloads_ok, pc_reloads_failed, pc_generation;


static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void pc_metrics_set_workers(struct pc_worker *const *workers, int n)
{
    pthread_mutex_lock(&pc_slot_lock);
    pc_slot_workers = workers;
    pc_slot_nworkers = n;
    pthread_mutex_unlock(&pc_slot_lock);
}

/* A slot about to serve a new name: what it counted so far becomes its
 * base. Nothing counts into it now (no live generation uses it). */
static void pc_slot_rebase(const struct pc_slots *t, int s)
{
    if (t == &pc_rule_slots) {
        memset(pc_rule_base[s], 0, sizeof(pc_rule_base[s]));
        pc_fallback_base[s] = 0;
    } else {
        memset(pc_policy_base[s], 0, sizeof(pc_policy_base[s]));
    }
    for (int w = 0; w < pc_slot_nworkers; w++) {
        const struct pc_metrics *m = pc_slot_workers[w]->metrics;
        if (t == &pc_rule_slots) {
            for (int d = 0; d < 16; d++)
                pc_rule_base[s][d] += ld(&m->requests[s][d]);
            pc_fallback_base[s] += ld(&m->fallback[s]);
        } else {
            for (int k = 0; k < DEC_Q__COUNT; k++)
                pc_policy_base[s][k] += ld(&m->dec.queries[s][k]);
        }
    }
}

static int pc_slot(struct pc_slots *t, const char *name)
{
    int slot, free_slot = -1;
    pthread_mutex_lock(&pc_slot_lock);
    if (t->n == 0) {
        t->names[0] = pc_strdup("(none)");
        t->names[PC_METRIC_SLOTS - 1] = pc_strdup("(other)");
        t->refs[0] = t->refs[PC_METRIC_SLOTS - 1] = -1;
        t->n = 1;
    }
    /* the name's own slot, in use or resting: it keeps counting */
    for (slot = 0; slot < t->n; slot++) {
        if (strcmp(t->names[slot], name) == 0)
            goto take;
        if (t->refs[slot] == 0 && free_slot < 0)
            free_slot = slot;
    }
    if (t->n < PC_METRIC_SLOTS - 1) {
        slot = t->n++;
    } else if (free_slot >= 0) {
        slot = free_slot;
        free(t->names[slot]);
        pc_slot_rebase(t, slot);
    } else {
        slot = PC_METRIC_SLOTS - 1;
        goto out;
    }
    t->names[slot] = pc_strdup(name);
take:
    if (t->refs[slot] >= 0)
        t->refs[slot]++;
out:
    pthread_mutex_unlock(&pc_slot_lock);
    return slot;
}

/* Is the slot's name exported: one that a live generation uses, or one of
 * the two permanent slots? (Called with the slot lock held.) */
static int pc_slot_live(const struct pc_slots *t, int s)
{
    return t->names[s] != NULL && t->refs[s] != 0;
}

static void pc_slot_release(struct pc_slots *t, int slot)
{
    pthread_mutex_lock(&pc_slot_lock);
    if (slot > 0 && slot < t->n && t->refs[slot] > 0)
        t->refs[slot]--;
    pthread_mutex_unlock(&pc_slot_lock);
}

int pc_metrics_rule_slot(const char *name)
{
    return pc_slot(&pc_rule_slots, name);
}

int pc_metrics_policy_slot(const char *name)
{
    return pc_slot(&pc_policy_slots, name);
}

void pc_metrics_rule_slot_release(int slot)
{
    pc_slot_release(&pc_rule_slots, slot);
}

void pc_metrics_policy_slot_release(int slot)
{
    pc_slot_release(&pc_policy_slots, slot);
}

void pc_metrics_reload(int ok)
{
    pc_metric_add(ok ? &pc_reloads_ok : &pc_reloads_failed, 1);
}

void pc_metrics_set_generation(uint64_t gen)
{
    __atomic_store_n(&pc_generation, gen, __ATOMIC_RELAXED);
}


static void pc_hist_render(struct pc_buf *b, const char *name, const char *help,
                           struct pc_worker **ws, int nw, size_t offset)
{
    uint64_t buckets[PC_HIST_BUCKETS] = {0}, count = 0, sum = 0;
    for (int w = 0; w < nw; w++) {
        const struct pc_hist *h = (const struct pc_hist *)((const char *)ws[w]->metrics + offset);
        for (int i = 0; i < PC_HIST_BUCKETS; i++)
            buckets[i] += ld(&h->buckets[i]);
        count += ld(&h->count);
        sum += ld(&h->sum_us);
    }
    pc_buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < PC_HIST_BUCKETS - 1; i++) {
        cum += buckets[i];
        pc_buf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", name, pc_hist_bounds[i], (unsigned long long)cum);
    }
    cum += buckets[PC_HIST_BUCKETS - 1];
    pc_buf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    pc_buf_addf(b, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum / 1e6, name, (unsigned long long)count);
}

static void pc_label(struct pc_buf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            pc_buf_addc(b, '\\');
        if (*p == '\n') {
            pc_buf_adds(b, "\\n");
            continue;
        }
        pc_buf_addc(b, *p);
    }
}

void pc_metrics_render(struct pc_buf *b, struct pc_worker **ws, int nw, const struct pc_config *cfg)
{
    static const char *const pol_results[DEC_Q__COUNT] = {"pass", "fail", "error"};
    static const char *const uperr[PC_UPERR__COUNT] = {"refused", "timeout", "reset", "protocol"};
    const struct pc_slots *rt = &pc_rule_slots, *pt = &pc_policy_slots;

    /* the slot lock is held while labels are read: a slot nobody uses may
     * be given a new name meanwhile */
    pthread_mutex_lock(&pc_slot_lock);
    pc_buf_adds(b, "# HELP portcullis_requests_total Requests by matched rule and decision.\n"
                   "# TYPE portcullis_requests_total counter\n");
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (!pc_slot_live(rt, s))
            continue;
        for (int d = 1; d < PC_D__COUNT; d++) {
            uint64_t v = 0;
            for (int w = 0; w < nw; w++)
                v += ld(&ws[w]->metrics->requests[s][d]);
            v -= pc_rule_base[s][d];
            if (v == 0)
                continue;
            pc_buf_adds(b, "portcullis_requests_total{rule=\"");
            pc_label(b, rt->names[s]);
            pc_buf_addf(b, "\",decision=\"%s\"} %llu\n", pc_decision_names[d], (unsigned long long)v);
        }
    }
    pc_buf_adds(b, "# HELP portcullis_fallback_requests_total Requests that reached a fallback rule: a route "
                   "the rule pack does not know.\n# TYPE portcullis_fallback_requests_total counter\n");
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (!pc_slot_live(rt, s))
            continue;
        uint64_t v = 0;
        for (int w = 0; w < nw; w++)
            v += ld(&ws[w]->metrics->fallback[s]);
        v -= pc_fallback_base[s];
        int serving = 0;
        for (size_t i = 0; cfg != NULL && cfg->rules != NULL && i < cfg->rules->n && !serving; i++)
            serving = cfg->rules->rules[i].fallback && cfg->rules->rules[i].metric_slot == s;
        if (v == 0 && !serving)
            continue;
        pc_buf_adds(b, "portcullis_fallback_requests_total{rule=\"");
        pc_label(b, rt->names[s]);
        pc_buf_addf(b, "\"} %llu\n", (unsigned long long)v);
    }
    pthread_mutex_unlock(&pc_slot_lock);
    pc_hist_render(b, "portcullis_request_duration_seconds", "Time from request head to the end of the response.",
                   ws, nw, offsetof(struct pc_metrics, request_duration));

    pc_buf_adds(b, "# HELP portcullis_policy_queries_total Policy queries sent to the database, by result.\n"
                   "# TYPE portcullis_policy_queries_total counter\n");
    pthread_mutex_lock(&pc_slot_lock);
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (!pc_slot_live(pt, s))
            continue;
        for (int k = 0; k < DEC_Q__COUNT; k++) {
            uint64_t v = 0;
            for (int w = 0; w < nw; w++)
                v += ld(&ws[w]->metrics->dec.queries[s][k]);
            v -= pc_policy_base[s][k];
            if (v == 0)
                continue;
            pc_buf_adds(b, "portcullis_policy_queries_total{policy=\"");
            pc_label(b, pt->names[s]);
            pc_buf_addf(b, "\",result=\"%s\"} %llu\n", pol_results[k], (unsigned long long)v);
        }
    }
    pthread_mutex_unlock(&pc_slot_lock);
    pc_hist_render(b, "portcullis_policy_duration_seconds", "Policy query round trips.", ws, nw,
                   offsetof(struct pc_metrics, dec.query_duration));

    uint64_t hits = 0, misses = 0, entries = 0, invals = 0, uerr[PC_UPERR__COUNT] = {0};
    int db_up = 0, db_connecting = 0, db_down = 0;
    for (int w = 0; w < nw; w++) {
        hits += ld(&ws[w]->metrics->dec.cache_hits);
        misses += ld(&ws[w]->metrics->dec.cache_misses);
        invals += ld(&ws[w]->metrics->dec.cache_invalidations);
        for (int k = 0; k < PC_UPERR__COUNT; k++)
            uerr[k] += ld(&ws[w]->metrics->upstream_errors[k]);
        /* what the worker published: never the worker's own objects */
        const struct dec_counters *dc = &ws[w]->metrics->dec;
        entries += ld(&dc->cache_entries);
        db_up += __atomic_load_n(&dc->db_up, __ATOMIC_RELAXED);
        db_connecting += __atomic_load_n(&dc->db_connecting, __ATOMIC_RELAXED);
        db_down += __atomic_load_n(&dc->db_down, __ATOMIC_RELAXED);
    }
    pc_buf_addf(b, "# HELP portcullis_policy_cache_hits_total Decision cache hits.\n"
                   "# TYPE portcullis_policy_cache_hits_total counter\n"
                   "portcullis_policy_cache_hits_total %llu\n", (unsigned long long)hits);
    pc_buf_addf(b, "# HELP portcullis_policy_cache_misses_total Decision cache misses.\n"
                   "# TYPE portcullis_policy_cache_misses_total counter\n"
                   "portcullis_policy_cache_misses_total %llu\n", (unsigned long long)misses);
    pc_buf_addf(b, "# HELP portcullis_policy_cache_invalidations_total Decision caches emptied because the "
                   "database said access changed (NOTIFY, cache.invalidate_query).\n"
                   "# TYPE portcullis_policy_cache_invalidations_total counter\n"
                   "portcullis_policy_cache_invalidations_total %llu\n", (unsigned long long)invals);
    pc_buf_addf(b, "# HELP portcullis_policy_cache_entries Decisions currently cached.\n"
                   "# TYPE portcullis_policy_cache_entries gauge\n"
                   "portcullis_policy_cache_entries %llu\n", (unsigned long long)entries);
    pc_buf_adds(b, "# HELP portcullis_upstream_errors_total Upstream failures by kind.\n"
                   "# TYPE portcullis_upstream_errors_total counter\n");
    for (int k = 0; k < PC_UPERR__COUNT; k++)
        pc_buf_addf(b, "portcullis_upstream_errors_total{kind=\"%s\"} %llu\n", uperr[k], (unsigned long long)uerr[k]);
    pc_buf_addf(b, "# HELP portcullis_db_connections Database connections by state.\n"
                   "# TYPE portcullis_db_connections gauge\n"
                   "portcullis_db_connections{state=\"up\"} %d\n"
                   "portcullis_db_connections{state=\"connecting\"} %d\n"
                   "portcullis_db_connections{state=\"down\"} %d\n", db_up, db_connecting, db_down);
    pc_buf_addf(b, "# HELP portcullis_connections_active Client connections open now.\n"
                   "# TYPE portcullis_connections_active gauge\n"
                   "portcullis_connections_active %lld\n",
                (long long)__atomic_load_n(&pc_active_connections, __ATOMIC_RELAXED));
    pc_buf_addf(b, "# HELP portcullis_config_reloads_total Config reloads by result.\n"
                   "# TYPE portcullis_config_reloads_total counter\n"
                   "portcullis_config_reloads_total{result=\"success\"} %llu\n"
                   "portcullis_config_reloads_total{result=\"failure\"} %llu\n",
                (unsigned long long)ld(&pc_reloads_ok), (unsigned long long)ld(&pc_reloads_failed));
    pc_buf_addf(b, "# HELP portcullis_config_generation The config generation in use.\n"
                   "# TYPE portcullis_config_generation gauge\n"
                   "portcullis_config_generation %llu\n", (unsigned long long)ld(&pc_generation));
    pol_report_metrics(b);
    pc_buf_addf(b, "# HELP portcullis_build_info Build information.\n"
                   "# TYPE portcullis_build_info gauge\n"
                   "portcullis_build_info{version=\"%s\"} 1\n", PC_VERSION);
}
