/*
 * store.c: the environment and its transactions. Opening it (read only or
 * not) and closing it, its schema and the upgrades from older versions,
 * the transactions every other file of the store begins through (and each
 * thread's cached read transaction), the errors, the meta database's
 * counters and the room left for new orders, and maintenance (heartbeat,
 * reader check, usage, backup). The rest of the store is in
 * store_record.c, store_idem.c, store_state.c and store_read.c
 * (store_impl.h says which holds what).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fsync_dir.h"
#include "store_impl.h"
#include "store_record.h"

#define STORE_MAX_READERS 1024
#define STORE_OPEN_TRIES 20

struct reader {
	struct reader *next;
	MDB_txn *txn;
};

/* Each thread's read transaction, reset between uses and renewed. */
static _Thread_local struct {
	unsigned generation;
	MDB_txn *txn;
} tls_reader;
static atomic_uint store_generations = 1;

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
	case STORE_EOLDSCHEMA:
		return "the environment has an older schema version, which "
		    "only a read-write open upgrades (start order-api once)";
	case STORE_EINSTANCE:
		return "the environment holds another instance's orders";
	case STORE_ENOIDS:
		return "this instance has handed out every id it owns";
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

int
store_map_error(int rc)
{
	if (rc == MDB_MAP_FULL)
		return STORE_EFULL;
	if (rc == ENOSPC)
		return STORE_EDISKFULL;
	return rc;
}

/* Another process grew the map: take its size (store_impl.h: map_lock). */
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

int
store_read_begin(struct store *s, MDB_txn **txn)
{
	return txn_begin(s, txn, false);
}

void
store_read_end(struct store *s, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

int
store_write_begin(struct store *s, MDB_txn **txn)
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
int
store_write_commit(struct store *s, MDB_txn *txn)
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

void
store_write_abort(struct store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/*
 * The "counters" record: ten u64s in host order, in this order. Slot 9 is
 * unused (0). Counters are read and written whole, in the transaction that
 * changes them. ctl/check.c restates these slots.
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
_Static_assert(CNT_STATUS + ORDER_STATUS_COUNT <= CNT_CREATED,
    "a new status needs a new layout of the counters record (store.h)");

int
store_counters_get(struct store *s, MDB_txn *txn, struct store_counters *c)
{
	MDB_val k = mkval(META_COUNTERS, sizeof(META_COUNTERS) - 1), v;
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

	k = mkval(META_HIST, sizeof(META_HIST) - 1);
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

int
store_counters_put(struct store *s, MDB_txn *txn,
    const struct store_counters *c)
{
	uint64_t slot[CNT_SLOTS] = { 0 };
	MDB_val k = mkval(META_COUNTERS, sizeof(META_COUNTERS) - 1);
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
	k = mkval(META_HIST, sizeof(META_HIST) - 1);
	v = mkval(c->processing_hist, sizeof(c->processing_hist));
	return mdb_put(txn, s->meta, &k, &v, 0);
}

int
store_meta_get_u64(struct store *s, MDB_txn *txn, const char *key,
    uint64_t *out)
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

int
store_meta_put_u64(struct store *s, MDB_txn *txn, const char *key,
    uint64_t value)
{
	MDB_val k = mkval(key, strlen(key)), v = mkval(&value, 8);

	return mdb_put(txn, s->meta, &k, &v, 0);
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
int
store_room_for_orders(struct store *s, uint64_t unfinished,
    uint64_t pending_bytes)
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
		if ((rc = store_record_head_decode(v.mv_data, v.mv_size,
		    &h)) != 0)
			break;
		store_user_status_key(ukey, h.user_id, h.status, id);
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
/*
 * A new STORE_SCHEMA_VERSION needs its step here (a no-op one too: an
 * environment of a version this function refuses cannot be opened) and
 * its test_upgrade_v* in tests/unit/test_store.c.
 */
_Static_assert(STORE_SCHEMA_VERSION == 5,
    "a new schema version needs its step in schema_upgrade (store.c)");

static int
schema_upgrade(struct store *s, MDB_txn *txn, uint32_t from)
{
	MDB_dbi by_user;
	int rc;

	if (from < 1 || from > 4)
		return STORE_ESCHEMA;
	if (from == 1 && (rc = build_by_user_status(s, txn)) != 0)
		return rc;
	/* 3 -> 4 changes nothing stored: journal_lsn absent means 0. */
	if (from <= 2) {
		rc = mdb_dbi_open(txn, "by_user", 0, &by_user);
		if (rc == 0)
			rc = mdb_drop(txn, by_user, 1);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	return store_meta_put_u64(s, txn, META_INSTANCE, 0);
}

/*
 * The databases of orders, their indexes and the Idempotency-Keys (all
 * but meta), into s; create is MDB_CREATE for a read-write open, else 0.
 */
static int
open_order_dbs(struct store *s, MDB_txn *txn, unsigned create)
{
	int rc;

	if ((rc = mdb_dbi_open(txn, "orders", create | MDB_INTEGERKEY,
	    &s->orders)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_status", create,
	    &s->by_status)) != 0 ||
	    (rc = mdb_dbi_open(txn, "by_user_status", create,
	    &s->by_user_status)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idem", create, &s->idem)) != 0)
		return rc;
	return mdb_dbi_open(txn, "idem_time", create, &s->idem_time);
}

/*
 * schema_init of a read-only open: the databases must be there and the
 * schema be this one. A read transaction's commit keeps the handles.
 */
static int
schema_check(struct store *s)
{
	MDB_txn *txn;
	MDB_val k = mkval(META_SCHEMA, sizeof(META_SCHEMA) - 1), v;
	uint32_t version;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, "meta", 0, &s->meta)) != 0 ||
	    (rc = mdb_get(txn, s->meta, &k, &v)) != 0) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? STORE_ESCHEMA : rc;
	}
	if (v.mv_size != sizeof(version)) {
		mdb_txn_abort(txn);
		return STORE_ESCHEMA;
	}
	memcpy(&version, v.mv_data, sizeof(version));
	if (version != STORE_SCHEMA_VERSION) {
		mdb_txn_abort(txn);
		return version < STORE_SCHEMA_VERSION ? STORE_EOLDSCHEMA
		    : STORE_ESCHEMA;
	}
	if ((rc = open_order_dbs(s, txn, 0)) != 0) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
	}
	return mdb_txn_commit(txn);
}

static int
schema_init(struct store *s)
{
	MDB_txn *txn;
	MDB_val k = mkval(META_SCHEMA, sizeof(META_SCHEMA) - 1), v;
	MDB_stat st;
	int rc;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = open_order_dbs(s, txn, MDB_CREATE)) != 0)
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
		return store_map_error(mdb_txn_commit(txn));
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
	    (rc = store_meta_put_u64(s, txn, META_NEXT_ID, 1)) != 0 ||
	    (rc = store_meta_put_u64(s, txn, META_INSTANCE, 0)) != 0 ||
	    (rc = store_counters_put(s, txn, &zero)) != 0)
		goto fail;
	return mdb_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return store_map_error(rc);
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

/* meta instance in txn: STORE_ECORRUPT unless it is there and valid. */
static int
instance_get(struct store *s, MDB_txn *txn, unsigned *instance)
{
	uint64_t v;
	int rc = store_meta_get_u64(s, txn, META_INSTANCE, &v);

	if (rc == MDB_NOTFOUND || (rc == 0 && v > ORDER_INSTANCE_MAX))
		return STORE_ECORRUPT;
	if (rc == 0)
		*instance = (unsigned)v;
	return rc;
}

/* s->instance from meta. */
static int
instance_load(struct store *s)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	rc = instance_get(s, txn, &s->instance);
	mdb_txn_abort(txn);
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
	if (flags & STORE_RDONLY)
		env_flags |= MDB_RDONLY;
	else if ((rc = lockfile_allocate(dir)) != 0)
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
	if ((rc = (flags & STORE_RDONLY) ? schema_check(s)
	    : schema_init(s)) != 0 || (rc = instance_load(s)) != 0)
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

int
store_instance_claim(struct store *s, unsigned instance, bool adopt,
    unsigned *owner)
{
	MDB_txn *txn;
	uint64_t next_id;
	unsigned mine;
	bool fresh;
	int rc;

	if (instance > ORDER_INSTANCE_MAX)
		return EINVAL;
	if ((rc = store_write_begin(s, &txn)) != 0)
		return store_map_error(rc);
	if ((rc = instance_get(s, txn, &mine)) != 0 ||
	    (rc = store_meta_get_u64(s, txn, META_NEXT_ID, &next_id)) != 0)
		goto fail;
	s->instance = mine;
	/* Never handed out an id: no order, no journaled one, no key. */
	fresh = next_id == order_instance_first_id(mine);
	if (mine == instance || (fresh && !adopt)) {
		store_write_abort(s, txn);
		return 0;
	}
	if (!fresh) {
		*owner = mine;
		rc = STORE_EINSTANCE;
		goto fail;
	}
	if ((rc = store_meta_put_u64(s, txn, META_INSTANCE, instance)) != 0 ||
	    (rc = store_meta_put_u64(s, txn, META_NEXT_ID,
	    order_instance_first_id(instance))) != 0)
		goto fail;
	if ((rc = store_write_commit(s, txn)) == 0)
		s->instance = instance;
	return store_map_error(rc);
fail:
	store_write_abort(s, txn);
	return store_map_error(rc);
}

unsigned
store_instance(const struct store *s)
{
	return s->instance;
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
int
store_heartbeat(struct store *s, int64_t now_ms)
{
	MDB_txn *txn;
	int rc;

	if ((rc = store_write_begin(s, &txn)) != 0)
		return rc;
	rc = store_meta_put_u64(s, txn, META_HEARTBEAT, (uint64_t)now_ms);
	if (rc != 0) {
		store_write_abort(s, txn);
		return store_map_error(rc);
	}
	return store_map_error(store_write_commit(s, txn));
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

/* mdb_env_copyfd2 under map_lock, adopting a map another process grew. */
static int
copy_compact(struct store *s, int fd)
{
	int rc;

	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
		pthread_rwlock_unlock(&s->map_lock);
		if (rc != MDB_MAP_RESIZED || tries > 0)
			return note_error(s, rc);
		adopt_map_size(s);
		if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
			return errno;
	}
}

int
store_backup(struct store *s, const char *path, bool replace)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return ENAMETOOLONG;
	if (!replace && access(path, F_OK) == 0)
		return EEXIST;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return errno;
	rc = copy_compact(s, fd);
	if (rc == 0 && fsync(fd) != 0)
		rc = errno;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	/* Never over a file that appeared meanwhile, unless asked to. */
	if (rc == 0 && (replace ? rename(tmp, path)
	    : renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE)) != 0)
		rc = errno;
	if (rc != 0) {
		unlink(tmp);
		return store_map_error(rc);
	}
	return fsync_dir_of(path);
}
