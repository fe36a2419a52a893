#include "store.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/*
 * The order record, little-endian:
 *   0  u8  record version (RECORD_VERSION)
 *   1  u8  status
 *   2  u16 reserved, 0
 *   4  u32 attempts
 *   8  u64 user_id
 *  16  i64 total_cents
 *  24  i64 created_ms
 *  32  i64 updated_ms
 *  40  i64 completed_ms (0: none)
 *  48  i64 lease_until_ms
 *  56  u32 n_items
 *  60  u32 reserved, 0
 *  64  u64 items[n_items]
 * If you change the layout, bump RECORD_VERSION and teach record_decode
 * the old one. If you add a database or change one's meaning (store.h):
 *   1. bump STORE_SCHEMA_VERSION;
 *   2. keep every index in step where orders change: create_one for new
 *      orders, transition_one for every change of status (no other code
 *      writes an order);
 *   3. teach schema_upgrade to bring an environment of the previous
 *      version up to the new one: it runs inside schema_init's write
 *      transaction, so an upgrade is all or nothing, and
 *      store_upgraded_from tells the caller, who logs it;
 *   4. teach tests/check/op-check.c the new layout (it is written apart
 *      from this file, to check it).
 * An environment of a newer version than this code is refused.
 */
#define RECORD_VERSION 1
#define RECORD_HEADER 64

#define STORE_MAX_READERS 1024
#define STORE_OPEN_TRIES 20
#define STATUS_KEY_LEN 9
#define USER_STATUS_KEY_LEN 17

struct reader {
	struct reader *next;
	MDB_txn *txn;
};

struct store {
	MDB_env *env;
	MDB_dbi meta, orders, by_status, by_user_status, idem, idem_time;
	unsigned upgraded_from;	/* schema version before this open, or 0 */
	int64_t idem_ttl_ms;
	unsigned generation;
	pthread_mutex_t readers_lock;
	struct reader *readers;	/* every thread's cached read txn */
	/*
	 * Held shared by every transaction of this process, exclusively to
	 * adopt a map that another process grew (MDB_MAP_RESIZED):
	 * mdb_env_set_mapsize remaps, which no transaction may live through.
	 */
	pthread_rwlock_t map_lock;
	/* 0, or the error that left the environment unusable (store_fatal). */
	atomic_int broken;
};

/* Each thread's read transaction, reset between uses and renewed. */
static _Thread_local struct {
	unsigned generation;
	MDB_txn *txn;
} tls_reader;
static atomic_uint store_generations = 1;

static const char key_schema[] = "schema_version";
static const char key_next_id[] = "next_id";
static const char key_counters[] = "counters";
static const char key_heartbeat[] = "heartbeat";
static const char key_hist[] = "processing_hist";
static const char key_journal_lsn[] = "journal_lsn";

const char *
store_strerror(int err)
{
	switch (err) {
	case STORE_ENOTFOUND:
		return "no such order";
	case STORE_ECONFLICT:
		return "the order is not in the required state";
	case STORE_EFULL:
		return "the LMDB map is full (raise --map-size and restart)";
	case STORE_EDISKFULL:
		return "the disk holding the data directory is full";
	case STORE_ESCHEMA:
		return "the environment has another schema version";
	case STORE_ECORRUPT:
		return "a stored record does not decode";
	default:
		return mdb_strerror(err);
	}
}

bool
store_fatal(int err)
{
	/*
	 * MDB_PANIC: a write of the meta page failed and LMDB marked the
	 * environment fatal. The other two come from a data file that is not
	 * (or is no longer) an LMDB file of this version. Not MDB_CORRUPTED:
	 * a damaged page stays damaged when the environment is opened again,
	 * and it costs only the reads that reach it, not the whole store.
	 */
	return err == MDB_PANIC || err == MDB_VERSION_MISMATCH ||
	    err == MDB_INVALID;
}

int
store_broken(struct store *s)
{
	return atomic_load(&s->broken);
}

/* Pass err on, remembering the first one that leaves the store unusable. */
static int
note_error(struct store *s, int err)
{
	int none = 0;

	if (store_fatal(err))
		atomic_compare_exchange_strong(&s->broken, &none, err);
	return err;
}

static MDB_val
mkval(const void *data, size_t size)
{
	return (MDB_val){ .mv_size = size, .mv_data = (void *)data };
}

static void
put_u64be(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t
get_u64be(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static void
put_u64le(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t
get_u64le(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void
put_u32le(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t
get_u32le(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void
status_key(unsigned char key[STATUS_KEY_LEN], enum order_status status,
    uint64_t id)
{
	key[0] = (unsigned char)status;
	put_u64be(key + 1, id);
}

static void
user_status_key(unsigned char key[USER_STATUS_KEY_LEN], uint64_t user_id,
    enum order_status status, uint64_t id)
{
	put_u64be(key, user_id);
	key[8] = (unsigned char)status;
	put_u64be(key + 9, id);
}

/* The record's fixed part; the items stay where they are. */
struct record_head {
	enum order_status status;
	uint32_t attempts;
	int64_t created_ms, updated_ms, completed_ms, lease_until_ms;
	uint64_t user_id;
	int64_t total_cents;
	uint32_t n_items;
};

static int
record_head_decode(const MDB_val *v, struct record_head *h)
{
	const unsigned char *p = v->mv_data;

	if (v->mv_size < RECORD_HEADER || p[0] != RECORD_VERSION ||
	    p[1] >= ORDER_STATUS_COUNT)
		return STORE_ECORRUPT;
	h->status = (enum order_status)p[1];
	h->attempts = get_u32le(p + 4);
	h->user_id = get_u64le(p + 8);
	h->total_cents = (int64_t)get_u64le(p + 16);
	h->created_ms = (int64_t)get_u64le(p + 24);
	h->updated_ms = (int64_t)get_u64le(p + 32);
	h->completed_ms = (int64_t)get_u64le(p + 40);
	h->lease_until_ms = (int64_t)get_u64le(p + 48);
	h->n_items = get_u32le(p + 56);
	if (v->mv_size != RECORD_HEADER + (size_t)h->n_items * 8)
		return STORE_ECORRUPT;
	return 0;
}

static void
record_head_encode(unsigned char *p, const struct record_head *h)
{
	memset(p, 0, RECORD_HEADER);
	p[0] = RECORD_VERSION;
	p[1] = (unsigned char)h->status;
	put_u32le(p + 4, h->attempts);
	put_u64le(p + 8, h->user_id);
	put_u64le(p + 16, (uint64_t)h->total_cents);
	put_u64le(p + 24, (uint64_t)h->created_ms);
	put_u64le(p + 32, (uint64_t)h->updated_ms);
	put_u64le(p + 40, (uint64_t)h->completed_ms);
	put_u64le(p + 48, (uint64_t)h->lease_until_ms);
	put_u32le(p + 56, h->n_items);
}

static int
record_decode(uint64_t id, const MDB_val *v, struct order *o)
{
	struct record_head h;
	const unsigned char *items;
	int rc;

	if ((rc = record_head_decode(v, &h)) != 0)
		return rc;
	if (order_reserve_items(o, h.n_items) != 0)
		return ENOMEM;
	o->id = id;
	o->user_id = h.user_id;
	o->total_cents = h.total_cents;
	o->status = h.status;
	o->attempts = h.attempts;
	o->created_ms = h.created_ms;
	o->updated_ms = h.updated_ms;
	o->completed_ms = h.completed_ms;
	o->lease_until_ms = h.lease_until_ms;
	o->n_items = h.n_items;
	items = (const unsigned char *)v->mv_data + RECORD_HEADER;
	for (uint32_t i = 0; i < h.n_items; i++)
		o->items[i] = get_u64le(items + (size_t)i * 8);
	return 0;
}

/* Another process grew the map: take its size (store.h: map_lock). */
static void
adopt_map_size(struct store *s)
{
	pthread_rwlock_wrlock(&s->map_lock);
	mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(&s->map_lock);
}

static int
read_begin_locked(struct store *s, MDB_txn **txn)
{
	struct reader *r;
	int rc;

	if (tls_reader.generation == s->generation && tls_reader.txn != NULL) {
		rc = mdb_txn_renew(tls_reader.txn);
		if (rc == 0) {
			*txn = tls_reader.txn;
			return 0;
		}
		if (rc == MDB_MAP_RESIZED)
			return rc;
		/* Leave it registered; store_close frees it. */
		tls_reader.txn = NULL;
	}
	r = malloc(sizeof(*r));
	if (r == NULL)
		return ENOMEM;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
	if (rc != 0) {
		free(r);
		return rc;
	}
	pthread_mutex_lock(&s->readers_lock);
	r->next = s->readers;
	s->readers = r;
	pthread_mutex_unlock(&s->readers_lock);
	tls_reader.generation = s->generation;
	tls_reader.txn = r->txn;
	*txn = r->txn;
	return 0;
}

/*
 * Begin a transaction under map_lock (read side), held until it ends. When
 * another process has grown the map, adopt its size and try once more.
 */
static int
txn_begin(struct store *s, MDB_txn **txn, bool write)
{
	int rc;

	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&s->map_lock);
		rc = write ? mdb_txn_begin(s->env, NULL, 0, txn)
		    : read_begin_locked(s, txn);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&s->map_lock);
		if (rc != MDB_MAP_RESIZED || tries > 0)
			return note_error(s, rc);
		adopt_map_size(s);
	}
}

/* Begin this thread's read transaction; end it with read_end. */
static int
read_begin(struct store *s, MDB_txn **txn)
{
	return txn_begin(s, txn, false);
}

static void
read_end(struct store *s, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/* Begin a write transaction; end it with write_commit or write_abort. */
static int
write_begin(struct store *s, MDB_txn **txn)
{
	return txn_begin(s, txn, true);
}

/*
 * A commit whose meta page could not be written returns that write's
 * errno (EIO, ENOSPC) and leaves the environment marked fatal: every later
 * transaction would fail with MDB_PANIC. A failed commit is therefore
 * followed by a read transaction's begin, which tells, so that the commit
 * that broke the store already reports MDB_PANIC.
 */
static int
write_commit(struct store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	if (rc != 0 && rc != MDB_PANIC) {
		MDB_txn *probe;
		int probe_rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &probe);

		if (probe_rc == 0)
			mdb_txn_abort(probe);
		else if (probe_rc == MDB_PANIC)
			rc = MDB_PANIC;
	}
	pthread_rwlock_unlock(&s->map_lock);
	return note_error(s, rc);
}

static void
write_abort(struct store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/*
 * The "counters" record: ten u64s in host order, in this order. Slot 9 is
 * unused (0). Counters are read and written whole, in the transaction that
 * changes them.
 */
enum {
	CNT_STATUS = 0,		/* 4 slots, by enum order_status */
	CNT_CREATED = 4,
	CNT_COMPLETED,
	CNT_PROCESSING_MS,
	CNT_LEASE_EXPIRIES,
	CNT_RELEASED,
	CNT_SLOTS = 10,
};

static int
counters_get(struct store *s, MDB_txn *txn, struct store_counters *c)
{
	MDB_val k = mkval(key_counters, sizeof(key_counters) - 1), v;
	uint64_t slot[CNT_SLOTS];
	int rc;

	memset(c, 0, sizeof(*c));
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	if (v.mv_size != sizeof(slot))
		return STORE_ECORRUPT;
	memcpy(slot, v.mv_data, sizeof(slot));
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		c->by_status[i] = slot[CNT_STATUS + i];
	c->created_total = slot[CNT_CREATED];
	c->completed_total = slot[CNT_COMPLETED];
	c->processing_ms_sum = slot[CNT_PROCESSING_MS];
	c->lease_expiries_total = slot[CNT_LEASE_EXPIRIES];
	c->released_total = slot[CNT_RELEASED];

	k = mkval(key_hist, sizeof(key_hist) - 1);
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != sizeof(c->processing_hist))
		return STORE_ECORRUPT;
	memcpy(c->processing_hist, v.mv_data, v.mv_size);
	return 0;
}

static int
counters_put(struct store *s, MDB_txn *txn, const struct store_counters *c)
{
	uint64_t slot[CNT_SLOTS] = { 0 };
	MDB_val k = mkval(key_counters, sizeof(key_counters) - 1);
	MDB_val v = mkval(slot, sizeof(slot));
	int rc;

	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		slot[CNT_STATUS + i] = c->by_status[i];
	slot[CNT_CREATED] = c->created_total;
	slot[CNT_COMPLETED] = c->completed_total;
	slot[CNT_PROCESSING_MS] = c->processing_ms_sum;
	slot[CNT_LEASE_EXPIRIES] = c->lease_expiries_total;
	slot[CNT_RELEASED] = c->released_total;
	if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0)
		return rc;
	k = mkval(key_hist, sizeof(key_hist) - 1);
	v = mkval(c->processing_hist, sizeof(c->processing_hist));
	return mdb_put(txn, s->meta, &k, &v, 0);
}

static int
meta_get_u64(struct store *s, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = mkval(key, strlen(key)), v;
	int rc = mdb_get(txn, s->meta, &k, &v);

	if (rc != 0)
		return rc;
	if (v.mv_size != 8)
		return STORE_ECORRUPT;
	memcpy(out, v.mv_data, 8);
	return 0;
}

static int
meta_put_u64(struct store *s, MDB_txn *txn, const char *key, uint64_t value)
{
	MDB_val k = mkval(key, strlen(key)), v = mkval(&value, 8);

	return mdb_put(txn, s->meta, &k, &v, 0);
}

static int map_error(int rc);

/*
 * Version 1 had no by_user_status: build it from the orders, inside the
 * caller's write transaction.
 */
static int
build_by_user_status(struct store *s, MDB_txn *txn)
{
	unsigned char ukey[USER_STATUS_KEY_LEN];
	struct record_head h;
	MDB_cursor *cur;
	MDB_val k, v, e = mkval("", 0);
	int rc;

	if ((rc = mdb_drop(txn, s->by_user_status, 0)) != 0 ||
	    (rc = mdb_cursor_open(txn, s->orders, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t id;

		if (k.mv_size != sizeof(id)) {
			rc = STORE_ECORRUPT;
			break;
		}
		memcpy(&id, k.mv_data, sizeof(id));
		if ((rc = record_head_decode(&v, &h)) != 0)
			break;
		user_status_key(ukey, h.user_id, h.status, id);
		k = mkval(ukey, sizeof(ukey));
		if ((rc = mdb_put(txn, s->by_user_status, &k, &e, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Bring an environment of schema version from up to this one, inside the
 * caller's write transaction: version 1 gets by_user_status, and versions
 * 1 and 2 lose by_user (version 3 lists a user's orders from
 * by_user_status alone); version 4 only adds meta journal_lsn, written by
 * the first apply of the journal.
 */
static int
schema_upgrade(struct store *s, MDB_txn *txn, uint32_t from)
{
	MDB_dbi by_user;
	int rc;

	if (from < 1 || from > 3)
		return STORE_ESCHEMA;
	/* 3 -> 4 changes nothing stored: journal_lsn absent means 0. */
	if (from == 3)
		return 0;
	if (from == 1 && (rc = build_by_user_status(s, txn)) != 0)
		return rc;
	rc = mdb_dbi_open(txn, "by_user", 0, &by_user);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	return mdb_drop(txn, by_user, 1);
}

static int
schema_init(struct store *s)
{
	MDB_txn *txn;
	MDB_val k = mkval(key_schema, sizeof(key_schema) - 1), v;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "orders", MDB_CREATE | MDB_INTEGERKEY,
	    &s->orders)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_status", MDB_CREATE,
	    &s->by_status)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_user_status", MDB_CREATE,
	    &s->by_user_status)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idem", MDB_CREATE, &s->idem)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idem_time", MDB_CREATE,
	    &s->idem_time)) != 0)
		goto fail;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0) {
		uint32_t version;

		if (v.mv_size != sizeof(version)) {
			rc = STORE_ESCHEMA;
			goto fail;
		}
		memcpy(&version, v.mv_data, sizeof(version));
		if (version > STORE_SCHEMA_VERSION) {
			rc = STORE_ESCHEMA;
			goto fail;
		}
		if (version < STORE_SCHEMA_VERSION) {
			uint32_t now = STORE_SCHEMA_VERSION;

			if ((rc = schema_upgrade(s, txn, version)) != 0)
				goto fail;
			v = mkval(&now, sizeof(now));
			if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0)
				goto fail;
			s->upgraded_from = version;
		}
		/* Commit, not abort: an abort would close the new handles. */
		return map_error(mdb_txn_commit(txn));
	}
	if (rc != MDB_NOTFOUND)
		goto fail;
	/* No version: a new environment, unless it already holds orders. */
	if ((rc = mdb_stat(txn, s->orders, &st)) != 0)
		goto fail;
	if (st.ms_entries != 0) {
		rc = STORE_ESCHEMA;
		goto fail;
	}
	uint32_t version = STORE_SCHEMA_VERSION;
	struct store_counters zero = { 0 };

	v = mkval(&version, sizeof(version));
	if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0 ||
	    (rc = meta_put_u64(s, txn, key_next_id, 1)) != 0 ||
	    (rc = counters_put(s, txn, &zero)) != 0)
		goto fail;
	return mdb_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return map_error(rc);
}

/*
 * LMDB maps its lock file and grows it with ftruncate, which allocates no
 * blocks: on a full disk the first touch of a new page is SIGBUS, not an
 * error. Allocating the file's blocks first turns that into ENOSPC here.
 */
static int
lockfile_allocate(const char *dir)
{
	char path[PATH_MAX];
	off_t size = (off_t)(STORE_MAX_READERS + 64) * 64 + 4096;
	int fd, rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) >=
	    sizeof(path))
		return ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
	if (fd < 0)
		return errno;
	rc = posix_fallocate(fd, 0, size);
	close(fd);
	return rc;
}

int
store_open(struct store **sp, const char *dir, uint64_t map_size,
    unsigned flags)
{
	struct store *s;
	unsigned env_flags = MDB_NOTLS;
	int rc, dead;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ENOMEM;
	pthread_mutex_init(&s->readers_lock, NULL);
	pthread_rwlock_init(&s->map_lock, NULL);
	s->idem_ttl_ms = STORE_IDEM_TTL_MS;
	s->generation = atomic_fetch_add(&store_generations, 1);
	if (flags & STORE_NOSYNC)
		env_flags |= MDB_NOSYNC;
	if ((rc = lockfile_allocate(dir)) != 0)
		goto fail_free;
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto fail_free;
	if ((rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 8)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, (size_t)map_size)) != 0)
		goto fail_env;
	/*
	 * Another process may be creating the environment at this moment;
	 * a transient failure is retried briefly before it is reported.
	 */
	for (int tries = 0;; tries++) {
		rc = mdb_env_open(s->env, dir, env_flags, 0660);
		if (rc == 0 || tries == STORE_OPEN_TRIES ||
		    (rc != EAGAIN && rc != EBUSY && rc != EINTR))
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
	}
	if (rc != 0)
		goto fail_env;
	mdb_reader_check(s->env, &dead);
	if ((rc = schema_init(s)) != 0)
		goto fail_env;
	*sp = s;
	return 0;
fail_env:
	mdb_env_close(s->env);
fail_free:
	pthread_mutex_destroy(&s->readers_lock);
	pthread_rwlock_destroy(&s->map_lock);
	free(s);
	return rc;
}

unsigned
store_upgraded_from(const struct store *s)
{
	return s->upgraded_from;
}

void
store_close(struct store *s)
{
	struct reader *r, *next;

	if (s == NULL)
		return;
	for (r = s->readers; r != NULL; r = next) {
		next = r->next;
		mdb_txn_abort(r->txn);
		free(r);
	}
	if (tls_reader.generation == s->generation)
		tls_reader.txn = NULL;
	mdb_env_close(s->env);
	pthread_mutex_destroy(&s->readers_lock);
	pthread_rwlock_destroy(&s->map_lock);
	free(s);
}

/*
 * Is there room for new orders? Beyond the share of the map kept free for
 * page copies, every unfinished order keeps room for the two moves of its
 * index entries (by_status, by_user_status) still to come (to Processing,
 * to Completed): until the pages that Pending entries leave behind are
 * merged, those moves grow the trees.
 * The same room is kept on the disk, which may fill before the map does.
 * pending_bytes is room for orders admitted but not yet stored.
 */
static int
room_for_orders(struct store *s, uint64_t unfinished, uint64_t pending_bytes)
{
	uint64_t reserve = unfinished * STORE_UNFINISHED_RESERVE +
	    pending_bytes;
	MDB_envinfo info;
	struct statvfs vfs;
	MDB_stat st;
	uint64_t used;
	mdb_filehandle_t fd;

	if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
		return 0;
	used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize + reserve;
	if (used * 100 >= (uint64_t)info.me_mapsize * STORE_HIGH_WATER_PERCENT)
		return STORE_EFULL;
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstatvfs(fd, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < reserve + STORE_DISK_RESERVE)
		return STORE_EDISKFULL;
	return 0;
}

static int
map_error(int rc)
{
	if (rc == MDB_MAP_FULL)
		return STORE_EFULL;
	if (rc == ENOSPC)
		return STORE_EDISKFULL;
	return rc;
}

void
store_set_idem_ttl(struct store *s, int64_t ttl_ms)
{
	s->idem_ttl_ms = ttl_ms;
}

#define IDEM_VALUE_LEN (8 + 8 + ORDER_DIGEST_LEN)
#define IDEM_TIME_KEY_MAX (8 + ORDER_IDEM_KEY_MAX)

/* A key's entry, if there is one that has not expired. */
static int
idem_lookup(struct store *s, MDB_txn *txn, const char *key, int64_t now_ms,
    uint64_t *id, uint8_t digest[ORDER_DIGEST_LEN])
{
	MDB_val k = mkval(key, strlen(key)), v;
	int64_t created;
	int rc;

	rc = mdb_get(txn, s->idem, &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_ENOTFOUND;
	if (rc != 0)
		return rc;
	if (v.mv_size != IDEM_VALUE_LEN)
		return STORE_ECORRUPT;
	memcpy(id, v.mv_data, 8);
	memcpy(&created, (char *)v.mv_data + 8, 8);
	memcpy(digest, (char *)v.mv_data + 16, ORDER_DIGEST_LEN);
	if (created + s->idem_ttl_ms <= now_ms)
		return STORE_ENOTFOUND;
	return 0;
}

/*
 * An order's Idempotency-Key seen before: idem_result REPLAY (id the
 * first order's) for the same body, MISMATCH (id 0) for another; left
 * NEW if the key is new or o has none. 0, or the error of the look-up.
 */
static int
idem_settle(struct store *s, MDB_txn *txn, struct order *o, int64_t now_ms)
{
	uint8_t digest[ORDER_DIGEST_LEN];
	uint64_t first;
	int rc;

	if (o->idem_key == NULL)
		return 0;
	rc = idem_lookup(s, txn, o->idem_key, now_ms, &first, digest);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	order_idem_seen(o, first, digest);
	return 0;
}

static void
idem_time_key(unsigned char *buf, int64_t created_ms, const char *key,
    size_t len)
{
	put_u64be(buf, (uint64_t)created_ms);
	memcpy(buf + 8, key, len);
}

static int
idem_put(struct store *s, MDB_txn *txn, const struct order *o,
    int64_t now_ms)
{
	size_t len = strlen(o->idem_key);
	unsigned char value[IDEM_VALUE_LEN], tkey[IDEM_TIME_KEY_MAX];
	uint64_t id = o->id;
	MDB_val k = mkval(o->idem_key, len), v = mkval(value, sizeof(value));
	int rc;

	memcpy(value, &id, 8);
	memcpy(value + 8, &now_ms, 8);
	memcpy(value + 16, o->idem_digest, ORDER_DIGEST_LEN);
	if ((rc = mdb_put(txn, s->idem, &k, &v, 0)) != 0)
		return rc;
	idem_time_key(tkey, now_ms, o->idem_key, len);
	k = mkval(tkey, 8 + len);
	v = mkval("", 0);
	return mdb_put(txn, s->idem_time, &k, &v, 0);
}

/*
 * Drop up to max expired keys, oldest first. A key re-used after it
 * expired has a newer entry in idem; only an entry as old as its time key
 * goes.
 */
static int
idem_expire(struct store *s, MDB_txn *txn, int64_t now_ms, size_t max)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->idem_time, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && max > 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST), max--) {
		const unsigned char *tk = k.mv_data;
		int64_t created = (int64_t)get_u64be(tk);
		MDB_val ik = mkval(tk + 8, k.mv_size - 8), iv;

		if (k.mv_size < 9 || created + s->idem_ttl_ms > now_ms)
			break;
		rc = mdb_get(txn, s->idem, &ik, &iv);
		if (rc == 0 && iv.mv_size == IDEM_VALUE_LEN &&
		    memcmp((char *)iv.mv_data + 8, &created, 8) == 0)
			rc = mdb_del(txn, s->idem, &ik, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

static int
create_one(struct store *s, MDB_txn *txn, struct order *o, size_t id,
    int64_t now_ms, unsigned char *rec)
{
	size_t len = RECORD_HEADER + (size_t)o->n_items * 8;
	unsigned char skey[STATUS_KEY_LEN], uskey[USER_STATUS_KEY_LEN];
	int64_t created = now_ms;
	MDB_val k, v;
	int rc;

	o->id = id;
	o->status = ORDER_PENDING;
	o->attempts = 0;
	o->created_ms = o->updated_ms = now_ms;
	o->completed_ms = o->lease_until_ms = 0;
	record_head_encode(rec, &(struct record_head){
		.status = ORDER_PENDING,
		.user_id = o->user_id,
		.total_cents = o->total_cents,
		.created_ms = now_ms,
		.updated_ms = now_ms,
		.n_items = o->n_items,
	});
	for (uint32_t j = 0; j < o->n_items; j++)
		put_u64le(rec + RECORD_HEADER + (size_t)j * 8, o->items[j]);
	k = mkval(&id, sizeof(id));
	v = mkval(rec, len);
	if ((rc = mdb_put(txn, s->orders, &k, &v, MDB_APPEND)) != 0)
		return rc;
	status_key(skey, ORDER_PENDING, id);
	k = mkval(skey, sizeof(skey));
	v = mkval(&created, sizeof(created));
	if ((rc = mdb_put(txn, s->by_status, &k, &v, 0)) != 0)
		return rc;
	user_status_key(uskey, o->user_id, ORDER_PENDING, id);
	k = mkval(uskey, sizeof(uskey));
	v = mkval("", 0);
	if ((rc = mdb_put(txn, s->by_user_status, &k, &v, 0)) != 0)
		return rc;
	return o->idem_key != NULL ? idem_put(s, txn, o, now_ms) : 0;
}

/* The body of store_create in txn, which it commits or aborts. */
static int
create_in(struct store *s, MDB_txn *txn, struct order *const *orders,
    size_t n, int64_t now_ms)
{
	unsigned char rec[RECORD_HEADER + ORDER_MAX_ITEMS * 8];
	struct store_counters c;
	uint64_t next_id, created = 0;
	int rc;

	if ((rc = meta_get_u64(s, txn, key_next_id, &next_id)) != 0 ||
	    (rc = counters_get(s, txn, &c)) != 0)
		goto fail;
	if ((rc = room_for_orders(s, c.by_status[ORDER_PENDING] +
	    c.by_status[ORDER_PROCESSING] + n, 0)) != 0)
		goto fail;
	if ((rc = idem_expire(s, txn, now_ms, 2 * n + 16)) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct order *o = orders[i];

		o->idem_result = ORDER_IDEM_NEW;
		if (o->n_items > ORDER_MAX_ITEMS) {
			rc = EINVAL;
			goto fail;
		}
		if ((rc = idem_settle(s, txn, o, now_ms)) != 0)
			goto fail;
		if (o->idem_result != ORDER_IDEM_NEW)
			continue;
		if ((rc = create_one(s, txn, o, (size_t)next_id++, now_ms,
		    rec)) != 0)
			goto fail;
		created++;
	}
	c.by_status[ORDER_PENDING] += created;
	c.created_total += created;
	if ((rc = meta_put_u64(s, txn, key_next_id, next_id)) != 0 ||
	    (rc = counters_put(s, txn, &c)) != 0)
		goto fail;
	return map_error(write_commit(s, txn));
fail:
	write_abort(s, txn);
	for (size_t i = 0; i < n; i++)
		orders[i]->id = 0;
	return map_error(rc);
}

int
store_create(struct store *s, struct order *const *orders, size_t n,
    int64_t now_ms)
{
	MDB_txn *txn;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = write_begin(s, &txn)) != 0)
		return rc;
	return create_in(s, txn, orders, n, now_ms);
}

int
store_create_from(struct store *s, store_take_fn take, void *arg,
    struct order **orders, size_t max)
{
	MDB_txn *txn;
	int64_t now_ms;
	size_t n;
	int rc;

	if ((rc = write_begin(s, &txn)) != 0)
		return rc;
	n = take(arg, orders, max, &now_ms);
	if (n == 0) {
		write_abort(s, txn);
		return 0;
	}
	return create_in(s, txn, orders, n, now_ms);
}

int
store_journal_state(struct store *s, uint64_t *journal_lsn, uint64_t *next_id)
{
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	rc = meta_get_u64(s, txn, key_journal_lsn, journal_lsn);
	if (rc == MDB_NOTFOUND) {
		*journal_lsn = 0;
		rc = 0;
	}
	if (rc == 0)
		rc = meta_get_u64(s, txn, key_next_id, next_id);
	read_end(s, txn);
	return rc;
}

int
store_admit(struct store *s, struct order *const *orders, size_t n,
    uint64_t unapplied, uint64_t pending_bytes, int64_t now_ms)
{
	struct store_counters c;
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	if ((rc = counters_get(s, txn, &c)) != 0 ||
	    (rc = room_for_orders(s, c.by_status[ORDER_PENDING] +
	    c.by_status[ORDER_PROCESSING] + unapplied + n,
	    pending_bytes)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct order *o = orders[i];

		if (o->n_items > ORDER_MAX_ITEMS) {
			rc = EINVAL;
			goto out;
		}
		if (o->idem_result == ORDER_IDEM_NEW &&
		    (rc = idem_settle(s, txn, o, now_ms)) != 0)
			goto out;
	}
out:
	read_end(s, txn);
	return map_error(rc);
}

uint64_t
store_record_room(const struct order *o)
{
	uint64_t key = o->idem_key != NULL ? strlen(o->idem_key) : 0;

	/*
	 * The bytes its entries hold, a little less than they take once
	 * stored (pages are never full): once applied, the orders leave no
	 * more room than was counted for them, so a create refused for room
	 * is not accepted again by the apply of the orders before it. Page
	 * copies live in the map's top share, which no create may use.
	 */
	return RECORD_HEADER + (uint64_t)o->n_items * 8 + 8 +
	    STATUS_KEY_LEN + 8 + USER_STATUS_KEY_LEN + 2 * key +
	    IDEM_VALUE_LEN + 8;
}

int
store_apply(struct store *s, struct order *const *orders, size_t n,
    uint64_t journal_lsn)
{
	unsigned char rec[RECORD_HEADER + ORDER_MAX_ITEMS * 8];
	struct store_counters c;
	uint64_t next_id, created = 0;
	MDB_txn *txn;
	int rc;

	if ((rc = write_begin(s, &txn)) != 0)
		return map_error(rc);
	if ((rc = meta_get_u64(s, txn, key_next_id, &next_id)) != 0 ||
	    (rc = counters_get(s, txn, &c)) != 0 ||
	    (rc = idem_expire(s, txn, clock_realtime_ms(), 2 * n + 16)) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct order *o = orders[i];

		/* Stored by an earlier apply: a replay after a crash. */
		if (o->id < next_id)
			continue;
		if (o->n_items > ORDER_MAX_ITEMS) {
			rc = STORE_ECORRUPT;
			goto fail;
		}
		if ((rc = create_one(s, txn, o, (size_t)o->id, o->created_ms,
		    rec)) != 0)
			goto fail;
		next_id = o->id + 1;
		created++;
	}
	c.by_status[ORDER_PENDING] += created;
	c.created_total += created;
	if ((rc = meta_put_u64(s, txn, key_next_id, next_id)) != 0 ||
	    (rc = meta_put_u64(s, txn, key_journal_lsn, journal_lsn)) != 0 ||
	    (rc = counters_put(s, txn, &c)) != 0)
		goto fail;
	return map_error(write_commit(s, txn));
fail:
	write_abort(s, txn);
	return map_error(rc);
}

int
store_idem_get(struct store *s, const char *key, uint64_t *id,
    uint8_t digest[ORDER_DIGEST_LEN])
{
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	rc = idem_lookup(s, txn, key, clock_realtime_ms(), id, digest);
	read_end(s, txn);
	return rc;
}

int
store_get(struct store *s, uint64_t id, struct order *o)
{
	size_t key = (size_t)id;
	MDB_val k = mkval(&key, sizeof(key)), v;
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	rc = mdb_get(txn, s->orders, &k, &v);
	if (rc == 0)
		rc = record_decode(id, &v, o);
	else if (rc == MDB_NOTFOUND)
		rc = STORE_ENOTFOUND;
	read_end(s, txn);
	return rc;
}

/*
 * One state change of one order inside a write transaction: decide with
 * the record's head, then rewrite the record and move its index entry.
 * The decide function returns true to apply the change it made to *h.
 */
typedef bool (*transition_fn)(struct record_head *h, struct store_claim *c,
    struct store_counters *cnt, int64_t now_ms, int64_t lease_until_ms);

static int
transition_one(struct store *s, MDB_txn *txn, uint64_t id,
    transition_fn decide, struct store_claim *c, struct store_counters *cnt,
    int64_t now_ms, int64_t lease_until_ms, bool *changed)
{
	size_t key = (size_t)id;
	MDB_val k = mkval(&key, sizeof(key)), v, nv;
	unsigned char skey[STATUS_KEY_LEN], uskey[USER_STATUS_KEY_LEN];
	unsigned char rec[RECORD_HEADER + ORDER_MAX_ITEMS * 8];
	struct record_head h;
	enum order_status old;
	int64_t due;
	int rc;

	*changed = false;
	rc = mdb_get(txn, s->orders, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;	/* an unknown id is a no-op */
	if (rc != 0)
		return rc;
	if ((rc = record_head_decode(&v, &h)) != 0)
		return rc;
	old = h.status;
	if (!decide(&h, c, cnt, now_ms, lease_until_ms))
		return 0;
	h.updated_ms = now_ms;

	/*
	 * Copy before the put: v points into a page that the put may move.
	 * A record holds at most ORDER_MAX_ITEMS items.
	 */
	if (v.mv_size > sizeof(rec))
		return STORE_ECORRUPT;
	memcpy(rec, v.mv_data, v.mv_size);
	record_head_encode(rec, &h);
	nv = mkval(rec, v.mv_size);
	if ((rc = mdb_put(txn, s->orders, &k, &nv, 0)) != 0)
		return rc;

	if (old != h.status) {
		status_key(skey, old, id);
		k = mkval(skey, sizeof(skey));
		rc = mdb_del(txn, s->by_status, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		user_status_key(uskey, h.user_id, old, id);
		k = mkval(uskey, sizeof(uskey));
		rc = mdb_del(txn, s->by_user_status, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		user_status_key(uskey, h.user_id, h.status, id);
		k = mkval(uskey, sizeof(uskey));
		v = mkval("", 0);
		if ((rc = mdb_put(txn, s->by_user_status, &k, &v, 0)) != 0)
			return rc;
	}
	status_key(skey, h.status, id);
	k = mkval(skey, sizeof(skey));
	due = h.status == ORDER_PENDING ? h.created_ms : h.lease_until_ms;
	v = h.status == ORDER_PENDING || h.status == ORDER_PROCESSING
	    ? mkval(&due, sizeof(due)) : mkval("", 0);
	if ((rc = mdb_put(txn, s->by_status, &k, &v, 0)) != 0)
		return rc;
	if (old != h.status) {
		cnt->by_status[old]--;
		cnt->by_status[h.status]++;
	}
	*changed = true;
	return 0;
}

/* Orders to move with one decide function, in a transition_batch. */
struct transition_group {
	struct store_claim *c;
	size_t n;
	transition_fn decide;
	int64_t lease_until_ms;
};

/*
 * Names the one order of a one-order transition once its transaction has
 * begun (store_cancel_from); NULL for transitions whose ids are known.
 */
struct transition_take {
	store_take_id_fn take;
	void *arg;
	bool taken;
};

/* Apply every group in one write transaction: all or nothing. */
static int
transition_batch(struct store *s, struct transition_group *g, size_t n_groups,
    int64_t now_ms, struct transition_take *t)
{
	struct store_counters cnt;
	bool any = false;
	size_t total = 0;
	MDB_txn *txn;
	int rc;

	for (size_t j = 0; j < n_groups; j++) {
		for (size_t i = 0; i < g[j].n; i++)
			g[j].c[i].done = false;
		total += g[j].n;
	}
	if (total == 0)
		return 0;
	if ((rc = write_begin(s, &txn)) != 0)
		return rc;
	if (t != NULL) {
		t->taken = t->take(t->arg, &g[0].c[0].id, &now_ms);
		if (!t->taken) {
			write_abort(s, txn);
			return 0;
		}
	}
	if ((rc = counters_get(s, txn, &cnt)) != 0)
		goto fail;
	for (size_t j = 0; j < n_groups; j++) {
		for (size_t i = 0; i < g[j].n; i++) {
			struct store_claim *c = &g[j].c[i];

			rc = transition_one(s, txn, c->id, g[j].decide, c,
			    &cnt, now_ms, g[j].lease_until_ms, &c->done);
			if (rc != 0)
				goto fail;
			any |= c->done;
		}
	}
	if (!any) {
		write_abort(s, txn);
		return 0;
	}
	if ((rc = counters_put(s, txn, &cnt)) != 0)
		goto fail;
	rc = write_commit(s, txn);
	if (rc != 0)
		goto failed;
	return 0;
fail:
	write_abort(s, txn);
failed:
	for (size_t j = 0; j < n_groups; j++)
		for (size_t i = 0; i < g[j].n; i++)
			g[j].c[i].done = false;
	return map_error(rc);
}

static bool
decide_claim(struct record_head *h, struct store_claim *c,
    struct store_counters *cnt, int64_t now_ms, int64_t lease_until_ms)
{
	if (h->status == ORDER_PROCESSING && h->lease_until_ms <= now_ms)
		cnt->lease_expiries_total++;
	else if (h->status != ORDER_PENDING)
		return false;
	h->status = ORDER_PROCESSING;
	h->attempts++;
	h->lease_until_ms = lease_until_ms;
	c->attempt = h->attempts;
	c->created_ms = h->created_ms;
	return true;
}

static bool
decide_complete(struct record_head *h, struct store_claim *c,
    struct store_counters *cnt, int64_t now_ms, int64_t lease_until_ms)
{
	if (h->status != ORDER_PROCESSING || h->attempts != c->attempt)
		return false;
	h->status = ORDER_COMPLETED;
	h->completed_ms = now_ms;
	h->lease_until_ms = 0;
	static const int64_t bounds[] = STORE_HIST_BOUNDS_MS;
	int64_t took = now_ms > h->created_ms ? now_ms - h->created_ms : 0;
	size_t bucket = 0;

	while (bucket < sizeof(bounds) / sizeof(bounds[0]) &&
	    took > bounds[bucket])
		bucket++;
	cnt->processing_hist[bucket]++;
	cnt->completed_total++;
	cnt->processing_ms_sum += (uint64_t)took;
	return true;
}

static bool
decide_release(struct record_head *h, struct store_claim *c,
    struct store_counters *cnt, int64_t now_ms, int64_t lease_until_ms)
{
	if (h->status != ORDER_PROCESSING || h->attempts != c->attempt)
		return false;
	h->status = ORDER_PENDING;
	h->lease_until_ms = 0;
	cnt->released_total++;
	return true;
}

static bool
decide_cancel(struct record_head *h, struct store_claim *c,
    struct store_counters *cnt, int64_t now_ms, int64_t lease_until_ms)
{
	if (h->status != ORDER_PENDING)
		return false;
	h->status = ORDER_CANCELLED;
	return true;
}

int
store_claim(struct store *s, struct store_claim *c, size_t n, int64_t now_ms,
    int64_t lease_until_ms)
{
	struct transition_group g = { c, n, decide_claim, lease_until_ms };

	return transition_batch(s, &g, 1, now_ms, NULL);
}

int
store_complete(struct store *s, struct store_claim *c, size_t n,
    int64_t now_ms)
{
	struct transition_group g = { c, n, decide_complete, 0 };

	return transition_batch(s, &g, 1, now_ms, NULL);
}

int
store_advance(struct store *s, struct store_claim *done, size_t n_done,
    struct store_claim *claim, size_t n_claim, int64_t now_ms,
    int64_t lease_until_ms)
{
	struct transition_group g[] = {
		{ done, n_done, decide_complete, 0 },
		{ claim, n_claim, decide_claim, lease_until_ms },
	};

	return transition_batch(s, g, 2, now_ms, NULL);
}

int
store_release(struct store *s, struct store_claim *c, size_t n,
    int64_t now_ms)
{
	struct transition_group g = { c, n, decide_release, 0 };

	return transition_batch(s, &g, 1, now_ms, NULL);
}

int
store_cancel(struct store *s, uint64_t id, int64_t now_ms, struct order *o)
{
	struct store_claim c = { .id = id };
	struct transition_group g = { &c, 1, decide_cancel, 0 };
	int rc;

	rc = transition_batch(s, &g, 1, now_ms, NULL);
	if (rc != 0)
		return rc;
	if ((rc = store_get(s, id, o)) != 0)
		return rc;
	return c.done ? 0 : STORE_ECONFLICT;
}

int
store_cancel_from(struct store *s, store_take_id_fn take, void *arg,
    struct order *o, bool *taken)
{
	struct store_claim c = { 0 };
	struct transition_group g = { &c, 1, decide_cancel, 0 };
	struct transition_take t = { take, arg, false };
	int rc;

	rc = transition_batch(s, &g, 1, 0, &t);
	*taken = t.taken;
	if (rc != 0 || !t.taken)
		return rc;
	if ((rc = store_get(s, c.id, o)) != 0)
		return rc;
	return c.done ? 0 : STORE_ECONFLICT;
}

int
store_unfinished(struct store *s, store_unfinished_fn fn, void *arg)
{
	unsigned char start[STATUS_KEY_LEN];
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->by_status, &cur)) != 0)
		goto out;
	status_key(start, ORDER_PENDING, 0);
	k = mkval(start, sizeof(start));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *key = k.mv_data;
		struct store_unfinished u;

		if (k.mv_size != STATUS_KEY_LEN || key[0] > ORDER_PROCESSING)
			break;
		if (v.mv_size != 8) {
			rc = STORE_ECORRUPT;
			break;
		}
		u.id = get_u64be(key + 1);
		u.status = (enum order_status)key[0];
		memcpy(&u.due_ms, v.mv_data, 8);
		if ((rc = fn(&u, arg)) != 0)
			break;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
out:
	read_end(s, txn);
	return rc;
}

int
store_peek(struct store *s, const uint64_t *ids, size_t n,
    store_unfinished_fn fn, void *arg)
{
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		size_t key = (size_t)ids[i];
		MDB_val k = mkval(&key, sizeof(key)), v;
		struct record_head h;
		struct store_unfinished u;

		rc = mdb_get(txn, s->orders, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || (rc = record_head_decode(&v, &h)) != 0)
			break;
		u.id = ids[i];
		u.status = h.status;
		u.due_ms = h.status == ORDER_PROCESSING ? h.lease_until_ms
		    : h.created_ms;
		if ((rc = fn(&u, arg)) != 0)
			break;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	read_end(s, txn);
	return rc;
}

/*
 * One index range of a list: the entries whose keys start with key's
 * first prefix_len bytes, each key ending with an order id (big-endian,
 * so key order is id order within the range).
 */
struct range {
	MDB_cursor *cur;
	unsigned char key[USER_STATUS_KEY_LEN];
	size_t prefix_len;
	uint64_t id;		/* the entry at the cursor; 0: none left */
};

/* Move r's cursor (MDB_SET_RANGE from r->key, or MDB_NEXT); set r->id. */
static int
range_step(struct range *r, MDB_cursor_op op)
{
	MDB_val k = mkval(r->key, r->prefix_len + 8), v;
	int rc = mdb_cursor_get(r->cur, &k, &v, op);

	r->id = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (k.mv_size == r->prefix_len + 8 &&
	    memcmp(k.mv_data, r->key, r->prefix_len) == 0)
		r->id = get_u64be((const unsigned char *)k.mv_data +
		    r->prefix_len);
	return 0;
}

/*
 * The ranges of the list f asks for, each from f->after: by_user_status
 * for a user (one range for one status, else the user's four merged by
 * id), by_status for a status alone. 0 ranges: no filter, walk the orders.
 */
static size_t
list_ranges(struct store *s, const struct store_filter *f,
    struct range r[ORDER_STATUS_COUNT], MDB_dbi *dbi)
{
	size_t n = 0;

	if (f->user_id != 0) {
		*dbi = s->by_user_status;
		for (int st = 0; st < ORDER_STATUS_COUNT; st++) {
			if (f->by_status && (enum order_status)st != f->status)
				continue;
			user_status_key(r[n].key, f->user_id,
			    (enum order_status)st, f->after + 1);
			r[n++].prefix_len = 9;
		}
	} else if (f->by_status) {
		*dbi = s->by_status;
		status_key(r[n].key, f->status, f->after + 1);
		r[n++].prefix_len = 1;
	}
	return n;
}

/*
 * Walk the ranges of f (list_ranges) or the orders themselves from
 * f->after, oldest first, handing fn up to f->limit orders; *next is the
 * last id handed when more follow, else 0.
 */
int
store_list(struct store *s, const struct store_filter *f, store_order_fn fn,
    void *arg, uint64_t *next)
{
	struct range r[ORDER_STATUS_COUNT] = { 0 };
	size_t n_ranges, i;
	struct order o;
	MDB_cursor *all = NULL;
	MDB_txn *txn;
	MDB_dbi dbi = s->orders;
	MDB_val k, v;
	size_t key;
	uint64_t last = 0;
	uint32_t emitted = 0;
	int rc;

	*next = 0;
	if (f->after == UINT64_MAX)
		return 0;
	n_ranges = list_ranges(s, f, r, &dbi);
	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	order_init(&o);
	if (n_ranges == 0) {
		if ((rc = mdb_cursor_open(txn, s->orders, &all)) != 0)
			goto out;
		key = (size_t)f->after + 1;
		k = mkval(&key, sizeof(key));
		rc = mdb_cursor_get(all, &k, &v, MDB_SET_RANGE);
	}
	for (i = 0; i < n_ranges && rc == 0; i++)
		if ((rc = mdb_cursor_open(txn, dbi, &r[i].cur)) == 0)
			rc = range_step(&r[i], MDB_SET_RANGE);
	while (rc == 0) {
		struct range *low = NULL;
		uint64_t id;

		if (n_ranges == 0) {
			if (k.mv_size != sizeof(key))
				break;
			memcpy(&key, k.mv_data, sizeof(key));
			id = key;
		} else {
			/* The lowest id at any cursor: the next oldest order. */
			for (i = 0; i < n_ranges; i++)
				if (r[i].id != 0 &&
				    (low == NULL || r[i].id < low->id))
					low = &r[i];
			if (low == NULL)
				break;
			id = low->id;
			key = (size_t)id;
			k = mkval(&key, sizeof(key));
			if ((rc = mdb_get(txn, s->orders, &k, &v)) != 0)
				break;
		}
		if ((rc = record_decode(id, &v, &o)) != 0)
			break;
		/* The index and the record change together: always true. */
		if (!f->by_status || o.status == f->status) {
			if (emitted == f->limit) {
				*next = last;
				break;
			}
			if ((rc = fn(&o, arg)) != 0)
				break;
			last = id;
			emitted++;
		}
		rc = low != NULL ? range_step(low, MDB_NEXT)
		    : mdb_cursor_get(all, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
out:
	for (i = 0; i < n_ranges; i++)
		if (r[i].cur != NULL)
			mdb_cursor_close(r[i].cur);
	if (all != NULL)
		mdb_cursor_close(all);
	order_finish(&o);
	read_end(s, txn);
	return rc;
}

int
store_counters(struct store *s, struct store_counters *c)
{
	MDB_val k = mkval(key_heartbeat, sizeof(key_heartbeat) - 1), v;
	MDB_txn *txn;
	int rc;

	if ((rc = read_begin(s, &txn)) != 0)
		return rc;
	rc = counters_get(s, txn, c);
	if (rc == 0)
		rc = meta_get_u64(s, txn, key_next_id, &c->next_id);
	if (rc == 0) {
		rc = mdb_get(txn, s->meta, &k, &v);
		if (rc == 0 && v.mv_size == sizeof(c->heartbeat_ms))
			memcpy(&c->heartbeat_ms, v.mv_data, v.mv_size);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	read_end(s, txn);
	return rc;
}

int
store_heartbeat(struct store *s, int64_t now_ms)
{
	MDB_txn *txn;
	int rc;

	if ((rc = write_begin(s, &txn)) != 0)
		return rc;
	rc = meta_put_u64(s, txn, key_heartbeat, (uint64_t)now_ms);
	if (rc != 0) {
		write_abort(s, txn);
		return map_error(rc);
	}
	return map_error(write_commit(s, txn));
}

int
store_reader_check(struct store *s, int *cleared)
{
	return mdb_reader_check(s->env, cleared);
}

int
store_usage(struct store *s, uint64_t *used, uint64_t *map_size)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0)
		return rc;
	*used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	*map_size = info.me_mapsize;
	return 0;
}
