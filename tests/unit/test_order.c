/* order: ids, statuses, times, the request decoder and the JSON encoder. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "order.h"
#include "strbuf.h"
#include "test.h"

#define M_REQUIRED "This field is required."
#define M_NULL "This field may not be null."
#define M_INT "A valid integer is required."
#define M_MIN1 "Ensure this value is greater than or equal to 1."
#define M_MAXINT "Ensure this value is less than or equal to 9007199254740991."
#define M_NUMBER "A valid number is required."
#define M_PLACES "Ensure that there are no more than 2 decimal places."
#define M_WHOLE "Ensure that there are no more than 8 digits before the " \
	"decimal point."
#define M_MIN0 "Ensure this value is greater than or equal to 0."
#define M_EMPTY_LIST "This list may not be empty."
#define M_TOO_MANY "Ensure this field has no more than 1000 elements."

static struct order o;
static struct strbuf err;

TEST(test_id_parse)
{
	static const char *const bad[] = { "ORD", "", "ORD-1", "12a", "-1",
		"+1", " 123", "123 ", "ord123", "ORDORD1", "ORD 1", "ORD1.0",
		"ORD99999999999999999999", "99999999999999999999",
		"ORD18446744073709551616" };
	uint64_t id;

	id = 0;
	test_assert(order_id_parse("ORD123", 6, &id) == 0 && id == 123);
	id = 0;
	test_assert(order_id_parse("123", 3, &id) == 0 && id == 123);
	id = 0;
	test_assert(order_id_parse("ORD007", 6, &id) == 0 && id == 7);
	/* 19 digits is the most accepted, with or without the prefix. */
	id = 0;
	test_assert(order_id_parse("9999999999999999999", 19, &id) == 0 &&
	    id == UINT64_C(9999999999999999999));
	id = 0;
	test_assert(order_id_parse("ORD1234567890123456789", 22, &id) == 0 &&
	    id == UINT64_C(1234567890123456789));
	/* Only len bytes are read. */
	id = 0;
	test_assert(order_id_parse("42/status", 2, &id) == 0 && id == 42);
	test_assert(order_id_parse("ORD123", 3, &id) == -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		id = 777;
		test_assert_msg(order_id_parse(bad[i], strlen(bad[i]), &id) ==
		    -1, "\"%s\" accepted as %llu", bad[i],
		    (unsigned long long)id);
	}
}

TEST(test_id_format)
{
	char buf[ORDER_ID_BUFSZ];
	uint64_t id;

	order_id_format(0, buf);
	test_assert(strcmp(buf, "ORD0") == 0);
	order_id_format(123, buf);
	test_assert(strcmp(buf, "ORD123") == 0);
	order_id_format(UINT64_MAX, buf);
	test_assert_msg(strcmp(buf, "ORD18446744073709551615") == 0, "%s", buf);
	order_id_format(UINT64_C(1234567890123456789), buf);
	test_assert(order_id_parse(buf, strlen(buf), &id) == 0 &&
	    id == UINT64_C(1234567890123456789));
}

TEST(test_time_format)
{
	char buf[32];

	order_time_format(0, buf);
	test_assert_msg(strcmp(buf, "1970-01-01T00:00:00.000Z") == 0, "%s", buf);
	order_time_format(999, buf);
	test_assert_msg(strcmp(buf, "1970-01-01T00:00:00.999Z") == 0, "%s", buf);
	order_time_format(1700000000007, buf);
	test_assert_msg(strcmp(buf, "2023-11-14T22:13:20.007Z") == 0, "%s", buf);
	order_time_format(1795689612123, buf);
	test_assert_msg(strcmp(buf, "2026-11-26T10:40:12.123Z") == 0, "%s", buf);
	/* clock_realtime_ms is wall-clock milliseconds. */
	int64_t now = clock_realtime_ms();
	test_assert(now > 1700000000000 && now < 4102444800000);
}

TEST(test_status)
{
	static const char *const names[] = { "Pending", "Processing",
		"Completed", "Cancelled" };
	static const char *const bad[] = { "pending", "PENDING", "", "Pending ",
		" Pending", "Done", "Pend" };
	enum order_status st;

	test_assert(ORDER_STATUS_COUNT == 4);
	for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
		test_assert(strcmp(order_status_name((enum order_status)i),
		    names[i]) == 0);
		st = (enum order_status)99;
		test_assert(order_status_parse(names[i], &st) == 0 &&
		    (int)st == i);
	}
	test_assert(strcmp(order_status_name((enum order_status)4), "Unknown")
	    == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		test_assert_msg(order_status_parse(bad[i], &st) == -1, "\"%s\"",
		    bad[i]);
}

/* Decode body; on error parse the error JSON (the caller deletes it). */
static int
decode(const char *body, size_t len, cJSON **errjson)
{
	int rc = order_decode_request(body, len, &o, &err);

	*errjson = NULL;
	if (rc == -1) {
		test_assert_msg(err.data != NULL && err.len > 0, "body %.80s: "
		    "no error text", body);
		test_assert_msg(strlen(err.data) == err.len, "%s", err.data);
		*errjson = cJSON_Parse(err.data);
		test_assert_msg(*errjson != NULL && cJSON_IsObject(*errjson),
		    "body %.80s: error is not a JSON object: %s", body,
		    err.data);
	}
	return rc;
}

static int
count_keys(const cJSON *obj)
{
	int n = 0;
	const cJSON *c;

	cJSON_ArrayForEach(c, obj)
		n++;
	return n;
}

/* {"field": ["message"]} and nothing else; msg NULL: any message. */
static void
check_field_errors(const char *body, size_t len, int nkeys,
    const char *field, const char *msg)
{
	cJSON *e;
	const cJSON *list, *m;
	int rc = decode(body, len, &e);

	test_assert_msg(rc == -1, "body %.200s: rc %d", body, rc);
	test_assert_msg(count_keys(e) == nkeys, "body %.200s: %d keys in %s",
	    body, count_keys(e), err.data);
	list = cJSON_GetObjectItemCaseSensitive(e, field);
	test_assert_msg(cJSON_IsArray(list) && cJSON_GetArraySize(list) >= 1,
	    "body %.200s: no list for %s in %s", body, field, err.data);
	cJSON_ArrayForEach(m, list)
		test_assert_msg(cJSON_IsString(m) && m->valuestring[0] != '\0',
		    "body %.200s: %s", body, err.data);
	m = cJSON_GetArrayItem(list, 0);
	test_assert_msg(msg == NULL || strcmp(m->valuestring, msg) == 0,
	    "body %.200s: %s: got \"%s\", want \"%s\"", body, field,
	    m->valuestring, msg);
	cJSON_Delete(e);
}

static void
field_error(const char *body, const char *field, const char *msg)
{
	check_field_errors(body, strlen(body), 1, field, msg);
}

/* {"detail": "..."} and nothing else. */
static void
detail_error(const char *body, size_t len)
{
	cJSON *e;
	const cJSON *d;
	int rc = decode(body, len, &e);

	test_assert_msg(rc == -1, "body %.80s: rc %d", body, rc);
	d = cJSON_GetObjectItemCaseSensitive(e, "detail");
	test_assert_msg(cJSON_IsString(d) && d->valuestring[0] != '\0' &&
	    count_keys(e) == 1, "body %.80s: %s", body, err.data);
	cJSON_Delete(e);
}

static void
decode_ok(const char *body, uint64_t user, uint32_t n_items, int64_t cents)
{
	cJSON *e;
	int rc = decode(body, strlen(body), &e);

	test_assert_msg(rc == 0, "body %s: rc %d: %s", body, rc,
	    err.data ? err.data : "");
	test_assert_msg(o.user_id == user && o.n_items == n_items &&
	    o.total_cents == cents, "body %s: user %llu, %u items, %lld cents",
	    body, (unsigned long long)o.user_id, o.n_items,
	    (long long)o.total_cents);
}

TEST(test_decode_ok)
{
	decode_ok("{\"user_id\": 99, \"item_ids\": [101, 102], "
	    "\"total_amount\": 250.75}", 99, 2, 25075);
	test_assert(o.items[0] == 101 && o.items[1] == 102);
	/* The struct is reused: fewer items the second time. */
	decode_ok("{\"user_id\": \"12\", \"item_ids\": [\"5\"], "
	    "\"total_amount\": \"0.1\"}", 12, 1, 10);
	test_assert(o.items[0] == 5);
	decode_ok("{\"total_amount\": 1e2, \"item_ids\": [9007199254740991], "
	    "\"user_id\": 1.0, \"extra\": {\"ignored\": [1, 2]}}", 1, 1, 10000);
	test_assert(o.items[0] == UINT64_C(9007199254740991));
	decode_ok(" \n{\"user_id\":9007199254740991,\"item_ids\":[1,1,1],"
	    "\"total_amount\":0}\n ", UINT64_C(9007199254740991), 3, 0);
	decode_ok("{\"user_id\": 1, \"item_ids\": [1], \"total_amount\": "
	    "\"99999999.99\"}", 1, 1, 9999999999);
	decode_ok("{\"user_id\": 1, \"item_ids\": [1], \"total_amount\": "
	    "\"-0\"}", 1, 1, 0);

	/* Exactly 1000 items is accepted. */
	struct strbuf b;
	strbuf_init(&b);
	strbuf_puts(&b, "{\"user_id\": 3, \"total_amount\": 1, \"item_ids\": [");
	for (int i = 0; i < ORDER_MAX_ITEMS; i++)
		strbuf_printf(&b, i ? ",%d" : "%d", i + 1);
	strbuf_puts(&b, "]}");
	decode_ok(b.data, 3, 1000, 100);
	test_assert(o.items[0] == 1 && o.items[999] == 1000);
	strbuf_finish(&b);
}

TEST(test_decode_missing_and_null)
{
	field_error("{\"item_ids\": [1], \"total_amount\": 1}", "user_id",
	    M_REQUIRED);
	field_error("{\"user_id\": 1, \"total_amount\": 1}", "item_ids",
	    M_REQUIRED);
	field_error("{\"user_id\": 1, \"item_ids\": [1]}", "total_amount",
	    M_REQUIRED);
	field_error("{\"user_id\": null, \"item_ids\": [1], \"total_amount\": 1}",
	    "user_id", M_NULL);
	field_error("{\"user_id\": 1, \"item_ids\": null, \"total_amount\": 1}",
	    "item_ids", M_NULL);
	field_error("{\"user_id\": 1, \"item_ids\": [1], \"total_amount\": null}",
	    "total_amount", M_NULL);
	/* Keys are case-sensitive. */
	field_error("{\"User_id\": 1, \"item_ids\": [1], \"total_amount\": 1}",
	    "user_id", M_REQUIRED);
}

static void
user_error(const char *value, const char *msg)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"user_id\": %s, \"item_ids\": [1], "
	    "\"total_amount\": 1}", value);
	field_error(body, "user_id", msg);
}

TEST(test_decode_user_id)
{
	user_error("0", M_MIN1);
	user_error("-1", M_MIN1);
	user_error("\"0\"", M_MIN1);
	user_error("\"-1\"", M_MIN1);
	user_error("\"x\"", M_INT);
	user_error("\"\"", M_INT);
	user_error("\"1.5\"", M_INT);
	user_error("\"12abc\"", M_INT);
	user_error("1.5", M_INT);
	user_error("true", M_INT);
	user_error("false", M_INT);
	user_error("[1]", M_INT);
	user_error("{}", M_INT);
	user_error("9007199254740992", M_MAXINT);
	user_error("\"9007199254740992\"", M_MAXINT);
	user_error("\"99999999999999999999999999\"", M_MAXINT);
	user_error("1e300", M_MAXINT);
}

static void
items_error(const char *value, const char *msg)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"user_id\": 1, \"item_ids\": %s, "
	    "\"total_amount\": 1}", value);
	field_error(body, "item_ids", msg);
}

TEST(test_decode_item_ids)
{
	items_error("[]", M_EMPTY_LIST);
	items_error("\"x\"", NULL);
	items_error("1", NULL);
	items_error("{\"0\": 1}", NULL);
	items_error("[0]", NULL);
	items_error("[\"a\"]", NULL);
	items_error("[1.5]", NULL);
	items_error("[1, 2, -3]", NULL);
	items_error("[null]", NULL);
	items_error("[[1]]", NULL);
	items_error("[9007199254740992]", NULL);

	struct strbuf b;
	strbuf_init(&b);
	strbuf_puts(&b, "{\"user_id\": 3, \"total_amount\": 1, \"item_ids\": [");
	for (int i = 0; i <= ORDER_MAX_ITEMS; i++)
		strbuf_printf(&b, i ? ",%d" : "%d", i + 1);
	strbuf_puts(&b, "]}");
	field_error(b.data, "item_ids", M_TOO_MANY);
	strbuf_finish(&b);
}

static void
amount_error(const char *value, const char *msg)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"user_id\": 1, \"item_ids\": [1], "
	    "\"total_amount\": %s}", value);
	field_error(body, "total_amount", msg);
}

TEST(test_decode_total_amount)
{
	amount_error("-1", M_MIN0);
	amount_error("\"-1\"", M_MIN0);
	amount_error("1.005", M_PLACES);
	amount_error("\"1.005\"", M_PLACES);
	amount_error("123456789", M_WHOLE);
	amount_error("\"abc\"", M_NUMBER);
	amount_error("\"\"", M_NUMBER);
	amount_error("true", M_NUMBER);
	amount_error("[1]", M_NUMBER);
	amount_error("{}", M_NUMBER);
	amount_error("null", M_NULL);
}

#define M_TOTAL "Ensure that there are no more than 10 digits in total."

static void
decode_ok_items(const char *body, uint64_t user, int64_t cents, uint32_t n,
    const uint64_t *want)
{
	decode_ok(body, user, n, cents);
	for (uint32_t i = 0; i < n; i++)
		test_assert_msg(o.items[i] == want[i], "body %s: item %u is "
		    "%llu, want %llu", body, i, (unsigned long long)o.items[i],
		    (unsigned long long)want[i]);
}

/* Numbers are judged by their exact text, never by a double. */
TEST(test_decode_exact_numbers)
{
	/* Each would round to a valid value as a double. */
	amount_error("250.750000000000001", M_TOTAL);
	amount_error("1e-400", M_TOTAL);
	amount_error("100.001", M_PLACES);
	amount_error("99999999.999999999999", M_TOTAL);
	amount_error("250.7500000000000000000000000000000000000000000000000"
	    "00000000000000000001", M_TOTAL);
	user_error("9007199254740991.4", M_INT);
	user_error("1.0000000000000001", M_INT);
	user_error("0.99999999999999999", M_INT);
	user_error("1e-400", M_INT);
	items_error("[9007199254740991.4]", "Item 0: " M_INT);
	items_error("[1, 2, 3.0000000000000001]", "Item 2: " M_INT);

	/* Exponent forms are taken when their exact value is valid. */
	static const struct {
		const char *text;
		int64_t cents;
	} amounts[] = { { "2.5075e2", 25075 }, { "25075e-2", 25075 },
		{ "1.000e2", 10000 }, { "1E+2", 10000 }, { "100.00", 10000 },
		{ "100.000", 10000 }, { "0e-400", 0 }, { "-0.0", 0 },
		{ "9999999999e-2", 9999999999 },
		/* A long text: every digit is read. */
		{ "250.750000000000000000000000000000000000000000000000000000"
		  "0000000000000", 25075 } };
	for (size_t i = 0; i < sizeof(amounts) / sizeof(amounts[0]); i++) {
		char body[256];

		snprintf(body, sizeof(body), "{\"user_id\": 1, \"item_ids\": "
		    "[1], \"total_amount\": %s}", amounts[i].text);
		decode_ok(body, 1, 1, amounts[i].cents);
	}

	/* An integral float is an integer, as IntegerField takes it. */
	static const struct {
		const char *text;
		uint64_t v;
	} ints[] = { { "2.0", 2 }, { "1e0", 1 }, { "1e2", 100 },
		{ "1.5e1", 15 }, { "150e-1", 15 }, { "9.007199254740991e15",
		UINT64_C(9007199254740991) }, { "9007199254740991.000",
		UINT64_C(9007199254740991) }, { "1.000000000000000000000000000"
		"000000000000000000000000000000000000000000", 1 } };
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		char body[256];

		snprintf(body, sizeof(body), "{\"user_id\": %s, \"item_ids\": "
		    "[%s], \"total_amount\": 1}", ints[i].text, ints[i].text);
		decode_ok_items(body, ints[i].v, 100, 1, &ints[i].v);
	}
	user_error("9007199254740993", M_MAXINT);
	user_error("9.007199254740992e15", M_MAXINT);
	user_error("0e5", M_MIN1);
	user_error("-0", M_MIN1);
	user_error("-1e400", M_MIN1);
	user_error("-1.5", M_INT);

	/* Huge exponents: a prompt 400 with the field's message. */
	user_error("1e999999999", M_MAXINT);
	user_error("1e-999999999", M_INT);
	user_error("1e99999999999999999999999999999999", M_MAXINT);
	items_error("[1e999999999]", "Item 0: " M_MAXINT);
	amount_error("1e999999999", M_TOTAL);
	amount_error("1e-999999999", M_TOTAL);
	amount_error("-1e999999999", M_TOTAL);

	/* Each field gets its own number's text, wherever the numbers are:
	 * other members before them, nested, duplicated or after. */
	static const uint64_t want[] = { 4, 5, 6 };
	decode_ok_items("{\"a\": [1.5, [2e-400, {\"b\": 3.25}]], \"a\": 9.9, "
	    "\"item_ids\": [4, 5e0, 60e-1], \"c\": {\"d\": [0.001]}, "
	    "\"user_id\": 7.0, \"e\": 1e999, \"total_amount\": 8.5, "
	    "\"f\": -1}", 7, 850, 3, want);
	decode_ok_items("{\"total_amount\": \"8.5\", \"user_id\": \"7\", "
	    "\"x\": 0.001, \"item_ids\": [\"4\", 5, \"6\"]}", 7, 850, 3, want);
	items_error("[[1], 2]", "Item 0: " M_INT);
	items_error("[\"1\", [2.5], 3]", "Item 1: " M_INT);

	/* A string is still read as before: digits only for an id. */
	user_error("\"2.0\"", M_INT);
	user_error("\"1e2\"", M_INT);
}

TEST(test_decode_body_errors)
{
	static const char *const bad_json[] = { "{", "}", "{\"user_id\": }",
		"{\"a\":1} x", "{\"a\":1}{}", "{'user_id': 1}", "nul",
		"{\"user_id\": 1,}", " ", "\n" };
	cJSON *e;
	const cJSON *nfe;

	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
		detail_error(bad_json[i], strlen(bad_json[i]));
	detail_error("", 0);
	/* A NUL byte inside the body, and one right at its end. */
	static const char nul[] = "{\"user_id\": 1,\0 \"item_ids\": [1], "
	    "\"total_amount\": 1}";
	detail_error(nul, sizeof(nul) - 1);
	static const char good_nul[] = "{\"user_id\": 1, \"item_ids\": [1], "
	    "\"total_amount\": 1}";
	detail_error(good_nul, sizeof(good_nul));
	/* The body need not be NUL-terminated: only len bytes are read. */
	static const char longer[] = "{\"user_id\": 1, \"item_ids\": [1], "
	    "\"total_amount\": 1}GARBAGE";
	test_assert(decode(longer, sizeof(longer) - 1 - 7, &e) == 0);
	detail_error(longer, sizeof(longer) - 1);

	/* Duplicate keys are refused rather than guessed at. */
	{
		const char *b = "{\"user_id\": 1, \"user_id\": 2, \"item_ids\": "
		    "[1], \"total_amount\": 1}";
		detail_error(b, strlen(b));
	}

	/* Not an object. */
	test_assert(decode("[1, 2]", 6, &e) == -1);
	nfe = cJSON_GetObjectItemCaseSensitive(e, "non_field_errors");
	test_assert_msg(cJSON_IsArray(nfe) && cJSON_GetArraySize(nfe) == 1 &&
	    count_keys(e) == 1, "%s", err.data);
	test_assert_msg(strcmp(cJSON_GetArrayItem(nfe, 0)->valuestring,
	    "Invalid data. Expected a dictionary, but got list.") == 0, "%s",
	    err.data);
	cJSON_Delete(e);
	static const char *const scalars[] = { "\"x\"", "5", "true", "null",
		"[]" };
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
		check_field_errors(scalars[i], strlen(scalars[i]), 1,
		    "non_field_errors", NULL);

	/* Deep nesting is a 400, not a crash. */
	struct strbuf b;
	strbuf_init(&b);
	for (int i = 0; i < 2000; i++)
		strbuf_puts(&b, "[");
	for (int i = 0; i < 2000; i++)
		strbuf_puts(&b, "]");
	test_assert(decode(b.data, b.len, &e) == -1);
	cJSON_Delete(e);
	strbuf_reset(&b);
	strbuf_puts(&b, "{\"user_id\": 1, \"item_ids\": [1], \"total_amount\":");
	for (int i = 0; i < 2000; i++)
		strbuf_puts(&b, "{\"a\":");
	strbuf_puts(&b, "1");
	for (int i = 0; i < 2000; i++)
		strbuf_puts(&b, "}");
	strbuf_puts(&b, "}");
	test_assert(decode(b.data, b.len, &e) == -1);
	cJSON_Delete(e);
	strbuf_finish(&b);
}

TEST(test_decode_all_wrong)
{
	cJSON *e;
	const char *body = "{\"user_id\": \"x\", \"item_ids\": [], "
	    "\"total_amount\": -1}";

	check_field_errors(body, strlen(body), 3, "user_id", M_INT);
	check_field_errors(body, strlen(body), 3, "item_ids", M_EMPTY_LIST);
	check_field_errors(body, strlen(body), 3, "total_amount", M_MIN0);
	check_field_errors("{}", 2, 3, "user_id", M_REQUIRED);
	check_field_errors("{}", 2, 3, "item_ids", M_REQUIRED);
	check_field_errors("{}", 2, 3, "total_amount", M_REQUIRED);
	/* The error buffer is reset between calls. */
	body = "{\"user_id\": 5, \"item_ids\": [1], \"total_amount\": 1}";
	test_assert(decode(body, strlen(body), &e) == 0);
	test_assert(decode("{}", 2, &e) == -1);
	test_assert(count_keys(e) == 3);
	cJSON_Delete(e);
}

/* Parse the encoder's output and check every field. */
static cJSON *
encode_parse(const struct order *ord)
{
	struct strbuf b;
	cJSON *j;

	strbuf_init(&b);
	order_encode_json(ord, &b);
	test_assert(!strbuf_failed(&b) && b.data != NULL);
	j = cJSON_Parse(b.data);
	test_assert_msg(cJSON_IsObject(j), "%s", b.data);
	test_assert_msg(count_keys(j) == 8, "%s", b.data);
	strbuf_finish(&b);
	return j;
}

static void
check_str(const cJSON *j, const char *key, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	test_assert_msg(cJSON_IsString(v) && strcmp(v->valuestring, want) == 0,
	    "%s: got %s, want \"%s\"", key, cJSON_IsString(v) ? v->valuestring
	    : "(not a string)", want);
}

TEST(test_encode)
{
	struct order ord;
	uint64_t items[] = { 101, 102, UINT64_C(9007199254740991) };
	const cJSON *v;
	cJSON *j;

	order_init(&ord);
	test_assert(order_reserve_items(&ord, 3) == 0 && ord.items_cap >= 3);
	memcpy(ord.items, items, sizeof(items));
	ord.n_items = 3;
	ord.id = 123;
	ord.user_id = 99;
	ord.total_cents = 25075;
	ord.status = ORDER_COMPLETED;
	ord.created_ms = 1700000000007;
	ord.updated_ms = 1700000003123;
	ord.completed_ms = 1700000003123;

	j = encode_parse(&ord);
	check_str(j, "order_id", "ORD123");
	v = cJSON_GetObjectItemCaseSensitive(j, "user_id");
	test_assert(cJSON_IsNumber(v) && v->valuedouble == 99);
	v = cJSON_GetObjectItemCaseSensitive(j, "item_ids");
	test_assert(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3);
	for (int i = 0; i < 3; i++)
		test_assert(cJSON_GetArrayItem(v, i)->valuedouble ==
		    (double)items[i]);
	check_str(j, "total_amount", "250.75");
	check_str(j, "status", "Completed");
	check_str(j, "created_at", "2023-11-14T22:13:20.007Z");
	check_str(j, "updated_at", "2023-11-14T22:13:23.123Z");
	check_str(j, "completed_at", "2023-11-14T22:13:23.123Z");
	cJSON_Delete(j);

	ord.status = ORDER_PENDING;
	ord.completed_ms = 0;
	ord.total_cents = 10;
	ord.n_items = 1;
	j = encode_parse(&ord);
	check_str(j, "status", "Pending");
	check_str(j, "total_amount", "0.10");
	test_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j,
	    "completed_at")));
	v = cJSON_GetObjectItemCaseSensitive(j, "item_ids");
	test_assert(cJSON_GetArraySize(v) == 1);
	cJSON_Delete(j);

	/* The encoder appends. */
	struct strbuf b;
	strbuf_init(&b);
	strbuf_puts(&b, "[");
	order_encode_json(&ord, &b);
	strbuf_puts(&b, ",");
	order_encode_json(&ord, &b);
	strbuf_puts(&b, "]");
	j = cJSON_Parse(b.data);
	test_assert_msg(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2, "%s",
	    b.data);
	cJSON_Delete(j);
	strbuf_finish(&b);
	order_finish(&ord);
	test_assert(ord.items == NULL && ord.items_cap == 0);
}

int
main(void)
{
	order_init(&o);
	strbuf_init(&err);
	RUN(test_id_parse);
	RUN(test_id_format);
	RUN(test_time_format);
	RUN(test_status);
	RUN(test_decode_ok);
	RUN(test_decode_missing_and_null);
	RUN(test_decode_user_id);
	RUN(test_decode_item_ids);
	RUN(test_decode_total_amount);
	RUN(test_decode_exact_numbers);
	RUN(test_decode_body_errors);
	RUN(test_decode_all_wrong);
	RUN(test_encode);
	order_finish(&o);
	strbuf_finish(&err);
	return 0;
}
