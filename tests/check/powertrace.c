/*
 * powertrace: an LD_PRELOAD library for the power-loss test. It records
 * every write and flush that a process makes to chosen files of the data
 * directory into one trace file shared by all the processes (the layout is
 * in powertrace.h); power-cut.c replays the trace to build what a power
 * cut at any point of it could have left on the disk.
 *
 * Environment, read once when the library loads:
 *   OP_POWER_TRACE  the trace file (created if missing); unset: every
 *                   call goes straight to libc.
 *   OP_POWER_FILES  the names of the files to trace, separated by spaces;
 *                   default "data.mdb lock.mdb" (the power-loss test adds
 *                   "journal", order-api's write-ahead journal).
 *   OP_POWER_DIR    if set, only files in this directory are traced (give
 *                   the path without symbolic links: it is compared with
 *                   the one /proc/self/fd shows).
 *   OP_POWER_LIE    "1": a disk that lies. fsync and fdatasync of a traced
 *                   file return 0 at once, flush nothing and record
 *                   nothing, and a traced file opened with O_DSYNC or
 *                   O_SYNC is opened without them: an answer given before
 *                   the flush. "dsync": only the latter, so LMDB's meta
 *                   page waits for the next commit's flush while the
 *                   answer goes out at once (MDB_NOMETASYNC without
 *                   deferring the answers). "journal": fsync and
 *                   fdatasync of a traced file named journal alone return
 *                   0 at once, flush nothing and record nothing: order-api
 *                   answers 201 before its journal record is durable. The
 *                   test uses them to see that power-cut catches such
 *                   defects.
 *
 * What it records, and why that is all of it for LMDB 0.9.24 (mdb.c):
 *   - data.mdb's pages are written with pwrite (one run of pages) or lseek
 *     and writev (several runs), on the descriptor opened O_RDWR; the new
 *     environment's two meta pages with one pwrite on it. A commit flushes
 *     them with fdatasync (fsync with MDB_FSYNCONLY, or on the old ext3/4
 *     kernels LMDB distrusts), then writes the meta page with pwrite on a
 *     second descriptor opened O_WRONLY|O_DSYNC, durable when it returns;
 *     with MDB_NOMETASYNC or MDB_NOSYNC that pwrite goes to the first
 *     descriptor and waits for the next flush. mdb_env_sync is the same
 *     fdatasync. LMDB has pwritev (MDB_USE_PWRITEV) but Debian's build
 *     does not use it, and write only to copy the environment elsewhere;
 *     both are wrapped all the same, with pwritev2, for another file
 *     written with them.
 *   - order-api's journal (common/journal.c) is written with pwrite, one
 *     record at a time, and flushed with fdatasync, on a descriptor opened
 *     O_RDWR. It is created before any order is accepted: zeros written to
 *     journal.new, flushed, renamed to journal, the directory flushed.
 *     Those writes go to another name and are not traced: power-cut
 *     takes the file as all zeros and durable from the start (--sized).
 *   - lock.mdb is sized with ftruncate (store_open, in either daemon,
 *     sizes it first with posix_fallocate) and then written only
 *     through a shared mapping, which no syscall shows: the trace has
 *     its lengths and its PT_MAP records and nothing of its content.
 *     That is enough: the first process to open the environment after
 *     a reboot takes the lock file's exclusive lock and initialises it
 *     afresh, so power-cut leaves it absent or stale. A shared
 *     writable mapping of data.mdb (MDB_WRITEMAP, then flushed with
 *     msync) would hide its writes the same way; power-cut refuses a
 *     trace with one.
 *   - A write is recorded after the real call returns, with the bytes it
 *     really wrote (a short write: the part written; a failed one: no
 *     bytes, PT_F_FAILED), and a PT_WRITE_BEGIN before it, so that a write
 *     still under way at a cut can be counted as partly landed. A flush
 *     is recorded before the real call (PT_FLUSH_BEGIN) and after it
 *     returns (PT_FLUSH_END): what was written before its beginning is on
 *     the disk once it ends. Writes through a descriptor with O_DSYNC or
 *     O_SYNC (read back with F_GETFL), or pwritev2 with RWF_DSYNC or
 *     RWF_SYNC, are marked PT_F_SYNC: durable when they return.
 *   - ftruncate, fallocate and posix_fallocate of a traced file are
 *     recorded as its new length (PT_TRUNCATE), and so is an open with
 *     O_TRUNC; a shared writable mapping as PT_MAP.
 * Not recorded: writes through a mapping (above) and msync, sync(2),
 * syncfs(2), sync_file_range(2) (it never flushes the drive's cache),
 * copy_file_range, sendfile, splice, io_uring and AIO, opens through
 * fopen or __open_2. LMDB uses none of them on its files.
 *
 * Each record is appended with a single writev on a descriptor opened
 * O_APPEND for that record and closed after it, so that the records of
 * every process and thread interleave whole, in the order of their calls,
 * and a descriptor of ours never outlives the record (a daemon that
 * closes or dups descriptors cannot hit it). Recording uses only system
 * calls (no malloc, no stdio, no locks), so a wrapper is safe in a signal
 * handler and after fork, once its first call has looked the real
 * function up (dlsym). Under AddressSanitizer, its runtime comes first
 * in LD_PRELOAD: its interceptors call these functions, which call libc's
 * through dlsym(RTLD_NEXT), as faultshim.c does.
 */

/* Define pwrite and the others themselves, not the header's redirections
 * to their 64-bit names. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "powertrace.h"

_Static_assert(sizeof(struct pt_rec) == 32, "struct pt_rec has padding");

#define MAX_NAMES 8
#define MAX_NAME 64
/* iovecs of one trace record: header, name, data */
#define REC_IOV 64

#define REAL(name) \
	static __typeof__(name) *real_##name; \
	if (real_##name == NULL) \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static bool enabled;
static bool lying, lying_dsync;
/* OP_POWER_LIE=journal: the index in names of "journal", or -1. */
static int lying_about = -1;
static char trace_path[PATH_MAX];
static char dir_path[PATH_MAX];
static size_t dir_len;
static char names[MAX_NAMES][MAX_NAME];
static size_t name_lens[MAX_NAMES];
static int n_names;

static __typeof__(open) *libc_open;
static __typeof__(writev) *libc_writev;

__attribute__((constructor)) static void
powertrace_init(void)
{
	const char *trace = getenv("OP_POWER_TRACE");
	const char *files = getenv("OP_POWER_FILES");
	const char *dir = getenv("OP_POWER_DIR");
	const char *lie = getenv("OP_POWER_LIE");

	libc_open = (__typeof__(open) *)dlsym(RTLD_NEXT, "open");
	libc_writev = (__typeof__(writev) *)dlsym(RTLD_NEXT, "writev");
	if (trace == NULL || *trace == '\0' || strlen(trace) >= PATH_MAX ||
	    libc_open == NULL || libc_writev == NULL)
		return;
	strcpy(trace_path, trace);
	if (dir != NULL && *dir != '\0' && strlen(dir) < PATH_MAX) {
		strcpy(dir_path, dir);
		dir_len = strlen(dir_path);
		while (dir_len > 1 && dir_path[dir_len - 1] == '/')
			dir_path[--dir_len] = '\0';
	}
	if (files == NULL || *files == '\0')
		files = "data.mdb lock.mdb";
	while (*files != '\0' && n_names < MAX_NAMES) {
		size_t n = strcspn(files, " \t");

		if (n > 0 && n < MAX_NAME) {
			memcpy(names[n_names], files, n);
			names[n_names][n] = '\0';
			name_lens[n_names++] = n;
		}
		files += n;
		files += strspn(files, " \t");
	}
	lying = lie != NULL && strcmp(lie, "1") == 0;
	lying_dsync = lying || (lie != NULL && strcmp(lie, "dsync") == 0);
	for (int i = 0; i < n_names; i++)
		if (lie != NULL && strcmp(lie, "journal") == 0 &&
		    strcmp(names[i], "journal") == 0)
			lying_about = i;
	enabled = n_names > 0;
}

/* Which traced name is the last component of path[0..n): its index, or
 * -1. With check_dir, the rest must be OP_POWER_DIR. */
static int
match_path(const char *path, size_t n, bool check_dir)
{
	size_t base = n;

	while (base > 0 && path[base - 1] != '/')
		base--;
	if (check_dir && dir_len > 0 &&
	    (base != dir_len + 1 || memcmp(path, dir_path, dir_len) != 0))
		return -1;
	for (int i = 0; i < n_names; i++)
		if (n - base == name_lens[i] &&
		    memcmp(path + base, names[i], name_lens[i]) == 0)
			return i;
	return -1;
}

/* Is fd a traced file? Its name's index, or -1. Keeps errno. */
static int
traced_fd(int fd)
{
	char link[32] = "/proc/self/fd/", digits[12], path[PATH_MAX];
	size_t len = strlen(link), nd = 0;
	unsigned v = (unsigned)fd;
	ssize_t n;
	int saved = errno;

	if (!enabled || fd < 0)
		return -1;
	do {
		digits[nd++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (nd > 0)
		link[len++] = digits[--nd];
	link[len] = '\0';
	n = readlink(link, path, sizeof(path));
	errno = saved;
	if (n <= 0 || n >= (ssize_t)sizeof(path))
		return -1;
	return match_path(path, (size_t)n, true);
}

static uint32_t
tid(void)
{
	return (uint32_t)syscall(SYS_gettid);
}

/*
 * Append one record: the header, the name of traced file `which` (or
 * label[0..label_len) when which < 0), and the first len bytes of data[n].
 * Keeps errno.
 */
static void
emit(enum pt_type type, unsigned flags, int which, const char *label,
    size_t label_len, uint64_t off, const struct iovec *data, int n,
    size_t len)
{
	struct pt_rec h = {
		.magic = PT_MAGIC,
		.type = (uint8_t)type,
		.flags = (uint8_t)flags,
		.pid = (uint32_t)getpid(),
		.tid = tid(),
		.off = off,
		.len = len,
	};
	struct iovec iov[REC_IOV];
	int k = 0, fd, saved = errno;

	iov[k++] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
	if (which >= 0) {
		label = names[which];
		label_len = name_lens[which];
	}
	h.name_len = (uint16_t)label_len;
	if (label_len > 0)
		iov[k++] = (struct iovec){ .iov_base = (void *)label,
		    .iov_len = label_len };
	for (int i = 0; i < n && len > 0; i++) {
		size_t take = data[i].iov_len < len ? data[i].iov_len : len;

		if (take == 0)
			continue;
		iov[k++] = (struct iovec){ .iov_base = data[i].iov_base,
		    .iov_len = take };
		len -= take;
	}
	fd = libc_open(trace_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644);
	if (fd >= 0) {
		/* A short append leaves a torn record, which power-cut
		 * reports; there is nothing better to do here. */
		if (libc_writev(fd, iov, k) < 0) {
		}
		close(fd);
	}
	errno = saved;
}

/* The part of a write that fits one record: at most REC_IOV - 2 iovecs.
 * Several records for a longer vector, at consecutive offsets. */
static void
emit_write(int which, unsigned flags, uint64_t off, const struct iovec *iov,
    int n, ssize_t written)
{
	size_t left;

	if (written < 0) {
		emit(PT_WRITE, flags | PT_F_FAILED, which, NULL, 0, off, NULL,
		    0, 0);
		return;
	}
	left = (size_t)written;
	do {
		int take = n < REC_IOV - 2 ? n : REC_IOV - 2;
		size_t bytes = 0;

		for (int i = 0; i < take; i++)
			bytes += iov[i].iov_len;
		if (bytes > left)
			bytes = left;
		emit(PT_WRITE, flags, which, NULL, 0, off, iov, take, bytes);
		off += bytes;
		left -= bytes;
		iov += take;
		n -= take;
	} while (n > 0 && left > 0);
}

/* Is a write through fd durable when it returns? Keeps errno. */
static unsigned
sync_flag(int fd)
{
	int saved = errno;
	int fl = fcntl(fd, F_GETFL);

	errno = saved;
	return fl >= 0 && (fl & O_DSYNC) != 0 ? PT_F_SYNC : 0;
}

static off_t
position(int fd)
{
	int saved = errno;
	off_t pos = lseek(fd, 0, SEEK_CUR);

	errno = saved;
	return pos;
}

/*
 * One traced write: at offset off, or at the file position when off < 0
 * (then read after the call, minus what it wrote, which also covers
 * O_APPEND). call() makes the real call.
 */
#define TRACED_WRITE(fd, off, iov, n, extra_flags, call) do { \
	int which_ = traced_fd(fd); \
	ssize_t r_; \
	off_t at_; \
	if (which_ < 0) \
		return call; \
	emit(PT_WRITE_BEGIN, 0, which_, NULL, 0, \
	    (uint64_t)((off) >= 0 ? (off) : position(fd)), NULL, 0, 0); \
	r_ = call; \
	at_ = (off) >= 0 ? (off) : position(fd) - (r_ > 0 ? r_ : 0); \
	emit_write(which_, sync_flag(fd) | (extra_flags), (uint64_t)at_, \
	    iov, n, r_); \
	return r_; \
} while (0)

ssize_t
write(int fd, const void *buf, size_t n)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };

	REAL(write);
	TRACED_WRITE(fd, (off_t)-1, &iov, 1, 0, real_write(fd, buf, n));
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t offset)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };

	REAL(pwrite);
	TRACED_WRITE(fd, offset, &iov, 1, 0, real_pwrite(fd, buf, n, offset));
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t offset)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };

	REAL(pwrite64);
	TRACED_WRITE(fd, (off_t)offset, &iov, 1, 0,
	    real_pwrite64(fd, buf, n, offset));
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	REAL(writev);
	TRACED_WRITE(fd, (off_t)-1, iov, n, 0, real_writev(fd, iov, n));
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t offset)
{
	REAL(pwritev);
	TRACED_WRITE(fd, offset, iov, n, 0, real_pwritev(fd, iov, n, offset));
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int n, off64_t offset)
{
	REAL(pwritev64);
	TRACED_WRITE(fd, (off_t)offset, iov, n, 0,
	    real_pwritev64(fd, iov, n, offset));
}

ssize_t
pwritev2(int fd, const struct iovec *iov, int n, off_t offset, int flags)
{
	REAL(pwritev2);
	TRACED_WRITE(fd, offset, iov, n,
	    (flags & (RWF_DSYNC | RWF_SYNC)) ? PT_F_SYNC : 0,
	    real_pwritev2(fd, iov, n, offset, flags));
}

ssize_t
pwritev64v2(int fd, const struct iovec *iov, int n, off64_t offset,
    int flags)
{
	REAL(pwritev64v2);
	TRACED_WRITE(fd, (off_t)offset, iov, n,
	    (flags & (RWF_DSYNC | RWF_SYNC)) ? PT_F_SYNC : 0,
	    real_pwritev64v2(fd, iov, n, offset, flags));
}

/* A flush of a traced file: recorded around the real call, or skipped
 * entirely by a lying disk (or one lying about that file). */
#define TRACED_FLUSH(fd, flags, call) do { \
	int which_ = traced_fd(fd), r_; \
	if (which_ < 0) \
		return call; \
	if (lying || which_ == lying_about) \
		return 0; \
	emit(PT_FLUSH_BEGIN, (flags), which_, NULL, 0, 0, NULL, 0, 0); \
	r_ = call; \
	emit(PT_FLUSH_END, r_ != 0 ? PT_F_FAILED : 0, which_, NULL, 0, 0, \
	    NULL, 0, 0); \
	return r_; \
} while (0)

int
fdatasync(int fd)
{
	REAL(fdatasync);
	TRACED_FLUSH(fd, 0, real_fdatasync(fd));
}

int
fsync(int fd)
{
	REAL(fsync);
	TRACED_FLUSH(fd, PT_F_SYNC, real_fsync(fd));
}

#define TRACED_TRUNCATE(fd, len, call) do { \
	int which_ = traced_fd(fd), r_ = call; \
	if (which_ >= 0 && r_ == 0) \
		emit(PT_TRUNCATE, 0, which_, NULL, 0, (uint64_t)(len), NULL, \
		    0, 0); \
	return r_; \
} while (0)

int
ftruncate(int fd, off_t len)
{
	REAL(ftruncate);
	TRACED_TRUNCATE(fd, len, real_ftruncate(fd, len));
}

int
ftruncate64(int fd, off64_t len)
{
	REAL(ftruncate64);
	TRACED_TRUNCATE(fd, len, real_ftruncate64(fd, len));
}

/* fallocate and posix_fallocate may lengthen a file (order-api sizes
 * lock.mdb with posix_fallocate before LMDB opens it): its new length. */
#define TRACED_ALLOCATE(call, failed) do { \
	int which_ = traced_fd(fd), r_ = call; \
	struct stat st_; \
	if (which_ >= 0 && !(failed) && fstat(fd, &st_) == 0) \
		emit(PT_TRUNCATE, 0, which_, NULL, 0, (uint64_t)st_.st_size, \
		    NULL, 0, 0); \
	return r_; \
} while (0)

int
posix_fallocate(int fd, off_t off, off_t len)
{
	REAL(posix_fallocate);
	TRACED_ALLOCATE(real_posix_fallocate(fd, off, len), r_ != 0);
}

int
posix_fallocate64(int fd, off64_t off, off64_t len)
{
	REAL(posix_fallocate64);
	TRACED_ALLOCATE(real_posix_fallocate64(fd, off, len), r_ != 0);
}

int
fallocate(int fd, int mode, off_t off, off_t len)
{
	REAL(fallocate);
	TRACED_ALLOCATE(real_fallocate(fd, mode, off, len), r_ != 0);
}

int
fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	REAL(fallocate64);
	TRACED_ALLOCATE(real_fallocate64(fd, mode, off, len), r_ != 0);
}

#define TRACED_MMAP(call) do { \
	void *p_ = call; \
	if (p_ != MAP_FAILED && fd >= 0 && (prot & PROT_WRITE) && \
	    (flags & MAP_SHARED)) { \
		int which_ = traced_fd(fd); \
		if (which_ >= 0) \
			emit(PT_MAP, 0, which_, NULL, 0, (uint64_t)offset, \
			    NULL, 0, 0); \
	} \
	return p_; \
} while (0)

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	REAL(mmap);
	TRACED_MMAP(real_mmap(addr, len, prot, flags, fd, offset));
}

void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t offset)
{
	REAL(mmap64);
	TRACED_MMAP(real_mmap64(addr, len, prot, flags, fd, offset));
}

/*
 * Opens: a lying disk (either kind) drops O_DSYNC and O_SYNC from a traced name (matched
 * by its last component alone: the path may be relative); an O_TRUNC of a
 * traced file is recorded as a truncation to 0.
 */
static int
open_flags(const char *path, int flags)
{
	if (lying_dsync && enabled && path != NULL &&
	    match_path(path, strlen(path), false) >= 0)
		flags &= ~(O_SYNC | O_DSYNC);
	return flags;
}

static int
opened(int fd, int flags)
{
	int which;

	if (fd >= 0 && (flags & O_TRUNC) && (which = traced_fd(fd)) >= 0)
		emit(PT_TRUNCATE, 0, which, NULL, 0, 0, NULL, 0, 0);
	return fd;
}

#define OPEN_MODE(flags, mode) do { \
	if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) { \
		va_list ap_; \
		va_start(ap_, flags); \
		mode = va_arg(ap_, mode_t); \
		va_end(ap_); \
	} \
} while (0)

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	REAL(open);
	OPEN_MODE(flags, mode);
	flags = open_flags(path, flags);
	return opened(real_open(path, flags, mode), flags);
}

int
open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	REAL(open64);
	OPEN_MODE(flags, mode);
	flags = open_flags(path, flags);
	return opened(real_open64(path, flags, mode), flags);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	REAL(openat);
	OPEN_MODE(flags, mode);
	flags = open_flags(path, flags);
	return opened(real_openat(dirfd, path, flags, mode), flags);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	REAL(openat64);
	OPEN_MODE(flags, mode);
	flags = open_flags(path, flags);
	return opened(real_openat64(dirfd, path, flags, mode), flags);
}
