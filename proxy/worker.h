/*
 * portcullis: per-worker state, connections and requests.
 *
 * Share-nothing, as in HAProxy's threads and h2o's contexts: each worker
 * thread owns an event_base, a listening socket (SO_REUSEPORT), its client
 * connections, an upstream keep-alive pool, its database connections and
 * its decision cache. Workers talk to the main thread only through their
 * mailbox (an eventfd plus a locked queue).
 */
#ifndef PC_WORKER_H
#define PC_WORKER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/buffer.h>

#include "../lib/h1.h"
#include "../lib/h1msg.h"
#include "../lib/base.h"
#include "listener.h"
#include "../lib/pool.h"
#include "../rules/canon.h"
#include "config.h"
#include "resolve.h"
#include "sock.h"
#include "h1client.h"
#include "health.h"
#include "../rules/match.h"
#include "../policies/decide.h"

struct pc_worker;
struct up_conn;
struct pc_metrics;
struct tokcache;
struct pc_trace;

enum pc_decision {
    PC_D_NONE = 0,
    PC_D_ALLOW,
    PC_D_DENY,
    PC_D_UNAUTH,      /* "unauthenticated" */
    PC_D_ERROR,
    PC_D_FORWARD,
    PC_D_REJECT,      /* refused before a rule could apply: bad request */
    PC_D_SHADOW_DENY,
    PC_D_LOCAL,       /* health/readiness, answered by the proxy */
    PC_D__COUNT,
};

extern const char *const pc_decision_names[PC_D__COUNT];

/* Did operator data decide a request? NA: its rule binds none (or no
 * policy ran); NO: without the data the decision is the same; YES: it
 * differs (an entry allowed or denied); UNKNOWN: the comparison failed. */
enum pc_data_decided { PC_DATA_NA = 0, PC_DATA_NO, PC_DATA_YES, PC_DATA_UNKNOWN };


struct pc_req {
    struct pc_conn *c;
    struct pc_worker *w;
    struct pc_config *cfg;          /* the generation this request runs on */
    struct pc_pool pool;            /* everything below that is allocated: reset when the request ends */
    char *head;                     /* copy of the request head */
    size_t head_len;
    struct h1_request h;
    struct canon_result canon;
    const char *cookie;             /* the Cookie headers joined, parsed and forwarded (id_joined_cookies) */
    size_t cookie_len;
    char *pathbuf;                  /* canonical path */
    char *matchbuf;                 /* capture values */
    struct rule_match match;
    const struct rule *rule;

    /* identity */
    const char *subject;
    size_t subject_len;
    const char *payload;            /* verified claims JSON, when a policy reads claims */
    size_t payload_len;

    /* decision */
    enum pc_decision decision;
    const char *reason;
    char reason_buf[96];
    int deciding;
    struct dec_request dec;
    int cache_state;                /* 0: none, 1: hit, 2: miss */
    /* operator data (policies/data.h): the view bound (NULL: the config's
     * files; explain and test set others), and whether the data decided:
     * the same request judged as if no file were given (dec_base, in the
     * pool) came to another decision */
    const struct pol_data_view *data_view;
    struct dec_ctx *dec_ctx;
    struct dec_request *dec_base;
    int base_deciding;
    enum dec_result dec_res;        /* the decision, while the baseline runs */
    enum dec_result base_res;       /* the baseline's */
    enum pc_data_decided data_decided;

    /* each direction's body: framing, progress, the one relay (h1msg.h) */
    struct h1_msg req;              /* client -> upstream */
    struct h1_msg resp;             /* upstream -> client */

    /* the upstream exchange (h1client.h), or the readiness check */
    struct h1c x;
    struct pc_ready ready;
    unsigned keepalive : 1;         /* keep the client connection after this (conn_keepalive) */
    unsigned logged : 1;
    int status;

    /* judging (judge.c) */
    void (*judge_fn)(struct pc_req *r, int status, const char *code, const char *message);
    struct pc_trace *trace;         /* explain only */

    /* accounting, in microseconds */
    int64_t t_start, t_policy, t_policy_end, t_up, t_up_end;
    uint64_t bytes_in, bytes_out;
    char request_id[72];

    SLIST_ENTRY(pc_req) free_link;
};

enum pc_conn_state {
    PC_CS_IDLE,       /* waiting for a request */
    PC_CS_HEAD,       /* receiving a head */
    PC_CS_ACTIVE,     /* a request is being handled */
    PC_CS_FLUSH,      /* response complete, writing it out */
    PC_CS_LINGER,     /* shut down for writing, discarding input */
};

struct pc_conn {
    struct pc_worker *w;
    struct pc_sock sock;
    enum pc_conn_state state;       /* changed by conn_set_state() only */
    struct h1_scan scan;
    struct pc_req *req;
    int64_t deadline_head;          /* the head must be complete by then */
    int64_t deadline_linger;
    unsigned close_after : 1;       /* close once the output is flushed */
    unsigned next_pending : 1;      /* a pipelined request waits: the timer starts it */
    char peer[48];
    TAILQ_ENTRY(pc_conn) link;
};

TAILQ_HEAD(pc_conn_list, pc_conn);
SLIST_HEAD(pc_req_list, pc_req);

struct pc_mail {
    int kind;                       /* PC_MAIL_* */
    struct pc_config *cfg;
    struct pc_upaddr addr;          /* PC_MAIL_ADDR */
    struct pc_mail *next;
};

enum { PC_MAIL_CONFIG = 1, PC_MAIL_DRAIN, PC_MAIL_STOP, PC_MAIL_ADDR };

struct pc_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct pc_config *cfg;          /* current generation (worker-owned ref) */
    int listen_fd;
    struct pc_listener listener;
    struct pc_conn_list conns;
    size_t nconns;
    struct pc_req_list req_free;
    size_t req_free_n;

    /* upstream pool */
    struct up_pool *pool;

    /* policy engine */
    struct dec_ctx *dec;
    /* every worker, for readiness only (read with atomics, never written) */
    struct pc_worker *const *peers;
    int npeers;

    /* mailbox */
    int mail_fd;
    struct event mail_ev;
    pthread_mutex_t mail_lock;
    struct pc_mail *mail_head, *mail_tail;

    int draining;
    int stopped;
    uint64_t request_seq;

    struct pc_upaddr upaddr;        /* the upstream's address, pushed by the resolver */
    struct tokcache *tokens;        /* verified tokens */
    struct pc_buf scratch;          /* for building heads */
    struct h1_response resp_scratch;
    char id_prefix[17];             /* request ids: <prefix>-<worker>-<seq> */

    struct pc_metrics *metrics;     /* this worker's counters */
    struct pc_buf logbuf;           /* access log lines not yet written */
    struct event log_ev;
};

/* conn.c */
void pc_conn_accept(struct pc_worker *w, int fd, const struct sockaddr *sa, socklen_t salen);
void pc_conn_drain(struct pc_conn *c);
/* limits.connections exceeded: answer 503 and close. */
void pc_conn_over_limit(struct pc_conn *c);
/* Reply from the proxy itself (health/readiness). */
void pc_req_local_reply(struct pc_req *r, int status, const char *body, size_t len, const char *extra);

/* server.c */
void pc_worker_conn_gone(struct pc_worker *w);
extern int64_t pc_active_connections; /* atomic, all workers */

#define PC_HIGH_WATER (256 * 1024)
#define PC_LOW_WATER (64 * 1024)
#define PC_READ_CHUNK (64 * 1024)

#endif
