/*
 * store_record.h: the bytes of an order record and of the index keys
 * (store_record.c), for common/store*.c only. Plain bytes: no LMDB here.
 *
 * The order record (the value of orders[id]), little-endian:
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
 * The index keys, big-endian so that key order is id order:
 *   by_status       status u8 + id u64                (STATUS_KEY_LEN)
 *   by_user_status  user_id u64 + status u8 + id u64  (USER_STATUS_KEY_LEN)
 * ctl/check.c restates all of this on purpose: change both.
 */
#ifndef OP_STORE_RECORD_H
#define OP_STORE_RECORD_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "order.h"

#define RECORD_VERSION 1
#define RECORD_HEADER 64
/* The longest record: ORDER_MAX_ITEMS items. */
#define RECORD_MAX (RECORD_HEADER + ORDER_MAX_ITEMS * 8)
#define STATUS_KEY_LEN 9
#define USER_STATUS_KEY_LEN 17
/* The bytes of an idem value: order id, created_ms, body digest. */
#define IDEM_VALUE_LEN (8 + 8 + ORDER_DIGEST_LEN)

/* The record's fixed part; the items stay where they are. */
struct record_head {
	enum order_status status;
	uint32_t attempts;
	int64_t created_ms, updated_ms, completed_ms, lease_until_ms;
	uint64_t user_id;
	int64_t total_cents;
	uint32_t n_items;
};

/* Decode the head of a record of size bytes; STORE_ECORRUPT if not one. */
int store_record_head_decode(const void *data, size_t size,
    struct record_head *h);
/* Write h over the first RECORD_HEADER bytes of p (the items stay). */
void store_record_head_encode(unsigned char *p, const struct record_head *h);
/*
 * Encode order o's record (all but its id) into p, RECORD_MAX bytes at
 * most; returns its length.
 */
size_t store_record_encode(unsigned char *p, const struct order *o);
/* The length store_record_encode gives order o's record. */
size_t store_record_size(const struct order *o);
/* Decode record id into o (items included); STORE_ECORRUPT or ENOMEM. */
int store_record_decode(uint64_t id, const void *data, size_t size,
    struct order *o);

void store_status_key(unsigned char key[STATUS_KEY_LEN],
    enum order_status status, uint64_t id);
void store_user_status_key(unsigned char key[USER_STATUS_KEY_LEN],
    uint64_t user_id, enum order_status status, uint64_t id);

/* The big-endian u64 of keys (index keys, idem_time). */
static inline void
put_u64be(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static inline uint64_t
get_u64be(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

#endif
