/*
 * portcullis base: allocation that never returns NULL (see mem.h).
 */
#include "mem.h"
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pc_oom(void)
{
    static const char msg[] = "portcullis: out of memory\n";
    fwrite(msg, 1, sizeof(msg) - 1, stderr);
    abort();
}

void *pc_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        pc_oom();
    return p;
}

void *pc_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL)
        pc_oom();
    return p;
}

void *pc_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        pc_oom();
    return q;
}

char *pc_strdup(const char *s)
{
    return pc_strndup(s, strlen(s));
}

char *pc_strndup(const char *s, size_t n)
{
    char *p = pc_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pc_sprintf(const char *fmt, ...)
{
    struct pc_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    pc_buf_cstr(&b);
    return b.p;
}
