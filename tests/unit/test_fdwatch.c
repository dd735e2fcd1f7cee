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
    /* off deletes the event while the duplicate is open, then closes it */
    pc_fdwatch_off(&w);
    assert_false(pc_fdwatch_on(&w));
    assert_false(is_open(dup));
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
    /* nothing to watch (the library has no socket): off */
    assert_int_equal(pc_fdwatch_set(&w, base, -1, EV_READ, seen_cb, &s), 0);
    assert_false(pc_fdwatch_on(&w));
    assert_false(is_open(dup));
    close(sv[0]);
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
    int dup_a = w.fd;
    assert_int_equal(pc_fdwatch_set(&w, base, b[0], EV_READ, seen_cb, &s), 0);
    assert_int_equal(w.src, b[0]);
    assert_false(is_open(dup_a) && dup_a != w.fd); /* the old duplicate is closed */
    assert_int_equal(write(a[1], "x", 1), 1); /* the old socket: not watched */
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(s.calls, 0);
    assert_int_equal(write(b[1], "x", 1), 1);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(s.calls, 1);
    /* a descriptor that cannot be duplicated: -1, and the watch is off */
    assert_int_equal(pc_fdwatch_set(&w, base, 1000000, EV_READ, seen_cb, &s), -1);
    assert_false(pc_fdwatch_on(&w));
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
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
