/*
 * libFuzzer target: configuration loading (lib/yaml.c, lib/cfg.c,
 * proxy/config.c, rules/match.c, policies/identity.c, policies/policy.c) through
 * cfg_load_text() with a deterministic environment.
 *
 * Loading asks no DNS (names are resolved when a generation is installed,
 * which the fuzzer never does). fopen() is wrapped while a config loads so
 * that secret_file reads come from a fixed table (never a FIFO, a tty or
 * /dev/stdin). See FUZZ_LDFLAGS_config in the Makefile.
 *
 * Invariants:
 *  - loading is deterministic: the same text twice gives the same outcome,
 *    the same error text, the same warnings;
 *  - a refused config has at least one error, and every error (and warning)
 *    line is "fuzz.yaml:<line>:<col>: <message>" with 1 <= line <= the
 *    number of lines in the text (+1: the end of the stream), col >= 1, and
 *    a non-empty message;
 *  - an accepted config is whole: listen and upstream set, distinct health
 *    and ready paths, every rule compiled with its captures and bindings in
 *    range, identity keys all with an id and a secret, and a literal rule
 *    template, matched as a path with a method the rule allows, matches
 *    that rule or an earlier one.
 */
#include "fuzz_common.h"

#include <errno.h>
#include <string.h>

#include "../../proxy/config.h"
#include "../../rules/match.h"
#include "../../policies/identity.h"
#include "../../policies/gen.h"
#include "../../policies/policy.h"
#include "../../lib/base.h"

#define FILE_NAME "fuzz.yaml"

static const char *fuzz_getenv(const char *name)
{
    static const struct {
        const char *name, *value;
    } env[] = {
        {"SECRET_KEY", "env-secret"},
        {"EMPTY", ""},
        {"LISTEN", "127.0.0.1:8080"},
        {"UPSTREAM", "http://127.0.0.1:5001"},
        {"PORT", "5432"},
        {"DB_HOST", "db"},
        {"DB_PASSWORD", "p@ss word'\""},
        {"NEWLINE", "a\nb"},
        {"DOLLAR", "${SECRET_KEY}"},
        {"PATH_T", "/items/{id:int}"},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(env); i++)
        if (strcmp(name, env[i].name) == 0)
            return env[i].value;
    return NULL;
}

/* ---- a deterministic world ---- */

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

static int in_load;

FILE *__wrap_fopen(const char *path, const char *mode)
{
    static const char secret[] = "file-secret\n";
    static const char blank[] = "\r\n";
    if (!in_load)
        return __real_fopen(path, mode);
    if (strcmp(path, "/fuzz/secret") == 0)
        return fmemopen((void *)secret, sizeof(secret) - 1, "rb");
    if (strcmp(path, "/fuzz/blank") == 0)
        return fmemopen((void *)blank, sizeof(blank) - 1, "rb");
    errno = ENOENT;
    return NULL;
}

/* ---- invariants ---- */

static size_t text_lines(const char *t, size_t len)
{
    /* every line break libyaml knows: LF, CR, NEL, LS, PS; plus one, as
     * libyaml puts the end of the stream on a new line of its own when the
     * text does not end with a line break */
    size_t n = 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\n' || c == '\r')
            n++;
        else if (c == 0xc2 && i + 1 < len && (unsigned char)t[i + 1] == 0x85)
            n++;
        else if (c == 0xe2 && i + 2 < len && (unsigned char)t[i + 1] == 0x80 &&
                 ((unsigned char)t[i + 2] == 0xa8 || (unsigned char)t[i + 2] == 0xa9))
            n++;
    }
    return n;
}

/* Every line of msgs is FILE_NAME:<line>:<col>: <message>. */
static void check_lines(const char *what, const char *msgs, size_t maxline)
{
    const char *p = msgs;
    size_t prefix = strlen(FILE_NAME);
    FZ_CHECK(*p != '\0', "%s: empty text", what);
    while (*p) {
        const char *eol = strchr(p, '\n');
        FZ_CHECK(eol != NULL, "%s: last line not terminated: %s", what, p);
        FZ_CHECK(strncmp(p, FILE_NAME ":", prefix + 1) == 0, "%s: line without the file: %.*s", what,
                 (int)(eol - p), p);
        const char *q = p + prefix + 1;
        unsigned long long line = 0, col = 0;
        int digits = 0;
        while (*q >= '0' && *q <= '9') {
            line = line * 10 + (unsigned long long)(*q++ - '0');
            digits++;
        }
        FZ_CHECK(digits > 0 && digits < 12 && *q == ':', "%s: no line number: %.*s", what, (int)(eol - p), p);
        q++;
        digits = 0;
        while (*q >= '0' && *q <= '9') {
            col = col * 10 + (unsigned long long)(*q++ - '0');
            digits++;
        }
        FZ_CHECK(digits > 0 && digits < 12 && q[0] == ':' && q[1] == ' ', "%s: no column: %.*s", what,
                 (int)(eol - p), p);
        FZ_CHECK(line >= 1 && line <= maxline, "%s: line %llu of %zu: %.*s", what, line, maxline,
                 (int)(eol - p), p);
        FZ_CHECK(col >= 1, "%s: column 0: %.*s", what, (int)(eol - p), p);
        FZ_CHECK(q + 2 < eol, "%s: empty message: %.*s", what, (int)(eol - p), p);
        p = eol + 1;
    }
}

static int same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void check_rules(const struct pc_config *c)
{
    const struct rule_set *rs = c->rules;
    FZ_CHECK(rs != NULL && rs->root != NULL, "no rule set");
    size_t npol = c->pol->set ? c->pol->set->n : 0;
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        FZ_CHECK(r->index == (int)i && r->name != NULL && r->path != NULL, "rule %zu incomplete", i);
        FZ_CHECK(r->segs != NULL && r->nsegs > 0, "rule %s not compiled", r->name);
        FZ_CHECK(r->ncaptures <= RULE_MAX_CAPTURES, "rule %s: %zu captures", r->name, r->ncaptures);
        for (size_t k = 0; k < r->ncaptures; k++) {
            const struct rule_capture *cap = &r->captures[k];
            if (cap->segment >= 0) {
                FZ_CHECK((size_t)cap->segment < r->nsegs && r->segs[cap->segment].kind == SEG_PARAM &&
                         same_str(r->segs[cap->segment].name, cap->name), "rule %s: capture %s", r->name,
                         cap->name);
            } else {
                FZ_CHECK(cap->query_key != NULL && cap->query_key[0] != '\0', "query capture without a key");
            }
        }
        for (size_t s = 0; s < r->nsegs; s++)
            FZ_CHECK(r->segs[s].kind != SEG_GLOB || s + 1 == r->nsegs, "'**' not last in %s", r->path);
        if (r->action == RULE_ALLOW) {
            FZ_CHECK(r->plan.nsteps > 0, "allow rule %s without policies", r->name);
            FZ_CHECK(r->plan.name == r->name, "plan of %s named after another rule", r->name);
            for (size_t a = 0; a < r->plan.nsteps; a++) {
                const struct dec_step *ra = &r->plan.steps[a];
                FZ_CHECK(ra->policy >= 0 && (size_t)ra->policy < npol, "policy index");
                FZ_CHECK(ra->nbinds == pol_nparams(c->pol->set, ra->policy), "bind count");
                for (size_t b = 0; b < ra->nbinds; b++)
                    if (ra->binds[b].kind == DEC_B_CAPTURE)
                        FZ_CHECK(ra->binds[b].capture >= 0 && (size_t)ra->binds[b].capture < r->ncaptures,
                                 "capture binding out of range");
                    else if (ra->binds[b].kind == DEC_B_CLAIM)
                        FZ_CHECK(ra->binds[b].claim != NULL, "claim binding without a claim");
            }
        }
    }
    /* a literal template, as a path, reaches its own rule or an earlier one */
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        int literal = 1;
        for (size_t s = 0; s < r->nsegs; s++)
            literal &= r->segs[s].kind == SEG_LIT;
        if (!literal)
            continue;
        enum h1_method m = H1_M_GET;
        if (r->methods != 0)
            for (m = H1_M_GET; m <= H1_M_TRACE && !(r->methods & RULE_METHOD_BIT(m)); m++)
                ;
        size_t pl = strlen(r->path);
        char *buf = malloc(pl + 32);
        struct rule_match match;
        const char *why = NULL;
        int rc = rule_match(rs, m, r->path, pl, NULL, 0, buf, &match, &why);
        if (rc == 0) {
            FZ_CHECK(match.rule != NULL && match.rule->index <= r->index, "rule %s does not match its own path %s",
                     r->name, r->path);
        } else {
            FZ_CHECK(rc == 400 && r->nsegs >= 128, "literal path %s refused: %s", r->path, why ? why : "?");
        }
        free(buf);
    }
}

static void check_config(const struct pc_config *c)
{
    FZ_CHECK(c->listen.text != NULL && c->upstream.text != NULL, "listen/upstream missing");
    FZ_CHECK(c->health_path && c->ready_path && c->health_path[0] == '/' && c->ready_path[0] == '/' &&
             strcmp(c->health_path, c->ready_path) != 0, "health/ready paths");
    FZ_CHECK(c->workers >= 1 && c->workers <= 256, "workers %d", c->workers);
    FZ_CHECK(c->limits.header_bytes >= 1024 && c->limits.header_bytes <= 1024 * 1024, "header_bytes");
    if (c->pol->cache.invalidate_channel != NULL) {
        FZ_CHECK(c->pol->cache.invalidate_channel[0] != '\0', "empty channel");
        for (const char *p = c->pol->cache.invalidate_channel; *p; p++)
            FZ_CHECK(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'), "channel byte");
    }
    if (c->identity != NULL) {
        const struct id_config *id = c->identity;
        FZ_CHECK(id->algorithms != 0 && (id->algorithms & ~7u) == 0, "algorithms");
        FZ_CHECK(id->subject_claim != NULL, "subject claim");
        FZ_CHECK((id->secret != NULL && id->secret_len > 0) || id->nkeys > 0, "identity without a key");
        for (size_t k = 0; k < id->nkeys; k++)
            FZ_CHECK(id->keys[k].id != NULL && id->keys[k].id[0] != '\0' && id->keys[k].secret != NULL &&
                     id->keys[k].secret_len > 0, "identity key %zu incomplete", k);
        for (size_t s = 0; s < id->nsources; s++)
            FZ_CHECK(id->sources[s].name != NULL && id->sources[s].name[0] != '\0', "source without a name");
    }
    check_rules(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pc_hash_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copy, for ASan */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    char *e1 = NULL, *e2 = NULL;

    in_load = 1;
    struct pc_config *c1 = cfg_load_text(FILE_NAME, text, size, fuzz_getenv, &e1);
    struct pc_config *c2 = cfg_load_text(FILE_NAME, text, size, fuzz_getenv, &e2);
    in_load = 0;

    FZ_CHECK((c1 == NULL) == (c2 == NULL), "loaded once, refused once");
    size_t maxline = text_lines(text, size);
    if (c1 == NULL) {
        FZ_CHECK(e1 != NULL && e2 != NULL, "refused without errors");
        FZ_CHECK(strcmp(e1, e2) == 0, "error text differs between loads:\n%s---\n%s", e1, e2);
        check_lines("errors", e1, maxline);
    } else {
        FZ_CHECK(e1 == NULL && e2 == NULL, "errors set on success");
        FZ_CHECK(same_str(c1->warnings, c2->warnings), "warnings differ between loads");
        if (c1->warnings != NULL)
            check_lines("warnings", c1->warnings, maxline);
        check_config(c1);
        check_config(c2);
        FZ_CHECK(c1->rules->n == c2->rules->n, "rule count differs between loads");
        for (size_t i = 0; i < c1->rules->n; i++)
            FZ_CHECK(strcmp(c1->rules->rules[i].path, c2->rules->rules[i].path) == 0 &&
                     c1->rules->rules[i].methods == c2->rules->rules[i].methods &&
                     c1->rules->rules[i].action == c2->rules->rules[i].action, "rule %zu differs", i);
    }
    cfg_unref(c1);
    cfg_unref(c2);
    free(e1);
    free(e2);
    free(text);
    return 0;
}
