#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "order.h"
#include "queue.h"

#define WHY_LEN 160

struct option_def;
typedef int (*parse_fn)(struct config *cfg, const struct option_def *def,
    const char *value, char *why);

enum option_place {
	PLACE_ANY,		/* command line and config file */
	PLACE_CMDLINE,		/* command line only */
};

struct option_def {
	const char *name;
	int short_flag;		/* 0: long only */
	const char *arg;	/* NULL: takes no argument */
	unsigned programs;	/* CONFIG_API | CONFIG_WORKER */
	enum option_place place;
	parse_fn parse;
	size_t offset;		/* of the field in struct config */
	size_t size;		/* of that field, for strings */
	unsigned long min, max;	/* for numbers */
	const char *default_value;	/* NULL: none, or computed */
	const char *help;
};

static int parse_string(struct config *, const struct option_def *,
    const char *, char *);
static int parse_queue(struct config *, const struct option_def *,
    const char *, char *);
static int parse_size(struct config *, const struct option_def *,
    const char *, char *);
static int parse_level(struct config *, const struct option_def *,
    const char *, char *);
static int parse_listen(struct config *, const struct option_def *,
    const char *, char *);
static int parse_unsigned(struct config *, const struct option_def *,
    const char *, char *);
static int parse_bool(struct config *, const struct option_def *,
    const char *, char *);

#define BOTH (CONFIG_API | CONFIG_WORKER)
#define ALL (CONFIG_API | CONFIG_WORKER | CONFIG_CTL)
#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

/* Long-option values that have no short flag. */
enum {
	OPT_MAP_SIZE = 256,
	OPT_INSTANCE,
	OPT_LOG_LEVEL,
	OPT_PICKUP_DELAY,
	OPT_PROCESSING,
	OPT_LEASE,
	OPT_LOG_FILE,
	OPT_ACCESS_LOG,
	OPT_TOKEN_FILE,
	OPT_IDEM_HOURS,
	OPT_MAX_BODY,
	OPT_MAX_HEADER,
	OPT_REQUEST_TIMEOUT,
	OPT_COMMIT_TIMEOUT,
	OPT_KEEPALIVE_TIMEOUT,
	OPT_PER_ADDRESS,
	OPT_JOURNAL_SIZE,
};

static const struct option_def options[] = {
	{ "config", 'c', "FILE", ALL, PLACE_CMDLINE, parse_string,
	  FIELD(config_file), 0, 0, NULL,
	  "read this config file (default: " CONFIG_DEFAULT_FILE
	  " if it exists)" },
	{ "data-dir", 'D', "DIR", ALL, PLACE_ANY, parse_string,
	  FIELD(data_dir), 0, 0, "/var/lib/order-processing",
	  "the data directory: the LMDB environment and order-api's "
	  "journal (the daemons create it if missing)" },
	{ "queue", 'q', "NAME", BOTH, PLACE_ANY, parse_queue, FIELD(queue),
	  0, 0, "/order-processing", "POSIX message queue name" },
	{ "map-size", OPT_MAP_SIZE, "SIZE", BOTH, PLACE_ANY, parse_size,
	  FIELD(map_size), 1UL << 20, 1UL << 44, "4G",
	  "LMDB map size (K, M, G or T suffix): the most the data may grow to" },
	{ "instance", OPT_INSTANCE, "N", BOTH, PLACE_ANY, parse_unsigned,
	  FIELD(instance), 0, ORDER_INSTANCE_MAX, "0",
	  "this instance's number among several (0 to 899): instance N hands "
	  "out the ids from N * 10^13 + 1, so no two instances share an id "
	  "and an id's owner is its digits before the last 13; the data "
	  "directory keeps the number of the first instance that created "
	  "an order in it" },
	{ "log-level", OPT_LOG_LEVEL, "LEVEL", BOTH, PLACE_ANY, parse_level,
	  FIELD(log_level), 0, 0, "info", "error, warn, info or debug" },
	{ "daemon", 'd', NULL, BOTH, PLACE_ANY, parse_bool, FIELD(daemon),
	  0, 0, "no", "detach: fork, start a new session, write the pidfile" },
	{ "pidfile", 'p', "FILE", BOTH, PLACE_ANY, parse_string,
	  FIELD(pidfile), 0, 0, NULL,
	  "write the pid to FILE, locked; refuse to start while another "
	  "process holds it (default: none)" },
	{ "log-file", OPT_LOG_FILE, "FILE", BOTH, PLACE_ANY, parse_string,
	  FIELD(log_file), 0, 0, NULL,
	  "append log lines to FILE instead of stderr; SIGHUP reopens it "
	  "(default: stderr)" },
	{ "listen", 'l', "[ADDR:]PORT", CONFIG_API, PLACE_ANY, parse_listen,
	  0, 0, 0, 0, "127.0.0.1:8000",
	  "IPv4 address and port to serve HTTP on; a bare PORT means "
	  "127.0.0.1:PORT" },
	{ "threads", 't', "N", CONFIG_API, PLACE_ANY, parse_unsigned,
	  FIELD(threads), 1, 1024, "64",
	  "HTTP worker threads: the most connections served at once" },
	{ "access-log", OPT_ACCESS_LOG, NULL, CONFIG_API, PLACE_ANY,
	  parse_bool, FIELD(access_log), 0, 0, "no",
	  "log a line per request at info level" },
	{ "api-token-file", OPT_TOKEN_FILE, "FILE", CONFIG_API, PLACE_ANY,
	  parse_string, FIELD(api_token_file), 0, 0, NULL,
	  "require 'Authorization: Bearer TOKEN' on every /api/ and /orders/ "
	  "route, TOKEN a line of FILE (not readable by others) (default: "
	  "none, no token needed)" },
	{ "idempotency-hours", OPT_IDEM_HOURS, "N", CONFIG_API, PLACE_ANY,
	  parse_unsigned, FIELD(idempotency_hours), 24, 8760, "24",
	  "how long an Idempotency-Key is remembered" },
	{ "max-body-size", OPT_MAX_BODY, "SIZE", CONFIG_API, PLACE_ANY,
	  parse_size, FIELD(max_body_size), 1UL << 10, 1UL << 24, "64K",
	  "largest request body; a larger one is refused with 413 unread" },
	{ "max-header-size", OPT_MAX_HEADER, "SIZE", CONFIG_API, PLACE_ANY,
	  parse_size, FIELD(max_header_size), 1UL << 10, 1UL << 20, "16K",
	  "largest request line and headers together" },
	{ "request-timeout-ms", OPT_REQUEST_TIMEOUT, "MS", CONFIG_API,
	  PLACE_ANY, parse_unsigned, FIELD(request_timeout_ms), 100, 3600000,
	  "5000", "the most a request may take to arrive, headers and body; "
	  "a slower client is cut off" },
	{ "commit-timeout-ms", OPT_COMMIT_TIMEOUT, "MS", CONFIG_API,
	  PLACE_ANY, parse_unsigned, FIELD(commit_timeout_ms), 100, 3600000,
	  "5000", "the most accepted orders wait for their LMDB commit "
	  "before new creates are refused (503, nothing stored), and the "
	  "most a read of them or a cancel waits" },
	{ "journal-size", OPT_JOURNAL_SIZE, "SIZE", CONFIG_API, PLACE_ANY,
	  parse_size, FIELD(journal_size), 1UL << 16, 1UL << 36, "64M",
	  "size of the write-ahead journal in the data directory, which "
	  "holds new orders until they are in LMDB (a multiple of 4K)" },
	{ "keepalive-timeout-ms", OPT_KEEPALIVE_TIMEOUT, "MS", CONFIG_API,
	  PLACE_ANY, parse_unsigned, FIELD(keepalive_timeout_ms), 0, 3600000,
	  "5000", "how long an idle keep-alive connection keeps its thread "
	  "(above a load balancer's idle timeout when behind one)" },
	{ "max-connections-per-address", OPT_PER_ADDRESS, "N", CONFIG_API,
	  PLACE_ANY, parse_unsigned, FIELD(max_conns_per_address), 1, 1024,
	  NULL, "the most HTTP threads one client address may hold at once; "
	  "a connection over it is answered 503 and closed (default: three "
	  "quarters of the threads; behind a reverse proxy, all of them)" },
	{ "workers", 'w', "N", CONFIG_WORKER, PLACE_ANY, parse_unsigned,
	  FIELD(workers), 1, 256, NULL,
	  "worker processes to fork (default: the number of CPUs)" },
	{ "pickup-delay-ms", OPT_PICKUP_DELAY, "MS", CONFIG_WORKER, PLACE_ANY,
	  parse_unsigned, FIELD(pickup_delay_ms), 0, 86400000, "2000",
	  "time from an order's creation until it turns Processing" },
	{ "processing-ms", OPT_PROCESSING, "MS", CONFIG_WORKER, PLACE_ANY,
	  parse_unsigned, FIELD(processing_ms), 0, 86400000, "3000",
	  "simulated work while Processing" },
	{ "lease-ms", OPT_LEASE, "MS", CONFIG_WORKER, PLACE_ANY,
	  parse_unsigned, FIELD(lease_ms), 1, 86400000, "30000",
	  "how long a claim lasts before another worker may take the order "
	  "over; must exceed --processing-ms" },
	{ "check-config", 'n', NULL, BOTH, PLACE_CMDLINE, NULL,
	  0, 0, 0, 0, NULL,
	  "check the settings, print 'configuration OK' and exit" },
	{ "help", 'h', NULL, ALL, PLACE_CMDLINE, NULL, 0, 0, 0, 0, NULL,
	  "print this help and exit" },
	{ "version", 'V', NULL, ALL, PLACE_CMDLINE, NULL, 0, 0, 0, 0, NULL,
	  "print the version and exit" },
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static void *
field(struct config *cfg, const struct option_def *def)
{
	return (char *)cfg + def->offset;
}

static int
parse_string(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	/* A setting with no default may be set empty: none, as by default. */
	if (value[0] == '\0' && def->default_value != NULL) {
		snprintf(why, WHY_LEN, "must not be empty");
		return -1;
	}
	if (strlen(value) >= def->size) {
		snprintf(why, WHY_LEN, "is longer than %zu bytes",
		    def->size - 1);
		return -1;
	}
	strcpy(field(cfg, def), value);
	return 0;
}

static int
parse_queue(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	if (!queue_name_valid(value)) {
		snprintf(why, WHY_LEN, "must be '/' followed by 1-254 "
		    "characters without '/', such as /order-processing");
		return -1;
	}
	return parse_string(cfg, def, value, why);
}

/* Digits only, no sign, no space; *out within [min, max]. */
static int
parse_number(const char *s, const char **end, unsigned long long *out)
{
	unsigned long long v;
	char *e;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno != 0)
		return -1;
	*out = v;
	*end = e;
	return 0;
}

static int
parse_unsigned(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	unsigned long long v;
	const char *end;

	if (parse_number(value, &end, &v) != 0 || *end != '\0') {
		snprintf(why, WHY_LEN, "is not a whole number");
		return -1;
	}
	if (v < def->min || v > def->max) {
		snprintf(why, WHY_LEN, "must be from %lu to %lu", def->min,
		    def->max);
		return -1;
	}
	*(unsigned *)field(cfg, def) = (unsigned)v;
	return 0;
}

/* "yes"/"no" (also true/false, on/off, 1/0); a flag alone means yes. */
static int
parse_bool(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0 ||
		    strcasecmp(value, no[i]) == 0) {
			*(bool *)field(cfg, def) = strcasecmp(value, yes[i]) == 0;
			return 0;
		}
	}
	snprintf(why, WHY_LEN, "must be yes or no");
	return -1;
}

/* "1M", "16T", or bytes: the shortest exact form of a size. */
static const char *
size_text(unsigned long v, char buf[16])
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(buf, 16, "%lu%s", v, u >= 0 ? (char[2]){ units[u], 0 } : "");
	return buf;
}

static int
parse_size(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	unsigned long long v;
	const char *end;
	unsigned shift = 0;

	if (parse_number(value, &end, &v) != 0)
		goto bad;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		goto bad;
	}
	if (shift != 0 && *++end != '\0')
		goto bad;
	if (v > (def->max >> shift) || (v << shift) < def->min) {
		snprintf(why, WHY_LEN, "must be from %s to %s",
		    size_text(def->min, (char[16]){ 0 }),
		    size_text(def->max, (char[16]){ 0 }));
		return -1;
	}
	*(uint64_t *)field(cfg, def) = (uint64_t)v << shift;
	return 0;
bad:
	snprintf(why, WHY_LEN, "is not a size such as 512M or 4G");
	return -1;
}

static int
parse_level(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	if (log_level_parse(value, field(cfg, def)) != 0) {
		snprintf(why, WHY_LEN, "must be error, warn, info or debug");
		return -1;
	}
	return 0;
}

static int
parse_listen(struct config *cfg, const struct option_def *def,
    const char *value, char *why)
{
	const char *colon = strrchr(value, ':'), *port = value;
	char addr[sizeof(cfg->listen_addr)] = "127.0.0.1";
	struct in_addr in;
	unsigned long long v;
	const char *end;

	if (colon != NULL) {
		size_t len = (size_t)(colon - value);

		if (len == 0 || len >= sizeof(addr)) {
			snprintf(why, WHY_LEN, "has no valid address before "
			    "the ':'");
			return -1;
		}
		memcpy(addr, value, len);
		addr[len] = '\0';
		port = colon + 1;
	}
	if (inet_pton(AF_INET, addr, &in) != 1) {
		snprintf(why, WHY_LEN, "address '%s' is not an IPv4 address "
		    "such as 127.0.0.1", addr);
		return -1;
	}
	if (parse_number(port, &end, &v) != 0 || *end != '\0' || v < 1 ||
	    v > 65535) {
		snprintf(why, WHY_LEN, "port must be a number from 1 to "
		    "65535");
		return -1;
	}
	strcpy(cfg->listen_addr, addr);
	cfg->listen_port = (unsigned)v;
	return 0;
}

static bool
for_program(const struct option_def *def, enum config_program program)
{
	return (def->programs & program) != 0;
}

/* Print text from column indent, wrapped at word ends before width. */
static void
print_wrapped(FILE *out, const char *text, int indent, int width)
{
	int col = indent;

	while (*text != '\0') {
		int word = (int)strcspn(text, " ");

		if (col > indent && col + 1 + word > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fprintf(out, "%.*s", word, text);
		col += word;
		text += word;
		while (*text == ' ')
			text++;
	}
	fputc('\n', out);
}

static void
usage(const struct config *cfg, FILE *out, const char *commands_help)
{
	fprintf(out, "usage: %s [options]%s\n\n", cfg->progname,
	    cfg->program == CONFIG_CTL ? " COMMAND [ARGS]" : "");
	fprintf(out, "%s\n\noptions:\n", cfg->program == CONFIG_API
	    ? "Accept orders over HTTP, store them in LMDB and ring the "
	      "worker's queue."
	    : cfg->program == CONFIG_WORKER
	    ? "Fork worker processes that take orders from the queue and "
	      "LMDB and\nmove them Pending -> Processing -> Completed."
	    : "Look into and repair the orders' LMDB environment directly, "
	      "while the daemons\nrun or not.");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *def = &options[i];
		char flags[64];

		if (!for_program(def, cfg->program))
			continue;
		snprintf(flags, sizeof(flags), "%s%c%s--%s%s%s",
		    def->short_flag < 256 ? "-" : "    ",
		    def->short_flag < 256 ? def->short_flag : ' ',
		    def->short_flag < 256 ? ", " : "",
		    def->name, def->arg != NULL ? " " : "",
		    def->arg != NULL ? def->arg : "");
		/* Long-only flags: drop the stray space from the %c. */
		if (def->short_flag >= 256)
			memmove(flags + 4, flags + 5, strlen(flags + 5) + 1);
		char text[512];

		snprintf(text, sizeof(text), "%s%s%s%s", def->help,
		    def->default_value != NULL ? " (default: " : "",
		    def->default_value != NULL ? def->default_value : "",
		    def->default_value != NULL ? ")" : "");
		/* A flag too long for its column gets a line of its own. */
		if (strlen(flags) > 28)
			fprintf(out, "  %s\n%31s", flags, "");
		else
			fprintf(out, "  %-28s ", flags);
		print_wrapped(out, text, 31, 79);
	}
	if (cfg->program == CONFIG_CTL) {
		fprintf(out, "\n%s\nThe data directory may also be set in "
		    "the config file as 'data-dir = DIR';\nthe command line "
		    "wins. See %s(8).\n", commands_help != NULL ? commands_help
		    : "", cfg->progname);
		return;
	}
	fprintf(out, "\nEvery option but -c, -n, -h and -V may also be set in "
	    "the config file as\n'name = value' (the long name without the "
	    "dashes); the command line wins.\nSee %s(8) and "
	    "order-processing.conf(5).\n", cfg->progname);
}

static const struct option_def *
find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static int
apply(struct config *cfg, const struct option_def *def, const char *value,
    const char *where)
{
	char why[WHY_LEN];

	if (def->parse(cfg, def, value, why) != 0) {
		fprintf(stderr, "%s: %s%s%s '%s' %s\n", cfg->progname,
		    where != NULL ? where : "", where != NULL ? ": " : "--",
		    def->name, value, why);
		return -1;
	}
	return 0;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
read_config_file(struct config *cfg, const char *path)
{
	char line[1024], where[PATH_MAX + 32];
	unsigned lineno = 0;
	int rc = 0;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "%s: config file '%s': %s\n", cfg->progname,
		    path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		const struct option_def *def;
		char *key, *value, *eq, *hash;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "%s: %s: line longer than %zu bytes\n",
			    cfg->progname, where, sizeof(line) - 2);
			rc = -1;
			break;
		}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			fprintf(stderr, "%s: %s: '%s' is not 'name = value'\n",
			    cfg->progname, where, key);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		def = find_option(key);
		if (def == NULL || def->place != PLACE_ANY) {
			fprintf(stderr, "%s: %s: unknown setting '%s'\n",
			    cfg->progname, where, key);
			rc = -1;
			break;
		}
		/* Settings of the other daemon are checked, then unused. */
		rc = apply(cfg, def, value, where);
	}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "%s: config file '%s': read error\n",
		    cfg->progname, path);
		rc = -1;
	}
	fclose(f);
	return rc;
}

static void
set_defaults(struct config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *def = &options[i];
		char why[WHY_LEN];

		if (def->parse != NULL && def->default_value != NULL &&
		    def->parse(cfg, def, def->default_value, why) != 0)
			abort();	/* a default that does not parse */
	}
	cfg->workers = cpus > 0 ? (unsigned)cpus : 1;
}

/*
 * Make a relative path absolute against base, in place: a daemon moves to
 * "/" and SIGHUP parses the command line again, so every path is resolved
 * once against the directory the daemon was started in.
 */
static int
make_absolute(char *path, size_t size, const char *base, const char *name,
    const char *progname)
{
	char joined[PATH_MAX];

	if (path[0] == '\0' || path[0] == '/')
		return 0;
	while (path[0] == '.' && path[1] == '/')
		memmove(path, path + 2, strlen(path + 2) + 1);
	if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", base, path) >=
	    size) {
		fprintf(stderr, "%s: %s '%s': path too long\n", progname, name,
		    path);
		return -1;
	}
	strcpy(path, joined);
	return 0;
}

static enum config_result
parse_in(struct config *cfg, enum config_program program, int argc,
    char **argv, const char *base, const char *commands_help)
{
	struct option longopts[N_OPTIONS + 1];
	/* order-ctl's options end at its command ('+'). */
	char shortopts[3 * N_OPTIONS + 3];
	const struct option_def **given_def;
	const char **given_value;
	int n_given = 0, c, n_long = 0;
	enum config_result result = CONFIG_ERROR;
	bool have_config = false;

	memset(cfg, 0, sizeof(*cfg));
	cfg->program = program;
	cfg->progname = program == CONFIG_API ? "order-api"
	    : program == CONFIG_WORKER ? "order-worker" : "order-ctl";
	strcpy(shortopts, program == CONFIG_CTL ? "+:" : ":");
	cfg->argc = argc;
	cfg->argv = argv;
	if (base != NULL) {
		snprintf(cfg->base_dir, sizeof(cfg->base_dir), "%s", base);
	} else if (getcwd(cfg->base_dir, sizeof(cfg->base_dir)) == NULL) {
		fprintf(stderr, "%s: cannot find the working directory: %s\n",
		    cfg->progname, strerror(errno));
		return CONFIG_ERROR;
	}
	set_defaults(cfg);

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *def = &options[i];

		if (!for_program(def, program))
			continue;
		longopts[n_long++] = (struct option){ def->name,
			def->arg != NULL ? required_argument : no_argument,
			NULL, def->short_flag };
		if (def->short_flag < 256) {
			size_t len = strlen(shortopts);

			shortopts[len++] = (char)def->short_flag;
			if (def->arg != NULL)
				shortopts[len++] = ':';
			shortopts[len] = '\0';
		}
	}
	longopts[n_long] = (struct option){ 0 };

	given_def = calloc((size_t)argc + 1, sizeof(*given_def));
	given_value = calloc((size_t)argc + 1, sizeof(*given_value));
	if (given_def == NULL || given_value == NULL) {
		fprintf(stderr, "%s: out of memory\n", cfg->progname);
		goto out;
	}
	opterr = 0;
	optind = 0;	/* 0, not 1: glibc then forgets a half-read "-abc" */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const struct option_def *def = NULL;

		if (c == '?' || c == ':') {
			char flag[3] = { '-', (char)optopt, '\0' };
			/* An unknown short flag may sit inside "-abc". */
			const char *arg = c == '?' && optopt != 0 ? flag
			    : argv[optind - 1];

			fprintf(stderr, "%s: %s '%s' (see --help)\n",
			    cfg->progname, c == '?' ? "unknown option"
			    : "missing value for option", arg);
			goto out;
		}
		for (size_t i = 0; i < N_OPTIONS; i++)
			if (options[i].short_flag == c &&
			    for_program(&options[i], program))
				def = &options[i];
		switch (c) {
		case 'h':
			usage(cfg, stdout, commands_help);
			result = CONFIG_EXIT;
			goto out;
		case 'V':
			printf("%s %s\n", cfg->progname, OP_VERSION);
			result = CONFIG_EXIT;
			goto out;
		case 'n':
			cfg->check_config = true;
			break;
		case 'c':
			if (apply(cfg, def, optarg, NULL) != 0)
				goto out;
			have_config = true;
			break;
		default:
			given_def[n_given] = def;
			given_value[n_given++] = def->arg != NULL ? optarg
			    : "yes";
		}
	}
	cfg->first_arg = optind;
	if (optind < argc && program != CONFIG_CTL) {
		fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n",
		    cfg->progname, argv[optind]);
		goto out;
	}

	if (!have_config && access(CONFIG_DEFAULT_FILE, F_OK) == 0) {
		strcpy(cfg->config_file, CONFIG_DEFAULT_FILE);
		have_config = true;
	}
	if (make_absolute(cfg->config_file, sizeof(cfg->config_file),
	    cfg->base_dir, "config", cfg->progname) != 0)
		goto out;
	if (have_config && read_config_file(cfg, cfg->config_file) != 0)
		goto out;
	for (int i = 0; i < n_given; i++)
		if (apply(cfg, given_def[i], given_value[i], NULL) != 0)
			goto out;
	if (make_absolute(cfg->data_dir, sizeof(cfg->data_dir), cfg->base_dir,
	    "data-dir", cfg->progname) != 0 ||
	    make_absolute(cfg->pidfile, sizeof(cfg->pidfile), cfg->base_dir,
	    "pidfile", cfg->progname) != 0 ||
	    make_absolute(cfg->log_file, sizeof(cfg->log_file), cfg->base_dir,
	    "log-file", cfg->progname) != 0 ||
	    make_absolute(cfg->api_token_file, sizeof(cfg->api_token_file),
	    cfg->base_dir, "api-token-file", cfg->progname) != 0)
		goto out;

	if (cfg->max_conns_per_address == 0)
		cfg->max_conns_per_address = cfg->threads - cfg->threads / 4;
	if (program == CONFIG_WORKER && cfg->lease_ms <= cfg->processing_ms) {
		fprintf(stderr, "%s: lease-ms %u must exceed processing-ms %u, "
		    "or every order's lease would lapse while it is worked "
		    "on\n", cfg->progname, cfg->lease_ms, cfg->processing_ms);
		goto out;
	}
	result = CONFIG_OK;
out:
	free(given_def);
	free(given_value);
	return result;
}

/* mkdir -p, mode 0750 for what it creates. */
static int
make_dirs(const char *path)
{
	char buf[PATH_MAX];
	struct stat st;

	if (strlen(path) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return -1;
		if (stat(buf, &st) != 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

int
config_check_data_dir(const struct config *cfg)
{
	char probe[PATH_MAX];
	int fd;

	if (make_dirs(cfg->data_dir) != 0) {
		fprintf(stderr, "%s: data-dir '%s': cannot create: %s\n",
		    cfg->progname, cfg->data_dir, strerror(errno));
		return -1;
	}
	if (snprintf(probe, sizeof(probe), "%s/.write-test-XXXXXX",
	    cfg->data_dir) >= (int)sizeof(probe)) {
		fprintf(stderr, "%s: data-dir '%s': path too long\n",
		    cfg->progname, cfg->data_dir);
		return -1;
	}
	fd = mkstemp(probe);
	if (fd < 0) {
		fprintf(stderr, "%s: data-dir '%s': cannot write: %s\n",
		    cfg->progname, cfg->data_dir, strerror(errno));
		return -1;
	}
	close(fd);
	unlink(probe);
	return 0;
}

bool
config_setup(struct config *cfg, enum config_program program, int argc,
    char **argv, int (*check)(const struct config *cfg), int *status)
{
	switch (config_parse(cfg, program, argc, argv)) {
	case CONFIG_OK:
		break;
	case CONFIG_EXIT:
		*status = 0;
		return false;
	case CONFIG_ERROR:
		*status = EXIT_USAGE;
		return false;
	}
	if (config_check_data_dir(cfg) != 0 || (check != NULL &&
	    check(cfg) != 0)) {
		*status = EXIT_USAGE;
		return false;
	}
	if (cfg->check_config) {
		puts("configuration OK");
		*status = 0;
		return false;
	}
	return true;
}

enum config_result
config_parse(struct config *cfg, enum config_program program, int argc,
    char **argv)
{
	return parse_in(cfg, program, argc, argv, NULL, NULL);
}

enum config_result
config_parse_ctl(struct config *cfg, int argc, char **argv,
    const char *commands_help)
{
	return parse_in(cfg, CONFIG_CTL, argc, argv, NULL, commands_help);
}

void
config_reload(struct config *cfg)
{
	struct config fresh;

	if (parse_in(&fresh, cfg->program, cfg->argc, cfg->argv,
	    cfg->base_dir, NULL) != CONFIG_OK) {
		log_error("reload: the settings above are bad; the running "
		    "ones stay");
		return;
	}
	if (fresh.log_level != cfg->log_level) {
		log_info("reload: log-level %s", log_level_name(fresh.log_level));
		log_setlevel(fresh.log_level);
		cfg->log_level = fresh.log_level;
	}
	if (fresh.access_log != cfg->access_log) {
		log_info("reload: access-log %s", fresh.access_log ? "yes"
		    : "no");
		cfg->access_log = fresh.access_log;
	}
	/* The rest is read once at start. */
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *def = &options[i];

		if (def->parse == NULL || def->place != PLACE_ANY ||
		    !for_program(def, cfg->program) ||
		    def->offset == offsetof(struct config, log_level) ||
		    def->offset == offsetof(struct config, access_log))
			continue;
		const char *was = (const char *)cfg + def->offset;
		const char *now = (const char *)&fresh + def->offset;
		bool changed;

		if (def->parse == parse_listen)
			changed = strcmp(fresh.listen_addr, cfg->listen_addr) != 0 ||
			    fresh.listen_port != cfg->listen_port;
		else if (def->parse == parse_string || def->parse == parse_queue)
			changed = strcmp(now, was) != 0;
		else
			changed = memcmp(now, was, def->size) != 0;
		if (changed)
			log_warn("reload: %s changed; restart to apply it",
			    def->name);
	}
}
