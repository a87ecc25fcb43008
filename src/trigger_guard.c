/*
 * trigger_guard.c — checks every C trigger function of the extension makes
 * before it reads its row.
 *
 * A BEFORE ROW trigger sees the row before NOT NULL constraints are checked,
 * so a statement setting a NOT NULL column to NULL reaches the trigger with
 * that NULL; and a trigger function attached to another table than its own
 * would read columns that are not there.  Both must end in a clean error,
 * never in a dereference of a missing value.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "benefits.h"
#include "trigger_guard.h"

static const char *const firing_names[] = {
	[FIRES_BEFORE_ROW] = "BEFORE ... FOR EACH ROW",
	[FIRES_AFTER_ROW] = "AFTER ... FOR EACH ROW",
	[FIRES_AFTER_STATEMENT] = "AFTER ... FOR EACH STATEMENT",
};

/* Does the trigger event match the firing the function was written for? */
static bool
FiringMatches(TriggerEvent event, TriggerFiring firing)
{
	switch (firing)
	{
		case FIRES_BEFORE_ROW:
			return TRIGGER_FIRED_BEFORE(event) && TRIGGER_FIRED_FOR_ROW(event);
		case FIRES_AFTER_ROW:
			return TRIGGER_FIRED_AFTER(event) && TRIGGER_FIRED_FOR_ROW(event);
		case FIRES_AFTER_STATEMENT:
			return TRIGGER_FIRED_AFTER(event) && TRIGGER_FIRED_FOR_STATEMENT(event);
	}
	return false;
}

/* Is the trigger's table benefits.<table>? */
bool
TriggerOnTable(TriggerData *trigdata, const char *table)
{
	Relation	rel = trigdata->tg_relation;

	return strcmp(RelationGetRelationName(rel), table) == 0 &&
		RelationGetNamespace(rel) == get_namespace_oid(BENEFITS_SCHEMA, true);
}

/* The trigger data, once the call is known to be the trigger it was written as. */
TriggerData *
TriggerGuard(FunctionCallInfo fcinfo, const char *function, TriggerFiring firing, const char *table)
{
	TriggerData *trigdata;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s can only be called as a trigger", function)));
	trigdata = (TriggerData *) fcinfo->context;
	if (!FiringMatches(trigdata->tg_event, firing))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must fire %s", function, firing_names[firing])));
	rel = trigdata->tg_relation;
	if (table != NULL && !TriggerOnTable(trigdata, table))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s fires only on %s.%s, not on %s.%s", function, BENEFITS_SCHEMA, table,
						get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel))));
	return trigdata;
}

/* A column by name, checked to exist (the table may have been altered). */
Datum
TriggerColumnNullable(TriggerData *trigdata, HeapTuple tuple, const char *column, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			attnum = SPI_fnumber(desc, column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, RelationGetRelationName(trigdata->tg_relation))));
	return heap_getattr(tuple, attnum, desc, isnull);
}

/* A NOT NULL column, whose constraint is checked only after BEFORE triggers. */
Datum
TriggerColumn(TriggerData *trigdata, HeapTuple tuple, const char *column)
{
	bool		isnull;
	Datum		value = TriggerColumnNullable(trigdata, tuple, column, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
						column, RelationGetRelationName(trigdata->tg_relation))));
	return value;
}
