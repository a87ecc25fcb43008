/*
 * providers.c — GitHub and Discord calls of the outbox's provider jobs.
 *
 * Every call is idempotent at the provider, so a job retried after a crash
 * does no harm: PUT collaborator, PUT/DELETE role, DELETE member.  Removals
 * treat 404 (already absent) as success.  Two jobs take several requests,
 * carried across claims by a "_step" key merged into the payload:
 *   - GitHub remove_collaborator: list the repository's pending invitations
 *     (step 0, page by page); delete the customer's invitation if there is
 *     one (step 1), else remove the collaborator (step 2).
 *   - Discord add_member: PUT the member with the customer's OAuth token and
 *     roles (step 0).  If they were already a member Discord ignores the
 *     roles, so steps 1..n PUT each role.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "utils/json.h"

#include "worker.h"

/* Join a base URL and a path without a doubled slash. */
static char *
JoinUrl(const char *base, const char *path)
{
	size_t		n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return psprintf("%.*s%s", (int) n, base, path);
}

/* Fail the job permanently for a missing payload field. */
static bool
MissingField(OutboxJob *job, const char *field)
{
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("%s %s: payload.%s is missing", job->kind, job->action, field);
	return false;
}

/* Build a GitHub request. */
static bool
GithubBuildRequest(OutboxJob *job)
{
	char	   *repo_path;

	if (job->owner == NULL)
		return MissingField(job, "owner");
	if (job->repo == NULL)
		return MissingField(job, "repo");
	repo_path = psprintf("/repos/%s/%s", HttpEscape(job->owner), HttpEscape(job->repo));
	job->headers = list_make2(pstrdup("Accept: application/vnd.github+json"),
							  pstrdup("X-GitHub-Api-Version: 2022-11-28"));
	if (benefits_github_token && benefits_github_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bearer %s", benefits_github_token));

	if (strcmp(job->action, "add_collaborator") == 0)
	{
		StringInfoData body;

		if (job->username == NULL)
			return MissingField(job, "username");
		initStringInfo(&body);
		appendStringInfoString(&body, "{\"permission\":");
		escape_json(&body, job->permission ? job->permission : "pull");
		appendStringInfoChar(&body, '}');
		job->method = "PUT";
		job->url = JoinUrl(benefits_github_api_url,
						   psprintf("%s/collaborators/%s", repo_path, HttpEscape(job->username)));
		job->body = body.data;
		job->headers = lappend(job->headers, pstrdup("Content-Type: application/json"));
		return true;
	}
	if (strcmp(job->action, "remove_collaborator") == 0)
	{
		if (job->username == NULL)
			return MissingField(job, "username");
		if (job->step == 0)
		{
			job->method = "GET";
			job->url = JoinUrl(benefits_github_api_url,
							   psprintf("%s/invitations?per_page=100&page=%d", repo_path,
										Max(job->invitation_page, 1)));
		}
		else if (job->step == 1 && job->invitation_id)
		{
			job->method = "DELETE";
			job->url = JoinUrl(benefits_github_api_url,
							   psprintf("%s/invitations/%s", repo_path, HttpEscape(job->invitation_id)));
		}
		else
		{
			job->method = "DELETE";
			job->url = JoinUrl(benefits_github_api_url,
							   psprintf("%s/collaborators/%s", repo_path, HttpEscape(job->username)));
		}
		return true;
	}
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("github: unknown action \"%s\"", job->action);
	return false;
}

/* Build a Discord request. */
static bool
DiscordBuildRequest(OutboxJob *job)
{
	char	   *member_path;

	if (job->guild_id == NULL)
		return MissingField(job, "guild_id");
	if (job->user_id == NULL)
		return MissingField(job, "user_id");
	member_path = psprintf("/guilds/%s/members/%s", HttpEscape(job->guild_id), HttpEscape(job->user_id));
	job->headers = list_make1(pstrdup("Content-Type: application/json"));
	if (benefits_discord_bot_token && benefits_discord_bot_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bot %s", benefits_discord_bot_token));

	if (strcmp(job->action, "add_member") == 0)
	{
		if (job->step == 0)
		{
			StringInfoData body;

			if (job->access_token == NULL)
			{
				job->outcome = JOB_PERMANENT;
				job->error = pstrdup("discord add_member: the customer has no linked Discord account "
									 "with an access token; link the account again");
				return false;
			}
			initStringInfo(&body);
			appendStringInfoString(&body, "{\"access_token\":");
			escape_json(&body, job->access_token);
			appendStringInfo(&body, ",\"roles\":%s}", job->role_ids ? job->role_ids : "[]");
			job->method = "PUT";
			job->url = JoinUrl(benefits_discord_api_url, member_path);
			job->body = body.data;
		}
		else
		{
			if (job->step_role_id == NULL)
				return MissingField(job, "role_ids");
			job->method = "PUT";
			job->url = JoinUrl(benefits_discord_api_url,
							   psprintf("%s/roles/%s", member_path, HttpEscape(job->step_role_id)));
		}
		return true;
	}
	if (strcmp(job->action, "add_role") == 0 || strcmp(job->action, "remove_role") == 0)
	{
		if (job->role_id == NULL)
			return MissingField(job, "role_id");
		job->method = (job->action[0] == 'a') ? "PUT" : "DELETE";
		job->url = JoinUrl(benefits_discord_api_url,
						   psprintf("%s/roles/%s", member_path, HttpEscape(job->role_id)));
		return true;
	}
	if (strcmp(job->action, "kick_member") == 0)
	{
		job->method = "DELETE";
		job->url = JoinUrl(benefits_discord_api_url, member_path);
		return true;
	}
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("discord: unknown action \"%s\"", job->action);
	return false;
}

/* Build the request of a provider job; false (job judged) if impossible. */
bool
ProviderBuildRequest(OutboxJob *job)
{
	if (strcmp(job->kind, "github") == 0)
		return GithubBuildRequest(job);
	if (strcmp(job->kind, "discord") == 0)
		return DiscordBuildRequest(job);
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("unknown job kind \"%s\"", job->kind);
	return false;
}

/* Judge a provider answer. */
void
ProviderJudge(OutboxJob *job)
{
	bool		ok = job->curl_code == CURLE_OK && job->status >= 200 && job->status < 300;
	bool		removal = strcmp(job->method, "DELETE") == 0;
	char	   *what = psprintf("%s %s", job->kind, job->action);

	/* removing what is already gone is success */
	if (!ok && removal && job->curl_code == CURLE_OK && job->status == 404)
		ok = true;
	if (!ok)
	{
		RetryJudgeFailure(job, what);
		return;
	}
	job->outcome = JOB_DONE;
	if (strcmp(job->kind, "github") == 0 && strcmp(job->action, "remove_collaborator") == 0 &&
		job->step == 0)
	{
		/* the invitation list is searched in SQL (outbox_claim.c) */
		job->outcome = JOB_STEP;
	}
	else if (strcmp(job->kind, "discord") == 0 && strcmp(job->action, "add_member") == 0)
	{
		/* 204: already a member, whose roles Discord left unchanged */
		int			next = (job->step == 0) ? (job->status == 204 ? 1 : 0) : job->step + 1;

		if (next > 0 && next <= job->nroles)
		{
			job->outcome = JOB_STEP;
			job->step_patch = psprintf("{\"_step\": %d}", next);
		}
	}
}
