/*
 * portcullis: revocation by polling (see invpoll.h).
 */
#include "invpoll.h"
#include "../lib/base.h"
#include "../lib/log.h"

#include <stdlib.h>
#include <string.h>

void inv_poll_reset(struct inv_poll *ip)
{
    free(ip->last);
    ip->last = NULL;
    ip->last_len = 0;
    ip->last_null = 0;
    ip->have = 0;
}

int inv_poll_result(struct inv_poll *ip, int worker, const char *value, size_t len, const char *err)
{
    if (err != NULL) {
        if (!ip->failing)
            pc_log(PC_LOG_WARN, "worker %d: cache.invalidate_query failed: %s; until it answers, every run "
                                "empties the decision cache", worker, err);
        ip->failing = 1;
        inv_poll_reset(ip);
        return 1;
    }
    if (ip->failing)
        pc_log(PC_LOG_INFO, "worker %d: cache.invalidate_query answers again", worker);
    ip->failing = 0;
    int same = ip->have && (value == NULL ? ip->last_null
                                          : !ip->last_null && ip->last_len == len && memcmp(ip->last, value, len) == 0);
    if (same)
        return 0;
    inv_poll_reset(ip);
    ip->have = 1;
    ip->last_null = value == NULL;
    if (value != NULL) {
        ip->last = pc_malloc(len ? len : 1);
        memcpy(ip->last, value, len);
        ip->last_len = len;
    }
    return 1;
}

void inv_poll_free(struct inv_poll *ip)
{
    inv_poll_reset(ip);
    ip->failing = 0;
}
