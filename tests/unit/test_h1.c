/*
 * Unit tests for the strict HTTP/1.1 parser (proxy/h1.c).
 *
 * Every refusal the parser makes is a smuggling defence, so each rule is
 * tested on its own with the smallest message that breaks only that rule,
 * next to a valid message that differs from it as little as possible.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/h1.h"

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

/* A byte string that may contain NUL: pointer and explicit length. */
struct bytes {
    const char *p;
    size_t len;
};
#define B(lit) {(lit), sizeof(lit) - 1}

static struct h1_request req;
static struct h1_response resp;

/* Parse a request head; a refusal must always come with a reason. */
static int parse_req_n(const char *p, size_t len)
{
    const char *why = NULL;
    int rc = h1_parse_request(p, len, &req, &why);
    if (rc != 0)
        assert_non_null(why);
    return rc;
}
#define PARSE_REQ(lit) parse_req_n((lit), sizeof(lit) - 1)

static int parse_resp_n(const char *p, size_t len)
{
    const char *why = NULL;
    int rc = h1_parse_response(p, len, &resp, &why);
    if (rc != 0)
        assert_non_null(why);
    return rc;
}
#define PARSE_RESP(lit) parse_resp_n((lit), sizeof(lit) - 1)

/* Printable rendering of a test case for failure messages. */
static const char *show(const char *p, size_t len)
{
    static char out[1024];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Every case must make h1_parse_request answer `want`. */
static void expect_request_status(const struct bytes *cases, size_t n, int want)
{
    for (size_t i = 0; i < n; i++) {
        int rc = parse_req_n(cases[i].p, cases[i].len);
        if (rc != want)
            fail_msg("request case %zu \"%s\": got %d, want %d", i, show(cases[i].p, cases[i].len),
                     rc, want);
    }
}

static void expect_response_rejected(const struct bytes *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = parse_resp_n(cases[i].p, cases[i].len);
        if (rc != -1)
            fail_msg("response case %zu \"%s\": got %d, want -1", i,
                     show(cases[i].p, cases[i].len), rc);
    }
}

/* A request "GET / HTTP/1.1" with Host and one extra header line `line`. */
static int parse_with_header(const char *line, size_t line_len)
{
    static char buf[4096];
    static const char pre[] = "GET / HTTP/1.1\r\nHost: example.com\r\n";
    size_t n = 0;
    memcpy(buf, pre, sizeof(pre) - 1);
    n += sizeof(pre) - 1;
    assert_true(n + line_len + 4 < sizeof(buf));
    memcpy(buf + n, line, line_len);
    n += line_len;
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    return parse_req_n(buf, n);
}

/* Each entry is one header line (without CRLF) that must be refused with 400. */
static void expect_header_lines_rejected(const struct bytes *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = parse_with_header(lines[i].p, lines[i].len);
        if (rc != 400)
            fail_msg("header line %zu \"%s\": got %d, want 400", i,
                     show(lines[i].p, lines[i].len), rc);
    }
}

static const struct h1_header *req_header(const char *name)
{
    int i = h1_find_header(req.headers, req.nheaders, name, 0);
    return i < 0 ? NULL : &req.headers[i];
}

static void assert_header_value(const struct h1_header *h, const char *want)
{
    assert_non_null(h);
    if (h->value_len != strlen(want) || memcmp(h->value, want, h->value_len) != 0)
        fail_msg("header value \"%s\", want \"%s\"", show(h->value, h->value_len), want);
}

/* Run the scanner over the whole buffer at once, with a fresh state. */
static int scan_all(const char *p, size_t len, int allow_crlf, size_t *hs, size_t *he)
{
    struct h1_scan s;
    memset(&s, 0, sizeof(s));
    return h1_scan_head(&s, p, len, allow_crlf, hs, he);
}

/*
 * Run the scanner as a connection would while bytes trickle in: the buffer
 * grows one byte per call. Returns the first non-MORE result (or MORE), and
 * the length of the buffer at which it came in *at.
 */
static int scan_bytewise(const char *p, size_t len, int allow_crlf, size_t *hs, size_t *he,
                         size_t *at)
{
    struct h1_scan s;
    memset(&s, 0, sizeof(s));
    for (size_t n = 1; n <= len; n++) {
        int rc = h1_scan_head(&s, p, n, allow_crlf, hs, he);
        if (rc != H1_SCAN_MORE) {
            *at = n;
            return rc;
        }
    }
    *at = len;
    return H1_SCAN_MORE;
}

/*
 * Drive the chunked decoder over buf[0..len), giving it at most `step`
 * bytes per call (0: everything available), as a connection would. Data
 * bytes are copied to out. Returns H1_CHUNK_DONE, H1_CHUNK_ERROR, or
 * H1_CHUNK_MORE when the input ran out first; *used is the number of input
 * bytes consumed (framing and data).
 */
static int dechunk(const char *buf, size_t len, size_t step, char *out, size_t cap, size_t *outlen,
                   size_t *used)
{
    struct h1_chunked c;
    size_t pos = 0;
    memset(&c, 0, sizeof(c));
    *outlen = 0;
    for (;;) {
        size_t avail = len - pos, n = 0;
        if (step != 0 && avail > step)
            avail = step;
        int rc = h1_chunked_feed(&c, buf + pos, avail, &n);
        assert_true(n <= avail);
        pos += n;
        if (rc == H1_CHUNK_ERROR) {
            *used = pos;
            return rc;
        }
        if (rc == H1_CHUNK_DONE) {
            assert_int_equal(c.state, H1_CH_DONE);
            assert_int_equal(c.total, *outlen);
            *used = pos;
            return rc;
        }
        if (rc == H1_CHUNK_DATA) {
            assert_int_equal(c.state, H1_CH_DATA);
            assert_true(c.remaining > 0);
            size_t take = len - pos;
            if (step != 0 && take > step)
                take = step;
            if (take > c.remaining)
                take = (size_t)c.remaining;
            if (take == 0) {
                *used = pos;
                return H1_CHUNK_MORE;
            }
            assert_true(*outlen + take <= cap);
            memcpy(out + *outlen, buf + pos, take);
            *outlen += take;
            pos += take;
            h1_chunked_data_done(&c, take);
            continue;
        }
        assert_int_equal(rc, H1_CHUNK_MORE);
        assert_int_equal(n, avail); /* MORE means everything given was used */
        if (pos >= len) {
            *used = pos;
            return H1_CHUNK_MORE;
        }
    }
}

/* Decode all at once; the result must be DONE with exactly `want` as data. */
static void expect_dechunk(const char *body, size_t len, const char *want, size_t want_len)
{
    char out[4096];
    size_t outlen = 0, used = 0;
    int rc = dechunk(body, len, 0, out, sizeof(out), &outlen, &used);
    if (rc != H1_CHUNK_DONE)
        fail_msg("chunked \"%s\": got %d, want DONE", show(body, len), rc);
    assert_int_equal(used, len);
    assert_int_equal(outlen, want_len);
    assert_memory_equal(out, want, want_len);
}

static void expect_chunked_rejected(const struct bytes *cases, size_t n)
{
    static const size_t steps[] = {0, 1, 2, 3};
    char out[4096];
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            size_t outlen = 0, used = 0;
            int rc = dechunk(cases[i].p, cases[i].len, steps[s], out, sizeof(out), &outlen, &used);
            if (rc != H1_CHUNK_ERROR)
                fail_msg("chunked case %zu \"%s\" step %zu: got %d, want ERROR", i,
                         show(cases[i].p, cases[i].len), steps[s], rc);
        }
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* valid requests                                                       */
/* ------------------------------------------------------------------ */

static void test_parses_valid_get_request(void **state)
{
    (void)state;
    static const char m[] = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    assert_int_equal(PARSE_REQ(m), 0);
    assert_int_equal(req.method_len, 3);
    assert_memory_equal(req.method, "GET", 3);
    assert_int_equal(req.method_id, H1_M_GET);
    assert_int_equal(req.target_len, strlen("/a/b?c=d"));
    assert_memory_equal(req.target, "/a/b?c=d", req.target_len);
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nheaders, 2);
    assert_int_equal(req.host_index, 0);
    assert_header_value(&req.headers[req.host_index], "example.com");
    assert_header_value(req_header("accept"), "*/*");
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_false(req.conn_close);
    assert_false(req.conn_keepalive);
    assert_false(req.conn_upgrade);
    assert_false(req.has_upgrade);
    assert_false(req.expect_continue);
}

static void test_parses_post_with_content_length(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n"), 0);
    assert_int_equal(req.method_id, H1_M_POST);
    assert_int_equal(req.content_length, 42);
    assert_false(req.chunked);

    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n"), 0);
    assert_int_equal(req.content_length, 0);

    /* the largest value the parser takes: INT64_MAX / 2 */
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387903\r\n\r\n"), 0);
    assert_int_equal(req.content_length, INT64_MAX / 2);
}

static void test_parses_content_length_with_surrounding_ows(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \t 17 \t\r\n\r\n"), 0);
    assert_int_equal(req.content_length, 17);
}

static void test_parses_chunked_request(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    assert_true(req.chunked);
    assert_int_equal(req.content_length, -1);
}

static void test_accepts_chunked_transfer_encoding_case_insensitively(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n"), 0);
    assert_true(req.chunked);
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING:CHUNKED  \r\n\r\n"), 0);
    assert_true(req.chunked);
}

static void test_accepts_http10_request_without_host(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(req.minor, 0);
    assert_int_equal(req.host_index, -1);
    assert_int_equal(req.nheaders, 0);

    assert_int_equal(PARSE_REQ("GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n"), 0);
    assert_int_equal(req.host_index, -1);
    assert_int_equal(req.nheaders, 1);
}

static void test_trims_ows_from_header_values(void **state)
{
    (void)state;
    static const char m[] = "GET / HTTP/1.1\r\n"
                            "Host:example.com\r\n"
                            "X-A:  \t value \t \r\n"
                            "X-B:\tinner  space\tkept\t\r\n"
                            "X-C:no-ows\r\n"
                            "\r\n";
    assert_int_equal(PARSE_REQ(m), 0);
    assert_header_value(req_header("host"), "example.com");
    assert_header_value(req_header("x-a"), "value");
    assert_header_value(req_header("x-b"), "inner  space\tkept");
    assert_header_value(req_header("x-c"), "no-ows");
}

static void test_accepts_empty_and_whitespace_only_header_values(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank:  \t \r\n\r\n"), 0);
    assert_header_value(req_header("x-empty"), "");
    assert_header_value(req_header("x-blank"), "");
}

static void test_accepts_obs_text_in_header_values(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n"), 0);
    assert_header_value(req_header("x-name"), "caf\xc3\xa9 \x80\xff");
}

static void test_accepts_all_tchar_in_header_names(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\n"
                               "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
                     0);
    assert_header_value(req_header("!#$%&'*+-.^_`|~09azAZ"), "v");
}

static void test_records_method_ids(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        enum h1_method id;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_GET},
        {"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_HEAD},
        {"POST / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_POST},
        {"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_PUT},
        {"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_DELETE},
        {"PATCH / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_PATCH},
        {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_OPTIONS},
        {"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_TRACE},
        {"PURGE / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_OTHER},
        {"GETX / HTTP/1.1\r\nHost: h\r\n\r\n", H1_M_OTHER},
    };
    for (size_t i = 0; i < N(cases); i++) {
        if (parse_req_n(cases[i].msg, strlen(cases[i].msg)) != 0)
            fail_msg("case %zu refused", i);
        assert_int_equal(req.method_id, cases[i].id);
    }
}

/* Methods are case-sensitive. "get" is not GET, and would not match a
 * GET-only rule; gunicorn >= 22 refuses it, but a backend that upper-cased
 * methods would run it as GET. Refused. */
static void test_rejects_lower_case_methods(void **state)
{
    (void)state;
    static const char *const msgs[] = {
        "get / HTTP/1.1\r\nHost: h\r\n\r\n",
        "Get / HTTP/1.1\r\nHost: h\r\n\r\n",
        "DELETe / HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < N(msgs); i++)
        assert_int_equal(parse_req_n(msgs[i], strlen(msgs[i])), 400);
}

static void test_accepts_absolute_form_and_asterisk_targets(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0);
    assert_int_equal(req.target_len, strlen("http://example.com/x?y"));
    assert_int_equal(PARSE_REQ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    assert_int_equal(req.target_len, 1);
    assert_memory_equal(req.target, "*", 1);
}

static void test_find_header_is_case_insensitive_and_honours_from(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nOther: z\r\nx-dup: 2\r\n\r\n"), 0);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "X-DUP", 0), 1);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "x-dup", 2), 3);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "x-dup", 4), -1);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "x-du", 0), -1);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "x-dupe", 0), -1);
    assert_int_equal(h1_find_header(req.headers, req.nheaders, "missing", 0), -1);
}

static void test_accepts_host_with_port_and_ip_literals(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n\r\n",
    };
    for (size_t i = 0; i < N(ok); i++)
        if (parse_req_n(ok[i], strlen(ok[i])) != 0)
            fail_msg("host case %zu refused", i);
}

/* ------------------------------------------------------------------ */
/* request line                                                         */
/* ------------------------------------------------------------------ */

static void test_rejects_double_spaces_in_request_line(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"),
        B(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"),
        B("GET / a HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_request_line_missing_parts(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET /\r\nHost: h\r\n\r\n"),
        B("GET / \r\nHost: h\r\n\r\n"),
        B("GET\r\nHost: h\r\n\r\n"),
        B("GET \r\nHost: h\r\n\r\n"),
        B("/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        B(" / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1"),
        B("GET / HTTP/1.1\r\n"),
        B(""),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_http_versions_other_than_1_0_and_1_1(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/2\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.10\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/0.9\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/11\r\nHost: h\r\n\r\n"),
        B("GET / HTTPS/1.1\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1x\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_lowercase_http_version(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / http/1.1\r\nHost: h\r\n\r\n"),
        B("GET / Http/1.1\r\nHost: h\r\n\r\n"),
        B("GET / HTTp/1.0\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_bare_cr_or_lf_ending_request_line(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1\rHost: h\r\n\r\n"),
        B("GET / HTTP/1.1\r\rHost: h\r\n\r\n"),
        B("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_tabs_in_request_line(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /\tHTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET \t/ HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_control_characters_in_target(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET /a\x01" "b HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /a\x7f" "b HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /a\x1b[0m HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /\x0b HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /\x0c HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_non_ascii_bytes_in_target(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_invalid_method_characters(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET: / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("G\xc3\x89T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("\x16\x03\x01 / HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

/* ------------------------------------------------------------------ */
/* header field syntax                                                  */
/* ------------------------------------------------------------------ */

static void test_rejects_obs_fold_continuation_lines(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n"),
        /* whitespace between the start line and the first field */
        B("GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
        B("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n"),
        /* a fold that would hide a Transfer-Encoding */
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_whitespace_before_colon(void **state)
{
    (void)state;
    static const struct bytes lines[] = {
        B("X-A : v"),
        B("X-A\t: v"),
        B("Transfer-Encoding : chunked"),
        B("Content-Length  : 5"),
    };
    expect_header_lines_rejected(lines, N(lines));
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_invalid_header_name_characters(void **state)
{
    (void)state;
    static const struct bytes lines[] = {
        B("X(A): v"),   B("X)A: v"),  B("X<A: v"),  B("X>A: v"), B("X@A: v"),
        B("X,A: v"),    B("X;A: v"),  B("X\\A: v"), B("X\"A: v"), B("X/A: v"),
        B("X[A: v"),    B("X]A: v"),  B("X?A: v"),  B("X=A: v"), B("X{A: v"),
        B("X}A: v"),    B("X A: v"),  B("X\x01" "A: v"), B("X\x7f" "A: v"),
        B("X\0A: v"),   B("X\xc3\xa9: v"), B("\x80: v"),
        /* a line without any colon */
        B("NoColonHere"), B("No colon here"),
    };
    expect_header_lines_rejected(lines, N(lines));
}

static void test_rejects_empty_header_name(void **state)
{
    (void)state;
    static const struct bytes lines[] = {B(": v"), B(":"), B(":: v")};
    expect_header_lines_rejected(lines, N(lines));
}

static void test_rejects_nul_in_header_value(void **state)
{
    (void)state;
    static const struct bytes lines[] = {B("X-A: a\0b"), B("X-A: \0"), B("X-A: a\0"), B("Host2: \0h")};
    expect_header_lines_rejected(lines, N(lines));
}

static void test_rejects_bare_cr_in_header_value(void **state)
{
    (void)state;
    static const struct bytes lines[] = {B("X-A: a\rb"), B("X-A: a\r"), B("X-A: \rTransfer-Encoding: chunked")};
    expect_header_lines_rejected(lines, N(lines));
}

static void test_rejects_bare_lf_in_header_value(void **state)
{
    (void)state;
    /* given straight to the parser, without the scanner in front */
    static const struct bytes lines[] = {B("X-A: a\nb"), B("X-A: a\nTransfer-Encoding: chunked")};
    expect_header_lines_rejected(lines, N(lines));
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: h\r\n\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_other_control_characters_in_header_value(void **state)
{
    (void)state;
    static const struct bytes lines[] = {
        B("X-A: a\x01" "b"), B("X-A: a\x7f"), B("X-A: \x1b[31m"), B("X-A: a\x0b" "b"), B("X-A: a\x0c" "b"),
    };
    expect_header_lines_rejected(lines, N(lines));
}

static void test_rejects_head_without_final_empty_line(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost: h\r\n"),
        B("GET / HTTP/1.1\r\nHost: h\r\n\r"),
        B("GET / HTTP/1.1\r\nHost: h"),
        B("GET / HTTP/1.1\r\nHost"),
    };
    expect_request_status(cases, N(cases), 400);
}

static char *build_request_with_headers(size_t extra, size_t *len)
{
    size_t cap = 64 + extra * 32;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 0; i < extra; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-H%zu: %zu\r\n", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    assert_true(n < cap);
    *len = n;
    return buf;
}

static void test_accepts_exactly_max_headers(void **state)
{
    (void)state;
    size_t len;
    char *m = build_request_with_headers(H1_MAX_HEADERS - 1, &len);
    assert_int_equal(parse_req_n(m, len), 0);
    assert_int_equal(req.nheaders, H1_MAX_HEADERS);
    assert_header_value(&req.headers[H1_MAX_HEADERS - 1], "126");
    free(m);
}

static void test_rejects_more_than_max_headers_with_431(void **state)
{
    (void)state;
    size_t len;
    char *m = build_request_with_headers(H1_MAX_HEADERS, &len);
    assert_int_equal(parse_req_n(m, len), 431);
    free(m);
    m = build_request_with_headers(H1_MAX_HEADERS * 4, &len);
    assert_int_equal(parse_req_n(m, len), 431);
    free(m);
}

/* ------------------------------------------------------------------ */
/* message framing                                                      */
/* ------------------------------------------------------------------ */

static void test_rejects_content_length_with_transfer_encoding(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\ncontent-length: 10\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_repeated_content_length(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-LENGTH: 5\r\n\r\n"),
        B("POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: h\r\nX: y\r\nContent-Length: 0\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_non_numeric_content_length(void **state)
{
    (void)state;
    static const char *const values[] = {
        "1,1", "1, 1", "+1", "-1", " 1 2", "1 2", "", "   ", "0x10", "1.0", "1e3", "abc",
        "12a", "a12", "\"5\"", "5;", "\xef\xbc\x95" /* fullwidth 5 */, "1_000",
    };
    for (size_t i = 0; i < N(values); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n", values[i]);
        int rc = parse_req_n(buf, (size_t)n);
        if (rc != 400)
            fail_msg("Content-Length \"%s\": got %d, want 400", values[i], rc);
    }
}

static void test_rejects_content_length_too_large(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        /* INT64_MAX / 2 + 1 */
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387904\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n"),
        /* would wrap a 64-bit accumulator to a small number */
        B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551621\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_transfer_encoding_other_than_chunked(void **state)
{
    (void)state;
    static const char *const values[] = {
        "gzip, chunked", "chunked, chunked", "identity", "gzip", "deflate", "chunked, gzip",
        "chunked;", "chunked;q=1", "chunked,", ",chunked", "chunkedx", "xchunked", "x-chunked",
        "chunk", "\"chunked\"", "", "chunked chunked", "identity, chunked", "ch\x01unked",
    };
    for (size_t i = 0; i < N(values); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n", values[i]);
        int rc = parse_req_n(buf, (size_t)n);
        if (rc != 400)
            fail_msg("Transfer-Encoding \"%s\": got %d, want 400", show(values[i], strlen(values[i])), rc);
    }
}

static void test_rejects_repeated_transfer_encoding_headers(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX: y\r\ntransfer-encoding: chunked\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_transfer_encoding_in_http10_request(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
    /* the same request as HTTP/1.1 is fine */
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
}

/* ------------------------------------------------------------------ */
/* Host, CONNECT, Expect, Connection                                    */
/* ------------------------------------------------------------------ */

static void test_rejects_missing_host_in_http11(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\n\r\n"),
        B("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX-Host: h\r\nHosts: h\r\n\r\n"),
        B("GET http://example.com/ HTTP/1.1\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_repeated_host(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhost: b\r\n\r\n"),
        B("GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_rejects_invalid_host_value(void **state)
{
    (void)state;
    static const struct bytes lines[] = {
        B("a b"), B("a/b"), B("user@a"), B("a\"b"), B("a<b>"), B("caf\xc3\xa9"), B("a\\b"), B("a b:80"),
    };
    for (size_t i = 0; i < N(lines); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %.*s\r\n\r\n", (int)lines[i].len,
                         lines[i].p);
        int rc = parse_req_n(buf, (size_t)n);
        if (rc != 400)
            fail_msg("Host \"%s\": got %d, want 400", show(lines[i].p, lines[i].len), rc);
    }
}

static void test_rejects_connect_method(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        B("CONNECT example.com:443 HTTP/1.0\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 400);
}

static void test_sets_expect_continue_for_100_continue(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"), 0);
    assert_true(req.expect_continue);
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nexpect:  100-Continue \r\n\r\n"), 0);
    assert_true(req.expect_continue);
    assert_int_equal(PARSE_REQ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"), 0);
    assert_false(req.expect_continue);
}

static void test_ignores_expect_continue_in_http10(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"), 0);
    assert_false(req.expect_continue);
}

static void test_rejects_other_expect_values_with_417(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continues\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n"),
        B("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: foo\r\n\r\n"),
    };
    expect_request_status(cases, N(cases), 417);
}

static void test_parses_connection_close(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), 0);
    assert_true(req.conn_close);
    assert_false(req.conn_keepalive);
    assert_false(req.conn_upgrade);
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nconnection: CLOSE\r\n\r\n"), 0);
    assert_true(req.conn_close);
}

static void test_parses_connection_keepalive_and_upgrade_tokens(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    assert_true(req.conn_keepalive);
    assert_false(req.conn_close);

    assert_int_equal(PARSE_REQ("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0);
    assert_true(req.conn_upgrade);
    assert_true(req.has_upgrade);
    assert_false(req.conn_close);

    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive ,\tUpgrade, close\r\n\r\n"), 0);
    assert_true(req.conn_keepalive);
    assert_true(req.conn_upgrade);
    assert_true(req.conn_close);
    assert_false(req.has_upgrade);

    /* tokens spread over two Connection headers all count */
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0);
    assert_true(req.conn_keepalive);
    assert_true(req.conn_close);
}

static void test_ignores_connection_tokens_that_only_share_a_prefix(void **state)
{
    (void)state;
    assert_int_equal(PARSE_REQ("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, keep-alives, upgrader, x-close\r\n\r\n"), 0);
    assert_false(req.conn_close);
    assert_false(req.conn_keepalive);
    assert_false(req.conn_upgrade);
}

static void test_rejects_malformed_connection_header(void **state)
{
    (void)state;
    static const struct bytes lines[] = {
        B("Connection: close keep-alive"), B("Connection: close;"), B("Connection: \"close\""),
        B("Connection: close/1"),
    };
    expect_header_lines_rejected(lines, N(lines));
}

/* ------------------------------------------------------------------ */
/* head scanner                                                         */
/* ------------------------------------------------------------------ */

static void test_scan_finds_end_of_head(void **state)
{
    (void)state;
    static const char m[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t hs = 99, he = 99;
    assert_int_equal(scan_all(m, sizeof(m) - 1, 1, &hs, &he), H1_SCAN_DONE);
    assert_int_equal(hs, 0);
    assert_int_equal(he, sizeof(m) - 1);
    assert_int_equal(parse_req_n(m + hs, he - hs), 0);
}

static void test_scan_stops_at_first_head_end_and_leaves_following_bytes(void **state)
{
    (void)state;
    static const char head[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n";
    static const char m[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
                            "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t hs, he;
    assert_int_equal(scan_all(m, sizeof(m) - 1, 1, &hs, &he), H1_SCAN_DONE);
    assert_int_equal(hs, 0);
    assert_int_equal(he, sizeof(head) - 1);
}

static void test_scan_needs_more_for_incomplete_head(void **state)
{
    (void)state;
    static const char *const partial[] = {
        "", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r", "\r\n", "\r\n\r",
    };
    for (size_t i = 0; i < N(partial); i++) {
        size_t hs, he;
        int rc = scan_all(partial[i], strlen(partial[i]), 1, &hs, &he);
        if (rc != H1_SCAN_MORE)
            fail_msg("partial head %zu \"%s\": got %d, want MORE", i, show(partial[i], strlen(partial[i])), rc);
    }
}

static void test_scan_ignores_leading_empty_lines_before_request(void **state)
{
    (void)state;
    static const char m[] = "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t hs, he;
    assert_int_equal(scan_all(m, sizeof(m) - 1, 1, &hs, &he), H1_SCAN_DONE);
    assert_int_equal(hs, 6);
    assert_int_equal(he, sizeof(m) - 1);
    assert_int_equal(parse_req_n(m + hs, he - hs), 0);
    assert_int_equal(req.method_id, H1_M_GET);
}

static void test_scan_bounds_leading_empty_lines(void **state)
{
    (void)state;
    char m[512];
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        m[n++] = '\r';
        m[n++] = '\n';
    }
    n += (size_t)snprintf(m + n, sizeof(m) - n, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t hs, he, at;
    assert_int_equal(scan_all(m, n, 1, &hs, &he), H1_SCAN_BARE_LF);
    /* refused early, not after reading every empty line */
    assert_int_equal(scan_bytewise(m, n, 1, &hs, &he, &at), H1_SCAN_BARE_LF);
    assert_true(at <= 64);
    /* and an endless stream of CRLF is refused too, never MORE forever */
    assert_int_equal(scan_all(m, 200, 1, &hs, &he), H1_SCAN_BARE_LF);
}

static void test_scan_refuses_leading_empty_line_when_not_allowed(void **state)
{
    (void)state;
    static const char m[] = "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    size_t hs, he;
    assert_int_equal(scan_all(m, sizeof(m) - 1, 0, &hs, &he), H1_SCAN_BARE_LF);
    assert_int_equal(scan_all(m + 2, sizeof(m) - 3, 0, &hs, &he), H1_SCAN_DONE);
    assert_int_equal(hs, 0);
}

static void test_scan_rejects_bare_lf_line_endings(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),
        B("GET / HTTP/1.1\r\nHost: h\r\n\n"),
        B("GET / HTTP/1.1\r\nHost: h\n\n"),
        B("GET / HTTP/1.1\n\n"),
        B("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("GET / HTTP/1.1\r\nX: a\r\r\n\n"),
    };
    for (size_t i = 0; i < N(cases); i++) {
        size_t hs, he, at;
        int rc = scan_all(cases[i].p, cases[i].len, 1, &hs, &he);
        if (rc != H1_SCAN_BARE_LF)
            fail_msg("case %zu \"%s\": got %d, want BARE_LF", i, show(cases[i].p, cases[i].len), rc);
        rc = scan_bytewise(cases[i].p, cases[i].len, 1, &hs, &he, &at);
        if (rc != H1_SCAN_BARE_LF)
            fail_msg("bytewise case %zu \"%s\": got %d, want BARE_LF", i, show(cases[i].p, cases[i].len), rc);
    }
}

static void test_scan_works_incrementally_byte_by_byte(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        B("\r\n\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"),
        B("GET / HTTP/1.0\r\n\r\n"),
    };
    for (size_t i = 0; i < N(cases); i++) {
        size_t hs1, he1, hs2, he2, at;
        assert_int_equal(scan_all(cases[i].p, cases[i].len, 1, &hs1, &he1), H1_SCAN_DONE);
        assert_int_equal(scan_bytewise(cases[i].p, cases[i].len, 1, &hs2, &he2, &at), H1_SCAN_DONE);
        assert_int_equal(at, cases[i].len); /* not before the last byte */
        assert_int_equal(hs1, hs2);
        assert_int_equal(he1, he2);
        assert_int_equal(he2, cases[i].len);
        assert_int_equal(parse_req_n(cases[i].p + hs2, he2 - hs2), 0);
    }
}

static void test_scan_works_incrementally_in_uneven_pieces(void **state)
{
    (void)state;
    static const char m[] = "\r\nGET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\nBODY";
    const size_t end = sizeof(m) - 1 - 4;
    for (size_t step = 2; step < 12; step++) {
        struct h1_scan s;
        size_t hs = 0, he = 0, n = 0;
        int rc = H1_SCAN_MORE;
        memset(&s, 0, sizeof(s));
        while (rc == H1_SCAN_MORE && n < sizeof(m) - 1) {
            n += step;
            if (n > sizeof(m) - 1)
                n = sizeof(m) - 1;
            rc = h1_scan_head(&s, m, n, 1, &hs, &he);
        }
        assert_int_equal(rc, H1_SCAN_DONE);
        assert_int_equal(hs, 2);
        assert_int_equal(he, end);
    }
}

/* ------------------------------------------------------------------ */
/* responses                                                            */
/* ------------------------------------------------------------------ */

static void test_parses_response_status_line_with_reason(void **state)
{
    (void)state;
    assert_int_equal(PARSE_RESP("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n"), 0);
    assert_int_equal(resp.minor, 1);
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.reason_len, strlen("Not Found"));
    assert_memory_equal(resp.reason, "Not Found", resp.reason_len);
    assert_int_equal(resp.content_length, 9);
    assert_false(resp.chunked);
    assert_int_equal(resp.nheaders, 1);

    assert_int_equal(PARSE_RESP("HTTP/1.0 200 OK\r\n\r\n"), 0);
    assert_int_equal(resp.minor, 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.content_length, -1);
    assert_int_equal(resp.nheaders, 0);
}

static void test_parses_response_status_line_without_reason(void **state)
{
    (void)state;
    assert_int_equal(PARSE_RESP("HTTP/1.1 204\r\n\r\n"), 0);
    assert_int_equal(resp.status, 204);
    assert_int_equal(resp.reason_len, 0);
    assert_int_equal(PARSE_RESP("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.reason_len, 0);
    assert_int_equal(resp.content_length, 0);
}

static void test_rejects_malformed_response_status_lines(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("HTTP/2 200 OK\r\n\r\n"),      B("HTTP/2.0 200 OK\r\n\r\n"),  B("http/1.1 200 OK\r\n\r\n"),
        B("HTTP/1.2 200 OK\r\n\r\n"),    B("HTTP/1.1  200 OK\r\n\r\n"), B("HTTP/1.1 20 OK\r\n\r\n"),
        B("HTTP/1.1 2000 OK\r\n\r\n"),   B("HTTP/1.1 099 OK\r\n\r\n"),  B("HTTP/1.1 abc OK\r\n\r\n"),
        B("HTTP/1.1 200OK\r\n\r\n"),     B("HTTP/1.1 200 OK\n\r\n"),    B("HTTP/1.1 200 O\rK\r\n\r\n"),
        B("HTTP/1.1 200 O\x01K\r\n\r\n"), B("HTTP/1.1 200 O\0K\r\n\r\n"), B("HTTP/1.1\t200 OK\r\n\r\n"),
        B("HTTP/1.1 200\r\n"),           B("HTTP/1.1 200 OK\r\n"),      B("HTTP/1.1"),
        B(""),                           B("ICY 200 OK\r\n\r\n"),
    };
    expect_response_rejected(cases, N(cases));
}

static void test_rejects_response_with_content_length_and_transfer_encoding(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
    };
    expect_response_rejected(cases, N(cases));
}

static void test_rejects_response_with_bad_content_length(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n"),
    };
    expect_response_rejected(cases, N(cases));
}

static void test_rejects_response_with_transfer_encoding_other_than_chunked(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
    };
    expect_response_rejected(cases, N(cases));
}

static void test_rejects_response_header_syntax_errors(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\n: v\r\n\r\n"),
        B("HTTP/1.1 200 OK\r\nX(y): v\r\n\r\n"),
    };
    expect_response_rejected(cases, N(cases));
}

static void test_parses_response_chunked_and_connection_flags(void **state)
{
    (void)state;
    assert_int_equal(PARSE_RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), 0);
    assert_true(resp.chunked);
    assert_int_equal(resp.content_length, -1);
    assert_true(resp.conn_close);
    assert_false(resp.conn_keepalive);
    assert_int_equal(PARSE_RESP("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n"), 0);
    assert_true(resp.conn_keepalive);
    assert_false(resp.conn_close);
    assert_false(resp.chunked);
}

static void test_response_to_head_has_no_body(void **state)
{
    (void)state;
    assert_int_equal(PARSE_RESP("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), 0);
    assert_false(h1_response_has_body(&resp, H1_M_HEAD));
    assert_true(h1_response_has_body(&resp, H1_M_GET));
}

static void test_1xx_204_and_304_responses_have_no_body(void **state)
{
    (void)state;
    static const int none[] = {100, 101, 103, 199, 204, 304};
    struct h1_response r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < N(none); i++) {
        r.status = none[i];
        r.content_length = 10;
        if (h1_response_has_body(&r, H1_M_GET))
            fail_msg("status %d has a body", none[i]);
    }
}

static void test_other_responses_have_a_body(void **state)
{
    (void)state;
    static const int some[] = {200, 201, 202, 203, 205, 206, 300, 301, 302, 303, 305, 307, 400, 404, 500, 503};
    struct h1_response r;
    memset(&r, 0, sizeof(r));
    r.content_length = -1;
    for (size_t i = 0; i < N(some); i++) {
        r.status = some[i];
        if (!h1_response_has_body(&r, H1_M_GET))
            fail_msg("status %d has no body", some[i]);
        if (!h1_response_has_body(&r, H1_M_POST))
            fail_msg("status %d (POST) has no body", some[i]);
        if (h1_response_has_body(&r, H1_M_HEAD))
            fail_msg("status %d to HEAD has a body", some[i]);
    }
}

/* ------------------------------------------------------------------ */
/* hop-by-hop and token lists                                           */
/* ------------------------------------------------------------------ */

static int hop(const char *s)
{
    return h1_is_hop_by_hop(s, strlen(s));
}

static void test_is_hop_by_hop_recognises_hop_by_hop_headers(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "Connection", "connection", "Keep-Alive", "Proxy-Connection", "TE", "te", "Trailer",
        "Transfer-Encoding", "TRANSFER-ENCODING", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
    };
    for (size_t i = 0; i < N(yes); i++)
        if (!hop(yes[i]))
            fail_msg("%s not hop-by-hop", yes[i]);
}

static void test_is_hop_by_hop_rejects_end_to_end_headers(void **state)
{
    (void)state;
    static const char *const no[] = {
        "Host", "Content-Length", "Content-Type", "Authorization", "Cookie", "Trailers", "T",
        "Transfer-Encodings", "Connection2", "X-Connection", "Upgrade-Insecure-Requests", "",
    };
    for (size_t i = 0; i < N(no); i++)
        if (hop(no[i]))
            fail_msg("%s is hop-by-hop", no[i]);
    /* the length is honoured: a prefix of a hop-by-hop name is not one */
    assert_false(h1_is_hop_by_hop("Connection", 4));
    assert_true(h1_is_hop_by_hop("TEXT", 2));
}

static int has_token(const char *list, const char *tok)
{
    return h1_list_has_token(list, strlen(list), tok, strlen(tok));
}

static void test_list_has_token_matches_whole_tokens_case_insensitively(void **state)
{
    (void)state;
    assert_true(has_token("close", "close"));
    assert_true(has_token("Close", "close"));
    assert_true(has_token("keep-alive, close", "close"));
    assert_true(has_token("close,keep-alive", "keep-alive"));
    assert_true(has_token(" \tUpgrade\t ", "upgrade"));
    assert_true(has_token(",,close,,", "close"));
    assert_true(has_token("a , b ,c", "c"));
    assert_true(has_token("x, KEEP-ALIVE", "keep-alive"));
}

#define HDR(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}

static void test_connection_lists_reads_every_connection_header(void **state)
{
    (void)state;
    const struct h1_header h[] = {
        HDR("Host", "a"), HDR("Connection", "keep-alive"), HDR("X-A", "1"), HDR("connection", "X-A, x-b"),
    };
    assert_true(h1_connection_lists(h, 4, 1, "x-a", 3));
    assert_true(h1_connection_lists(h, 4, 1, "X-B", 3));
    assert_true(h1_connection_lists(h, 4, 1, "keep-alive", 10));
    assert_false(h1_connection_lists(h, 4, 1, "host", 4));
    assert_false(h1_connection_lists(h, 4, -1, "x-a", 3)); /* no Connection header */
    assert_false(h1_connection_lists(h, 2, 1, "x-a", 3));  /* only the headers given */
}

static void test_list_has_token_does_not_match_partial_tokens(void **state)
{
    (void)state;
    assert_false(has_token("", "close"));
    assert_false(has_token(",", "close"));
    assert_false(has_token("closed", "close"));
    assert_false(has_token("xclose", "close"));
    assert_false(has_token("clos", "close"));
    assert_false(has_token("keep-alive-close", "close"));
    assert_false(has_token("keep-alive", "keep"));
    /* only the given length is looked at */
    assert_false(h1_list_has_token("close", 4, "close", 5));
    assert_true(h1_list_has_token("close, upgrade", 5, "close", 5));
    assert_true(h1_list_has_token("close", 5, "closed", 5));
    assert_false(h1_list_has_token("close", 5, "closed", 6));
}

/* ------------------------------------------------------------------ */
/* chunked transfer coding                                              */
/* ------------------------------------------------------------------ */

static void test_chunked_decodes_simple_body(void **state)
{
    (void)state;
    static const char body[] = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    expect_dechunk(body, sizeof(body) - 1, "hello world", 11);
    static const char empty[] = "0\r\n\r\n";
    expect_dechunk(empty, sizeof(empty) - 1, "", 0);
}

static void test_chunked_accepts_hex_sizes_in_either_case(void **state)
{
    (void)state;
    char body[256], want[64];
    memset(want, 'x', sizeof(want));
    int n = snprintf(body, sizeof(body), "a\r\n%.10s\r\nA\r\n%.10s\r\n1f\r\n%.31s\r\n0\r\n\r\n", want, want, want);
    expect_dechunk(body, (size_t)n, want, 51);
    /* leading zeros are still one hex number */
    static const char z[] = "0003\r\nabc\r\n000\r\n\r\n";
    expect_dechunk(z, sizeof(z) - 1, "abc", 3);
}

static void test_chunked_accepts_extensions(void **state)
{
    (void)state;
    static const char body[] = "5;name=value\r\nhello\r\n"
                               "1;a;b=c ; d = e\r\n!\r\n"
                               "2;q=\"quoted; \\\"str\\\\ing\"\r\nok\r\n"
                               "0;last\r\n\r\n";
    expect_dechunk(body, sizeof(body) - 1, "hello!ok", 8);
}

static void test_chunked_accepts_trailers(void **state)
{
    (void)state;
    static const char body[] = "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv a l \r\nEmpty:\r\n\r\n";
    expect_dechunk(body, sizeof(body) - 1, "abc", 3);
}

static void test_chunked_accepts_extensions_and_trailers_together(void **state)
{
    (void)state;
    static const char body[] = "4;ext=1\r\nWiki\r\n5;ext=\"two\"\r\npedia\r\n0;end\r\nT: x\r\n\r\n";
    expect_dechunk(body, sizeof(body) - 1, "Wikipedia", 9);
}

static void test_chunked_byte_by_byte_matches_all_at_once(void **state)
{
    (void)state;
    static const struct bytes bodies[] = {
        B("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        B("1\r\n\0\r\n2\r\n\r\n\r\n3\r\n0\r\n\r\n0\r\n\r\n"), /* data that looks like framing */
        B("4;ext=1\r\nWiki\r\n5;ext=\"t\\\"wo\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;e\r\nA: b\r\nC: d\r\n\r\n"),
        B("10\r\n0123456789abcdef\r\n0\r\n\r\n"),
        B("0\r\n\r\n"),
    };
    static const size_t steps[] = {1, 2, 3, 5, 7, 13};
    for (size_t i = 0; i < N(bodies); i++) {
        char whole[1024], piece[1024];
        size_t wl, wu, pl, pu;
        int rc = dechunk(bodies[i].p, bodies[i].len, 0, whole, sizeof(whole), &wl, &wu);
        if (rc != H1_CHUNK_DONE)
            fail_msg("body %zu all at once: got %d", i, rc);
        assert_int_equal(wu, bodies[i].len);
        for (size_t s = 0; s < N(steps); s++) {
            rc = dechunk(bodies[i].p, bodies[i].len, steps[s], piece, sizeof(piece), &pl, &pu);
            if (rc != H1_CHUNK_DONE)
                fail_msg("body %zu step %zu: got %d", i, steps[s], rc);
            assert_int_equal(pu, wu);
            assert_int_equal(pl, wl);
            assert_memory_equal(piece, whole, wl);
        }
    }
}

static void test_chunked_stops_after_last_chunk_leaving_following_bytes(void **state)
{
    (void)state;
    static const char body[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    const size_t end = sizeof("3\r\nabc\r\n0\r\n\r\n") - 1;
    static const size_t steps[] = {0, 1, 4};
    for (size_t s = 0; s < N(steps); s++) {
        char out[16];
        size_t ol, used;
        assert_int_equal(dechunk(body, sizeof(body) - 1, steps[s], out, sizeof(out), &ol, &used), H1_CHUNK_DONE);
        assert_int_equal(used, end);
        assert_int_equal(ol, 3);
    }
    /* feeding more after the end consumes nothing */
    struct h1_chunked c;
    size_t n = 99;
    memset(&c, 0, sizeof(c));
    assert_int_equal(h1_chunked_feed(&c, "0\r\n\r\nxyz", 8, &n), H1_CHUNK_DONE);
    assert_int_equal(n, 5);
    assert_int_equal(h1_chunked_feed(&c, "xyz", 3, &n), H1_CHUNK_DONE);
    assert_int_equal(n, 0);
}

static void test_chunked_needs_more_for_incomplete_body(void **state)
{
    (void)state;
    static const char *const partial[] = {
        "", "5", "5\r", "5\r\n", "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "5\r\nhello\r\n",
        "5;x=\"a", "0\r\n", "0\r\n\r", "0\r\nX: y", "0\r\nX: y\r\n",
    };
    for (size_t i = 0; i < N(partial); i++) {
        char out[16];
        size_t ol, used;
        int rc = dechunk(partial[i], strlen(partial[i]), 0, out, sizeof(out), &ol, &used);
        if (rc != H1_CHUNK_MORE)
            fail_msg("partial %zu \"%s\": got %d, want MORE", i, show(partial[i], strlen(partial[i])), rc);
        assert_int_equal(used, strlen(partial[i]));
    }
}

static void test_chunked_data_state_reports_remaining_bytes(void **state)
{
    (void)state;
    struct h1_chunked c;
    size_t n;
    memset(&c, 0, sizeof(c));
    assert_int_equal(h1_chunked_feed(&c, "1F\r\nrest", 8, &n), H1_CHUNK_DATA);
    assert_int_equal(n, 4);
    assert_int_equal(c.remaining, 31);
    /* in the data state the decoder does not consume anything itself */
    assert_int_equal(h1_chunked_feed(&c, "rest", 4, &n), H1_CHUNK_DATA);
    assert_int_equal(n, 0);
    h1_chunked_data_done(&c, 30);
    assert_int_equal(c.remaining, 1);
    assert_int_equal(c.state, H1_CH_DATA);
    h1_chunked_data_done(&c, 1);
    assert_int_equal(c.total, 31);
    assert_int_equal(c.state, H1_CH_DATA_CR);
}

static void test_chunked_rejects_size_without_digits(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("\r\nhello\r\n0\r\n\r\n"), B(";ext\r\nhello\r\n"), B(" 5\r\nhello\r\n"),
        B("\t5\r\nhello\r\n"), B("5\r\nhello\r\n\r\n0\r\n\r\n"), B("\n"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_non_hex_size(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("g\r\n"), B("5g\r\nhello\r\n"), B("0x5\r\nhello\r\n"), B("-1\r\n"), B("+5\r\nhello\r\n"),
        B("5 \r\nhello\r\n"), B("5.0\r\nhello\r\n"), B("5,5\r\nhello\r\n"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_missing_crlf_after_data(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("5\r\nhelloX\r\n0\r\n\r\n"),    /* one byte too many */
        B("5\r\nhello0\r\n\r\n"),         /* next chunk straight after */
        B("5\r\nhello\r0\r\n\r\n"),
        B("5\r\nhello\r\r\n0\r\n\r\n"),
        B("4\r\nhello\r\n0\r\n\r\n"),     /* size one short */
        B("5\r\nhelloX\n0\r\n\r\n"),      /* one wrong byte where CR belongs */
        B("5\r\nhello\n\n0\r\n\r\n"),
        B("5\r\nhello\rX0\r\n\r\n"),      /* one wrong byte where LF belongs */
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_bare_lf(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("5\nhello\r\n0\r\n\r\n"),       /* after the size */
        B("5\r\nhello\n0\r\n\r\n"),       /* after the data */
        B("5\r\nhello\r\n0\n\r\n"),       /* after the last size */
        B("5\r\nhello\r\n0\r\n\n"),       /* final line */
        B("0\r\nX: y\n\r\n"),             /* after a trailer */
        B("5;ext\nhello\r\n0\r\n\r\n"),   /* after an extension */
        B("5\r\r\nhello\r\n0\r\n\r\n"),   /* CR not followed by LF */
        B("5\rXhello\r\n0\r\n\r\n"),
        B("5;e\rXhello\r\n0\r\n\r\n"),
        B("5\r\nhello\r\n0\rX\r\n"),
        B("0\r\n\r\r"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_oversize_chunk_size(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("FFFFFFFFFFFFFFFF\r\n"),
        B("FFFFFFFFFFFFFFFFF\r\n"),
        B("10000000000000000\r\n"),          /* 2^64: would wrap to 0 */
        B("10000000000000005\r\nhello\r\n"), /* would wrap to 5 */
        B("ffffffffffffffffffffffffffffffff\r\n"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_bad_trailers(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("0\r\n X: y\r\n\r\n"),          /* obs-fold */
        B("0\r\nX: y\r\n\tz\r\n\r\n"),    /* obs-fold continuation */
        B("0\r\nX : y\r\n\r\n"),          /* whitespace before colon */
        B("0\r\nX\r\n\r\n"),              /* no colon */
        B("0\r\n: y\r\n\r\n"),            /* empty name */
        B("0\r\nX(y): z\r\n\r\n"),        /* bad name character */
        B("0\r\nX: a\0b\r\n\r\n"),        /* NUL in value */
        B("0\r\nX: a\x01" "b\r\n\r\n"),   /* CTL in value */
        B("0\r\nX: a\rb\r\n\r\n"),        /* bare CR in value */
        B("0\r\nX: y\r\r\n\r\n"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_control_characters_in_extensions(void **state)
{
    (void)state;
    static const struct bytes cases[] = {
        B("5;a=\x01\r\nhello\r\n0\r\n\r\n"),
        B("5;a\0\r\nhello\r\n0\r\n\r\n"),
        B("5;a=\x7f\r\nhello\r\n0\r\n\r\n"),
        B("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"),
        B("5;a=\"x\r\n\"\r\nhello\r\n0\r\n\r\n"),
        B("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"),
        B("5;a=\x1b\r\nhello\r\n0\r\n\r\n"),
        B("5;a=b\rc\r\nhello\r\n0\r\n\r\n"),
        B("0;a=\x01\r\n\r\n"),
    };
    expect_chunked_rejected(cases, N(cases));
}

static void test_chunked_rejects_oversized_extensions(void **state)
{
    (void)state;
    size_t cap = 20000, n = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    n += (size_t)snprintf(b, cap, "1;x=");
    while (n < 10000)
        b[n++] = 'a';
    n += (size_t)snprintf(b + n, cap - n, "\r\nz\r\n0\r\n\r\n");
    struct bytes cases[] = {{b, n}};
    expect_chunked_rejected(cases, N(cases));
    free(b);
}

static void test_chunked_rejects_oversized_trailers(void **state)
{
    (void)state;
    size_t cap = 40000, n = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    n += (size_t)snprintf(b, cap, "0\r\n");
    for (int i = 0; n < 20000; i++)
        n += (size_t)snprintf(b + n, cap - n, "X-T%d: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", i);
    n += (size_t)snprintf(b + n, cap - n, "\r\n");
    struct bytes cases[] = {{b, n}};
    expect_chunked_rejected(cases, N(cases));
    free(b);
}

/* Limits on size lines apply per line: a long body of many small chunks,
 * each with an extension, is fine; one endless size line is not. */
static void test_chunked_limits_are_per_size_line_not_per_body(void **state)
{
    (void)state;
    size_t n = 20000, len = 0;
    char *body = malloc(n * 16 + 8), *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(body + len, "1;ext=v\r\nx\r\n");
    len += (size_t)sprintf(body + len, "0\r\n\r\n");
    size_t outlen = 0, used = 0;
    assert_int_equal(dechunk(body, len, 0, out, n + 1, &outlen, &used), H1_CHUNK_DONE);
    assert_int_equal(outlen, n);
    free(body);
    free(out);
}

static void test_chunked_rejects_endless_leading_zeros(void **state)
{
    (void)state;
    size_t len = 10000;
    char *body = malloc(len);
    memset(body, '0', len);
    char out[8];
    size_t outlen = 0, used = 0;
    assert_int_equal(dechunk(body, len, 0, out, sizeof(out), &outlen, &used), H1_CHUNK_ERROR);
    assert_true(used <= 4097);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* valid requests */
        cmocka_unit_test(test_parses_valid_get_request),
        cmocka_unit_test(test_parses_post_with_content_length),
        cmocka_unit_test(test_parses_content_length_with_surrounding_ows),
        cmocka_unit_test(test_parses_chunked_request),
        cmocka_unit_test(test_accepts_chunked_transfer_encoding_case_insensitively),
        cmocka_unit_test(test_accepts_http10_request_without_host),
        cmocka_unit_test(test_trims_ows_from_header_values),
        cmocka_unit_test(test_accepts_empty_and_whitespace_only_header_values),
        cmocka_unit_test(test_accepts_obs_text_in_header_values),
        cmocka_unit_test(test_accepts_all_tchar_in_header_names),
        cmocka_unit_test(test_records_method_ids),
        cmocka_unit_test(test_rejects_lower_case_methods),
        cmocka_unit_test(test_accepts_absolute_form_and_asterisk_targets),
        cmocka_unit_test(test_find_header_is_case_insensitive_and_honours_from),
        cmocka_unit_test(test_accepts_host_with_port_and_ip_literals),
        /* request line */
        cmocka_unit_test(test_rejects_double_spaces_in_request_line),
        cmocka_unit_test(test_rejects_request_line_missing_parts),
        cmocka_unit_test(test_rejects_http_versions_other_than_1_0_and_1_1),
        cmocka_unit_test(test_rejects_lowercase_http_version),
        cmocka_unit_test(test_rejects_bare_cr_or_lf_ending_request_line),
        cmocka_unit_test(test_rejects_tabs_in_request_line),
        cmocka_unit_test(test_rejects_control_characters_in_target),
        cmocka_unit_test(test_rejects_non_ascii_bytes_in_target),
        cmocka_unit_test(test_rejects_invalid_method_characters),
        /* header fields */
        cmocka_unit_test(test_rejects_obs_fold_continuation_lines),
        cmocka_unit_test(test_rejects_whitespace_before_colon),
        cmocka_unit_test(test_rejects_invalid_header_name_characters),
        cmocka_unit_test(test_rejects_empty_header_name),
        cmocka_unit_test(test_rejects_nul_in_header_value),
        cmocka_unit_test(test_rejects_bare_cr_in_header_value),
        cmocka_unit_test(test_rejects_bare_lf_in_header_value),
        cmocka_unit_test(test_rejects_other_control_characters_in_header_value),
        cmocka_unit_test(test_rejects_head_without_final_empty_line),
        cmocka_unit_test(test_accepts_exactly_max_headers),
        cmocka_unit_test(test_rejects_more_than_max_headers_with_431),
        /* framing */
        cmocka_unit_test(test_rejects_content_length_with_transfer_encoding),
        cmocka_unit_test(test_rejects_repeated_content_length),
        cmocka_unit_test(test_rejects_non_numeric_content_length),
        cmocka_unit_test(test_rejects_content_length_too_large),
        cmocka_unit_test(test_rejects_transfer_encoding_other_than_chunked),
        cmocka_unit_test(test_rejects_repeated_transfer_encoding_headers),
        cmocka_unit_test(test_rejects_transfer_encoding_in_http10_request),
        /* Host, CONNECT, Expect, Connection */
        cmocka_unit_test(test_rejects_missing_host_in_http11),
        cmocka_unit_test(test_rejects_repeated_host),
        cmocka_unit_test(test_rejects_invalid_host_value),
        cmocka_unit_test(test_rejects_connect_method),
        cmocka_unit_test(test_sets_expect_continue_for_100_continue),
        cmocka_unit_test(test_ignores_expect_continue_in_http10),
        cmocka_unit_test(test_rejects_other_expect_values_with_417),
        cmocka_unit_test(test_parses_connection_close),
        cmocka_unit_test(test_parses_connection_keepalive_and_upgrade_tokens),
        cmocka_unit_test(test_ignores_connection_tokens_that_only_share_a_prefix),
        cmocka_unit_test(test_rejects_malformed_connection_header),
        /* head scanner */
        cmocka_unit_test(test_scan_finds_end_of_head),
        cmocka_unit_test(test_scan_stops_at_first_head_end_and_leaves_following_bytes),
        cmocka_unit_test(test_scan_needs_more_for_incomplete_head),
        cmocka_unit_test(test_scan_ignores_leading_empty_lines_before_request),
        cmocka_unit_test(test_scan_bounds_leading_empty_lines),
        cmocka_unit_test(test_scan_refuses_leading_empty_line_when_not_allowed),
        cmocka_unit_test(test_scan_rejects_bare_lf_line_endings),
        cmocka_unit_test(test_scan_works_incrementally_byte_by_byte),
        cmocka_unit_test(test_scan_works_incrementally_in_uneven_pieces),
        /* responses */
        cmocka_unit_test(test_parses_response_status_line_with_reason),
        cmocka_unit_test(test_parses_response_status_line_without_reason),
        cmocka_unit_test(test_rejects_malformed_response_status_lines),
        cmocka_unit_test(test_rejects_response_with_content_length_and_transfer_encoding),
        cmocka_unit_test(test_rejects_response_with_bad_content_length),
        cmocka_unit_test(test_rejects_response_with_transfer_encoding_other_than_chunked),
        cmocka_unit_test(test_rejects_response_header_syntax_errors),
        cmocka_unit_test(test_parses_response_chunked_and_connection_flags),
        cmocka_unit_test(test_response_to_head_has_no_body),
        cmocka_unit_test(test_1xx_204_and_304_responses_have_no_body),
        cmocka_unit_test(test_other_responses_have_a_body),
        /* hop-by-hop, token lists */
        cmocka_unit_test(test_is_hop_by_hop_recognises_hop_by_hop_headers),
        cmocka_unit_test(test_is_hop_by_hop_rejects_end_to_end_headers),
        cmocka_unit_test(test_list_has_token_matches_whole_tokens_case_insensitively),
        cmocka_unit_test(test_connection_lists_reads_every_connection_header),
        cmocka_unit_test(test_list_has_token_does_not_match_partial_tokens),
        /* chunked */
        cmocka_unit_test(test_chunked_decodes_simple_body),
        cmocka_unit_test(test_chunked_accepts_hex_sizes_in_either_case),
        cmocka_unit_test(test_chunked_accepts_extensions),
        cmocka_unit_test(test_chunked_accepts_trailers),
        cmocka_unit_test(test_chunked_accepts_extensions_and_trailers_together),
        cmocka_unit_test(test_chunked_byte_by_byte_matches_all_at_once),
        cmocka_unit_test(test_chunked_stops_after_last_chunk_leaving_following_bytes),
        cmocka_unit_test(test_chunked_needs_more_for_incomplete_body),
        cmocka_unit_test(test_chunked_data_state_reports_remaining_bytes),
        cmocka_unit_test(test_chunked_rejects_size_without_digits),
        cmocka_unit_test(test_chunked_rejects_non_hex_size),
        cmocka_unit_test(test_chunked_rejects_missing_crlf_after_data),
        cmocka_unit_test(test_chunked_rejects_bare_lf),
        cmocka_unit_test(test_chunked_rejects_oversize_chunk_size),
        cmocka_unit_test(test_chunked_rejects_bad_trailers),
        cmocka_unit_test(test_chunked_rejects_control_characters_in_extensions),
        cmocka_unit_test(test_chunked_rejects_oversized_extensions),
        cmocka_unit_test(test_chunked_rejects_oversized_trailers),
        cmocka_unit_test(test_chunked_limits_are_per_size_line_not_per_body),
        cmocka_unit_test(test_chunked_rejects_endless_leading_zeros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
