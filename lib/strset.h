/*
 * portcullis base: a set of byte strings, each with a value, for duplicate
 * checks in files that may hold many keys (an operator's data file with
 * 100,000 entries). The strings are borrowed: they must outlive the set.
 */
#ifndef PC_STRSET_H
#define PC_STRSET_H

#include <stddef.h>

struct pc_strset_slot {
    const char *s; /* NULL: empty */
    size_t len;
    size_t val;
};

struct pc_strset {
    struct pc_strset_slot *slots;
    size_t cap, n;
};

/* Add s with val unless it is there: 0 when added, 1 when present (then
 * *old, when not NULL, is the value it was added with). */
int pc_strset_add(struct pc_strset *set, const char *s, size_t len, size_t val, size_t *old);
/* 1 and *val when s is there, else 0. */
int pc_strset_get(const struct pc_strset *set, const char *s, size_t len, size_t *val);
/* Empty it, keeping its memory. */
void pc_strset_clear(struct pc_strset *set);
void pc_strset_free(struct pc_strset *set);

#endif
