/*
 * providers.c — GitHub and Discord calls of the outbox's provider jobs: the
 * request each action builds from its job's payload, and how its answer is
 * judged (job_operations.c lists them).
 *
 * Every call is idempotent at the provider, so a job retried after a crash
 * does no harm: PUT collaborator, PUT/DELETE role, DELETE member.  Removals
 * treat 404 (already absent) as success.  Two jobs take several requests,
 * carried across claims by a "_step" key merged into the payload:
 *   - GitHub remove_collaborator: list the repository's pending invitations
 *     (step 0, page by page: GithubInvitationWalk); delete the customer's
 *     invitation if there is one (step 1), else remove the collaborator
 *     (step 2).
 *   - Discord add_member: PUT the member with the customer's OAuth token and
 *     roles (step 0), after renewing the token when it is about to expire
 *     (oauth_jobs.c).  If they were already a member Discord ignores the
 *     roles, so steps 1..n PUT each role.
 *
 * Payloads: GitHub {owner, repo, username, permission}; Discord {guild_id,
 * user_id, role_ids, customer_id} for add_member (the OAuth token is read
 * from customer_accounts at claim time, never stored in the outbox),
 * {guild_id, user_id, role_id} for add_role and remove_role, {guild_id,
 * user_id} for kick_member, {guild_id, user_id, channel_id, content} for
 * post_welcome (POST /channels/{channel}/messages, with mentions limited to
 * the member and the job's id as an enforced nonce, so Discord drops a
 * resend after a crash).  Every value that becomes a path segment is
 * checked against its shape here, just before it is sent.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "benefits.h"
#include "provider_names.h"
#include "worker.h"

/* The payload's array member key (role ids), or NULL. */
static JsonbContainer *
PayloadArray(const OutboxJob *job, const char *key)
{
	JsonbValue *v;

	if (job->payload_json == NULL || !JB_ROOT_IS_OBJECT(job->payload_json))
		return NULL;
	v = getKeyJsonValueFromContainer(&job->payload_json->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
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
 * never sent.  An empty, "." or ".." segment, which a server would read as a
 * different path, is refused whatever a shape function says.
 */
static char *
PathSegmentOf(OutboxJob *job, const char *field, const char *value, NameShape valid)
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

/* PathSegmentOf the payload's member field. */
static char *
PathSegment(OutboxJob *job, const char *field, NameShape valid)
{
	return PathSegmentOf(job, field, JobPayloadText(job, field), valid);
}

/* ---- GitHub ---- */

/* "/repos/{owner}/{repo}" and GitHub's headers, or NULL (job judged). */
static char *
GithubRepoPath(OutboxJob *job)
{
	char	   *owner = PathSegment(job, "owner", GithubLoginValid);
	char	   *repo = owner ? PathSegment(job, "repo", GithubRepositoryValid) : NULL;

	if (repo == NULL)
		return NULL;
	job->headers = list_make2(pstrdup("Accept: application/vnd.github+json"),
							  pstrdup("X-GitHub-Api-Version: 2022-11-28"));
	if (benefits_github_token && benefits_github_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bearer %s", benefits_github_token));
	return psprintf("/repos/%s/%s", owner, repo);
}

/* PUT /repos/{owner}/{repo}/collaborators/{username} with the permission. */
bool
GithubAddCollaborator(OutboxJob *job)
{
	char	   *repo_path = GithubRepoPath(job);
	char	   *username = repo_path ? PathSegment(job, "username", GithubLoginValid) : NULL;
	char	   *permission = JobPayloadText(job, "permission");
	StringInfoData body;

	if (username == NULL)
		return false;
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"permission\":");
	escape_json(&body, permission ? permission : "pull");
	appendStringInfoChar(&body, '}');
	job->method = "PUT";
	job->url = JobUrl(benefits_github_api_url, psprintf("%s/collaborators/%s", repo_path, username));
	job->body = body.data;
	job->headers = lappend(job->headers, pstrdup("Content-Type: application/json"));
	return true;
}

/* How many pages of pending invitations a revoke reads at most. */
#define GITHUB_INVITATION_PAGES 100

/* The steps of a revoke: list invitations, delete one, or remove the collaborator. */
bool
GithubRemoveCollaborator(OutboxJob *job)
{
	char	   *repo_path = GithubRepoPath(job);
	char	   *username = repo_path ? PathSegment(job, "username", GithubLoginValid) : NULL;
	int			step = JobPayloadInt(job, "_step", 0);

	if (username == NULL)
		return false;
	job->method = step == 0 ? "GET" : "DELETE";
	if (step == 0)
		job->url = JobUrl(benefits_github_api_url,
						   psprintf("%s/invitations?per_page=100&page=%d", repo_path,
									Max(JobPayloadInt(job, "_invitation_page", 1), 1)));
	else if (step == 1 && JobPayloadText(job, "_invitation_id") != NULL)
	{
		char	   *invitation = PathSegment(job, "_invitation_id", DecimalIdValid);

		if (invitation == NULL)
			return false;
		job->url = JobUrl(benefits_github_api_url, psprintf("%s/invitations/%s", repo_path, invitation));
	}
	else
		job->url = JobUrl(benefits_github_api_url, psprintf("%s/collaborators/%s", repo_path, username));
	return true;
}

/*
 * A provider's answer: 2xx is success, and removing what is already gone
 * (404 to a DELETE) too; anything else is judged by retry.c.  Returns
 * whether it was a success.
 */
static bool
ProviderAnswer(OutboxJob *job)
{
	bool		ok = job->curl_code == CURLE_OK && job->status >= 200 && job->status < 300;

	if (!ok && strcmp(job->method, "DELETE") == 0 && job->curl_code == CURLE_OK && job->status == 404)
		ok = true;
	if (!ok)
	{
		RetryJudgeFailure(job, psprintf("%s %s", job->kind, job->action));
		return false;
	}
	job->outcome = JOB_DONE;
	return true;
}

/* The answer of a one-request provider call. */
void
ProviderJudge(OutboxJob *job)
{
	(void) ProviderAnswer(job);
}

/*
 * The next page of a GitHub revoke's search for the customer's pending
 * invitation, as a payload patch, when the page just read did not hold it;
 * NULL when no page is left (remove the collaborator).  Other revokes
 * delete invitations meanwhile, which moves the later ones to earlier
 * pages, so a walk forward by page number can step over the one it looks
 * for.  After page 1 the walk goes from the last page (the Link header's
 * rel="last") down to page 1 again: an invitation only ever moves to a page
 * not yet read.  A list with rel="next" but no rel="last" is walked
 * forward.  At most 100 pages of 100.
 */
char *
GithubInvitationWalk(const OutboxJob *job)
{
	int			page = Max(JobPayloadInt(job, "_invitation_page", 1), 1);

	if (JobPayloadInt(job, "_invitations_downward", 0) == 1)
		return page > 1 ? psprintf("{\"_invitation_page\": %d}", page - 1) : NULL;
	if (page == 1 && job->link_last_page > 1)
		return psprintf("{\"_invitation_page\": %d, \"_invitations_downward\": 1}",
						Min(job->link_last_page, GITHUB_INVITATION_PAGES));
	if (job->link_next && page < GITHUB_INVITATION_PAGES)
		return psprintf("{\"_invitation_page\": %d}", page + 1);
	return NULL;
}

/* The invitation list just fetched is searched in SQL (outbox_claim.c). */
void
GithubRemoveCollaboratorJudge(OutboxJob *job)
{
	if (ProviderAnswer(job) && JobPayloadInt(job, "_step", 0) == 0)
		job->outcome = JOB_STEP;
}

/* ---- Discord ---- */

/* "/guilds/{guild}/members/{user}" and Discord's headers, or NULL (job judged). */
static char *
DiscordMemberPath(OutboxJob *job)
{
	char	   *guild = PathSegment(job, "guild_id", SnowflakeShape);
	char	   *user = guild ? PathSegment(job, "user_id", SnowflakeShape) : NULL;

	if (user == NULL)
		return NULL;
	job->headers = list_make1(pstrdup("Content-Type: application/json"));
	if (benefits_discord_bot_token && benefits_discord_bot_token[0])
		job->headers = lappend(job->headers, psprintf("Authorization: Bot %s", benefits_discord_bot_token));
	return psprintf("/guilds/%s/members/%s", guild, user);
}

/*
 * The JSON array of role ids for Discord's add-member body, rebuilt from the
 * payload's array so that only Discord ids reach the body; NULL, and the job
 * dead, for anything else.
 */
static char *
DiscordRoleArray(OutboxJob *job)
{
	JsonbContainer *roles = PayloadArray(job, "role_ids");
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	for (int i = 0; roles != NULL && i < (int) JsonContainerSize(roles); i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(roles, i);
		char	   *id = v->type == jbvString ? pnstrdup(v->val.string.val, v->val.string.len) : NULL;

		if (id == NULL || !DiscordIdValid(id, 1))
		{
			job->outcome = JOB_PERMANENT;
			job->error = psprintf("discord %s: payload.role_ids must be an array of Discord ids; not sent",
								  job->action);
			return NULL;
		}
		appendStringInfo(&out, "%s\"%s\"", i > 0 ? "," : "", id);
	}
	appendStringInfoChar(&out, ']');
	return out.data;
}

/* PUT /guilds/{guild}/members/{user}/roles/{role} for one role. */
static bool
DiscordRoleRequest(OutboxJob *job, const char *method, const char *role_field)
{
	char	   *member_path = DiscordMemberPath(job);
	char	   *role = member_path ? PathSegment(job, role_field, SnowflakeShape) : NULL;

	if (role == NULL)
		return false;
	job->method = method;
	job->url = JobUrl(benefits_discord_api_url, psprintf("%s/roles/%s", member_path, role));
	return true;
}

/*
 * Step 0: PUT the member with the customer's token and roles.  Step n: PUT
 * role n (for a customer who was a member already).
 */
bool
DiscordAddMember(OutboxJob *job)
{
	int			step = JobPayloadInt(job, "_step", 0);
	char	   *member_path;
	char	   *roles;
	StringInfoData body;

	if (step > 0)
	{
		JsonbContainer *ids = PayloadArray(job, "role_ids");
		JsonbValue *v = ids && step <= (int) JsonContainerSize(ids)
			? getIthJsonbValueFromContainer(ids, step - 1) : NULL;
		char	   *member = DiscordMemberPath(job);
		char	   *role;

		if (member == NULL)
			return false;
		role = PathSegmentOf(job, "role_ids", v && v->type == jbvString
							 ? pnstrdup(v->val.string.val, v->val.string.len) : NULL, SnowflakeShape);
		if (role == NULL)
			return false;
		job->method = "PUT";
		job->url = JobUrl(benefits_discord_api_url, psprintf("%s/roles/%s", member, role));
		return true;
	}
	if ((member_path = DiscordMemberPath(job)) == NULL)
		return false;
	/* a token about to expire is renewed first (then this step runs again) */
	if (OAuthCanRefresh(job, "discord"))
		return OAuthRefreshRequest(job, "discord");
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
	job->url = JobUrl(benefits_discord_api_url, member_path);
	job->body = body.data;
	return true;
}

bool
DiscordAddRole(OutboxJob *job)
{
	return DiscordRoleRequest(job, "PUT", "role_id");
}

bool
DiscordRemoveRole(OutboxJob *job)
{
	return DiscordRoleRequest(job, "DELETE", "role_id");
}

/* DELETE /guilds/{guild}/members/{user}. */
bool
DiscordKickMember(OutboxJob *job)
{
	char	   *member_path = DiscordMemberPath(job);

	if (member_path == NULL)
		return false;
	job->method = "DELETE";
	job->url = JobUrl(benefits_discord_api_url, member_path);
	return true;
}

/* The most characters Discord takes in a message's content. */
#define DISCORD_CONTENT_MAX 2000

/*
 * POST /channels/{channel}/messages: the welcome message, mentioning no one
 * but the member (allowed_mentions), with the job's id as nonce.
 */
bool
DiscordPostWelcome(OutboxJob *job)
{
	char	   *member_path = DiscordMemberPath(job);
	char	   *channel = member_path ? PathSegment(job, "channel_id", SnowflakeShape) : NULL;
	char	   *user = JobPayloadText(job, "user_id");
	char	   *content = JobPayloadText(job, "content");
	StringInfoData body;

	if (channel == NULL)
		return false;
	if (content == NULL || content[0] == '\0' ||
		pg_mbstrlen(content) > DISCORD_CONTENT_MAX)
	{
		job->outcome = JOB_PERMANENT;
		job->error = psprintf("discord post_welcome: payload.content must be 1 to %d characters; not sent",
							  DISCORD_CONTENT_MAX);
		return false;
	}
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"content\":");
	escape_json(&body, content);
	appendStringInfo(&body, ",\"allowed_mentions\":{\"parse\":[],\"users\":[\"%s\"]},"
					 "\"nonce\":\"" INT64_FORMAT "\",\"enforce_nonce\":true}", user, job->id);
	job->method = "POST";
	job->url = JobUrl(benefits_discord_api_url, psprintf("/channels/%s/messages", channel));
	job->body = body.data;
	return true;
}

/* 204 to step 0: already a member, whose roles Discord left unchanged. */
void
DiscordAddMemberJudge(OutboxJob *job)
{
	int			step = JobPayloadInt(job, "_step", 0);
	JsonbContainer *ids = PayloadArray(job, "role_ids");
	int			nroles = ids ? (int) JsonContainerSize(ids) : 0;
	int			next;

	if (job->answer_function != NULL)
	{
		OAuthAnswerJudge(job);
		return;
	}
	if (!ProviderAnswer(job))
		return;
	next = step == 0 ? (job->status == 204 ? 1 : 0) : step + 1;
	if (next > 0 && next <= nroles)
	{
		job->outcome = JOB_STEP;
		job->step_patch = psprintf("{\"_step\": %d}", next);
	}
}
