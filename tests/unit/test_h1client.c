/*
 * proxy/h1client.c and proxy/upstream.c on their own: the HTTP/1 upstream
 * client against a real TCP peer driven by the test, with the client's
 * side as a socket pair whose output the test reads (or leaves full) and
 * h1c_ops that only record what the exchange asked for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../../proxy/worker.h"
#include "../../proxy/h1client.h"
#include "../../proxy/upstream.h"
#include "../../proxy/metrics.h"
#include "../../policies/identity.h"

struct fx {
    struct event_base *base;
    struct pc_worker w;
    struct pc_config *cfg;
    int lfd;                    /* the upstream's listener */
    int ufd;                    /* the upstream's side of the exchange */
    int cpair[2];               /* [0]: the proxy's client socket, [1]: the client */
    struct pc_sock client;
    struct pc_req r;
    /* what the exchange asked of its caller */
    int fail_status;
    char fail_message[128];
    int aborted, done, flushes;
    int flush_writes;           /* flush really writes (else the output stays, as with a slow client) */
};

static struct fx *F;

static void op_fail(struct pc_req *r, int status, const char *code, const char *message)
{
    (void)r;
    (void)code;
    F->fail_status = status;
    snprintf(F->fail_message, sizeof(F->fail_message), "%s", message);
}

static void op_abort(struct pc_req *r)
{
    (void)r;
    F->aborted = 1;
}

static void op_done(struct pc_req *r)
{
    (void)r;
    F->done = 1;
}

static int op_flush(struct pc_req *r)
{
    (void)r;
    F->flushes++;
    if (F->flush_writes)
        pc_sock_flush(&F->client);
    return 0;
}

static int op_keepalive(struct pc_req *r)
{
    (void)r;
    return 1;
}

static void op_rearm(struct pc_req *r)
{
    (void)r;
}

static const struct h1c_ops ops = {op_fail, op_abort, op_done, op_flush, op_keepalive, op_rearm};

static void client_cb(struct pc_sock *s, short what)
{
    (void)s;
    (void)what;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int setup(void **state)
{
    static struct fx fx;
    memset(&fx, 0, sizeof(fx));
    F = &fx;
    int port;
    fx.lfd = listen_any(&port);
    fx.ufd = -1;
    char text[512];
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\nupstream: http://127.0.0.1:%d\ntimeouts:\n  upstream: 5s\n  keepalive: 30s\n"
             "rules:\n  - name: all\n    path: /**\n    action: forward\n",
             port);
    char *errors = NULL;
    fx.cfg = cfg_load_text("t.yaml", text, strlen(text), NULL, &errors);
    if (fx.cfg == NULL)
        fail_msg("config: %s", errors);
    free(cfg_install(fx.cfg));
    fx.base = event_base_new();
    fx.w.base = fx.base;
    fx.w.cfg = fx.cfg;
    fx.w.pool = up_pool_new();
    fx.w.metrics = pc_calloc(1, sizeof(*fx.w.metrics));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fx.cpair), 0);
    pc_sock_open(&fx.client, fx.base, fx.cpair[0], client_cb, NULL);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    h1c_release(&fx->r);
    pc_pool_free(&fx->r.pool);
    free(fx->r.head);
    free(fx->r.pathbuf);
    pc_sock_close(&fx->client);
    close(fx->cpair[1]);
    if (fx->ufd >= 0)
        close(fx->ufd);
    close(fx->lfd);
    /* idle pooled connections go with the pool */
    while (!TAILQ_EMPTY(&fx->w.pool->idle))
        up_release(TAILQ_FIRST(&fx->w.pool->idle), 0, 0);
    free(fx->w.pool);
    free(fx->w.metrics);
    pc_buf_free(&fx->w.scratch);
    event_base_free(fx->base);
    cfg_unref(fx->cfg);
    return 0;
}

/* A request as conn.c and judge.c prepare it. */
static void request(struct fx *fx, const char *head)
{
    struct pc_req *r = &fx->r;
    const char *why = NULL;
    r->w = &fx->w;
    r->cfg = fx->cfg;
    r->head = pc_strdup(head);
    r->head_len = strlen(head);
    if (h1_parse_request(r->head, r->head_len, &r->h, &why) != 0)
        fail_msg("request head refused: %s", why);
    r->pathbuf = pc_malloc(r->h.target_len + 2);
    assert_int_equal(canon_target(r->h.target, r->h.target_len, 0, r->pathbuf, &r->canon, &why), 0);
    h1_msg_start(&r->req, r->h.chunked ? H1_BODY_CHUNKED : r->h.content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE,
                 r->h.content_length > 0 ? (uint64_t)r->h.content_length : 0, 1, 0);
    r->cookie = id_joined_cookies(r->h.headers, r->h.nheaders, &r->cookie_len, &r->pool);
    snprintf(r->request_id, sizeof(r->request_id), "test-1");
}

/* Turn the event loop until pred holds (at most ~5 s). */
static int run_until(int (*pred)(struct fx *))
{
    for (int i = 0; i < 500 && !pred(F); i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(F->base, &tv);
        event_base_loop(F->base, EVLOOP_ONCE);
    }
    return pred(F);
}

static int head_sent(struct fx *fx)
{
    return fx->r.x.head_sent && fx->r.x.up != NULL && evbuffer_get_length(fx->r.x.up->sock.out) == 0;
}

static int finished(struct fx *fx)
{
    return fx->done || fx->fail_status != 0 || fx->aborted;
}

/* The upstream accepts, and reads one request head. */
static void upstream_read_head(struct fx *fx, char *buf, size_t cap)
{
    if (fx->ufd < 0) {
        fx->ufd = accept(fx->lfd, NULL, NULL);
        assert_true(fx->ufd >= 0);
    }
    size_t n = 0;
    while (n < cap - 1) {
        struct pollfd p = {fx->ufd, POLLIN, 0};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t k = read(fx->ufd, buf + n, cap - 1 - n);
        assert_true(k > 0);
        n += (size_t)k;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return;
    }
    fail_msg("no request head");
}

static void upstream_write(struct fx *fx, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t k = write(fx->ufd, data, len);
        assert_true(k > 0);
        data += k;
        len -= (size_t)k;
    }
}

static char *client_output(struct fx *fx)
{
    size_t n = evbuffer_get_length(fx->client.out);
    char *s = pc_malloc(n + 1);
    evbuffer_remove(fx->client.out, s, n);
    s[n] = '\0';
    return s;
}

static void start(struct fx *fx, const char *head)
{
    request(fx, head);
    assert_int_equal(h1c_forward(&fx->r, &fx->w, &fx->client, "192.0.2.7", &ops), 0);
    assert_true(run_until(head_sent));
}

static void test_the_forwarded_head_is_rebuilt_from_the_canonical_request(void **state)
{
    struct fx *fx = *state;
    start(fx, "GET /a/c%41%2e?q=1 HTTP/1.1\r\nHost: app\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n"
              "Cookie: a=1\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: b=2\r\nX-Request-Id: spoofed\r\n"
              "Some_Header: 1\r\nAccept: */*\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    if (strstr(head, "GET /a/cA.?q=1 HTTP/1.1\r\n") == NULL) /* decoded as the backend routes it */
        fail_msg("forwarded: %s", head);
    assert_non_null(strstr(head, "Host: app\r\n"));
    assert_non_null(strstr(head, "Accept: */*\r\n"));
    assert_non_null(strstr(head, "Cookie: a=1; b=2\r\n"));             /* joined, once */
    assert_non_null(strstr(head, "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"));
    assert_non_null(strstr(head, "X-Request-Id: test-1\r\n"));
    assert_null(strstr(head, "spoofed"));
    assert_null(strstr(head, "X-Drop"));                               /* named by Connection */
    assert_null(strstr(head, "Connection"));
    assert_null(strstr(head, "Some_Header"));                          /* '_': WSGI would map it */
}

static void test_a_response_is_relayed_and_the_connection_pooled(void **state)
{
    struct fx *fx = *state;
    fx->flush_writes = 0;
    start(fx, "GET /x HTTP/1.1\r\nHost: app\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello";
    upstream_write(fx, resp, sizeof(resp) - 1);
    assert_true(run_until(finished));
    assert_true(fx->done);
    assert_int_equal(fx->r.status, 200);
    char *out = client_output(fx);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_null(strstr(out, "Keep-Alive"));                            /* hop-by-hop */
    assert_true(strlen(out) >= 5 && strcmp(out + strlen(out) - 9, "\r\n\r\nhello") == 0);
    free(out);
    assert_null(fx->r.x.up);
    assert_int_equal(fx->w.pool->nidle, 1);                            /* reusable, kept */
}

static int over_high_water(struct fx *fx)
{
    return fx->r.x.head_done && fx->r.x.up != NULL && !fx->r.x.up->sock.reading;
}

static void test_a_body_held_back_by_a_slow_client_completes_when_it_drains(void **state)
{
    /* The client's output is near its high-water mark, so the relay stops
     * with most of the body already read into the upstream's buffer; the
     * upstream has sent everything and keeps its connection open, so no
     * read event will come for those bytes. Draining the client must move
     * them. */
    struct fx *fx = *state;
    start(fx, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    static char filler[PC_HIGH_WATER - 4096];
    memset(filler, 'f', sizeof(filler));
    evbuffer_add(fx->client.out, filler, sizeof(filler));            /* earlier bytes, not yet read */
    enum { BODY = 50000 };
    static char body[BODY];
    memset(body, 'b', sizeof(body));
    char rh[128];
    int hl = snprintf(rh, sizeof(rh), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BODY);
    upstream_write(fx, rh, (size_t)hl);
    upstream_write(fx, body, sizeof(body));
    assert_true(run_until(over_high_water));
    assert_false(fx->done);
    assert_true(evbuffer_get_length(fx->r.x.up->sock.in) > 0);       /* held back in the proxy */
    /* the client reads everything: conn.c reports the output drained */
    evbuffer_drain(fx->client.out, sizeof(filler));
    char *first = client_output(fx);
    if (h1c_client_drained(&fx->r) == 0)
        assert_true(run_until(finished));
    assert_true(fx->done);
    char *rest = client_output(fx);
    const char *b = strstr(first, "\r\n\r\n");
    assert_non_null(b);
    b += 4;
    assert_int_equal(strlen(b) + strlen(rest), BODY);
    assert_int_equal(strspn(b, "b"), strlen(b));
    assert_int_equal(strspn(rest, "b"), strlen(rest));
    free(first);
    free(rest);
}

static void test_a_malformed_response_fails_with_502_before_anything_reaches_the_client(void **state)
{
    struct fx *fx = *state;
    start(fx, "GET /x HTTP/1.1\r\nHost: app\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    upstream_write(fx, "HTTP/1.1 2OO OK\r\n\r\n", 19);
    assert_true(run_until(finished));
    assert_int_equal(fx->fail_status, 502);
    assert_string_equal(fx->fail_message, "malformed upstream response");
    assert_int_equal(evbuffer_get_length(fx->client.out), 0);
    assert_int_equal(fx->w.pool->nidle, 0);
    assert_int_equal(fx->w.metrics->upstream_errors[PC_UPERR_PROTOCOL], 1);
}

static void test_a_101_to_a_request_that_asked_for_no_upgrade_is_refused(void **state)
{
    struct fx *fx = *state;
    start(fx, "GET /ws HTTP/1.1\r\nHost: app\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    upstream_write(fx, resp, sizeof(resp) - 1);
    assert_true(run_until(finished));
    assert_int_equal(fx->fail_status, 502);
    assert_false(fx->r.x.tunnel);
}

static void test_an_upstream_closing_before_a_head_fails_with_502(void **state)
{
    struct fx *fx = *state;
    start(fx, "GET /x HTTP/1.1\r\nHost: app\r\n\r\n");
    char head[4096];
    upstream_read_head(fx, head, sizeof(head));
    close(fx->ufd);
    fx->ufd = -1;
    assert_true(run_until(finished));
    assert_int_equal(fx->fail_status, 502);
    assert_string_equal(fx->fail_message, "upstream connection failed");
}

static void test_a_refused_connect_fails_with_502(void **state)
{
    struct fx *fx = *state;
    close(fx->lfd); /* nobody listens on the upstream's port any more */
    fx->lfd = socket(AF_INET, SOCK_STREAM, 0);
    request(fx, "GET /x HTTP/1.1\r\nHost: app\r\n\r\n");
    if (h1c_forward(&fx->r, &fx->w, &fx->client, "192.0.2.7", &ops) == 0)
        assert_true(run_until(finished));
    assert_int_equal(fx->fail_status, 502);
    assert_string_equal(fx->fail_message, "upstream refused the connection");
    assert_int_equal(fx->w.metrics->upstream_errors[PC_UPERR_REFUSED], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_forwarded_head_is_rebuilt_from_the_canonical_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_response_is_relayed_and_the_connection_pooled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_body_held_back_by_a_slow_client_completes_when_it_drains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_malformed_response_fails_with_502_before_anything_reaches_the_client,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_101_to_a_request_that_asked_for_no_upgrade_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_upstream_closing_before_a_head_fails_with_502, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_refused_connect_fails_with_502, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
