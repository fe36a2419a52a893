/* test_router: every path form of the contract reaches its route. */
#include <string.h>

#include "router.h"
#include "test.h"

static void
expect(const char *path, enum route want, uint64_t want_id)
{
	uint64_t id = 0;
	enum route got = router_match(path, &id);

	test_assert_msg(got == want, "%s: route %d, want %d", path, got, want);
	if (want_id != 0)
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
			expect(path, ROUTE_ORDERS, 0);
			snprintf(path, sizeof(path), "%s/orders/metrics%s",
			    prefixes[p], slashes[s]);
			expect(path, ROUTE_METRICS, 0);
			snprintf(path, sizeof(path), "%s/orders/ORD123%s",
			    prefixes[p], slashes[s]);
			expect(path, ROUTE_ORDER, 123);
			snprintf(path, sizeof(path), "%s/orders/123/status%s",
			    prefixes[p], slashes[s]);
			expect(path, ROUTE_STATUS, 123);
			snprintf(path, sizeof(path), "%s/orders/7/cancel%s",
			    prefixes[p], slashes[s]);
			expect(path, ROUTE_CANCEL, 7);
		}
	}
	expect("/healthz", ROUTE_HEALTHZ, 0);
	expect("/readyz/", ROUTE_READYZ, 0);
	expect("/metrics", ROUTE_PROMETHEUS, 0);
	expect("/orders/%4f%52%44%35", ROUTE_ORDER, 5);	/* "ORD5" */
}

TEST(test_no_route)
{
	static const char *const paths[] = { "/", "/api", "/api/", "/order",
		"/ordersx", "/orders//", "/orders/ORD", "/orders/ORD-1",
		"/orders/abc", "/orders/ORD99999999999999999999",
		"/orders/%00", "/orders/1%00", "/orders/1%2fstatus",
		"/orders/1/status/x", "/orders/1/statusx", "/orders/%zz",
		"/orders/%4", "/api/api/orders", "/orders/1//", "" };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		expect(paths[i], ROUTE_NONE, 0);
	expect(NULL, ROUTE_NONE, 0);
}

TEST(test_table)
{
	size_t n;
	const struct route_info *t = router_table(&n);

	test_assert(n == ROUTE_COUNT - 1);
	for (int r = ROUTE_NONE + 1; r < ROUTE_COUNT; r++) {
		test_assert(router_info((enum route)r) == &t[r - 1]);
		test_assert(t[r - 1].route == (enum route)r);
	}
	test_assert(router_info(ROUTE_NONE) == NULL);
}

int
main(void)
{
	RUN(test_forms);
	RUN(test_no_route);
	RUN(test_table);
	return 0;
}
