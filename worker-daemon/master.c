/*
 * master: order-worker's supervisor (master.h). One loop polls a signalfd
 * and the heartbeat pipe: it forks what is due, kills a child that shows
 * no heartbeat for HUNG_MS, reaps with waitpid(WNOHANG) and restarts with
 * backoff, forwards SIGTERM, SIGINT and SIGHUP, and waits for every child
 * before it returns. A child whose LMDB environment became unusable exits
 * with WORKER_EXIT_STORE and is restarted like any other; one that could
 * not set up (WORKER_EXIT_SETUP) stops them all.
 */
#include <bsd/unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "proc.h"
#include "worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A child that lived this long resets its backoff. */
#define BACKOFF_RESET_MS 10000
/* A child silent this long is hung (SIGSTOP, a stuck call): kill it. */
#define HUNG_MS 60000

struct child {
	pid_t pid;		/* 0: not running */
	int64_t started_ms;
	int64_t heartbeat_ms;	/* last byte on the heartbeat pipe */
	bool seen;		/* has shown a heartbeat since it started */
	int64_t restart_at_ms;	/* when to fork it again */
	int64_t backoff_ms;
};

struct master {
	struct config *cfg;
	struct child *children;
	int heartbeat[2];	/* children write their index, master reads */
	int sfd;		/* the master's signalfd */
	sigset_t oldmask;
	bool stopping;
	bool setup_failed;
	bool ready;		/* READY=1 sent */
};

static void
spawn(struct master *m, unsigned i)
{
	struct child *c = &m->children[i];
	pid_t master = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		log_error("could not fork worker %u: %s; retrying", i + 1,
		    strerror(errno));
		c->restart_at_ms = clock_monotonic_ms() + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
		proc_forget_pidfile();
		close(m->heartbeat[0]);
		close(m->sfd);
		setproctitle("worker %u", i + 1);
		_exit(worker_main(m->cfg, i, master, m->heartbeat[1]));
	}
	c->pid = pid;
	c->started_ms = c->heartbeat_ms = clock_monotonic_ms();
	c->seen = false;
	log_debug("forked worker %u as pid %d", i + 1, (int)pid);
}

static void
signal_children(struct master *m, int sig)
{
	for (unsigned i = 0; i < m->cfg->workers; i++)
		if (m->children[i].pid != 0)
			kill(m->children[i].pid, sig);
}

static void
describe_exit(int wstatus, char *buf, size_t len)
{
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == WORKER_EXIT_STORE)
		snprintf(buf, len, "exited with status %d (its LMDB "
		    "environment became unusable)", WEXITSTATUS(wstatus));
	else if (WIFEXITED(wstatus))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	else
		snprintf(buf, len, "ended with wait status %d", wstatus);
}

/* A child ended: decide whether and when it comes back. */
static void
reaped(struct master *m, struct child *c, unsigned i, int wstatus)
{
	bool clean = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	char how[96];
	int64_t now = clock_monotonic_ms();

	describe_exit(wstatus, how, sizeof(how));
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == WORKER_EXIT_SETUP) {
		log_error("worker %u could not set up; stopping", i + 1);
		m->setup_failed = true;
		return;
	}
	if (m->stopping || m->setup_failed) {
		if (!clean)
			log_warn("worker %u %s", i + 1, how);
		return;
	}
	if (now - c->started_ms >= BACKOFF_RESET_MS)
		c->backoff_ms = BACKOFF_MIN_MS;
	c->restart_at_ms = now + c->backoff_ms;
	log_warn("worker %u %s; restarting it in %lld ms", i + 1, how,
	    (long long)c->backoff_ms);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
	    : c->backoff_ms * 2;
}

static void
reap(struct master *m)
{
	pid_t pid;
	int wstatus;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		for (unsigned i = 0; i < m->cfg->workers; i++) {
			if (m->children[i].pid == pid) {
				m->children[i].pid = 0;
				reaped(m, &m->children[i], i, wstatus);
			}
		}
	}
}

static void
read_heartbeats(struct master *m)
{
	unsigned char beats[256];
	ssize_t n;

	while ((n = read(m->heartbeat[0], beats, sizeof(beats))) > 0) {
		for (ssize_t k = 0; k < n; k++) {
			struct child *c;

			if (beats[k] >= m->cfg->workers)
				continue;
			c = &m->children[beats[k]];
			c->heartbeat_ms = clock_monotonic_ms();
			c->seen = true;
		}
	}
}

static void
on_signal(struct master *m, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(m);
			break;
		case SIGHUP:
			log_info("SIGHUP: reopening the log, reading the "
			    "settings again");
			if (log_reopen() != 0)
				log_error("could not reopen log file %s: %s",
				    m->cfg->log_file, strerror(errno));
			config_reload(m->cfg);
			signal_children(m, SIGHUP);
			break;
		default:	/* SIGTERM, SIGINT */
			if (!m->stopping) {
				log_info("stopping on %s: waiting for the "
				    "workers", si.ssi_signo == SIGTERM
				    ? "SIGTERM" : "SIGINT");
				notify_stopping();
			}
			m->stopping = true;
			signal_children(m, SIGTERM);
		}
	}
}

/*
 * Fork what is due, kill what hangs, and say READY=1 once every worker
 * has shown a heartbeat. Returns the running children and lowers
 * *wait_ms to the next restart.
 */
static unsigned
supervise(struct master *m, int64_t *wait_ms)
{
	int64_t now = clock_monotonic_ms();
	unsigned running = 0, seen = 0;

	for (unsigned i = 0; i < m->cfg->workers; i++) {
		struct child *c = &m->children[i];

		if (c->pid == 0 && !m->stopping && !m->setup_failed) {
			if (c->restart_at_ms <= now)
				spawn(m, i);
			else if (c->restart_at_ms - now < *wait_ms)
				*wait_ms = c->restart_at_ms - now;
		}
		if (c->pid == 0)
			continue;
		running++;
		seen += c->seen;
		if (!m->stopping && now - c->heartbeat_ms > HUNG_MS) {
			log_warn("worker %u (pid %d) showed no heartbeat for "
			    "%d s; killing it", i + 1, (int)c->pid,
			    HUNG_MS / 1000);
			kill(c->pid, SIGKILL);
			c->heartbeat_ms = now;	/* once; the reap follows */
		}
	}
	if (!m->ready && !m->stopping && seen == m->cfg->workers) {
		m->ready = true;
		log_info("all %u workers started", m->cfg->workers);
		proc_ready();
		notify_ready("processing");
	}
	return running;
}

int
master_run(struct config *cfg)
{
	struct master m = { .cfg = cfg };
	sigset_t set;
	int64_t watchdog_ms;
	int64_t next_watchdog = 0;	/* monotonic ms: the next WATCHDOG=1 */
	int sfd;

	setproctitle("master");

	/* A shell's background job starts with SIGINT ignored: undo that. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &m.oldmask);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fatal("could not open a signalfd");
	m.sfd = sfd;
	if (pipe2(m.heartbeat, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("could not make the heartbeat pipe");
	m.children = calloc(cfg->workers, sizeof(*m.children));
	if (m.children == NULL)
		fatalx("out of memory");
	for (unsigned i = 0; i < cfg->workers; i++)
		m.children[i].backoff_ms = BACKOFF_MIN_MS;
	log_info("supervising %u workers; data in %s, queue %s", cfg->workers,
	    cfg->data_dir, cfg->queue);

	watchdog_ms = notify_watchdog_interval_ms();
	for (;;) {
		int64_t wait_ms = 1000, now;
		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = m.heartbeat[0], .events = POLLIN },
		};
		unsigned running = supervise(&m, &wait_ms);

		if ((m.stopping || m.setup_failed) && running == 0)
			break;
		if (m.setup_failed && !m.stopping) {
			m.stopping = true;
			signal_children(&m, SIGTERM);
		}
		/* The watchdog is fed while this loop turns. */
		now = clock_monotonic_ms();
		if (watchdog_ms > 0 && now >= next_watchdog) {
			notify_watchdog();
			next_watchdog = now + watchdog_ms;
		}
		if (poll(pfd, 2, (int)wait_ms) < 0 && errno != EINTR)
			fatal("poll");
		if (pfd[1].revents & POLLIN)
			read_heartbeats(&m);
		if (pfd[0].revents & POLLIN)
			on_signal(&m, sfd);
	}
	free(m.children);
	close(m.heartbeat[0]);
	close(m.heartbeat[1]);
	close(sfd);
	log_info(m.setup_failed ? "stopped after a worker could not set up"
	    : "stopped");
	return m.setup_failed ? 1 : 0;
}
