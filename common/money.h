/*
 * money: amounts as integer cents, never as floating point.
 *
 * The accepted form is the original's DecimalField(max_digits=10,
 * decimal_places=2, min_value=0): at most 2 decimal places, at most 8
 * digits before the point, so 0 .. 99999999.99. A JSON number arrives from
 * cJSON as a double; money_parse_double turns it into its shortest decimal
 * text (as Python's repr does) and validates that text exactly like a
 * string, so 0.1 is 10 cents and 1.005 has three decimal places.
 * No state; thread-safe.
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
/* Parse a JSON number; same rules and messages as money_parse_string. */
int money_parse_double(double v, int64_t *cents, const char **why);
/* Format cents as "250.75"; always two decimals. Returns the length. */
size_t money_format(int64_t cents, char buf[MONEY_BUFSZ]);

#endif
