/*
 * orderlog: new orders as order-api's write-ahead journal holds them, and
 * the recovery that puts every journaled order into the store.
 *
 * A journal record is one batch of new orders, each with its id and
 * created_ms already given (journal.h has the record's framing). The
 * payload, all little-endian:
 *     count u32, zero u32
 *     then count times:
 *         id u64, created_ms i64, user_id u64, total_cents i64,
 *         n_items u32, key_len u16 (0: no Idempotency-Key), zero u16,
 *         key_len bytes of the key and a NUL, then its 32-byte digest
 *             (both only if key_len > 0),
 *         n_items item ids u64
 * The store learns how far the journal is applied from store_apply's
 * journal_lsn, in the same transaction as the orders.
 */
#ifndef OP_ORDERLOG_H
#define OP_ORDERLOG_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "order.h"
#include "store.h"

/* The payload's size for these orders. */
size_t orderlog_size(struct order *const *orders, size_t n);
/* Write the payload of these orders (ids and created_ms set) at buf. */
void orderlog_encode(unsigned char *buf, struct order *const *orders,
    size_t n);
/*
 * Decode a payload into out[0..], reusing each order's items array; each
 * idem_key points into the payload. *n is how many; EBADMSG if it does
 * not decode, E2BIG if it holds more than max orders, ENOMEM.
 */
int orderlog_decode(const void *payload, size_t len, struct order *out,
    size_t max, size_t *n);
/* How many orders the payload holds (0 if it does not decode). */
size_t orderlog_count(const void *payload, size_t len);

/*
 * Call fn for each order the journal at path holds past applied_lsn with
 * an id of at least next_id (the store's journal_state: orders answered
 * 201 and not yet in LMDB), read only (journal_read), as the store would
 * hold it once applied: Pending, updated_ms = created_ms. fn's nonzero
 * return stops the walk and is returned; ENOENT if there is no journal.
 */
int orderlog_scan(const char *path, uint64_t applied_lsn, uint64_t next_id,
    store_order_fn fn, void *arg);

/*
 * Open the journal at path (size bytes; created if missing) and apply to
 * s every order it holds past the store's journal_lsn, in transactions of
 * many records each. An existing journal of another size is applied
 * first, then made anew at the new size. *replayed counts the orders
 * applied. The journal is left open for appends in *jp.
 */
int orderlog_recover(struct store *s, const char *path, uint64_t size,
    struct journal **jp, uint64_t *replayed);

#endif
