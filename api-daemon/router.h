/*
 * router: maps a request path to its route, the one table of what the API
 * serves (also printed by tests/route-list for the OpenAPI check).
 *
 * Paths: "/api" is optional, one trailing slash is optional, %XX escapes
 * are decoded here (an escaped NUL or '/' matches nothing), and an order
 * id is "ORD<n>" or "<n>". No state; thread-safe.
 */
#ifndef OP_ROUTER_H
#define OP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

enum route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,		/* /healthz */
	ROUTE_READYZ,		/* /readyz */
	ROUTE_PROMETHEUS,	/* /metrics */
	ROUTE_ORDERS,		/* /orders: list, create */
	ROUTE_METRICS,		/* /orders/metrics */
	ROUTE_ORDER,		/* /orders/{id} */
	ROUTE_STATUS,		/* /orders/{id}/status */
	ROUTE_CANCEL,		/* /orders/{id}/cancel */
	ROUTE_COUNT,
};

struct route_info {
	enum route route;
	const char *path;	/* canonical form, "/api/orders/{order_id}/" */
	const char *allow;	/* the Allow header: "GET, HEAD, POST" */
};

/* The route of path (raw, still %-encoded); *id set for order routes. */
enum route router_match(const char *path, uint64_t *id);
/* Every route but ROUTE_NONE, in enum order. */
const struct route_info *router_table(size_t *n);
const struct route_info *router_info(enum route route);

#endif
