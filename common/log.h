/*
 * log: one line per event on stderr, after OpenNTPD's log.c.
 *
 * Every line carries a syslog level prefix ("<3>" .. "<7>", which journald
 * turns into the entry's priority) when stderr is neither a terminal nor a
 * log file (a timestamp then), then the process name set by
 * log_init/log_procinit and the level word. The
 * functions keep errno intact. fatal/fatalx log at error level and exit(1).
 * Thread-safe: each line is formatted in a local buffer and written with
 * one write(2). Call log_init before anything else; after fork, the child
 * calls log_procinit to name itself.
 */
#ifndef OP_LOG_H
#define OP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_init(const char *progname, enum log_level level);
/*
 * Send every line to path (appended, created mode 0640, each line led by
 * a UTC timestamp). Until log_started, warnings and errors go to stderr
 * as well, so start-up errors reach whoever started the daemon; then the file takes
 * stderr's place, and what libraries print lands there too. Returns 0 or
 * -1 with errno set.
 */
int log_open_file(const char *path);
/* Start-up is over: from now on the log file alone (if there is one). */
void log_started(void);
/* Open the log file again (after logrotate moved it); 0 or -1, errno. */
int log_reopen(void);
void log_procinit(const char *procname);
void log_setlevel(enum log_level level);
enum log_level log_getlevel(void);
/* Returns 0 and sets *level for "error", "warn", "info", "debug"; else -1. */
int log_level_parse(const char *s, enum log_level *level);
const char *log_level_name(enum log_level level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A rate limit for one call site whose error can repeat many times a
 * second (a commit that keeps failing, a request per second that meets
 * the same broken store). The call site keeps one, zeroed (LOG_LIMIT_INIT),
 * and logs through log_limited with a key that says which error it is
 * (an error code): the first line of a key is written; the same key again
 * within LOG_LIMIT_MS is only counted; the first one after that is
 * written with " (repeated N times in the last S s)". Another key is
 * written at once, with the count of the key before it still held back,
 * and starts a new count. Thread-safe.
 */
#define LOG_LIMIT_MS 10000
struct log_limit {
	int key;
	bool used;		/* a line has been written */
	int64_t since_ms;	/* monotonic: when it was written */
	unsigned long repeats;	/* the same key since then, not written */
	int64_t interval_ms;	/* 0: LOG_LIMIT_MS */
};
#define LOG_LIMIT_INIT { 0 }
void log_limited(struct log_limit *l, enum log_level level, int key,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Log the message with ": strerror(errno)" appended, then exit(1). */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
/* Log the message, then exit(1). */
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
