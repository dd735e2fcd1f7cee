/*
 * portcullis base: a per-request memory pool (as nginx's ngx_pool_t and
 * h2o's h2o_mem_pool_t). Everything a request allocates comes from its
 * pool and dies with it: pc_pool_reset() when the request ends. Nothing
 * is freed one by one, so nothing can be freed twice or kept by mistake.
 *
 * The first block lives on across resets, so a request that fits in it
 * (most do) allocates nothing from the system.
 */
#ifndef PC_POOL_H
#define PC_POOL_H

#include <stddef.h>

struct pc_pool_block;

struct pc_pool {
    struct pc_pool_block *first;    /* kept across resets */
    struct pc_pool_block *more;     /* further blocks, the current one first; freed at reset */
    struct pc_pool_block *large;    /* allocations of their own (over half a block); freed at reset */
};

#define PC_POOL_BLOCK 8192

/* n bytes, aligned for any type; never NULL (out of memory aborts). */
void *pc_pool_alloc(struct pc_pool *p, size_t n);
/* A NUL-terminated copy of s[0..n). */
char *pc_pool_strndup(struct pc_pool *p, const char *s, size_t n);
/* Forget everything allocated; keep the first block. */
void pc_pool_reset(struct pc_pool *p);
/* Give everything back. The pool can be used again afterwards. */
void pc_pool_free(struct pc_pool *p);

#endif
