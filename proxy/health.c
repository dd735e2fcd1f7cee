/*
 * portcullis: liveness and readiness.
 *
 * health_path: 200 while the process runs.
 * ready_path: 200 only when every worker has a database connection up (if
 * policies are configured) and the upstream accepts a TCP connection right
 * now; otherwise 503 naming the failing dependency. Every worker, not just
 * the one answering: the kernel spreads the next connection over all of
 * them, so "ready" must hold whichever one takes it.
 */
#include "health.h"
#include "worker.h"
#include "upstream.h"
#include "reply.h"
#include "../lib/log.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

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

int pc_health_db_ready(struct pc_worker *const *ws, int n, char *why, size_t whylen)
{
    for (int i = 0; i < n; i++) {
        const struct dec_counters *dc = &ws[i]->metrics->dec;
        if (dec_counters_configured(dc) && !dec_counters_ready(dc)) {
            snprintf(why, whylen, "worker %d has no database connection up", i);
            return 0;
        }
    }
    return 1;
}

static void health_reply(struct pc_req *r, const char *dep, const char *why)
{
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
    struct pc_worker *w = r->c->w;
    char dbwhy[64];
    if (!pc_health_db_ready(w->peers, w->npeers, dbwhy, sizeof(dbwhy))) {
        health_reply(r, "database", dbwhy);
        return;
    }
    int status = 0;
    const char *why = NULL;
    r->ready_probe = 1;
    int rc = up_probe(w, r, &status, &why);
    if (rc == UP_FAIL)
        pc_health_probe_done(r, 0, why);
    else if (rc == UP_READY)
        pc_health_probe_done(r, 1, NULL);
}

void pc_health_probe_done(struct pc_req *r, int ok, const char *why)
{
    if (r->up != NULL)
        up_release(r->up, 0);
    r->ready_probe = 0;
    if (!ok)
        health_reply(r, "upstream", why ? why : "upstream unreachable");
    else
        health_reply(r, NULL, NULL);
}
