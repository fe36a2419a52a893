/*
 * metrics: the API's two metrics bodies, JSON for GET /orders/metrics (the
 * original's shape) and the Prometheus text format 0.0.4 for GET /metrics,
 * and the request counters behind the latter.
 *
 * Formatting only: the caller reads the store and the committer and hands
 * over a snapshot. The request counters are atomics, safe to bump from
 * every handler thread.
 */
#ifndef OP_METRICS_H
#define OP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "committer.h"
#include "router.h"
#include "store.h"
#include "strbuf.h"

/* The response codes counted per route; others count as "other". */
#define METRICS_CODES \
	{ 200, 201, 400, 401, 404, 405, 408, 409, 411, 413, 415, 422, 431, \
	  500, 503 }
#define METRICS_N_CODES 16	/* the codes above and "other" */

/*
 * Requests answered, by route and code: slot 0 for a request that matched
 * no route, slot i + 1 for router_routes[i].
 */
struct metrics_requests {
	atomic_ulong count[ROUTER_MAX_ROUTES + 1][METRICS_N_CODES];
	/* Connections refused: their address held its share of threads. */
	atomic_ulong connections_refused;
};

struct metrics_snapshot {
	struct store_counters counters;
	struct committer_stats committer;
	uint64_t map_used_bytes;
	uint64_t map_size_bytes;
	int64_t now_ms;			/* for the heartbeat's age */
	unsigned in_flight;		/* requests being answered */
	const struct metrics_requests *requests;
};

/* A request answered with status; route NULL: it matched none. */
void metrics_count_request(struct metrics_requests *m,
    const struct route *route, int status);
/* {"total_orders_processed": ..., "order_status_count": {...}} */
void metrics_json(const struct store_counters *c, struct strbuf *out);
void metrics_prometheus(const struct metrics_snapshot *s,
    struct strbuf *out);

#endif
