/*
 * synccommit: how many durable LMDB commits a second the disk under a
 * directory allows, used by bench/run.py as the second reference next to
 * the HTTP ceiling.
 *
 * A 201 of order-api follows one flush of its journal record; the synced
 * LMDB commits of the journaled orders happen behind the answers, many
 * orders to a commit (bench/storecommit.c measures those). With LMDB's
 * default (full) sync each commit waits for two flushes in turn: the data
 * pages, then the meta page that points at them, so a client that waited
 * for such a commit could not create more than one order per commit time,
 * however fast the CPU. This program does what one commit of one small
 * order does to the disk, with nothing else around it: one put of a
 * 64-byte value at a rising key, commit, repeat.
 *
 * usage: synccommit DIR SECONDS
 * DIR must exist and be empty (the environment is created in it). Prints
 * "synccommit: N commits in S s: R commits/s, p50 X ms, p99 Y ms".
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>

#include "timing.h"

#define MAX_SAMPLES 1000000

static void
check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "synccommit: %s: %s\n", what, mdb_strerror(rc));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	unsigned char value[64];
	double *took, start, end;
	size_t n = 0;
	int seconds;

	if (argc != 3 || (seconds = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: synccommit DIR SECONDS\n");
		return 2;
	}
	took = calloc(MAX_SAMPLES, sizeof(*took));
	if (took == NULL) {
		fprintf(stderr, "synccommit: out of memory\n");
		return 1;
	}
	memset(value, 0x5a, sizeof(value));
	check(mdb_env_create(&env), "mdb_env_create");
	check(mdb_env_set_mapsize(env, (size_t)1 << 30), "mdb_env_set_mapsize");
	check(mdb_env_open(env, argv[1], 0, 0600), argv[1]);
	check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
	check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
	check(mdb_txn_commit(txn), "mdb_txn_commit");

	start = now_ms();
	end = start + seconds * 1e3;
	for (double t = start; t < end && n < MAX_SAMPLES; n++) {
		uint64_t key = __builtin_bswap64(n);	/* big-endian: sorted */
		MDB_val k = { sizeof(key), &key }, v = { sizeof(value), value };
		double t1;

		check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
		check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "mdb_put");
		check(mdb_txn_commit(txn), "mdb_txn_commit");
		t1 = now_ms();
		took[n] = t1 - t;
		t = t1;
	}
	end = now_ms();
	mdb_env_close(env);
	if (n == 0) {
		fprintf(stderr, "synccommit: no commit finished\n");
		return 1;
	}
	qsort(took, n, sizeof(*took), cmp_double);
	printf("synccommit: %zu commits in %.2f s: %.1f commits/s, p50 %.3f ms, "
	    "p99 %.3f ms\n", n, (end - start) / 1e3,
	    (double)n / ((end - start) / 1e3), took[n / 2], took[n * 99 / 100]);
	free(took);
	return 0;
}
