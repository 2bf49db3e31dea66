/* clock.h — clocks: monotonic and wall time, sleeping, durations as text. */
#ifndef DUPSIM_CORE_CLOCK_H
#define DUPSIM_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* Monotonic clock in nanoseconds. */
uint64_t clock_now_ns(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds since the epoch. */
uint64_t clock_wall_ns(void);
/* Sleeps for ns nanoseconds, resuming after signals. */
void clock_sleep_ns(uint64_t ns);
/* Formats ns as "1.5s", "250ms", ... into buf (at least 32 bytes). */
const char *clock_fmt_duration(uint64_t ns, char *buf, size_t len);

#endif
