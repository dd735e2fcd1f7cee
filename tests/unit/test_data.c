/*
 * Unit tests for operator data (policies/data.c, the `data` section): the
 * declared shape, the file read strictly with every problem at its
 * file:line:col, what a binding is bound to (JSON, per view), rules that
 * bind it, and the decision engine keying its cache on the data bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "../../proxy/config.h"
#include "../../rules/match.h"
#include "../../policies/data.h"
#include "../../policies/db.h"
#include "../../policies/decide.h"
#include "../../policies/gen.h"
#include "../../policies/policy.h"
#include "../../lib/base.h"

#define CFG_FILE "portcullis.yaml"

static char dir[64];
static char *g_errors;

static char *path_of(const char *name)
{
    return pc_sprintf("%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char *p = path_of(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

/* A config whose data set 'acl' reads file (relative to the temp dir; ""
 * for none), with the Dify-like shape, a policy binding it and a rule. */
static struct pc_config *load_with(const char *file)
{
    char *path = file[0] ? path_of(file) : pc_strdup("");
    char *text = pc_sprintf(
        "listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n"
        "identity: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
        "database: {url: \"host=/nonexistent\"}\n"
        "data:\n"
        "  acl:\n"
        "    file: \"%s\"\n"
        "    shape:\n"
        "      apps:\n"
        "        keys: uuid\n"
        "        fields:\n"
        "          members: [email, uuid]\n"
        "          admins: bool\n"
        "          level: int\n"
        "      blocked: [string]\n"
        "policies:\n"
        "  listed: SELECT 1 WHERE :app_id IN (SELECT 1) AND :data.acl.apps.members IS NOT NULL AND :subject = ''\n"
        "  off: SELECT :data.acl.apps.admins, :data.acl.apps, :data.acl.blocked\n"
        "  plain: SELECT :subject\n"
        "rules:\n"
        "  - name: logs\n"
        "    path: /apps/{app_id:uuid}/logs\n"
        "    allow: [plain, listed, off]\n",
        path);
    free(g_errors);
    g_errors = NULL;
    struct pc_config *c = cfg_load_text(CFG_FILE, text, strlen(text), NULL, &g_errors);
    free(text);
    free(path);
    return c;
}

/* The value a slot is bound to in view v. */
static const char *value(const struct pc_config *c, const struct pol_data_view *v, const char *slot)
{
    int i = pol_data_slot(c->pol->data, slot);
    assert_true(i >= 0);
    return v->value[i];
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p != NULL && *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l == n && memcmp(p, line, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

#define EXPECT_LINE(text, ...)                                                      \
    do {                                                                            \
        char *want_ = pc_sprintf(__VA_ARGS__);                                      \
        if (!has_line((text), want_)) {                                             \
            print_error("no line '%s' in:\n%s\n", want_, (text) ? (text) : "(null)"); \
            free(want_);                                                            \
            fail();                                                                 \
        }                                                                           \
        free(want_);                                                                \
    } while (0)

/* ---- the file ---- */

static void test_a_file_is_bound_as_json_rows_keys_and_values(void **state)
{
    (void)state;
    write_file("ok.yaml",
               "# an operator's file\n"
               "apps:\n"
               "  B1000000-0000-4000-8000-0000000000A1:\n"
               "    members: [Editor2@Acme.test, A0000000-0000-4000-8000-000000000005]\n"
               "  b1000000-0000-4000-8000-0000000000a4:\n"
               "    admins: false\n"
               "    level: -3\n"
               "  b1000000-0000-4000-8000-0000000000a5:\n"
               "blocked: [\"say \\\"hi\\\"\", caf\xc3\xa9]\n");
    struct pc_config *c = load_with("ok.yaml");
    assert_non_null(c);
    const struct pol_data *d = c->pol->data;
    assert_int_equal(d->nsets, 1);
    assert_int_equal(d->nentries, 5);
    /* uuids lower-cased as Werkzeug and Dify write them; emails as written */
    assert_string_equal(value(c, d->full, "acl.apps.members"),
                        "[{\"key\":\"b1000000-0000-4000-8000-0000000000a1\",\"value\":\"Editor2@Acme.test\"},"
                        "{\"key\":\"b1000000-0000-4000-8000-0000000000a1\",\"value\":\"a0000000-0000-4000-8000-000000000005\"}]");
    assert_string_equal(value(c, d->full, "acl.apps.admins"),
                        "[{\"key\":\"b1000000-0000-4000-8000-0000000000a4\",\"value\":false}]");
    assert_string_equal(value(c, d->full, "acl.apps.level"),
                        "[{\"key\":\"b1000000-0000-4000-8000-0000000000a4\",\"value\":-3}]");
    assert_string_equal(value(c, d->full, "acl.apps"),
                        "[\"b1000000-0000-4000-8000-0000000000a1\",\"b1000000-0000-4000-8000-0000000000a4\","
                        "\"b1000000-0000-4000-8000-0000000000a5\"]");
    /* JSON escapes, UTF-8 passes */
    assert_string_equal(value(c, d->full, "acl.blocked"), "[\"say \\\"hi\\\"\",\"caf\xc3\xa9\"]");
    assert_int_equal(d->full->rows[pol_data_slot(d, "acl.apps.members")], 2);
    /* empty: as if there were no file */
    assert_string_equal(value(c, d->empty, "acl.apps.members"), "[]");
    assert_string_equal(value(c, d->empty, "acl.blocked"), "[]");
    int s = pol_data_slot(d, "acl.apps.members");
    assert_memory_not_equal(d->full->digest[s], d->empty->digest[s], 32);
    /* one entry left out (explain): only that entry's rows go */
    struct pol_data_view *v = pol_data_view_new(d, 0, 0, 0, 0);
    assert_string_equal(value(c, v, "acl.apps.members"), "[]");
    assert_string_equal(value(c, v, "acl.apps.admins"), value(c, d->full, "acl.apps.admins"));
    assert_string_equal(value(c, v, "acl.apps"), "[\"b1000000-0000-4000-8000-0000000000a4\","
                                                 "\"b1000000-0000-4000-8000-0000000000a5\"]");
    assert_string_equal(value(c, v, "acl.blocked"), value(c, d->full, "acl.blocked"));
    pol_data_view_free(v);
    /* the entries and where the file wrote them */
    assert_int_equal(d->sets[0].tops[0].entries[1].line, 5);
    assert_int_equal(d->sets[0].tops[0].entries[1].col, 3);
    cfg_unref(c);
}

static void test_no_file_and_an_empty_file_bind_empty_lists(void **state)
{
    (void)state;
    struct pc_config *c = load_with("");
    assert_non_null(c);
    assert_null(c->pol->data->sets[0].file);
    assert_string_equal(value(c, c->pol->data->full, "acl.apps.members"), "[]");
    assert_memory_equal(c->pol->data->full->digest, c->pol->data->empty->digest,
                        c->pol->data->full->n * sizeof(*c->pol->data->full->digest));
    cfg_unref(c);
    write_file("empty.yaml", "# nothing yet\n");
    c = load_with("empty.yaml");
    assert_non_null(c);
    assert_int_equal(c->pol->data->nentries, 0);
    cfg_unref(c);
    write_file("nulls.yaml", "apps:\nblocked: ~\n");
    c = load_with("nulls.yaml");
    assert_non_null(c);
    assert_int_equal(c->pol->data->nentries, 0);
    cfg_unref(c);
}

static void test_every_problem_of_a_file_is_reported_at_its_line_and_column(void **state)
{
    (void)state;
    write_file("bad.yaml",
               "apps:\n"
               "  not-a-uuid:\n"                                                     /* 2:3 */
               "    members: [x@example.com]\n"
               "  b1000000-0000-4000-8000-0000000000a1:\n"
               "    members: [editor@acme.test, someone, x@acme, \"${HOME}\", caf\xc3\xa9@acme.test]\n" /* 5 */
               "    admin: false\n"                                                  /* 6:5 */
               "    level: 1.5\n"                                                    /* 7:12 */
               "  B1000000-0000-4000-8000-0000000000A1: {admins: yes}\n"             /* 8:3 dup; 8:50 */
               "  b1000000-0000-4000-8000-0000000000a2:\n"
               "    members: editor@acme.test\n"                                     /* 10:14 */
               "  b1000000-0000-4000-8000-0000000000a3: [1]\n"                        /* 11:42 */
               "blocked: {a: 1}\n"                                                    /* 12:10 */
               "agents: {}\n");                                                      /* 13:1 */
    struct pc_config *c = load_with("bad.yaml");
    assert_null(c);
    char *f = path_of("bad.yaml");
    EXPECT_LINE(g_errors, "%s:2:3: 'not-a-uuid' is not a UUID", f);
    EXPECT_LINE(g_errors, "%s:5:33: 'someone' is not a UUID or an email address", f);
    EXPECT_LINE(g_errors, "%s:5:42: 'x@acme' is not a UUID or an email address", f);
    /* values are read literally: no ${VAR} in an operator's data */
    EXPECT_LINE(g_errors, "%s:5:50: '${HOME}' is not a UUID or an email address", f);
    EXPECT_LINE(g_errors, "%s:5:61: 'caf\xc3\xa9@acme.test' is not a UUID or an email address (addresses are "
                          "matched in ASCII only: name that account by its id)", f);
    EXPECT_LINE(g_errors, "%s:6:5: unknown key 'admin' in an entry of apps (did you mean 'admins'?)", f);
    EXPECT_LINE(g_errors, "%s:7:12: '1.5' is not an integer", f);
    EXPECT_LINE(g_errors, "%s:8:3: duplicate apps entry 'B1000000-0000-4000-8000-0000000000A1' (first at line 4)", f);
    EXPECT_LINE(g_errors, "%s:10:14: apps.members must be a list (of a UUID or an email address)", f);
    EXPECT_LINE(g_errors, "%s:11:41: an entry of apps is a mapping of fields", f);
    EXPECT_LINE(g_errors, "%s:12:10: blocked must be a list", f);
    EXPECT_LINE(g_errors, "%s:13:1: unknown key 'agents' in data set 'acl'", f);
    free(f);
}

/* Files with many entries: every duplicate is still found, at its line (the
 * checks go through a set: comparing every pair took minutes at 100,000). */
static void test_a_file_with_many_entries_and_members_reports_each_duplicate_at_its_line(void **state)
{
    (void)state;
    enum { N = 99998 }; /* with the two below: 100,000, the most a mapping may hold */
    struct pc_buf b = {0};
    pc_buf_adds(&b, "apps:\n");
    for (int i = 0; i < N; i++)
        pc_buf_addf(&b, "  b1000000-0000-4000-8000-%012x: {admins: false}\n", i);             /* line i + 2 */
    pc_buf_addf(&b, "  B1000000-0000-4000-8000-%012X: {admins: true}\n", 4242);            /* N + 2: dup */
    pc_buf_adds(&b, "  c1000000-0000-4000-8000-000000000001:\n    members:\n");             /* N + 3, N + 4 */
    for (int i = 0; i < N; i++)
        pc_buf_addf(&b, "      - m%d@acme.test\n", i);                                       /* N + 5 + i */
    pc_buf_adds(&b, "      - m777@acme.test\n");                                            /* 2N + 5: twice */
    pc_buf_adds(&b, "blocked:\n");
    for (int i = 0; i < 3; i++)
        pc_buf_adds(&b, "  - x\n");                                                         /* 2N + 7..9 */
    write_file("many.yaml", pc_buf_cstr(&b));
    pc_buf_free(&b);
    char *f = path_of("many.yaml");
    struct pc_config *c = load_with("many.yaml");
    assert_null(c);
    EXPECT_LINE(g_errors, "%s:%d:3: duplicate apps entry 'B1000000-0000-4000-8000-%012X' (first at line %d)", f,
                N + 2, 4242, 4242 + 2);

    /* the same without the duplicate entry: loads, warning of the repeats */
    b = (struct pc_buf){0};
    pc_buf_adds(&b, "apps:\n");
    for (int i = 0; i < N; i++)
        pc_buf_addf(&b, "  b1000000-0000-4000-8000-%012x: {members: [m%d@acme.test, m%d@acme.test]}\n", i, i,
                    i == 99 ? 99 : i + 1);
    pc_buf_adds(&b, "blocked: [x, y, x]\n");
    write_file("many.yaml", pc_buf_cstr(&b));
    pc_buf_free(&b);
    c = load_with("many.yaml");
    assert_non_null(c);
    assert_non_null(c->warnings);
    EXPECT_LINE(c->warnings, "%s:%d:67: warning: apps.members of b1000000-0000-4000-8000-%012x lists "
                             "'m99@acme.test' twice", f, 99 + 2, 99);
    EXPECT_LINE(c->warnings, "%s:%d:17: warning: blocked lists 'x' twice", f, N + 2);
    cfg_unref(c);

    /* a key written twice the same way is YAML's own duplicate, at its line */
    b = (struct pc_buf){0};
    pc_buf_adds(&b, "apps:\n");
    for (int i = 0; i < N; i++)
        pc_buf_addf(&b, "  b1000000-0000-4000-8000-%012x: {}\n", i);
    pc_buf_addf(&b, "  b1000000-0000-4000-8000-%012x: {}\n", 3); /* among the first, compared one by one */
    write_file("many.yaml", pc_buf_cstr(&b));
    pc_buf_free(&b);
    c = load_with("many.yaml");
    assert_null(c);
    EXPECT_LINE(g_errors, "%s:%d:3: duplicate key 'b1000000-0000-4000-8000-%012x' (data set 'acl')", f, N + 2, 3);
    free(f);
}

/* A bad value is quoted in its message only up to 160 bytes. */
static void test_a_long_bad_value_is_cut_in_its_message(void **state)
{
    (void)state;
    struct pc_buf b = {0};
    pc_buf_adds(&b, "blocked: []\napps:\n  b1000000-0000-4000-8000-0000000000a1: {members: [");
    for (int i = 0; i < 100000; i++)
        pc_buf_adds(&b, "z");
    pc_buf_adds(&b, "]}\n");
    write_file("long.yaml", pc_buf_cstr(&b));
    pc_buf_free(&b);
    struct pc_config *c = load_with("long.yaml");
    assert_null(c);
    char *f = path_of("long.yaml");
    char z[161];
    memset(z, 'z', 160);
    z[160] = '\0';
    EXPECT_LINE(g_errors, "%s:3:52: '%s...' is not a UUID or an email address", f, z);
    assert_true(strlen(g_errors) < 1024);
    free(f);
}

static void test_a_file_that_cannot_be_read_is_reported_where_the_config_names_it(void **state)
{
    (void)state;
    assert_null(load_with("absent.yaml"));
    char *f = path_of("absent.yaml");
    EXPECT_LINE(g_errors, CFG_FILE ":7:11: data set 'acl': cannot read %s: No such file or directory", f);
    free(f);
    write_file("syntax.yaml", "apps:\n  - [\n");
    assert_null(load_with("syntax.yaml"));
    f = path_of("syntax.yaml");
    assert_non_null(strstr(g_errors, f));
    assert_non_null(strstr(g_errors, "(data set 'acl')"));
    free(f);
}

/* ---- the declaration ---- */

static void expect_config_error(const char *data_section, const char *loc, const char *frag)
{
    char *text = pc_sprintf("listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n"
                            "database: {url: \"host=/nonexistent\"}\n"
                            "%s"
                            "policies:\n  p: SELECT 1\n",
                            data_section);
    free(g_errors);
    g_errors = NULL;
    struct pc_config *c = cfg_load_text(CFG_FILE, text, strlen(text), NULL, &g_errors);
    free(text);
    if (c != NULL || g_errors == NULL || strstr(g_errors, loc) == NULL || strstr(g_errors, frag) == NULL) {
        print_error("expected %s ... %s, got:\n%s\n", loc, frag, g_errors ? g_errors : "(loaded)");
        cfg_unref(c);
        fail();
    }
}

static void test_shapes_are_declared_strictly(void **state)
{
    (void)state;
    expect_config_error("data:\n  acl:\n    file: x\n    shape: {apps: {keys: uuidd}}\n", CFG_FILE ":7:26:",
                        "a data type is one of uuid, email, string, int, bool");
    expect_config_error("data:\n  acl:\n    shape: {apps: {keys: uuid, fields: {m: [bool]}}}\n", CFG_FILE ":6:45:",
                        "bool is a field's type, not a key's or a list item's");
    expect_config_error("data:\n  acl:\n    shape: {apps: uuid}\n", CFG_FILE ":6:19:",
                        "is a list of values ([uuid], ...) or a mapping of entries (keys:, fields:)");
    expect_config_error("data:\n  acl:\n    shape: {apps: {fields: {}}}\n", CFG_FILE ":6:19:",
                        "data key 'apps' needs keys:");
    expect_config_error("data:\n  acl:\n    fil: x\n    shape: {apps: [uuid]}\n", CFG_FILE ":6:5:",
                        "unknown key 'fil' in a data set (did you mean 'file'?)");
    expect_config_error("data:\n  acl:\n    file: x\n", CFG_FILE ":6:5:", "data set 'acl' needs shape:");
    expect_config_error("data:\n  a-b:\n    shape: {apps: [uuid]}\n", CFG_FILE ":5:3:",
                        "a data set's name is an identifier");
    expect_config_error("data:\n  acl:\n    shape: {apps: {keys: uuid, known: {postgresql: \"SELECT :x\", "
                        "mysql: \"SELECT :keys\"}}}\n",
                        CFG_FILE ":6:39:", "data acl.apps: known: binds :x; its one parameter is :keys");
}

static void test_a_rule_binds_only_declared_data(void **state)
{
    (void)state;
    write_file("one.yaml", "apps:\n  b1000000-0000-4000-8000-0000000000a1: {admins: false}\n");
    struct pc_config *c = load_with("one.yaml");
    assert_non_null(c);
    const struct rule *r = &c->rules->rules[0];
    assert_true(r->plan.binds_data);
    assert_false(dec_step_binds_data(&r->plan, 0)); /* plain */
    assert_true(dec_step_binds_data(&r->plan, 1));  /* listed */
    const struct dec_step *st = &r->plan.steps[2];  /* off */
    assert_int_equal(st->nbinds, 3);
    for (size_t i = 0; i < st->nbinds; i++)
        assert_int_equal(st->binds[i].kind, DEC_B_DATA);
    assert_int_equal(st->binds[0].capture, pol_data_slot(c->pol->data, "acl.apps.admins"));
    cfg_unref(c);

    const char *text = "listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n"
                       "identity: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                       "database: {url: \"host=/nonexistent\"}\n"
                       "policies:\n  p: SELECT :data.acl.apps\n"
                       "rules:\n  - name: r\n    path: /x\n    allow: [p]\n";
    free(g_errors);
    g_errors = NULL;
    assert_null(cfg_load_text(CFG_FILE, text, strlen(text), NULL, &g_errors));
    assert_non_null(strstr(g_errors, CFG_FILE ":10:13: rule 'r': policy 'p' binds :data.acl.apps, which no data set "
                                     "declares"));
    /* a capture may not be called data */
    text = "listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n"
           "identity: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
           "database: {url: \"host=/nonexistent\"}\n"
           "policies:\n  p: SELECT :data\n"
           "rules:\n  - name: r\n    path: /x/{data}\n    allow: [p]\n";
    free(g_errors);
    g_errors = NULL;
    assert_null(cfg_load_text(CFG_FILE, text, strlen(text), NULL, &g_errors));
    assert_non_null(strstr(g_errors, "capture name 'data' is reserved"));
}

static void test_a_test_case_may_bind_another_file(void **state)
{
    (void)state;
    write_file("one.yaml", "apps:\n  b1000000-0000-4000-8000-0000000000a1: {admins: false}\n");
    write_file("two.yaml", "apps:\n  b1000000-0000-4000-8000-0000000000a2: {members: [a@b.cd]}\n");
    write_file("three.yaml", "apps:\n  oops: {}\n");
    struct pc_config *c = load_with("one.yaml");
    assert_non_null(c);
    const struct pol_data *d = c->pol->data;
    char *p2 = path_of("two.yaml"), *p3 = path_of("three.yaml");
    const char *names[] = {"acl"}, *at[] = {"t.yaml:3:4"};
    const char *paths[] = {p2};
    struct pc_buf errors = {0};
    struct pol_data_view *v = pol_data_view_files(d, names, paths, at, 1, &errors);
    assert_non_null(v);
    assert_string_equal(value(c, v, "acl.apps.members"),
                        "[{\"key\":\"b1000000-0000-4000-8000-0000000000a2\",\"value\":\"a@b.cd\"}]");
    assert_string_equal(value(c, v, "acl.apps.admins"), "[]");
    pol_data_view_free(v);
    paths[0] = NULL; /* none */
    v = pol_data_view_files(d, names, paths, at, 1, &errors);
    assert_string_equal(value(c, v, "acl.apps"), "[]");
    pol_data_view_free(v);
    paths[0] = p3;
    assert_null(pol_data_view_files(d, names, paths, at, 1, &errors));
    assert_non_null(strstr(pc_buf_cstr(&errors), ":2:3: 'oops' is not a UUID"));
    names[0] = "acls";
    errors.len = 0;
    assert_null(pol_data_view_files(d, names, paths, at, 1, &errors));
    assert_string_equal(pc_buf_cstr(&errors), "t.yaml:3:4: the config declares no data set 'acls'\n");
    pc_buf_free(&errors);
    free(p2);
    free(p3);
    cfg_unref(c);
}

/* ---- the decision engine: the data bound, and the cache key ---- */

struct db_pool {
    struct db_query *q[8];
    int n;
};
static struct db_pool *g_pool;

static struct db_pool *fake_new(struct event_base *base, int worker, int nconns, struct pol_gen *gen, int listener,
                                const struct db_events *ev)
{
    (void)base, (void)worker, (void)nconns, (void)gen, (void)listener;
    struct db_state up = {1, 0, 0};
    ev->state(ev->arg, &up);
    return g_pool = pc_calloc(1, sizeof(*g_pool));
}

static void fake_free(struct db_pool *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->q[i] != NULL)
            p->q[i]->done(p->q[i], DBQ_ERROR, 0, "shutting down");
    free(p);
}

static void fake_set_gen(struct db_pool *p, struct pol_gen *gen)
{
    (void)p, (void)gen;
}

static int fake_submit(struct db_pool *p, struct db_query *q)
{
    assert_true(p->n < 8);
    p->q[p->n++] = q;
    return 0;
}

static int fake_check(const struct pol_gen *gen, char **errors, char **warnings)
{
    (void)gen;
    *errors = *warnings = NULL;
    return 0;
}

static const struct db_driver fake_driver = {"fake", fake_new, fake_free, fake_set_gen, fake_submit, fake_check};

static int g_done;
static enum dec_result g_res;

static void on_done(struct dec_request *d, enum dec_result res, const char *reason)
{
    (void)d, (void)reason;
    g_done++;
    g_res = res;
}

/* Decide step 1 of rule 'logs' (policy listed) alone, with view v. */
static void decide(struct dec_ctx *ctx, struct pc_config *c, struct dec_plan *plan, const struct pol_data_view *v)
{
    static const char *captures[] = {"b1000000-0000-4000-8000-0000000000a1"};
    static const size_t lens[] = {36};
    static const int present[] = {1};
    static struct dec_request reqs[8];
    static int nreqs;
    assert_true(nreqs < 8);
    struct dec_request *d = &reqs[nreqs++]; /* lives until it is decided: every one is, below */
    d->cfg = c->pol;
    d->plan = plan;
    d->captures = captures;
    d->capture_lens = lens;
    d->capture_present = present;
    d->subject = "u1";
    d->subject_len = 2;
    d->data_view = v;
    d->done = on_done;
    dec_start(ctx, d);
}

static void test_the_data_bound_is_the_views_and_keys_the_cache(void **state)
{
    (void)state;
    write_file("one.yaml", "apps:\n  b1000000-0000-4000-8000-0000000000a1: {members: [a@b.cd]}\n");
    struct pc_config *c = load_with("one.yaml");
    assert_non_null(c);
    c->pol->generation = 1;
    struct event_base *base = event_base_new();
    struct dec_counters *m = pc_calloc(1, sizeof(*m));
    struct dec_ctx *ctx = dec_ctx_new(base, 0, 1, c->pol, &fake_driver, m);
    struct dec_plan plan = c->rules->rules[0].plan;
    plan.steps = &c->rules->rules[0].plan.steps[1]; /* listed */
    plan.nsteps = 1;
    const struct pol_data *d = c->pol->data;
    int slot = pol_data_slot(d, "acl.apps.members");

    /* the file's: the query gets its JSON as the parameter the policy names */
    g_done = 0;
    decide(ctx, c, &plan, NULL);
    assert_int_equal(g_pool->n, 1);
    struct db_query *q = g_pool->q[0];
    const struct pol_policy *p = &c->pol->set->p[q->policy];
    int k;
    for (k = 0; k < q->nparams; k++)
        if (strcmp(p->params[k], "data.acl.apps.members") == 0)
            break;
    assert_true(k < q->nparams);
    assert_string_equal(q->values[k], d->full->value[slot]);
    assert_int_equal(q->lengths[k], d->full->len[slot]);
    g_pool->q[0] = NULL;
    q->done(q, DBQ_OK, 1, NULL);
    assert_int_equal(g_done, 1);
    assert_int_equal(g_res, DEC_ALLOW);
    /* again: from the cache */
    decide(ctx, c, &plan, NULL);
    assert_int_equal(g_done, 2);
    assert_int_equal(g_pool->n, 1);
    /* without the data: another key, another query, with [] */
    decide(ctx, c, &plan, d->empty);
    assert_int_equal(g_done, 2);
    assert_int_equal(g_pool->n, 2);
    q = g_pool->q[1];
    assert_string_equal(q->values[k], "[]");
    g_pool->q[1] = NULL;
    q->done(q, DBQ_OK, 0, NULL);
    assert_int_equal(g_res, DEC_DENY);
    /* and each is cached on its own */
    decide(ctx, c, &plan, NULL);
    assert_int_equal(g_res, DEC_ALLOW);
    decide(ctx, c, &plan, d->empty);
    assert_int_equal(g_res, DEC_DENY);
    assert_int_equal(g_pool->n, 2);
    assert_int_equal(g_done, 5);

    dec_ctx_free(ctx);
    free(m);
    event_base_free(base);
    cfg_unref(c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/pc-test-data-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"ok.yaml", "empty.yaml", "nulls.yaml", "bad.yaml", "syntax.yaml",
                                        "one.yaml", "two.yaml", "three.yaml", "many.yaml", "long.yaml"};
    for (size_t i = 0; i < PC_ARRAY_LEN(files); i++) {
        char *p = path_of(files[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    free(g_errors);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_file_is_bound_as_json_rows_keys_and_values),
        cmocka_unit_test(test_no_file_and_an_empty_file_bind_empty_lists),
        cmocka_unit_test(test_every_problem_of_a_file_is_reported_at_its_line_and_column),
        cmocka_unit_test(test_a_file_with_many_entries_and_members_reports_each_duplicate_at_its_line),
        cmocka_unit_test(test_a_long_bad_value_is_cut_in_its_message),
        cmocka_unit_test(test_a_file_that_cannot_be_read_is_reported_where_the_config_names_it),
        cmocka_unit_test(test_shapes_are_declared_strictly),
        cmocka_unit_test(test_a_rule_binds_only_declared_data),
        cmocka_unit_test(test_a_test_case_may_bind_another_file),
        cmocka_unit_test(test_the_data_bound_is_the_views_and_keys_the_cache),
    };
    return cmocka_run_group_tests_name("data", tests, setup, teardown);
}
