/*
 * portcullis base: byte strings. Pure functions on caller-owned memory.
 */
#ifndef PC_STR_H
#define PC_STR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed byte range. */
struct pc_str {
    const char *p;
    size_t len;
};

#define PC_STR_LIT(s) ((struct pc_str){(s), sizeof(s) - 1})

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
