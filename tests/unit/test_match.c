/*
 * Unit tests for rules/match.c: template compilation, the rule trie and
 * matching (through the config loader), query captures, and the
 * config-time checks (duplicates, unknown policies, unreachable rules,
 * unbound policy parameters) with their file:line:col messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proxy/config.h"
#include "../../rules/match.h"
#include "../../lib/base.h"

/*
 * Every config below is this header followed by a rules list; rules
 * therefore start on line 10 of "t.yaml".
 */
#define HDR                                                                              \
    /* 1 */ "listen: 127.0.0.1:1\n"                                                      \
    /* 2 */ "upstream: http://127.0.0.1:2\n"                                             \
    /* 3 */ "identity: {secret: x}\n"                                                    \
    /* 4 */ "database: {url: \"host=/nonexistent\"}\n"                                   \
    /* 5 */ "policies:\n"                                                                \
    /* 6 */ "  p: \"SELECT 1 WHERE :app_id::text IS NOT NULL\"\n"                        \
    /* 7 */ "  open: \"SELECT 1\"\n"                                                     \
    /* 8 */ "  conv: \"SELECT 1 WHERE :conversation_id::uuid IS NOT NULL AND :subject <> ''\"\n" \
    /* 9 */ "rules:\n"

#define UUID_LC "0f8fad5b-d9cb-469f-a165-70867728950e"
#define UUID_UC "0F8FAD5B-D9CB-469F-A165-70867728950E"
#define UUID_MC "0f8FaD5b-D9cb-469F-a165-70867728950E"

static struct pc_config *load(const char *text, char **errors)
{
    *errors = NULL;
    return cfg_load_text("t.yaml", text, strlen(text), NULL, errors);
}

/* Load a config that must be valid; fail the test with its errors if not. */
static struct pc_config *load_ok(const char *text)
{
    char *errors = NULL;
    struct pc_config *cfg = load(text, &errors);
    if (cfg == NULL) {
        print_error("config rejected:\n%s", errors ? errors : "(no errors)\n");
        free(errors);
        fail();
    }
    free(errors);
    return cfg;
}

/* Load a config that must be refused; returns the error text (free it). */
static char *load_err(const char *text)
{
    char *errors = NULL;
    struct pc_config *cfg = load(text, &errors);
    if (cfg != NULL) {
        cfg_unref(cfg);
        print_error("config unexpectedly accepted\n");
        fail();
    }
    assert_non_null(errors);
    return errors;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL) {
        print_error("expected to find \"%s\" in:\n%s\n", needle, hay);
        fail();
    }
}

static void assert_not_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) != NULL) {
        print_error("did not expect \"%s\" in:\n%s\n", needle, hay);
        fail();
    }
}

/* ---- matching helpers ---- */

struct mres {
    int rc;
    const char *why;
    struct rule_match m;
    char *buf;
    char *path, *query;         /* exact-size copies (no NUL after them) */
};

/* Match; query NULL means "no '?' in the target". The capture buffer has
 * exactly the documented size (path_len + query_len + 32). */
static void do_match(struct mres *r, const struct pc_config *cfg, enum h1_method method, const char *path,
                     const char *query)
{
    size_t pl = strlen(path), ql = query ? strlen(query) : 0;
    free(r->buf);
    free(r->path);
    free(r->query);
    r->buf = malloc(pl + ql + 32);
    r->path = malloc(pl ? pl : 1);
    memcpy(r->path, path, pl);
    r->query = malloc(ql ? ql : 1);
    if (query != NULL)
        memcpy(r->query, query, ql);
    r->why = NULL;
    r->rc = rule_match(cfg->rules, method, r->path, pl, query ? r->query : NULL, ql,
                       r->buf, &r->m, &r->why);
}

static void mres_free(struct mres *r)
{
    free(r->buf);
    free(r->path);
    free(r->query);
    r->buf = r->path = r->query = NULL;
}

/* The name of the matching rule, "-" for none, "400" for a 400. */
static const char *match_name(const struct pc_config *cfg, enum h1_method method, const char *path,
                              const char *query)
{
    static char name[64];
    struct mres r = {0};
    do_match(&r, cfg, method, path, query);
    if (r.rc != 0) {
        snprintf(name, sizeof(name), "%d", r.rc);
        assert_non_null(r.why);
    } else {
        snprintf(name, sizeof(name), "%s", r.m.rule ? r.m.rule->name : "-");
    }
    mres_free(&r);
    return name;
}

static int cap_index(const struct rule *rule, const char *name)
{
    for (size_t i = 0; i < rule->ncaptures; i++)
        if (strcmp(rule->captures[i].name, name) == 0)
            return (int)i;
    print_error("rule '%s' has no capture '%s'\n", rule->name, name);
    fail();
    return -1;
}

/* The bound value of a capture, or NULL when it is not present. */
static const char *cap_value(const struct mres *r, const char *name)
{
    assert_non_null(r->m.rule);
    int i = cap_index(r->m.rule, name);
    if (!r->m.present[i])
        return NULL;
    assert_int_equal(strlen(r->m.values[i]), r->m.lens[i]);
    return r->m.values[i];
}

/* ---- template compilation ---- */

static void expect_template_error(const char *tpl, const char *why_part)
{
    struct rule_seg *segs = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (rule_compile_template(tpl, &segs, &n, &why) == 0) {
        print_error("template '%s' unexpectedly compiled\n", tpl);
        rule_segs_free(segs, n);
        fail();
    }
    assert_non_null(why);
    if (strstr(why, why_part) == NULL) {
        print_error("template '%s': why \"%s\" does not mention \"%s\"\n", tpl, why, why_part);
        fail();
    }
}

static void test_template_must_start_with_slash(void **state)
{
    (void)state;
    expect_template_error("", "start with '/'");
    expect_template_error("apps", "start with '/'");
    expect_template_error("{x}/a", "start with '/'");
    expect_template_error("**", "start with '/'");
}

static void test_template_doublestar_only_as_last_segment(void **state)
{
    (void)state;
    expect_template_error("/**/a", "'**' must be the last segment");
    expect_template_error("/a/**/", "'**' must be the last segment");
    expect_template_error("/a/**/**", "'**' must be the last segment");
    expect_template_error("/a/**x", "whole segment");
    expect_template_error("/a/x**", "whole segment");
}

static void test_template_capture_must_be_a_whole_segment(void **state)
{
    (void)state;
    expect_template_error("/v{x}", "whole segment");
    expect_template_error("/{x}v", "whole segment");
    expect_template_error("/{x}{y}", "identifier");
    expect_template_error("/a/x}", "whole segment");
    expect_template_error("/a*", "whole segment");
    expect_template_error("/*a", "whole segment");
}

static void test_template_rejects_bad_capture_types(void **state)
{
    (void)state;
    expect_template_error("/{x:str}", "capture type must be uuid or int");
    expect_template_error("/{x:UUID}", "capture type must be uuid or int");
    expect_template_error("/{x:}", "capture type must be uuid or int");
    expect_template_error("/{x:uuid:int}", "capture type must be uuid or int");
}

static void test_template_rejects_bad_capture_names(void **state)
{
    (void)state;
    expect_template_error("/{}", "capture");
    expect_template_error("/{:uuid}", "identifier");
    expect_template_error("/{1x}", "identifier");
    expect_template_error("/{x-y}", "identifier");
    expect_template_error("/{x y}", "identifier");
    expect_template_error("/{x.y}", "identifier");
    expect_template_error("/{a234567890123456789012345678901234567890123456789012345678901234}", "identifier");
}

static void test_template_rejects_empty_segments(void **state)
{
    (void)state;
    expect_template_error("//", "'//'");
    expect_template_error("//a", "'//'");
    expect_template_error("/a//b", "'//'");
    expect_template_error("/a//", "'//'");
}

static void test_template_rejects_dot_segments(void **state)
{
    (void)state;
    expect_template_error("/.", "dot segment");
    expect_template_error("/..", "dot segment");
    expect_template_error("/a/./b", "dot segment");
    expect_template_error("/a/../b", "dot segment");
    expect_template_error("/a/..", "dot segment");
}

static void test_template_rejects_percent_query_fragment_and_controls(void **state)
{
    (void)state;
    expect_template_error("/a%2Fb", "'%'");
    expect_template_error("/a%", "'%'");
    expect_template_error("/a?b=1", "'?'");
    expect_template_error("/a#b", "'#'");
    expect_template_error("/a\tb", "control");
    expect_template_error("/a\x7f", "control");
}

static void test_template_compiles_literals_captures_and_globs(void **state)
{
    (void)state;
    struct rule_seg *s = NULL;
    size_t n = 0;
    const char *why = NULL;

    assert_int_equal(rule_compile_template("/", &s, &n, &why), 0);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, SEG_LIT);
    assert_int_equal(s[0].lit_len, 0);
    rule_segs_free(s, n);

    assert_int_equal(rule_compile_template("/a/{id:uuid}/{n:int}/{s}/*/**", &s, &n, &why), 0);
    assert_int_equal(n, 6);
    assert_int_equal(s[0].kind, SEG_LIT);
    assert_string_equal(s[0].lit, "a");
    assert_int_equal(s[1].kind, SEG_PARAM);
    assert_int_equal(s[1].ptype, PT_UUID);
    assert_string_equal(s[1].name, "id");
    assert_int_equal(s[2].ptype, PT_INT);
    assert_string_equal(s[2].name, "n");
    assert_int_equal(s[3].ptype, PT_ANY);
    assert_string_equal(s[3].name, "s");
    assert_int_equal(s[4].kind, SEG_PARAM);
    assert_null(s[4].name);
    assert_int_equal(s[5].kind, SEG_GLOB);
    rule_segs_free(s, n);

    /* a trailing slash is an empty last segment; "..." is an ordinary literal */
    assert_int_equal(rule_compile_template("/.../a;x=1/", &s, &n, &why), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].lit, "...");
    assert_string_equal(s[1].lit, "a;x=1");
    assert_int_equal(s[2].kind, SEG_LIT);
    assert_int_equal(s[2].lit_len, 0);
    rule_segs_free(s, n);

    /* many segments (the segment array grows) */
    assert_int_equal(rule_compile_template("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/**", &s, &n, &why), 0);
    assert_int_equal(n, 19);
    assert_string_equal(s[17].lit, "r");
    assert_int_equal(s[18].kind, SEG_GLOB);
    rule_segs_free(s, n);
}

/* ---- rule_template_covers ---- */

static int covers(const char *a, const char *b)
{
    struct rule_seg *sa, *sb;
    size_t na, nb;
    const char *why;
    assert_int_equal(rule_compile_template(a, &sa, &na, &why), 0);
    assert_int_equal(rule_compile_template(b, &sb, &nb, &why), 0);
    int c = rule_template_covers(sa, na, sb, nb);
    rule_segs_free(sa, na);
    rule_segs_free(sb, nb);
    return c;
}

static void test_template_covers_pairs(void **state)
{
    (void)state;
    /* a glob covers everything at and below its prefix */
    assert_true(covers("/**", "/"));
    assert_true(covers("/**", "/a/{x}/**"));
    assert_true(covers("/a/**", "/a"));
    assert_true(covers("/a/**", "/a/"));
    assert_true(covers("/a/**", "/a/b/c"));
    assert_true(covers("/a/**", "/a/**"));
    assert_false(covers("/a/**", "/b"));
    assert_false(covers("/a/**", "/**"));
    assert_false(covers("/a/*", "/a/**"));      /* ** also matches "/a" */
    /* untyped captures cover literals, typed ones and '*' */
    assert_true(covers("/a/{x}", "/a/b"));
    assert_true(covers("/a/{x}", "/a/{y:uuid}"));
    assert_true(covers("/a/*", "/a/{y}"));
    assert_true(covers("/a/{x}", "/a/*"));
    assert_false(covers("/a/{x}", "/a/"));      /* a capture is never empty */
    assert_false(covers("/a/{x}", "/a/b/c"));
    assert_false(covers("/a/{x}", "/a"));
    /* typed captures cover literals of their type, in either case */
    assert_true(covers("/a/{x:uuid}", "/a/" UUID_LC));
    assert_true(covers("/a/{x:uuid}", "/a/" UUID_UC));
    assert_true(covers("/a/{x:uuid}", "/a/{y:uuid}"));
    assert_false(covers("/a/{x:uuid}", "/a/b"));
    assert_false(covers("/a/{x:uuid}", "/a/{y}"));
    assert_false(covers("/a/{x:uuid}", "/a/{y:int}"));
    assert_true(covers("/n/{x:int}", "/n/42"));
    assert_false(covers("/n/{x:int}", "/n/4a"));
    /* literals cover only the same literal, case-sensitively */
    assert_true(covers("/a/b", "/a/b"));
    assert_false(covers("/a/b", "/a/B"));
    assert_false(covers("/a/b", "/a/{x}"));
    assert_false(covers("/a", "/a/"));
    assert_false(covers("/a/", "/a"));
}

/* ---- matching, through the config loader ---- */

static void test_literal_template_matches_only_that_exact_path(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: root, path: /, action: forward}\n"
        "  - {name: apps, path: /console/api/apps, action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/console/api/apps", NULL), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/", NULL), "root");
    assert_string_equal(match_name(cfg, H1_M_GET, "/console/api/apps", "x=1"), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/console/api", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/console/api/apps/x", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/console/api/appsx", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "*", NULL), "-");
    cfg_unref(cfg);
}

static void test_trailing_slash_does_not_match_template_without_it(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: a, path: /a, action: forward}\n"
        "  - {name: b_slash, path: /b/, action: forward}\n"
        "  - {name: c, path: \"/c/{x}\", action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a", NULL), "a");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/b/", NULL), "b_slash");
    assert_string_equal(match_name(cfg, H1_M_GET, "/b", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/c/x", NULL), "c");
    assert_string_equal(match_name(cfg, H1_M_GET, "/c/x/", NULL), "-");
    cfg_unref(cfg);
}

static void test_literals_match_case_sensitively(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: lower, path: /apps/list, action: forward}\n"
        "  - {name: uuid_lit, path: /u/" UUID_LC ", action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/list", NULL), "lower");
    assert_string_equal(match_name(cfg, H1_M_GET, "/Apps/list", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/LIST", NULL), "-");
    /* a literal UUID is a literal: no case folding outside typed captures */
    assert_string_equal(match_name(cfg, H1_M_GET, "/u/" UUID_LC, NULL), "uuid_lit");
    assert_string_equal(match_name(cfg, H1_M_GET, "/u/" UUID_UC, NULL), "-");
    cfg_unref(cfg);
}

static void test_named_capture_binds_exactly_one_nonempty_segment(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: app, path: \"/apps/{app_id}/edit\", action: forward}\n"
        "  - {name: one, path: \"/one/{v}\", action: forward}\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/apps/My-App;v=1/edit", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.m.rule->name, "app");
    assert_int_equal(r.m.rule->ncaptures, 1);
    assert_string_equal(cap_value(&r, "app_id"), "My-App;v=1"); /* untyped: kept as is */

    do_match(&r, cfg, H1_M_GET, "/one/x y%", NULL);
    assert_string_equal(r.m.rule->name, "one");
    assert_string_equal(cap_value(&r, "v"), "x y%");
    mres_free(&r);

    assert_string_equal(match_name(cfg, H1_M_GET, "/apps//edit", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/a/b/edit", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/one/", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/one", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/one/a/b", NULL), "-");
    cfg_unref(cfg);
}

static void test_uuid_capture_matches_any_case_and_binds_lower_case(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: app, path: \"/apps/{app_id:uuid}\", action: forward}\n");
    static const char *const forms[] = {UUID_LC, UUID_UC, UUID_MC};
    struct mres r = {0};
    for (size_t i = 0; i < PC_ARRAY_LEN(forms); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/apps/%s", forms[i]);
        do_match(&r, cfg, H1_M_GET, path, NULL);
        assert_int_equal(r.rc, 0);
        assert_non_null(r.m.rule);
        assert_string_equal(r.m.rule->name, "app");
        assert_string_equal(cap_value(&r, "app_id"), UUID_LC);
    }
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_uuid_capture_rejects_non_uuid_segments(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: app, path: \"/apps/{app_id:uuid}\", action: forward}\n");
    static const char *const bad[] = {
        "/apps/not-a-uuid",
        "/apps/0f8fad5b-d9cb-469f-a165-70867728950",    /* 35 chars */
        "/apps/0f8fad5b-d9cb-469f-a165-70867728950e0",  /* 37 chars */
        "/apps/0f8fad5g-d9cb-469f-a165-70867728950e",   /* 'g' */
        "/apps/0f8fad5bd-9cb-469f-a165-70867728950e",   /* dash misplaced */
        "/apps/0f8fad5b_d9cb_469f_a165_70867728950e",
        "/apps/{" UUID_LC "}",
        "/apps/",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++)
        assert_string_equal(match_name(cfg, H1_M_GET, bad[i], NULL), "-");
    cfg_unref(cfg);
}

static void test_int_capture_matches_only_decimal_digits(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: page, path: \"/pages/{n:int}\", action: forward}\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/pages/42", NULL);
    assert_string_equal(r.m.rule->name, "page");
    assert_string_equal(cap_value(&r, "n"), "42");
    do_match(&r, cfg, H1_M_GET, "/pages/123456789012345678", NULL); /* 18 digits */
    assert_string_equal(cap_value(&r, "n"), "123456789012345678");
    /* any length: Werkzeug's int() has no bound either */
    do_match(&r, cfg, H1_M_GET, "/pages/1234567890123456789012", NULL);
    assert_string_equal(cap_value(&r, "n"), "1234567890123456789012");
    mres_free(&r);
    assert_string_equal(match_name(cfg, H1_M_GET, "/pages/4a", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/pages/-1", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/pages/+1", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/pages/ 1", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/pages/", NULL), "-");
    cfg_unref(cfg);
}

/* Werkzeug's IntegerConverter is Python's \\d+ and the view gets int(value):
 * every Unicode decimal digit counts, and leading zeros vanish. */
static void test_int_capture_binds_the_integer_the_backend_sees(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: page, path: \"/pages/{n:int}\", action: forward}\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/pages/007", NULL);
    assert_string_equal(cap_value(&r, "n"), "7");
    mres_free(&r);
    do_match(&r, cfg, H1_M_GET, "/pages/000", NULL);
    assert_string_equal(cap_value(&r, "n"), "0");
    mres_free(&r);
    /* ARABIC-INDIC DIGIT THREE, and FULLWIDTH DIGIT ONE and TWO */
    do_match(&r, cfg, H1_M_GET, "/pages/\xd9\xa3", NULL);
    assert_string_equal(r.m.rule->name, "page");
    assert_string_equal(cap_value(&r, "n"), "3");
    mres_free(&r);
    do_match(&r, cfg, H1_M_GET, "/pages/\xef\xbc\x91\xef\xbc\x92", NULL);
    assert_string_equal(cap_value(&r, "n"), "12");
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_int_capture_refuses_non_ascii_it_cannot_read_as_digits(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: page, path: \"/pages/{n:int}\", action: forward}\n"
        "  - {name: rest, path: \"/**\", action: forward}\n");
    struct mres r = {0};
    /* e-acute is no digit; invalid UTF-8 neither: never fall through to the catch-all */
    do_match(&r, cfg, H1_M_GET, "/pages/1\xc3\xa9", NULL);
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    do_match(&r, cfg, H1_M_GET, "/pages/\xff", NULL);
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_int_query_capture_is_normalised_too(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: q, path: /q, query: {page: \"{page:int}\"}, action: forward}\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/q", "page=0042");
    assert_string_equal(cap_value(&r, "page"), "42");
    mres_free(&r);
    do_match(&r, cfg, H1_M_GET, "/q", "page=%D9%A3");
    assert_string_equal(cap_value(&r, "page"), "3");
    mres_free(&r);
    do_match(&r, cfg, H1_M_GET, "/q", "page=x1");
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_star_matches_one_segment_without_binding(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: star, path: /a/*/c, action: forward}\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/a/anything/c", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.m.rule->name, "star");
    assert_int_equal(r.m.rule->ncaptures, 0);
    mres_free(&r);
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/c", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a//c", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/x/y/c", NULL), "-");
    cfg_unref(cfg);
}

static void test_doublestar_matches_zero_or_more_trailing_segments(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: apps, path: /apps/**, action: forward}\n"
        "  - {name: cap, path: \"/t/{tenant}/**\", action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps", NULL), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/", NULL), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/x", NULL), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/x/y/z/", NULL), "apps");
    assert_string_equal(match_name(cfg, H1_M_GET, "/appsx", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_GET, "/Apps/x", NULL), "-");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/t/acme/deep/er", NULL);
    assert_string_equal(r.m.rule->name, "cap");
    assert_string_equal(cap_value(&r, "tenant"), "acme");
    do_match(&r, cfg, H1_M_GET, "/t/acme", NULL);
    assert_string_equal(r.m.rule->name, "cap");
    assert_string_equal(cap_value(&r, "tenant"), "acme");
    mres_free(&r);
    cfg_unref(cfg);

    cfg = load_ok(HDR "  - {name: all, path: /**, action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/", NULL), "all");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a", NULL), "all");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/b/c/", NULL), "all");
    assert_string_equal(match_name(cfg, H1_M_OTHER, "/a", NULL), "all");
    cfg_unref(cfg);
}

static void test_rule_without_methods_matches_every_method(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR "  - {name: any, path: /a, action: forward}\n");
    static const enum h1_method ms[] = {H1_M_GET, H1_M_HEAD, H1_M_POST, H1_M_PUT, H1_M_DELETE,
                                       H1_M_PATCH, H1_M_OPTIONS, H1_M_TRACE, H1_M_CONNECT, H1_M_OTHER};
    for (size_t i = 0; i < PC_ARRAY_LEN(ms); i++)
        assert_string_equal(match_name(cfg, ms[i], "/a", NULL), "any");
    cfg_unref(cfg);
}

static void test_get_rule_also_matches_head_but_not_other_methods(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: read, path: /a, methods: [GET], action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a", NULL), "read");
    assert_string_equal(match_name(cfg, H1_M_HEAD, "/a", NULL), "read");
    assert_string_equal(match_name(cfg, H1_M_POST, "/a", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_OPTIONS, "/a", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_OTHER, "/a", NULL), "-");
    cfg_unref(cfg);

    /* HEAD alone does not imply GET */
    cfg = load_ok(HDR "  - {name: head, path: /a, methods: [HEAD], action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_HEAD, "/a", NULL), "head");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a", NULL), "-");
    cfg_unref(cfg);
}

static void test_method_mismatch_falls_through_to_the_next_rule(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: read, path: \"/apps/{id}\", methods: [GET], action: forward}\n"
        "  - {name: write, path: \"/apps/{id}\", methods: [POST, PUT], action: deny}\n"
        "  - {name: rest, path: /apps/**, action: deny}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/apps/1", NULL), "read");
    assert_string_equal(match_name(cfg, H1_M_POST, "/apps/1", NULL), "write");
    assert_string_equal(match_name(cfg, H1_M_PUT, "/apps/1", NULL), "write");
    assert_string_equal(match_name(cfg, H1_M_DELETE, "/apps/1", NULL), "rest");
    assert_string_equal(match_name(cfg, H1_M_OTHER, "/apps/1", NULL), "rest");
    cfg_unref(cfg);
}

static void test_first_rule_in_file_order_wins_over_more_specific_later_rule(void **state)
{
    (void)state;
    /* earlier general rules are limited to GET so that the later, more
     * specific ones stay reachable (for POST) */
    struct pc_config *cfg = load_ok(HDR
        "  - {name: glob_get, path: /x/**, methods: [GET], action: forward}\n"
        "  - {name: x_lit, path: /x/y/z, action: deny}\n"
        "  - {name: param_get, path: \"/{a}/b\", methods: [GET], action: forward}\n"
        "  - {name: lit_b, path: /a/b, action: deny}\n"
        "  - {name: uuid_get, path: \"/u/{id:uuid}\", methods: [GET], action: forward}\n"
        "  - {name: uuid_lit, path: /u/" UUID_LC ", action: deny}\n"
        "  - {name: lit_first, path: /l/c, action: forward}\n"
        "  - {name: param_later, path: \"/l/{x}\", action: deny}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/x/y/z", NULL), "glob_get");
    assert_string_equal(match_name(cfg, H1_M_POST, "/x/y/z", NULL), "x_lit");
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/b", NULL), "param_get");
    assert_string_equal(match_name(cfg, H1_M_POST, "/a/b", NULL), "lit_b");
    assert_string_equal(match_name(cfg, H1_M_GET, "/u/" UUID_LC, NULL), "uuid_get");
    assert_string_equal(match_name(cfg, H1_M_POST, "/u/" UUID_LC, NULL), "uuid_lit");
    /* and an earlier literal beats a later capture */
    assert_string_equal(match_name(cfg, H1_M_GET, "/l/c", NULL), "lit_first");
    assert_string_equal(match_name(cfg, H1_M_GET, "/l/d", NULL), "param_later");
    cfg_unref(cfg);
}

static void test_later_rule_in_another_trie_branch_never_overrides_an_earlier_match(void **state)
{
    (void)state;
    /* "deep" makes the capture branch look promising (it holds rule 0), but
     * only rules 2 and 3 match there: rule 1, found first in the literal
     * branch, must win */
    struct pc_config *cfg = load_ok(HDR
        "  - {name: deep, path: \"/{s}/zzz\", action: forward}\n"
        "  - {name: exact, path: /p/q, action: forward}\n"
        "  - {name: end_after, path: \"/{s}/q\", action: deny}\n"
        "  - {name: glob_after, path: \"/{s}/**\", action: deny}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/p/q", NULL), "exact");
    assert_string_equal(match_name(cfg, H1_M_GET, "/p/zzz", NULL), "deep");
    assert_string_equal(match_name(cfg, H1_M_GET, "/o/q", NULL), "end_after");
    assert_string_equal(match_name(cfg, H1_M_GET, "/p/r", NULL), "glob_after");
    cfg_unref(cfg);
}

static void test_typed_and_untyped_siblings_pick_the_first_that_fits(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: by_int, path: \"/o/{n:int}\", action: forward}\n"
        "  - {name: by_uuid, path: \"/o/{id:uuid}\", action: forward}\n"
        "  - {name: by_any, path: \"/o/{s}\", action: forward}\n");
    assert_string_equal(match_name(cfg, H1_M_GET, "/o/12", NULL), "by_int");
    assert_string_equal(match_name(cfg, H1_M_GET, "/o/" UUID_UC, NULL), "by_uuid");
    assert_string_equal(match_name(cfg, H1_M_GET, "/o/name", NULL), "by_any");
    cfg_unref(cfg);
}

/* ---- query captures ---- */

#define CONV_RULES                                                                  \
    "  - name: messages\n"                                                          \
    "    path: /console/api/apps/{app_id:uuid}/chat-messages\n"                     \
    "    methods: [GET]\n"                                                          \
    "    query: {conversation_id: \"{conversation_id:uuid}\"}\n"                    \
    "    action: forward\n"                                                         \
    "  - name: search\n"                                                            \
    "    path: /search\n"                                                           \
    "    query: {q: \"{term}\", page: \"{page:int}\"}\n"                            \
    "    action: forward\n"

#define MSG_PATH "/console/api/apps/" UUID_UC "/chat-messages"

static void test_query_capture_binds_present_value_lower_cased(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "limit=10&conversation_id=" UUID_MC "&first_id=");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.m.rule->name, "messages");
    assert_int_equal(r.m.rule->ncaptures, 2);
    assert_int_equal(r.m.rule->captures[cap_index(r.m.rule, "conversation_id")].segment, -1);
    assert_string_equal(r.m.rule->captures[cap_index(r.m.rule, "conversation_id")].query_key, "conversation_id");
    assert_string_equal(cap_value(&r, "app_id"), UUID_LC);
    assert_string_equal(cap_value(&r, "conversation_id"), UUID_LC);
    /* percent-encoded value */
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "conversation_id=%30f8fad5b-d9cb-469f-a165-70867728950E");
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "conversation_id"), UUID_LC);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_query_capture_absent_is_not_present(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    static const char *const queries[] = {NULL, "", "&&", "limit=10", "conversation_idx=1", "xconversation_id=1",
                                          "conversation=1&id=2"};
    struct mres r = {0};
    for (size_t i = 0; i < PC_ARRAY_LEN(queries); i++) {
        do_match(&r, cfg, H1_M_GET, MSG_PATH, queries[i]);
        assert_int_equal(r.rc, 0);
        assert_string_equal(r.m.rule->name, "messages");
        int ci = cap_index(r.m.rule, "conversation_id");
        assert_int_equal(r.m.present[ci], 0);
        assert_null(r.m.values[ci]);
        assert_string_equal(cap_value(&r, "app_id"), UUID_LC); /* path capture still bound */
    }
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_repeated_query_capture_is_400(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "conversation_id=" UUID_LC "&conversation_id=" UUID_LC);
    assert_int_equal(r.rc, 400);
    assert_non_null(r.why);
    assert_contains(r.why, "repeated");
    /* even when the second one is malformed or empty */
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "conversation_id=" UUID_LC "&conversation_id");
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_percent_encoded_query_key_is_the_same_key(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "conversation%5Fid=" UUID_UC);
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "conversation_id"), UUID_LC);
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "%63onversation_id=" UUID_UC);
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "conversation_id"), UUID_LC);
    /* so an encoded spelling plus a plain one is a repetition */
    do_match(&r, cfg, H1_M_GET, MSG_PATH, "conversation_id=" UUID_LC "&conversation%5fid=" UUID_LC);
    assert_int_equal(r.rc, 400);
    assert_contains(r.why, "repeated");
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_fully_percent_encoded_long_query_key_is_still_the_same_key(void **state)
{
    (void)state;
    /* query keys may be up to 200 bytes; percent-encoded, a key takes up to
     * three times that, and it must still be recognised (the backend
     * decodes it), or a repeated or malformed value would slip through
     * (this failed while the raw key was limited to 256 bytes) */
    char key[201], enc[3 * 200 + 1];
    for (int i = 0; i < 200; i++) {
        key[i] = (char)('a' + i % 26);
        snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)key[i]);
    }
    key[200] = '\0';
    struct pc_buf b = {0};
    pc_buf_addf(&b, HDR "  - name: long\n    path: /l\n    query: {%s: \"{v:int}\"}\n    action: forward\n", key);
    struct pc_config *cfg = load_ok(pc_buf_cstr(&b));
    pc_buf_free(&b);

    struct mres r = {0};
    pc_buf_addf(&b, "%s=7", key);
    do_match(&r, cfg, H1_M_GET, "/l", pc_buf_cstr(&b));
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "v"), "7");
    pc_buf_free(&b);

    pc_buf_addf(&b, "%s=7", enc);
    do_match(&r, cfg, H1_M_GET, "/l", pc_buf_cstr(&b));
    assert_int_equal(r.rc, 0);
    assert_non_null(cap_value(&r, "v"));
    assert_string_equal(cap_value(&r, "v"), "7");
    pc_buf_free(&b);

    pc_buf_addf(&b, "%s=7&%s=8", key, enc);
    do_match(&r, cfg, H1_M_GET, "/l", pc_buf_cstr(&b));
    assert_int_equal(r.rc, 400);
    pc_buf_free(&b);

    pc_buf_addf(&b, "%s=x", enc);
    do_match(&r, cfg, H1_M_GET, "/l", pc_buf_cstr(&b));
    assert_int_equal(r.rc, 400);
    pc_buf_free(&b);
    mres_free(&r);
    cfg_unref(cfg);

    /* one byte more is refused when the config is loaded */
    pc_buf_addf(&b, HDR "  - name: long\n    path: /l\n    query: {%sz: \"{v:int}\"}\n    action: forward\n", key);
    char *e = load_err(pc_buf_cstr(&b));
    pc_buf_free(&b);
    assert_contains(e, "t.yaml:12:");
    assert_contains(e, "rule 'long': bad query parameter name");
    free(e);
}

static void test_plus_in_query_decodes_to_space(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/search", "q=hello+big%2Bworld%20!&page=2");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.m.rule->name, "search");
    assert_string_equal(cap_value(&r, "term"), "hello big+world !");
    assert_string_equal(cap_value(&r, "page"), "2");
    /* a malformed escape in a query value is kept literally, as Werkzeug does */
    do_match(&r, cfg, H1_M_GET, "/search", "q=100%&page=1");
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "term"), "100%");
    /* '+' in a key is a space too: "q+" is the key "q ", not "q" */
    do_match(&r, cfg, H1_M_GET, "/search", "q+=x");
    assert_int_equal(r.rc, 0);
    assert_null(cap_value(&r, "term"));
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_query_capture_type_mismatch_is_400(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR CONV_RULES);
    static const char *const bad[] = {
        "conversation_id=nope",
        "conversation_id=",
        "conversation_id",
        "conversation_id=" UUID_LC "0",
        "conversation_id=%7B" UUID_LC "%7D",
    };
    struct mres r = {0};
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        do_match(&r, cfg, H1_M_GET, MSG_PATH, bad[i]);
        assert_int_equal(r.rc, 400);
        assert_contains(r.why, "expected form");
    }
    do_match(&r, cfg, H1_M_GET, "/search", "page=two");
    assert_int_equal(r.rc, 400);
    do_match(&r, cfg, H1_M_GET, "/search", "q=a%00b");    /* NUL in a value */
    assert_int_equal(r.rc, 400);
    do_match(&r, cfg, H1_M_GET, "/search", "q=");         /* captures are never empty */
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_capture_buffer_of_documented_size_holds_every_capture(void **state)
{
    (void)state;
    /* path captures fill every segment; the query capture is the whole query */
    struct pc_config *cfg = load_ok(HDR
        "  - name: full\n"
        "    path: /{a}/{b}/{c}\n"
        "    query: {k: \"{d}\"}\n"
        "    action: forward\n");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, "/x/y/z", "k=v");
    assert_int_equal(r.rc, 0);
    assert_string_equal(cap_value(&r, "a"), "x");
    assert_string_equal(cap_value(&r, "b"), "y");
    assert_string_equal(cap_value(&r, "c"), "z");
    assert_string_equal(cap_value(&r, "d"), "v");
    do_match(&r, cfg, H1_M_GET, "/x/y/z", "k");
    assert_int_equal(r.rc, 400);
    mres_free(&r);
    cfg_unref(cfg);
}

static void test_allow_rule_binds_policy_parameters_to_captures_subject_and_claims(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - name: app\n"
        "    path: /apps/{app_id:uuid}\n"
        "    allow: [p, open]\n"
        "  - name: conv\n"
        "    path: /c/{x}\n"
        "    query: {conversation_id: \"{conversation_id:uuid}\"}\n"
        "    allow: [conv]\n");
    const struct rule *r0 = &cfg->rules->rules[0], *r1 = &cfg->rules->rules[1];
    assert_int_equal(r0->action, RULE_ALLOW);
    assert_int_equal(r0->plan.nsteps, 2);
    assert_int_equal(r0->plan.steps[0].nbinds, 1);
    assert_int_equal(r0->plan.steps[0].binds[0].kind, DEC_B_CAPTURE);
    assert_int_equal(r0->plan.steps[0].binds[0].capture, cap_index(r0, "app_id"));
    assert_int_equal(r0->plan.steps[1].nbinds, 0);
    assert_int_equal(r1->plan.steps[0].nbinds, 2);
    assert_int_equal(r1->plan.steps[0].binds[0].kind, DEC_B_CAPTURE);
    assert_int_equal(r1->plan.steps[0].binds[0].capture, cap_index(r1, "conversation_id"));
    assert_int_equal(r1->plan.steps[0].binds[1].kind, DEC_B_SUBJECT);
    cfg_unref(cfg);
}

static void test_two_thousand_literal_rules_still_match_the_last_one(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    pc_buf_adds(&b, HDR);
    for (int i = 0; i < 2000; i++)
        pc_buf_addf(&b, "  - {name: r%04d, path: /api/v1/r%04d/items, action: forward}\n", i, i);
    pc_buf_adds(&b, "  - {name: tail, path: \"/api/v1/{x}/items\", methods: [POST], action: deny}\n");
    struct pc_config *cfg = load_ok(pc_buf_cstr(&b));
    pc_buf_free(&b);
    assert_int_equal(cfg->rules->n, 2001);
    assert_string_equal(match_name(cfg, H1_M_GET, "/api/v1/r1999/items", NULL), "r1999");
    assert_string_equal(match_name(cfg, H1_M_GET, "/api/v1/r0000/items", NULL), "r0000");
    assert_string_equal(match_name(cfg, H1_M_GET, "/api/v1/r1000/items", NULL), "r1000");
    assert_string_equal(match_name(cfg, H1_M_GET, "/api/v1/r2000/items", NULL), "-");
    assert_string_equal(match_name(cfg, H1_M_POST, "/api/v1/r2000/items", NULL), "tail");
    assert_string_equal(match_name(cfg, H1_M_POST, "/api/v1/r1999/items", NULL), "r1999");
    for (int i = 0; i < 2000; i += 37) {
        char path[64], name[16];
        snprintf(path, sizeof(path), "/api/v1/r%04d/items", i);
        snprintf(name, sizeof(name), "r%04d", i);
        assert_string_equal(match_name(cfg, H1_M_GET, path, NULL), name);
    }
    cfg_unref(cfg);
}

static void test_too_many_path_segments_is_400_not_overflow(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR "  - {name: all, path: /**, action: forward}\n");
    struct pc_buf b = {0};
    for (int i = 0; i < 300; i++)
        pc_buf_adds(&b, "/a");
    struct mres r = {0};
    do_match(&r, cfg, H1_M_GET, pc_buf_cstr(&b), NULL);
    assert_int_equal(r.rc, 400);
    assert_non_null(r.why);
    mres_free(&r);
    pc_buf_free(&b);
    cfg_unref(cfg);
}

/* ---- config errors, with file:line:col ---- */

static void test_config_rejects_duplicate_rule_names(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: a\n"
        /* 11 */ "    path: /a\n"
        /* 12 */ "    action: forward\n"
        /* 13 */ "  - name: a\n"
        /* 14 */ "    path: /b\n"
        /* 15 */ "    action: forward\n");
    assert_contains(e, "t.yaml:13:");
    assert_contains(e, "duplicate rule name 'a' (first at line 10)");
    free(e);
}

static void test_config_rejects_unknown_policy_in_allow(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: a\n"
        /* 11 */ "    path: /apps/{app_id}\n"
        /* 12 */ "    allow: [p, nope]\n");
    assert_contains(e, "t.yaml:12:");
    assert_contains(e, "rule 'a': unknown policy 'nope'");
    assert_not_contains(e, "'p'");
    free(e);
}

/* A policy listed twice in one allow: would wait twice on one coalesced
 * lookup (independent review); there is no meaning in it: refused. */
static void test_config_rejects_a_policy_listed_twice_in_allow(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: a\n"
        /* 11 */ "    path: /apps/{app_id}\n"
        /* 12 */ "    allow: [p, open, p]\n");
    assert_contains(e, "t.yaml:12:");
    assert_contains(e, "rule 'a': policy 'p' is listed twice");
    free(e);
}

static void test_config_rejects_rule_with_both_allow_and_action(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: ok\n"
        /* 11 */ "    path: /ok\n"
        /* 12 */ "    action: forward\n"
        /* 13 */ "  - name: both\n"
        /* 14 */ "    path: /b\n"
        /* 15 */ "    allow: [open]\n"
        /* 16 */ "    action: forward\n");
    assert_contains(e, "t.yaml:13:");
    assert_contains(e, "rule 'both' needs exactly one of allow: or action:");
    free(e);
}

static void test_config_rejects_rule_with_neither_allow_nor_action(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: neither\n"
        /* 11 */ "    path: /n\n");
    assert_contains(e, "t.yaml:10:");
    assert_contains(e, "rule 'neither' needs exactly one of allow: or action:");
    free(e);
}

static void test_config_rejects_unknown_actions_and_methods(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: m\n"
        /* 11 */ "    path: /m\n"
        /* 12 */ "    methods: [GET, get, FETCH]\n"
        /* 13 */ "    action: forward\n"
        /* 14 */ "  - name: act\n"
        /* 15 */ "    path: /act\n"
        /* 16 */ "    action: allow\n"
        /* 17 */ "  - name: empty\n"
        /* 18 */ "    path: /e\n"
        /* 19 */ "    methods: []\n"
        /* 20 */ "    action: forward\n");
    assert_contains(e, "t.yaml:12:20: unknown method 'get'");
    assert_contains(e, "t.yaml:12:25: unknown method 'FETCH'");
    assert_contains(e, "t.yaml:16:13: rule 'act': action must be forward or deny, found 'allow'");
    assert_contains(e, "t.yaml:19:");
    assert_contains(e, "methods must not be empty");
    free(e);
}

static void test_config_reports_bad_path_templates_at_the_path(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: bad\n"
        /* 11 */ "    path: /a/**/b\n"
        /* 12 */ "    action: forward\n"
        /* 13 */ "  - name: noslash\n"
        /* 14 */ "    path: a\n"
        /* 15 */ "    action: forward\n"
        /* 16 */ "  - name: nopath\n"
        /* 17 */ "    action: forward\n");
    assert_contains(e, "t.yaml:11:11: rule 'bad': bad path template '/a/**/b': '**' must be the last segment");
    assert_contains(e, "t.yaml:14:11: rule 'noslash': bad path template 'a'");
    assert_contains(e, "t.yaml:16:");
    assert_contains(e, "rule 'nopath' needs a path");
    free(e);
}

static void test_config_rejects_rule_after_catch_all_as_unreachable(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - {name: everything, path: /**, action: forward}\n"
        /* 11 */ "  - {name: apps, path: /apps, methods: [GET], action: deny}\n");
    assert_contains(e, "t.yaml:11:");
    assert_contains(e, "rule 'apps' is unreachable: rule 'everything' (line 10) matches every request it matches");
    free(e);
}

static void test_config_rejects_literal_after_capture_covering_it(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - {name: any_b, path: \"/a/{x}\", action: forward}\n"
        /* 11 */ "  - {name: lit_b, path: /a/b, action: deny}\n");
    assert_contains(e, "t.yaml:11:");
    assert_contains(e, "rule 'lit_b' is unreachable: rule 'any_b' (line 10)");
    free(e);
}

static void test_config_rejects_uuid_literal_after_uuid_capture(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - {name: by_id, path: \"/a/{x:uuid}\", action: forward}\n"
        /* 11 */ "  - {name: one_lc, path: /a/" UUID_LC ", action: deny}\n"
        /* 12 */ "  - {name: one_uc, path: /a/" UUID_UC ", action: deny}\n");
    assert_contains(e, "t.yaml:11:");
    assert_contains(e, "rule 'one_lc' is unreachable: rule 'by_id' (line 10)");
    assert_contains(e, "t.yaml:12:");
    assert_contains(e, "rule 'one_uc' is unreachable: rule 'by_id' (line 10)");
    free(e);
}

static void test_config_rejects_any_int_literal_after_int_capture_as_matching_routes_it(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - {name: by_n, path: \"/n/{i:int}\", action: forward}\n"
        /* 11 */ "  - {name: short, path: /n/42, action: deny}\n"
        /* 12 */ "  - {name: long, path: /n/1234567890123456789, action: deny}\n"
        /* 13 */ "  - {name: arabic, path: \"/n/\xd9\xa4\xd9\xa2\", action: deny}\n"
        /* 14 */ "  - {name: hex, path: /n/4a, action: deny}\n");
    assert_contains(e, "rule 'short' is unreachable: rule 'by_n' (line 10)");
    assert_contains(e, "rule 'long' is unreachable: rule 'by_n' (line 10)");
    assert_contains(e, "rule 'arabic' is unreachable: rule 'by_n' (line 10)");
    assert_true(strstr(e, "'hex'") == NULL);
    free(e);
}

static void test_config_rejects_head_rule_after_get_rule_on_same_path(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - {name: get, path: /a, methods: [GET], action: forward}\n"
        /* 11 */ "  - {name: head, path: /a, methods: [HEAD], action: deny}\n");
    assert_contains(e, "t.yaml:11:");
    assert_contains(e, "rule 'head' is unreachable: rule 'get' (line 10)");
    free(e);
}

static void test_config_accepts_rules_that_an_earlier_rule_only_partly_covers(void **state)
{
    (void)state;
    struct pc_config *cfg = load_ok(HDR
        "  - {name: by_id, path: \"/a/{x:uuid}\", action: forward}\n"
        "  - {name: b, path: /a/b, action: deny}\n"           /* not a uuid */
        "  - {name: get, path: /p, methods: [GET], action: forward}\n"
        "  - {name: post, path: /p, methods: [POST], action: deny}\n"
        "  - {name: all, path: /p, action: deny}\n"           /* other methods too */
        "  - {name: star, path: /s/*, action: forward}\n"
        "  - {name: s_glob, path: /s/**, action: deny}\n"     /* also /s and /s/x/y */
        "  - {name: n_int, path: \"/n/{i:int}\", action: forward}\n"
        "  - {name: n_uuid, path: \"/n/{u:uuid}\", action: forward}\n"
        "  - {name: slash, path: /a/b/, action: deny}\n");
    assert_int_equal(cfg->rules->n, 10);
    assert_string_equal(match_name(cfg, H1_M_GET, "/a/b", NULL), "b");
    assert_string_equal(match_name(cfg, H1_M_POST, "/p", NULL), "post");
    assert_string_equal(match_name(cfg, H1_M_DELETE, "/p", NULL), "all");
    assert_string_equal(match_name(cfg, H1_M_GET, "/s", NULL), "s_glob");
    cfg_unref(cfg);
}

static void test_config_rejects_policy_parameter_the_rule_does_not_bind(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: wrong_name\n"
        /* 11 */ "    path: /apps/{id}\n"
        /* 12 */ "    allow: [open, p]\n");
    assert_contains(e, "t.yaml:12:");
    assert_contains(e, "rule 'wrong_name': policy 'p' uses parameter :app_id, which this rule does not bind");
    assert_not_contains(e, "'open'");
    free(e);
}

static void test_config_rejects_reserved_and_duplicate_capture_names(void **state)
{
    (void)state;
    char *e = load_err(HDR
        /* 10 */ "  - name: twice\n"
        /* 11 */ "    path: /a/{x}/{x}\n"
        /* 12 */ "    action: forward\n"
        /* 13 */ "  - name: pq\n"
        /* 14 */ "    path: /b/{x}\n"
        /* 15 */ "    query: {x: \"{x}\"}\n"
        /* 16 */ "    action: forward\n"
        /* 17 */ "  - name: reserved\n"
        /* 18 */ "    path: /c/{subject}\n"
        /* 19 */ "    action: forward\n");
    assert_contains(e, "t.yaml:11:");
    assert_contains(e, "rule 'twice': capture 'x' is bound twice");
    assert_contains(e, "t.yaml:15:");
    assert_contains(e, "rule 'pq': capture 'x' is bound twice");
    assert_contains(e, "t.yaml:18:");
    assert_contains(e, "rule 'reserved': capture name 'subject' is reserved");
    free(e);
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_must_start_with_slash),
        cmocka_unit_test(test_template_doublestar_only_as_last_segment),
        cmocka_unit_test(test_template_capture_must_be_a_whole_segment),
        cmocka_unit_test(test_template_rejects_bad_capture_types),
        cmocka_unit_test(test_template_rejects_bad_capture_names),
        cmocka_unit_test(test_template_rejects_empty_segments),
        cmocka_unit_test(test_template_rejects_dot_segments),
        cmocka_unit_test(test_template_rejects_percent_query_fragment_and_controls),
        cmocka_unit_test(test_template_compiles_literals_captures_and_globs),
        cmocka_unit_test(test_template_covers_pairs),
        cmocka_unit_test(test_literal_template_matches_only_that_exact_path),
        cmocka_unit_test(test_trailing_slash_does_not_match_template_without_it),
        cmocka_unit_test(test_literals_match_case_sensitively),
        cmocka_unit_test(test_named_capture_binds_exactly_one_nonempty_segment),
        cmocka_unit_test(test_uuid_capture_matches_any_case_and_binds_lower_case),
        cmocka_unit_test(test_uuid_capture_rejects_non_uuid_segments),
        cmocka_unit_test(test_int_capture_matches_only_decimal_digits),
        cmocka_unit_test(test_int_capture_binds_the_integer_the_backend_sees),
        cmocka_unit_test(test_int_capture_refuses_non_ascii_it_cannot_read_as_digits),
        cmocka_unit_test(test_int_query_capture_is_normalised_too),
        cmocka_unit_test(test_star_matches_one_segment_without_binding),
        cmocka_unit_test(test_doublestar_matches_zero_or_more_trailing_segments),
        cmocka_unit_test(test_rule_without_methods_matches_every_method),
        cmocka_unit_test(test_get_rule_also_matches_head_but_not_other_methods),
        cmocka_unit_test(test_method_mismatch_falls_through_to_the_next_rule),
        cmocka_unit_test(test_first_rule_in_file_order_wins_over_more_specific_later_rule),
        cmocka_unit_test(test_later_rule_in_another_trie_branch_never_overrides_an_earlier_match),
        cmocka_unit_test(test_typed_and_untyped_siblings_pick_the_first_that_fits),
        cmocka_unit_test(test_query_capture_binds_present_value_lower_cased),
        cmocka_unit_test(test_query_capture_absent_is_not_present),
        cmocka_unit_test(test_repeated_query_capture_is_400),
        cmocka_unit_test(test_percent_encoded_query_key_is_the_same_key),
        cmocka_unit_test(test_fully_percent_encoded_long_query_key_is_still_the_same_key),
        cmocka_unit_test(test_plus_in_query_decodes_to_space),
        cmocka_unit_test(test_query_capture_type_mismatch_is_400),
        cmocka_unit_test(test_capture_buffer_of_documented_size_holds_every_capture),
        cmocka_unit_test(test_allow_rule_binds_policy_parameters_to_captures_subject_and_claims),
        cmocka_unit_test(test_two_thousand_literal_rules_still_match_the_last_one),
        cmocka_unit_test(test_too_many_path_segments_is_400_not_overflow),
        cmocka_unit_test(test_config_rejects_duplicate_rule_names),
        cmocka_unit_test(test_config_rejects_unknown_policy_in_allow),
        cmocka_unit_test(test_config_rejects_a_policy_listed_twice_in_allow),
        cmocka_unit_test(test_config_rejects_rule_with_both_allow_and_action),
        cmocka_unit_test(test_config_rejects_rule_with_neither_allow_nor_action),
        cmocka_unit_test(test_config_rejects_unknown_actions_and_methods),
        cmocka_unit_test(test_config_reports_bad_path_templates_at_the_path),
        cmocka_unit_test(test_config_rejects_rule_after_catch_all_as_unreachable),
        cmocka_unit_test(test_config_rejects_literal_after_capture_covering_it),
        cmocka_unit_test(test_config_rejects_uuid_literal_after_uuid_capture),
        cmocka_unit_test(test_config_rejects_head_rule_after_get_rule_on_same_path),
        cmocka_unit_test(test_config_rejects_any_int_literal_after_int_capture_as_matching_routes_it),
        cmocka_unit_test(test_config_accepts_rules_that_an_earlier_rule_only_partly_covers),
        cmocka_unit_test(test_config_rejects_policy_parameter_the_rule_does_not_bind),
        cmocka_unit_test(test_config_rejects_reserved_and_duplicate_capture_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
