/*
 * order-ctl: the operator's command line. It opens the LMDB environment
 * of the data directory itself, through the store (store.h), so it works
 * while order-api is down: read only for the commands that only look,
 * read-write for the ones that change an order, each change one of the
 * store's state-checked transitions, the same the daemons use. Orders
 * answered 201 but not yet in LMDB are read from order-api's journal,
 * read only (orderlog_scan), never applied here: applying is order-api's.
 *
 * main reads top to bottom: the options (config.c's table, so -D and the
 * config file's data-dir mean what they mean to the daemons), the
 * command's own arguments, the store, the command.
 *
 * Exit: 0 done; 1 failed, not found or refused; 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "config.h"
#include "money.h"
#include "order.h"
#include "orderlog.h"
#include "store.h"
#include "strbuf.h"

#define EXIT_FAIL 1
/* How long cancel waits for a running order-api to apply a journaled order. */
#define APPLY_WAIT_MS 2000
#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000

static const char commands_help[] =
    "commands:\n"
    "  status [--json]       counts, ages, worker heartbeat, map use, "
    "journal\n"
    "  show [--json] ID      one order (ORD123 or 123)\n"
    "  list [--status S] [--user U] [--limit N] [--after ID] "
    "[--order asc|desc]\n"
    "       [--json]         orders, oldest first (limit 1-1000, "
    "default 100)\n"
    "  cancel [--json] ID    a Pending order -> Cancelled\n"
    "  requeue [--json] ID   a Processing order -> Pending (its claim is "
    "void)\n"
    "  check [--expect-total N] [--expect-ids FILE] "
    "[--expect-completed-ids FILE]\n"
    "                        recount everything; exit 1 on a mismatch\n"
    "  backup [--force] FILE a consistent compacted copy of the LMDB "
    "environment\n";

/* What every command has: the settings and what it opened. */
struct ctl {
	struct config cfg;
	const char *cmd;
	char journal[PATH_MAX];
	struct store *store;
	bool json;
};

/* ---- Output helpers ---- */

/* "3 s", "4 min 2 s", "2 h 5 min", "3 d 4 h" */
static const char *
age_text(int64_t ms, char buf[32])
{
	int64_t s = ms < 0 ? 0 : ms / 1000;

	if (s < 60)
		snprintf(buf, 32, "%lld s", (long long)s);
	else if (s < 3600)
		snprintf(buf, 32, "%lld min %lld s", (long long)(s / 60),
		    (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, 32, "%lld h %lld min", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else
		snprintf(buf, 32, "%lld d %lld h", (long long)(s / 86400),
		    (long long)(s % 86400 / 3600));
	return buf;
}

/* "1.5 MiB" */
static const char *
bytes_text(uint64_t v, char buf[32])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 4) {
		d /= 1024;
		u++;
	}
	snprintf(buf, 32, u == 0 ? "%.0f %s" : "%.1f %s", d, units[u]);
	return buf;
}

static void
print_json(struct strbuf *sb)
{
	if (strbuf_failed(sb)) {
		fprintf(stderr, "order-ctl: out of memory\n");
		exit(EXIT_FAIL);
	}
	fwrite(sb->data, 1, sb->len, stdout);
	fputc('\n', stdout);
}

static int
store_fail(const struct ctl *c, const char *what, int rc)
{
	fprintf(stderr, "%s: could not %s in %s: %s\n", c->cfg.progname, what,
	    c->cfg.data_dir, store_strerror(rc));
	return EXIT_FAIL;
}

/* ---- Opening the store and the journal ---- */

/*
 * Open the data directory's environment, read only unless write. Every
 * failure is said with the path and what to do, and returns -1.
 */
static int
open_store(struct ctl *c, bool write)
{
	char data[PATH_MAX + 16];
	struct stat st;
	int rc;

	snprintf(data, sizeof(data), "%s/data.mdb", c->cfg.data_dir);
	if (stat(data, &st) != 0) {
		rc = errno;
		if (rc == EACCES)
			goto denied;
		fprintf(stderr, "%s: no LMDB environment in %s: %s: %s (is the "
		    "data directory right? see -D and the config file's "
		    "data-dir)\n", c->cfg.progname, c->cfg.data_dir, data,
		    strerror(rc));
		return -1;
	}
	rc = store_open(&c->store, c->cfg.data_dir, 0,
	    write ? 0 : STORE_RDONLY);
	if (rc == EACCES || rc == EPERM)
		goto denied;
	if (rc == STORE_EOLDSCHEMA) {
		fprintf(stderr, "%s: could not open the LMDB environment in "
		    "%s: its schema is older than version %d, and order-ctl "
		    "does not upgrade it: start order-api once, which does\n",
		    c->cfg.progname, c->cfg.data_dir, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (rc != 0) {
		fprintf(stderr, "%s: could not open the LMDB environment in "
		    "%s: %s\n", c->cfg.progname, c->cfg.data_dir,
		    store_strerror(rc));
		return -1;
	}
	return 0;
denied:
	fprintf(stderr, "%s: could not open the LMDB environment in %s: %s "
	    "(reading it takes write access to %s/lock.mdb too, for a reader "
	    "slot): run order-ctl as root or as the service user, e.g. "
	    "'sudo -u order-processing order-ctl %s'\n", c->cfg.progname,
	    c->cfg.data_dir, strerror(rc), c->cfg.data_dir, c->cmd);
	return -1;
}

/*
 * The store again, read-write, for a change: until then a command only
 * reads, and needs no writer lock (which a stalled process may hold).
 */
static int
reopen_write(struct ctl *c)
{
	store_close(c->store);
	c->store = NULL;
	return open_store(c, true);
}

/* The journal's orders not yet in LMDB, as orderlog_scan hands them. */
struct journaled {
	uint64_t count;
	uint64_t want;		/* find this id (0: none) */
	bool found;
	struct order *order;	/* filled when found */
	uint64_t oldest_id;	/* the first, 0: none */
	int64_t oldest_ms;	/* its created_ms */
};

static int
journaled_one(const struct order *o, void *arg)
{
	struct journaled *j = arg;

	if (j->count++ == 0) {
		j->oldest_id = o->id;
		j->oldest_ms = o->created_ms;
	}
	if (j->want != 0 && o->id == j->want) {
		j->found = true;
		if (order_reserve_items(j->order, o->n_items) != 0)
			return ENOMEM;
		uint64_t *items = j->order->items;
		uint32_t cap = j->order->items_cap;

		*j->order = *o;
		j->order->items = items;
		j->order->items_cap = cap;
		j->order->idem_key = NULL;
		memcpy(items, o->items, o->n_items * sizeof(*items));
	}
	return 0;
}

/*
 * Walk the journal's orders past LMDB's journal_lsn (those answered 201
 * and not yet applied) into *j. No journal: none. Prints the error and
 * returns -1 on a failure.
 */
static int
read_journal(struct ctl *c, struct journaled *j)
{
	uint64_t lsn, next_id;
	int rc;

	if ((rc = store_journal_state(c->store, &lsn, &next_id)) != 0) {
		store_fail(c, "read the journal's state", rc);
		return -1;
	}
	rc = orderlog_scan(c->journal, lsn, next_id, journaled_one, j);
	if (rc == ENOENT)
		return 0;
	if (rc != 0) {
		fprintf(stderr, "%s: could not read the journal %s: %s\n",
		    c->cfg.progname, c->journal, strerror(rc));
		return -1;
	}
	return 0;
}

/* Is order-api running on this data directory (it holds the journal)? */
static int
api_running(struct ctl *c, bool *running)
{
	int rc = journal_locked(c->journal, running);

	if (rc == ENOENT) {
		*running = false;
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "%s: could not look at the journal %s: %s\n",
		    c->cfg.progname, c->journal, strerror(rc));
		return -1;
	}
	return 0;
}

/* "ORD12" or "12" as the API takes it; prints the error (exit 2). */
static int
parse_id(const struct ctl *c, const char *s, uint64_t *id)
{
	if (order_id_parse(s, strlen(s), id) != 0 || *id == 0) {
		fprintf(stderr, "%s %s: '%s' is not an order id such as ORD123 "
		    "or 123\n", c->cfg.progname, c->cmd, s);
		return -1;
	}
	return 0;
}

/*
 * The arguments of status (none), show, cancel and requeue (one id):
 * --json anywhere. Prints the error and returns -1 on a bad one.
 */
static int
parse_args(struct ctl *c, int argc, char **argv, uint64_t *id)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (ch != 'j') {
			fprintf(stderr, "%s %s: unknown option '%s' (see "
			    "--help)\n", c->cfg.progname, c->cmd,
			    argv[optind - 1]);
			return -1;
		}
		c->json = true;
	}
	if (id == NULL && optind < argc) {
		fprintf(stderr, "%s %s: unexpected argument '%s' (see "
		    "--help)\n", c->cfg.progname, c->cmd, argv[optind]);
		return -1;
	}
	if (id == NULL)
		return 0;
	if (argc - optind != 1) {
		fprintf(stderr, "%s %s: give one order id (see --help)\n",
		    c->cfg.progname, c->cmd);
		return -1;
	}
	return parse_id(c, argv[optind], id);
}

/* ---- status ---- */

static void
json_oldest(struct strbuf *sb, const char *name, const struct order *o,
    bool have, int64_t now)
{
	char id[ORDER_ID_BUFSZ];

	strbuf_printf(sb, ", \"%s\": ", name);
	if (!have) {
		strbuf_puts(sb, "null");
		return;
	}
	order_id_format(o->id, id);
	strbuf_printf(sb, "{\"order_id\": \"%s\", \"age_seconds\": %.3f}", id,
	    (double)(now - o->created_ms) / 1000.0);
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	struct store_counters cnt;
	struct order oldest[2];
	bool have[2] = { false, false }, running = false;
	struct journaled j = { 0 };
	uint64_t used, map_size, total = 0, pending;
	double avg = 0, pct;
	int64_t now;
	int rc, status = EXIT_FAIL;

	if (parse_args(c, argc, argv, NULL) != 0)
		return EXIT_USAGE;
	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	if ((rc = store_counters(c->store, &cnt)) != 0)
		return store_fail(c, "read the counters", rc);
	order_init(&oldest[0]);
	order_init(&oldest[1]);
	for (int i = 0; i < 2; i++) {
		rc = store_oldest(c->store, i == 0 ? ORDER_PENDING
		    : ORDER_PROCESSING, &oldest[i]);
		if (rc != 0 && rc != STORE_ENOTFOUND) {
			store_fail(c, "read the oldest unfinished order", rc);
			goto out;
		}
		have[i] = rc == 0;
	}
	if ((rc = store_usage(c->store, &used, &map_size)) != 0) {
		store_fail(c, "read the map's use", rc);
		goto out;
	}
	if (read_journal(c, &j) != 0 || api_running(c, &running) != 0)
		goto out;
	now = clock_realtime_ms();

	/* As the API's metrics: journaled orders count as Pending. */
	pending = cnt.by_status[ORDER_PENDING] + j.count;
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		total += cnt.by_status[i];
	total += j.count;
	if (cnt.completed_total > 0)
		avg = (double)cnt.processing_ms_sum / 1000.0 /
		    (double)cnt.completed_total;
	pct = map_size > 0 ? 100.0 * (double)used / (double)map_size : 0;
	/* No Pending order in LMDB: the oldest is the journal's first. */
	int64_t oldest_pending_ms = have[0] ? oldest[0].created_ms
	    : j.oldest_ms;

	if (c->json) {
		struct strbuf sb;

		strbuf_init(&sb);
		strbuf_printf(&sb, "{\"total_orders\": %llu, "
		    "\"order_status_count\": {", (unsigned long long)total);
		for (int i = 0; i < ORDER_STATUS_COUNT; i++)
			strbuf_printf(&sb, "%s\"%s\": %llu", i > 0 ? ", " : "",
			    order_status_name((enum order_status)i),
			    (unsigned long long)(i == ORDER_PENDING ? pending
			    : cnt.by_status[i]));
		strbuf_printf(&sb, "}, \"created_total\": %llu, "
		    "\"completed_total\": %llu, "
		    "\"average_processing_time_seconds\": %.3f, "
		    "\"next_id\": %llu, \"instance\": %u",
		    (unsigned long long)(cnt.created_total + j.count),
		    (unsigned long long)cnt.completed_total, avg,
		    (unsigned long long)cnt.next_id, store_instance(c->store));
		if (!have[0] && j.count > 0) {
			char id[ORDER_ID_BUFSZ];

			order_id_format(j.oldest_id, id);
			strbuf_printf(&sb, ", \"oldest_pending\": {\"order_id\": "
			    "\"%s\", \"age_seconds\": %.3f}", id,
			    (double)(now - j.oldest_ms) / 1000.0);
		} else {
			json_oldest(&sb, "oldest_pending", &oldest[0], have[0],
			    now);
		}
		json_oldest(&sb, "oldest_processing", &oldest[1], have[1], now);
		strbuf_puts(&sb, ", \"worker_heartbeat_age_seconds\": ");
		if (cnt.heartbeat_ms == 0)
			strbuf_puts(&sb, "null");
		else
			strbuf_printf(&sb, "%.3f",
			    (double)(now - cnt.heartbeat_ms) / 1000.0);
		strbuf_printf(&sb, ", \"map_used_bytes\": %llu, "
		    "\"map_size_bytes\": %llu, \"map_used_percent\": %.1f, "
		    "\"journaled_not_applied\": %llu, "
		    "\"order_api_running\": %s}", (unsigned long long)used,
		    (unsigned long long)map_size, pct,
		    (unsigned long long)j.count, running ? "true" : "false");
		print_json(&sb);
		strbuf_finish(&sb);
		status = 0;
		goto out;
	}

	char a[32], b[32];

	printf("orders: %llu (created %llu, completed %llu)\n",
	    (unsigned long long)total,
	    (unsigned long long)(cnt.created_total + j.count),
	    (unsigned long long)cnt.completed_total);
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		printf("  %-11s %llu", order_status_name((enum order_status)i),
		    (unsigned long long)(i == ORDER_PENDING ? pending
		    : cnt.by_status[i]));
		if (i == ORDER_PENDING && (have[0] || j.count > 0)) {
			order_id_format(have[0] ? oldest[0].id : j.oldest_id, a);
			printf("  oldest %s, created %s ago", a,
			    age_text(now - oldest_pending_ms, b));
		} else if (i == ORDER_PROCESSING && have[1]) {
			order_id_format(oldest[1].id, a);
			printf("  oldest %s, created %s ago", a,
			    age_text(now - oldest[1].created_ms, b));
		}
		putchar('\n');
	}
	printf("average processing time: %.1f s\n", avg);
	if (cnt.heartbeat_ms == 0)
		printf("worker: no worker heartbeat\n");
	else
		printf("worker: last seen %s ago\n",
		    age_text(now - cnt.heartbeat_ms, a));
	printf("map: %s of %s used (%.0f %%)\n", bytes_text(used, a),
	    bytes_text(map_size, b), pct);
	printf("journal: %llu order%s accepted (answered 201) and not yet "
	    "applied to LMDB%s\n", (unsigned long long)j.count,
	    j.count == 1 ? "" : "s", j.count == 0 ? "" : running
	    ? " (order-api applies them within a moment)"
	    : " (order-api applies them when it starts)");
	printf("order-api: %s\n", running ? "running" : "not running");
	order_id_format(order_instance_first_id(store_instance(c->store)), a);
	printf("instance: %u (its ids are %s and up)\n",
	    store_instance(c->store), a);
	status = 0;
out:
	order_finish(&oldest[0]);
	order_finish(&oldest[1]);
	return status;
}

/* ---- show ---- */

static void
show_block(const struct order *o, bool journaled, bool running)
{
	char id[ORDER_ID_BUFSZ], t[32], age[32], money[MONEY_BUFSZ];
	int64_t now = clock_realtime_ms();

	order_id_format(o->id, id);
	money_format(o->total_cents, money);
	printf("%s\n", id);
	printf("  status     %s%s\n", order_status_name(o->status), !journaled
	    ? "" : running ? " (accepted, not yet applied: order-api applies "
	    "it within a moment)" : " (accepted, not yet applied: order-api "
	    "applies it at start)");
	printf("  user       %llu\n", (unsigned long long)o->user_id);
	printf("  items      ");
	for (uint32_t i = 0; i < o->n_items; i++)
		printf(i == 0 ? "%llu" : ", %llu",
		    (unsigned long long)o->items[i]);
	printf("\n  total      %s\n", money);
	order_time_format(o->created_ms, t);
	printf("  created    %s (%s ago)\n", t, age_text(now - o->created_ms,
	    age));
	order_time_format(o->updated_ms, t);
	printf("  updated    %s\n", t);
	if (o->completed_ms != 0) {
		order_time_format(o->completed_ms, t);
		printf("  completed  %s (took %s)\n", t,
		    age_text(o->completed_ms - o->created_ms, age));
	}
	printf("  attempts   %u\n", o->attempts);
	if (o->status == ORDER_PROCESSING) {
		order_time_format(o->lease_until_ms, t);
		printf("  lease      until %s (%s)\n", t,
		    o->lease_until_ms > now ? "held" : "lapsed");
	}
}

/*
 * The order id: from LMDB, or from the journal (*journaled). 0 found,
 * 1 not found (said), -1 failed (said).
 */
static int
find_order(struct ctl *c, uint64_t id, struct order *o, bool *journaled)
{
	struct journaled j = { .want = id, .order = o };
	char oid[ORDER_ID_BUFSZ];
	int rc = store_get(c->store, id, o);

	*journaled = false;
	if (rc == 0)
		return 0;
	if (rc != STORE_ENOTFOUND) {
		store_fail(c, "read the order", rc);
		return -1;
	}
	if (read_journal(c, &j) != 0)
		return -1;
	if (j.found) {
		*journaled = true;
		return 0;
	}
	/* Applied between the two reads. */
	if (store_get(c->store, id, o) == 0)
		return 0;
	order_id_format(id, oid);
	fprintf(stderr, "%s: no order %s in %s\n", c->cfg.progname, oid,
	    c->cfg.data_dir);
	return 1;
}

static int
cmd_show(struct ctl *c, int argc, char **argv)
{
	struct order o;
	bool journaled, running = false;
	uint64_t id;
	int rc;

	if (parse_args(c, argc, argv, &id) != 0)
		return EXIT_USAGE;
	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	order_init(&o);
	rc = find_order(c, id, &o, &journaled);
	if (rc == 0 && journaled && api_running(c, &running) != 0)
		rc = -1;
	if (rc == 0 && c->json) {
		struct strbuf sb;

		strbuf_init(&sb);
		order_encode_json(&o, &sb);
		print_json(&sb);
		strbuf_finish(&sb);
		if (journaled)
			fprintf(stderr, "%s: ORD%llu is accepted, not yet "
			    "applied to LMDB\n", c->cfg.progname,
			    (unsigned long long)id);
	} else if (rc == 0) {
		show_block(&o, journaled, running);
	}
	order_finish(&o);
	return rc == 0 ? 0 : EXIT_FAIL;
}

/* ---- list ---- */

struct list_out {
	bool json;
	unsigned n;
	struct strbuf *sb;
};

static int
list_row(const struct order *o, void *arg)
{
	struct list_out *l = arg;
	char id[ORDER_ID_BUFSZ], money[MONEY_BUFSZ], created[32], done[32];

	if (l->json) {
		if (l->n++ > 0)
			strbuf_puts(l->sb, ", ");
		order_encode_json(o, l->sb);
		return strbuf_failed(l->sb) ? ENOMEM : 0;
	}
	if (l->n++ == 0)
		printf("%-12s %-10s %-10s %12s  %-24s  %s\n", "ID", "USER",
		    "STATUS", "TOTAL", "CREATED", "COMPLETED");
	order_id_format(o->id, id);
	money_format(o->total_cents, money);
	order_time_format(o->created_ms, created);
	if (o->completed_ms != 0)
		order_time_format(o->completed_ms, done);
	else
		strcpy(done, "-");
	printf("%-12s %-10llu %-10s %12s  %-24s  %s\n", id,
	    (unsigned long long)o->user_id, order_status_name(o->status),
	    money, created, done);
	return 0;
}

/* list's options; prints the error and returns -1 on a bad one. */
static int
parse_list(struct ctl *c, int argc, char **argv, struct store_filter *f)
{
	static const struct option opts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'n' },
		{ "after", required_argument, NULL, 'a' },
		{ "order", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*f = (struct store_filter){ .limit = LIST_DEFAULT_LIMIT };
	optind = 0;
	while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		unsigned long long v;
		char *end;

		switch (ch) {
		case 's':
			if (order_status_parse(optarg, &f->status) != 0) {
				fprintf(stderr, "%s list: --status '%s' must be "
				    "one of Pending, Processing, Completed, "
				    "Cancelled\n", c->cfg.progname, optarg);
				return -1;
			}
			f->by_status = true;
			break;
		case 'u':
		case 'n':
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' ||
			    errno != 0 || v == 0 || (ch == 'n' ?
			    v > LIST_MAX_LIMIT : v > ORDER_MAX_INTEGER)) {
				fprintf(stderr, ch == 'n' ? "%s list: --limit "
				    "'%s' must be a whole number from 1 to "
				    "1000\n" : "%s list: --user '%s' must be a "
				    "user id, a whole number from 1\n",
				    c->cfg.progname, optarg);
				return -1;
			}
			if (ch == 'n')
				f->limit = (uint32_t)v;
			else
				f->user_id = v;
			break;
		case 'a':
			if (order_id_parse(optarg, strlen(optarg),
			    &f->after) != 0 || f->after == 0) {
				fprintf(stderr, "%s list: --after '%s' must be "
				    "an order id such as ORD123\n",
				    c->cfg.progname, optarg);
				return -1;
			}
			break;
		case 'o':
			if (strcmp(optarg, "asc") != 0 &&
			    strcmp(optarg, "desc") != 0) {
				fprintf(stderr, "%s list: --order '%s' must be "
				    "asc (oldest first) or desc (newest "
				    "first)\n", c->cfg.progname, optarg);
				return -1;
			}
			f->desc = optarg[0] == 'd';
			break;
		case 'j':
			c->json = true;
			break;
		default:
			fprintf(stderr, "%s list: %s '%s' (see --help)\n",
			    c->cfg.progname, ch == ':' ? "missing value for"
			    : "unknown option", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s list: unexpected argument '%s' (see "
		    "--help)\n", c->cfg.progname, argv[optind]);
		return -1;
	}
	return 0;
}

static int
cmd_list(struct ctl *c, int argc, char **argv)
{
	struct store_filter f;
	struct strbuf sb;
	struct list_out l = { .sb = &sb };
	char id[ORDER_ID_BUFSZ];
	uint64_t next;
	int rc;

	if (parse_list(c, argc, argv, &f) != 0)
		return EXIT_USAGE;
	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	l.json = c->json;
	strbuf_init(&sb);
	strbuf_puts(&sb, "{\"results\": [");
	rc = store_list(c->store, &f, list_row, &l, &next);
	if (rc != 0) {
		strbuf_finish(&sb);
		return store_fail(c, "list the orders", rc);
	}
	if (c->json) {
		if (next != 0) {
			order_id_format(next, id);
			strbuf_printf(&sb, "], \"next\": \"%s\"}", id);
		} else {
			strbuf_puts(&sb, "], \"next\": null}");
		}
		print_json(&sb);
	} else if (l.n == 0) {
		printf("no orders\n");
	} else if (next != 0) {
		order_id_format(next, id);
		printf("more: order-ctl list --after %s ...\n", id);
	}
	strbuf_finish(&sb);
	return 0;
}

/* ---- cancel, requeue ---- */

static void
print_order_json(const struct order *o)
{
	struct strbuf sb;

	strbuf_init(&sb);
	order_encode_json(o, &sb);
	print_json(&sb);
	strbuf_finish(&sb);
}

/*
 * An order in the journal only: with order-api running, wait (up to
 * APPLY_WAIT_MS, reading journal_lsn's next_id) for its apply. 0 applied,
 * else the exit status (said).
 */
static int
wait_applied(struct ctl *c, uint64_t id)
{
	char oid[ORDER_ID_BUFSZ];
	int64_t deadline = clock_monotonic_ms() + APPLY_WAIT_MS;
	uint64_t lsn, next_id;
	bool running;
	int rc;

	order_id_format(id, oid);
	if (api_running(c, &running) != 0)
		return EXIT_FAIL;
	if (!running) {
		fprintf(stderr, "%s: %s is accepted but not yet applied; start "
		    "order-api, which applies it, then retry\n",
		    c->cfg.progname, oid);
		return EXIT_FAIL;
	}
	for (;;) {
		if ((rc = store_journal_state(c->store, &lsn, &next_id)) != 0)
			return store_fail(c, "read the journal's state", rc);
		if (next_id > id)
			return 0;
		if (clock_monotonic_ms() >= deadline)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
	}
	fprintf(stderr, "%s: %s is accepted but order-api did not apply it "
	    "within %d ms (is LMDB's writer lock held?); retry later\n",
	    c->cfg.progname, oid, APPLY_WAIT_MS);
	return EXIT_FAIL;
}

static int
cmd_cancel(struct ctl *c, int argc, char **argv)
{
	char oid[ORDER_ID_BUFSZ];
	struct order o;
	bool journaled;
	uint64_t id;
	int rc, status;

	if (parse_args(c, argc, argv, &id) != 0)
		return EXIT_USAGE;
	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	order_id_format(id, oid);
	order_init(&o);
	if ((rc = find_order(c, id, &o, &journaled)) != 0) {
		status = EXIT_FAIL;
		goto out;
	}
	if (journaled && (status = wait_applied(c, id)) != 0)
		goto out;
	if (reopen_write(c) != 0) {
		status = EXIT_FAIL;
		goto out;
	}
	rc = store_cancel(c->store, id, clock_realtime_ms(), &o);
	if (rc == STORE_ECONFLICT) {
		fprintf(stderr, "%s: %s is %s; only a Pending order can be "
		    "cancelled\n", c->cfg.progname, oid,
		    order_status_name(o.status));
		status = EXIT_FAIL;
	} else if (rc != 0) {
		status = store_fail(c, "cancel the order", rc);
	} else {
		if (c->json)
			print_order_json(&o);
		else
			printf("%s cancelled (was Pending)\n", oid);
		status = 0;
	}
out:
	order_finish(&o);
	return status;
}

static int
cmd_requeue(struct ctl *c, int argc, char **argv)
{
	char oid[ORDER_ID_BUFSZ], t[32], left[32];
	struct store_claim claim = { 0 };
	struct order o;
	bool journaled;
	uint64_t id;
	int64_t now;
	int rc, status = EXIT_FAIL;

	if (parse_args(c, argc, argv, &id) != 0)
		return EXIT_USAGE;
	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	claim.id = id;
	order_id_format(id, oid);
	order_init(&o);
	if ((rc = find_order(c, id, &o, &journaled)) != 0)
		goto out;
	if (journaled || o.status != ORDER_PROCESSING) {
		fprintf(stderr, "%s: %s is %s%s; only a Processing order can be "
		    "requeued\n", c->cfg.progname, oid,
		    order_status_name(o.status), journaled ? " (accepted, not "
		    "yet applied)" : "");
		goto out;
	}
	/*
	 * The claim as read: the release is state-checked against this
	 * attempt, so a claim taken over meanwhile is left alone.
	 */
	claim.attempt = o.attempts;
	if (reopen_write(c) != 0)
		goto out;
	now = clock_realtime_ms();
	if ((rc = store_release(c->store, &claim, 1, now)) != 0) {
		store_fail(c, "requeue the order", rc);
		goto out;
	}
	if (!claim.done) {
		if ((rc = store_get(c->store, id, &o)) != 0) {
			store_fail(c, "read the order", rc);
			goto out;
		}
		fprintf(stderr, "%s: %s changed meanwhile: it is %s (attempt "
		    "%u); nothing was done\n", c->cfg.progname, oid,
		    order_status_name(o.status), o.attempts);
		goto out;
	}
	if (o.lease_until_ms > now) {
		order_time_format(o.lease_until_ms, t);
		fprintf(stderr, "%s: note: %s's lease had not lapsed (it ran "
		    "until %s, %s more): if its worker is alive, its finish of "
		    "attempt %u is now a no-op and the order is done again "
		    "under the next claim\n", c->cfg.progname, oid, t,
		    age_text(o.lease_until_ms - now, left), o.attempts);
	}
	if (c->json) {
		if ((rc = store_get(c->store, id, &o)) != 0) {
			store_fail(c, "read the order", rc);
			goto out;
		}
		print_order_json(&o);
	} else {
		printf("%s requeued: Processing (attempt %u) -> Pending\n", oid,
		    o.attempts);
	}
	status = 0;
out:
	order_finish(&o);
	return status;
}

/* ---- backup ---- */

static int
cmd_backup(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_counters cnt;
	bool force = false;
	struct stat st;
	char size[32];
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (ch != 'f') {
			fprintf(stderr, "%s backup: unknown option '%s' (see "
			    "--help)\n", c->cfg.progname, argv[optind - 1]);
			return EXIT_USAGE;
		}
		force = true;
	}
	if (argc - optind != 1 || argv[optind][0] == '\0') {
		fprintf(stderr, "%s backup: give one FILE to write (see "
		    "--help)\n", c->cfg.progname);
		return EXIT_USAGE;
	}
	const char *path = argv[optind];

	if (open_store(c, false) != 0)
		return EXIT_FAIL;
	/* Read first: every order below next_id is in the copy. */
	if ((rc = store_counters(c->store, &cnt)) != 0)
		return store_fail(c, "read the counters", rc);
	rc = store_backup(c->store, path, force);
	if (rc == EEXIST) {
		fprintf(stderr, "%s: could not back up to %s: it exists "
		    "(--force replaces it)\n", c->cfg.progname, path);
		return EXIT_FAIL;
	}
	if (rc != 0) {
		fprintf(stderr, "%s: could not back up %s to %s: %s\n",
		    c->cfg.progname, c->cfg.data_dir, path,
		    store_strerror(rc));
		return EXIT_FAIL;
	}
	if (stat(path, &st) != 0)
		st.st_size = 0;
	printf("backed up %s to %s (%s): every order up to ORD%llu and any "
	    "applied while it ran\n", c->cfg.data_dir, path,
	    bytes_text((uint64_t)st.st_size, size),
	    (unsigned long long)(cnt.next_id - 1));
	return 0;
}

/* ---- check ---- */

/*
 * The checker (check.c) reads LMDB itself, apart from the store, and the
 * daemons may be running: it sees one snapshot. Orders only the journal
 * holds are not in that snapshot; their number is said after the check.
 */
static int
cmd_check(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "expect-total", required_argument, NULL, 't' },
		{ "expect-ids", required_argument, NULL, 'i' },
		{ "expect-completed-ids", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_request req = { .data_dir = c->cfg.data_dir };
	struct journaled j = { 0 };
	char *end;
	int ch, status;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			errno = 0;
			req.total = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || optarg[0] < '0' ||
			    optarg[0] > '9') {
				fprintf(stderr, "%s check: --expect-total: not "
				    "a number: '%s'\n", c->cfg.progname,
				    optarg);
				return EXIT_USAGE;
			}
			req.expect_total = true;
			break;
		case 'i':
			req.expect_ids = optarg;
			break;
		case 'c':
			req.expect_completed_ids = optarg;
			break;
		case ':':
			fprintf(stderr, "%s check: '%s' needs a value (see "
			    "--help)\n", c->cfg.progname, argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "%s check: unknown option '%s' (see "
			    "--help)\n", c->cfg.progname, argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s check: unexpected argument '%s' (see "
		    "--help)\n", c->cfg.progname, argv[optind]);
		return EXIT_USAGE;
	}
	status = check_run(&req, stdout);
	if (status == CHECK_USAGE)
		return EXIT_USAGE;
	/* Quietly: an environment the check could not read was said. */
	if (store_open(&c->store, c->cfg.data_dir, 0, STORE_RDONLY) == 0 &&
	    read_journal(c, &j) == 0 && j.count > 0)
		printf("check: %llu orders from ORD%llu on are in order-api's "
		    "journal and not yet in LMDB, so not checked: order-api "
		    "applies them\n", (unsigned long long)j.count,
		    (unsigned long long)j.oldest_id);
	return status;
}

/* ---- main ---- */

/*
 * The commands: each parses its own arguments (its name is argv[0]),
 * opens the store as it needs and returns the exit status.
 */
static const struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
} commands[] = {
	{ "status", cmd_status },
	{ "show", cmd_show },
	{ "list", cmd_list },
	{ "cancel", cmd_cancel },
	{ "requeue", cmd_requeue },
	{ "check", cmd_check },
	{ "backup", cmd_backup },
};

int
main(int argc, char **argv)
{
	struct ctl c = { 0 };
	const struct command *cmd = NULL;
	int status;

	switch (config_parse_ctl(&c.cfg, argc, argv, commands_help)) {
	case CONFIG_OK:
		break;
	case CONFIG_EXIT:
		return 0;
	case CONFIG_ERROR:
		return EXIT_USAGE;
	}
	if (c.cfg.first_arg >= argc) {
		fprintf(stderr, "%s: give a command (see --help)\n",
		    c.cfg.progname);
		return EXIT_USAGE;
	}
	c.cmd = argv[c.cfg.first_arg];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, c.cmd) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "%s: unknown command '%s' (see --help)\n",
		    c.cfg.progname, c.cmd);
		return EXIT_USAGE;
	}
	if ((size_t)snprintf(c.journal, sizeof(c.journal), "%s/journal",
	    c.cfg.data_dir) >= sizeof(c.journal)) {
		fprintf(stderr, "%s: data-dir '%s': path too long\n",
		    c.cfg.progname, c.cfg.data_dir);
		return EXIT_USAGE;
	}
	status = cmd->run(&c, argc - c.cfg.first_arg, argv + c.cfg.first_arg);
	store_close(c.store);
	return status;
}
