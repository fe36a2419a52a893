#include "committer.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "queue.h"

/* The most orders one transaction takes; more wait for the next one. */
#define COMMIT_BATCH_MAX 4096
/* How often the committer checks that its queue is still the named one. */
#define QUEUE_REFRESH_MS 1000
/* After a failed commit, how often an idle committer tries store_probe. */
#define PROBE_INTERVAL_MS 1000

/*
 * A handler waiting for its order's commit, on the handler's stack. The
 * committer fills in rc and wake[] for a whole batch, then wakes only the
 * first waiter; each waiter, once woken, wakes the two below it in the
 * batch (a binary tree: 64 handlers are awake after 6 rounds). So the
 * committer pays one wake-up per commit instead of one per order, and goes
 * back to LMDB while the handlers wake each other on the other cores.
 *
 * Deadlines: the committer takes its batch off the FIFO only once its
 * write transaction has begun, that is once it holds LMDB's writer lock
 * (store_create_from calls take_batch then). Until that moment a waiter
 * is only on the FIFO, and one whose deadline passes there takes itself
 * off (under the lock, so it is never in a batch) and answers that
 * nothing was stored: another process may hold the writer lock for ever,
 * stopped or hung, and the handler threads must not all wait for it.
 * A waiter already taken is in a transaction and waits for its outcome,
 * which no longer depends on anyone else.
 */
struct waiter {
	struct waiter *next;		/* FIFO link, under the lock */
	struct order *order;		/* to create, or the cancel's answer */
	uint64_t cancel_id;		/* nonzero: cancel this order */
	bool taken;			/* in a batch; under the lock */
	struct waiter *wake[2];		/* to wake once done (or NULL) */
	int rc;
	_Atomic uint32_t done;		/* 0 until rc is set: a futex */
};

/* The waiters of one transaction (committer thread only). */
struct batch {
	struct committer *c;
	struct waiter **waiters;
	size_t n;
	bool taken;			/* take_batch ran */
};

struct committer {
	struct store *store;
	struct queue queue;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work_cond;	/* signalled when a waiter arrives */
	struct waiter *head, **tail;	/* FIFO of orders to commit */
	bool stopping;
	unsigned timeout_ms;		/* a waiter's time on the FIFO */
	bool stalled;			/* creates time out; under lock */
	uint64_t stall_timeouts;	/* how many since; under lock */
	struct committer_stats stats;	/* under lock */
	int last_queue_err;		/* committer thread only */
	struct log_limit commit_log;	/* committer thread only */
};

/* Sleep until w->done is set (a spurious return just loops). */
static void
waiter_sleep(struct waiter *w)
{
	while (atomic_load_explicit(&w->done, memory_order_acquire) == 0)
		syscall(SYS_futex, &w->done, FUTEX_WAIT_PRIVATE, 0, NULL,
		    NULL, 0);
}

/*
 * Sleep until w->done is set or the monotonic clock reaches deadline_ms;
 * false on the deadline. FUTEX_WAIT takes a relative timeout, so it is
 * computed again after each return.
 */
static bool
waiter_sleep_until(struct waiter *w, int64_t deadline_ms)
{
	while (atomic_load_explicit(&w->done, memory_order_acquire) == 0) {
		int64_t left_ms = deadline_ms - clock_monotonic_ms();
		struct timespec left;

		if (left_ms <= 0)
			return false;
		left.tv_sec = left_ms / 1000;
		left.tv_nsec = (left_ms % 1000) * 1000000;
		syscall(SYS_futex, &w->done, FUTEX_WAIT_PRIVATE, 0, &left,
		    NULL, 0);
	}
	return true;
}

/*
 * Mark w done and wake it. After the store w may return and its stack
 * frame go; a wake on that address is then harmless (futex waiters loop).
 */
static void
waiter_wake(struct waiter *w)
{
	atomic_store_explicit(&w->done, 1, memory_order_release);
	syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void
queue_check(struct committer *c)
{
	bool reopened;
	int err = queue_refresh(&c->queue, &reopened);

	if (err != 0) {
		if (err != c->last_queue_err)
			log_warn("could not open queue %s: %s; orders wait "
			    "for the worker's sweep", c->queue.name,
			    queue_strerror(&c->queue, err));
	} else if (reopened) {
		log_info("opened queue %s (%ld messages of %ld bytes)",
		    c->queue.name, c->queue.maxmsg, c->queue.msgsize);
	}
	c->last_queue_err = err;
	pthread_mutex_lock(&c->lock);
	c->stats.queue_open = queue_is_open(&c->queue);
	pthread_mutex_unlock(&c->lock);
}

static void
ring_worker(struct committer *c, const uint64_t *ids, size_t n)
{
	size_t sent;
	int err;

	if (!queue_is_open(&c->queue))
		return;
	err = queue_send_ids(&c->queue, ids, n, &sent);
	if (err == 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (err == EAGAIN)
		c->stats.queue_full++;
	else
		c->stats.queue_send_errors++;
	pthread_mutex_unlock(&c->lock);
	if (err == EAGAIN)
		log_debug("queue %s is full: %zu orders wait for the sweep",
		    c->queue.name, n - sent);
	else
		log_warn("could not send to queue %s: %s; %zu orders wait "
		    "for the sweep", c->queue.name, strerror(err), n - sent);
}

/*
 * store_create_from's take: cut up to max waiters off the FIFO into the
 * batch (the rest stays queued). From here on they wait for this commit.
 */
static size_t
take_batch(void *arg, struct order **orders, size_t max, int64_t *now_ms)
{
	struct batch *b = arg;
	struct committer *c = b->c;
	struct waiter *w;
	size_t n = 0;

	pthread_mutex_lock(&c->lock);
	/* Creates only: a cancel has a transaction of its own. */
	for (w = c->head; w != NULL && n < max && w->cancel_id == 0;
	    w = w->next) {
		w->taken = true;
		b->waiters[n] = w;
		orders[n++] = w->order;
	}
	c->head = w;
	if (w == NULL)
		c->tail = &c->head;
	pthread_mutex_unlock(&c->lock);
	b->n = n;
	b->taken = true;
	*now_ms = clock_realtime_ms();
	return n;
}

/*
 * Record a commit's outcome (n orders; 0: a probe) for committer_stats and
 * log a failed commit, at most once in LOG_LIMIT_MS for the same error.
 */
static void
commit_done(struct committer *c, int rc, size_t n)
{
	int before;

	pthread_mutex_lock(&c->lock);
	if (rc == 0 && n > 0) {
		c->stats.commits++;
		c->stats.orders += n;
	}
	before = c->stats.last_commit_error;
	c->stats.last_commit_error = rc;
	pthread_mutex_unlock(&c->lock);
	if (rc != 0 && n > 0)
		log_limited(&c->commit_log, LOG_LEVEL_ERROR, rc,
		    "could not commit %zu orders: %s", n, store_strerror(rc));
	else if (rc == 0 && before != 0)
		log_info("commits succeed again");
}

/* Commits begin again: end a stall of timed-out creates, if any. */
static void
stall_end(struct committer *c)
{
	uint64_t timed_out = 0;

	pthread_mutex_lock(&c->lock);
	if (c->stalled) {
		timed_out = c->stall_timeouts;
		c->stalled = false;
		c->stall_timeouts = 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (timed_out > 0)
		log_info("commits resumed; %llu creates and cancels timed "
		    "out meanwhile", (unsigned long long)timed_out);
}

/* One cancel and its transaction (committer thread only). */
struct cancel {
	struct committer *c;
	struct waiter *w;		/* taken, or NULL */
};

/*
 * store_cancel_from's take: the cancel at the head of the FIFO, if it is
 * still there (it may have timed out meanwhile).
 */
static bool
take_cancel(void *arg, uint64_t *id, int64_t *now_ms)
{
	struct cancel *k = arg;
	struct committer *c = k->c;
	struct waiter *w;

	pthread_mutex_lock(&c->lock);
	if ((w = c->head) != NULL && w->cancel_id != 0) {
		w->taken = true;
		c->head = w->next;
		if (c->head == NULL)
			c->tail = &c->head;
		k->w = w;
	}
	pthread_mutex_unlock(&c->lock);
	if (w == NULL || w->cancel_id == 0)
		return false;
	*id = w->cancel_id;
	*now_ms = clock_realtime_ms();
	return true;
}

/* Run the cancel at the head of the FIFO in a transaction of its own. */
static void
run_cancel(struct committer *c)
{
	struct cancel k = { .c = c };
	struct order scratch;
	bool taken;
	int rc;
	int64_t now_ms;
	uint64_t id;

	/*
	 * The waiter's order is written only once it is taken, so until
	 * then store_cancel_from has nothing of it: it is handed the waiter's
	 * answer through k.w after take_cancel.
	 */
	order_init(&scratch);
	rc = store_cancel_from(c->store, take_cancel, &k, &scratch, &taken);
	/* No transaction began: the cancel waiting gets the error. */
	if (!taken && rc != 0 && take_cancel(&k, &id, &now_ms))
		taken = true;
	if (rc == 0 || rc == STORE_ECONFLICT || rc == STORE_ENOTFOUND)
		stall_end(c);
	if (taken && k.w != NULL) {
		order_finish(k.w->order);
		*k.w->order = scratch;
		order_init(&scratch);
		k.w->rc = rc;
		waiter_wake(k.w);
	}
	order_finish(&scratch);
}

static void *
committer_run(void *arg)
{
	struct committer *c = arg;
	struct order **orders = calloc(COMMIT_BATCH_MAX, sizeof(*orders));
	struct waiter **batch = calloc(COMMIT_BATCH_MAX, sizeof(*batch));
	uint64_t *ids = calloc(COMMIT_BATCH_MAX, sizeof(*ids));
	int64_t next_refresh = 0, next_probe = 0;

	if (orders == NULL || batch == NULL || ids == NULL)
		fatalx("committer: out of memory");
	for (;;) {
		struct batch b = { .c = c, .waiters = batch };
		bool cancel;
		size_t n, n_ids = 0;
		int64_t now_ms;
		int rc;

		if (clock_monotonic_ms() >= next_refresh) {
			queue_check(c);
			next_refresh = clock_monotonic_ms() + QUEUE_REFRESH_MS;
		}

		pthread_mutex_lock(&c->lock);
		while (c->head == NULL && !c->stopping) {
			struct timespec until;

			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += 1;
			if (pthread_cond_timedwait(&c->work_cond, &c->lock,
			    &until) == ETIMEDOUT)
				break;
		}
		if (c->head == NULL) {
			bool stop = c->stopping;
			bool failing = c->stats.last_commit_error != 0 ||
			    c->stalled;

			pthread_mutex_unlock(&c->lock);
			if (stop)
				break;
			/*
			 * Without new orders, only a probe can show that
			 * commits work again (and make /readyz say so).
			 */
			if (failing && clock_monotonic_ms() >= next_probe) {
				rc = store_probe(c->store);
				commit_done(c, rc, 0);
				if (rc == 0)
					stall_end(c);
				next_probe = clock_monotonic_ms() +
				    PROBE_INTERVAL_MS;
			}
			continue;
		}
		cancel = c->head->cancel_id != 0;
		pthread_mutex_unlock(&c->lock);
		if (cancel) {
			run_cancel(c);
			continue;
		}

		/* This blocks while another process holds the writer lock. */
		rc = store_create_from(c->store, take_batch, &b, orders,
		    COMMIT_BATCH_MAX);
		/* No transaction began: refuse what is queued, unstored. */
		if (!b.taken)
			take_batch(&b, orders, COMMIT_BATCH_MAX, &now_ms);
		n = b.n;
		/* A transaction that took nothing tells nothing of the disk. */
		if (n > 0 || rc != 0) {
			commit_done(c, rc, n);
			next_probe = clock_monotonic_ms() + PROBE_INTERVAL_MS;
		}

		/* A transaction began: the writer lock is free again. */
		if (rc == 0)
			stall_end(c);
		if (n == 0)
			continue;	/* every waiter timed out meanwhile */
		/* The orders live on their handlers' stacks: read them now. */
		for (size_t i = 0; i < n; i++) {
			struct waiter *bw = batch[i];

			if (rc == 0 &&
			    orders[i]->idem_result == ORDER_IDEM_NEW)
				ids[n_ids++] = orders[i]->id;
			bw->rc = rc;
			bw->wake[0] = 2 * i + 1 < n ? batch[2 * i + 1] : NULL;
			bw->wake[1] = 2 * i + 2 < n ? batch[2 * i + 2] : NULL;
		}
		waiter_wake(batch[0]);

		if (n_ids > 0)
			ring_worker(c, ids, n_ids);
	}
	free(orders);
	free(batch);
	free(ids);
	return NULL;
}

int
committer_create(struct committer **cp, struct store *s,
    const char *queue_name, unsigned timeout_ms)
{
	struct committer *c = calloc(1, sizeof(*c));
	pthread_condattr_t attr;
	int rc;

	if (c == NULL)
		return ENOMEM;
	c->store = s;
	c->tail = &c->head;
	c->timeout_ms = timeout_ms;
	c->last_queue_err = -1;
	queue_init(&c->queue, queue_name);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->work_cond, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&c->thread, NULL, committer_run, c);
	if (rc != 0) {
		pthread_cond_destroy(&c->work_cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return rc;
	}
	*cp = c;
	return 0;
}

int
committer_destroy(struct committer *c, unsigned wait_ms)
{
	struct timespec until;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->work_cond);
	pthread_mutex_unlock(&c->lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	/* Blocked in LMDB (the writer lock held elsewhere): left as it is. */
	if (pthread_timedjoin_np(c->thread, NULL, &until) != 0)
		return ETIMEDOUT;
	queue_close(&c->queue);
	pthread_cond_destroy(&c->work_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return 0;
}

/* Take w, which is not in a batch, off the FIFO; under the lock. */
static void
withdraw(struct committer *c, struct waiter *w)
{
	struct waiter **p = &c->head;

	while (*p != w)
		p = &(*p)->next;
	*p = w->next;
	if (c->tail == &w->next)
		c->tail = p;
}

/* Queue a create of o (cancel_id 0) or a cancel, and wait for it. */
static int
submit(struct committer *c, struct order *o, uint64_t cancel_id)
{
	struct waiter w = { .order = o, .cancel_id = cancel_id };
	int64_t deadline_ms = clock_monotonic_ms() + c->timeout_ms;
	bool withdrawn = false, first = false;

	pthread_mutex_lock(&c->lock);
	*c->tail = &w;
	c->tail = &w.next;
	if (c->head == &w)
		pthread_cond_signal(&c->work_cond);
	pthread_mutex_unlock(&c->lock);
	if (!waiter_sleep_until(&w, deadline_ms)) {
		pthread_mutex_lock(&c->lock);
		if (!w.taken) {
			withdraw(c, &w);
			withdrawn = true;
			first = !c->stalled;
			c->stalled = true;
			c->stall_timeouts++;
			if (cancel_id == 0)
				c->stats.timeouts++;
		}
		pthread_mutex_unlock(&c->lock);
		if (withdrawn) {
			if (first)
				log_warn("no commit began within %u ms (LMDB's "
				    "writer lock is held elsewhere, or a "
				    "commit is slow): creates and cancels "
				    "answer 503 until one does", c->timeout_ms);
			return COMMITTER_ETIMEDOUT;
		}
		waiter_sleep(&w);
	}
	for (int i = 0; i < 2; i++)
		if (w.wake[i] != NULL)
			waiter_wake(w.wake[i]);
	return w.rc;
}

int
committer_submit(struct committer *c, struct order *o)
{
	return submit(c, o, 0);
}

int
committer_cancel(struct committer *c, uint64_t id, struct order *o)
{
	return submit(c, o, id);
}

void
committer_stats(struct committer *c, struct committer_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	st->stalled = c->stalled;
	pthread_mutex_unlock(&c->lock);
}
