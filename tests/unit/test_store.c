/* store: the LMDB environment, on a real LMDB in a mkdtemp directory. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "order.h"
#include "clock.h"
#include "store.h"
#include "test.h"

#define MAP_SIZE (UINT64_C(64) << 20)
#define T0 INT64_C(1700000000000)
#define LEASE 30000

static char dir[256], full_dir[256], up_dir[256];
static struct store *s;

static void
cleanup(void)
{
	test_rmtree(dir);
	if (full_dir[0] != '\0')
		test_rmtree(full_dir);
	if (up_dir[0] != '\0')
		test_rmtree(up_dir);
}

static void
get(uint64_t id, struct order *o)
{
	int rc = store_get(s, id, o);

	test_assert_msg(rc == 0, "store_get %llu: %s", (unsigned long long)id,
	    store_strerror(rc));
	test_assert(o->id == id);
}

/* Read the counters and check that every order is in exactly one status. */
static struct store_counters
counters(void)
{
	struct store_counters c;
	uint64_t sum = 0;
	int rc = store_counters(s, &c);

	test_assert_msg(rc == 0, "store_counters: %s", store_strerror(rc));
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		sum += c.by_status[i];
	test_assert_msg(sum == c.created_total, "by_status sum %llu, created "
	    "%llu", (unsigned long long)sum,
	    (unsigned long long)c.created_total);
	return c;
}

static void
check_by_status(uint64_t pending, uint64_t processing, uint64_t completed,
    uint64_t cancelled)
{
	struct store_counters c = counters();

	test_assert_msg(c.by_status[ORDER_PENDING] == pending &&
	    c.by_status[ORDER_PROCESSING] == processing &&
	    c.by_status[ORDER_COMPLETED] == completed &&
	    c.by_status[ORDER_CANCELLED] == cancelled,
	    "by_status %llu %llu %llu %llu, want %llu %llu %llu %llu",
	    (unsigned long long)c.by_status[0],
	    (unsigned long long)c.by_status[1],
	    (unsigned long long)c.by_status[2],
	    (unsigned long long)c.by_status[3], (unsigned long long)pending,
	    (unsigned long long)processing, (unsigned long long)completed,
	    (unsigned long long)cancelled);
}

static void
set_items(struct order *o, uint32_t n, uint64_t base)
{
	test_assert(order_reserve_items(o, n) == 0);
	for (uint32_t i = 0; i < n; i++)
		o->items[i] = base + i;
	o->n_items = n;
}

/* Create one order per user in users[], items base id*100. */
static void
create_orders(const uint64_t *users, size_t n, int64_t now, uint64_t first_id)
{
	struct order os[32], *ptrs[32];
	int rc;

	test_assert(n <= 32);
	for (size_t i = 0; i < n; i++) {
		order_init(&os[i]);
		os[i].user_id = users[i];
		os[i].total_cents = (int64_t)(first_id + i) * 101;
		set_items(&os[i], (uint32_t)(i % 3) + 1, (first_id + i) * 100);
		ptrs[i] = &os[i];
	}
	rc = store_create(s, ptrs, n, now);
	test_assert_msg(rc == 0, "store_create: %s", store_strerror(rc));
	for (size_t i = 0; i < n; i++) {
		test_assert_msg(os[i].id == first_id + i, "id %llu, want %llu",
		    (unsigned long long)os[i].id,
		    (unsigned long long)(first_id + i));
		test_assert(os[i].status == ORDER_PENDING &&
		    os[i].created_ms == now && os[i].updated_ms == now &&
		    os[i].completed_ms == 0 && os[i].attempts == 0);
		order_finish(&os[i]);
	}
}

TEST(test_create_get)
{
	struct order os[3], *ptrs[3], got;
	struct store_counters c;
	const uint64_t users[3] = { 7, 7, 8 };
	int rc;

	order_init(&got);
	for (int i = 0; i < 3; i++) {
		order_init(&os[i]);
		os[i].user_id = users[i];
		os[i].total_cents = 25075 + i;
		set_items(&os[i], (uint32_t)i + 1, 100 * (uint64_t)(i + 1));
		os[i].status = ORDER_COMPLETED;	/* overwritten */
		os[i].attempts = 9;
		os[i].completed_ms = 5;
		ptrs[i] = &os[i];
	}
	test_assert(store_create(s, ptrs, 0, T0) == 0);
	rc = store_create(s, ptrs, 3, T0);
	test_assert_msg(rc == 0, "store_create: %s", store_strerror(rc));
	for (int i = 0; i < 3; i++) {
		test_assert(os[i].id == (uint64_t)i + 1);
		test_assert(os[i].status == ORDER_PENDING);
		test_assert(os[i].attempts == 0 && os[i].completed_ms == 0);
		test_assert(os[i].created_ms == T0 && os[i].updated_ms == T0);

		get((uint64_t)i + 1, &got);
		test_assert(got.user_id == users[i]);
		test_assert(got.total_cents == 25075 + i);
		test_assert(got.status == ORDER_PENDING);
		test_assert(got.attempts == 0);
		test_assert(got.created_ms == T0 && got.updated_ms == T0);
		test_assert(got.completed_ms == 0 && got.lease_until_ms == 0);
		test_assert(got.n_items == (uint32_t)i + 1);
		for (uint32_t j = 0; j < got.n_items; j++)
			test_assert(got.items[j] == 100 * (uint64_t)(i + 1) + j);
		order_finish(&os[i]);
	}
	test_assert(store_get(s, 4, &got) == STORE_ENOTFOUND);
	test_assert(store_get(s, 0, &got) == STORE_ENOTFOUND);
	test_assert(store_get(s, UINT64_MAX, &got) == STORE_ENOTFOUND);
	check_by_status(3, 0, 0, 0);
	c = counters();
	test_assert(c.created_total == 3 && c.completed_total == 0 &&
	    c.processing_ms_sum == 0 && c.lease_expiries_total == 0 &&
	    c.released_total == 0 && c.heartbeat_ms == 0);
	order_finish(&got);
}

TEST(test_claim_complete)
{
	struct store_claim c = { .id = 1 };
	struct store_counters cnt;
	struct order o;
	const int64_t t1 = T0 + 2000, t2 = t1 + LEASE, t3 = t2 + 3000;

	order_init(&o);
	/* Claim: Pending -> Processing, attempt 1. */
	test_assert(store_claim(s, &c, 1, t1, t1 + LEASE) == 0);
	test_assert(c.done && c.attempt == 1 && c.created_ms == T0);
	get(1, &o);
	test_assert(o.status == ORDER_PROCESSING && o.attempts == 1);
	test_assert(o.lease_until_ms == t1 + LEASE && o.updated_ms == t1);
	test_assert(o.created_ms == T0 && o.completed_ms == 0);
	check_by_status(2, 1, 0, 0);

	/* A second claim while the lease is live does nothing. */
	c = (struct store_claim){ .id = 1, .done = true };
	test_assert(store_claim(s, &c, 1, t1 + 1, t1 + 1 + LEASE) == 0);
	test_assert(!c.done);
	c = (struct store_claim){ .id = 1, .done = true };
	test_assert(store_claim(s, &c, 1, t2 - 1, t2 - 1 + LEASE) == 0);
	test_assert(!c.done);
	get(1, &o);
	test_assert(o.attempts == 1 && o.lease_until_ms == t1 + LEASE);
	check_by_status(2, 1, 0, 0);

	/* Once it lapses another worker takes it over: attempt 2. */
	c = (struct store_claim){ .id = 1 };
	test_assert(store_claim(s, &c, 1, t2, t2 + LEASE) == 0);
	test_assert(c.done && c.attempt == 2 && c.created_ms == T0);
	get(1, &o);
	test_assert(o.status == ORDER_PROCESSING && o.attempts == 2 &&
	    o.lease_until_ms == t2 + LEASE);
	cnt = counters();
	test_assert(cnt.lease_expiries_total == 1);
	check_by_status(2, 1, 0, 0);

	/* The stale claim cannot complete it. */
	c = (struct store_claim){ .id = 1, .attempt = 1, .done = true };
	test_assert(store_complete(s, &c, 1, t3) == 0);
	test_assert(!c.done);
	get(1, &o);
	test_assert(o.status == ORDER_PROCESSING && o.completed_ms == 0);
	check_by_status(2, 1, 0, 0);

	/* The live one can. */
	c = (struct store_claim){ .id = 1, .attempt = 2 };
	test_assert(store_complete(s, &c, 1, t3) == 0);
	test_assert(c.done);
	get(1, &o);
	test_assert(o.status == ORDER_COMPLETED && o.completed_ms == t3 &&
	    o.updated_ms == t3 && o.attempts == 2);
	check_by_status(2, 0, 1, 0);
	cnt = counters();
	test_assert(cnt.completed_total == 1);
	test_assert_msg(cnt.processing_ms_sum == (uint64_t)(t3 - T0),
	    "processing_ms_sum %llu",
	    (unsigned long long)cnt.processing_ms_sum);

	/* Completing again is a no-op, counted once. */
	c = (struct store_claim){ .id = 1, .attempt = 2, .done = true };
	test_assert(store_complete(s, &c, 1, t3 + 10) == 0);
	test_assert(!c.done);
	get(1, &o);
	test_assert(o.completed_ms == t3);
	cnt = counters();
	test_assert(cnt.completed_total == 1 &&
	    cnt.processing_ms_sum == (uint64_t)(t3 - T0));
	check_by_status(2, 0, 1, 0);

	/* A completed order cannot be claimed, even "lapsed". */
	c = (struct store_claim){ .id = 1, .done = true };
	test_assert(store_claim(s, &c, 1, t3 + 10 * LEASE, t3 + 11 * LEASE)
	    == 0);
	test_assert(!c.done);
	check_by_status(2, 0, 1, 0);
	order_finish(&o);
}

TEST(test_release)
{
	struct store_claim c = { .id = 2 };
	struct store_counters cnt;
	struct order o;
	const int64_t t = T0 + 5000;

	order_init(&o);
	test_assert(store_claim(s, &c, 1, t, t + LEASE) == 0 && c.done &&
	    c.attempt == 1);
	check_by_status(1, 1, 1, 0);
	/* Wrong attempt: nothing happens. */
	c = (struct store_claim){ .id = 2, .attempt = 2, .done = true };
	test_assert(store_release(s, &c, 1, t + 1) == 0 && !c.done);
	check_by_status(1, 1, 1, 0);
	/* Right attempt: back to Pending. */
	c = (struct store_claim){ .id = 2, .attempt = 1 };
	test_assert(store_release(s, &c, 1, t + 2) == 0 && c.done);
	get(2, &o);
	test_assert(o.status == ORDER_PENDING && o.lease_until_ms == 0 &&
	    o.updated_ms == t + 2 && o.created_ms == T0);
	check_by_status(2, 0, 1, 0);
	cnt = counters();
	test_assert(cnt.released_total == 1);
	/* A release of a Pending order is a no-op. */
	c = (struct store_claim){ .id = 2, .attempt = 1, .done = true };
	test_assert(store_release(s, &c, 1, t + 3) == 0 && !c.done);
	/* Claimed again, it gets the next attempt. */
	c = (struct store_claim){ .id = 2 };
	test_assert(store_claim(s, &c, 1, t + 4, t + 4 + LEASE) == 0 &&
	    c.done && c.attempt == 2);
	check_by_status(1, 1, 1, 0);
	order_finish(&o);
}

TEST(test_cancel)
{
	struct store_claim c;
	struct order o;
	int rc;

	order_init(&o);
	rc = store_cancel(s, 3, T0 + 6000, &o);
	test_assert_msg(rc == 0, "store_cancel: %s", store_strerror(rc));
	test_assert(o.id == 3 && o.status == ORDER_CANCELLED &&
	    o.updated_ms == T0 + 6000 && o.completed_ms == 0);
	get(3, &o);
	test_assert(o.status == ORDER_CANCELLED);
	check_by_status(0, 1, 1, 1);

	/* Cancelled, Completed, Processing: conflict, and o filled. */
	order_finish(&o);
	order_init(&o);
	test_assert(store_cancel(s, 3, T0 + 7000, &o) == STORE_ECONFLICT);
	test_assert(o.id == 3 && o.status == ORDER_CANCELLED &&
	    o.updated_ms == T0 + 6000);
	test_assert(store_cancel(s, 1, T0 + 7000, &o) == STORE_ECONFLICT);
	test_assert(o.id == 1 && o.status == ORDER_COMPLETED);
	test_assert(store_cancel(s, 2, T0 + 7000, &o) == STORE_ECONFLICT);
	test_assert(o.id == 2 && o.status == ORDER_PROCESSING);
	test_assert(store_cancel(s, 999, T0 + 7000, &o) == STORE_ENOTFOUND);
	check_by_status(0, 1, 1, 1);

	/* A cancelled order cannot be claimed. */
	c = (struct store_claim){ .id = 3, .done = true };
	test_assert(store_claim(s, &c, 1, T0 + 8000, T0 + 8000 + LEASE) == 0);
	test_assert(!c.done);
	check_by_status(0, 1, 1, 1);
	test_assert(strcmp(store_strerror(STORE_ENOTFOUND), "no such order")
	    == 0);
	test_assert(strstr(store_strerror(STORE_ECONFLICT), "state") != NULL);
	order_finish(&o);
}

TEST(test_batches)
{
	const uint64_t users[2] = { 7, 8 };
	struct store_claim c[4] = { { .id = 4 }, { .id = 1 }, { .id = 999 },
		{ .id = 5 } };
	const int64_t t = T0 + 9000;

	create_orders(users, 2, T0 + 8500, 4);	/* ids 4, 5 */
	check_by_status(2, 1, 1, 1);
	test_assert(store_claim(s, c, 4, t, t + LEASE) == 0);
	test_assert(c[0].done && !c[1].done && !c[2].done && c[3].done);
	test_assert(c[0].attempt == 1 && c[3].attempt == 1);
	test_assert(c[0].created_ms == T0 + 8500);
	check_by_status(0, 3, 1, 1);
	/* Complete one, release the other, in batches of mixed results. */
	c[3].attempt = 7;	/* stale */
	test_assert(store_complete(s, c, 4, t + 3000) == 0);
	test_assert(c[0].done && !c[1].done && !c[2].done && !c[3].done);
	check_by_status(0, 2, 2, 1);
	c[3].attempt = 1;
	test_assert(store_release(s, c, 4, t + 3001) == 0);
	test_assert(!c[0].done && !c[1].done && !c[2].done && c[3].done);
	check_by_status(1, 1, 2, 1);
	/* Empty batches. */
	test_assert(store_claim(s, c, 0, t, t + LEASE) == 0);
	test_assert(store_complete(s, c, 0, t) == 0);
	test_assert(store_release(s, c, 0, t) == 0);
	/* State now: 1 Completed, 2 Processing (attempt 2), 3 Cancelled,
	 * 4 Completed, 5 Pending. */
}

struct collect {
	struct store_unfinished u[64];
	size_t n;
	size_t stop_after;	/* 0: never */
};

static int
collect_fn(const struct store_unfinished *u, void *arg)
{
	struct collect *col = arg;

	test_assert(col->n < 64);
	col->u[col->n++] = *u;
	return col->stop_after != 0 && col->n == col->stop_after ? 42 : 0;
}

TEST(test_unfinished_peek)
{
	struct collect col = { .n = 0 };
	const uint64_t ids[] = { 1, 999, 2, 3, 5, 0 };
	struct order o2, o5;
	int rc;

	order_init(&o2);
	order_init(&o5);
	get(2, &o2);
	get(5, &o5);
	rc = store_unfinished(s, collect_fn, &col);
	test_assert_msg(rc == 0, "store_unfinished: %s", store_strerror(rc));
	test_assert_msg(col.n == 2, "%zu unfinished", col.n);
	/* Pending first, then Processing; by id within each. */
	test_assert(col.u[0].id == 5 && col.u[0].status == ORDER_PENDING &&
	    col.u[0].due_ms == o5.created_ms);
	test_assert(col.u[1].id == 2 && col.u[1].status == ORDER_PROCESSING &&
	    col.u[1].due_ms == o2.lease_until_ms);
	/* The callback's nonzero return stops the walk and is returned. */
	col = (struct collect){ .stop_after = 1 };
	test_assert(store_unfinished(s, collect_fn, &col) == 42 && col.n == 1);

	col = (struct collect){ .n = 0 };
	rc = store_peek(s, ids, sizeof(ids) / sizeof(ids[0]), collect_fn, &col);
	test_assert_msg(rc == 0, "store_peek: %s", store_strerror(rc));
	test_assert_msg(col.n == 4, "%zu peeked", col.n);
	test_assert(col.u[0].id == 1 && col.u[0].status == ORDER_COMPLETED &&
	    col.u[0].due_ms == T0);
	test_assert(col.u[1].id == 2 && col.u[1].status == ORDER_PROCESSING &&
	    col.u[1].due_ms == o2.lease_until_ms);
	test_assert(col.u[2].id == 3 && col.u[2].status == ORDER_CANCELLED);
	test_assert(col.u[3].id == 5 && col.u[3].status == ORDER_PENDING &&
	    col.u[3].due_ms == o5.created_ms);
	col = (struct collect){ .n = 0 };
	test_assert(store_peek(s, ids, 0, collect_fn, &col) == 0 && col.n == 0);
	order_finish(&o2);
	order_finish(&o5);
}

/* The model the list is checked against: every order's status and user. */
#define MAX_IDS 64
static struct {
	uint64_t n;
	enum order_status status[MAX_IDS + 1];
	uint64_t user[MAX_IDS + 1];
} model;

static void
load_model(void)
{
	struct store_counters c = counters();
	struct order o;

	order_init(&o);
	model.n = c.created_total;
	test_assert(model.n <= MAX_IDS);
	for (uint64_t id = 1; id <= model.n; id++) {
		get(id, &o);
		model.status[id] = o.status;
		model.user[id] = o.user_id;
	}
	order_finish(&o);
}

struct list {
	uint64_t ids[MAX_IDS * 2];
	size_t n;
};

static int
list_fn(const struct order *o, void *arg)
{
	struct list *l = arg;

	test_assert(l->n < MAX_IDS * 2);
	test_assert(o->id >= 1 && o->id <= model.n);
	test_assert(o->status == model.status[o->id]);
	test_assert(o->user_id == model.user[o->id]);
	test_assert(o->n_items >= 1 && o->items != NULL);
	l->ids[l->n++] = o->id;
	return 0;
}

static bool
matches(const struct store_filter *f, uint64_t id)
{
	return (!f->by_status || model.status[id] == f->status) &&
	    (f->user_id == 0 || model.user[id] == f->user_id) &&
	    (f->desc ? f->after == 0 || id < f->after : id > f->after);
}

/*
 * Walk f page by page in its direction; every match exactly once, oldest
 * first (f.desc: newest first).
 */
static void
check_direction(struct store_filter f)
{
	uint64_t want[MAX_IDS], nwant = 0, next;
	struct list all = { .n = 0 };
	int pages = 0, rc;

	for (uint64_t id = 1; id <= model.n; id++) {
		uint64_t at = f.desc ? model.n + 1 - id : id;

		if (matches(&f, at))
			want[nwant++] = at;
	}
	for (;;) {
		struct list page = { .n = 0 };

		next = 12345;
		rc = store_list(s, &f, list_fn, &page, &next);
		test_assert_msg(rc == 0, "store_list: %s", store_strerror(rc));
		test_assert(page.n <= f.limit);
		for (size_t i = 0; i < page.n; i++)
			all.ids[all.n++] = page.ids[i];
		pages++;
		test_assert(pages <= MAX_IDS + 1);
		if (next == 0)
			break;
		test_assert_msg(page.n == f.limit && next ==
		    page.ids[page.n - 1], "limit %u: %zu on the page, next "
		    "%llu", f.limit, page.n, (unsigned long long)next);
		f.after = next;
	}
	test_assert_msg(all.n == nwant, "listed %zu, want %llu (status %d/%d "
	    "user %llu limit %u desc %d)", all.n, (unsigned long long)nwant,
	    f.by_status, f.status, (unsigned long long)f.user_id, f.limit,
	    f.desc);
	for (size_t i = 0; i < all.n; i++)
		test_assert_msg(all.ids[i] == want[i], "item %zu: %llu, want "
		    "%llu (desc %d)", i, (unsigned long long)all.ids[i],
		    (unsigned long long)want[i], f.desc);
}

/* f's list both ways: oldest first, then newest first. */
static void
check_list(struct store_filter f)
{
	f.desc = false;
	check_direction(f);
	f.desc = true;
	check_direction(f);
}

TEST(test_list)
{
	uint64_t users[20], next;
	struct store_claim c[6];
	struct list l = { .n = 0 };
	struct store_filter f = { .limit = 0 };

	for (int i = 0; i < 20; i++)
		users[i] = i % 3 == 0 ? 7 : 9;
	create_orders(users, 20, T0 + 10000, 6);	/* ids 6..25 */
	for (int i = 0; i < 6; i++)
		c[i] = (struct store_claim){ .id = 6 + 3 * (uint64_t)i };
	test_assert(store_claim(s, c, 6, T0 + 12000, T0 + 12000 + LEASE) == 0);
	for (int i = 0; i < 3; i++)
		test_assert(c[i].done);
	test_assert(store_complete(s, c, 3, T0 + 15000) == 0);
	test_assert(c[0].done && c[1].done && c[2].done);
	counters();
	load_model();
	test_assert(model.n == 25);

	for (uint32_t limit = 1; limit <= 30; limit++) {
		for (int st = -1; st < ORDER_STATUS_COUNT; st++) {
			const uint64_t us[] = { 0, 7, 8, 9, 12345 };

			for (size_t u = 0; u < 5; u++) {
				f = (struct store_filter){ .by_status = st >= 0,
					.status = st >= 0 ? (enum order_status)st
					: ORDER_PENDING, .user_id = us[u],
					.limit = limit };
				check_list(f);
				f.after = 10;
				check_list(f);
			}
		}
	}
	/* Nothing after the last id. */
	f = (struct store_filter){ .after = UINT64_MAX, .limit = 100 };
	next = 1;
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 0 &&
	    next == 0);
	f = (struct store_filter){ .after = 25, .limit = 100 };
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 0 &&
	    next == 0);
	/* Exactly limit matches: no next page. */
	f = (struct store_filter){ .after = 20, .limit = 5 };
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 5 &&
	    next == 0);
	/* Newest first: nothing below the first id; all below a huge one. */
	l.n = 0;
	f = (struct store_filter){ .after = 1, .limit = 100, .desc = true };
	next = 1;
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 0 &&
	    next == 0);
	f = (struct store_filter){ .after = UINT64_MAX, .limit = 100,
		.desc = true };
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 &&
	    l.n == 25 && l.ids[0] == 25 && l.ids[24] == 1 && next == 0);
	/* Newest first, exactly limit matches: no next page. */
	l.n = 0;
	f = (struct store_filter){ .after = 6, .limit = 5, .desc = true };
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 5 &&
	    l.ids[0] == 5 && l.ids[4] == 1 && next == 0);
	/* A user and a status that hold nothing, newest first. */
	l.n = 0;
	f = (struct store_filter){ .user_id = 12345, .by_status = true,
		.status = ORDER_COMPLETED, .limit = 3, .desc = true };
	test_assert(store_list(s, &f, list_fn, &l, &next) == 0 && l.n == 0 &&
	    next == 0);
}

TEST(test_heartbeat_usage)
{
	struct store_counters c;
	uint64_t used = 0, map = 0;
	int cleared = -1;

	c = counters();
	test_assert(c.heartbeat_ms == 0);
	test_assert(store_heartbeat(s, T0 + 123456) == 0);
	c = counters();
	test_assert(c.heartbeat_ms == T0 + 123456);
	test_assert(store_heartbeat(s, T0 + 123999) == 0);
	c = counters();
	test_assert(c.heartbeat_ms == T0 + 123999);
	/* A transition rewrites the counters but keeps the heartbeat. */
	struct store_claim cl = { .id = 5 };
	test_assert(store_claim(s, &cl, 1, T0 + 20000, T0 + 20000 + LEASE) ==
	    0 && cl.done);
	c = counters();
	test_assert(c.heartbeat_ms == T0 + 123999);

	test_assert(store_usage(s, &used, &map) == 0);
	test_assert(map == MAP_SIZE && used > 0 && used < map);
	test_assert(store_reader_check(s, &cleared) == 0 && cleared == 0);
}

/* Many threads reading while one writes. */
static void *
reader_thread(void *arg)
{
	struct order o;
	uint64_t n = *(uint64_t *)arg;

	order_init(&o);
	for (int i = 0; i < 300; i++) {
		uint64_t id = 1 + (uint64_t)i % n;
		struct collect col = { .n = 0 };
		struct store_filter f = { .limit = 5 };
		struct list l = { .n = 0 };
		uint64_t next;

		get(id, &o);
		counters();
		if (i % 10 == 0) {
			test_assert(store_list(s, &f, list_fn, &l, &next) == 0);
			test_assert(l.n == 5 && next == 5);
			test_assert(store_peek(s, &id, 1, collect_fn, &col) ==
			    0 && col.n == 1);
		}
	}
	order_finish(&o);
	return NULL;
}

TEST(test_threads)
{
	pthread_t th[4];
	uint64_t n;
	const uint64_t users[2] = { 1, 2 };

	load_model();
	n = model.n;

	for (int i = 0; i < 4; i++)
		test_assert(pthread_create(&th[i], NULL, reader_thread, &n) ==
		    0);
	for (int i = 0; i < 10; i++)
		create_orders(users, 2, T0 + 30000 + i, model.n + 1 +
		    2 * (uint64_t)i);
	for (int i = 0; i < 4; i++)
		test_assert(pthread_join(th[i], NULL) == 0);
	counters();
	load_model();
	test_assert(model.n == 45);
}

TEST(test_reopen)
{
	struct store_counters before = counters(), after;
	struct order a, b;
	int rc;

	order_init(&a);
	order_init(&b);
	/* Keep every order as it was. */
	static struct order saved[MAX_IDS + 1];
	for (uint64_t id = 1; id <= model.n; id++) {
		order_init(&saved[id]);
		get(id, &saved[id]);
	}
	store_close(s);
	s = NULL;
	rc = store_open(&s, dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	after = counters();
	test_assert(memcmp(&before, &after, sizeof(before)) == 0);
	for (uint64_t id = 1; id <= model.n; id++) {
		struct order *o = &saved[id];

		get(id, &b);
		test_assert(b.user_id == o->user_id &&
		    b.total_cents == o->total_cents && b.status == o->status &&
		    b.attempts == o->attempts &&
		    b.created_ms == o->created_ms &&
		    b.updated_ms == o->updated_ms &&
		    b.completed_ms == o->completed_ms &&
		    b.lease_until_ms == o->lease_until_ms &&
		    b.n_items == o->n_items);
		test_assert(memcmp(b.items, o->items, b.n_items * 8) == 0);
		order_finish(o);
	}
	/* Ids continue where they left off. */
	const uint64_t users[1] = { 3 };
	create_orders(users, 1, T0 + 40000, model.n + 1);
	load_model();
	order_finish(&a);
	order_finish(&b);
}

/* The environment at path opened with plain LMDB (flags 0 or MDB_RDONLY). */
static MDB_env *
plain_env(const char *path, unsigned flags)
{
	MDB_env *env;

	test_assert(mdb_env_create(&env) == 0);
	test_assert(mdb_env_set_maxdbs(env, 8) == 0);
	test_assert(mdb_env_open(env, path, flags, 0660) == 0);
	return env;
}

/* Open dir with plain LMDB and put (or, value NULL, delete) a meta key. */
static void
set_meta(const char *path, const char *key, const void *value, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = strlen(key), .mv_data = (void *)key };
	MDB_val v = { .mv_size = len, .mv_data = (void *)value };

	env = plain_env(path, 0);
	test_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	test_assert(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
	if (value != NULL)
		test_assert(mdb_put(txn, dbi, &k, &v, 0) == 0);
	else
		test_assert(mdb_del(txn, dbi, &k, NULL) == 0);
	test_assert(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

static void
set_schema(const char *path, const void *value, size_t len)
{
	set_meta(path, "schema_version", value, len);
}

TEST(test_schema)
{
	struct store *t = NULL;
	const uint32_t v99 = 99, vcur = STORE_SCHEMA_VERSION;
	const uint32_t vnext = STORE_SCHEMA_VERSION + 1;
	const uint64_t vcur_wide = STORE_SCHEMA_VERSION;
	int rc;

	/* s holds orders; close it, then meddle with its version. */
	store_close(s);
	s = NULL;
	set_schema(dir, &v99, sizeof(v99));
	rc = store_open(&t, dir, MAP_SIZE, 0);
	test_assert_msg(rc == STORE_ESCHEMA, "store_open: %d %s", rc,
	    store_strerror(rc));
	test_assert(strstr(store_strerror(rc), "schema") != NULL);
	/* The next version, from a newer release: refused, not touched. */
	set_schema(dir, &vnext, sizeof(vnext));
	test_assert(store_open(&t, dir, MAP_SIZE, 0) == STORE_ESCHEMA);
	/* A version of the wrong width. */
	set_schema(dir, &vcur_wide, sizeof(vcur_wide));
	test_assert(store_open(&t, dir, MAP_SIZE, 0) == STORE_ESCHEMA);
	/* No version at all, but orders: not a new environment. */
	set_schema(dir, NULL, 0);
	test_assert(store_open(&t, dir, MAP_SIZE, 0) == STORE_ESCHEMA);
	/* The right version again: it opens, orders intact. */
	set_schema(dir, &vcur, sizeof(vcur));
	rc = store_open(&s, dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	test_assert(store_upgraded_from(s) == 0);
	load_model();
	/* A directory that does not exist is an error, not a crash. */
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	test_assert(store_open(&t, missing, MAP_SIZE, 0) != 0);
}

/*
 * Fill a 1 MiB map with orders of 1000 items, batch at a time: small
 * batches meet the high-water check, large ones LMDB's own MDB_MAP_FULL
 * in the middle of the transaction.
 */
static void
map_full(int batch)
{
	struct store *saved = s;
	struct order os[32], *ptrs[32], o;
	struct store_counters c;
	uint64_t created = 0, used = 0, map = 0;
	int rc = 0, batches;

	test_mkdtemp(full_dir);
	rc = store_open(&s, full_dir, 1 << 20, STORE_NOSYNC);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	for (int i = 0; i < batch; i++) {
		order_init(&os[i]);
		ptrs[i] = &os[i];
		test_assert(order_reserve_items(&os[i], ORDER_MAX_ITEMS) == 0);
		os[i].n_items = ORDER_MAX_ITEMS;
	}
	for (batches = 0; batches < 1000; batches++) {
		for (int i = 0; i < batch; i++) {
			uint64_t id = created + (uint64_t)i + 1;


			os[i].user_id = id;
			os[i].total_cents = (int64_t)id;
			for (uint32_t j = 0; j < ORDER_MAX_ITEMS; j++)
				os[i].items[j] = id * 1000 + j;
		}
		test_assert(store_usage(s, &used, &map) == 0);
		rc = store_create(s, ptrs, (size_t)batch, T0 + batches);
		if (rc != 0)
			break;
		created += (uint64_t)batch;
	}
	test_assert_msg(rc == STORE_EFULL, "after %llu orders: %d %s",
	    (unsigned long long)created, rc, store_strerror(rc));
	test_assert(created > 0);
	test_assert(strstr(store_strerror(rc), "full") != NULL);
	/* Nothing of the failed batch was stored. */
	fprintf(stderr, "batches of %d: full after %llu orders, %llu of %llu "
	    "bytes used before the last batch\n", batch,
	    (unsigned long long)created, (unsigned long long)used,
	    (unsigned long long)map);
	for (int i = 0; i < batch; i++)
		os[i].id = 0;
	test_assert(store_create(s, ptrs, (size_t)batch, T0) == STORE_EFULL);
	for (int i = 0; i < batch; i++)
		test_assert(os[i].id == 0);
	c = counters();
	test_assert_msg(c.created_total == created && c.by_status[0] == created,
	    "created_total %llu, want %llu",
	    (unsigned long long)c.created_total, (unsigned long long)created);
	order_init(&o);
	test_assert(store_get(s, created + 1, &o) == STORE_ENOTFOUND);
	for (uint64_t id = 1; id <= created; id++) {
		get(id, &o);
		test_assert(o.user_id == id && o.total_cents == (int64_t)id &&
		    o.status == ORDER_PENDING &&
		    o.n_items == ORDER_MAX_ITEMS);
		for (uint32_t j = 0; j < ORDER_MAX_ITEMS; j++)
			test_assert(o.items[j] == id * 1000 + j);
	}
	/* The high-water mark leaves room for the worker's transitions. */
	struct store_claim cl[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };
	rc = store_claim(s, cl, 3, T0 + 5000, T0 + 5000 + LEASE);
	test_assert_msg(rc == 0, "claim when full: %s", store_strerror(rc));
	test_assert(cl[0].done && cl[1].done && cl[2].done);
	rc = store_complete(s, cl, 3, T0 + 8000);
	test_assert_msg(rc == 0, "complete when full: %s", store_strerror(rc));
	test_assert(cl[0].done && cl[1].done && cl[2].done);
	test_assert(store_heartbeat(s, T0 + 8000) == 0);
	get(1, &o);
	test_assert(o.status == ORDER_COMPLETED && o.completed_ms == T0 + 8000);
	test_assert(o.items[999] == 1999);
	c = counters();
	test_assert(c.by_status[ORDER_COMPLETED] == 3 &&
	    c.completed_total == 3);

	for (int i = 0; i < batch; i++)
		order_finish(&os[i]);
	order_finish(&o);
	store_close(s);
	s = saved;
	test_assert(test_rmtree(full_dir) == 0);
	full_dir[0] = '\0';
}

TEST(test_map_full)
{
	map_full(5);
	map_full(30);
	map_full(1);
}

static void
cleanup_all(void)
{
	cleanup();
}

/* Idempotency-Keys: replay, mismatch, one key twice in a batch, expiry. */
TEST(test_idempotency)
{
	struct order a, b, c2, d, *one[1], *two[2];
	struct store_counters before, after;
	uint8_t digest[ORDER_DIGEST_LEN];
	int64_t t = clock_realtime_ms();
	uint64_t id;

	store_set_idem_ttl(s, 1000);
	order_init(&a);
	a.user_id = 1;
	set_items(&a, 1, 5);
	a.total_cents = 100;
	b = a;
	a.idem_key = "k1";
	memset(a.idem_digest, 1, ORDER_DIGEST_LEN);
	one[0] = &a;
	test_assert(store_create(s, one, 1, t) == 0);
	test_assert(a.idem_result == ORDER_IDEM_NEW && a.id != 0);
	test_assert(store_idem_get(s, "k1", &id, digest) == 0 && id == a.id);
	test_assert(digest[0] == 1 && digest[ORDER_DIGEST_LEN - 1] == 1);
	test_assert(store_idem_get(s, "nope", &id, digest) == STORE_ENOTFOUND);

	/* The same key and body: the first order, nothing created. */
	before = counters();
	b.idem_key = "k1";
	memset(b.idem_digest, 1, ORDER_DIGEST_LEN);
	one[0] = &b;
	test_assert(store_create(s, one, 1, t + 10) == 0);
	test_assert(b.idem_result == ORDER_IDEM_REPLAY && b.id == a.id);
	after = counters();
	test_assert(after.created_total == before.created_total);

	/* Another body: a mismatch, nothing created. */
	c2 = b;
	memset(c2.idem_digest, 2, ORDER_DIGEST_LEN);
	one[0] = &c2;
	test_assert(store_create(s, one, 1, t + 20) == 0);
	test_assert(c2.idem_result == ORDER_IDEM_MISMATCH && c2.id == 0);
	test_assert(counters().created_total == before.created_total);

	/* One new key twice in a batch: one order. */
	d = b;
	d.idem_key = "k2";
	c2 = d;
	two[0] = &d;
	two[1] = &c2;
	test_assert(store_create(s, two, 2, t + 30) == 0);
	test_assert(d.idem_result == ORDER_IDEM_NEW);
	test_assert(c2.idem_result == ORDER_IDEM_REPLAY && c2.id == d.id);
	test_assert(counters().created_total == before.created_total + 1);

	/* Past the TTL the key is free again and the old entry is gone. */
	b.idem_key = "k1";
	memset(b.idem_digest, 3, ORDER_DIGEST_LEN);
	one[0] = &b;
	test_assert(store_create(s, one, 1, t + 5000) == 0);
	test_assert(b.idem_result == ORDER_IDEM_NEW && b.id != a.id);
	test_assert(store_idem_get(s, "k1", &id, digest) == 0 && id == b.id);
	test_assert(digest[0] == 3);
	after = counters();
	test_assert(after.by_status[0] + after.by_status[1] + after.by_status[2] +
	    after.by_status[3] == after.created_total);

	store_set_idem_ttl(s, STORE_IDEM_TTL_MS);
	order_finish(&a);
}

/* store_advance: completes and claims in one transaction. */
TEST(test_advance)
{
	const uint64_t users[3] = { 3, 4, 5 };
	struct store_counters before = counters(), after;
	struct store_claim claim[2], done[2];
	struct order o;
	int64_t t = clock_realtime_ms();
	uint64_t first = before.created_total + 1;

	order_init(&o);
	create_orders(users, 3, t, first);
	claim[0] = (struct store_claim){ .id = first };
	test_assert(store_claim(s, claim, 1, t + 1, t + 1 + LEASE) == 0 &&
	    claim[0].done && claim[0].attempt == 1);

	/* Complete the claimed one and claim the other two, one commit. */
	done[0] = (struct store_claim){ .id = first, .attempt = 1 };
	done[1] = (struct store_claim){ .id = first + 1, .attempt = 1 };
	claim[0] = (struct store_claim){ .id = first + 1 };
	claim[1] = (struct store_claim){ .id = first + 2 };
	test_assert(store_advance(s, done, 2, claim, 2, t + 2,
	    t + 2 + LEASE) == 0);
	/* Completions go first: first + 1 was not Processing yet. */
	test_assert(done[0].done && !done[1].done);
	test_assert(claim[0].done && claim[1].done);
	get(first, &o);
	test_assert(o.status == ORDER_COMPLETED && o.completed_ms == t + 2);
	get(first + 1, &o);
	test_assert(o.status == ORDER_PROCESSING && o.attempts == 1);
	after = counters();
	test_assert(after.completed_total == before.completed_total + 1);
	test_assert(after.by_status[ORDER_PROCESSING] ==
	    before.by_status[ORDER_PROCESSING] + 2);

	/* Only completions, with a stale attempt: nothing changes. */
	done[0] = (struct store_claim){ .id = first + 1, .attempt = 9 };
	test_assert(store_advance(s, done, 1, claim, 0, t + 3,
	    t + 3 + LEASE) == 0 && !done[0].done);
	/* Nothing at all. */
	test_assert(store_advance(s, done, 0, claim, 0, t, t) == 0);

	/* Finish both, so the store is left with nothing Processing. */
	done[0] = (struct store_claim){ .id = first + 1, .attempt = 1 };
	done[1] = (struct store_claim){ .id = first + 2, .attempt = 1 };
	test_assert(store_advance(s, done, 2, claim, 0, t + 4,
	    t + 4 + LEASE) == 0 && done[0].done && done[1].done);
	after = counters();
	test_assert(after.by_status[ORDER_PROCESSING] ==
	    before.by_status[ORDER_PROCESSING]);
	test_assert(after.completed_total == before.completed_total + 3);
	order_finish(&o);
}

/*
 * Every list of a user and a status (and of a user, and of a status), page
 * by page, against the filter applied to every order read one by one.
 */
static void
check_all_lists(void)
{
	static const uint64_t us[] = { 0, 7, 9, 11, 12345 };
	static const uint32_t limits[] = { 1, 3, 100 };

	load_model();
	for (size_t u = 0; u < sizeof(us) / sizeof(us[0]); u++)
		for (int st = -1; st < ORDER_STATUS_COUNT; st++)
			for (size_t l = 0; l < 3; l++) {
				struct store_filter f = {
					.by_status = st >= 0,
					.status = st >= 0 ?
					    (enum order_status)st :
					    ORDER_PENDING,
					.user_id = us[u],
					.limit = limits[l],
				};

				check_list(f);
				f.after = 17;
				check_list(f);
			}
}

/* Orders of the users 7, 9 and 11 through every kind of state change. */
TEST(test_list_user_status)
{
	uint64_t users[32];
	struct store_claim c[16], d[16];
	struct order o;
	int64_t t = T0 + 100000;

	order_init(&o);
	for (int i = 0; i < 30; i++)
		users[i] = i % 5 == 0 ? 11 : i % 2 == 0 ? 7 : 9;
	/* A fresh environment: every list, both ways, is empty. */
	check_all_lists();
	test_assert(model.n == 0);
	create_orders(users, 30, t, 1);		/* ids 1..30, Pending */
	check_all_lists();
	/* Claim 1..12: Processing. */
	for (int i = 0; i < 12; i++)
		c[i] = (struct store_claim){ .id = 1 + (uint64_t)i };
	test_assert(store_claim(s, c, 12, t + 1, t + 1 + LEASE) == 0);
	check_all_lists();
	/* Complete 1..4. */
	test_assert(store_complete(s, c, 4, t + 2) == 0 && c[3].done);
	check_all_lists();
	/* Release 5..7: Pending again. */
	test_assert(store_release(s, c + 4, 3, t + 3) == 0 && c[6].done);
	check_all_lists();
	/* Cancel 13, 14 and 5 (Pending again); 1 (Completed) is refused. */
	test_assert(store_cancel(s, 13, t + 4, &o) == 0);
	test_assert(store_cancel(s, 14, t + 4, &o) == 0);
	test_assert(store_cancel(s, 5, t + 4, &o) == 0);
	test_assert(store_cancel(s, 1, t + 4, &o) == STORE_ECONFLICT);
	check_all_lists();
	/* 8..10's leases lapse: claimed again, Processing to Processing. */
	for (int i = 0; i < 3; i++)
		d[i] = (struct store_claim){ .id = 8 + (uint64_t)i };
	test_assert(store_claim(s, d, 3, t + 2 * LEASE, t + 3 * LEASE) == 0 &&
	    d[0].done && d[2].done);
	check_all_lists();
	/* One transaction: complete 8..10, claim 15..20. */
	for (int i = 0; i < 6; i++)
		c[i] = (struct store_claim){ .id = 15 + (uint64_t)i };
	test_assert(store_advance(s, d, 3, c, 6, t + 2 * LEASE + 1,
	    t + 3 * LEASE) == 0 && d[2].done && c[5].done);
	check_all_lists();
	check_by_status(12 /* 6, 7, 21..30 */, 8 /* 11, 12, 15..20 */,
	    7 /* 1..4, 8..10 */, 3 /* 5, 13, 14 */);
	order_finish(&o);
}

struct idlist {
	uint64_t ids[MAX_IDS];
	size_t n;
};

static int
idlist_fn(const struct order *o, void *arg)
{
	struct idlist *l = arg;

	test_assert(l->n < MAX_IDS);
	l->ids[l->n++] = o->id;
	return 0;
}

/* Every (user, status) list, whole, in lists[user][status]. */
static void
user_status_lists(struct idlist lists[3][ORDER_STATUS_COUNT])
{
	static const uint64_t us[3] = { 7, 9, 11 };
	uint64_t next;

	for (int u = 0; u < 3; u++)
		for (int st = 0; st < ORDER_STATUS_COUNT; st++) {
			struct store_filter f = { .by_status = true,
				.status = (enum order_status)st,
				.user_id = us[u], .limit = 1000 };

			lists[u][st].n = 0;
			test_assert(store_list(s, &f, idlist_fn, &lists[u][st],
			    &next) == 0 && next == 0);
		}
}

/* Does the environment at path have a database of this name? */
static bool
has_db(const char *path, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	env = plain_env(path, MDB_RDONLY);
	test_assert(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	rc = mdb_dbi_open(txn, name, 0, &dbi);
	test_assert(rc == 0 || rc == MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc == 0;
}

/*
 * Make s's environment a version 1 one, as the release before the
 * by_user_status index wrote it: no such database, schema_version 1.
 */
static void
make_v1(const char *path)
{
	const uint32_t v1 = 1;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	env = plain_env(path, 0);
	test_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	test_assert(mdb_dbi_open(txn, "by_user_status", 0, &dbi) == 0);
	test_assert(mdb_drop(txn, dbi, 1) == 0);
	test_assert(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
	test_assert(!has_db(path, "by_user_status"));
	set_schema(path, &v1, sizeof(v1));
}

/*
 * Make s's environment a version 2 one: with the by_user index (user_id +
 * id, both big-endian, to an empty value) that version 3 dropped.
 */
static void
make_v2(const char *path)
{
	const uint32_t v2 = 2;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	env = plain_env(path, 0);
	test_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	test_assert(mdb_dbi_open(txn, "by_user", MDB_CREATE, &dbi) == 0);
	for (uint64_t id = 1, user = 7; id <= 30; id++) {
		unsigned char key[16];
		MDB_val k = { .mv_size = 16, .mv_data = key };
		MDB_val v = { .mv_size = 0, .mv_data = (void *)"" };

		for (int b = 0; b < 8; b++) {
			key[b] = (unsigned char)(user >> (56 - 8 * b));
			key[8 + b] = (unsigned char)(id >> (56 - 8 * b));
		}
		test_assert(mdb_put(txn, dbi, &k, &v, 0) == 0);
	}
	test_assert(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
	set_schema(path, &v2, sizeof(v2));
}

/* schema_version as stored. */
static uint32_t
stored_schema(const char *path)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { .mv_size = 14, .mv_data = (void *)"schema_version" }, v;
	uint32_t version;

	env = plain_env(path, MDB_RDONLY);
	test_assert(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	test_assert(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
	test_assert(mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 4);
	memcpy(&version, v.mv_data, 4);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return version;
}

/*
 * Turn s's environment into one of schema version (1 or 2) and open it:
 * it is upgraded, with the same (user, status) lists as before.
 */
static void
upgrade_from(unsigned version)
{
	static struct idlist before[3][ORDER_STATUS_COUNT];
	static struct idlist after[3][ORDER_STATUS_COUNT];
	int rc;

	user_status_lists(before);
	store_close(s);
	s = NULL;
	make_v2(up_dir);	/* version 1 had by_user too */
	if (version == 1)
		make_v1(up_dir);
	test_assert(stored_schema(up_dir) == version &&
	    has_db(up_dir, "by_user"));
	rc = store_open(&s, up_dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	test_assert(store_upgraded_from(s) == version);
	user_status_lists(after);
	for (int u = 0; u < 3; u++)
		for (int st = 0; st < ORDER_STATUS_COUNT; st++) {
			test_assert(after[u][st].n == before[u][st].n);
			test_assert(memcmp(after[u][st].ids, before[u][st].ids,
			    before[u][st].n * 8) == 0);
		}
	check_all_lists();
}

/* The upgrade was stored: the next open finds this version, no by_user. */
static void
reopen_upgraded(void)
{
	int rc;

	store_close(s);
	s = NULL;
	test_assert(stored_schema(up_dir) == STORE_SCHEMA_VERSION);
	test_assert(!has_db(up_dir, "by_user"));
	rc = store_open(&s, up_dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	test_assert(store_upgraded_from(s) == 0);
	check_all_lists();
}

/*
 * A requeue (order-ctl's) is the release of the claim as read, lease or
 * not: the worker that still holds that claim finishes nothing, and the
 * next claim completes the order once.
 */
TEST(test_requeue_live_claim)
{
	struct store_counters before, after;
	struct store_claim c = { 0 }, stale;
	struct order o, *op = &o;
	const int64_t t = T0 + 900000;

	order_init(&o);
	set_items(&o, 1, 7);
	o.user_id = 77;
	o.total_cents = 100;
	test_assert(store_create(s, &op, 1, t) == 0 && o.id != 0);
	before = counters();
	c.id = o.id;
	test_assert(store_claim(s, &c, 1, t + 1, t + 1 + LEASE) == 0 && c.done);
	stale = c;
	/* The lease runs for LEASE ms more: released all the same. */
	c.done = false;
	test_assert(store_release(s, &c, 1, t + 2) == 0 && c.done);
	get(o.id, &o);
	test_assert(o.status == ORDER_PENDING && o.attempts == stale.attempt);
	/* The live worker's finish of its claim: a no-op. */
	test_assert(store_complete(s, &stale, 1, t + 3) == 0 && !stale.done);
	get(o.id, &o);
	test_assert(o.status == ORDER_PENDING);
	c = (struct store_claim){ .id = o.id };
	test_assert(store_claim(s, &c, 1, t + 4, t + 4 + LEASE) == 0 &&
	    c.done && c.attempt == stale.attempt + 1);
	/* Still a no-op under the new claim, which completes it. */
	stale.done = true;
	test_assert(store_complete(s, &stale, 1, t + 5) == 0 && !stale.done);
	test_assert(store_complete(s, &c, 1, t + 6) == 0 && c.done);
	after = counters();
	test_assert(after.completed_total == before.completed_total + 1 &&
	    after.released_total == before.released_total + 1 &&
	    after.by_status[ORDER_COMPLETED] ==
	    before.by_status[ORDER_COMPLETED] + 1);
	order_finish(&o);
	load_model();
}

static int
first_id(const struct order *o, void *arg)
{
	*(uint64_t *)arg = o->id;
	return 0;
}

/* The first order of a status, as a list by status would give it. */
static void
check_oldest(enum order_status st)
{
	struct store_filter f = { .by_status = true, .status = st, .limit = 1 };
	struct order o;
	uint64_t first = 0, next;
	int rc;

	order_init(&o);
	test_assert(store_list(s, &f, first_id, &first, &next) == 0);
	rc = store_oldest(s, st, &o);
	if (first == 0)
		test_assert_msg(rc == STORE_ENOTFOUND, "store_oldest %s: %s",
		    order_status_name(st), store_strerror(rc));
	else
		test_assert_msg(rc == 0 && o.id == first && o.status == st,
		    "store_oldest %s: %s, ORD%llu, want ORD%llu",
		    order_status_name(st), store_strerror(rc),
		    (unsigned long long)o.id, (unsigned long long)first);
	order_finish(&o);
}

/*
 * order-ctl's reads: the oldest order of each status; a read-only open
 * (the same counters and orders, no write); a backup, refused over an
 * existing file unless replace, that opens as an environment of its own
 * with the same orders.
 */
TEST(test_ctl_reads)
{
	struct store_counters before = counters(), after;
	char backup[300], tmpname[320], copy_dir[256], copy[300], data[320];
	struct store *ro;
	struct order o;
	int rc;

	for (int st = 0; st < ORDER_STATUS_COUNT; st++)
		check_oldest((enum order_status)st);
	order_init(&o);

	store_close(s);
	s = NULL;
	rc = store_open(&ro, dir, 0, STORE_RDONLY);
	test_assert_msg(rc == 0, "store_open read only: %s",
	    store_strerror(rc));
	s = ro;
	after = counters();
	test_assert(memcmp(&before, &after, sizeof(before)) == 0);
	for (int st = 0; st < ORDER_STATUS_COUNT; st++)
		check_oldest((enum order_status)st);
	get(1, &o);
	rc = store_cancel(s, 1, T0, &o);
	test_assert_msg(rc != 0 && rc != STORE_ECONFLICT, "cancel read only: "
	    "%s", store_strerror(rc));

	snprintf(backup, sizeof(backup), "%s/backup.mdb", dir);
	test_assert(store_backup(s, backup, false) == 0);
	test_assert(store_backup(s, backup, false) == EEXIST);
	test_assert(store_backup(s, backup, true) == 0);
	snprintf(tmpname, sizeof(tmpname), "%s.tmp", backup);
	test_assert(access(tmpname, F_OK) != 0);
	store_close(s);

	test_mkdtemp(copy_dir);
	snprintf(copy, sizeof(copy), "%s/data.mdb", copy_dir);
	test_assert(rename(backup, copy) == 0);
	rc = store_open(&s, copy_dir, 0, STORE_RDONLY);
	test_assert_msg(rc == 0, "open the backup: %s", store_strerror(rc));
	after = counters();
	test_assert(memcmp(&before, &after, sizeof(before)) == 0);
	check_all_lists();
	store_close(s);
	test_assert(test_rmtree(copy_dir) == 0);

	/* Nothing there: refused, nothing made. */
	snprintf(copy, sizeof(copy), "%s/none", dir);
	test_assert(mkdir(copy, 0700) == 0);
	test_assert(store_open(&s, copy, 0, STORE_RDONLY) != 0);
	snprintf(data, sizeof(data), "%s/data.mdb", copy);
	test_assert(access(data, F_OK) != 0);
	test_assert(test_rmtree(copy) == 0);

	rc = store_open(&s, dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	order_finish(&o);
}

/* A version 1 environment is upgraded at open: the same lists after. */
TEST(test_upgrade)
{
	struct store_claim c[2] = { { .id = 21 }, { .id = 22 } };

	upgrade_from(1);
	/* The upgraded index keeps up with new changes. */
	test_assert(store_claim(s, c, 2, T0 + 200000, T0 + 200000 + LEASE) ==
	    0 && c[0].done && c[1].done);
	check_all_lists();
	reopen_upgraded();
}

/* A version 2 environment loses by_user at open; the lists stay. */
TEST(test_upgrade_v2)
{
	upgrade_from(2);
	reopen_upgraded();
}

/*
 * A version 3 environment (the last before the journal) is brought up
 * at open and nothing else changes: the same lists, no journal_lsn yet.
 */
TEST(test_upgrade_v3)
{
	const uint32_t v3 = 3;
	uint64_t lsn, next_id;
	int rc;

	store_close(s);
	s = NULL;
	set_schema(up_dir, &v3, sizeof(v3));
	test_assert(stored_schema(up_dir) == 3);
	/* Read only, an older schema is refused and left as it is. */
	rc = store_open(&s, up_dir, 0, STORE_RDONLY);
	test_assert_msg(rc == STORE_EOLDSCHEMA, "read only: %s",
	    store_strerror(rc));
	test_assert(stored_schema(up_dir) == 3);
	rc = store_open(&s, up_dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	test_assert(store_upgraded_from(s) == 3);
	test_assert(store_journal_state(s, &lsn, &next_id) == 0 && lsn == 0);
	reopen_upgraded();
}

/* One new order in t: its id, or 0 and *rc the error. */
static uint64_t
create_in(struct store *t, int *rc)
{
	struct order o, *p = &o;
	uint64_t id;

	order_init(&o);
	o.user_id = 5;
	o.total_cents = 100;
	test_assert(order_reserve_items(&o, 1) == 0);
	o.items[0] = 1;
	o.n_items = 1;
	*rc = store_create(t, &p, 1, 1000);
	id = *rc == 0 ? o.id : 0;
	order_finish(&o);
	return id;
}

/*
 * Instances: a new environment is instance 0's; one that never handed out
 * an id is adopted by another instance (order-api's claim), not by a mere
 * check (order-worker's); once it holds orders it is refused to every
 * other instance; and an instance's last id is its last.
 */
TEST(test_instance)
{
	char idir[256];
	const uint64_t last = order_instance_last_id(7);
	struct store *t = NULL;
	struct store_counters c;
	unsigned owner = 1000;
	int rc;

	test_assert(order_instance_first_id(0) == 1);
	test_assert(order_instance_first_id(1) == UINT64_C(10000000000001));
	test_assert(order_id_instance(UINT64_C(9999999999999)) == 0);
	test_assert(order_id_instance(UINT64_C(10000000000000)) == 1);
	test_assert(order_id_instance(UINT64_C(120000000000042)) == 12);
	/* Every id of every instance is below 2^53. */
	test_assert(order_instance_last_id(ORDER_INSTANCE_MAX) <
	    (UINT64_C(1) << 53));

	test_mkdtemp(idir);
	test_assert(store_open(&t, idir, MAP_SIZE, 0) == 0);
	test_assert(store_instance(t) == 0);
	/* A check leaves a fresh environment as it is. */
	test_assert(store_instance_claim(t, 3, false, &owner) == 0);
	test_assert(store_instance(t) == 0);
	test_assert(store_instance_claim(t, 3, true, &owner) == 0);
	test_assert(store_instance(t) == 3);
	/* Still fresh: another instance may adopt it yet. */
	test_assert(store_instance_claim(t, 7, true, &owner) == 0);
	test_assert(store_instance(t) == 7);
	test_assert(create_in(t, &rc) == order_instance_first_id(7));
	rc = store_instance_claim(t, 0, true, &owner);
	test_assert_msg(rc == STORE_EINSTANCE && owner == 7, "claim: %s",
	    store_strerror(rc));
	test_assert(store_instance_claim(t, 2, false, &owner) ==
	    STORE_EINSTANCE);
	test_assert(store_instance_claim(t, 7, false, &owner) == 0);
	test_assert(store_instance_claim(t, ORDER_INSTANCE_MAX + 1, true,
	    &owner) == EINVAL);
	test_assert(store_counters(t, &c) == 0 &&
	    c.next_id == order_instance_first_id(7) + 1);
	/* The number survives a reopen, read-only too. */
	store_close(t);
	test_assert(store_open(&t, idir, 0, STORE_RDONLY) == 0);
	test_assert(store_instance(t) == 7);
	store_close(t);

	/* The last id is handed out; the one after is not anybody's. */
	uint64_t next = last;
	set_meta(idir, "next_id", &next, sizeof(next));
	test_assert(store_open(&t, idir, MAP_SIZE, 0) == 0);
	test_assert(create_in(t, &rc) == last);
	test_assert(create_in(t, &rc) == 0);
	test_assert_msg(rc == STORE_ENOIDS, "create: %s", store_strerror(rc));
	test_assert(store_counters(t, &c) == 0 && c.next_id == last + 1 &&
	    c.created_total == 2);
	store_close(t);

	/* A number no build knows is a damaged environment. */
	uint64_t bad = ORDER_INSTANCE_MAX + 1;
	set_meta(idir, "instance", &bad, sizeof(bad));
	t = NULL;
	rc = store_open(&t, idir, MAP_SIZE, 0);
	test_assert_msg(rc == STORE_ECORRUPT, "open: %s", store_strerror(rc));
	test_assert(test_rmtree(idir) == 0);
}

/*
 * A version 4 environment (the last before instances) has no meta
 * instance: it is instance 0's, as its ids say.
 */
TEST(test_upgrade_v4)
{
	const uint32_t v4 = 4;
	int rc;

	store_close(s);
	s = NULL;
	set_schema(up_dir, &v4, sizeof(v4));
	set_meta(up_dir, "instance", NULL, 0);
	rc = store_open(&s, up_dir, 0, STORE_RDONLY);
	test_assert_msg(rc == STORE_EOLDSCHEMA, "read only: %s",
	    store_strerror(rc));
	rc = store_open(&s, up_dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	test_assert(store_upgraded_from(s) == 4);
	test_assert(store_instance(s) == 0);
	reopen_upgraded();
}

int
main(void)
{
	int rc;

	test_mkdtemp(dir);
	test_cleanup = cleanup_all;
	rc = store_open(&s, dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	RUN(test_create_get);
	RUN(test_claim_complete);
	RUN(test_release);
	RUN(test_cancel);
	RUN(test_batches);
	RUN(test_unfinished_peek);
	RUN(test_list);
	RUN(test_heartbeat_usage);
	RUN(test_threads);
	RUN(test_reopen);
	RUN(test_schema);
	RUN(test_map_full);
	RUN(test_idempotency);
	RUN(test_advance);
	RUN(test_requeue_live_claim);
	RUN(test_ctl_reads);
	RUN(test_instance);
	store_close(s);
	test_assert(test_rmtree(dir) == 0);
	/* A fresh environment for the index of users' orders by status. */
	test_mkdtemp(up_dir);
	rc = store_open(&s, up_dir, MAP_SIZE, 0);
	test_assert_msg(rc == 0, "store_open: %s", store_strerror(rc));
	RUN(test_list_user_status);
	RUN(test_upgrade);
	RUN(test_upgrade_v2);
	RUN(test_upgrade_v3);
	RUN(test_upgrade_v4);
	store_close(s);
	test_assert(test_rmtree(up_dir) == 0);
	return 0;
}
