/*
 * portcullis: one socket of the event loop, client or upstream alike (as
 * pgbouncer's SBuf and h2o's h2o_socket_t): its descriptor and options,
 * its input and output buffers, read and write interest, the clock of its
 * last byte each way, and one lazy deadline timer. The owner gets one
 * callback with what happened (EV_READ, EV_WRITE or EV_TIMEOUT) and keeps
 * its own state machine; the socket keeps none.
 *
 * The timer is lazy: a later deadline never re-arms it, it fires early and
 * the owner works out the current deadline and arms again.
 */
#ifndef PC_SOCK_H
#define PC_SOCK_H

#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/buffer.h>

struct pc_sock;
typedef void (*pc_sock_cb)(struct pc_sock *s, short what);

struct pc_sock {
    int fd;
    struct evbuffer *in, *out;
    struct event rev, wev, tev;
    int64_t deadline;
    int64_t last_in, last_out;      /* ms: the last byte read, written */
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned timer_on : 1;
    unsigned eof : 1;               /* the peer closed its side */
    pc_sock_cb cb;
    void *owner;
};


/* Take fd (non-blocking; TCP_NODELAY is set here) into s. */
void pc_sock_open(struct pc_sock *s, struct event_base *base, int fd, pc_sock_cb cb, void *owner);
/* Events, descriptor and buffers: gone. */
void pc_sock_close(struct pc_sock *s);

/* Read once, at most max bytes, into s->in: > 0, 0 at the peer's end of
 * stream (eof), -1 with errno (EAGAIN included). */
ssize_t pc_sock_fill(struct pc_sock *s, size_t max);
/* Write s->out while the socket takes it: 1 when all is written (write
 * interest dropped), 0 when the socket is full (write interest on), -1 on
 * an error. */
int pc_sock_flush(struct pc_sock *s);

/*
 * Acknowledge what was read now, not after the delayed-ACK timer (TCP_QUICKACK).
 * For an owner that read a small piece of a message and waits for the rest:
 * a peer that wrote the rest separately, without TCP_NODELAY, holds it back
 * (Nagle) until this ACK, and on a reused connection Linux delays it by up
 * to 40 ms. Not on every read: the ACK is a packet of its own, where a
 * delayed one rides on the next request.
 */
void pc_sock_ack_now(struct pc_sock *s);

void pc_sock_read(struct pc_sock *s, int on);
void pc_sock_write(struct pc_sock *s, int on);
void pc_sock_arm(struct pc_sock *s, int64_t deadline);

#endif
