/*
 * timing: the clock and the sort the benchmark's small C programs share
 * (synccommit.c, storecommit.c, pagecost.c). Header only: bench/run.py
 * builds two of them (synccommit.c, pagecost.c) with cc alone, outside
 * meson.
 */
#ifndef OP_BENCH_TIMING_H
#define OP_BENCH_TIMING_H

#include <time.h>

/* The monotonic clock in milliseconds, with its fraction. */
static inline double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* qsort's comparison for doubles, ascending. */
static inline int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#endif
