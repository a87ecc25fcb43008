/*
 * s3.c — AWS Signature Version 4 presigned URLs (query-string authentication)
 * for S3-compatible storage, signed with libsodium's SHA-256 and HMAC-SHA256.
 *
 * A presigned URL carries X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
 * X-Amz-Expires, X-Amz-SignedHeaders (always just "host") and
 * X-Amz-Signature in its query string; the payload is UNSIGNED-PAYLOAD.  The
 * canonical request follows the S3 rules: the path is URI-encoded once, with
 * "/" kept, and never normalized; query names and values are URI-encoded
 * (RFC 3986 unreserved characters kept) and sorted by name, then value.
 *
 * Settings: benefits.s3_endpoint (empty = AWS for the region),
 * benefits.s3_region, benefits.s3_bucket, benefits.s3_url_style
 * (auto|virtual|path), benefits.s3_access_key_id,
 * benefits.s3_secret_access_key, benefits.download_url_ttl and
 * benefits.upload_url_ttl.
 *
 * The default style, auto, addresses the bucket in the path when it cannot
 * be a host label: the endpoint's host is an IP address or localhost
 * (bucket.127.0.0.1 resolves nowhere), or the bucket name is not DNS-safe as
 * AWS's SDKs judge it (BucketIsDnsSafe); virtual-hosted style otherwise.
 * virtual and path force their style.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "benefits.h"
#include "s3.h"
#include "uri.h"

static char *s3_endpoint = NULL;
static char *s3_region = NULL;
static char *s3_bucket = NULL;
static char *s3_access_key_id = NULL;
static char *s3_secret_access_key = NULL;
static int	s3_url_style = S3_URL_AUTO;
static int	download_url_ttl = 3600;
static int	upload_url_ttl = 3600;

static const struct config_enum_entry s3_url_style_options[] = {
	{"auto", S3_URL_AUTO, false},
	{"virtual", S3_URL_VIRTUAL, false},
	{"path", S3_URL_PATH, false},
	{NULL, 0, false}
};

/* Registers the storage settings; called from _PG_init. */
void
S3Init(void)
{
	DefineCustomStringVariable("benefits.s3_endpoint",
							   "Base URL of the S3-compatible storage (empty: AWS for benefits.s3_region).",
							   NULL, &s3_endpoint, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.s3_region",
							   "Region used in the signature scope of presigned URLs.",
							   NULL, &s3_region, "us-east-1",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.s3_bucket",
							   "Bucket holding the downloadable files.",
							   NULL, &s3_bucket, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("benefits.s3_url_style",
							 "Addressing of the bucket: auto, virtual (bucket.host) or path (host/bucket).",
							 "auto uses path style for an IP-address or localhost endpoint and for bucket names "
							 "that are not DNS-safe, virtual-hosted style otherwise.",
							 &s3_url_style, S3_URL_AUTO, s3_url_style_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.s3_access_key_id",
							   "Access key id that signs presigned URLs.",
							   NULL, &s3_access_key_id, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.s3_secret_access_key",
							   "Secret access key that signs presigned URLs.",
							   NULL, &s3_secret_access_key, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.download_url_ttl",
							"How long a download URL stays valid.",
							NULL, &download_url_ttl, 3600, 1, S3_MAX_EXPIRES,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.upload_url_ttl",
							"How long an upload URL stays valid.",
							NULL, &upload_url_ttl, 3600, 1, S3_MAX_EXPIRES,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

/* Whether every setting a presigned URL needs is set. */
bool
S3Configured(void)
{
	return s3_bucket && s3_bucket[0] && s3_region && s3_region[0] &&
		s3_access_key_id && s3_access_key_id[0] &&
		s3_secret_access_key && s3_secret_access_key[0];
}

/* Fills CONFIG from the settings, complaining about each one missing. */
void
S3ConfigFromSettings(S3Config *config)
{
	const char *missing = NULL;

	if (s3_bucket == NULL || s3_bucket[0] == '\0')
		missing = "benefits.s3_bucket";
	else if (s3_region == NULL || s3_region[0] == '\0')
		missing = "benefits.s3_region";
	else if (s3_access_key_id == NULL || s3_access_key_id[0] == '\0')
		missing = "benefits.s3_access_key_id";
	else if (s3_secret_access_key == NULL || s3_secret_access_key[0] == '\0')
		missing = "benefits.s3_secret_access_key";
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("file storage is not configured: %s is not set", missing),
				 errhint("A superuser sets the benefits.s3_* settings, for example with ALTER SYSTEM.")));

	config->endpoint = s3_endpoint;
	config->region = s3_region;
	config->bucket = s3_bucket;
	config->access_key_id = s3_access_key_id;
	config->secret_access_key = s3_secret_access_key;
	config->url_style = (S3UrlStyle) s3_url_style;
}

int
S3DownloadUrlTtl(void)
{
	return download_url_ttl;
}

void
S3HexEncode(const unsigned char *bytes, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 0x0f];
	}
	out[2 * len] = '\0';
}


static void
HmacSha256(const unsigned char *key, size_t keylen, const char *msg,
		   unsigned char out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state state;

	crypto_auth_hmacsha256_init(&state, key, keylen);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) msg, strlen(msg));
	crypto_auth_hmacsha256_final(&state, out);
	sodium_memzero(&state, sizeof(state));
}

/*
 * The SigV4 signing key of a date, region and secret:
 *   HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request").
 * Every URL signed the same day under the same settings uses the same key, so
 * the last one derived is kept (with a SHA-256 of what it was derived from,
 * not the secret itself) and the four HMACs are done once a day instead of
 * once per URL.
 */
static void
SigningKey(const S3Config *config, const char *date,
		   unsigned char key[crypto_auth_hmacsha256_BYTES])
{
	static bool have_key = false;
	static unsigned char kept_source[crypto_hash_sha256_BYTES];
	static unsigned char kept_key[crypto_auth_hmacsha256_BYTES];
	unsigned char source[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state state;
	unsigned char k1[crypto_auth_hmacsha256_BYTES];
	char	   *secret_key;

	crypto_hash_sha256_init(&state);
	crypto_hash_sha256_update(&state, (const unsigned char *) date, strlen(date) + 1);
	crypto_hash_sha256_update(&state, (const unsigned char *) config->region, strlen(config->region) + 1);
	crypto_hash_sha256_update(&state, (const unsigned char *) config->secret_access_key,
							  strlen(config->secret_access_key));
	crypto_hash_sha256_final(&state, source);
	sodium_memzero(&state, sizeof(state));
	if (have_key && sodium_memcmp(source, kept_source, sizeof(source)) == 0)
	{
		memcpy(key, kept_key, crypto_auth_hmacsha256_BYTES);
		return;
	}

	secret_key = psprintf("AWS4%s", config->secret_access_key);
	HmacSha256((unsigned char *) secret_key, strlen(secret_key), date, k1);
	explicit_bzero(secret_key, strlen(secret_key));
	HmacSha256(k1, sizeof(k1), config->region, key);
	HmacSha256(key, crypto_auth_hmacsha256_BYTES, "s3", k1);
	HmacSha256(k1, sizeof(k1), "aws4_request", key);
	sodium_memzero(k1, sizeof(k1));

	memcpy(kept_source, source, sizeof(source));
	memcpy(kept_key, key, crypto_auth_hmacsha256_BYTES);
	have_key = true;
}

/*
 * Splits an endpoint URL into scheme, host (with the port unless it is the
 * scheme's default, as the Host header carries it) and path prefix.
 */
static void
ParseEndpoint(const S3Config *config, char **scheme, char **host, char **prefix)
{
	const char *endpoint = config->endpoint;
	const char *rest;
	const char *slash;
	const char *colon;
	char	   *h;

	if (endpoint == NULL || endpoint[0] == '\0')
	{
		*scheme = pstrdup("https");
		if (strcmp(config->region, "us-east-1") == 0)
			*host = pstrdup("s3.amazonaws.com");
		else
			*host = psprintf("s3.%s.amazonaws.com", config->region);
		*prefix = pstrdup("");
		return;
	}

	if (strncmp(endpoint, "https://", 8) == 0)
	{
		*scheme = pstrdup("https");
		rest = endpoint + 8;
	}
	else if (strncmp(endpoint, "http://", 7) == 0)
	{
		*scheme = pstrdup("http");
		rest = endpoint + 7;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefits.s3_endpoint must start with http:// or https://")));

	slash = strchr(rest, '/');
	h = slash ? pnstrdup(rest, slash - rest) : pstrdup(rest);
	if (h[0] == '\0' || strpbrk(h, "?#@ ") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("benefits.s3_endpoint has no valid host")));

	/* Drop a default port: the Host header the client sends omits it. */
	colon = strrchr(h, ':');
	if (colon && strchr(colon, ']') == NULL)
	{
		if ((strcmp(*scheme, "https") == 0 && strcmp(colon, ":443") == 0) ||
			(strcmp(*scheme, "http") == 0 && strcmp(colon, ":80") == 0))
			h[colon - h] = '\0';
	}
	*host = h;

	/* An optional path prefix, without trailing slashes. */
	if (slash)
	{
		char	   *p = pstrdup(slash);
		int			len = strlen(p);

		while (len > 0 && p[len - 1] == '/')
			p[--len] = '\0';
		if (strpbrk(p, "?#") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("benefits.s3_endpoint must not carry a query or fragment")));
		*prefix = p;
	}
	else
		*prefix = pstrdup("");
}

/*
 * Whether an endpoint host (as ParseEndpoint returns it, with a port unless
 * the scheme's default) cannot carry the bucket as a leading label: a
 * bracketed IPv6 address, an IPv4 address (digits and dots only, in any of
 * the forms resolvers accept) or localhost.
 */
static bool
HostTakesNoBucket(const char *host)
{
	const char *colon;
	size_t		len;
	bool		digits_and_dots = true;

	if (host[0] == '[')
		return true;
	colon = strchr(host, ':');
	len = colon ? (size_t) (colon - host) : strlen(host);
	if (len > 0 && host[len - 1] == '.')
		len--;					/* a fully qualified "localhost." */
	if (len == 9 && pg_strncasecmp(host, "localhost", 9) == 0)
		return true;
	for (size_t i = 0; i < len; i++)
		if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
			digits_and_dots = false;
	return len > 0 && digits_and_dots;
}

/*
 * Whether a bucket name may be the first label of a virtual-hosted URL, as
 * AWS's SDKs decide (the S3 endpoint rules' aws.isVirtualHostableS3Bucket):
 * 3 to 63 characters of lowercase letters, digits, hyphens and dots, every
 * dot-separated label non-empty and starting and ending with a letter or
 * digit, not formatted as an IPv4 address; and over https no dot at all, as a
 * wildcard certificate for *.host covers one label only.
 */
static bool
BucketIsDnsSafe(const char *bucket, bool https)
{
	size_t		len = strlen(bucket);
	int			labels = 1;
	bool		short_numeric_labels = true;
	size_t		label_start = 0;

	if (len < 3 || len > 63)
		return false;
	for (size_t i = 0; i <= len; i++)
	{
		char		c = bucket[i];

		if (c == '.' || c == '\0')
		{
			size_t		label_len = i - label_start;

			if (label_len == 0 || bucket[label_start] == '-' || bucket[i - 1] == '-')
				return false;
			if (label_len > 3 || strspn(bucket + label_start, "0123456789") < label_len)
				short_numeric_labels = false;
			if (c == '.')
			{
				if (https)
					return false;
				labels++;
				label_start = i + 1;
			}
		}
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	/* 192.168.5.4 is refused, as the SDKs' IPv4 pattern refuses it. */
	return !(labels == 4 && short_numeric_labels);
}

/* Whether the URL names the bucket in its path rather than in its host. */
static bool
UsePathStyle(const S3Config *config, const char *scheme, const char *host)
{
	switch (config->url_style)
	{
		case S3_URL_PATH:
			return true;
		case S3_URL_VIRTUAL:
			return false;
		case S3_URL_AUTO:
			break;
	}
	return HostTakesNoBucket(host) ||
		!BucketIsDnsSafe(config->bucket, strcmp(scheme, "https") == 0);
}

/*
 * Appends the strings given, up to a NULL; cheaper than a format string on
 * the signing path, which runs for every download URL of every portal call.
 */
static void
AppendStrings(StringInfo buf,...)
{
	va_list		args;
	const char *part;

	va_start(args, buf);
	while ((part = va_arg(args, const char *)) != NULL)
		appendStringInfoString(buf, part);
	va_end(args);
}

typedef struct EncodedParam
{
	char	   *name;
	char	   *value;
} EncodedParam;

static int
EncodedParamCmp(const void *a, const void *b)
{
	const EncodedParam *pa = a;
	const EncodedParam *pb = b;
	int			c = strcmp(pa->name, pb->name);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

static char *
Encoded(const char *s, bool keep_slash)
{
	StringInfoData buf;

	initStringInfo(&buf);
	UriEncode(&buf, s, keep_slash);
	return buf.data;
}

/*
 * SIGNED_AT as SigV4's X-Amz-Date (YYYYMMDDTHHMMSSZ, whole seconds) and as
 * the scope's date (YYYYMMDD).
 */
static void
AmzDate(TimestampTz signed_at, char amz_date[17], char date[9])
{
	pg_time_t	t = timestamptz_to_time_t(signed_at);
	struct pg_tm *tm = pg_gmtime(&t);

	if (tm == NULL || tm->tm_year + 1900 < 1970 || tm->tm_year + 1900 > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("signed_at is out of range")));
	snprintf(amz_date, 17, "%04d%02d%02dT%02d%02d%02dZ",
			 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
			 tm->tm_hour, tm->tm_min, tm->tm_sec);
	memcpy(date, amz_date, 8);
	date[8] = '\0';
}

/* Refuses an object key S3 cannot store (empty, or over 1024 bytes). */
static void
CheckKey(const char *key)
{
	if (key == NULL || key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be empty")));
	if (strlen(key) > 1024)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must be at most 1024 bytes long")));
}

/*
 * Refuses policy text that is not valid UTF-8 (a database in another
 * encoding does not check it): the policy's JSON escaping reads it as UTF-8.
 */
static void
CheckPolicyText(const char *name, const char *value)
{
	if (!pg_verify_mbstr(PG_UTF8, value, strlen(value), true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s must be valid UTF-8", name)));
}

/*
 * Builds the presigned URL.  The canonical request is
 *   METHOD \n URI \n QUERY \n host:HOST \n \n host \n UNSIGNED-PAYLOAD
 * and the string to sign
 *   AWS4-HMAC-SHA256 \n DATE \n SCOPE \n hex(SHA-256(canonical request)),
 * signed with the key derived from the secret, date, region and "s3".
 */
char *
S3PresignUrl(const S3Config *config, const char *method, const char *key,
			 int expires, TimestampTz signed_at,
			 const S3QueryParam *params, int nparams)
{
	char	   *scheme;
	char	   *endpoint_host;
	char	   *prefix;
	char	   *host;
	StringInfoData path;
	StringInfoData query;
	StringInfoData canonical;
	StringInfoData to_sign;
	EncodedParam *encoded;
	int			nencoded = 0;
	char		amz_date[17];
	char		date[9];
	char	   *scope;
	char	   *credential;
	char		expires_text[16];
	unsigned char digest[crypto_hash_sha256_BYTES];
	char		digest_hex[2 * crypto_hash_sha256_BYTES + 1];
	unsigned char signing_key[crypto_auth_hmacsha256_BYTES];
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char		signature[2 * crypto_auth_hmacsha256_BYTES + 1];
	StringInfoData url;

	CheckKey(key);
	if (expires < 1 || expires > S3_MAX_EXPIRES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires must be between 1 second and 7 days")));
	if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
		strcmp(method, "POST") != 0 && strcmp(method, "HEAD") != 0 &&
		strcmp(method, "DELETE") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method must be one of GET, PUT, POST, HEAD or DELETE")));

	ParseEndpoint(config, &scheme, &endpoint_host, &prefix);

	/* Virtual-host style puts the bucket in the host, path style in the path. */
	initStringInfo(&path);
	UriEncode(&path, prefix, true);
	if (UsePathStyle(config, scheme, endpoint_host))
	{
		host = endpoint_host;
		appendStringInfoChar(&path, '/');
		UriEncode(&path, config->bucket, false);
	}
	else
		host = psprintf("%s.%s", config->bucket, endpoint_host);
	appendStringInfoChar(&path, '/');
	UriEncode(&path, key, true);

	AmzDate(signed_at, amz_date, date);
	scope = psprintf("%s/%s/s3/aws4_request", date, config->region);
	credential = psprintf("%s/%s", config->access_key_id, scope);
	snprintf(expires_text, sizeof(expires_text), "%d", expires);

	/* Query parameters, encoded and sorted. */
	encoded = palloc(sizeof(EncodedParam) * (nparams + 5));
	for (int i = 0; i < nparams; i++)
	{
		if (pg_strncasecmp(params[i].name, "X-Amz-", 6) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query parameter \"%s\" is set by the signer", params[i].name)));
		encoded[nencoded].name = Encoded(params[i].name, false);
		encoded[nencoded++].value = Encoded(params[i].value ? params[i].value : "", false);
	}
	encoded[nencoded].name = "X-Amz-Algorithm";
	encoded[nencoded++].value = "AWS4-HMAC-SHA256";
	encoded[nencoded].name = "X-Amz-Credential";
	encoded[nencoded++].value = Encoded(credential, false);
	encoded[nencoded].name = "X-Amz-Date";
	encoded[nencoded++].value = amz_date;
	encoded[nencoded].name = "X-Amz-Expires";
	encoded[nencoded++].value = expires_text;
	encoded[nencoded].name = "X-Amz-SignedHeaders";
	encoded[nencoded++].value = "host";
	qsort(encoded, nencoded, sizeof(EncodedParam), EncodedParamCmp);

	initStringInfo(&query);
	for (int i = 0; i < nencoded; i++)
		AppendStrings(&query, i ? "&" : "", encoded[i].name, "=", encoded[i].value, NULL);

	initStringInfo(&canonical);
	AppendStrings(&canonical, method, "\n", path.data, "\n", query.data, "\nhost:", host,
				  "\n\nhost\nUNSIGNED-PAYLOAD", NULL);
	crypto_hash_sha256(digest, (const unsigned char *) canonical.data, canonical.len);
	S3HexEncode(digest, sizeof(digest), digest_hex);

	initStringInfo(&to_sign);
	AppendStrings(&to_sign, "AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", digest_hex, NULL);

	SigningKey(config, date, signing_key);
	HmacSha256(signing_key, sizeof(signing_key), to_sign.data, mac);
	S3HexEncode(mac, sizeof(mac), signature);
	sodium_memzero(signing_key, sizeof(signing_key));

	initStringInfo(&url);
	AppendStrings(&url, scheme, "://", host, path.data, "?", query.data,
				  "&X-Amz-Signature=", signature, NULL);
	return url.data;
}

/*
 * Appends S as a JSON string the way Python's json.dumps writes it (botocore
 * signs the policy as json.dumps writes it): " and \ escaped, \b \f \n \r \t
 * by name, every other control character, DEL and non-ASCII character as
 * \uXXXX in lower-case hex (surrogate pairs beyond the BMP).
 */
static void
AppendPolicyString(StringInfo buf, const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	appendStringInfoChar(buf, '"');
	while (*p)
	{
		int			len = pg_utf_mblen(p);
		pg_wchar	c = len > 1 ? utf8_to_unicode(p) : *p;

		p += len;
		if (c == '"' || c == '\\')
			appendStringInfo(buf, "\\%c", (char) c);
		else if (c == '\b')
			appendStringInfoString(buf, "\\b");
		else if (c == '\f')
			appendStringInfoString(buf, "\\f");
		else if (c == '\n')
			appendStringInfoString(buf, "\\n");
		else if (c == '\r')
			appendStringInfoString(buf, "\\r");
		else if (c == '\t')
			appendStringInfoString(buf, "\\t");
		else if (c >= ' ' && c < 0x7f)
			appendStringInfoChar(buf, (char) c);
		else if (c < 0x10000)
			appendStringInfo(buf, "\\u%04x", (unsigned int) c);
		else
			appendStringInfo(buf, "\\u%04x\\u%04x", (unsigned int) (0xd800 + ((c - 0x10000) >> 10)),
							 (unsigned int) (0xdc00 + ((c - 0x10000) & 0x3ff)));
	}
	appendStringInfoChar(buf, '"');
}

/* Appends one {"NAME": "VALUE"} condition of a POST policy. */
static void
AppendPolicyCondition(StringInfo buf, const char *name, const char *value)
{
	appendStringInfoString(buf, ", {");
	AppendPolicyString(buf, name);
	appendStringInfoString(buf, ": ");
	AppendPolicyString(buf, value);
	appendStringInfoChar(buf, '}');
}

/*
 * A browser upload form for KEY (SigV4 POST policy).  The policy fixes the
 * bucket, the key, the size to exactly SIZE bytes (content-length-range) and
 * where storage sends the browser afterwards (success_action_redirect), and
 * expires EXPIRES seconds after SIGNED_AT; its conditions come in the order
 * botocore's generate_presigned_post writes them, so both sign the same
 * bytes.  The signature is HMAC-SHA256 of the base64 policy with the day's
 * signing key.
 */
S3PostForm *
S3PresignPost(const S3Config *config, const char *key, int64 size, const char *redirect_url,
			  int expires, TimestampTz signed_at)
{
	S3PostForm *form = palloc0(sizeof(S3PostForm));
	char	   *scheme;
	char	   *endpoint_host;
	char	   *prefix;
	StringInfoData policy;
	StringInfoData url;
	char		amz_date[17];
	char		date[9];
	char		expiry_amz[17];
	char		expiry_date[9];
	char		expiration[21];
	char	   *credential;
	char	   *policy_b64;
	size_t		b64_len;
	unsigned char signing_key[crypto_auth_hmacsha256_BYTES];
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char	   *signature = palloc(2 * crypto_auth_hmacsha256_BYTES + 1);

	CheckKey(key);
	CheckPolicyText("key", key);
	CheckPolicyText("redirect_url", redirect_url);
	/* settings too: in a database of another encoding they are that encoding's bytes */
	CheckPolicyText("benefits.s3_bucket", config->bucket);
	CheckPolicyText("benefits.s3_access_key_id", config->access_key_id);
	CheckPolicyText("benefits.s3_region", config->region);
	/* S3 would replace it with the name the browser sends: the key would not be the one signed */
	if (strstr(key, "${filename}") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not contain \"${filename}\""),
				 errdetail("S3 replaces it in a POST upload with the file name the browser sends.")));
	if (size < 0 || size > S3_MAX_SINGLE_PUT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("size must be between 0 bytes and 5 GiB for a browser upload"),
				 errhint("Upload larger files in parts (create_file's multipart upload).")));
	if (expires < 1 || expires > S3_MAX_EXPIRES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires must be between 1 second and 7 days")));

	AmzDate(signed_at, amz_date, date);
	AmzDate(signed_at + (TimestampTz) expires * USECS_PER_SEC, expiry_amz, expiry_date);
	/* 20260102T030405Z -> 2026-01-02T03:04:05Z */
	snprintf(expiration, sizeof(expiration), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ",
			 expiry_amz, expiry_amz + 4, expiry_amz + 6, expiry_amz + 9,
			 expiry_amz + 11, expiry_amz + 13);
	credential = psprintf("%s/%s/%s/s3/aws4_request", config->access_key_id, date, config->region);

	initStringInfo(&policy);
	appendStringInfoString(&policy, "{\"expiration\": ");
	AppendPolicyString(&policy, expiration);
	appendStringInfoString(&policy, ", \"conditions\": [{");
	AppendPolicyString(&policy, "success_action_redirect");
	appendStringInfoString(&policy, ": ");
	AppendPolicyString(&policy, redirect_url);
	appendStringInfo(&policy, "}, [\"content-length-range\", " INT64_FORMAT ", " INT64_FORMAT "]",
					 size, size);
	AppendPolicyCondition(&policy, "bucket", config->bucket);
	AppendPolicyCondition(&policy, "key", key);
	AppendPolicyCondition(&policy, "x-amz-algorithm", "AWS4-HMAC-SHA256");
	AppendPolicyCondition(&policy, "x-amz-credential", credential);
	AppendPolicyCondition(&policy, "x-amz-date", amz_date);
	appendStringInfoString(&policy, "]}");

	b64_len = sodium_base64_ENCODED_LEN(policy.len, sodium_base64_VARIANT_ORIGINAL);
	policy_b64 = palloc(b64_len);
	sodium_bin2base64(policy_b64, b64_len, (const unsigned char *) policy.data, policy.len,
					  sodium_base64_VARIANT_ORIGINAL);

	SigningKey(config, date, signing_key);
	HmacSha256(signing_key, sizeof(signing_key), policy_b64, mac);
	S3HexEncode(mac, sizeof(mac), signature);
	sodium_memzero(signing_key, sizeof(signing_key));

	/* The bucket's own URL: path style host/bucket, else bucket.host/. */
	ParseEndpoint(config, &scheme, &endpoint_host, &prefix);
	initStringInfo(&url);
	if (UsePathStyle(config, scheme, endpoint_host))
	{
		AppendStrings(&url, scheme, "://", endpoint_host, NULL);
		UriEncode(&url, prefix, true);
		appendStringInfoChar(&url, '/');
		UriEncode(&url, config->bucket, false);
	}
	else
	{
		AppendStrings(&url, scheme, "://", config->bucket, ".", endpoint_host, NULL);
		UriEncode(&url, prefix, true);
		appendStringInfoChar(&url, '/');
	}
	form->url = url.data;

	form->names[0] = "key";
	form->values[0] = pstrdup(key);
	form->names[1] = "success_action_redirect";
	form->values[1] = pstrdup(redirect_url);
	form->names[2] = "x-amz-algorithm";
	form->values[2] = "AWS4-HMAC-SHA256";
	form->names[3] = "x-amz-credential";
	form->values[3] = credential;
	form->names[4] = "x-amz-date";
	form->values[4] = pstrdup(amz_date);
	form->names[5] = "policy";
	form->values[5] = policy_b64;
	form->names[6] = "x-amz-signature";
	form->values[6] = signature;
	return form;
}

/*
 * Content-Disposition for a download: a quoted ASCII fallback name for old
 * clients (RFC 6266) and, when the name is not plain ASCII, the exact name as
 * filename*=UTF-8''percent-encoded (RFC 5987).
 */
char *
S3ContentDisposition(const char *disposition, const char *filename)
{
	static const char hex[] = "0123456789ABCDEF";
	StringInfoData fallback;
	StringInfoData ext;
	bool		plain = true;
	const unsigned char *p;

	initStringInfo(&fallback);
	initStringInfo(&ext);
	for (p = (const unsigned char *) filename; *p; p++)
	{
		unsigned char c = *p;

		if (c >= 0x80)
		{
			/* One "_" per UTF-8 character: skip its continuation bytes. */
			if ((c & 0xC0) != 0x80)
				appendStringInfoChar(&fallback, '_');
			plain = false;
		}
		else if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
		{
			appendStringInfoChar(&fallback, '_');
			plain = false;
		}
		else
			appendStringInfoChar(&fallback, (char) c);

		/* RFC 5987 attr-char is kept, everything else percent-encoded. */
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			strchr("!#$&+-.^_`|~", c) != NULL)
			appendStringInfoChar(&ext, (char) c);
		else
		{
			appendStringInfoChar(&ext, '%');
			appendStringInfoChar(&ext, hex[c >> 4]);
			appendStringInfoChar(&ext, hex[c & 0x0f]);
		}
	}

	if (plain)
		return psprintf("%s; filename=\"%s\"", disposition, fallback.data);
	return psprintf("%s; filename=\"%s\"; filename*=UTF-8''%s",
					disposition, fallback.data, ext.data);
}

/* Seconds in an interval argument, or an error naming the argument. */
static int
IntervalSeconds(Interval *interval, const char *argname)
{
	double		seconds;

	seconds = interval->time / (double) USECS_PER_SEC +
		interval->day * (double) SECS_PER_DAY +
		interval->month * (double) DAYS_PER_MONTH * SECS_PER_DAY;
	if (seconds < 1 || seconds > S3_MAX_EXPIRES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 second and 7 days", argname)));
	return (int) seconds;
}

/* Extra query parameters from a jsonb object of strings (or numbers). */
static S3QueryParam *
ParamsFromJsonb(Jsonb *jb, int *nparams)
{
	S3QueryParam *params;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;
	char	   *name = NULL;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params must be a JSON object")));
	params = palloc0(sizeof(S3QueryParam) * (JB_ROOT_COUNT(jb) + 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			name = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			params[n].name = name;
			if (v.type == jbvString)
				params[n].value = pnstrdup(v.val.string.val, v.val.string.len);
			else if (v.type == jbvNumeric)
				params[n].value = DatumGetCString(DirectFunctionCall1(numeric_out,
																	  NumericGetDatum(v.val.numeric)));
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("params.%s must be a string", name)));
			n++;
		}
	}
	*nparams = n;
	return params;
}

PG_FUNCTION_INFO_V1(presign_s3_url);

/*
 * presign_s3_url(method, key, expires, signed_at, params): a presigned URL
 * for any request on the configured bucket.  For administrators and tests;
 * customers get URLs through file_download_url.
 */
Datum
presign_s3_url(PG_FUNCTION_ARGS)
{
	S3Config	config;
	char	   *method;
	char	   *key;
	int			expires;
	TimestampTz signed_at;
	S3QueryParam *params = NULL;
	int			nparams = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method and key must not be null")));
	method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (char *p = method; *p; p++)
		*p = pg_ascii_toupper((unsigned char) *p);
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	expires = PG_ARGISNULL(2) ? S3DownloadUrlTtl()
		: IntervalSeconds(PG_GETARG_INTERVAL_P(2), "expires");
	signed_at = PG_ARGISNULL(3) ? GetCurrentTransactionStartTimestamp()
		: PG_GETARG_TIMESTAMPTZ(3);
	if (!PG_ARGISNULL(4))
		params = ParamsFromJsonb(PG_GETARG_JSONB_P(4), &nparams);

	S3ConfigFromSettings(&config);
	PG_RETURN_TEXT_P(cstring_to_text(S3PresignUrl(&config, method, key, expires,
												  signed_at, params, nparams)));
}

PG_FUNCTION_INFO_V1(s3_content_disposition);

/* s3_content_disposition(filename, disposition): the header value for a download. */
Datum
s3_content_disposition(PG_FUNCTION_ARGS)
{
	char	   *filename = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *disposition = PG_ARGISNULL(1) ? "attachment" : text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (strcmp(disposition, "attachment") != 0 && strcmp(disposition, "inline") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("disposition must be \"attachment\" or \"inline\"")));
	PG_RETURN_TEXT_P(cstring_to_text(S3ContentDisposition(disposition, filename)));
}

PG_FUNCTION_INFO_V1(file_presigned_get);

/*
 * file_presigned_get(storage_key, name, mime_type, expires): the download URL
 * of one stored file, naming it NAME and serving it as MIME_TYPE.  Used by
 * file_download_url and the portal once access has been checked.
 */
Datum
file_presigned_get(PG_FUNCTION_ARGS)
{
	S3Config	config;
	S3QueryParam params[2];
	int			expires;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	params[0].name = "response-content-disposition";
	params[0].value = S3ContentDisposition("attachment", text_to_cstring(PG_GETARG_TEXT_PP(1)));
	params[1].name = "response-content-type";
	params[1].value = PG_ARGISNULL(2) ? "application/octet-stream"
		: text_to_cstring(PG_GETARG_TEXT_PP(2));
	expires = PG_ARGISNULL(3) ? S3DownloadUrlTtl()
		: IntervalSeconds(PG_GETARG_INTERVAL_P(3), "expires");

	S3ConfigFromSettings(&config);
	PG_RETURN_TEXT_P(cstring_to_text(S3PresignUrl(&config, "GET",
												  text_to_cstring(PG_GETARG_TEXT_PP(0)),
												  expires, GetCurrentTransactionStartTimestamp(),
												  params, 2)));
}

PG_FUNCTION_INFO_V1(s3_presigned_post);

/*
 * s3_presigned_post(key, size, redirect_url, expires, signed_at): a browser
 * upload form for exactly SIZE bytes at KEY, as {url, fields}.  For
 * administrators and tests; file_upload_form gives a registered file's.
 */
Datum
s3_presigned_post(PG_FUNCTION_ARGS)
{
	S3Config	config;
	S3PostForm *form;
	const char *redirect_url;
	const char *problem;
	StringInfoData json;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key, size and redirect_url must not be null")));
	redirect_url = text_to_cstring(PG_GETARG_TEXT_PP(2));
	problem = UriRedirectProblem(redirect_url, 2048);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redirect_url must be an https URL of the application"),
				 errdetail("%s", problem),
				 errhint("Give the URL storage sends the browser to after the upload, e.g. https://app.example/files/uploaded.")));

	S3ConfigFromSettings(&config);
	form = S3PresignPost(&config, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_INT64(1), redirect_url,
						 PG_ARGISNULL(3) ? upload_url_ttl : IntervalSeconds(PG_GETARG_INTERVAL_P(3), "expires"),
						 PG_ARGISNULL(4) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(4));

	initStringInfo(&json);
	appendStringInfoString(&json, "{\"url\": ");
	escape_json(&json, form->url);
	appendStringInfoString(&json, ", \"fields\": {");
	for (int i = 0; i < S3_POST_FIELDS; i++)
	{
		if (i > 0)
			appendStringInfoString(&json, ", ");
		escape_json(&json, form->names[i]);
		appendStringInfoString(&json, ": ");
		escape_json(&json, form->values[i]);
	}
	appendStringInfoString(&json, "}}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}
