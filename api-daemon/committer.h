/*
 * committer: group commit of new orders, and the queue's sending side.
 *
 * Handler threads call committer_submit with a decoded order and block
 * until it is durably committed (or refused). One committer thread begins
 * an LMDB write transaction, takes every order waiting, commits them all
 * in it, wakes the first of their handlers (which wake the rest, two each:
 * see struct waiter), and then sends the new ids to the worker's queue
 * without blocking: a full or missing queue only delays an order until the
 * worker's sweep finds it. An order that no transaction has taken within
 * the committer's timeout (another process holds LMDB's writer lock, say)
 * is withdrawn unstored; one already taken waits for the outcome.
 *
 * Cancels go through the same FIFO and the same deadline (committer_cancel),
 * one transaction each, so that no handler thread ever waits for LMDB's
 * writer lock itself: only the committer thread does.
 *
 * The outcome of the last commit of new orders is kept for /readyz: after
 * a failure, while no order comes, the committer tries store_probe once a
 * second, so that a store that works again is seen as such without
 * waiting for a create.
 *
 * The committer owns the queue descriptor; nothing else touches it.
 * committer_destroy commits what was submitted, then stops the thread;
 * if the thread is still blocked in LMDB after wait_ms (another process
 * holds the writer lock), it returns ETIMEDOUT and leaves the thread and
 * the committer as they are: the store must then not be closed.
 */
#ifndef OP_COMMITTER_H
#define OP_COMMITTER_H

#include <stdbool.h>
#include <stdint.h>

#include "order.h"
#include "store.h"

struct committer;

/* committer_submit: not committed in time, and not stored. */
#define COMMITTER_ETIMEDOUT (-31101)

struct committer_stats {
	uint64_t commits;		/* write transactions */
	uint64_t orders;		/* orders committed */
	uint64_t queue_full;		/* sends that found the queue full */
	uint64_t queue_send_errors;	/* sends that failed otherwise */
	uint64_t timeouts;		/* withdrawn at their timeout */
	bool queue_open;
	/* Creates time out: no commit could begin since the first did. */
	bool stalled;
	/* 0, or the error of the last commit of new orders (or probe). */
	int last_commit_error;
};

/* timeout_ms: the longest an order waits for its transaction to begin. */
int committer_create(struct committer **c, struct store *s,
    const char *queue_name, unsigned timeout_ms);
int committer_destroy(struct committer *c, unsigned wait_ms);
/*
 * Commit o (its id is set on success); returns 0, a store error, or
 * COMMITTER_ETIMEDOUT when no transaction took it within the timeout.
 */
int committer_submit(struct committer *c, struct order *o);
/*
 * store_cancel of order id, o filled as store_cancel fills it; or
 * COMMITTER_ETIMEDOUT when no transaction took it within the timeout
 * (nothing was changed).
 */
int committer_cancel(struct committer *c, uint64_t id, struct order *o);
void committer_stats(struct committer *c, struct committer_stats *st);

#endif
