/*
 * portcullis base: SipHash-2-4 keyed with a per-process random key (cache
 * buckets: keys are still compared byte for byte), and random bytes.
 */
#ifndef PC_HASH_H
#define PC_HASH_H

#include <stddef.h>
#include <stdint.h>

void pc_hash_init(void);
uint64_t pc_hash(const void *data, size_t len);

/* Fill with cryptographically random bytes; 0 on success. */
int pc_random(void *buf, size_t len);

#endif
