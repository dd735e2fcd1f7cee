/*
 * portcullis: identity. Which credentials a request carries, and who they
 * say the caller is.
 *
 * Confused deputy: the backend reads the same places (cookies, then the
 * Authorization header). portcullis takes every credential from every
 * configured source; they must all verify and all name the same subject,
 * or the request gets 401.
 */
#ifndef PC_IDENTITY_H
#define PC_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "jwt.h"
#include "../lib/h1.h"
#include "../lib/pool.h"

struct cfg_ctx;
struct yt_node;

struct id_key {
    char *id;
    unsigned char *secret;
    size_t secret_len;
};

enum id_source_kind { ID_SRC_COOKIE, ID_SRC_HEADER, ID_SRC_QUERY };

struct id_source {
    enum id_source_kind kind;
    char *name;
    size_t name_len;
};

/* One credential source, "cookie:NAME", "header:NAME" or "query:NAME",
 * into *s (its name malloc'd). 0, or -1 with an error in ctx. */
int id_source_parse(struct cfg_ctx *ctx, const struct yt_node *v, struct id_source *s);

/* Read a key file, as Dify writes one: trailing CR/LF are not part of the
 * key; an empty file, or one over 4096 bytes, is an error (in err). */
int id_read_secret_file(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen);

struct id_config {
    unsigned char *secret;
    size_t secret_len;
    char *secret_file;           /* where secret came from, when a file */
    struct id_key *keys;
    size_t nkeys;
    unsigned algorithms;         /* TOK_HS* bits */
    struct id_source *sources;
    size_t nsources;
    char *subject_claim;
    char **issuers;              /* iss must be one of these (none: not checked) */
    size_t nissuers;
    char *audience;
    int require_exp;
    int64_t leeway_ms;
    char **public_secrets;       /* published keys, refused as signing keys (for tests that forge with one) */
    size_t npublic;
};

/* The `identity` section, into *out. */
void id_config_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct id_config **out);
void id_config_free(struct id_config *c);
/* The effective identity section, as YAML lines (secrets never printed). */
struct pc_buf;
void id_config_print(struct pc_buf *b, const char *indent, const struct id_config *c);

#define ID_MAX_CREDS 8

struct id_cred {
    int source;                  /* index into id_config.sources */
    const char *token;           /* into the request's head, or its pool */
    size_t len;
};

/*
 * The request's Cookie headers as the upstream receives them: one value,
 * joined with "; " in order. Returns a pointer to the value and its length:
 * the header itself when there is one, a copy in pool (NUL-terminated)
 * when there are several, NULL when there is none. Computed once per
 * request: the proxy parses credentials from exactly the value it
 * forwards. A quote left open in one header can close in the next once
 * they are joined, moving every boundary after it.
 */
const char *id_joined_cookies(const struct h1_header *h, size_t nh, size_t *len, struct pc_pool *pool);

/*
 * Collect every credential from the configured sources: the joined Cookie
 * value (cookie may be NULL), the other headers, and the query (query may
 * be NULL). Returns the count, or -1 when there are more than
 * ID_MAX_CREDS. Credentials point into the request or into pool.
 */
int id_collect(const struct id_config *cfg, const struct h1_header *h, size_t nh, const char *cookie,
               size_t cookie_len, const char *query, size_t query_len, struct id_cred *out, struct pc_pool *pool);

/* Cookie parsing as Werkzeug does it; exposed for tests.
 * Calls fn(name, value) for each pair; value may need unquoting. */
typedef void (*id_cookie_fn)(void *arg, const char *name, size_t nl, const char *val, size_t vl,
                             int quoted);
void id_parse_cookies(const char *v, size_t len, id_cookie_fn fn, void *arg);

#endif
