/*
 * portcullis base: one direction of an HTTP/1 exchange's body, and the one
 * relay that moves it.
 *
 * A message's framing is decided once, from its head (RFC 9112 6.3):
 * none, a Content-Length, chunked, or until the connection closes. The
 * relay moves body bytes from the buffer they arrive in to the buffer they
 * leave from, without copying (evbuffer chains), re-framing chunked
 * bodies for the receiver (extensions and trailers are dropped) or
 * de-chunking them (an HTTP/1.0 receiver), and stops at the receiver's
 * high-water mark: backpressure is the caller's next step. The body
 * limit is enforced here and only here: at the start for a declared
 * length, while relaying for chunks.
 */
#ifndef PC_H1MSG_H
#define PC_H1MSG_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>

#include "h1.h"

enum h1_body { H1_BODY_NONE, H1_BODY_LENGTH, H1_BODY_CHUNKED, H1_BODY_CLOSE };

struct h1_msg {
    enum h1_body body;
    uint64_t remaining;         /* H1_BODY_LENGTH: bytes still to move */
    struct h1_chunked chunk;    /* H1_BODY_CHUNKED: the decoder */
    uint64_t bytes;             /* body bytes moved so far (payload, not framing) */
    uint64_t limit;             /* 0: none */
    unsigned rechunk : 1;       /* a chunked body re-framed for the receiver (else de-chunked) */
    unsigned done : 1;          /* the whole body has been moved (or there is none) */
    unsigned too_large : 1;     /* its declared length is over the limit */
};

/* Start a message of that framing. -1 (and too_large) when a declared
 * length is over limit (0: no limit). A body of length 0 is no body. */
int h1_msg_start(struct h1_msg *m, enum h1_body body, uint64_t length, int rechunk, uint64_t limit);

enum {
    H1_RELAY_MORE = 0,          /* src is empty, or dst reached high_water: more later */
    H1_RELAY_DONE = 1,          /* the body is complete */
    H1_RELAY_BAD = -1,          /* malformed chunked framing */
    H1_RELAY_TOO_LARGE = -2,    /* over the limit */
};

/* Move body bytes from src to dst. A close-delimited body is complete only
 * when its sender closes: the caller says so with h1_msg_finish_close(). */
int h1_msg_relay(struct h1_msg *m, struct evbuffer *src, struct evbuffer *dst, size_t high_water);
void h1_msg_finish_close(struct h1_msg *m);

/*
 * May a client connection carry another request after this exchange (RFC
 * 9112 9.3)? The request's head asks for it (HTTP/1.1 without "close", or
 * HTTP/1.0 with "keep-alive"), its body was read to the end, and the
 * response (NULL: one the proxy writes itself, with a length) is not
 * delimited by closing the connection.
 */
int h1_keepalive(const struct h1_request *h, const struct h1_msg *req, const struct h1_msg *resp);

#endif
