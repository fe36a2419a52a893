/*
 * store_read.c: the reads. Each is one read transaction (the calling
 * thread's, store.c): one order, the oldest order of a status (order-ctl),
 * the unfinished orders the worker's sweep walks (by_status), the state of
 * given ids, lists of orders by user and status (walking by_user_status,
 * by_status or the orders themselves), the counters and the journal's
 * state. Nothing here writes.
 */
#include "store.h"

#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "store_impl.h"
#include "store_record.h"

int
store_get(struct store *s, uint64_t id, struct order *o)
{
	size_t key = (size_t)id;
	MDB_val k = mkval(&key, sizeof(key)), v;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	rc = mdb_get(txn, s->orders, &k, &v);
	if (rc == 0)
		rc = store_record_decode(id, v.mv_data, v.mv_size, o);
	else if (rc == MDB_NOTFOUND)
		rc = STORE_ENOTFOUND;
	store_read_end(s, txn);
	return rc;
}

int
store_oldest(struct store *s, enum order_status status, struct order *o)
{
	unsigned char start[STATUS_KEY_LEN];
	const unsigned char *key;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t id;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->by_status, &cur)) != 0)
		goto out;
	store_status_key(start, status, 0);
	k = mkval(start, sizeof(start));
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	key = k.mv_data;
	if (rc == 0 && (k.mv_size != STATUS_KEY_LEN ||
	    key[0] != (unsigned char)status))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		id = (size_t)get_u64be(key + 1);
		k = mkval(&id, sizeof(id));
		rc = mdb_get(txn, s->orders, &k, &v);
		/* An index entry without its order: the index is wrong. */
		if (rc == MDB_NOTFOUND)
			rc = STORE_ECORRUPT;
		else if (rc == 0)
			rc = store_record_decode(id, v.mv_data, v.mv_size, o);
	}
	if (rc == MDB_NOTFOUND)
		rc = STORE_ENOTFOUND;
	mdb_cursor_close(cur);
out:
	store_read_end(s, txn);
	return rc;
}

int
store_unfinished(struct store *s, store_unfinished_fn fn, void *arg)
{
	unsigned char start[STATUS_KEY_LEN];
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->by_status, &cur)) != 0)
		goto out;
	store_status_key(start, ORDER_PENDING, 0);
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
	store_read_end(s, txn);
	return rc;
}

int
store_peek(struct store *s, const uint64_t *ids, size_t n,
    store_unfinished_fn fn, void *arg)
{
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		size_t key = (size_t)ids[i];
		MDB_val k = mkval(&key, sizeof(key)), v;
		struct record_head h;
		struct store_unfinished u;

		rc = mdb_get(txn, s->orders, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 ||
		    (rc = store_record_head_decode(v.mv_data, v.mv_size,
		    &h)) != 0)
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
	store_read_end(s, txn);
	return rc;
}

/*
 * One index range of a list: the entries whose keys start with key's
 * first prefix_len bytes, each key ending with an order id (big-endian,
 * so key order is id order within the range, and a walk backwards with
 * MDB_PREV is newest first).
 */
struct range {
	MDB_cursor *cur;
	unsigned char key[USER_STATUS_KEY_LEN];
	size_t prefix_len;
	uint64_t id;		/* the entry at the cursor; 0: none left */
};

/* Set r->id from the cursor's entry k (rc: how the cursor moved). */
static int
range_take(struct range *r, int rc, const MDB_val *k)
{
	r->id = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (k->mv_size == r->prefix_len + 8 &&
	    memcmp(k->mv_data, r->key, r->prefix_len) == 0)
		r->id = get_u64be((const unsigned char *)k->mv_data +
		    r->prefix_len);
	return 0;
}

/*
 * Put cur on the first entry of a walk from key: the first at or above
 * it, or, walking backwards (desc), the last below it. Keys are compared
 * as LMDB compares them, so this serves the indexes and the orders alike.
 */
static int
cursor_start(MDB_cursor *cur, MDB_val *k, MDB_val *v, bool desc)
{
	int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);

	if (!desc)
		return rc;
	/* At the first key at or above key, which the walk excludes. */
	if (rc == 0)
		return mdb_cursor_get(cur, k, v, MDB_PREV);
	if (rc == MDB_NOTFOUND)	/* every key is below it */
		return mdb_cursor_get(cur, k, v, MDB_LAST);
	return rc;
}

/* Move r's cursor to the start of its range (from r->key); set r->id. */
static int
range_start(struct range *r, bool desc)
{
	MDB_val k = mkval(r->key, r->prefix_len + 8), v;

	return range_take(r, cursor_start(r->cur, &k, &v, desc), &k);
}

/* Move r's cursor one entry (MDB_NEXT or MDB_PREV); set r->id. */
static int
range_step(struct range *r, MDB_cursor_op op)
{
	MDB_val k, v;

	return range_take(r, mdb_cursor_get(r->cur, &k, &v, op), &k);
}

/*
 * The ranges of the list f asks for, each from f->after: by_user_status
 * for a user (one range for one status, else the user's four merged by
 * id), by_status for a status alone. 0 ranges: no filter, walk the orders.
 * from is the first id a walk may meet (ascending) or the id every id
 * it meets is below (descending).
 */
static size_t
list_ranges(struct store *s, const struct store_filter *f, uint64_t from,
    struct range r[ORDER_STATUS_COUNT], MDB_dbi *dbi)
{
	size_t n = 0;

	if (f->user_id != 0) {
		*dbi = s->by_user_status;
		for (int st = 0; st < ORDER_STATUS_COUNT; st++) {
			if (f->by_status && (enum order_status)st != f->status)
				continue;
			store_user_status_key(r[n].key, f->user_id,
			    (enum order_status)st, from);
			r[n++].prefix_len = 9;
		}
	} else if (f->by_status) {
		*dbi = s->by_status;
		store_status_key(r[n].key, f->status, from);
		r[n++].prefix_len = 1;
	}
	return n;
}

/*
 * Walk the ranges of f (list_ranges) or the orders themselves from
 * f->after, oldest first (forwards) or newest first (f->desc: backwards),
 * handing fn up to f->limit orders; *next is the last id handed when more
 * follow, else 0.
 */
int
store_list(struct store *s, const struct store_filter *f, store_order_fn fn,
    void *arg, uint64_t *next)
{
	struct range r[ORDER_STATUS_COUNT] = { 0 };
	size_t n_ranges, i;
	struct order o;
	MDB_cursor *all = NULL;
	MDB_cursor_op step = f->desc ? MDB_PREV : MDB_NEXT;
	MDB_txn *txn;
	MDB_dbi dbi = s->orders;
	MDB_val k, v;
	size_t key;
	uint64_t last = 0, from;
	uint32_t emitted = 0;
	int rc;

	*next = 0;
	/*
	 * Forwards, ids from after + 1; backwards, ids below after, or below
	 * every id (ids are at most ORDER_MAX_INTEGER) when there is none.
	 */
	if (f->desc)
		from = f->after != 0 ? f->after : UINT64_MAX;
	else if (f->after == UINT64_MAX)
		return 0;
	else
		from = f->after + 1;
	n_ranges = list_ranges(s, f, from, r, &dbi);
	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	order_init(&o);
	if (n_ranges == 0) {
		if ((rc = mdb_cursor_open(txn, s->orders, &all)) != 0)
			goto out;
		key = (size_t)from;
		k = mkval(&key, sizeof(key));
		rc = cursor_start(all, &k, &v, f->desc);
	}
	for (i = 0; i < n_ranges && rc == 0; i++)
		if ((rc = mdb_cursor_open(txn, dbi, &r[i].cur)) == 0)
			rc = range_start(&r[i], f->desc);
	while (rc == 0) {
		struct range *pick = NULL;
		uint64_t id;

		if (n_ranges == 0) {
			if (k.mv_size != sizeof(key))
				break;
			memcpy(&key, k.mv_data, sizeof(key));
			id = key;
		} else {
			/*
			 * The next order of the merged ranges: the lowest id
			 * at any cursor, or the highest walking backwards.
			 */
			for (i = 0; i < n_ranges; i++)
				if (r[i].id != 0 && (pick == NULL ||
				    (f->desc ? r[i].id > pick->id
				    : r[i].id < pick->id)))
					pick = &r[i];
			if (pick == NULL)
				break;
			id = pick->id;
			key = (size_t)id;
			k = mkval(&key, sizeof(key));
			if ((rc = mdb_get(txn, s->orders, &k, &v)) != 0)
				break;
		}
		if ((rc = store_record_decode(id, v.mv_data, v.mv_size,
		    &o)) != 0)
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
		rc = pick != NULL ? range_step(pick, step)
		    : mdb_cursor_get(all, &k, &v, step);
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
	store_read_end(s, txn);
	return rc;
}

int
store_counters(struct store *s, struct store_counters *c)
{
	MDB_val k = mkval(META_HEARTBEAT, sizeof(META_HEARTBEAT) - 1), v;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	rc = store_counters_get(s, txn, c);
	if (rc == 0)
		rc = store_meta_get_u64(s, txn, META_NEXT_ID, &c->next_id);
	if (rc == 0) {
		rc = mdb_get(txn, s->meta, &k, &v);
		if (rc == 0 && v.mv_size == sizeof(c->heartbeat_ms))
			memcpy(&c->heartbeat_ms, v.mv_data, v.mv_size);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	store_read_end(s, txn);
	return rc;
}

int
store_journal_state(struct store *s, uint64_t *journal_lsn, uint64_t *next_id)
{
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	rc = store_meta_get_u64(s, txn, META_JOURNAL_LSN, journal_lsn);
	if (rc == MDB_NOTFOUND) {
		*journal_lsn = 0;
		rc = 0;
	}
	if (rc == 0)
		rc = store_meta_get_u64(s, txn, META_NEXT_ID, next_id);
	store_read_end(s, txn);
	return rc;
}
