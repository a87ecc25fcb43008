/*
 * fuzz_license_file.c — the offline license file envelope (license_file.c).
 *
 * Input: the payload text, then (after a NUL) two bytes choosing a position
 * in the file and a replacement byte.  The file is built with a fixed
 * Ed25519 key and read back by an independent, strict verifier written
 * here as an application would: armor lines, canonical base64, the exact
 * envelope members, the known kid, and the signature.  Properties:
 * parse(build(payload)) is the payload, byte for byte; no line is longer
 * than 64 characters; and a file with any one byte changed is refused.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <sodium.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "license_file.h"

static unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
static unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
static char kid[17];

/* The fixed key pair and its kid, made once. */
static void
MakeKey(void)
{
	unsigned char seed[crypto_sign_SEEDBYTES] = {42};
	unsigned char hash[crypto_hash_sha256_BYTES];

	if (kid[0] != '\0')
		return;
	if (sodium_init() < 0)
		abort();
	crypto_sign_seed_keypair(public_key, secret_key, seed);
	crypto_hash_sha256(hash, public_key, sizeof(public_key));
	for (int i = 0; i < 8; i++)
		snprintf(kid + 2 * i, 3, "%02x", hash[i]);
}

/* Strict base64: decodes TEXT of LEN characters into *OUT, or returns false; re-encoding must give TEXT back. */
static bool
StrictBase64(const char *text, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char *bin = palloc(len + 1);
	const char *end;
	size_t		size;
	char	   *again;

	if (sodium_base642bin(bin, len + 1, text, len, NULL, outlen, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		end != text + len)
		return false;
	size = sodium_base64_ENCODED_LEN(*outlen, sodium_base64_VARIANT_ORIGINAL);
	again = palloc(size);
	sodium_bin2base64(again, size, bin, *outlen, sodium_base64_VARIANT_ORIGINAL);
	if (strlen(again) != len || memcmp(again, text, len) != 0)
		return false;
	*out = bin;
	return true;
}

/* Reads "name":"value" at *P (value without quote or backslash); advances *P. */
static bool
Member(const char **p, const char *end, const char *name, const char **value, size_t *len)
{
	size_t		n = strlen(name);
	const char *v;

	if ((size_t) (end - *p) < n + 4 || (*p)[0] != '"' || memcmp(*p + 1, name, n) != 0 ||
		(*p)[n + 1] != '"' || (*p)[n + 2] != ':' || (*p)[n + 3] != '"')
		return false;
	v = *p + n + 4;
	*p = v;
	while (*p < end && **p != '"')
	{
		if (**p == '\\')
			return false;
		(*p)++;
	}
	if (*p >= end)
		return false;
	*value = v;
	*len = *p - v;
	(*p)++;
	return true;
}

/* The verifier: the signed payload of FILE (palloc'd, NUL-terminated), or NULL when refused. */
static char *
Verify(const char *file, size_t filelen)
{
	size_t		begin = strlen(LICENSE_ARMOR_BEGIN);
	size_t		endlen = strlen(LICENSE_ARMOR_END);
	StringInfoData body;
	const char *line;
	const char *stop;
	unsigned char *envelope;
	size_t		envlen;
	const char *p;
	const char *pend;
	const char *value;
	size_t		len;
	unsigned char *payload;
	size_t		payload_len;
	unsigned char *sig;
	size_t		sig_len;
	char	   *result;

	if (filelen < begin + endlen || memcmp(file, LICENSE_ARMOR_BEGIN, begin) != 0 ||
		memcmp(file + filelen - endlen, LICENSE_ARMOR_END, endlen) != 0)
		return NULL;
	initStringInfo(&body);
	stop = file + filelen - endlen;
	for (line = file + begin; line < stop;)
	{
		const char *nl = memchr(line, '\n', stop - line);
		size_t		n;

		if (nl == NULL)
			return NULL;
		n = nl - line;
		/* every line full but the last */
		if (n == 0 || n > LICENSE_ARMOR_WIDTH || (n < LICENSE_ARMOR_WIDTH && nl + 1 != stop))
			return NULL;
		appendBinaryStringInfo(&body, line, n);
		line = nl + 1;
	}
	if (!StrictBase64(body.data, body.len, &envelope, &envlen))
		return NULL;

	p = (const char *) envelope;
	pend = p + envlen;
	if (envlen < 2 || p[0] != '{' || pend[-1] != '}')
		return NULL;
	p++;
	pend--;
	if (!Member(&p, pend, "alg", &value, &len) || len != 7 || memcmp(value, "ed25519", 7) != 0 || *p++ != ',')
		return NULL;
	if (!Member(&p, pend, "kid", &value, &len) || len != strlen(kid) || memcmp(value, kid, len) != 0 || *p++ != ',')
		return NULL;
	if (!Member(&p, pend, "payload", &value, &len) || !StrictBase64(value, len, &payload, &payload_len) ||
		*p++ != ',')
		return NULL;
	if (!Member(&p, pend, "sig", &value, &len) || !StrictBase64(value, len, &sig, &sig_len) ||
		sig_len != crypto_sign_BYTES || p != pend)
		return NULL;
	if (crypto_sign_verify_detached(sig, payload, payload_len, public_key) != 0)
		return NULL;
	result = palloc(payload_len + 1);
	memcpy(result, payload, payload_len);
	result[payload_len] = '\0';
	return result;
}

static void
Body(const uint8_t *data, size_t size)
{
	char	   *parts[2];
	unsigned char secret[crypto_sign_SECRETKEYBYTES];
	text	   *built;
	char	   *file;
	size_t		filelen;
	char	   *payload;
	size_t		at;
	char	   *mutated;

	FuzzSplit(data, size, parts, 2);
	memcpy(secret, secret_key, sizeof(secret));
	built = LicenseFile(parts[0], kid, secret);
	for (size_t i = 0; i < sizeof(secret); i++)
		FuzzCheck(secret[i] == 0, "the secret key was not wiped after signing");
	file = VARDATA(built);
	filelen = VARSIZE(built) - VARHDRSZ;
	for (const char *l = file, *nl; (nl = memchr(l, '\n', file + filelen - l)) != NULL; l = nl + 1)
		FuzzCheck(nl - l <= LICENSE_ARMOR_WIDTH, "a line of %d characters", (int) (nl - l));

	payload = Verify(file, filelen);
	FuzzCheck(payload != NULL, "the verifier refuses a file as built");
	FuzzCheck(strcmp(payload, parts[0]) == 0, "parse(build(x)) != x");

	/* one byte changed */
	at = strlen(parts[1]) >= 2 ? ((unsigned char) parts[1][0] * 256 + (unsigned char) parts[1][1]) % filelen : 0;
	mutated = palloc(filelen);
	memcpy(mutated, file, filelen);
	mutated[at] ^= strlen(parts[1]) >= 3 ? (parts[1][2] | 1) : 1;
	FuzzCheck(Verify(mutated, filelen) == NULL, "a file with byte %zu changed is accepted", at);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MakeKey();
	FuzzRun(Body, data, size);
	return 0;
}
