/*
 * portcullis: background resolution of the upstream's name (see resolve.h).
 */
#include "resolve.h"
#include "../lib/log.h"
#include "config.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PC_RESOLVE_EVERY_S 5

static pthread_mutex_t rs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rs_cond = PTHREAD_COND_INITIALIZER;
static int rs_started, rs_kicked;
static char rs_host[256];
static int rs_port;
static struct sockaddr_storage rs_sa;
static socklen_t rs_len;
static int rs_ok;
static void (*rs_sub)(void *arg, const struct pc_upaddr *a);
static void *rs_sub_arg;

void pc_resolver_subscribe(void (*fn)(void *arg, const struct pc_upaddr *a), void *arg)
{
    struct pc_upaddr now = {0};
    pthread_mutex_lock(&rs_lock);
    rs_sub = fn;
    rs_sub_arg = arg;
    if (rs_ok) { /* what was resolved before anyone listened */
        snprintf(now.host, sizeof(now.host), "%s", rs_host);
        now.port = rs_port;
        memcpy(&now.sa, &rs_sa, rs_len);
        now.len = rs_len;
        now.ok = 1;
    }
    pthread_mutex_unlock(&rs_lock);
    if (now.ok)
        fn(arg, &now);
}

static void *pc_resolver_main(void *arg)
{
    PC_UNUSED(arg);
    char host[256], port[16], last_err[256] = "";
    pthread_mutex_lock(&rs_lock);
    for (;;) {
        snprintf(host, sizeof(host), "%s", rs_host);
        snprintf(port, sizeof(port), "%d", rs_port);
        rs_kicked = 0;
        pthread_mutex_unlock(&rs_lock);

        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_family = AF_UNSPEC;
        hints.ai_flags = AI_NUMERICSERV;
        int rc = getaddrinfo(host, port, &hints, &res);

        struct pc_upaddr push = {0};
        pthread_mutex_lock(&rs_lock);
        if (strcmp(host, rs_host) == 0) { /* not retargeted meanwhile */
            if (rc == 0 && res != NULL) {
                if (!rs_ok || rs_len != res->ai_addrlen || memcmp(&rs_sa, res->ai_addr, res->ai_addrlen) != 0) {
                    pc_log(PC_LOG_INFO, "upstream %s resolved", host);
                    push.ok = 1;
                }
                memcpy(&rs_sa, res->ai_addr, res->ai_addrlen);
                rs_len = res->ai_addrlen;
                rs_ok = 1;
                last_err[0] = '\0';
                if (push.ok) {
                    snprintf(push.host, sizeof(push.host), "%s", rs_host);
                    push.port = rs_port;
                    memcpy(&push.sa, &rs_sa, rs_len);
                    push.len = rs_len;
                }
            } else if (strcmp(last_err, gai_strerror(rc)) != 0) {
                /* keep the last good address: DNS blips must not cut service */
                snprintf(last_err, sizeof(last_err), "%s", gai_strerror(rc));
                pc_log(PC_LOG_WARN, "cannot resolve upstream %s: %s%s", host, last_err,
                       rs_ok ? " (keeping the last address)" : "");
            }
        }
        if (res != NULL)
            freeaddrinfo(res);
        void (*sub)(void *, const struct pc_upaddr *) = rs_sub;
        void *sub_arg = rs_sub_arg;
        if (push.ok && sub != NULL) {
            pthread_mutex_unlock(&rs_lock);
            sub(sub_arg, &push);
            pthread_mutex_lock(&rs_lock);
        }
        if (!rs_kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += rs_ok ? PC_RESOLVE_EVERY_S : 1;
            pthread_cond_timedwait(&rs_cond, &rs_lock, &ts);
        }
    }
    return NULL;
}

void pc_resolver_set(const struct pc_addr *a)
{
    if (a->numeric)
        return;
    pthread_mutex_lock(&rs_lock);
    if (strcmp(rs_host, a->host) != 0 || rs_port != a->port) {
        snprintf(rs_host, sizeof(rs_host), "%s", a->host);
        rs_port = a->port;
        rs_ok = a->resolved;
        if (a->resolved) {
            memcpy(&rs_sa, &a->sa, a->len);
            rs_len = a->len;
        }
        rs_kicked = 1;
        pthread_cond_signal(&rs_cond);
    }
    if (!rs_started) {
        pthread_t t;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if (pthread_create(&t, NULL, pc_resolver_main, NULL) == 0) {
            pthread_detach(t);
            rs_started = 1;
        } else {
            pc_log(PC_LOG_ERROR, "cannot start the resolver thread");
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&rs_lock);
}

int pc_resolver_get(const struct pc_addr *a, struct sockaddr_storage *sa, socklen_t *len)
{
    if (a->numeric || !rs_started) {
        if (!a->resolved)
            return -1;
        memcpy(sa, &a->sa, a->len);
        *len = a->len;
        return 0;
    }
    int ok;
    pthread_mutex_lock(&rs_lock);
    ok = rs_ok && strcmp(rs_host, a->host) == 0 && rs_port == a->port;
    if (ok) {
        memcpy(sa, &rs_sa, rs_len);
        *len = rs_len;
    }
    pthread_mutex_unlock(&rs_lock);
    if (!ok && a->resolved) {
        memcpy(sa, &a->sa, a->len); /* the address found when the config loaded */
        *len = a->len;
        return 0;
    }
    return ok ? 0 : -1;
}

void pc_resolver_kick(void)
{
    if (!rs_started)
        return;
    pthread_mutex_lock(&rs_lock);
    rs_kicked = 1;
    pthread_cond_signal(&rs_cond);
    pthread_mutex_unlock(&rs_lock);
}
