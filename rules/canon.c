/*
 * portcullis: canonical request paths (see canon.h for the contract).
 */
#include "canon.h"
#include "../lib/base.h"
#include "../lib/url.h"

#include <string.h>

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
            int h = url_escape_at(p, plen, i);
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
