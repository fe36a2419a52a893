/*
 * http.c: the transport of order-api's HTTP server (http.h), on civetweb,
 * and the only file of it that talks to civetweb.
 *
 * Every request comes in through begin_request. Nothing read from a
 * connection that is closing is answered; the framing is checked first
 * (check_framing), a stopping server answers 503, and dispatch finds
 * the route in the table (router.h), checks the bearer token and the
 * method, and calls the route's handler (handlers.c), which answers
 * through the functions of request.h defined here. A connection counts
 * against its address's share of the threads from init_connection to
 * connection_close (conn.h). civetweb's own errors are answered in JSON
 * too (http_error). http_stop lets the requests in hand finish, then
 * stops civetweb, knocking on its own port to wake the listener.
 */
#include "http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "router.h"
#include "strbuf.h"

struct http_server {
	struct mg_context *mg;
	struct http_context *ctx;
};

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
	strbuf_printf(out, "Cache-Control: %s\r\n%s%s\r\n",
	    r->cache_control, extra != NULL ? extra : "",
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
int
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

int
respond_detail(struct request *r, int status, const char *detail,
    const char *extra)
{
	strbuf_reset(&r->body);
	strbuf_puts(&r->body, "{\"detail\": ");
	strbuf_json_string(&r->body, detail);
	strbuf_puts(&r->body, "}");
	return respond(r, status, extra);
}

int
respond_not_found(struct request *r)
{
	return respond_detail(r, 404, "Not found.", NULL);
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

int
request_read_body(struct request *r, char **bodyp, size_t *lenp)
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

int
request_skip_body(struct request *r)
{
	char *body;
	size_t len;
	int status;

	if (r->ri->content_length <= 0)
		return 0;
	if ((status = request_read_body(r, &body, &len)) != 0)
		return status;
	free(body);
	return 0;
}

const char *
request_header(const struct request *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

int
request_query(const struct request *r, const char *name, char *buf,
    size_t size)
{
	const char *qs = r->ri->query_string;

	return mg_get_var(qs, qs != NULL ? strlen(qs) : 0, name, buf, size);
}

/* Write out whole, and free it; false if it could not be. */
static bool
send_piece(struct request *r, struct strbuf *out)
{
	bool ok;

	ok = !strbuf_failed(out) &&
	    mg_write(r->conn, out->data, out->len) == (int)out->len;
	strbuf_finish(out);
	return ok;
}

bool
respond_chunk(struct request *r, const char *data, size_t len)
{
	struct strbuf out;

	strbuf_init(&out);
	if (!r->streaming) {
		head_printf(r, &out, 200, NULL, -1);
		r->streaming = true;
	}
	if (!r->http10)
		strbuf_printf(&out, "%zx\r\n", len);
	strbuf_append(&out, data, len);
	if (!r->http10)
		strbuf_puts(&out, "\r\n");
	r->sent += len;
	return send_piece(r, &out);
}

int
respond_chunks_end(struct request *r, bool whole)
{
	struct strbuf out;
	bool ok = whole;

	if (ok && !r->streaming) {
		strbuf_init(&out);
		head_printf(r, &out, 200, NULL, -1);
		r->streaming = true;
		ok = send_piece(r, &out);
	}
	if (ok && !r->head && !r->http10)
		ok = mg_write(r->conn, "0\r\n\r\n", 5) == 5;
	if (!ok || r->http10)
		r->closing = true;
	return answered(r, 200, r->sent);
}

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
	r.cache_control = "no-store";
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
