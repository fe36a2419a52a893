#include "money.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "decimal.h"

#define MONEY_MAX_DIGITS 10
#define MONEY_DECIMAL_PLACES 2
#define MONEY_WHOLE_DIGITS (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)

static const char money_invalid[] = "A valid number is required.";

/*
 * Judge d as the original's DecimalField does (Python's Decimal.as_tuple()
 * digit counts): leading zeros are not digits, a zero has one digit, the
 * significand's trailing zeros are ("1.000" has three decimal places).
 * Digits are checked before the sign, in DRF's order.
 */
static int
money_judge(const struct decimal *d, int64_t *cents, const char **why)
{
	int64_t ndigits = d->ndigits == 0 ? 1 : (int64_t)d->ndigits;
	int64_t exp = d->exponent, total, whole, places, v = 0;

	if (exp >= 0) {
		total = ndigits + exp;
		whole = total;
		places = 0;
	} else if (ndigits > -exp) {
		total = ndigits;
		whole = ndigits + exp;
		places = -exp;
	} else {
		total = -exp;
		whole = 0;
		places = -exp;
	}
	if (total > MONEY_MAX_DIGITS) {
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

	/* value = significand * 10^exp, at most 10 digits and exp >= -2. */
	for (size_t i = 0; i < d->ndigits; i++)
		v = v * 10 + (d->digits[i] - '0');
	for (int64_t e = exp + MONEY_DECIMAL_PLACES; e > 0; e--)
		v *= 10;
	if (d->negative && v != 0) {
		*why = "Ensure this value is greater than or equal to 0.";
		return -1;
	}
	*cents = v;
	return 0;
}

int
money_parse_string(const char *s, int64_t *cents, const char **why)
{
	const char *end;
	struct decimal d;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (decimal_parse(s, (size_t)(end - s), &d) != 0) {
		*why = money_invalid;
		return -1;
	}
	return money_judge(&d, cents, why);
}

int
money_parse_number(const char *text, size_t len, int64_t *cents,
    const char **why)
{
	struct decimal d;

	if (decimal_parse(text, len, &d) != 0) {
		*why = money_invalid;
		return -1;
	}
	/* A number is its value: 100.000 is 100, whatever zeros it shows. */
	decimal_normalize(&d);
	return money_judge(&d, cents, why);
}

size_t
money_format(int64_t cents, char buf[MONEY_BUFSZ])
{
	uint64_t u = cents < 0 ? -(uint64_t)cents : (uint64_t)cents;
	int n = snprintf(buf, MONEY_BUFSZ, "%s%llu.%02llu", cents < 0 ? "-" : "",
	    (unsigned long long)(u / 100), (unsigned long long)(u % 100));

	return n > 0 ? (size_t)n : 0;
}
