/*
 * portcullis: Prometheus metrics.
 *
 * Each worker owns a pc_metrics and updates it with relaxed atomic adds
 * (no contention: one writer). The admin listener sums all workers when
 * scraped. Label values are bounded: rule and policy names come from the
 * config (registered into at most PC_METRIC_SLOTS slots), never from
 * requests.
 */
#ifndef PC_METRICS_H
#define PC_METRICS_H

#include <stdint.h>

#include "../lib/base.h"
#include "../lib/hist.h"
#include "../policies/decide.h"

#define PC_METRIC_SLOTS PC_LABEL_SLOTS
enum pc_upstream_error { PC_UPERR_REFUSED, PC_UPERR_TIMEOUT, PC_UPERR_RESET, PC_UPERR_PROTOCOL, PC_UPERR__COUNT };

struct pc_metrics {
    uint64_t requests[PC_METRIC_SLOTS][16];  /* [rule slot][decision] */
    uint64_t fallback[PC_METRIC_SLOTS];      /* [rule slot]: requests that reached a fallback: rule */
    struct pc_hist request_duration;
    uint64_t upstream_errors[PC_UPERR__COUNT];
    struct dec_counters dec;                 /* the worker's decision engine publishes here */
};

struct pc_worker;

/*
 * Slots for label values; thread-safe, taken when a generation is
 * installed and given back when the last reference to it goes. Slot 0 is
 * "(none)" (no rule matched), the last slot is "(other)" when every other
 * is in use. A name keeps its slot while any live generation uses it; a
 * slot nobody uses is not exported, and serves a new name later: its
 * counters then start at 0 for that name (the old name's counts are kept
 * as a base, subtracted when rendering).
 */
int pc_metrics_rule_slot(const char *name);
int pc_metrics_policy_slot(const char *name);
void pc_metrics_rule_slot_release(int slot);
void pc_metrics_policy_slot_release(int slot);
/* The workers whose counters a reused slot's base is read from. */
void pc_metrics_set_workers(struct pc_worker *const *workers, int n);

/* Process-wide values. */
void pc_metrics_reload(int ok);
void pc_metrics_set_generation(uint64_t gen);

struct pc_worker;
struct pc_config;
/* Render every worker's metrics in Prometheus text format. cfg is the
 * generation serving: its fallback rules are exported even at 0, so that
 * an alert sees the counter before the first request reaches one. */
void pc_metrics_render(struct pc_buf *b, struct pc_worker **workers, int nworkers, const struct pc_config *cfg);

#endif
