/*
 * launcher.c — the static background worker that starts one delivery worker
 * per database named in benefits.database_names.
 *
 * The launcher connects to no database.  It registers a dynamic worker per
 * name, notices when one stops (its database was dropped, the worker failed)
 * and starts it again with exponential backoff, so a missing database costs
 * a log line every few minutes instead of a crash loop.  On SIGHUP it rereads
 * the list: new names get a worker, removed names have theirs terminated.
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

typedef struct DatabaseWorker
{
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz next_start;
	int			failures;
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

/* Start the worker of one database. */
static void
StartDatabaseWorker(DatabaseWorker *db)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "$libdir/benefits");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "benefits_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "benefits worker for %s", db->name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "benefits worker");
	strlcpy(worker.bgw_extra, db->name, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;

	db->started_at = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&worker, &db->handle))
	{
		db->handle = NULL;
		db->failures++;
		db->next_start = TimestampTzPlusMilliseconds(db->started_at, 10000);
		ereport(WARNING,
				(errmsg("benefits: could not start the worker for database \"%s\"", db->name),
				 errhint("Raise max_worker_processes.")));
	}
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
		DatabaseWorker *db = &databases[i];
		pid_t		pid;

		if (db->handle && GetBackgroundWorkerPid(db->handle, &pid) == BGWH_STOPPED)
		{
			pfree(db->handle);
			db->handle = NULL;
			/* a worker that ran a while before stopping starts a fresh backoff */
			if (TimestampDifferenceExceeds(db->started_at, now, 60000))
				db->failures = 0;
			db->failures++;
			db->next_start = TimestampTzPlusMilliseconds(now, Min(300000L, 1000L << Min(db->failures - 1, 9)));
			if (db->wanted)
				ereport(LOG,
						(errmsg("benefits: worker for database \"%s\" stopped; restarting in %ld s",
								db->name, Min(300000L, 1000L << Min(db->failures - 1, 9)) / 1000)));
		}
		if (!db->wanted)
		{
			if (db->handle)
			{
				TerminateBackgroundWorker(db->handle);
				keep++;			/* forget it once it has stopped */
				databases[keep - 1] = *db;
				continue;
			}
			continue;
		}
		if (db->handle == NULL)
		{
			if (now >= db->next_start)
				StartDatabaseWorker(db);
			else
				next = Min(next, TimestampDifferenceMilliseconds(now, db->next_start));
		}
		databases[keep++] = *db;
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
