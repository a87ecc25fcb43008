/*
 * benefits.h — declarations shared by the subsystems of the extension.
 */
#ifndef BENEFITS_H
#define BENEFITS_H

#include "postgres.h"

#define BENEFITS_SCHEMA "benefits"

#include "access/skey.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* Each subsystem's _PG_init part (init.c calls them): settings, shared memory. */
extern void LicenseStatsInit(void);	/* license_stats.c */
extern void PortalInit(void);	/* portal.c: storage and customer session settings */


/* benefits.c: small helpers every subsystem uses */

/* A plan prepared on first use and kept for the life of the backend. */
extern SPIPlanPtr BenefitsPlan(SPIPlanPtr *cache, const char *sql,
							   int nargs, const Oid *argtypes);
/* The same, always running the generic plan (no re-planning per call). */
extern SPIPlanPtr BenefitsGenericPlan(SPIPlanPtr *cache, const char *sql,
									  int nargs, const Oid *argtypes);
/* A uuid as an SPI argument (palloc'd copy), and back. */
extern Datum UuidGetDatum(const pg_uuid_t *uuid);
extern pg_uuid_t DatumGetUuid(Datum datum);
/* A fresh random (version 4) uuid. */
extern pg_uuid_t BenefitsRandomUuid(void);
extern Datum BenefitsUuidArray(const pg_uuid_t *uuids, int n);
extern char *BenefitsJsonbValueText(JsonbValue *v);
/* A relation of the benefits schema and a column of it, which must exist. */
extern bool BenefitsHasRelation(const char *name);
extern bytea *BenefitsSha256(const char *data, size_t len);
extern char *BenefitsRandomToken(size_t nbytes);
extern Oid	BenefitsRelid(const char *name);
extern AttrNumber BenefitsColumnNumber(Oid relid, const char *name);
/* Whether the installed schema keeps grants of deleted sources (0.2.0). */
extern bool BenefitsGrantsKeepHistory(void);
/* Refuses a NULL for a required SQL argument, naming it, with the caller's SQLSTATE. */
extern void BenefitsRequireArgument(FunctionCallInfo fcinfo, int argno, const char *name, int sqlstate);
/* SPI_connect, raising if it fails. */
extern void BenefitsSpiConnect(void);
/* A kept plan executed, raising on SPI failure; a non-null uuid of its result. */
extern int	BenefitsExec(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count);
extern pg_uuid_t BenefitsResultUuid(int row, int col);
/* A member of a JSON object as text, or NULL; a uuid as text. */
extern char *BenefitsJsonText(Jsonb *json, const char *key);
extern char *BenefitsUuidText(const pg_uuid_t *uuid);
/*
 * A direct lookup through a unique index, without SPI or the executor: the
 * first tuple of relid that the scan of indexid with keys finds under the
 * active snapshot, handed to reader (which says whether it counts).  It
 * checks no privileges: callers read only what their function may show.
 */
typedef bool (*BenefitsSlotReader) (TupleTableSlot *slot, void *arg);
extern bool BenefitsIndexFetch(Oid relid, Oid indexid, ScanKey keys, int nkeys,
							   BenefitsSlotReader reader, void *arg);
/* The caller's identity and search path while a function runs as its owner. */
typedef struct OwnerSwitch
{
	Oid			user;
	int			context;
	int			guc_level;
} OwnerSwitch;

/* Become the calling function's owner, search path pinned; and back. */
extern void BenefitsBecomeOwner(FunctionCallInfo fcinfo, OwnerSwitch *saved);
extern void BenefitsRestoreCaller(const OwnerSwitch *saved);

#endif
