/*
 * launcher.c — the static background worker that starts one delivery worker
 * per database named in benefits.database_names.
 *
 * The launcher connects to no database.  It registers a dynamic worker per
 * name, notices when one stops (its database was dropped, the worker failed)
 * and starts it again with exponential backoff, so a missing database costs
 * a log line every few minutes instead of a crash loop.  On SIGHUP it rereads
 * the list: new names get a worker, removed names have theirs terminated.
 *
 * Each database gets benefits.workers_per_database workers, one per share of
 * its outbox (the share is the worker's main argument).  When the setting
 * grows, the launcher starts the new shares; when it shrinks, the workers of
 * the shares beyond it finish what they have in flight, record it and exit
 * on their own (worker.c), and are then forgotten, not restarted: stopping
 * them here would leave their jobs leased until the leases expire.
 *
 * Concurrency: the launcher is a single process; its state is local.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "worker.h"

/* One worker process: a share of one database. */
typedef struct ShareWorker
{
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz next_start;
	int			failures;
} ShareWorker;

typedef struct DatabaseWorker
{
	char		name[NAMEDATALEN];
	ShareWorker shares[BENEFITS_MAX_WORKERS_PER_DATABASE];
	bool		wanted;
} DatabaseWorker;

static DatabaseWorker databases[BENEFITS_MAX_DATABASES];
static int	ndatabases = 0;

PGDLLEXPORT void benefits_launcher_main(Datum main_arg);

/* Register the launcher; called from _PG_init while preloading. */
void
WorkerRegisterLauncher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "$libdir/benefits");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "benefits_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "benefits launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "benefits launcher");
	RegisterBackgroundWorker(&worker);
}

/* Mark the databases of the current setting as wanted, adding new ones. */
static void
ReadDatabaseList(void)
{
	char	   *list = pstrdup(benefits_database_names ? benefits_database_names : "");
	char	   *saveptr = NULL;

	for (int i = 0; i < ndatabases; i++)
		databases[i].wanted = false;
	for (char *tok = strtok_r(list, ",", &saveptr); tok; tok = strtok_r(NULL, ",", &saveptr))
	{
		char	   *end;
		bool		known = false;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*tok == '\0')
			continue;
		if (strlen(tok) >= NAMEDATALEN)
		{
			ereport(WARNING,
					(errmsg("benefits.database_names: database name \"%s\" is too long", tok)));
			continue;
		}
		for (int i = 0; i < ndatabases; i++)
		{
			if (strcmp(databases[i].name, tok) == 0)
			{
				databases[i].wanted = true;
				known = true;
			}
		}
		if (known)
			continue;
		if (ndatabases >= BENEFITS_MAX_DATABASES)
		{
			ereport(WARNING,
					(errmsg("benefits.database_names names more than %d databases; \"%s\" is not served",
							BENEFITS_MAX_DATABASES, tok)));
			continue;
		}
		memset(&databases[ndatabases], 0, sizeof(DatabaseWorker));
		strlcpy(databases[ndatabases].name, tok, NAMEDATALEN);
		databases[ndatabases].wanted = true;
		ndatabases++;
	}
	pfree(list);
}

/* Start the worker of one share of a database. */
static void
StartShareWorker(DatabaseWorker *db, int share)
{
	BackgroundWorker worker;
	ShareWorker *w = &db->shares[share];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "$libdir/benefits");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "benefits_worker_main");
	if (share == 0)
		snprintf(worker.bgw_name, BGW_MAXLEN, "benefits worker for %s", db->name);
	else
		snprintf(worker.bgw_name, BGW_MAXLEN, "benefits worker %d for %s", share, db->name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "benefits worker");
	strlcpy(worker.bgw_extra, db->name, BGW_EXTRALEN);
	worker.bgw_main_arg = Int32GetDatum(share);
	worker.bgw_notify_pid = MyProcPid;

	w->started_at = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&worker, &w->handle))
	{
		w->handle = NULL;
		w->failures++;
		w->next_start = TimestampTzPlusMilliseconds(w->started_at, 10000);
		ereport(WARNING,
				(errmsg("benefits: could not start worker %d for database \"%s\"", share, db->name),
				 errhint("Raise max_worker_processes.")));
	}
}

/*
 * Notice that a share's worker stopped; schedule its restart with backoff
 * (logged when it is still wanted).
 */
static void
NoteStopped(DatabaseWorker *db, int share, bool wanted, TimestampTz now)
{
	ShareWorker *w = &db->shares[share];
	pid_t		pid;
	long		delay;

	if (w->handle == NULL || GetBackgroundWorkerPid(w->handle, &pid) != BGWH_STOPPED)
		return;
	pfree(w->handle);
	w->handle = NULL;
	/* a worker that ran a while before stopping starts a fresh backoff */
	if (TimestampDifferenceExceeds(w->started_at, now, 60000))
		w->failures = 0;
	w->failures++;
	delay = Min(300000L, 1000L << Min(w->failures - 1, 9));
	w->next_start = TimestampTzPlusMilliseconds(now, delay);
	if (wanted)
		ereport(LOG,
				(errmsg("benefits: worker for database \"%s\" stopped; restarting in %ld s",
						db->name, delay / 1000),
				 share > 0 ? errdetail("It served share %d of the database's outbox.", share) : 0));
}

/*
 * Start, restart and stop the workers of one database; returns ms until its
 * next scheduled start, and whether any of its workers is still running.
 */
static long
ReconcileDatabase(DatabaseWorker *db, TimestampTz now, bool *running)
{
	long		next = 1000;

	*running = false;
	for (int share = 0; share < BENEFITS_MAX_WORKERS_PER_DATABASE; share++)
	{
		ShareWorker *w = &db->shares[share];
		bool		wanted = db->wanted && share < benefits_workers_per_database;

		NoteStopped(db, share, wanted, now);
		if (w->handle != NULL)
		{
			/* a share beyond the setting drains and exits by itself */
			if (!db->wanted)
				TerminateBackgroundWorker(w->handle);
			*running = true;
		}
		else if (!wanted)
			w->failures = 0;
		else if (now >= w->next_start)
		{
			StartShareWorker(db, share);
			*running |= w->handle != NULL;
		}
		else
			next = Min(next, TimestampDifferenceMilliseconds(now, w->next_start));
	}
	return next;
}

/* Start, restart and stop workers; returns ms until the next scheduled start. */
static long
ReconcileWorkers(void)
{
	TimestampTz now = GetCurrentTimestamp();
	/* look at the workers every second: stop notifications do not always
	 * set the latch of a launcher without a database connection */
	long		next = 1000;
	int			keep = 0;

	for (int i = 0; i < ndatabases; i++)
	{
		bool		running;

		next = Min(next, ReconcileDatabase(&databases[i], now, &running));
		/* a database no longer named is forgotten once its workers stopped */
		if (databases[i].wanted || running)
			databases[keep++] = databases[i];
	}
	ndatabases = keep;
	return Max(next, 10);
}

/* Main loop of the launcher. */
void
benefits_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	ReadDatabaseList();
	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ReadDatabaseList();
		}
		timeout = ReconcileWorkers();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
