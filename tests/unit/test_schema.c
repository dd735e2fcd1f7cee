/*
 * Unit tests for policies/schema.c: which variant of each policy a schema
 * can run, what a left-out policy lacks, and schema versions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../policies/policy.h"
#include "../../policies/schema.h"
#include "../../lib/base.h"

static char *req_agents[] = {"agents"};
static char *req_backing[] = {"agents", "agents.backing_app_id"};
static char *req_maintainer[] = {"apps.maintainer"};

static struct pol_variant v_agents_backing = {.requires = req_backing, .nrequires = 2};
static struct pol_variant v_agents = {.requires = req_agents, .nrequires = 1};
static struct pol_variant v_plain = {0};
static struct pol_variant v_maintainer = {.requires = req_maintainer, .nrequires = 1};

static struct pol_variant agent_variants[2];
static struct pol_variant creator_variants[2];
static struct pol_policy policies[3];
static struct pol_set set = {.p = policies, .n = 3, .any_requires = 1};

static void setup_set(void)
{
    agent_variants[0] = v_agents_backing;   /* main: workflow-only agents have a backing app */
    agent_variants[1] = v_agents;           /* 1.15.0: agents, no backing_app_id */
    creator_variants[0] = v_maintainer;
    creator_variants[1] = v_plain;
    policies[0] = (struct pol_policy){.name = "owner", .variants = &v_plain, .nvariants = 1};
    policies[1] = (struct pol_policy){.name = "agent", .variants = agent_variants, .nvariants = 2};
    policies[2] = (struct pol_policy){.name = "creator", .variants = creator_variants, .nvariants = 2};
}

static struct pol_schema *schema_of(const char *const *tables, const char *const *columns, size_t n)
{
    struct pol_schema *s = pol_schema_new();
    for (size_t i = 0; i < n; i++)
        pol_schema_add(s, tables[i], columns[i]);
    return s;
}

static void test_each_policy_uses_the_first_variant_the_schema_can_run(void **state)
{
    (void)state;
    setup_set();
    int choice[3];
    const char *missing[3];
    /* main: everything there */
    const char *t1[] = {"apps", "apps", "agents", "agents"}, *c1[] = {"id", "maintainer", "id", "backing_app_id"};
    struct pol_schema *s = schema_of(t1, c1, 4);
    pol_choose(&set, s, choice, missing);
    assert_int_equal(choice[0], 0);
    assert_int_equal(choice[1], 0);
    assert_int_equal(choice[2], 0);
    assert_null(missing[1]);
    pol_schema_free(s);
    /* 1.15.0: agents without backing_app_id */
    const char *t2[] = {"apps", "apps", "agents"}, *c2[] = {"id", "maintainer", "app_id"};
    s = schema_of(t2, c2, 3);
    pol_choose(&set, s, choice, missing);
    assert_int_equal(choice[1], 1);
    assert_int_equal(choice[2], 0);
    pol_schema_free(s);
    /* 1.14: no agents, no maintainer */
    const char *t3[] = {"apps"}, *c3[] = {"id"};
    s = schema_of(t3, c3, 1);
    pol_choose(&set, s, choice, missing);
    assert_int_equal(choice[0], 0);
    assert_int_equal(choice[1], -1);
    assert_string_equal(missing[1], "agents");   /* what the last variant lacks */
    assert_int_equal(choice[2], 1);
    assert_null(missing[2]);
    pol_schema_free(s);
}

static void test_without_a_schema_only_variants_without_requirements_fit(void **state)
{
    (void)state;
    setup_set();
    int choice[3];
    const char *missing[3];
    pol_choose(&set, NULL, choice, missing);
    assert_int_equal(choice[0], 0);
    assert_int_equal(choice[1], -1);
    assert_int_equal(choice[2], 1);
}

static void test_a_column_is_not_its_table_and_names_are_exact(void **state)
{
    (void)state;
    const char *t[] = {"apps"}, *c[] = {"maintainer"};
    struct pol_schema *s = schema_of(t, c, 1);
    assert_true(pol_schema_has(s, "apps"));
    assert_true(pol_schema_has(s, "apps.maintainer"));
    assert_false(pol_schema_has(s, "apps.maintaine"));
    assert_false(pol_schema_has(s, "Apps"));
    assert_false(pol_schema_has(s, "maintainer"));
    pol_schema_free(s);
}

static void test_a_schema_version_is_known_only_when_every_value_is_listed(void **state)
{
    (void)state;
    const char *known[] = {"a4f2d8c9b731", "d9e8f7a6b5c4"};
    const char *one[] = {"d9e8f7a6b5c4"}, *two[] = {"a4f2d8c9b731", "d9e8f7a6b5c4"};
    const char *other[] = {"7a1c2d9e4b60"}, *mixed[] = {"a4f2d8c9b731", "7a1c2d9e4b60"};
    assert_true(pol_version_known(known, 2, one, 1));
    assert_true(pol_version_known(known, 2, two, 2));
    assert_false(pol_version_known(known, 2, other, 1));
    assert_false(pol_version_known(known, 2, mixed, 2));
    assert_false(pol_version_known(known, 2, NULL, 0));   /* no row: unknown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_policy_uses_the_first_variant_the_schema_can_run),
        cmocka_unit_test(test_without_a_schema_only_variants_without_requirements_fit),
        cmocka_unit_test(test_a_column_is_not_its_table_and_names_are_exact),
        cmocka_unit_test(test_a_schema_version_is_known_only_when_every_value_is_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
