/*
 * benefits.c — the bottom layer: small helpers every subsystem uses (kept
 * plans, checked SPI execution, uuids, jsonb values as text, the owner
 * switch).  It uses no other file of the extension.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/namespace.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "benefits.h"

/*
 * Prepared plans are kept for the backend's life; the plan cache re-plans
 * them when the extension's tables change (for example after DROP and CREATE
 * EXTENSION), since plans are revalidated from the query text.
 */
static SPIPlanPtr
KeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes, int options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

SPIPlanPtr
BenefitsPlan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	return KeptPlan(cache, sql, nargs, argtypes, 0);
}

/*
 * A kept plan that always runs its generic plan, for statements on a hot
 * path: the plan cache otherwise re-plans every call while it compares custom
 * plans with the generic one, and for an array argument (= ANY ($1)) it never
 * settles on the generic plan.
 */
SPIPlanPtr
BenefitsGenericPlan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	return KeptPlan(cache, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

Datum
UuidGetDatum(const pg_uuid_t *uuid)
{
	pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));

	memcpy(copy, uuid, sizeof(pg_uuid_t));
	return UUIDPGetDatum(copy);
}

pg_uuid_t
DatumGetUuid(Datum datum)
{
	return *DatumGetUUIDP(datum);
}

pg_uuid_t
BenefitsRandomUuid(void)
{
	pg_uuid_t	uuid;

	randombytes_buf(uuid.data, UUID_LEN);
	uuid.data[6] = (uuid.data[6] & 0x0f) | 0x40;	/* version 4 */
	uuid.data[8] = (uuid.data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return uuid;
}

/*
 * A jsonb value as ->> gives it: strings unquoted, numbers and booleans in
 * their text form, objects and arrays as JSON text; NULL for an absent value
 * or JSON null.
 */
char *
BenefitsJsonbValueText(JsonbValue *v)
{
	if (v == NULL)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return NULL;
	}
}

/* A uuid[] datum of n uuids: the array parameter of the set-based statements. */
Datum
BenefitsUuidArray(const pg_uuid_t *uuids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = UuidGetDatum(&uuids[i]);
	return PointerGetDatum(construct_array(elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}

/*
 * Run what follows as the calling function's owner, as a SECURITY DEFINER
 * function with SET search_path = pg_catalog, pg_temp would: the owner's
 * identity, in a security-restricted operation, and the search path pinned at
 * a GUC nest level of its own, whatever the function's SQL declaration says
 * (a library newer than a database's install script must be safe with it).
 * BenefitsRestoreCaller undoes both; after an error, the transaction's (or
 * subtransaction's) abort does.
 */
void
BenefitsBecomeOwner(FunctionCallInfo fcinfo, OwnerSwitch *saved)
{
	HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
	ReleaseSysCache(proc);
	GetUserIdAndSecContext(&saved->user, &saved->context);
	SetUserIdAndSecContext(owner, saved->context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Back to the caller's identity and search path after BenefitsBecomeOwner. */
void
BenefitsRestoreCaller(const OwnerSwitch *saved)
{
	AtEOXact_GUC(true, saved->guc_level);
	SetUserIdAndSecContext(saved->user, saved->context);
}

/* See benefits.h: one visible tuple by a unique index, read in place. */
bool
BenefitsIndexFetch(Oid relid, Oid indexid, ScanKey keys, int nkeys, BenefitsSlotReader reader, void *arg)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Relation	index = index_open(indexid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan = index_beginscan(rel, index, GetActiveSnapshot(), nkeys, 0);
	bool		found;

	index_rescan(scan, keys, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot) && reader(slot, arg);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return found;
}

/* Executes a kept plan, raising on any SPI failure. */
int
BenefitsExec(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return rc;
}

/* A uuid column of the last SPI result, which must not be null. */
pg_uuid_t
BenefitsResultUuid(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	if (isnull)
		elog(ERROR, "unexpected null uuid in column %d", col);
	return *DatumGetUUIDP(d);
}

/* A member of a JSON object as text (strings unquoted), or NULL when absent or null. */
char *
BenefitsJsonText(Jsonb *json, const char *key)
{
	JsonbValue *v;

	if (json == NULL || !JB_ROOT_IS_OBJECT(json))
		return NULL;
	v = getKeyJsonValueFromContainer(&json->root, key, strlen(key), NULL);
	return BenefitsJsonbValueText(v);
}

/* A uuid as text, for messages. */
char *
BenefitsUuidText(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(uuid)));
}

/* A NULL for a required argument, refused by name: one wording for every function. */
void
BenefitsRequireArgument(FunctionCallInfo fcinfo, int argno, const char *name, int sqlstate)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR, errcode(sqlstate), errmsg("%s must not be null", name));
}

/* SPI_connect, raising if it fails: every SPI connection of the extension. */
void
BenefitsSpiConnect(void)
{
	int			rc = SPI_connect();

	if (rc != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
}

/*
 * Whether benefits.grants keeps the history of deleted subscriptions and
 * orders (0.2.0's source_subscription_id and source_order_id): a database
 * still at 0.1.0's schema has neither, and its grants go with their source.
 */
bool
BenefitsGrantsKeepHistory(void)
{
	Oid			schema = get_namespace_oid(BENEFITS_SCHEMA, true);
	Oid			grants = OidIsValid(schema) ? get_relname_relid("grants", schema) : InvalidOid;

	return OidIsValid(grants) && get_attnum(grants, "source_subscription_id") != InvalidAttrNumber;
}

/*
 * A secret to hand out: nbytes from libsodium's CSPRNG in unpadded URL-safe
 * base64 (session tokens, link states), palloc'd; the raw bytes are wiped.
 */
char *
BenefitsRandomToken(size_t nbytes)
{
	unsigned char *random = palloc(nbytes);
	size_t		encoded_len = sodium_base64_ENCODED_LEN(nbytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	   *encoded = palloc(encoded_len);

	randombytes_buf(random, nbytes);
	sodium_bin2base64(encoded, encoded_len, random, nbytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(random, nbytes);
	pfree(random);
	return encoded;
}

/* The SHA-256 of len bytes as a bytea: how secrets handed out (tokens, states) are stored. */
bytea *
BenefitsSha256(const char *data, size_t len)
{
	bytea	   *hash = palloc(VARHDRSZ + crypto_hash_sha256_BYTES);

	SET_VARSIZE(hash, VARHDRSZ + crypto_hash_sha256_BYTES);
	crypto_hash_sha256((unsigned char *) VARDATA(hash), (const unsigned char *) data, len);
	return hash;
}

/*
 * Whether the benefits schema has relation name: a database still at an
 * older version's schema may not (the library serves every version it ships
 * a script for).
 */
bool
BenefitsHasRelation(const char *name)
{
	Oid			schema = get_namespace_oid(BENEFITS_SCHEMA, true);

	return OidIsValid(schema) && OidIsValid(get_relname_relid(name, schema));
}

/* A relation of the benefits schema, which must exist. */
Oid
BenefitsRelid(const char *name)
{
	Oid			nsp = get_namespace_oid(BENEFITS_SCHEMA, false);
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "relation %s.%s does not exist", BENEFITS_SCHEMA, name);
	return relid;
}

/* A column of a relation of the benefits schema, which must exist. */
AttrNumber
BenefitsColumnNumber(Oid relid, const char *name)
{
	AttrNumber	attnum = get_attnum(relid, name);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column %s of %s.%s does not exist", name, BENEFITS_SCHEMA, get_rel_name(relid));
	return attnum;
}
