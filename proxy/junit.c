/*
 * portcullis: JUnit XML reports (see junit.h).
 */
#include "junit.h"
#include "../lib/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct junit_suite {
    char *name;
    int tests, failures;
    double seconds;
    struct pc_buf cases;        /* the <testcase> elements */
};

struct junit {
    char *name;
    struct junit_suite *suites;
    size_t n, cap;
};

/* s as XML 1.0 text or attribute value: markup characters as entities;
 * control characters, which XML 1.0 cannot carry even as references, as
 * \xNN (tab, LF and CR are kept). */
static void junit_escape(struct pc_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': pc_buf_adds(b, "&amp;"); break;
        case '<': pc_buf_adds(b, "&lt;"); break;
        case '>': pc_buf_adds(b, "&gt;"); break;
        case '"': pc_buf_adds(b, "&quot;"); break;
        case '\'': pc_buf_adds(b, "&apos;"); break;
        case '\t': case '\n': case '\r': pc_buf_addc(b, (char)c); break;
        default:
            if (c < 0x20 || c == 0x7f)
                pc_buf_addf(b, "\\x%02X", c);
            else
                pc_buf_addc(b, (char)c);
        }
    }
}

struct junit *junit_new(const char *name)
{
    struct junit *j = pc_calloc(1, sizeof(*j));
    j->name = pc_strdup(name);
    return j;
}

void junit_suite(struct junit *j, const char *name)
{
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 4;
        j->suites = pc_realloc(j->suites, j->cap * sizeof(*j->suites));
    }
    struct junit_suite *s = &j->suites[j->n++];
    memset(s, 0, sizeof(*s));
    s->name = pc_strdup(name);
}

void junit_case(struct junit *j, const char *name, double seconds, const char *failure, const char *details)
{
    if (j->n == 0)
        junit_suite(j, j->name);
    struct junit_suite *s = &j->suites[j->n - 1];
    s->tests++;
    s->seconds += seconds;
    pc_buf_adds(&s->cases, "    <testcase classname=\"");
    junit_escape(&s->cases, s->name);
    pc_buf_adds(&s->cases, "\" name=\"");
    junit_escape(&s->cases, name);
    pc_buf_addf(&s->cases, "\" time=\"%.6f\"", seconds);
    if (failure == NULL) {
        pc_buf_adds(&s->cases, "/>\n");
        return;
    }
    s->failures++;
    pc_buf_adds(&s->cases, ">\n      <failure message=\"");
    junit_escape(&s->cases, failure);
    pc_buf_adds(&s->cases, "\" type=\"decision\">");
    junit_escape(&s->cases, details ? details : failure);
    pc_buf_adds(&s->cases, "</failure>\n    </testcase>\n");
}

static void junit_render(const struct junit *j, struct pc_buf *b)
{
    int tests = 0, failures = 0;
    double seconds = 0;
    for (size_t i = 0; i < j->n; i++) {
        tests += j->suites[i].tests;
        failures += j->suites[i].failures;
        seconds += j->suites[i].seconds;
    }
    pc_buf_adds(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
    junit_escape(b, j->name);
    pc_buf_addf(b, "\" tests=\"%d\" failures=\"%d\" errors=\"0\" time=\"%.6f\">\n", tests, failures, seconds);
    for (size_t i = 0; i < j->n; i++) {
        const struct junit_suite *s = &j->suites[i];
        pc_buf_adds(b, "  <testsuite name=\"");
        junit_escape(b, s->name);
        pc_buf_addf(b, "\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"0\" time=\"%.6f\">\n", s->tests,
                    s->failures, s->seconds);
        pc_buf_add(b, s->cases.p, s->cases.len);
        pc_buf_adds(b, "  </testsuite>\n");
    }
    pc_buf_adds(b, "</testsuites>\n");
}

int junit_write(const struct junit *j, const char *path, char *err, size_t errlen)
{
    struct pc_buf b = {0};
    int rc = -1;
    junit_render(j, &b);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    size_t w = fwrite(b.p, 1, b.len, f);
    if (fclose(f) != 0 || w != b.len) {
        snprintf(err, errlen, "%s: write failed", path);
        goto out;
    }
    rc = 0;
out:
    pc_buf_free(&b);
    return rc;
}

void junit_free(struct junit *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n; i++) {
        free(j->suites[i].name);
        pc_buf_free(&j->suites[i].cases);
    }
    free(j->suites);
    free(j->name);
    free(j);
}
