/*
 * portcullis base: allocation that never returns NULL. Out of memory is
 * fatal (abort), as in h2o: a proxy that limps on without memory is worse.
 */
#ifndef PC_MEM_H
#define PC_MEM_H

#include <stddef.h>

void *pc_malloc(size_t n);
void *pc_calloc(size_t n, size_t sz);
void *pc_realloc(void *p, size_t n);
char *pc_strdup(const char *s);
char *pc_strndup(const char *s, size_t n);
char *pc_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
