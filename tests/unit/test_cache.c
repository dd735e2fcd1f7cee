/*
 * Unit tests for the bounded LRU with expiry (policies/cache.c).
 *
 * The decision cache answers "may this request pass?", so the property that
 * matters most is that a key only ever answers for exactly itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../policies/cache.h"
#include "../../lib/base.h"

/* ------------------------------------------------------------------ */
/* values with a recording free function                                */
/* ------------------------------------------------------------------ */

struct val {
    int id;
};

#define MAX_FREED 8192
static int freed[MAX_FREED];
static size_t nfreed;

static void val_free(void *p)
{
    struct val *v = p;
    assert_non_null(v);
    assert_true(nfreed < MAX_FREED);
    freed[nfreed++] = v->id;
    free(v);
}

static struct val *val_new(int id)
{
    struct val *v = malloc(sizeof(*v));
    assert_non_null(v);
    v->id = id;
    return v;
}

static int was_freed(int id)
{
    int n = 0;
    for (size_t i = 0; i < nfreed; i++)
        if (freed[i] == id)
            n++;
    return n;
}

static int setup(void **state)
{
    (void)state;
    pc_hash_init();
    nfreed = 0;
    return 0;
}

/* Put a fresh value with id under a NUL-terminated key. */
static void put_s(struct lru *c, const char *key, int id, int64_t expires)
{
    lru_put(c, key, strlen(key), val_new(id), expires);
}

/* id of the value under key at now, or -1 when there is none */
static int get_id(struct lru *c, const void *key, size_t klen, int64_t now)
{
    struct val *v = lru_get(c, key, klen, now);
    return v == NULL ? -1 : v->id;
}

static int get_s(struct lru *c, const char *key, int64_t now)
{
    return get_id(c, key, strlen(key), now);
}

#define FOREVER INT64_MAX

/* ------------------------------------------------------------------ */
/* basic get / put                                                      */
/* ------------------------------------------------------------------ */

static void test_get_returns_value_put_for_key(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "alpha", 1, FOREVER);
    put_s(c, "beta", 2, FOREVER);
    assert_int_equal(get_s(c, "alpha", 0), 1);
    assert_int_equal(get_s(c, "beta", 0), 2);
    /* a get does not consume the entry */
    assert_int_equal(get_s(c, "alpha", 0), 1);
    assert_int_equal(lru_count(c), 2);
    lru_free(c);
}

static void test_get_returns_null_for_missing_key(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    assert_null(lru_get(c, "nothing", 7, 0));
    assert_null(lru_get(c, "", 0, 0));
    put_s(c, "present", 1, FOREVER);
    assert_null(lru_get(c, "absent", 6, 0));
    assert_int_equal(lru_count(c), 1);
    lru_free(c);
}

static void test_empty_key_is_a_key_like_any_other(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    lru_put(c, "", 0, val_new(7), FOREVER);
    assert_int_equal(get_id(c, "", 0, 0), 7);
    assert_int_equal(get_id(c, "x", 0, 0), 7); /* only klen bytes count */
    assert_int_equal(get_id(c, "\0", 1, 0), -1);
    assert_int_equal(get_s(c, "a", 0), -1);
    lru_free(c);
}

/* ------------------------------------------------------------------ */
/* expiry                                                               */
/* ------------------------------------------------------------------ */

static void test_entry_is_live_until_just_before_expiry(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, 1000);
    assert_int_equal(get_s(c, "k", -5), 1);
    assert_int_equal(get_s(c, "k", 0), 1);
    assert_int_equal(get_s(c, "k", 999), 1);
    assert_int_equal(nfreed, 0);
    lru_free(c);
}

static void test_entry_expires_when_now_equals_expires(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, 1000);
    assert_int_equal(get_s(c, "k", 1000), -1);
    lru_free(c);
}

static void test_entry_expires_when_now_is_past_expires(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, 1000);
    assert_int_equal(get_s(c, "k", 123456789), -1);
    lru_free(c);
}

static void test_expired_entry_is_removed_and_freed_on_get(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "old", 1, 10);
    put_s(c, "live", 2, 100);
    assert_int_equal(lru_count(c), 2);
    assert_int_equal(get_s(c, "old", 10), -1);
    assert_int_equal(lru_count(c), 1);
    assert_int_equal(was_freed(1), 1);
    /* once expired it stays gone, even at an earlier clock */
    assert_int_equal(get_s(c, "old", 0), -1);
    assert_int_equal(was_freed(1), 1);
    assert_int_equal(get_s(c, "live", 10), 2);
    lru_free(c);
}

static void test_expiry_is_per_entry(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "a", 1, 100);
    put_s(c, "b", 2, 200);
    put_s(c, "c", 3, 300);
    assert_int_equal(get_s(c, "a", 150), -1);
    assert_int_equal(get_s(c, "b", 150), 2);
    assert_int_equal(get_s(c, "c", 150), 3);
    assert_int_equal(get_s(c, "b", 250), -1);
    assert_int_equal(get_s(c, "c", 250), 3);
    assert_int_equal(get_s(c, "c", 300), -1);
    assert_int_equal(lru_count(c), 0);
    lru_free(c);
}

static void test_already_expired_put_is_never_returned(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, 50);
    assert_int_equal(get_s(c, "k", 50), -1);
    assert_int_equal(get_s(c, "k", 60), -1);
    lru_free(c);
}

static void test_put_replaces_expired_entry_with_fresh_one(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, 100);
    put_s(c, "k", 2, 300);
    assert_int_equal(was_freed(1), 1);
    assert_int_equal(get_s(c, "k", 200), 2);
    assert_int_equal(lru_count(c), 1);
    lru_free(c);
}

/* ------------------------------------------------------------------ */
/* LRU eviction                                                         */
/* ------------------------------------------------------------------ */

static void test_full_cache_evicts_least_recently_used_entry(void **state)
{
    (void)state;
    struct lru *c = lru_new(3, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    put_s(c, "c", 3, FOREVER);
    assert_int_equal(lru_count(c), 3);
    assert_int_equal(nfreed, 0);
    put_s(c, "d", 4, FOREVER);
    assert_int_equal(lru_count(c), 3);
    assert_int_equal(nfreed, 1);
    assert_int_equal(was_freed(1), 1);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "b", 0), 2);
    assert_int_equal(get_s(c, "c", 0), 3);
    assert_int_equal(get_s(c, "d", 0), 4);
    lru_free(c);
}

static void test_eviction_follows_insertion_order_without_gets(void **state)
{
    (void)state;
    struct lru *c = lru_new(4, val_free);
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        put_s(c, key, i, FOREVER);
        assert_true(lru_count(c) <= 4);
    }
    /* ids 0..15 were evicted, oldest first */
    assert_int_equal(nfreed, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(freed[i], i);
    for (int i = 16; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(get_s(c, key, 0), i);
    }
    lru_free(c);
}

static void test_get_refreshes_recency_so_entry_survives_eviction(void **state)
{
    (void)state;
    struct lru *c = lru_new(3, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    put_s(c, "c", 3, FOREVER);
    assert_int_equal(get_s(c, "a", 0), 1); /* a is now the most recent */
    put_s(c, "d", 4, FOREVER);             /* evicts b */
    assert_int_equal(was_freed(2), 1);
    assert_int_equal(get_s(c, "b", 0), -1);
    assert_int_equal(get_s(c, "a", 0), 1);
    assert_int_equal(get_s(c, "c", 0), 3);
    assert_int_equal(get_s(c, "d", 0), 4);
    /* the gets above touched a, c, d in that order: a is now the least recent */
    put_s(c, "e", 5, FOREVER);
    assert_int_equal(was_freed(1), 1);
    assert_int_equal(get_s(c, "a", 0), -1);
    lru_free(c);
}

static void test_get_of_most_recent_entry_keeps_order(void **state)
{
    (void)state;
    struct lru *c = lru_new(2, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    assert_int_equal(get_s(c, "b", 0), 2); /* already the most recent */
    assert_int_equal(get_s(c, "b", 0), 2);
    put_s(c, "c", 3, FOREVER);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "b", 0), 2);
    assert_int_equal(get_s(c, "c", 0), 3);
    lru_free(c);
}

static void test_missed_get_does_not_change_recency(void **state)
{
    (void)state;
    struct lru *c = lru_new(2, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    assert_int_equal(get_s(c, "zz", 0), -1);
    put_s(c, "c", 3, FOREVER);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "b", 0), 2);
    lru_free(c);
}

static void test_put_of_existing_key_refreshes_recency(void **state)
{
    (void)state;
    struct lru *c = lru_new(3, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    put_s(c, "c", 3, FOREVER);
    put_s(c, "a", 11, FOREVER); /* replace: a becomes the most recent */
    put_s(c, "d", 4, FOREVER);  /* evicts b */
    assert_int_equal(get_s(c, "b", 0), -1);
    assert_int_equal(get_s(c, "a", 0), 11);
    lru_free(c);
}

static void test_capacity_one_keeps_only_the_latest_entry(void **state)
{
    (void)state;
    struct lru *c = lru_new(1, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    assert_int_equal(lru_count(c), 1);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "b", 0), 2);
    assert_int_equal(was_freed(1), 1);
    lru_free(c);
}

static void test_zero_capacity_is_treated_as_one(void **state)
{
    (void)state;
    struct lru *c = lru_new(0, val_free);
    put_s(c, "a", 1, FOREVER);
    assert_int_equal(get_s(c, "a", 0), 1);
    put_s(c, "b", 2, FOREVER);
    assert_int_equal(lru_count(c), 1);
    assert_int_equal(get_s(c, "b", 0), 2);
    lru_free(c);
}

/* ------------------------------------------------------------------ */
/* replace                                                              */
/* ------------------------------------------------------------------ */

static void test_replace_on_put_frees_old_value_and_returns_new(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "k", 1, FOREVER);
    put_s(c, "k", 2, FOREVER);
    assert_int_equal(nfreed, 1);
    assert_int_equal(freed[0], 1);
    assert_int_equal(lru_count(c), 1);
    assert_int_equal(get_s(c, "k", 0), 2);
    put_s(c, "k", 3, 5);
    assert_int_equal(nfreed, 2);
    assert_int_equal(freed[1], 2);
    assert_int_equal(get_s(c, "k", 4), 3);
    lru_free(c);
    assert_int_equal(nfreed, 3);
    assert_int_equal(freed[2], 3);
}

static void test_replace_on_put_in_full_cache_evicts_nothing_else(void **state)
{
    (void)state;
    struct lru *c = lru_new(3, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    put_s(c, "c", 3, FOREVER);
    put_s(c, "a", 10, FOREVER); /* a is the least recent, but it is replaced, not evicted twice */
    put_s(c, "b", 20, FOREVER);
    assert_int_equal(lru_count(c), 3);
    assert_int_equal(nfreed, 2);
    assert_int_equal(was_freed(1), 1);
    assert_int_equal(was_freed(2), 1);
    assert_int_equal(was_freed(3), 0);
    assert_int_equal(get_s(c, "a", 0), 10);
    assert_int_equal(get_s(c, "b", 0), 20);
    assert_int_equal(get_s(c, "c", 0), 3);
    lru_free(c);
}

/* ------------------------------------------------------------------ */
/* key identity                                                         */
/* ------------------------------------------------------------------ */

static void test_keys_differing_in_one_byte_do_not_answer_for_each_other(void **state)
{
    (void)state;
    /* for every position in keys of several lengths (across SipHash's
     * 8-byte blocks), a key with that one byte changed is a different key */
    static const size_t lens[] = {1, 7, 8, 9, 16, 17, 33};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        size_t len = lens[li];
        unsigned char base[64];
        for (size_t i = 0; i < len; i++)
            base[i] = (unsigned char)('a' + i % 26);
        for (size_t pos = 0; pos < len; pos++) {
            static const unsigned char deltas[] = {0x01, 0x20, 0x80, 0xff};
            for (size_t d = 0; d < sizeof(deltas); d++) {
                struct lru *c = lru_new(4, val_free);
                unsigned char other[64];
                memcpy(other, base, len);
                other[pos] ^= deltas[d];
                lru_put(c, base, len, val_new(1), FOREVER);
                if (get_id(c, other, len, 0) != -1)
                    fail_msg("len %zu: byte %zu ^ 0x%02x answered for the original", len, pos, deltas[d]);
                lru_put(c, other, len, val_new(2), FOREVER);
                assert_int_equal(lru_count(c), 2);
                assert_int_equal(get_id(c, base, len, 0), 1);
                assert_int_equal(get_id(c, other, len, 0), 2);
                lru_free(c);
            }
        }
    }
}

static void test_keys_differing_only_in_length_do_not_answer_for_each_other(void **state)
{
    (void)state;
    struct lru *c = lru_new(64, val_free);
    /* "abcdefghij..." cut at every length from 0 to 24 */
    static const char text[] = "abcdefghijklmnopqrstuvwx";
    for (size_t len = 0; len <= 24; len++)
        lru_put(c, text, len, val_new((int)len), FOREVER);
    assert_int_equal(lru_count(c), 25);
    for (size_t len = 0; len <= 24; len++)
        assert_int_equal(get_id(c, text, len, 0), (int)len);
    lru_free(c);
}

static void test_keys_sharing_a_prefix_are_distinct(void **state)
{
    (void)state;
    struct lru *c = lru_new(16, val_free);
    put_s(c, "user:1", 1, FOREVER);
    assert_int_equal(get_s(c, "user:", 0), -1);
    assert_int_equal(get_s(c, "user:10", 0), -1);
    assert_int_equal(get_s(c, "user:1 ", 0), -1);
    put_s(c, "user:10", 10, FOREVER);
    put_s(c, "user:100", 100, FOREVER);
    put_s(c, "user:", 0, FOREVER);
    assert_int_equal(get_s(c, "user:1", 0), 1);
    assert_int_equal(get_s(c, "user:10", 0), 10);
    assert_int_equal(get_s(c, "user:100", 0), 100);
    assert_int_equal(get_s(c, "user:", 0), 0);
    assert_int_equal(get_s(c, "user:1000", 0), -1);
    assert_int_equal(lru_count(c), 4);
    lru_free(c);
}

static void test_all_zero_keys_of_different_lengths_are_distinct(void **state)
{
    (void)state;
    /* zero bytes are what the hash pads with, so they are the likeliest to
     * look alike if length were not part of the key */
    static const unsigned char zeros[40];
    struct lru *c = lru_new(64, val_free);
    for (size_t len = 0; len <= 40; len++)
        lru_put(c, zeros, len, val_new((int)len), FOREVER);
    for (size_t len = 0; len <= 40; len++)
        assert_int_equal(get_id(c, zeros, len, 0), (int)len);
    lru_free(c);
}

static void test_keys_with_embedded_nul_are_compared_in_full(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    lru_put(c, "a\0b", 3, val_new(1), FOREVER);
    lru_put(c, "a\0c", 3, val_new(2), FOREVER);
    lru_put(c, "a", 1, val_new(3), FOREVER);
    lru_put(c, "a\0", 2, val_new(4), FOREVER);
    assert_int_equal(get_id(c, "a\0b", 3, 0), 1);
    assert_int_equal(get_id(c, "a\0c", 3, 0), 2);
    assert_int_equal(get_id(c, "a", 1, 0), 3);
    assert_int_equal(get_id(c, "a\0", 2, 0), 4);
    assert_int_equal(get_id(c, "a\0d", 3, 0), -1);
    lru_free(c);
}

static void test_keys_are_copied_at_put(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    char key[] = "mutable-key";
    lru_put(c, key, strlen(key), val_new(1), FOREVER);
    key[0] = 'M';
    assert_int_equal(get_s(c, "mutable-key", 0), 1);
    assert_int_equal(get_s(c, key, 0), -1);
    lru_free(c);
}

static void test_many_keys_in_shared_buckets_stay_distinct(void **state)
{
    (void)state;
    /* 1500 entries in 2048 buckets: many shared buckets, and removal from
     * the middle of bucket chains on eviction and on expiry */
    enum { N = 2000, CAP = 1500 };
    struct lru *c = lru_new(CAP, val_free);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        put_s(c, key, i, i % 3 == 0 ? 10 : FOREVER);
    }
    assert_int_equal(lru_count(c), CAP);
    assert_int_equal(nfreed, N - CAP);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        int want = i < N - CAP ? -1 : (i % 3 == 0 ? -1 : i);
        if (get_s(c, key, 10) != want)
            fail_msg("%s: got %d want %d", key, get_s(c, key, 10), want);
    }
    /* every value was freed exactly once or is still cached */
    size_t expired = 0;
    for (int i = N - CAP; i < N; i++)
        if (i % 3 == 0)
            expired++;
    assert_int_equal(lru_count(c), CAP - expired);
    lru_free(c);
    assert_int_equal(nfreed, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(was_freed(i), 1);
}

/* ------------------------------------------------------------------ */
/* clear, count, free                                                   */
/* ------------------------------------------------------------------ */

static void test_lru_clear_removes_and_frees_every_entry(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    put_s(c, "c", 3, 10);
    lru_clear(c);
    assert_int_equal(lru_count(c), 0);
    assert_int_equal(nfreed, 3);
    assert_int_equal(was_freed(1) + was_freed(2) + was_freed(3), 3);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "b", 0), -1);
    assert_int_equal(get_s(c, "c", 0), -1);
    /* clearing an empty cache is harmless */
    lru_clear(c);
    assert_int_equal(nfreed, 3);
    lru_free(c);
}

static void test_cache_is_usable_after_clear(void **state)
{
    (void)state;
    struct lru *c = lru_new(2, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    lru_clear(c);
    put_s(c, "a", 3, FOREVER);
    put_s(c, "c", 4, FOREVER);
    put_s(c, "d", 5, FOREVER); /* evicts the new a */
    assert_int_equal(lru_count(c), 2);
    assert_int_equal(get_s(c, "a", 0), -1);
    assert_int_equal(get_s(c, "c", 0), 4);
    assert_int_equal(get_s(c, "d", 0), 5);
    lru_free(c);
}

static void test_lru_count_tracks_puts_replaces_evictions_and_expiry(void **state)
{
    (void)state;
    struct lru *c = lru_new(3, val_free);
    assert_int_equal(lru_count(c), 0);
    put_s(c, "a", 1, 100);
    assert_int_equal(lru_count(c), 1);
    put_s(c, "b", 2, FOREVER);
    assert_int_equal(lru_count(c), 2);
    put_s(c, "b", 3, FOREVER); /* replace */
    assert_int_equal(lru_count(c), 2);
    put_s(c, "c", 4, FOREVER);
    put_s(c, "d", 5, FOREVER); /* evict */
    assert_int_equal(lru_count(c), 3);
    assert_int_equal(get_s(c, "a", 0), -1); /* evicted, not expired */
    assert_int_equal(lru_count(c), 3);
    put_s(c, "e", 6, 50);      /* evicts b */
    assert_int_equal(get_s(c, "e", 50), -1); /* expired on get */
    assert_int_equal(lru_count(c), 2);
    assert_int_equal(get_s(c, "missing", 0), -1);
    assert_int_equal(lru_count(c), 2);
    lru_clear(c);
    assert_int_equal(lru_count(c), 0);
    lru_free(c);
}

static void test_lru_free_frees_remaining_values(void **state)
{
    (void)state;
    struct lru *c = lru_new(8, val_free);
    put_s(c, "a", 1, FOREVER);
    put_s(c, "b", 2, FOREVER);
    lru_free(c);
    assert_int_equal(nfreed, 2);
    lru_free(NULL);
}

static void test_cache_without_free_function_keeps_caller_values(void **state)
{
    (void)state;
    static int pass = 1, fail = 0;
    struct lru *c = lru_new(2, NULL);
    lru_put(c, "k1", 2, &pass, FOREVER);
    lru_put(c, "k2", 2, &fail, FOREVER);
    assert_ptr_equal(lru_get(c, "k1", 2, 0), &pass);
    assert_ptr_equal(lru_get(c, "k2", 2, 0), &fail);
    lru_put(c, "k1", 2, &fail, FOREVER); /* replace with no free function */
    assert_ptr_equal(lru_get(c, "k1", 2, 0), &fail);
    lru_put(c, "k3", 2, &pass, FOREVER); /* evicts k2 */
    assert_null(lru_get(c, "k2", 2, 0));
    lru_clear(c);
    assert_int_equal(lru_count(c), 0);
    lru_free(c);
    assert_int_equal(nfreed, 0);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_returns_value_put_for_key),
        T(test_get_returns_null_for_missing_key),
        T(test_empty_key_is_a_key_like_any_other),
        T(test_entry_is_live_until_just_before_expiry),
        T(test_entry_expires_when_now_equals_expires),
        T(test_entry_expires_when_now_is_past_expires),
        T(test_expired_entry_is_removed_and_freed_on_get),
        T(test_expiry_is_per_entry),
        T(test_already_expired_put_is_never_returned),
        T(test_put_replaces_expired_entry_with_fresh_one),
        T(test_full_cache_evicts_least_recently_used_entry),
        T(test_eviction_follows_insertion_order_without_gets),
        T(test_get_refreshes_recency_so_entry_survives_eviction),
        T(test_get_of_most_recent_entry_keeps_order),
        T(test_missed_get_does_not_change_recency),
        T(test_put_of_existing_key_refreshes_recency),
        T(test_capacity_one_keeps_only_the_latest_entry),
        T(test_zero_capacity_is_treated_as_one),
        T(test_replace_on_put_frees_old_value_and_returns_new),
        T(test_replace_on_put_in_full_cache_evicts_nothing_else),
        T(test_keys_differing_in_one_byte_do_not_answer_for_each_other),
        T(test_keys_differing_only_in_length_do_not_answer_for_each_other),
        T(test_keys_sharing_a_prefix_are_distinct),
        T(test_all_zero_keys_of_different_lengths_are_distinct),
        T(test_keys_with_embedded_nul_are_compared_in_full),
        T(test_keys_are_copied_at_put),
        T(test_many_keys_in_shared_buckets_stay_distinct),
        T(test_lru_clear_removes_and_frees_every_entry),
        T(test_cache_is_usable_after_clear),
        T(test_lru_count_tracks_puts_replaces_evictions_and_expiry),
        T(test_lru_free_frees_remaining_values),
        T(test_cache_without_free_function_keeps_caller_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
