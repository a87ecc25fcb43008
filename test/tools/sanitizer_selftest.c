/*
 * sanitizer_selftest.c — two deliberate bugs, built with the sanitizers and
 * loaded into a server started by the sanitizer build's pg_ctl
 * (test/tools/sanitizer.sh selftest), to prove that the preloaded runtime
 * catches them and that the scan of the server log reports and fails on them.
 * It is never part of the extension.
 *
 * Concurrency: none; each function touches only its own memory.
 */
#include "postgres.h"

#include <stdlib.h>

#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(sanitizer_selftest_heap_overflow);
PG_FUNCTION_INFO_V1(sanitizer_selftest_signed_overflow);

/* Reads one byte past a malloc'd buffer of the given size: an ASan report. */
Datum
sanitizer_selftest_heap_overflow(PG_FUNCTION_ARGS)
{
	int32		size = PG_GETARG_INT32(0);
	char	   *buffer = malloc(size);
	volatile char past_end;

	memset(buffer, 'x', size);
	past_end = buffer[size];
	free(buffer);
	PG_RETURN_INT32(past_end);
}

/* Adds one to its argument with no overflow check: a UBSan report at INT32_MAX. */
Datum
sanitizer_selftest_signed_overflow(PG_FUNCTION_ARGS)
{
	int32		value = PG_GETARG_INT32(0);

	PG_RETURN_INT32(value + 1);
}
