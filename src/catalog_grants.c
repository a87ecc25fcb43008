/*
 * catalog_grants.c — catalog changes carried to live grants.
 *
 * create_benefit, update_benefit, delete_benefit and update_product_benefits
 * (catalog.c) call these once the catalog is written, in the same
 * transaction:
 *
 *   - a new benefit reports benefit.created;
 *   - an edited benefit reports benefit.updated and brings its live grants
 *     in line: license keys get the new usage and activation limits, meter
 *     balances the new low-balance threshold (new units apply from the next
 *     renewal), GitHub
 *     and Discord grants get jobs for the repositories, permissions and roles
 *     that changed, and every live grant records its previous properties and
 *     reports benefit_grant.updated with them;
 *   - a deleted benefit's live grants are revoked;
 *   - a product's new benefit list is applied to every current holder, as a
 *     product change would be (subscriptions.c).
 *
 * update_benefit holds the benefit row FOR UPDATE, which keeps new grants of
 * the benefit out until it commits; the live grants are locked row by row,
 * so a concurrent revoke either comes first (and the grant is skipped) or
 * waits.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"

/* The benefit's id from the benefits.benefits row a catalog function returns. */
pg_uuid_t
EngineBenefitIdOfRow(Datum row)
{
	bool		isnull;

	return *DatumGetUUIDP(GetAttributeByName(DatumGetHeapTupleHeader(row), "id", &isnull));
}

/* create_benefit: benefit.created. */
void
EngineBenefitCreated(pg_uuid_t benefit_id)
{
	EventsEnqueueBenefit(benefit_id, EVENT_BENEFIT_CREATED);
}

/*
 * update_benefit: properties is the new normalized value, or NULL when only
 * the description changed (then the grants are untouched).
 */
void
EngineBenefitUpdated(pg_uuid_t benefit_id, const char *benefit_type, Jsonb *properties)
{
	static SPIPlanPtr live_plan;
	static SPIPlanPtr update_plan;
	Oid			types[1] = {UUIDOID};
	Oid			update_types[3] = {UUIDOID, JSONBOID, JSONBOID};
	Datum		values[1] = {UuidGetDatum(&benefit_id)};
	const BenefitType *bt;
	int			n;
	pg_uuid_t  *grant_ids,
			   *org_ids,
			   *customer_ids;
	Jsonb	  **previous;

	if (properties == NULL)
	{
		EventsEnqueueBenefit(benefit_id, EVENT_BENEFIT_UPDATED);
		return;
	}
	bt = BenefitTypeOf(benefit_type);
	if (bt->benefit_updated)
		bt->benefit_updated(benefit_id, properties);

	BenefitsExec(BenefitsPlan(&live_plan,
							"SELECT id, organization_id, customer_id, properties FROM benefits.grants"
							" WHERE benefit_id = $1 AND state <> 'revoked'"
							" ORDER BY customer_id, created_at, id FOR UPDATE",
							1, types),
			   values, NULL, false, 0);
	n = (int) SPI_processed;
	grant_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	org_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	customer_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	previous = palloc(sizeof(Jsonb *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		grant_ids[i] = *DatumGetUUIDP(SPI_getbinval(t, d, 1, &isnull));
		org_ids[i] = *DatumGetUUIDP(SPI_getbinval(t, d, 2, &isnull));
		customer_ids[i] = *DatumGetUUIDP(SPI_getbinval(t, d, 3, &isnull));
		previous[i] = DatumGetJsonbPCopy(SPI_getbinval(t, d, 4, &isnull));
	}

	for (int i = 0; i < n; i++)
	{
		Jsonb	   *props = previous[i];
		Datum		uvalues[3];

		if (bt->grant_updated)
		{
			/* One customer's grants share the access: its jobs are written once. */
			bool		first = i == 0 || memcmp(&customer_ids[i], &customer_ids[i - 1], sizeof(pg_uuid_t)) != 0;

			props = bt->grant_updated(grant_ids[i], org_ids[i], customer_ids[i],
									  properties, previous[i], first);
		}
		uvalues[0] = UuidGetDatum(&grant_ids[i]);
		uvalues[1] = JsonbPGetDatum(props);
		uvalues[2] = JsonbPGetDatum(previous[i]);
		BenefitsExec(BenefitsPlan(&update_plan,
								"UPDATE benefits.grants SET properties = $2, previous_properties = $3"
								" WHERE id = $1",
								3, update_types),
				   uvalues, NULL, false, 0);
		EventsEnqueueGrant(grant_ids[i], EVENT_GRANT_UPDATED, previous[i]);
	}
	EventsEnqueueBenefit(benefit_id, EVENT_BENEFIT_UPDATED);
}

/* delete_benefit: every live grant of the benefit is revoked. */
void
EngineBenefitDeleted(pg_uuid_t benefit_id)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&benefit_id)};
	int			n;
	pg_uuid_t  *grant_ids;

	BenefitsExec(BenefitsPlan(&plan,
							"SELECT id FROM benefits.grants WHERE benefit_id = $1 AND state <> 'revoked'"
							" ORDER BY customer_id, created_at, id",
							1, types),
			   values, NULL, false, 0);
	n = (int) SPI_processed;
	grant_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		grant_ids[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (int i = 0; i < n; i++)
		GrantRevokeReported(grant_ids[i]);
}
