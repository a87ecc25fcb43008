/*
 * provider_names.c — the shapes of GitHub and Discord names and ids.
 *
 * Every value that becomes a segment of a GitHub or Discord request path is
 * checked against these shapes three times: when a benefit's properties are
 * validated (properties.c), when an account is linked (provider_jobs.c and
 * the CHECK constraints of benefits.customer_accounts), and by the worker
 * just before it builds the request (providers.c), so a value changed in a
 * table after it was validated is still never sent.  None of the shapes
 * admits '/', '%', "." or "..".
 */
#include "postgres.h"

#include "provider_names.h"

static bool
IsAsciiAlnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * Old GitHub accounts may end with a hyphen or hold two in a row, so only a
 * leading hyphen is refused.
 */
bool
GithubLoginValid(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	if (len < 1 || len > 39 || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!IsAsciiAlnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

bool
GithubRepositoryValid(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	if (len < 1 || len > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!IsAsciiAlnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

bool
DiscordIdValid(const char *s, int min_digits)
{
	size_t		len = s ? strlen(s) : 0;

	if (len < (size_t) min_digits || len > 20 || !DecimalIdValid(s))
		return false;
	return len < 20 || strcmp(s, "18446744073709551615") <= 0;
}

bool
DecimalIdValid(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	if (len < 1 || len > 20 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}
