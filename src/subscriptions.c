/*
 * subscriptions.c — subscriptions and orders drive grants.
 *
 * C triggers on benefits.subscriptions and benefits.orders decide, per row,
 * whether the customer should hold the product's benefits (grant), should
 * lose them (revoke) or keep what they have (the status says nothing new, or
 * access runs until a deadline).  The grants of a subscription or order are
 * then reconciled with the product's benefit list (reconcile.c; activations
 * of many subscriptions at once go through activations.c): benefits the product
 * attaches and the customer lacks are granted in attachment order, live
 * grants of benefits the product no longer has are revoked, and shared
 * benefits are left untouched.  The same reconciliation serves product
 * changes, update_product_benefits and run_maintenance, which applies the
 * changes that are due by the clock (period ends, grace periods).
 *
 * The rules themselves (which status grants, revokes or keeps) are in
 * subscription_rules.c.  A paid renewal order (subscription_cycle) cycles the
 * subscription's grants.
 *
 * Every grant change locks the customer (the reconciliation before it
 * grants, GrantRevoke and the renewal path take GrantLockCustomer; a sync
 * with nothing to change takes no lock), so concurrent changes to one
 * customer's subscriptions are applied one after the other and each decides
 * "does another holder remain" on the grants the previous one left; the row
 * lock on the subscription or order keeps concurrent syncs of the same row
 * apart.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "access/xact.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "license.h"
#include "trigger_guard.h"

PG_FUNCTION_INFO_V1(subscriptions_before);
PG_FUNCTION_INFO_V1(subscriptions_after);
PG_FUNCTION_INFO_V1(orders_after);
PG_FUNCTION_INFO_V1(grant_source_deleted);
PG_FUNCTION_INFO_V1(run_maintenance);


/* Locks two customers in a fixed order (a subscription moved between them). */
static void
LockCustomers(pg_uuid_t a, pg_uuid_t b)
{
	int			cmp = memcmp(&a, &b, sizeof(pg_uuid_t));

	if (cmp == 0)
		GrantLockCustomer(a);
	else if (cmp < 0)
	{
		GrantLockCustomer(a);
		GrantLockCustomer(b);
	}
	else
	{
		GrantLockCustomer(b);
		GrantLockCustomer(a);
	}
}

/*
 * Cycles the active grants of a subscription on a paid renewal: meter
 * credits are credited again (meters.c) and every grant reports
 * benefit_grant.cycled.  Grants revoked meanwhile (a cancel that committed
 * first) are not touched, so a cancel racing a renewal leaves nothing.
 */
static void
CycleSubscription(pg_uuid_t subscription_id, pg_uuid_t customer_id)
{
	static SPIPlanPtr select_plan;
	static SPIPlanPtr update_plan;
	Oid			types[1] = {UUIDOID};
	Oid			update_types[2] = {UUIDOID, JSONBOID};
	Datum		values[1] = {UuidGetDatum(&subscription_id)};
	int			n;
	pg_uuid_t  *grant_ids,
			   *org_ids;
	char	  **btypes;
	Jsonb	  **bprops,
			  **gprops;

	GrantLockCustomer(customer_id);
	BenefitsExec(BenefitsPlan(&select_plan,
						  "SELECT g.id, g.organization_id, b.type, b.properties, g.properties"
						  "  FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id"
						  "  LEFT JOIN benefits.subscriptions s ON s.id = g.subscription_id"
						  "  LEFT JOIN benefits.product_benefits pb"
						  "         ON pb.product_id = s.product_id AND pb.benefit_id = g.benefit_id"
						  " WHERE g.subscription_id = $1 AND g.state = 'active'"
						  " ORDER BY pb.position NULLS LAST, g.created_at, g.id",
						  1, types),
			   values, NULL, false, 0);
	n = (int) SPI_processed;
	grant_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	org_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	btypes = palloc(sizeof(char *) * (n + 1));
	bprops = palloc(sizeof(Jsonb *) * (n + 1));
	gprops = palloc(sizeof(Jsonb *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;

		grant_ids[i] = BenefitsResultUuid(i, 1);
		org_ids[i] = BenefitsResultUuid(i, 2);
		btypes[i] = SPI_getvalue(t, d, 3);
		bprops[i] = DatumGetJsonbPCopy(SPI_getbinval(t, d, 4, &isnull));
		gprops[i] = DatumGetJsonbPCopy(SPI_getbinval(t, d, 5, &isnull));
	}

	for (int i = 0; i < n; i++)
	{
		const BenefitType *bt = BenefitTypeOf(btypes[i]);

		if (bt->cycle)
		{
			Jsonb	   *props = bt->cycle(grant_ids[i], org_ids[i], customer_id, bprops[i], gprops[i]);
			Datum		uvalues[2] = {UuidGetDatum(&grant_ids[i]), JsonbPGetDatum(props)};

			BenefitsExec(BenefitsPlan(&update_plan,
								  "UPDATE benefits.grants SET properties = $2, modified_at = pg_catalog.now()"
								  " WHERE id = $1",
								  2, update_types),
					   uvalues, NULL, false, 0);
		}
	}
	EventsDeferGrants(grant_ids, n, EVENT_GRANT_CYCLED);
}

/* Column value equality between OLD and NEW, by attribute name. */
static bool
ColumnChanged(HeapTuple oldtup, HeapTuple newtup, TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
	bool		oldnull,
				newnull;
	Datum		o = heap_getattr(oldtup, attnum, desc, &oldnull);
	Datum		n = heap_getattr(newtup, attnum, desc, &newnull);

	if (oldnull || newnull)
		return oldnull != newnull;
	return !datumIsEqual(o, n, att->attbyval, att->attlen);
}

static bool
IsPastDueStatus(const char *status)
{
	return strcmp(status, "past_due") == 0 || strcmp(status, "unpaid") == 0;
}

/*
 * BEFORE INSERT OR UPDATE OF status: keeps past_due_at, the start of the
 * grace period — set when the subscription enters past_due/unpaid (unless the
 * application gave it) and kept while it stays there, cleared when it leaves.
 */
Datum
subscriptions_before(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "subscriptions_before", FIRES_BEFORE_ROW, "subscriptions");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	newtup;
	bool		isnull;
	char	   *status;
	int			attnum;
	Datum		value;
	bool		null;

	newtup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	/* NOT NULL is checked after BEFORE triggers: a NULL status ends here */
	status = TextDatumGetCString(TriggerColumn(trigdata, newtup, "status"));
	attnum = SPI_fnumber(desc, "past_due_at");
	(void) TriggerColumnNullable(trigdata, newtup, "past_due_at", &isnull);

	if (IsPastDueStatus(status))
	{
		/* Entering past_due/unpaid: the grace period starts now. */
		if (!isnull)
			return PointerGetDatum(newtup);
		value = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		null = false;
	}
	else
	{
		if (isnull)
			return PointerGetDatum(newtup);
		value = (Datum) 0;
		null = true;
	}
	return PointerGetDatum(heap_modify_tuple_by_cols(newtup, desc, 1, &attnum, &value, &null));
}

/*
 * AFTER INSERT OR UPDATE on benefits.subscriptions: applies the status rules
 * to the row.  Updates that touch none of the decisive columns cost nothing.
 */
Datum
subscriptions_after(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "subscriptions_after", FIRES_AFTER_ROW, "subscriptions");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	newtup;
	SubscriptionState s;
	AccessDecision decision;
	bool		status_changed = true;	/* an INSERT counts as a change */
	bool		customer_moved = false;
	pg_uuid_t	old_customer;

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	o = trigdata->tg_trigtuple;
		HeapTuple	n = trigdata->tg_newtuple;

		if (!ColumnChanged(o, n, desc, "status") && !ColumnChanged(o, n, desc, "product_id") &&
			!ColumnChanged(o, n, desc, "customer_id") &&
			!ColumnChanged(o, n, desc, "current_period_end") &&
			!ColumnChanged(o, n, desc, "ended_at") &&
			!ColumnChanged(o, n, desc, "cancel_at_period_end") &&
			!ColumnChanged(o, n, desc, "past_due_at"))
			return PointerGetDatum(NULL);
		newtup = n;
		status_changed = ColumnChanged(o, n, desc, "status");
		if (ColumnChanged(o, n, desc, "customer_id"))
		{
			customer_moved = true;
			old_customer = *DatumGetUUIDP(TriggerColumn(trigdata, o, "customer_id"));
		}
	}
	else
		newtup = trigdata->tg_trigtuple;

	BenefitsSpiConnect();
	SubscriptionFromTuple(newtup, desc, &s);
	decision = SubscriptionDecision(&s);
	if (decision == ACCESS_GRANT && !customer_moved && status_changed)
		ActivationsQueue(s.id, s.customer_id, s.product_id);
	else if (decision != ACCESS_KEEP || customer_moved)
	{
		/*
		 * Activations queued by earlier rows go first.  The row lock on the
		 * subscription keeps other syncs of it out; every grant change below
		 * locks the customer itself.  A subscription moved between customers
		 * locks both first, in a fixed order.
		 */
		ActivationsFlush();
		if (customer_moved)
			LockCustomers(old_customer, s.customer_id);
		EngineReconcileGrants(true, s.id, s.customer_id, s.product_id, decision, true);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * AFTER INSERT OR UPDATE on benefits.orders: one-time purchases grant and
 * revoke; a renewal cycles its subscription's grants once, when it becomes
 * paid.
 */
Datum
orders_after(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "orders_after", FIRES_AFTER_ROW, "orders");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	oldtup = trigdata->tg_trigtuple;
	HeapTuple	newtup;
	bool		isnull;
	char	   *reason,
			   *status;
	bool		became_paid;
	pg_uuid_t	order_id,
				customer_id,
				product_id;

	newtup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : oldtup;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) &&
		!ColumnChanged(oldtup, newtup, desc, "status") &&
		!ColumnChanged(oldtup, newtup, desc, "product_id") &&
		!ColumnChanged(oldtup, newtup, desc, "customer_id") &&
		!ColumnChanged(oldtup, newtup, desc, "billing_reason"))
		return PointerGetDatum(NULL);

	reason = TextDatumGetCString(TriggerColumn(trigdata, newtup, "billing_reason"));
	status = TextDatumGetCString(TriggerColumn(trigdata, newtup, "status"));
	order_id = *DatumGetUUIDP(TriggerColumn(trigdata, newtup, "id"));
	customer_id = *DatumGetUUIDP(TriggerColumn(trigdata, newtup, "customer_id"));
	product_id = *DatumGetUUIDP(TriggerColumn(trigdata, newtup, "product_id"));
	became_paid = strcmp(status, "paid") == 0 &&
		(!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		 strcmp(TextDatumGetCString(TriggerColumn(trigdata, oldtup, "status")), "paid") != 0);

	BenefitsSpiConnect();
	/* Subscriptions activated earlier in the statement hold their grants first. */
	ActivationsFlush();
	if (strcmp(reason, "purchase") == 0)
	{
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && ColumnChanged(oldtup, newtup, desc, "customer_id"))
			LockCustomers(*DatumGetUUIDP(TriggerColumn(trigdata, oldtup, "customer_id")), customer_id);
		EngineReconcileGrants(false, order_id, customer_id, product_id, OrderDecision(reason, status), true);
	}
	else if (strcmp(reason, "subscription_cycle") == 0 && became_paid)
	{
		Datum		sub = TriggerColumnNullable(trigdata, newtup, "subscription_id", &isnull);

		if (!isnull)
			CycleSubscription(*DatumGetUUIDP(sub), customer_id);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * The grants of a subscription or order being deleted: the revoked ones are
 * kept as history, their reference cleared and the source's id moved to
 * source_subscription_id / source_order_id (part of the grants' unique key,
 * so a kept grant collides with no manual grant and no other kept grant; see
 * benefits.grants in 00_core.sql).  Any other grant is one of a customer
 * being deleted or already deleted, whose grants go with it, as before: it
 * is deleted.  The foreign keys' ON DELETE SET NULL then finds nothing left
 * to clear.
 */
static void
KeepGrantHistory(bool for_subscription, pg_uuid_t source_id)
{
	static SPIPlanPtr keep_subscription;
	static SPIPlanPtr keep_order;
	static SPIPlanPtr drop_subscription;
	static SPIPlanPtr drop_order;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&source_id)};

	/* 0.1.0's schema keeps nothing: its foreign keys cascade */
	if (!BenefitsGrantsKeepHistory())
		return;
	BenefitsExec(for_subscription
			   ? BenefitsPlan(&keep_subscription,
							  "UPDATE benefits.grants SET source_subscription_id = subscription_id, subscription_id = NULL"
							  " WHERE subscription_id = $1 AND state = 'revoked'",
							  1, types)
			   : BenefitsPlan(&keep_order,
							  "UPDATE benefits.grants SET source_order_id = order_id, order_id = NULL"
							  " WHERE order_id = $1 AND state = 'revoked'",
							  1, types),
			   values, NULL, false, 0);
	BenefitsExec(for_subscription
			   ? BenefitsPlan(&drop_subscription,
							  "DELETE FROM benefits.grants WHERE subscription_id = $1", 1, types)
			   : BenefitsPlan(&drop_order,
							  "DELETE FROM benefits.grants WHERE order_id = $1", 1, types),
			   values, NULL, false, 0);
}

/*
 * BEFORE DELETE on benefits.subscriptions and benefits.orders: revokes the
 * row's live grants first, so deleting a purchase reports the revokes and
 * removes provider access, then keeps the revoked grants as history
 * (KeepGrantHistory) instead of letting them go with the row.
 */
Datum
grant_source_deleted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = TriggerGuard(fcinfo, "grant_source_deleted", FIRES_BEFORE_ROW, NULL);
	HeapTuple	old = trigdata->tg_trigtuple;
	bool		for_subscription = TriggerOnTable(trigdata, "subscriptions");
	pg_uuid_t	id,
				customer_id,
				product_id;

	if (!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		(!for_subscription && !TriggerOnTable(trigdata, "orders")))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("grant_source_deleted must fire BEFORE DELETE on benefits.subscriptions or benefits.orders")));
	id = *DatumGetUUIDP(TriggerColumn(trigdata, old, "id"));
	customer_id = *DatumGetUUIDP(TriggerColumn(trigdata, old, "customer_id"));
	product_id = *DatumGetUUIDP(TriggerColumn(trigdata, old, "product_id"));

	BenefitsSpiConnect();
	/* An activation queued earlier in the statement is granted before it goes. */
	ActivationsFlush();
	{
		/* A cascade from deleting the customer: its grants go with it. */
		static SPIPlanPtr plan;
		Oid			types[1] = {UUIDOID};
		Datum		values[1] = {UuidGetDatum(&customer_id)};

		BenefitsExec(BenefitsPlan(&plan,
								"SELECT 1 FROM benefits.customers WHERE id = $1 AND deleted_at IS NULL",
								1, types),
				   values, NULL, false, 1);
	}
	if (SPI_processed > 0)
	{
		GrantLockCustomer(customer_id);
		EngineReconcileGrants(for_subscription, id, customer_id, product_id, ACCESS_REVOKE, false);
	}
	KeepGrantHistory(for_subscription, id);
	SPI_finish();
	return PointerGetDatum(old);
}

/*
 * SQL: benefits.run_maintenance() — applies every change due by the clock:
 * canceled subscriptions past their period end or ended_at, active ones set
 * to cancel at a period end that has passed, past_due/unpaid ones whose
 * grace period has run out.  Only subscriptions that still hold live grants
 * are visited.  Returns how many were brought up to date.  It also releases
 * license activations that missed their heartbeat window.
 */
Datum
run_maintenance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	int			n;
	pg_uuid_t  *ids;

	BenefitsSpiConnect();
	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT s.id FROM benefits.subscriptions s"
						  "  JOIN benefits.organizations o ON o.id = s.organization_id"
						  " WHERE (s.status IN ('canceled', 'past_due', 'unpaid') OR s.cancel_at_period_end)"
						  "   AND CASE"
						  "        WHEN s.status = 'canceled' THEN"
						  "          COALESCE(LEAST(s.ended_at, s.current_period_end), '-infinity') <= pg_catalog.now()"
						  "        WHEN s.status IN ('past_due', 'unpaid') THEN"
						  "          COALESCE(s.past_due_at, pg_catalog.now()) + o.grace_period <= pg_catalog.now()"
						  "        WHEN s.status IN ('active', 'trialing') THEN"
						  "          s.current_period_end <= pg_catalog.now()"
						  "        ELSE false END"
						  "   AND EXISTS (SELECT FROM benefits.grants g"
						  "                WHERE g.subscription_id = s.id AND g.state <> 'revoked')"
						  " ORDER BY s.id",
						  0, NULL),
			   NULL, NULL, false, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	for (int i = 0; i < n; i++)
		ids[i] = BenefitsResultUuid(i, 1);
	for (int i = 0; i < n; i++)
		EngineSyncSubscription(ids[i]);
	/* License activations that missed their heartbeat window (license_machines.c). */
	(void) LicenseReleaseSilentActivations();
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * The product's benefit list changed (update_product_benefits): every
 * current holder gets the same diff as a product change — subscriptions that
 * grant or still hold grants, and paid one-time orders.
 */
void
EngineProductBenefitsChanged(pg_uuid_t product_id)
{
	static SPIPlanPtr subs_plan;
	static SPIPlanPtr orders_plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&product_id)};
	int			n;
	pg_uuid_t  *ids;

	BenefitsExec(BenefitsPlan(&subs_plan,
						  "SELECT s.id FROM benefits.subscriptions s WHERE s.product_id = $1"
						  "   AND (s.status IN ('active', 'trialing')"
						  "        OR EXISTS (SELECT FROM benefits.grants g"
						  "                    WHERE g.subscription_id = s.id AND g.state <> 'revoked'))"
						  " ORDER BY s.id",
						  1, types),
			   values, NULL, false, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	for (int i = 0; i < n; i++)
		ids[i] = BenefitsResultUuid(i, 1);
	for (int i = 0; i < n; i++)
		EngineSyncSubscription(ids[i]);

	BenefitsExec(BenefitsPlan(&orders_plan,
						  "SELECT o.id FROM benefits.orders o WHERE o.product_id = $1"
						  "   AND o.billing_reason = 'purchase' AND o.status IN ('paid', 'partially_refunded')"
						  " ORDER BY o.id",
						  1, types),
			   values, NULL, false, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	for (int i = 0; i < n; i++)
		ids[i] = BenefitsResultUuid(i, 1);
	for (int i = 0; i < n; i++)
		EngineSyncOrder(ids[i]);
}
