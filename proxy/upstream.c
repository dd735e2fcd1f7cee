/*
 * portcullis: upstream connections and keep-alive pool.
 */
#include "upstream.h"
#include "metrics.h"
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define UP_POOL_MAX_IDLE 256
#define UP_STALE_CHECK_MS 50

static void up_read_cb(evutil_socket_t fd, short what, void *arg);
static void up_write_cb(evutil_socket_t fd, short what, void *arg);
static void up_timer_cb(evutil_socket_t fd, short what, void *arg);

struct up_pool *up_pool_new(void)
{
    struct up_pool *p = pc_calloc(1, sizeof(*p));
    TAILQ_INIT(&p->idle);
    return p;
}

static void up_close(struct up_conn *u)
{
    if (u->state == UP_IDLE) {
        TAILQ_REMOVE(&u->w->pool->idle, u, link);
        u->w->pool->nidle--;
    }
    event_del(&u->ev.rev);
    event_del(&u->ev.wev);
    event_del(&u->ev.tev);
    close(u->fd);
    evbuffer_free(u->in);
    evbuffer_free(u->out);
    free(u);
}

void up_touch(struct up_conn *u)
{
    u->last_io = pc_now_ms();
}

void up_want_read(struct up_conn *u, int on)
{
    pc_sock_read(&u->ev, on);
}

static struct up_conn *up_new(struct pc_worker *w, int fd)
{
    struct up_conn *u = pc_calloc(1, sizeof(*u));
    u->w = w;
    u->fd = fd;
    u->in = evbuffer_new();
    u->out = evbuffer_new();
    if (u->in == NULL || u->out == NULL)
        abort();
    event_assign(&u->ev.rev, w->base, fd, EV_READ | EV_PERSIST, up_read_cb, u);
    event_assign(&u->ev.wev, w->base, fd, EV_WRITE | EV_PERSIST, up_write_cb, u);
    evtimer_assign(&u->ev.tev, w->base, up_timer_cb, u);
    return u;
}

/* Has the peer closed (or sent junk on) an idle connection? */
static int up_is_stale(struct up_conn *u)
{
    char b;
    ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return 1; /* EOF, error, or unexpected bytes */
}

/* The upstream's address, from this worker's own copies: the config's
 * (a literal, or the name as installed), or the resolver's latest push. */
static int up_resolve(struct pc_worker *w, struct pc_req *r, struct sockaddr_storage *sa, socklen_t *salen,
                      int *status, const char **why)
{
    const struct pc_addr *a = &r->cfg->upstream;
    const struct pc_upaddr *p = &w->upaddr;
    if (!a->numeric && p->ok && p->port == a->port && strcmp(p->host, a->host) == 0) {
        memcpy(sa, &p->sa, p->len);
        *salen = p->len;
        return 0;
    }
    if (a->resolved) {
        memcpy(sa, &a->sa, a->len);
        *salen = a->len;
        return 0;
    }
    *status = 502;
    *why = "upstream host does not resolve";
    return -1;
}

/* The connect failed: let the resolver look again (the address may have
 * moved) and drop the connection. */
static void up_connect_failed(struct up_conn *u)
{
    pc_resolver_kick();
    up_release(u, 0);
}

static int up_connect(struct pc_worker *w, struct pc_req *r, const struct sockaddr_storage *sa, socklen_t salen,
                      int probe, int *status, const char **why)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *status = 503;
        *why = "cannot create upstream socket";
        return UP_FAIL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct up_conn *u = up_new(w, fd);
    memcpy(&u->addr, sa, salen);
    u->addrlen = salen;
    u->req = r;
    u->probe = probe ? 1 : 0;
    r->up = u;
    u->last_io = pc_now_ms();
    if (connect(fd, (const struct sockaddr *)sa, salen) == 0) {
        u->state = UP_ACTIVE;
        up_want_read(u, 1);
        pc_sock_arm(&u->ev, u->last_io + r->cfg->timeouts.upstream);
        return UP_READY;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        up_connect_failed(u);
        *status = 502;
        *why = e == ECONNREFUSED ? "upstream refused the connection" : "cannot connect to upstream";
        return UP_FAIL;
    }
    u->state = UP_CONNECTING;
    pc_sock_write(&u->ev, 1);
    pc_sock_arm(&u->ev, u->last_io + r->cfg->timeouts.connect);
    return UP_PENDING;
}

int up_acquire(struct pc_worker *w, struct pc_req *r, int *status, const char **why)
{
    struct up_pool *p = w->pool;
    struct up_conn *u, *next;
    int64_t now = pc_now_ms();
    struct sockaddr_storage sa;
    socklen_t salen;

    if (up_resolve(w, r, &sa, &salen, status, why) != 0)
        return UP_FAIL;

    /* most recently used first: it is the least likely to be stale */
    for (u = TAILQ_LAST(&p->idle, up_list); u != NULL; u = next) {
        next = TAILQ_PREV(u, up_list, link);
        if (u->addrlen != salen || memcmp(&u->addr, &sa, salen) != 0)
            continue;
        TAILQ_REMOVE(&p->idle, u, link);
        p->nidle--;
        u->state = UP_ACTIVE;
        if (now - u->last_io >= UP_STALE_CHECK_MS && up_is_stale(u)) {
            up_close(u);
            continue; /* nothing was sent on it: try the next one */
        }
        u->req = r;
        r->up = u;
        u->last_io = now;
        pc_sock_arm(&u->ev, now + r->cfg->timeouts.upstream);
        return UP_READY;
    }
    return up_connect(w, r, &sa, salen, 0, status, why);
}

int up_probe(struct pc_worker *w, struct pc_req *r, int *status, const char **why)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    if (up_resolve(w, r, &sa, &salen, status, why) != 0)
        return UP_FAIL;
    return up_connect(w, r, &sa, salen, 1, status, why);
}

int up_flush(struct up_conn *u)
{
    while (evbuffer_get_length(u->out) > 0) {
        int n = evbuffer_write(u->out, u->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                pc_sock_write(&u->ev, 1);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        u->last_io = pc_now_ms();
    }
    pc_sock_write(&u->ev, 0);
    return 0;
}

void up_release(struct up_conn *u, int reusable)
{
    struct pc_worker *w = u->w;
    struct up_pool *p = w->pool;
    struct pc_req *r = u->req;
    u->req = NULL;
    if (r != NULL)
        r->up = NULL;
    if (!reusable || u->probe || w->draining || evbuffer_get_length(u->in) > 0 ||
        evbuffer_get_length(u->out) > 0 || r == NULL || r->cfg->timeouts.keepalive == 0) {
        up_close(u);
        return;
    }
    if (p->nidle >= UP_POOL_MAX_IDLE) {
        struct up_conn *oldest = TAILQ_FIRST(&p->idle);
        up_close(oldest);
    }
    u->state = UP_IDLE;
    u->last_io = pc_now_ms();
    pc_sock_write(&u->ev, 0);
    up_want_read(u, 1); /* notice the peer closing it */
    TAILQ_INSERT_TAIL(&p->idle, u, link);
    p->nidle++;
    pc_sock_arm(&u->ev, u->last_io + r->cfg->timeouts.keepalive);
}

static void up_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_conn *u = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    if (u->state == UP_IDLE) {
        up_close(u); /* EOF or unexpected bytes on an idle connection */
        return;
    }
    if (u->state != UP_ACTIVE || u->req == NULL)
        return;
    pc_req_upstream_readable(u->req);
}

static void up_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_conn *u = arg;
    PC_UNUSED(what);
    if (u->state == UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        struct pc_req *r = u->req;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            up_connect_failed(u);
            pc_req_upstream_failed(r, 502, err == ECONNREFUSED ? "upstream refused the connection"
                                                               : "cannot connect to upstream");
            return;
        }
        u->state = UP_ACTIVE;
        pc_sock_write(&u->ev, 0);
        up_want_read(u, 1);
        u->last_io = pc_now_ms();
        pc_sock_arm(&u->ev, u->last_io + r->cfg->timeouts.upstream);
        pc_req_upstream_connected(r);
        return;
    }
    if (u->state != UP_ACTIVE || u->req == NULL) {
        pc_sock_write(&u->ev, 0);
        return;
    }
    if (up_flush(u) != 0) {
        pc_req_upstream_event(u->req, -1);
        return;
    }
    if (!u->ev.writing)
        pc_req_upstream_drained(u->req);
}

static void up_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_conn *u = arg;
    int64_t now = pc_now_ms();
    PC_UNUSED(fd);
    PC_UNUSED(what);
    u->ev.timer_on = 0;
    switch (u->state) {
    case UP_CONNECTING: {
        struct pc_req *r = u->req;
        up_connect_failed(u);
        pc_req_upstream_failed(r, 504, "upstream connect timeout");
        return;
    }
    case UP_ACTIVE: {
        int64_t deadline = u->last_io + u->req->cfg->timeouts.upstream;
        if (now < deadline) {
            pc_sock_arm(&u->ev, deadline);
            return;
        }
        pc_req_upstream_event(u->req, 0); /* idle timeout */
        return;
    }
    case UP_IDLE:
        up_close(u);
        return;
    }
}
