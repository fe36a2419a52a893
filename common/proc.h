/*
 * proc: the process set-up of --daemon and --pidfile, before anything
 * else is opened (LMDB, the queue, threads).
 *
 * proc_start takes the pidfile (libbsd pidfile_open: locked; a live owner
 * makes it refuse) and, with --daemon, forks: the parent waits until the
 * child calls proc_ready (then exits 0) or exits (then exits with the
 * child's status), so "order-api -d" fails visibly when start-up fails.
 * The child starts a new session, moves to "/", and points stdin and
 * stdout at /dev/null, and stderr too once it is ready (so start-up errors
 * still show) unless a log file has taken stderr's place (log.h).
 * One per process; not thread-safe.
 */
#ifndef OP_PROC_H
#define OP_PROC_H

#include "config.h"

/* Returns 0 in the process that runs on; exits on failure. */
int proc_start(struct config *cfg);
/*
 * Start-up is done: settle stderr (the log file's or /dev/null) and let a
 * waiting parent exit 0. A forked worker calls it too, once set up.
 */
void proc_ready(void);
/* In a forked child that must not keep the pidfile open. */
void proc_forget_pidfile(void);
/* At a clean exit: remove the pidfile. */
void proc_finish(void);

#endif
