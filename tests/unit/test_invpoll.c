/*
 * Unit tests for revocation by polling (policies/invpoll.c): when an
 * answer of cache.invalidate_query empties the decision cache.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "../../policies/invpoll.h"
#include "../../lib/log.h"

static void test_the_first_answer_of_a_session_empties_the_cache(void **state)
{
    (void)state;
    struct inv_poll ip = {0};
    assert_int_equal(inv_poll_result(&ip, 0, "7", 1, NULL), 1);
    assert_int_equal(inv_poll_result(&ip, 0, "7", 1, NULL), 0);
    /* a new session (a reconnect) may have missed a change */
    inv_poll_reset(&ip);
    assert_int_equal(inv_poll_result(&ip, 0, "7", 1, NULL), 1);
    inv_poll_free(&ip);
}

static void test_a_changed_value_empties_the_cache_an_unchanged_one_does_not(void **state)
{
    (void)state;
    struct inv_poll ip = {0};
    inv_poll_result(&ip, 0, "41", 2, NULL);
    assert_int_equal(inv_poll_result(&ip, 0, "41", 2, NULL), 0);
    assert_int_equal(inv_poll_result(&ip, 0, "42", 2, NULL), 1);
    assert_int_equal(inv_poll_result(&ip, 0, "42", 2, NULL), 0);
    /* lengths count, not only bytes: "42" then "420" */
    assert_int_equal(inv_poll_result(&ip, 0, "420", 3, NULL), 1);
    /* values are bytes, NUL included */
    assert_int_equal(inv_poll_result(&ip, 0, "a\0b", 3, NULL), 1);
    assert_int_equal(inv_poll_result(&ip, 0, "a\0c", 3, NULL), 1);
    assert_int_equal(inv_poll_result(&ip, 0, "a\0c", 3, NULL), 0);
    inv_poll_free(&ip);
}

static void test_no_row_is_a_value_of_its_own(void **state)
{
    (void)state;
    struct inv_poll ip = {0};
    inv_poll_result(&ip, 0, NULL, 0, NULL);
    assert_int_equal(inv_poll_result(&ip, 0, NULL, 0, NULL), 0);
    assert_int_equal(inv_poll_result(&ip, 0, "", 0, NULL), 1);  /* '' is not NULL */
    assert_int_equal(inv_poll_result(&ip, 0, NULL, 0, NULL), 1);
    inv_poll_free(&ip);
}

static void test_a_failed_run_empties_the_cache_every_time(void **state)
{
    (void)state;
    struct inv_poll ip = {0};
    inv_poll_result(&ip, 0, "1", 1, NULL);
    assert_int_equal(inv_poll_result(&ip, 0, NULL, 0, "Table 'x' doesn't exist"), 1);
    assert_int_equal(inv_poll_result(&ip, 0, NULL, 0, "Table 'x' doesn't exist"), 1);
    assert_int_equal(ip.failing, 1);
    /* answering again is a first answer: nothing says what happened meanwhile */
    assert_int_equal(inv_poll_result(&ip, 0, "1", 1, NULL), 1);
    assert_int_equal(ip.failing, 0);
    assert_int_equal(inv_poll_result(&ip, 0, "1", 1, NULL), 0);
    inv_poll_free(&ip);
}

int main(void)
{
    pc_log_configure(PC_LOG_TEXT, PC_LOG_ERROR); /* the failure warnings are expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_first_answer_of_a_session_empties_the_cache),
        cmocka_unit_test(test_a_changed_value_empties_the_cache_an_unchanged_one_does_not),
        cmocka_unit_test(test_no_row_is_a_value_of_its_own),
        cmocka_unit_test(test_a_failed_run_empties_the_cache_every_time),
    };
    return cmocka_run_group_tests_name("invpoll", tests, NULL, NULL);
}
