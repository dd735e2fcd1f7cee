/*
 * portcullis: admin listener. One request per connection, answered and
 * closed; small and boring on purpose.
 */
#include "admin.h"
#include "listener.h"
#include <event2/event_struct.h>
#include "worker.h"
#include "metrics.h"
#include "reply.h"
#include "../lib/log.h"
#include "resolve.h"
#include "health.h"
#include "../policies/schema.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define ADMIN_MAX_HEAD 8192

struct pc_admin {
    struct event_base *base;
    struct pc_config *cfg;
    struct pc_worker **workers;
    int nworkers;
    int fd;
    struct pc_listener listener;
    int draining;
};

struct admin_conn {
    struct pc_admin *a;
    int fd;
    struct event rev, wev, tev;
    char buf[ADMIN_MAX_HEAD];
    size_t len;
    struct h1_scan scan;
    struct pc_buf out;
    size_t off;
    int head_only;
    int handled;                    /* its one head is being answered */
    struct pc_ready ready;
};

static void admin_conn_free(struct admin_conn *ac)
{
    event_del(&ac->rev);
    event_del(&ac->wev);
    event_del(&ac->tev);
    pc_ready_cancel(&ac->ready);
    close(ac->fd);
    pc_buf_free(&ac->out);
    free(ac);
}

static void admin_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *ac = arg;
    PC_UNUSED(what);
    while (ac->off < ac->out.len) {
        ssize_t n = write(fd, ac->out.p + ac->off, ac->out.len - ac->off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(&ac->wev, NULL);
                return;
            }
            break;
        }
        ac->off += (size_t)n;
    }
    admin_conn_free(ac);
}

static void admin_respond(struct admin_conn *ac, int status, const char *ctype, const char *body, size_t len)
{
    event_del(&ac->rev);
    pc_reply_build(&ac->out, status, ctype, body, len, 1, ac->head_only, NULL, NULL);
    admin_write_cb(ac->fd, EV_WRITE, ac);
}

static void admin_ready_done(void *arg, const char *dep, const char *why)
{
    struct admin_conn *ac = arg;
    struct pc_buf b = {0};
    pc_health_body(&b, dep, why);
    admin_respond(ac, dep ? 503 : 200, "application/json", b.p, b.len);
    pc_buf_free(&b);
}

static void admin_metrics(void *arg, const char *dep, const char *why)
{
    struct admin_conn *ac = arg;
    struct pc_buf b = {0};
    PC_UNUSED(why);
    pc_metrics_render(&b, ac->a->workers, ac->a->nworkers, ac->a->cfg);
    pc_buf_addf(&b, "# HELP portcullis_ready 1 when ready_path answers 200 now (the same check), else 0.\n"
                    "# TYPE portcullis_ready gauge\nportcullis_ready %d\n", dep == NULL);
    admin_respond(ac, 200, "text/plain; version=0.0.4", b.p, b.len);
    pc_buf_free(&b);
}

/* The readiness check of both listeners (health.h), then cb. */
static void admin_readiness(struct admin_conn *ac, pc_ready_cb cb)
{
    struct pc_admin *a = ac->a;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int resolves = pc_resolver_get(&a->cfg->upstream, &sa, &salen) == 0;
    pc_ready_check(&ac->ready, a->base, a->draining, a->workers, a->nworkers, resolves ? &sa : NULL, salen,
                   a->cfg->timeouts.connect, cb, ac);
}

static void admin_handle(struct admin_conn *ac, const char *head, size_t len)
{
    struct h1_request *h = pc_malloc(sizeof(*h));
    const char *why;
    if (h1_parse_request(head, len, h, &why) != 0) {
        free(h);
        static const char body[] = "{\"code\":\"bad_request\",\"message\":\"bad request\",\"status\":400}\n";
        admin_respond(ac, 400, "application/json", body, sizeof(body) - 1);
        return;
    }
    char path[256];
    size_t pl = h->target_len;
    const char *q = memchr(h->target, '?', pl);
    if (q)
        pl = (size_t)(q - h->target);
    if (pl >= sizeof(path))
        pl = sizeof(path) - 1;
    memcpy(path, h->target, pl);
    path[pl] = '\0';
    int get = h->method_id == H1_M_GET || h->method_id == H1_M_HEAD;
    ac->head_only = h->method_id == H1_M_HEAD;
    free(h);
    if (!get) {
        static const char body[] = "{\"code\":\"method_not_allowed\",\"message\":\"use GET\",\"status\":405}\n";
        admin_respond(ac, 405, "application/json", body, sizeof(body) - 1);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        admin_readiness(ac, admin_metrics); /* portcullis_ready: the readiness check itself */
        return;
    }
    if (strcmp(path, "/status") == 0) {
        /* what the operator needs to know beyond readiness: the generation
         * serving, the database's schema version, and the policies that do
         * not fit the schema */
        struct pc_buf b = {0};
        pc_buf_addf(&b, "{\"generation\":%llu,", (unsigned long long)ac->a->cfg->generation);
        pol_report_json(&b);
        pc_buf_adds(&b, "}\n");
        admin_respond(ac, 200, "application/json", b.p, b.len);
        pc_buf_free(&b);
        return;
    }
    if (strcmp(path, ac->a->cfg->health_path) == 0) {
        static const char body[] = "{\"status\":\"ok\"}\n";
        admin_respond(ac, 200, "application/json", body, sizeof(body) - 1);
        return;
    }
    if (strcmp(path, ac->a->cfg->ready_path) == 0) {
        admin_readiness(ac, admin_ready_done);
        return;
    }
    static const char body[] = "{\"code\":\"not_found\",\"message\":\"not found\",\"status\":404}\n";
    admin_respond(ac, 404, "application/json", body, sizeof(body) - 1);
}

static void admin_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *ac = arg;
    if (what & EV_TIMEOUT) {
        admin_conn_free(ac);
        return;
    }
    if (ac->handled) {
        /* one request per connection: while it is answered (a readiness
         * check may take seconds) more bytes are discarded, never read as
         * a second head that would start a second check on ac->ready */
        char discard[512];
        ssize_t n = read(fd, discard, sizeof(discard));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            admin_conn_free(ac);
        return;
    }
    ssize_t n = read(fd, ac->buf + ac->len, sizeof(ac->buf) - ac->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        admin_conn_free(ac);
        return;
    }
    ac->len += (size_t)n;
    size_t start, end;
    int rc = h1_scan_head(&ac->scan, ac->buf, ac->len, 1, &start, &end);
    if (rc == H1_SCAN_DONE) {
        event_del(&ac->tev);
        ac->handled = 1;
        admin_handle(ac, ac->buf + start, end - start);
    } else if (rc != H1_SCAN_MORE || ac->len == sizeof(ac->buf)) {
        static const char body[] = "{\"code\":\"bad_request\",\"message\":\"bad request\",\"status\":400}\n";
        admin_respond(ac, 400, "application/json", body, sizeof(body) - 1);
    }
}

static void admin_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_admin *a = arg;
    PC_UNUSED(what);
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
        pc_listener_starved(&a->listener); /* out of descriptors: a pause, not a spin */
        return;
    }
    struct admin_conn *ac = pc_calloc(1, sizeof(*ac));
    ac->a = a;
    ac->fd = cfd;
    pc_ready_init(&ac->ready);
    event_assign(&ac->rev, a->base, cfd, EV_READ | EV_PERSIST, admin_read_cb, ac);
    event_assign(&ac->wev, a->base, cfd, EV_WRITE, admin_write_cb, ac);
    evtimer_assign(&ac->tev, a->base, admin_read_cb, ac);
    struct timeval tv = {5, 0};
    event_add(&ac->rev, NULL);
    event_add(&ac->tev, &tv);
}

struct pc_admin *pc_admin_new(struct event_base *base, struct pc_config *cfg,
                              struct pc_worker **workers, int nworkers)
{
    const struct pc_addr *addr = &cfg->admin_listen;
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)&addr->sa, addr->len) != 0 || listen(fd, 128) != 0) {
        pc_log(PC_LOG_ERROR, "cannot listen on admin_listen %s: %s", addr->text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct pc_admin *a = pc_calloc(1, sizeof(*a));
    a->base = base;
    a->cfg = cfg_ref(cfg);
    a->workers = workers;
    a->nworkers = nworkers;
    a->fd = fd;
    if (pc_listener_start(&a->listener, base, fd, admin_accept_cb, a, "admin accept") != 0) {
        pc_log(PC_LOG_ERROR, "cannot watch admin_listen %s: %s", addr->text, strerror(errno));
        cfg_unref(a->cfg);
        close(fd);
        free(a);
        return NULL;
    }
    return a;
}

void pc_admin_set_config(struct pc_admin *a, struct pc_config *cfg)
{
    if (a == NULL)
        return;
    cfg_unref(a->cfg);
    a->cfg = cfg_ref(cfg);
}

void pc_admin_draining(struct pc_admin *a)
{
    if (a != NULL)
        a->draining = 1;
}
