/*
 * libFuzzer target: JWT verification (policies/jwt.c, policies/json.c) with
 * a fixed key set: a default secret and two keys chosen by kid ("k1", and
 * "k2", longer than the SHA-384 block). HS256 and HS384 are allowed; HS512
 * is known to the verifier but not allowed.
 *
 * Input, byte 0 is the mode:
 *   bit 0 clear: the rest is a compact token, verified as it is;
 *   bit 0 set:   the rest is header JSON, a NUL, payload JSON (no NUL: the
 *                whole rest is the payload under {"alg":"HS256"}). The
 *                target encodes both and signs them the way the oracle
 *                below says the verifier must (the key the header selects,
 *                the alg it names; HS256 with the default secret when the
 *                alg is unknown), so the fuzzer gets past the signature.
 *                bit 1: flip a bit of the MAC; bit 2: sign with a wrong key;
 *                bit 3: a non-canonical last base64url character.
 *
 * Each token is verified against two configs (permissive, and strict:
 * issuer, audience, required exp, no leeway, subject claim user_id).
 *
 * The oracle is independent of jwt.c/json.c: its own base64url, its own
 * strict RFC 8259 reader, and HMAC computed with OpenSSL over the first two
 * parts with the key the header selects. A token is accepted only if: it
 * has three non-empty canonical base64url parts; the header is a JSON
 * object without crit whose alg is an allowed one; the signature equals
 * HMAC(alg, key, header.payload); the claims hold (exp/nbf with leeway,
 * iss, aud, subject a non-empty string without NUL). The subject and the
 * payload returned are the token's. When the JSON stays within json.c's
 * documented limits (depth 16, 256 items, no \u0000, no duplicate keys,
 * finite numbers), the converse holds too: a token the oracle accepts is
 * accepted.
 *
 * FUZZ_TOKEN_VERBOSE=1 prints both verdicts for every token run.
 */
#include "fuzz_common.h"

#include <math.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../policies/identity.h"
#include "../../policies/jwt.h"
#include "../../proxy/config.h"
#include "../../lib/base.h"

#define NOW 1700000000.0

#define SECRET "fuzz-default-secret"
#define K1 "fuzz-key-one"
#define K2 "fuzz-key-two-is-longer-than-the-sha384-block-so-hmac-hashes-it-first-" \
           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-end"

#define IDENTITY_KEYS                                                   \
    "  secret: " SECRET "\n"                                            \
    "  keys:\n"                                                         \
    "    - {id: k1, secret: " K1 "}\n"                                  \
    "    - {id: k2, secret: \"" K2 "\"}\n"                              \
    "  algorithms: [HS256, HS384]\n"

static const char permissive_yaml[] =
    "listen: 127.0.0.1:8080\n"
    "upstream: http://127.0.0.1:5001\n"
    "identity:\n" IDENTITY_KEYS
    "  require_exp: false\n";

static const char strict_yaml[] =
    "listen: 127.0.0.1:8080\n"
    "upstream: http://127.0.0.1:5001\n"
    "identity:\n" IDENTITY_KEYS
    "  subject_claim: user_id\n"
    "  issuer: portcullis-fuzz\n"
    "  audience: api\n"
    "  require_exp: true\n"
    "  leeway: 0s\n";

struct variant {
    const char *name;
    struct pc_config *cfg;
    /* what the oracle knows, written out again here rather than read back */
    const char *subject_claim;
    const char *issuer, *audience;
    int require_exp;
    double leeway;
};

static struct variant variants[2] = {
    {"permissive", NULL, "sub", NULL, NULL, 0, 30.0},
    {"strict", NULL, "user_id", "portcullis-fuzz", "api", 1, 0.0},
};

static int verbose; /* FUZZ_TOKEN_VERBOSE=1: print each verdict */

static struct pc_config *load(const char *name, const char *text)
{
    char *errors = NULL;
    struct pc_config *c = cfg_load_text(name, text, strlen(text), NULL, &errors);
    if (c == NULL) {
        fprintf(stderr, "fuzz_token: %s refused:\n%s", name, errors ? errors : "?\n");
        abort();
    }
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pc_hash_init();
    verbose = getenv("FUZZ_TOKEN_VERBOSE") != NULL;
    variants[0].cfg = load("permissive.yaml", permissive_yaml);
    variants[1].cfg = load("strict.yaml", strict_yaml);
    for (int i = 0; i < 2; i++) {
        const struct id_config *id = variants[i].cfg->identity;
        if (id->nkeys != 2 || id->algorithms != (TOK_HS256 | TOK_HS384) || id->secret_len != strlen(SECRET)) {
            fprintf(stderr, "fuzz_token: unexpected identity config\n");
            abort();
        }
    }
    return 0;
}

/* ---- base64url, written independently ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
    }
    return o;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Decode; canonical only: the text must be exactly what b64_encode makes of
 * the result. Returns a malloc'd buffer or NULL. */
static unsigned char *b64_decode(const char *s, size_t len, size_t *outlen)
{
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = malloc(len + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    char *re = malloc(len + 4);
    size_t rl = b64_encode(out, o, re);
    int same = rl == len && memcmp(re, s, len) == 0;
    free(re);
    if (!same) {
        free(out);
        return NULL;
    }
    *outlen = o;
    return out;
}

/* ---- a strict RFC 8259 reader, independent of policies/json.c ---- */

enum { MJ_NULL, MJ_BOOL, MJ_NUM, MJ_STR, MJ_ARR, MJ_OBJ };

#define MJ_MAX_MEMBERS 300

struct mj_member {
    char *key;
    size_t klen;
    int type;
    char *str;          /* MJ_STR */
    size_t slen;
    double num;         /* MJ_NUM */
    size_t nstr;        /* MJ_ARR: its string items */
    char **astr;
    size_t *alen;
};

struct mj {
    const char *p, *end;
    int depth, maxdepth;
    int limits;          /* beyond what json.c documents it accepts */
    int top_type;
    struct mj_member *m; /* top-level object members */
    size_t n;
};

static void mj_ws(struct mj *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void put_utf8(char *o, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xc0 | cp >> 6);
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xe0 | cp >> 12);
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        o[(*n)++] = (char)(0xf0 | cp >> 18);
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int h = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (h < 0)
            return -1;
        *v = *v << 4 | (uint32_t)h;
    }
    return 0;
}

/* The decoded string is malloc'd into *out (or freed when out is NULL). */
static int mj_string(struct mj *j, char **out, size_t *outlen)
{
    const char *s = ++j->p;
    /* decoded is never longer than the text */
    char *o = malloc((size_t)(j->end - s) + 1);
    size_t n = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            o[n] = '\0';
            if (out) {
                *out = o;
                *outlen = n;
            } else {
                free(o);
            }
            return 0;
        }
        if (c < 0x20)
            break;
        if (c == '\\') {
            if (j->end - j->p < 2)
                break;
            char e = j->p[1];
            j->p += 2;
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e != 0 && simple != NULL) {
                o[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                continue;
            }
            if (e != 'u')
                break;
            uint32_t cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp) != 0)
                break;
            j->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                break;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) != 0 ||
                    lo < 0xdc00 || lo > 0xdfff)
                    break;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0)
                j->limits = 1; /* valid JSON; json.c refuses it by design */
            put_utf8(o, &n, cp);
            continue;
        }
        /* UTF-8, strictly */
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            o[n++] = (char)c;
            j->p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            break;
        }
        if ((size_t)(j->end - j->p) < len)
            break;
        size_t k;
        for (k = 1; k < len; k++) {
            unsigned char d = (unsigned char)j->p[k];
            if ((d & 0xc0) != 0x80)
                break;
            cp = cp << 6 | (d & 0x3f);
        }
        if (k < len || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            break;
        memcpy(o + n, j->p, len);
        n += len;
        j->p += len;
    }
    free(o);
    return -1;
}

static int mj_number(struct mj *j, double *num)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return -1;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return -1;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    size_t l = (size_t)(j->p - s);
    char *t = malloc(l + 1);
    memcpy(t, s, l);
    t[l] = '\0';
    *num = strtod(t, NULL);
    free(t);
    if (!isfinite(*num))
        j->limits = 1;
    return 0;
}

static int mj_lit(struct mj *j, const char *lit)
{
    size_t l = strlen(lit);
    if ((size_t)(j->end - j->p) < l || memcmp(j->p, lit, l) != 0)
        return -1;
    j->p += l;
    return 0;
}

struct keylist {
    char **k;
    size_t *l;
    size_t n;
};

/* top: the member to fill when this value is a top-level member's value */
static int mj_value(struct mj *j, struct mj_member *top, int *type);

static int mj_container(struct mj *j, int obj, struct mj_member *top)
{
    char close = obj ? '}' : ']';
    struct keylist keys = {NULL, NULL, 0};
    int rc = -1;
    size_t items = 0;
    int is_top = j->depth == 0;
    if (++j->depth > j->maxdepth)
        j->maxdepth = j->depth;
    if (j->depth > 200)
        goto out; /* deep enough: beyond json.c's limit anyway */
    j->p++;
    mj_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        rc = 0;
        goto out;
    }
    for (;;) {
        if (++items > 256)
            j->limits = 1;
        struct mj_member *mem = NULL;
        if (obj) {
            char *k;
            size_t kl;
            mj_ws(j);
            if (j->p >= j->end || *j->p != '"' || mj_string(j, &k, &kl) != 0)
                goto out;
            for (size_t i = 0; i < keys.n; i++)
                if (keys.l[i] == kl && memcmp(keys.k[i], k, kl) == 0)
                    j->limits = 1; /* duplicate key */
            keys.k = realloc(keys.k, (keys.n + 1) * sizeof(*keys.k));
            keys.l = realloc(keys.l, (keys.n + 1) * sizeof(*keys.l));
            keys.k[keys.n] = k;
            keys.l[keys.n] = kl;
            keys.n++;
            if (is_top && j->n < MJ_MAX_MEMBERS) {
                mem = &j->m[j->n++];
                memset(mem, 0, sizeof(*mem));
                mem->key = malloc(kl + 1);
                memcpy(mem->key, k, kl + 1);
                mem->klen = kl;
            } else if (is_top) {
                j->limits = 1;
            }
            mj_ws(j);
            if (j->p >= j->end || *j->p != ':')
                goto out;
            j->p++;
        }
        int t;
        if (!obj && top != NULL && j->depth == 2) {
            /* a top-level member's array: remember its string items */
            char *s = NULL;
            size_t sl = 0;
            mj_ws(j);
            if (j->p < j->end && *j->p == '"') {
                if (mj_string(j, &s, &sl) != 0)
                    goto out;
                top->astr = realloc(top->astr, (top->nstr + 1) * sizeof(*top->astr));
                top->alen = realloc(top->alen, (top->nstr + 1) * sizeof(*top->alen));
                top->astr[top->nstr] = s;
                top->alen[top->nstr] = sl;
                top->nstr++;
            } else if (mj_value(j, NULL, &t) != 0) {
                goto out;
            }
        } else if (mj_value(j, mem, &t) != 0) {
            goto out;
        }
        mj_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            rc = 0;
            goto out;
        }
        goto out;
    }
out:
    j->depth--;
    for (size_t i = 0; i < keys.n; i++)
        free(keys.k[i]);
    free(keys.k);
    free(keys.l);
    return rc;
}

static int mj_value(struct mj *j, struct mj_member *top, int *type)
{
    mj_ws(j);
    if (j->p >= j->end)
        return -1;
    int rc;
    double num = 0;
    switch (*j->p) {
    case '{':
        *type = MJ_OBJ;
        rc = mj_container(j, 1, NULL);
        break;
    case '[':
        *type = MJ_ARR;
        rc = mj_container(j, 0, top);
        break;
    case '"':
        *type = MJ_STR;
        rc = top ? mj_string(j, &top->str, &top->slen) : mj_string(j, NULL, NULL);
        break;
    case 't':
        *type = MJ_BOOL;
        rc = mj_lit(j, "true");
        break;
    case 'f':
        *type = MJ_BOOL;
        rc = mj_lit(j, "false");
        break;
    case 'n':
        *type = MJ_NULL;
        rc = mj_lit(j, "null");
        break;
    default:
        *type = MJ_NUM;
        rc = mj_number(j, &num);
        break;
    }
    if (top != NULL) {
        top->type = *type;
        top->num = num;
    }
    return rc;
}

static void mj_free(struct mj *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->m[i].key);
        free(j->m[i].str);
        for (size_t k = 0; k < j->m[i].nstr; k++)
            free(j->m[i].astr[k]);
        free(j->m[i].astr);
        free(j->m[i].alen);
    }
    free(j->m);
    j->m = NULL;
    j->n = 0;
}

/* Parse one JSON text; 0 when valid. Members of a top-level object in j->m. */
static int mj_parse(struct mj *j, const char *text, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->p = text;
    j->end = text + len;
    j->m = calloc(MJ_MAX_MEMBERS, sizeof(*j->m));
    int t;
    if (mj_value(j, NULL, &t) != 0)
        return -1;
    j->top_type = t;
    mj_ws(j);
    if (j->p != j->end)
        return -1;
    if (j->maxdepth > 16)
        j->limits = 1;
    return 0;
}

static const struct mj_member *mj_get(const struct mj *j, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < j->n; i++)
        if (j->m[i].klen == kl && memcmp(j->m[i].key, key, kl) == 0)
            return &j->m[i];
    return NULL;
}

static int mj_str_is(const struct mj_member *m, const char *s)
{
    return m != NULL && m->type == MJ_STR && m->slen == strlen(s) && memcmp(m->str, s, m->slen) == 0;
}

/* ---- the oracle ---- */

struct keysel {
    const EVP_MD *md;
    const char *alg;
    const unsigned char *key;
    size_t keylen;
    int allowed;        /* alg allowed and a key selected */
};

/* Which alg and key does this header select, as the config says it must? */
static int oracle_select(const struct mj *h, struct keysel *ks)
{
    memset(ks, 0, sizeof(*ks));
    const struct mj_member *alg = mj_get(h, "alg");
    if (mj_str_is(alg, "HS256")) {
        ks->md = EVP_sha256();
        ks->alg = "HS256";
        ks->allowed = 1;
    } else if (mj_str_is(alg, "HS384")) {
        ks->md = EVP_sha384();
        ks->alg = "HS384";
        ks->allowed = 1;
    } else if (mj_str_is(alg, "HS512")) {
        ks->md = EVP_sha512(); /* known, not allowed */
        ks->alg = "HS512";
    } else {
        ks->md = EVP_sha256();
    }
    const struct mj_member *kid = mj_get(h, "kid");
    ks->key = (const unsigned char *)SECRET;
    ks->keylen = strlen(SECRET);
    if (kid != NULL) {
        if (mj_str_is(kid, "k1")) {
            ks->key = (const unsigned char *)K1;
            ks->keylen = strlen(K1);
        } else if (mj_str_is(kid, "k2")) {
            ks->key = (const unsigned char *)K2;
            ks->keylen = strlen(K2);
        } else {
            ks->allowed = 0; /* not a string, or an unknown kid */
        }
    }
    if (mj_get(h, "crit") != NULL)
        ks->allowed = 0;
    return 0;
}

struct verdict {
    int accept;         /* the oracle's answer */
    int certain;        /* JSON within json.c's limits: the answer is exact */
    const char *why;    /* why the oracle refuses */
    char *subject;
    size_t subject_len;
    unsigned char *payload;
    size_t payload_len;
    double exp;
};

static void verdict_free(struct verdict *v)
{
    free(v->subject);
    free(v->payload);
}

static void oracle(const struct variant *var, const char *tok, size_t len, struct verdict *v)
{
    struct mj h = {0}, p = {0};
    unsigned char *hdr = NULL, *sig = NULL, *pay = NULL;
    size_t hl = 0, sl = 0, pl = 0;
    memset(v, 0, sizeof(*v));
    v->certain = 1;
    v->why = NULL;

    if (len == 0 || len > 8192) {
        v->why = "length";
        goto out;
    }
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) {
        v->why = "not three parts";
        goto out;
    }
    size_t h_len = (size_t)(d1 - tok), p_len = (size_t)(d2 - d1 - 1), s_len = len - (size_t)(d2 + 1 - tok);
    if (!h_len || !p_len || !s_len) {
        v->why = "empty part";
        goto out;
    }
    hdr = b64_decode(tok, h_len, &hl);
    if (hdr == NULL) {
        v->why = "header base64url";
        goto out;
    }
    if (mj_parse(&h, (const char *)hdr, hl) != 0 || h.top_type != MJ_OBJ) {
        v->why = "header JSON";
        v->certain = !h.limits;
        goto out;
    }
    if (h.limits)
        v->certain = 0;
    struct keysel ks;
    oracle_select(&h, &ks);
    if (!ks.allowed) {
        v->why = "alg/kid/crit";
        goto out;
    }
    sig = b64_decode(d2 + 1, s_len, &sl);
    if (sig == NULL) {
        v->why = "signature base64url";
        goto out;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    FZ_CHECK(HMAC(ks.md, ks.key, (int)ks.keylen, (const unsigned char *)tok, h_len + 1 + p_len, mac, &maclen),
             "HMAC");
    if (sl != maclen || memcmp(sig, mac, maclen) != 0) {
        v->why = "signature";
        goto out;
    }
    pay = b64_decode(d1 + 1, p_len, &pl);
    if (pay == NULL) {
        v->why = "payload base64url";
        goto out;
    }
    if (mj_parse(&p, (const char *)pay, pl) != 0 || p.top_type != MJ_OBJ) {
        v->why = "payload JSON";
        if (p.limits)
            v->certain = 0;
        goto out;
    }
    if (p.limits)
        v->certain = 0;
    const struct mj_member *exp = mj_get(&p, "exp"), *nbf = mj_get(&p, "nbf");
    if (exp != NULL) {
        if (exp->type != MJ_NUM || NOW > exp->num + var->leeway) {
            v->why = "exp";
            goto out;
        }
        v->exp = exp->num;
    } else if (var->require_exp) {
        v->why = "no exp";
        goto out;
    }
    if (nbf != NULL && (nbf->type != MJ_NUM || NOW + var->leeway < nbf->num)) {
        v->why = "nbf";
        goto out;
    }
    if (var->issuer != NULL && !mj_str_is(mj_get(&p, "iss"), var->issuer)) {
        v->why = "iss";
        goto out;
    }
    if (var->audience != NULL) {
        const struct mj_member *aud = mj_get(&p, "aud");
        int ok = mj_str_is(aud, var->audience);
        if (aud != NULL && aud->type == MJ_ARR)
            for (size_t k = 0; k < aud->nstr && !ok; k++)
                ok = aud->alen[k] == strlen(var->audience) && memcmp(aud->astr[k], var->audience, aud->alen[k]) == 0;
        if (!ok) {
            v->why = "aud";
            goto out;
        }
    }
    const struct mj_member *sub = mj_get(&p, var->subject_claim);
    if (sub == NULL || sub->type != MJ_STR || sub->slen == 0 || memchr(sub->str, '\0', sub->slen)) {
        v->why = "subject";
        goto out;
    }
    v->accept = 1;
    v->subject = malloc(sub->slen + 1);
    memcpy(v->subject, sub->str, sub->slen + 1);
    v->subject_len = sub->slen;
    v->payload = pay;
    v->payload_len = pl;
    pay = NULL;
out:
    mj_free(&h);
    mj_free(&p);
    free(hdr);
    free(sig);
    free(pay);
}

static void verify_one(const struct variant *var, const char *tok, size_t len)
{
    struct tok_claims claims;
    const char *why = NULL;
    struct verdict v;
    /* exact-size copy, for ASan */
    char *t = malloc(len ? len : 1);
    memcpy(t, tok, len);
    int rc = tok_verify(var->cfg->identity, t, len, NOW, &claims, &why);
    oracle(var, t, len, &v);
    if (verbose)
        fprintf(stderr, "[%s] tok_verify: %s; oracle: %s%s\n", var->name, rc == 0 ? "accepted" : why,
                v.accept ? "accept" : v.why, v.certain ? "" : " (beyond json.c's limits)");
    FZ_CHECK(rc == 0 || rc == -1, "tok_verify returned %d", rc);
    if (rc == 0) {
        FZ_CHECK(v.accept, "[%s] token accepted, but the oracle refuses it (%s)", var->name, v.why);
        FZ_CHECK(claims.subject != NULL && claims.subject_len == v.subject_len &&
                 memcmp(claims.subject, v.subject, v.subject_len) == 0 &&
                 strlen(claims.subject) == claims.subject_len, "[%s] subject differs", var->name);
        FZ_CHECK(claims.payload_len == v.payload_len && memcmp(claims.payload, v.payload, v.payload_len) == 0,
                 "[%s] payload differs", var->name);
        FZ_CHECK(claims.exp == v.exp, "[%s] exp %f, oracle %f", var->name, claims.exp, v.exp);
        tok_claims_clear(&claims);
    } else {
        FZ_CHECK(why != NULL && why[0] != '\0', "refused without a reason");
        FZ_CHECK(claims.subject == NULL && claims.payload == NULL, "claims left behind on failure");
        if (v.certain)
            FZ_CHECK(!v.accept, "[%s] token refused (%s), but the oracle accepts it", var->name, why);
    }
    verdict_free(&v);
    free(t);
}

/* ---- signed mode: build a token the oracle's way ---- */

static char *build_token(const char *hjson, size_t hl, const char *pjson, size_t pl, unsigned mode,
                         size_t *outlen)
{
    struct mj h;
    struct keysel ks;
    int parsed = mj_parse(&h, hjson, hl) == 0;
    if (parsed)
        oracle_select(&h, &ks);
    else
        memset(&ks, 0, sizeof(ks));
    mj_free(&h);
    if (!parsed || ks.md == NULL) {
        ks.md = EVP_sha256();
        ks.key = (const unsigned char *)SECRET;
        ks.keylen = strlen(SECRET);
    }
    if (mode & 4) {
        ks.key = (const unsigned char *)"not-the-key";
        ks.keylen = 11;
    }
    char *tok = malloc(4 * (hl + pl) / 3 + 200);
    size_t n = b64_encode((const unsigned char *)hjson, hl, tok);
    tok[n++] = '.';
    n += b64_encode((const unsigned char *)pjson, pl, tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    FZ_CHECK(HMAC(ks.md, ks.key, (int)ks.keylen, (const unsigned char *)tok, n, mac, &maclen), "HMAC");
    if (mode & 2)
        mac[maclen / 2] ^= 0x10;
    tok[n++] = '.';
    size_t s = n;
    n += b64_encode(mac, maclen, tok + n);
    if ((mode & 8) && n > s) {
        /* a last character with non-zero unused bits: same bytes, other text */
        int v = b64_val(tok[n - 1]);
        size_t rem = maclen % 3;
        if (rem != 0 && v >= 0)
            tok[n - 1] = b64[(v & ~(rem == 1 ? 15 : 3)) | 1];
    }
    *outlen = n;
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    unsigned mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t rl = size - 1;
    if (!(mode & 1)) {
        for (int i = 0; i < 2; i++)
            verify_one(&variants[i], rest, rl);
        return 0;
    }
    static const char def_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *hj = def_hdr, *pj = rest;
    size_t hl = sizeof(def_hdr) - 1, pl = rl;
    const char *nul = memchr(rest, '\0', rl);
    if (nul != NULL) {
        hj = rest;
        hl = (size_t)(nul - rest);
        pj = nul + 1;
        pl = rl - hl - 1;
    }
    size_t tl;
    char *tok = build_token(hj, hl, pj, pl, mode, &tl);
    for (int i = 0; i < 2; i++)
        verify_one(&variants[i], tok, tl);
    free(tok);
    return 0;
}
