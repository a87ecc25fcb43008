/*
 * license_stats.h — validation counters kept in shared memory by the
 * read-only validate_license path and flushed into benefits.license_keys by
 * benefits.flush_validation_stats() (license_stats.c).
 */
#ifndef BENEFITS_LICENSE_STATS_H
#define BENEFITS_LICENSE_STATS_H

#include "postgres.h"

#include "datatype/timestamp.h"
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

#endif
