/*
 * fuzz_escape.c — HTML escaping (html.c) and the text, header and body
 * encodings of email (email_text.c).
 *
 * Input: NUL-separated pieces: a text, a URL or address, a display name.
 * Properties:
 *  - HtmlEscape output has no raw < > " ', each & starts an entity, and it
 *    unescapes back to its input;
 *  - an email paragraph, heading, value or link adds to the HTML part only
 *    the tags of its own template, however the text and URL look;
 *  - encoded header text: no line longer than 998 octets (after "Subject: "),
 *    no CR or LF but the folds, only printable ASCII once encoded, each
 *    encoded word whole UTF-8 characters when the text is valid UTF-8, and
 *    it decodes back to the text; a mailbox ends with <address>;
 *  - an accepted address has one @ and none of the characters SMTP or a
 *    header would read otherwise;
 *  - a body part in base64 has lines of at most 76 characters and decodes
 *    back.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <sodium.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "email.h"
#include "fuzz.h"
#include "html.h"

static int
Count(const char *s, char c)
{
	int			n = 0;

	for (; *s; s++)
		n += (*s == c);
	return n;
}

/* Undoes HtmlEscape, checking that every & starts one of its entities. */
static char *
Unescape(const char *s)
{
	static const char *const entities[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
	{"&#39;", "'"}};
	StringInfoData out;

	initStringInfo(&out);
	while (*s)
	{
		size_t		i;

		if (*s != '&')
		{
			appendStringInfoChar(&out, *s++);
			continue;
		}
		for (i = 0; i < lengthof(entities); i++)
			if (strncmp(s, entities[i][0], strlen(entities[i][0])) == 0)
				break;
		FuzzCheck(i < lengthof(entities), "a bare & in escaped HTML");
		appendStringInfoString(&out, entities[i][1]);
		s += strlen(entities[i][0]);
	}
	return out.data;
}

static void
CheckHtmlEscape(const char *text)
{
	StringInfoData buf;

	initStringInfo(&buf);
	HtmlEscape(&buf, text);
	FuzzCheck(strpbrk(buf.data, "<>\"'") == NULL, "raw markup character in escaped HTML");
	FuzzCheck(strcmp(Unescape(buf.data), text) == 0, "escaped HTML does not unescape back");
}

/* Each kind of body paragraph: its HTML holds exactly the tags of its template. */
static void
CheckBody(const char *text, const char *url)
{
	EmailBody	body;
	bool		linkable = strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;

	EmailBodyInit(&body);
	EmailHeading(&body, text);
	FuzzCheck(Count(body.html.data, '<') == 2, "heading: extra tags");
	EmailBodyInit(&body);
	EmailLine(&body, text);
	FuzzCheck(Count(body.html.data, '<') == 2 + Count(text, '\n'), "paragraph: extra tags");
	EmailBodyInit(&body);
	EmailValue(&body, url, text);
	FuzzCheck(Count(body.html.data, '<') == 4, "value: extra tags");
	EmailBodyInit(&body);
	EmailLink(&body, text, url);
	FuzzCheck(Count(body.html.data, '<') == (linkable ? 4 : 2), "link: extra tags");
	FuzzCheck(Count(body.html.data, '"') == (linkable ? 2 : 0), "link: attribute broken out of");
}

/* Decodes header text as a mail reader would; checks lines and words on the way. */
static void
CheckHeaderText(const char *text)
{
	StringInfoData buf;
	StringInfoData decoded;
	bool		valid_utf8 = pg_encoding_verifymbstr(PG_UTF8, text, strlen(text)) == (int) strlen(text);
	const char *p;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "Subject: ");
	EmailHeaderText(&buf, text);
	for (const char *line = buf.data, *next; line; line = next)
	{
		next = strstr(line, "\r\n");
		FuzzCheck((next ? (size_t) (next - line) : strlen(line)) <= 998, "header line over 998 octets");
		if (next)
		{
			FuzzCheck(next[2] == ' ', "line break in a header that is no fold");
			next += 2;
		}
	}
	p = buf.data + strlen("Subject: ");
	if (strncmp(p, "=?UTF-8?B?", 10) != 0 && strstr(text, "=?") == NULL)
	{
		FuzzCheck(strcmp(p, text) == 0, "plain header text changed");
		FuzzCheck(strpbrk(p, "\r\n") == NULL, "raw line break in plain header text");
		return;
	}
	initStringInfo(&decoded);
	while (*p)
	{
		const char *end;
		unsigned char *bin;
		size_t		binlen;

		for (const char *c = p; *c; c++)
			FuzzCheck((*c >= ' ' && *c < 0x7f) || ((*c == '\r' || *c == '\n')), "raw byte in encoded header");
		FuzzCheck(strncmp(p, "=?UTF-8?B?", 10) == 0, "not an encoded word: %.20s", p);
		p += 10;
		end = strstr(p, "?=");
		FuzzCheck(end != NULL, "encoded word not closed");
		bin = palloc(end - p + 1);
		FuzzCheck(sodium_base642bin(bin, end - p + 1, p, end - p, NULL, &binlen, NULL,
									sodium_base64_VARIANT_ORIGINAL) == 0, "encoded word is not base64");
		if (valid_utf8)
			FuzzCheck(pg_encoding_verifymbstr(PG_UTF8, (char *) bin, binlen) == (int) binlen,
					  "encoded word splits a UTF-8 character");
		appendBinaryStringInfo(&decoded, (char *) bin, binlen);
		p = end + 2;
		if (strncmp(p, "\r\n ", 3) == 0)
			p += 3;
		else
			FuzzCheck(*p == '\0', "encoded words not folded");
	}
	FuzzCheck(decoded.len == (int) strlen(text) && memcmp(decoded.data, text, decoded.len) == 0,
			  "encoded header text does not decode back");
}

static void
CheckMailbox(const char *name, const char *address)
{
	StringInfoData buf;
	char	   *tail;

	if (!EmailAddressValid(address))
		return;
	FuzzCheck(Count(address, '@') == 1 && strpbrk(address, "<>()[]\\,;:\" \r\n\t") == NULL,
			  "accepted address \"%s\"", address);
	for (const char *c = address; *c; c++)
		FuzzCheck((unsigned char) *c > ' ' && (unsigned char) *c < 0x7f, "accepted address has byte 0x%02x",
				  (unsigned char) *c);
	initStringInfo(&buf);
	EmailMailbox(&buf, name, address);
	tail = psprintf("<%s>", address);
	FuzzCheck(buf.len >= (int) strlen(tail) && strcmp(buf.data + buf.len - strlen(tail), tail) == 0,
			  "mailbox does not end with the address");
	for (const char *c = buf.data; (c = strpbrk(c, "\r\n")) != NULL; c += 3)
		FuzzCheck(strncmp(c, "\r\n ", 3) == 0, "line break in a mailbox that is no fold");
}

static void
CheckBase64(const char *data, size_t len)
{
	StringInfoData buf;
	StringInfoData joined;
	unsigned char *bin = palloc(len + 1);
	size_t		binlen;

	initStringInfo(&buf);
	EmailBase64(&buf, data, len);
	initStringInfo(&joined);
	for (const char *line = buf.data, *next; *line; line = next + 2)
	{
		next = strstr(line, "\r\n");
		FuzzCheck(next != NULL && next - line <= 76, "base64 line over 76 characters or not ended");
		appendBinaryStringInfo(&joined, line, next - line);
	}
	FuzzCheck(sodium_base642bin(bin, len + 1, joined.data, joined.len, NULL, &binlen, NULL,
								sodium_base64_VARIANT_ORIGINAL) == 0 && binlen == len &&
			  memcmp(bin, data, len) == 0, "body base64 does not decode back");
}

static void
Body(const uint8_t *data, size_t size)
{
	char	   *p[3];

	FuzzSplit(data, size, p, 3);
	CheckHtmlEscape(p[0]);
	CheckBody(p[0], p[1]);
	CheckHeaderText(p[0]);
	CheckMailbox(p[2], p[1]);
	CheckBase64((const char *) data, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzRun(Body, data, size);
	return 0;
}
