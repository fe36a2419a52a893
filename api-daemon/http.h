/*
 * http: order-api's HTTP server, as main.c sees it: start, stop, and the
 * context every request is answered in.
 *
 * The server is in three parts: http.c, the transport on civetweb (its
 * callbacks, the per-address share of threads, the framing checks,
 * reading bodies, writing answers, dispatch by route); router.h, the
 * table of routes and the matching of paths; handlers.c, what each route
 * answers, through the request API of request.h.
 *
 * http_start sets civetweb's callbacks before serving begins and never
 * changes them; http_stop returns once every accepted request has been
 * answered. Requests are answered on civetweb's threads, one request
 * each; the only state they share is this context: the store and the
 * committer (thread-safe), the flags and counters (atomics), and the
 * Idempotency-Keys in flight (under inflight_lock).
 */
#ifndef OP_HTTP_H
#define OP_HTTP_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth.h"

#include "committer.h"
#include "conn.h"
#include "config.h"
#include "metrics.h"
#include "router.h"
#include "store.h"

struct http_server;

struct http_context {
	const struct config *cfg;
	struct store *store;
	struct committer *committer;
	atomic_bool stopping;		/* /readyz answers 503 once set */
	atomic_uint active_requests;	/* requests being answered now */
	atomic_bool access_log;		/* a line per request at info */
	struct metrics_requests requests;	/* for GET /metrics */
	struct auth *auth;		/* NULL: no token needed */
	struct conn_table *conns;	/* threads held by each address */
	/* Idempotency-Keys being handled, one slot per thread ("": free). */
	pthread_mutex_t inflight_lock;
	char (*inflight)[ORDER_IDEM_KEY_MAX + 1];
};

/* Start serving; logs and returns -1 if it cannot. */
int http_start(struct http_server **srv, struct http_context *ctx);
void http_stop(struct http_server *srv);

#endif
