/*
 * worker.c — the delivery worker of one database: its main loop.
 *
 * The loop keeps up to benefits.worker_max_inflight requests in flight.  It
 * claims due jobs in a short transaction (outbox_claim.c), commits, hands
 * them to libcurl (http.c), and records finished ones in batches, each in a
 * short transaction of its own: no transaction is ever open while waiting on
 * the network.  It sleeps on its latch, which committing transactions that
 * queued jobs set (outbox_wake.c), together with libcurl's sockets while
 * requests are in flight (http.c), with a timeout for the next due retry and
 * the periodic calls (validation counter flush, maintenance).
 *
 * It idles while the server is in recovery or the extension is not installed,
 * takes the outbox lock only conditionally (never blocking DROP EXTENSION),
 * and survives errors in a unit of work by logging them and trying again.
 *
 * A database has benefits.workers_per_database of these processes, each
 * serving one share of the outbox (its main argument; outbox_claim.c says
 * why order and exactly-one-sender hold across shares).  The lowest share
 * alive makes the periodic calls; a worker whose share is beyond the setting
 * (after a reload) claims nothing more, records what it has in flight and
 * exits.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "benefits.h"
#include "worker.h"

PGDLLEXPORT void benefits_worker_main(Datum main_arg);

/* Record finished jobs at least this often while others are in flight. */
#define RECORD_INTERVAL_MS 20
#define RECORD_BATCH 128
/*
 * While retention is behind (a whole batch was deleted), the next batch
 * follows this soon instead of at the next maintenance: one batch per
 * maintenance interval would cap retention at 10,000 jobs a minute, below
 * what the worker delivers.  A batch takes a few hundred ms with a large
 * backlog, during which nothing is delivered: a second between batches
 * keeps catching up to about a quarter of the worker's time.
 */
#define PRUNE_CATCH_UP_MS 1000
/* Longest sleep: the safety net under the latch. */
#define MAX_SLEEP_MS 10000
/* Sleep while the extension is missing or the server in recovery. */
#define IDLE_CHECK_MS 5000

static MemoryContext LoopContext;	/* reset every iteration */
static MemoryContext CompletedContext;	/* the list of finished jobs */
static MemoryContext JobsContext;	/* parent of one context per job */
static bool stale_released = false;
static int	my_share = 0;

typedef void (*UnitFunction) (void *arg);

/*
 * Run fn in a transaction of its own with SPI connected.  An error is logged
 * and the transaction rolled back; the worker carries on.
 */
static bool
RunUnit(const char *activity, UnitFunction fn, void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		BenefitsSpiConnect();
		fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

typedef struct ClaimArgs
{
	int			limit;
	bool		ready;
	bool		more;
	List	   *jobs;
	double		next_due_ms;
} ClaimArgs;

/* Unit: claim due jobs (after releasing a dead predecessor's leases once). */
static void
ClaimUnit(void *arg)
{
	ClaimArgs  *a = (ClaimArgs *) arg;

	int			claimed[BENEFITS_MAX_WORKERS_PER_DATABASE + 1];
	int			nclaimed;

	a->ready = OutboxPrepare();
	if (!a->ready)
		return;
	if (!stale_released)
		OutboxResetStale();		/* marked done once this commits */
	nclaimed = WorkerClaimShares(benefits_workers_per_database, claimed);
	if (nclaimed == 0)
	{
		/* the first worker is still releasing old leases: look again soon */
		a->next_due_ms = 100;
		return;
	}
	a->jobs = OutboxClaim(a->limit, claimed, nclaimed, benefits_workers_per_database, &a->more,
						  JobsContext, LoopContext);
	a->next_due_ms = a->more ? 0 : OutboxNextDue();
}

/* Unit: record finished jobs (nothing to do if the extension is gone). */
static void
RecordUnit(void *arg)
{
	if (OutboxPrepareToRecord())
		OutboxRecord((List *) arg);
}

/* Unit: call a periodic function if it is installed. */
static void
PeriodicUnit(void *arg)
{
	OutboxCallFunction((const char *) arg);
}

/*
 * Unit: delete old done jobs; *behind is set when a whole batch went, so
 * more are waiting.
 */
static void
PruneUnit(void *arg)
{
	bool	   *behind = (bool *) arg;

	*behind = OutboxPrepare() && OutboxPrune() == OUTBOX_PRUNE_BATCH;
}

/*
 * The validation counter flush interval, a setting of the license part read
 * by name (1 s if it is not defined); cached, reread after a reload.
 */
static int	flush_interval_ms = -1;

static int
FlushIntervalMs(void)
{
	if (flush_interval_ms < 0)
	{
		const char *value = GetConfigOptionByName("benefits.validation_flush_interval", NULL, true);

		if (value == NULL || !parse_int(value, &flush_interval_ms, GUC_UNIT_MS, NULL))
			flush_interval_ms = 1000;
	}
	return flush_interval_ms;
}

/*
 * Run the periodic calls that are due; returns ms until the next one.  The
 * validation counters also wake the worker when their shared hash fills up,
 * so a wake-up flushes early too (at most every 100 ms).
 */
static long
RunPeriodic(bool woken)
{
	static TimestampTz next_flush = 0;
	static TimestampTz last_flush = 0;
	static TimestampTz next_maintenance = 0;
	static TimestampTz next_prune = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			flush_ms = FlushIntervalMs();
	long		wait_ms;

	if (flush_ms > 0 &&
		(now >= next_flush || (woken && TimestampDifferenceExceeds(last_flush, now, 100))))
	{
		RunUnit("flushing validation counters", PeriodicUnit, "flush_validation_stats");
		last_flush = GetCurrentTimestamp();
		next_flush = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), flush_ms);
	}
	if (now >= next_maintenance)
	{
		RunUnit("running maintenance", PeriodicUnit, "run_maintenance");
		HttpTrim();
		next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), benefits_maintenance_interval);
	}
	if (now >= next_prune)
	{
		bool		behind = false;

		RunUnit("pruning the outbox", PruneUnit, &behind);
		next_prune = behind ? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PRUNE_CATCH_UP_MS)
			: next_maintenance;
	}
	now = GetCurrentTimestamp();
	wait_ms = Min(TimestampDifferenceMilliseconds(now, next_maintenance),
				  TimestampDifferenceMilliseconds(now, next_prune));
	if (flush_ms > 0)
		return Min(TimestampDifferenceMilliseconds(now, next_flush), wait_ms);
	return wait_ms;
}

/* Build and send the claimed jobs; those that cannot be sent are finished. */
static List *
SendJobs(List *jobs, List *completed)
{
	ListCell   *lc;

	foreach(lc, jobs)
	{
		OutboxJob  *job = (OutboxJob *) lfirst(lc);
		MemoryContext old = MemoryContextSwitchTo(job->cxt);
		bool		built;

		built = JobBuildRequest(job);
		MemoryContextSwitchTo(old);
		if (built && strcmp(job->kind, "webhook") != 0 && RetryHostPausedMs(job->url) > 0)
		{
			/* its host is rate limited: not sent, back in the queue */
			job->outcome = JOB_DEFERRED;
			job->delay_ms = RetryHostPausedMs(job->url);
			MemoryContextSwitchTo(CompletedContext);
			completed = lappend(completed, job);
			MemoryContextSwitchTo(old);
		}
		else if (built)
			HttpStart(job);
		else
		{
			MemoryContextSwitchTo(CompletedContext);
			completed = lappend(completed, job);
			MemoryContextSwitchTo(old);
		}
	}
	return completed;
}

/* Judge the answers of finished requests. */
static void
JudgeJobs(List *completed)
{
	ListCell   *lc;

	foreach(lc, completed)
	{
		OutboxJob  *job = (OutboxJob *) lfirst(lc);
		MemoryContext old;

		if (job->url == NULL || job->outcome == JOB_DEFERRED)
			continue;			/* judged when it could not be built, or not sent */
		old = MemoryContextSwitchTo(job->cxt);
		JobOperationOf(job)->judge(job);
		RetryPauseHost(job);
		MemoryContextSwitchTo(old);
	}
}

/* Unit: a job whose result cannot be recorded is set dead (and logged). */
static void
RecordPoisonedUnit(void *arg)
{
	OutboxJob  *job = (OutboxJob *) arg;

	if (!OutboxPrepareToRecord())
		return;
	job->outcome = JOB_PERMANENT;
	job->endpoint_gone = false;
	job->error = psprintf("recording the result of this job failed (status %ld); see the server log",
						  job->status);
	job->grant_id = NULL;		/* the grant update may be what failed */
	job->url = NULL;			/* no endpoint accounting either */
	OutboxRecord(list_make1(job));
}

/*
 * Could a finished job have held back a job of another worker's share?  A
 * provider job's chain (the collaborator or member it touches) may span
 * grants, and so shares; a webhook's successors share its grant, so its
 * share.
 */
static bool
HoldsBackOtherShares(List *completed)
{
	ListCell   *lc;

	foreach(lc, completed)
		if (strcmp(((OutboxJob *) lfirst(lc))->kind, "webhook") != 0)
			return true;
	return false;
}

/*
 * Record finished jobs and free them.  If the batch cannot be recorded, each
 * job is recorded alone, so one job whose recording fails (for example in a
 * function it calls) cannot hold back the others; that job is set dead.  If
 * even that fails, the leases expire and the jobs are sent again:
 * at-least-once, never lost.
 */
static void
RecordCompleted(List *completed)
{
	ListCell   *lc;

	JudgeJobs(completed);
	if (!RunUnit("recording results", RecordUnit, completed))
	{
		foreach(lc, completed)
		{
			OutboxJob  *job = (OutboxJob *) lfirst(lc);

			if (!RunUnit("recording a result", RecordUnit, list_make1(job)))
				RunUnit("recording a result", RecordPoisonedUnit, job);
		}
	}
	if (benefits_workers_per_database > 1 && HoldsBackOtherShares(completed))
		WorkerWakeSiblings();
	foreach(lc, completed)
		MemoryContextDelete(((OutboxJob *) lfirst(lc))->cxt);
	MemoryContextReset(CompletedContext);
}

/*
 * How many jobs to claim now: none until a quarter of the in-flight room is
 * free, so a busy worker claims in batches (each claim costs a statement and
 * a commit whatever its size) instead of one job for every job finished.
 */
static int
ClaimRoom(int inflight)
{
	int			room = benefits_worker_max_inflight - inflight;

	if (inflight > 0 && room < Max(1, benefits_worker_max_inflight / 4))
		return 0;
	return room;
}

/* Main loop of a database's worker. */
void
benefits_worker_main(Datum main_arg)
{
	char		dbname[NAMEDATALEN];
	List	   *completed = NIL;
	bool		need_claim = true;
	bool		extension_ready = true;
	TimestampTz next_due = 0;
	TimestampTz last_record = 0;
	int			reported_inflight = -1;
	bool		first = false;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
	my_share = DatumGetInt32(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (IsBinaryUpgrade)
		proc_exit(0);

	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	/*
	 * The database's own settings (ALTER DATABASE ... SET, which its owner may
	 * write) apply to this connection too.  Those that would make the worker
	 * act as another role, or give up on or refuse its own statements, are
	 * overridden: otherwise a database owner could stop revocations.
	 */
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	/* its statements are short index lookups, run again and again: JIT
	 * compiling one costs more than running it many times */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * The worker runs as the bootstrap superuser: resolve every name in
	 * pg_catalog only, whatever search_path the database or a role sets, so
	 * no object created by a database user can run with our rights.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * Every statement of the worker is a keyed lookup or an index-ordered
	 * claim, and its plans are kept for its lifetime.  A plan made while the
	 * outbox looked empty could check "no earlier job in the chain" by
	 * sequential scans, once per candidate job: a benchmark run caught the
	 * worker claiming that way for minutes.  Index paths only.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("benefits worker");
	WorkerSetAmWorker();
	if (!WorkerSlotAcquire(MyDatabaseId, my_share, &first))
	{
		ereport(LOG,
				(errmsg("benefits: share %d of database \"%s\" is already served by another worker",
						my_share, dbname)));
		proc_exit(0);
	}
	/* only the first worker of the database releases old leases */
	stale_released = !first;
	HttpInit();
	LoopContext = AllocSetContextCreate(TopMemoryContext, "benefits worker loop", ALLOCSET_DEFAULT_SIZES);
	CompletedContext = AllocSetContextCreate(TopMemoryContext, "benefits finished jobs", ALLOCSET_DEFAULT_SIZES);
	JobsContext = AllocSetContextCreate(TopMemoryContext, "benefits jobs", ALLOCSET_DEFAULT_SIZES);
	if (my_share == 0)
		ereport(LOG, (errmsg("benefits: worker started for database \"%s\"", dbname)));
	else
		ereport(LOG, (errmsg("benefits: worker %d started for database \"%s\"", my_share, dbname)));

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		int			inflight;
		bool		woken;
		bool		retiring;

		CHECK_FOR_INTERRUPTS();
		/* WaitLatch watches the postmaster only while idle; check when busy */
		if (!PostmasterIsAlive())
			proc_exit(1);
		MemoryContextReset(LoopContext);
		MemoryContextSwitchTo(LoopContext);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			flush_interval_ms = -1;
		}
		if (RecoveryInProgress())
		{
			pgstat_report_activity(STATE_IDLE, "waiting for recovery to end");
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 IDLE_CHECK_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		woken = MyLatch->is_set;
		if (woken)
		{
			ResetLatch(MyLatch);
			need_claim = true;
		}
		now = GetCurrentTimestamp();
		if (now >= next_due)
			need_claim = true;
		timeout = WorkerIsLowestShare() ? RunPeriodic(woken) : MAX_SLEEP_MS;
		retiring = my_share >= benefits_workers_per_database;

		/* record finished jobs in batches */
		inflight = HttpInflight();
		if (completed != NIL &&
			(inflight == 0 || list_length(completed) >= RECORD_BATCH ||
			 TimestampDifferenceExceeds(last_record, GetCurrentTimestamp(), RECORD_INTERVAL_MS)))
		{
			RecordCompleted(completed);
			completed = NIL;
			HttpTrimHeap();
			reported_inflight = -1;
			last_record = GetCurrentTimestamp();
			need_claim = true;	/* successors of finished jobs may be due */
		}

		/* claim more work while there is room */
		if (retiring && inflight == 0 && completed == NIL)
		{
			ereport(LOG,
					(errmsg("benefits: worker %d for database \"%s\" stops: benefits.workers_per_database is %d",
							my_share, dbname, benefits_workers_per_database)));
			proc_exit(0);
		}
		if (!benefits_worker_delivery || retiring)
		{
			need_claim = false;
			next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAX_SLEEP_MS);
		}
		else if (need_claim && ClaimRoom(inflight) > 0)
		{
			ClaimArgs	args = {0};

			args.limit = ClaimRoom(inflight);
			reported_inflight = -1;
			if (RunUnit("claiming jobs", ClaimUnit, &args) && args.ready)
			{
				if (!stale_released)
				{
					stale_released = true;
					WorkerStaleReleaseDone();
				}
				extension_ready = true;
				need_claim = args.more;
				if (args.next_due_ms >= 0)
					next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   (long) Min(args.next_due_ms + 1, MAX_SLEEP_MS));
				else
					next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAX_SLEEP_MS);
				MemoryContextSwitchTo(CompletedContext);
				completed = SendJobs(args.jobs, completed);
				MemoryContextSwitchTo(LoopContext);
			}
			else
			{
				/* not installed, being dropped, or failing: look again later */
				extension_ready = false;
				need_claim = false;
				next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), IDLE_CHECK_MS);
			}
		}

		inflight = HttpInflight();
		if (inflight != reported_inflight)
		{
			char		activity[64];

			snprintf(activity, sizeof(activity), "%d requests in flight", inflight);
			pgstat_report_activity(inflight > 0 ? STATE_RUNNING : STATE_IDLE,
								   inflight > 0 ? activity : "waiting for jobs");
			reported_inflight = inflight;
		}
		if (inflight == 0 && (completed != NIL || need_claim))
			continue;

		/* sleep until woken, due, or (with requests in flight) network activity */
		if (extension_ready)
			timeout = Min(timeout, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_due));
		else
			timeout = Min(timeout, IDLE_CHECK_MS);
		timeout = Max(Min(timeout, MAX_SLEEP_MS), 1);
		if (inflight > 0)
		{
			/* finished jobs wait at most RECORD_INTERVAL_MS to be recorded */
			if (completed != NIL)
				timeout = Min(timeout, RECORD_INTERVAL_MS);
			/* no sleep when there is room and more work is due */
			if (need_claim && ClaimRoom(inflight) > 0)
				timeout = 0;
			MemoryContextSwitchTo(CompletedContext);
			completed = HttpWait(timeout, completed);
			MemoryContextSwitchTo(LoopContext);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
	}
}
