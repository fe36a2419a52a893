/*
 * op-check: order-ctl's checker (ctl/check.c) as a test tool of its own,
 * until order-ctl carries it as `order-ctl check`.
 *
 *   op-check DATA_DIR [--expect-total N] [--expect-completed-ids FILE]
 *            [--expect-ids FILE]
 *
 * Exit status: 0 consistent, 1 a discrepancy or an unreadable
 * environment, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void
usage(FILE *f)
{
	fputs("usage: op-check DATA_DIR [--expect-total N] "
	    "[--expect-completed-ids FILE]\n"
	    "                [--expect-ids FILE]\n", f);
}

int
main(int argc, char **argv)
{
	struct check_request req = { 0 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expect-total") == 0 && i + 1 < argc) {
			char *end;

			errno = 0;
			req.total = strtoull(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || argv[i][0] < '0' ||
			    argv[i][0] > '9') {
				fprintf(stderr, "op-check: --expect-total: not "
				    "a number: %s\n", argv[i]);
				return 2;
			}
			req.expect_total = true;
		} else if (strcmp(argv[i], "--expect-completed-ids") == 0 &&
		    i + 1 < argc) {
			req.expect_completed_ids = argv[++i];
		} else if (strcmp(argv[i], "--expect-ids") == 0 &&
		    i + 1 < argc) {
			req.expect_ids = argv[++i];
		} else if (argv[i][0] == '-' || req.data_dir != NULL) {
			usage(stderr);
			return 2;
		} else {
			req.data_dir = argv[i];
		}
	}
	if (req.data_dir == NULL) {
		usage(stderr);
		return 2;
	}
	return check_run(&req, stdout);
}
