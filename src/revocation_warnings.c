/*
 * revocation_warnings.c — telling customers before their access ends: run
 * by run_maintenance, it finds subscriptions that will lose their benefits at
 * a known time within benefits.revocation_warning_before (canceled, or set to
 * cancel at the period end, with a period end; past_due/unpaid with a grace
 * period running from a known past_due_at) and, once per end of access, writes the customer's
 * warning email and a benefit_grant.revocation_scheduled event per live
 * grant (to endpoints that list that type).  subscriptions
 * .revocation_warning_for records the end warned about: a subscription that
 * recovers is not warned (it no longer matches), and one that is set to end
 * again at another time is warned again.  License keys likewise: a granted
 * key whose expires_at is within benefits.license_expiry_warning_before gets
 * one license_expiring email and license_key.expiring event per expiry
 * (license_keys.expiry_warning_for).
 *
 * Concurrency: the UPDATE that records the warning takes each
 * subscription's row lock, so two maintenance runs at once warn once; the
 * subscription triggers see no change of access in it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "email.h"
#include "engine.h"

/* The webhook events of a grant whose revocation is scheduled, of a key about to expire. */
#define EVENT_GRANT_REVOCATION_SCHEDULED "benefit_grant.revocation_scheduled"
#define EVENT_LICENSE_KEY_EXPIRING "license_key.expiring"

/* A subscription due for its warning (copied out of SPI). */
typedef struct DueWarning
{
	pg_uuid_t	subscription_id;
	pg_uuid_t	organization_id;
	Jsonb	   *extra;			/* {subscription_id, ends_at} for the email */
} DueWarning;

/*
 * The live grants of one subscription in attachment order: the events and
 * the email.
 */
static void
WarnSubscription(const DueWarning *due)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {UUIDOID};
	Datum		value = UuidGetDatum(&due->subscription_id);
	int			n;
	pg_uuid_t  *grant_ids;
	Jsonb	  **events;

	BenefitsExec(BenefitsPlan(&plan,
							  "SELECT g.id, pg_catalog.jsonb_build_object('id', g.id, 'customer_id', g.customer_id,"
							  "         'benefit_id', g.benefit_id, 'subscription_id', g.subscription_id) AS event"
							  "  FROM benefits.grants g"
							  "  JOIN benefits.subscriptions s ON s.id = g.subscription_id"
							  "  LEFT JOIN benefits.product_benefits pb ON pb.product_id = s.product_id"
							  "       AND pb.benefit_id = g.benefit_id"
							  " WHERE g.subscription_id = $1 AND g.state <> 'revoked'"
							  " ORDER BY pb.position NULLS LAST, g.created_at, g.id",
							  1, types),
				 &value, NULL, false, 0);
	n = (int) SPI_processed;
	grant_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	events = palloc(sizeof(Jsonb *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		grant_ids[i] = BenefitsResultUuid(i, SPI_fnumber(SPI_tuptable->tupdesc, "id"));
		events[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													 SPI_fnumber(SPI_tuptable->tupdesc, "event"), &isnull));
	}
	for (int i = 0; i < n; i++)
		EventsEnqueue(due->organization_id, EVENT_GRANT_REVOCATION_SCHEDULED,
					  DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(events[i]),
														 DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(due->extra),
																			 CStringGetTextDatum("ends_at")))));
	EmailsForGrantsWith(grant_ids, n, EMAIL_REVOCATION_WARNING, due->extra);
}

/*
 * Records the warnings due now and writes them; returns how many
 * subscriptions were warned.
 */
int
RevocationWarningsDue(void)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {INT4OID};
	Datum		value = Int32GetDatum(benefits_revocation_warning_before);
	int			n;
	DueWarning *due;

	if (benefits_revocation_warning_before <= 0)
		return 0;
	BenefitsExec(BenefitsPlan(&plan,
							  "WITH due AS ("
							  "  SELECT s.id, CASE"
							  "           WHEN s.status = 'canceled' THEN LEAST(s.ended_at, s.current_period_end)"
							  "           WHEN s.status IN ('past_due', 'unpaid') AND o.grace_period > '0 days'"
							  "                AND s.past_due_at IS NOT NULL"
							  "             THEN s.past_due_at + o.grace_period"
							  "           WHEN s.status IN ('active', 'trialing') THEN s.current_period_end"
							  "         END AS ends_at"
							  "    FROM benefits.subscriptions s JOIN benefits.organizations o ON o.id = s.organization_id"
							  "   WHERE s.status IN ('canceled', 'past_due', 'unpaid') OR s.cancel_at_period_end)"
							  " UPDATE benefits.subscriptions s SET revocation_warning_for = due.ends_at"
							  "   FROM due"
							  "  WHERE s.id = due.id AND due.ends_at > pg_catalog.now()"
							  "    AND due.ends_at <= pg_catalog.now() + $1 * interval '1 second'"
							  "    AND s.revocation_warning_for IS DISTINCT FROM due.ends_at"
							  "    AND EXISTS (SELECT FROM benefits.grants g WHERE g.subscription_id = s.id"
							  "                AND g.state <> 'revoked')"
							  " RETURNING s.id, s.organization_id,"
							  "   pg_catalog.jsonb_build_object('subscription_id', s.id,"
							  "     'revokes_at', benefits.rfc3339(due.ends_at),"
							  "     'ends_at', pg_catalog.to_char(due.ends_at AT TIME ZONE 'UTC', 'FMDD Mon YYYY HH24:MI')) AS extra",
							  1, types),
				 &value, NULL, false, 0);
	n = (int) SPI_processed;
	due = palloc(sizeof(DueWarning) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		due[i].subscription_id = BenefitsResultUuid(i, SPI_fnumber(SPI_tuptable->tupdesc, "id"));
		due[i].organization_id = BenefitsResultUuid(i, SPI_fnumber(SPI_tuptable->tupdesc, "organization_id"));
		due[i].extra = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
														SPI_fnumber(SPI_tuptable->tupdesc, "extra"), &isnull));
	}
	for (int i = 0; i < n; i++)
		WarnSubscription(&due[i]);
	return n;
}

/*
 * Records the license expiry warnings due now and writes their emails and
 * events; returns how many keys were warned about.
 */
int
LicenseExpiryWarningsDue(void)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {INT4OID};
	Datum		value = Int32GetDatum(benefits_license_expiry_warning_before);
	int			n;
	pg_uuid_t  *grant_ids;
	pg_uuid_t  *organization_ids;
	Jsonb	  **extras;
	Jsonb	  **events;

	if (benefits_license_expiry_warning_before <= 0)
		return 0;
	BenefitsExec(BenefitsPlan(&plan,
							  "WITH due AS ("
							  "  SELECT k.id, g.id AS grant_id FROM benefits.license_keys k"
							  "    JOIN LATERAL (SELECT g.id FROM benefits.grants g"
							  "                   WHERE g.customer_id = k.customer_id AND g.benefit_id = k.benefit_id"
							  "                     AND g.state = 'active' AND g.properties->>'license_key_id' = k.id::text"
							  "                   LIMIT 1) g ON true"
							  "   WHERE k.status = 'granted' AND k.expires_at IS NOT NULL"
							  "     AND k.expires_at > pg_catalog.now()"
							  "     AND k.expires_at <= pg_catalog.now() + $1 * interval '1 second'"
							  "     AND k.expiry_warning_for IS DISTINCT FROM k.expires_at)"
							  " UPDATE benefits.license_keys k SET expiry_warning_for = k.expires_at"
							  "   FROM due WHERE k.id = due.id"
							  " RETURNING due.grant_id, k.organization_id, pg_catalog.jsonb_build_object('license_key_id', k.id,"
							  "   'ends_at', pg_catalog.to_char(k.expires_at AT TIME ZONE 'UTC', 'FMDD Mon YYYY HH24:MI')) AS extra,"
							  "   pg_catalog.jsonb_build_object('license_key_id', k.id, 'grant_id', due.grant_id,"
							  "     'customer_id', k.customer_id, 'benefit_id', k.benefit_id, 'display_key', k.display_key,"
							  "     'expires_at', benefits.rfc3339(k.expires_at)) AS event",
							  1, types),
				 &value, NULL, false, 0);
	n = (int) SPI_processed;
	grant_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	organization_ids = palloc(sizeof(pg_uuid_t) * (n + 1));
	extras = palloc(sizeof(Jsonb *) * (n + 1));
	events = palloc(sizeof(Jsonb *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		TupleDesc	desc = SPI_tuptable->tupdesc;

		grant_ids[i] = BenefitsResultUuid(i, SPI_fnumber(desc, "grant_id"));
		organization_ids[i] = BenefitsResultUuid(i, SPI_fnumber(desc, "organization_id"));
		extras[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], desc,
													 SPI_fnumber(desc, "extra"), &isnull));
		events[i] = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[i], desc,
													 SPI_fnumber(desc, "event"), &isnull));
	}
	for (int i = 0; i < n; i++)
	{
		EventsEnqueue(organization_ids[i], EVENT_LICENSE_KEY_EXPIRING, events[i]);
		EmailsForGrantsWith(&grant_ids[i], 1, EMAIL_LICENSE_EXPIRING, extras[i]);
	}
	return n;
}
