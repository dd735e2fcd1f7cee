/*
 * portcullis base: a growable byte buffer for building messages off the
 * hot path. The owner frees it with pc_buf_free.
 */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct pc_buf {
    char *p;
    size_t len, cap;
};
void pc_buf_reserve(struct pc_buf *b, size_t extra);
void pc_buf_add(struct pc_buf *b, const void *data, size_t len);
void pc_buf_adds(struct pc_buf *b, const char *s);
void pc_buf_addf(struct pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_buf_vaddf(struct pc_buf *b, const char *fmt, va_list ap);
void pc_buf_addc(struct pc_buf *b, char c);
/* Append s for a one-line message: LF and CR as \n and \r, other control
 * characters as \xNN. */
void pc_buf_add_printable(struct pc_buf *b, const char *s, size_t len);
/* Append s as the inside of a JSON string (no quotes). */
void pc_buf_add_json_str(struct pc_buf *b, const char *s, size_t len);
void pc_buf_free(struct pc_buf *b);
/* Ensure NUL termination without counting it. */
const char *pc_buf_cstr(struct pc_buf *b);

#endif
