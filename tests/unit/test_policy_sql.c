/*
 * Unit tests for policy SQL rewriting (policies/policy.c, myrewrite.c):
 * :name placeholders become $n parameters (PostgreSQL) or one ? per use
 * (MySQL), and nothing inside strings, quoted identifiers, comments or
 * dollar quotes is touched, by each dialect's own lexical rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../policies/policy.h"
#include "../../lib/base.h"

static char *g_sql;
static char **g_params;
static size_t g_np;
static const char *g_why;
static int g_mysql;     /* rewrite in MySQL's dialect */

static void reset(void)
{
    free(g_sql);
    for (size_t i = 0; i < g_np; i++)
        free(g_params[i]);
    free(g_params);
    g_sql = NULL;
    g_params = NULL;
    g_np = 0;
    g_why = NULL;
}

static int teardown(void **state)
{
    (void)state;
    reset();
    g_mysql = 0;
    return 0;
}

static const char *rewrite(const char *sql)
{
    reset();
    g_np = 12345;
    g_sql = g_mysql ? pol_rewrite_sql_mysql(sql, &g_params, &g_np, &g_why)
                    : pol_rewrite_sql(sql, &g_params, &g_np, &g_why);
    if (g_sql == NULL)
        g_np = 0;
    return g_sql;
}

/* Rewrite and compare with the expected SQL and parameter names. */
static void expect_rewrite_at(const char *file, int line, const char *in, const char *want,
                              const char *const *names, size_t nnames)
{
    if (rewrite(in) == NULL) {
        print_error("rewrite of [%s] failed: %s\n", in, g_why);
        _fail(file, line);
    }
    if (strcmp(g_sql, want) != 0) {
        print_error("rewrite of [%s]\n     gave [%s]\n expected [%s]\n", in, g_sql, want);
        _fail(file, line);
    }
    if (g_np != nnames) {
        print_error("rewrite of [%s]: %zu parameters, expected %zu\n", in, g_np, nnames);
        _fail(file, line);
    }
    for (size_t i = 0; i < nnames; i++) {
        if (strcmp(g_params[i], names[i]) != 0) {
            print_error("rewrite of [%s]: $%zu is '%s', expected '%s'\n", in, i + 1, g_params[i], names[i]);
            _fail(file, line);
        }
    }
}
#define NAMES(...) ((const char *const[]){__VA_ARGS__}), \
    (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define NO_NAMES ((const char *const *)NULL), 0
#define EXPECT_REWRITE(in, want, ...) expect_rewrite_at(__FILE__, __LINE__, (in), (want), __VA_ARGS__)

static void expect_error_at(const char *file, int line, const char *in, const char *why)
{
    if (rewrite(in) != NULL) {
        print_error("rewrite of [%s] succeeded as [%s], expected error '%s'\n", in, g_sql, why);
        _fail(file, line);
    }
    if (g_why == NULL || strstr(g_why, why) == NULL) {
        print_error("rewrite of [%s] failed with '%s', expected '%s'\n", in, g_why ? g_why : "(null)", why);
        _fail(file, line);
    }
    if (g_params != NULL) {
        print_error("parameters leaked on error\n");
        _fail(file, line);
    }
}
#define EXPECT_SQL_ERROR(in, why) expect_error_at(__FILE__, __LINE__, (in), (why))
/* The same in MySQL's dialect: names are listed once per ? */
#define EXPECT_MY_REWRITE(in, want, ...) \
    (g_mysql = 1, expect_rewrite_at(__FILE__, __LINE__, (in), (want), __VA_ARGS__), g_mysql = 0)
#define EXPECT_MY_SQL_ERROR(in, why) (g_mysql = 1, expect_error_at(__FILE__, __LINE__, (in), (why)), g_mysql = 0)

static void test_named_placeholder_becomes_positional_parameter(void **state)
{
    (void)state;
    EXPECT_REWRITE(":app_id", "$1", NAMES("app_id"));
    EXPECT_REWRITE("SELECT 1 FROM apps WHERE id = :app_id", "SELECT 1 FROM apps WHERE id = $1",
                   NAMES("app_id"));
    EXPECT_REWRITE("SELECT 1 WHERE a=:a_1 AND b=(:B)", "SELECT 1 WHERE a=$1 AND b=($2)", NAMES("a_1", "B"));
    EXPECT_REWRITE("SELECT 1", "SELECT 1", NO_NAMES);
    assert_null(g_params);
    EXPECT_REWRITE("", "", NO_NAMES);
}

static void test_repeated_names_reuse_the_same_parameter(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT 1 FROM apps WHERE id = :app_id AND owner = :subject AND parent = :app_id",
                   "SELECT 1 FROM apps WHERE id = $1 AND owner = $2 AND parent = $1",
                   NAMES("app_id", "subject"));
    EXPECT_REWRITE(":x :x :x", "$1 $1 $1", NAMES("x"));
    /* a longer name sharing a prefix is another parameter */
    EXPECT_REWRITE(":app :app_id :app", "$1 $2 $1", NAMES("app", "app_id"));
}

static void test_parameters_are_numbered_in_order_of_first_appearance(void **state)
{
    (void)state;
    EXPECT_REWRITE(":c, :a, :c, :b, :a", "$1, $2, $1, $3, $2", NAMES("c", "a", "b"));
}

static void test_type_casts_are_left_untouched(void **state)
{
    (void)state;
    EXPECT_REWRITE(":app_id::uuid", "$1::uuid", NAMES("app_id"));
    EXPECT_REWRITE("SELECT id::text, 'x'::varchar FROM t WHERE id = :id::uuid",
                   "SELECT id::text, 'x'::varchar FROM t WHERE id = $1::uuid", NAMES("id"));
    EXPECT_REWRITE("SELECT CAST(:n AS int)::bigint", "SELECT CAST($1 AS int)::bigint", NAMES("n"));
    /* slices and a lone ':' are not placeholders */
    EXPECT_REWRITE("SELECT a[1:2], b[:3] FROM t", "SELECT a[1:2], b[:3] FROM t", NO_NAMES);
    EXPECT_REWRITE("SELECT ':' || : || :", "SELECT ':' || : || :", NO_NAMES);
}

static void test_placeholders_inside_single_quoted_strings_are_not_replaced(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT ':x' , :y", "SELECT ':x' , $1", NAMES("y"));
    EXPECT_REWRITE("SELECT 'it''s :x' = :y", "SELECT 'it''s :x' = $1", NAMES("y"));
    EXPECT_REWRITE("SELECT '' || :y || ''''", "SELECT '' || $1 || ''''", NAMES("y"));
    /* a standard string: a backslash is an ordinary character */
    EXPECT_REWRITE("SELECT '\\' || :y", "SELECT '\\' || $1", NAMES("y"));
    /* B'' and X'' and U&'' are plain quoting too */
    EXPECT_REWRITE("SELECT X':a', B'01', U&':b' , :c", "SELECT X':a', B'01', U&':b' , $1", NAMES("c"));
}

static void test_placeholders_inside_double_quoted_identifiers_are_not_replaced(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT \":x\" FROM \"my \"\":table\" WHERE a = :a",
                   "SELECT \":x\" FROM \"my \"\":table\" WHERE a = $1", NAMES("a"));
    EXPECT_REWRITE("SELECT \"it's\" , :a", "SELECT \"it's\" , $1", NAMES("a"));
}

static void test_escape_strings_honour_backslash_quotes(void **state)
{
    (void)state;
    /* E'..\'..' : the escaped quote does not end the string */
    EXPECT_REWRITE("SELECT E'it\\'s :x' = :y", "SELECT E'it\\'s :x' = $1", NAMES("y"));
    EXPECT_REWRITE("SELECT e'\\\\' , :y", "SELECT e'\\\\' , $1", NAMES("y"));
    EXPECT_REWRITE("SELECT E'a''b :x\\' :z' , :y", "SELECT E'a''b :x\\' :z' , $1", NAMES("y"));
    /* an identifier ending in E is not an escape-string prefix */
    EXPECT_REWRITE("SELECT CASE'\\' WHEN :a", "SELECT CASE'\\' WHEN $1", NAMES("a"));
    EXPECT_SQL_ERROR("SELECT E'\\'", "unterminated string literal");
}

static void test_placeholders_in_line_comments_are_not_replaced(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT 1 -- owner = :owner\nWHERE id = :id", "SELECT 1 -- owner = :owner\nWHERE id = $1",
                   NAMES("id"));
    EXPECT_REWRITE("SELECT :a -- :b", "SELECT $1 -- :b", NAMES("a"));
    /* PostgreSQL ends a line comment at CR as well as LF */
    EXPECT_REWRITE("SELECT 1 -- :c\rWHERE id = :id", "SELECT 1 -- :c\rWHERE id = $1", NAMES("id"));
    EXPECT_REWRITE("SELECT 1 -- :c\r\nWHERE id = :id", "SELECT 1 -- :c\r\nWHERE id = $1", NAMES("id"));
    /* one '-' is subtraction */
    EXPECT_REWRITE("SELECT :a - :b", "SELECT $1 - $2", NAMES("a", "b"));
}

static void test_placeholders_in_nested_block_comments_are_not_replaced(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT /* :a /* :b */ :c */ :d", "SELECT /* :a /* :b */ :c */ $1", NAMES("d"));
    EXPECT_REWRITE("/**/:a/* ' \" $$ */:b", "/**/$1/* ' \" $$ */$2", NAMES("a", "b"));
    /* a '/' alone is division */
    EXPECT_REWRITE("SELECT :a / :b", "SELECT $1 / $2", NAMES("a", "b"));
}

static void test_placeholders_in_dollar_quotes_are_not_replaced(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT $$ :a ' \" -- $$ = :b", "SELECT $$ :a ' \" -- $$ = $1", NAMES("b"));
    EXPECT_REWRITE("SELECT $tag$ :a $$ :x $$ $tag$ , :b", "SELECT $tag$ :a $$ :x $$ $tag$ , $1", NAMES("b"));
    EXPECT_REWRITE("SELECT $a$ :x $b$ :y $a$ , :z", "SELECT $a$ :x $b$ :y $a$ , $1", NAMES("z"));
    EXPECT_REWRITE("SELECT $_t1$:x$_t1$||:y", "SELECT $_t1$:x$_t1$||$1", NAMES("y"));
}

static void test_claims_placeholder_is_one_dotted_parameter(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT 1 WHERE tenant = :claims.tenant", "SELECT 1 WHERE tenant = $1",
                   NAMES("claims.tenant"));
    EXPECT_REWRITE(":claims.tenant::uuid, :claims.role, :claims.tenant, :subject",
                   "$1::uuid, $2, $1, $3", NAMES("claims.tenant", "claims.role", "subject"));
    /* only claims. takes a dotted name */
    EXPECT_REWRITE("SELECT :t.x", "SELECT $1.x", NAMES("t"));
    EXPECT_REWRITE("SELECT :claims", "SELECT $1", NAMES("claims"));
    EXPECT_REWRITE("SELECT :claims.", "SELECT $1.", NAMES("claims"));
}

static void test_data_placeholder_is_one_dotted_parameter_of_up_to_three_parts(void **state)
{
    (void)state;
    EXPECT_REWRITE("SELECT CAST(:data.access.apps.members AS json), :data.access.apps::json, :data.access.apps.members",
                   "SELECT CAST($1 AS json), $2::json, $1", NAMES("data.access.apps.members", "data.access.apps"));
    /* a fourth part is not part of the name; data alone is a plain name */
    EXPECT_REWRITE("SELECT :data.a.b.c.d", "SELECT $1.d", NAMES("data.a.b.c"));
    EXPECT_REWRITE("SELECT :data, :data.", "SELECT $1, $1.", NAMES("data"));
    EXPECT_MY_REWRITE("JSON_TABLE(:data.access.apps.admins, '$[*]' COLUMNS (k VARCHAR(9) PATH '$.key')) AND :data.access.apps.admins",
                      "JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(9) PATH '$.key')) AND ?",
                      NAMES("data.access.apps.admins", "data.access.apps.admins"));
}

static void test_user_written_positional_parameter_is_an_error(void **state)
{
    (void)state;
    EXPECT_SQL_ERROR("SELECT 1 WHERE id = $1", "write parameters as :name, not $n");
    EXPECT_SQL_ERROR("SELECT :a, $2", "write parameters as :name, not $n");
    /* but inside a string it is just text */
    EXPECT_REWRITE("SELECT '$1', :a", "SELECT '$1', $1", NAMES("a"));
}

static void test_unterminated_strings_comments_and_dollar_quotes_are_errors(void **state)
{
    (void)state;
    EXPECT_SQL_ERROR("SELECT 'abc", "unterminated string literal");
    EXPECT_SQL_ERROR("SELECT 'it''s", "unterminated string literal");
    EXPECT_SQL_ERROR("SELECT \"abc", "unterminated quoted identifier");
    EXPECT_SQL_ERROR("SELECT 1 /* abc", "unterminated comment");
    EXPECT_SQL_ERROR("SELECT 1 /* /* */", "unterminated comment");
    EXPECT_SQL_ERROR("SELECT $$ abc", "unterminated dollar-quoted string");
    EXPECT_SQL_ERROR("SELECT $t$ abc $u$", "unterminated dollar-quoted string");
    EXPECT_SQL_ERROR("SELECT $t$ abc $T$", "unterminated dollar-quoted string");
    EXPECT_SQL_ERROR("SELECT :a, 'x", "unterminated string literal");
    /* a line comment may run to the end */
    EXPECT_REWRITE("SELECT :a -- done", "SELECT $1 -- done", NAMES("a"));
}

static void test_too_many_parameters_is_an_error(void **state)
{
    (void)state;
    char sql[2048];
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, ":p%d ", i);
    assert_non_null(rewrite(sql));
    assert_int_equal(g_np, 64);
    assert_string_equal(g_params[63], "p63");
    assert_non_null(strstr(g_sql, "$64"));
    snprintf(sql + n, sizeof(sql) - n, ":p64");
    EXPECT_SQL_ERROR(sql, "too many parameters");
}

static void test_capture_values_never_reach_the_sql_text(void **state)
{
    (void)state;
    /* The rewrite sees only the administrator's SQL: values are bound as
     * parameters later, so an injection-looking value cannot appear in the
     * statement text whatever it contains. */
    static const char sql[] = "SELECT 1 FROM apps WHERE id = :app_id::uuid AND tenant = :claims.tenant "
                              "AND created_by = :subject";
    static const char *const values[] = {
        "'; DROP TABLE apps; --",
        "1 OR 1=1",
        "$1",
        "$$; DELETE FROM apps; $$",
        "*/ OR true /*",
        "\\'",
    };
    EXPECT_REWRITE(sql, "SELECT 1 FROM apps WHERE id = $1::uuid AND tenant = $2 AND created_by = $3",
                   NAMES("app_id", "claims.tenant", "subject"));
    for (size_t i = 0; i < PC_ARRAY_LEN(values); i++) {
        if (strcmp(values[i], "$1") == 0)
            continue; /* "$1" is our own parameter marker */
        assert_null(strstr(g_sql, values[i]));
    }
    /* the statement text is a function of the SQL alone: same in, same out */
    char *first = pc_strdup(g_sql);
    assert_non_null(rewrite(sql));
    assert_string_equal(g_sql, first);
    free(first);
    /* the only things that changed are the placeholders: every character
     * outside them is the administrator's own */
    assert_null(strstr(g_sql, ":app_id"));
    assert_null(strstr(g_sql, ":subject"));
    assert_null(strstr(g_sql, ":claims"));
}

/* ---- MySQL ---- */

static void test_mysql_each_use_of_a_name_is_its_own_question_mark(void **state)
{
    (void)state;
    EXPECT_MY_REWRITE("SELECT 1 FROM apps WHERE id = :app_id AND owner = :subject AND parent = :app_id",
                      "SELECT 1 FROM apps WHERE id = ? AND owner = ? AND parent = ?",
                      NAMES("app_id", "subject", "app_id"));
    EXPECT_MY_REWRITE(":x :x", "? ?", NAMES("x", "x"));
    EXPECT_MY_REWRITE("SELECT 1", "SELECT 1", NO_NAMES);
    EXPECT_MY_REWRITE(":claims.role = 'a' AND :claims", "? = 'a' AND ?", NAMES("claims.role", "claims"));
    /* := is assignment, not a placeholder; a lone : is left alone */
    EXPECT_MY_REWRITE("SELECT @v := :x, a : b", "SELECT @v := ?, a : b", NAMES("x"));
}

static void test_mysql_strings_escape_with_backslashes_and_doubled_quotes(void **state)
{
    (void)state;
    EXPECT_MY_REWRITE("SELECT 'it\\'s :x' = :y", "SELECT 'it\\'s :x' = ?", NAMES("y"));
    EXPECT_MY_REWRITE("SELECT 'a'':x' , :y", "SELECT 'a'':x' , ?", NAMES("y"));
    EXPECT_MY_REWRITE("SELECT '\\\\' , :y", "SELECT '\\\\' , ?", NAMES("y"));
    /* in MySQL "..." is a string too, with the same escapes */
    EXPECT_MY_REWRITE("SELECT \":x \\\" :z\" , :y", "SELECT \":x \\\" :z\" , ?", NAMES("y"));
    /* a ? inside a string is text, not a parameter */
    EXPECT_MY_REWRITE("SELECT '?', :a", "SELECT '?', ?", NAMES("a"));
    EXPECT_MY_SQL_ERROR("SELECT ':a\\'", "unterminated string literal");
}

static void test_mysql_backquoted_identifiers_have_no_backslash_escapes(void **state)
{
    (void)state;
    EXPECT_MY_REWRITE("SELECT `:x` FROM `my``:t` WHERE a = :a", "SELECT `:x` FROM `my``:t` WHERE a = ?",
                      NAMES("a"));
    EXPECT_MY_REWRITE("SELECT `a\\` , :b", "SELECT `a\\` , ?", NAMES("b"));
    EXPECT_MY_SQL_ERROR("SELECT `a", "unterminated quoted identifier");
}

static void test_mysql_comments_follow_mysql(void **state)
{
    (void)state;
    EXPECT_MY_REWRITE("SELECT 1 # :x\nWHERE id = :id", "SELECT 1 # :x\nWHERE id = ?", NAMES("id"));
    EXPECT_MY_REWRITE("SELECT 1 -- :x\nWHERE id = :id", "SELECT 1 -- :x\nWHERE id = ?", NAMES("id"));
    /* "--" without a space after it is two minus signs */
    EXPECT_MY_REWRITE("SELECT 1--:x", "SELECT 1--?", NAMES("x"));
    EXPECT_MY_REWRITE("SELECT 1 --\t:x\n, :y", "SELECT 1 --\t:x\n, ?", NAMES("y"));
    /* block comments do not nest in MySQL */
    EXPECT_MY_REWRITE("SELECT /* :a /* :b */ :c", "SELECT /* :a /* :b */ ?", NAMES("c"));
    EXPECT_MY_SQL_ERROR("SELECT /* :a", "unterminated comment");
}

static void test_mysql_refuses_what_it_would_read_otherwise(void **state)
{
    (void)state;
    EXPECT_MY_SQL_ERROR("SELECT 1 FROM apps WHERE id = ?", "write parameters as :name, not ?");
    EXPECT_MY_SQL_ERROR("SELECT 1 /*! AND id = :x */", "executable comments");
    EXPECT_MY_SQL_ERROR("SELECT 1 /*M!100000 AND 1 */", "executable comments");
    /* $1 is no marker of ours in MySQL: left for the server to refuse */
    EXPECT_MY_REWRITE("SELECT $1, :a", "SELECT $1, ?", NAMES("a"));
    /* PostgreSQL's dollar quotes are not quotes in MySQL */
    EXPECT_MY_REWRITE("SELECT $$ :a $$", "SELECT $$ ? $$", NAMES("a"));
}

static void test_mysql_too_many_uses_is_an_error(void **state)
{
    (void)state;
    char sql[1024] = "SELECT 1 WHERE 1";
    for (int i = 0; i <= POL_MAX_PARAMS; i++)
        strcat(sql, " OR :p");
    EXPECT_MY_SQL_ERROR(sql, "too many parameters");
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_named_placeholder_becomes_positional_parameter, teardown),
        cmocka_unit_test_teardown(test_repeated_names_reuse_the_same_parameter, teardown),
        cmocka_unit_test_teardown(test_parameters_are_numbered_in_order_of_first_appearance, teardown),
        cmocka_unit_test_teardown(test_type_casts_are_left_untouched, teardown),
        cmocka_unit_test_teardown(test_placeholders_inside_single_quoted_strings_are_not_replaced, teardown),
        cmocka_unit_test_teardown(test_placeholders_inside_double_quoted_identifiers_are_not_replaced, teardown),
        cmocka_unit_test_teardown(test_escape_strings_honour_backslash_quotes, teardown),
        cmocka_unit_test_teardown(test_placeholders_in_line_comments_are_not_replaced, teardown),
        cmocka_unit_test_teardown(test_placeholders_in_nested_block_comments_are_not_replaced, teardown),
        cmocka_unit_test_teardown(test_placeholders_in_dollar_quotes_are_not_replaced, teardown),
        cmocka_unit_test_teardown(test_claims_placeholder_is_one_dotted_parameter, teardown),
        cmocka_unit_test_teardown(test_data_placeholder_is_one_dotted_parameter_of_up_to_three_parts, teardown),
        cmocka_unit_test_teardown(test_user_written_positional_parameter_is_an_error, teardown),
        cmocka_unit_test_teardown(test_unterminated_strings_comments_and_dollar_quotes_are_errors, teardown),
        cmocka_unit_test_teardown(test_too_many_parameters_is_an_error, teardown),
        cmocka_unit_test_teardown(test_capture_values_never_reach_the_sql_text, teardown),
        cmocka_unit_test_teardown(test_mysql_each_use_of_a_name_is_its_own_question_mark, teardown),
        cmocka_unit_test_teardown(test_mysql_strings_escape_with_backslashes_and_doubled_quotes, teardown),
        cmocka_unit_test_teardown(test_mysql_backquoted_identifiers_have_no_backslash_escapes, teardown),
        cmocka_unit_test_teardown(test_mysql_comments_follow_mysql, teardown),
        cmocka_unit_test_teardown(test_mysql_refuses_what_it_would_read_otherwise, teardown),
        cmocka_unit_test_teardown(test_mysql_too_many_uses_is_an_error, teardown),
    };
    return cmocka_run_group_tests_name("policy_sql", tests, NULL, NULL);
}
