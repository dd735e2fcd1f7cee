/*
 * portcullis: what every MySQL connection is given (see my.h): its
 * options, TLS from sslmode, its session's settings by server flavour, and
 * which errors end it. Shared by the pool (my.c), the connect thread
 * (myconnect.c) and the start-up check (mycheck.c).
 *
 * TLS, from PostgreSQL's sslmode (Connector/C 3.3):
 *   disable      no TLS
 *   prefer       TLS when the server has it: a first attempt insists on
 *                TLS; only a TLS failure (the server has none, or the
 *                handshake failed) leads to a second attempt without
 *   require      TLS or nothing; with sslrootcert, the chain is verified
 *   verify-ca    TLS, chain verified against sslrootcert
 *   verify-full  TLS, chain and host name verified
 * Insisting on TLS takes MYSQL_OPT_SSL_ENFORCE and an empty
 * MARIADB_OPT_TLS_PEER_FP: with ENFORCE alone, Connector/C 3.3 falls back
 * to plaintext against a server without TLS, and caching_sha2_password
 * then sends the password in clear; an empty fingerprint makes it refuse
 * such a server before any credential is sent, and an empty fingerprint is
 * never compared. my_tls_check checks the outcome again after connecting.
 */
#include "my.h"
#include "gen.h"
#include "../lib/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errmsg.h>
#include <mysqld_error.h>

static pthread_once_t my_once = PTHREAD_ONCE_INIT;

static void my_init_once(void)
{
    /* the client library only; nothing else to initialise */
    if (mysql_library_init(0, NULL, NULL) != 0)
        abort();
}

void my_library_init(void)
{
    pthread_once(&my_once, my_init_once);
}

static const char *my_sslmode(const struct pol_db *db)
{
    return db->sslmode != NULL && db->sslmode[0] != '\0' ? db->sslmode : "prefer";
}

static int my_nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

void my_target(const struct pol_db *db, struct my_target *t)
{
    uint64_t port = 3306;
    t->host = db->host;
    t->socket = NULL;
    if (my_nonempty(db->host) && db->host[0] == '/') {
        t->socket = db->host;
        t->host = NULL;
    }
    if (my_nonempty(db->port) && pc_parse_u64(db->port, strlen(db->port), &port) != 0)
        port = 3306; /* refused when the config loaded */
    t->port = (unsigned)port;
}

int my_connects_on_thread(const struct pol_db *db)
{
    struct my_target t;
    unsigned char addr[16];
    my_target(db, &t);
    if (strcmp(my_sslmode(db), "disable") != 0)
        return 1;
    if (t.socket != NULL)
        return 0;
    return !(inet_pton(AF_INET, t.host, addr) == 1 || inet_pton(AF_INET6, t.host, addr) == 1);
}

int64_t my_io_timeout_ms(const struct pol_gen *gen)
{
    return PC_MAX(gen->db.connect_timeout, 2 * gen->policy_timeout + 1000);
}

/* TLS options for a handle; 0, or -1 when one is refused. */
static int my_tls_options(MYSQL *m, const struct pol_db *db, int tls)
{
    my_bool on = 1, off = 0;
    const char *mode = my_sslmode(db);
    if (!tls)
        return mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &off) != 0 ||
               mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off) != 0 ? -1 : 0;
    if (mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on) != 0 || mysql_optionsv(m, MARIADB_OPT_TLS_PEER_FP, "") != 0)
        return -1;
    /* set either way: a later library with other defaults means the same */
    if (mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, strcmp(mode, "verify-full") == 0 ? &on : &off) != 0)
        return -1;
    if (my_nonempty(db->sslrootcert) && mysql_optionsv(m, MYSQL_OPT_SSL_CA, db->sslrootcert) != 0)
        return -1;
    if (my_nonempty(db->sslcert) && mysql_optionsv(m, MYSQL_OPT_SSL_CERT, db->sslcert) != 0)
        return -1;
    if (my_nonempty(db->sslkey) && mysql_optionsv(m, MYSQL_OPT_SSL_KEY, db->sslkey) != 0)
        return -1;
    return 0;
}

MYSQL *my_handle_new(const struct pol_db *db, int tls, int64_t io_timeout_ms)
{
    struct my_target t;
    my_bool off = 0;
    unsigned zero = 0, secs = (unsigned)((io_timeout_ms + 999) / 1000);
    my_library_init();
    my_target(db, &t);
    unsigned proto = t.socket != NULL ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP; /* "localhost" is TCP */
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return NULL;
    if (mysql_optionsv(m, MYSQL_OPT_NONBLOCK, 0) != 0 || mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0 ||
        mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto) != 0 || mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off) != 0 ||
        mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &zero) != 0 ||
        mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs) != 0 ||
        mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &secs) != 0 || mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &secs) != 0 ||
        mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "portcullis") != 0)
        goto fail;
    if (my_nonempty(db->server_public_key) && mysql_optionsv(m, MYSQL_SERVER_PUBLIC_KEY, db->server_public_key) != 0)
        goto fail;
    if (my_tls_options(m, db, tls) != 0)
        goto fail;
    return m;
fail:
    mysql_close(m);
    return NULL;
}

const char *my_tls_check(MYSQL *m, const struct pol_db *db)
{
    const char *mode = my_sslmode(db);
    if (strcmp(mode, "disable") == 0 || strcmp(mode, "prefer") == 0)
        return NULL;
    return mysql_get_ssl_cipher(m) == NULL ? "TLS is required (sslmode) but the connection is not encrypted" : NULL;
}

static const char *my_opt(const char *s)
{
    return my_nonempty(s) ? s : NULL;
}

MYSQL *my_connect_blocking(const struct pol_db *db, int64_t io_timeout_ms, char *err, size_t errlen)
{
    struct my_target t;
    const char *mode = my_sslmode(db);
    int tls = strcmp(mode, "disable") != 0;
    my_target(db, &t);
    for (;;) {
        MYSQL *m = my_handle_new(db, tls, io_timeout_ms);
        if (m == NULL) {
            snprintf(err, errlen, "cannot make a MySQL handle (out of memory, or an option was refused)");
            return NULL;
        }
        if (mysql_real_connect(m, t.host, my_opt(db->user), my_opt(db->password), db->dbname, t.port, t.socket, 0)
            != NULL) {
            const char *why = my_tls_check(m, db);
            if (why == NULL)
                return m;
            snprintf(err, errlen, "%s", why);
            mysql_close(m);
            return NULL;
        }
        unsigned e = mysql_errno(m);
        snprintf(err, errlen, "%s (error %u)", mysql_error(m), e);
        pc_one_line(err);
        mysql_close(m);
        if (!(tls && strcmp(mode, "prefer") == 0 && e == CR_SSL_CONNECTION_ERROR))
            return NULL;
        tls = 0; /* prefer: the server has no TLS (or it failed); now without */
    }
}

enum my_flavour my_flavour_of(MYSQL *m)
{
    const char *v = mysql_get_server_info(m);
    if (v != NULL && (strcasestr(v, "oceanbase") != NULL || strcasestr(v, "seekdb") != NULL))
        return MY_OCEANBASE;
    return mariadb_connection(m) ? MY_MARIADB : MY_MYSQL;
}

const char *my_flavour_name(enum my_flavour f)
{
    return f == MY_MARIADB ? "MariaDB" : f == MY_OCEANBASE ? "OceanBase" : "MySQL";
}

int my_session_sql(enum my_flavour f, int64_t budget_ms, char out[MY_SESSION_MAX][MY_SESSION_LEN])
{
    long long ms = (long long)budget_ms, secs = PC_MAX((ms + 999) / 1000, 1);
    snprintf(out[0], MY_SESSION_LEN, "SET SESSION TRANSACTION READ ONLY");
    switch (f) {
    case MY_MARIADB:
        /* seconds, fractional; also ends metadata-lock waits */
        snprintf(out[1], MY_SESSION_LEN, "SET SESSION max_statement_time = %lld.%03lld, lock_wait_timeout = %lld, "
                 "innodb_lock_wait_timeout = %lld", ms / 1000, ms % 1000, secs, secs);
        break;
    case MY_MYSQL:
        /* milliseconds, SELECT statements only */
        snprintf(out[1], MY_SESSION_LEN, "SET SESSION max_execution_time = %lld, lock_wait_timeout = %lld, "
                 "innodb_lock_wait_timeout = %lld", ms, secs, secs);
        break;
    case MY_OCEANBASE:
        /* microseconds, the whole statement (lock waits included) */
        snprintf(out[1], MY_SESSION_LEN, "SET SESSION ob_query_timeout = %lld", ms * 1000);
        break;
    }
    return 2;
}

int my_error_ends_connection(unsigned e)
{
    switch (e) {
    case 0:                             /* no code: assume the worst */
    case ER_CON_COUNT_ERROR:
    case ER_SERVER_SHUTDOWN:            /* 1053 */
    case ER_NORMAL_SHUTDOWN:            /* 1077 */
    case ER_ABORTING_CONNECTION:        /* 1152 */
    case ER_NEW_ABORTING_CONNECTION:    /* 1184 */
    case ER_UNKNOWN_STMT_HANDLER:       /* 1243: the server forgot the statement */
    case ER_NEED_REPREPARE:             /* 1615: the schema changed under it */
    case ER_CONNECTION_KILLED:          /* 1927 */
    case 4031:                          /* MySQL 8.0.24+: idle session closed by wait_timeout */
        return 1;
    default:
        return e >= CR_MIN_ERROR;
    }
}
