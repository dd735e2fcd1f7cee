/*
 * portcullis base: counters and latency histograms that one thread writes
 * (relaxed atomic adds: no contention) and another reads (relaxed loads).
 */
#ifndef PC_HIST_H
#define PC_HIST_H

#include <stdint.h>

#define PC_HIST_BUCKETS 15

/* Label values (rule and policy names) get one of this many slots in
 * every counter array; see proxy/metrics.h. */
#define PC_LABEL_SLOTS 1024

struct pc_hist {
    uint64_t buckets[PC_HIST_BUCKETS]; /* last one is +Inf */
    uint64_t count;
    uint64_t sum_us;
};

/* The upper bounds of buckets 0 .. PC_HIST_BUCKETS-2, in seconds. */
extern const double pc_hist_bounds[PC_HIST_BUCKETS - 1];

static inline void pc_metric_add(uint64_t *c, uint64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

void pc_hist_observe(struct pc_hist *h, int64_t us);

#endif
