/*
 * order: the order model, its ids, statuses, timestamps and JSON codec.
 *
 * struct order owns its items array (order_init / order_finish); decoders
 * reuse the array's capacity, so one struct can be filled many times.
 * Amounts are integer cents (money.h), times are milliseconds since the
 * Unix epoch, UTC (clock.h). Pure functions; thread-safe.
 */
#ifndef OP_ORDER_H
#define OP_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

enum order_status {
	ORDER_PENDING,
	ORDER_PROCESSING,
	ORDER_COMPLETED,
	ORDER_CANCELLED,
};
#define ORDER_STATUS_COUNT 4

/* Limits a request may not exceed; larger ones are refused with 400. */
#define ORDER_MAX_ITEMS 1000
/* Deepest JSON nesting a request may have; an order needs 2. */
#define ORDER_MAX_DEPTH 16
#define ORDER_MAX_INTEGER INT64_C(9007199254740991) /* 2^53 - 1 */
/* An Idempotency-Key: 1-255 printable ASCII characters. */
#define ORDER_IDEM_KEY_MAX 255
#define ORDER_DIGEST_LEN 32	/* SHA-256 of a request body */
/* "ORD" and 20 digits, NUL included. */
#define ORDER_ID_BUFSZ 24

/*
 * Instances. Several order-processing instances (one per host, each its
 * own LMDB environment) hand out ids that never collide: instance n owns
 * the ids n * ORDER_INSTANCE_SPAN + 1 .. (n + 1) * ORDER_INSTANCE_SPAN - 1,
 * so an id's owner is id / ORDER_INSTANCE_SPAN: the digits before its last
 * 13, or 0 when it has 13 digits or fewer. Instance 0 counts from 1, as a
 * single instance always has. The largest id, of instance
 * ORDER_INSTANCE_MAX, is below 2^53: a client that reads ids as
 * JavaScript numbers reads every one exactly.
 */
#define ORDER_INSTANCE_SPAN UINT64_C(10000000000000)
#define ORDER_INSTANCE_MAX 899

static inline uint64_t
order_instance_first_id(unsigned instance)
{
	return (uint64_t)instance * ORDER_INSTANCE_SPAN + 1;
}

static inline uint64_t
order_instance_last_id(unsigned instance)
{
	return ((uint64_t)instance + 1) * ORDER_INSTANCE_SPAN - 1;
}

static inline unsigned
order_id_instance(uint64_t id)
{
	return (unsigned)(id / ORDER_INSTANCE_SPAN);
}

struct order {
	uint64_t id;		/* 0 until the store assigns one */
	uint64_t user_id;
	int64_t total_cents;
	enum order_status status;
	uint32_t attempts;	/* claims so far; names the current lease */
	int64_t created_ms;
	int64_t updated_ms;
	int64_t completed_ms;	/* 0: not completed */
	int64_t lease_until_ms;	/* while Processing: when the claim lapses */
	uint32_t n_items;
	uint64_t *items;
	uint32_t items_cap;

	/*
	 * Only while an order is being created: the request's
	 * Idempotency-Key (NULL: none, not owned) and its body's digest;
	 * store_create says what became of the key.
	 */
	const char *idem_key;
	uint8_t idem_digest[ORDER_DIGEST_LEN];
	enum order_idem {
		ORDER_IDEM_NEW,		/* created (or no key) */
		ORDER_IDEM_REPLAY,	/* key known, same body: id is the first */
		ORDER_IDEM_MISMATCH,	/* key known with another body */
	} idem_result;
};

/* Is s a valid Idempotency-Key (1-255 characters from ' ' to '~')? */
bool order_idem_key_valid(const char *s);
/*
 * o's Idempotency-Key was first used by order first, whose body had the
 * given digest: o is a REPLAY of it (id first) if its own body's digest
 * is the same, else a MISMATCH (id 0).
 */
void order_idem_seen(struct order *o, uint64_t first,
    const uint8_t digest[ORDER_DIGEST_LEN]);

void order_init(struct order *o);
void order_finish(struct order *o);
/* Make room for n items; returns -1 if memory ran out. */
int order_reserve_items(struct order *o, uint32_t n);

const char *order_status_name(enum order_status status);
/* Exact, case-sensitive names ("Pending"); returns -1 if unknown. */
int order_status_parse(const char *s, enum order_status *status);

/* "ORD123" or "123" of length len -> 123; -1 if not an order id. */
int order_id_parse(const char *s, size_t len, uint64_t *id);
/* Writes "ORD123". */
void order_id_format(uint64_t id, char buf[ORDER_ID_BUFSZ]);

/* RFC 3339 UTC with milliseconds: "2026-11-26T10:40:12.123Z". */
void order_time_format(int64_t ms, char buf[32]);

/*
 * Decode and validate a create request body (len bytes, need not be
 * NUL-terminated). On success fills user_id, items, total_cents and
 * returns 0. On a client error returns -1 with the JSON error body (the
 * original's shape: {"field": ["message"]} or {"detail": "..."}) in *err,
 * which is reset first. Returns -2 if memory ran out.
 */
int order_decode_request(const char *body, size_t len, struct order *o,
    struct strbuf *err);

/* Append the order as its JSON object. */
void order_encode_json(const struct order *o, struct strbuf *out);

#endif
