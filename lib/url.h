/*
 * portcullis base: percent-decoding and query strings, as Werkzeug reads
 * them. Pure functions over caller-owned memory.
 */
#ifndef PC_URL_H
#define PC_URL_H

#include <stddef.h>

/* The value of the escape at src[i] ('%'), or -1 if it is malformed. */
int url_escape_at(const char *src, size_t len, size_t i);

/* Percent-decode in place-style into dst (dst may equal src). Returns the
 * decoded length, or -1 on a malformed escape. plus_is_space for queries. */
long url_pct_decode(const char *src, size_t len, char *dst, int plus_is_space, int strict);

/* One pair of a raw query string, as Werkzeug splits it: on '&', then at
 * the first '='; a pair without '=' has an empty value. */
struct url_qpair {
    const char *key, *val; /* raw, pointing into the query */
    size_t key_len, val_len;
};
/* The next non-empty pair at or after *pos (start at 0). 1, or 0 at the end. */
int url_query_next(const char *q, size_t len, size_t *pos, struct url_qpair *p);
/* Does the pair's key decode ('%XX' and '+') to exactly name? No length limit. */
int url_query_key_is(const struct url_qpair *p, const char *name, size_t name_len);

#endif
