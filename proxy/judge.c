/*
 * portcullis: judging a request (see judge.h).
 *
 * Order matters and is the same for every request:
 *   1. canonical path (400 on any form two readers could disagree on)
 *   2. body size limit (413)
 *   3. the proxy's own endpoints (health_path, ready_path)
 *   4. the first matching rule, or `default`
 *   5. for allow: rules, every credential must verify and agree (401)
 *   6. the rule's policies (403 on no pass, 503 on error or timeout)
 */
#include "judge.h"
#include "reply.h"
#include "../policies/data.h"
#include "../policies/gen.h"
#include "../policies/identity.h"
#include "../policies/tokcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char pc_forbidden_msg[] = "You do not have permission to access this resource.";

/*
 * Every verdict goes through here: the decision, the reason logged, and
 * what the caller answers (status PC_JUDGE_FORWARD, PC_JUDGE_LOCAL or an
 * HTTP status with Dify's code and message). A refusal (403 or 503) under
 * a shadow rule is logged as shadow_deny and forwarded.
 */
static void judge_verdict(struct pc_req *r, enum pc_decision decision, const char *reason, int status,
                          const char *code, const char *message)
{
    if (reason != NULL)
        r->reason = reason;
    if ((decision == PC_D_DENY || decision == PC_D_ERROR) && r->rule != NULL && r->rule->shadow) {
        decision = PC_D_SHADOW_DENY;
        status = PC_JUDGE_FORWARD;
        code = message = NULL;
    }
    r->decision = decision;
    r->judge_fn(r, status, code, message);
}

static void judge_forbidden(struct pc_req *r, const char *reason)
{
    judge_verdict(r, PC_D_DENY, reason, 403, "forbidden", pc_forbidden_msg);
}

static void judge_unauthenticated(struct pc_req *r, const char *reason, const char *message)
{
    judge_verdict(r, PC_D_UNAUTH, reason, 401, "unauthorized", message);
}

static void judge_conclude(struct pc_req *r)
{
    enum dec_result res = r->dec_res;
    const char *reason = r->dec.reason; /* it lives in r */
    r->deciding = 0;
    r->t_policy_end = pc_now_us();
    if (res == DEC_ALLOW)
        judge_verdict(r, PC_D_ALLOW, reason, PC_JUDGE_FORWARD, NULL, NULL);
    else if (res == DEC_DENY)
        judge_forbidden(r, reason);
    else
        judge_verdict(r, PC_D_ERROR, reason, 503, "service_unavailable", "authorization is temporarily unavailable");
}

static void judge_base_decided(struct dec_request *d, enum dec_result res, const char *reason)
{
    struct pc_req *r = d->done_arg;
    PC_UNUSED(reason);
    r->base_deciding = 0;
    r->base_res = res;
    r->cache_state = r->cache_state == 1 && d->cache_hit ? 1 : 2;
    r->data_decided = res == DEC_ERROR ? PC_DATA_UNKNOWN : res != r->dec_res ? PC_DATA_YES : PC_DATA_NO;
    judge_conclude(r);
}

/* Could the data have decided d? Only through a policy that binds it: the
 * one that allowed, or one that found no row. And only when the data
 * bound is not empty already. */
static int judge_data_may_decide(const struct dec_request *d, enum dec_result res)
{
    const struct dec_plan *p = d->plan;
    const struct pol_data *data = d->cfg->data;
    const struct pol_data_view *v = d->data_view ? d->data_view : data->full;
    if (!p->binds_data || res == DEC_ERROR)
        return 0;
    if (memcmp(v->digest, data->empty->digest, v->n * sizeof(*v->digest)) == 0)
        return 0;
    for (size_t i = 0; i < p->nsteps; i++) {
        enum dec_outcome o = d->waits[i].outcome;
        if (res == DEC_ALLOW && o == DEC_O_PASS)
            return dec_step_binds_data(p, i);
        if (res == DEC_DENY && o == DEC_O_FAIL && dec_step_binds_data(p, i))
            return 1;
    }
    return 0;
}

static void judge_decided(struct dec_request *d, enum dec_result res, const char *reason)
{
    struct pc_req *r = (struct pc_req *)((char *)d - offsetof(struct pc_req, dec));
    PC_UNUSED(reason);
    r->dec_res = res;
    r->cache_state = d->cache_hit ? 1 : 2;
    if (d->plan->binds_data)
        r->data_decided = PC_DATA_NO;
    if (!judge_data_may_decide(d, res)) {
        judge_conclude(r);
        return;
    }
    /* the same request as if no data file were given: whether an entry
     * decided is what the access log and explain report */
    struct dec_request *b = pc_pool_alloc(&r->pool, sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->cfg = d->cfg;
    b->plan = d->plan;
    b->captures = d->captures;
    b->capture_lens = d->capture_lens;
    b->capture_present = d->capture_present;
    b->subject = d->subject;
    b->subject_len = d->subject_len;
    b->payload = d->payload;
    b->payload_len = d->payload_len;
    b->data_view = d->cfg->data->empty;
    b->done = judge_base_decided;
    b->done_arg = r;
    r->dec_base = b;
    r->base_deciding = 1;
    dec_start(r->dec_ctx, b);
}

void pc_judge_cancel(struct pc_req *r)
{
    if (r->deciding) {
        dec_cancel(&r->dec);
        r->deciding = 0;
    }
    if (r->base_deciding) {
        dec_cancel(r->dec_base);
        r->base_deciding = 0;
    }
}

static const char *const judge_source_kinds[] = {"cookie", "header", "query"};

/* Only with a trace (explain): the common path formats nothing. */
static void judge_trace_cred(struct pc_req *r, const struct id_source *src, int ok, const char *why,
                             const char *subject, size_t subject_len)
{
    struct pc_trace *t = r->trace;
    if (t == NULL || t->ncreds >= PC_TRACE_MAX)
        return;
    snprintf(t->creds[t->ncreds].source, sizeof(t->creds[0].source), "%s:%s", judge_source_kinds[src->kind],
             src->name);
    t->creds[t->ncreds].ok = ok;
    snprintf(t->creds[t->ncreds].why, sizeof(t->creds[0].why), "%s", why ? why : "");
    snprintf(t->creds[t->ncreds].subject, sizeof(t->creds[0].subject), "%.*s",
             (int)PC_MIN(subject_len, (size_t)79), subject ? subject : "");
    t->ncreds++;
}

static void judge_identity(struct pc_req *r, struct dec_ctx *dec, struct tokcache *tokens)
{
    const struct id_config *idc = r->cfg->identity;
    struct id_cred creds[ID_MAX_CREDS];
    int n = id_collect(idc, r->h.headers, r->h.nheaders, r->cookie, r->cookie_len,
                       r->canon.has_query ? r->canon.query : NULL, r->canon.query_len, creds, &r->pool);
    if (n <= 0) {
        const char *why = n < 0 ? "too many credentials" : "no credential";
        judge_unauthenticated(r, why, why);
        return;
    }
    double now = pc_wall_s();
    int bad = 0, disagree = 0;
    for (int i = 0; i < n; i++) {
        const char *why = NULL;
        const struct id_source *src = &idc->sources[creds[i].source];
        struct tok_result t;
        /* copies in the request's pool: the token cache may evict its
         * entry while we wait for the database; the claims only when a
         * policy reads them */
        if (tokcache_verify(tokens, idc, r->cfg->generation, r->cfg->pol->cache.token_ttl, creds[i].token,
                            creds[i].len, now, &r->pool, r->rule->plan.needs_claims, &t, &why) != 0) {
            judge_trace_cred(r, src, 0, why, NULL, 0);
            if (!bad) {
                snprintf(r->reason_buf, sizeof(r->reason_buf), "invalid credential (%s:%s): %s",
                         judge_source_kinds[src->kind], src->name, why ? why : "?");
                r->reason = r->reason_buf;
            }
            bad = 1;
            if (r->trace == NULL)
                break;
            continue;
        }
        judge_trace_cred(r, src, 1, NULL, t.subject, t.subject_len);
        if (r->subject == NULL) {
            r->subject = t.subject;
            r->subject_len = t.subject_len;
            r->payload = t.payload;
            r->payload_len = t.payload_len;
        } else if (!pc_memeq(r->subject, r->subject_len, t.subject, t.subject_len)) {
            disagree = 1;
            if (r->trace == NULL)
                break;
        }
    }
    if (bad) {
        judge_unauthenticated(r, NULL, "invalid credential"); /* the reason names the credential */
        return;
    }
    if (disagree) {
        judge_unauthenticated(r, "credentials disagree", "credentials name different users");
        return;
    }

    r->t_policy = pc_now_us();
    r->dec.cfg = r->cfg->pol;
    r->dec.plan = &r->rule->plan;
    r->dec.captures = r->match.values;
    r->dec.capture_lens = r->match.lens;
    r->dec.capture_present = r->match.present;
    r->dec.subject = r->subject;
    r->dec.subject_len = r->subject_len;
    r->dec.payload = r->payload;
    r->dec.payload_len = r->payload_len;
    r->dec.data_view = r->data_view;
    r->dec.done = judge_decided;
    r->deciding = 1;
    r->dec_ctx = dec;
    dec_start(dec, &r->dec);
}

void pc_judge(struct pc_req *r, struct dec_ctx *dec, struct tokcache *tokens, pc_judge_fn fn)
{
    const char *why = NULL;
    r->judge_fn = fn;

    /* the Cookie headers joined once: credentials are parsed from the very
     * value the upstream receives */
    r->cookie = id_joined_cookies(r->h.headers, r->h.nheaders, &r->cookie_len, &r->pool);
    r->pathbuf = pc_pool_alloc(&r->pool, r->h.target_len + 2);
    r->matchbuf = pc_pool_alloc(&r->pool, (r->h.target_len + 2) * 2 + 64);
    if (canon_target(r->h.target, r->h.target_len, r->h.method_id == H1_M_OPTIONS, r->pathbuf, &r->canon,
                     &why) != 0) {
        judge_verdict(r, PC_D_REJECT, why, 400, "bad_request", why);
        return;
    }
    if (r->req.too_large) {
        judge_verdict(r, PC_D_REJECT, "body larger than limits.body_bytes", 413, "request_entity_too_large",
                      "request body larger than the limit");
        return;
    }
    if (!r->canon.asterisk && (strcmp(r->canon.path, r->cfg->health_path) == 0 ||
                               strcmp(r->canon.path, r->cfg->ready_path) == 0)) {
        judge_verdict(r, PC_D_LOCAL, NULL, PC_JUDGE_LOCAL, NULL, NULL);
        return;
    }
    if (!r->canon.asterisk) {
        int rc = rule_match(r->cfg->rules, r->h.method_id, r->canon.path,
                            r->canon.path_len, r->canon.query, r->canon.query_len,
                            r->matchbuf, &r->match, &why);
        if (rc != 0) {
            judge_verdict(r, PC_D_REJECT, why, rc, pc_status_code_name(rc), why);
            return;
        }
    }
    r->rule = r->match.rule;
    if (r->rule == NULL) {
        if (r->cfg->default_forward)
            judge_verdict(r, PC_D_FORWARD, "no rule matched (default: forward)", PC_JUDGE_FORWARD, NULL, NULL);
        else
            judge_forbidden(r, "no rule matched (default: deny)");
        return;
    }
    switch (r->rule->action) {
    case RULE_FORWARD:
        judge_verdict(r, PC_D_FORWARD, NULL, PC_JUDGE_FORWARD, NULL, NULL);
        return;
    case RULE_DENY:
        judge_forbidden(r, r->rule->shadow ? "rule action: deny (shadow)" : "rule action: deny");
        return;
    case RULE_ALLOW:
        judge_identity(r, dec, tokens);
        return;
    }
}
