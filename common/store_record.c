/*
 * store_record.c: the codec of an order record and of the index keys, as
 * store_record.h lays them out. It is the only code that reads or writes
 * these bytes in the store.
 *
 * ctl/check.c is its independent mirror: it restates the same
 * layout, written apart from this file, so that a bug in the encoding is
 * not shared by the checker. A change here is a change there (and a new
 * RECORD_VERSION or schema version: store.h, "Changing the format").
 */
#include "store_record.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "store.h"

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

void
store_status_key(unsigned char key[STATUS_KEY_LEN], enum order_status status,
    uint64_t id)
{
	key[0] = (unsigned char)status;
	put_u64be(key + 1, id);
}

void
store_user_status_key(unsigned char key[USER_STATUS_KEY_LEN], uint64_t user_id,
    enum order_status status, uint64_t id)
{
	put_u64be(key, user_id);
	key[8] = (unsigned char)status;
	put_u64be(key + 9, id);
}

int
store_record_head_decode(const void *data, size_t size, struct record_head *h)
{
	const unsigned char *p = data;

	if (size < RECORD_HEADER || p[0] != RECORD_VERSION ||
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
	if (size != RECORD_HEADER + (size_t)h->n_items * 8)
		return STORE_ECORRUPT;
	return 0;
}

void
store_record_head_encode(unsigned char *p, const struct record_head *h)
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

size_t
store_record_encode(unsigned char *p, const struct order *o)
{
	store_record_head_encode(p, &(struct record_head){
		.status = o->status,
		.attempts = o->attempts,
		.user_id = o->user_id,
		.total_cents = o->total_cents,
		.created_ms = o->created_ms,
		.updated_ms = o->updated_ms,
		.completed_ms = o->completed_ms,
		.lease_until_ms = o->lease_until_ms,
		.n_items = o->n_items,
	});
	for (uint32_t j = 0; j < o->n_items; j++)
		put_u64le(p + RECORD_HEADER + (size_t)j * 8, o->items[j]);
	return store_record_size(o);
}

size_t
store_record_size(const struct order *o)
{
	return RECORD_HEADER + (size_t)o->n_items * 8;
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
	return (uint64_t)store_record_size(o) + 8 +
	    STATUS_KEY_LEN + 8 + USER_STATUS_KEY_LEN + 2 * key +
	    IDEM_VALUE_LEN + 8;
}

int
store_record_decode(uint64_t id, const void *data, size_t size, struct order *o)
{
	struct record_head h;
	const unsigned char *items;
	int rc;

	if ((rc = store_record_head_decode(data, size, &h)) != 0)
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
	items = (const unsigned char *)data + RECORD_HEADER;
	for (uint32_t i = 0; i < h.n_items; i++)
		o->items[i] = get_u64le(items + (size_t)i * 8);
	return 0;
}
