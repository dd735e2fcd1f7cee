/*
 * portcullis: the accept event of a listening socket, with a pause when
 * accept runs out of resources (see listener.h).
 */
#include "listener.h"
#include "../lib/base.h"
#include "../lib/clock.h"
#include "../lib/log.h"

#include <errno.h>
#include <string.h>

#define PC_LISTENER_PAUSE_MS 100
#define PC_LISTENER_WARN_MS 5000

static void listener_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_listener *l = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    if (!l->on)
        return;
    if (event_add(&l->ev, NULL) != 0) { /* still starved: pause again */
        struct timeval tv = {0, PC_LISTENER_PAUSE_MS * 1000};
        evtimer_add(&l->retry, &tv);
    }
}

int pc_listener_start(struct pc_listener *l, struct event_base *base, int fd, event_callback_fn cb, void *arg,
                      const char *name)
{
    l->name = name;
    l->last_warn = 0;
    l->on = 0;
    event_assign(&l->ev, base, fd, EV_READ | EV_PERSIST, cb, arg);
    evtimer_assign(&l->retry, base, listener_retry_cb, l);
    if (event_add(&l->ev, NULL) != 0)
        return -1;
    l->on = 1;
    return 0;
}

int pc_listener_starved(struct pc_listener *l)
{
    int e = errno;
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
        return 0;
    int64_t now = pc_now_ms();
    if (now - l->last_warn > PC_LISTENER_WARN_MS) {
        l->last_warn = now;
        pc_log(PC_LOG_ERROR, "%s: %s; pausing accepts for %dms", l->name, strerror(e), PC_LISTENER_PAUSE_MS);
    }
    event_del(&l->ev);
    struct timeval tv = {0, PC_LISTENER_PAUSE_MS * 1000};
    if (evtimer_add(&l->retry, &tv) != 0)
        event_add(&l->ev, NULL); /* no pause possible: better spin than stop for good */
    errno = e;
    return 1;
}

void pc_listener_stop(struct pc_listener *l)
{
    if (!l->on)
        return;
    l->on = 0;
    event_del(&l->ev);
    event_del(&l->retry);
}
