#include "jsoncheck.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct cursor {
	const unsigned char *p, *end;
	const char *why;
};

static bool
fail(struct cursor *c, const char *why)
{
	c->why = why;
	return false;
}

static bool
is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_hex(unsigned char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') ||
	    (ch >= 'A' && ch <= 'F');
}

static void
skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
	    *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* One UTF-8 sequence starting at c->p (a byte >= 0x80). */
static bool
utf8_sequence(struct cursor *c)
{
	const unsigned char *p = c->p;
	uint32_t cp, min;
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		return fail(c, "invalid UTF-8");
	}
	if ((size_t)(c->end - p) < n)
		return fail(c, "truncated UTF-8");
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return fail(c, "invalid UTF-8");
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(c, "invalid UTF-8");
	c->p += n;
	return true;
}

static bool
string(struct cursor *c)
{
	c->p++;	/* the opening quote */
	while (c->p < c->end) {
		unsigned char ch = *c->p;

		if (ch == '"') {
			c->p++;
			return true;
		}
		if (ch < 0x20)
			return fail(c, "a control character in a string");
		if (ch >= 0x80) {
			if (!utf8_sequence(c))
				return false;
			continue;
		}
		c->p++;
		if (ch != '\\')
			continue;
		if (c->p == c->end)
			break;
		ch = *c->p++;
		if (ch == 'u') {
			const unsigned char *hex = c->p;

			for (int i = 0; i < 4; i++, c->p++)
				if (c->p == c->end || !is_hex(*c->p))
					return fail(c, "a bad \\u escape");
			/* cJSON would end the string at an escaped NUL. */
			if (memcmp(hex, "0000", 4) == 0)
				return fail(c, "a NUL character (\\u0000) in "
				    "a string");
		} else if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0') {
			return fail(c, "a bad escape in a string");
		}
	}
	return fail(c, "an unterminated string");
}

static bool
number(struct cursor *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p == c->end || !is_digit(*c->p))
		return fail(c, "a malformed number");
	if (*c->p == '0') {
		c->p++;
		if (c->p < c->end && is_digit(*c->p))
			return fail(c, "a number with a leading zero");
	} else {
		while (c->p < c->end && is_digit(*c->p))
			c->p++;
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (c->p == c->end || !is_digit(*c->p))
			return fail(c, "a malformed number");
		while (c->p < c->end && is_digit(*c->p))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (c->p == c->end || !is_digit(*c->p))
			return fail(c, "a malformed number");
		while (c->p < c->end && is_digit(*c->p))
			c->p++;
	}
	return true;
}

static bool
literal(struct cursor *c)
{
	static const char *const words[] = { "true", "false", "null" };

	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(c->end - c->p) >= n &&
		    memcmp(c->p, words[i], n) == 0) {
			c->p += n;
			return true;
		}
	}
	return fail(c, "an unexpected character");
}

int
jsoncheck_validate(const char *text, size_t len, unsigned max_depth,
    const char **why, size_t *offset)
{
	return jsoncheck_scan(text, len, max_depth, NULL, NULL, why, offset);
}

int
jsoncheck_scan(const char *text, size_t len, unsigned max_depth,
    jsoncheck_number_fn *on_number, void *arg, const char **why,
    size_t *offset)
{
	struct cursor c = { (const unsigned char *)text,
		(const unsigned char *)text + len, NULL };
	char stack[JSONCHECK_MAX_DEPTH];
	unsigned depth = 0;
	enum {
		VALUE,		/* a value must come */
		VALUE_OR_END,	/* after '[': a value or ']' */
		KEY,		/* after ',' in an object: a key */
		KEY_OR_END,	/* after '{': a key or '}' */
		AFTER,		/* after a value: ',', a close, or the end */
	} state = VALUE;
	bool ok = true;

	if (max_depth > JSONCHECK_MAX_DEPTH)
		max_depth = JSONCHECK_MAX_DEPTH;
	for (;;) {
		skip_space(&c);
		if (c.p == c.end) {
			if (state != AFTER || depth > 0)
				ok = fail(&c, "unexpected end of input");
			break;
		}
		unsigned char ch = *c.p;

		switch (state) {
		case VALUE_OR_END:
			if (ch == ']') {
				c.p++;
				depth--;
				state = AFTER;
				continue;
			}
			/* FALLTHROUGH */
		case VALUE:
			if (ch == '{' || ch == '[') {
				if (depth == max_depth) {
					ok = fail(&c, "nesting too deep");
					break;
				}
				stack[depth++] = (char)ch;
				c.p++;
				state = ch == '{' ? KEY_OR_END : VALUE_OR_END;
				continue;
			}
			if (ch == '"')
				ok = string(&c);
			else if (ch == '-' || is_digit(ch)) {
				const unsigned char *start = c.p;
				int rc;

				if ((ok = number(&c)) && on_number != NULL &&
				    (rc = on_number(arg, (size_t)(start -
				    (const unsigned char *)text),
				    (size_t)(c.p - start))) != 0)
					return rc;
			} else
				ok = literal(&c);
			state = AFTER;
			break;
		case KEY_OR_END:
			if (ch == '}') {
				c.p++;
				depth--;
				state = AFTER;
				continue;
			}
			/* FALLTHROUGH */
		case KEY:
			if (ch != '"') {
				ok = fail(&c, "an object key that is not a "
				    "string");
				break;
			}
			if (!(ok = string(&c)))
				break;
			skip_space(&c);
			if (c.p == c.end || *c.p != ':') {
				ok = fail(&c, "a missing ':' after a key");
				break;
			}
			c.p++;
			state = VALUE;
			continue;
		case AFTER:
			if (depth == 0) {
				ok = fail(&c, "extra data after the JSON "
				    "value");
				break;
			}
			if (ch == ',') {
				state = stack[depth - 1] == '{' ? KEY : VALUE;
			} else if ((ch == ']' && stack[depth - 1] == '[') ||
			    (ch == '}' && stack[depth - 1] == '{')) {
				depth--;
			} else {
				ok = fail(&c, "an unexpected character");
				break;
			}
			c.p++;
			continue;
		}
		if (!ok)
			break;
	}
	if (!ok) {
		*why = c.why;
		*offset = (size_t)(c.p - (const unsigned char *)text);
		return -1;
	}
	return 0;
}
