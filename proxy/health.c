/*
 * portcullis: liveness and readiness (see health.h).
 */
#include "health.h"
#include "worker.h"
#include "upstream.h"
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PC_READY_CONNECT_MAX_MS 2000

void pc_health_body(struct pc_buf *b, const char *dep, const char *why)
{
    if (dep == NULL) {
        pc_buf_adds(b, "{\"status\":\"ready\"}\n");
        return;
    }
    pc_buf_adds(b, "{\"status\":\"unavailable\",\"failing\":\"");
    pc_buf_add_json_str(b, dep, strlen(dep));
    pc_buf_adds(b, "\",\"message\":\"");
    pc_buf_add_json_str(b, why, strlen(why));
    pc_buf_adds(b, "\"}\n");
}

void pc_ready_init(struct pc_ready *rd)
{
    rd->fd = -1;
}

void pc_ready_cancel(struct pc_ready *rd)
{
    if (rd->fd < 0)
        return;
    event_del(&rd->ev);
    close(rd->fd);
    rd->fd = -1;
}

static const char *ready_connect_error(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return "upstream refused the connection";
    case ETIMEDOUT:
        return "upstream connect timeout";
    default:
        return "cannot connect to upstream";
    }
}

static void ready_probe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pc_ready *rd = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    if (what & EV_TIMEOUT)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    pc_ready_cancel(rd);
    if (err != 0)
        rd->cb(rd->arg, "upstream", ready_connect_error(err));
    else
        rd->cb(rd->arg, NULL, NULL);
}

void pc_ready_check(struct pc_ready *rd, struct event_base *base, int draining, struct pc_worker *const *ws, int n,
                    const struct sockaddr_storage *sa, socklen_t salen, int64_t timeout_ms, pc_ready_cb cb, void *arg)
{
    char why[64];
    rd->fd = -1;
    if (draining) {
        cb(arg, "draining", "shutting down");
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct dec_counters *dc = &ws[i]->metrics->dec;
        if (dec_counters_configured(dc) && !dec_counters_ready(dc)) {
            snprintf(why, sizeof(why), "worker %d has no database connection up", i);
            cb(arg, "database", why);
            return;
        }
    }
    if (sa == NULL) {
        cb(arg, "upstream", "upstream host does not resolve");
        return;
    }
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cb(arg, "upstream", "cannot create upstream socket");
        return;
    }
    if (connect(fd, (const struct sockaddr *)sa, salen) == 0) {
        close(fd);
        cb(arg, NULL, NULL);
        return;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        cb(arg, "upstream", ready_connect_error(e));
        return;
    }
    int64_t t = PC_MIN(timeout_ms, PC_READY_CONNECT_MAX_MS);
    struct timeval tv = {(time_t)(t / 1000), (suseconds_t)((t % 1000) * 1000)};
    rd->fd = fd;
    rd->cb = cb;
    rd->arg = arg;
    event_assign(&rd->ev, base, fd, EV_WRITE, ready_probe_cb, rd);
    event_add(&rd->ev, &tv);
}

static void health_ready_done(void *arg, const char *dep, const char *why)
{
    struct pc_req *r = arg;
    struct pc_buf b = {0};
    pc_health_body(&b, dep, why);
    r->reason = dep;
    pc_req_local_reply(r, dep ? 503 : 200, b.p, b.len, NULL);
    pc_buf_free(&b);
}

void pc_health_handle(struct pc_req *r)
{
    if (r->h.method_id != H1_M_GET && r->h.method_id != H1_M_HEAD) {
        static const char body[] = "{\"code\":\"method_not_allowed\",\"message\":\"use GET\",\"status\":405}\n";
        pc_req_local_reply(r, 405, body, sizeof(body) - 1, "Allow: GET, HEAD\r\n");
        return;
    }
    /* judge matched health_path or ready_path */
    if (strcmp(r->canon.path, r->cfg->health_path) == 0) {
        static const char body[] = "{\"status\":\"ok\"}\n";
        pc_req_local_reply(r, 200, body, sizeof(body) - 1, NULL);
        return;
    }
    struct pc_worker *w = r->w;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int resolves = up_address(w, r->cfg, &sa, &salen) == 0;
    pc_ready_check(&r->ready, w->base, w->draining, w->peers, w->npeers, resolves ? &sa : NULL, salen,
                   r->cfg->timeouts.connect, health_ready_done, r);
}
