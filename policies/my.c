/*
 * portcullis: the MySQL driver's pool, in the event loop (see my.h).
 *
 * Every library call is a _start, then _cont each time the socket (or
 * the library's own timeout) is ready, until it returns 0. At most one
 * call is in flight per connection (Connector/C does not refuse a second
 * one: it would corrupt the first). During a connect the socket may change
 * (one per address tried) while keeping its number, so it is watched
 * afresh after every call; after connecting it never changes, and an idle
 * connection's socket is watched for the server closing it.
 *
 * A connection's work, one job at a time: its setup (session settings,
 * schema, schema version, one prepare per policy that fits), a lookup
 * (execute, store, free), a statement reset after a statement error, the
 * invalidation poll (connection 0, cache.invalidate_query), or a ping
 * after timeouts.policy idle (myc_idle).
 */
#include "my.h"
#include <event2/event_struct.h>
#include "invpoll.h"
#include "policy.h"
#include "schema.h"
#include "gen.h"
#include "../lib/base.h"
#include "../lib/fdwatch.h"
#include "../lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define MY_BACKOFF_MIN_MS 100
#define MY_BACKOFF_MAX_MS 5000

enum myc_state { MYC_DOWN, MYC_CONNECTING, MYC_SETUP, MYC_READY };
enum myc_step { MYS_SESSION, MYS_SCHEMA, MYS_VERSION, MYS_PREPARE };
enum myc_job { MYJ_NONE, MYJ_SETUP, MYJ_LOOKUP, MYJ_RESET, MYJ_POLL, MYJ_PING };
enum myc_op { MYO_NONE, MYO_CONNECT, MYO_QUERY, MYO_STORE, MYO_PREPARE, MYO_EXECUTE, MYO_STMT_STORE,
              MYO_STMT_FREE, MYO_STMT_RESET, MYO_PING };

struct my_conn {
    struct db_pool *pool;
    int idx;
    struct pol_gen *cfg;
    MYSQL *m;
    struct my_attempt *attempt;     /* MYC_CONNECTING on the connect thread */
    enum myc_state state;
    enum myc_job job;
    enum myc_op op;                 /* the library call in flight */
    int wait;                       /* its MYSQL_WAIT_* bits while suspended */
    struct pc_fdwatch io;           /* the library's socket */
    struct event libtimer;          /* the library's own timeout */
    struct event timer;             /* backoff, connect budget, wedged job, idle ping */
    /* a call's outcome */
    MYSQL *r_conn;
    int r_int;
    my_bool r_bool;
    MYSQL_RES *r_res;
    /* setup */
    enum my_flavour flavour;
    enum myc_step step;
    char session[MY_SESSION_MAX][MY_SESSION_LEN];
    int nsession, session_i;
    int prep;
    struct pol_schema *schema;
    struct pc_buf version;
    int version_rows, version_failed;
    int *choice;                    /* per policy: its variant here, or -1 */
    const char **missing;
    MYSQL_STMT **stmts;             /* per policy: its statement here, or NULL */
    size_t nchoice;
    /* the lookup in flight */
    struct db_query *q;
    MYSQL_STMT *cur;
    int ntuples;
    MYSQL_BIND bind[POL_MAX_PARAMS];
    unsigned long blen[POL_MAX_PARAMS];
    my_bool bnull[POL_MAX_PARAMS];
    int retire;
    int backoff_ms;
    int was_up;
};

struct db_pool {
    struct event_base *base;
    struct pol_gen *cfg;
    int n;
    struct my_conn *conns;
    struct db_query_list waiting;
    int listener;                   /* conn 0 runs cache.invalidate_query */
    int worker;
    struct event dispatch_ev;
    int dispatch_pending;
    struct event poll_ev;           /* every cache.invalidate_poll */
    int poll_on, poll_due;
    struct inv_poll poll;
    struct db_events ev;
    int closing;                    /* in my_pool_free: submit refuses */
};

static void myc_io_cb(evutil_socket_t fd, short what, void *arg);
static void myc_libtimer_cb(evutil_socket_t fd, short what, void *arg);
static void myc_done(struct my_conn *c);
static void myc_down(struct my_conn *c, const char *why, int backoff);
static void pool_schedule(struct db_pool *p);

static void pool_publish(struct db_pool *p)
{
    struct db_state st = {0, 0, 0};
    for (int i = 0; i < p->n; i++) {
        switch (p->conns[i].state) {
        case MYC_READY: st.up++; break;
        case MYC_CONNECTING:
        case MYC_SETUP: st.connecting++; break;
        case MYC_DOWN: st.down++; break;
        }
    }
    if (p->ev.state)
        p->ev.state(p->ev.arg, &st);
}

static void myc_arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

/* ---- the call core ---- */

static void myc_unwatch(struct my_conn *c)
{
    pc_fdwatch_off(&c->io);
}

/* Watch the connection's socket for what; fresh: register again even if
 * nothing seems to change (during a connect, a new socket may have the old
 * one's number). -1 when it cannot be watched (no descriptor left for the
 * duplicate), with the reason in why. */
static int myc_watch(struct my_conn *c, short what, int fresh, char *why, size_t len)
{
    int fd = c->m != NULL ? (int)mysql_get_socket(c->m) : -1;
    if (fresh)
        myc_unwatch(c);
    if (pc_fdwatch_set(&c->io, c->pool->base, fd, what, myc_io_cb, c) == 0)
        return 0;
    snprintf(why, len, "cannot watch its socket: %s", strerror(errno));
    return -1;
}

static int myc_start_op(struct my_conn *c, enum myc_op op, const char *sql)
{
    struct my_target t;
    const struct pol_db *db = &c->cfg->db;
    c->op = op;
    switch (op) {
    case MYO_CONNECT:
        my_target(db, &t);
        return mysql_real_connect_start(&c->r_conn, c->m, t.host, db->user && *db->user ? db->user : NULL,
                                        db->password && *db->password ? db->password : NULL, db->dbname, t.port,
                                        t.socket, 0);
    case MYO_QUERY: return mysql_real_query_start(&c->r_int, c->m, sql, strlen(sql));
    case MYO_STORE: return mysql_store_result_start(&c->r_res, c->m);
    case MYO_PREPARE: return mysql_stmt_prepare_start(&c->r_int, c->cur, sql, strlen(sql));
    case MYO_EXECUTE: return mysql_stmt_execute_start(&c->r_int, c->cur);
    case MYO_STMT_STORE: return mysql_stmt_store_result_start(&c->r_int, c->cur);
    case MYO_STMT_FREE: return mysql_stmt_free_result_start(&c->r_bool, c->cur);
    case MYO_STMT_RESET: return mysql_stmt_reset_start(&c->r_bool, c->cur);
    case MYO_PING: return mysql_ping_start(&c->r_int, c->m);
    case MYO_NONE: break;
    }
    return 0;
}

static int myc_cont_op(struct my_conn *c, int ready)
{
    switch (c->op) {
    case MYO_CONNECT: return mysql_real_connect_cont(&c->r_conn, c->m, ready);
    case MYO_QUERY: return mysql_real_query_cont(&c->r_int, c->m, ready);
    case MYO_STORE: return mysql_store_result_cont(&c->r_res, c->m, ready);
    case MYO_PREPARE: return mysql_stmt_prepare_cont(&c->r_int, c->cur, ready);
    case MYO_EXECUTE: return mysql_stmt_execute_cont(&c->r_int, c->cur, ready);
    case MYO_STMT_STORE: return mysql_stmt_store_result_cont(&c->r_int, c->cur, ready);
    case MYO_STMT_FREE: return mysql_stmt_free_result_cont(&c->r_bool, c->cur, ready);
    case MYO_STMT_RESET: return mysql_stmt_reset_cont(&c->r_bool, c->cur, ready);
    case MYO_PING: return mysql_ping_cont(&c->r_int, c->m, ready);
    case MYO_NONE: break;
    }
    return 0;
}

/* A call returned status st: finished (0), or wait for what it asks. */
static void myc_settle(struct my_conn *c, int st)
{
    char why[128];
    evtimer_del(&c->libtimer);
    if (st == 0) {
        c->wait = 0;
        if (c->op == MYO_CONNECT)
            myc_unwatch(c);
        else if (myc_watch(c, EV_READ, 0, why, sizeof(why)) != 0) { /* between calls: notice the server closing */
            myc_down(c, why, 1);
            return;
        }
        myc_done(c);
        return;
    }
    c->wait = st;
    short what = (short)((st & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT) ? EV_READ : 0) |
                         (st & MYSQL_WAIT_WRITE ? EV_WRITE : 0));
    if (myc_watch(c, what, c->op == MYO_CONNECT, why, sizeof(why)) != 0) {
        myc_down(c, why, 1); /* unwinds the suspended call */
        return;
    }
    if (st & MYSQL_WAIT_TIMEOUT)
        myc_arm(&c->libtimer, (int64_t)mysql_get_timeout_value_ms(c->m));
}

static void myc_run(struct my_conn *c, enum myc_op op, const char *sql)
{
    myc_settle(c, myc_start_op(c, op, sql));
}

static void myc_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct my_conn *c = arg;
    if (c->wait == 0) {
        /* idle, and the socket is readable: the server closed it (or said
         * why it will: MySQL 8 sends an error before closing idle sessions) */
        char b;
        ssize_t r = recv((int)fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            myc_down(c, "the server closed the connection", 1);
        else if (r > 0)
            myc_down(c, "the server sent something unasked (closing an idle session?)", 1);
        return;
    }
    int ready = (what & EV_READ ? MYSQL_WAIT_READ : 0) | (what & EV_WRITE ? MYSQL_WAIT_WRITE : 0);
    myc_settle(c, myc_cont_op(c, ready));
}

static void myc_libtimer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct my_conn *c = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    if (c->wait != 0)
        myc_settle(c, myc_cont_op(c, MYSQL_WAIT_TIMEOUT));
}

/* Close the handle without blocking: a suspended call is unwound first
 * (the socket is shut, then the call is fed a timeout until it returns). */
static void myc_close(struct my_conn *c)
{
    myc_unwatch(c);
    evtimer_del(&c->libtimer);
    if (c->attempt != NULL) {
        my_attempt_abandon(c->attempt);
        c->attempt = NULL;
    }
    if (c->m != NULL) {
        int dirty = c->wait != 0 || c->state != MYC_READY || c->job != MYJ_NONE;
        if (dirty)
            mariadb_cancel(c->m);
        for (int n = 0; c->wait != 0 && n < 16; n++)
            c->wait = myc_cont_op(c, MYSQL_WAIT_TIMEOUT | MYSQL_WAIT_READ | MYSQL_WAIT_WRITE);
        if (c->wait != 0)
            pc_log(PC_LOG_WARN, "worker %d: database connection %d: a call did not unwind; closing anyway",
                   c->pool->worker, c->idx);
        if (c->r_res != NULL && c->op == MYO_STORE)
            mysql_free_result(c->r_res);
        mysql_close(c->m); /* after a cancel, COM_QUIT fails at once */
        c->m = NULL;
    }
    /* the handle is gone: closing a statement only frees its memory */
    for (size_t i = 0; c->stmts != NULL && i < c->nchoice; i++) {
        if (c->stmts[i] != NULL)
            mysql_stmt_close(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    c->wait = 0;
    c->op = MYO_NONE;
    c->r_res = NULL;
    c->cur = NULL;
}

static void myc_finish_lookup(struct my_conn *c, enum db_status st, int ntuples, const char *err)
{
    struct db_query *q = c->q;
    c->q = NULL;
    if (q != NULL)
        q->done(q, st, ntuples, err);
}

/* Drop the connection; its lookup fails. Reconnect after a backoff (or at
 * once: a reload). */
static void myc_down(struct my_conn *c, const char *why_in, int backoff)
{
    struct db_pool *p = c->pool;
    char why[256];
    snprintf(why, sizeof(why), "%s", why_in ? why_in : "?"); /* often the handle's own message */
    pc_one_line(why);
    evtimer_del(&c->timer);
    myc_close(c);
    pol_schema_free(c->schema);
    c->schema = NULL;
    if (c->was_up || c->backoff_ms == 0)
        pc_log(PC_LOG_WARN, "worker %d: database connection %d down: %s", p->worker, c->idx, why);
    c->was_up = 0;
    c->state = MYC_DOWN;
    c->job = MYJ_NONE;
    c->retire = 0;
    if (c->idx == 0)
        inv_poll_reset(&p->poll);
    if (backoff) {
        c->backoff_ms = c->backoff_ms ? PC_MIN(c->backoff_ms * 2, MY_BACKOFF_MAX_MS) : MY_BACKOFF_MIN_MS;
        myc_arm(&c->timer, c->backoff_ms);
    } else {
        myc_arm(&c->timer, 0);
    }
    myc_finish_lookup(c, DBQ_ERROR, 0, "database connection lost");
    pool_publish(p);
    pool_schedule(p); /* fails waiting lookups if nothing can take them */
}

/* The message of the last error, on the handle or the statement. */
static void myc_error(struct my_conn *c, MYSQL_STMT *st, char *out, size_t len, unsigned *code)
{
    unsigned e = st ? mysql_stmt_errno(st) : mysql_errno(c->m);
    snprintf(out, len, "%s (error %u)", st ? mysql_stmt_error(st) : mysql_error(c->m), e);
    pc_one_line(out);
    if (code)
        *code = e;
}

/* ---- connecting ---- */

static void myc_setup_send(struct my_conn *c);

static void myc_attempt_done(void *arg)
{
    struct my_conn *c = arg;
    char err[256];
    struct my_attempt *a = c->attempt;
    c->attempt = NULL;
    c->m = my_attempt_take(a, err, sizeof(err));
    if (c->m == NULL) {
        myc_down(c, err, 1);
        return;
    }
    c->op = MYO_CONNECT;
    c->r_conn = c->m;
    myc_done(c);
}

static void myc_start(struct my_conn *c)
{
    struct db_pool *p = c->pool;
    char why[256];
    if (c->cfg != p->cfg) {
        pol_gen_unref(c->cfg);
        c->cfg = pol_gen_ref(p->cfg);
    }
    c->state = MYC_CONNECTING;
    c->job = MYJ_SETUP;
    myc_arm(&c->timer, c->cfg->db.connect_timeout);
    pool_publish(p);
    if (my_connects_on_thread(&c->cfg->db)) {
        c->attempt = my_attempt_start(p->base, c->cfg, myc_attempt_done, c, why, sizeof(why));
        if (c->attempt == NULL)
            myc_down(c, why, 1);
        return;
    }
    /* no TLS, a numeric address or a Unix socket: nothing blocks */
    c->m = my_handle_new(&c->cfg->db, 0, my_io_timeout_ms(c->cfg));
    if (c->m == NULL) {
        myc_down(c, "cannot make a MySQL handle", 1);
        return;
    }
    c->r_conn = NULL;
    myc_run(c, MYO_CONNECT, NULL);
}

/* TCP keepalives, as the PostgreSQL driver asks libpq for: a connection
 * that a firewall or NAT dropped in silence is noticed while idle, not by
 * the next lookup. */
static int myc_keepalive(int fd)
{
    int on = 1, idle = 30, intvl = 10, cnt = 3;
    return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
           setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
           setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
           setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ? -1 : 0;
}

/* Connected (on the loop or the connect thread): set the session up. */
static void myc_connected(struct my_conn *c)
{
    const char *why;
    char err[256];
    if (c->r_conn == NULL) {
        myc_error(c, NULL, err, sizeof(err), NULL);
        myc_down(c, err, 1);
        return;
    }
    /* Connector/C leaves the socket blocking after connecting; its TLS
     * reads and writes would then wait for the network */
    int fd = (int)mysql_get_socket(c->m);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
        myc_down(c, "cannot make the socket non-blocking", 1);
        return;
    }
    struct my_target t;
    my_target(&c->cfg->db, &t);
    if (t.socket == NULL && myc_keepalive(fd) != 0)
        pc_log(PC_LOG_WARN, "worker %d: database connection %d: cannot enable TCP keepalives: %s", c->pool->worker,
               c->idx, strerror(errno));
    if ((why = my_tls_check(c->m, &c->cfg->db)) != NULL) {
        myc_down(c, why, 1);
        return;
    }
    c->flavour = my_flavour_of(c->m);
    c->nsession = my_session_sql(c->flavour, c->cfg->policy_timeout, c->session);
    c->session_i = 0;
    c->state = MYC_SETUP;
    c->step = MYS_SESSION;
    myc_setup_send(c);
}

/* ---- setup ---- */

static void myc_choose(struct my_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    size_t n = ps ? ps->n : 0;
    if (c->nchoice != n) {
        free(c->choice);
        free(c->missing);
        free(c->stmts);
        c->choice = pc_calloc(n ? n : 1, sizeof(*c->choice));
        c->missing = pc_calloc(n ? n : 1, sizeof(*c->missing));
        c->stmts = pc_calloc(n ? n : 1, sizeof(*c->stmts));
        c->nchoice = n;
    }
    pol_choose(ps, c->schema, c->choice, c->missing);
    pol_schema_free(c->schema);
    c->schema = NULL;
    if (pol_report_choice(c->cfg, c->choice, c->missing))
        pol_log_choice(c->cfg, c->choice, c->missing);
}

static int myc_next_prep(const struct my_conn *c, int i)
{
    while ((size_t)i < c->nchoice && c->choice[i] < 0)
        i++;
    return i;
}

static void myc_setup_send(struct my_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    switch (c->step) {
    case MYS_SESSION:
        myc_run(c, MYO_QUERY, c->session[c->session_i]);
        return;
    case MYS_SCHEMA:
        c->schema = pol_schema_new();
        myc_run(c, MYO_QUERY, pol_schema_sql_my);
        return;
    case MYS_VERSION:
        c->version.len = 0;
        c->version_rows = 0;
        c->version_failed = 0;
        myc_run(c, MYO_QUERY, c->cfg->db.schema_version.query);
        return;
    case MYS_PREPARE:
        c->cur = c->stmts[c->prep] = mysql_stmt_init(c->m);
        if (c->cur == NULL) {
            myc_down(c, "cannot make a statement handle", 1);
            return;
        }
        myc_run(c, MYO_PREPARE, ps->p[c->prep].variants[c->choice[c->prep]].sql);
        return;
    }
}

static void myc_version_done(struct my_conn *c)
{
    const struct pol_schema_version *sv = &c->cfg->db.schema_version;
    const char *v = c->version_failed ? NULL : c->version_rows ? pc_buf_cstr(&c->version) : "(no row)";
    int known = 0;
    if (!c->version_failed && c->version_rows > 0) {
        char *copy = pc_strdup(v), *save = NULL;
        const char *vals[64];
        size_t nv = 0;
        for (char *t = strtok_r(copy, ",", &save); t != NULL && nv < 64; t = strtok_r(NULL, ",", &save))
            vals[nv++] = t;
        known = pol_version_known((const char *const *)sv->known, sv->nknown, vals, nv);
        free(copy);
    }
    const char *err = c->version_failed ? pc_buf_cstr(&c->version) : NULL;
    if (pol_report_version(v, known, err))
        pol_log_version(c->cfg, v, known, err);
    pc_buf_free(&c->version);
}

static void myc_ready(struct my_conn *c)
{
    struct db_pool *p = c->pool;
    const char *cipher = mysql_get_ssl_cipher(c->m);
    c->state = MYC_READY;
    c->job = MYJ_NONE;
    c->backoff_ms = 0;
    if (!c->was_up)
        pc_log(PC_LOG_INFO, "worker %d: database connection %d up (generation %llu; %s %s, %s%s)", p->worker, c->idx,
               (unsigned long long)c->cfg->generation, my_flavour_name(c->flavour), mysql_get_server_info(c->m),
               cipher ? "TLS " : "no TLS", cipher ? cipher : "");
    c->was_up = 1;
    myc_arm(&c->timer, c->cfg->policy_timeout); /* the idle ping (myc_idle) */
    pool_publish(p);
    if (c->idx == 0 && p->listener && c->cfg->cache.invalidate_query != NULL) {
        inv_poll_reset(&p->poll); /* a new session: its first answer empties the cache */
        p->poll_due = 1;
    }
    pool_schedule(p);
}

/* The setup step's statement is done: the next one, or ready. */
static void myc_setup_advance(struct my_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    switch (c->step) {
    case MYS_SESSION:
        if (++c->session_i < c->nsession)
            break;
        if (ps != NULL && ps->any_requires) {
            c->step = MYS_SCHEMA;
            break;
        }
        /* fall through */
    case MYS_SCHEMA:
        if (c->cfg->db.schema_version.query != NULL) {
            c->step = MYS_VERSION;
            break;
        }
        /* fall through */
    case MYS_VERSION:
        if (c->step == MYS_VERSION)
            myc_version_done(c);
        myc_choose(c);
        c->step = MYS_PREPARE;
        c->prep = myc_next_prep(c, 0);
        if ((size_t)c->prep >= c->nchoice) {
            myc_ready(c);
            return;
        }
        break;
    case MYS_PREPARE:
        c->prep = myc_next_prep(c, c->prep + 1);
        if ((size_t)c->prep >= c->nchoice) {
            myc_ready(c);
            return;
        }
        break;
    }
    myc_setup_send(c);
}

/* Rows of a stored setup result: schema names, or version values. */
static void myc_setup_rows(struct my_conn *c, MYSQL_RES *res)
{
    MYSQL_ROW row;
    unsigned nf = mysql_num_fields(res);
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *lens = mysql_fetch_lengths(res);
        if (c->step == MYS_SCHEMA && nf >= 2 && row[0] != NULL && row[1] != NULL) {
            pol_schema_add(c->schema, row[0], row[1]);
        } else if (c->step == MYS_VERSION && nf >= 1) {
            pc_buf_addf(&c->version, "%s", c->version_rows++ ? "," : "");
            if (row[0] != NULL)
                pc_buf_add(&c->version, row[0], lens[0]);
        }
    }
}

static void myc_setup_failed(struct my_conn *c, MYSQL_STMT *st)
{
    char err[256], why[512];
    myc_error(c, st, err, sizeof(err), NULL);
    if (c->step == MYS_VERSION) {
        /* an unreadable version is reported, never fatal */
        c->version_failed = 1;
        c->version.len = 0;
        pc_buf_adds(&c->version, err);
        myc_setup_advance(c);
        return;
    }
    snprintf(why, sizeof(why), "setup (%s) failed: %s",
             c->step == MYS_SESSION ? "session" : c->step == MYS_SCHEMA ? "schema" : c->cfg->set->p[c->prep].name,
             err);
    /* a policy that no longer prepares (the schema changed): fail closed,
     * retry later */
    myc_down(c, why, 1);
}

static void myc_setup_done(struct my_conn *c, enum myc_op op)
{
    switch (op) {
    case MYO_QUERY:
        if (c->r_int != 0) {
            myc_setup_failed(c, NULL);
            return;
        }
        if (mysql_field_count(c->m) > 0) {
            myc_run(c, MYO_STORE, NULL);
            return;
        }
        if (c->step == MYS_VERSION) {
            c->version_failed = 1;
            pc_buf_adds(&c->version, "the query returns no column");
        }
        myc_setup_advance(c);
        return;
    case MYO_STORE:
        if (c->r_res == NULL) {
            myc_setup_failed(c, NULL);
            return;
        }
        myc_setup_rows(c, c->r_res);
        mysql_free_result(c->r_res);
        c->r_res = NULL;
        myc_setup_advance(c);
        return;
    case MYO_PREPARE: {
        if (c->r_int != 0) {
            myc_setup_failed(c, c->cur);
            return;
        }
        const struct pol_variant *v = &c->cfg->set->p[c->prep].variants[c->choice[c->prep]];
        if (mysql_stmt_param_count(c->cur) != v->nparams) {
            myc_down(c, "a prepared policy has another number of parameters than its :names", 1);
            return;
        }
        myc_setup_advance(c);
        return;
    }
    default:
        myc_down(c, "unexpected call during setup", 1);
        return;
    }
}

/* ---- lookups ---- */

/* A connection's job is over: take the next one. Idle for
 * timeouts.policy, it pings the server (myc_timer_cb), so that a server
 * that went silent (a black hole: no reset, nothing to read; or a server
 * stopped while the kernel still acknowledges) is noticed without
 * traffic: a ping past the wedge limit (2 x policy + 1 s) takes the
 * connection down and readiness turns 503, within 3 x timeouts.policy +
 * 1 s. TCP keepalives (30 s + 3 x 10 s) alone took about a minute, and
 * notice neither a stopped server nor a middle box that acknowledges. */
static void myc_idle(struct my_conn *c)
{
    c->job = MYJ_NONE;
    c->cur = NULL;
    myc_arm(&c->timer, c->cfg->policy_timeout);
    if (c->retire) {
        myc_down(c, "replaced by a new config generation", 0);
        return;
    }
    pool_schedule(c->pool);
}

static void myc_send(struct my_conn *c, struct db_query *q)
{
    const struct pol_variant *v = &c->cfg->set->p[q->policy].variants[c->choice[q->policy]];
    memset(c->bind, 0, sizeof(c->bind[0]) * v->nparams);
    for (size_t k = 0; k < v->nparams; k++) {
        /* parameter k is one use of a :name: the policy's parameter param[k] */
        const char *val = q->values[v->param[k]];
        c->bnull[k] = val == NULL;
        c->blen[k] = val ? (unsigned long)q->lengths[v->param[k]] : 0;
        c->bind[k].buffer_type = MYSQL_TYPE_STRING;
        c->bind[k].buffer = (void *)val; /* the lookup owns it until done */
        c->bind[k].buffer_length = c->blen[k];
        c->bind[k].length = &c->blen[k];
        c->bind[k].is_null = &c->bnull[k];
    }
    c->q = q;
    c->cur = c->stmts[q->policy];
    c->job = MYJ_LOOKUP;
    q->sent_at = pc_now_ms();
    q->st = DBQ_ERROR;
    q->ntuples = 0;
    q->err[0] = '\0';
    myc_arm(&c->timer, 2 * c->cfg->policy_timeout + 1000);
    if (mysql_stmt_bind_param(c->cur, c->bind) != 0) {
        char err[256];
        myc_error(c, c->cur, err, sizeof(err), NULL);
        myc_finish_lookup(c, DBQ_ERROR, 0, err);
        myc_idle(c);
        return;
    }
    myc_run(c, MYO_EXECUTE, NULL);
}

/* A statement failed: its lookup fails; the connection survives it unless
 * the error says otherwise. Never mysql_stmt_free_result here: after an
 * error it leaves the connection out of sync. */
static void myc_stmt_failed(struct my_conn *c)
{
    char err[256];
    unsigned code;
    myc_error(c, c->cur, err, sizeof(err), &code);
    myc_finish_lookup(c, DBQ_ERROR, 0, err);
    if (c->state != MYC_READY)
        return;
    if (my_error_ends_connection(code)) {
        myc_down(c, err, 1);
        return;
    }
    c->job = MYJ_RESET;
    myc_run(c, MYO_STMT_RESET, NULL);
}

static void myc_lookup_done(struct my_conn *c, enum myc_op op)
{
    switch (op) {
    case MYO_EXECUTE:
        if (c->r_int != 0) {
            myc_stmt_failed(c);
            return;
        }
        myc_run(c, MYO_STMT_STORE, NULL);
        return;
    case MYO_STMT_STORE:
        /* errors raised while rows are made (a time limit) arrive here */
        if (c->r_int != 0) {
            myc_stmt_failed(c);
            return;
        }
        c->ntuples = (int)PC_MIN(mysql_stmt_num_rows(c->cur), (my_ulonglong)1000000);
        myc_run(c, MYO_STMT_FREE, NULL);
        return;
    case MYO_STMT_FREE:
        myc_finish_lookup(c, DBQ_OK, c->ntuples, NULL);
        if (c->state == MYC_READY)
            myc_idle(c);
        return;
    default:
        myc_down(c, "unexpected call during a lookup", 1);
        return;
    }
}

/* ---- the invalidation poll (connection 0) ---- */

static void myc_poll_result(struct my_conn *c, const char *value, size_t len, const char *err)
{
    struct db_pool *p = c->pool;
    if (inv_poll_result(&p->poll, p->worker, value, len, err) && p->ev.invalidate)
        p->ev.invalidate(p->ev.arg);
}

static void myc_poll_done(struct my_conn *c, enum myc_op op)
{
    char err[256];
    unsigned code;
    if ((op == MYO_QUERY && c->r_int != 0) || (op == MYO_STORE && c->r_res == NULL)) {
        myc_error(c, NULL, err, sizeof(err), &code);
        myc_poll_result(c, NULL, 0, err);
        if (my_error_ends_connection(code))
            myc_down(c, err, 1);
        else
            myc_idle(c);
        return;
    }
    if (op == MYO_QUERY && mysql_field_count(c->m) > 0) {
        myc_run(c, MYO_STORE, NULL);
        return;
    }
    if (op == MYO_STORE) {
        MYSQL_ROW row = mysql_fetch_row(c->r_res);
        unsigned long *lens = row ? mysql_fetch_lengths(c->r_res) : NULL;
        if (row != NULL && mysql_num_fields(c->r_res) >= 1 && row[0] != NULL)
            myc_poll_result(c, row[0], lens[0], NULL);
        else
            myc_poll_result(c, NULL, 0, NULL);
        mysql_free_result(c->r_res);
        c->r_res = NULL;
    } else {
        myc_poll_result(c, NULL, 0, "cache.invalidate_query returns no column");
    }
    myc_idle(c);
}

static void myc_poll_start(struct my_conn *c)
{
    c->pool->poll_due = 0;
    c->job = MYJ_POLL;
    myc_arm(&c->timer, 2 * c->cfg->policy_timeout + 1000);
    myc_run(c, MYO_QUERY, c->cfg->cache.invalidate_query);
}

/* ---- a call finished: what it was for decides what is next ---- */

static void myc_done(struct my_conn *c)
{
    enum myc_op op = c->op;
    c->op = MYO_NONE;
    if (op == MYO_CONNECT) {
        myc_connected(c);
        return;
    }
    switch (c->job) {
    case MYJ_SETUP:
        myc_setup_done(c, op);
        return;
    case MYJ_LOOKUP:
        myc_lookup_done(c, op);
        return;
    case MYJ_RESET:
        if (c->r_bool)
            myc_down(c, "cannot reset a statement after its error", 1);
        else
            myc_idle(c);
        return;
    case MYJ_POLL:
        myc_poll_done(c, op);
        return;
    case MYJ_PING:
        if (c->r_int != 0) {
            char err[256];
            myc_error(c, NULL, err, sizeof(err), NULL);
            myc_down(c, err, 1);
        } else {
            myc_idle(c);
        }
        return;
    case MYJ_NONE:
        return;
    }
}

static void myc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct my_conn *c = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    switch (c->state) {
    case MYC_DOWN:
        myc_start(c);
        return;
    case MYC_CONNECTING:
    case MYC_SETUP:
        myc_down(c, "connect timeout", 1);
        return;
    case MYC_READY:
        if (c->job != MYJ_NONE) {
            myc_down(c, "a query is far past the policy budget; connection presumed wedged", 1);
        } else if (!c->retire) {
            /* idle for timeouts.policy: ping (myc_idle) */
            c->job = MYJ_PING;
            myc_arm(&c->timer, 2 * c->cfg->policy_timeout + 1000);
            myc_run(c, MYO_PING, NULL);
        }
        return;
    }
}

/* ---- the pool ---- */

/* Can a connection take a lookup of generation cfg now or soon? (As on
 * PostgreSQL: not when every one is waiting out a backoff.) */
static int pool_can_take(const struct db_pool *p, const struct pol_gen *cfg)
{
    for (int i = 0; i < p->n; i++) {
        const struct my_conn *c = &p->conns[i];
        if (c->state == MYC_DOWN) {
            if (cfg == p->cfg && c->backoff_ms == 0)
                return 1;
        } else if (c->cfg == cfg ? !c->retire : cfg == p->cfg) {
            return 1;
        }
    }
    return 0;
}

/* A lookup's answer can come from a connection of its generation: one idle
 * to run it, or any ready one when the policy is left out there. */
static struct my_conn *pool_pick(struct db_pool *p, const struct db_query *q, int *left_out)
{
    struct my_conn *ready = NULL;
    for (int i = 0; i < p->n; i++) {
        struct my_conn *c = &p->conns[i];
        if (c->cfg != q->gen || c->state != MYC_READY || c->retire)
            continue;
        if (c->choice[q->policy] < 0) {
            *left_out = 1;
            return c;
        }
        if (c->job == MYJ_NONE && ready == NULL && !(i == 0 && p->poll_due))
            ready = c;
    }
    *left_out = 0;
    return ready;
}

static void pool_dispatch(struct db_pool *p)
{
    struct my_conn *c0 = &p->conns[0];
    if (p->poll_due && c0->state == MYC_READY && c0->job == MYJ_NONE && !c0->retire && p->listener &&
        c0->cfg->cache.invalidate_query != NULL)
        myc_poll_start(c0);
    int64_t now = pc_now_ms();
    struct db_query *q, *next;
    for (q = TAILQ_FIRST(&p->waiting); q != NULL; q = next) {
        next = TAILQ_NEXT(q, link);
        int left_out;
        if (now - q->sent_at > q->gen->policy_timeout) {
            /* its decision has been made without it (503) */
            TAILQ_REMOVE(&p->waiting, q, link);
            q->done(q, DBQ_ERROR, 0, "no database connection free within the policy budget");
            continue;
        }
        struct my_conn *c = pool_pick(p, q, &left_out);
        if (c != NULL) {
            TAILQ_REMOVE(&p->waiting, q, link);
            if (left_out) {
                snprintf(q->err, sizeof(q->err), "left out (the database lacks %s)", c->missing[q->policy]);
                q->done(q, DBQ_SKIPPED, 0, q->err);
            } else {
                myc_send(c, q);
            }
            continue;
        }
        if (!pool_can_take(p, q->gen)) {
            TAILQ_REMOVE(&p->waiting, q, link);
            q->done(q, DBQ_ERROR, 0, "database unavailable");
        }
    }
}

static void pool_schedule(struct db_pool *p)
{
    if (!p->dispatch_pending) {
        p->dispatch_pending = 1;
        event_active(&p->dispatch_ev, EV_TIMEOUT, 0);
    }
}

static void pool_dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    p->dispatch_pending = 0;
    pool_dispatch(p);
}

static void pool_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    p->poll_due = 1;
    pool_schedule(p);
}

/* The poll timer follows the pool's generation. */
static void pool_poll_arm(struct db_pool *p)
{
    if (p->poll_on) {
        event_del(&p->poll_ev);
        p->poll_on = 0;
    }
    if (!p->listener || p->cfg->cache.invalidate_query == NULL)
        return;
    int64_t ms = p->cfg->cache.invalidate_poll;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_assign(&p->poll_ev, p->base, -1, EV_PERSIST, pool_poll_cb, p);
    if (event_add(&p->poll_ev, &tv) == 0)
        p->poll_on = 1;
}

static int my_pool_submit(struct db_pool *p, struct db_query *q)
{
    /* closing: a query that ends in my_pool_free may start another at
     * once; queued here, its dispatch would run after the pool is freed */
    if (p->closing || !pool_can_take(p, q->gen))
        return -1;
    q->sent_at = pc_now_ms(); /* queued at: the budget counts from here */
    TAILQ_INSERT_TAIL(&p->waiting, q, link);
    pool_schedule(p); /* never completes inside submit (db.h) */
    return 0;
}

static struct db_pool *my_pool_new(struct event_base *base, int worker, int nconns, struct pol_gen *cfg,
                                   int listener, const struct db_events *ev)
{
    struct db_pool *p = pc_calloc(1, sizeof(*p));
    my_library_init();
    p->base = base;
    p->worker = worker;
    p->cfg = pol_gen_ref(cfg);
    p->n = nconns;
    p->listener = listener;
    p->ev = *ev;
    TAILQ_INIT(&p->waiting);
    event_assign(&p->dispatch_ev, base, -1, 0, pool_dispatch_cb, p);
    p->conns = pc_calloc((size_t)nconns, sizeof(*p->conns));
    for (int i = 0; i < nconns; i++) {
        struct my_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        pc_fdwatch_init(&c->io);
        c->cfg = pol_gen_ref(cfg);
        evtimer_assign(&c->timer, base, myc_timer_cb, c);
        evtimer_assign(&c->libtimer, base, myc_libtimer_cb, c);
        myc_start(c);
    }
    pool_poll_arm(p);
    return p;
}

static void my_pool_set_gen(struct db_pool *p, struct pol_gen *cfg)
{
    pol_gen_unref(p->cfg);
    p->cfg = pol_gen_ref(cfg);
    for (int i = 0; i < p->n; i++) {
        struct my_conn *c = &p->conns[i];
        if (c->state == MYC_DOWN) {
            evtimer_del(&c->timer);
            c->backoff_ms = 0;
            myc_arm(&c->timer, 0);
        } else if (c->job != MYJ_LOOKUP && c->job != MYJ_RESET) {
            c->was_up = 0;
            myc_down(c, "replaced by a new config generation", 0);
        } else {
            c->retire = 1;
        }
    }
    p->poll_due = 0;
    pool_poll_arm(p);
    pool_schedule(p);
}

static void my_pool_free(struct db_pool *p)
{
    if (p == NULL)
        return;
    p->closing = 1; /* before any query ends */
    event_del(&p->dispatch_ev);
    if (p->poll_on)
        event_del(&p->poll_ev);
    for (int i = 0; i < p->n; i++) {
        struct my_conn *c = &p->conns[i];
        evtimer_del(&c->timer);
        myc_close(c);
        c->state = MYC_DOWN;
        myc_finish_lookup(c, DBQ_ERROR, 0, "shutting down");
        pol_schema_free(c->schema);
        pc_buf_free(&c->version);
        free(c->choice);
        free(c->missing);
        free(c->stmts);
        pol_gen_unref(c->cfg);
    }
    struct db_query *q;
    while ((q = TAILQ_FIRST(&p->waiting)) != NULL) {
        TAILQ_REMOVE(&p->waiting, q, link);
        q->done(q, DBQ_ERROR, 0, "shutting down");
    }
    inv_poll_free(&p->poll);
    pol_gen_unref(p->cfg);
    free(p->conns);
    free(p);
}

const struct db_driver db_driver_my = {
    .name = "mysql",
    .pool_new = my_pool_new,
    .pool_free = my_pool_free,
    .pool_set_gen = my_pool_set_gen,
    .submit = my_pool_submit,
    .check = my_check,
};
