/*
 * idset: the set of order ids a worker holds (scheduled or in progress),
 * so an id that arrives twice, from the queue and from a sweep, is
 * scheduled once. Open addressing with linear probing; 0 is never an id.
 * Owns its table; not thread-safe.
 */
#ifndef OP_IDSET_H
#define OP_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset {
	uint64_t *slots;	/* 0: empty */
	size_t cap;		/* a power of two */
	size_t len;
};

void idset_init(struct idset *s);
void idset_finish(struct idset *s);
/* 1: added, 0: already there, -1: out of memory. */
int idset_add(struct idset *s, uint64_t id);
bool idset_contains(const struct idset *s, uint64_t id);
void idset_remove(struct idset *s, uint64_t id);

#endif
