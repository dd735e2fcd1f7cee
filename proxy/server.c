/*
 * portcullis: main thread and worker threads.
 */
#include "server.h"
#include "worker.h"
#include "upstream.h"
#include "admin.h"
#include "../lib/log.h"
#include "accesslog.h"
#include "metrics.h"
#include "resolve.h"
#include "../policies/gen.h"
#include "../policies/policy.h"
#include "../policies/tokcache.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>

int64_t pc_active_connections;

struct pc_server {
    struct event_base *base;
    struct pc_config *cfg;
    const char *config_path;
    struct pc_worker **workers;
    int nworkers;
    struct event *ev_term, *ev_int, *ev_hup, *ev_check;
    int draining;
    int64_t drain_deadline;
    struct pc_admin *admin;
    /* a reload loads and checks the new config on a thread of its own (the
     * database check blocks), so that the admin listener, which this thread
     * serves, never waits on it; the thread says it is done through an
     * eventfd and is joined here */
    pthread_t reload_thread;
    int reloading;
    int reload_again;               /* a SIGHUP came during a reload */
    int reload_fd;
    struct event *ev_reload;
    struct pc_config *reload_cfg;   /* the thread's result */
    int reload_db_rc;
    char *reload_errors;
};

/* ---- config loading with the database check ---- */

static uint64_t pc_generation_seq;

struct pc_config *pc_server_load_config(const char *path, int *db_rc, char **errors)
{
    struct pc_config *cfg = cfg_load(path, NULL, errors);
    *db_rc = 0;
    if (cfg == NULL)
        return NULL;
    char *dberr = NULL, *dbwarn = NULL;
    int rc = pol_check_database(cfg->pol, &dberr, &dbwarn);
    if (dbwarn != NULL) {
        /* policies left out, an unknown schema version: with the config's own */
        char *all = pc_sprintf("%s%s", cfg->warnings ? cfg->warnings : "", dbwarn);
        free(cfg->warnings);
        free(dbwarn);
        cfg->warnings = all;
    }
    if (rc < 0) {
        *errors = dberr;
        cfg_unref(cfg);
        return NULL;
    }
    *db_rc = rc;
    *errors = dberr; /* unreachable: a warning */
    cfg->generation = __atomic_add_fetch(&pc_generation_seq, 1, __ATOMIC_RELAXED);
    char *iw = cfg_install(cfg);
    if (iw != NULL) {
        char *all = pc_sprintf("%s%s", cfg->warnings ? cfg->warnings : "", iw);
        free(cfg->warnings);
        free(iw);
        cfg->warnings = all;
    }
    return cfg;
}

/* ---- listeners ---- */

static int pc_listen_socket(const struct pc_addr *a, int reuseport)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (a->sa.ss_family == AF_INET6) {
        int zero = 0; /* [::] serves IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) != 0)
        goto fail;
    if (listen(fd, 4096) != 0)
        goto fail;
    return fd;
fail: {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}
}

/* ---- workers ---- */

static void worker_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_worker *w = arg;
    PC_UNUSED(what);
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (pc_listener_starved(&w->listener))
                return; /* paused; existing connections go on */
            continue; /* ECONNABORTED, EINTR, ... */
        }
        int64_t limit = w->cfg->limits.connections;
        int over = limit > 0 && __atomic_load_n(&pc_active_connections, __ATOMIC_RELAXED) >= limit;
        pc_conn_accept(w, cfd, (struct sockaddr *)&ss, len);
        if (over)
            pc_conn_over_limit(TAILQ_LAST(&w->conns, pc_conn_list));
    }
}

static void worker_stop_if_drained(struct pc_worker *w)
{
    if (w->draining && w->nconns == 0)
        event_base_loopbreak(w->base);
}

void pc_worker_conn_gone(struct pc_worker *w)
{
    worker_stop_if_drained(w);
}

static void worker_mail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_worker *w = arg;
    uint64_t v;
    PC_UNUSED(what);
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        pc_log(PC_LOG_WARN, "worker %d: mailbox read: %s", w->id, strerror(errno));
    pthread_mutex_lock(&w->mail_lock);
    struct pc_mail *m = w->mail_head;
    w->mail_head = w->mail_tail = NULL;
    pthread_mutex_unlock(&w->mail_lock);
    while (m != NULL) {
        struct pc_mail *next = m->next;
        switch (m->kind) {
        case PC_MAIL_CONFIG: {
            struct pc_config *old = w->cfg;
            w->cfg = m->cfg; /* the mail's reference becomes the worker's */
            dec_ctx_set_config(w->dec, w->cfg->pol);
            tokcache_clear(w->tokens);
            cfg_unref(old);
            break;
        }
        case PC_MAIL_DRAIN: {
            w->draining = 1;
            if (w->listen_fd >= 0) {
                pc_listener_stop(&w->listener);
                close(w->listen_fd);
                w->listen_fd = -1;
            }
            struct pc_conn *c = TAILQ_FIRST(&w->conns);
            while (c != NULL) {
                struct pc_conn *cn = TAILQ_NEXT(c, link);
                pc_conn_drain(c);
                c = cn;
            }
            worker_stop_if_drained(w);
            break;
        }
        case PC_MAIL_STOP:
            event_base_loopbreak(w->base);
            break;
        case PC_MAIL_ADDR:
            w->upaddr = m->addr;
            break;
        }
        free(m);
        m = next;
    }
}

static void worker_log_cb(evutil_socket_t fd, short what, void *arg)
{
    PC_UNUSED(fd);
    PC_UNUSED(what);
    pc_log_flush(arg);
}

static void pc_worker_mail(struct pc_worker *w, int kind, struct pc_config *cfg, const struct pc_upaddr *addr)
{
    struct pc_mail *m = pc_calloc(1, sizeof(*m));
    uint64_t one = 1;
    m->kind = kind;
    m->cfg = cfg;
    if (addr != NULL)
        m->addr = *addr;
    pthread_mutex_lock(&w->mail_lock);
    if (w->mail_tail)
        w->mail_tail->next = m;
    else
        w->mail_head = m;
    w->mail_tail = m;
    pthread_mutex_unlock(&w->mail_lock);
    if (write(w->mail_fd, &one, sizeof(one)) < 0)
        pc_log(PC_LOG_WARN, "worker %d: mailbox write: %s", w->id, strerror(errno));
}

static struct pc_worker *pc_worker_new(int id, struct pc_worker *const *peers, int nworkers,
                                       struct pc_config *cfg, int listen_fd, const char *id_prefix)
{
    struct pc_worker *w = pc_calloc(1, sizeof(*w));
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        free(w);
        return NULL;
    }
    /* the mailbox first: a worker that cannot be told to reload or drain
     * must not start */
    w->mail_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    event_assign(&w->mail_ev, w->base, w->mail_fd, EV_READ | EV_PERSIST, worker_mail_cb, w);
    if (w->mail_fd < 0 || event_add(&w->mail_ev, NULL) != 0) {
        int e = errno;
        if (w->mail_fd >= 0)
            close(w->mail_fd);
        event_base_free(w->base);
        free(w);
        errno = e;
        return NULL;
    }
    w->id = id;
    w->peers = peers;
    w->npeers = nworkers;
    w->cfg = cfg_ref(cfg);
    w->listen_fd = listen_fd;
    TAILQ_INIT(&w->conns);
    SLIST_INIT(&w->req_free);
    w->pool = up_pool_new();
    w->metrics = pc_calloc(1, sizeof(*w->metrics));
    w->tokens = tokcache_new(10000);
    snprintf(w->id_prefix, sizeof(w->id_prefix), "%s", id_prefix);
    w->dec = dec_ctx_new(w->base, id, nworkers, cfg->pol, NULL, &w->metrics->dec);
    pthread_mutex_init(&w->mail_lock, NULL);
    if (pc_listener_start(&w->listener, w->base, listen_fd, worker_accept_cb, w, "accept") != 0)
        return NULL; /* the process exits: what w holds goes with it */
    event_assign(&w->log_ev, w->base, -1, EV_PERSIST, worker_log_cb, w);
    struct timeval tv = {0, 200000};
    event_add(&w->log_ev, &tv);
    return w;
}

static void *pc_worker_main(void *arg)
{
    struct pc_worker *w = arg;
    event_base_dispatch(w->base);
    pc_log_flush(w);
    __atomic_store_n(&w->stopped, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ---- main thread ---- */

/* The resolver found a new upstream address: every worker gets a copy in
 * its mailbox (called on the resolver's thread). */
static void pc_server_push_addr(void *arg, const struct pc_upaddr *a)
{
    struct pc_server *s = arg;
    for (int i = 0; i < s->nworkers; i++)
        pc_worker_mail(s->workers[i], PC_MAIL_ADDR, NULL, a);
}

static void pc_server_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_server *s = arg;
    PC_UNUSED(fd);
    PC_UNUSED(what);
    int all = 1;
    for (int i = 0; i < s->nworkers; i++)
        if (!__atomic_load_n(&s->workers[i]->stopped, __ATOMIC_ACQUIRE))
            all = 0;
    if (all) {
        event_base_loopbreak(s->base);
        return;
    }
    if (pc_now_ms() >= s->drain_deadline) {
        pc_log(PC_LOG_WARN, "drain timeout reached with connections still open; exiting");
        event_base_loopbreak(s->base);
    }
}

static void pc_server_drain(struct pc_server *s, int sig)
{
    if (s->draining) {
        pc_log(PC_LOG_WARN, "second signal %d during drain; exiting now", sig);
        event_base_loopbreak(s->base);
        return;
    }
    s->draining = 1;
    s->drain_deadline = pc_now_ms() + s->cfg->timeouts.drain;
    pc_log(PC_LOG_INFO, "signal %d: draining (up to %lld ms)", sig, (long long)s->cfg->timeouts.drain);
    pc_admin_draining(s->admin);
    for (int i = 0; i < s->nworkers; i++)
        pc_worker_mail(s->workers[i], PC_MAIL_DRAIN, NULL, NULL);
    s->ev_check = event_new(s->base, -1, EV_PERSIST, pc_server_check_cb, s);
    struct timeval tv = {0, 20000};
    event_add(s->ev_check, &tv);
}

static void *pc_reload_main(void *arg)
{
    struct pc_server *s = arg;
    uint64_t one = 1;
    s->reload_cfg = pc_server_load_config(s->config_path, &s->reload_db_rc, &s->reload_errors);
    if (write(s->reload_fd, &one, sizeof(one)) < 0)
        pc_log(PC_LOG_ERROR, "reload: cannot wake the main thread: %s", strerror(errno));
    return NULL;
}

static void pc_server_reload_start(struct pc_server *s)
{
    if (s->reloading) {
        s->reload_again = 1;
        return;
    }
    pc_log(PC_LOG_INFO, "SIGHUP: reloading %s", s->config_path);
    s->reloading = 1;
    s->reload_cfg = NULL;
    s->reload_errors = NULL;
    s->reload_db_rc = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);    /* signals stay with the main thread */
    int rc = pthread_create(&s->reload_thread, NULL, pc_reload_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        s->reloading = 0;
        pc_log(PC_LOG_ERROR, "reload failed, keeping generation %llu: cannot start the reload thread",
               (unsigned long long)s->cfg->generation);
        pc_metrics_reload(0);
    }
}

/* The reload thread is done: install what it loaded, or say why not. */
static void pc_server_reload_done(struct pc_server *s)
{
    int db_rc = s->reload_db_rc;
    char *errors = s->reload_errors;
    struct pc_config *cfg = s->reload_cfg;
    if (s->draining) {
        cfg_unref(cfg);
        free(errors);
        return;
    }
    if (cfg == NULL) {
        pc_log(PC_LOG_ERROR, "reload failed, keeping generation %llu: %s",
               (unsigned long long)s->cfg->generation, errors ? errors : "?");
        free(errors);
        pc_metrics_reload(0);
        return;
    }
    if (db_rc == 1 && errors)
        pc_log(PC_LOG_WARN, "reload: %s", errors);
    free(errors);
    if (strcmp(cfg->listen.text, s->cfg->listen.text) != 0 || cfg->workers != s->cfg->workers ||
        ((cfg->admin_listen.text == NULL) != (s->cfg->admin_listen.text == NULL)) ||
        (cfg->admin_listen.text && strcmp(cfg->admin_listen.text, s->cfg->admin_listen.text) != 0))
        pc_log(PC_LOG_WARN, "reload: listen, admin_listen and workers take effect only after a restart");
    pc_log_configure(cfg->log_format, cfg->log_level);
    if (cfg->warnings != NULL)
        pc_log(PC_LOG_WARN, "reload: %s", cfg->warnings);
    pc_resolver_set(&cfg->upstream);
    for (int i = 0; i < s->nworkers; i++)
        pc_worker_mail(s->workers[i], PC_MAIL_CONFIG, cfg_ref(cfg), NULL);
    pc_admin_set_config(s->admin, cfg);
    cfg_unref(s->cfg);
    s->cfg = cfg;
    pc_metrics_reload(1);
    pc_metrics_set_generation(cfg->generation);
    pc_log(PC_LOG_INFO, "reloaded: generation %llu", (unsigned long long)cfg->generation);
}

static void pc_server_reload_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_server *s = arg;
    uint64_t v;
    PC_UNUSED(what);
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_join(s->reload_thread, NULL);   /* its results happen before this */
    s->reloading = 0;
    pc_server_reload_done(s);
    if (s->reload_again && !s->draining) {
        s->reload_again = 0;
        pc_server_reload_start(s);
    }
}

static void pc_server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct pc_server *s = arg;
    PC_UNUSED(what);
    if (sig == SIGHUP) {
        if (!s->draining)
            pc_server_reload_start(s);
        return;
    }
    pc_server_drain(s, (int)sig);
}

static void pc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void pc_server_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int pc_server_run(const char *config_path, struct pc_config *cfg)
{
    struct pc_server s = {0};
    int rc = 1;
    char prefix[9];
    unsigned char rnd[4];

    s.cfg = cfg;
    s.config_path = config_path;
    /* Until the handlers are in place, TERM/INT/HUP wait: a SIGHUP sent as
     * soon as the port accepts must not kill the process (its default
     * action). Threads started meanwhile inherit the mask and keep it. */
    sigset_t set;
    pc_server_block_signals(&set);
    pc_log_configure(cfg->log_format, cfg->log_level);
    pc_metrics_set_generation(cfg->generation);
    signal(SIGPIPE, SIG_IGN);
    pc_raise_nofile();
    if (cfg->warnings != NULL)
        pc_log(PC_LOG_WARN, "%s", cfg->warnings);
    pc_resolver_set(&cfg->upstream);
    if (pc_random(rnd, sizeof(rnd)) != 0)
        memset(rnd, 0, sizeof(rnd));
    snprintf(prefix, sizeof(prefix), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);

    s.base = event_base_new();
    if (s.base == NULL) {
        pc_log(PC_LOG_ERROR, "cannot create event base");
        goto out;
    }
    /* before any worker thread: a reload that could never report back
     * would leave every later SIGHUP ignored */
    s.reload_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s.reload_fd < 0) {
        pc_log(PC_LOG_ERROR, "cannot create the reload event: %s", strerror(errno));
        goto out;
    }
    s.nworkers = cfg->workers;
    s.workers = pc_calloc((size_t)s.nworkers, sizeof(*s.workers));
    /* the admin listener first: once the public port accepts, every
     * listener does */
    if (cfg->admin_listen.text != NULL) {
        s.admin = pc_admin_new(s.base, cfg, s.workers, s.nworkers);
        if (s.admin == NULL)
            goto out;
    }
    for (int i = 0; i < s.nworkers; i++) {
        int fd = pc_listen_socket(&cfg->listen, 1);
        if (fd < 0) {
            pc_log(PC_LOG_ERROR, "cannot listen on %s: %s", cfg->listen.text, strerror(errno));
            goto out;
        }
        s.workers[i] = pc_worker_new(i, s.workers, s.nworkers, cfg, fd, prefix);
        if (s.workers[i] == NULL) {
            pc_log(PC_LOG_ERROR, "cannot create worker %d: %s", i, strerror(errno));
            close(fd);
            goto out;
        }
    }

    pc_metrics_set_workers(s.workers, s.nworkers);
    pc_resolver_subscribe(pc_server_push_addr, &s);
    /* workers never see SIGTERM/SIGINT/SIGHUP: the main thread handles them */
    for (int i = 0; i < s.nworkers; i++) {
        if (pthread_create(&s.workers[i]->thread, NULL, pc_worker_main, s.workers[i]) != 0) {
            pc_log(PC_LOG_ERROR, "cannot start worker thread %d", i);
            _exit(1);
        }
    }
    s.ev_term = evsignal_new(s.base, SIGTERM, pc_server_signal_cb, &s);
    s.ev_int = evsignal_new(s.base, SIGINT, pc_server_signal_cb, &s);
    s.ev_hup = evsignal_new(s.base, SIGHUP, pc_server_signal_cb, &s);
    s.ev_reload = event_new(s.base, s.reload_fd, EV_READ | EV_PERSIST, pc_server_reload_cb, &s);
    if (s.ev_term == NULL || s.ev_int == NULL || s.ev_hup == NULL || s.ev_reload == NULL ||
        event_add(s.ev_reload, NULL) != 0 || event_add(s.ev_term, NULL) != 0 || event_add(s.ev_int, NULL) != 0 ||
        event_add(s.ev_hup, NULL) != 0) {
        /* the workers run already: no way back but out */
        pc_log(PC_LOG_ERROR, "cannot watch signals: %s", strerror(errno));
        _exit(1);
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* a pending signal is delivered now */

    pc_log(PC_LOG_INFO, "portcullis %s listening on %s, upstream %s, %d workers, generation %llu",
           PC_VERSION, cfg->listen.text, cfg->upstream.text, s.nworkers,
           (unsigned long long)cfg->generation);
    event_base_dispatch(s.base);

    /* Drained (or timed out): threads that finished are joined; the
     * process exits either way. */
    for (int i = 0; i < s.nworkers; i++)
        if (__atomic_load_n(&s.workers[i]->stopped, __ATOMIC_ACQUIRE))
            pthread_join(s.workers[i]->thread, NULL);
    pc_log(PC_LOG_INFO, "stopped");
    fflush(stdout);
    rc = 0;
    _exit(rc);
out:
    return rc;
}
