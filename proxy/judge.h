/*
 * portcullis: judging a request. Canonical path, rule, identity and the
 * decision, exactly as the server runs them; conn.c acts on the verdict and
 * `portcullis explain` prints it.
 */
#ifndef PC_JUDGE_H
#define PC_JUDGE_H

#include "worker.h"

/* Verdicts passed to the callback. */
#define PC_JUDGE_FORWARD 0   /* forward upstream */
#define PC_JUDGE_LOCAL (-1)  /* health_path / ready_path: the proxy answers */

/* status: PC_JUDGE_FORWARD, PC_JUDGE_LOCAL, or the HTTP status to answer. */
typedef void (*pc_judge_fn)(struct pc_req *r, int status, const char *code, const char *message);

/* Optional record of what was checked, for explain. */
#define PC_TRACE_MAX 16
struct pc_trace {
    int ncreds;
    struct {
        char source[80];
        int ok;
        char why[96];
        char subject[80];
    } creds[PC_TRACE_MAX];
    int npolicies;
    struct {
        char name[64];
        char params[512];
        char result[128];
    } policies[PC_TRACE_MAX];
};

/*
 * Judge r (its head is parsed into r->h). Calls fn exactly once, possibly
 * before returning; r may be gone after fn.
 */
void pc_judge(struct pc_req *r, struct dec_ctx *dec, struct tokcache *tokens, pc_judge_fn fn);
/* The request goes away while it is being decided: stop deciding. */
void pc_judge_cancel(struct pc_req *r);

#endif
