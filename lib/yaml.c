/*
 * portcullis: YAML tree with marks, built on libyaml's event API.
 */
#include "yaml.h"
#include "base.h"
#include "strset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YT_MAX_DEPTH 64

static const char *yt_process_env(const char *name)
{
    return getenv(name);
}

static void yt_node_free(struct yt_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            yt_node_free(n->keys[i]);
        yt_node_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->str);
    free(n);
}

void yt_free(struct yt_doc *doc)
{
    if (doc == NULL)
        return;
    yt_node_free(doc->root);
    free(doc->file);
    free(doc);
}

static void yt_append(struct yt_node *parent, struct yt_node *key, struct yt_node *item)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 8;
        parent->items = pc_realloc(parent->items, parent->cap * sizeof(*parent->items));
        if (parent->type == YT_MAP)
            parent->keys = pc_realloc(parent->keys, parent->cap * sizeof(*parent->keys));
    }
    if (parent->type == YT_MAP)
        parent->keys[parent->n] = key;
    parent->items[parent->n++] = item;
}

char *yt_expand(const char *in, size_t len, yt_getenv_fn getenv_fn,
                size_t *outlen, char *err, size_t errlen)
{
    struct pc_buf b = {0};
    size_t i = 0;
    while (i < len) {
        if (in[i] == '$' && i + 2 < len && in[i + 1] == '$' && in[i + 2] == '{') {
            pc_buf_add(&b, "${", 2);
            i += 3;
            continue;
        }
        if (in[i] != '$' || i + 1 >= len || in[i + 1] != '{') {
            pc_buf_addc(&b, in[i++]);
            continue;
        }
        size_t start = i + 2, j = start;
        while (j < len && in[j] != '}')
            j++;
        if (j >= len) {
            snprintf(err, errlen, "unterminated ${ in value");
            goto fail;
        }
        /* name[:-default] */
        size_t name_end = start;
        while (name_end < j && (in[name_end] == '_' ||
                                (in[name_end] >= 'A' && in[name_end] <= 'Z') ||
                                (in[name_end] >= 'a' && in[name_end] <= 'z') ||
                                (name_end > start && in[name_end] >= '0' && in[name_end] <= '9')))
            name_end++;
        if (name_end == start) {
            snprintf(err, errlen, "invalid variable name in ${...}");
            goto fail;
        }
        int has_default = 0;
        if (name_end < j) {
            if (j - name_end >= 2 && in[name_end] == ':' && in[name_end + 1] == '-') {
                has_default = 1;
            } else {
                snprintf(err, errlen, "invalid ${...}: expected ${NAME} or ${NAME:-default}");
                goto fail;
            }
        }
        char name[256];
        if (name_end - start >= sizeof(name)) {
            snprintf(err, errlen, "variable name too long");
            goto fail;
        }
        memcpy(name, in + start, name_end - start);
        name[name_end - start] = '\0';
        const char *val = getenv_fn(name);
        if (val != NULL && (!has_default || val[0] != '\0')) {
            pc_buf_adds(&b, val);
        } else if (has_default) {
            pc_buf_add(&b, in + name_end + 2, j - name_end - 2);
        } else {
            snprintf(err, errlen, "environment variable %s is not set", name);
            goto fail;
        }
        i = j + 1;
    }
    pc_buf_cstr(&b);
    *outlen = b.len;
    return b.p;
fail:
    pc_buf_free(&b);
    return NULL;
}

/* A mapping's keys are compared one by one up to this many; beyond, through
 * a set (a data file's mapping may hold 100,000 keys). */
#define YT_DUP_LINEAR 16

/* Is key one of map's keys? set holds them once map has YT_DUP_LINEAR. */
static int yt_key_dup(const struct yt_node *map, struct pc_strset *set, const struct yt_node *key)
{
    if (map->n < YT_DUP_LINEAR) {
        for (size_t i = 0; i < map->n; i++)
            if (map->keys[i]->len == key->len && memcmp(map->keys[i]->str, key->str, key->len) == 0)
                return 1;
        return 0;
    }
    if (set->n == 0)
        for (size_t i = 0; i < map->n; i++)
            pc_strset_add(set, map->keys[i]->str, map->keys[i]->len, i, NULL);
    return pc_strset_add(set, key->str, key->len, map->n, NULL);
}

/* 1-based line and column (in bytes) of a byte offset in the input. */
static void yt_offset_mark(const char *text, size_t text_len, FILE *fp, size_t offset,
                           size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    if (fp != NULL && fseek(fp, 0, SEEK_SET) != 0)
        return;
    for (size_t i = 0; i < offset; i++) {
        int c;
        if (text != NULL) {
            if (i >= text_len)
                break;
            c = (unsigned char)text[i];
        } else if ((c = getc(fp)) == EOF) {
            break;
        }
        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

struct yt_doc *yt_load(const char *file, const char *text, size_t text_len,
                       yt_getenv_fn getenv_fn, char *err, size_t errlen)
{
    return yt_load_opts(file, text, text_len, getenv_fn, 0, err, errlen);
}

struct yt_doc *yt_load_opts(const char *file, const char *text, size_t text_len, yt_getenv_fn getenv_fn,
                            unsigned opts, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    FILE *fp = NULL;
    struct yt_doc *doc = NULL;
    struct yt_node *stack[YT_MAX_DEPTH];
    struct yt_node *pending_key[YT_MAX_DEPTH]; /* key waiting for its value */
    struct pc_strset keyset[YT_MAX_DEPTH] = {{0}}; /* a large mapping's keys, by depth */
    int depth = 0, done = 0, docs = 0;
    int parser_ok = 0;

    if (getenv_fn == NULL)
        getenv_fn = yt_process_env;
    err[0] = '\0';

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise YAML parser", file);
        return NULL;
    }
    parser_ok = 1;
    if (text != NULL) {
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, text_len);
    } else {
        fp = fopen(file, "rb");
        if (fp == NULL) {
            snprintf(err, errlen, "%s: %s", file, strerror(errno));
            goto fail;
        }
        yaml_parser_set_input_file(&parser, fp);
    }

    doc = pc_calloc(1, sizeof(*doc));
    doc->file = pc_strdup(file);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_READER_ERROR) {
                /* The reader reports a byte offset, not a mark. */
                size_t eline, ecol;
                char val[16] = "";
                yt_offset_mark(text, text_len, fp, parser.problem_offset, &eline, &ecol);
                if (parser.problem_value >= 0)
                    snprintf(val, sizeof(val), " (0x%X)", (unsigned)parser.problem_value);
                snprintf(err, errlen, "%s:%zu:%zu: %s%s", file, eline, ecol,
                         parser.problem ? parser.problem : "invalid input", val);
                goto fail;
            }
            snprintf(err, errlen, "%s:%zu:%zu: %s", file,
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "YAML syntax error");
            goto fail;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct yt_node *node = NULL;
        const unsigned char *anchor = NULL, *tag = NULL;

        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                snprintf(err, errlen, "%s:%d:%d: only one YAML document is allowed", file, line, col);
                goto fail_ev;
            }
            break;
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen, "%s:%d:%d: YAML aliases are not allowed", file, line, col);
            goto fail_ev;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            tag = ev.data.scalar.tag;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            tag = ev.data.sequence_start.tag;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            tag = ev.data.mapping_start.tag;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            node = stack[depth];
            if (node->type == YT_MAP && pending_key[depth] != NULL) {
                /* cannot happen with a well-formed event stream */
                snprintf(err, errlen, "%s:%d:%d: mapping key without a value", file, line, col);
                goto fail_ev;
            }
            if (depth == 0) {
                doc->root = node;
            } else {
                goto attach;
            }
            node = NULL;
            break;
        default:
            break;
        }
        if (anchor != NULL) {
            snprintf(err, errlen, "%s:%d:%d: YAML anchors are not allowed", file, line, col);
            goto fail_ev;
        }
        if (tag != NULL) {
            snprintf(err, errlen, "%s:%d:%d: YAML tags are not allowed", file, line, col);
            goto fail_ev;
        }

        if (ev.type == YAML_SCALAR_EVENT) {
            node = pc_calloc(1, sizeof(*node));
            node->type = YT_SCALAR;
            node->line = line;
            node->col = col;
            node->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            /* Keys are not expanded; values are (unless YT_NO_EXPAND). */
            int is_key = depth > 0 && stack[depth - 1]->type == YT_MAP && pending_key[depth - 1] == NULL;
            if (is_key || (opts & YT_NO_EXPAND)) {
                node->str = pc_strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                node->len = ev.data.scalar.length;
            } else {
                char xerr[256];
                node->str = yt_expand((const char *)ev.data.scalar.value, ev.data.scalar.length,
                                      getenv_fn, &node->len, xerr, sizeof(xerr));
                if (node->str == NULL) {
                    snprintf(err, errlen, "%s:%d:%d: %s", file, line, col, xerr);
                    yt_node_free(node);
                    goto fail_ev;
                }
            }
            /* C strings downstream: "a\0b" would silently read as "a" (and a
             * key "listen\0x" as a second, undetected "listen"). */
            if (memchr(node->str, '\0', node->len) != NULL) {
                snprintf(err, errlen, "%s:%d:%d: NUL character in a YAML scalar is not allowed", file, line, col);
                yt_node_free(node);
                goto fail_ev;
            }
            if (depth == 0) {
                doc->root = node;
                node = NULL;
            } else {
                goto attach;
            }
        } else if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (depth >= YT_MAX_DEPTH) {
                snprintf(err, errlen, "%s:%d:%d: nesting too deep", file, line, col);
                goto fail_ev;
            }
            node = pc_calloc(1, sizeof(*node));
            node->type = ev.type == YAML_MAPPING_START_EVENT ? YT_MAP : YT_SEQ;
            node->line = line;
            node->col = col;
            if (depth > 0) {
                struct yt_node *parent = stack[depth - 1];
                if (parent->type == YT_MAP && pending_key[depth - 1] == NULL) {
                    snprintf(err, errlen, "%s:%d:%d: mapping keys must be plain scalars", file, line, col);
                    yt_node_free(node);
                    goto fail_ev;
                }
            }
            pending_key[depth] = NULL;
            pc_strset_clear(&keyset[depth]);
            stack[depth++] = node;
        }
        yaml_event_delete(&ev);
        continue;

    attach:
        /* Attach a completed node (scalar or just-closed collection). */
        {
            struct yt_node *parent = stack[depth - 1];
            if (parent->type == YT_SEQ) {
                yt_append(parent, NULL, node);
            } else if (pending_key[depth - 1] == NULL) {
                /* node is a key, and a scalar: a collection in key position
                 * was refused when it started */
                if (yt_key_dup(parent, &keyset[depth - 1], node)) {
                    /* quoted on the message's one line; cut when long */
                    struct pc_buf kb = {0};
                    pc_buf_add_printable(&kb, node->str, PC_MIN(node->len, (size_t)160));
                    snprintf(err, errlen, "%s:%d:%d: duplicate key '%s'", file, node->line, node->col,
                             pc_buf_cstr(&kb));
                    pc_buf_free(&kb);
                    yt_node_free(node);
                    goto fail_ev;
                }
                pending_key[depth - 1] = node;
            } else {
                yt_append(parent, pending_key[depth - 1], node);
                pending_key[depth - 1] = NULL;
            }
        }
        yaml_event_delete(&ev);
    }

    if (doc->root == NULL && !(opts & YT_EMPTY_OK)) {
        snprintf(err, errlen, "%s:1:1: the configuration is empty", file);
        goto fail;
    }
    yaml_parser_delete(&parser);
    if (fp)
        fclose(fp);
    for (int i = 0; i < YT_MAX_DEPTH; i++)
        pc_strset_free(&keyset[i]);
    return doc;

fail_ev:
    yaml_event_delete(&ev);
fail:
    /* Nodes on the stack, and keys waiting for their values, are not yet
     * attached to a parent: each is freed on its own. */
    for (int i = 0; i < depth; i++) {
        if (stack[i]->type == YT_MAP)
            yt_node_free(pending_key[i]);
        yt_node_free(stack[i]);
    }
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (fp)
        fclose(fp);
    for (int i = 0; i < YT_MAX_DEPTH; i++)
        pc_strset_free(&keyset[i]);
    yt_free(doc);
    return NULL;
}

struct yt_node *yt_get(const struct yt_node *map, const char *key)
{
    if (map == NULL || map->type != YT_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0)
            return map->items[i];
    return NULL;
}

int yt_is_null(const struct yt_node *n)
{
    if (n->type != YT_SCALAR || n->quoted)
        return 0;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0;
}
