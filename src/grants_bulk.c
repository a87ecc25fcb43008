/*
 * grants_bulk.c — grant_benefit_bulk(customer_ids uuid[], benefit_id): one benefit
 * granted by hand to many customers in one call, for backfills and
 * migrations.
 *
 * The customers without a manual grant of the benefit get their grants (and
 * keys or credits) set-based (grants_batch.c) and their events in one
 * statement; a customer with a grant to restore goes through GrantApply, so
 * the result is the same as calling the single-customer grant_benefit for
 * each.
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
#include "benefit_type.h"
#include "engine.h"
#include "grants.h"

PG_FUNCTION_INFO_V1(grant_benefit_bulk);

static SPIPlanPtr ClassifyCustomersPlan;
static SPIPlanPtr ClassifyCustomersPlan_0_1;	/* under 0.1.0's schema, which keeps no grant */
static SPIPlanPtr BenefitPlan;

/*
 * Lock the customers, then, in a statement that sees what the lock holders
 * committed, split them into those without a manual grant of the benefit,
 * returned, and those with one, in *others.  Any id that is not a live customer of the
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

	GrantLockCustomers(customer_ids);
#define CLASSIFY_SQL(kept) \
	"WITH wanted AS (SELECT DISTINCT u.id FROM pg_catalog.unnest($1::uuid[]) u(id)) " \
	"SELECT w.id, c.id IS NOT NULL, EXISTS (SELECT 1 FROM benefits.grants " \
	"  WHERE customer_id = w.id AND benefit_id = $2 " \
	"  AND subscription_id IS NULL AND order_id IS NULL " kept ") " \
	"FROM wanted w LEFT JOIN benefits.customers c ON c.id = w.id " \
	" AND c.deleted_at IS NULL AND c.organization_id = $3 ORDER BY w.id"
	if (SPI_execute_plan(BenefitsGrantsKeepHistory()
						 ? BenefitsPlan(&ClassifyCustomersPlan, CLASSIFY_SQL("AND " GRANT_NOT_KEPT_SQL), 3, types)
						 : BenefitsPlan(&ClassifyCustomersPlan_0_1, CLASSIFY_SQL(""), 3, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read customers");

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
 * A NULL element would reach the classification as a NULL customer id: it is
 * refused by position (in the array's own bounds), before anything is locked
 * or written.
 */
static void
RefuseNullElements(ArrayType *ids)
{
	Datum	   *elements;
	bool	   *nulls;
	int			n;

	if (!array_contains_nulls(ids))
		return;
	if (ARR_NDIM(ids) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_ids must not contain nulls")));
	deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elements, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("customer_ids[%d] must not be null", ARR_LBOUND(ids)[0] + i)));
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
			   *others;
	uint64		nfresh,
				nothers;
	int64		changed = 0;

	BenefitsRequireArgument(fcinfo, 0, "customer_ids", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 1, "benefit_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	RefuseNullElements(PG_GETARG_ARRAYTYPE_P(0));
	benefit_id = PG_GETARG_DATUM(1);

	BenefitsSpiConnect();
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

	if (nfresh > 0)
	{
		GrantBatch	batch;

		batch.organization_id = *DatumGetUUIDP(organization_id);
		batch.benefit_id = *DatumGetUUIDP(benefit_id);
		batch.benefit_type = type;
		batch.benefit_properties = properties;
		batch.source = GRANT_SOURCE_MANUAL;
		batch.n = (int) nfresh;
		batch.customer_ids = fresh;
		batch.source_ids = NULL;
		batch.grant_ids = palloc(sizeof(pg_uuid_t) * nfresh);
		GrantBatchFresh(&batch);
		if (EventsOrganizationSubscribed(batch.organization_id, EVENT_GRANT_CREATED))
			EventsEnqueueGrants(batch.grant_ids, batch.n, EVENT_GRANT_CREATED, NULL);
		changed += nfresh;
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
