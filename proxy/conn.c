/*
 * portcullis: client connections and the life of a request.
 *
 *   IDLE --bytes--> HEAD --head--> ACTIVE: canonical path, rule, identity,
 *   decision (async), then either a local reply or the upstream exchange
 *   (h1client.c) --response done--> FLUSH --written--> IDLE (keep-alive)
 *   or LINGER.
 *
 * One request at a time per connection; pipelined requests wait in the
 * input buffer, so responses go out in order. Every request is judged on
 * its own: nothing about identity is remembered per connection.
 */
#include "worker.h"
#include "reply.h"
#include "health.h"
#include "judge.h"
#include "accesslog.h"
#include "metrics.h"
#include "h1client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PC_LINGER_MS 5000
#define PC_REQ_FREE_MAX 64

const char *const pc_decision_names[PC_D__COUNT] = {
    "none", "allow", "deny", "unauthenticated", "error", "forward", "reject", "shadow_deny", "local",
};

static void conn_sock_cb(struct pc_sock *s, short what);
static void conn_try_head(struct pc_conn *c);
static int conn_flush(struct pc_conn *c);
static void conn_next(struct pc_conn *c);
static void req_route(struct pc_req *r);
static void req_response_done(struct pc_req *r);
static void req_reply_error(struct pc_req *r, int status, const char *code, const char *message);
static void conn_abort(struct pc_conn *c);
static void conn_reply_raw(struct pc_conn *c, int status, const char *why);

/* ---- state and timers ---- */

/* The deadline that applies in the connection's current state; 0: none. */
static int64_t conn_deadline(struct pc_conn *c)
{
    const struct pc_timeouts *t = &c->w->cfg->timeouts;
    struct pc_req *r = c->req;
    switch (c->state) {
    case PC_CS_IDLE:
        return c->sock.last_in + t->idle;
    case PC_CS_HEAD:
        return c->deadline_head;
    case PC_CS_ACTIVE: {
        int64_t d = 0;
        /* the client stopped sending its body */
        if (r != NULL && h1c_awaits_body(r) && c->sock.reading)
            d = c->sock.last_in + r->cfg->timeouts.body;
        /* the client stopped reading a response we are streaming */
        if (c->sock.writing && (d == 0 || c->sock.last_out + t->idle < d))
            d = c->sock.last_out + t->idle;
        return d;
    }
    case PC_CS_FLUSH:
        return c->sock.last_out + t->idle;
    case PC_CS_LINGER:
        return c->deadline_linger;
    }
    return 0;
}

static void conn_rearm(struct pc_conn *c)
{
    int64_t d = conn_deadline(c);
    if (d > 0)
        pc_sock_arm(&c->sock, d);
}

/* The one way the connection's state changes: its deadline follows. */
static void conn_set_state(struct pc_conn *c, enum pc_conn_state state)
{
    int64_t now = pc_now_ms();
    c->state = state;
    switch (state) {
    case PC_CS_IDLE:
        c->sock.last_in = now;
        break;
    case PC_CS_HEAD:
        /* slowloris: the whole head must arrive within timeouts.header */
        c->deadline_head = now + c->w->cfg->timeouts.header;
        break;
    case PC_CS_ACTIVE:
    case PC_CS_FLUSH:
        c->sock.last_out = now; /* the write-stall clock starts here */
        break;
    case PC_CS_LINGER:
        c->deadline_linger = now + PC_LINGER_MS;
        break;
    }
    conn_rearm(c);
}

static void conn_timeout(struct pc_conn *c)
{
    if (c->next_pending) {
        c->next_pending = 0;
        /* only a connection still waiting for its next request starts one:
         * a read event in the same loop turn may have started it already,
         * and a second start would run two requests at once on one
         * connection (the first orphaned, its response mixed in) */
        if (c->state == PC_CS_IDLE) {
            conn_rearm(c);
            conn_try_head(c);
            return;
        }
    }
    int64_t d = conn_deadline(c);
    if (d == 0)
        return;
    if (pc_now_ms() < d) {
        pc_sock_arm(&c->sock, d);
        return;
    }
    if (c->state == PC_CS_HEAD) {
        conn_reply_raw(c, 408, "request head not received in time");
        return;
    }
    /* keep-alive idle time over, a client that stopped sending its body or
     * reading the response, or lingering done: drop it */
    conn_abort(c);
}

/* ---- connection lifecycle ---- */

void pc_conn_accept(struct pc_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct pc_conn *c = pc_calloc(1, sizeof(*c));
    PC_UNUSED(salen);
    c->w = w;
    pc_sock_open(&c->sock, w->base, fd, conn_sock_cb, c);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "unix");
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    __atomic_add_fetch(&pc_active_connections, 1, __ATOMIC_RELAXED);
    pc_sock_read(&c->sock, 1);
    conn_set_state(c, PC_CS_IDLE);
}

static struct pc_req *req_alloc(struct pc_conn *c)
{
    struct pc_worker *w = c->w;
    struct pc_req *r = SLIST_FIRST(&w->req_free);
    if (r != NULL) {
        SLIST_REMOVE_HEAD(&w->req_free, free_link);
        w->req_free_n--;
    } else {
        r = pc_calloc(1, sizeof(*r));
    }
    memset(&r->h, 0, offsetof(struct h1_request, headers));
    r->h.nheaders = 0;
    r->h.host_index = -1;
    r->c = c;
    r->w = w;
    r->cfg = cfg_ref(w->cfg);
    r->t_start = pc_now_us();
    pc_ready_init(&r->ready);
    c->req = r;
    return r;
}

static void req_free(struct pc_req *r)
{
    struct pc_worker *w = r->w;
    pc_judge_cancel(r);
    h1c_release(r);
    pc_ready_cancel(&r->ready);
    cfg_unref(r->cfg);
    if (w->req_free_n >= PC_REQ_FREE_MAX) {
        pc_pool_free(&r->pool);
        free(r);
        return;
    }
    /* the object and its pool's first block serve the next request */
    struct pc_pool pool = r->pool;
    pc_pool_reset(&pool);
    memset(r, 0, offsetof(struct pc_req, h));
    memset(&r->canon, 0, sizeof(*r) - offsetof(struct pc_req, canon));
    r->pool = pool;
    SLIST_INSERT_HEAD(&w->req_free, r, free_link);
    w->req_free_n++;
}

static void conn_free(struct pc_conn *c)
{
    struct pc_worker *w = c->w;
    if (c->req != NULL) {
        struct pc_req *r = c->req;
        c->req = NULL;
        req_free(r);
    }
    pc_sock_close(&c->sock);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    __atomic_sub_fetch(&pc_active_connections, 1, __ATOMIC_RELAXED);
    free(c);
    pc_worker_conn_gone(w);
}

/* Drop everything now: the peer is gone or misbehaved. */
static void conn_abort(struct pc_conn *c)
{
    struct pc_req *r = c->req;
    if (r != NULL && r->status == 0 && r->decision != PC_D_NONE)
        r->status = 499; /* logged as "client went away" */
    if (r != NULL && !r->logged)
        pc_log_access(r);
    conn_free(c);
}

/* Shut down writing and discard input for a while, so that the client
 * reads our last response instead of a reset. */
static void conn_linger(struct pc_conn *c)
{
    shutdown(c->sock.fd, SHUT_WR);
    evbuffer_drain(c->sock.in, evbuffer_get_length(c->sock.in));
    pc_sock_write(&c->sock, 0);
    pc_sock_read(&c->sock, 1);
    conn_set_state(c, PC_CS_LINGER);
}

/* SIGTERM: idle connections close now; busy ones after their response. */
void pc_conn_drain(struct pc_conn *c)
{
    if (c->state == PC_CS_IDLE && evbuffer_get_length(c->sock.in) == 0)
        conn_free(c);
    else
        c->close_after = 1;
}

/* ---- output ---- */

/* Write the client's output. 0 while the connection goes on in its state;
 * -1 when it was closed or moved on (the caller must not assume either). */
static int conn_flush(struct pc_conn *c)
{
    struct pc_req *r = c->req;
    size_t before = evbuffer_get_length(c->sock.out);
    int rc = pc_sock_flush(&c->sock);
    if (r != NULL)
        r->bytes_out += before - evbuffer_get_length(c->sock.out);
    if (rc < 0) {
        conn_abort(c);
        return -1;
    }
    if (rc == 0) {
        conn_rearm(c); /* a client that stops reading is cut off */
        return 0;
    }
    if (c->state == PC_CS_FLUSH) {
        conn_next(c);
        return -1;
    }
    if (c->state == PC_CS_ACTIVE && r != NULL && r->x.started)
        return h1c_client_drained(r); /* backpressure released */
    return 0;
}

/* ---- input ---- */

static size_t conn_read_cap(struct pc_conn *c)
{
    return c->w->cfg->limits.header_bytes + PC_HIGH_WATER;
}

static void conn_linger_read(struct pc_conn *c)
{
    ssize_t n = pc_sock_fill(&c->sock, 16384);
    evbuffer_drain(c->sock.in, evbuffer_get_length(c->sock.in));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        conn_free(c);
}

static void conn_readable(struct pc_conn *c)
{
    if (c->state == PC_CS_LINGER) {
        conn_linger_read(c);
        return;
    }
    size_t have = evbuffer_get_length(c->sock.in);
    size_t cap = conn_read_cap(c);
    if (have >= cap) {
        pc_sock_read(&c->sock, 0);
        return;
    }
    ssize_t n = pc_sock_fill(&c->sock, PC_MIN(cap - have, (size_t)PC_READ_CHUNK));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_abort(c);
        return;
    }
    if (n == 0)
        pc_sock_read(&c->sock, 0);
    else if (c->req != NULL)
        c->req->bytes_in += (uint64_t)n;

    switch (c->state) {
    case PC_CS_IDLE:
    case PC_CS_HEAD:
        if (c->sock.eof && evbuffer_get_length(c->sock.in) == 0) {
            conn_free(c); /* clean close between requests */
            return;
        }
        conn_try_head(c);
        return;
    case PC_CS_ACTIVE:
        if (c->req->x.started) {
            if (h1c_client_input(c->req) != 0)
                return;
        } else if (c->sock.eof) {
            conn_abort(c); /* the client went away while its request was judged */
            return;
        }
        break;
    case PC_CS_FLUSH:
        if (c->sock.eof)
            c->close_after = 1;
        break;
    case PC_CS_LINGER:
        return;
    }
    if (evbuffer_get_length(c->sock.in) >= cap)
        pc_sock_read(&c->sock, 0);
}

static void conn_sock_cb(struct pc_sock *s, short what)
{
    struct pc_conn *c = s->owner;
    if (what & EV_TIMEOUT)
        conn_timeout(c);
    else if (what & EV_READ)
        conn_readable(c);
    else
        conn_flush(c);
}

static void conn_reply_raw(struct pc_conn *c, int status, const char *why)
{
    /* An error before any request object exists (malformed head). */
    struct pc_req *r = req_alloc(c);
    conn_set_state(c, PC_CS_ACTIVE);
    r->decision = PC_D_REJECT;
    r->reason = why;
    req_reply_error(r, status, pc_status_code_name(status), why);
}

static void conn_try_head(struct pc_conn *c)
{
    size_t len = evbuffer_get_length(c->sock.in);
    size_t limit = c->w->cfg->limits.header_bytes;
    if (len == 0) {
        if (c->state == PC_CS_HEAD)
            conn_set_state(c, PC_CS_IDLE);
        return;
    }
    size_t scan_len = PC_MIN(len, limit + 32);
    const char *buf = (const char *)evbuffer_pullup(c->sock.in, (ev_ssize_t)scan_len);
    size_t start, end;
    int rc = h1_scan_head(&c->scan, buf, scan_len, 1, &start, &end);
    if (rc == H1_SCAN_BARE_LF) {
        conn_reply_raw(c, 400, "bare LF or empty lines in request head");
        return;
    }
    if (rc == H1_SCAN_MORE) {
        if (len > limit)
            conn_reply_raw(c, 431, "request head larger than limits.header_bytes");
        else if (c->sock.eof)
            conn_abort(c); /* truncated head */
        else if (c->state == PC_CS_IDLE)
            conn_set_state(c, PC_CS_HEAD);
        return;
    }
    if (end - start > limit) {
        conn_reply_raw(c, 431, "request head larger than limits.header_bytes");
        return;
    }

    /* A whole head: this is a request. */
    c->next_pending = 0;
    struct pc_req *r = req_alloc(c);
    conn_set_state(c, PC_CS_ACTIVE);
    r->head = pc_pool_strndup(&r->pool, buf + start, end - start);
    r->head_len = end - start;
    evbuffer_drain(c->sock.in, end);
    memset(&c->scan, 0, sizeof(c->scan));
    r->bytes_in = end;
    req_route(r);
}

/* ---- replies ---- */

/* The one place keep-alive is decided: may the client connection carry
 * another request after r's response? */
static int conn_keepalive(const struct pc_req *r)
{
    const struct pc_conn *c = r->c;
    if (c->close_after || c->w->draining)
        return 0;
    /* refused before any rule applied (malformed in some way), or an
     * upstream that failed: do not trust the rest of the stream */
    if (r->decision == PC_D_REJECT || r->x.failed)
        return 0;
    return h1_keepalive(&r->h, &r->req, r->x.head_done ? &r->resp : NULL);
}

static void req_reply(struct pc_req *r, int status, const char *ctype, const char *body, size_t blen,
                      const char *extra)
{
    struct pc_conn *c = r->c;
    struct pc_buf *b = &c->w->scratch;
    r->keepalive = conn_keepalive(r);
    b->len = 0;
    pc_reply_build(b, status, ctype, body, blen, !r->keepalive, r->h.method_id == H1_M_HEAD,
                   r->request_id[0] ? r->request_id : NULL, extra);
    evbuffer_add(c->sock.out, b->p, b->len);
    r->status = status;
    r->resp.done = 1;
    req_response_done(r);
}

static void req_reply_error(struct pc_req *r, int status, const char *code, const char *message)
{
    struct pc_buf body = {0};
    pc_reply_error_body(&body, status, code, message);
    const char *extra = status == 401 ? "WWW-Authenticate: Bearer realm=\"api\"\r\n" : NULL;
    req_reply(r, status, "application/json", body.p, body.len, extra);
    pc_buf_free(&body);
}

void pc_conn_over_limit(struct pc_conn *c)
{
    conn_reply_raw(c, 503, "too many connections (limits.connections)");
}

void pc_req_local_reply(struct pc_req *r, int status, const char *body, size_t len, const char *extra)
{
    req_reply(r, status, "application/json", body, len, extra);
}

/* ---- routing and decisions ---- */

static void req_set_request_id(struct pc_req *r)
{
    int idx = h1_find_header(r->h.headers, r->h.nheaders, "x-request-id", 0);
    if (idx >= 0) {
        const struct h1_header *x = &r->h.headers[idx];
        int ok = x->value_len >= 1 && x->value_len < sizeof(r->request_id) &&
                 h1_find_header(r->h.headers, r->h.nheaders, "x-request-id", (size_t)idx + 1) < 0;
        for (size_t i = 0; ok && i < x->value_len; i++) {
            char ch = x->value[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.' || ch == ':';
        }
        if (ok) {
            memcpy(r->request_id, x->value, x->value_len);
            r->request_id[x->value_len] = '\0';
            return;
        }
    }
    struct pc_worker *w = r->w;
    /* <process prefix>-<worker>-<sequence>, without printf */
    size_t n = strlen(w->id_prefix);
    memcpy(r->request_id, w->id_prefix, n);
    r->request_id[n++] = '-';
    n += pc_fmt_u64(r->request_id + n, (uint64_t)w->id);
    r->request_id[n++] = '-';
    n += pc_fmt_u64(r->request_id + n, ++w->request_seq);
    r->request_id[n] = '\0';
}

/* ---- the upstream exchange (h1client.c) ---- */

static void conn_x_fail(struct pc_req *r, int status, const char *code, const char *message)
{
    req_reply_error(r, status, code, message);
}

static void conn_x_abort(struct pc_req *r)
{
    conn_abort(r->c);
}

static int conn_x_flush(struct pc_req *r)
{
    return conn_flush(r->c);
}

static int conn_x_keepalive(struct pc_req *r)
{
    return conn_keepalive(r);
}

static void conn_x_rearm(struct pc_req *r)
{
    conn_rearm(r->c);
}

static const struct h1c_ops conn_x_ops = {
    .fail = conn_x_fail,
    .abort = conn_x_abort,
    .done = req_response_done,
    .flush = conn_x_flush,
    .keepalive = conn_x_keepalive,
    .rearm = conn_x_rearm,
};

static void req_judged(struct pc_req *r, int status, const char *code, const char *message)
{
    struct pc_conn *c = r->c;
    if (status == PC_JUDGE_FORWARD)
        h1c_forward(r, c->w, &c->sock, c->peer, &conn_x_ops);
    else if (status == PC_JUDGE_LOCAL)
        pc_health_handle(r);
    else
        req_reply_error(r, status, code, message);
}

static void req_route(struct pc_req *r)
{
    const char *why = NULL;
    int rc = h1_parse_request(r->head, r->head_len, &r->h, &why);
    if (rc != 0) {
        r->decision = PC_D_REJECT;
        r->reason = why;
        req_reply_error(r, rc, pc_status_code_name(rc), why);
        return;
    }
    req_set_request_id(r);
    /* request body framing: re-chunked for the upstream, the body limit
     * is enforced by the relay (a declared length over it: 413 by judge) */
    h1_msg_start(&r->req, r->h.chunked ? H1_BODY_CHUNKED : r->h.content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE,
                 r->h.content_length > 0 ? (uint64_t)r->h.content_length : 0, 1, r->cfg->limits.body_bytes);
    pc_judge(r, r->w->dec, r->w->tokens, req_judged);
}

/* ---- end of a request ---- */

static void req_response_done(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    h1c_release(r);
    pc_judge_cancel(r);
    if (!r->keepalive)
        c->close_after = 1;
    conn_set_state(c, PC_CS_FLUSH);
    conn_flush(c);
}

/* The response is written: next request, or close. */
static void conn_next(struct pc_conn *c)
{
    struct pc_req *r = c->req;
    c->req = NULL;
    if (r != NULL) {
        pc_log_access(r); /* written out: bytes_out and duration are final */
        req_free(r);
    }
    if (c->close_after || c->w->draining) {
        if (c->sock.eof)
            conn_free(c);
        else
            conn_linger(c);
        return;
    }
    if (!c->sock.eof)
        pc_sock_read(&c->sock, 1);
    conn_set_state(c, PC_CS_IDLE);
    if (evbuffer_get_length(c->sock.in) > 0 || c->sock.eof) {
        /* The next pipelined request starts from the event loop, not from
         * here: a run of requests the proxy answers itself would otherwise
         * nest one call chain per request and exhaust the stack. */
        c->next_pending = 1;
        pc_sock_arm(&c->sock, pc_now_ms());
    }
}
