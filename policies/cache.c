/*
 * portcullis: bounded LRU with expiry (see cache.h).
 */
#include "cache.h"
#include "../lib/base.h"

#include <stdlib.h>
#include <string.h>

struct lru_entry {
    struct lru_entry *hnext;        /* bucket chain */
    struct lru_entry *prev, *next;  /* recency list, most recent at head */
    uint64_t hash;
    int64_t expires;
    void *val;
    size_t klen;
    unsigned char key[];
};

struct lru {
    struct lru_entry **buckets;
    size_t nbuckets;                /* power of two */
    size_t n, max;
    struct lru_entry *head, *tail;
    lru_free_fn free_val;
};

struct lru *lru_new(size_t max_entries, lru_free_fn free_val)
{
    struct lru *c = pc_calloc(1, sizeof(*c));
    size_t nb = 64;
    if (max_entries < 1)
        max_entries = 1;
    while (nb < max_entries && nb < ((size_t)1 << 24))
        nb <<= 1;
    c->buckets = pc_calloc(nb, sizeof(*c->buckets));
    c->nbuckets = nb;
    c->max = max_entries;
    c->free_val = free_val;
    return c;
}

static void lru_unlink(struct lru *c, struct lru_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct lru *c, struct lru_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void lru_remove(struct lru *c, struct lru_entry *e)
{
    struct lru_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    if (c->free_val)
        c->free_val(e->val);
    free(e);
    c->n--;
}

static struct lru_entry *lru_find(struct lru *c, const void *key, size_t klen, uint64_t h)
{
    for (struct lru_entry *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

void *lru_get(struct lru *c, const void *key, size_t klen, int64_t now)
{
    return lru_get_h(c, key, klen, pc_hash(key, klen), now);
}

void *lru_get_h(struct lru *c, const void *key, size_t klen, uint64_t h, int64_t now)
{
    struct lru_entry *e = lru_find(c, key, klen, h);
    if (e == NULL)
        return NULL;
    if (now >= e->expires) {
        lru_remove(c, e);
        return NULL;
    }
    if (c->head != e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    return e->val;
}

void lru_put(struct lru *c, const void *key, size_t klen, void *val, int64_t expires)
{
    lru_put_h(c, key, klen, pc_hash(key, klen), val, expires);
}

void lru_put_h(struct lru *c, const void *key, size_t klen, uint64_t h, void *val, int64_t expires)
{
    struct lru_entry *e = lru_find(c, key, klen, h);
    if (e != NULL)
        lru_remove(c, e);
    while (c->n >= c->max && c->tail != NULL)
        lru_remove(c, c->tail);
    e = pc_malloc(sizeof(*e) + klen);
    e->hash = h;
    e->expires = expires;
    e->val = val;
    e->klen = klen;
    memcpy(e->key, key, klen);
    size_t b = h & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->n++;
}

void lru_clear(struct lru *c)
{
    while (c->head != NULL)
        lru_remove(c, c->head);
}

size_t lru_count(const struct lru *c)
{
    return c->n;
}

void lru_free(struct lru *c)
{
    if (c == NULL)
        return;
    lru_clear(c);
    free(c->buckets);
    free(c);
}
