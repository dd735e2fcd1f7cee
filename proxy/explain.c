/*
 * portcullis explain: "why was this user denied?" in one command.
 *
 *   portcullis explain -c FILE METHOD URL [-H 'Name: value']...
 *
 * Runs pc_judge() -- the server's own code -- on a request built from the
 * arguments, with every policy evaluated and traced, and prints each step.
 * Exits 0 for allow or forward, 1 for deny or error.
 */
#include "explain.h"
#include "judge.h"
#include "metrics.h"
#include "../policies/gen.h"
#include "../policies/identity.h"
#include "../policies/policy.h"
#include "../policies/tokcache.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct explain_ctx {
    struct event_base *base;
    int status;
    int done;
    const char *code;
    char message[256];
};

static struct explain_ctx *explain_cur;

static void explain_verdict(struct pc_req *r, int status, const char *code, const char *message)
{
    PC_UNUSED(r);
    explain_cur->status = status;
    explain_cur->code = code;
    snprintf(explain_cur->message, sizeof(explain_cur->message), "%s", message ? message : "");
    explain_cur->done = 1;
    event_base_loopbreak(explain_cur->base);
}

static void explain_bind(struct dec_request *d, int policy, const char *const *values, const int *lengths,
                         size_t n)
{
    struct pc_req *r = (struct pc_req *)((char *)d - offsetof(struct pc_req, dec));
    struct pc_trace *t = r->trace;
    const struct pol_policy *p = &d->cfg->set->p[policy];
    if (t->npolicies >= PC_TRACE_MAX)
        return;
    int k = t->npolicies++;
    snprintf(t->policies[k].name, sizeof(t->policies[k].name), "%s", p->name);
    struct pc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        pc_buf_addf(&b, "%s:%s=", i ? ", " : "", p->params[i]);
        if (values[i] == NULL)
            pc_buf_adds(&b, "NULL");
        else {
            pc_buf_addc(&b, '\'');
            pc_buf_add_json_str(&b, values[i], (size_t)lengths[i]);
            pc_buf_addc(&b, '\'');
        }
    }
    snprintf(t->policies[k].params, sizeof(t->policies[k].params), "%s", b.len ? b.p : "");
    snprintf(t->policies[k].result, sizeof(t->policies[k].result), "pending");
    pc_buf_free(&b);
}

static void explain_outcome(struct dec_request *d, int policy, int outcome, const char *detail)
{
    struct pc_req *r = (struct pc_req *)((char *)d - offsetof(struct pc_req, dec));
    struct pc_trace *t = r->trace;
    const char *name = d->cfg->set->p[policy].name;
    for (int k = 0; k < t->npolicies; k++) {
        if (strcmp(t->policies[k].name, name) != 0)
            continue;
        if (outcome > 0)
            snprintf(t->policies[k].result, sizeof(t->policies[k].result), "pass (a row)");
        else if (outcome == 0)
            snprintf(t->policies[k].result, sizeof(t->policies[k].result), "fail (no row)");
        else if (outcome == -2)
            snprintf(t->policies[k].result, sizeof(t->policies[k].result), "%s", detail ? detail : "left out");
        else
            snprintf(t->policies[k].result, sizeof(t->policies[k].result), "ERROR: %s", detail ? detail : "?");
    }
}

static void explain_dec_hooks(struct pc_req *r)
{
    r->dec.run_all = 1;
    r->dec.trace_bind = explain_bind;
    r->dec.trace_outcome = explain_outcome;
}

int pc_explain_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"header", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    struct pc_buf headers = {0}, head = {0};
    int ch, rc = 1, has_host = 0;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:H:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'H':
            if (strncasecmp(optarg, "host:", 5) == 0)
                has_host = 1;
            pc_buf_adds(&headers, optarg);
            pc_buf_adds(&headers, "\r\n");
            break;
        case 'h':
            printf("usage: portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n");
            return 0;
        default:
            fprintf(stderr, "usage: portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n");
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n");
        return 2;
    }
    const char *method = argv[optind], *url = argv[optind + 1];
    if (path == NULL)
        path = pc_default_config_path();

    char *errors = NULL;
    struct pc_config *cfg = cfg_load(path, NULL, &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "config error\n", stderr);
        free(errors);
        return 1;
    }
    cfg->generation = 1;
    char *iw = cfg_install(cfg);
    free(iw); /* explain does not serve: an unresolved upstream only matters for forwarding */

    /* Host: from an absolute URL, else as given, else localhost */
    char host[256] = "localhost";
    const char *scheme_end = strstr(url, "://");
    if (scheme_end != NULL) {
        const char *a = scheme_end + 3;
        size_t l = strcspn(a, "/?#");
        snprintf(host, sizeof(host), "%.*s", (int)PC_MIN(l, sizeof(host) - 1), a);
    }
    pc_buf_addf(&head, "%s %s HTTP/1.1\r\n", method, url);
    if (!has_host)
        pc_buf_addf(&head, "Host: %s\r\n", host);
    pc_buf_add(&head, headers.p, headers.len);
    pc_buf_adds(&head, "\r\n");

    struct pc_req *r = pc_calloc(1, sizeof(*r));
    struct pc_trace *trace = pc_calloc(1, sizeof(*trace));
    struct pc_metrics *metrics = pc_calloc(1, sizeof(*metrics));
    r->cfg = cfg;
    r->trace = trace;
    r->head = head.p;
    r->head_len = head.len;
    printf("request:     %s %s\n", method, url);
    const char *why = NULL;
    int prc = h1_parse_request(r->head, r->head_len, &r->h, &why);
    if (prc != 0) {
        printf("rejected:    %s\ndecision:    reject\nstatus:      %d\n", why, prc);
        goto out;
    }

    struct explain_ctx ec = {0};
    ec.base = event_base_new();
    explain_cur = &ec;
    struct dec_ctx *dec = dec_ctx_new(ec.base, 0, 1, cfg->pol, NULL, &metrics->dec);
    struct tokcache *tokens = tokcache_new(16);
    explain_dec_hooks(r);
    pc_judge(r, dec, tokens, explain_verdict);
    if (!ec.done)
        event_base_dispatch(ec.base);

    if (r->canon.path != NULL && r->canon.path_len > 0)
        printf("canonical:   %s%s%.*s\n", r->canon.path, r->canon.has_query ? "?" : "",
               (int)r->canon.query_len, r->canon.has_query ? r->canon.query : "");
    else if (r->decision == PC_D_REJECT)
        printf("path:        rejected: %s\n", r->reason ? r->reason : "?");
    if (r->decision == PC_D_LOCAL) {
        printf("rule:        (none: the proxy answers %s itself)\n", r->canon.path);
    } else if (r->rule != NULL) {
        printf("rule:        %s (%s:%d:%d)%s%s\n", r->rule->name, cfg->file, r->rule->line, r->rule->col,
               r->rule->shadow ? " [shadow]" : "",
               r->rule->fallback ? " [fallback: a route the rule pack does not know]" : "");
        for (size_t i = 0; i < r->rule->ncaptures; i++) {
            const struct rule_capture *cap = &r->rule->captures[i];
            if (r->match.present[i])
                printf("capture:     %s = %s\n", cap->name, r->match.values[i]);
            else
                printf("capture:     %s = (absent: bound as NULL)\n", cap->name);
        }
    } else if (r->decision != PC_D_REJECT) {
        printf("rule:        (no rule matched; default: %s)\n", cfg->default_forward ? "forward" : "deny");
    }
    if (r->rule != NULL && r->rule->action == RULE_ALLOW && trace->ncreds == 0 && r->decision == PC_D_UNAUTH)
        printf("credential:  none found in %zu configured sources\n", cfg->identity->nsources);
    for (int i = 0; i < trace->ncreds; i++) {
        if (trace->creds[i].ok)
            printf("credential:  %s: verified, subject %s\n", trace->creds[i].source, trace->creds[i].subject);
        else
            printf("credential:  %s: INVALID (%s)\n", trace->creds[i].source, trace->creds[i].why);
    }
    for (int i = 0; i < trace->npolicies; i++)
        printf("policy:      %s(%s) -> %s\n", trace->policies[i].name, trace->policies[i].params,
               trace->policies[i].result);
    printf("decision:    %s%s%s%s\n", pc_decision_names[r->decision], r->reason ? " (" : "",
           r->reason ? r->reason : "", r->reason ? ")" : "");
    if (ec.status == PC_JUDGE_FORWARD) {
        printf("status:      forwarded to %s\n", cfg->upstream.text);
        rc = 0;
    } else if (ec.status == PC_JUDGE_LOCAL) {
        printf("status:      answered by the proxy\n");
        rc = 0;
    } else {
        printf("status:      %d %s\n", ec.status, ec.code ? ec.code : "");
        rc = 1;
    }
    tokcache_free(tokens);
    /* the database pool is torn down with the process */
    PC_UNUSED(dec);
out:
    fflush(stdout);
    pc_buf_free(&headers);
    _exit(rc);
}
