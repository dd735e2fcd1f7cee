/*
 * portcullis: the upstream's address. A numeric upstream is used as is. A
 * name (docker compose's "api") is resolved by a background thread every
 * few seconds and whenever a connect fails, so that the proxy can start
 * before the backend exists and follows it when its address changes,
 * without a blocking DNS lookup in any event loop.
 */
#ifndef PC_RESOLVE_H
#define PC_RESOLVE_H

#include <sys/socket.h>

struct pc_addr;

/* Start (or retarget, on reload) resolving a's host. No-op when numeric. */
void pc_resolver_set(const struct pc_addr *a);
/* The address to connect to for a (the admin listener's probe; workers
 * use their pushed copy): 0, or -1 when the name has not resolved. */
int pc_resolver_get(const struct pc_addr *a, struct sockaddr_storage *sa, socklen_t *len);
/* A connect failed: resolve again now. */
void pc_resolver_kick(void);

/* Where the resolver pushes each new address (on its own thread, without
 * its lock held): the server mails every worker a copy, so that no
 * upstream acquire ever takes a lock. One subscriber. */
struct pc_upaddr {
    char host[256];
    int port;
    struct sockaddr_storage sa;
    socklen_t len;
    int ok;
};
void pc_resolver_subscribe(void (*fn)(void *arg, const struct pc_upaddr *a), void *arg);

#endif
