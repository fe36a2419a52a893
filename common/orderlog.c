#include "orderlog.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_HEAD 8
#define ORDER_HEAD 40
/* Orders per transaction when the recovery applies a journal. */
#define RECOVER_BATCH 4096

static void
put64(unsigned char **p, uint64_t v)
{
	v = htole64(v);
	memcpy(*p, &v, 8);
	*p += 8;
}

static void
put32(unsigned char **p, uint32_t v)
{
	v = htole32(v);
	memcpy(*p, &v, 4);
	*p += 4;
}

static void
put16(unsigned char **p, uint16_t v)
{
	v = htole16(v);
	memcpy(*p, &v, 2);
	*p += 2;
}

size_t
orderlog_size(struct order *const *orders, size_t n)
{
	size_t len = BATCH_HEAD;

	for (size_t i = 0; i < n; i++) {
		const struct order *o = orders[i];

		len += ORDER_HEAD + (size_t)o->n_items * 8;
		if (o->idem_key != NULL)
			len += strlen(o->idem_key) + 1 + ORDER_DIGEST_LEN;
	}
	return len;
}

void
orderlog_encode(unsigned char *buf, struct order *const *orders, size_t n)
{
	unsigned char *p = buf;

	put32(&p, (uint32_t)n);
	put32(&p, 0);
	for (size_t i = 0; i < n; i++) {
		const struct order *o = orders[i];
		size_t key_len = o->idem_key != NULL ? strlen(o->idem_key) : 0;

		put64(&p, o->id);
		put64(&p, (uint64_t)o->created_ms);
		put64(&p, o->user_id);
		put64(&p, (uint64_t)o->total_cents);
		put32(&p, o->n_items);
		put16(&p, (uint16_t)key_len);
		put16(&p, 0);
		if (key_len > 0) {
			memcpy(p, o->idem_key, key_len + 1);
			p += key_len + 1;
			memcpy(p, o->idem_digest, ORDER_DIGEST_LEN);
			p += ORDER_DIGEST_LEN;
		}
		for (uint32_t j = 0; j < o->n_items; j++)
			put64(&p, o->items[j]);
	}
}

/* A cursor over a payload: each get fails once the bytes run out. */
struct cursor {
	const unsigned char *p, *end;
};

static bool
get(struct cursor *c, void *out, size_t len)
{
	if ((size_t)(c->end - c->p) < len)
		return false;
	memcpy(out, c->p, len);
	c->p += len;
	return true;
}

static bool
get64(struct cursor *c, uint64_t *v)
{
	if (!get(c, v, 8))
		return false;
	*v = le64toh(*v);
	return true;
}

static bool
get32(struct cursor *c, uint32_t *v)
{
	if (!get(c, v, 4))
		return false;
	*v = le32toh(*v);
	return true;
}

static bool
get16(struct cursor *c, uint16_t *v)
{
	if (!get(c, v, 2))
		return false;
	*v = le16toh(*v);
	return true;
}

size_t
orderlog_count(const void *payload, size_t len)
{
	struct cursor c = { payload, (const unsigned char *)payload + len };
	uint32_t n;

	return get32(&c, &n) ? n : 0;
}

static int
decode_one(struct cursor *c, struct order *o)
{
	uint64_t created, cents;
	uint32_t n_items;
	uint16_t key_len, zero;

	if (!get64(c, &o->id) || !get64(c, &created) ||
	    !get64(c, &o->user_id) || !get64(c, &cents) ||
	    !get32(c, &n_items) || !get16(c, &key_len) || !get16(c, &zero))
		return EBADMSG;
	o->created_ms = (int64_t)created;
	o->total_cents = (int64_t)cents;
	o->idem_key = NULL;
	o->idem_result = ORDER_IDEM_NEW;
	if (n_items > ORDER_MAX_ITEMS || key_len > ORDER_IDEM_KEY_MAX ||
	    o->id == 0)
		return EBADMSG;
	if (key_len > 0) {
		if ((size_t)(c->end - c->p) < key_len + 1u ||
		    c->p[key_len] != '\0' ||
		    memchr(c->p, '\0', key_len) != NULL)
			return EBADMSG;
		o->idem_key = (const char *)c->p;
		c->p += key_len + 1;
		if (!get(c, o->idem_digest, ORDER_DIGEST_LEN))
			return EBADMSG;
	}
	if ((size_t)(c->end - c->p) / 8 < n_items)
		return EBADMSG;
	if (order_reserve_items(o, n_items) != 0)
		return ENOMEM;
	o->n_items = n_items;
	for (uint32_t j = 0; j < n_items; j++)
		get64(c, &o->items[j]);
	return 0;
}

int
orderlog_decode(const void *payload, size_t len, struct order *out,
    size_t max, size_t *n)
{
	struct cursor c = { payload, (const unsigned char *)payload + len };
	uint32_t count, zero;
	int rc;

	if (!get32(&c, &count) || !get32(&c, &zero))
		return EBADMSG;
	if (count > max)
		return E2BIG;
	for (uint32_t i = 0; i < count; i++)
		if ((rc = decode_one(&c, &out[i])) != 0)
			return rc;
	if (c.p != c.end)
		return EBADMSG;
	*n = count;
	return 0;
}

/* orderlog_scan's walk: each record's orders decoded into orders[]. */
struct scan {
	struct order *orders;
	size_t cap;
	uint64_t next_id;
	store_order_fn fn;
	void *arg;
};

static int
scan_record(void *arg, uint64_t lsn, uint64_t end_lsn, const void *payload,
    size_t len)
{
	struct scan *sc = arg;
	size_t count = orderlog_count(payload, len), n;
	int rc;

	(void)lsn;
	(void)end_lsn;
	if (count > sc->cap) {
		struct order *p = realloc(sc->orders, count * sizeof(*p));

		if (p == NULL)
			return ENOMEM;
		for (size_t i = sc->cap; i < count; i++)
			order_init(&p[i]);
		sc->orders = p;
		sc->cap = count;
	}
	if ((rc = orderlog_decode(payload, len, sc->orders, sc->cap,
	    &n)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct order *o = &sc->orders[i];

		if (o->id < sc->next_id)
			continue;
		o->status = ORDER_PENDING;
		o->attempts = 0;
		o->updated_ms = o->created_ms;
		o->completed_ms = o->lease_until_ms = 0;
		if ((rc = sc->fn(o, sc->arg)) != 0)
			return rc;
	}
	return 0;
}

int
orderlog_scan(const char *path, uint64_t applied_lsn, uint64_t next_id,
    store_order_fn fn, void *arg)
{
	struct scan sc = { .next_id = next_id, .fn = fn, .arg = arg };
	int rc = journal_read(path, applied_lsn, scan_record, &sc);

	for (size_t i = 0; i < sc.cap; i++)
		order_finish(&sc.orders[i]);
	free(sc.orders);
	return rc;
}

/* The recovery's batch: orders of whole records, applied together. */
struct recovery {
	struct store *store;
	struct order *orders;		/* RECOVER_BATCH of them */
	struct order **ptrs;
	unsigned char *keys;		/* the batch's payloads, for idem_key */
	size_t keys_len, keys_cap;
	size_t n;
	uint64_t end_lsn;		/* after the batch's last record */
	uint64_t replayed;
};

static int
recovery_flush(struct recovery *r)
{
	int rc;

	if (r->n == 0)
		return 0;
	for (size_t i = 0; i < r->n; i++)
		r->ptrs[i] = &r->orders[i];
	if ((rc = store_apply(r->store, r->ptrs, r->n, r->end_lsn)) != 0)
		return rc;
	r->replayed += r->n;
	r->n = 0;
	r->keys_len = 0;
	return 0;
}

static int
recovery_record(void *arg, uint64_t lsn, uint64_t end_lsn,
    const void *payload, size_t len)
{
	struct recovery *r = arg;
	size_t count = orderlog_count(payload, len), n;
	unsigned char *copy;
	int rc;

	(void)lsn;
	if (count > RECOVER_BATCH)
		return EBADMSG;
	if (r->n + count > RECOVER_BATCH && (rc = recovery_flush(r)) != 0)
		return rc;
	/* The keys point into the payload: keep a copy until applied. */
	if (r->keys_len + len > r->keys_cap) {
		size_t cap = r->keys_cap * 2 > r->keys_len + len ?
		    r->keys_cap * 2 : r->keys_len + len;
		unsigned char *p = realloc(r->keys, cap);

		if (p == NULL)
			return ENOMEM;
		/* Move the keys decoded so far along with their bytes. */
		for (size_t i = 0; i < r->n; i++)
			if (r->orders[i].idem_key != NULL)
				r->orders[i].idem_key = (const char *)p +
				    ((const unsigned char *)r->orders[i].idem_key
				    - r->keys);
		r->keys = p;
		r->keys_cap = cap;
	}
	copy = r->keys + r->keys_len;
	memcpy(copy, payload, len);
	r->keys_len += len;
	if ((rc = orderlog_decode(copy, len, r->orders + r->n,
	    RECOVER_BATCH - r->n, &n)) != 0)
		return rc;
	r->n += n;
	r->end_lsn = end_lsn;
	return 0;
}

/* Open the journal at path with its own size; apply what it holds. */
static int
recover_from(struct store *s, const char *path, uint64_t size,
    struct journal **jp, uint64_t *replayed)
{
	struct recovery r = { .store = s };
	uint64_t applied, next_id;
	int rc;

	if ((rc = store_journal_state(s, &applied, &next_id)) != 0)
		return rc;
	r.orders = calloc(RECOVER_BATCH, sizeof(*r.orders));
	r.ptrs = calloc(RECOVER_BATCH, sizeof(*r.ptrs));
	if (r.orders == NULL || r.ptrs == NULL) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < RECOVER_BATCH; i++)
		order_init(&r.orders[i]);
	rc = journal_open(jp, path, size, applied, recovery_record, &r);
	if (rc == 0 && (rc = recovery_flush(&r)) != 0) {
		journal_close(*jp);
		*jp = NULL;
	}
	if (rc == 0) {
		journal_applied(*jp, journal_end(*jp));
		*replayed += r.replayed;
	}
	for (size_t i = 0; r.orders != NULL && i < RECOVER_BATCH; i++)
		order_finish(&r.orders[i]);
out:
	free(r.orders);
	free(r.ptrs);
	free(r.keys);
	return rc;
}

int
orderlog_recover(struct store *s, const char *path, uint64_t size,
    struct journal **jp, uint64_t *replayed)
{
	struct stat st;
	int rc;

	*replayed = 0;
	if (stat(path, &st) == 0 && (uint64_t)st.st_size != size) {
		/* Resized: apply the old one, then start a new one. */
		if ((rc = recover_from(s, path, (uint64_t)st.st_size, jp,
		    replayed)) != 0)
			return rc;
		if (unlink(path) != 0) {
			rc = errno;
			journal_close(*jp);
			return rc;
		}
		journal_close(*jp);
	}
	return recover_from(s, path, size, jp, replayed);
}
