/*
 * request: a request being answered, as a handler (handlers.c) sees it;
 * the transport (http.c) makes it, implements these functions, and is
 * the only file that talks to civetweb.
 *
 * dispatch calls the handler that the route table names for the route
 * and method (router.h), once the framing and the token are checked. The
 * handler answers exactly once: it returns what respond, respond_detail,
 * respond_not_found or respond_chunks_end returned, the status sent, or
 * what request_read_body or request_skip_body returned when they answered
 * for it (a client error). Before it answers it may read the request's
 * headers, query and body, write its answer's body in r->body (or put
 * another strbuf there, the first finished), and set r->content_type
 * and r->cache_control.
 * The respond calls send r->body; the transport frees it. After the
 * answer the handler writes nothing more.
 *
 * Every answer is counted per route and code and logged (--access-log).
 * The connection closes after it when the client asked for that, when
 * the request's body was left unread or could not be read whole, and
 * when an answer of unknown length ends on HTTP/1.0 or is cut short.
 *
 * Threads: a struct request lives on the stack of the civetweb thread
 * answering it, one request at a time; handlers share only what r->ctx
 * holds (http.h), whose store and committer are thread-safe.
 */
#ifndef OP_REQUEST_H
#define OP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router.h"
#include "strbuf.h"

struct mg_connection;
struct mg_request_info;
struct conn;
struct http_context;

struct request {
	/* For the handler to read. */
	struct http_context *ctx;	/* the server's: store, committer */
	const char *method;		/* "GET", "HEAD", "POST", ... */
	bool head;			/* HEAD: the answer's body is not sent */
	uint64_t order_id;		/* for a pattern with an {order_id} */
	/* For the handler to write before it answers. */
	struct strbuf body;		/* the answer's body, empty at first */
	const char *content_type;	/* "application/json" unless set */
	const char *cache_control;	/* "no-store" unless set */

	/* The transport's own (http.c). */
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	struct conn *cn;		/* NULL: civetweb gave none */
	bool http10;			/* no chunks, keep-alive on request */
	const struct route *route;	/* NULL: none (yet) */
	int64_t started_us;		/* monotonic, for the access log */
	bool body_read;			/* all of the request's body was read */
	bool closing;			/* Connection: close, and close */
	bool streaming;			/* a chunked answer's head is sent */
	size_t sent;			/* body bytes of it sent so far */
};

/* The value of the request's header name (any case), or NULL. */
const char *request_header(const struct request *r, const char *name);
/*
 * The query parameter name, %-decoded, into buf: returns its length, -1
 * if it is absent, -2 if it does not fit in size bytes with its NUL.
 */
int request_query(const struct request *r, const char *name, char *buf,
    size_t size);
/*
 * Read the request's body: it needs a Content-Length of at most
 * --max-body-size bytes, all of it arriving within --request-timeout-ms
 * of the request's start. Returns 0 with the body in *body (malloc'd and
 * NUL-terminated; the caller frees it) and its length in *len, or the
 * status already sent: 411, 413, 408, 400 (shorter than announced), 503
 * (out of memory).
 */
int request_read_body(struct request *r, char **body, size_t *len);
/* As request_read_body, for a body that is not wanted: read, dropped. */
int request_skip_body(struct request *r);

/*
 * Send the answer: status, extra header lines ("Name: value\r\n", or
 * NULL), and r->body, in one write. Returns the status sent: 500 if
 * r->body ran out of memory.
 */
int respond(struct request *r, int status, const char *extra);
/* The answer {"detail": detail}, in place of what r->body held. */
int respond_detail(struct request *r, int status, const char *detail,
    const char *extra);
/* 404 {"detail": "Not found."} */
int respond_not_found(struct request *r);

/*
 * An answer of 200 whose length is not known at the start, sent piece by
 * piece: chunks on HTTP/1.1, up to the close on HTTP/1.0. respond_chunk
 * sends data as the next piece (the first goes out with the head);
 * false: it could not (the client is gone, or memory ran out), and the
 * handler ends the answer at once. A HEAD sends no piece, only the end.
 * respond_chunks_end ends the answer, whole or cut short (no last chunk:
 * a client cannot take it for a whole answer, and the connection closes).
 * It sends the head if no piece did, and returns 200.
 */
bool respond_chunk(struct request *r, const char *data, size_t len);
int respond_chunks_end(struct request *r, bool whole);

#endif
