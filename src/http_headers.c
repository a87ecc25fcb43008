/*
 * http_headers.c — what the worker reads of a response's headers: when to
 * try again (Retry-After, GitHub's X-RateLimit-Reset and
 * X-RateLimit-Remaining) and the paging of GitHub's lists (Link).
 *
 * Runs inside libcurl's header callback, outside any transaction: nothing
 * here raises an error; memory is allocated with MCXT_ALLOC_NO_OOM and a
 * failure aborts the one transfer.  Every value comes from a provider or a
 * receiver and is read with its bounds: a line longer than 511 bytes is
 * read only if it is a Link header, and a page number is at most 1,000,000.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <strings.h>
#include <time.h>

#include "worker.h"

/* Does header line "Name: value" have this name?  Returns the value. */
static const char *
HeaderValue(const char *line, size_t len, const char *name)
{
	size_t		nlen = strlen(name);

	if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
		return NULL;
	line += nlen + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/* Does [start, end) hold needle? */
static bool
SpanContains(const char *start, const char *end, const char *needle)
{
	size_t		n = strlen(needle);

	for (; start + n <= end; start++)
		if (strncmp(start, needle, n) == 0)
			return true;
	return false;
}

/* The page=N query parameter of the URL [url, end), or 0. */
static int
LinkUrlPage(const char *url, const char *end)
{
	const char *q;

	for (q = url; q + 6 <= end; q++)
	{
		if ((*q == '?' || *q == '&') && strncmp(q + 1, "page=", 5) == 0)
		{
			int			page = 0;

			for (q += 6; q < end && *q >= '0' && *q <= '9'; q++)
			{
				page = page * 10 + (*q - '0');
				if (page > 1000000)
					return 0;
			}
			return (q == end || *q == '&' || *q == '#') ? page : 0;
		}
	}
	return 0;
}

/*
 * The paging of GitHub's lists, from a Link header (RFC 8288):
 * <url>; rel="next", <url>; rel="last".  Sets whether there is a next page
 * and the number of the last one.
 */
static void
HttpLinkHeader(OutboxJob *job, const char *value)
{
	const char *p = value;

	job->link_next = false;
	job->link_last_page = 0;
	while ((p = strchr(p, '<')) != NULL)
	{
		const char *url = p + 1;
		const char *url_end = strchr(url, '>');
		const char *params_end;

		if (url_end == NULL)
			return;
		params_end = strchr(url_end, ',');
		if (params_end == NULL)
			params_end = url_end + strlen(url_end);
		if (SpanContains(url_end, params_end, "rel=\"next\""))
			job->link_next = true;
		if (SpanContains(url_end, params_end, "rel=\"last\""))
			job->link_last_page = LinkUrlPage(url, url_end);
		p = params_end;
	}
}

/*
 * Read one header line of a response (libcurl's CURLOPT_HEADERFUNCTION,
 * with the line's bytes, not NUL-terminated): the rate-limit and paging
 * headers.  Returns len, or 0 to abort the transfer (out of memory).
 */
size_t
HttpHeaderLine(OutboxJob *job, const char *buffer, size_t len)
{
	char		line[512];
	const char *v;

	if (len >= sizeof(line))
	{
		/* only a long Link header matters among long lines */
		if (len > 5 && strncasecmp(buffer, "link:", 5) == 0)
		{
			char	   *copy = palloc_extended(len + 1, MCXT_ALLOC_NO_OOM);

			if (copy == NULL)
				return 0;
			memcpy(copy, buffer, len);
			copy[len] = '\0';
			HttpLinkHeader(job, HeaderValue(copy, len, "link"));
			pfree(copy);
		}
		return len;
	}
	memcpy(line, buffer, len);
	line[len] = '\0';
	/* a new status line (e.g. after 100 Continue) starts a new header set */
	if (strncmp(line, "HTTP/", 5) == 0)
	{
		job->retry_after = -1;
		job->ratelimit_reset = -1;
		job->ratelimit_remaining = -1;
		job->link_next = false;
		job->link_last_page = 0;
		return len;
	}
	if ((v = HeaderValue(line, len, "retry-after")) != NULL)
	{
		char	   *end;
		double		secs = strtod(v, &end);

		if (end != v && secs >= 0)
			job->retry_after = secs;
		else
		{
			/* an HTTP-date */
			time_t		when = curl_getdate(v, NULL);

			if (when > 0)
				job->retry_after = Max(0, (double) (when - time(NULL)));
		}
	}
	else if ((v = HeaderValue(line, len, "x-ratelimit-reset")) != NULL)
		job->ratelimit_reset = strtod(v, NULL);
	else if ((v = HeaderValue(line, len, "x-ratelimit-remaining")) != NULL)
	{
		long		remaining = strtol(v, NULL, 10);

		if (remaining >= 0)
			job->ratelimit_remaining = (int) Min(remaining, (long) INT_MAX);
	}
	else if ((v = HeaderValue(line, len, "link")) != NULL)
		HttpLinkHeader(job, v);
	return len;
}
