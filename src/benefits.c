/*
 * benefits.c — module entry point.
 *
 * _PG_init asks every subsystem to register its settings, shared memory and
 * background workers, then reserves the "benefits." settings prefix so a
 * misspelt setting is reported instead of silently ignored.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "benefits.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	WorkerInit();
	MarkGUCPrefixReserved("benefits");
}
