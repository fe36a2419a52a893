/* config: the command line, the config file and the data directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

static char dir[256];
static struct config cfg;
static char errtext[4096];	/* what the last parse wrote to stderr */

static void
cleanup(void)
{
	test_rmtree(dir);
}

/* Run config_parse on NULL-terminated arguments, catching stderr. */
static enum config_result
parse_v(enum config_program program, va_list ap)
{
	static char *argv[64];
	char path[300];
	int argc = 0, saved, fd;
	enum config_result r;
	ssize_t n;

	argv[argc++] = program == CONFIG_API ? "order-api"
	    : program == CONFIG_WORKER ? "order-worker" : "order-ctl";
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		test_assert(++argc < 63);
	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	test_assert(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	test_assert(saved >= 0 && dup2(fd, 2) == 2);
	r = config_parse(&cfg, program, argc, argv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, errtext, sizeof(errtext) - 1, 0);
	errtext[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	if (errtext[0] != '\0')
		fprintf(stderr, "  (stderr: %s", errtext);
	return r;
}

static enum config_result
parse(enum config_program program, ...)
{
	enum config_result r;
	va_list ap;

	va_start(ap, program);
	r = parse_v(program, ap);
	va_end(ap);
	return r;
}

#define PARSE_OK(program, ...) do { \
	enum config_result r_ = parse(program, __VA_ARGS__, (char *)NULL); \
	test_assert_msg(r_ == CONFIG_OK, "result %d: %s", r_, errtext); \
	test_assert_msg(errtext[0] == '\0', "stderr: %s", errtext); \
} while (0)

/* A refused setting: CONFIG_ERROR and one line naming program and what. */
#define PARSE_ERR(program, what, ...) do { \
	enum config_result r_ = parse(program, __VA_ARGS__, (char *)NULL); \
	const char *prog_ = program == CONFIG_API ? "order-api: " \
	    : program == CONFIG_WORKER ? "order-worker: " : "order-ctl: "; \
	test_assert_msg(r_ == CONFIG_ERROR, "result %d for %s", r_, what); \
	test_assert_msg(strncmp(errtext, prog_, strlen(prog_)) == 0 && \
	    strstr(errtext, what) != NULL && strchr(errtext, '\n') == \
	    errtext + strlen(errtext) - 1, "stderr for %s: \"%s\"", what, \
	    errtext); \
} while (0)

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	test_assert(f != NULL);
	test_assert(fputs(text, f) >= 0);
	test_assert(fclose(f) == 0);
}

TEST(test_defaults)
{
	test_assert(access(CONFIG_DEFAULT_FILE, F_OK) != 0);
	PARSE_OK(CONFIG_API, NULL);
	test_assert(cfg.program == CONFIG_API);
	test_assert(strcmp(cfg.progname, "order-api") == 0);
	test_assert(strcmp(cfg.listen_addr, "127.0.0.1") == 0);
	test_assert(cfg.listen_port == 8000);
	test_assert(cfg.threads == 64);
	test_assert(cfg.commit_timeout_ms == 5000);
	test_assert(cfg.request_timeout_ms == 5000);
	test_assert(cfg.max_conns_per_address == 48);	/* 3/4 of threads */
	test_assert(strcmp(cfg.queue, "/order-processing") == 0);
	test_assert(strcmp(cfg.data_dir, "/var/lib/order-processing") == 0);
	test_assert(cfg.map_size == UINT64_C(4) << 30);
	test_assert(cfg.log_level == LOG_LEVEL_INFO);
	test_assert(!cfg.check_config && !cfg.daemon && !cfg.access_log);
	test_assert(cfg.pidfile[0] == '\0' && cfg.log_file[0] == '\0');
	test_assert(cfg.config_file[0] == '\0');

	PARSE_OK(CONFIG_WORKER, NULL);
	test_assert(cfg.program == CONFIG_WORKER);
	test_assert(strcmp(cfg.progname, "order-worker") == 0);
	test_assert(cfg.pickup_delay_ms == 2000);
	test_assert(cfg.processing_ms == 3000);
	test_assert(cfg.lease_ms == 30000);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	test_assert(cfg.workers == (cpus > 0 ? (unsigned)cpus : 1));
	test_assert(strcmp(cfg.queue, "/order-processing") == 0);
	test_assert(cfg.map_size == UINT64_C(4) << 30);
}

TEST(test_options)
{
	PARSE_OK(CONFIG_API, "-l", "9000");
	test_assert(strcmp(cfg.listen_addr, "127.0.0.1") == 0 &&
	    cfg.listen_port == 9000);
	PARSE_OK(CONFIG_API, "--listen", "0.0.0.0:80");
	test_assert(strcmp(cfg.listen_addr, "0.0.0.0") == 0 &&
	    cfg.listen_port == 80);
	PARSE_OK(CONFIG_API, "--listen=10.1.2.3:65535", "-t", "1");
	test_assert(strcmp(cfg.listen_addr, "10.1.2.3") == 0 &&
	    cfg.listen_port == 65535 && cfg.threads == 1);
	PARSE_OK(CONFIG_API, "-D", "/srv/x", "-q", "/q1", "--log-level",
	    "debug", "-n");
	test_assert(strcmp(cfg.data_dir, "/srv/x") == 0 &&
	    strcmp(cfg.queue, "/q1") == 0 &&
	    cfg.log_level == LOG_LEVEL_DEBUG && cfg.check_config);
	PARSE_OK(CONFIG_API, "--data-dir", "rel/dir", "--queue=/q2");
	/* Relative paths come out absolute, against the working directory. */
	char want[PATH_MAX + 16];

	test_assert(getcwd(want, PATH_MAX) != NULL);
	strcat(want, "/rel/dir");
	test_assert(strcmp(cfg.data_dir, want) == 0 &&
	    strcmp(cfg.queue, "/q2") == 0 && !cfg.check_config);
	/* The last of a repeated option wins. */
	PARSE_OK(CONFIG_API, "-t", "2", "-t", "3");
	test_assert(cfg.threads == 3);

	PARSE_OK(CONFIG_API, "--commit-timeout-ms", "100");
	test_assert(cfg.commit_timeout_ms == 100);
	PARSE_OK(CONFIG_API, "--commit-timeout-ms=3600000");
	test_assert(cfg.commit_timeout_ms == 3600000);

	PARSE_OK(CONFIG_API, "--map-size", "512M");
	test_assert(cfg.map_size == UINT64_C(512) << 20);
	PARSE_OK(CONFIG_API, "--map-size", "1048576");
	test_assert(cfg.map_size == UINT64_C(1) << 20);
	PARSE_OK(CONFIG_API, "--map-size", "1g");
	test_assert(cfg.map_size == UINT64_C(1) << 30);
	PARSE_OK(CONFIG_API, "--map-size", "16T");
	test_assert(cfg.map_size == UINT64_C(16) << 40);
	PARSE_OK(CONFIG_API, "--map-size", "1024K");
	test_assert(cfg.map_size == UINT64_C(1) << 20);

	PARSE_OK(CONFIG_WORKER, "-w", "3", "--pickup-delay-ms", "0",
	    "--processing-ms", "100", "--lease-ms", "101");
	test_assert(cfg.workers == 3 && cfg.pickup_delay_ms == 0 &&
	    cfg.processing_ms == 100 && cfg.lease_ms == 101);
	PARSE_OK(CONFIG_WORKER, "--workers=256");
	test_assert(cfg.workers == 256);

	test_assert(parse(CONFIG_API, "-h", (char *)NULL) == CONFIG_EXIT);
	test_assert(parse(CONFIG_WORKER, "--version", (char *)NULL) ==
	    CONFIG_EXIT);
}

TEST(test_bad_options)
{
	PARSE_ERR(CONFIG_WORKER, "workers", "--workers", "0");
	PARSE_ERR(CONFIG_WORKER, "workers", "-w", "257");
	PARSE_ERR(CONFIG_WORKER, "workers", "-w", "-1");
	PARSE_ERR(CONFIG_WORKER, "workers", "-w", "1x");
	PARSE_ERR(CONFIG_WORKER, "workers", "-w", "");
	PARSE_ERR(CONFIG_WORKER, "workers", "-w", "99999999999999999999999");
	PARSE_ERR(CONFIG_API, "listen", "--listen", "1.2.3.4:0");
	PARSE_ERR(CONFIG_API, "listen", "--listen", "::1:80");
	PARSE_ERR(CONFIG_API, "listen", "--listen", "[::1]:80");
	PARSE_ERR(CONFIG_API, "listen", "-l", "65536");
	PARSE_ERR(CONFIG_API, "listen", "-l", ":80");
	PARSE_ERR(CONFIG_API, "listen", "-l", "1.2.3.4:");
	PARSE_ERR(CONFIG_API, "listen", "-l", "localhost:80");
	PARSE_ERR(CONFIG_API, "listen", "-l", "1.2.3:80");
	PARSE_ERR(CONFIG_API, "listen", "-l", "80x");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "12Q");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "1GB");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "G");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "-1G");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "0");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "512K");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size", "17T");
	PARSE_ERR(CONFIG_API, "map-size", "--map-size",
	    "99999999999999999999T");
	PARSE_ERR(CONFIG_API, "log-level", "--log-level", "loud");
	PARSE_ERR(CONFIG_API, "log-level", "--log-level", "INFO");
	PARSE_ERR(CONFIG_API, "threads", "-t", "0");
	PARSE_ERR(CONFIG_API, "threads", "-t", "1025");
	PARSE_ERR(CONFIG_API, "commit-timeout-ms", "--commit-timeout-ms",
	    "99");
	PARSE_ERR(CONFIG_API, "commit-timeout-ms", "--commit-timeout-ms",
	    "3600001");
	PARSE_ERR(CONFIG_API, "commit-timeout-ms", "--commit-timeout-ms",
	    "5s");
	PARSE_ERR(CONFIG_WORKER, "--commit-timeout-ms",
	    "--commit-timeout-ms", "5000");
	PARSE_ERR(CONFIG_API, "queue", "-q", "no-slash");
	PARSE_ERR(CONFIG_API, "queue", "-q", "/a/b");
	PARSE_ERR(CONFIG_API, "queue", "-q", "/");
	PARSE_ERR(CONFIG_API, "data-dir", "-D", "");
	PARSE_ERR(CONFIG_WORKER, "lease-ms", "--lease-ms", "3000");
	PARSE_ERR(CONFIG_WORKER, "lease-ms", "--processing-ms", "40000");
	PARSE_ERR(CONFIG_WORKER, "lease-ms", "--lease-ms", "0");
	PARSE_ERR(CONFIG_WORKER, "pickup-delay-ms", "--pickup-delay-ms",
	    "86400001");
	/* Unknown options, options of the other daemon, stray arguments. */
	PARSE_ERR(CONFIG_API, "--bogus", "--bogus");
	PARSE_ERR(CONFIG_API, "-w", "-w", "2");
	PARSE_ERR(CONFIG_API, "--workers", "--workers", "2");
	PARSE_ERR(CONFIG_WORKER, "--listen", "--listen", "80");
	PARSE_ERR(CONFIG_WORKER, "-l", "-l", "80");
	PARSE_ERR(CONFIG_API, "--queue", "--queue");
	PARSE_ERR(CONFIG_API, "-t", "-t");
	PARSE_ERR(CONFIG_API, "extra", "extra");
	PARSE_ERR(CONFIG_API, "--help", "--help=1");
	/* A bad option after a good one still fails, with its name. */
	PARSE_ERR(CONFIG_API, "threads", "-l", "9000", "-t", "x");
}

TEST(test_getopt_reset)
{
	/* An error in the middle of grouped short options ("-Zn": Z is
	 * unknown, n is left unread), then a fresh parse: the leftover n of
	 * the old argv must not leak into it. */
	test_assert(parse(CONFIG_API, "-Zn", (char *)NULL) == CONFIG_ERROR);
	PARSE_OK(CONFIG_API, "-t", "5");
	test_assert_msg(!cfg.check_config, "-n of the previous argv applied");
	test_assert(cfg.threads == 5);
	/* The same after an error with the option's value still unread. */
	test_assert(parse(CONFIG_API, "-Zt7", (char *)NULL) == CONFIG_ERROR);
	PARSE_OK(CONFIG_API, "-q", "/x");
	test_assert_msg(cfg.threads == 64, "threads %u", cfg.threads);
}

TEST(test_grouped_unknown)
{
	/* An unknown short option grouped with others is named in the
	 * error, as a lone one is. */
	PARSE_ERR(CONFIG_API, "-Z", "-Z");
	PARSE_ERR(CONFIG_API, "Z", "-nZ");
	PARSE_ERR(CONFIG_API, "Z", "-Zn");
}

TEST(test_config_file)
{
	char path[300], bad[300];

	snprintf(path, sizeof(path), "%s/op.conf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	write_file(path,
	    "# order-processing.conf\n"
	    "\n"
	    "   \t\n"
	    "listen = 0.0.0.0:9090   # a comment after the value\n"
	    "threads=8\n"
	    "\tqueue\t=\t/from-file\t\n"
	    "map-size = 2G\n"
	    "# workers = 99\n"
	    "workers = 3\n"
	    "log-level = debug\n"
	    "data-dir = /tmp/from-file\n"
	    "processing-ms = 500\n"
	    "commit-timeout-ms = 2500\n"
	    "lease-ms = 600");	/* no newline at the end */
	PARSE_OK(CONFIG_API, "-c", path);
	test_assert(strcmp(cfg.config_file, path) == 0);
	test_assert(strcmp(cfg.listen_addr, "0.0.0.0") == 0 &&
	    cfg.listen_port == 9090);
	test_assert(cfg.threads == 8);
	test_assert(cfg.commit_timeout_ms == 2500);
	test_assert(strcmp(cfg.queue, "/from-file") == 0);
	test_assert(cfg.map_size == UINT64_C(2) << 30);
	test_assert(cfg.log_level == LOG_LEVEL_DEBUG);
	test_assert(strcmp(cfg.data_dir, "/tmp/from-file") == 0);
	/* The worker's keys are accepted by the API, and the reverse. */
	test_assert(cfg.workers == 3);
	PARSE_OK(CONFIG_WORKER, "--config", path);
	test_assert(cfg.workers == 3 && cfg.processing_ms == 500 &&
	    cfg.lease_ms == 600);
	test_assert(strcmp(cfg.queue, "/from-file") == 0);

	/* The command line wins, whether it comes before -c or after. */
	PARSE_OK(CONFIG_API, "-t", "16", "-c", path, "--listen",
	    "1.1.1.1:1", "-q", "/cmdline");
	test_assert(cfg.threads == 16 && cfg.listen_port == 1 &&
	    strcmp(cfg.listen_addr, "1.1.1.1") == 0 &&
	    strcmp(cfg.queue, "/cmdline") == 0);
	test_assert(cfg.map_size == UINT64_C(2) << 30);
	PARSE_OK(CONFIG_WORKER, "--lease-ms", "7000", "-c", path);
	test_assert(cfg.lease_ms == 7000 && cfg.processing_ms == 500);
	/* The check of lease against processing sees the final values. */
	PARSE_ERR(CONFIG_WORKER, "lease-ms", "-c", path, "--processing-ms",
	    "600");

	/* Bad files: one line on stderr naming the file and line. */
	write_file(bad, "threads = 4\nbogus = 1\n");
	PARSE_ERR(CONFIG_API, "bad.conf:2", "-c", bad);
	write_file(bad, "# fine\nlisten 80\n");
	PARSE_ERR(CONFIG_API, "bad.conf:2", "-c", bad);
	write_file(bad, "threads = zero\n");
	PARSE_ERR(CONFIG_API, "threads", "-c", bad);
	write_file(bad, "queue =\n");
	PARSE_ERR(CONFIG_API, "queue", "-c", bad);
	write_file(bad, "= 5\n");
	PARSE_ERR(CONFIG_API, "bad.conf:1", "-c", bad);
	write_file(bad, "config = /etc/other.conf\n");
	PARSE_ERR(CONFIG_API, "config", "-c", bad);
	write_file(bad, "check-config = 1\n");
	PARSE_ERR(CONFIG_API, "check-config", "-c", bad);
	write_file(bad, "Threads = 4\n");
	PARSE_ERR(CONFIG_API, "Threads", "-c", bad);
	write_file(bad, "--threads = 4\n");
	PARSE_ERR(CONFIG_API, "--threads", "-c", bad);
	write_file(bad, "workers = 0\n");
	PARSE_ERR(CONFIG_API, "workers", "-c", bad);
	write_file(bad, "lease-ms = 100\n");	/* under processing-ms */
	PARSE_ERR(CONFIG_WORKER, "lease-ms", "-c", bad);
	/* A line longer than the reader's buffer. */
	{
		static char longline[3000];

		memset(longline, ' ', sizeof(longline) - 2);
		memcpy(longline, "data-dir = /x", 13);
		longline[sizeof(longline) - 2] = '\n';
		write_file(bad, longline);
		PARSE_ERR(CONFIG_API, "bad.conf:1", "-c", bad);
	}
	/* A missing file; a directory. */
	PARSE_ERR(CONFIG_API, "no-such.conf", "-c", "/nonexistent/no-such.conf");
	PARSE_ERR(CONFIG_API, dir, "-c", dir);
	PARSE_ERR(CONFIG_API, "config", "-c", "");
	test_assert(unlink(path) == 0 && unlink(bad) == 0);
}

TEST(test_data_dir)
{
	char path[300], file[300];
	struct stat st;

	PARSE_OK(CONFIG_API, NULL);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/a/b/c", dir);
	test_assert(config_check_data_dir(&cfg) == 0);
	test_assert(stat(cfg.data_dir, &st) == 0 && S_ISDIR(st.st_mode));
	/* Again, now that it exists; with a trailing slash. */
	test_assert(config_check_data_dir(&cfg) == 0);
	strcat(cfg.data_dir, "/");
	test_assert(config_check_data_dir(&cfg) == 0);
	/* Only the directories are left behind, no probe file. */
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	test_assert(rmdir(path) == 0);

	/* Under a regular file: refused, with the reason. */
	snprintf(file, sizeof(file), "%s/plain", dir);
	write_file(file, "x");
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/plain/sub", dir);
	fprintf(stderr, "  (an error line follows:)\n");
	test_assert(config_check_data_dir(&cfg) == -1);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/plain", dir);
	test_assert(config_check_data_dir(&cfg) == -1);
	test_assert(unlink(file) == 0);
	/* Not writable: a read-only directory (root may write anyway). */
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/ro", dir);
	test_assert(mkdir(cfg.data_dir, 0500) == 0);
	if (geteuid() != 0)
		test_assert(config_check_data_dir(&cfg) == -1);
	test_assert(chmod(cfg.data_dir, 0700) == 0);
}

/*
 * order-ctl's options: -c and -D (the config file's data-dir too), -h,
 * -V, up to its command, whose index is first_arg; the daemons' other
 * options are not its own.
 */
TEST(test_ctl)
{
	char path[300], want[300];

	PARSE_OK(CONFIG_CTL, "-c", "/dev/null", "-D", "/srv/d", "status",
	    "--json");
	test_assert(cfg.first_arg == 5 && strcmp(cfg.data_dir, "/srv/d") == 0);
	PARSE_OK(CONFIG_CTL, "-c", "/dev/null", "list", "--status", "-D");
	test_assert(cfg.first_arg == 3 &&
	    strcmp(cfg.data_dir, "/var/lib/order-processing") == 0);
	PARSE_OK(CONFIG_CTL, "-c", "/dev/null");
	test_assert(cfg.first_arg == 3);
	snprintf(path, sizeof(path), "%s/ctl.conf", dir);
	write_file(path, "data-dir = data\nqueue = /q\nthreads = 8\n");
	PARSE_OK(CONFIG_CTL, "--config", path, "show", "ORD1");
	test_assert(cfg.first_arg == 3);
	test_assert(getcwd(want, sizeof(want) - 8) != NULL);
	strcat(want, "/data");
	test_assert_msg(strcmp(cfg.data_dir, want) == 0, "data_dir %s",
	    cfg.data_dir);
	PARSE_OK(CONFIG_CTL, "--config", path, "--data-dir", "/x", "show");
	test_assert(strcmp(cfg.data_dir, "/x") == 0);
	PARSE_ERR(CONFIG_CTL, "unknown option '-n'", "-c", "/dev/null", "-n",
	    "status");
	PARSE_ERR(CONFIG_CTL, "unknown option '--queue'", "-c", "/dev/null",
	    "--queue", "/x", "status");
	PARSE_ERR(CONFIG_CTL, "missing value for option '-D'", "-c",
	    "/dev/null", "-D");
	/* The daemons take no command. */
	PARSE_ERR(CONFIG_API, "unexpected argument 'status'", "-c",
	    "/dev/null", "status");
}

int
main(void)
{
	test_mkdtemp(dir);
	test_cleanup = cleanup;
	RUN(test_defaults);
	RUN(test_options);
	RUN(test_bad_options);
	RUN(test_config_file);
	RUN(test_data_dir);
	RUN(test_getopt_reset);
	RUN(test_grouped_unknown);
	RUN(test_ctl);
	test_assert(test_rmtree(dir) == 0);
	return 0;
}
