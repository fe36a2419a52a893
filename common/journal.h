/*
 * journal: a write-ahead journal of fixed size, written in a circle: each
 * append is one record written with one pwrite and made durable with one
 * fdatasync, a single run of pages however many orders it carries (a
 * synced LMDB commit writes its pages scattered, each a request of its
 * own to the device).
 *
 * Positions are lsns: byte offsets in an endless stream, the file holding
 * the stream modulo its size. A record never runs past the end of the
 * file; one that would not fit is written at the start of the next lap,
 * after a wrap mark (or none, when not even a header fits).
 *
 * Record: a header of JOURNAL_HEADER bytes, then the payload, padded with
 * zeros to a multiple of 8:
 *     magic u32 "OPJ1" (or "OPJW": the lap ends here)
 *     crc   u32 CRC-32C of everything after it, header and padded payload
 *     lsn   u64 the record's own lsn
 *     len   u32 the payload's length
 *     zero  u32
 * all little-endian. A record is valid when its magic, its lsn (the one
 * the reader expects there) and its CRC agree: bytes of an earlier lap,
 * the zeros of a new file and a torn write all fail one of the three, so
 * reading stops at the first record that was never completely written.
 *
 * The caller says how far the records were applied elsewhere
 * (journal_applied); an append that would overwrite a record not yet
 * applied fails with EAGAIN and writes nothing (an ENOSPC is the disk's,
 * from a write).
 *
 * Errors: 0 or an errno value. After a failed write or flush the file's
 * content is unknown (the kernel may have dropped the pages): the journal
 * refuses every later append (EIO) and the caller must stop and recover
 * from the file when it starts again.
 */
#ifndef OP_JOURNAL_H
#define OP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_HEADER 24
/* The smallest journal that makes sense: a few pages. */
#define JOURNAL_MIN_SIZE (64 * 1024)

struct journal;

/*
 * A valid record found by journal_open from the lsn it was given:
 * nonzero stops the replay, and journal_open returns that value.
 */
typedef int (*journal_replay_fn)(void *arg, uint64_t lsn, uint64_t end_lsn,
    const void *payload, size_t len);

/*
 * Open the journal file at path, creating it (written with zeros to size
 * bytes, then flushed with its directory) if it does not exist; size must
 * be a multiple of 4096 and at least JOURNAL_MIN_SIZE, and an existing
 * file must have that size (EINVAL otherwise). Then hand replay every
 * valid record from applied_lsn on, in order; appends go after the last.
 * The file is locked (flock) while it is open: EBUSY if another process
 * has it open (after a second's wait, which a journal_locked() of another
 * process, holding a shared lock for a moment, never makes it return).
 */
int journal_open(struct journal **jp, const char *path, uint64_t size,
    uint64_t applied_lsn, journal_replay_fn replay, void *arg);
/*
 * Append one record of len bytes and flush it: durable once this returns
 * 0. *lsn is the record's lsn, *end_lsn the lsn just after it.
 */
int journal_append(struct journal *j, const void *payload, size_t len,
    uint64_t *lsn, uint64_t *end_lsn);
/*
 * Every record before lsn is applied: its room may be written again. May
 * be called from another thread than journal_append's.
 */
void journal_applied(struct journal *j, uint64_t lsn);
/* The lsn the next append would start from (after any wrap). */
uint64_t journal_end(const struct journal *j);
/* The journal's size in bytes. */
uint64_t journal_size(const struct journal *j);
/* The most payload one record can carry in this journal. */
size_t journal_max_payload(const struct journal *j);
void journal_close(struct journal *j);

/*
 * Read the journal at path as journal_open would replay it, without
 * opening it for appends: read only, no lock taken, nothing created, the
 * file's own size. A record being written meanwhile ends the reading as
 * a torn one would. ENOENT if there is no journal.
 */
int journal_read(const char *path, uint64_t applied_lsn,
    journal_replay_fn replay, void *arg);
/*
 * Does a process hold the journal at path open (journal_open's lock)?
 * Tried with a shared lock, released at once. ENOENT if there is none.
 */
int journal_locked(const char *path, bool *locked);

/* CRC-32C (Castagnoli), as the records use it; crc 0 to start. */
uint32_t journal_crc32c(uint32_t crc, const void *data, size_t len);

#endif
