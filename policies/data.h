/*
 * portcullis: operator data. The `data` section names YAML files that an
 * operator owns (per-app access lists, say), each with a declared shape;
 * policies bind what a file holds as parameters, like captures and claims:
 *
 *   data:
 *     access:
 *       file: "${PORTCULLIS_DIFY_ACCESS:-}"   # empty: no file (every binding empty)
 *       shape:
 *         apps:                     # a top-level key of the file: entries, one per resource
 *           keys: uuid              # an entry's key: uuid, email, string or int
 *           fields:                 # what an entry may hold (each optional)
 *             members: [email, uuid]    # a list, each item one of these types
 *             admins: bool              # one value: bool, uuid, email, string or int
 *           known: SQL              # optional: which of :keys the database has
 *         blocked: [uuid]           # a top-level list of values
 *
 * A file is read when the config loads (start-up, -t, every reload) and
 * validated strictly: every problem is "file:line:col: message" in the
 * data file, and fails the load. Values are bound as JSON text, never
 * interpolated (PostgreSQL: json_to_recordset / json_array_elements_text,
 * MySQL: JSON_TABLE):
 *
 *   :data.access.apps.members   [{"key":"<app>","value":"<member>"}, ...]
 *                               one row per list item (or per value)
 *   :data.access.apps           ["<app>", ...]: the entries' keys
 *   :data.access.blocked        ["<value>", ...]
 *
 * Within a generation the data never changes (a reload reads the files
 * again into a new generation). A binding's value is chosen through a
 * view: the generation's own (what the files hold), the empty one (as if
 * no file were given: to tell whether the data decided a request), or one
 * built for explain and tests. Every bound value comes with the SHA-256 of
 * its bytes, which the decision cache key holds in its place.
 */
#ifndef PC_DATA_H
#define PC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

struct cfg_ctx;
struct yt_node;
struct pol_gen;

enum pol_dtype { PD_UUID = 1, PD_EMAIL = 2, PD_STRING = 4, PD_INT = 8, PD_BOOL = 16 };

struct pol_dfield {
    char *name;
    int list;                   /* a list of items; else one value */
    unsigned types;             /* enum pol_dtype bits */
};

/* One value of an entry's field, as JSON (a string quoted and escaped, a
 * number, true or false). */
struct pol_dentry {
    char *key;                  /* JSON: the normalised key (map), or the value (list) */
    int line, col;              /* in the data file */
    char ***vals;               /* per field: every item, JSON, NULL-terminated; NULL: absent */
};

struct pol_dtop {
    char *name;
    int is_map;                 /* entries with keys and fields; else a list of values */
    unsigned types;             /* map: the key's type; list: the items' types */
    struct pol_dfield *fields;
    size_t nfields;
    /* known: which keys the database has (map only); :keys is the only parameter */
    char *known_text[2];        /* as written, per dialect (enum pol_dialect) */
    int known_line, known_col;
    char *known_sql;            /* rewritten for the configured driver */
    size_t known_nparams;       /* times :keys is bound (MySQL: once per use) */
    /* what the file holds */
    struct pol_dentry *entries;
    size_t nentries;
    int line, col;              /* of the top-level key in the file (1:1 when absent) */
};

struct pol_dataset {
    char *name;
    int line, col;              /* in the config */
    char *file;                 /* NULL: no file */
    struct pol_dtop *tops;
    size_t ntops;
};

/* A bindable path: data.<set>.<top> or data.<set>.<top>.<field>. */
struct pol_dslot {
    char *name;                 /* without "data." */
    size_t set, top;
    int field;                  /* -1: the top itself (keys, or list values) */
};

/* A value per slot. */
struct pol_data_view {
    size_t n;
    char **value;               /* JSON text */
    int *len;
    size_t *rows;               /* elements of the JSON array */
    unsigned char (*digest)[32];
};

struct pol_data {
    struct pol_dataset *sets;
    size_t nsets;
    struct pol_dslot *slots;
    size_t nslots;
    struct pol_data_view *full; /* what the files hold */
    struct pol_data_view *empty; /* as if no file were given */
    size_t nentries;            /* in every file */
};

/* The `data` section (declarations and files) into gen->data. */
void pol_data_parse(struct cfg_ctx *ctx, const struct yt_node *n, struct pol_gen *gen);
/* After every section: known: SQL for the configured driver; the views. */
void pol_data_finish(struct cfg_ctx *ctx, struct pol_gen *gen);
void pol_data_free(struct pol_data *d);

/* The slot a parameter name binds ("access.apps.members", without
 * "data."), or -1. */
int pol_data_slot(const struct pol_data *d, const char *name);

/* A view with the generation's values except: every slot empty (empty),
 * or, when skip_set >= 0, entry skip_entry of that set's top skip_top
 * left out (explain: did that entry decide?). */
struct pol_data_view *pol_data_view_new(const struct pol_data *d, int empty, long skip_set, long skip_top,
                                        long skip_entry);
void pol_data_view_free(struct pol_data_view *v);

/* A view where data sets names[i] hold what paths[i] holds (read and
 * validated with their declared shapes) and the others what the
 * generation holds (portcullis test: a case's data:). paths[i] NULL or "":
 * that set empty. NULL with file:line:col lines in errors (an unknown set
 * or an unreadable file: at named_at[i], "file:line:col" of its name). */
struct pol_data_view *pol_data_view_files(const struct pol_data *d, const char *const *names,
                                          const char *const *paths, const char *const *named_at, size_t n,
                                          struct pc_buf *errors);

/* The dataset a name names, or -1. */
long pol_data_find(const struct pol_data *d, const char *name);

/* known: for the check of -t, start-up and reload: :keys as JSON, and the
 * warnings (file:line:col, in the data file) for keys the query did not
 * return. */
char *pol_data_keys_json(const struct pol_dtop *t);
void pol_data_known_report(const struct pol_dataset *s, const struct pol_dtop *t, char *const *found,
                           size_t nfound, struct pc_buf *warn);

#endif
