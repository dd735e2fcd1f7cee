/*
 * portcullis base: diagnostics on stderr, one line each, as JSON or text.
 * Callable from any thread. (Access lines are the proxy's: proxy/log.h.)
 */
#ifndef PC_LOG_H
#define PC_LOG_H

#include "buf.h"

enum pc_log_format { PC_LOG_JSON, PC_LOG_TEXT };
enum pc_log_level { PC_LOG_DEBUG, PC_LOG_INFO, PC_LOG_WARN, PC_LOG_ERROR };

void pc_log_configure(enum pc_log_format fmt, enum pc_log_level level);
enum pc_log_format pc_log_format_now(void);
void pc_log(enum pc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-12-03T08:36:22.123Z" into out (40 bytes are enough). */
void pc_log_timestamp(char *out, size_t len);
/* write(2) all of p, through EINTR and EAGAIN. */
void pc_write_all(int fd, const char *p, size_t len);

#endif
