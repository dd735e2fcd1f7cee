/*
 * Unit tests for the config loader (rules/yaml.c, rules/config.c and the
 * identity/policy sections it hands on): every error class names
 * file:line:col and the offending key or value; defaults; ${VAR} expansion.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "../../proxy/config.h"
#include "../../lib/yaml.h"
#include "../../rules/match.h"
#include "../../policies/identity.h"
#include "../../policies/jwt.h"
#include "../../policies/db.h"
#include "../../policies/gen.h"
#include "../../policies/policy.h"
#include "../../lib/base.h"

#define CFG_FILE "portcullis.yaml"
#define BASE "listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n"

/* ---- a fake environment ---- */

static char secret_path[64];     /* a temp file holding "file-secret\n" */
static char keyfile_path[64];    /* a temp file holding "key-from-file\r\n" */

static const char *test_getenv(const char *name)
{
    static const char *const env[][2] = {
        {"UP_HOST", "127.0.0.1"},
        {"UP_PORT", "9100"},
        {"EMPTY", ""},
        {"LISTEN_KEY", "listen"},
        {"LOG_LEVEL", "debug"},
        {"SECRET_KEY", "env-secret"},
    };
    if (strcmp(name, "SECRET_PATH") == 0)
        return secret_path;
    for (size_t i = 0; i < PC_ARRAY_LEN(env); i++)
        if (strcmp(name, env[i][0]) == 0)
            return env[i][1];
    return NULL;
}

static const char *empty_getenv(const char *name)
{
    (void)name;
    return NULL;
}

/* ---- helpers ---- */

static char *g_errors;

static struct pc_config *load(const char *text)
{
    free(g_errors);
    g_errors = NULL;
    return cfg_load_text(CFG_FILE, text, strlen(text), test_getenv, &g_errors);
}

/* Is there an error line "portcullis.yaml:<loc>: ..." containing frag? */
static int has_error(const char *loc, const char *frag)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), CFG_FILE ":%s: ", loc);
    const char *p = g_errors;
    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        char *line = pc_strndup(p, ll);
        int ok = strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, frag) != NULL;
        free(line);
        if (ok)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s != NULL && *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_error_at(const char *file, int line, const char *text, const char *loc,
                            const char *frag)
{
    struct pc_config *c = load(text);
    if (c != NULL) {
        cfg_unref(c);
        print_error("config loaded, expected error %s: %s\n", loc, frag);
        _fail(file, line);
    }
    if (g_errors == NULL || !has_error(loc, frag)) {
        print_error("expected error '" CFG_FILE ":%s: ...%s...', got:\n%s", loc, frag,
                    g_errors ? g_errors : "(null)");
        _fail(file, line);
    }
    /* every line is "file:line:col: message" */
    for (const char *p = g_errors; *p;) {
        int l, c, n = 0;
        if (sscanf(p, CFG_FILE ":%d:%d: %n", &l, &c, &n) != 2 || n == 0 || l < 1 || c < 1) {
            print_error("malformed error line: %s\n", p);
            _fail(file, line);
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL) {
            print_error("error text does not end in a newline\n");
            _fail(file, line);
        }
        p = nl + 1;
    }
}
#define EXPECT_ERROR(text, loc, frag) expect_error_at(__FILE__, __LINE__, (text), (loc), (frag))

static struct pc_config *expect_ok_at(const char *file, int line, const char *text)
{
    struct pc_config *c = load(text);
    if (c == NULL) {
        print_error("config failed to load:\n%s", g_errors ? g_errors : "(null)");
        _fail(file, line);
    }
    return c;
}
#define EXPECT_OK(text) expect_ok_at(__FILE__, __LINE__, (text))

/* ---- YAML structure ---- */

static void test_yaml_syntax_error_names_file_line_col(void **state)
{
    (void)state;
    /* a mapping value where none may start */
    EXPECT_ERROR(BASE "log: a: b\n", "3:7", "mapping values are not allowed");
    /* an unclosed flow sequence is reported where the parser gave up */
    struct pc_config *c = load(BASE "workers: [1, 2\n");
    assert_null(c);
    assert_non_null(g_errors);
    assert_int_equal(strncmp(g_errors, CFG_FILE ":", strlen(CFG_FILE) + 1), 0);
    assert_int_equal(count_lines(g_errors), 1);
}

static void test_invalid_utf8_and_control_characters_are_located(void **state)
{
    (void)state;
    /* libyaml's reader gives a byte offset, not a mark: still file:line:col */
    EXPECT_ERROR(BASE "log:\n  level: \xff\xfe\n", "4:10", "invalid leading UTF-8 octet (0xFF)");
    EXPECT_ERROR(BASE "log:\n  level: a\x01\n", "4:11", "control characters are not allowed (0x1)");
    /* a multi-byte sequence cut short by the end of the input */
    load(BASE "log:\n  level: \xc3");
    assert_non_null(g_errors);
    assert_true(has_error("4:10", "incomplete UTF-8 octet sequence"));
    assert_null(strstr(g_errors, "0xFFFFFFFF"));
    /* and from a file */
    char path[64];
    snprintf(path, sizeof(path), "/tmp/pc-test-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = BASE "workers: 2\n  # \xc3\x28\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    char *errs = NULL;
    assert_null(cfg_load(path, NULL, &errs));
    char want[128];
    snprintf(want, sizeof(want), "%s:4:6: invalid trailing UTF-8 octet", path);
    assert_non_null(errs);
    assert_non_null(strstr(errs, want));
    free(errs);
    unlink(path);
}

static void test_empty_document_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR("", "1:1", "the configuration is empty");
    EXPECT_ERROR("# nothing but a comment\n\n", "1:1", "the configuration is empty");
}

static void test_non_mapping_root_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR("- listen\n- upstream\n", "1:1", "the configuration must be a mapping");
    EXPECT_ERROR("just a string\n", "1:1", "the configuration must be a mapping");
    EXPECT_ERROR("\n\n  42\n", "3:3", "the configuration must be a mapping");
}

static void test_unknown_top_level_key_suggests_the_closest_name(void **state)
{
    (void)state;
    EXPECT_ERROR("lisen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:9000\"\n", "1:1",
                 "unknown key 'lisen' in the top level (did you mean 'listen'?)");
    EXPECT_ERROR(BASE "upstraem_timeout: 3s\n", "3:1", "unknown key 'upstraem_timeout'");
    /* nothing close: no suggestion */
    load(BASE "frobnicate: 1\n");
    assert_true(has_error("3:1", "unknown key 'frobnicate' in the top level"));
    assert_null(strstr(g_errors, "did you mean"));
}

static void test_unknown_key_inside_each_section_is_named_with_its_position(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "timeouts:\n  header: 1s\n  heade: 2s\n", "5:3",
                 "unknown key 'heade' in timeouts (did you mean 'header'?)");
    EXPECT_ERROR(BASE "limits:\n  body_byte: 1MiB\n", "4:3",
                 "unknown key 'body_byte' in limits (did you mean 'body_bytes'?)");
    EXPECT_ERROR(BASE "log:\n  formt: json\n", "4:3", "unknown key 'formt' in log (did you mean 'format'?)");
    EXPECT_ERROR(BASE "cache:\n  tll: 5s\n", "4:3", "unknown key 'tll' in cache (did you mean 'ttl'?)");
    EXPECT_ERROR(BASE "database:\n  url: postgres:///app\n  pools: 4\n", "5:3",
                 "unknown key 'pools' in database (did you mean 'pool'?)");
    EXPECT_ERROR(BASE "identity:\n  secret: s3cret\n  issuers: me\n", "5:3",
                 "unknown key 'issuers' in identity (did you mean 'issuer'?)");
    EXPECT_ERROR(BASE "identity:\n  secret: s3cret\n  keys:\n    - id: a\n      secret: x\n      secrt: y\n",
                 "8:7", "unknown key 'secrt' in identity.keys item");
}

static void test_every_error_is_reported_not_just_the_first(void **state)
{
    (void)state;
    assert_null(load(BASE "workers: 0\nlog:\n  format: xml\n  level: loud\ndefault: maybe\n"));
    assert_true(has_error("3:10", "out of range"));
    assert_true(has_error("5:11", "log.format must be one of json, text, found 'xml'"));
    assert_true(has_error("6:10", "found 'loud'"));
    assert_true(has_error("7:10", "default must be deny or forward, found 'maybe'"));
    assert_int_equal(count_lines(g_errors), 4);
}

static void test_duplicate_keys_are_refused_at_top_level_and_nested(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "listen: \"127.0.0.1:8081\"\n", "3:1", "duplicate key 'listen'");
    EXPECT_ERROR(BASE "timeouts:\n  header: 1s\n  connect: 1s\n  header: 2s\n", "6:3",
                 "duplicate key 'header'");
    EXPECT_ERROR(BASE "identity:\n  keys:\n    - {id: a, secret: x, id: b}\n", "5:26",
                 "duplicate key 'id'");
}

static void test_yaml_anchors_are_refused(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "workers: &w 4\n", "3:10", "YAML anchors are not allowed");
    EXPECT_ERROR(BASE "timeouts: &t\n  header: 1s\n", "3:11", "YAML anchors are not allowed");
}

static void test_yaml_aliases_are_refused(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "workers: *w\n", "3:10", "YAML aliases are not allowed");
}

static void test_yaml_tags_are_refused(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "health_path: !!str /health\n", "3:14", "YAML tags are not allowed");
    EXPECT_ERROR(BASE "timeouts: !!map\n  header: 1s\n", "3:11", "YAML tags are not allowed");
}

static void test_multiple_yaml_documents_are_refused(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "---\nworkers: 2\n", "3:1", "only one YAML document is allowed");
    EXPECT_ERROR("---\n" BASE "...\n---\nworkers: 2\n", "5:1", "only one YAML document is allowed");
}

static void test_nul_in_a_yaml_scalar_is_refused(void **state)
{
    (void)state;
    /* a key "listen\0x" must not act as a second, undetected "listen" */
    EXPECT_ERROR(BASE "\"listen\\0shadow\": \":9999\"\n", "3:1", "NUL character in a YAML scalar is not allowed");
    /* nor may a value be cut short at the NUL */
    EXPECT_ERROR(BASE "health_path: \"/h\\0x\"\n", "3:14", "NUL character in a YAML scalar is not allowed");
    EXPECT_ERROR(BASE "identity:\n  secret: \"abc\\x00def\"\n", "4:11", "NUL character");
}

static void test_non_scalar_mapping_keys_are_refused(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "? [a, b]\n: 1\n", "3:3", "mapping keys must be plain scalars");
    EXPECT_ERROR(BASE "? {a: 1}\n: 1\n", "3:3", "mapping keys must be plain scalars");
}

/* ---- scalars: durations, sizes ---- */

static void test_invalid_durations_are_refused_with_the_value(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "timeouts:\n  header: 10\n", "4:11", "invalid duration '10'");
    EXPECT_ERROR(BASE "timeouts:\n  connect: 5x\n", "4:12", "invalid duration '5x'");
    EXPECT_ERROR(BASE "timeouts:\n  idle: -1s\n", "4:9", "invalid duration '-1s'");
    EXPECT_ERROR(BASE "timeouts:\n  idle: 1.5s\n", "4:9", "invalid duration '1.5s'");
    EXPECT_ERROR(BASE "timeouts:\n  idle: s\n", "4:9", "invalid duration 's'");
    EXPECT_ERROR(BASE "timeouts:\n  idle: 10 s\n", "4:9", "invalid duration '10 s'");
    EXPECT_ERROR(BASE "timeouts:\n  header: 0s\n", "4:11", "duration '0s' out of range");
    EXPECT_ERROR(BASE "timeouts:\n  header: {a: 1}\n", "4:11", "expected a scalar value, found a mapping");
}

static void test_valid_durations_are_converted_to_milliseconds(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "timeouts:\n  header: 500ms\n  connect: 10s\n  idle: 5m\n"
                                         "  upstream: 1h\n  drain: 0s\n  body: 1d\n");
    assert_int_equal(c->timeouts.header, 500);
    assert_int_equal(c->timeouts.connect, 10000);
    assert_int_equal(c->timeouts.idle, 300000);
    assert_int_equal(c->timeouts.upstream, 3600000);
    assert_int_equal(c->timeouts.drain, 0);
    assert_int_equal(c->timeouts.body, 86400000);
    cfg_unref(c);
}

static void test_invalid_sizes_are_refused_with_the_value(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "limits:\n  body_bytes: 1.5MiB\n", "4:15", "invalid size '1.5MiB'");
    EXPECT_ERROR(BASE "limits:\n  body_bytes: 32kib\n", "4:15", "invalid size '32kib'");
    EXPECT_ERROR(BASE "limits:\n  body_bytes: -1\n", "4:15", "invalid size '-1'");
    EXPECT_ERROR(BASE "limits:\n  body_bytes: MiB\n", "4:15", "invalid size 'MiB'");
    EXPECT_ERROR(BASE "limits:\n  body_bytes: 10 MiB\n", "4:15", "invalid size '10 MiB'");
    EXPECT_ERROR(BASE "limits:\n  header_bytes: 512\n", "4:17", "size '512' out of range");
    EXPECT_ERROR(BASE "limits:\n  header_bytes: 2MiB\n", "4:17", "size '2MiB' out of range");
}

static void test_valid_sizes_are_converted_to_bytes(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "limits:\n  header_bytes: 32KiB\n  body_bytes: 100MiB\n"
                                         "  connections: 1000\n");
    assert_int_equal(c->limits.header_bytes, 32 * 1024);
    assert_int_equal(c->limits.body_bytes, 100 * 1024 * 1024);
    assert_int_equal(c->limits.connections, 1000);
    cfg_unref(c);
    c = EXPECT_OK(BASE "limits:\n  header_bytes: 1024\n  body_bytes: 1GiB\n");
    assert_int_equal(c->limits.header_bytes, 1024);
    assert_int_equal(c->limits.body_bytes, 1024ULL * 1024 * 1024);
    cfg_unref(c);
}

/* ---- addresses ---- */

static void test_listen_accepts_host_port_and_bracketed_ipv6(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE);
    assert_string_equal(c->listen.text, "127.0.0.1:8080");
    assert_string_equal(c->listen.host, "127.0.0.1");
    assert_int_equal(c->listen.port, 8080);
    assert_int_equal(c->listen.sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&c->listen.sa)->sin_port), 8080);
    cfg_unref(c);

    c = EXPECT_OK("listen: \"[::]:8080\"\nupstream: http://127.0.0.1:9000\n");
    assert_string_equal(c->listen.host, "::");
    assert_int_equal(c->listen.port, 8080);
    assert_int_equal(c->listen.sa.ss_family, AF_INET6);
    cfg_unref(c);

    c = EXPECT_OK("listen: \"[::1]:1\"\nupstream: http://127.0.0.1:9000\n");
    assert_int_equal(c->listen.port, 1);
    assert_int_equal(c->listen.sa.ss_family, AF_INET6);
    cfg_unref(c);

    c = EXPECT_OK("listen: \":65535\"\nupstream: http://127.0.0.1:9000\n");
    assert_string_equal(c->listen.host, "");
    assert_int_equal(c->listen.port, 65535);
    cfg_unref(c);

    c = EXPECT_OK("listen: 0.0.0.0:80\nupstream: http://127.0.0.1:9000\n");
    assert_int_equal(c->listen.port, 80);
    cfg_unref(c);
}

static void test_listen_refuses_bad_ports_and_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "127.0.0.1:", "127.0.0.1:-1",
        "127.0.0.1: 80", "127.0.0.1:8080x", "127.0.0.1", "::8080", "[::1]8080", "[::1]",
        "localhost:8080", "999.1.1.1:80",
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), "upstream: http://127.0.0.1:9000\nlisten: \"%s\"\n", bad[i]);
        char frag[128];
        snprintf(frag, sizeof(frag), "'%s'", bad[i]);
        EXPECT_ERROR(text, "2:9", frag);
        assert_true(has_error("2:9", "listen: "));
    }
}

/* docker compose: the backend's name may not resolve yet when the proxy
 * starts; that is a warning, and the name is resolved again while serving */
static void test_an_upstream_name_that_does_not_resolve_is_a_warning(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK("listen: :8080\nupstream: http://no-such-host.invalid:5001\n");
    assert_string_equal(c->upstream.host, "no-such-host.invalid");
    assert_int_equal(c->upstream.port, 5001);
    assert_int_equal(c->upstream.resolved, 0);
    assert_int_equal(c->upstream.numeric, 0);
    assert_null(c->warnings);   /* loading never asks DNS: installing does */
    char *w = cfg_install(c);
    assert_non_null(w);
    assert_non_null(strstr(w, "portcullis.yaml:2:11: warning: upstream: cannot resolve 'no-such-host.invalid'"));
    free(w);
    cfg_unref(c);
    c = EXPECT_OK("listen: :8080\nupstream: http://127.0.0.1:5001\n");
    assert_int_equal(c->upstream.numeric, 1);
    assert_int_equal(c->upstream.resolved, 1);
    assert_null(c->warnings);
    cfg_unref(c);
}

static void test_upstream_must_be_plain_http_host_and_port(void **state)
{
    (void)state;
    EXPECT_ERROR("listen: :8080\nupstream: https://127.0.0.1:9000\n", "2:11",
                 "upstream must be http://host:port, found 'https://127.0.0.1:9000'");
    EXPECT_ERROR("listen: :8080\nupstream: 127.0.0.1:9000\n", "2:11", "upstream must be http://host:port");
    EXPECT_ERROR("listen: :8080\nupstream: http://127.0.0.1:9000/api\n", "2:11",
                 "upstream must not have a path: 'http://127.0.0.1:9000/api'");
    EXPECT_ERROR("listen: :8080\nupstream: http://127.0.0.1\n", "2:11", "upstream: invalid address '127.0.0.1'");
    EXPECT_ERROR("listen: :8080\nupstream: http://127.0.0.1:0\n", "2:11", "invalid port in '127.0.0.1:0'");
    EXPECT_ERROR("listen: :8080\nupstream: http://\n", "2:11", "upstream: invalid address");
    /* an empty host is "any address" for listen, never an upstream */
    EXPECT_ERROR("listen: :8080\nupstream: http://:9000\n", "2:11", "upstream: missing host in ':9000'");
    EXPECT_ERROR("listen: :8080\nupstream: \"http://[]:9000\"\n", "2:11", "upstream: missing host in '[]:9000'");
    EXPECT_ERROR("listen: :8080\nupstream: [http://a:1]\n", "2:11", "upstream must be a scalar");

    /* one trailing slash is tolerated; a name resolves */
    struct pc_config *c = EXPECT_OK("listen: :8080\nupstream: http://127.0.0.1:9000/\n");
    assert_string_equal(c->upstream.host, "127.0.0.1");
    assert_int_equal(c->upstream.port, 9000);
    cfg_unref(c);
    c = EXPECT_OK("listen: :8080\nupstream: \"http://[::1]:9001\"\n");
    assert_string_equal(c->upstream.host, "::1");
    assert_int_equal(c->upstream.port, 9001);
    cfg_unref(c);
    c = EXPECT_OK("listen: :8080\nupstream: http://localhost:9002\n");
    assert_string_equal(c->upstream.host, "localhost");
    assert_int_equal(c->upstream.port, 9002);
    cfg_unref(c);
}

static void test_listen_and_upstream_are_required(void **state)
{
    (void)state;
    EXPECT_ERROR("upstream: http://127.0.0.1:9000\n", "1:1", "listen is required");
    EXPECT_ERROR("listen: :8080\n", "1:1", "upstream is required");
    load("workers: 2\n");
    assert_true(has_error("1:1", "listen is required"));
    assert_true(has_error("1:1", "upstream is required"));
}

static void test_workers_must_be_between_1_and_256(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "workers: 0\n", "3:10", "0 is out of range (1..256)");
    EXPECT_ERROR(BASE "workers: 257\n", "3:10", "257 is out of range (1..256)");
    EXPECT_ERROR(BASE "workers: -2\n", "3:10", "invalid number '-2'");
    EXPECT_ERROR(BASE "workers: four\n", "3:10", "invalid number 'four'");
    EXPECT_ERROR(BASE "workers: 99999999999999999999\n", "3:10", "invalid number");
    struct pc_config *c = EXPECT_OK(BASE "workers: 1\n");
    assert_int_equal(c->workers, 1);
    cfg_unref(c);
    c = EXPECT_OK(BASE "workers: 256\n");
    assert_int_equal(c->workers, 256);
    cfg_unref(c);
}

static void test_log_format_and_level_are_validated(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "log:\n  format: xml\n", "4:11", "log.format must be one of json, text, found 'xml'");
    EXPECT_ERROR(BASE "log:\n  format: JSON\n", "4:11", "found 'JSON'");
    EXPECT_ERROR(BASE "log:\n  level: verbose\n", "4:10",
                 "log.level must be one of debug, info, warn, error, found 'verbose'");
    EXPECT_ERROR(BASE "log:\n  access: yes\n", "4:11", "expected true or false, found 'yes'");
    EXPECT_ERROR(BASE "log:\n  access: \"true\"\n", "4:11", "expected true or false");
    EXPECT_ERROR(BASE "log: json\n", "3:6", "log must be a mapping");

    struct pc_config *c = EXPECT_OK(BASE "log:\n  format: text\n  level: warn\n  access: false\n");
    assert_int_equal(c->log_format, PC_LOG_TEXT);
    assert_int_equal(c->log_level, PC_LOG_WARN);
    assert_int_equal(c->access_log, 0);
    cfg_unref(c);
    c = EXPECT_OK(BASE "log:\n  format: json\n  level: error\n");
    assert_int_equal(c->log_format, PC_LOG_JSON);
    assert_int_equal(c->log_level, PC_LOG_ERROR);
    cfg_unref(c);
    c = EXPECT_OK(BASE "log:\n  level: debug\n");
    assert_int_equal(c->log_level, PC_LOG_DEBUG);
    cfg_unref(c);
}

static void test_default_must_be_deny_or_forward(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "default: allow\n", "3:10", "default must be deny or forward, found 'allow'");
    struct pc_config *c = EXPECT_OK(BASE "default: forward\n");
    assert_int_equal(c->default_forward, 1);
    cfg_unref(c);
    c = EXPECT_OK(BASE "default: deny\n");
    assert_int_equal(c->default_forward, 0);
    cfg_unref(c);
}

static void test_health_path_equal_to_ready_path_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "health_path: /status\nready_path: /status\n", "4:13",
                 "health_path and ready_path must differ");
    EXPECT_ERROR(BASE "ready_path: /healthz\n", "3:13", "health_path and ready_path must differ");
    EXPECT_ERROR(BASE "health_path: healthz\n", "3:14",
                 "health_path must be an absolute path without query, found 'healthz'");
    EXPECT_ERROR(BASE "ready_path: /ready?x=1\n", "3:13", "found '/ready?x=1'");
    struct pc_config *c = EXPECT_OK(BASE "health_path: /live\nready_path: /ready\n");
    assert_string_equal(c->health_path, "/live");
    assert_string_equal(c->ready_path, "/ready");
    cfg_unref(c);
}

static void test_defaults_apply_when_keys_are_absent(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE);
    assert_int_equal(c->timeouts.header, 10000);
    assert_int_equal(c->timeouts.connect, 5000);
    assert_int_equal(c->timeouts.upstream, 3600000);
    assert_int_equal(c->timeouts.idle, 75000);
    assert_int_equal(c->timeouts.drain, 30000);
    assert_int_equal(c->limits.header_bytes, 32 * 1024);
    assert_int_equal(c->limits.body_bytes, 100 * 1024 * 1024);
    assert_int_equal(c->limits.connections, 0);
    assert_string_equal(c->health_path, "/healthz");
    assert_string_equal(c->ready_path, "/readyz");
    assert_int_equal(c->log_format, PC_LOG_JSON);
    assert_int_equal(c->log_level, PC_LOG_INFO);
    assert_int_equal(c->access_log, 1);
    assert_int_equal(c->default_forward, 0);
    assert_true(c->workers >= 1 && c->workers <= 64);
    assert_null(c->admin_listen.text);
    assert_null(c->identity);
    assert_null(c->pol->db.url);
    assert_null(c->pol->cache.invalidate_channel);
    assert_non_null(c->rules);
    assert_int_equal(c->rules->n, 0);
    assert_string_equal(c->file, CFG_FILE);
    cfg_unref(c);

    /* a section that only sets one key keeps the others' defaults */
    c = EXPECT_OK(BASE "timeouts:\n  header: 1s\nlimits:\n  body_bytes: 1MiB\n");
    assert_int_equal(c->timeouts.header, 1000);
    assert_int_equal(c->timeouts.connect, 5000);
    assert_int_equal(c->timeouts.drain, 30000);
    assert_int_equal(c->limits.header_bytes, 32 * 1024);
    assert_int_equal(c->limits.body_bytes, 1024 * 1024);
    cfg_unref(c);
}

static void test_admin_listen_is_optional_and_numeric(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "admin_listen: 127.0.0.1:9901\n");
    assert_string_equal(c->admin_listen.text, "127.0.0.1:9901");
    assert_int_equal(c->admin_listen.port, 9901);
    cfg_unref(c);
    c = EXPECT_OK(BASE "admin_listen: null\n");
    assert_null(c->admin_listen.text);
    cfg_unref(c);
    EXPECT_ERROR(BASE "admin_listen: localhost:9901\n", "3:15",
                 "admin_listen: 'localhost:9901' must be a numeric address and port");
}

/* ---- ${VAR} expansion ---- */

static void test_env_vars_expand_in_values(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK("listen: \":8080\"\nupstream: \"http://${UP_HOST}:${UP_PORT}\"\n"
                                    "log:\n  level: ${LOG_LEVEL}\n");
    assert_string_equal(c->upstream.text, "127.0.0.1:9100");
    assert_int_equal(c->upstream.port, 9100);
    assert_int_equal(c->log_level, PC_LOG_DEBUG);
    cfg_unref(c);
}

static void test_env_var_default_is_used_only_when_unset_or_empty(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK("listen: \":${NOPE_PORT:-8181}\"\n"
                                    "upstream: \"http://${UP_HOST:-10.0.0.1}:${EMPTY:-9200}\"\n");
    assert_int_equal(c->listen.port, 8181);
    assert_string_equal(c->upstream.host, "127.0.0.1");
    assert_int_equal(c->upstream.port, 9200);
    cfg_unref(c);
}

static void test_unset_env_var_without_default_is_an_error_naming_it(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "health_path: \"/${MISSING_VAR}\"\n", "3:14",
                 "environment variable MISSING_VAR is not set");
    EXPECT_ERROR(BASE "health_path: /${UNTERMINATED\n", "3:14", "unterminated ${");
    EXPECT_ERROR(BASE "health_path: /${1X}\n", "3:14", "invalid variable name");
    EXPECT_ERROR(BASE "health_path: /${A:B}\n", "3:14", "expected ${NAME} or ${NAME:-default}");
}

static void test_env_var_with_empty_default_expands_to_empty(void **state)
{
    (void)state;
    /* "" -> identity secret empty and nothing else: the missing-secret error */
    EXPECT_ERROR(BASE "identity:\n  secret: \"${NOPE:-}\"\n", "4:11",
                 "identity needs a non-empty secret, a secret_file, or keys");
    struct pc_config *c = EXPECT_OK(BASE "health_path: /h${NOPE:-}z\n");
    assert_string_equal(c->health_path, "/hz");
    cfg_unref(c);
}

static void test_double_dollar_brace_is_a_literal_dollar_brace(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "health_path: \"/a$${MISSING_VAR}\"\n"
                                         "ready_path: /r$x$\n");
    assert_string_equal(c->health_path, "/a${MISSING_VAR}");
    assert_string_equal(c->ready_path, "/r$x$");
    cfg_unref(c);
}

static void test_keys_are_not_env_expanded(void **state)
{
    (void)state;
    /* LISTEN_KEY=listen in the fake environment, but keys stay as written */
    EXPECT_ERROR("${LISTEN_KEY}: \":8080\"\nupstream: http://127.0.0.1:9000\n", "1:1",
                 "unknown key '${LISTEN_KEY}' in the top level");
    /* and a key with an unset variable is no expansion error */
    load(BASE "${NOT_SET_AT_ALL}: 1\n");
    assert_true(has_error("3:1", "unknown key '${NOT_SET_AT_ALL}'"));
    assert_null(strstr(g_errors, "is not set"));
}

static void test_yt_expand_directly(void **state)
{
    (void)state;
    char err[128];
    size_t ol = 99;
    char *o;

#define EXPAND_OK(in, want)                                                       \
    do {                                                                          \
        err[0] = '\0';                                                            \
        o = yt_expand((in), strlen(in), test_getenv, &ol, err, sizeof(err));      \
        assert_non_null(o);                                                       \
        assert_string_equal(o, (want));                                           \
        assert_int_equal(ol, strlen(want));                                       \
        free(o);                                                                  \
    } while (0)
#define EXPAND_ERR(in, frag)                                                      \
    do {                                                                          \
        err[0] = '\0';                                                            \
        o = yt_expand((in), strlen(in), test_getenv, &ol, err, sizeof(err));      \
        assert_null(o);                                                           \
        assert_non_null(strstr(err, (frag)));                                     \
    } while (0)

    EXPAND_OK("", "");
    EXPAND_OK("plain", "plain");
    EXPAND_OK("${UP_HOST}", "127.0.0.1");
    EXPAND_OK("a${UP_HOST}b${UP_PORT}c", "a127.0.0.1b9100c");
    EXPAND_OK("${UNSET_X:-fallback}", "fallback");
    EXPAND_OK("${UNSET_X:-}", "");
    EXPAND_OK("${EMPTY:-dflt}", "dflt");      /* set but empty: the default */
    EXPAND_OK("${EMPTY}", "");                /* set but empty, no default: empty */
    EXPAND_OK("${UP_PORT:-1}", "9100");
    EXPAND_OK("${UNSET_X:-a:-b}", "a:-b");
    EXPAND_OK("${UNSET_X:-${}", "${");        /* the default runs to the first '}' */
    EXPAND_OK("$${UP_HOST}", "${UP_HOST}");
    EXPAND_OK("$$${UP_HOST}", "$${UP_HOST}"); /* "$" then "$${" */
    EXPAND_OK("$", "$");
    EXPAND_OK("$$", "$$");
    EXPAND_OK("cost: $5", "cost: $5");
    EXPAND_OK("$UP_HOST", "$UP_HOST");        /* only the braced form expands */
    EXPAND_OK("${_A1:-x}", "x");

    EXPAND_ERR("${NOT_THERE}", "environment variable NOT_THERE is not set");
    EXPAND_ERR("x${NOT_THERE}y", "NOT_THERE");
    EXPAND_ERR("${UP_HOST", "unterminated ${");
    EXPAND_ERR("${}", "invalid variable name");
    EXPAND_ERR("${9A}", "invalid variable name");
    EXPAND_ERR("${A-b}", "expected ${NAME} or ${NAME:-default}");
    EXPAND_ERR("${A:b}", "expected ${NAME} or ${NAME:-default}");
    EXPAND_ERR("${A B}", "expected ${NAME} or ${NAME:-default}");

    /* the length is honoured: nothing past len is read */
    o = yt_expand("ab${NOT_THERE}", 2, test_getenv, &ol, err, sizeof(err));
    assert_non_null(o);
    assert_string_equal(o, "ab");
    free(o);
    /* a NULL getenv result is "unset" */
    o = yt_expand("${UP_HOST:-d}", 13, empty_getenv, &ol, err, sizeof(err));
    assert_string_equal(o, "d");
    free(o);
#undef EXPAND_OK
#undef EXPAND_ERR
}

/* ---- cross-section checks ---- */

/* One error, one line: a value quoted in a message cannot break the
 * file:line:col format or forge further error lines (found by fuzzing). */
static void test_error_messages_quoting_values_stay_on_one_line(void **state)
{
    (void)state;
    EXPECT_ERROR("\"a\\nportcullis.yaml:9:9: forged\": 1\nlisten: :8080\nupstream: http://127.0.0.1:1\n",
                 "1:1", "unknown key 'a\\nportcullis.yaml:9:9: forged'");
    /* every line of the error text starts with the file name */
    for (const char *p = g_errors; p && *p;) {
        assert_int_equal(strncmp(p, CFG_FILE ":", strlen(CFG_FILE) + 1), 0);
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    assert_null(strstr(g_errors, "\n" CFG_FILE ":9:9"));
}

static void test_a_duplicate_key_with_a_line_break_is_quoted_on_one_line(void **state)
{
    (void)state;
    EXPECT_ERROR("\"a\\r\\nb\\x01\": 1\n\"a\\r\\nb\\x01\": 2\n", "2:1", "duplicate key 'a\\r\\nb\\x01'");
    assert_null(strchr(g_errors, '\r'));
    assert_ptr_equal(strchr(g_errors, '\n'), g_errors + strlen(g_errors) - 1);
}

static void test_policies_without_database_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "policies:\n  owns_app: \"SELECT 1 WHERE :subject = 'x'\"\n", "4:3",
                 "policies need a database section");
    EXPECT_ERROR(BASE "database:\n  pool: 2\n", "4:3", "database needs a url, or a host and dbname");
    struct pc_config *c = EXPECT_OK(BASE "database:\n  url: postgres:///app\n  pool: 8\n"
                                         "  connect_timeout: 2s\n"
                                         "policies:\n  owns_app: \"SELECT 1 WHERE :subject = 'x'\"\n");
    assert_string_equal(c->pol->db.url, "postgres:///app");
    assert_int_equal(c->pol->db.pool, 8);
    assert_int_equal(c->pol->db.connect_timeout, 2000);
    assert_int_equal(c->pol->db.line, 4);
    assert_int_equal(c->pol->db.col, 3);
    assert_int_equal(c->pol->set->n, 1);
    assert_string_equal(c->pol->set->p[0].variants[0].sql, "SELECT 1 WHERE $1 = 'x'");
    cfg_unref(c);
}

/* libpq keywords one by one: a password is taken as written, never parsed
 * out of a conninfo string */
static void test_database_keys_are_kept_one_by_one(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "database:\n  host: db\n  port: \"5433\"\n  dbname: dify\n"
                                         "  user: u\n  password: \"p w'\\\" x=\"\n  sslmode: require\n");
    assert_string_equal(c->pol->db.host, "db");
    assert_string_equal(c->pol->db.port, "5433");
    assert_string_equal(c->pol->db.dbname, "dify");
    assert_string_equal(c->pol->db.user, "u");
    assert_string_equal(c->pol->db.password, "p w'\" x=");
    assert_string_equal(c->pol->db.sslmode, "require");
    assert_null(c->pol->db.url);
    cfg_unref(c);
    EXPECT_ERROR(BASE "database:\n  user: u\n", "4:3", "database needs a url, or a host and dbname");
}

static void test_policy_sql_errors_name_the_policy_and_position(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "database: {url: x}\npolicies:\n  p1: \"SELECT 'oops\"\n", "5:7",
                 "policy 'p1': unterminated string literal");
    EXPECT_ERROR(BASE "database: {url: x}\npolicies:\n  p2: \"SELECT $1\"\n", "5:7",
                 "policy 'p2': write parameters as :name, not $n");
    EXPECT_ERROR(BASE "database: {url: x}\npolicies:\n  \"bad name\": \"SELECT 1\"\n", "5:3",
                 "policy names use [A-Za-z0-9_-], found 'bad name'");
}

static void test_rule_with_allow_but_no_identity_section_is_an_error(void **state)
{
    (void)state;
    static const char text[] = BASE
        "database:\n"
        "  url: postgres:///app\n"
        "policies:\n"
        "  anyone: \"SELECT 1 WHERE :subject IS NOT NULL\"\n"
        "rules:\n"
        "  - name: open\n"
        "    path: /open\n"
        "    action: forward\n"
        "  - name: apps\n"
        "    path: /apps\n"
        "    allow: [anyone]\n";
    EXPECT_ERROR(text, "13:12", "rules with allow: need an identity section");

    /* with an identity section the same rules load */
    size_t l = strlen(text) + 64;
    char *t2 = malloc(l);
    snprintf(t2, l, "%sidentity:\n  secret: s3cret\n", text);
    struct pc_config *c = EXPECT_OK(t2);
    assert_int_equal(c->rules->n, 2);
    assert_int_equal(c->rules->rules[1].action, RULE_ALLOW);
    cfg_unref(c);
    free(t2);
}

static void test_cache_invalidate_channel_must_be_lowercase_identifier(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "cache:\n  invalidate_channel: Portcullis\n", "4:23",
                 "cache.invalidate_channel must be a lower-case identifier ([a-z0-9_])");
    EXPECT_ERROR(BASE "cache:\n  invalidate_channel: \"a\\\"; DROP\"\n", "4:23",
                 "cache.invalidate_channel must be a lower-case identifier");
    EXPECT_ERROR(BASE "cache:\n  invalidate_channel: my-channel\n", "4:23", "[a-z0-9_]");
    /* an empty name would become LISTEN "", which PostgreSQL refuses */
    EXPECT_ERROR(BASE "cache:\n  invalidate_channel: \"\"\n", "4:23",
                 "cache.invalidate_channel must be a lower-case identifier");
    struct pc_config *c = EXPECT_OK(BASE "cache:\n  invalidate_channel: pc_invalidate_2\n"
                                         "  ttl: 0s\n  max_entries: 10\n  token_ttl: 1m\n");
    assert_string_equal(c->pol->cache.invalidate_channel, "pc_invalidate_2");
    assert_int_equal(c->pol->cache.ttl, 0);
    assert_int_equal(c->pol->cache.max_entries, 10);
    assert_int_equal(c->pol->cache.token_ttl, 60000);
    cfg_unref(c);
}

/* ---- identity ---- */

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
}

static int make_temp(char *path, size_t sz, const char *content)
{
    snprintf(path, sz, "/tmp/pc-test-secret-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    write_file(path, content);
    return 0;
}

static int setup_secret_files(void **state)
{
    (void)state;
    if (make_temp(secret_path, sizeof(secret_path), "file-secret\n") != 0)
        return -1;
    if (make_temp(keyfile_path, sizeof(keyfile_path), "key-from-file\r\n") != 0)
        return -1;
    return 0;
}

static int teardown_secret_files(void **state)
{
    (void)state;
    unlink(secret_path);
    unlink(keyfile_path);
    free(g_errors);
    g_errors = NULL;
    return 0;
}

static void assert_secret(const struct pc_config *c, const char *want)
{
    assert_non_null(c->identity);
    assert_non_null(c->identity->secret);
    assert_int_equal(c->identity->secret_len, strlen(want));
    assert_memory_equal(c->identity->secret, want, strlen(want));
}

static void test_identity_defaults(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: s3cret\n");
    assert_secret(c, "s3cret");
    assert_int_equal(c->identity->algorithms, TOK_HS256);
    assert_int_equal(c->identity->require_exp, 1);
    assert_int_equal(c->identity->leeway_ms, 30000);
    assert_string_equal(c->identity->subject_claim, "sub");
    assert_int_equal(c->identity->nissuers, 0);
    assert_null(c->identity->audience);
    assert_int_equal(c->identity->nsources, 1);
    assert_int_equal(c->identity->sources[0].kind, ID_SRC_HEADER);
    assert_string_equal(c->identity->sources[0].name, "Authorization");
    cfg_unref(c);
}

static void test_identity_empty_secret_without_file_or_keys_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "identity:\n  secret: \"\"\n", "4:11",
                 "identity needs a non-empty secret, a secret_file, or keys");
    EXPECT_ERROR(BASE "identity:\n  issuer: me\n", "4:3",
                 "identity needs a non-empty secret, a secret_file, or keys");
    EXPECT_ERROR(BASE "identity:\n  secret: \"${SECRET_KEY_UNSET:-}\"\n  secret_file: \"\"\n", "4:11",
                 "identity needs a non-empty secret");
    EXPECT_ERROR(BASE "identity: s3cret\n", "3:11", "identity must be a mapping");
}

static void test_identity_secret_file_is_read_without_trailing_newline(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof(text), BASE "identity:\n  secret_file: %s\n", secret_path);
    struct pc_config *c = EXPECT_OK(text);
    assert_secret(c, "file-secret");
    assert_string_equal(c->identity->secret_file, secret_path);
    cfg_unref(c);
}

static void test_identity_secret_wins_over_secret_file_when_non_empty(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: \"${SECRET_KEY:-}\"\n"
                                         "  secret_file: /nonexistent/never/read\n");
    assert_secret(c, "env-secret");
    assert_null(c->identity->secret_file);
    cfg_unref(c);
}

static void test_identity_secret_file_used_when_secret_expands_empty(void **state)
{
    (void)state;
    /* the deployment idiom: secret from the environment if set, else the file */
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: \"${SECRET_KEY_UNSET:-}\"\n"
                                         "  secret_file: ${SECRET_PATH}\n");
    assert_secret(c, "file-secret");
    cfg_unref(c);
}

static void test_identity_unreadable_or_empty_secret_file_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "identity:\n  secret_file: /nonexistent/pc-secret\n", "4:16",
                 "identity: cannot read secret_file /nonexistent/pc-secret");
    char empty[64];
    assert_int_equal(make_temp(empty, sizeof(empty), "\n"), 0);
    char text[512];
    snprintf(text, sizeof(text), BASE "identity:\n  secret_file: %s\n", empty);
    EXPECT_ERROR(text, "4:16", "is empty");
    unlink(empty);
}

static void test_identity_unsupported_algorithms_are_errors(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  algorithms: [HS256, none]\n", "5:23",
                 "algorithm 'none' is not supported");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  algorithms: [RS256]\n", "5:16",
                 "algorithm 'RS256' is not supported");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  algorithms: [hs256]\n", "5:16",
                 "algorithm 'hs256' is not supported");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  algorithms: []\n", "5:15",
                 "identity.algorithms must not be empty");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  algorithms: HS256\n", "5:15",
                 "identity.algorithms must be a list");
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: s\n  algorithms: [HS384, HS512]\n");
    assert_int_equal(c->identity->algorithms, TOK_HS384 | TOK_HS512);
    cfg_unref(c);
}

static void test_identity_sources_are_validated(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: [\"body:token\"]\n", "5:13",
                 "identity source kind must be cookie, header or query, found 'body'");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: [access_token]\n", "5:13",
                 "identity source must be cookie:NAME, header:NAME or query:NAME, found 'access_token'");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: [\"cookie:\"]\n", "5:13",
                 "identity source 'cookie:' has no name");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: [\"header:X_Token\"]\n", "5:13",
                 "invalid header name 'X_Token' (header names with '_' are dropped before forwarding)");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: [\"cookie:a b\"]\n", "5:13",
                 "invalid cookie name 'a b'");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  sources: []\n", "5:12", "identity.sources must not be empty");

    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: s\n  sources:\n"
                                         "    - cookie:__Host-access_token\n    - cookie:access_token\n"
                                         "    - header:Authorization\n    - header:X-Api-Key\n"
                                         "    - query:_token\n");
    const struct id_config *id = c->identity;
    assert_int_equal(id->nsources, 5);
    assert_int_equal(id->sources[0].kind, ID_SRC_COOKIE);
    assert_string_equal(id->sources[0].name, "__Host-access_token");
    assert_int_equal(id->sources[1].kind, ID_SRC_COOKIE);
    assert_int_equal(id->sources[2].kind, ID_SRC_HEADER);
    assert_string_equal(id->sources[3].name, "X-Api-Key");
    assert_int_equal(id->sources[4].kind, ID_SRC_QUERY);
    assert_string_equal(id->sources[4].name, "_token");
    cfg_unref(c);
}

static void test_identity_keys_with_duplicate_ids_are_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "identity:\n  keys:\n    - id: k1\n      secret: a\n    - id: k1\n      secret: b\n",
                 "7:7", "duplicate identity key id 'k1'");
    EXPECT_ERROR(BASE "identity:\n  keys:\n    - secret: a\n", "5:7", "identity.keys item needs an id");
    EXPECT_ERROR(BASE "identity:\n  keys:\n    - id: k1\n      secret: \"\"\n", "5:7",
                 "identity key 'k1' has no secret");
    EXPECT_ERROR(BASE "identity:\n  keys:\n    - id: k1\n      secret_file: /nonexistent/k\n", "5:7",
                 "identity.keys: cannot read secret_file /nonexistent/k");
}

static void test_identity_keys_after_a_key_without_id_do_not_crash(void **state)
{
    (void)state;
    /* the duplicate-id check must skip an earlier key that had no id */
    load(BASE "identity:\n  keys:\n    - secret: a\n    - id: k2\n      secret: b\n");
    assert_true(has_error("5:7", "identity.keys item needs an id"));
    assert_int_equal(count_lines(g_errors), 1);
}

static void test_identity_keys_are_loaded_with_ids_and_secret_files(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof(text),
             BASE "identity:\n  keys:\n    - id: old\n      secret: old-secret\n"
                  "    - id: new\n      secret_file: %s\n",
             keyfile_path);
    struct pc_config *c = EXPECT_OK(text);
    const struct id_config *id = c->identity;
    assert_null(id->secret);
    assert_int_equal(id->nkeys, 2);
    assert_string_equal(id->keys[0].id, "old");
    assert_int_equal(id->keys[0].secret_len, 10);
    assert_memory_equal(id->keys[0].secret, "old-secret", 10);
    assert_string_equal(id->keys[1].id, "new");
    assert_int_equal(id->keys[1].secret_len, strlen("key-from-file"));
    assert_memory_equal(id->keys[1].secret, "key-from-file", strlen("key-from-file"));
    cfg_unref(c);
}

static void test_identity_scalar_options_are_parsed(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: s\n  subject_claim: user_id\n"
                                         "  issuer: https://auth.example\n  audience: api\n"
                                         "  require_exp: false\n  leeway: 0s\n");
    const struct id_config *id = c->identity;
    assert_string_equal(id->subject_claim, "user_id");
    assert_int_equal(id->nissuers, 1);
    assert_string_equal(id->issuers[0], "https://auth.example");
    assert_string_equal(id->audience, "api");
    assert_int_equal(id->require_exp, 0);
    assert_int_equal(id->leeway_ms, 0);
    cfg_unref(c);
    c = EXPECT_OK(BASE "identity:\n  secret: s\n  issuer: null\n  audience: ~\n");
    assert_int_equal(c->identity->nissuers, 0);
    assert_null(c->identity->audience);
    cfg_unref(c);
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  leeway: 2h\n", "5:11", "duration '2h' out of range");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  require_exp: 1\n", "5:16", "expected true or false, found '1'");
}

static void test_config_from_a_file_path(void **state)
{
    (void)state;
    char path[64];
    assert_int_equal(make_temp(path, sizeof(path), BASE "workers: 3\n"), 0);
    char *errs = NULL;
    struct pc_config *c = cfg_load(path, test_getenv, &errs);
    assert_non_null(c);
    assert_null(errs);
    assert_int_equal(c->workers, 3);
    assert_string_equal(c->file, path);
    assert_int_equal(c->refcnt, 1);
    assert_ptr_equal(cfg_ref(c), c);
    assert_int_equal(c->refcnt, 2);
    cfg_unref(c);
    cfg_unref(c);
    unlink(path);

    c = cfg_load("/nonexistent/portcullis.yaml", NULL, &errs);
    assert_null(c);
    assert_non_null(errs);
    assert_non_null(strstr(errs, "/nonexistent/portcullis.yaml: "));
    free(errs);
}


/* ---- policies that declare what they need from the schema ---- */

#define DB "database:\n  url: postgres:///app\n"

static void test_a_policy_with_requires_and_variants_is_parsed(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE DB "policies:\n"
                                     "  plain: SELECT 1 WHERE :subject = 'x'\n"
                                     "  one:\n"
                                     "    requires: [agents, agents.app_id]\n"
                                     "    sql: SELECT 1 FROM agents WHERE id::text = :agent_id AND :subject <> ''\n"
                                     "  several:\n"
                                     "    variants:\n"
                                     "      - requires: [apps.maintainer]\n"
                                     "        sql: SELECT 1 FROM apps WHERE maintainer::text = :subject AND id = :app_id\n"
                                     "      - sql: SELECT 1 FROM apps WHERE created_by::text = :subject\n");
    const struct pol_set *ps = c->pol->set;
    assert_int_equal(ps->n, 3);
    assert_true(ps->any_requires);
    assert_int_equal(ps->p[0].nvariants, 1);
    assert_int_equal(ps->p[0].variants[0].nrequires, 0);
    assert_int_equal(ps->p[1].nvariants, 1);
    assert_int_equal(ps->p[1].variants[0].nrequires, 2);
    assert_string_equal(ps->p[1].variants[0].requires[1], "agents.app_id");
    /* the rule binds every variant's parameters; each variant maps its $n */
    const struct pol_policy *p = &ps->p[2];
    assert_int_equal(p->nvariants, 2);
    assert_int_equal(p->nparams, 2);
    assert_string_equal(p->params[0], "subject");
    assert_string_equal(p->params[1], "app_id");
    assert_string_equal(p->variants[0].sql, "SELECT 1 FROM apps WHERE maintainer::text = $1 AND id = $2");
    assert_int_equal(p->variants[0].param[0], 0);
    assert_int_equal(p->variants[0].param[1], 1);
    assert_string_equal(p->variants[1].sql, "SELECT 1 FROM apps WHERE created_by::text = $1");
    assert_int_equal(p->variants[1].nparams, 1);
    assert_int_equal(p->variants[1].param[0], 0);
    assert_int_equal(p->variants[1].line, 14);
    cfg_unref(c);
}

static void test_malformed_policy_requirements_name_file_line_col(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    requires: [agents.app_id.x]\n    sql: SELECT 1\n", "7:16",
                 "a requirement is a table or table.column, found 'agents.app_id.x'");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    requires: [\"apps; drop\"]\n    sql: SELECT 1\n", "7:16",
                 "a requirement is a table or table.column");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    requires: [apps]\n", "7:5", "policy 'p' needs sql:");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    sqll: SELECT 1\n", "7:5", "unknown key 'sqll' in a policy (did you mean 'sql'?)");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    sql: SELECT 1\n    variants:\n      - sql: SELECT 2\n", "7:5",
                 "either variants: or sql: and requires:, not both");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    variants: []\n", "7:15", "variants must list 1 to 8 variants");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    variants:\n      - requires: [apps]\n        variants: []\n", "9:9",
                 "unknown key 'variants' in a policy variant");
}

static void test_the_schema_version_check_is_configured(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "database:\n  url: postgres:///app\n  schema_version:\n"
                                         "    query: SELECT version_num FROM alembic_version\n"
                                         "    known: [a4f2d8c9b731, d9e8f7a6b5c4]\n");
    const struct pol_schema_version *sv = &c->pol->db.schema_version;
    assert_string_equal(sv->query, "SELECT version_num FROM alembic_version");
    assert_int_equal(sv->nknown, 2);
    assert_string_equal(sv->known[1], "d9e8f7a6b5c4");
    assert_int_equal(sv->line, 6);
    cfg_unref(c);
    EXPECT_ERROR(BASE "database:\n  url: x\n  schema_version:\n    known: [a]\n", "6:5",
                 "database.schema_version needs a query");
    EXPECT_ERROR(BASE "database:\n  url: x\n  schema_version:\n    query: SELECT 1\n", "6:5",
                 "database.schema_version needs known:");
    EXPECT_ERROR(BASE "database:\n  url: x\n  schema_version:\n    query: SELECT 1\n    knwon: [a]\n", "7:5",
                 "unknown key 'knwon' in database.schema_version (did you mean 'known'?)");
}

static void test_a_fallback_rule_is_marked(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "rules:\n  - {name: known, path: /a/x, action: forward}\n"
                                         "  - {name: unknown, path: /a/**, action: deny, fallback: true}\n");
    assert_false(c->rules->rules[0].fallback);
    assert_true(c->rules->rules[1].fallback);
    cfg_unref(c);
    EXPECT_ERROR(BASE "rules:\n  - {name: u, path: /a/**, action: deny, fallback: yes}\n", "4:52",
                 "expected true or false, found 'yes'");
}

/* A published default key: anyone can mint tokens with it. */
static void test_a_public_secret_is_refused_unless_explicitly_allowed(void **state)
{
    (void)state;
    const char *published = "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U";
    char text[1024];
    snprintf(text, sizeof(text), BASE "identity:\n  secret: \"%s\"\n  public_secrets: [\"%s\", other]\n",
             published, published);
    EXPECT_ERROR(text, "4:3", "the signing secret (identity.secret) is public");
    assert_non_null(strstr(g_errors, "openssl rand"));
    assert_null(strstr(g_errors, published + 3));   /* the message never quotes the secret */
    /* a key of keys: too */
    snprintf(text, sizeof(text), BASE "identity:\n  keys: [{id: k1, secret: \"%s\"}]\n  public_secrets: [\"%s\"]\n",
             published, published);
    EXPECT_ERROR(text, "4:3", "the signing secret (k1) is public");
    /* a throwaway demo may say so */
    snprintf(text, sizeof(text), BASE "identity:\n  secret: \"%s\"\n  public_secrets: [\"%s\"]\n"
                                      "  allow_public_secret: true\n", published, published);
    struct pc_config *c = EXPECT_OK(text);
    assert_non_null(c->warnings);
    assert_non_null(strstr(c->warnings, "portcullis.yaml:5:20: warning: identity: the signing secret (identity.secret) is public"));
    cfg_unref(c);
    /* any other secret loads */
    snprintf(text, sizeof(text), BASE "identity:\n  secret: fresh-key\n  public_secrets: [\"%s\"]\n", published);
    c = EXPECT_OK(text);
    assert_null(c->warnings);
    cfg_unref(c);
}


/* Dify sets iss from EDITION: a pack accepts every edition's value */
static void test_identity_issuer_may_list_several_values(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "identity:\n  secret: s\n  issuer: [SELF_HOSTED, CLOUD]\n");
    assert_int_equal(c->identity->nissuers, 2);
    assert_string_equal(c->identity->issuers[1], "CLOUD");
    cfg_unref(c);
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  issuer: []\n", "5:11", "identity.issuer must not be an empty list");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  issuer: [a, \"\"]\n", "5:15", "an issuer must not be empty");
    EXPECT_ERROR(BASE "identity:\n  secret: s\n  issuer: {a: b}\n", "5:11", "identity.issuer (a value or a list)");
}

/* ---- the MySQL driver and SQL per dialect ---- */

#define MYDB "database:\n  driver: mysql\n  host: 127.0.0.1\n  dbname: dify\n"

static void test_the_driver_and_its_synonyms_choose_the_dialect(void **state)
{
    (void)state;
    static const char *const names[][2] = {
        {"postgresql", "pg"}, {"postgres", "pg"}, {"mysql", "my"}, {"mariadb", "my"}, {"oceanbase", "my"},
        {"seekdb", "my"},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(names); i++) {
        char text[256];
        snprintf(text, sizeof(text), BASE "database:\n  driver: %s\n  host: h\n  dbname: d\n", names[i][0]);
        struct pc_config *c = EXPECT_OK(text);
        assert_int_equal(c->pol->db.dialect, strcmp(names[i][1], "my") == 0 ? POL_DIALECT_MYSQL : POL_DIALECT_PG);
        assert_ptr_equal(db_driver_for(c->pol), strcmp(names[i][1], "my") == 0 ? &db_driver_my : &db_driver_pg);
        cfg_unref(c);
    }
    struct pc_config *c = EXPECT_OK(BASE DB);
    assert_int_equal(c->pol->db.dialect, POL_DIALECT_PG); /* the default */
    cfg_unref(c);
    EXPECT_ERROR(BASE "database:\n  driver: sqlite\n  host: h\n  dbname: d\n", "4:11",
                 "database.driver must be one of postgresql, mysql, postgres, mariadb, oceanbase, seekdb, found 'sqlite'");
}

static void test_mysql_database_keys_are_checked(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "database:\n  driver: mysql\n  url: \"host=x\"\n  host: h\n  dbname: d\n", "5:8",
                 "database.url is a libpq conninfo; with driver mysql give host");
    EXPECT_ERROR(BASE "database:\n  driver: mysql\n  host: h\n", "4:3", "database needs a host and a dbname");
    EXPECT_ERROR(BASE MYDB "  port: \"33o6\"\n", "7:9", "database.port must be a port number, found '33o6'");
    EXPECT_ERROR(BASE MYDB "  sslmode: allow\n", "7:12", "database.sslmode must be one of disable, prefer");
    EXPECT_ERROR(BASE MYDB "  sslmode: verify-full\n", "7:12", "database.sslmode verify-full needs sslrootcert");
    EXPECT_ERROR(BASE DB "  server_public_key: /k.pem\n", "5:22", "database.server_public_key is for driver mysql");
    struct pc_config *c = EXPECT_OK(BASE MYDB "  port: \"3307\"\n  sslmode: verify-ca\n  sslrootcert: /ca.pem\n"
                                              "  sslcert: /c.pem\n  sslkey: /k.pem\n  server_public_key: /pub.pem\n");
    assert_string_equal(c->pol->db.sslrootcert, "/ca.pem");
    assert_string_equal(c->pol->db.sslcert, "/c.pem");
    assert_string_equal(c->pol->db.sslkey, "/k.pem");
    assert_string_equal(c->pol->db.server_public_key, "/pub.pem");
    cfg_unref(c);
}

static void test_target_session_attrs_is_libpqs_and_keeps_listen_on_a_primary(void **state)
{
    (void)state;
    static const char *const ok[] = {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"};
    char text[512];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), BASE DB "  host: \"a,b\"\n  target_session_attrs: %s\n", ok[i]);
        struct pc_config *c = EXPECT_OK(text);
        assert_string_equal(c->pol->db.target_session_attrs, ok[i]);
        assert_string_equal(c->pol->db.host, "a,b");
        cfg_unref(c);
    }
    /* not set: the url's (or libpq's any) applies */
    struct pc_config *c = EXPECT_OK(BASE DB);
    assert_null(c->pol->db.target_session_attrs);
    cfg_unref(c);
    EXPECT_ERROR(BASE DB "  target_session_attrs: read_write\n", "5:25",
                 "database.target_session_attrs must be one of any, read-write, read-only, primary, standby, "
                 "prefer-standby, found 'read_write'");
    EXPECT_ERROR(BASE MYDB "  target_session_attrs: primary\n", "7:25",
                 "database.target_session_attrs is libpq's (driver postgresql)");
    /* LISTEN runs on the primary only */
    EXPECT_ERROR(BASE DB "  target_session_attrs: prefer-standby\ncache:\n  invalidate_channel: portcullis\n",
                 "5:25", "database.target_session_attrs prefer-standby may put connections on a standby, where "
                         "cache.invalidate_channel cannot LISTEN");
    EXPECT_ERROR(BASE "cache:\n  invalidate_channel: portcullis\n" DB "  target_session_attrs: standby\n", "7:25",
                 "database.target_session_attrs standby may put connections on a standby");
    c = EXPECT_OK(BASE DB "  target_session_attrs: read-write\ncache:\n  invalidate_channel: portcullis\n");
    cfg_unref(c);
    c = EXPECT_OK(BASE DB "  target_session_attrs: prefer-standby\ncache:\n  invalidate_query: SELECT 1\n");
    cfg_unref(c);
}

/* target_session_attrs given in the url (either form) or in libpq's
 * environment puts connections on a standby as surely as the key does:
 * LISTEN is refused there, and a NOTIFY beats the standby's replay. */
static void test_a_standby_reading_url_or_environment_keeps_listen_off_too(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE "database:\n  url: \"host=a,b dbname=app target_session_attrs=prefer-standby\"\n"
                      "cache:\n  invalidate_channel: portcullis\n",
                 "4:8", "database.url's target_session_attrs prefer-standby may put connections on a standby");
    EXPECT_ERROR(BASE "database:\n  url: \"postgresql://a,b/app?target_session_attrs=standby\"\n"
                      "cache:\n  invalidate_channel: portcullis\n",
                 "4:8", "database.url's target_session_attrs standby may put connections on a standby");
    /* the key overrides the url's (it is passed after it) */
    struct pc_config *c = EXPECT_OK(BASE "database:\n  url: \"postgresql://a,b/app?target_session_attrs=read-only\"\n"
                                         "  target_session_attrs: read-write\ncache:\n  invalidate_channel: portcullis\n");
    cfg_unref(c);
    c = EXPECT_OK(BASE "database:\n  url: \"postgresql://a,b/app?target_session_attrs=read-write\"\n"
                       "cache:\n  invalidate_channel: portcullis\n");
    cfg_unref(c);
    /* libpq's PGTARGETSESSIONATTRS applies when neither sets it */
    setenv("PGTARGETSESSIONATTRS", "read-only", 1);
    EXPECT_ERROR(BASE DB "cache:\n  invalidate_channel: portcullis\n", "4:3",
                 "PGTARGETSESSIONATTRS read-only may put connections on a standby");
    c = EXPECT_OK(BASE DB "  target_session_attrs: primary\ncache:\n  invalidate_channel: portcullis\n");
    cfg_unref(c);
    unsetenv("PGTARGETSESSIONATTRS");
    /* none of the three: libpq's any */
    c = EXPECT_OK(BASE DB "cache:\n  invalidate_channel: portcullis\n");
    cfg_unref(c);
}

static void test_a_policy_gives_sql_per_dialect_and_runs_the_drivers(void **state)
{
    (void)state;
    static const char policies[] =
        "policies:\n"
        "  both: SELECT 1 FROM apps WHERE id = :app_id AND created_by = :subject AND :app_id <> ''\n"
        "  split:\n"
        "    sql:\n"
        "      postgresql: SELECT 1 FROM apps WHERE id = :app_id AND created_by::text = :subject\n"
        "      mysql: SELECT 1 FROM apps WHERE created_by = :subject AND id = :app_id AND :subject <> ''\n";
    char text[1024];
    snprintf(text, sizeof(text), BASE MYDB "%s", policies);
    struct pc_config *c = EXPECT_OK(text);
    const struct pol_set *ps = c->pol->set;
    /* MySQL: one ? per use, each mapped to the policy's parameter */
    assert_string_equal(ps->p[0].variants[0].sql,
                        "SELECT 1 FROM apps WHERE id = ? AND created_by = ? AND ? <> ''");
    assert_int_equal(ps->p[0].nparams, 2);
    assert_int_equal(ps->p[0].variants[0].nparams, 3);
    assert_int_equal(ps->p[0].variants[0].param[0], 0);
    assert_int_equal(ps->p[0].variants[0].param[1], 1);
    assert_int_equal(ps->p[0].variants[0].param[2], 0);
    const struct pol_policy *p = &ps->p[1];
    assert_string_equal(p->variants[0].sql, "SELECT 1 FROM apps WHERE created_by = ? AND id = ? AND ? <> ''");
    assert_string_equal(p->params[0], "subject");
    assert_string_equal(p->params[1], "app_id");
    assert_int_equal(p->variants[0].line, 12); /* the mysql text's position */
    assert_int_equal(p->variants[0].col, 14);
    assert_null(p->variants[0].text[0]);       /* the texts are not kept */
    cfg_unref(c);
    /* PostgreSQL: the same file runs its own text */
    snprintf(text, sizeof(text), BASE DB "%s", policies);
    c = EXPECT_OK(text);
    p = &c->pol->set->p[1];
    assert_string_equal(p->variants[0].sql, "SELECT 1 FROM apps WHERE id = $1 AND created_by::text = $2");
    assert_string_equal(p->params[0], "app_id");
    assert_int_equal(p->variants[0].line, 9);
    cfg_unref(c);
}

static void test_a_policy_without_sql_for_the_driver_is_an_error(void **state)
{
    (void)state;
    EXPECT_ERROR(BASE MYDB "policies:\n  p:\n    sql:\n      postgresql: SELECT 1\n", "10:7",
                 "policy 'p' has no SQL for driver mysql");
    EXPECT_ERROR(BASE DB "policies:\n  p:\n    variants:\n      - sql: {mysql: SELECT 1}\n", "8:14",
                 "policy 'p' has no SQL for driver postgresql");
    EXPECT_ERROR(BASE MYDB "policies:\n  p:\n    sql: {postgresql: SELECT 1, mysqll: SELECT 2}\n", "9:33",
                 "unknown key 'mysqll' in a policy's sql (did you mean 'mysql'?)");
    EXPECT_ERROR(BASE MYDB "policies:\n  p:\n    sql: {mysql: \"SELECT ?\"}\n", "9:18",
                 "policy 'p': write parameters as :name, not ?");
    /* the other dialect's text is not even read */
    struct pc_config *c = EXPECT_OK(BASE MYDB "policies:\n  p:\n    sql: {postgresql: \"SELECT $1\", mysql: SELECT 1}\n");
    cfg_unref(c);
}

static void test_cache_invalidate_query_and_poll(void **state)
{
    (void)state;
    struct pc_config *c = EXPECT_OK(BASE "cache:\n  invalidate_query: SELECT n FROM portcullis_changes\n"
                                         "  invalidate_poll: 250ms\n");
    assert_string_equal(c->pol->cache.invalidate_query, "SELECT n FROM portcullis_changes");
    assert_int_equal(c->pol->cache.invalidate_poll, 250);
    assert_int_equal(c->pol->cache.invalidate_line, 4);
    assert_int_equal(c->pol->cache.invalidate_col, 21);
    cfg_unref(c);
    /* "${VAR:-}" turns it off */
    c = EXPECT_OK(BASE "cache:\n  invalidate_query: \"${EMPTY}\"\n");
    assert_null(c->pol->cache.invalidate_query);
    assert_int_equal(c->pol->cache.invalidate_poll, 1000);
    cfg_unref(c);
    EXPECT_ERROR(BASE "cache:\n  invalidate_poll: 10ms\n", "4:20", "");
}


int main(void)
{
    pc_hash_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_syntax_error_names_file_line_col),
        cmocka_unit_test(test_invalid_utf8_and_control_characters_are_located),
        cmocka_unit_test(test_empty_document_is_an_error),
        cmocka_unit_test(test_non_mapping_root_is_an_error),
        cmocka_unit_test(test_unknown_top_level_key_suggests_the_closest_name),
        cmocka_unit_test(test_unknown_key_inside_each_section_is_named_with_its_position),
        cmocka_unit_test(test_every_error_is_reported_not_just_the_first),
        cmocka_unit_test(test_duplicate_keys_are_refused_at_top_level_and_nested),
        cmocka_unit_test(test_yaml_anchors_are_refused),
        cmocka_unit_test(test_yaml_aliases_are_refused),
        cmocka_unit_test(test_yaml_tags_are_refused),
        cmocka_unit_test(test_multiple_yaml_documents_are_refused),
        cmocka_unit_test(test_nul_in_a_yaml_scalar_is_refused),
        cmocka_unit_test(test_non_scalar_mapping_keys_are_refused),
        cmocka_unit_test(test_invalid_durations_are_refused_with_the_value),
        cmocka_unit_test(test_valid_durations_are_converted_to_milliseconds),
        cmocka_unit_test(test_invalid_sizes_are_refused_with_the_value),
        cmocka_unit_test(test_valid_sizes_are_converted_to_bytes),
        cmocka_unit_test(test_listen_accepts_host_port_and_bracketed_ipv6),
        cmocka_unit_test(test_listen_refuses_bad_ports_and_names),
        cmocka_unit_test(test_upstream_must_be_plain_http_host_and_port),
        cmocka_unit_test(test_an_upstream_name_that_does_not_resolve_is_a_warning),
        cmocka_unit_test(test_listen_and_upstream_are_required),
        cmocka_unit_test(test_workers_must_be_between_1_and_256),
        cmocka_unit_test(test_log_format_and_level_are_validated),
        cmocka_unit_test(test_default_must_be_deny_or_forward),
        cmocka_unit_test(test_health_path_equal_to_ready_path_is_an_error),
        cmocka_unit_test(test_defaults_apply_when_keys_are_absent),
        cmocka_unit_test(test_admin_listen_is_optional_and_numeric),
        cmocka_unit_test(test_env_vars_expand_in_values),
        cmocka_unit_test(test_env_var_default_is_used_only_when_unset_or_empty),
        cmocka_unit_test(test_unset_env_var_without_default_is_an_error_naming_it),
        cmocka_unit_test(test_env_var_with_empty_default_expands_to_empty),
        cmocka_unit_test(test_double_dollar_brace_is_a_literal_dollar_brace),
        cmocka_unit_test(test_keys_are_not_env_expanded),
        cmocka_unit_test(test_yt_expand_directly),
        cmocka_unit_test(test_a_duplicate_key_with_a_line_break_is_quoted_on_one_line),
        cmocka_unit_test(test_error_messages_quoting_values_stay_on_one_line),
        cmocka_unit_test(test_policies_without_database_is_an_error),
        cmocka_unit_test(test_database_keys_are_kept_one_by_one),
        cmocka_unit_test(test_policy_sql_errors_name_the_policy_and_position),
        cmocka_unit_test(test_rule_with_allow_but_no_identity_section_is_an_error),
        cmocka_unit_test(test_cache_invalidate_channel_must_be_lowercase_identifier),
        cmocka_unit_test(test_identity_defaults),
        cmocka_unit_test(test_identity_empty_secret_without_file_or_keys_is_an_error),
        cmocka_unit_test(test_identity_secret_file_is_read_without_trailing_newline),
        cmocka_unit_test(test_identity_secret_wins_over_secret_file_when_non_empty),
        cmocka_unit_test(test_identity_secret_file_used_when_secret_expands_empty),
        cmocka_unit_test(test_identity_unreadable_or_empty_secret_file_is_an_error),
        cmocka_unit_test(test_identity_unsupported_algorithms_are_errors),
        cmocka_unit_test(test_identity_sources_are_validated),
        cmocka_unit_test(test_identity_keys_with_duplicate_ids_are_an_error),
        cmocka_unit_test(test_identity_keys_after_a_key_without_id_do_not_crash),
        cmocka_unit_test(test_identity_keys_are_loaded_with_ids_and_secret_files),
        cmocka_unit_test(test_identity_scalar_options_are_parsed),
        cmocka_unit_test(test_config_from_a_file_path),
        cmocka_unit_test(test_a_policy_with_requires_and_variants_is_parsed),
        cmocka_unit_test(test_malformed_policy_requirements_name_file_line_col),
        cmocka_unit_test(test_the_schema_version_check_is_configured),
        cmocka_unit_test(test_a_fallback_rule_is_marked),
        cmocka_unit_test(test_identity_issuer_may_list_several_values),
        cmocka_unit_test(test_a_public_secret_is_refused_unless_explicitly_allowed),
        cmocka_unit_test(test_the_driver_and_its_synonyms_choose_the_dialect),
        cmocka_unit_test(test_mysql_database_keys_are_checked),
        cmocka_unit_test(test_target_session_attrs_is_libpqs_and_keeps_listen_on_a_primary),
        cmocka_unit_test(test_a_standby_reading_url_or_environment_keeps_listen_off_too),
        cmocka_unit_test(test_a_policy_gives_sql_per_dialect_and_runs_the_drivers),
        cmocka_unit_test(test_a_policy_without_sql_for_the_driver_is_an_error),
        cmocka_unit_test(test_cache_invalidate_query_and_poll),
    };
    return cmocka_run_group_tests_name("config", tests, setup_secret_files, teardown_secret_files);
}
