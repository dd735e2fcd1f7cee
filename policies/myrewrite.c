/*
 * portcullis: :name placeholders in MySQL's lexical grammar (policy.h
 * pol_rewrite_sql_mysql).
 *
 * MySQL numbers its placeholders by position: every ? is its own
 * parameter, so a name used twice is bound twice. Quoting follows MySQL's
 * default sql_mode: '...' and "..." are strings in which a backslash
 * escapes the next character and a doubled quote is a quote; `...` is an
 * identifier; # and "-- " start line comments; block comments do not nest.
 * What MySQL would read differently from PostgreSQL is refused rather than
 * guessed: a bare ? (write :name), and executable comments (a block comment
 * opened with an exclamation mark), whose contents the server runs as SQL.
 */
#include "policy.h"
#include "../lib/base.h"

#include <stdlib.h>
#include <string.h>

static int my_ident_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int my_ident_char(char c)
{
    return my_ident_start(c) || (c >= '0' && c <= '9');
}

/* After "--": a comment when followed by a space or a control character
 * (MySQL), or by nothing. */
static int my_dash_comment(const char *sql, size_t i, size_t len)
{
    if (i + 1 >= len || sql[i] != '-' || sql[i + 1] != '-')
        return 0;
    if (i + 2 == len)
        return 1;
    unsigned char c = (unsigned char)sql[i + 2];
    return c == ' ' || c < 0x20 || c == 0x7f;
}

/* The end (one past) of the quoted text starting at sql[i], or 0 when it
 * is not terminated. Backslashes escape in strings, not in `identifiers`. */
static size_t my_quoted_end(const char *sql, size_t i, size_t len)
{
    char q = sql[i];
    size_t j = i + 1;
    while (j < len) {
        if (q != '`' && sql[j] == '\\') {
            j += 2;
            continue;
        }
        if (sql[j] == q) {
            if (j + 1 < len && sql[j + 1] == q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j++;
    }
    return 0;
}

/* A :name (or :claims.name, :data.set.key.field) at sql[i]: its length, name included; 0 when
 * sql[i] does not start one. */
static size_t my_placeholder(const char *sql, size_t i, size_t len)
{
    if (sql[i] != ':' || i + 1 >= len || !my_ident_start(sql[i + 1]))
        return 0;
    size_t j = i + 1;
    while (j < len && my_ident_char(sql[j]))
        j++;
    if (j - i - 1 == 6 && memcmp(sql + i + 1, "claims", 6) == 0 && j + 1 < len && sql[j] == '.' &&
        my_ident_start(sql[j + 1])) {
        j++;
        while (j < len && my_ident_char(sql[j]))
            j++;
    } else if (j - i - 1 == 4 && memcmp(sql + i + 1, "data", 4) == 0) {
        /* data.<set>.<key>[.<field>] */
        for (int part = 0; part < 3 && j + 1 < len && sql[j] == '.' && my_ident_start(sql[j + 1]); part++) {
            j++;
            while (j < len && my_ident_char(sql[j]))
                j++;
        }
    }
    return j - i;
}

char *pol_rewrite_sql_mysql(const char *sql, char ***names_out, size_t *nnames_out, const char **why)
{
    struct pc_buf b = {0};
    char **names = NULL;
    size_t nn = 0, i = 0, len = strlen(sql);

    while (i < len) {
        char c = sql[i];
        size_t stop = 0;
        if (c == '\'' || c == '"' || c == '`') {
            stop = my_quoted_end(sql, i, len);
            if (stop == 0) {
                *why = c == '`' ? "unterminated quoted identifier" : "unterminated string literal";
                goto fail;
            }
        } else if (c == '#' || my_dash_comment(sql, i, len)) {
            stop = i;
            while (stop < len && sql[stop] != '\n')
                stop++;
        } else if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
            if (i + 2 < len && (sql[i + 2] == '!' || (sql[i + 2] == 'M' && i + 3 < len && sql[i + 3] == '!'))) {
                *why = "executable comments (/*! ... */) are not allowed in policy SQL";
                goto fail;
            }
            const char *end = strstr(sql + i + 2, "*/");
            if (end == NULL) {
                *why = "unterminated comment";
                goto fail;
            }
            stop = (size_t)(end - sql) + 2;
        } else if (c == '?') {
            *why = "write parameters as :name, not ?";
            goto fail;
        } else if (c == ':' && i + 1 < len && sql[i + 1] == ':') {
            stop = i + 2;
        }
        if (stop > 0) {
            pc_buf_add(&b, sql + i, stop - i);
            i = stop;
            continue;
        }
        size_t pl = my_placeholder(sql, i, len);
        if (pl > 0) {
            if (nn == POL_MAX_PARAMS) {
                *why = "too many parameters";
                goto fail;
            }
            names = pc_realloc(names, (nn + 1) * sizeof(*names));
            names[nn++] = pc_strndup(sql + i + 1, pl - 1);
            pc_buf_addc(&b, '?');
            i += pl;
            continue;
        }
        pc_buf_addc(&b, c);
        i++;
    }
    *names_out = names;
    *nnames_out = nn;
    pc_buf_cstr(&b);
    return b.p;
fail:
    for (size_t k = 0; k < nn; k++)
        free(names[k]);
    free(names);
    pc_buf_free(&b);
    return NULL;
}
