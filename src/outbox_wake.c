/*
 * outbox_wake.c — waking a database's worker when outbox rows commit.
 *
 * Shared memory holds one slot per served database with the latch of the
 * worker serving it.  An AFTER INSERT statement trigger on benefits.outbox
 * notes that the transaction wrote jobs; at XACT_EVENT_COMMIT (when the rows
 * are already visible to others) the transaction callback sets that latch.
 * A rolled-back transaction wakes nobody.
 *
 * A database may have several workers (benefits.workers_per_database), one
 * slot each, told apart by their share.  A commit wakes all of them; a
 * worker that records results wakes its siblings, whose successors may have
 * been waiting on those jobs.  The slots are read and written under one
 * spinlock, never held across anything but the slot array; latches are set
 * after it is released.
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
	int			share;			/* which share of the database's outbox */
	pid_t		pid;
	Latch	   *latch;
	bool		releasing_stale;	/* first of its database: resetting old leases */
} WorkerSlot;

#define WORKER_SLOTS (BENEFITS_MAX_DATABASES * BENEFITS_MAX_WORKERS_PER_DATABASE)

typedef struct WorkerShared
{
	slock_t		mutex;
	WorkerSlot	slots[WORKER_SLOTS];
} WorkerShared;

static WorkerShared *worker_shared = NULL;
static int	my_slot = -1;
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
		memset(&worker_shared->slots[i], 0, sizeof(WorkerSlot));
	SpinLockRelease(&worker_shared->mutex);
	my_slot = -1;
}

/*
 * Publish this worker's latch for its share of its database.  Returns false
 * when another live process already serves that share.  *first is set when
 * no other worker of the database is alive: that worker alone resets the
 * leases a dead predecessor left (every running job is then stale), and its
 * siblings claim nothing until it is done (WorkerStaleReleaseDone).
 */
bool
WorkerSlotAcquire(Oid dboid, int share, bool *first)
{
	int			free_slot = -1;
	bool		taken = false;
	bool		alone = true;

	if (worker_shared == NULL)
		return false;
	SpinLockAcquire(&worker_shared->mutex);
	for (int i = 0; i < WORKER_SLOTS; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->pid != 0 && slot->dboid == dboid)
		{
			alone = false;
			taken |= slot->share == share;
		}
		if (slot->pid == 0 && free_slot < 0)
			free_slot = i;
	}
	if (!taken && free_slot >= 0)
	{
		WorkerSlot *slot = &worker_shared->slots[free_slot];

		slot->dboid = dboid;
		slot->share = share;
		slot->pid = MyProcPid;
		slot->latch = &MyProc->procLatch;
		slot->releasing_stale = alone;
	}
	SpinLockRelease(&worker_shared->mutex);
	if (taken || free_slot < 0)
		return false;
	my_slot = free_slot;
	*first = alone;
	on_shmem_exit(WorkerSlotRelease, Int32GetDatum(free_slot));
	return true;
}

/* The first worker of the database has reset the old leases. */
void
WorkerStaleReleaseDone(void)
{
	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->slots[my_slot].releasing_stale = false;
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * What the other live workers of this worker's database look like: which
 * shares are served, whether this one is the lowest share alive, and whether
 * a first worker is still resetting old leases.
 */
static void
ScanSiblings(bool *served, bool *lowest, bool *waiting)
{
	Oid			dboid = worker_shared->slots[my_slot].dboid;
	int			mine = worker_shared->slots[my_slot].share;

	*lowest = true;
	*waiting = false;
	SpinLockAcquire(&worker_shared->mutex);
	for (int i = 0; i < WORKER_SLOTS; i++)
	{
		WorkerSlot *slot = &worker_shared->slots[i];

		if (slot->pid == 0 || slot->dboid != dboid)
			continue;
		served[slot->share] = true;
		*lowest &= slot->share >= mine;
		*waiting |= slot->releasing_stale && i != my_slot;
	}
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * Which shares this worker claims: its own, and, when it is the lowest share
 * alive in its database, every share below `shares` that no live worker
 * serves (one that failed to start, or stopped), so no share is left
 * unserved.  Returns how many it wrote to out[] (0 while the first worker
 * is still resetting old leases: claiming then could take a job that reset
 * would hand out again).
 */
int
WorkerClaimShares(int shares, int *out)
{
	bool		served[BENEFITS_MAX_WORKERS_PER_DATABASE] = {0};
	bool		lowest;
	bool		waiting;
	int			n = 0;

	ScanSiblings(served, &lowest, &waiting);
	if (waiting)
		return 0;
	out[n++] = worker_shared->slots[my_slot].share;
	for (int s = 0; lowest && s < shares; s++)
		if (!served[s])
			out[n++] = s;
	return n;
}

/*
 * Is this worker the lowest share alive in its database?  That one makes the
 * database's periodic calls (counter flush, maintenance, pruning).
 */
bool
WorkerIsLowestShare(void)
{
	bool		served[BENEFITS_MAX_WORKERS_PER_DATABASE] = {0};
	bool		lowest;
	bool		waiting;

	ScanSiblings(served, &lowest, &waiting);
	return lowest;
}

/* The worker's own outbox writes must not wake itself. */
void
WorkerSetAmWorker(void)
{
	am_worker = true;
}

/*
 * Set the latches of the workers serving this database (all of them: each
 * claims its own share), except this process's own.
 */
static void
WorkerWakeDatabase(Oid dboid)
{
	Latch	   *latches[BENEFITS_MAX_WORKERS_PER_DATABASE];
	int			n = 0;

	if (worker_shared == NULL)
		return;
	SpinLockAcquire(&worker_shared->mutex);
	for (int i = 0; i < WORKER_SLOTS && n < BENEFITS_MAX_WORKERS_PER_DATABASE; i++)
	{
		if (worker_shared->slots[i].pid != 0 && worker_shared->slots[i].dboid == dboid &&
			worker_shared->slots[i].pid != MyProcPid)
			latches[n++] = worker_shared->slots[i].latch;
	}
	SpinLockRelease(&worker_shared->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/*
 * Wake the other workers of this worker's database: the jobs it just
 * finished may have been holding back successors of their share.
 */
void
WorkerWakeSiblings(void)
{
	WorkerWakeDatabase(MyDatabaseId);
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
