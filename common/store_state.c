/*
 * store_state.c: the state machine. Every write of an order is here: its
 * creation and each change of its status, each as one write transaction
 * that checks the order's current state, rewrites its record, moves its
 * index entries (by_status, by_user_status) and the counters with it, and
 * commits all of that or nothing. No other code writes an order.
 *
 *   from                 to          by                    decided by
 *   (new)                Pending     store_create,         create_one
 *                                    store_apply
 *   Pending              Processing  store_claim,          decide_claim
 *   Processing, lapsed   Processing  store_advance
 *   Processing, attempt  Completed   store_complete,       decide_complete
 *                                    store_advance
 *   Processing, attempt  Pending     store_release         decide_release
 *   Pending              Cancelled   store_cancel(_from)   decide_cancel
 *
 * "lapsed": its lease_until_ms has passed (the claim counts a lease
 * expiry); "attempt": still under the attempt number of the caller's
 * claim, so that a worker whose lease was taken over cannot finish the
 * order. Every claim adds one to attempts. Completed and Cancelled are
 * final. A transition asked of an order in another state (or of an
 * unknown id) leaves it alone: done = false, or STORE_ECONFLICT from a
 * cancel. A new status needs its row here, its decide function and its
 * slot in the counters (store.h, "Changing the format").
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "clock.h"
#include "store_impl.h"
#include "store_record.h"

/*
 * (new) -> Pending: store o as order id, created at now_ms, with its index
 * entries and its Idempotency-Key if it has one; rec is room for its
 * record (RECORD_MAX bytes).
 */
static int
create_one(struct store *s, MDB_txn *txn, struct order *o, size_t id,
    int64_t now_ms, unsigned char *rec)
{
	unsigned char skey[STATUS_KEY_LEN], uskey[USER_STATUS_KEY_LEN];
	int64_t created = now_ms;
	MDB_val k, v;
	size_t len;
	int rc;

	o->id = id;
	o->status = ORDER_PENDING;
	o->attempts = 0;
	o->created_ms = o->updated_ms = now_ms;
	o->completed_ms = o->lease_until_ms = 0;
	len = store_record_encode(rec, o);
	k = mkval(&id, sizeof(id));
	v = mkval(rec, len);
	if ((rc = mdb_put(txn, s->orders, &k, &v, MDB_APPEND)) != 0)
		return rc;
	store_status_key(skey, ORDER_PENDING, id);
	k = mkval(skey, sizeof(skey));
	v = mkval(&created, sizeof(created));
	if ((rc = mdb_put(txn, s->by_status, &k, &v, 0)) != 0)
		return rc;
	store_user_status_key(uskey, o->user_id, ORDER_PENDING, id);
	k = mkval(uskey, sizeof(uskey));
	v = mkval("", 0);
	if ((rc = mdb_put(txn, s->by_user_status, &k, &v, 0)) != 0)
		return rc;
	return o->idem_key != NULL ? store_idem_put(s, txn, o, now_ms) : 0;
}

/* The body of store_create in txn, which it commits or aborts. */
static int
create_in(struct store *s, MDB_txn *txn, struct order *const *orders,
    size_t n, int64_t now_ms)
{
	unsigned char rec[RECORD_MAX];
	struct store_counters c;
	uint64_t next_id, created = 0;
	int rc;

	if ((rc = store_meta_get_u64(s, txn, META_NEXT_ID, &next_id)) != 0 ||
	    (rc = store_counters_get(s, txn, &c)) != 0)
		goto fail;
	if ((rc = store_room_for_orders(s, c.by_status[ORDER_PENDING] +
	    c.by_status[ORDER_PROCESSING] + n, 0)) != 0)
		goto fail;
	if (next_id + n - 1 > order_instance_last_id(s->instance)) {
		rc = STORE_ENOIDS;
		goto fail;
	}
	if ((rc = store_idem_expire(s, txn, now_ms, 2 * n + 16)) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct order *o = orders[i];

		o->idem_result = ORDER_IDEM_NEW;
		if (o->n_items > ORDER_MAX_ITEMS) {
			rc = EINVAL;
			goto fail;
		}
		if ((rc = store_idem_settle(s, txn, o, now_ms)) != 0)
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
	if ((rc = store_meta_put_u64(s, txn, META_NEXT_ID, next_id)) != 0 ||
	    (rc = store_counters_put(s, txn, &c)) != 0)
		goto fail;
	return store_map_error(store_write_commit(s, txn));
fail:
	store_write_abort(s, txn);
	for (size_t i = 0; i < n; i++)
		orders[i]->id = 0;
	return store_map_error(rc);
}

int
store_create(struct store *s, struct order *const *orders, size_t n,
    int64_t now_ms)
{
	MDB_txn *txn;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = store_write_begin(s, &txn)) != 0)
		return rc;
	return create_in(s, txn, orders, n, now_ms);
}

int
store_admit(struct store *s, struct order *const *orders, size_t n,
    uint64_t unapplied, uint64_t pending_bytes, int64_t now_ms)
{
	struct store_counters c;
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	if ((rc = store_counters_get(s, txn, &c)) != 0 ||
	    (rc = store_room_for_orders(s, c.by_status[ORDER_PENDING] +
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
		    (rc = store_idem_settle(s, txn, o, now_ms)) != 0)
			goto out;
	}
out:
	store_read_end(s, txn);
	return store_map_error(rc);
}

int
store_apply(struct store *s, struct order *const *orders, size_t n,
    uint64_t journal_lsn)
{
	unsigned char rec[RECORD_MAX];
	struct store_counters c;
	uint64_t next_id, created = 0;
	MDB_txn *txn;
	int rc;

	if ((rc = store_write_begin(s, &txn)) != 0)
		return store_map_error(rc);
	if ((rc = store_meta_get_u64(s, txn, META_NEXT_ID, &next_id)) != 0 ||
	    (rc = store_counters_get(s, txn, &c)) != 0 ||
	    (rc = store_idem_expire(s, txn, clock_realtime_ms(),
	    2 * n + 16)) != 0)
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
	if ((rc = store_meta_put_u64(s, txn, META_NEXT_ID, next_id)) != 0 ||
	    (rc = store_meta_put_u64(s, txn, META_JOURNAL_LSN,
	    journal_lsn)) != 0 ||
	    (rc = store_counters_put(s, txn, &c)) != 0)
		goto fail;
	return store_map_error(store_write_commit(s, txn));
fail:
	store_write_abort(s, txn);
	return store_map_error(rc);
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
	unsigned char rec[RECORD_MAX];
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
	if ((rc = store_record_head_decode(v.mv_data, v.mv_size, &h)) != 0)
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
	store_record_head_encode(rec, &h);
	nv = mkval(rec, v.mv_size);
	if ((rc = mdb_put(txn, s->orders, &k, &nv, 0)) != 0)
		return rc;

	if (old != h.status) {
		store_status_key(skey, old, id);
		k = mkval(skey, sizeof(skey));
		rc = mdb_del(txn, s->by_status, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		store_user_status_key(uskey, h.user_id, old, id);
		k = mkval(uskey, sizeof(uskey));
		rc = mdb_del(txn, s->by_user_status, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		store_user_status_key(uskey, h.user_id, h.status, id);
		k = mkval(uskey, sizeof(uskey));
		v = mkval("", 0);
		if ((rc = mdb_put(txn, s->by_user_status, &k, &v, 0)) != 0)
			return rc;
	}
	store_status_key(skey, h.status, id);
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
	if ((rc = store_write_begin(s, &txn)) != 0)
		return rc;
	if (t != NULL) {
		t->taken = t->take(t->arg, &g[0].c[0].id, &now_ms);
		if (!t->taken) {
			store_write_abort(s, txn);
			return 0;
		}
	}
	if ((rc = store_counters_get(s, txn, &cnt)) != 0)
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
		store_write_abort(s, txn);
		return 0;
	}
	if ((rc = store_counters_put(s, txn, &cnt)) != 0)
		goto fail;
	rc = store_write_commit(s, txn);
	if (rc != 0)
		goto failed;
	return 0;
fail:
	store_write_abort(s, txn);
failed:
	for (size_t j = 0; j < n_groups; j++)
		for (size_t i = 0; i < g[j].n; i++)
			g[j].c[i].done = false;
	return store_map_error(rc);
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
