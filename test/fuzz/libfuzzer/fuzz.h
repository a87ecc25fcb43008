/*
 * fuzz.h — what a libFuzzer target of test/fuzz/libfuzzer needs around the
 * extension's own code: one input at a time runs inside FuzzRun, which
 * catches ereport(ERROR) as a clean rejection and frees every palloc of the
 * input afterwards (backend_shim.c), and FuzzCheck, which ends the process
 * with a report when a property of the code under test does not hold.
 *
 * Concurrency: libFuzzer runs one input at a time in one thread.
 */
#ifndef BENEFITS_FUZZ_H
#define BENEFITS_FUZZ_H

#include "postgres.h"

#include <stdint.h>

/* What one input's body did: returned normally, or was rejected by an ERROR. */
typedef enum FuzzOutcome
{
	FUZZ_ACCEPTED,
	FUZZ_REJECTED
} FuzzOutcome;

typedef void (*FuzzBody) (const uint8_t *data, size_t size);

extern FuzzOutcome FuzzRun(FuzzBody body, const uint8_t *data, size_t size);

/* The SQLSTATE and message of the last rejection (valid until the next FuzzRun). */
extern int	FuzzLastErrcode;
extern const char *FuzzLastMessage;

/* Reports a broken property and aborts, so libFuzzer keeps the input as a crash. */
extern void FuzzFail(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

#define FuzzCheck(cond, ...) \
	do { if (!(cond)) FuzzFail(__VA_ARGS__); } while (0)

/* A NUL-terminated palloc'd copy of LEN bytes of input. */
extern char *FuzzString(const uint8_t *data, size_t len);

/*
 * Splits the input at NUL bytes into up to MAX pieces (NUL-terminated
 * palloc'd strings); returns how many there are.  Targets with several
 * arguments read them this way, so the dictionaries and seeds stay text.
 */
extern int	FuzzSplit(const uint8_t *data, size_t size, char **pieces, int max);

#endif
