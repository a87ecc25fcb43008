/*
 * grants_batch.c — one benefit granted to many customers in a few
 * statements.
 *
 * A statement that activates many subscriptions, and grant_benefit_bulk,
 * would otherwise write each grant with its own handful of statements.
 * Here the grants of one benefit are written together, in one set-based
 * statement per benefit (the type's rows and the grants in data-modifying
 * CTEs: license keys, meter credits, provider jobs), with the same rows and
 * properties the one-at-a-time path (GrantApply) writes.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"
#include "grants.h"

/*
 * The parameters every batch statement starts with (GRANT_BATCH_NARGS of
 * them, see GRANT_BATCH_ROWS in grants.h).
 */
void
GrantBatchArgs(const GrantBatch *batch, Oid *types, Datum *values)
{
	static const char source_codes[] = {'m', 's', 'o'};
	char		code[2] = {source_codes[batch->source], '\0'};

	types[0] = UUIDOID;
	types[1] = UUIDOID;
	types[2] = UUIDARRAYOID;
	types[3] = UUIDARRAYOID;
	types[4] = UUIDARRAYOID;
	types[5] = TEXTOID;
	values[0] = UuidGetDatum(&batch->organization_id);
	values[1] = UuidGetDatum(&batch->benefit_id);
	values[2] = BenefitsUuidArray(batch->grant_ids, batch->n);
	values[3] = BenefitsUuidArray(batch->customer_ids, batch->n);
	values[4] = BenefitsUuidArray(batch->source_ids ? batch->source_ids : batch->customer_ids, batch->n);
	values[5] = CStringGetTextDatum(code);
}

/* The grant handler of types with nothing to deliver beyond the grant itself. */
void
GrantLocal(GrantChange *change)
{
	change->new_state = "active";
}

/* GrantLocal for a batch: the grants alone, active at once, properties {}. */
void
GrantLocalMany(GrantBatch *batch)
{
	GrantLocalManyAs(batch, "active", "{}");
}

/*
 * The grants alone, in a state (active or created) with the same properties
 * (jsonb text), for types whose grants deliver nothing.
 */
void
GrantLocalManyAs(GrantBatch *batch, const char *state, const char *properties)
{
	static SPIPlanPtr plan;
	Oid			types[GRANT_BATCH_NARGS + 2];
	Datum		values[GRANT_BATCH_NARGS + 2];

	GrantBatchArgs(batch, types, values);
	types[GRANT_BATCH_NARGS] = TEXTOID;
	values[GRANT_BATCH_NARGS] = CStringGetTextDatum(state);
	types[GRANT_BATCH_NARGS + 1] = TEXTOID;
	values[GRANT_BATCH_NARGS + 1] = CStringGetTextDatum(properties);
	BenefitsExec(BenefitsPlan(&plan,
							  GRANT_BATCH_INSERT("$7", "$8::jsonb", "NULL") "FROM " GRANT_BATCH_ROWS,
							  GRANT_BATCH_NARGS + 2, types),
				 values, NULL, false, 0);
	if (SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not write grants");
}
