/*
 * portcullis: asynchronous libpq in the event loop (see pg.h).
 */
#include "pg.h"
#include <event2/event_struct.h>
#include "invpoll.h"
#include "policy.h"
#include "schema.h"
#include "gen.h"
#include "../lib/base.h"
#include "../lib/fdwatch.h"
#include "../lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#ifndef TCP_RTO_MIN_US
#define TCP_RTO_MIN_US 45 /* Linux 6.15 */
#endif

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* the retransmission timeout's floor on database sockets (pgc_tcp_tune) */
#define PG_RTO_MIN_US 50000
/* hedges one idle connection takes in one scan (pool_hedge) */
#define PG_HEDGE_BATCH 16

enum pgc_state { PGC_DOWN, PGC_CONNECTING, PGC_SETUP, PGC_READY };

/* Setup, in order: the session's settings, the schema (when a policy
 * declares requirements), the schema version (when configured), then one
 * prepare per policy that fits the schema. */
enum pgc_step { PGS_SESSION, PGS_SCHEMA, PGS_VERSION, PGS_PREPARE };

struct pg_conn {
    struct db_pool *pool;
    int idx;
    PGconn *pg;
    enum pgc_state state;
    struct pc_fdwatch io;           /* libpq's socket */
    struct event timer;
    struct pol_gen *cfg;
    enum pgc_step step;
    int prep;                       /* PGS_PREPARE: the policy being prepared */
    struct pol_schema *schema;      /* PGS_SCHEMA: what has been read */
    struct pc_buf version;          /* PGS_VERSION: the values, joined with "," */
    int version_rows;
    int version_failed;
    /* per policy of cfg: the variant prepared on this connection, or -1
     * with what the schema lacks (pointing into cfg) */
    int *choice;
    const char **missing;
    size_t nchoice;
    struct db_query_list sent;
    int nsent;
    int retire;
    int backoff_ms;
    int was_up;
    struct db_query ping;           /* SELECT 1 on an idle connection (pgc_idle) */
    char *rot[3];                   /* host, hostaddr, port lists to start with (pgc_rotate) */
    char *pin[3];                   /* the next attempt only: rot with its first name pinned to addresses (pgc_pin) */
    int pinned;                     /* the attempt in progress was started from pin (rot holds its base) */
    int hedge_n;                    /* pool_hedge: hedges sent here in this scan (PG_HEDGE_BATCH: not a target) */
};

struct db_pool {
    struct event_base *base;
    struct pol_gen *cfg;
    int n;
    struct pg_conn *conns;
    struct db_query_list waiting;
    int listener;                   /* conn 0 LISTENs when set */
    int worker;                     /* for log lines */
    struct event dispatch_ev;       /* runs pool_dispatch on the next loop turn */
    int dispatch_pending;
    int rr;
    struct db_events ev;            /* to the pool's owner, on its thread */
    /* cache.invalidate_query on conn 0, every cache.invalidate_poll */
    struct db_query pollq;
    struct event poll_ev;
    int poll_on, poll_due, poll_inflight;
    struct pc_buf pollval;
    int pollval_null;
    struct inv_poll poll;
    int closing;
    /* hedging (pool_hedge) */
    struct event hedge_ev;
    int hedge_on;
    int64_t hedge_at;               /* ms: when hedge_ev fires */
    int hedge_starved;              /* a query was due but no connection was idle */
};

static void pgc_event_cb(evutil_socket_t fd, short what, void *arg);
static void pgc_timer_cb(evutil_socket_t fd, short what, void *arg);
static void pgc_start(struct pg_conn *c);
static void pgc_down(struct pg_conn *c, const char *why_in, int backoff);
static int pgc_send(struct pg_conn *c, struct db_query *q);
static void pool_dispatch(struct db_pool *p);
static void pool_schedule(struct db_pool *p);
static void pg_poll_capture(struct db_pool *p, PGresult *r);
static void pgc_end(struct db_query *q, enum db_status st, int ntuples, const char *err);

static void pool_publish(struct db_pool *p)
{
    int up = 0, connecting = 0, down = 0;
    for (int i = 0; i < p->n; i++) {
        switch (p->conns[i].state) {
        case PGC_READY: up++; break;
        case PGC_CONNECTING:
        case PGC_SETUP: connecting++; break;
        case PGC_DOWN: down++; break;
        }
    }
    struct db_state st = {up, connecting, down};
    if (p->ev.state)
        p->ev.state(p->ev.arg, &st);
}

static void pgc_unwatch(struct pg_conn *c)
{
    pc_fdwatch_off(&c->io);
}

/* Watch libpq's socket for what. A connection whose socket cannot be
 * watched (no descriptor left for the duplicate) is taken down at once
 * rather than left to its timers: -1, and c is down. */
static int pgc_watch(struct pg_conn *c, short what)
{
    int fd = c->pg ? PQsocket(c->pg) : -1;
    if (pc_fdwatch_set(&c->io, c->pool->base, fd, what, pgc_event_cb, c) == 0)
        return 0;
    char why[128];
    snprintf(why, sizeof(why), "cannot watch its socket: %s", strerror(errno));
    pgc_down(c, why, 1);
    return -1;
}

static void pgc_arm(struct pg_conn *c, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&c->timer, &tv);
}

static void pgc_fail_queries(struct pg_conn *c, const char *why)
{
    struct db_query_list list;
    TAILQ_INIT(&list);
    TAILQ_CONCAT(&list, &c->sent, link);
    c->nsent = 0;
    struct db_query *q;
    while ((q = TAILQ_FIRST(&list)) != NULL) {
        TAILQ_REMOVE(&list, q, link);
        pgc_end(q, DBQ_ERROR, 0, why);
    }
}

/* Drop the connection; queries on it fail. Reconnect after a backoff. */
static void pgc_down(struct pg_conn *c, const char *why_in, int backoff)
{
    struct db_pool *p = c->pool;
    char why[256];
    /* why_in is often PQerrorMessage(c->pg), which PQfinish frees */
    snprintf(why, sizeof(why), "%s", why_in ? why_in : "?");
    pc_one_line(why);
    pgc_unwatch(c);
    evtimer_del(&c->timer);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    pol_schema_free(c->schema);
    c->schema = NULL;
    if (c->was_up || c->backoff_ms == 0)
        pc_log(PC_LOG_WARN, "worker %d: database connection %d down: %s", p->worker, c->idx, why);
    c->was_up = 0;
    c->state = PGC_DOWN;
    c->retire = 0;
    pgc_fail_queries(c, "database connection lost");
    if (backoff) {
        c->backoff_ms = c->backoff_ms ? PC_MIN(c->backoff_ms * 2, PG_BACKOFF_MAX_MS) : PG_BACKOFF_MIN_MS;
        pgc_arm(c, c->backoff_ms);
    } else {
        pgc_arm(c, 0);
    }
    pool_publish(p);
    pool_schedule(p); /* fails waiting queries if nothing can take them */
}

void pg_conn_params(const struct pol_db *db, const char *appname, const char **keys,
                    const char **vals, char *timeout, size_t timeout_len)
{
    size_t n = 0;
#define PG_PARAM(k, v)                          \
    do {                                        \
        if ((v) != NULL && (v)[0] != '\0') {    \
            keys[n] = (k);                      \
            vals[n] = (v);                      \
            n++;                                \
        }                                       \
    } while (0)
    PG_PARAM("dbname", db->url);
    PG_PARAM("host", db->host);
    PG_PARAM("port", db->port);
    PG_PARAM("dbname", db->dbname);
    PG_PARAM("user", db->user);
    PG_PARAM("password", db->password);
    PG_PARAM("sslmode", db->sslmode);
    PG_PARAM("sslrootcert", db->sslrootcert);
    PG_PARAM("sslcert", db->sslcert);
    PG_PARAM("sslkey", db->sslkey);
    PG_PARAM("target_session_attrs", db->target_session_attrs);
    PG_PARAM("application_name", appname);
    snprintf(timeout, timeout_len, "%lld", (long long)((db->connect_timeout + 999) / 1000));
    PG_PARAM("connect_timeout", timeout);
    PG_PARAM("keepalives", "1");
    PG_PARAM("keepalives_idle", "30");
    PG_PARAM("keepalives_interval", "10");
    PG_PARAM("keepalives_count", "3");
#undef PG_PARAM
    keys[n] = NULL;
    vals[n] = NULL;
}

/*
 * With several hosts (host=a,b), libpq moves on by itself from a host that
 * refuses, but from one that does not answer at all (a dead node: a black
 * hole) only after its own connect_timeout, which it applies in blocking
 * PQconnectdb, not to PQconnectPoll driven by our loop. Our connect timer
 * abandons the whole attempt, and the next one started at the first host
 * again: the second host was never tried while the first stayed silent.
 * So when an attempt times out, the next one starts at the host after the
 * one that timed out (the lists are rotated), and keeps that order while it
 * works; a reload starts from the configured order. A name with several
 * addresses is one host to libpq: its addresses are stepped through by
 * pgc_pin.
 */
static const char *const pg_rot_keys[3] = {"host", "hostaddr", "port"};

static size_t pg_list_len(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* A comma-separated list, rotated to start at element `from`. */
static char *pg_list_rotate(const char *list, size_t from)
{
    size_t len = strlen(list), n = pg_list_len(list), i = 0;
    const char *at = list;
    while (i < from % n)
        if (*at++ == ',')
            i++;
    size_t head = (size_t)(at - list); /* elements before `from`, with their commas */
    char *out = pc_malloc(len + 1);
    memcpy(out, at, len - head);
    if (head > 0) {
        out[len - head] = ',';
        memcpy(out + len - head + 1, list, head - 1);
    }
    out[len] = '\0';
    return out;
}

/* Is element i of a comma-separated list want? (A one-element list
 * applies to every host.) */
static int pg_list_is(const char *list, size_t i, const char *want)
{
    if (pg_list_len(list) == 1)
        i = 0;
    for (size_t k = 0; k < i; k++) {
        list = strchr(list, ',');
        if (list == NULL)
            return 0;
        list++;
    }
    size_t wl = strlen(want);
    return strncmp(list, want, wl) == 0 && (list[wl] == ',' || list[wl] == '\0');
}

static void pgc_pin_clear(struct pg_conn *c)
{
    for (int k = 0; k < 3; k++) {
        free(c->pin[k]);
        c->pin[k] = NULL;
    }
}

static void pgc_rot_clear(struct pg_conn *c)
{
    for (int k = 0; k < 3; k++) {
        free(c->rot[k]);
        c->rot[k] = NULL;
    }
    pgc_pin_clear(c);
    c->pinned = 0;
}

/* Element i of a comma-separated list (a one-element list applies to
 * every host), as a new string. */
static char *pg_list_elem(const char *list, size_t i)
{
    if (pg_list_len(list) == 1)
        i = 0;
    for (size_t k = 0; k < i && list != NULL; k++) {
        list = strchr(list, ',');
        if (list != NULL)
            list++;
    }
    if (list == NULL)
        return pc_strdup("");
    const char *e = strchr(list, ',');
    return pc_strndup(list, e ? (size_t)(e - list) : strlen(list));
}

/*
 * A name with several addresses is one host to libpq, which tries its
 * addresses in turn when one refuses, but from one that does not answer it
 * never moves on in PQconnectPoll (as with hosts, above): every attempt
 * restarted at the same silent address, and the name never served although
 * -t (blocking, with libpq's own timeout) did. So when an attempt times out
 * on an address of a name, the next attempt (that one only) gives libpq
 * that name's later addresses as hostaddr values (host=name,name
 * hostaddr=b,c): the name is resolved afresh each time, so a name that
 * moved to other servers is never kept on old addresses. n: the hosts of
 * lists; the name is element 0. 1 when c->pin was set.
 */
static int pgc_pin(struct pg_conn *c, char *const lists[3], size_t n, const char *cur_addr)
{
    char *name = pg_list_elem(lists[0], 0), *port = lists[2] ? pg_list_elem(lists[2], 0) : NULL;
    char *addr0 = lists[1] ? pg_list_elem(lists[1], 0) : pc_strdup("");
    struct addrinfo hints, *res = NULL;
    struct pc_buf hb = {0}, ab = {0}, pb = {0};
    int pinned = 0, found = 0;
    size_t after = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (name[0] == '\0' || name[0] == '/' || addr0[0] != '\0' || cur_addr == NULL || cur_addr[0] == '\0' ||
        strcmp(name, cur_addr) == 0)
        goto cleanup; /* not a name, or its address is given */
    /* what libpq does (blocking, as libpq's own resolution is) */
    if (getaddrinfo(name, port && port[0] ? port : NULL, &hints, &res) != 0)
        goto cleanup;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        char ip[NI_MAXHOST];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        if (!found) {
            found = strcmp(ip, cur_addr) == 0;
            continue;
        }
        pc_buf_addf(&hb, "%s%s", after ? "," : "", name);
        pc_buf_addf(&ab, "%s%s", after ? "," : "", ip);
        if (lists[2] != NULL && pg_list_len(lists[2]) == n && n > 1)
            pc_buf_addf(&pb, "%s%s", after ? "," : "", port);
        after++;
    }
    if (after == 0)
        goto cleanup; /* the address that timed out was the last (or is gone) */
    for (size_t i = 1; i < n; i++) {
        char *h = pg_list_elem(lists[0], i), *a = lists[1] ? pg_list_elem(lists[1], i) : pc_strdup("");
        pc_buf_addf(&hb, ",%s", h);
        pc_buf_addf(&ab, ",%s", a);
        free(h);
        free(a);
        if (lists[2] != NULL && pg_list_len(lists[2]) == n && n > 1) {
            char *pt = pg_list_elem(lists[2], i);
            pc_buf_addf(&pb, ",%s", pt);
            free(pt);
        }
    }
    pgc_pin_clear(c);
    c->pin[0] = pc_strdup(pc_buf_cstr(&hb));
    c->pin[1] = pc_strdup(pc_buf_cstr(&ab));
    if (lists[2] != NULL)
        c->pin[2] = pb.len ? pc_strdup(pc_buf_cstr(&pb)) : pc_strdup(lists[2]);
    pinned = 1;
cleanup:
    if (res != NULL)
        freeaddrinfo(res);
    pc_buf_free(&hb);
    pc_buf_free(&ab);
    pc_buf_free(&pb);
    free(name);
    free(port);
    free(addr0);
    return pinned;
}

/* The attempt on c->pg timed out: the next one starts after its address
 * (pgc_pin) or after its host. */
static void pgc_rotate(struct pg_conn *c)
{
    if (c->pg == NULL)
        return;
    PQconninfoOption *opts = PQconninfo(c->pg);
    const char *cur_host = PQhost(c->pg), *cur_port = PQport(c->pg), *cur_addr = PQhostaddr(c->pg);
    if (opts == NULL || cur_host == NULL || cur_port == NULL) {
        PQconninfoFree(opts);
        return;
    }
    /* the lists to rotate: those of the attempt, or, for a pinned one, the
     * base it was pinned from (its hosts named, not pinned) */
    char *lists[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        if (c->pinned) {
            lists[k] = c->rot[k] ? pc_strdup(c->rot[k]) : NULL;
            continue;
        }
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
            if (strcmp(o->keyword, pg_rot_keys[k]) == 0 && o->val != NULL && o->val[0] != '\0')
                lists[k] = pc_strdup(o->val);
    }
    PQconninfoFree(opts);
    const char *names = lists[0] ? lists[0] : lists[1];
    size_t n = names ? pg_list_len(names) : 1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if ((pg_list_is(names, i, cur_host) || (lists[1] && pg_list_is(lists[1], i, cur_host))) &&
            (lists[2] == NULL || pg_list_is(lists[2], i, cur_port))) {
            at = i;
            break;
        }
    }
    char *from_at[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (lists[k] != NULL)
            from_at[k] = pg_list_len(lists[k]) == n ? pg_list_rotate(lists[k], at) : pc_strdup(lists[k]);
    pgc_pin_clear(c);
    if (from_at[0] != NULL && pgc_pin(c, from_at, n, cur_addr)) {
        /* the next attempt: the name's later addresses; its base starts at the name */
        for (int k = 0; k < 3; k++) {
            free(c->rot[k]);
            c->rot[k] = from_at[k];
        }
    } else {
        for (int k = 0; k < 3; k++)
            free(from_at[k]);
        if (n > 1) {
            for (int k = 0; k < 3; k++) {
                free(c->rot[k]);
                c->rot[k] = NULL;
                if (lists[k] != NULL)
                    c->rot[k] = pg_list_len(lists[k]) == n ? pg_list_rotate(lists[k], at + 1) : pc_strdup(lists[k]);
            }
        }
    }
    for (int k = 0; k < 3; k++)
        free(lists[k]);
}

static void pgc_start(struct pg_conn *c)
{
    struct db_pool *p = c->pool;
    char timeout[24];
    if (c->cfg != p->cfg) {
        pol_gen_unref(c->cfg);
        c->cfg = pol_gen_ref(p->cfg);
        pgc_rot_clear(c); /* a reload may name other hosts */
    }
    const char *keys[PG_MAX_PARAMS + 3], *vals[PG_MAX_PARAMS + 3];
    pg_conn_params(&c->cfg->db, "portcullis", keys, vals, timeout, sizeof(timeout));
    size_t n = 0;
    while (keys[n] != NULL)
        n++;
    c->pinned = c->pin[0] != NULL;
    for (int k = 0; k < 3; k++) { /* later keywords override earlier ones */
        const char *v = c->pinned ? c->pin[k] : c->rot[k];
        if (v != NULL) {
            keys[n] = pg_rot_keys[k];
            vals[n++] = v;
        }
    }
    keys[n] = vals[n] = NULL;
    c->pg = PQconnectStartParams(keys, vals, 1);
    pgc_pin_clear(c); /* one attempt only: a later one resolves the name afresh */
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        pgc_down(c, c->pg ? PQerrorMessage(c->pg) : "out of memory", 1);
        return;
    }
    PQsetnonblocking(c->pg, 1);
    c->state = PGC_CONNECTING;
    c->step = PGS_SESSION;
    if (pgc_watch(c, EV_WRITE) != 0)
        return;
    pgc_arm(c, c->cfg->db.connect_timeout);
    pool_publish(p);
}

/*
 * TCP retransmits a lost segment after 200 ms at the least, and doubles
 * the wait every time (0.2, 0.6, 1.4, 3.0 s after the loss): one lost
 * packet to the database could cost more than the whole policy budget, and
 * a path that drops everything for a few hundred milliseconds at a time
 * (flapping) kept every connection of a worker in that backoff at once.
 * A database is a few milliseconds away: our sockets to it retransmit
 * after 50 ms (above that floor the kernel's estimate from measured round
 * trips still applies). Linux 6.15 and later (TCP_RTO_MIN_US); on older
 * kernels the 200 ms floor stays, and the log says so once.
 */
static void pgc_tcp_tune(struct pg_conn *c)
{
    static int said;
    int fd = PQsocket(c->pg);
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
        (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
        return; /* a Unix socket */
    int us = PG_RTO_MIN_US;
    if (setsockopt(fd, IPPROTO_TCP, TCP_RTO_MIN_US, &us, sizeof(us)) != 0 &&
        !__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
        pc_log(PC_LOG_INFO, "database connections keep TCP's 200 ms retransmission floor: "
                            "TCP_RTO_MIN_US (Linux 6.15) refused: %s", strerror(errno));
}

static void pgc_flush(struct pg_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        pgc_down(c, PQerrorMessage(c->pg), 1);
        return;
    }
    pgc_watch(c, r == 1 ? (EV_READ | EV_WRITE) : EV_READ);
}

/* Policy i's prepared statement on c: named after the generation, so a
 * reload's statements never collide with the old ones. */
#define PG_STMT_NAME 48
static void pgc_stmt_name(const struct pg_conn *c, int i, char name[PG_STMT_NAME])
{
    snprintf(name, PG_STMT_NAME, "pc%llu_%d", (unsigned long long)c->cfg->generation, i);
}

/* The next policy at or after i that this connection prepares, or n. */
static int pgc_next_prep(const struct pg_conn *c, int i)
{
    int n = (int)c->nchoice;
    while (i < n && c->choice[i] < 0)
        i++;
    return i;
}

/* Send the current setup step's statement. */
static int pgc_setup_send(struct pg_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    switch (c->step) {
    case PGS_SESSION: {
        struct pc_buf b = {0};
        int64_t t = c->cfg->policy_timeout;
        pc_buf_addf(&b, "SET default_transaction_read_only = on; SET statement_timeout = %lld; "
                        "SET lock_timeout = %lld; SET idle_in_transaction_session_timeout = %lld",
                    (long long)t, (long long)t, (long long)(t * 2));
        if (c->idx == 0 && c->pool->listener && c->cfg->cache.invalidate_channel != NULL)
            pc_buf_addf(&b, "; LISTEN \"%s\"", c->cfg->cache.invalidate_channel);
        int ok = PQsendQuery(c->pg, pc_buf_cstr(&b));
        pc_buf_free(&b);
        return ok ? 0 : -1;
    }
    case PGS_SCHEMA:
        c->schema = pol_schema_new();
        return PQsendQuery(c->pg, pol_schema_sql_pg) ? 0 : -1;
    case PGS_VERSION:
        c->version.len = 0;
        c->version_rows = 0;
        c->version_failed = 0;
        return PQsendQuery(c->pg, c->cfg->db.schema_version.query) ? 0 : -1;
    case PGS_PREPARE: {
        const struct pol_variant *v = &ps->p[c->prep].variants[c->choice[c->prep]];
        char name[PG_STMT_NAME];
        pgc_stmt_name(c, c->prep, name);
        return PQsendPrepare(c->pg, name, v->sql, (int)v->nparams, NULL) ? 0 : -1;
    }
    }
    return -1;
}

/* The schema is known (or was not needed): choose each policy's variant. */
static void pgc_choose(struct pg_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    size_t n = ps ? ps->n : 0;
    if (c->nchoice != n) {
        c->choice = pc_realloc(c->choice, (n ? n : 1) * sizeof(*c->choice));
        c->missing = pc_realloc(c->missing, (n ? n : 1) * sizeof(*c->missing));
        c->nchoice = n;
    }
    pol_choose(ps, c->schema, c->choice, c->missing);
    pol_schema_free(c->schema);
    c->schema = NULL;
    if (pol_report_choice(c->cfg, c->choice, c->missing))
        pol_log_choice(c->cfg, c->choice, c->missing);
}

static void pgc_version_done(struct pg_conn *c)
{
    const struct pol_schema_version *sv = &c->cfg->db.schema_version;
    const char *v = c->version_failed ? NULL : c->version_rows ? pc_buf_cstr(&c->version) : "(no row)";
    int known = 0;
    if (!c->version_failed && c->version_rows > 0) {
        /* split the joined values back for the comparison */
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

/* The current step is complete: move to the next one. 1 when setup is
 * complete, 0 when a step was sent, -1 on failure. */
static int pgc_setup_advance(struct pg_conn *c)
{
    const struct pol_set *ps = c->cfg->set;
    switch (c->step) {
    case PGS_SESSION:
        if (ps != NULL && ps->any_requires) {
            c->step = PGS_SCHEMA;
            break;
        }
        /* fall through */
    case PGS_SCHEMA:
        if (c->cfg->db.schema_version.query != NULL) {
            c->step = PGS_VERSION;
            break;
        }
        /* fall through */
    case PGS_VERSION:
        if (c->step == PGS_VERSION)
            pgc_version_done(c);
        pgc_choose(c);
        c->step = PGS_PREPARE;
        c->prep = pgc_next_prep(c, 0);
        if ((size_t)c->prep >= c->nchoice)
            return 1;
        break;
    case PGS_PREPARE:
        c->prep = pgc_next_prep(c, c->prep + 1);
        if ((size_t)c->prep >= c->nchoice)
            return 1;
        break;
    }
    return pgc_setup_send(c) == 0 ? 0 : -1;
}

/*
 * An idle connection is pinged every timeouts.policy, so that a database
 * that went away silently (a black hole: no reset, nothing to read; or a
 * server that is stopped while the kernel still acknowledges) is noticed
 * without traffic. The ping is a query like any other: one far past the
 * budget marks the connection down (pgc_timer_cb), which turns readiness
 * 503. With no traffic a dead database is noticed within timeouts.policy
 * (the idle wait) + 2 x timeouts.policy + 1 s (the wedge limit). TCP
 * keepalives (30 s + 3 x 10 s) alone took about a minute, and notice
 * neither a stopped server nor a middle box that still acknowledges.
 */
static void pgc_ping_done(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    PC_UNUSED(q);
    PC_UNUSED(st);
    PC_UNUSED(ntuples);
    PC_UNUSED(err);
}

static void pgc_idle(struct pg_conn *c)
{
    pgc_arm(c, c->cfg->policy_timeout);
}

static void pgc_ready(struct pg_conn *c)
{
    if (!PQenterPipelineMode(c->pg)) {
        pgc_down(c, "cannot enter pipeline mode", 1);
        return;
    }
    c->state = PGC_READY;
    c->backoff_ms = 0;
    if (!c->was_up)
        pc_log(PC_LOG_INFO, "worker %d: database connection %d up (generation %llu)", c->pool->worker, c->idx,
               (unsigned long long)c->cfg->generation);
    c->was_up = 1;
    pgc_idle(c);
    if (pgc_watch(c, EV_READ) != 0)
        return;
    pool_publish(c->pool);
    /* the listener may have missed notifications while it was down */
    if (c->idx == 0 && c->pool->listener && c->cfg->cache.invalidate_channel != NULL && c->pool->ev.invalidate)
        c->pool->ev.invalidate(c->pool->ev.arg);
    if (c->idx == 0 && c->pool->listener && c->cfg->cache.invalidate_query != NULL) {
        inv_poll_reset(&c->pool->poll); /* a new session: its first answer empties the cache */
        c->pool->poll_due = 1;
    }
    pool_schedule(c->pool);
}

static void pgc_setup_results(struct pg_conn *c)
{
    for (;;) {
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        if (r != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (c->step == PGS_VERSION) {
                /* an unreadable version is reported, never fatal */
                if (st == PGRES_TUPLES_OK && PQnfields(r) >= 1) {
                    for (int i = 0; i < PQntuples(r); i++)
                        pc_buf_addf(&c->version, "%s%s", c->version_rows++ ? "," : "", PQgetvalue(r, i, 0));
                } else if (!c->version_failed) {
                    c->version_failed = 1;
                    c->version.len = 0;
                    pc_buf_adds(&c->version, st == PGRES_TUPLES_OK ? "the query returns no column"
                                                                   : PQresultErrorMessage(r));
                    pc_one_line((char *)pc_buf_cstr(&c->version));
                }
                PQclear(r);
                continue;
            }
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                char why[512];
                snprintf(why, sizeof(why), "setup (%s) failed: %s",
                         c->step == PGS_SESSION ? "session" : c->step == PGS_SCHEMA ? "schema" :
                         c->cfg->set->p[c->prep].name, PQresultErrorMessage(r));
                PQclear(r);
                /* a policy that no longer prepares (schema changed): fail
                 * closed, retry later */
                pgc_down(c, why, 1);
                return;
            }
            if (c->step == PGS_SCHEMA)
                for (int i = 0; i < PQntuples(r); i++)
                    pol_schema_add(c->schema, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
            PQclear(r);
            continue;
        }
        /* NULL: this step is complete */
        int rc = pgc_setup_advance(c);
        if (rc > 0) {
            pgc_ready(c);
            return;
        }
        if (rc < 0) {
            pgc_down(c, PQerrorMessage(c->pg), 1);
            return;
        }
        pgc_flush(c);
        if (c->state != PGC_SETUP)
            return;
    }
}

static void pgc_results(struct pg_conn *c)
{
    struct db_query *q;
    int nulls = 0;
    while ((q = TAILQ_FIRST(&c->sent)) != NULL) {
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL && ++nulls > 2)
            break; /* nothing more buffered */
        if (r != NULL)
            nulls = 0;
        if (q->phase == 0) {
            if (r == NULL)
                continue;
            ExecStatusType st = PQresultStatus(r);
            if (q == &c->pool->pollq)
                pg_poll_capture(c->pool, r);
            if (st == PGRES_TUPLES_OK) {
                q->st = DBQ_OK;
                q->ntuples = PQntuples(r);
            } else {
                q->st = DBQ_ERROR;
                const char *msg = st == PGRES_PIPELINE_ABORTED ? "pipeline aborted" : PQresultErrorMessage(r);
                snprintf(q->err, sizeof(q->err), "%s", msg);
                pc_one_line(q->err);
            }
            PQclear(r);
            q->phase = 1;
            continue;
        }
        if (q->phase == 1) {
            if (r != NULL) {
                /* more than one result for one query: ignore the extra */
                PQclear(r);
                continue;
            }
            q->phase = 2;
            continue;
        }
        /* phase 2: the sync */
        if (r == NULL)
            continue;
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st != PGRES_PIPELINE_SYNC)
            continue;
        TAILQ_REMOVE(&c->sent, q, link);
        c->nsent--;
        pgc_end(q, q->st, q->ntuples, q->err);
        if (c->state != PGC_READY)
            return;
    }
    if (c->nsent == 0 && c->retire) {
        c->retire = 0;
        pgc_down(c, "replaced by a new config generation", 0);
        return;
    }
    if (c->nsent == 0) {
        pgc_idle(c);
        if (c->pool->hedge_starved) /* a query waits for an idle connection */
            pool_schedule(c->pool);
    }
}

/* ---- hedging ----
 *
 * A policy query unanswered after timeouts.policy / 4 is sent again on
 * another connection of the pool that has nothing outstanding
 * (pool_hedge); the first answer wins, the other is read and dropped.
 * Policies are read-only, so running one twice is harmless, and hedges go
 * only to idle connections, so a database that is merely busy gets no
 * extra load from them (a policy slower than policy / 4 does run twice when
 * a connection is idle). A query stuck in one TCP stream (a lost flow, a
 * stream in retransmission backoff: 0.2, 0.6, 1.4, 3.0 s after the loss)
 * is answered through another; without hedges it failed at the budget.
 * New queries avoid a connection whose oldest answer is overdue
 * (pgc_suspect, pool_dispatch).
 *
 * Ownership. The caller's query (orig) stays in its connection's pipeline
 * until it is answered there or the caller is told. The copy is pg.c's own
 * (struct pg_hedge), in another connection's pipeline; it borrows orig's
 * parameters only while it is sent (libpq copies them into its buffer).
 * Whichever of the two ends first with an answer completes orig, exactly
 * once:
 *  - orig first: the copy becomes an orphan, read and freed when it ends;
 *  - the copy first: orig's place in its pipeline is taken by the copy's
 *    memory (a husk with orig's progress), which reads orig's result and
 *    is freed then; orig leaves the pipeline and is completed, so its
 *    owner may free it at once.
 * An error (a statement error, a lost connection) on one of the two
 * completes orig only when the other is no longer in flight. Results are
 * matched to queries by their place in each pipeline, as always: an answer
 * is never given to another query. orig->drv points to the hedge while
 * the copy is in flight, to pg_hedged_once after: a query is hedged once.
 */
struct pg_hedge {
    struct db_query copy;           /* first: found from the db_query in a pipeline */
    struct db_query *orig;          /* NULL once orig has been completed (the copy is an orphan or a husk) */
    struct pg_conn *orig_on;        /* orig's connection; NULL once orig left it (it waits on the copy alone) */
};

static char pg_hedged_once;
#define PG_HEDGED_ONCE ((void *)&pg_hedged_once)

static void pg_hedge_copy_done(struct db_query *cq, enum db_status st, int ntuples, const char *err)
{
    struct pg_hedge *h = (struct pg_hedge *)cq;
    struct db_query *orig = h->orig;
    if (orig == NULL) { /* an orphan, or a husk: nobody waits for it */
        free(h);
        return;
    }
    if (st != DBQ_OK && h->orig_on != NULL) {
        /* orig is still in flight: its own outcome decides */
        orig->drv = PG_HEDGED_ONCE;
        free(h);
        return;
    }
    char e[sizeof(cq->err)];
    snprintf(e, sizeof(e), "%s", err ? err : "");
    if (h->orig_on != NULL) {
        /* the husk takes orig's place, to read orig's result */
        struct pg_conn *a = h->orig_on;
        cq->phase = orig->phase;
        cq->sent_at = orig->sent_at;
        cq->st = orig->st;
        cq->ntuples = orig->ntuples;
        cq->err[0] = '\0';
        TAILQ_INSERT_BEFORE(orig, cq, link);
        TAILQ_REMOVE(&a->sent, orig, link);
        h->orig = NULL;
        h->orig_on = NULL;
    } else {
        free(h);
    }
    orig->drv = PG_HEDGED_ONCE;
    orig->done(orig, st, ntuples, e);
}

/* q has left its connection's pipeline with st: tell its owner, unless q
 * is hedged and its copy may still answer. */
static void pgc_end(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    struct pg_hedge *h = q->drv;
    if (h == NULL || h == PG_HEDGED_ONCE || q->done == pg_hedge_copy_done) {
        q->done(q, st, ntuples, err);
        return;
    }
    /* orig, its copy in flight */
    if (st != DBQ_OK) {
        h->orig_on = NULL; /* the copy may still answer */
        return;
    }
    h->orig = NULL; /* the copy is an orphan now */
    q->drv = PG_HEDGED_ONCE;
    q->done(q, st, ntuples, err);
}

static int64_t pgc_hedge_after(const struct pg_conn *c)
{
    int64_t ms = c->cfg->policy_timeout / 4;
    return ms > 0 ? ms : 1;
}

/* Is c's oldest query overdue (its answer later than a hedge would be
 * sent)? New queries go elsewhere when they can (pool_dispatch). */
static int pgc_suspect(const struct pg_conn *c, int64_t now)
{
    const struct db_query *q = TAILQ_FIRST(&c->sent);
    return q != NULL && now - q->sent_at >= pgc_hedge_after(c);
}

static void pool_hedge_arm(struct db_pool *p, int64_t at)
{
    if (p->hedge_on && p->hedge_at <= at)
        return;
    int64_t ms = at - pc_now_ms();
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&p->hedge_ev, &tv);
    p->hedge_on = 1;
    p->hedge_at = at;
}

/* Send q (on c) again on t. 0 when sent. */
static int pgc_hedge(struct pg_conn *c, struct db_query *q, struct pg_conn *t)
{
    struct pg_hedge *h = pc_calloc(1, sizeof(*h));
    h->copy.gen = q->gen;
    h->copy.policy = q->policy;
    h->copy.nparams = q->nparams;
    h->copy.values = q->values; /* orig's, read by the send below only */
    h->copy.lengths = q->lengths;
    h->copy.done = pg_hedge_copy_done;
    if (pgc_send(t, &h->copy) != 0) {
        free(h);
        pgc_down(t, PQerrorMessage(t->pg), 1);
        return -1;
    }
    h->copy.values = NULL;
    h->copy.lengths = NULL;
    h->orig = q;
    h->orig_on = c;
    q->drv = h;
    pgc_flush(t); /* may take t down: then the copy ends as an error (pg_hedge_copy_done) */
    return 0;
}

/* Hedge q (in c's pipeline) when it is due, onto a target of this scan.
 * 1 when q is not due yet (nor is anything sent after it); next: the
 * earliest time one will be. */
static int pool_hedge_one(struct db_pool *p, struct pg_conn *c, struct db_query *q, int64_t now, int64_t *next)
{
    if (q == &p->pollq || q == &c->ping || q->done == pg_hedge_copy_done || q->drv != NULL || q->phase != 0)
        return 0; /* not a policy query, already hedged, or answered (its sync pending) */
    int64_t due = q->sent_at + pgc_hedge_after(c);
    if (due > now) {
        *next = PC_MIN(*next, due);
        return 1;
    }
    struct pg_conn *t = NULL;
    for (int k = 0; k < p->n && t == NULL; k++) {
        struct pg_conn *x = &p->conns[(p->rr + k) % p->n];
        if (x != c && x->hedge_n < PG_HEDGE_BATCH && x->state == PGC_READY && x->cfg == q->gen &&
            x->choice[q->policy] >= 0)
            t = x;
    }
    if (t == NULL) {
        p->hedge_starved = 1;
        return 0;
    }
    if (pgc_hedge(c, q, t) == 0)
        t->hedge_n++;
    return 0;
}

/* Hedge every policy query that is due onto connections that had nothing
 * outstanding when the scan began (each takes up to PG_HEDGE_BATCH), and
 * arm the timer for the next one that will be due. In each pipeline the
 * queries behind the first go first: the first may be a slow query, and
 * its copy would hold up the copies sent after it. */
static void pool_hedge(struct db_pool *p)
{
    int64_t now = pc_now_ms(), next = INT64_MAX;
    p->hedge_starved = 0;
    for (int i = 0; i < p->n; i++) {
        struct pg_conn *t = &p->conns[i];
        t->hedge_n = t->state == PGC_READY && !t->retire && t->nsent == 0 ? 0 : PG_HEDGE_BATCH;
    }
    for (int i = 0; i < p->n; i++) {
        struct pg_conn *c = &p->conns[i];
        struct db_query *head = c->state == PGC_READY ? TAILQ_FIRST(&c->sent) : NULL;
        if (head == NULL)
            continue;
        struct db_query *q, *nq;
        for (q = TAILQ_NEXT(head, link); q != NULL && c->state == PGC_READY; q = nq) {
            nq = TAILQ_NEXT(q, link);
            if (pool_hedge_one(p, c, q, now, &next))
                break;
        }
        if (c->state == PGC_READY && TAILQ_FIRST(&c->sent) == head)
            pool_hedge_one(p, c, head, now, &next);
    }
    if (next != INT64_MAX)
        pool_hedge_arm(p, next);
}

static void pool_hedge_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    p->hedge_on = 0;
    pool_hedge(p);
}

/* ---- cache.invalidate_query ---- */

static void pg_poll_capture(struct db_pool *p, PGresult *r)
{
    p->pollval.len = 0;
    p->pollval_null = !(PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) >= 1 && PQntuples(r) > 0 &&
                        !PQgetisnull(r, 0, 0));
    if (!p->pollval_null)
        pc_buf_add(&p->pollval, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
}

static void pg_poll_done(struct db_query *q, enum db_status st, int ntuples, const char *err)
{
    struct db_pool *p = (struct db_pool *)((char *)q - offsetof(struct db_pool, pollq));
    PC_UNUSED(ntuples);
    p->poll_inflight = 0;
    if (p->closing)
        return;
    int changed = st == DBQ_OK ? inv_poll_result(&p->poll, p->worker, p->pollval_null ? NULL : p->pollval.p,
                                                 p->pollval.len, NULL)
                               : inv_poll_result(&p->poll, p->worker, NULL, 0, err && *err ? err : "error");
    if (changed && p->ev.invalidate)
        p->ev.invalidate(p->ev.arg);
}

static void pg_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_pool *p = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    p->poll_due = 1;
    pool_schedule(p);
}

/* The poll timer follows the pool's generation. */
static void pg_poll_arm(struct db_pool *p)
{
    if (p->poll_on) {
        event_del(&p->poll_ev);
        p->poll_on = 0;
    }
    if (!p->listener || p->cfg->cache.invalidate_query == NULL)
        return;
    int64_t ms = p->cfg->cache.invalidate_poll;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_assign(&p->poll_ev, p->base, -1, EV_PERSIST, pg_poll_cb, p);
    if (event_add(&p->poll_ev, &tv) == 0)
        p->poll_on = 1;
}

static void pgc_notifies(struct pg_conn *c)
{
    PGnotify *n;
    int any = 0;
    while ((n = PQnotifies(c->pg)) != NULL) {
        PQfreemem(n);
        any = 1;
    }
    if (any && c->pool->ev.invalidate)
        c->pool->ev.invalidate(c->pool->ev.arg);
}

static void pgc_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    PC_UNUSED(fd);
    if (c->state == PGC_CONNECTING) {
        short was = c->io.what;
        /* PQconnectPoll may close the socket and open another (the next
         * host of host=a,b, or the next address of a name), which usually
         * gets the same descriptor number: a watch that compared numbers
         * would go on watching the old socket. So the watch is dropped
         * before every call while connecting and set afresh after it (a
         * few system calls per connection attempt). */
        pgc_unwatch(c);
        PostgresPollingStatusType ps = PQconnectPoll(c->pg);
        switch (ps) {
        case PGRES_POLLING_READING:
            pgc_watch(c, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            pgc_watch(c, EV_WRITE);
            return;
        case PGRES_POLLING_FAILED:
            pgc_down(c, PQerrorMessage(c->pg), 1);
            return;
        case PGRES_POLLING_OK:
            pgc_tcp_tune(c);
            c->state = PGC_SETUP;
            c->step = PGS_SESSION;
            if (pgc_setup_send(c) != 0) {
                pgc_down(c, PQerrorMessage(c->pg), 1);
                return;
            }
            pgc_flush(c);
            return;
        default:
            pgc_watch(c, was);
            return;
        }
    }
    if (what & EV_WRITE) {
        pgc_flush(c);
        if (c->state == PGC_DOWN)
            return;
    }
    if (what & EV_READ) {
        if (!PQconsumeInput(c->pg)) {
            pgc_down(c, PQerrorMessage(c->pg), 1);
            return;
        }
        if (c->state == PGC_SETUP)
            pgc_setup_results(c);
        else if (c->state == PGC_READY)
            pgc_results(c);
        if (c->state != PGC_DOWN && c->pg != NULL)
            pgc_notifies(c);
        /* libpq drops the connection itself when it loses the protocol's
         * thread (a malformed message): our duplicate would keep the
         * socket open until the next ping */
        if (c->state != PGC_DOWN && c->pg != NULL && PQstatus(c->pg) == CONNECTION_BAD)
            pgc_down(c, PQerrorMessage(c->pg), 1);
    }
}

static void pgc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    switch (c->state) {
    case PGC_DOWN:
        pgc_start(c);
        return;
    case PGC_CONNECTING:
    case PGC_SETUP:
        pgc_rotate(c);
        pgc_down(c, "connect timeout", 1);
        return;
    case PGC_READY: {
        struct db_query *q = TAILQ_FIRST(&c->sent);
        if (q == NULL) {
            /* idle for timeouts.policy: ping (pgc_idle) */
            if (c->retire)
                return;
            if (pgc_send(c, &c->ping) != 0) {
                pgc_down(c, PQerrorMessage(c->pg), 1);
                return;
            }
            pgc_flush(c);
            return;
        }
        int64_t limit = 2 * c->cfg->policy_timeout + 1000;
        int64_t age = pc_now_ms() - q->sent_at;
        if (age >= limit) {
            pgc_down(c, "a query is far past the policy budget; connection presumed wedged", 1);
            return;
        }
        pgc_arm(c, limit - age);
        return;
    }
    }
}

static int pgc_send(struct pg_conn *c, struct db_query *q)
{
    char name[PG_STMT_NAME];
    const char *vals[POL_MAX_PARAMS];
    int lens[POL_MAX_PARAMS];
    if (q == &c->pool->pollq) {
        /* one statement, no parameters: checked by -t and at start-up */
        if (!PQsendQueryParams(c->pg, c->cfg->cache.invalidate_query, 0, NULL, NULL, NULL, NULL, 0) ||
            !PQpipelineSync(c->pg))
            return -1;
    } else if (q == &c->ping) {
        if (!PQsendQueryParams(c->pg, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c->pg))
            return -1;
    } else {
        const struct pol_variant *v = &c->cfg->set->p[q->policy].variants[c->choice[q->policy]];
        /* the variant's $1..$n, from the policy's parameters */
        for (size_t k = 0; k < v->nparams; k++) {
            vals[k] = q->values[v->param[k]];
            lens[k] = q->lengths[v->param[k]];
        }
        pgc_stmt_name(c, q->policy, name);
        if (!PQsendQueryPrepared(c->pg, name, (int)v->nparams, vals, lens, NULL, 0) ||
            !PQpipelineSync(c->pg))
            return -1;
    }
    q->phase = 0;
    q->sent_at = pc_now_ms();
    q->st = DBQ_ERROR;
    q->ntuples = 0;
    q->err[0] = '\0';
    if (q != &c->pool->pollq && q != &c->ping && q->done != pg_hedge_copy_done)
        pool_hedge_arm(c->pool, q->sent_at + pgc_hedge_after(c));
    if (c->nsent == 0)
        pgc_arm(c, 2 * c->cfg->policy_timeout + 1000);
    TAILQ_INSERT_TAIL(&c->sent, q, link);
    c->nsent++;
    return 0;
}

/* Can a connection take a query of generation cfg now or soon? One that
 * is up, or coming up, on cfg; or, for the current generation, one that
 * will restart on it: an old-generation connection still finishing its
 * queries, or one replaced by a reload and reconnecting at once. Not one
 * waiting out a backoff after a failure: then the answer is 503 now. */
static int pool_can_take(const struct db_pool *p, const struct pol_gen *cfg)
{
    for (int i = 0; i < p->n; i++) {
        const struct pg_conn *c = &p->conns[i];
        if (c->state == PGC_DOWN) {
            if (cfg == p->cfg && c->backoff_ms == 0)
                return 1;
        } else if (c->cfg == cfg ? !c->retire : cfg == p->cfg) {
            return 1;
        }
    }
    return 0;
}

/* Send waiting queries to ready connections of their generation; fail
 * those that no connection can take (pool_can_take). */
static void pool_dispatch(struct db_pool *p)
{
    struct db_query *q, *next;
    struct pg_conn *c0 = &p->conns[0];
    if (p->poll_due && !p->poll_inflight && c0->state == PGC_READY && !c0->retire && c0->cfg == p->cfg &&
        p->listener && c0->cfg->cache.invalidate_query != NULL) {
        p->poll_due = 0;
        p->poll_inflight = 1;
        p->pollq.gen = c0->cfg;
        if (pgc_send(c0, &p->pollq) != 0) {
            p->poll_inflight = 0;
            pgc_down(c0, PQerrorMessage(c0->pg), 1);
        } else {
            pgc_flush(c0);
        }
    }
    int64_t now = pc_now_ms();
    for (q = TAILQ_FIRST(&p->waiting); q != NULL; q = next) {
        next = TAILQ_NEXT(q, link);
        struct pg_conn *best = NULL;
        int best_suspect = 0;
        for (int k = 0; k < p->n; k++) {
            struct pg_conn *c = &p->conns[(p->rr + k) % p->n];
            if (c->cfg != q->gen || c->state != PGC_READY || c->retire)
                continue;
            /* the fewest outstanding, but not behind an overdue answer
             * when another connection can take it */
            int suspect = pgc_suspect(c, now);
            if (best == NULL || suspect < best_suspect || (suspect == best_suspect && c->nsent < best->nsent)) {
                best = c;
                best_suspect = suspect;
            }
        }
        if (best != NULL) {
            TAILQ_REMOVE(&p->waiting, q, link);
            p->rr++;
            if (best->choice[q->policy] < 0) {
                /* left out on this schema: answered without a query */
                snprintf(q->err, sizeof(q->err), "left out (the database lacks %s)", best->missing[q->policy]);
                q->done(q, DBQ_SKIPPED, 0, q->err);
                continue;
            }
            if (pgc_send(best, q) != 0) {
                q->done(q, DBQ_ERROR, 0, "cannot send query");
                pgc_down(best, PQerrorMessage(best->pg), 1);
                return;
            }
            pgc_flush(best);
            continue;
        }
        if (!pool_can_take(p, q->gen)) {
            TAILQ_REMOVE(&p->waiting, q, link);
            q->done(q, DBQ_ERROR, 0, "database unavailable");
        }
    }
    if (p->hedge_starved)
        pool_hedge(p);
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

static int pg_pool_submit(struct db_pool *p, struct db_query *q)
{
    /* closing: a query that ends in pg_pool_free may start another at
     * once (a decision that ends starts its data-file-free twin); queued
     * here, its dispatch would run after the pool is freed */
    if (p->closing || !pool_can_take(p, q->gen))
        return -1;
    q->drv = NULL;
    TAILQ_INSERT_TAIL(&p->waiting, q, link);
    /* Sent on the next loop turn: callers never see a completion from
     * inside submit, and queries from one turn are flushed together. */
    pool_schedule(p);
    return 0;
}

static struct db_pool *pg_pool_new(struct event_base *base, int worker, int nconns, struct pol_gen *cfg, int listener,
                                   const struct db_events *ev)
{
    struct db_pool *p = pc_calloc(1, sizeof(*p));
    p->base = base;
    p->worker = worker;
    p->cfg = pol_gen_ref(cfg);
    p->n = nconns;
    p->listener = listener;
    p->ev = *ev;
    TAILQ_INIT(&p->waiting);
    event_assign(&p->dispatch_ev, base, -1, 0, pool_dispatch_cb, p);
    evtimer_assign(&p->hedge_ev, base, pool_hedge_cb, p);
    p->pollq.policy = -1;
    p->pollq.done = pg_poll_done;
    p->conns = pc_calloc((size_t)nconns, sizeof(*p->conns));
    for (int i = 0; i < nconns; i++) {
        struct pg_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        pc_fdwatch_init(&c->io);
        c->cfg = pol_gen_ref(cfg);
        c->ping.policy = -1;
        c->ping.done = pgc_ping_done;
        TAILQ_INIT(&c->sent);
        evtimer_assign(&c->timer, base, pgc_timer_cb, c);
        pgc_start(c);
    }
    pg_poll_arm(p);
    return p;
}

static void pg_pool_set_config(struct db_pool *p, struct pol_gen *cfg)
{
    pol_gen_unref(p->cfg);
    p->cfg = pol_gen_ref(cfg);
    for (int i = 0; i < p->n; i++) {
        struct pg_conn *c = &p->conns[i];
        if (c->state == PGC_DOWN) {
            evtimer_del(&c->timer);
            c->backoff_ms = 0;
            pgc_arm(c, 0);
        } else if (c->nsent == 0) {
            c->was_up = 0;
            pgc_down(c, "replaced by a new config generation", 0);
        } else {
            c->retire = 1;
        }
    }
    p->poll_due = 0;
    pg_poll_arm(p);
    pool_schedule(p);
}

static void pg_pool_free(struct db_pool *p)
{
    if (p == NULL)
        return;
    p->closing = 1; /* before any query ends: pg_pool_submit refuses from here */
    event_del(&p->dispatch_ev);
    evtimer_del(&p->hedge_ev);
    if (p->poll_on)
        event_del(&p->poll_ev);
    for (int i = 0; i < p->n; i++) {
        struct pg_conn *c = &p->conns[i];
        pc_fdwatch_off(&c->io); /* before libpq closes the socket */
        evtimer_del(&c->timer);
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        c->state = PGC_DOWN;
        pgc_fail_queries(c, "shutting down");
        pol_schema_free(c->schema);
        pc_buf_free(&c->version);
        free(c->choice);
        free(c->missing);
        pgc_rot_clear(c);
        pol_gen_unref(c->cfg);
    }
    struct db_query *q;
    while ((q = TAILQ_FIRST(&p->waiting)) != NULL) {
        TAILQ_REMOVE(&p->waiting, q, link);
        q->done(q, DBQ_ERROR, 0, "shutting down");
    }
    inv_poll_free(&p->poll);
    pc_buf_free(&p->pollval);
    pol_gen_unref(p->cfg);
    free(p->conns);
    free(p);
}

const struct db_driver db_driver_pg = {
    .name = "postgresql",
    .pool_new = pg_pool_new,
    .pool_free = pg_pool_free,
    .pool_set_gen = pg_pool_set_config,
    .submit = pg_pool_submit,
    .check = pg_check,
};
