/*
 * op-recover: what order-api does to a data directory when it starts,
 * before it serves: apply to LMDB every order of the write-ahead journal
 * past the store's journal_lsn (orderlog_recover, the daemon's own code).
 *
 *   op-recover DIR
 *
 * It opens the store in DIR as order-api does (store_open; the map size
 * is order-api's default, which LMDB raises to what the data file already
 * holds), then, if DIR/journal exists, recovers it at its own size (so
 * the file is never made anew) and prints how many orders it applied. No
 * journal: nothing to apply, and DIR is left untouched. The power-loss
 * test runs it on each directory a power cut could have left, before
 * order-ctl check: an order answered 201 may be only in the journal until then.
 *
 * Exit status: 0 applied (or nothing to apply), 1 an error (printed),
 * 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "journal.h"
#include "orderlog.h"
#include "store.h"

/* order-api's default --map-size (common/config.c). */
#define MAP_SIZE ((uint64_t)4 << 30)

static void
usage(FILE *f)
{
	fputs("usage: op-recover DIR\nApplies to the LMDB store in DIR every "
	    "order of DIR/journal past the store's\njournal position, as "
	    "order-api does when it starts.\n", f);
}

int
main(int argc, char **argv)
{
	char path[4096];
	struct store *s;
	struct journal *j = NULL;
	struct stat st;
	uint64_t replayed = 0;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return 2;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/journal", argv[1]) >=
	    sizeof(path)) {
		fprintf(stderr, "op-recover: the directory's name is too long: "
		    "%s\n", argv[1]);
		return 1;
	}
	if (stat(path, &st) != 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "op-recover: could not stat %s: %s\n",
			    path, strerror(errno));
			return 1;
		}
		printf("op-recover: no journal in %s: nothing to apply\n",
		    argv[1]);
		return 0;
	}
	if ((rc = store_open(&s, argv[1], MAP_SIZE, 0)) != 0) {
		fprintf(stderr, "op-recover: could not open the LMDB "
		    "environment in %s: %s\n", argv[1], store_strerror(rc));
		return 1;
	}
	rc = orderlog_recover(s, path, (uint64_t)st.st_size, &j, &replayed);
	journal_close(j);
	store_close(s);
	if (rc != 0) {
		fprintf(stderr, "op-recover: could not recover the journal %s "
		    "(%" PRIu64 " bytes): %s\n", path, (uint64_t)st.st_size,
		    store_strerror(rc));
		return 1;
	}
	printf("op-recover: applied %" PRIu64 " orders from %s\n", replayed,
	    path);
	return 0;
}
