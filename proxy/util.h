/*
 * portcullis: small helpers shared by every module.
 *
 * Nothing in here allocates per request; all of it is either pure or
 * works on caller-owned memory.
 */
#ifndef PC_UTIL_H
#define PC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdarg.h>

#define PC_VERSION "0.1.0"

#define PC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PC_UNUSED(x) ((void)(x))
#define PC_LIKELY(x) __builtin_expect(!!(x), 1)
#define PC_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* A borrowed byte range. */
struct pc_str {
    const char *p;
    size_t len;
};

#define PC_STR_LIT(s) ((struct pc_str){(s), sizeof(s) - 1})

/* Monotonic milliseconds and wall-clock seconds. */
int64_t pc_now_ms(void);
int64_t pc_now_us(void);
double pc_wall_s(void);

/* Allocation that never returns NULL: abort on OOM, as in h2o. */
void *pc_malloc(size_t n);
void *pc_calloc(size_t n, size_t sz);
void *pc_realloc(void *p, size_t n);
char *pc_strdup(const char *s);
char *pc_strndup(const char *s, size_t n);
char *pc_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ASCII case-insensitive comparisons. */
int pc_caseeq(const char *a, size_t alen, const char *b, size_t blen);
static inline int pc_caseeq_lit(const char *a, size_t alen, const char *lit)
{
    return pc_caseeq(a, alen, lit, strlen(lit));
}
static inline int pc_memeq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* RFC 9110 tchar. */
extern const unsigned char pc_tchar[256];
static inline int pc_is_tchar(unsigned char c) { return pc_tchar[c]; }

int pc_hexval(unsigned char c); /* -1 if not hex */

/* "500ms", "10s", "5m", "1h", "2d" -> milliseconds. 0 on success. */
int pc_parse_duration(const char *s, int64_t *ms);
/* "32KiB", "100MiB", "1GiB", "512" -> bytes. 0 on success. */
int pc_parse_size(const char *s, uint64_t *bytes);
/* Whole decimal number, no sign, no spaces. 0 on success. */
int pc_parse_u64(const char *s, size_t len, uint64_t *out);

/* SipHash-2-4 keyed with a per-process random key. */
void pc_hash_init(void);
uint64_t pc_hash(const void *data, size_t len);

/* Fill with cryptographically random bytes; 0 on success. */
int pc_random(void *buf, size_t len);

/* A growable byte buffer for building messages off the hot path. */
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
/* Make s (NUL-terminated) one line in place: CR, LF and tab become spaces,
 * trailing spaces go. Returns the new length. For library messages (libpq
 * ends its own with a newline and may add DETAIL lines). */
size_t pc_one_line(char *s);

/* Decimal / lower-case hex digits of v into out (no NUL); returns the
 * length. out needs 20 bytes. For the hot path, where printf is slow. */
size_t pc_fmt_u64(char *out, uint64_t v);
size_t pc_fmt_hex(char *out, uint64_t v);

/* Levenshtein distance, bounded; used for "did you mean" in config errors. */
size_t pc_edit_distance(const char *a, const char *b);

#endif
