/*
 * email_text.c — the pieces of a customer email: paragraphs, values and
 * links written into both parts of a body (plain text as is, HTML escaped),
 * and the header encodings (RFC 2047 encoded words for non-ASCII text,
 * mailboxes, RFC 5322 dates, base64 bodies).  A bottom-layer helper: it uses
 * html.c only.
 *
 * Concurrency: pure functions over their arguments.
 */
#include "postgres.h"

#include <sodium.h>

#include "datatype/timestamp.h"
#include "utils/datetime.h"

#include "email.h"
#include "html.h"

/* Bytes of text per RFC 2047 encoded word: 60 base64 characters, 75 in all. */
#define ENCODED_WORD_BYTES 45
/* Base64 body lines (RFC 2045: at most 76 characters). */
#define BASE64_LINE 76

/* An empty body, both parts in the current memory context. */
void
EmailBodyInit(EmailBody *body)
{
	initStringInfo(&body->text);
	initStringInfo(&body->html);
}

/* Text escaped for HTML, its line breaks as <br>. */
static void
HtmlLines(StringInfo buf, const char *text)
{
	const char *start = text;

	for (const char *c = text;; c++)
	{
		if (*c == '\n' || *c == '\0')
		{
			char	   *line = pnstrdup(start, c - start);

			HtmlEscape(buf, line);
			if (*c == '\0')
				break;
			appendStringInfoString(buf, "<br>");
			start = c + 1;
		}
	}
}

/* A heading: the name of a benefit in a list. */
void
EmailHeading(EmailBody *body, const char *text)
{
	appendStringInfo(&body->text, "== %s ==\n\n", text);
	appendStringInfoString(&body->html, "<h2>");
	HtmlEscape(&body->html, text);
	appendStringInfoString(&body->html, "</h2>\n");
}

/* A paragraph. */
void
EmailLine(EmailBody *body, const char *text)
{
	appendStringInfo(&body->text, "%s\n\n", text);
	appendStringInfoString(&body->html, "<p>");
	HtmlLines(&body->html, text);
	appendStringInfoString(&body->html, "</p>\n");
}

/* "label: value", the value shown as code (a license key). */
void
EmailValue(EmailBody *body, const char *label, const char *value)
{
	appendStringInfo(&body->text, "%s: %s\n\n", label, value);
	appendStringInfoString(&body->html, "<p>");
	HtmlEscape(&body->html, label);
	appendStringInfoString(&body->html, ": <code>");
	HtmlEscape(&body->html, value);
	appendStringInfoString(&body->html, "</code></p>\n");
}

/* Only http(s) URLs become links; anything else is shown as text. */
static bool
LinkableUrl(const char *url)
{
	return strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
}

/* A link: "text: url" in the plain part, an anchor in the HTML part. */
void
EmailLink(EmailBody *body, const char *text, const char *url)
{
	appendStringInfo(&body->text, "%s: %s\n\n", text, url);
	appendStringInfoString(&body->html, "<p>");
	if (LinkableUrl(url))
	{
		appendStringInfoString(&body->html, "<a href=\"");
		HtmlEscape(&body->html, url);
		appendStringInfoString(&body->html, "\">");
		HtmlEscape(&body->html, text);
		appendStringInfoString(&body->html, "</a>");
	}
	else
	{
		HtmlEscape(&body->html, text);
		appendStringInfoString(&body->html, ": ");
		HtmlEscape(&body->html, url);
	}
	appendStringInfoString(&body->html, "</p>\n");
}

/* The objects of the array member key of object (others are passed over). */
List *
EmailObjects(Jsonb *object, const char *key)
{
	JsonbValue *v = object && JB_ROOT_IS_OBJECT(object)
		? getKeyJsonValueFromContainer(&object->root, key, strlen(key), NULL) : NULL;
	JsonbContainer *array = v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data)
		? v->val.binary.data : NULL;
	List	   *objects = NIL;

	for (int i = 0; array != NULL && i < (int) JsonContainerSize(array); i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(array, i);

		if (e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
			objects = lappend(objects, JsonbValueToJsonb(e));
	}
	return objects;
}

/* Does the grant's error name this action (link_github, link_discord)? */
bool
EmailAwaits(const EmailGrant *grant, const char *action)
{
	JsonbValue *v = grant->grant_error && JB_ROOT_IS_OBJECT(grant->grant_error)
		? getKeyJsonValueFromContainer(&grant->grant_error->root, "action", strlen("action"), NULL) : NULL;

	return v != NULL && v->type == jbvString && strlen(action) == (size_t) v->val.string.len &&
		strncmp(v->val.string.val, action, v->val.string.len) == 0;
}

/* A link to the portal, or where there is none, a line pointing to it. */
void
EmailPortalLink(EmailBody *body, const EmailGrant *grant, const char *text)
{
	if (grant->portal_url)
		EmailLink(body, text, grant->portal_url);
	else
		EmailLine(body, psprintf("%s: open your customer portal.", text));
}

/*
 * A plain address (local@domain): printable ASCII without spaces, quotes,
 * angle brackets or other specials, one '@', at most 254 characters.  What
 * goes into SMTP commands and headers is never anything else.
 */
bool
EmailAddressValid(const char *address)
{
	const char *at = NULL;
	size_t		len = address ? strlen(address) : 0;

	if (len < 3 || len > 254)
		return false;
	for (const char *c = address; *c; c++)
	{
		if (*c <= ' ' || *c >= 0x7f || strchr("<>()[]\\,;:\"", *c) != NULL)
			return false;
		if (*c == '@')
		{
			if (at != NULL)
				return false;
			at = c;
		}
	}
	return at != NULL && at != address && at[1] != '\0';
}

/*
 * Longest text written as it is in a header: beyond it, encoded words fold
 * it, so no header line passes RFC 5322's 998 octets whatever the length of
 * a name or a subject.
 */
#define PLAIN_HEADER_TEXT_MAX 60

/* Is text short printable ASCII that needs no encoding in a header? */
static bool
PlainHeaderText(const char *text)
{
	if (strlen(text) > PLAIN_HEADER_TEXT_MAX)
		return false;
	for (const char *c = text; *c; c++)
		if (*c < ' ' || *c >= 0x7f)
			return false;
	return strstr(text, "=?") == NULL;
}

/*
 * Header text (Subject, display names): as is when plain ASCII, else RFC
 * 2047 encoded words (UTF-8, base64), each whole characters, folded.  Line
 * breaks and other control characters in the text end up inside base64,
 * never in the header.
 */
void
EmailHeaderText(StringInfo buf, const char *text)
{
	size_t		len = strlen(text);
	size_t		start = 0;

	if (PlainHeaderText(text))
	{
		appendStringInfoString(buf, text);
		return;
	}
	while (start < len)
	{
		size_t		end = Min(start + ENCODED_WORD_BYTES, len);
		char		b64[sodium_base64_ENCODED_LEN(ENCODED_WORD_BYTES, sodium_base64_VARIANT_ORIGINAL)];

		/* back to the start of a UTF-8 character */
		while (end < len && end > start + 1 && ((unsigned char) text[end] & 0xc0) == 0x80)
			end--;
		sodium_bin2base64(b64, sizeof(b64), (const unsigned char *) text + start, end - start,
						  sodium_base64_VARIANT_ORIGINAL);
		appendStringInfo(buf, "%s=?UTF-8?B?%s?=", start > 0 ? "\r\n " : "", b64);
		start = end;
	}
}

/*
 * A mailbox: "name" <address> with the name quoted when plain ASCII (quotes
 * and backslashes escaped) or encoded, or the bare <address>.
 */
void
EmailMailbox(StringInfo buf, const char *name, const char *address)
{
	if (name != NULL && name[0] != '\0')
	{
		if (PlainHeaderText(name))
		{
			appendStringInfoChar(buf, '"');
			for (const char *c = name; *c; c++)
			{
				if (*c == '"' || *c == '\\')
					appendStringInfoChar(buf, '\\');
				appendStringInfoChar(buf, *c);
			}
			appendStringInfoChar(buf, '"');
		}
		else
			EmailHeaderText(buf, name);
		appendStringInfoChar(buf, ' ');
	}
	appendStringInfo(buf, "<%s>", address);
}

/* A body part's content in base64, lines of 76 characters. */
void
EmailBase64(StringInfo buf, const char *data, size_t len)
{
	size_t		size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char	   *b64 = palloc(size);
	size_t		n;

	sodium_bin2base64(b64, size, (const unsigned char *) data, len, sodium_base64_VARIANT_ORIGINAL);
	n = strlen(b64);
	for (size_t i = 0; i < n; i += BASE64_LINE)
		appendStringInfo(buf, "%.*s\r\n", (int) Min(BASE64_LINE, n - i), b64 + i);
}

/* An RFC 5322 date in UTC: "Wed, 02 Dec 2026 15:34:31 +0000". */
char *
EmailDate(TimestampTz ts)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "an email's date must be finite");
	return psprintf("%s, %02d %s %04d %02d:%02d:%02d +0000",
					days[j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday))], tm.tm_mday,
					months[tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
