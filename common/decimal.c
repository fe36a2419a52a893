#include "decimal.h"

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

int
decimal_parse(const char *text, size_t len, struct decimal *d)
{
	const char *p = text, *end = text + len;
	size_t nseen = 0;	/* digits of the significand, zeros included */
	size_t nfrac = 0;	/* of those, after the point */
	int64_t e = 0;
	bool point = false;

	*d = (struct decimal){ .negative = false };
	if (p < end && (*p == '+' || *p == '-'))
		d->negative = *p++ == '-';
	for (; p < end; p++) {
		if (*p == '.' && !point) {
			point = true;
			continue;
		}
		if (!is_digit(*p))
			break;
		nseen++;
		if (point)
			nfrac++;
		if (d->ndigits == 0 && *p == '0')
			continue;	/* a leading zero */
		if (d->ndigits < DECIMAL_KEEP)
			d->digits[d->ndigits] = *p;
		d->ndigits++;
		d->ntrailing_zeros = *p == '0' ? d->ntrailing_zeros + 1 : 0;
	}
	if (nseen == 0)
		return -1;
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool negative = false;
		size_t nexp = 0;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			negative = *p++ == '-';
		for (; p < end && is_digit(*p); p++, nexp++)
			if (e < DECIMAL_EXPONENT_MAX)
				e = e * 10 + (*p - '0');
		if (nexp == 0)
			return -1;
		if (e > DECIMAL_EXPONENT_MAX)
			e = DECIMAL_EXPONENT_MAX;
		if (negative)
			e = -e;
	}
	if (p != end)
		return -1;
	/* nfrac < len, far below 2^62: no overflow. */
	d->exponent = e - (int64_t)nfrac;
	return 0;
}

void
decimal_normalize(struct decimal *d)
{
	if (d->ndigits == 0) {
		d->exponent = 0;
		return;
	}
	d->ndigits -= d->ntrailing_zeros;
	d->exponent += (int64_t)d->ntrailing_zeros;
	d->ntrailing_zeros = 0;
}
