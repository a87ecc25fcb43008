/*
 * meter_usage.c — the SQL functions of meter balances: meter_balance,
 * record_usage and adjust_credits.
 *
 * record_usage subtracts under the balance row's lock with the condition
 * "balance >= units" unless meters.allow_overage, so concurrent callers can
 * never drive a balance below zero: the second waits for the first and
 * re-checks the condition against the committed balance.  Without an
 * idempotency key that is the whole of it (the lots take the usage later,
 * meter_ledger.c).  With one, the balance row is locked first and the key
 * looked up after the lock, so two retries of one key run one after the
 * other and the second returns the first's result.  adjust_credits locks
 * the same row (MeterLock) for the same reasons.
 *
 * When a balance falls below the highest low_balance_threshold of the
 * customer's live meter_credits benefits on that meter, a "meter.low_balance"
 * webhook event, the customer's email (unless they opted out) and a NOTIFY on
 * channel benefits_low_balance go out with the
 * commit.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "email.h"
#include "engine.h"
#include "meter_ledger.h"
#include "properties.h"
#include "trigger_guard.h"

PG_FUNCTION_INFO_V1(meter_balance);
PG_FUNCTION_INFO_V1(record_usage);
PG_FUNCTION_INFO_V1(adjust_credits);
PG_FUNCTION_INFO_V1(meter_balance_deleted);

/* The longest idempotency key and adjustment reason accepted. */
#define METER_KEY_MAX 200
/* How far ahead of the server's clock a usage's occurred_at may be. */
#define OCCURRED_AT_SKEW_USECS (5 * 60 * USECS_PER_SEC)

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
		pg_uuid_t	organization_id;

		MeterCheckCustomer(customer_id, meter_id, &organization_id);
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
	EmailForCustomer(customer_id, EMAIL_CREDITS_LOW, json);
	Async_Notify("benefits_low_balance", data.data);
}

/* LowBalance when a debit of units took the balance from at or above the threshold to below it. */
static void
CheckLowBalance(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
				int64 balance, int64 units, bool has_threshold, int64 threshold)
{
	if (has_threshold && balance < threshold && balance + units >= threshold)
		LowBalance(organization_id, customer_id, meter_id, balance, threshold);
}

/* A required bigint argument between -MAX_SAFE_INTEGER and MAX_SAFE_INTEGER (or 0 and it). */
static int64
UnitsArgument(FunctionCallInfo fcinfo, int argno, bool signed_units)
{
	int64		units;

	BenefitsRequireArgument(fcinfo, argno, "units", ERRCODE_INVALID_PARAMETER_VALUE);
	units = PG_GETARG_INT64(argno);
	if (!signed_units && units < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("units must not be negative"),
				errdetail("units is " INT64_FORMAT ".", units));
	if (units > MAX_SAFE_INTEGER || units < -MAX_SAFE_INTEGER)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("units must be at most " INT64_FORMAT " in magnitude", MAX_SAFE_INTEGER),
				errdetail("units is " INT64_FORMAT ".", units));
	return units;
}

/* An optional text argument checked as an idempotency key or reason, or NULL. */
static char *
TextArgument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *value;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	value = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	MeterCheckText(value, name, METER_KEY_MAX);
	return value;
}

/* The refusal of a repeated idempotency key whose arguments differ from the first call's. */
static void
KeyConflict(const char *key, const char *what, const char *first, const char *now)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("idempotency_key \"%s\" was already used with other %s", key, what),
			errdetail("The first call had %s %s; this call has %s.", what, first, now),
			errhint("A retry must repeat the first call's arguments; use a new key for a new operation."));
}

/*
 * The row an earlier call wrote with this key, the balance row locked (so a
 * concurrent first call has committed or rolled back), or NULL.  The query's
 * arguments are the customer, the meter and the key.
 */
static HeapTuple
RowByKey(SPIPlanPtr *plan, const char *sql, pg_uuid_t customer_id, pg_uuid_t meter_id, const char *key)
{
	Oid			types[3] = {UUIDOID, UUIDOID, TEXTOID};
	Datum		values[3] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id), CStringGetTextDatum(key)};

	BenefitsExec(BenefitsPlan(plan, sql, 3, types), values, NULL, false, 1);
	return SPI_processed == 0 ? NULL : SPI_tuptable->vals[0];
}

/* A non-null column of RowByKey's row. */
static Datum
KeyedColumn(HeapTuple row, const char *column)
{
	bool		isnull;

	return SPI_getbinval(row, SPI_tuptable->tupdesc, SPI_fnumber(SPI_tuptable->tupdesc, column), &isnull);
}

/*
 * The usage recorded earlier with this key: checks that it had the same
 * units (and occurred_at, when given) and returns true with its balance, or
 * false when the key is new.
 */
static bool
UsageByKey(pg_uuid_t customer_id, pg_uuid_t meter_id, const char *key, int64 units,
		   bool has_time, TimestampTz occurred_at, int64 *balance)
{
	static SPIPlanPtr plan;
	HeapTuple	row = RowByKey(&plan,
							   "SELECT units, balance_after, occurred_at FROM benefits.meter_usage"
							   " WHERE customer_id = $1 AND meter_id = $2 AND idempotency_key = $3",
							   customer_id, meter_id, key);
	int64		first_units;
	TimestampTz first_time;

	if (row == NULL)
		return false;
	first_units = DatumGetInt64(KeyedColumn(row, "units"));
	first_time = DatumGetTimestampTz(KeyedColumn(row, "occurred_at"));
	if (first_units != units)
		KeyConflict(key, "units", psprintf(INT64_FORMAT, first_units), psprintf(INT64_FORMAT, units));
	if (has_time && first_time != occurred_at)
		KeyConflict(key, "occurred_at", pstrdup(timestamptz_to_str(first_time)), pstrdup(timestamptz_to_str(occurred_at)));
	*balance = DatumGetInt64(KeyedColumn(row, "balance_after"));
	return true;
}

/*
 * The usage statements: the balance row's update when the balance covers
 * the usage (the hot path: one row, no other table read), or, on a meter
 * that allows overage, the update or creation of the balance row without
 * that condition; each writes the usage row.  The short form is the hot
 * path and 0.1.0's schema; the long one carries the idempotency key ($4) and
 * occurred_at ($5).
 */
#define USAGE_ROW_SHORT \
	" i AS (INSERT INTO benefits.meter_usage (customer_id, meter_id, units, balance_after)" \
	"       SELECT $1, $2, $3, u.balance FROM u)"
#define USAGE_ROW_LONG \
	" i AS (INSERT INTO benefits.meter_usage" \
	"       (customer_id, meter_id, units, balance_after, idempotency_key, occurred_at)" \
	"       SELECT $1, $2, $3, u.balance, $4, coalesce($5, pg_catalog.now()) FROM u)"
#define USAGE_UPDATE(row) \
	"WITH u AS (" \
	"  UPDATE benefits.meter_balances m" \
	"     SET balance = m.balance - $3, consumed = m.consumed + $3, modified_at = pg_catalog.now()" \
	"   WHERE m.customer_id = $1 AND m.meter_id = $2 AND m.balance >= $3" \
	"  RETURNING m.balance, m.low_balance_threshold, m.organization_id)," row \
	"SELECT balance, low_balance_threshold, organization_id FROM u"
#define USAGE_OVERAGE(row) \
	"WITH u AS (" \
	"  INSERT INTO benefits.meter_balances AS m (customer_id, meter_id, organization_id, balance, consumed)" \
	"  SELECT $1, $2, c.organization_id, -$3, $3 FROM benefits.customers c WHERE c.id = $1" \
	"  ON CONFLICT (customer_id, meter_id) DO UPDATE" \
	"     SET balance = m.balance - $3, consumed = m.consumed + $3, modified_at = pg_catalog.now()" \
	"  RETURNING m.balance, m.low_balance_threshold, m.organization_id)," row \
	"SELECT balance, low_balance_threshold, organization_id FROM u"

/* The balance the usage could not take from, in its refusal (and a usage of 0 returns it). */
static int64
CurrentBalance(pg_uuid_t customer_id, pg_uuid_t meter_id)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id)};
	bool		isnull;

	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT balance FROM benefits.meter_balances WHERE customer_id = $1 AND meter_id = $2",
							  2, types),
				 values, NULL, false, 1);
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Records the usage; raises 23514 when the balance cannot cover it and the
 * meter allows no overage.  Returns the new balance; the low-balance event
 * is sent when it crosses.
 */
static int64
Consume(pg_uuid_t customer_id, pg_uuid_t meter_id, int64 units, const char *key,
		bool has_time, TimestampTz occurred_at)
{
	static SPIPlanPtr update_plans[2];
	static SPIPlanPtr overage_plans[2];
	static const char *const update_sql[2] = {USAGE_UPDATE(USAGE_ROW_SHORT), USAGE_UPDATE(USAGE_ROW_LONG)};
	static const char *const overage_sql[2] = {USAGE_OVERAGE(USAGE_ROW_SHORT), USAGE_OVERAGE(USAGE_ROW_LONG)};
	bool		lng = key != NULL || has_time;
	Oid			types[5] = {UUIDOID, UUIDOID, INT8OID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int64		balance;
	bool		isnull;
	Datum		t;

	values[0] = UuidGetDatum(&customer_id);
	values[1] = UuidGetDatum(&meter_id);
	values[2] = Int64GetDatum(units);
	values[3] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[3] = key ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(occurred_at);
	nulls[4] = has_time ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&update_plans[lng], update_sql[lng], lng ? 5 : 3, types),
				 values, nulls, false, 0);
	if (SPI_processed == 0)
	{
		pg_uuid_t	organization_id;

		if (!MeterCheckCustomer(customer_id, meter_id, &organization_id))
		{
			int64		current = CurrentBalance(customer_id, meter_id);

			if (units == 0)
				return current;
			ereport(ERROR,
					errcode(ERRCODE_CHECK_VIOLATION),
					errmsg("meter balance is insufficient"),
					errdetail("The balance is " INT64_FORMAT " and the usage is " INT64_FORMAT " units.",
							  current, units),
					errhint("Grant more meter credits, or set allow_overage on the meter."));
		}
		/* Overage allowed: below zero, starting the balance row if there is none. */
		BenefitsExec(BenefitsPlan(&overage_plans[lng], overage_sql[lng], lng ? 5 : 3, types),
					 values, nulls, false, 0);
	}
	balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  SPI_fnumber(SPI_tuptable->tupdesc, "balance"), &isnull));
	t = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
					  SPI_fnumber(SPI_tuptable->tupdesc, "low_balance_threshold"), &isnull);
	if (!isnull)
	{
		pg_uuid_t	org = BenefitsResultUuid(0, SPI_fnumber(SPI_tuptable->tupdesc, "organization_id"));

		CheckLowBalance(org, customer_id, meter_id, balance, units, true, DatumGetInt64(t));
	}
	return balance;
}

/*
 * SQL: benefits.record_usage(customer_id, meter_id, units, idempotency_key,
 * occurred_at) — consumes units and returns the new balance.  0.1.0's
 * declaration has the first three arguments only.
 */
Datum
record_usage(PG_FUNCTION_ARGS)
{
	pg_uuid_t	customer_id;
	pg_uuid_t	meter_id;
	int64		units;
	char	   *key;
	bool		has_time = PG_NARGS() > 4 && !PG_ARGISNULL(4);
	TimestampTz occurred_at = has_time ? PG_GETARG_TIMESTAMPTZ(4) : 0;
	int64		balance;

	BenefitsRequireArgument(fcinfo, 0, "customer_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 1, "meter_id", ERRCODE_INVALID_PARAMETER_VALUE);
	customer_id = *PG_GETARG_UUID_P(0);
	meter_id = *PG_GETARG_UUID_P(1);
	units = UnitsArgument(fcinfo, 2, false);
	key = TextArgument(fcinfo, 3, "idempotency_key");
	if (has_time && (TIMESTAMP_NOT_FINITE(occurred_at) ||
					 occurred_at > GetCurrentTransactionStartTimestamp() + OCCURRED_AT_SKEW_USECS))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("occurred_at must be a finite time no later than 5 minutes from now"),
				errdetail("occurred_at is %s.", timestamptz_to_str(occurred_at)));

	BenefitsSpiConnect();
	if (key)
	{
		pg_uuid_t	organization_id;
		int64		pending;

		MeterCheckCustomer(customer_id, meter_id, &organization_id);
		MeterLockRow(organization_id, customer_id, meter_id, &pending);
		if (UsageByKey(customer_id, meter_id, key, units, has_time, occurred_at, &balance))
		{
			SPI_finish();
			PG_RETURN_INT64(balance);
		}
	}
	balance = Consume(customer_id, meter_id, units, key, has_time, occurred_at);
	SPI_finish();
	PG_RETURN_INT64(balance);
}

/*
 * The adjustment made earlier with this key: checks its units and reason and
 * returns true with its balance, or false when the key is new.
 */
static bool
AdjustmentByKey(pg_uuid_t customer_id, pg_uuid_t meter_id, const char *key, int64 units,
				const char *reason, int64 *balance)
{
	static SPIPlanPtr plan;
	HeapTuple	row = RowByKey(&plan,
							   "SELECT units, balance_after, coalesce(note, '') AS note FROM benefits.meter_credits"
							   " WHERE customer_id = $1 AND meter_id = $2 AND idempotency_key = $3",
							   customer_id, meter_id, key);
	int64		first_units;
	char	   *first_reason;

	if (row == NULL)
		return false;
	first_units = DatumGetInt64(KeyedColumn(row, "units"));
	first_reason = TextDatumGetCString(KeyedColumn(row, "note"));
	if (first_units != units)
		KeyConflict(key, "units", psprintf(INT64_FORMAT, first_units), psprintf(INT64_FORMAT, units));
	if (strcmp(first_reason, reason) != 0)
		KeyConflict(key, "reason", quote_literal_cstr(first_reason), quote_literal_cstr(reason));
	*balance = DatumGetInt64(KeyedColumn(row, "balance_after"));
	return true;
}

/*
 * SQL: benefits.adjust_credits(customer_id, meter_id, units, reason,
 * idempotency_key) — a top-up (units > 0, a lot of its own that no renewal
 * expires) or a correction (units < 0, taken like usage); the new balance.
 */
Datum
adjust_credits(PG_FUNCTION_ARGS)
{
	pg_uuid_t	customer_id;
	pg_uuid_t	meter_id;
	pg_uuid_t	organization_id;
	int64		units;
	char	   *reason;
	char	   *key;
	bool		allow_overage;
	int64		balance;

	BenefitsRequireArgument(fcinfo, 0, "customer_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 1, "meter_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 3, "reason", ERRCODE_INVALID_PARAMETER_VALUE);
	customer_id = *PG_GETARG_UUID_P(0);
	meter_id = *PG_GETARG_UUID_P(1);
	units = UnitsArgument(fcinfo, 2, true);
	if (units == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("units must not be zero"),
				errhint("Positive units top up the balance, negative units correct it."));
	reason = TextArgument(fcinfo, 3, "reason");
	key = TextArgument(fcinfo, 4, "idempotency_key");

	BenefitsSpiConnect();
	allow_overage = MeterCheckCustomer(customer_id, meter_id, &organization_id);
	balance = MeterLock(organization_id, customer_id, meter_id);
	if (key && AdjustmentByKey(customer_id, meter_id, key, units, reason, &balance))
	{
		SPI_finish();
		PG_RETURN_INT64(balance);
	}
	if (units > 0)
	{
		MeterCredit credit = {0};

		if (balance > MAX_SAFE_INTEGER - units)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("units would take the balance above " INT64_FORMAT, MAX_SAFE_INTEGER),
					errdetail("The balance is " INT64_FORMAT " and units is " INT64_FORMAT ".", balance, units));
		credit.organization_id = organization_id;
		credit.customer_id = customer_id;
		credit.meter_id = meter_id;
		credit.source = "top_up";
		credit.units = units;
		credit.idempotency_key = key;
		credit.note = reason;
		balance = MeterCreditLot(&credit);
	}
	else
	{
		bool		has_threshold;
		int64		threshold;

		if (!allow_overage && balance < -units)
			ereport(ERROR,
					errcode(ERRCODE_CHECK_VIOLATION),
					errmsg("meter balance is insufficient"),
					errdetail("The balance is " INT64_FORMAT " and the correction removes " INT64_FORMAT " units.",
							  balance, -units),
					errhint("A correction never takes a balance below zero unless the meter allows overage."));
		if (balance < -MAX_SAFE_INTEGER - units)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("units would take the balance below " INT64_FORMAT, -MAX_SAFE_INTEGER),
					errdetail("The balance is " INT64_FORMAT " and units is " INT64_FORMAT ".", balance, units));
		balance = MeterDebit(organization_id, customer_id, meter_id, -units, key, reason,
							 &has_threshold, &threshold);
		CheckLowBalance(organization_id, customer_id, meter_id, balance, -units, has_threshold, threshold);
	}
	SPI_finish();
	PG_RETURN_INT64(balance);
}

/*
 * AFTER DELETE on benefits.meter_balances (trigger usage_cascade): the
 * balance's usage rows go with it, as a foreign key would cascade them,
 * without a foreign key check on every usage recorded.
 */
Datum
meter_balance_deleted(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	TriggerData *trigdata = TriggerGuard(fcinfo, "meter_balance_deleted", FIRES_AFTER_ROW, "meter_balances");
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2];

	values[0] = TriggerColumn(trigdata, trigdata->tg_trigtuple, "customer_id");
	values[1] = TriggerColumn(trigdata, trigdata->tg_trigtuple, "meter_id");
	BenefitsSpiConnect();
	BenefitsExec(BenefitsPlan(&plan,
							  "DELETE FROM benefits.meter_usage WHERE customer_id = $1 AND meter_id = $2",
							  2, types),
				 values, NULL, false, 0);
	SPI_finish();
	return PointerGetDatum(NULL);
}
