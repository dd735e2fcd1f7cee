/*
 * lib/strset.c: a set of byte strings with values (duplicate checks).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/hash.h"
#include "../../lib/strset.h"

static void test_a_string_is_added_once_and_keeps_its_first_value(void **state)
{
    (void)state;
    struct pc_strset s = {0};
    size_t old = 99, v = 99;
    assert_int_equal(pc_strset_add(&s, "apps", 4, 1, &old), 0);
    assert_int_equal(old, 99);
    assert_int_equal(pc_strset_add(&s, "apps", 4, 2, &old), 1);
    assert_int_equal(old, 1);
    assert_int_equal(pc_strset_get(&s, "apps", 4, &v), 1);
    assert_int_equal(v, 1);
    /* bytes, not C strings: a prefix, an embedded NUL and the empty string
     * are strings of their own */
    assert_int_equal(pc_strset_get(&s, "app", 3, NULL), 0);
    assert_int_equal(pc_strset_add(&s, "apps\0x", 6, 3, NULL), 0);
    assert_int_equal(pc_strset_add(&s, "", 0, 4, NULL), 0);
    assert_int_equal(pc_strset_get(&s, "", 0, &v), 1);
    assert_int_equal(v, 4);
    assert_int_equal(s.n, 3);
    pc_strset_free(&s);
}

static void test_many_strings_survive_growth_and_clear_empties(void **state)
{
    (void)state;
    enum { N = 50000 };
    static char keys[N][16];
    struct pc_strset s = {0};
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        assert_int_equal(pc_strset_add(&s, keys[i], strlen(keys[i]), i, NULL), 0);
    }
    assert_int_equal(s.n, N);
    assert_true(2 * s.n <= s.cap);
    for (size_t i = 0; i < N; i++) {
        size_t v = 0, old = 0;
        assert_int_equal(pc_strset_get(&s, keys[i], strlen(keys[i]), &v), 1);
        assert_int_equal(v, i);
        assert_int_equal(pc_strset_add(&s, keys[i], strlen(keys[i]), N + i, &old), 1);
        assert_int_equal(old, i);
    }
    assert_int_equal(pc_strset_get(&s, "k50000", 6, NULL), 0);
    pc_strset_clear(&s);
    assert_int_equal(s.n, 0);
    assert_int_equal(pc_strset_get(&s, "k1", 2, NULL), 0);
    assert_int_equal(pc_strset_add(&s, "k1", 2, 7, NULL), 0);
    pc_strset_free(&s);
    assert_null(s.slots);
    /* an empty set answers without memory */
    assert_int_equal(pc_strset_get(&s, "k1", 2, NULL), 0);
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_string_is_added_once_and_keeps_its_first_value),
        cmocka_unit_test(test_many_strings_survive_growth_and_clear_empties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
