/*
 * portcullis: rules. Path templates compiled into a segment trie, matched
 * against the canonical path; first match in file order wins.
 */
#ifndef PC_MATCH_H
#define PC_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/h1.h"
#include "../policies/decide.h"

struct cfg_ctx;
struct yt_node;
struct trie_node;

enum seg_kind { SEG_LIT, SEG_PARAM, SEG_GLOB };
enum param_type { PT_ANY = 0, PT_UUID = 1, PT_INT = 2 };

struct rule_seg {
    enum seg_kind kind;
    enum param_type ptype;
    char *lit;                  /* SEG_LIT */
    size_t lit_len;
    char *name;                 /* SEG_PARAM with a name; NULL for '*' */
};

/* A capture: a named path segment or query parameter. */
struct rule_capture {
    char *name;
    enum param_type ptype;
    int segment;                /* path segment index, or -1 */
    char *query_key;            /* query parameter name, or NULL */
    size_t query_key_len;
};

enum rule_action { RULE_ALLOW, RULE_FORWARD, RULE_DENY };

#define RULE_METHOD_BIT(m) (1u << (m))
#define RULE_MAX_ALLOW DEC_MAX_POLICIES /* policies in one allow: list */

struct rule {
    int index;
    char *name;
    int line, col;
    char *path;
    struct rule_seg *segs;
    size_t nsegs;
    unsigned methods;           /* bit per enum h1_method; 0 = every method */
    enum rule_action action;
    struct dec_plan plan;       /* allow: compiled for the decision engine */
    struct rule_capture *captures;
    size_t ncaptures;
    int shadow;
    int fallback;               /* a catch-all for routes the pack does not know: logged and counted */
    int metric_slot;            /* label slot for portcullis_requests_total, set at install */
};

struct rule_set {
    struct rule *rules;
    size_t n;
    struct trie_node *root;
};

struct pol_set;
struct pol_data;

/* Parse and compile the `rules` section (node may be NULL) against the
 * generation's policies and operator data (data.h), into *out. */
void rule_config_parse(struct cfg_ctx *ctx, const struct yt_node *n, const struct pol_set *ps,
                       const struct pol_data *data, struct rule_set **out);
/* The `default` section: what a request that matches no rule gets (deny
 * or forward). */
void rule_default_parse(struct cfg_ctx *ctx, const struct yt_node *n, int *default_forward);
void rule_set_free(struct rule_set *rs);

/* Bound capture values for one request. */
#define RULE_MAX_CAPTURES 16

struct rule_match {
    const struct rule *rule;    /* NULL: no rule matched */
    /* values: normalised (uuid lower-cased), NUL-terminated, in buf */
    const char *values[RULE_MAX_CAPTURES];
    size_t lens[RULE_MAX_CAPTURES];
    int present[RULE_MAX_CAPTURES]; /* query captures may be absent */
};

/*
 * Match a canonical path. buf must have room for path_len + query_len + 32
 * bytes; capture values are written there. Returns 0 (match->rule may be
 * NULL for "no rule"), or 400 with *why when a query capture is repeated
 * or malformed.
 */
int rule_match(const struct rule_set *rs, enum h1_method method, const char *path,
               size_t path_len, const char *query, size_t query_len, char *buf, struct rule_match *match,
               const char **why);

/* Compile one template into segments; exposed for tests. 0 or -1 + why. */
int rule_compile_template(const char *tpl, struct rule_seg **segs, size_t *nsegs, const char **why);
void rule_segs_free(struct rule_seg *segs, size_t n);
/* Does template a match every path template b matches? */
int rule_template_covers(const struct rule_seg *a, size_t na, const struct rule_seg *b, size_t nb);
/* Is s a UUID (8-4-4-4-12 hex, either case)? */
int rule_is_uuid(const char *s, size_t len);
/* Could s be an {x:int} segment (non-empty; ASCII digits or non-ASCII bytes,
 * which may be Unicode digits that rule_int_normalise then checks)? */
int rule_is_int_candidate(const char *s, size_t len);

#endif
