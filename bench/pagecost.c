/*
 * pagecost: what a flush costs on the disk under a directory, by the pages
 * it carries and how they lie; printed by bench/run.py beside the synced
 * commit rate, to read the create cases by.
 *
 * A synced LMDB commit writes every page it dirtied to wherever LMDB
 * found room (copy on write: a reused free page, anywhere in the file)
 * and flushes. A page that lies apart from the others is a request of
 * its own to the device, and on the virtual disks of these machines each
 * request costs about as much as the flush itself; pages that lie in one
 * run go as one request. So the cost of a commit follows the number of
 * scattered pages it dirties, far more than the bytes: every order adds
 * a page of each index whose key is not in creation order (by user, say).
 *
 * This program measures it with nothing else around: in a file of 64 MiB
 * (written once, so every block exists), for N = 1, 8 and 32 pages of
 * 4 KiB, it repeats for a while: N pwrite calls at random page offsets and
 * one fdatasync; then one pwrite of N pages in a run and one fdatasync.
 *
 * usage: pagecost DIR SECONDS
 * DIR must exist; the file is removed at the end. Prints one line:
 * "pagecost: flush of 1 page X us; 8 scattered pages X us, in one run Y us;
 * 32 scattered pages X us, in one run Y us" (means).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define PAGE 4096
#define FILE_PAGES (64 * 256)	/* 64 MiB */
#define MAX_RUN 32

static void
fail(const char *what)
{
	fprintf(stderr, "pagecost: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * Mean microseconds of one write of n pages (scattered: n writes at
 * random page offsets; else one write of n pages) and its fdatasync,
 * repeated for seconds.
 */
static double
flush_cost(int fd, const char *buf, int n, int scattered, double seconds)
{
	double start = now_ms() * 1e3, end = start + seconds * 1e6, t;
	long rounds = 0;

	do {
		if (scattered) {
			for (int i = 0; i < n; i++) {
				off_t page = random() % FILE_PAGES;

				if (pwrite(fd, buf, PAGE, page * PAGE) != PAGE)
					fail("pwrite");
			}
		} else {
			off_t page = random() % (FILE_PAGES - n);

			if (pwrite(fd, buf, (size_t)n * PAGE, page * PAGE) !=
			    (ssize_t)n * PAGE)
				fail("pwrite");
		}
		if (fdatasync(fd) != 0)
			fail("fdatasync");
		rounds++;
	} while ((t = now_ms() * 1e3) < end);
	return (t - start) / (double)rounds;
}

int
main(int argc, char **argv)
{
	static char buf[MAX_RUN * PAGE];
	char path[4096];
	double seconds, one, s8, r8, s32, r32;
	int fd;

	if (argc != 3 || (seconds = atof(argv[2])) <= 0) {
		fprintf(stderr, "usage: pagecost DIR SECONDS\n");
		return 2;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/pagecost.data",
	    argv[1]) >= sizeof(path)) {
		fprintf(stderr, "pagecost: %s: name too long\n", argv[1]);
		return 2;
	}
	memset(buf, 0x5a, sizeof(buf));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail(path);
	for (off_t p = 0; p < FILE_PAGES; p += MAX_RUN)
		if (pwrite(fd, buf, sizeof(buf), p * PAGE) != sizeof(buf))
			fail("pwrite");
	if (fdatasync(fd) != 0)
		fail("fdatasync");
	srandom(1);
	seconds /= 5;
	one = flush_cost(fd, buf, 1, 1, seconds);
	s8 = flush_cost(fd, buf, 8, 1, seconds);
	r8 = flush_cost(fd, buf, 8, 0, seconds);
	s32 = flush_cost(fd, buf, 32, 1, seconds);
	r32 = flush_cost(fd, buf, 32, 0, seconds);
	close(fd);
	unlink(path);
	printf("pagecost: flush of 1 page %.0f us; 8 scattered pages %.0f us, "
	    "in one run %.0f us; 32 scattered pages %.0f us, in one run "
	    "%.0f us\n", one, s8, r8, s32, r32);
	return 0;
}
