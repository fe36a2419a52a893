/*
 * queue: the POSIX message queue that rings the worker's doorbell.
 *
 * The wire format: a message is n order ids, each a little-endian u64, so
 * its length is a multiple of 8 and at most mq_msgsize; a receiver rejects
 * any other length. The queue is only a doorbell: LMDB holds the truth, so
 * a lost, duplicate or unknown id is harmless.
 *
 * The queue is opened non-blocking (a full queue is EAGAIN, never a
 * wait), created if missing with mode 0660 (less the umask) and
 * QUEUE_MAXMSG_WANT messages, or as many as the system allows, and its
 * real attributes are read back. A queue that already exists is used only
 * if no one outside our user and group can reach it: its owner is our
 * effective uid or root (only they can change its mode later), "other"
 * has no permission bit, and group bits only for our effective gid.
 * Another queue is refused with QUEUE_EEXPOSED (it is never removed: that
 * is the operator's call). A struct queue belongs to one thread; open it
 * after any fork. Functions return 0 or an errno value or QUEUE_EEXPOSED,
 * for queue_strerror.
 */
#ifndef OP_QUEUE_H
#define OP_QUEUE_H

#include <mqueue.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QUEUE_MAXMSG_WANT 256	/* as deep as systemd/sysctl.conf allows */
#define QUEUE_MAXMSG 10		/* Linux's default fs.mqueue.msg_max */
#define QUEUE_MSGSIZE 8192	/* Linux's default fs.mqueue.msgsize_max */
#define QUEUE_NAME_MAX 255
/* An existing queue that users outside ours could read or write. */
#define QUEUE_EEXPOSED (-32001)

struct queue {
	mqd_t mqd;		/* (mqd_t)-1 while closed */
	char name[QUEUE_NAME_MAX + 1];
	long maxmsg;
	long msgsize;
	ino_t ino;		/* which queue object the name pointed at */
	/* The last queue refused with QUEUE_EEXPOSED, for queue_strerror. */
	mode_t refused_mode;
	uid_t refused_uid;
	gid_t refused_gid;
	char errbuf[QUEUE_NAME_MAX + 256];
};

/* A name is "/" then 1-254 characters, none of them "/". */
bool queue_name_valid(const char *name);
void queue_init(struct queue *q, const char *name);
int queue_open(struct queue *q);
/*
 * What err means, for a log line; for QUEUE_EEXPOSED the refused queue's
 * mode and owner and how to remove it (the text lives in q).
 */
const char *queue_strerror(struct queue *q, int err);
void queue_close(struct queue *q);
bool queue_is_open(const struct queue *q);
/* The descriptor to poll for POLLIN; -1 while closed. */
int queue_fd(const struct queue *q);
size_t queue_ids_per_message(const struct queue *q);
/*
 * Send ids in as few messages as fit; stops at the first failure (EAGAIN
 * when full) and says how many ids went out in *sent.
 */
int queue_send_ids(struct queue *q, const uint64_t *ids, size_t n,
    size_t *sent);
/*
 * Receive one message into ids (cap >= queue_ids_per_message). EAGAIN
 * when empty; EBADMSG for a length that is not a multiple of 8.
 */
int queue_receive_ids(struct queue *q, uint64_t *ids, size_t cap,
    size_t *n);
/*
 * Reopen when the name now names another queue (removed and created
 * again) or none; *reopened says whether it did.
 */
int queue_refresh(struct queue *q, bool *reopened);

#endif
