/*
 * portcullis: verified-token cache. Verifying a JWT costs a base64 decode,
 * two JSON parses and an HMAC; browsers send the same token for an hour.
 * Entries are keyed by the full token bytes and the config generation, and
 * expire no later than the token's exp.
 */
#ifndef PC_TOKCACHE_H
#define PC_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct id_config;
struct tokcache;

struct pc_pool;

/* A verified token: its subject and (asked for) its claims JSON. */
struct tok_result {
    const char *subject;
    size_t subject_len;
    const char *payload;        /* NULL unless asked for */
    size_t payload_len;
};

struct tokcache *tokcache_new(size_t max_entries);
void tokcache_free(struct tokcache *tc);
void tokcache_clear(struct tokcache *tc);

/* Verify (or find) a token under identity idc of a config generation at
 * wall time now; verified tokens are kept for at most token_ttl ms. 0 and
 * *out when it verifies: the subject, and the claims JSON when
 * want_payload, copied into pool (the caller's request owns them, whatever
 * the cache evicts later). -1 with *why when it does not. */
int tokcache_verify(struct tokcache *tc, const struct id_config *idc, uint64_t generation, int64_t token_ttl,
                    const char *tok, size_t len, double now, struct pc_pool *pool, int want_payload,
                    struct tok_result *out, const char **why);

#endif
