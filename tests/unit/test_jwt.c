/*
 * Unit tests for JWT verification (policies/jwt.c) and the strict JSON
 * reader under it (policies/json.c). Tokens are minted here with OpenSSL's
 * HMAC and a base64url encoder of our own, so nothing in the code under
 * test is used to build its own inputs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../policies/identity.h"
#include "../../policies/json.h"
#include "../../policies/jwt.h"
#include "../../proxy/config.h"
#include "../../lib/base.h"

#define NOW 1700000000.0
#define SECRET "test-secret-0123456789"

/* ---- minting ---- */

static char *b64url(const void *data, size_t len)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *d = data;
    char *o = malloc(len * 4 / 3 + 4);
    size_t n = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        o[n++] = al[v >> 18];
        o[n++] = al[(v >> 12) & 63];
        o[n++] = al[(v >> 6) & 63];
        o[n++] = al[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        o[n++] = al[v >> 18];
        o[n++] = al[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        o[n++] = al[v >> 18];
        o[n++] = al[(v >> 12) & 63];
        o[n++] = al[(v >> 6) & 63];
    }
    o[n] = '\0';
    return o;
}

static const EVP_MD *md_for(const char *alg)
{
    if (strcmp(alg, "HS384") == 0)
        return EVP_sha384();
    if (strcmp(alg, "HS512") == 0)
        return EVP_sha512();
    return EVP_sha256();
}

/* "<h>.<p>.<HMAC(md, key, "<h>.<p>")>" from already-encoded segments. */
static char *sign_segments(const char *md_alg, const char *key, const char *h, const char *p)
{
    size_t il = strlen(h) + 1 + strlen(p);
    char *input = malloc(il + 1);
    snprintf(input, il + 1, "%s.%s", h, p);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(md_for(md_alg), key, (int)strlen(key), (unsigned char *)input, il, mac, &maclen));
    char *s = b64url(mac, maclen);
    char *tok = malloc(il + 1 + strlen(s) + 1);
    sprintf(tok, "%s.%s", input, s);
    free(input);
    free(s);
    return tok;
}

/* A token with the given header and payload JSON, signed with md_alg. */
static char *mint_with(const char *md_alg, const char *key, const char *hdr_json, const char *pay_json)
{
    char *h = b64url(hdr_json, strlen(hdr_json));
    char *p = b64url(pay_json, strlen(pay_json));
    char *t = sign_segments(md_alg, key, h, p);
    free(h);
    free(p);
    return t;
}

static char *mint(const char *pay_json)
{
    return mint_with("HS256", SECRET, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pay_json);
}

/* A valid payload for NOW. */
#define GOOD_PAYLOAD "{\"sub\":\"user-1\",\"exp\":1700003600,\"iat\":1700000000}"

/* ---- a hand-built identity config ---- */

static struct id_config base_cfg(void)
{
    struct id_config c;
    memset(&c, 0, sizeof(c));
    c.secret = (unsigned char *)SECRET;
    c.secret_len = strlen(SECRET);
    c.algorithms = TOK_HS256;
    c.subject_claim = "sub";
    c.require_exp = 1;
    c.leeway_ms = 30000;
    return c;
}

static const char *g_why;
static struct tok_claims g_claims;

static int verify_cfg(const struct id_config *c, const char *tok, double now)
{
    tok_claims_clear(&g_claims);
    g_why = NULL;
    int rc = tok_verify(c, tok, strlen(tok), now, &g_claims, &g_why);
    if (rc != 0) {
        assert_non_null(g_why);
        assert_null(g_claims.subject);
        assert_null(g_claims.payload);
    }
    return rc;
}

static int verify(const char *tok)
{
    struct id_config c = base_cfg();
    return verify_cfg(&c, tok, NOW);
}

static void expect_reject_at(const char *file, int line, const struct id_config *c, const char *tok,
                             double now, const char *why)
{
    if (verify_cfg(c, tok, now) == 0) {
        print_error("token accepted, expected rejection '%s': %s\n", why ? why : "(any)", tok);
        _fail(file, line);
    }
    if (why != NULL && strstr(g_why, why) == NULL) {
        print_error("rejected with '%s', expected '%s'\n", g_why, why);
        _fail(file, line);
    }
}
#define EXPECT_REJECT_CFG(c, tok, now, why) expect_reject_at(__FILE__, __LINE__, (c), (tok), (now), (why))
#define EXPECT_REJECT(tok, why)                                                   \
    do {                                                                          \
        struct id_config c_ = base_cfg();                                         \
        expect_reject_at(__FILE__, __LINE__, &c_, (tok), NOW, (why));             \
    } while (0)
/* Mint from payload JSON, expect a rejection, free. */
#define EXPECT_PAYLOAD_REJECT(pay, why)                                           \
    do {                                                                          \
        char *t_ = mint(pay);                                                     \
        EXPECT_REJECT(t_, (why));                                                 \
        free(t_);                                                                 \
    } while (0)
#define EXPECT_HEADER_REJECT(hdr, why)                                            \
    do {                                                                          \
        char *t_ = mint_with("HS256", SECRET, (hdr), GOOD_PAYLOAD);               \
        EXPECT_REJECT(t_, (why));                                                 \
        free(t_);                                                                 \
    } while (0)

static int teardown(void **state)
{
    (void)state;
    tok_claims_clear(&g_claims);
    return 0;
}

/* ---- accepted ---- */

static void test_valid_hs256_token_returns_subject_and_payload(void **state)
{
    (void)state;
    char *t = mint(GOOD_PAYLOAD);
    assert_int_equal(verify(t), 0);
    assert_string_equal(g_claims.subject, "user-1");
    assert_int_equal(g_claims.subject_len, 6);
    assert_true(g_claims.exp == 1700003600.0);
    assert_int_equal(g_claims.payload_len, strlen(GOOD_PAYLOAD));
    assert_memory_equal(g_claims.payload, GOOD_PAYLOAD, strlen(GOOD_PAYLOAD));
    free(t);
}

static void test_valid_token_from_a_loaded_config_is_accepted(void **state)
{
    (void)state;
    static const char text[] = "listen: :8080\nupstream: http://127.0.0.1:9000\n"
                               "identity:\n  secret: " SECRET "\n  subject_claim: uid\n";
    char *errs = NULL;
    struct pc_config *cfg = cfg_load_text("t.yaml", text, strlen(text), NULL, &errs);
    assert_non_null(cfg);
    char *t = mint("{\"uid\":\"42\",\"exp\":1700000100}");
    assert_int_equal(verify_cfg(cfg->identity, t, NOW), 0);
    assert_string_equal(g_claims.subject, "42");
    free(t);
    t = mint(GOOD_PAYLOAD); /* has sub, not uid */
    EXPECT_REJECT_CFG(cfg->identity, t, NOW, "subject claim missing");
    free(t);
    cfg_unref(cfg);
}

static void test_hs384_and_hs512_are_accepted_when_listed(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    c.algorithms = TOK_HS384 | TOK_HS512;
    char *t384 = mint_with("HS384", SECRET, "{\"alg\":\"HS384\"}", GOOD_PAYLOAD);
    char *t512 = mint_with("HS512", SECRET, "{\"alg\":\"HS512\"}", GOOD_PAYLOAD);
    char *t256 = mint(GOOD_PAYLOAD);
    assert_int_equal(verify_cfg(&c, t384, NOW), 0);
    assert_string_equal(g_claims.subject, "user-1");
    assert_int_equal(verify_cfg(&c, t512, NOW), 0);
    EXPECT_REJECT_CFG(&c, t256, NOW, "algorithm not allowed");
    c.algorithms = TOK_HS256 | TOK_HS384 | TOK_HS512;
    assert_int_equal(verify_cfg(&c, t256, NOW), 0);
    assert_int_equal(verify_cfg(&c, t384, NOW), 0);
    assert_int_equal(verify_cfg(&c, t512, NOW), 0);
    free(t256);
    free(t384);
    free(t512);
}

static void test_kid_selects_the_right_key_among_keys(void **state)
{
    (void)state;
    struct id_key keys[] = {
        {"old", (unsigned char *)"old-secret", 10},
        {"new", (unsigned char *)"new-secret", 10},
    };
    struct id_config c = base_cfg();
    c.secret = NULL;
    c.secret_len = 0;
    c.keys = keys;
    c.nkeys = 2;
    char *t_old = mint_with("HS256", "old-secret", "{\"alg\":\"HS256\",\"kid\":\"old\"}", GOOD_PAYLOAD);
    char *t_new = mint_with("HS256", "new-secret", "{\"alg\":\"HS256\",\"kid\":\"new\"}", GOOD_PAYLOAD);
    char *t_swapped = mint_with("HS256", "old-secret", "{\"alg\":\"HS256\",\"kid\":\"new\"}", GOOD_PAYLOAD);
    char *t_nokid = mint_with("HS256", "old-secret", "{\"alg\":\"HS256\"}", GOOD_PAYLOAD);
    char *t_numkid = mint_with("HS256", "old-secret", "{\"alg\":\"HS256\",\"kid\":1}", GOOD_PAYLOAD);
    char *t_prefix = mint_with("HS256", "old-secret", "{\"alg\":\"HS256\",\"kid\":\"ol\"}", GOOD_PAYLOAD);
    assert_int_equal(verify_cfg(&c, t_old, NOW), 0);
    assert_int_equal(verify_cfg(&c, t_new, NOW), 0);
    EXPECT_REJECT_CFG(&c, t_swapped, NOW, "bad signature");
    EXPECT_REJECT_CFG(&c, t_nokid, NOW, "no key for this token");
    EXPECT_REJECT_CFG(&c, t_numkid, NOW, "kid is not a string");
    EXPECT_REJECT_CFG(&c, t_prefix, NOW, "unknown kid");
    free(t_old);
    free(t_new);
    free(t_swapped);
    free(t_nokid);
    free(t_numkid);
    free(t_prefix);
}

static void test_unknown_kid_is_rejected_when_keys_are_configured(void **state)
{
    (void)state;
    struct id_key keys[] = {{"k1", (unsigned char *)"k1-secret", 9}};
    struct id_config c = base_cfg(); /* keeps the default secret too */
    c.keys = keys;
    c.nkeys = 1;
    /* signed with the default secret, but naming a kid we do not have */
    char *t = mint_with("HS256", SECRET, "{\"alg\":\"HS256\",\"kid\":\"k2\"}", GOOD_PAYLOAD);
    EXPECT_REJECT_CFG(&c, t, NOW, "unknown kid");
    free(t);
    /* without a kid the default secret is used */
    t = mint(GOOD_PAYLOAD);
    assert_int_equal(verify_cfg(&c, t, NOW), 0);
    free(t);
}

/* ---- algorithm and key ---- */

static void test_alg_none_is_rejected_with_empty_and_non_empty_signature(void **state)
{
    (void)state;
    char *h = b64url("{\"alg\":\"none\"}", 14);
    char *p = b64url(GOOD_PAYLOAD, strlen(GOOD_PAYLOAD));
    char tok[512];
    snprintf(tok, sizeof(tok), "%s.%s.", h, p);
    EXPECT_REJECT(tok, "unsigned tokens are refused");
    snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, p);
    EXPECT_REJECT(tok, "algorithm not allowed");
    /* and a valid HS256 MAC under an alg:none header changes nothing */
    char *t = sign_segments("HS256", SECRET, h, p);
    EXPECT_REJECT(t, "algorithm not allowed");
    free(t);
    free(h);
    free(p);
    /* spelling variants are not algorithms either */
    EXPECT_HEADER_REJECT("{\"alg\":\"None\"}", "algorithm not allowed");
    EXPECT_HEADER_REJECT("{\"alg\":\"hs256\"}", "algorithm not allowed");
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256 \"}", "algorithm not allowed");
    EXPECT_HEADER_REJECT("{\"typ\":\"JWT\"}", "missing alg");
    EXPECT_HEADER_REJECT("{\"alg\":256}", "missing alg");
}

static void test_hs512_is_rejected_when_only_hs256_is_allowed(void **state)
{
    (void)state;
    char *t = mint_with("HS512", SECRET, "{\"alg\":\"HS512\"}", GOOD_PAYLOAD);
    EXPECT_REJECT(t, "algorithm not allowed");
    free(t);
    /* the header says HS256 but the MAC is HS512: wrong length */
    t = mint_with("HS512", SECRET, "{\"alg\":\"HS256\"}", GOOD_PAYLOAD);
    EXPECT_REJECT(t, "bad signature");
    free(t);
}

static void test_token_signed_with_a_wrong_key_is_rejected(void **state)
{
    (void)state;
    char *t = mint_with("HS256", "another-secret", "{\"alg\":\"HS256\"}", GOOD_PAYLOAD);
    EXPECT_REJECT(t, "bad signature");
    free(t);
    /* a key that is a prefix of the real one */
    t = mint_with("HS256", "test-secret", "{\"alg\":\"HS256\"}", GOOD_PAYLOAD);
    EXPECT_REJECT(t, "bad signature");
    free(t);
    /* no key at all in the config */
    struct id_config c = base_cfg();
    c.secret = NULL;
    c.secret_len = 0;
    t = mint(GOOD_PAYLOAD);
    EXPECT_REJECT_CFG(&c, t, NOW, "no key for this token");
    free(t);
}

static void test_signature_truncated_by_one_byte_is_rejected(void **state)
{
    (void)state;
    char *t = mint(GOOD_PAYLOAD);
    char *dot = strrchr(t, '.');
    /* re-encode the MAC without its last byte: canonical base64url of 31 bytes */
    unsigned char mac[64];
    long n = tok_b64url_decode(dot + 1, strlen(dot + 1), mac);
    assert_int_equal(n, 32);
    char *short_sig = b64url(mac, 31);
    char tok[512];
    snprintf(tok, sizeof(tok), "%.*s.%s", (int)(dot - t), t, short_sig);
    EXPECT_REJECT(tok, "bad signature");
    /* and one character shorter */
    snprintf(tok, sizeof(tok), "%.*s", (int)strlen(t) - 1, t);
    EXPECT_REJECT(tok, NULL);
    /* one byte longer */
    mac[32] = 0;
    char *long_sig = b64url(mac, 33);
    snprintf(tok, sizeof(tok), "%.*s.%s", (int)(dot - t), t, long_sig);
    EXPECT_REJECT(tok, "bad signature");
    /* a flipped bit in the first MAC byte */
    mac[0] ^= 1;
    char *flipped = b64url(mac, 32);
    snprintf(tok, sizeof(tok), "%.*s.%s", (int)(dot - t), t, flipped);
    EXPECT_REJECT(tok, "bad signature");
    free(short_sig);
    free(long_sig);
    free(flipped);
    free(t);
}

static void test_changed_payload_with_old_signature_is_rejected(void **state)
{
    (void)state;
    char *t = mint(GOOD_PAYLOAD);
    char *evil = mint("{\"sub\":\"admin\",\"exp\":1700003600}");
    char *t_dot1 = strchr(t, '.'), *t_dot2 = strrchr(t, '.');
    char *e_dot1 = strchr(evil, '.'), *e_dot2 = strrchr(evil, '.');
    char tok[512];
    snprintf(tok, sizeof(tok), "%.*s%s", (int)(e_dot2 - evil), evil, t_dot2);
    EXPECT_REJECT(tok, "bad signature");
    (void)t_dot1;
    (void)e_dot1;
    free(t);
    free(evil);
}

/* ---- time ---- */

static void test_expired_token_is_rejected_beyond_leeway(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    char *t = mint("{\"sub\":\"u\",\"exp\":1700000000}");
    EXPECT_REJECT_CFG(&c, t, 1700000000.0 + 31, "token expired");
    EXPECT_REJECT_CFG(&c, t, 1800000000.0, "token expired");
    c.leeway_ms = 0;
    EXPECT_REJECT_CFG(&c, t, 1700000000.5, "token expired");
    free(t);
}

static void test_exp_just_inside_leeway_is_accepted(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    char *t = mint("{\"sub\":\"u\",\"exp\":1700000000}");
    assert_int_equal(verify_cfg(&c, t, 1700000000.0 + 29), 0);
    assert_int_equal(verify_cfg(&c, t, 1700000000.0 + 30), 0); /* the boundary itself */
    c.leeway_ms = 0;
    assert_int_equal(verify_cfg(&c, t, 1700000000.0), 0);
    free(t);
}

static void test_nbf_in_the_future_beyond_leeway_is_rejected(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    char *t = mint("{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":1700000100}");
    EXPECT_REJECT_CFG(&c, t, 1700000100.0 - 31, "token not yet valid");
    assert_int_equal(verify_cfg(&c, t, 1700000100.0 - 29), 0);
    assert_int_equal(verify_cfg(&c, t, 1700000100.0), 0);
    free(t);
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":\"1\"}", "nbf is not a number");
}

static void test_missing_exp_is_rejected_when_required(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    char *t = mint("{\"sub\":\"u\"}");
    EXPECT_REJECT_CFG(&c, t, NOW, "token has no exp");
    c.require_exp = 0;
    assert_int_equal(verify_cfg(&c, t, NOW), 0);
    assert_true(g_claims.exp == 0);
    free(t);
}

static void test_exp_that_is_not_a_number_is_rejected(void **state)
{
    (void)state;
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":\"9999999999\"}", "exp is not a number");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":null}", "exp is not a number");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":[9999999999]}", "exp is not a number");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":true}", "exp is not a number");
    /* and not even when exp is optional */
    struct id_config c = base_cfg();
    c.require_exp = 0;
    char *t = mint("{\"sub\":\"u\",\"exp\":\"9999999999\"}");
    EXPECT_REJECT_CFG(&c, t, NOW, "exp is not a number");
    free(t);
}

/* ---- shape and encoding ---- */

static void test_garbage_empty_and_wrong_part_counts_are_rejected(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    const char *why = NULL;
    struct tok_claims cl;
    assert_int_equal(tok_verify(&c, "", 0, NOW, &cl, &why), -1);
    assert_string_equal(why, "empty token");
    EXPECT_REJECT("garbage", "three parts");
    EXPECT_REJECT("not.a.token", "header is not base64url");
    EXPECT_REJECT("..", "empty JWS part");
    EXPECT_REJECT("...", "three parts");
    EXPECT_REJECT("a..c", "empty JWS part");
    EXPECT_REJECT(".b.c", "empty JWS part");

    char *t = mint(GOOD_PAYLOAD);
    char *d2 = strrchr(t, '.');
    char tok[512];
    /* two parts */
    snprintf(tok, sizeof(tok), "%.*s", (int)(d2 - t), t);
    EXPECT_REJECT(tok, "three parts");
    /* four parts: a trailing dot, or a fourth segment */
    snprintf(tok, sizeof(tok), "%s.", t);
    EXPECT_REJECT(tok, "three parts");
    snprintf(tok, sizeof(tok), "%s.AAAA", t);
    EXPECT_REJECT(tok, "three parts");
    /* five (JWE-like) */
    snprintf(tok, sizeof(tok), "%s.AAAA.AAAA", t);
    EXPECT_REJECT(tok, "three parts");
    /* whitespace around is not trimmed here */
    snprintf(tok, sizeof(tok), " %s", t);
    EXPECT_REJECT(tok, "header is not base64url");
    snprintf(tok, sizeof(tok), "%s ", t);
    EXPECT_REJECT(tok, "signature is not base64url");
    free(t);

    /* over the length limit */
    size_t big = 9000;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[100] = '.';
    huge[200] = '.';
    huge[big] = '\0';
    EXPECT_REJECT(huge, "token too long");
    free(huge);
}

/* Replace the header segment of a token by a (signed) one we spell. */
static char *with_header_segment(const char *hseg)
{
    char *p = b64url(GOOD_PAYLOAD, strlen(GOOD_PAYLOAD));
    char *t = sign_segments("HS256", SECRET, hseg, p);
    free(p);
    return t;
}

static void test_base64_padding_is_rejected(void **state)
{
    (void)state;
    /* {"alg":"HS256"} is 15 bytes: 20 chars, no padding needed; pad a
     * 16-byte header instead, which needs "==" */
    const char *hdr = "{\"alg\":\"HS256\" }";
    char *h = b64url(hdr, strlen(hdr));
    char padded[64];
    snprintf(padded, sizeof(padded), "%s==", h);
    char *t = with_header_segment(h);
    assert_int_equal(verify(t), 0); /* the unpadded form is fine */
    free(t);
    t = with_header_segment(padded);
    EXPECT_REJECT(t, "header is not base64url");
    free(t);
    /* padding on the signature */
    t = mint(GOOD_PAYLOAD);
    char tok[512];
    snprintf(tok, sizeof(tok), "%s=", t);
    EXPECT_REJECT(tok, "signature is not base64url");
    free(t);
    free(h);
}

static void test_standard_base64_plus_and_slash_are_rejected(void **state)
{
    (void)state;
    /* bytes 0xfb 0xff encode to "-_8" in base64url, "+/8" in base64 */
    char pay[128];
    snprintf(pay, sizeof(pay), "{\"sub\":\"u\",\"exp\":1800000000,\"x\":\"\xef\xbf\xbf\"}");
    char *p = b64url(pay, strlen(pay));
    assert_non_null(strpbrk(p, "-_"));
    char *h = b64url("{\"alg\":\"HS256\"}", 15);
    char *t = sign_segments("HS256", SECRET, h, p);
    assert_int_equal(verify(t), 0);
    free(t);
    char *std = strdup(p);
    for (char *q = std; *q; q++)
        *q = *q == '-' ? '+' : *q == '_' ? '/' : *q;
    t = sign_segments("HS256", SECRET, h, std);
    EXPECT_REJECT(t, "payload is not base64url");
    free(t);
    /* in the signature: find a MAC with '-' or '_' and swap it */
    for (int i = 0; i < 200; i++) {
        char pl[128];
        snprintf(pl, sizeof(pl), "{\"sub\":\"u%d\",\"exp\":1800000000}", i);
        char *tt = mint(pl);
        char *sig = strrchr(tt, '.') + 1;
        char *hit = strpbrk(sig, "-_");
        if (hit != NULL) {
            *hit = *hit == '-' ? '+' : '/';
            EXPECT_REJECT(tt, "signature is not base64url");
            free(tt);
            break;
        }
        free(tt);
        assert_true(i < 199);
    }
    free(std);
    free(h);
    free(p);
}

/* Set one unused low bit in the last character of a base64url text. */
static int set_unused_bit(char *s)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t l = strlen(s);
    if (l % 4 != 2 && l % 4 != 3)
        return -1; /* no unused bits */
    int v = (int)(strchr(al, s[l - 1]) - al);
    int mask = l % 4 == 2 ? 0x0f : 0x03;
    assert_int_equal(v & mask, 0); /* canonical to begin with */
    s[l - 1] = al[v | 1];
    return 0;
}

static void test_non_canonical_trailing_bits_are_rejected(void **state)
{
    (void)state;
    /* A 16-byte header encodes to 22 chars whose last carries 4 unused
     * bits, a 17-byte one to 23 chars with 2. Setting one of them leaves the
     * decoded bytes alone but changes the signed text: refused. */
    static const char *const hdrs[] = {"{\"alg\":\"HS256\" }", "{\"alg\":\"HS256\"  }"};
    for (size_t i = 0; i < PC_ARRAY_LEN(hdrs); i++) {
        char *h = b64url(hdrs[i], strlen(hdrs[i]));
        char *t = with_header_segment(h);
        assert_int_equal(verify(t), 0);
        free(t);
        char *nc = strdup(h);
        assert_int_equal(set_unused_bit(nc), 0);
        unsigned char buf[64];
        assert_int_equal(tok_b64url_decode(h, strlen(h), buf), (long)strlen(hdrs[i]));
        assert_int_equal(tok_b64url_decode(nc, strlen(nc), buf), -1);
        t = with_header_segment(nc);
        EXPECT_REJECT(t, "header is not base64url");
        free(t);
        free(nc);
        free(h);
    }
    /* in the signature: 32 bytes -> 43 chars, the last has 2 unused bits */
    char *t = mint(GOOD_PAYLOAD);
    assert_int_equal(set_unused_bit(strrchr(t, '.') + 1), 0);
    EXPECT_REJECT(t, "signature is not base64url");
    free(t);
    /* in the payload */
    char *p = b64url(GOOD_PAYLOAD "  ", strlen(GOOD_PAYLOAD) + 2);
    char *h = b64url("{\"alg\":\"HS256\"}", 15);
    if (set_unused_bit(p) != 0) {
        free(p);
        p = b64url(GOOD_PAYLOAD " ", strlen(GOOD_PAYLOAD) + 1);
        assert_int_equal(set_unused_bit(p), 0);
    }
    t = sign_segments("HS256", SECRET, h, p);
    EXPECT_REJECT(t, "payload is not base64url");
    free(t);
    free(p);
    free(h);
}

/* ---- JSON strictness in header and payload ---- */

static void test_duplicate_json_keys_are_rejected_in_header_and_payload(void **state)
{
    (void)state;
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "duplicate key");
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"b\"}", "duplicate key");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"user-1\",\"exp\":1800000000,\"sub\":\"admin\"}", "duplicate key");
    /* the same key spelled with an escape is the same key */
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"user-1\",\"exp\":1800000000,\"s\\u0075b\":\"admin\"}", "duplicate key");
    /* nested objects too */
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":1800000000,\"o\":{\"a\":1,\"a\":2}}", "duplicate key");
}

static void test_crit_header_is_rejected(void **state)
{
    (void)state;
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "crit header is refused");
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\",\"crit\":[]}", "crit header is refused");
    EXPECT_HEADER_REJECT("{\"crit\":null,\"alg\":\"HS256\"}", "crit header is refused");
}

static void test_header_and_payload_must_be_json_objects(void **state)
{
    (void)state;
    EXPECT_HEADER_REJECT("[\"HS256\"]", "header is not a JSON object");
    EXPECT_HEADER_REJECT("\"HS256\"", "header is not a JSON object");
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\"", NULL);
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\"} {}", "trailing data");
    EXPECT_PAYLOAD_REJECT("[\"sub\",\"u\"]", "payload is not a JSON object");
    EXPECT_PAYLOAD_REJECT("\"user-1\"", "payload is not a JSON object");
    EXPECT_PAYLOAD_REJECT("42", "payload is not a JSON object");
    EXPECT_PAYLOAD_REJECT("null", "payload is not a JSON object");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"u\",\"exp\":1800000000,}", NULL);
    EXPECT_PAYLOAD_REJECT("{'sub':'u'}", NULL);
    EXPECT_PAYLOAD_REJECT("", "empty JWS part");
    EXPECT_PAYLOAD_REJECT(" ", "unexpected end of JSON");
}

static void test_subject_claim_missing_not_a_string_or_empty_is_rejected(void **state)
{
    (void)state;
    EXPECT_PAYLOAD_REJECT("{\"exp\":1800000000}", "subject claim missing or not a string");
    EXPECT_PAYLOAD_REJECT("{\"sub\":42,\"exp\":1800000000}", "subject claim missing or not a string");
    EXPECT_PAYLOAD_REJECT("{\"sub\":null,\"exp\":1800000000}", "subject claim missing or not a string");
    EXPECT_PAYLOAD_REJECT("{\"sub\":[\"u\"],\"exp\":1800000000}", "subject claim missing or not a string");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\",\"exp\":1800000000}", "subject claim missing or not a string");
    EXPECT_PAYLOAD_REJECT("{\"SUB\":\"u\",\"exp\":1800000000}", "subject claim missing or not a string");
}

static void test_wrong_issuer_is_rejected_when_issuer_is_configured(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    char *one[] = {"https://auth.example"};
    c.issuers = one;
    c.nissuers = 1;
    char *ok = mint("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://auth.example\"}");
    char *wrong = mint("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://evil.example\"}");
    char *prefix = mint("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://auth.example.evil\"}");
    char *missing = mint("{\"sub\":\"u\",\"exp\":1800000000}");
    char *notstr = mint("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":[\"https://auth.example\"]}");
    assert_int_equal(verify_cfg(&c, ok, NOW), 0);
    EXPECT_REJECT_CFG(&c, wrong, NOW, "wrong issuer");
    EXPECT_REJECT_CFG(&c, prefix, NOW, "wrong issuer");
    EXPECT_REJECT_CFG(&c, missing, NOW, "wrong issuer");
    EXPECT_REJECT_CFG(&c, notstr, NOW, "wrong issuer");
    /* one of several: any listed value is accepted, nothing else */
    char *several[] = {"SELF_HOSTED", "https://auth.example"};
    c.issuers = several;
    c.nissuers = 2;
    assert_int_equal(verify_cfg(&c, ok, NOW), 0);
    char *cloud = mint("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"SELF_HOSTED\"}");
    assert_int_equal(verify_cfg(&c, cloud, NOW), 0);
    EXPECT_REJECT_CFG(&c, wrong, NOW, "wrong issuer");
    EXPECT_REJECT_CFG(&c, missing, NOW, "wrong issuer");
    free(cloud);
    /* without an issuer configured, iss is not looked at */
    c.issuers = NULL;
    c.nissuers = 0;
    assert_int_equal(verify_cfg(&c, wrong, NOW), 0);
    free(ok);
    free(wrong);
    free(prefix);
    free(missing);
    free(notstr);
}

static void test_audience_string_and_array_are_checked(void **state)
{
    (void)state;
    struct id_config c = base_cfg();
    c.audience = "api";
    static const char *const good[] = {
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"api\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[\"api\"]}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[\"web\",\"api\"]}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[1,null,\"api\"]}",
    };
    static const char *const bad[] = {
        "{\"sub\":\"u\",\"exp\":1800000000}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"web\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"apis\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"API\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[]}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[\"web\",\"ap\"]}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":[[\"api\"]]}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":{\"api\":true}}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"aud\":null}",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(good); i++) {
        char *t = mint(good[i]);
        assert_int_equal(verify_cfg(&c, t, NOW), 0);
        free(t);
    }
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        char *t = mint(bad[i]);
        EXPECT_REJECT_CFG(&c, t, NOW, "wrong audience");
        free(t);
    }
    /* without an audience configured, aud is not looked at */
    c.audience = NULL;
    char *t = mint(bad[1]);
    assert_int_equal(verify_cfg(&c, t, NOW), 0);
    free(t);
}

static void test_invalid_utf8_in_a_json_string_is_rejected(void **state)
{
    (void)state;
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\xff\",\"exp\":1800000000}", "invalid UTF-8");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\xc0\xaf\",\"exp\":1800000000}", "invalid UTF-8"); /* overlong '/' */
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\xe0\x80\xaf\",\"exp\":1800000000}", "invalid UTF-8");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\xed\xa0\x80\",\"exp\":1800000000}", "invalid UTF-8"); /* surrogate */
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\xf4\x90\x80\x80\",\"exp\":1800000000}", "invalid UTF-8");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"a\xc3\",\"exp\":1800000000}", "invalid UTF-8"); /* truncated */
    EXPECT_HEADER_REJECT("{\"alg\":\"HS256\",\"kid\":\"\x80\"}", "invalid UTF-8");
    /* valid multi-byte UTF-8 subjects are fine */
    char *t = mint("{\"sub\":\"J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80\",\"exp\":1800000000}");
    assert_int_equal(verify(t), 0);
    assert_string_equal(g_claims.subject, "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80");
    free(t);
}

static void test_lone_surrogate_escape_is_rejected(void **state)
{
    (void)state;
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\\ud800\",\"exp\":1800000000}", "unpaired surrogate");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\\udc00\",\"exp\":1800000000}", "unpaired surrogate");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\\ud800x\",\"exp\":1800000000}", "unpaired surrogate");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\\ud800\\u0041\",\"exp\":1800000000}", "unpaired surrogate");
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"\\ud800\\ud800\",\"exp\":1800000000}", "unpaired surrogate");
    /* a subject with an escaped NUL would be cut short by C strings */
    EXPECT_PAYLOAD_REJECT("{\"sub\":\"admin\\u0000x\",\"exp\":1800000000}", "NUL");
    /* a proper pair decodes */
    char *t = mint("{\"sub\":\"\\ud83d\\ude00\",\"exp\":1800000000}");
    assert_int_equal(verify(t), 0);
    assert_string_equal(g_claims.subject, "\xf0\x9f\x98\x80");
    free(t);
}

static char *nested_payload(int depth)
{
    /* {"sub":"u","exp":1800000000,"x": [ ... ] } with depth-1 arrays */
    size_t cap = 64 + (size_t)depth * 2;
    char *s = malloc(cap);
    int n = snprintf(s, cap, "{\"sub\":\"u\",\"exp\":1800000000,\"x\":");
    for (int i = 0; i < depth - 1; i++)
        s[n++] = '[';
    for (int i = 0; i < depth - 1; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void test_json_nesting_deeper_than_the_limit_is_rejected(void **state)
{
    (void)state;
    char *p16 = nested_payload(16), *p17 = nested_payload(17), *p200 = nested_payload(200);
    char *t = mint(p16);
    assert_int_equal(verify(t), 0); /* exactly at the limit */
    free(t);
    EXPECT_PAYLOAD_REJECT(p17, "nested too deeply");
    EXPECT_PAYLOAD_REJECT(p200, "nested too deeply");
    free(p16);
    free(p17);
    free(p200);
}

/* ---- tok_b64url_decode ---- */

static void test_b64url_decode_rfc4648_vectors_without_padding(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", ""}, {"Zg", "f"}, {"Zm8", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg", "foob"},
        {"Zm9vYmE", "fooba"}, {"Zm9vYmFy", "foobar"},
    };
    unsigned char buf[64];
    for (size_t i = 0; i < PC_ARRAY_LEN(v); i++) {
        long n = tok_b64url_decode(v[i].in, strlen(v[i].in), buf);
        assert_int_equal(n, (long)strlen(v[i].out));
        assert_memory_equal(buf, v[i].out, (size_t)n);
    }
    /* the url-safe alphabet's last two symbols */
    assert_int_equal(tok_b64url_decode("-_8", 3, buf), 2);
    assert_int_equal(buf[0], 0xfb);
    assert_int_equal(buf[1], 0xff);
    assert_int_equal(tok_b64url_decode("____", 4, buf), 3);
    assert_int_equal(buf[0], 0xff);
    assert_int_equal(buf[2], 0xff);
    /* a length is honoured: bytes past it are not read */
    assert_int_equal(tok_b64url_decode("Zm9v!!!!", 4, buf), 3);
}

static void test_b64url_decode_rejects_non_canonical_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Z",        /* 1 mod 4 */
        "Zm9vY",    /* 1 mod 4 */
        "Zg==",     /* padding */
        "Zm8=",     /* padding */
        "Zh",       /* trailing bits set: 'h' has low 4 bits 0b0001 */
        "Zm9",      /* trailing bits set */
        "+/8",      /* standard alphabet */
        "Zm9v\n",   /* whitespace */
        "Zm 9v",
        "Zm9v\0Zg", /* NUL inside */
    };
    static const size_t lens[] = {1, 5, 4, 4, 2, 3, 3, 5, 5, 7};
    unsigned char buf[64];
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        if (tok_b64url_decode(bad[i], lens[i], buf) != -1) {
            print_error("accepted '%s'\n", bad[i]);
            fail();
        }
    }
}

/* ---- tok_claim_text ---- */

static void test_claim_text_renders_each_json_type(void **state)
{
    (void)state;
    static const char pay[] =
        "{\"s\":\"t\\u00e9xt\",\"n\":12.50,\"i\":-7,\"e\":1e3,\"t\":true,\"f\":false,\"z\":null,"
        "\"o\":{\"a\":[1, 2]},\"a\":[\"x\"],\"empty\":\"\"}";
    static const struct {
        const char *name, *want;
    } v[] = {
        {"s", "t\xc3\xa9xt"}, {"n", "12.50"}, {"i", "-7"}, {"e", "1e3"}, {"t", "true"},
        {"f", "false"}, {"o", "{\"a\":[1, 2]}"}, {"a", "[\"x\"]"}, {"empty", ""},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(v); i++) {
        char *val = NULL;
        int is_null = -1;
        assert_int_equal(tok_claim_text(pay, strlen(pay), v[i].name, &val, &is_null), 0);
        assert_int_equal(is_null, 0);
        assert_non_null(val);
        assert_string_equal(val, v[i].want);
        free(val);
    }
}

static void test_claim_text_null_and_missing_claims_are_null(void **state)
{
    (void)state;
    static const char pay[] = "{\"z\":null,\"sub\":\"u\"}";
    char *val = (char *)1;
    int is_null = 0;
    assert_int_equal(tok_claim_text(pay, strlen(pay), "z", &val, &is_null), 0);
    assert_int_equal(is_null, 1);
    assert_null(val);
    is_null = 0;
    assert_int_equal(tok_claim_text(pay, strlen(pay), "missing", &val, &is_null), 0);
    assert_int_equal(is_null, 1);
    assert_null(val);
    /* not JSON: an error, and null */
    is_null = 0;
    assert_int_equal(tok_claim_text("{", 1, "z", &val, &is_null), -1);
    assert_int_equal(is_null, 1);
    assert_null(val);
    /* not an object: no claims */
    assert_int_equal(tok_claim_text("[1]", 3, "0", &val, &is_null), 0);
    assert_int_equal(is_null, 1);
}

/* ---- json_parse ---- */

static struct json_value *jp(const char *s, const char **why)
{
    *why = NULL;
    return json_parse(s, strlen(s), why);
}

static void test_json_parse_rejects_trailing_data(void **state)
{
    (void)state;
    const char *why;
    static const char *const bad[] = {"1 2", "{} x", "{}{}", "[] ]", "\"a\"\"b\"", "true false", "null,"};
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        assert_null(jp(bad[i], &why));
        assert_string_equal(why, "trailing data after JSON value");
    }
    struct json_value *v = jp(" \t\r\n{} \n", &why);
    assert_non_null(v);
    assert_int_equal(v->type, JSON_OBJECT);
    json_free(v);
}

static void test_json_parse_number_grammar_is_strict(void **state)
{
    (void)state;
    const char *why;
    static const char *const bad[] = {
        "01", "-01", "00", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-", "--1", "0x10",
        "NaN", "nan", "Infinity", "-Infinity", "1e999", "-1e999", "1,5",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        struct json_value *v = jp(bad[i], &why);
        if (v != NULL) {
            print_error("accepted number '%s'\n", bad[i]);
            json_free(v);
            fail();
        }
        assert_non_null(why);
    }
    static const struct {
        const char *in;
        double num;
    } good[] = {
        {"0", 0}, {"-0", 0}, {"1", 1}, {"-12", -12}, {"1.25", 1.25}, {"1e3", 1000},
        {"1E-2", 0.01}, {"2.5e+2", 250}, {"0.0", 0}, {"1700000000", 1700000000.0},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(good); i++) {
        struct json_value *v = jp(good[i].in, &why);
        assert_non_null(v);
        assert_int_equal(v->type, JSON_NUMBER);
        assert_true(v->num == good[i].num);
        assert_string_equal(v->str, good[i].in);
        json_free(v);
    }
    /* leading zero inside an object is an error too */
    assert_null(jp("{\"exp\":01}", &why));
}

static void test_json_parse_string_escapes(void **state)
{
    (void)state;
    const char *why;
    struct json_value *v = jp("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"", &why);
    assert_non_null(v);
    assert_int_equal(v->type, JSON_STRING);
    static const char want[] = "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    assert_int_equal(v->len, sizeof(want) - 1);
    assert_memory_equal(v->str, want, sizeof(want) - 1);
    json_free(v);

    v = jp("\"\\u00E9\"", &why); /* upper-case hex */
    assert_non_null(v);
    assert_string_equal(v->str, "\xc3\xa9");
    json_free(v);

    static const char *const bad[] = {
        "\"\\x41\"", "\"\\'\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\", "\"abc", "\"a\nb\"",
        "\"a\tb\"", "\"\\u0000\"", "\"\\U0041\"", "\"\\ \"", "\"\x7f\x01\"",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        struct json_value *w = jp(bad[i], &why);
        if (w != NULL) {
            print_error("accepted string %s\n", bad[i]);
            json_free(w);
            fail();
        }
    }
}

static void test_json_parse_literals_containers_and_limits(void **state)
{
    (void)state;
    const char *why;
    struct json_value *v = jp("{\"t\":true,\"f\":false,\"n\":null,\"a\":[1,\"x\",[]],\"o\":{}}", &why);
    assert_non_null(v);
    assert_int_equal(v->n, 5);
    assert_int_equal(json_get(v, "t")->type, JSON_BOOL);
    assert_int_equal(json_get(v, "t")->boolean, 1);
    assert_int_equal(json_get(v, "f")->boolean, 0);
    assert_int_equal(json_get(v, "n")->type, JSON_NULL);
    const struct json_value *a = json_get(v, "a");
    assert_int_equal(a->type, JSON_ARRAY);
    assert_int_equal(a->n, 3);
    assert_int_equal(a->items[1].type, JSON_STRING);
    assert_int_equal(a->raw_len, strlen("[1,\"x\",[]]"));
    assert_memory_equal(a->raw, "[1,\"x\",[]]", a->raw_len);
    assert_null(json_get(v, "missing"));
    assert_null(json_get(a, "0"));
    json_free(v);

    static const char *const bad[] = {
        "tru", "True", "nul", "falsey", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}",
        "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "", "   ", "[", "{", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        struct json_value *w = jp(bad[i], &why);
        if (w != NULL) {
            print_error("accepted '%s'\n", bad[i]);
            json_free(w);
            fail();
        }
        assert_non_null(why);
    }

    /* 256 items fit, 257 do not */
    char buf[2048];
    size_t n = 0;
    buf[n++] = '[';
    for (int i = 0; i < 257; i++) {
        buf[n++] = '0';
        buf[n++] = ',';
    }
    buf[n - 1] = ']';
    v = json_parse(buf, n, &why);
    assert_null(v);
    assert_string_equal(why, "JSON container too large");
    buf[n - 3] = ']'; /* drop the last item: 256 */
    v = json_parse(buf, n - 2, &why);
    assert_non_null(v);
    assert_int_equal(v->n, 256);
    json_free(v);

    /* the length is honoured: a NUL-free prefix parses, the rest is ignored */
    v = json_parse("[1]garbage", 3, &why);
    assert_non_null(v);
    json_free(v);
    /* an embedded NUL is not whitespace */
    assert_null(json_parse("{}\0", 3, &why));
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_valid_hs256_token_returns_subject_and_payload, teardown),
        cmocka_unit_test_teardown(test_valid_token_from_a_loaded_config_is_accepted, teardown),
        cmocka_unit_test_teardown(test_hs384_and_hs512_are_accepted_when_listed, teardown),
        cmocka_unit_test_teardown(test_kid_selects_the_right_key_among_keys, teardown),
        cmocka_unit_test_teardown(test_unknown_kid_is_rejected_when_keys_are_configured, teardown),
        cmocka_unit_test_teardown(test_alg_none_is_rejected_with_empty_and_non_empty_signature, teardown),
        cmocka_unit_test_teardown(test_hs512_is_rejected_when_only_hs256_is_allowed, teardown),
        cmocka_unit_test_teardown(test_token_signed_with_a_wrong_key_is_rejected, teardown),
        cmocka_unit_test_teardown(test_signature_truncated_by_one_byte_is_rejected, teardown),
        cmocka_unit_test_teardown(test_changed_payload_with_old_signature_is_rejected, teardown),
        cmocka_unit_test_teardown(test_expired_token_is_rejected_beyond_leeway, teardown),
        cmocka_unit_test_teardown(test_exp_just_inside_leeway_is_accepted, teardown),
        cmocka_unit_test_teardown(test_nbf_in_the_future_beyond_leeway_is_rejected, teardown),
        cmocka_unit_test_teardown(test_missing_exp_is_rejected_when_required, teardown),
        cmocka_unit_test_teardown(test_exp_that_is_not_a_number_is_rejected, teardown),
        cmocka_unit_test_teardown(test_garbage_empty_and_wrong_part_counts_are_rejected, teardown),
        cmocka_unit_test_teardown(test_base64_padding_is_rejected, teardown),
        cmocka_unit_test_teardown(test_standard_base64_plus_and_slash_are_rejected, teardown),
        cmocka_unit_test_teardown(test_non_canonical_trailing_bits_are_rejected, teardown),
        cmocka_unit_test_teardown(test_duplicate_json_keys_are_rejected_in_header_and_payload, teardown),
        cmocka_unit_test_teardown(test_crit_header_is_rejected, teardown),
        cmocka_unit_test_teardown(test_header_and_payload_must_be_json_objects, teardown),
        cmocka_unit_test_teardown(test_subject_claim_missing_not_a_string_or_empty_is_rejected, teardown),
        cmocka_unit_test_teardown(test_wrong_issuer_is_rejected_when_issuer_is_configured, teardown),
        cmocka_unit_test_teardown(test_audience_string_and_array_are_checked, teardown),
        cmocka_unit_test_teardown(test_invalid_utf8_in_a_json_string_is_rejected, teardown),
        cmocka_unit_test_teardown(test_lone_surrogate_escape_is_rejected, teardown),
        cmocka_unit_test_teardown(test_json_nesting_deeper_than_the_limit_is_rejected, teardown),
        cmocka_unit_test(test_b64url_decode_rfc4648_vectors_without_padding),
        cmocka_unit_test(test_b64url_decode_rejects_non_canonical_input),
        cmocka_unit_test(test_claim_text_renders_each_json_type),
        cmocka_unit_test(test_claim_text_null_and_missing_claims_are_null),
        cmocka_unit_test(test_json_parse_rejects_trailing_data),
        cmocka_unit_test(test_json_parse_number_grammar_is_strict),
        cmocka_unit_test(test_json_parse_string_escapes),
        cmocka_unit_test(test_json_parse_literals_containers_and_limits),
    };
    return cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
}
