/* money: decimal text and JSON numbers to integer cents, and back. */
#include <stdint.h>
#include <string.h>

#include "money.h"
#include "test.h"

/* The original's (DRF DecimalField, IntegerField min_value) messages. */
#define M_INVALID "A valid number is required."
#define M_TOTAL "Ensure that there are no more than 10 digits in total."
#define M_PLACES "Ensure that there are no more than 2 decimal places."
#define M_WHOLE "Ensure that there are no more than 8 digits before the " \
	"decimal point."
#define M_MIN "Ensure this value is greater than or equal to 0."

static void
ok_str(const char *s, int64_t want)
{
	int64_t cents = -12345;
	const char *why = NULL;
	int rc = money_parse_string(s, &cents, &why);

	test_assert_msg(rc == 0, "\"%s\": rc %d, why %s", s, rc,
	    why ? why : "(null)");
	test_assert_msg(cents == want, "\"%s\": got %lld cents, want %lld", s,
	    (long long)cents, (long long)want);
}

static void
err_str(const char *s, const char *want)
{
	int64_t cents = -12345;
	const char *why = NULL;
	int rc = money_parse_string(s, &cents, &why);

	test_assert_msg(rc == -1, "\"%s\": rc %d (cents %lld), want -1", s, rc,
	    (long long)cents);
	test_assert_msg(why != NULL && strcmp(why, want) == 0,
	    "\"%s\": why \"%s\", want \"%s\"", s, why ? why : "(null)", want);
}

/* A JSON number's text; only its strlen(s) bytes may be read. */
static void
ok_num(const char *s, int64_t want)
{
	int64_t cents = -12345;
	const char *why = NULL;
	int rc = money_parse_number(s, strlen(s), &cents, &why);

	test_assert_msg(rc == 0, "%s: rc %d, why %s", s, rc,
	    why ? why : "(null)");
	test_assert_msg(cents == want, "%s: got %lld cents, want %lld", s,
	    (long long)cents, (long long)want);
}

static void
err_num(const char *s, const char *want)
{
	int64_t cents = -12345;
	const char *why = NULL;
	int rc = money_parse_number(s, strlen(s), &cents, &why);

	test_assert_msg(rc == -1, "%s: rc %d (cents %lld), want -1", s, rc,
	    (long long)cents);
	test_assert_msg(why != NULL && strcmp(why, want) == 0,
	    "%s: why \"%s\", want \"%s\"", s, why ? why : "(null)", want);
	test_assert_msg(cents == -12345, "%s: cents set on error", s);
}

static void
fmt(int64_t cents, const char *want)
{
	char buf[MONEY_BUFSZ];
	size_t n;

	memset(buf, 'x', sizeof(buf));
	n = money_format(cents, buf);
	test_assert_msg(strcmp(buf, want) == 0, "%lld: got \"%s\", want \"%s\"",
	    (long long)cents, buf, want);
	test_assert_msg(n == strlen(want), "%lld: length %zu, want %zu",
	    (long long)cents, n, strlen(want));
}

TEST(test_string_valid)
{
	ok_str("250.75", 25075);
	ok_str("0", 0);
	ok_str("0.1", 10);
	ok_str("1e2", 10000);
	ok_str("1E2", 10000);
	ok_str("1e+2", 10000);
	ok_str("1e-2", 1);
	ok_str("0.1e1", 100);
	ok_str("99999999.99", 9999999999);
	ok_str("1234567890e-2", 1234567890);
	ok_str("10e6", 1000000000);
	ok_str("-0", 0);
	ok_str("-0.00", 0);
	ok_str("+5", 500);
	ok_str("1.", 100);
	ok_str(".5", 50);
	ok_str("+.5", 50);
	ok_str("1.10", 110);
	ok_str(" 12 ", 1200);
	ok_str("\t\n12.5\n", 1250);
	ok_str("00000000012.50", 1250);	/* leading zeros are not digits */
	ok_str("0.00", 0);
	ok_str("0.01", 1);
}

TEST(test_string_precision)
{
	const char *why = NULL;
	int64_t cents;

	err_str("1.005", M_PLACES);
	err_str("0.000", M_PLACES);	/* trailing zeros count, as in Decimal */
	err_str("1e-7", M_PLACES);
	err_str("0e-5", M_PLACES);
	err_str("100000000", M_WHOLE);
	err_str("1e8", M_WHOLE);
	/* 11 digits, 9 before the point: max_digits is checked first. */
	test_assert(money_parse_string("123456789.00", &cents, &why) == -1);
	test_assert_msg(strcmp(why, M_TOTAL) == 0 || strcmp(why, M_WHOLE) == 0,
	    "why \"%s\"", why);
	err_str("123456789.00", M_TOTAL);
	err_str("12345678901", M_TOTAL);
	err_str("1e999999", M_TOTAL);
	err_str("1e-999999", M_TOTAL);
	err_str("0e999999", M_TOTAL);
	err_str("1e99999999999999999999999999", M_TOTAL);
	err_str("99999999999999999999999999999999999999999", M_TOTAL);
	/* Precision errors come before the sign, as DRF validates. */
	err_str("-1.005", M_PLACES);
}

TEST(test_string_negative)
{
	err_str("-1", M_MIN);
	err_str("-0.01", M_MIN);
	err_str(" -12.50 ", M_MIN);
}

TEST(test_string_invalid)
{
	static const char *const bad[] = { "abc", "", " ", "1e", "1e+", "NaN",
		"nan", "inf", "-inf", "Infinity", ".", "-", "+", "e5", "1e2.5",
		"--1", "1 2", "1,5", "0x10", "1.2.3", "12abc", "1e2 x", "$5",
		"- 1" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		err_str(bad[i], M_INVALID);
}

TEST(test_number)
{
	ok_num("250.75", 25075);
	ok_num("0.1", 10);
	ok_num("1e2", 10000);
	ok_num("0", 0);
	ok_num("-0", 0);
	ok_num("-0.0", 0);
	ok_num("0.01", 1);
	ok_num("1.1", 110);
	ok_num("99999999.99", 9999999999);
	ok_num("12345678.9", 1234567890);
	ok_num("12345678", 1234567800);
	err_num("1.005", M_PLACES);
	err_num("1e-7", M_PLACES);
	err_num("100000000", M_WHOLE);
	err_num("123456789", M_WHOLE);
	err_num("0.30000000000000004", M_TOTAL);
	err_num("1e300", M_TOTAL);
	err_num("5e-324", M_TOTAL);
	err_num("-1", M_MIN);
	err_num("-1e-7", M_PLACES);	/* digits before the sign */
	static const char *const bad[] = { "", "-", "NaN", "Infinity", "1e",
		"1e+", "e5", "0x10", " 1", "1 ", "1.2.3" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		err_num(bad[i], M_INVALID);
}

TEST(test_number_exact)
{
	/* Exponents, by the exact value they write. */
	ok_num("2.5075e2", 25075);
	ok_num("25075e-2", 25075);
	ok_num("25075E-2", 25075);
	ok_num("0.025075e4", 25075);
	ok_num("1.000e2", 10000);
	ok_num("1E+2", 10000);
	ok_num("9999999999e-2", 9999999999);
	ok_num("1e7", 1000000000);
	ok_num("0e999999999", 0);
	ok_num("0e-999999999", 0);
	ok_num("0.000", 0);
	/* A number is its value: trailing zeros are not decimal places. */
	ok_num("100.00", 10000);
	ok_num("100.000", 10000);
	ok_num("0.100000000000000000000000000", 10);
	ok_num("1000000e-6", 100);
	ok_num("12345678.90000000000000000000000000000000000000000000000000"
	    "00000000000000000000", 1234567890);

	/* Values that only round to a valid amount are refused. */
	err_num("250.750000000000001", M_TOTAL);
	err_num("250.75000000000000000000000001", M_TOTAL);
	err_num("1e-400", M_TOTAL);
	err_num("1e-3", M_PLACES);
	err_num("100.001", M_PLACES);
	err_num("99999999.994", M_TOTAL);
	err_num("99999999.999999999999", M_TOTAL);
	err_num("1e8", M_WHOLE);
	err_num("2.50751e2", M_PLACES);

	/* Huge exponents end at once, with the digits message. */
	err_num("1e999999999", M_TOTAL);
	err_num("1e-999999999", M_TOTAL);
	err_num("1e99999999999999999999999999999999999999", M_TOTAL);
	err_num("-1e99999999999999999999999999999999999999", M_TOTAL);
	err_num("1e-99999999999999999999999999999999999999", M_TOTAL);

	/* Only len bytes are read. */
	const char *why = NULL;
	int64_t cents = 0;
	test_assert(money_parse_number("12.345", 5, &cents, &why) == 0 &&
	    cents == 1234);
}

TEST(test_string_and_number)
{
	/* The string form counts trailing zeros as Decimal does; a number
	 * does not. Otherwise the two agree. */
	err_str("100.000", M_PLACES);
	ok_num("100.000", 10000);
	err_str("250.750000000000001", M_TOTAL);
	err_str("1e-400", M_TOTAL);
	ok_str("2.5075e2", 25075);
	ok_str("25075e-2", 25075);
	ok_str("1.000e2", 10000);
	err_str("1.00000e2", M_PLACES);
	ok_num("1.00000e2", 10000);
}

TEST(test_format)
{
	fmt(0, "0.00");
	fmt(5, "0.05");
	fmt(10, "0.10");
	fmt(100, "1.00");
	fmt(25075, "250.75");
	fmt(9999999999, "99999999.99");
	fmt(-5, "-0.05");
	fmt(-12345, "-123.45");
	fmt(INT64_MIN, "-92233720368547758.08");
	fmt(INT64_MAX, "92233720368547758.07");
}

TEST(test_round_trip)
{
	/* Every parsed amount formats back to a string that parses the same. */
	static const char *const in[] = { "0.1", "250.75", "1e2", "99999999.99",
		".5", "7" };
	static const char *const out[] = { "0.10", "250.75", "100.00",
		"99999999.99", "0.50", "7.00" };

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char buf[MONEY_BUFSZ];
		const char *why;
		int64_t a, b;

		test_assert(money_parse_string(in[i], &a, &why) == 0);
		money_format(a, buf);
		test_assert_msg(strcmp(buf, out[i]) == 0, "%s -> %s", in[i], buf);
		test_assert(money_parse_string(buf, &b, &why) == 0 && a == b);
	}
}

int
main(void)
{
	RUN(test_string_valid);
	RUN(test_string_precision);
	RUN(test_string_negative);
	RUN(test_string_invalid);
	RUN(test_number);
	RUN(test_number_exact);
	RUN(test_string_and_number);
	RUN(test_format);
	RUN(test_round_trip);
	return 0;
}
