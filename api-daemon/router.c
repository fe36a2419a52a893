#include "router.h"

#include <stdbool.h>
#include <string.h>

#include "order.h"

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

/* The placeholder of an order id in a pattern. */
#define ORDER_ID_SEGMENT "{order_id}"

/*
 * Does the pattern match p, a decoded path in the router's form (one
 * trailing slash and "/api" taken off)? The pattern is brought to the
 * same form here. *id is set only on a match with an {order_id}.
 */
static bool
pattern_match(const char *pattern, const char *p, uint64_t *id)
{
	const char *end;
	size_t n, idlen = strlen(ORDER_ID_SEGMENT);
	uint64_t parsed = 0;
	bool has_id = false;

	take_segment(&pattern, "/api");
	end = pattern + strlen(pattern);
	if (end - pattern > 1 && end[-1] == '/')
		end--;
	while (pattern < end) {
		if ((size_t)(end - pattern) >= idlen &&
		    strncmp(pattern, ORDER_ID_SEGMENT, idlen) == 0) {
			n = strcspn(p, "/");
			if (order_id_parse(p, n, &parsed) != 0)
				return false;
			has_id = true;
			p += n;
			pattern += idlen;
		} else if (*pattern++ != *p++) {
			return false;
		}
	}
	if (*p != '\0')
		return false;
	if (has_id)
		*id = parsed;
	return true;
}

const struct route *
router_match(const char *path, uint64_t *id)
{
	char buf[256];
	size_t len;
	const char *p;

	if (path == NULL || (len = percent_decode(path, buf, sizeof(buf))) == 0)
		return NULL;
	if (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	p = buf;
	/* "/api" alone is no route, nor is "/api/" (the root has no "/api"). */
	if (take_segment(&p, "/api") && (*p == '\0' || strcmp(p, "/") == 0))
		return NULL;
	for (size_t i = 0; i < router_nroutes; i++)
		if (pattern_match(router_routes[i].path, p, id))
			return &router_routes[i];
	return NULL;
}

const char *
router_allow(const struct route *route)
{
	if (route->get != NULL)
		return route->post != NULL ? "GET, HEAD, POST" : "GET, HEAD";
	return route->post != NULL ? "POST" : "";
}
