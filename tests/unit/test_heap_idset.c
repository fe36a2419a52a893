/* heap and idset: the worker's timers and its set of held ids. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "heap.h"
#include "idset.h"
#include "test.h"

/* xorshift64*: deterministic, so a failure can be replayed. */
static uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * UINT64_C(2685821657736338717);
}

TEST(test_heap_order)
{
	enum { N = 10000 };
	static bool seen[N];
	struct heap h;
	struct job j, last = { .due_ms = INT64_MIN };
	const struct job *top;

	heap_init(&h);
	test_assert(heap_top(&h) == NULL && heap_pop(&h, &j) == -1);
	for (uint64_t i = 0; i < N; i++) {
		/* Random deadlines, many of them equal. */
		struct job in = { .due_ms = 1700000000000 +
			(int64_t)(rnd() % 5000) - 2500, .id = i,
			.attempt = (uint32_t)i * 3,
			.phase = i % 2 ? JOB_COMPLETE : JOB_CLAIM };

		test_assert(heap_push(&h, &in) == 0);
		test_assert(heap_top(&h)->due_ms <= in.due_ms);
	}
	test_assert(h.len == N);
	for (size_t k = 0; k < N; k++) {
		top = heap_top(&h);
		test_assert(top != NULL);
		int64_t top_due = top->due_ms;
		test_assert(heap_pop(&h, &j) == 0);
		test_assert(j.due_ms == top_due);
		test_assert_msg(j.due_ms >= last.due_ms, "pop %zu: %lld after "
		    "%lld", k, (long long)j.due_ms, (long long)last.due_ms);
		test_assert(j.id < N && !seen[j.id]);
		test_assert(j.attempt == (uint32_t)j.id * 3);
		test_assert(j.phase == (j.id % 2 ? JOB_COMPLETE : JOB_CLAIM));
		seen[j.id] = true;
		last = j;
	}
	test_assert(h.len == 0 && heap_top(&h) == NULL &&
	    heap_pop(&h, &j) == -1);
	for (size_t i = 0; i < N; i++)
		test_assert(seen[i]);
	heap_finish(&h);
	test_assert(h.jobs == NULL && h.len == 0);
}

TEST(test_heap_interleaved)
{
	/* Pushes and pops mixed, as the worker does; check against a
	 * brute-force minimum. */
	enum { N = 3000 };
	static int64_t live[N];
	size_t nlive = 0;
	struct heap h;
	struct job j;

	heap_init(&h);
	for (int round = 0; round < 20000; round++) {
		if (nlive < N && (nlive == 0 || rnd() % 3 != 0)) {
			struct job in = { .due_ms = (int64_t)(rnd() % 100000) -
				50000, .id = (uint64_t)round };

			test_assert(heap_push(&h, &in) == 0);
			live[nlive++] = in.due_ms;
		} else {
			size_t min = 0;

			for (size_t i = 1; i < nlive; i++)
				if (live[i] < live[min])
					min = i;
			test_assert(heap_pop(&h, &j) == 0);
			test_assert_msg(j.due_ms == live[min], "round %d: %lld, "
			    "want %lld", round, (long long)j.due_ms,
			    (long long)live[min]);
			live[min] = live[--nlive];
		}
		test_assert(h.len == nlive);
	}
	heap_finish(&h);
}

TEST(test_idset)
{
	enum { N = 100000 };
	struct idset s;

	idset_init(&s);
	test_assert(!idset_contains(&s, 1));
	idset_remove(&s, 1);	/* on an empty set: harmless */
	test_assert(s.len == 0);
	for (uint64_t id = 1; id <= N; id++)
		test_assert(idset_add(&s, id) == 1);
	test_assert(s.len == N);
	test_assert((s.cap & (s.cap - 1)) == 0 && s.cap >= 2 * (size_t)N);
	for (uint64_t id = 1; id <= N; id++) {
		test_assert(idset_contains(&s, id));
		test_assert(idset_add(&s, id) == 0);	/* duplicate */
	}
	test_assert(s.len == N);
	test_assert(!idset_contains(&s, N + 1));
	test_assert(!idset_contains(&s, UINT64_MAX));

	/* Remove every third: the rest must stay reachable, which needs the
	 * backward shift to keep probe chains whole. */
	for (uint64_t id = 3; id <= N; id += 3)
		idset_remove(&s, id);
	test_assert(s.len == N - N / 3);
	for (uint64_t id = 1; id <= N; id++)
		test_assert_msg(idset_contains(&s, id) == (id % 3 != 0),
		    "id %llu", (unsigned long long)id);
	/* Removing an absent id changes nothing. */
	idset_remove(&s, 3);
	idset_remove(&s, N + 7);
	test_assert(s.len == N - N / 3);
	/* Add the removed ones back, then remove all in another order. */
	for (uint64_t id = 3; id <= N; id += 3)
		test_assert(idset_add(&s, id) == 1);
	test_assert(s.len == N);
	for (uint64_t id = N; id >= 1; id -= 2)
		idset_remove(&s, id);
	for (uint64_t id = 1; id <= N; id++)
		test_assert_msg(idset_contains(&s, id) == (id % 2 == 1),
		    "id %llu", (unsigned long long)id);
	for (uint64_t id = 1; id <= N; id += 2)
		idset_remove(&s, id);
	test_assert(s.len == 0);
	for (size_t i = 0; i < s.cap; i++)
		test_assert(s.slots[i] == 0);
	idset_finish(&s);
	test_assert(s.slots == NULL && s.cap == 0 && s.len == 0);
}

/* Ids that all hash near one slot make long probe chains that wrap
 * around the table's end: the hard cases of backward-shift deletion. */
TEST(test_idset_collisions)
{
	enum { M = 400 };
	static uint64_t ids[M];
	struct idset s;
	size_t cap;

	idset_init(&s);
	test_assert(idset_add(&s, 1) == 1);
	cap = s.cap;
	idset_remove(&s, 1);
	/* Find ids whose home is one of the table's last 4 slots, so their
	 * chain wraps to the start. */
	size_t m = 0;
	for (uint64_t id = 1; m < M && id < UINT64_C(100000000); id++) {
		size_t home = (size_t)((id * UINT64_C(11400714819323198485))
		    >> 20) & (cap - 1);

		if (home >= cap - 4)
			ids[m++] = id;
	}
	test_assert(m == M && M * 2 <= cap);
	for (size_t i = 0; i < M; i++)
		test_assert(idset_add(&s, ids[i]) == 1);
	test_assert(s.cap == cap);
	/* Remove in a scattered order and check all the rest each time. */
	static bool gone[M];
	for (size_t k = 0; k < M; k++) {
		size_t i = (k * 7919) % M;

		test_assert(!gone[i]);
		idset_remove(&s, ids[i]);
		gone[i] = true;
		if (k % 17 == 0 || k > M - 20)
			for (size_t t = 0; t < M; t++)
				test_assert_msg(idset_contains(&s, ids[t]) ==
				    !gone[t], "after %zu removals: id %llu",
				    k + 1, (unsigned long long)ids[t]);
	}
	test_assert(s.len == 0);
	idset_finish(&s);
}

TEST(test_idset_random)
{
	/* Random adds and removes against a plain model. */
	enum { RANGE = 5000 };
	static bool in[RANGE + 1];
	size_t n = 0;
	struct idset s;

	idset_init(&s);
	for (int round = 0; round < 200000; round++) {
		uint64_t id = 1 + rnd() % RANGE;

		if (rnd() % 2) {
			test_assert(idset_add(&s, id) == (in[id] ? 0 : 1));
			n += !in[id];
			in[id] = true;
		} else {
			idset_remove(&s, id);
			n -= in[id];
			in[id] = false;
		}
		test_assert(s.len == n);
		if (round % 20000 == 0)
			for (uint64_t t = 1; t <= RANGE; t++)
				test_assert(idset_contains(&s, t) == in[t]);
	}
	for (uint64_t t = 1; t <= RANGE; t++)
		test_assert(idset_contains(&s, t) == in[t]);
	idset_finish(&s);
}

int
main(void)
{
	RUN(test_heap_order);
	RUN(test_heap_interleaved);
	RUN(test_idset);
	RUN(test_idset_collisions);
	RUN(test_idset_random);
	return 0;
}
