/*
 * fuzz_order: libFuzzer target for the create-request codec.
 *
 * The input bytes are a request body as order_decode_request receives it
 * (jsoncheck_validate, then cJSON). Invariants, each an abort:
 *  - the return is 0, -1 or -2; -1 comes with an error body that is
 *    well-formed JSON (every response has a JSON body);
 *  - a decoded order is in range: user_id and every item 1 .. 2^53-1,
 *    1 .. ORDER_MAX_ITEMS items, total 0 .. MONEY_MAX_CENTS;
 *  - order_encode_json of it is well-formed JSON that decodes again, as a
 *    request (its extra keys are ignored), to the same user_id, items and
 *    total_cents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jsoncheck.h"
#include "money.h"
#include "order.h"
#include "strbuf.h"

static void
check_json(const struct strbuf *sb, const char *what)
{
	const char *why = NULL;
	size_t offset = 0;

	check(!strbuf_failed(sb) && sb->data != NULL, "%s: no buffer", what);
	check(jsoncheck_validate(sb->data, sb->len, JSONCHECK_MAX_DEPTH,
	    &why, &offset) == 0, "%s is not JSON (%s at byte %zu): %s", what,
	    why, offset, sb->data);
}

static void
check_decoded(const struct order *o)
{
	check(o->user_id >= 1 && o->user_id <= (uint64_t)ORDER_MAX_INTEGER,
	    "user_id %llu", (unsigned long long)o->user_id);
	check(o->n_items >= 1 && o->n_items <= ORDER_MAX_ITEMS &&
	    o->n_items <= o->items_cap, "n_items %u cap %u", o->n_items,
	    o->items_cap);
	for (uint32_t i = 0; i < o->n_items; i++)
		check(o->items[i] >= 1 &&
		    o->items[i] <= (uint64_t)ORDER_MAX_INTEGER,
		    "item %u is %llu", i, (unsigned long long)o->items[i]);
	check(o->total_cents >= 0 && o->total_cents <= MONEY_MAX_CENTS,
	    "total_cents %lld", (long long)o->total_cents);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct order o, back;
	struct strbuf err, json;
	int rc;

	order_init(&o);
	order_init(&back);
	strbuf_init(&err);
	strbuf_init(&json);

	rc = order_decode_request((const char *)data, size, &o, &err);
	check(rc == 0 || rc == -1 || rc == -2, "rc %d", rc);
	if (rc == -1)
		check_json(&err, "the error body");
	if (rc != 0)
		goto out;
	check_decoded(&o);

	/* What the store would add; the input picks completed or not. */
	o.id = 1 + size;
	o.status = size % 2 == 0 ? ORDER_PENDING : ORDER_COMPLETED;
	o.created_ms = INT64_C(1764153612123);
	o.updated_ms = o.created_ms + 5000;
	o.completed_ms = o.status == ORDER_COMPLETED ? o.updated_ms : 0;
	order_encode_json(&o, &json);
	check_json(&json, "the encoded order");

	rc = order_decode_request(json.data, json.len, &back, &err);
	check(rc == 0, "re-decode rc %d: %s <- %s", rc,
	    err.data != NULL ? err.data : "", json.data);
	check(back.user_id == o.user_id, "user_id %llu != %llu",
	    (unsigned long long)back.user_id,
	    (unsigned long long)o.user_id);
	check(back.n_items == o.n_items, "n_items %u != %u", back.n_items,
	    o.n_items);
	check(memcmp(back.items, o.items, o.n_items * sizeof(o.items[0])) == 0,
	    "items differ: %s", json.data);
	check(back.total_cents == o.total_cents, "total_cents %lld != %lld",
	    (long long)back.total_cents, (long long)o.total_cents);
out:
	strbuf_finish(&json);
	strbuf_finish(&err);
	order_finish(&back);
	order_finish(&o);
	return 0;
}
