/*
 * accounts.c — linked accounts: benefits.link_account, a customer's GitHub
 * or Discord identity, checked and stored, with the provider jobs of every
 * grant that was waiting for it; an account replaced by another, whose
 * delivered access moves; and an account removed (AccountUnlink).
 *
 * The login and the Discord user id become path segments of provider
 * requests, so they are checked here against their shapes
 * (provider_names.c) before they are stored; the CHECK constraints of
 * benefits.customer_accounts say the same for anyone writing the table.
 * Concurrency: the customer is locked first (GrantLockCustomer), as for
 * every grant change, so the grants read here cannot change meanwhile, and
 * two links of one customer run one after the other.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
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

/* The link_account arguments, by position (0.1.0 declared the first five). */
enum
{
	ARG_CUSTOMER, ARG_PLATFORM, ARG_ACCOUNT_ID, ARG_USERNAME, ARG_ACCESS_TOKEN,
	ARG_REFRESH_TOKEN, ARG_TOKEN_EXPIRES_AT, ARG_SCOPES, LINK_ARGS
};

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

/* An OAuth token as customer_accounts stores it: 1 to 2048 bytes of plain text. */
static bool
TokenValid(const char *token)
{
	return token[0] != '\0' && PlainText(token, ACCESS_TOKEN_MAX);
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
	if (access_token != NULL && !TokenValid(access_token))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("access_token must be 1 to %d bytes without control characters", ACCESS_TOKEN_MAX));
}

/* The scopes a provider granted: at most 20, each plain text of at most 100 bytes. */
static void
CheckScopes(ArrayType *scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > 20)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("scopes must have at most 20 elements"));
	for (int i = 0; i < n; i++)
		if (nulls[i] || VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) == 0 ||
			!PlainText(TextDatumGetCString(elems[i]), ACCOUNT_TEXT_MAX))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("scopes[%d] must be 1 to %d bytes without control characters", i + 1,
						   ACCOUNT_TEXT_MAX));
}

/* A text argument as a C string, or NULL (absent from a 0.1.0 declaration, or null). */
static char *
TextArg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* A live grant of a provider benefit, as a change for its type's operations. */
typedef struct LiveGrant
{
	GrantChange change;
	const char *state;			/* its state before the change */
} LiveGrant;

/*
 * The live grants of the customer's benefits of a type: all of them, or
 * (waiting_only) those with no delivered account and those whose delivery
 * failed for good, oldest first.  *n receives their number.
 */
static LiveGrant *
LiveGrants(pg_uuid_t customer_id, const BenefitType *type, bool waiting_only, int *n)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, TEXTOID, BOOLOID};
	Datum		values[3];
	LiveGrant  *grants;
	TupleDesc	desc;

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(type->name);
	values[2] = BoolGetDatum(waiting_only);
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT g.id AS grant_id, g.organization_id, g.benefit_id, g.state,"
							  "       b.type, b.properties AS benefit_properties, g.properties AS grant_properties,"
							  "       g.benefit_id IS DISTINCT FROM pg_catalog.lag(g.benefit_id)"
							  "         OVER (ORDER BY g.benefit_id, g.created_at, g.id) AS first_of_benefit"
							  "  FROM benefits.grants g JOIN benefits.benefits b ON b.id = g.benefit_id"
							  " WHERE g.customer_id = $1 AND g.state <> 'revoked' AND b.type = $2"
							  "   AND (NOT $3 OR NOT g.properties ? 'account_id'"
							  "        OR g.error->>'type' = 'provider_error')"
							  " ORDER BY g.created_at, g.id",
							  3, types),
				 values, NULL, false, 0);
	*n = (int) SPI_processed;
	desc = SPI_tuptable->tupdesc;
	grants = palloc0(sizeof(LiveGrant) * (*n + 1));
	for (int i = 0; i < *n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		GrantChange *c = &grants[i].change;
		bool		isnull;

		c->grant_id = *DatumGetUUIDP(SPI_getbinval(t, desc, SPI_fnumber(desc, "grant_id"), &isnull));
		c->organization_id = *DatumGetUUIDP(SPI_getbinval(t, desc, SPI_fnumber(desc, "organization_id"), &isnull));
		c->customer_id = customer_id;
		c->benefit_id = *DatumGetUUIDP(SPI_getbinval(t, desc, SPI_fnumber(desc, "benefit_id"), &isnull));
		c->benefit_type = SPI_getvalue(t, desc, SPI_fnumber(desc, "type"));
		c->benefit_properties = DatumGetJsonbPCopy(SPI_getbinval(t, desc, SPI_fnumber(desc, "benefit_properties"),
																 &isnull));
		c->grant_properties = DatumGetJsonbPCopy(SPI_getbinval(t, desc, SPI_fnumber(desc, "grant_properties"),
															   &isnull));
		/* the access of a benefit is removed once, whatever the number of its grants */
		c->last_holder = DatumGetBool(SPI_getbinval(t, desc, SPI_fnumber(desc, "first_of_benefit"), &isnull));
		grants[i].state = SPI_getvalue(t, desc, SPI_fnumber(desc, "state"));
	}
	return grants;
}

/* Writes what a type's operation decided for a grant, and tells the application. */
static void
GrantChangeStore(GrantChange *c, const char *old_state)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {UUIDOID, TEXTOID, JSONBOID, JSONBOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	/* a granted benefit stays granted while its access moves (never back to created) */
	if (strcmp(old_state, "active") == 0)
		c->new_state = "active";
	values[0] = UuidGetDatum(&c->grant_id);
	values[1] = CStringGetTextDatum(c->new_state);
	values[2] = c->new_properties ? JsonbPGetDatum(c->new_properties) : (Datum) 0;
	nulls[2] = c->new_properties ? ' ' : 'n';
	values[3] = c->error ? JsonbPGetDatum(c->error) : (Datum) 0;
	nulls[3] = c->error ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							  "UPDATE benefits.grants"
							  "   SET state = $2, properties = COALESCE($3, properties), error = $4,"
							  "       modified_at = pg_catalog.now()"
							  " WHERE id = $1",
							  4, types),
				 values, nulls, false, 0);
	/* benefit_grant.created went out with the grant; this is a change of it. */
	EventsEnqueueGrant(c->grant_id, EVENT_GRANT_UPDATED, NULL);
}

/*
 * The customer's account of the type's platform is gone or replaced: every
 * live grant's delivered access is removed by provider jobs and the grant
 * waits for a link again.  Returns the number of grants changed.
 */
static int
RemoveDeliveredAccess(pg_uuid_t customer_id, const BenefitType *type)
{
	int			n;
	LiveGrant  *grants = LiveGrants(customer_id, type, false, &n);
	int			changed = 0;

	for (int i = 0; i < n; i++)
	{
		GrantChange *c = &grants[i].change;

		if (BenefitsJsonText(c->grant_properties, "account_id") == NULL)
			continue;
		/* the grant keeps its state: only what was delivered goes */
		c->new_state = grants[i].state;
		type->account_gone(c);
		GrantChangeStore(c, grants[i].state);
		changed++;
	}
	return changed;
}

/*
 * A grant delivered again: its provider jobs that died are over, replaced by
 * the new ones (they stay in the outbox as done, with why), so they no
 * longer hold the grant back from becoming active.
 */
static void
RetireDeadJobs(pg_uuid_t grant_id)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	values[0] = UuidGetDatum(&grant_id);
	BenefitsExec(BenefitsPlan(&plan,
							  "UPDATE benefits.outbox o"
							  "   SET state = 'done', finished_at = pg_catalog.now(),"
							  "       last_error = 'replaced by a new delivery when the account was linked again: '"
							  "                    || COALESCE(o.last_error, '')"
							  " WHERE o.grant_id = $1 AND o.state = 'dead' AND o.kind <> 'webhook'",
							  1, types),
				 values, NULL, false, 0);
}

/* Delivers the grants that wait for the customer's account (or failed to reach it). */
static void
DeliverWaitingGrants(pg_uuid_t customer_id, const BenefitType *type)
{
	int			n;
	LiveGrant  *grants = LiveGrants(customer_id, type, true, &n);

	for (int i = 0; i < n; i++)
	{
		GrantChange *c = &grants[i].change;

		c->last_holder = false;
		RetireDeadJobs(c->grant_id);
		BenefitTypeGrant(c);
		GrantChangeStore(c, grants[i].state);
	}
}

/*
 * Is a new identity another account than the stored one: another id, or for
 * GitHub (whose requests name the login) another login?  False when none is
 * stored.
 */
static bool
AccountReplaced(pg_uuid_t customer_id, const char *platform, const char *account_id, const char *username)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(platform);
	values[2] = CStringGetTextDatum(account_id);
	values[3] = username ? CStringGetTextDatum(username) : (Datum) 0;
	nulls[3] = username ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT 1 FROM benefits.customer_accounts a"
							  " WHERE a.customer_id = $1 AND a.platform = $2"
							  "   AND (a.account_id <> $3"
							  "        OR ($2 = 'github' AND pg_catalog.lower(a.username) IS DISTINCT FROM pg_catalog.lower($4)))",
							  4, types),
				 values, nulls, false, 1);	/* a snapshot taken after the customer lock */
	return SPI_processed > 0;
}

/*
 * Stores the account.  The same account keeps the tokens it is not given
 * again (an application linking without a token); another account gets
 * exactly the ones given.  The customer is locked, so it exists.  A database
 * still at 0.1.0's schema (link_account declared with five arguments) keeps
 * no renewal token.
 */
static void
StoreAccount(FunctionCallInfo fcinfo, pg_uuid_t customer_id, const char *platform, bool replaced)
{
	static SPIPlanPtr plan;
	static SPIPlanPtr plan_without_renewal;
	bool		renewal = PG_NARGS() >= LINK_ARGS;
	int			nargs = (renewal ? LINK_ARGS : ARG_REFRESH_TOKEN) + 1;
	Oid			types[LINK_ARGS + 1] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
										TEXTARRAYOID, BOOLOID};
	Datum		values[LINK_ARGS + 1];
	char		nulls[LINK_ARGS + 1];
	SPIPlanPtr	store;

	values[ARG_CUSTOMER] = UuidGetDatum(&customer_id);
	values[ARG_PLATFORM] = CStringGetTextDatum(platform);
	nulls[ARG_CUSTOMER] = nulls[ARG_PLATFORM] = ' ';
	for (int i = ARG_ACCOUNT_ID; i < nargs - 1; i++)
	{
		bool		given = !PG_ARGISNULL(i);

		values[i] = given ? PG_GETARG_DATUM(i) : (Datum) 0;
		nulls[i] = given ? ' ' : 'n';
	}
	types[nargs - 1] = BOOLOID;
	values[nargs - 1] = BoolGetDatum(replaced);
	nulls[nargs - 1] = ' ';
	if (renewal)
		store = BenefitsPlan(&plan,
							 "INSERT INTO benefits.customer_accounts AS a"
							 "       (customer_id, platform, account_id, username, access_token,"
							 "        refresh_token, token_expires_at, scopes)"
							 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
							 " ON CONFLICT (customer_id, platform) DO UPDATE"
							 "    SET account_id = EXCLUDED.account_id, username = EXCLUDED.username,"
							 "        access_token = CASE WHEN $9 THEN EXCLUDED.access_token"
							 "                            ELSE COALESCE(EXCLUDED.access_token, a.access_token) END,"
							 "        refresh_token = CASE WHEN $9 OR EXCLUDED.access_token IS NOT NULL"
							 "                             THEN EXCLUDED.refresh_token ELSE a.refresh_token END,"
							 "        token_expires_at = CASE WHEN $9 OR EXCLUDED.access_token IS NOT NULL"
							 "                                THEN EXCLUDED.token_expires_at ELSE a.token_expires_at END,"
							 "        scopes = CASE WHEN $9 OR EXCLUDED.access_token IS NOT NULL"
							 "                      THEN EXCLUDED.scopes ELSE a.scopes END,"
							 "        modified_at = pg_catalog.now()",
							 nargs, types);
	else
		store = BenefitsPlan(&plan_without_renewal,
							 "INSERT INTO benefits.customer_accounts AS a (customer_id, platform, account_id, username, access_token)"
							 " VALUES ($1, $2, $3, $4, $5)"
							 " ON CONFLICT (customer_id, platform) DO UPDATE"
							 "    SET account_id = EXCLUDED.account_id, username = EXCLUDED.username,"
							 "        access_token = CASE WHEN $6 THEN EXCLUDED.access_token"
							 "                            ELSE COALESCE(EXCLUDED.access_token, a.access_token) END,"
							 "        modified_at = pg_catalog.now()",
							 nargs, types);
	BenefitsExec(store, values, nulls, false, 0);
}

/*
 * A link failure the customer was shown is over once an account is linked:
 * one with an error, or whose job died without an answer (no error, the job
 * dead).  A link whose job is still to run is left to finish.
 */
static void
ClearLinkFailure(pg_uuid_t customer_id, const char *platform)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(platform);
	BenefitsExec(BenefitsPlan(&plan,
							  "DELETE FROM benefits.account_links l"
							  " WHERE l.customer_id = $1 AND l.platform = $2"
							  "   AND (l.error IS NOT NULL"
							  "        OR NOT EXISTS (SELECT FROM benefits.outbox o"
							  "                        WHERE o.id = l.job_id AND o.state IN ('pending', 'running')))",
							  2, types),
				 values, NULL, false, 0);
}

/*
 * SQL: benefits.link_account(customer_id, platform, account_id, username,
 * access_token, refresh_token, token_expires_at, scopes) — records the
 * customer's GitHub or Discord identity.  Another account than the one
 * linked before first loses the access delivered to the old one; then every
 * grant waiting for an account (or whose delivery failed) gets its jobs.
 */
Datum
link_account(PG_FUNCTION_ARGS)
{
	pg_uuid_t	customer_id;
	char	   *platform;
	char	   *account_id;
	char	   *username;
	const BenefitType *type;
	bool		replaced;

	BenefitsRequireArgument(fcinfo, ARG_CUSTOMER, "customer_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, ARG_PLATFORM, "platform", ERRCODE_INVALID_PARAMETER_VALUE);
	customer_id = *PG_GETARG_UUID_P(ARG_CUSTOMER);
	platform = text_to_cstring(PG_GETARG_TEXT_PP(ARG_PLATFORM));
	type = BenefitTypeForPlatform(platform);
	if (type == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("platform must be \"github\" or \"discord\""),
				errdetail("platform is \"%s\".", platform));
	account_id = TextArg(fcinfo, ARG_ACCOUNT_ID);
	if (account_id == NULL || account_id[0] == '\0')
		ereport(ERROR, errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("account_id must not be empty"));
	username = TextArg(fcinfo, ARG_USERNAME);
	if (strcmp(platform, "github") == 0 && (username == NULL || username[0] == '\0'))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("username is required for github"),
				errdetail("GitHub's collaborator API addresses users by login."));
	CheckAccount(platform, account_id, username, TextArg(fcinfo, ARG_ACCESS_TOKEN));
	if (TextArg(fcinfo, ARG_REFRESH_TOKEN) != NULL && !TokenValid(TextArg(fcinfo, ARG_REFRESH_TOKEN)))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("refresh_token must be 1 to %d bytes without control characters", ACCESS_TOKEN_MAX));
	if (PG_NARGS() > ARG_SCOPES && !PG_ARGISNULL(ARG_SCOPES))
		CheckScopes(PG_GETARG_ARRAYTYPE_P(ARG_SCOPES));

	BenefitsSpiConnect();
	GrantLockCustomer(customer_id);
	replaced = AccountReplaced(customer_id, platform, account_id, username);
	if (replaced)
		RemoveDeliveredAccess(customer_id, type);
	StoreAccount(fcinfo, customer_id, platform, replaced);
	if (BenefitsHasRelation("account_links"))
		ClearLinkFailure(customer_id, platform);
	DeliverWaitingGrants(customer_id, type);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Removes the customer's account of a platform (the customer is locked by
 * the caller): the access delivered to it is removed by provider jobs and
 * its grants wait for a link again.  False when there was no account.
 */
bool
AccountUnlink(pg_uuid_t customer_id, const char *platform)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];
	const BenefitType *type = BenefitTypeForPlatform(platform);

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(platform);
	BenefitsExec(BenefitsPlan(&plan,
							  "DELETE FROM benefits.customer_accounts a WHERE a.customer_id = $1 AND a.platform = $2",
							  2, types),
				 values, NULL, false, 0);
	if (SPI_processed == 0)
		return false;
	RemoveDeliveredAccess(customer_id, type);
	return true;
}
