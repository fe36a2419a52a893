/*
 * conn: order-api's view of civetweb's connections, apart from their
 * requests: which client address holds how many HTTP threads, and which
 * connections are closing.
 *
 * civetweb serves a connection on one thread from accept to close, first
 * come first served, so idle and slow clients hold threads that others
 * wait for. A conn_table caps the threads one client address may hold: a
 * connection over the cap is answered 503 and closed before any request
 * of it is acted on, which takes microseconds, so a client that opens
 * hundreds of idle sockets holds its share of threads and no more.
 *
 * civetweb calls init_connection before mg_get_request_info will describe
 * the connection (its type is set just after), although the client's
 * address is filled in already. conn_info finds that description at the
 * place within the connection that mg_get_request_info showed for earlier
 * requests (conn_learn, on every request); until the first request it
 * knows nothing, and connections go uncounted.
 *
 * Threads: the table is shared, under its own lock. A struct conn belongs
 * to the civetweb thread serving its connection (one at a time per thread).
 */
#ifndef OP_CONN_H
#define OP_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <civetweb.h>

struct conn_table;

struct conn {
	struct conn_table *table;
	int slot;		/* the address's entry in table, -1: none */
	bool closing;		/* act on nothing more read from it */
	bool answered;		/* the request being read has been answered */
	bool refused_unsent;	/* refused, but the 503 is still to be sent */
};

/* A table for threads threads, each address holding at most per_address. */
int conn_table_create(struct conn_table **tp, unsigned threads,
    unsigned per_address);
void conn_table_destroy(struct conn_table *t);

/* Learn, or check, where conn's request info lies within it. */
void conn_learn(const struct mg_connection *conn);
/* conn's request info, even in init_connection; NULL if not yet known. */
const struct mg_request_info *conn_info(const struct mg_connection *conn);

/*
 * A new connection from addr (text form) on this thread: 0, or -1 if the
 * address holds its share of threads already (c is then not counted).
 */
int conn_open(struct conn_table *t, struct conn *c, const char *addr);
/*
 * Refuse a connection conn_open did not count: mark it closing, write
 * answer (a whole HTTP response) straight to its socket and shut the
 * socket for reading, so that civetweb reads end-of-file (after whatever
 * had arrived already, which is never acted on) and closes it without
 * waiting. false: the socket was not found, nothing was written.
 */
bool conn_refuse(struct conn *c, const struct mg_request_info *ri,
    const char *answer, size_t len);
/* The connection is gone: its thread is free for its address again. */
void conn_release(struct conn *c);

#endif
