/*
 * portcullis: the accept event of a listening socket.
 *
 * A listener is level-triggered: when accept fails for want of
 * descriptors or memory, the connection stays queued and the socket stays
 * readable, so the loop would wake for it again at once, for ever (100 %
 * CPU while nothing can be accepted). The listener pauses instead: its
 * event is off for 100 ms, then on again; the pause is logged at most
 * once per 5 s. Connections already accepted go on meanwhile.
 */
#ifndef PC_LISTENER_H
#define PC_LISTENER_H

#include <stdint.h>
#include <event2/event.h>
#include <event2/event_struct.h>

struct pc_listener {
    struct event ev;    /* the listening socket: readable, persistent */
    struct event retry; /* the end of a pause */
    int64_t last_warn;  /* ms */
    const char *name;   /* in the log: "accept", "admin accept" */
    int on;             /* between start and stop */
};

/* Watch fd: cb(fd, EV_READ, arg) when a connection waits. 0, or -1 with
 * errno (the listener is then off). */
int pc_listener_start(struct pc_listener *l, struct event_base *base, int fd, event_callback_fn cb, void *arg,
                      const char *name);
/* After accept failed with errno: 1 when for want of descriptors or
 * memory (the listener now pauses; the caller returns to the loop), else
 * 0 (errno unchanged). */
int pc_listener_starved(struct pc_listener *l);
/* Off for good (before its socket is closed). */
void pc_listener_stop(struct pc_listener *l);

#endif
