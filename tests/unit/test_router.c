/*
 * test_router: every path form the API accepts (with or without "/api"
 * and the trailing slash, %XX escapes, ORD<n> or <n>) reaches its route,
 * and every row of the route table is reachable and well formed.
 */
#include <string.h>

#include "router.h"
#include "test.h"

/* The row whose pattern is path; aborts if there is none. */
static const struct route *
row(const char *path)
{
	for (size_t i = 0; i < router_nroutes; i++)
		if (strcmp(router_routes[i].path, path) == 0)
			return &router_routes[i];
	test_assert_msg(0, "no row \"%s\"", path);
	return NULL;
}

/* path reaches the row of pattern want (NULL: none), with id want_id. */
static void
expect(const char *path, const char *want, uint64_t want_id)
{
	uint64_t id = 0;
	const struct route *got = router_match(path, &id);

	test_assert_msg(got == (want != NULL ? row(want) : NULL),
	    "%s: route %s, want %s", path, got != NULL ? got->path : "none",
	    want != NULL ? want : "none");
	test_assert_msg(id == want_id, "%s: id %llu, want %llu", path,
	    (unsigned long long)id, (unsigned long long)want_id);
}

TEST(test_forms)
{
	static const char *const prefixes[] = { "", "/api" };
	static const char *const slashes[] = { "", "/" };

	for (int p = 0; p < 2; p++) {
		for (int s = 0; s < 2; s++) {
			char path[128];

			snprintf(path, sizeof(path), "%s/orders%s", prefixes[p],
			    slashes[s]);
			expect(path, "/api/orders/", 0);
			snprintf(path, sizeof(path), "%s/orders/metrics%s",
			    prefixes[p], slashes[s]);
			expect(path, "/api/orders/metrics/", 0);
			snprintf(path, sizeof(path), "%s/orders/ORD123%s",
			    prefixes[p], slashes[s]);
			expect(path, "/api/orders/{order_id}/", 123);
			snprintf(path, sizeof(path), "%s/orders/123/status%s",
			    prefixes[p], slashes[s]);
			expect(path, "/api/orders/{order_id}/status/", 123);
			snprintf(path, sizeof(path), "%s/orders/7/cancel%s",
			    prefixes[p], slashes[s]);
			expect(path, "/api/orders/{order_id}/cancel/", 7);
			snprintf(path, sizeof(path), "%s/healthz%s",
			    prefixes[p], slashes[s]);
			expect(path, "/healthz", 0);
		}
	}
	/* The dashboard: the root alone, and /dashboard in every form. */
	expect("/", "/", 0);
	expect("/dashboard", "/dashboard/", 0);
	expect("/dashboard/", "/dashboard/", 0);
	expect("/api/dashboard", "/dashboard/", 0);
	expect("/api/dashboard/", "/dashboard/", 0);
	expect("/%64ashboard", "/dashboard/", 0);
	expect("/readyz/", "/readyz", 0);
	expect("/metrics", "/metrics", 0);
	expect("/orders/%4f%52%44%35", "/api/orders/{order_id}/", 5); /* ORD5 */
	expect("/orders/0", "/api/orders/{order_id}/", 0);
}

TEST(test_no_route)
{
	static const char *const paths[] = { "///", "/api", "/api/", "/order",
		"/ordersx", "/orders//", "/orders/ORD", "/orders/ORD-1",
		"/orders/abc", "/orders/ORD99999999999999999999",
		"/orders/%00", "/orders/1%00", "/orders/1%2fstatus",
		"/orders/1/status/x", "/orders/1/statusx", "/orders/%zz",
		"/orders/%4", "/api/api/orders", "/orders/1//", "",
		"orders", "healthz", "/healthz//", "/orders/metricsx",
		"/orders/1/cancel/status", "/{order_id}", "/orders/{order_id}",
		"/dashboardx", "/dashboard/x", "/dashboard//", "/index.html",
		"/%2f", "/ " };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		expect(paths[i], NULL, 0);
	expect(NULL, NULL, 0);
}

/*
 * Each row's pattern reaches that row, with and without "/api" and the
 * trailing slash, an order id in place of {order_id}; each takes some
 * method and the Allow header names exactly those.
 */
TEST(test_table)
{
	test_assert(router_nroutes > 0 && router_nroutes <= ROUTER_MAX_ROUTES);
	for (size_t i = 0; i < router_nroutes; i++) {
		const struct route *t = &router_routes[i];
		const char *base = t->path, *hole;
		char path[256], bare[256];
		size_t len;

		test_assert_msg(t->get != NULL || t->post != NULL, "%s: no "
		    "handler", t->path);
		test_assert_msg(row(t->path) == t, "%s: a second row", t->path);
		if (strncmp(base, "/api/", 5) == 0)
			base += 4;
		hole = strstr(base, "{order_id}");
		if (hole != NULL)
			snprintf(bare, sizeof(bare), "%.*sORD42%s",
			    (int)(hole - base), base, hole + 10);
		else
			snprintf(bare, sizeof(bare), "%s", base);
		len = strlen(bare);
		if (len > 1 && bare[len - 1] == '/')
			bare[--len] = '\0';
		if (strcmp(bare, "/") == 0) {
			/*
			 * The root, and "//" (its trailing slash); "/api"
			 * alone is no route.
			 */
			expect("/", t->path, 0);
			expect("//", t->path, 0);
			expect("/api", NULL, 0);
			expect("/api/", NULL, 0);
			expect("/api//", NULL, 0);
			continue;
		}
		for (int form = 0; form < 4; form++) {
			snprintf(path, sizeof(path), "%s%s%s",
			    form & 1 ? "/api" : "", bare, form & 2 ? "/" : "");
			expect(path, t->path, hole != NULL ? 42 : 0);
		}
		snprintf(path, sizeof(path), "%s%s%s",
		    t->get != NULL ? "GET, HEAD" : "",
		    t->get != NULL && t->post != NULL ? ", " : "",
		    t->post != NULL ? "POST" : "");
		test_assert_msg(strcmp(router_allow(t), path) == 0,
		    "%s: Allow: %s", t->path, router_allow(t));
	}
}

/* The Allow headers the API has always sent. */
TEST(test_allow)
{
	test_assert(strcmp(router_allow(row("/api/orders/")),
	    "GET, HEAD, POST") == 0);
	test_assert(strcmp(router_allow(row("/healthz")), "GET, HEAD") == 0);
	test_assert(strcmp(router_allow(row("/")), "GET, HEAD") == 0);
	test_assert(strcmp(router_allow(row("/dashboard/")), "GET, HEAD") == 0);
	test_assert(strcmp(router_allow(row("/api/orders/{order_id}/cancel/")),
	    "POST") == 0);
}

/*
 * Without a token: the probes, Prometheus' scrape and the dashboard's page
 * (whose API calls take the token), and nothing else.
 */
TEST(test_open)
{
	for (size_t i = 0; i < router_nroutes; i++) {
		const char *p = router_routes[i].path;
		bool want = strcmp(p, "/healthz") == 0 ||
		    strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0 ||
		    strcmp(p, "/") == 0 || strcmp(p, "/dashboard/") == 0;

		test_assert_msg(router_routes[i].open == want, "%s: open %d",
		    p, router_routes[i].open);
	}
}

int
main(void)
{
	RUN(test_forms);
	RUN(test_no_route);
	RUN(test_table);
	RUN(test_allow);
	RUN(test_open);
	return 0;
}
