/*
 * master: order-worker's supervisor, the parent of every worker process.
 *
 * master_run forks cfg->workers worker processes (worker.h) and only
 * supervises them: it restarts a child that dies (with backoff) or that
 * stops showing heartbeats on its pipe, forwards SIGTERM, SIGINT and
 * SIGHUP, feeds systemd's watchdog, and waits for every child before it
 * returns. It never opens LMDB or the queue, so nothing of either crosses
 * a fork. Call it once, from main, after proc_start and before anything
 * else is opened; it blocks the signals it handles for as long as it runs.
 */
#ifndef OP_MASTER_H
#define OP_MASTER_H

#include "config.h"

/*
 * Supervise until SIGTERM or SIGINT has stopped every worker, or until a
 * worker could not set up (the others are then stopped). Returns the exit
 * status: 0, or 1 after a worker could not set up.
 */
int master_run(struct config *cfg);

#endif
