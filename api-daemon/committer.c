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
#include "orderlog.h"
#include "queue.h"

/* The most creates one journal record takes; more wait for the next. */
#define INTAKE_BATCH_MAX 4096
/* The most orders one LMDB transaction applies. */
#define APPLY_MAX 16384
/*
 * How long journaled orders may wait to be applied when no read waits
 * for them (at most a quarter of the timeout): the more orders one
 * transaction applies, the more of them share each index page it
 * writes, and the fewer of LMDB's scattered writes share the disk with
 * the journal's flushes. Measured on this project's benchmark machine, 16
 * connections: 250 ms gave about 15 % more creates than 20 ms.
 */
#define APPLY_DELAY_MS 250
/* How often the apply thread checks that its queue is still the named one. */
#define QUEUE_REFRESH_MS 1000
/* After a failed apply, how long until it is tried again. */
#define RETRY_INTERVAL_MS 1000
/* Buckets of the table of Idempotency-Keys journaled, not yet applied. */
#define KEY_BUCKETS 1024

/*
 * A handler waiting for its create or cancel, on the handler's stack. The
 * committer fills in rc and wake[] for a whole batch, then wakes only the
 * first waiter; each waiter, once woken, wakes the two below it in the
 * batch (a binary tree: 64 handlers are awake after 6 rounds). So the
 * committer pays one wake-up per batch instead of one per order.
 *
 * Deadlines (cancels): the apply thread takes a cancel off its FIFO only
 * once its write transaction has begun, that is once it holds LMDB's
 * writer lock. Until then a cancel whose deadline passes takes itself off
 * (under the lock) and answers that nothing was changed: another process
 * may hold the writer lock for ever, and the handler threads must not all
 * wait for it.
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

/* An Idempotency-Key journaled and not yet applied. */
struct pending_key {
	struct pending_key *chain;	/* in its bucket */
	struct pending_key *next;	/* in its batch */
	uint64_t id;
	uint8_t digest[ORDER_DIGEST_LEN];
	char key[];
};

/* One journal record's orders, until they are in LMDB. */
struct jbatch {
	struct jbatch *next;
	uint64_t room;			/* store_record_room of its orders */
	uint64_t bytes;			/* its record's room in the journal */
	uint64_t end_lsn;		/* just after the record */
	uint64_t last_id;
	int64_t journaled_ms;		/* monotonic */
	size_t n;			/* orders */
	struct pending_key *keys;
	size_t len;
	unsigned char payload[];	/* orderlog's encoding */
};

struct committer {
	struct store *store;
	struct journal *journal;
	struct queue queue;
	unsigned timeout_ms;
	pthread_t intake_thread, apply_thread;
	pthread_mutex_t lock;
	pthread_cond_t intake_cond;	/* a create arrived, or stopping */
	pthread_cond_t apply_cond;	/* a batch or cancel arrived */
	pthread_cond_t applied_cond;	/* applied_id moved, or an error */
	struct waiter *creates, **creates_tail;	/* FIFOs, under the lock */
	struct waiter *cancels, **cancels_tail;
	struct jbatch *batches, **batches_tail;	/* journaled, oldest first */
	uint64_t unapplied;		/* orders in batches; under the lock */
	uint64_t unapplied_room;	/* their store_record_room; same */
	uint64_t unapplied_bytes;	/* their records in the journal; same */
	struct pending_key *keys[KEY_BUCKETS];	/* under the lock */
	bool stopping;			/* under the lock */
	bool intake_done;		/* the intake thread has ended */
	unsigned readers_waiting;	/* in wait_applied; under the lock */
	int64_t apply_delay_ms;
	uint64_t journal_size;
	/* The last id journaled (answered), and the last in LMDB. */
	_Atomic uint64_t journaled_id, applied_id;
	atomic_int broken;		/* the journal failed */
	uint64_t next_id;		/* intake thread only */
	uint64_t last_id;		/* the instance's last id */
	bool stalled;			/* under the lock */
	int apply_error;		/* last apply's error; under the lock */
	/* The last store_admit's refusal (no room), or 0; under the lock. */
	int admit_error;
	struct committer_stats stats;	/* under the lock */
	int last_queue_err;		/* apply thread only */
	struct log_limit apply_log;	/* apply thread only */
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

/* Answer a batch of n waiters with their rc set: wake the tree's root. */
static void
wake_batch(struct waiter **batch, size_t n)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		batch[i]->wake[0] = 2 * i + 1 < n ? batch[2 * i + 1] : NULL;
		batch[i]->wake[1] = 2 * i + 2 < n ? batch[2 * i + 2] : NULL;
	}
	waiter_wake(batch[0]);
}

/* pthread_cond_timedwait until the monotonic deadline_ms. */
static int
cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock,
    int64_t deadline_ms)
{
	struct timespec until = {
		.tv_sec = deadline_ms / 1000,
		.tv_nsec = (deadline_ms % 1000) * 1000000,
	};

	return pthread_cond_timedwait(cond, lock, &until);
}

static unsigned
key_bucket(const char *key)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % KEY_BUCKETS;
}

/* A journaled key not yet applied; under the lock. */
static struct pending_key *
key_find(struct committer *c, const char *key)
{
	struct pending_key *k;

	for (k = c->keys[key_bucket(key)]; k != NULL; k = k->chain)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

/* Drop batch b's keys from the table; under the lock. */
static void
keys_drop(struct committer *c, struct jbatch *b)
{
	for (struct pending_key *k = b->keys, *next; k != NULL; k = next) {
		struct pending_key **p = &c->keys[key_bucket(k->key)];

		next = k->next;
		while (*p != k)
			p = &(*p)->chain;
		*p = k->chain;
		free(k);
	}
	b->keys = NULL;
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
 * Why creates are refused now, or 0; under the lock. Journaled orders
 * that waited past the timeout for their transaction stall the intake
 * (logged once per stall).
 */
static int
intake_refusal(struct committer *c, int64_t now_ms, bool *stall_began)
{
	int broken = store_broken(c->store);

	*stall_began = false;
	if (broken != 0)
		return broken;
	/* Refused before anything is written: these were not stored. */
	if (atomic_load(&c->broken) != 0)
		return EIO;
	if (c->apply_error != 0)
		return c->apply_error;
	if (c->batches != NULL &&
	    now_ms - c->batches->journaled_ms > (int64_t)c->timeout_ms) {
		*stall_began = !c->stalled;
		c->stalled = true;
		return COMMITTER_ETIMEDOUT;
	}
	return 0;
}

/*
 * Journal the fresh orders (ids given, created_ms set here): one record,
 * one flush, then hand them to the apply thread. Returns 0, or the
 * refusal every create of the batch gets.
 */
static int
intake_journal(struct committer *c, struct order **fresh, size_t n_fresh)
{
	struct jbatch *b;
	struct pending_key *keys = NULL;
	uint64_t lsn, end_lsn;
	int64_t now_ms = clock_realtime_ms();
	size_t len;
	int rc;

	for (size_t i = 0; i < n_fresh; i++)
		fresh[i]->created_ms = now_ms;
	len = orderlog_size(fresh, n_fresh);
	if ((b = malloc(sizeof(*b) + len)) == NULL)
		return ENOMEM;
	b->len = len;
	b->n = n_fresh;
	b->last_id = fresh[n_fresh - 1]->id;
	b->keys = NULL;
	b->room = 0;
	for (size_t i = 0; i < n_fresh; i++)
		b->room += store_record_room(fresh[i]);
	orderlog_encode(b->payload, fresh, n_fresh);
	for (size_t i = 0; i < n_fresh; i++) {
		struct pending_key *k;
		size_t klen;

		if (fresh[i]->idem_key == NULL)
			continue;
		klen = strlen(fresh[i]->idem_key);
		if ((k = malloc(sizeof(*k) + klen + 1)) == NULL) {
			rc = ENOMEM;
			goto fail;
		}
		k->id = fresh[i]->id;
		memcpy(k->digest, fresh[i]->idem_digest, ORDER_DIGEST_LEN);
		memcpy(k->key, fresh[i]->idem_key, klen + 1);
		k->next = keys;
		keys = k;
	}

	rc = journal_append(c->journal, b->payload, len, &lsn, &end_lsn);
	if (rc == EAGAIN) {
		/* Full of orders not yet in LMDB: nothing was written. */
		rc = COMMITTER_ETIMEDOUT;
		goto fail;
	}
	if (rc == EMSGSIZE || rc == ENOMEM)
		goto fail;	/* refused before writing */
	if (rc != 0) {
		/* Written in part, or flushed with an error: unknown. */
		if (atomic_exchange(&c->broken, rc) == 0)
			log_error("could not write the journal: %s; %zu "
			    "orders may or may not be stored, and the "
			    "process ends to recover from the file",
			    strerror(rc), n_fresh);
		rc = COMMITTER_EUNKNOWN;
		goto fail;
	}
	c->next_id = b->last_id + 1;
	b->end_lsn = end_lsn;
	b->bytes = end_lsn - lsn;
	b->journaled_ms = clock_monotonic_ms();
	b->next = NULL;

	pthread_mutex_lock(&c->lock);
	b->keys = keys;
	for (struct pending_key *k = keys; k != NULL; k = k->next) {
		unsigned h = key_bucket(k->key);

		k->chain = c->keys[h];
		c->keys[h] = k;
	}
	*c->batches_tail = b;
	c->batches_tail = &b->next;
	c->unapplied += n_fresh;
	c->unapplied_room += b->room;
	c->unapplied_bytes += end_lsn - lsn;
	c->stats.journal_writes++;
	atomic_store_explicit(&c->journaled_id, b->last_id,
	    memory_order_release);
	/* The apply thread waits out its delay unless this is urgent. */
	if (c->batches == b || c->unapplied >= APPLY_MAX / 2 ||
	    c->unapplied_bytes >= c->journal_size / 4)
		pthread_cond_signal(&c->apply_cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
fail:
	while (keys != NULL) {
		struct pending_key *next = keys->next;

		free(keys);
		keys = next;
	}
	free(b);
	return rc;
}

static int wait_applied(struct committer *c, uint64_t id);

/*
 * Record store_admit's outcome: a refusal for lack of room shows in
 * /readyz as the last commit's failure until an admit (or the apply
 * thread's check once a second) finds room again.
 */
static void
admit_done(struct committer *c, int rc)
{
	int before;

	pthread_mutex_lock(&c->lock);
	before = c->admit_error;
	c->admit_error = rc;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0 && before != 0)
		log_info("there is room for new orders again");
}

/*
 * Answer a batch whose new orders are refused with rc: those found to be
 * retries of journaled orders (a replay, or a mismatch) are answered as
 * such, the rest get rc.
 */
static void
refuse_new(struct committer *c, struct waiter **batch, struct order **orders,
    size_t n, int rc)
{
	size_t refused = 0;

	for (size_t i = 0; i < n; i++) {
		bool retry = orders[i]->idem_key != NULL &&
		    orders[i]->idem_result != ORDER_IDEM_NEW &&
		    rc != COMMITTER_EUNKNOWN;

		batch[i]->rc = retry ? 0 : rc;
		refused += !retry;
	}
	if (rc == COMMITTER_ETIMEDOUT) {
		pthread_mutex_lock(&c->lock);
		c->stats.timeouts += refused;
		pthread_mutex_unlock(&c->lock);
	}
	wake_batch(batch, n);
}

/*
 * One batch of creates: refuse them, or settle their keys, give the new
 * orders ids, journal them and answer all.
 */
static void
intake_batch(struct committer *c, struct waiter **batch, struct order **orders,
    struct order **fresh, size_t n)
{
	size_t n_fresh = 0;
	uint64_t unapplied, room, batch_room = 0;
	bool stall_began;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = intake_refusal(c, clock_monotonic_ms(), &stall_began);
	unapplied = c->unapplied;
	room = c->unapplied_room;
	/* Even when refusing: a retry of a journaled order is a replay. */
	for (size_t i = 0; i < n; i++) {
		struct order *o = orders[i];
		struct pending_key *k;

		o->idem_result = ORDER_IDEM_NEW;
		if (o->idem_key != NULL &&
		    (k = key_find(c, o->idem_key)) != NULL)
			order_idem_seen(o, k->id, k->digest);
	}
	pthread_mutex_unlock(&c->lock);
	if (stall_began)
		log_warn("journaled orders waited more than %u ms for their "
		    "LMDB commit (LMDB's writer lock is held elsewhere, or a "
		    "commit is slow): creates answer 503 until it is done",
		    c->timeout_ms);
	if (rc != 0) {
		refuse_new(c, batch, orders, n, rc);
		return;
	}

	/*
	 * Keys not found above are looked up in LMDB by a read transaction
	 * that begins after that look: a key whose batch was applied and
	 * left the table meanwhile is in LMDB by then.
	 */
	for (size_t i = 0; i < n; i++)
		batch_room += store_record_room(orders[i]);
	rc = store_admit(c->store, orders, n, unapplied, room + batch_room,
	    clock_realtime_ms());
	/*
	 * The journaled orders' room is an estimate: before refusing for
	 * lack of room, let them reach LMDB and decide on what is stored, so
	 * that a create refused is not followed by one accepted.
	 */
	if ((rc == STORE_EFULL || rc == STORE_EDISKFULL) && unapplied > 0 &&
	    wait_applied(c, atomic_load(&c->journaled_id)) == 0)
		rc = store_admit(c->store, orders, n, 0, batch_room,
		    clock_realtime_ms());
	admit_done(c, rc);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct order *o = orders[i];
		size_t j;

		if (o->idem_result != ORDER_IDEM_NEW)
			continue;
		/* A key twice in one batch (a handler's in-flight check
		 * keeps that from happening): the second is answered as a
		 * retry of the first. */
		for (j = 0; o->idem_key != NULL && j < n_fresh; j++)
			if (fresh[j]->idem_key != NULL &&
			    strcmp(fresh[j]->idem_key, o->idem_key) == 0)
				break;
		if (o->idem_key != NULL && j < n_fresh) {
			order_idem_seen(o, fresh[j]->id, fresh[j]->idem_digest);
			continue;
		}
		o->id = c->next_id + n_fresh;
		fresh[n_fresh++] = o;
	}
	if (rc == 0 && n_fresh > 0 && c->next_id + n_fresh - 1 > c->last_id)
		rc = STORE_ENOIDS;
	if (rc == 0 && n_fresh > 0)
		rc = intake_journal(c, fresh, n_fresh);
	if (rc != 0) {
		/* A twin of an order not journaled is not a retry either. */
		for (size_t i = 0; i < n; i++)
			if (orders[i]->idem_result == ORDER_IDEM_REPLAY &&
			    orders[i]->id >= c->next_id)
				orders[i]->idem_result = ORDER_IDEM_NEW;
		refuse_new(c, batch, orders, n, rc);
		return;
	}
	for (size_t i = 0; i < n; i++)
		batch[i]->rc = 0;
	wake_batch(batch, n);
}

static void *
intake_run(void *arg)
{
	struct committer *c = arg;
	struct waiter **batch = calloc(INTAKE_BATCH_MAX, sizeof(*batch));
	struct order **orders = calloc(INTAKE_BATCH_MAX, sizeof(*orders));
	struct order **fresh = calloc(INTAKE_BATCH_MAX, sizeof(*fresh));
	size_t max_payload = journal_max_payload(c->journal);

	if (batch == NULL || orders == NULL || fresh == NULL)
		fatalx("committer: out of memory");
	for (;;) {
		size_t n = 0, bytes = 0;
		struct waiter *w;

		pthread_mutex_lock(&c->lock);
		while (c->creates == NULL && !c->stopping)
			pthread_cond_wait(&c->intake_cond, &c->lock);
		if (c->creates == NULL) {
			c->intake_done = true;
			pthread_cond_signal(&c->apply_cond);
			pthread_mutex_unlock(&c->lock);
			break;
		}
		/* As many as one record holds (one order always fits). */
		for (w = c->creates; w != NULL && n < INTAKE_BATCH_MAX;
		    w = w->next) {
			size_t len = orderlog_size(&w->order, 1);

			if (n > 0 && bytes + len > max_payload)
				break;
			bytes += len;
			w->taken = true;
			batch[n] = w;
			orders[n++] = w->order;
		}
		c->creates = w;
		if (w == NULL)
			c->creates_tail = &c->creates;
		pthread_mutex_unlock(&c->lock);
		intake_batch(c, batch, orders, fresh, n);
	}
	free(batch);
	free(orders);
	free(fresh);
	return NULL;
}

/* Commits work again: end a stall of refused creates, if any. */
static void
stall_end(struct committer *c)
{
	bool was;

	pthread_mutex_lock(&c->lock);
	was = c->stalled;
	c->stalled = false;
	pthread_mutex_unlock(&c->lock);
	if (was)
		log_info("journaled orders reach LMDB again; creates are "
		    "accepted");
}

/* The apply thread's decoded orders, reused from one apply to the next. */
struct apply_buf {
	struct order *orders;
	struct order **ptrs;
	uint64_t *ids;
	size_t cap;
};

static int
apply_reserve(struct apply_buf *a, size_t n)
{
	size_t cap = a->cap;
	struct order *orders;
	struct order **ptrs;
	uint64_t *ids;

	if (n <= a->cap)
		return 0;
	while (cap < n)
		cap = cap == 0 ? 1024 : cap * 2;
	if ((orders = reallocarray(a->orders, cap, sizeof(*orders))) == NULL)
		return ENOMEM;
	a->orders = orders;
	for (size_t i = a->cap; i < cap; i++)
		order_init(&a->orders[i]);
	if ((ptrs = reallocarray(a->ptrs, cap, sizeof(*ptrs))) == NULL)
		return ENOMEM;
	a->ptrs = ptrs;
	if ((ids = reallocarray(a->ids, cap, sizeof(*ids))) == NULL)
		return ENOMEM;
	a->ids = ids;
	a->cap = cap;
	return 0;
}

/*
 * Apply the batches from first to last (n orders) in one transaction. On
 * success they leave the list, the ids move, the journal may write over
 * them, and the worker is rung. The intake may append batches after last
 * meanwhile; nothing else changes the list.
 */
static int
apply_batches(struct committer *c, struct apply_buf *a, struct jbatch *first,
    struct jbatch *last, size_t n)
{
	struct jbatch *b;
	size_t k = 0;
	int rc;

	if ((rc = apply_reserve(a, n)) != 0)
		return rc;
	for (b = first; ; b = b->next) {
		size_t got;

		if ((rc = orderlog_decode(b->payload, b->len, a->orders + k,
		    n - k, &got)) != 0)
			return rc;
		k += got;
		if (b == last)
			break;
	}
	for (size_t i = 0; i < k; i++) {
		a->ptrs[i] = &a->orders[i];
		a->ids[i] = a->orders[i].id;
	}
	if ((rc = store_apply(c->store, a->ptrs, k, last->end_lsn)) != 0)
		return rc;

	pthread_mutex_lock(&c->lock);
	c->batches = last->next;
	if (c->batches == NULL)
		c->batches_tail = &c->batches;
	for (b = first; ; b = b->next) {
		keys_drop(c, b);
		c->unapplied -= b->n;
		c->unapplied_room -= b->room;
		c->unapplied_bytes -= b->bytes;
		if (b == last)
			break;
	}
	c->stats.commits++;
	c->stats.orders += k;
	atomic_store_explicit(&c->applied_id, last->last_id,
	    memory_order_release);
	pthread_cond_broadcast(&c->applied_cond);
	pthread_mutex_unlock(&c->lock);
	journal_applied(c->journal, last->end_lsn);
	for (b = first; ; ) {
		struct jbatch *next = b->next;
		bool done = b == last;

		free(b);
		if (done)
			break;
		b = next;
	}
	ring_worker(c, a->ids, k);
	return 0;
}

/* Record an apply's outcome for committer_stats and the log. */
static void
apply_done(struct committer *c, int rc, size_t n)
{
	int before;

	pthread_mutex_lock(&c->lock);
	before = c->apply_error;
	c->apply_error = rc;
	if (rc != 0)
		pthread_cond_broadcast(&c->applied_cond);
	pthread_mutex_unlock(&c->lock);
	if (rc != 0)
		log_limited(&c->apply_log, LOG_LEVEL_ERROR, rc,
		    "could not commit %zu journaled orders to LMDB: %s; "
		    "trying again in %d ms, creates refused meanwhile", n,
		    store_strerror(rc), RETRY_INTERVAL_MS);
	else if (before != 0)
		log_info("commits succeed again");
	if (rc == 0)
		stall_end(c);
}

/* One cancel and its transaction (apply thread only). */
struct cancel {
	struct committer *c;
	struct waiter *w;		/* taken, or NULL */
};

/*
 * store_cancel_from's take: the cancel at the head of its FIFO, if it is
 * still there (it may have timed out meanwhile).
 */
static bool
take_cancel(void *arg, uint64_t *id, int64_t *now_ms)
{
	struct cancel *k = arg;
	struct committer *c = k->c;
	struct waiter *w;

	pthread_mutex_lock(&c->lock);
	if ((w = c->cancels) != NULL) {
		w->taken = true;
		c->cancels = w->next;
		if (c->cancels == NULL)
			c->cancels_tail = &c->cancels;
		k->w = w;
	}
	pthread_mutex_unlock(&c->lock);
	if (w == NULL)
		return false;
	*id = w->cancel_id;
	*now_ms = clock_realtime_ms();
	return true;
}

/* Run the cancel at the head of its FIFO in a transaction of its own. */
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
	if (taken && k.w != NULL) {
		order_finish(k.w->order);
		*k.w->order = scratch;
		order_init(&scratch);
		k.w->rc = rc;
		waiter_wake(k.w);
	}
	order_finish(&scratch);
}

/*
 * Stopping, with nothing more to come from the intake: a failed apply is
 * not tried again, the journal keeps its orders for the next start.
 */
static bool
quit_on_failure(struct committer *c)
{
	bool done;

	pthread_mutex_lock(&c->lock);
	done = c->intake_done;
	pthread_mutex_unlock(&c->lock);
	return done;
}

/*
 * Creates are refused for lack of room: see once a second whether there
 * is room again, so that /readyz says so without waiting for a create.
 */
static void
recheck_room(struct committer *c, int64_t *next_check)
{
	uint64_t unapplied, room;
	int refused;

	pthread_mutex_lock(&c->lock);
	refused = c->admit_error;
	unapplied = c->unapplied;
	room = c->unapplied_room;
	pthread_mutex_unlock(&c->lock);
	if (refused == 0)
		return;
	/* As a create of one order of one item would be admitted. */
	admit_done(c, store_admit(c->store, NULL, 0, unapplied + 1, room +
	    store_record_room(&(struct order){ .n_items = 1 }),
	    clock_realtime_ms()));
	*next_check = clock_monotonic_ms() + RETRY_INTERVAL_MS;
}

static void *
apply_run(void *arg)
{
	struct committer *c = arg;
	struct apply_buf a = { 0 };
	int64_t next_refresh = 0, next_retry = 0;

	for (;;) {
		struct jbatch *first, *last = NULL;
		bool cancel, failing, quit;
		size_t n = 0;
		int rc;

		if (clock_monotonic_ms() >= next_refresh) {
			queue_check(c);
			next_refresh = clock_monotonic_ms() + QUEUE_REFRESH_MS;
		}

		pthread_mutex_lock(&c->lock);
		for (;;) {
			int64_t now = clock_monotonic_ms(), until;

			failing = c->apply_error != 0;
			if (c->cancels != NULL)
				break;
			if (c->batches != NULL && !failing && (c->stopping ||
			    c->readers_waiting > 0 ||
			    c->unapplied >= APPLY_MAX / 2 ||
			    c->unapplied_bytes >= c->journal_size / 4 ||
			    now >= c->batches->journaled_ms + c->apply_delay_ms))
				break;
			if (c->batches != NULL && failing &&
			    (now >= next_retry || c->intake_done))
				break;
			if (c->batches == NULL && c->intake_done)
				break;
			until = next_refresh;
			if (c->batches != NULL && failing && next_retry < until)
				until = next_retry;
			if (c->batches != NULL && !failing &&
			    c->batches->journaled_ms + c->apply_delay_ms < until)
				until = c->batches->journaled_ms +
				    c->apply_delay_ms;
			if (until <= now)
				break;
			cond_wait_until(&c->apply_cond, &c->lock, until);
		}
		cancel = c->cancels != NULL;
		quit = c->batches == NULL && c->cancels == NULL &&
		    c->intake_done;
		first = c->batches;
		/* Every batch journaled so far, up to APPLY_MAX orders. */
		for (struct jbatch *b = first; b != NULL && (n == 0 ||
		    n + b->n <= APPLY_MAX); b = b->next) {
			n += b->n;
			last = b;
		}
		pthread_mutex_unlock(&c->lock);
		if (quit)
			break;
		if (cancel) {
			run_cancel(c);
			continue;
		}
		if (first == NULL && clock_monotonic_ms() >= next_retry)
			recheck_room(c, &next_retry);
		if (first == NULL || (failing && clock_monotonic_ms() <
		    next_retry && !quit_on_failure(c)))
			continue;

		rc = apply_batches(c, &a, first, last, n);
		apply_done(c, rc, n);
		if (rc == 0)
			continue;
		next_retry = clock_monotonic_ms() + RETRY_INTERVAL_MS;
		if (quit_on_failure(c) || store_fatal(rc))
			break;
	}
	for (size_t i = 0; i < a.cap; i++)
		order_finish(&a.orders[i]);
	free(a.orders);
	free(a.ptrs);
	free(a.ids);
	return NULL;
}

/* Free c, its threads ended or never started. */
static void
committer_free(struct committer *c)
{
	pthread_cond_destroy(&c->intake_cond);
	pthread_cond_destroy(&c->apply_cond);
	pthread_cond_destroy(&c->applied_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int
committer_create(struct committer **cp, struct store *s, struct journal *j,
    const char *queue_name, unsigned timeout_ms)
{
	struct committer *c = calloc(1, sizeof(*c));
	pthread_condattr_t attr;
	uint64_t lsn, next_id;
	int rc;

	if (c == NULL)
		return ENOMEM;
	if ((rc = store_journal_state(s, &lsn, &next_id)) != 0) {
		free(c);
		return rc;
	}
	c->store = s;
	c->journal = j;
	c->journal_size = journal_size(j);
	c->next_id = next_id;
	c->last_id = order_instance_last_id(store_instance(s));
	atomic_init(&c->journaled_id, next_id - 1);
	atomic_init(&c->applied_id, next_id - 1);
	atomic_init(&c->broken, 0);
	c->creates_tail = &c->creates;
	c->cancels_tail = &c->cancels;
	c->batches_tail = &c->batches;
	c->timeout_ms = timeout_ms;
	c->apply_delay_ms = timeout_ms / 4 < APPLY_DELAY_MS ? timeout_ms / 4 :
	    APPLY_DELAY_MS;
	c->last_queue_err = -1;
	queue_init(&c->queue, queue_name);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->intake_cond, &attr);
	pthread_cond_init(&c->apply_cond, &attr);
	pthread_cond_init(&c->applied_cond, &attr);
	pthread_condattr_destroy(&attr);
	if ((rc = pthread_create(&c->apply_thread, NULL, apply_run, c)) != 0)
		goto fail;
	if ((rc = pthread_create(&c->intake_thread, NULL, intake_run, c)) != 0) {
		pthread_mutex_lock(&c->lock);
		c->intake_done = true;
		pthread_cond_signal(&c->apply_cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->apply_thread, NULL);
		goto fail;
	}
	*cp = c;
	return 0;
fail:
	committer_free(c);
	return rc;
}

int
committer_destroy(struct committer *c, unsigned wait_ms)
{
	struct timespec until;
	int rc = 0;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->intake_cond);
	pthread_cond_signal(&c->apply_cond);
	pthread_mutex_unlock(&c->lock);
	/* The intake waits for nobody but the disk. */
	pthread_join(c->intake_thread, NULL);
	/* A duration: no step of the wall clock may shorten or stretch it. */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	/* Blocked in LMDB (the writer lock held elsewhere): left as it is. */
	if (pthread_clockjoin_np(c->apply_thread, NULL, CLOCK_MONOTONIC,
	    &until) != 0)
		return ETIMEDOUT;
	if (c->batches != NULL) {
		rc = c->apply_error != 0 ? c->apply_error : EIO;
		log_error("could not commit %llu journaled orders to LMDB "
		    "before stopping: %s; they stay in the journal, and the "
		    "next start applies them", (unsigned long long)c->unapplied,
		    store_strerror(rc));
	}
	queue_close(&c->queue);
	while (c->batches != NULL) {
		struct jbatch *next = c->batches->next;

		keys_drop(c, c->batches);
		free(c->batches);
		c->batches = next;
	}
	committer_free(c);
	return rc;
}

int
committer_submit(struct committer *c, struct order *o)
{
	struct waiter w = { .order = o };

	pthread_mutex_lock(&c->lock);
	*c->creates_tail = &w;
	c->creates_tail = &w.next;
	if (c->creates == &w)
		pthread_cond_signal(&c->intake_cond);
	pthread_mutex_unlock(&c->lock);
	waiter_sleep(&w);
	for (int i = 0; i < 2; i++)
		if (w.wake[i] != NULL)
			waiter_wake(w.wake[i]);
	return w.rc;
}

/* Take w, which is not taken, off the cancels' FIFO; under the lock. */
static void
withdraw(struct committer *c, struct waiter *w)
{
	struct waiter **p = &c->cancels;

	while (*p != w)
		p = &(*p)->next;
	*p = w->next;
	if (c->cancels_tail == &w->next)
		c->cancels_tail = p;
}

int
committer_cancel(struct committer *c, uint64_t id, struct order *o)
{
	struct waiter w = { .order = o, .cancel_id = id };
	int64_t deadline_ms;
	bool withdrawn = false;
	int rc;

	/* An order still on its way to LMDB is cancelled once there. */
	if ((rc = committer_wait_order(c, id)) != 0)
		return rc;
	deadline_ms = clock_monotonic_ms() + c->timeout_ms;
	pthread_mutex_lock(&c->lock);
	*c->cancels_tail = &w;
	c->cancels_tail = &w.next;
	pthread_cond_signal(&c->apply_cond);
	pthread_mutex_unlock(&c->lock);
	if (!waiter_sleep_until(&w, deadline_ms)) {
		pthread_mutex_lock(&c->lock);
		if (!w.taken) {
			withdraw(c, &w);
			withdrawn = true;
		}
		pthread_mutex_unlock(&c->lock);
		if (withdrawn)
			return COMMITTER_ETIMEDOUT;
		waiter_sleep(&w);
	}
	return w.rc;
}

/* Wait until applied_id reaches id: 0, the timeout, or the apply's error. */
static int
wait_applied(struct committer *c, uint64_t id)
{
	int64_t deadline_ms;
	int rc = 0;

	if (atomic_load_explicit(&c->applied_id, memory_order_acquire) >= id)
		return 0;
	deadline_ms = clock_monotonic_ms() + c->timeout_ms;
	pthread_mutex_lock(&c->lock);
	/* A read waits: the apply thread goes now, not after its delay. */
	if (c->readers_waiting++ == 0)
		pthread_cond_signal(&c->apply_cond);
	while (atomic_load_explicit(&c->applied_id, memory_order_acquire) < id) {
		if (c->apply_error != 0) {
			rc = c->apply_error;
			break;
		}
		if (cond_wait_until(&c->applied_cond, &c->lock,
		    deadline_ms) == ETIMEDOUT &&
		    atomic_load(&c->applied_id) < id) {
			rc = COMMITTER_ETIMEDOUT;
			break;
		}
	}
	c->readers_waiting--;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int
committer_wait_order(struct committer *c, uint64_t id)
{
	if (id > atomic_load_explicit(&c->journaled_id, memory_order_acquire))
		return 0;	/* never answered 201: LMDB says what it is */
	return wait_applied(c, id);
}

int
committer_wait_all(struct committer *c)
{
	return wait_applied(c, atomic_load_explicit(&c->journaled_id,
	    memory_order_acquire));
}

int
committer_counters(struct committer *c, struct store_counters *out)
{
	uint64_t journaled;
	int rc;

	if ((rc = store_counters(c->store, out)) != 0)
		return rc;
	/*
	 * Read after the counters' snapshot: every order journaled by then
	 * and not in that snapshot (ids from its next_id on) is added.
	 */
	journaled = atomic_load_explicit(&c->journaled_id,
	    memory_order_acquire);
	if (journaled >= out->next_id) {
		uint64_t extra = journaled - out->next_id + 1;

		out->by_status[ORDER_PENDING] += extra;
		out->created_total += extra;
	}
	return 0;
}

void
committer_stats(struct committer *c, struct committer_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	st->last_commit_error = c->apply_error != 0 ? c->apply_error :
	    c->admit_error;
	st->stalled = c->stalled;
	st->unapplied = c->unapplied;
	pthread_mutex_unlock(&c->lock);
}

int
committer_broken(struct committer *c)
{
	return atomic_load(&c->broken);
}
