/*
 * admin_page.c — the merchant's dashboard as a complete, self-contained HTML
 * page (admin_page_html), rendered from the organization's admin_overview
 * document, one section at a time.
 *
 * Built like the customer portal page: no external assets and no script; a
 * Content-Security-Policy meta tag allows inline style only, and forms may
 * post to the page's origin, to the origin of an https action_url and to the
 * storage endpoint that takes browser uploads.  Every value is HTML-escaped
 * (HtmlEscape through PageEsc), in element content and in attributes.  Every
 * form posts to action_url with a hidden "action" naming the SQL function it
 * stands for and a hidden "csrf_token" carrying what the application passed;
 * without action_url the page is read-only.  Upload forms post to storage
 * instead, with the fields of file_upload_form (a POST policy admits no
 * other field), and storage sends the browser back to the application.  The
 * referrer policy is same-origin: the application's own posts carry an
 * Origin it can check, storage gets no Referer.
 *
 * Concurrency: a read-only function of the caller's snapshot; it writes
 * nothing and takes no lock beyond the reads of admin_overview.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "html.h"
#include "portal.h"
#include "portal_page.h"
#include "properties.h"
#include "s3.h"
#include "uri.h"

static const char *const admin_sections[] = {
	"overview", "products", "benefits", "files", "delivery", "usage", NULL
};

static const char *const admin_section_titles[] = {
	"Overview", "Products", "Benefits", "Files", "Delivery", "Usage"
};

/* The page being rendered. */
typedef struct AdminPage
{
	StringInfo	body;
	StringInfo	form_sources;	/* extra CSP form-action sources (" origin"...) */
	const char *action_url;		/* where forms post, or NULL: read-only */
	const char *csrf_token;
	const char *upload_redirect_url;	/* params.upload_redirect_url, or NULL */
	JsonbContainer *doc;		/* the admin_overview document */
} AdminPage;

static const char page_style[] =
	"<style>\n"
	":root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#f6f8fa;--card:#fff;--line:#d1d9e0;--accent:#0550ae;--ok:#116329;--warn:#7d4e00;--bad:#a40e26}\n"
	"@media (prefers-color-scheme:dark){:root{--fg:#f0f6fc;--muted:#9198a1;--bg:#0d1117;--card:#151b23;--line:#3d444d;--accent:#74b9ff;--ok:#56d364;--warn:#e3b341;--bad:#ff7b72}}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;color:var(--fg);background:var(--bg)}\n"
	"main{max-width:64rem;margin:0 auto;padding:1.5rem 1rem 3rem}\n"
	"h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}h3{font-size:1.05rem;margin:0 0 .5rem}\n"
	"a{color:var(--accent)}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\n"
	"nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem;padding:0;margin:0 0 1rem}\n"
	"nav a{display:block;padding:.3rem .75rem;border:1px solid var(--line);border-radius:1rem;text-decoration:none;background:var(--card)}\n"
	"nav a[aria-current]{background:var(--accent);color:var(--card);border-color:var(--accent)}\n"
	".org{font-weight:600;color:var(--muted);margin:0}.muted{color:var(--muted)}\n"
	".card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin:0 0 1rem;overflow-x:auto}\n"
	".figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.75rem;padding:0;margin:0;list-style:none}\n"
	".figures li{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem}\n"
	".figures strong{display:block;font-size:1.5rem}\n"
	"table{border-collapse:collapse;width:100%}caption{text-align:left;font-weight:600;padding:.25rem 0}\n"
	"th,td{text-align:left;padding:.35rem .5rem .35rem 0;border-top:1px solid var(--line);vertical-align:top}\n"
	"ol.attached{padding-left:1.5rem;margin:0 0 .75rem}ol.attached li{padding:.3rem 0;border-top:1px solid var(--line)}\n"
	"form{display:inline}form.block{display:block;margin:.5rem 0 0}\n"
	"label{display:block;font-size:.875rem;color:var(--muted);margin:.4rem 0 .1rem}\n"
	"input[type=text],input[type=number],textarea,select{font:inherit;width:100%;max-width:32rem;padding:.3rem;border:1px solid var(--line);border-radius:.375rem;background:var(--bg);color:var(--fg)}\n"
	"button{font:inherit;font-size:.875rem;padding:.25rem .6rem;margin:.15rem .15rem 0 0;border:1px solid var(--line);border-radius:.375rem;background:var(--bg);color:var(--fg);cursor:pointer}\n"
	".notice{border-left:4px solid var(--accent);padding:.5rem .75rem;background:var(--card)}\n"
	".ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}\n"
	".error{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}\n"
	"svg{display:block;max-width:100%;height:auto}svg text{font-size:11px;fill:var(--muted)}svg .bar{fill:var(--accent)}svg .low{fill:var(--bad)}\n"
	".visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\n"
	".skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--card);padding:.5rem}\n"
	"@media (max-width:40rem){th,td{display:block;border-top:0;padding:.1rem 0}tr{display:block;border-top:1px solid var(--line);padding:.4rem 0}thead{display:none}td[data-label]::before{content:attr(data-label) \": \";color:var(--muted)}}\n"
	"</style>\n";

/* The number of the section named NAME, or an error listing the sections. */
static int
RequireSection(const char *name)
{
	for (int i = 0; admin_sections[i]; i++)
		if (strcmp(admin_sections[i], name) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("section must be one of %s", PropJoinList(admin_sections)),
			 errdetail("section is \"%s\".", name)));
	pg_unreachable();
}

/*
 * Reads the page's params object: upload_redirect_url and notice, both
 * strings (the redirect URL checked as storage will use it); anything else
 * is refused, naming it.
 */
static void
ReadParams(Jsonb *params, AdminPage *page, char **notice)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (params == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object")));
	it = JsonbIteratorInit(&params->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			if (strcmp(key, "upload_redirect_url") != 0 && strcmp(key, "notice") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("params.%s is not a parameter of the admin page", key),
						 errhint("The admin page takes params.upload_redirect_url and params.notice.")));
		}
		else if (tok == WJB_VALUE)
		{
			char	   *value;
			const char *problem;

			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("params.%s must be a string", key)));
			value = pnstrdup(v.val.string.val, v.val.string.len);
			if (strcmp(key, "notice") == 0)
			{
				*notice = value;
				continue;
			}
			/* room for "&file_id=<uuid>&csrf_token=..." within storage's limit */
			problem = UriRedirectProblem(value, 1024);
			if (problem != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("params.upload_redirect_url must be an https URL of the application"),
						 errdetail("%s", problem)));
			page->upload_redirect_url = value;
		}
	}
}

/* Appends an escaped text (html.c), NULL as an em dash. */
static void
Esc(AdminPage *page, const char *s)
{
	PageEsc(page->body, s ? s : "\xe2\x80\x94");
}

/* Opens a form posting ACTION to action_url, with its hidden fields. */
static void
FormOpen(AdminPage *page, const char *action, bool block)
{
	appendStringInfoString(page->body, block ? "<form class=\"block\" method=\"post\" action=\"" : "<form method=\"post\" action=\"");
	Esc(page, page->action_url);
	appendStringInfoString(page->body, "\"><input type=\"hidden\" name=\"action\" value=\"");
	Esc(page, action);
	appendStringInfoString(page->body, "\"><input type=\"hidden\" name=\"csrf_token\" value=\"");
	PageEsc(page->body, page->csrf_token ? page->csrf_token : "");
	appendStringInfoString(page->body, "\">");
}

/* A hidden field of the open form. */
static void
Hidden(AdminPage *page, const char *name, const char *value)
{
	appendStringInfoString(page->body, "<input type=\"hidden\" name=\"");
	Esc(page, name);
	appendStringInfoString(page->body, "\" value=\"");
	PageEsc(page->body, value);
	appendStringInfoString(page->body, "\">");
}

/* Closes a form with its button; LABEL_FOR names what it acts on, for screen readers. */
static void
FormClose(AdminPage *page, const char *button, const char *label_for)
{
	appendStringInfoString(page->body, "<button type=\"submit\"");
	if (label_for)
	{
		appendStringInfoString(page->body, " aria-label=\"");
		Esc(page, button);
		appendStringInfoChar(page->body, ' ');
		Esc(page, label_for);
		appendStringInfoChar(page->body, '"');
	}
	appendStringInfoChar(page->body, '>');
	Esc(page, button);
	appendStringInfoString(page->body, "</button></form>\n");
}

/* A section's list of the document (delivery.dead_jobs: PARENT "delivery"). */
static JsonbContainer *
DocList(AdminPage *page, const char *parent, const char *key)
{
	JsonbContainer *c = parent ? PageContainer(page->doc, parent) : page->doc;

	return PageContainer(c, key);
}

/* A byte count for people: 1.5 MB. */
static char *
HumanSize(const char *bytes)
{
	static const char *const units[] = {"bytes", "KB", "MB", "GB", "TB"};
	double		n = bytes ? strtod(bytes, NULL) : 0;
	int			u = 0;

	while (n >= 1000 && u < 4)
	{
		n /= 1000;
		u++;
	}
	return u == 0 ? psprintf("%.0f bytes", n) : psprintf("%.1f %s", n, units[u]);
}

/* The label of a stored benefit type (its portal label), or the name. */
static const char *
TypeLabel(const char *type)
{
	const BenefitType *bt = type ? BenefitTypeFind(type) : NULL;

	return bt && bt->portal_label ? bt->portal_label : type;
}

/* A property name in words: "limit_usage" -> "Limit usage". */
static void
KeyWords(AdminPage *page, const char *key, int len)
{
	char	   *words = pnstrdup(key, len);

	for (char *p = words; *p; p++)
		if (*p == '_')
			*p = ' ';
	if (words[0] >= 'a' && words[0] <= 'z')
		words[0] += 'A' - 'a';
	Esc(page, words);
}

static void ContainerWords(AdminPage *page, JsonbContainer *c);

/* One property value in words: yes/no, none (null or empty), numbers and text as they are, objects in parentheses. */
static void
ValueWords(AdminPage *page, JsonbValue *v)
{
	if (v->type == jbvBinary && JsonContainerSize(v->val.binary.data) == 0)
		appendStringInfoString(page->body, "none");
	else if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
		ContainerWords(page, v->val.binary.data);
	else if (v->type == jbvBinary)
	{
		appendStringInfoChar(page->body, '(');
		ContainerWords(page, v->val.binary.data);
		appendStringInfoChar(page->body, ')');
	}
	else if (v->type == jbvBool)
		appendStringInfoString(page->body, v->val.boolean ? "yes" : "no");
	else if (v->type == jbvNull)
		appendStringInfoString(page->body, "none");
	else
		Esc(page, BenefitsJsonbValueText(v));
}

/* An object's members ("Key: value, ...") or an array's elements ("a; b"), in words. */
static void
ContainerWords(AdminPage *page, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			appendStringInfoString(page->body, first ? "" : ", ");
			KeyWords(page, v.val.string.val, v.val.string.len);
			appendStringInfoString(page->body, ": ");
			first = false;
		}
		else if (tok == WJB_VALUE)
			ValueWords(page, &v);
		else if (tok == WJB_ELEM)
		{
			appendStringInfoString(page->body, first ? "" : "; ");
			ValueWords(page, &v);
			first = false;
		}
	}
}

/*
 * A benefit's properties in words, one line per top-level property; every
 * type's properties are read the same way, so a new type needs nothing here.
 */
static void
PropertiesWords(AdminPage *page, JsonbContainer *props)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (props == NULL || !JsonContainerIsObject(props) || JsonContainerSize(props) == 0)
	{
		appendStringInfoString(page->body, "<p class=\"muted\">No properties.</p>\n");
		return;
	}
	appendStringInfoString(page->body, "<ul>\n");
	it = JsonbIteratorInit(props);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			appendStringInfoString(page->body, "<li>");
			KeyWords(page, v.val.string.val, v.val.string.len);
			appendStringInfoString(page->body, ": ");
		}
		else if (tok == WJB_VALUE)
		{
			ValueWords(page, &v);
			appendStringInfoString(page->body, "</li>\n");
		}
	}
	appendStringInfoString(page->body, "</ul>\n");
}

/* A line saying a list is empty. */
static void
Empty(AdminPage *page, const char *what)
{
	appendStringInfoString(page->body, "<p class=\"muted\">");
	Esc(page, what);
	appendStringInfoString(page->body, "</p>\n");
}

/* A product's benefit ids as hidden benefit_ids fields in order, with SWAP_I and SWAP_J swapped or SKIP left out. */
static void
BenefitIdFields(AdminPage *page, JsonbContainer *attached, int swap_i, int swap_j, int skip)
{
	int			n = PageArrayLength(attached);

	for (int k = 0; k < n; k++)
	{
		int			from = k == swap_i ? swap_j : k == swap_j ? swap_i : k;

		if (k == skip)
			continue;
		Hidden(page, "benefit_ids", PageText(PageElement(attached, from), "id"));
	}
}

/*
 * Products: each product's benefits in order, with forms to move one up or
 * down, detach it, or attach another.  Every form carries the product's
 * whole new list as benefit_ids fields in order (an attach form's select is
 * the last of them), so the application passes them to
 * update_product_benefits as they come.
 */
static void
ProductsSection(AdminPage *page)
{
	JsonbContainer *products = DocList(page, NULL, "products");
	JsonbContainer *all = DocList(page, NULL, "benefits");

	if (PageArrayLength(products) == 0)
		Empty(page, "No products yet.");
	for (int p = 0; p < PageArrayLength(products); p++)
	{
		JsonbContainer *product = PageElement(products, p);
		JsonbContainer *attached = PageContainer(product, "benefits");
		char	   *product_id = PageText(product, "id");
		int			n = PageArrayLength(attached);
		int			candidates = 0;

		appendStringInfo(page->body, "<section class=\"card\" aria-labelledby=\"product-%d\"><h3 id=\"product-%d\">", p, p);
		Esc(page, PageText(product, "name"));
		appendStringInfoString(page->body, "</h3>\n");
		if (n == 0)
			Empty(page, "No benefits attached.");
		else
			appendStringInfoString(page->body, "<ol class=\"attached\">\n");
		for (int i = 0; i < n; i++)
		{
			JsonbContainer *b = PageElement(attached, i);
			char	   *description = PageText(b, "description");

			appendStringInfoString(page->body, "<li><strong>");
			Esc(page, description);
			appendStringInfoString(page->body, "</strong> <span class=\"muted\">");
			Esc(page, TypeLabel(PageText(b, "type")));
			appendStringInfoString(page->body, "</span><br>\n");
			if (page->action_url)
			{
				if (i > 0)
				{
					FormOpen(page, "update_product_benefits", false);
					Hidden(page, "product_id", product_id);
					BenefitIdFields(page, attached, i - 1, i, -1);
					FormClose(page, "Move up", description);
				}
				if (i < n - 1)
				{
					FormOpen(page, "update_product_benefits", false);
					Hidden(page, "product_id", product_id);
					BenefitIdFields(page, attached, i, i + 1, -1);
					FormClose(page, "Move down", description);
				}
				FormOpen(page, "update_product_benefits", false);
				Hidden(page, "product_id", product_id);
				BenefitIdFields(page, attached, -1, -1, i);
				FormClose(page, "Detach", description);
			}
			appendStringInfoString(page->body, "</li>\n");
		}
		if (n > 0)
			appendStringInfoString(page->body, "</ol>\n");

		if (page->action_url == NULL)
		{
			appendStringInfoString(page->body, "</section>\n");
			continue;
		}
		for (int a = 0; a < PageArrayLength(all); a++)
		{
			char	   *id = PageText(PageElement(all, a), "id");
			bool		is_attached = false;

			for (int i = 0; i < n; i++)
				is_attached |= strcmp(id, PageText(PageElement(attached, i), "id")) == 0;
			if (is_attached)
				continue;
			if (candidates++ == 0)
			{
				FormOpen(page, "update_product_benefits", true);
				Hidden(page, "product_id", product_id);
				BenefitIdFields(page, attached, -1, -1, -1);
				appendStringInfo(page->body, "<label for=\"attach-%d\">Attach a benefit</label><select id=\"attach-%d\" name=\"benefit_ids\">", p, p);
			}
			appendStringInfoString(page->body, "<option value=\"");
			Esc(page, id);
			appendStringInfoString(page->body, "\">");
			Esc(page, PageText(PageElement(all, a), "description"));
			appendStringInfoString(page->body, " (");
			Esc(page, TypeLabel(PageText(PageElement(all, a), "type")));
			appendStringInfoString(page->body, ")</option>");
		}
		if (candidates > 0)
		{
			appendStringInfoString(page->body, "</select> ");
			FormClose(page, "Attach", PageText(product, "name"));
		}
		appendStringInfoString(page->body, "</section>\n");
	}
}

/*
 * The edit form of a benefit: its description and the properties its type
 * lets the dashboard edit (fields "property.KEY", or "property_integer.KEY"
 * for integers), for the application's update_benefit call.
 */
static void
BenefitEditForm(AdminPage *page, JsonbContainer *b, int index)
{
	const BenefitType *bt = BenefitTypeFind(PageText(b, "type"));
	JsonbContainer *props = PageContainer(b, "properties");

	FormOpen(page, "update_benefit", true);
	Hidden(page, "benefit_id", PageText(b, "id"));
	appendStringInfo(page->body, "<label for=\"description-%d\">Description</label>"
					 "<input type=\"text\" id=\"description-%d\" name=\"description\" required maxlength=\"300\" value=\"", index, index);
	Esc(page, PageText(b, "description"));
	appendStringInfoString(page->body, "\">\n");
	for (const BenefitEditableProperty *e = bt ? bt->admin_editable : NULL; e && e->key; e++)
	{
		appendStringInfo(page->body, "<label for=\"property-%d-%s\">", index, e->key);
		Esc(page, e->label);
		appendStringInfo(page->body, "</label>");
		if (e->integer)
			appendStringInfo(page->body, "<input type=\"number\" min=\"1\" id=\"property-%d-%s\" name=\"property_integer.%s\" value=\"",
							 index, e->key, e->key);
		else
			appendStringInfo(page->body, "<input type=\"text\" id=\"property-%d-%s\" name=\"property.%s\" value=\"",
							 index, e->key, e->key);
		PageEsc(page->body, PageText(props, e->key));
		appendStringInfoString(page->body, "\">\n");
	}
	FormClose(page, "Save", PageText(b, "description"));
}

/* Benefits: type, properties in words, live and waiting grants, and the edit form. */
static void
BenefitsSection(AdminPage *page)
{
	JsonbContainer *benefits = DocList(page, NULL, "benefits");

	if (PageArrayLength(benefits) == 0)
		Empty(page, "No benefits yet.");
	for (int i = 0; i < PageArrayLength(benefits); i++)
	{
		JsonbContainer *b = PageElement(benefits, i);

		appendStringInfo(page->body, "<section class=\"card\" aria-labelledby=\"benefit-%d\"><h3 id=\"benefit-%d\">", i, i);
		Esc(page, PageText(b, "description"));
		appendStringInfoString(page->body, "</h3>\n<p><span class=\"muted\">");
		Esc(page, TypeLabel(PageText(b, "type")));
		appendStringInfoString(page->body, "</span> · live grants: <strong>");
		Esc(page, PageText(b, "live_grants"));
		appendStringInfoString(page->body, "</strong> · waiting: ");
		Esc(page, PageText(b, "waiting_grants"));
		appendStringInfoString(page->body, "</p>\n");
		PropertiesWords(page, PageContainer(b, "properties"));
		if (page->action_url)
			BenefitEditForm(page, b, i);
		appendStringInfoString(page->body, "</section>\n");
	}
}

/* How a column of a list table shows its member. */
typedef enum ColumnKind
{
	COLUMN_TEXT,				/* as it is */
	COLUMN_DATE,				/* an RFC 3339 time, as its date */
	COLUMN_ERROR,				/* an error: an object's message (or the text), preformatted */
	COLUMN_SIZE,				/* a byte count, for people */
	COLUMN_WORDS				/* a state name, underscores as spaces */
} ColumnKind;

/* A column of a list table: its header and the member of each row it shows. */
typedef struct Column
{
	const char *header;
	const char *key;
	ColumnKind	kind;
} Column;

/* The form of a row of a list table (posting what the row stands for). */
typedef void (*RowForm) (AdminPage *page, JsonbContainer *row);

/* One cell of a list table. */
static void
ColumnCell(AdminPage *page, JsonbContainer *row, const Column *col)
{
	JsonbContainer *obj = col->kind == COLUMN_ERROR ? PageContainer(row, col->key) : NULL;
	char	   *text = obj ? PageText(obj, "message") : NULL;

	if (text == NULL)
		text = PageText(row, col->key);
	if (col->kind == COLUMN_DATE)
		text = PageDate(text);
	else if (col->kind == COLUMN_SIZE)
		text = HumanSize(text);
	else if (col->kind == COLUMN_WORDS && text != NULL)
	{
		text = pstrdup(text);
		for (char *p = text; *p; p++)
			if (*p == '_')
				*p = ' ';
	}
	appendStringInfoString(page->body, col->kind == COLUMN_ERROR ? "<td class=\"error\" data-label=\"" : "<td data-label=\"");
	Esc(page, col->header);
	appendStringInfoString(page->body, "\">");
	Esc(page, text);
	appendStringInfoString(page->body, "</td>");
}

/*
 * A list of the document under a heading: a table with a caption, a column
 * per member (each cell naming its column, shown on narrow screens where the
 * rows become blocks), and (with FORM) a last cell with the row's form; EMPTY says so
 * when there are no rows.
 */
static void
ListTable(AdminPage *page, const char *heading, const char *empty, const char *caption,
		  JsonbContainer *list, const Column *cols, int ncols, RowForm form)
{
	bool		forms = form != NULL;

	appendStringInfoString(page->body, "<h2>");
	Esc(page, heading);
	appendStringInfoString(page->body, "</h2>\n");
	if (PageArrayLength(list) == 0)
	{
		Empty(page, empty);
		return;
	}
	appendStringInfoString(page->body, "<div class=\"card\"><table><caption>");
	Esc(page, caption);
	appendStringInfoString(page->body, "</caption>\n<thead><tr>");
	for (int c = 0; c < ncols; c++)
	{
		appendStringInfoString(page->body, "<th scope=\"col\">");
		Esc(page, cols[c].header);
		appendStringInfoString(page->body, "</th>");
	}
	appendStringInfoString(page->body, forms ? "<th scope=\"col\"><span class=\"visually-hidden\">Action</span></th></tr></thead>\n<tbody>\n"
						   : "</tr></thead>\n<tbody>\n");
	for (int i = 0; i < PageArrayLength(list); i++)
	{
		JsonbContainer *row = PageElement(list, i);

		appendStringInfoString(page->body, "<tr>");
		for (int c = 0; c < ncols; c++)
			ColumnCell(page, row, &cols[c]);
		if (forms)
		{
			appendStringInfoString(page->body, "<td>");
			form(page, row);
			appendStringInfoString(page->body, "</td>");
		}
		appendStringInfoString(page->body, "</tr>\n");
	}
	appendStringInfoString(page->body, "</tbody></table></div>\n");
}

/*
 * The upload form of a file waiting for its content: fields from
 * file_upload_form, posting to storage, whose origin joins the CSP's
 * form-action sources.  Storage sends the browser to upload_redirect_url
 * with file_id (and csrf_token) added.
 */
static void
UploadForm(AdminPage *page, const char *file_id, const char *name)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		values[2];
	StringInfoData redirect;
	Jsonb	   *form;
	bool		isnull;
	JsonbContainer *fields;
	char	   *url;
	size_t		origin;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	initStringInfo(&redirect);
	appendStringInfoString(&redirect, page->upload_redirect_url);
	appendStringInfoString(&redirect, strchr(page->upload_redirect_url, '?') ? "&file_id=" : "?file_id=");
	appendStringInfoString(&redirect, file_id);
	if (page->csrf_token)
	{
		appendStringInfoString(&redirect, "&csrf_token=");
		UriEncode(&redirect, page->csrf_token, false);
	}
	values[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(file_id));
	values[1] = CStringGetTextDatum(redirect.data);
	BenefitsExec(BenefitsPlan(&plan, "SELECT benefits.file_upload_form($1, $2) AS form", 2, argtypes),
				 values, NULL, true, 1);
	form = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										SPI_fnumber(SPI_tuptable->tupdesc, "form"), &isnull));
	url = BenefitsJsonText(form, "url");
	fields = PageContainer(&form->root, "fields");

	origin = UriOriginLength(url, "https");
	if (origin == 0)
		origin = UriOriginLength(url, "http");
	if (origin > 0)
	{
		appendStringInfoChar(page->form_sources, ' ');
		appendBinaryStringInfo(page->form_sources, url, origin);
	}

	appendStringInfoString(page->body, "<form class=\"block\" method=\"post\" enctype=\"multipart/form-data\" action=\"");
	Esc(page, url);
	appendStringInfoString(page->body, "\">");
	it = JsonbIteratorInit(fields);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
			Hidden(page, key, BenefitsJsonbValueText(&v));
	}
	appendStringInfo(page->body, "<label for=\"file-%s\">Content of ", file_id);
	Esc(page, name);
	appendStringInfo(page->body, "</label><input type=\"file\" id=\"file-%s\" name=\"file\" required> ", file_id);
	FormClose(page, "Upload", name);
}

/* A file's upload form, when it waits for its content. */
static void
FileUploadCell(AdminPage *page, JsonbContainer *file)
{
	char	   *state = PageText(file, "state");

	if (state && strcmp(state, "waiting_for_upload") == 0)
		UploadForm(page, PageText(file, "id"), PageText(file, "name"));
}

static const Column file_columns[] = {
	{"Name", "name", COLUMN_TEXT}, {"Size", "size", COLUMN_SIZE}, {"State", "state", COLUMN_WORDS}
};

/* Files: name, size and state; upload forms for those waiting (with params.upload_redirect_url and storage configured). */
static void
FilesSection(AdminPage *page)
{
	bool		uploads = page->upload_redirect_url != NULL && S3Configured();

	ListTable(page, "Files", "No files registered (benefits.create_file registers one).", "Files and their upload state",
			  DocList(page, NULL, "files"), file_columns, lengthof(file_columns),
			  uploads ? FileUploadCell : NULL);
	if (page->upload_redirect_url == NULL)
		Empty(page, "Upload forms appear when the application passes params.upload_redirect_url.");
	else if (!uploads)
		Empty(page, "Upload forms appear once a superuser has set the benefits.s3_* storage settings.");
}

/* A dead job's retry form (retry_job). */
static void
RetryForm(AdminPage *page, JsonbContainer *job)
{
	char	   *id = PageText(job, "id");

	FormOpen(page, "retry_job", false);
	Hidden(page, "job_id", id);
	FormClose(page, "Retry", psprintf("job %s", id));
}

/* A disabled endpoint's enable form (enable_webhook_endpoint). */
static void
EnableForm(AdminPage *page, JsonbContainer *endpoint)
{
	FormOpen(page, "enable_webhook_endpoint", false);
	Hidden(page, "endpoint_id", PageText(endpoint, "id"));
	FormClose(page, "Enable", PageText(endpoint, "url"));
}

/* A waiting manual fulfillment's complete form (complete_fulfillment), with a note. */
static void
CompleteForm(AdminPage *page, JsonbContainer *pending)
{
	char	   *grant_id = PageText(pending, "grant_id");

	FormOpen(page, "complete_fulfillment", false);
	Hidden(page, "grant_id", grant_id);
	appendStringInfo(page->body, "<label for=\"note-%s\">Note to the customer</label>"
					 "<textarea id=\"note-%s\" name=\"note\" rows=\"2\"></textarea>\n", grant_id, grant_id);
	FormClose(page, "Mark fulfilled", psprintf("%s for %s", PageText(pending, "benefit"), PageText(pending, "customer")));
}

static const Column job_columns[] = {
	{"Kind", "kind", COLUMN_TEXT}, {"State", "state", COLUMN_TEXT}, {"Jobs", "count", COLUMN_TEXT}
};
static const Column dead_columns[] = {
	{"Job", "id", COLUMN_TEXT}, {"Kind", "kind", COLUMN_TEXT}, {"Action", "action", COLUMN_TEXT},
	{"Attempts", "attempts", COLUMN_TEXT}, {"HTTP status", "last_status", COLUMN_TEXT},
	{"Last error", "last_error", COLUMN_ERROR}, {"Died", "finished_at", COLUMN_DATE}
};
static const Column endpoint_columns[] = {
	{"URL", "url", COLUMN_TEXT}, {"Why", "reason", COLUMN_TEXT}, {"Disabled", "disabled_at", COLUMN_DATE}
};
static const Column attention_columns[] = {
	{"Customer", "customer", COLUMN_TEXT}, {"Benefit", "benefit", COLUMN_TEXT},
	{"State", "state", COLUMN_TEXT}, {"Error", "error", COLUMN_ERROR}
};
static const Column pending_columns[] = {
	{"Benefit", "benefit", COLUMN_TEXT}, {"Customer", "customer", COLUMN_TEXT}, {"Waiting since", "since", COLUMN_DATE}
};

/*
 * Delivery: jobs by kind and state, dead jobs with a retry form, disabled
 * endpoints with an enable form, grants waiting for an account or failing,
 * and (when manual fulfillment is installed) grants waiting for the seller
 * with a complete form.
 */
static void
DeliverySection(AdminPage *page)
{
	JsonbValue *pending = PageGet(PageContainer(page->doc, "delivery"), "pending_fulfillments");

	ListTable(page, "Jobs", "No jobs yet.", "Jobs by kind and state",
			  DocList(page, "delivery", "jobs"), job_columns, lengthof(job_columns), NULL);
	ListTable(page, "Dead jobs", "No dead jobs.", "Jobs that ran out of attempts or failed for good",
			  DocList(page, "delivery", "dead_jobs"), dead_columns, lengthof(dead_columns), page->action_url ? RetryForm : NULL);
	ListTable(page, "Disabled webhook endpoints", "No disabled endpoints.", "Endpoints disabled after failures",
			  DocList(page, "delivery", "disabled_endpoints"), endpoint_columns, lengthof(endpoint_columns), page->action_url ? EnableForm : NULL);
	ListTable(page, "Grants needing attention", "No grant is waiting for a linked account or failing.",
			  "Grants waiting for a linked account or failing",
			  DocList(page, "delivery", "attention_grants"), attention_columns, lengthof(attention_columns), NULL);
	if (pending != NULL)
		ListTable(page, "Manual fulfillments", "Nothing waits for you to fulfill it.", "Grants waiting for you, oldest first",
				  pending->type == jbvBinary ? pending->val.binary.data : NULL,
				  pending_columns, lengthof(pending_columns), page->action_url ? CompleteForm : NULL);
}

/* The largest number member KEY of a list's objects (at least 1). */
static double
ListMax(JsonbContainer *list, const char *key)
{
	double		max = 1;

	for (int i = 0; i < PageArrayLength(list); i++)
	{
		char	   *t = PageText(PageElement(list, i), key);
		double		n = t ? strtod(t, NULL) : 0;

		if (n > max)
			max = n;
	}
	return max;
}

/*
 * A horizontal bar chart as inline SVG: one bar per element of LIST, sized
 * by its VALUE member, labelled by its LABEL member (escaped), with a title
 * and a description for screen readers.  CLASS_OF picks the low style.
 */
static void
BarChart(AdminPage *page, const char *id, const char *title, JsonbContainer *list,
		 const char *label, const char *value, const char *low_below)
{
	int			n = PageArrayLength(list);
	double		max = ListMax(list, value);

	appendStringInfo(page->body, "<svg role=\"img\" aria-labelledby=\"%s-title\" viewBox=\"0 0 600 %d\" width=\"600\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\">"
					 "<title id=\"%s-title\">", id, n * 22 + 4, n * 22 + 4, id);
	Esc(page, title);
	appendStringInfoString(page->body, "</title>\n");
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *e = PageElement(list, i);
		char	   *t = PageText(e, value);
		double		v = t ? strtod(t, NULL) : 0;
		char	   *limit = low_below ? PageText(e, low_below) : NULL;
		bool		low = limit && v <= strtod(limit, NULL);

		appendStringInfo(page->body, "<text x=\"0\" y=\"%d\">", i * 22 + 15);
		Esc(page, PageText(e, label));
		appendStringInfo(page->body, "</text><rect class=\"%s\" x=\"220\" y=\"%d\" width=\"%d\" height=\"16\"></rect>"
						 "<text x=\"%d\" y=\"%d\">", low ? "low" : "bar", i * 22 + 3,
						 v > 0 ? (int) (v / max * 320) + 1 : 0, (v > 0 ? (int) (v / max * 320) + 1 : 0) + 226, i * 22 + 15);
		Esc(page, t);
		appendStringInfoString(page->body, "</text>\n");
	}
	appendStringInfoString(page->body, "</svg>\n");
}

/* Validations per day as an inline SVG column chart (14 columns, dates below). */
static void
DayChart(AdminPage *page, JsonbContainer *days)
{
	int			n = PageArrayLength(days);
	double		max = ListMax(days, "validations");

	appendStringInfoString(page->body, "<svg role=\"img\" aria-labelledby=\"days-title\" viewBox=\"0 0 600 170\" width=\"600\" height=\"170\" xmlns=\"http://www.w3.org/2000/svg\">"
						   "<title id=\"days-title\">Validations counted, by the day each key was last validated</title>\n");
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *d = PageElement(days, i);
		char	   *t = PageText(d, "validations");
		double		v = t ? strtod(t, NULL) : 0;
		int			h = v > 0 ? (int) (v / max * 120) + 1 : 0;
		char	   *day = PageText(d, "day");

		appendStringInfo(page->body, "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"30\" height=\"%d\"><title>", i * 42 + 4, 140 - h, h);
		Esc(page, day);
		appendStringInfoString(page->body, ": ");
		Esc(page, t);
		appendStringInfo(page->body, "</title></rect><text x=\"%d\" y=\"158\">", i * 42 + 4);
		Esc(page, day && strlen(day) == 10 ? day + 5 : day);
		appendStringInfoString(page->body, "</text>\n");
	}
	appendStringInfoString(page->body, "<line x1=\"0\" y1=\"140.5\" x2=\"600\" y2=\"140.5\" stroke=\"currentColor\" stroke-opacity=\".4\"></line>\n</svg>\n");
}

static const Column top_columns[] = {
	{"Key", "display_key", COLUMN_TEXT}, {"Customer", "customer", COLUMN_TEXT},
	{"Validations", "validations", COLUMN_TEXT}, {"Last validated", "last_validated_at", COLUMN_DATE}
};
static const Column near_columns[] = {
	{"Key", "display_key", COLUMN_TEXT}, {"Customer", "customer", COLUMN_TEXT},
	{"Activations", "activations", COLUMN_TEXT}, {"Limit", "limit", COLUMN_TEXT}
};
static const Column low_columns[] = {
	{"Customer", "customer", COLUMN_TEXT}, {"Meter", "meter", COLUMN_TEXT},
	{"Balance", "balance", COLUMN_TEXT}, {"Threshold", "threshold", COLUMN_TEXT}
};

/* A chart in a card, when its list has rows. */
static void
ChartCard(AdminPage *page, const char *id, const char *title, JsonbContainer *list,
		  const char *label, const char *value, const char *low_below)
{
	if (PageArrayLength(list) == 0)
		return;
	appendStringInfoString(page->body, "<div class=\"card\">\n");
	BarChart(page, id, title, list, label, value, low_below);
	appendStringInfoString(page->body, "</div>\n");
}

/*
 * Usage: validations per day and the most-validated keys (from the keys'
 * counters), keys near their activation limit, meter balances at or below
 * their low-balance threshold.
 */
static void
UsageSection(AdminPage *page)
{
	JsonbContainer *top = DocList(page, "usage", "top_keys");
	JsonbContainer *low = DocList(page, "usage", "low_balances");

	appendStringInfoString(page->body, "<h2>License validations</h2>\n<div class=\"card\">\n");
	DayChart(page, DocList(page, "usage", "validations_by_day"));
	appendStringInfoString(page->body, "<p class=\"muted\">The keys keep a running count and the time of their last "
						   "validation: each day shows the counts of the keys last validated that day.</p>\n</div>\n");
	ListTable(page, "Most-validated keys", "No key has been validated yet.", "Most-validated keys",
			  top, top_columns, lengthof(top_columns), NULL);
	ChartCard(page, "top", "Validations per key", top, "display_key", "validations", NULL);
	ListTable(page, "Activations near their limit", "No key has used 80% of its activations.",
			  "Keys with at least 80% of their activations used",
			  DocList(page, "usage", "activations_near_limit"), near_columns, lengthof(near_columns), NULL);
	ListTable(page, "Low meter balances", "No balance is at or below its threshold.",
			  "Balances at or below their threshold", low, low_columns, lengthof(low_columns), NULL);
	ChartCard(page, "low", "Balances at or below their threshold", low, "customer", "balance", "threshold");
}

/* One figure of the overview, linking to its section. */
static void
Figure(AdminPage *page, int count, const char *what, const char *section)
{
	appendStringInfo(page->body, "<li><strong>%d</strong><a href=\"?section=%s\">", count, section);
	Esc(page, what);
	appendStringInfoString(page->body, "</a></li>\n");
}

/* The number of grants waiting for manual fulfillment in the document. */
static int
PendingCount(AdminPage *page)
{
	JsonbValue *v = PageGet(PageContainer(page->doc, "delivery"), "pending_fulfillments");

	return v && v->type == jbvBinary ? PageArrayLength(v->val.binary.data) : 0;
}

/* Overview: the counts of each section's lists, each a link to its section. */
static void
OverviewSection(AdminPage *page)
{
	JsonbContainer *benefits = DocList(page, NULL, "benefits");
	JsonbContainer *files = DocList(page, NULL, "files");
	int			live = 0;
	int			waiting_files = 0;

	for (int i = 0; i < PageArrayLength(benefits); i++)
		live += atoi(PageText(PageElement(benefits, i), "live_grants"));
	for (int i = 0; i < PageArrayLength(files); i++)
		waiting_files += strcmp(PageText(PageElement(files, i), "state"), "waiting_for_upload") == 0;

	appendStringInfoString(page->body, "<ul class=\"figures\">\n");
	Figure(page, PageArrayLength(DocList(page, NULL, "products")), "products", "products");
	Figure(page, PageArrayLength(benefits), "benefits", "benefits");
	Figure(page, live, "live grants", "benefits");
	Figure(page, waiting_files, "files waiting for upload", "files");
	Figure(page, PageArrayLength(DocList(page, "delivery", "dead_jobs")), "dead jobs", "delivery");
	Figure(page, PageArrayLength(DocList(page, "delivery", "disabled_endpoints")), "disabled endpoints", "delivery");
	Figure(page, PageArrayLength(DocList(page, "delivery", "attention_grants")), "grants needing attention", "delivery");
	Figure(page, PendingCount(page), "manual fulfillments waiting", "delivery");
	Figure(page, PageArrayLength(DocList(page, "usage", "activations_near_limit")), "keys near their activation limit", "usage");
	Figure(page, PageArrayLength(DocList(page, "usage", "low_balances")), "low meter balances", "usage");
	appendStringInfoString(page->body, "</ul>\n");
}

/* Renders section SECTION of the document; returns the complete page. */
static char *
AdminHtml(AdminPage *page, int section, const char *notice)
{
	StringInfoData out;
	JsonbContainer *org = PageContainer(page->doc, "organization");

	switch (section)
	{
		case 0:
			OverviewSection(page);
			break;
		case 1:
			ProductsSection(page);
			break;
		case 2:
			BenefitsSection(page);
			break;
		case 3:
			FilesSection(page);
			break;
		case 4:
			DeliverySection(page);
			break;
		default:
			UsageSection(page);
			break;
	}

	initStringInfo(&out);
	appendStringInfoString(&out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
						   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
						   "<meta name=\"referrer\" content=\"same-origin\">\n<meta name=\"robots\" content=\"noindex, nofollow\">\n"
						   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
						   "base-uri 'none'; form-action 'self'");
	PortalFormActionOrigin(&out, page->action_url);
	HtmlEscape(&out, page->form_sources->data);
	appendStringInfoString(&out, "\">\n<title>");
	HtmlEscape(&out, admin_section_titles[section]);
	appendStringInfoString(&out, " · ");
	HtmlEscape(&out, PageText(org, "name"));
	appendStringInfoString(&out, "</title>\n");
	appendStringInfoString(&out, page_style);
	appendStringInfoString(&out, "</head>\n<body>\n<a class=\"skip\" href=\"#content\">Skip to the content</a>\n<main>\n<header>\n<p class=\"org\">");
	HtmlEscape(&out, PageText(org, "name"));
	appendStringInfoString(&out, "</p>\n<h1>");
	HtmlEscape(&out, admin_section_titles[section]);
	appendStringInfoString(&out, "</h1>\n<nav aria-label=\"Sections\"><ul>\n");
	for (int i = 0; admin_sections[i]; i++)
		appendStringInfo(&out, "<li><a href=\"?section=%s\"%s>%s</a></li>\n", admin_sections[i],
						 i == section ? " aria-current=\"page\"" : "", admin_section_titles[i]);
	appendStringInfoString(&out, "</ul></nav>\n</header>\n");
	if (notice)
	{
		appendStringInfoString(&out, "<p class=\"notice\" role=\"status\">");
		HtmlEscape(&out, notice);
		appendStringInfoString(&out, "</p>\n");
	}
	if (page->action_url == NULL && section != 0 && section != 5)
		appendStringInfoString(&out, "<p class=\"muted\">Read-only: the application passed no action_url.</p>\n");
	appendStringInfo(&out, "<div id=\"content\">\n%s</div>\n</main>\n</body>\n</html>\n", page->body->data);
	return out.data;
}

PG_FUNCTION_INFO_V1(admin_page_html);

/*
 * admin_page_html(organization_id, section, action_url, csrf_token, params):
 * one section of the organization's dashboard as a page the application
 * serves as it is, behind its own login.
 */
Datum
admin_page_html(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	AdminPage	page = {0};
	StringInfoData body;
	StringInfoData sources;
	char	   *notice = NULL;
	int			section;
	bool		isnull;
	char	   *html;
	text	   *result;

	BenefitsRequireArgument(fcinfo, 0, "organization_id", ERRCODE_INVALID_PARAMETER_VALUE);
	section = RequireSection(PG_ARGISNULL(1) ? "overview" : text_to_cstring(PG_GETARG_TEXT_PP(1)));
	page.action_url = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	PortalCheckActionUrl(page.action_url);
	page.csrf_token = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (page.action_url && (page.csrf_token == NULL || page.csrf_token[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("csrf_token must be given with action_url"),
				 errhint("Pass the token the application checks on every post.")));
	ReadParams(PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4), &page, &notice);

	initStringInfo(&body);
	initStringInfo(&sources);
	page.body = &body;
	page.form_sources = &sources;

	BenefitsSpiConnect();
	values[0] = PG_GETARG_DATUM(0);
	BenefitsExec(BenefitsPlan(&plan, "SELECT benefits.admin_overview($1) AS doc", 1, argtypes),
				 values, NULL, true, 1);
	page.doc = &DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 SPI_fnumber(SPI_tuptable->tupdesc, "doc"), &isnull))->root;
	html = AdminHtml(&page, section, notice);
	result = SPI_palloc(VARHDRSZ + strlen(html));
	SET_VARSIZE(result, VARHDRSZ + strlen(html));
	memcpy(VARDATA(result), html, strlen(html));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
