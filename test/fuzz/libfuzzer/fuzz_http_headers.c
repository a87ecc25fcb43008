/*
 * fuzz_http_headers.c — the response headers the worker reads
 * (http_headers.c): Retry-After, X-RateLimit-Reset, X-RateLimit-Remaining
 * and the Link header's paging, each line handed over as libcurl does, not
 * NUL-terminated.
 *
 * Input: header lines separated by "\n" (each given to HttpHeaderLine with
 * its "\r\n"), then a NUL and three page numbers as decimal text.
 * Properties:
 *  - every line is consumed whole (the return value is its length);
 *  - retry_after is -1 or not negative; ratelimit_remaining is -1 or not
 *    negative; link_last_page is between 0 and 1,000,000;
 *  - a status line resets what the lines before it set;
 *  - a Link header that this target writes itself, GitHub's way, from the
 *    three page numbers (prev, next, last, first, with a padding that makes
 *    it longer than 512 bytes when the first number is odd) is read back:
 *    rel="next" present, and the last page the one written.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "worker.h"

/* Feed one line as libcurl does: its bytes with CRLF, no NUL after them. */
static void
FeedLine(OutboxJob *job, const char *text, size_t len)
{
	char	   *line = palloc(len + 2);
	size_t		consumed;

	memcpy(line, text, len);
	line[len] = '\r';
	line[len + 1] = '\n';
	consumed = HttpHeaderLine(job, line, len + 2);
	FuzzCheck(consumed == len + 2, "a line of %zu bytes consumed as %zu", len + 2, consumed);
	pfree(line);
}

static void
CheckBounds(const OutboxJob *job)
{
	FuzzCheck(job->retry_after == -1 || job->retry_after >= 0, "retry_after %g", job->retry_after);
	FuzzCheck(job->ratelimit_remaining >= -1, "ratelimit_remaining %d", job->ratelimit_remaining);
	FuzzCheck(job->link_last_page >= 0 && job->link_last_page <= 1000000, "link_last_page %d",
			  job->link_last_page);
}

static void
ResetJob(OutboxJob *job)
{
	memset(job, 0, sizeof(*job));
	FeedLine(job, "HTTP/1.1 200 OK", 15);
	FuzzCheck(job->retry_after == -1 && job->ratelimit_reset == -1 && job->ratelimit_remaining == -1 &&
			  !job->link_next && job->link_last_page == 0, "a status line did not reset the headers");
}

/* A Link header written GitHub's way, read back. */
static void
CheckLinkRoundTrip(const char *numbers)
{
	unsigned long n[3] = {0, 0, 0};
	char	   *p = (char *) numbers;
	OutboxJob	job;
	StringInfoData link;
	int			page, last;

	for (int i = 0; i < 3 && *p; i++)
	{
		n[i] = strtoul(p, &p, 10);
		while (*p == ' ')
			p++;
	}
	last = (int) (n[0] % 999999) + 2;	/* 2 to 1,000,000 */
	page = (int) (n[1] % (last - 1)) + 1;
	initStringInfo(&link);
	appendStringInfoString(&link, "Link: ");
	if (page > 1)
		appendStringInfo(&link, "<https://api.github.com/repositories/%lu/invitations?per_page=100&page=%d>; rel=\"prev\", ",
						 n[2], page - 1);
	appendStringInfo(&link, "<https://api.github.com/%s%lu/invitations?per_page=100&page=%d>; rel=\"next\", ",
					 (n[0] & 1) ? "repositories/00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000/"
					 : "repositories/", n[2], page + 1);
	appendStringInfo(&link, "<https://api.github.com/repositories/%lu/invitations?per_page=100&page=%d>; rel=\"last\"",
					 n[2], last);
	if (page > 1)
		appendStringInfo(&link, ", <https://api.github.com/repositories/%lu/invitations?per_page=100&page=1>; rel=\"first\"",
						 n[2]);
	ResetJob(&job);
	FeedLine(&job, link.data, link.len);
	FuzzCheck(job.link_next, "rel=\"next\" not seen in %s", link.data);
	FuzzCheck(job.link_last_page == last, "last page %d read as %d from %s", last, job.link_last_page, link.data);
	pfree(link.data);
}

static void
Body(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t		lines_len = nul ? (size_t) (nul - data) : size;
	OutboxJob	job;
	size_t		start = 0;

	ResetJob(&job);
	while (start <= lines_len)
	{
		const uint8_t *eol = memchr(data + start, '\n', lines_len - start);
		size_t		end = eol ? (size_t) (eol - data) : lines_len;

		FeedLine(&job, (const char *) data + start, end - start);
		CheckBounds(&job);
		start = end + 1;
	}
	if (nul)
		CheckLinkRoundTrip(FuzzString(nul + 1, size - lines_len - 1));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzRun(Body, data, size);
	return 0;
}
