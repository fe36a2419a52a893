/*
 * decimal: decimal number text read exactly, never through a double.
 *
 * decimal_parse reads [+-]digits[.digits][(e|E)[+-]digits] with at least
 * one digit before the exponent ("1.", ".5" and "+5" too, as Python's
 * Decimal reads them; a JSON number is a special case) into a sign, its
 * significant digits and a power of ten: value = sign * significand *
 * 10^exponent, exactly. What counts as valid is the caller's to judge
 * (money.h: amounts, order.h: integers). No white space is skipped.
 * No state; thread-safe.
 */
#ifndef OP_DECIMAL_H
#define OP_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DECIMAL_KEEP 20	/* significant digits kept in digits[] */
/*
 * A written exponent saturates at +-DECIMAL_EXPONENT_MAX (10^17). No text
 * that fits in memory has enough digits to bring a saturated exponent
 * back into any range a caller accepts, so "1e999999999999999999999" is
 * judged as what it is (too large), in time linear in its length.
 */
#define DECIMAL_EXPONENT_MAX INT64_C(100000000000000000)

struct decimal {
	bool negative;
	/*
	 * Significant digits: from the first nonzero digit to the last digit
	 * written, trailing zeros included ("0.0100" has 3); 0 when the value
	 * is zero. The first DECIMAL_KEEP of them are in digits[], '0'-'9'.
	 */
	size_t ndigits;
	size_t ntrailing_zeros;	/* how many of ndigits are trailing zeros */
	char digits[DECIMAL_KEEP];
	/* value = significand * 10^exponent ("0.0100": 100 * 10^-4). */
	int64_t exponent;
};

/* Parse text[0..len) into *d; returns -1 if it is not a decimal as above. */
int decimal_parse(const char *text, size_t len, struct decimal *d);
/*
 * Drop the significand's trailing zeros, raising the exponent as many:
 * the shortest form of the same value ("1.500e2": 15 * 10^1). A zero
 * gets exponent 0.
 */
void decimal_normalize(struct decimal *d);

#endif
