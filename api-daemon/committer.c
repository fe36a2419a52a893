#include "committer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "queue.h"

/* The most orders one transaction takes; more wait for the next one. */
#define COMMIT_BATCH_MAX 4096
/* How often the committer checks that its queue is still the named one. */
#define QUEUE_REFRESH_MS 1000

struct waiter {
	struct waiter *next;
	struct order *order;
	pthread_cond_t done_cond;
	bool done;
	int rc;
};

struct committer {
	struct store *store;
	struct queue queue;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work_cond;	/* signalled when a waiter arrives */
	struct waiter *head, **tail;	/* FIFO of orders to commit */
	bool stopping;
	struct committer_stats stats;	/* under lock */
	int last_queue_err;		/* committer thread only */
};

static void
queue_check(struct committer *c)
{
	bool reopened;
	int err = queue_refresh(&c->queue, &reopened);

	if (err != 0) {
		if (err != c->last_queue_err)
			log_warn("could not open queue %s: %s; orders wait "
			    "for the worker's sweep", c->queue.name,
			    strerror(err));
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

static void *
committer_run(void *arg)
{
	struct committer *c = arg;
	struct order **orders = calloc(COMMIT_BATCH_MAX, sizeof(*orders));
	uint64_t *ids = calloc(COMMIT_BATCH_MAX, sizeof(*ids));
	int64_t next_refresh = 0;

	if (orders == NULL || ids == NULL)
		fatalx("committer: out of memory");
	for (;;) {
		struct waiter *batch, *w, *rest;
		size_t n = 0, n_ids = 0;
		int rc;

		if (clock_monotonic_ms() >= next_refresh) {
			queue_check(c);
			next_refresh = clock_monotonic_ms() + QUEUE_REFRESH_MS;
		}

		pthread_mutex_lock(&c->lock);
		while (c->head == NULL && !c->stopping) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			if (pthread_cond_timedwait(&c->work_cond, &c->lock,
			    &until) == ETIMEDOUT)
				break;
		}
		if (c->head == NULL) {
			bool stop = c->stopping;

			pthread_mutex_unlock(&c->lock);
			if (stop)
				break;
			continue;
		}
		batch = c->head;
		for (w = batch; w != NULL && n < COMMIT_BATCH_MAX; w = w->next)
			orders[n++] = w->order;
		rest = w;
		/* Cut the batch off the list: rest stays queued. */
		c->head = rest;
		if (rest == NULL)
			c->tail = &c->head;
		pthread_mutex_unlock(&c->lock);

		rc = store_create(c->store, orders, n, clock_realtime_ms());
		if (rc != 0)
			log_error("could not commit %zu orders: %s", n,
			    store_strerror(rc));

		pthread_mutex_lock(&c->lock);
		if (rc == 0) {
			c->stats.commits++;
			c->stats.orders += n;
		}
		for (w = batch; w != rest;) {
			struct waiter *next = w->next;

			if (rc == 0)
				ids[n_ids++] = w->order->id;
			w->rc = rc;
			w->done = true;
			/* w lives on its handler's stack: done with it. */
			pthread_cond_signal(&w->done_cond);
			w = next;
		}
		pthread_mutex_unlock(&c->lock);

		if (n_ids > 0)
			ring_worker(c, ids, n_ids);
	}
	free(orders);
	free(ids);
	return NULL;
}

int
committer_create(struct committer **cp, struct store *s,
    const char *queue_name)
{
	struct committer *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return ENOMEM;
	c->store = s;
	c->tail = &c->head;
	c->last_queue_err = -1;
	queue_init(&c->queue, queue_name);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work_cond, NULL);
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

void
committer_destroy(struct committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->work_cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	queue_close(&c->queue);
	pthread_cond_destroy(&c->work_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int
committer_submit(struct committer *c, struct order *o)
{
	struct waiter w = { .order = o };

	pthread_cond_init(&w.done_cond, NULL);
	pthread_mutex_lock(&c->lock);
	*c->tail = &w;
	c->tail = &w.next;
	if (c->head == &w)
		pthread_cond_signal(&c->work_cond);
	while (!w.done)
		pthread_cond_wait(&w.done_cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w.done_cond);
	return w.rc;
}

void
committer_stats(struct committer *c, struct committer_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	pthread_mutex_unlock(&c->lock);
}
