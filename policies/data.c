/*
 * portcullis: operator data (see data.h).
 */
#include "data.h"
#include "gen.h"
#include "policy.h"
#include "../lib/base.h"
#include "../lib/cfg.h"
#include "../lib/strset.h"
#include "../lib/yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#define PD_MAX_SETS 16
#define PD_MAX_TOPS 16
#define PD_MAX_FIELDS 16
#define PD_MAX_ENTRIES 100000
#define PD_MAX_STRING 1024
#define PD_SHOWN 160 /* bytes of a value quoted in a message */

/* printf arguments for a value of the file in a message: cut when long */
#define PD_SHOW(n) (int)((n)->len > PD_SHOWN ? PD_SHOWN : (n)->len), (n)->str, (n)->len > PD_SHOWN ? "..." : ""

static const char *const pd_dialects[2] = {"postgresql", "mysql"};
static const char *const pd_type_names[] = {"uuid", "email", "string", "int", "bool"};

/* ---- names and types ---- */

static int pd_ident(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(s);
}

/* One type name into its bit; 0 when unknown. */
static unsigned pd_type_bit(const char *s)
{
    for (size_t i = 0; i < PC_ARRAY_LEN(pd_type_names); i++)
        if (strcmp(s, pd_type_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* "a UUID or an email address" */
static void pd_types_text(struct pc_buf *b, unsigned types)
{
    static const char *const what[] = {"a UUID", "an email address", "a string", "an integer", "true or false"};
    size_t idx[PC_ARRAY_LEN(what)], n = 0;
    for (size_t i = 0; i < PC_ARRAY_LEN(what); i++)
        if (types & (1u << i))
            idx[n++] = i;
    for (size_t k = 0; k < n; k++)
        pc_buf_addf(b, "%s%s", k == 0 ? "" : k + 1 == n ? " or " : ", ", what[idx[k]]);
}

/* JSON string: valid UTF-8 passes (libyaml read it), the rest escaped. */
static void pd_json_str(struct pc_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    pc_buf_addc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            pc_buf_addc(b, '\\');
            pc_buf_addc(b, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pc_buf_add(b, e, 6);
        } else {
            pc_buf_addc(b, (char)c);
        }
    }
    pc_buf_addc(b, '"');
}

static int pd_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int pd_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!pd_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int pd_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * An email address as Dify's libs/helper.py email() accepts one, in ASCII:
 *   ^[\w.!#$%&'*+\-/=?^_`{|}~]+@([\w-]+\.)+[\w-]{2,}$
 * at most 255 bytes (accounts.email is VARCHAR(255)).
 */
static int pd_is_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || at == s || len > 255)
        return 0;
    for (const char *p = s; p < at; p++)
        if (!pd_word((unsigned char)*p) && strchr(".!#$%&'*+-/=?^`{|}~", *p) == NULL)
            return 0;
    const char *d = at + 1, *end = s + len;
    size_t labels = 0, last = 0;
    while (d < end) {
        const char *e = d;
        while (e < end && *e != '.')
            e++;
        if (e == d)
            return 0;
        for (const char *p = d; p < e; p++)
            if (!pd_word((unsigned char)*p) && *p != '-')
                return 0;
        labels++;
        last = (size_t)(e - d);
        if (e == end)
            break;
        d = e + 1;
        if (d == end)
            return 0; /* a trailing dot */
    }
    return labels >= 2 && last >= 2;
}

static int pd_is_int(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    if (i == len || len > 19)
        return 0;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return !(len > 1 && s[0] == '0') && !(len > 2 && s[0] == '-' && s[1] == '0') && strcmp(s, "-0") != 0;
}

/* A scalar of one of types, as JSON; NULL with an error. */
static char *pd_value(struct cfg_ctx *ctx, const struct yt_node *n, unsigned types, const char *what)
{
    struct pc_buf b = {0};
    if (n->type != YT_SCALAR) {
        pc_buf_addf(&b, "%s must be ", what);
        pd_types_text(&b, types);
        cfg_error(ctx, n, "%s", pc_buf_cstr(&b));
        pc_buf_free(&b);
        return NULL;
    }
    if ((types & PD_UUID) && pd_is_uuid(n->str, n->len)) {
        char u[37];
        for (size_t i = 0; i < 36; i++)
            u[i] = (char)(n->str[i] >= 'A' && n->str[i] <= 'F' ? n->str[i] + 32 : n->str[i]);
        u[36] = '\0';
        pd_json_str(&b, u, 36); /* lower case, as Werkzeug's <uuid> and Dify's ids */
    } else if ((types & PD_EMAIL) && pd_is_email(n->str, n->len)) {
        pd_json_str(&b, n->str, n->len); /* as written: policies compare as the application does */
    } else if ((types & PD_BOOL) && !n->quoted && (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)) {
        pc_buf_adds(&b, n->str);
    } else if ((types & PD_INT) && !n->quoted && pd_is_int(n->str, n->len)) {
        pc_buf_add(&b, n->str, n->len);
    } else if ((types & PD_STRING) && n->len > 0 && n->len <= PD_MAX_STRING && !yt_is_null(n)) {
        pd_json_str(&b, n->str, n->len);
    } else {
        struct pc_buf m = {0};
        int ascii = 1;
        for (size_t i = 0; i < n->len; i++)
            ascii &= (unsigned char)n->str[i] < 0x80;
        pd_types_text(&m, types);
        cfg_error(ctx, n, "'%.*s%s' is not %s%s", PD_SHOW(n), pc_buf_cstr(&m),
                  (types & PD_EMAIL) && !ascii && memchr(n->str, '@', n->len)
                      ? " (addresses are matched in ASCII only: name that account by its id)" : "");
        pc_buf_free(&m);
        pc_buf_free(&b);
        return NULL;
    }
    return (char *)pc_buf_cstr(&b);
}

/* ---- the declaration ---- */

static void pd_types_parse(struct cfg_ctx *ctx, const struct yt_node *n, unsigned *types, int allow_bool)
{
    const struct yt_node *const *items = (const struct yt_node *const *)&n;
    size_t k = 1;
    if (n->type == YT_SEQ) {
        items = (const struct yt_node *const *)n->items;
        k = n->n;
        if (k == 0)
            cfg_error(ctx, n, "a list type names its items' types: [uuid], [email, uuid], ...");
    }
    for (size_t i = 0; i < k; i++) {
        unsigned bit = items[i]->type == YT_SCALAR ? pd_type_bit(items[i]->str) : 0;
        if (bit == 0)
            cfg_error(ctx, items[i], "a data type is one of uuid, email, string, int, bool");
        else if (bit == PD_BOOL && (!allow_bool || n->type == YT_SEQ))
            cfg_error(ctx, items[i], "bool is a field's type, not a key's or a list item's");
        else if (bit == PD_BOOL && k > 1)
            cfg_error(ctx, items[i], "bool does not mix with other types");
        *types |= bit;
    }
}

static void pd_known_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_dtop *t)
{
    t->known_line = n->line;
    t->known_col = n->col;
    if (n->type == YT_SCALAR) {
        for (int d = 0; d < 2; d++)
            t->known_text[d] = pc_strdup(n->str);
        return;
    }
    if (cfg_expect(ctx, n, YT_MAP, "known (SQL, or a mapping of postgresql: and mysql: texts)") != 0)
        return;
    for (size_t i = 0; i < n->n; i++) {
        int d;
        for (d = 0; d < 2; d++)
            if (strcmp(n->keys[i]->str, pd_dialects[d]) == 0)
                break;
        if (d == 2) {
            cfg_unknown_key(ctx, n->keys[i], "known", pd_dialects, 2);
            continue;
        }
        if (cfg_expect(ctx, n->items[i], YT_SCALAR, "known's SQL") == 0)
            t->known_text[d] = pc_strdup(n->items[i]->str);
    }
}

static void pd_top_parse(struct cfg_ctx *ctx, const struct yt_node *k, const struct yt_node *v, struct pol_dtop *t)
{
    static const char *const keys[] = {"keys", "fields", "known"};
    t->name = pc_strdup(k->str);
    if (!pd_ident(k->str))
        cfg_error(ctx, k, "a data key's name is an identifier ([A-Za-z_][A-Za-z0-9_]*), found '%.*s%s'", PD_SHOW(k));
    if (v->type == YT_SEQ) {
        /* a top-level list of values: [uuid], [email, uuid] */
        pd_types_parse(ctx, v, &t->types, 0);
        return;
    }
    if (v->type != YT_MAP) {
        cfg_error(ctx, v, "data key '%s' is a list of values ([uuid], ...) or a mapping of entries (keys:, fields:)",
                  t->name);
        return;
    }
    t->is_map = 1;
    const struct yt_node *kt = NULL, *fields = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const struct yt_node *kk = v->keys[i], *vv = v->items[i];
        if (strcmp(kk->str, "keys") == 0)
            kt = vv;
        else if (strcmp(kk->str, "fields") == 0)
            fields = vv;
        else if (strcmp(kk->str, "known") == 0)
            pd_known_parse(ctx, vv, t);
        else
            cfg_unknown_key(ctx, kk, "a data shape entry", keys, PC_ARRAY_LEN(keys));
    }
    if (kt == NULL) {
        cfg_error(ctx, v, "data key '%s' needs keys: (uuid, email, string or int)", t->name);
    } else if (cfg_expect(ctx, kt, YT_SCALAR, "keys") == 0) {
        pd_types_parse(ctx, kt, &t->types, 0);
    }
    if (fields == NULL || yt_is_null(fields))
        return;
    if (cfg_expect(ctx, fields, YT_MAP, "fields") != 0)
        return;
    if (fields->n > PD_MAX_FIELDS) {
        cfg_error(ctx, fields, "more than %d fields", PD_MAX_FIELDS);
        return;
    }
    t->fields = pc_calloc(fields->n ? fields->n : 1, sizeof(*t->fields));
    for (size_t i = 0; i < fields->n; i++) {
        struct pol_dfield *f = &t->fields[t->nfields++];
        f->name = pc_strdup(fields->keys[i]->str);
        if (!pd_ident(f->name))
            cfg_error(ctx, fields->keys[i], "a field's name is an identifier ([A-Za-z_][A-Za-z0-9_]*), found '%s'",
                      f->name);
        f->list = fields->items[i]->type == YT_SEQ;
        pd_types_parse(ctx, fields->items[i], &f->types, 1);
    }
}

static void pd_set_decl(struct cfg_ctx *ctx, const struct yt_node *k, const struct yt_node *v, struct pol_dataset *s,
                        const struct yt_node **shape, const struct yt_node **file)
{
    static const char *const keys[] = {"file", "shape"};
    s->name = pc_strdup(k->str);
    s->line = k->line;
    s->col = k->col;
    if (!pd_ident(k->str))
        cfg_error(ctx, k, "a data set's name is an identifier ([A-Za-z_][A-Za-z0-9_]*), found '%.*s%s'", PD_SHOW(k));
    if (cfg_expect(ctx, v, YT_MAP, "a data set (file: and shape:)") != 0)
        return;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->keys[i]->str, "file") == 0)
            *file = v->items[i];
        else if (strcmp(v->keys[i]->str, "shape") == 0)
            *shape = v->items[i];
        else
            cfg_unknown_key(ctx, v->keys[i], "a data set", keys, PC_ARRAY_LEN(keys));
    }
    if (*shape == NULL) {
        cfg_error(ctx, v, "data set '%s' needs shape: (what its file may hold)", s->name);
    } else if (cfg_expect(ctx, *shape, YT_MAP, "shape") == 0) {
        if ((*shape)->n == 0 || (*shape)->n > PD_MAX_TOPS)
            cfg_error(ctx, *shape, "shape names 1 to %d keys", PD_MAX_TOPS);
        else {
            s->tops = pc_calloc((*shape)->n, sizeof(*s->tops));
            for (size_t i = 0; i < (*shape)->n; i++)
                pd_top_parse(ctx, (*shape)->keys[i], (*shape)->items[i], &s->tops[s->ntops++]);
        }
    }
    if (*file != NULL && !yt_is_null(*file) && cfg_expect(ctx, *file, YT_SCALAR, "file") == 0 &&
        (*file)->len > 0)
        s->file = pc_strdup((*file)->str);
}

/* ---- the file ---- */

static void pd_entry_free(const struct pol_dtop *t, struct pol_dentry *e)
{
    free(e->key);
    for (size_t f = 0; e->vals != NULL && f < t->nfields; f++) {
        for (size_t i = 0; e->vals[f] != NULL && e->vals[f][i] != NULL; i++)
            free(e->vals[f][i]);
        free(e->vals[f]);
    }
    free(e->vals);
}

static void pd_entries_free(struct pol_dtop *t)
{
    for (size_t i = 0; i < t->nentries; i++)
        pd_entry_free(t, &t->entries[i]);
    free(t->entries);
    t->entries = NULL;
    t->nentries = 0;
}

/* A field's value: a list of items, or one value; JSON, NULL-terminated. */
static char **pd_field_values(struct cfg_ctx *ctx, const struct pol_dfield *f, const struct yt_node *v,
                              const char *top, const char *key)
{
    char what[160];
    snprintf(what, sizeof(what), "%s.%s", top, f->name);
    if (!f->list) {
        char *one = pd_value(ctx, v, f->types, what);
        if (one == NULL)
            return NULL;
        char **out = pc_calloc(2, sizeof(*out));
        out[0] = one;
        return out;
    }
    if (v->type != YT_SEQ) {
        if (!yt_is_null(v)) {
            struct pc_buf m = {0};
            pd_types_text(&m, f->types);
            cfg_error(ctx, v, "%s must be a list (of %s)", what, pc_buf_cstr(&m));
            pc_buf_free(&m);
            return NULL;
        }
        return pc_calloc(1, sizeof(char *)); /* members: (null): none */
    }
    if (v->n > PD_MAX_ENTRIES) {
        cfg_error(ctx, v, "%s: more than %d values", what, PD_MAX_ENTRIES);
        return NULL;
    }
    char **out = pc_calloc(v->n + 1, sizeof(*out));
    struct pc_strset seen = {0};
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        char *x = pd_value(ctx, v->items[i], f->types, what);
        if (x == NULL)
            continue;
        if (pc_strset_add(&seen, x, strlen(x), n, NULL)) {
            cfg_warn(ctx, v->items[i], "%s of %.*s%s lists '%.*s%s' twice", what, (int)PC_MIN(strlen(key), PD_SHOWN),
                     key, strlen(key) > PD_SHOWN ? "..." : "", PD_SHOW(v->items[i]));
            free(x);
            continue;
        }
        out[n++] = x;
    }
    pc_strset_free(&seen);
    return out;
}

static void pd_map_parse(struct cfg_ctx *ctx, struct pol_dtop *t, const struct yt_node *n)
{
    if (yt_is_null(n))
        return;
    if (cfg_expect(ctx, n, YT_MAP, t->name) != 0)
        return;
    if (n->n > PD_MAX_ENTRIES) {
        cfg_error(ctx, n, "%s: more than %d entries", t->name, PD_MAX_ENTRIES);
        return;
    }
    const char **fnames = pc_calloc(t->nfields ? t->nfields : 1, sizeof(*fnames));
    for (size_t f = 0; f < t->nfields; f++)
        fnames[f] = t->fields[f].name;
    t->entries = pc_calloc(n->n ? n->n : 1, sizeof(*t->entries));
    struct pc_strset seen = {0};
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        char what[96];
        snprintf(what, sizeof(what), "a key of %s", t->name);
        char *key = pd_value(ctx, k, t->types, what);
        if (key == NULL)
            continue;
        size_t j;
        if (pc_strset_add(&seen, key, strlen(key), t->nentries, &j)) {
            cfg_error(ctx, k, "duplicate %s entry '%.*s%s' (first at line %d)", t->name, PD_SHOW(k),
                      t->entries[j].line);
            free(key);
            continue;
        }
        struct pol_dentry *e = &t->entries[t->nentries++];
        e->key = key;
        e->line = k->line;
        e->col = k->col;
        e->vals = pc_calloc(t->nfields ? t->nfields : 1, sizeof(*e->vals));
        if (yt_is_null(v))
            continue;
        if (v->type != YT_MAP) {
            cfg_error(ctx, v, "an entry of %s is a mapping of %s%s", t->name, t->nfields ? "" : "nothing",
                      t->nfields ? "fields" : "");
            continue;
        }
        for (size_t m = 0; m < v->n; m++) {
            size_t f;
            for (f = 0; f < t->nfields; f++)
                if (strcmp(v->keys[m]->str, t->fields[f].name) == 0)
                    break;
            if (f == t->nfields) {
                snprintf(what, sizeof(what), "an entry of %s", t->name);
                cfg_unknown_key(ctx, v->keys[m], what, fnames, t->nfields);
                continue;
            }
            e->vals[f] = pd_field_values(ctx, &t->fields[f], v->items[m], t->name, k->str);
        }
    }
    pc_strset_free(&seen);
    free(fnames);
}

static void pd_list_parse(struct cfg_ctx *ctx, struct pol_dtop *t, const struct yt_node *n)
{
    if (yt_is_null(n))
        return;
    if (cfg_expect(ctx, n, YT_SEQ, t->name) != 0)
        return;
    if (n->n > PD_MAX_ENTRIES) {
        cfg_error(ctx, n, "%s: more than %d values", t->name, PD_MAX_ENTRIES);
        return;
    }
    t->entries = pc_calloc(n->n ? n->n : 1, sizeof(*t->entries));
    struct pc_strset seen = {0};
    for (size_t i = 0; i < n->n; i++) {
        char *v = pd_value(ctx, n->items[i], t->types, t->name);
        if (v == NULL)
            continue;
        if (pc_strset_add(&seen, v, strlen(v), t->nentries, NULL)) {
            cfg_warn(ctx, n->items[i], "%s lists '%.*s%s' twice", t->name, PD_SHOW(n->items[i]));
            free(v);
            continue;
        }
        struct pol_dentry *e = &t->entries[t->nentries++];
        e->key = v;
        e->line = n->items[i]->line;
        e->col = n->items[i]->col;
    }
    pc_strset_free(&seen);
}

/* Read path into s's tops (declared), reporting in that file's name; 0, or
 * -1 when it has errors (appended to errors; warnings to warnings). */
static int pd_load_file(const struct pol_dataset *decl, const char *path, const char *named_at,
                        struct pol_dtop *tops, struct pc_buf *errors, struct pc_buf *warnings)
{
    char err[1024];
    struct cfg_ctx ctx = {.file = path};
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        /* reported where the file is named */
        pc_buf_addf(errors, "%s: data set '%s': cannot read %s: %s\n", named_at, decl->name, path, strerror(errno));
        return -1;
    }
    fclose(fp);
    struct yt_doc *doc = yt_load_opts(path, NULL, 0, NULL, YT_NO_EXPAND | YT_EMPTY_OK, err, sizeof(err));
    if (doc == NULL) {
        pc_buf_addf(errors, "%s (data set '%s')\n", err, decl->name);
        return -1;
    }
    const struct yt_node *root = doc->root;
    const char **names = pc_calloc(decl->ntops ? decl->ntops : 1, sizeof(*names));
    for (size_t i = 0; i < decl->ntops; i++) {
        names[i] = decl->tops[i].name;
        tops[i].line = tops[i].col = 1;
    }
    if (root != NULL && !yt_is_null(root) && cfg_expect(&ctx, root, YT_MAP, "a data file") == 0) {
        for (size_t i = 0; i < root->n; i++) {
            const struct yt_node *k = root->keys[i];
            size_t t;
            for (t = 0; t < decl->ntops; t++)
                if (strcmp(k->str, decl->tops[t].name) == 0)
                    break;
            if (t == decl->ntops) {
                char where[96];
                snprintf(where, sizeof(where), "data set '%s'", decl->name);
                cfg_unknown_key(&ctx, k, where, names, decl->ntops);
                continue;
            }
            tops[t].line = k->line;
            tops[t].col = k->col;
            if (tops[t].is_map)
                pd_map_parse(&ctx, &tops[t], root->items[i]);
            else
                pd_list_parse(&ctx, &tops[t], root->items[i]);
        }
    }
    free(names);
    yt_free(doc);
    if (ctx.warnings.len > 0)
        pc_buf_add(warnings, ctx.warnings.p, ctx.warnings.len);
    int rc = ctx.nerrors > 0 ? -1 : 0;
    if (rc != 0)
        pc_buf_add(errors, ctx.errors.p, ctx.errors.len);
    pc_buf_free(&ctx.errors);
    pc_buf_free(&ctx.warnings);
    return rc;
}

/* ---- the section ---- */

static void pd_top_free(struct pol_dtop *t)
{
    pd_entries_free(t);
    free(t->name);
    for (size_t i = 0; i < t->nfields; i++)
        free(t->fields[i].name);
    free(t->fields);
    for (int d = 0; d < 2; d++)
        free(t->known_text[d]);
    free(t->known_sql);
}

static void pd_add_slot(struct pol_data *d, size_t set, size_t top, int field)
{
    const struct pol_dataset *s = &d->sets[set];
    d->slots = pc_realloc(d->slots, (d->nslots + 1) * sizeof(*d->slots));
    struct pol_dslot *sl = &d->slots[d->nslots++];
    sl->set = set;
    sl->top = top;
    sl->field = field;
    if (field < 0)
        sl->name = pc_sprintf("%s.%s", s->name, s->tops[top].name);
    else
        sl->name = pc_sprintf("%s.%s.%s", s->name, s->tops[top].name, s->tops[top].fields[field].name);
}

/* A copy of a declaration's tops, without entries (to load a file into). */
static struct pol_dtop *pd_tops_shell(const struct pol_dataset *s)
{
    struct pol_dtop *t = pc_calloc(s->ntops ? s->ntops : 1, sizeof(*t));
    for (size_t i = 0; i < s->ntops; i++) {
        t[i] = s->tops[i];
        t[i].entries = NULL;
        t[i].nentries = 0;
    }
    return t;
}

void pol_data_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_gen *gen)
{
    struct pol_data *d = pc_calloc(1, sizeof(*d));
    pol_data_free(gen->data);
    gen->data = d;
    if (yt_is_null(n) || cfg_expect(ctx, n, YT_MAP, "data") != 0)
        return;
    if (n->n > PD_MAX_SETS) {
        cfg_error(ctx, n, "more than %d data sets", PD_MAX_SETS);
        return;
    }
    d->sets = pc_calloc(n->n ? n->n : 1, sizeof(*d->sets));
    for (size_t i = 0; i < n->n; i++) {
        struct pol_dataset *s = &d->sets[d->nsets++];
        const struct yt_node *shape = NULL, *file = NULL;
        int before = ctx->nerrors;
        pd_set_decl(ctx, n->keys[i], n->items[i], s, &shape, &file);
        for (size_t t = 0; t < s->ntops; t++) {
            pd_add_slot(d, d->nsets - 1, t, -1);
            for (size_t f = 0; f < s->tops[t].nfields; f++)
                pd_add_slot(d, d->nsets - 1, t, (int)f);
        }
        if (s->file == NULL || ctx->nerrors > before)
            continue;
        /* the file's problems are reported in its own name */
        struct pol_dtop *tops = pd_tops_shell(s);
        char *at = pc_sprintf("%s:%d:%d", ctx->file, file->line, file->col);
        if (pd_load_file(s, s->file, at, tops, &ctx->errors, &ctx->warnings) != 0)
            ctx->nerrors++;
        free(at);
        for (size_t t = 0; t < s->ntops; t++) {
            s->tops[t].entries = tops[t].entries;
            s->tops[t].nentries = tops[t].nentries;
            s->tops[t].line = tops[t].line;
            s->tops[t].col = tops[t].col;
            d->nentries += tops[t].nentries;
        }
        free(tops);
    }
}

void pol_data_finish(struct cfg_ctx *ctx, struct pol_gen *gen)
{
    struct pol_data *d = gen->data;
    if (d == NULL)
        d = gen->data = pc_calloc(1, sizeof(*d));
    for (size_t i = 0; i < d->nsets; i++) {
        for (size_t t = 0; t < d->sets[i].ntops; t++) {
            struct pol_dtop *top = &d->sets[i].tops[t];
            const char *text = top->known_text[gen->db.dialect];
            struct yt_node at = {.type = YT_SCALAR, .line = top->known_line, .col = top->known_col};
            if (top->known_text[0] == NULL && top->known_text[1] == NULL)
                continue;
            if (!top->is_map) {
                cfg_error(ctx, &at, "known: is for a mapping of entries (keys: and fields:)");
                continue;
            }
            if (text == NULL) {
                cfg_error(ctx, &at, "data %s.%s: known: has no SQL for driver %s", d->sets[i].name, top->name,
                          pd_dialects[gen->db.dialect]);
                continue;
            }
            char **names = NULL;
            size_t nn = 0;
            const char *why = NULL;
            top->known_sql = gen->db.dialect == POL_DIALECT_MYSQL ? pol_rewrite_sql_mysql(text, &names, &nn, &why)
                                                                   : pol_rewrite_sql(text, &names, &nn, &why);
            if (top->known_sql == NULL) {
                cfg_error(ctx, &at, "data %s.%s: known: %s", d->sets[i].name, top->name, why);
                continue;
            }
            for (size_t k = 0; k < nn; k++) {
                if (strcmp(names[k], "keys") != 0)
                    cfg_error(ctx, &at, "data %s.%s: known: binds :%s; its one parameter is :keys", d->sets[i].name,
                              top->name, names[k]);
                free(names[k]);
            }
            free(names);
            top->known_nparams = nn;
            if (!gen->db.configured)
                cfg_error(ctx, &at, "data %s.%s: known: needs a database section", d->sets[i].name, top->name);
        }
    }
    d->full = pol_data_view_new(d, 0, -1, -1, -1);
    d->empty = pol_data_view_new(d, 1, -1, -1, -1);
}

void pol_data_view_free(struct pol_data_view *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++)
        free(v->value[i]);
    free(v->value);
    free(v->len);
    free(v->rows);
    free(v->digest);
    free(v);
}

void pol_data_free(struct pol_data *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nsets; i++) {
        for (size_t t = 0; t < d->sets[i].ntops; t++)
            pd_top_free(&d->sets[i].tops[t]);
        free(d->sets[i].tops);
        free(d->sets[i].name);
        free(d->sets[i].file);
    }
    free(d->sets);
    for (size_t i = 0; i < d->nslots; i++)
        free(d->slots[i].name);
    free(d->slots);
    pol_data_view_free(d->full);
    pol_data_view_free(d->empty);
    free(d);
}

int pol_data_slot(const struct pol_data *d, const char *name)
{
    for (size_t i = 0; d != NULL && i < d->nslots; i++)
        if (strcmp(d->slots[i].name, name) == 0)
            return (int)i;
    return -1;
}

long pol_data_find(const struct pol_data *d, const char *name)
{
    for (size_t i = 0; d != NULL && i < d->nsets; i++)
        if (strcmp(d->sets[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* ---- values ---- */

/* One slot's JSON from tops (a set's, or one loaded for a view), leaving
 * out entry skip (-1: none); returns the rows. */
static size_t pd_encode(struct pc_buf *b, const struct pol_dtop *t, int field, long skip)
{
    size_t rows = 0;
    pc_buf_addc(b, '[');
    for (size_t i = 0; i < t->nentries; i++) {
        const struct pol_dentry *e = &t->entries[i];
        if ((long)i == skip)
            continue;
        if (field < 0) {
            pc_buf_adds(b, rows++ ? "," : "");
            pc_buf_adds(b, e->key);
            continue;
        }
        char **vals = e->vals[field];
        for (size_t k = 0; vals != NULL && vals[k] != NULL; k++) {
            pc_buf_addf(b, "%s{\"key\":%s,\"value\":%s}", rows++ ? "," : "", e->key, vals[k]);
        }
    }
    pc_buf_addc(b, ']');
    return rows;
}

static struct pol_data_view *pd_view_alloc(size_t n)
{
    struct pol_data_view *v = pc_calloc(1, sizeof(*v));
    v->n = n;
    v->value = pc_calloc(n ? n : 1, sizeof(*v->value));
    v->len = pc_calloc(n ? n : 1, sizeof(*v->len));
    v->rows = pc_calloc(n ? n : 1, sizeof(*v->rows));
    v->digest = pc_calloc(n ? n : 1, sizeof(*v->digest));
    return v;
}

static void pd_view_set(struct pol_data_view *v, size_t slot, struct pc_buf *b, size_t rows)
{
    unsigned int dl = 32;
    v->len[slot] = (int)b->len;
    v->value[slot] = pc_strndup(b->p, b->len);
    v->rows[slot] = rows;
    EVP_Digest(b->p, b->len, v->digest[slot], &dl, EVP_sha256(), NULL);
}

struct pol_data_view *pol_data_view_new(const struct pol_data *d, int empty, long skip_set, long skip_top,
                                        long skip_entry)
{
    struct pol_data_view *v = pd_view_alloc(d->nslots);
    struct pc_buf b = {0};
    for (size_t i = 0; i < d->nslots; i++) {
        const struct pol_dslot *sl = &d->slots[i];
        const struct pol_dtop *t = &d->sets[sl->set].tops[sl->top];
        long skip = (long)sl->set == skip_set && (long)sl->top == skip_top ? skip_entry : -1;
        b.len = 0;
        size_t rows = 0;
        if (empty)
            pc_buf_adds(&b, "[]");
        else
            rows = pd_encode(&b, t, sl->field, skip);
        pd_view_set(v, i, &b, rows);
    }
    pc_buf_free(&b);
    return v;
}

struct pol_data_view *pol_data_view_files(const struct pol_data *d, const char *const *names,
                                          const char *const *paths, const char *const *named_at, size_t n,
                                          struct pc_buf *errors)
{
    struct pol_dtop **loaded = pc_calloc(d->nsets ? d->nsets : 1, sizeof(*loaded));
    struct pc_buf warnings = {0};
    struct pol_data_view *v = NULL;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        long s = pol_data_find(d, names[i]);
        if (s < 0) {
            pc_buf_addf(errors, "%s: the config declares no data set '%s'\n", named_at[i], names[i]);
            bad = 1;
            continue;
        }
        if (loaded[s] != NULL) {
            pc_buf_addf(errors, "%s: data set '%s' is named twice\n", named_at[i], names[i]);
            bad = 1;
            continue;
        }
        loaded[s] = pd_tops_shell(&d->sets[s]);
        if (paths[i] != NULL && paths[i][0] != '\0' &&
            pd_load_file(&d->sets[s], paths[i], named_at[i], loaded[s], errors, &warnings) != 0)
            bad = 1;
    }
    if (!bad) {
        struct pc_buf b = {0};
        v = pd_view_alloc(d->nslots);
        for (size_t i = 0; i < d->nslots; i++) {
            const struct pol_dslot *sl = &d->slots[i];
            const struct pol_dtop *t = loaded[sl->set] ? &loaded[sl->set][sl->top] : &d->sets[sl->set].tops[sl->top];
            b.len = 0;
            size_t rows = pd_encode(&b, t, sl->field, -1);
            pd_view_set(v, i, &b, rows);
        }
        pc_buf_free(&b);
    }
    pc_buf_free(&warnings);
    for (size_t s = 0; s < d->nsets; s++) {
        for (size_t t = 0; loaded[s] != NULL && t < d->sets[s].ntops; t++)
            pd_entries_free(&loaded[s][t]);
        free(loaded[s]);
    }
    free(loaded);
    return v;
}

/* ---- known ---- */

char *pol_data_keys_json(const struct pol_dtop *t)
{
    struct pc_buf b = {0};
    pd_encode(&b, t, -1, -1);
    return (char *)pc_buf_cstr(&b);
}

void pol_data_known_report(const struct pol_dataset *s, const struct pol_dtop *t, char *const *found,
                           size_t nfound, struct pc_buf *warn)
{
    /* the keys the database has, as the entries hold them (JSON strings) */
    struct pc_buf k = {0};
    size_t *at = pc_calloc(nfound ? nfound : 1, sizeof(*at));
    for (size_t j = 0; j < nfound; j++) {
        at[j] = k.len;
        pd_json_str(&k, found[j], strlen(found[j]));
        pc_buf_add(&k, "", 1);
    }
    struct pc_strset have = {0};
    for (size_t j = 0; j < nfound; j++)
        pc_strset_add(&have, k.p + at[j], strlen(k.p + at[j]), j, NULL);
    for (size_t i = 0; i < t->nentries; i++) {
        const struct pol_dentry *e = &t->entries[i];
        if (pc_strset_get(&have, e->key, strlen(e->key), NULL))
            continue;
        /* the key as written in the file, unquoted */
        pc_buf_addf(warn, "%s:%d:%d: warning: data set '%s': %s %.*s is not in the database (deleted?); its entry "
                          "decides nothing\n", s->file, e->line, e->col, s->name, t->name,
                    (int)(strlen(e->key) > 2 ? strlen(e->key) - 2 : 0), e->key + 1);
    }
    pc_strset_free(&have);
    free(at);
    pc_buf_free(&k);
}
