/*
 * portcullis base: body framing and the relay (see h1msg.h).
 */
#include "h1msg.h"
#include "base.h"

int h1_msg_start(struct h1_msg *m, enum h1_body body, uint64_t length, int rechunk, uint64_t limit)
{
    memset(m, 0, sizeof(*m));
    m->limit = limit;
    if (body == H1_BODY_LENGTH && length == 0)
        body = H1_BODY_NONE;
    m->rechunk = rechunk && body == H1_BODY_CHUNKED;
    m->body = body;
    m->remaining = length;
    m->done = body == H1_BODY_NONE;
    if (body == H1_BODY_LENGTH && limit > 0 && length > limit) {
        m->too_large = 1;
        return -1;
    }
    return 0;
}

void h1_msg_finish_close(struct h1_msg *m)
{
    if (m->body == H1_BODY_CLOSE)
        m->done = 1;
}

int h1_keepalive(const struct h1_request *h, const struct h1_msg *req, const struct h1_msg *resp)
{
    if (h->conn_close || (h->minor != 1 && !h->conn_keepalive))
        return 0;
    if (!req->done)
        return 0; /* the rest of its body was never read */
    /* a de-chunked response (to HTTP/1.0) ends when the connection does */
    if (resp != NULL && (resp->body == H1_BODY_CLOSE || (resp->body == H1_BODY_CHUNKED && !resp->rechunk)))
        return 0;
    return 1;
}

/* One chunk's data (n bytes of it) to dst, re-framed or bare. */
static void h1_msg_chunk_out(struct h1_msg *m, struct evbuffer *src, struct evbuffer *dst, size_t n)
{
    if (m->rechunk) {
        char hdr[24];
        size_t hl = pc_fmt_hex(hdr, n);
        hdr[hl++] = '\r';
        hdr[hl++] = '\n';
        evbuffer_add(dst, hdr, hl);
        evbuffer_remove_buffer(src, dst, n);
        evbuffer_add(dst, "\r\n", 2);
    } else {
        evbuffer_remove_buffer(src, dst, n);
    }
}

static int h1_msg_relay_chunked(struct h1_msg *m, struct evbuffer *src, struct evbuffer *dst, size_t high_water)
{
    while (evbuffer_get_length(src) > 0 && evbuffer_get_length(dst) < high_water) {
        if (m->chunk.state == H1_CH_DATA) {
            size_t n = PC_MIN((uint64_t)evbuffer_get_length(src), m->chunk.remaining);
            if (m->limit > 0 && m->bytes + n > m->limit)
                return H1_RELAY_TOO_LARGE;
            h1_msg_chunk_out(m, src, dst, n);
            h1_chunked_data_done(&m->chunk, n);
            m->bytes += n;
            continue;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
            break;
        size_t used = 0;
        int rc = h1_chunked_feed(&m->chunk, v.iov_base, v.iov_len, &used);
        evbuffer_drain(src, used);
        if (rc == H1_CHUNK_ERROR)
            return H1_RELAY_BAD;
        if (rc == H1_CHUNK_DONE) {
            if (m->rechunk)
                evbuffer_add(dst, "0\r\n\r\n", 5);
            m->done = 1;
            return H1_RELAY_DONE;
        }
    }
    return H1_RELAY_MORE;
}

int h1_msg_relay(struct h1_msg *m, struct evbuffer *src, struct evbuffer *dst, size_t high_water)
{
    if (m->done)
        return H1_RELAY_DONE;
    switch (m->body) {
    case H1_BODY_NONE:
        m->done = 1;
        return H1_RELAY_DONE;
    case H1_BODY_LENGTH: {
        size_t have = evbuffer_get_length(dst);
        size_t room = have < high_water ? high_water - have : 0;
        size_t n = PC_MIN(PC_MIN((uint64_t)evbuffer_get_length(src), m->remaining), (uint64_t)room);
        if (n > 0)
            evbuffer_remove_buffer(src, dst, n);
        m->remaining -= n;
        m->bytes += n;
        if (m->remaining == 0) {
            m->done = 1;
            return H1_RELAY_DONE;
        }
        return H1_RELAY_MORE;
    }
    case H1_BODY_CLOSE: {
        size_t have = evbuffer_get_length(dst);
        size_t room = have < high_water ? high_water - have : 0;
        size_t n = PC_MIN(evbuffer_get_length(src), room);
        if (n > 0)
            evbuffer_remove_buffer(src, dst, n);
        m->bytes += n;
        return H1_RELAY_MORE; /* complete when the sender closes */
    }
    case H1_BODY_CHUNKED:
        return h1_msg_relay_chunked(m, src, dst, high_water);
    }
    return H1_RELAY_BAD;
}
