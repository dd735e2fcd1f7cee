/*
 * portcullis: configuration.
 *
 * A config generation is immutable once loaded and is shared by reference:
 * every request holds the generation it started with, so a SIGHUP reload
 * never changes the rules under a request in flight.
 *
 * Loading is table-driven. Each top-level key is a section owned by one
 * module (cfg_sections[] in config.c); a module's parse function receives
 * its node and reports errors as file:line:col through cfg_error().
 */
#ifndef PC_CONFIG_H
#define PC_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../lib/cfg.h"
#include "../lib/base.h"
#include "../lib/log.h"

struct rule_set;
struct pol_set;
struct id_config;


struct pc_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char *text;        /* as written in the config */
    char *host;        /* host part (for upstream: the Host to resolve) */
    int port;
    int numeric;       /* host is an address literal */
    int resolved;      /* sa holds an address */
};

struct pc_timeouts {
    int64_t header;      /* ms: whole request head must arrive within */
    int64_t connect;     /* ms: upstream TCP connect */
    int64_t upstream;    /* ms: idle time between bytes of an exchange */
    int64_t idle;        /* ms: client keep-alive wait for the next request */
    int64_t drain;       /* ms: SIGTERM grace period */
    int64_t body;        /* ms: idle time between request body bytes */
    int64_t keepalive;   /* ms: how long an idle pooled upstream conn is kept */
    int64_t policy;      /* ms: the whole decision budget */
};

struct pc_limits {
    uint64_t header_bytes;
    uint64_t body_bytes;
    int64_t connections; /* 0 = unlimited */
};

/* database.schema_version: a query whose rows name the schema's version,
 * and the versions the config was checked against. */
struct pc_schema_version {
    char *query;
    char **known;
    size_t nknown;
    int line, col;
};

struct pc_database {
    char *url;          /* conninfo or postgresql:// URI */
    /* libpq keywords given one by one: no quoting, and they override url */
    char *host, *port, *dbname, *user, *password, *sslmode;
    int64_t pool;
    int64_t connect_timeout;
    struct pc_schema_version schema_version; /* query == NULL: not checked */
    int configured;     /* a database section is present */
    int line, col;
};

struct pc_cache {
    int64_t ttl;         /* ms; 0 turns the decision cache off */
    uint64_t max_entries;
    char *invalidate_channel;
    int64_t token_ttl;   /* ms; verified-token cache lifetime cap; 0 = off */
};

struct pc_config {
    int refcnt;          /* atomic */
    uint64_t generation;
    char *file;

    struct pc_addr listen;
    struct pc_addr upstream;
    struct pc_addr admin_listen; /* text == NULL: no admin listener */
    char *health_path;
    char *ready_path;
    int workers;
    struct pc_timeouts timeouts;
    struct pc_limits limits;

    enum pc_log_format log_format;
    enum pc_log_level log_level;
    int access_log;

    struct id_config *identity;
    struct rule_set *rules;
    int default_forward;        /* default: forward */
    struct pol_set *policies;
    struct pc_database database;
    struct pc_cache cache;

    char *warnings;             /* lines worth printing at start-up and for -t */
};

/*
 * Load and validate a config file. On failure returns NULL and sets *errors
 * to a malloc'd text with one error per line. getenv_fn may be NULL.
 */
struct pc_config *cfg_load(const char *file, yt_getenv_fn getenv_fn, char **errors);
/* Same, from text (for tests and fuzzing). */
struct pc_config *cfg_load_text(const char *file, const char *text, size_t len,
                                yt_getenv_fn getenv_fn, char **errors);

struct pc_config *cfg_ref(struct pc_config *cfg);
void cfg_unref(struct pc_config *cfg);

/* Parse "host:port", "[v6]:port" (listen: host may be empty/0.0.0.0).
 * need_resolve: 0 numeric only; 1 resolve, failure is an error; 2 resolve,
 * failure returns 1 with the host kept for resolving later. */
int cfg_parse_hostport(const char *s, int need_resolve, struct pc_addr *out, char *err, size_t errlen);

#endif
