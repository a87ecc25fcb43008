/*
 * portal_html.c — the customer portal as a complete, self-contained HTML page
 * (customer_portal_html), rendered from the portal document.
 *
 * No external assets: the style sheet is inline and a Content-Security-Policy
 * meta tag allows nothing else; forms may post only to the page's origin and
 * to the origin of an https action_url.  action_url is a same-origin absolute
 * path or an https URL naming a plain host, never anything a browser could
 * read as another host (backslashes, "//", white space, control characters).
 * frame-ancestors cannot be set by a meta tag: the application sends that
 * header itself.  Every value taken from the document is
 * HTML-escaped (HtmlEscape), in element content and in attribute values.  The
 * page has a language, a title, one h1, headings per section and benefit
 * (each benefit's section is written by its type's file, through the
 * registry),
 * labelled regions, table headers with scope, a skip link, visible focus and
 * colours with enough contrast in light and dark schemes.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "portal.h"
#include "portal_page.h"
#include "uri.h"

static const char page_head[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\">\n"
	"<head>\n"
	"<meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<meta name=\"referrer\" content=\"same-origin\">\n"
	"<meta name=\"robots\" content=\"noindex, nofollow\">\n"
	"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'";

static const char page_title[] =
	"\">\n"
	"<title>Your purchases · ";

static const char page_style[] =
	"</title>\n"
	"<style>\n"
	":root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#f6f8fa;--card:#fff;--line:#d1d9e0;--accent:#0550ae;--ok:#116329;--warn:#7d4e00;--bad:#a40e26}\n"
	"@media (prefers-color-scheme:dark){:root{--fg:#f0f6fc;--muted:#9198a1;--bg:#0d1117;--card:#151b23;--line:#3d444d;--accent:#74b9ff;--ok:#56d364;--warn:#e3b341;--bad:#ff7b72}}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;font:16px/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;color:var(--fg);background:var(--bg)}\n"
	"main{max-width:48rem;margin:0 auto;padding:2rem 1rem 3rem}\n"
	"h1{font-size:1.75rem;margin:.2rem 0}\n"
	"h2{font-size:1.25rem;margin:2rem 0 .75rem}\n"
	"h3{font-size:1.1rem;margin:0 0 .25rem}\n"
	"a{color:var(--accent)}\n"
	"a:focus-visible,button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\n"
	".muted,.kind{color:var(--muted)}\n"
	".kind{font-size:.875rem;margin:0 0 .75rem}\n"
	".org{font-weight:600;color:var(--muted);margin:0}\n"
	".card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem 1.25rem;margin:0 0 1rem}\n"
	"ul.plain{list-style:none;padding:0;margin:0}\n"
	"ul.plain>li{padding:.35rem 0;border-top:1px solid var(--line)}\n"
	"ul.plain>li:first-child{border-top:0}\n"
	"ul.plain.card{padding:.5rem 1.25rem}\n"
	".key{display:block;font:1.05rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);border:1px solid var(--line);border-radius:.375rem;padding:.5rem .75rem;word-break:break-all;user-select:all}\n"
	"dl.facts{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:.75rem 0}\n"
	"dl.facts dt{font-size:.8rem;color:var(--muted)}\n"
	"dl.facts dd{margin:0;font-weight:600}\n"
	"table{border-collapse:collapse;width:100%;margin-top:.5rem}\n"
	"caption{text-align:left;font-weight:600;padding:.25rem 0}\n"
	"th,td{text-align:left;padding:.35rem .5rem .35rem 0;border-top:1px solid var(--line);vertical-align:top}\n"
	".note{white-space:pre-wrap;margin:0}\n"
	".status{font-weight:600;margin:.5rem 0 0}\n"
	".ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}\n"
	".badge{display:inline-block;font-size:.8rem;border:1px solid var(--line);border-radius:1rem;padding:0 .5rem;margin-left:.25rem}\n"
	"button{font:inherit;font-size:.875rem;padding:.2rem .6rem;border:1px solid var(--line);border-radius:.375rem;background:var(--bg);color:var(--fg);cursor:pointer}\n"
	"form.account{margin:.75rem 0 0}\n"
	".visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\n"
	".skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--card);padding:.5rem}\n"
	"footer{margin-top:2rem;font-size:.875rem;color:var(--muted)}\n"
	"</style>\n"
	"</head>\n"
	"<body>\n"
	"<a class=\"skip\" href=\"#benefits\">Skip to your benefits</a>\n"
	"<main>\n"
	"<header>\n"
	"<p class=\"org\">";

/* Lets forms post to an https action_url's origin besides the page's own. */
void
PortalFormActionOrigin(StringInfo buf, const char *action_url)
{
	size_t		origin_len = action_url ? UriOriginLength(action_url, "https") : 0;

	if (origin_len > 0)
	{
		appendStringInfoChar(buf, ' ');
		appendBinaryStringInfo(buf, action_url, origin_len);
	}
}

/*
 * The page of a portal document.  ACTION_URL is NULL or passed
 * PortalCheckActionUrl; LINK_URLS are the connect links (PortalLinkUrls).
 */
char *
PortalHtml(Jsonb *doc, const char *action_url, const PortalLinkUrl *link_urls, int nlink_urls)
{
	JsonbContainer *root = &doc->root;
	JsonbContainer *org = PageContainer(root, "organization");
	JsonbContainer *customer = PageContainer(root, "customer");
	JsonbContainer *subscriptions = PageContainer(root, "subscriptions");
	JsonbContainer *benefits = PageContainer(root, "benefits");
	char	   *name = PageText(customer, "name");
	char	   *email = PageText(customer, "email");
	StringInfoData buf;
	PortalPage	page = {&buf, 0, action_url, NULL, link_urls, nlink_urls};

	initStringInfo(&buf);
	appendStringInfoString(&buf, page_head);
	PortalFormActionOrigin(&buf, action_url);
	appendStringInfoString(&buf, page_title);
	PageEsc(&buf, PageText(org, "name"));
	appendStringInfoString(&buf, page_style);
	PageEsc(&buf, PageText(org, "name"));
	appendStringInfoString(&buf, "</p>\n<h1>Your purchases</h1>\n<p class=\"muted\">Signed in as ");
	PageEsc(&buf, name ? name : email ? email : PageText(customer, "external_id") ? PageText(customer, "external_id") : "customer");
	if (name && email)
	{
		appendStringInfoString(&buf, " (");
		PageEsc(&buf, email);
		appendStringInfoChar(&buf, ')');
	}
	appendStringInfoString(&buf, "</p>\n</header>\n<section aria-labelledby=\"subscriptions-heading\">\n"
						   "<h2 id=\"subscriptions-heading\">Subscriptions</h2>\n");

	if (PageArrayLength(subscriptions) == 0)
		appendStringInfoString(&buf, "<p class=\"muted\">You have no active subscriptions.</p>\n");
	else
	{
		appendStringInfoString(&buf, "<ul class=\"plain card\">\n");
		for (int s = 0; s < PageArrayLength(subscriptions); s++)
		{
			JsonbContainer *sub = PageElement(subscriptions, s);
			char	   *status = PageText(sub, "status");
			char	   *end = PageDate(PageText(sub, "current_period_end"));

			appendStringInfoString(&buf, "<li><strong>");
			PageEsc(&buf, PageText(PageContainer(sub, "product"), "name"));
			appendStringInfoString(&buf, "</strong> <span class=\"badge\">");
			if (status)
			{
				char	   *pretty = pstrdup(status);

				for (char *p = pretty; *p; p++)
					if (*p == '_')
						*p = ' ';
				PageEsc(&buf, pretty);
			}
			appendStringInfoString(&buf, "</span>");
			if (end)
			{
				appendStringInfoString(&buf, PageBool(sub, "cancel_at_period_end")
									   ? " <span class=\"muted\">Ends on " : " <span class=\"muted\">Renews on ");
				PageEsc(&buf, end);
				appendStringInfoString(&buf, "</span>");
			}
			appendStringInfoString(&buf, "</li>\n");
		}
		appendStringInfoString(&buf, "</ul>\n");
	}

	appendStringInfoString(&buf, "</section>\n<section id=\"benefits\" aria-labelledby=\"benefits-heading\">\n"
						   "<h2 id=\"benefits-heading\">Your benefits</h2>\n");
	if (PageArrayLength(benefits) == 0)
		appendStringInfoString(&buf, "<p class=\"muted\">Nothing has been granted to you yet.</p>\n");

	for (int i = 1; i <= PageArrayLength(benefits); i++)
	{
		JsonbContainer *b = PageElement(benefits, i - 1);
		char	   *type = PageText(b, "type");
		char	   *description = PageText(b, "description");
		const BenefitType *bt;
		const char *label;

		if (type == NULL)
			continue;
		bt = BenefitTypeFind(type);
		label = bt && bt->portal_label ? bt->portal_label : type;
		appendStringInfo(&buf, "<article class=\"card\" aria-labelledby=\"benefit-%d\">\n<h3 id=\"benefit-%d\">", i, i);
		PageEsc(&buf, description);
		appendStringInfoString(&buf, "</h3>\n");
		if (description == NULL || pg_strcasecmp(label, description) != 0)
		{
			appendStringInfoString(&buf, "<p class=\"kind\">");
			PageEsc(&buf, label);
			appendStringInfoString(&buf, "</p>\n");
		}

		if (bt && bt->portal_html)
		{
			page.index = i;
			bt->portal_html(&page, b);
		}
		appendStringInfoString(&buf, "</article>\n");
	}

	appendStringInfoString(&buf, "</section>\n<footer>\n<p>");
	if (page.link_expiry)
	{
		int			y,
					m,
					d,
					hh,
					mm;

		if (sscanf(page.link_expiry, "%d-%d-%dT%d:%d", &y, &m, &d, &hh, &mm) == 5 && m >= 1 && m <= 12)
			appendStringInfo(&buf, "Download links stay valid until %02d:%02d UTC %d %s %d; reload this page for fresh ones.",
							 hh, mm, d, PageMonthNames[m - 1], y);
	}
	else
		appendStringInfoString(&buf, "Reload this page to see changes.");
	appendStringInfoString(&buf, "</p>\n</footer>\n</main>\n</body>\n</html>\n");
	return buf.data;
}

/*
 * Why URL may not receive the page's forms, or NULL when it may: a browser
 * must not be able to read it as a URL of another host, or as plain http.
 */
static const char *
ActionUrlProblem(const char *url)
{
	if (strchr(url, '\\') != NULL)
		return "It contains a backslash, which browsers read as a slash.";
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			return "It contains a space or a control character.";
	if (url[0] == '/')
		return url[1] == '/' ? "It starts with \"//\", which names another host." : NULL;
	if (pg_strncasecmp(url, "https://", 8) != 0)
		return "It is neither a path starting with \"/\" nor an https:// URL.";
	if (UriOriginLength(url, "https") == 0)
		return "After https:// it has no plain host name, optional port and path.";
	return NULL;
}

/* Refuses an action URL that is neither a same-origin absolute path nor https. */
void
PortalCheckActionUrl(const char *url)
{
	const char *problem = url ? ActionUrlProblem(url) : NULL;

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action_url must be a same-origin path or an https URL"),
				 errdetail("%s", problem),
				 errhint("Give a path starting with a single \"/\" or an https://host[:port]/path URL, "
						 "without backslashes, spaces or control characters.")));
}

PG_FUNCTION_INFO_V1(portal_html);

/* portal_html(doc, action_url): the page of a portal document. */
Datum
portal_html(PG_FUNCTION_ARGS)
{
	char	   *action_url = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PortalCheckActionUrl(action_url);
	PG_RETURN_TEXT_P(cstring_to_text(PortalHtml(PG_GETARG_JSONB_P(0), action_url, NULL, 0)));
}

PG_FUNCTION_INFO_V1(customer_portal_html);

/*
 * customer_portal_html(token, action_url, link_redirect_uri): the session
 * customer's portal as a page an application can serve as it is.  (The
 * 0.1.0 declaration has no link_redirect_uri.)
 */
Datum
customer_portal_html(PG_FUNCTION_ARGS)
{
	char	   *action_url = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *redirect_uri = PG_NARGS() > 2 && !PG_ARGISNULL(2) ? text_to_cstring(PG_GETARG_TEXT_PP(2)) : NULL;
	Jsonb	   *doc;
	PortalLinkUrl *link_urls = NULL;
	int			nlink_urls = 0;
	char	   *html;
	text	   *result;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	PortalCheckActionUrl(action_url);
	BenefitsSpiConnect();
	doc = PortalDocumentForSession(PG_GETARG_TEXT_PP(0));
	if (redirect_uri != NULL)
		link_urls = PortalLinkUrls(PG_GETARG_TEXT_PP(0), doc, redirect_uri, &nlink_urls);
	html = PortalHtml(doc, action_url, link_urls, nlink_urls);
	result = SPI_palloc(VARHDRSZ + strlen(html));
	SET_VARSIZE(result, VARHDRSZ + strlen(html));
	memcpy(VARDATA(result), html, strlen(html));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
