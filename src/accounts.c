/*
 * accounts.c — benefits.link_account: a customer's GitHub or Discord
 * identity, checked and stored, and the provider jobs of every grant that
 * was waiting for it.
 *
 * The login and the Discord user id become path segments of provider
 * requests, so they are checked here against their shapes
 * (provider_names.c) before they are stored; the CHECK constraints of
 * benefits.customer_accounts say the same for anyone writing the table.
 * The customer is locked first (GrantLockCustomer), as for every grant
 * change, so the pending grants read here cannot change meanwhile.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "provider_names.h"

/* Limits of the free-text fields of a linked account. */
#define ACCOUNT_TEXT_MAX 100
#define ACCESS_TOKEN_MAX 2048

PG_FUNCTION_INFO_V1(link_account);

/*
 * Is s at most max_len bytes with no control character: C0, DEL, and (in
 * UTF-8) the C1 controls U+0080 to U+009F, as [[:cntrl:]] in the CHECK
 * constraints of benefits.customer_accounts sees them.
 */
static bool
PlainText(const char *s, size_t max_len)
{
	size_t		len = strlen(s);
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;

	if (len > max_len)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (utf8 && c == 0xc2 && i + 1 < len && (unsigned char) s[i + 1] >= 0x80 &&
			(unsigned char) s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

/*
 * The fields of a linked account, checked before they are stored: the GitHub
 * login and the Discord user id become path segments of provider requests
 * (the CHECK constraints of benefits.customer_accounts say the same).
 */
static void
CheckAccount(const char *platform, const char *account_id, const char *username, const char *access_token)
{
	bool		github = strcmp(platform, "github") == 0;

	if (github && !PlainText(account_id, ACCOUNT_TEXT_MAX))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("account_id must be GitHub's id of the account"),
				errdetail("It has more than %d bytes or a control character.", ACCOUNT_TEXT_MAX));
	if (!github && !DiscordIdValid(account_id, 1))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("account_id must be a Discord user id"),
				errdetail("A Discord id is a string of up to 20 digits, an unsigned 64-bit integer."));
	if (github && !GithubLoginValid(username))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("username must be a GitHub login"),
				errdetail("A GitHub login is 1 to 39 ASCII letters, digits or hyphens and does not start with a hyphen."));
	if (!github && username != NULL && (username[0] == '\0' || !PlainText(username, ACCOUNT_TEXT_MAX)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("username must be 1 to %d bytes without control characters", ACCOUNT_TEXT_MAX));
	if (access_token != NULL && (access_token[0] == '\0' || !PlainText(access_token, ACCESS_TOKEN_MAX)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("access_token must be 1 to %d bytes without control characters", ACCESS_TOKEN_MAX));
}

/*
 * SQL: benefits.link_account(customer_id, platform, account_id, username,
 * access_token) — records the customer's GitHub or Discord identity, then
 * writes the jobs of every grant that was waiting for it.
 */
Datum
link_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr upsert_plan;
	static SPIPlanPtr pending_plan;
	static SPIPlanPtr update_plan;
	pg_uuid_t	customer_id;
	char	   *platform;
	char	   *account_id;
	Oid			types[5] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			n;
	GrantChange *changes;
	const BenefitType *waiting_type;
	Datum		pending[2];

	if (PG_ARGISNULL(0))
		ereport(ERROR, errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("customer_id must not be null"));
	if (PG_ARGISNULL(1))
		ereport(ERROR, errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("platform must not be null"));
	customer_id = *PG_GETARG_UUID_P(0);
	platform = text_to_cstring(PG_GETARG_TEXT_PP(1));
	waiting_type = BenefitTypeForPlatform(platform);
	if (waiting_type == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("platform must be \"github\" or \"discord\""),
				errdetail("platform is \"%s\".", platform));
	account_id = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (account_id == NULL || account_id[0] == '\0')
		ereport(ERROR, errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("account_id must not be empty"));
	if (strcmp(platform, "github") == 0 && (PG_ARGISNULL(3) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(3)) == 0))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("username is required for github"),
				errdetail("GitHub's collaborator API addresses users by login."));
	CheckAccount(platform, account_id,
				 PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
				 PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4)));

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(platform);
	values[2] = CStringGetTextDatum(account_id);
	for (int i = 3; i < 5; i++)
	{
		if (PG_ARGISNULL(i))
			nulls[i] = 'n';
		else
			values[i] = PG_GETARG_DATUM(i);
	}

	BenefitsSpiConnect();
	GrantLockCustomer(customer_id);
	BenefitsExec(BenefitsPlan(&upsert_plan,
						  "INSERT INTO benefits.customer_accounts AS a (customer_id, platform, account_id, username, access_token)"
						  " SELECT c.id, $2, $3, $4, $5 FROM benefits.customers c WHERE c.id = $1"
						  " ON CONFLICT (customer_id, platform) DO UPDATE"
						  "    SET account_id = EXCLUDED.account_id, username = EXCLUDED.username,"
						  "        access_token = COALESCE(EXCLUDED.access_token, a.access_token),"
						  "        modified_at = pg_catalog.now()",
						  5, types),
			   values, nulls, false, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("customer_id %s does not exist",
					   DatumGetCString(DirectFunctionCall1(uuid_out, values[0]))));

	/* Grants waiting for an account on this platform, oldest first. */
	pending[0] = values[0];
	pending[1] = CStringGetTextDatum(waiting_type->name);
	BenefitsExec(BenefitsPlan(&pending_plan,
						  "SELECT g.id, g.organization_id, g.benefit_id, b.type, b.properties, g.properties"
						  "  FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id"
						  " WHERE g.customer_id = $1 AND g.state = 'created'"
						  "   AND b.type = $2"
						  "   AND NOT g.properties ? 'account_id'"
						  " ORDER BY g.created_at, g.id",
						  2, types),
			   pending, NULL, false, 0);
	n = (int) SPI_processed;
	changes = palloc0(sizeof(GrantChange) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		changes[i].grant_id = *DatumGetUUIDP(SPI_getbinval(t, d, 1, &isnull));
		changes[i].organization_id = *DatumGetUUIDP(SPI_getbinval(t, d, 2, &isnull));
		changes[i].customer_id = customer_id;
		changes[i].benefit_id = *DatumGetUUIDP(SPI_getbinval(t, d, 3, &isnull));
		changes[i].benefit_type = SPI_getvalue(t, d, 4);
		changes[i].benefit_properties = DatumGetJsonbPCopy(SPI_getbinval(t, d, 5, &isnull));
		changes[i].grant_properties = DatumGetJsonbPCopy(SPI_getbinval(t, d, 6, &isnull));
	}
	for (int i = 0; i < n; i++)
	{
		GrantChange *c = &changes[i];
		Oid			utypes[4] = {UUIDOID, TEXTOID, JSONBOID, JSONBOID};
		Datum		uvalues[4];
		char		unulls[4] = {' ', ' ', ' ', ' '};

		BenefitTypeGrant(c);
		uvalues[0] = UuidGetDatum(&c->grant_id);
		uvalues[1] = CStringGetTextDatum(c->new_state);
		uvalues[2] = c->new_properties ? JsonbPGetDatum(c->new_properties) : (Datum) 0;
		unulls[2] = c->new_properties ? ' ' : 'n';
		uvalues[3] = c->error ? JsonbPGetDatum(c->error) : (Datum) 0;
		unulls[3] = c->error ? ' ' : 'n';
		BenefitsExec(BenefitsPlan(&update_plan,
							  "UPDATE benefits.grants"
							  "   SET state = $2, properties = COALESCE($3, properties), error = $4,"
							  "       granted_at = CASE WHEN $2 = 'active' THEN COALESCE(granted_at, pg_catalog.now())"
							  "                         ELSE granted_at END,"
							  "       modified_at = pg_catalog.now()"
							  " WHERE id = $1",
							  4, utypes),
				   uvalues, unulls, false, 0);
		/* benefit_grant.created went out with the pending grant; this is a change of it. */
		EventsEnqueueGrant(c->grant_id, EVENT_GRANT_UPDATED, NULL);
	}
	SPI_finish();
	PG_RETURN_VOID();
}
