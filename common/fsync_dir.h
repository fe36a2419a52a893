/*
 * fsync_dir.h: make a file's new name durable.
 *
 * A file created or renamed into place is durable only once its
 * directory is flushed too: the journal's creation and order-ctl's backup
 * both end so. Plain libc; no state, any thread.
 */
#ifndef ORDER_FSYNC_DIR_H
#define ORDER_FSYNC_DIR_H

/*
 * fsync the directory that holds path ("." for a bare name, "/" for a
 * file at the root). 0, ENAMETOOLONG, or the errno of open or fsync.
 */
int fsync_dir_of(const char *path);

#endif
