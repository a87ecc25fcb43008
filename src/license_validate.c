/*
 * license_validate.c — validate_license, activate_license and
 * deactivate_license: the calls a customer's application makes with a key.
 *
 * Business outcomes never raise; they come back as a code, checked in the
 * order the public API documents (README, "License keys"): not_found, revoked, disabled, expired,
 * activation_not_found, conditions_mismatch, benefit_mismatch,
 * customer_mismatch, usage_exceeded, then activations_unsupported,
 * activation_limit_reached for activation.  A malformed key (wrong check
 * symbol, empty, too long), a key of another organization and an unknown key
 * all answer not_found with the same message and no other field set.  Only
 * programming errors raise (SQLSTATE 22023): a NULL organization_id, a
 * conditions or meta value that is not a JSON object, increment_usage below
 * 1, an empty activation label.
 *
 * The plain validate_license (no increment_usage) is the hot path: it reads
 * the key and the activation with direct index scans (no SPI, no executor),
 * writes nothing, and counts the validation in shared memory
 * (license_stats.c).  So it works in a READ ONLY transaction and on a hot
 * standby.  increment_usage, activate_license and deactivate_license lock
 * the key row (FOR NO KEY UPDATE) and decide under that lock, so concurrent
 * callers can never pass limit_usage or limit_activations, and two
 * activations of one fingerprint take one seat.
 *
 * Conditions: when an activation is named (activation_id or fingerprint),
 * the activation's stored conditions must equal the given conditions
 * exactly, as JSON values (key order does not matter; 1 and 1.0 are equal).
 * A key present on one side only is a mismatch, in both directions, so an
 * activation stored with {} matches only {} (the default).  A benefit with
 * conditions_match = subset (Polar's rule) instead asks that every stored
 * condition equal the given one, so an activation stored with {} accepts
 * any; that rule is read from the benefit only when the exact comparison
 * failed.  Without an activation the conditions are not compared with
 * anything.
 *
 * Fingerprints and history (0.2.0's schema): an activation deactivated or
 * released (deactivated_at) is not live and answers activation_not_found;
 * activating a fingerprint that has a live activation returns it.  Under
 * 0.1.0's schema (no such columns) activations are counted and deleted as
 * 0.1.0 did.  heartbeat_license is one UPDATE of the activation row.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "license.h"
#include "license_stats.h"

/* Limits of what activate_license stores with an activation. */
#define ACTIVATION_LABEL_MAX 200
#define ACTIVATION_JSON_MAX 4096
#define ACTIVATION_FINGERPRINT_MAX 256

PG_FUNCTION_INFO_V1(validate_license);
PG_FUNCTION_INFO_V1(activate_license);
PG_FUNCTION_INFO_V1(deactivate_license);
PG_FUNCTION_INFO_V1(heartbeat_license);

/* The columns of benefits.license_keys a validation reads. */
typedef enum KeyField
{
	KF_ID,
	KF_CUSTOMER,
	KF_BENEFIT,
	KF_DISPLAY,
	KF_STATUS,
	KF_USAGE,
	KF_LIMIT_USAGE,
	KF_LIMIT_ACTIVATIONS,
	KF_VALIDATIONS,
	KF_LAST_VALIDATED,
	KF_EXPIRES,
	KF_COUNT
} KeyField;

static const char *const KeyFieldNames[KF_COUNT] = {
	"id", "customer_id", "benefit_id", "display_key", "status", "usage",
	"limit_usage", "limit_activations", "validations", "last_validated_at",
	"expires_at"
};

/* The same columns as the select list of the locking query, in order. */
#define KEY_COLUMNS "id, customer_id, benefit_id, display_key, status, usage, " \
	"limit_usage, limit_activations, validations, last_validated_at, expires_at"


/*
 * Where the tables, their lookup indexes and the columns are, resolved once
 * per backend and forgotten on any relcache invalidation of the tables (an
 * index rebuilt, the extension dropped and created again).
 */
typedef struct LicenseCatalog
{
	bool		valid;
	Oid			keys_relid;
	Oid			keys_indexid;	/* unique (organization_id, key) */
	Oid			key_collation;
	AttrNumber	key_attnums[KF_COUNT];
	Oid			activations_relid;
	Oid			activations_indexid;	/* primary key (id) */
	AttrNumber	act_id;
	AttrNumber	act_license_key_id;
	AttrNumber	act_conditions;
	/* 0.2.0's history and fingerprints; invalid under 0.1.0's schema */
	AttrNumber	act_deactivated_at;
	AttrNumber	act_fingerprint;
	Oid			fingerprint_indexid;	/* unique (license_key_id, fingerprint) of live ones */
	Oid			fingerprint_collation;
	Oid			benefits_relid;
	Oid			benefits_indexid;	/* primary key (id) */
	AttrNumber	benefit_properties;
} LicenseCatalog;

static LicenseCatalog Catalog;
static bool CatalogCallbackRegistered = false;

/* Locking-path plans, prepared once per backend. */
static SPIPlanPtr LockKeyPlan = NULL;
static SPIPlanPtr IncrementUsagePlan = NULL;
static SPIPlanPtr TouchKeyPlan = NULL;
static SPIPlanPtr ReactivatePlan = NULL;
static SPIPlanPtr HeartbeatPlan = NULL;

/* Columns of benefits.license_validation, in order. */
enum
{
	LV_VALID,
	LV_CODE,
	LV_MESSAGE,
	LV_LICENSE_KEY_ID,
	LV_CUSTOMER_ID,
	LV_BENEFIT_ID,
	LV_DISPLAY_KEY,
	LV_STATUS,
	LV_EXPIRES_AT,
	LV_USAGE,
	LV_LIMIT_USAGE,
	LV_LIMIT_ACTIVATIONS,
	LV_VALIDATIONS,
	LV_LAST_VALIDATED_AT,
	LV_ACTIVATION_ID,
	LV_COUNT
};

/* Columns of benefits.license_activation, in order. */
enum
{
	LA_OK,
	LA_CODE,
	LA_MESSAGE,
	LA_ACTIVATION_ID,
	LA_LABEL,
	LA_LICENSE_KEY_ID,
	LA_CONDITIONS,
	LA_META,
	LA_CREATED_AT,
	LA_ACTIVATIONS,
	LA_LIMIT_ACTIVATIONS,
	LA_COUNT
};

/*
 * The search path every SPI plan of this file is prepared and run under:
 * pg_catalog (then pg_temp, which no qualified name reaches).
 * validate_license has no SET search_path clause (that clause costs about
 * 3us per call, half of the hot path), so the caller's search_path is in
 * force when it is called; its direct index scans resolve nothing by name,
 * and its SPI statements run under this pinned path, set at a GUC nest level
 * of its own as a SET clause would (the transaction's abort undoes it after
 * an error), so a caller's schema can never capture an operator, function or
 * type of a statement run with the owner's rights.
 */
static int	pinned_level = -1;

/* SPI_connect under the pinned search path. */
static void
ConnectPinned(void)
{
	pinned_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	BenefitsSpiConnect();
}

/* SPI_finish and back to the caller's search path. */
static void
FinishPinned(void)
{
	SPI_finish();
	AtEOXact_GUC(true, pinned_level);
	pinned_level = -1;
}

/* Relcache callback: forget the resolved catalog when one of its relations changes. */
static void
CatalogInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == Catalog.keys_relid ||
		relid == Catalog.keys_indexid || relid == Catalog.activations_relid ||
		relid == Catalog.activations_indexid || relid == Catalog.fingerprint_indexid ||
		relid == Catalog.benefits_relid || relid == Catalog.benefits_indexid)
		Catalog.valid = false;
}

/*
 * A valid unique btree index of rel on exactly the given columns, partial
 * only when asked for; InvalidOid when there is none.
 */
static Oid
FindUniqueIndex(Relation rel, int natts, const AttrNumber *attnums, Oid *collation, bool partial)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		bool		match = form->indisunique && form->indisvalid && form->indisready &&
			form->indnkeyatts == natts && index->rd_rel->relam == BTREE_AM_OID &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) != partial;

		for (int i = 0; match && i < natts; i++)
			match = form->indkey.values[i] == attnums[i];
		if (match)
		{
			found = RelationGetRelid(index);
			if (collation)
				*collation = index->rd_indcollation[natts - 1];
		}
		index_close(index, AccessShareLock);
		if (match)
			break;
	}
	list_free(indexes);
	return found;
}

/* Resolve the tables, indexes and columns the direct lookups use. */
static void
CatalogLoad(void)
{
	Relation	rel;
	AttrNumber	lookup[2];
	AttrNumber	pkey[1];

	if (Catalog.valid)
		return;
	if (!CatalogCallbackRegistered)
	{
		CacheRegisterRelcacheCallback(CatalogInvalidate, (Datum) 0);
		CatalogCallbackRegistered = true;
	}

	Catalog.keys_relid = BenefitsRelid("license_keys");
	for (int i = 0; i < KF_COUNT; i++)
		Catalog.key_attnums[i] = BenefitsColumnNumber(Catalog.keys_relid, KeyFieldNames[i]);
	lookup[0] = BenefitsColumnNumber(Catalog.keys_relid, "organization_id");
	lookup[1] = BenefitsColumnNumber(Catalog.keys_relid, "key");
	rel = table_open(Catalog.keys_relid, AccessShareLock);
	Catalog.keys_indexid = FindUniqueIndex(rel, 2, lookup, &Catalog.key_collation, false);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(Catalog.keys_indexid))
		elog(ERROR, "benefits.license_keys has no unique index on (organization_id, key)");

	Catalog.activations_relid = BenefitsRelid("license_key_activations");
	pkey[0] = BenefitsColumnNumber(Catalog.activations_relid, "id");
	Catalog.act_id = pkey[0];
	Catalog.act_license_key_id = BenefitsColumnNumber(Catalog.activations_relid, "license_key_id");
	Catalog.act_conditions = BenefitsColumnNumber(Catalog.activations_relid, "conditions");
	Catalog.act_deactivated_at = get_attnum(Catalog.activations_relid, "deactivated_at");
	Catalog.act_fingerprint = get_attnum(Catalog.activations_relid, "fingerprint");
	rel = table_open(Catalog.activations_relid, AccessShareLock);
	Catalog.activations_indexid = FindUniqueIndex(rel, 1, pkey, NULL, false);
	Catalog.fingerprint_indexid = InvalidOid;
	if (Catalog.act_fingerprint != InvalidAttrNumber)
	{
		AttrNumber	fingerprint[2] = {Catalog.act_license_key_id, Catalog.act_fingerprint};

		Catalog.fingerprint_indexid = FindUniqueIndex(rel, 2, fingerprint, &Catalog.fingerprint_collation, true);
	}
	table_close(rel, AccessShareLock);
	if (!OidIsValid(Catalog.activations_indexid))
		elog(ERROR, "benefits.license_key_activations has no unique index on (id)");
	if (Catalog.act_fingerprint != InvalidAttrNumber && !OidIsValid(Catalog.fingerprint_indexid))
		elog(ERROR, "benefits.license_key_activations has no unique index on (license_key_id, fingerprint)");

	Catalog.benefits_relid = BenefitsRelid("benefits");
	pkey[0] = BenefitsColumnNumber(Catalog.benefits_relid, "id");
	Catalog.benefit_properties = BenefitsColumnNumber(Catalog.benefits_relid, "properties");
	rel = table_open(Catalog.benefits_relid, AccessShareLock);
	Catalog.benefits_indexid = FindUniqueIndex(rel, 1, pkey, NULL, false);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(Catalog.benefits_indexid))
		elog(ERROR, "benefits.benefits has no unique index on (id)");

	Catalog.valid = true;
}

/* Fill a LicenseKeyRow from column values; positions[f] is field f's 1-based column. */
static void
LicenseKeyRowFromValues(LicenseKeyRow *row, const Datum *values, const bool *nulls,
				 const AttrNumber *positions)
{
#define V(f) values[positions[f] - 1]
#define N(f) nulls[positions[f] - 1]
	char	   *status;

	memcpy(&row->id, DatumGetUUIDP(V(KF_ID)), sizeof(pg_uuid_t));
	memcpy(&row->customer_id, DatumGetUUIDP(V(KF_CUSTOMER)), sizeof(pg_uuid_t));
	row->has_benefit = !N(KF_BENEFIT);
	if (row->has_benefit)
		memcpy(&row->benefit_id, DatumGetUUIDP(V(KF_BENEFIT)), sizeof(pg_uuid_t));
	row->display_key = DatumGetTextPCopy(V(KF_DISPLAY));
	row->status_text = DatumGetTextPCopy(V(KF_STATUS));
	status = text_to_cstring(row->status_text);
	if (strcmp(status, "granted") == 0)
		row->status = LICENSE_KEY_GRANTED;
	else if (strcmp(status, "revoked") == 0)
		row->status = LICENSE_KEY_REVOKED;
	else
		row->status = LICENSE_KEY_DISABLED;
	row->usage = DatumGetInt32(V(KF_USAGE));
	row->has_limit_usage = !N(KF_LIMIT_USAGE);
	row->limit_usage = row->has_limit_usage ? DatumGetInt32(V(KF_LIMIT_USAGE)) : 0;
	row->has_limit_activations = !N(KF_LIMIT_ACTIVATIONS);
	row->limit_activations = row->has_limit_activations ? DatumGetInt32(V(KF_LIMIT_ACTIVATIONS)) : 0;
	row->validations = DatumGetInt64(V(KF_VALIDATIONS));
	row->has_last_validated = !N(KF_LAST_VALIDATED);
	row->last_validated_at = row->has_last_validated ? DatumGetTimestampTz(V(KF_LAST_VALIDATED)) : 0;
	row->has_expires = !N(KF_EXPIRES);
	row->expires_at = row->has_expires ? DatumGetTimestampTz(V(KF_EXPIRES)) : 0;
#undef V
#undef N
}

/* BenefitsIndexFetch's reader of a key row. */
static bool
ReadKeyRow(TupleTableSlot *slot, void *row)
{
	slot_getallattrs(slot);
	LicenseKeyRowFromValues(row, slot->tts_values, slot->tts_isnull, Catalog.key_attnums);
	return true;
}

/*
 * The hot-path lookup: the key of an organization by a direct scan of the
 * unique (organization_id, key) index under the statement's snapshot.
 */
bool
LicenseKeyLookup(const pg_uuid_t *organization_id, text *canonical, LicenseKeyRow *row)
{
	ScanKeyData skey[2];

	CatalogLoad();
	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ,
				UUIDPGetDatum(organization_id));
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   Catalog.key_collation, F_TEXTEQ, PointerGetDatum(canonical));
	return BenefitsIndexFetch(Catalog.keys_relid, Catalog.keys_indexid, skey, 2, ReadKeyRow, row);
}

/* Whether the database's activations keep history (0.2.0's schema). */
bool
LicenseActivationsKeepHistory(void)
{
	CatalogLoad();
	return Catalog.act_deactivated_at != InvalidAttrNumber;
}

/*
 * Whether the activation in slot belongs to the key, is live (not
 * deactivated) and, when a fingerprint is given, carries exactly it.
 */
static bool
ActivationMatches(TupleTableSlot *slot, const pg_uuid_t *license_key_id, text *fingerprint)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, Catalog.act_license_key_id, &isnull);
	text	   *stored;

	if (memcmp(DatumGetUUIDP(value), license_key_id, sizeof(pg_uuid_t)) != 0)
		return false;
	if (Catalog.act_deactivated_at != InvalidAttrNumber)
	{
		(void) slot_getattr(slot, Catalog.act_deactivated_at, &isnull);
		if (!isnull)
			return false;
	}
	if (fingerprint == NULL)
		return true;
	value = slot_getattr(slot, Catalog.act_fingerprint, &isnull);
	if (isnull)
		return false;
	stored = DatumGetTextPP(value);
	return VARSIZE_ANY_EXHDR(stored) == VARSIZE_ANY_EXHDR(fingerprint) &&
		memcmp(VARDATA_ANY(stored), VARDATA_ANY(fingerprint), VARSIZE_ANY_EXHDR(stored)) == 0;
}

/* What ActivationFetch looks for and receives. */
typedef struct ActivationWanted
{
	const pg_uuid_t *license_key_id;
	text	   *fingerprint;
	pg_uuid_t  *found_id;
	Jsonb	  **conditions;
} ActivationWanted;

/* BenefitsIndexFetch's reader of an activation: the wanted one, live. */
static bool
ReadActivation(TupleTableSlot *slot, void *arg)
{
	ActivationWanted *wanted = arg;
	bool		isnull;
	Datum		value;

	if (!ActivationMatches(slot, wanted->license_key_id, wanted->fingerprint))
		return false;
	value = slot_getattr(slot, Catalog.act_id, &isnull);
	memcpy(wanted->found_id, DatumGetUUIDP(value), sizeof(pg_uuid_t));
	value = slot_getattr(slot, Catalog.act_conditions, &isnull);
	*wanted->conditions = isnull ? NULL : DatumGetJsonbPCopy(value);
	return true;
}

/*
 * A live activation of the given key by a direct index scan: by its id (the
 * primary key) or, without one, by its fingerprint (the unique index of live
 * fingerprints); given both, the activation of that id must carry that
 * fingerprint.  *found_id and *conditions receive its id and stored
 * conditions.  False when there is no such activation, it belongs to another
 * key or it was deactivated.
 */
static bool
ActivationFetch(const pg_uuid_t *activation_id, text *fingerprint,
				const pg_uuid_t *license_key_id, pg_uuid_t *found_id, Jsonb **conditions)
{
	ActivationWanted wanted = {license_key_id, fingerprint, found_id, conditions};
	ScanKeyData skey[2];

	CatalogLoad();
	if (activation_id != NULL)
	{
		ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(activation_id));
		return BenefitsIndexFetch(Catalog.activations_relid, Catalog.activations_indexid, skey, 1,
								  ReadActivation, &wanted);
	}
	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(license_key_id));
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   Catalog.fingerprint_collation, F_TEXTEQ, PointerGetDatum(fingerprint));
	return BenefitsIndexFetch(Catalog.activations_relid, Catalog.fingerprint_indexid, skey, 2,
							  ReadActivation, &wanted);
}

/*
 * The locking lookup: the key row locked FOR NO KEY UPDATE (inside an SPI
 * connection).  In READ COMMITTED a concurrent change is waited for and the
 * newest version is checked, so a key revoked meanwhile answers revoked.
 */
static bool
KeyLock(const pg_uuid_t *organization_id, text *canonical, LicenseKeyRow *row,
		MemoryContext rowcxt)
{
	static const AttrNumber positions[KF_COUNT] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		args[2];
	Datum		values[KF_COUNT];
	bool		nulls[KF_COUNT];
	int			ret;
	MemoryContext old;

	args[0] = UUIDPGetDatum(organization_id);
	args[1] = PointerGetDatum(canonical);
	ret = SPI_execute_plan(BenefitsPlan(&LockKeyPlan,
								"SELECT " KEY_COLUMNS " FROM benefits.license_keys"
								" WHERE organization_id = $1 AND key = $2 FOR NO KEY UPDATE",
								2, types),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "license key lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
	/* The row outlives the SPI connection: copy it into the caller's memory. */
	old = MemoryContextSwitchTo(rowcxt);
	LicenseKeyRowFromValues(row, values, nulls, positions);
	MemoryContextSwitchTo(old);
	return true;
}

/* A text argument as a canonical key, or NULL when it cannot be a key. */
text *
LicenseKeyArgument(FunctionCallInfo fcinfo, int argno)
{
	text	   *input;
	char	   *canonical;

	if (PG_ARGISNULL(argno))
		return NULL;
	input = PG_GETARG_TEXT_PP(argno);
	canonical = LicenseKeyCanonical(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input));
	return canonical ? cstring_to_text(canonical) : NULL;
}

/*
 * A machine's fingerprint as an application sends it: 1 to
 * ACTIVATION_FINGERPRINT_MAX bytes of text without control characters
 * (SQLSTATE 22023); NULL when not given.  Only 0.2.0's SQL passes one.
 */
text *
LicenseFingerprintArgument(FunctionCallInfo fcinfo, int argno)
{
	text	   *fingerprint;
	const char *p;
	int			len;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	fingerprint = PG_GETARG_TEXT_PP(argno);
	p = VARDATA_ANY(fingerprint);
	len = VARSIZE_ANY_EXHDR(fingerprint);
	if (len == 0 || len > ACTIVATION_FINGERPRINT_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("fingerprint must be 1 to %d bytes", ACTIVATION_FINGERPRINT_MAX),
				errdetail("It has %d bytes.", len));
	for (int i = 0; i < len; i++)
		if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("fingerprint must not contain control characters"),
					errdetail("Byte %d is 0x%02x.", i + 1, (unsigned char) p[i]));
	return fingerprint;
}

/*
 * The checks every call with a key makes first, in the documented order:
 * revoked, disabled, expired.  NULL when the key passes them.
 */
const char *
LicenseKeyRefusal(const LicenseKeyRow *row, TimestampTz now, const char **message)
{
	if (row->status == LICENSE_KEY_REVOKED)
	{
		*message = "License key has been revoked.";
		return "revoked";
	}
	if (row->status == LICENSE_KEY_DISABLED)
	{
		*message = "License key is disabled.";
		return "disabled";
	}
	if (row->has_expires && row->expires_at <= now)
	{
		*message = "License key has expired.";
		return "expired";
	}
	return NULL;
}

/* A NULL organization is a programming error, the same for every call. */
static void
RequireOrganization(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("organization_id must not be null"));
}

/* A jsonb argument that must be an object; NULL counts as {}. */
static Jsonb *
ObjectArgument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Jsonb	   *value;

	if (PG_ARGISNULL(argno))
		return NULL;
	value = PG_GETARG_JSONB_P(argno);
	if (!JB_ROOT_IS_OBJECT(value))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be a JSON object", name),
				errdetail("Got a JSON %s.", JB_ROOT_IS_SCALAR(value) ? "scalar" : "array"));
	return value;
}

/*
 * An object argument that is stored with an activation, so bounded in size
 * (the stored jsonb form, which is close to the JSON text's length).
 */
static Jsonb *
StoredObjectArgument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Jsonb	   *value = ObjectArgument(fcinfo, argno, name);

	if (value != NULL && VARSIZE(value) - VARHDRSZ > ACTIVATION_JSON_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("%s must be at most %d bytes", name, ACTIVATION_JSON_MAX),
				errdetail("It has %d bytes as stored.", (int) (VARSIZE(value) - VARHDRSZ)));
	return value;
}

static Jsonb *
EmptyObject(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

/*
 * The result type of validate_license or activate_license.  A function in
 * FROM is set up afresh at every execution, so nothing kept in fn_extra
 * outlives one call; the type is remembered here, per function.
 */
typedef struct ResultType
{
	Oid			function;
	Oid			type;
} ResultType;

static ResultType ValidationResult;
static ResultType ActivationResult;

/*
 * The called function's result as a row of its composite type, formed with
 * the type cache's descriptor (a named composite type needs no blessing).
 * The descriptor is fetched just before the row is formed, after every lock
 * the call takes, so an invalidation those accept cannot free it under us.
 */
static Datum
ResultTuple(FunctionCallInfo fcinfo, ResultType *result, Datum *values, bool *nulls)
{
	TypeCacheEntry *type;

	if (result->function != fcinfo->flinfo->fn_oid)
	{
		Oid			result_type = get_func_rettype(fcinfo->flinfo->fn_oid);

		if (!type_is_rowtype(result_type) || result_type == RECORDOID)
			elog(ERROR, "return type must be a named row type");
		result->type = result_type;
		result->function = fcinfo->flinfo->fn_oid;
	}
	type = lookup_type_cache(result->type, TYPECACHE_TUPDESC);
	if (type->tupDesc == NULL)
		elog(ERROR, "type %u is not a row type", result->type);
	return HeapTupleGetDatum(heap_form_tuple(type->tupDesc, values, nulls));
}

/*
 * The key's fields of a validation result.  counted: the validation was just
 * counted in shared memory and pending/pending_last are the counts waiting
 * there; otherwise they are looked up.
 */
static void
ValidationKeyFields(Datum *values, bool *nulls, LicenseKeyRow *row, bool counted,
					int64 pending, TimestampTz pending_last)
{

	values[LV_LICENSE_KEY_ID] = UUIDPGetDatum(&row->id);
	nulls[LV_LICENSE_KEY_ID] = false;
	values[LV_CUSTOMER_ID] = UUIDPGetDatum(&row->customer_id);
	nulls[LV_CUSTOMER_ID] = false;
	values[LV_BENEFIT_ID] = UUIDPGetDatum(&row->benefit_id);
	nulls[LV_BENEFIT_ID] = !row->has_benefit;
	values[LV_DISPLAY_KEY] = PointerGetDatum(row->display_key);
	nulls[LV_DISPLAY_KEY] = false;
	values[LV_STATUS] = PointerGetDatum(row->status_text);
	nulls[LV_STATUS] = false;
	values[LV_EXPIRES_AT] = TimestampTzGetDatum(row->expires_at);
	nulls[LV_EXPIRES_AT] = !row->has_expires;
	values[LV_USAGE] = Int32GetDatum(row->usage);
	nulls[LV_USAGE] = false;
	values[LV_LIMIT_USAGE] = Int32GetDatum(row->limit_usage);
	nulls[LV_LIMIT_USAGE] = !row->has_limit_usage;
	values[LV_LIMIT_ACTIVATIONS] = Int32GetDatum(row->limit_activations);
	nulls[LV_LIMIT_ACTIVATIONS] = !row->has_limit_activations;

	/* Counters: what is stored plus what still waits for a flush. */
	if (!counted)
		LicenseStatsPending(&row->id, &pending, &pending_last);
	values[LV_VALIDATIONS] = Int64GetDatum(row->validations + pending);
	nulls[LV_VALIDATIONS] = false;
	if (pending > 0 && (!row->has_last_validated || pending_last > row->last_validated_at))
	{
		values[LV_LAST_VALIDATED_AT] = TimestampTzGetDatum(pending_last);
		nulls[LV_LAST_VALIDATED_AT] = false;
	}
	else
	{
		values[LV_LAST_VALIDATED_AT] = TimestampTzGetDatum(row->last_validated_at);
		nulls[LV_LAST_VALIDATED_AT] = !row->has_last_validated;
	}
}

/* A validation result not yet decided: not valid, every key field NULL. */
static void
ValidationStart(Datum *values, bool *nulls)
{
	memset(nulls, true, sizeof(bool) * LV_COUNT);
	values[LV_VALID] = BoolGetDatum(false);
	nulls[LV_VALID] = false;
	nulls[LV_CODE] = false;
	nulls[LV_MESSAGE] = false;
}

/* The not_found answer: the same for every reason, with no other field set. */
static Datum
ValidationNotFound(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	values[LV_CODE] = CStringGetTextDatum("not_found");
	values[LV_MESSAGE] = CStringGetTextDatum("License key not found.");
	return ResultTuple(fcinfo, &ValidationResult, values, nulls);
}

/* BenefitsIndexFetch's reader of a benefit's conditions_match (into *subset). */
static bool
ReadConditionsMatch(TupleTableSlot *slot, void *subset)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, Catalog.benefit_properties, &isnull);
	char	   *rule = isnull ? NULL : BenefitsJsonText(DatumGetJsonbP(value), "conditions_match");

	*(bool *) subset = rule != NULL && strcmp(rule, "subset") == 0;
	return true;
}

/*
 * Whether the benefit matches conditions as a subset (its properties'
 * conditions_match), by a direct primary-key scan: read only when the exact
 * comparison failed, so the common path pays nothing for it.
 */
static bool
BenefitMatchesSubset(const pg_uuid_t *benefit_id)
{
	ScanKeyData skey[1];
	bool		subset = false;

	CatalogLoad();
	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(benefit_id));
	(void) BenefitsIndexFetch(Catalog.benefits_relid, Catalog.benefits_indexid, skey, 1,
							  ReadConditionsMatch, &subset);
	return subset;
}

/* A JSON value as a jsonb datum, for comparison with jsonb_eq. */
static Datum
JsonbValueDatum(JsonbValue *value)
{
	return JsonbPGetDatum(JsonbValueToJsonb(value));
}

/*
 * Polar's rule: every condition stored with the activation has the same
 * value among the given ones (an activation stored without conditions
 * accepts any); given conditions the activation does not have are ignored.
 */
static bool
ConditionsSubset(Jsonb *stored, Jsonb *given)
{
	JsonbIterator *it = JsonbIteratorInit(&stored->root);
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;

	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		JsonbValue *other;

		if (token != WJB_KEY)
			continue;
		token = JsonbIteratorNext(&it, &value, true);
		Assert(token == WJB_VALUE);
		other = getKeyJsonValueFromContainer(&given->root, key.val.string.val, key.val.string.len, NULL);
		if (other == NULL ||
			!DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbValueDatum(&value), JsonbValueDatum(other))))
			return false;
	}
	return true;
}

/*
 * Whether the given conditions match an activation's stored ones: exactly
 * (the default, a key present on one side only is a mismatch), or as a
 * subset when the key's benefit has conditions_match = subset.
 */
static bool
ConditionsMatch(Jsonb *stored, Jsonb *given, const LicenseKeyRow *row)
{
	if (DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(stored), JsonbPGetDatum(given))))
		return true;
	return row->has_benefit && BenefitMatchesSubset(&row->benefit_id) && ConditionsSubset(stored, given);
}

/*
 * benefits.validate_license(key, organization_id, activation_id, benefit_id,
 * customer_id, increment_usage, conditions, fingerprint)
 * -> benefits.license_validation
 *
 * Not SECURITY DEFINER: its read path makes direct index lookups, which
 * check no privileges, and the definer switch would cost a few percent of
 * that path.  The writing path (increment_usage) runs its SPI statements as
 * the function's owner with the search path pinned (BenefitsBecomeOwner), as
 * a definer function would; like one, it leaves restoring the caller's
 * identity after an error to the transaction's abort.  A fingerprint names
 * an activation as activation_id does (both given: the same one).
 */
Datum
validate_license(PG_FUNCTION_ARGS)
{
	Datum		values[LV_COUNT];
	bool		nulls[LV_COUNT];
	text	   *canonical;
	pg_uuid_t  *organization_id;
	bool		increment = !PG_ARGISNULL(5);
	int32		increment_usage = 0;
	Jsonb	   *conditions;
	text	   *fingerprint;
	LicenseKeyRow row;
	bool		found;
	const char *code;
	const char *message;
	char		usage_message[80];
	TimestampTz now = GetCurrentStatementStartTimestamp();
	MemoryContext callercxt = CurrentMemoryContext;
	bool		counted = false;
	int64		pending = 0;
	TimestampTz pending_last = 0;
	OwnerSwitch caller = {0};
	pg_uuid_t	activation_id;

	RequireOrganization(fcinfo, 1);
	organization_id = PG_GETARG_UUID_P(1);
	if (increment)
	{
		increment_usage = PG_GETARG_INT32(5);
		if (increment_usage <= 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("increment_usage must be a positive integer"),
					errdetail("Got %d.", increment_usage));
	}
	conditions = ObjectArgument(fcinfo, 6, "conditions");
	fingerprint = LicenseFingerprintArgument(fcinfo, 7);
	ValidationStart(values, nulls);

	canonical = LicenseKeyArgument(fcinfo, 0);
	if (canonical == NULL)
		found = false;
	else if (increment)
	{
		BenefitsBecomeOwner(fcinfo, &caller);
		BenefitsSpiConnect();
		found = KeyLock(organization_id, canonical, &row, callercxt);
	}
	else
		found = LicenseKeyLookup(organization_id, canonical, &row);

	if (!found)
	{
		if (increment && canonical != NULL)
		{
			SPI_finish();
			BenefitsRestoreCaller(&caller);
		}
		PG_RETURN_DATUM(ValidationNotFound(fcinfo, values, nulls));
	}

	code = LicenseKeyRefusal(&row, now, &message);
	if (code == NULL && (!PG_ARGISNULL(2) || fingerprint != NULL))
	{
		Jsonb	   *stored = NULL;

		if (!ActivationFetch(PG_ARGISNULL(2) ? NULL : PG_GETARG_UUID_P(2), fingerprint,
							 &row.id, &activation_id, &stored))
		{
			code = "activation_not_found";
			message = "Activation not found for this license key.";
		}
		else
		{
			values[LV_ACTIVATION_ID] = UUIDPGetDatum(&activation_id);
			nulls[LV_ACTIVATION_ID] = false;
			if (stored == NULL)
				stored = EmptyObject();
			if (conditions == NULL)
				conditions = EmptyObject();
			if (!ConditionsMatch(stored, conditions, &row))
			{
				code = "conditions_mismatch";
				message = "The conditions do not match the activation's conditions.";
			}
		}
	}
	if (code == NULL && !PG_ARGISNULL(3) &&
		(!row.has_benefit ||
		 memcmp(PG_GETARG_UUID_P(3), &row.benefit_id, sizeof(pg_uuid_t)) != 0))
	{
		code = "benefit_mismatch";
		message = "License key does not belong to this benefit.";
	}
	if (code == NULL && !PG_ARGISNULL(4) &&
		memcmp(PG_GETARG_UUID_P(4), &row.customer_id, sizeof(pg_uuid_t)) != 0)
	{
		code = "customer_mismatch";
		message = "License key does not belong to this customer.";
	}
	if (code == NULL && increment && row.has_limit_usage &&
		(int64) row.usage + increment_usage > row.limit_usage)
	{
		code = "usage_exceeded";
		snprintf(usage_message, sizeof(usage_message),
				 "License key only has %d more usages.", Max(row.limit_usage - row.usage, 0));
		message = usage_message;
	}

	if (code == NULL)
	{
		code = "valid";
		message = "License key is valid.";
		values[LV_VALID] = BoolGetDatum(true);
		if (increment)
		{
			Oid			types[3] = {UUIDOID, INT4OID, TIMESTAMPTZOID};
			Datum		args[3];
			bool		isnull;
			int			ret;

			/* The row is locked: its usage cannot move under us. */
			args[0] = UUIDPGetDatum(&row.id);
			args[1] = Int32GetDatum(increment_usage);
			args[2] = TimestampTzGetDatum(now);
			ret = SPI_execute_plan(BenefitsPlan(&IncrementUsagePlan,
										"UPDATE benefits.license_keys"
										"   SET usage = usage + $2, validations = validations + 1,"
										"       last_validated_at = GREATEST(last_validated_at, $3)"
										" WHERE id = $1"
										" RETURNING usage, validations, last_validated_at",
										3, types),
								   args, NULL, false, 1);
			if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
				elog(ERROR, "could not record license key usage");
			row.usage = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			row.validations = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			row.last_validated_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
			row.has_last_validated = !isnull;
		}
		else
		{
			LicenseStatsCount(&row.id, now, &pending, &pending_last);
			counted = true;
		}
	}
	if (increment)
	{
		SPI_finish();
		BenefitsRestoreCaller(&caller);
	}

	values[LV_CODE] = CStringGetTextDatum(code);
	values[LV_MESSAGE] = CStringGetTextDatum(message);
	ValidationKeyFields(values, nulls, &row, counted, pending, pending_last);
	PG_RETURN_DATUM(ResultTuple(fcinfo, &ValidationResult, values, nulls));
}

/*
 * benefits.heartbeat_license(key, organization_id, activation_id)
 * -> benefits.license_validation: the activation's machine is alive.  One
 * UPDATE of the activation row (heartbeat_at), after the key's checks; an
 * activation that was deactivated or released meanwhile answers
 * activation_not_found.  run_maintenance releases the live activations of a
 * benefit with activations.heartbeat whose last heartbeat (or activation) is
 * older than twice the interval (subscriptions.c, ReleaseSilentActivations).
 * The UPDATE and the release both re-check their row in READ COMMITTED, so a
 * heartbeat either keeps its activation or learns it was released.
 */
Datum
heartbeat_license(PG_FUNCTION_ARGS)
{
	Datum		values[LV_COUNT];
	bool		nulls[LV_COUNT];
	text	   *canonical;
	LicenseKeyRow row;
	const char *code;
	const char *message;
	TimestampTz now = GetCurrentStatementStartTimestamp();
	pg_uuid_t	activation_id;

	RequireOrganization(fcinfo, 1);
	BenefitsRequireArgument(fcinfo, 2, "activation_id", ERRCODE_INVALID_PARAMETER_VALUE);
	activation_id = *PG_GETARG_UUID_P(2);
	ValidationStart(values, nulls);

	canonical = LicenseKeyArgument(fcinfo, 0);
	if (canonical == NULL || !LicenseKeyLookup(PG_GETARG_UUID_P(1), canonical, &row))
		PG_RETURN_DATUM(ValidationNotFound(fcinfo, values, nulls));
	code = LicenseKeyRefusal(&row, now, &message);
	if (code == NULL)
	{
		Oid			types[3] = {UUIDOID, UUIDOID, TIMESTAMPTZOID};
		Datum		args[3] = {UUIDPGetDatum(&activation_id), UUIDPGetDatum(&row.id),
		TimestampTzGetDatum(now)};

		ConnectPinned();
		BenefitsExec(BenefitsPlan(&HeartbeatPlan,
								  "UPDATE benefits.license_key_activations SET heartbeat_at = $3"
								  " WHERE id = $1 AND license_key_id = $2 AND deactivated_at IS NULL",
								  3, types),
					 args, NULL, false, 0);
		if (SPI_processed == 0)
		{
			code = "activation_not_found";
			message = "Activation not found for this license key.";
		}
		else
		{
			code = "valid";
			message = "License key is valid.";
			values[LV_VALID] = BoolGetDatum(true);
			values[LV_ACTIVATION_ID] = UUIDPGetDatum(&activation_id);
			nulls[LV_ACTIVATION_ID] = false;
		}
		FinishPinned();
	}
	values[LV_CODE] = CStringGetTextDatum(code);
	values[LV_MESSAGE] = CStringGetTextDatum(message);
	ValidationKeyFields(values, nulls, &row, false, 0, 0);
	PG_RETURN_DATUM(ResultTuple(fcinfo, &ValidationResult, values, nulls));
}

/* An activation result: ok, code and message over the fields filled in. */
static Datum
ActivationOutcome(FunctionCallInfo fcinfo, Datum *values, bool *nulls,
				  const char *code, const char *message)
{
	values[LA_OK] = BoolGetDatum(strcmp(code, "activated") == 0);
	nulls[LA_OK] = false;
	values[LA_CODE] = CStringGetTextDatum(code);
	nulls[LA_CODE] = false;
	values[LA_MESSAGE] = CStringGetTextDatum(message);
	nulls[LA_MESSAGE] = false;
	return ResultTuple(fcinfo, &ActivationResult, values, nulls);
}

/* The label argument of activate_license: not blank, at most ACTIVATION_LABEL_MAX characters. */
static text *
LabelArgument(FunctionCallInfo fcinfo, int argno)
{
	text	   *label;
	const char *p;
	int			len;
	bool		blank = true;

	BenefitsRequireArgument(fcinfo, argno, "label", ERRCODE_INVALID_PARAMETER_VALUE);
	label = PG_GETARG_TEXT_PP(argno);
	p = VARDATA_ANY(label);
	len = VARSIZE_ANY_EXHDR(label);
	for (int i = 0; i < len && blank; i++)
		blank = isspace((unsigned char) p[i]);
	if (blank)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("label must not be empty"));
	if (pg_mbstrlen_with_len(p, len) > ACTIVATION_LABEL_MAX)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("label must be at most %d characters", ACTIVATION_LABEL_MAX),
				errdetail("It has %d.", pg_mbstrlen_with_len(p, len)));
	return label;
}

/*
 * A statement of the activations in the form of the database's schema: 0.2.0
 * keeps history (history_sql), 0.1.0 does not (plain_sql).  Each form is
 * prepared once and kept.
 */
typedef struct SchemaPlans
{
	SPIPlanPtr	history;
	SPIPlanPtr	plain;
} SchemaPlans;

static SchemaPlans CountActivationsPlans;
static SchemaPlans InsertActivationPlans;
static SchemaPlans DeactivatePlans;

static SPIPlanPtr
SchemaPlan(SchemaPlans *plans, const char *history_sql, const char *plain_sql, int nargs, const Oid *types)
{
	if (LicenseActivationsKeepHistory())
		return BenefitsPlan(&plans->history, history_sql, nargs, types);
	return BenefitsPlan(&plans->plain, plain_sql, nargs, types);
}

/* The number of live activations of a key (inside the SPI connection, key locked). */
static int64
CountActivations(const pg_uuid_t *license_key_id)
{
	Oid			types[1] = {UUIDOID};
	Datum		args[1] = {UUIDPGetDatum(license_key_id)};
	bool		isnull;
	SPIPlanPtr	plan = SchemaPlan(&CountActivationsPlans,
								  "SELECT count(*) FROM benefits.license_key_activations"
								  " WHERE license_key_id = $1 AND deactivated_at IS NULL",
								  "SELECT count(*) FROM benefits.license_key_activations"
								  " WHERE license_key_id = $1", 1, types);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count license key activations");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The activation's fields of a result from the first row of the last SPI
 * result, whose columns are id, conditions, created_at; label and meta are
 * the ones just written.  The id is copied to *activation_id.
 */
static void
ActivationFields(Datum *values, bool *nulls, pg_uuid_t *activation_id, text *label, Jsonb *meta)
{
	HeapTuple	tuple = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;

	memcpy(activation_id, DatumGetUUIDP(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "id"), &isnull)),
		   sizeof(pg_uuid_t));
	values[LA_ACTIVATION_ID] = UUIDPGetDatum(activation_id);
	nulls[LA_ACTIVATION_ID] = false;
	/* Into the caller's memory: SPI's goes at SPI_finish. */
	values[LA_CONDITIONS] = SPI_datumTransfer(SPI_getbinval(tuple, desc, SPI_fnumber(desc, "conditions"), &isnull),
											  false, -1);
	nulls[LA_CONDITIONS] = false;
	values[LA_CREATED_AT] = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "created_at"), &isnull);
	nulls[LA_CREATED_AT] = false;
	values[LA_LABEL] = PointerGetDatum(label);
	nulls[LA_LABEL] = false;
	values[LA_META] = JsonbPGetDatum(meta);
	nulls[LA_META] = false;
}

/*
 * Activating a fingerprint that already has a live activation of the key:
 * the same activation comes back with its label and meta updated, and no
 * seat is taken.  False when the fingerprint has no live activation.
 */
static bool
Reactivate(const pg_uuid_t *license_key_id, text *fingerprint, text *label, Jsonb *meta,
		   Datum *values, bool *nulls, pg_uuid_t *activation_id)
{
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		args[4] = {UUIDPGetDatum(license_key_id), PointerGetDatum(fingerprint),
	PointerGetDatum(label), JsonbPGetDatum(meta)};

	BenefitsExec(BenefitsPlan(&ReactivatePlan,
							  "UPDATE benefits.license_key_activations"
							  "   SET label = $3, meta = $4, modified_at = pg_catalog.now()"
							  " WHERE license_key_id = $1 AND fingerprint = $2 AND deactivated_at IS NULL"
							  " RETURNING id, conditions, created_at",
							  4, types),
				 args, NULL, false, 0);
	if (SPI_processed == 0)
		return false;
	ActivationFields(values, nulls, activation_id, label, meta);
	return true;
}

/* A new activation of the locked key (fingerprint NULL when not given). */
static void
InsertActivation(const pg_uuid_t *license_key_id, text *label, Jsonb *conditions, Jsonb *meta,
				 text *fingerprint, Datum *values, bool *nulls, pg_uuid_t *activation_id)
{
	Oid			types[5] = {UUIDOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID};
	Datum		args[5] = {UUIDPGetDatum(license_key_id), PointerGetDatum(label),
		JsonbPGetDatum(conditions), JsonbPGetDatum(meta), PointerGetDatum(fingerprint)};
	char		arg_nulls[5] = {' ', ' ', ' ', ' ', fingerprint ? ' ' : 'n'};

	/*
	 * A new version of the key row: a concurrent REPEATABLE READ or
	 * SERIALIZABLE activation that counted under an older snapshot then fails
	 * to lock the row (serialization failure) instead of also inserting.
	 * READ COMMITTED callers wait on the lock and count again with a fresh
	 * snapshot.
	 */
	BenefitsExec(BenefitsPlan(&TouchKeyPlan,
							  "UPDATE benefits.license_keys SET modified_at = modified_at WHERE id = $1",
							  1, types),
				 args, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "could not lock license key for activation");
	BenefitsExec(SchemaPlan(&InsertActivationPlans,
							"INSERT INTO benefits.license_key_activations"
							" (license_key_id, label, conditions, meta, fingerprint)"
							" VALUES ($1, $2, $3, $4, $5) RETURNING id, conditions, created_at",
							"INSERT INTO benefits.license_key_activations"
							" (license_key_id, label, conditions, meta)"
							" VALUES ($1, $2, $3, $4) RETURNING id, conditions, created_at",
							5, types),
				 args, arg_nulls, false, 1);
	if (SPI_processed != 1)
		elog(ERROR, "could not insert license key activation");
	ActivationFields(values, nulls, activation_id, label, meta);
}

/*
 * benefits.activate_license(key, organization_id, label, conditions, meta,
 * fingerprint) -> benefits.license_activation.  Counting and inserting
 * happen under the key's row lock, so concurrent activations never exceed
 * limit_activations; a fingerprint already activated (live) on the key gets
 * its activation back (same id, no new seat, label and meta updated), and
 * the unique index of live fingerprints holds whoever writes the table.
 */
Datum
activate_license(PG_FUNCTION_ARGS)
{
	Datum		values[LA_COUNT];
	bool		nulls[LA_COUNT];
	text	   *canonical;
	text	   *label;
	Jsonb	   *conditions;
	Jsonb	   *meta;
	text	   *fingerprint;
	LicenseKeyRow row;
	int64		activations;
	const char *code;
	const char *message;
	char		limit_message[80];
	pg_uuid_t	activation_id;
	MemoryContext callercxt = CurrentMemoryContext;

	RequireOrganization(fcinfo, 1);
	label = LabelArgument(fcinfo, 2);
	conditions = StoredObjectArgument(fcinfo, 3, "conditions");
	meta = StoredObjectArgument(fcinfo, 4, "meta");
	fingerprint = LicenseFingerprintArgument(fcinfo, 5);
	if (conditions == NULL)
		conditions = EmptyObject();
	if (meta == NULL)
		meta = EmptyObject();

	memset(nulls, true, sizeof(nulls));
	canonical = LicenseKeyArgument(fcinfo, 0);
	if (canonical == NULL)
		PG_RETURN_DATUM(ActivationOutcome(fcinfo, values, nulls, "not_found", "License key not found."));

	ConnectPinned();
	if (!KeyLock(PG_GETARG_UUID_P(1), canonical, &row, callercxt))
	{
		FinishPinned();
		PG_RETURN_DATUM(ActivationOutcome(fcinfo, values, nulls, "not_found", "License key not found."));
	}

	code = LicenseKeyRefusal(&row, GetCurrentStatementStartTimestamp(), &message);
	if (code == NULL && !row.has_limit_activations)
	{
		code = "activations_unsupported";
		message = "License key does not support activations.";
	}
	else if (code == NULL)
	{
		if (fingerprint != NULL &&
			Reactivate(&row.id, fingerprint, label, meta, values, nulls, &activation_id))
		{
			code = "activated";
			message = "License key activated again on this machine.";
			activations = CountActivations(&row.id);
		}
		else if ((activations = CountActivations(&row.id)) >= row.limit_activations)
		{
			code = "activation_limit_reached";
			snprintf(limit_message, sizeof(limit_message),
					 "License key activation limit of %d reached.", row.limit_activations);
			message = limit_message;
		}
		else
		{
			InsertActivation(&row.id, label, conditions, meta, fingerprint, values, nulls, &activation_id);
			activations++;
			code = "activated";
			message = "License key activated.";
		}
		values[LA_ACTIVATIONS] = Int32GetDatum((int32) activations);
		nulls[LA_ACTIVATIONS] = false;
	}
	FinishPinned();

	values[LA_LICENSE_KEY_ID] = UUIDPGetDatum(&row.id);
	nulls[LA_LICENSE_KEY_ID] = false;
	values[LA_LIMIT_ACTIVATIONS] = Int32GetDatum(row.limit_activations);
	nulls[LA_LIMIT_ACTIVATIONS] = !row.has_limit_activations;
	PG_RETURN_DATUM(ActivationOutcome(fcinfo, values, nulls, code, message));
}

/*
 * benefits.deactivate_license(key, organization_id, activation_id) -> boolean:
 * true when a live activation existed on that key and was deactivated.  The
 * row stays as history (deactivated_at) and its seat is free; its
 * fingerprint may activate again.  (Under 0.1.0's schema the row is
 * deleted.)  An unknown, malformed or foreign key answers false, like an
 * unknown activation.
 */
Datum
deactivate_license(PG_FUNCTION_ARGS)
{
	text	   *canonical;
	LicenseKeyRow row;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		args[2];
	bool		removed;
	MemoryContext callercxt = CurrentMemoryContext;

	RequireOrganization(fcinfo, 1);
	BenefitsRequireArgument(fcinfo, 2, "activation_id", ERRCODE_INVALID_PARAMETER_VALUE);
	canonical = LicenseKeyArgument(fcinfo, 0);
	if (canonical == NULL)
		PG_RETURN_BOOL(false);

	ConnectPinned();
	if (!KeyLock(PG_GETARG_UUID_P(1), canonical, &row, callercxt))
	{
		FinishPinned();
		PG_RETURN_BOOL(false);
	}
	args[0] = PG_GETARG_DATUM(2);
	args[1] = UUIDPGetDatum(&row.id);
	BenefitsExec(SchemaPlan(&DeactivatePlans,
							"UPDATE benefits.license_key_activations"
							"   SET deactivated_at = pg_catalog.now(), modified_at = pg_catalog.now()"
							" WHERE id = $1 AND license_key_id = $2 AND deactivated_at IS NULL",
							"DELETE FROM benefits.license_key_activations"
							" WHERE id = $1 AND license_key_id = $2",
							2, types),
				 args, NULL, false, 0);
	removed = SPI_processed > 0;
	FinishPinned();
	PG_RETURN_BOOL(removed);
}
