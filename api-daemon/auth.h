/*
 * auth: bearer tokens from --api-token-file.
 *
 * The file holds one token a line (a final newline is not part of a
 * token; blank lines and lines starting with '#' are skipped). It must be
 * a regular file that others cannot read or write: a token readable by
 * every local user protects nothing. Tokens are kept only as SHA-256
 * digests and compared in constant time, every token every time, so the
 * time taken says nothing about how much of a guess was right. Read-only
 * after auth_load; thread-safe.
 */
#ifndef OP_AUTH_H
#define OP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth;

enum auth_result {
	AUTH_OK,
	AUTH_MISSING,		/* no Authorization: Bearer header */
	AUTH_INVALID,		/* a token, but not one of ours */
};

/* Returns 0, or -1 with what is wrong in why. */
int auth_load(struct auth **a, const char *path, char *why, size_t why_len);
void auth_free(struct auth *a);
/* Check an Authorization header value (NULL: none). */
enum auth_result auth_check(const struct auth *a, const char *header);

#endif
