/*
 * license_stats.h — validation counters kept in shared memory by the
 * read-only validate_license path and flushed into benefits.license_keys by
 * benefits.flush_validation_stats() (license_stats.c).
 */
#ifndef BENEFITS_LICENSE_STATS_H
#define BENEFITS_LICENSE_STATS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/uuid.h"

/* benefits.validation_flush_interval, in milliseconds. */
extern int	benefits_validation_flush_interval;

/*
 * Count one successful validation of a key of the current database, and
 * return the counts not yet flushed for that key (this one included).
 */
extern void LicenseStatsCount(const pg_uuid_t *license_key_id, TimestampTz at,
							  int64 *pending, TimestampTz *pending_last);

/* The counts not yet flushed for a key (0 and DT_NOBEGIN when none). */
extern void LicenseStatsPending(const pg_uuid_t *license_key_id,
								int64 *pending, TimestampTz *pending_last);

/* The pending validations of one license key, as the forwarder sends them. */
typedef struct LicenseKeyCount
{
	Oid			dbid;
	pg_uuid_t	license_key_id;
	int64		count;
	TimestampTz last;
} LicenseKeyCount;

/* The databases that have counts pending (a List of Oids). */
extern List *LicenseStatsDatabases(void);

/* Take a database's pending counts out of shared memory (palloc'd; *n of them). */
extern LicenseKeyCount *LicenseStatsTake(Oid dbid, int *n);

/* The validation forwarder of a hot standby (license_forward.c). */
extern void LicenseForwarderRegister(void);
extern PGDLLEXPORT void benefits_forwarder_main(Datum main_arg);

#endif
