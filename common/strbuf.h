/*
 * strbuf: a growable byte buffer for building response bodies.
 *
 * Owned by its caller: strbuf_init, append, strbuf_finish frees. On
 * allocation failure the buffer remembers it (strbuf_failed) and further
 * appends are no-ops, so callers check once at the end. Not thread-safe;
 * one buffer per thread.
 */
#ifndef OP_STRBUF_H
#define OP_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data;	/* NUL-terminated while not failed */
	size_t len;
	size_t cap;
	bool failed;
};

void strbuf_init(struct strbuf *sb);
void strbuf_finish(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const char *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void strbuf_json_string(struct strbuf *sb, const char *s);
bool strbuf_failed(const struct strbuf *sb);

#endif
