/*
 * lib/pool.c: the per-request pool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdalign.h>
#include <string.h>

#include "../../lib/pool.h"

static void test_allocations_are_aligned_distinct_and_writable(void **state)
{
    (void)state;
    struct pc_pool p = {0};
    char *prev = NULL;
    for (size_t n = 1; n < 300; n += 7) {
        char *a = pc_pool_alloc(&p, n);
        assert_int_equal((uintptr_t)a % alignof(max_align_t), 0);
        memset(a, 0xab, n);
        if (prev != NULL)
            assert_true(a != prev);
        prev = a;
    }
    pc_pool_free(&p);
}

static void test_allocations_beyond_one_block_and_large_ones_do_not_overlap(void **state)
{
    (void)state;
    struct pc_pool p = {0};
    enum { N = 64 };
    char *small[N];
    for (int i = 0; i < N; i++) {
        small[i] = pc_pool_alloc(&p, 500); /* 64 x 500 bytes: several blocks */
        memset(small[i], i, 500);
    }
    char *big = pc_pool_alloc(&p, 3 * PC_POOL_BLOCK);
    memset(big, 0xff, 3 * PC_POOL_BLOCK);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 500; j++)
            assert_int_equal((unsigned char)small[i][j], (unsigned char)i);
    pc_pool_free(&p);
}

static void test_reset_reuses_the_first_block(void **state)
{
    (void)state;
    struct pc_pool p = {0};
    char *a = pc_pool_alloc(&p, 100);
    pc_pool_alloc(&p, 2 * PC_POOL_BLOCK);   /* large: freed at reset */
    for (int i = 0; i < 40; i++)
        pc_pool_alloc(&p, 1000);            /* more blocks: freed at reset */
    pc_pool_reset(&p);
    assert_null(p.more);
    assert_null(p.large);
    assert_ptr_equal(pc_pool_alloc(&p, 100), a);
    pc_pool_free(&p);
    assert_null(p.first);
    /* usable again after free */
    assert_non_null(pc_pool_alloc(&p, 10));
    pc_pool_free(&p);
}

static void test_strndup_copies_and_terminates(void **state)
{
    (void)state;
    struct pc_pool p = {0};
    const char src[] = "subject-123 and more";
    char *s = pc_pool_strndup(&p, src, 11);
    assert_string_equal(s, "subject-123");
    assert_true(s != src);
    char *e = pc_pool_strndup(&p, src, 0);
    assert_string_equal(e, "");
    pc_pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_are_aligned_distinct_and_writable),
        cmocka_unit_test(test_allocations_beyond_one_block_and_large_ones_do_not_overlap),
        cmocka_unit_test(test_reset_reuses_the_first_block),
        cmocka_unit_test(test_strndup_copies_and_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
