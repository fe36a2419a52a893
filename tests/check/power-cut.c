/*
 * power-cut: what a power cut could leave on the disk, checked.
 *
 *   power-cut TRACE --order-ctl PATH --work DIR [--recover PATH]
 *             [--rebuilt NAME]... [--sized NAME=BYTES]...
 *             [--from-mark LABEL] [--boundaries N] [--random N]
 *             [--cut K]... [--seed S] [--jobs N] [--keep N]
 *
 * TRACE is a trace of every write and flush that the daemons made to the
 * files of their data directory, and of every answer that acknowledged an
 * order, in one total order (powertrace.h; powertrace.c records it). A cut
 * K is the moment between record K - 1 and record K: power fails there. For
 * each cut checked, power-cut builds in a fresh directory under DIR each
 * traced file as the cut could have left it; with --recover, runs "PATH
 * DIR" on that directory first, as the daemon's next start would (op-recover
 * applies order-api's write-ahead journal to LMDB), and a recovery that
 * fails fails the cut, its output shown; then runs "order-ctl -c
 * /dev/null -D DIR check" (the order-ctl at --order-ctl PATH) with the orders acknowledged
 * before K (--expect-ids: each exists, and a cancelled one is Cancelled),
 * and counts a failure for any discrepancy (the check also recounts every
 * counter and index). The directories of the first
 * --keep failures (3) stay for a look, as the recovery left them (the cut
 * itself: rebuild it with --cut, below); the rest are removed. Exit
 * status: 0 every cut passed, 1 some failed, 2 a usage error or a trace it
 * cannot model.
 *
 * Which cuts: every flush boundary after the first PT_MARK named LABEL (or
 * from the start): just before each flush begins, just before and just
 * after it ends, and just before and just after each write durable on
 * return (LMDB's meta page) returns; if there are more than --boundaries
 * (300), that many spread evenly over them. Then
 * --random (100) positions drawn from the same range, and the end of the
 * trace. --cut K checks only
 * the cuts named. Every choice below is drawn from a generator seeded with
 * the seed and the cut alone, so "--seed S --cut K" rebuilds exactly the
 * directory that cut K of a run with seed S checked.
 *
 * The model, for each file and each cut K:
 *   - The page cache holds every write before K, in trace order. The disk
 *     holds, for each 4 KiB page, one version that the page really had:
 *     its content after some prefix of the writes to it (any subset of the
 *     writes applied in trace order gives the same pages when writes are
 *     whole pages, as LMDB's are; a version is right for smaller writes
 *     too, e.g. the appends of a journal).
 *   - No version older than the page's floor: a flush (fsync, fdatasync)
 *     that ended before K puts on the disk everything written to the file
 *     before it began; a write that was durable when it returned (O_DSYNC)
 *     puts its pages there. Writes after the floor, and writes under way at
 *     K (begun, not returned; their bytes are taken from their record
 *     after K), may have landed or not: each page's version is drawn.
 *   - Per cut, one of four ways: none (only the floors: every write since
 *     lost), all (every write landed, as a crash of the processes alone
 *     leaves it), prefix (the writes before one of them drawn at random
 *     landed, that one only in part: some of its pages, one maybe torn),
 *     any (each page a version drawn on its own: a write of several pages
 *     partly landed). In all, prefix and any, a page may be torn: each of
 *     its 512-byte sectors from one of two of its versions. A sector is
 *     atomic (either version, never a mix): LMDB relies on that for its
 *     meta page, which lies in the first sector of its page.
 *   - The length: at least the length the last flush made durable (or a
 *     durable write reached), and as long as any version drawn reaches;
 *     zeros fill what no write reached. A truncation that lengthens the
 *     file is a length that may have landed or not; one that shortens a
 *     file power-cut builds is refused (exit 2), as is a file written
 *     through a shared writable mapping (its writes are not in the trace).
 *   - A file named with --sized NAME=BYTES exists from the start of the
 *     trace with BYTES zero bytes, all durable (its floor), and the
 *     traced writes go over them. That is what order-api's journal
 *     guarantees before it accepts an order: the file is written with
 *     zeros under another name (journal.new, not traced), flushed,
 *     renamed into place, and its directory flushed. (A cut before the
 *     file was made finds it there all the same: zeros hold no record,
 *     which the recovery takes as an empty journal.)
 *   - Files named with --rebuilt are not built from the trace: LMDB's
 *     lock.mdb is written through a mapping and built afresh at the first
 *     open after a reboot. Each cut leaves such a file absent, zero-filled
 *     or filled with random bytes, at its last traced length.
 * Not modelled: a drive that acknowledges a flush it has not done
 * (powertrace's OP_POWER_LIE plays one to show that power-cut catches
 * it); a failed flush (it makes nothing durable here, while the kernel may
 * have dropped the pages it failed to write); the creation, renaming and
 * removal of files (every traced file exists at every cut: empty until
 * its writes, or as --sized says); tears below a sector.
 *
 * Output: each failing cut (its way, the first lines of the recovery's
 * and order-ctl check's output), then a summary, then one line of key=value
 * counts for the test to read. A line of the recovery's with " applied N "
 * in it (op-recover prints "op-recover: applied N orders from ...") counts
 * N orders that the cut held only in the journal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "powertrace.h"

#define PAGE 4096u
#define SECTOR 512u
#define SECTORS (PAGE / SECTOR)
#define NONE SIZE_MAX
#define MAX_REBUILT 8
#define MAX_SIZED 8
/* The exit status of a check whose recovery failed (the check's are 0-2). */
#define RECOVERY_FAILED 120
#define MAX_JOBS 16
#define SHOW_LINES 6

_Static_assert(sizeof(struct pt_rec) == 32, "struct pt_rec has padding");

struct rec {
	uint8_t type, flags;
	uint32_t pid, tid;
	uint64_t off, len;
	const unsigned char *data;	/* len bytes: PT_WRITE */
	const char *name;		/* name_len bytes, no NUL */
	uint16_t name_len;
	int file;			/* index in files, or -1 */
	size_t pair;			/* W<->b, E->S; NONE */
	uint64_t len_at;		/* S: the file's length in the cache */
};

/* A page's pending writes: record indices in trace order, newer than the
 * page's floor. */
struct page {
	size_t *w;
	uint32_t n, cap;
	bool listed;			/* in its file's dirty list */
};

struct file {
	char name[256];
	bool rebuilt, built;
	unsigned char *dur;		/* the floor: each page's floor version */
	size_t cap;			/* bytes of dur, a multiple of PAGE */
	uint64_t dur_len;		/* length at the floor */
	uint64_t cur_len;		/* length in the page cache */
	struct page *pages;		/* cap / PAGE of them */
	size_t *dirty, n_dirty, dirty_cap;	/* pages with pending writes */
	size_t *truncs, n_truncs, truncs_cap;	/* pending lengthenings */
};

enum way { WAY_NONE, WAY_ALL, WAY_PREFIX, WAY_ANY, WAYS };

static const char *const way_names[WAYS] = { "none", "all", "prefix", "any" };

/* What one cut drew, for its report. */
struct cutinfo {
	size_t k;
	enum way way;
	size_t boundary;		/* WAY_PREFIX: the write partly landed */
	size_t pending, pages, torn, under_way;
	size_t required;
	char rebuilt[64];
};

struct job {
	pid_t pid;
	struct cutinfo ci;
	char dir[4096], ids[4200], out[4200];
};

static struct rec *recs;
static size_t n_recs;
static struct file *files;
static size_t n_files;
static const char *rebuilt_names[MAX_REBUILT];
static size_t n_rebuilt;
/* --sized: each name's length, zeros durable from the start. */
static char sized_names[MAX_SIZED][256];
static uint64_t sized_lens[MAX_SIZED];
static size_t n_sized;
static const char *order_ctl;
static const char *recover;
static const char *work;
static uint64_t seed;

/* Applied so far: records [0, done). */
static size_t done;
/* PT_WRITE_BEGIN records whose PT_WRITE has not been applied. */
static size_t *active, n_active, active_cap;
/* Acknowledged ids, seen[id] != 0 once one was. */
static unsigned char *seen;
static size_t seen_cap, n_required;

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("power-cut: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		die("out of memory (%zu bytes)", n);
	return q;
}

/* Append v to the array *a of *n items and *cap room. */
static void
push(size_t **a, size_t *n, size_t *cap, size_t v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		*a = xrealloc(*a, *cap * sizeof(**a));
	}
	(*a)[(*n)++] = v;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static void
sort_sizes(size_t *a, size_t n)
{
	if (n > 1)
		qsort(a, n, sizeof(*a), cmp_size);
}

/* splitmix64: one generator per cut, from the seed and the cut. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9u;
	z = (z ^ z >> 27) * 0x94d049bb133111ebu;
	return z ^ z >> 31;
}

static uint64_t
rng_below(uint64_t *s, uint64_t n)
{
	return n == 0 ? 0 : rng_next(s) % n;
}

static uint64_t
rng_for(uint64_t k)
{
	uint64_t s = seed ^ (k * 0xd1b54a32d192ed03u);

	rng_next(&s);
	return s;
}

/* ---------------------------------------------------------------- trace */

static int
file_index(const char *name, size_t len)
{
	for (size_t i = 0; i < n_files; i++)
		if (strlen(files[i].name) == len &&
		    memcmp(files[i].name, name, len) == 0)
			return (int)i;
	if (len == 0 || len >= sizeof(files[0].name))
		die("a traced file name of %zu bytes", len);
	files = xrealloc(files, (n_files + 1) * sizeof(*files));
	memset(&files[n_files], 0, sizeof(files[0]));
	memcpy(files[n_files].name, name, len);
	for (size_t i = 0; i < n_rebuilt; i++)
		if (strcmp(rebuilt_names[i], files[n_files].name) == 0)
			files[n_files].rebuilt = true;
	return (int)n_files++;
}

static void
parse(const unsigned char *buf, size_t size)
{
	size_t pos = 0, cap = 0;

	while (pos < size) {
		struct pt_rec h;
		struct rec *r;

		if (size - pos < sizeof(h))
			die("the trace ends in a torn record at byte %zu", pos);
		memcpy(&h, buf + pos, sizeof(h));
		if (h.magic != PT_MAGIC)
			die("record %zu at byte %zu: not a record (magic "
			    "0x%08" PRIx32 ")", n_recs, pos, h.magic);
		if (size - pos - sizeof(h) < (uint64_t)h.name_len + h.len)
			die("the trace ends in a torn record at byte %zu", pos);
		if (n_recs == cap) {
			cap = cap ? 2 * cap : 4096;
			recs = xrealloc(recs, cap * sizeof(*recs));
		}
		r = &recs[n_recs];
		*r = (struct rec){
			.type = h.type, .flags = h.flags, .pid = h.pid,
			.tid = h.tid,
			.off = h.off, .len = h.len,
			.name = (const char *)buf + pos + sizeof(h),
			.name_len = h.name_len,
			.data = buf + pos + sizeof(h) + h.name_len,
			.file = -1, .pair = NONE,
		};
		switch (h.type) {
		case PT_WRITE_BEGIN:
		case PT_WRITE:
		case PT_FLUSH_BEGIN:
		case PT_FLUSH_END:
		case PT_TRUNCATE:
		case PT_MAP:
			r->file = file_index(r->name, r->name_len);
			break;
		case PT_ACK:
		case PT_MARK:
			break;
		default:
			die("record %zu at byte %zu: unknown type 0x%02x",
			    n_recs, pos, h.type);
		}
		if (h.type == PT_WRITE && h.len > 0 && h.off + h.len < h.off)
			die("record %zu: a write past 2^64", n_recs);
		pos += sizeof(h) + h.name_len + h.len;
		n_recs++;
	}
}

/*
 * Pair each PT_WRITE with its PT_WRITE_BEGIN and each PT_FLUSH_END with its
 * PT_FLUSH_BEGIN: the open one of the same thread and file (a thread makes
 * one call at a time).
 */
static void
pair_records(void)
{
	size_t *open = NULL, n_open = 0, cap = 0;

	for (size_t i = 0; i < n_recs; i++) {
		struct rec *r = &recs[i];
		uint8_t want;

		if (r->type == PT_WRITE_BEGIN || r->type == PT_FLUSH_BEGIN) {
			push(&open, &n_open, &cap, i);
			continue;
		}
		if (r->type == PT_WRITE)
			want = PT_WRITE_BEGIN;
		else if (r->type == PT_FLUSH_END)
			want = PT_FLUSH_BEGIN;
		else
			continue;
		for (size_t j = n_open; j-- > 0;) {
			struct rec *o = &recs[open[j]];

			if (o->type == want && o->pid == r->pid &&
			    o->tid == r->tid && o->file == r->file) {
				r->pair = open[j];
				o->pair = i;
				open[j] = open[--n_open];
				break;
			}
		}
	}
	free(open);
}

/* ---------------------------------------------------------------- state */

static void
grow(struct file *f, uint64_t len)
{
	size_t cap = f->cap;

	if (len <= cap)
		return;
	if (len > (uint64_t)1 << 40)
		die("%s: a file of %" PRIu64 " bytes", f->name, len);
	while (cap < len)
		cap = cap ? 2 * cap : 64 * PAGE;
	f->dur = xrealloc(f->dur, cap);
	memset(f->dur + f->cap, 0, cap - f->cap);
	f->pages = xrealloc(f->pages, cap / PAGE * sizeof(*f->pages));
	memset(f->pages + f->cap / PAGE, 0,
	    (cap - f->cap) / PAGE * sizeof(*f->pages));
	f->cap = cap;
}

/* Write w's bytes that fall in page p into buf (that page's PAGE bytes). */
static void
apply(unsigned char *buf, const struct rec *w, size_t p)
{
	uint64_t lo = (uint64_t)p * PAGE, hi = lo + PAGE;
	uint64_t a = w->off > lo ? w->off : lo;
	uint64_t b = w->off + w->len < hi ? w->off + w->len : hi;

	if (a < b)
		memcpy(buf + (a - lo), w->data + (a - w->off), b - a);
}

/* How far in page p the writes w[0..k) reach: an end offset, or 0. */
static uint64_t
reach(const struct page *pg, uint32_t k, size_t p)
{
	uint64_t end = 0, hi = ((uint64_t)p + 1) * PAGE;

	for (uint32_t i = 0; i < k; i++) {
		const struct rec *w = &recs[pg->w[i]];
		uint64_t e = w->off + w->len < hi ? w->off + w->len : hi;

		if (e > end)
			end = e;
	}
	return end;
}

static void
page_push(struct file *f, size_t p, size_t w)
{
	struct page *pg = &f->pages[p];

	if (pg->n == pg->cap) {
		pg->cap = pg->cap ? 2 * pg->cap : 4;
		pg->w = xrealloc(pg->w, pg->cap * sizeof(*pg->w));
	}
	pg->w[pg->n++] = w;
	if (!pg->listed) {
		pg->listed = true;
		push(&f->dirty, &f->n_dirty, &f->dirty_cap, p);
	}
}

/* A write enters the page cache: a pending version of each of its pages. */
static void
pend(struct file *f, size_t w)
{
	const struct rec *r = &recs[w];

	grow(f, r->off + r->len);
	for (size_t p = r->off / PAGE; p < (r->off + r->len + PAGE - 1) / PAGE;
	    p++)
		page_push(f, p, w);
}

/* Move page p's pending writes before record `before` onto its floor. */
static void
settle_page(struct file *f, size_t p, size_t before)
{
	struct page *pg = &f->pages[p];
	uint32_t k = 0;

	while (k < pg->n && pg->w[k] < before) {
		apply(f->dur + (size_t)p * PAGE, &recs[pg->w[k]], p);
		k++;
	}
	memmove(pg->w, pg->w + k, (pg->n - k) * sizeof(*pg->w));
	pg->n -= k;
}

/* A flush that began at record s ended: what was written before s is
 * on the disk. */
static void
settle_flush(struct file *f, size_t s)
{
	size_t kept = 0;

	for (size_t i = 0; i < f->n_dirty; i++) {
		size_t p = f->dirty[i];

		settle_page(f, p, s);
		if (f->pages[p].n > 0)
			f->dirty[kept++] = p;
		else
			f->pages[p].listed = false;
	}
	f->n_dirty = kept;
	if (recs[s].len_at > f->dur_len)
		f->dur_len = recs[s].len_at;
	kept = 0;
	for (size_t i = 0; i < f->n_truncs; i++)
		if (f->truncs[i] >= s)
			f->truncs[kept++] = f->truncs[i];
	f->n_truncs = kept;
}

/* A write durable when it returned: its pages are on the disk. */
static void
settle_sync(struct file *f, size_t w)
{
	const struct rec *r = &recs[w];

	for (size_t p = r->off / PAGE; p < (r->off + r->len + PAGE - 1) / PAGE;
	    p++)
		settle_page(f, p, w + 1);
	if (r->off + r->len > f->dur_len)
		f->dur_len = r->off + r->len;
}

static void
active_remove(size_t b)
{
	for (size_t i = 0; i < n_active; i++)
		if (active[i] == b) {
			active[i] = active[--n_active];
			return;
		}
}

static void
ack(const struct rec *r)
{
	if (r->off >= (uint64_t)1 << 32)
		die("an acknowledged order id %" PRIu64, r->off);
	if (r->off >= seen_cap) {
		size_t cap = seen_cap ? seen_cap : 4096;

		while (cap <= r->off)
			cap *= 2;
		seen = xrealloc(seen, cap);
		memset(seen + seen_cap, 0, cap - seen_cap);
		seen_cap = cap;
	}
	if (!seen[r->off]) {
		seen[r->off] = 1;
		n_required++;
	}
}

/* Apply records [done, k). */
static void
advance(size_t k)
{
	for (; done < k; done++) {
		struct rec *r = &recs[done];
		struct file *f = r->file >= 0 ? &files[r->file] : NULL;

		switch (r->type) {
		case PT_WRITE_BEGIN:
			if (r->pair != NONE && f->built)
				push(&active, &n_active, &active_cap, done);
			break;
		case PT_WRITE:
			if (r->pair != NONE)
				active_remove(r->pair);
			if ((r->flags & PT_F_FAILED) || r->len == 0)
				break;
			if (r->off + r->len > f->cur_len)
				f->cur_len = r->off + r->len;
			if (!f->built)
				break;
			pend(f, done);
			if (r->flags & PT_F_SYNC)
				settle_sync(f, done);
			break;
		case PT_FLUSH_BEGIN:
			r->len_at = f->cur_len;
			break;
		case PT_FLUSH_END:
			if (!(r->flags & PT_F_FAILED) && r->pair != NONE &&
			    f->built)
				settle_flush(f, r->pair);
			break;
		case PT_TRUNCATE:
			if (f->built && r->off < f->cur_len)
				die("record %zu: %s truncated from %" PRIu64
				    " to %" PRIu64 " bytes: shortening is not "
				    "modelled", done, f->name, f->cur_len,
				    r->off);
			if (f->built && r->off > f->cur_len) {
				grow(f, r->off);
				push(&f->truncs, &f->n_truncs,
				    &f->truncs_cap, done);
			}
			f->cur_len = r->off;
			break;
		case PT_ACK:
			ack(r);
			break;
		default:
			break;
		}
	}
}

/* ---------------------------------------------------------------- a cut */

/* One page's draw: sectors in mask take version kb, the others ka. */
struct draw {
	size_t p;
	uint32_t ka, kb;
	unsigned mask;
};

static void
version(const struct file *f, size_t p, uint32_t k, unsigned char *buf)
{
	const struct page *pg = &f->pages[p];

	memcpy(buf, f->dur + p * PAGE, PAGE);
	for (uint32_t i = 0; i < k; i++)
		apply(buf, &recs[pg->w[i]], p);
}

static unsigned
tear_mask(uint64_t *rs)
{
	unsigned m;

	do
		m = (unsigned)rng_below(rs, 1u << SECTORS);
	while (m == 0 || m == (1u << SECTORS) - 1);
	return m;
}

static void
write_all(int fd, const void *buf, size_t n, uint64_t off, const char *path)
{
	const unsigned char *p = buf;

	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w <= 0)
			die("%s: %s", path, w < 0 ? strerror(errno) : "short");
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
}

/* Draw the versions of f's pages for this cut and write the file. */
static void
build_file(struct file *f, const char *path, struct cutinfo *ci,
    uint64_t *rs, size_t boundary)
{
	static struct draw *draws;
	static size_t draws_cap;
	static size_t *pages;
	static size_t pages_cap;
	unsigned char a[PAGE], b[PAGE];
	size_t n_pages = 0, n_draws = 0;
	uint64_t len = f->dur_len;
	int fd;

	/* The dirty pages in order, so that a cut draws the same whatever
	 * cuts came before it. */
	if (pages_cap < f->n_dirty) {
		pages_cap = f->n_dirty;
		pages = xrealloc(pages, pages_cap * sizeof(*pages));
	}
	for (size_t i = 0; i < f->n_dirty; i++)
		if (f->pages[f->dirty[i]].n > 0)
			pages[n_pages++] = f->dirty[i];
	sort_sizes(pages, n_pages);
	if (draws_cap < n_pages) {
		draws_cap = n_pages;
		draws = xrealloc(draws, draws_cap * sizeof(*draws));
	}
	for (size_t i = 0; i < n_pages; i++) {
		const struct page *pg = &f->pages[pages[i]];
		struct draw d = { .p = pages[i] };
		uint32_t k = 0, other;

		switch (ci->way) {
		case WAY_NONE:
		case WAYS:
			break;
		case WAY_ALL:
			k = pg->n;
			if (rng_below(rs, 16) == 0) {
				d.ka = k - 1;
				d.kb = k;
				d.mask = tear_mask(rs);
			}
			break;
		case WAY_PREFIX:
			while (k < pg->n && pg->w[k] < boundary)
				k++;
			if (k < pg->n && pg->w[k] == boundary) {
				switch (rng_below(rs, 4)) {
				case 0:
				case 1:
					k++;
					break;
				case 2:
					d.ka = k;
					d.kb = k + 1;
					d.mask = tear_mask(rs);
					break;
				default:
					break;
				}
			}
			break;
		case WAY_ANY:
			k = (uint32_t)rng_below(rs, pg->n + 1);
			if (rng_below(rs, 8) == 0) {
				other = (uint32_t)rng_below(rs, pg->n);
				if (other >= k)
					other++;
				d.ka = k < other ? k : other;
				d.kb = k < other ? other : k;
				d.mask = tear_mask(rs);
			}
			break;
		}
		if (d.mask == 0)
			d.ka = d.kb = k;
		else
			ci->torn++;
		if (d.kb > 0) {
			uint64_t e = reach(pg, d.kb, d.p);

			if (e > len)
				len = e;
			draws[n_draws++] = d;
		}
		ci->pages++;
	}
	for (size_t i = 0; i < f->n_truncs; i++) {
		const struct rec *t = &recs[f->truncs[i]];
		bool landed = ci->way == WAY_ALL ||
		    (ci->way == WAY_PREFIX && f->truncs[i] < boundary) ||
		    (ci->way == WAY_ANY && rng_below(rs, 2) == 0);

		if (landed && t->off > len)
			len = t->off;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	if (f->cap > 0)
		write_all(fd, f->dur, len < f->cap ? len : f->cap, 0, path);
	for (size_t i = 0; i < n_draws; i++) {
		const struct draw *d = &draws[i];
		uint64_t lo = (uint64_t)d->p * PAGE;

		version(f, d->p, d->ka, a);
		if (d->mask != 0) {
			version(f, d->p, d->kb, b);
			for (unsigned s = 0; s < SECTORS; s++)
				if (d->mask & 1u << s)
					memcpy(a + s * SECTOR, b + s * SECTOR,
					    SECTOR);
		}
		if (lo < len)
			write_all(fd, a, len - lo < PAGE ? len - lo : PAGE, lo,
			    path);
	}
	if (ftruncate(fd, (off_t)len) != 0)
		die("%s: %s", path, strerror(errno));
	close(fd);
}

/* A file the program rebuilds at its first open: absent, zeros or
 * garbage. */
static void
build_rebuilt(const struct file *f, const char *path, struct cutinfo *ci,
    uint64_t *rs)
{
	static const char *const how[] = { "absent", "zeros", "garbage" };
	unsigned which = (unsigned)rng_below(rs, 3);
	unsigned char buf[PAGE];
	int fd;

	snprintf(ci->rebuilt + strlen(ci->rebuilt),
	    sizeof(ci->rebuilt) - strlen(ci->rebuilt), "%s%s %s",
	    ci->rebuilt[0] ? ", " : "", f->name, how[which]);
	if (which == 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)f->cur_len) != 0)
		die("%s: %s", path, strerror(errno));
	for (uint64_t off = 0; which == 2 && off < f->cur_len; off += PAGE) {
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t v = rng_next(rs);

			memcpy(buf + i, &v, 8);
		}
		write_all(fd, buf, f->cur_len - off < PAGE ? f->cur_len - off
		    : PAGE, off, path);
	}
	close(fd);
}

/* The record of a pending write drawn for WAY_PREFIX, or NONE. */
static size_t
draw_boundary(uint64_t *rs, size_t *n_pending)
{
	size_t *all = NULL, n = 0, cap = 0, b = NONE;

	for (size_t i = 0; i < n_files; i++) {
		const struct file *f = &files[i];

		for (size_t j = 0; f->built && j < f->n_dirty; j++) {
			const struct page *pg = &f->pages[f->dirty[j]];

			for (uint32_t k = 0; k < pg->n; k++)
				push(&all, &n, &cap, pg->w[k]);
		}
	}
	sort_sizes(all, n);
	if (n > 0) {
		size_t u = 1;

		for (size_t i = 1; i < n; i++)
			if (all[i] != all[u - 1])
				all[u++] = all[i];
		n = u;
		b = all[rng_below(rs, n)];
	}
	*n_pending = n;
	free(all);
	return b;
}

/* Build cut k (after advance(k)) into j->dir, and the ids it requires. */
static void
build_cut(size_t k, struct job *j)
{
	struct cutinfo *ci = &j->ci;
	uint64_t rs = rng_for(k);
	size_t *under = NULL, n_under;
	unsigned way;
	FILE *ids;

	memset(ci, 0, sizeof(*ci));
	ci->k = k;
	ci->required = n_required;
	snprintf(j->dir, sizeof(j->dir), "%s/cut-%zu", work, k);
	snprintf(j->ids, sizeof(j->ids), "%s.ids", j->dir);
	snprintf(j->out, sizeof(j->out), "%s.out", j->dir);
	if (mkdir(j->dir, 0700) != 0)
		die("%s: %s", j->dir, strerror(errno));

	/* Writes under way: pending, after every write that returned. */
	n_under = n_active;
	under = xrealloc(NULL, n_under * sizeof(*under));
	for (size_t i = 0; i < n_under; i++)
		under[i] = recs[active[i]].pair;
	sort_sizes(under, n_under);
	for (size_t i = 0; i < n_under; i++) {
		const struct rec *w = &recs[under[i]];

		if (!(w->flags & PT_F_FAILED) && w->len > 0) {
			pend(&files[w->file], under[i]);
			ci->under_way++;
		}
	}

	way = (unsigned)rng_below(&rs, 100);
	ci->way = way < 15 ? WAY_NONE : way < 30 ? WAY_ALL : way < 65 ?
	    WAY_PREFIX : WAY_ANY;
	ci->boundary = draw_boundary(&rs, &ci->pending);
	if (ci->pending == 0)
		ci->way = WAY_NONE;
	for (size_t i = 0; i < n_files; i++) {
		char path[4400];

		snprintf(path, sizeof(path), "%s/%s", j->dir, files[i].name);
		if (files[i].rebuilt)
			build_rebuilt(&files[i], path, ci, &rs);
		else
			build_file(&files[i], path, ci, &rs, ci->boundary);
	}

	/* Take the writes under way back out: each is the last version of
	 * its pages. */
	for (size_t i = n_under; i-- > 0;) {
		const struct rec *w = &recs[under[i]];
		struct file *f = &files[w->file];

		if ((w->flags & PT_F_FAILED) || w->len == 0)
			continue;
		for (size_t p = w->off / PAGE;
		    p < (w->off + w->len + PAGE - 1) / PAGE; p++)
			f->pages[p].n--;
	}
	free(under);

	ids = fopen(j->ids, "w");
	if (ids == NULL)
		die("%s: %s", j->ids, strerror(errno));
	for (size_t i = 0; i < k; i++)
		if (recs[i].type == PT_ACK)
			fprintf(ids, "ORD%" PRIu64 "%s%.*s\n", recs[i].off,
			    recs[i].name_len ? " " : "", (int)recs[i].name_len,
			    recs[i].name);
	if (fclose(ids) != 0)
		die("%s: %s", j->ids, strerror(errno));
}

/* ---------------------------------------------------------------- checks */

static void
remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4400];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/*
 * In the check's process, its output already in the job's file: run the
 * recovery on the cut's directory and wait for it. On failure, say so in
 * that file and end the check with RECOVERY_FAILED.
 */
static void
run_recovery(const struct job *j)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		printf("power-cut: fork: %s\n", strerror(errno));
		fflush(stdout);
		_exit(RECOVERY_FAILED);
	}
	if (pid == 0) {
		execl(recover, recover, j->dir, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", recover, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			printf("power-cut: waitpid: %s\n", strerror(errno));
			fflush(stdout);
			_exit(RECOVERY_FAILED);
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	if (WIFEXITED(status))
		printf("power-cut: %s exited %d\n", recover,
		    WEXITSTATUS(status));
	else
		printf("power-cut: %s killed by signal %d\n", recover,
		    WTERMSIG(status));
	fflush(stdout);
	_exit(RECOVERY_FAILED);
}

static void
start_check(struct job *j)
{
	int fd = open(j->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		die("%s: %s", j->out, strerror(errno));
	fflush(stdout);
	j->pid = fork();
	if (j->pid < 0)
		die("fork: %s", strerror(errno));
	if (j->pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (recover != NULL)
			run_recovery(j);
		execl(order_ctl, order_ctl, "-c", "/dev/null", "-D", j->dir,
		    "check", "--expect-ids", j->ids, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", order_ctl, strerror(errno));
		_exit(127);
	}
	close(fd);
}

struct totals {
	size_t cuts, failures, lost_cuts, other, kept, keep;
	uint64_t lost_orders;
	size_t recovered_cuts;		/* the recovery applied orders */
	uint64_t recovered_orders;
	size_t ways[WAYS], torn, under_way;
	size_t *required;
};

/* Judge a finished check: its exit status, order-ctl check's lines. */
static void
finish_check(struct job *j, int status, struct totals *t)
{
	FILE *f = fopen(j->out, "r");
	char line[1024], shown[SHOW_LINES][1024];
	size_t lost = 0, n_shown = 0;
	uint64_t recovered = 0;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	bool counted = recover == NULL;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *applied = strstr(line, " applied ");
		unsigned long long n;

		/* The recovery's output comes first. */
		if (!counted && applied != NULL &&
		    sscanf(applied, " applied %llu ", &n) == 1) {
			recovered = n;
			counted = true;
		}
		/* "ORD7 was acknowledged but does not exist", "... as
		 * Cancelled but is Pending": an answer the cut undid. */
		if (strstr(line, " was acknowledged "))
			lost++;
		if (n_shown < SHOW_LINES)
			snprintf(shown[n_shown++], sizeof(shown[0]), "%s",
			    line);
	}
	if (f != NULL)
		fclose(f);
	t->cuts++;
	t->ways[j->ci.way]++;
	t->torn += j->ci.torn;
	t->under_way += j->ci.under_way > 0;
	t->required[t->cuts - 1] = j->ci.required;
	t->recovered_cuts += recovered > 0;
	t->recovered_orders += recovered;
	if (ok) {
		remove_tree(j->dir);
		unlink(j->ids);
		unlink(j->out);
		return;
	}
	t->failures++;
	if (lost > 0) {
		t->lost_cuts++;
		t->lost_orders += lost;
	} else {
		t->other++;
	}
	printf("power-cut: FAIL cut %zu of %zu: %s", j->ci.k, n_recs,
	    way_names[j->ci.way]);
	if (j->ci.way == WAY_PREFIX)
		printf(" (writes before record %zu)", j->ci.boundary);
	printf(", %zu pending writes over %zu pages, %zu torn, %zu under "
	    "way; %s; %zu orders required, %zu lost; order-ctl check ",
	    j->ci.pending, j->ci.pages, j->ci.torn, j->ci.under_way,
	    j->ci.rebuilt[0] ? j->ci.rebuilt : "nothing rebuilt",
	    j->ci.required, lost);
	if (WIFEXITED(status) && WEXITSTATUS(status) == RECOVERY_FAILED)
		printf("not run, the recovery failed:\n");
	else if (WIFEXITED(status))
		printf("exit %d:\n", WEXITSTATUS(status));
	else
		printf("killed by signal %d:\n", WTERMSIG(status));
	for (size_t i = 0; i < n_shown; i++)
		printf("    %s%s", shown[i],
		    shown[i][strlen(shown[i]) - 1] == '\n' ? "" : "\n");
	if (t->kept < t->keep) {
		t->kept++;
		printf("power-cut: kept %s (ids: %s, order-ctl check: %s); replay: "
		    "power-cut TRACE --seed %" PRIu64 " --cut %zu ...\n",
		    j->dir, j->ids, j->out, seed, j->ci.k);
	} else {
		remove_tree(j->dir);
		unlink(j->ids);
		unlink(j->out);
	}
}

/* ---------------------------------------------------------------- cuts */

static size_t
mark_index(const char *label)
{
	for (size_t i = 0; i < n_recs; i++)
		if (recs[i].type == PT_MARK &&
		    recs[i].name_len == strlen(label) &&
		    memcmp(recs[i].name, label, recs[i].name_len) == 0)
			return i + 1;
	die("the trace has no mark %s", label);
}

/* The flush boundaries in [from, n_recs], at most max of them, spread. */
static size_t
boundaries(size_t from, size_t max, size_t **out, size_t *n_out,
    size_t *cap)
{
	size_t *all = NULL, n = 0, all_cap = 0, u = 0;

	for (size_t i = from; i < n_recs; i++) {
		const struct rec *r = &recs[i];

		if (r->file < 0 || !files[r->file].built)
			continue;
		if (r->type == PT_FLUSH_BEGIN) {
			push(&all, &n, &all_cap, i);
		} else if (r->type == PT_FLUSH_END ||
		    (r->type == PT_WRITE && (r->flags & PT_F_SYNC))) {
			push(&all, &n, &all_cap, i);
			push(&all, &n, &all_cap, i + 1);
		}
	}
	sort_sizes(all, n);
	for (size_t i = 0; i < n; i++)
		if (u == 0 || all[i] != all[u - 1])
			all[u++] = all[i];
	for (size_t i = 0; i < (u < max ? u : max); i++)
		push(out, n_out, cap, all[u <= max ? i : i * u / max]);
	free(all);
	return u;
}

/* Free what main and the state hold (for LeakSanitizer's sake). */
static void
free_all(void)
{
	for (size_t i = 0; i < n_files; i++) {
		struct file *f = &files[i];

		for (size_t p = 0; p < f->cap / PAGE; p++)
			free(f->pages[p].w);
		free(f->pages);
		free(f->dur);
		free(f->dirty);
		free(f->truncs);
	}
	free(files);
	free(recs);
	free(active);
	free(seen);
}

static uint64_t
number(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] < '0' || s[0] > '9')
		die("%s: not a number: %s", opt, s);
	return v;
}

static void
usage(FILE *f)
{
	fputs("usage: power-cut TRACE --order-ctl PATH --work DIR "
	    "[--recover PATH]\n"
	    "                 [--rebuilt NAME]... [--sized NAME=BYTES]...\n"
	    "                 [--from-mark LABEL] [--boundaries N] "
	    "[--random N] [--cut K]...\n"
	    "                 [--seed S] [--jobs N] [--keep N]\n"
	    "Builds what a power cut at each chosen point of TRACE could "
	    "leave in the data\ndirectory, runs the recovery on it if one is "
	    "given, then order-ctl's check,\nwith the orders acknowledged "
	    "before the cut.\nExit 0 if every cut passed, 1 if one failed, 2 "
	    "on a usage or trace error.\n", f);
}

int
main(int argc, char **argv)
{
	const char *trace = NULL, *mark = NULL;
	size_t max_bounds = 300, n_random = 100, n_jobs = 2;
	size_t *cuts = NULL, n_cuts = 0, cuts_cap = 0, n_bounds = 0;
	size_t all_bounds = 0, from = 0, running = 0, writes = 0, syncs = 0;
	size_t flushes = 0, acks = 0, u = 0;
	uint64_t write_bytes = 0;
	bool explicit = false, seeded = false;
	static struct job jobs[MAX_JOBS];
	struct totals t = { .keep = 3 };
	struct stat st;
	unsigned char *map;
	int fd;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (a[0] != '-') {
			if (trace != NULL) {
				usage(stderr);
				return 2;
			}
			trace = a;
			continue;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		i++;
		if (strcmp(a, "--order-ctl") == 0)
			order_ctl = v;
		else if (strcmp(a, "--work") == 0)
			work = v;
		else if (strcmp(a, "--recover") == 0)
			recover = v;
		else if (strcmp(a, "--rebuilt") == 0 && n_rebuilt < MAX_REBUILT)
			rebuilt_names[n_rebuilt++] = v;
		else if (strcmp(a, "--sized") == 0 && n_sized < MAX_SIZED) {
			const char *eq = strchr(v, '=');

			if (eq == NULL || eq == v ||
			    (size_t)(eq - v) >= sizeof(sized_names[0]))
				die("--sized: not NAME=BYTES: %s", v);
			memcpy(sized_names[n_sized], v, (size_t)(eq - v));
			sized_names[n_sized][eq - v] = '\0';
			sized_lens[n_sized++] = number(a, eq + 1);
		} else if (strcmp(a, "--from-mark") == 0)
			mark = v;
		else if (strcmp(a, "--boundaries") == 0)
			max_bounds = number(a, v);
		else if (strcmp(a, "--random") == 0)
			n_random = number(a, v);
		else if (strcmp(a, "--cut") == 0) {
			push(&cuts, &n_cuts, &cuts_cap, number(a, v));
			explicit = true;
		} else if (strcmp(a, "--seed") == 0) {
			seed = number(a, v);
			seeded = true;
		} else if (strcmp(a, "--jobs") == 0)
			n_jobs = number(a, v);
		else if (strcmp(a, "--keep") == 0)
			t.keep = number(a, v);
		else {
			usage(stderr);
			return 2;
		}
	}
	if (trace == NULL || order_ctl == NULL || work == NULL || n_jobs == 0 ||
	    n_jobs > MAX_JOBS) {
		usage(stderr);
		return 2;
	}
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^
		    (uint64_t)getpid();
		seed %= 1000000000000u;
	}
	printf("power-cut: seed %" PRIu64 "\n", seed);

	fd = open(trace, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		die("%s: %s", trace, strerror(errno));
	map = st.st_size == 0 ? NULL : mmap(NULL, (size_t)st.st_size,
	    PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		die("%s: %s", trace, strerror(errno));
	close(fd);
	/* The --sized files first: they exist even if the trace never
	 * names them. */
	for (size_t i = 0; i < n_sized; i++)
		if (file_index(sized_names[i], strlen(sized_names[i])) !=
		    (int)i)
			die("--sized %s given twice", sized_names[i]);
	parse(map, (size_t)st.st_size);
	pair_records();
	for (size_t i = 0; i < n_files; i++)
		files[i].built = !files[i].rebuilt;
	for (size_t i = 0; i < n_sized; i++) {
		struct file *f = &files[i];

		if (f->rebuilt)
			die("%s is both --sized and --rebuilt", f->name);
		/* grow fills with zeros: the floor of every page. */
		grow(f, sized_lens[i]);
		f->dur_len = f->cur_len = sized_lens[i];
	}
	for (size_t i = 0; i < n_recs; i++) {
		const struct rec *r = &recs[i];

		if (r->type == PT_MAP && !files[r->file].rebuilt)
			die("record %zu: %s was mapped shared and writable: "
			    "its writes are not in the trace (name it with "
			    "--rebuilt if the program rebuilds it)", i,
			    files[r->file].name);
		if (r->type == PT_WRITE && !(r->flags & PT_F_FAILED)) {
			writes++;
			write_bytes += r->len;
			syncs += (r->flags & PT_F_SYNC) != 0;
		}
		flushes += r->type == PT_FLUSH_END &&
		    !(r->flags & PT_F_FAILED);
		acks += r->type == PT_ACK;
	}

	if (mark != NULL)
		from = mark_index(mark);
	if (!explicit) {
		uint64_t rs = rng_for(UINT64_MAX);

		all_bounds = boundaries(from, max_bounds, &cuts, &n_cuts,
		    &cuts_cap);
		n_bounds = n_cuts;
		/* And the end: power lost once the trace was complete. */
		push(&cuts, &n_cuts, &cuts_cap, n_recs);
		for (size_t i = 0; i < n_random; i++)
			push(&cuts, &n_cuts, &cuts_cap,
			    from + rng_below(&rs, n_recs - from + 1));
	}
	sort_sizes(cuts, n_cuts);
	for (size_t i = 0; i < n_cuts; i++)
		if (cuts[i] <= n_recs && (u == 0 || cuts[i] != cuts[u - 1]))
			cuts[u++] = cuts[i];
	n_cuts = u;
	t.required = xrealloc(NULL, (n_cuts + 1) * sizeof(*t.required));

	for (size_t c = 0; c < n_cuts || running > 0;) {
		size_t slot = 0;

		if (c < n_cuts && running < n_jobs) {
			while (jobs[slot].pid != 0)
				slot++;
			advance(cuts[c]);
			build_cut(cuts[c], &jobs[slot]);
			start_check(&jobs[slot]);
			running++;
			c++;
			continue;
		}
		int status;
		pid_t pid = waitpid(-1, &status, 0);

		if (pid < 0)
			die("waitpid: %s", strerror(errno));
		for (slot = 0; slot < n_jobs; slot++)
			if (jobs[slot].pid == pid)
				break;
		if (slot == n_jobs)
			continue;
		finish_check(&jobs[slot], status, &t);
		jobs[slot].pid = 0;
		running--;
	}

	sort_sizes(t.required, t.cuts);
	printf("power-cut: %zu records: %zu writes (%" PRIu64 " bytes, %zu "
	    "durable on return), %zu flushes, %zu acknowledgements\n", n_recs,
	    writes, write_bytes, syncs, flushes, acks);
	if (explicit)
		printf("power-cut: %zu cuts checked (those named with --cut)",
		    t.cuts);
	else
		printf("power-cut: %zu cuts checked (%zu at flush boundaries, "
		    "of %zu; the rest at random)", t.cuts, n_bounds,
		    all_bounds);
	printf(": none %zu, all %zu, prefix %zu, any %zu; %zu torn pages; "
	    "%zu cuts with a write under way\n", t.ways[WAY_NONE],
	    t.ways[WAY_ALL], t.ways[WAY_PREFIX], t.ways[WAY_ANY], t.torn,
	    t.under_way);
	printf("power-cut: orders required per cut: min %zu, median %zu, "
	    "max %zu\n", t.cuts ? t.required[0] : 0,
	    t.cuts ? t.required[t.cuts / 2] : 0,
	    t.cuts ? t.required[t.cuts - 1] : 0);
	if (recover != NULL)
		printf("power-cut: the recovery applied orders at %zu cuts "
		    "(%" PRIu64 " orders in all)\n", t.recovered_cuts,
		    t.recovered_orders);
	printf("power-cut: %zu failures: %zu with acknowledged orders lost "
	    "(%" PRIu64 " in all: missing, or not in the status answered), "
	    "%zu other\n", t.failures, t.lost_cuts,
	    t.lost_orders, t.other);
	printf("power-cut: seed=%" PRIu64 " records=%zu writes=%zu "
	    "sync_writes=%zu flushes=%zu acks=%zu cuts=%zu boundary_cuts=%zu "
	    "boundaries=%zu torn=%zu required_min=%zu required_median=%zu "
	    "required_max=%zu recovered_cuts=%zu recovered_orders=%" PRIu64
	    " failures=%zu lost_cuts=%zu lost_orders=%" PRIu64
	    " other_failures=%zu\n", seed, n_recs, writes, syncs, flushes,
	    acks, t.cuts, n_bounds, all_bounds, t.torn,
	    t.cuts ? t.required[0] : 0, t.cuts ? t.required[t.cuts / 2] : 0,
	    t.cuts ? t.required[t.cuts - 1] : 0, t.recovered_cuts,
	    t.recovered_orders, t.failures, t.lost_cuts, t.lost_orders,
	    t.other);
	free(t.required);
	free(cuts);
	free_all();
	if (map != NULL)
		munmap(map, (size_t)st.st_size);
	return t.failures == 0 ? 0 : 1;
}
