/*
 * benefit_types.c — the registry of benefit types, and the entry points that
 * dispatch to a type's operations (benefit_type.h).
 *
 * Adding a type is one file defining its BenefitType and one line in the
 * registry below (and the type's name in the CHECK constraint
 * benefits_type_check of benefits.benefits).  The grant engine (grants.c, grants_bulk.c,
 * activations.c, reconcile.c), the catalog (catalog.c, catalog_grants.c) and
 * the renewal path (subscriptions.c) reach a type only through here.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "benefits.h"
#include "benefit_type.h"

static const BenefitType *const registry[] = {
	&LicenseKeysBenefit,
	&GithubRepositoryBenefit,
	&DiscordBenefit,
	&DownloadableBenefit,
	&MeterCreditsBenefit,
	&CustomBenefit,
	&FeatureFlagBenefit,
};

const BenefitType *const *
BenefitTypeAll(int *n)
{
	*n = lengthof(registry);
	return registry;
}

const BenefitType *
BenefitTypeFind(const char *name)
{
	for (int i = 0; i < (int) lengthof(registry); i++)
		if (strcmp(registry[i]->name, name) == 0 ||
			(registry[i]->alias && strcmp(registry[i]->alias, name) == 0))
			return registry[i];
	return NULL;
}

const BenefitType *
BenefitTypeOf(const char *name)
{
	for (int i = 0; i < (int) lengthof(registry); i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	elog(ERROR, "benefit type \"%s\" is not known to this version of the library", name);
	return NULL;				/* keep the compiler quiet */
}

const BenefitType *
BenefitTypeForPlatform(const char *platform)
{
	for (int i = 0; i < (int) lengthof(registry); i++)
		if (registry[i]->account_platform && strcmp(registry[i]->account_platform, platform) == 0)
			return registry[i];
	return NULL;
}

/* "license_keys, github_repository, ...": the names, for error messages. */
static char *
TypeNames(void)
{
	StringInfoData names;

	initStringInfo(&names);
	for (int i = 0; i < (int) lengthof(registry); i++)
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", registry[i]->name);
	return names.data;
}

const BenefitType *
BenefitTypeRequire(const char *name)
{
	const BenefitType *bt = BenefitTypeFind(name);

	if (bt == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("type must be one of %s", TypeNames()),
				errdetail("\"%s\" is not a benefit type.", name));
	return bt;
}

Jsonb *
BenefitPropertiesNormalize(const char *type, Jsonb *properties,
						   pg_uuid_t organization_id, const BenefitType **stored_type)
{
	MemoryContext caller = CurrentMemoryContext;
	const BenefitType *bt = BenefitTypeRequire(type);
	PropertiesState state;
	JsonbContainer *root;
	Jsonb	   *normalized;
	Jsonb	   *result;

	if (properties != NULL && !JB_ROOT_IS_OBJECT(properties))
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties must be a JSON object"));

	BenefitsSpiConnect();

	if (properties == NULL)
		properties = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	root = &properties->root;
	state.organization_id = organization_id;
	state.hint = NULL;
	state.out = NULL;
	if (bt->stored_as)
	{
		const BenefitType *other = bt->stored_as(root, &state.hint);

		if (other)
			bt = other;
	}

	pushJsonbValue(&state.out, WJB_BEGIN_OBJECT, NULL);
	bt->normalize(&state, root);
	normalized = JsonbValueToJsonb(pushJsonbValue(&state.out, WJB_END_OBJECT, NULL));

	result = MemoryContextAlloc(caller, VARSIZE(normalized));
	memcpy(result, normalized, VARSIZE(normalized));
	SPI_finish();

	*stored_type = bt;
	return result;
}

void
BenefitTypeGrant(GrantChange *change)
{
	change->new_state = "active";
	change->new_properties = NULL;
	change->error = NULL;
	BenefitTypeOf(change->benefit_type)->grant(change);
}

void
BenefitTypeGrantMany(GrantBatch *batch)
{
	BenefitTypeOf(batch->benefit_type)->grant_many(batch);
}

void
BenefitTypeRevoke(GrantChange *change)
{
	const BenefitType *bt = BenefitTypeOf(change->benefit_type);

	change->new_properties = NULL;
	if (bt->revoke)
		bt->revoke(change);
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

/*
 * Checks a benefit's metadata (NULL: none given) for a benefit of type bt:
 * its shape, and the key the type needs.  existing is the stored metadata
 * when only a change is checked.
 */
void
BenefitMetadataCheck(const BenefitType *bt, Jsonb *metadata, Jsonb *existing)
{
	Jsonb	   *effective = metadata ? metadata : existing;
	char	   *value;

	if (metadata != NULL)
		PropCheckMetadata(metadata);
	if (bt->metadata_key == NULL)
		return;
	value = BenefitsJsonText(effective, bt->metadata_key);
	if (value == NULL || value[0] == '\0' ||
		getKeyJsonValueFromContainer(&effective->root, bt->metadata_key,
									 strlen(bt->metadata_key), NULL)->type != jbvString)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("metadata.%s is required for a %s benefit", bt->metadata_key, bt->name),
				errhint("Give it as a non-empty string, for example metadata => '{\"%s\": \"export_pdf\"}'.",
						bt->metadata_key));
}

void
BenefitTypesWebhookSql(const char *alias, char **name_sql, char **properties_sql)
{
	StringInfoData names;
	StringInfoData properties;

	initStringInfo(&names);
	initStringInfo(&properties);
	appendStringInfo(&names, "CASE %s.type", alias);
	appendStringInfo(&properties, "CASE %s.type", alias);
	for (int i = 0; i < (int) lengthof(registry); i++)
	{
		const BenefitType *bt = registry[i];

		if (strcmp(bt->webhook_name, bt->name) != 0)
			appendStringInfo(&names, " WHEN '%s' THEN '%s'", bt->name, bt->webhook_name);
		if (bt->webhook_properties_sql)
		{
			appendStringInfo(&properties, " WHEN '%s' THEN ", bt->name);
			appendStringInfo(&properties, bt->webhook_properties_sql, alias);
		}
	}
	appendStringInfo(&names, " ELSE %s.type END", alias);
	appendStringInfo(&properties, " ELSE %s.properties END", alias);
	*name_sql = names.data;
	*properties_sql = properties.data;
}
