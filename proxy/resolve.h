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
/* The address to connect to for a: 0, or -1 when the name has not resolved. */
int pc_resolver_get(const struct pc_addr *a, struct sockaddr_storage *sa, socklen_t *len);
/* A connect failed: resolve again now. */
void pc_resolver_kick(void);

#endif
