/*
 * portcullis base: a set of byte strings. Open addressing, linear probing,
 * at most half full; hashed with the process's keyed SipHash, so that a
 * file's keys cannot be chosen to collide.
 */
#include "strset.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mem.h"

static struct pc_strset_slot *strset_find(const struct pc_strset *set, const char *s, size_t len)
{
    size_t mask = set->cap - 1;
    for (size_t i = (size_t)pc_hash(s, len) & mask;; i = (i + 1) & mask) {
        struct pc_strset_slot *sl = &set->slots[i];
        if (sl->s == NULL || (sl->len == len && memcmp(sl->s, s, len) == 0))
            return sl;
    }
}

static void strset_grow(struct pc_strset *set)
{
    struct pc_strset old = *set;
    set->cap = old.cap ? old.cap * 2 : 16;
    set->slots = pc_calloc(set->cap, sizeof(*set->slots));
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].s != NULL)
            *strset_find(set, old.slots[i].s, old.slots[i].len) = old.slots[i];
    free(old.slots);
}

int pc_strset_add(struct pc_strset *set, const char *s, size_t len, size_t val, size_t *old)
{
    if (2 * (set->n + 1) > set->cap)
        strset_grow(set);
    struct pc_strset_slot *sl = strset_find(set, s, len);
    if (sl->s != NULL) {
        if (old != NULL)
            *old = sl->val;
        return 1;
    }
    sl->s = s;
    sl->len = len;
    sl->val = val;
    set->n++;
    return 0;
}

int pc_strset_get(const struct pc_strset *set, const char *s, size_t len, size_t *val)
{
    if (set->n == 0)
        return 0;
    const struct pc_strset_slot *sl = strset_find(set, s, len);
    if (sl->s == NULL)
        return 0;
    if (val != NULL)
        *val = sl->val;
    return 1;
}

void pc_strset_clear(struct pc_strset *set)
{
    if (set->n > 0)
        memset(set->slots, 0, set->cap * sizeof(*set->slots));
    set->n = 0;
}

void pc_strset_free(struct pc_strset *set)
{
    free(set->slots);
    set->slots = NULL;
    set->cap = set->n = 0;
}
