/*
 * email_render.c — the customer email of an outbox job (kind 'email'),
 * rendered when the worker claims it: headers (Date and Message-ID fixed
 * when the row was written, From the organization's sender, To the
 * customer, Subject in RFC 2047 when not ASCII, List-Unsubscribe to the
 * portal) and a multipart/alternative body, plain text and HTML, every value
 * escaped for its part and no external asset.  Each listed grant's
 * instructions come from its benefit type (email_instructions).
 *
 * Concurrency: runs in the worker's claim transaction and only reads; a
 * grant changed since the row was written is shown as it is now.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "benefits.h"
#include "benefit_type.h"
#include "email.h"
#include "html.h"

/* The job's row with its customer and organization (named columns). */
static const char *job_sql =
"SELECT o.action, o.message_id, o.created_at, o.payload->'grant_ids' AS grant_ids,"
"       c.email, c.name, org.name AS organization_name, COALESCE(org.email_from, $2) AS sender,"
"       org.support_email, org.portal_url, o.payload->>'ends_at' AS ends_at,"
"       o.payload->>'balance' AS balance, o.payload->>'low_balance_threshold' AS threshold,"
"       (SELECT m.name FROM benefits.meters m WHERE m.id::text = o.payload->>'meter_id') AS meter"
"  FROM benefits.outbox o"
"  JOIN benefits.organizations org ON org.id = o.organization_id"
"  LEFT JOIN benefits.customers c ON c.deleted_at IS NULL AND c.id = CASE"
"       WHEN o.payload->>'customer_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
"       THEN (o.payload->>'customer_id')::uuid END"
" WHERE o.id = $1 AND o.kind = 'email'";

/* The listed grants, in the message's order. */
static const char *grants_sql =
"SELECT g.customer_id, g.state, g.properties, g.error, b.type, b.description,"
"       b.properties AS benefit_properties, b.metadata"
"  FROM pg_catalog.jsonb_array_elements_text($1) WITH ORDINALITY AS u(id, n)"
"  JOIN benefits.grants g ON g.id = u.id::uuid"
"  JOIN benefits.benefits b ON b.id = g.benefit_id"
" ORDER BY u.n";

/* What the job's row says, copied out of SPI. */
typedef struct EmailJob
{
	char	   *action;
	char	   *message_id;
	TimestampTz created_at;
	Jsonb	   *grant_ids;
	char	   *to;
	char	   *to_name;
	char	   *organization;
	char	   *sender;
	char	   *support;
	char	   *portal_url;
	char	   *ends_at;
	char	   *balance;		/* credits_low: the balance, threshold and meter */
	char	   *threshold;
	char	   *meter;
} EmailJob;

/* A text column of the first row by name, or NULL. */
static char *
Column(const char *name)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						SPI_fnumber(SPI_tuptable->tupdesc, name));
}

/* A jsonb column of row i by name (copied), or NULL. */
static Jsonb *
JsonColumn(uint64 i, const char *name)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								  SPI_fnumber(SPI_tuptable->tupdesc, name), &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

/* Reads the job; false (and *error) when there is nothing that can be sent. */
static bool
LoadJob(int64 job_id, EmailJob *job, char **error)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	values[0] = Int64GetDatum(job_id);
	values[1] = benefits_email_from[0] ? CStringGetTextDatum(benefits_email_from) : (Datum) 0;
	nulls[1] = benefits_email_from[0] ? ' ' : 'n';
	BenefitsExec(BenefitsPlan(&plan, job_sql, 2, types), values, nulls, true, 1);
	if (SPI_processed == 0)
	{
		*error = pstrdup("email job not found");
		return false;
	}
	job->action = Column("action");
	job->message_id = Column("message_id");
	job->created_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
														SPI_fnumber(SPI_tuptable->tupdesc, "created_at"),
														&isnull));
	job->grant_ids = JsonColumn(0, "grant_ids");
	job->to = Column("email");
	job->to_name = Column("name");
	job->organization = Column("organization_name");
	job->sender = Column("sender");
	job->support = Column("support_email");
	job->portal_url = Column("portal_url");
	job->ends_at = Column("ends_at");
	job->balance = Column("balance");
	job->threshold = Column("threshold");
	job->meter = Column("meter");
	if (job->to == NULL)
		*error = pstrdup("the customer is gone or has no email address");
	else if (!EmailAddressValid(job->to))
		*error = psprintf("the customer's email address \"%s\" is not a plain address", job->to);
	else if (job->sender == NULL || !EmailAddressValid(job->sender))
		*error = pstrdup("no sender: set organizations.email_from or benefits.email_from");
	else if (job->message_id == NULL)
		*error = pstrdup("the job has no message id");
	else
		return true;
	return false;
}

/* The subject and the opening paragraph of a kind of message. */
static char *
Opening(const EmailJob *job, EmailBody *body, const char *first_benefit)
{
	if (job->to_name && job->to_name[0])
		EmailLine(body, psprintf("Hello %s,", job->to_name));
	else
		EmailLine(body, "Hello,");
	if (strcmp(job->action, EMAIL_BENEFITS_REMOVED) == 0)
	{
		EmailLine(body, "These benefits are no longer available to you:");
		return psprintf("Your benefits from %s have ended", job->organization);
	}
	if (strcmp(job->action, EMAIL_REVOCATION_WARNING) == 0)
	{
		EmailLine(body, psprintf("These benefits will be removed on %s (UTC) unless your subscription is renewed:",
								 job->ends_at ? job->ends_at : "the end of your subscription"));
		return psprintf("Your benefits from %s end on %s", job->organization,
						job->ends_at ? job->ends_at : "the end of your subscription");
	}
	if (strcmp(job->action, EMAIL_CREDITS_LOW) == 0)
	{
		EmailLine(body, psprintf("Your balance of %s is %s, below %s.", job->meter ? job->meter : "credits",
								 job->balance ? job->balance : "low", job->threshold ? job->threshold : "its threshold"));
		return psprintf("Your %s credits are running low", job->meter ? job->meter : "");
	}
	if (strcmp(job->action, EMAIL_LICENSE_EXPIRING) == 0)
	{
		EmailLine(body, psprintf("Your license key expires on %s (UTC); renew to keep using it:",
								 job->ends_at ? job->ends_at : "soon"));
		return psprintf("Your license key expires on %s", job->ends_at ? job->ends_at : "soon");
	}
	if (strcmp(job->action, EMAIL_FULFILLMENT_COMPLETED) == 0)
	{
		EmailLine(body, psprintf("%s has delivered what you were waiting for:", job->organization));
		return psprintf("%s is ready", first_benefit ? first_benefit : "Your benefit");
	}
	EmailLine(body, psprintf("Thank you! Here is how to reach everything %s has given you:", job->organization));
	return psprintf("Your benefits from %s", job->organization);
}

/* Each listed grant: its description and, unless removed, its type's instructions. */
static char *
ListGrants(const EmailJob *job, EmailBody *body)
{
	static SPIPlanPtr plan;
	Oid			types[1] = {JSONBOID};
	Datum		value = JsonbPGetDatum(job->grant_ids);
	bool		instructions = strcmp(job->action, EMAIL_BENEFITS_REMOVED) != 0 &&
		strcmp(job->action, EMAIL_REVOCATION_WARNING) != 0;
	SPITupleTable *grants;
	char	   *first = NULL;

	if (job->grant_ids == NULL)
		return NULL;
	BenefitsExec(BenefitsPlan(&plan, grants_sql, 1, types), &value, NULL, true, 0);
	grants = SPI_tuptable;
	for (uint64 i = 0, n = SPI_processed; i < n; i++)
	{
		TupleDesc	desc = grants->tupdesc;
		HeapTuple	row = grants->vals[i];
		char	   *description = SPI_getvalue(row, desc, SPI_fnumber(desc, "description"));
		const BenefitType *bt = BenefitTypeOf(SPI_getvalue(row, desc, SPI_fnumber(desc, "type")));
		EmailGrant grant = {0};
		bool		isnull;

		if (first == NULL)
			first = description;
		EmailHeading(body, description);
		if (!instructions || bt->email_instructions == NULL)
			continue;
		SPI_tuptable = grants;
		grant.customer_id = DatumGetUuid(SPI_getbinval(row, desc, SPI_fnumber(desc, "customer_id"), &isnull));
		grant.state = SPI_getvalue(row, desc, SPI_fnumber(desc, "state"));
		grant.benefit_properties = JsonColumn(i, "benefit_properties");
		grant.benefit_metadata = JsonColumn(i, "metadata");
		grant.grant_properties = JsonColumn(i, "properties");
		grant.grant_error = JsonColumn(i, "error");
		grant.portal_url = job->portal_url;
		bt->email_instructions(body, &grant);
	}
	return first;
}

/* The closing paragraphs: the portal, the support contact, why this came. */
static void
Closing(const EmailJob *job, EmailBody *body)
{
	if (job->portal_url)
		EmailLink(body, "Everything you hold, any time, in your portal", job->portal_url);
	if (job->support)
		EmailLine(body, psprintf("Questions? Write to %s.", job->support));
	EmailLine(body, psprintf("You receive this email because you hold benefits from %s.", job->organization));
}

/*
 * A URL inside <...> of a header: angle brackets percent-encoded, so the
 * URL cannot close the bracket and add another (the stored URL is checked
 * printable ASCII without spaces).
 */
static void
HeaderUrl(StringInfo buf, const char *url)
{
	for (const char *c = url; *c; c++)
	{
		if (*c == '<' || *c == '>')
			appendStringInfo(buf, "%%%02X", (unsigned char) *c);
		else
			appendStringInfoChar(buf, *c);
	}
}

/* The headers and both parts. */
static char *
Assemble(const EmailJob *job, const char *subject, EmailBody *body)
{
	StringInfoData m;
	StringInfoData html;
	const char *domain = strchr(job->sender, '@') + 1;
	char	   *boundary = psprintf("=_benefits_%s", job->message_id);

	initStringInfo(&html);
	appendStringInfoString(&html, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	HtmlEscape(&html, subject);
	appendStringInfo(&html, "</title></head>\n<body>\n%s</body></html>\n", body->html.data);

	initStringInfo(&m);
	appendStringInfo(&m, "Date: %s\r\nFrom: ", EmailDate(job->created_at));
	EmailMailbox(&m, job->organization, job->sender);
	appendStringInfoString(&m, "\r\nTo: ");
	EmailMailbox(&m, job->to_name, job->to);
	appendStringInfoString(&m, "\r\nSubject: ");
	EmailHeaderText(&m, subject);
	appendStringInfo(&m, "\r\nMessage-ID: <%s@%s>\r\n", job->message_id, domain);
	if (job->support)
		appendStringInfo(&m, "Reply-To: <%s>\r\n", job->support);
	if (job->portal_url)
	{
		appendStringInfoString(&m, "List-Unsubscribe: <");
		HeaderUrl(&m, job->portal_url);
		appendStringInfoString(&m, ">\r\n");
	}
	appendStringInfo(&m, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
					 "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
	appendStringInfo(&m, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
					 "Content-Transfer-Encoding: base64\r\n\r\n", boundary);
	EmailBase64(&m, body->text.data, body->text.len);
	appendStringInfo(&m, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
					 "Content-Transfer-Encoding: base64\r\n\r\n", boundary);
	EmailBase64(&m, html.data, html.len);
	appendStringInfo(&m, "--%s--\r\n", boundary);
	return m.data;
}

/*
 * The message of email job job_id and its envelope (*mail_from, *rcpt), in
 * SPI's procedure context; NULL with *error when it cannot be sent.
 */
char *
EmailRender(int64 job_id, char **mail_from, char **rcpt, char **error)
{
	EmailJob	job = {0};
	EmailBody	intro;
	EmailBody	list;
	char	   *first;
	char	   *subject;

	if (!LoadJob(job_id, &job, error))
		return NULL;
	EmailBodyInit(&list);
	first = ListGrants(&job, &list);
	EmailBodyInit(&intro);
	subject = Opening(&job, &intro, first);
	appendBinaryStringInfo(&intro.text, list.text.data, list.text.len);
	appendBinaryStringInfo(&intro.html, list.html.data, list.html.len);
	Closing(&job, &intro);
	*mail_from = job.sender;
	*rcpt = job.to;
	return Assemble(&job, subject, &intro);
}
