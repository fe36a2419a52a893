#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_procname = "order-processing";
static enum log_level log_level = LOG_LEVEL_INFO;
enum {
	PREFIX_NONE,		/* a terminal */
	PREFIX_SYSLOG,		/* journald or a pipe: "<6>" */
	PREFIX_TIME,		/* a log file: "2026-11-26T10:40:12.123Z " */
};
static int log_prefix;		/* stderr's */
static char log_path[4096];
static int log_fd = -1;		/* the log file, or -1 */
static bool log_tee = true;	/* also to stderr, until start-up is done */

static const struct {
	const char *name;
	int syslog_priority;
} log_levels[] = {
	[LOG_LEVEL_ERROR] = { "error", 3 },
	[LOG_LEVEL_WARN] = { "warn", 4 },
	[LOG_LEVEL_INFO] = { "info", 6 },
	[LOG_LEVEL_DEBUG] = { "debug", 7 },
};

void
log_init(const char *progname, enum log_level level)
{
	log_procname = progname;
	log_level = level;
	log_prefix = isatty(STDERR_FILENO) ? PREFIX_NONE : PREFIX_SYSLOG;
}

int
log_open_file(const char *path)
{
	if (strlen(path) >= sizeof(log_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(log_path, path);
	return log_reopen();
}

int
log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	if (!log_tee && dup2(log_fd, STDERR_FILENO) < 0)
		return -1;
	return 0;
}

void
log_started(void)
{
	log_tee = false;
	if (log_fd >= 0)
		dup2(log_fd, STDERR_FILENO);
}

void
log_procinit(const char *procname)
{
	log_procname = procname;
}

void
log_setlevel(enum log_level level)
{
	log_level = level;
}

enum log_level
log_getlevel(void)
{
	return log_level;
}

int
log_level_parse(const char *s, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcmp(s, log_levels[i].name) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return log_levels[level].name;
}

/* Append to line[*len], keeping room for the final newline. */
static void
append(char *line, size_t size, size_t *len, const char *fmt, va_list ap)
{
	int n = vsnprintf(line + *len, size - 1 - *len, fmt, ap);

	if (n > 0)
		*len += (size_t)n < size - 1 - *len ? (size_t)n
		    : size - 2 - *len;
}

static void __attribute__((format(printf, 4, 5)))
appendf(char *line, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append(line, size, len, fmt, ap);
	va_end(ap);
}

static void
write_line(int fd, int prefix, enum log_level level, const char *msg,
    size_t msg_len)
{
	char line[1200];
	size_t len = 0;

	if (prefix == PREFIX_SYSLOG) {
		appendf(line, sizeof(line), &len, "<%d>",
		    log_levels[level].syslog_priority);
	} else if (prefix == PREFIX_TIME) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		len += strftime(line + len, sizeof(line) - len,
		    "%Y-%m-%dT%H:%M:%S", &tm);
		appendf(line, sizeof(line), &len, ".%03dZ ",
		    (int)(ts.tv_nsec / 1000000));
	}
	appendf(line, sizeof(line), &len, "%s: %s: %.*s", log_procname,
	    log_levels[level].name, (int)msg_len, msg);
	line[len++] = '\n';
	if (write(fd, line, len) < 0) {
		/* Nowhere left to report it. */
	}
}

static void
log_vwrite(enum log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	char msg[1024];
	int saved_errno = errno;
	size_t len = 0;

	if (level > log_level)
		return;
	append(msg, sizeof(msg), &len, fmt, ap);
	if (suffix != NULL)
		appendf(msg, sizeof(msg), &len, ": %s", suffix);
	/*
	 * Keep one event on one line, and what a client sent (a path in an
	 * access line) from reaching a terminal as control characters.
	 */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = msg[i] == '\n' || msg[i] == '\r' ||
			    msg[i] == '\t' ? ' ' : '?';
	if (log_fd >= 0)
		write_line(log_fd, PREFIX_TIME, level, msg, len);
	if (log_fd < 0 || (log_tee && level <= LOG_LEVEL_WARN))
		write_line(STDERR_FILENO, log_prefix, level, msg, len);
	errno = saved_errno;
}

#define LOG_FUNC(fn, level)                                  \
	void fn(const char *fmt, ...)                        \
	{                                                    \
		va_list ap;                                  \
		va_start(ap, fmt);                           \
		log_vwrite(level, NULL, fmt, ap);            \
		va_end(ap);                                  \
	}

static void __attribute__((format(printf, 2, 3)))
log_line(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, NULL, fmt, ap);
	va_end(ap);
}

LOG_FUNC(log_error, LOG_LEVEL_ERROR)
LOG_FUNC(log_warn, LOG_LEVEL_WARN)
LOG_FUNC(log_info, LOG_LEVEL_INFO)
LOG_FUNC(log_debug, LOG_LEVEL_DEBUG)

static pthread_mutex_t log_limit_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_limited(struct log_limit *l, enum log_level level, int key,
    const char *fmt, ...)
{
	int64_t interval = l->interval_ms > 0 ? l->interval_ms : LOG_LIMIT_MS;
	unsigned long repeats = 0;
	int64_t now, since = 0;
	bool other = false;
	int saved_errno = errno;
	struct timespec ts;
	char msg[1024];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&log_limit_lock);
	if (l->used && l->key == key && now - l->since_ms < interval) {
		l->repeats++;
		pthread_mutex_unlock(&log_limit_lock);
		errno = saved_errno;
		return;
	}
	if (l->used) {
		repeats = l->repeats;
		since = l->since_ms;
		other = l->key != key;
	}
	l->used = true;
	l->key = key;
	l->since_ms = now;
	l->repeats = 0;
	pthread_mutex_unlock(&log_limit_lock);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (repeats == 0)
		log_line(level, "%s", msg);
	else if (other)
		log_line(level, "%s (the message before it repeated %lu "
		    "times more in the last %lld s)", msg, repeats,
		    (long long)((now - since + 500) / 1000));
	else
		log_line(level, "%s (repeated %lu times in the last %lld s)",
		    msg, repeats, (long long)((now - since + 500) / 1000));
	errno = saved_errno;
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *reason = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, reason, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
