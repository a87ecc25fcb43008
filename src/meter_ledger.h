/*
 * meter_ledger.h — credit lots on a meter (meter_ledger.c): what the
 * meter_credits type, adjust_credits and record_usage share.
 *
 * Every function runs inside an SPI connection of its caller.  A lot changes
 * only while its (customer, meter) balance row is locked: MeterLock takes
 * that lock and first takes the usage recorded since the last change from
 * the lots (settles), so every function below sees exact lots.
 */
#ifndef BENEFITS_METER_LEDGER_H
#define BENEFITS_METER_LEDGER_H

#include "postgres.h"

#include "utils/timestamp.h"
#include "utils/uuid.h"

/* One credit: a new lot and its ledger row. */
typedef struct MeterCredit
{
	pg_uuid_t	organization_id;
	pg_uuid_t	customer_id;
	pg_uuid_t	meter_id;
	const pg_uuid_t *grant_id;	/* the grant it comes with, or NULL */
	const char *source;			/* lot source and ledger reason: grant, cycle, pack, top_up */
	int64		units;			/* > 0 */
	bool		has_expiry;
	TimestampTz expires_at;
	bool		has_threshold;	/* the benefit's low_balance_threshold */
	int64		threshold;
	const char *idempotency_key;	/* or NULL */
	const char *note;			/* the caller's reason, or NULL */
} MeterCredit;

/* Whether the installed schema has credit lots (0.2.0; 0.1.0 has none). */
extern bool MeterLotsInstalled(void);

/*
 * Locks the (customer, meter) balance row, creating it at zero when there is
 * none; returns the balance, and in *pending the usage not yet taken from
 * the lots.
 */
extern int64 MeterLockRow(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
						  int64 *pending);

/*
 * MeterLockRow, then settles the usage not yet taken from the lots.  Returns the
 * balance.
 */
extern int64 MeterLock(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id);

/* The same for a batch of customers on one meter. */
extern void MeterLockMany(pg_uuid_t organization_id, Datum customer_ids, pg_uuid_t meter_id);

/* Adds a lot (after MeterLock); returns the new balance. */
extern int64 MeterCreditLot(const MeterCredit *credit);

/*
 * Removes what is left of a grant's lots (after MeterLock): with reason
 * "expire" its benefit credits (grant and cycle lots), with "revoke" its last
 * lot.  Returns the units removed.
 */
extern int64 MeterRemoveGrantLots(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
								  pg_uuid_t grant_id, const char *reason);

/*
 * A correction: takes units from the lots in the order usage takes them
 * (after MeterLock) and writes an "adjustment" ledger row.  Returns the new
 * balance.
 */
extern int64 MeterDebit(pg_uuid_t organization_id, pg_uuid_t customer_id, pg_uuid_t meter_id,
						int64 units, const char *idempotency_key, const char *note,
						bool *has_threshold, int64 *threshold);

/*
 * Raises 22023 unless the meter exists and the customer belongs to its
 * organization; returns the meter's allow_overage and organization.
 */
extern bool MeterCheckCustomer(pg_uuid_t customer_id, pg_uuid_t meter_id, pg_uuid_t *organization_id);

/* Raises 22023 unless text is 1 to max characters without control characters. */
extern void MeterCheckText(const char *value, const char *name, int max);

#endif
