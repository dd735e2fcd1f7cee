/*
 * portcullis: health_path and ready_path, answered by the proxy itself,
 * never forwarded, independent of rules.
 */
#ifndef PC_HEALTH_H
#define PC_HEALTH_H

#include <stddef.h>

struct pc_req;
struct pc_worker;
struct pc_buf;

/* Answer r, which judge found to target health_path or ready_path. */
void pc_health_handle(struct pc_req *r);
/* Readiness on either listener holds only when every worker can decide:
 * 1 when each of the n workers that has policies has a database connection
 * up; else 0, and why says which has none. */
int pc_health_db_ready(struct pc_worker *const *ws, int n, char *why, size_t whylen);
/* The readiness body, on either listener: {"status":"ready"} when dep is
 * NULL, else {"status":"unavailable","failing":dep,"message":why}. */
void pc_health_body(struct pc_buf *b, const char *dep, const char *why);
/* The readiness probe's TCP connect to the upstream finished. */
void pc_health_probe_done(struct pc_req *r, int ok, const char *why);

#endif
