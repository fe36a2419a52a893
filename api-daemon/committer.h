/*
 * committer: the durable intake of new orders, their way into LMDB, and
 * the queue's sending side.
 *
 * Two threads. Handler threads call committer_submit with a decoded
 * order and block until it is durable (or refused):
 *
 * - The intake thread takes every create waiting, checks room and
 *   Idempotency-Keys (store_admit, and the keys still on their way to
 *   LMDB), gives the new orders their ids, writes them as one record to
 *   the write-ahead journal (one pwrite of contiguous pages, one
 *   fdatasync: journal.h, orderlog.h), and wakes their handlers, which
 *   answer 201. A synced LMDB commit of the same orders would write each
 *   changed page of every index where it lies, one device request each.
 * - The apply thread commits every journaled batch waiting to LMDB in one
 *   write transaction (store_apply, fully synced), with the journal's
 *   position, then sends the new ids to the worker's queue without
 *   blocking (a full or missing queue only delays an order until the
 *   worker's sweep finds it), and lets the journal's room be written
 *   again. Cancels run on this thread too, one transaction each, so that
 *   no handler thread ever waits for LMDB's writer lock itself.
 *
 * Between its 201 and its apply (at most a quarter of a second, longer
 * only while commits fail or another process holds LMDB's writer lock;
 * at once when a read waits for it) an order is
 * in the journal but not in LMDB. Reads that could see it wait for its
 * apply: committer_wait_order before reading one order, committer_wait_all
 * before a list, committer_counters for the counters (which adds the
 * journaled orders instead of waiting). A crash in that time loses
 * nothing: order-api's start applies the journal (orderlog_recover).
 *
 * Failures. A failed journal write or flush leaves the batch's outcome
 * unknown (its record may be on the disk): its creates get
 * COMMITTER_EUNKNOWN, every later one is refused, and committer_broken
 * says the process must end; the next start applies what the journal
 * holds. A failed apply keeps its batches and is tried again once a
 * second; meanwhile, and while journaled orders have waited longer than
 * the timeout for their transaction (another process holds LMDB's writer
 * lock, say), new creates are refused, not stored. The journal being
 * full of unapplied orders refuses them the same way.
 *
 * committer_destroy journals and applies what was submitted, then stops
 * the threads; if the apply thread is still blocked in LMDB after
 * wait_ms, it returns ETIMEDOUT and leaves the threads as they are: the
 * store must then not be closed (the journal keeps the orders). If the
 * last apply failed, it logs so and returns its error: the journal keeps
 * those orders for the next start.
 */
#ifndef OP_COMMITTER_H
#define OP_COMMITTER_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"
#include "order.h"
#include "store.h"

struct committer;

/* Not stored: no commit in time, or no room in the journal. */
#define COMMITTER_ETIMEDOUT (-31101)
/* The journal write failed: the order may or may not be stored. */
#define COMMITTER_EUNKNOWN (-31102)

struct committer_stats {
	uint64_t commits;		/* LMDB transactions of new orders */
	uint64_t orders;		/* orders committed to LMDB */
	uint64_t journal_writes;	/* journal records (one flush each) */
	uint64_t unapplied;		/* orders journaled, not yet in LMDB */
	uint64_t queue_full;		/* sends that found the queue full */
	uint64_t queue_send_errors;	/* sends that failed otherwise */
	uint64_t timeouts;		/* creates refused as not in time */
	bool queue_open;
	/* Creates time out: journaled orders wait too long for LMDB. */
	bool stalled;
	/* 0, or the error of the last commit of new orders. */
	int last_commit_error;
};

/*
 * j: the journal, already recovered (orderlog_recover), every order in it
 * applied; timeout_ms: the longest journaled orders may wait for their
 * transaction before new creates are refused, and the longest a cancel
 * or a read waits.
 */
int committer_create(struct committer **c, struct store *s,
    struct journal *j, const char *queue_name, unsigned timeout_ms);
int committer_destroy(struct committer *c, unsigned wait_ms);
/*
 * Make o durable (its id is set on success); returns 0, a store error,
 * COMMITTER_ETIMEDOUT (not stored), or COMMITTER_EUNKNOWN.
 */
int committer_submit(struct committer *c, struct order *o);
/*
 * store_cancel of order id, o filled as store_cancel fills it; or
 * COMMITTER_ETIMEDOUT when no transaction took it within the timeout
 * (nothing was changed).
 */
int committer_cancel(struct committer *c, uint64_t id, struct order *o);
/*
 * Wait until order id is in LMDB if it was journaled (0 at once if it is
 * or never was): 0, COMMITTER_ETIMEDOUT, or the failing apply's error.
 */
int committer_wait_order(struct committer *c, uint64_t id);
/* Wait until every order journaled so far is in LMDB; as above. */
int committer_wait_all(struct committer *c);
/* store_counters with the journaled orders not yet applied added. */
int committer_counters(struct committer *c, struct store_counters *out);
void committer_stats(struct committer *c, struct committer_stats *st);
/* 0, or the journal error after which the process must end. */
int committer_broken(struct committer *c);

#endif
