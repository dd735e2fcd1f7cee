/*
 * portcullis: health_path and ready_path, answered by the proxy itself,
 * never forwarded, independent of rules.
 */
#ifndef PC_HEALTH_H
#define PC_HEALTH_H

struct pc_req;
struct pc_worker;

/* Handle r if it targets health_path or ready_path; 1 if handled. */
int pc_health_handle(struct pc_req *r);
/* The first of n workers that has policies but no database connection up,
 * or -1: readiness on either listener holds only when every worker can
 * decide. */
int pc_health_db_unready(struct pc_worker *const *ws, int n);
/* The readiness probe's TCP connect to the upstream finished. */
void pc_health_probe_done(struct pc_req *r, int ok, const char *why);

#endif
