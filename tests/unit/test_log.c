/* log: log_limited's rate limit, read back from a real log file. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "test.h"

static char dir[256], path[300];

/* The log file's lines that contain needle. */
static int
count_lines(const char *needle, char *last, size_t last_len)
{
	char line[1200];
	int n = 0;
	FILE *f = fopen(path, "r");

	test_assert_msg(f != NULL, "open %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, needle) == NULL)
			continue;
		n++;
		if (last != NULL)
			snprintf(last, last_len, "%s", line);
	}
	fclose(f);
	return n;
}

TEST(test_limited_counts_repeats)
{
	/* An interval no run of this test outlasts, until the end. */
	struct log_limit l = { .interval_ms = 3600 * 1000 };
	char last[1200];
	int64_t start;

	for (int i = 0; i < 1000; i++)
		log_limited(&l, LOG_LEVEL_ERROR, 5, "could not commit %d orders: "
		    "failure five", i + 1);
	test_assert(count_lines("failure five", last, sizeof(last)) == 1);
	test_assert(strstr(last, "could not commit 1 orders") != NULL);

	/*
	 * Another key is written at once, with the count of the one before
	 * that was held back, then counted in its turn.
	 */
	log_limited(&l, LOG_LEVEL_ERROR, 7, "failure seven");
	test_assert(count_lines("failure seven", last, sizeof(last)) == 1);
	test_assert_msg(strstr(last, "failure seven (the message before it "
	    "repeated 999 times more in the last 0 s)") != NULL, "%s", last);
	for (int i = 0; i < 10; i++)
		log_limited(&l, LOG_LEVEL_ERROR, 7, "failure seven");
	test_assert(count_lines("failure seven", NULL, 0) == 1);

	/* After the interval: one line, with the count of those held back. */
	l.interval_ms = 200;
	start = clock_monotonic_ms();
	while (clock_monotonic_ms() - start <= 200)
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	log_limited(&l, LOG_LEVEL_ERROR, 7, "failure seven");
	test_assert(count_lines("failure seven", last, sizeof(last)) == 2);
	test_assert_msg(strstr(last, "failure seven (repeated 10 times in the "
	    "last 0 s)") != NULL, "%s", last);
	log_limited(&l, LOG_LEVEL_ERROR, 7, "failure seven");
	test_assert(count_lines("failure seven", NULL, 0) == 2);
}

static void
cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	test_mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/log", dir);
	test_cleanup = cleanup;
	log_init("test_log", LOG_LEVEL_INFO);
	test_assert(log_open_file(path) == 0);
	RUN(test_limited_counts_repeats);
	cleanup();
	return 0;
}
