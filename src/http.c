/*
 * http.c — the worker's HTTP engine: libcurl's multi interface, many
 * requests in flight at once over kept-alive connections.
 *
 * Runs outside any transaction.  Redirects are never followed, only http and
 * https are spoken (smtp and smtps for customer email, benefits.smtp_url),
 * and every new connection's resolved address passes through urlguard.c
 * first.  Callbacks allocate with MCXT_ALLOC_NO_OOM so an
 * out-of-memory condition aborts one transfer instead of longjmp'ing through
 * libcurl.
 *
 * The worker waits on libcurl's sockets and its latch together: libcurl
 * says which sockets it watches, for what, and when its next timeout is due
 * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION); those sockets are kept
 * in an epoll set of our own (added, changed and removed as libcurl says, a
 * system call each, never an error raised inside libcurl), and that epoll
 * descriptor sits in a WaitEventSet with the latch and postmaster death.
 * Only the sockets that are ready are driven (curl_multi_socket_action), so
 * a commit that sets the latch is seen at once even while requests are in
 * flight.  (epoll: Linux, the platform the extension is built for.)
 */
#include "postgres.h"

#include <curl/curl.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "email.h"
#include "worker.h"

/* Response bodies are kept only up to this size (enough for error messages
 * and GitHub's invitation pages). */
#define RESPONSE_LIMIT (1024 * 1024)

static CURLM *multi = NULL;
static int	inflight = 0;
/* the most transfers in flight at once since the last HttpTrim */
static int	inflight_peak = 0;
/* transfers finished since the heap's free pages were last given back */
static int	finished_since_heap_trim = 0;
static TimestampTz last_heap_trim = 0;

/* Finished easy handles, reset and kept for the next requests. */
#define SPARE_HANDLES 512
static CURL *spare[SPARE_HANDLES];
static int	nspare = 0;
static int	configured_host_connections = -1;

/* The sockets libcurl watches, and the wait on them and the latch. */
#define READY_SOCKETS 64
static int	curl_epoll = -1;
static WaitEventSet *wait_set = NULL;
/* when libcurl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT); 0: never */
static TimestampTz curl_deadline = 0;

/*
 * libcurl: watch a socket for reading and/or writing, or stop watching it.
 * socketp is NULL until the socket is in our epoll set (curl_multi_assign).
 */
static int
HttpSocketCallback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		/* fails harmlessly if libcurl has closed it already */
		(void) epoll_ctl(curl_epoll, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = fd;
	if (socketp != NULL || epoll_ctl(curl_epoll, EPOLL_CTL_ADD, fd, &ev) != 0)
	{
		if (epoll_ctl(curl_epoll, EPOLL_CTL_MOD, fd, &ev) != 0)
			return -1;			/* libcurl fails the transfers on this socket */
	}
	curl_multi_assign(multi, fd, (void *) &curl_epoll);
	return 0;
}

/* libcurl: call back after timeout_ms (-1: no timeout wanted). */
static int
HttpTimerCallback(CURLM *m, long timeout_ms, void *userp)
{
	curl_deadline = timeout_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/*
 * Blocks at least this large are mapped on their own and unmapped when freed.
 * Setting it also stops glibc from raising the threshold to the largest
 * block freed so far: after one response of up to RESPONSE_LIMIT the heap
 * would serve such blocks, and the holes they leave keep its pages resident.
 */
#define MMAP_THRESHOLD (128 * 1024)

/* how often HttpTrimHeap gives the heap's free pages back, at most */
#define HEAP_TRIM_INTERVAL_MS 1000

/* Initialise libcurl, and the C heap policy above, once in the worker process. */
void
HttpInit(void)
{
	(void) mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR, (errmsg("benefits: could not initialise libcurl")));
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR, (errmsg("benefits: could not create a libcurl multi handle")));
	curl_epoll = epoll_create1(EPOLL_CLOEXEC);
	if (curl_epoll < 0)
		ereport(ERROR, (errcode_for_socket_access(), errmsg("benefits: epoll_create1 failed: %m")));
	wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, curl_epoll, NULL, NULL);
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, HttpSocketCallback);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, HttpTimerCallback);
}

/* Apply the connection settings (again after a reload). */
static void
HttpConfigure(void)
{
	if (configured_host_connections == benefits_http_max_host_connections)
		return;
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) benefits_http_max_host_connections);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) benefits_http_max_host_connections * 4);
	configured_host_connections = benefits_http_max_host_connections;
}

/* Collect the response body, up to RESPONSE_LIMIT. */
static size_t
HttpWriteBody(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	OutboxJob  *job = (OutboxJob *) userdata;
	size_t		n = size * nmemb;
	size_t		room;

	if (job->response.len >= RESPONSE_LIMIT)
		return n;
	room = Min(n, (size_t) (RESPONSE_LIMIT - job->response.len));
	if (job->response.len + room + 1 > (size_t) job->response.maxlen)
	{
		size_t		newlen = Max((size_t) job->response.maxlen * 2, job->response.len + room + 1);
		char	   *data = repalloc_extended(job->response.data, newlen, MCXT_ALLOC_NO_OOM);

		if (data == NULL)
			return 0;			/* aborts the transfer: CURLE_WRITE_ERROR */
		job->response.data = data;
		job->response.maxlen = newlen;
	}
	memcpy(job->response.data + job->response.len, ptr, room);
	job->response.len += room;
	job->response.data[job->response.len] = '\0';
	return n;
}

/* libcurl: one header line of the response (http_headers.c reads it). */
static size_t
HttpHeader(char *buffer, size_t size, size_t nitems, void *userdata)
{
	return HttpHeaderLine((OutboxJob *) userdata, buffer, size * nitems);
}

/* Open a socket only to an allowed address (see urlguard.c). */
static curl_socket_t
HttpOpenSocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	OutboxJob  *job = (OutboxJob *) clientp;

	if (!UrlGuardAddressAllowed(&address->addr, job->refused_detail, sizeof(job->refused_detail)))
	{
		job->refused_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/*
 * Check the destination again just before each request is sent: a kept-alive
 * connection opened while benefits.allow_private_network was on must not be
 * reused once it is off.
 */
static int
HttpPrereq(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	OutboxJob  *job = (OutboxJob *) clientp;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;

	memset(&in4, 0, sizeof(in4));
	memset(&in6, 0, sizeof(in6));
	in4.sin_family = AF_INET;
	in6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET, primary_ip, &in4.sin_addr) == 1)
	{
		if (UrlGuardAddressAllowed((struct sockaddr *) &in4, job->refused_detail, sizeof(job->refused_detail)))
			return CURL_PREREQFUNC_OK;
	}
	else if (inet_pton(AF_INET6, primary_ip, &in6.sin6_addr) == 1)
	{
		if (UrlGuardAddressAllowed((struct sockaddr *) &in6, job->refused_detail, sizeof(job->refused_detail)))
			return CURL_PREREQFUNC_OK;
	}
	else
		snprintf(job->refused_detail, sizeof(job->refused_detail), "unknown peer address %s", primary_ip);
	job->refused_address = true;
	return CURL_PREREQFUNC_ABORT;
}

/* Escape one URL path segment. */
char *
HttpEscape(const char *segment)
{
	char	   *e = curl_easy_escape(NULL, segment ? segment : "", 0);
	char	   *result;

	if (e == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	result = pstrdup(e);
	curl_free(e);
	return result;
}

/* A list of curl strings: the items, or NULL (no memory). */
static struct curl_slist *
CurlList(List *items, struct curl_slist *list)
{
	ListCell   *lc;

	foreach(lc, items)
	{
		struct curl_slist *l = curl_slist_append(list, (char *) lfirst(lc));

		if (l == NULL)
		{
			curl_slist_free_all(list);
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		list = l;
	}
	return list;
}

/* The options of an HTTP request; returns its header list. */
static struct curl_slist *
HttpOptions(CURL *easy, OutboxJob *job)
{
	/* no "Expect: 100-continue" round trip before bodies */
	struct curl_slist *headers = CurlList(job->headers, curl_slist_append(NULL, "Expect:"));

	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, job->method);
	if (job->body != NULL)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(job->body));
	}
	else if (strcmp(job->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(job->method, "PUT") == 0)
	{
		/* PUT without a body still needs Content-Length: 0 */
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "benefits/0.2.0 (PostgreSQL extension)");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* send the path as built: libcurl would otherwise fold "/../" segments */
	curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	return headers;
}

/* libcurl reads an email's message from the job's body. */
static size_t
SmtpReadBody(char *buffer, size_t size, size_t nitems, void *userdata)
{
	OutboxJob  *job = (OutboxJob *) userdata;
	size_t		left = strlen(job->body + job->upload_offset);
	size_t		n = Min(left, size * nitems);

	memcpy(buffer, job->body + job->upload_offset, n);
	job->upload_offset += n;
	return n;
}

/*
 * The options of an email: the envelope, the message, authentication, and
 * TLS: smtps:// is TLS from the start; smtp:// must upgrade with STARTTLS
 * unless benefits.allow_private_network is on (a local test server without
 * TLS), then STARTTLS is used when offered.  Returns the recipient list.
 */
static struct curl_slist *
SmtpOptions(CURL *easy, OutboxJob *job)
{
	struct curl_slist *rcpt = CurlList(list_make1(psprintf("<%s>", job->rcpt)), NULL);

	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(easy, CURLOPT_MAIL_FROM, psprintf("<%s>", job->mail_from));
	curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, SmtpReadBody);
	curl_easy_setopt(easy, CURLOPT_READDATA, job);
	curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t) strlen(job->body));
	job->upload_offset = 0;
	if (strncmp(job->url, "smtp://", 7) == 0)
		curl_easy_setopt(easy, CURLOPT_USE_SSL,
						 benefits_allow_private_network ? (long) CURLUSESSL_TRY : (long) CURLUSESSL_ALL);
	if (benefits_smtp_username[0] != '\0')
	{
		curl_easy_setopt(easy, CURLOPT_USERNAME, benefits_smtp_username);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, benefits_smtp_password);
	}
	return rcpt;
}

/* Put a built request (HTTP, or an email when job->mail_from is set) in flight. */
void
HttpStart(OutboxJob *job)
{
	CURL	   *easy;
	struct curl_slist *list;
	MemoryContext oldcxt;

	HttpConfigure();
	oldcxt = MemoryContextSwitchTo(job->cxt);
	easy = nspare > 0 ? spare[--nspare] : curl_easy_init();
	if (easy == NULL)
		ereport(ERROR, (errmsg("benefits: could not create a libcurl handle")));
	initStringInfo(&job->response);
	job->retry_after = -1;
	job->ratelimit_reset = -1;
	job->ratelimit_remaining = -1;
	job->curl_error[0] = '\0';

	curl_easy_setopt(easy, CURLOPT_URL, job->url);
	list = job->mail_from ? SmtpOptions(easy, job) : HttpOptions(easy, job);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	/* never through a proxy from the server's environment (http_proxy,
	 * ALL_PROXY): the address guard must see the real destination */
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) benefits_http_connect_timeout);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) benefits_http_timeout);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, HttpOpenSocket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, job);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, HttpPrereq);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, job);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, HttpWriteBody);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, HttpHeader);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, job);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->curl_error);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
	/* the header (or recipient) list is freed with the handle (see HttpFinish) */
	job->easy = easy;
	job->headers = list_make1(list);

	if (curl_multi_add_handle(multi, easy) != CURLM_OK)
	{
		curl_slist_free_all(list);
		curl_easy_cleanup(easy);
		job->easy = NULL;
		ereport(ERROR, (errmsg("benefits: could not start an HTTP request")));
	}
	MemoryContextSwitchTo(oldcxt);
	inflight++;
	inflight_peak = Max(inflight_peak, inflight);
}

/* Detach a finished transfer and note its result on the job. */
static void
HttpFinish(CURL *easy, CURLcode code)
{
	OutboxJob  *job = NULL;
	long		status = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &job);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	job->curl_code = (int) code;
	/* an SMTP server's reply code stands even when the transfer failed */
	job->status = (code == CURLE_OK || job->mail_from != NULL) ? status : 0;
	if (code != CURLE_OK && job->curl_error[0] == '\0')
		strlcpy(job->curl_error, curl_easy_strerror(code), sizeof(job->curl_error));
	curl_multi_remove_handle(multi, easy);
	if (nspare < SPARE_HANDLES)
	{
		curl_easy_reset(easy);
		spare[nspare++] = easy;
	}
	else
		curl_easy_cleanup(easy);
	curl_slist_free_all((struct curl_slist *) linitial(job->headers));
	job->headers = NIL;
	job->easy = NULL;
	inflight--;
	finished_since_heap_trim++;
}

/* How many requests are in flight. */
int
HttpInflight(void)
{
	return inflight;
}

/*
 * Give back what a burst left behind: the spare handles beyond the most
 * that were in flight at once since the last call (each keeps about 15 kB
 * of buffers), and the free pages of the C heap, which libcurl's buffers
 * come from.  Called at each maintenance, so that the worker's memory
 * follows its load instead of its highest load since it started.
 */
void
HttpTrim(void)
{
	while (nspare > 0 && nspare > inflight_peak - inflight)
		curl_easy_cleanup(spare[--nspare]);
	inflight_peak = inflight;
	malloc_trim(0);
	finished_since_heap_trim = 0;
	last_heap_trim = GetCurrentTimestamp();
}

/*
 * Give the C heap's free pages back, at most every HEAP_TRIM_INTERVAL_MS and
 * only after requests have finished.  Between two trims the allocator
 * spreads over the heap's free chunks and makes their pages resident again
 * (about a megabyte within a second of a trim, under sustained delivery), so
 * a worker trimmed only at maintenance holds more the longer ago that was.
 */
void
HttpTrimHeap(void)
{
	TimestampTz now;

	if (finished_since_heap_trim == 0)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_heap_trim, now, HEAP_TRIM_INTERVAL_MS))
		return;
	malloc_trim(0);
	finished_since_heap_trim = 0;
	last_heap_trim = now;
}

/* Move the finished transfers' jobs to `completed`. */
static List *
CollectFinished(List *completed)
{
	int			msgs = 0;
	CURLMsg    *msg;

	while ((msg = curl_multi_info_read(multi, &msgs)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
		{
			OutboxJob  *job = NULL;
			CURL	   *easy = msg->easy_handle;
			CURLcode	result = msg->data.result;

			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &job);
			HttpFinish(easy, result);
			completed = lappend(completed, job);
		}
	}
	return completed;
}

/*
 * Wait up to timeout_ms for network activity or the latch (which it leaves
 * set for the caller), drive the sockets that are ready and libcurl's
 * timeouts, and append the jobs whose requests finished to `completed`.
 */
List *
HttpWait(long timeout_ms, List *completed)
{
	WaitEvent	event;
	struct epoll_event ready[READY_SOCKETS];
	int			running = 0;
	int			nready = 0;
	long		wait_ms = timeout_ms;

	if (inflight == 0)
		return completed;
	if (curl_deadline != 0)
		wait_ms = Min(wait_ms, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), curl_deadline));
	/* whatever woke it (a set latch comes first), look at the sockets too */
	(void) WaitEventSetWait(wait_set, Max(wait_ms, 0), &event, 1, PG_WAIT_EXTENSION);
	nready = epoll_wait(curl_epoll, ready, READY_SOCKETS, 0);
	for (int i = 0; i < nready; i++)
	{
		int			flags = 0;

		if (ready[i].events & EPOLLIN)
			flags |= CURL_CSELECT_IN;
		if (ready[i].events & EPOLLOUT)
			flags |= CURL_CSELECT_OUT;
		if (ready[i].events & (EPOLLERR | EPOLLHUP))
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(multi, ready[i].data.fd, flags, &running);
	}
	if (curl_deadline != 0 && GetCurrentTimestamp() >= curl_deadline)
	{
		curl_deadline = 0;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	return CollectFinished(completed);
}
