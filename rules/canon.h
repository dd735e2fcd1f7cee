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

#include "../lib/url.h"

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

#endif
