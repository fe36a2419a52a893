/*
 * faultshim: an LD_PRELOAD library for the fault tests. It makes chosen
 * writes and flushes of an LMDB data file (data.mdb) or of order-api's
 * write-ahead journal (a file named journal) fail, armed by the test at
 * run time, after the daemon has started and committed orders.
 *
 * OP_FAULT_FILE names a control file. While it does not exist, every call
 * goes straight to libc. While it exists, it holds one line
 *     WHAT ERRNO COUNT
 * WHAT   meta  a pwrite within the first two pages of data.mdb: LMDB's two
 *              meta pages. LMDB 0.9.24 ends each commit with one pwrite of
 *              the meta page, on a descriptor opened O_DSYNC; when it fails
 *              LMDB marks the environment fatal (MDB_PANIC from then on).
 *        data  a pwrite, pwritev or writev of data.mdb past those pages: a
 *              commit's data pages (pwrite for one run of pages, lseek and
 *              writev for several).
 *        sync  an fdatasync or fsync of data.mdb: the flush that a commit
 *              does between its data pages and its meta page.
 *        jdata a pwrite, pwritev, writev or write of journal (not of
 *              journal.new, the file a new journal is made in): a record
 *              of a batch of new orders, which order-api writes with one
 *              pwrite before it flushes it.
 *        jsync an fdatasync or fsync of journal: that record's flush. The
 *              record was written, so it is in the file (the page cache)
 *              although its flush failed.
 * ERRNO  EIO, ENOSPC, or a number.
 * COUNT  how many such calls fail, after which the file is gone; or
 *        "always": every such call fails until the test removes the file.
 * A counted fault is taken by renaming the control file away, which only
 * one process can do, so the count holds across the processes that share
 * the file (a worker master's children). A failed call writes nothing.
 * Each failure appends "PID WHAT ERRNO" to OP_FAULT_FILE.log, so that the
 * test can see that it happened, and in which process.
 */

/* Define pwrite and pwrite64 themselves, not the header's redirections. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum fault { FAULT_META, FAULT_DATA, FAULT_SYNC, FAULT_JDATA, FAULT_JSYNC };

static const char *const fault_names[] = {
	"meta", "data", "sync", "jdata", "jsync"
};

/* The files a fault can hit. */
enum target { TARGET_NONE, TARGET_DATA_MDB, TARGET_JOURNAL };

#define REAL(name) \
	static __typeof__(name) *real_##name; \
	if (real_##name == NULL) \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* Does path end in /name? */
static bool
ends_in(const char *path, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && path[len - n - 1] == '/' &&
	    strcmp(path + len - n, name) == 0;
}

/* Which file fd is a descriptor of: an LMDB data file, a journal, other. */
static enum target
target_of(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return TARGET_NONE;
	path[n] = '\0';
	if (ends_in(path, (size_t)n, "data.mdb"))
		return TARGET_DATA_MDB;
	if (ends_in(path, (size_t)n, "journal"))
		return TARGET_JOURNAL;
	return TARGET_NONE;
}

/* Read the control file at path: 0, or -1 if it is gone or malformed. */
static int
read_control(const char *path, char what[16], int *err, long *count)
{
	char buf[128], errname[32], countstr[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%15s %31s %31s", what, errname, countstr) != 3)
		return -1;
	if (strcmp(errname, "EIO") == 0)
		*err = EIO;
	else if (strcmp(errname, "ENOSPC") == 0)
		*err = ENOSPC;
	else if ((*err = atoi(errname)) <= 0)
		return -1;
	*count = strcmp(countstr, "always") == 0 ? -1 : atol(countstr);
	return 0;
}

static void
record(const char *ctl, enum fault f, int err)
{
	char path[4096], line[96];
	int fd, len;

	snprintf(path, sizeof(path), "%s.log", ctl);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	len = snprintf(line, sizeof(line), "%d %s %s\n", (int)getpid(),
	    fault_names[f], err == EIO ? "EIO" : err == ENOSPC ? "ENOSPC"
	    : "other");
	if (write(fd, line, (size_t)len) < 0) {
		/* The test will see no record and fail on that. */
	}
	close(fd);
}

/*
 * Should this call on fd fail? On data.mdb (unless journal_only) a flush
 * is FAULT_SYNC, a write a meta or a data write by the offset it starts at
 * (offset, or the file position if NULL); on journal a flush is
 * FAULT_JSYNC, a write FAULT_JDATA. Sets *err to its errno. The common
 * case, no control file, costs one access(2).
 */
static bool
should_fail(int fd, bool sync, bool journal_only, const off_t *offset,
    int *err)
{
	const char *ctl = getenv("OP_FAULT_FILE");
	char what[16], claimed[4096], rest[4096];
	enum target t;
	enum fault f;
	off_t pos;
	long count;
	int saved = errno;
	bool fail = false;

	if (ctl == NULL || access(ctl, F_OK) != 0 ||
	    (t = target_of(fd)) == TARGET_NONE ||
	    (journal_only && t != TARGET_JOURNAL)) {
		errno = saved;
		return false;
	}
	if (t == TARGET_JOURNAL) {
		f = sync ? FAULT_JSYNC : FAULT_JDATA;
	} else {
		pos = offset != NULL ? *offset : lseek(fd, 0, SEEK_CUR);
		f = sync ? FAULT_SYNC : pos < 2 * sysconf(_SC_PAGESIZE) ?
		    FAULT_META : FAULT_DATA;
	}
	if (read_control(ctl, what, err, &count) != 0 ||
	    strcmp(what, fault_names[f]) != 0) {
		errno = saved;
		return false;
	}
	if (count < 0) {
		fail = true;
	} else {
		/* Take one: whoever renames the file away owns the count. */
		snprintf(claimed, sizeof(claimed), "%s.%d", ctl, (int)getpid());
		if (rename(ctl, claimed) == 0) {
			if (read_control(claimed, what, err, &count) == 0 &&
			    strcmp(what, fault_names[f]) == 0 && count > 0) {
				fail = true;
				count--;
			}
			if (count != 0) {
				int tfd;

				snprintf(rest, sizeof(rest), "%s.%d.rest", ctl,
				    (int)getpid());
				tfd = open(rest, O_WRONLY | O_CREAT | O_TRUNC |
				    O_CLOEXEC, 0644);
				if (tfd >= 0) {
					dprintf(tfd, "%s %d %ld\n", what, *err,
					    count);
					close(tfd);
					rename(rest, ctl);
				}
			}
			unlink(claimed);
		}
	}
	if (fail)
		record(ctl, f, *err);
	errno = saved;
	return fail;
}

#define FAIL_IF(sync, offset) FAIL_IF_ON(sync, false, offset)
#define FAIL_IF_ON(sync, journal_only, offset) do { \
	int err_; \
	if (should_fail(fd, sync, journal_only, offset, &err_)) { \
		errno = err_; \
		return -1; \
	} \
} while (0)

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t offset)
{
	REAL(pwrite);
	FAIL_IF(false, &offset);
	return real_pwrite(fd, buf, n, offset);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t offset)
{
	off_t off = (off_t)offset;

	REAL(pwrite64);
	FAIL_IF(false, &off);
	return real_pwrite64(fd, buf, n, offset);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t offset)
{
	REAL(pwritev);
	FAIL_IF(false, &offset);
	return real_pwritev(fd, iov, n, offset);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	REAL(writev);
	FAIL_IF(false, NULL);
	return real_writev(fd, iov, n);
}

/* Only the journal's: LMDB writes data.mdb with pwrite and writev. */
ssize_t
write(int fd, const void *buf, size_t n)
{
	REAL(write);
	FAIL_IF_ON(false, true, NULL);
	return real_write(fd, buf, n);
}

int
fdatasync(int fd)
{
	REAL(fdatasync);
	FAIL_IF(true, NULL);
	return real_fdatasync(fd);
}

int
fsync(int fd)
{
	REAL(fsync);
	FAIL_IF(true, NULL);
	return real_fsync(fd);
}
