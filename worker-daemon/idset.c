#include "idset.h"

#include <stdlib.h>

void
idset_init(struct idset *s)
{
	*s = (struct idset){ 0 };
}

void
idset_finish(struct idset *s)
{
	free(s->slots);
	*s = (struct idset){ 0 };
}

static size_t
slot_of(uint64_t id, size_t cap)
{
	/* Fibonacci hashing spreads sequential ids. */
	return (size_t)((id * UINT64_C(11400714819323198485)) >> 20) &
	    (cap - 1);
}

static int
grow(struct idset *s)
{
	size_t cap = s->cap != 0 ? s->cap * 2 : 1024;
	uint64_t *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < s->cap; i++) {
		uint64_t id = s->slots[i];
		size_t j;

		if (id == 0)
			continue;
		for (j = slot_of(id, cap); slots[j] != 0; j = (j + 1) & (cap - 1))
			;
		slots[j] = id;
	}
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int
idset_add(struct idset *s, uint64_t id)
{
	size_t i;

	if ((s->len + 1) * 2 > s->cap && grow(s) != 0)
		return -1;
	for (i = slot_of(id, s->cap); s->slots[i] != 0;
	    i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == id)
			return 0;
	s->slots[i] = id;
	s->len++;
	return 1;
}

bool
idset_contains(const struct idset *s, uint64_t id)
{
	if (s->cap == 0)
		return false;
	for (size_t i = slot_of(id, s->cap); s->slots[i] != 0;
	    i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == id)
			return true;
	return false;
}

void
idset_remove(struct idset *s, uint64_t id)
{
	size_t i, j, mask = s->cap - 1;

	if (s->cap == 0)
		return;
	for (i = slot_of(id, s->cap); s->slots[i] != id; i = (i + 1) & mask)
		if (s->slots[i] == 0)
			return;
	/* Backward-shift deletion keeps every probe chain unbroken. */
	s->slots[i] = 0;
	s->len--;
	for (j = (i + 1) & mask; s->slots[j] != 0; j = (j + 1) & mask) {
		size_t home = slot_of(s->slots[j], s->cap);

		/* Move slots[j] into the hole if its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			s->slots[i] = s->slots[j];
			s->slots[j] = 0;
			i = j;
		}
	}
}
