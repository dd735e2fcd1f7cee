/*
 * portcullis: the PostgreSQL driver (db.h): asynchronous connections for
 * one worker.
 *
 * Connections are opened with PQconnectStartParams/PQconnectPoll under our
 * own connect timer, set default_transaction_read_only, statement_timeout
 * and lock_timeout, LISTEN for invalidations (first connection only),
 * prepare every policy, then enter pipeline mode: one connection carries
 * queries from many requests, each followed by a sync so that one error
 * never poisons another request's query.
 *
 * The first connection also runs cache.invalidate_query every
 * cache.invalidate_poll, in the same pipeline (invpoll.h).
 *
 * A connection that dies fails its queries (the decision becomes 503) and
 * reconnects with backoff. A connection whose oldest query is far past the
 * policy budget is presumed wedged and is replaced.
 */
#ifndef PC_PG_H
#define PC_PG_H

#include <stddef.h>

#include "db.h"

/*
 * libpq keywords for a database section: url first (expanded as a conninfo
 * or URI), then each key given on its own, which overrides it. Empty
 * values are left out. keys/vals need PG_MAX_PARAMS entries.
 */
#define PG_MAX_PARAMS 20
struct pol_db;
void pg_conn_params(const struct pol_db *db, const char *appname, const char **keys,
                    const char **vals, char *timeout, size_t timeout_len);

/* The synchronous check (policy.h pol_check_database) on PostgreSQL. */
int pg_check(const struct pol_gen *gen, char **errors, char **warnings);

#endif
