/*
 * portcullis: HMAC JWT verification (RFC 7515/7519) on OpenSSL.
 */
#include "jwt.h"
#include "identity.h"
#include "json.h"
#include "../lib/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define TOK_MAX_LEN 8192

static signed char tok_b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 52);
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long tok_b64url_decode(const char *src, size_t len, unsigned char *dst)
{
    size_t o = 0, i = 0;
    if (len % 4 == 1)
        return -1;
    while (i + 4 <= len) {
        signed char a = tok_b64_val((unsigned char)src[i]), b = tok_b64_val((unsigned char)src[i + 1]);
        signed char c = tok_b64_val((unsigned char)src[i + 2]), d = tok_b64_val((unsigned char)src[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o++] = (unsigned char)(v >> 16);
        dst[o++] = (unsigned char)(v >> 8);
        dst[o++] = (unsigned char)v;
        i += 4;
    }
    size_t rest = len - i;
    if (rest == 2) {
        signed char a = tok_b64_val((unsigned char)src[i]), b = tok_b64_val((unsigned char)src[i + 1]);
        if ((a | b) < 0 || (b & 0x0f) != 0) /* unused bits must be zero */
            return -1;
        dst[o++] = (unsigned char)((uint32_t)a << 2 | (uint32_t)b >> 4);
    } else if (rest == 3) {
        signed char a = tok_b64_val((unsigned char)src[i]), b = tok_b64_val((unsigned char)src[i + 1]);
        signed char c = tok_b64_val((unsigned char)src[i + 2]);
        if ((a | b | c) < 0 || (c & 0x03) != 0)
            return -1;
        uint32_t v = (uint32_t)a << 12 | (uint32_t)b << 6 | (uint32_t)c;
        dst[o++] = (unsigned char)(v >> 10);
        dst[o++] = (unsigned char)(v >> 2);
    }
    return (long)o;
}

void tok_claims_clear(struct tok_claims *c)
{
    free(c->subject);
    free(c->payload);
    memset(c, 0, sizeof(*c));
}

static const struct {
    const char *name;
    enum tok_alg alg;
    const EVP_MD *(*md)(void);
} tok_algs[] = {
    {"HS256", TOK_HS256, EVP_sha256},
    {"HS384", TOK_HS384, EVP_sha384},
    {"HS512", TOK_HS512, EVP_sha512},
};

static int tok_alg_index(const char *name, size_t len)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(tok_algs); i++)
        if (pc_memeq(name, len, tok_algs[i].name, strlen(tok_algs[i].name)))
            return (int)i;
    return -1;
}

unsigned tok_alg_from_name(const char *name, size_t len)
{
    int i = tok_alg_index(name, len);
    return i < 0 ? 0 : tok_algs[i].alg;
}

/* Decode one base64url segment into a fresh buffer. */
static unsigned char *tok_segment(const char *s, size_t len, size_t *outlen)
{
    unsigned char *b = pc_malloc(len * 3 / 4 + 3);
    long n = tok_b64url_decode(s, len, b);
    if (n < 0) {
        free(b);
        return NULL;
    }
    *outlen = (size_t)n;
    return b;
}

int tok_verify(const struct id_config *cfg, const char *tok, size_t len, double now,
               struct tok_claims *out, const char **why)
{
    unsigned char *hdr = NULL, *sig = NULL, *pay = NULL;
    struct json_value *jh = NULL, *jp = NULL;
    size_t hl = 0, sl = 0, pl = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        *why = "empty token";
        return -1;
    }
    if (len > TOK_MAX_LEN) {
        *why = "token too long";
        return -1;
    }
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL) {
        *why = "not a compact JWS (three parts)";
        return -1;
    }
    size_t h_len = (size_t)(d1 - tok), p_len = (size_t)(d2 - d1 - 1), s_len = len - (size_t)(d2 + 1 - tok);
    if (h_len == 0 || p_len == 0 || s_len == 0) {
        *why = "empty JWS part (unsigned tokens are refused)";
        return -1;
    }

    hdr = tok_segment(tok, h_len, &hl);
    if (hdr == NULL) {
        *why = "header is not base64url";
        goto out;
    }
    jh = json_parse((const char *)hdr, hl, why);
    if (jh == NULL)
        goto out;
    if (jh->type != JSON_OBJECT) {
        *why = "header is not a JSON object";
        goto out;
    }
    if (json_get(jh, "crit") != NULL) {
        *why = "crit header is refused";
        goto out;
    }
    const struct json_value *alg = json_get(jh, "alg");
    if (alg == NULL || alg->type != JSON_STRING) {
        *why = "missing alg";
        goto out;
    }
    int ai = tok_alg_index(alg->str, alg->len);
    if (ai < 0 || !(cfg->algorithms & tok_algs[ai].alg)) {
        *why = "algorithm not allowed";
        goto out;
    }

    /* The key comes from the config, never from the token. */
    const unsigned char *key = NULL;
    size_t keylen = 0;
    const struct json_value *kid = json_get(jh, "kid");
    if (kid != NULL && cfg->nkeys > 0) {
        if (kid->type != JSON_STRING) {
            *why = "kid is not a string";
            goto out;
        }
        for (size_t k = 0; k < cfg->nkeys; k++) {
            if (pc_memeq(kid->str, kid->len, cfg->keys[k].id, strlen(cfg->keys[k].id))) {
                key = cfg->keys[k].secret;
                keylen = cfg->keys[k].secret_len;
                break;
            }
        }
        if (key == NULL) {
            *why = "unknown kid";
            goto out;
        }
    } else {
        key = cfg->secret;
        keylen = cfg->secret_len;
    }
    if (key == NULL || keylen == 0) {
        *why = "no key for this token";
        goto out;
    }

    sig = tok_segment(d2 + 1, s_len, &sl);
    if (sig == NULL) {
        *why = "signature is not base64url";
        goto out;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(tok_algs[ai].md(), key, (int)keylen, (const unsigned char *)tok,
             h_len + 1 + p_len, mac, &maclen) == NULL) {
        *why = "HMAC failed";
        goto out;
    }
    if (sl != maclen || CRYPTO_memcmp(mac, sig, maclen) != 0) {
        *why = "bad signature";
        goto out;
    }

    /* Signed by us: now read the claims. */
    pay = tok_segment(d1 + 1, p_len, &pl);
    if (pay == NULL) {
        *why = "payload is not base64url";
        goto out;
    }
    jp = json_parse((const char *)pay, pl, why);
    if (jp == NULL)
        goto out;
    if (jp->type != JSON_OBJECT) {
        *why = "payload is not a JSON object";
        goto out;
    }
    double leeway = (double)cfg->leeway_ms / 1000.0;
    const struct json_value *exp = json_get(jp, "exp");
    if (exp != NULL) {
        if (exp->type != JSON_NUMBER) {
            *why = "exp is not a number";
            goto out;
        }
        if (now > exp->num + leeway) {
            *why = "token expired";
            goto out;
        }
        out->exp = exp->num;
    } else if (cfg->require_exp) {
        *why = "token has no exp";
        goto out;
    }
    const struct json_value *nbf = json_get(jp, "nbf");
    if (nbf != NULL) {
        if (nbf->type != JSON_NUMBER) {
            *why = "nbf is not a number";
            goto out;
        }
        if (now + leeway < nbf->num) {
            *why = "token not yet valid";
            goto out;
        }
    }
    if (cfg->nissuers > 0) {
        const struct json_value *iss = json_get(jp, "iss");
        int ok = 0;
        for (size_t i = 0; iss != NULL && iss->type == JSON_STRING && i < cfg->nissuers && !ok; i++)
            ok = pc_memeq(iss->str, iss->len, cfg->issuers[i], strlen(cfg->issuers[i]));
        if (!ok) {
            *why = "wrong issuer";
            goto out;
        }
    }
    if (cfg->audience != NULL) {
        const struct json_value *aud = json_get(jp, "aud");
        int ok = 0;
        size_t al = strlen(cfg->audience);
        if (aud != NULL && aud->type == JSON_STRING)
            ok = pc_memeq(aud->str, aud->len, cfg->audience, al);
        else if (aud != NULL && aud->type == JSON_ARRAY)
            for (size_t k = 0; k < aud->n && !ok; k++)
                ok = aud->items[k].type == JSON_STRING &&
                     pc_memeq(aud->items[k].str, aud->items[k].len, cfg->audience, al);
        if (!ok) {
            *why = "wrong audience";
            goto out;
        }
    }
    const struct json_value *sub = json_get(jp, cfg->subject_claim);
    if (sub == NULL || sub->type != JSON_STRING || sub->len == 0) {
        *why = "subject claim missing or not a string";
        goto out;
    }
    if (memchr(sub->str, '\0', sub->len) != NULL) {
        *why = "subject contains NUL";
        goto out;
    }
    out->subject = pc_strndup(sub->str, sub->len);
    out->subject_len = sub->len;
    out->payload = pc_strndup((const char *)pay, pl);
    out->payload_len = pl;
    rc = 0;
out:
    json_free(jh);
    json_free(jp);
    free(hdr);
    free(sig);
    free(pay);
    return rc;
}

void tok_claim_value(const struct json_value *claims, const char *name, char **val, int *is_null)
{
    const struct json_value *v = json_get(claims, name);
    *val = NULL;
    *is_null = 1;
    if (v != NULL && v->type != JSON_NULL) {
        *is_null = 0;
        if (v->type == JSON_STRING)
            *val = pc_strndup(v->str, v->len);
        else
            *val = pc_strndup(v->raw, v->raw_len);
    }
}

int tok_claim_text(const char *payload, size_t len, const char *name, char **val, int *is_null)
{
    const char *why;
    struct json_value *j = json_parse(payload, len, &why);
    *val = NULL;
    *is_null = 1;
    if (j == NULL)
        return -1;
    tok_claim_value(j, name, val, is_null);
    json_free(j);
    return 0;
}
