/*
 * license_key.c — the license key format.
 *
 * A generated key is an optional prefix and a dash, then seven groups of four
 * Crockford base32 symbols: 27 symbols from libsodium's CSPRNG (135 bits) and
 * a Luhn mod 32 check symbol, which catches every single mistyped symbol and
 * most swapped neighbours, so a mistyped key is answered without a lookup.
 */
#include "postgres.h"

#include <ctype.h>
#include <sodium.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "license.h"

static const char CrockfordAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define KEY_SYMBOLS (LICENSE_KEY_GROUPS * LICENSE_KEY_GROUP_LEN)
#define KEY_BODY_LEN (KEY_SYMBOLS + LICENSE_KEY_GROUPS - 1)

/*
 * Value of a Crockford symbol (upper case), mapping the ambiguous O, I and L
 * to 0, 1 and 1; -1 for a character that is not a symbol.
 */
static int
CrockfordValue(char c)
{
	const char *p;

	if (c == 'O')
		return 0;
	if (c == 'I' || c == 'L')
		return 1;
	if (c == '\0')
		return -1;
	p = strchr(CrockfordAlphabet, c);
	return p ? (int) (p - CrockfordAlphabet) : -1;
}

/*
 * The Luhn mod N check value of n symbol values: the value that, appended,
 * makes the weighted sum divisible by 32.
 */
static int
LuhnCheckValue(const int *values, int n)
{
	int			factor = 2;
	int			sum = 0;

	for (int i = n - 1; i >= 0; i--)
	{
		int			addend = factor * values[i];

		addend = addend / 32 + addend % 32;
		sum += addend;
		factor = (factor == 2) ? 1 : 2;
	}
	return (32 - sum % 32) % 32;
}

/* Whether a prefix is letters and digits only, at most 16 of them. */
static bool
PrefixIsValid(const char *prefix, int len)
{
	if (len < 1 || len > 16)
		return false;
	for (int i = 0; i < len; i++)
	{
		if (!((prefix[i] >= 'A' && prefix[i] <= 'Z') || (prefix[i] >= '0' && prefix[i] <= '9')))
			return false;
	}
	return true;
}

/*
 * A fresh key, with the prefix upper-cased.  The caller has validated the
 * prefix (benefit properties).
 */
char *
LicenseKeyGenerate(const char *prefix)
{
	unsigned char random[KEY_SYMBOLS - 1];
	int			values[KEY_SYMBOLS];
	StringInfoData key;

	initStringInfo(&key);
	if (prefix != NULL && prefix[0] != '\0')
	{
		for (const char *p = prefix; *p; p++)
			appendStringInfoChar(&key, pg_toupper((unsigned char) *p));
		appendStringInfoChar(&key, '-');
	}

	/* 256 is a multiple of 32, so masking a random byte is uniform. */
	randombytes_buf(random, sizeof(random));
	for (int i = 0; i < KEY_SYMBOLS - 1; i++)
		values[i] = random[i] & 31;
	values[KEY_SYMBOLS - 1] = LuhnCheckValue(values, KEY_SYMBOLS - 1);
	sodium_memzero(random, sizeof(random));

	for (int i = 0; i < KEY_SYMBOLS; i++)
	{
		if (i > 0 && i % LICENSE_KEY_GROUP_LEN == 0)
			appendStringInfoChar(&key, '-');
		appendStringInfoChar(&key, CrockfordAlphabet[values[i]]);
	}
	return key.data;
}

/*
 * If the last KEY_BODY_LEN characters of an upper-cased key are the grouped
 * symbols of a generated key, and what precedes them is empty or a valid
 * prefix and a dash, return the offset of the body; else -1.
 */
static int
GeneratedBodyOffset(const char *key, int len)
{
	int			body = len - KEY_BODY_LEN;

	if (body < 0)
		return -1;
	if (body > 0 && (key[body - 1] != '-' || !PrefixIsValid(key, body - 1)))
		return -1;
	for (int i = 0; i < KEY_BODY_LEN; i++)
	{
		bool		dash_here = (i % (LICENSE_KEY_GROUP_LEN + 1)) == LICENSE_KEY_GROUP_LEN;

		if (dash_here ? key[body + i] != '-' : CrockfordValue(key[body + i]) < 0)
			return -1;
	}
	return body;
}

char *
LicenseKeyCanonical(const char *input, int len)
{
	int			start = 0;
	int			end = len;
	char	   *key;
	int			body;
	int			values[KEY_SYMBOLS];
	int			n = 0;

	while (start < end && isspace((unsigned char) input[start]))
		start++;
	while (end > start && isspace((unsigned char) input[end - 1]))
		end--;
	if (end == start || end - start > LICENSE_KEY_MAX_INPUT)
		return NULL;

	key = palloc(end - start + 1);
	for (int i = start; i < end; i++)
		key[i - start] = pg_toupper((unsigned char) input[i]);
	key[end - start] = '\0';

	body = GeneratedBodyOffset(key, end - start);
	if (body < 0)
		return key;

	for (int i = body; key[i]; i++)
	{
		if (key[i] == '-')
			continue;
		values[n] = CrockfordValue(key[i]);
		key[i] = CrockfordAlphabet[values[n]];
		n++;
	}
	if (LuhnCheckValue(values, KEY_SYMBOLS - 1) != values[KEY_SYMBOLS - 1])
	{
		pfree(key);
		return NULL;
	}
	return key;
}

/*
 * The last four symbols identify a key to its owner; for a short imported key
 * they would give away too much of it, so nothing of it is shown.  An
 * imported key is any text: its last four characters are counted as
 * characters, not bytes, so a multibyte character is never cut in two (which
 * stored a display_key that is not valid in the database encoding).
 */
char *
LicenseKeyDisplay(const char *canonical)
{
	int			nchars = pg_mbstrlen(canonical);
	const char *tail = canonical;

	if (nchars < 3 * LICENSE_KEY_GROUP_LEN)
		return pstrdup("****");
	for (int i = 0; i < nchars - LICENSE_KEY_GROUP_LEN; i++)
		tail += pg_mblen(tail);
	if (strchr(tail, '-') != NULL)
		return pstrdup("****");
	return psprintf("****-%s", tail);
}
