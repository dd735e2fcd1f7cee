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
#include <stdlib.h>
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

/* A library's socket (sv[0], closed by the test as the library would:
 * then -1), its peer (sv[1]), and a watch on it. */
struct fx {
    struct event_base *base;
    int sv[2];
    struct pc_fdwatch w;
    struct seen s;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->base = event_base_new()) == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->sv) != 0)
        return -1;
    pc_fdwatch_init(&f->w);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    pc_fdwatch_off(&f->w);
    for (int i = 0; i < 2; i++)
        if (f->sv[i] >= 0)
            close(f->sv[i]);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* The library closes its descriptor. */
static void fx_library_closes(struct fx *f)
{
    close(f->sv[0]);
    f->sv[0] = -1;
}

static void test_the_library_closing_its_socket_leaves_the_watch_intact(void **state)
{
    struct fx *f = *state;
    assert_false(pc_fdwatch_on(&f->w));
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], EV_READ, seen_cb, &f->s), 0);
    assert_true(pc_fdwatch_on(&f->w));
    assert_int_not_equal(f->w.fd, f->sv[0]); /* a duplicate */
    int dup = f->w.fd;
    /* the library closes its descriptor: the watch still sees the socket */
    fx_library_closes(f);
    assert_int_equal(write(f->sv[1], "x", 1), 1);
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.fd, dup);
    assert_true(f->s.what & EV_READ);
    /* off deletes the event while the duplicate is open, then closes it:
     * the last reference to the socket, so the peer reads its end */
    pc_fdwatch_off(&f->w);
    assert_false(pc_fdwatch_on(&f->w));
    assert_false(is_open(dup));
    assert_true(peer_closed(f->sv[1]));
    pc_fdwatch_off(&f->w); /* twice is harmless */
}

static void test_other_events_on_the_same_socket_keep_the_duplicate(void **state)
{
    struct fx *f = *state;
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], EV_READ, seen_cb, &f->s), 0);
    int dup = f->w.fd;
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], EV_READ | EV_WRITE, seen_cb, &f->s), 0);
    assert_int_equal(f->w.fd, dup);
    assert_int_equal(f->w.what, EV_READ | EV_WRITE);
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* writable */
    assert_int_equal(f->s.calls, 1);
    assert_true(f->s.what & EV_WRITE);
    /* no events: off */
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], 0, seen_cb, &f->s), 0);
    assert_false(pc_fdwatch_on(&f->w));
    assert_false(is_open(dup));
    /* nothing to watch (the library has no socket): off */
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], EV_READ, seen_cb, &f->s), 0);
    assert_true(pc_fdwatch_on(&f->w));
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, -1, EV_READ, seen_cb, &f->s), 0);
    assert_false(pc_fdwatch_on(&f->w));
    /* the library's descriptor was the socket's last one besides ours */
    fx_library_closes(f);
    assert_true(peer_closed(f->sv[1]));
}

static void test_another_socket_gets_a_duplicate_of_its_own(void **state)
{
    struct fx *f = *state;
    int b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, f->sv[0], EV_READ, seen_cb, &f->s), 0);
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, b[0], EV_READ, seen_cb, &f->s), 0);
    assert_int_equal(f->w.src, b[0]);
    /* the old duplicate is closed: with the library's descriptor gone
     * too, the old socket's peer reads its end */
    fx_library_closes(f);
    assert_true(peer_closed(f->sv[1]));
    assert_int_equal(write(b[1], "x", 1), 1);
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.fd, f->w.fd);
    /* a descriptor that cannot be duplicated: -1, and the watch is off */
    assert_int_equal(pc_fdwatch_set(&f->w, f->base, 1000000, EV_READ, seen_cb, &f->s), -1);
    assert_false(pc_fdwatch_on(&f->w));
    close(b[0]);
    close(b[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_library_closing_its_socket_leaves_the_watch_intact, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_other_events_on_the_same_socket_keep_the_duplicate, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_another_socket_gets_a_duplicate_of_its_own, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
