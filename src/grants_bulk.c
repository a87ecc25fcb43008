/*
 * grants_bulk.c — grant_benefit_bulk(customer_ids uuid[], benefit_id): one benefit
 * granted by hand to many customers in one call, for backfills and
 * migrations.
 *
 * For a license benefit, the customers without a manual grant of it get their
 * keys, grants and events in three set-based statements; every other case
 * (a revoked grant to restore, any other benefit type) goes through
 * GrantApply one customer at a time, so the result is the same as calling
 * the single-customer grant_benefit for each.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"
#include "grants.h"
#include "license.h"

PG_FUNCTION_INFO_V1(grant_benefit_bulk);

static SPIPlanPtr LockCustomersPlan;
static SPIPlanPtr BenefitPlan;
static SPIPlanPtr IssueManyPlan;

/* The uuids of column 1 of every SPI result row. */
static pg_uuid_t *
ResultUuids(uint64 *n)
{
	pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * Max(SPI_processed, 1));
	bool		isnull;

	for (uint64 i = 0; i < SPI_processed; i++)
		ids[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	*n = SPI_processed;
	return ids;
}

/*
 * Lock the customers in id order (so two bulk grants cannot deadlock) and
 * split them into those without a manual grant of the benefit, returned, and
 * those with one, in *others.  Any id that is not a live customer of the
 * benefit's organization is an error naming it.
 */
static pg_uuid_t *
LockCustomers(Datum customer_ids, Datum benefit_id, Datum organization_id,
			  uint64 *nfresh, pg_uuid_t **others, uint64 *nothers)
{
	static const Oid types[] = {UUIDARRAYOID, UUIDOID, UUIDOID};
	Datum		values[] = {customer_ids, benefit_id, organization_id};
	pg_uuid_t  *fresh;
	bool		isnull;

	if (SPI_execute_plan(BenefitsPlan(&LockCustomersPlan,
									  "WITH wanted AS (SELECT DISTINCT u.id FROM pg_catalog.unnest($1::uuid[]) u(id)), "
									  "locked AS (SELECT c.id FROM benefits.customers c "
									  "  WHERE c.id IN (SELECT id FROM wanted) AND c.deleted_at IS NULL "
									  "  AND c.organization_id = $3 ORDER BY c.id FOR NO KEY UPDATE) "
									  "SELECT w.id, l.id IS NOT NULL, EXISTS (SELECT 1 FROM benefits.grants g "
									  "  WHERE g.customer_id = w.id AND g.benefit_id = $2 "
									  "  AND g.subscription_id IS NULL AND g.order_id IS NULL) "
									  "FROM wanted w LEFT JOIN locked l ON l.id = w.id ORDER BY w.id",
									  3, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock customers");

	fresh = palloc(sizeof(pg_uuid_t) * Max(SPI_processed, 1));
	*others = palloc(sizeof(pg_uuid_t) * Max(SPI_processed, 1));
	*nfresh = *nothers = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		pg_uuid_t	id = *DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull));

		if (!DatumGetBool(SPI_getbinval(row, desc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("customer_ids contains %s, which is not a customer of the benefit's organization",
							DatumGetCString(DirectFunctionCall1(uuid_out, UuidGetDatum(&id))))));
		if (DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
			(*others)[(*nothers)++] = id;
		else
			fresh[(*nfresh)++] = id;
	}
	return fresh;
}

/*
 * Issue keys and active grants for customers holding no manual grant of the
 * benefit (a key of theirs from another grant is shared, as one at a time);
 * returns the new grants' ids.
 */
static pg_uuid_t *
IssueMany(const pg_uuid_t *customers, uint64 n, Datum benefit_id, Datum organization_id,
		  Jsonb *properties, uint64 *ngrants)
{
	static const Oid types[] = {UUIDOID, UUIDOID, JSONBOID, UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *keys = palloc(sizeof(Datum) * n);
	Datum	   *displays = palloc(sizeof(Datum) * n);
	JsonbValue *prefix = getKeyJsonValueFromContainer(&properties->root, "prefix", 6, NULL);
	char	   *prefix_text = (prefix && prefix->type == jbvString) ?
		pnstrdup(prefix->val.string.val, prefix->val.string.len) : NULL;
	Datum		values[6];

	for (uint64 i = 0; i < n; i++)
	{
		char	   *key = LicenseKeyGenerate(prefix_text);

		ids[i] = UuidGetDatum(&customers[i]);
		keys[i] = CStringGetTextDatum(key);
		displays[i] = CStringGetTextDatum(LicenseKeyDisplay(key));
	}
	values[0] = organization_id;
	values[1] = benefit_id;
	values[2] = JsonbPGetDatum(properties);
	values[3] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[4] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(displays, n, TEXTOID, -1, false, TYPALIGN_INT));

	if (SPI_execute_plan(BenefitsPlan(&IssueManyPlan,
									  "WITH k AS (INSERT INTO benefits.license_keys AS k "
									  " (organization_id, customer_id, benefit_id, key, display_key, "
									  "  limit_usage, limit_activations, expires_at) "
									  " SELECT $1, u.customer_id, $2, u.key, u.display_key, "
									  LICENSE_KEY_LIMITS_FROM("$3") ", " LICENSE_KEY_EXPIRY_FROM("$3", "false") " "
									  " FROM ROWS FROM (pg_catalog.unnest($4::uuid[]), pg_catalog.unnest($5::text[]), "
									  "  pg_catalog.unnest($6::text[])) AS u(customer_id, key, display_key) "
									  LICENSE_KEY_ON_CONFLICT " RETURNING k.customer_id, k.id, k.display_key) "
									  "INSERT INTO benefits.grants (organization_id, customer_id, benefit_id, state, properties) "
									  "SELECT $1, k.customer_id, $2, 'active', "
									  " pg_catalog.jsonb_build_object('license_key_id', k.id, 'display_key', k.display_key) "
									  "FROM k ORDER BY k.customer_id RETURNING id",
									  6, types),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != n)
		elog(ERROR, "could not issue license keys");
	return ResultUuids(ngrants);
}

/*
 * grant_benefit_bulk(customer_ids uuid[], benefit_id): returns how many grants
 * were made or restored; customers already holding a live manual grant of
 * the benefit are left as they are.
 */
Datum
grant_benefit_bulk(PG_FUNCTION_ARGS)
{
	static const Oid types[] = {UUIDOID};
	Datum		benefit_id;
	bool		isnull;
	char	   *type;
	Jsonb	   *properties;
	Datum		organization_id;
	pg_uuid_t  *fresh,
			   *others,
			   *granted;
	uint64		nfresh,
				nothers,
				ngranted = 0;
	int64		changed = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("customer_ids must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("benefit_id must not be null")));
	benefit_id = PG_GETARG_DATUM(1);

	SPI_connect();
	if (SPI_execute_plan(BenefitsPlan(&BenefitPlan,
									  "SELECT organization_id, type, properties FROM benefits.benefits "
									  "WHERE id = $1 AND deleted_at IS NULL",
									  1, types),
						 &benefit_id, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not load benefit");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefit_id %s does not exist or is deleted",
						DatumGetCString(DirectFunctionCall1(uuid_out, benefit_id)))));
	organization_id = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
										false, UUID_LEN);
	type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	properties = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));

	fresh = LockCustomers(PG_GETARG_DATUM(0), benefit_id, organization_id, &nfresh, &others, &nothers);

	if (strcmp(type, "license_keys") == 0 && nfresh > 0)
	{
		granted = IssueMany(fresh, nfresh, benefit_id, organization_id, properties, &ngranted);
		if (EventsOrganizationSubscribed(*DatumGetUUIDP(organization_id), EVENT_GRANT_CREATED))
			EventsEnqueueGrants(granted, (int) ngranted, EVENT_GRANT_CREATED, NULL);
		changed += ngranted;
	}
	else
	{
		/* Every other type: the fresh customers one at a time, like the rest. */
		memcpy(others + nothers, fresh, sizeof(pg_uuid_t) * nfresh);
		nothers += nfresh;
	}

	for (uint64 i = 0; i < nothers; i++)
	{
		bool		one_changed;
		pg_uuid_t	grant_id = GrantApply(others[i], *DatumGetUUIDP(benefit_id), NULL, NULL, &one_changed);

		if (one_changed)
		{
			EventsGrantApplied(grant_id);
			changed++;
		}
	}
	SPI_finish();
	PG_RETURN_INT64(changed);
}
