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

static pthread_mutex_t pc_slot_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pc_rule_names[PC_METRIC_SLOTS];
static char *pc_policy_names[PC_METRIC_SLOTS];
static int pc_rule_nslots, pc_policy_nslots;

static uint64_t pc_reloads_ok, pc_reloads_failed, pc_generation;


static int pc_slot(char **names, int *n, const char *name)
{
    int slot;
    pthread_mutex_lock(&pc_slot_lock);
    if (*n == 0) {
        names[0] = pc_strdup("(none)");
        names[PC_METRIC_SLOTS - 1] = pc_strdup("(other)");
        *n = 1;
    }
    for (slot = 0; slot < *n; slot++)
        if (strcmp(names[slot], name) == 0)
            goto out;
    if (*n < PC_METRIC_SLOTS - 1) {
        names[*n] = pc_strdup(name);
        slot = (*n)++;
    } else {
        slot = PC_METRIC_SLOTS - 1;
    }
out:
    pthread_mutex_unlock(&pc_slot_lock);
    return slot;
}

int pc_metrics_rule_slot(const char *name)
{
    return pc_slot(pc_rule_names, &pc_rule_nslots, name);
}

int pc_metrics_policy_slot(const char *name)
{
    return pc_slot(pc_policy_names, &pc_policy_nslots, name);
}

void pc_metrics_reload(int ok)
{
    pc_metric_add(ok ? &pc_reloads_ok : &pc_reloads_failed, 1);
}

void pc_metrics_set_generation(uint64_t gen)
{
    __atomic_store_n(&pc_generation, gen, __ATOMIC_RELAXED);
}

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
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
    char *rnames[PC_METRIC_SLOTS], *pnames[PC_METRIC_SLOTS];
    int nr, np;

    pthread_mutex_lock(&pc_slot_lock);
    memcpy(rnames, pc_rule_names, sizeof(rnames));
    memcpy(pnames, pc_policy_names, sizeof(pnames));
    nr = pc_rule_nslots;
    np = pc_policy_nslots;
    pthread_mutex_unlock(&pc_slot_lock);

    pc_buf_adds(b, "# HELP portcullis_requests_total Requests by matched rule and decision.\n"
                   "# TYPE portcullis_requests_total counter\n");
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (rnames[s] == NULL || (s >= nr && s != PC_METRIC_SLOTS - 1))
            continue;
        for (int d = 1; d < PC_D__COUNT; d++) {
            uint64_t v = 0;
            for (int w = 0; w < nw; w++)
                v += ld(&ws[w]->metrics->requests[s][d]);
            if (v == 0)
                continue;
            pc_buf_adds(b, "portcullis_requests_total{rule=\"");
            pc_label(b, rnames[s]);
            pc_buf_addf(b, "\",decision=\"%s\"} %llu\n", pc_decision_names[d], (unsigned long long)v);
        }
    }
    pc_buf_adds(b, "# HELP portcullis_fallback_requests_total Requests that reached a fallback rule: a route "
                   "the rule pack does not know.\n# TYPE portcullis_fallback_requests_total counter\n");
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (rnames[s] == NULL || (s >= nr && s != PC_METRIC_SLOTS - 1))
            continue;
        uint64_t v = 0;
        for (int w = 0; w < nw; w++)
            v += ld(&ws[w]->metrics->fallback[s]);
        int serving = 0;
        for (size_t i = 0; cfg != NULL && cfg->rules != NULL && i < cfg->rules->n && !serving; i++)
            serving = cfg->rules->rules[i].fallback && cfg->rules->rules[i].metric_slot == s;
        if (v == 0 && !serving)
            continue;
        pc_buf_adds(b, "portcullis_fallback_requests_total{rule=\"");
        pc_label(b, rnames[s]);
        pc_buf_addf(b, "\"} %llu\n", (unsigned long long)v);
    }
    pc_hist_render(b, "portcullis_request_duration_seconds", "Time from request head to the end of the response.",
                   ws, nw, offsetof(struct pc_metrics, request_duration));

    pc_buf_adds(b, "# HELP portcullis_policy_queries_total Policy queries sent to the database, by result.\n"
                   "# TYPE portcullis_policy_queries_total counter\n");
    for (int s = 0; s < PC_METRIC_SLOTS; s++) {
        if (pnames[s] == NULL || (s >= np && s != PC_METRIC_SLOTS - 1))
            continue;
        for (int k = 0; k < DEC_Q__COUNT; k++) {
            uint64_t v = 0;
            for (int w = 0; w < nw; w++)
                v += ld(&ws[w]->metrics->dec.queries[s][k]);
            if (v == 0)
                continue;
            pc_buf_adds(b, "portcullis_policy_queries_total{policy=\"");
            pc_label(b, pnames[s]);
            pc_buf_addf(b, "\",result=\"%s\"} %llu\n", pol_results[k], (unsigned long long)v);
        }
    }
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
