/*
 * portcullis: rule templates, the segment trie, and matching.
 */
#include "match.h"
#include "canon.h"
#include "../lib/base.h"
#include "../lib/cfg.h"
#include "../policies/data.h"
#include "../policies/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates ---- */

int rule_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (pc_hexval((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

/*
 * {x:int}: Werkzeug's IntegerConverter matches Python's \d+, which is every
 * Unicode decimal digit (category Nd), and hands the view int(value). So an
 * int segment here is any run of ASCII digits and non-ASCII characters; at
 * binding, each character is mapped to its digit and the value is written
 * as a plain decimal without leading zeros, as the backend will see it. A
 * non-ASCII character that is not a known digit is refused (400): the
 * backend's Unicode tables may be newer than ours, and a segment we cannot
 * read with certainty must not slip past an int rule.
 */
static const uint32_t rule_nd_zeros[] = {
    /* code points of DIGIT ZERO in every Nd block, Unicode 14.0 */
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6,
    0xD66, 0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0,
    0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0,
    0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136,
    0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950,
    0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2,
    0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
};

/* Decode one UTF-8 code point; returns its length, 0 if invalid. */
static size_t rule_utf8(const unsigned char *p, size_t len, uint32_t *cp)
{
    unsigned c = p[0];
    size_t n;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, *cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, *cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, *cp = c & 0x07;
    else
        return 0;
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        *cp = *cp << 6 | (p[i] & 0x3f);
    }
    return n;
}

/* Normalise an int segment into out (room for len + 1). Returns the length,
 * or -1 when a character is not a digit we know. */
static long rule_int_normalise(const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = rule_utf8((const unsigned char *)s + i, len - i, &cp);
        int d = -1;
        if (n == 0)
            return -1;
        for (size_t z = 0; z < PC_ARRAY_LEN(rule_nd_zeros); z++) {
            if (cp >= rule_nd_zeros[z] && cp < rule_nd_zeros[z] + 10) {
                d = (int)(cp - rule_nd_zeros[z]);
                break;
            }
        }
        if (d < 0)
            return -1;
        if (o > 0 || d != 0)
            out[o++] = (char)('0' + d);
        i += n;
    }
    if (o == 0)
        out[o++] = '0';
    out[o] = '\0';
    return (long)o;
}

int rule_is_int_candidate(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (unsigned char)s[i] >= 0x80))
            return 0;
    return 1;
}

static int rule_ident_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

void rule_segs_free(struct rule_seg *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(segs[i].lit);
        free(segs[i].name);
    }
    free(segs);
}

/* "{name}" / "{name:uuid}" / "{name:int}" -> name and type. */
static int rule_parse_capture(const char *s, size_t len, char **name, enum param_type *pt,
                              const char **why)
{
    if (len < 3 || s[0] != '{' || s[len - 1] != '}') {
        *why = "a capture must be a whole segment written {name} or {name:type}";
        return -1;
    }
    const char *in = s + 1;
    size_t il = len - 2;
    const char *colon = memchr(in, ':', il);
    size_t nl = colon ? (size_t)(colon - in) : il;
    if (!rule_ident_ok(in, nl)) {
        *why = "capture names are identifiers ([A-Za-z_][A-Za-z0-9_]*)";
        return -1;
    }
    *pt = PT_ANY;
    if (colon != NULL) {
        const char *t = colon + 1;
        size_t tl = il - nl - 1;
        if (pc_memeq(t, tl, "uuid", 4))
            *pt = PT_UUID;
        else if (pc_memeq(t, tl, "int", 3))
            *pt = PT_INT;
        else {
            *why = "capture type must be uuid or int";
            return -1;
        }
    }
    *name = pc_strndup(in, nl);
    return 0;
}

int rule_compile_template(const char *tpl, struct rule_seg **segs_out, size_t *nsegs_out,
                          const char **why)
{
    size_t len = strlen(tpl), n = 0, cap = 8;
    struct rule_seg *segs;

    if (len == 0 || tpl[0] != '/') {
        *why = "a path template must start with '/'";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tpl[i];
        if (c < 0x20 || c == 0x7f || c == '%' || c == '?' || c == '#') {
            *why = "path templates are decoded paths: no '%', '?', '#' or control characters";
            return -1;
        }
    }
    segs = pc_calloc(cap, sizeof(*segs));
    size_t s = 1;
    for (;;) {
        size_t e = s;
        while (e < len && tpl[e] != '/')
            e++;
        const char *seg = tpl + s;
        size_t sl = e - s;
        int last = e >= len;
        if (n == cap) {
            cap *= 2;
            segs = pc_realloc(segs, cap * sizeof(*segs));
            memset(segs + n, 0, (cap - n) * sizeof(*segs));
        }
        struct rule_seg *g = &segs[n];
        if (sl == 0 && !last) {
            *why = "empty segment ('//') in template";
            goto fail;
        }
        if (pc_memeq(seg, sl, "**", 2)) {
            if (!last) {
                *why = "'**' must be the last segment";
                goto fail;
            }
            g->kind = SEG_GLOB;
        } else if (pc_memeq(seg, sl, "*", 1)) {
            g->kind = SEG_PARAM;
            g->ptype = PT_ANY;
        } else if (sl > 0 && seg[0] == '{') {
            g->kind = SEG_PARAM;
            if (rule_parse_capture(seg, sl, &g->name, &g->ptype, why) != 0)
                goto fail;
        } else {
            if (memchr(seg, '{', sl) || memchr(seg, '}', sl) || memchr(seg, '*', sl)) {
                *why = "a capture or wildcard must be a whole segment";
                goto fail;
            }
            if (pc_memeq(seg, sl, ".", 1) || pc_memeq(seg, sl, "..", 2)) {
                *why = "dot segments never match (requests with them are refused)";
                goto fail;
            }
            g->kind = SEG_LIT;
            g->lit = pc_strndup(seg, sl);
            g->lit_len = sl;
        }
        n++;
        if (last)
            break;
        s = e + 1;
    }
    *segs_out = segs;
    *nsegs_out = n;
    return 0;
fail:
    rule_segs_free(segs, n + 1);
    return -1;
}

static int rule_type_ok(enum param_type t, const char *s, size_t len)
{
    switch (t) {
    case PT_ANY: return len > 0;
    case PT_UUID: return rule_is_uuid(s, len);
    case PT_INT: return rule_is_int_candidate(s, len);
    }
    return 0;
}

/* Does segment a take every segment b takes? A literal b is judged as
 * matching judges a path segment, so the check cannot disagree with it. */
static int rule_seg_covers(const struct rule_seg *a, const struct rule_seg *b)
{
    if (a->kind == SEG_LIT)
        return b->kind == SEG_LIT && pc_memeq(a->lit, a->lit_len, b->lit, b->lit_len);
    if (b->kind == SEG_PARAM)
        return a->ptype == PT_ANY || a->ptype == b->ptype;
    return rule_type_ok(a->ptype, b->lit, b->lit_len);
}

int rule_template_covers(const struct rule_seg *a, size_t na, const struct rule_seg *b, size_t nb)
{
    size_t i = 0;
    for (;; i++) {
        if (i < na && a[i].kind == SEG_GLOB)
            return 1;
        if (i == na)
            return i == nb;
        if (i == nb)
            return 0;
        if (b[i].kind == SEG_GLOB)
            return 0;
        if (!rule_seg_covers(&a[i], &b[i]))
            return 0;
    }
}

/* ---- the trie ---- */

struct trie_edge {
    char *seg;
    size_t len;
    struct trie_node *child;
};

struct trie_node {
    struct trie_edge *lits;     /* sorted by (len, bytes) */
    size_t nlits;
    struct trie_node *param[3];
    int *ends;                  /* rules ending here, ascending */
    size_t nends;
    int *globs;                 /* rules with '**' here, ascending */
    size_t nglobs;
    int min_rule;               /* smallest rule index in this subtree */
};

static struct trie_node *trie_node_new(void)
{
    struct trie_node *t = pc_calloc(1, sizeof(*t));
    t->min_rule = INT32_MAX;
    return t;
}

static void trie_free(struct trie_node *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nlits; i++) {
        free(t->lits[i].seg);
        trie_free(t->lits[i].child);
    }
    for (int i = 0; i < 3; i++)
        trie_free(t->param[i]);
    free(t->lits);
    free(t->ends);
    free(t->globs);
    free(t);
}

static int trie_edge_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl)
        return al < bl ? -1 : 1;
    return memcmp(a, b, al);
}

static struct trie_node *trie_lit_find(const struct trie_node *t, const char *s, size_t len)
{
    size_t lo = 0, hi = t->nlits;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = trie_edge_cmp(t->lits[mid].seg, t->lits[mid].len, s, len);
        if (c == 0)
            return t->lits[mid].child;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct trie_node *trie_lit_add(struct trie_node *t, const char *s, size_t len)
{
    struct trie_node *c = trie_lit_find(t, s, len);
    if (c != NULL)
        return c;
    size_t pos = 0;
    while (pos < t->nlits && trie_edge_cmp(t->lits[pos].seg, t->lits[pos].len, s, len) < 0)
        pos++;
    t->lits = pc_realloc(t->lits, (t->nlits + 1) * sizeof(*t->lits));
    memmove(t->lits + pos + 1, t->lits + pos, (t->nlits - pos) * sizeof(*t->lits));
    t->lits[pos].seg = pc_strndup(s, len);
    t->lits[pos].len = len;
    t->lits[pos].child = trie_node_new();
    t->nlits++;
    return t->lits[pos].child;
}

static void trie_push(int **arr, size_t *n, int v)
{
    *arr = pc_realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = v; /* rules are inserted in ascending order */
}

static void trie_insert(struct trie_node *root, const struct rule *r)
{
    struct trie_node *t = root;
    for (size_t i = 0; i < r->nsegs; i++) {
        const struct rule_seg *g = &r->segs[i];
        if (t->min_rule > r->index)
            t->min_rule = r->index;
        if (g->kind == SEG_GLOB) {
            trie_push(&t->globs, &t->nglobs, r->index);
            return;
        }
        if (g->kind == SEG_LIT) {
            t = trie_lit_add(t, g->lit, g->lit_len);
        } else {
            if (t->param[g->ptype] == NULL)
                t->param[g->ptype] = trie_node_new();
            t = t->param[g->ptype];
        }
    }
    if (t->min_rule > r->index)
        t->min_rule = r->index;
    trie_push(&t->ends, &t->nends, r->index);
}

struct trie_walk {
    const struct rule_set *rs;
    unsigned mbit;              /* RULE_METHOD_BIT of the request */
    const struct pc_str *segs;
    size_t nsegs;
    int best;
};

static int trie_method_ok(const struct rule *r, unsigned mbit)
{
    return r->methods == 0 || (r->methods & mbit) != 0;
}

static void trie_take(struct trie_walk *w, const int *list, size_t n)
{
    for (size_t i = 0; i < n && list[i] < w->best; i++) {
        if (trie_method_ok(&w->rs->rules[list[i]], w->mbit)) {
            w->best = list[i];
            return;
        }
    }
}

static void trie_walk(struct trie_walk *w, const struct trie_node *t, size_t depth)
{
    if (t == NULL || t->min_rule >= w->best)
        return;
    trie_take(w, t->globs, t->nglobs);
    if (depth == w->nsegs) {
        trie_take(w, t->ends, t->nends);
        return;
    }
    const struct pc_str *s = &w->segs[depth];
    trie_walk(w, trie_lit_find(t, s->p, s->len), depth + 1);
    if (s->len == 0)
        return;
    if (t->param[PT_UUID] && rule_is_uuid(s->p, s->len))
        trie_walk(w, t->param[PT_UUID], depth + 1);
    if (t->param[PT_INT] && rule_is_int_candidate(s->p, s->len))
        trie_walk(w, t->param[PT_INT], depth + 1);
    trie_walk(w, t->param[PT_ANY], depth + 1);
}

/* ---- matching ---- */

#define RULE_MAX_SEGS 128
#define RULE_MAX_QUERY_KEY 200  /* bytes in a query capture's parameter name */

static void rule_lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] + 32);
}

/* s (len bytes, room for one more) in its type's normal form, in place
 * (never longer), NUL-terminated: a uuid in lower case, an int as ASCII
 * digits. The new length, or -1 for an int with a character that is not a
 * digit we know. */
static long rule_normal_form(char *s, size_t len, enum param_type t)
{
    long n = (long)len;
    if (t == PT_UUID)
        rule_lower(s, len);
    else if (t == PT_INT && (n = rule_int_normalise(s, len, s)) < 0)
        return -1;
    s[n] = '\0';
    return n;
}

static void rule_bound(struct rule_match *m, size_t c, const char *v, size_t len)
{
    m->values[c] = v;
    m->lens[c] = len;
    m->present[c] = 1;
}

int rule_match(const struct rule_set *rs, enum h1_method method, const char *path,
               size_t path_len, const char *query, size_t query_len, char *buf, struct rule_match *m,
               const char **why)
{
    struct pc_str segs[RULE_MAX_SEGS];
    size_t nsegs = 0;

    memset(m, 0, sizeof(*m));
    if (rs == NULL || rs->n == 0 || path_len == 0 || path[0] != '/')
        return 0;
    size_t s = 1;
    for (;;) {
        size_t e = s;
        while (e < path_len && path[e] != '/')
            e++;
        if (nsegs == RULE_MAX_SEGS) {
            *why = "too many path segments";
            return 400;
        }
        segs[nsegs].p = path + s;
        segs[nsegs].len = e - s;
        nsegs++;
        if (e >= path_len)
            break;
        s = e + 1;
    }

    struct trie_walk w = {rs, method == H1_M_OTHER ? 0 : RULE_METHOD_BIT(method), segs, nsegs, INT32_MAX};
    trie_walk(&w, rs->root, 0);
    if (w.best == INT32_MAX)
        return 0;
    const struct rule *r = &rs->rules[w.best];
    m->rule = r;

    /* bind captures into buf: each value is copied there, then put into
     * its type's normal form in place */
    size_t o = 0;
    for (size_t c = 0; c < r->ncaptures; c++) {
        const struct rule_capture *cap = &r->captures[c];
        long n;
        if (cap->segment >= 0) {
            const struct pc_str *sv = &segs[cap->segment];
            memcpy(buf + o, sv->p, sv->len);
            n = rule_normal_form(buf + o, sv->len, cap->ptype);
            if (n < 0) {
                *why = "integer path segment with characters that are not digits we know";
                return 400;
            }
            rule_bound(m, c, buf + o, (size_t)n);
            o += (size_t)n + 1;
            continue;
        }
        /* query capture: '&'-separated pairs, decoded as Werkzeug does */
        size_t pos = 0;
        struct url_qpair qp;
        while (url_query_next(query, query_len, &pos, &qp)) {
            if (!url_query_key_is(&qp, cap->query_key, cap->query_key_len))
                continue;
            if (m->present[c]) {
                *why = "query parameter repeated; it designates one resource";
                return 400;
            }
            n = url_pct_decode(qp.val, qp.val_len, buf + o, 1, 0);
            if (memchr(buf + o, '\0', (size_t)n) != NULL || !rule_type_ok(cap->ptype, buf + o, (size_t)n) ||
                (n = rule_normal_form(buf + o, (size_t)n, cap->ptype)) < 0) {
                *why = "query parameter does not have the expected form";
                return 400;
            }
            rule_bound(m, c, buf + o, (size_t)n);
            o += (size_t)n + 1;
        }
    }
    return 0;
}

/* ---- config ---- */

void rule_set_free(struct rule_set *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        struct rule *r = &rs->rules[i];
        free(r->name);
        free(r->path);
        rule_segs_free(r->segs, r->nsegs);
        dec_plan_clear(&r->plan);
        for (size_t c = 0; c < r->ncaptures; c++) {
            free(r->captures[c].name);
            free(r->captures[c].query_key);
        }
        free(r->captures);
    }
    free(rs->rules);
    trie_free(rs->root);
    free(rs);
}

static int rule_add_capture(struct cfg_ctx *ctx, struct yt_node *at, struct rule *r,
                            const char *name, enum param_type pt, int segment, const char *qkey)
{
    if (strcmp(name, "subject") == 0 || strcmp(name, "claims") == 0 || strcmp(name, "data") == 0) {
        cfg_error(ctx, at, "rule '%s': capture name '%s' is reserved", r->name, name);
        return -1;
    }
    for (size_t i = 0; i < r->ncaptures; i++) {
        if (strcmp(r->captures[i].name, name) == 0) {
            cfg_error(ctx, at, "rule '%s': capture '%s' is bound twice", r->name, name);
            return -1;
        }
    }
    if (r->ncaptures == RULE_MAX_CAPTURES) {
        cfg_error(ctx, at, "rule '%s': more than %d captures", r->name, RULE_MAX_CAPTURES);
        return -1;
    }
    r->captures = pc_realloc(r->captures, (r->ncaptures + 1) * sizeof(*r->captures));
    r->captures[r->ncaptures].name = pc_strdup(name);
    r->captures[r->ncaptures].ptype = pt;
    r->captures[r->ncaptures].segment = segment;
    r->captures[r->ncaptures].query_key = qkey ? pc_strdup(qkey) : NULL;
    r->captures[r->ncaptures].query_key_len = qkey ? strlen(qkey) : 0;
    r->ncaptures++;
    return 0;
}

/* The bit of a method rules may name; 0 for one they may not (CONNECT is
 * refused by the parser, and anything else never matches a rule). */
static unsigned rule_method_bit(const char *m)
{
    enum h1_method id = h1_method_from_name(m, strlen(m));
    if (id == H1_M_OTHER || id == H1_M_CONNECT)
        return 0;
    return RULE_METHOD_BIT(id);
}

static void rule_parse_one(struct cfg_ctx *ctx, const struct yt_node *n, const struct pol_set *ps,
                           const struct pol_data *data, struct rule *r)
{
    static const char *const keys[] = {"name", "path", "methods", "allow", "action", "query", "shadow", "fallback"};
    struct yt_node *path = NULL, *allow = NULL, *action = NULL, *query = NULL;

    r->line = n->line;
    r->col = n->col;
    for (size_t i = 0; i < n->n; i++) {
        struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "name") == 0) {
            if (cfg_expect(ctx, v, YT_SCALAR, "rule name") == 0) {
                if (v->len == 0 || strspn(v->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != v->len)
                    cfg_error(ctx, v, "rule names use [A-Za-z0-9_.-], found '%s'", v->str);
                else
                    r->name = pc_strdup(v->str);
            }
        } else if (strcmp(k->str, "path") == 0) {
            if (cfg_expect(ctx, v, YT_SCALAR, "rule path") == 0)
                path = v;
        } else if (strcmp(k->str, "methods") == 0) {
            if (cfg_expect(ctx, v, YT_SEQ, "methods") != 0)
                continue;
            if (v->n == 0)
                cfg_error(ctx, v, "methods must not be empty (leave it out to match every method)");
            for (size_t j = 0; j < v->n; j++) {
                struct yt_node *m = v->items[j];
                if (cfg_expect(ctx, m, YT_SCALAR, "method") != 0)
                    continue;
                unsigned bit = rule_method_bit(m->str);
                if (bit == 0)
                    cfg_error(ctx, m, "unknown method '%s' (methods are upper case: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE)", m->str);
                r->methods |= bit;
                if (bit == RULE_METHOD_BIT(H1_M_GET))
                    r->methods |= RULE_METHOD_BIT(H1_M_HEAD); /* GET implies HEAD */
            }
        } else if (strcmp(k->str, "allow") == 0) {
            if (cfg_expect(ctx, v, YT_SEQ, "allow") == 0)
                allow = v;
        } else if (strcmp(k->str, "action") == 0) {
            if (cfg_expect(ctx, v, YT_SCALAR, "action") == 0)
                action = v;
        } else if (strcmp(k->str, "query") == 0) {
            if (cfg_expect(ctx, v, YT_MAP, "query") == 0)
                query = v;
        } else if (strcmp(k->str, "shadow") == 0) {
            cfg_scalar(ctx, v, CFG_BOOL, &r->shadow, 0, 0);
        } else if (strcmp(k->str, "fallback") == 0) {
            cfg_scalar(ctx, v, CFG_BOOL, &r->fallback, 0, 0);
        } else {
            cfg_unknown_key(ctx, k, "a rule", keys, PC_ARRAY_LEN(keys));
        }
    }
    if (r->name == NULL) {
        cfg_error(ctx, n, "rule needs a name");
        r->name = pc_sprintf("#%d", r->index + 1);
    }
    if (path == NULL) {
        cfg_error(ctx, n, "rule '%s' needs a path", r->name);
    } else {
        const char *why;
        r->path = pc_strdup(path->str);
        if (rule_compile_template(path->str, &r->segs, &r->nsegs, &why) != 0) {
            cfg_error(ctx, path, "rule '%s': bad path template '%s': %s", r->name, path->str, why);
            r->segs = NULL;
            r->nsegs = 0;
        } else {
            for (size_t s = 0; s < r->nsegs; s++)
                if (r->segs[s].kind == SEG_PARAM && r->segs[s].name != NULL)
                    rule_add_capture(ctx, path, r, r->segs[s].name, r->segs[s].ptype, (int)s, NULL);
        }
    }
    if (query != NULL) {
        for (size_t i = 0; i < query->n; i++) {
            struct yt_node *k = query->keys[i], *v = query->items[i];
            char *name = NULL;
            enum param_type pt;
            const char *why;
            if (cfg_expect(ctx, v, YT_SCALAR, "query capture") != 0)
                continue;
            if (k->len == 0 || k->len > RULE_MAX_QUERY_KEY) {
                cfg_error(ctx, k, "rule '%s': bad query parameter name", r->name);
                continue;
            }
            if (rule_parse_capture(v->str, v->len, &name, &pt, &why) != 0) {
                cfg_error(ctx, v, "rule '%s': query capture '%s': %s", r->name, v->str, why);
                continue;
            }
            rule_add_capture(ctx, v, r, name, pt, -1, k->str);
            free(name);
        }
    }
    if ((allow != NULL) == (action != NULL)) {
        cfg_error(ctx, n, "rule '%s' needs exactly one of allow: or action:", r->name);
    } else if (action != NULL) {
        if (strcmp(action->str, "forward") == 0)
            r->action = RULE_FORWARD;
        else if (strcmp(action->str, "deny") == 0)
            r->action = RULE_DENY;
        else
            cfg_error(ctx, action, "rule '%s': action must be forward or deny, found '%s'", r->name, action->str);
    } else {
        r->action = RULE_ALLOW;
        if (allow->n == 0)
            cfg_error(ctx, allow, "rule '%s': allow must name at least one policy", r->name);
        r->plan.name = r->name;
        r->plan.steps = pc_calloc(allow->n ? allow->n : 1, sizeof(*r->plan.steps));
        for (size_t i = 0; i < allow->n; i++) {
            struct yt_node *p = allow->items[i];
            if (cfg_expect(ctx, p, YT_SCALAR, "policy name") != 0)
                continue;
            int pi = pol_find(ps, p->str);
            if (pi < 0) {
                cfg_error(ctx, p, "rule '%s': unknown policy '%s'", r->name, p->str);
                continue;
            }
            int dup = 0;
            for (size_t k = 0; k < r->plan.nsteps; k++)
                dup |= r->plan.steps[k].policy == pi;
            if (dup) {
                cfg_error(ctx, p, "rule '%s': policy '%s' is listed twice", r->name, p->str);
                continue;
            }
            if (r->plan.nsteps == RULE_MAX_ALLOW) {
                cfg_error(ctx, p, "rule '%s': more than %d policies in allow", r->name, RULE_MAX_ALLOW);
                continue;
            }
            struct dec_step *ra = &r->plan.steps[r->plan.nsteps++];
            ra->policy = pi;
            size_t np = pol_nparams(ps, pi);
            ra->binds = pc_calloc(np ? np : 1, sizeof(*ra->binds));
            ra->nbinds = np;
            for (size_t j = 0; j < np; j++) {
                const char *pn = pol_param(ps, pi, j);
                struct dec_bind *b = &ra->binds[j];
                if (strcmp(pn, "subject") == 0) {
                    b->kind = DEC_B_SUBJECT;
                } else if (strncmp(pn, "claims.", 7) == 0) {
                    b->kind = DEC_B_CLAIM;
                    b->claim = pc_strdup(pn + 7);
                    r->plan.needs_claims = 1;
                } else if (strncmp(pn, "data.", 5) == 0) {
                    int slot = pol_data_slot(data, pn + 5);
                    if (slot < 0) {
                        cfg_error(ctx, p, "rule '%s': policy '%s' binds :%s, which no data set declares "
                                  "(data: <set>: shape: <key>[: fields: <field>])", r->name, p->str, pn);
                        continue;
                    }
                    b->kind = DEC_B_DATA;
                    b->capture = slot;
                    r->plan.binds_data = 1;
                } else {
                    size_t c;
                    for (c = 0; c < r->ncaptures; c++)
                        if (strcmp(r->captures[c].name, pn) == 0)
                            break;
                    if (c == r->ncaptures) {
                        cfg_error(ctx, p, "rule '%s': policy '%s' uses parameter :%s, which this rule does not bind",
                                  r->name, p->str, pn);
                        continue;
                    }
                    b->kind = DEC_B_CAPTURE;
                    b->capture = (int)c;
                }
            }
        }
    }
}

void rule_config_parse(struct cfg_ctx *ctx, const struct yt_node *n, const struct pol_set *ps,
                       const struct pol_data *data, struct rule_set **out)
{
    struct rule_set *rs = pc_calloc(1, sizeof(*rs));
    *out = rs; /* once: the YAML loader refuses a second 'rules' key */
    rs->root = trie_node_new();
    if (n == NULL)
        return;
    if (cfg_expect(ctx, n, YT_SEQ, "rules") != 0)
        return;
    rs->rules = pc_calloc(n->n ? n->n : 1, sizeof(*rs->rules));
    for (size_t i = 0; i < n->n; i++) {
        struct yt_node *rn = n->items[i];
        struct rule *r = &rs->rules[rs->n];
        if (cfg_expect(ctx, rn, YT_MAP, "a rule") != 0)
            continue;
        r->index = (int)rs->n;
        rs->n++;
        rule_parse_one(ctx, rn, ps, data, r);
        for (size_t j = 0; j + 1 < rs->n; j++) {
            if (strcmp(rs->rules[j].name, r->name) == 0) {
                cfg_error(ctx, rn, "duplicate rule name '%s' (first at line %d)", r->name, rs->rules[j].line);
                break;
            }
        }
        if (r->segs == NULL)
            continue;
        /* unreachable: an earlier rule matches everything this one does */
        for (size_t j = 0; j + 1 < rs->n; j++) {
            const struct rule *e = &rs->rules[j];
            if (e->segs == NULL)
                continue;
            int methods_cover = e->methods == 0 || (r->methods != 0 && (r->methods & ~e->methods) == 0);
            if (methods_cover && rule_template_covers(e->segs, e->nsegs, r->segs, r->nsegs)) {
                cfg_error(ctx, rn, "rule '%s' is unreachable: rule '%s' (line %d) matches every request it matches",
                          r->name, e->name, e->line);
                break;
            }
        }
        trie_insert(rs->root, r);
    }
}

void rule_default_parse(struct cfg_ctx *ctx, const struct yt_node *n, int *default_forward)
{
    if (cfg_expect(ctx, n, YT_SCALAR, "default") != 0)
        return;
    if (strcmp(n->str, "deny") == 0)
        *default_forward = 0;
    else if (strcmp(n->str, "forward") == 0)
        *default_forward = 1;
    else
        cfg_error(ctx, n, "default must be deny or forward, found '%s'", n->str);
}
