#include "router.h"

#include <stdbool.h>
#include <string.h>

#include "order.h"

static const struct route_info routes[] = {
	{ ROUTE_HEALTHZ, "/healthz", "GET, HEAD" },
	{ ROUTE_READYZ, "/readyz", "GET, HEAD" },
	{ ROUTE_PROMETHEUS, "/metrics", "GET, HEAD" },
	{ ROUTE_ORDERS, "/api/orders/", "GET, HEAD, POST" },
	{ ROUTE_METRICS, "/api/orders/metrics/", "GET, HEAD" },
	{ ROUTE_ORDER, "/api/orders/{order_id}/", "GET, HEAD" },
	{ ROUTE_STATUS, "/api/orders/{order_id}/status/", "GET, HEAD" },
	{ ROUTE_CANCEL, "/api/orders/{order_id}/cancel/", "POST" },
};

const struct route_info *
router_table(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

const struct route_info *
router_info(enum route route)
{
	if (route <= ROUTE_NONE || route >= ROUTE_COUNT)
		return NULL;
	return &routes[route - 1];
}

/* Does the path start with the segment seg ("/orders"), ending there? */
static bool
take_segment(const char **path, const char *seg)
{
	size_t n = strlen(seg);

	if (strncmp(*path, seg, n) != 0 || ((*path)[n] != '/' &&
	    (*path)[n] != '\0'))
		return false;
	*path += n;
	return true;
}

static int
hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decode %XX escapes of the raw path into buf (civetweb's own decoding is
 * off: it would turn "%00" into an early end of the string). Returns the
 * length, or 0 for a path no route can match: too long, a bad escape, or
 * an escaped NUL or '/'.
 */
static size_t
percent_decode(const char *path, char *buf, size_t size)
{
	size_t n = 0;

	for (const char *p = path; *p != '\0'; p++) {
		char ch = *p;

		if (ch == '%') {
			int hi = hex_value(p[1]), lo = hi < 0 ? -1
			    : hex_value(p[2]);

			if (lo < 0)
				return 0;
			ch = (char)(hi << 4 | lo);
			if (ch == '\0' || ch == '/')
				return 0;
			p += 2;
		}
		if (n + 1 >= size)
			return 0;
		buf[n++] = ch;
	}
	buf[n] = '\0';
	return n;
}

/*
 * The route of a path: "/api" is optional, one trailing slash is
 * optional, and ids are "ORD<n>" or "<n>".
 */
enum route
router_match(const char *path, uint64_t *id)
{
	char buf[256];
	size_t len;
	const char *p, *slash;
	enum route route;
	uint64_t parsed;

	if (path == NULL || (len = percent_decode(path, buf, sizeof(buf))) == 0)
		return ROUTE_NONE;
	if (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	p = buf;
	if (take_segment(&p, "/api") && *p == '\0')
		return ROUTE_NONE;
	if (strcmp(p, "/healthz") == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(p, "/metrics") == 0)
		return ROUTE_PROMETHEUS;
	if (strcmp(p, "/readyz") == 0)
		return ROUTE_READYZ;
	if (!take_segment(&p, "/orders"))
		return ROUTE_NONE;
	if (*p == '\0')
		return ROUTE_ORDERS;
	p++;
	if (strcmp(p, "metrics") == 0)
		return ROUTE_METRICS;
	slash = strchr(p, '/');
	if (order_id_parse(p, slash != NULL ? (size_t)(slash - p) : strlen(p),
	    &parsed) != 0)
		return ROUTE_NONE;
	if (slash == NULL)
		route = ROUTE_ORDER;
	else if (strcmp(slash, "/status") == 0)
		route = ROUTE_STATUS;
	else if (strcmp(slash, "/cancel") == 0)
		route = ROUTE_CANCEL;
	else
		return ROUTE_NONE;
	*id = parsed;	/* only for a route that is an order's */
	return route;
}

