/*
 * portal.c — customer sessions and the pieces of the customer portal that
 * belong in C.
 *
 * A customer session token is "bcs_" followed by 32 bytes from libsodium's
 * CSPRNG in unpadded URL-safe base64.  Only the SHA-256 of the token is
 * stored (benefits.customer_sessions.token_hash), so a copy of the table does
 * not let anyone open a portal.  Every function that takes a token resolves it
 * through CustomerSessionResolve, or (customer_portal, customer_portal_html)
 * through PortalDocumentForSession, which reads the customer in the same
 * statement under the same condition (CUSTOMER_SESSION_*_SQL in portal.h);
 * both answer a malformed, unknown, expired or revoked token with the same
 * error (SQLSTATE 28000).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "portal.h"
#include "s3.h"

#define SESSION_TOKEN_PREFIX	"bcs_"
#define SESSION_TOKEN_BYTES		32

static int	customer_session_ttl = 3600;

static SPIPlanPtr find_customer_plan = NULL;
static SPIPlanPtr insert_session_plan = NULL;
static SPIPlanPtr resolve_session_plan = NULL;
static SPIPlanPtr revoke_session_plan = NULL;
static SPIPlanPtr purge_sessions_plan = NULL;

/* Settings of the storage signer and of customer sessions; called from _PG_init. */
void
PortalInit(void)
{
	S3Init();
	DefineCustomIntVariable("benefits.customer_session_ttl",
							"How long a customer session token stays valid.",
							NULL, &customer_session_ttl, 3600, 60, 30 * 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

void
CustomerSessionInvalid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("invalid customer session"),
			 errhint("Open the portal again from the application to get a new session.")));
}

/*
 * The SHA-256 a session token is stored under.  Malformed tokens get the
 * session error here, before any lookup.
 */
bytea *
CustomerSessionTokenHash(text *token)
{
	const char *data = VARDATA_ANY(token);
	size_t		len = VARSIZE_ANY_EXHDR(token);

	if (len < strlen(SESSION_TOKEN_PREFIX) + 16 || len > 128 ||
		memcmp(data, SESSION_TOKEN_PREFIX, strlen(SESSION_TOKEN_PREFIX)) != 0)
		CustomerSessionInvalid();
	return BenefitsSha256(data, len);
}

/*
 * The customer a session token belongs to, and (session_id, when not NULL)
 * the session's id.  Runs inside the caller's SPI connection.
 */
pg_uuid_t
CustomerSessionOpen(text *token, pg_uuid_t *session_id)
{
	Oid			argtypes[1] = {BYTEAOID};
	Datum		values[1];
	TupleDesc	desc;
	bool		isnull;

	values[0] = PointerGetDatum(CustomerSessionTokenHash(token));
	BenefitsPlan(&resolve_session_plan,
				 "SELECT s.customer_id, s.id AS session_id" CUSTOMER_SESSION_JOIN_SQL
				 " WHERE " CUSTOMER_SESSION_LIVE_SQL,
				 1, argtypes);
	if (SPI_execute_plan(resolve_session_plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "customer session lookup failed");
	if (SPI_processed != 1)
		CustomerSessionInvalid();
	desc = SPI_tuptable->tupdesc;
	if (session_id != NULL)
		*session_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], desc,
												   SPI_fnumber(desc, "session_id"), &isnull));
	return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "customer_id"), &isnull));
}

/* The customer a session token belongs to; inside the caller's SPI connection. */
pg_uuid_t
CustomerSessionResolve(text *token)
{
	return CustomerSessionOpen(token, NULL);
}

PG_FUNCTION_INFO_V1(create_customer_session);

/*
 * create_customer_session(organization_id, external_customer_id): a new
 * session token for the application's user, valid for
 * benefits.customer_session_ttl.  The token is returned once and never stored.
 */
Datum
create_customer_session(PG_FUNCTION_ARGS)
{
	Oid			find_types[2] = {UUIDOID, TEXTOID};
	Oid			insert_types[4] = {UUIDOID, UUIDOID, BYTEAOID, INT4OID};
	Datum		values[4];
	char	   *token;
	bool		isnull;
	Datum		customer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("organization_id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_customer_id must not be null")));

	BenefitsSpiConnect();
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	BenefitsPlan(&find_customer_plan,
			 "SELECT id FROM benefits.customers"
			 " WHERE organization_id = $1 AND external_id = $2 AND deleted_at IS NULL",
			 2, find_types);
	if (SPI_execute_plan(find_customer_plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "customer lookup failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_customer_id \"%s\" names no customer of organization %s",
						text_to_cstring(PG_GETARG_TEXT_PP(1)),
						DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0))))));
	customer = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	token = psprintf("%s%s", SESSION_TOKEN_PREFIX, BenefitsRandomToken(SESSION_TOKEN_BYTES));

	values[1] = customer;
	values[2] = PointerGetDatum(BenefitsSha256(token, strlen(token)));
	values[3] = Int32GetDatum(customer_session_ttl);
	BenefitsPlan(&insert_session_plan,
			 "INSERT INTO benefits.customer_sessions"
			 " (organization_id, customer_id, token_hash, expires_at)"
			 " VALUES ($1, $2, $3, pg_catalog.now() + pg_catalog.make_interval(secs => $4))",
			 4, insert_types);
	if (SPI_execute_plan(insert_session_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "customer session insert failed");

	/* The customer's sessions that ended over a day ago are of no more use. */
	BenefitsPlan(&purge_sessions_plan,
				 "DELETE FROM benefits.customer_sessions"
				 " WHERE customer_id = $1"
				 "   AND least(expires_at, coalesce(revoked_at, expires_at)) < pg_catalog.now() - interval '1 day'",
				 1, insert_types + 1);
	if (SPI_execute_plan(purge_sessions_plan, values + 1, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "customer session purge failed");
	SPI_finish();

	PG_RETURN_TEXT_P(cstring_to_text(token));
}

PG_FUNCTION_INFO_V1(customer_session_customer);

/*
 * customer_session_customer(token): the customer of a live session, or the
 * one error every bad token gets.  Internal: the portal functions call it.
 */
Datum
customer_session_customer(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *result = palloc(sizeof(pg_uuid_t));

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	BenefitsSpiConnect();
	*result = CustomerSessionResolve(PG_GETARG_TEXT_PP(0));
	SPI_finish();
	PG_RETURN_UUID_P(result);
}

PG_FUNCTION_INFO_V1(revoke_customer_session);

/*
 * revoke_customer_session(token): ends a session (the customer logs out, or
 * the application withdraws it).  True when a live session was revoked.
 */
Datum
revoke_customer_session(PG_FUNCTION_ARGS)
{
	text	   *token;
	Oid			argtypes[1] = {BYTEAOID};
	Datum		values[1];
	bool		revoked;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	token = PG_GETARG_TEXT_PP(0);
	values[0] = PointerGetDatum(BenefitsSha256(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)));
	BenefitsSpiConnect();
	BenefitsPlan(&revoke_session_plan,
			 "UPDATE benefits.customer_sessions SET revoked_at = pg_catalog.now()"
			 " WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > pg_catalog.now()",
			 1, argtypes);
	if (SPI_execute_plan(revoke_session_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "customer session revoke failed");
	revoked = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(revoked);
}
