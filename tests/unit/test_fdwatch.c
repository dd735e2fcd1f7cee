/*
 * lib/fdwatch.c: a watch on a duplicate of a library's socket, which the
 * library may close under it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../lib/fdwatch.h"

struct seen {
    int calls;
    int fd;
    short what;
};

static void seen_cb(evutil_socket_t fd, short what, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->fd = (int)fd;
    s->what = what;
}

static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* The socket at the other end of fd is gone (every descriptor of it
 * closed): a read gives the end, or a reset where data was left unread. */
static int peer_closed(int fd)
{
    char b[2];
    ssize_t r = read(fd, b, sizeof(b));
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static void test_the_library_closing_its_socket_leaves_the_watch_intact(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct pc_fdwatch w;
    struct seen s = {0};
    pc_fdwatch_init(&w);
    assert_false(pc_fdwatch_on(&w));
    assert_int_equal(pc_fdwatch_set(&w, base, sv[0], EV_READ, seen_cb, &s), 0);
    assert_true(pc_fdwatch_on(&w));
    assert_int_not_equal(w.fd, sv[0]); /* a duplicate */
    int dup = w.fd;
    /* the library closes its descriptor: the watch still sees the socket */
    close(sv[0]);
    assert_int_equal(write(sv[1], "x", 1), 1);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.fd, dup);
    assert_true(s.what & EV_READ);
    /* off deletes the event while the duplicate is open, then closes it:
     * the last reference to the socket, so the peer reads its end */
    pc_fdwatch_off(&w);
    assert_false(pc_fdwatch_on(&w));
    assert_false(is_open(dup));
    assert_true(peer_closed(sv[1]));
    pc_fdwatch_off(&w); /* twice is harmless */
    close(sv[1]);
    event_base_free(base);
}

static void test_other_events_on_the_same_socket_keep_the_duplicate(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct pc_fdwatch w;
    struct seen s = {0};
    pc_fdwatch_init(&w);
    assert_int_equal(pc_fdwatch_set(&w, base, sv[0], EV_READ, seen_cb, &s), 0);
    int dup = w.fd;
    assert_int_equal(pc_fdwatch_set(&w, base, sv[0], EV_READ | EV_WRITE, seen_cb, &s), 0);
    assert_int_equal(w.fd, dup);
    assert_int_equal(w.what, EV_READ | EV_WRITE);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* writable */
    assert_int_equal(s.calls, 1);
    assert_true(s.what & EV_WRITE);
    /* no events: off */
    assert_int_equal(pc_fdwatch_set(&w, base, sv[0], 0, seen_cb, &s), 0);
    assert_false(pc_fdwatch_on(&w));
    assert_false(is_open(dup));
    /* nothing to watch (the library has no socket): off */
    assert_int_equal(pc_fdwatch_set(&w, base, sv[0], EV_READ, seen_cb, &s), 0);
    assert_true(pc_fdwatch_on(&w));
    assert_int_equal(pc_fdwatch_set(&w, base, -1, EV_READ, seen_cb, &s), 0);
    assert_false(pc_fdwatch_on(&w));
    /* the library's descriptor was the socket's last one besides ours */
    close(sv[0]);
    assert_true(peer_closed(sv[1]));
    close(sv[1]);
    event_base_free(base);
}

static void test_another_socket_gets_a_duplicate_of_its_own(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    struct pc_fdwatch w;
    struct seen s = {0};
    pc_fdwatch_init(&w);
    assert_int_equal(pc_fdwatch_set(&w, base, a[0], EV_READ, seen_cb, &s), 0);
    assert_int_equal(pc_fdwatch_set(&w, base, b[0], EV_READ, seen_cb, &s), 0);
    assert_int_equal(w.src, b[0]);
    /* the old duplicate is closed: with the library's descriptor gone
     * too, the old socket's peer reads its end */
    close(a[0]);
    assert_true(peer_closed(a[1]));
    assert_int_equal(write(b[1], "x", 1), 1);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.fd, w.fd);
    /* a descriptor that cannot be duplicated: -1, and the watch is off */
    assert_int_equal(pc_fdwatch_set(&w, base, 1000000, EV_READ, seen_cb, &s), -1);
    assert_false(pc_fdwatch_on(&w));
    close(a[1]);
    close(b[0]);
    close(b[1]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_library_closing_its_socket_leaves_the_watch_intact),
        cmocka_unit_test(test_other_events_on_the_same_socket_keep_the_duplicate),
        cmocka_unit_test(test_another_socket_gets_a_duplicate_of_its_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
