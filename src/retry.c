/*
 * retry.c — what a failed attempt means and when to try again.
 *
 * 429 and 5xx answers, timeouts and connection errors are transient: the job
 * is retried with exponential backoff and jitter, or later when the server
 * says so (Retry-After, X-RateLimit-Reset, Discord's JSON retry_after).  A
 * refused destination, a redirect and other 4xx answers are permanent.
 * A provider's rate-limit answer also pauses every job to that host until then.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <math.h>
#include <time.h>

#include "common/pg_prng.h"
#include "utils/timestamp.h"

#include "worker.h"

/* Is this HTTP status worth retrying? */
bool
RetryIsTransientStatus(long status)
{
	return status == 408 || status == 425 || status == 429 || status >= 500;
}

/* Discord's rate-limit body: {"retry_after": 1.234, ...}; -1 if absent. */
static double
JsonRetryAfter(const char *body)
{
	const char *p = body ? strstr(body, "\"retry_after\"") : NULL;
	char	   *end;
	double		v;

	if (p == NULL)
		return -1;
	p += strlen("\"retry_after\"");
	while (*p == ' ' || *p == ':' || *p == '\t')
		p++;
	v = strtod(p, &end);
	return (end != p && v >= 0) ? v : -1;
}

/*
 * Milliseconds until the next attempt: exponential backoff with jitter (half
 * the step fixed, half random), or the server's own figure when it gave one
 * and it is later.  A server figure is honoured up to a day.
 */
double
RetryDelayMs(OutboxJob *job)
{
	double		step = (double) benefits_retry_initial_delay * pow(2.0, Max(job->attempts - 1, 0));
	double		backoff;
	double		hint = -1;
	double		body_hint = JsonRetryAfter(job->response.data);

	step = Min(step, (double) benefits_retry_max_delay);
	backoff = step / 2 + pg_prng_double(&pg_global_prng_state) * step / 2;

	if (job->retry_after >= 0)
		hint = job->retry_after * 1000.0;
	if (body_hint >= 0)
		hint = Max(hint, body_hint * 1000.0);
	if (job->ratelimit_reset > 0 && (job->ratelimit_remaining == 0 || job->status == 429))
		hint = Max(hint, (job->ratelimit_reset - (double) time(NULL)) * 1000.0);
	if (hint >= 0)
	{
		/* a little jitter so a burst of limited jobs does not return at once */
		hint += pg_prng_double(&pg_global_prng_state) * Min(1000.0, hint / 10 + 1);
		return Min(Max(hint, backoff / 4), 86400000.0);
	}
	return backoff;
}

/*
 * Classify an attempt that did not succeed: sets outcome, delay and error.
 * `what` names the request for the error message.
 */
void
RetryJudgeFailure(OutboxJob *job, const char *what)
{
	StringInfoData msg;

	initStringInfo(&msg);
	if (job->refused_address)
	{
		appendStringInfo(&msg, "%s: %s", what, job->refused_detail);
		job->outcome = JOB_PERMANENT;
	}
	else if (job->curl_code != CURLE_OK && job->mail_from != NULL && job->status >= 400)
	{
		/* an SMTP server's reply (RFC 5321): 4xx transient, 5xx permanent */
		appendStringInfo(&msg, "%s: SMTP %ld: %s", what, job->status, job->curl_error);
		job->outcome = job->status >= 500 ? JOB_PERMANENT : JOB_RETRY;
	}
	else if (job->curl_code != CURLE_OK)
	{
		appendStringInfo(&msg, "%s: %s", what, job->curl_error);
		switch (job->curl_code)
		{
			case CURLE_UNSUPPORTED_PROTOCOL:
			case CURLE_URL_MALFORMAT:
				job->outcome = JOB_PERMANENT;
				break;
			default:
				/* timeouts, resets, refused or failed connections, DNS */
				job->outcome = JOB_RETRY;
				break;
		}
	}
	else
	{
		int			n = Min(job->response.len, 300);

		appendStringInfo(&msg, "%s: HTTP %ld", what, job->status);
		if (n > 0)
		{
			appendStringInfoString(&msg, ": ");
			appendBinaryStringInfo(&msg, job->response.data, n);
		}
		if (RetryIsTransientStatus(job->status) ||
			(job->status == 403 && (job->ratelimit_remaining == 0 || job->retry_after >= 0)))
			job->outcome = JOB_RETRY;	/* 403 with rate-limit headers: GitHub's limits */
		else
			job->outcome = JOB_PERMANENT;
	}
	/* the text goes into a text column: keep printable ASCII only, so a
	 * body in another encoding or with NULs cannot break the recording */
	for (int i = 0; i < msg.len; i++)
		if ((unsigned char) msg.data[i] < 0x20 || (unsigned char) msg.data[i] > 0x7e)
			msg.data[i] = '?';
	job->error = msg.data;
	if (job->outcome == JOB_RETRY)
		job->delay_ms = RetryDelayMs(job);
}

/*
 * Hosts that answered "rate limited" and until when: further jobs to them
 * wait (in memory, per worker; a restart forgets, and the next 429 teaches
 * again).  A small table: when full, the entry ending soonest is replaced.
 */
#define HOST_PAUSES 32

typedef struct HostPause
{
	char		host[256];		/* scheme://authority */
	TimestampTz until;
} HostPause;

static HostPause host_pauses[HOST_PAUSES];

/* The scheme://authority part of a URL, the unit a rate limit applies to. */
static void
UrlHost(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");
	size_t		n;

	p = p ? p + 3 : url;
	n = (p - url) + strcspn(p, "/?#");
	strlcpy(out, url, Min(n + 1, len));
}

/*
 * After a rate-limited answer of GitHub or Discord (429, or GitHub's 403
 * with its rate-limit headers), hold every provider job to that host until
 * the job's own retry time.  Not for webhooks: a tenant's receiver must not
 * be able to hold the deliveries of others sharing its host.
 */
void
RetryPauseHost(OutboxJob *job)
{
	char		host[256];
	TimestampTz until;
	HostPause  *slot = NULL;

	if (strcmp(job->kind, "webhook") == 0 ||
		job->outcome != JOB_RETRY || job->url == NULL || job->curl_code != CURLE_OK ||
		!(job->status == 429 ||
		  (job->status == 403 && (job->ratelimit_remaining == 0 || job->retry_after >= 0))))
		return;
	UrlHost(job->url, host, sizeof(host));
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64) job->delay_ms);
	for (int i = 0; i < HOST_PAUSES; i++)
	{
		if (strcmp(host_pauses[i].host, host) == 0)
		{
			slot = &host_pauses[i];
			break;
		}
		if (slot == NULL || host_pauses[i].until < slot->until)
			slot = &host_pauses[i];
	}
	if (strcmp(slot->host, host) != 0)
	{
		strlcpy(slot->host, host, sizeof(slot->host));
		slot->until = 0;
	}
	if (until > slot->until)
	{
		slot->until = until;
		ereport(LOG, (errmsg("benefits: %s is rate limited; its jobs wait %.0f ms", host, job->delay_ms)));
	}
}

/* Milliseconds until this URL's host may be called again, 0 if now. */
double
RetryHostPausedMs(const char *url)
{
	char		host[256];
	TimestampTz now = GetCurrentTimestamp();

	UrlHost(url, host, sizeof(host));
	for (int i = 0; i < HOST_PAUSES; i++)
		if (host_pauses[i].until > now && strcmp(host_pauses[i].host, host) == 0)
			return (double) (host_pauses[i].until - now) / 1000.0;
	return 0;
}
