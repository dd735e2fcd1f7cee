/*
 * portcullis: client connections and the life of a request.
 *
 *   IDLE --bytes--> HEAD --head--> ACTIVE: canonical path, rule, identity,
 *   decision (async), then either a local reply or the upstream exchange
 *   --response done--> FLUSH --written--> IDLE (keep-alive) or LINGER.
 *
 * One request at a time per connection; pipelined requests wait in the
 * input buffer, so responses go out in order. Every request is judged on
 * its own: nothing about identity is remembered per connection.
 */
#include "worker.h"
#include "upstream.h"
#include "reply.h"
#include "health.h"
#include "judge.h"
#include "accesslog.h"
#include "metrics.h"
#include "../policies/identity.h"
#include "../policies/tokcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define PC_LINGER_MS 5000
#define PC_REQ_FREE_MAX 64

const char *const pc_decision_names[PC_D__COUNT] = {
    "none", "allow", "deny", "unauthenticated", "error", "forward", "reject", "shadow_deny", "local",
};

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_try_head(struct pc_conn *c);
static int conn_flush(struct pc_conn *c);
static void conn_next(struct pc_conn *c);
static void req_route(struct pc_req *r);
static void req_forward(struct pc_req *r);
static void req_response_done(struct pc_req *r);
static int req_pump_body(struct pc_req *r);
static void req_reply_error(struct pc_req *r, int status, const char *code, const char *message);
static void conn_abort(struct pc_conn *c);
static void conn_reply_raw(struct pc_conn *c, int status, const char *why);

/* ---- events and timers ---- */

/* The deadline that applies in the connection's current state; 0: none. */
static int64_t conn_deadline(struct pc_conn *c)
{
    const struct pc_timeouts *t = &c->w->cfg->timeouts;
    struct pc_req *r = c->req;
    switch (c->state) {
    case PC_CS_IDLE:
        return c->last_in + t->idle;
    case PC_CS_HEAD:
        return c->deadline_head;
    case PC_CS_ACTIVE: {
        int64_t d = 0;
        /* the client stopped sending its body */
        if (r != NULL && !r->req.done && r->up != NULL && r->up_head_sent && c->ev.reading)
            d = c->last_in + r->cfg->timeouts.body;
        /* the client stopped reading a response we are streaming */
        if (c->ev.writing && (d == 0 || c->last_out + t->idle < d))
            d = c->last_out + t->idle;
        return d;
    }
    case PC_CS_FLUSH:
        return c->last_out + t->idle;
    case PC_CS_LINGER:
        return c->deadline_linger;
    }
    return 0;
}

static void conn_rearm(struct pc_conn *c)
{
    int64_t d = conn_deadline(c);
    if (d > 0)
        pc_sock_arm(&c->ev, d);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_conn *c = arg;
    int64_t now = pc_now_ms();
    PC_UNUSED(fd);
    PC_UNUSED(what);
    c->ev.timer_on = 0;
    if (c->next_pending) {
        c->next_pending = 0;
        conn_rearm(c);
        conn_try_head(c);
        return;
    }
    int64_t d = conn_deadline(c);
    if (d == 0)
        return;
    if (now < d) {
        pc_sock_arm(&c->ev, d);
        return;
    }
    switch (c->state) {
    case PC_CS_HEAD:
        /* slowloris: the whole head must arrive within timeouts.header */
        conn_reply_raw(c, 408, "request head not received in time");
        return;
    default:
        /* keep-alive idle time over, a client that stopped sending its
         * body or reading the response, or lingering done: drop it */
        conn_abort(c);
        return;
    }
}

/* ---- connection lifecycle ---- */

void pc_conn_accept(struct pc_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct pc_conn *c = pc_calloc(1, sizeof(*c));
    int one = 1;
    PC_UNUSED(salen);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->w = w;
    c->fd = fd;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL)
        abort();
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "unix");
    event_assign(&c->ev.rev, w->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    event_assign(&c->ev.wev, w->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    evtimer_assign(&c->ev.tev, w->base, conn_timer_cb, c);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    __atomic_add_fetch(&pc_active_connections, 1, __ATOMIC_RELAXED);
    c->state = PC_CS_IDLE;
    c->last_in = pc_now_ms();
    c->last_out = c->last_in;
    pc_sock_read(&c->ev, 1);
    conn_rearm(c);
}

static struct pc_req *req_alloc(struct pc_worker *w)
{
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
    return r;
}

static void req_free(struct pc_req *r)
{
    struct pc_worker *w = r->c->w;
    if (r->deciding) {
        dec_cancel(&r->dec);
        r->deciding = 0;
    }
    if (r->up != NULL)
        up_release(r->up, 0);
    cfg_unref(r->cfg);
    if (r->subject != r->subject_buf)
        free(r->subject);
    free(r->payload);
    /* keep the buffers for the next request */
    char *head = r->head, *pathbuf = r->pathbuf, *matchbuf = r->matchbuf;
    size_t head_cap = r->head_cap, path_cap = r->pathbuf_cap;
    if (w->req_free_n < PC_REQ_FREE_MAX && head_cap <= 16384) {
        memset(r, 0, offsetof(struct pc_req, h));
        memset(&r->canon, 0, sizeof(*r) - offsetof(struct pc_req, canon));
        r->head = head;
        r->head_cap = head_cap;
        r->pathbuf = pathbuf;
        r->pathbuf_cap = path_cap;
        r->matchbuf = matchbuf;
        SLIST_INSERT_HEAD(&w->req_free, r, free_link);
        w->req_free_n++;
    } else {
        free(head);
        free(pathbuf);
        free(matchbuf);
        free(r);
    }
}

static void conn_free(struct pc_conn *c)
{
    struct pc_worker *w = c->w;
    if (c->req != NULL) {
        struct pc_req *r = c->req;
        c->req = NULL;
        req_free(r);
    }
    event_del(&c->ev.rev);
    event_del(&c->ev.wev);
    event_del(&c->ev.tev);
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
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
    if (r != NULL && r->status == 0 && r->decision != PC_D_NONE) {
        r->status = 499; /* logged as "client went away" */
    }
    if (r != NULL && !r->logged)
        pc_log_access(r);
    conn_free(c);
}

/* Shut down writing and discard input for a while, so that the client
 * reads our last response instead of a reset. */
static void conn_linger(struct pc_conn *c)
{
    c->state = PC_CS_LINGER;
    shutdown(c->fd, SHUT_WR);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    c->deadline_linger = pc_now_ms() + PC_LINGER_MS;
    pc_sock_write(&c->ev, 0);
    pc_sock_read(&c->ev, 1);
    conn_rearm(c);
}

/* SIGTERM: idle connections close now; busy ones after their response. */
void pc_conn_drain(struct pc_conn *c)
{
    if (c->state == PC_CS_IDLE && evbuffer_get_length(c->in) == 0)
        conn_free(c);
    else
        c->close_after = 1;
}

/* ---- output ---- */

static int conn_flush(struct pc_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->ev.writing) {
                    pc_sock_write(&c->ev, 1);
                    conn_rearm(c); /* a client that stops reading is cut off */
                }
                return 0;
            }
            if (errno == EINTR)
                continue;
            conn_abort(c);
            return -1;
        }
        if (n == 0)
            break;
        c->last_out = pc_now_ms();
        if (c->req != NULL)
            c->req->bytes_out += (uint64_t)n;
    }
    pc_sock_write(&c->ev, 0);
    /* everything written */
    if (c->state == PC_CS_FLUSH) {
        conn_next(c);
        return -1; /* the caller must not assume c is still in the same state */
    }
    if (c->state == PC_CS_ACTIVE && c->req != NULL && c->req->up != NULL && !c->req->up->ev.reading &&
        c->req->resp_head_done && !c->req->resp.done) {
        /* backpressure released: what waits in the upstream's buffer
         * first, then more from the upstream */
        pc_req_upstream_readable(c->req);
        return c->state == PC_CS_ACTIVE ? 0 : -1;
    }
    return 0;
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_conn *c = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    conn_flush(c);
}

/* ---- input ---- */

static size_t conn_read_cap(struct pc_conn *c)
{
    return c->w->cfg->limits.header_bytes + PC_HIGH_WATER;
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_conn *c = arg;
    PC_UNUSED(what);

    if (c->state == PC_CS_LINGER) {
        char junk[16384];
        ssize_t n = read(fd, junk, sizeof(junk));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_free(c);
        return;
    }
    size_t have = evbuffer_get_length(c->in);
    size_t cap = conn_read_cap(c);
    if (have >= cap) {
        pc_sock_read(&c->ev, 0);
        return;
    }
    ssize_t n = pc_read_into(c->fd, c->in, PC_MIN(cap - have, (size_t)PC_READ_CHUNK));
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_abort(c);
        return;
    }
    if (n == 0) {
        c->eof = 1;
        pc_sock_read(&c->ev, 0);
    } else {
        c->last_in = pc_now_ms();
        if (c->req != NULL)
            c->req->bytes_in += (uint64_t)n;
    }

    switch (c->state) {
    case PC_CS_IDLE:
    case PC_CS_HEAD:
        if (c->eof && evbuffer_get_length(c->in) == 0) {
            conn_free(c); /* clean close between requests */
            return;
        }
        conn_try_head(c);
        return;
    case PC_CS_ACTIVE: {
        struct pc_req *r = c->req;
        if (r->tunnel) {
            if (c->eof) {
                conn_abort(c);
                return;
            }
            evbuffer_add_buffer(r->up->out, c->in);
            up_touch(r->up);
            if (up_flush(r->up) != 0) {
                conn_abort(c);
                return;
            }
            if (evbuffer_get_length(r->up->out) >= PC_HIGH_WATER)
                pc_sock_read(&c->ev, 0);
            return;
        }
        if (!r->req.done && r->up != NULL && r->up_head_sent) {
            if (req_pump_body(r) != 0)
                return;
        }
        if (c->eof) {
            /* The client went away: close the upstream too. */
            conn_abort(c);
            return;
        }
        if (evbuffer_get_length(c->in) >= cap)
            pc_sock_read(&c->ev, 0);
        return;
    }
    case PC_CS_FLUSH:
        if (c->eof)
            c->close_after = 1;
        if (evbuffer_get_length(c->in) >= cap)
            pc_sock_read(&c->ev, 0);
        return;
    default:
        return;
    }
}

static void conn_reply_raw(struct pc_conn *c, int status, const char *why)
{
    /* An error before any request object exists (malformed head). */
    struct pc_req *r = req_alloc(c->w);
    r->c = c;
    r->cfg = cfg_ref(c->w->cfg);
    r->t_start = pc_now_us();
    c->req = r;
    c->state = PC_CS_ACTIVE;
    r->decision = PC_D_REJECT;
    r->reason = why;
    r->keepalive = 0;
    req_reply_error(r, status, pc_status_code_name(status), why);
}

static void conn_try_head(struct pc_conn *c)
{
    size_t len = evbuffer_get_length(c->in);
    size_t limit = c->w->cfg->limits.header_bytes;
    if (len == 0) {
        if (c->state == PC_CS_HEAD)
            c->state = PC_CS_IDLE;
        return;
    }
    size_t scan_len = PC_MIN(len, limit + 32);
    const char *buf = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)scan_len);
    size_t start, end;
    int rc = h1_scan_head(&c->scan, buf, scan_len, 1, &start, &end);
    if (rc == H1_SCAN_BARE_LF) {
        conn_reply_raw(c, 400, "bare LF or empty lines in request head");
        return;
    }
    if (rc == H1_SCAN_MORE) {
        if (len > limit) {
            conn_reply_raw(c, 431, "request head larger than limits.header_bytes");
            return;
        }
        if (c->eof) {
            conn_abort(c); /* truncated head */
            return;
        }
        if (c->state == PC_CS_IDLE) {
            c->state = PC_CS_HEAD;
            c->deadline_head = pc_now_ms() + c->w->cfg->timeouts.header;
            conn_rearm(c);
        }
        return;
    }
    if (end - start > limit) {
        conn_reply_raw(c, 431, "request head larger than limits.header_bytes");
        return;
    }

    /* A whole head: this is a request. */
    struct pc_worker *w = c->w;
    struct pc_req *r = req_alloc(w);
    r->c = c;
    r->cfg = cfg_ref(w->cfg);
    r->t_start = pc_now_us();
    c->req = r;
    c->state = PC_CS_ACTIVE;
    c->last_out = pc_now_ms(); /* the write-stall clock starts with the request */
    size_t hl = end - start;
    if (r->head_cap < hl + 1) {
        free(r->head);
        r->head_cap = hl + 1 < 2048 ? 2048 : hl + 1;
        r->head = pc_malloc(r->head_cap);
    }
    memcpy(r->head, buf + start, hl);
    r->head[hl] = '\0';
    r->head_len = hl;
    evbuffer_drain(c->in, end);
    memset(&c->scan, 0, sizeof(c->scan));
    r->bytes_in = end;
    req_route(r);
}

/* ---- replies ---- */

static void req_reply(struct pc_req *r, int status, const char *ctype, const char *body, size_t blen,
                      const char *extra)
{
    struct pc_conn *c = r->c;
    struct pc_buf *b = &c->w->scratch;
    /* The body, if any, was not read: the connection cannot be reused. */
    if (!r->req.done)
        r->keepalive = 0;
    if (c->w->draining || c->close_after)
        r->keepalive = 0;
    /* A request refused before any rule applied was malformed in some way:
     * do not trust the rest of the stream. */
    if (r->decision == PC_D_REJECT)
        r->keepalive = 0;
    b->len = 0;
    pc_reply_build(b, status, ctype, body, blen, !r->keepalive, r->h.method_id == H1_M_HEAD,
                   r->request_id[0] ? r->request_id : NULL, extra);
    evbuffer_add(c->out, b->p, b->len);
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
    struct pc_worker *w = r->c->w;
    /* <process prefix>-<worker>-<sequence>, without printf */
    size_t n = strlen(w->id_prefix);
    memcpy(r->request_id, w->id_prefix, n);
    r->request_id[n++] = '-';
    n += pc_fmt_u64(r->request_id + n, (uint64_t)w->id);
    r->request_id[n++] = '-';
    n += pc_fmt_u64(r->request_id + n, ++w->request_seq);
    r->request_id[n] = '\0';
}

static void req_judged(struct pc_req *r, int status, const char *code, const char *message)
{
    if (status == PC_JUDGE_FORWARD) {
        req_forward(r);
        return;
    }
    if (status == PC_JUDGE_LOCAL) {
        pc_health_handle(r);
        return;
    }
    req_reply_error(r, status, code, message);
}

static void req_route(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    const char *why = NULL;
    int rc = h1_parse_request(r->head, r->head_len, &r->h, &why);
    r->keepalive = 0;
    if (rc != 0) {
        r->decision = PC_D_REJECT;
        r->reason = why;
        req_reply_error(r, rc, pc_status_code_name(rc), why);
        return;
    }
    r->keepalive = !r->h.conn_close && (r->h.minor == 1 || r->h.conn_keepalive) && !c->close_after &&
                   !c->w->draining;
    req_set_request_id(r);

    /* request body framing: re-chunked for the upstream, the body limit
     * is enforced by the relay (a declared length over it: 413 by judge) */
    h1_msg_start(&r->req, r->h.chunked ? H1_BODY_CHUNKED : r->h.content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE,
                 r->h.content_length > 0 ? (uint64_t)r->h.content_length : 0, 1, r->cfg->limits.body_bytes);
    pc_judge(r, c->w->dec, c->w->tokens, req_judged);
}

/* ---- the upstream exchange ---- */

/* Headers the proxy sets or refuses to pass on. */
static int req_skip_header(const struct h1_request *h, const struct h1_header *x, int conn_first)
{
    const char *n = x->name;
    size_t l = x->name_len;
    if (memchr(n, '_', l) != NULL)
        return 1; /* gunicorn maps SCRIPT_NAME & co. from such names */
    if (h1_is_hop_by_hop(n, l))
        return 1;
    if (pc_caseeq_lit(n, l, "content-length") || pc_caseeq_lit(n, l, "expect") ||
        pc_caseeq_lit(n, l, "x-forwarded-for") || pc_caseeq_lit(n, l, "x-request-id") ||
        pc_caseeq_lit(n, l, "cookie"))
        return 1;
    return h1_connection_lists(h->headers, h->nheaders, conn_first, n, l);
}

static void req_build_upstream_head(struct pc_req *r, struct pc_buf *b)
{
    const struct h1_request *h = &r->h;
    b->len = 0;
    pc_buf_add(b, h->method, h->method_len);
    pc_buf_addc(b, ' ');
    if (r->canon.asterisk) {
        pc_buf_addc(b, '*');
    } else {
        pc_buf_reserve(b, r->canon.path_len * 3 + 1);
        b->len += canon_encode(r->canon.path, r->canon.path_len, b->p + b->len);
    }
    if (r->canon.has_query) {
        pc_buf_addc(b, '?');
        pc_buf_add(b, r->canon.query, r->canon.query_len);
    }
    pc_buf_add(b, " HTTP/1.1\r\n", 11);

    int conn_first = h1_find_header(h->headers, h->nheaders, "connection", 0);
    int xff = 0, upgrade_idx = -1;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (r->upgrade && pc_caseeq_lit(x->name, x->name_len, "upgrade"))
            upgrade_idx = (int)i;
        if (req_skip_header(h, x, conn_first))
            continue;
        if (r->canon.authority != NULL && pc_caseeq_lit(x->name, x->name_len, "host"))
            continue; /* replaced by the target's authority below */
        pc_buf_add(b, x->name, x->name_len);
        pc_buf_add(b, ": ", 2);
        pc_buf_add(b, x->value, x->value_len);
        pc_buf_add(b, "\r\n", 2);
    }
    if (r->canon.authority != NULL) {
        /* a proxy replaces Host with the absolute-form's authority */
        pc_buf_add(b, "Host: ", 6);
        pc_buf_add(b, r->canon.authority, r->canon.authority_len);
        pc_buf_add(b, "\r\n", 2);
    } else if (h->host_index < 0) {
        pc_buf_addf(b, "Host: %s\r\n", r->cfg->upstream.text);
    }
    /* Cookie headers become one, joined with "; " (RFC 9113 8.2.3): the
     * very value the proxy parsed its credentials from (id_joined_cookies),
     * so the backend splits the cookies exactly where the proxy did. */
    char *joined = NULL;
    size_t cookie_len;
    const char *cookie = id_joined_cookies(h->headers, h->nheaders, &cookie_len, &joined);
    if (cookie != NULL) {
        pc_buf_add(b, "Cookie: ", 8);
        pc_buf_add(b, cookie, cookie_len);
        pc_buf_add(b, "\r\n", 2);
        free(joined);
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *x = &h->headers[i];
        if (!pc_caseeq_lit(x->name, x->name_len, "x-forwarded-for"))
            continue;
        if (xff++ == 0)
            pc_buf_add(b, "X-Forwarded-For: ", 17);
        else
            pc_buf_add(b, ", ", 2);
        pc_buf_add(b, x->value, x->value_len);
    }
    pc_buf_add(b, xff ? ", " : "X-Forwarded-For: ", xff ? 2 : 17);
    pc_buf_adds(b, r->c->peer);
    pc_buf_add(b, "\r\n", 2);
    pc_buf_add(b, "X-Request-Id: ", 14);
    pc_buf_adds(b, r->request_id);
    pc_buf_add(b, "\r\n", 2);
    if (r->req.body == H1_BODY_LENGTH) {
        char num[24];
        pc_buf_add(b, "Content-Length: ", 16);
        pc_buf_add(b, num, pc_fmt_u64(num, (uint64_t)h->content_length));
        pc_buf_add(b, "\r\n", 2);
    }
    else if (r->req.body == H1_BODY_CHUNKED)
        pc_buf_add(b, "Transfer-Encoding: chunked\r\n", 28);
    else if (h->content_length == 0)
        pc_buf_add(b, "Content-Length: 0\r\n", 19);
    if (r->upgrade && upgrade_idx >= 0) {
        pc_buf_add(b, "Connection: upgrade\r\nUpgrade: ", 30);
        pc_buf_add(b, h->headers[upgrade_idx].value, h->headers[upgrade_idx].value_len);
        pc_buf_add(b, "\r\n", 2);
    }
    pc_buf_add(b, "\r\n", 2);
}

/* A request body turned out bad halfway: answer when nothing has been sent
 * to the client yet (and close), else cut the connection. */
static void req_body_refused(struct pc_req *r, int status, const char *code, const char *message)
{
    if (r->resp_head_done) {
        conn_abort(r->c);
        return;
    }
    if (r->up != NULL)
        up_release(r->up, 0);
    r->keepalive = 0;
    r->c->close_after = 1;
    req_reply_error(r, status, code, message);
}

/* Move request body bytes from the client to the upstream (h1msg.h: the
 * one relay, which re-frames chunked bodies and enforces the body limit).
 * Returns -1 if the connection was closed. */
static int req_pump_body(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    struct up_conn *u = r->up;
    struct evbuffer *dst = u->out;

    int rc = h1_msg_relay(&r->req, c->in, dst, PC_HIGH_WATER);
    if (rc == H1_RELAY_BAD) {
        r->reason = "malformed chunked request body";
        req_body_refused(r, 400, "bad_request", "malformed chunked body");
        return -1;
    }
    if (rc == H1_RELAY_TOO_LARGE) {
        r->decision = r->decision ? r->decision : PC_D_REJECT;
        r->reason = "chunked body larger than limits.body_bytes";
        req_body_refused(r, 413, "request_entity_too_large", "request body larger than the limit");
        return -1;
    }
    if (up_flush(u) != 0) {
        conn_abort(c);
        return -1;
    }
    if (!r->req.done && c->eof) {
        conn_abort(c); /* body truncated */
        return -1;
    }
    /* backpressure: stop reading the client while the upstream is slow */
    if (evbuffer_get_length(dst) >= PC_HIGH_WATER)
        pc_sock_read(&c->ev, 0);
    else if (!c->eof)
        pc_sock_read(&c->ev, 1);
    conn_rearm(c);
    return 0;
}

static void req_send_upstream(struct pc_req *r)
{
    struct pc_buf *b = &r->c->w->scratch;
    req_build_upstream_head(r, b);
    evbuffer_add(r->up->out, b->p, b->len);
    r->up_head_sent = 1;
    r->t_up = pc_now_us();
    if (!r->req.done) {
        if (req_pump_body(r) != 0)
            return;
    } else if (up_flush(r->up) != 0) {
        conn_abort(r->c);
        return;
    }
    up_want_read(r->up, 1);
}

static void req_forward(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    int status = 0;
    const char *why = NULL;

    r->upgrade = r->h.conn_upgrade && r->h.has_upgrade;
    /* 100 Continue only now, after the decision (RFC 9110 10.1.1) */
    if (r->h.expect_continue && !r->req.done && evbuffer_get_length(c->in) == 0) {
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (conn_flush(c) != 0)
            return;
    }
    int rc = up_acquire(c->w, r, &status, &why);
    if (rc == UP_FAIL) {
        pc_req_upstream_failed(r, status, why);
        return;
    }
    if (rc == UP_READY)
        req_send_upstream(r);
    /* UP_PENDING: pc_req_upstream_connected() follows */
}

void pc_req_upstream_connected(struct pc_req *r)
{
    if (r->ready_probe) {
        pc_health_probe_done(r, 1, NULL);
        return;
    }
    req_send_upstream(r);
}

void pc_req_upstream_failed(struct pc_req *r, int status, const char *why)
{
    if (r->ready_probe) {
        pc_health_probe_done(r, 0, why);
        return;
    }
    pc_metric_add(&r->c->w->metrics->upstream_errors[status == 504 ? PC_UPERR_TIMEOUT : PC_UPERR_REFUSED], 1);
    r->reason = why;
    req_reply_error(r, status, pc_status_code_name(status), why);
}

/* Upstream error (-1) or idle timeout (0) during an exchange. */
void pc_req_upstream_event(struct pc_req *r, int what)
{
    struct pc_conn *c = r->c;
    if (r->up != NULL)
        up_release(r->up, 0);
    if (!r->resp_head_done) {
        int status = what == 0 ? 504 : 502;
        pc_metric_add(&c->w->metrics->upstream_errors[what == 0 ? PC_UPERR_TIMEOUT : PC_UPERR_RESET], 1);
        r->reason = what == 0 ? "upstream timeout" : "upstream connection failed";
        r->keepalive = 0;
        req_reply_error(r, status, pc_status_code_name(status), r->reason);
        return;
    }
    /* mid-response: nothing sensible can be sent; the client sees the cut */
    r->reason = what == 0 ? "upstream timeout mid-response" : "upstream failed mid-response";
    conn_abort(c);
}

void pc_req_upstream_drained(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    if (r->tunnel) {
        if (!c->eof)
            pc_sock_read(&c->ev, 1);
        return;
    }
    if (!r->req.done && evbuffer_get_length(c->in) > 0) {
        req_pump_body(r);
        return;
    }
    if (!r->req.done && !c->eof)
        pc_sock_read(&c->ev, 1);
}

/* Build the client's response head from the upstream's. */
static void req_build_client_head(struct pc_req *r, const struct h1_response *resp, struct pc_buf *b)
{
    int conn_first = h1_find_header(resp->headers, resp->nheaders, "connection", 0);
    b->len = 0;
    char st[4] = {(char)('0' + resp->status / 100), (char)('0' + resp->status / 10 % 10),
                  (char)('0' + resp->status % 10), ' '};
    pc_buf_add(b, "HTTP/1.1 ", 9);
    pc_buf_add(b, st, 4);
    pc_buf_add(b, resp->reason, resp->reason_len);
    pc_buf_add(b, "\r\n", 2);
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct h1_header *x = &resp->headers[i];
        if (h1_is_hop_by_hop(x->name, x->name_len)) {
            if (!(r->tunnel && pc_caseeq_lit(x->name, x->name_len, "upgrade")))
                continue;
        }
        if (!r->resp.rechunk && r->resp.body == H1_BODY_CHUNKED &&
            pc_caseeq_lit(x->name, x->name_len, "content-length"))
            continue;
        if (h1_connection_lists(resp->headers, resp->nheaders, conn_first, x->name, x->name_len) &&
            !pc_caseeq_lit(x->name, x->name_len, "upgrade"))
            continue;
        pc_buf_add(b, x->name, x->name_len);
        pc_buf_add(b, ": ", 2);
        pc_buf_add(b, x->value, x->value_len);
        pc_buf_add(b, "\r\n", 2);
    }
    if (r->tunnel)
        pc_buf_adds(b, "Connection: upgrade\r\n");
    else if (r->resp.rechunk)
        pc_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    if (!r->tunnel) {
        if (!r->keepalive)
            pc_buf_adds(b, "Connection: close\r\n");
        else if (r->h.minor == 0)
            pc_buf_adds(b, "Connection: keep-alive\r\n");
    }
    pc_buf_add(b, "\r\n", 2);
}

static int req_read_response_head(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    struct up_conn *u = r->up;
    for (;;) {
        size_t len = evbuffer_get_length(u->in);
        if (len == 0)
            return 0;
        size_t limit = 64 * 1024;
        size_t scan_len = PC_MIN(len, limit);
        const char *buf = (const char *)evbuffer_pullup(u->in, (ev_ssize_t)scan_len);
        size_t start, end;
        int rc = h1_scan_head(&r->rscan, buf, scan_len, 0, &start, &end);
        if (rc == H1_SCAN_MORE) {
            if (len >= limit)
                goto bad;
            return 0;
        }
        if (rc != H1_SCAN_DONE)
            goto bad;
        struct h1_response *resp = &c->w->resp_scratch;
        const char *why;
        if (h1_parse_response(buf + start, end - start, resp, &why) != 0)
            goto bad;
        if (resp->status == 101) {
            /* a switch only when asked for, and answered as one */
            if (!r->upgrade || !resp->conn_upgrade || h1_find_header(resp->headers, resp->nheaders, "upgrade", 0) < 0)
                goto bad;
            r->tunnel = 1;
            r->status = 101;
            r->resp_head_done = 1;
            req_build_client_head(r, resp, &c->w->scratch);
            evbuffer_add(c->out, c->w->scratch.p, c->w->scratch.len);
            evbuffer_drain(u->in, end);
            memset(&r->rscan, 0, sizeof(r->rscan));
            return 1;
        }
        if (resp->status < 200) {
            /* interim responses: Expect was handled here; drop them */
            evbuffer_drain(u->in, end);
            memset(&r->rscan, 0, sizeof(r->rscan));
            continue;
        }
        r->status = resp->status;
        r->resp_head_done = 1;
        enum h1_body body = !h1_response_has_body(resp, r->h.method_id) ? H1_BODY_NONE
                            : resp->chunked ? H1_BODY_CHUNKED
                            : resp->content_length >= 0 ? H1_BODY_LENGTH : H1_BODY_CLOSE;
        /* chunked responses are re-chunked for HTTP/1.1 clients and
         * de-chunked (and closed) for HTTP/1.0 ones */
        h1_msg_start(&r->resp, body, resp->content_length > 0 ? (uint64_t)resp->content_length : 0, r->h.minor == 1,
                     0);
        if (r->resp.body == H1_BODY_CLOSE)
            r->keepalive = 0;
        if (r->resp.body == H1_BODY_CHUNKED && r->h.minor != 1)
            r->keepalive = 0; /* HTTP/1.0: de-chunk and close */
        if (!r->req.done)
            r->keepalive = 0;
        if (c->w->draining || c->close_after)
            r->keepalive = 0;
        /* an Upgrade request answered without 101: the upstream may read
         * the rest of the stream as another protocol; never reuse it */
        r->up_keepalive = !resp->conn_close && (resp->minor == 1 || resp->conn_keepalive) &&
                          r->resp.body != H1_BODY_CLOSE && !r->upgrade;
        /* Responses that carry no body by definition (to HEAD, 204, 304)
         * are where a faulty upstream sends one anyway; bytes that arrive
         * after we consider the response complete would become the next
         * client's response. Such connections are not reused. */
        if (r->h.method_id == H1_M_HEAD || resp->status == 204 || resp->status == 304)
            r->up_keepalive = 0;
        req_build_client_head(r, resp, &c->w->scratch);
        evbuffer_add(c->out, c->w->scratch.p, c->w->scratch.len);
        evbuffer_drain(u->in, end);
        r->t_up_end = pc_now_us();
        return 1;
    }
bad:
    pc_metric_add(&c->w->metrics->upstream_errors[PC_UPERR_PROTOCOL], 1);
    up_release(u, 0);
    r->reason = "malformed upstream response";
    r->keepalive = 0;
    req_reply_error(r, 502, "bad_gateway", "malformed upstream response");
    return -1;
}

/* Move response body bytes to the client, up to the high-water mark (the
 * rest waits in the upstream's buffer until the client drains). 1 when the
 * response is complete, 0 to wait for more, -1 if the connection was
 * closed. */
static int req_pump_response(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    int rc = h1_msg_relay(&r->resp, r->up->in, c->out, PC_HIGH_WATER);
    if (rc == H1_RELAY_BAD) {
        pc_metric_add(&c->w->metrics->upstream_errors[PC_UPERR_PROTOCOL], 1);
        r->reason = "malformed chunked upstream response";
        conn_abort(c);
        return -1;
    }
    return rc == H1_RELAY_DONE ? 1 : 0;
}

void pc_req_upstream_readable(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    struct up_conn *u = r->up;
    ssize_t n = pc_read_into(u->fd, u->in, PC_READ_CHUNK);
    int eof = 0;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        eof = -1;
    } else if (n == 0) {
        eof = 1;
    } else {
        u->last_io = pc_now_ms();
    }

    if (r->tunnel) {
        if (eof) {
            conn_abort(c);
            return;
        }
        evbuffer_add_buffer(c->out, u->in);
        if (conn_flush(c) != 0)
            return;
        if (evbuffer_get_length(c->out) >= PC_HIGH_WATER)
            up_want_read(u, 0);
        return;
    }

    if (!r->resp_head_done) {
        int rc = req_read_response_head(r);
        if (rc < 0)
            return;
        if (rc == 0) {
            if (eof) {
                pc_req_upstream_event(r, -1);
                return;
            }
            return;
        }
        if (r->tunnel) {
            /* bytes after the 101 belong to the tunnel */
            c->state = PC_CS_ACTIVE;
            evbuffer_add_buffer(c->out, u->in);
            if (evbuffer_get_length(c->in) > 0)
                evbuffer_add_buffer(u->out, c->in);
            if (up_flush(u) != 0) {
                conn_abort(c);
                return;
            }
            if (conn_flush(c) != 0)
                return;
            if (!c->eof)
                pc_sock_read(&c->ev, 1);
            return;
        }
    }
    int done = req_pump_response(r);
    if (done < 0)
        return;
    if (!done && eof) {
        if (r->resp.body == H1_BODY_CLOSE) {
            h1_msg_finish_close(&r->resp);
            done = 1;
        } else {
            r->reason = "upstream closed mid-response";
            pc_metric_add(&c->w->metrics->upstream_errors[PC_UPERR_RESET], 1);
            /* flush what we have, then cut the client off */
            evbuffer_write(c->out, c->fd);
            conn_abort(c);
            return;
        }
    }
    if (done) {
        r->resp.done = 1;
        if (eof)
            r->up_keepalive = 0;
        req_response_done(r);
        return;
    }
    if (conn_flush(c) != 0)
        return;
    if (evbuffer_get_length(c->out) >= PC_HIGH_WATER)
        up_want_read(u, 0); /* resumed by conn_flush when drained */
}

/* ---- end of a request ---- */

static void req_response_done(struct pc_req *r)
{
    struct pc_conn *c = r->c;
    if (r->up != NULL) {
        int reusable = r->up_keepalive && r->req.done && r->resp.done;
        up_release(r->up, reusable);
    }
    if (r->deciding) {
        dec_cancel(&r->dec);
        r->deciding = 0;
    }
    if (!r->keepalive)
        c->close_after = 1;
    c->state = PC_CS_FLUSH;
    c->last_out = pc_now_ms();
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
        if (c->eof)
            conn_free(c);
        else
            conn_linger(c);
        return;
    }
    c->state = PC_CS_IDLE;
    c->last_in = pc_now_ms();
    if (!c->eof)
        pc_sock_read(&c->ev, 1);
    conn_rearm(c);
    if (evbuffer_get_length(c->in) > 0 || c->eof) {
        /* The next pipelined request starts from the event loop, not from
         * here: a run of requests the proxy answers itself would otherwise
         * nest one call chain per request and exhaust the stack. */
        c->next_pending = 1;
        pc_sock_arm(&c->ev, pc_now_ms());
    }
}
