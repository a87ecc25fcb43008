/*
 * portal_page.h — building the customer portal page (portal_page.c): the
 * document's members, escaping, and what a benefit type's section gets.
 */
#ifndef BENEFITS_PORTAL_PAGE_H
#define BENEFITS_PORTAL_PAGE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* Where the page sends the customer to connect an account of a platform. */
typedef struct PortalLinkUrl
{
	const char *platform;
	char	   *url;			/* the provider's authorize URL */
} PortalLinkUrl;

/* The page being rendered, as a benefit type's section sees it. */
typedef struct PortalPage
{
	StringInfo	buf;
	int			index;			/* the benefit's number on the page, for element ids */
	const char *action_url;		/* where forms post, or NULL */
	char	   *link_expiry;	/* when the download links shown expire, or NULL */
	const PortalLinkUrl *link_urls; /* connect links, per platform */
	int			nlink_urls;
} PortalPage;

/* A member of an object (NULL when absent or JSON null); as text; as a boolean. */
extern JsonbValue *PageGet(JsonbContainer *obj, const char *key);
extern char *PageText(JsonbContainer *obj, const char *key);
extern bool PageBool(JsonbContainer *obj, const char *key);
/* An object or array member, or NULL; an array's length; element i of an array of objects. */
extern JsonbContainer *PageContainer(JsonbContainer *obj, const char *key);
extern int	PageArrayLength(JsonbContainer *arr);
extern JsonbContainer *PageElement(JsonbContainer *arr, int i);
/* "5 Mar 2031" from an RFC 3339 time (NULL: NULL); month names. */
extern char *PageDate(const char *rfc3339);
extern const char *const PageMonthNames[];
extern void PageEsc(StringInfo buf, const char *s);
/*
 * Where delivery of provider access stands, for the customer, and the
 * platform's account: a link to connect one, or a form to disconnect it.
 */
extern void PageAccessStatus(PortalPage *page, JsonbContainer *x, const char *platform);

#endif
