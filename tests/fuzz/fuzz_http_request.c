/*
 * libFuzzer target: the HTTP/1.1 request path of proxy/h1.c.
 *
 * The input is what a client sends on a connection. The head is found with
 * h1_scan_head() (at once, byte by byte, and in random pieces: all three
 * must agree), parsed with h1_parse_request() from an exact-size copy (so
 * ASan sees any read past the head), checked field by field, serialised
 * again the way the proxy forwards it and re-parsed (same result). When the
 * request is chunked, the rest of the input is decoded with
 * h1_chunked_feed()/h1_chunked_data_done(), whole and in random pieces; the
 * outcome, the decoded bytes and the framing bytes consumed must be equal.
 * The head is also parsed as a response (h1_parse_response), for coverage
 * and its own invariants. Credentials are collected from an accepted
 * request (policies/identity.c: cookies as Werkzeug splits them, the
 * Authorization header, a token header, a query parameter): every one
 * points into the header it came from (or is an owned, NUL-terminated
 * copy), one per token header, and collecting twice gives the same.
 */
#include "fuzz_common.h"

#include <string.h>

#include "../../lib/h1.h"
#include "../../lib/base.h"
#include "../../rules/canon.h"
#include "../../proxy/config.h"
#include "../../policies/identity.h"

static const char identity_yaml[] =
    "listen: 127.0.0.1:8080\n"
    "upstream: http://127.0.0.1:5001\n"
    "identity:\n"
    "  secret: fuzz\n"
    "  sources: [\"cookie:__Host-access_token\", \"cookie:access_token\", \"header:Authorization\",\n"
    "            \"header:X-Api-Token\", \"query:_token\"]\n";

static struct pc_config *idcfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *errors = NULL;
    (void)argc;
    (void)argv;
    pc_hash_init();
    idcfg = cfg_load_text("fuzz-identity.yaml", identity_yaml, sizeof(identity_yaml) - 1, NULL, &errors);
    if (idcfg == NULL || idcfg->identity->nsources != 5) {
        fprintf(stderr, "fuzz_http_request: identity config refused:\n%s", errors ? errors : "?\n");
        abort();
    }
    return 0;
}

static int fz_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int fz_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int fz_caseeq(const char *a, size_t al, const char *lit)
{
    size_t l = strlen(lit);
    if (al != l)
        return 0;
    for (size_t i = 0; i < l; i++)
        if (fz_lower((unsigned char)a[i]) != fz_lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

/* ---- the head ---- */

struct scan_out {
    int rc;
    size_t start, end;
};

static struct scan_out scan_pieces(const char *buf, size_t len, struct fz_rng *rng, int bytewise)
{
    struct h1_scan s = {0};
    struct scan_out o = {H1_SCAN_MORE, 0, 0};
    size_t have = 0;
    while (have < len) {
        size_t step = bytewise ? 1 : fz_rng_piece(rng, 64);
        have = have + step > len ? len : have + step;
        o.rc = h1_scan_head(&s, buf, have, 1, &o.start, &o.end);
        if (o.rc != H1_SCAN_MORE)
            return o;
        FZ_CHECK(s.pos == have, "scanner did not look at every byte (%zu of %zu)", s.pos, have);
        /* nothing new: still nothing */
        if (!bytewise && (fz_rng_next(rng) & 7) == 0) {
            o.rc = h1_scan_head(&s, buf, have, 1, &o.start, &o.end);
            FZ_CHECK(o.rc == H1_SCAN_MORE, "rescan without new bytes changed the answer");
        }
    }
    return o;
}

static void check_header(const char *head, size_t hl, const struct h1_header *x)
{
    FZ_CHECK(x->name >= head && x->name + x->name_len < head + hl, "header name outside the head");
    FZ_CHECK(x->name_len > 0, "empty header name");
    for (size_t i = 0; i < x->name_len; i++)
        FZ_CHECK(fz_tchar((unsigned char)x->name[i]), "header name byte 0x%02x", (unsigned char)x->name[i]);
    FZ_CHECK(x->name[x->name_len] == ':', "header name not followed by ':'");
    FZ_CHECK(x->value >= head && x->value + x->value_len <= head + hl, "header value outside the head");
    for (size_t i = 0; i < x->value_len; i++) {
        unsigned char c = (unsigned char)x->value[i];
        FZ_CHECK(c != '\r' && c != '\n' && c != '\0', "CR/LF/NUL in a header value");
        FZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "control byte 0x%02x in a header value", c);
    }
    if (x->value_len > 0) {
        FZ_CHECK(x->value[0] != ' ' && x->value[0] != '\t', "leading OWS kept in a value");
        FZ_CHECK(x->value[x->value_len - 1] != ' ' && x->value[x->value_len - 1] != '\t',
                 "trailing OWS kept in a value");
    }
}

static size_t count_crlf(const char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            n++;
    return n;
}

static void check_request(const char *head, size_t hl, const struct h1_request *r)
{
    FZ_CHECK(r->method == head && r->method_len > 0, "method does not start the head");
    for (size_t i = 0; i < r->method_len; i++)
        FZ_CHECK(fz_tchar((unsigned char)r->method[i]), "method byte");
    FZ_CHECK(r->target_len > 0 && r->target > head && r->target + r->target_len < head + hl, "target bounds");
    for (size_t i = 0; i < r->target_len; i++) {
        unsigned char c = (unsigned char)r->target[i];
        FZ_CHECK(c > 0x20 && c < 0x7f, "target byte 0x%02x", c);
    }
    FZ_CHECK(r->minor == 0 || r->minor == 1, "minor %d", r->minor);
    FZ_CHECK(r->method_id != H1_M_CONNECT, "CONNECT accepted");
    /* request line + one line per header + the empty line */
    size_t lines = count_crlf(head, hl);
    FZ_CHECK(lines >= 2 && r->nheaders == lines - 2, "%zu headers for %zu lines", r->nheaders, lines);
    FZ_CHECK(r->nheaders <= H1_MAX_HEADERS, "too many headers kept");

    int ncl = 0, nte = 0, nhost = 0, nexpect = 0;
    int64_t cl = -1;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct h1_header *x = &r->headers[i];
        check_header(head, hl, x);
        if (fz_caseeq(x->name, x->name_len, "content-length")) {
            ncl++;
            FZ_CHECK(x->value_len > 0 && x->value_len <= 19, "odd Content-Length accepted");
            cl = 0;
            for (size_t k = 0; k < x->value_len; k++) {
                FZ_CHECK(x->value[k] >= '0' && x->value[k] <= '9', "non-digit Content-Length");
                cl = cl * 10 + (x->value[k] - '0');
            }
        } else if (fz_caseeq(x->name, x->name_len, "transfer-encoding")) {
            nte++;
            FZ_CHECK(fz_caseeq(x->value, x->value_len, "chunked"), "Transfer-Encoding other than chunked");
        } else if (fz_caseeq(x->name, x->name_len, "host")) {
            nhost++;
            FZ_CHECK(r->host_index == (int)i, "host_index %d, Host at %zu", r->host_index, i);
        } else if (fz_caseeq(x->name, x->name_len, "expect")) {
            nexpect++;
        }
    }
    FZ_CHECK(ncl <= 1 && nte <= 1 && nhost <= 1, "repeated CL/TE/Host accepted");
    FZ_CHECK(!(ncl && nte), "both Content-Length and Transfer-Encoding");
    FZ_CHECK(r->chunked == (nte == 1), "chunked flag does not follow Transfer-Encoding");
    if (r->chunked) {
        FZ_CHECK(r->content_length == -1, "chunked with content_length %lld", (long long)r->content_length);
        FZ_CHECK(r->minor == 1, "chunked HTTP/1.0 request");
    }
    FZ_CHECK(r->content_length == cl, "content_length %lld, header says %lld", (long long)r->content_length,
             (long long)cl);
    FZ_CHECK(r->content_length >= -1, "negative content_length");
    if (nhost == 0)
        FZ_CHECK(r->host_index == -1, "host_index without Host");
    if (r->minor == 1)
        FZ_CHECK(nhost == 1, "HTTP/1.1 without Host accepted");
    if (r->expect_continue)
        FZ_CHECK(nexpect > 0 && r->minor == 1, "expect_continue without Expect");
}

/* Serialise a parsed request as the proxy forwards one: "name: value". */
static char *serialise(const struct h1_request *r, size_t *len)
{
    struct pc_buf b = {0};
    pc_buf_add(&b, r->method, r->method_len);
    pc_buf_addc(&b, ' ');
    pc_buf_add(&b, r->target, r->target_len);
    pc_buf_adds(&b, r->minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    for (size_t i = 0; i < r->nheaders; i++) {
        pc_buf_add(&b, r->headers[i].name, r->headers[i].name_len);
        pc_buf_adds(&b, ": ");
        pc_buf_add(&b, r->headers[i].value, r->headers[i].value_len);
        pc_buf_adds(&b, "\r\n");
    }
    pc_buf_adds(&b, "\r\n");
    /* exact size, for ASan */
    char *out = malloc(b.len);
    memcpy(out, b.p, b.len);
    *len = b.len;
    pc_buf_free(&b);
    return out;
}

static void check_same(const struct h1_request *a, const struct h1_request *b)
{
    FZ_CHECK(pc_memeq(a->method, a->method_len, b->method, b->method_len), "method differs");
    FZ_CHECK(a->method_id == b->method_id, "method_id differs");
    FZ_CHECK(pc_memeq(a->target, a->target_len, b->target, b->target_len), "target differs");
    FZ_CHECK(a->minor == b->minor, "minor differs");
    FZ_CHECK(a->nheaders == b->nheaders, "header count differs");
    for (size_t i = 0; i < a->nheaders; i++) {
        FZ_CHECK(pc_memeq(a->headers[i].name, a->headers[i].name_len, b->headers[i].name, b->headers[i].name_len),
                 "header %zu name differs", i);
        FZ_CHECK(pc_memeq(a->headers[i].value, a->headers[i].value_len, b->headers[i].value,
                          b->headers[i].value_len), "header %zu value differs", i);
    }
    FZ_CHECK(a->content_length == b->content_length, "content_length differs");
    FZ_CHECK(a->chunked == b->chunked && a->conn_close == b->conn_close &&
             a->conn_keepalive == b->conn_keepalive && a->conn_upgrade == b->conn_upgrade &&
             a->has_upgrade == b->has_upgrade && a->expect_continue == b->expect_continue,
             "framing/connection flags differ");
    FZ_CHECK(a->host_index == b->host_index, "host_index differs");
}

/* ---- chunked bodies ---- */

struct chunk_out {
    int rc;             /* H1_CHUNK_DONE, H1_CHUNK_ERROR, or H1_CHUNK_MORE (ran out) */
    size_t consumed;    /* bytes of the body used, data included */
    uint64_t data;      /* data bytes moved */
    uint64_t hash;      /* FNV-1a of the data bytes */
    uint64_t total;     /* c.total at the end */
};

static void chunk_run(const char *p, size_t len, struct fz_rng *rng, struct chunk_out *o)
{
    struct h1_chunked c;
    size_t pos = 0;
    memset(&c, 0, sizeof(c));
    memset(o, 0, sizeof(*o));
    o->rc = H1_CHUNK_MORE;
    o->hash = 1469598103934665603ULL;
    while (pos < len) {
        size_t end = rng ? pos + fz_rng_piece(rng, 32) : len;
        if (end > len)
            end = len;
        while (pos < end) {
            if (c.state == H1_CH_DATA) {
                FZ_CHECK(c.remaining > 0, "in chunk data with nothing remaining");
                size_t n = end - pos;
                if ((uint64_t)n > c.remaining)
                    n = (size_t)c.remaining;
                for (size_t k = 0; k < n; k++) {
                    o->hash ^= (unsigned char)p[pos + k];
                    o->hash *= 1099511628211ULL;
                }
                uint64_t before = c.total;
                h1_chunked_data_done(&c, n);
                FZ_CHECK(c.total == before + n, "total not advanced by the data moved");
                o->data += n;
                pos += n;
                continue;
            }
            size_t used = (size_t)-1, avail = end - pos;
            int rc = h1_chunked_feed(&c, p + pos, avail, &used);
            FZ_CHECK(used <= avail, "consumed %zu of %zu", used, avail);
            pos += used;
            if (rc == H1_CHUNK_ERROR || rc == H1_CHUNK_DONE) {
                o->rc = rc;
                o->consumed = pos;
                o->total = c.total;
                if (rc == H1_CHUNK_DONE) {
                    FZ_CHECK(c.state == H1_CH_DONE, "DONE in state %d", (int)c.state);
                    FZ_CHECK(pos >= 5 && p[pos - 2] == '\r' && p[pos - 1] == '\n',
                             "chunked body did not end with CRLF");
                    /* after the end, nothing more is taken */
                    size_t more = 99;
                    if (pos < len) {
                        rc = h1_chunked_feed(&c, p + pos, len - pos, &more);
                        FZ_CHECK(rc == H1_CHUNK_DONE && more == 0, "bytes taken after the last chunk");
                    }
                }
                return;
            }
            if (rc == H1_CHUNK_DATA)
                FZ_CHECK(c.state == H1_CH_DATA && c.remaining > 0, "DATA without data to move");
            else
                FZ_CHECK(rc == H1_CHUNK_MORE && used == avail, "MORE without using every byte");
        }
    }
    o->consumed = pos;
    o->total = c.total;
}

static void check_chunked(const char *body, size_t blen, struct fz_rng *rng)
{
    struct chunk_out whole, piece;
    chunk_run(body, blen, NULL, &whole);
    FZ_CHECK(whole.total == whole.data, "total %llu, moved %llu", (unsigned long long)whole.total,
             (unsigned long long)whole.data);
    FZ_CHECK(whole.data <= whole.consumed, "more data than bytes");
    if (whole.rc == H1_CHUNK_MORE)
        FZ_CHECK(whole.consumed == blen, "ran out without using everything");
    for (int round = 0; round < 2; round++) {
        chunk_run(body, blen, rng, &piece);
        FZ_CHECK(piece.rc == whole.rc, "piecewise outcome %d, whole %d", piece.rc, whole.rc);
        FZ_CHECK(piece.consumed == whole.consumed, "piecewise consumed %zu, whole %zu", piece.consumed,
                 whole.consumed);
        FZ_CHECK(piece.data == whole.data && piece.hash == whole.hash && piece.total == whole.total,
                 "piecewise data differs from whole");
    }
}

/* ---- credentials ---- */

static int inside(const char *p, size_t len, const char *base, size_t blen)
{
    return p >= base && p + len <= base + blen;
}

static void check_creds(const struct h1_request *r)
{
    const struct id_config *id = idcfg->identity;
    struct id_cred a[ID_MAX_CREDS], b[ID_MAX_CREDS];
    const char *query = NULL;
    size_t ql = 0;

    char *path = malloc(r->target_len + 2);
    struct canon_result cr;
    const char *why;
    if (canon_target(r->target, r->target_len, r->method_id == H1_M_OPTIONS, path, &cr, &why) == 0 &&
        cr.has_query) {
        query = cr.query;
        ql = cr.query_len;
    }
    struct pc_pool pa = {0}, pb = {0}; /* two requests' pools */
    size_t cla, clb;
    const char *sa = id_joined_cookies(r->headers, r->nheaders, &cla, &pa);
    const char *sb = id_joined_cookies(r->headers, r->nheaders, &clb, &pb);
    int n = id_collect(id, r->headers, r->nheaders, sa, cla, query, ql, a, &pa);
    int n2 = id_collect(id, r->headers, r->nheaders, sb, clb, query, ql, b, &pb);
    FZ_CHECK(n == n2, "collected %d, then %d", n, n2);
    FZ_CHECK(n >= -1 && n <= ID_MAX_CREDS, "%d credentials", n);
    size_t want_hdr = 0, want_auth = 0, got_hdr = 0, got_auth = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        want_hdr += fz_caseeq(r->headers[i].name, r->headers[i].name_len, "x-api-token");
        want_auth += fz_caseeq(r->headers[i].name, r->headers[i].name_len, "authorization");
    }
    for (int k = 0; k < n; k++) {
        const struct id_cred *c = &a[k];
        FZ_CHECK(c->source >= 0 && (size_t)c->source < id->nsources, "source %d", c->source);
        FZ_CHECK(b[k].source == c->source && pc_memeq(b[k].token, b[k].len, c->token, c->len),
                 "second collection differs");
        const struct id_source *src = &id->sources[c->source];
        const char *hname = src->kind == ID_SRC_COOKIE ? "cookie" : src->name;
        int found = src->kind == ID_SRC_COOKIE && sa != NULL && inside(c->token, c->len, sa, cla);
        for (size_t i = 0; i < r->nheaders && !found; i++)
            found = fz_caseeq(r->headers[i].name, r->headers[i].name_len, hname) &&
                    inside(c->token, c->len, r->headers[i].value, r->headers[i].value_len);
        if (!found) {
            /* a copy in the pool: an unquoted cookie or a decoded query value */
            FZ_CHECK(c->token[c->len] == '\0', "copied credential not terminated");
            FZ_CHECK(src->kind != ID_SRC_HEADER, "header credential copied, or not inside its header");
            continue;
        }
        FZ_CHECK(src->kind != ID_SRC_QUERY, "query credential not decoded into a copy");
        if (src->kind == ID_SRC_COOKIE) {
            FZ_CHECK(memchr(c->token, ';', c->len) == NULL, "unquoted cookie value with ';'");
        } else if (fz_caseeq(src->name, strlen(src->name), "authorization")) {
            got_auth++;
            if (c->len > 0)
                FZ_CHECK(c->token[0] != ' ' && c->token[0] != '\t', "bearer token starts with a blank");
        } else {
            got_hdr++;
        }
    }
    if (n >= 0) {
        FZ_CHECK(got_hdr == want_hdr, "%zu X-Api-Token headers, %zu credentials", want_hdr, got_hdr);
        FZ_CHECK(got_auth == want_auth, "%zu Authorization headers, %zu credentials", want_auth, got_auth);
    } else {
        /* more than ID_MAX_CREDS: headers alone, or with cookies/query */
        size_t cookies = 0;
        for (size_t i = 0; i < r->nheaders; i++)
            cookies += fz_caseeq(r->headers[i].name, r->headers[i].name_len, "cookie");
        FZ_CHECK(want_hdr + want_auth > ID_MAX_CREDS || cookies > 0 || query != NULL,
                 "overflow with %zu credentials", want_hdr + want_auth);
    }
    pc_pool_free(&pa);
    pc_pool_free(&pb);
    free(path);
}

/* ---- responses (the same bytes read as an upstream's head) ---- */

static void check_response(const char *head, size_t hl)
{
    struct h1_response resp;
    const char *why = NULL;
    if (h1_parse_response(head, hl, &resp, &why) != 0) {
        FZ_CHECK(why != NULL, "response refused without a reason");
        return;
    }
    FZ_CHECK(resp.status >= 100 && resp.status <= 999, "status %d", resp.status);
    FZ_CHECK(resp.minor == 0 || resp.minor == 1, "response minor");
    if (resp.chunked)
        FZ_CHECK(resp.content_length == -1, "chunked response with a content_length");
    for (size_t i = 0; i < resp.nheaders; i++)
        check_header(head, hl, &resp.headers[i]);
    for (size_t i = 0; i < resp.reason_len; i++)
        FZ_CHECK(resp.reason[i] != '\r' && resp.reason[i] != '\n' && resp.reason[i] != '\0', "reason byte");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct fz_rng rng;
    static struct h1_request req, again; /* large: keep them off the stack */
    fz_rng_seed(&rng, data, size);

    struct h1_scan s = {0};
    struct scan_out whole = {0, 0, 0};
    whole.rc = h1_scan_head(&s, buf, size, 1, &whole.start, &whole.end);
    struct scan_out bytes = scan_pieces(buf, size, &rng, 1);
    struct scan_out piece = scan_pieces(buf, size, &rng, 0);
    FZ_CHECK(bytes.rc == whole.rc && piece.rc == whole.rc, "scan: whole %d, bytewise %d, pieces %d", whole.rc,
             bytes.rc, piece.rc);
    FZ_CHECK(whole.rc == H1_SCAN_MORE || whole.rc == H1_SCAN_DONE || whole.rc == H1_SCAN_BARE_LF, "scan rc");
    if (whole.rc != H1_SCAN_DONE)
        return 0;
    FZ_CHECK(bytes.start == whole.start && bytes.end == whole.end && piece.start == whole.start &&
             piece.end == whole.end, "scan bounds differ");

    size_t hs = whole.start, he = whole.end;
    FZ_CHECK(hs <= 32 && hs % 2 == 0, "skipped %zu bytes", hs);
    for (size_t i = 0; i < hs; i += 2)
        FZ_CHECK(buf[i] == '\r' && buf[i + 1] == '\n', "skipped bytes are not empty lines");
    FZ_CHECK(he <= size && he >= hs + 4, "head bounds %zu..%zu", hs, he);
    FZ_CHECK(memcmp(buf + he - 4, "\r\n\r\n", 4) == 0, "head does not end with an empty line");
    for (size_t i = hs; i < he; i++)
        if (buf[i] == '\n')
            FZ_CHECK(i > hs && buf[i - 1] == '\r', "bare LF inside a scanned head");

    /* exact-size copy: any read past the head is an ASan report */
    size_t hl = he - hs;
    char *head = malloc(hl);
    memcpy(head, buf + hs, hl);

    const char *why = NULL;
    int rc = h1_parse_request(head, hl, &req, &why);
    check_response(head, hl);
    if (rc != 0) {
        FZ_CHECK(rc == 400 || rc == 417 || rc == 431 || rc == 501, "status %d", rc);
        FZ_CHECK(why != NULL && why[0] != '\0', "refused without a reason");
        free(head);
        return 0;
    }
    check_request(head, hl, &req);

    /* forwarded as the proxy serialises it, it reads the same */
    size_t sl;
    char *ser = serialise(&req, &sl);
    why = NULL;
    int rc2 = h1_parse_request(ser, sl, &again, &why);
    FZ_CHECK(rc2 == 0, "serialised request refused: %s", why ? why : "?");
    check_same(&req, &again);
    free(ser);

    check_creds(&req);
    if (req.chunked)
        check_chunked(buf + he, size - he, &rng);
    free(head);
    return 0;
}
