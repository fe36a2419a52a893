/*
 * check.h: order-ctl's consistency checker (`order-ctl check`).
 *
 * check_run() opens a data directory's LMDB environment read-only, reads
 * it in one read transaction (so the daemons may be running) and checks
 * every invariant of the data: each order record, the counters and the
 * histogram against a recount, every index entry against its order, the
 * ids, the Idempotency-Keys. It reads LMDB apart from the store's code,
 * on purpose: check.c restates the format, so that a bug in the store is
 * not shared by its checker. The list of checks is at the top of check.c.
 *
 * It writes one line per discrepancy to out ("check: ..."), then a
 * summary line ending in ": consistent" or ": N discrepancies"; a file of
 * ids it cannot read is named on stderr. One check at a time: it keeps
 * its count in static storage.
 */
#ifndef ORDER_CTL_CHECK_H
#define ORDER_CTL_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* check_run()'s results, which are also order-ctl's exit status. */
enum {
	CHECK_OK = 0,		/* consistent, every expectation met */
	CHECK_FAILED = 1,	/* a discrepancy, or the environment unreadable */
	CHECK_USAGE = 2,	/* an expectation file unreadable or malformed */
};

struct check_request {
	const char *data_dir;
	/* With expect_total, there must be exactly total orders. */
	bool expect_total;
	uint64_t total;
	/* A file of order ids, one a line (ORD<n> or <n>), each of which
	 * must exist and be Completed; NULL for none. */
	const char *expect_completed_ids;
	/* A file of order ids, one a line, each of which must exist; a
	 * status name may follow the id ("ORD7 Cancelled"), which it must
	 * then have; NULL for none. */
	const char *expect_ids;
};

int check_run(const struct check_request *req, FILE *out);

#endif
