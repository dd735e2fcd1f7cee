/*
 * portcullis: logs. Access lines (one per request) go to stdout, as JSON
 * or text; diagnostics go to stderr. Tokens, cookies, Authorization and
 * query strings are never logged.
 */
#ifndef PC_LOG_H
#define PC_LOG_H

#include "../rules/config.h"

struct pc_req;
struct pc_worker;

void pc_log_configure(enum pc_log_format fmt, enum pc_log_level level);
void pc_log(enum pc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append r's access line to its worker's buffer (once per request). */
void pc_log_access(struct pc_req *r);
/* Write out a worker's buffered access lines. */
void pc_log_flush(struct pc_worker *w);

/* Format an access line into b (exposed for explain and tests). */
void pc_log_format_access(struct pc_buf *b, const struct pc_req *r, enum pc_log_format fmt);

#endif
