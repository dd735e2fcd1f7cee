/*
 * libFuzzer target: canonical paths (rules/canon.c) and rule matching
 * (rules/match.c) on a fixed rule set, loaded once with cfg_load_text().
 *
 * Input: byte 0 picks the method (enum h1_method, modulo 10); the rest is
 * the request-target. Targets carry only the bytes h1_parse_request()
 * lets through (0x21..0x7e); others are refused as inputs, since the proxy
 * never hands canon_target() anything else.
 *
 * Invariants:
 *  - canon_target agrees with an independent model of the contract in
 *    canon.h (accept/refuse, path and query);
 *  - an accepted path starts with '/', never contains "//", "/./",
 *    "/../", never ends with "/." or "/..", never contains bytes < 0x20,
 *    0x7f, '?', '#' or NUL;
 *  - canon_encode(path) uses only unreserved/sub-delim/':'/'@'/'/' bytes
 *    and upper-case %XX, decodes (url_pct_decode, strict) back to the
 *    path, and canonicalises again to the same path;
 *  - rule_match picks the first rule in file order that matches (checked
 *    against a linear scan of the templates, independent of the trie);
 *  - captures: path values are the segment (uuid: lower-cased, 36 chars;
 *    int: decimal without leading zeros), query values follow the one
 *    occurrence of their key (repeats are a 400), and every value lies in
 *    the caller's buffer, which is exactly the documented size.
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../rules/canon.h"
#include "../../proxy/config.h"
#include "../../rules/match.h"
#include "../../lib/base.h"

static const char rules_yaml[] =
    "listen: 127.0.0.1:8080\n"
    "upstream: http://127.0.0.1:5001\n"
    "identity: {secret: fuzz}\n"
    "database: {url: \"host=/nonexistent\"}\n"
    "policies:\n"
    "  app: \"SELECT 1 WHERE :app_id::text IS NOT NULL AND :subject <> ''\"\n"
    "  conv: \"SELECT 1 WHERE :app_id::text IS NOT NULL AND :conversation_id::text IS NOT NULL\"\n"
    "  run: \"SELECT 1 WHERE CAST(:workflow_run_id AS uuid) IS NOT NULL\"\n"
    "  item: \"SELECT 1 WHERE :item_id::bigint > 0\"\n"
    "  search: \"SELECT 1 WHERE :app_id::text IS NOT NULL AND :page::int > 0 AND :q <> ''\"\n"
    "  mixed: \"SELECT 1 WHERE :user::uuid IS NOT NULL AND :num::int > 0 AND :s <> :claims.role\"\n"
    "rules:\n"
    "  - name: chat-conversation\n"
    "    path: /console/api/apps/{app_id:uuid}/chat-conversations/{conversation_id:uuid}\n"
    "    methods: [GET, DELETE]\n"
    "    allow: [conv]\n"
    "  - name: chat-conversations\n"
    "    path: /console/api/apps/{app_id:uuid}/chat-conversations\n"
    "    methods: [GET]\n"
    "    allow: [app]\n"
    "  - name: trace-config\n"
    "    path: /console/api/apps/{app_id:uuid}/trace-config\n"
    "    allow: [app]\n"
    "  - name: workflow-pause-details\n"
    "    path: /console/api/workflow/{workflow_run_id}/pause-details\n"
    "    methods: [GET]\n"
    "    allow: [run]\n"
    "  - name: item\n"
    "    path: /items/{item_id:int}\n"
    "    methods: [GET]\n"
    "    allow: [item]\n"
    "  - name: item-any\n"
    "    path: /items/{name}\n"
    "    action: deny\n"
    "  - name: item-parts\n"
    "    path: /items/{item_id:int}/parts/*\n"
    "    action: forward\n"
    "  - name: files-meta\n"
    "    path: /files/*/meta\n"
    "    action: deny\n"
    "  - name: static\n"
    "    path: /static/**\n"
    "    methods: [GET]\n"
    "    action: forward\n"
    "  - name: search\n"
    "    path: /search\n"
    "    query:\n"
    "      app: \"{app_id:uuid}\"\n"
    "      page: \"{page:int}\"\n"
    "      q: \"{q}\"\n"
    "    allow: [search]\n"
    "  - name: spaced-query\n"
    "    path: /find\n"
    "    query: {\"a b\": \"{ab}\", \"k%\": \"{kp:int}\"}\n"
    "    action: forward\n"
    "  - name: root\n"
    "    path: /\n"
    "    action: forward\n"
    "  - name: trailing\n"
    "    path: /dir/\n"
    "    action: deny\n"
    "  - name: api-writes\n"
    "    path: /api/v1/**\n"
    "    methods: [POST, PUT, DELETE, PATCH]\n"
    "    action: deny\n"
    "  - name: mixed\n"
    "    path: /u/{user:uuid}/n/{num:int}/s/{s}\n"
    "    allow: [mixed]\n"
    "  - name: colon-at\n"
    "    path: /a:b/@c/x+y/~z\n"
    "    action: deny\n"
    "  - name: everything-else\n"
    "    path: /**\n"
    "    methods: [GET]\n"
    "    action: forward\n";

static struct pc_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *errors = NULL;
    (void)argc;
    (void)argv;
    pc_hash_init();
    cfg = cfg_load_text("fuzz-rules.yaml", rules_yaml, sizeof(rules_yaml) - 1, NULL, &errors);
    if (cfg == NULL) {
        fprintf(stderr, "fuzz_canonical_path: rule set refused:\n%s", errors ? errors : "?\n");
        abort();
    }
    return 0;
}

/* ---- an independent model of canon_target ---- */

/* Written from the rules in README and issue #3, not from canon.c: libc
 * for case and hex, pointers and memchr for segments. */
static int ci_prefix(const char *s, size_t len, const char *p)
{
    size_t l = strlen(p);
    return len >= l && strncasecmp(s, p, l) == 0;
}

static int is_hex(char c)
{
    return c != '\0' && strchr("0123456789abcdefABCDEF", c) != NULL;
}

/* Returns 0 with the path in out (NUL-terminated), or -1. */
static int model_canon(const char *t, size_t len, int is_options, char *out, size_t *olen,
                       const char **q, size_t *qlen, int *hasq, int *asterisk)
{
    *hasq = 0;
    *asterisk = 0;
    *q = NULL;
    *qlen = 0;
    if (len == 0 || memchr(t, '#', len))
        return -1;
    if (len == 1 && t[0] == '*') {
        if (!is_options)
            return -1;
        strcpy(out, "*");
        *olen = 1;
        *asterisk = 1;
        return 0;
    }
    if (t[0] != '/') {
        size_t skip = ci_prefix(t, len, "http://") ? 7 : ci_prefix(t, len, "https://") ? 8 : 0;
        if (skip == 0)
            return -1;
        size_t a = skip;
        while (a < len && t[a] != '/' && t[a] != '?') {
            if (t[a] == '@' || t[a] == '%' || t[a] == '\\')
                return -1;
            a++;
        }
        if (a == skip)
            return -1;
        t += a;
        len -= a;
        if (len == 0 || t[0] == '?') {
            strcpy(out, "/");
            *olen = 1;
            if (len > 0) {
                *hasq = 1;
                *q = t + 1;
                *qlen = len - 1;
            }
            return 0;
        }
    }
    size_t plen = 0;
    while (plen < len && t[plen] != '?')
        plen++;
    if (plen < len) {
        *hasq = 1;
        *q = t + plen + 1;
        *qlen = len - plen - 1;
    }
    /* decode once: every '%' starts an escape of two hex digits */
    size_t o = 0;
    const char *src = t, *pend = t + plen;
    while (src < pend) {
        if (*src != '%') {
            out[o++] = *src++;
            continue;
        }
        if (pend - src < 3 || !is_hex(src[1]) || !is_hex(src[2]))
            return -1;
        char hex[3] = {src[1], src[2], '\0'};
        long c = strtol(hex, NULL, 16);
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#')
            return -1;
        out[o++] = (char)c;
        src += 3;
    }
    /* leading slashes: one */
    size_t lead = 0;
    while (lead < o && out[lead] == '/')
        lead++;
    if (lead == 0)
        return -1;
    memmove(out, out + lead - 1, o - (lead - 1));
    o -= lead - 1;
    out[o] = '\0';
    for (size_t i = 0; i + 1 < o; i++)
        if (out[i] == '/' && out[i + 1] == '/')
            return -1;
    /* no segment may be "." or ".." */
    const char *seg = out + 1, *end = out + o;
    for (;;) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        const char *segend = slash ? slash : end;
        size_t sl = (size_t)(segend - seg);
        if ((sl == 1 && memcmp(seg, ".", 1) == 0) || (sl == 2 && memcmp(seg, "..", 2) == 0))
            return -1;
        if (slash == NULL)
            break;
        seg = slash + 1;
    }
    *olen = o;
    return 0;
}

/* ---- canonical path invariants ---- */

static void check_path(const char *p, size_t len)
{
    FZ_CHECK(len > 0 && p[0] == '/', "path does not start with '/'");
    FZ_CHECK(strlen(p) == len, "NUL inside the path");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        FZ_CHECK(c >= 0x20 && c != 0x7f && c != '?' && c != '#', "byte 0x%02x in a canonical path", c);
    }
    FZ_CHECK(!fz_memmem(p, len, "//"), "'//' in %s", p);
    FZ_CHECK(!fz_memmem(p, len, "/./"), "'/./' in %s", p);
    FZ_CHECK(!fz_memmem(p, len, "/../"), "'/../' in %s", p);
    FZ_CHECK(!(len >= 2 && memcmp(p + len - 2, "/.", 2) == 0), "ends with '/.': %s", p);
    FZ_CHECK(!(len >= 3 && memcmp(p + len - 3, "/..", 3) == 0), "ends with '/..': %s", p);
}

static int enc_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

static void check_encode(const char *p, size_t len)
{
    char *enc = malloc(3 * len + 1);
    size_t el = canon_encode(p, len, enc);
    FZ_CHECK(el <= 3 * len && enc[el] == '\0', "encoded length");
    for (size_t i = 0; i < el; i++) {
        unsigned char c = (unsigned char)enc[i];
        if (c == '%') {
            FZ_CHECK(i + 2 < el, "short escape");
            for (int k = 1; k <= 2; k++) {
                unsigned char h = (unsigned char)enc[i + k];
                FZ_CHECK((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F'), "escape not upper-case hex");
            }
            unsigned v = (unsigned)(pc_hexval((unsigned char)enc[i + 1]) * 16 + pc_hexval((unsigned char)enc[i + 2]));
            FZ_CHECK(!enc_ok((unsigned char)v), "byte 0x%02x escaped needlessly", v);
            i += 2;
        } else {
            FZ_CHECK(enc_ok(c), "byte 0x%02x left raw in the encoded path", c);
        }
    }
    char *dec = malloc(el + 1);
    long dl = url_pct_decode(enc, el, dec, 0, 1);
    FZ_CHECK(dl >= 0 && (size_t)dl == len && memcmp(dec, p, len) == 0, "encoded path decodes differently");
    /* the upstream's reading of the encoded path is the same path */
    char *again = malloc(el + 2);
    struct canon_result r2;
    const char *why = NULL;
    int rc = canon_target(enc, el, 0, again, &r2, &why);
    FZ_CHECK(rc == 0, "encoded canonical path refused: %s (%s)", why ? why : "?", enc);
    FZ_CHECK(r2.path_len == len && memcmp(r2.path, p, len) == 0 && !r2.has_query,
             "encoded path canonicalises to %s, not %s", r2.path, p);
    free(again);
    free(dec);
    free(enc);
}

/* ---- an independent matcher: the templates in file order ---- */

struct seg {
    const char *p;
    size_t len;
};

static int tpl_matches(const struct rule *r, const struct seg *s, size_t n)
{
    for (size_t i = 0;; i++) {
        if (i < r->nsegs && r->segs[i].kind == SEG_GLOB)
            return 1;
        if (i == r->nsegs)
            return i == n;
        if (i == n)
            return 0;
        const struct rule_seg *g = &r->segs[i];
        if (g->kind == SEG_LIT) {
            if (!pc_memeq(g->lit, g->lit_len, s[i].p, s[i].len))
                return 0;
            continue;
        }
        if (s[i].len == 0)
            return 0;
        if (g->ptype == PT_UUID && !rule_is_uuid(s[i].p, s[i].len))
            return 0;
        if (g->ptype == PT_INT && !rule_is_int_candidate(s[i].p, s[i].len))
            return 0;
    }
}

/* Decode a query key or value as Werkzeug does: '+' is a space, malformed
 * escapes stay. */
static size_t q_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && pc_hexval((unsigned char)s[i + 1]) >= 0 &&
                   pc_hexval((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(pc_hexval((unsigned char)s[i + 1]) * 16 + pc_hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* How many '&'-separated pairs of the query have this key; the value of the
 * last one in val. */
static int q_count(const char *q, size_t ql, const char *key, char *val, size_t *vl)
{
    int n = 0;
    char *tmp = malloc(ql + 1);
    size_t i = 0;
    while (i <= ql) {
        size_t ps = i;
        while (i < ql && q[i] != '&')
            i++;
        size_t pe = i++;
        if (pe == ps)
            continue;
        const char *eq = memchr(q + ps, '=', pe - ps);
        size_t kl = eq ? (size_t)(eq - (q + ps)) : pe - ps;
        size_t dk = q_decode(q + ps, kl, tmp);
        if (!pc_memeq(tmp, dk, key, strlen(key)))
            continue;
        n++;
        *vl = eq ? q_decode(eq + 1, (size_t)(q + pe - eq - 1), val) : 0;
    }
    free(tmp);
    return n;
}

static int all_ascii_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return len > 0;
}

static void check_int_value(const char *v, size_t vl, const char *raw, size_t rl)
{
    FZ_CHECK(vl > 0 && all_ascii_digits(v, vl), "int capture '%s' is not decimal", v);
    FZ_CHECK(vl == 1 || v[0] != '0', "int capture '%s' has leading zeros", v);
    if (all_ascii_digits(raw, rl)) {
        size_t z = 0;
        while (z + 1 < rl && raw[z] == '0')
            z++;
        FZ_CHECK(pc_memeq(v, vl, raw + z, rl - z), "int capture '%s' from '%.*s'", v, (int)rl, raw);
    }
}

static void check_uuid_value(const char *v, size_t vl, const char *raw, size_t rl)
{
    FZ_CHECK(vl == 36 && rule_is_uuid(v, vl), "uuid capture of %zu bytes", vl);
    for (size_t i = 0; i < vl; i++)
        FZ_CHECK(!(v[i] >= 'A' && v[i] <= 'Z'), "upper case in a uuid capture: %s", v);
    FZ_CHECK(rl == vl, "uuid capture length differs from the raw value");
    for (size_t i = 0; i < rl; i++) {
        char c = raw[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        FZ_CHECK(c == v[i], "uuid capture is not the raw value lower-cased");
    }
}

static void check_match(enum h1_method method, const char *path, size_t plen, const char *query,
                        size_t qlen, int has_query)
{
    const struct rule_set *rs = cfg->rules;
    size_t bl = plen + qlen + 32;
    char *buf = malloc(bl); /* exactly the documented size */
    struct rule_match m;
    const char *why = NULL;
    int rc = rule_match(rs, method, path, plen, query, qlen, buf, &m, &why);
    FZ_CHECK(rc == 0 || rc == 400, "rule_match returned %d", rc);
    if (rc != 0)
        FZ_CHECK(why != NULL, "400 without a reason");

    struct seg segs[4096];
    size_t n = 0;
    for (size_t s = 1;;) {
        size_t e = s;
        while (e < plen && path[e] != '/')
            e++;
        if (n < PC_ARRAY_LEN(segs))
            segs[n] = (struct seg){path + s, e - s};
        n++;
        if (e >= plen)
            break;
        s = e + 1;
    }
    if (n > 128) {
        FZ_CHECK(rc == 400 && m.rule == NULL, "%zu segments not refused", n);
        free(buf);
        return;
    }
    unsigned mbit = method == H1_M_OTHER ? 0 : RULE_METHOD_BIT(method);
    const struct rule *first = NULL;
    for (size_t i = 0; i < rs->n && first == NULL; i++) {
        const struct rule *r = &rs->rules[i];
        if ((r->methods == 0 || (r->methods & mbit)) && tpl_matches(r, segs, n))
            first = r;
    }
    FZ_CHECK(m.rule == first, "trie picked rule %s, the first matching rule is %s",
             m.rule ? m.rule->name : "(none)", first ? first->name : "(none)");
    if (first == NULL) {
        FZ_CHECK(rc == 0, "400 without a rule");
        free(buf);
        return;
    }
    const struct rule *r = first;
    char *val = malloc(qlen + 1);
    int refused = 0;
    for (size_t c = 0; c < r->ncaptures; c++) {
        const struct rule_capture *cap = &r->captures[c];
        if (!m.present[c])
            continue;
        const char *v = m.values[c];
        size_t vl = m.lens[c];
        FZ_CHECK(v >= buf && v + vl < buf + bl && v[vl] == '\0', "capture outside the buffer");
        FZ_CHECK(memchr(v, '\0', vl) == NULL, "NUL inside a capture");
        if (cap->segment >= 0) {
            const struct seg *sv = &segs[cap->segment];
            if (cap->ptype == PT_UUID)
                check_uuid_value(v, vl, sv->p, sv->len);
            else if (cap->ptype == PT_INT)
                check_int_value(v, vl, sv->p, sv->len);
            else
                FZ_CHECK(pc_memeq(v, vl, sv->p, sv->len) && vl > 0, "capture is not its segment");
        }
    }
    /* captures are bound in order; a 400 stops at the first bad one */
    for (size_t c = 0; c < r->ncaptures && !refused; c++) {
        const struct rule_capture *cap = &r->captures[c];
        if (cap->segment >= 0) {
            if (!m.present[c]) {
                const struct seg *sv = &segs[cap->segment];
                FZ_CHECK(rc == 400 && cap->ptype == PT_INT && !all_ascii_digits(sv->p, sv->len),
                         "path capture %s unbound", cap->name);
                refused = 1;
            }
            continue;
        }
        size_t vl = 0;
        int k = has_query ? q_count(query, qlen, cap->query_key, val, &vl) : 0;
        if (k == 0) {
            FZ_CHECK(!m.present[c], "query capture %s bound without its key", cap->name);
        } else if (k > 1) {
            FZ_CHECK(rc == 400, "repeated query key %s not refused", cap->query_key);
            refused = 1;
        } else if (m.present[c]) {
            if (cap->ptype == PT_UUID)
                check_uuid_value(m.values[c], m.lens[c], val, vl);
            else if (cap->ptype == PT_INT)
                check_int_value(m.values[c], m.lens[c], val, vl);
            else
                FZ_CHECK(pc_memeq(m.values[c], m.lens[c], val, vl) && vl > 0, "query capture differs");
        } else {
            /* the one occurrence does not have the expected form */
            int ok = vl > 0 && memchr(val, '\0', vl) == NULL &&
                     (cap->ptype == PT_ANY || (cap->ptype == PT_UUID && rule_is_uuid(val, vl)) ||
                      (cap->ptype == PT_INT && rule_is_int_candidate(val, vl)));
            FZ_CHECK(rc == 400, "query capture %s unbound without a 400", cap->name);
            if (ok)
                FZ_CHECK(cap->ptype == PT_INT && !all_ascii_digits(val, vl),
                         "well-formed query value for %s refused", cap->name);
            refused = 1;
        }
    }
    if (rc == 400)
        FZ_CHECK(refused, "400 with every capture in order: %s", why);
    free(val);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum h1_method method = (enum h1_method)(data[0] % 10);
    const char *t = (const char *)data + 1;
    size_t tl = size - 1;
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return -1; /* h1_parse_request never passes these */

    char *target = malloc(tl ? tl : 1); /* exact size, for ASan */
    memcpy(target, t, tl);
    char *out = malloc(tl + 2);
    char *mout = malloc(tl + 2);
    struct canon_result res;
    const char *why = NULL;
    int is_options = method == H1_M_OPTIONS;
    int rc = canon_target(target, tl, is_options, out, &res, &why);

    size_t mlen = 0, mql = 0;
    const char *mq = NULL;
    int mhasq = 0, mast = 0;
    int mrc = model_canon(target, tl, is_options, mout, &mlen, &mq, &mql, &mhasq, &mast);
    FZ_CHECK(rc == mrc, "canon_target %d (%s), model %d", rc, rc ? why : "ok", mrc);
    if (rc != 0) {
        FZ_CHECK(why != NULL && why[0] != '\0', "refused without a reason");
        goto out;
    }
    FZ_CHECK(res.path == out, "path not in the caller's buffer");
    FZ_CHECK(res.path_len <= tl && res.path_len == mlen && memcmp(res.path, mout, mlen) == 0,
             "path %s, model %s", res.path, mout);
    FZ_CHECK(res.asterisk == mast && res.has_query == mhasq, "asterisk/has_query differ from the model");
    if (res.has_query)
        FZ_CHECK(res.query == mq && res.query_len == mql && res.query[-1] == '?' &&
                 res.query + res.query_len == target + tl, "query bounds");
    else
        FZ_CHECK(res.query_len == 0, "query without '?'");
    if (res.asterisk) {
        FZ_CHECK(is_options && res.path_len == 1 && res.path[0] == '*', "asterisk form");
        goto out;
    }
    check_path(res.path, res.path_len);
    check_encode(res.path, res.path_len);
    check_match(method, res.path, res.path_len, res.query, res.query_len, res.has_query);
out:
    free(mout);
    free(out);
    free(target);
    return 0;
}
