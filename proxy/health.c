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
#include "log.h"

#include <stdio.h>
#include <string.h>

static void health_unavailable(struct pc_req *r, const char *dep, const char *why)
{
    struct pc_buf b = {0};
    pc_buf_adds(&b, "{\"status\":\"unavailable\",\"failing\":\"");
    pc_buf_add_json_str(&b, dep, strlen(dep));
    pc_buf_adds(&b, "\",\"message\":\"");
    pc_buf_add_json_str(&b, why, strlen(why));
    pc_buf_adds(&b, "\"}\n");
    r->reason = dep;
    pc_req_local_reply(r, 503, b.p, b.len, NULL);
    pc_buf_free(&b);
}

int pc_health_db_unready(struct pc_worker *const *ws, int n)
{
    for (int i = 0; i < n; i++)
        if (dec_ctx_db_configured(ws[i]->dec) && !dec_ctx_ready(ws[i]->dec))
            return i;
    return -1;
}

int pc_health_handle(struct pc_req *r)
{
    const struct pc_config *cfg = r->cfg;
    int is_health = strcmp(r->canon.path, cfg->health_path) == 0;
    int is_ready = strcmp(r->canon.path, cfg->ready_path) == 0;
    if (!is_health && !is_ready)
        return 0;
    r->decision = PC_D_LOCAL;
    if (r->h.method_id != H1_M_GET && r->h.method_id != H1_M_HEAD) {
        static const char body[] = "{\"code\":\"method_not_allowed\",\"message\":\"use GET\",\"status\":405}\n";
        pc_req_local_reply(r, 405, body, sizeof(body) - 1, "Allow: GET, HEAD\r\n");
        return 1;
    }
    if (is_health) {
        static const char body[] = "{\"status\":\"ok\"}\n";
        pc_req_local_reply(r, 200, body, sizeof(body) - 1, NULL);
        return 1;
    }
    struct pc_worker *w = r->c->w;
    int unready = pc_health_db_unready(w->peers, w->npeers);
    if (unready >= 0) {
        char why[64];
        snprintf(why, sizeof(why), "worker %d has no database connection up", unready);
        health_unavailable(r, "database", why);
        return 1;
    }
    int status = 0;
    const char *why = NULL;
    r->ready_probe = 1;
    int rc = up_probe(w, r, &status, &why);
    if (rc == UP_FAIL)
        pc_health_probe_done(r, 0, why);
    else if (rc == UP_READY)
        pc_health_probe_done(r, 1, NULL);
    return 1;
}

void pc_health_probe_done(struct pc_req *r, int ok, const char *why)
{
    if (r->up != NULL)
        up_release(r->up, 0);
    r->ready_probe = 0;
    if (!ok) {
        health_unavailable(r, "upstream", why ? why : "upstream unreachable");
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}\n";
    pc_req_local_reply(r, 200, body, sizeof(body) - 1, NULL);
}
