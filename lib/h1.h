/*
 * portcullis: strict HTTP/1.1 message parsing.
 *
 * Parsing is where request smuggling lives, so this parser accepts only
 * what RFC 9112 requires a recipient to accept and refuses the rest:
 * bare LF, obs-fold, whitespace before a colon, invalid name characters,
 * CTLs in values, duplicate or non-numeric Content-Length, any
 * Transfer-Encoding other than exactly "chunked", and TE together with CL.
 *
 * Heads are parsed whole: the connection first finds the end of the head
 * with h1_scan_head() (incremental, O(n) over all calls), then hands the
 * contiguous head to h1_parse_request() / h1_parse_response(). Pointers in
 * the result point into that head.
 */
#ifndef PC_H1_H
#define PC_H1_H

#include <stddef.h>
#include <stdint.h>

#define H1_MAX_HEADERS 128

struct h1_header {
    const char *name;
    size_t name_len;
    const char *value;   /* leading and trailing OWS removed */
    size_t value_len;
};

enum h1_method {
    H1_M_OTHER = 0,
    H1_M_GET, H1_M_HEAD, H1_M_POST, H1_M_PUT, H1_M_DELETE,
    H1_M_PATCH, H1_M_OPTIONS, H1_M_TRACE, H1_M_CONNECT,
};

struct h1_request {
    const char *method;
    size_t method_len;
    enum h1_method method_id;
    const char *target;
    size_t target_len;
    int minor;                  /* 0: HTTP/1.0, 1: HTTP/1.1 */
    struct h1_header headers[H1_MAX_HEADERS];
    size_t nheaders;

    /* framing and connection management, derived */
    int64_t content_length;     /* -1: absent */
    unsigned chunked : 1;
    unsigned conn_close : 1;    /* Connection: close */
    unsigned conn_keepalive : 1;/* Connection: keep-alive */
    unsigned conn_upgrade : 1;  /* Connection: upgrade */
    unsigned has_upgrade : 1;   /* an Upgrade header is present */
    unsigned expect_continue : 1;
    int host_index;             /* index into headers, -1 if none */
};

struct h1_response {
    int minor;
    int status;
    const char *reason;
    size_t reason_len;
    struct h1_header headers[H1_MAX_HEADERS];
    size_t nheaders;
    int64_t content_length;
    unsigned chunked : 1;
    unsigned conn_close : 1;
    unsigned conn_keepalive : 1;
    unsigned conn_upgrade : 1;
};

/* Head scanner state; zero-initialise before the first call. */
struct h1_scan {
    size_t pos;         /* next byte to look at */
    size_t line_start;  /* start of the current line */
    size_t skip;        /* leading empty lines ignored before a request */
};

enum {
    H1_SCAN_MORE = 0,   /* no end of head yet */
    H1_SCAN_DONE = 1,   /* head is buf[skip .. end) */
    H1_SCAN_BARE_LF = -1,
};

/*
 * Look for the blank line that ends a head. On H1_SCAN_DONE, *head_start is
 * the first byte after ignored leading CRLFs and *head_end is one past the
 * final LF. allow_leading_crlf: ignore empty lines before the start line
 * (RFC 9112 2.2), for requests only.
 */
int h1_scan_head(struct h1_scan *s, const char *buf, size_t len, int allow_leading_crlf,
                 size_t *head_start, size_t *head_end);

/*
 * Parse a complete request head (including its final CRLFCRLF).
 * Returns 0, or the HTTP status to answer (400, 417, 431, 501) with *why.
 */
int h1_parse_request(const char *p, size_t len, struct h1_request *r, const char **why);

/* Parse a response head. Returns 0 or -1 with *why. */
int h1_parse_response(const char *p, size_t len, struct h1_response *r, const char **why);

/* The one table of method names: H1_M_OTHER for any other (exact, case
 * sensitive: a lower-case "get" is not GET). */
enum h1_method h1_method_from_name(const char *name, size_t len);

/* Does the response to this request carry a body? (RFC 9112 6.3) */
int h1_response_has_body(const struct h1_response *r, enum h1_method req_method);

/* Case-insensitive header lookup; returns the index or -1. */
int h1_find_header(const struct h1_header *h, size_t n, const char *name, size_t from);

/* Is this header hop-by-hop (RFC 9110 7.6.1)? Connection-named headers are
 * checked separately by the caller. */
int h1_is_hop_by_hop(const char *name, size_t len);

/* Does the comma-separated Connection header list contain token? */
int h1_list_has_token(const char *v, size_t len, const char *token, size_t token_len);
/* Does any Connection header of h[from..n) list name (RFC 9110 7.6.1: such
 * a field is hop-by-hop)? Every one counts: repeated, they form one list.
 * from is the first Connection header's index, -1 when there is none. */
int h1_connection_lists(const struct h1_header *h, size_t n, int from, const char *name, size_t len);

/* ---- chunked transfer coding ---- */

enum h1_chunk_state {
    H1_CH_SIZE = 0,
    H1_CH_SIZE_DIGITS,
    H1_CH_EXT,
    H1_CH_EXT_QUOTED,
    H1_CH_EXT_QUOTED_ESC,
    H1_CH_SIZE_LF,
    H1_CH_DATA,
    H1_CH_DATA_CR,
    H1_CH_DATA_LF,
    H1_CH_TRAILER_START,
    H1_CH_TRAILER_NAME,
    H1_CH_TRAILER_VALUE,
    H1_CH_TRAILER_LF,
    H1_CH_END_LF,
    H1_CH_DONE,
};

struct h1_chunked {
    enum h1_chunk_state state;
    uint64_t remaining;     /* data bytes left in the current chunk */
    uint64_t total;         /* data bytes so far */
    size_t line;            /* bytes of the current chunk-size line */
    size_t meta;            /* bytes of trailers so far */
};

enum {
    H1_CHUNK_MORE = 0,      /* consumed everything given, need more */
    H1_CHUNK_DATA = 1,      /* at chunk data: the caller moves up to remaining bytes */
    H1_CHUNK_DONE = 2,      /* last chunk and trailers consumed */
    H1_CHUNK_ERROR = -1,
};

/*
 * Feed framing bytes. Stops at the start of chunk data, at the end, or on
 * error; *consumed says how many bytes it used. In H1_CH_DATA the caller
 * moves data itself and then calls h1_chunked_data_done().
 */
int h1_chunked_feed(struct h1_chunked *c, const char *p, size_t len, size_t *consumed);
void h1_chunked_data_done(struct h1_chunked *c, uint64_t n);

#endif
