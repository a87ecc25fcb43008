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

#include "common/base64.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "license_file.h"

/*
 * Appends the base64 (standard alphabet, padded) of bytes: PostgreSQL's
 * encoder, several times faster than libsodium's constant-time one, which
 * nothing secret here needs (the payload is what the file shows, and the
 * signature is public).
 */
static void
AppendBase64(StringInfo buf, const unsigned char *bytes, size_t len)
{
	int			size = pg_b64_enc_len((int) len);
	int			written;

	enlargeStringInfo(buf, size);
	written = pg_b64_encode((const char *) bytes, (int) len, buf->data + buf->len, size);
	if (written < 0)
		elog(ERROR, "could not encode a license file in base64");
	buf->len += written;
	buf->data[buf->len] = '\0';
}

/*
 * ,"key":"base64 of bytes" of the envelope: base64 holds no character JSON
 * escapes, so it is appended between quotes as it is.
 */
static void
EnvelopeBase64Member(StringInfo buf, const char *key, const unsigned char *bytes, size_t len)
{
	appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoString(buf, ":\"");
	AppendBase64(buf, bytes, len);
	appendStringInfoChar(buf, '"');
}

text *
LicenseFile(const char *payload, const char *kid, unsigned char secret[crypto_sign_SECRETKEYBYTES])
{
	unsigned char sig[crypto_sign_BYTES];
	StringInfoData envelope;
	StringInfoData base64;
	StringInfoData file;
	char	   *encoded;
	size_t		len;

	crypto_sign_detached(sig, NULL, (const unsigned char *) payload, strlen(payload), secret);
	sodium_memzero(secret, crypto_sign_SECRETKEYBYTES);

	initStringInfo(&envelope);
	appendStringInfoString(&envelope, "{\"alg\":\"ed25519\",\"kid\":");
	escape_json(&envelope, kid);
	EnvelopeBase64Member(&envelope, "payload", (const unsigned char *) payload, strlen(payload));
	EnvelopeBase64Member(&envelope, "sig", sig, sizeof(sig));
	appendStringInfoChar(&envelope, '}');

	initStringInfo(&base64);
	AppendBase64(&base64, (const unsigned char *) envelope.data, envelope.len);
	encoded = base64.data;
	len = base64.len;
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
