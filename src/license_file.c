/*
 * license_file.c — the armored, signed envelope of an offline license file.
 *
 *     -----BEGIN BENEFITS LICENSE-----
 *     base64 of the envelope, in lines of 64 characters
 *     -----END BENEFITS LICENSE-----
 *
 * The envelope is {"alg": "ed25519", "kid", "payload", "sig"}: payload is the
 * base64 of the payload's JSON bytes and sig the base64 of the Ed25519
 * signature of exactly those bytes, so a verifier checks the signature before
 * it parses anything it signed.  Apart from the server (no table, no SPI), so
 * test/fuzz builds it alone.
 *
 * Concurrency: a pure function of its arguments.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "license_file.h"

/* base64 (standard alphabet, padded) of bytes, palloc'd. */
static char *
Base64(const unsigned char *bytes, size_t len)
{
	size_t		size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char	   *out = palloc(size);

	sodium_bin2base64(out, size, bytes, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* ,"key":"value" of the envelope. */
static void
EnvelopeMember(StringInfo buf, const char *key, const char *value)
{
	appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

text *
LicenseFile(const char *payload, const char *kid, unsigned char secret[crypto_sign_SECRETKEYBYTES])
{
	unsigned char sig[crypto_sign_BYTES];
	StringInfoData envelope;
	StringInfoData file;
	char	   *encoded;
	size_t		len;

	crypto_sign_detached(sig, NULL, (const unsigned char *) payload, strlen(payload), secret);
	sodium_memzero(secret, crypto_sign_SECRETKEYBYTES);

	initStringInfo(&envelope);
	appendStringInfoString(&envelope, "{\"alg\":\"ed25519\"");
	EnvelopeMember(&envelope, "kid", kid);
	EnvelopeMember(&envelope, "payload", Base64((const unsigned char *) payload, strlen(payload)));
	EnvelopeMember(&envelope, "sig", Base64(sig, sizeof(sig)));
	appendStringInfoChar(&envelope, '}');

	encoded = Base64((const unsigned char *) envelope.data, envelope.len);
	len = strlen(encoded);
	initStringInfo(&file);
	appendStringInfoString(&file, LICENSE_ARMOR_BEGIN);
	for (size_t at = 0; at < len; at += LICENSE_ARMOR_WIDTH)
	{
		appendBinaryStringInfo(&file, encoded + at, Min(LICENSE_ARMOR_WIDTH, len - at));
		appendStringInfoChar(&file, '\n');
	}
	appendStringInfoString(&file, LICENSE_ARMOR_END);
	return cstring_to_text_with_len(file.data, file.len);
}
