/*
 * outbox_wake.c — waking a database's worker when outbox rows commit.
 *
 * Shared memory holds one slot per served database with the latch of the
 * worker serving it.  An AFTER INSERT statement trigger on benefits.outbox
 * notes that the transaction wrote jobs; at XACT_EVENT_COMMIT (when the rows
 * are already visible to others) the transaction callback sets that latch.
 * A rolled-back transaction wakes nobody.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "trigger_guard.h"
#include "worker.h"

typedef struct WorkerSlot
{
	Oid			dboid;
	pid_t		pid;
	Latch	   *latch;
} WorkerSlot;

typedef struct WorkerShared
{
	slock_t		mutex;
	WorkerSlot	slots[BENEFITS_MAX_DATABASES];
} WorkerShared;

static WorkerShared *worker_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_at_commit = false;
static bool callback_registered = false;
static bool am_worker = false;

/* Ask the postmaster for our slot array. */
static void
WorkerShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerShared)));
}

/* Create (postmaster) or attach to (backends) the slot array. */
static void
WorkerShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	worker_shared = ShmemInitStruct("benefits worker", sizeof(WorkerShared), &found);
	if (!found)
	{
		memset(worker_shared, 0, sizeof(WorkerShared));
		SpinLockInit(&worker_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared-memory hooks; called from _PG_init when preloaded. */
void
WorkerShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = WorkerShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = WorkerShmemStartup;
}

/* Free this process's slot when it exits. */
static void
WorkerSlotRelease(int code, Datum arg)
{
	int			i = DatumGetInt32(arg);

	SpinLockAcquire(&worker_shared->mutex);
	if (worker_shared->slots[i].pid == MyProcPid)
	{
		worker_shared->slots[i].pid = 0;
		worker_shared->slots[i].latch = NULL;
		worker_shared->slots[i].dboid = InvalidOid;
	}
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * Publish this worker's latch for its database.  Returns false when another
 * live process already serves the database: exactly one worker per database
 * is what makes resetting its stale leases at start-up safe.
 */
bool
WorkerSlotAcquire(Oid dboid)
{
	int			free_slot = -1;
	pid_t		other = 0;

	if (worker_shared == NULL)
		return false;
	SpinLockAcquire(&worker_shared->mutex);
	for (int i = 0; i < BENEFITS_MAX_DATABASES; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->pid != 0 && slot->dboid == dboid)
		{
			other = slot->pid;
			break;
		}
		if (slot->pid == 0 && free_slot < 0)
			free_slot = i;
	}
	if (other == 0 && free_slot >= 0)
	{
		worker_shared->slots[free_slot].dboid = dboid;
		worker_shared->slots[free_slot].pid = MyProcPid;
		worker_shared->slots[free_slot].latch = &MyProc->procLatch;
	}
	SpinLockRelease(&worker_shared->mutex);
	if (other != 0 || free_slot < 0)
		return false;
	on_shmem_exit(WorkerSlotRelease, Int32GetDatum(free_slot));
	return true;
}

/* The worker's own outbox writes must not wake itself. */
void
WorkerSetAmWorker(void)
{
	am_worker = true;
}

/* Set the latch of the worker serving this database, if there is one. */
static void
WorkerWakeDatabase(Oid dboid)
{
	Latch	   *latch = NULL;

	if (worker_shared == NULL)
		return;
	SpinLockAcquire(&worker_shared->mutex);
	for (int i = 0; i < BENEFITS_MAX_DATABASES; i++)
	{
		if (worker_shared->slots[i].pid != 0 && worker_shared->slots[i].dboid == dboid)
		{
			latch = worker_shared->slots[i].latch;
			break;
		}
	}
	SpinLockRelease(&worker_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* At commit, wake the worker if this transaction queued jobs. */
static void
OutboxXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
			{
				wake_at_commit = false;
				WorkerWakeDatabase(MyDatabaseId);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction commits elsewhere; the timer finds it */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* Arrange for a wake-up at the end of the current transaction. */
static void
WakeAtCommit(void)
{
	if (am_worker || worker_shared == NULL)
		return;
	if (!callback_registered)
	{
		RegisterXactCallback(OutboxXactCallback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

PG_FUNCTION_INFO_V1(outbox_wake);

/* AFTER INSERT statement trigger on benefits.outbox. */
Datum
outbox_wake(PG_FUNCTION_ARGS)
{
	(void) TriggerGuard(fcinfo, "outbox_wake", FIRES_AFTER_STATEMENT, "outbox");
	WakeAtCommit();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(wake_worker);

/* benefits.wake_worker(): wake this database's worker when the caller commits. */
Datum
wake_worker(PG_FUNCTION_ARGS)
{
	WakeAtCommit();
	PG_RETURN_VOID();
}
