/*
 * type_meter_credits.c — the meter_credits benefit type (Polar's
 * "meter_credit"): credits on a meter.
 *
 * Properties: {meter_id, units (alias credits), rollover?, recurring?,
 * low_balance_threshold?}, normalized to {"meter_id", "units", "rollover"}
 * plus low_balance_threshold when given and "recurring": false when given.
 *
 * Credits: a grant credits the benefit's units as a lot (meter_ledger.c) —
 * a "grant" lot, or a "pack" lot for a one-time order, which no renewal
 * touches.  Each renewal of a recurring benefit credits the units again (a
 * "cycle" lot), and without rollover first expires what is left of the
 * grant's earlier benefit credits (never a top-up or a pack); those lots
 * carry the subscription's period end as their expiry, so usage takes them
 * first.  A benefit with recurring false credits once, at the grant.  A
 * revoke (a refund of a pack too) removes what is left of the grant's last
 * lot.  The grant records its last credit in its properties with Polar's
 * names (last_credited_meter_id, last_credited_units, last_credited_at).
 *
 * A database still at 0.1.0's schema has no lots: there "what is left" is
 * min(balance, last credited units), as 0.1.0 counted it.
 *
 * The tables, usage and the SQL functions are meter_ledger.c's and
 * meter_usage.c's; the portal's part is meter_portal.c's.  Every handler
 * runs with the customer locked (grants.h) and locks the balance row
 * (MeterLock) before it changes lots.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "email.h"
#include "meter_ledger.h"
#include "meter_portal.h"
#include "properties.h"

/* The benefit's meter, units, rollover, recurrence and threshold. */
typedef struct MeterBenefit
{
	pg_uuid_t	meter_id;
	int64		units;
	bool		rollover;
	bool		recurring;
	bool		has_threshold;
	int64		threshold;
} MeterBenefit;

/* The stored properties read back (normalized, so only shapes checked there). */
static void
ReadMeterBenefit(Jsonb *props, MeterBenefit *mb)
{
	char	   *meter = BenefitsJsonText(props, "meter_id");
	char	   *units = BenefitsJsonText(props, "units");
	char	   *rollover = BenefitsJsonText(props, "rollover");
	char	   *threshold = BenefitsJsonText(props, "low_balance_threshold");
	char	   *recurring = BenefitsJsonText(props, "recurring");

	if (meter == NULL || units == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("meter_credits benefit properties lack meter_id or units"));
	mb->meter_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(meter)));
	mb->units = pg_strtoint64(units);
	mb->rollover = rollover != NULL && strcmp(rollover, "true") == 0;
	mb->recurring = recurring == NULL || strcmp(recurring, "true") == 0;
	mb->has_threshold = threshold != NULL;
	mb->threshold = threshold ? pg_strtoint64(threshold) : 0;
}

/*
 * 0.1.0's schema: adds (or with negative units removes) credits: balance row
 * and ledger row in one statement.  Returns the grant's properties with its last credit
 * recorded (when reason is grant or cycle) or unchanged.
 */
static Jsonb *
Credit(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id, pg_uuid_t grant_id,
	   const char *reason, int64 units, MeterBenefit *mb, Jsonb *grant_properties)
{
	static SPIPlanPtr plan;
	Oid			types[8] = {UUIDOID, UUIDOID, UUIDOID, INT8OID, UUIDOID, INT8OID, TEXTOID, JSONBOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = UuidGetDatum(&customer_id);
	values[1] = UuidGetDatum(&meter_id);
	values[2] = UuidGetDatum(&organization_id);
	values[3] = Int64GetDatum(units);
	values[4] = UuidGetDatum(&grant_id);
	values[5] = Int64GetDatum(mb->threshold);
	nulls[5] = mb->has_threshold ? ' ' : 'n';
	values[6] = CStringGetTextDatum(reason);
	if (grant_properties)
		values[7] = JsonbPGetDatum(grant_properties);
	else
		nulls[7] = 'n';
	BenefitsExec(BenefitsPlan(&plan,
						  "WITH b AS ("
						  "  INSERT INTO benefits.meter_balances AS m"
						  "         (customer_id, meter_id, organization_id, balance, credited, low_balance_threshold)"
						  "  VALUES ($1, $2, $3, $4, GREATEST($4, 0), $6)"
						  "  ON CONFLICT (customer_id, meter_id) DO UPDATE"
						  "     SET balance = m.balance + EXCLUDED.balance,"
						  "         credited = m.credited + EXCLUDED.credited,"
						  "         low_balance_threshold = GREATEST(m.low_balance_threshold, EXCLUDED.low_balance_threshold),"
						  "         modified_at = pg_catalog.now()"
						  "  RETURNING m.balance),"
						  " l AS ("
						  "  INSERT INTO benefits.meter_credits"
						  "         (organization_id, customer_id, meter_id, grant_id, reason, units, balance_after)"
						  "  SELECT $3, $1, $2, $5, $7, $4, b.balance FROM b)"
						  "SELECT CASE WHEN $7 IN ('grant', 'cycle') THEN"
						  "  COALESCE($8, '{}') || pg_catalog.jsonb_build_object("
						  "     'last_credited_meter_id', $2, 'last_credited_units', $4,"
						  "     'last_credited_at', benefits.rfc3339(pg_catalog.now()))"
						  "  ELSE $8 END",
						  8, types),
			   values, nulls, false, 0);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return isnull ? NULL : DatumGetJsonbPCopy(d);
	}
}

/*
 * 0.1.0's schema: what is left of the grant's last credit on its meter:
 * min(balance, last credited units), never negative.  Locks the balance row.
 */
static int64
RemainingOfLastCredit(pg_uuid_t customer_id, Jsonb *grant_properties, pg_uuid_t *meter_id)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	char	   *meter = BenefitsJsonText(grant_properties, "last_credited_meter_id");
	char	   *units = BenefitsJsonText(grant_properties, "last_credited_units");
	int64		balance,
				last;
	bool		isnull;

	if (meter == NULL || units == NULL)
		return 0;
	*meter_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(meter)));
	last = pg_strtoint64(units);
	values[0] = UuidGetDatum(&customer_id);
	values[1] = UuidGetDatum(meter_id);
	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT balance FROM benefits.meter_balances"
						  " WHERE customer_id = $1 AND meter_id = $2 FOR UPDATE",
						  2, types),
			   values, NULL, false, 1);
	if (SPI_processed == 0)
		return 0;
	balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return Max(Min(balance, last), 0);
}

/*
 * Recomputes the balance row's threshold from the customer's live
 * meter_credits grants on the meter, leaving out the grant being revoked.
 */
static void
RefreshThreshold(pg_uuid_t customer_id, pg_uuid_t meter_id, pg_uuid_t revoked_grant)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDOID, UUIDOID};
	Datum		values[3];

	values[0] = UuidGetDatum(&customer_id);
	values[1] = UuidGetDatum(&meter_id);
	values[2] = UuidGetDatum(&revoked_grant);
	BenefitsExec(BenefitsPlan(&plan,
						  "UPDATE benefits.meter_balances m SET low_balance_threshold = ("
						  "  SELECT max((b.properties->>'low_balance_threshold')::bigint)"
						  "    FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id"
						  "   WHERE g.customer_id = $1 AND g.state <> 'revoked' AND g.id <> $3"
						  "     AND b.type = 'meter_credits' AND b.properties->>'meter_id' = $2::text)"
						  " WHERE m.customer_id = $1 AND m.meter_id = $2",
						  3, types),
			   values, NULL, false, 0);
}

/*
 * The benefit's properties changed (update_benefit): the low-balance
 * thresholds of its holders follow.  New units apply from the next renewal.
 */
static void
MeterCreditsBenefitUpdated(pg_uuid_t benefit_id, Jsonb *properties)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UuidGetDatum(&benefit_id)};

	BenefitsExec(BenefitsPlan(&plan,
							"UPDATE benefits.meter_balances m SET low_balance_threshold = ("
							"  SELECT max((b.properties->>'low_balance_threshold')::bigint)"
							"    FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id"
							"   WHERE g.customer_id = m.customer_id AND g.state <> 'revoked'"
							"     AND b.type = 'meter_credits' AND b.properties->>'meter_id' = m.meter_id::text)"
							" WHERE m.customer_id IN (SELECT customer_id FROM benefits.grants"
							"                          WHERE benefit_id = $1 AND state <> 'revoked')",
							1, types),
			   values, NULL, false, 0);
}

/* The grant's properties with its last credit recorded, in Polar's names. */
static Jsonb *
LastCredited(Jsonb *grant_properties, pg_uuid_t meter_id, int64 units)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {JSONBOID, UUIDOID, INT8OID};
	Datum		values[3] = {grant_properties ? JsonbPGetDatum(grant_properties) : (Datum) 0,
	UuidGetDatum(&meter_id), Int64GetDatum(units)};
	char		nulls[3] = {grant_properties ? ' ' : 'n', ' ', ' '};
	bool		isnull;

	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT COALESCE($1, '{}') || pg_catalog.jsonb_build_object("
							  "  'last_credited_meter_id', $2, 'last_credited_units', $3,"
							  "  'last_credited_at', benefits.rfc3339(pg_catalog.now()))",
							  3, types),
				 values, nulls, true, 1);
	return DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * When benefit credits of a subscription expire: the end of its current
 * period, when it is known and still ahead.  The subscription is given, or
 * the grant's.
 */
static bool
PeriodEnd(const pg_uuid_t *subscription_id, pg_uuid_t grant_id, TimestampTz *end)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {subscription_id ? UuidGetDatum(subscription_id) : (Datum) 0, UuidGetDatum(&grant_id)};
	char		nulls[2] = {subscription_id ? ' ' : 'n', ' '};
	bool		isnull;

	/* generic: the plan cache re-planned it on every call (its $1 NULL or not) */
	BenefitsExec(BenefitsGenericPlan(&plan,
							  "SELECT s.current_period_end FROM benefits.subscriptions s"
							  " WHERE s.id = COALESCE($1, (SELECT g.subscription_id FROM benefits.grants g WHERE g.id = $2))"
							  "   AND s.current_period_end > pg_catalog.now()",
							  2, types),
				 values, nulls, false, 1);
	if (SPI_processed == 0)
		return false;
	*end = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * Credits the benefit's units to the grant as a lot of the given source,
 * expiring at the subscription's period end when expiring; returns the
 * grant's new properties.
 */
static Jsonb *
CreditLot(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t grant_id, const char *source,
		  const MeterBenefit *mb, bool expiring, const pg_uuid_t *subscription_id, Jsonb *grant_properties)
{
	MeterCredit credit = {0};

	credit.organization_id = organization_id;
	credit.customer_id = customer_id;
	credit.meter_id = mb->meter_id;
	credit.grant_id = &grant_id;
	credit.source = source;
	credit.units = mb->units;
	credit.has_expiry = expiring && PeriodEnd(subscription_id, grant_id, &credit.expires_at);
	credit.has_threshold = mb->has_threshold;
	credit.threshold = mb->threshold;
	MeterLock(organization_id, customer_id, mb->meter_id);
	MeterCreditLot(&credit);
	return LastCredited(grant_properties, mb->meter_id, mb->units);
}

/*
 * Grant handler: credit the benefit's units (a pack for a one-time order);
 * the grant is active at once.
 */
static void
MeterCreditsGrant(GrantChange *change)
{
	MeterBenefit mb;

	ReadMeterBenefit(change->benefit_properties, &mb);
	if (MeterLotsInstalled())
		change->new_properties = CreditLot(change->organization_id, change->customer_id, change->grant_id,
										   change->has_order ? "pack" : "grant", &mb,
										   change->has_subscription && mb.recurring && !mb.rollover,
										   change->has_subscription ? &change->subscription_id : NULL,
										   change->grant_properties);
	else
		change->new_properties = Credit(change->organization_id, change->customer_id, mb.meter_id,
										change->grant_id, "grant", mb.units, &mb,
										change->grant_properties);
	change->new_state = "active";
	change->error = NULL;
}

/* The balances, lots, ledger rows and grants of a batch, as MeterCreditsGrant writes them. */
#define GRANT_MANY_LOTS_SQL \
	"WITH b AS (" \
	"  UPDATE benefits.meter_balances m" \
	"     SET balance = m.balance + $8, credited = m.credited + $8," \
	"         low_balance_threshold = GREATEST(m.low_balance_threshold, $9), modified_at = pg_catalog.now()" \
	"    FROM pg_catalog.unnest($4::uuid[]) AS x(customer_id)" \
	"   WHERE m.customer_id = x.customer_id AND m.meter_id = $7" \
	"  RETURNING m.customer_id, m.balance, m.balance - $8 AS before)," \
	" lots AS (" \
	"  INSERT INTO benefits.meter_lots" \
	"         (organization_id, customer_id, meter_id, source, grant_id, units, remaining, expires_at)" \
	"  SELECT $1, u.customer_id, $7, CASE WHEN $6 = 'o' THEN 'pack' ELSE 'grant' END, u.id, $8," \
	"         $8 - LEAST($8, GREATEST(-b.before, 0))," \
	"         CASE WHEN $6 = 's' AND $10 THEN (SELECT s.current_period_end FROM benefits.subscriptions s" \
	"                                           WHERE s.id = u.source_id AND s.current_period_end > pg_catalog.now()) END" \
	"    FROM " GRANT_BATCH_ROWS " JOIN b ON b.customer_id = u.customer_id" \
	"  RETURNING id, customer_id, grant_id, source)," \
	" l AS (" \
	"  INSERT INTO benefits.meter_credits" \
	"         (organization_id, customer_id, meter_id, grant_id, reason, units, balance_after, lot_id)" \
	"  SELECT $1, b.customer_id, $7, lots.grant_id, lots.source, $8, b.balance, lots.id" \
	"    FROM lots JOIN b ON b.customer_id = lots.customer_id) "

/* The same under 0.1.0's schema: balances and ledger rows only. */
#define GRANT_MANY_0_1_SQL \
	"WITH b AS (" \
	"  INSERT INTO benefits.meter_balances AS m" \
	"         (customer_id, meter_id, organization_id, balance, credited, low_balance_threshold)" \
	"  SELECT x.customer_id, $7, $1, $8, GREATEST($8, 0), $9" \
	"    FROM pg_catalog.unnest($4::uuid[]) AS x(customer_id)" \
	"  ON CONFLICT (customer_id, meter_id) DO UPDATE" \
	"     SET balance = m.balance + EXCLUDED.balance," \
	"         credited = m.credited + EXCLUDED.credited," \
	"         low_balance_threshold = GREATEST(m.low_balance_threshold, EXCLUDED.low_balance_threshold)," \
	"         modified_at = pg_catalog.now()" \
	"  RETURNING m.customer_id, m.balance)," \
	" l AS (" \
	"  INSERT INTO benefits.meter_credits" \
	"         (organization_id, customer_id, meter_id, grant_id, reason, units, balance_after)" \
	"  SELECT $1, u.customer_id, $7, u.id, 'grant', $8, b.balance" \
	"    FROM " GRANT_BATCH_ROWS " JOIN b ON b.customer_id = u.customer_id) "

#define GRANT_MANY_GRANTS_SQL \
	GRANT_BATCH_INSERT("'active'", \
					   "pg_catalog.jsonb_build_object('last_credited_meter_id', $7," \
					   " 'last_credited_units', $8," \
					   " 'last_credited_at', benefits.rfc3339(pg_catalog.now()))", "NULL") \
	"FROM " GRANT_BATCH_ROWS

/*
 * MeterCreditsGrant for a batch (grants_batch.c): balances, lots, ledger
 * rows and grants in one statement, after the balance rows are locked.
 */
static void
MeterCreditsGrantMany(GrantBatch *batch)
{
	static SPIPlanPtr plans[2];
	static const char *const sql[2] = {GRANT_MANY_0_1_SQL GRANT_MANY_GRANTS_SQL,
	GRANT_MANY_LOTS_SQL GRANT_MANY_GRANTS_SQL};
	Oid			types[GRANT_BATCH_NARGS + 4];
	Datum		values[GRANT_BATCH_NARGS + 4];
	char		nulls[GRANT_BATCH_NARGS + 4];
	MeterBenefit mb;
	bool		lots = MeterLotsInstalled();

	ReadMeterBenefit(batch->benefit_properties, &mb);
	GrantBatchArgs(batch, types, values);
	memset(nulls, ' ', sizeof(nulls));
	types[GRANT_BATCH_NARGS] = UUIDOID;
	types[GRANT_BATCH_NARGS + 1] = INT8OID;
	types[GRANT_BATCH_NARGS + 2] = INT8OID;
	types[GRANT_BATCH_NARGS + 3] = BOOLOID;
	values[GRANT_BATCH_NARGS] = UuidGetDatum(&mb.meter_id);
	values[GRANT_BATCH_NARGS + 1] = Int64GetDatum(mb.units);
	values[GRANT_BATCH_NARGS + 2] = Int64GetDatum(mb.threshold);
	nulls[GRANT_BATCH_NARGS + 2] = mb.has_threshold ? ' ' : 'n';
	values[GRANT_BATCH_NARGS + 3] = BoolGetDatum(mb.recurring && !mb.rollover);
	if (lots)
		MeterLockMany(batch->organization_id, values[3], mb.meter_id);
	BenefitsExec(BenefitsPlan(&plans[lots], sql[lots], GRANT_BATCH_NARGS + (lots ? 4 : 3), types),
				 values, nulls, false, 0);
	if (SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not credit meters");
}

/* Revoke handler (a refund of a pack too): remove what is left of the grant's last credit. */
static void
MeterCreditsRevoke(GrantChange *change)
{
	MeterBenefit none = {0};
	pg_uuid_t	meter_id;
	char	   *meter = BenefitsJsonText(change->grant_properties, "last_credited_meter_id");

	if (meter == NULL)
	{
		change->new_properties = NULL;
		return;
	}
	if (MeterLotsInstalled())
	{
		meter_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(meter)));
		MeterLock(change->organization_id, change->customer_id, meter_id);
		MeterRemoveGrantLots(change->organization_id, change->customer_id, meter_id, change->grant_id, "revoke");
	}
	else
	{
		int64		remaining = RemainingOfLastCredit(change->customer_id, change->grant_properties, &meter_id);

		if (remaining > 0)
			Credit(change->organization_id, change->customer_id, meter_id, change->grant_id,
				   "revoke", -remaining, &none, NULL);
	}
	RefreshThreshold(change->customer_id, meter_id, change->grant_id);
	change->new_properties = NULL;
}

/*
 * Renewal of a recurring benefit: without rollover what is left of the
 * grant's benefit credits expires; then the units are credited again.
 * Returns the grant's new properties.
 */
static Jsonb *
MeterCreditsCycle(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
				  Jsonb *benefit_properties, Jsonb *grant_properties)
{
	MeterBenefit mb;
	MeterBenefit none = {0};
	char	   *meter = BenefitsJsonText(grant_properties, "last_credited_meter_id");

	ReadMeterBenefit(benefit_properties, &mb);
	if (!mb.recurring)
		return grant_properties;
	if (!MeterLotsInstalled())
	{
		if (!mb.rollover)
		{
			pg_uuid_t	meter_id;
			int64		remaining = RemainingOfLastCredit(customer_id, grant_properties, &meter_id);

			if (remaining > 0)
				Credit(organization_id, customer_id, meter_id, grant_id, "expire", -remaining, &none, NULL);
		}
		return Credit(organization_id, customer_id, mb.meter_id, grant_id, "cycle", mb.units, &mb,
					  grant_properties);
	}
	if (!mb.rollover && meter != NULL)
	{
		pg_uuid_t	meter_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(meter)));

		MeterLock(organization_id, customer_id, meter_id);
		MeterRemoveGrantLots(organization_id, customer_id, meter_id, grant_id, "expire");
	}
	return CreditLot(organization_id, customer_id, grant_id, "cycle", &mb, !mb.rollover, NULL, grant_properties);
}

/* ---- properties ---- */

static SPIPlanPtr meter_plan = NULL;

/* Whether meter is a meter of the organization; locks it against deletion. */
static bool
MeterExists(PropertiesState *state, pg_uuid_t *meter)
{
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		args[2] = {UUIDPGetDatum(meter), UUIDPGetDatum(&state->organization_id)};
	SPIPlanPtr	plan = BenefitsPlan(&meter_plan,
								"SELECT 1 FROM benefits.meters"
								" WHERE id OPERATOR(pg_catalog.=) $1"
								" AND organization_id OPERATOR(pg_catalog.=) $2"
								" FOR KEY SHARE",
								2, argtypes);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up a meter failed");
	return SPI_processed == 1;
}

/*
 * {meter_id, units (alias credits), rollover, recurring, low_balance_threshold}.
 * Credit amounts stay below 2^53 so every JSON client reads them exactly;
 * recurring is kept only when false (its default is true).
 */
static void
NormalizeMeterCredits(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] =
	{"meter_id", "units", "credits", "rollover", "recurring", "low_balance_threshold", NULL};
	pg_uuid_t	meter_id;
	JsonbValue *units;
	JsonbValue *credits;
	JsonbValue *threshold;
	int64		amount;
	bool		rollover;
	bool		recurring;

	PropCheckKeys(state, root, "properties", keys);
	meter_id = PropUuidAt(PropRequiredField(root, "properties", "meter_id"), "properties.meter_id");
	if (!MeterExists(state, &meter_id))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.meter_id is not a meter of this organization"),
				errdetail("No meter %s exists in organization %s.",
						  BenefitsUuidText(&meter_id), BenefitsUuidText(&state->organization_id)));

	units = PropField(root, "units");
	credits = PropField(root, "credits");
	if (units != NULL && credits != NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must give either units or credits, not both"),
				errdetail("credits is another name for units."));
	if (units == NULL && credits == NULL)
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties.units is required"),
				errhint("credits is accepted as another name for units."));
	amount = units ? PropIntegerAt(units, "properties.units", 1, MAX_SAFE_INTEGER)
		: PropIntegerAt(credits, "properties.credits", 1, MAX_SAFE_INTEGER);
	rollover = PropOptionalBool(root, "properties", "rollover", false);
	recurring = PropOptionalBool(root, "properties", "recurring", true);

	PropPutKeyString(state, "meter_id", BenefitsUuidText(&meter_id));
	PropPutKey(state, "units");
	PropPutInteger(state, amount);
	PropPutKey(state, "rollover");
	PropPutBool(state, rollover);
	if (!recurring)
	{
		PropPutKey(state, "recurring");
		PropPutBool(state, false);
	}
	if ((threshold = PropField(root, "low_balance_threshold")) != NULL)
	{
		PropPutKey(state, "low_balance_threshold");
		PropPutInteger(state, PropIntegerAt(threshold, "properties.low_balance_threshold",
									0, MAX_SAFE_INTEGER));
	}
}

/* ---- the customer portal (meter_portal.c) ---- */

/* The benefit's meter with the customer's balance, period and history. */
static void
MeterCreditsPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	MeterPortalMember(&ctx->doc, b->properties, ctx->customer_id);
}

/* The meter's part of the card. */
static void
MeterCreditsPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *meter = PageContainer(benefit, "meter");

	if (meter != NULL && JsonContainerIsObject(meter))
		MeterPortalHtml(page, meter);
}

/* The credits granted and the customer's balance now. */
static void
MeterCreditsEmail(EmailBody *body, const EmailGrant *grant)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	char	   *meter_id = BenefitsJsonText(grant->benefit_properties, "meter_id");
	pg_uuid_t	meter;
	TupleDesc	desc;

	if (meter_id == NULL || !PropParseUuid(meter_id, &meter))
		return;
	values[0] = UuidGetDatum(&meter);
	values[1] = UuidGetDatum(&grant->customer_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT m.name, COALESCE((SELECT b.balance FROM benefits.meter_balances b"
							  "                          WHERE b.meter_id = m.id AND b.customer_id = $2), 0) AS balance"
							  "  FROM benefits.meters m WHERE m.id = $1",
							  2, types),
				 values, NULL, true, 1);
	if (SPI_processed == 0)
		return;
	desc = SPI_tuptable->tupdesc;
	EmailLine(body, psprintf("%s credits of %s. Your balance is now %s.",
							 BenefitsJsonText(grant->benefit_properties, "units"),
							 SPI_getvalue(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "name")),
							 SPI_getvalue(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "balance"))));
}

/* What the dashboard may edit in place. */
static const BenefitEditableProperty MeterCreditsEditable[] = {
	{"units", "Credits per period", true},
	{NULL, NULL, false}
};

const BenefitType MeterCreditsBenefit = {
	.name = "meter_credits",
	.alias = "meter_credit",
	.webhook_name = "meter_credit",
	.normalize = NormalizeMeterCredits,
	.grant = MeterCreditsGrant,
	.grant_many = MeterCreditsGrantMany,
	.revoke = MeterCreditsRevoke,
	.cycle = MeterCreditsCycle,
	.benefit_updated = MeterCreditsBenefitUpdated,
	.portal_key = "meter",
	.portal_member = MeterCreditsPortalMember,
	.portal_label = "Credits",
	.portal_html = MeterCreditsPortalHtml,
	.email_instructions = MeterCreditsEmail,
	.admin_editable = MeterCreditsEditable,
};
