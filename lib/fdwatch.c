/*
 * portcullis base: a libevent watch on a duplicate of a library's socket
 * (see fdwatch.h).
 */
#include "fdwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

void pc_fdwatch_init(struct pc_fdwatch *w)
{
    w->fd = -1;
    w->src = -1;
    w->what = 0;
}

void pc_fdwatch_off(struct pc_fdwatch *w)
{
    if (w->fd < 0)
        return;
    event_del(&w->ev); /* while the duplicate is open */
    close(w->fd);
    w->fd = -1;
    w->src = -1;
    w->what = 0;
}

int pc_fdwatch_set(struct pc_fdwatch *w, struct event_base *base, int src, short what, event_callback_fn cb,
                   void *arg)
{
    if (w->fd >= 0 && w->src == src && w->what == what)
        return 0;
    if (src < 0 || what == 0) {
        pc_fdwatch_off(w);
        return 0;
    }
    int fd = w->fd;
    if (fd >= 0 && w->src == src) {
        event_del(&w->ev); /* the same socket, other events */
    } else {
        pc_fdwatch_off(w);
        fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return -1;
    }
    event_assign(&w->ev, base, fd, (short)(what | EV_PERSIST), cb, arg);
    w->fd = fd;
    w->src = src;
    w->what = what;
    if (event_add(&w->ev, NULL) != 0) {
        int e = errno;
        pc_fdwatch_off(w); /* closes the duplicate */
        errno = e;
        return -1;
    }
    return 0;
}
