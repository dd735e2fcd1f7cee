/*
 * portcullis: configuration.
 *
 * A config generation is immutable once loaded and is shared by reference:
 * every request holds the generation it started with, so a SIGHUP reload
 * never changes the rules under a request in flight.
 *
 * Loading has three phases (config.c):
 *   parse   each top-level key is a section owned by one module, parsed
 *           from rows that carry type, bounds, default and a one-line doc
 *           (lib/cfg.h); no side effect: no DNS, no metric registration;
 *   finish  cross-section checks and compilation, in dependency order:
 *           policies need a database, rules need policies and identity;
 *   install when a generation is about to serve (cfg_install): upstream
 *           names are resolved and metric label slots assigned.
 * Every problem is reported as file:line:col.
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
struct pol_gen;
struct id_config;


struct pc_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char *text;        /* as written in the config */
    char *host;        /* host part (for upstream: the Host to resolve) */
    int port;
    int numeric;       /* host is an address literal */
    int resolved;      /* sa holds an address */
    int line, col;     /* where the config wrote it */
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

struct pc_config {
    int refcnt;          /* atomic */
    uint64_t generation; /* set when installed (and in pol->generation) */
    char *file;

    struct pc_addr listen;
    struct pc_addr upstream;
    struct pc_addr admin_listen; /* text == NULL: no admin listener */
    char *health_path;
    char *ready_path;
    int workers;
    struct pc_timeouts timeouts;
    struct pc_limits limits;

    int log_format;      /* enum pc_log_format */
    int log_level;       /* enum pc_log_level */
    int access_log;

    struct id_config *identity;
    struct rule_set *rules;
    int default_forward;        /* default: forward */
    struct pol_gen *pol;        /* policies, database, cache: policies/gen.h */

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

/* Install a loaded generation (before it serves, and for -t): resolve the
 * upstream name (a failure is a warning: the resolver keeps trying while
 * serving) and assign metric label slots to its rules and policies.
 * Returns the warnings (malloc'd) or NULL. */
char *cfg_install(struct pc_config *cfg);

/* The effective config, with every default, as YAML (-t --print-defaults). */
void cfg_print(struct pc_buf *b, const struct pc_config *cfg);

/* Parse "host:port" or "[v6]:port" without resolving anything (an empty
 * host, for listening, means any address). A name is kept for
 * cfg_resolve() when allow_name, else it is an error. 0 or -1 with err. */
int cfg_parse_hostport(const char *s, int allow_name, struct pc_addr *out, char *err, size_t errlen);
/* Resolve a parsed address's name (DNS). 0, or -1 with err. */
int cfg_resolve(struct pc_addr *a, char *err, size_t errlen);

#endif
