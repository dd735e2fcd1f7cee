/*
 * portcullis: shared helpers.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/random.h>

int64_t pc_now_ms(void)
{
    /* millisecond deadlines: the coarse clock (a few ms of resolution) is
     * enough and costs no TSC read */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double pc_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static inline unsigned char pc_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int pc_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (pc_lower((unsigned char)a[i]) != pc_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const unsigned char pc_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

int pc_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pc_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Split "123unit" into number and unit; the number is a whole decimal. */
static int pc_split_num(const char *s, uint64_t *num, const char **unit)
{
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0)
        return -1;
    if (pc_parse_u64(s, i, num) != 0)
        return -1;
    *unit = s + i;
    return 0;
}

int pc_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t n;
    const char *unit;
    if (pc_split_num(s, &n, &unit) != 0)
        return -1;
    for (size_t i = 0; i < PC_ARRAY_LEN(units); i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            if (n > (uint64_t)INT64_MAX / units[i].mult)
                return -1;
            *ms = (int64_t)(n * units[i].mult);
            return 0;
        }
    }
    return -1;
}

int pc_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024},
        {"GiB", 1024ull * 1024 * 1024}, {"KB", 1000}, {"MB", 1000 * 1000},
        {"GB", 1000ull * 1000 * 1000},
    };
    uint64_t n;
    const char *unit;
    if (pc_split_num(s, &n, &unit) != 0)
        return -1;
    for (size_t i = 0; i < PC_ARRAY_LEN(units); i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            if (n > UINT64_MAX / units[i].mult)
                return -1;
            *bytes = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/* ---- SipHash-2-4 (Aumasson & Bernstein), written from the paper ---- */

static uint64_t pc_hash_k0, pc_hash_k1;

int pc_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void pc_hash_init(void)
{
    uint64_t k[2];
    if (pc_random(k, sizeof(k)) != 0) {
        fprintf(stderr, "portcullis: getrandom failed\n");
        abort();
    }
    pc_hash_k0 = k[0];
    pc_hash_k1 = k[1];
}

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                             \
    do {                                                                     \
        v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32);        \
        v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32);        \
    } while (0)

uint64_t pc_hash(const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ pc_hash_k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ pc_hash_k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ pc_hash_k0;
    uint64_t v3 = 0x7465646279746573ULL ^ pc_hash_k1;
    uint64_t b = ((uint64_t)len) << 56;
    size_t full = len & ~(size_t)7;

    for (size_t i = 0; i < full; i += 8) {
        uint64_t m;
        memcpy(&m, in + i, 8); /* little-endian hosts only (x86-64, arm64) */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    switch (len & 7) {
    case 7: b |= ((uint64_t)in[full + 6]) << 48; /* fall through */
    case 6: b |= ((uint64_t)in[full + 5]) << 40; /* fall through */
    case 5: b |= ((uint64_t)in[full + 4]) << 32; /* fall through */
    case 4: b |= ((uint64_t)in[full + 3]) << 24; /* fall through */
    case 3: b |= ((uint64_t)in[full + 2]) << 16; /* fall through */
    case 2: b |= ((uint64_t)in[full + 1]) << 8;  /* fall through */
    case 1: b |= ((uint64_t)in[full + 0]); break;
    case 0: break;
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

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

size_t pc_one_line(char *s)
{
    size_t l = 0;
    for (; s[l] != '\0'; l++)
        if (s[l] == '\n' || s[l] == '\r' || s[l] == '\t')
            s[l] = ' ';
    while (l > 0 && s[l - 1] == ' ')
        s[--l] = '\0';
    return l;
}

void pc_buf_free(struct pc_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

size_t pc_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t pc_fmt_hex(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t pc_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 64;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = prev + cost;
            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}
