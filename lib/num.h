/*
 * portcullis base: numbers, durations and sizes as config files write them.
 */
#ifndef PC_NUM_H
#define PC_NUM_H

#include <stddef.h>
#include <stdint.h>

/* "500ms", "10s", "5m", "1h", "2d" -> milliseconds. 0 on success. */
int pc_parse_duration(const char *s, int64_t *ms);
/* "32KiB", "100MiB", "1GiB", "512" -> bytes. 0 on success. */
int pc_parse_size(const char *s, uint64_t *bytes);
/* Whole decimal number, no sign, no spaces. 0 on success. */
int pc_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
