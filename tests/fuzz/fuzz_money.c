/*
 * fuzz_money: libFuzzer target for money_parse_string and
 * money_parse_number.
 *
 * The input is a C string (bytes up to the first NUL). Invariants, each an
 * abort:
 *  - an error sets *why to a message and leaves *cents alone;
 *  - a success gives 0 .. MONEY_MAX_CENTS, and money_format of it parses
 *    back to the same cents;
 *  - a success as a string is the same success as a number: the text
 *    without its surrounding white space through money_parse_number
 *    gives the same cents (a number is judged by its value, so it is
 *    refused only where the string is too);
 *  - money_parse_number reads only the len bytes it is given, and on
 *    success gives 0 .. MONEY_MAX_CENTS.
 */
#include <ctype.h>
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
	int64_t cents = UNSET, again = UNSET, number = UNSET;
	char *s, *t;
	size_t n, tlen;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	/* As a number: exactly the input's bytes, in a block of that size. */
	t = malloc(size == 0 ? 1 : size);
	if (t == NULL) {
		free(s);
		return 0;
	}
	memcpy(t, data, size);
	why = NULL;
	if (money_parse_number(t, size, &number, &why) == 0)
		check(number >= 0 && number <= MONEY_MAX_CENTS,
		    "number \"%s\" -> %lld", s, (long long)number);
	else
		check(why != NULL && why[0] != '\0' && number == UNSET,
		    "number \"%s\": error without a message or with cents", s);
	free(t);

	why = NULL;
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

	t = s;
	while (isspace((unsigned char)*t))
		t++;
	tlen = strlen(t);
	while (tlen > 0 && isspace((unsigned char)t[tlen - 1]))
		tlen--;
	why = NULL;
	number = UNSET;
	check(money_parse_number(t, tlen, &number, &why) == 0,
	    "\"%s\" parses as a string but not as a number: %s", s, why);
	check(number == cents, "\"%s\": string %lld, number %lld", s,
	    (long long)cents, (long long)number);
out:
	free(s);
	return 0;
}
