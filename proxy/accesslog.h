/*
 * portcullis: access logs. One line per request on stdout, as JSON or text
 * (diagnostics: lib/log.h). Tokens, cookies, Authorization and
 * query strings are never logged.
 */
#ifndef PC_ACCESSLOG_H
#define PC_ACCESSLOG_H

#include "../lib/log.h"
#include "config.h"

struct pc_req;
struct pc_worker;


/* Append r's access line to its worker's buffer (once per request). */
void pc_log_access(struct pc_req *r);
/* Write out a worker's buffered access lines. */
void pc_log_flush(struct pc_worker *w);

/* Format an access line into b (exposed for explain and tests). */
void pc_log_format_access(struct pc_buf *b, const struct pc_req *r, enum pc_log_format fmt);

#endif
