/*
 * portcullis: verdicts outside the server. A request written as text is
 * judged by pc_judge() -- the server's own code -- against the configured
 * database, with every policy of its rule evaluated and traced. Shared by
 * `portcullis explain` (one request, printed) and `portcullis test` (many,
 * compared with what a test file expects).
 */
#ifndef PC_VERDICT_H
#define PC_VERDICT_H

#include "judge.h"

struct pc_metrics;

/* What judging needs, once for many requests: a config generation, an
 * event loop, a decision engine (its database connections and cache) and
 * a token cache. */
struct pc_offline {
    struct pc_config *cfg;
    struct event_base *base;
    struct dec_ctx *dec;
    struct tokcache *tokens;
    struct pc_metrics *metrics;
};

/* One judged request. */
struct pc_verdict {
    struct pc_trace trace;      /* first: the judge's callback finds the verdict from r->trace */
    struct pc_req *r;           /* rule, decision, reason, captures, subject */
    struct event_base *base;
    int done;
    int status;                 /* PC_JUDGE_FORWARD, PC_JUDGE_LOCAL, or the HTTP status answered */
    const char *code;
    char message[256];
    const char *unparsed;       /* the head did not parse: why (decision reject, status the answer) */
};

/* Load a config to judge with: parsed and installed, policies not checked
 * against the database (they are prepared when it connects). NULL with
 * *errors (malloc'd, one file:line:col line each). */
struct pc_config *pc_offline_load(const char *path, char **errors);
/* Start judging under cfg (the caller's reference passes to o). */
void pc_offline_open(struct pc_offline *o, struct pc_config *cfg);
void pc_offline_close(struct pc_offline *o);

/* A request head: "METHOD URL HTTP/1.1", a Host header (the URL's
 * authority when it is absolute, else localhost) unless headers has one,
 * then headers, each "Name: value". */
void pc_offline_head(struct pc_buf *head, const char *method, const char *url, const char *const *headers,
                     size_t nheaders);

/* Judge one head into v (zeroed first); returns when the verdict is known. */
void pc_verdict_run(struct pc_offline *o, const char *head, size_t len, struct pc_verdict *v);
/* The same with operator data from view (policies/data.h; NULL: the
 * config's files). */
struct pol_data_view;
void pc_verdict_run_view(struct pc_offline *o, const char *head, size_t len, const struct pol_data_view *view,
                         struct pc_verdict *v);
/* The request and everything it allocated. */
void pc_verdict_clear(struct pc_verdict *v);

#endif
