/*
 * portcullis base: percent-decoding and query strings, read the way
 * Werkzeug reads them (see url.h).
 */
#include "url.h"
#include "base.h"

#include <string.h>

/* The value of the escape at src[i] ('%'), or -1 if it is malformed. */
int url_escape_at(const char *src, size_t len, size_t i)
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
static int url_pct_step(const char *src, size_t len, size_t *i, int plus_is_space, int strict)
{
    unsigned char c = (unsigned char)src[*i];
    *i += 1;
    if (c == '%') {
        int h = url_escape_at(src, len, *i - 1);
        if (h >= 0)
            *i += 2;
        return h >= 0 ? h : strict ? -1 : '%';
    }
    return c == '+' && plus_is_space ? ' ' : c;
}

long url_pct_decode(const char *src, size_t len, char *dst, int plus_is_space, int strict)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int c = url_pct_step(src, len, &i, plus_is_space, strict);
        if (c < 0)
            return -1;
        dst[o++] = (char)c;
    }
    return (long)o;
}

int url_query_next(const char *q, size_t len, size_t *pos, struct url_qpair *p)
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

int url_query_key_is(const struct url_qpair *p, const char *name, size_t name_len)
{
    size_t o = 0;
    for (size_t i = 0; i < p->key_len; o++) {
        int c = url_pct_step(p->key, p->key_len, &i, 1, 0);
        if (o >= name_len || (unsigned char)name[o] != c)
            return 0;
    }
    return o == name_len;
}
