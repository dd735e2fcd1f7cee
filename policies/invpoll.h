/*
 * portcullis: revocation by polling (cache.invalidate_query). Where the
 * database cannot notify (MySQL has no LISTEN/NOTIFY), a query that returns
 * one value - a change counter that triggers bump - is run every
 * cache.invalidate_poll on a pool's first connection; when its value
 * changes, the pool's owner empties its decision cache (db_events.invalidate).
 *
 * The drivers run the query; this compares what it returns.
 */
#ifndef PC_INVPOLL_H
#define PC_INVPOLL_H

#include <stddef.h>

struct inv_poll {
    int have;       /* a value was read in this session */
    int last_null;  /* ... and it was no row or SQL NULL */
    char *last;     /* ... or these bytes */
    size_t last_len;
    int failing;    /* the last run failed (said once per streak) */
};

/*
 * One run of the query, on the connection's session: value (NULL: no row
 * or SQL NULL), or err when it failed. Returns 1 when the cache must be
 * emptied: the first run of a session (a change may have been missed while
 * there was none), a value that differs from the last, or a failure
 * (nothing shows that nothing changed).
 */
int inv_poll_result(struct inv_poll *ip, int worker, const char *value, size_t len, const char *err);
/* A new session (the connection came up again): its first run empties
 * the cache. */
void inv_poll_reset(struct inv_poll *ip);
void inv_poll_free(struct inv_poll *ip);

#endif
