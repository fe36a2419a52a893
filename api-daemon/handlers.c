/*
 * handlers: what order-api answers on each route, and the route table
 * that names them (router.h).
 *
 * A handler is called by dispatch (http.c) once the request's framing,
 * route, bearer token and method are checked; it answers through the
 * request API (request.h) and never talks to civetweb itself. Handlers
 * run on civetweb's threads, many at once: what they share is r->ctx
 * (http.h), whose store and committer are thread-safe, and the table of
 * Idempotency-Keys in flight, under its lock.
 *
 * Reads of orders (an order, a list) first wait for the orders accepted
 * before them to reach LMDB (committer_wait_*), so that a client reads
 * what it was told is stored; creates and cancels go through the
 * committer (committer.h).
 */
#include <pthread.h>
#include <sha256.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "dashboard.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "order.h"
#include "request.h"
#include "router.h"
#include "store.h"
#include "strbuf.h"

/* /readyz wants a worker heartbeat at most this old. */
#define HEARTBEAT_MAX_AGE_MS 10000

static void
sha256(const char *data, size_t len, uint8_t digest[ORDER_DIGEST_LEN])
{
	SHA256_CTX ctx;

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)data, len);
	SHA256Final(digest, &ctx);
}

/* 400 for a bad query parameter, the original's shape: {"limit": ["..."]} */
static int
respond_field_error(struct request *r, const char *field, const char *msg)
{
	strbuf_reset(&r->body);
	strbuf_puts(&r->body, "{");
	strbuf_json_string(&r->body, field);
	strbuf_puts(&r->body, ": [");
	strbuf_json_string(&r->body, msg);
	strbuf_puts(&r->body, "]}");
	return respond(r, 400, NULL);
}

/* An error of the store's (what: "read an order"): 404, else 503. */
static int
respond_store_error(struct request *r, int rc, const char *what)
{
	static struct log_limit limit = LOG_LIMIT_INIT;

	if (rc == STORE_ENOTFOUND)
		return respond_not_found(r);
	log_limited(&limit, LOG_LEVEL_ERROR, rc, "could not %s: %s", what,
	    store_strerror(rc));
	if (rc == STORE_EFULL || rc == STORE_EDISKFULL)
		return respond_detail(r, 503, "Storage is full; nothing was "
		    "stored. Try again later.", "Retry-After: 60\r\n");
	if (rc == STORE_ENOIDS)
		return respond_detail(r, 503, "This instance has handed out "
		    "every order id it owns; nothing was stored. Create "
		    "orders on another instance.", NULL);
	return respond_detail(r, 503, "Storage is unavailable; nothing was "
	    "stored. Try again later.", "Retry-After: 5\r\n");
}

/*
 * A read that waited for recent orders to reach LMDB (committer_wait_*)
 * and could not.
 */
static int
respond_wait_error(struct request *r, int rc)
{
	static struct log_limit limit = LOG_LIMIT_INIT;

	if (rc == COMMITTER_ETIMEDOUT)
		return respond_detail(r, 503, "Orders accepted in the last "
		    "moments are not readable yet: they could not be "
		    "committed in time. Try again.", "Retry-After: 1\r\n");
	log_limited(&limit, LOG_LEVEL_ERROR, rc, "could not read orders "
	    "accepted in the last moments: their commit failed: %s",
	    store_strerror(rc));
	return respond_detail(r, 503, "Storage is unavailable: orders "
	    "accepted in the last moments are kept and not readable yet. "
	    "Try again later.", "Retry-After: 5\r\n");
}

/* "application/json", any case, parameters allowed; absent is JSON too. */
static bool
content_type_is_json(const char *ct)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	if (ct == NULL)
		return true;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, json, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/*
 * Idempotency-Keys of the creates being handled right now: a retry that
 * arrives while the first is still being committed gets 409. One slot per
 * HTTP thread is enough, since a thread handles one request at a time.
 */
static int
inflight_add(struct http_context *ctx, const char *key)
{
	int free_slot = -1;

	pthread_mutex_lock(&ctx->inflight_lock);
	for (unsigned i = 0; i < ctx->cfg->threads; i++) {
		if (ctx->inflight[i][0] == '\0') {
			if (free_slot < 0)
				free_slot = (int)i;
		} else if (strcmp(ctx->inflight[i], key) == 0) {
			free_slot = -1;
			break;
		}
	}
	if (free_slot >= 0)
		strcpy(ctx->inflight[free_slot], key);
	pthread_mutex_unlock(&ctx->inflight_lock);
	return free_slot;
}

static void
inflight_remove(struct http_context *ctx, int slot)
{
	pthread_mutex_lock(&ctx->inflight_lock);
	ctx->inflight[slot][0] = '\0';
	pthread_mutex_unlock(&ctx->inflight_lock);
}

/* 201, with the order's Location; replayed: the first create's answer. */
static int
respond_created(struct request *r, uint64_t order_id, bool replayed)
{
	char id[ORDER_ID_BUFSZ], headers[128];

	order_id_format(order_id, id);
	snprintf(headers, sizeof(headers), "Location: /api/orders/%s/\r\n%s",
	    id, replayed ? "Idempotent-Replayed: true\r\n" : "");
	strbuf_printf(&r->body, "{\"message\": \"Order received.\", "
	    "\"order_id\": \"%s\"}", id);
	return respond(r, 201, headers);
}

static int
respond_idem_mismatch(struct request *r)
{
	return respond_detail(r, 422, "This Idempotency-Key was used with "
	    "another request body.", NULL);
}

/*
 * Decode, commit, answer: the body of a create once it is read. slot (or
 * -1) is key's in-flight slot, released once the commit's outcome is
 * known and before the answer goes out: a retry sent the moment the
 * answer arrives must find the key stored (or free), never in flight.
 */
static int
create_order(struct request *r, const char *body, size_t len,
    const char *key, int slot)
{
	struct strbuf err;
	struct order o;
	int rc, committed = 0, status;

	order_init(&o);
	strbuf_init(&err);
	rc = order_decode_request(body, len, &o, &err);
	if (rc == 0) {
		if (key != NULL) {
			o.idem_key = key;
			sha256(body, len, o.idem_digest);
		}
		committed = committer_submit(r->ctx->committer, &o);
	}
	if (slot >= 0)
		inflight_remove(r->ctx, slot);
	if (rc == -1) {
		strbuf_finish(&r->body);
		r->body = err;
		strbuf_init(&err);
		status = respond(r, 400, NULL);
		goto out;
	}
	if (rc != 0) {
		status = respond_detail(r, 503, "Out of memory.", NULL);
		goto out;
	}
	rc = committed;
	if (rc == COMMITTER_ETIMEDOUT)
		status = respond_detail(r, 503, "The order was not stored: "
		    "it could not be committed in time. Try again.",
		    "Retry-After: 1\r\n");
	else if (rc == COMMITTER_EUNKNOWN)
		status = respond_detail(r, 500, "The order may or may not "
		    "have been stored: the journal could not be written. "
		    "Retry with the same Idempotency-Key, or look the order "
		    "up.", NULL);
	else if (rc != 0)
		status = respond_store_error(r, rc, "store a new order");
	else if (o.idem_result == ORDER_IDEM_MISMATCH)
		status = respond_idem_mismatch(r);
	else
		status = respond_created(r, o.id,
		    o.idem_result == ORDER_IDEM_REPLAY);
out:
	strbuf_finish(&err);
	order_finish(&o);
	return status;
}

/*
 * POST /orders: a new order, its JSON body checked (order.h). With an
 * Idempotency-Key, a key seen before answers as the first time (or 422
 * for another body) and one still in flight 409.
 */
static int
handle_create(struct request *r)
{
	const char *ct = request_header(r, "Content-Type");
	const char *key = request_header(r, "Idempotency-Key");
	uint8_t digest[ORDER_DIGEST_LEN], first_digest[ORDER_DIGEST_LEN];
	uint64_t first;
	char *body;
	size_t len;
	int slot = -1, rc, status;

	if (!content_type_is_json(ct)) {
		char detail[160];

		snprintf(detail, sizeof(detail), "Unsupported media type "
		    "\"%.64s\" in request; send application/json.", ct);
		return respond_detail(r, 415, detail, NULL);
	}
	if (key != NULL && !order_idem_key_valid(key))
		return respond_detail(r, 400, "An Idempotency-Key is 1-255 "
		    "printable ASCII characters.", NULL);
	if ((status = request_read_body(r, &body, &len)) != 0)
		return status;
	if (key == NULL) {
		status = create_order(r, body, len, NULL, -1);
		free(body);
		return status;
	}

	if ((slot = inflight_add(r->ctx, key)) < 0) {
		free(body);
		return respond_detail(r, 409, "A request with this "
		    "Idempotency-Key is still being processed; retry later.",
		    "Retry-After: 1\r\n");
	}
	/* Seen before: answer as the first time, or 422 for another body. */
	sha256(body, len, digest);
	rc = store_idem_get(r->ctx->store, key, &first, first_digest);
	if (rc == STORE_ENOTFOUND) {
		status = create_order(r, body, len, key, slot);
		free(body);
		return status;
	}
	inflight_remove(r->ctx, slot);
	if (rc == 0)
		status = memcmp(digest, first_digest, sizeof(digest)) == 0
		    ? respond_created(r, first, true)
		    : respond_idem_mismatch(r);
	else
		status = respond_store_error(r, rc, "look up an "
		    "Idempotency-Key");
	free(body);
	return status;
}

/*
 * The order of a GET, once the orders accepted before this request have
 * reached LMDB. Returns 0, or the status already sent.
 */
static int
read_order(struct request *r, struct order *o)
{
	int rc;

	if ((rc = committer_wait_order(r->ctx->committer, r->order_id)) != 0)
		return respond_wait_error(r, rc);
	if ((rc = store_get(r->ctx->store, r->order_id, o)) != 0)
		return respond_store_error(r, rc, "read an order");
	return 0;
}

/* The order's id and status: {"order_id": "ORD1", "status": "Pending"}. */
static void
encode_status(const struct order *o, struct strbuf *out)
{
	char oid[ORDER_ID_BUFSZ];

	order_id_format(o->id, oid);
	strbuf_printf(out, "{\"order_id\": \"%s\", \"status\": \"%s\"}", oid,
	    order_status_name(o->status));
}

/* A GET of the order, answered with encode's JSON of it. */
static int
answer_order(struct request *r,
    void (*encode)(const struct order *, struct strbuf *))
{
	struct order o;
	int status;

	order_init(&o);
	if ((status = read_order(r, &o)) == 0) {
		encode(&o, &r->body);
		status = respond(r, 200, NULL);
	}
	order_finish(&o);
	return status;
}

/* GET /orders/{order_id}: the whole order. */
static int
handle_order(struct request *r)
{
	return answer_order(r, order_encode_json);
}

/* GET /orders/{order_id}/status: its status alone. */
static int
handle_status(struct request *r)
{
	return answer_order(r, encode_status);
}

/* POST /orders/{order_id}/cancel: a Pending order becomes Cancelled. */
static int
handle_cancel(struct request *r)
{
	uint64_t id = r->order_id;
	struct order o;
	int rc, status;

	/* Cancel takes no body; one that is sent is read and dropped. */
	if ((status = request_skip_body(r)) != 0)
		return status;
	order_init(&o);
	/*
	 * Through the committer, whose thread alone waits for LMDB's writer
	 * lock: a cancel then has the creates' deadline. Ids start at 1.
	 */
	rc = id == 0 ? STORE_ENOTFOUND :
	    committer_cancel(r->ctx->committer, id, &o);
	if (rc == COMMITTER_ETIMEDOUT) {
		status = respond_detail(r, 503, "The order was not cancelled: "
		    "it could not be committed in time. Try again.",
		    "Retry-After: 1\r\n");
	} else if (rc == STORE_ECONFLICT) {
		char detail[128], oid[ORDER_ID_BUFSZ];

		order_id_format(id, oid);
		snprintf(detail, sizeof(detail), "Only a Pending order can be "
		    "cancelled; %s is %s.", oid, order_status_name(o.status));
		status = respond_detail(r, 409, detail, NULL);
	} else if (rc != 0) {
		status = respond_store_error(r, rc, "read an order");
	} else {
		order_encode_json(&o, &r->body);
		log_info("order ORD%llu cancelled", (unsigned long long)id);
		status = respond(r, 200, NULL);
	}
	order_finish(&o);
	return status;
}

/*
 * A list is built in pieces of about this many bytes: one piece is the
 * whole answer (with a Content-Length) for most lists; a longer one is
 * written piece by piece as chunks, each piece read in its own short read
 * transaction, so no answer sits whole in memory (a thousand orders of a
 * thousand items each would be 5 MB) and no read transaction waits on a
 * client that reads slowly.
 */
#define LIST_PIECE_BYTES (64 * 1024)

struct list_state {
	struct strbuf *out;
	unsigned n;		/* orders in the answer so far */
	unsigned limit;		/* orders the answer may hold */
	uint64_t last;		/* the last of them */
	bool paused;		/* out holds a piece: send it, go on after last */
};

static int
list_one(const struct order *o, void *arg)
{
	struct list_state *ls = arg;

	if (ls->n++ > 0)
		strbuf_puts(ls->out, ", ");
	order_encode_json(o, ls->out);
	ls->last = o->id;
	if (strbuf_failed(ls->out))
		return -1;
	/*
	 * The limit-th order never pauses: the walk then goes on to the
	 * next match, which tells whether there is a next page.
	 */
	if (ls->out->len >= LIST_PIECE_BYTES && ls->n < ls->limit) {
		ls->paused = true;
		return -1;
	}
	return 0;
}

static void
list_end(struct strbuf *out, uint64_t next)
{
	char id[ORDER_ID_BUFSZ];

	if (next != 0) {
		order_id_format(next, id);
		strbuf_printf(out, "], \"next\": \"%s\"}", id);
	} else {
		strbuf_puts(out, "], \"next\": null}");
	}
}

/*
 * A list longer than a piece: the first piece is in r->body and ls is
 * paused after it. Send it, and the rest, piece by piece. Once the head
 * is sent the status cannot change: an error cuts the answer short.
 */
static int
list_stream(struct request *r, struct store_filter *f, struct list_state *ls)
{
	uint64_t next = 0;
	int rc;

	if (r->head)
		return respond_chunks_end(r, true);
	while (ls->paused) {
		if (!respond_chunk(r, r->body.data, r->body.len))
			return respond_chunks_end(r, false);
		strbuf_reset(&r->body);
		f->after = ls->last;
		f->limit = ls->limit - ls->n;
		ls->paused = false;
		rc = store_list(r->ctx->store, f, list_one, ls, &next);
		if (rc != 0 && !ls->paused) {
			log_error("could not list orders: %s",
			    strbuf_failed(&r->body) ? "out of memory"
			    : store_strerror(rc));
			return respond_chunks_end(r, false);
		}
	}
	list_end(&r->body, next);
	return respond_chunks_end(r, respond_chunk(r, r->body.data,
	    r->body.len));
}

/* Reads a decimal query parameter; -1: absent, -2: bad. */
static int
query_number(struct request *r, const char *name, uint64_t max,
    uint64_t *out, char *raw, size_t raw_len)
{
	int n = request_query(r, name, raw, raw_len);
	uint64_t v = 0;

	if (n < 0)
		return n == -1 ? -1 : -2;
	if (n == 0)
		return -1;	/* "limit=" is no limit given */
	for (int i = 0; i < n; i++) {
		if (raw[i] < '0' || raw[i] > '9' || v > max / 10)
			return -2;
		v = v * 10 + (uint64_t)(raw[i] - '0');
	}
	if (v > max)
		return -2;
	*out = v;
	return 0;
}

/*
 * GET /orders?user_id=&status=&after=&limit=&order=: a page of orders by
 * id, oldest first, or newest first with order=desc.
 */
static int
handle_list(struct request *r)
{
	struct store_filter f = { .limit = 100 };
	struct list_state ls = { .out = &r->body };
	uint64_t v, next;
	char raw[64];
	bool nothing;
	int n, rc;

	if ((n = query_number(r, "limit", 1000, &v, raw, sizeof(raw))) == 0) {
		if (v < 1)
			n = -2;
		f.limit = (uint32_t)v;
	}
	if (n == -2)
		return respond_field_error(r, "limit",
		    "Ensure this value is a whole number from 1 to 1000.");
	n = query_number(r, "user_id", (uint64_t)ORDER_MAX_INTEGER, &v, raw,
	    sizeof(raw));
	if (n == -2 || (n == 0 && v == 0))
		return respond_field_error(r, "user_id",
		    "A valid integer is required.");
	if (n == 0)
		f.user_id = v;
	n = request_query(r, "status", raw, sizeof(raw));
	if (n == -2 || (n > 0 && order_status_parse(raw, &f.status) != 0))
		return respond_field_error(r, "status", "Select one of "
		    "Pending, Processing, Completed, Cancelled.");
	f.by_status = n > 0;
	n = request_query(r, "order", raw, sizeof(raw));
	if (n == -2 || (n > 0 && strcmp(raw, "asc") != 0 &&
	    strcmp(raw, "desc") != 0))
		return respond_field_error(r, "order",
		    "Select one of asc, desc.");
	f.desc = n > 0 && strcmp(raw, "desc") == 0;
	n = request_query(r, "after", raw, sizeof(raw));
	if (n == -2 || (n > 0 && order_id_parse(raw, (size_t)n, &f.after) != 0))
		return respond_field_error(r, "after",
		    "Give an order id such as ORD123.");
	/* Newest first, after ORD0 is below every id (0 is no cursor). */
	nothing = f.desc && n > 0 && f.after == 0;

	if ((rc = committer_wait_all(r->ctx->committer)) != 0)
		return respond_wait_error(r, rc);
	ls.limit = f.limit;
	strbuf_puts(&r->body, "{\"results\": [");
	next = 0;
	rc = nothing ? 0 : store_list(r->ctx->store, &f, list_one, &ls, &next);
	if (ls.paused)
		return list_stream(r, &f, &ls);
	if (rc != 0 && !strbuf_failed(&r->body))
		return respond_store_error(r, rc, "list orders");
	list_end(&r->body, next);
	return respond(r, 200, NULL);
}

/* GET /orders/metrics: counts by status and the average processing time. */
static int
handle_metrics(struct request *r)
{
	struct store_counters c;
	int rc;

	if ((rc = committer_counters(r->ctx->committer, &c)) != 0)
		return respond_store_error(r, rc, "read the counters");
	metrics_json(&c, &r->body);
	return respond(r, 200, NULL);
}

/* 503 of a probe: {"status": "unavailable", "detail": why} */
static int
respond_unavailable(struct request *r, const char *why)
{
	strbuf_puts(&r->body, "{\"status\": \"unavailable\", \"detail\": ");
	strbuf_json_string(&r->body, why);
	strbuf_puts(&r->body, "}");
	return respond(r, 503, NULL);
}

/*
 * GET /healthz: up unless the store is unusable (the process is about to
 * exit) or the journal could not be written.
 */
static int
handle_healthz(struct request *r)
{
	char why[160];
	int rc = store_broken(r->ctx->store);

	if (rc != 0) {
		snprintf(why, sizeof(why), "the LMDB environment is unusable: "
		    "%s", store_strerror(rc));
		return respond_unavailable(r, why);
	}
	if ((rc = committer_broken(r->ctx->committer)) != 0) {
		snprintf(why, sizeof(why), "the journal could not be written: "
		    "%s", strerror(rc));
		return respond_unavailable(r, why);
	}
	strbuf_puts(&r->body, "{\"status\": \"ok\"}");
	return respond(r, 200, NULL);
}

/* GET /readyz: 200 if the API can take work, else 503 and why not. */
static int
handle_readyz(struct request *r)
{
	struct committer_stats cs;
	struct store_counters c;
	const char *why = NULL;
	int broken = store_broken(r->ctx->store);
	char buf[160];

	committer_stats(r->ctx->committer, &cs);
	if (atomic_load(&r->ctx->stopping))
		why = "the API is shutting down";
	else if (broken != 0) {
		snprintf(buf, sizeof(buf), "the LMDB environment is unusable: "
		    "%s", store_strerror(broken));
		why = buf;
	} else if ((broken = committer_broken(r->ctx->committer)) != 0) {
		snprintf(buf, sizeof(buf), "the journal could not be written: "
		    "%s", strerror(broken));
		why = buf;
	} else if (cs.last_commit_error != 0) {
		snprintf(buf, sizeof(buf), "the last commit failed: %s",
		    store_strerror(cs.last_commit_error));
		why = buf;
	} else if (cs.stalled) {
		why = "creates time out: accepted orders waited more than "
		    "--commit-timeout-ms for their LMDB commit (LMDB's "
		    "writer lock is held)";
	} else if (store_counters(r->ctx->store, &c) != 0)
		why = "LMDB cannot be read";
	else if (!cs.queue_open)
		why = "the message queue is not open";
	else if (c.heartbeat_ms == 0)
		why = "no worker has shown a heartbeat yet";
	else if (clock_realtime_ms() - c.heartbeat_ms > HEARTBEAT_MAX_AGE_MS)
		why = "no worker heartbeat in the last 10 seconds";
	if (why != NULL)
		return respond_unavailable(r, why);
	strbuf_puts(&r->body, "{\"status\": \"ready\"}");
	return respond(r, 200, NULL);
}

/* GET /metrics: the Prometheus text exposition format, version 0.0.4. */
static int
handle_prometheus(struct request *r)
{
	struct metrics_snapshot snap = { .requests = &r->ctx->requests };
	int rc;

	if ((rc = committer_counters(r->ctx->committer, &snap.counters)) != 0)
		return respond_store_error(r, rc, "read the counters");
	store_usage(r->ctx->store, &snap.map_used_bytes, &snap.map_size_bytes);
	committer_stats(r->ctx->committer, &snap.committer);
	snap.now_ms = clock_realtime_ms();
	snap.in_flight = atomic_load(&r->ctx->active_requests);
	metrics_prometheus(&snap, &r->body);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return respond(r, 200, NULL);
}

/*
 * GET / and /dashboard/: the dashboard (dashboard.h), one page with its
 * script and style inline, answered without the token (the API calls it
 * makes ask for one). no-cache: a browser revalidates it, so a new build
 * is seen at the next load.
 */
static int
handle_dashboard(struct request *r)
{
	strbuf_append(&r->body, (const char *)dashboard_page,
	    dashboard_page_len);
	r->content_type = "text/html; charset=utf-8";
	r->cache_control = "no-cache";
	return respond(r, 200, dashboard_headers);
}

/*
 * The routes: each path the API serves, declared here and nowhere else
 * (router.h tells how a request's path matches a pattern, and what the
 * fields are). A route takes the bearer token, when --api-token-file is
 * set, unless it is open: the probes, Prometheus' scrape and the
 * dashboard's page (not the API calls it makes) are.
 *
 * The table holds the handlers themselves, so it stands beside them: a
 * new route is a row and a function in this file, and the compiler
 * checks that each row's handlers exist. The price is that whatever
 * reads the table (route-list, test_router, the router's fuzzer) links
 * order-api's modules, built as a library for that (meson.build); a
 * table of names and methods apart from a parallel array of handlers
 * would spare that link, but a route would again be declared in two
 * places that only a test keeps in step.
 */
const struct route router_routes[] = {
	{ "/healthz", .open = true, .get = handle_healthz },
	{ "/readyz", .open = true, .get = handle_readyz },
	{ "/metrics", .open = true, .get = handle_prometheus },
	{ "/api/orders/", .get = handle_list, .post = handle_create },
	{ "/api/orders/metrics/", .get = handle_metrics },
	{ "/api/orders/{order_id}/", .get = handle_order },
	{ "/api/orders/{order_id}/status/", .get = handle_status },
	{ "/api/orders/{order_id}/cancel/", .post = handle_cancel },
	{ "/", .open = true, .get = handle_dashboard },
	{ "/dashboard/", .open = true, .get = handle_dashboard },
};
const size_t router_nroutes = sizeof(router_routes) / sizeof(router_routes[0]);
_Static_assert(sizeof(router_routes) / sizeof(router_routes[0]) <=
    ROUTER_MAX_ROUTES, "more routes than ROUTER_MAX_ROUTES (router.h)");
