/*
 * email.c — customer email: the settings, and the messages written into the
 * outbox in the transaction that causes them (kind 'email', one row per
 * message, action naming what it says).  The worker renders each message
 * when it claims it (email_render.c) and sends it over SMTP (email_send.c).
 *
 * A customer may decline the messages not about their access (credits
 * running low: customers.email_opt_out).
 *
 * A message about grants covers every grant of one customer and one source
 * (subscription or order; manual grants together) changed by the same
 * statement, in attachment order (the aggregate reads them from a subquery
 * sorted in that order: an ordered aggregate would sort every message's
 * grants on its own; each grant is one index lookup, which the planner,
 * unable to estimate the array, would otherwise trade for a scan): one "benefits granted" message per activation, not
 * one per benefit.  Its Message-ID and Date are fixed here,
 * so a resend after a crash is the same message.  Nothing is written while
 * benefits.smtp_url is empty, for customers without an email address, for
 * organizations that turned the kind off (organizations.email_disabled) or
 * that have no sender (organizations.email_from, else benefits.email_from).
 *
 * Concurrency: runs in the caller's transaction and SPI connection, after
 * the grants were written under their customers' locks; it only inserts.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "benefits.h"
#include "email.h"
#include "engine.h"

char	   *benefits_smtp_url = NULL;
char	   *benefits_smtp_username = NULL;
char	   *benefits_smtp_password = NULL;
char	   *benefits_email_from = NULL;
int			benefits_revocation_warning_before = 3 * 86400;
int			benefits_license_expiry_warning_before = 7 * 86400;

/* benefits.smtp_url: empty, or an smtp:// or smtps:// URL. */
static bool
CheckSmtpUrl(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' ||
		strncmp(*newval, "smtp://", 7) == 0 || strncmp(*newval, "smtps://", 8) == 0)
		return true;
	GUC_check_errdetail("benefits.smtp_url must start with smtp:// or smtps://, or be empty.");
	return false;
}

/* benefits.email_from: empty, or a plain address. */
static bool
CheckEmailFrom(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || EmailAddressValid(*newval))
		return true;
	GUC_check_errdetail("benefits.email_from must be a plain address such as shop@example.com.");
	return false;
}

/* Define the email settings; called from _PG_init. */
void
EmailInit(void)
{
	DefineCustomStringVariable("benefits.smtp_url",
							   "SMTP server the worker sends customer email through (smtp:// or smtps://; empty: no email).",
							   NULL, &benefits_smtp_url, "",
							   PGC_SUSET, 0, CheckSmtpUrl, NULL, NULL);
	DefineCustomStringVariable("benefits.smtp_username",
							   "User name for SMTP authentication (empty: none).",
							   NULL, &benefits_smtp_username, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.smtp_password",
							   "Password for SMTP authentication.",
							   NULL, &benefits_smtp_password, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("benefits.email_from",
							   "Sender address of customer email for organizations without their own email_from.",
							   NULL, &benefits_email_from, "",
							   PGC_SUSET, 0, CheckEmailFrom, NULL, NULL);
	DefineCustomIntVariable("benefits.revocation_warning_before",
							"How long before a subscription loses its benefits the customer is warned.",
							NULL, &benefits_revocation_warning_before, 3 * 86400, 0, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("benefits.license_expiry_warning_before",
							"How long before a license key expires the customer is warned.",
							NULL, &benefits_license_expiry_warning_before, 7 * 86400, 0, 365 * 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

/* Is customer email on (benefits.smtp_url set)? */
bool
EmailEnabled(void)
{
	return benefits_smtp_url != NULL && benefits_smtp_url[0] != '\0';
}

/* The sender setting as an SQL argument: NULL when empty. */
static Datum
DefaultSender(char *null_flag)
{
	bool		set = benefits_email_from != NULL && benefits_email_from[0] != '\0';

	*null_flag = set ? ' ' : 'n';
	return set ? CStringGetTextDatum(benefits_email_from) : (Datum) 0;
}

/*
 * Writes the messages of kind about these grants (in attachment order): one
 * per customer and source.
 */
void
EmailsForGrants(const pg_uuid_t *grant_ids, int n, const char *kind)
{
	EmailsForGrantsWith(grant_ids, n, kind, NULL);
}

/* EmailsForGrants with more members in each message's payload (extra, or NULL). */
void
EmailsForGrantsWith(const pg_uuid_t *grant_ids, int n, const char *kind, Jsonb *extra)
{
	static SPIPlanPtr plan;
	Oid			types[4] = {UUIDARRAYOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (n == 0 || !EmailEnabled())
		return;
	values[0] = BenefitsUuidArray(grant_ids, n);
	values[1] = CStringGetTextDatum(kind);
	values[2] = DefaultSender(&nulls[2]);
	values[3] = extra ? JsonbPGetDatum(extra) : (Datum) 0;
	nulls[3] = extra ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan,
							  "WITH x AS ("
							  "  SELECT s.organization_id, s.customer_id, pg_catalog.jsonb_agg(s.id) AS grant_ids"
							  "    FROM (SELECT g.organization_id, g.customer_id, g.id, COALESCE(g.subscription_id,"
							  "                 g.order_id, g.source_subscription_id, g.source_order_id) AS source"
							  "            FROM pg_catalog.unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)"
							  "           CROSS JOIN LATERAL (SELECT * FROM benefits.grants g WHERE g.id = u.id OFFSET 0) g"
							  "           ORDER BY u.n) s"
							  "   GROUP BY s.organization_id, s.customer_id, s.source)"
							  "INSERT INTO benefits.outbox (organization_id, kind, action, message_id, payload)"
							  " SELECT x.organization_id, 'email', $2, " SQL_MESSAGE_ID ","
							  "        pg_catalog.jsonb_build_object('customer_id', x.customer_id, 'grant_ids', x.grant_ids)"
							  "        || COALESCE($4, '{}')"
							  "   FROM x"
							  "   JOIN benefits.customers c ON c.id = x.customer_id"
							  "   JOIN benefits.organizations o ON o.id = x.organization_id"
							  "  WHERE c.email IS NOT NULL AND c.deleted_at IS NULL"
							  "    AND NOT ($2 = ANY (o.email_disabled)) AND COALESCE(o.email_from, $3) IS NOT NULL",
							  4, types),
				 values, nulls, false, 0);
}

/*
 * Writes one message of kind to a customer, its payload the given members
 * and the customer's id.  Kinds a customer may decline (credits_low: not
 * about their access) are not written for customers with email_opt_out.
 */
void
EmailForCustomer(pg_uuid_t customer_id, const char *kind, Jsonb *payload)
{
	static SPIPlanPtr plan;
	Oid			types[5] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	if (!EmailEnabled())
		return;
	values[0] = UuidGetDatum(&customer_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = DefaultSender(&nulls[2]);
	values[3] = JsonbPGetDatum(payload);
	values[4] = BoolGetDatum(strcmp(kind, EMAIL_CREDITS_LOW) == 0);
	BenefitsExec(BenefitsPlan(&plan,
							  "INSERT INTO benefits.outbox (organization_id, kind, action, message_id, payload)"
							  " SELECT c.organization_id, 'email', $2, " SQL_MESSAGE_ID ","
							  "        $4 || pg_catalog.jsonb_build_object('customer_id', c.id)"
							  "   FROM benefits.customers c JOIN benefits.organizations o ON o.id = c.organization_id"
							  "  WHERE c.id = $1 AND c.email IS NOT NULL AND c.deleted_at IS NULL"
							  "    AND NOT ($2 = ANY (o.email_disabled)) AND COALESCE(o.email_from, $3) IS NOT NULL"
							  "    AND NOT (c.email_opt_out AND $5)",
							  5, types),
				 values, nulls, false, 0);
}
