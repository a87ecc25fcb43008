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
 * page has a language, a title, one h1, headings per section and benefit,
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
#include "portal.h"

static const char page_head[] =
	"<!DOCTYPE html>\n"
	"<html lang=\"en\">\n"
	"<head>\n"
	"<meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<meta name=\"referrer\" content=\"no-referrer\">\n"
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

/* Appends S with & < > " ' escaped. */
void
HtmlEscape(StringInfo buf, const char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				appendStringInfoString(buf, "&amp;");
				break;
			case '<':
				appendStringInfoString(buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(buf, "&gt;");
				break;
			case '"':
				appendStringInfoString(buf, "&quot;");
				break;
			case '\'':
				appendStringInfoString(buf, "&#39;");
				break;
			default:
				appendStringInfoChar(buf, *s);
		}
	}
}

/* The value of KEY in an object container, or NULL when absent or JSON null. */
static JsonbValue *
Get(JsonbContainer *obj, const char *key)
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
static char *
GetText(JsonbContainer *obj, const char *key)
{
	return BenefitsJsonbValueText(Get(obj, key));
}

static bool
GetBool(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = Get(obj, key);

	return v != NULL && v->type == jbvBool && v->val.boolean;
}

/* An object or array member, or NULL. */
static JsonbContainer *
GetContainer(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = Get(obj, key);

	return v != NULL && v->type == jbvBinary ? v->val.binary.data : NULL;
}

static int
ArrayLength(JsonbContainer *arr)
{
	return arr != NULL && JsonContainerIsArray(arr) ? JsonContainerSize(arr) : 0;
}

/* Element I of an array of objects, as a container (NULL if not an object). */
static JsonbContainer *
Element(JsonbContainer *arr, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	return v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data)
		? v->val.binary.data : NULL;
}

static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* "5 Mar 2031" from the document's "2031-03-05T...Z" (NULL: NULL). */
static char *
PageDate(const char *rfc3339)
{
	int			y,
				m,
				d;

	if (rfc3339 == NULL || sscanf(rfc3339, "%d-%d-%d", &y, &m, &d) != 3 || m < 1 || m > 12)
		return NULL;
	return psprintf("%d %s %d", d, month_names[m - 1], y);
}

static void
Esc(StringInfo buf, const char *s)
{
	HtmlEscape(buf, s);
}

static void
LicenseKeySection(StringInfo buf, JsonbContainer *lk, int i, const char *action_url)
{
	JsonbContainer *activations = GetContainer(lk, "activations");
	int			n = ArrayLength(activations);
	char	   *status = GetText(lk, "status");
	char	   *expires = PageDate(GetText(lk, "expires_at"));
	bool		forms = GetBool(lk, "customer_admin") && action_url != NULL;

	appendStringInfo(buf, "<p class=\"visually-hidden\" id=\"key-label-%d\">License key</p>\n"
					 "<code class=\"key\" aria-labelledby=\"key-label-%d\">", i, i);
	Esc(buf, GetText(lk, "key"));
	appendStringInfoString(buf, "</code>\n<dl class=\"facts\">\n<div><dt>Status</dt><dd>");
	if (status && strcmp(status, "granted") == 0)
		appendStringInfoString(buf, "Active");
	else if (status)
	{
		char	   *cap = pstrdup(status);

		cap[0] = pg_toupper((unsigned char) cap[0]);
		Esc(buf, cap);
	}
	appendStringInfoString(buf, "</dd></div>\n<div><dt>Expires</dt><dd>");
	if (expires)
		Esc(buf, expires);
	else
		appendStringInfoString(buf, "Never");
	appendStringInfoString(buf, "</dd></div>\n");
	if (GetText(lk, "limit_usage"))
	{
		appendStringInfoString(buf, "<div><dt>Usage</dt><dd>");
		Esc(buf, GetText(lk, "usage"));
		appendStringInfoString(buf, " of ");
		Esc(buf, GetText(lk, "limit_usage"));
		appendStringInfoString(buf, "</dd></div>\n");
	}
	if (GetText(lk, "limit_activations"))
	{
		appendStringInfo(buf, "<div><dt>Activations</dt><dd>%d of ", n);
		Esc(buf, GetText(lk, "limit_activations"));
		appendStringInfoString(buf, "</dd></div>\n");
	}
	appendStringInfoString(buf, "</dl>\n");
	if (n == 0)
		return;

	appendStringInfoString(buf, "<table>\n<caption>Activated devices</caption>\n"
						   "<thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Activated on</th>");
	if (forms)
		appendStringInfoString(buf, "<th scope=\"col\"><span class=\"visually-hidden\">Action</span></th>");
	appendStringInfoString(buf, "</tr></thead>\n<tbody>\n");
	for (int a = 0; a < n; a++)
	{
		JsonbContainer *x = Element(activations, a);

		appendStringInfoString(buf, "<tr><td>");
		Esc(buf, GetText(x, "label"));
		appendStringInfoString(buf, "</td><td>");
		Esc(buf, PageDate(GetText(x, "created_at")));
		appendStringInfoString(buf, "</td>");
		if (forms)
		{
			appendStringInfoString(buf, "<td><form method=\"post\" action=\"");
			Esc(buf, action_url);
			appendStringInfoString(buf, "\"><input type=\"hidden\" name=\"activation_id\" value=\"");
			Esc(buf, GetText(x, "id"));
			appendStringInfoString(buf, "\"><button type=\"submit\">Deactivate<span class=\"visually-hidden\"> ");
			Esc(buf, GetText(x, "label"));
			appendStringInfoString(buf, "</span></button></form></td>");
		}
		appendStringInfoString(buf, "</tr>\n");
	}
	appendStringInfoString(buf, "</tbody>\n</table>\n");
}

/* Files with their download links; remembers when the links expire. */
static void
FilesSection(StringInfo buf, JsonbContainer *files, char **link_expiry)
{
	int			n = ArrayLength(files);

	if (n == 0)
	{
		appendStringInfoString(buf, "<p class=\"muted\">No files are available right now.</p>\n");
		return;
	}
	appendStringInfoString(buf, "<ul class=\"plain\">\n");
	for (int f = 0; f < n; f++)
	{
		JsonbContainer *x = Element(files, f);
		char	   *size = GetText(x, "size");
		char	   *checksum = GetText(x, "checksum_sha256");

		char	   *url = GetText(x, "download_url");

		if (url != NULL)
		{
			*link_expiry = GetText(x, "download_expires_at");
			appendStringInfoString(buf, "<li><a href=\"");
			Esc(buf, url);
			appendStringInfoString(buf, "\" download=\"");
			Esc(buf, GetText(x, "name"));
			appendStringInfoString(buf, "\">");
			Esc(buf, GetText(x, "name"));
			appendStringInfoString(buf, "</a> <span class=\"muted\">");
		}
		else
		{
			appendStringInfoString(buf, "<li>");
			Esc(buf, GetText(x, "name"));
			appendStringInfoString(buf, " <span class=\"muted\">(cannot be downloaded right now) ");
		}
		if (size)
			Esc(buf, text_to_cstring(DatumGetTextPP(DirectFunctionCall1(pg_size_pretty,
																		  Int64GetDatum(strtoll(size, NULL, 10))))));
		appendStringInfoString(buf, "</span>");
		if (checksum)
		{
			appendStringInfoString(buf, "<br><small class=\"muted\">SHA-256 <code>");
			Esc(buf, checksum);
			appendStringInfoString(buf, "</code></small>");
		}
		appendStringInfoString(buf, "</li>\n");
	}
	appendStringInfoString(buf, "</ul>\n");
}

/* GitHub repositories or a Discord server, and where delivery stands. */
static void
AccessSection(StringInfo buf, JsonbContainer *x, bool github)
{
	char	   *delivery = GetText(x, "delivery");
	JsonbContainer *account = GetContainer(x, "account");
	char	   *who = account ? GetText(account, "username") : NULL;
	char	   *message = GetText(x, "message");

	if (who == NULL && account)
		who = GetText(account, "account_id");

	if (github)
	{
		JsonbContainer *repos = GetContainer(x, "repositories");

		appendStringInfoString(buf, "<ul class=\"plain\">\n");
		for (int r = 0; r < ArrayLength(repos); r++)
		{
			JsonbContainer *repo = Element(repos, r);
			char	   *permission = GetText(repo, "permission");

			appendStringInfoString(buf, "<li><code>");
			Esc(buf, GetText(repo, "owner"));
			appendStringInfoChar(buf, '/');
			Esc(buf, GetText(repo, "name"));
			appendStringInfoString(buf, "</code> <span class=\"muted\">");
			Esc(buf, permission ? permission : "");
			appendStringInfoString(buf, "</span></li>\n");
		}
		appendStringInfoString(buf, "</ul>\n");
	}
	else
	{
		JsonbContainer *roles = GetContainer(x, "roles");
		int			n = ArrayLength(roles);

		appendStringInfoString(buf, "<p>Server <code>");
		Esc(buf, GetText(x, "guild_id"));
		appendStringInfoString(buf, "</code>");
		for (int r = 0; r < n; r++)
		{
			JsonbContainer *role = Element(roles, r);
			char	   *name = GetText(role, "name");

			appendStringInfoString(buf, r == 0 ? " — roles: " : ", ");
			Esc(buf, name ? name : GetText(role, "role_id"));
		}
		appendStringInfoString(buf, "</p>\n");
	}

	if (delivery && strcmp(delivery, "granted") == 0)
	{
		appendStringInfoString(buf, "<p class=\"status ok\" role=\"status\">Access granted");
		if (who)
		{
			appendStringInfoString(buf, " to ");
			Esc(buf, who);
		}
		appendStringInfoString(buf, ".</p>\n");
	}
	else if (delivery && strcmp(delivery, "action_required") == 0)
	{
		appendStringInfoString(buf, "<p class=\"status warn\" role=\"status\">Action needed: ");
		Esc(buf, message ? message : "link your account to receive access.");
		appendStringInfoString(buf, "</p>\n");
	}
	else if (delivery && strcmp(delivery, "failed") == 0)
	{
		appendStringInfoString(buf, "<p class=\"status bad\" role=\"status\">Access could not be delivered yet");
		if (message)
		{
			appendStringInfoString(buf, ": ");
			Esc(buf, message);
		}
		appendStringInfoString(buf, ". The seller has been notified.</p>\n");
	}
	else
	{
		appendStringInfoString(buf, "<p class=\"status\" role=\"status\">Access is being set up");
		if (who)
		{
			appendStringInfoString(buf, " for ");
			Esc(buf, who);
		}
		appendStringInfoString(buf, ".</p>\n");
	}
}

static const char *
TypeLabel(const char *type)
{
	if (strcmp(type, "license_keys") == 0)
		return "License key";
	if (strcmp(type, "downloadable") == 0)
		return "Downloads";
	if (strcmp(type, "custom") == 0)
		return "Note from the seller";
	if (strcmp(type, "meter_credits") == 0)
		return "Credits";
	if (strcmp(type, "github_repository") == 0)
		return "GitHub repository access";
	if (strcmp(type, "discord") == 0)
		return "Discord server access";
	return type;
}

/* Letters, digits and hyphens: what a Content-Security-Policy host may hold. */
static bool
IsHostChar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* The end of the dotted host name at P, so a CSP source can name it; or NULL. */
static const char *
HostNameEnd(const char *p)
{
	for (;;)
	{
		const char *label = p;

		while (IsHostChar(*p))
			p++;
		if (p == label)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

/* The end of the optional ":port" (1 to 65535) at P, or NULL when malformed. */
static const char *
PortEnd(const char *p)
{
	const char *digits;
	int			port;

	if (*p != ':')
		return p;
	digits = ++p;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == digits || p - digits > 5)
		return NULL;
	port = atoi(digits);
	return port >= 1 && port <= 65535 ? p : NULL;
}

/*
 * The length of the "https://host[:port]" origin URL starts with, when only
 * a path (or nothing) follows it; 0 otherwise.  The form-action source.
 */
static size_t
HttpsOriginLength(const char *url)
{
	const char *p;

	if (pg_strncasecmp(url, "https://", 8) != 0)
		return 0;
	p = HostNameEnd(url + 8);
	if (p != NULL)
		p = PortEnd(p);
	return p != NULL && (*p == '\0' || *p == '/') ? p - url : 0;
}

/* Lets forms post to an https action_url's origin besides the page's own. */
static void
AppendFormActionOrigin(StringInfo buf, const char *action_url)
{
	size_t		origin_len = action_url ? HttpsOriginLength(action_url) : 0;

	if (origin_len > 0)
	{
		appendStringInfoChar(buf, ' ');
		appendBinaryStringInfo(buf, action_url, origin_len);
	}
}

/* The page of a portal document.  ACTION_URL is NULL or passed CheckActionUrl. */
char *
PortalHtml(Jsonb *doc, const char *action_url)
{
	JsonbContainer *root = &doc->root;
	JsonbContainer *org = GetContainer(root, "organization");
	JsonbContainer *customer = GetContainer(root, "customer");
	JsonbContainer *subscriptions = GetContainer(root, "subscriptions");
	JsonbContainer *benefits = GetContainer(root, "benefits");
	char	   *name = GetText(customer, "name");
	char	   *email = GetText(customer, "email");
	char	   *link_expiry = NULL;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, page_head);
	AppendFormActionOrigin(&buf, action_url);
	appendStringInfoString(&buf, page_title);
	Esc(&buf, GetText(org, "name"));
	appendStringInfoString(&buf, page_style);
	Esc(&buf, GetText(org, "name"));
	appendStringInfoString(&buf, "</p>\n<h1>Your purchases</h1>\n<p class=\"muted\">Signed in as ");
	Esc(&buf, name ? name : email ? email : GetText(customer, "external_id") ? GetText(customer, "external_id") : "customer");
	if (name && email)
	{
		appendStringInfoString(&buf, " (");
		Esc(&buf, email);
		appendStringInfoChar(&buf, ')');
	}
	appendStringInfoString(&buf, "</p>\n</header>\n<section aria-labelledby=\"subscriptions-heading\">\n"
						   "<h2 id=\"subscriptions-heading\">Subscriptions</h2>\n");

	if (ArrayLength(subscriptions) == 0)
		appendStringInfoString(&buf, "<p class=\"muted\">You have no active subscriptions.</p>\n");
	else
	{
		appendStringInfoString(&buf, "<ul class=\"plain card\">\n");
		for (int s = 0; s < ArrayLength(subscriptions); s++)
		{
			JsonbContainer *sub = Element(subscriptions, s);
			char	   *status = GetText(sub, "status");
			char	   *end = PageDate(GetText(sub, "current_period_end"));

			appendStringInfoString(&buf, "<li><strong>");
			Esc(&buf, GetText(GetContainer(sub, "product"), "name"));
			appendStringInfoString(&buf, "</strong> <span class=\"badge\">");
			if (status)
			{
				char	   *pretty = pstrdup(status);

				for (char *p = pretty; *p; p++)
					if (*p == '_')
						*p = ' ';
				Esc(&buf, pretty);
			}
			appendStringInfoString(&buf, "</span>");
			if (end)
			{
				appendStringInfoString(&buf, GetBool(sub, "cancel_at_period_end")
									   ? " <span class=\"muted\">Ends on " : " <span class=\"muted\">Renews on ");
				Esc(&buf, end);
				appendStringInfoString(&buf, "</span>");
			}
			appendStringInfoString(&buf, "</li>\n");
		}
		appendStringInfoString(&buf, "</ul>\n");
	}

	appendStringInfoString(&buf, "</section>\n<section id=\"benefits\" aria-labelledby=\"benefits-heading\">\n"
						   "<h2 id=\"benefits-heading\">Your benefits</h2>\n");
	if (ArrayLength(benefits) == 0)
		appendStringInfoString(&buf, "<p class=\"muted\">Nothing has been granted to you yet.</p>\n");

	for (int i = 1; i <= ArrayLength(benefits); i++)
	{
		JsonbContainer *b = Element(benefits, i - 1);
		char	   *type = GetText(b, "type");
		char	   *description = GetText(b, "description");
		const char *label;

		if (type == NULL)
			continue;
		label = TypeLabel(type);
		appendStringInfo(&buf, "<article class=\"card\" aria-labelledby=\"benefit-%d\">\n<h3 id=\"benefit-%d\">", i, i);
		Esc(&buf, description);
		appendStringInfoString(&buf, "</h3>\n");
		if (description == NULL || pg_strcasecmp(label, description) != 0)
		{
			appendStringInfoString(&buf, "<p class=\"kind\">");
			Esc(&buf, label);
			appendStringInfoString(&buf, "</p>\n");
		}

		if (strcmp(type, "license_keys") == 0)
		{
			JsonbContainer *lk = GetContainer(b, "license_key");

			if (lk == NULL || !JsonContainerIsObject(lk))
				appendStringInfoString(&buf, "<p class=\"status warn\">Your license key is being prepared.</p>\n");
			else
				LicenseKeySection(&buf, lk, i, action_url);
		}
		else if (strcmp(type, "downloadable") == 0)
			FilesSection(&buf, GetContainer(b, "files"), &link_expiry);
		else if (strcmp(type, "custom") == 0)
		{
			char	   *note = GetText(b, "note");

			if (note && note[0] != '\0')
			{
				appendStringInfoString(&buf, "<p class=\"note\">");
				Esc(&buf, note);
				appendStringInfoString(&buf, "</p>\n");
			}
		}
		else if (strcmp(type, "meter_credits") == 0)
		{
			JsonbContainer *meter = GetContainer(b, "meter");

			if (meter && JsonContainerIsObject(meter))
			{
				char	   *balance = GetText(meter, "balance");

				appendStringInfoString(&buf, "<p>");
				Esc(&buf, GetText(meter, "name"));
				appendStringInfoString(&buf, " balance: <strong>");
				Esc(&buf, balance ? balance : "0");
				appendStringInfoString(&buf, "</strong></p>\n");
			}
		}
		else if (strcmp(type, "github_repository") == 0 || strcmp(type, "discord") == 0)
		{
			bool		github = type[0] == 'g';
			JsonbContainer *x = GetContainer(b, github ? "github" : "discord");

			if (x)
				AccessSection(&buf, x, github);
		}
		appendStringInfoString(&buf, "</article>\n");
	}

	appendStringInfoString(&buf, "</section>\n<footer>\n<p>");
	if (link_expiry)
	{
		int			y,
					m,
					d,
					hh,
					mm;

		if (sscanf(link_expiry, "%d-%d-%dT%d:%d", &y, &m, &d, &hh, &mm) == 5 && m >= 1 && m <= 12)
			appendStringInfo(&buf, "Download links stay valid until %02d:%02d UTC %d %s %d; reload this page for fresh ones.",
							 hh, mm, d, month_names[m - 1], y);
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
	if (HttpsOriginLength(url) == 0)
		return "After https:// it has no plain host name, optional port and path.";
	return NULL;
}

/* Refuses an action URL that is neither a same-origin absolute path nor https. */
static void
CheckActionUrl(const char *url)
{
	const char *problem = url ? ActionUrlProblem(url) : NULL;

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action_url must be an absolute path or an http(s) URL"),
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
	CheckActionUrl(action_url);
	PG_RETURN_TEXT_P(cstring_to_text(PortalHtml(PG_GETARG_JSONB_P(0), action_url)));
}

PG_FUNCTION_INFO_V1(customer_portal_html);

/*
 * customer_portal_html(token, action_url): the session customer's portal as
 * a page an application can serve as it is.
 */
Datum
customer_portal_html(PG_FUNCTION_ARGS)
{
	char	   *action_url = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *doc;
	char	   *html;
	text	   *result;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	CheckActionUrl(action_url);
	SPI_connect();
	doc = PortalDocumentForSession(PG_GETARG_TEXT_PP(0));
	html = PortalHtml(doc, action_url);
	result = SPI_palloc(VARHDRSZ + strlen(html));
	SET_VARSIZE(result, VARHDRSZ + strlen(html));
	memcpy(VARDATA(result), html, strlen(html));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
