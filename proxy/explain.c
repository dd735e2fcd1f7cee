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
#include "../policies/data.h"
#include "../policies/gen.h"
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

/* The data sets and tops the rule's policies bind: uses[set * 64 + top]. */
static void explain_data_uses(const struct pc_config *cfg, const struct rule *rule, unsigned char *uses)
{
    const struct pol_data *d = cfg->pol->data;
    for (size_t i = 0; i < rule->plan.nsteps; i++)
        for (size_t b = 0; b < rule->plan.steps[i].nbinds; b++)
            if (rule->plan.steps[i].binds[b].kind == DEC_B_DATA) {
                const struct pol_dslot *sl = &d->slots[rule->plan.steps[i].binds[b].capture];
                uses[sl->set * 64 + sl->top] = 1;
            }
}

static void explain_data_files(const struct pc_config *cfg, const struct pc_req *r)
{
    const struct pol_data *d = cfg->pol->data;
    unsigned char uses[16 * 64] = {0};
    if (r->rule == NULL || !r->rule->plan.binds_data)
        return;
    explain_data_uses(cfg, r->rule, uses);
    for (size_t s = 0; s < d->nsets; s++) {
        size_t n = 0, used = 0;
        for (size_t t = 0; t < d->sets[s].ntops; t++) {
            used |= uses[s * 64 + t];
            n += d->sets[s].tops[t].nentries;
        }
        if (!used)
            continue;
        if (d->sets[s].file == NULL)
            printf("data:        %s: no file (every binding empty)\n", d->sets[s].name);
        else
            printf("data:        %s: %s, %zu entr%s\n", d->sets[s].name, d->sets[s].file, n, n == 1 ? "y" : "ies");
    }
}

/*
 * Which entry of a data file decided: the request is judged again with
 * each entry of what the rule binds left out, one at a time; an entry
 * whose absence changes the decision decided it.
 */
static void explain_data_entries(struct pc_offline *o, const char *head, size_t len, const struct pc_verdict *v)
{
    const struct pc_config *cfg = o->cfg;
    const struct pc_req *r = v->r;
    const struct pol_data *d = cfg->pol->data;
    unsigned char uses[16 * 64] = {0};
    const char *verb = r->dec_res == DEC_ALLOW ? "allowed" : "denied";
    int found = 0;

    if (r->data_decided == PC_DATA_NA)
        return;
    if (r->data_decided == PC_DATA_UNKNOWN) {
        printf("data:        not known whether the data decided: without it the decision failed (%s)\n",
               r->dec_base ? r->dec_base->reason : "?");
        return;
    }
    if (r->data_decided == PC_DATA_NO) {
        printf("data:        decided nothing: without the data the decision is the same\n");
        return;
    }
    printf("data:        decided it: without the data, %s (%s)\n",
           r->base_res == DEC_ALLOW ? "allow" : r->base_res == DEC_DENY ? "deny" : "error", r->dec_base->reason);
    explain_data_uses(cfg, r->rule, uses);
    for (size_t s = 0; s < d->nsets; s++) {
        for (size_t t = 0; t < d->sets[s].ntops; t++) {
            const struct pol_dtop *top = &d->sets[s].tops[t];
            if (!uses[s * 64 + t])
                continue;
            for (size_t e = 0; e < top->nentries; e++) {
                struct pol_data_view *view = pol_data_view_new(d, 0, (long)s, (long)t, (long)e);
                struct pc_verdict w;
                pc_verdict_run_view(o, head, len, view, &w);
                if (w.r != NULL && w.r->decision != r->decision) {
                    printf("data:        %s by %s:%d:%d (%s %.*s)\n", verb, d->sets[s].file, top->entries[e].line,
                           top->entries[e].col, top->name, (int)(strlen(top->entries[e].key) - 2),
                           top->entries[e].key + 1);
                    found++;
                }
                pc_verdict_clear(&w);
                pol_data_view_free(view);
            }
        }
    }
    if (!found)
        printf("data:        %s by the entries together (no one entry alone)\n", verb);
}

/* Print the verdict; 0 for allow or forward, 1 otherwise. */
static int explain_print(struct pc_offline *o, const char *head, size_t len, const struct pc_verdict *v)
{
    const struct pc_config *cfg = o->cfg;
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
    explain_data_files(cfg, r);
    explain_credentials(cfg, v);
    printf("decision:    %s%s%s%s\n", pc_decision_names[r->decision], r->reason ? " (" : "",
           r->reason ? r->reason : "", r->reason ? ")" : "");
    if (r->decision == PC_D_ALLOW || r->decision == PC_D_DENY || r->decision == PC_D_SHADOW_DENY)
        explain_data_entries(o, head, len, v);
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
    rc = explain_print(&o, head.p, head.len, &v);
    pc_verdict_clear(&v);
    pc_offline_close(&o);
out:
    fflush(stdout);
    pc_buf_free(&head);
    free(headers);
    return rc;
}
