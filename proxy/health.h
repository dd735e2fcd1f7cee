/*
 * portcullis: liveness and readiness, the same on both listeners.
 *
 * health_path: 200 while the process runs. ready_path: 200 only when the
 * process is not draining, every worker that has policies has a database
 * connection up, and the upstream accepts a TCP connection right now;
 * otherwise 503 naming the failing dependency. Every worker, not just the
 * one answering: the kernel spreads the next connection over all of them,
 * so "ready" must hold whichever one takes it.
 */
#ifndef PC_HEALTH_H
#define PC_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/event_struct.h>

struct pc_req;
struct pc_worker;
struct pc_buf;

/* One readiness check in flight: a non-blocking connect to the upstream.
 * It belongs to whoever asked (a request, an admin connection) and is
 * cancelled with it. */
typedef void (*pc_ready_cb)(void *arg, const char *dep, const char *why);

struct pc_ready {
    int fd;                     /* the probe's socket; -1 when none */
    struct event ev;
    pc_ready_cb cb;
    void *arg;
};

/*
 * Check readiness: cb(arg, NULL, NULL) when ready, else cb(arg, dep, why)
 * with dep "draining", "database" or "upstream". sa is the upstream's
 * address (NULL: it does not resolve); the connect gets at most
 * timeout_ms. cb may run before this returns; afterwards it runs from
 * base's loop, unless pc_ready_cancel() comes first.
 */
void pc_ready_check(struct pc_ready *rd, struct event_base *base, int draining, struct pc_worker *const *ws, int n,
                    const struct sockaddr_storage *sa, socklen_t salen, int64_t timeout_ms, pc_ready_cb cb, void *arg);
void pc_ready_init(struct pc_ready *rd);
void pc_ready_cancel(struct pc_ready *rd);

/* The readiness body: {"status":"ready"} when dep is NULL, else
 * {"status":"unavailable","failing":dep,"message":why}. */
void pc_health_body(struct pc_buf *b, const char *dep, const char *why);

/* Answer r, which judge found to target health_path or ready_path. */
void pc_health_handle(struct pc_req *r);

#endif
