/*
 * writer-hold: a test-only holder of an LMDB environment's writer lock.
 *
 *   writer-hold DATA_DIR
 *
 * Begins a write transaction on the environment in DATA_DIR (which must
 * exist), prints "held" on stdout, waits until stdin reaches end of file,
 * then aborts the transaction: nothing is written. Meanwhile every other
 * writer (order-api's committer, order-worker's children) waits for the
 * lock, as behind a writer process that is stopped or hung; readers go on.
 * It links LMDB directly, never the store (common/store*.c), like
 * order-ctl check.
 *
 * Exit status: 0 after the release, 1 if the environment cannot be opened
 * or the transaction begun, 2 usage.
 */
#include <lmdb.h>
#include <stdio.h>
#include <unistd.h>

#define MAX_READERS 1024

int
main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *txn;
	char buf[64];
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: writer-hold DATA_DIR\n");
		return 2;
	}
	if ((rc = mdb_env_create(&env)) != 0) {
		fprintf(stderr, "writer-hold: could not create an LMDB "
		    "environment: %s\n", mdb_strerror(rc));
		return 1;
	}
	if ((rc = mdb_env_set_maxreaders(env, MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, 0)) != 0 ||
	    (rc = mdb_env_open(env, argv[1], 0, 0660)) != 0) {
		fprintf(stderr, "writer-hold: could not open the LMDB "
		    "environment in %s: %s\n", argv[1], mdb_strerror(rc));
		mdb_env_close(env);
		return 1;
	}
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
		fprintf(stderr, "writer-hold: could not begin a write "
		    "transaction in %s: %s\n", argv[1], mdb_strerror(rc));
		mdb_env_close(env);
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return 0;
}
