/*
 * money: amounts as integer cents, never as floating point.
 *
 * The accepted form is the original's DecimalField(max_digits=10,
 * decimal_places=2, min_value=0): at most 2 decimal places, at most 8
 * digits before the point, so 0 .. 99999999.99. Both forms are read
 * exactly from their text (decimal.h), never through a double, so 0.1 is
 * 10 cents, 1.005 has three decimal places and 250.750000000000001 has 18
 * digits. A string is counted as Python's Decimal counts it, trailing
 * zeros included ("1.000": three places); a JSON number by its value
 * (100.000 is 100, 2.5075e2 is 250.75). No state; thread-safe.
 */
#ifndef OP_MONEY_H
#define OP_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MAX_CENTS INT64_C(9999999999)
/* Room for "-99999999.99" and the NUL, with margin. */
#define MONEY_BUFSZ 24

/*
 * Parse a decimal string ("250.75", " 1e2 ", "-0") into *cents. On error
 * returns -1 and points *why at the user-facing message.
 */
int money_parse_string(const char *s, int64_t *cents, const char **why);
/*
 * Parse a JSON number's text, text[0..len) (no white space), by its exact
 * value; same limits and messages as money_parse_string.
 */
int money_parse_number(const char *text, size_t len, int64_t *cents,
    const char **why);
/* Format cents as "250.75"; always two decimals. Returns the length. */
size_t money_format(int64_t cents, char buf[MONEY_BUFSZ]);

#endif
