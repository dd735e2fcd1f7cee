/*
 * portcullis: strict JSON reader.
 */
#include "json.h"
#include "../lib/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 16
#define JSON_MAX_ITEMS 256

struct json_parser {
    const char *p, *end;
    const char *why;
    int depth;
};

static void json_skip_ws(struct json_parser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static void json_value_clear(struct json_value *v)
{
    if (v == NULL)
        return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        json_value_clear(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
}

void json_free(struct json_value *v)
{
    json_value_clear(v);
    free(v);
}

static void json_put_utf8(struct pc_buf *b, unsigned cp)
{
    char o[4];
    if (cp < 0x80) {
        o[0] = (char)cp;
        pc_buf_add(b, o, 1);
    } else if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        pc_buf_add(b, o, 2);
    } else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        pc_buf_add(b, o, 3);
    } else {
        o[0] = (char)(0xf0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char)(0x80 | (cp & 0x3f));
        pc_buf_add(b, o, 4);
    }
}

static int json_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = pc_hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Validate one UTF-8 sequence at p; returns its length or 0. */
static size_t json_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int json_string(struct json_parser *jp, char **out, size_t *outlen)
{
    struct pc_buf b = {0};
    jp->p++; /* opening quote */
    while (jp->p < jp->end) {
        unsigned char c = (unsigned char)*jp->p;
        if (c == '"') {
            jp->p++;
            pc_buf_cstr(&b);
            *out = b.p;
            *outlen = b.len;
            return 0;
        }
        if (c < 0x20) {
            jp->why = "control character in JSON string";
            goto fail;
        }
        if (c == '\\') {
            if (jp->end - jp->p < 2) {
                jp->why = "truncated escape in JSON string";
                goto fail;
            }
            char e = jp->p[1];
            jp->p += 2;
            switch (e) {
            case '"': pc_buf_addc(&b, '"'); break;
            case '\\': pc_buf_addc(&b, '\\'); break;
            case '/': pc_buf_addc(&b, '/'); break;
            case 'b': pc_buf_addc(&b, '\b'); break;
            case 'f': pc_buf_addc(&b, '\f'); break;
            case 'n': pc_buf_addc(&b, '\n'); break;
            case 'r': pc_buf_addc(&b, '\r'); break;
            case 't': pc_buf_addc(&b, '\t'); break;
            case 'u': {
                unsigned cp, lo;
                if (jp->end - jp->p < 4 || json_hex4(jp->p, &cp) != 0) {
                    jp->why = "bad \\u escape in JSON string";
                    goto fail;
                }
                jp->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u' ||
                        json_hex4(jp->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
                        jp->why = "unpaired surrogate in JSON string";
                        goto fail;
                    }
                    jp->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    jp->why = "unpaired surrogate in JSON string";
                    goto fail;
                }
                if (cp == 0) {
                    jp->why = "NUL in JSON string";
                    goto fail;
                }
                json_put_utf8(&b, cp);
                break;
            }
            default:
                jp->why = "bad escape in JSON string";
                goto fail;
            }
            continue;
        }
        size_t n = json_utf8_len((const unsigned char *)jp->p, (const unsigned char *)jp->end);
        if (n == 0) {
            jp->why = "invalid UTF-8 in JSON string";
            goto fail;
        }
        pc_buf_add(&b, jp->p, n);
        jp->p += n;
    }
    jp->why = "unterminated JSON string";
fail:
    pc_buf_free(&b);
    return -1;
}

static int json_number(struct json_parser *jp, struct json_value *v)
{
    const char *s = jp->p;
    if (jp->p < jp->end && *jp->p == '-')
        jp->p++;
    if (jp->p >= jp->end)
        goto bad;
    if (*jp->p == '0') {
        jp->p++;
    } else if (*jp->p >= '1' && *jp->p <= '9') {
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    } else {
        goto bad;
    }
    if (jp->p < jp->end && *jp->p == '.') {
        jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
            goto bad;
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
            jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
            goto bad;
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    v->type = JSON_NUMBER;
    v->str = pc_strndup(s, (size_t)(jp->p - s));
    v->len = (size_t)(jp->p - s);
    v->num = strtod(v->str, NULL);
    if (!isfinite(v->num))
        goto bad;
    return 0;
bad:
    jp->why = "malformed JSON number";
    return -1;
}

static int json_lit(struct json_parser *jp, const char *lit)
{
    size_t l = strlen(lit);
    if ((size_t)(jp->end - jp->p) < l || memcmp(jp->p, lit, l) != 0) {
        jp->why = "invalid JSON literal";
        return -1;
    }
    jp->p += l;
    return 0;
}

static int json_value_parse(struct json_parser *jp, struct json_value *v);

static int json_container(struct json_parser *jp, struct json_value *v, int is_obj)
{
    size_t cap = 0;
    char close = is_obj ? '}' : ']';
    if (++jp->depth > JSON_MAX_DEPTH) {
        jp->why = "JSON nested too deeply";
        return -1;
    }
    v->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
    jp->p++;
    json_skip_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        jp->depth--;
        return 0;
    }
    for (;;) {
        if (v->n == JSON_MAX_ITEMS) {
            jp->why = "JSON container too large";
            return -1;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 8;
            v->items = pc_realloc(v->items, cap * sizeof(*v->items));
            if (is_obj) {
                v->keys = pc_realloc(v->keys, cap * sizeof(*v->keys));
                v->key_lens = pc_realloc(v->key_lens, cap * sizeof(*v->key_lens));
            }
        }
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (is_obj) {
            json_skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != '"') {
                jp->why = "expected a JSON object key";
                return -1;
            }
            char *k;
            size_t kl;
            if (json_string(jp, &k, &kl) != 0)
                return -1;
            for (size_t i = 0; i < v->n; i++) {
                if (v->key_lens[i] == kl && memcmp(v->keys[i], k, kl) == 0) {
                    free(k);
                    jp->why = "duplicate key in JSON object";
                    return -1;
                }
            }
            v->keys[v->n] = k;
            v->key_lens[v->n] = kl;
            json_skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                v->n++; /* so the key is freed */
                jp->why = "expected ':' in JSON object";
                return -1;
            }
            jp->p++;
        }
        v->n++;
        if (json_value_parse(jp, &v->items[v->n - 1]) != 0)
            return -1;
        json_skip_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            jp->depth--;
            return 0;
        }
        jp->why = "expected ',' or end of JSON container";
        return -1;
    }
}

static int json_value_parse(struct json_parser *jp, struct json_value *v)
{
    json_skip_ws(jp);
    if (jp->p >= jp->end) {
        jp->why = "unexpected end of JSON";
        return -1;
    }
    const char *start = jp->p;
    int rc;
    switch (*jp->p) {
    case '{': rc = json_container(jp, v, 1); break;
    case '[': rc = json_container(jp, v, 0); break;
    case '"':
        v->type = JSON_STRING;
        rc = json_string(jp, &v->str, &v->len);
        break;
    case 't':
        v->type = JSON_BOOL;
        v->boolean = 1;
        rc = json_lit(jp, "true");
        break;
    case 'f':
        v->type = JSON_BOOL;
        rc = json_lit(jp, "false");
        break;
    case 'n':
        v->type = JSON_NULL;
        rc = json_lit(jp, "null");
        break;
    default:
        rc = json_number(jp, v);
        break;
    }
    v->raw = start;
    v->raw_len = (size_t)(jp->p - start);
    return rc;
}

struct json_value *json_parse(const char *text, size_t len, const char **why)
{
    struct json_parser jp = {text, text + len, NULL, 0};
    struct json_value *v = pc_calloc(1, sizeof(*v));
    if (json_value_parse(&jp, v) != 0)
        goto fail;
    json_skip_ws(&jp);
    if (jp.p != jp.end) {
        jp.why = "trailing data after JSON value";
        goto fail;
    }
    return v;
fail:
    *why = jp.why ? jp.why : "invalid JSON";
    json_free(v);
    return NULL;
}

const struct json_value *json_get(const struct json_value *v, const char *key)
{
    if (v == NULL || v->type != JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->n; i++)
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0)
            return &v->items[i];
    return NULL;
}
