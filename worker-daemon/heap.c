#include "heap.h"

#include <stdlib.h>

void
heap_init(struct heap *h)
{
	*h = (struct heap){ 0 };
}

void
heap_finish(struct heap *h)
{
	free(h->jobs);
	*h = (struct heap){ 0 };
}

static void
swap(struct job *a, struct job *b)
{
	struct job t = *a;

	*a = *b;
	*b = t;
}

int
heap_push(struct heap *h, const struct job *job)
{
	size_t i;

	if (h->len == h->cap) {
		size_t cap = h->cap != 0 ? h->cap * 2 : 1024;
		struct job *jobs = reallocarray(h->jobs, cap, sizeof(*jobs));

		if (jobs == NULL)
			return -1;
		h->jobs = jobs;
		h->cap = cap;
	}
	i = h->len++;
	h->jobs[i] = *job;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (h->jobs[parent].due_ms <= h->jobs[i].due_ms)
			break;
		swap(&h->jobs[parent], &h->jobs[i]);
		i = parent;
	}
	return 0;
}

const struct job *
heap_top(const struct heap *h)
{
	return h->len > 0 ? &h->jobs[0] : NULL;
}

int
heap_pop(struct heap *h, struct job *job)
{
	size_t i = 0;

	if (h->len == 0)
		return -1;
	*job = h->jobs[0];
	h->jobs[0] = h->jobs[--h->len];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, least = i;

		if (l < h->len && h->jobs[l].due_ms < h->jobs[least].due_ms)
			least = l;
		if (r < h->len && h->jobs[r].due_ms < h->jobs[least].due_ms)
			least = r;
		if (least == i)
			break;
		swap(&h->jobs[i], &h->jobs[least]);
		i = least;
	}
	return 0;
}
