/*
 * portcullis: the HTTP/1 upstream client. One exchange per request, as
 * h2o's httpclient: connect, send the head (built here, from the request
 * and the forwarding policy), relay the request body, parse the response
 * head, relay the response body, or switch to a tunnel on 101.
 *
 * The exchange moves bytes between two sockets: the client's (its input is
 * the request body, its output the response) and an upstream connection
 * (upstream.h). It never touches the client connection otherwise: what
 * happens to it is the caller's, through h1c_ops.
 *
 * Functions that return int return 0 while the exchange goes on and -1
 * when it ended inside the call (an ops callback ran: done, fail or
 * abort); after -1 the caller must not touch the request.
 */
#ifndef PC_H1CLIENT_H
#define PC_H1CLIENT_H

#include "../lib/h1.h"
#include "sock.h"

struct pc_req;
struct pc_worker;
struct up_conn;

struct h1c_ops {
    /* The exchange failed before any byte of a response reached the
     * client: answer status (the upstream connection is gone). */
    void (*fail)(struct pc_req *r, int status, const char *code, const char *message);
    /* The exchange failed mid-response, or the client went away: cut the
     * client connection now. */
    void (*abort)(struct pc_req *r);
    /* The whole response is in the client's output buffer. */
    void (*done)(struct pc_req *r);
    /* Write the client's output now: 0 while r goes on, -1 when it ended. */
    int (*flush)(struct pc_req *r);
    /* May the client connection carry another request after this one's
     * response? Asked once, when the response head is built. */
    int (*keepalive)(struct pc_req *r);
    /* The client's deadlines may have changed (its body is awaited). */
    void (*rearm)(struct pc_req *r);
};

struct h1c {
    struct pc_worker *w;
    struct up_conn *up;             /* NULL before the connect, and after release */
    struct pc_sock *client;
    const char *peer;               /* the client's address, for X-Forwarded-For */
    const struct h1c_ops *ops;
    struct h1_scan rscan;           /* the response head's scanner */
    unsigned started : 1;
    unsigned head_sent : 1;         /* the request head is on its way */
    unsigned head_done : 1;         /* the response head reached the client */
    unsigned tunnel : 1;            /* switched protocols: bytes both ways, unframed */
    unsigned upgrade : 1;           /* an Upgrade request being forwarded */
    unsigned reusable : 1;          /* the upstream connection may serve another request */
    unsigned failed : 1;            /* ended by an upstream failure */
};

/* Forward r (allowed) to the upstream. */
int h1c_forward(struct pc_req *r, struct pc_worker *w, struct pc_sock *client, const char *peer,
                const struct h1c_ops *ops);
/* The client sent bytes (request body or tunnel data), or closed. */
int h1c_client_input(struct pc_req *r);
/* The client's output is written out: backpressure released. */
int h1c_client_drained(struct pc_req *r);
/* Is the exchange waiting for request body bytes from the client? */
int h1c_awaits_body(const struct pc_req *r);
/* The request is over: the upstream connection returns to the pool when
 * the exchange completed cleanly, else it is closed. */
void h1c_release(struct pc_req *r);

#endif
