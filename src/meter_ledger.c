/*
 * meter_ledger.c — credit lots: every credit on a meter is a lot
 * (benefits.meter_lots) with its source and, where it has one, the time it
 * expires; usage takes lots that expire soonest first, then the rest in the
 * order received.
 *
 * The balance row (benefits.meter_balances) stays the one place a balance is
 * read and usage is recorded: record_usage updates that row alone.  The
 * usage it records is taken from the lots later, at the next change of the
 * lots (settling: consumed - settled_consumed distributed in consumption
 * order), which gives the same lots as taking it at once, because lots only
 * change under the balance row's lock and every change settles first.  After
 * settling the lots left add up to the balance, or to zero when the balance
 * is below zero (overage): a new lot then first pays that debt.
 *
 * Concurrency: MeterLock takes the balance row's lock (an upsert, so a
 * concurrent first credit or usage waits or is waited for); every other
 * function here runs after it in the same transaction, each statement with a
 * fresh snapshot, so it sees what committed before the lock was granted.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "benefits.h"
#include "meter_ledger.h"

/* Whether benefits.meter_lots exists (a 0.1.0 schema has no lots). */
bool
MeterLotsInstalled(void)
{
	Oid			schema = get_namespace_oid(BENEFITS_SCHEMA, true);

	return OidIsValid(schema) && OidIsValid(get_relname_relid("meter_lots", schema));
}

/* A bigint column of the last SPI result's first row (0 when null or no row). */
static int64
ResultInt64(const char *column)
{
	bool		isnull;
	Datum		d;

	if (SPI_processed == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
					  SPI_fnumber(SPI_tuptable->tupdesc, column), &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/* A text argument of a statement, or its null. */
static Datum
TextOrNull(const char *value, char *null)
{
	*null = value ? ' ' : 'n';
	return value ? CStringGetTextDatum(value) : (Datum) 0;
}

/*
 * Takes usage not yet taken, plus extra units, from the lots in consumption
 * order, and marks the usage taken.  The balance row must be locked.
 */
static void
Settle(pg_uuid_t customer_id, pg_uuid_t meter_id, int64 extra)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDOID, INT8OID};
	Datum		values[3] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id), Int64GetDatum(extra)};

	BenefitsExec(BenefitsPlan(&plan,
							  "WITH d AS ("
							  "  SELECT m.consumed - m.settled_consumed + $3 AS due FROM benefits.meter_balances m"
							  "   WHERE m.customer_id = $1 AND m.meter_id = $2),"
							  " l AS ("
							  "  SELECT x.id, x.remaining,"
							  "         pg_catalog.sum(x.remaining) OVER (ORDER BY x.expires_at NULLS LAST, x.id) - x.remaining AS before"
							  "    FROM benefits.meter_lots x"
							  "   WHERE x.customer_id = $1 AND x.meter_id = $2 AND x.remaining > 0),"
							  " u AS ("
							  "  UPDATE benefits.meter_lots x SET remaining = x.remaining - LEAST(l.remaining, d.due - l.before)"
							  "    FROM l, d WHERE x.id = l.id AND d.due > l.before RETURNING x.id)"
							  "UPDATE benefits.meter_balances m SET settled_consumed = m.consumed"
							  " WHERE m.customer_id = $1 AND m.meter_id = $2",
							  3, types),
				 values, NULL, false, 0);
}

/* See meter_ledger.h: the lock every change of a balance starts with. */
int64
MeterLockRow(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id, int64 *pending)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, UUIDOID, UUIDOID};
	Datum		values[3] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id), UuidGetDatum(&organization_id)};

	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.meter_balances AS m (customer_id, meter_id, organization_id)"
							  " VALUES ($1, $2, $3)"
							  " ON CONFLICT (customer_id, meter_id) DO UPDATE SET modified_at = m.modified_at"
							  " RETURNING m.balance, m.consumed - m.settled_consumed AS pending",
							  3, types),
				 values, NULL, false, 0);
	*pending = ResultInt64("pending");
	return ResultInt64("balance");
}

/* See meter_ledger.h: the lock every change of lots starts with. */
int64
MeterLock(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id)
{
	int64		pending;
	int64		balance = MeterLockRow(organization_id, customer_id, meter_id, &pending);

	if (pending != 0)
		Settle(customer_id, meter_id, 0);
	return balance;
}

/* MeterLock for a batch grant, in one statement (and a settle per pending customer). */
void
MeterLockMany(pg_uuid_t organization_id, Datum customer_ids, pg_uuid_t meter_id)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDARRAYOID, UUIDOID, UUIDOID};
	Datum		values[3] = {customer_ids, UuidGetDatum(&meter_id), UuidGetDatum(&organization_id)};
	uint64		n;
	pg_uuid_t  *pending;

	BenefitsExec(BenefitsPlan(&plan,
							  "WITH l AS ("
							  "  INSERT INTO benefits.meter_balances AS m (customer_id, meter_id, organization_id)"
							  "  SELECT c, $2, $3 FROM pg_catalog.unnest($1::uuid[]) AS c"
							  "  ON CONFLICT (customer_id, meter_id) DO UPDATE SET modified_at = m.modified_at"
							  "  RETURNING m.customer_id, m.consumed <> m.settled_consumed AS pending)"
							  "SELECT customer_id FROM l WHERE pending",
							  3, types),
				 values, NULL, false, 0);
	n = SPI_processed;
	pending = palloc(sizeof(pg_uuid_t) * (n + 1));
	for (uint64 i = 0; i < n; i++)
		pending[i] = BenefitsResultUuid(i, SPI_fnumber(SPI_tuptable->tupdesc, "customer_id"));
	for (uint64 i = 0; i < n; i++)
		Settle(pending[i], meter_id, 0);
}

/* A credit: the balance, the lot (paying a debt first) and the ledger row in one statement. */
int64
MeterCreditLot(const MeterCredit *c)
{
	static SPIPlanPtr plan;
	Oid			types[10] = {UUIDOID, UUIDOID, UUIDOID, INT8OID, UUIDOID, INT8OID, TEXTOID,
	TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		values[10];
	char		nulls[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = UuidGetDatum(&c->customer_id);
	values[1] = UuidGetDatum(&c->meter_id);
	values[2] = UuidGetDatum(&c->organization_id);
	values[3] = Int64GetDatum(c->units);
	if (c->grant_id)
		values[4] = UuidGetDatum(c->grant_id);
	else
		nulls[4] = 'n';
	values[5] = Int64GetDatum(c->threshold);
	nulls[5] = c->has_threshold ? ' ' : 'n';
	values[6] = CStringGetTextDatum(c->source);
	values[7] = TimestampTzGetDatum(c->expires_at);
	nulls[7] = c->has_expiry ? ' ' : 'n';
	values[8] = TextOrNull(c->idempotency_key, &nulls[8]);
	values[9] = TextOrNull(c->note, &nulls[9]);
	BenefitsExec(BenefitsPlan(&plan,
							  "WITH b AS ("
							  "  UPDATE benefits.meter_balances m"
							  "     SET balance = m.balance + $4, credited = m.credited + $4,"
							  "         low_balance_threshold = GREATEST(m.low_balance_threshold, $6),"
							  "         modified_at = pg_catalog.now()"
							  "   WHERE m.customer_id = $1 AND m.meter_id = $2"
							  "  RETURNING m.balance, m.balance - $4 AS before),"
							  " lot AS ("
							  "  INSERT INTO benefits.meter_lots"
							  "         (organization_id, customer_id, meter_id, source, grant_id, units, remaining, expires_at)"
							  "  SELECT $3, $1, $2, $7, $5, $4, $4 - LEAST($4, GREATEST(-b.before, 0)), $8 FROM b"
							  "  RETURNING id),"
							  " l AS ("
							  "  INSERT INTO benefits.meter_credits (organization_id, customer_id, meter_id, grant_id, reason,"
							  "         units, balance_after, lot_id, idempotency_key, note)"
							  "  SELECT $3, $1, $2, $5, $7, $4, b.balance, lot.id, $9, $10 FROM b, lot)"
							  "SELECT balance FROM b",
							  10, types),
				 values, nulls, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "the meter balance row is not locked");
	return ResultInt64("balance");
}

/* Expiry at a renewal and removal at a revoke: only the grant's own lots. */
int64
MeterRemoveGrantLots(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
					 pg_uuid_t grant_id, const char *reason)
{
	static SPIPlanPtr plan;
	Oid			types[5] = {UUIDOID, UUIDOID, UUIDOID, UUIDOID, TEXTOID};
	Datum		values[5] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id), UuidGetDatum(&organization_id),
	UuidGetDatum(&grant_id), CStringGetTextDatum(reason)};

	BenefitsExec(BenefitsPlan(&plan,
							  "WITH o AS ("
							  "  SELECT x.id, x.remaining FROM benefits.meter_lots x"
							  "   WHERE x.grant_id = $4 AND x.customer_id = $1 AND x.meter_id = $2 AND x.remaining > 0"
							  "     AND CASE $5 WHEN 'expire' THEN x.source IN ('grant', 'cycle')"
							  "         ELSE x.id = (SELECT max(y.id) FROM benefits.meter_lots y"
							  "                       WHERE y.grant_id = $4 AND y.meter_id = $2) END),"
							  " t AS (UPDATE benefits.meter_lots x SET remaining = 0 FROM o WHERE x.id = o.id"
							  "       RETURNING o.remaining),"
							  " s AS (SELECT pg_catalog.sum(t.remaining)::bigint AS n FROM t),"
							  " b AS ("
							  "  UPDATE benefits.meter_balances m SET balance = m.balance - s.n, modified_at = pg_catalog.now()"
							  "    FROM s WHERE m.customer_id = $1 AND m.meter_id = $2 AND s.n > 0"
							  "  RETURNING m.balance, s.n),"
							  " l AS ("
							  "  INSERT INTO benefits.meter_credits"
							  "         (organization_id, customer_id, meter_id, grant_id, reason, units, balance_after)"
							  "  SELECT $3, $1, $2, $4, $5, -b.n, b.balance FROM b)"
							  "SELECT n FROM b",
							  5, types),
				 values, NULL, false, 0);
	return ResultInt64("n");
}

/* A negative adjustment, taken from the lots like usage. */
int64
MeterDebit(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
		   int64 units, const char *idempotency_key, const char *note, bool *has_threshold, int64 *threshold)
{
	bool		isnull;

	static SPIPlanPtr plan;
	Oid			types[6] = {UUIDOID, UUIDOID, UUIDOID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[6] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id), UuidGetDatum(&organization_id),
	Int64GetDatum(units), 0, 0};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	Settle(customer_id, meter_id, units);
	values[4] = TextOrNull(idempotency_key, &nulls[4]);
	values[5] = TextOrNull(note, &nulls[5]);
	BenefitsExec(BenefitsPlan(&plan,
							  "WITH b AS ("
							  "  UPDATE benefits.meter_balances m SET balance = m.balance - $4, modified_at = pg_catalog.now()"
							  "   WHERE m.customer_id = $1 AND m.meter_id = $2 RETURNING m.balance, m.low_balance_threshold),"
							  " l AS ("
							  "  INSERT INTO benefits.meter_credits"
							  "         (organization_id, customer_id, meter_id, reason, units, balance_after, idempotency_key, note)"
							  "  SELECT $3, $1, $2, 'adjustment', -$4, b.balance, $5, $6 FROM b)"
							  "SELECT balance, low_balance_threshold FROM b",
							  6, types),
				 values, nulls, false, 0);
	*threshold = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 SPI_fnumber(SPI_tuptable->tupdesc, "low_balance_threshold"), &isnull));
	*has_threshold = !isnull;
	return ResultInt64("balance");
}

/* The organization check of every meter function: no customer acts on another organization's meter. */
bool
MeterCheckCustomer(pg_uuid_t customer_id, pg_uuid_t meter_id, pg_uuid_t *organization_id)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UuidGetDatum(&customer_id), UuidGetDatum(&meter_id)};
	bool		isnull;
	bool		same_org;
	bool		allow_overage;

	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT mt.allow_overage, mt.organization_id,"
							  "       c.organization_id = mt.organization_id AS same_organization"
							  "  FROM benefits.meters mt LEFT JOIN benefits.customers c ON c.id = $1"
							  " WHERE mt.id = $2",
							  2, types),
				 values, NULL, true, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("meter_id %s does not exist", BenefitsUuidText(&meter_id)));
	allow_overage = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   SPI_fnumber(SPI_tuptable->tupdesc, "allow_overage"), &isnull));
	*organization_id = BenefitsResultUuid(0, SPI_fnumber(SPI_tuptable->tupdesc, "organization_id"));
	same_org = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  SPI_fnumber(SPI_tuptable->tupdesc, "same_organization"), &isnull));
	if (isnull || !same_org)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("customer_id %s does not exist in the meter's organization", BenefitsUuidText(&customer_id)));
	return allow_overage;
}

/* Reasons and idempotency keys, checked where they enter. */
void
MeterCheckText(const char *value, const char *name, int max)
{
	int			len = pg_mbstrlen(value);

	if (len == 0 || len > max)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be 1 to %d characters", name, max),
				errdetail("%s has %d characters.", name, len));
	for (const char *p = value; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("%s must not contain control characters", name));
}
