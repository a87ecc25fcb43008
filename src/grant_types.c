/*
 * grant_types.c — what granting and revoking means for each benefit type.
 *
 * GrantApply and GrantRevoke call these once the customer is locked and the
 * grant row found; a handler sets the state the grant ends in and the
 * per-grant properties, and performs the type's own side effects (issue a
 * license key, credit a meter, queue provider calls) in the same transaction.
 * Each type also has a batch handler (grants_batch.c) that writes the same
 * rows for many customers in one statement.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "engine.h"
#include "grants.h"
#include "license.h"

/* Local benefits with nothing to deliver beyond the grant itself. */
static void
GrantLocalBenefit(GrantChange *change)
{
	change->new_state = "active";
}

/* GrantLocalBenefit for a batch: the grants alone, active at once. */
static void
GrantLocalBenefitMany(GrantBatch *batch)
{
	static SPIPlanPtr plan;
	Oid			types[GRANT_BATCH_NARGS];
	Datum		values[GRANT_BATCH_NARGS];

	GrantBatchArgs(batch, types, values);
	BenefitsExec(BenefitsPlan(&plan,
							GRANT_BATCH_INSERT("'active'", "'{}'", "NULL") "FROM " GRANT_BATCH_ROWS,
							GRANT_BATCH_NARGS, types),
			   values, NULL, false, 0);
	if (SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not write grants");
}

/* The handlers of one benefit type; revoke is NULL when revoking does nothing. */
typedef struct BenefitTypeHandlers
{
	const char *type;
	void		(*grant) (GrantChange *change);
	void		(*grant_many) (GrantBatch *batch);
	void		(*revoke) (GrantChange *change);
} BenefitTypeHandlers;

static const BenefitTypeHandlers Handlers[] = {
	{"license_keys", LicenseKeyGrant, LicenseKeyGrantMany, LicenseKeyRevoke},
	{"meter_credits", MeterCreditsGrant, MeterCreditsGrantMany, MeterCreditsRevoke},
	{"github_repository", ProviderJobsGrant, ProviderJobsGrantMany, ProviderJobsRevoke},
	{"discord", ProviderJobsGrant, ProviderJobsGrantMany, ProviderJobsRevoke},
};

/* Custom notes, downloadables and any other local type. */
static const BenefitTypeHandlers LocalHandlers = {NULL, GrantLocalBenefit, GrantLocalBenefitMany, NULL};

static const BenefitTypeHandlers *
HandlersOf(const char *type)
{
	for (int i = 0; i < (int) lengthof(Handlers); i++)
		if (strcmp(Handlers[i].type, type) == 0)
			return &Handlers[i];
	return &LocalHandlers;
}

void
BenefitTypeGrant(GrantChange *change)
{
	change->new_state = "active";
	change->new_properties = NULL;
	change->error = NULL;
	HandlersOf(change->benefit_type)->grant(change);
}

void
BenefitTypeGrantMany(GrantBatch *batch)
{
	HandlersOf(batch->benefit_type)->grant_many(batch);
}

void
BenefitTypeRevoke(GrantChange *change)
{
	const BenefitTypeHandlers *handlers = HandlersOf(change->benefit_type);

	change->new_properties = NULL;
	if (handlers->revoke)
		handlers->revoke(change);
}

/*
 * Grants the batch's benefit to each of its customers; fills grant_ids.
 * The caller writes the events.
 */
void
GrantBatchFresh(GrantBatch *batch)
{
	if (batch->n == 0)
		return;
	for (int i = 0; i < batch->n; i++)
		batch->grant_ids[i] = BenefitsRandomUuid();
	BenefitTypeGrantMany(batch);
}
