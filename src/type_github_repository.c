/*
 * type_github_repository.c — the github_repository benefit type: access to
 * one or more GitHub repositories as a collaborator with a permission.
 *
 * Properties: one repository ({repository_owner, repository_name,
 * permission}) or several ({repositories: [{owner, name, permission}]}),
 * normalized to {"repositories": [...]} plus the single form's keys when it
 * was given.  Owners and names are checked against GitHub's shapes
 * (provider_names.c): they become path segments of the worker's requests.
 * Grants wait for a linked GitHub account; the access itself is delivered by
 * outbox jobs (provider_jobs.c, then the worker's providers.c).
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "engine.h"
#include "properties.h"
#include "provider_names.h"

/*
 * In webhook payloads Polar's GitHub properties always carry the single
 * form: a benefit given with several repositories gets the first one's
 * owner, name and permission (as its grants' properties have them);
 * repositories stays, a documented extension.
 */
#define GITHUB_WEBHOOK_PROPERTIES \
	"%1$s.properties || pg_catalog.jsonb_build_object(" \
	" 'repository_owner', COALESCE(%1$s.properties->>'repository_owner', %1$s.properties #>> '{repositories,0,owner}')," \
	" 'repository_name', COALESCE(%1$s.properties->>'repository_name', %1$s.properties #>> '{repositories,0,name}')," \
	" 'permission', COALESCE(%1$s.properties->>'permission', %1$s.properties #>> '{repositories,0,permission}'))"

/* Repositories of one benefit: each is a request per grant, revoke and edit. */
#define MAX_REPOSITORIES 100

static const char *const github_permissions[] =
{"pull", "triage", "push", "maintain", "admin", NULL};

/* A GitHub user or organization name (provider_names.c). */
static char *
GitHubOwnerAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);

	if (!GithubLoginValid(s))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a GitHub user or organization name", path),
				errdetail("A GitHub owner is 1 to 39 ASCII letters, digits or hyphens and does not start with a hyphen."));
	return s;
}

/* A GitHub repository name (provider_names.c). */
static char *
GitHubRepositoryAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);

	if (!GithubRepositoryValid(s))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be a GitHub repository name", path),
				errdetail("A GitHub repository name is 1 to 100 ASCII letters, digits, '.', '-' or '_', other than \".\" and \"..\"."));
	return s;
}

static char *
GitHubPermissionAt(JsonbValue *v, const char *path)
{
	char	   *s = PropStringOf(v);

	if (s == NULL || !PropInList(s, github_permissions))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("%s must be one of %s", path, PropJoinList(github_permissions)));
	return s;
}

/*
 * One repository ({repository_owner, repository_name, permission}) or several
 * (repositories: [{owner, name, permission}]); the output always has the list.
 */
static void
NormalizeGitHubRepository(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] =
	{"repository_owner", "repository_name", "permission", "repositories", NULL};
	static const char *const repository_keys[] = {"owner", "name", "permission", NULL};
	bool		single;
	JsonbValue *list;
	int			n;
	char	  **owners;
	char	  **names;
	char	  **permissions;

	PropCheckKeys(state, root, "properties", keys);
	single = PropField(root, "repository_owner") != NULL ||
		PropField(root, "repository_name") != NULL ||
		PropField(root, "permission") != NULL;
	list = PropField(root, "repositories");
	if (single && list != NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must give either repositories or repository_owner, repository_name and permission, not both"));
	if (!single && list == NULL)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.repositories is required"),
				errhint("Give repositories: [{owner, name, permission}, ...], or repository_owner, repository_name and permission for a single repository."));

	if (single)
	{
		n = 1;
		owners = palloc(sizeof(char *));
		names = palloc(sizeof(char *));
		permissions = palloc(sizeof(char *));
		owners[0] = GitHubOwnerAt(PropRequiredField(root, "properties", "repository_owner"),
								  "properties.repository_owner");
		names[0] = GitHubRepositoryAt(PropRequiredField(root, "properties", "repository_name"),
									  "properties.repository_name");
		permissions[0] = GitHubPermissionAt(PropRequiredField(root, "properties", "permission"),
											"properties.permission");
	}
	else
	{
		JsonbContainer *elements = PropNonEmptyArrayAt(list, "properties.repositories",
													   MAX_REPOSITORIES);

		n = JsonContainerSize(elements);
		owners = palloc(n * sizeof(char *));
		names = palloc(n * sizeof(char *));
		permissions = palloc(n * sizeof(char *));
		for (int i = 0; i < n; i++)
		{
			char	   *path = psprintf("properties.repositories[%d]", i);
			JsonbContainer *repo = PropObjectAt(getIthJsonbValueFromContainer(elements, i), path);

			PropCheckKeys(state, repo, path, repository_keys);
			owners[i] = GitHubOwnerAt(PropRequiredField(repo, path, "owner"),
									  psprintf("%s.owner", path));
			names[i] = GitHubRepositoryAt(PropRequiredField(repo, path, "name"),
										  psprintf("%s.name", path));
			permissions[i] = GitHubPermissionAt(PropRequiredField(repo, path, "permission"),
												psprintf("%s.permission", path));
			/* GitHub names are case-insensitive. */
			for (int j = 0; j < i; j++)
				if (pg_strcasecmp(owners[i], owners[j]) == 0 &&
					pg_strcasecmp(names[i], names[j]) == 0)
					ereport(ERROR, PROPERTY_ERROR,
							errmsg("%s repeats properties.repositories[%d]", path, j),
							errdetail("Both name the repository %s/%s.", owners[j], names[j]));
		}
	}

	if (single)
	{
		PropPutKeyString(state, "repository_owner", owners[0]);
		PropPutKeyString(state, "repository_name", names[0]);
		PropPutKeyString(state, "permission", permissions[0]);
	}
	PropPutKey(state, "repositories");
	pushJsonbValue(&state->out, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&state->out, WJB_BEGIN_OBJECT, NULL);
		PropPutKeyString(state, "owner", owners[i]);
		PropPutKeyString(state, "name", names[i]);
		PropPutKeyString(state, "permission", permissions[i]);
		pushJsonbValue(&state->out, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state->out, WJB_END_ARRAY, NULL);
}

static void
GithubGrant(GrantChange *change)
{
	ProviderJobsGrant(change, PROVIDER_GITHUB);
}

static void
GithubGrantMany(GrantBatch *batch)
{
	ProviderJobsGrantMany(batch, PROVIDER_GITHUB);
}

static void
GithubRevoke(GrantChange *change)
{
	ProviderJobsRevoke(change, PROVIDER_GITHUB);
}

static void
GithubAccountGone(GrantChange *change)
{
	ProviderJobsAccountGone(change, PROVIDER_GITHUB);
}

static Jsonb *
GithubGrantUpdated(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
				   Jsonb *benefit_properties, Jsonb *grant_properties, bool first)
{
	return ProviderJobsUpdate(grant_id, organization_id, customer_id, PROVIDER_GITHUB,
							  benefit_properties, grant_properties, first);
}

/*
 * The portal: {link, action, account, message, delivery, repositories} (in jsonb
 * key order), what the customer needs to see and do.
 */
static void
GithubPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	char	   *action;
	char	   *message;
	const char *delivery = PortalDelivery(ctx, b, &action, &message);
	JsonbValue *repositories = JsonMember(b->properties, "repositories");

	DocBeginObject(&ctx->doc);
	DocKey(&ctx->doc, "link");
	PortalLink(ctx, PROVIDER_GITHUB);
	DocKey(&ctx->doc, "action");
	DocStr(&ctx->doc, action);
	DocKey(&ctx->doc, "account");
	PortalAccount(ctx, PROVIDER_GITHUB);
	DocKey(&ctx->doc, "message");
	DocStr(&ctx->doc, message);
	DocKey(&ctx->doc, "delivery");
	DocStr(&ctx->doc, delivery);
	DocKey(&ctx->doc, "repositories");
	if (repositories != NULL)
		DocJson(&ctx->doc, repositories);
	else
		DocEmptyArray(&ctx->doc);
	DocEndObject(&ctx->doc);
}

/* The repositories with their permission, and where delivery stands. */
static void
GithubPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *x = PageContainer(benefit, "github");
	JsonbContainer *repos = PageContainer(x, "repositories");

	if (x == NULL)
		return;
	appendStringInfoString(page->buf, "<ul class=\"plain\">\n");
	for (int r = 0; r < PageArrayLength(repos); r++)
	{
		JsonbContainer *repo = PageElement(repos, r);
		char	   *permission = PageText(repo, "permission");

		appendStringInfoString(page->buf, "<li><code>");
		PageEsc(page->buf, PageText(repo, "owner"));
		appendStringInfoChar(page->buf, '/');
		PageEsc(page->buf, PageText(repo, "name"));
		appendStringInfoString(page->buf, "</code> <span class=\"muted\">");
		PageEsc(page->buf, permission ? permission : "");
		appendStringInfoString(page->buf, "</span></li>\n");
	}
	appendStringInfoString(page->buf, "</ul>\n");
	PageAccessStatus(page, x, PROVIDER_GITHUB);
}

/*
 * The repositories, and what to do: connect a GitHub account first, or
 * accept the invitation GitHub sends.
 */
static void
GithubEmail(EmailBody *body, const EmailGrant *grant)
{
	bool		link = EmailAwaits(grant, "link_github");
	ListCell   *lc;

	foreach(lc, EmailObjects(grant->benefit_properties, "repositories"))
	{
		Jsonb	   *repo = (Jsonb *) lfirst(lc);
		char	   *owner = BenefitsJsonText(repo, "owner");
		char	   *name = BenefitsJsonText(repo, "name");
		char	   *what = psprintf("%s/%s (%s access)", owner, name, BenefitsJsonText(repo, "permission"));

		if (link)
			EmailLine(body, psprintf("Repository %s.", what));
		else
			EmailLink(body, psprintf("Accept the invitation to %s", what),
					  psprintf("https://github.com/%s/%s/invitations", owner, name));
	}
	if (link)
		EmailPortalLink(body, grant, "Connect your GitHub account to get access");
}

const BenefitType GithubRepositoryBenefit = {
	.name = "github_repository",
	.webhook_name = "github_repository",
	.webhook_properties_sql = GITHUB_WEBHOOK_PROPERTIES,
	.account_platform = PROVIDER_GITHUB,
	.normalize = NormalizeGitHubRepository,
	.grant = GithubGrant,
	.grant_many = GithubGrantMany,
	.revoke = GithubRevoke,
	.account_gone = GithubAccountGone,
	.grant_updated = GithubGrantUpdated,
	.portal_key = "github",
	.portal_member = GithubPortalMember,
	.portal_label = "GitHub repository access",
	.portal_html = GithubPortalHtml,
	.email_instructions = GithubEmail,
};
