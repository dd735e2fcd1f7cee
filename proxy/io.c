/*
 * portcullis: socket I/O on evbuffers, without bufferevents.
 *
 * Reads go straight into space reserved in the evbuffer (no FIONREAD
 * ioctl, no 4 KiB cap); writes use evbuffer_write (writev). Moving bytes
 * between the client's and the upstream's buffers is done by
 * evbuffer_remove_buffer, which hands whole chains over without copying.
 */
#include "worker.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t pc_read_into(int fd, struct evbuffer *buf, size_t max)
{
    struct evbuffer_iovec vec[2];
    int nvec = evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, 2);
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
        n = nvec == 1 ? read(fd, iov[0].iov_base, iov[0].iov_len) : readv(fd, iov, nvec);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int saved = errno;
        evbuffer_commit_space(buf, NULL, 0);
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
    if (evbuffer_commit_space(buf, vec, used) != 0) {
        errno = EIO;
        return -1;
    }
    return n;
}

void pc_sock_read(struct pc_sock_ev *e, int on)
{
    if (on && !e->reading) {
        event_add(&e->rev, NULL);
        e->reading = 1;
    } else if (!on && e->reading) {
        event_del(&e->rev);
        e->reading = 0;
    }
}

void pc_sock_write(struct pc_sock_ev *e, int on)
{
    if (on && !e->writing) {
        event_add(&e->wev, NULL);
        e->writing = 1;
    } else if (!on && e->writing) {
        event_del(&e->wev);
        e->writing = 0;
    }
}

void pc_sock_arm(struct pc_sock_ev *e, int64_t deadline)
{
    if (e->timer_on && e->deadline <= deadline)
        return; /* fires early and re-arms itself */
    int64_t now = pc_now_ms();
    int64_t d = deadline > now ? deadline - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    e->deadline = deadline;
    e->timer_on = 1;
    event_add(&e->tev, &tv);
}
