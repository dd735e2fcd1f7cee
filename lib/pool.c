/*
 * portcullis base: the per-request pool (see pool.h).
 */
#include "pool.h"
#include "mem.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct pc_pool_block {
    struct pc_pool_block *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
};

#define PC_POOL_ALIGN (alignof(max_align_t))

static size_t pc_pool_round(size_t n)
{
    return (n + PC_POOL_ALIGN - 1) & ~(PC_POOL_ALIGN - 1);
}

static struct pc_pool_block *pc_pool_block_new(size_t size)
{
    struct pc_pool_block *b = pc_malloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

void *pc_pool_alloc(struct pc_pool *p, size_t n)
{
    n = pc_pool_round(n ? n : 1);
    if (n > PC_POOL_BLOCK / 2) {
        struct pc_pool_block *b = pc_pool_block_new(n);
        b->next = p->large;
        p->large = b;
        b->used = n;
        return b->data;
    }
    if (p->first == NULL)
        p->first = pc_pool_block_new(PC_POOL_BLOCK);
    struct pc_pool_block *b = p->more != NULL ? p->more : p->first;
    if (b->size - b->used < n) {
        b = pc_pool_block_new(PC_POOL_BLOCK);
        b->next = p->more;
        p->more = b;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

char *pc_pool_strndup(struct pc_pool *p, const char *s, size_t n)
{
    char *d = pc_pool_alloc(p, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void pc_pool_free_chain(struct pc_pool_block **head)
{
    while (*head != NULL) {
        struct pc_pool_block *b = *head;
        *head = b->next;
        free(b);
    }
}

void pc_pool_reset(struct pc_pool *p)
{
    pc_pool_free_chain(&p->more);
    pc_pool_free_chain(&p->large);
    if (p->first != NULL)
        p->first->used = 0;
}

void pc_pool_free(struct pc_pool *p)
{
    pc_pool_reset(p);
    free(p->first);
    p->first = NULL;
}
