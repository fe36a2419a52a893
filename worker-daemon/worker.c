#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "heap.h"
#include "idset.h"
#include "clock.h"
#include "log.h"
#include "order.h"
#include "proc.h"
#include "queue.h"
#include "store.h"

/* How often LMDB is swept for orders the queue did not bring. */
#define SWEEP_INTERVAL_MS 1000
/*
 * A Pending order younger than this is left to the queue's doorbell; an
 * older one is taken by the sweep of the worker whose share it is, and,
 * once OVERDUE_MS past its due time, by any worker's sweep (its owner may
 * be stopped).
 */
#define SWEEP_MIN_AGE_MS 1000
#define OVERDUE_MS 5000
/*
 * The two heartbeats a worker gives: a byte on the master's pipe, which
 * tells the master that this loop turns (master.c), and a time written to
 * LMDB, which tells order-api's /readyz and metrics that a worker runs.
 */
#define MASTER_BEAT_INTERVAL_MS 1000
#define STORE_BEAT_INTERVAL_MS 2000
/* Most transitions in one write transaction. */
#define BATCH_MAX 8192
/*
 * The least time between two of a worker's transactions. Under load this
 * gathers what falls due meanwhile into one commit, so the workers hold
 * LMDB's single writer lock (and its fsyncs) for a small share of the time
 * and order-api's commits of new orders get the rest; a quiet worker's
 * next transaction is never delayed. An order may complete this much
 * after its due time.
 */
#define COMMIT_GAP_MS 20
/* Most queue messages read before the timers get their turn. */
#define RECEIVE_MAX 64

struct worker {
	struct config *cfg;
	unsigned index;
	int heartbeat_fd;	/* the master's pipe */
	/* Monotonic ms: this worker's next byte to the master's pipe. */
	int64_t next_beat_to_master;
	struct store *store;
	struct queue queue;
	int queue_err;		/* last open error, to log changes only */
	struct heap jobs;
	struct idset held;	/* ids in jobs */
	size_t completing;	/* JOB_COMPLETE jobs in the heap */
	struct store_claim *batch;
	uint64_t *ids;		/* one queue message */
	size_t ids_cap;
	int64_t next_sweep;	/* monotonic ms */
	/* Monotonic ms: this worker's next heartbeat written to LMDB. */
	int64_t next_beat_to_store;
	int64_t next_commit;	/* monotonic ms: no run_due transaction before */
	bool first_sweep;
	bool stopping;
	/*
	 * Monotonic ms: the end of the stop's grace, a duration that no step
	 * of the wall clock may cut short or stretch.
	 */
	int64_t stop_deadline;
	/* Rate limits of the errors that can repeat every turn. */
	struct log_limit claim_log, complete_log, store_beat_log, sweep_log,
	    peek_log;
};

static void
schedule(struct worker *w, uint64_t id, int64_t due_ms, enum job_phase phase,
    uint32_t attempt)
{
	struct job job = { .due_ms = due_ms, .id = id, .attempt = attempt,
		.phase = phase };

	if (heap_push(&w->jobs, &job) != 0)
		fatalx("out of memory for timers (%zu held)", w->jobs.len);
	if (phase == JOB_COMPLETE)
		w->completing++;
}

/* Take an order on, unless this worker holds it already. */
static void
take(struct worker *w, uint64_t id, int64_t due_ms)
{
	int added = idset_add(&w->held, id);

	if (added < 0)
		fatalx("out of memory for held orders (%zu)", w->held.len);
	if (added == 1)
		schedule(w, id, due_ms, JOB_CLAIM, 0);
}

static int
on_received(const struct store_unfinished *u, void *arg)
{
	struct worker *w = arg;
	int64_t now = clock_realtime_ms();

	if (u->status == ORDER_PENDING)
		take(w, u->id, u->due_ms + w->cfg->pickup_delay_ms);
	else if (u->status == ORDER_PROCESSING && u->due_ms <= now)
		take(w, u->id, now);
	return 0;
}

static int
on_swept(const struct store_unfinished *u, void *arg)
{
	struct worker *w = arg;
	int64_t now = clock_realtime_ms();

	if (u->status == ORDER_PROCESSING) {
		/* A lapsed lease: its worker died or stalled. Anyone. */
		if (u->due_ms <= now)
			take(w, u->id, now);
		return 0;
	}
	int64_t due = u->due_ms + w->cfg->pickup_delay_ms;
	bool mine = u->id % w->cfg->workers == w->index;

	if (w->first_sweep ? mine : (mine && now - u->due_ms >=
	    SWEEP_MIN_AGE_MS) || now - due >= OVERDUE_MS)
		take(w, u->id, due);
	return 0;
}

static void
open_queue(struct worker *w)
{
	bool reopened;
	int err = queue_refresh(&w->queue, &reopened);

	if (err != 0 && err != w->queue_err)
		log_warn("could not open queue %s: %s; sweeping LMDB every "
		    "%d ms instead", w->queue.name,
		    queue_strerror(&w->queue, err),
		    SWEEP_INTERVAL_MS);
	else if (err == 0 && reopened)
		log_info("opened queue %s (%ld messages of %ld bytes)",
		    w->queue.name, w->queue.maxmsg, w->queue.msgsize);
	w->queue_err = err;
	if (err == 0 && queue_ids_per_message(&w->queue) > w->ids_cap) {
		free(w->ids);
		w->ids_cap = queue_ids_per_message(&w->queue);
		w->ids = calloc(w->ids_cap, sizeof(*w->ids));
		if (w->ids == NULL)
			fatalx("out of memory for a queue message");
	}
}

static void
sweep(struct worker *w)
{
	int rc, cleared = 0;

	open_queue(w);
	if ((rc = store_reader_check(w->store, &cleared)) != 0)
		log_warn("could not check LMDB readers: %s",
		    store_strerror(rc));
	else if (cleared > 0)
		log_info("cleared %d stale LMDB reader slots", cleared);
	if (w->stopping)
		return;
	rc = store_unfinished(w->store, on_swept, w);
	if (rc != 0)
		log_limited(&w->sweep_log, LOG_LEVEL_ERROR, rc, "could not "
		    "sweep LMDB for unfinished orders: %s", store_strerror(rc));
	w->first_sweep = false;
}

static void
receive(struct worker *w)
{
	for (int i = 0; i < RECEIVE_MAX; i++) {
		size_t n;
		int err = queue_receive_ids(&w->queue, w->ids, w->ids_cap, &n);

		if (err == EAGAIN)
			return;
		if (err == EBADMSG) {
			log_warn("dropped a queue message whose length is not "
			    "a multiple of 8");
			continue;
		}
		if (err != 0) {
			log_warn("could not receive from queue %s: %s",
			    w->queue.name, strerror(err));
			queue_close(&w->queue);
			return;
		}
		int rc = store_peek(w->store, w->ids, n, on_received, w);

		if (rc != 0)
			log_limited(&w->peek_log, LOG_LEVEL_ERROR, rc, "could "
			    "not read %zu received orders: %s; the sweep will "
			    "find them", n, store_strerror(rc));
	}
}

typedef int (*batch_fn)(struct worker *w, struct store_claim *c, size_t n,
    int64_t now);

static int
claim_batch(struct worker *w, struct store_claim *c, size_t n, int64_t now)
{
	return store_claim(w->store, c, n, now, now + w->cfg->lease_ms);
}

static int
complete_batch(struct worker *w, struct store_claim *c, size_t n,
    int64_t now)
{
	return store_complete(w->store, c, n, now);
}

static int
release_batch(struct worker *w, struct store_claim *c, size_t n, int64_t now)
{
	return store_release(w->store, c, n, now);
}

/* The map or the disk had no room for a transaction. */
static bool
no_room(int rc)
{
	/* EIO: LMDB's word for a short write, as on a full disk. */
	return rc == STORE_EFULL || rc == STORE_EDISKFULL || rc == EIO;
}

/*
 * Run a batch in one transaction; when the map or the disk has no room for
 * all of it (each change copies pages), in halves, down to one order at a
 * time, so that the room the store keeps in reserve is enough.
 */
static int
in_pieces(struct worker *w, batch_fn fn, struct store_claim *c, size_t n,
    int64_t now)
{
	int rc = fn(w, c, n, now), rc2;

	if (!no_room(rc) || n <= 1)
		return rc;
	rc = in_pieces(w, fn, c, n / 2, now);
	rc2 = in_pieces(w, fn, c + n / 2, n - n / 2, now);
	return rc != 0 ? rc : rc2;
}

/*
 * Claim or complete every job due by now, in one transaction: with orders
 * flowing, each turn of the loop completes the last turn's claims and
 * claims the new ones with a single fsync. When that transaction does not
 * fit, each phase goes on its own, in pieces.
 */
static void
run_due(struct worker *w, int64_t now)
{
	size_t n_claim = 0, n_done = 0;
	struct store_claim *claims = w->batch;
	struct store_claim *dones = w->batch + BATCH_MAX;
	const struct job *top;
	struct job job;
	int rc, rc_claim, rc_done;

	if (clock_monotonic_ms() < w->next_commit)
		return;
	while ((top = heap_top(&w->jobs)) != NULL && top->due_ms <= now &&
	    n_claim < BATCH_MAX && n_done < BATCH_MAX) {
		heap_pop(&w->jobs, &job);
		if (job.phase == JOB_CLAIM) {
			if (w->stopping) {
				/* Not ours any more: it stays Pending. */
				idset_remove(&w->held, job.id);
				continue;
			}
			claims[n_claim++] = (struct store_claim){ .id = job.id };
		} else {
			w->completing--;
			dones[n_done++] = (struct store_claim){ .id = job.id,
				.attempt = job.attempt };
		}
	}
	if (n_claim + n_done == 0)
		return;
	rc = store_advance(w->store, dones, n_done, claims, n_claim, now,
	    now + w->cfg->lease_ms);
	w->next_commit = clock_monotonic_ms() + COMMIT_GAP_MS;
	/*
	 * No room for it all (in_pieces splits each phase), or one bad order
	 * in either (a record that does not decode): each phase on its own,
	 * so that one cannot sink the other. Not when the store is unusable:
	 * every transaction would fail alike.
	 */
	if (rc != 0 && !store_fatal(rc) &&
	    (no_room(rc) || (n_claim > 0 && n_done > 0))) {
		rc_done = in_pieces(w, complete_batch, dones, n_done, now);
		rc_claim = in_pieces(w, claim_batch, claims, n_claim, now);
	} else {
		rc_done = rc_claim = rc;
	}
	if (n_claim > 0) {
		if (rc_claim != 0)
			log_limited(&w->claim_log, LOG_LEVEL_ERROR, rc_claim,
			    "could not claim %zu orders: %s; they stay Pending "
			    "for the next sweep", n_claim,
			    store_strerror(rc_claim));
		for (size_t i = 0; i < n_claim; i++) {
			if (claims[i].done) {
				log_debug("order ORD%llu Processing (attempt "
				    "%u)", (unsigned long long)claims[i].id,
				    claims[i].attempt);
				schedule(w, claims[i].id,
				    now + w->cfg->processing_ms, JOB_COMPLETE,
				    claims[i].attempt);
			} else {
				idset_remove(&w->held, claims[i].id);
			}
		}
	}
	if (n_done > 0) {
		if (rc_done != 0)
			log_limited(&w->complete_log, LOG_LEVEL_ERROR, rc_done,
			    "could not complete %zu orders: %s; their leases "
			    "will lapse and they will be retried", n_done,
			    store_strerror(rc_done));
		for (size_t i = 0; i < n_done; i++) {
			if (dones[i].done)
				log_debug("order ORD%llu Completed",
				    (unsigned long long)dones[i].id);
			idset_remove(&w->held, dones[i].id);
		}
	}
}

static void
release(struct worker *w, size_t n)
{
	int rc = in_pieces(w, release_batch, w->batch, n, clock_realtime_ms());

	if (rc != 0)
		log_error("could not hand %zu orders back to Pending: %s; "
		    "their leases will lapse", n, store_strerror(rc));
	else
		log_info("handed %zu unfinished orders back to Pending", n);
}

/* At the end of a stop: hand every order still held back to Pending. */
static void
release_all(struct worker *w)
{
	size_t n = 0;
	struct job job;

	while (heap_pop(&w->jobs, &job) == 0) {
		if (job.phase != JOB_COMPLETE)
			continue;
		w->batch[n++] = (struct store_claim){ .id = job.id,
			.attempt = job.attempt };
		if (n == 2 * BATCH_MAX) {
			release(w, n);
			n = 0;
		}
	}
	if (n > 0)
		release(w, n);
}

static int
signals_open(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void
on_signal(struct worker *w, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (log_reopen() != 0)
				log_error("could not reopen log file %s: %s",
				    w->cfg->log_file, strerror(errno));
			config_reload(w->cfg);
			continue;
		}
		if (w->stopping)
			continue;
		w->stopping = true;
		w->stop_deadline = clock_monotonic_ms() + WORKER_STOP_GRACE_MS;
		log_info("stopping on signal %u: finishing orders due in the "
		    "next %d ms", si.ssi_signo, WORKER_STOP_GRACE_MS);
	}
}

/* A deadline on the monotonic clock, as a time on the timers' clock. */
static int64_t
wall_time_of(int64_t monotonic_ms)
{
	int64_t gap = monotonic_ms - clock_monotonic_ms();

	return clock_realtime_ms() + (gap > 0 ? gap : 0);
}

/*
 * When the loop must turn next, on the wall clock. The timers are on the
 * wall clock, since an order's due times come from its created_ms, which
 * order-api stored; this worker's own intervals (the sweeps, its
 * heartbeats, the gap between commits, the stop's grace) are on the
 * monotonic clock, so that a step of the wall clock neither stops nor
 * hurries them.
 */
static int64_t
next_deadline(struct worker *w)
{
	const struct job *top = heap_top(&w->jobs);
	int64_t next = wall_time_of(w->next_sweep), at;

	/* (No heartbeat goes to LMDB while stopping.) */
	if (!w->stopping && (at = wall_time_of(w->next_beat_to_store)) < next)
		next = at;
	if (top != NULL && top->due_ms < next) {
		at = wall_time_of(w->next_commit);
		next = top->due_ms > at ? top->due_ms : at;
	}
	if (w->stopping && (at = wall_time_of(w->stop_deadline)) < next)
		next = at;
	return next;
}

/* Tell the master this worker's loop turns: at most once a second. */
static void
beat_to_master(struct worker *w)
{
	unsigned char index = (unsigned char)w->index;
	int64_t now = clock_monotonic_ms();

	if (now < w->next_beat_to_master)
		return;
	w->next_beat_to_master = now + MASTER_BEAT_INTERVAL_MS;
	if (write(w->heartbeat_fd, &index, 1) < 0) {
		/* Full (the master is busy) or gone: try next time. */
	}
}

int
worker_main(struct config *cfg, unsigned index, pid_t master,
    int heartbeat_fd)
{
	struct worker w = { .cfg = cfg, .index = index, .first_sweep = true,
		.queue_err = -1, .heartbeat_fd = heartbeat_fd };
	char procname[64];
	unsigned owner = 0;
	int sfd, rc, status = 1;

	snprintf(procname, sizeof(procname), "order-worker[%u]", index + 1);
	log_procinit(procname);
	/* Die with the master, whatever kills it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		return 1;
	sfd = signals_open();
	if (sfd < 0)
		fatal("could not open a signalfd");

	rc = store_open(&w.store, cfg->data_dir, cfg->map_size, 0);
	if (rc != 0) {
		log_error("could not open the LMDB environment in %s: %s",
		    cfg->data_dir, store_strerror(rc));
		close(sfd);
		return WORKER_EXIT_SETUP;
	}
	if (store_upgraded_from(w.store) != 0)
		log_info("upgraded the LMDB environment in %s from schema "
		    "version %u to %d", cfg->data_dir,
		    store_upgraded_from(w.store), STORE_SCHEMA_VERSION);
	rc = store_instance_claim(w.store, cfg->instance, false, &owner);
	if (rc != 0) {
		if (rc == STORE_EINSTANCE)
			log_error("the LMDB environment in %s holds instance "
			    "%u's orders, and this is instance %u (--instance)",
			    cfg->data_dir, owner, cfg->instance);
		else
			log_error("could not read the instance of the LMDB "
			    "environment in %s: %s", cfg->data_dir,
			    store_strerror(rc));
		store_close(w.store);
		close(sfd);
		return WORKER_EXIT_SETUP;
	}
	proc_ready();
	queue_init(&w.queue, cfg->queue);
	heap_init(&w.jobs);
	idset_init(&w.held);
	w.batch = calloc(2 * BATCH_MAX, sizeof(*w.batch));
	if (w.batch == NULL)
		fatalx("out of memory");
	log_info("started: pickup %u ms, processing %u ms, lease %u ms",
	    cfg->pickup_delay_ms, cfg->processing_ms, cfg->lease_ms);

	while (!w.stopping || (w.completing > 0 &&
	    clock_monotonic_ms() < w.stop_deadline)) {
		int64_t now = clock_realtime_ms(), timeout;
		int64_t mono = clock_monotonic_ms();
		struct pollfd pfd[2];

		/* Every call would fail: no more heartbeats, end (below). */
		if (store_broken(w.store) != 0)
			break;
		if (mono >= w.next_sweep) {
			sweep(&w);
			w.next_sweep = clock_monotonic_ms() + SWEEP_INTERVAL_MS;
		}
		if (mono >= w.next_beat_to_store && !w.stopping) {
			rc = store_heartbeat(w.store, now);
			if (rc != 0)
				log_limited(&w.store_beat_log, LOG_LEVEL_WARN,
				    rc, "could not record a heartbeat: %s",
				    store_strerror(rc));
			w.next_beat_to_store = mono + STORE_BEAT_INTERVAL_MS;
		}
		beat_to_master(&w);
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = queue_fd(&w.queue),
			.events = POLLIN };
		timeout = next_deadline(&w) - clock_realtime_ms();
		if (timeout < 0)
			timeout = 0;
		if (poll(pfd, w.stopping || !queue_is_open(&w.queue) ? 1 : 2,
		    (int)(timeout > 60000 ? 60000 : timeout)) < 0 &&
		    errno != EINTR)
			fatal("poll");
		if (pfd[0].revents & POLLIN)
			on_signal(&w, sfd);
		if (!w.stopping && (pfd[1].revents & POLLIN))
			receive(&w);
		run_due(&w, clock_realtime_ms());
	}
	if ((rc = store_broken(w.store)) != 0) {
		log_error("could not go on: the LMDB environment in %s is "
		    "unusable (%s); exiting with status %d for the master to "
		    "start a new worker", cfg->data_dir, store_strerror(rc),
		    WORKER_EXIT_STORE);
		status = WORKER_EXIT_STORE;
	} else {
		release_all(&w);
		status = 0;
	}

	free(w.batch);
	free(w.ids);
	idset_finish(&w.held);
	heap_finish(&w.jobs);
	queue_close(&w.queue);
	store_close(w.store);
	close(sfd);
	if (status == 0)
		log_info("stopped");
	return status;
}
