/*
 * worker: one worker process, forked by the master (master.h), which moves
 * orders through their states: Pending -> Processing (claim) -> Completed
 * (complete).
 *
 * worker_main runs in the child right after fork. It opens its own LMDB
 * environment and queue (nothing crosses the fork), then runs one loop:
 * poll the queue and a signalfd until the next timer, claim and complete
 * every order that is due in one transaction for the turn (at most one
 * every COMMIT_GAP_MS, worker.c), and sweep LMDB's index of unfinished
 * orders every second for work the queue did not bring. The delays are
 * timers in a heap, so thousands of orders are in flight at once.
 * On SIGTERM it stops claiming, completes what falls due within
 * WORKER_STOP_GRACE_MS and hands the rest back to Pending. When its LMDB
 * environment becomes unusable it exits with WORKER_EXIT_STORE at once:
 * the orders it held wait for their leases to lapse.
 */
#ifndef OP_WORKER_H
#define OP_WORKER_H

#include <sys/types.h>

#include "config.h"

#define WORKER_STOP_GRACE_MS 2000
/* Exit status of a worker that could not set up (LMDB will not open). */
#define WORKER_EXIT_SETUP 3
/*
 * Exit status of a worker whose LMDB environment became unusable while it
 * ran (store_broken): the master starts a new one, which opens it afresh.
 */
#define WORKER_EXIT_STORE 4

/*
 * index is 0 .. cfg->workers - 1. The worker writes its index as one byte
 * to heartbeat_fd (the master's pipe) each time round its loop, at most
 * once a second. SIGHUP re-reads the settings. Returns the exit status.
 */
int worker_main(struct config *cfg, unsigned index, pid_t master,
    int heartbeat_fd);

#endif
