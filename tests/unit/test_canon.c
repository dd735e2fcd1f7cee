/*
 * Unit tests for rules/canon.c: the canonical path.
 *
 * The table pins down every normative rule (request-target forms, query,
 * fragment, decode-once, slashes, dot segments, minimal re-encoding); the
 * property and randomized tests check the invariants that make the proxy
 * and gunicorn + Werkzeug agree on every accepted path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../rules/canon.h"
#include "../../lib/base.h"

#define REJECT 0
#define ACCEPT 1

struct canon_case {
    const char *target;
    int is_options;
    int ok;
    const char *path;       /* expected canonical path (ACCEPT) */
    const char *query;      /* expected query; NULL = no '?' at all */
    const char *encoded;    /* expected canon_encode(path) (ACCEPT) */
};

static const struct canon_case canon_cases[] = {
    /* origin-form, used as is */
    {"/", 0, ACCEPT, "/", NULL, "/"},
    {"/apps", 0, ACCEPT, "/apps", NULL, "/apps"},
    {"/apps/", 0, ACCEPT, "/apps/", NULL, "/apps/"},             /* trailing '/' kept */
    {"/apps/x/", 0, ACCEPT, "/apps/x/", NULL, "/apps/x/"},
    /* 4: decode once, completely; %2F is a '/' for the backend */
    {"/a%2Fb", 0, ACCEPT, "/a/b", NULL, "/a/b"},
    {"/a%2fb", 0, ACCEPT, "/a/b", NULL, "/a/b"},
    {"/x/y%2F", 0, ACCEPT, "/x/y/", NULL, "/x/y/"},
    {"/%61pps", 0, ACCEPT, "/apps", NULL, "/apps"},
    {"/a%252Fb", 0, ACCEPT, "/a%2Fb", NULL, "/a%252Fb"},         /* decoded once only */
    {"/a%25b", 0, ACCEPT, "/a%b", NULL, "/a%25b"},
    {"/a%20b", 0, ACCEPT, "/a b", NULL, "/a%20b"},
    {"/caf%C3%A9", 0, ACCEPT, "/caf\xC3\xA9", NULL, "/caf%C3%A9"},
    {"/%c3%a9t%e9", 0, ACCEPT, "/\xC3\xA9t\xE9", NULL, "/%C3%A9t%E9"}, /* not UTF-8: kept */
    {"/%FF", 0, ACCEPT, "/\xFF", NULL, "/%FF"},
    {"/%7E~user", 0, ACCEPT, "/~~user", NULL, "/~~user"},      /* unreserved: raw */
    {"/a%2Bb%21%24%26%27%28%29%2A%2C%3B%3D", 0, ACCEPT, "/a+b!$&'()*,;=", NULL,
     "/a+b!$&'()*,;="},                                         /* sub-delims: raw */
    {"/u%40h%3A1", 0, ACCEPT, "/u@h:1", NULL, "/u@h:1"},       /* ':' '@': raw */
    {"/a%5Bb%5D%22%3C%3E%5C%5E%60%7B%7C%7D", 0, ACCEPT, "/a[b]\"<>\\^`{|}", NULL,
     "/a%5Bb%5D%22%3C%3E%5C%5E%60%7B%7C%7D"},                   /* the rest: escaped */
    {"/a;x=1", 0, ACCEPT, "/a;x=1", NULL, "/a;x=1"},           /* ';' params literal */
    {"/apps/0F8FAD5B-D9CB-469F-A165-70867728950E", 0, ACCEPT,
     "/apps/0F8FAD5B-D9CB-469F-A165-70867728950E", NULL,
     "/apps/0F8FAD5B-D9CB-469F-A165-70867728950E"},             /* case kept by canon */
    /* 2: the query is everything after the first '?', unchanged */
    {"/a?x=1&y=%2F", 0, ACCEPT, "/a", "x=1&y=%2F", "/a"},
    {"/a?b?c", 0, ACCEPT, "/a", "b?c", "/a"},
    {"/a?", 0, ACCEPT, "/a", "", "/a"},
    {"/a?q=%zz%", 0, ACCEPT, "/a", "q=%zz%", "/a"},             /* query not decoded */
    {"/a%3Fb", 0, REJECT, NULL, NULL, NULL},                    /* encoded '?' */
    /* 3: a fragment anywhere */
    {"/a#frag", 0, REJECT, NULL, NULL, NULL},
    {"/a?x=1#frag", 0, REJECT, NULL, NULL, NULL},
    {"/a%23b", 0, REJECT, NULL, NULL, NULL},                    /* encoded '#' */
    /* 4: malformed escapes, decoded NUL / control characters */
    {"/%4", 0, REJECT, NULL, NULL, NULL},
    {"/a%4?x", 0, REJECT, NULL, NULL, NULL},                    /* escape cut by '?' */
    {"/%zz", 0, REJECT, NULL, NULL, NULL},
    {"/%", 0, REJECT, NULL, NULL, NULL},
    {"/%g0", 0, REJECT, NULL, NULL, NULL},
    {"/a%00b", 0, REJECT, NULL, NULL, NULL},
    {"/a%0ab", 0, REJECT, NULL, NULL, NULL},
    {"/a%09b", 0, REJECT, NULL, NULL, NULL},
    {"/a%1F", 0, REJECT, NULL, NULL, NULL},
    {"/a%7fb", 0, REJECT, NULL, NULL, NULL},
    /* 5: leading slashes collapse; any other "//" is refused */
    {"//lead", 0, ACCEPT, "/lead", NULL, "/lead"},
    {"///lead", 0, ACCEPT, "/lead", NULL, "/lead"},
    {"//", 0, ACCEPT, "/", NULL, "/"},
    {"/%2F%2Flead", 0, ACCEPT, "/lead", NULL, "/lead"},         /* decoded, then collapsed */
    {"/in//ner", 0, REJECT, NULL, NULL, NULL},
    {"/in%2F%2Fner", 0, REJECT, NULL, NULL, NULL},
    {"/in/%2Fner", 0, REJECT, NULL, NULL, NULL},
    {"/a//", 0, REJECT, NULL, NULL, NULL},
    /* 6: dot segments in any encoding */
    {"/a/./b", 0, REJECT, NULL, NULL, NULL},
    {"/a/../b", 0, REJECT, NULL, NULL, NULL},
    {"/a/.", 0, REJECT, NULL, NULL, NULL},
    {"/a/..", 0, REJECT, NULL, NULL, NULL},
    {"/..", 0, REJECT, NULL, NULL, NULL},
    {"/a/%2e%2e/b", 0, REJECT, NULL, NULL, NULL},
    {"/a/.%2E", 0, REJECT, NULL, NULL, NULL},
    {"/a/%2E", 0, REJECT, NULL, NULL, NULL},
    {"/a%2F..%2Fb", 0, REJECT, NULL, NULL, NULL},
    {"//./x", 0, REJECT, NULL, NULL, NULL},
    {"/...", 0, ACCEPT, "/...", NULL, "/..."},                  /* not a dot segment */
    {"/%2e%2e%2e/x", 0, ACCEPT, "/.../x", NULL, "/.../x"},
    {"/.hidden/a..b", 0, ACCEPT, "/.hidden/a..b", NULL, "/.hidden/a..b"},
    /* 1: absolute-form is reduced to its path */
    {"http://h/p?q", 0, ACCEPT, "/p", "q", "/p"},
    {"HTTPS://h", 0, ACCEPT, "/", NULL, "/"},
    {"http://h", 0, ACCEPT, "/", NULL, "/"},                     /* empty path = "/" */
    {"http://h?q=1", 0, ACCEPT, "/", "q=1", "/"},
    {"HtTp://h:8080/a%2Fb", 0, ACCEPT, "/a/b", NULL, "/a/b"},
    {"http://[::1]:8080/p", 0, ACCEPT, "/p", NULL, "/p"},
    {"http://h//x", 0, ACCEPT, "/x", NULL, "/x"},
    {"http://h/%2e%2e/x", 0, REJECT, NULL, NULL, NULL},
    {"http://u@h/p", 0, REJECT, NULL, NULL, NULL},              /* userinfo */
    {"http://u:pw@h/", 0, REJECT, NULL, NULL, NULL},
    {"http://h%40x/p", 0, REJECT, NULL, NULL, NULL},
    {"http://h?", 0, ACCEPT, "/", "", "/"},
    {"http:///p", 0, REJECT, NULL, NULL, NULL},                 /* empty authority */
    {"https://", 0, REJECT, NULL, NULL, NULL},
    {"ftp://h/p", 0, REJECT, NULL, NULL, NULL},
    {"http:/p", 0, REJECT, NULL, NULL, NULL},
    /* asterisk-form only with OPTIONS; anything else is 400 */
    {"*", 1, ACCEPT, "*", NULL, "*"},
    {"*", 0, REJECT, NULL, NULL, NULL},
    {"*?x", 1, REJECT, NULL, NULL, NULL},
    {"/", 1, ACCEPT, "/", NULL, "/"},                           /* OPTIONS with a path */
    {"", 0, REJECT, NULL, NULL, NULL},
    {"apps", 0, REJECT, NULL, NULL, NULL},
    {"%2Fapps", 0, REJECT, NULL, NULL, NULL},
    {"?x=1", 0, REJECT, NULL, NULL, NULL},
};

#define NCASES PC_ARRAY_LEN(canon_cases)

/* An independent minimal encoder written from rule (8). */
static int ref_raw_ok(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

static size_t ref_encode(const char *p, size_t len, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (ref_raw_ok(c)) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return o;
}

/* A copy of the target with no NUL after it, so that reading past the end is
 * caught by a sanitizer instead of stopping at the terminator. */
static char *exact_copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    memcpy(p, s, len);
    return p;
}

static void describe(const char *label, const char *target, size_t len)
{
    char shown[512];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(shown); i++) {
        unsigned char c = (unsigned char)target[i];
        if (c >= 0x21 && c < 0x7f)
            shown[o++] = (char)c;
        else
            o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02X", c);
    }
    shown[o] = '\0';
    print_message("%s: target \"%s\"\n", label, shown);
}

/*
 * The invariants every accepted path must satisfy; returns a description of
 * the first one violated, or NULL.
 */
static const char *check_invariants(const char *target, size_t tlen, const struct canon_result *res)
{
    static char msg[128];
    if (res->asterisk)
        return res->path_len == 1 && res->path[0] == '*' ? NULL : "asterisk path is not \"*\"";
    const char *p = res->path;
    size_t n = res->path_len;
    if (n == 0 || p[0] != '/')
        return "canonical path does not start with '/'";
    if (p[n] != '\0' || strlen(p) != n)
        return "canonical path is not NUL-terminated at path_len, or contains NUL";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#')
            return "canonical path contains a control character, '?' or '#'";
    }
    if (strstr(p, "//") != NULL)
        return "canonical path contains \"//\"";
    if (strstr(p, "/./") != NULL)
        return "canonical path contains \"/./\"";
    if (strstr(p, "/../") != NULL)
        return "canonical path contains \"/../\"";
    if ((n >= 2 && memcmp(p + n - 2, "/.", 2) == 0) || (n >= 3 && memcmp(p + n - 3, "/..", 3) == 0))
        return "canonical path ends with \"/.\" or \"/..\"";

    /* the re-encoding decodes back (strictly, once) to exactly the path */
    char *enc = malloc(3 * n + 1), *dec = malloc(3 * n + 1), *ref = malloc(3 * n + 1);
    size_t el = canon_encode(p, n, enc);
    const char *bad = NULL;
    long dl = url_pct_decode(enc, el, dec, 0, 1);
    if (enc[el] != '\0' || strlen(enc) != el)
        bad = "canon_encode output is not NUL-terminated at its length";
    else if (dl < 0)
        bad = "canon_encode output is not strictly decodable";
    else if ((size_t)dl != n || memcmp(dec, p, n) != 0)
        bad = "canon_encode output does not decode back to the canonical path";
    else if (ref_encode(p, n, ref) != el || memcmp(ref, enc, el) != 0)
        bad = "canon_encode output is not the minimal encoding";
    else {
        /* the encoded form is itself canonical: the upstream sees the same path */
        char *out2 = malloc(el + 2);
        struct canon_result r2;
        const char *why2 = NULL;
        if (canon_target(enc, el, 0, out2, &r2, &why2) != 0) {
            snprintf(msg, sizeof(msg), "re-canonicalising the encoded form fails: %s", why2);
            bad = msg;
        } else if (r2.path_len != n || memcmp(r2.path, p, n) != 0 || r2.has_query) {
            bad = "re-canonicalising the encoded form gives a different path";
        }
        free(out2);
    }
    free(enc);
    free(dec);
    free(ref);
    if (bad != NULL)
        return bad;

    /* the query is the raw text after the first '?' of the target */
    const char *qm = memchr(target, '?', tlen);
    if ((qm != NULL) != (res->has_query != 0))
        return "has_query does not say whether the target has a '?'";
    if (qm != NULL && (res->query != qm + 1 || res->query_len != tlen - (size_t)(qm + 1 - target)))
        return "query is not everything after the first '?'";
    return NULL;
}

static void test_canon_table_cases_accept_or_reject_as_specified(void **state)
{
    (void)state;
    int failures = 0;
    assert_true(NCASES >= 40);
    for (size_t i = 0; i < NCASES; i++) {
        const struct canon_case *c = &canon_cases[i];
        size_t tlen = strlen(c->target);
        char *t = exact_copy(c->target, tlen);
        char *out = malloc(tlen + 2);
        struct canon_result res;
        const char *why = NULL;
        int rc = canon_target(t, tlen, c->is_options, out, &res, &why);
        if (c->ok == REJECT) {
            if (rc != -1 || why == NULL) {
                describe("accepted, expected 400", c->target, tlen);
                failures++;
            }
            free(out);
            free(t);
            continue;
        }
        if (rc != 0) {
            describe("rejected, expected accept", c->target, tlen);
            print_message("  why: %s\n", why ? why : "(null)");
            failures++;
            free(out);
            free(t);
            continue;
        }
        if (res.path != out || res.path_len != strlen(c->path) || memcmp(res.path, c->path, res.path_len) != 0) {
            describe("wrong canonical path", c->target, tlen);
            describe("  got", res.path, res.path_len);
            describe("  expected", c->path, strlen(c->path));
            failures++;
        }
        if (c->query == NULL ? res.has_query != 0
                             : (!res.has_query || res.query_len != strlen(c->query) ||
                                memcmp(res.query, c->query, res.query_len) != 0)) {
            describe("wrong query", c->target, tlen);
            failures++;
        }
        if ((res.asterisk != 0) != (strcmp(c->target, "*") == 0)) {
            describe("wrong asterisk flag", c->target, tlen);
            failures++;
        }
        char *enc = malloc(3 * res.path_len + 1);
        size_t el = canon_encode(res.path, res.path_len, enc);
        if (el != strlen(c->encoded) || memcmp(enc, c->encoded, el) != 0) {
            describe("wrong encoded form", c->target, tlen);
            describe("  got", enc, el);
            failures++;
        }
        free(enc);
        free(out);
        free(t);
    }
    print_message("%zu table cases checked\n", (size_t)NCASES);
    assert_int_equal(failures, 0);
}

static void test_canon_every_accepted_table_case_satisfies_the_invariants(void **state)
{
    (void)state;
    int failures = 0, accepted = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const struct canon_case *c = &canon_cases[i];
        size_t tlen = strlen(c->target);
        char *t = exact_copy(c->target, tlen);
        char *out = malloc(tlen + 2);
        struct canon_result res;
        const char *why = NULL;
        if (canon_target(t, tlen, c->is_options, out, &res, &why) == 0) {
            accepted++;
            const char *bad = check_invariants(t, tlen, &res);
            if (bad != NULL) {
                describe(bad, c->target, tlen);
                failures++;
            }
        }
        free(out);
        free(t);
    }
    assert_true(accepted >= 20);
    assert_int_equal(failures, 0);
}

static void test_canon_rejections_always_say_why(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "x", "/a#", "/%", "/%0", "/a%00", "/a//b", "/.", "*"};
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        char out[16];
        struct canon_result res;
        const char *why = NULL;
        assert_int_equal(canon_target(bad[i], strlen(bad[i]), 0, out, &res, &why), -1);
        assert_non_null(why);
        assert_true(strlen(why) > 0);
    }
}

static void test_canon_asterisk_form_is_only_for_options(void **state)
{
    (void)state;
    char out[4];
    struct canon_result res;
    const char *why = NULL;
    assert_int_equal(canon_target("*", 1, 1, out, &res, &why), 0);
    assert_true(res.asterisk);
    assert_false(res.has_query);
    why = NULL;
    assert_int_equal(canon_target("*", 1, 0, out, &res, &why), -1);
    assert_non_null(strstr(why, "OPTIONS"));
}

static void test_canon_decoded_path_fits_the_documented_buffer(void **state)
{
    (void)state;
    /* out needs target_len + 2 bytes: the worst cases are the shortest
     * targets ("http://h" becomes "/") and undecodable-free long paths */
    static const char *const ts[] = {"http://h", "http://h?", "/", "*", "//", "/a/b/c/", "/%41%42"};
    for (size_t i = 0; i < PC_ARRAY_LEN(ts); i++) {
        size_t tl = strlen(ts[i]);
        char *out = malloc(tl + 2);
        struct canon_result res;
        const char *why = NULL;
        assert_int_equal(canon_target(ts[i], tl, 1, out, &res, &why), 0);
        assert_true(res.path_len + 1 <= tl + 2);
        assert_int_equal(out[res.path_len], '\0');
        free(out);
    }
}

static void test_canon_pct_decode_strict_refuses_malformed_and_lenient_keeps_them(void **state)
{
    (void)state;
    char dst[32];
    assert_int_equal(url_pct_decode("%4", 2, dst, 0, 1), -1);
    assert_int_equal(url_pct_decode("a%zz", 4, dst, 0, 1), -1);
    assert_int_equal(url_pct_decode("%", 1, dst, 0, 1), -1);
    long n = url_pct_decode("a%zz%", 5, dst, 0, 0);
    assert_int_equal(n, 5);
    assert_memory_equal(dst, "a%zz%", 5);
    n = url_pct_decode("a+b%2B%41", 9, dst, 1, 1);
    assert_int_equal(n, 5);
    assert_memory_equal(dst, "a b+A", 5);
    n = url_pct_decode("a+b", 3, dst, 0, 1);
    assert_int_equal(n, 3);
    assert_memory_equal(dst, "a+b", 3);
    /* in place */
    char inplace[] = "%2Fx%2f";
    n = url_pct_decode(inplace, 7, inplace, 0, 1);
    assert_int_equal(n, 3);
    assert_memory_equal(inplace, "/x/", 3);
}

/* ---- randomized: a reference canonicaliser and the invariants ---- */

static uint64_t rng_state;

static uint32_t rng_next(void)
{
    /* xorshift64*, deterministic */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

/*
 * A deliberately naive origin-form canonicaliser written from rules 2-6;
 * returns 0 and fills path/query, or -1.
 */
static int ref_canon_origin(const char *t, size_t len, char *path, size_t *plen, const char **q, size_t *ql,
                            int *hasq)
{
    if (len == 0 || t[0] != '/' || memchr(t, '#', len) != NULL)
        return -1;
    const char *qm = memchr(t, '?', len);
    size_t pl = qm ? (size_t)(qm - t) : len;
    *hasq = qm != NULL;
    *q = qm ? qm + 1 : NULL;
    *ql = qm ? len - pl - 1 : 0;
    char dec[512];
    size_t n = 0;
    for (size_t i = 0; i < pl; i++) {
        if (t[i] != '%') {
            dec[n++] = t[i];
            continue;
        }
        if (i + 2 >= pl || pc_hexval((unsigned char)t[i + 1]) < 0 || pc_hexval((unsigned char)t[i + 2]) < 0)
            return -1;
        unsigned char c = (unsigned char)(pc_hexval((unsigned char)t[i + 1]) * 16 + pc_hexval((unsigned char)t[i + 2]));
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#')
            return -1;
        dec[n++] = (char)c;
        i += 2;
    }
    size_t s = 0;
    while (s < n && dec[s] == '/')
        s++;
    /* "/" + the rest, split into segments */
    path[0] = '/';
    memcpy(path + 1, dec + s, n - s);
    *plen = 1 + n - s;
    path[*plen] = '\0';
    size_t a = 1;
    for (;;) {
        size_t b = a;
        while (b < *plen && path[b] != '/')
            b++;
        int last = b >= *plen;
        size_t sl = b - a;
        if (sl == 0 && !last)
            return -1;
        if ((sl == 1 && path[a] == '.') || (sl == 2 && path[a] == '.' && path[a + 1] == '.'))
            return -1;
        if (last)
            break;
        a = b + 1;
    }
    return 0;
}

static void test_canon_random_targets_agree_with_reference_and_keep_invariants(void **state)
{
    (void)state;
    static const char alphabet[] = "//////....%%%%0123456789abcdefABCDEFxyz;=+~?#@ ";
    const size_t nalpha = sizeof(alphabet) - 1 - 1; /* ' ' is excluded below */
    static const char *const escapes[] = {"%2F", "%2f", "%2E", "%2e", "%25", "%00", "%3F", "%23", "%7f",
                                          "%20", "%C3", "%41", "%4", "%"};
    int accepted = 0, rejected = 0, failures = 0;

    rng_state = 0x9E3779B97F4A7C15ULL; /* fixed seed */
    for (int iter = 0; iter < 5000; iter++) {
        char t[128];
        size_t len = 0;
        size_t want = 1 + rng_next() % 24;
        if (rng_next() % 10 != 0)
            t[len++] = '/';
        while (len < want) {
            if (rng_next() % 5 == 0) {
                const char *e = escapes[rng_next() % PC_ARRAY_LEN(escapes)];
                size_t el = strlen(e);
                memcpy(t + len, e, el);
                len += el;
            } else {
                t[len++] = alphabet[rng_next() % nalpha];
            }
        }
        t[len] = '\0';

        char *out = malloc(len + 2);
        struct canon_result res;
        const char *why = NULL;
        char *tx = exact_copy(t, len);
        int rc = canon_target(tx, len, 0, out, &res, &why);

        char rpath[512];
        size_t rplen = 0, rql = 0;
        const char *rq = NULL;
        int rhasq = 0;
        int rrc = ref_canon_origin(tx, len, rpath, &rplen, &rq, &rql, &rhasq);

        if (rc != rrc) {
            describe(rc == 0 ? "accepted, reference rejects" : "rejected, reference accepts", t, len);
            if (why)
                print_message("  why: %s\n", why);
            failures++;
        } else if (rc == 0) {
            accepted++;
            if (res.path_len != rplen || memcmp(res.path, rpath, rplen) != 0 || res.has_query != rhasq ||
                res.query_len != rql || (rhasq && res.query != rq)) {
                describe("differs from the reference", t, len);
                failures++;
            }
            const char *bad = check_invariants(tx, len, &res);
            if (bad != NULL) {
                describe(bad, t, len);
                failures++;
            }
        } else {
            rejected++;
            if (why == NULL) {
                describe("rejected without a reason", t, len);
                failures++;
            }
        }
        free(out);
        free(tx);
        if (failures > 20)
            break;
    }
    print_message("random targets: %d accepted, %d rejected\n", accepted, rejected);
    assert_int_equal(failures, 0);
    assert_true(accepted >= 500);
    assert_true(rejected >= 500);
}

static void test_canon_encode_escapes_every_byte_outside_the_raw_set(void **state)
{
    (void)state;
    /* every byte value, one at a time, behind a '/' */
    for (int c = 1; c < 256; c++) {
        char p[2] = {'/', (char)c}, enc[8], ref[8];
        size_t el = canon_encode(p, 2, enc);
        size_t rl = ref_encode(p, 2, ref);
        assert_int_equal(el, rl);
        assert_memory_equal(enc, ref, el);
        char dec[8];
        assert_int_equal(url_pct_decode(enc, el, dec, 0, 1), 2);
        assert_memory_equal(dec, p, 2);
    }
    char enc[8];
    assert_int_equal(canon_encode("%", 1, enc), 3);
    assert_string_equal(enc, "%25");
    assert_int_equal(canon_encode("\0", 1, enc), 3);
    assert_string_equal(enc, "%00");
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon_table_cases_accept_or_reject_as_specified),
        cmocka_unit_test(test_canon_every_accepted_table_case_satisfies_the_invariants),
        cmocka_unit_test(test_canon_rejections_always_say_why),
        cmocka_unit_test(test_canon_asterisk_form_is_only_for_options),
        cmocka_unit_test(test_canon_decoded_path_fits_the_documented_buffer),
        cmocka_unit_test(test_canon_pct_decode_strict_refuses_malformed_and_lenient_keeps_them),
        cmocka_unit_test(test_canon_encode_escapes_every_byte_outside_the_raw_set),
        cmocka_unit_test(test_canon_random_targets_agree_with_reference_and_keep_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
