/*
 * config: the settings of both daemons (and order-ctl's few: -c, -D), from
 * the command line and the config file, driven by one option table
 * (config.c) that also writes --help, so the help always prints the real
 * defaults.
 *
 * Order of precedence: built-in defaults, then the config file (-c FILE,
 * or CONFIG_DEFAULT_FILE when it exists), then the command line. Paths
 * come out absolute, resolved against the working directory at start. Every
 * value is parsed strictly; the first bad one ends config_parse with one
 * line on stderr naming the program, the setting and what is wrong.
 * Not thread-safe; call from main before anything else.
 */
#ifndef OP_CONFIG_H
#define OP_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"

/* The installed config (meson's sysconfdir: /etc with --prefix=/usr). */
#ifndef OP_SYSCONFDIR
#define OP_SYSCONFDIR "/etc"
#endif
#define CONFIG_DEFAULT_FILE OP_SYSCONFDIR "/order-processing/order-processing.conf"

/* Exit statuses shared by both daemons. */
#define EXIT_USAGE 2		/* a bad option, value or config line */

enum config_program {
	CONFIG_API = 1,
	CONFIG_WORKER = 2,
	CONFIG_CTL = 4,		/* order-ctl: -c, -D, -h, -V, then a command */
};

struct config {
	enum config_program program;
	const char *progname;
	char config_file[PATH_MAX];
	char data_dir[PATH_MAX];
	char queue[256];
	uint64_t map_size;		/* bytes */
	unsigned instance;		/* which ids this instance owns */
	enum log_level log_level;
	bool check_config;
	bool daemon;			/* detach (fork, setsid) */
	char pidfile[PATH_MAX];		/* "": none */
	char log_file[PATH_MAX];	/* "": stderr */
	int argc;			/* what config_reload parses again */
	char **argv;
	char base_dir[PATH_MAX];	/* relative paths are relative to it */
	int first_arg;			/* order-ctl: argv index of the command */

	/* order-api */
	char listen_addr[64];		/* IPv4 address, dotted */
	unsigned listen_port;
	unsigned threads;
	bool access_log;		/* a line per request at info */
	char api_token_file[PATH_MAX];	/* "": no token needed */
	unsigned idempotency_hours;
	uint64_t max_body_size;		/* bytes */
	uint64_t max_header_size;	/* bytes */
	unsigned request_timeout_ms;
	unsigned commit_timeout_ms;	/* a create's wait for LMDB */
	uint64_t journal_size;		/* bytes, a multiple of 4096 */
	unsigned keepalive_timeout_ms;
	unsigned max_conns_per_address;	/* threads one client may hold */

	/* order-worker */
	unsigned workers;
	unsigned pickup_delay_ms;
	unsigned processing_ms;
	unsigned lease_ms;
};

enum config_result {
	CONFIG_OK,		/* run */
	CONFIG_EXIT,		/* --help or --version printed: exit 0 */
	CONFIG_ERROR,		/* error printed: exit EXIT_USAGE */
};

enum config_result config_parse(struct config *cfg,
    enum config_program program, int argc, char **argv);
/*
 * order-ctl's: its options (and the config file's data-dir) up to the
 * first argument that is not one, whose index goes to cfg->first_arg
 * (argc if none); --help prints commands_help (the command list) after
 * the options.
 */
enum config_result config_parse_ctl(struct config *cfg, int argc,
    char **argv, const char *commands_help);
/*
 * SIGHUP: read the config file and the command line again and apply what
 * can change while running (log-level, access-log); log a warning for each
 * other setting that changed, which needs a restart. On a bad config the
 * running settings stay. Logs through log.h.
 */
void config_reload(struct config *cfg);
/*
 * What each daemon's main does first: parse the settings, check the data
 * directory and whatever check() checks (NULL: nothing more; it prints
 * its error and returns -1), and answer --check-config. Returns true to
 * run on; false with *status the exit status (messages printed) to exit
 * at once.
 */
bool config_setup(struct config *cfg, enum config_program program,
    int argc, char **argv, int (*check)(const struct config *cfg),
    int *status);
/*
 * Create the data directory if missing and check that it can be written.
 * Prints the error and returns -1 when it cannot.
 */
int config_check_data_dir(const struct config *cfg);

#endif
