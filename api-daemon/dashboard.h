/*
 * dashboard: the page order-api serves at / and /dashboard/, a live view of
 * the orders for a browser, and the header lines it is sent with.
 *
 * Its sources are api-daemon/dashboard/ (index.html, dashboard.css,
 * dashboard.js); embed.py assembles them at build time into one page,
 * the CSS and the script inline, and computes the Content-Security-Policy
 * that allows exactly those two by their SHA-256. Nothing is read from
 * the disk or the network when it is served, and the server keeps no
 * state for it: the page polls the API's own routes.
 *
 * Read-only data; thread-safe.
 */
#ifndef OP_DASHBOARD_H
#define OP_DASHBOARD_H

#include <stddef.h>

/* The page, UTF-8 HTML, dashboard_page_len bytes (no NUL at the end). */
extern const unsigned char dashboard_page[];
extern const size_t dashboard_page_len;
/*
 * Header lines for the answer ("Name: value\r\n" each): its
 * Content-Security-Policy, X-Content-Type-Options and Referrer-Policy.
 */
extern const char dashboard_headers[];

#endif
