/*
 * portcullis: a YAML document as a tree that keeps source marks.
 *
 * Built from libyaml's event API. Anchors, aliases, tags, duplicate keys,
 * non-scalar keys and multi-document streams are refused: a config file is
 * plain data, and every value can be traced to file:line:col.
 */
#ifndef PC_YAML_H
#define PC_YAML_H

#include <stddef.h>

enum yt_type { YT_SCALAR, YT_MAP, YT_SEQ };

struct yt_node {
    enum yt_type type;
    int line, col;      /* 1-based */
    int quoted;         /* scalar written in quotes or as a block */
    char *str;          /* scalar value, NUL-terminated, env-expanded */
    size_t len;
    /* maps: keys[i] -> items[i]; sequences: items[i] */
    struct yt_node **keys;
    struct yt_node **items;
    size_t n, cap;
};

struct yt_doc {
    char *file;
    struct yt_node *root;
};

/*
 * Environment lookup used for ${VAR} expansion; tests swap it.
 * Returns NULL when unset.
 */
typedef const char *(*yt_getenv_fn)(const char *name);

/*
 * Parse a file (or, when text != NULL, that text attributed to file).
 * On error returns NULL and writes "file:line:col: message" into err.
 */
struct yt_doc *yt_load(const char *file, const char *text, size_t text_len,
                       yt_getenv_fn getenv_fn, char *err, size_t errlen);

/* The same, with options: YT_NO_EXPAND reads values literally (no ${VAR}:
 * data files an operator writes, not configs); YT_EMPTY_OK accepts an empty
 * document (doc->root is then NULL). */
#define YT_NO_EXPAND 1u
#define YT_EMPTY_OK 2u
struct yt_doc *yt_load_opts(const char *file, const char *text, size_t text_len, yt_getenv_fn getenv_fn,
                            unsigned opts, char *err, size_t errlen);
void yt_free(struct yt_doc *doc);

/* Lookup in a map; NULL when absent. */
struct yt_node *yt_get(const struct yt_node *map, const char *key);
/* Plain (unquoted) "null", "~" or empty. */
int yt_is_null(const struct yt_node *n);

/* Expand ${VAR} and ${VAR:-default}; "$${" is a literal "${". Returns a
 * malloc'd string or NULL with a message in err. Exposed for tests. */
char *yt_expand(const char *in, size_t len, yt_getenv_fn getenv_fn,
                size_t *outlen, char *err, size_t errlen);

#endif
