#include "metrics.h"

#include <stdio.h>

#include "order.h"

static const int counted_codes[] = METRICS_CODES;
#define N_COUNTED (sizeof(counted_codes) / sizeof(counted_codes[0]))
_Static_assert(N_COUNTED + 1 == METRICS_N_CODES,
    "METRICS_N_CODES counts METRICS_CODES and \"other\"");

void
metrics_count_request(struct metrics_requests *m, const struct route *route,
    int status)
{
	size_t slot = route != NULL ? (size_t)(route - router_routes) + 1 : 0;
	size_t i = 0;

	while (i < N_COUNTED && counted_codes[i] != status)
		i++;
	atomic_fetch_add_explicit(&m->count[slot][i], 1,
	    memory_order_relaxed);
}

void
metrics_json(const struct store_counters *c, struct strbuf *out)
{
	uint64_t total = 0;
	double avg = 0;

	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		total += c->by_status[i];
	if (c->completed_total > 0)
		avg = (double)c->processing_ms_sum / 1000.0 /
		    (double)c->completed_total;
	strbuf_printf(out, "{\"total_orders_processed\": %llu, "
	    "\"average_processing_time\": \"%.1fs\", "
	    "\"average_processing_time_seconds\": %.3f, "
	    "\"total_orders\": %llu, \"order_status_count\": {",
	    (unsigned long long)c->by_status[ORDER_COMPLETED], avg, avg,
	    (unsigned long long)total);
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		strbuf_printf(out, "%s\"%s\": %llu", i > 0 ? ", " : "",
		    order_status_name((enum order_status)i),
		    (unsigned long long)c->by_status[i]);
	strbuf_puts(out, "}}");
}

static void
family(struct strbuf *out, const char *name, const char *type,
    const char *help)
{
	strbuf_printf(out, "# HELP order_processing_%s %s\n"
	    "# TYPE order_processing_%s %s\n", name, help, name, type);
}

/* A family of one sample without labels. */
static void
single(struct strbuf *out, const char *name, const char *type,
    const char *help, uint64_t value)
{
	family(out, name, type, help);
	strbuf_printf(out, "order_processing_%s %llu\n", name,
	    (unsigned long long)value);
}

static void
histogram(struct strbuf *out, const struct store_counters *c)
{
	static const int64_t bounds[] = STORE_HIST_BOUNDS_MS;
	uint64_t cumulative = 0;

	family(out, "processing_seconds", "histogram",
	    "Time from an order's creation to its completion.");
	for (int i = 0; i < STORE_HIST_BUCKETS; i++) {
		char le[32];

		cumulative += c->processing_hist[i];
		if (i < STORE_HIST_BUCKETS - 1)
			snprintf(le, sizeof(le), "%g",
			    (double)bounds[i] / 1000.0);
		else
			snprintf(le, sizeof(le), "+Inf");
		strbuf_printf(out, "order_processing_processing_seconds_bucket"
		    "{le=\"%s\"} %llu\n", le, (unsigned long long)cumulative);
	}
	strbuf_printf(out, "order_processing_processing_seconds_sum %.3f\n"
	    "order_processing_processing_seconds_count %llu\n",
	    (double)c->processing_ms_sum / 1000.0,
	    (unsigned long long)c->completed_total);
}

static void
requests(struct strbuf *out, const struct metrics_requests *m)
{
	family(out, "http_requests_total", "counter",
	    "HTTP requests answered by this order-api, by route and code.");
	for (size_t slot = 0; slot <= router_nroutes; slot++) {
		const char *path = slot > 0 ? router_routes[slot - 1].path
		    : "other";

		for (size_t i = 0; i < METRICS_N_CODES; i++) {
			unsigned long v = atomic_load_explicit(
			    &m->count[slot][i], memory_order_relaxed);
			char code[16];

			if (v == 0)
				continue;
			if (i < N_COUNTED)
				snprintf(code, sizeof(code), "%d",
				    counted_codes[i]);
			else
				snprintf(code, sizeof(code), "other");
			strbuf_printf(out, "order_processing_http_requests_total"
			    "{route=\"%s\",code=\"%s\"} %lu\n", path, code, v);
		}
	}
	single(out, "http_connections_refused_total", "counter",
	    "Connections answered 503 and closed at once: their client address "
	    "held its share of HTTP threads (--max-connections-per-address).",
	    atomic_load_explicit(&m->connections_refused,
	    memory_order_relaxed));
}

void
metrics_prometheus(const struct metrics_snapshot *s, struct strbuf *out)
{
	const struct store_counters *c = &s->counters;

	family(out, "orders", "gauge", "Orders now in each status.");
	for (int i = 0; i < ORDER_STATUS_COUNT; i++)
		strbuf_printf(out, "order_processing_orders{status=\"%s\"} "
		    "%llu\n", order_status_name((enum order_status)i),
		    (unsigned long long)c->by_status[i]);
	single(out, "orders_created_total", "counter",
	    "Orders accepted (201) since the store was created.",
	    c->created_total);
	single(out, "orders_completed_total", "counter",
	    "Orders completed since the store was created.",
	    c->completed_total);
	histogram(out, c);
	single(out, "lease_expiries_total", "counter",
	    "Claims taken over after their lease lapsed.",
	    c->lease_expiries_total);
	single(out, "released_total", "counter",
	    "Orders a stopping worker handed back to Pending.",
	    c->released_total);
	single(out, "commits_total", "counter",
	    "Group commits (LMDB write transactions of POSTed orders) of "
	    "this order-api.",
	    s->committer.commits);
	single(out, "journal_writes_total", "counter",
	    "Records written to this order-api's journal, one flush each "
	    "(a record holds every create that was waiting).",
	    s->committer.journal_writes);
	single(out, "journal_unapplied_orders", "gauge",
	    "Orders answered 201 that are in the journal and not yet in "
	    "LMDB.",
	    s->committer.unapplied);
	single(out, "create_timeouts_total", "counter",
	    "Creates answered 503 by this order-api because accepted orders "
	    "waited too long for their commit, or the journal was full of "
	    "them (not stored).",
	    s->committer.timeouts);
	single(out, "queue_full_total", "counter",
	    "Queue sends by this order-api that found the queue full.",
	    s->committer.queue_full);
	single(out, "queue_send_errors_total", "counter",
	    "Queue sends by this order-api that failed otherwise.",
	    s->committer.queue_send_errors);
	family(out, "worker_heartbeat_age_seconds", "gauge",
	    "Seconds since a worker last showed a heartbeat (NaN: never).");
	if (c->heartbeat_ms != 0)
		strbuf_printf(out, "order_processing_worker_heartbeat_age_seconds"
		    " %.3f\n", (double)(s->now_ms - c->heartbeat_ms) / 1000.0);
	else
		strbuf_puts(out, "order_processing_worker_heartbeat_age_seconds "
		    "NaN\n");
	single(out, "map_used_bytes", "gauge",
	    "Bytes of the LMDB map in use.", s->map_used_bytes);
	single(out, "map_size_bytes", "gauge",
	    "The LMDB map size (--map-size).", s->map_size_bytes);
	requests(out, s->requests);
	single(out, "http_requests_in_flight", "gauge",
	    "Requests this order-api is answering now (this one included).",
	    s->in_flight);
}
