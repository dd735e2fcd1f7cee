/*
 * portcullis: strict HTTP/1.1 parser (RFC 9112), written for this project.
 */
#include "h1.h"
#include "base.h"

#include <string.h>

/* field-vchar / obs-text, plus SP and HTAB inside a value */
static inline int h1_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int h1_scan_head(struct h1_scan *s, const char *buf, size_t len, int allow_leading_crlf,
                 size_t *head_start, size_t *head_end)
{
    while (s->pos < len) {
        const char *nl = memchr(buf + s->pos, '\n', len - s->pos);
        if (nl == NULL) {
            s->pos = len;
            return H1_SCAN_MORE;
        }
        size_t i = (size_t)(nl - buf);
        if (i == 0 || buf[i - 1] != '\r' || i - 1 < s->line_start)
            return H1_SCAN_BARE_LF;
        size_t line_len = i - 1 - s->line_start; /* without CRLF */
        s->pos = i + 1;
        if (line_len == 0) {
            if (s->line_start == s->skip) {
                /* empty line before the start line */
                if (!allow_leading_crlf || s->skip >= 16)
                    return H1_SCAN_BARE_LF; /* treated as malformed */
                s->skip = s->pos;
                s->line_start = s->pos;
                continue;
            }
            *head_start = s->skip;
            *head_end = s->pos;
            return H1_SCAN_DONE;
        }
        s->line_start = s->pos;
    }
    return H1_SCAN_MORE;
}

int h1_find_header(const struct h1_header *h, size_t n, const char *name, size_t from)
{
    size_t l = strlen(name);
    for (size_t i = from; i < n; i++)
        if (pc_caseeq(h[i].name, h[i].name_len, name, l))
            return (int)i;
    return -1;
}

int h1_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(hop); i++)
        if (pc_caseeq_lit(name, len, hop[i]))
            return 1;
    return 0;
}

int h1_list_has_token(const char *v, size_t len, const char *token, size_t tl)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t st = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i > st && pc_caseeq(v + st, i - st, token, tl))
            return 1;
        while (i < len && v[i] != ',')
            i++;
    }
    return 0;
}

int h1_connection_lists(const struct h1_header *h, size_t n, int from, const char *name, size_t len)
{
    for (size_t i = from < 0 ? n : (size_t)from; i < n; i++)
        if (pc_caseeq_lit(h[i].name, h[i].name_len, "connection") &&
            h1_list_has_token(h[i].value, h[i].value_len, name, len))
            return 1;
    return 0;
}

/* Is a comma-separated list made only of tokens? */
static int h1_token_list_ok(const char *v, size_t len)
{
    size_t i = 0;
    int seen = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t st = i;
        while (i < len && pc_is_tchar((unsigned char)v[i]))
            i++;
        if (i > st)
            seen = 1;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < len) {
            if (v[i] != ',')
                return 0;
            i++;
        }
    }
    return seen;
}

/*
 * Parse header lines in p[0..len), which ends with the empty line.
 * Returns 0, or 400/431 with *why.
 */
static int h1_parse_fields(const char *p, size_t len, struct h1_header *hdrs, size_t *nhdrs,
                           const char **why)
{
    size_t i = 0, n = 0;
    for (;;) {
        if (i + 1 >= len) {
            *why = "truncated head";
            return 400;
        }
        if (p[i] == '\r' && p[i + 1] == '\n')
            break; /* end of head */
        if (p[i] == ' ' || p[i] == '\t') {
            *why = "obs-fold (line folding) is not allowed";
            return 400;
        }
        size_t ns = i;
        while (i < len && pc_is_tchar((unsigned char)p[i]))
            i++;
        if (i >= len) {
            *why = "truncated header";
            return 400;
        }
        if (p[i] != ':') {
            if (p[i] == ' ' || p[i] == '\t')
                *why = "whitespace before colon in header";
            else
                *why = "invalid character in header name";
            return 400;
        }
        if (i == ns) {
            *why = "empty header name";
            return 400;
        }
        size_t ne = i++;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t vs = i;
        while (i < len && p[i] != '\r') {
            if (!h1_value_char((unsigned char)p[i])) {
                *why = p[i] == '\0' ? "NUL in header value" : (p[i] == '\n' ? "bare LF in header value" : "control character in header value");
                return 400;
            }
            i++;
        }
        if (i + 1 >= len || p[i + 1] != '\n') {
            *why = "CR without LF in header";
            return 400;
        }
        size_t ve = i;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        if (n == H1_MAX_HEADERS) {
            *why = "too many header fields";
            return 431;
        }
        hdrs[n].name = p + ns;
        hdrs[n].name_len = ne - ns;
        hdrs[n].value = p + vs;
        hdrs[n].value_len = ve - vs;
        n++;
        i += 2;
    }
    *nhdrs = n;
    return 0;
}

struct h1_framing {
    int64_t content_length;
    int chunked;
    int conn_close, conn_keepalive, conn_upgrade;
};

/* Content-Length, Transfer-Encoding and Connection; shared by both sides. */
static int h1_framing(const struct h1_header *h, size_t n, struct h1_framing *f, const char **why)
{
    int cl_seen = 0, te_seen = 0;
    f->content_length = -1;
    f->chunked = 0;
    f->conn_close = f->conn_keepalive = f->conn_upgrade = 0;
    for (size_t i = 0; i < n; i++) {
        const struct h1_header *x = &h[i];
        if (pc_caseeq_lit(x->name, x->name_len, "content-length")) {
            uint64_t v;
            if (cl_seen++) {
                *why = "repeated Content-Length";
                return -1;
            }
            if (pc_parse_u64(x->value, x->value_len, &v) != 0 || v > (uint64_t)INT64_MAX / 2) {
                *why = "invalid Content-Length";
                return -1;
            }
            f->content_length = (int64_t)v;
        } else if (pc_caseeq_lit(x->name, x->name_len, "transfer-encoding")) {
            if (te_seen++) {
                *why = "repeated Transfer-Encoding";
                return -1;
            }
            if (!pc_caseeq_lit(x->value, x->value_len, "chunked")) {
                *why = "Transfer-Encoding other than chunked";
                return -1;
            }
            f->chunked = 1;
        } else if (pc_caseeq_lit(x->name, x->name_len, "connection")) {
            if (!h1_token_list_ok(x->value, x->value_len)) {
                *why = "invalid Connection header";
                return -1;
            }
            if (h1_list_has_token(x->value, x->value_len, "close", sizeof("close") - 1))
                f->conn_close = 1;
            if (h1_list_has_token(x->value, x->value_len, "keep-alive", sizeof("keep-alive") - 1))
                f->conn_keepalive = 1;
            if (h1_list_has_token(x->value, x->value_len, "upgrade", sizeof("upgrade") - 1))
                f->conn_upgrade = 1;
        }
    }
    if (cl_seen && te_seen) {
        *why = "both Content-Length and Transfer-Encoding";
        return -1;
    }
    return 0;
}

enum h1_method h1_method_from_name(const char *m, size_t l)
{
    static const struct {
        const char *s;
        enum h1_method id;
    } ms[] = {
        {"GET", H1_M_GET}, {"HEAD", H1_M_HEAD}, {"POST", H1_M_POST}, {"PUT", H1_M_PUT},
        {"DELETE", H1_M_DELETE}, {"PATCH", H1_M_PATCH}, {"OPTIONS", H1_M_OPTIONS},
        {"TRACE", H1_M_TRACE}, {"CONNECT", H1_M_CONNECT},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(ms); i++)
        if (pc_memeq(m, l, ms[i].s, strlen(ms[i].s)))
            return ms[i].id;
    return H1_M_OTHER;
}

/* Host = uri-host [ ":" port ]; reg-name, IPv4 or [IPv6]. */
static int h1_host_ok(const char *v, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("-._~!$&'()*+,;=:[]%", c) != NULL && c != '\0')
            continue;
        return 0;
    }
    return 1;
}

int h1_parse_request(const char *p, size_t len, struct h1_request *r, const char **why)
{
    size_t i = 0;
    int rc;

    memset(r, 0, offsetof(struct h1_request, headers));
    r->nheaders = 0;
    r->content_length = -1;
    r->host_index = -1;
    r->conn_close = r->conn_keepalive = r->conn_upgrade = r->has_upgrade = 0;
    r->chunked = r->expect_continue = 0;

    /* method SP request-target SP HTTP-version CRLF */
    while (i < len && pc_is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= len || p[i] != ' ') {
        *why = "malformed request line (method)";
        return 400;
    }
    for (size_t k = 0; k < i; k++) {
        /* methods are case-sensitive; gunicorn >= 22 refuses lower case,
         * and a backend that upper-cased them would run "get" as GET
         * after a GET-only rule had not matched it */
        if (p[k] >= 'a' && p[k] <= 'z') {
            *why = "lower-case letters in the method";
            return 400;
        }
    }
    r->method = p;
    r->method_len = i;
    r->method_id = h1_method_from_name(p, i);
    size_t ts = ++i;
    while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == ts || i >= len || p[i] != ' ') {
        *why = "malformed request line (target)";
        return 400;
    }
    r->target = p + ts;
    r->target_len = i - ts;
    i++;
    if (len - i < 10 || memcmp(p + i, "HTTP/1.", 7) != 0 || (p[i + 7] != '0' && p[i + 7] != '1') ||
        p[i + 8] != '\r' || p[i + 9] != '\n') {
        *why = "malformed request line (version)";
        return 400;
    }
    r->minor = p[i + 7] - '0';
    i += 10;

    rc = h1_parse_fields(p + i, len - i, r->headers, &r->nheaders, why);
    if (rc != 0)
        return rc;

    struct h1_framing f;
    if (h1_framing(r->headers, r->nheaders, &f, why) != 0)
        return 400;
    r->content_length = f.content_length;
    r->chunked = f.chunked ? 1 : 0;
    r->conn_close = f.conn_close ? 1 : 0;
    r->conn_keepalive = f.conn_keepalive ? 1 : 0;
    r->conn_upgrade = f.conn_upgrade ? 1 : 0;
    if (r->chunked && r->minor == 0) {
        *why = "Transfer-Encoding in an HTTP/1.0 request";
        return 400;
    }

    int hosts = 0;
    for (size_t k = 0; k < r->nheaders; k++) {
        const struct h1_header *x = &r->headers[k];
        if (pc_caseeq_lit(x->name, x->name_len, "host")) {
            if (hosts++) {
                *why = "repeated Host";
                return 400;
            }
            if (!h1_host_ok(x->value, x->value_len)) {
                *why = "invalid Host";
                return 400;
            }
            r->host_index = (int)k;
        } else if (pc_caseeq_lit(x->name, x->name_len, "expect")) {
            if (!pc_caseeq_lit(x->value, x->value_len, "100-continue")) {
                *why = "unsupported Expect";
                return 417;
            }
            if (r->minor == 1)
                r->expect_continue = 1;
        } else if (pc_caseeq_lit(x->name, x->name_len, "upgrade")) {
            r->has_upgrade = 1;
        }
    }
    if (r->minor == 1 && hosts == 0) {
        *why = "missing Host";
        return 400;
    }
    if (r->method_id == H1_M_CONNECT) {
        *why = "CONNECT is not supported";
        return 400;
    }
    return 0;
}

int h1_parse_response(const char *p, size_t len, struct h1_response *r, const char **why)
{
    size_t i = 0;
    r->nheaders = 0;
    r->content_length = -1;
    r->chunked = r->conn_close = r->conn_keepalive = 0;
    if (len < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ') {
        *why = "malformed status line";
        return -1;
    }
    r->minor = p[7] - '0';
    if (p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        *why = "malformed status code";
        return -1;
    }
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    i = 12;
    if (p[i] == ' ') {
        i++;
        size_t rs = i;
        while (i < len && p[i] != '\r') {
            if (!h1_value_char((unsigned char)p[i])) {
                *why = "control character in reason phrase";
                return -1;
            }
            i++;
        }
        r->reason = p + rs;
        r->reason_len = i - rs;
    } else {
        r->reason = p + i;
        r->reason_len = 0;
    }
    if (i + 1 >= len || p[i] != '\r' || p[i + 1] != '\n') {
        *why = "malformed status line";
        return -1;
    }
    i += 2;
    if (h1_parse_fields(p + i, len - i, r->headers, &r->nheaders, why) != 0)
        return -1;
    struct h1_framing f;
    if (h1_framing(r->headers, r->nheaders, &f, why) != 0)
        return -1;
    r->content_length = f.content_length;
    r->chunked = f.chunked ? 1 : 0;
    r->conn_close = f.conn_close ? 1 : 0;
    r->conn_keepalive = f.conn_keepalive ? 1 : 0;
    r->conn_upgrade = f.conn_upgrade ? 1 : 0;
    return 0;
}

int h1_response_has_body(const struct h1_response *r, enum h1_method req_method)
{
    if (req_method == H1_M_HEAD)
        return 0;
    if (r->status < 200 || r->status == 204 || r->status == 304)
        return 0;
    return 1;
}

/* ---- chunked ---- */

#define H1_CHUNK_META_MAX 8192  /* all trailer fields */
#define H1_CHUNK_LINE_MAX 4096  /* one chunk-size line, extensions included */

int h1_chunked_feed(struct h1_chunked *c, const char *p, size_t len, size_t *consumed)
{
    size_t i = 0;
    int rc = H1_CHUNK_MORE;

    while (i < len) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->state) {
        case H1_CH_SIZE:
        case H1_CH_SIZE_DIGITS: {
            int h = pc_hexval(ch);
            if (h >= 0) {
                /* leading zeros count too: a size line is short */
                if (++c->line > H1_CHUNK_LINE_MAX || c->remaining > (UINT64_MAX >> 8)) {
                    rc = H1_CHUNK_ERROR; /* absurd chunk size */
                    goto out;
                }
                c->remaining = (c->remaining << 4) | (uint64_t)h;
                c->state = H1_CH_SIZE_DIGITS;
                i++;
                break;
            }
            if (c->state == H1_CH_SIZE) {
                rc = H1_CHUNK_ERROR; /* no digits */
                goto out;
            }
            if (ch == ';') {
                c->state = H1_CH_EXT;
                i++;
            } else if (ch == '\r') {
                c->state = H1_CH_SIZE_LF;
                i++;
            } else {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            break;
        }
        case H1_CH_EXT:
            /* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) */
            if (++c->line > H1_CHUNK_LINE_MAX) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            if (ch == '\r') {
                c->state = H1_CH_SIZE_LF;
            } else if (ch == '"') {
                c->state = H1_CH_EXT_QUOTED;
            } else if (!(pc_is_tchar(ch) || ch == ';' || ch == '=' || ch == ' ' || ch == '\t')) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            i++;
            break;
        case H1_CH_EXT_QUOTED:
            if (++c->line > H1_CHUNK_LINE_MAX) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            if (ch == '"')
                c->state = H1_CH_EXT;
            else if (ch == '\\')
                c->state = H1_CH_EXT_QUOTED_ESC;
            else if (!h1_value_char(ch)) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            i++;
            break;
        case H1_CH_EXT_QUOTED_ESC:
            if (!h1_value_char(ch)) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            c->state = H1_CH_EXT_QUOTED;
            i++;
            break;
        case H1_CH_SIZE_LF:
            if (ch != '\n') {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            i++;
            if (c->remaining == 0) {
                c->state = H1_CH_TRAILER_START;
            } else {
                c->state = H1_CH_DATA;
                rc = H1_CHUNK_DATA;
                goto out;
            }
            break;
        case H1_CH_DATA:
            rc = H1_CHUNK_DATA;
            goto out;
        case H1_CH_DATA_CR:
            if (ch != '\r') {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            c->state = H1_CH_DATA_LF;
            i++;
            break;
        case H1_CH_DATA_LF:
            if (ch != '\n') {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            c->state = H1_CH_SIZE;
            c->remaining = 0;
            c->line = 0;
            i++;
            break;
        case H1_CH_TRAILER_START:
            if (ch == '\r') {
                c->state = H1_CH_END_LF;
                i++;
            } else if (pc_is_tchar(ch)) {
                c->state = H1_CH_TRAILER_NAME;
            } else {
                rc = H1_CHUNK_ERROR; /* obs-fold, bare LF, bad name */
                goto out;
            }
            break;
        case H1_CH_TRAILER_NAME:
            if (++c->meta > H1_CHUNK_META_MAX) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            if (ch == ':')
                c->state = H1_CH_TRAILER_VALUE;
            else if (!pc_is_tchar(ch)) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            i++;
            break;
        case H1_CH_TRAILER_VALUE:
            if (++c->meta > H1_CHUNK_META_MAX) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            if (ch == '\r')
                c->state = H1_CH_TRAILER_LF;
            else if (!h1_value_char(ch)) {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            i++;
            break;
        case H1_CH_TRAILER_LF:
            if (ch != '\n') {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            c->state = H1_CH_TRAILER_START;
            i++;
            break;
        case H1_CH_END_LF:
            if (ch != '\n') {
                rc = H1_CHUNK_ERROR;
                goto out;
            }
            c->state = H1_CH_DONE;
            i++;
            rc = H1_CHUNK_DONE;
            goto out;
        case H1_CH_DONE:
            rc = H1_CHUNK_DONE;
            goto out;
        }
    }
    if (c->state == H1_CH_DATA)
        rc = H1_CHUNK_DATA;
out:
    *consumed = i;
    return rc;
}

void h1_chunked_data_done(struct h1_chunked *c, uint64_t n)
{
    c->remaining -= n;
    c->total += n;
    if (c->remaining == 0)
        c->state = H1_CH_DATA_CR;
}
