/*
 * powertrace.h: the trace of writes and flushes that the power-loss test
 * records (powertrace.c, an LD_PRELOAD library, in every daemon process;
 * the test itself for its acknowledgements) and reads back (power-cut.c).
 *
 * A trace is a file of records, each appended with one write(2) or
 * writev(2) on a descriptor opened O_APPEND, so that the records of all the
 * processes land whole and in one total order: the order in which their
 * calls reached the kernel. A record is a header, then name_len bytes of
 * name (no NUL), then len bytes of data (PT_WRITE only). Numbers are in the
 * host's byte order: the trace never leaves the machine that wrote it.
 *
 * If you change the layout, change PT_MAGIC, and the struct format in
 * tests/integration/test_power_loss.py that writes PT_ACK and PT_MARK.
 */
#ifndef POWERTRACE_H
#define POWERTRACE_H

#include <stdint.h>

#define PT_MAGIC 0x31547750u	/* "PwT1" */

enum pt_type {
	/* A write to a traced file is about to start. */
	PT_WRITE_BEGIN = 'b',
	/* A write returned: off is where it wrote, len how many bytes it
	 * wrote, and the data is those bytes. */
	PT_WRITE = 'W',
	/* An fsync or fdatasync of the file is about to start. */
	PT_FLUSH_BEGIN = 'S',
	/* It returned (PT_F_FAILED: with an error). */
	PT_FLUSH_END = 'E',
	/* ftruncate, or an open with O_TRUNC, returned: off is the new
	 * length. */
	PT_TRUNCATE = 'T',
	/* A shared writable mapping of the file was made at offset off:
	 * what is written through it never shows in the trace. */
	PT_MAP = 'M',
	/* The test got a success answer: off is an order id; the name, if
	 * any, is the status the order has from then on (e.g. Cancelled). */
	PT_ACK = 'A',
	/* A label the test put in the trace (name). */
	PT_MARK = 'K',
};

enum pt_flags {
	/* PT_WRITE: durable when it returned (an O_DSYNC or O_SYNC
	 * descriptor, or RWF_DSYNC); PT_FLUSH_BEGIN: fsync, not
	 * fdatasync. */
	PT_F_SYNC = 1,
	/* PT_WRITE, PT_FLUSH_END: the call failed (len 0). */
	PT_F_FAILED = 2,
};

/*
 * The header: 32 bytes, no padding. pid and tid name the caller; a
 * PT_FLUSH_END and its PT_FLUSH_BEGIN, or a PT_WRITE and its
 * PT_WRITE_BEGIN, are the nearest records of one tid for one name.
 */
struct pt_rec {
	uint32_t magic;
	uint8_t type;		/* enum pt_type */
	uint8_t flags;		/* enum pt_flags */
	uint16_t name_len;	/* the file's name (its last component) */
	uint32_t pid;
	uint32_t tid;
	uint64_t off;
	uint64_t len;		/* bytes of data after the name */
};

#endif
