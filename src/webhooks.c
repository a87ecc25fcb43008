/*
 * webhooks.c — Standard Webhooks: secrets, signatures and delivery requests.
 *
 * A delivery is POSTed with webhook-id (the outbox row's message_id, the same
 * on every retry), webhook-timestamp (the attempt's time) and
 * webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed
 * with the base64-decoded part of the endpoint's "whsec_" secret.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <sodium.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "worker.h"

#define WEBHOOK_SECRET_BYTES 24
#define WEBHOOK_MAX_KEY_BYTES 256

/*
 * The signature header value for one message, or NULL (with *error set) when
 * the secret is not valid base64.
 */
char *
WebhookSignature(const char *secret, const char *msg_id, int64 timestamp,
				 const char *body, int bodylen, const char **error)
{
	unsigned char key[WEBHOOK_MAX_KEY_BYTES];
	size_t		keylen = 0;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char		tsbuf[32];
	char		b64[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	crypto_auth_hmacsha256_state state;
	const char *encoded = secret;

	if (strncmp(encoded, "whsec_", 6) == 0)
		encoded += 6;
	if (sodium_base642bin(key, sizeof(key), encoded, strlen(encoded), NULL, &keylen, NULL,
						  sodium_base64_VARIANT_ORIGINAL) != 0 || keylen == 0)
	{
		*error = "the secret is not \"whsec_\" followed by base64";
		return NULL;
	}
	snprintf(tsbuf, sizeof(tsbuf), INT64_FORMAT, timestamp);
	crypto_auth_hmacsha256_init(&state, key, keylen);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) msg_id, strlen(msg_id));
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) tsbuf, strlen(tsbuf));
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) body, bodylen);
	crypto_auth_hmacsha256_final(&state, mac);
	sodium_memzero(key, sizeof(key));
	sodium_bin2base64(b64, sizeof(b64), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	return psprintf("v1,%s", b64);
}

PG_FUNCTION_INFO_V1(sign_webhook);

/* benefits.sign_webhook(secret, msg_id, timestamp, body): the signature header. */
Datum
sign_webhook(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *msg_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		ts = PG_GETARG_INT64(2);
	text	   *body = PG_GETARG_TEXT_PP(3);
	const char *error = NULL;
	char	   *sig;

	sig = WebhookSignature(secret, msg_id, ts, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), &error);
	if (sig == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret is not a valid webhook secret"),
				 errdetail("A webhook secret is \"whsec_\" followed by base64.")));
	PG_RETURN_TEXT_P(cstring_to_text(sig));
}

PG_FUNCTION_INFO_V1(generate_webhook_secret);

/* benefits.generate_webhook_secret(): "whsec_" + base64 of 24 CSPRNG bytes. */
Datum
generate_webhook_secret(PG_FUNCTION_ARGS)
{
	unsigned char raw[WEBHOOK_SECRET_BYTES];
	char		b64[sodium_base64_ENCODED_LEN(WEBHOOK_SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL)];

	if (sodium_init() < 0)
		ereport(ERROR, (errmsg("libsodium could not be initialised")));
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(raw, sizeof(raw));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("whsec_%s", b64)));
}

PG_FUNCTION_INFO_V1(check_webhook_url);

/*
 * benefits.check_webhook_url(url): raise 22023 unless url is an absolute
 * http(s) URL with a host.  A literal private address is refused here too
 * unless benefits.allow_private_network; names are checked at send time,
 * after resolution.
 */
Datum
check_webhook_url(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CURLU	   *h = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	const char *problem = NULL;

	if (h == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (strlen(url) > 2048)
		problem = "it is longer than 2048 characters";
	else if (strpbrk(url, " \t\r\n") != NULL)
		problem = "it contains white space";
	else if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		problem = "it is not an absolute URL";
	else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			 (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0))
		problem = "its scheme is not http or https";
	else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		problem = "it has no host";
	else
	{
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		char		detail[128];
		char	   *bare = host;

		memset(&in4, 0, sizeof(in4));
		memset(&in6, 0, sizeof(in6));
		if (bare[0] == '[')
		{
			bare = pstrdup(host + 1);
			bare[strcspn(bare, "]")] = '\0';
		}
		in4.sin_family = AF_INET;
		in6.sin6_family = AF_INET6;
		if ((inet_pton(AF_INET, bare, &in4.sin_addr) == 1 &&
			 !UrlGuardAddressAllowed((struct sockaddr *) &in4, detail, sizeof(detail))) ||
			(inet_pton(AF_INET6, bare, &in6.sin6_addr) == 1 &&
			 !UrlGuardAddressAllowed((struct sockaddr *) &in6, detail, sizeof(detail))) ||
			pg_strcasecmp(bare, "localhost") == 0)
		{
			if (!benefits_allow_private_network)
				problem = "it names a loopback, private, link-local or reserved address";
		}
	}
	if (scheme)
		curl_free(scheme);
	if (host)
		curl_free(host);
	curl_url_cleanup(h);
	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url is not a valid webhook URL: %s", problem),
				 errhint("Give an absolute http:// or https:// URL of a public host.")));
	PG_RETURN_VOID();
}

/* Build the POST of one webhook delivery; false (job judged) if impossible. */
bool
WebhookBuildRequest(OutboxJob *job)
{
	const char *error = NULL;
	int64		ts = (int64) time(NULL);
	char	   *sig;

	if (job->endpoint_url == NULL || !job->endpoint_enabled)
	{
		job->outcome = JOB_PERMANENT;
		job->error = pstrdup("webhook: the endpoint is disabled");
		return false;
	}
	sig = WebhookSignature(job->endpoint_secret, job->message_id, ts,
						   job->payload, strlen(job->payload), &error);
	if (sig == NULL)
	{
		job->outcome = JOB_PERMANENT;
		job->error = psprintf("webhook: %s", error);
		return false;
	}
	job->method = "POST";
	job->url = job->endpoint_url;
	job->body = job->payload;
	job->headers = list_make4(pstrdup("Content-Type: application/json"),
							  psprintf("webhook-id: %s", job->message_id),
							  psprintf("webhook-timestamp: " INT64_FORMAT, ts),
							  psprintf("webhook-signature: %s", sig));
	return true;
}

/* Judge a delivery: 2xx done, 410 disables the endpoint, the rest per retry.c. */
void
WebhookJudge(OutboxJob *job)
{
	if (job->curl_code == CURLE_OK && job->status >= 200 && job->status < 300)
	{
		job->outcome = JOB_DONE;
		return;
	}
	RetryJudgeFailure(job, "webhook");
	if (job->curl_code == CURLE_OK && job->status == 410)
	{
		job->outcome = JOB_PERMANENT;
		job->endpoint_gone = true;
	}
}
