/*
 * portcullis: upstream connections and keep-alive pool (see upstream.h).
 */
#include "upstream.h"
#include "config.h"
#include "resolve.h"
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define UP_POOL_MAX_IDLE 256
#define UP_STALE_CHECK_MS 50

static void up_sock_cb(struct pc_sock *s, short what);

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
    pc_sock_close(&u->sock);
    free(u);
}

/* Has the peer closed (or sent junk on) an idle connection? */
static int up_is_stale(struct up_conn *u)
{
    char b;
    ssize_t n = recv(u->sock.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return 1; /* EOF, error, or unexpected bytes */
}

/* The upstream's address, from this worker's own copies: the config's
 * (a literal, or the name as installed), or the resolver's latest push. */
int up_address(struct pc_worker *w, const struct pc_config *cfg, struct sockaddr_storage *sa, socklen_t *len)
{
    const struct pc_addr *a = &cfg->upstream;
    const struct pc_upaddr *p = &w->upaddr;
    if (!a->numeric && p->ok && p->port == a->port && strcmp(p->host, a->host) == 0) {
        memcpy(sa, &p->sa, p->len);
        *len = p->len;
        return 0;
    }
    if (a->resolved) {
        memcpy(sa, &a->sa, a->len);
        *len = a->len;
        return 0;
    }
    return -1;
}

static void up_arm(struct up_conn *u, int64_t timeout)
{
    u->timeout = timeout;
    pc_sock_arm(&u->sock, PC_MAX(u->sock.last_in, u->sock.last_out) + timeout);
}

/* A connect failed: the resolver looks again (the address may have moved),
 * the connection goes, and the user hears why. */
static void up_connect_failed(struct up_conn *u, int status, const char *why)
{
    up_cb cb = u->cb;
    void *arg = u->arg;
    pc_resolver_kick();
    up_close(u);
    cb(arg, NULL, UP_EV_CONNECT_FAILED, status, why);
}

static int up_connect(struct pc_worker *w, const struct pc_config *cfg, const struct sockaddr_storage *sa,
                      socklen_t salen, up_cb cb, void *arg, struct up_conn **out, int *status, const char **why)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *status = 503;
        *why = "cannot create upstream socket";
        return UP_FAIL;
    }
    struct up_conn *u = pc_calloc(1, sizeof(*u));
    u->w = w;
    pc_sock_open(&u->sock, w->base, fd, up_sock_cb, u);
    memcpy(&u->addr, sa, salen);
    u->addrlen = salen;
    u->cb = cb;
    u->arg = arg;
    *out = u;
    if (connect(fd, (const struct sockaddr *)sa, salen) == 0) {
        u->state = UP_ACTIVE;
        pc_sock_read(&u->sock, 1);
        up_arm(u, cfg->timeouts.upstream);
        return UP_READY;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        pc_resolver_kick();
        up_close(u);
        *out = NULL;
        *status = 502;
        *why = e == ECONNREFUSED ? "upstream refused the connection" : "cannot connect to upstream";
        return UP_FAIL;
    }
    u->state = UP_CONNECTING;
    pc_sock_write(&u->sock, 1);
    u->timeout = cfg->timeouts.upstream;      /* once connected */
    pc_sock_arm(&u->sock, u->sock.last_out + cfg->timeouts.connect);
    return UP_PENDING;
}

int up_acquire(struct pc_worker *w, const struct pc_config *cfg, up_cb cb, void *arg, struct up_conn **out,
               int *status, const char **why)
{
    struct up_pool *p = w->pool;
    struct up_conn *u, *next;
    int64_t now = pc_now_ms();
    struct sockaddr_storage sa;
    socklen_t salen;

    *out = NULL;
    if (up_address(w, cfg, &sa, &salen) != 0) {
        *status = 502;
        *why = "upstream host does not resolve";
        return UP_FAIL;
    }
    /* most recently used first: it is the least likely to be stale */
    for (u = TAILQ_LAST(&p->idle, up_list); u != NULL; u = next) {
        next = TAILQ_PREV(u, up_list, link);
        if (u->addrlen != salen || memcmp(&u->addr, &sa, salen) != 0)
            continue;
        TAILQ_REMOVE(&p->idle, u, link);
        p->nidle--;
        u->state = UP_ACTIVE;
        if (now - u->sock.last_in >= UP_STALE_CHECK_MS && up_is_stale(u)) {
            up_close(u);
            continue; /* nothing was sent on it: try the next one */
        }
        u->cb = cb;
        u->arg = arg;
        u->sock.last_in = u->sock.last_out = now;
        up_arm(u, cfg->timeouts.upstream);
        *out = u;
        return UP_READY;
    }
    return up_connect(w, cfg, &sa, salen, cb, arg, out, status, why);
}

int up_flush(struct up_conn *u)
{
    return pc_sock_flush(&u->sock) < 0 ? -1 : 0;
}

void up_release(struct up_conn *u, int reusable, int64_t keepalive_ms)
{
    struct pc_worker *w = u->w;
    struct up_pool *p = w->pool;
    u->cb = NULL;
    u->arg = NULL;
    if (!reusable || w->draining || evbuffer_get_length(u->sock.in) > 0 || evbuffer_get_length(u->sock.out) > 0 ||
        keepalive_ms == 0 || u->state != UP_ACTIVE) {
        up_close(u);
        return;
    }
    if (p->nidle >= UP_POOL_MAX_IDLE)
        up_close(TAILQ_FIRST(&p->idle));
    u->state = UP_IDLE;
    u->sock.last_in = u->sock.last_out = pc_now_ms();
    pc_sock_write(&u->sock, 0);
    pc_sock_read(&u->sock, 1); /* notice the peer closing it */
    TAILQ_INSERT_TAIL(&p->idle, u, link);
    p->nidle++;
    up_arm(u, keepalive_ms);
}

static void up_connected(struct up_conn *u)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(u->sock.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        up_connect_failed(u, 502, err == ECONNREFUSED ? "upstream refused the connection" : "cannot connect to upstream");
        return;
    }
    u->state = UP_ACTIVE;
    pc_sock_write(&u->sock, 0);
    pc_sock_read(&u->sock, 1);
    u->sock.last_in = u->sock.last_out = pc_now_ms();
    up_arm(u, u->timeout);
    u->cb(u->arg, u, UP_EV_CONNECTED, 0, NULL);
}

static void up_timeout(struct up_conn *u)
{
    switch (u->state) {
    case UP_CONNECTING:
        up_connect_failed(u, 504, "upstream connect timeout");
        return;
    case UP_ACTIVE: {
        int64_t deadline = PC_MAX(u->sock.last_in, u->sock.last_out) + u->timeout;
        if (pc_now_ms() < deadline) {
            pc_sock_arm(&u->sock, deadline);
            return;
        }
        u->cb(u->arg, u, UP_EV_TIMEOUT, 504, "upstream timeout");
        return;
    }
    case UP_IDLE:
        up_close(u);
        return;
    }
}

static void up_sock_cb(struct pc_sock *s, short what)
{
    struct up_conn *u = s->owner;
    if (what & EV_TIMEOUT) {
        up_timeout(u);
        return;
    }
    if (u->state == UP_IDLE) {
        up_close(u); /* EOF or unexpected bytes on an idle connection */
        return;
    }
    if (u->state == UP_CONNECTING) {
        if (what & EV_WRITE)
            up_connected(u);
        return;
    }
    if (u->cb == NULL)
        return;
    if (what & EV_READ) {
        u->cb(u->arg, u, UP_EV_READABLE, 0, NULL);
        return;
    }
    int rc = pc_sock_flush(&u->sock);
    if (rc < 0)
        u->cb(u->arg, u, UP_EV_ERROR, 502, "upstream connection failed");
    else if (rc > 0)
        u->cb(u->arg, u, UP_EV_DRAINED, 0, NULL);
}
