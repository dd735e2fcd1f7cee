/*
 * portcullis: upstream connections and the per-worker keep-alive pool.
 *
 * A connection returns to the pool only after a complete response to a
 * completely sent request. A pooled connection that has been idle for a
 * while is checked with a non-blocking MSG_PEEK before reuse; a stale one
 * is replaced (nothing of the request has been sent on it yet).
 *
 * While a connection is in use it reports to its user through one typed
 * callback (as pgbouncer's SBuf events): connected or not, readable,
 * drained, failed, timed out. It knows nothing of requests.
 */
#ifndef PC_UPSTREAM_H
#define PC_UPSTREAM_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "sock.h"

struct pc_worker;
struct pc_config;

enum up_state { UP_CONNECTING, UP_ACTIVE, UP_IDLE };

enum up_event {
    UP_EV_CONNECTED,        /* a pending connect completed */
    UP_EV_CONNECT_FAILED,   /* status 502 (refused, unreachable) or 504 (timed out), why */
    UP_EV_READABLE,         /* bytes (or the end of the stream) to read */
    UP_EV_DRAINED,          /* everything written: the user may queue more */
    UP_EV_ERROR,            /* the connection failed while in use */
    UP_EV_TIMEOUT,          /* timeouts.upstream without a byte either way */
};

struct up_conn;
/* u is NULL for UP_EV_CONNECT_FAILED: the connection is gone by then. */
typedef void (*up_cb)(void *arg, struct up_conn *u, enum up_event ev, int status, const char *why);

struct up_conn {
    struct pc_worker *w;
    struct pc_sock sock;
    enum up_state state;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t timeout;             /* ms: the idle timeout of the current state */
    up_cb cb;
    void *arg;                   /* the user's */
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
 * A connection to cfg's upstream for a user (cb, arg). UP_READY: *out is
 * usable now. UP_PENDING: connecting; UP_EV_CONNECTED or
 * UP_EV_CONNECT_FAILED follows. UP_FAIL: status and why say why.
 */
int up_acquire(struct pc_worker *w, const struct pc_config *cfg, up_cb cb, void *arg, struct up_conn **out,
               int *status, const char **why);
/* The address this worker would connect to now (its own copy, no lock). */
int up_address(struct pc_worker *w, const struct pc_config *cfg, struct sockaddr_storage *sa, socklen_t *len);

/* Write out the connection's output; UP_EV_DRAINED follows when it had to
 * wait. -1 on an error. */
int up_flush(struct up_conn *u);
/* Detach from the user: pooled for keepalive_ms when reusable, else closed. */
void up_release(struct up_conn *u, int reusable, int64_t keepalive_ms);

#endif
