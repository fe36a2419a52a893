/*
 * clock: milliseconds, from the two clocks the daemons need. Realtime for
 * what is stored and shared between processes (created_at, leases,
 * heartbeats); monotonic for intervals inside one process (backoff,
 * refresh periods), which must not jump with the wall clock.
 */
#ifndef OP_CLOCK_H
#define OP_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch, UTC. */
int64_t clock_realtime_ms(void);
/* Milliseconds since an arbitrary fixed point. */
int64_t clock_monotonic_ms(void);
/* The same clock in microseconds, for timing requests. */
int64_t clock_monotonic_us(void);
/*
 * The monotonic clock as the kernel last ticked it (a few milliseconds
 * behind at most), read without touching the hardware: for a deadline
 * checked in a tight loop.
 */
int64_t clock_coarse_ms(void);

#endif
