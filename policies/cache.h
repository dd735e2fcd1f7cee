/*
 * portcullis: a bounded LRU map from byte keys to values, with expiry.
 *
 * Keys are compared byte for byte: the hash only picks the bucket, so two
 * keys can never answer for each other. Used for the decision cache and
 * the verified-token cache; one instance per worker, no locking.
 */
#ifndef PC_CACHE_H
#define PC_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct lru;

typedef void (*lru_free_fn)(void *val);

struct lru *lru_new(size_t max_entries, lru_free_fn free_val);
void lru_free(struct lru *c);

/* Value for key if present and not expired at now (ms), else NULL. */
void *lru_get(struct lru *c, const void *key, size_t klen, int64_t now);
/* Insert or replace; evicts the least recently used entry when full. */
void lru_put(struct lru *c, const void *key, size_t klen, void *val, int64_t expires);
/* The same, for a caller that already has h = pc_hash(key, klen) and needs
 * it again (a miss that is then filled): the key is hashed once. */
void *lru_get_h(struct lru *c, const void *key, size_t klen, uint64_t h, int64_t now);
void lru_put_h(struct lru *c, const void *key, size_t klen, uint64_t h, void *val, int64_t expires);
void lru_clear(struct lru *c);
size_t lru_count(const struct lru *c);

#endif
