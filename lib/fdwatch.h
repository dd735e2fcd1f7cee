/*
 * portcullis base: a libevent watch on a socket that a library owns.
 *
 * libpq and MariaDB Connector/C close their socket when a connection
 * drops, and when a connect moves on to the next host or address; the
 * caller learns of it only after the call returns. Deleting an event on a
 * descriptor that is already closed hands epoll a number that may by then
 * belong to another thread's new descriptor (or to the library's next
 * socket): the kernel answers EBADF or ENOENT and libevent ignores it, but
 * it is a use of a closed descriptor, and ThreadSanitizer reports it as a
 * race with whichever thread opened the number. So the watch registers a
 * duplicate of the library's descriptor that only it closes, always after
 * the event is deleted.
 *
 * A library that closes its socket and opens another may give the new one
 * the old number: when that can happen (a connect in progress), the caller
 * turns the watch off before watching again.
 */
#ifndef PC_FDWATCH_H
#define PC_FDWATCH_H

#include <event2/event.h>
#include <event2/event_struct.h>

struct pc_fdwatch {
    struct event ev;
    int fd;     /* our duplicate; -1: off */
    int src;    /* the library's descriptor it duplicates */
    short what; /* EV_READ and/or EV_WRITE, always EV_PERSIST */
};

void pc_fdwatch_init(struct pc_fdwatch *w);
/* Watch src for what (cb gets the duplicate's number). A different src or
 * what replaces the watch; src < 0 or what 0 turns it off. 0, or -1 when
 * the descriptor cannot be duplicated or watched (then it is off). */
int pc_fdwatch_set(struct pc_fdwatch *w, struct event_base *base, int src, short what, event_callback_fn cb,
                   void *arg);
/* Delete the event, then close the duplicate. */
void pc_fdwatch_off(struct pc_fdwatch *w);
static inline int pc_fdwatch_on(const struct pc_fdwatch *w) { return w->fd >= 0; }

#endif
