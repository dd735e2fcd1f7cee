/*
 * portcullis: upstream connections and the per-worker keep-alive pool.
 *
 * A connection returns to the pool only after a complete response to a
 * completely sent request. A pooled connection that has been idle for a
 * while is checked with a non-blocking MSG_PEEK before reuse; a stale one
 * is replaced (nothing of the request has been sent on it yet).
 */
#ifndef PC_UPSTREAM_H
#define PC_UPSTREAM_H

#include <sys/queue.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/buffer.h>

#include "worker.h"

enum up_state { UP_CONNECTING, UP_ACTIVE, UP_IDLE };

struct up_conn {
    struct pc_worker *w;
    int fd;
    enum up_state state;
    struct pc_sock_ev ev;
    struct evbuffer *in, *out;
    struct pc_req *req;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t last_io;
    unsigned probe : 1;          /* readiness probe: connect only */
    TAILQ_ENTRY(up_conn) link;
};

TAILQ_HEAD(up_list, up_conn);

struct up_pool {
    struct up_list idle;
    size_t nidle;
};

struct up_pool *up_pool_new(void);

enum { UP_READY = 0, UP_PENDING = 1, UP_FAIL = -1 };

/*
 * Get a connection for r to cfg's upstream. UP_READY: r->up is attached
 * and usable now. UP_PENDING: connecting; pc_req_upstream_connected() or
 * pc_req_upstream_failed() follows. UP_FAIL: status and why say why.
 */
int up_acquire(struct pc_worker *w, struct pc_req *r, int *status, const char **why);

/* Start a connect-only readiness probe for r (r->ready_probe set). */
int up_probe(struct pc_worker *w, struct pc_req *r, int *status, const char **why);

/* Write out as much of up->out as the socket takes. -1 on error. */
int up_flush(struct up_conn *u);
void up_want_read(struct up_conn *u, int on);
/* Detach from the request; pool it when reusable, else close. */
void up_release(struct up_conn *u, int reusable);
void up_touch(struct up_conn *u);

#endif
