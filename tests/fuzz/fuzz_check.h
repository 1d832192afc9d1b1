/*
 * fuzz_check.h — CHECK(), the fuzz targets' assertion: a property that must
 * hold for every input; on failure it names the line and aborts, which
 * libFuzzer and the corpus replayer report as a crash.
 */
#ifndef LT_FUZZ_CHECK_H
#define LT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
