#include "money.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONEY_MAX_DIGITS 10
#define MONEY_DECIMAL_PLACES 2
#define MONEY_WHOLE_DIGITS (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)

static const char money_invalid[] = "A valid number is required.";

int
money_parse_string(const char *s, int64_t *cents, const char **why)
{
	char digits[MONEY_MAX_DIGITS + 1];
	size_t ndigits = 0;	/* significant digits kept in digits[] */
	size_t nseen = 0;	/* digits seen, leading zeros included */
	long frac = 0;		/* digits after the point */
	long exp = 0;
	bool negative = false, overflow = false;
	long total, whole, places;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '+' || *s == '-')
		negative = *s++ == '-';
	for (bool in_frac = false;; s++) {
		if (*s == '.' && !in_frac) {
			in_frac = true;
			continue;
		}
		if (!isdigit((unsigned char)*s))
			break;
		nseen++;
		if (in_frac)
			frac++;
		if (ndigits == 0 && *s == '0')
			continue;
		if (ndigits < MONEY_MAX_DIGITS)
			digits[ndigits] = *s;
		else
			overflow = true;
		ndigits++;
	}
	if (nseen == 0)
		goto invalid;
	if (*s == 'e' || *s == 'E') {
		bool eneg = false;
		size_t edigits = 0;

		s++;
		if (*s == '+' || *s == '-')
			eneg = *s++ == '-';
		for (; isdigit((unsigned char)*s); s++, edigits++)
			if (exp < 100000)
				exp = exp * 10 + (*s - '0');
		if (edigits == 0)
			goto invalid;
		if (eneg)
			exp = -exp;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s != '\0')
		goto invalid;

	/*
	 * Count digits as Python's Decimal.as_tuple() does, which is what the
	 * original validated: leading zeros dropped, at least one digit kept,
	 * trailing zeros kept ("1.000" has three decimal places).
	 */
	bool zero = ndigits == 0;

	if (zero)
		ndigits = 1;
	exp -= frac;
	if (exp >= 0) {
		total = (long)ndigits + exp;
		whole = total;
		places = 0;
	} else if ((long)ndigits > -exp) {
		total = (long)ndigits;
		whole = (long)ndigits + exp;
		places = -exp;
	} else {
		total = -exp;
		whole = 0;
		places = -exp;
	}
	if (total > MONEY_MAX_DIGITS || overflow) {
		*why = "Ensure that there are no more than 10 digits in total.";
		return -1;
	}
	if (places > MONEY_DECIMAL_PLACES) {
		*why = "Ensure that there are no more than 2 decimal places.";
		return -1;
	}
	if (whole > MONEY_WHOLE_DIGITS) {
		*why = "Ensure that there are no more than 8 digits before "
		    "the decimal point.";
		return -1;
	}

	/* value = digits * 10^exp, and exp >= -2 here. */
	int64_t v = 0;
	for (size_t i = 0; !zero && i < ndigits; i++)
		v = v * 10 + (digits[i] - '0');
	for (long e = exp + MONEY_DECIMAL_PLACES; e > 0; e--)
		v *= 10;
	if (negative && v != 0) {
		*why = "Ensure this value is greater than or equal to 0.";
		return -1;
	}
	*cents = v;
	return 0;

invalid:
	*why = money_invalid;
	return -1;
}

int
money_parse_double(double v, int64_t *cents, const char **why)
{
	char text[40];

	if (!isfinite(v)) {
		*why = money_invalid;
		return -1;
	}
	/* The shortest text that reads back as the same double. */
	for (int precision = 1; precision <= 17; precision++) {
		snprintf(text, sizeof(text), "%.*g", precision, v);
		if (strtod(text, NULL) == v)
			break;
	}
	return money_parse_string(text, cents, why);
}

size_t
money_format(int64_t cents, char buf[MONEY_BUFSZ])
{
	uint64_t u = cents < 0 ? -(uint64_t)cents : (uint64_t)cents;
	int n = snprintf(buf, MONEY_BUFSZ, "%s%llu.%02llu", cents < 0 ? "-" : "",
	    (unsigned long long)(u / 100), (unsigned long long)(u % 100));

	return n > 0 ? (size_t)n : 0;
}
