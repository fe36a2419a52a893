#include "order.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decimal.h"
#include "jsoncheck.h"
#include "money.h"

static const char *const order_status_names[ORDER_STATUS_COUNT] = {
	[ORDER_PENDING] = "Pending",
	[ORDER_PROCESSING] = "Processing",
	[ORDER_COMPLETED] = "Completed",
	[ORDER_CANCELLED] = "Cancelled",
};

void
order_init(struct order *o)
{
	*o = (struct order){ 0 };
}

void
order_finish(struct order *o)
{
	free(o->items);
	*o = (struct order){ 0 };
}

int
order_reserve_items(struct order *o, uint32_t n)
{
	uint64_t *items;

	if (n <= o->items_cap)
		return 0;
	items = reallocarray(o->items, n, sizeof(*items));
	if (items == NULL)
		return -1;
	o->items = items;
	o->items_cap = n;
	return 0;
}

void
order_idem_seen(struct order *o, uint64_t first,
    const uint8_t digest[ORDER_DIGEST_LEN])
{
	bool same = memcmp(digest, o->idem_digest, ORDER_DIGEST_LEN) == 0;

	o->idem_result = same ? ORDER_IDEM_REPLAY : ORDER_IDEM_MISMATCH;
	o->id = same ? first : 0;
}

bool
order_idem_key_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (s[n] < ' ' || s[n] > '~' || n == ORDER_IDEM_KEY_MAX)
			return false;
	return n > 0;
}

const char *
order_status_name(enum order_status status)
{
	if ((unsigned)status >= ORDER_STATUS_COUNT)
		return "Unknown";
	return order_status_names[status];
}

int
order_status_parse(const char *s, enum order_status *status)
{
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		if (strcmp(s, order_status_names[i]) == 0) {
			*status = (enum order_status)i;
			return 0;
		}
	}
	return -1;
}

int
order_id_parse(const char *s, size_t len, uint64_t *id)
{
	uint64_t v = 0;

	if (len >= 3 && memcmp(s, "ORD", 3) == 0) {
		s += 3;
		len -= 3;
	}
	if (len == 0 || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*id = v;
	return 0;
}

void
order_id_format(uint64_t id, char buf[ORDER_ID_BUFSZ])
{
	char digits[21];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + id % 10);
		id /= 10;
	} while (id != 0);
	memcpy(buf, "ORD", 3);
	for (size_t i = 0; i < n; i++)
		buf[3 + i] = digits[n - 1 - i];
	buf[3 + n] = '\0';
}

void
order_time_format(int64_t ms, char buf[32])
{
	time_t secs;
	struct tm tm;
	int milli;
	size_t n;

	if (ms < 0)
		ms = 0;
	secs = (time_t)(ms / 1000);
	milli = (int)(ms % 1000);

	gmtime_r(&secs, &tm);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0 || n > 32 - 6) {
		buf[0] = '\0';
		return;
	}
	buf[n++] = '.';
	buf[n++] = (char)('0' + milli / 100);
	buf[n++] = (char)('0' + milli / 10 % 10);
	buf[n++] = (char)('0' + milli % 10);
	buf[n++] = 'Z';
	buf[n] = '\0';
}

/*
 * Field errors, gathered as the original gathers them: every field is
 * checked and each failing one gets its message.
 */
struct field_errors {
	const char *field[8];
	char message[8][96];
	int n;
};

static void
field_error(struct field_errors *fe, const char *field, const char *message)
{
	if (fe->n == (int)(sizeof(fe->field) / sizeof(fe->field[0])))
		return;
	fe->field[fe->n] = field;
	snprintf(fe->message[fe->n], sizeof(fe->message[0]), "%s", message);
	fe->n++;
}

static void
field_errors_encode(const struct field_errors *fe, struct strbuf *err)
{
	strbuf_puts(err, "{");
	for (int i = 0; i < fe->n; i++) {
		if (i > 0)
			strbuf_puts(err, ", ");
		strbuf_json_string(err, fe->field[i]);
		strbuf_puts(err, ": [");
		strbuf_json_string(err, fe->message[i]);
		strbuf_puts(err, "]");
	}
	strbuf_puts(err, "}");
}

static void
detail_error(struct strbuf *err, const char *detail)
{
	strbuf_puts(err, "{\"detail\": ");
	strbuf_json_string(err, detail);
	strbuf_puts(err, "}");
}

/*
 * The body's numbers, each read from its own text: cJSON keeps only a
 * double (250.750000000000001 becomes 250.75, 1e-400 becomes 0).
 * jsoncheck_scan gives each number's place in the body in the order of
 * the text, and cJSON's number nodes come in that same order (a pre-order
 * walk of the tree), so the k-th number node's text is v[k]. cJSON parses
 * a copy of the body in which every number is blanked to a 0, so its
 * doubles cannot be used by mistake.
 */
struct numbers {
	const char *body;
	struct number_span {
		size_t offset, len;
	} *v;
	size_t n, cap;
};

static int
numbers_add(void *arg, size_t offset, size_t len)
{
	struct numbers *nums = arg;

	if (nums->n == nums->cap) {
		size_t cap = nums->cap == 0 ? 16 : nums->cap * 2;
		struct number_span *v = reallocarray(nums->v, cap, sizeof(*v));

		if (v == NULL)
			return -2;
		nums->v = v;
		nums->cap = cap;
	}
	nums->v[nums->n++] = (struct number_span){ offset, len };
	return 0;
}

/* How many numbers node holds, itself included (at most 16 deep). */
static size_t
count_numbers(const cJSON *node)
{
	size_t n = cJSON_IsNumber(node) ? 1 : 0;

	for (const cJSON *c = node->child; c != NULL; c = c->next)
		n += count_numbers(c);
	return n;
}

/* The first member named key; *first: the index of its first number. */
static const cJSON *
member(const cJSON *object, const char *key, size_t *first)
{
	size_t k = 0;

	for (const cJSON *c = object->child; c != NULL; c = c->next) {
		if (c->string != NULL && strcmp(c->string, key) == 0) {
			*first = k;
			return c;
		}
		k += count_numbers(c);
	}
	return NULL;
}

static const char invalid_integer[] = "A valid integer is required.";
static const char integer_too_small[] =
    "Ensure this value is greater than or equal to 1.";
static const char integer_too_big[] = "Ensure this value is less than or "
    "equal to 9007199254740991.";

/*
 * A JSON number's text as a positive integer, exactly: its value must be
 * whole, as the original's IntegerField takes a float only when it is
 * integral (2.0 and 1e2 are taken, 1.5 and 9007199254740991.4 are not).
 */
static const char *
decode_integer_number(const char *text, size_t len, uint64_t *out)
{
	enum { max_digits = 16 };	/* 9007199254740991 has 16 */
	struct decimal d;
	uint64_t v = 0;

	if (decimal_parse(text, len, &d) != 0)
		return invalid_integer;
	decimal_normalize(&d);
	if (d.ndigits > 0 && d.exponent < 0)
		return invalid_integer;		/* a fraction is left */
	if (d.ndigits == 0 || d.negative)
		return integer_too_small;
	if ((int64_t)d.ndigits + d.exponent > max_digits)
		return integer_too_big;
	for (size_t i = 0; i < d.ndigits; i++)
		v = v * 10 + (uint64_t)(d.digits[i] - '0');
	for (int64_t e = 0; e < d.exponent; e++)
		v *= 10;
	if (v > (uint64_t)ORDER_MAX_INTEGER)
		return integer_too_big;
	*out = v;
	return NULL;
}

/*
 * A positive integer as the original's IntegerField(min_value=1) takes it:
 * a JSON number whose value is whole (the k-th number of the body), or a
 * string of digits. Returns the message on error.
 */
static const char *
decode_positive_integer(const cJSON *item, const struct numbers *nums,
    size_t k, uint64_t *out)
{
	if (cJSON_IsNumber(item))
		return decode_integer_number(nums->body + nums->v[k].offset,
		    nums->v[k].len, out);
	if (cJSON_IsString(item)) {
		const char *s = item->valuestring;
		bool negative = false;
		uint64_t v = 0;
		size_t n = 0;

		while (*s == ' ')
			s++;
		if (*s == '-' || *s == '+')
			negative = *s++ == '-';
		for (; *s >= '0' && *s <= '9'; s++, n++) {
			if (v <= (uint64_t)ORDER_MAX_INTEGER)
				v = v * 10 + (uint64_t)(*s - '0');
		}
		while (*s == ' ')
			s++;
		if (n == 0 || *s != '\0')
			return invalid_integer;
		if (negative || v < 1)
			return v == 0 || negative ? integer_too_small
			    : invalid_integer;
		if (v > (uint64_t)ORDER_MAX_INTEGER)
			return integer_too_big;
		*out = v;
		return NULL;
	}
	return invalid_integer;
}

/* Returns the first key that appears twice among the known fields. */
static const char *
duplicate_known_key(const cJSON *root)
{
	static const char *const known[] = { "user_id", "item_ids",
		"total_amount" };

	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
		int seen = 0;

		for (const cJSON *c = root->child; c != NULL; c = c->next)
			if (c->string != NULL && strcmp(c->string, known[k]) == 0)
				seen++;
		if (seen > 1)
			return known[k];
	}
	return NULL;
}

int
order_decode_request(const char *body, size_t len, struct order *o,
    struct strbuf *err)
{
	struct field_errors fe = { .n = 0 };
	struct numbers nums = { .body = body };
	const cJSON *user, *items, *amount;
	const char *dup, *why;
	size_t offset, k = 0;
	char *text = NULL;
	cJSON *root = NULL;
	int rc = -1;

	strbuf_reset(err);
	if (len == 0) {
		detail_error(err, "JSON parse error - the request body is "
		    "empty.");
		return -1;
	}
	rc = jsoncheck_scan(body, len, ORDER_MAX_DEPTH, numbers_add, &nums, &why,
	    &offset);
	if (rc != 0) {
		char detail[128];

		if (rc == -1) {
			snprintf(detail, sizeof(detail), "JSON parse error - "
			    "%s at byte %zu.", why, offset);
			detail_error(err, detail);
		}
		goto out;	/* -1, or -2: no memory for the numbers */
	}
	rc = -2;
	text = malloc(len + 1);
	if (text == NULL)
		goto out;
	rc = -1;
	memcpy(text, body, len);
	text[len] = '\0';
	for (size_t i = 0; i < nums.n; i++) {
		text[nums.v[i].offset] = '0';
		memset(text + nums.v[i].offset + 1, ' ', nums.v[i].len - 1);
	}
	root = cJSON_ParseWithOpts(text, NULL, 1);
	if (root == NULL || count_numbers(root) != nums.n) {
		/*
		 * What jsoncheck lets by and cJSON refuses: a lone \ud800.
		 * The counts differ only if the two parsers disagree.
		 */
		detail_error(err, "JSON parse error - the body is not valid "
		    "JSON.");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		strbuf_printf(err, "{\"non_field_errors\": [\"Invalid data. "
		    "Expected a dictionary, but got %s.\"]}",
		    cJSON_IsArray(root) ? "list" : cJSON_IsString(root) ? "str"
		    : cJSON_IsNumber(root) ? "number" : cJSON_IsBool(root)
		    ? "bool" : "null");
		goto out;
	}
	dup = duplicate_known_key(root);
	if (dup != NULL) {
		strbuf_printf(err, "{\"detail\": \"JSON parse error - duplicate "
		    "key \\\"%s\\\".\"}", dup);
		goto out;
	}

	user = member(root, "user_id", &k);
	if (user == NULL)
		field_error(&fe, "user_id", "This field is required.");
	else if (cJSON_IsNull(user))
		field_error(&fe, "user_id", "This field may not be null.");
	else if ((why = decode_positive_integer(user, &nums, k,
	    &o->user_id)) != NULL)
		field_error(&fe, "user_id", why);

	items = member(root, "item_ids", &k);
	if (items == NULL) {
		field_error(&fe, "item_ids", "This field is required.");
	} else if (cJSON_IsNull(items)) {
		field_error(&fe, "item_ids", "This field may not be null.");
	} else if (!cJSON_IsArray(items)) {
		field_error(&fe, "item_ids", "Expected a list of items.");
	} else {
		int n = cJSON_GetArraySize(items), i = 0;
		const cJSON *item;

		if (n == 0) {
			field_error(&fe, "item_ids",
			    "This list may not be empty.");
		} else if (n > ORDER_MAX_ITEMS) {
			field_error(&fe, "item_ids", "Ensure this field has no "
			    "more than 1000 elements.");
		} else if (order_reserve_items(o, (uint32_t)n) != 0) {
			rc = -2;
			goto out;
		} else {
			cJSON_ArrayForEach(item, items) {
				/* k: the first number at or after item. */
				why = decode_positive_integer(item, &nums, k,
				    &o->items[i]);
				if (why != NULL) {
					char msg[96];

					snprintf(msg, sizeof(msg),
					    "Item %d: %s", i, why);
					field_error(&fe, "item_ids", msg);
					break;
				}
				k += count_numbers(item);
				i++;
			}
			o->n_items = (uint32_t)n;
		}
	}

	amount = member(root, "total_amount", &k);
	if (amount == NULL)
		field_error(&fe, "total_amount", "This field is required.");
	else if (cJSON_IsNull(amount))
		field_error(&fe, "total_amount", "This field may not be null.");
	else if (cJSON_IsNumber(amount)) {
		if (money_parse_number(nums.body + nums.v[k].offset,
		    nums.v[k].len, &o->total_cents, &why) != 0)
			field_error(&fe, "total_amount", why);
	} else if (cJSON_IsString(amount)) {
		if (money_parse_string(amount->valuestring, &o->total_cents,
		    &why) != 0)
			field_error(&fe, "total_amount", why);
	} else {
		field_error(&fe, "total_amount", "A valid number is required.");
	}

	if (fe.n > 0) {
		field_errors_encode(&fe, err);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	free(text);
	free(nums.v);
	if (rc == -1 && strbuf_failed(err))
		rc = -2;
	return rc;
}

void
order_encode_json(const struct order *o, struct strbuf *out)
{
	char id[ORDER_ID_BUFSZ], money[MONEY_BUFSZ], created[32], updated[32];

	order_id_format(o->id, id);
	money_format(o->total_cents, money);
	order_time_format(o->created_ms, created);
	order_time_format(o->updated_ms, updated);
	strbuf_printf(out, "{\"order_id\": \"%s\", \"user_id\": %llu, "
	    "\"item_ids\": [", id, (unsigned long long)o->user_id);
	for (uint32_t i = 0; i < o->n_items; i++)
		strbuf_printf(out, i == 0 ? "%llu" : ", %llu",
		    (unsigned long long)o->items[i]);
	strbuf_printf(out, "], \"total_amount\": \"%s\", \"status\": \"%s\", "
	    "\"created_at\": \"%s\", \"updated_at\": \"%s\", "
	    "\"completed_at\": ", money, order_status_name(o->status),
	    created, updated);
	if (o->completed_ms != 0) {
		char completed[32];

		order_time_format(o->completed_ms, completed);
		strbuf_printf(out, "\"%s\"}", completed);
	} else {
		strbuf_puts(out, "null}");
	}
}
