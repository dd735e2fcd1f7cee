/*
 * portcullis: command line.
 *
 *   portcullis [-c FILE]            serve in the foreground
 *   portcullis -t [-c FILE]         validate the config (and its SQL) and exit
 *   portcullis token ...            mint a test token
 *   portcullis explain ...          evaluate one request without forwarding it
 *   portcullis test ...             run a rule pack's decision tests
 */
#include "server.h"
#include "../lib/log.h"
#include "explain.h"
#include "packtest.h"
#include "token.h"
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
#include <unistd.h>
#include <sys/socket.h>

#define PC_DEFAULT_CONFIG "/etc/portcullis/portcullis.yaml"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: portcullis [-c FILE] [-t [--print-defaults]]\n"
            "       portcullis token (--secret S | --secret-file F) [--claim k=v]... [--ttl 1h] [--alg HS256] [--kid ID]\n"
            "       portcullis explain [-c FILE] METHOD URL [-H 'Name: value']...\n"
            "       portcullis test [-c FILE] [--junit FILE] [--coverage] [--require-coverage] TESTS.yaml...\n"
            "       portcullis healthcheck [HOST:PORT] [PATH]\n"
            "\n"
            "  -c, --config FILE  config file (default: $PORTCULLIS_CONFIG, then " PC_DEFAULT_CONFIG ")\n"
            "  -t, --test         validate the config, check policies against the database, exit\n"
            "      --print-defaults  with -t: print the effective config, every default filled in\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this help\n"
            "\n"
            "test runs the decision tests of TESTS.yaml against the config's database and exits 1 when\n"
            "one fails, 2 on a usage, file, config or database error:\n"
            "      --junit FILE   also write a JUnit XML report\n"
            "      --coverage     list every rule and policy with the cases that exercised it\n"
            "                     (those no case exercised are always listed)\n"
            "      --require-coverage  a rule or policy no case exercised fails the run\n");
}

const char *pc_default_config_path(void)
{
    const char *env = getenv("PORTCULLIS_CONFIG");
    return env && *env ? env : PC_DEFAULT_CONFIG;
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
    if (argc > 1 && strcmp(argv[1], "test") == 0)
        return pc_packtest_main(argc - 1, argv + 1);
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
