/*
 * type_license_keys.c — the license_keys benefit type.
 *
 * Properties: {prefix, expires, activations, limit_usage, key_per,
 * conditions_match}, normalized to
 *   {"prefix": text|null, "expires": null|{"ttl", "timeframe"},
 *    "activations": null|{"limit", "enable_customer_admin", "heartbeat"?},
 *    "limit_usage": int|null, "key_per"?: "grant", "conditions_match"?: "subset"}
 * (key_per and conditions_match appear only when not their defaults,
 * customer and exact).
 * With key_per = customer, a customer has one key per license benefit, shared
 * by every grant of that benefit: granting issues it, or restores it when it
 * was revoked (same key, same usage and activations), and the last revoke
 * revokes it.  With key_per = grant (Polar's), each grant has its own key,
 * revoked and restored with that grant.  Editing the
 * benefit gives its keys the new limits.  Keys, validation and activations
 * themselves are license_key.c, license_validate.c and license_admin.c.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "license.h"
#include "properties.h"

static SPIPlanPtr RevokeKeyPlan;

/* The benefit's upper-cased key prefix, or NULL. */
static char *
BenefitPrefix(Jsonb *properties)
{
	JsonbValue *prefix;

	if (!JB_ROOT_IS_OBJECT(properties))
		return NULL;
	prefix = getKeyJsonValueFromContainer(&properties->root, "prefix", 6, NULL);
	if (prefix == NULL || prefix->type != jbvString || prefix->val.string.len == 0)
		return NULL;
	return pnstrdup(prefix->val.string.val, prefix->val.string.len);
}

/*
 * Whether benefits.license_keys has 0.2.0's grant_id (keys per grant): a
 * database still at 0.1.0's schema issues customer keys only.
 */
static bool
KeysPerGrantSchema(void)
{
	return get_attnum(BenefitsRelid("license_keys"), "grant_id") != InvalidAttrNumber;
}

/*
 * The statement issuing one key, under either schema: with grant_column
 * ", grant_id" it records the owning grant ($8) when key_per is grant.
 */
#define ISSUE_KEY_SQL(grant_column, grant_value, target) \
	"INSERT INTO benefits.license_keys AS k " \
	"(organization_id, customer_id, benefit_id, key, display_key, " \
	" limit_usage, limit_activations, expires_at" grant_column ") " \
	"SELECT $1, $2, $3, $5, $6, " LICENSE_KEY_LIMITS_FROM("$4") ", " \
	LICENSE_KEY_EXPIRY_FROM("$4", "$7") grant_value " " \
	LICENSE_KEY_ON_CONFLICT(target) " " \
	"RETURNING jsonb_build_object('license_key_id', k.id, 'display_key', k.display_key)"

/*
 * Issue or restore the key and record it in the grant's properties.  Limits
 * come from the benefit; expiry (expires.ttl) applies to one-time purchases
 * and manual grants, while a subscription's key lives as long as its grant.
 * With key_per = customer (the default) every grant of the customer shares
 * one key; with key_per = grant each grant has its own, restored when that
 * grant is granted again.
 *
 * Another grant of a key that is still live changes neither its limits
 * (an administrator may have set them) nor shortens its life: a key without
 * expiry keeps none, and two expiries give the later one.  A restored key
 * takes the benefit's current limits and a fresh expiry.  A disabled key
 * stays disabled: that was an administrator's decision.
 */
static void
LicenseKeyGrant(GrantChange *change)
{
	static SPIPlanPtr customer_plan;
	static SPIPlanPtr holder_plan;
	Oid			types[] = {UUIDOID, UUIDOID, UUIDOID, JSONBOID, TEXTOID, TEXTOID, BOOLOID, UUIDOID};
	Datum		values[8];
	char	   *key = LicenseKeyGenerate(BenefitPrefix(change->benefit_properties));
	bool		isnull;
	SPIPlanPtr	plan;

	values[0] = UuidGetDatum(&change->organization_id);
	values[1] = UuidGetDatum(&change->customer_id);
	values[2] = UuidGetDatum(&change->benefit_id);
	values[3] = JsonbPGetDatum(change->benefit_properties);
	values[4] = CStringGetTextDatum(key);
	values[5] = CStringGetTextDatum(LicenseKeyDisplay(key));
	values[6] = BoolGetDatum(change->has_subscription);
	values[7] = UuidGetDatum(&change->grant_id);

	if (KeysPerGrantSchema())
		plan = BenefitsPlan(&holder_plan,
							ISSUE_KEY_SQL(", grant_id", ", " LICENSE_KEY_GRANT_FROM("$4", "$8"),
										  LICENSE_KEY_HOLDER_TARGET), 8, types);
	else
		plan = BenefitsPlan(&customer_plan, ISSUE_KEY_SQL("", "", LICENSE_KEY_CUSTOMER_TARGET), 8, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not issue license key");

	change->new_properties = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 1, &isnull));
	change->new_state = "active";
}

/* The batch statement issuing keys and writing grants, under either schema (see ISSUE_KEY_SQL). */
#define ISSUE_MANY_SQL(grant_column, grant_value, target) \
	"WITH k AS (INSERT INTO benefits.license_keys AS k " \
	" (organization_id, customer_id, benefit_id, key, display_key, " \
	"  limit_usage, limit_activations, expires_at" grant_column ") " \
	" SELECT $1, x.customer_id, $2, x.key, x.display_key, " \
	LICENSE_KEY_LIMITS_FROM("$7") ", " LICENSE_KEY_EXPIRY_FROM("$7", "$6 = 's'") grant_value " " \
	" FROM ROWS FROM (pg_catalog.unnest($4::uuid[]), pg_catalog.unnest($8::text[]), " \
	"  pg_catalog.unnest($9::text[]), pg_catalog.unnest($3::uuid[])) AS x(customer_id, key, display_key, grant_id) " \
	LICENSE_KEY_ON_CONFLICT(target) " RETURNING k.customer_id, k.id, k.display_key) " \
	GRANT_BATCH_INSERT("'active'", \
					   "pg_catalog.jsonb_build_object('license_key_id', k.id, " \
					   "'display_key', k.display_key)", "NULL") \
	"FROM " GRANT_BATCH_ROWS " JOIN k ON k.customer_id = u.customer_id"

/*
 * LicenseKeyGrant for a batch (grants_batch.c): the keys and the grants in
 * one statement, keys generated here as one at a time.  The batch's grant
 * ids are known before the statement, so keys per grant record theirs.
 */
static void
LicenseKeyGrantMany(GrantBatch *batch)
{
	static SPIPlanPtr customer_plan;
	static SPIPlanPtr holder_plan;
	Oid			types[GRANT_BATCH_NARGS + 3];
	Datum		values[GRANT_BATCH_NARGS + 3];
	Datum	   *keys = palloc(sizeof(Datum) * batch->n);
	Datum	   *displays = palloc(sizeof(Datum) * batch->n);
	char	   *prefix = BenefitPrefix(batch->benefit_properties);
	SPIPlanPtr	plan;

	for (int i = 0; i < batch->n; i++)
	{
		char	   *key = LicenseKeyGenerate(prefix);

		keys[i] = CStringGetTextDatum(key);
		displays[i] = CStringGetTextDatum(LicenseKeyDisplay(key));
	}
	GrantBatchArgs(batch, types, values);
	types[GRANT_BATCH_NARGS] = JSONBOID;
	types[GRANT_BATCH_NARGS + 1] = TEXTARRAYOID;
	types[GRANT_BATCH_NARGS + 2] = TEXTARRAYOID;
	values[GRANT_BATCH_NARGS] = JsonbPGetDatum(batch->benefit_properties);
	values[GRANT_BATCH_NARGS + 1] = PointerGetDatum(construct_array(keys, batch->n, TEXTOID, -1, false,
																	 TYPALIGN_INT));
	values[GRANT_BATCH_NARGS + 2] = PointerGetDatum(construct_array(displays, batch->n, TEXTOID, -1, false,
																	 TYPALIGN_INT));
	if (KeysPerGrantSchema())
		plan = BenefitsPlan(&holder_plan,
							ISSUE_MANY_SQL(", grant_id", ", " LICENSE_KEY_GRANT_FROM("$7", "x.grant_id"),
										   LICENSE_KEY_HOLDER_TARGET), GRANT_BATCH_NARGS + 3, types);
	else
		plan = BenefitsPlan(&customer_plan, ISSUE_MANY_SQL("", "", LICENSE_KEY_CUSTOMER_TARGET),
							GRANT_BATCH_NARGS + 3, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT || SPI_processed != (uint64) batch->n)
		elog(ERROR, "could not issue license keys");
}

/*
 * Revoking a grant revokes its own key (key_per = grant), and the last grant
 * of the benefit going revokes the customer's shared key.
 */
static void
LicenseKeyRevoke(GrantChange *change)
{
	static SPIPlanPtr own_plan;
	Oid			types[] = {UUIDOID, UUIDOID};
	Datum		values[2];

	if (KeysPerGrantSchema())
	{
		values[0] = UuidGetDatum(&change->grant_id);
		BenefitsExec(BenefitsPlan(&own_plan,
								  "UPDATE benefits.license_keys SET status = 'revoked', modified_at = now() "
								  "WHERE grant_id = $1 AND status = 'granted'",
								  1, types),
					 values, NULL, false, 0);
	}
	if (!change->last_holder)
		return;
	values[0] = UuidGetDatum(&change->customer_id);
	values[1] = UuidGetDatum(&change->benefit_id);
	if (SPI_execute_plan(BenefitsPlan(&RevokeKeyPlan,
									  "UPDATE benefits.license_keys SET status = 'revoked', modified_at = now() "
									  "WHERE customer_id = $1 AND benefit_id = $2 AND status = 'granted'",
									  2, types),
						 values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not revoke license key");
}

/* ---- properties ---- */

static const char *const expires_timeframes[] = {"day", "month", "year", NULL};

/* key_per and conditions_match: the first choice is the default. */
static const char *const key_per_choices[] = {"customer", "grant", NULL};
static const char *const conditions_match_choices[] = {"exact", "subset", NULL};

/*
 * A property naming one of choices: kept only when it is not the default
 * (the first), so the normalized properties of a benefit that does not use
 * it are Polar's shape unchanged.
 */
static void
ChoiceProperty(PropertiesState *state, JsonbContainer *root, const char *key, const char *const *choices)
{
	JsonbValue *v = PropField(root, key);
	char	   *choice;

	if (v == NULL || v->type == jbvNull)
		return;
	choice = PropStringOf(v);
	if (choice == NULL || !PropInList(choice, choices))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.%s must be one of %s", key, PropJoinList(choices)));
	if (strcmp(choice, choices[0]) != 0)
		PropPutKeyString(state, key, choice);
}

/* The units of activations.heartbeat and their seconds. */
static const char *const heartbeat_units[] = {"second", "minute", "hour", "day", NULL};
static const int64 heartbeat_unit_seconds[] = {1, 60, 3600, 86400};

#define HEARTBEAT_MIN_SECONDS 60
#define HEARTBEAT_MAX_SECONDS (30 * 86400)

/*
 * activations.heartbeat: "<count> <unit>" (second, minute, hour or day, an
 * optional plural s), from a minute (run_maintenance's period) to 30 days,
 * normalized to a count and the unit (plural unless 1), which SQL reads as
 * an interval.  NULL when absent or null.
 */
static char *
HeartbeatProperty(JsonbValue *v)
{
	char	   *text;
	char	   *unit;
	char	   *end;
	long		count;
	size_t		unit_len;

	if (v == NULL || v->type == jbvNull)
		return NULL;
	text = PropStringOf(v);
	if (text == NULL || !isdigit((unsigned char) text[0]))
		goto bad;
	errno = 0;
	count = strtol(text, &end, 10);
	if (errno != 0 || count < 1 || count > HEARTBEAT_MAX_SECONDS || *end != ' ')
		goto bad;
	unit = end + 1;
	unit_len = strlen(unit);
	if (unit_len > 1 && unit[unit_len - 1] == 's')
		unit[--unit_len] = '\0';
	for (int i = 0; heartbeat_units[i] != NULL; i++)
	{
		int64		seconds = count * heartbeat_unit_seconds[i];

		if (strcmp(unit, heartbeat_units[i]) != 0)
			continue;
		if (seconds < HEARTBEAT_MIN_SECONDS || seconds > HEARTBEAT_MAX_SECONDS)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.activations.heartbeat must be from 1 minute to 30 days"),
					errdetail("Got %ld %s%s.", count, unit, count == 1 ? "" : "s"));
		return psprintf("%ld %s%s", count, unit, count == 1 ? "" : "s");
	}
bad:
	ereport(ERROR, PROPERTY_ERROR,
			errmsg("properties.activations.heartbeat must be an interval such as \"15 minutes\""),
			errdetail("A count and one of %s.", PropJoinList(heartbeat_units)));
	return NULL;				/* not reached */
}

/*
 * {prefix, expires, activations, limit_usage}.  `false` means "none" for
 * expires, activations and limit_usage, and an integer is accepted as the
 * activation limit, so the brief's {prefix: "MYAPP", expires: false,
 * activations: 1, limit_usage: false} is a valid benefit.
 */
static void
NormalizeLicenseKeys(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"prefix", "expires", "activations", "limit_usage", "key_per",
	"conditions_match", NULL};
	static const char *const expires_keys[] = {"ttl", "timeframe", NULL};
	static const char *const activations_keys[] = {"limit", "enable_customer_admin", "heartbeat", NULL};
	JsonbValue *v;

	PropCheckKeys(state, root, "properties", keys);

	/* prefix: letters and digits, upper-cased; keys are case-insensitive. */
	PropPutKey(state, "prefix");
	if ((v = PropField(root, "prefix")) != NULL)
	{
		char	   *prefix = PropStringOf(v);
		size_t		len = prefix ? strlen(prefix) : 0;

		if (len < 1 || len > 16)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.prefix must be 1 to 16 ASCII letters or digits"));
		for (size_t i = 0; i < len; i++)
		{
			if (!((prefix[i] >= 'A' && prefix[i] <= 'Z') ||
				  (prefix[i] >= 'a' && prefix[i] <= 'z') ||
				  (prefix[i] >= '0' && prefix[i] <= '9')))
				ereport(ERROR, PROPERTY_ERROR,
						errmsg("properties.prefix must be 1 to 16 ASCII letters or digits"));
			if (prefix[i] >= 'a' && prefix[i] <= 'z')
				prefix[i] -= 'a' - 'A';
		}
		PropPutString(state, WJB_VALUE, prefix);
	}
	else
		PropPutNull(state);

	PropPutKey(state, "expires");
	v = PropField(root, "expires");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PropPutNull(state);
	else if (PropIsObject(v))
	{
		JsonbContainer *expires = v->val.binary.data;
		char	   *timeframe;

		PropCheckKeys(state, expires, "properties.expires", expires_keys);
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PropPutKey(state, "ttl");
		PropPutInteger(state, PropIntegerAt(PropRequiredField(expires, "properties.expires", "ttl"),
									"properties.expires.ttl", 1, PG_INT32_MAX));
		timeframe = PropStringOf(PropRequiredField(expires, "properties.expires", "timeframe"));
		if (timeframe == NULL || !PropInList(timeframe, expires_timeframes))
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.expires.timeframe must be one of %s",
						   PropJoinList(expires_timeframes)));
		PropPutKeyString(state, "timeframe", timeframe);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	else
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.expires must be false or an object {ttl, timeframe}"));

	PropPutKey(state, "activations");
	v = PropField(root, "activations");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PropPutNull(state);
	else if (v->type == jbvNumeric || PropIsObject(v))
	{
		int64		limit;
		bool		customer_admin = false;
		char	   *heartbeat = NULL;

		if (v->type == jbvNumeric)
			limit = PropIntegerAt(v, "properties.activations", 1, LICENSE_ACTIVATIONS_MAX);
		else
		{
			JsonbContainer *activations = v->val.binary.data;

			PropCheckKeys(state, activations, "properties.activations", activations_keys);
			limit = PropIntegerAt(PropRequiredField(activations, "properties.activations", "limit"),
							  "properties.activations.limit", 1, LICENSE_ACTIVATIONS_MAX);
			customer_admin = PropOptionalBool(activations, "properties.activations",
										  "enable_customer_admin", false);
			heartbeat = HeartbeatProperty(PropField(activations, "heartbeat"));
		}
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PropPutKey(state, "limit");
		PropPutInteger(state, limit);
		PropPutKey(state, "enable_customer_admin");
		PropPutBool(state, customer_admin);
		if (heartbeat != NULL)
			PropPutKeyString(state, "heartbeat", heartbeat);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	else
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.activations must be false, a positive integer or an object {limit, enable_customer_admin}"));

	PropPutKey(state, "limit_usage");
	v = PropField(root, "limit_usage");
	if (v == NULL || (v->type == jbvBool && !v->val.boolean))
		PropPutNull(state);
	else
		PropPutInteger(state, PropIntegerAt(v, "properties.limit_usage", 1, PG_INT32_MAX));

	ChoiceProperty(state, root, "key_per", key_per_choices);
	ChoiceProperty(state, root, "conditions_match", conditions_match_choices);
}

/* Editing the benefit: its keys take the new usage and activation limits. */
static void
LicenseKeysBenefitUpdated(pg_uuid_t benefit_id, Jsonb *properties)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, JSONBOID};
	Datum		values[2] = {UuidGetDatum(&benefit_id), JsonbPGetDatum(properties)};

	BenefitsExec(BenefitsPlan(&plan,
							  "UPDATE benefits.license_keys"
							  "   SET limit_usage = ($2->>'limit_usage')::int,"
							  "       limit_activations = ($2#>>'{activations,limit}')::int,"
							  "       modified_at = pg_catalog.now()"
							  " WHERE benefit_id = $1"
							  "   AND (limit_usage IS DISTINCT FROM ($2->>'limit_usage')::int"
							  "        OR limit_activations IS DISTINCT FROM ($2#>>'{activations,limit}')::int)",
							  2, types),
				 values, NULL, false, 0);
}

/* ---- the customer portal ---- */

enum
{
	K_BENEFIT_ID = 1, K_ID, K_KEY, K_DISPLAY_KEY, K_STATUS, K_USAGE, K_LIMIT_USAGE,
	K_LIMIT_ACTIVATIONS, K_VALIDATIONS, K_LAST_VALIDATED_AT, K_EXPIRES_AT, K_GRANT_ID
};

enum
{
	A_LICENSE_KEY_ID = 1, A_ID, A_LABEL, A_META, A_CREATED_AT
};

/* The customer's keys and their activations, fetched once per document. */
typedef struct PortalKeys
{
	Rows		keys;
	Rows		acts;
	int		   *act_order;
} PortalKeys;

/* Activations in the order shown: by key, then created_at, then id. */
static int
ActivationCmp(const void *a, const void *b, void *arg)
{
	const Rows *r = arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int			c = memcmp(DatumGetUUIDP(RowsGet(r, x, A_LICENSE_KEY_ID)),
						   DatumGetUUIDP(RowsGet(r, y, A_LICENSE_KEY_ID)), UUID_LEN);
	TimestampTz tx = DatumGetTimestampTz(RowsGet(r, x, A_CREATED_AT));
	TimestampTz ty = DatumGetTimestampTz(RowsGet(r, y, A_CREATED_AT));

	if (c != 0)
		return c;
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return memcmp(DatumGetUUIDP(RowsGet(r, x, A_ID)), DatumGetUUIDP(RowsGet(r, y, A_ID)), UUID_LEN);
}

/*
 * Whether key k is the one a held grant shows: of its benefit, and either
 * shared by the customer's grants or the grant's own (key_per = grant).
 */
static bool
KeyOfHeldGrant(const Rows *keys, int k, const Rows *held, int h)
{
	return RowsSameUuid(keys, k, K_BENEFIT_ID, held, h, HELD_BENEFIT_ID) &&
		(RowsIsNull(keys, k, K_GRANT_ID) || RowsSameUuid(keys, k, K_GRANT_ID, held, h, HELD_GRANT_ID));
}

/* The license key of a benefit with its activations (ordered), or null. */
static void
LicenseKey(Doc *doc, const Rows *held, int h, bool customer_admin,
		   const Rows *keys, const Rows *acts, const int *act_order)
{
	for (int k = 0; k < keys->n; k++)
	{
		if (!KeyOfHeldGrant(keys, k, held, h))
			continue;
		DocBeginObject(doc);
		DocKey(doc, "id");
		DocUuidCol(doc, keys, k, K_ID);
		DocKey(doc, "key");
		DocTextCol(doc, keys, k, K_KEY);
		DocKey(doc, "usage");
		DocIntCol(doc, keys, k, K_USAGE);
		DocKey(doc, "status");
		DocTextCol(doc, keys, k, K_STATUS);
		DocKey(doc, "expires_at");
		DocTimeCol(doc, keys, k, K_EXPIRES_AT);
		DocKey(doc, "activations");
		DocBeginArray(doc);
		for (int i = 0; i < acts->n; i++)
		{
			int			a = act_order[i];

			if (!RowsSameUuid(acts, a, A_LICENSE_KEY_ID, keys, k, K_ID))
				continue;
			DocBeginObject(doc);
			DocKey(doc, "id");
			DocUuidCol(doc, acts, a, A_ID);
			DocKey(doc, "meta");
			DocJsonCol(doc, acts, a, A_META);
			DocKey(doc, "label");
			DocTextCol(doc, acts, a, A_LABEL);
			DocKey(doc, "created_at");
			DocTimeCol(doc, acts, a, A_CREATED_AT);
			DocEndObject(doc);
		}
		DocEndArray(doc);
		DocKey(doc, "display_key");
		DocTextCol(doc, keys, k, K_DISPLAY_KEY);
		DocKey(doc, "limit_usage");
		DocIntCol(doc, keys, k, K_LIMIT_USAGE);
		DocKey(doc, "validations");
		DocIntCol(doc, keys, k, K_VALIDATIONS);
		DocKey(doc, "customer_admin");
		DocBool(doc, customer_admin);
		DocKey(doc, "last_validated_at");
		DocTimeCol(doc, keys, k, K_LAST_VALIDATED_AT);
		DocKey(doc, "limit_activations");
		DocIntCol(doc, keys, k, K_LIMIT_ACTIVATIONS);
		DocEndObject(doc);
		return;
	}
	DocNull(doc);
}


static void
LicenseKeysPortalCollect(PortalBuild *ctx, PortalBenefit **benefits, int n)
{
	/*
	 * [0]: 0.1.0's schema (no grant_id: customer keys; deactivated
	 * activations are deleted); [1]: 0.2.0's, live activations only.
	 */
	static SPIPlanPtr keys_plans[2];
	static SPIPlanPtr activations_plans[2];
	static const char *const keys_sql[2] = {
		"SELECT lk.benefit_id, lk.id, lk.key, lk.display_key, lk.status, lk.usage, lk.limit_usage,"
		"       lk.limit_activations, lk.validations, lk.last_validated_at, lk.expires_at, NULL::uuid AS grant_id"
		"  FROM benefits.license_keys lk WHERE lk.customer_id = $1",
		"SELECT lk.benefit_id, lk.id, lk.key, lk.display_key, lk.status, lk.usage, lk.limit_usage,"
		"       lk.limit_activations, lk.validations, lk.last_validated_at, lk.expires_at, lk.grant_id"
		"  FROM benefits.license_keys lk WHERE lk.customer_id = $1"
	};
	static const char *const activations_sql[2] = {
		"SELECT a.license_key_id, a.id, a.label, a.meta, a.created_at"
		"  FROM benefits.license_key_activations a WHERE a.license_key_id = ANY ($1)",
		"SELECT a.license_key_id, a.id, a.label, a.meta, a.created_at"
		"  FROM benefits.license_key_activations a"
		" WHERE a.license_key_id = ANY ($1) AND a.deactivated_at IS NULL"
	};
	Oid			one_uuid[1] = {UUIDOID};
	Oid			uuid_array[1] = {UUIDARRAYOID};
	PortalKeys *pk = palloc0(sizeof(PortalKeys));
	int			schema = KeysPerGrantSchema() ? 1 : 0;

	pk->keys = RowsFetch(BenefitsGenericPlan(&keys_plans[schema], keys_sql[schema], 1, one_uuid),
						 &ctx->customer_id);
	if (pk->keys.n > 0)
	{
		pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * pk->keys.n);
		Datum		arg;

		for (int k = 0; k < pk->keys.n; k++)
			ids[k] = *DatumGetUUIDP(RowsGet(&pk->keys, k, K_ID));
		arg = BenefitsUuidArray(ids, pk->keys.n);
		pk->acts = RowsFetch(BenefitsGenericPlan(&activations_plans[schema], activations_sql[schema],
												 1, uuid_array), &arg);
		pk->act_order = palloc(sizeof(int) * (pk->acts.n + 1));
		for (int a = 0; a < pk->acts.n; a++)
			pk->act_order[a] = a;
		qsort_arg(pk->act_order, pk->acts.n, sizeof(int), ActivationCmp, &pk->acts);
	}
	for (int i = 0; i < n; i++)
		benefits[i]->type_state = pk;
}

static void
LicenseKeysPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	PortalKeys *pk = b->type_state;
	JsonbContainer *activations = JsonContainerOf(JsonMember(b->properties, "activations"));

	LicenseKey(&ctx->doc, ctx->held, b->chosen, JsonMemberFlag(activations, "enable_customer_admin"),
			   &pk->keys, &pk->acts, pk->act_order);
}

/* The key, its limits and its activations (with deactivate forms when allowed). */
static void
LicenseKeySection(StringInfo buf, JsonbContainer *lk, int i, const char *action_url)
{
	JsonbContainer *activations = PageContainer(lk, "activations");
	int			n = PageArrayLength(activations);
	char	   *status = PageText(lk, "status");
	char	   *expires = PageDate(PageText(lk, "expires_at"));
	bool		forms = PageBool(lk, "customer_admin") && action_url != NULL;

	appendStringInfo(buf, "<p class=\"visually-hidden\" id=\"key-label-%d\">License key</p>\n"
					 "<code class=\"key\" aria-labelledby=\"key-label-%d\">", i, i);
	PageEsc(buf, PageText(lk, "key"));
	appendStringInfoString(buf, "</code>\n<dl class=\"facts\">\n<div><dt>Status</dt><dd>");
	if (status && strcmp(status, "granted") == 0)
		appendStringInfoString(buf, "Active");
	else if (status)
	{
		char	   *cap = pstrdup(status);

		cap[0] = pg_toupper((unsigned char) cap[0]);
		PageEsc(buf, cap);
	}
	appendStringInfoString(buf, "</dd></div>\n<div><dt>Expires</dt><dd>");
	if (expires)
		PageEsc(buf, expires);
	else
		appendStringInfoString(buf, "Never");
	appendStringInfoString(buf, "</dd></div>\n");
	if (PageText(lk, "limit_usage"))
	{
		appendStringInfoString(buf, "<div><dt>Usage</dt><dd>");
		PageEsc(buf, PageText(lk, "usage"));
		appendStringInfoString(buf, " of ");
		PageEsc(buf, PageText(lk, "limit_usage"));
		appendStringInfoString(buf, "</dd></div>\n");
	}
	if (PageText(lk, "limit_activations"))
	{
		appendStringInfo(buf, "<div><dt>Activations</dt><dd>%d of ", n);
		PageEsc(buf, PageText(lk, "limit_activations"));
		appendStringInfoString(buf, "</dd></div>\n");
	}
	appendStringInfoString(buf, "</dl>\n");
	if (n == 0)
		return;

	appendStringInfoString(buf, "<table>\n<caption>Activated devices</caption>\n"
						   "<thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Activated on</th>");
	if (forms)
		appendStringInfoString(buf, "<th scope=\"col\"><span class=\"visually-hidden\">Action</span></th>");
	appendStringInfoString(buf, "</tr></thead>\n<tbody>\n");
	for (int a = 0; a < n; a++)
	{
		JsonbContainer *x = PageElement(activations, a);

		appendStringInfoString(buf, "<tr><td>");
		PageEsc(buf, PageText(x, "label"));
		appendStringInfoString(buf, "</td><td>");
		PageEsc(buf, PageDate(PageText(x, "created_at")));
		appendStringInfoString(buf, "</td>");
		if (forms)
		{
			appendStringInfoString(buf, "<td><form method=\"post\" action=\"");
			PageEsc(buf, action_url);
			appendStringInfoString(buf, "\"><input type=\"hidden\" name=\"activation_id\" value=\"");
			PageEsc(buf, PageText(x, "id"));
			appendStringInfoString(buf, "\"><button type=\"submit\">Deactivate<span class=\"visually-hidden\"> ");
			PageEsc(buf, PageText(x, "label"));
			appendStringInfoString(buf, "</span></button></form></td>");
		}
		appendStringInfoString(buf, "</tr>\n");
	}
	appendStringInfoString(buf, "</tbody>\n</table>\n");
}


static void
LicenseKeysPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *lk = PageContainer(benefit, "license_key");

	if (lk == NULL || !JsonContainerIsObject(lk))
		appendStringInfoString(page->buf, "<p class=\"status warn\">Your license key is being prepared.</p>\n");
	else
		LicenseKeySection(page->buf, lk, page->index, page->action_url);
}

/* The key and its limits, in a customer email. */
static void
LicenseKeysEmail(EmailBody *body, const EmailGrant *grant)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	char	   *key_id = BenefitsJsonText(grant->grant_properties, "license_key_id");
	pg_uuid_t	id;
	Datum		value;
	TupleDesc	desc;
	HeapTuple	row;
	char	   *activations;
	char	   *usage;
	char	   *expires;

	if (key_id == NULL || !PropParseUuid(key_id, &id))
		return;
	value = UuidGetDatum(&id);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT key, limit_activations, limit_usage,"
							  "       pg_catalog.to_char(expires_at AT TIME ZONE 'UTC', 'FMDD Mon YYYY') AS expires"
							  "  FROM benefits.license_keys WHERE id = $1",
							  1, types),
				 &value, NULL, true, 1);
	if (SPI_processed == 0)
		return;
	desc = SPI_tuptable->tupdesc;
	row = SPI_tuptable->vals[0];
	EmailValue(body, "Your license key", SPI_getvalue(row, desc, SPI_fnumber(desc, "key")));
	activations = SPI_getvalue(row, desc, SPI_fnumber(desc, "limit_activations"));
	usage = SPI_getvalue(row, desc, SPI_fnumber(desc, "limit_usage"));
	expires = SPI_getvalue(row, desc, SPI_fnumber(desc, "expires"));
	if (activations)
		EmailLine(body, psprintf("It can be activated on up to %s devices.", activations));
	if (usage)
		EmailLine(body, psprintf("It allows %s uses.", usage));
	EmailLine(body, expires ? psprintf("It is valid until %s (UTC).", expires) : "It does not expire.");
}

/* What the dashboard may edit in place. */
static const BenefitEditableProperty LicenseKeysEditable[] = {
	{"prefix", "Prefix of new keys", false},
	{NULL, NULL, false}
};

const BenefitType LicenseKeysBenefit = {
	.name = "license_keys",
	.webhook_name = "license_keys",
	.normalize = NormalizeLicenseKeys,
	.grant = LicenseKeyGrant,
	.grant_many = LicenseKeyGrantMany,
	.revoke = LicenseKeyRevoke,
	.benefit_updated = LicenseKeysBenefitUpdated,
	.portal_key = "license_key",
	.portal_collect = LicenseKeysPortalCollect,
	.portal_member = LicenseKeysPortalMember,
	.portal_label = "License key",
	.portal_html = LicenseKeysPortalHtml,
	.email_instructions = LicenseKeysEmail,
	.admin_editable = LicenseKeysEditable,
};
