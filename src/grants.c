/*
 * grants.c — the grant lifecycle: manual grants and revokes, the state
 * machine trigger on benefits.grants, and GrantApply/GrantRevoke which every
 * other path (subscriptions, orders, catalog changes) goes through.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "grants.h"
#include "trigger_guard.h"

PG_FUNCTION_INFO_V1(grant_benefit);
PG_FUNCTION_INFO_V1(revoke_benefit);
PG_FUNCTION_INFO_V1(grants_state_guard);

static SPIPlanPtr LockCustomerPlan;
static SPIPlanPtr LoadTargetPlan;
static SPIPlanPtr FindGrantPlan;
static SPIPlanPtr FindGrantPlan_0_1;	/* under 0.1.0's schema, which keeps no grant */
static SPIPlanPtr InsertGrantPlan;
static SPIPlanPtr UpdateGrantPlan;
static SPIPlanPtr UpdateGrantRowPlan;
static SPIPlanPtr InsertGrantRowPlan;
static SPIPlanPtr LoadGrantPlan;
static SPIPlanPtr OtherLiveGrantPlan;
static SPIPlanPtr RevokeGrantPlan;
static SPIPlanPtr GrantRowPlan;
static SPIPlanPtr GrantRecordPlan;
static SPIPlanPtr ManualGrantPlan;
static SPIPlanPtr ManualGrantPlan_0_1;

/* The value of column `col` (1-based) of the first SPI result row. */
static Datum
ResultValue(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

static char *
ResultText(int col)
{
	bool		isnull;
	Datum		value = ResultValue(col, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/* A jsonb column of the first result row, copied out of the SPI tuple. */
static Jsonb *
ResultJsonb(int col)
{
	bool		isnull;
	Datum		value = ResultValue(col, &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(value);
}

/* A nullable uuid column of the first result row; false when NULL. */
static bool
OptionalResultUuid(int col, pg_uuid_t *uuid)
{
	bool		isnull;
	Datum		value = ResultValue(col, &isnull);

	if (!isnull)
		*uuid = DatumGetUuid(value);
	return !isnull;
}

/*
 * Lock the customer row for the rest of the transaction and return the
 * customer's organization.  Every grant change of one customer takes this
 * lock first, which serializes them: two subscriptions of the same customer
 * changing at once cannot both decide that the other still holds a benefit.
 */
pg_uuid_t
GrantLockCustomer(pg_uuid_t customer_id)
{
	Oid			argtypes[] = {UUIDOID};
	Datum		values[] = {UuidGetDatum(&customer_id)};
	SPIPlanPtr	plan = BenefitsPlan(&LockCustomerPlan,
									"SELECT organization_id FROM benefits.customers "
									"WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
									1, argtypes);
	bool		isnull;

	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock customer");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customer_id %s does not exist", BenefitsUuidText(&customer_id))));
	return DatumGetUuid(ResultValue(1, &isnull));
}

/*
 * Locks many customers (a uuid[] datum) for the rest of the transaction, in
 * id order, so two batches over the same customers wait for each other
 * instead of deadlocking.  Missing or deleted ids are passed over: the
 * caller reads the locked rows in a statement of its own, whose snapshot,
 * taken after the locks were granted, sees what the lock holders committed.
 */
void
GrantLockCustomers(Datum customer_ids)
{
	static SPIPlanPtr plan;
	Oid			types[] = {UUIDARRAYOID};

	if (SPI_execute_plan(BenefitsPlan(&plan,
									  "SELECT 1 FROM benefits.customers"
									  " WHERE id IN (SELECT pg_catalog.unnest($1::uuid[])) AND deleted_at IS NULL"
									  " ORDER BY id FOR NO KEY UPDATE",
									  1, types),
						 &customer_ids, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock customers");
}

/* SPI argument for an optional uuid, with its null flag. */
static Datum
OptionalUuid(const pg_uuid_t *uuid, char *null_flag)
{
	*null_flag = uuid ? ' ' : 'n';
	return uuid ? UuidGetDatum(uuid) : (Datum) 0;
}

/*
 * Lock the customer and read the benefit, then read the grant, if any, in a
 * second statement: under READ COMMITTED that statement's snapshot is taken
 * after the lock was granted, so it sees every grant change committed by the
 * transaction we waited for.  Fills the change and returns the grant's
 * current state, or NULL when there is none.
 */
static char *
LoadGrantTarget(GrantChange *change, Datum *args, char *nulls)
{
	static const Oid types[] = {UUIDOID, UUIDOID, UUIDOID, UUIDOID};
	bool		isnull;
	Datum		benefit_organization;
	char	   *state;

	if (SPI_execute_plan(BenefitsPlan(&LoadTargetPlan,
									  "SELECT c.organization_id, b.organization_id, b.type, b.properties, "
									  " b.deleted_at IS NOT NULL "
									  "FROM benefits.customers c LEFT JOIN benefits.benefits b ON b.id = $2 "
									  "WHERE c.id = $1 AND c.deleted_at IS NULL "
									  "FOR NO KEY UPDATE OF c",
									  2, types),
						 args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not load grant target");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customer_id %s does not exist", BenefitsUuidText(&change->customer_id))));
	change->organization_id = DatumGetUuid(ResultValue(1, &isnull));

	benefit_organization = ResultValue(2, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefit_id %s does not exist", BenefitsUuidText(&change->benefit_id))));
	if (DatumGetBool(ResultValue(5, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefit %s is deleted", BenefitsUuidText(&change->benefit_id)),
				 errdetail("A deleted benefit cannot be granted.")));
	if (memcmp(DatumGetUUIDP(benefit_organization), &change->organization_id, sizeof(pg_uuid_t)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefit %s belongs to another organization than customer %s",
						BenefitsUuidText(&change->benefit_id), BenefitsUuidText(&change->customer_id))));
	change->benefit_type = ResultText(3);
	change->benefit_properties = ResultJsonb(4);

#define FIND_GRANT_SQL \
	"SELECT id, state, properties FROM benefits.grants " \
	"WHERE customer_id = $1 AND benefit_id = $2 " \
	"AND subscription_id IS NOT DISTINCT FROM $3 " \
	"AND order_id IS NOT DISTINCT FROM $4 "
	if (SPI_execute_plan(BenefitsGrantsKeepHistory()
						 ? BenefitsPlan(&FindGrantPlan,
										FIND_GRANT_SQL "AND " GRANT_NOT_KEPT_SQL, 4, types)
						 : BenefitsPlan(&FindGrantPlan_0_1, FIND_GRANT_SQL, 4, types),
						 args, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up grant");
	if (SPI_processed == 0)
		return NULL;
	state = ResultText(2);
	change->grant_id = DatumGetUuid(ResultValue(1, &isnull));
	change->grant_properties = ResultJsonb(3);
	return state;
}

/*
 * Writes a grant whose target is loaded (customer locked, benefit and any
 * existing grant read): state is the existing grant's, or NULL when there is
 * none.  A live grant is left as it is.  When row is not NULL it receives
 * the grant as a benefits.grants composite, allocated in the caller's memory
 * context.
 */
static pg_uuid_t
GrantWrite(GrantChange *change, const char *state, bool *changed, Datum *row)
{
	static const Oid types[] = {UUIDOID, UUIDOID, UUIDOID, UUIDOID, UUIDOID, UUIDOID,
	TEXTOID, JSONBOID, JSONBOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	int			rc;
	bool		isnull;

	if (state != NULL && strcmp(state, "revoked") != 0)
	{
		*changed = false;
		if (row != NULL)
		{
			static const Oid id_type[] = {UUIDOID};
			Datum		id = UuidGetDatum(&change->grant_id);

			if (SPI_execute_plan(BenefitsPlan(&GrantRecordPlan,
											  "SELECT g FROM benefits.grants g WHERE g.id = $1",
											  1, id_type),
								 &id, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "could not read grant");
			*row = SPI_datumTransfer(ResultValue(1, &isnull), false, -1);
		}
		return change->grant_id;
	}
	if (state == NULL)
		change->grant_id = BenefitsRandomUuid();

	BenefitTypeGrant(change);

	values[0] = UuidGetDatum(&change->grant_id);
	values[1] = UuidGetDatum(&change->organization_id);
	values[2] = UuidGetDatum(&change->customer_id);
	values[3] = UuidGetDatum(&change->benefit_id);
	values[4] = OptionalUuid(change->has_subscription ? &change->subscription_id : NULL, &nulls[4]);
	values[5] = OptionalUuid(change->has_order ? &change->order_id : NULL, &nulls[5]);
	values[6] = CStringGetTextDatum(change->new_state);
	values[7] = change->new_properties ? JsonbPGetDatum(change->new_properties) : (Datum) 0;
	nulls[7] = change->new_properties ? ' ' : 'n';
	values[8] = change->error ? JsonbPGetDatum(change->error) : (Datum) 0;
	nulls[8] = change->error ? ' ' : 'n';

	/* The same two statements, with RETURNING only when the row is wanted. */
#define UPDATE_GRANT_SQL \
	"UPDATE benefits.grants g SET state = $7, properties = coalesce($8, properties), error = $9 WHERE id = $1"
#define INSERT_GRANT_SQL \
	"INSERT INTO benefits.grants AS g (id, organization_id, customer_id, benefit_id, subscription_id, " \
	"order_id, state, properties, error) VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, '{}'), $9)"
	if (state != NULL)
		plan = row != NULL
			? BenefitsPlan(&UpdateGrantRowPlan, UPDATE_GRANT_SQL " RETURNING g", 9, types)
			: BenefitsPlan(&UpdateGrantPlan, UPDATE_GRANT_SQL, 9, types);
	else
		plan = row != NULL
			? BenefitsPlan(&InsertGrantRowPlan, INSERT_GRANT_SQL " RETURNING g", 9, types)
			: BenefitsPlan(&InsertGrantPlan, INSERT_GRANT_SQL, 9, types);
#undef UPDATE_GRANT_SQL
#undef INSERT_GRANT_SQL
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc < 0 || SPI_processed != 1)
		elog(ERROR, "could not write grant");
	if (row != NULL)
		*row = SPI_datumTransfer(ResultValue(1, &isnull), false, -1);
	*changed = true;
	return change->grant_id;
}

/* The work of GrantApply; row as for GrantWrite. */
static pg_uuid_t
GrantApplyInternal(pg_uuid_t customer_id, pg_uuid_t benefit_id,
				   const pg_uuid_t *subscription_id, const pg_uuid_t *order_id,
				   bool *changed, Datum *row)
{
	GrantChange change = {0};
	Datum		target_args[4];
	char		target_nulls[4] = {' ', ' ', ' ', ' '};
	char	   *state;

	change.customer_id = customer_id;
	change.benefit_id = benefit_id;
	change.has_subscription = subscription_id != NULL;
	change.has_order = order_id != NULL;
	if (subscription_id)
		change.subscription_id = *subscription_id;
	if (order_id)
		change.order_id = *order_id;

	target_args[0] = UuidGetDatum(&customer_id);
	target_args[1] = UuidGetDatum(&benefit_id);
	target_args[2] = OptionalUuid(subscription_id, &target_nulls[2]);
	target_args[3] = OptionalUuid(order_id, &target_nulls[3]);
	state = LoadGrantTarget(&change, target_args, target_nulls);
	return GrantWrite(&change, state, changed, row);
}

pg_uuid_t
GrantApply(pg_uuid_t customer_id, pg_uuid_t benefit_id,
		   const pg_uuid_t *subscription_id, const pg_uuid_t *order_id,
		   bool *changed)
{
	return GrantApplyInternal(customer_id, benefit_id, subscription_id, order_id, changed, NULL);
}

/*
 * GrantApply for a caller that has already locked the customer and read the
 * benefit (type, properties, organization) and the grant of this source,
 * each in a statement started after the lock: the engine reads them for all
 * of a product's benefits in one query instead of two per benefit.
 */
pg_uuid_t
GrantApplyLoaded(GrantChange *change, const char *state, bool *changed)
{
	return GrantWrite(change, state, changed, NULL);
}

/*
 * The revoke of a grant whose change is loaded under the customer's lock
 * (last_holder included): the type's revoke, then the grant's row.  Shared
 * by GrantRevoke and GrantRevokeMany.
 */
static void
GrantRevokeLoaded(GrantChange *change)
{
	Oid			revoke_types[] = {UUIDOID, JSONBOID};
	Datum		revoke_values[2];
	char		revoke_nulls[2];

	BenefitTypeRevoke(change);

	revoke_values[0] = UuidGetDatum(&change->grant_id);
	revoke_values[1] = change->new_properties ? JsonbPGetDatum(change->new_properties) : (Datum) 0;
	revoke_nulls[0] = ' ';
	revoke_nulls[1] = change->new_properties ? ' ' : 'n';
	if (SPI_execute_plan(BenefitsPlan(&RevokeGrantPlan,
									  "UPDATE benefits.grants SET state = 'revoked', "
									  "properties = coalesce($2, properties) WHERE id = $1",
									  2, revoke_types),
						 revoke_values, revoke_nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not revoke grant");
}

bool
GrantRevoke(pg_uuid_t grant_id)
{
	GrantChange change = {0};
	Oid			types[] = {UUIDOID};
	Datum		values[] = {UuidGetDatum(&grant_id)};
	bool		isnull;
	char	   *state;

	/* Find the customer first: its lock comes before the grant's. */
	if (SPI_execute_plan(BenefitsPlan(&LoadGrantPlan,
									  "SELECT customer_id FROM benefits.grants WHERE id = $1",
									  1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up grant");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grant %s does not exist", BenefitsUuidText(&grant_id))));
	change.customer_id = DatumGetUuid(ResultValue(1, &isnull));
	change.organization_id = GrantLockCustomer(change.customer_id);

	if (SPI_execute_plan(BenefitsPlan(&GrantRowPlan,
									  "SELECT g.state, g.benefit_id, g.subscription_id, g.order_id, "
									  "g.properties, b.type, b.properties "
									  "FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id "
									  "WHERE g.id = $1 FOR UPDATE OF g",
									  1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed == 0)
		elog(ERROR, "could not lock grant");
	state = ResultText(1);
	if (strcmp(state, "revoked") == 0)
		return false;

	change.grant_id = grant_id;
	change.benefit_id = DatumGetUuid(ResultValue(2, &isnull));
	change.has_subscription = OptionalResultUuid(3, &change.subscription_id);
	change.has_order = OptionalResultUuid(4, &change.order_id);
	change.grant_properties = ResultJsonb(5);
	change.benefit_type = ResultText(6);
	change.benefit_properties = ResultJsonb(7);

	{
		Oid			other_types[] = {UUIDOID, UUIDOID, UUIDOID};
		Datum		other_values[] = {UuidGetDatum(&change.customer_id),
									  UuidGetDatum(&change.benefit_id), values[0]};

		if (SPI_execute_plan(BenefitsPlan(&OtherLiveGrantPlan,
										  "SELECT 1 FROM benefits.grants WHERE customer_id = $1 "
										  "AND benefit_id = $2 AND id <> $3 AND state <> 'revoked' LIMIT 1",
										  3, other_types),
							 other_values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up other grants");
		change.last_holder = SPI_processed == 0;
	}

	GrantRevokeLoaded(&change);
	return true;
}

/* A uuid column of an SPI result row, by name; false when NULL. */
static bool
ResultUuidNamed(HeapTuple row, TupleDesc desc, const char *name, pg_uuid_t *uuid)
{
	bool		isnull;
	Datum		value = SPI_getbinval(row, desc, SPI_fnumber(desc, name), &isnull);

	if (!isnull)
		*uuid = DatumGetUuid(value);
	return !isnull;
}

/* A jsonb column of an SPI result row, by name, copied out; NULL when NULL. */
static Jsonb *
ResultJsonbNamed(HeapTuple row, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		value = SPI_getbinval(row, desc, SPI_fnumber(desc, name), &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(value);
}

/*
 * Locks the customers of the grants, each once and in id order (as
 * GrantLockCustomer: a deleted customer is an error naming it).
 */
static void
LockGrantCustomers(const pg_uuid_t *grant_ids, int n)
{
	static SPIPlanPtr plan;
	Oid			types[] = {UUIDARRAYOID};
	Datum		ids = BenefitsUuidArray(grant_ids, n);
	int			ncustomers;
	pg_uuid_t  *customers;

	BenefitsExec(BenefitsGenericPlan(&plan,
									 "SELECT DISTINCT g.customer_id FROM benefits.grants g"
									 " WHERE g.id = ANY ($1) ORDER BY g.customer_id",
									 1, types),
				 &ids, NULL, false, 0);
	ncustomers = (int) SPI_processed;
	customers = palloc(sizeof(pg_uuid_t) * (ncustomers + 1));
	for (int i = 0; i < ncustomers; i++)
		ResultUuidNamed(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, "customer_id", &customers[i]);
	for (int i = 0; i < ncustomers; i++)
		GrantLockCustomer(customers[i]);
}

/*
 * GrantRevoke for the live grants of one source (a subscription or an
 * order), in the order given: the customers are locked once, and the grants,
 * their benefits and whether another live grant of the same benefit remains
 * for the customer are read in one statement after the locks, instead of
 * four statements per grant.  The grants of one source are of distinct
 * (customer, benefit) pairs (grants_source_key), so no revoke in the batch
 * changes another's last_holder.  Each grant's type revoke and row are still
 * written in turn, so a type that looks at the customer's other grants (a
 * repository two benefits give) sees the earlier revokes.  Fills revoked
 * with the grants that were live, in order, and returns how many.
 */
int
GrantRevokeMany(const pg_uuid_t *grant_ids, int n, pg_uuid_t *revoked)
{
	static SPIPlanPtr plan;
	Oid			types[] = {UUIDARRAYOID};
	Datum		ids;
	GrantChange *changes;
	int			nchanges;

	if (n == 0)
		return 0;
	LockGrantCustomers(grant_ids, n);
	ids = BenefitsUuidArray(grant_ids, n);
	BenefitsExec(BenefitsGenericPlan(&plan,
									 "SELECT g.id, g.organization_id, g.customer_id, g.benefit_id,"
									 "       g.subscription_id, g.order_id, g.properties AS grant_properties,"
									 "       b.type AS benefit_type, b.properties AS benefit_properties,"
									 "       NOT EXISTS (SELECT 1 FROM benefits.grants o"
									 "                    WHERE o.customer_id = g.customer_id AND o.benefit_id = g.benefit_id"
									 "                      AND o.id <> g.id AND o.state <> 'revoked') AS last_holder"
									 "  FROM pg_catalog.unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)"
									 "  JOIN benefits.grants g ON g.id = u.id"
									 "  JOIN benefits.benefits b ON b.id = g.benefit_id"
									 " WHERE g.state <> 'revoked'"
									 " ORDER BY u.n FOR UPDATE OF g",
									 1, types),
				 &ids, NULL, false, 0);
	nchanges = (int) SPI_processed;
	changes = palloc0(sizeof(GrantChange) * (nchanges + 1));
	for (int i = 0; i < nchanges; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		GrantChange *change = &changes[i];
		bool		isnull;

		ResultUuidNamed(row, desc, "id", &change->grant_id);
		ResultUuidNamed(row, desc, "organization_id", &change->organization_id);
		ResultUuidNamed(row, desc, "customer_id", &change->customer_id);
		ResultUuidNamed(row, desc, "benefit_id", &change->benefit_id);
		change->has_subscription = ResultUuidNamed(row, desc, "subscription_id", &change->subscription_id);
		change->has_order = ResultUuidNamed(row, desc, "order_id", &change->order_id);
		change->grant_properties = ResultJsonbNamed(row, desc, "grant_properties");
		change->benefit_type = SPI_getvalue(row, desc, SPI_fnumber(desc, "benefit_type"));
		change->benefit_properties = ResultJsonbNamed(row, desc, "benefit_properties");
		change->last_holder = DatumGetBool(SPI_getbinval(row, desc, SPI_fnumber(desc, "last_holder"), &isnull));
	}
	for (int i = 0; i < nchanges; i++)
	{
		GrantRevokeLoaded(&changes[i]);
		revoked[i] = changes[i].grant_id;
	}
	return nchanges;
}

/*
 * grant_benefit(customer_id, benefit_id): a manual grant, neither through a
 * subscription nor an order.  Returns the grant row.
 */
Datum
grant_benefit(PG_FUNCTION_ARGS)
{
	bool		changed;
	Datum		row;

	BenefitsRequireArgument(fcinfo, 0, "customer_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 1, "benefit_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);

	BenefitsSpiConnect();
	{
		pg_uuid_t	grant_id = GrantApplyInternal(*PG_GETARG_UUID_P(0), *PG_GETARG_UUID_P(1),
												  NULL, NULL, &changed, &row);

		if (changed)
			EventsGrantApplied(grant_id);
	}
	SPI_finish();
	PG_RETURN_DATUM(row);
}

/* Revokes one grant and writes benefit_grant.revoked when it was live. */
void
GrantRevokeReported(pg_uuid_t grant_id)
{
	if (GrantRevoke(grant_id))
		EventsEnqueueGrant(grant_id, EVENT_GRANT_REVOKED, NULL);
}

/*
 * revoke_benefit(customer_id, benefit_id): undo a manual grant.  Grants held
 * through subscriptions and orders follow those and are not touched.
 */
Datum
revoke_benefit(PG_FUNCTION_ARGS)
{
	Oid			types[] = {UUIDOID, UUIDOID};
	Datum		values[2];
	bool		isnull;

	BenefitsRequireArgument(fcinfo, 0, "customer_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 1, "benefit_id", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	BenefitsSpiConnect();
	GrantLockCustomer(*PG_GETARG_UUID_P(0));
#define MANUAL_GRANT_SQL \
	"SELECT id FROM benefits.grants WHERE customer_id = $1 AND benefit_id = $2 " \
	"AND subscription_id IS NULL AND order_id IS NULL "
	if (SPI_execute_plan(BenefitsGrantsKeepHistory()
						 ? BenefitsPlan(&ManualGrantPlan, MANUAL_GRANT_SQL "AND " GRANT_NOT_KEPT_SQL, 2, types)
						 : BenefitsPlan(&ManualGrantPlan_0_1, MANUAL_GRANT_SQL, 2, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up grant");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("customer %s has no manual grant of benefit %s",
						BenefitsUuidText(PG_GETARG_UUID_P(0)), BenefitsUuidText(PG_GETARG_UUID_P(1))),
				 errhint("Grants held through a subscription or an order are revoked by changing it.")));
	GrantRevokeReported(DatumGetUuid(ResultValue(1, &isnull)));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Whether a grant may move from one state to another.  The lifecycle is
 * created -> active -> revoked; a grant may also be revoked before its
 * provider confirmed it (created -> revoked), and a revoked grant is granted
 * again (revoked -> active, or revoked -> created while a provider has yet to
 * confirm).  An active grant never goes back to created.
 */
static bool
GrantTransitionAllowed(const char *from, const char *to)
{
	if (strcmp(from, to) == 0)
		return true;
	if (strcmp(from, "created") == 0)
		return strcmp(to, "active") == 0 || strcmp(to, "revoked") == 0;
	if (strcmp(from, "active") == 0)
		return strcmp(to, "revoked") == 0;
	if (strcmp(from, "revoked") == 0)
		return strcmp(to, "active") == 0 || strcmp(to, "created") == 0;
	return false;
}

/*
 * BEFORE INSERT OR UPDATE trigger on benefits.grants: rejects any state
 * change outside the lifecycle, whoever writes the table, and keeps
 * granted_at, revoked_at and modified_at true to the state.
 */
Datum
grants_state_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	char	   *old_state = NULL;
	char	   *new_state;
	int			cols[3];
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			ncols = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	trigdata = TriggerGuard(fcinfo, "grants_state_guard", FIRES_BEFORE_ROW, "grants");
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("grants_state_guard must run BEFORE INSERT OR UPDATE FOR EACH ROW")));

	tupdesc = trigdata->tg_relation->rd_att;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		tuple = trigdata->tg_newtuple;
		old_state = TextDatumGetCString(TriggerColumn(trigdata, trigdata->tg_trigtuple, "state"));
	}
	else
		tuple = trigdata->tg_trigtuple;
	new_state = TextDatumGetCString(TriggerColumn(trigdata, tuple, "state"));

	if (old_state == NULL)
	{
		if (strcmp(new_state, "revoked") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("a grant cannot be created in state \"revoked\"")));
	}
	else if (!GrantTransitionAllowed(old_state, new_state))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("grant state cannot change from \"%s\" to \"%s\"", old_state, new_state),
				 errdetail("Allowed: created to active or revoked, active to revoked, revoked to active or created.")));

	if (old_state != NULL)
	{
		cols[ncols] = SPI_fnumber(tupdesc, "modified_at");
		values[ncols++] = TimestampTzGetDatum(now);
	}
	if (strcmp(new_state, "active") == 0 && (old_state == NULL || strcmp(old_state, "active") != 0))
	{
		cols[ncols] = SPI_fnumber(tupdesc, "granted_at");
		values[ncols++] = TimestampTzGetDatum(now);
	}
	if (strcmp(new_state, "revoked") == 0 && strcmp(old_state, "revoked") != 0)
	{
		cols[ncols] = SPI_fnumber(tupdesc, "revoked_at");
		values[ncols++] = TimestampTzGetDatum(now);
	}
	else if (old_state != NULL && strcmp(old_state, "revoked") == 0 && strcmp(new_state, "revoked") != 0)
	{
		cols[ncols] = SPI_fnumber(tupdesc, "revoked_at");
		nulls[ncols] = true;
		values[ncols++] = (Datum) 0;
	}

	if (ncols > 0)
		tuple = heap_modify_tuple_by_cols(tuple, tupdesc, ncols, cols, values, nulls);
	return PointerGetDatum(tuple);
}
