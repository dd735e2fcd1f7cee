/*
 * portcullis: minting test tokens with libjwt, an implementation
 * independent of the verifier (policies/jwt.c). Used by `portcullis token`
 * and by `portcullis test`, which signs with the config's own key.
 */
#ifndef PC_TOKEN_H
#define PC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

enum pc_claim_type {
    PC_CLAIM_STR,   /* a JSON string */
    PC_CLAIM_INT,   /* value holds decimal digits */
    PC_CLAIM_BOOL,  /* value is "true" or "false" */
    PC_CLAIM_JSON,  /* value is a JSON value (an object or an array) */
    PC_CLAIM_OMIT,  /* not written; keeps exp or iat from being added */
};

struct pc_claim {
    const char *name;
    const char *value;
    enum pc_claim_type type;
};

/*
 * A signed token (malloc'd; free() it), or NULL with a message in err.
 * alg: HS256, HS384 or HS512; kid: NULL or the kid header. exp (now +
 * ttl_ms, when ttl_ms > 0) and iat (now) are added unless a claim names
 * them.
 */
char *pc_token_mint(const unsigned char *key, size_t keylen, const char *alg, const char *kid,
                    const struct pc_claim *claims, size_t nclaims, int64_t ttl_ms, char *err, size_t errlen);

/* `portcullis token ...` (argv[0] is "token"). */
int pc_token_main(int argc, char **argv);

#endif
