/*
 * reconcile.c — brings the grants of one subscription or order in line with
 * what its status decides (subscriptions.c): with ACCESS_GRANT the customer
 * holds exactly the benefits the product attaches, granted in attachment
 * order; with ACCESS_REVOKE none.  Benefits shared with another purchase
 * are left to the other grant; product changes grant only what is added and
 * revoke only what is dropped.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"

/* A benefit the product attaches, with what GrantApplyLoaded needs. */
typedef struct WantedBenefit
{
	pg_uuid_t	benefit_id;
	char	   *type;
	Jsonb	   *properties;
	bool		has_grant;		/* the source has a grant of it (any state) */
	pg_uuid_t	grant_id;
	char	   *grant_state;
	Jsonb	   *grant_properties;
} WantedBenefit;

/* A nullable jsonb column of an SPI result row, copied out. */
static Jsonb *
JsonbFromResult(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

/* What a source holds and what its product attaches (ReadReconciliation). */
typedef struct Reconciliation
{
	int			nlive;
	pg_uuid_t  *live_grant;
	pg_uuid_t  *live_benefit;
	bool	   *live_kept;		/* same customer, benefit still attached */
	int			nwanted;
	WantedBenefit *wanted;
	bool		to_revoke;		/* some live grant is not kept */
	bool		to_grant;		/* some wanted benefit has no live grant */
} Reconciliation;

/*
 * Reads, in one statement, the live grants of a subscription (or order) and,
 * when the decision is to grant, the product's benefits with the source's
 * grant of each, and works out what is to revoke and to grant.
 */
static void
ReadReconciliation(bool for_subscription, pg_uuid_t source_id, pg_uuid_t customer_id,
				   pg_uuid_t product_id, AccessDecision decision, Reconciliation *r)
{
#define RECONCILE_SQL(column, other) \
	"SELECT false AS wanted, g.id, g.benefit_id, g.customer_id, 0 AS position, g.created_at," \
	"       NULL::text, NULL::jsonb, NULL::text, NULL::jsonb" \
	"  FROM benefits.grants g WHERE g." column " = $1 AND g.state <> 'revoked'" \
	" UNION ALL" \
	" SELECT true, g.id, pb.benefit_id, NULL, pb.position, NULL," \
	"        b.type, b.properties, g.state, g.properties" \
	"  FROM benefits.product_benefits pb JOIN benefits.benefits b ON b.id = pb.benefit_id" \
	"  LEFT JOIN benefits.grants g ON g.customer_id = $4 AND g.benefit_id = pb.benefit_id" \
	"        AND g." column " = $1 AND g." other " IS NULL" \
	" WHERE $3 AND pb.product_id = $2 AND b.deleted_at IS NULL" \
	" ORDER BY 1, 5, 6, 3, 2"
	/* RECONCILE_SQL's columns */
	enum
	{
		R_WANTED = 1, R_GRANT_ID, R_BENEFIT_ID, R_CUSTOMER_ID, R_POSITION, R_CREATED_AT,
		R_TYPE, R_PROPERTIES, R_GRANT_STATE, R_GRANT_PROPERTIES
	};
	static SPIPlanPtr by_subscription;
	static SPIPlanPtr by_order;
	Oid			types[4] = {UUIDOID, UUIDOID, BOOLOID, UUIDOID};
	Datum		args[4];
	int			nrows;
	pg_uuid_t  *live_customer;

	args[0] = UuidGetDatum(&source_id);
	args[1] = UuidGetDatum(&product_id);
	args[2] = BoolGetDatum(decision == ACCESS_GRANT);
	args[3] = UuidGetDatum(&customer_id);
	/*
	 * The generic plan: the plan cache would otherwise re-plan on every call,
	 * a custom plan that prunes the wanted branch ($3 false) always looking
	 * cheaper than the generic one.
	 */
	BenefitsExec(for_subscription
			   ? BenefitsGenericPlan(&by_subscription, RECONCILE_SQL("subscription_id", "order_id"), 4, types)
			   : BenefitsGenericPlan(&by_order, RECONCILE_SQL("order_id", "subscription_id"), 4, types),
			   args, NULL, false, 0);
	nrows = (int) SPI_processed;
	memset(r, 0, sizeof(Reconciliation));
	r->live_grant = palloc(sizeof(pg_uuid_t) * (nrows + 1));
	r->live_benefit = palloc(sizeof(pg_uuid_t) * (nrows + 1));
	r->live_kept = palloc0(sizeof(bool) * (nrows + 1));
	r->wanted = palloc0(sizeof(WantedBenefit) * (nrows + 1));
	live_customer = palloc(sizeof(pg_uuid_t) * (nrows + 1));
	for (int i = 0; i < nrows; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(t, d, R_WANTED, &isnull)))
		{
			WantedBenefit *w = &r->wanted[r->nwanted++];

			w->benefit_id = BenefitsResultUuid(i, R_BENEFIT_ID);
			w->type = SPI_getvalue(t, d, R_TYPE);
			w->properties = JsonbFromResult(i, R_PROPERTIES);
			SPI_getbinval(t, d, R_GRANT_ID, &isnull);
			w->has_grant = !isnull;
			if (w->has_grant)
			{
				w->grant_id = BenefitsResultUuid(i, R_GRANT_ID);
				w->grant_state = SPI_getvalue(t, d, R_GRANT_STATE);
				w->grant_properties = JsonbFromResult(i, R_GRANT_PROPERTIES);
			}
			if (!w->has_grant || strcmp(w->grant_state, "revoked") == 0)
				r->to_grant = true;
		}
		else
		{
			r->live_grant[r->nlive] = BenefitsResultUuid(i, R_GRANT_ID);
			r->live_benefit[r->nlive] = BenefitsResultUuid(i, R_BENEFIT_ID);
			live_customer[r->nlive] = BenefitsResultUuid(i, R_CUSTOMER_ID);
			r->nlive++;
		}
	}
	for (int i = 0; i < r->nlive; i++)
	{
		for (int j = 0; j < r->nwanted; j++)
			if (memcmp(&r->live_benefit[i], &r->wanted[j].benefit_id, sizeof(pg_uuid_t)) == 0 &&
				memcmp(&live_customer[i], &customer_id, sizeof(pg_uuid_t)) == 0)
				r->live_kept[i] = true;
		if (!r->live_kept[i])
			r->to_revoke = true;
	}
#undef RECONCILE_SQL
}

/*
 * Brings the grants of one subscription (or one order) in line with the
 * decision: with ACCESS_GRANT the customer holds exactly the product's
 * benefits, with ACCESS_REVOKE none.  A first read decides whether there is
 * anything to do, without locking: a renewal that changes nothing takes no
 * lock.  To grant, the customer is locked and the read repeated, so every
 * grant is written from what the lock holder sees, without further reads.
 * Revokes lock the customers themselves (GrantRevokeMany).  The events of the
 * revokes and of the grants are written in one statement each, or, from the
 * row triggers, queued for the statement's end (events.c).
 */
void
EngineReconcileGrants(bool for_subscription, pg_uuid_t source_id, pg_uuid_t customer_id,
					  pg_uuid_t product_id, AccessDecision decision, bool defer_events)
{
	Reconciliation r;
	pg_uuid_t	organization_id = {0};
	pg_uuid_t  *done;
	int			nrevoked = 0,
				napplied = 0;

	if (decision == ACCESS_KEEP)
		return;
	ReadReconciliation(for_subscription, source_id, customer_id, product_id, decision, &r);
	if (!r.to_grant && !r.to_revoke)
		return;
	if (r.to_grant)
	{
		organization_id = GrantLockCustomer(customer_id);
		ReadReconciliation(for_subscription, source_id, customer_id, product_id, decision, &r);
	}
	done = palloc(sizeof(pg_uuid_t) * (r.nlive + r.nwanted + 1));

	/* Dropped benefits first, then the added ones in attachment order. */
	for (int i = 0; i < r.nlive; i++)
		if (!r.live_kept[i])
			done[nrevoked++] = r.live_grant[i];
	nrevoked = GrantRevokeMany(done, nrevoked, done);
	if (defer_events)
		EventsDeferGrants(done, nrevoked, EVENT_GRANT_REVOKED);
	else
		EventsEnqueueGrants(done, nrevoked, EVENT_GRANT_REVOKED, NULL);

	for (int j = 0; j < r.nwanted; j++)
	{
		WantedBenefit *w = &r.wanted[j];
		GrantChange change = {0};
		bool		changed = false;
		pg_uuid_t	grant_id;

		if (w->has_grant && strcmp(w->grant_state, "revoked") != 0)
			continue;			/* held */
		change.organization_id = organization_id;
		change.customer_id = customer_id;
		change.benefit_id = w->benefit_id;
		change.has_subscription = for_subscription;
		change.has_order = !for_subscription;
		if (for_subscription)
			change.subscription_id = source_id;
		else
			change.order_id = source_id;
		change.benefit_type = w->type;
		change.benefit_properties = w->properties;
		if (w->has_grant)
		{
			change.grant_id = w->grant_id;
			change.grant_properties = w->grant_properties;
		}
		grant_id = GrantApplyLoaded(&change, w->has_grant ? w->grant_state : NULL, &changed);
		if (changed)
			done[napplied++] = grant_id;
	}
	if (defer_events)
		EventsDeferGrants(done, napplied, EVENT_GRANT_CREATED);
	else
		EventsEnqueueGrants(done, napplied, EVENT_GRANT_CREATED, NULL);
}
