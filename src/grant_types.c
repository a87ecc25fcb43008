/*
 * grant_types.c — what granting and revoking means for each benefit type.
 *
 * GrantApply and GrantRevoke call these once the customer is locked and the
 * grant row found; a handler sets the state the grant ends in and the
 * per-grant properties, and performs the type's own side effects (issue a
 * license key, credit a meter, queue provider calls) in the same transaction.
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "engine.h"
#include "grants.h"
#include "license.h"

/* Local benefits with nothing to deliver beyond the grant itself. */
static void
GrantLocalBenefit(GrantChange *change)
{
	change->new_state = "active";
}

void
BenefitTypeGrant(GrantChange *change)
{
	const char *type = change->benefit_type;

	change->new_state = "active";
	change->new_properties = NULL;
	change->error = NULL;

	if (strcmp(type, "license_keys") == 0)
		LicenseKeyGrant(change);
	else if (strcmp(type, "meter_credits") == 0)
		MeterCreditsGrant(change);
	else if (strcmp(type, "github_repository") == 0 || strcmp(type, "discord") == 0)
		ProviderJobsGrant(change);
	else
		GrantLocalBenefit(change);
}

void
BenefitTypeRevoke(GrantChange *change)
{
	const char *type = change->benefit_type;

	change->new_properties = NULL;
	if (strcmp(type, "license_keys") == 0)
		LicenseKeyRevoke(change);
	else if (strcmp(type, "meter_credits") == 0)
		MeterCreditsRevoke(change);
	else if (strcmp(type, "github_repository") == 0 || strcmp(type, "discord") == 0)
		ProviderJobsRevoke(change);
}
