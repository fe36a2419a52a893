/*
 * route-list: print every (method, path) the API serves, from the router's
 * own table, one "METHOD PATH" a line ("GET /api/orders/{order_id}/").
 * HEAD, which every GET route also takes, is left out.
 */
#include <stdio.h>
#include <string.h>

#include "router.h"

int
main(void)
{
	size_t n;
	const struct route_info *routes = router_table(&n);

	for (size_t i = 0; i < n; i++) {
		char allow[64];

		snprintf(allow, sizeof(allow), "%s", routes[i].allow);
		for (char *m = strtok(allow, ", "); m != NULL;
		    m = strtok(NULL, ", "))
			if (strcmp(m, "HEAD") != 0)
				printf("%s %s\n", m, routes[i].path);
	}
	return 0;
}
