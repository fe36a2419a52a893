#include "conn.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* An address and the threads it holds; count 0: a free entry. */
struct holder {
	char addr[48];
	unsigned count;
};

/* Where request info lies within a connection; -1: not known yet. */
static _Atomic ptrdiff_t info_offset = -1;

struct conn_table {
	pthread_mutex_t lock;
	unsigned per_address;
	unsigned n;		/* entries: one per thread is always enough */
	struct holder holders[];
};

int
conn_table_create(struct conn_table **tp, unsigned threads,
    unsigned per_address)
{
	struct conn_table *t;

	t = calloc(1, sizeof(*t) + threads * sizeof(t->holders[0]));
	if (t == NULL)
		return ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->per_address = per_address;
	t->n = threads;
	*tp = t;
	return 0;
}

void
conn_table_destroy(struct conn_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void
conn_learn(const struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	ptrdiff_t offset, known;

	if (ri == NULL)
		return;
	offset = (const char *)ri - (const char *)conn;
	known = atomic_load_explicit(&info_offset, memory_order_relaxed);
	if (known == offset)
		return;
	/*
	 * The same in every connection, or civetweb is not what this code
	 * knows: then nothing is counted, rather than the wrong thing.
	 */
	if (known == -1 && atomic_compare_exchange_strong(&info_offset,
	    &known, offset))
		return;
	atomic_store(&info_offset, PTRDIFF_MIN);
}

const struct mg_request_info *
conn_info(const struct mg_connection *conn)
{
	ptrdiff_t offset = atomic_load_explicit(&info_offset,
	    memory_order_relaxed);

	if (offset < 0)
		return NULL;
	return (const struct mg_request_info *)((const char *)conn + offset);
}

int
conn_open(struct conn_table *t, struct conn *c, const char *addr)
{
	int found = -1, free_slot = -1;

	*c = (struct conn){ .table = t, .slot = -1 };
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->n && found < 0; i++) {
		if (t->holders[i].count == 0) {
			if (free_slot < 0)
				free_slot = (int)i;
		} else if (strcmp(t->holders[i].addr, addr) == 0) {
			found = (int)i;
		}
	}
	if (found < 0 && free_slot >= 0) {
		found = free_slot;
		snprintf(t->holders[found].addr, sizeof(t->holders[0].addr),
		    "%s", addr);
	}
	/*
	 * No entry at all cannot happen (one per thread, and this thread's
	 * previous connection has been released), but if it did, the
	 * connection is served uncounted rather than refused.
	 */
	if (found >= 0) {
		if (t->holders[found].count >= t->per_address) {
			pthread_mutex_unlock(&t->lock);
			return -1;
		}
		t->holders[found].count++;
		c->slot = found;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void
conn_release(struct conn *c)
{
	if (c->table == NULL || c->slot < 0)
		return;
	pthread_mutex_lock(&c->table->lock);
	c->table->holders[c->slot].count--;
	pthread_mutex_unlock(&c->table->lock);
	c->slot = -1;
}

/*
 * The sockets of the process by their two ends, as last read from
 * /proc/self/fd: a refused connection's socket is looked up here, and the
 * directory is read again only when it is not (or no longer) there. A
 * client that opens hundreds of sockets at once costs one read of the
 * directory for all of them, not one each.
 */
struct peer {
	struct sockaddr_in remote;
	unsigned short local_port;
	int fd;
};

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer *peers;	/* under peers_lock */
static size_t n_peers, peers_cap;

static bool
peer_read(int fd, struct peer *p)
{
	struct sockaddr_in local;
	socklen_t rlen = sizeof(p->remote), llen = sizeof(local);

	if (getpeername(fd, (struct sockaddr *)&p->remote, &rlen) != 0 ||
	    p->remote.sin_family != AF_INET ||
	    getsockname(fd, (struct sockaddr *)&local, &llen) != 0)
		return false;
	p->local_port = ntohs(local.sin_port);
	p->fd = fd;
	return true;
}

static bool
peer_matches(const struct peer *p, const struct mg_request_info *ri,
    in_addr_t addr)
{
	return p->remote.sin_addr.s_addr == addr &&
	    ntohs(p->remote.sin_port) == ri->remote_port &&
	    p->local_port == ri->server_port;
}

/* Read /proc/self/fd again into peers; under peers_lock. */
static void
peers_reload(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;

	n_peers = 0;
	if (dir == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
		    fd == dirfd(dir))
			continue;
		if (n_peers == peers_cap) {
			size_t cap = peers_cap > 0 ? 2 * peers_cap : 256;
			struct peer *more = realloc(peers, cap * sizeof(*more));

			if (more == NULL)
				break;
			peers = more;
			peers_cap = cap;
		}
		if (peer_read(fd, &peers[n_peers]))
			n_peers++;
	}
	closedir(dir);
}

/*
 * The socket of the connection ri describes, found by its two ends
 * (civetweb does not hand it out); -1 if none matches.
 */
static int
conn_socket(const struct mg_request_info *ri)
{
	struct peer now;
	in_addr_t addr;
	int found = -1;

	if (inet_pton(AF_INET, ri->remote_addr, &addr) != 1)
		return -1;
	pthread_mutex_lock(&peers_lock);
	for (int pass = 0; pass < 2 && found < 0; pass++) {
		if (pass == 1)
			peers_reload();
		for (size_t i = 0; i < n_peers && found < 0; i++)
			/* An fd may have been closed and reused since. */
			if (peer_matches(&peers[i], ri, addr) &&
			    peer_read(peers[i].fd, &now) &&
			    peer_matches(&now, ri, addr))
				found = peers[i].fd;
	}
	pthread_mutex_unlock(&peers_lock);
	return found;
}

bool
conn_refuse(struct conn *c, const struct mg_request_info *ri,
    const char *answer, size_t len)
{
	int fd = conn_socket(ri);

	c->closing = true;
	if (fd < 0)
		return false;
	/* A fresh socket's buffer takes this at once, or not at all. */
	(void)send(fd, answer, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_RD);
	return true;
}
