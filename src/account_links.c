/*
 * account_links.c — customers linking their own GitHub and Discord accounts
 * from the portal: portal_link_url, portal_link_callback,
 * portal_unlink_account, and the connect links of the portal page.
 *
 * A state is 32 bytes from libsodium's CSPRNG in unpadded URL-safe base64;
 * only its SHA-256 is stored (benefits.oauth_states), with the session, the
 * customer and the platform it was issued for and an expiry ten minutes
 * later.  The callback consumes it by deleting the row, so of two callbacks
 * with the same state only one finds it.  A state that is malformed,
 * unknown, expired, used, another session's or another platform's gets one
 * error, SQLSTATE 28000, whatever the reason, as a bad session token does.
 *
 * No network call is made here: the callback queues an 'oauth' job, which
 * the worker runs after commit (oauth_jobs.c).  Concurrency: every function
 * that changes a link locks the customer row first (GrantLockCustomer), as
 * the worker's answer functions do.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "oauth.h"
#include "portal.h"
#include "portal_page.h"
#include "uri.h"

#define STATE_BYTES			32
#define STATE_TTL_SECONDS	600
/* Live states one customer may hold; older ones are dropped. */
#define STATES_PER_CUSTOMER 20
#define REDIRECT_URI_MAX	2048
#define CODE_MAX			512

PG_FUNCTION_INFO_V1(portal_link_url);
PG_FUNCTION_INFO_V1(portal_link_callback);
PG_FUNCTION_INFO_V1(portal_unlink_account);

/* The one error of every state that cannot be used. */
static void
LinkStateInvalid(void)
{
	ereport(ERROR,
			errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			errmsg("invalid or expired account link state"),
			errhint("Start connecting the account again from the portal."));
}

/* The provider of a platform argument; 22023 naming the platforms otherwise. */
static const OAuthProvider *
RequireProvider(const char *platform)
{
	const OAuthProvider *provider = OAuthProviderFor(platform);

	if (provider == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("platform must be \"github\" or \"discord\""),
				errdetail("platform is \"%s\".", platform));
	return provider;
}

/* Refuses a redirect URI a provider should not send the customer and the code to. */
static void
CheckRedirectUri(const char *uri)
{
	const char *problem = UriRedirectProblem(uri, REDIRECT_URI_MAX);

	if (problem != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("redirect_uri must be an https URL of the application"),
				errdetail("%s", problem),
				errhint("Give the callback URL registered with the provider, e.g. https://app.example/oauth/callback."));
}

/* Are the provider's client id and secret both set? */
static bool
ClientConfigured(const OAuthProvider *provider)
{
	return *provider->client_id != NULL && (*provider->client_id)[0] != '\0' &&
		*provider->client_secret != NULL && (*provider->client_secret)[0] != '\0';
}

/*
 * The client id of the provider's application; 55000 unless both the id and
 * the secret (which the worker's exchange needs) are configured.
 */
static const char *
RequireClientId(const OAuthProvider *provider)
{
	const char *client_id = *provider->client_id;

	if (!ClientConfigured(provider))
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("customers cannot link %s accounts: benefits.%s_oauth_client_id and "
					   "benefits.%s_oauth_client_secret are not both set",
					   provider->display_name, provider->platform, provider->platform),
				errhint("Register an OAuth application with %s and set benefits.%s_oauth_client_id and "
						"benefits.%s_oauth_client_secret in postgresql.conf.",
						provider->display_name, provider->platform, provider->platform));
	return client_id;
}

/*
 * A fresh state for the session's customer and platform, stored as its
 * hash; the customer's expired states, and live ones beyond the newest
 * STATES_PER_CUSTOMER, go.
 */
static char *
IssueState(pg_uuid_t session_id, pg_uuid_t customer_id, const char *platform, const char *redirect_uri)
{
	static SPIPlanPtr insert_plan;
	static SPIPlanPtr purge_plan;
	Oid			types[6] = {BYTEAOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[6];
	char	   *state = BenefitsRandomToken(STATE_BYTES);

	values[0] = PointerGetDatum(BenefitsSha256(state, strlen(state)));
	values[1] = UuidGetDatum(&session_id);
	values[2] = UuidGetDatum(&customer_id);
	values[3] = CStringGetTextDatum(platform);
	values[4] = CStringGetTextDatum(redirect_uri);
	values[5] = Int32GetDatum(STATE_TTL_SECONDS);
	BenefitsExec(BenefitsPlan(&insert_plan,
							  "INSERT INTO benefits.oauth_states"
							  "       (state_hash, session_id, customer_id, platform, redirect_uri, created_at, expires_at)"
							  " SELECT $1, $2, $3, $4, $5, c.t, c.t + pg_catalog.make_interval(secs => $6)"
							  /* the clock, not now(): states issued in one transaction keep their order */
							  "   FROM (SELECT pg_catalog.clock_timestamp() AS t) c",
							  6, types),
				 values, NULL, false, 0);
	values[3] = Int32GetDatum(STATES_PER_CUSTOMER);
	BenefitsExec(BenefitsPlan(&purge_plan,
							  "DELETE FROM benefits.oauth_states s"
							  " WHERE s.customer_id = $1"
							  "   AND (s.expires_at <= pg_catalog.now()"
							  "        OR s.state_hash NOT IN (SELECT n.state_hash FROM benefits.oauth_states n"
							  "                                 WHERE n.customer_id = $1"
							  "                                 ORDER BY n.created_at DESC, n.state_hash LIMIT $2))",
							  2, (Oid[]) {UUIDOID, INT4OID}),
				 (Datum[]) {values[2], values[3]}, NULL, false, 0);
	return state;
}

/* The provider's authorize URL for a fresh state. */
static char *
AuthorizeUrl(const OAuthProvider *provider, pg_uuid_t session_id, pg_uuid_t customer_id,
			 const char *redirect_uri)
{
	const char *client_id = RequireClientId(provider);
	const char *base = *provider->oauth_url;
	size_t		base_len = strlen(base);
	StringInfoData url;

	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, base_len);
	appendStringInfoString(&url, provider->authorize_path);
	appendStringInfoString(&url, "?response_type=code&client_id=");
	UriEncode(&url, client_id, false);
	appendStringInfoString(&url, "&redirect_uri=");
	UriEncode(&url, redirect_uri, false);
	if (provider->scope)
	{
		appendStringInfoString(&url, "&scope=");
		UriEncode(&url, provider->scope, false);
	}
	appendStringInfoString(&url, "&state=");
	appendStringInfoString(&url, IssueState(session_id, customer_id, provider->platform, redirect_uri));
	return url.data;
}

/*
 * portal_link_url(token, platform, redirect_uri): where to send the
 * session's customer to link an account of platform.
 */
Datum
portal_link_url(PG_FUNCTION_ARGS)
{
	const OAuthProvider *provider;
	char	   *redirect_uri;
	pg_uuid_t	session_id;
	pg_uuid_t	customer_id;
	char	   *url;
	text	   *result;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	BenefitsRequireArgument(fcinfo, 1, "platform", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 2, "redirect_uri", ERRCODE_INVALID_PARAMETER_VALUE);
	provider = RequireProvider(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	redirect_uri = text_to_cstring(PG_GETARG_TEXT_PP(2));
	CheckRedirectUri(redirect_uri);
	RequireClientId(provider);

	BenefitsSpiConnect();
	customer_id = CustomerSessionOpen(PG_GETARG_TEXT_PP(0), &session_id);
	url = AuthorizeUrl(provider, session_id, customer_id, redirect_uri);
	result = cstring_to_text(url);
	result = (text *) SPI_datumTransfer(PointerGetDatum(result), false, -1);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/*
 * Consumes the state if it was issued to this session (and for platform,
 * when given) and has not expired: its platform and redirect URI; the one
 * state error otherwise.
 */
static void
ConsumeState(text *state, pg_uuid_t session_id, const char *platform, char **state_platform,
			 char **redirect_uri)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {BYTEAOID, UUIDOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	size_t		len = VARSIZE_ANY_EXHDR(state);
	TupleDesc	desc;

	if (len == 0 || len > 128)
		LinkStateInvalid();
	values[0] = PointerGetDatum(BenefitsSha256(VARDATA_ANY(state), len));
	values[1] = UuidGetDatum(&session_id);
	values[2] = platform ? CStringGetTextDatum(platform) : (Datum) 0;
	nulls[2] = platform ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							  "DELETE FROM benefits.oauth_states s"
							  " WHERE s.state_hash = $1 AND s.session_id = $2 AND s.expires_at > pg_catalog.now()"
							  "   AND ($3::text IS NULL OR s.platform = $3)"
							  " RETURNING s.platform, s.redirect_uri",
							  3, types),
				 values, nulls, false, 0);
	if (SPI_processed != 1)
		LinkStateInvalid();
	desc = SPI_tuptable->tupdesc;
	*state_platform = SPI_getvalue(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "platform"));
	*redirect_uri = SPI_getvalue(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "redirect_uri"));
}

/* Is code what an authorization code looks like: 1 to CODE_MAX URL-safe characters? */
static bool
CodeValid(const char *code)
{
	size_t		len = strlen(code);

	if (len == 0 || len > CODE_MAX)
		return false;
	for (const char *p = code; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			  strchr("-._~+/=", *p) != NULL))
			return false;
	return true;
}

/* Records where the customer's link of a platform stands: its job, or the error shown. */
static void
RecordLink(pg_uuid_t customer_id, const char *platform, int64 job_id, const char *error)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {UUIDOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(platform);
	values[2] = Int64GetDatum(job_id);
	nulls[2] = job_id > 0 ? ' ' : 'n';
	values[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[3] = error ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.account_links AS l (customer_id, platform, job_id, error)"
							  " VALUES ($1, $2, $3, $4)"
							  " ON CONFLICT (customer_id, platform) DO UPDATE"
							  "    SET job_id = EXCLUDED.job_id, error = EXCLUDED.error,"
							  "        modified_at = pg_catalog.now()",
							  4, types),
				 values, nulls, false, 0);
}

/*
 * Queues the worker's exchange of the code: the payload names the customer
 * the state was bound to, the platform and the redirect URI the provider
 * checks again.  Returns the job's id.
 */
static int64
QueueExchange(pg_uuid_t organization_id, pg_uuid_t customer_id, const char *platform,
			  const char *redirect_uri, const char *code)
{
	static SPIPlanPtr plan;
	Oid			types[5] = {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	bool		isnull;
	TupleDesc	desc;

	values[0] = UuidGetDatum(&organization_id);
	values[1] = UuidGetDatum(&customer_id);
	values[2] = CStringGetTextDatum(platform);
	values[3] = CStringGetTextDatum(redirect_uri);
	values[4] = CStringGetTextDatum(code);
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.outbox (organization_id, kind, action, payload)"
							  " VALUES ($1, 'oauth', 'link_account',"
							  "         pg_catalog.jsonb_build_object('platform', $3, 'customer_id', $2,"
							  "                                       'redirect_uri', $4, 'code', $5))"
							  " RETURNING id AS job_id",
							  5, types),
				 values, NULL, false, 0);
	desc = SPI_tuptable->tupdesc;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], desc, SPI_fnumber(desc, "job_id"), &isnull));
}

/*
 * portal_link_callback(token, state, code, platform): what the provider sent
 * to the application's redirect handler.  A NULL code is the customer's
 * refusal (the provider sent error=access_denied): recorded and 'failed'.
 */
Datum
portal_link_callback(PG_FUNCTION_ARGS)
{
	pg_uuid_t	session_id;
	pg_uuid_t	customer_id;
	pg_uuid_t	organization_id;
	char	   *code = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *platform = PG_NARGS() > 3 && !PG_ARGISNULL(3) ? text_to_cstring(PG_GETARG_TEXT_PP(3)) : NULL;
	char	   *state_platform;
	char	   *redirect_uri;
	const char *outcome;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	if (platform != NULL)
		RequireProvider(platform);
	if (code != NULL && !CodeValid(code))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("code must be 1 to %d URL-safe characters", CODE_MAX),
				errdetail("Pass the code parameter of the provider's redirect as it came."));

	BenefitsSpiConnect();
	customer_id = CustomerSessionOpen(PG_GETARG_TEXT_PP(0), &session_id);
	if (PG_ARGISNULL(1))
		LinkStateInvalid();
	organization_id = GrantLockCustomer(customer_id);
	ConsumeState(PG_GETARG_TEXT_PP(1), session_id, platform, &state_platform, &redirect_uri);
	if (code == NULL)
	{
		RecordLink(customer_id, state_platform, 0,
				   psprintf("Access to your %s account was not allowed. Connect it again to receive your benefits.",
							RequireProvider(state_platform)->display_name));
		outcome = "failed";
	}
	else
	{
		RecordLink(customer_id, state_platform,
				   QueueExchange(organization_id, customer_id, state_platform, redirect_uri, code), NULL);
		outcome = "pending";
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/*
 * portal_unlink_account(token, platform): the session's customer removes
 * their account; a link in progress is abandoned with it.
 */
Datum
portal_unlink_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	const OAuthProvider *provider;
	pg_uuid_t	customer_id;
	bool		removed;
	Datum		values[2];

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	BenefitsRequireArgument(fcinfo, 1, "platform", ERRCODE_INVALID_PARAMETER_VALUE);
	provider = RequireProvider(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	BenefitsSpiConnect();
	customer_id = CustomerSessionResolve(PG_GETARG_TEXT_PP(0));
	GrantLockCustomer(customer_id);
	removed = AccountUnlink(customer_id, provider->platform);
	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(provider->platform);
	BenefitsExec(BenefitsPlan(&plan,
							  "DELETE FROM benefits.account_links l WHERE l.customer_id = $1 AND l.platform = $2",
							  2, (Oid[]) {UUIDOID, TEXTOID}),
				 values, NULL, false, 0);
	SPI_finish();
	PG_RETURN_BOOL(removed);
}

/*
 * Does the portal document show a benefit that needs an account of the
 * platform whose link is unlinked or failed (one the customer should connect)?
 */
static bool
DocumentWantsLink(Jsonb *doc, const char *platform)
{
	JsonbContainer *benefits = PageContainer(&doc->root, "benefits");

	for (int i = 0; i < PageArrayLength(benefits); i++)
	{
		JsonbContainer *b = PageElement(benefits, i);
		const BenefitType *bt = BenefitTypeFind(PageText(b, "type"));
		char	   *status;

		if (bt == NULL || bt->account_platform == NULL || strcmp(bt->account_platform, platform) != 0 ||
			bt->portal_key == NULL)
			continue;
		status = PageText(PageContainer(PageContainer(b, bt->portal_key), "link"), "status");
		if (status && (strcmp(status, "unlinked") == 0 || strcmp(status, "failed") == 0))
			return true;
	}
	return false;
}

/*
 * The connect links of the portal page of a session's document: an
 * authorize URL (with a fresh state) for each platform a shown benefit
 * waits for and whose provider is configured.  Inside an SPI connection.
 */
PortalLinkUrl *
PortalLinkUrls(text *token, Jsonb *doc, const char *redirect_uri, int *n)
{
	int			nproviders;
	const OAuthProvider *providers = OAuthProviders(&nproviders);
	PortalLinkUrl *urls = palloc0(sizeof(PortalLinkUrl) * nproviders);
	pg_uuid_t	session_id;
	pg_uuid_t	customer_id;

	CheckRedirectUri(redirect_uri);
	customer_id = CustomerSessionOpen(token, &session_id);
	*n = 0;
	for (int i = 0; i < nproviders; i++)
	{
		const OAuthProvider *provider = &providers[i];

		if (!ClientConfigured(provider) || !DocumentWantsLink(doc, provider->platform))
			continue;
		urls[*n].platform = provider->platform;
		urls[*n].url = AuthorizeUrl(provider, session_id, customer_id, redirect_uri);
		(*n)++;
	}
	return urls;
}
