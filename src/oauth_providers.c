/*
 * oauth_providers.c — GitHub and Discord as OAuth 2.0 providers: where the
 * authorize page, the token endpoint and the account are, and the client
 * credentials of the application registered with each.
 *
 * The client secrets are superuser-only settings, never shown to other
 * roles.  The URLs are settings so that tests and GitHub Enterprise can point
 * elsewhere.  Nothing here holds state: the table is read-only.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "oauth.h"
#include "worker.h"

static char *github_oauth_url;
static char *github_oauth_client_id;
static char *github_oauth_client_secret;
static char *discord_oauth_url;
static char *discord_oauth_client_id;
static char *discord_oauth_client_secret;

/*
 * GitHub reads the account with the token from the API; Discord's token
 * endpoint is part of its API.  GitHub needs no scope to name the account,
 * and a collaborator invitation needs none either; Discord needs identify and
 * guilds.join (to add the member to a server).
 */
static const OAuthProvider providers[] = {
	{"github", "GitHub", &github_oauth_url, "/login/oauth/authorize", NULL,
		&github_oauth_client_id, &github_oauth_client_secret,
	&github_oauth_url, "/login/oauth/access_token", &benefits_github_api_url, "/user"},
	{"discord", "Discord", &discord_oauth_url, "/oauth2/authorize", "identify guilds.join",
		&discord_oauth_client_id, &discord_oauth_client_secret,
	&benefits_discord_api_url, "/oauth2/token", &benefits_discord_api_url, "/users/@me"},
};

/* A client credential setting: superuser-only, never listed to others. */
static void
DefineCredential(const char *name, const char *description, char **variable)
{
	DefineCustomStringVariable(name, description, NULL, variable, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
}

void
OAuthInit(void)
{
	DefineCustomStringVariable("benefits.github_oauth_url",
							   "Base URL of GitHub's OAuth pages (authorize, access token).",
							   NULL, &github_oauth_url, "https://github.com",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.discord_oauth_url",
							   "Base URL of Discord's OAuth authorize page.",
							   NULL, &discord_oauth_url, "https://discord.com",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCredential("benefits.github_oauth_client_id",
					 "Client id of the GitHub OAuth app customers link their accounts with.",
					 &github_oauth_client_id);
	DefineCredential("benefits.github_oauth_client_secret",
					 "Client secret of the GitHub OAuth app.", &github_oauth_client_secret);
	DefineCredential("benefits.discord_oauth_client_id",
					 "Client id of the Discord application customers link their accounts with.",
					 &discord_oauth_client_id);
	DefineCredential("benefits.discord_oauth_client_secret",
					 "Client secret of the Discord application.", &discord_oauth_client_secret);
}

const OAuthProvider *
OAuthProviderFor(const char *platform)
{
	for (int i = 0; i < (int) lengthof(providers); i++)
		if (platform != NULL && strcmp(providers[i].platform, platform) == 0)
			return &providers[i];
	return NULL;
}

const OAuthProvider *
OAuthProviders(int *n)
{
	*n = lengthof(providers);
	return providers;
}
