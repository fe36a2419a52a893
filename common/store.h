/*
 * store: the LMDB environment that holds every order, the source of truth.
 *
 * Databases (schema version STORE_SCHEMA_VERSION, checked at open):
 *   meta       "schema_version" -> u32, "next_id" -> u64,
 *              "instance" -> u64: the instance whose ids this environment
 *              hands out (order.h; version 5 adds it, 0 for an older
 *              environment, whose ids all count from 1),
 *              "counters" -> u64[10] (store.c, CNT_*), "heartbeat" -> i64 ms,
 *              "processing_hist" -> u64[STORE_HIST_BUCKETS] (absent: 0s),
 *              "journal_lsn" -> u64: how far order-api's journal is
 *              applied (absent: 0; see store_apply). Version 4 adds it,
 *              and nothing else: an older release must not open an
 *              environment whose newest orders may be in the journal
 *              only, and hand out their ids again.
 *   orders     id (native u64, MDB_INTEGERKEY) -> order record
 *              (store_record.h)
 *   by_status  status u8 + id (big-endian u64) -> for Pending, created_ms;
 *              for Processing, lease_until_ms; else empty. The Pending and
 *              Processing entries are the index of unfinished orders that
 *              the worker's sweep walks.
 *   by_user_status  user_id (BE u64) + status u8 + id (BE u64) -> empty:
 *              a user's orders in one status (since version 2; store_open
 *              builds it from the orders when it opens a version 1
 *              environment). A list of a user's orders in every status
 *              merges the user's four ranges by id. Version 2 also kept
 *              a by_user index (user_id + id), dropped in version 3: every
 *              new order put one entry on a random leaf of it, and a
 *              commit's cost on the disk is about one write per scattered
 *              page it dirties.
 *   idem       Idempotency-Key -> u64 order id, i64 created_ms, SHA-256
 *              of the body (32 bytes)
 *   idem_time  created_ms (BE i64) + Idempotency-Key -> empty: the keys
 *              oldest first, so expired ones are dropped from the front
 *              a few at a time by each create or apply, never by a scan
 * Every state change is one write transaction that checks the current
 * state, moves the indexes and the counters with it, and commits with full
 * sync unless the store was opened with STORE_NOSYNC.
 *
 * Threads and processes: one struct store per process, opened after any
 * fork and never used in a child (LMDB's rule). Its functions may be called
 * from many threads at once (MDB_NOTLS; each thread keeps one read
 * transaction that it resets and renews). Write calls serialise on LMDB's
 * writer lock, across processes too.
 *
 * Errors: functions return 0 or an error code for store_strerror: one of
 * the STORE_E* codes below, an LMDB code or an errno value. A failed
 * commit stored nothing. One that failed writing LMDB's meta page leaves
 * the environment unusable: it reports MDB_PANIC (store_fatal), as every
 * later call does, and store_broken says so from then on.
 *
 * The code, one seam a file (store_impl.h, private to them, says more):
 * store.c the environment, schema, transactions, errors, meta and
 * maintenance; store_record.c the bytes of a record and of index keys;
 * store_idem.c the Idempotency-Keys; store_state.c every write of an order
 * (creation and each transition); store_read.c the reads.
 *
 * Changing the format. An environment of a newer version than the code is
 * refused, so every change of what is stored goes through these steps:
 *   1. The bytes of a record or an index key: store_record.h (the
 *      layout, struct record_head) and store_record.c (the codec; an
 *      order's fields reach the record only through
 *      store_record_encode and store_record_decode, and its size through
 *      store_record_size and store_record_room). Bump RECORD_VERSION and
 *      teach store_record_head_decode the old one: every transition
 *      rewrites the head with the new version, so an old record
 *      rewritten so must be a valid new one (or the upgrade rewrites
 *      them all). Bump the schema too (step 2), so that an older release
 *      refuses the environment rather than meet records it cannot
 *      decode.
 *   2. A database, a meta key, a counter or one's meaning (the list
 *      above, store_impl.h's META_* keys, store.c's CNT_* slots): bump
 *      STORE_SCHEMA_VERSION. A new status is such a change: the counters
 *      record has one slot per status (store.c fails to build until they
 *      fit), and store_state.c's table gets its row and decide function.
 *   3. Keep every index in step where orders change: create_one for new
 *      orders and transition_one for every change of status, both in
 *      store_state.c (no other code writes an order); store_idem_put and
 *      store_idem_expire (store_idem.c) for the keys; the reads that walk it
 *      (store_read.c).
 *   4. Teach schema_upgrade (store.c) to bring an environment of the
 *      previous version up to the new one, even when that changes
 *      nothing stored (store.c fails to build until it has the step): it
 *      runs inside schema_init's write transaction, so an upgrade is all
 *      or nothing, and store_upgraded_from tells the caller, who logs it.
 *      man/order-processing.7 lists what each version changed.
 *   5. Teach ctl/check.c the new format: its layout comment,
 *      its constants (RECORD_VERSION, SCHEMA_VERSION, CNT_*, the key
 *      lengths) and its checks. It restates the format apart from this
 *      code on purpose, so that a bug here is not shared by the checker.
 *   6. tests/unit/test_store.c: the new field or database round-trips,
 *      and test_upgrade* opens an environment of the previous version
 *      (written with plain LMDB) and finds it upgraded.
 *   7. tests/lib/optest/faults.py's check_self_test edits a copy's bytes
 *      (a record's status byte and length, a by_user_status key's status,
 *      counters slot 2, the 11 histogram buckets, the 4 statuses): move
 *      its offsets with the layout, and add a mutation order-ctl check must
 *      catch for what is new.
 *   8. This comment's list of databases.
 */
#ifndef OP_STORE_H
#define OP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "order.h"

#define STORE_SCHEMA_VERSION 5
/* New orders are refused once this share of the map is in use, so that
 * claims and completions, which need fresh pages, still fit. */
#define STORE_HIGH_WATER_PERCENT 90
/*
 * ... counting this many bytes for each unfinished order
 * (store_room_for_orders).
 */
#define STORE_UNFINISHED_RESERVE 256
/* Free disk space kept beyond that, for page copies. */
#define STORE_DISK_RESERVE (256 * 1024)

enum {
	STORE_ENOTFOUND = -31001,	/* no such order */
	STORE_ECONFLICT = -31002,	/* the order is not in the needed state */
	STORE_EFULL = -31003,		/* map at its high-water mark or full */
	STORE_ESCHEMA = -31004,		/* environment of another schema */
	STORE_ECORRUPT = -31005,	/* a record that does not decode */
	STORE_EDISKFULL = -31006,	/* the disk is full or at its reserve */
	STORE_EOLDSCHEMA = -31007,	/* an older schema, opened read-only */
	STORE_EINSTANCE = -31008,	/* another instance's environment */
	STORE_ENOIDS = -31009,		/* the instance's ids are all used */
};

/* store_open flags */
#define STORE_NOSYNC 0x1	/* opt-in: power loss drops the last commits */
/*
 * Read only (order-ctl): MDB_RDONLY, nothing created or upgraded, every
 * write fails. Still needs write access to lock.mdb (a reader slot).
 */
#define STORE_RDONLY 0x2

struct store;

/*
 * Upper bounds, in ms, of the processing-time histogram's buckets (creation
 * to completion); a last bucket takes the rest (+Inf).
 */
#define STORE_HIST_BOUNDS_MS \
	{ 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000 }
#define STORE_HIST_BUCKETS 11

struct store_counters {
	uint64_t by_status[ORDER_STATUS_COUNT];	/* orders now in each status */
	uint64_t created_total;		/* orders ever created */
	uint64_t completed_total;	/* orders ever completed */
	uint64_t processing_ms_sum;	/* sum of created -> completed, ms */
	uint64_t lease_expiries_total;	/* claims taken over after a lapse */
	uint64_t released_total;	/* handed back to Pending on stop */
	/* Completed orders by processing time, per bucket (not cumulative). */
	uint64_t processing_hist[STORE_HIST_BUCKETS];
	int64_t heartbeat_ms;		/* last worker heartbeat, 0: never */
	uint64_t next_id;		/* the id the next new order gets */
};

/* A claim or a finish of one order, in a batch. */
struct store_claim {
	uint64_t id;
	uint32_t attempt;	/* in: finish/release; out: claim's number */
	int64_t created_ms;	/* out: claim */
	bool done;		/* out: the transition happened */
};

/* An unfinished order as the sweep reports it. */
struct store_unfinished {
	uint64_t id;
	enum order_status status;	/* Pending or Processing */
	int64_t due_ms;		/* Pending: created_ms; Processing: lease end */
};

struct store_filter {
	bool by_status;
	enum order_status status;
	uint64_t user_id;	/* 0: any user */
	uint64_t after;		/* only ids after this one in the list's
				   order (0: from the start) */
	uint32_t limit;
	bool desc;		/* newest first: after then means ids below
				   it */
};

typedef int (*store_order_fn)(const struct order *o, void *arg);
typedef int (*store_unfinished_fn)(const struct store_unfinished *u,
    void *arg);
/*
 * Hands store_cancel_from the order to cancel, once the write transaction
 * has begun: its id in *id and the time in *now_ms; false: none, and
 * nothing is written.
 */
typedef bool (*store_take_id_fn)(void *arg, uint64_t *id, int64_t *now_ms);

/* ---- Lifecycle: open (and upgrade), close, errors (store.c) ---- */

/*
 * Create dir's environment if needed and check its schema. An environment
 * of an older schema is upgraded in one write transaction (all or
 * nothing); one of a newer schema is refused with STORE_ESCHEMA. With
 * STORE_RDONLY nothing is created or written: an environment that is not
 * there fails (ENOENT), one with no schema with STORE_ESCHEMA, one of an
 * older schema with STORE_EOLDSCHEMA (order-api upgrades it when it
 * starts). map_size 0 takes the size the environment records.
 */
int store_open(struct store **s, const char *dir, uint64_t map_size,
    unsigned flags);
/* The schema version this open upgraded the environment from, or 0. */
unsigned store_upgraded_from(const struct store *s);
/*
 * Make the environment instance's (order.h): 0 when it is already, or
 * when it has never handed out an id and adopt is set, which makes it
 * the instance's from now on (next_id becomes the instance's first id).
 * Without adopt, an environment that has never handed out an id is left
 * as it is and 0 returned: order-api adopts it when it starts, after
 * replaying its journal, the one place where an order may be that LMDB
 * does not hold yet. Otherwise STORE_EINSTANCE, *owner the environment's
 * instance, and nothing changes. After it, store_instance tells.
 */
int store_instance_claim(struct store *s, unsigned instance, bool adopt,
    unsigned *owner);
/* The instance whose ids the environment hands out. */
unsigned store_instance(const struct store *s);
void store_close(struct store *s);
const char *store_strerror(int err);
/*
 * Does err leave the environment unusable until it is closed and opened
 * again (LMDB's MDB_PANIC after a failed write of its meta page, or a data
 * file that is not LMDB's)? Every later call then fails: the process
 * should end (or open the store again).
 */
bool store_fatal(int err);
/* 0, or the first store_fatal error any call on s has met. */
int store_broken(struct store *s);

/* How long an Idempotency-Key is kept (default 24 h). */
#define STORE_IDEM_TTL_MS (INT64_C(24) * 3600 * 1000)
void store_set_idem_ttl(struct store *s, int64_t ttl_ms);

/* ---- Writes: new orders, directly or via a journal (store_state.c) ---- */

/*
 * Create n orders in one transaction: assigns ids, status Pending and the
 * times. An order with an idem_key that is already known is not created
 * again: idem_result says REPLAY (id set to the first order's) or MISMATCH
 * (another body; id 0). On any error nothing is stored.
 */
int store_create(struct store *s, struct order *const *orders, size_t n,
    int64_t now_ms);
/*
 * Creates through a write-ahead journal (order-api's): the caller admits
 * orders with store_admit, gives them ids and created_ms itself, makes
 * them durable in its journal, answers, and later applies them with
 * store_apply in one transaction that also records how far the journal
 * is applied ("journal_lsn"), so that after a crash it replays the
 * journal from there.
 *
 * store_admit: would these n orders be accepted now, with unapplied more
 * already journaled, and pending_bytes kept free (in the map and on the
 * disk) for the records of both (store_record_room)? STORE_EFULL or
 * STORE_EDISKFULL as store_create would refuse them; for each order with
 * an idem_key and idem_result NEW, looks the key up and sets idem_result
 * (and id) as store_create does. Reads only.
 */
int store_admit(struct store *s, struct order *const *orders, size_t n,
    uint64_t unapplied, uint64_t pending_bytes, int64_t now_ms);
/*
 * Room to keep for storing order o: the bytes of its record and index
 * entries (slightly less than they take once stored).
 */
uint64_t store_record_room(const struct order *o);
/*
 * Store the orders (ids increasing, created_ms set; Pending) and their
 * Idempotency-Keys in one transaction, next_id after the last, and
 * journal_lsn; orders whose id is below next_id are already stored and
 * skipped. Never refused for room: they were admitted.
 */
int store_apply(struct store *s, struct order *const *orders, size_t n,
    uint64_t journal_lsn);

/* ---- Writes: transitions (store_state.c, with their table) ---- */

/* Pending -> Cancelled; STORE_ECONFLICT (o filled) if not Pending. */
int store_cancel(struct store *s, uint64_t id, int64_t now_ms,
    struct order *o);
/*
 * store_cancel of the order take names once the writer lock is held, so
 * that a caller waiting for the lock can still withdraw it; *taken says
 * whether take named one (if the transaction cannot begin, take is not
 * called and *taken is false).
 */
int store_cancel_from(struct store *s, store_take_id_fn take, void *arg,
    struct order *o, bool *taken);
/*
 * Claim: Pending, or Processing with a lapsed lease, -> Processing until
 * lease_until_ms, attempt + 1. Others are left alone (done = false).
 */
int store_claim(struct store *s, struct store_claim *c, size_t n,
    int64_t now_ms, int64_t lease_until_ms);
/* Processing under the given attempt -> Completed; others untouched. */
int store_complete(struct store *s, struct store_claim *c, size_t n,
    int64_t now_ms);
/*
 * store_complete of done[] and store_claim of claim[] in one transaction
 * (the worker's loop: one commit, one fsync, for both).
 */
int store_advance(struct store *s, struct store_claim *done, size_t n_done,
    struct store_claim *claim, size_t n_claim, int64_t now_ms,
    int64_t lease_until_ms);
/* Processing under the given attempt -> Pending (a clean stop). */
int store_release(struct store *s, struct store_claim *c, size_t n,
    int64_t now_ms);

/* ---- Reads (store_read.c; Idempotency-Keys: store_idem.c) ---- */

/* Read one order; STORE_ENOTFOUND if there is none. */
int store_get(struct store *s, uint64_t id, struct order *o);
/*
 * The oldest order (lowest id) now in status, from the first by_status
 * entry of that status: O(1), no scan. STORE_ENOTFOUND if there is none.
 */
int store_oldest(struct store *s, enum order_status status, struct order *o);
/*
 * Call fn for each order matching f, oldest first (f->desc: newest
 * first), at most f->limit; *next is the last id passed to fn if more
 * match, else 0. Each walks an index (or the orders) from f->after, in
 * either direction: O(page), never a scan.
 */
int store_list(struct store *s, const struct store_filter *f,
    store_order_fn fn, void *arg, uint64_t *next);
/* Call fn for every Pending and Processing order, oldest first. */
int store_unfinished(struct store *s, store_unfinished_fn fn, void *arg);
/* Status and created time of the given ids (absent ones are skipped). */
int store_peek(struct store *s, const uint64_t *ids, size_t n,
    store_unfinished_fn fn, void *arg);
/*
 * Look an Idempotency-Key up: its order and body digest, or
 * STORE_ENOTFOUND (never seen, or expired).
 */
int store_idem_get(struct store *s, const char *key, uint64_t *id,
    uint8_t digest[ORDER_DIGEST_LEN]);
/* The recorded journal_lsn (0 if none) and next_id. */
int store_journal_state(struct store *s, uint64_t *journal_lsn,
    uint64_t *next_id);

/* ---- Maintenance: counters (store_read.c), heartbeat, checks, usage ---- */

/* The counters, next_id and the last heartbeat, as one read sees them. */
int store_counters(struct store *s, struct store_counters *c);
/* Record that a worker is alive now. */
int store_heartbeat(struct store *s, int64_t now_ms);
/* Clear reader slots of dead processes; *cleared says how many. */
int store_reader_check(struct store *s, int *cleared);
/* Bytes of the map in use and the map size. */
int store_usage(struct store *s, uint64_t *used, uint64_t *map_size);
/*
 * A consistent, compacted copy of the environment as one read transaction
 * sees it (writers go on meanwhile), in the file path: written as
 * path.tmp, flushed, renamed to path, and the directory flushed, so that
 * path is either absent or whole. An existing path is refused (EEXIST)
 * unless replace. The copy is a data.mdb of its own (no lock.mdb needed).
 */
int store_backup(struct store *s, const char *path, bool replace);

#endif
