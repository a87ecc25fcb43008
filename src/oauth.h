/*
 * oauth.h — the OAuth providers customers link their accounts with
 * (oauth_providers.c): their settings and endpoints, one entry per
 * platform, for the portal (account_links.c) and the worker (oauth_jobs.c).
 */
#ifndef BENEFITS_OAUTH_H
#define BENEFITS_OAUTH_H

#include "postgres.h"

typedef struct OAuthProvider
{
	const char *platform;		/* customer_accounts.platform */
	const char *display_name;	/* "GitHub", for messages and the page */
	char	  **oauth_url;		/* the setting of the authorize page's base URL */
	const char *authorize_path;
	const char *scope;			/* requested scopes, space-separated, or NULL */
	char	  **client_id;
	char	  **client_secret;
	char	  **token_base_url; /* the setting of the token endpoint's base URL */
	const char *token_path;
	char	  **api_url;		/* the setting of the API the account is read from */
	const char *account_path;
} OAuthProvider;

/* Settings; called from _PG_init. */
extern void OAuthInit(void);
/* The provider of a platform, or NULL. */
extern const OAuthProvider *OAuthProviderFor(const char *platform);
/* Every provider: *n of them. */
extern const OAuthProvider *OAuthProviders(int *n);

#endif
