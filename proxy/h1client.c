/*
 * portcullis: the HTTP/1 upstream client (see h1client.h).
 */
#include "h1client.h"
#include "worker.h"
#include "upstream.h"
#include "metrics.h"
#include "reply.h"

#include <errno.h>
#include <string.h>

#define H1C_RESPONSE_HEAD_MAX (64 * 1024)

static void h1c_up_cb(void *arg, struct up_conn *u, enum up_event ev, int status, const char *why);

/* ---- the request head ---- */

/* Headers the proxy sets or refuses to pass on. */
static int h1c_skip_header(const struct h1_request *h, const struct h1_header *x, int conn_first)
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

static void h1c_add_header(struct pc_buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
    pc_buf_add(b, name, nlen);
    pc_buf_add(b, ": ", 2);
    pc_buf_add(b, value, vlen);
    pc_buf_add(b, "\r\n", 2);
}

/* The request line: the canonical path, as the backend will route it. */
static void h1c_request_line(const struct pc_req *r, struct pc_buf *b)
{
    pc_buf_add(b, r->h.method, r->h.method_len);
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
}

/* Headers the proxy writes itself: Host, the joined Cookie, the
 * forwarding chain, the request id and the body's framing. */
static void h1c_proxy_headers(const struct pc_req *r, const char *peer, int upgrade_idx, struct pc_buf *b)
{
    const struct h1_request *h = &r->h;
    if (r->canon.authority != NULL)
        h1c_add_header(b, "Host", 4, r->canon.authority, r->canon.authority_len);
    else if (h->host_index < 0)
        h1c_add_header(b, "Host", 4, r->cfg->upstream.text, strlen(r->cfg->upstream.text));
    /* Cookie headers become one, joined with "; " (RFC 9113 8.2.3): the
     * very value the proxy parsed its credentials from, so the backend
     * splits the cookies exactly where the proxy did. */
    if (r->cookie != NULL)
        h1c_add_header(b, "Cookie", 6, r->cookie, r->cookie_len);
    int xff = 0;
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
    pc_buf_adds(b, peer);
    pc_buf_add(b, "\r\n", 2);
    h1c_add_header(b, "X-Request-Id", 12, r->request_id, strlen(r->request_id));
    if (r->req.body == H1_BODY_LENGTH) {
        char num[24];
        h1c_add_header(b, "Content-Length", 14, num, pc_fmt_u64(num, (uint64_t)h->content_length));
    } else if (r->req.body == H1_BODY_CHUNKED) {
        pc_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    } else if (h->content_length == 0) {
        pc_buf_adds(b, "Content-Length: 0\r\n");
    }
    if (upgrade_idx >= 0) {
        pc_buf_adds(b, "Connection: upgrade\r\n");
        h1c_add_header(b, "Upgrade", 7, h->headers[upgrade_idx].value, h->headers[upgrade_idx].value_len);
    }
}

static void h1c_request_head(const struct pc_req *r, const struct h1c *x, struct pc_buf *b)
{
    const struct h1_request *h = &r->h;
    b->len = 0;
    h1c_request_line(r, b);
    int conn_first = h1_find_header(h->headers, h->nheaders, "connection", 0);
    int upgrade_idx = -1;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->headers[i];
        if (x->upgrade && pc_caseeq_lit(hd->name, hd->name_len, "upgrade"))
            upgrade_idx = (int)i;
        if (h1c_skip_header(h, hd, conn_first))
            continue;
        if (r->canon.authority != NULL && pc_caseeq_lit(hd->name, hd->name_len, "host"))
            continue; /* a proxy replaces Host with the absolute-form's authority */
        h1c_add_header(b, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    h1c_proxy_headers(r, x->peer, upgrade_idx, b);
    pc_buf_add(b, "\r\n", 2);
}

/* ---- endings ---- */

static void h1c_drop_upstream(struct h1c *x)
{
    if (x->up != NULL) {
        up_release(x->up, 0, 0);
        x->up = NULL;
    }
}

/* Nothing reached the client yet: the caller answers status, with why as
 * the logged reason and message as the client's (NULL: why). */
static int h1c_fail(struct pc_req *r, enum pc_upstream_error kind, int status, const char *why, const char *message)
{
    struct h1c *x = &r->x;
    if (kind != PC_UPERR__COUNT)
        pc_metric_add(&x->w->metrics->upstream_errors[kind], 1);
    h1c_drop_upstream(x);
    x->failed = 1;
    r->reason = why;
    x->ops->fail(r, status, pc_status_code_name(status), message != NULL ? message : why);
    return -1;
}

/* Bytes of the response went out already: the client sees the cut. */
static int h1c_abort(struct pc_req *r, enum pc_upstream_error kind, const char *why)
{
    struct h1c *x = &r->x;
    if (kind != PC_UPERR__COUNT)
        pc_metric_add(&x->w->metrics->upstream_errors[kind], 1);
    if (why != NULL)
        r->reason = why;
    h1c_drop_upstream(x);
    x->failed = 1;
    x->ops->abort(r);
    return -1;
}

/* The upstream failed (error 502, or idle timeout 504) during an exchange. */
static int h1c_broken(struct pc_req *r, int status)
{
    int timeout = status == 504;
    if (!r->x.head_done)
        return h1c_fail(r, timeout ? PC_UPERR_TIMEOUT : PC_UPERR_RESET, status,
                        timeout ? "upstream timeout" : "upstream connection failed", NULL);
    return h1c_abort(r, PC_UPERR__COUNT, timeout ? "upstream timeout mid-response" : "upstream failed mid-response");
}

void h1c_release(struct pc_req *r)
{
    struct h1c *x = &r->x;
    if (x->up == NULL)
        return;
    int reusable = x->reusable && !x->failed && r->req.done && r->resp.done;
    up_release(x->up, reusable, r->cfg->timeouts.keepalive);
    x->up = NULL;
}

/* ---- the request body ---- */

/* A request body turned out bad halfway: answered when nothing has been
 * sent to the client yet (the client connection then closes: the rest of
 * its stream is unread), else the client is cut off. */
static int h1c_body_refused(struct pc_req *r, int status, const char *why, const char *message)
{
    if (r->x.head_done)
        return h1c_abort(r, PC_UPERR__COUNT, why);
    if (status == 413 && r->decision == PC_D_NONE)
        r->decision = PC_D_REJECT;
    return h1c_fail(r, PC_UPERR__COUNT, status, why, message);
}

/* Move request body bytes from the client to the upstream (h1msg.h: the
 * one relay, which re-frames chunked bodies and enforces the body limit). */
static int h1c_pump_body(struct pc_req *r)
{
    struct h1c *x = &r->x;
    struct pc_sock *c = x->client;
    struct evbuffer *dst = x->up->sock.out;

    int rc = h1_msg_relay(&r->req, c->in, dst, PC_HIGH_WATER);
    if (rc == H1_RELAY_BAD)
        return h1c_body_refused(r, 400, "malformed chunked request body", "malformed chunked body");
    if (rc == H1_RELAY_TOO_LARGE)
        return h1c_body_refused(r, 413, "chunked body larger than limits.body_bytes",
                                "request body larger than the limit");
    if (up_flush(x->up) != 0)
        return h1c_broken(r, 502);
    if (!r->req.done && c->eof)
        return h1c_abort(r, PC_UPERR__COUNT, NULL); /* the body is truncated */
    /* backpressure: stop reading the client while the upstream is slow */
    pc_sock_read(c, evbuffer_get_length(dst) < PC_HIGH_WATER && !c->eof);
    x->ops->rearm(r);
    return 0;
}

static int h1c_send(struct pc_req *r)
{
    struct h1c *x = &r->x;
    struct pc_buf *b = &x->w->scratch;
    h1c_request_head(r, x, b);
    evbuffer_add(x->up->sock.out, b->p, b->len);
    x->head_sent = 1;
    r->t_up = pc_now_us();
    if (!r->req.done)
        return h1c_pump_body(r);
    if (up_flush(x->up) != 0)
        return h1c_broken(r, 502);
    return 0;
}

int h1c_forward(struct pc_req *r, struct pc_worker *w, struct pc_sock *client, const char *peer,
                const struct h1c_ops *ops)
{
    struct h1c *x = &r->x;
    int status = 0;
    const char *why = NULL;

    x->w = w;
    x->client = client;
    x->peer = peer;
    x->ops = ops;
    x->started = 1;
    x->upgrade = r->h.conn_upgrade && r->h.has_upgrade;
    /* 100 Continue only now, after the decision (RFC 9110 10.1.1) */
    if (r->h.expect_continue && !r->req.done && evbuffer_get_length(client->in) == 0) {
        evbuffer_add(client->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (ops->flush(r) != 0)
            return -1;
    }
    int rc = up_acquire(w, r->cfg, h1c_up_cb, r, &x->up, &status, &why);
    if (rc == UP_FAIL)
        return h1c_fail(r, status == 504 ? PC_UPERR_TIMEOUT : PC_UPERR_REFUSED, status, why, NULL);
    if (rc == UP_READY)
        return h1c_send(r);
    return 0; /* UP_EV_CONNECTED follows */
}

int h1c_awaits_body(const struct pc_req *r)
{
    return r->x.up != NULL && r->x.head_sent && !r->req.done;
}

/* ---- the response head ---- */

/* The client's response head, from the upstream's. */
static void h1c_response_head(const struct pc_req *r, const struct h1_response *resp, struct pc_buf *b)
{
    const struct h1c *x = &r->x;
    int conn_first = h1_find_header(resp->headers, resp->nheaders, "connection", 0);
    b->len = 0;
    char st[4] = {(char)('0' + resp->status / 100), (char)('0' + resp->status / 10 % 10),
                  (char)('0' + resp->status % 10), ' '};
    pc_buf_add(b, "HTTP/1.1 ", 9);
    pc_buf_add(b, st, 4);
    pc_buf_add(b, resp->reason, resp->reason_len);
    pc_buf_add(b, "\r\n", 2);
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct h1_header *hd = &resp->headers[i];
        int upgrade = pc_caseeq_lit(hd->name, hd->name_len, "upgrade");
        if (h1_is_hop_by_hop(hd->name, hd->name_len) && !(x->tunnel && upgrade))
            continue;
        if (!r->resp.rechunk && r->resp.body == H1_BODY_CHUNKED &&
            pc_caseeq_lit(hd->name, hd->name_len, "content-length"))
            continue;
        if (h1_connection_lists(resp->headers, resp->nheaders, conn_first, hd->name, hd->name_len) && !upgrade)
            continue;
        h1c_add_header(b, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    if (x->tunnel)
        pc_buf_adds(b, "Connection: upgrade\r\n");
    else if (r->resp.rechunk)
        pc_buf_adds(b, "Transfer-Encoding: chunked\r\n");
    if (!x->tunnel) {
        if (!r->keepalive)
            pc_buf_adds(b, "Connection: close\r\n");
        else if (r->h.minor == 0)
            pc_buf_adds(b, "Connection: keep-alive\r\n");
    }
    pc_buf_add(b, "\r\n", 2);
}

/* May the upstream connection serve another request after this response? */
static int h1c_upstream_reusable(const struct pc_req *r, const struct h1_response *resp)
{
    /* an Upgrade request answered without 101: the upstream may read the
     * rest of the stream as another protocol */
    if (resp->conn_close || !(resp->minor == 1 || resp->conn_keepalive) || r->resp.body == H1_BODY_CLOSE ||
        r->x.upgrade)
        return 0;
    /* Responses that carry no body by definition (to HEAD, 204, 304) are
     * where a faulty upstream sends one anyway; bytes after what we
     * consider the response would become the next client's response. */
    return r->h.method_id != H1_M_HEAD && resp->status != 204 && resp->status != 304;
}

/* A final (or switching) response head is in resp: start relaying it. */
static void h1c_head_received(struct pc_req *r, const struct h1_response *resp)
{
    struct h1c *x = &r->x;
    r->status = resp->status;
    x->head_done = 1;
    if (resp->status == 101) {
        x->tunnel = 1;
    } else {
        enum h1_body body = !h1_response_has_body(resp, r->h.method_id) ? H1_BODY_NONE
                            : resp->chunked ? H1_BODY_CHUNKED
                            : resp->content_length >= 0 ? H1_BODY_LENGTH : H1_BODY_CLOSE;
        /* chunked responses are re-chunked for HTTP/1.1 clients and
         * de-chunked (and closed) for HTTP/1.0 ones */
        h1_msg_start(&r->resp, body, resp->content_length > 0 ? (uint64_t)resp->content_length : 0,
                     r->h.minor == 1, 0);
        x->reusable = h1c_upstream_reusable(r, resp);
        r->keepalive = x->ops->keepalive(r);
        r->t_up_end = pc_now_us();
    }
    h1c_response_head(r, resp, &x->w->scratch);
    evbuffer_add(x->client->out, x->w->scratch.p, x->w->scratch.len);
}

/* 1: a head went to the client, 0: more bytes needed, -1: the exchange
 * ended (a malformed response). */
static int h1c_read_head(struct pc_req *r)
{
    struct h1c *x = &r->x;
    struct evbuffer *in = x->up->sock.in;
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return 0;
        size_t scan_len = PC_MIN(len, (size_t)H1C_RESPONSE_HEAD_MAX);
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)scan_len);
        size_t start, end;
        int rc = h1_scan_head(&x->rscan, buf, scan_len, 0, &start, &end);
        if (rc == H1_SCAN_MORE && len < H1C_RESPONSE_HEAD_MAX)
            return 0;
        if (rc != H1_SCAN_DONE)
            break;
        struct h1_response *resp = &x->w->resp_scratch;
        const char *why;
        if (h1_parse_response(buf + start, end - start, resp, &why) != 0)
            break;
        /* a switch only when asked for, and answered as one */
        if (resp->status == 101 &&
            (!x->upgrade || !resp->conn_upgrade || h1_find_header(resp->headers, resp->nheaders, "upgrade", 0) < 0))
            break;
        if (resp->status < 200 && resp->status != 101) {
            /* interim responses: Expect was handled here; drop them */
            evbuffer_drain(in, end);
            memset(&x->rscan, 0, sizeof(x->rscan));
            continue;
        }
        h1c_head_received(r, resp);
        evbuffer_drain(in, end);
        return 1;
    }
    return h1c_fail(r, PC_UPERR_PROTOCOL, 502, "malformed upstream response", NULL);
}

/* ---- the response body and the tunnel ---- */

/* Upstream bytes to the client, both ways unframed. */
static int h1c_tunnel_out(struct pc_req *r)
{
    struct h1c *x = &r->x;
    evbuffer_add_buffer(x->client->out, x->up->sock.in);
    if (x->ops->flush(r) != 0)
        return -1;
    pc_sock_read(&x->up->sock, evbuffer_get_length(x->client->out) < PC_HIGH_WATER);
    return 0;
}

static int h1c_tunnel_in(struct pc_req *r)
{
    struct h1c *x = &r->x;
    evbuffer_add_buffer(x->up->sock.out, x->client->in);
    if (up_flush(x->up) != 0)
        return h1c_abort(r, PC_UPERR__COUNT, "upstream failed in the tunnel");
    pc_sock_read(x->client, evbuffer_get_length(x->up->sock.out) < PC_HIGH_WATER && !x->client->eof);
    return 0;
}

/* Response body bytes to the client, up to its high-water mark (the rest
 * waits in the upstream's buffer until the client drains). eof: the
 * upstream closed. */
static int h1c_pump_response(struct pc_req *r, int eof)
{
    struct h1c *x = &r->x;
    int rc = h1_msg_relay(&r->resp, x->up->sock.in, x->client->out, PC_HIGH_WATER);
    if (rc == H1_RELAY_BAD)
        return h1c_abort(r, PC_UPERR_PROTOCOL, "malformed chunked upstream response");
    /* the upstream closed, and everything it sent has been relayed (bytes
     * held back by the client's high-water mark are not lost) */
    if (rc != H1_RELAY_DONE && eof && evbuffer_get_length(x->up->sock.in) == 0) {
        if (r->resp.body != H1_BODY_CLOSE) {
            /* write out what we have, then cut the client off */
            pc_sock_flush(x->client);
            return h1c_abort(r, PC_UPERR_RESET, "upstream closed mid-response");
        }
        h1_msg_finish_close(&r->resp);
        rc = H1_RELAY_DONE;
    }
    if (rc == H1_RELAY_DONE) {
        if (eof)
            x->reusable = 0;
        h1c_release(r);
        x->ops->done(r);
        return -1;
    }
    if (x->ops->flush(r) != 0)
        return -1;
    /* resumed by h1c_client_drained */
    pc_sock_read(&x->up->sock, evbuffer_get_length(x->client->out) < PC_HIGH_WATER);
    return 0;
}

/* A small piece of a response that goes on: acknowledge it at once, or
 * an upstream that writes its head and body apart without TCP_NODELAY
 * (Python's http.server) waits for our delayed ACK (sock.h). */
#define H1C_SMALL_READ 4096

static int h1c_upstream_readable(struct pc_req *r)
{
    struct h1c *x = &r->x;
    ssize_t n = pc_sock_fill(&x->up->sock, PC_READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    int eof = n <= 0;
    if (x->tunnel)
        return eof ? h1c_abort(r, PC_UPERR__COUNT, NULL) : h1c_tunnel_out(r);
    if (!x->head_done) {
        int rc = h1c_read_head(r);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            if (!eof && n < H1C_SMALL_READ)
                pc_sock_ack_now(&x->up->sock);
            return eof ? h1c_broken(r, 502) : 0;
        }
        if (x->tunnel) {
            /* bytes after the 101 belong to the tunnel, both ways */
            if (h1c_tunnel_in(r) != 0)
                return -1;
            if (h1c_tunnel_out(r) != 0)
                return -1;
            return eof ? h1c_abort(r, PC_UPERR__COUNT, NULL) : 0;
        }
    }
    int rc = h1c_pump_response(r, eof);
    if (rc == 0 && !eof && n < H1C_SMALL_READ)
        pc_sock_ack_now(&x->up->sock);
    return rc;
}

int h1c_client_drained(struct pc_req *r)
{
    struct h1c *x = &r->x;
    if (x->up == NULL || !x->head_done || x->up->sock.reading)
        return 0;
    if (x->tunnel) {
        pc_sock_read(&x->up->sock, 1);
        return 0;
    }
    if (r->resp.done)
        return 0;
    /* what waits in the upstream's buffer first: the upstream may have
     * nothing more to send, so no read event would come for it */
    pc_sock_read(&x->up->sock, 1);
    return h1c_pump_response(r, x->up->sock.eof);
}

int h1c_client_input(struct pc_req *r)
{
    struct h1c *x = &r->x;
    if (x->tunnel)
        return x->client->eof ? h1c_abort(r, PC_UPERR__COUNT, NULL) : h1c_tunnel_in(r);
    if (h1c_awaits_body(r) && h1c_pump_body(r) != 0)
        return -1;
    if (x->client->eof)
        return h1c_abort(r, PC_UPERR__COUNT, NULL); /* the client went away: the upstream goes too */
    return 0;
}

static void h1c_up_cb(void *arg, struct up_conn *u, enum up_event ev, int status, const char *why)
{
    struct pc_req *r = arg;
    struct h1c *x = &r->x;
    switch (ev) {
    case UP_EV_CONNECTED:
        h1c_send(r);
        return;
    case UP_EV_CONNECT_FAILED:
        x->up = NULL; /* gone already */
        h1c_fail(r, status == 504 ? PC_UPERR_TIMEOUT : PC_UPERR_REFUSED, status, why, NULL);
        return;
    case UP_EV_READABLE:
        h1c_upstream_readable(r);
        return;
    case UP_EV_DRAINED:
        if (x->tunnel) {
            pc_sock_read(x->client, !x->client->eof);
            return;
        }
        if (h1c_awaits_body(r)) {
            if (evbuffer_get_length(x->client->in) > 0)
                h1c_pump_body(r);
            else
                pc_sock_read(x->client, !x->client->eof);
        }
        return;
    case UP_EV_ERROR:
    case UP_EV_TIMEOUT:
        PC_UNUSED(u);
        h1c_broken(r, status);
        return;
    }
}
