/*
 * portcullis: canonical request paths (see canon.h for the contract).
 */
#include "canon.h"
#include "../proxy/util.h"

#include <string.h>

/* The value of the escape at src[i] ('%'), or -1 if it is malformed. */
static int canon_escape_at(const char *src, size_t len, size_t i)
{
    if (i + 2 >= len)
        return -1;
    int a = pc_hexval((unsigned char)src[i + 1]);
    int b = pc_hexval((unsigned char)src[i + 2]);
    return (a < 0 || b < 0) ? -1 : (a << 4 | b);
}

/* The byte that src[*i] decodes to; advances *i past it. -1 on a
 * malformed escape when strict; otherwise the '%' is kept literally, as
 * Werkzeug does in queries. */
static int canon_pct_step(const char *src, size_t len, size_t *i, int plus_is_space, int strict)
{
    unsigned char c = (unsigned char)src[*i];
    *i += 1;
    if (c == '%') {
        int h = canon_escape_at(src, len, *i - 1);
        if (h >= 0)
            *i += 2;
        return h >= 0 ? h : strict ? -1 : '%';
    }
    return c == '+' && plus_is_space ? ' ' : c;
}

long canon_pct_decode(const char *src, size_t len, char *dst, int plus_is_space, int strict)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int c = canon_pct_step(src, len, &i, plus_is_space, strict);
        if (c < 0)
            return -1;
        dst[o++] = (char)c;
    }
    return (long)o;
}

int canon_query_next(const char *q, size_t len, size_t *pos, struct canon_qpair *p)
{
    while (*pos <= len) {
        size_t ps = *pos, pe = ps;
        while (pe < len && q[pe] != '&')
            pe++;
        *pos = pe + 1;
        if (pe == ps)
            continue;
        const char *eq = memchr(q + ps, '=', pe - ps);
        p->key = q + ps;
        p->key_len = eq != NULL ? (size_t)(eq - p->key) : pe - ps;
        p->val = eq != NULL ? eq + 1 : q + pe;
        p->val_len = eq != NULL ? (size_t)(q + pe - p->val) : 0;
        return 1;
    }
    return 0;
}

int canon_query_key_is(const struct canon_qpair *p, const char *name, size_t name_len)
{
    size_t o = 0;
    for (size_t i = 0; i < p->key_len; o++) {
        int c = canon_pct_step(p->key, p->key_len, &i, 1, 0);
        if (o >= name_len || (unsigned char)name[o] != c)
            return 0;
    }
    return o == name_len;
}

static int canon_scheme_prefix(const char *t, size_t len, size_t *skip)
{
    if (len >= 7 && pc_caseeq(t, 7, "http://", 7)) {
        *skip = 7;
        return 1;
    }
    if (len >= 8 && pc_caseeq(t, 8, "https://", 8)) {
        *skip = 8;
        return 1;
    }
    return 0;
}

int canon_target(const char *target, size_t target_len, int is_options,
                 char *out, struct canon_result *res, const char **why)
{
    const char *p = target;
    size_t len = target_len;

    memset(res, 0, sizeof(*res));
    res->path = out;

    if (len == 0) {
        *why = "empty request-target";
        return -1;
    }
    if (memchr(target, '#', target_len) != NULL) {
        *why = "fragment in request-target";
        return -1;
    }
    if (len == 1 && p[0] == '*') {
        if (!is_options) {
            *why = "asterisk-form is only allowed with OPTIONS";
            return -1;
        }
        out[0] = '*';
        out[1] = '\0';
        res->path_len = 1;
        res->asterisk = 1;
        return 0;
    }
    if (p[0] != '/') {
        size_t skip;
        if (!canon_scheme_prefix(p, len, &skip)) {
            *why = "request-target must be origin-form or absolute-form";
            return -1;
        }
        /* authority: up to the first '/', '?' or the end */
        size_t a = skip;
        while (a < len && p[a] != '/' && p[a] != '?')
            a++;
        if (a == skip) {
            *why = "empty authority in absolute-form";
            return -1;
        }
        for (size_t k = skip; k < a; k++) {
            unsigned char c = (unsigned char)p[k];
            if (c == '@') {
                *why = "userinfo in absolute-form";
                return -1;
            }
            if (c == '%' || c == '\\') {
                *why = "invalid authority in absolute-form";
                return -1;
            }
        }
        res->authority = p + skip;
        res->authority_len = a - skip;
        p += a;
        len -= a;
        if (len == 0 || p[0] == '?') {
            /* "http://host" or "http://host?q": the path is "/" */
            const char *q = p;
            size_t ql = len;
            out[0] = '/';
            out[1] = '\0';
            res->path_len = 1;
            if (ql > 0) {
                res->has_query = 1;
                res->query = q + 1;
                res->query_len = ql - 1;
            }
            return 0;
        }
    }

    const char *qm = memchr(p, '?', len);
    size_t plen = qm ? (size_t)(qm - p) : len;
    if (qm != NULL) {
        res->has_query = 1;
        res->query = qm + 1;
        res->query_len = len - plen - 1;
    }

    /* 4. decode once, completely */
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            int h = canon_escape_at(p, plen, i);
            if (h < 0) {
                *why = "malformed percent-escape in path";
                return -1;
            }
            c = (unsigned char)h;
            i += 2;
            if (c < 0x20 || c == 0x7f) {
                *why = "encoded control character in path";
                return -1;
            }
            if (c == '?' || c == '#') {
                *why = "encoded '?' or '#' in path";
                return -1;
            }
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';

    /* 5. leading slashes collapse to one; any other "//" is refused */
    size_t lead = 0;
    while (lead + 1 < o && out[lead] == '/' && out[lead + 1] == '/')
        lead++;
    if (lead > 0) {
        memmove(out, out + lead, o - lead + 1);
        o -= lead;
    }
    if (o == 0 || out[0] != '/') {
        /* "%2Fx" decodes to "/x" and is fine; "x" is not origin-form */
        *why = "path does not start with '/'";
        return -1;
    }
    if (strstr(out, "//") != NULL) {
        *why = "empty path segment ('//')";
        return -1;
    }

    /* 6. dot segments in any encoding (checked after decoding) */
    size_t s = 1;
    while (s <= o) {
        size_t e = s;
        while (e < o && out[e] != '/')
            e++;
        size_t sl = e - s;
        if ((sl == 1 && out[s] == '.') || (sl == 2 && out[s] == '.' && out[s + 1] == '.')) {
            *why = "dot segment in path";
            return -1;
        }
        s = e + 1;
    }
    res->path_len = o;
    return 0;
}

/* Bytes that may stay raw in an encoded path: unreserved, sub-delims, ':'
 * '@' and '/'. Everything else, '%' included, is escaped. */
static const unsigned char canon_raw_ok[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
    [':'] = 1, ['@'] = 1, ['/'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

size_t canon_encode(const char *path, size_t len, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (canon_raw_ok[c]) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return o;
}
