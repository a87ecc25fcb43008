/*
 * oauth_jobs.c — the worker's OAuth requests: linking a customer's account
 * (the 'oauth' job written by portal_link_callback) and renewing a Discord
 * token before a member is added.
 *
 * An oauth link_account job has two steps, carried across claims by the
 * payload's "_step":
 *   0. POST the code to the provider's token endpoint with the client
 *      credentials (form-encoded, as RFC 6749 says; JSON asked back);
 *   1. GET the account with the access token obtained (GitHub /user,
 *      Discord /users/@me).
 * The tokens never enter the outbox: the answer to step 0 stores them in
 * benefits.oauth_exchanges, and step 1 reads them from there at claim time
 * (job_credentials), as add_member reads the customer's token.
 *
 * What an answer means is decided in SQL, in the record transaction, by
 * the step's answer function (benefits.oauth_code_answer,
 * oauth_account_answer, discord_refresh_answer): they parse the provider's
 * JSON under an exception block, write the tokens and the link, and return
 * the verdict (outbox_claim.c).  Here only transport failures, 5xx and 429
 * are judged: retried, like every provider call.  Nothing here holds state.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"

#include "oauth.h"
#include "uri.h"
#include "worker.h"

/* Appends "&name=value" (no "&" first) form-encoded. */
static void
FormField(StringInfo body, const char *name, const char *value)
{
	if (body->len > 0)
		appendStringInfoChar(body, '&');
	appendStringInfoString(body, name);
	appendStringInfoChar(body, '=');
	UriEncode(body, value, false);
}

/* The job cannot be sent: dead, with why. */
static bool
NotSent(OutboxJob *job, const char *why)
{
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("%s %s: %s; not sent", job->kind, job->action, why);
	return false;
}

/*
 * POST to the provider's token endpoint with the client credentials and the
 * grant's own fields (already in body), asking for a JSON answer.
 */
static bool
TokenRequest(OutboxJob *job, const OAuthProvider *provider, StringInfo body)
{
	const char *client_id = *provider->client_id;
	const char *client_secret = *provider->client_secret;

	if (client_id == NULL || client_id[0] == '\0' || client_secret == NULL || client_secret[0] == '\0')
		return NotSent(job, psprintf("benefits.%s_oauth_client_id and benefits.%s_oauth_client_secret "
									 "must be set", provider->platform, provider->platform));
	FormField(body, "client_id", client_id);
	FormField(body, "client_secret", client_secret);
	job->method = "POST";
	job->url = JobUrl(*provider->token_base_url, provider->token_path);
	job->body = body->data;
	job->headers = list_make2(pstrdup("Accept: application/json"),
							  pstrdup("Content-Type: application/x-www-form-urlencoded"));
	return true;
}

/* Step 0 exchanges the code; step 1 reads the account with the token. */
bool
OAuthLinkAccount(OutboxJob *job)
{
	const OAuthProvider *provider = OAuthProviderFor(JobPayloadText(job, "platform"));
	int			step = JobPayloadInt(job, "_step", 0);
	StringInfoData body;

	if (provider == NULL)
		return NotSent(job, "payload.platform names no OAuth provider");
	if (step == 0)
	{
		char	   *code = JobPayloadText(job, "code");
		char	   *redirect_uri = JobPayloadText(job, "redirect_uri");

		if (code == NULL || redirect_uri == NULL)
			return NotSent(job, "payload.code or payload.redirect_uri is missing");
		initStringInfo(&body);
		FormField(&body, "grant_type", "authorization_code");
		FormField(&body, "code", code);
		FormField(&body, "redirect_uri", redirect_uri);
		job->answer_function = "oauth_code_answer";
		return TokenRequest(job, provider, &body);
	}
	if (job->access_token == NULL)
		return NotSent(job, "the token of the exchange is gone");
	job->method = "GET";
	job->url = JobUrl(*provider->api_url, provider->account_path);
	job->headers = list_make2(pstrdup("Accept: application/json"),
							  psprintf("Authorization: Bearer %s", job->access_token));
	job->answer_function = "oauth_account_answer";
	return true;
}

/*
 * Renews the customer's token with the refresh token read at claim time
 * (job->refresh_token), instead of the job's own request.
 */
bool
OAuthRefreshRequest(OutboxJob *job, const char *platform)
{
	const OAuthProvider *provider = OAuthProviderFor(platform);
	StringInfoData body;

	initStringInfo(&body);
	FormField(&body, "grant_type", "refresh_token");
	FormField(&body, "refresh_token", job->refresh_token);
	job->answer_function = "discord_refresh_answer";
	return TokenRequest(job, provider, &body);
}

/*
 * Can the job's token be renewed here: a refresh token read at claim time,
 * the platform's client credentials set, and no renewal by this job yet?
 */
bool
OAuthCanRefresh(const OutboxJob *job, const char *platform)
{
	const OAuthProvider *provider = OAuthProviderFor(platform);

	/* once per job: a renewed token that still expires soon is used as it is */
	return job->refresh_token != NULL && provider != NULL && JobPayloadText(job, "_renewed") == NULL &&
		*provider->client_id != NULL && (*provider->client_id)[0] != '\0' &&
		*provider->client_secret != NULL && (*provider->client_secret)[0] != '\0';
}

/*
 * An answer read by an answer function: transport failures, 5xx and 429 are
 * retried (a code can be exchanged again until the provider has used it);
 * anything else is for job->answer_function to read.
 */
void
OAuthAnswerJudge(OutboxJob *job)
{
	if (job->curl_code != CURLE_OK || job->refused_address || RetryIsTransientStatus(job->status))
	{
		RetryJudgeFailure(job, psprintf("%s %s", job->kind, job->action));
		/* the job's last error is readable by benefits_admin: no body, which may hold a token */
		if (job->curl_code == CURLE_OK && !job->refused_address)
			job->error = psprintf("%s %s: HTTP %ld from the provider", job->kind, job->action, job->status);
		return;
	}
	job->outcome = JOB_ANSWER;
}
