#include "queue.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_MODE 0660

bool
queue_name_valid(const char *name)
{
	size_t len = strlen(name);

	return len >= 2 && len <= QUEUE_NAME_MAX && name[0] == '/' &&
	    strchr(name + 1, '/') == NULL;
}

void
queue_init(struct queue *q, const char *name)
{
	memset(q, 0, sizeof(*q));
	q->mqd = (mqd_t)-1;
	strncpy(q->name, name, sizeof(q->name) - 1);
}

bool
queue_is_open(const struct queue *q)
{
	return q->mqd != (mqd_t)-1;
}

int
queue_fd(const struct queue *q)
{
	return (int)q->mqd;
}

size_t
queue_ids_per_message(const struct queue *q)
{
	return (size_t)q->msgsize / 8;
}

/*
 * Whether anyone outside our user and group can reach the queue, now or
 * later: its owner (any uid but ours or root's) may chmod it at will.
 */
static bool
queue_exposed(const struct stat *st)
{
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return true;
	if ((st->st_mode & S_IRWXO) != 0)
		return true;
	return (st->st_mode & S_IRWXG) != 0 && st->st_gid != getegid();
}

const char *
queue_strerror(struct queue *q, int err)
{
	if (err != QUEUE_EEXPOSED)
		return strerror(err);
	snprintf(q->errbuf, sizeof(q->errbuf), "it exists with mode %04o, "
	    "owner uid %lu, group gid %lu (we are uid %lu, gid %lu), so other "
	    "users could read it or send ids; remove it (rm /dev/mqueue%s) "
	    "and the daemons make a private one",
	    (unsigned)(q->refused_mode & 07777), (unsigned long)q->refused_uid,
	    (unsigned long)q->refused_gid, (unsigned long)geteuid(),
	    (unsigned long)getegid(), q->name);
	return q->errbuf;
}

int
queue_open(struct queue *q)
{
	static const long maxmsgs[] = { QUEUE_MAXMSG_WANT, QUEUE_MAXMSG };
	int oflag = O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC;
	struct mq_attr attr;
	struct stat st;
	mqd_t mqd = (mqd_t)-1;

	queue_close(q);
	/*
	 * Ask for a deep queue, then for Linux's default depth: fs.mqueue
	 * .msg_max (EINVAL) or RLIMIT_MSGQUEUE (EMFILE, ENOMEM) may refuse
	 * the first. An existing queue keeps its attributes.
	 */
	for (size_t i = 0; i < 2 && mqd == (mqd_t)-1; i++) {
		attr = (struct mq_attr){ .mq_maxmsg = maxmsgs[i],
			.mq_msgsize = QUEUE_MSGSIZE };
		mqd = mq_open(q->name, oflag, QUEUE_MODE, &attr);
		if (mqd == (mqd_t)-1 && errno != EINVAL && errno != EMFILE &&
		    errno != ENOMEM)
			return errno;
	}
	if (mqd == (mqd_t)-1 && errno == EINVAL)
		/* Limits lower than Linux's defaults: take the system's. */
		mqd = mq_open(q->name, oflag, QUEUE_MODE, NULL);
	if (mqd == (mqd_t)-1)
		return errno;
	if (mq_getattr(mqd, &attr) != 0 || fstat((int)mqd, &st) != 0) {
		int err = errno;

		mq_close(mqd);
		return err;
	}
	if (queue_exposed(&st)) {
		mq_close(mqd);
		q->refused_mode = st.st_mode;
		q->refused_uid = st.st_uid;
		q->refused_gid = st.st_gid;
		return QUEUE_EEXPOSED;
	}
	if (attr.mq_msgsize < 8) {
		mq_close(mqd);
		return EMSGSIZE;
	}
	q->mqd = mqd;
	q->maxmsg = attr.mq_maxmsg;
	q->msgsize = attr.mq_msgsize;
	q->ino = st.st_ino;
	return 0;
}

void
queue_close(struct queue *q)
{
	if (q->mqd != (mqd_t)-1)
		mq_close(q->mqd);
	q->mqd = (mqd_t)-1;
}

int
queue_send_ids(struct queue *q, const uint64_t *ids, size_t n, size_t *sent)
{
	uint64_t msg[QUEUE_MSGSIZE / 8];
	size_t per = queue_ids_per_message(q);

	*sent = 0;
	if (!queue_is_open(q))
		return EBADF;
	if (per > sizeof(msg) / sizeof(msg[0]))
		per = sizeof(msg) / sizeof(msg[0]);
	while (*sent < n) {
		size_t k = n - *sent < per ? n - *sent : per;

		for (size_t i = 0; i < k; i++)
			msg[i] = htole64(ids[*sent + i]);
		if (mq_send(q->mqd, (const char *)msg, k * 8, 0) != 0)
			return errno;
		*sent += k;
	}
	return 0;
}

int
queue_receive_ids(struct queue *q, uint64_t *ids, size_t cap, size_t *n)
{
	ssize_t len;

	*n = 0;
	if (!queue_is_open(q))
		return EBADF;
	if (cap * 8 < (size_t)q->msgsize)
		return EINVAL;
	len = mq_receive(q->mqd, (char *)ids, cap * 8, NULL);
	if (len < 0)
		return errno;
	if (len % 8 != 0)
		return EBADMSG;
	*n = (size_t)len / 8;
	for (size_t i = 0; i < *n; i++)
		ids[i] = le64toh(ids[i]);
	return 0;
}

int
queue_refresh(struct queue *q, bool *reopened)
{
	struct stat st;
	mqd_t mqd;

	*reopened = false;
	if (queue_is_open(q)) {
		mqd = mq_open(q->name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (mqd != (mqd_t)-1) {
			int same = fstat((int)mqd, &st) == 0 &&
			    st.st_ino == q->ino;

			mq_close(mqd);
			if (same)
				return 0;
		}
	}
	*reopened = true;
	return queue_open(q);
}
