/*
 * router: the table of the routes the API serves, and the matching of a
 * request's path against it.
 *
 * The table, router_routes, is the one place a route is declared: a row
 * gives its path pattern, whether it asks for the bearer token, and its
 * handler for each method it takes (which also make the Allow header of
 * a 405). It is defined in handlers.c, beside the handlers it names, so
 * that adding a route is a row and a function in one file, plus its
 * tests and its entry in docs/openapi.yaml. dispatch (http.c) answers
 * from the table alone; the per-route request counters (metrics.c),
 * tests/route-list (for the OpenAPI check), test_router and the router's
 * fuzzer read the same rows.
 *
 * A pattern is written in its canonical form, "/api/orders/{order_id}/":
 * literal text, and "{order_id}" for a segment that is an order id,
 * "ORD<n>" or "<n>" (order_id_parse). A request's path, raw as it came,
 * matches a pattern when, both taken to the same form, they are equal:
 *  - the path's %XX escapes are decoded; a bad escape, an escaped NUL or
 *    '/', or a decoded path longer than 255 bytes matches nothing;
 *  - one trailing slash is optional;
 *  - a leading "/api" segment is optional on every route ("/api/healthz"
 *    is /healthz) but the root, "/": "/api" and "/api/" (with or without
 *    a trailing slash) match nothing.
 * The first matching row in table order wins. An id is digits, so
 * "/orders/metrics" is never an order's; the table lists it first anyway.
 *
 * The table is read-only and the matcher keeps no state: thread-safe.
 */
#ifndef OP_ROUTER_H
#define OP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct request;		/* request.h */

/* Answers the request; returns the HTTP status it sent. */
typedef int route_handler(struct request *r);

struct route {
	const char *path;	/* the pattern, "/api/orders/{order_id}/" */
	bool open;		/* answered without the bearer token */
	route_handler *get;	/* GET, and HEAD (the head alone); or NULL */
	route_handler *post;	/* POST, or NULL */
};

/* At most this many rows (metrics counts requests per route). */
#define ROUTER_MAX_ROUTES 16

/* The table and its length (handlers.c). */
extern const struct route router_routes[];
extern const size_t router_nroutes;

/*
 * The row whose pattern path (raw, still %-encoded) matches, or NULL.
 * *id is set to the order id when the pattern has an {order_id}, and
 * left alone otherwise.
 */
const struct route *router_match(const char *path, uint64_t *id);
/* The methods route takes, as an Allow header's value: "GET, HEAD, POST". */
const char *router_allow(const struct route *route);

#endif
