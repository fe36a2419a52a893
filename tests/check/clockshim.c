/*
 * clockshim: an LD_PRELOAD library that steps a daemon's wall clock at run
 * time, as an NTP step or an operator's date(1) would, for the tests that
 * show a duration timed on the monotonic clock does not move with it.
 *
 * OP_CLOCK_FILE names a control file. While it does not exist, the clocks
 * are the kernel's. While it exists, it holds one offset in seconds: an
 * optional sign, digits, and up to nine decimals ("+1.500", "-0.25", "3").
 * The offset is added to what clock_gettime gives for CLOCK_REALTIME and
 * CLOCK_REALTIME_COARSE, and to time(), which glibc answers from the vDSO
 * without clock_gettime (civetweb calls it in order-api). The monotonic,
 * boot and CPU clocks are left alone. A malformed file counts as absent.
 * gettimeofday is not stepped: neither daemon nor a library of theirs calls
 * it.
 *
 * Each process reads the file at most once per 10 ms of monotonic time,
 * in whichever thread reads a wall clock first after that, and keeps the
 * offset in an atomic; a read between costs one more (coarse, vDSO)
 * clock read. So a step shows within about 10 ms, in every process started
 * with the library (a worker master's children too) once it next reads the
 * wall clock; a process asleep in poll() sees it when it wakes, as with a
 * real step. Write the file whole (a rename), so that no read sees half.
 *
 * What it cannot step: the kernel's own waits on CLOCK_REALTIME (a
 * pthread_cond_timedwait, sem_timedwait or mq_timedsend deadline, an
 * absolute timerfd) still end by the real clock, so a deadline that a
 * process computes from the stepped clock ends the offset later (or
 * earlier), where a real step would move both.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S	1000000000LL
#define REREAD_NS	(10 * 1000000LL)	/* read the file at most this often */
#define MAX_OFFSET_S	(100LL * 365 * 86400)

typedef int clock_fn(clockid_t, struct timespec *);

static _Atomic(clock_fn *) real_clock;
static _Atomic int64_t offset_ns;
/* Monotonic ns: no read of the file before. 0 at start: read at once. */
static _Atomic int64_t next_read_ns;

static clock_fn *
real_clock_gettime(void)
{
	clock_fn *f = atomic_load_explicit(&real_clock, memory_order_acquire);

	if (f == NULL) {
		/* Every thread that races here stores the same pointer. */
		f = (clock_fn *)dlsym(RTLD_NEXT, "clock_gettime");
		if (f == NULL)
			abort();
		atomic_store_explicit(&real_clock, f, memory_order_release);
	}
	return f;
}

/* Parse "[+-]D[.DDDDDDDDD]" seconds, then optional blanks, into *ns. */
static bool
parse_offset(const char *s, int64_t *ns)
{
	int64_t sec = 0, frac = 0, scale = NS_PER_S;
	bool neg = false, digits = false;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	for (; *s >= '0' && *s <= '9'; s++, digits = true) {
		sec = sec * 10 + (*s - '0');
		if (sec > MAX_OFFSET_S)
			return false;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, digits = true) {
			if (scale == 1)
				return false;
			scale /= 10;
			frac += (*s - '0') * scale;
		}
	}
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	if (*s != '\0' || !digits)
		return false;
	*ns = (sec * NS_PER_S + frac) * (neg ? -1 : 1);
	return true;
}

/* The offset the control file holds now: 0 if it is absent or malformed. */
static int64_t
read_offset(void)
{
	const char *path = getenv("OP_CLOCK_FILE");
	char buf[64];
	int64_t ns;
	ssize_t n;
	int fd;

	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return parse_offset(buf, &ns) ? ns : 0;
}

/* The offset, from the file if the last read is 10 ms old. */
static int64_t
current_offset(clock_fn *real)
{
	struct timespec ts;
	int saved = errno;

	if (real(CLOCK_MONOTONIC_COARSE, &ts) == 0) {
		int64_t now = (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
		int64_t due = atomic_load_explicit(&next_read_ns,
		    memory_order_relaxed);
		/* One thread wins the turn; the others keep the last offset. */
		if (now >= due && atomic_compare_exchange_strong(&next_read_ns,
		    &due, now + REREAD_NS))
			atomic_store(&offset_ns, read_offset());
	}
	errno = saved;
	return atomic_load(&offset_ns);
}

static void
shift(struct timespec *ts, int64_t ns)
{
	int64_t t = (int64_t)ts->tv_sec * NS_PER_S + ts->tv_nsec + ns;

	ts->tv_sec = (time_t)(t / NS_PER_S);
	ts->tv_nsec = (long)(t % NS_PER_S);
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += NS_PER_S;
	}
}

/* The clock id, stepped if it is a wall clock. */
static int
stepped(clockid_t id, struct timespec *ts)
{
	clock_fn *real = real_clock_gettime();
	int rc = real(id, ts);

	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		shift(ts, current_offset(real));
	return rc;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	return stepped(id, ts);
}

/* glibc's time() reads the coarse real-time clock, as this does. */
time_t
time(time_t *t)
{
	struct timespec ts;

	if (stepped(CLOCK_REALTIME_COARSE, &ts) != 0)
		return (time_t)-1;
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
