/*
 * portcullis: the canonical path.
 *
 * The backend (gunicorn + Werkzeug) percent-decodes the whole path once,
 * strips leading slashes, never resolves dot segments and routes on the
 * result. portcullis computes that same decoded path, refuses every form
 * on which two readers could disagree (inner "//", dot segments, encoded
 * NUL/CTL/"?"/"#", malformed escapes), matches rules against it, and sends
 * the upstream a minimal re-encoding that decodes back to exactly it.
 */
#ifndef PC_CANON_H
#define PC_CANON_H

#include <stddef.h>

struct canon_result {
    /* decoded canonical path, in the caller's buffer; NUL-terminated */
    char *path;
    size_t path_len;
    /* the query (after the first '?'), raw, pointing into the target */
    const char *query;
    size_t query_len;
    int has_query;
    int asterisk;           /* OPTIONS * */
    /* absolute-form: the authority, which replaces Host (RFC 9112 3.2.2) */
    const char *authority;
    size_t authority_len;
};

/*
 * Canonicalise a request-target. out must have room for target_len + 2
 * bytes. Returns 0, or -1 with *why (the request gets 400).
 */
int canon_target(const char *target, size_t target_len, int is_options,
                 char *out, struct canon_result *res, const char **why);

/* Re-encode a canonical path for the upstream. dst needs 3*len+1 bytes.
 * Returns the encoded length. */
size_t canon_encode(const char *path, size_t len, char *dst);

/* Percent-decode in place-style into dst (dst may equal src). Returns the
 * decoded length, or -1 on a malformed escape. plus_is_space for queries. */
long canon_pct_decode(const char *src, size_t len, char *dst, int plus_is_space, int strict);

/* One pair of a raw query string, as Werkzeug splits it: on '&', then at
 * the first '='; a pair without '=' has an empty value. */
struct canon_qpair {
    const char *key, *val; /* raw, pointing into the query */
    size_t key_len, val_len;
};
/* The next non-empty pair at or after *pos (start at 0). 1, or 0 at the end. */
int canon_query_next(const char *q, size_t len, size_t *pos, struct canon_qpair *p);
/* Does the pair's key decode ('%XX' and '+') to exactly name? No length limit. */
int canon_query_key_is(const struct canon_qpair *p, const char *name, size_t name_len);

#endif
