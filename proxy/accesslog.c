/*
 * portcullis: access logs (see accesslog.h).
 */
#include "accesslog.h"
#include "worker.h"
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void pc_json_field(struct pc_buf *b, const char *name, const char *v, size_t len)
{
    pc_buf_addf(b, ",\"%s\":", name);
    if (v == NULL) {
        pc_buf_adds(b, "null");
        return;
    }
    pc_buf_addc(b, '"');
    pc_buf_add_json_str(b, v, len);
    pc_buf_addc(b, '"');
}

void pc_log_format_access(struct pc_buf *b, const struct pc_req *r, enum pc_log_format fmt)
{
    char ts[40];
    int64_t now = pc_now_us();
    pc_log_timestamp(ts, sizeof(ts));
    /* the path without its query; the canonical one when there is one */
    const char *path = NULL;
    size_t path_len = 0;
    if (r->canon.path != NULL && r->canon.path_len > 0) {
        path = r->canon.path;
        path_len = r->canon.path_len;
    } else if (r->h.target != NULL) {
        path = r->h.target;
        const char *q = memchr(r->h.target, '?', r->h.target_len);
        path_len = q ? (size_t)(q - r->h.target) : r->h.target_len;
    }
    const char *rule = r->rule ? r->rule->name : NULL;
    const char *cache = r->cache_state == 1 ? "hit" : r->cache_state == 2 ? "miss" : NULL;
    double dur = (double)(now - r->t_start) / 1000.0;
    double pol = r->t_policy ? (double)((r->t_policy_end ? r->t_policy_end : now) - r->t_policy) / 1000.0 : -1;
    double up = r->t_up ? (double)((r->t_up_end ? r->t_up_end : now) - r->t_up) / 1000.0 : -1;
    const char *method = r->h.method_len ? r->h.method : NULL;
    /* did an entry of an operator data file (an access list) decide? */
    static const char *const data_names[] = {NULL, "false", "true", NULL};
    const char *data = data_names[r->data_decided];

    if (fmt == PC_LOG_TEXT) {
        pc_buf_addf(b, "%s %s %s \"", ts, r->request_id[0] ? r->request_id : "-", r->c->peer);
        if (method)
            pc_buf_add(b, method, r->h.method_len);
        pc_buf_addc(b, ' ');
        pc_buf_add_json_str(b, path ? path : "-", path ? path_len : 1);
        pc_buf_addf(b, "\" %d rule=%s decision=%s reason=\"", r->status, rule ? rule : "-",
                    pc_decision_names[r->decision]);
        if (r->reason)
            pc_buf_add_json_str(b, r->reason, strlen(r->reason));
        pc_buf_adds(b, "\" subject=");
        if (r->subject)
            pc_buf_add_json_str(b, r->subject, r->subject_len);
        else
            pc_buf_addc(b, '-');
        pc_buf_addf(b, " in=%llu out=%llu ms=%.3f policy_ms=%.3f upstream_ms=%.3f cache=%s data_decided=%s\n",
                    (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out, dur, pol, up,
                    cache ? cache : "-", data ? data : "-");
        return;
    }
    pc_buf_addf(b, "{\"ts\":\"%s\"", ts);
    pc_json_field(b, "request_id", r->request_id[0] ? r->request_id : NULL, strlen(r->request_id));
    pc_json_field(b, "client", r->c->peer, strlen(r->c->peer));
    pc_json_field(b, "method", method, r->h.method_len);
    pc_json_field(b, "path", path, path_len);
    pc_buf_addf(b, ",\"status\":%d", r->status);
    pc_json_field(b, "rule", rule, rule ? strlen(rule) : 0);
    pc_json_field(b, "decision", pc_decision_names[r->decision], strlen(pc_decision_names[r->decision]));
    pc_json_field(b, "reason", r->reason, r->reason ? strlen(r->reason) : 0);
    pc_json_field(b, "subject", r->subject, r->subject_len);
    pc_buf_addf(b, ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f",
                (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out, dur);
    if (pol >= 0)
        pc_buf_addf(b, ",\"policy_ms\":%.3f", pol);
    else
        pc_buf_adds(b, ",\"policy_ms\":null");
    if (up >= 0)
        pc_buf_addf(b, ",\"upstream_ms\":%.3f", up);
    else
        pc_buf_adds(b, ",\"upstream_ms\":null");
    pc_json_field(b, "cache", cache, cache ? strlen(cache) : 0);
    pc_buf_addf(b, ",\"data_decided\":%s}\n", data ? data : "null");
}

void pc_log_access(struct pc_req *r)
{
    struct pc_worker *w = r->c->w;
    if (r->logged)
        return;
    r->logged = 1;
    /* metrics ride on the same once-per-request hook */
    int slot = r->rule ? r->rule->metric_slot : 0;
    pc_metric_add(&w->metrics->requests[slot][r->decision], 1);
    if (r->rule != NULL && r->rule->fallback) {
        /* a route the rule pack does not know: say so, every time */
        pc_metric_add(&w->metrics->fallback[slot], 1);
        pc_log(PC_LOG_WARN, "rule %s: %.*s %.*s is a route the rule pack does not know; it was %s (request %s)",
               r->rule->name, (int)r->h.method_len, r->h.method, (int)PC_MIN(r->canon.path_len, 1024),
               r->canon.path ? r->canon.path : "", r->rule->shadow ? "forwarded (shadow)" : "authorized like a "
               "protected route", r->request_id);
    }
    pc_hist_observe(&w->metrics->request_duration, pc_now_us() - r->t_start);
    if (!r->cfg || !r->cfg->access_log)
        return;
    pc_log_format_access(&w->logbuf, r, r->cfg->log_format);
    if (w->logbuf.len >= 32 * 1024)
        pc_log_flush(w);
}

void pc_log_flush(struct pc_worker *w)
{
    if (w->logbuf.len == 0)
        return;
    pc_write_all(1, w->logbuf.p, w->logbuf.len);
    w->logbuf.len = 0;
}
