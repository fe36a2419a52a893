/*
 * store_impl.h: what the files of the store share, and nothing else. Only
 * common/store*.c include it, after <lmdb.h>; everything outside them
 * goes through store.h.
 *
 * The files, one seam each:
 *   store.c         the environment (open, close, schema and its
 *                   upgrades), transactions and the thread-local reader,
 *                   errors, the meta database (counters, room for new
 *                   orders), maintenance (heartbeat, reader check, usage,
 *                   backup)
 *   store_record.c  the codec of an order record and of the index keys
 *                   (store_record.h); ctl/check.c mirrors it
 *   store_idem.c    Idempotency-Key records (idem, idem_time)
 *   store_state.c   every write of an order: creation and each status
 *                   transition, one state-checked write transaction each
 *   store_read.c    reads: one order, the oldest of a status, the
 *                   unfinished, the state of given ids, lists, counters,
 *                   the journal's state
 */
#ifndef OP_STORE_IMPL_H
#define OP_STORE_IMPL_H

#ifndef MDB_VERSION_MAJOR
#error "store_impl.h: include <lmdb.h> first (only common/store*.c may)"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "order.h"
#include "store.h"

/* The keys of meta (store.h lists their values). */
#define META_SCHEMA "schema_version"
#define META_NEXT_ID "next_id"
#define META_COUNTERS "counters"
#define META_HEARTBEAT "heartbeat"
#define META_HIST "processing_hist"
#define META_JOURNAL_LSN "journal_lsn"
#define META_INSTANCE "instance"

struct reader;

struct store {
	MDB_env *env;
	MDB_dbi meta, orders, by_status, by_user_status, idem, idem_time;
	unsigned upgraded_from;	/* schema version before this open, or 0 */
	unsigned instance;	/* meta instance, as last read or written */
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

static inline MDB_val
mkval(const void *data, size_t size)
{
	return (MDB_val){ .mv_size = size, .mv_data = (void *)data };
}

/* store.c: transactions and errors. */

/* Begin this thread's read transaction; end it with store_read_end. */
int store_read_begin(struct store *s, MDB_txn **txn);
void store_read_end(struct store *s, MDB_txn *txn);
/*
 * Begin a write transaction; end it with store_write_commit or
 * store_write_abort.
 */
int store_write_begin(struct store *s, MDB_txn **txn);
int store_write_commit(struct store *s, MDB_txn *txn);
void store_write_abort(struct store *s, MDB_txn *txn);
/* LMDB's "map full" and the disk's ENOSPC as STORE_EFULL, STORE_EDISKFULL. */
int store_map_error(int rc);

/* store.c: meta. */

/* The counters as one transaction sees them, and written back whole. */
int store_counters_get(struct store *s, MDB_txn *txn, struct store_counters *c);
int store_counters_put(struct store *s, MDB_txn *txn,
    const struct store_counters *c);
int store_meta_get_u64(struct store *s, MDB_txn *txn, const char *key,
    uint64_t *out);
int store_meta_put_u64(struct store *s, MDB_txn *txn, const char *key,
    uint64_t value);
/* 0, or STORE_EFULL or STORE_EDISKFULL if new orders must be refused. */
int store_room_for_orders(struct store *s, uint64_t unfinished,
    uint64_t pending_bytes);

/* store_idem.c: Idempotency-Key records. */

/*
 * An order's Idempotency-Key seen before: idem_result REPLAY (id the
 * first order's) for the same body, MISMATCH (id 0) for another; left
 * NEW if the key is new or o has none. 0, or the error of the look-up.
 */
int store_idem_settle(struct store *s, MDB_txn *txn, struct order *o,
    int64_t now_ms);
/* Record o's Idempotency-Key (o->idem_key set) as made at now_ms. */
int store_idem_put(struct store *s, MDB_txn *txn, const struct order *o,
    int64_t now_ms);
/* Drop up to max expired keys, oldest first. */
int store_idem_expire(struct store *s, MDB_txn *txn, int64_t now_ms,
    size_t max);

#endif
