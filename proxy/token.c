/*
 * portcullis: minting test tokens (see token.h).
 *
 *   portcullis token (--secret S | --secret-file F) [--claim k=v]... [--ttl 1h] [--alg HS256] [--kid ID]
 */
#include "token.h"
#include "../lib/base.h"
#include "../policies/identity.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jwt.h>

#define TOKEN_USAGE \
    "usage: portcullis token (--secret S | --secret-file F) [--claim k=v]... [--ttl 1h] [--alg HS256] [--kid ID]\n"

static int token_has_claim(const struct pc_claim *claims, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(claims[i].name, name) == 0)
            return 1;
    return 0;
}

static int token_add_claim(jwt_t *jwt, const struct pc_claim *c)
{
    switch (c->type) {
    case PC_CLAIM_STR:
        return jwt_add_grant(jwt, c->name, c->value);
    case PC_CLAIM_INT: {
        uint64_t n;
        if (pc_parse_u64(c->value, strlen(c->value), &n) != 0 || n > INT64_MAX)
            return -1;
        return jwt_add_grant_int(jwt, c->name, (long)n);
    }
    case PC_CLAIM_BOOL:
        return jwt_add_grant_bool(jwt, c->name, strcmp(c->value, "true") == 0);
    case PC_CLAIM_JSON: {
        /* libjwt takes JSON claims as an object of them */
        struct pc_buf b = {0};
        pc_buf_addc(&b, '{');
        pc_buf_addc(&b, '"');
        pc_buf_add_json_str(&b, c->name, strlen(c->name));
        pc_buf_addf(&b, "\":%s}", c->value);
        int rc = jwt_add_grants_json(jwt, pc_buf_cstr(&b));
        pc_buf_free(&b);
        return rc;
    }
    case PC_CLAIM_OMIT:
        return 0;
    }
    return -1;
}

/* every claim, then exp and iat unless given (or omitted on purpose) */
static int token_add_claims(jwt_t *jwt, const struct pc_claim *claims, size_t n, int64_t ttl_ms, char *err,
                            size_t errlen)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        if (token_add_claim(jwt, &claims[i]) != 0) {
            snprintf(err, errlen, "cannot add claim %s", claims[i].name);
            return -1;
        }
    }
    if (ttl_ms > 0 && !token_has_claim(claims, n, "exp") &&
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl_ms / 1000)) != 0) {
        snprintf(err, errlen, "cannot add claim exp");
        return -1;
    }
    if (!token_has_claim(claims, n, "iat") && jwt_add_grant_int(jwt, "iat", (long)now) != 0) {
        snprintf(err, errlen, "cannot add claim iat");
        return -1;
    }
    return 0;
}

char *pc_token_mint(const unsigned char *key, size_t keylen, const char *alg, const char *kid,
                    const struct pc_claim *claims, size_t nclaims, int64_t ttl_ms, char *err, size_t errlen)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    jwt_alg_t a = jwt_str_alg(alg);

    if (a != JWT_ALG_HS256 && a != JWT_ALG_HS384 && a != JWT_ALG_HS512) {
        snprintf(err, errlen, "the algorithm must be HS256, HS384 or HS512");
        return NULL;
    }
    if (key == NULL || keylen == 0) {
        snprintf(err, errlen, "an empty key signs nothing");
        return NULL;
    }
    if (jwt_new(&jwt) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (token_add_claims(jwt, claims, nclaims, ttl_ms, err, errlen) != 0)
        goto out;
    if (kid != NULL && jwt_add_header(jwt, "kid", kid) != 0) {
        snprintf(err, errlen, "cannot add the kid header");
        goto out;
    }
    if (jwt_set_alg(jwt, a, key, (int)keylen) != 0) {
        snprintf(err, errlen, "cannot set the algorithm");
        goto out;
    }
    out = jwt_encode_str(jwt);
    if (out == NULL)
        snprintf(err, errlen, "encoding failed");
out:
    jwt_free(jwt);
    return out;
}

/* --claim name=value: digits become numbers, true/false booleans */
static int token_claim_arg(char *arg, struct pc_claim *c)
{
    char *eq = strchr(arg, '=');
    uint64_t n;
    if (eq == NULL || eq == arg)
        return -1;
    *eq = '\0';
    c->name = arg;
    c->value = eq + 1;
    if (pc_parse_u64(c->value, strlen(c->value), &n) == 0)
        c->type = PC_CLAIM_INT;
    else if (strcmp(c->value, "true") == 0 || strcmp(c->value, "false") == 0)
        c->type = PC_CLAIM_BOOL;
    else
        c->type = PC_CLAIM_STR;
    return 0;
}

static int token_key(const char *secret, const char *secret_file, unsigned char **key, size_t *keylen)
{
    char err[300];
    if (secret_file != NULL) {
        if (id_read_secret_file(secret_file, key, keylen, err, sizeof(err)) != 0) {
            fprintf(stderr, "portcullis token: %s\n", err);
            return -1;
        }
    } else if (secret != NULL) {
        *keylen = strlen(secret);
        *key = (unsigned char *)pc_strndup(secret, *keylen);
    }
    if (*key == NULL || *keylen == 0) {
        fprintf(stderr, "portcullis token: a non-empty --secret or --secret-file is required\n");
        return -1;
    }
    return 0;
}

int pc_token_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'f'},
        {"claim", required_argument, NULL, 'c'},
        {"ttl", required_argument, NULL, 't'},
        {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *secret = NULL, *secret_file = NULL, *alg = "HS256", *kid = NULL;
    int64_t ttl_ms = 3600000;
    struct pc_claim *claims = pc_calloc((size_t)argc + 1, sizeof(*claims));
    size_t nclaims = 0, keylen = 0;
    unsigned char *key = NULL;
    char *out = NULL, err[256];
    int ch, rc = 1;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': secret = optarg; break;
        case 'f': secret_file = optarg; break;
        case 'a': alg = optarg; break;
        case 'k': kid = optarg; break;
        case 't':
            if (pc_parse_duration(optarg, &ttl_ms) != 0) {
                fprintf(stderr, "portcullis token: bad --ttl '%s'\n", optarg);
                goto out;
            }
            break;
        case 'c':
            if (token_claim_arg(optarg, &claims[nclaims++]) != 0) {
                fprintf(stderr, "portcullis token: --claim wants name=value\n");
                goto out;
            }
            break;
        case 'h':
            fputs(TOKEN_USAGE, stdout);
            rc = 0;
            goto out;
        default:
            fputs(TOKEN_USAGE, stderr);
            goto out;
        }
    }
    if (token_key(secret, secret_file, &key, &keylen) != 0)
        goto out;
    out = pc_token_mint(key, keylen, alg, kid, claims, nclaims, ttl_ms, err, sizeof(err));
    if (out == NULL) {
        fprintf(stderr, "portcullis token: %s\n", err);
        goto out;
    }
    printf("%s\n", out);
    rc = 0;
out:
    free(out);
    if (key != NULL)
        memset(key, 0, keylen);
    free(key);
    free(claims);
    return rc;
}
