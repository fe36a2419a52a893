/*
 * check.c: order-ctl's consistency checker of an order-processing LMDB
 * environment (`order-ctl check`), which the fault and power-loss tests
 * run on what the daemons leave.
 *
 * It opens the environment read-only and reads it in one read transaction,
 * so it may run while both daemons do. It reads LMDB itself, apart from
 * the store's code (only the status enum comes from order.h): the layout
 * below is restated here on purpose, so that a bug in the store's encoding
 * or bookkeeping is not shared by its checker. This is the one file
 * outside common/store*.c that may call LMDB (scripts/lint.sh knows it).
 * It mirrors common/store_record.c (the order record and the index keys),
 * common/store_idem.c (idem, idem_time) and common/store.c (meta, the
 * counters' slots, the schema version): a change of the format there is
 * a change here (the steps are in common/store.h, "Changing the format").
 *
 *   meta       "schema_version" u32 (5), "next_id" u64, "instance" u64
 *              (0 .. 899): the environment's ids are instance * 10^13 + 1
 *              .. next_id - 1,
 *              "counters" u64[10] host order: by status[4], created_total,
 *              completed_total, processing_ms_sum, lease_expiries_total,
 *              released_total, unused;
 *              "processing_hist" u64[11] (absent: zeros),
 *              "journal_lsn" u64 (absent: 0): how far order-api's journal
 *              is applied (orders past it are in the journal only)
 *   orders     id (native size_t, MDB_INTEGERKEY) -> 64-byte little-endian
 *              header + u64 items[n_items]
 *   by_status  status u8 + id BE u64 -> Pending: created_ms,
 *              Processing: lease_until_ms (i64, host order), else empty
 *   by_user_status  user_id BE u64 + status u8 + id BE u64 -> empty
 *   idem       key -> id u64, created_ms i64, SHA-256 (32 bytes)
 *   idem_time  created_ms BE i64 + key -> empty
 *
 * Checks: every record decodes (version 1, known status, reserved bytes 0,
 * size 64 + 8 * n_items) and its fields agree with its status; the
 * counters equal a recount (orders by status, created_total = number of
 * orders, completed_total = number Completed, processing_ms_sum and each
 * histogram bucket recounted from created/completed times, the
 * histogram's sum = completed_total); ids are the instance's first id ..
 * next_id - 1 with no gap, next_id at most one past its last id;
 * every order has exactly one by_status entry (its status, with the due
 * time for Pending and Processing) and one by_user_status entry (its user
 * and status), and no index entry is left over, nor the by_user database
 * that schema 3 dropped; every idem entry names an existing order created
 * at the key's time and has its idem_time entry, and every idem_time entry
 * has its idem key. The expectations of struct check_request add: the
 * number of orders, orders that must be Completed, orders that must exist
 * (with a status, if named).
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "order.h"

#define RECORD_VERSION 1
#define RECORD_HEADER 64
#define STATUS_KEY_LEN 9
#define USER_STATUS_KEY_LEN 17
#define SCHEMA_VERSION 5
#define INSTANCE_SPAN UINT64_C(10000000000000)
#define INSTANCE_MAX 899
#define DIGEST_LEN 32
#define IDEM_VALUE_LEN (8 + 8 + DIGEST_LEN)
#define CNT_SLOTS 10
#define HIST_BUCKETS 11
#define MAX_DBS 8
#define MAX_READERS 1024

enum {
	CNT_STATUS = 0,
	CNT_CREATED = 4,
	CNT_COMPLETED,
	CNT_PROCESSING_MS,
	CNT_LEASE_EXPIRIES,
	CNT_RELEASED,
	CNT_UNUSED,
};

/* Upper bounds (ms) of the processing-time buckets; the last takes the rest. */
static const int64_t hist_bounds[HIST_BUCKETS - 1] =
	{ 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000 };

static const char *const status_names[ORDER_STATUS_COUNT] = {
	[ORDER_PENDING] = "Pending",
	[ORDER_PROCESSING] = "Processing",
	[ORDER_COMPLETED] = "Completed",
	[ORDER_CANCELLED] = "Cancelled",
};

/* One check at a time: where report() writes, and what it counted. */
static FILE *report_out;
static unsigned long long discrepancies;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
report(const char *fmt, ...)
{
	va_list ap;

	discrepancies++;
	fputs("check: ", report_out);
	va_start(ap, fmt);
	vfprintf(report_out, fmt, ap);
	va_end(ap);
	fputc('\n', report_out);
}

static const char *
status_name(unsigned s)
{
	return s < ORDER_STATUS_COUNT ? status_names[s] : "?";
}

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t
host64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static MDB_val
mkval(const void *data, size_t size)
{
	return (MDB_val){ .mv_size = size, .mv_data = (void *)data };
}

struct head {
	unsigned version, status;
	unsigned reserved16;
	uint32_t attempts;
	uint64_t user_id;
	int64_t total_cents, created_ms, updated_ms, completed_ms, lease_until_ms;
	uint32_t n_items, reserved32;
};

static void
head_decode(const unsigned char *p, struct head *h)
{
	h->version = p[0];
	h->status = p[1];
	h->reserved16 = (unsigned)p[2] | (unsigned)p[3] << 8;
	h->attempts = le32(p + 4);
	h->user_id = le64(p + 8);
	h->total_cents = (int64_t)le64(p + 16);
	h->created_ms = (int64_t)le64(p + 24);
	h->updated_ms = (int64_t)le64(p + 32);
	h->completed_ms = (int64_t)le64(p + 40);
	h->lease_until_ms = (int64_t)le64(p + 48);
	h->n_items = le32(p + 56);
	h->reserved32 = le32(p + 60);
}

struct env {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, orders, by_status, by_user_status, idem,
	    idem_time;
};

/* Set by --expect-completed-ids (ids that must be Completed) and by
 * --expect-ids (ids that must exist, each with a status or ANY_STATUS),
 * both into one list. */
#define ANY_STATUS (-1)

struct expect {
	uint64_t id;
	int status;
};

struct idlist {
	struct expect *v;
	size_t n, cap;
};

static int
cmp_expect(const void *a, const void *b)
{
	const struct expect *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->status > y->status) - (x->status < y->status);
}

/* "Pending" and so on: the status, or -1. */
static int
status_parse(const char *s)
{
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

/*
 * Add one id a line to l, each expected in status; with ANY_STATUS, a
 * status name may follow the id and is expected instead.
 */
static int
read_ids(const char *path, struct idlist *l, int status_of_all)
{
	bool statuses = status_of_all == ANY_STATUS;
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned long lineno = 0;

	if (f == NULL) {
		fprintf(stderr, "order-ctl: check: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = line, *end;
		unsigned long long v;
		size_t len;
		int status = status_of_all;

		lineno++;
		len = strcspn(s, "\r\n");
		s[len] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			continue;
		if (strncmp(s, "ORD", 3) == 0)
			s += 3;
		errno = 0;
		v = strtoull(s, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (statuses && *end != '\0') {
			size_t n = strcspn(end, " \t");

			if (end[n + strspn(end + n, " \t")] == '\0') {
				end[n] = '\0';
				status = status_parse(end);
				if (status >= 0)
					end += n;
			}
		}
		if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' ||
		    v == 0) {
			fprintf(stderr, "order-ctl: check: %s:%lu: not an order id%s: "
			    "%s\n", path, lineno,
			    statuses ? " (and a status)" : "", line);
			fclose(f);
			return -1;
		}
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 1024;
			struct expect *v2 = realloc(l->v, cap * sizeof(*v2));

			if (v2 == NULL) {
				fclose(f);
				return -1;
			}
			l->v = v2;
			l->cap = cap;
		}
		l->v[l->n++] = (struct expect){ .id = v, .status = status };
	}
	fclose(f);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_expect);
	return 0;
}

static int
open_env(struct env *e, const char *dir)
{
	MDB_dbi by_user;
	unsigned flags;
	int rc;

	if ((rc = mdb_env_create(&e->env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxreaders(e->env, MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_maxdbs(e->env, MAX_DBS)) != 0 ||
	    /* 0: the size recorded in the environment */
	    (rc = mdb_env_set_mapsize(e->env, 0)) != 0 ||
	    (rc = mdb_env_open(e->env, dir, MDB_RDONLY, 0)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &e->txn)) != 0)
		return rc;
	static const struct {
		const char *name;
		size_t off;
		unsigned flags;
	} dbs[] = {
		{ "meta", offsetof(struct env, meta), 0 },
		{ "orders", offsetof(struct env, orders), MDB_INTEGERKEY },
		{ "by_status", offsetof(struct env, by_status), 0 },
		{ "by_user_status", offsetof(struct env, by_user_status), 0 },
		{ "idem", offsetof(struct env, idem), 0 },
		{ "idem_time", offsetof(struct env, idem_time), 0 },
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)e + dbs[i].off);

		rc = mdb_dbi_open(e->txn, dbs[i].name, dbs[i].flags, dbi);
		if (rc != 0) {
			fprintf(stderr, "order-ctl: check: database %s: %s\n",
			    dbs[i].name, mdb_strerror(rc));
			return rc;
		}
		if ((rc = mdb_dbi_flags(e->txn, *dbi, &flags)) != 0)
			return rc;
		if ((flags & ~(unsigned)MDB_INTEGERKEY) != 0 ||
		    (flags & MDB_INTEGERKEY) != dbs[i].flags)
			report("database %s has flags 0x%x, expected 0x%x",
			    dbs[i].name, flags, dbs[i].flags);
	}
	/* Schema 3 has no by_user: an upgrade that kept it went wrong. */
	if (mdb_dbi_open(e->txn, "by_user", 0, &by_user) == 0)
		report("database by_user is left over: schema %d has none",
		    SCHEMA_VERSION);
	return 0;
}

struct meta {
	bool have_next_id, have_counters, have_instance;
	uint64_t next_id, instance;
	uint64_t cnt[CNT_SLOTS];
	uint64_t hist[HIST_BUCKETS];
};

static int
meta_get(struct env *e, const char *key, MDB_val *v)
{
	MDB_val k = mkval(key, strlen(key));

	return mdb_get(e->txn, e->meta, &k, v);
}

static int
check_meta(struct env *e, struct meta *m)
{
	MDB_val v;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = meta_get(e, "schema_version", &v);
	if (rc == 0 && v.mv_size == 4) {
		uint32_t version;

		memcpy(&version, v.mv_data, 4);
		if (version != SCHEMA_VERSION)
			report("meta schema_version is %" PRIu32 ", expected %d",
			    version, SCHEMA_VERSION);
	} else if (rc == 0) {
		report("meta schema_version has %zu bytes, expected 4",
		    v.mv_size);
	} else if (rc == MDB_NOTFOUND) {
		report("meta schema_version is missing");
	} else {
		return rc;
	}

	rc = meta_get(e, "next_id", &v);
	if (rc == 0 && v.mv_size == 8) {
		m->have_next_id = true;
		m->next_id = host64(v.mv_data);
		if (m->next_id == 0)
			report("meta next_id is 0 (ids start at 1)");
	} else if (rc == 0) {
		report("meta next_id has %zu bytes, expected 8", v.mv_size);
	} else if (rc == MDB_NOTFOUND) {
		report("meta next_id is missing");
	} else {
		return rc;
	}

	rc = meta_get(e, "instance", &v);
	if (rc == 0 && v.mv_size == 8) {
		m->instance = host64(v.mv_data);
		m->have_instance = m->instance <= INSTANCE_MAX;
		if (!m->have_instance)
			report("meta instance is %" PRIu64 ", above %d",
			    m->instance, INSTANCE_MAX);
	} else if (rc == 0) {
		report("meta instance has %zu bytes, expected 8", v.mv_size);
	} else if (rc == MDB_NOTFOUND) {
		report("meta instance is missing");
	} else {
		return rc;
	}

	rc = meta_get(e, "counters", &v);
	if (rc == 0 && v.mv_size == sizeof(m->cnt)) {
		m->have_counters = true;
		memcpy(m->cnt, v.mv_data, sizeof(m->cnt));
		if (m->cnt[CNT_UNUSED] != 0)
			report("counters slot %d (unused) is %" PRIu64
			    ", expected 0", CNT_UNUSED, m->cnt[CNT_UNUSED]);
	} else if (rc == 0) {
		report("meta counters has %zu bytes, expected %zu", v.mv_size,
		    sizeof(m->cnt));
	} else if (rc == MDB_NOTFOUND) {
		report("meta counters is missing");
	} else {
		return rc;
	}

	rc = meta_get(e, "processing_hist", &v);
	if (rc == 0 && v.mv_size == sizeof(m->hist))
		memcpy(m->hist, v.mv_data, sizeof(m->hist));
	else if (rc == 0)
		report("meta processing_hist has %zu bytes, expected %zu",
		    v.mv_size, sizeof(m->hist));
	else if (rc != MDB_NOTFOUND)
		return rc;

	rc = meta_get(e, "heartbeat", &v);
	if (rc == 0 && v.mv_size != 8)
		report("meta heartbeat has %zu bytes, expected 8", v.mv_size);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;

	rc = meta_get(e, "journal_lsn", &v);
	if (rc == 0 && v.mv_size != 8)
		report("meta journal_lsn has %zu bytes, expected 8", v.mv_size);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	return 0;
}

struct recount {
	uint64_t orders;
	uint64_t by_status[ORDER_STATUS_COUNT];
	uint64_t hist[HIST_BUCKETS];
	uint64_t processing_ms_sum;
	uint64_t min_id, max_id;
	uint64_t bad_records;
	uint64_t by_status_entries, by_user_status_entries;
	uint64_t idem_entries;
	uint64_t idem_time_entries;
	uint64_t expected_missing, expected_wrong_status;
};

/* How order_head found an order. */
enum presence { ABSENT, PRESENT, UNDECODABLE };

/* Look an order up: *p says whether it exists; returns 0 or an LMDB error. */
static int
order_head(struct env *e, uint64_t id, struct head *h, enum presence *p)
{
	size_t key = (size_t)id;
	MDB_val k = mkval(&key, sizeof(key)), v;
	int rc;

	*p = ABSENT;
	rc = mdb_get(e->txn, e->orders, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size < RECORD_HEADER) {
		*p = UNDECODABLE;
		return 0;
	}
	head_decode(v.mv_data, h);
	*p = h->status < ORDER_STATUS_COUNT ? PRESENT : UNDECODABLE;
	return 0;
}

static void
check_record(uint64_t id, const struct head *h, size_t size)
{
	if (h->version != RECORD_VERSION)
		report("ORD%" PRIu64 ": record version %u, expected %d", id,
		    h->version, RECORD_VERSION);
	if (size != RECORD_HEADER + (size_t)h->n_items * 8)
		report("ORD%" PRIu64 ": record of %zu bytes for %" PRIu32
		    " items, expected %zu", id, size, h->n_items,
		    RECORD_HEADER + (size_t)h->n_items * 8);
	if (h->n_items > ORDER_MAX_ITEMS)
		report("ORD%" PRIu64 ": %" PRIu32 " items, more than %d", id,
		    h->n_items, ORDER_MAX_ITEMS);
	if (h->reserved16 != 0 || h->reserved32 != 0)
		report("ORD%" PRIu64 ": reserved header bytes not 0", id);
	if (h->user_id == 0)
		report("ORD%" PRIu64 ": user_id 0", id);
	if (h->total_cents < 0)
		report("ORD%" PRIu64 ": negative total %" PRId64 " cents", id,
		    h->total_cents);
	if (h->created_ms <= 0)
		report("ORD%" PRIu64 ": created_ms %" PRId64, id, h->created_ms);
	if (h->updated_ms < h->created_ms)
		report("ORD%" PRIu64 ": updated_ms %" PRId64
		    " before created_ms %" PRId64, id, h->updated_ms,
		    h->created_ms);
	switch (h->status) {
	case ORDER_PENDING:
	case ORDER_CANCELLED:
		if (h->lease_until_ms != 0)
			report("ORD%" PRIu64 ": %s with lease_until_ms %" PRId64,
			    id, status_name(h->status), h->lease_until_ms);
		if (h->completed_ms != 0)
			report("ORD%" PRIu64 ": %s with completed_ms %" PRId64,
			    id, status_name(h->status), h->completed_ms);
		break;
	case ORDER_PROCESSING:
		if (h->attempts == 0)
			report("ORD%" PRIu64 ": Processing with 0 attempts", id);
		if (h->lease_until_ms <= 0)
			report("ORD%" PRIu64 ": Processing with lease_until_ms "
			    "%" PRId64, id, h->lease_until_ms);
		if (h->completed_ms != 0)
			report("ORD%" PRIu64 ": Processing with completed_ms "
			    "%" PRId64, id, h->completed_ms);
		break;
	case ORDER_COMPLETED:
		if (h->attempts == 0)
			report("ORD%" PRIu64 ": Completed with 0 attempts", id);
		if (h->completed_ms <= 0 || h->completed_ms < h->created_ms)
			report("ORD%" PRIu64 ": Completed with completed_ms %"
			    PRId64 " (created_ms %" PRId64 ")", id,
			    h->completed_ms, h->created_ms);
		if (h->lease_until_ms != 0)
			report("ORD%" PRIu64 ": Completed with lease_until_ms %"
			    PRId64, id, h->lease_until_ms);
		break;
	default:
		report("ORD%" PRIu64 ": unknown status %u", id, h->status);
	}
}

/* The order's by_status and by_user_status entries. */
static int
check_order_indexes(struct env *e, uint64_t id, const struct head *h)
{
	unsigned char skey[STATUS_KEY_LEN];
	unsigned char uskey[USER_STATUS_KEY_LEN];
	MDB_val k, v;
	int rc;

	skey[0] = (unsigned char)h->status;
	put_be64(skey + 1, id);
	k = mkval(skey, sizeof(skey));
	rc = mdb_get(e->txn, e->by_status, &k, &v);
	if (rc == MDB_NOTFOUND) {
		report("ORD%" PRIu64 ": no by_status entry for its status %s",
		    id, status_name(h->status));
	} else if (rc != 0) {
		return rc;
	} else if (h->status == ORDER_PENDING ||
	    h->status == ORDER_PROCESSING) {
		int64_t want = h->status == ORDER_PENDING ? h->created_ms
		    : h->lease_until_ms;

		if (v.mv_size != 8)
			report("ORD%" PRIu64 ": by_status %s value has %zu "
			    "bytes, expected 8", id, status_name(h->status),
			    v.mv_size);
		else if ((int64_t)host64(v.mv_data) != want)
			report("ORD%" PRIu64 ": by_status %s value %" PRId64
			    ", expected %s %" PRId64, id,
			    status_name(h->status),
			    (int64_t)host64(v.mv_data),
			    h->status == ORDER_PENDING ? "created_ms"
			    : "lease_until_ms", want);
	} else if (v.mv_size != 0) {
		report("ORD%" PRIu64 ": by_status %s value has %zu bytes, "
		    "expected none", id, status_name(h->status), v.mv_size);
	}

	put_be64(uskey, h->user_id);
	uskey[8] = (unsigned char)h->status;
	put_be64(uskey + 9, id);
	k = mkval(uskey, sizeof(uskey));
	rc = mdb_get(e->txn, e->by_user_status, &k, &v);
	if (rc == MDB_NOTFOUND)
		report("ORD%" PRIu64 ": no by_user_status entry for user %"
		    PRIu64 " and its status %s", id, h->user_id,
		    status_name(h->status));
	else if (rc != 0)
		return rc;
	else if (v.mv_size != 0)
		report("ORD%" PRIu64 ": by_user_status value has %zu bytes, "
		    "expected none", id, v.mv_size);
	return 0;
}

static void
hist_add(struct recount *r, const struct head *h)
{
	int64_t took = h->completed_ms > h->created_ms
	    ? h->completed_ms - h->created_ms : 0;
	size_t b = 0;

	while (b < HIST_BUCKETS - 1 && took > hist_bounds[b])
		b++;
	r->hist[b]++;
	r->processing_ms_sum += (uint64_t)took;
}

static int
walk_orders(struct env *e, struct recount *r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t prev = 0;
	int rc;

	if ((rc = mdb_cursor_open(e->txn, e->orders, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct head h;
		size_t native;
		uint64_t id;

		r->orders++;
		if (k.mv_size != sizeof(size_t)) {
			report("orders: key of %zu bytes, expected %zu",
			    k.mv_size, sizeof(size_t));
			r->bad_records++;
			continue;
		}
		memcpy(&native, k.mv_data, sizeof(native));
		id = native;
		if (id == 0)
			report("orders: an order with id 0");
		if (id <= prev)
			report("orders: ORD%" PRIu64 " after ORD%" PRIu64
			    " (keys out of order)", id, prev);
		prev = id;
		if (r->min_id == 0 || id < r->min_id)
			r->min_id = id;
		if (id > r->max_id)
			r->max_id = id;
		if (v.mv_size < RECORD_HEADER) {
			report("ORD%" PRIu64 ": record of %zu bytes, shorter "
			    "than its %d-byte header", id, v.mv_size,
			    RECORD_HEADER);
			r->bad_records++;
			continue;
		}
		head_decode(v.mv_data, &h);
		check_record(id, &h, v.mv_size);
		if (h.status >= ORDER_STATUS_COUNT) {
			r->bad_records++;
			continue;
		}
		r->by_status[h.status]++;
		if (h.status == ORDER_COMPLETED)
			hist_add(r, &h);
		if ((rc = check_order_indexes(e, id, &h)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Every by_status and by_user_status entry belongs to an order
 * that has it.
 */
static int
walk_indexes(struct env *e, struct recount *r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(e->txn, e->by_status, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *p = k.mv_data;
		struct head h;
		uint64_t id;
		enum presence found;

		r->by_status_entries++;
		if (k.mv_size != STATUS_KEY_LEN) {
			report("by_status: key of %zu bytes, expected %d",
			    k.mv_size, STATUS_KEY_LEN);
			continue;
		}
		id = be64(p + 1);
		if (p[0] >= ORDER_STATUS_COUNT) {
			report("by_status: entry for ORD%" PRIu64 " with unknown "
			    "status %u", id, p[0]);
			continue;
		}
		if ((rc = order_head(e, id, &h, &found)) != 0)
			break;
		if (found == UNDECODABLE)	/* reported by walk_orders */
			continue;
		if (found == ABSENT)
			report("by_status: %s entry for ORD%" PRIu64 ", which "
			    "does not exist", status_name(p[0]), id);
		else if (h.status != p[0])
			report("by_status: extra %s entry for ORD%" PRIu64
			    ", which is %s", status_name(p[0]), id,
			    status_name(h.status));
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	if ((rc = mdb_cursor_open(e->txn, e->by_user_status, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *p = k.mv_data;
		struct head h;
		uint64_t user, id;
		enum presence found;

		r->by_user_status_entries++;
		if (k.mv_size != USER_STATUS_KEY_LEN) {
			report("by_user_status: key of %zu bytes, expected %d",
			    k.mv_size, USER_STATUS_KEY_LEN);
			continue;
		}
		user = be64(p);
		id = be64(p + 9);
		if (p[8] >= ORDER_STATUS_COUNT) {
			report("by_user_status: entry (user %" PRIu64 ", ORD%"
			    PRIu64 ") with unknown status %u", user, id, p[8]);
			continue;
		}
		if ((rc = order_head(e, id, &h, &found)) != 0)
			break;
		if (found == UNDECODABLE)
			continue;
		if (found == ABSENT)
			report("by_user_status: entry (user %" PRIu64 ", %s, ORD%"
			    PRIu64 ") for an order that does not exist", user,
			    status_name(p[8]), id);
		else if (h.user_id != user || h.status != p[8])
			report("by_user_status: extra entry (user %" PRIu64
			    ", %s, ORD%" PRIu64 "): the order is user %" PRIu64
			    ", %s", user, status_name(p[8]), id, h.user_id,
			    status_name(h.status));
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static void
print_key(const char *what, const MDB_val *k, size_t skip)
{
	const unsigned char *p = (const unsigned char *)k->mv_data + skip;
	size_t n = k->mv_size > skip ? k->mv_size - skip : 0;
	char buf[4 * 255 + 1];
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < sizeof(buf); i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			buf[o++] = (char)p[i];
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x",
			    p[i]);
	}
	buf[o] = '\0';
	report("%s (key \"%s\")", what, buf);
}

static int
walk_idem(struct env *e, struct recount *r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(e->txn, e->idem, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		unsigned char tkey[8 + 512];
		MDB_val tk, tv;
		struct head h;
		uint64_t id;
		int64_t created;
		enum presence found;
		char what[160];

		r->idem_entries++;
		if (k.mv_size == 0 || k.mv_size > ORDER_IDEM_KEY_MAX)
			print_key("idem: key of a bad length", &k, 0);
		if (v.mv_size != IDEM_VALUE_LEN) {
			snprintf(what, sizeof(what), "idem: value of %zu bytes, "
			    "expected %d", v.mv_size, IDEM_VALUE_LEN);
			print_key(what, &k, 0);
			continue;
		}
		id = host64(v.mv_data);
		created = (int64_t)host64((const char *)v.mv_data + 8);
		if ((rc = order_head(e, id, &h, &found)) != 0)
			break;
		if (found == ABSENT) {
			snprintf(what, sizeof(what), "idem: entry names ORD%"
			    PRIu64 ", which does not exist", id);
			print_key(what, &k, 0);
		} else if (found == PRESENT && h.created_ms != created) {
			snprintf(what, sizeof(what), "idem: entry for ORD%"
			    PRIu64 " made at %" PRId64 ", the order at %"
			    PRId64, id, created, h.created_ms);
			print_key(what, &k, 0);
		}
		if (k.mv_size <= sizeof(tkey) - 8) {
			put_be64(tkey, (uint64_t)created);
			memcpy(tkey + 8, k.mv_data, k.mv_size);
			tk = mkval(tkey, 8 + k.mv_size);
			rc = mdb_get(e->txn, e->idem_time, &tk, &tv);
			if (rc == MDB_NOTFOUND) {
				snprintf(what, sizeof(what), "idem: entry for ORD%"
				    PRIu64 " has no idem_time entry", id);
				print_key(what, &k, 0);
			} else if (rc != 0) {
				break;
			}
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;

	if ((rc = mdb_cursor_open(e->txn, e->idem_time, &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		MDB_val ik, iv;
		int64_t created;

		r->idem_time_entries++;
		if (k.mv_size < 9) {
			print_key("idem_time: key shorter than 9 bytes", &k, 0);
			continue;
		}
		created = (int64_t)be64(k.mv_data);
		ik = mkval((const char *)k.mv_data + 8, k.mv_size - 8);
		rc = mdb_get(e->txn, e->idem, &ik, &iv);
		if (rc == MDB_NOTFOUND) {
			print_key("idem_time: entry whose key is not in idem",
			    &k, 8);
		} else if (rc != 0) {
			break;
		} else if (iv.mv_size == IDEM_VALUE_LEN &&
		    (int64_t)host64((const char *)iv.mv_data + 8) < created) {
			print_key("idem_time: entry newer than its idem entry",
			    &k, 8);
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static void
compare(const struct meta *m, const struct recount *r)
{
	if (m->have_counters) {
		uint64_t hist_sum = 0;

		for (int i = 0; i < ORDER_STATUS_COUNT; i++)
			if (m->cnt[CNT_STATUS + i] != r->by_status[i])
				report("counters: %s is %" PRIu64 ", recount %"
				    PRIu64, status_names[i],
				    m->cnt[CNT_STATUS + i], r->by_status[i]);
		if (m->cnt[CNT_CREATED] != r->orders)
			report("counters: created_total is %" PRIu64 ", but "
			    "there are %" PRIu64 " orders",
			    m->cnt[CNT_CREATED], r->orders);
		if (m->cnt[CNT_COMPLETED] != r->by_status[ORDER_COMPLETED])
			report("counters: completed_total is %" PRIu64 ", but "
			    "%" PRIu64 " orders are Completed",
			    m->cnt[CNT_COMPLETED],
			    r->by_status[ORDER_COMPLETED]);
		if (m->cnt[CNT_PROCESSING_MS] != r->processing_ms_sum)
			report("counters: processing_ms_sum is %" PRIu64
			    ", recount from the Completed orders %" PRIu64,
			    m->cnt[CNT_PROCESSING_MS], r->processing_ms_sum);
		for (int b = 0; b < HIST_BUCKETS; b++)
			hist_sum += m->hist[b];
		if (hist_sum != m->cnt[CNT_COMPLETED])
			report("processing_hist sums to %" PRIu64
			    ", completed_total is %" PRIu64, hist_sum,
			    m->cnt[CNT_COMPLETED]);
		for (int b = 0; b < HIST_BUCKETS; b++)
			if (m->hist[b] != r->hist[b])
				report("processing_hist bucket %d (%s %" PRId64
				    " ms) is %" PRIu64 ", recount from the "
				    "Completed orders %" PRIu64, b,
				    b < HIST_BUCKETS - 1 ? "<=" : ">",
				    hist_bounds[b < HIST_BUCKETS - 1 ? b
				    : HIST_BUCKETS - 2], m->hist[b], r->hist[b]);
	}
	if (m->have_next_id && m->have_instance) {
		uint64_t first = m->instance * INSTANCE_SPAN + 1;
		uint64_t end = (m->instance + 1) * INSTANCE_SPAN;

		if (m->next_id < first || m->next_id > end)
			report("meta next_id %" PRIu64 " is outside instance %"
			    PRIu64 "'s ids (%" PRIu64 " .. %" PRIu64 ")",
			    m->next_id, m->instance, first, end - 1);
		else if (r->orders != 0 && r->min_id < first)
			report("ORD%" PRIu64 " is below instance %" PRIu64
			    "'s first id ORD%" PRIu64, r->min_id, m->instance,
			    first);
		else if (r->orders != 0 && m->next_id <= r->max_id)
			report("meta next_id %" PRIu64 " is not above the "
			    "largest id ORD%" PRIu64, m->next_id, r->max_id);
		else if (m->next_id != first + r->orders)
			report("ids have gaps: %" PRIu64 " orders with ids "
			    "from %" PRIu64 " below next_id %" PRIu64,
			    r->orders, first, m->next_id);
	}
	if (r->by_status_entries != r->orders)
		report("by_status has %" PRIu64 " entries for %" PRIu64
		    " orders", r->by_status_entries, r->orders);
	if (r->by_user_status_entries != r->orders)
		report("by_user_status has %" PRIu64 " entries for %" PRIu64
		    " orders", r->by_user_status_entries, r->orders);
}

/*
 * Each listed order exists, with its status if one is named. An id
 * listed twice with two statuses (any status, then Cancelled) is checked
 * once for each, and reported missing once; the same line twice counts
 * once.
 */
static int
check_expected(struct env *e, const struct idlist *l, struct recount *r)
{
	for (size_t i = 0; i < l->n; i++) {
		struct head h;
		enum presence found;
		uint64_t id = l->v[i].id;
		int want = l->v[i].status;
		bool repeat = i > 0 && id == l->v[i - 1].id;
		int rc;

		if (repeat && want == l->v[i - 1].status)
			continue;
		if ((rc = order_head(e, id, &h, &found)) != 0)
			return rc;
		if (found == ABSENT) {
			if (!repeat) {
				r->expected_missing++;
				report("ORD%" PRIu64 " was acknowledged but "
				    "does not exist", id);
			}
		} else if (found != PRESENT) {
			if (!repeat) {
				r->expected_wrong_status++;
				report("ORD%" PRIu64 " was acknowledged but is "
				    "undecodable", id);
			}
		} else if (want != ANY_STATUS && h.status != (unsigned)want) {
			r->expected_wrong_status++;
			report("ORD%" PRIu64 " was acknowledged as %s but is %s",
			    id, status_name((unsigned)want),
			    status_name(h.status));
		}
	}
	return 0;
}

int
check_run(const struct check_request *req, FILE *out)
{
	const char *dir = req->data_dir;
	struct idlist ids = { 0 };
	size_t n_completed = 0;
	struct env e = { 0 };
	struct meta m;
	struct recount r = { 0 };
	int rc;

	report_out = out;
	discrepancies = 0;
	if (req->expect_completed_ids != NULL) {
		if (read_ids(req->expect_completed_ids, &ids,
		    ORDER_COMPLETED) != 0) {
			free(ids.v);
			return CHECK_USAGE;
		}
		n_completed = ids.n;
	}
	if (req->expect_ids != NULL &&
	    read_ids(req->expect_ids, &ids, ANY_STATUS) != 0) {
		free(ids.v);
		return CHECK_USAGE;
	}

	if ((rc = open_env(&e, dir)) != 0) {
		fprintf(out, "check: %s: cannot read the environment: %s\n",
		    dir, mdb_strerror(rc));
		if (e.txn != NULL)
			mdb_txn_abort(e.txn);
		if (e.env != NULL)
			mdb_env_close(e.env);
		free(ids.v);
		return CHECK_FAILED;
	}
	if ((rc = check_meta(&e, &m)) != 0 ||
	    (rc = walk_orders(&e, &r)) != 0 ||
	    (rc = walk_indexes(&e, &r)) != 0 ||
	    (rc = walk_idem(&e, &r)) != 0 ||
	    (rc = check_expected(&e, &ids, &r)) != 0) {
		fprintf(out, "check: %s: read error: %s\n", dir,
		    mdb_strerror(rc));
		mdb_txn_abort(e.txn);
		mdb_env_close(e.env);
		free(ids.v);
		return CHECK_FAILED;
	}
	compare(&m, &r);
	if (req->expect_total && r.orders != req->total)
		report("%" PRIu64 " orders, expected %" PRIu64, r.orders,
		    req->total);

	fprintf(out, "check: %s: %" PRIu64 " order%s (Pending %" PRIu64
	    ", Processing %" PRIu64 ", Completed %" PRIu64 ", Cancelled %"
	    PRIu64 "), next_id %" PRIu64 ", %" PRIu64 " idempotency keys, "
	    "lease expiries %" PRIu64 ", released %" PRIu64,
	    dir, r.orders, r.orders == 1 ? "" : "s",
	    r.by_status[ORDER_PENDING], r.by_status[ORDER_PROCESSING],
	    r.by_status[ORDER_COMPLETED],
	    r.by_status[ORDER_CANCELLED], m.next_id, r.idem_entries,
	    m.cnt[CNT_LEASE_EXPIRIES], m.cnt[CNT_RELEASED]);
	if (req->expect_completed_ids != NULL)
		fprintf(out, ", %zu expected Completed", n_completed);
	if (req->expect_ids != NULL)
		fprintf(out, ", %zu expected to exist", ids.n - n_completed);
	if (discrepancies == 0)
		fprintf(out, ": consistent\n");
	else
		fprintf(out, ": %llu discrepancies\n", discrepancies);
	mdb_txn_abort(e.txn);
	mdb_env_close(e.env);
	free(ids.v);
	return discrepancies == 0 ? CHECK_OK : CHECK_FAILED;
}
