#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "test.h"

#define SMALL (64 * 1024)
#define MAX_SEEN 4096

static char dir[256], path[300];

/* What a replay handed over. */
struct seen {
	size_t n;
	uint64_t lsn[MAX_SEEN];
	size_t len[MAX_SEEN];
	unsigned char first[MAX_SEEN];	/* each payload's first byte */
	bool bad;			/* a payload not as written */
};

static int
record(void *arg, uint64_t lsn, uint64_t end_lsn, const void *payload,
    size_t len)
{
	struct seen *s = arg;
	const unsigned char *p = payload;

	test_assert(s->n < MAX_SEEN);
	test_assert(end_lsn == lsn + JOURNAL_HEADER + ((len + 7) & ~(size_t)7));
	s->lsn[s->n] = lsn;
	s->len[s->n] = len;
	s->first[s->n] = len > 0 ? p[0] : 0;
	/* Payloads are one byte repeated (fill). */
	for (size_t i = 1; i < len; i++)
		if (p[i] != p[0])
			s->bad = true;
	s->n++;
	return 0;
}

static void
fill(unsigned char *buf, size_t len, unsigned char b)
{
	memset(buf, b, len);
}

static void
fresh(void)
{
	unlink(path);
}

TEST(test_crc32c)
{
	/* The check value of CRC-32C. */
	test_assert(journal_crc32c(0, "123456789", 9) == 0xe3069283u);
	test_assert(journal_crc32c(0, "", 0) == 0);
	/* In pieces, the same. */
	test_assert(journal_crc32c(journal_crc32c(0, "1234", 4), "56789", 5) ==
	    0xe3069283u);
}

/* Records come back in order, whole, with the lsns append gave. */
TEST(test_append_replay)
{
	static unsigned char buf[8192];
	struct seen s = { 0 };
	struct journal *j;
	uint64_t lsn[20], end;

	fresh();
	test_assert(journal_open(&j, path, SMALL * 4, 0, record, &s) == 0);
	test_assert(s.n == 0 && journal_end(j) == 0);
	for (int i = 0; i < 20; i++) {
		size_t len = (size_t)(i * 397) % sizeof(buf);

		fill(buf, len, (unsigned char)(i + 1));
		test_assert(journal_append(j, buf, len, &lsn[i], &end) == 0);
		test_assert(end == journal_end(j));
		test_assert(lsn[i] % 8 == 0 && (i == 0 || lsn[i] > lsn[i - 1]));
	}
	journal_close(j);
	test_assert(journal_open(&j, path, SMALL * 4, 0, record, &s) == 0);
	test_assert_msg(s.n == 20, "%zu records", s.n);
	test_assert(!s.bad);
	for (int i = 0; i < 20; i++) {
		test_assert(s.lsn[i] == lsn[i]);
		test_assert(s.len[i] == (size_t)(i * 397) % sizeof(buf));
		test_assert(s.len[i] == 0 || s.first[i] == i + 1);
	}
	test_assert(journal_end(j) == end);
	journal_close(j);
	/* From an applied lsn: only what follows. */
	memset(&s, 0, sizeof(s));
	test_assert(journal_open(&j, path, SMALL * 4, lsn[15], record, &s) ==
	    0 && s.n == 5 && s.lsn[0] == lsn[15]);
	journal_close(j);
}

/* Many laps: each reopen replays exactly what was not applied. */
TEST(test_laps)
{
	static unsigned char buf[12000];
	struct journal *j;
	uint64_t lsn, end, applied = 0, pending[64];
	size_t n_pending = 0;

	fresh();
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	for (int i = 0; i < 200; i++) {
		size_t len = 1000 + (size_t)(i * 1237) % 11000;
		int rc;

		fill(buf, len, (unsigned char)i);
		rc = journal_append(j, buf, len, &lsn, &end);
		if (rc == EAGAIN) {
			/* Apply all but the last record, then retry. */
			applied = pending[n_pending - 1];
			journal_applied(j, applied);
			pending[0] = pending[n_pending - 1];
			n_pending = 1;
			rc = journal_append(j, buf, len, &lsn, &end);
		}
		test_assert_msg(rc == 0, "append %d: %s", i, strerror(rc));
		test_assert(n_pending < 64);
		pending[n_pending++] = lsn;
		if (i % 37 == 36) {
			struct seen s = { 0 };

			journal_close(j);
			test_assert(journal_open(&j, path, SMALL, applied, record,
			    &s) == 0);
			test_assert_msg(s.n == n_pending, "record %d: replayed "
			    "%zu, expected %zu", i, s.n, n_pending);
			for (size_t k = 0; k < n_pending; k++)
				test_assert(s.lsn[k] == pending[k]);
			test_assert(!s.bad && journal_end(j) == end);
		}
	}
	test_assert(end > 10 * SMALL);	/* many laps */
	journal_close(j);
}

/* Room not applied is never written over. */
TEST(test_full)
{
	static unsigned char buf[10000];
	struct journal *j;
	uint64_t lsn, first = UINT64_MAX, end;
	int rc, n = 0;

	fresh();
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	fill(buf, sizeof(buf), 7);
	while ((rc = journal_append(j, buf, sizeof(buf), &lsn, &end)) == 0) {
		if (first == UINT64_MAX)
			first = lsn;
		n++;
	}
	test_assert(rc == EAGAIN && n == SMALL / (10000 + 24 + 0));
	test_assert(journal_append(j, buf, sizeof(buf), &lsn, &end) == EAGAIN);
	journal_applied(j, first + 10000 + JOURNAL_HEADER);
	test_assert(journal_append(j, buf, sizeof(buf), &lsn, &end) == 0);
	test_assert(lsn == SMALL);	/* the second lap */
	test_assert(journal_append(j, buf, journal_max_payload(j) + 1, &lsn,
	    &end) == EMSGSIZE);
	journal_close(j);
}

/* One process at a time: a second open of the same file is refused. */
TEST(test_locked)
{
	struct journal *j, *k;

	fresh();
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	test_assert(journal_open(&k, path, SMALL, 0, NULL, NULL) == EBUSY);
	journal_close(j);
	test_assert(journal_open(&k, path, SMALL, 0, NULL, NULL) == 0);
	journal_close(k);
}

/*
 * Another process looking whether the journal is open (journal_locked's
 * shared lock, here held for 200 ms) does not keep an open from taking it.
 */
TEST(test_locked_look)
{
	struct journal *j;
	int ready[2];
	bool locked = true;
	char c;
	pid_t pid;

	fresh();
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	journal_close(j);
	test_assert(journal_locked(path, &locked) == 0 && !locked);
	test_assert(pipe(ready) == 0);
	if ((pid = fork()) == 0) {
		int fd = open(path, O_RDONLY);

		if (fd < 0 || flock(fd, LOCK_SH) != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep(200 * 1000);
		_exit(0);
	}
	test_assert(pid > 0);
	test_assert(read(ready[0], &c, 1) == 1);
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	test_assert(journal_locked(path, &locked) == 0 && locked);
	journal_close(j);
	test_assert(waitpid(pid, NULL, 0) == pid);
	close(ready[0]);
	close(ready[1]);
}

/* A torn last record is not replayed, and the next append takes its place. */
TEST(test_torn)
{
	static unsigned char buf[3000];
	struct seen s = { 0 };
	struct journal *j;
	uint64_t lsn[3], end;
	int fd;

	fresh();
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	for (int i = 0; i < 3; i++) {
		fill(buf, sizeof(buf), (unsigned char)(10 + i));
		test_assert(journal_append(j, buf, sizeof(buf), &lsn[i], &end) ==
		    0);
	}
	journal_close(j);
	/* The third record's last sector never reached the disk. */
	fd = open(path, O_WRONLY);
	test_assert(fd >= 0);
	memset(buf, 0, 512);
	test_assert(pwrite(fd, buf, 512, (off_t)(end - 512)) == 512);
	close(fd);
	test_assert(journal_open(&j, path, SMALL, 0, record, &s) == 0);
	test_assert(s.n == 2 && journal_end(j) == lsn[2]);
	fill(buf, sizeof(buf), 99);
	test_assert(journal_append(j, buf, 100, &lsn[2], &end) == 0);
	journal_close(j);
	memset(&s, 0, sizeof(s));
	test_assert(journal_open(&j, path, SMALL, 0, record, &s) == 0);
	test_assert(s.n == 3 && s.len[2] == 100 && s.first[2] == 99 && !s.bad);
	journal_close(j);
}

TEST(test_bad_sizes)
{
	struct journal *j;

	fresh();
	test_assert(journal_open(&j, path, 4096, 0, NULL, NULL) == EINVAL);
	test_assert(journal_open(&j, path, SMALL + 1, 0, NULL, NULL) == EINVAL);
	test_assert(access(path, F_OK) != 0);	/* nothing created */
	test_assert(journal_open(&j, path, SMALL, 0, NULL, NULL) == 0);
	journal_close(j);
	/* An existing journal of another size is refused, not resized. */
	test_assert(journal_open(&j, path, SMALL * 2, 0, NULL, NULL) == EINVAL);
}

static void
cleanup(void)
{
	test_rmtree(dir);
}

int
main(void)
{
	test_mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/journal", dir);
	test_cleanup = cleanup;
	RUN(test_crc32c);
	RUN(test_append_replay);
	RUN(test_locked);
	RUN(test_locked_look);
	RUN(test_laps);
	RUN(test_full);
	RUN(test_torn);
	RUN(test_bad_sizes);
	cleanup();
	return 0;
}
