/*
 * jsoncheck: a strict check of JSON text (RFC 8259) before cJSON sees it.
 *
 * cJSON 1.7.15 recurses once per nesting level (a deep body overflows a
 * civetweb thread's stack well before cJSON's own limit of 1000), accepts
 * numbers such as "00.5" and "1.", and does not check UTF-8. This check
 * walks the text without recursion and refuses all of that, so what
 * reaches cJSON is well-formed, valid UTF-8 and at most max_depth deep.
 * cJSON also keeps only a double of each number; jsoncheck_scan hands the
 * caller each number's text, so it can be read exactly.
 * No state; thread-safe.
 */
#ifndef OP_JSONCHECK_H
#define OP_JSONCHECK_H

#include <stddef.h>

#define JSONCHECK_MAX_DEPTH 32

/*
 * Returns 0 if text[0..len) is one JSON value (surrounded by optional
 * white space) nested at most max_depth (<= JSONCHECK_MAX_DEPTH) deep.
 * Otherwise returns -1, sets *why to what is wrong and *offset to the
 * byte where it was found.
 */
int jsoncheck_validate(const char *text, size_t len, unsigned max_depth,
    const char **why, size_t *offset);

/*
 * Called for each number, in the order of the text, as the check meets
 * it: the number is text[offset .. offset + len). A nonzero return stops
 * the check.
 */
typedef int jsoncheck_number_fn(void *arg, size_t offset, size_t len);

/*
 * jsoncheck_validate that also calls on_number(arg, ...) for each number.
 * Returns 0 or -1 as jsoncheck_validate does, or the first nonzero value
 * on_number returned, which should not be -1 (then *why and *offset are
 * not set).
 */
int jsoncheck_scan(const char *text, size_t len, unsigned max_depth,
    jsoncheck_number_fn *on_number, void *arg, const char **why,
    size_t *offset);

#endif
