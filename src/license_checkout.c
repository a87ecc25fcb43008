/*
 * license_checkout.c — signed offline licenses: each organization's Ed25519
 * signing keys (libsodium) and checkout_license, the license file an
 * application verifies without calling home.
 *
 * The file is armored text any language can read:
 *
 *     -----BEGIN BENEFITS LICENSE-----
 *     base64 of the envelope, in lines of 64 characters
 *     -----END BENEFITS LICENSE-----
 *
 * and the envelope is {"alg": "ed25519", "kid", "payload", "sig"}: payload
 * is the base64 of the payload's JSON bytes and sig the base64 of the
 * Ed25519 signature of exactly those bytes, so a verifier checks the
 * signature before it parses anything it signed (license_file.c builds the
 * envelope).  The payload holds the key
 * (id, display key, customer, benefit, status, usage, limits, expiry), the
 * activation when one is given, the features the customer holds, and the
 * file's own issued_at and expires_at (issued + ttl, never past the key's
 * expiry), all times RFC 3339 in UTC.  A key that does not validate gets no
 * file (NULL); a revoked key gets no new file, while files issued before
 * stay valid until they expire: the ttl bounds how long a revocation takes
 * to reach offline machines.
 *
 * Concurrency: checkout reads the key, the activation, the customer's
 * features and the current signing key under the statement's snapshot, by
 * direct index scans, and writes only an organization's first signing key
 * (through SPI), with ON CONFLICT on the one-current-key index, so
 * concurrent first checkouts agree on one key.  rotate_license_signing_key
 * locks the organization row (FOR NO KEY UPDATE) so rotations of one
 * organization run one after the other;
 * a checkout concurrent with a rotation signs with whichever key its
 * snapshot sees as current, and both stay listed.
 *
 * Secrets: the secret key is copied into backend memory for one signature
 * and that copy is wiped after it; it is never logged nor put in an error
 * message.  The table's secret column is readable by the extension's owner
 * only.  rotate_license_signing_key is SECURITY DEFINER; checkout_license,
 * like validate_license, is not and has no SET search_path (the two clauses
 * cost about a tenth of a checkout): its direct index scans resolve nothing
 * by name and check no privileges, and its one SPI path, an organization's
 * first key, runs as the owner under a pinned search path
 * (BenefitsBecomeOwner).
 */
#include "postgres.h"

#include <sodium.h>

#include "access/skey.h"
#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "license.h"
#include "license_file.h"
#include "portal_json.h"

PG_FUNCTION_INFO_V1(checkout_license);
PG_FUNCTION_INFO_V1(rotate_license_signing_key);

/* kid: the first bytes of the public key's SHA-256, in hex. */
#define SIGNING_KID_BYTES 8
/* The longest lifetime of a license file: an offline machine learns of a revocation within it. */
#define CHECKOUT_TTL_MAX_DAYS 366

/* The current signing key of an organization, as checkout uses it. */
typedef struct SigningKey
{
	char		kid[SIGNING_KID_BYTES * 2 + 1];
	unsigned char secret[crypto_sign_SECRETKEYBYTES];
} SigningKey;

/* An activation named in a checkout: its id, fingerprint and label. */
typedef struct CheckoutActivation
{
	char	   *id;
	char	   *fingerprint;	/* NULL when it has none */
	char	   *label;
} CheckoutActivation;

/* A new key pair's kid: hex of the first SIGNING_KID_BYTES of SHA-256(public key). */
static void
KidOf(const unsigned char *public_key, char *kid)
{
	unsigned char hash[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(hash, public_key, crypto_sign_PUBLICKEYBYTES);
	kid[hex_encode((const char *) hash, SIGNING_KID_BYTES, kid)] = '\0';
}

/* A bytea Datum of the given bytes, palloc'd. */
static Datum
ByteaDatum(const unsigned char *bytes, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), bytes, len);
	return PointerGetDatum(b);
}

/*
 * Inserts a new key pair as the organization's current one (inside an SPI
 * connection), unless a current key exists (a concurrent first checkout, or
 * a rotation, inserted one).  Returns whether it was written; *kid receives
 * the new kid.
 */
static bool
InsertSigningKey(const pg_uuid_t *organization_id, char *kid)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {TEXTOID, UUIDOID, BYTEAOID, BYTEAOID};
	Datum		args[4];
	unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
	unsigned char secret[crypto_sign_SECRETKEYBYTES];
	bytea	   *secret_datum;

	crypto_sign_keypair(public_key, secret);
	KidOf(public_key, kid);
	args[0] = CStringGetTextDatum(kid);
	args[1] = UuidGetDatum(organization_id);
	args[2] = ByteaDatum(public_key, sizeof(public_key));
	args[3] = ByteaDatum(secret, sizeof(secret));
	sodium_memzero(secret, sizeof(secret));
	secret_datum = DatumGetByteaP(args[3]);
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.license_signing_keys (kid, organization_id, public_key, secret_key)"
							  " VALUES ($1, $2, $3, $4)"
							  " ON CONFLICT (organization_id) WHERE retired_at IS NULL DO NOTHING",
							  4, types),
				 args, NULL, false, 0);
	sodium_memzero(VARDATA(secret_datum), crypto_sign_SECRETKEYBYTES);
	return SPI_processed == 1;
}

/* A concurrent writer of the organization's current key won: the caller retries. */
static void
ConcurrentSigningKey(void)
{
	ereport(ERROR,
			errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			errmsg("could not serialize access due to a concurrent change of the license signing key"),
			errhint("Retry the transaction."));
}

/* A signing key from its stored kid and secret, checked for shape. */
static void
SigningKeyFrom(text *kid, bytea *secret, SigningKey *key)
{
	if (VARSIZE_ANY_EXHDR(kid) != SIGNING_KID_BYTES * 2 || VARSIZE_ANY_EXHDR(secret) != crypto_sign_SECRETKEYBYTES)
		elog(ERROR, "benefits.license_signing_keys holds a malformed key");
	memcpy(key->kid, VARDATA_ANY(kid), SIGNING_KID_BYTES * 2);
	key->kid[SIGNING_KID_BYTES * 2] = '\0';
	memcpy(key->secret, VARDATA_ANY(secret), crypto_sign_SECRETKEYBYTES);
}

/* Where ReadSigningKey finds the columns, and the key it fills. */
typedef struct SigningKeyRead
{
	AttrNumber	kid;
	AttrNumber	secret_key;
	AttrNumber	retired_at;
	SigningKey *key;
} SigningKeyRead;

/* BenefitsIndexFetch's reader of the current signing key (not retired). */
static bool
ReadSigningKey(TupleTableSlot *slot, void *arg)
{
	SigningKeyRead *read = arg;
	bool		isnull;

	(void) slot_getattr(slot, read->retired_at, &isnull);
	if (!isnull)
		return false;
	SigningKeyFrom(DatumGetTextPP(slot_getattr(slot, read->kid, &isnull)),
				   DatumGetByteaPP(slot_getattr(slot, read->secret_key, &isnull)), read->key);
	return true;
}

/*
 * The organization's current key by a direct scan of the one-current-key
 * index under the statement's snapshot: the path of every checkout but an
 * organization's first.  False when it has none (visible) yet.
 */
static bool
LookupSigningKey(const pg_uuid_t *organization_id, SigningKey *key)
{
	Oid			relid = BenefitsRelid("license_signing_keys");
	SigningKeyRead read = {BenefitsColumnNumber(relid, "kid"), BenefitsColumnNumber(relid, "secret_key"),
	BenefitsColumnNumber(relid, "retired_at"), key};
	ScanKeyData skey[1];

	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(organization_id));
	return BenefitsIndexFetch(relid, BenefitsRelid("license_signing_keys_current"), skey, 1,
							  ReadSigningKey, &read);
}

/*
 * The organization's current key by SPI (inside a connection), which sees
 * what this transaction just inserted; false when it has none.
 */
static bool
FetchSigningKey(const pg_uuid_t *organization_id, SigningKey *key)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		args[1] = {UuidGetDatum(organization_id)};
	TupleDesc	desc;
	bool		isnull;

	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT kid, secret_key FROM benefits.license_signing_keys"
							  " WHERE organization_id = $1 AND retired_at IS NULL",
							  1, types),
				 args, NULL, false, 1);
	if (SPI_processed == 0)
		return false;
	desc = SPI_tuptable->tupdesc;
	SigningKeyFrom(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "kid"), &isnull)),
				   DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], desc,
												 SPI_fnumber(desc, "secret_key"), &isnull)),
				   key);
	return true;
}

/*
 * The organization's current key, created on first use: the only use of SPI
 * in a checkout, run as the function's owner under the pinned search path
 * (checkout_license is called with the caller's rights and search path).
 */
static void
CurrentSigningKey(FunctionCallInfo fcinfo, const pg_uuid_t *organization_id, SigningKey *key)
{
	char		kid[SIGNING_KID_BYTES * 2 + 1];
	OwnerSwitch owner;

	if (LookupSigningKey(organization_id, key))
		return;
	BenefitsBecomeOwner(fcinfo, &owner);
	BenefitsSpiConnect();
	(void) InsertSigningKey(organization_id, kid);
	if (!FetchSigningKey(organization_id, key))
		ConcurrentSigningKey();
	SPI_finish();
	BenefitsRestoreCaller(&owner);
}

/*
 * The ttl argument: positive and at most CHECKOUT_TTL_MAX_DAYS (months
 * counted as 30 days, as interval comparison does), SQLSTATE 22023.
 */
static Interval *
TtlArgument(FunctionCallInfo fcinfo, int argno)
{
	Interval   *ttl;
	Interval	max = {0};
	Interval	zero = {0};

	BenefitsRequireArgument(fcinfo, argno, "ttl", ERRCODE_INVALID_PARAMETER_VALUE);
	ttl = PG_GETARG_INTERVAL_P(argno);
	max.day = CHECKOUT_TTL_MAX_DAYS;
	if (DatumGetBool(DirectFunctionCall2(interval_le, IntervalPGetDatum(ttl), IntervalPGetDatum(&zero))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(ttl), IntervalPGetDatum(&max))))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("ttl must be positive and at most %d days", CHECKOUT_TTL_MAX_DAYS),
				errdetail("Got %s.", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(ttl)))));
	return ttl;
}

/* Where ReadActivation finds the columns, the key it must belong to, and the activation it fills. */
typedef struct ActivationRead
{
	AttrNumber	license_key_id;
	AttrNumber	fingerprint;
	AttrNumber	label;
	AttrNumber	deactivated_at;
	const pg_uuid_t *key_id;
	CheckoutActivation *activation;
} ActivationRead;

/* A nullable text column as a C string, NULL when null. */
static char *
SlotText(TupleTableSlot *slot, AttrNumber attnum)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* BenefitsIndexFetch's reader of an activation: the key's, and live. */
static bool
ReadActivation(TupleTableSlot *slot, void *arg)
{
	ActivationRead *read = arg;
	bool		isnull;
	Datum		key_id = slot_getattr(slot, read->license_key_id, &isnull);

	if (isnull || memcmp(DatumGetUUIDP(key_id), read->key_id, sizeof(pg_uuid_t)) != 0)
		return false;
	(void) slot_getattr(slot, read->deactivated_at, &isnull);
	if (!isnull)
		return false;
	read->activation->fingerprint = SlotText(slot, read->fingerprint);
	read->activation->label = SlotText(slot, read->label);
	return true;
}

/*
 * The live activation of the key named by activation_id, by a direct scan of
 * the primary key under the statement's snapshot; false when there is none.
 */
static bool
LookupActivation(const pg_uuid_t *license_key_id, Datum activation_id, CheckoutActivation *activation)
{
	Oid			relid = BenefitsRelid("license_key_activations");
	ActivationRead read = {BenefitsColumnNumber(relid, "license_key_id"), BenefitsColumnNumber(relid, "fingerprint"),
		BenefitsColumnNumber(relid, "label"), BenefitsColumnNumber(relid, "deactivated_at"),
	license_key_id, activation};
	ScanKeyData skey[1];

	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_UUID_EQ, activation_id);
	if (!BenefitsIndexFetch(relid, BenefitsRelid("license_key_activations_pkey"), skey, 1, ReadActivation, &read))
		return false;
	activation->id = BenefitsUuidText(DatumGetUUIDP(activation_id));
	return true;
}

/* "key": value as JSON, where value is a string or null. */
static void
JsonStringMember(StringInfo buf, const char *key, const char *value, bool first)
{
	if (!first)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/* "key": an integer or null. */
static void
JsonIntMember(StringInfo buf, const char *key, bool has_value, int64 value)
{
	appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	if (has_value)
		appendStringInfo(buf, ":" INT64_FORMAT, value);
	else
		appendStringInfoString(buf, ":null");
}

/* The customer's features as a JSON array of names. */
static void
AppendFeatures(StringInfo buf, const pg_uuid_t *customer_id)
{
	ListCell   *lc;

	appendStringInfoChar(buf, '[');
	foreach(lc, FeatureFlagCustomerFeatures(customer_id))
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(buf, ',');
		escape_json(buf, lfirst(lc));
	}
	appendStringInfoChar(buf, ']');
}

/* The payload's JSON text: the key, the activation, the features, the file's times. */
static char *
PayloadJson(const pg_uuid_t *organization_id, const LicenseKeyRow *row,
			const CheckoutActivation *activation, TimestampTz issued_at, TimestampTz expires_at)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"version\":1");
	JsonStringMember(&buf, "organization_id", BenefitsUuidText(organization_id), false);
	appendStringInfoString(&buf, ",\"license_key\":{");
	JsonStringMember(&buf, "id", BenefitsUuidText(&row->id), true);
	JsonStringMember(&buf, "display_key", text_to_cstring(row->display_key), false);
	JsonStringMember(&buf, "customer_id", BenefitsUuidText(&row->customer_id), false);
	JsonStringMember(&buf, "benefit_id", row->has_benefit ? BenefitsUuidText(&row->benefit_id) : NULL, false);
	JsonStringMember(&buf, "status", text_to_cstring(row->status_text), false);
	JsonIntMember(&buf, "usage", true, row->usage);
	JsonIntMember(&buf, "limit_usage", row->has_limit_usage, row->limit_usage);
	JsonIntMember(&buf, "limit_activations", row->has_limit_activations, row->limit_activations);
	JsonStringMember(&buf, "expires_at", row->has_expires ? PortalTimeText(row->expires_at) : NULL, false);
	appendStringInfoString(&buf, "},\"activation\":");
	if (activation->id == NULL)
		appendStringInfoString(&buf, "null");
	else
	{
		appendStringInfoChar(&buf, '{');
		JsonStringMember(&buf, "id", activation->id, true);
		JsonStringMember(&buf, "fingerprint", activation->fingerprint, false);
		JsonStringMember(&buf, "label", activation->label, false);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoString(&buf, ",\"features\":");
	AppendFeatures(&buf, &row->customer_id);
	JsonStringMember(&buf, "issued_at", PortalTimeText(issued_at), false);
	JsonStringMember(&buf, "expires_at", PortalTimeText(expires_at), false);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * benefits.checkout_license(key, organization_id, activation_id, ttl) -> text:
 * the signed file of a key that validates (not found, revoked, disabled,
 * expired and an activation that is not the key's live one all answer
 * NULL).  A NULL organization and a ttl out of range raise (22023).
 */
Datum
checkout_license(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *organization_id;
	Interval   *ttl;
	text	   *canonical;
	LicenseKeyRow row;
	CheckoutActivation activation = {0};
	const char *message;
	TimestampTz issued_at;
	TimestampTz expires_at;
	SigningKey	key;
	char	   *payload;
	text	   *file;

	BenefitsRequireArgument(fcinfo, 1, "organization_id", ERRCODE_INVALID_PARAMETER_VALUE);
	organization_id = PG_GETARG_UUID_P(1);
	ttl = TtlArgument(fcinfo, 3);
	canonical = LicenseKeyArgument(fcinfo, 0);
	issued_at = GetCurrentStatementStartTimestamp();
	if (canonical == NULL || !LicenseKeyLookup(organization_id, canonical, &row) ||
		LicenseKeyRefusal(&row, issued_at, &message) != NULL)
		PG_RETURN_NULL();

	if (!PG_ARGISNULL(2) && !LookupActivation(&row.id, PG_GETARG_DATUM(2), &activation))
		PG_RETURN_NULL();
	expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														 TimestampTzGetDatum(issued_at),
														 IntervalPGetDatum(ttl)));
	if (row.has_expires && row.expires_at < expires_at)
		expires_at = row.expires_at;
	payload = PayloadJson(organization_id, &row, &activation, issued_at, expires_at);
	CurrentSigningKey(fcinfo, organization_id, &key);
	file = LicenseFile(payload, key.kid, key.secret);
	PG_RETURN_TEXT_P(file);
}

/*
 * benefits.rotate_license_signing_key(organization_id) -> text: a new
 * current key pair (its kid returned); the previous current key is retired
 * and stays listed by license_public_keys, so the files it signed still
 * verify until they expire.  Also creates an organization's first key.
 */
Datum
rotate_license_signing_key(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan;
	static SPIPlanPtr retire_plan;
	Oid			types[1] = {UUIDOID};
	Datum		args[1];
	char		kid[SIGNING_KID_BYTES * 2 + 1];

	BenefitsRequireArgument(fcinfo, 0, "organization_id", ERRCODE_INVALID_PARAMETER_VALUE);
	args[0] = PG_GETARG_DATUM(0);
	BenefitsSpiConnect();
	BenefitsExec(BenefitsPlan(&lock_plan,
							  "SELECT 1 FROM benefits.organizations WHERE id = $1 FOR NO KEY UPDATE",
							  1, types),
				 args, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("organization_id %s does not exist", BenefitsUuidText(PG_GETARG_UUID_P(0))));
	BenefitsExec(BenefitsPlan(&retire_plan,
							  "UPDATE benefits.license_signing_keys SET retired_at = pg_catalog.now()"
							  " WHERE organization_id = $1 AND retired_at IS NULL",
							  1, types),
				 args, NULL, false, 0);
	/* A first checkout that committed after the retirement above inserted one. */
	if (!InsertSigningKey(PG_GETARG_UUID_P(0), kid))
		ConcurrentSigningKey();
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(kid));
}
