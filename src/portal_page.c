/*
 * portal_page.c — the pieces the customer portal page is built from:
 * reading the portal document's members, dates in words, escaping, and the
 * delivery status of provider access.  Used by the page (portal_html.c) and
 * by each benefit type's section of it (type_*.c).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "html.h"
#include "oauth.h"
#include "portal_page.h"

/* The value of KEY in an object container, or NULL when absent or JSON null. */
JsonbValue *
PageGet(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	if (obj == NULL)
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	return v;
}

/* A member as text (strings as they are), or NULL. */
char *
PageText(JsonbContainer *obj, const char *key)
{
	return BenefitsJsonbValueText(PageGet(obj, key));
}

/* A boolean member, false when absent. */
bool
PageBool(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = PageGet(obj, key);

	return v != NULL && v->type == jbvBool && v->val.boolean;
}

/* An object or array member, or NULL. */
JsonbContainer *
PageContainer(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = PageGet(obj, key);

	return v != NULL && v->type == jbvBinary ? v->val.binary.data : NULL;
}

/* The length of an array (0 for anything else). */
int
PageArrayLength(JsonbContainer *arr)
{
	return arr != NULL && JsonContainerIsArray(arr) ? JsonContainerSize(arr) : 0;
}

/* Element I of an array of objects, as a container (NULL if not an object). */
JsonbContainer *
PageElement(JsonbContainer *arr, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	return v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data)
		? v->val.binary.data : NULL;
}

const char *const PageMonthNames[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* "5 Mar 2031" from the document's "2031-03-05T...Z" (NULL: NULL). */
char *
PageDate(const char *rfc3339)
{
	int			y,
				m,
				d;

	if (rfc3339 == NULL || sscanf(rfc3339, "%d-%d-%d", &y, &m, &d) != 3 || m < 1 || m > 12)
		return NULL;
	return psprintf("%d %s %d", d, PageMonthNames[m - 1], y);
}

/* HTML-escaped text (html.c), for the sections' brevity. */
void
PageEsc(StringInfo buf, const char *s)
{
	HtmlEscape(buf, s);
}


/* The page's connect link for a platform, or NULL. */
static const char *
PageLinkUrl(const PortalPage *page, const char *platform)
{
	for (int i = 0; i < page->nlink_urls; i++)
		if (strcmp(page->link_urls[i].platform, platform) == 0)
			return page->link_urls[i].url;
	return NULL;
}

/*
 * The platform's account as the document's link member of x says: a link to
 * the provider to connect one (unlinked, failed), or a form to disconnect it
 * (linked), posting action=portal_unlink_account and the platform.
 */
static void
PageAccountActions(PortalPage *page, JsonbContainer *x, const char *platform)
{
	JsonbContainer *link = PageContainer(x, "link");
	char	   *status = PageText(link, "status");
	char	   *error = PageText(link, "error");
	const OAuthProvider *provider = OAuthProviderFor(platform);
	const char *name = provider ? provider->display_name : platform;
	const char *url = PageLinkUrl(page, platform);
	StringInfo	buf = page->buf;

	if (status == NULL)
		return;
	if (strcmp(status, "failed") == 0 && error)
	{
		appendStringInfoString(buf, "<p class=\"status bad\">");
		PageEsc(buf, error);
		appendStringInfoString(buf, "</p>\n");
	}
	if ((strcmp(status, "unlinked") == 0 || strcmp(status, "failed") == 0) && url)
	{
		appendStringInfoString(buf, "<p><a class=\"connect\" href=\"");
		PageEsc(buf, url);
		appendStringInfo(buf, "\">Connect %s</a></p>\n", name);
	}
	else if (strcmp(status, "pending") == 0)
		appendStringInfo(buf, "<p class=\"muted\">Connecting your %s account…</p>\n", name);
	/* a linked account whose link failed (a refused renewal) can go too */
	if ((strcmp(status, "linked") == 0 || (strcmp(status, "failed") == 0 && PageContainer(x, "account")))
		&& page->action_url)
	{
		appendStringInfoString(buf, "<form class=\"account\" method=\"post\" action=\"");
		PageEsc(buf, page->action_url);
		appendStringInfoString(buf, "\"><input type=\"hidden\" name=\"action\" value=\"portal_unlink_account\">"
							   "<input type=\"hidden\" name=\"platform\" value=\"");
		PageEsc(buf, platform);
		appendStringInfo(buf, "\"><button type=\"submit\">Disconnect %s</button></form>\n", name);
	}
}

/*
 * Where delivery of GitHub or Discord access stands (the document's
 * delivery, account and message members of x), in words for the customer,
 * then what they can do about the account.
 */
void
PageAccessStatus(PortalPage *page, JsonbContainer *x, const char *platform)
{
	StringInfo	buf = page->buf;
	char	   *delivery = PageText(x, "delivery");
	JsonbContainer *account = PageContainer(x, "account");
	char	   *who = account ? PageText(account, "username") : NULL;
	char	   *message = PageText(x, "message");

	if (who == NULL && account)
		who = PageText(account, "account_id");

	if (delivery && strcmp(delivery, "granted") == 0)
	{
		appendStringInfoString(buf, "<p class=\"status ok\" role=\"status\">Access granted");
		if (who)
		{
			appendStringInfoString(buf, " to ");
			PageEsc(buf, who);
		}
		appendStringInfoString(buf, ".</p>\n");
	}
	else if (delivery && strcmp(delivery, "action_required") == 0)
	{
		char	   *link = PageText(PageContainer(x, "link"), "status");

		/* a link in progress or failed says so itself, below */
		if (link && (strcmp(link, "pending") == 0 || strcmp(link, "failed") == 0))
		{
			PageAccountActions(page, x, platform);
			return;
		}
		appendStringInfoString(buf, "<p class=\"status warn\" role=\"status\">Action needed: ");
		PageEsc(buf, message ? message : "link your account to receive access.");
		appendStringInfoString(buf, "</p>\n");
	}
	else if (delivery && strcmp(delivery, "failed") == 0)
	{
		appendStringInfoString(buf, "<p class=\"status bad\" role=\"status\">Access could not be delivered yet");
		if (message)
		{
			appendStringInfoString(buf, ": ");
			PageEsc(buf, message);
		}
		appendStringInfoString(buf, ". The seller has been notified.</p>\n");
	}
	else
	{
		appendStringInfoString(buf, "<p class=\"status\" role=\"status\">Access is being set up");
		if (who)
		{
			appendStringInfoString(buf, " for ");
			PageEsc(buf, who);
		}
		appendStringInfoString(buf, ".</p>\n");
	}
	PageAccountActions(page, x, platform);
}
