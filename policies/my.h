/*
 * portcullis: the MySQL driver (db.h), for MySQL 8, MariaDB and servers
 * that speak their protocol (OceanBase, seekdb), on MariaDB Connector/C.
 *
 * Every query runs in the worker's event loop through Connector/C's
 * non-blocking API (_start/_cont), under our own timers. The protocol
 * carries one command at a time per connection, so a connection runs one
 * query at a time, and a worker's share of database.pool is a small pool
 * with a queue in front.
 *
 * Connecting is the exception: Connector/C's TLS handshake blocks (it
 * waits in poll() inside the library even in non-blocking mode), and so
 * does resolving a host name. A connection that may use TLS, or whose host
 * is a name, is therefore opened by a short-lived thread of its own per
 * attempt (myconnect.c), which hands the connected handle to the loop;
 * everything after that - session settings, reading the schema, preparing,
 * every query - happens in the loop. No query ever runs off the loop, and
 * no request waits on a connect thread: while no connection is up,
 * lookups fail at once (503). A connection without TLS to a numeric
 * address or a Unix socket connects in the loop too.
 *
 * Sessions are read-only, with a per-statement time limit and lock waits
 * of timeouts.policy in the server's own terms (mysess.c). A statement
 * error fails its lookup and resets the statement; a lost connection, or
 * one presumed wedged, fails its lookup and reconnects with backoff.
 */
#ifndef PC_MY_H
#define PC_MY_H

#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

#include "db.h"

struct pol_db;
struct pol_gen;
struct event_base;

/* ---- mysess.c: what every connection is given ---- */

enum my_flavour { MY_MYSQL, MY_MARIADB, MY_OCEANBASE };

/* mysql_library_init, once per process, before any handle is made. */
void my_library_init(void);

/* Does this connection need the connect thread (TLS possible, or a host
 * name to resolve)? */
int my_connects_on_thread(const struct pol_db *db);

/*
 * A new handle for db, with every option set: utf8mb4, TCP (or the Unix
 * socket a host starting with / names), no LOCAL INFILE, no automatic
 * reconnect, the non-blocking API, library timeouts in whole seconds
 * (io_timeout_ms), and TLS as sslmode says. tls: 1 to insist on TLS
 * (require and up, and prefer's first attempt), 0 for none. NULL when out
 * of memory.
 */
MYSQL *my_handle_new(const struct pol_db *db, int tls, int64_t io_timeout_ms);

/* Where to connect: host (NULL with a socket), port, Unix socket. */
struct my_target {
    const char *host, *socket;
    unsigned port;
};
void my_target(const struct pol_db *db, struct my_target *t);

/*
 * A blocking connect with sslmode's semantics: prefer tries TLS and, only
 * when the server has none, connects again without (never letting the
 * library fall back on its own: caching_sha2_password would then send the
 * password in clear, believing the link secure). Then the TLS check
 * (my_tls_check). NULL with err on failure. For the connect thread and the
 * start-up check; never on a thread that serves requests.
 */
MYSQL *my_connect_blocking(const struct pol_db *db, int64_t io_timeout_ms, char *err, size_t errlen);

/* After connecting: is the link what sslmode asks for? NULL, or why not. */
const char *my_tls_check(MYSQL *m, const struct pol_db *db);

enum my_flavour my_flavour_of(MYSQL *m);
const char *my_flavour_name(enum my_flavour f);

/* The session's settings for flavour f and a budget of budget_ms: up to
 * MY_SESSION_MAX statements, into out (each MY_SESSION_LEN). */
#define MY_SESSION_MAX 2
#define MY_SESSION_LEN 192
int my_session_sql(enum my_flavour f, int64_t budget_ms, char out[MY_SESSION_MAX][MY_SESSION_LEN]);

/* Does error code e end the connection (a client-side error, a killed or
 * shut-down session, a statement the server forgot)? Otherwise it ends
 * only its statement. */
int my_error_ends_connection(unsigned e);

/* The library's own timeouts for a generation: long enough never to cut a
 * query our timers still wait for, short enough to bound a connect thread. */
int64_t my_io_timeout_ms(const struct pol_gen *gen);

/* ---- myconnect.c: one connect attempt on a thread of its own ---- */

struct my_attempt;

/* Start connecting to gen's database (my_connect_blocking) on a new
 * thread; when it ends, done(arg) runs in base's loop. NULL with why when
 * no thread could be started. */
struct my_attempt *my_attempt_start(struct event_base *base, struct pol_gen *gen, void (*done)(void *arg),
                                    void *arg, char *why, size_t whylen);
/* In done: the connected handle, now the loop's (NULL with err). Frees
 * the attempt. */
MYSQL *my_attempt_take(struct my_attempt *a, char *err, size_t errlen);
/* The loop gives up (a timer, a reload, shutdown): done will not run, and
 * the thread closes whatever it gets. */
void my_attempt_abandon(struct my_attempt *a);

/* ---- mycheck.c ---- */

/* The synchronous check (policy.h pol_check_database) on MySQL. */
int my_check(const struct pol_gen *gen, char **errors, char **warnings);

#endif
