/*
 * portcullis base: histograms (see hist.h).
 */
#include "hist.h"

const double pc_hist_bounds[PC_HIST_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void pc_hist_observe(struct pc_hist *h, int64_t us)
{
    double s = (double)us / 1e6;
    int i;
    for (i = 0; i < PC_HIST_BUCKETS - 1; i++)
        if (s <= pc_hist_bounds[i])
            break;
    pc_metric_add(&h->buckets[i], 1);
    pc_metric_add(&h->count, 1);
    pc_metric_add(&h->sum_us, (uint64_t)(us > 0 ? us : 0));
}
