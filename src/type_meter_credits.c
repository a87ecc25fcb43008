/*
 * type_meter_credits.c — the meter_credits benefit type (Polar's
 * "meter_credit"): credits on a meter, usage and balances.
 *
 * Properties: {meter_id, units (alias credits), rollover?,
 * low_balance_threshold?}, normalized to {"meter_id", "units", "rollover"}
 * plus low_balance_threshold when given.
 *
 * Three tables: meter_credits (the ledger of credits and debits that are not
 * usage), meter_usage (what record_usage consumed) and meter_balances, one
 * row per (customer, meter) holding the running balance, so meter_balance is
 * a primary-key lookup and record_usage a single-row UPDATE.
 *
 * Credits: a grant credits the benefit's units; each renewal credits them
 * again, and without rollover first expires what is left of the previous
 * credit; a revoke removes what is left of the grant's last credit.  "What
 * is left" is min(balance, last credited units), never below zero, so other
 * grants' credits and usage already recorded are never taken twice.  The
 * grant records its last credit in its properties with Polar's names
 * (last_credited_meter_id, last_credited_units, last_credited_at).
 *
 * Usage: record_usage subtracts under the balance row's lock with the
 * condition "balance >= units" unless meters.allow_overage, so concurrent
 * callers can never drive a balance below zero: the second waits for the
 * first and re-checks the condition against the committed balance.  A
 * request the balance cannot cover raises 23514 (check_violation).  When a
 * balance falls below the highest low_balance_threshold of the customer's
 * live meter_credits benefits on that meter, a "meter.low_balance" webhook
 * event and a NOTIFY on channel benefits_low_balance go out with the commit.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "properties.h"

PG_FUNCTION_INFO_V1(meter_balance);
PG_FUNCTION_INFO_V1(record_usage);

/* The benefit's meter, units, rollover and threshold. */
typedef struct MeterBenefit
{
	pg_uuid_t	meter_id;
	int64		units;
	bool		rollover;
	bool		has_threshold;
	int64		threshold;
} MeterBenefit;

static void
ReadMeterBenefit(Jsonb *props, MeterBenefit *mb)
{
	char	   *meter = BenefitsJsonText(props, "meter_id");
	char	   *units = BenefitsJsonText(props, "units");
	char	   *rollover = BenefitsJsonText(props, "rollover");
	char	   *threshold = BenefitsJsonText(props, "low_balance_threshold");

	if (meter == NULL || units == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("meter_credits benefit properties lack meter_id or units"));
	mb->meter_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(meter)));
	mb->units = pg_strtoint64(units);
	mb->rollover = rollover != NULL && strcmp(rollover, "true") == 0;
	mb->has_threshold = threshold != NULL;
	mb->threshold = threshold ? pg_strtoint64(threshold) : 0;
}

/*
 * Adds (or with negative units removes) credits: balance row and ledger row
 * in one statement.  Returns the grant's properties with its last credit
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
 * What is left of the grant's last credit on its meter: min(balance, last
 * credited units), never negative.  Locks the balance row.
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

/* Grant handler: credit the benefit's units; the grant is active at once. */
static void
MeterCreditsGrant(GrantChange *change)
{
	MeterBenefit mb;

	ReadMeterBenefit(change->benefit_properties, &mb);
	change->new_properties = Credit(change->organization_id, change->customer_id, mb.meter_id,
									change->grant_id, "grant", mb.units, &mb,
									change->grant_properties);
	change->new_state = "active";
	change->error = NULL;
}

/*
 * MeterCreditsGrant for a batch (grants_batch.c): balances, ledger rows and
 * grants in one statement, with the properties Credit records.
 */
static void
MeterCreditsGrantMany(GrantBatch *batch)
{
	static SPIPlanPtr plan;
	Oid			types[GRANT_BATCH_NARGS + 3];
	Datum		values[GRANT_BATCH_NARGS + 3];
	char		nulls[GRANT_BATCH_NARGS + 3];
	MeterBenefit mb;

	ReadMeterBenefit(batch->benefit_properties, &mb);
	GrantBatchArgs(batch, types, values);
	memset(nulls, ' ', sizeof(nulls));
	types[GRANT_BATCH_NARGS] = UUIDOID;
	types[GRANT_BATCH_NARGS + 1] = INT8OID;
	types[GRANT_BATCH_NARGS + 2] = INT8OID;
	values[GRANT_BATCH_NARGS] = UuidGetDatum(&mb.meter_id);
	values[GRANT_BATCH_NARGS + 1] = Int64GetDatum(mb.units);
	values[GRANT_BATCH_NARGS + 2] = Int64GetDatum(mb.threshold);
	nulls[GRANT_BATCH_NARGS + 2] = mb.has_threshold ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							"WITH b AS ("
							"  INSERT INTO benefits.meter_balances AS m"
							"         (customer_id, meter_id, organization_id, balance, credited, low_balance_threshold)"
							"  SELECT x.customer_id, $7, $1, $8, GREATEST($8, 0), $9"
							"    FROM pg_catalog.unnest($4::uuid[]) AS x(customer_id)"
							"  ON CONFLICT (customer_id, meter_id) DO UPDATE"
							"     SET balance = m.balance + EXCLUDED.balance,"
							"         credited = m.credited + EXCLUDED.credited,"
							"         low_balance_threshold = GREATEST(m.low_balance_threshold, EXCLUDED.low_balance_threshold),"
							"         modified_at = pg_catalog.now()"
							"  RETURNING m.customer_id, m.balance),"
							" l AS ("
							"  INSERT INTO benefits.meter_credits"
							"         (organization_id, customer_id, meter_id, grant_id, reason, units, balance_after)"
							"  SELECT $1, u.customer_id, $7, u.id, 'grant', $8, b.balance"
							"    FROM " GRANT_BATCH_ROWS " JOIN b ON b.customer_id = u.customer_id) "
							GRANT_BATCH_INSERT("'active'",
											   "pg_catalog.jsonb_build_object('last_credited_meter_id', $7,"
											   " 'last_credited_units', $8,"
											   " 'last_credited_at', benefits.rfc3339(pg_catalog.now()))", "NULL")
							"FROM " GRANT_BATCH_ROWS,
							GRANT_BATCH_NARGS + 3, types),
			   values, nulls, false, 0);
	if (SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not credit meters");
}

/* Revoke handler: remove what is left of the grant's last credit. */
static void
MeterCreditsRevoke(GrantChange *change)
{
	MeterBenefit none = {0};
	pg_uuid_t	meter_id;
	int64		remaining;

	remaining = RemainingOfLastCredit(change->customer_id, change->grant_properties, &meter_id);
	if (remaining > 0)
		Credit(change->organization_id, change->customer_id, meter_id, change->grant_id,
			   "revoke", -remaining, &none, NULL);
	if (BenefitsJsonText(change->grant_properties, "last_credited_meter_id") != NULL)
		RefreshThreshold(change->customer_id, meter_id, change->grant_id);
	change->new_properties = NULL;
}

/*
 * Renewal: without rollover what is left of the last credit expires; then
 * the units are credited again.  Returns the grant's new properties.
 */
static Jsonb *
MeterCreditsCycle(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
				  Jsonb *benefit_properties, Jsonb *grant_properties)
{
	MeterBenefit mb;
	MeterBenefit none = {0};

	ReadMeterBenefit(benefit_properties, &mb);
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

/* Raises 22023 unless the meter exists and belongs to the customer's organization. */
static bool
CheckMeterAndCustomer(pg_uuid_t customer_id, pg_uuid_t meter_id, bool *allow_overage)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id)};
	bool		isnull;
	bool		same_org;

	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT mt.allow_overage, c.organization_id = mt.organization_id"
						  "  FROM benefits.meters mt LEFT JOIN benefits.customers c ON c.id = $1"
						  " WHERE mt.id = $2",
						  2, types),
			   values, NULL, true, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("meter_id %s does not exist", BenefitsUuidText(&meter_id)));
	*allow_overage = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	same_org = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull || !same_org)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("customer_id %s does not exist in the meter's organization", BenefitsUuidText(&customer_id)));
	return true;
}

/* SQL: benefits.meter_balance(customer_id, meter_id) — the current balance. */
Datum
meter_balance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	pg_uuid_t	customer_id = *PG_GETARG_UUID_P(0);
	pg_uuid_t	meter_id = *PG_GETARG_UUID_P(1);
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id)};
	int64		balance = 0;
	bool		isnull;

	BenefitsSpiConnect();
	BenefitsExec(BenefitsPlan(&plan,
						  "SELECT balance FROM benefits.meter_balances WHERE customer_id = $1 AND meter_id = $2",
						  2, types),
			   values, NULL, true, 1);
	if (SPI_processed > 0)
		balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	else
	{
		bool		allow_overage;

		CheckMeterAndCustomer(customer_id, meter_id, &allow_overage);
	}
	SPI_finish();
	PG_RETURN_INT64(balance);
}

/* The low-balance event and notification, when a balance crossed its threshold. */
static void
LowBalance(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
		   int64 balance, int64 threshold)
{
	StringInfoData data;
	Jsonb	   *json;

	initStringInfo(&data);
	appendStringInfo(&data,
					 "{\"customer_id\": \"%s\", \"meter_id\": \"%s\", \"organization_id\": \"%s\", "
					 "\"balance\": " INT64_FORMAT ", \"low_balance_threshold\": " INT64_FORMAT "}",
					 BenefitsUuidText(&customer_id), BenefitsUuidText(&meter_id), BenefitsUuidText(&organization_id),
					 balance, threshold);
	json = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(data.data)));
	EventsEnqueue(organization_id, EVENT_METER_LOW_BALANCE, json);
	Async_Notify("benefits_low_balance", data.data);
}

/*
 * SQL: benefits.record_usage(customer_id, meter_id, units) — consumes units
 * and returns the new balance.
 */
Datum
record_usage(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	static SPIPlanPtr overage_plan;
	pg_uuid_t	customer_id = *PG_GETARG_UUID_P(0);
	pg_uuid_t	meter_id = *PG_GETARG_UUID_P(1);
	int64		units = PG_GETARG_INT64(2);
	Oid			types[3] = {UUIDOID, UUIDOID, INT8OID};
	Datum		values[3];
	int64		balance;
	bool		isnull;

	if (units < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("units must not be negative"),
				errdetail("units is " INT64_FORMAT ".", units));

	values[0] = UuidGetDatum(&customer_id);
	values[1] = UuidGetDatum(&meter_id);
	values[2] = Int64GetDatum(units);
	BenefitsSpiConnect();
	BenefitsExec(BenefitsPlan(&plan,
						  "WITH u AS ("
						  "  UPDATE benefits.meter_balances m"
						  "     SET balance = m.balance - $3, consumed = m.consumed + $3, modified_at = pg_catalog.now()"
						  "    FROM benefits.meters mt"
						  "   WHERE m.customer_id = $1 AND m.meter_id = $2 AND mt.id = m.meter_id"
						  "     AND (mt.allow_overage OR m.balance >= $3)"
						  "  RETURNING m.balance, m.low_balance_threshold, m.organization_id),"
						  " i AS (INSERT INTO benefits.meter_usage (customer_id, meter_id, units, balance_after)"
						  "       SELECT $1, $2, $3, u.balance FROM u)"
						  "SELECT balance, low_balance_threshold, organization_id FROM u",
						  3, types),
			   values, NULL, false, 0);
	if (SPI_processed == 0)
	{
		bool		allow_overage;
		int64		current = 0;
		static SPIPlanPtr balance_plan;

		CheckMeterAndCustomer(customer_id, meter_id, &allow_overage);
		BenefitsExec(BenefitsPlan(&balance_plan,
							  "SELECT balance FROM benefits.meter_balances WHERE customer_id = $1 AND meter_id = $2",
							  2, types),
				   values, NULL, false, 1);
		if (SPI_processed > 0)
			current = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (!allow_overage || SPI_processed > 0)
		{
			if (units == 0)
			{
				SPI_finish();
				PG_RETURN_INT64(current);
			}
			ereport(ERROR,
					errcode(ERRCODE_CHECK_VIOLATION),
					errmsg("meter balance is insufficient"),
					errdetail("The balance is " INT64_FORMAT " and the usage is " INT64_FORMAT " units.",
							  current, units),
					errhint("Grant more meter credits, or set allow_overage on the meter."));
		}
		/* Overage allowed and no balance row yet: start one below zero. */
		BenefitsExec(BenefitsPlan(&overage_plan,
							  "WITH u AS ("
							  "  INSERT INTO benefits.meter_balances AS m (customer_id, meter_id, organization_id, balance, consumed)"
							  "  SELECT $1, $2, c.organization_id, -$3, $3 FROM benefits.customers c WHERE c.id = $1"
							  "  ON CONFLICT (customer_id, meter_id) DO UPDATE"
							  "     SET balance = m.balance - $3, consumed = m.consumed + $3, modified_at = pg_catalog.now()"
							  "  RETURNING m.balance, m.low_balance_threshold, m.organization_id),"
							  " i AS (INSERT INTO benefits.meter_usage (customer_id, meter_id, units, balance_after)"
							  "       SELECT $1, $2, $3, u.balance FROM u)"
							  "SELECT balance, low_balance_threshold, organization_id FROM u",
							  3, types),
				   values, NULL, false, 0);
	}
	balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	{
		Datum		t = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull)
		{
			int64		threshold = DatumGetInt64(t);
			pg_uuid_t	org = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));

			if (balance < threshold && balance + units >= threshold)
				LowBalance(org, customer_id, meter_id, balance, threshold);
		}
	}
	SPI_finish();
	PG_RETURN_INT64(balance);
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
 * {meter_id, units (alias credits), rollover, low_balance_threshold}.  Credit
 * amounts stay below 2^53 so every JSON client reads them exactly.
 */
static void
NormalizeMeterCredits(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] =
	{"meter_id", "units", "credits", "rollover", "low_balance_threshold", NULL};
	pg_uuid_t	meter_id;
	JsonbValue *units;
	JsonbValue *credits;
	JsonbValue *threshold;
	int64		amount;
	bool		rollover;

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

	PropPutKeyString(state, "meter_id", BenefitsUuidText(&meter_id));
	PropPutKey(state, "units");
	PropPutInteger(state, amount);
	PropPutKey(state, "rollover");
	PropPutBool(state, rollover);
	if ((threshold = PropField(root, "low_balance_threshold")) != NULL)
	{
		PropPutKey(state, "low_balance_threshold");
		PropPutInteger(state, PropIntegerAt(threshold, "properties.low_balance_threshold",
									0, MAX_SAFE_INTEGER));
	}
}

/* ---- the customer portal ---- */

/* A meter_credits benefit's meter with the customer's balance, or null. */
static void
Meter(Doc *doc, JsonbContainer *properties, Datum customer)
{
	char	   *meter_id = BenefitsJsonbValueText(JsonMember(properties, "meter_id"));
	static SPIPlanPtr meter_plan;
	Oid			two_uuids[2] = {UUIDOID, UUIDOID};
	Datum		args[2];
	Rows		m;

	if (meter_id == NULL)
	{
		DocNull(doc);
		return;
	}
	BenefitsGenericPlan(&meter_plan,
						"SELECT m.id, m.name, coalesce(mb.balance, 0) FROM benefits.meters m"
						"  LEFT JOIN benefits.meter_balances mb ON mb.customer_id = $2 AND mb.meter_id = m.id"
						" WHERE m.id = $1", 2, two_uuids);
	args[0] = UUIDPGetDatum(PortalUuidFromText(meter_id));
	args[1] = customer;
	m = RowsFetch(meter_plan, args);
	if (m.n != 1)
	{
		DocNull(doc);
		return;
	}
	DocBeginObject(doc);
	DocKey(doc, "id");
	DocUuidCol(doc, &m, 0, 1);
	DocKey(doc, "name");
	DocTextCol(doc, &m, 0, 2);
	DocKey(doc, "units");
	DocJson(doc, JsonMember(properties, "units"));
	DocKey(doc, "balance");
	DocIntCol(doc, &m, 0, 3);
	DocKey(doc, "rollover");
	DocBool(doc, JsonMemberFlag(properties, "rollover"));
	DocEndObject(doc);
}


static void
MeterCreditsPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	Meter(&ctx->doc, b->properties, ctx->customer_id);
}

/* The meter's balance. */
static void
MeterCreditsPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *meter = PageContainer(benefit, "meter");
	char	   *balance;

	if (meter == NULL || !JsonContainerIsObject(meter))
		return;
	balance = PageText(meter, "balance");
	appendStringInfoString(page->buf, "<p>");
	PageEsc(page->buf, PageText(meter, "name"));
	appendStringInfoString(page->buf, " balance: <strong>");
	PageEsc(page->buf, balance ? balance : "0");
	appendStringInfoString(page->buf, "</strong></p>\n");
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
	.admin_editable = MeterCreditsEditable,
};
