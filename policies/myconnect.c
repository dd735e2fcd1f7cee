/*
 * portcullis: one MySQL connect attempt on a thread of its own (see my.h).
 *
 * Connector/C's TLS handshake and host-name resolution block the calling
 * thread whatever the API, so a worker's loop never makes them: a
 * short-lived thread runs the blocking connect (bounded by the library's
 * connect, read and write timeouts) and says it is done through an
 * eventfd; the loop then takes the connected handle and does everything
 * else itself. The thread never runs a query.
 *
 * Ownership: the attempt has two references, the loop's and the thread's;
 * the last one to let go frees it. A loop that gives up (its connect timer
 * fired, a reload, shutdown) lets go at once; the thread then closes the
 * handle it gets, on its own time.
 */
#include "my.h"
#include "gen.h"
#include "../lib/base.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#define MY_THREAD_STACK (512 * 1024)

struct my_attempt {
    int refs;                   /* atomic: the loop's and the thread's */
    int finished;               /* atomic: the thread stored its outcome */
    int taken;                  /* the loop took m */
    int efd;
    struct event ev;
    int ev_on;
    struct pol_gen *gen;        /* a reference: the loop may drop its own */
    void (*done)(void *arg);
    void *arg;
    MYSQL *m;                   /* the outcome: connected, or NULL with err */
    char err[256];
};

static void my_attempt_unref(struct my_attempt *a)
{
    if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (a->m != NULL && !a->taken) {
        /* nobody wants it: the socket is shut first, so COM_QUIT cannot wait */
        mariadb_cancel(a->m);
        mysql_close(a->m);
    }
    close(a->efd);
    pol_gen_unref(a->gen);
    free(a);
}

static void *my_attempt_main(void *arg)
{
    struct my_attempt *a = arg;
    uint64_t one = 1;
    mysql_thread_init();
    a->m = my_connect_blocking(&a->gen->db, my_io_timeout_ms(a->gen), a->err, sizeof(a->err));
    __atomic_store_n(&a->finished, 1, __ATOMIC_RELEASE);
    /* the eventfd stays open while this thread holds its reference */
    while (write(a->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    my_attempt_unref(a); /* may close a->m: before mysql_thread_end */
    mysql_thread_end();
    return NULL;
}

static void my_attempt_cb(evutil_socket_t fd, short what, void *arg)
{
    struct my_attempt *a = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    if (!__atomic_load_n(&a->finished, __ATOMIC_ACQUIRE))
        return; /* not yet (cannot happen: the thread writes after finishing) */
    event_del(&a->ev);
    a->ev_on = 0;
    a->done(a->arg);
}

struct my_attempt *my_attempt_start(struct event_base *base, struct pol_gen *gen, void (*done)(void *arg),
                                    void *arg, char *why, size_t whylen)
{
    struct my_attempt *a = pc_calloc(1, sizeof(*a));
    pthread_attr_t attr;
    pthread_t th;
    sigset_t all, old;
    int rc;

    my_library_init();
    a->refs = 2;
    a->gen = pol_gen_ref(gen);
    a->done = done;
    a->arg = arg;
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->efd < 0) {
        snprintf(why, whylen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    event_assign(&a->ev, base, a->efd, EV_READ | EV_PERSIST, my_attempt_cb, a);
    if (event_add(&a->ev, NULL) != 0) {
        snprintf(why, whylen, "cannot watch the connect thread");
        goto fail;
    }
    a->ev_on = 1;
    if ((rc = pthread_attr_init(&attr)) != 0) {
        snprintf(why, whylen, "pthread_attr_init: %s", strerror(rc));
        goto fail;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, MY_THREAD_STACK);
    /* signals stay with the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&th, &attr, my_attempt_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        snprintf(why, whylen, "cannot start a connect thread: %s", strerror(rc));
        goto fail;
    }
    return a;
fail:
    if (a->ev_on)
        event_del(&a->ev);
    if (a->efd >= 0)
        close(a->efd);
    pol_gen_unref(a->gen);
    free(a);
    return NULL;
}

MYSQL *my_attempt_take(struct my_attempt *a, char *err, size_t errlen)
{
    MYSQL *m = a->m;
    if (a->ev_on) {
        event_del(&a->ev);
        a->ev_on = 0;
    }
    a->taken = 1;
    if (m == NULL)
        snprintf(err, errlen, "%s", a->err);
    my_attempt_unref(a);
    return m;
}

void my_attempt_abandon(struct my_attempt *a)
{
    if (a->ev_on) {
        event_del(&a->ev);
        a->ev_on = 0;
    }
    my_attempt_unref(a);
}
