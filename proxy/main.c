/*
 * portcullis: command line.
 *
 *   portcullis [-c FILE]            serve in the foreground
 *   portcullis -t [-c FILE]         validate the config (and its SQL) and exit
 *   portcullis token ...            mint a test token
 *   portcullis explain ...          evaluate one request without forwarding it
 */
#include "server.h"
#include "../lib/log.h"
#include "explain.h"
#include "config.h"
#include "../rules/match.h"
#include "../policies/policy.h"
#include "../policies/gen.h"
#include "../policies/identity.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <jwt.h>

#define PC_DEFAULT_CONFIG "/etc/portcullis/portcullis.yaml"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: portcullis [-c FILE] [-t [--print-defaults]]\n"
            "       portcullis token (--secret S | --secret-file F) [--claim k=v]... [--ttl 1h] [--alg HS256] [--kid ID]\n"
            "       portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n"
            "       portcullis healthcheck [HOST:PORT] [PATH]\n"
            "\n"
            "  -c, --config FILE  config file (default: $PORTCULLIS_CONFIG, then " PC_DEFAULT_CONFIG ")\n"
            "  -t, --test         validate the config, check policies against the database, exit\n"
            "      --print-defaults  with -t: print the effective config, every default filled in\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this help\n");
}

const char *pc_default_config_path(void)
{
    const char *env = getenv("PORTCULLIS_CONFIG");
    return env && *env ? env : PC_DEFAULT_CONFIG;
}

static int pc_token_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'f'},
        {"claim", required_argument, NULL, 'c'},
        {"ttl", required_argument, NULL, 't'},
        {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *secret = NULL, *secret_file = NULL, *alg_name = "HS256", *kid = NULL;
    int64_t ttl_ms = 3600000;
    jwt_t *jwt = NULL;
    char *out = NULL;
    unsigned char *key = NULL;
    size_t keylen = 0;
    int rc = 1;

    if (jwt_new(&jwt) != 0) {
        fprintf(stderr, "portcullis token: out of memory\n");
        return 1;
    }
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': secret = optarg; break;
        case 'f': secret_file = optarg; break;
        case 'a': alg_name = optarg; break;
        case 'k': kid = optarg; break;
        case 't':
            if (pc_parse_duration(optarg, &ttl_ms) != 0) {
                fprintf(stderr, "portcullis token: bad --ttl '%s'\n", optarg);
                goto out;
            }
            break;
        case 'c': {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg) {
                fprintf(stderr, "portcullis token: --claim wants name=value\n");
                goto out;
            }
            *eq = '\0';
            const char *v = eq + 1;
            uint64_t n;
            int r;
            if (pc_parse_u64(v, strlen(v), &n) == 0)
                r = jwt_add_grant_int(jwt, optarg, (long)n);
            else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
                r = jwt_add_grant_bool(jwt, optarg, v[0] == 't');
            else
                r = jwt_add_grant(jwt, optarg, v);
            if (r != 0) {
                fprintf(stderr, "portcullis token: cannot add claim %s\n", optarg);
                goto out;
            }
            break;
        }
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (secret_file != NULL) {
        char err[300];
        if (id_read_secret_file(secret_file, &key, &keylen, err, sizeof(err)) != 0) {
            fprintf(stderr, "portcullis token: %s\n", err);
            goto out;
        }
    } else if (secret != NULL) {
        keylen = strlen(secret);
        key = (unsigned char *)pc_strndup(secret, keylen);
    }
    if (key == NULL || keylen == 0) {
        fprintf(stderr, "portcullis token: a non-empty --secret or --secret-file is required\n");
        goto out;
    }
    jwt_alg_t alg = jwt_str_alg(alg_name);
    if (alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512) {
        fprintf(stderr, "portcullis token: --alg must be HS256, HS384 or HS512\n");
        goto out;
    }
    time_t now = time(NULL);
    /* libjwt 1.10 reports a missing grant with errno ENOENT */
    errno = 0;
    jwt_get_grant_int(jwt, "exp");
    if (errno == ENOENT && ttl_ms > 0 && jwt_add_grant_int(jwt, "exp", (long)(now + ttl_ms / 1000)) != 0)
        goto out;
    errno = 0;
    jwt_get_grant_int(jwt, "iat");
    if (errno == ENOENT && jwt_add_grant_int(jwt, "iat", (long)now) != 0)
        goto out;
    if (kid != NULL && jwt_add_header(jwt, "kid", kid) != 0)
        goto out;
    if (jwt_set_alg(jwt, alg, key, (int)keylen) != 0) {
        fprintf(stderr, "portcullis token: cannot set the algorithm\n");
        goto out;
    }
    out = jwt_encode_str(jwt);
    if (out == NULL) {
        fprintf(stderr, "portcullis token: encoding failed\n");
        goto out;
    }
    printf("%s\n", out);
    rc = 0;
out:
    free(out);
    free(key);
    jwt_free(jwt);
    return rc;
}

/*
 * portcullis healthcheck [host:port] [path]: GET path (default /healthz)
 * from a running proxy; exit 0 on 200. For container HEALTHCHECKs, which
 * should not need curl. The address defaults to $PORTCULLIS_LISTEN, with
 * 0.0.0.0 / [::] meaning the loopback address.
 */
static int pc_healthcheck_main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : getenv("PORTCULLIS_LISTEN");
    const char *path = argc > 2 ? argv[2] : "/healthz";
    char host[300], err[256];
    struct pc_addr a = {0};
    int fd = -1, rc = 1;

    if (addr == NULL || *addr == '\0')
        addr = "127.0.0.1:8080";
    if (strncmp(addr, "0.0.0.0:", 8) == 0)
        snprintf(host, sizeof(host), "127.0.0.1:%s", addr + 8);
    else if (strncmp(addr, "[::]:", 5) == 0)
        snprintf(host, sizeof(host), "[::1]:%s", addr + 5);
    else
        snprintf(host, sizeof(host), "%s", addr);
    if (cfg_parse_hostport(host, 1, &a, err, sizeof(err)) != 0 || cfg_resolve(&a, err, sizeof(err)) != 0) {
        fprintf(stderr, "healthcheck: %s\n", err);
        return 1;
    }
    fd = socket(a.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {3, 0};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&a.sa, a.len) != 0) {
        fprintf(stderr, "healthcheck: cannot connect to %s: %s\n", host, strerror(errno));
        goto out;
    }
    char req[512], resp[64];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (n <= 0 || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "healthcheck: write failed\n");
        goto out;
    }
    ssize_t got = 0, r;
    while (got < 12 && (r = read(fd, resp + got, sizeof(resp) - 1 - (size_t)got)) > 0)
        got += r;
    resp[got] = '\0';
    rc = strncmp(resp, "HTTP/1.1 200", 12) == 0 ? 0 : 1;
    if (rc != 0)
        fprintf(stderr, "healthcheck: %s answered: %.12s\n", host, got > 0 ? resp : "(nothing)");
out:
    if (fd >= 0)
        close(fd);
    free(a.text);
    free(a.host);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"print-defaults", no_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int test = 0, print = 0, ch;

    pc_hash_init();
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return pc_token_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "explain") == 0)
        return pc_explain_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "healthcheck") == 0)
        return pc_healthcheck_main(argc - 1, argv + 1);

    while ((ch = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 't': test = 1; break;
        case 'P': print = 1; break;
        case 'v':
            printf("portcullis %s\n", PC_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "portcullis: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (path == NULL)
        path = pc_default_config_path();
    if (print && !test) {
        fprintf(stderr, "portcullis: --print-defaults goes with -t\n");
        return 2;
    }
    if (!test) {
        sigset_t held;
        pc_server_block_signals(&held);
    }

    int db_rc = 0;
    char *errors = NULL;
    struct pc_config *cfg = pc_server_load_config(path, &db_rc, &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "unknown error\n", stderr);
        free(errors);
        return 1;
    }
    if (db_rc == 1 && errors != NULL)
        fprintf(stderr, "warning: %s", errors);
    free(errors);
    if (test && cfg->warnings != NULL)
        fputs(cfg->warnings, stderr); /* "file:line:col: warning: ..." lines */
    if (test) {
        size_t npol = cfg->pol->set ? cfg->pol->set->n : 0;
        if (print) {
            struct pc_buf b = {0};
            cfg_print(&b, cfg);
            fwrite(b.p, 1, b.len, stdout);
            pc_buf_free(&b);
        }
        printf("%s%s: configuration OK (%zu rules, %zu policies%s)\n", print ? "# " : "", path,
               cfg->rules ? cfg->rules->n : 0, npol,
               db_rc == 1 ? "; policies NOT checked: database unreachable" :
               (npol ? ", all prepared against the database" : ""));
        cfg_unref(cfg);
        return 0;
    }
    return pc_server_run(path, cfg);
}
