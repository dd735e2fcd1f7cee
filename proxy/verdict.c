/*
 * portcullis: verdicts outside the server (see verdict.h).
 */
#include "verdict.h"
#include "metrics.h"
#include "../policies/data.h"
#include "../policies/gen.h"
#include "../policies/policy.h"
#include "../policies/tokcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pc_config *pc_offline_load(const char *path, char **errors)
{
    struct pc_config *cfg = cfg_load(path, NULL, errors);
    if (cfg == NULL)
        return NULL;
    cfg->generation = 1;
    /* nothing is forwarded: an unresolved upstream does not matter here */
    free(cfg_install(cfg));
    return cfg;
}

void pc_offline_open(struct pc_offline *o, struct pc_config *cfg)
{
    memset(o, 0, sizeof(*o));
    /* a command's output is for people: text, and only what went wrong */
    pc_log_configure(PC_LOG_TEXT, PC_LOG_WARN);
    o->cfg = cfg;
    o->base = event_base_new();
    o->metrics = pc_calloc(1, sizeof(*o->metrics));
    o->dec = dec_ctx_new(o->base, 0, 1, cfg->pol, NULL, &o->metrics->dec);
    o->tokens = tokcache_new(64);
}

void pc_offline_close(struct pc_offline *o)
{
    tokcache_free(o->tokens);
    dec_ctx_free(o->dec);
    if (o->base != NULL)
        event_base_free(o->base);
    free(o->metrics);
    cfg_unref(o->cfg);
    memset(o, 0, sizeof(*o));
}

void pc_offline_head(struct pc_buf *head, const char *method, const char *url, const char *const *headers,
                     size_t nheaders)
{
    int has_host = 0;
    for (size_t i = 0; i < nheaders; i++)
        if (strncasecmp(headers[i], "host:", 5) == 0)
            has_host = 1;
    pc_buf_addf(head, "%s %s HTTP/1.1\r\n", method, url);
    if (!has_host) {
        const char *authority = strstr(url, "://");
        if (authority != NULL) {
            authority += 3;
            pc_buf_addf(head, "Host: %.*s\r\n", (int)PC_MIN(strcspn(authority, "/?#"), (size_t)255), authority);
        } else {
            pc_buf_adds(head, "Host: localhost\r\n");
        }
    }
    for (size_t i = 0; i < nheaders; i++)
        pc_buf_addf(head, "%s\r\n", headers[i]);
    pc_buf_adds(head, "\r\n");
}

/* ---- the trace: every policy bound, and what it came to ---- */

static struct pc_req *verdict_req(struct dec_request *d)
{
    return (struct pc_req *)((char *)d - offsetof(struct pc_req, dec));
}

static void verdict_bind(struct dec_request *d, int policy, const char *const *values, const int *lengths,
                         size_t n)
{
    struct pc_trace *t = verdict_req(d)->trace;
    const struct pol_policy *p = &d->cfg->set->p[policy];
    if (t->npolicies >= PC_TRACE_MAX)
        return;
    int k = t->npolicies++;
    snprintf(t->policies[k].name, sizeof(t->policies[k].name), "%s", p->name);
    struct pc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        pc_buf_addf(&b, "%s:%s=", i ? ", " : "", p->params[i]);
        if (strncmp(p->params[i], "data.", 5) == 0 && values[i] != NULL) {
            /* a file's worth of JSON: say how much */
            const struct pol_data_view *dv = d->data_view ? d->data_view : d->cfg->data->full;
            int slot = pol_data_slot(d->cfg->data, p->params[i] + 5);
            size_t rows = slot >= 0 ? dv->rows[slot] : 0;
            pc_buf_addf(&b, "(%zu row%s)", rows, rows == 1 ? "" : "s");
            continue;
        }
        if (values[i] == NULL) {
            pc_buf_adds(&b, "NULL");
            continue;
        }
        pc_buf_addc(&b, '\'');
        pc_buf_add_json_str(&b, values[i], (size_t)lengths[i]);
        pc_buf_addc(&b, '\'');
    }
    snprintf(t->policies[k].params, sizeof(t->policies[k].params), "%s", b.len ? b.p : "");
    snprintf(t->policies[k].result, sizeof(t->policies[k].result), "pending");
    pc_buf_free(&b);
}

static void verdict_outcome(struct dec_request *d, int policy, int outcome, const char *detail)
{
    struct pc_trace *t = verdict_req(d)->trace;
    const char *name = d->cfg->set->p[policy].name;
    for (int k = 0; k < t->npolicies; k++) {
        char *res = t->policies[k].result;
        size_t cap = sizeof(t->policies[k].result);
        if (strcmp(t->policies[k].name, name) != 0)
            continue;
        if (outcome > 0)
            snprintf(res, cap, "pass (a row)");
        else if (outcome == 0)
            snprintf(res, cap, "fail (no row)");
        else if (outcome == -2)
            snprintf(res, cap, "%s", detail ? detail : "left out");
        else
            snprintf(res, cap, "ERROR: %s", detail ? detail : "?");
    }
}

static void verdict_done(struct pc_req *r, int status, const char *code, const char *message)
{
    struct pc_verdict *v = (struct pc_verdict *)r->trace;
    v->status = status;
    v->code = code;
    snprintf(v->message, sizeof(v->message), "%s", message ? message : "");
    v->done = 1;
    event_base_loopbreak(v->base);
}

void pc_verdict_run(struct pc_offline *o, const char *head, size_t len, struct pc_verdict *v)
{
    pc_verdict_run_view(o, head, len, NULL, v);
}

void pc_verdict_run_view(struct pc_offline *o, const char *head, size_t len, const struct pol_data_view *view,
                         struct pc_verdict *v)
{
    const char *why = NULL;
    struct pc_req *r = pc_calloc(1, sizeof(*r));

    memset(v, 0, sizeof(*v));
    v->r = r;
    v->base = o->base;
    r->cfg = o->cfg;
    r->trace = &v->trace;
    r->data_view = view;
    r->head = pc_pool_strndup(&r->pool, head, len);
    r->head_len = len;
    int prc = h1_parse_request(r->head, r->head_len, &r->h, &why);
    if (prc != 0) {
        r->decision = PC_D_REJECT;
        r->reason = why;
        v->unparsed = why;
        v->status = prc;
        v->done = 1;
        return;
    }
    /* every policy runs and is traced; the server stops at the first pass */
    r->dec.run_all = 1;
    r->dec.trace_bind = verdict_bind;
    r->dec.trace_outcome = verdict_outcome;
    pc_judge(r, o->dec, o->tokens, verdict_done);
    if (!v->done)
        event_base_dispatch(o->base);
}

void pc_verdict_clear(struct pc_verdict *v)
{
    if (v->r != NULL) {
        pc_pool_free(&v->r->pool);
        free(v->r);
    }
    memset(v, 0, sizeof(*v));
}
