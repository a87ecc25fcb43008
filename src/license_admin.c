/*
 * license_admin.c — administering license keys: importing keys issued by
 * another system and rotating a key.  (Status, limits and expiry changes are
 * benefits.update_license_key, in SQL: sql/install/30_license_api.sql.)
 *
 * An imported key is stored in its canonical form, so it validates exactly
 * like a generated one: case-insensitively and ignoring surrounding spaces.
 * A key of the generated shape must carry a correct check symbol, otherwise
 * validate_license could never find it.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "license.h"

PG_FUNCTION_INFO_V1(import_license_key);
PG_FUNCTION_INFO_V1(rotate_license_key);

static SPIPlanPtr ImportCustomerPlan = NULL;
static SPIPlanPtr ImportBenefitPlan = NULL;
static SPIPlanPtr ImportExistingPlan = NULL;
static SPIPlanPtr ImportInsertPlan = NULL;
static SPIPlanPtr RotateLockPlan = NULL;
static SPIPlanPtr RotateUpdatePlan = NULL;
static SPIPlanPtr RotateGrantsPlan = NULL;

static void
RequirePositive(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (!PG_ARGISNULL(argno) && PG_GETARG_INT32(argno) <= 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be a positive integer", name),
				errdetail("Got %d.", PG_GETARG_INT32(argno)));
}

/*
 * The canonical form of a key to import, or an error saying what is wrong
 * with it.
 */
static char *
ImportCanonicalKey(text *input)
{
	const char *s = VARDATA_ANY(input);
	int			len = VARSIZE_ANY_EXHDR(input);
	int			start = 0;
	int			end = len;
	char	   *canonical;

	while (start < end && isspace((unsigned char) s[start]))
		start++;
	while (end > start && isspace((unsigned char) s[end - 1]))
		end--;
	if (start == end)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("key must not be empty"));
	if (end - start > LICENSE_KEY_MAX_INPUT)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("key must be at most %d characters", LICENSE_KEY_MAX_INPUT),
				errdetail("Got %d characters.", end - start));
	for (int i = start; i < end; i++)
	{
		if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("key must not contain control characters"));
	}
	canonical = LicenseKeyCanonical(s, len);
	if (canonical == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("key has the shape of a generated key but its check symbol is wrong"),
				errdetail("The last symbol of a generated key checks the others; this key would never validate."),
				errhint("Check the key for a mistyped symbol."));
	return canonical;
}

/*
 * benefits.import_license_key(customer_id, benefit_id, key, limit_usage,
 * limit_activations, expires_at, status, usage) -> benefits.license_keys
 *
 * Stores a key issued elsewhere as the customer's key for a license_keys
 * benefit.  Limits left NULL are taken from the benefit, like a granted key's.
 * No grant is created; granting the benefit later adopts this key (one key
 * per customer and benefit).
 */
Datum
import_license_key(PG_FUNCTION_ARGS)
{
	Oid			one_uuid[1] = {UUIDOID};
	Oid			two_uuids[2] = {UUIDOID, UUIDOID};
	Oid			insert_types[10] = {UUIDOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID,
		INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID};
	Datum		args[10];
	char		nulls[10];
	char	   *canonical;
	char	   *status = "granted";
	Datum		customer_org;
	Datum		benefit_org;
	bool		isnull;
	char	   *type;
	Datum		result;
	int			ret;

	BenefitsRequireArgument(fcinfo, 0, "customer_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 1, "benefit_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 2, "key", ERRCODE_INVALID_PARAMETER_VALUE);
	RequirePositive(fcinfo, 3, "limit_usage");
	RequirePositive(fcinfo, 4, "limit_activations");
	if (!PG_ARGISNULL(4) && PG_GETARG_INT32(4) > LICENSE_ACTIVATIONS_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("limit_activations must be at most %d", LICENSE_ACTIVATIONS_MAX),
				errdetail("Got %d.", PG_GETARG_INT32(4)));
	if (!PG_ARGISNULL(6))
	{
		status = text_to_cstring(PG_GETARG_TEXT_PP(6));
		if (strcmp(status, "granted") != 0 && strcmp(status, "disabled") != 0 &&
			strcmp(status, "revoked") != 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("status must be one of granted, disabled, revoked"),
					errdetail("Got \"%s\".", status));
	}
	if (!PG_ARGISNULL(7) && PG_GETARG_INT32(7) < 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("usage must not be negative"),
				errdetail("Got %d.", PG_GETARG_INT32(7)));
	canonical = ImportCanonicalKey(PG_GETARG_TEXT_PP(2));

	BenefitsSpiConnect();

	/* The customer, locked like a grant change would. */
	args[0] = PG_GETARG_DATUM(0);
	ret = SPI_execute_plan(BenefitsPlan(&ImportCustomerPlan,
									 "SELECT organization_id FROM benefits.customers WHERE id = $1 FOR UPDATE",
									 1, one_uuid),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "customer lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("customer_id %s does not exist", BenefitsUuidText(DatumGetUUIDP(PG_GETARG_DATUM(0)))));
	customer_org = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	args[0] = PG_GETARG_DATUM(1);
	ret = SPI_execute_plan(BenefitsPlan(&ImportBenefitPlan,
									 "SELECT organization_id, type, deleted_at IS NOT NULL"
									 "  FROM benefits.benefits WHERE id = $1",
									 1, one_uuid),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "benefit lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("benefit_id %s does not exist", BenefitsUuidText(DatumGetUUIDP(PG_GETARG_DATUM(1)))));
	benefit_org = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	type = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (BenefitTypeOf(type) != &LicenseKeysBenefit)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("benefit_id must name a %s benefit", LicenseKeysBenefit.name),
				errdetail("It names a %s benefit.", type));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("benefit_id %s is deleted", BenefitsUuidText(DatumGetUUIDP(PG_GETARG_DATUM(1)))));
	if (!DatumGetBool(DirectFunctionCall2(uuid_eq, customer_org, benefit_org)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("benefit_id and customer_id belong to different organizations"));

	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	ret = SPI_execute_plan(BenefitsPlan(&ImportExistingPlan,
									 "SELECT 1 FROM benefits.license_keys WHERE customer_id = $1 AND benefit_id = $2",
									 2, two_uuids),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "license key lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("customer_id already has a license key for this benefit_id"),
				errhint("Change that key with benefits.update_license_key or benefits.rotate_license_key."));

	memset(nulls, ' ', sizeof(nulls));
	args[0] = customer_org;
	args[1] = PG_GETARG_DATUM(0);
	args[2] = PG_GETARG_DATUM(1);
	args[3] = CStringGetTextDatum(canonical);
	args[4] = CStringGetTextDatum(LicenseKeyDisplay(canonical));
	args[5] = CStringGetTextDatum(status);
	args[6] = Int32GetDatum(PG_ARGISNULL(7) ? 0 : PG_GETARG_INT32(7));
	for (int i = 3; i <= 5; i++)
	{
		args[4 + i] = PG_GETARG_DATUM(i);
		nulls[4 + i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	ret = SPI_execute_plan(BenefitsPlan(&ImportInsertPlan,
									 "INSERT INTO benefits.license_keys AS k"
									 " (organization_id, customer_id, benefit_id, key, display_key, status,"
									 "  usage, limit_usage, limit_activations, expires_at)"
									 " SELECT $1, $2, $3, $4, $5, $6, $7,"
									 "        COALESCE($8, (b.properties->>'limit_usage')::int),"
									 "        COALESCE($9, CASE jsonb_typeof(b.properties->'activations')"
									 "                       WHEN 'number' THEN (b.properties->>'activations')::int"
									 "                       WHEN 'object' THEN (b.properties->'activations'->>'limit')::int END),"
									 "        $10"
									 "   FROM benefits.benefits b WHERE b.id = $3"
									 " ON CONFLICT (organization_id, key) DO NOTHING"
									 " RETURNING k",
									 10, insert_types),
						   args, nulls, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not import license key: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("key already exists in this organization"),
				errdetail("Keys are compared in canonical form: upper case, surrounding spaces removed."));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * benefits.rotate_license_key(license_key_id) -> benefits.license_keys
 *
 * A leaked key is replaced by a fresh generated one (with the benefit's
 * prefix); the row, and so its usage, validations and activations, stays.
 * Grants that show the key's display form are updated.
 */
Datum
rotate_license_key(PG_FUNCTION_ARGS)
{
	Oid			one_uuid[1] = {UUIDOID};
	Oid			update_types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		args[3];
	bool		isnull;
	Datum		prefix;
	char	   *key;
	Datum		result;
	int			ret;

	BenefitsRequireArgument(fcinfo, 0, "license_key_id", ERRCODE_INVALID_PARAMETER_VALUE);

	BenefitsSpiConnect();
	args[0] = PG_GETARG_DATUM(0);
	ret = SPI_execute_plan(BenefitsPlan(&RotateLockPlan,
									 "SELECT NULLIF(b.properties->>'prefix', '')"
									 "  FROM benefits.license_keys k"
									 "  LEFT JOIN benefits.benefits b ON b.id = k.benefit_id"
									 " WHERE k.id = $1 FOR NO KEY UPDATE OF k",
									 1, one_uuid),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "license key lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("license_key_id %s does not exist", BenefitsUuidText(DatumGetUUIDP(PG_GETARG_DATUM(0)))));
	prefix = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	key = LicenseKeyGenerate(isnull ? NULL : TextDatumGetCString(prefix));

	args[1] = CStringGetTextDatum(key);
	args[2] = CStringGetTextDatum(LicenseKeyDisplay(key));
	ret = SPI_execute_plan(BenefitsPlan(&RotateUpdatePlan,
									 "UPDATE benefits.license_keys AS k"
									 "   SET key = $2, display_key = $3, modified_at = now()"
									 " WHERE k.id = $1 RETURNING k",
									 3, update_types),
						   args, NULL, false, 1);
	if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not rotate license key");
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);

	ret = SPI_execute_plan(BenefitsPlan(&RotateGrantsPlan,
									 "UPDATE benefits.grants g"
									 "   SET properties = g.properties || jsonb_build_object('display_key', $3)"
									 "  FROM benefits.license_keys k"
									 " WHERE k.id = $1 AND g.customer_id = k.customer_id"
									 "   AND g.benefit_id = k.benefit_id"
									 "   AND g.properties->>'license_key_id' = $1::text"
									 "   AND g.properties ? 'display_key'",
									 3, update_types),
						   args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not update the grants of a rotated license key");
	SPI_finish();
	PG_RETURN_DATUM(result);
}
