/*
 * heap: the worker's timers, a binary min-heap of jobs by deadline.
 *
 * A job is one order's next step: claim it (turn it Processing) or
 * complete it, at due_ms (ms since the epoch, UTC). The heap owns its
 * array; heap_finish frees it. One heap per process; not thread-safe.
 */
#ifndef OP_HEAP_H
#define OP_HEAP_H

#include <stddef.h>
#include <stdint.h>

enum job_phase {
	JOB_CLAIM,
	JOB_COMPLETE,
};

struct job {
	int64_t due_ms;
	uint64_t id;
	uint32_t attempt;	/* JOB_COMPLETE: the claim it finishes */
	enum job_phase phase;
};

struct heap {
	struct job *jobs;
	size_t len;
	size_t cap;
};

void heap_init(struct heap *h);
void heap_finish(struct heap *h);
/* Returns -1 if memory ran out. */
int heap_push(struct heap *h, const struct job *job);
/* The earliest job, or NULL when empty. */
const struct job *heap_top(const struct heap *h);
/* Remove the earliest job into *job; -1 when empty. */
int heap_pop(struct heap *h, struct job *job);

#endif
