/*
 * portal.h — customer sessions (portal.c) and the portal document
 * (portal_document.c).
 */
#ifndef BENEFITS_PORTAL_H
#define BENEFITS_PORTAL_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "portal_page.h"

/*
 * A live session: customer_sessions s joined to its customer c (not deleted),
 * with the token hash as $1.  The session lookups of portal.c and of
 * portal_document.c share it.
 */
#define CUSTOMER_SESSION_JOIN_SQL \
	"  FROM benefits.customer_sessions s" \
	"  JOIN benefits.customers c ON c.id = s.customer_id AND c.deleted_at IS NULL"
#define CUSTOMER_SESSION_LIVE_SQL \
	"s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > pg_catalog.now()"

/* The stored hash of a token; the one 28000 error when it is malformed. */
extern bytea *CustomerSessionTokenHash(text *token);
/* The customer of a live session token; the one 28000 error otherwise. */
extern pg_uuid_t CustomerSessionResolve(text *token);
/* The same, with the session's id (*session_id). */
extern pg_uuid_t CustomerSessionOpen(text *token, pg_uuid_t *session_id);
extern void CustomerSessionInvalid(void) pg_attribute_noreturn();

/* The portal document of a customer, or NULL; inside an SPI connection. */
extern Jsonb *PortalDocument(Datum customer_id);
/* The portal document of a live session's customer; inside an SPI connection. */
extern Jsonb *PortalDocumentForSession(text *token);

/* portal_html.c */
/* Refuses an action URL that is neither a same-origin absolute path nor https (22023). */
extern void PortalCheckActionUrl(const char *url);
/* Appends " origin" of an https action_url, for a CSP form-action list. */
extern void PortalFormActionOrigin(StringInfo buf, const char *action_url);
extern char *PortalHtml(Jsonb *doc, const char *action_url, const PortalLinkUrl *link_urls, int nlink_urls);

/* account_links.c: the authorize URL of each platform the page offers to connect */
extern PortalLinkUrl *PortalLinkUrls(text *token, Jsonb *doc, const char *redirect_uri, int *n);

#endif
