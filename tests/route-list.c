/*
 * route-list: print every (method, path) the API serves, from the router's
 * own table, one "METHOD PATH" a line ("GET /api/orders/{order_id}/").
 * HEAD, which every GET route also takes, is left out.
 */
#include <stdio.h>

#include "router.h"

int
main(void)
{
	for (size_t i = 0; i < router_nroutes; i++) {
		if (router_routes[i].get != NULL)
			printf("GET %s\n", router_routes[i].path);
		if (router_routes[i].post != NULL)
			printf("POST %s\n", router_routes[i].path);
	}
	return 0;
}
