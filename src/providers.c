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

#include "provider_names.h"
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

typedef bool (*NameShape) (const char *value);

static bool
SnowflakeShape(const char *value)
{
	return DiscordIdValid(value, 1);
}

/*
 * A path segment of a provider request, from a payload field that must have
 * its documented shape (provider_names.c): NULL, and the job dead, when it is
 * missing or has any other shape.  The value was validated when it was
 * stored; checking again here means a value changed in a table since is
 * never sent.  No shape admits "", "." or "..", which a server would read as
 * a different path.
 */
static char *
PathSegment(OutboxJob *job, const char *field, const char *value, NameShape valid)
{
	if (value == NULL)
	{
		(void) MissingField(job, field);
		return NULL;
	}
	if (!valid(value) || value[0] == '\0' || strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
	{
		job->outcome = JOB_PERMANENT;
		job->error = psprintf("%s %s: payload.%s has a shape that cannot be a %s name or id; not sent",
							  job->kind, job->action, field, job->kind);
		return NULL;
	}
	return HttpEscape(value);
}

/* Build a GitHub request. */
static bool
GithubBuildRequest(OutboxJob *job)
{
	char	   *owner = PathSegment(job, "owner", job->owner, GithubLoginValid);
	char	   *repo = owner ? PathSegment(job, "repo", job->repo, GithubRepositoryValid) : NULL;
	char	   *username;
	char	   *repo_path;

	if (repo == NULL)
		return false;
	repo_path = psprintf("/repos/%s/%s", owner, repo);
	job->headers = list_make2(pstrdup("Accept: application/vnd.github+json"),
							  pstrdup("X-GitHub-Api-Version: 2022-11-28"));
	if (benefits_github_token && benefits_github_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bearer %s", benefits_github_token));

	if (strcmp(job->action, "add_collaborator") == 0)
	{
		StringInfoData body;

		if ((username = PathSegment(job, "username", job->username, GithubLoginValid)) == NULL)
			return false;
		initStringInfo(&body);
		appendStringInfoString(&body, "{\"permission\":");
		escape_json(&body, job->permission ? job->permission : "pull");
		appendStringInfoChar(&body, '}');
		job->method = "PUT";
		job->url = JoinUrl(benefits_github_api_url, psprintf("%s/collaborators/%s", repo_path, username));
		job->body = body.data;
		job->headers = lappend(job->headers, pstrdup("Content-Type: application/json"));
		return true;
	}
	if (strcmp(job->action, "remove_collaborator") == 0)
	{
		if ((username = PathSegment(job, "username", job->username, GithubLoginValid)) == NULL)
			return false;
		if (job->step == 0)
		{
			job->method = "GET";
			job->url = JoinUrl(benefits_github_api_url,
							   psprintf("%s/invitations?per_page=100&page=%d", repo_path,
										Max(job->invitation_page, 1)));
		}
		else if (job->step == 1 && job->invitation_id)
		{
			char	   *invitation = PathSegment(job, "_invitation_id", job->invitation_id, DecimalIdValid);

			if (invitation == NULL)
				return false;
			job->method = "DELETE";
			job->url = JoinUrl(benefits_github_api_url, psprintf("%s/invitations/%s", repo_path, invitation));
		}
		else
		{
			job->method = "DELETE";
			job->url = JoinUrl(benefits_github_api_url, psprintf("%s/collaborators/%s", repo_path, username));
		}
		return true;
	}
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("github: unknown action \"%s\"", job->action);
	return false;
}

/*
 * The JSON array of role ids for Discord's add-member body, rebuilt from the
 * payload's array (JSON text from jsonb, `["1", "2"]`) so that only Discord
 * ids reach the body; NULL, and the job dead, for anything else.
 */
static char *
DiscordRoleArray(OutboxJob *job)
{
	StringInfoData out;
	const char *p = job->role_ids ? job->role_ids : "[]";

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	if (*p++ != '[')
		goto bad;
	while (*p == ' ')
		p++;
	while (*p != ']')
	{
		const char *end;
		char	   *id;

		if (*p++ != '"' || (end = strchr(p, '"')) == NULL)
			goto bad;
		id = pnstrdup(p, end - p);
		if (!DiscordIdValid(id, 1))
			goto bad;
		appendStringInfo(&out, "%s\"%s\"", out.len > 1 ? "," : "", id);
		for (p = end + 1; *p == ' '; p++)
			;
		if (*p == ',')
			for (p++; *p == ' '; p++)
				;
		else if (*p != ']')
			goto bad;
	}
	if (p[1] != '\0')
		goto bad;
	appendStringInfoChar(&out, ']');
	return out.data;
bad:
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("discord %s: payload.role_ids must be an array of Discord ids; not sent", job->action);
	return NULL;
}

/* Build a Discord request. */
static bool
DiscordBuildRequest(OutboxJob *job)
{
	char	   *guild = PathSegment(job, "guild_id", job->guild_id, SnowflakeShape);
	char	   *user = guild ? PathSegment(job, "user_id", job->user_id, SnowflakeShape) : NULL;
	char	   *member_path;
	char	   *role;

	if (user == NULL)
		return false;
	member_path = psprintf("/guilds/%s/members/%s", guild, user);
	job->headers = list_make1(pstrdup("Content-Type: application/json"));
	if (benefits_discord_bot_token && benefits_discord_bot_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bot %s", benefits_discord_bot_token));

	if (strcmp(job->action, "add_member") == 0)
	{
		if (job->step == 0)
		{
			StringInfoData body;
			char	   *roles;

			if (job->access_token == NULL)
			{
				job->outcome = JOB_PERMANENT;
				job->error = pstrdup("discord add_member: the customer has no linked Discord account "
									 "with an access token; link the account again");
				return false;
			}
			if ((roles = DiscordRoleArray(job)) == NULL)
				return false;
			initStringInfo(&body);
			appendStringInfoString(&body, "{\"access_token\":");
			escape_json(&body, job->access_token);
			appendStringInfo(&body, ",\"roles\":%s}", roles);
			job->method = "PUT";
			job->url = JoinUrl(benefits_discord_api_url, member_path);
			job->body = body.data;
		}
		else
		{
			if ((role = PathSegment(job, "role_ids", job->step_role_id, SnowflakeShape)) == NULL)
				return false;
			job->method = "PUT";
			job->url = JoinUrl(benefits_discord_api_url, psprintf("%s/roles/%s", member_path, role));
		}
		return true;
	}
	if (strcmp(job->action, "add_role") == 0 || strcmp(job->action, "remove_role") == 0)
	{
		if ((role = PathSegment(job, "role_id", job->role_id, SnowflakeShape)) == NULL)
			return false;
		job->method = (job->action[0] == 'a') ? "PUT" : "DELETE";
		job->url = JoinUrl(benefits_discord_api_url, psprintf("%s/roles/%s", member_path, role));
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
