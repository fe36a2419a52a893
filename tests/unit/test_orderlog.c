/*
 * orderlog: the journal's records of new orders, store_admit and
 * store_apply, and the recovery that applies a journal to the store, on a
 * real LMDB and a real journal file in a mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "journal.h"
#include "order.h"
#include "orderlog.h"
#include "store.h"
#include "test.h"

#define MAP_SIZE (UINT64_C(64) << 20)
#define JSIZE (64 * 1024)

/* Now, when the test began: Idempotency-Keys expire a day after it. */
static int64_t T0;
static char dir[256], jpath[300];

static void
cleanup(void)
{
	test_rmtree(dir);
}

/* A fresh directory holding nothing. */
static void
fresh(void)
{
	if (dir[0] != '\0')
		test_rmtree(dir);
	test_mkdtemp(dir);
	snprintf(jpath, sizeof(jpath), "%s/journal", dir);
}

/* Order i of a test batch: id first + i, i % 4 items, a key if i odd. */
static void
make(struct order *o, uint64_t first, size_t i, char key[32])
{
	order_init(o);
	o->id = first + i;
	o->user_id = 10 + i % 3;
	o->total_cents = (int64_t)(i + 1) * 1234;
	o->created_ms = T0 + (int64_t)i;
	test_assert(order_reserve_items(o, (uint32_t)(i % 4)) == 0);
	o->n_items = (uint32_t)(i % 4);
	for (uint32_t j = 0; j < o->n_items; j++)
		o->items[j] = 100 * o->id + j;
	if (i % 2 == 1) {
		snprintf(key, 32, "key-%llu", (unsigned long long)o->id);
		o->idem_key = key;
		memset(o->idem_digest, (int)o->id, ORDER_DIGEST_LEN);
	}
}

static void
same(const struct order *a, const struct order *b)
{
	test_assert(a->id == b->id && a->user_id == b->user_id);
	test_assert(a->total_cents == b->total_cents);
	test_assert(a->created_ms == b->created_ms);
	test_assert(a->n_items == b->n_items);
	for (uint32_t j = 0; j < a->n_items; j++)
		test_assert(a->items[j] == b->items[j]);
	test_assert((a->idem_key == NULL) == (b->idem_key == NULL));
	if (a->idem_key != NULL) {
		test_assert(strcmp(a->idem_key, b->idem_key) == 0);
		test_assert(memcmp(a->idem_digest, b->idem_digest,
		    ORDER_DIGEST_LEN) == 0);
	}
}

/* Encode, decode, and refuse every truncation. */
TEST(test_codec)
{
	struct order in[6], out[6], *ptrs[6];
	char keys[6][32];
	unsigned char buf[4096];
	size_t len, n;

	for (size_t i = 0; i < 6; i++) {
		make(&in[i], 7, i, keys[i]);
		order_init(&out[i]);
		ptrs[i] = &in[i];
	}
	len = orderlog_size(ptrs, 6);
	test_assert(len <= sizeof(buf));
	orderlog_encode(buf, ptrs, 6);
	test_assert(orderlog_count(buf, len) == 6);
	test_assert(orderlog_decode(buf, len, out, 6, &n) == 0 && n == 6);
	for (size_t i = 0; i < 6; i++)
		same(&in[i], &out[i]);
	test_assert(orderlog_decode(buf, len, out, 5, &n) == E2BIG);
	for (size_t cut = 0; cut < len; cut++)
		test_assert_msg(orderlog_decode(buf, cut, out, 6, &n) == EBADMSG,
		    "a payload cut at %zu of %zu decoded", cut, len);
	/* A byte too many is not a payload either. */
	test_assert(orderlog_decode(buf, len + 1, out, 6, &n) == EBADMSG);
	/* Nor a key without its NUL: the second order's "key-8" at 88. */
	test_assert(memcmp(buf + 88, "key-8", 6) == 0);
	buf[93] = 'x';
	test_assert(orderlog_decode(buf, len, out, 6, &n) == EBADMSG);
	for (size_t i = 0; i < 6; i++) {
		order_finish(&in[i]);
		order_finish(&out[i]);
	}
}

/* store_apply stores given ids, times and keys; applying again is a no-op. */
TEST(test_apply)
{
	struct order in[5], *ptrs[5], got;
	char keys[5][32];
	struct store_counters c;
	struct store *s;
	uint64_t lsn, next_id, id;
	uint8_t digest[ORDER_DIGEST_LEN];

	fresh();
	test_assert(store_open(&s, dir, MAP_SIZE, 0) == 0);
	test_assert(store_journal_state(s, &lsn, &next_id) == 0);
	test_assert(lsn == 0 && next_id == 1);
	for (size_t i = 0; i < 5; i++) {
		make(&in[i], 1, i, keys[i]);
		ptrs[i] = &in[i];
	}
	test_assert(store_apply(s, ptrs, 3, 4096) == 0);
	test_assert(store_apply(s, ptrs, 5, 8192) == 0);	/* 1-3 again */
	test_assert(store_journal_state(s, &lsn, &next_id) == 0);
	test_assert(lsn == 8192 && next_id == 6);
	test_assert(store_counters(s, &c) == 0);
	test_assert(c.created_total == 5 && c.by_status[ORDER_PENDING] == 5);
	test_assert(c.next_id == 6);
	order_init(&got);
	for (size_t i = 0; i < 5; i++) {
		test_assert(store_get(s, i + 1, &got) == 0);
		test_assert(got.status == ORDER_PENDING);
		got.idem_key = in[i].idem_key;
		memcpy(got.idem_digest, in[i].idem_digest, ORDER_DIGEST_LEN);
		same(&in[i], &got);
	}
	test_assert(store_idem_get(s, "key-2", &id, digest) == 0 && id == 2);

	/* store_admit: a known key replays or mismatches, a new one is new. */
	in[0].idem_key = "key-2";
	in[0].idem_result = ORDER_IDEM_NEW;
	memset(in[0].idem_digest, 2, ORDER_DIGEST_LEN);
	in[1].idem_key = "key-4";
	in[1].idem_result = ORDER_IDEM_NEW;
	memset(in[1].idem_digest, 9, ORDER_DIGEST_LEN);
	in[2].idem_key = "key-new";
	in[2].idem_result = ORDER_IDEM_NEW;
	test_assert(store_admit(s, ptrs, 3, 0, 0, T0) == 0);
	test_assert(in[0].idem_result == ORDER_IDEM_REPLAY && in[0].id == 2);
	test_assert(in[1].idem_result == ORDER_IDEM_MISMATCH && in[1].id == 0);
	test_assert(in[2].idem_result == ORDER_IDEM_NEW);
	/* No room for what is pending: the map's high-water mark. */
	test_assert(store_admit(s, ptrs, 1, 0, MAP_SIZE, T0) == STORE_EFULL);
	order_finish(&got);
	for (size_t i = 0; i < 5; i++)
		order_finish(&in[i]);
	store_close(s);
}

/* Append n orders from first, one record each batch of up to 3. */
static void
journal_orders(struct journal *j, uint64_t first, size_t n)
{
	for (size_t done = 0; done < n; ) {
		struct order os[3], *ptrs[3];
		char keys[3][32];
		unsigned char buf[4096];
		size_t k = n - done < 3 ? n - done : 3;
		uint64_t lsn, end;

		for (size_t i = 0; i < k; i++) {
			make(&os[i], first + done, i, keys[i]);
			ptrs[i] = &os[i];
		}
		orderlog_encode(buf, ptrs, k);
		test_assert(journal_append(j, buf, orderlog_size(ptrs, k), &lsn,
		    &end) == 0);
		for (size_t i = 0; i < k; i++)
			order_finish(&os[i]);
		done += k;
	}
}

static uint64_t
count_orders(struct store *s)
{
	struct store_counters c;

	test_assert(store_counters(s, &c) == 0);
	return c.created_total;
}

/* A crash after the 201s: the start applies what the journal holds. */
TEST(test_recover)
{
	struct journal *j;
	struct store *s;
	uint64_t replayed, lsn, next_id;
	struct stat st;

	fresh();
	test_assert(store_open(&s, dir, MAP_SIZE, 0) == 0);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 0);
	journal_orders(j, 1, 10);
	journal_close(j);	/* a crash: nothing applied */
	test_assert(count_orders(s) == 0);

	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert_msg(replayed == 10, "replayed %llu",
	    (unsigned long long)replayed);
	test_assert(count_orders(s) == 10);
	test_assert(store_journal_state(s, &lsn, &next_id) == 0);
	test_assert(next_id == 11 && lsn == journal_end(j));
	/* More after the recovery, then again: only those. */
	journal_orders(j, 11, 4);
	journal_close(j);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 4 && count_orders(s) == 14);
	journal_close(j);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 0 && count_orders(s) == 14);

	/* A new size: the old journal is applied first, then made anew. */
	journal_orders(j, 15, 5);
	journal_close(j);
	test_assert(orderlog_recover(s, jpath, 2 * JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 5 && count_orders(s) == 19);
	test_assert(stat(jpath, &st) == 0 && st.st_size == 2 * JSIZE);
	journal_orders(j, 20, 2);
	journal_close(j);
	test_assert(orderlog_recover(s, jpath, 2 * JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 2 && count_orders(s) == 21);
	journal_close(j);
	store_close(s);
}

/* A torn last record was never answered: it is not applied. */
TEST(test_recover_torn)
{
	struct journal *j;
	struct store *s;
	uint64_t replayed, end_first;
	unsigned char byte;
	int fd;

	fresh();
	test_assert(store_open(&s, dir, MAP_SIZE, 0) == 0);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	journal_orders(j, 1, 3);
	end_first = journal_end(j);
	journal_orders(j, 4, 3);
	journal_close(j);
	/* The second record's last payload byte never reached the disk. */
	fd = open(jpath, O_RDWR);
	test_assert(fd >= 0);
	test_assert(pread(fd, &byte, 1, (off_t)end_first + JOURNAL_HEADER +
	    orderlog_size(NULL, 0)) == 1);
	byte ^= 0xff;
	test_assert(pwrite(fd, &byte, 1, (off_t)end_first + JOURNAL_HEADER +
	    orderlog_size(NULL, 0)) == 1);
	close(fd);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert_msg(replayed == 3, "replayed %llu",
	    (unsigned long long)replayed);
	test_assert(count_orders(s) == 3);
	/* The next append takes the torn record's place. */
	test_assert(journal_end(j) == end_first);
	journal_close(j);
	store_close(s);
}

/* orderlog_scan's callback: the ids seen, in order, and the orders' shape. */
struct seen {
	uint64_t ids[64];
	size_t n;
};

static int
seen_one(const struct order *o, void *arg)
{
	struct seen *sn = arg;
	struct order want;
	char key[32];

	test_assert(sn->n < 64);
	sn->ids[sn->n++] = o->id;
	test_assert(o->status == ORDER_PENDING && o->attempts == 0 &&
	    o->updated_ms == o->created_ms && o->completed_ms == 0);
	/* journal_orders' batches hold 3: the i of make() is (id - 1) % 3. */
	make(&want, o->id - (o->id - 1) % 3, (size_t)((o->id - 1) % 3), key);
	same(o, &want);
	order_finish(&want);
	return o->id == 9 ? 99 : 0;
}

/*
 * order-ctl's reading of the journal: the orders past journal_lsn with an
 * id from next_id on, read only while order-api's lock is held; the lock
 * is told; no journal is ENOENT.
 */
TEST(test_scan)
{
	struct journal *j;
	struct store *s;
	struct seen sn = { .n = 0 };
	uint64_t replayed, lsn, next_id;
	bool locked = true;

	fresh();
	test_assert(orderlog_scan(jpath, 0, 1, seen_one, &sn) == ENOENT);
	test_assert(journal_locked(jpath, &locked) == ENOENT);
	test_assert(store_open(&s, dir, MAP_SIZE, 0) == 0);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	journal_orders(j, 1, 6);
	journal_close(j);
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 6);
	journal_orders(j, 7, 5);	/* journaled, not applied */
	test_assert(journal_locked(jpath, &locked) == 0 && locked);
	test_assert(store_journal_state(s, &lsn, &next_id) == 0 &&
	    next_id == 7);
	test_assert(orderlog_scan(jpath, lsn, next_id, seen_one, &sn) == 99);
	test_assert_msg(sn.n == 3 && sn.ids[0] == 7 && sn.ids[2] == 9,
	    "scan saw %zu orders", sn.n);
	/* From 0, the applied ones are skipped by id. */
	sn.n = 0;
	test_assert(orderlog_scan(jpath, 0, 8, seen_one, &sn) == 99);
	test_assert(sn.n == 2 && sn.ids[0] == 8 && sn.ids[1] == 9);
	journal_close(j);
	test_assert(journal_locked(jpath, &locked) == 0 && !locked);
	/* The lock was given back: order-api can open it again. */
	test_assert(orderlog_recover(s, jpath, JSIZE, &j, &replayed) == 0);
	test_assert(replayed == 5);
	sn.n = 0;
	test_assert(store_journal_state(s, &lsn, &next_id) == 0);
	test_assert(orderlog_scan(jpath, lsn, next_id, seen_one, &sn) == 0 &&
	    sn.n == 0);
	journal_close(j);
	store_close(s);
}

int
main(void)
{
	test_cleanup = cleanup;
	T0 = clock_realtime_ms();
	RUN(test_codec);
	RUN(test_apply);
	RUN(test_recover);
	RUN(test_recover_torn);
	RUN(test_scan);
	test_assert(test_rmtree(dir) == 0);
	return 0;
}
