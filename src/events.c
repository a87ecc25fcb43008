/*
 * events.c — webhook events into the outbox.
 *
 * An event is one outbox row (kind 'webhook', action 'deliver') per enabled
 * endpoint of the organization subscribed to the event type, written in the
 * transaction of the change it reports, so a rollback sends nothing.  The
 * payload is the complete event body in the wire format of Polar's webhooks
 * (envelope {type, timestamp, api_version, data}), built once per event and
 * shared by every endpoint; message_id is the Standard Webhooks webhook-id,
 * unique per delivery and stable across retries.
 *
 * Payloads spell benefit types as Polar does (each type's webhook_name), write times in RFC 3339 UTC with a Z, and never carry a
 * full license key: grant properties lose any "key" member.  Every member
 * @polar-sh/sdk's payload types require is present, with a neutral value
 * where the extension has no such data, and the members beyond them are the
 * extensions the README lists (test/t/075_polar_sdk_types.pl checks both).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "email.h"
#include "engine.h"
#include "xact_queue.h"


PG_FUNCTION_INFO_V1(enqueue_grant_event);
PG_FUNCTION_INFO_V1(enqueue_benefit_event);


/*
 * Metadata in payloads: Polar's metadata is an object of strings, numbers
 * and booleans, ours any jsonb.  Scalars pass as they are, a nested object or
 * array as its JSON text, a null member is left out, and anything but an
 * object is {}.
 */
#define SQL_METADATA(m) \
	"CASE WHEN pg_catalog.jsonb_typeof(" m ") <> 'object' THEN '{}'::jsonb" \
	" WHEN NOT pg_catalog.jsonb_path_exists(" m ", '$.* ? (@.type() == \"object\" || @.type() == \"array\" || @ == null)')" \
	"  THEN " m \
	" ELSE (SELECT COALESCE(pg_catalog.jsonb_object_agg(e.key," \
	"         CASE WHEN pg_catalog.jsonb_typeof(e.value) IN ('object', 'array')" \
	"              THEN pg_catalog.to_jsonb(e.value::text) ELSE e.value END), '{}'::jsonb)" \
	"        FROM pg_catalog.jsonb_each(" m ") e WHERE pg_catalog.jsonb_typeof(e.value) <> 'null') END"

/*
 * The benefit object of payloads, from alias b, with two holes (%s) for the
 * type's name in payloads and its properties there, which each type gives
 * (benefit_types.c, BenefitTypesWebhookSql).
 *
 * visibility_configurable: Polar tells whether the benefit's visibility may
 * be changed; here every benefit is 'public' and no visibility can be set,
 * so false.
 */
#define SQL_BENEFIT_OBJECT \
	"pg_catalog.jsonb_build_object(" \
	" 'id', b.id, 'created_at', benefits.rfc3339(b.created_at)," \
	" 'modified_at', benefits.rfc3339(b.modified_at)," \
	" 'type', %s," \
	" 'description', b.description, 'selectable', true, 'deletable', true," \
	" 'visibility', 'public', 'visibility_configurable', false, 'is_deleted', b.deleted_at IS NOT NULL," \
	" 'organization_id', b.organization_id, 'metadata', " SQL_METADATA("b.metadata") "," \
	" 'properties', %s)"

/*
 * The customer object of payloads, from alias c: Polar's individual customer.
 * Its email is a required string: a customer stored without one has "".
 * first_user_event_at (the first usage event Polar ingested for the
 * customer) is always null: this extension ingests no events.
 */
#define SQL_CUSTOMER_OBJECT \
	"pg_catalog.jsonb_build_object(" \
	" 'id', c.id, 'created_at', benefits.rfc3339(c.created_at)," \
	" 'modified_at', benefits.rfc3339(c.modified_at), 'metadata', " SQL_METADATA("c.metadata") "," \
	" 'external_id', c.external_id, 'email', COALESCE(c.email, ''), 'email_verified', false," \
	" 'name', c.name, 'billing_name', NULL, 'billing_address', NULL, 'tax_id', NULL," \
	" 'organization_id', c.organization_id, 'deleted_at', benefits.rfc3339(c.deleted_at)," \
	" 'avatar_url', NULL, 'first_user_event_at', NULL, 'type', 'individual')"

/*
 * The grant's error in payloads, from alias g: Polar's {message, type,
 * timestamp} and the members the engine records (action, and for a
 * provider's refusal provider, status, job_id).  A provider's refusal has its
 * own type and timestamp (outbox_claim.c); the error of a grant waiting for
 * a linked account has neither: it is Polar's BenefitActionRequiredError,
 * and the grant's last change is when it was recorded.
 */
#define SQL_GRANT_ERROR \
	"CASE WHEN pg_catalog.jsonb_typeof(g.error) = 'object' THEN pg_catalog.jsonb_build_object(" \
	"   'type', 'BenefitActionRequiredError'," \
	"   'timestamp', benefits.rfc3339(COALESCE(g.modified_at, g.created_at))) || g.error" \
	" ELSE g.error END"

/*
 * One statement for a batch of grants ($1, in order; one primary-key probe
 * per element: the OFFSET 0 keeps the planner from turning a large batch into
 * a join that costs the batch times the table): the endpoints of their
 * organizations subscribed to $2, and each grant's body, built once for the
 * grants whose organization has such an endpoint, written per endpoint.  The
 * customer and benefit objects are built once per customer and benefit of
 * the batch, and the timestamp once.
 */
static const char *GrantEventTemplate =
"WITH g AS MATERIALIZED ("
"  SELECT g.*, u.n FROM pg_catalog.unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)"
"   CROSS JOIN LATERAL (SELECT * FROM benefits.grants g WHERE g.id = u.id OFFSET 0) g),"
" ep AS MATERIALIZED ("
"  SELECT e.id, e.organization_id FROM benefits.webhook_endpoints e"
"   WHERE e.organization_id IN (SELECT DISTINCT g.organization_id FROM g)"
"     AND e.enabled AND $2 = ANY (e.events)),"
" heard AS MATERIALIZED (SELECT * FROM g WHERE g.organization_id IN (SELECT ep.organization_id FROM ep)),"
" customer AS MATERIALIZED ("
"  SELECT c.id, " SQL_CUSTOMER_OBJECT " AS object FROM benefits.customers c"
"   WHERE c.id IN (SELECT DISTINCT customer_id FROM heard)),"
" benefit AS MATERIALIZED ("
"  SELECT b.id, " SQL_BENEFIT_OBJECT " AS object FROM benefits.benefits b"
"   WHERE b.id IN (SELECT DISTINCT benefit_id FROM heard)),"
" body AS MATERIALIZED ("
"  SELECT g.id, g.n, g.organization_id, pg_catalog.jsonb_build_object("
"   'type', $2, 'timestamp', t.now, 'api_version', '" WEBHOOK_API_VERSION "',"
"   'data', pg_catalog.jsonb_build_object("
"     'id', g.id, 'created_at', benefits.rfc3339(g.created_at),"
"     'modified_at', benefits.rfc3339(g.modified_at),"
"     'granted_at', benefits.rfc3339(g.granted_at), 'revoked_at', benefits.rfc3339(g.revoked_at),"
"     'is_granted', g.state = 'active', 'is_revoked', g.state = 'revoked',"
"     'subscription_id', %s, 'order_id', %s,"
"     'customer_id', g.customer_id, 'benefit_id', g.benefit_id, 'error', " SQL_GRANT_ERROR ","
"     'properties', g.properties - 'key',"
"     'previous_properties', COALESCE($3, CASE WHEN $2 = '" EVENT_GRANT_UPDATED "' THEN g.previous_properties END) - 'key',"
"     'customer', c.object, 'benefit', b.object)) AS payload"
"   FROM heard g"
"   JOIN customer c ON c.id = g.customer_id"
"   JOIN benefit b ON b.id = g.benefit_id"
"   CROSS JOIN (SELECT benefits.rfc3339(pg_catalog.now()) AS now) t)"
" INSERT INTO benefits.outbox (organization_id, kind, grant_id, endpoint_id, event_type, message_id, action, payload)"
" SELECT ep.organization_id, 'webhook', body.id, ep.id, $2, " SQL_MESSAGE_ID ", 'deliver', body.payload"
"   FROM body JOIN ep ON ep.organization_id = body.organization_id ORDER BY body.n, ep.id";

static const char *BenefitEventTemplate =
"WITH ep AS ("
"  SELECT e.id, e.organization_id FROM benefits.benefits b"
"    JOIN benefits.webhook_endpoints e ON e.organization_id = b.organization_id"
"   WHERE b.id = $1 AND e.enabled AND $2 = ANY (e.events)),"
" body AS MATERIALIZED ("
"  SELECT pg_catalog.jsonb_build_object("
"   'type', $2, 'timestamp', benefits.rfc3339(pg_catalog.now()), 'api_version', '" WEBHOOK_API_VERSION "',"
"   'data', " SQL_BENEFIT_OBJECT ") AS payload"
"   FROM benefits.benefits b WHERE b.id = $1)"
" INSERT INTO benefits.outbox (organization_id, kind, endpoint_id, event_type, message_id, action, payload)"
" SELECT ep.organization_id, 'webhook', ep.id, $2, " SQL_MESSAGE_ID ", 'deliver', body.payload"
"   FROM ep CROSS JOIN body";


/* The event statements, made from their templates once per backend. */
static char *grant_event_sql[2];
static char *benefit_event_sql;

/*
 * The grant event statement, with the registry's SQL for benefit type names
 * and properties in payloads and, when the schema keeps the grants of
 * deleted sources (0.2.0), their ids: made once per backend and schema.
 */
static const char *
GrantEventSql(void)
{
	bool		kept = BenefitsGrantsKeepHistory();

	if (grant_event_sql[kept] == NULL)
	{
		char	   *name_sql;
		char	   *properties_sql;

		BenefitTypesWebhookSql("b", &name_sql, &properties_sql);
		grant_event_sql[kept] = MemoryContextStrdup(TopMemoryContext,
													psprintf(GrantEventTemplate, name_sql, properties_sql,
															 kept ? "coalesce(g.subscription_id, g.source_subscription_id)"
															 : "g.subscription_id",
															 kept ? "coalesce(g.order_id, g.source_order_id)"
															 : "g.order_id"));
	}
	return grant_event_sql[kept];
}

/* The benefit event statement, with the registry's SQL (as above). */
static const char *
BenefitEventSql(void)
{
	if (benefit_event_sql == NULL)
	{
		char	   *name_sql;
		char	   *properties_sql;

		BenefitTypesWebhookSql("b", &name_sql, &properties_sql);
		benefit_event_sql = MemoryContextStrdup(TopMemoryContext,
												psprintf(BenefitEventTemplate, name_sql, properties_sql));
	}
	return benefit_event_sql;
}

static const char *GrantEventTypes[] = {
	EVENT_GRANT_CREATED, EVENT_GRANT_UPDATED, EVENT_GRANT_CYCLED, EVENT_GRANT_REVOKED, NULL
};

/* Rejects an event type the function does not produce. */
static void
CheckEventType(const char *event_type, const char **allowed)
{
	for (const char **t = allowed; *t; t++)
		if (strcmp(*t, event_type) == 0)
			return;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("event_type \"%s\" is not a known event of this kind", event_type),
			errhint("Grant events are benefit_grant.created, benefit_grant.updated, "
					"benefit_grant.cycled and benefit_grant.revoked; benefit events are "
					"benefit.created and benefit.updated."));
}

/*
 * Whether any enabled endpoint of the grant's organization takes the event.
 * One grant at a time is the path of grant_benefit and of the worker's
 * confirmations: this keyed probe, planned once, spares them building the
 * payload statement (whose plan is rebuilt per call) when nobody listens.
 */
static bool
GrantEventSubscribed(pg_uuid_t grant_id, const char *event_type)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	values[0] = UuidGetDatum(&grant_id);
	values[1] = CStringGetTextDatum(event_type);
	BenefitsExec(BenefitsPlan(&plan,
							"SELECT 1 FROM benefits.grants g JOIN benefits.webhook_endpoints e"
							" ON e.organization_id = g.organization_id"
							" WHERE g.id = $1 AND e.enabled AND $2 = ANY (e.events) LIMIT 1",
							2, types),
			   values, NULL, false, 1);
	return SPI_processed > 0;
}

/*
 * Whether any enabled endpoint of the organization takes the event: lets a
 * caller that writes many grants of one organization skip the batch's event
 * statement (a lookup per grant) when nobody listens.
 */
bool
EventsOrganizationSubscribed(pg_uuid_t organization_id, const char *event_type)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	values[0] = UuidGetDatum(&organization_id);
	values[1] = CStringGetTextDatum(event_type);
	BenefitsExec(BenefitsPlan(&plan,
							"SELECT 1 FROM benefits.webhook_endpoints WHERE organization_id = $1"
							" AND enabled AND $2 = ANY (events) LIMIT 1",
							2, types),
			   values, NULL, false, 1);
	return SPI_processed > 0;
}

/* The grants' event for every subscribed endpoint; returns the rows written. */
int
EventsEnqueueGrants(const pg_uuid_t *grant_ids, int n, const char *event_type,
					Jsonb *previous_properties)
{
	static SPIPlanPtr plans[2];	/* by BenefitsGrantsKeepHistory */
	Oid			types[3] = {UUIDARRAYOID, TEXTOID, JSONBOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	/* the customer's email about the same change (email.c) */
	if (strcmp(event_type, EVENT_GRANT_CREATED) == 0)
		EmailsForGrants(grant_ids, n, EMAIL_BENEFITS_GRANTED);
	else if (strcmp(event_type, EVENT_GRANT_REVOKED) == 0)
		EmailsForGrants(grant_ids, n, EMAIL_BENEFITS_REMOVED);
	if (n == 0 || (n == 1 && !GrantEventSubscribed(grant_ids[0], event_type)))
		return 0;
	values[0] = BenefitsUuidArray(grant_ids, n);
	values[1] = CStringGetTextDatum(event_type);
	if (previous_properties)
		values[2] = JsonbPGetDatum(previous_properties);
	else
		nulls[2] = 'n';
	BenefitsExec(BenefitsPlan(&plans[BenefitsGrantsKeepHistory()], GrantEventSql(), 3, types),
				 values, nulls, false, 0);
	return (int) SPI_processed;
}

/*
 * Writes the event of a grant for every subscribed endpoint; returns the
 * number of outbox rows written.
 */
int
EventsEnqueueGrant(pg_uuid_t grant_id, const char *event_type, Jsonb *previous_properties)
{
	return EventsEnqueueGrants(&grant_id, 1, event_type, previous_properties);
}

/*
 * A grant was just granted (or granted again): benefit_grant.created.  A
 * GitHub or Discord grant is still pending then (is_granted false, or an
 * error saying which account to link); the worker reports
 * benefit_grant.updated once the provider has confirmed it.
 */
void
EventsGrantApplied(pg_uuid_t grant_id)
{
	EventsEnqueueGrants(&grant_id, 1, EVENT_GRANT_CREATED, NULL);
}

/* Writes benefit.created / benefit.updated for every subscribed endpoint. */
int
EventsEnqueueBenefit(pg_uuid_t benefit_id, const char *event_type)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	values[0] = UuidGetDatum(&benefit_id);
	values[1] = CStringGetTextDatum(event_type);
	BenefitsExec(BenefitsPlan(&plan, BenefitEventSql(), 2, types), values, NULL, false, 0);
	return (int) SPI_processed;
}

/*
 * Deferred grant events.  The subscription and order row triggers do not
 * write their events row by row: they queue the grant ids here and the
 * statement-level trigger grants_sync_events writes them in one statement
 * per run of the same event type, so a statement that changes many
 * subscriptions pays for one event statement, not one per row.  The queue
 * follows the transaction (xact_queue.c).
 */
typedef struct DeferredEvent
{
	pg_uuid_t	grant_id;
	int			kind;			/* index into DeferredKinds */
} DeferredEvent;

static const char *DeferredKinds[] = {EVENT_GRANT_CREATED, EVENT_GRANT_REVOKED, EVENT_GRANT_CYCLED};
static XactQueue deferred = XACT_QUEUE_INIT(DeferredEvent, "webhook events of grant changes");

/* Flushing in the row trigger once this many are queued bounds the memory. */
#define DEFERRED_FLUSH_AT 50000

/* Are events of this transaction waiting for their statement's end? */
bool
EventsDeferredPending(void)
{
	return deferred.n > 0;
}

/* Writes every queued event, in queue order, one statement per run of one type. */
void
EventsFlushDeferred(void)
{
	DeferredEvent *events;
	pg_uuid_t  *ids;
	int			n;
	int			start = 0;

	if (deferred.n == 0)
		return;
	events = XactQueueTake(&deferred, &n);
	ids = palloc(sizeof(pg_uuid_t) * n);
	for (int i = 0; i < n; i++)
		ids[i] = events[i].grant_id;
	while (start < n)
	{
		int			kind = events[start].kind;
		int			end = start;

		while (end < n && events[end].kind == kind)
			end++;
		EventsEnqueueGrants(ids + start, end - start, DeferredKinds[kind], NULL);
		start = end;
	}
}

/*
 * Queues the events of grants changed by a row trigger: event_type is
 * benefit_grant.created, benefit_grant.revoked or benefit_grant.cycled.
 */
void
EventsDeferGrants(const pg_uuid_t *grant_ids, int n, const char *event_type)
{
	int			kind = -1;

	for (int k = 0; k < (int) lengthof(DeferredKinds); k++)
		if (strcmp(DeferredKinds[k], event_type) == 0)
			kind = k;
	if (kind < 0)
		elog(ERROR, "event type %s cannot be deferred", event_type);
	for (int i = 0; i < n; i++)
	{
		DeferredEvent *e = XactQueueAppend(&deferred);

		e->grant_id = grant_ids[i];
		e->kind = kind;
	}
	if (deferred.n >= DEFERRED_FLUSH_AT)
		EventsFlushDeferred();
}

/*
 * SQL: benefits.enqueue_grant_event(grant_id, event_type, previous_properties)
 * — used by the worker when a provider confirms a grant.  Returns the number
 * of deliveries written.
 */
Datum
enqueue_grant_event(PG_FUNCTION_ARGS)
{
	pg_uuid_t	grant_id;
	char	   *event_type;
	Jsonb	   *previous = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	int			n;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("grant_id and event_type must not be null"));
	grant_id = *PG_GETARG_UUID_P(0);
	event_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CheckEventType(event_type, GrantEventTypes);

	BenefitsSpiConnect();
	{
		static SPIPlanPtr exists;
		Oid			types[1] = {UUIDOID};
		Datum		values[1] = {UuidGetDatum(&grant_id)};

		BenefitsExec(BenefitsPlan(&exists, "SELECT 1 FROM benefits.grants WHERE id = $1", 1, types),
				   values, NULL, true, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					errcode(ERRCODE_NO_DATA_FOUND),
					errmsg("grant %s does not exist",
						   DatumGetCString(DirectFunctionCall1(uuid_out, values[0]))));
	}
	n = EventsEnqueueGrant(grant_id, event_type, previous);
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * SQL: benefits.enqueue_benefit_event(benefit_id, event_type) — called by
 * create_benefit/update_benefit.
 */
Datum
enqueue_benefit_event(PG_FUNCTION_ARGS)
{
	static const char *types[] = {EVENT_BENEFIT_CREATED, EVENT_BENEFIT_UPDATED, NULL};
	pg_uuid_t	benefit_id = *PG_GETARG_UUID_P(0);
	char	   *event_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			n;

	CheckEventType(event_type, types);
	BenefitsSpiConnect();
	n = EventsEnqueueBenefit(benefit_id, event_type);
	SPI_finish();
	PG_RETURN_INT32(n);
}
