/*
 * worker.h — the delivery worker: settings, shared memory, and the job
 * structure passed between the outbox (SQL), the request builders
 * (providers.c, webhooks.c) and the HTTP engine (http.c).
 */
#ifndef BENEFITS_WORKER_H
#define BENEFITS_WORKER_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include <sys/socket.h>

/* How many databases one cluster's worker can serve. */
#define BENEFITS_MAX_DATABASES 32
/* Most workers one database can have (benefits.workers_per_database). */
#define BENEFITS_MAX_WORKERS_PER_DATABASE 16

/* Settings (worker_guc.c). */
extern char *benefits_database_names;
extern char *benefits_github_api_url;
extern char *benefits_github_token;
extern char *benefits_discord_api_url;
extern char *benefits_discord_bot_token;
extern bool benefits_allow_private_network;
extern int	benefits_http_connect_timeout;	/* ms */
extern int	benefits_http_timeout;	/* ms */
extern int	benefits_worker_max_inflight;
extern int	benefits_http_max_host_connections;
extern int	benefits_retry_initial_delay;	/* ms */
extern int	benefits_retry_max_delay;	/* ms */
extern int	benefits_max_attempts;
extern int	benefits_webhook_disable_after;
extern int	benefits_maintenance_interval;	/* ms */
extern bool benefits_worker_delivery;
extern int	benefits_workers_per_database;
extern int	benefits_outbox_retention;	/* s; -1 keeps done jobs */

/* What became of one attempt of a job. */
typedef enum JobOutcome
{
	JOB_DONE,					/* provider confirmed; the job is finished */
	JOB_RETRY,					/* transient failure: try again later */
	JOB_PERMANENT,				/* permanent failure: the job is dead */
	JOB_STEP,					/* a step of a multi-step job succeeded */
	JOB_DEFERRED,				/* not sent: its host is rate limited */
	JOB_ANSWER					/* answered: job->answer_function reads the answer */
} JobOutcome;

/*
 * One claimed outbox row and, once sent, its HTTP exchange.  Everything is
 * allocated in the worker's batch context; strings from SQL are copies.
 */
typedef struct OutboxJob
{
	MemoryContext cxt;			/* holds the job; deleted once recorded */
	int64		id;
	char	   *kind;			/* webhook | github | discord */
	char	   *action;
	char	   *grant_id;		/* NULL when the job belongs to no grant */
	char	   *endpoint_id;
	char	   *message_id;
	char	   *payload;		/* payload as JSON text (a webhook's body) */
	int			attempts;		/* including this one */

	/* webhook endpoint, read at claim time */
	char	   *endpoint_url;
	char	   *endpoint_secret;
	bool		endpoint_enabled;

	Jsonb	   *payload_json;	/* the payload, read by the job's operation */
	char	   *access_token;	/* add_member, oauth: the OAuth token to send */
	char	   *refresh_token;	/* add_member: set when the token must be renewed first */

	/* email: the message rendered at claim time (body), or why not */
	char	   *mail_from;		/* envelope sender and recipient */
	char	   *rcpt;
	char	   *render_error;
	size_t		upload_offset;	/* how much of the body libcurl has read */

	/* the request */
	const char *method;
	char	   *url;
	char	   *body;
	List	   *headers;		/* of char * "Name: value" */

	/* the response */
	void	   *easy;			/* CURL * while in flight */
	int			curl_code;		/* CURLcode */
	char		curl_error[256];
	bool		refused_address;	/* urlguard refused the destination */
	char		refused_detail[128];
	long		status;
	StringInfoData response;	/* body, truncated */
	double		retry_after;	/* seconds from Retry-After, -1 if none */
	double		ratelimit_reset;	/* epoch seconds, -1 if none */
	int			ratelimit_remaining;	/* -1 if none */
	bool		link_next;		/* Link: rel="next" present */
	int			link_last_page;	/* the page= of Link: rel="last", 0 if none */

	/* the verdict */
	JobOutcome	outcome;
	double		delay_ms;		/* JOB_RETRY, JOB_DEFERRED: when to try again */
	char	   *error;			/* human-readable last error */
	char	   *step_patch;		/* JOB_STEP: JSON merged into the payload */
	const char *answer_function;	/* JOB_ANSWER: benefits.NAME(job, status, body) */
	bool		endpoint_gone;	/* webhook answered 410 */
} OutboxJob;

/* worker_guc.c */
extern void WorkerGucInit(void);

/* outbox_wake.c: shared memory, commit wake-up */
extern void WorkerShmemInit(void);
extern bool WorkerSlotAcquire(Oid dboid, int share, bool *first);
extern void WorkerStaleReleaseDone(void);
extern int	WorkerClaimShares(int shares, int *out);
extern bool WorkerIsLowestShare(void);
extern void WorkerWakeSiblings(void);
extern void WorkerSetAmWorker(void);

/* launcher.c */
extern void WorkerRegisterLauncher(void);

/* worker_extension.c: only the installed extension's own objects are used */
extern bool WorkerExtensionReady(void);
extern Oid	WorkerExtensionRelation(const char *name);
extern bool WorkerExtensionFunction(const char *name);

/* outbox_claim.c: the SQL side (each call runs in a transaction of its own) */
extern bool OutboxPrepare(void);
extern bool OutboxPrepareToRecord(void);
extern void OutboxResetStale(void);
extern List *OutboxClaim(int limit, const int *claimed, int nclaimed, int shares, bool *more,
						 MemoryContext parent, MemoryContext list_cxt);
extern bool OutboxCallFunction(const char *name);
extern void OutboxRecord(List *jobs);
extern double OutboxNextDue(void);
/* Done jobs deleted per OutboxPrune call. */
#define OUTBOX_PRUNE_BATCH 10000
extern uint64 OutboxPrune(void);

/*
 * job_operations.c: what each kind and action of job does — build its
 * request (false: not sent, the job judged already) and judge the answer.
 */
typedef struct JobOperation
{
	const char *kind;
	const char *action;
	bool		(*build) (OutboxJob *job);
	void		(*judge) (OutboxJob *job);
} JobOperation;
extern const JobOperation *JobOperationOf(const OutboxJob *job);
/* The job's request built (false: not sent, the job judged already). */
extern bool JobBuildRequest(OutboxJob *job);

/*
 * job_payload.c: a member of the job's payload as text (NULL: absent); an
 * integer member (dflt: absent); a base URL and a path joined without a
 * doubled slash.
 */
extern char *JobPayloadText(const OutboxJob *job, const char *key);
extern int	JobPayloadInt(const OutboxJob *job, const char *key, int dflt);
extern char *JobUrl(const char *base, const char *path);

/* providers.c: GitHub and Discord requests, and their answers */
extern bool GithubAddCollaborator(OutboxJob *job);
extern bool GithubRemoveCollaborator(OutboxJob *job);
extern void ProviderJudge(OutboxJob *job);
extern void GithubRemoveCollaboratorJudge(OutboxJob *job);
extern char *GithubInvitationWalk(const OutboxJob *job);
extern bool DiscordAddMember(OutboxJob *job);
extern bool DiscordAddRole(OutboxJob *job);
extern bool DiscordRemoveRole(OutboxJob *job);
extern bool DiscordKickMember(OutboxJob *job);
extern bool DiscordPostWelcome(OutboxJob *job);
extern void DiscordAddMemberJudge(OutboxJob *job);

/* oauth_jobs.c: linking accounts, renewing tokens */
extern bool OAuthLinkAccount(OutboxJob *job);
extern bool OAuthRefreshRequest(OutboxJob *job, const char *platform);
extern bool OAuthCanRefresh(const OutboxJob *job, const char *platform);
extern void OAuthAnswerJudge(OutboxJob *job);


/* email_send.c: customer email over SMTP */
extern void EmailRenderClaimed(List *jobs);
extern bool EmailBuildRequest(OutboxJob *job);
extern void EmailJudge(OutboxJob *job);

/* webhooks.c */
extern bool WebhookBuildRequest(OutboxJob *job);
extern void WebhookJudge(OutboxJob *job);
extern char *WebhookSignature(const char *secret, const char *msg_id,
							  int64 timestamp, const char *body, int bodylen,
							  const char **error);

/* retry.c: failure classification and backoff */
extern bool RetryIsTransientStatus(long status);
extern double RetryDelayMs(OutboxJob *job);
extern void RetryPauseHost(OutboxJob *job);
extern double RetryHostPausedMs(const char *url);
extern void RetryJudgeFailure(OutboxJob *job, const char *what);

/* urlguard.c */
extern bool UrlGuardAddressAllowed(const struct sockaddr *addr, char *detail, size_t detail_len);

/* http.c */
extern void HttpInit(void);
extern void HttpStart(OutboxJob *job);
extern int	HttpInflight(void);
extern void HttpTrim(void);
extern void HttpTrimHeap(void);

/* http_headers.c: the response headers the worker reads */
extern size_t HttpHeaderLine(OutboxJob *job, const char *buffer, size_t len);
extern List *HttpWait(long timeout_ms, List *completed);
extern char *HttpEscape(const char *segment);

#endif
