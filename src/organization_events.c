/*
 * organization_events.c — an organization's own webhook events (not a
 * grant's or a benefit's, which events.c writes): one outbox row per enabled
 * endpoint of the organization subscribed to the event type, with the data
 * the caller built.  Low in the layers, so a benefit type (the meter's
 * low-balance event) may write one.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"

/* Writes an event whose data the caller built (the low-balance event). */
int
EventsEnqueue(pg_uuid_t organization_id, const char *event_type, Jsonb *data)
{
	static SPIPlanPtr plan;
	Oid			types[3] = {UUIDOID, TEXTOID, JSONBOID};
	Datum		values[3];

	values[0] = UuidGetDatum(&organization_id);
	values[1] = CStringGetTextDatum(event_type);
	values[2] = JsonbPGetDatum(data);
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)"
							  " SELECT e.organization_id, 'webhook', e.id, $2, " SQL_MESSAGE_ID ", 'deliver',"
							  "        pg_catalog.jsonb_build_object('type', $2, 'timestamp', benefits.rfc3339(pg_catalog.now()),"
							  "                                      'api_version', '" WEBHOOK_API_VERSION "', 'data', $3)"
							  "   FROM benefits.webhook_endpoints e"
							  "  WHERE e.organization_id = $1 AND e.enabled AND $2 = ANY (e.events)",
							  3, types), values, NULL, false, 0);
	return (int) SPI_processed;
}
