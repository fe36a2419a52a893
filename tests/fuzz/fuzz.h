/* fuzz.h: what every fuzz target shares. */
#ifndef OP_FUZZ_H
#define OP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: say which and abort, so libFuzzer keeps the input. */
#define check(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s: invariant failed: %s: ", __FILE__,	\
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

#endif
