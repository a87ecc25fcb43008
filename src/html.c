/*
 * html.c — escaping text for HTML, for every page and message the extension
 * renders (the customer portal page today).  A bottom-layer helper: it uses
 * no other file of the extension.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "html.h"

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

PG_FUNCTION_INFO_V1(html_escape);

/*
 * html_escape(text): text safe inside HTML element content and quoted
 * attribute values (& < > " ' escaped).  The portal page escapes every value
 * it shows with it.
 */
Datum
html_escape(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	HtmlEscape(&buf, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}
