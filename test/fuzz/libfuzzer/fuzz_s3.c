/*
 * fuzz_s3.c — SigV4 presigning and URL encoding (s3.c, uri.c).
 *
 * Input: NUL-separated pieces: object key, two unused pieces, one extra
 * query parameter's name and value, POST redirect URL, download file name,
 * then control bytes (method, URL style, settings, expiry, signing time,
 * size).  What a tenant or customer sends is fuzzed; the storage settings
 * (benefits.s3_*, set by the server's administrator) are chosen from a list
 * of valid ones, buckets that are no host name among them, and one in
 * LATIN1 (a setting in a LATIN1 database is that encoding's bytes: the POST
 * policy refuses it, where it read past its end before).
 * Properties:
 *  - UriEncode emits only unreserved characters (and '/' when kept) and
 *    %XX with upper-case hex, and decodes back to its input;
 *  - a presigned URL's path and query hold only unreserved characters and
 *    %XX (and the path '/'), the query parameters are sorted as SigV4
 *    requires, and its X-Amz-Signature is the one an independent SigV4
 *    computation here gives for the URL as sent (method, path, query, host);
 *  - with the automatic URL style no bucket adds a character outside
 *    [a-z0-9.-] to the host, and signing again, after signing with other
 *    settings, gives the same URL (the signing key cache);
 *  - a POST policy is ASCII JSON text without control characters;
 *  - a Content-Disposition value holds no control character, its quoted
 *    name no quote or backslash, and its RFC 5987 name only attr-chars and %XX;
 *  - a URL UriRedirectProblem accepts (OAuth and upload redirects) is at
 *    most its length, https with a host name of letters, digits, hyphens
 *    and dots (and a port of 1 to 65535), or http to 127.0.0.1 or
 *    localhost, and holds no space, control, quote, angle bracket,
 *    backslash, fragment or non-ASCII byte.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <sodium.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "s3.h"
#include "uri.h"

static bool
Unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_' || c == '.' || c == '~';
}

static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Checks S[0..len) is unreserved, OTHER or %XX; returns its decoding (palloc'd). */
static char *
CheckEncoded(const char *s, size_t len, const char *other, const char *what)
{
	char	   *out = palloc(len + 1);
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '%')
		{
			FuzzCheck(i + 2 < len, "%s: truncated %%XX in \"%.*s\"", what, (int) len, s);
			FuzzCheck(HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0,
					  "%s: bad %%XX in \"%.*s\"", what, (int) len, s);
			out[n++] = (char) (HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
			i += 2;
		}
		else
		{
			FuzzCheck(Unreserved(s[i]) || (s[i] != '\0' && strchr(other, s[i]) != NULL),
					  "%s: raw character 0x%02x in \"%.*s\"", what, (unsigned char) s[i], (int) len, s);
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return out;
}

/* UriEncode of arbitrary text, both modes. */
static void
CheckUriEncode(const char *s)
{
	for (int keep = 0; keep <= 1; keep++)
	{
		StringInfoData buf;
		char	   *decoded;

		initStringInfo(&buf);
		UriEncode(&buf, s, keep);
		decoded = CheckEncoded(buf.data, buf.len, keep ? "/" : "", "UriEncode");
		FuzzCheck(strcmp(decoded, s) == 0, "UriEncode does not decode back");
	}
}

static void
Hex(const unsigned char *bytes, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

static void
Hmac(const unsigned char *key, size_t keylen, const char *msg, unsigned char out[32])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *) msg, strlen(msg));
	crypto_auth_hmacsha256_final(&st, out);
}

/* The SigV4 checks of a presigned URL, against CONFIG and METHOD. */
static void
CheckPresignedUrl(const char *url, const S3Config *config, const char *method, bool auto_style)
{
	const char *authority = strstr(url, "://");
	const char *path;
	const char *query;
	const char *sig;
	char	   *host;
	char	   *canonical_query;
	char	   *prev = NULL;
	char	   *amz_date = NULL;
	StringInfoData canonical;
	StringInfoData to_sign;
	unsigned char digest[32];
	char		digest_hex[65];
	unsigned char k[32];
	unsigned char k2[32];
	unsigned char mac[32];
	char		mac_hex[65];
	char	   *secret;
	char		date[9];

	FuzzCheck(authority != NULL, "no scheme in %s", url);
	authority += 3;
	path = strchr(authority, '/');
	FuzzCheck(path != NULL, "no path in %s", url);
	host = pnstrdup(authority, path - authority);
	query = strchr(path, '?');
	FuzzCheck(query != NULL, "no query in %s", url);
	CheckEncoded(path, query - path, "/", "path");
	query++;
	sig = strstr(query, "&X-Amz-Signature=");
	FuzzCheck(sig != NULL && strlen(sig) == strlen("&X-Amz-Signature=") + 64, "no signature at the end of %s", url);
	canonical_query = pnstrdup(query, sig - query);

	/* parameters: name=value, encoded, sorted */
	for (char *param = canonical_query, *next; param != NULL; param = next)
	{
		char	   *eq;

		next = strchr(param, '&');
		if (next)
			*next++ = '\0';
		eq = strchr(param, '=');
		FuzzCheck(eq != NULL, "parameter without '=' in %s", url);
		CheckEncoded(param, eq - param, "", "query name");
		CheckEncoded(eq + 1, strlen(eq + 1), "", "query value");
		/* by name, then by value (SigV4) */
		*eq = '\0';
		FuzzCheck(prev == NULL || strcmp(prev, param) < 0 ||
				  (strcmp(prev, param) == 0 && strcmp(prev + strlen(prev) + 1, eq + 1) <= 0),
				  "query not sorted: %s before %s", prev, param);
		if (strcmp(param, "X-Amz-Date") == 0)
			amz_date = eq + 1;
		prev = param;
	}
	FuzzCheck(amz_date != NULL && strlen(amz_date) == 16, "no X-Amz-Date in %s", url);
	canonical_query = pnstrdup(query, sig - query);

	if (auto_style && strspn(config->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") < strlen(config->bucket))
	{
		/* a bucket that is no host name goes into the path */
		StringInfoData segment;

		initStringInfo(&segment);
		appendStringInfoChar(&segment, '/');
		UriEncode(&segment, config->bucket, false);
		appendStringInfoChar(&segment, '/');
		FuzzCheck(strstr(path, segment.data) != NULL, "bucket \"%s\" is not in the path of %s", config->bucket, url);
	}

	/* the signature, computed here from the URL as sent */
	initStringInfo(&canonical);
	appendStringInfo(&canonical, "%s\n%.*s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD",
					 method, (int) (strchr(path, '?') - path), path, canonical_query, host);
	crypto_hash_sha256(digest, (const unsigned char *) canonical.data, canonical.len);
	Hex(digest, 32, digest_hex);
	memcpy(date, amz_date, 8);
	date[8] = '\0';
	initStringInfo(&to_sign);
	appendStringInfo(&to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz_date, date, config->region,
					 digest_hex);
	secret = psprintf("AWS4%s", config->secret_access_key);
	Hmac((unsigned char *) secret, strlen(secret), date, k);
	Hmac(k, 32, config->region, k2);
	Hmac(k2, 32, "s3", k);
	Hmac(k, 32, "aws4_request", k2);
	Hmac(k2, 32, to_sign.data, mac);
	Hex(mac, 32, mac_hex);
	FuzzCheck(strcmp(mac_hex, sig + strlen("&X-Amz-Signature=")) == 0,
			  "X-Amz-Signature is not SigV4's for the URL as sent: %s", url);
}

static void
CheckPost(const S3Config *config, const char *key, int64 size, const char *redirect, int expires, TimestampTz at)
{
	S3PostForm *form = S3PresignPost(config, key, size, redirect, expires, at);
	const char *b64 = NULL;
	unsigned char *policy;
	size_t		len;

	for (int i = 0; i < S3_POST_FIELDS; i++)
		if (strcmp(form->names[i], "policy") == 0)
			b64 = form->values[i];
	FuzzCheck(b64 != NULL, "no policy field");
	policy = palloc(strlen(b64) + 1);
	FuzzCheck(sodium_base642bin(policy, strlen(b64) + 1, b64, strlen(b64), NULL, &len, NULL,
								sodium_base64_VARIANT_ORIGINAL) == 0, "policy is not base64");
	FuzzCheck(len >= 2 && policy[0] == '{' && policy[len - 1] == '}', "policy is not a JSON object");
	for (size_t i = 0; i < len; i++)
		FuzzCheck(policy[i] >= ' ' && policy[i] < 0x7f, "policy byte 0x%02x at %zu", policy[i], i);
}

static void
CheckContentDisposition(const char *filename)
{
	char	   *value = S3ContentDisposition("attachment", filename);
	const char *quoted = strstr(value, "filename=\"") + strlen("filename=\"");
	const char *close = strchr(quoted, '"');
	const char *ext = strstr(close, "filename*=UTF-8''");

	for (const char *c = value; *c; c++)
		FuzzCheck((unsigned char) *c >= ' ' && *c != 0x7f, "control character in Content-Disposition");
	FuzzCheck(close != NULL && (close[1] == '\0' || strncmp(close, "\"; filename*=UTF-8''", 20) == 0),
			  "quoted file name is not closed where it should be: %s", value);
	for (const char *c = quoted; c < close; c++)
		FuzzCheck(*c != '\\' && (unsigned char) *c < 0x80, "raw \\ or non-ASCII in the quoted name: %s", value);
	if (ext)
	{
		ext += strlen("filename*=UTF-8''");
		CheckEncoded(ext, strlen(ext), "!#$&+^`|", "filename*");
	}
}

/* Dot-separated non-empty labels of letters, digits and hyphens. */
static bool
IsHostName(const char *host, size_t len)
{
	if (len == 0 || host[0] == '.' || host[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
			  (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || (host[i] == '.' && host[i + 1] != '.')))
			return false;
	return true;
}

static void
CheckRedirect(const char *uri)
{
	int			max_len = 2048;
	const char *host;
	size_t		host_len;
	const char *after;

	if (UriRedirectProblem(uri, max_len) != NULL)
		return;
	FuzzCheck(strlen(uri) <= (size_t) max_len, "a redirect longer than %d bytes accepted", max_len);
	for (const char *c = uri; *c; c++)
		FuzzCheck((unsigned char) *c > ' ' && (unsigned char) *c < 0x7f && strchr("\\#\"<>", *c) == NULL,
				  "redirect with byte 0x%02x accepted: %s", (unsigned char) *c, uri);
	if (pg_strncasecmp(uri, "https://", 8) == 0)
		host = uri + 8;
	else
	{
		FuzzCheck(pg_strncasecmp(uri, "http://", 7) == 0, "redirect of another scheme accepted: %s", uri);
		host = uri + 7;
		host_len = strcspn(host, ":/");
		FuzzCheck(host_len == 9 && (pg_strncasecmp(host, "127.0.0.1", 9) == 0 || pg_strncasecmp(host, "localhost", 9) == 0),
				  "plain http redirect to another host accepted: %s", uri);
	}
	host_len = strcspn(host, ":/");
	FuzzCheck(IsHostName(host, host_len), "redirect host is no host name: %s", uri);
	after = host + host_len;
	if (*after == ':')
	{
		long		port = strtol(after + 1, NULL, 10);

		FuzzCheck(port >= 1 && port <= 65535 && strspn(after + 1, "0123456789") >= 1,
				  "redirect port out of range accepted: %s", uri);
		after += 1 + strspn(after + 1, "0123456789");
	}
	FuzzCheck(*after == '\0' || *after == '/', "redirect authority followed by '%c': %s", *after, uri);
}

static void
Body(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "PUT", "POST", "HEAD", "DELETE", "PATCH"};
	static const char *const endpoints[] = {NULL, "", "https://s3.example.com", "https://s3.example.com:443/",
		"http://127.0.0.1:9000", "http://localhost:9000/minio/", "https://[::1]:8443/store", "https://10.0.0.1",
	"https://storage.example.com/a%20b/"};
	static const char *const regions[] = {"us-east-1", "eu-west-1", "auto", "garage"};
	static const char *const buckets[] = {"my-bucket", "my.bucket", "ab", "a-very-long-bucket-name-x", "MyBucket",
		"my_bucket", "192.168.5.4", "-bucket", "bucket-", "b..b", "files", "a.b.c.d",
	"x123456789012345678901234567890123456789012345678901234567890123",
	"buck\xe9"};				/* LATIN1 "bucké": a setting in a LATIN1 database */
	char	   *p[9];
	const unsigned char *ctl;
	S3Config	config;
	S3Config	other;
	S3QueryParam param;
	const char *method;
	int			expires;
	TimestampTz at;
	int64		upload_size;
	char	   *url;

	FuzzSplit(data, size, p, 9);
	CheckUriEncode(p[0]);
	CheckContentDisposition(p[7]);
	CheckRedirect(p[6]);

	ctl = (const unsigned char *) p[8];
	if (strlen(p[8]) < 14)
		return;
	config.endpoint = endpoints[ctl[12] % lengthof(endpoints)];
	config.region = regions[(ctl[12] >> 4) % lengthof(regions)];
	config.bucket = buckets[ctl[13] % lengthof(buckets)];
	config.access_key_id = "AKIDFUZZ";
	config.secret_access_key = "fuzz-secret";
	config.url_style = (S3UrlStyle) (ctl[1] % 3);
	method = methods[ctl[0] % lengthof(methods)];
	expires = ((uint32) ctl[2] << 16 | (uint32) ctl[3] << 8 | ctl[4]) % (S3_MAX_EXPIRES + 2);
	/* seconds since 2000 up to about 2136 */
	at = (TimestampTz) ((uint32) ctl[5] << 24 | (uint32) ctl[6] << 16 | (uint32) ctl[7] << 8 | ctl[8]) * USECS_PER_SEC;
	upload_size = ((int64) ctl[9] << 32 | (int64) ctl[10] << 24 | ctl[11]) - 16;
	param.name = p[4];
	param.value = p[5];

	url = S3PresignUrl(&config, method, p[0], expires, at, &param, p[4][0] ? 1 : 0);
	CheckPresignedUrl(url, &config, method, config.url_style == S3_URL_AUTO);
	/* the signing key cache: another secret in between, then the same URL again */
	other = config;
	other.secret_access_key = "other-secret";
	(void) S3PresignUrl(&other, method, p[0], expires, at, &param, p[4][0] ? 1 : 0);
	FuzzCheck(strcmp(S3PresignUrl(&config, method, p[0], expires, at, &param, p[4][0] ? 1 : 0), url) == 0,
			  "signing again gives another URL");

	CheckPost(&config, p[0], upload_size, p[6], expires, at);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzRun(Body, data, size);
	return 0;
}
