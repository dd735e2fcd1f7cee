/*
 * portcullis: sockets on evbuffers, without bufferevents (see sock.h).
 *
 * Reads go straight into space reserved in the evbuffer (no FIONREAD
 * ioctl, no 4 KiB cap); writes use evbuffer_write (writev). Moving bytes
 * between sockets is done by evbuffer_remove_buffer, which hands whole
 * chains over without copying.
 */
#include "sock.h"
#include "../lib/base.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

static void pc_sock_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_sock *s = arg;
    PC_UNUSED(fd);
    s->cb(s, what);
}

static void pc_sock_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_sock *s = arg;
    PC_UNUSED(fd);
    s->timer_on = 0;
    s->cb(s, what);
}

void pc_sock_ack_now(struct pc_sock *s)
{
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

void pc_sock_open(struct pc_sock *s, struct event_base *base, int fd, pc_sock_cb cb, void *owner)
{
    int one = 1;
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->cb = cb;
    s->owner = owner;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    if (s->in == NULL || s->out == NULL)
        abort();
    event_assign(&s->rev, base, fd, EV_READ | EV_PERSIST, pc_sock_io_cb, s);
    event_assign(&s->wev, base, fd, EV_WRITE | EV_PERSIST, pc_sock_io_cb, s);
    evtimer_assign(&s->tev, base, pc_sock_timer_cb, s);
    s->last_in = s->last_out = pc_now_ms();
}

void pc_sock_close(struct pc_sock *s)
{
    event_del(&s->rev);
    event_del(&s->wev);
    event_del(&s->tev);
    close(s->fd);
    s->fd = -1;
    evbuffer_free(s->in);
    evbuffer_free(s->out);
    s->in = s->out = NULL;
}

ssize_t pc_sock_fill(struct pc_sock *s, size_t max)
{
    struct evbuffer_iovec vec[2];
    int nvec = evbuffer_reserve_space(s->in, (ev_ssize_t)max, vec, 2);
    if (nvec <= 0) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov[2];
    size_t want = 0;
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
        if (want + iov[i].iov_len > max)
            iov[i].iov_len = max - want;
        want += iov[i].iov_len;
    }
    ssize_t n;
    do {
        n = nvec == 1 ? read(s->fd, iov[0].iov_base, iov[0].iov_len) : readv(s->fd, iov, nvec);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int saved = errno;
        evbuffer_commit_space(s->in, NULL, 0);
        if (n == 0)
            s->eof = 1;
        errno = saved;
        return n;
    }
    size_t left = (size_t)n;
    int used = 0;
    for (int i = 0; i < nvec && left > 0; i++) {
        size_t take = left < iov[i].iov_len ? left : iov[i].iov_len;
        vec[i].iov_len = take;
        left -= take;
        used++;
    }
    if (evbuffer_commit_space(s->in, vec, used) != 0) {
        errno = EIO;
        return -1;
    }
    s->last_in = pc_now_ms();
    return n;
}

int pc_sock_flush(struct pc_sock *s)
{
    while (evbuffer_get_length(s->out) > 0) {
        int n = evbuffer_write(s->out, s->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                pc_sock_write(s, 1);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        s->last_out = pc_now_ms();
    }
    pc_sock_write(s, 0);
    return 1;
}

void pc_sock_read(struct pc_sock *s, int on)
{
    if (on && !s->reading) {
        event_add(&s->rev, NULL);
        s->reading = 1;
    } else if (!on && s->reading) {
        event_del(&s->rev);
        s->reading = 0;
    }
}

void pc_sock_write(struct pc_sock *s, int on)
{
    if (on && !s->writing) {
        event_add(&s->wev, NULL);
        s->writing = 1;
    } else if (!on && s->writing) {
        event_del(&s->wev);
        s->writing = 0;
    }
}

void pc_sock_arm(struct pc_sock *s, int64_t deadline)
{
    if (s->timer_on && s->deadline <= deadline)
        return; /* fires early and re-arms itself */
    int64_t now = pc_now_ms();
    int64_t d = deadline > now ? deadline - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    s->deadline = deadline;
    s->timer_on = 1;
    event_add(&s->tev, &tv);
}
