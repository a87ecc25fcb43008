/*
 * license_machines.c — activations whose machine fell silent: a license
 * benefit with activations.heartbeat expects heartbeat_license from each
 * activation at least once per interval.  run_maintenance releases the live
 * activations that missed their window by more than the interval (no
 * heartbeat, nor activation, for twice the interval): each is deactivated
 * (deactivated_at, its seat freed, the row kept as history) and a
 * license_key.activation_released webhook event goes to the endpoints of the
 * organization that subscribed to it.
 *
 * Concurrency: one UPDATE releases them.  In READ COMMITTED it re-checks an
 * activation that a concurrent heartbeat_license or deactivate_license just
 * changed against the newest version: a fresh heartbeat keeps it, a
 * deactivation takes it out of the release.  It does not lock the keys:
 * releasing only frees seats, and an activate_license counting under its key
 * lock sees the released rows as live or not, never more than the limit.
 * Under 0.1.0's schema (no heartbeats) it does nothing.  A heartbeat value
 * not of the normalized shape (written to the table directly) is ignored
 * rather than stopping maintenance.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"
#include "license.h"

/* Release silent activations; returns how many (inside an SPI connection). */
int
LicenseReleaseSilentActivations(void)
{
	static SPIPlanPtr plan;
	int			n;
	pg_uuid_t  *organizations;
	Jsonb	  **events;

	if (!LicenseActivationsKeepHistory())
		return 0;
	BenefitsExec(BenefitsPlan(&plan,
							  "UPDATE benefits.license_key_activations a"
							  "   SET deactivated_at = pg_catalog.now(), modified_at = pg_catalog.now()"
							  "  FROM benefits.license_keys k JOIN benefits.benefits b ON b.id = k.benefit_id"
							  " WHERE a.license_key_id = k.id AND a.deactivated_at IS NULL"
							  "   AND b.type = 'license_keys'"
							  "   AND b.properties #>> '{activations,heartbeat}' ~ '" LICENSE_HEARTBEAT_PATTERN "'"
							  "   AND COALESCE(a.heartbeat_at, a.created_at)"
							  "       + 2 * (b.properties #>> '{activations,heartbeat}')::interval < pg_catalog.now()"
							  " RETURNING k.organization_id, pg_catalog.jsonb_build_object("
							  "   'activation_id', a.id, 'license_key_id', k.id, 'display_key', k.display_key,"
							  "   'customer_id', k.customer_id, 'benefit_id', k.benefit_id,"
							  "   'fingerprint', a.fingerprint, 'label', a.label,"
							  "   'heartbeat', b.properties #>> '{activations,heartbeat}',"
							  "   'last_heartbeat_at', benefits.rfc3339(a.heartbeat_at),"
							  "   'released_at', benefits.rfc3339(a.deactivated_at)) AS event",
							  0, NULL),
				 NULL, NULL, false, 0);
	n = (int) SPI_processed;
	organizations = palloc(sizeof(pg_uuid_t) * (n + 1));
	events = palloc(sizeof(Jsonb *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		organizations[i] = BenefitsResultUuid(i, SPI_fnumber(SPI_tuptable->tupdesc, "organization_id"));
		events[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													 SPI_fnumber(SPI_tuptable->tupdesc, "event"), &isnull));
	}
	for (int i = 0; i < n; i++)
		(void) EventsEnqueue(organizations[i], EVENT_LICENSE_ACTIVATION_RELEASED, events[i]);
	return n;
}
