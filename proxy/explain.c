/*
 * portcullis explain: "why was this user denied?" in one command.
 *
 *   portcullis explain -c FILE METHOD URL [-H 'Name: value']...
 *
 * Judges a request built from the arguments with the server's own code
 * (verdict.h), every policy evaluated and traced, and prints each step.
 * Exits 0 for allow or forward, 1 for deny or error.
 */
#include "explain.h"
#include "verdict.h"
#include "../policies/identity.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPLAIN_USAGE "usage: portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n"

static void explain_rule(const struct pc_config *cfg, const struct pc_req *r)
{
    if (r->decision == PC_D_LOCAL) {
        printf("rule:        (none: the proxy answers %s itself)\n", r->canon.path);
        return;
    }
    if (r->rule == NULL) {
        if (r->decision != PC_D_REJECT)
            printf("rule:        (no rule matched; default: %s)\n", cfg->default_forward ? "forward" : "deny");
        return;
    }
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
}

static void explain_credentials(const struct pc_config *cfg, const struct pc_verdict *v)
{
    const struct pc_req *r = v->r;
    const struct pc_trace *t = &v->trace;
    if (r->rule != NULL && r->rule->action == RULE_ALLOW && t->ncreds == 0 && r->decision == PC_D_UNAUTH)
        printf("credential:  none found in %zu configured sources\n", cfg->identity->nsources);
    for (int i = 0; i < t->ncreds; i++) {
        if (t->creds[i].ok)
            printf("credential:  %s: verified, subject %s\n", t->creds[i].source, t->creds[i].subject);
        else
            printf("credential:  %s: INVALID (%s)\n", t->creds[i].source, t->creds[i].why);
    }
    for (int i = 0; i < t->npolicies; i++)
        printf("policy:      %s(%s) -> %s\n", t->policies[i].name, t->policies[i].params, t->policies[i].result);
}

/* Print the verdict; 0 for allow or forward, 1 otherwise. */
static int explain_print(const struct pc_config *cfg, const struct pc_verdict *v)
{
    const struct pc_req *r = v->r;
    if (v->unparsed != NULL) {
        printf("rejected:    %s\ndecision:    reject\nstatus:      %d\n", v->unparsed, v->status);
        return 1;
    }
    if (r->canon.path != NULL && r->canon.path_len > 0)
        printf("canonical:   %s%s%.*s\n", r->canon.path, r->canon.has_query ? "?" : "",
               (int)r->canon.query_len, r->canon.has_query ? r->canon.query : "");
    else if (r->decision == PC_D_REJECT)
        printf("path:        rejected: %s\n", r->reason ? r->reason : "?");
    explain_rule(cfg, r);
    explain_credentials(cfg, v);
    printf("decision:    %s%s%s%s\n", pc_decision_names[r->decision], r->reason ? " (" : "",
           r->reason ? r->reason : "", r->reason ? ")" : "");
    if (v->status == PC_JUDGE_FORWARD) {
        printf("status:      forwarded to %s\n", cfg->upstream.text);
        return 0;
    }
    if (v->status == PC_JUDGE_LOCAL) {
        printf("status:      answered by the proxy\n");
        return 0;
    }
    printf("status:      %d %s\n", v->status, v->code ? v->code : "");
    return 1;
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
    const char **headers = pc_calloc((size_t)argc + 1, sizeof(*headers));
    size_t nheaders = 0;
    struct pc_buf head = {0};
    int ch, rc = 2;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:H:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'H': headers[nheaders++] = optarg; break;
        case 'h':
            fputs(EXPLAIN_USAGE, stdout);
            rc = 0;
            goto out;
        default:
            fputs(EXPLAIN_USAGE, stderr);
            goto out;
        }
    }
    if (argc - optind != 2) {
        fputs(EXPLAIN_USAGE, stderr);
        goto out;
    }
    char *errors = NULL;
    struct pc_config *cfg = pc_offline_load(path ? path : pc_default_config_path(), &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "config error\n", stderr);
        free(errors);
        rc = 1;
        goto out;
    }
    struct pc_offline o;
    struct pc_verdict v;
    pc_offline_open(&o, cfg);
    pc_offline_head(&head, argv[optind], argv[optind + 1], headers, nheaders);
    printf("request:     %s %s\n", argv[optind], argv[optind + 1]);
    pc_verdict_run(&o, head.p, head.len, &v);
    rc = explain_print(o.cfg, &v);
    pc_verdict_clear(&v);
    pc_offline_close(&o);
out:
    fflush(stdout);
    pc_buf_free(&head);
    free(headers);
    return rc;
}
