/*
 * Unit tests for lib/h1msg.c, the one body relay of both directions:
 * framing, re-chunking and de-chunking, the body limit, and the high-water
 * mark that hands backpressure to the caller.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "../../lib/h1msg.h"
#include "../../lib/base.h"

static struct evbuffer *buf_of(const char *s)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    return b;
}

static char *text_of(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_copyout(b, s, n);
    s[n] = '\0';
    return s;
}

#define ASSERT_BUF(b, want)                    \
    do {                                       \
        char *got_ = text_of(b);               \
        assert_string_equal(got_, (want));     \
        free(got_);                            \
    } while (0)

static void test_a_content_length_body_moves_exactly_its_length_and_leaves_the_next_message(void **state)
{
    (void)state;
    struct h1_msg m;
    assert_int_equal(h1_msg_start(&m, H1_BODY_LENGTH, 5, 1, 0), 0);
    struct evbuffer *src = buf_of("helloGET /next"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_DONE);
    ASSERT_BUF(dst, "hello");
    ASSERT_BUF(src, "GET /next");   /* a pipelined request stays where it is */
    assert_int_equal(m.bytes, 5);
    assert_true(m.done);
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_the_relay_stops_at_the_high_water_mark_and_resumes(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_LENGTH, 10, 1, 0);
    struct evbuffer *src = buf_of("0123456789"), *dst = buf_of("xxxx");
    assert_int_equal(h1_msg_relay(&m, src, dst, 6), H1_RELAY_MORE);   /* room for 2 */
    ASSERT_BUF(dst, "xxxx01");
    evbuffer_drain(dst, evbuffer_get_length(dst));                    /* the receiver drained */
    assert_int_equal(h1_msg_relay(&m, src, dst, 6), H1_RELAY_MORE);
    ASSERT_BUF(dst, "234567");
    evbuffer_drain(dst, evbuffer_get_length(dst));
    assert_int_equal(h1_msg_relay(&m, src, dst, 6), H1_RELAY_DONE);
    ASSERT_BUF(dst, "89");
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_a_chunked_body_is_reframed_without_extensions_or_trailers(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_CHUNKED, 0, 1, 0);
    struct evbuffer *src = buf_of("3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_DONE);
    ASSERT_BUF(dst, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    ASSERT_BUF(src, "NEXT");
    assert_int_equal(m.bytes, 5);
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_a_chunked_body_is_dechunked_for_an_http10_receiver(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_CHUNKED, 0, 0, 0);
    struct evbuffer *src = buf_of("3\r\nabc\r\n0\r\n\r\n"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_DONE);
    ASSERT_BUF(dst, "abc");
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_a_chunked_body_arriving_byte_by_byte_relays_the_same(void **state)
{
    (void)state;
    const char *wire = "a\r\n0123456789\r\n1\r\nX\r\n0\r\n\r\n";
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_CHUNKED, 0, 1, 0);
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
    int rc = H1_RELAY_MORE;
    for (size_t i = 0; wire[i] != '\0'; i++) {
        assert_int_equal(rc, H1_RELAY_MORE);
        evbuffer_add(src, wire + i, 1);
        rc = h1_msg_relay(&m, src, dst, 1 << 20);
    }
    assert_int_equal(rc, H1_RELAY_DONE);
    ASSERT_BUF(dst, "1\r\n0\r\n1\r\n1\r\n1\r\n2\r\n1\r\n3\r\n1\r\n4\r\n1\r\n5\r\n1\r\n6\r\n1\r\n7\r\n1\r\n8\r\n1\r\n9\r\n"
                    "1\r\nX\r\n0\r\n\r\n");
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_malformed_chunk_framing_is_refused(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_CHUNKED, 0, 1, 0);
    struct evbuffer *src = buf_of("zz\r\nabc\r\n"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_BAD);
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_the_body_limit_holds_for_declared_and_chunked_bodies(void **state)
{
    (void)state;
    struct h1_msg m;
    assert_int_equal(h1_msg_start(&m, H1_BODY_LENGTH, 11, 1, 10), -1);
    assert_true(m.too_large);
    assert_int_equal(h1_msg_start(&m, H1_BODY_LENGTH, 10, 1, 10), 0);
    assert_false(m.too_large);
    h1_msg_start(&m, H1_BODY_CHUNKED, 0, 1, 10);
    struct evbuffer *src = buf_of("6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_TOO_LARGE);
    ASSERT_BUF(dst, "6\r\nabcdef\r\n");   /* nothing past the limit was moved */
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_a_close_delimited_body_ends_only_when_its_sender_closes(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_CLOSE, 0, 1, 0);
    struct evbuffer *src = buf_of("data"), *dst = evbuffer_new();
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_MORE);
    ASSERT_BUF(dst, "data");
    assert_false(m.done);
    h1_msg_finish_close(&m);
    assert_int_equal(h1_msg_relay(&m, src, dst, 1 << 20), H1_RELAY_DONE);
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_no_body_and_a_zero_length_body_are_done_at_once(void **state)
{
    (void)state;
    struct h1_msg m;
    h1_msg_start(&m, H1_BODY_NONE, 0, 1, 0);
    assert_true(m.done);
    h1_msg_start(&m, H1_BODY_LENGTH, 0, 1, 0);
    assert_true(m.done);
    assert_int_equal(m.body, H1_BODY_NONE);
    assert_false(m.rechunk);   /* only a chunked body is re-chunked */
}

static struct h1_request keepalive_head(const char *head)
{
    struct h1_request h;
    const char *why;
    memset(&h, 0, sizeof(h));
    assert_int_equal(h1_parse_request(head, strlen(head), &h, &why), 0);
    return h;
}

static void test_keepalive_follows_the_request_head(void **state)
{
    (void)state;
    struct h1_msg none;
    h1_msg_start(&none, H1_BODY_NONE, 0, 1, 0);
    struct h1_request h = keepalive_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(h1_keepalive(&h, &none, NULL));
    h = keepalive_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_false(h1_keepalive(&h, &none, NULL));
    h = keepalive_head("GET / HTTP/1.0\r\n\r\n");
    assert_false(h1_keepalive(&h, &none, NULL));
    h = keepalive_head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(h1_keepalive(&h, &none, NULL));
}

static void test_keepalive_needs_the_whole_request_body_read(void **state)
{
    (void)state;
    struct h1_request h = keepalive_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    struct h1_msg body;
    h1_msg_start(&body, H1_BODY_LENGTH, 10, 1, 0);
    assert_false(h1_keepalive(&h, &body, NULL)); /* the rest would be read as the next request */
    struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
    evbuffer_add(src, "0123456789", 10);
    assert_int_equal(h1_msg_relay(&body, src, dst, 1 << 20), H1_RELAY_DONE);
    assert_true(h1_keepalive(&h, &body, NULL));
    evbuffer_free(src);
    evbuffer_free(dst);
}

static void test_keepalive_ends_with_a_response_delimited_by_close_or_dechunked(void **state)
{
    (void)state;
    struct h1_msg none, resp;
    h1_msg_start(&none, H1_BODY_NONE, 0, 1, 0);
    struct h1_request h = keepalive_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    h1_msg_start(&resp, H1_BODY_CLOSE, 0, 1, 0);
    assert_false(h1_keepalive(&h, &none, &resp));
    h1_msg_start(&resp, H1_BODY_CHUNKED, 0, 1, 0);   /* re-chunked for HTTP/1.1 */
    assert_true(h1_keepalive(&h, &none, &resp));
    h1_msg_start(&resp, H1_BODY_LENGTH, 5, 1, 0);
    assert_true(h1_keepalive(&h, &none, &resp));
    h = keepalive_head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h1_msg_start(&resp, H1_BODY_CHUNKED, 0, 0, 0);   /* de-chunked for HTTP/1.0: ends with the connection */
    assert_false(h1_keepalive(&h, &none, &resp));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_content_length_body_moves_exactly_its_length_and_leaves_the_next_message),
        cmocka_unit_test(test_the_relay_stops_at_the_high_water_mark_and_resumes),
        cmocka_unit_test(test_a_chunked_body_is_reframed_without_extensions_or_trailers),
        cmocka_unit_test(test_a_chunked_body_is_dechunked_for_an_http10_receiver),
        cmocka_unit_test(test_a_chunked_body_arriving_byte_by_byte_relays_the_same),
        cmocka_unit_test(test_malformed_chunk_framing_is_refused),
        cmocka_unit_test(test_the_body_limit_holds_for_declared_and_chunked_bodies),
        cmocka_unit_test(test_a_close_delimited_body_ends_only_when_its_sender_closes),
        cmocka_unit_test(test_no_body_and_a_zero_length_body_are_done_at_once),
        cmocka_unit_test(test_keepalive_follows_the_request_head),
        cmocka_unit_test(test_keepalive_needs_the_whole_request_body_read),
        cmocka_unit_test(test_keepalive_ends_with_a_response_delimited_by_close_or_dechunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
