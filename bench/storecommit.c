/*
 * storecommit: what one synced create commit of the real store costs,
 * by the number of orders it carries and the orders already stored.
 *
 * order-api answers a 201 once the order's journal record is flushed;
 * behind the answers its committer's apply thread puts every journaled
 * order waiting into one fully synced transaction (store_apply,
 * common/store_state.c). This program measures such a commit with
 * nothing else around, through store_create, which writes the same
 * records, indexes and counters: it opens a store in DIR, fills it with
 * PREFILL orders without syncing (users 1..997 at random, as
 * bench/post.lua sends them), then for SECONDS commits K orders at a time
 * with the full sync, for each K given, and prints per K the commits per
 * second, the mean and p99 commit time and the orders per second one
 * apply thread reaches.
 *
 * usage: storecommit DIR PREFILL SECONDS K...
 * DIR must exist and be empty. Example: storecommit /var/tmp/x 100000 3 1 8 22 64
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"
#include "store.h"
#include "timing.h"

#define MAX_K 4096
#define MAX_SAMPLES 100000
#define USERS 997

static struct order orders[MAX_K];
static struct order *ptrs[MAX_K];
static uint64_t items[MAX_K][2];

/* Commit k new orders in one synced transaction. */
static void
create(struct store *s, size_t k)
{
	int rc;

	for (size_t i = 0; i < k; i++) {
		struct order *o = &orders[i];

		o->user_id = 1 + (uint64_t)(random() % USERS);
		o->total_cents = 25075;
		items[i][0] = 100 + (uint64_t)(random() % 900);
		items[i][1] = 101 + (uint64_t)(random() % 37);
		o->items = items[i];
		o->n_items = 2;
		o->idem_key = NULL;
		ptrs[i] = o;
	}
	rc = store_create(s, ptrs, k, (int64_t)time(NULL) * 1000);
	if (rc != 0) {
		fprintf(stderr, "storecommit: store_create: %s\n",
		    store_strerror(rc));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	struct store *s;
	double *took, seconds;
	long prefill;
	int rc;

	if (argc < 5 || (prefill = atol(argv[2])) < 0 ||
	    (seconds = atof(argv[3])) <= 0) {
		fprintf(stderr, "usage: storecommit DIR PREFILL SECONDS K...\n");
		return 2;
	}
	took = calloc(MAX_SAMPLES, sizeof(*took));
	if (took == NULL) {
		fprintf(stderr, "storecommit: out of memory\n");
		return 1;
	}
	srandom(1);
	if ((rc = store_open(&s, argv[1], (uint64_t)4 << 30,
	    STORE_NOSYNC)) != 0) {
		fprintf(stderr, "storecommit: %s: %s\n", argv[1],
		    store_strerror(rc));
		return 1;
	}
	for (long n = 0; n < prefill; n += 1000)
		create(s, (size_t)(prefill - n < 1000 ? prefill - n : 1000));
	store_close(s);
	/* Open again with full sync: the fill reaches the disk first. */
	if ((rc = store_open(&s, argv[1], (uint64_t)4 << 30, 0)) != 0) {
		fprintf(stderr, "storecommit: %s: %s\n", argv[1],
		    store_strerror(rc));
		return 1;
	}
	printf("storecommit: %ld orders stored before, a commit of K "
	    "orders with full sync:\n", prefill);
	for (int a = 4; a < argc; a++) {
		size_t k = (size_t)atol(argv[a]), n = 0;
		double start = now_ms(), end = start + seconds * 1e3, t = start;

		if (k < 1 || k > MAX_K) {
			fprintf(stderr, "storecommit: K must be 1..%d\n", MAX_K);
			return 2;
		}
		while (t < end && n < MAX_SAMPLES) {
			double t1;

			create(s, k);
			t1 = now_ms();
			took[n++] = t1 - t;
			t = t1;
		}
		qsort(took, n, sizeof(*took), cmp_double);
		printf("  K=%-4zu %7.1f commits/s  mean %.3f ms  p99 %.3f ms  "
		    "%8.0f orders/s\n", k, (double)n / ((t - start) / 1e3),
		    (t - start) / (double)n, took[n * 99 / 100],
		    (double)(n * k) / ((t - start) / 1e3));
	}
	store_close(s);
	free(took);
	return 0;
}
