/*
 * subscription_rules.c — what a subscription's or an order's row decides
 * (grant, revoke, keep), and the sync that reconciles one row's grants with
 * it.
 *
 * Status rules:
 *   active, trialing       grant (revoke once the period ends when
 *                          cancel_at_period_end is set)
 *   canceled               keep until min(ended_at, current_period_end), then
 *                          revoke; at once when neither is set
 *   revoked, incomplete_expired   revoke
 *   past_due, unpaid       keep until past_due_at + organization grace period
 *   incomplete             nothing
 * One-time orders (billing_reason 'purchase'): paid grants, refunded and
 * disputed revoke, a partial refund keeps access, pending changes nothing.
 *
 * Used by the row triggers (subscriptions.c), by the set-based activations'
 * fallback (activations.c) and by run_maintenance; it uses the reconciliation
 * (reconcile.c) below it.  A sync holds the subscription's or order's row
 * lock; the reconciliation locks the customer when it changes a grant.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"

/* The organization's grace period for past_due/unpaid subscriptions. */
static Interval *
GracePeriod(pg_uuid_t organization_id)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&organization_id)};
	bool		isnull;
	Datum		d;

	BenefitsExec(BenefitsPlan(&plan, "SELECT grace_period FROM benefits.organizations WHERE id = $1",
						  1, types),
			   values, NULL, true, 1);
	if (SPI_processed == 0)
		elog(ERROR, "organization of subscription not found");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return DatumGetIntervalP(datumCopy(d, false, sizeof(Interval)));
}

/* The status rules: what a subscription's state means for its benefits now. */
AccessDecision
SubscriptionDecision(SubscriptionState *s)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const char *st = s->status;

	if (strcmp(st, "active") == 0 || strcmp(st, "trialing") == 0)
	{
		if (s->cancel_at_period_end && s->has_period_end && s->period_end <= now)
			return ACCESS_REVOKE;
		return ACCESS_GRANT;
	}
	if (strcmp(st, "canceled") == 0)
	{
		bool		has_deadline = s->has_period_end || s->has_ended_at;
		TimestampTz deadline;

		if (!has_deadline)
			return ACCESS_REVOKE;
		if (s->has_period_end && s->has_ended_at)
			deadline = Min(s->period_end, s->ended_at);
		else
			deadline = s->has_period_end ? s->period_end : s->ended_at;
		return deadline <= now ? ACCESS_REVOKE : ACCESS_KEEP;
	}
	if (strcmp(st, "revoked") == 0 || strcmp(st, "incomplete_expired") == 0)
		return ACCESS_REVOKE;
	if (strcmp(st, "past_due") == 0 || strcmp(st, "unpaid") == 0)
	{
		Interval   *grace = GracePeriod(s->organization_id);
		TimestampTz since = s->has_past_due_at ? s->past_due_at : now;
		TimestampTz until;

		until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														TimestampTzGetDatum(since),
														IntervalPGetDatum(grace)));
		return until <= now ? ACCESS_REVOKE : ACCESS_KEEP;
	}
	/* incomplete */
	return ACCESS_KEEP;
}

/* Reads the decisive fields of a subscription row. */
void
SubscriptionFromTuple(HeapTuple tuple, TupleDesc desc, SubscriptionState *s)
{
	bool		isnull;
	Datum		d;

	s->id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "id"), &isnull));
	s->organization_id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "organization_id"), &isnull));
	s->customer_id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "customer_id"), &isnull));
	s->product_id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "product_id"), &isnull));
	s->status = TextDatumGetCString(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "status"), &isnull));
	d = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "current_period_end"), &isnull);
	s->has_period_end = !isnull;
	s->period_end = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "ended_at"), &isnull);
	s->has_ended_at = !isnull;
	s->ended_at = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "cancel_at_period_end"), &isnull);
	s->cancel_at_period_end = !isnull && DatumGetBool(d);
	d = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "past_due_at"), &isnull);
	s->has_past_due_at = !isnull;
	s->past_due_at = isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Re-reads a subscription under its row lock and reconciles its grants with
 * what its current row decides; events written at once or queued for the
 * statement's end.  Nothing when the subscription is gone.
 */
static void
SyncSubscription(pg_uuid_t subscription_id, bool defer_events)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&subscription_id)};
	SubscriptionState s;

	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT * FROM benefits.subscriptions WHERE id = $1 FOR NO KEY UPDATE",
						  1, types),
			   values, NULL, false, 1);
	if (SPI_processed == 0)
		return;
	SubscriptionFromTuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &s);
	EngineReconcileGrants(true, s.id, s.customer_id, s.product_id, SubscriptionDecision(&s), defer_events);
}

/* The entry point of run_maintenance and of product benefit-list changes. */
void
EngineSyncSubscription(pg_uuid_t subscription_id)
{
	SyncSubscription(subscription_id, false);
}

/*
 * A queued activation that cannot be granted set-based (activations.c): one
 * grant at a time, from the subscription as it is now, events queued.
 */
void
EngineActivateSubscription(pg_uuid_t subscription_id)
{
	SyncSubscription(subscription_id, true);
}

/* One-time order rules. */
AccessDecision
OrderDecision(const char *billing_reason, const char *status)
{
	if (strcmp(billing_reason, "purchase") != 0)
		return ACCESS_KEEP;
	if (strcmp(status, "paid") == 0 || strcmp(status, "partially_refunded") == 0)
		return ACCESS_GRANT;
	if (strcmp(status, "refunded") == 0 || strcmp(status, "disputed") == 0)
		return ACCESS_REVOKE;
	return ACCESS_KEEP;
}

/* Re-reads a one-time order under its row lock and reconciles its grants. */
void
EngineSyncOrder(pg_uuid_t order_id)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&order_id)};
	pg_uuid_t	customer_id,
				product_id;
	char	   *reason,
			   *status;

	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT customer_id, product_id, billing_reason, status"
						  "  FROM benefits.orders WHERE id = $1 FOR NO KEY UPDATE",
						  1, types),
			   values, NULL, false, 1);
	if (SPI_processed == 0)
		return;
	customer_id = BenefitsResultUuid(0, 1);
	product_id = BenefitsResultUuid(0, 2);
	reason = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	EngineReconcileGrants(false, order_id, customer_id, product_id, OrderDecision(reason, status), false);
}

