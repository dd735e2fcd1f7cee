/*
 * portcullis base: numbers, durations and sizes in config values (see num.h).
 */
#include "num.h"
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
