/*
 * fuzz_license_key.c — license key normalisation (LicenseKeyCanonical), its
 * check symbol and the display form (license_key.c).
 *
 * Input: the key text as typed.  The first byte also picks a prefix for a
 * freshly generated key.  Properties: the canonical form is its own
 * canonical form (idempotent); it is upper case, has no surrounding space and
 * is at most LICENSE_KEY_MAX_INPUT bytes; a generated key (any valid prefix)
 * is canonical already and its check symbol is accepted, and changing any one
 * of its symbols makes the check refuse it; the display form of valid UTF-8
 * is valid UTF-8 and never shows more than the last group of a key.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <ctype.h>

#include "mb/pg_wchar.h"

#include "fuzz.h"
#include "license.h"

static const char Symbols[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Canonicalisation of arbitrary text. */
static void
CheckCanonical(const char *input, int len)
{
	char	   *canonical = LicenseKeyCanonical(input, len);
	char	   *again;
	int			clen;

	if (canonical == NULL)
		return;
	clen = strlen(canonical);
	FuzzCheck(clen > 0 && clen <= LICENSE_KEY_MAX_INPUT, "canonical key of %d bytes", clen);
	FuzzCheck(!isspace((unsigned char) canonical[0]) && !isspace((unsigned char) canonical[clen - 1]),
			  "canonical key \"%s\" keeps surrounding space", canonical);
	for (int i = 0; i < clen; i++)
		FuzzCheck(!(canonical[i] >= 'a' && canonical[i] <= 'z'), "canonical key \"%s\" has lower case", canonical);
	again = LicenseKeyCanonical(canonical, clen);
	FuzzCheck(again != NULL && strcmp(again, canonical) == 0,
			  "not idempotent: \"%s\" -> \"%s\"", canonical, again ? again : "(refused)");
	if (pg_encoding_verifymbstr(PG_UTF8, input, len) == len)
	{
		char	   *display = LicenseKeyDisplay(canonical);
		int			dlen = strlen(display);

		FuzzCheck(pg_encoding_verifymbstr(PG_UTF8, display, dlen) == dlen,
				  "display form of \"%s\" is not valid UTF-8", canonical);
		FuzzCheck(strncmp(display, "****", 4) == 0, "display form \"%s\" shows the start of the key", display);
		FuzzCheck(dlen <= 4 || (display[4] == '-' && pg_mbstrlen(display + 5) == LICENSE_KEY_GROUP_LEN),
				  "display form \"%s\" shows more than one group", display);
	}
}

/* A generated key with the prefix: accepted as it is, and a one-symbol change refused. */
static void
CheckGenerated(const char *prefix, unsigned int position, unsigned int shift)
{
	char	   *key = LicenseKeyGenerate(prefix);
	int			len = strlen(key);
	char	   *canonical = LicenseKeyCanonical(key, len);
	int			body = len - (LICENSE_KEY_GROUPS * (LICENSE_KEY_GROUP_LEN + 1) - 1);
	int			at;
	const char *symbol;
	char	   *typo;

	FuzzCheck(canonical != NULL && strcmp(canonical, key) == 0,
			  "generated key \"%s\" is not canonical: \"%s\"", key, canonical ? canonical : "(refused)");
	/* one symbol of the body replaced by another symbol */
	at = body + (position % (LICENSE_KEY_GROUPS * (LICENSE_KEY_GROUP_LEN + 1) - 1));
	if (key[at] == '-')
		at++;
	symbol = strchr(Symbols, key[at]);
	FuzzCheck(symbol != NULL, "generated key \"%s\" has a non-symbol at %d", key, at);
	typo = pstrdup(key);
	typo[at] = Symbols[((symbol - Symbols) + 1 + shift % 31) % 32];
	FuzzCheck(LicenseKeyCanonical(typo, len) == NULL, "mistyped key \"%s\" (of \"%s\") passes the check", typo, key);
}

/* Prefix of a generated key: letters and digits from the input, 1 to 16 of them, or none. */
static char *
PrefixFrom(const uint8_t *data, size_t size)
{
	char	   *prefix = palloc(17);
	int			n = 0;

	for (size_t i = 1; i < size && n < (data[0] % 17); i++)
		if (isalnum(data[i]))
			prefix[n++] = data[i];
	prefix[n] = '\0';
	return prefix;
}

static void
Body(const uint8_t *data, size_t size)
{
	char	   *input = FuzzString(data, size);

	CheckCanonical(input, strlen(input));
	if (size >= 2)
		CheckGenerated(PrefixFrom(data, size), data[size - 1], data[size - 2]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzRun(Body, data, size);
	return 0;
}
