/* queue: a real POSIX message queue with a name unique to this process. */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue.h"
#include "test.h"

static char name[64];

static void
cleanup(void)
{
	mq_unlink(name);
}

TEST(test_name_valid)
{
	char buf[300];

	test_assert(queue_name_valid("/order-processing"));
	test_assert(queue_name_valid("/a"));
	test_assert(queue_name_valid("/op-unit-123"));
	test_assert(!queue_name_valid(""));
	test_assert(!queue_name_valid("/"));
	test_assert(!queue_name_valid("a"));
	test_assert(!queue_name_valid("order-processing"));
	test_assert(!queue_name_valid("//a"));
	test_assert(!queue_name_valid("/a/b"));
	test_assert(!queue_name_valid("/a/"));
	/* "/" and 1-254 characters (queue.h). */
	buf[0] = '/';
	memset(buf + 1, 'q', 253);
	buf[254] = '\0';
	test_assert(queue_name_valid(buf));	/* 253 after the slash */
	memset(buf + 1, 'q', 254);
	buf[255] = '\0';
	test_assert_msg(queue_name_valid(buf), "\"/\" and 254 characters "
	    "refused, but queue.h says 1-254 are valid");
	memset(buf + 1, 'q', 255);
	buf[256] = '\0';
	test_assert(!queue_name_valid(buf));
}

TEST(test_send_receive)
{
	static uint64_t ids[25000], got[25000];
	uint64_t msg[QUEUE_MSGSIZE / 8 + 1];
	struct queue q;
	size_t sent = 12345, n, total;
	int rc;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		ids[i] = (uint64_t)i * UINT64_C(0x100000001) + 1;
	queue_init(&q, name);
	test_assert(!queue_is_open(&q) && queue_fd(&q) == -1);
	test_assert(strcmp(q.name, name) == 0);
	test_assert(queue_send_ids(&q, ids, 1, &sent) == EBADF && sent == 0);
	test_assert(queue_receive_ids(&q, msg, 1024, &n) == EBADF);
	rc = queue_open(&q);
	test_assert_msg(rc == 0, "queue_open %s: %s", name, strerror(rc));
	test_assert(queue_is_open(&q) && queue_fd(&q) >= 0);
	test_assert(q.maxmsg == QUEUE_MAXMSG && q.msgsize == QUEUE_MSGSIZE);
	test_assert(queue_ids_per_message(&q) == 1024);

	/* Empty: EAGAIN, never a wait. */
	test_assert(queue_receive_ids(&q, msg, 1024, &n) == EAGAIN && n == 0);
	/* A buffer smaller than a message is refused. */
	test_assert(queue_receive_ids(&q, msg, 1023, &n) == EINVAL);

	/* 5000 ids: 5 messages of 1024 and one of 904. */
	rc = queue_send_ids(&q, ids, 5000, &sent);
	test_assert_msg(rc == 0 && sent == 5000, "rc %d sent %zu", rc, sent);
	struct mq_attr attr;
	test_assert(mq_getattr(q.mqd, &attr) == 0 && attr.mq_curmsgs == 5);
	/* 20000 more: only 5 messages' room is left. */
	rc = queue_send_ids(&q, ids + 5000, 20000, &sent);
	test_assert_msg(rc == EAGAIN, "rc %d", rc);
	test_assert_msg(sent < 20000 && sent % 1024 == 0 && sent == 5 * 1024,
	    "sent %zu", sent);
	test_assert(mq_getattr(q.mqd, &attr) == 0 && attr.mq_curmsgs == 10);
	/* Full: nothing goes out. */
	test_assert(queue_send_ids(&q, ids, 1, &sent) == EAGAIN && sent == 0);
	test_assert(queue_send_ids(&q, ids, 0, &sent) == 0 && sent == 0);

	/* Back in order, equal. */
	total = 0;
	for (int m = 0; m < 10; m++) {
		rc = queue_receive_ids(&q, got + total, 1024, &n);
		test_assert_msg(rc == 0, "message %d: %s", m, strerror(rc));
		test_assert_msg(n == (m == 4 ? 904 : 1024), "message %d: %zu",
		    m, n);
		total += n;
	}
	test_assert(total == 5000 + 5 * 1024);
	test_assert(memcmp(got, ids, total * 8) == 0);
	test_assert(queue_receive_ids(&q, got, 1024, &n) == EAGAIN && n == 0);

	/* A message of 12 bytes is not ids. */
	test_assert(mq_send(q.mqd, "twelve bytes", 12, 0) == 0);
	test_assert(queue_receive_ids(&q, msg, 1024, &n) == EBADMSG && n == 0);
	/* An empty message is zero ids. */
	test_assert(mq_send(q.mqd, "", 0, 0) == 0);
	test_assert(queue_receive_ids(&q, msg, 1024, &n) == 0 && n == 0);
	/* The wire format is little-endian u64. */
	unsigned char raw[16] = { 1, 2, 0, 0, 0, 0, 0, 0x80, 0xff };
	test_assert(mq_send(q.mqd, (const char *)raw, 16, 0) == 0);
	test_assert(queue_receive_ids(&q, msg, 1024, &n) == 0 && n == 2);
	test_assert(msg[0] == UINT64_C(0x8000000000000201) && msg[1] == 0xff);
	queue_close(&q);
	test_assert(!queue_is_open(&q));
	queue_close(&q);	/* twice is harmless */
}

TEST(test_wire_format)
{
	struct queue q;
	uint64_t one = UINT64_C(0x0102030405060708);
	static char buf[QUEUE_MSGSIZE];
	size_t sent;
	ssize_t len;

	queue_init(&q, name);
	test_assert(queue_open(&q) == 0);
	test_assert(queue_send_ids(&q, &one, 1, &sent) == 0 && sent == 1);
	len = mq_receive(q.mqd, buf, sizeof(buf), NULL);
	test_assert(len == 8);
	test_assert(memcmp(buf, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
	queue_close(&q);
}

TEST(test_refresh)
{
	struct queue q, other;
	uint64_t ids[3] = { 7, 8, 9 }, got[1024];
	bool reopened = true;
	size_t sent, n;

	queue_init(&q, name);
	test_assert(queue_open(&q) == 0);
	/* Same queue: nothing to do. */
	test_assert(queue_refresh(&q, &reopened) == 0 && !reopened);
	/* A second handle on the same queue sees what the first sends. */
	queue_init(&other, name);
	test_assert(queue_open(&other) == 0);
	test_assert(queue_send_ids(&other, ids, 3, &sent) == 0 && sent == 3);
	test_assert(queue_receive_ids(&q, got, 1024, &n) == 0 && n == 3 &&
	    got[2] == 9);
	queue_close(&other);

	/* Removed: the refresh makes a new one. */
	test_assert(mq_unlink(name) == 0);
	test_assert(queue_refresh(&q, &reopened) == 0 && reopened);
	test_assert(queue_is_open(&q));
	test_assert(queue_send_ids(&q, ids, 3, &sent) == 0 && sent == 3);
	/* The new queue is the one the name points at. */
	queue_init(&other, name);
	test_assert(queue_open(&other) == 0);
	test_assert(other.ino == q.ino);
	test_assert(queue_receive_ids(&other, got, 1024, &n) == 0 && n == 3 &&
	    got[0] == 7 && got[1] == 8 && got[2] == 9);
	queue_close(&other);

	/* Removed and made again by someone else: reopened onto it. */
	test_assert(mq_unlink(name) == 0);
	queue_init(&other, name);
	test_assert(queue_open(&other) == 0);
	test_assert(other.ino != q.ino);
	reopened = false;
	test_assert(queue_refresh(&q, &reopened) == 0 && reopened);
	test_assert(q.ino == other.ino);
	test_assert(queue_send_ids(&other, ids, 1, &sent) == 0 && sent == 1);
	test_assert(queue_receive_ids(&q, got, 1024, &n) == 0 && n == 1 &&
	    got[0] == 7);
	queue_close(&other);

	/* A closed queue is opened by a refresh. */
	queue_close(&q);
	reopened = false;
	test_assert(queue_refresh(&q, &reopened) == 0 && reopened &&
	    queue_is_open(&q));
	queue_close(&q);
}

TEST(test_existing_attributes)
{
	/* A queue made by someone else with smaller messages: its real
	 * attributes are read back and used. */
	struct mq_attr attr = { .mq_maxmsg = 3, .mq_msgsize = 64 };
	uint64_t ids[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got[1024];
	struct queue q;
	size_t sent, n;
	mqd_t mqd;

	mq_unlink(name);
	mqd = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
	test_assert_msg(mqd != (mqd_t)-1, "mq_open: %s", strerror(errno));
	mq_close(mqd);
	queue_init(&q, name);
	test_assert(queue_open(&q) == 0);
	test_assert(q.maxmsg == 3 && q.msgsize == 64);
	test_assert(queue_ids_per_message(&q) == 8);
	test_assert(queue_send_ids(&q, ids, 20, &sent) == 0 && sent == 20);
	test_assert(queue_send_ids(&q, ids, 1, &sent) == EAGAIN && sent == 0);
	test_assert(queue_receive_ids(&q, got, 8, &n) == 0 && n == 8);
	test_assert(queue_receive_ids(&q, got + 8, 8, &n) == 0 && n == 8);
	test_assert(queue_receive_ids(&q, got + 16, 1024, &n) == 0 && n == 4);
	test_assert(memcmp(got, ids, sizeof(ids)) == 0);
	queue_close(&q);
}

/* Make the queue anew with exactly this mode, as another program would. */
static void
make_queue(mode_t mode)
{
	mode_t old = umask(0);
	mqd_t mqd;

	mq_unlink(name);
	mqd = mq_open(name, O_RDWR | O_CREAT | O_EXCL, mode, NULL);
	umask(old);
	test_assert_msg(mqd != (mqd_t)-1, "mq_open %04o: %s", (unsigned)mode,
	    strerror(errno));
	mq_close(mqd);
}

TEST(test_exposed_mode)
{
	/* Anything for "other" is refused; ours and our group's is fine. */
	static const mode_t refused[] = { 0666, 0622, 0604, 0601, 0602, 0777 };
	static const mode_t taken[] = { 0660, 0640, 0600, 0620, 0700 };
	char want[32];
	struct queue q;
	bool reopened;
	int rc;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		make_queue(refused[i]);
		queue_init(&q, name);
		rc = queue_open(&q);
		test_assert_msg(rc == QUEUE_EEXPOSED, "mode %04o: rc %d (%s)",
		    (unsigned)refused[i], rc, queue_strerror(&q, rc));
		test_assert(!queue_is_open(&q) && queue_fd(&q) == -1);
		/* The message names the mode and how to get rid of it. */
		snprintf(want, sizeof(want), "mode %04o", (unsigned)refused[i]);
		test_assert_msg(strstr(queue_strerror(&q, rc), want) != NULL &&
		    strstr(queue_strerror(&q, rc), "rm /dev/mqueue/op-unit-")
		    != NULL, "%s", queue_strerror(&q, rc));
		/* A refresh refuses it too, and leaves it in place. */
		reopened = false;
		rc = queue_refresh(&q, &reopened);
		test_assert(rc == QUEUE_EEXPOSED && reopened &&
		    !queue_is_open(&q));
		struct mq_attr attr;
		mqd_t mqd = mq_open(name, O_RDONLY);
		test_assert(mqd != (mqd_t)-1 && mq_getattr(mqd, &attr) == 0);
		mq_close(mqd);
	}
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		make_queue(taken[i]);
		queue_init(&q, name);
		rc = queue_open(&q);
		test_assert_msg(rc == 0, "mode %04o: %s", (unsigned)taken[i],
		    queue_strerror(&q, rc));
		queue_close(&q);
	}
	/* Once the exposed queue is removed, a private one is made. */
	make_queue(0666);
	queue_init(&q, name);
	test_assert(queue_open(&q) == QUEUE_EEXPOSED);
	test_assert(mq_unlink(name) == 0);
	test_assert(queue_refresh(&q, &reopened) == 0 && reopened &&
	    queue_is_open(&q));
	struct stat st;
	test_assert(fstat(queue_fd(&q), &st) == 0 &&
	    (st.st_mode & S_IRWXO) == 0);
	queue_close(&q);
	test_assert(queue_strerror(&q, ENOENT) != NULL &&
	    strcmp(queue_strerror(&q, ENOENT), strerror(ENOENT)) == 0);
}

/*
 * A queue owned by another user is refused whatever its mode (its owner
 * can chmod it at any time); so are group bits for a group not ours. Only
 * root can make such queues here; otherwise this part cannot run.
 */
TEST(test_exposed_owner)
{
	const uid_t nobody = 65534;
	struct queue q;
	pid_t pid;
	int status, rc;

	if (geteuid() != 0) {
		fprintf(stderr, "skip test_exposed_owner: needs root to make "
		    "a queue as another user\n");
		return;
	}
	mq_unlink(name);
	pid = fork();
	test_assert(pid >= 0);
	if (pid == 0) {
		mqd_t mqd;

		umask(0);
		if (setgid(nobody) != 0 || setuid(nobody) != 0)
			_exit(2);
		mqd = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, NULL);
		_exit(mqd == (mqd_t)-1 ? 3 : 0);
	}
	test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
	test_assert_msg(WEXITSTATUS(status) == 0, "child exit %d",
	    WEXITSTATUS(status));
	queue_init(&q, name);
	rc = queue_open(&q);
	test_assert_msg(rc == QUEUE_EEXPOSED, "rc %d (%s)", rc,
	    queue_strerror(&q, rc));
	test_assert(q.refused_uid == nobody);
	test_assert_msg(strstr(queue_strerror(&q, rc), "owner uid 65534") !=
	    NULL, "%s", queue_strerror(&q, rc));

	/* Ours, but its group (not ours) may read and write it. */
	make_queue(0660);
	mqd_t mqd = mq_open(name, O_RDWR);
	test_assert(mqd != (mqd_t)-1);
	test_assert_msg(fchown((int)mqd, (uid_t)-1, nobody) == 0, "fchown: %s",
	    strerror(errno));
	mq_close(mqd);
	rc = queue_open(&q);
	test_assert_msg(rc == QUEUE_EEXPOSED, "rc %d", rc);
	/* The same group with no bits for it is private again. */
	mqd = mq_open(name, O_RDWR);
	test_assert(mqd != (mqd_t)-1 && fchmod((int)mqd, 0600) == 0);
	mq_close(mqd);
	rc = queue_open(&q);
	test_assert_msg(rc == 0, "%s", queue_strerror(&q, rc));
	queue_close(&q);
	test_assert(mq_unlink(name) == 0);
}

int
main(void)
{
	snprintf(name, sizeof(name), "/op-unit-%ld", (long)getpid());
	test_cleanup = cleanup;
	mq_unlink(name);
	RUN(test_send_receive);
	RUN(test_wire_format);
	RUN(test_refresh);
	RUN(test_existing_attributes);
	RUN(test_exposed_mode);
	test_assert(mq_unlink(name) == 0);
	RUN(test_exposed_owner);
	RUN(test_name_valid);
	return 0;
}
