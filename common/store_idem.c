/*
 * store_idem.c: Idempotency-Key records. A key created with an order maps
 * to it for the store's idem_ttl_ms (STORE_IDEM_TTL_MS unless set):
 *   idem       key -> u64 order id, i64 created_ms (host order), the
 *              body's SHA-256 (IDEM_VALUE_LEN bytes)
 *   idem_time  created_ms (big-endian i64) + key -> empty: the keys oldest
 *              first, so that expired ones go from the front, a few by
 *              each create or apply (store_idem_expire), never by a scan.
 * ctl/check.c restates this layout too.
 */
#include "store.h"

#include <lmdb.h>
#include <string.h>

#include "clock.h"
#include "store_impl.h"
#include "store_record.h"

#define IDEM_TIME_KEY_MAX (8 + ORDER_IDEM_KEY_MAX)

void
store_set_idem_ttl(struct store *s, int64_t ttl_ms)
{
	s->idem_ttl_ms = ttl_ms;
}

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

int
store_idem_settle(struct store *s, MDB_txn *txn, struct order *o,
    int64_t now_ms)
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

int
store_idem_put(struct store *s, MDB_txn *txn, const struct order *o,
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
int
store_idem_expire(struct store *s, MDB_txn *txn, int64_t now_ms, size_t max)
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

int
store_idem_get(struct store *s, const char *key, uint64_t *id,
    uint8_t digest[ORDER_DIGEST_LEN])
{
	MDB_txn *txn;
	int rc;

	if ((rc = store_read_begin(s, &txn)) != 0)
		return rc;
	rc = idem_lookup(s, txn, key, clock_realtime_ms(), id, digest);
	store_read_end(s, txn);
	return rc;
}
