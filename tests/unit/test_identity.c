/*
 * Unit tests for credential collection (policies/identity.c): cookies as
 * Werkzeug's parse_cookie reads them, Authorization as Dify splits it,
 * query parameters as Werkzeug decodes them, and every occurrence of every
 * configured source collected (the confused-deputy defence).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../policies/identity.h"
#include "../../lib/cfg.h"
#include "../../lib/h1.h"
#include "../../lib/base.h"
#include "../../lib/yaml.h"

/* ---- id_parse_cookies ---- */

#define MAX_PAIRS 16

struct pairs {
    int n;
    char name[MAX_PAIRS][64];
    char val[MAX_PAIRS][128];
    int quoted[MAX_PAIRS];
};

static void collect_pair(void *arg, const char *name, size_t nl, const char *val, size_t vl, int quoted)
{
    struct pairs *p = arg;
    assert_true(p->n < MAX_PAIRS);
    assert_true(nl < sizeof(p->name[0]) && vl < sizeof(p->val[0]));
    assert_true(nl > 0);
    memcpy(p->name[p->n], name, nl);
    p->name[p->n][nl] = '\0';
    memcpy(p->val[p->n], val, vl);
    p->val[p->n][vl] = '\0';
    p->quoted[p->n] = quoted;
    p->n++;
}

static struct pairs cookies(const char *header)
{
    struct pairs p;
    memset(&p, 0, sizeof(p));
    id_parse_cookies(header, strlen(header), collect_pair, &p);
    return p;
}

#define ASSERT_PAIR(p, i, nm, v, q)                   \
    do {                                              \
        assert_string_equal((p).name[i], (nm));       \
        assert_string_equal((p).val[i], (v));         \
        assert_int_equal((p).quoted[i], (q));         \
    } while (0)

static void test_cookies_split_on_semicolon_only(void **state)
{
    (void)state;
    struct pairs p = cookies("a=1; b=2;c=3");
    assert_int_equal(p.n, 3);
    ASSERT_PAIR(p, 0, "a", "1", 0);
    ASSERT_PAIR(p, 1, "b", "2", 0);
    ASSERT_PAIR(p, 2, "c", "3", 0);

    /* ',' is ordinary data, not a separator (RFC 2965 style is not used) */
    p = cookies("a=1,b=2; c=3");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "a", "1,b=2", 0);
    ASSERT_PAIR(p, 1, "c", "3", 0);

    /* '=' inside a value belongs to the value */
    p = cookies("a=b=c");
    assert_int_equal(p.n, 1);
    ASSERT_PAIR(p, 0, "a", "b=c", 0);

    p = cookies("");
    assert_int_equal(p.n, 0);
    p = cookies(";;;");
    assert_int_equal(p.n, 0);
}

static void test_cookie_names_and_values_are_stripped_of_spaces_and_tabs(void **state)
{
    (void)state;
    struct pairs p = cookies("  a  =  1  ;\tb\t=\t2\t;  my name = two words  ");
    assert_int_equal(p.n, 3);
    ASSERT_PAIR(p, 0, "a", "1", 0);
    ASSERT_PAIR(p, 1, "b", "2", 0);
    ASSERT_PAIR(p, 2, "my name", "two words", 0);
}

static void test_cookie_pairs_with_empty_names_are_skipped(void **state)
{
    (void)state;
    struct pairs p = cookies("=x; ; \t ;=; c=3; =\"q\"");
    assert_int_equal(p.n, 1);
    ASSERT_PAIR(p, 0, "c", "3", 0);
}

static void test_cookie_pair_without_equals_has_an_empty_value(void **state)
{
    (void)state;
    struct pairs p = cookies("flag; d=4; other ;e=");
    assert_int_equal(p.n, 4);
    ASSERT_PAIR(p, 0, "flag", "", 0);
    ASSERT_PAIR(p, 1, "d", "4", 0);
    ASSERT_PAIR(p, 2, "other", "", 0);
    ASSERT_PAIR(p, 3, "e", "", 0);
}

static void test_quoted_cookie_values_may_contain_semicolons(void **state)
{
    (void)state;
    struct pairs p = cookies("q=\"a;b\"; r=1");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"a;b\"", 1);
    ASSERT_PAIR(p, 1, "r", "1", 0);

    /* an escaped quote does not end the value; spaces before ';' are fine */
    p = cookies("q=\"a\\\";b\"  ; r=2");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"a\\\";b\"", 1);
    ASSERT_PAIR(p, 1, "r", "2", 0);

    /* an empty quoted value, and one at the very end */
    p = cookies("e=\"\"; z=\"end\"");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "e", "\"\"", 1);
    ASSERT_PAIR(p, 1, "z", "\"end\"", 1);
}

static void test_quoted_cookie_value_followed_by_junk_is_raw(void **state)
{
    (void)state;
    /* "abc" followed by junk before ';': the raw text up to ';' */
    struct pairs p = cookies("q=\"abc\"def; r=3");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"abc\"def", 0);
    ASSERT_PAIR(p, 1, "r", "3", 0);

    /* a quoted ';' does not protect a value that is then raw: the raw
     * value ends at the first ';', and the rest is the next pair */
    p = cookies("q=\"a;b\"x; r=4");
    assert_int_equal(p.n, 3);
    ASSERT_PAIR(p, 0, "q", "\"a", 0);
    ASSERT_PAIR(p, 1, "b\"x", "", 0);
    ASSERT_PAIR(p, 2, "r", "4", 0);

    /* an unterminated quote is raw */
    p = cookies("q=\"open; r=5");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"open", 0);
    ASSERT_PAIR(p, 1, "r", "5", 0);
}

static void test_raw_cookie_value_that_starts_and_ends_with_a_quote_is_quoted(void **state)
{
    (void)state;
    /* Werkzeug unquotes any stripped value of length >= 2 that starts and
     * ends with '"', even when the quoted-string pattern did not match */
    struct pairs p = cookies("q=\"x\"junk\"; r=6");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"x\"junk\"", 1);
    ASSERT_PAIR(p, 1, "r", "6", 0);
    p = cookies("q=\"ab\\\"");
    assert_int_equal(p.n, 1);
    ASSERT_PAIR(p, 0, "q", "\"ab\\\"", 1);
    /* a lone quote is not a quoted value */
    p = cookies("q=\"");
    ASSERT_PAIR(p, 0, "q", "\"", 0);
}

static void test_cookie_names_and_values_lose_unicode_whitespace_as_python_strip_does(void **state)
{
    (void)state;
    /* Werkzeug decodes the header as UTF-8 and str.strip()s: U+00A0,
     * U+3000, U+2000..U+200A, U+2028/9, U+202F, U+205F, U+1680, U+0085 */
    struct pairs p = cookies("access_token\xc2\xa0=a; \xe3\x80\x80" "b\xe2\x80\x8a=\xc2\x85v\xe2\x80\xa9; "
                             "c= \xe1\x9a\x80\xe2\x81\x9f\xe2\x80\xafw\xe2\x80\x80 x\xe2\x80\xa8");
    assert_int_equal(p.n, 3);
    ASSERT_PAIR(p, 0, "access_token", "a", 0);
    ASSERT_PAIR(p, 1, "b", "v", 0);
    ASSERT_PAIR(p, 2, "c", "w\xe2\x80\x80 x", 0);
    /* a quoted value with trailing U+00A0 before ';' is raw, then stripped
     * and unquoted as a whole */
    p = cookies("q=\"x\"\xc2\xa0; r=1");
    assert_int_equal(p.n, 2);
    ASSERT_PAIR(p, 0, "q", "\"x\"", 1);
    /* other non-ASCII bytes are data: U+00E9, U+200B (not whitespace) */
    p = cookies("\xc3\xa9=\xe2\x80\x8b");
    assert_int_equal(p.n, 1);
    ASSERT_PAIR(p, 0, "\xc3\xa9", "\xe2\x80\x8b", 0);
    /* a name that is only U+00A0 is empty: skipped */
    p = cookies("\xc2\xa0=x; y=1");
    assert_int_equal(p.n, 1);
    ASSERT_PAIR(p, 0, "y", "1", 0);
}

static void test_cookie_names_lose_latin1_whitespace_bytes_as_werkzeug_2_3_strips(void **state)
{
    (void)state;
    /* Werkzeug >= 2.3 strip()s the latin-1 string: a lone 0xA0 (NBSP) or
     * 0x85 (NEL) byte is whitespace there */
    struct pairs p = cookies("access_token\xa0=t1; \x85" "access_token=t2; x=\xa0" "v\x85");
    assert_int_equal(p.n, 3);
    ASSERT_PAIR(p, 0, "access_token", "t1", 0);
    ASSERT_PAIR(p, 1, "access_token", "t2", 0);
    ASSERT_PAIR(p, 2, "x", "v", 0);
}

/* ---- id_collect ---- */

static struct id_source std_sources[] = {
    {ID_SRC_COOKIE, "__Host-access_token", 19},
    {ID_SRC_COOKIE, "access_token", 12},
    {ID_SRC_HEADER, "Authorization", 13},
    {ID_SRC_QUERY, "_token", 6},
};
enum { SRC_HOST_COOKIE, SRC_COOKIE, SRC_AUTH, SRC_QUERY };

static struct id_config std_cfg(void)
{
    struct id_config c;
    memset(&c, 0, sizeof(c));
    c.sources = std_sources;
    c.nsources = PC_ARRAY_LEN(std_sources);
    return c;
}

#define HDR(n, v) {(n), sizeof(n) - 1, (v), sizeof(v) - 1}

static struct id_cred g_creds[ID_MAX_CREDS];
static int g_n;
static struct pc_pool g_pool; /* the request's pool: reset before the next collect */

/* As judge does: the Cookie headers joined once, then every source. */
static int collect(const struct id_config *c, const struct h1_header *h, size_t nh, const char *q)
{
    pc_pool_reset(&g_pool);
    memset(g_creds, 0, sizeof(g_creds));
    size_t cl;
    const char *cookie = id_joined_cookies(h, nh, &cl, &g_pool);
    g_n = id_collect(c, h, nh, cookie, cl, q, q ? strlen(q) : 0, g_creds, &g_pool);
    return g_n;
}

static int teardown(void **state)
{
    (void)state;
    g_n = 0;
    pc_pool_free(&g_pool);
    return 0;
}

/* Does the credential point into the header (no copy was made)? */
static int points_into(const struct id_cred *cr, const char *v, size_t vl)
{
    return cr->token >= v && cr->token + cr->len <= v + vl;
}

#define ASSERT_CRED(i, src, tok)                                          \
    do {                                                                  \
        assert_int_equal(g_creds[i].source, (src));                       \
        assert_int_equal(g_creds[i].len, strlen(tok));                    \
        assert_memory_equal(g_creds[i].token, (tok), strlen(tok));        \
    } while (0)

static void test_every_cookie_occurrence_in_one_header_is_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "access_token=t1; theme=dark; access_token=t2;access_token=t3")};
    assert_int_equal(collect(&c, h, 1, NULL), 3);
    ASSERT_CRED(0, SRC_COOKIE, "t1");
    ASSERT_CRED(1, SRC_COOKIE, "t2");
    ASSERT_CRED(2, SRC_COOKIE, "t3");
    /* unquoted values point into the header, nothing is copied */
    assert_true(points_into(&g_creds[0], h[0].value, h[0].value_len));
}

static void test_cookies_across_several_cookie_headers_are_all_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {
        HDR("Cookie", "access_token=t1"),
        HDR("Accept", "*/*"),
        HDR("cookie", "x=1; access_token=t2"),
        HDR("COOKIE", "access_token=t3"),
    };
    assert_int_equal(collect(&c, h, PC_ARRAY_LEN(h), NULL), 3);
    ASSERT_CRED(0, SRC_COOKIE, "t1");
    ASSERT_CRED(1, SRC_COOKIE, "t2");
    ASSERT_CRED(2, SRC_COOKIE, "t3");
}

static void test_host_prefixed_and_plain_access_token_cookies_are_both_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "__Host-access_token=host; access_token=plain")};
    assert_int_equal(collect(&c, h, 1, NULL), 2);
    ASSERT_CRED(0, SRC_HOST_COOKIE, "host");
    ASSERT_CRED(1, SRC_COOKIE, "plain");
}

static void test_cookie_names_match_exactly(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "Access_Token=a; access_token_x=b; xaccess_token=c; access_token =d")};
    /* case and prefixes do not match; surrounding spaces are stripped */
    assert_int_equal(collect(&c, h, 1, NULL), 1);
    ASSERT_CRED(0, SRC_COOKIE, "d");
}

static void test_cookie_name_padded_with_nbsp_is_still_collected(void **state)
{
    (void)state;
    /* the backend sees "access_token" here: so must we */
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "access_token\xc2\xa0=t1; \xe3\x80\x80" "access_token=t2")};
    assert_int_equal(collect(&c, h, 1, NULL), 2);
    ASSERT_CRED(0, SRC_COOKIE, "t1");
    ASSERT_CRED(1, SRC_COOKIE, "t2");
}

static void test_quoted_cookie_values_are_unescaped(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "access_token=\"ab\\\"c\\073d\\\\e\\xf\"; access_token=\"plain\"")};
    assert_int_equal(collect(&c, h, 1, NULL), 2);
    ASSERT_CRED(0, SRC_COOKIE, "ab\"c;d\\exf");
    ASSERT_CRED(1, SRC_COOKIE, "plain");
    /* unescaped: a copy, in the request's pool */
    assert_false(points_into(&g_creds[0], h[0].value, h[0].value_len));
}

static void test_quoted_cookie_octal_escapes_follow_werkzeug(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    /* \000..\377: first digit 0-3. "\477" is "\4" then "77" -> "477" */
    struct h1_header h[] = {HDR("Cookie", "access_token=\"\\101\\477\\0601\\12\"")};
    assert_int_equal(collect(&c, h, 1, NULL), 1);
    ASSERT_CRED(0, SRC_COOKIE, "A477" "01" "12");
    /* a trailing backslash before the closing quote stays */
    struct h1_header h2[] = {HDR("Cookie", "access_token=\"ab\\\"")};
    assert_int_equal(collect(&c, h2, 1, NULL), 1);
    ASSERT_CRED(0, SRC_COOKIE, "ab\\");
}

static void test_bearer_scheme_is_case_insensitive_and_spaces_are_skipped(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    static const char *const vals[] = {"Bearer x", "bearer x", "BEARER   x", "BeArEr\tx", "Bearer \t x"};
    for (size_t i = 0; i < PC_ARRAY_LEN(vals); i++) {
        struct h1_header h[] = {{"Authorization", 13, vals[i], strlen(vals[i])}};
        assert_int_equal(collect(&c, h, 1, NULL), 1);
        ASSERT_CRED(0, SRC_AUTH, "x");
    }
    /* the header name is case-insensitive too */
    struct h1_header h[] = {HDR("AUTHORIZATION", "Bearer tok")};
    assert_int_equal(collect(&c, h, 1, NULL), 1);
    ASSERT_CRED(0, SRC_AUTH, "tok");
}

static void test_non_bearer_authorization_is_collected_whole_as_a_credential(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    static const char *const vals[] = {"Basic abc", "Bearer", "Bearerx y", "Token x", "x"};
    for (size_t i = 0; i < PC_ARRAY_LEN(vals); i++) {
        struct h1_header h[] = {{"Authorization", 13, vals[i], strlen(vals[i])}};
        assert_int_equal(collect(&c, h, 1, NULL), 1);
        ASSERT_CRED(0, SRC_AUTH, vals[i]);
    }
}

static void test_two_authorization_headers_are_both_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Authorization", "Bearer one"), HDR("authorization", "Bearer two")};
    assert_int_equal(collect(&c, h, 2, NULL), 2);
    ASSERT_CRED(0, SRC_AUTH, "one");
    ASSERT_CRED(1, SRC_AUTH, "two");
}

static void test_cookie_and_authorization_together_are_all_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {
        HDR("Authorization", "Bearer hdr"),
        HDR("Cookie", "access_token=ck; __Host-access_token=hk"),
    };
    assert_int_equal(collect(&c, h, 2, "_token=q"), 4);
    ASSERT_CRED(0, SRC_COOKIE, "ck");
    ASSERT_CRED(1, SRC_HOST_COOKIE, "hk");
    ASSERT_CRED(2, SRC_AUTH, "hdr");
    ASSERT_CRED(3, SRC_QUERY, "q");
}

/* Several Cookie headers are parsed as the upstream receives them, joined
 * with "; ": a quote left open in one header closes in the next, and the
 * access_token hidden inside the second header's quotes comes out as a
 * cookie of its own (independent review finding). */
static void test_cookies_are_collected_from_the_joined_headers_the_upstream_receives(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {
        HDR("Cookie", "x=\"p"),
        HDR("Cookie", "c=\"; access_token=hidden; d=\""),
    };
    assert_int_equal(collect(&c, h, 2, NULL), 1);
    ASSERT_CRED(0, SRC_COOKIE, "hidden");
    size_t len;
    const char *v = id_joined_cookies(h, 2, &len, &g_pool);
    assert_string_equal(v, "x=\"p; c=\"; access_token=hidden; d=\"");
    assert_int_equal(len, strlen(v));
    /* one header: no copy */
    v = id_joined_cookies(h, 1, &len, &g_pool);
    assert_ptr_equal(v, h[0].value);
    /* none */
    assert_null(id_joined_cookies(h, 0, &len, &g_pool));
}

static void test_query_token_sources_decode_like_werkzeug(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    assert_int_equal(collect(&c, NULL, 0, "a=1&_token=x+y&b=2"), 1);
    ASSERT_CRED(0, SRC_QUERY, "x y");

    assert_int_equal(collect(&c, NULL, 0, "_token=%41%62c%2B%26%zz%4"), 1);
    ASSERT_CRED(0, SRC_QUERY, "Abc+&%zz%4");

    /* the key is decoded too; ';' is not a separator */
    assert_int_equal(collect(&c, NULL, 0, "%5Ftoken=k1&_tok%65n=k2&_token=a;_token=b"), 3);
    ASSERT_CRED(0, SRC_QUERY, "k1");
    ASSERT_CRED(1, SRC_QUERY, "k2");
    ASSERT_CRED(2, SRC_QUERY, "a;_token=b");

    /* '=' in the value stays; a bare key is an empty credential */
    assert_int_equal(collect(&c, NULL, 0, "_token=a=b&&_token&_token="), 3);
    ASSERT_CRED(0, SRC_QUERY, "a=b");
    ASSERT_CRED(1, SRC_QUERY, "");
    ASSERT_CRED(2, SRC_QUERY, "");

    /* no match, empty query, NULL query */
    assert_int_equal(collect(&c, NULL, 0, "token=a&_Token=b&_token_=c"), 0);
    assert_int_equal(collect(&c, NULL, 0, ""), 0);
    assert_int_equal(collect(&c, NULL, 0, NULL), 0);
}

static void test_every_query_token_occurrence_is_collected(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    assert_int_equal(collect(&c, NULL, 0, "_token=a&x=1&_token=b&_token=c"), 3);
    ASSERT_CRED(0, SRC_QUERY, "a");
    ASSERT_CRED(1, SRC_QUERY, "b");
    ASSERT_CRED(2, SRC_QUERY, "c");
}

static void test_a_long_query_source_name_sent_fully_percent_encoded_is_collected(void **state)
{
    /* Werkzeug decodes a key of any length, so the proxy must too: a
     * credential it skipped would reach the backend unchecked */
    (void)state;
    char name[121], query[3 * 120 + 16];
    memset(name, 'k', 120);
    name[120] = '\0';
    struct id_source src[] = {{ID_SRC_QUERY, name, 120}};
    struct id_config c = std_cfg();
    c.sources = src;
    c.nsources = 1;
    for (int i = 0; i < 120; i++)
        memcpy(query + 3 * i, "%6B", 3); /* 'k' */
    strcpy(query + 3 * 120, "=tok");
    assert_int_equal(strlen(query), 3 * 120 + 4);
    assert_int_equal(collect(&c, NULL, 0, query), 1);
    ASSERT_CRED(0, 0, "tok");
    /* one byte short of the name is a different key */
    query[3 * 119] = '=';
    query[3 * 119 + 1] = '\0';
    assert_int_equal(collect(&c, NULL, 0, query), 0);
}

static void test_query_is_ignored_without_a_query_source(void **state)
{
    (void)state;
    struct id_source src[] = {{ID_SRC_HEADER, "Authorization", 13}};
    struct id_config c = std_cfg();
    c.sources = src;
    c.nsources = 1;
    struct h1_header h[] = {HDR("Cookie", "access_token=t1")};
    assert_int_equal(collect(&c, h, 1, "_token=x"), 0);
}

static void test_other_header_sources_carry_the_token_itself(void **state)
{
    (void)state;
    struct id_source src[] = {{ID_SRC_HEADER, "X-Api-Key", 9}};
    struct id_config c = std_cfg();
    c.sources = src;
    c.nsources = 1;
    struct h1_header h[] = {
        HDR("x-api-key", "Bearer abc"),
        HDR("Authorization", "Bearer not-a-source"),
        HDR("X-Api-Key", "k2"),
    };
    assert_int_equal(collect(&c, h, PC_ARRAY_LEN(h), NULL), 2);
    ASSERT_CRED(0, 0, "Bearer abc");
    ASSERT_CRED(1, 0, "k2");
}

static void test_more_than_max_credentials_returns_minus_one(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    /* exactly ID_MAX_CREDS is fine */
    struct h1_header ok[] = {
        HDR("Cookie", "access_token=1; access_token=2; access_token=3; access_token=4"),
        HDR("Authorization", "Bearer 5"),
        HDR("Authorization", "Bearer 6"),
    };
    assert_int_equal(collect(&c, ok, PC_ARRAY_LEN(ok), "_token=7&_token=\"8\""), ID_MAX_CREDS);

    /* one more is refused (copies made for quoted cookies and the query
     * die with the pool) */
    struct h1_header over[] = {
        HDR("Cookie", "access_token=\"1\"; access_token=2; access_token=3; access_token=4"),
        HDR("Authorization", "Bearer 5"),
        HDR("Authorization", "Bearer 6"),
    };
    assert_int_equal(collect(&c, over, PC_ARRAY_LEN(over), "_token=7&_token=8&_token=9&_token=10"), -1);

    struct h1_header many[] = {HDR("Cookie", "access_token=a;access_token=a;access_token=a;access_token=a;"
                                             "access_token=a;access_token=a;access_token=a;access_token=a;"
                                             "access_token=a")};
    assert_int_equal(collect(&c, many, 1, NULL), -1);
}

static void test_no_credentials_gives_zero(void **state)
{
    (void)state;
    struct id_config c = std_cfg();
    struct h1_header h[] = {HDR("Cookie", "session=abc"), HDR("X-Token", "abc"), HDR("Host", "x")};
    assert_int_equal(collect(&c, h, PC_ARRAY_LEN(h), "a=b"), 0);
}

/* identity: without sources: reads the Authorization header, the documented
 * default (its name's length was once left 0, so that nothing matched) */
static void test_without_sources_the_authorization_header_is_read(void **state)
{
    (void)state;
    static const char text[] = "secret: k\n";
    char err[256];
    struct cfg_ctx ctx = {.file = "t.yaml"};
    struct id_config *c = NULL;
    struct yt_doc *doc = yt_load("t.yaml", text, strlen(text), NULL, err, sizeof(err));
    assert_non_null(doc);
    id_config_parse(&ctx, doc->root, &c);
    assert_int_equal(ctx.nerrors, 0);
    assert_int_equal(c->nsources, 1);
    struct h1_header h[] = {HDR("Cookie", "access_token=no"), HDR("authorization", "Bearer tok")};
    assert_int_equal(collect(c, h, 2, NULL), 1);
    ASSERT_CRED(0, 0, "tok");
    id_config_free(c);
    yt_free(doc);
    pc_buf_free(&ctx.errors);
    pc_buf_free(&ctx.warnings);
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookies_split_on_semicolon_only),
        cmocka_unit_test(test_cookie_names_and_values_are_stripped_of_spaces_and_tabs),
        cmocka_unit_test(test_cookie_pairs_with_empty_names_are_skipped),
        cmocka_unit_test(test_cookie_pair_without_equals_has_an_empty_value),
        cmocka_unit_test(test_quoted_cookie_values_may_contain_semicolons),
        cmocka_unit_test(test_quoted_cookie_value_followed_by_junk_is_raw),
        cmocka_unit_test(test_raw_cookie_value_that_starts_and_ends_with_a_quote_is_quoted),
        cmocka_unit_test(test_cookie_names_and_values_lose_unicode_whitespace_as_python_strip_does),
        cmocka_unit_test(test_cookie_names_lose_latin1_whitespace_bytes_as_werkzeug_2_3_strips),
        cmocka_unit_test_teardown(test_every_cookie_occurrence_in_one_header_is_collected, teardown),
        cmocka_unit_test_teardown(test_cookies_across_several_cookie_headers_are_all_collected, teardown),
        cmocka_unit_test_teardown(test_host_prefixed_and_plain_access_token_cookies_are_both_collected, teardown),
        cmocka_unit_test_teardown(test_cookie_names_match_exactly, teardown),
        cmocka_unit_test_teardown(test_cookie_name_padded_with_nbsp_is_still_collected, teardown),
        cmocka_unit_test_teardown(test_quoted_cookie_values_are_unescaped, teardown),
        cmocka_unit_test_teardown(test_quoted_cookie_octal_escapes_follow_werkzeug, teardown),
        cmocka_unit_test_teardown(test_bearer_scheme_is_case_insensitive_and_spaces_are_skipped, teardown),
        cmocka_unit_test_teardown(test_non_bearer_authorization_is_collected_whole_as_a_credential, teardown),
        cmocka_unit_test_teardown(test_two_authorization_headers_are_both_collected, teardown),
        cmocka_unit_test_teardown(test_cookie_and_authorization_together_are_all_collected, teardown),
        cmocka_unit_test_teardown(test_cookies_are_collected_from_the_joined_headers_the_upstream_receives, teardown),
        cmocka_unit_test_teardown(test_query_token_sources_decode_like_werkzeug, teardown),
        cmocka_unit_test_teardown(test_every_query_token_occurrence_is_collected, teardown),
        cmocka_unit_test_teardown(test_a_long_query_source_name_sent_fully_percent_encoded_is_collected, teardown),
        cmocka_unit_test_teardown(test_query_is_ignored_without_a_query_source, teardown),
        cmocka_unit_test_teardown(test_other_header_sources_carry_the_token_itself, teardown),
        cmocka_unit_test_teardown(test_more_than_max_credentials_returns_minus_one, teardown),
        cmocka_unit_test_teardown(test_no_credentials_gives_zero, teardown),
        cmocka_unit_test_teardown(test_without_sources_the_authorization_header_is_read, teardown),
    };
    return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
