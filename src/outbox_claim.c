/*
 * outbox_claim.c — the worker's SQL: claiming jobs and recording results.
 *
 * Each function runs inside a short transaction opened by worker.c and uses
 * SPI plans prepared once and kept.  A claim takes the due head of every job
 * chain (the jobs of one grant run in id order, per endpoint for webhooks
 * and across GitHub/Discord for provider calls; provider jobs touching the
 * same collaborator or member run in id order whatever their grant, see
 * outbox.chain_key) with FOR UPDATE SKIP LOCKED,
 * marks it running and leases it; what the jobs need beyond their rows
 * (credentials, rendered email) is read in the same transaction under a
 * snapshot taken after the claim statement, so it sees every job the claim
 * found; results are recorded after the network I/O in a transaction of
 * their own.
 *
 * Concurrency: several workers of one database (benefits.workers_per_database)
 * each claim their own share, a hash of the job's grant (else its chain key,
 * else its id).  The shares only spread the work: what keeps two workers from
 * sending one job is the row lock and the lease, and what keeps a chain in
 * order is the claim's "no earlier pending or running job" test, both of
 * which hold whatever share a job falls in (also while the worker count
 * changes).  A claimed job's run_after moves to its lease's end, so the
 * index-ordered claim stops before the jobs in flight instead of stepping
 * over them, and a job whose worker died becomes due when its lease ends.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "benefits.h"
#include "worker.h"

#define UUID_PATTERN "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"

/*
 * The earlier-job checks say "not done and not dead" rather than "pending or
 * running" (the same, for the four states): so they match only the indexes
 * by grant and by chain, never outbox_due, whose predicate is "pending or
 * running".  Planned while the statistics said no job was pending, the
 * checks would otherwise scan the whole due index for each candidate, and a
 * backlog would slow every claim down until it could no longer shrink
 * (094_claim_backlog_plan).
 */
static const char *claim_sql =
"WITH c AS ("
"  SELECT o.id, o.endpoint_id, o.action, o.payload FROM benefits.outbox o"
"   WHERE o.state IN ('pending', 'running') AND o.run_after <= now()"
"     AND (o.leased_until IS NULL OR o.leased_until < now())"
"     AND (o.grant_id IS NULL OR NOT EXISTS ("
"          SELECT 1 FROM benefits.outbox p"
"           WHERE p.grant_id = o.grant_id AND p.id < o.id AND p.state <> 'done' AND p.state <> 'dead'"
"             AND CASE WHEN o.kind = 'webhook' THEN p.endpoint_id = o.endpoint_id"
"                      ELSE p.kind <> 'webhook' END))"
"     AND (o.chain_key IS NULL OR NOT EXISTS ("
"          SELECT 1 FROM benefits.outbox q"
"           WHERE q.chain_key = o.chain_key AND q.id < o.id AND q.state <> 'done' AND q.state <> 'dead'))"
"     AND ($3 = 1 OR (CASE WHEN o.grant_id IS NOT NULL THEN uuid_hash(o.grant_id)"
"                          WHEN o.chain_key IS NOT NULL THEN hashtext(o.chain_key)"
"                          ELSE hashint8(o.id) END & 2147483647) % $3 = ANY ($4::int[]))"
"   ORDER BY o.run_after, o.id"
"   LIMIT $1"
"   FOR UPDATE OF o SKIP LOCKED)"
" UPDATE benefits.outbox o"
"    SET state = 'running', attempts = o.attempts + 1,"
"        leased_until = now() + $2 * interval '1 millisecond',"
"        run_after = now() + $2 * interval '1 millisecond'"
"   FROM c"
"   LEFT JOIN benefits.webhook_endpoints e ON e.id = c.endpoint_id"
"   LEFT JOIN benefits.customer_accounts a"
"          ON c.action = 'add_member' AND a.platform = 'discord'"
"         AND a.customer_id = CASE WHEN c.payload->>'customer_id' ~ " UUID_PATTERN
"                                  THEN (c.payload->>'customer_id')::uuid END"
"  WHERE o.id = c.id"
" RETURNING o.id, o.kind, o.action, o.grant_id::text, o.endpoint_id::text, o.message_id,"
"           o.payload, o.attempts, e.url, e.secret, e.enabled, a.access_token";

/* The claim's columns. */
enum
{
	CLAIM_ID = 1, CLAIM_KIND, CLAIM_ACTION, CLAIM_GRANT_ID, CLAIM_ENDPOINT_ID, CLAIM_MESSAGE_ID,
	CLAIM_PAYLOAD, CLAIM_ATTEMPTS, CLAIM_ENDPOINT_URL, CLAIM_ENDPOINT_SECRET, CLAIM_ENDPOINT_ENABLED,
	CLAIM_ACCESS_TOKEN
};

/*
 * Results are matched by primary key only (running jobs are the ones with a
 * lease): a condition on state would tempt the planner into scanning the
 * partial index of all pending jobs.
 */
static const char *done_sql =
"UPDATE benefits.outbox o"
"   SET state = 'done', finished_at = now(), leased_until = NULL,"
"       last_status = r.status, last_error = NULL"
"  FROM unnest($1::bigint[], $2::int[]) AS r(id, status)"
" WHERE o.id = r.id AND o.leased_until IS NOT NULL";

static const char *fail_sql =
"UPDATE benefits.outbox"
"   SET state = CASE WHEN $2 THEN 'dead' ELSE 'pending' END,"
"       run_after = CASE WHEN $2 THEN run_after ELSE now() + $3 * interval '1 millisecond' END,"
"       leased_until = NULL, last_status = $4, last_error = $5,"
"       finished_at = CASE WHEN $2 THEN now() END"
" WHERE id = $1 AND leased_until IS NOT NULL";

static const char *step_sql =
"UPDATE benefits.outbox"
"   SET payload = payload || $2, state = 'pending', run_after = now(), leased_until = NULL,"
"       attempts = greatest(attempts - 1, 0), last_status = $3, last_error = NULL"
" WHERE id = $1 AND leased_until IS NOT NULL";

/* a job not sent (rate-limited host) gives its attempt back */
static const char *defer_sql =
"UPDATE benefits.outbox"
"   SET state = 'pending', run_after = now() + $2 * interval '1 millisecond', leased_until = NULL,"
"       attempts = greatest(attempts - 1, 0)"
" WHERE id = $1 AND leased_until IS NOT NULL";

/* the invitation's patch ({"_step": 1, ...}), {"_step": 2} if the page lacks
 * it, or NULL if the page is unreadable; the walk is GithubInvitationWalk's */
static const char *invitation_sql =
"SELECT s, s ? '_invitation_id' FROM benefits.github_invitation_step($1, $2, false, $3) AS s";

static const char *activate_sql =
"UPDATE benefits.grants g"
"   SET state = 'active', error = NULL, granted_at = coalesce(g.granted_at, now()), modified_at = now()"
" WHERE g.id = $1::uuid AND g.state = 'created'"
"   AND NOT EXISTS (SELECT 1 FROM benefits.outbox o"
"                    WHERE o.grant_id = g.id AND o.kind <> 'webhook' AND o.state <> 'done'"
"                      AND o.action IN ('add_collaborator', 'add_member', 'add_role'))"
" RETURNING g.id";

static const char *grant_error_sql =
"UPDATE benefits.grants"
"   SET error = jsonb_build_object('type', 'provider_error', 'message', $2::text,"
"                                  'provider', $3::text, 'action', $4::text, 'status', $5::int,"
"                                  'job_id', $6::bigint,"
"                                  'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),"
"       modified_at = now()"
" WHERE id = $1::uuid";

static const char *endpoint_ok_sql =
"UPDATE benefits.webhook_endpoints SET consecutive_failures = 0"
" WHERE id = ANY ($1::uuid[]) AND consecutive_failures > 0";

static const char *endpoint_failed_sql =
"SELECT benefits.webhook_endpoint_failed($1::uuid, $2, $3, $4)";

static const char *next_due_sql =
"SELECT extract(epoch FROM min(run_after) - now()) * 1000 FROM benefits.outbox"
" WHERE state = 'pending' AND run_after > now()";

static const char *reset_stale_sql =
"UPDATE benefits.outbox SET state = 'pending', leased_until = NULL, run_after = now()"
" WHERE state = 'running'";

static const char *prune_sql =
"DELETE FROM benefits.outbox WHERE id IN ("
"  SELECT id FROM benefits.outbox"
"   WHERE state = 'done' AND finished_at < now() - $1 * interval '1 second'"
"   ORDER BY finished_at LIMIT " CppAsString2(OUTBOX_PRUNE_BATCH) ")";

/* The OAuth tokens the claimed jobs' requests need (0.2.0 and later). */
static const char *credentials_sql =
"SELECT c.job_id, c.access_token, c.refresh_token FROM benefits.job_credentials($1) c";

static SPIPlanPtr credentials_plan;
static SPIPlanPtr prune_plan, defer_plan, claim_plan, done_plan, fail_plan, step_plan, invitation_plan,
			activate_plan, grant_error_plan, endpoint_ok_plan, endpoint_failed_plan,
			next_due_plan, reset_stale_plan;

static bool OutboxPrepareLocked(bool wait);
static void ReadCredentials(List *jobs);
static void RecordFailure(OutboxJob *job);
static void RecordStep(OutboxJob *job);

/* Prepare a statement once and keep it for the life of the worker. */
static SPIPlanPtr
Prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "benefits: SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql);
	SPI_keepplan(plan);
	return plan;
}

/*
 * Is the extension installed and its outbox free to use?  Takes the outbox
 * lock without waiting, so a DROP EXTENSION in progress is never blocked by
 * (nor blocks) the worker, then prepares the plans on first use.
 */
bool
OutboxPrepare(void)
{
	return OutboxPrepareLocked(false);
}

/*
 * For recording results the worker waits for the locks instead: giving up
 * would leave sent jobs leased, to be sent again.  Still false when the
 * extension is gone (then there is nothing to record).
 */
bool
OutboxPrepareToRecord(void)
{
	return OutboxPrepareLocked(true);
}

/*
 * Look up the outbox, lock it (waiting or not) and prepare the plans.  Only
 * the installed extension's own tables and functions count
 * (worker_extension.c).
 */
static bool
OutboxPrepareLocked(bool wait)
{
	Oid			outbox = WorkerExtensionRelation("outbox");
	Oid			endpoints = WorkerExtensionRelation("webhook_endpoints");

	if (!OidIsValid(outbox) || !OidIsValid(endpoints))
		return false;
	if (wait)
	{
		LockRelationOid(outbox, RowExclusiveLock);
		LockRelationOid(endpoints, RowExclusiveLock);
		/* a DROP EXTENSION we waited for has removed them */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(outbox)) ||
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(endpoints)))
			return false;
	}
	else if (!ConditionalLockRelationOid(outbox, RowExclusiveLock) ||
			 !ConditionalLockRelationOid(endpoints, RowExclusiveLock))
		return false;
	/* the functions the results use come with the same install script */
	if (!WorkerExtensionFunction("webhook_endpoint_failed") ||
		!WorkerExtensionFunction("github_invitation_step"))
		return false;

	if (claim_plan == NULL)
	{
		Oid			t_claim[4] = {INT4OID, INT4OID, INT4OID, INT4ARRAYOID};
		Oid			t_done[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Oid			t_fail[5] = {INT8OID, BOOLOID, FLOAT8OID, INT4OID, TEXTOID};
		Oid			t_step[3] = {INT8OID, JSONBOID, INT4OID};
		Oid			t_inv[3] = {TEXTOID, TEXTOID, INT4OID};
		Oid			t_act[1] = {TEXTOID};
		Oid			t_gerr[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID};
		Oid			t_epok[1] = {TEXTARRAYOID};
		Oid			t_epfail[4] = {TEXTOID, BOOLOID, TEXTOID, INT4OID};

		claim_plan = Prepare(claim_sql, 4, t_claim);
		done_plan = Prepare(done_sql, 2, t_done);
		fail_plan = Prepare(fail_sql, 5, t_fail);
		step_plan = Prepare(step_sql, 3, t_step);
		{
			Oid			t_defer[2] = {INT8OID, FLOAT8OID};

			defer_plan = Prepare(defer_sql, 2, t_defer);
		}
		invitation_plan = Prepare(invitation_sql, 3, t_inv);
		activate_plan = Prepare(activate_sql, 1, t_act);
		grant_error_plan = Prepare(grant_error_sql, 6, t_gerr);
		endpoint_ok_plan = Prepare(endpoint_ok_sql, 1, t_epok);
		endpoint_failed_plan = Prepare(endpoint_failed_sql, 4, t_epfail);
		next_due_plan = Prepare(next_due_sql, 0, NULL);
		reset_stale_plan = Prepare(reset_stale_sql, 0, NULL);
		{
			Oid			t_prune[1] = {INT4OID};

			prune_plan = Prepare(prune_sql, 1, t_prune);
		}
	}
	return true;
}

/*
 * Release the leases of a predecessor that died (crash, SIGKILL, immediate
 * shutdown): called by the first worker of its database only, before any
 * sibling claims (WorkerSlotAcquire), so every running job is stale.  Their
 * attempt stays counted.
 */
void
OutboxResetStale(void)
{
	if (SPI_execute_plan(reset_stale_plan, NULL, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "benefits: could not reset stale leases");
	if (SPI_processed > 0)
		ereport(LOG, (errmsg("benefits: released %llu jobs leased by a previous worker",
							 (unsigned long long) SPI_processed)));
}

/* Copy column `col` of the current SPI row, or NULL. */
static char *
GetText(HeapTuple tup, TupleDesc desc, int col)
{
	return SPI_getvalue(tup, desc, col);
}

/* Integer column, 0 when NULL. */
static int
GetInt(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * What the claimed jobs need beyond their row: their credentials and, for
 * email, the rendered message.  Those reads must see what the claim saw: a
 * job committed after the transaction's first snapshot but found by the
 * claim statement's own would otherwise be missing (an email dead as "not
 * found", the grants it lists absent), so they run under a snapshot taken
 * after the claim.
 */
static void
ReadClaimedJobs(List *jobs)
{
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	ReadCredentials(jobs);
	EmailRenderClaimed(jobs);
	PopActiveSnapshot();
}

/*
 * Claim up to `limit` due jobs of the shares claimed[0..nclaimed) of
 * `shares` (the database's workers split the outbox by a hash of each job's
 * grant, or chain, or id).  Each job gets its own memory context, a child of
 * `parent` (which outlives the transaction).  *more is set when the limit
 * was reached (more jobs may be due).
 */
List *
OutboxClaim(int limit, const int *claimed, int nclaimed, int shares, bool *more,
			MemoryContext parent, MemoryContext list_cxt)
{
	Datum	   *share_datums = palloc(sizeof(Datum) * nclaimed);
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	List	   *jobs = NIL;
	int			ret;
	int			lease_ms;

	/* the lease outlasts a full timeout, so only a dead worker's expire */
	lease_ms = benefits_http_timeout + benefits_http_connect_timeout + 60000;
	values[0] = Int32GetDatum(limit);
	values[1] = Int32GetDatum(lease_ms);
	for (int i = 0; i < nclaimed; i++)
		share_datums[i] = Int32GetDatum(claimed[i]);
	values[2] = Int32GetDatum(Max(shares, 1));
	values[3] = PointerGetDatum(construct_array(share_datums, nclaimed, INT4OID, 4, true, TYPALIGN_INT));
	ret = SPI_execute_plan(claim_plan, values, nulls, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "benefits: claiming jobs failed: %s", SPI_result_code_string(ret));
	*more = (SPI_processed == (uint64) limit);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext cxt = AllocSetContextCreate(parent, "benefits job", ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		OutboxJob  *job = palloc0(sizeof(OutboxJob));
		char	   *enabled;
		bool		isnull;

		job->cxt = cxt;
		job->id = DatumGetInt64(SPI_getbinval(tup, desc, CLAIM_ID, &isnull));
		job->kind = GetText(tup, desc, CLAIM_KIND);
		job->action = GetText(tup, desc, CLAIM_ACTION);
		job->grant_id = GetText(tup, desc, CLAIM_GRANT_ID);
		job->endpoint_id = GetText(tup, desc, CLAIM_ENDPOINT_ID);
		job->message_id = GetText(tup, desc, CLAIM_MESSAGE_ID);
		job->payload_json = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, CLAIM_PAYLOAD, &isnull));
		job->payload = JsonbToCString(NULL, &job->payload_json->root, VARSIZE(job->payload_json));
		job->attempts = GetInt(tup, desc, CLAIM_ATTEMPTS);
		job->endpoint_url = GetText(tup, desc, CLAIM_ENDPOINT_URL);
		job->endpoint_secret = GetText(tup, desc, CLAIM_ENDPOINT_SECRET);
		enabled = GetText(tup, desc, CLAIM_ENDPOINT_ENABLED);
		job->endpoint_enabled = enabled && enabled[0] == 't';
		job->access_token = GetText(tup, desc, CLAIM_ACCESS_TOKEN);
		job->method = "";
		MemoryContextSwitchTo(list_cxt);
		jobs = lappend(jobs, job);
		MemoryContextSwitchTo(old);
	}
	ReadClaimedJobs(jobs);
	return jobs;
}

/* Does the job's request need a token that is not in its payload? */
static bool
NeedsCredentials(const OutboxJob *job)
{
	return strcmp(job->kind, "oauth") == 0 ||
		(strcmp(job->kind, "discord") == 0 && strcmp(job->action, "add_member") == 0);
}

/*
 * Reads the OAuth tokens of the claimed jobs that need one: the token of an
 * oauth job's exchange, and for add_member the customer's refresh token when
 * the access token is about to expire.  Databases still on 0.1.0 have no
 * job_credentials: their add_member jobs keep the token of the claim.
 */
static void
ReadCredentials(List *jobs)
{
	Datum	   *ids = palloc(sizeof(Datum) * list_length(jobs));
	int			n = 0;
	Datum		values[1];
	ListCell   *lc;

	foreach(lc, jobs)
		if (NeedsCredentials((OutboxJob *) lfirst(lc)))
			ids[n++] = Int64GetDatum(((OutboxJob *) lfirst(lc))->id);
	if (n == 0 || !WorkerExtensionFunction("job_credentials"))
		return;
	if (credentials_plan == NULL)
		credentials_plan = Prepare(credentials_sql, 1, (Oid[]) {INT8ARRAYOID});
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, true, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(credentials_plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "benefits: reading the jobs' credentials failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, SPI_fnumber(desc, "job_id"), &isnull));

		foreach(lc, jobs)
		{
			OutboxJob  *job = (OutboxJob *) lfirst(lc);
			MemoryContext old;

			if (job->id != id)
				continue;
			old = MemoryContextSwitchTo(job->cxt);
			job->access_token = GetText(tup, desc, SPI_fnumber(desc, "access_token"));
			job->refresh_token = GetText(tup, desc, SPI_fnumber(desc, "refresh_token"));
			MemoryContextSwitchTo(old);
		}
	}
}

/* Milliseconds until the next pending job is due, or -1 if none is waiting. */
double
OutboxNextDue(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(next_due_plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return -1;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
}

/* The grant's provider jobs are all done: make it active and tell the app. */
static void
ActivateGrant(const char *grant_id)
{
	Datum		values[1];

	values[0] = CStringGetTextDatum(grant_id);
	if (SPI_execute_plan(activate_plan, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "benefits: activating grant %s failed", grant_id);
	if (SPI_processed == 1 && WorkerExtensionFunction("enqueue_grant_event"))
	{
		char	   *sql = psprintf("SELECT benefits.enqueue_grant_event(%s::uuid, 'benefit_grant.updated')",
								   quote_literal_cstr(grant_id));

		if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "benefits: enqueue_grant_event failed for grant %s", grant_id);
	}
}

/*
 * An oauth job is dead: its code and the tokens its exchange obtained (if it
 * got that far) are of no more use, and must not outlive it.
 */
static void
ForgetExchange(OutboxJob *job)
{
	static SPIPlanPtr tokens_plan;
	static SPIPlanPtr code_plan;
	Datum		values[1];

	if (tokens_plan == NULL)
	{
		tokens_plan = Prepare("DELETE FROM benefits.oauth_exchanges WHERE job_id = $1", 1, (Oid[]) {INT8OID});
		code_plan = Prepare("UPDATE benefits.outbox SET payload = payload - 'code' WHERE id = $1 AND payload ? 'code'",
							1, (Oid[]) {INT8OID});
	}
	values[0] = Int64GetDatum(job->id);
	if (SPI_execute_plan(tokens_plan, values, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_plan(code_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "benefits: forgetting the code and tokens of job " INT64_FORMAT " failed", job->id);
}

/* Record a failed attempt: retry later, or dead. */
static void
RecordFailure(OutboxJob *job)
{
	bool		dead = job->outcome == JOB_PERMANENT || job->attempts >= benefits_max_attempts;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(job->id);
	values[1] = BoolGetDatum(dead);
	values[2] = Float8GetDatum(job->delay_ms);
	values[3] = Int32GetDatum((int32) job->status);
	if (job->status == 0)
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(job->error ? job->error : "failed");
	if (SPI_execute_plan(fail_plan, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "benefits: recording the failure of job " INT64_FORMAT " failed", job->id);

	if (dead && strcmp(job->kind, "oauth") == 0)
		ForgetExchange(job);
	if (strcmp(job->kind, "webhook") == 0)
	{
		Datum		ev[4];

		/* a job that was never sent (disabled endpoint) is no endpoint failure */
		if (job->url == NULL)
			return;
		ev[0] = CStringGetTextDatum(job->endpoint_id);
		ev[1] = BoolGetDatum(job->endpoint_gone);
		ev[2] = CStringGetTextDatum(job->error ? job->error : "failed");
		ev[3] = Int32GetDatum(benefits_webhook_disable_after);
		if (SPI_execute_plan(endpoint_failed_plan, ev, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "benefits: webhook_endpoint_failed failed");
	}
	else if (dead && job->grant_id)
	{
		Datum		gv[6];
		char		gn[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		gv[0] = CStringGetTextDatum(job->grant_id);
		gv[1] = values[4];
		gv[2] = CStringGetTextDatum(job->kind);
		gv[3] = CStringGetTextDatum(job->action);
		gv[4] = values[3];
		gn[4] = nulls[3];
		gv[5] = Int64GetDatum(job->id);
		if (SPI_execute_plan(grant_error_plan, gv, gn, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "benefits: recording the error of grant %s failed", job->grant_id);
	}
}

/* Record the success of one step of a multi-step job. */
static void
RecordStep(OutboxJob *job)
{
	Datum		values[4];
	char	   *patch = job->step_patch;

	if (patch == NULL)
	{
		bool		isnull;
		Datum		d;

		/* GitHub: find the customer's invitation in the page just fetched */
		const char *body = job->response.data ? job->response.data : "";

		isnull = true;
		if (pg_verifymbstr(body, strlen(body), true))
		{
			values[0] = CStringGetTextDatum(body);
			values[1] = CStringGetTextDatum(JobPayloadText(job, "username"));
			values[2] = Int32GetDatum(Max(JobPayloadInt(job, "_invitation_page", 1), 1));
			if (SPI_execute_plan(invitation_plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "benefits: github_invitation_step failed");
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			values[1] = d;
			if (!isnull)
			{
				bool		found_isnull;
				bool		found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
															   2, &found_isnull));

				if (!found && (patch = GithubInvitationWalk(job)) != NULL)
					values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(patch));
			}
		}
		if (isnull)
		{
			/* an unreadable page: list again later, like a failed request */
			job->outcome = JOB_RETRY;
			job->error = psprintf("github remove_collaborator: the page %d of pending invitations "
								  "(HTTP %ld) is not a readable JSON array",
								  Max(JobPayloadInt(job, "_invitation_page", 1), 1), job->status);
			job->delay_ms = RetryDelayMs(job);
			RecordFailure(job);
			return;
		}
	}
	else
		values[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(patch));
	values[0] = Int64GetDatum(job->id);
	values[2] = Int32GetDatum((int32) job->status);
	if (SPI_execute_plan(step_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "benefits: recording a step of job " INT64_FORMAT " failed", job->id);
}

/*
 * Record an answer that the job's answer function reads: it returns the
 * verdict ({"outcome": "step" with "patch", "done", "dead" or "retry" with
 * "error"}), applied here like a verdict judged in C.
 */
static void
RecordAnswer(OutboxJob *job)
{
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	const char *body = job->response.data ? job->response.data : "";
	Jsonb	   *verdict;
	char	   *outcome;
	bool		isnull;
	Datum		d;

	if (!WorkerExtensionFunction(job->answer_function))
	{
		job->outcome = JOB_PERMANENT;
		job->error = psprintf("%s %s: benefits.%s() is missing", job->kind, job->action, job->answer_function);
		RecordFailure(job);
		return;
	}
	values[0] = Int64GetDatum(job->id);
	values[1] = Int32GetDatum((int32) job->status);
	values[2] = CStringGetTextDatum(body);
	/* a body that is not valid text is no answer the functions can read */
	if (!pg_verifymbstr(body, strlen(body), true))
		nulls[2] = 'n';
	if (SPI_execute_with_args(psprintf("SELECT benefits.%s($1, $2, $3)", quote_identifier(job->answer_function)),
							  3, (Oid[]) {INT8OID, INT4OID, TEXTOID}, values, nulls, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "benefits: %s failed for job " INT64_FORMAT, job->answer_function, job->id);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	verdict = isnull ? NULL : DatumGetJsonbPCopy(d);
	outcome = BenefitsJsonText(verdict, "outcome");
	job->error = BenefitsJsonText(verdict, "error");
	if (outcome != NULL && strcmp(outcome, "step") == 0)
	{
		JsonbValue *patch = getKeyJsonValueFromContainer(&verdict->root, "patch", 5, NULL);

		job->step_patch = patch ? JsonbToCString(NULL, patch->val.binary.data, patch->val.binary.len) : "{}";
		RecordStep(job);
	}
	else if (outcome != NULL && strcmp(outcome, "done") == 0)
	{
		Datum		done[2];

		done[0] = PointerGetDatum(construct_array(&values[0], 1, INT8OID, 8, true, TYPALIGN_DOUBLE));
		done[1] = PointerGetDatum(construct_array(&values[1], 1, INT4OID, 4, true, TYPALIGN_INT));
		if (SPI_execute_plan(done_plan, done, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "benefits: recording job " INT64_FORMAT " failed", job->id);
	}
	else
	{
		job->outcome = outcome != NULL && strcmp(outcome, "retry") == 0 ? JOB_RETRY : JOB_PERMANENT;
		if (job->error == NULL)
			job->error = psprintf("%s %s: benefits.%s() gave no verdict", job->kind, job->action,
								  job->answer_function);
		job->delay_ms = RetryDelayMs(job);
		RecordFailure(job);
	}
}

/* Record the results of finished jobs, in the caller's transaction. */
void
OutboxRecord(List *jobs)
{
	int			n = list_length(jobs);
	Datum	   *done_ids = palloc(sizeof(Datum) * n);
	Datum	   *done_status = palloc(sizeof(Datum) * n);
	Datum	   *ok_endpoints = palloc(sizeof(Datum) * n);
	int			ndone = 0;
	int			nok = 0;
	List	   *grants = NIL;
	ListCell   *lc;

	foreach(lc, jobs)
	{
		OutboxJob  *job = (OutboxJob *) lfirst(lc);

		switch (job->outcome)
		{
			case JOB_DONE:
				done_ids[ndone] = Int64GetDatum(job->id);
				done_status[ndone] = Int32GetDatum((int32) job->status);
				ndone++;
				if (strcmp(job->kind, "webhook") == 0)
					ok_endpoints[nok++] = CStringGetTextDatum(job->endpoint_id);
				else if (job->grant_id && strncmp(job->action, "add_", 4) == 0)
					grants = list_append_unique(grants, makeString(job->grant_id));
				break;
			case JOB_STEP:
				RecordStep(job);
				break;
			case JOB_ANSWER:
				RecordAnswer(job);
				break;
			case JOB_DEFERRED:
				{
					Datum		values[2];

					values[0] = Int64GetDatum(job->id);
					values[1] = Float8GetDatum(job->delay_ms);
					if (SPI_execute_plan(defer_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
						elog(ERROR, "benefits: deferring job " INT64_FORMAT " failed", job->id);
				}
				break;
			case JOB_RETRY:
			case JOB_PERMANENT:
				RecordFailure(job);
				break;
		}
	}
	if (ndone > 0)
	{
		Datum		values[2];

		values[0] = PointerGetDatum(construct_array(done_ids, ndone, INT8OID, 8, true, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(done_status, ndone, INT4OID, 4, true, TYPALIGN_INT));
		if (SPI_execute_plan(done_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "benefits: recording finished jobs failed");
	}
	if (nok > 0)
	{
		Datum		values[1];

		values[0] = PointerGetDatum(construct_array(ok_endpoints, nok, TEXTOID, -1, false, TYPALIGN_INT));
		if (SPI_execute_plan(endpoint_ok_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "benefits: resetting endpoint failure counts failed");
	}
	foreach(lc, grants)
		ActivateGrant(strVal(lfirst(lc)));
}

/*
 * Call benefits.NAME() if the extension has it (it may come with a later
 * version of another part of the extension).  Returns whether it was called.
 */
bool
OutboxCallFunction(const char *name)
{
	if (!WorkerExtensionFunction(name))
		return false;
	if (SPI_execute(psprintf("SELECT benefits.%s()", quote_identifier(name)), false, 0) != SPI_OK_SELECT)
		elog(ERROR, "benefits: calling benefits.%s() failed", name);
	return true;
}

/*
 * Delete done jobs older than benefits.outbox_retention, at most
 * OUTBOX_PRUNE_BATCH per call.  Dead jobs are kept until retried or deleted by hand.  Returns the
 * number deleted.
 */
uint64
OutboxPrune(void)
{
	Datum		values[1];

	if (benefits_outbox_retention < 0)
		return 0;
	values[0] = Int32GetDatum(benefits_outbox_retention);
	if (SPI_execute_plan(prune_plan, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "benefits: pruning the outbox failed");
	return SPI_processed;
}
