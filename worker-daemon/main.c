/*
 * order-worker: the master forks --workers worker processes and only
 * supervises them: it restarts a child that dies (with backoff), forwards
 * SIGTERM and SIGINT, and waits for every child before it exits. It never
 * opens LMDB or the queue, so nothing of either crosses a fork.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "clock.h"
#include "log.h"
#include "worker.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A child that lived this long resets its backoff. */
#define BACKOFF_RESET_MS 10000

struct child {
	pid_t pid;		/* 0: not running */
	int64_t started_ms;
	int64_t restart_at_ms;	/* when to fork it again */
	int64_t backoff_ms;
};

static void
spawn(const struct config *cfg, struct child *children, unsigned i,
    const sigset_t *oldmask)
{
	pid_t master = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		log_error("could not fork worker %u: %s; retrying", i + 1,
		    strerror(errno));
		children[i].restart_at_ms = clock_monotonic_ms() +
		    children[i].backoff_ms;
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		_exit(worker_main(cfg, i, master));
	}
	children[i].pid = pid;
	children[i].started_ms = clock_monotonic_ms();
	log_debug("forked worker %u as pid %d", i + 1, (int)pid);
}

static void
describe_exit(int wstatus, char *buf, size_t len)
{
	if (WIFEXITED(wstatus))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	else
		snprintf(buf, len, "ended with wait status %d", wstatus);
}

int
main(int argc, char **argv)
{
	struct child *children;
	sigset_t set, oldmask;
	struct config cfg;
	bool stopping = false, setup_failed = false;
	int status;
	unsigned running = 0;

	if (!config_setup(&cfg, CONFIG_WORKER, argc, argv, &status))
		return status;
	log_init(cfg.progname, cfg.log_level);
	log_procinit("order-worker[master]");

	/* A shell's background job starts with SIGINT ignored: undo that. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &oldmask);
	signal(SIGPIPE, SIG_IGN);

	children = calloc(cfg.workers, sizeof(*children));
	if (children == NULL)
		fatalx("out of memory");
	for (unsigned i = 0; i < cfg.workers; i++) {
		children[i].backoff_ms = BACKOFF_MIN_MS;
		spawn(&cfg, children, i, &oldmask);
	}
	log_info("supervising %u workers; data in %s, queue %s", cfg.workers,
	    cfg.data_dir, cfg.queue);

	for (;;) {
		int64_t now = clock_monotonic_ms(), wait_ms = 60000;
		struct timespec ts;
		siginfo_t si;
		pid_t pid;
		int wstatus, sig;

		running = 0;
		for (unsigned i = 0; i < cfg.workers; i++) {
			struct child *c = &children[i];

			if (c->pid != 0) {
				running++;
			} else if (!stopping) {
				if (c->restart_at_ms <= now) {
					spawn(&cfg, children, i, &oldmask);
					running += c->pid != 0;
				} else if (c->restart_at_ms - now < wait_ms) {
					wait_ms = c->restart_at_ms - now;
				}
			}
		}
		if (stopping && running == 0)
			break;

		ts.tv_sec = wait_ms / 1000;
		ts.tv_nsec = (wait_ms % 1000) * 1000000;
		sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!stopping)
				log_info("stopping on %s: waiting for %u "
				    "workers", sig == SIGTERM ? "SIGTERM"
				    : "SIGINT", running);
			stopping = true;
			for (unsigned i = 0; i < cfg.workers; i++)
				if (children[i].pid != 0)
					kill(children[i].pid, SIGTERM);
		}
		while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
			char how[96];

			for (unsigned i = 0; i < cfg.workers; i++) {
				struct child *c = &children[i];
				int64_t lived;

				if (c->pid != pid)
					continue;
				c->pid = 0;
				describe_exit(wstatus, how, sizeof(how));
				if (WIFEXITED(wstatus) &&
				    WEXITSTATUS(wstatus) == WORKER_EXIT_SETUP) {
					log_error("worker %u could not set up; "
					    "stopping", i + 1);
					setup_failed = true;
				} else if (stopping && WIFEXITED(wstatus) &&
				    WEXITSTATUS(wstatus) == 0) {
					log_debug("worker %u stopped", i + 1);
					break;
				}
				if (stopping || setup_failed) {
					if (!(WIFEXITED(wstatus) &&
					    WEXITSTATUS(wstatus) == 0))
						log_warn("worker %u %s", i + 1,
						    how);
					break;
				}
				lived = clock_monotonic_ms() - c->started_ms;
				if (lived >= BACKOFF_RESET_MS)
					c->backoff_ms = BACKOFF_MIN_MS;
				c->restart_at_ms = clock_monotonic_ms() +
				    c->backoff_ms;
				log_warn("worker %u (pid %d) %s; restarting it "
				    "in %lld ms", i + 1, (int)pid, how,
				    (long long)c->backoff_ms);
				c->backoff_ms = c->backoff_ms * 2 >
				    BACKOFF_MAX_MS ? BACKOFF_MAX_MS
				    : c->backoff_ms * 2;
			}
		}
		if (setup_failed && !stopping) {
			stopping = true;
			for (unsigned i = 0; i < cfg.workers; i++)
				if (children[i].pid != 0)
					kill(children[i].pid, SIGTERM);
		}
	}
	free(children);
	log_info(setup_failed ? "stopped after a worker could not set up"
	    : "stopped");
	return setup_failed ? 1 : 0;
}
