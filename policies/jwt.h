/*
 * portcullis: JWT (JWS compact, HMAC) verification with OpenSSL.
 *
 * Written rather than wrapped: libjwt 1.10 accepts an unsigned token when
 * handed a NULL key and lets the token pick its algorithm. Here the
 * algorithm must be in the configured list, the key always comes from the
 * config, and the signature is compared with CRYPTO_memcmp.
 */
#ifndef PC_JWT_H
#define PC_JWT_H

#include <stddef.h>
#include <stdint.h>

struct id_config;
struct json_value;

enum tok_alg { TOK_HS256 = 1, TOK_HS384 = 2, TOK_HS512 = 4 };

/* The algorithm a JWS "alg" (or a config's algorithms: item) names, or 0
 * for one we never accept. */
unsigned tok_alg_from_name(const char *name, size_t len);

struct tok_claims {
    char *subject;               /* the subject claim, a non-empty string */
    size_t subject_len;
    double exp;                  /* seconds since the epoch; 0 when absent */
    char *payload;               /* decoded payload JSON text */
    size_t payload_len;
};

/*
 * Verify a compact JWS at wall-clock time now (seconds). 0 on success with
 * *out filled (free with tok_claims_clear), or -1 with *why.
 */
int tok_verify(const struct id_config *cfg, const char *tok, size_t len, double now,
               struct tok_claims *out, const char **why);
void tok_claims_clear(struct tok_claims *c);

/* Strict base64url without padding. Returns the decoded length or -1.
 * dst needs len*3/4+3 bytes. Exposed for tests and fuzzing. */
long tok_b64url_decode(const char *src, size_t len, unsigned char *dst);

/* Look up a claim's value as a SQL parameter text (strings as is, numbers
 * and booleans as their JSON text, objects/arrays as JSON): *val
 * (malloc'd), or *is_null. tok_claim_value reads parsed claims;
 * tok_claim_text parses the payload first (-1 if it is not JSON). */
struct json_value;
void tok_claim_value(const struct json_value *claims, const char *name, char **val, int *is_null);
int tok_claim_text(const char *payload, size_t len, const char *name, char **val, int *is_null);

#endif
