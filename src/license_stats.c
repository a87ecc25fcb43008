/*
 * license_stats.c — validation counters off the hot path.
 *
 * A plain validate_license (no increment_usage) must write nothing in the
 * caller's transaction: it has to work in a READ ONLY transaction and on a
 * hot standby, and it has to stay about as cheap as a primary-key lookup.
 * So the per-key counters `validations` and `last_validated_at` are not
 * updated there.  Each successful validation is counted in a fixed-size hash
 * in shared memory, keyed by (database, license key id).  The hash is split
 * into STATS_PARTITIONS partitions, each under its own LWLock, so concurrent
 * validations of different keys rarely wait for each other; a flush takes
 * every partition's lock.
 * benefits.flush_validation_stats() moves the counts of its database into
 * benefits.license_keys with one UPDATE and returns the rows updated.
 *
 * Flush delay: the background worker calls flush_validation_stats() in every
 * database it serves (benefits.database_names) every
 * benefits.validation_flush_interval (default 1s), and earlier when the hash
 * is more than half full (a flushing worker registers its latch here and is
 * woken).  So the counters in license_keys lag the
 * validations by about that interval.  validate_license itself reports the
 * counters including what is still pending, so a caller sees its own
 * validation at once.  In a database the worker does not serve, counts wait
 * until someone calls flush_validation_stats().  A hot standby cannot write:
 * its validation forwarder (license_forward.c) takes the counts and sends
 * them to the primary, where benefits.receive_validation_counts() applies
 * them as a flush would.
 *
 * When the hash is full, further validations of keys not yet in it are not
 * counted; they are added to a "dropped" total shown by
 * benefits.validation_stats().  The counters are statistics: a server crash
 * loses the counts not yet flushed.  A flush whose transaction aborts puts
 * its counts back.
 *
 * Without shared_preload_libraries there is no shared memory to count in:
 * validations are not counted and each backend says so once, with a WARNING.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "benefits.h"
#include "license_stats.h"

PG_FUNCTION_INFO_V1(flush_validation_stats);
PG_FUNCTION_INFO_V1(validation_stats);
PG_FUNCTION_INFO_V1(receive_validation_counts);

/* how far ahead of the primary's clock a standby's validation times may be */
#define RECEIVE_CLOCK_SKEW_MS (60 * 60 * 1000)

#define STATS_TRANCHE "benefits_validation_stats"
#define STATS_PARTITIONS 16

typedef struct StatsKey
{
	Oid			dbid;
	pg_uuid_t	license_key_id;
} StatsKey;

typedef struct StatsEntry
{
	StatsKey	key;			/* hash key: first */
	int64		count;
	TimestampTz last;
} StatsEntry;

/*
 * Background workers that flush (one per database served) register their
 * latch when they flush; when the hash is more than half full they are all
 * woken once, so they flush before it fills.
 */
#define MAX_FLUSHERS 32

typedef struct StatsFlusher
{
	Oid			dbid;
	Latch	   *latch;
} StatsFlusher;

typedef struct StatsShared
{
	LWLock	   *lock;			/* protects the flusher fields below */
	LWLockPadded *partitions;	/* STATS_PARTITIONS locks over the hash */
	int			nflushers;
	StatsFlusher flushers[MAX_FLUSHERS];
	bool		wake_sent;		/* flushers woken since the last flush */
	pg_atomic_uint64 dropped;	/* validations not counted: hash full */
} StatsShared;

int			benefits_validation_flush_interval = 1000;
static int	validation_stats_max = 65536;

static StatsShared *Stats = NULL;
static HTAB *StatsHash = NULL;
static bool UnavailableWarned = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Counts taken out of shared memory by flushes of the current transaction:
 * they go back if the transaction (or the subtransaction that flushed)
 * aborts.  Kept in TopMemoryContext.
 */
typedef struct TakenEntry
{
	StatsEntry	entry;
	SubTransactionId subid;
} TakenEntry;

static TakenEntry *Taken = NULL;
static int	TakenCount = 0;
static int	TakenSize = 0;
static bool CallbacksRegistered = false;

static SPIPlanPtr FlushPlan = NULL;

/* Shared memory needed: the control struct and the hash at full size. */
static Size
StatsShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(StatsShared)),
					hash_estimate_size(validation_stats_max, sizeof(StatsEntry)));
}

/* shmem_request_hook: reserve the memory and the lock. */
static void
StatsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(StatsShmemSize());
	RequestNamedLWLockTranche(STATS_TRANCHE, 1 + STATS_PARTITIONS);
}

/* shmem_startup_hook: create (or attach to) the control struct and hash. */
static void
StatsShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Stats = ShmemInitStruct("benefits validation stats", sizeof(StatsShared), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(STATS_TRANCHE);

		Stats->lock = &locks[0].lock;
		Stats->partitions = &locks[1];
		Stats->nflushers = 0;
		Stats->wake_sent = false;
		pg_atomic_init_u64(&Stats->dropped, 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(StatsKey);
	info.entrysize = sizeof(StatsEntry);
	info.num_partitions = STATS_PARTITIONS;
	StatsHash = ShmemInitHash("benefits validation stats hash",
							  validation_stats_max, validation_stats_max,
							  &info, HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The settings of validation counting, and its shared memory when loaded
 * through shared_preload_libraries.  Called from _PG_init.
 */
void
LicenseStatsInit(void)
{
	DefineCustomIntVariable("benefits.validation_flush_interval",
							"How often the background worker flushes validation counts into benefits.license_keys.",
							"0 turns the worker's flushes off: counts then wait for a call of benefits.flush_validation_stats().",
							&benefits_validation_flush_interval,
							1000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* A PGC_POSTMASTER setting can only be defined while preloading. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("benefits.validation_stats_max",
							"Number of license keys whose validation counts can wait in shared memory for a flush.",
							"When that many keys are pending, validations of further keys are not counted (see benefits.validation_stats()).",
							&validation_stats_max,
							65536, 128, 16 * 1024 * 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = StatsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = StatsShmemStartup;
}

/* Say once per backend that validations are not being counted. */
static void
WarnUnavailable(void)
{
	if (UnavailableWarned)
		return;
	UnavailableWarned = true;
	ereport(WARNING,
			errmsg("benefits: license validations are not being counted"),
			errdetail("The benefits library was not loaded through shared_preload_libraries, so validate_license cannot record validations and last_validated_at in shared memory; validate_license with increment_usage still counts."),
			errhint("Add benefits to shared_preload_libraries and restart the server."));
}

/* The hash key of a license key of this database, and its hash code. */
static uint32
MakeKey(StatsKey *key, const pg_uuid_t *license_key_id)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	memcpy(&key->license_key_id, license_key_id, sizeof(pg_uuid_t));
	return get_hash_value(StatsHash, key);
}

/* The lock of the partition a hash code falls in. */
static LWLock *
PartitionLock(uint32 hashcode)
{
	return &Stats->partitions[hashcode % STATS_PARTITIONS].lock;
}

/* Take or release every partition's lock, in order: the whole hash. */
static void
LockAllPartitions(LWLockMode mode)
{
	for (int i = 0; i < STATS_PARTITIONS; i++)
		LWLockAcquire(&Stats->partitions[i].lock, mode);
}

static void
UnlockAllPartitions(void)
{
	for (int i = STATS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&Stats->partitions[i].lock);
}

void
LicenseStatsCount(const pg_uuid_t *license_key_id, TimestampTz at,
				  int64 *pending, TimestampTz *pending_last)
{
	StatsKey	key;
	uint32		hashcode;
	LWLock	   *partition;
	StatsEntry *entry;
	bool		found;
	Latch	   *wake[MAX_FLUSHERS];
	int			nwake = 0;

	*pending = 0;
	*pending_last = DT_NOBEGIN;
	if (Stats == NULL)
	{
		WarnUnavailable();
		return;
	}

	hashcode = MakeKey(&key, license_key_id);
	partition = PartitionLock(hashcode);
	LWLockAcquire(partition, LW_EXCLUSIVE);
	entry = hash_search_with_hash_value(StatsHash, &key, hashcode, HASH_ENTER_NULL, &found);
	if (entry == NULL)
	{
		LWLockRelease(partition);
		pg_atomic_fetch_add_u64(&Stats->dropped, 1);
		return;
	}
	if (!found)
	{
		entry->count = 0;
		entry->last = at;
	}
	entry->count++;
	if (at > entry->last)
		entry->last = at;
	*pending = entry->count;
	*pending_last = entry->last;
	LWLockRelease(partition);

	/*
	 * Over half full: wake the flushers once rather than drop counts later.
	 * The flags and the count of entries are read without their locks, so
	 * they are approximate, which is all this needs; the flags are checked
	 * again under the lock.
	 */
	if (!found && !Stats->wake_sent && Stats->nflushers > 0 &&
		hash_get_num_entries(StatsHash) > validation_stats_max / 2)
	{
		LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
		if (!Stats->wake_sent && Stats->nflushers > 0)
		{
			Stats->wake_sent = true;
			for (int i = 0; i < Stats->nflushers; i++)
				wake[nwake++] = Stats->flushers[i].latch;
		}
		LWLockRelease(Stats->lock);
	}

	for (int i = 0; i < nwake; i++)
		SetLatch(wake[i]);
}

/*
 * Remember the calling background worker as the flusher of its database
 * (Stats->lock held exclusively).  A latch left by a worker that exited is
 * harmless: setting it wakes whatever process now owns it, once.
 */
static void
RegisterFlusher(void)
{
	int			i;

	if (MyBackendType != B_BG_WORKER)
		return;
	for (i = 0; i < Stats->nflushers; i++)
		if (Stats->flushers[i].dbid == MyDatabaseId)
			break;
	if (i == MAX_FLUSHERS)
		return;
	if (i == Stats->nflushers)
		Stats->nflushers++;
	Stats->flushers[i].dbid = MyDatabaseId;
	Stats->flushers[i].latch = MyLatch;
}

void
LicenseStatsPending(const pg_uuid_t *license_key_id,
					int64 *pending, TimestampTz *pending_last)
{
	StatsKey	key;
	uint32		hashcode;
	LWLock	   *partition;
	StatsEntry *entry;

	*pending = 0;
	*pending_last = DT_NOBEGIN;
	if (Stats == NULL)
		return;

	hashcode = MakeKey(&key, license_key_id);
	partition = PartitionLock(hashcode);
	LWLockAcquire(partition, LW_SHARED);
	entry = hash_search_with_hash_value(StatsHash, &key, hashcode, HASH_FIND, NULL);
	if (entry != NULL)
	{
		*pending = entry->count;
		*pending_last = entry->last;
	}
	LWLockRelease(partition);
}

/* Add counts back into shared memory (a flush that did not commit). */
static void
RestoreEntries(TakenEntry *entries, int n)
{
	uint64		dropped = 0;

	if (n == 0 || Stats == NULL)
		return;
	LockAllPartitions(LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		StatsEntry *taken = &entries[i].entry;
		StatsEntry *entry;
		bool		found;

		entry = hash_search(StatsHash, &taken->key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
		{
			dropped += taken->count;
			continue;
		}
		if (!found)
		{
			entry->count = 0;
			entry->last = taken->last;
		}
		entry->count += taken->count;
		if (taken->last > entry->last)
			entry->last = taken->last;
	}
	UnlockAllPartitions();
	if (dropped > 0)
		pg_atomic_fetch_add_u64(&Stats->dropped, dropped);
}

/* At the end of the transaction, forget or restore the flushed counts. */
static void
StatsXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			RestoreEntries(Taken, TakenCount);
			TakenCount = 0;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			TakenCount = 0;
			break;
		default:
			break;
	}
}

/* A subtransaction that flushed: restore on abort, hand to parent on commit. */
static void
StatsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int i = 0; i < TakenCount; i++)
	{
		if (Taken[i].subid != mySubid)
		{
			Taken[kept++] = Taken[i];
			continue;
		}
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			Taken[i].subid = parentSubid;
			Taken[kept++] = Taken[i];
		}
		else
			RestoreEntries(&Taken[i], 1);
	}
	TakenCount = kept;
}

/* Remember counts taken out by this transaction, in case it aborts. */
static void
RememberTaken(StatsEntry *entries, int n)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (!CallbacksRegistered)
	{
		RegisterXactCallback(StatsXactCallback, NULL);
		RegisterSubXactCallback(StatsSubXactCallback, NULL);
		CallbacksRegistered = true;
	}
	if (TakenCount + n > TakenSize)
	{
		int			size = Max(TakenSize * 2, TakenCount + n);

		if (Taken == NULL)
			Taken = MemoryContextAlloc(TopMemoryContext, size * sizeof(TakenEntry));
		else
			Taken = repalloc(Taken, size * sizeof(TakenEntry));
		TakenSize = size;
	}
	for (int i = 0; i < n; i++)
	{
		Taken[TakenCount].entry = entries[i];
		Taken[TakenCount].subid = subid;
		TakenCount++;
	}
}

/*
 * The flush's UPDATE of the keys' counters ($1 key ids, $2 counts, $3 the
 * last validation times); the FLUSH_HISTORY_SQL also adds each key's count to
 * its organization's day (of its last validation, UTC) and returns the keys
 * updated.  A database still at 0.1.0's schema keeps no daily history.
 */
#define FLUSH_COUNTERS_SQL \
	"UPDATE benefits.license_keys AS k" \
	"   SET validations = k.validations OPERATOR(pg_catalog.+) s.n," \
	"       last_validated_at = GREATEST(k.last_validated_at, s.at)" \
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS s(id, n, at)" \
	" WHERE k.id OPERATOR(pg_catalog.=) s.id"
#define FLUSH_HISTORY_SQL \
	"WITH u AS (" FLUSH_COUNTERS_SQL " RETURNING k.organization_id, s.n, s.at)," \
	" d AS (INSERT INTO benefits.license_validations_daily AS d (organization_id, day, validations)" \
	"       SELECT u.organization_id, (u.at AT TIME ZONE 'UTC')::date, pg_catalog.sum(u.n) FROM u GROUP BY 1, 2" \
	"       ON CONFLICT (organization_id, day)" \
	"       DO UPDATE SET validations = d.validations OPERATOR(pg_catalog.+) EXCLUDED.validations)" \
	"SELECT pg_catalog.count(*) FROM u"

/* A flush statement, prepared once and kept. */
static SPIPlanPtr
FlushPlanOf(SPIPlanPtr *cache, const char *sql)
{
	Oid			types[3] = {UUIDARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};

	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, 3, types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

/* The flush of a 0.2.0 schema: counters and the daily history. */
static SPIPlanPtr
FlushPlanWithHistory(void)
{
	static SPIPlanPtr plan;

	return FlushPlanOf(&plan, FLUSH_HISTORY_SQL);
}

/*
 * Take the pending counts of one database out of shared memory; returns
 * them (palloc'd) and their number in *n.
 */
static StatsEntry *
TakeEntries(Oid dbid, int *n)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;
	StatsEntry *entries;
	long		used;

	*n = 0;
	LockAllPartitions(LW_EXCLUSIVE);
	used = hash_get_num_entries(StatsHash);
	if (used == 0)
	{
		UnlockAllPartitions();
		return NULL;
	}
	/* palloc under an LWLock is safe: an error releases the lock. */
	entries = palloc(used * sizeof(StatsEntry));
	hash_seq_init(&seq, StatsHash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (entry->key.dbid != dbid)
			continue;
		entries[(*n)++] = *entry;
		hash_search(StatsHash, &entry->key, HASH_REMOVE, NULL);
	}
	UnlockAllPartitions();
	return entries;
}

/*
 * Add counts to the keys of the current database (and, with a 0.2.0 schema,
 * to their organizations' days); returns the number of keys updated.  Keys
 * deleted meanwhile are skipped.
 */
static uint64
ApplyCounts(const StatsEntry *entries, int n)
{
	Datum	   *ids = palloc(n * sizeof(Datum));
	Datum	   *counts = palloc(n * sizeof(Datum));
	Datum	   *lasts = palloc(n * sizeof(Datum));
	Datum		args[3];
	int			ret;
	uint64		updated;

	for (int i = 0; i < n; i++)
	{
		ids[i] = UUIDPGetDatum(&entries[i].key.license_key_id);
		counts[i] = Int64GetDatum(entries[i].count);
		lasts[i] = TimestampTzGetDatum(entries[i].last);
	}
	args[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(counts, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_array(lasts, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	BenefitsSpiConnect();
	if (BenefitsHasRelation("license_validations_daily"))
	{
		bool		isnull;

		ret = SPI_execute_plan(FlushPlanWithHistory(), args, NULL, false, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "flush of validation counts failed: %s", SPI_result_code_string(ret));
		updated = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	else
	{
		ret = SPI_execute_plan(FlushPlanOf(&FlushPlan, FLUSH_COUNTERS_SQL), args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "flush of validation counts failed: %s", SPI_result_code_string(ret));
		updated = SPI_processed;
	}
	SPI_finish();
	return updated;
}

/*
 * benefits.flush_validation_stats() -> bigint: move the pending validation
 * counts of the current database into benefits.license_keys; returns the
 * number of rows updated.  The background worker calls it every
 * benefits.validation_flush_interval.  On a hot standby it does nothing
 * (the validation forwarder sends the standby's counts to the primary).
 */
Datum
flush_validation_stats(PG_FUNCTION_ARGS)
{
	StatsEntry *entries;
	int			n;

	if (Stats == NULL)
	{
		WarnUnavailable();
		PG_RETURN_INT64(0);
	}
	if (RecoveryInProgress())
		PG_RETURN_INT64(0);

	LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
	RegisterFlusher();
	Stats->wake_sent = false;
	LWLockRelease(Stats->lock);

	entries = TakeEntries(MyDatabaseId, &n);
	if (n == 0)
		PG_RETURN_INT64(0);
	/* From here on the counts are ours: put them back if we fail. */
	RememberTaken(entries, n);
	PG_RETURN_INT64((int64) ApplyCounts(entries, n));
}

/*
 * The batches a standby's forwarder sent: one row per forwarder process,
 * with the number of the last batch applied, so that a batch sent again
 * (its acknowledgement was lost) is not counted twice.  Rows of forwarders
 * not heard from for a week are deleted.
 */
#define RECEIVE_BATCH_SQL \
	"INSERT INTO benefits.validation_count_senders AS s (sender, last_batch, received_at)" \
	" VALUES ($1, $2, pg_catalog.now())" \
	" ON CONFLICT (sender) DO UPDATE SET last_batch = EXCLUDED.last_batch, received_at = EXCLUDED.received_at" \
	" WHERE s.last_batch OPERATOR(pg_catalog.<) EXCLUDED.last_batch"
#define PRUNE_SENDERS_SQL \
	"DELETE FROM benefits.validation_count_senders" \
	" WHERE received_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '7 days')"

/*
 * The elements of a one-dimensional array argument without NULLs, at most
 * validation_stats_max of them; errors name the argument.
 */
static Datum *
ReceivedArray(ArrayType *array, Oid elemtype, int elemlen, bool byval, char align,
			  const char *name, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nitems;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s must be a one-dimensional array", name)));
	nitems = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	if (nitems > validation_stats_max)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("%s has %d elements, more than benefits.validation_stats_max (%d)",
							   name, nitems, validation_stats_max)));
	deconstruct_array(array, elemtype, elemlen, byval, align, &elems, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("%s must not contain NULL", name)));
	return elems;
}

/*
 * benefits.receive_validation_counts(sender, batch, license_key_ids, counts,
 * last_validated) -> bigint: add a hot standby's validation counts (sent by
 * its validation forwarder) to this primary's keys; returns the keys
 * updated, 0 for a batch of this sender already received.
 */
Datum
receive_validation_counts(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr batch_plan = NULL;
	static SPIPlanPtr prune_plan = NULL;
	Datum	   *ids;
	Datum	   *counts;
	Datum	   *lasts;
	int			n,
				ncounts,
				nlasts;
	StatsEntry *entries;
	TimestampTz latest = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECEIVE_CLOCK_SKEW_MS);
	Datum		args[2];
	Oid			types[2] = {UUIDOID, INT8OID};
	uint64		fresh;

	BenefitsRequireArgument(fcinfo, 0, "sender", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 1, "batch", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 2, "license_key_ids", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 3, "counts", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	BenefitsRequireArgument(fcinfo, 4, "last_validated", ERRCODE_NULL_VALUE_NOT_ALLOWED);
	if (PG_GETARG_INT64(1) <= 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("batch must be positive")));
	ids = ReceivedArray(PG_GETARG_ARRAYTYPE_P(2), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, "license_key_ids", &n);
	counts = ReceivedArray(PG_GETARG_ARRAYTYPE_P(3), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, "counts", &ncounts);
	lasts = ReceivedArray(PG_GETARG_ARRAYTYPE_P(4), TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, "last_validated", &nlasts);
	if (ncounts != n || nlasts != n)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("license_key_ids, counts and last_validated must have the same length"),
						errdetail("They have %d, %d and %d elements.", n, ncounts, nlasts)));
	entries = palloc0(Max(n, 1) * sizeof(StatsEntry));
	for (int i = 0; i < n; i++)
	{
		if (DatumGetInt64(counts[i]) <= 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("counts[%d] must be positive", i + 1)));
		if (DatumGetTimestampTz(lasts[i]) > latest || TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(lasts[i])))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("last_validated[%d] is not a time before now", i + 1),
							errdetail("A standby's clock may be up to %d minutes ahead of the primary's.",
									  RECEIVE_CLOCK_SKEW_MS / 60000)));
		memcpy(&entries[i].key.license_key_id, DatumGetUUIDP(ids[i]), sizeof(pg_uuid_t));
		entries[i].count = DatumGetInt64(counts[i]);
		entries[i].last = DatumGetTimestampTz(lasts[i]);
	}

	BenefitsSpiConnect();
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	BenefitsExec(BenefitsPlan(&batch_plan, RECEIVE_BATCH_SQL, 2, types), args, NULL, false, 0);
	fresh = SPI_processed;
	BenefitsExec(BenefitsPlan(&prune_plan, PRUNE_SENDERS_SQL, 0, NULL), NULL, NULL, false, 0);
	SPI_finish();
	if (fresh == 0 || n == 0)
		PG_RETURN_INT64(0);
	PG_RETURN_INT64((int64) ApplyCounts(entries, n));
}

/*
 * The databases with counts pending, for the validation forwarder of a
 * standby.
 */
List *
LicenseStatsDatabases(void)
{
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;
	List	   *dbids = NIL;

	if (Stats == NULL)
		return NIL;
	LockAllPartitions(LW_SHARED);
	hash_seq_init(&seq, StatsHash);
	while ((entry = hash_seq_search(&seq)) != NULL)
		dbids = list_append_unique_oid(dbids, entry->key.dbid);
	UnlockAllPartitions();
	return dbids;
}

LicenseKeyCount *
LicenseStatsTake(Oid dbid, int *n)
{
	StatsEntry *entries;
	LicenseKeyCount *taken;

	*n = 0;
	if (Stats == NULL)
		return NULL;
	entries = TakeEntries(dbid, n);
	taken = palloc(Max(*n, 1) * sizeof(LicenseKeyCount));
	for (int i = 0; i < *n; i++)
	{
		taken[i].dbid = entries[i].key.dbid;
		taken[i].license_key_id = entries[i].key.license_key_id;
		taken[i].count = entries[i].count;
		taken[i].last = entries[i].last;
	}
	if (entries != NULL)
		pfree(entries);
	return taken;
}

/*
 * benefits.validation_stats() -> (pending_keys, pending_validations, dropped,
 * used, capacity): what waits for a flush in this database, how many
 * validations went uncounted because the hash was full (since server start,
 * all databases), and how full the hash is.
 */
Datum
validation_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	int64		keys = 0;
	int64		validations = 0;
	int64		used = 0;
	HASH_SEQ_STATUS seq;
	StatsEntry *entry;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (Stats == NULL)
	{
		WarnUnavailable();
		for (int i = 0; i < 5; i++)
			values[i] = Int64GetDatum(0);
		values[4] = Int32GetDatum(0);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}

	LockAllPartitions(LW_SHARED);
	used = hash_get_num_entries(StatsHash);
	hash_seq_init(&seq, StatsHash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (entry->key.dbid != MyDatabaseId)
			continue;
		keys++;
		validations += entry->count;
	}
	UnlockAllPartitions();

	values[0] = Int64GetDatum(keys);
	values[1] = Int64GetDatum(validations);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&Stats->dropped));
	values[3] = Int64GetDatum(used);
	values[4] = Int32GetDatum(validation_stats_max);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
