/*
 * trigger_guard.h — checks every C trigger function of the extension makes
 * before it reads its row.
 */
#ifndef BENEFITS_TRIGGER_GUARD_H
#define BENEFITS_TRIGGER_GUARD_H

#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"

/* When a trigger function may fire: BEFORE or AFTER, ROW or STATEMENT. */
typedef enum TriggerFiring
{
	FIRES_BEFORE_ROW,
	FIRES_AFTER_ROW,
	FIRES_AFTER_STATEMENT
} TriggerFiring;

/*
 * The trigger data of a call, after checking that it is a trigger call with
 * that firing, on table benefits.<table> (any table when table is NULL).
 */
extern TriggerData *TriggerGuard(FunctionCallInfo fcinfo, const char *function,
								 TriggerFiring firing, const char *table);
/* Does the trigger fire on table benefits.<table>? */
extern bool TriggerOnTable(TriggerData *trigdata, const char *table);
/* A column of the trigger's row that must not be NULL (23502 otherwise). */
extern Datum TriggerColumn(TriggerData *trigdata, HeapTuple tuple, const char *column);
/* A column of the trigger's row that may be NULL. */
extern Datum TriggerColumnNullable(TriggerData *trigdata, HeapTuple tuple, const char *column, bool *isnull);

#endif
