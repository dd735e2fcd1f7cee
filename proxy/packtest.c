/*
 * portcullis test: decision tests for rule packs (see packtest.h).
 *
 * One line per case ("ok   NAME", or "FAIL NAME: expected ...; got ...
 * (file:line:col)"), then what no case exercised ("not covered: rule NAME
 * (file:line:col)", the same for policies; every rule and policy with
 * --coverage), a coverage line, and last "N passed, M failed".
 *
 * A rule is exercised when a case's request matched it; a policy when a
 * case bound it (every policy of the matched rule is bound and run, as
 * explain runs them).
 */
#include "packtest.h"
#include "explain.h"
#include "junit.h"
#include "server.h"
#include "testfile.h"
#include "token.h"
#include "verdict.h"
#include "../policies/data.h"
#include "../policies/gen.h"
#include "../policies/identity.h"
#include "../policies/policy.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/rand.h>

#define PT_USAGE "usage: portcullis test [-c FILE] [--junit FILE] [--coverage] [--require-coverage] TESTS.yaml...\n"

struct pt_opts {
    const char *config;
    const char *junit;
    int coverage;               /* list every rule and policy, covered or not */
    int require;                /* an uncovered rule or policy fails the run */
    char **files;
    int nfiles;
};

struct pt_run {
    struct pc_offline o;
    struct tf_file **files;
    size_t nfiles;
    struct pol_data_view ***views;  /* per file, per case: its data: files (NULL: the config's) */
    int *rule_hits;             /* per rule, in file order */
    int *policy_hits;           /* per policy */
    size_t nrules, npolicies;
    int passed, failed;
    struct junit *junit;
};

/* The request of one case: its URL and headers, the minted token placed. */
struct pt_request {
    struct pc_buf url;
    char **headers;
    size_t n;
};

/* ---- options and loading ---- */

/* -1 to go on, else the exit status */
static int pt_options(int argc, char **argv, struct pt_opts *opt)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"junit", required_argument, NULL, 'j'},
        {"coverage", no_argument, NULL, 'C'},
        {"require-coverage", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': opt->config = optarg; break;
        case 'j': opt->junit = optarg; break;
        case 'C': opt->coverage = 1; break;
        case 'R': opt->require = 1; break;
        case 'h': fputs(PT_USAGE, stdout); return 0;
        default: fputs(PT_USAGE, stderr); return 2;
        }
    }
    if (optind >= argc) {
        fputs("portcullis test: name at least one test file\n" PT_USAGE, stderr);
        return 2;
    }
    opt->files = argv + optind;
    opt->nfiles = argc - optind;
    if (opt->config == NULL)
        opt->config = pc_default_config_path();
    return -1;
}

static int pt_load_files(const struct pt_opts *opt, struct pt_run *run)
{
    struct pc_buf errors = {0};
    run->files = pc_calloc((size_t)opt->nfiles, sizeof(*run->files));
    for (int i = 0; i < opt->nfiles; i++) {
        run->files[i] = tf_load(opt->files[i], &errors);
        run->nfiles++;
    }
    if (errors.len > 0)
        fwrite(errors.p, 1, errors.len, stderr);
    pc_buf_free(&errors);
    for (size_t i = 0; i < run->nfiles; i++)
        if (run->files[i] == NULL)
            return -1;
    return 0;
}

/* As the server loads it: policies prepared against the database. */
static int pt_load_config(const struct pt_opts *opt, struct pt_run *run)
{
    int db_rc = 0;
    char *errors = NULL;
    struct pc_config *cfg = pc_server_load_config(opt->config, &db_rc, &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "config error\n", stderr);
        free(errors);
        return -1;
    }
    if (db_rc == 1) {
        fprintf(stderr, "%sportcullis test: the database is unreachable: no decision can be tested\n",
                errors ? errors : "");
        free(errors);
        cfg_unref(cfg);
        return -1;
    }
    free(errors);
    if (cfg->warnings != NULL)
        fputs(cfg->warnings, stderr);
    pc_offline_open(&run->o, cfg);
    run->nrules = cfg->rules ? cfg->rules->n : 0;
    run->npolicies = cfg->pol->set ? cfg->pol->set->n : 0;
    run->rule_hits = pc_calloc(run->nrules + 1, sizeof(*run->rule_hits));
    run->policy_hits = pc_calloc(run->npolicies + 1, sizeof(*run->policy_hits));
    return 0;
}

static const struct id_key *pt_find_key(const struct id_config *id, const char *kid)
{
    for (size_t i = 0; i < id->nkeys; i++)
        if (strcmp(id->keys[i].id, kid) == 0)
            return &id->keys[i];
    return NULL;
}

/* What a case asks of the config: a key it has, a public secret it lists. */
static int pt_check_refs(const struct pt_run *run)
{
    const struct id_config *id = run->o.cfg->identity;
    int bad = 0;
    for (size_t i = 0; i < run->nfiles; i++) {
        const struct tf_file *f = run->files[i];
        for (size_t k = 0; k < f->n; k++) {
            const struct tf_case *c = &f->cases[k];
            if (c->key.str != NULL && pt_find_key(id, c->key.str) == NULL) {
                fprintf(stderr, "%s:%d:%d: %s has no identity.keys entry with id '%s'\n", f->path, c->key.line,
                        c->key.col, run->o.cfg->file, c->key.str);
                bad = 1;
            }
            if (c->forge.kind == TF_FORGE_PUBLIC && id->npublic == 0) {
                fprintf(stderr, "%s:%d:%d: %s lists no identity.public_secrets to forge with\n", f->path,
                        c->forge.line, c->forge.col, run->o.cfg->file);
                bad = 1;
            }
        }
    }
    return bad ? -1 : 0;
}

/* Each case's data: files, read and validated with the config's shapes;
 * a path is relative to its test file. */
static int pt_load_views(struct pt_run *run)
{
    const struct pol_data *d = run->o.cfg->pol->data;
    struct pc_buf errors = {0};
    run->views = pc_calloc(run->nfiles, sizeof(*run->views));
    for (size_t i = 0; i < run->nfiles; i++) {
        const struct tf_file *f = run->files[i];
        const char *slash = strrchr(f->path, '/');
        run->views[i] = pc_calloc(f->n ? f->n : 1, sizeof(**run->views));
        for (size_t k = 0; k < f->n; k++) {
            const struct tf_data *td = &f->cases[k].data;
            if (td->n == 0)
                continue;
            char **paths = pc_calloc(td->n, sizeof(*paths));
            for (size_t j = 0; j < td->n; j++)
                if (td->paths[j] != NULL)
                    paths[j] = td->paths[j][0] == '/' || slash == NULL
                                   ? pc_strdup(td->paths[j])
                                   : pc_sprintf("%.*s/%s", (int)(slash - f->path), f->path, td->paths[j]);
            run->views[i][k] = pol_data_view_files(d, (const char *const *)td->names, (const char *const *)paths,
                                                   (const char *const *)td->at, td->n, &errors);
            for (size_t j = 0; j < td->n; j++)
                free(paths[j]);
            free(paths);
        }
    }
    if (errors.len > 0)
        fwrite(errors.p, 1, errors.len, stderr);
    int rc = errors.len > 0 ? -1 : 0;
    pc_buf_free(&errors);
    return rc;
}

/* ---- the token ---- */

static const char *pt_alg(unsigned algorithms)
{
    if (algorithms & TOK_HS256)
        return "HS256";
    return algorithms & TOK_HS384 ? "HS384" : "HS512";
}

/* The subject claim, iss and aud as the config checks them, then the
 * case's own claims, which replace those of the same name. */
static size_t pt_claims(const struct id_config *id, const struct tf_case *c, struct pc_claim *out)
{
    size_t n = 0;
    out[n++] = (struct pc_claim){id->subject_claim, c->subject, PC_CLAIM_STR};
    if (id->nissuers > 0)
        out[n++] = (struct pc_claim){"iss", id->issuers[0], PC_CLAIM_STR};
    if (id->audience != NULL)
        out[n++] = (struct pc_claim){"aud", id->audience, PC_CLAIM_STR};
    for (size_t i = 0; i < c->claims.n; i++) {
        size_t k = 0;
        while (k < n && strcmp(out[k].name, c->claims.v[i].name) != 0)
            k++;
        out[k] = c->claims.v[i];
        if (k == n)
            n++;
    }
    return n;
}

static char *pt_mint(const struct pc_config *cfg, const struct tf_case *c, char *err, size_t errlen)
{
    const struct id_config *id = cfg->identity;
    const unsigned char *key = id->secret;
    size_t keylen = id->secret_len;
    const char *kid = NULL;
    unsigned char forged[32];

    if (c->forge.kind == TF_FORGE_RANDOM) {
        if (RAND_bytes(forged, sizeof(forged)) != 1) {
            snprintf(err, errlen, "no random bytes for a forged key");
            return NULL;
        }
        key = forged;
        keylen = sizeof(forged);
    } else if (c->forge.kind == TF_FORGE_PUBLIC) {
        key = (const unsigned char *)id->public_secrets[0];
        keylen = strlen(id->public_secrets[0]);
    } else if (c->key.str != NULL || key == NULL) {
        /* a named key, or the first one when there is no secret */
        const struct id_key *k = c->key.str ? pt_find_key(id, c->key.str) : &id->keys[0];
        key = k->secret;
        keylen = k->secret_len;
        kid = k->id;
    }
    struct pc_claim *claims = pc_calloc(c->claims.n + 3, sizeof(*claims));
    size_t n = pt_claims(id, c, claims);
    char *tok = pc_token_mint(key, keylen, pt_alg(id->algorithms), kid, claims, n, 3600000, err, errlen);
    free(claims);
    return tok;
}

/* ---- the request ---- */

static void pt_add_header(struct pt_request *q, char *h)
{
    q->headers = pc_realloc(q->headers, (q->n + 1) * sizeof(*q->headers));
    q->headers[q->n++] = h;
}

/* Where a token goes when the case does not say: the Authorization
 * header when the config reads it, else its first source. */
static const struct id_source *pt_default_place(const struct id_config *id)
{
    for (size_t i = 0; i < id->nsources; i++)
        if (id->sources[i].kind == ID_SRC_HEADER && strcasecmp(id->sources[i].name, "Authorization") == 0)
            return &id->sources[i];
    return &id->sources[0];
}

static void pt_place(struct pt_request *q, const struct id_source *s, const char *tok, struct pc_buf *cookies)
{
    switch (s->kind) {
    case ID_SRC_COOKIE:
        pc_buf_addf(cookies, "%s%s=%s", cookies->len ? "; " : "", s->name, tok);
        return;
    case ID_SRC_HEADER:
        if (strcasecmp(s->name, "Authorization") == 0)
            pt_add_header(q, pc_sprintf("%s: Bearer %s", s->name, tok));
        else
            pt_add_header(q, pc_sprintf("%s: %s", s->name, tok));
        return;
    case ID_SRC_QUERY:
        pc_buf_addf(&q->url, "%c%s=%s", memchr(q->url.p, '?', q->url.len) ? '&' : '?', s->name, tok);
        return;
    }
}

static int pt_request(const struct pc_config *cfg, const struct tf_case *c, struct pt_request *q, char *err,
                      size_t errlen)
{
    pc_buf_adds(&q->url, c->req.url);
    for (size_t i = 0; i < c->headers.n; i++)
        pt_add_header(q, pc_strdup(c->headers.v[i]));
    if (c->subject == NULL)
        return 0;
    char *tok = pt_mint(cfg, c, err, errlen);
    if (tok == NULL)
        return -1;
    struct pc_buf cookies = {0};
    if (c->creds.n == 0)
        pt_place(q, pt_default_place(cfg->identity), tok, &cookies);
    for (size_t i = 0; i < c->creds.n; i++)
        pt_place(q, &c->creds.v[i], tok, &cookies);
    if (cookies.len > 0)
        pt_add_header(q, pc_sprintf("Cookie: %s", pc_buf_cstr(&cookies)));
    pc_buf_free(&cookies);
    free(tok);
    return 0;
}

static void pt_request_free(struct pt_request *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->headers[i]);
    free(q->headers);
    pc_buf_free(&q->url);
}

/* ---- comparing and recording ---- */

static const char *pt_status(int status, char *buf, size_t len)
{
    if (status == PC_JUDGE_FORWARD)
        return "forwarded";
    if (status == PC_JUDGE_LOCAL)
        return "local";
    snprintf(buf, len, "%d", status);
    return buf;
}

static int pt_streq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* 1 when v is what e expects; else 0, with "expected ...; got ..." in msg. */
static int pt_compare(const struct tf_expect *e, const struct pc_verdict *v, struct pc_buf *msg)
{
    const struct pc_req *r = v->r;
    const char *rule = r->rule ? r->rule->name : NULL, *reason = r->reason ? r->reason : "";
    char es[16], gs[16];
    static const char *const decided[] = {"false", "false", "true", "unknown"};
    if (e->status == v->status && e->decision == (int)r->decision && pt_streq(e->rule, rule) &&
        (e->reason == NULL || strstr(reason, e->reason) != NULL) &&
        (!(e->given & TF_E_DATA) || (e->data_decided ? r->data_decided == PC_DATA_YES
                                                     : r->data_decided < PC_DATA_YES)))
        return 1;
    pc_buf_addf(msg, "expected status %s, decision %s, rule %s", pt_status(e->status, es, sizeof(es)),
                pc_decision_names[e->decision], e->rule ? e->rule : "(none)");
    if (e->reason != NULL)
        pc_buf_addf(msg, ", reason containing \"%s\"", e->reason);
    if (e->given & TF_E_DATA)
        pc_buf_addf(msg, ", data_decided %s", e->data_decided ? "true" : "false");
    pc_buf_addf(msg, "; got status %s, decision %s, rule %s, reason \"%s\"", pt_status(v->status, gs, sizeof(gs)),
                pc_decision_names[r->decision], rule ? rule : "(none)", reason);
    if (e->given & TF_E_DATA)
        pc_buf_addf(msg, ", data_decided %s", decided[r->data_decided]);
    return 0;
}

/* The failure's details, for the JUnit report: the policies and results. */
static void pt_details(const struct pc_verdict *v, const char *msg, struct pc_buf *b)
{
    pc_buf_addf(b, "%s\n", msg);
    for (int i = 0; i < v->trace.ncreds; i++)
        pc_buf_addf(b, "credential: %s: %s%s\n", v->trace.creds[i].source,
                    v->trace.creds[i].ok ? "verified, subject " : "INVALID: ",
                    v->trace.creds[i].ok ? v->trace.creds[i].subject : v->trace.creds[i].why);
    for (int i = 0; i < v->trace.npolicies; i++)
        pc_buf_addf(b, "policy: %s(%s) -> %s\n", v->trace.policies[i].name, v->trace.policies[i].params,
                    v->trace.policies[i].result);
}

static void pt_cover(struct pt_run *run, const struct pc_verdict *v)
{
    const struct pol_set *set = run->o.cfg->pol->set;
    if (v->r != NULL && v->r->rule != NULL)
        run->rule_hits[v->r->rule->index]++;
    for (int i = 0; set != NULL && i < v->trace.npolicies; i++) {
        int p = pol_find(set, v->trace.policies[i].name);
        if (p >= 0)
            run->policy_hits[p]++;
    }
}

static void pt_record(struct pt_run *run, const struct tf_file *f, const struct tf_case *c, const char *failure,
                      const char *details, double seconds)
{
    if (failure == NULL) {
        run->passed++;
        printf("ok   %s\n", c->name);
    } else {
        run->failed++;
        printf("FAIL %s: %s (%s:%d:%d)\n", c->name, failure, f->path, c->line, c->col);
    }
    if (run->junit != NULL)
        junit_case(run->junit, c->name, seconds, failure, details);
}

static void pt_run_case(struct pt_run *run, const struct tf_file *f, const struct tf_case *c,
                        const struct pol_data_view *view)
{
    struct pt_request q = {0};
    struct pc_buf head = {0}, msg = {0}, details = {0};
    struct pc_verdict v;
    char err[256];
    int64_t t0 = pc_now_us();

    if (pt_request(run->o.cfg, c, &q, err, sizeof(err)) != 0) {
        pc_buf_addf(&msg, "cannot mint the token: %s", err);
        pt_record(run, f, c, msg.p, NULL, 0);
        goto out;
    }
    pc_offline_head(&head, c->req.method, pc_buf_cstr(&q.url), (const char *const *)q.headers, q.n);
    pc_verdict_run_view(&run->o, head.p, head.len, view, &v);
    pt_cover(run, &v);
    if (!pt_compare(&c->expect, &v, &msg))
        pt_details(&v, msg.p, &details);
    pt_record(run, f, c, msg.len ? msg.p : NULL, details.p, (double)(pc_now_us() - t0) / 1e6);
    pc_verdict_clear(&v);
out:
    pt_request_free(&q);
    pc_buf_free(&head);
    pc_buf_free(&msg);
    pc_buf_free(&details);
}

/* ---- coverage and the report ---- */

static void pt_cover_line(const char *kind, const char *name, const char *file, int line, int col, int hits,
                          int all)
{
    if (hits == 0)
        printf("not covered: %s %s (%s:%d:%d)\n", kind, name, file, line, col);
    else if (all)
        printf("covered: %s %s (%s:%d:%d), %d case%s\n", kind, name, file, line, col, hits, hits == 1 ? "" : "s");
}

/* Print coverage; the number of rules and policies no case exercised,
 * named in uncovered ("rule a, policy b"). */
static size_t pt_coverage(const struct pt_run *run, const struct pt_opts *opt, struct pc_buf *uncovered)
{
    const struct pc_config *cfg = run->o.cfg;
    size_t nr = 0, np = 0;
    for (size_t i = 0; i < run->nrules; i++) {
        const struct rule *r = &cfg->rules->rules[i];
        pt_cover_line("rule", r->name, cfg->file, r->line, r->col, run->rule_hits[i], opt->coverage);
        if (run->rule_hits[i] == 0) {
            pc_buf_addf(uncovered, "%srule %s", uncovered->len ? ", " : "", r->name);
            nr++;
        }
    }
    for (size_t i = 0; i < run->npolicies; i++) {
        const struct pol_policy *p = &cfg->pol->set->p[i];
        pt_cover_line("policy", p->name, cfg->file, p->line, p->col, run->policy_hits[i], opt->coverage);
        if (run->policy_hits[i] == 0) {
            pc_buf_addf(uncovered, "%spolicy %s", uncovered->len ? ", " : "", p->name);
            np++;
        }
    }
    printf("coverage: %zu/%zu rules, %zu/%zu policies\n", run->nrules - nr, run->nrules, run->npolicies - np,
           run->npolicies);
    return nr + np;
}

static int pt_report(struct pt_run *run, const struct pt_opts *opt)
{
    struct pc_buf uncovered = {0};
    char err[512];
    int rc = run->failed > 0 ? 1 : 0;
    size_t nu = pt_coverage(run, opt, &uncovered);
    if (opt->require) {
        if (nu > 0) {
            printf("coverage required: not covered: %s\n", uncovered.p);
            rc = 1;
        }
        if (run->junit != NULL) {
            junit_suite(run->junit, "coverage");
            junit_case(run->junit, "every rule and policy is exercised", 0,
                       nu ? "not covered" : NULL, nu ? uncovered.p : NULL);
        }
    }
    printf("%d passed, %d failed\n", run->passed, run->failed);
    fflush(stdout);
    if (run->junit != NULL && junit_write(run->junit, opt->junit, err, sizeof(err)) != 0) {
        fprintf(stderr, "portcullis test: --junit %s\n", err);
        rc = 2;
    }
    pc_buf_free(&uncovered);
    return rc;
}

static void pt_free(struct pt_run *run)
{
    for (size_t i = 0; run->views != NULL && i < run->nfiles; i++) {
        for (size_t k = 0; k < run->files[i]->n; k++)
            pol_data_view_free(run->views[i][k]);
        free(run->views[i]);
    }
    free(run->views);
    for (size_t i = 0; i < run->nfiles; i++)
        tf_free(run->files[i]);
    free(run->files);
    free(run->rule_hits);
    free(run->policy_hits);
    junit_free(run->junit);
    if (run->o.cfg != NULL)
        pc_offline_close(&run->o);
}

int pc_packtest_main(int argc, char **argv)
{
    struct pt_opts opt = {0};
    struct pt_run run = {0};
    int rc = pt_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    rc = 2;
    if (pt_load_files(&opt, &run) != 0 || pt_load_config(&opt, &run) != 0 || pt_check_refs(&run) != 0 ||
        pt_load_views(&run) != 0)
        goto out;
    if (opt.junit != NULL)
        run.junit = junit_new("portcullis test");
    for (size_t i = 0; i < run.nfiles; i++) {
        if (run.junit != NULL)
            junit_suite(run.junit, run.files[i]->path);
        for (size_t k = 0; k < run.files[i]->n; k++)
            pt_run_case(&run, run.files[i], &run.files[i]->cases[k], run.views[i][k]);
    }
    rc = pt_report(&run, &opt);
out:
    pt_free(&run);
    return rc;
}
