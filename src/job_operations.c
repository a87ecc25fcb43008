/*
 * job_operations.c — the one table of what each kind and action of outbox
 * job does: the request it builds and how its answer is judged.  The worker
 * (worker.c) asks it for every job; a kind or action not listed is a
 * permanent failure of that job, never a guess.
 */
#include "postgres.h"

#include "nodes/pg_list.h"

#include "worker.h"

static const JobOperation operations[] = {
	{"webhook", "deliver", WebhookBuildRequest, WebhookJudge},
	{"github", "add_collaborator", GithubAddCollaborator, ProviderJudge},
	{"github", "remove_collaborator", GithubRemoveCollaborator, GithubRemoveCollaboratorJudge},
	{"discord", "add_member", DiscordAddMember, DiscordAddMemberJudge},
	{"discord", "add_role", DiscordAddRole, ProviderJudge},
	{"discord", "remove_role", DiscordRemoveRole, ProviderJudge},
	{"discord", "kick_member", DiscordKickMember, ProviderJudge},
	{"discord", "post_welcome", DiscordPostWelcome, ProviderJudge},
	{"oauth", "link_account", OAuthLinkAccount, OAuthAnswerJudge},
	{"email", "benefits_granted", EmailBuildRequest, EmailJudge},
	{"email", "benefits_removed", EmailBuildRequest, EmailJudge},
	{"email", "fulfillment_completed", EmailBuildRequest, EmailJudge},
	{"email", "revocation_warning", EmailBuildRequest, EmailJudge},
	{"email", "credits_low", EmailBuildRequest, EmailJudge},
	{"email", "license_expiring", EmailBuildRequest, EmailJudge},
};

/* Builds nothing: the job names no known operation. */
static bool
UnknownOperation(OutboxJob *job)
{
	job->outcome = JOB_PERMANENT;
	job->error = psprintf("unknown job: kind \"%s\", action \"%s\"", job->kind, job->action);
	return false;
}

static const JobOperation unknown = {NULL, NULL, UnknownOperation, NULL};

const JobOperation *
JobOperationOf(const OutboxJob *job)
{
	for (int i = 0; i < (int) lengthof(operations); i++)
		if (strcmp(operations[i].kind, job->kind) == 0 && strcmp(operations[i].action, job->action) == 0)
			return &operations[i];
	return &unknown;
}

/*
 * Builds the job's request through its operation, then refuses one whose
 * headers carry a line break: a value from a table or a provider (a token)
 * must never add a header of its own.
 */
bool
JobBuildRequest(OutboxJob *job)
{
	ListCell   *lc;

	if (!JobOperationOf(job)->build(job))
		return false;
	foreach(lc, job->headers)
	{
		if (strpbrk((const char *) lfirst(lc), "\r\n") != NULL)
		{
			job->outcome = JOB_PERMANENT;
			job->error = psprintf("%s %s: a header of the request has a line break; not sent", job->kind, job->action);
			return false;
		}
	}
	return true;
}
