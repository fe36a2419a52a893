#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *log_procname = "order-processing";
static enum log_level log_level = LOG_LEVEL_INFO;
static int log_prefix_syslog;

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
	log_prefix_syslog = !isatty(STDERR_FILENO);
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
log_vwrite(enum log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	char line[1024];
	int saved_errno = errno;
	size_t len = 0;

	if (level > log_level)
		return;
	if (log_prefix_syslog)
		appendf(line, sizeof(line), &len, "<%d>",
		    log_levels[level].syslog_priority);
	appendf(line, sizeof(line), &len, "%s: %s: ", log_procname,
	    log_levels[level].name);
	append(line, sizeof(line), &len, fmt, ap);
	if (suffix != NULL)
		appendf(line, sizeof(line), &len, ": %s", suffix);
	/* Keep one event on one line, whatever the message held. */
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0) {
		/* Nowhere left to report it. */
	}
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

LOG_FUNC(log_error, LOG_LEVEL_ERROR)
LOG_FUNC(log_warn, LOG_LEVEL_WARN)
LOG_FUNC(log_info, LOG_LEVEL_INFO)
LOG_FUNC(log_debug, LOG_LEVEL_DEBUG)

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
