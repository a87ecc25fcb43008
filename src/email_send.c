/*
 * email_send.c — the worker's side of customer email: each claimed email
 * job's message rendered in the claim transaction (email_render.c), then
 * sent over SMTP by the HTTP engine (http.c), and the server's reply judged:
 * 250 is done, 4xx replies and connection failures are retried with
 * backoff, 5xx replies are permanent (the job is dead, its reply recorded).
 *
 * Concurrency: rendering runs in the worker's claim transaction, each
 * message in a subtransaction of its own, so one message that cannot be
 * rendered fails alone; sending runs outside any transaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "email.h"
#include "worker.h"

/* Renders one job's message into it, or records why it cannot be sent. */
static void
RenderJob(OutboxJob *job)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		char	   *mail_from = NULL;
		char	   *rcpt = NULL;
		char	   *error = NULL;
		char	   *body = EmailRender(job->id, &mail_from, &rcpt, &error);

		/* SPI leaves its procedure context current: copy what the job keeps */
		job->body = body ? MemoryContextStrdup(job->cxt, body) : NULL;
		job->mail_from = mail_from ? MemoryContextStrdup(job->cxt, mail_from) : NULL;
		job->rcpt = rcpt ? MemoryContextStrdup(job->cxt, rcpt) : NULL;
		job->render_error = error ? MemoryContextStrdup(job->cxt, error) : NULL;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(job->cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		job->body = NULL;
		job->render_error = psprintf("rendering failed: %s", e->message);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = owner;
}

/* The messages of the claimed email jobs (called by OutboxClaim). */
void
EmailRenderClaimed(List *jobs)
{
	ListCell   *lc;

	foreach(lc, jobs)
	{
		OutboxJob  *job = (OutboxJob *) lfirst(lc);

		if (strcmp(job->kind, "email") == 0)
			RenderJob(job);
	}
}

/*
 * The email's request: the rendered message to the SMTP server.  A message
 * that could not be rendered is dead; with benefits.smtp_url emptied since
 * it was written, it waits.
 */
bool
EmailBuildRequest(OutboxJob *job)
{
	if (job->body == NULL)
	{
		job->outcome = JOB_PERMANENT;
		job->error = psprintf("email %s: %s; not sent", job->action,
							  job->render_error ? job->render_error : "nothing to send");
		job->mail_from = NULL;
		return false;
	}
	if (!EmailEnabled())
	{
		job->outcome = JOB_RETRY;
		job->delay_ms = benefits_retry_max_delay;
		job->error = pstrdup("email: benefits.smtp_url is empty; not sent");
		job->mail_from = NULL;
		return false;
	}
	job->method = "SMTP";
	job->url = pstrdup(benefits_smtp_url);
	return true;
}

/* The SMTP server's reply (retry.c classifies failures). */
void
EmailJudge(OutboxJob *job)
{
	if (job->curl_code == 0)
		job->outcome = JOB_DONE;
	else
		RetryJudgeFailure(job, psprintf("email %s", job->action));
}
