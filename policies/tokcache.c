/*
 * portcullis: verified-token cache (see tokcache.h).
 */
#include "tokcache.h"
#include "cache.h"
#include "jwt.h"
#include "identity.h"
#include "../lib/base.h"
#include "../lib/pool.h"

#include <stdlib.h>
#include <string.h>

struct tok_entry {
    char *subject;
    size_t subject_len;
    char *payload;
    size_t payload_len;
};

struct tokcache {
    struct lru *lru;
    struct pc_buf key;
};

static void tok_entry_free(void *p)
{
    struct tok_entry *e = p;
    free(e->subject);
    free(e->payload);
    free(e);
}

struct tokcache *tokcache_new(size_t max_entries)
{
    struct tokcache *tc = pc_calloc(1, sizeof(*tc));
    tc->lru = lru_new(max_entries, tok_entry_free);
    return tc;
}

void tokcache_clear(struct tokcache *tc)
{
    lru_clear(tc->lru);
}

void tokcache_free(struct tokcache *tc)
{
    if (tc == NULL)
        return;
    lru_free(tc->lru);
    pc_buf_free(&tc->key);
    free(tc);
}

static void tok_result_copy(const struct tok_entry *e, struct pc_pool *pool, int want_payload,
                            struct tok_result *out)
{
    out->subject = pc_pool_strndup(pool, e->subject, e->subject_len);
    out->subject_len = e->subject_len;
    out->payload = want_payload ? pc_pool_strndup(pool, e->payload, e->payload_len) : NULL;
    out->payload_len = want_payload ? e->payload_len : 0;
}

int tokcache_verify(struct tokcache *tc, const struct id_config *idc, uint64_t generation, int64_t token_ttl,
                    const char *tok, size_t len, double now, struct pc_pool *pool, int want_payload,
                    struct tok_result *out, const char **why)
{
    int64_t mono = pc_now_ms();
    int use_cache = token_ttl > 0;
    uint64_t h = 0;

    if (use_cache) {
        tc->key.len = 0;
        pc_buf_add(&tc->key, &generation, sizeof(generation));
        pc_buf_add(&tc->key, tok, len);
        h = pc_hash(tc->key.p, tc->key.len);
        struct tok_entry *e = lru_get_h(tc->lru, tc->key.p, tc->key.len, h, mono);
        if (e != NULL) {
            tok_result_copy(e, pool, want_payload, out);
            return 0;
        }
    }
    struct tok_claims cl;
    if (tok_verify(idc, tok, len, now, &cl, why) != 0)
        return -1;
    int64_t ttl = token_ttl;
    if (cl.exp > 0) {
        double left_ms = (cl.exp - now) * 1000.0;
        if (left_ms < (double)ttl)
            ttl = left_ms > 0 ? (int64_t)left_ms : 0;
    }
    struct tok_entry *e = pc_malloc(sizeof(*e));
    e->subject = cl.subject;
    e->subject_len = cl.subject_len;
    e->payload = cl.payload;
    e->payload_len = cl.payload_len;
    tok_result_copy(e, pool, want_payload, out);
    if (use_cache && ttl > 0)
        lru_put_h(tc->lru, tc->key.p, tc->key.len, h, e, mono + ttl);
    else
        tok_entry_free(e);
    return 0;
}
