/*
 * engine.h — the grant engine: subscriptions and orders (subscriptions.c),
 * webhook events (events.c), meter credits (meters.c), provider jobs
 * (provider_jobs.c) and tracked application tables (track.c).
 *
 * Everything here runs inside an SPI connection opened by the caller.
 */
#ifndef BENEFITS_ENGINE_H
#define BENEFITS_ENGINE_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "grants.h"

/* Webhook event types (Polar's names) and the extension's own events. */
#define EVENT_GRANT_CREATED		"benefit_grant.created"
#define EVENT_GRANT_UPDATED		"benefit_grant.updated"
#define EVENT_GRANT_CYCLED		"benefit_grant.cycled"
#define EVENT_GRANT_REVOKED		"benefit_grant.revoked"
#define EVENT_BENEFIT_CREATED	"benefit.created"
#define EVENT_BENEFIT_UPDATED	"benefit.updated"
#define EVENT_METER_LOW_BALANCE "meter.low_balance"
/* The extension's own: an activation released for a missed heartbeat (license_machines.c). */
#define EVENT_LICENSE_ACTIVATION_RELEASED "license_key.activation_released"

/* What a subscription's or order's state means for its product's benefits. */
typedef enum AccessDecision
{
	ACCESS_KEEP,				/* change nothing */
	ACCESS_GRANT,				/* hold every benefit of the product */
	ACCESS_REVOKE				/* hold none */
} AccessDecision;

/* subscription_rules.c */
/* subscription_rules.c: a subscription's fields that decide access */
typedef struct SubscriptionState
{
	pg_uuid_t	id;
	pg_uuid_t	organization_id;
	pg_uuid_t	customer_id;
	pg_uuid_t	product_id;
	char	   *status;
	bool		has_period_end;
	TimestampTz period_end;
	bool		has_ended_at;
	TimestampTz ended_at;
	bool		cancel_at_period_end;
	bool		has_past_due_at;
	TimestampTz past_due_at;
} SubscriptionState;
extern void SubscriptionFromTuple(HeapTuple tuple, TupleDesc desc, SubscriptionState *s);
extern AccessDecision SubscriptionDecision(SubscriptionState *s);
extern AccessDecision OrderDecision(const char *billing_reason, const char *status);
extern void EngineSyncSubscription(pg_uuid_t subscription_id);
extern void EngineSyncOrder(pg_uuid_t order_id);
extern void EngineActivateSubscription(pg_uuid_t subscription_id);

/* accounts.c: a linked account removed (the customer locked by the caller) */
extern bool AccountUnlink(pg_uuid_t customer_id, const char *platform);

/* subscriptions.c */
extern void EngineProductBenefitsChanged(pg_uuid_t product_id);

/* reconcile.c */
extern void EngineReconcileGrants(bool for_subscription, pg_uuid_t source_id, pg_uuid_t customer_id,
								  pg_uuid_t product_id, AccessDecision decision, bool defer_events);

/* activations.c: activated subscriptions granted at the statement's end */
extern void ActivationsQueue(pg_uuid_t subscription_id, pg_uuid_t customer_id, pg_uuid_t product_id);
extern void ActivationsFlush(void);
extern bool ActivationsPending(void);

/* catalog_grants.c: catalog changes carried to live grants */
extern pg_uuid_t EngineBenefitIdOfRow(Datum row);
extern void EngineBenefitCreated(pg_uuid_t benefit_id);
extern void EngineBenefitUpdated(pg_uuid_t benefit_id, const char *benefit_type, Jsonb *properties);
extern void EngineBenefitDeleted(pg_uuid_t benefit_id);

/* The api_version of the payloads: the Polar webhook format they follow. */
#define WEBHOOK_API_VERSION "2025-01-01"
/* A webhook-id, made when the outbox row is written. */
#define SQL_MESSAGE_ID "'msg_' || pg_catalog.translate(pg_catalog.gen_random_uuid()::text, '-', '')"

/* organization_events.c: an organization's own events */
extern int	EventsEnqueue(pg_uuid_t organization_id, const char *event_type, Jsonb *data);

/* events.c */
extern void EventsGrantApplied(pg_uuid_t grant_id);
extern bool EventsOrganizationSubscribed(pg_uuid_t organization_id, const char *event_type);
extern void EventsDeferGrants(const pg_uuid_t *grant_ids, int n, const char *event_type);
extern void EventsFlushDeferred(void);
extern bool EventsDeferredPending(void);
extern int	EventsEnqueueGrants(const pg_uuid_t *grant_ids, int n, const char *event_type,
								Jsonb *previous_properties);
extern int	EventsEnqueueGrant(pg_uuid_t grant_id, const char *event_type, Jsonb *previous_properties);
extern int	EventsEnqueueBenefit(pg_uuid_t benefit_id, const char *event_type);

/*
 * provider_jobs.c: the access the provider types (type_github_repository.c,
 * type_discord.c) deliver, as outbox jobs, for the platform they name.
 */
#define PROVIDER_GITHUB "github"
#define PROVIDER_DISCORD "discord"
extern void ProviderJobsGrant(GrantChange *change, const char *platform);
extern void ProviderJobsGrantMany(GrantBatch *batch, const char *platform);
extern void ProviderJobsRevoke(GrantChange *change, const char *platform);
extern void ProviderJobsAccountGone(GrantChange *change, const char *platform);
extern Jsonb *ProviderJobsUpdate(pg_uuid_t grant_id, pg_uuid_t organization_id, pg_uuid_t customer_id,
								 const char *platform,
								 Jsonb *benefit_properties, Jsonb *grant_properties, bool enqueue);

#endif
