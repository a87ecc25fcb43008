/*
 * license_forward.c — the validation forwarder: a hot standby's validation
 * counts reach the primary.
 *
 * validate_license counts in shared memory (license_stats.c), and on a
 * primary the worker writes those counts into benefits.license_keys.  A hot
 * standby cannot write, so this background worker, which runs only while the
 * server is in recovery, takes each database's pending counts and sends
 * them to the same database on the primary, over a libpq connection made
 * with benefits.validation_forward_conninfo (default: the standby's own
 * primary_conninfo), by calling benefits.receive_validation_counts there.
 *
 * Exactly once, as far as the standby lives: the counts taken for a database
 * form a numbered batch, kept in this process until the primary has
 * acknowledged it and sent again, unchanged and with the same number, until
 * then.  The primary records the last batch number of each sender (a random
 * id drawn when this process starts) and ignores a batch it has applied, so
 * a lost acknowledgement never counts twice.  At a clean shutdown the
 * forwarder sends what is pending one last time; a crash loses the counts
 * not yet acknowledged, as it does on a primary.  When the standby is
 * promoted the forwarder exits: the counts it has not taken are written by
 * the new primary's worker, and a batch the old primary never acknowledged
 * is dropped (it may have been applied there already).
 *
 * Runs outside any transaction while it talks to the primary; a database
 * whose primary cannot be reached (or lacks the extension) keeps its batch
 * and is tried again, backing off up to a minute, without holding up the
 * others.  Its statements are blocking libpq calls bounded by connect and
 * statement timeouts, so a shutdown waits at most that long.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "libpq-fe.h"
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
#include "utils/uuid.h"

#include "benefits.h"
#include "license_stats.h"

/* the longest wait between two attempts for an unreachable primary */
#define FORWARD_MAX_BACKOFF_MS (60 * 1000)
/* libpq's connect timeout, in seconds */
#define FORWARD_CONNECT_TIMEOUT "5"
/* the primary's statement timeout, and names resolved in pg_catalog first */
#define FORWARD_OPTIONS "-c statement_timeout=10s -c search_path=pg_catalog"

static char *forward_conninfo = NULL;

/* One database's connection to the primary and its batch in flight. */
typedef struct ForwardTarget
{
	Oid			dbid;
	char		dbname[NAMEDATALEN];
	PGconn	   *conn;
	LicenseKeyCount *batch;		/* in TopMemoryContext; NULL: none */
	int			nbatch;
	int64		batch_number;
	int			failures;		/* in a row, for the back-off */
	TimestampTz next_attempt;
	char		last_error[256];	/* logged once until it changes */
} ForwardTarget;

static List *targets = NIL;
/* what one round allocates besides the batches (those live until acknowledged) */
static MemoryContext round_context = NULL;
static pg_uuid_t sender;
static int64 last_batch_number = 0;

/* The setting, and the forwarder's registration, when preloading. */
void
LicenseForwarderRegister(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("benefits.validation_forward_conninfo",
							   "Connection string a hot standby uses to send its validation counts to the primary.",
							   "Empty: the standby's primary_conninfo. The database name is each database's own.",
							   &forward_conninfo, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "$libdir/benefits", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "benefits_forwarder_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "benefits validation forwarder", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "benefits validation forwarder", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Forget a database's batch: acknowledged, or with nowhere to go. */
static void
ForgetBatch(ForwardTarget *target)
{
	if (target->batch != NULL)
		pfree(target->batch);
	target->batch = NULL;
	target->nbatch = 0;
}

/* The target of a database, created on first use. */
static ForwardTarget *
TargetOf(Oid dbid)
{
	ListCell   *lc;
	ForwardTarget *target;
	char	   *name;
	MemoryContext old;

	foreach(lc, targets)
	{
		target = (ForwardTarget *) lfirst(lc);
		if (target->dbid == dbid)
			return target;
	}
	StartTransactionCommand();
	name = get_database_name(dbid);
	target = MemoryContextAllocZero(TopMemoryContext, sizeof(ForwardTarget));
	target->dbid = dbid;
	if (name != NULL)
		strlcpy(target->dbname, name, NAMEDATALEN);
	CommitTransactionCommand();
	old = MemoryContextSwitchTo(TopMemoryContext);
	targets = lappend(targets, target);
	MemoryContextSwitchTo(old);
	return target;
}

/* The connection string to use: the setting, or else primary_conninfo. */
static const char *
ForwardConninfo(void)
{
	if (forward_conninfo != NULL && forward_conninfo[0] != '\0')
		return forward_conninfo;
	return GetConfigOption("primary_conninfo", true, false);
}

/* Log a failure to reach a database's primary, once until it changes. */
static void
ForwardFailed(ForwardTarget *target, const char *what, const char *error)
{
	char		message[256];
	long		backoff = Min((long) 1000 << Min(target->failures, 16), FORWARD_MAX_BACKOFF_MS);

	snprintf(message, sizeof(message), "%s: %s", what, error ? error : "");
	if (strcmp(message, target->last_error) != 0)
	{
		ereport(LOG,
				(errmsg("benefits: could not send validation counts of database \"%s\" to the primary",
						target->dbname),
				 errdetail("%s", message),
				 errhint("The counts are kept and sent again; the primary's database needs the benefits extension, and the connecting role EXECUTE on benefits.receive_validation_counts (role benefits_replica).")));
		strlcpy(target->last_error, message, sizeof(target->last_error));
	}
	if (target->conn != NULL)
	{
		PQfinish(target->conn);
		target->conn = NULL;
	}
	target->failures++;
	target->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
}

/* Connect to the database on the primary; false (logged) when that fails. */
static bool
ForwardConnect(ForwardTarget *target)
{
	const char *conninfo = ForwardConninfo();
	const char *keywords[] = {"connect_timeout", "options", "dbname", "dbname", "application_name", NULL};
	const char *values[] = {FORWARD_CONNECT_TIMEOUT, FORWARD_OPTIONS,
	conninfo ? conninfo : "", target->dbname, "benefits validation forwarder", NULL};

	if (target->conn != NULL && PQstatus(target->conn) == CONNECTION_OK)
		return true;
	if (conninfo == NULL || conninfo[0] == '\0')
	{
		ForwardFailed(target, "no connection string", "primary_conninfo and benefits.validation_forward_conninfo are empty");
		return false;
	}
	if (target->conn != NULL)
		PQfinish(target->conn);
	/* the first dbname is the connection string, expanded; the second names the database */
	target->conn = PQconnectdbParams(keywords, values, 1);
	if (PQstatus(target->conn) != CONNECTION_OK)
	{
		ForwardFailed(target, "connection failed", PQerrorMessage(target->conn));
		return false;
	}
	return true;
}

/* The batch as three array literals: license key ids, counts, last times. */
static void
BatchArrays(const ForwardTarget *target, StringInfo ids, StringInfo counts, StringInfo lasts)
{
	initStringInfo(ids);
	initStringInfo(counts);
	initStringInfo(lasts);
	for (int i = 0; i < target->nbatch; i++)
	{
		const LicenseKeyCount *c = &target->batch[i];
		const char *sep = i > 0 ? "," : "{";

		appendStringInfo(ids, "%s%s", sep, BenefitsUuidText(&c->license_key_id));
		appendStringInfo(counts, "%s" INT64_FORMAT, sep, c->count);
		/* ISO 8601 with its UTC offset, whatever DateStyle is */
		appendStringInfo(lasts, "%s\"%s\"", sep, timestamptz_to_str(c->last));
	}
	appendStringInfoString(ids, target->nbatch > 0 ? "}" : "{}");
	appendStringInfoString(counts, target->nbatch > 0 ? "}" : "{}");
	appendStringInfoString(lasts, target->nbatch > 0 ? "}" : "{}");
}

/* Send a database's batch; true when the primary has acknowledged it. */
static bool
ForwardBatch(ForwardTarget *target)
{
	const char *params[5];
	char		batch_number[32];
	StringInfoData ids,
				counts,
				lasts;
	PGresult   *result;
	bool		ok;

	if (!ForwardConnect(target))
		return false;
	snprintf(batch_number, sizeof(batch_number), INT64_FORMAT, target->batch_number);
	BatchArrays(target, &ids, &counts, &lasts);
	params[0] = BenefitsUuidText(&sender);
	params[1] = batch_number;
	params[2] = ids.data;
	params[3] = counts.data;
	params[4] = lasts.data;
	result = PQexecParams(target->conn,
						  "SELECT benefits.receive_validation_counts($1::uuid, $2::bigint, $3::uuid[], $4::bigint[], $5::timestamptz[])",
						  5, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(result) == PGRES_TUPLES_OK;
	if (!ok)
		ForwardFailed(target, "receive_validation_counts failed", PQresultErrorMessage(result));
	PQclear(result);
	return ok;
}

/* Send what is pending for one database: its batch in flight, or a new one. */
static void
ForwardDatabase(ForwardTarget *target, bool last_chance)
{
	if (!last_chance && GetCurrentTimestamp() < target->next_attempt)
		return;
	if (target->batch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		target->batch = LicenseStatsTake(target->dbid, &target->nbatch);
		MemoryContextSwitchTo(old);
		if (target->nbatch == 0)
		{
			ForgetBatch(target);
			return;
		}
		target->batch_number = ++last_batch_number;
	}
	if (target->dbname[0] == '\0')
	{
		/* a database dropped since: its counts have nowhere to go */
		ForgetBatch(target);
		return;
	}
	if (!ForwardBatch(target))
		return;
	ForgetBatch(target);
	target->failures = 0;
	target->last_error[0] = '\0';
}

/* One round: every database with counts pending or a batch in flight. */
static void
ForwardAll(bool last_chance)
{
	ListCell   *lc;
	List	   *dbids = LicenseStatsDatabases();

	foreach(lc, dbids)
		(void) TargetOf(lfirst_oid(lc));
	foreach(lc, targets)
	{
		CHECK_FOR_INTERRUPTS();
		ForwardDatabase((ForwardTarget *) lfirst(lc), last_chance);
	}
	list_free(dbids);
}

/*
 * After a promotion: drop the batches the old primary has not acknowledged.
 * It may have applied one and replicated that here before the failover, so
 * writing it now could count it twice; a count lost is the lesser harm.
 */
static void
DropUnacknowledgedBatches(void)
{
	ListCell   *lc;

	foreach(lc, targets)
	{
		ForwardTarget *target = (ForwardTarget *) lfirst(lc);
		int64		validations = 0;

		if (target->batch == NULL)
			continue;
		for (int i = 0; i < target->nbatch; i++)
			validations += target->batch[i].count;
		ereport(LOG,
				(errmsg("benefits: %lld validations of database \"%s\" not acknowledged by the old primary are not counted",
						(long long) validations, target->dbname)));
		ForgetBatch(target);
	}
}

/* At a clean exit (not a crash): send what is pending one last time. */
static void
ForwardAtExit(int code, Datum arg)
{
	if (!RecoveryInProgress())
		return;
	/* no further interrupt may cut the last sends short */
	HOLD_INTERRUPTS();
	AbortOutOfAnyTransaction();
	ForwardAll(true);
}

/* The forwarder's main loop; exits at once on a server not in recovery. */
void
benefits_forwarder_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (!RecoveryInProgress())
		proc_exit(0);			/* a primary: its worker writes the counts */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("benefits validation forwarder");
	sender = BenefitsRandomUuid();
	before_shmem_exit(ForwardAtExit, (Datum) 0);
	round_context = AllocSetContextCreate(TopMemoryContext, "benefits forwarder round", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		interval = benefits_validation_flush_interval > 0 ? benefits_validation_flush_interval : 1000;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(round_context);
		MemoryContextSwitchTo(round_context);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!RecoveryInProgress())
		{
			DropUnacknowledgedBatches();
			ereport(LOG, (errmsg("benefits: validation forwarder stops: the server is no longer a standby")));
			proc_exit(0);
		}
		if (benefits_validation_flush_interval > 0)
			ForwardAll(false);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, interval, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
