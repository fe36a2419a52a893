#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_FILE_MAX (64 * 1024)
#define AUTH_TOKENS_MAX 64

struct auth {
	size_t n;
	uint8_t digest[AUTH_TOKENS_MAX][SHA256_DIGEST_LENGTH];
};

static int
read_file(const char *path, char *buf, size_t size, size_t *len, char *why,
    size_t why_len)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "is not a regular file");
		goto fail;
	}
	if (st.st_mode & (S_IRWXO)) {
		snprintf(why, why_len, "is open to others (mode %04o); make it "
		    "0600 or 0640: chmod o= %s", (unsigned)(st.st_mode & 07777),
		    path);
		goto fail;
	}
	*len = 0;
	while ((n = read(fd, buf + *len, size - *len)) > 0)
		*len += (size_t)n;
	if (n < 0) {
		snprintf(why, why_len, "cannot read: %s", strerror(errno));
		goto fail;
	}
	if (*len == size) {
		snprintf(why, why_len, "is larger than %zu bytes", size - 1);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

int
auth_load(struct auth **ap, const char *path, char *why, size_t why_len)
{
	struct auth *a;
	char *buf, *line, *next;
	size_t len;

	buf = malloc(AUTH_FILE_MAX);
	a = calloc(1, sizeof(*a));
	if (buf == NULL || a == NULL) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	if (read_file(path, buf, AUTH_FILE_MAX, &len, why, why_len) != 0)
		goto fail;
	buf[len] = '\0';
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		size_t n;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		for (size_t i = 0; i < n; i++) {
			if (line[i] <= ' ' || line[i] > '~') {
				snprintf(why, why_len, "holds a token with a "
				    "space or a control character");
				goto fail;
			}
		}
		if (a->n == AUTH_TOKENS_MAX) {
			snprintf(why, why_len, "holds more than %d tokens",
			    AUTH_TOKENS_MAX);
			goto fail;
		}
		SHA256_CTX ctx;

		SHA256Init(&ctx);
		SHA256Update(&ctx, (const uint8_t *)line, n);
		SHA256Final(a->digest[a->n++], &ctx);
	}
	if (a->n == 0) {
		snprintf(why, why_len, "holds no token");
		goto fail;
	}
	explicit_bzero(buf, AUTH_FILE_MAX);
	free(buf);
	*ap = a;
	return 0;
fail:
	if (buf != NULL)
		explicit_bzero(buf, AUTH_FILE_MAX);
	free(buf);
	free(a);
	return -1;
}

void
auth_free(struct auth *a)
{
	if (a != NULL)
		explicit_bzero(a, sizeof(*a));
	free(a);
}

/* 0 if equal; reads every byte whatever it finds (no early exit). */
static int
constant_time_compare(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff;
}

enum auth_result
auth_check(const struct auth *a, const char *header)
{
	static const char scheme[] = "Bearer ";
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256_CTX ctx;
	int match = 0;

	if (header == NULL || strncasecmp(header, scheme, sizeof(scheme) - 1))
		return AUTH_MISSING;
	header += sizeof(scheme) - 1;
	while (*header == ' ')
		header++;
	if (*header == '\0')
		return AUTH_MISSING;
	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)header, strlen(header));
	SHA256Final(digest, &ctx);
	/* Every token, no early exit. */
	for (size_t i = 0; i < a->n; i++)
		match |= constant_time_compare(digest, a->digest[i],
		    sizeof(digest)) == 0;
	return match ? AUTH_OK : AUTH_INVALID;
}
