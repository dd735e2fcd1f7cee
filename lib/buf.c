/*
 * portcullis base: a growable byte buffer (see buf.h).
 */
#include "buf.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable buffer ---- */

void pc_buf_reserve(struct pc_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = pc_realloc(b->p, cap);
    b->cap = cap;
}

void pc_buf_add(struct pc_buf *b, const void *data, size_t len)
{
    pc_buf_reserve(b, len);
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void pc_buf_adds(struct pc_buf *b, const char *s)
{
    pc_buf_add(b, s, strlen(s));
}

void pc_buf_addc(struct pc_buf *b, char c)
{
    pc_buf_add(b, &c, 1);
}

void pc_buf_vaddf(struct pc_buf *b, const char *fmt, va_list ap)
{
    /* format once into the spare room; again only if it did not fit */
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n >= room) {
        pc_buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
}

void pc_buf_addf(struct pc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vaddf(b, fmt, ap);
    va_end(ap);
}

void pc_buf_add_printable(struct pc_buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            pc_buf_adds(b, "\\n");
        else if (c == '\r')
            pc_buf_adds(b, "\\r");
        else if (c < 0x20 || c == 0x7f)
            pc_buf_addf(b, "\\x%02x", c);
        else
            pc_buf_addc(b, (char)c);
    }
}

void pc_buf_add_json_str(struct pc_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': pc_buf_add(b, "\\\"", 2); break;
        case '\\': pc_buf_add(b, "\\\\", 2); break;
        case '\n': pc_buf_add(b, "\\n", 2); break;
        case '\r': pc_buf_add(b, "\\r", 2); break;
        case '\t': pc_buf_add(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f || c >= 0x80) {
                /* Non-ASCII bytes are escaped one by one: logs stay valid
                 * JSON whatever the client sent. */
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                pc_buf_add(b, e, 6);
            } else {
                pc_buf_addc(b, (char)c);
            }
        }
    }
}

const char *pc_buf_cstr(struct pc_buf *b)
{
    pc_buf_reserve(b, 0);
    b->p[b->len] = '\0';
    return b->p;
}

void pc_buf_free(struct pc_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
