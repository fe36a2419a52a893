#include "http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "order.h"
#include "strbuf.h"

struct http_server {
	struct mg_context *mg;
	struct http_context *ctx;
};

/* One request being answered. */
struct request {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	struct http_context *ctx;
	struct conn *cn;	/* NULL: civetweb gave none */
	const char *method;
	bool head;		/* HEAD: headers as for GET, no body */
	bool http10;		/* HTTP/1.0: no chunks, keep-alive on request */
	const struct route *route;	/* NULL: none (yet) */
	uint64_t order_id;	/* of a route with an {order_id} */
	const char *content_type;
	int64_t started_us;	/* monotonic, for the access log */
	bool body_read;		/* all of the request's body was read */
	bool closing;		/* answer with Connection: close, and close */
	struct strbuf body;	/* the response body */
};

static void
sha256(const char *data, size_t len, uint8_t digest[ORDER_DIGEST_LEN])
{
	SHA256_CTX ctx;

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)data, len);
	SHA256Final(digest, &ctx);
}

static const char *
status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/*
 * After an answer that did not read the request's body (413, 404, ...),
 * before the close: read what is left for up to a second, so that a
 * client still sending it reads the answer, not a reset (a socket closed
 * with unread data is reset). No longer: a byte a second would hold this
 * thread for ever.
 */
static void
drop_unread_body(struct request *r)
{
	int64_t deadline = clock_monotonic_us() + 1000000;
	long long left = r->ri->content_length;
	char byte;

	while (left > 0 && clock_monotonic_us() < deadline &&
	    mg_read(r->conn, &byte, 1) == 1)
		left--;
}

/* Whether civetweb keeps the connection open after this request. */
static bool
client_keeps_alive(const struct request *r)
{
	const char *connection = mg_get_header(r->conn, "Connection");

	if (connection == NULL)
		return strcmp(r->ri->http_version, "1.1") == 0;
	return strcasestr(connection, "keep-alive") != NULL;
}

/*
 * The status line and headers of an answer, into out. length is the
 * body's size, or -1 for a body sent in chunks (HTTP/1.1) or up to the
 * close (HTTP/1.0).
 */
static void
head_printf(struct request *r, struct strbuf *out, int status,
    const char *extra, long long length)
{
	bool keeps = client_keeps_alive(r);

	if (length < 0 && r->http10)
		r->closing = true;
	strbuf_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n", status, status_text(status),
	    r->content_type);
	if (length >= 0)
		strbuf_printf(out, "Content-Length: %lld\r\n", length);
	else if (!r->http10)
		strbuf_puts(out, "Transfer-Encoding: chunked\r\n");
	strbuf_printf(out, "Cache-Control: no-store\r\n%s%s\r\n",
	    extra != NULL ? extra : "",
	    r->closing || !keeps ? "Connection: close\r\n"
	    : r->http10 ? "Connection: keep-alive\r\n" : "");
}

/*
 * Once an answer is written: count it, log it, and keep the promise of
 * its "Connection: close" (civetweb would otherwise go on reading the
 * connection for as long as the client keeps it alive).
 */
static int
answered(struct request *r, int status, size_t body_len)
{
	if (r->closing) {
		if (!r->body_read && r->ri->content_length > 0)
			drop_unread_body(r);
		/*
		 * Even when the client asked to close, civetweb would first
		 * read what is left of a body (a chunked one without any
		 * deadline): it is told to close at once.
		 */
		mg_disable_connection_keep_alive(r->conn);
		if (r->cn != NULL)
			r->cn->closing = true;
	}
	metrics_count_request(&r->ctx->requests, r->route, status);
	if (atomic_load_explicit(&r->ctx->access_log, memory_order_relaxed))
		log_info("access: %s \"%.16s %.200s\" %d %zu %.3f ms",
		    r->ri->remote_addr, r->method, r->ri->local_uri_raw,
		    status, body_len,
		    (double)(clock_monotonic_us() - r->started_us) / 1000.0);
	return status;
}

/*
 * Send the whole response, headers and body, in one write: with split
 * writes, Nagle and delayed ACKs cost 40 ms per response on keep-alive.
 * extra holds complete header lines ("Name: value\r\n") or is NULL.
 */
static int
respond(struct request *r, int status, const char *extra)
{
	struct strbuf out;

	if (strbuf_failed(&r->body)) {
		status = 500;
		strbuf_reset(&r->body);
		strbuf_puts(&r->body, "{\"detail\": \"Out of memory.\"}");
	}
	/* A body left unread cannot be skipped safely: close after it. */
	if (r->ri->content_length > 0 && !r->body_read)
		r->closing = true;
	strbuf_init(&out);
	head_printf(r, &out, status, extra, (long long)r->body.len);
	if (!r->head)
		strbuf_append(&out, r->body.data != NULL ? r->body.data : "",
		    r->body.len);
	if (!strbuf_failed(&out))
		mg_write(r->conn, out.data, out.len);
	strbuf_finish(&out);
	return answered(r, status, r->body.len);
}

static int
respond_detail(struct request *r, int status, const char *detail,
    const char *extra)
{
	strbuf_reset(&r->body);
	strbuf_puts(&r->body, "{\"detail\": ");
	strbuf_json_string(&r->body, detail);
	strbuf_puts(&r->body, "}");
	return respond(r, status, extra);
}

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

static int
respond_not_found(struct request *r)
{
	return respond_detail(r, 404, "Not found.", NULL);
}

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

static int
respond_method_not_allowed(struct request *r, const char *allow)
{
	char detail[128], extra[64];

	snprintf(detail, sizeof(detail), "Method \"%.16s\" not allowed.",
	    r->method);
	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	return respond_detail(r, 405, detail, extra);
}

/*
 * civetweb stops reading header lines, silently, at one that starts with
 * a space, a ':' or a byte >= 0x80, and drops it and all after it. It
 * writes NULs over each CR and LF it reads; the last CRLF of the block is
 * left as CR NUL. So the line it kept last must be followed by NUL NUL CR.
 */
static bool
headers_whole(const struct mg_request_info *ri)
{
	const char *p;
	size_t zeros = 0;

	if (ri->num_headers == 0) {
		/* The request line's CRLF and the CR after it are NULs. */
		p = ri->http_version + strlen(ri->http_version);
		while (*p == '\0' && zeros < 4)
			p++, zeros++;
		return zeros >= 3;
	}
	p = ri->http_headers[ri->num_headers - 1].value;
	p += strlen(p);
	return p[1] == '\0' && p[2] == '\r';
}

/*
 * Requests whose framing could be read two ways, checked on every route
 * before anything else: behind a proxy that frames them the other way,
 * the rest of the body would be a second, hidden request. Each such
 * answer closes the connection. civetweb keeps MG_MAX_HEADERS header
 * lines and drops the rest unseen, so a request that fills them all may
 * have had a Transfer-Encoding or an Idempotency-Key cut off: refused too.
 * Returns 0, or the status already sent.
 */
static int
check_framing(struct request *r)
{
	const struct mg_request_info *ri = r->ri;
	bool has_te = false;
	int lengths = 0;

	if (ri->num_headers >= MG_MAX_HEADERS) {
		char detail[96];

		snprintf(detail, sizeof(detail), "A request may have at most "
		    "%d header lines.", MG_MAX_HEADERS - 1);
		r->closing = true;
		return respond_detail(r, 431, detail, NULL);
	}
	if (!headers_whole(ri)) {
		r->closing = true;
		return respond_detail(r, 400, "A header line could not be "
		    "read.", NULL);
	}
	for (int i = 0; i < ri->num_headers; i++) {
		const struct mg_header *h = &ri->http_headers[i];

		if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
			has_te = true;
		} else if (strcasecmp(h->name, "Content-Length") == 0) {
			const char *v = h->value;

			lengths++;
			if (*v == '\0' || strspn(v, "0123456789") != strlen(v)) {
				r->closing = true;
				return respond_detail(r, 400, "The "
				    "Content-Length is not a number of bytes.",
				    NULL);
			}
		}
	}
	if (lengths > 1) {
		r->closing = true;
		return respond_detail(r, 400, "The request has more than one "
		    "Content-Length.", NULL);
	}
	if (has_te) {
		r->closing = true;
		return respond_detail(r, 400, lengths > 0 ? "The request has "
		    "both a Transfer-Encoding and a Content-Length." :
		    "Transfer-Encoding is not supported; send a "
		    "Content-Length.", NULL);
	}
	return 0;
}

/*
 * Read the request body into a malloc'd buffer. Returns 0, or the status
 * already sent on a client error.
 */
static int
read_body(struct request *r, char **bodyp, size_t *lenp)
{
	long long length = r->ri->content_length;
	const char *expect = mg_get_header(r->conn, "Expect");
	char *body;
	size_t got = 0;

	*bodyp = NULL;
	*lenp = 0;
	if (length < 0)
		return respond_detail(r, 411, "A Content-Length is required.",
		    NULL);
	if ((unsigned long long)length > r->ctx->cfg->max_body_size) {
		char detail[96];

		snprintf(detail, sizeof(detail), "The request body is larger "
		    "than %llu bytes.",
		    (unsigned long long)r->ctx->cfg->max_body_size);
		r->closing = true;
		return respond_detail(r, 413, detail, NULL);
	}
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
	    length > 0)
		mg_printf(r->conn, "HTTP/1.1 100 Continue\r\n\r\n");
	body = malloc((size_t)length + 1);
	if (body == NULL)
		return respond_detail(r, 503, "Out of memory.", NULL);
	/*
	 * One deadline for the whole body. civetweb's mg_read returns only
	 * once it has every byte asked for, and its timeout covers each wait
	 * between bytes, not the whole: a client trickling a byte at a time
	 * would hold this thread for ever. So read a byte at a time (from
	 * civetweb's buffer, where a small body usually is already) and
	 * check the clock in between (the coarse one: read per byte, the
	 * precise clock cost about a tenth of a create's CPU).
	 */
	int64_t deadline_ms = r->started_us / 1000 +
	    (int64_t)r->ctx->cfg->request_timeout_ms;

	while (got < (size_t)length && clock_coarse_ms() < deadline_ms) {
		if (mg_read(r->conn, body + got, 1) != 1)
			break;
		got++;
	}
	if (got < (size_t)length) {
		bool late = clock_coarse_ms() >= deadline_ms;

		free(body);
		r->closing = true;
		return respond_detail(r, late ? 408 : 400, late ? "The request "
		    "body did not arrive in time." : "The request body is "
		    "shorter than its Content-Length.", NULL);
	}
	body[got] = '\0';
	r->body_read = true;
	*bodyp = body;
	*lenp = got;
	return 0;
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

static int
handle_create(struct request *r)
{
	const char *ct = mg_get_header(r->conn, "Content-Type");
	const char *key = mg_get_header(r->conn, "Idempotency-Key");
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
	if ((status = read_body(r, &body, &len)) != 0)
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
	char *body;
	size_t len;
	int rc, status;

	order_init(&o);
	/* Cancel takes no body; one that is sent is read and dropped. */
	if (r->ri->content_length > 0) {
		if ((status = read_body(r, &body, &len)) != 0)
			goto out;
		free(body);
	}
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
out:
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

/* One chunk of a chunked answer (HTTP/1.0: the bytes alone). */
static bool
write_chunk(struct request *r, struct strbuf *chunk, const char *data,
    size_t len)
{
	if (!r->http10)
		strbuf_printf(chunk, "%zx\r\n", len);
	strbuf_append(chunk, data, len);
	if (!r->http10)
		strbuf_puts(chunk, "\r\n");
	return !strbuf_failed(chunk) &&
	    mg_write(r->conn, chunk->data, chunk->len) == (int)chunk->len;
}

/*
 * A list longer than a piece: the first piece is in r->body and ls is
 * paused after it. Send the rest piece by piece. Once the head is sent
 * the status cannot change: an error then cuts the answer short (no last
 * chunk) and closes the connection, which a client cannot mistake for a
 * whole answer.
 */
static int
list_stream(struct request *r, struct store_filter *f, struct list_state *ls)
{
	struct strbuf out;
	bool ok = true;
	size_t sent = 0;
	uint64_t next = 0;
	int rc;

	strbuf_init(&out);
	head_printf(r, &out, 200, NULL, -1);
	if (r->head) {
		ok = !strbuf_failed(&out) &&
		    mg_write(r->conn, out.data, out.len) == (int)out.len;
		ls->paused = false;
	}
	while (ok && ls->paused) {
		ok = write_chunk(r, &out, r->body.data, r->body.len);
		sent += r->body.len;
		strbuf_reset(&out);
		strbuf_reset(&r->body);
		if (!ok)
			break;
		f->after = ls->last;
		f->limit = ls->limit - ls->n;
		ls->paused = false;
		rc = store_list(r->ctx->store, f, list_one, ls, &next);
		if (rc != 0 && !ls->paused) {
			log_error("could not list orders: %s",
			    strbuf_failed(&r->body) ? "out of memory"
			    : store_strerror(rc));
			ok = false;
			break;
		}
		if (!ls->paused) {
			list_end(&r->body, next);
			ok = write_chunk(r, &out, r->body.data, r->body.len);
			sent += r->body.len;
			strbuf_reset(&out);
			if (ok && !r->http10)
				ok = mg_write(r->conn, "0\r\n\r\n", 5) == 5;
		}
	}
	strbuf_finish(&out);
	if (!ok || r->http10)
		r->closing = true;
	return answered(r, 200, sent);
}

/* Reads a decimal query parameter; -1: absent, -2: bad. */
static int
query_number(const char *qs, const char *name, uint64_t max, uint64_t *out,
    char *raw, size_t raw_len)
{
	int n = mg_get_var(qs, qs != NULL ? strlen(qs) : 0, name, raw,
	    raw_len);
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

static int
handle_list(struct request *r)
{
	const char *qs = r->ri->query_string;
	struct store_filter f = { .limit = 100 };
	struct list_state ls = { .out = &r->body };
	uint64_t v, next;
	char raw[64];
	int n, rc;

	if ((n = query_number(qs, "limit", 1000, &v, raw, sizeof(raw))) == 0) {
		if (v < 1)
			n = -2;
		f.limit = (uint32_t)v;
	}
	if (n == -2)
		return respond_field_error(r, "limit",
		    "Ensure this value is a whole number from 1 to 1000.");
	n = query_number(qs, "user_id", (uint64_t)ORDER_MAX_INTEGER, &v, raw,
	    sizeof(raw));
	if (n == -2 || (n == 0 && v == 0))
		return respond_field_error(r, "user_id",
		    "A valid integer is required.");
	if (n == 0)
		f.user_id = v;
	n = mg_get_var(qs, qs != NULL ? strlen(qs) : 0, "status", raw,
	    sizeof(raw));
	if (n == -2 || (n > 0 && order_status_parse(raw, &f.status) != 0))
		return respond_field_error(r, "status", "Select one of "
		    "Pending, Processing, Completed, Cancelled.");
	f.by_status = n > 0;
	n = mg_get_var(qs, qs != NULL ? strlen(qs) : 0, "after", raw,
	    sizeof(raw));
	if (n == -2 || (n > 0 && order_id_parse(raw, (size_t)n, &f.after) != 0))
		return respond_field_error(r, "after",
		    "Give an order id such as ORD123.");

	if ((rc = committer_wait_all(r->ctx->committer)) != 0)
		return respond_wait_error(r, rc);
	ls.limit = f.limit;
	strbuf_puts(&r->body, "{\"results\": [");
	rc = store_list(r->ctx->store, &f, list_one, &ls, &next);
	if (ls.paused)
		return list_stream(r, &f, &ls);
	if (rc != 0 && !strbuf_failed(&r->body))
		return respond_store_error(r, rc, "list orders");
	list_end(&r->body, next);
	return respond(r, 200, NULL);
}

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

static int
respond_unavailable(struct request *r, const char *why)
{
	strbuf_puts(&r->body, "{\"status\": \"unavailable\", \"detail\": ");
	strbuf_json_string(&r->body, why);
	strbuf_puts(&r->body, "}");
	return respond(r, 503, NULL);
}

/* Up unless the store is unusable (the process is about to exit). */
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
	else if (clock_realtime_ms() - c.heartbeat_ms > HTTP_HEARTBEAT_MAX_AGE_MS)
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
 * The routes: each path the API serves, once (router.h says how a
 * request's path matches a pattern). A row names its handlers, so it
 * stands here beside them: a new route is a row and a handler in this
 * file. A route takes the bearer token (when --api-token-file is set)
 * unless it is open; the probes and Prometheus' scrape are.
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
};
const size_t router_nroutes = sizeof(router_routes) / sizeof(router_routes[0]);
_Static_assert(sizeof(router_routes) / sizeof(router_routes[0]) <=
    ROUTER_MAX_ROUTES, "more routes than ROUTER_MAX_ROUTES (router.h)");

/* A 401 unless the request has a token, if one is needed; else 0. */
static int
check_token(struct request *r)
{
	if (r->ctx->auth == NULL)
		return 0;
	switch (auth_check(r->ctx->auth, mg_get_header(r->conn,
	    "Authorization"))) {
	case AUTH_OK:
		break;
	case AUTH_MISSING:
		return respond_detail(r, 401, "Authentication credentials "
		    "were not provided.",
		    "WWW-Authenticate: Bearer realm=\"orders\"\r\n");
	case AUTH_INVALID:
		return respond_detail(r, 401, "Invalid token.",
		    "WWW-Authenticate: Bearer realm=\"orders\", "
		    "error=\"invalid_token\"\r\n");
	}
	return 0;
}

/* The request's route, in router_routes: its token, method and handler. */
static int
dispatch(struct request *r)
{
	route_handler *handler = NULL;
	int status;

	r->route = router_match(r->ri->local_uri_raw, &r->order_id);
	if (r->route == NULL)
		return respond_not_found(r);
	if (!r->route->open && (status = check_token(r)) != 0)
		return status;
	if (strcmp(r->method, "POST") == 0)
		handler = r->route->post;
	else if (strcmp(r->method, "GET") == 0 || r->head)
		handler = r->route->get;
	if (handler == NULL)
		return respond_method_not_allowed(r, router_allow(r->route));
	return handler(r);
}

/*
 * A whole answer, outside a request's handling, into out: a JSON detail,
 * extra header lines (or NULL), and the connection closed after it.
 * false: out of memory, out is not to be sent.
 */
static bool
closing_answer(struct strbuf *out, int status, const char *detail,
    const char *extra)
{
	struct strbuf body;
	bool ok;

	strbuf_init(&body);
	strbuf_puts(&body, "{\"detail\": ");
	strbuf_json_string(&body, detail);
	strbuf_puts(&body, "}");
	strbuf_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n%s"
	    "Connection: close\r\n\r\n", status, status_text(status),
	    body.len, extra != NULL ? extra : "");
	strbuf_append(out, body.data, body.len);
	ok = !strbuf_failed(&body) && !strbuf_failed(out);
	strbuf_finish(&body);
	return ok;
}

/* The answer to a connection over its address's share of threads. */
static bool
refusal(struct strbuf *out)
{
	return closing_answer(out, 503, "Too many connections from this address; "
	    "try again later.", "Retry-After: 1\r\n");
}

/*
 * Every request comes here, through begin_request: unlike a handler set
 * with mg_set_request_handler, the callback is in place before civetweb
 * accepts its first connection.
 */
static int
begin_request(struct mg_connection *conn)
{
	struct request r = {
		.conn = conn,
		.ri = mg_get_request_info(conn),
	};
	int status;

	r.ctx = r.ri->user_data;
	r.cn = mg_get_user_connection_data(conn);
	conn_learn(conn);
	/*
	 * A request read from a connection that is closing came after one
	 * whose framing was in doubt (or over its address's share): it is
	 * never acted on, nor answered.
	 */
	if (r.cn != NULL && r.cn->closing) {
		mg_disable_connection_keep_alive(conn);
		if (!r.cn->refused_unsent)
			return 400;
		/* Refused, but its socket was not found to say so. */
		r.cn->refused_unsent = false;
		strbuf_init(&r.body);
		if (refusal(&r.body))
			mg_write(conn, r.body.data, r.body.len);
		strbuf_finish(&r.body);
		return 503;
	}
	r.method = r.ri->request_method;
	r.content_type = "application/json";
	r.started_us = clock_monotonic_us();
	r.head = strcmp(r.method, "HEAD") == 0;
	r.http10 = strcmp(r.ri->http_version, "1.0") == 0;
	strbuf_init(&r.body);
	/* Counted before stopping is read: http_stop waits for it, or it sees
	 * stopping. */
	atomic_fetch_add(&r.ctx->active_requests, 1);
	if ((status = check_framing(&r)) != 0) {
		/* answered */
	} else if (atomic_load(&r.ctx->stopping)) {
		r.closing = true;
		status = respond_detail(&r, 503, "The server is stopping; try "
		    "again.", "Retry-After: 1\r\n");
	} else {
		status = dispatch(&r);
	}
	atomic_fetch_sub(&r.ctx->active_requests, 1);
	strbuf_finish(&r.body);
	return status;
}

/* After each request that reached begin_request. */
static void
end_request(const struct mg_connection *conn, int status)
{
	struct conn *cn = mg_get_user_connection_data(conn);

	if (cn != NULL)
		cn->answered = false;
}

/*
 * A new connection, on the thread that will serve it, before anything of
 * it is read: counted against its address's share of the threads, or
 * answered 503 and closed at once.
 */
static int
init_connection(const struct mg_connection *conn, void **data)
{
	static __thread struct conn cn;
	static struct log_limit refusals = LOG_LIMIT_INIT;
	struct strbuf answer;
	const struct mg_request_info *ri = conn_info(conn);
	struct http_context *ctx = mg_get_user_data(mg_get_context(conn));

	*data = &cn;
	cn = (struct conn){ .slot = -1 };
	if (ri == NULL || conn_open(ctx->conns, &cn, ri->remote_addr) == 0)
		return 0;
	atomic_fetch_add_explicit(&ctx->requests.connections_refused, 1,
	    memory_order_relaxed);
	log_limited(&refusals, LOG_LEVEL_WARN, 0, "refused a connection from "
	    "%s: it holds %u HTTP threads already "
	    "(--max-connections-per-address)", ri->remote_addr,
	    ctx->cfg->max_conns_per_address);
	strbuf_init(&answer);
	if (refusal(&answer))
		cn.refused_unsent = !conn_refuse(&cn, ri, answer.data,
		    answer.len);
	else
		cn.closing = cn.refused_unsent = true;
	strbuf_finish(&answer);
	return 0;
}

/*
 * The connection is over. If the last request civetweb read from it was
 * neither answered by us nor by civetweb's error path, civetweb dropped
 * it silently: an absolute-form target for another host or port
 * ("GET http://example.com/ HTTP/1.1"), or "*". It gets a JSON 400, as
 * every request does.
 */
static void
connection_close(const struct mg_connection *conn)
{
	struct conn *cn = mg_get_user_connection_data(conn);
	const struct mg_request_info *ri = mg_get_request_info(conn);

	if (cn == NULL)
		return;
	if (!cn->answered && !cn->closing && ri->request_uri != NULL &&
	    ri->local_uri == NULL && ri->http_version != NULL) {
		struct http_context *ctx = ri->user_data;
		struct strbuf answer;

		strbuf_init(&answer);
		/* civetweb hands a const connection, but writing is fine. */
		if (closing_answer(&answer, 400, "The request target must be "
		    "a path on this server; this is not a proxy.", NULL))
			mg_write((struct mg_connection *)conn, answer.data,
			    answer.len);
		strbuf_finish(&answer);
		metrics_count_request(&ctx->requests, NULL, 400);
	}
	conn_release(cn);
}

/*
 * Errors civetweb finds itself, before any handler (a malformed request
 * line, a bad Content-Length, headers too large): answered in JSON too,
 * and the connection closed, since the request could not be framed.
 */
static int
http_error(struct mg_connection *conn, int status, const char *errmsg)
{
	struct conn *cn = mg_get_user_connection_data(conn);
	struct strbuf out;

	if (cn != NULL) {
		if (cn->closing)
			return 0;	/* nothing more is said on it */
		cn->answered = true;
	}
	strbuf_init(&out);
	if (closing_answer(&out, status, errmsg != NULL && errmsg[0] != '\0'
	    ? errmsg : status_text(status), NULL))
		mg_write(conn, out.data, out.len);
	strbuf_finish(&out);
	return 0;
}

static int
log_message(const struct mg_connection *conn, const char *message)
{
	log_warn("civetweb: %s", message);
	return 1;
}

/* A socket to our own listening one: -1 if none could be made. */
static int
dial_self(const char *addr, const struct mg_server_port *port, int flags)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port->port),
	};
	int fd;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 ||
	    sin.sin_addr.s_addr == htonl(INADDR_ANY))
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connect to our own listening socket, and hang up. */
static void
knock(const char *addr, const struct mg_server_port *port)
{
	int fd = dial_self(addr, port, SOCK_NONBLOCK);

	if (fd < 0)
		return;
	/* Non-blocking: the SYN is what wakes the listener; no wait. */
	close(fd);
}

/*
 * Ask ourselves GET /healthz once, before serving anyone: that first
 * request shows where civetweb keeps a connection's request info, which
 * the per-address limit needs from the next connection on (conn_learn).
 */
static void
ask_self(struct http_server *srv)
{
	static const char request[] = "GET /healthz HTTP/1.1\r\n"
	    "Host: localhost\r\nConnection: close\r\n\r\n";
	struct timeval two_s = { .tv_sec = 2 };
	struct mg_server_port port;
	char answer[512];
	int fd;

	if (mg_get_server_ports(srv->mg, 1, &port) != 1 ||
	    (fd = dial_self(srv->ctx->cfg->listen_addr, &port, 0)) < 0) {
		log_warn("could not ask order-api itself for /healthz: %s; "
		    "the per-address connection limit starts with the first "
		    "request", strerror(errno));
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_s, sizeof(two_s));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two_s, sizeof(two_s));
	if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
		ssize_t n;

		do
			n = recv(fd, answer, sizeof(answer), 0);
		while (n > 0);	/* read to the close */
	}
	close(fd);
}



int
http_start(struct http_server **srvp, struct http_context *ctx)
{
	char ports[96], threads[16], header[24], request_ms[16], idle_ms[16];
	const char *options[] = {
		"listening_ports", ports,
		"num_threads", threads,
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", idle_ms,
		"request_timeout_ms", request_ms,
		"max_request_size", header,
		"tcp_nodelay", "1",
		"enable_auth_domain_check", "no",
		"decode_url", "no",
		"listen_backlog", "1024",
		"connection_queue", "1024",
		NULL,
	};
	struct mg_callbacks callbacks = {
		.begin_request = begin_request,
		.end_request = end_request,
		.init_connection = init_connection,
		.connection_close = connection_close,
		.http_error = http_error,
		.log_message = log_message,
	};
	struct http_server *srv;

	snprintf(ports, sizeof(ports), "%s:%u", ctx->cfg->listen_addr,
	    ctx->cfg->listen_port);
	snprintf(threads, sizeof(threads), "%u", ctx->cfg->threads);
	snprintf(header, sizeof(header), "%llu",
	    (unsigned long long)ctx->cfg->max_header_size);
	snprintf(request_ms, sizeof(request_ms), "%u",
	    ctx->cfg->request_timeout_ms);
	snprintf(idle_ms, sizeof(idle_ms), "%u", ctx->cfg->keepalive_timeout_ms);
	ctx->inflight = calloc(ctx->cfg->threads, sizeof(*ctx->inflight));
	if (ctx->inflight == NULL || conn_table_create(&ctx->conns,
	    ctx->cfg->threads, ctx->cfg->max_conns_per_address) != 0) {
		log_error("could not start HTTP: out of memory");
		free(ctx->inflight);
		ctx->inflight = NULL;
		return -1;
	}
	pthread_mutex_init(&ctx->inflight_lock, NULL);
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		log_error("could not start HTTP: out of memory");
		goto fail;
	}
	srv->ctx = ctx;
	srv->mg = mg_start(&callbacks, ctx, options);
	if (srv->mg == NULL) {
		log_error("could not listen on %s (in use, or not an address "
		    "of this host?)", ports);
		free(srv);
		goto fail;
	}
	ask_self(srv);
	*srvp = srv;
	return 0;
fail:
	pthread_mutex_destroy(&ctx->inflight_lock);
	free(ctx->inflight);
	ctx->inflight = NULL;
	conn_table_destroy(ctx->conns);
	ctx->conns = NULL;
	return -1;
}

static void *
stop_civetweb(void *mg)
{
	mg_stop(mg);
	return NULL;
}

/*
 * mg_stop returns once civetweb's listening thread has seen the stop flag,
 * which it checks only when its poll() returns: up to 2 seconds on an idle
 * server. So stop it from a thread and knock on our own port meanwhile,
 * which wakes that poll at once.
 */
void
http_stop(struct http_server *srv)
{
	struct mg_server_port port;
	pthread_t stopper;
	int64_t drain_deadline;
	unsigned left;

	if (srv == NULL)
		return;
	/*
	 * Once civetweb is told to stop, it writes nothing more: the requests
	 * in hand are finished first (a create's 201 is the only word its
	 * client gets that the order is stored), while new ones are answered
	 * 503. The longest a request may take is its body's arrival and its
	 * commit's wait.
	 */
	atomic_store(&srv->ctx->stopping, true);
	drain_deadline = clock_monotonic_ms() +
	    (int64_t)srv->ctx->cfg->request_timeout_ms +
	    (int64_t)srv->ctx->cfg->commit_timeout_ms + 1000;
	while ((left = atomic_load(&srv->ctx->active_requests)) > 0 &&
	    clock_monotonic_ms() < drain_deadline)
		nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	if (left > 0)
		log_warn("stopping with %u requests still in hand: their "
		    "clients get no answer", left);
	if (mg_get_server_ports(srv->mg, 1, &port) != 1 ||
	    pthread_create(&stopper, NULL, stop_civetweb, srv->mg) != 0) {
		mg_stop(srv->mg);
	} else {
		while (pthread_tryjoin_np(stopper, NULL) == EBUSY) {
			knock(srv->ctx->cfg->listen_addr, &port);
			nanosleep(&(struct timespec){ .tv_nsec = 20000000 },
			    NULL);
		}
	}
	pthread_mutex_destroy(&srv->ctx->inflight_lock);
	free(srv->ctx->inflight);
	srv->ctx->inflight = NULL;
	conn_table_destroy(srv->ctx->conns);
	srv->ctx->conns = NULL;
	free(srv);
}
