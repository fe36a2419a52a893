/*
 * fuzz_router: libFuzzer target for router_match, the percent-decoding and
 * routing of a raw request path.
 *
 * The input is a C string (bytes up to the first NUL), as civetweb hands
 * over local_uri_raw. Invariants, each an abort:
 *  - the route is none (NULL) or a row of the table, router_routes;
 *  - *id is written only for a route whose pattern has an {order_id};
 *  - a matched path keeps its route and id when "/api" is added or taken
 *    away, when one trailing slash is added or taken away, and when its
 *    first plain character is written as a %XX escape instead (the router
 *    header: "/api" and the slash are optional, %XX is decoded). These
 *    are checked only while the changed path stays well inside the
 *    router's length limit. The root ("/") alone has no "/api" form.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "router.h"

#define UNSET UINT64_C(0xdeadbeefcafef00d)
/* Variants are checked only for raw paths shorter than this. */
#define VARIANT_MAX 200

static bool
is_order_route(const struct route *r)
{
	return r != NULL && strstr(r->path, "{order_id}") != NULL;
}

static const char *
name(const struct route *r)
{
	return r != NULL ? r->path : "none";
}

static const struct route *
match_checked(const char *path, uint64_t *id)
{
	const struct route *r;

	*id = UNSET;
	r = router_match(path, id);
	check(r == NULL || (r >= router_routes &&
	    r < router_routes + router_nroutes), "route %p for \"%s\"",
	    (const void *)r, path);
	check(is_order_route(r) || *id == UNSET,
	    "id set to %llu for route %s of \"%s\"",
	    (unsigned long long)*id, name(r), path);
	return r;
}

static void
check_same(const char *variant, const char *path, const struct route *r,
    uint64_t id)
{
	uint64_t vid;
	const struct route *vr = match_checked(variant, &vid);

	check(vr == r, "\"%s\" is route %s but \"%s\" is %s", path, name(r),
	    variant, name(vr));
	check(!is_order_route(r) || vid == id,
	    "\"%s\" has id %llu but \"%s\" has %llu", path,
	    (unsigned long long)id, variant, (unsigned long long)vid);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char variant[VARIANT_MAX + 8];
	const struct route *r;
	uint64_t id;
	size_t len;
	char *path;

	path = malloc(size + 1);
	if (path == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';

	r = match_checked(path, &id);
	len = strlen(path);
	if (r == NULL || len >= VARIANT_MAX)
		goto out;

	/*
	 * "/api" is optional. Only when the first five bytes hold no escape
	 * does the raw text show whether the decoded path starts "/api/".
	 * The root ("/", the dashboard) has no "/api" form: "/api/" alone is
	 * no route.
	 */
	if (memchr(path, '%', len < 5 ? len : 5) == NULL &&
	    strcmp(r->path, "/") != 0) {
		if (strncmp(path, "/api/", 5) == 0)
			snprintf(variant, sizeof(variant), "%s", path + 4);
		else
			snprintf(variant, sizeof(variant), "/api%s", path);
		check_same(variant, path, r, id);
	}

	/* One trailing slash is optional. */
	snprintf(variant, sizeof(variant), "%s", path);
	if (len > 1 && variant[len - 1] == '/')
		variant[len - 1] = '\0';
	else if (len > 0 && variant[len - 1] != '/')
		snprintf(variant + len, sizeof(variant) - len, "/");
	check_same(variant, path, r, id);

	/* An escape decodes to the character it stands for. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)path[i];

		if (ch == '%') {
			i += 2;	/* an escape is not a plain character */
			continue;
		}
		if (ch == '/')
			continue;
		snprintf(variant, sizeof(variant), "%.*s%%%02X%s", (int)i,
		    path, ch, path + i + 1);
		check_same(variant, path, r, id);
		break;
	}
out:
	free(path);
	return 0;
}
