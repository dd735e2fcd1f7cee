/*
 * portcullis base: diagnostics (see log.h).
 */
#include "log.h"
#include "base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int pc_log_fmt = PC_LOG_JSON;
static int pc_log_level = PC_LOG_INFO;

static const char *const pc_level_names[] = {"debug", "info", "warn", "error"};

void pc_log_configure(enum pc_log_format fmt, enum pc_log_level level)
{
    __atomic_store_n(&pc_log_fmt, (int)fmt, __ATOMIC_RELAXED);
    __atomic_store_n(&pc_log_level, (int)level, __ATOMIC_RELAXED);
}

void pc_log_timestamp(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void pc_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                usleep(1000);
                continue;
            }
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

enum pc_log_format pc_log_format_now(void)
{
    return (enum pc_log_format)__atomic_load_n(&pc_log_fmt, __ATOMIC_RELAXED);
}

void pc_log(enum pc_log_level level, const char *fmt, ...)
{
    if ((int)level < __atomic_load_n(&pc_log_level, __ATOMIC_RELAXED))
        return;
    char ts[40], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pc_log_timestamp(ts, sizeof(ts));
    struct pc_buf b = {0};
    if (__atomic_load_n(&pc_log_fmt, __ATOMIC_RELAXED) == PC_LOG_JSON) {
        pc_buf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, pc_level_names[level]);
        pc_buf_add_json_str(&b, msg, strlen(msg));
        pc_buf_adds(&b, "\"}\n");
    } else {
        pc_buf_addf(&b, "%s %s %s\n", ts, pc_level_names[level], msg);
    }
    pc_write_all(2, b.p, b.len);
    pc_buf_free(&b);
}
