/*
 * portcullis base: monotonic milliseconds and microseconds, and wall-clock
 * seconds (for token expiry).
 */
#ifndef PC_CLOCK_H
#define PC_CLOCK_H

#include <stdint.h>

int64_t pc_now_ms(void);
int64_t pc_now_us(void);
double pc_wall_s(void);

#endif
