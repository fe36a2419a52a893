/* decimal: exact decimal text to sign, significant digits and exponent. */
#include <stdint.h>
#include <string.h>

#include "decimal.h"
#include "test.h"

static void
check(const char *s, bool negative, const char *digits, size_t ntrailing,
    int64_t exponent)
{
	struct decimal d;
	size_t n = strlen(digits);

	memset(&d, 0x5a, sizeof(d));
	test_assert_msg(decimal_parse(s, strlen(s), &d) == 0, "\"%s\"", s);
	test_assert_msg(d.negative == negative, "\"%s\": sign", s);
	test_assert_msg(d.ndigits == n && memcmp(d.digits, digits, n) == 0,
	    "\"%s\": %zu digits \"%.*s\", want \"%s\"", s, d.ndigits,
	    (int)(d.ndigits < DECIMAL_KEEP ? d.ndigits : DECIMAL_KEEP),
	    d.digits, digits);
	test_assert_msg(d.ntrailing_zeros == ntrailing, "\"%s\": %zu trailing "
	    "zeros, want %zu", s, d.ntrailing_zeros, ntrailing);
	test_assert_msg(d.exponent == exponent, "\"%s\": exponent %lld, want "
	    "%lld", s, (long long)d.exponent, (long long)exponent);
}

TEST(test_parse)
{
	check("0", false, "", 0, 0);
	check("-0", true, "", 0, 0);
	check("0.000", false, "", 0, -3);
	check("0e5", false, "", 0, 5);
	check("250.75", false, "25075", 0, -2);
	check("2.5075e2", false, "25075", 0, -2);
	check("25075e-2", false, "25075", 0, -2);
	check("1.000e2", false, "1000", 3, -1);
	check("0.0100", false, "100", 2, -4);
	check("-1E+2", true, "1", 0, 2);
	check("+.5", false, "5", 0, -1);
	check("1.", false, "1", 0, 0);
	check("007", false, "7", 0, 0);
	check("10203", false, "10203", 0, 0);

	/* More digits than kept: counted, the first DECIMAL_KEEP stored. */
	struct decimal d;
	const char *s = "123456789012345678901234.50";

	test_assert(DECIMAL_KEEP == 20);
	test_assert(decimal_parse(s, strlen(s), &d) == 0);
	test_assert(d.ndigits == 26 && d.ntrailing_zeros == 1 &&
	    d.exponent == -2 && memcmp(d.digits, "12345678901234567890",
	    20) == 0);
}

TEST(test_exponent_saturates)
{
	struct decimal d;
	const char *big = "1e999999999999999999999999999999999999";
	const char *small = "1.5e-999999999999999999999999999999999999";

	test_assert(decimal_parse(big, strlen(big), &d) == 0);
	test_assert(d.exponent == DECIMAL_EXPONENT_MAX);
	test_assert(decimal_parse(small, strlen(small), &d) == 0);
	test_assert(d.exponent == -DECIMAL_EXPONENT_MAX - 1);
	test_assert(decimal_parse("1e999999999", 11, &d) == 0 &&
	    d.exponent == 999999999);
}

TEST(test_invalid)
{
	static const char *const bad[] = { "", "-", "+", ".", "-.", "e5", "1e",
		"1e+", "1e-", "1.2.3", "1e2.5", "1e2e3", " 1", "1 ", "--1", "+-1",
		"0x10", "NaN", "inf", "1,5", "1_000" };
	struct decimal d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		test_assert_msg(decimal_parse(bad[i], strlen(bad[i]), &d) == -1,
		    "\"%s\" accepted", bad[i]);
	/* Only len bytes are read. */
	test_assert(decimal_parse("12x", 2, &d) == 0 && d.ndigits == 2);
	test_assert(decimal_parse("1e5", 2, &d) == -1);
}

TEST(test_normalize)
{
	struct decimal d;

	test_assert(decimal_parse("1.500e2", 7, &d) == 0);
	decimal_normalize(&d);
	test_assert(d.ndigits == 2 && memcmp(d.digits, "15", 2) == 0 &&
	    d.ntrailing_zeros == 0 && d.exponent == 1);
	test_assert(decimal_parse("100.000", 7, &d) == 0);
	decimal_normalize(&d);
	test_assert(d.ndigits == 1 && d.exponent == 2);
	test_assert(decimal_parse("0.000e-9", 8, &d) == 0);
	decimal_normalize(&d);
	test_assert(d.ndigits == 0 && d.exponent == 0);
	test_assert(decimal_parse("-250.75", 7, &d) == 0);
	decimal_normalize(&d);
	test_assert(d.negative && d.ndigits == 5 && d.exponent == -2);
}

int
main(void)
{
	RUN(test_parse);
	RUN(test_exponent_saturates);
	RUN(test_invalid);
	RUN(test_normalize);
	return 0;
}
