#include "journal.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsync_dir.h"

#define MAGIC_RECORD 0x314a504fu	/* "OPJ1" little-endian */
#define MAGIC_WRAP 0x574a504fu		/* "OPJW" */
#define ZERO_CHUNK (1024 * 1024)
/* journal_open's wait for a lock another process holds: 100 x 10 ms. */
#define LOCK_TRIES 100
#define LOCK_RETRY_NS (10 * 1000 * 1000)

struct journal {
	int fd;
	uint64_t size;
	uint64_t end;		/* where the next record would go */
	/* Records before this may be overwritten; set by another thread. */
	_Atomic uint64_t applied;
	bool failed;		/* a write or flush failed: no more appends */
	unsigned char *buf;	/* one record, header and padded payload */
	size_t buf_cap;
};

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t
journal_crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static size_t
padded(size_t len)
{
	return (len + 7) & ~(size_t)7;
}

/* The first lsn of the lap after the one lsn is in. */
static uint64_t
next_lap(const struct journal *j, uint64_t lsn)
{
	return lsn - lsn % j->size + j->size;
}

/* Fill in the header of a record of len payload bytes at buf. */
static void
header_seal(unsigned char *buf, uint32_t magic, uint64_t lsn, size_t len)
{
	uint32_t m = htole32(magic), l = htole32((uint32_t)len), zero = 0, crc;
	uint64_t n = htole64(lsn);

	memcpy(buf, &m, 4);
	memcpy(buf + 8, &n, 8);
	memcpy(buf + 16, &l, 4);
	memcpy(buf + 20, &zero, 4);
	crc = htole32(journal_crc32c(0, buf + 8,
	    JOURNAL_HEADER - 8 + padded(len)));
	memcpy(buf + 4, &crc, 4);
}

/*
 * Does the record at buf (its header and, for a record, its padded
 * payload already read) belong at lsn? Sets *magic and *len.
 */
static bool
header_valid(const unsigned char *buf, uint64_t lsn, uint32_t *magic,
    uint32_t *len)
{
	uint32_t m, l, crc;
	uint64_t n;

	memcpy(&m, buf, 4);
	memcpy(&crc, buf + 4, 4);
	memcpy(&n, buf + 8, 8);
	memcpy(&l, buf + 16, 4);
	*magic = le32toh(m);
	*len = le32toh(l);
	return le64toh(n) == lsn && le32toh(crc) == journal_crc32c(0, buf + 8,
	    JOURNAL_HEADER - 8 + padded(*len));
}

static int
full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
		    (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		got += (size_t)n;
	}
	return 0;
}

static int
full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
		    (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		done += (size_t)n;
	}
	return 0;
}

static int
reserve(struct journal *j, size_t need)
{
	unsigned char *p;

	if (need <= j->buf_cap)
		return 0;
	if ((p = realloc(j->buf, need)) == NULL)
		return ENOMEM;
	j->buf = p;
	j->buf_cap = need;
	return 0;
}

/*
 * Write a new journal of size zeros at path: under a temporary name,
 * flushed, renamed into place, and the directory flushed.
 */
static int
create_file(const char *path, uint64_t size)
{
	char tmp[PATH_MAX];
	unsigned char *zeros;
	int fd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return ENAMETOOLONG;
	if ((zeros = calloc(1, ZERO_CHUNK)) == NULL)
		return ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
	if (fd < 0) {
		rc = errno;
		free(zeros);
		return rc;
	}
	for (uint64_t off = 0; off < size && rc == 0; off += ZERO_CHUNK)
		rc = full_pwrite(fd, zeros, size - off < ZERO_CHUNK ?
		    (size_t)(size - off) : ZERO_CHUNK, off);
	free(zeros);
	if (rc == 0 && fdatasync(fd) != 0)
		rc = errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	return fsync_dir_of(path);
}

/* Hand replay each valid record from j->applied on; set j->end. */
static int
replay_all(struct journal *j, journal_replay_fn replay, void *arg)
{
	uint64_t applied = atomic_load(&j->applied), lsn = applied;
	unsigned char head[JOURNAL_HEADER];
	int rc;

	while (lsn - applied < j->size) {
		uint64_t pos = lsn % j->size;
		uint32_t magic, len;
		size_t rec;

		if (j->size - pos < JOURNAL_HEADER) {
			lsn = next_lap(j, lsn);
			continue;
		}
		if ((rc = full_pread(j->fd, head, sizeof(head), pos)) != 0)
			return rc;
		memcpy(&len, head + 16, 4);
		len = le32toh(len);
		rec = JOURNAL_HEADER + padded(len);
		if (rec > j->size - pos)
			break;		/* not a record of this journal */
		if ((rc = reserve(j, rec)) != 0 ||
		    (rc = full_pread(j->fd, j->buf, rec, pos)) != 0)
			return rc;
		if (!header_valid(j->buf, lsn, &magic, &len))
			break;
		if (magic == MAGIC_WRAP && len == 0) {
			lsn = next_lap(j, lsn);
			continue;
		}
		if (magic != MAGIC_RECORD)
			break;
		if (replay != NULL &&
		    (rc = replay(arg, lsn, lsn + rec, j->buf + JOURNAL_HEADER,
		    len)) != 0)
			return rc;
		lsn += rec;
	}
	j->end = lsn;
	return 0;
}

int
journal_open(struct journal **jp, const char *path, uint64_t size,
    uint64_t applied_lsn, journal_replay_fn replay, void *arg)
{
	struct journal *j;
	struct stat st;
	int rc;

	if (size < JOURNAL_MIN_SIZE || size % 4096 != 0 ||
	    size > (uint64_t)1 << 40)
		return EINVAL;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			return errno;
		if ((rc = create_file(path, size)) != 0)
			return rc;
	} else if ((uint64_t)st.st_size != size) {
		return EINVAL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return ENOMEM;
	j->size = size;
	atomic_init(&j->applied, applied_lsn);
	if ((j->fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		rc = errno;
		free(j);
		return rc;
	}
	/*
	 * One writer: a second process would hand out the same lsns. A
	 * shared lock is journal_locked() looking, for a moment: wait that
	 * out, up to a second, while a writer's lock stays.
	 */
	for (int tries = 0; flock(j->fd, LOCK_EX | LOCK_NB) != 0; tries++) {
		if (errno != EWOULDBLOCK || tries == LOCK_TRIES) {
			rc = errno == EWOULDBLOCK ? EBUSY : errno;
			journal_close(j);
			return rc;
		}
		nanosleep(&(struct timespec){ .tv_nsec = LOCK_RETRY_NS }, NULL);
	}
	if ((rc = replay_all(j, replay, arg)) != 0) {
		journal_close(j);
		return rc;
	}
	*jp = j;
	return 0;
}

int
journal_read(const char *path, uint64_t applied_lsn,
    journal_replay_fn replay, void *arg)
{
	struct journal j = { .fd = -1 };
	struct stat st;
	int rc;

	if ((j.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno;
	if (fstat(j.fd, &st) != 0) {
		rc = errno;
		close(j.fd);
		return rc;
	}
	j.size = (uint64_t)st.st_size;
	if (j.size < JOURNAL_MIN_SIZE || j.size % 4096 != 0) {
		close(j.fd);
		return EINVAL;
	}
	atomic_init(&j.applied, applied_lsn);
	rc = replay_all(&j, replay, arg);
	close(j.fd);
	free(j.buf);
	return rc;
}

int
journal_locked(const char *path, bool *locked)
{
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno;
	*locked = false;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			*locked = true;
		else
			rc = errno;
	}
	close(fd);	/* releases the lock */
	return rc;
}

int
journal_append(struct journal *j, const void *payload, size_t len,
    uint64_t *lsn, uint64_t *end_lsn)
{
	size_t rec = JOURNAL_HEADER + padded(len);
	uint64_t at = j->end, wrap_at = 0;
	bool wrap = false;
	int rc;

	if (j->failed)
		return EIO;
	if (len > journal_max_payload(j))
		return EMSGSIZE;
	if (rec > j->size - at % j->size) {
		/* A wrap mark where it fits, so a reader knows to jump. */
		wrap = j->size - at % j->size >= JOURNAL_HEADER;
		wrap_at = at;
		at = next_lap(j, at);
	}
	if (at + rec - atomic_load(&j->applied) > j->size)
		return EAGAIN;
	if ((rc = reserve(j, rec)) != 0)
		return rc;
	if (wrap) {
		unsigned char mark[JOURNAL_HEADER];

		header_seal(mark, MAGIC_WRAP, wrap_at, 0);
		rc = full_pwrite(j->fd, mark, sizeof(mark), wrap_at % j->size);
	}
	if (rc == 0) {
		memcpy(j->buf + JOURNAL_HEADER, payload, len);
		memset(j->buf + JOURNAL_HEADER + len, 0, padded(len) - len);
		header_seal(j->buf, MAGIC_RECORD, at, len);
		rc = full_pwrite(j->fd, j->buf, rec, at % j->size);
	}
	if (rc == 0 && fdatasync(j->fd) != 0)
		rc = errno;
	if (rc != 0) {
		j->failed = true;
		return rc;
	}
	j->end = at + rec;
	*lsn = at;
	*end_lsn = j->end;
	return 0;
}

void
journal_applied(struct journal *j, uint64_t lsn)
{
	uint64_t was = atomic_load(&j->applied);

	while (lsn > was &&
	    !atomic_compare_exchange_weak(&j->applied, &was, lsn))
		;
}

uint64_t
journal_end(const struct journal *j)
{
	return j->end;
}

uint64_t
journal_size(const struct journal *j)
{
	return j->size;
}

size_t
journal_max_payload(const struct journal *j)
{
	uint64_t max = j->size / 2 - JOURNAL_HEADER;

	return max > UINT32_MAX - 8 ? UINT32_MAX - 8 : (size_t)max;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	close(j->fd);
	free(j->buf);
	free(j);
}
