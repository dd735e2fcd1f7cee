/*
 * Unit tests for the decision engine (policies/decide.c) on its own,
 * against a fake database pool: the test decides when each query answers
 * and what it answers. What a decision comes to, in which order reasons
 * read, when a query is shared, cached, not cached, or never sent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../policies/db.h"
#include "../../policies/decide.h"
#include "../../policies/gen.h"
#include "../../policies/policy.h"
#include "../../lib/base.h"

/* ---- a fake pool: queries wait until the test answers them ---- */

#define FAKE_MAX 64

struct db_pool {
    struct db_events ev;
    struct db_query *q[FAKE_MAX];
    int n;
    int refuse;        /* submit answers -1: no connection */
    int submitted;
};

static struct db_pool *g_pool;

static struct db_pool *fake_new(struct event_base *base, int worker, int nconns, struct pol_gen *gen, int listener,
                                const struct db_events *ev)
{
    (void)base, (void)worker, (void)nconns, (void)gen, (void)listener;
    struct db_pool *p = pc_calloc(1, sizeof(*p));
    p->ev = *ev;
    struct db_state up = {1, 0, 0};
    ev->state(ev->arg, &up);
    g_pool = p;
    return p;
}

static void fake_free(struct db_pool *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->q[i] != NULL)
            p->q[i]->done(p->q[i], DBQ_ERROR, 0, "shutting down");
    free(p);
    if (g_pool == p)
        g_pool = NULL;
}

static void fake_set_gen(struct db_pool *p, struct pol_gen *gen)
{
    (void)p, (void)gen;
}

static int fake_submit(struct db_pool *p, struct db_query *q)
{
    if (p->refuse)
        return -1;
    assert_true(p->n < FAKE_MAX);
    p->q[p->n++] = q;
    p->submitted++;
    return 0;
}

static int fake_check(const struct pol_gen *gen, char **errors, char **warnings)
{
    (void)gen;
    *errors = *warnings = NULL;
    return 0;
}

static const struct db_driver fake_driver = {"fake", fake_new, fake_free, fake_set_gen, fake_submit, fake_check};

/* Answer the i-th query submitted (in submission order). */
static void answer(int i, enum db_status st, int rows, const char *err)
{
    struct db_query *q = g_pool->q[i];
    assert_non_null(q);
    g_pool->q[i] = NULL;
    q->done(q, st, rows, err);
}

/* The policy name a submitted query is for. */
static const char *policy_of(struct pol_gen *g, int i)
{
    return g->set->p[g_pool->q[i]->policy].name;
}

/* ---- a generation and a plan ---- */

static const char *const names[] = {"owner", "admin", "creator", "agent"};

static struct pol_gen *make_gen(int64_t ttl, int64_t budget)
{
    struct pol_gen *g = pol_gen_new("test.yaml");
    g->db.configured = 1;
    g->cache.ttl = ttl;
    g->policy_timeout = budget;
    g->set = pc_calloc(1, sizeof(*g->set));
    g->set->p = pc_calloc(PC_ARRAY_LEN(names), sizeof(*g->set->p));
    for (size_t i = 0; i < PC_ARRAY_LEN(names); i++) {
        struct pol_policy *p = &g->set->p[g->set->n++];
        p->name = pc_strdup(names[i]);
        p->params = pc_calloc(2, sizeof(*p->params));
        p->params[0] = pc_strdup("app_id");
        p->params[1] = pc_strdup("subject");
        p->nparams = 2;
        p->variants = pc_calloc(1, sizeof(*p->variants));
        p->nvariants = 1;
    }
    return g;
}

static struct dec_bind binds[2] = {{DEC_B_CAPTURE, 0, NULL}, {DEC_B_SUBJECT, 0, NULL}};

/* A plan over policies (by index into names), named name. */
static void make_plan(struct dec_plan *plan, const char *name, const int *policies, size_t n)
{
    plan->name = name;
    plan->steps = pc_calloc(n, sizeof(*plan->steps));
    plan->nsteps = n;
    for (size_t i = 0; i < n; i++) {
        plan->steps[i].policy = policies[i];
        plan->steps[i].binds = binds;
        plan->steps[i].nbinds = 2;
    }
}

struct outcome {
    int done;
    enum dec_result res;
    char reason[128];
};

/* A request and where its outcome lands, side by side. */
struct call {
    struct dec_request d;
    struct outcome o;
    const char *captures[1];
    size_t lens[1];
    int present[1];
};

static void on_done(struct dec_request *d, enum dec_result res, const char *reason)
{
    struct call *c = (struct call *)((char *)d - offsetof(struct call, d));
    c->o.done++;
    c->o.res = res;
    snprintf(c->o.reason, sizeof(c->o.reason), "%s", reason);
}

static void start(struct dec_ctx *ctx, struct pol_gen *g, const struct dec_plan *plan, struct call *c,
                  const char *app, const char *subject)
{
    memset(c, 0, sizeof(*c));
    c->captures[0] = app;
    c->lens[0] = strlen(app);
    c->present[0] = 1;
    c->d.cfg = g;
    c->d.plan = plan;
    c->d.captures = c->captures;
    c->d.capture_lens = c->lens;
    c->d.capture_present = c->present;
    c->d.subject = subject;
    c->d.subject_len = strlen(subject);
    c->d.done = on_done;
    dec_start(ctx, &c->d);
}

struct fixture {
    struct event_base *base;
    struct pol_gen *gen;
    struct dec_counters counters;
    struct dec_ctx *ctx;
    struct dec_plan plan;
};

static struct fixture *setup(int64_t ttl, int64_t budget, const int *policies, size_t n)
{
    struct fixture *f = pc_calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->gen = make_gen(ttl, budget);
    f->ctx = dec_ctx_new(f->base, 0, 1, f->gen, &fake_driver, &f->counters);
    make_plan(&f->plan, "logs", policies, n);
    return f;
}

static void teardown(struct fixture *f)
{
    dec_ctx_free(f->ctx);
    free(f->plan.steps);
    pol_gen_unref(f->gen);
    event_base_free(f->base);
    free(f);
}

/* Run the loop until nothing is left to do now (submissions are sent on
 * the next loop turn in the real pools; timers here). */
static void spin(struct fixture *f)
{
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* ---- tests ---- */

static const int OAC[] = {0, 1, 2};

static void test_a_denial_lists_policies_in_rule_order_whatever_order_they_answer_in(void **state)
{
    (void)state;
    struct fixture *f = setup(0, 1000, OAC, 3);
    struct call c;
    start(f->ctx, f->gen, &f->plan, &c, "app-1", "u1");
    assert_int_equal(g_pool->n, 3);
    answer(2, DBQ_OK, 0, NULL);   /* creator first */
    answer(0, DBQ_OK, 0, NULL);   /* owner */
    assert_int_equal(c.o.done, 0);
    answer(1, DBQ_OK, 0, NULL);   /* admin last */
    assert_int_equal(c.o.done, 1);
    assert_int_equal(c.o.res, DEC_DENY);
    assert_string_equal(c.o.reason, "policy owner: no row; policy admin: no row; policy creator: no row");
    teardown(f);
}

static void test_an_allow_names_the_first_passing_policy_in_rule_order(void **state)
{
    (void)state;
    struct fixture *f = setup(0, 1000, OAC, 3);
    struct call c;
    start(f->ctx, f->gen, &f->plan, &c, "app-1", "u1");
    answer(2, DBQ_OK, 1, NULL);   /* creator passes first... */
    assert_int_equal(c.o.done, 0); /* ...but owner and admin come before it */
    answer(1, DBQ_OK, 1, NULL);   /* admin passes */
    assert_int_equal(c.o.done, 0);
    answer(0, DBQ_OK, 0, NULL);   /* owner fails: admin is the first pass */
    assert_int_equal(c.o.done, 1);
    assert_int_equal(c.o.res, DEC_ALLOW);
    assert_string_equal(c.o.reason, "policy admin: row");
    teardown(f);
}

static void test_a_pass_with_an_earlier_error_still_allows_and_no_pass_with_an_error_is_an_error(void **state)
{
    (void)state;
    struct fixture *f = setup(0, 1000, OAC, 3);
    struct call c;
    start(f->ctx, f->gen, &f->plan, &c, "app-1", "u1");
    answer(0, DBQ_ERROR, 0, "canceling statement due to lock timeout");
    answer(1, DBQ_OK, 1, NULL);
    assert_int_equal(c.o.res, DEC_ALLOW);
    assert_string_equal(c.o.reason, "policy admin: row");
    struct call c2;
    start(f->ctx, f->gen, &f->plan, &c2, "app-2", "u1");
    answer(3, DBQ_OK, 0, NULL);
    answer(4, DBQ_ERROR, 0, "boom");
    answer(5, DBQ_OK, 0, NULL);
    assert_int_equal(c2.o.res, DEC_ERROR);   /* fail closed: 503, never a deny that hides the error */
    assert_string_equal(c2.o.reason, "policy owner: no row; policy admin: boom; policy creator: no row");
    teardown(f);
}

static void test_identical_concurrent_lookups_share_one_query(void **state)
{
    (void)state;
    static const int O[] = {0};
    struct fixture *f = setup(5000, 1000, O, 1);
    struct call a, b, c;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    start(f->ctx, f->gen, &f->plan, &b, "app-1", "u1");
    start(f->ctx, f->gen, &f->plan, &c, "app-1", "u2");   /* another subject: another lookup */
    assert_int_equal(g_pool->submitted, 2);
    answer(0, DBQ_OK, 1, NULL);
    assert_int_equal(a.o.done + b.o.done, 2);
    assert_int_equal(a.o.res, DEC_ALLOW);
    assert_int_equal(b.o.res, DEC_ALLOW);
    assert_int_equal(c.o.done, 0);
    answer(1, DBQ_OK, 0, NULL);
    assert_int_equal(c.o.res, DEC_DENY);
    teardown(f);
}

static void test_an_answer_is_cached_per_subject_and_value_and_errors_never_are(void **state)
{
    (void)state;
    static const int O[] = {0};
    struct fixture *f = setup(5000, 1000, O, 1);
    struct call a, b, c, d;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    answer(0, DBQ_OK, 1, NULL);
    start(f->ctx, f->gen, &f->plan, &b, "app-1", "u1");   /* cached: decided before dec_start returns */
    assert_int_equal(b.o.done, 1);
    assert_int_equal(b.o.res, DEC_ALLOW);
    assert_true(b.d.cache_hit);
    assert_int_equal(g_pool->submitted, 1);
    assert_int_equal(f->counters.cache_hits, 1);
    start(f->ctx, f->gen, &f->plan, &c, "app-2", "u1");   /* another value: another key */
    assert_int_equal(c.o.done, 0);
    answer(1, DBQ_ERROR, 0, "server closed the connection");
    assert_int_equal(c.o.res, DEC_ERROR);
    start(f->ctx, f->gen, &f->plan, &d, "app-2", "u1");   /* the error was not cached */
    assert_int_equal(d.o.done, 0);
    assert_int_equal(g_pool->submitted, 3);
    answer(2, DBQ_OK, 0, NULL);
    assert_int_equal(d.o.res, DEC_DENY);
    teardown(f);
}

static void test_an_answer_to_a_query_sent_before_an_invalidation_is_not_cached(void **state)
{
    (void)state;
    static const int O[] = {0};
    struct fixture *f = setup(5000, 1000, O, 1);
    struct call a, b;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    g_pool->ev.invalidate(g_pool->ev.arg);     /* NOTIFY while the query is out */
    answer(0, DBQ_OK, 1, NULL);
    assert_int_equal(a.o.res, DEC_ALLOW);      /* decided on what it saw when it started */
    start(f->ctx, f->gen, &f->plan, &b, "app-1", "u1");
    assert_int_equal(b.o.done, 0);             /* asked again */
    assert_int_equal(g_pool->submitted, 2);
    answer(1, DBQ_OK, 0, NULL);
    assert_int_equal(b.o.res, DEC_DENY);
    teardown(f);
}

static void test_left_out_policies_never_allow_and_a_rule_of_only_left_out_policies_denies(void **state)
{
    (void)state;
    static const int AO[] = {3, 0};
    struct fixture *f = setup(0, 1000, AO, 2);
    struct call a, b;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    assert_string_equal(policy_of(f->gen, 0), "agent");
    answer(0, DBQ_SKIPPED, 0, "left out (the database lacks agents)");
    answer(1, DBQ_OK, 1, NULL);
    assert_int_equal(a.o.res, DEC_ALLOW);
    assert_string_equal(a.o.reason, "policy owner: row");
    start(f->ctx, f->gen, &f->plan, &b, "app-1", "u2");
    answer(2, DBQ_SKIPPED, 0, "left out (the database lacks agents)");
    answer(3, DBQ_SKIPPED, 0, "left out (the database lacks agents)");
    assert_int_equal(b.o.res, DEC_DENY);
    assert_string_equal(b.o.reason, "policy agent: left out (the database lacks agents); "
                                    "policy owner: left out (the database lacks agents)");
    teardown(f);
}

static void test_no_connection_is_an_error_at_once(void **state)
{
    (void)state;
    static const int O[] = {0};
    struct fixture *f = setup(0, 1000, O, 1);
    g_pool->refuse = 1;
    struct call a;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    assert_int_equal(a.o.done, 1);
    assert_int_equal(a.o.res, DEC_ERROR);
    assert_string_equal(a.o.reason, "policy owner: database unavailable");
    assert_int_equal(f->counters.queries[0][DEC_Q_ERROR], 1);
    teardown(f);
}

static void test_the_budget_ends_a_decision_and_pending_policies_read_db_timeout(void **state)
{
    (void)state;
    struct fixture *f = setup(0, 20, OAC, 3);   /* a 20 ms budget */
    struct call a;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    answer(0, DBQ_OK, 0, NULL);
    struct timeval tv = {0, 200000};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);               /* the budget timer fires */
    assert_int_equal(a.o.done, 1);
    assert_int_equal(a.o.res, DEC_ERROR);
    assert_string_equal(a.o.reason, "policy owner: no row; policy admin: db timeout; policy creator: db timeout");
    /* the late answers change nothing */
    answer(1, DBQ_OK, 1, NULL);
    answer(2, DBQ_OK, 1, NULL);
    assert_int_equal(a.o.done, 1);
    spin(f);
    teardown(f);
}

static void test_a_cancelled_decision_is_never_called_back(void **state)
{
    (void)state;
    static const int O[] = {0};
    struct fixture *f = setup(5000, 1000, O, 1);
    struct call a, b;
    start(f->ctx, f->gen, &f->plan, &a, "app-1", "u1");
    start(f->ctx, f->gen, &f->plan, &b, "app-1", "u1");   /* joined the same lookup */
    dec_cancel(&a.d);
    answer(0, DBQ_OK, 1, NULL);
    assert_int_equal(a.o.done, 0);
    assert_int_equal(b.o.done, 1);
    teardown(f);
}

/* ---- a real driver's pool at its end (pg.c, my.c; no server needed) ---- */

struct resubmit {
    const struct db_driver *drv;
    struct db_pool *pool;
    struct db_query again;
    int first_done, again_rc, again_done;
};

static void resubmit_again_done(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    struct resubmit *r = (struct resubmit *)((char *)q - offsetof(struct resubmit, again));
    (void)st, (void)ntuples, (void)err;
    r->again_done++;
}

static struct resubmit *g_resubmit;

/* A decision that ends with the pool can start another at once (judge.c:
 * the same request without its data file): it submits to the pool being
 * freed. */
static void resubmit_first_done(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    struct resubmit *r = g_resubmit;
    (void)ntuples, (void)err;
    assert_int_equal(st, DBQ_ERROR);
    r->first_done++;
    r->again = *q;
    r->again.done = resubmit_again_done;
    r->again_rc = r->drv->submit(r->pool, &r->again);
}

static void a_pool_being_freed_takes_no_query(const struct db_driver *drv)
{
    /* a server that accepts and never answers: the connections stay
     * coming up (pool_can_take would say yes) */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ls, 16), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &len), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
    struct pol_gen *g = make_gen(0, 1000);
    g->db.host = pc_strdup("127.0.0.1");
    g->db.port = pc_strdup(port);
    g->db.dbname = pc_strdup("none");
    g->db.connect_timeout = 10000;
    if (drv == &db_driver_my)
        g->db.dialect = POL_DIALECT_MYSQL;
    struct event_base *base = event_base_new();
    struct db_events ev = {NULL, NULL, NULL};
    struct resubmit r = {.drv = drv};
    g_resubmit = &r;
    r.pool = drv->pool_new(base, 0, 2, g, 0, &ev);
    const char *vals[2] = {"a", "s"};
    int lens[2] = {1, 1};
    struct db_query q = {.gen = g, .policy = 0, .nparams = 2, .values = vals, .lengths = lens,
                         .done = resubmit_first_done};
    assert_int_equal(drv->submit(r.pool, &q), 0);
    event_base_loop(base, EVLOOP_NONBLOCK); /* dispatched: it waits for a connection */
    assert_int_equal(r.first_done, 0);
    drv->pool_free(r.pool);
    assert_int_equal(r.first_done, 1);
    /* refused (-1: fail fast), never queued on the freed pool, whose
     * dispatch would then run on freed memory */
    assert_int_equal(r.again_rc, -1);
    assert_int_equal(r.again_done, 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    pol_gen_unref(g);
    close(ls);
}

static void test_pg_a_pool_being_freed_takes_no_query(void **state)
{
    (void)state;
    a_pool_being_freed_takes_no_query(&db_driver_pg);
}

static void test_mysql_a_pool_being_freed_takes_no_query(void **state)
{
    (void)state;
    a_pool_being_freed_takes_no_query(&db_driver_my);
}

int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_denial_lists_policies_in_rule_order_whatever_order_they_answer_in),
        cmocka_unit_test(test_an_allow_names_the_first_passing_policy_in_rule_order),
        cmocka_unit_test(test_a_pass_with_an_earlier_error_still_allows_and_no_pass_with_an_error_is_an_error),
        cmocka_unit_test(test_identical_concurrent_lookups_share_one_query),
        cmocka_unit_test(test_an_answer_is_cached_per_subject_and_value_and_errors_never_are),
        cmocka_unit_test(test_an_answer_to_a_query_sent_before_an_invalidation_is_not_cached),
        cmocka_unit_test(test_left_out_policies_never_allow_and_a_rule_of_only_left_out_policies_denies),
        cmocka_unit_test(test_no_connection_is_an_error_at_once),
        cmocka_unit_test(test_the_budget_ends_a_decision_and_pending_policies_read_db_timeout),
        cmocka_unit_test(test_a_cancelled_decision_is_never_called_back),
        cmocka_unit_test(test_pg_a_pool_being_freed_takes_no_query),
        cmocka_unit_test(test_mysql_a_pool_being_freed_takes_no_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
