/*
 * uri.c — URL parts: percent-encoding of path segments, query parameters and
 * form values, and the origin of a URL.  Pure functions.
 */
#include "postgres.h"

#include "uri.h"

void
UriEncode(StringInfo buf, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		unsigned char c = *p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			c == '~' || (keep_slash && c == '/'))
			appendStringInfoChar(buf, (char) c);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[c >> 4]);
			appendStringInfoChar(buf, hex[c & 0x0f]);
		}
	}
}

/* Letters, digits and hyphens: what a host name label (and a CSP host) may hold. */
static bool
IsHostChar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* The end of the dotted host name at P; or NULL. */
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

size_t
UriOriginLength(const char *url, const char *scheme)
{
	size_t		scheme_len = strlen(scheme);
	const char *p;

	if (pg_strncasecmp(url, scheme, scheme_len) != 0 || strncmp(url + scheme_len, "://", 3) != 0)
		return 0;
	p = HostNameEnd(url + scheme_len + 3);
	if (p != NULL)
		p = PortEnd(p);
	return p != NULL && (*p == '\0' || *p == '/') ? p - url : 0;
}

/*
 * Why URI cannot be where a browser is sent back to the application (an
 * OAuth redirect, storage's redirect after an upload), or NULL when it can:
 * an https URL with a plain host, or plain http to 127.0.0.1 or localhost
 * (RFC 8252's loopback redirect), nothing to percent-encode, at most MAX_LEN
 * bytes.
 */
const char *
UriRedirectProblem(const char *uri, int max_len)
{
	if (strlen(uri) > (size_t) max_len)
		return psprintf("It is longer than %d bytes.", max_len);
	for (const char *p = uri; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f || *p == '\\' || *p == '#' || *p == '"' ||
			*p == '<' || *p == '>' || (unsigned char) *p >= 0x80)
			return "It contains a space, a control character, a backslash, a fragment or a character that "
				"must be percent-encoded.";
	if (UriOriginLength(uri, "https") > 0)
		return NULL;
	if (UriOriginLength(uri, "http") > 0)
	{
		const char *host = uri + strlen("http://");
		size_t		host_len = strcspn(host, ":/");

		if ((host_len == 9 && pg_strncasecmp(host, "127.0.0.1", 9) == 0) ||
			(host_len == 9 && pg_strncasecmp(host, "localhost", 9) == 0))
			return NULL;
		return "Plain http is allowed only for 127.0.0.1 and localhost.";
	}
	return "It is not an absolute https URL with a plain host name.";
}
