/*
 * fuzz_money: libFuzzer target for money_parse_string.
 *
 * The input is a C string (bytes up to the first NUL). Invariants, each an
 * abort:
 *  - an error sets *why to a message and leaves *cents alone;
 *  - a success gives 0 .. MONEY_MAX_CENTS, and money_format of it parses
 *    back to the same cents;
 *  - a success as a string is the same success as a JSON number: strtod of
 *    the text through money_parse_double gives the same cents (a value
 *    with at most 10 significant digits survives a double exactly).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "money.h"

#define UNSET INT64_C(-777)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[MONEY_BUFSZ];
	const char *why = NULL;
	int64_t cents = UNSET, again = UNSET, viadouble = UNSET;
	char *s;
	size_t n;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	if (money_parse_string(s, &cents, &why) != 0) {
		check(why != NULL && why[0] != '\0', "no message for \"%s\"", s);
		check(cents == UNSET, "cents set to %lld on error for \"%s\"",
		    (long long)cents, s);
		goto out;
	}
	check(cents >= 0 && cents <= MONEY_MAX_CENTS, "\"%s\" -> %lld", s,
	    (long long)cents);

	n = money_format(cents, buf);
	check(n > 0 && n < MONEY_BUFSZ && strlen(buf) == n,
	    "format of %lld: length %zu", (long long)cents, n);
	why = NULL;
	check(money_parse_string(buf, &again, &why) == 0,
	    "\"%s\" (from \"%s\") does not parse: %s", buf, s, why);
	check(again == cents, "\"%s\" -> %lld -> \"%s\" -> %lld", s,
	    (long long)cents, buf, (long long)again);

	why = NULL;
	check(money_parse_double(strtod(s, NULL), &viadouble, &why) == 0,
	    "\"%s\" parses as a string but not as a number: %s", s, why);
	check(viadouble == cents, "\"%s\": string %lld, number %lld", s,
	    (long long)cents, (long long)viadouble);
out:
	free(s);
	return 0;
}
