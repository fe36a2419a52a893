/*
 * http: the civetweb server, the router and the request handlers.
 *
 * http_start registers one handler for every path before serving begins
 * and never changes it; http_stop returns once every accepted request has
 * been answered. Handlers run on civetweb's threads, one request each; the
 * only state they share is the store (thread-safe), the committer
 * (thread-safe) and the stopping flag.
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

/* /readyz wants a worker heartbeat at most this old. */
#define HTTP_HEARTBEAT_MAX_AGE_MS 10000

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
