/*
 * email.h — customer email: the settings (email.c), what a benefit type
 * writes into a message (email_text.c), writing messages into the outbox
 * (email.c), rendering them (email_render.c) and sending them over SMTP
 * (email_send.c).
 */
#ifndef BENEFITS_EMAIL_H
#define BENEFITS_EMAIL_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* The kinds of message (outbox action of kind 'email'). */
#define EMAIL_BENEFITS_GRANTED		"benefits_granted"
#define EMAIL_BENEFITS_REMOVED		"benefits_removed"
#define EMAIL_FULFILLMENT_COMPLETED	"fulfillment_completed"
#define EMAIL_REVOCATION_WARNING	"revocation_warning"
#define EMAIL_CREDITS_LOW			"credits_low"
#define EMAIL_LICENSE_EXPIRING		"license_expiring"

/* Settings (email.c). */
extern char *benefits_smtp_url;
extern char *benefits_smtp_username;
extern char *benefits_smtp_password;
extern char *benefits_email_from;
extern int	benefits_revocation_warning_before;	/* s */
extern int	benefits_license_expiry_warning_before;	/* s */
extern void EmailInit(void);

/*
 * One message's body under construction, in both of its parts: plain text
 * and HTML.  Every value is escaped for the HTML part here.
 */
typedef struct EmailBody
{
	StringInfoData text;
	StringInfoData html;
} EmailBody;

/* What a benefit type sees of one grant listed in a message. */
typedef struct EmailGrant
{
	pg_uuid_t	customer_id;
	const char *state;			/* created | active | revoked */
	Jsonb	   *benefit_properties;
	Jsonb	   *benefit_metadata;
	Jsonb	   *grant_properties;
	Jsonb	   *grant_error;	/* or NULL */
	const char *portal_url;		/* where the app serves the portal, or NULL */
} EmailGrant;

/* email_text.c: a body's paragraphs, values and links, in both parts */
extern void EmailBodyInit(EmailBody *body);
extern void EmailHeading(EmailBody *body, const char *text);
extern void EmailLine(EmailBody *body, const char *text);
extern void EmailValue(EmailBody *body, const char *label, const char *value);
extern void EmailLink(EmailBody *body, const char *text, const char *url);
/* The objects of an array member of a JSON object (a List of Jsonb *). */
extern List *EmailObjects(Jsonb *object, const char *key);
/* Does the grant wait for the customer to take this action (its error's action)? */
extern bool EmailAwaits(const EmailGrant *grant, const char *action);
/* The portal link of a grant's instructions, or a line saying to open it. */
extern void EmailPortalLink(EmailBody *body, const EmailGrant *grant, const char *text);

/* email_text.c: message headers */
extern bool EmailAddressValid(const char *address);
extern void EmailHeaderText(StringInfo buf, const char *text);
extern void EmailMailbox(StringInfo buf, const char *name, const char *address);
extern void EmailBase64(StringInfo buf, const char *data, size_t len);
extern char *EmailDate(TimestampTz ts);

/* email.c: messages written in the causing transaction */
extern bool EmailEnabled(void);
extern void EmailsForGrants(const pg_uuid_t *grant_ids, int n, const char *kind);
extern void EmailsForGrantsWith(const pg_uuid_t *grant_ids, int n, const char *kind, Jsonb *extra);
extern void EmailForCustomer(pg_uuid_t customer_id, const char *kind, Jsonb *payload);

/* revocation_warnings.c: run_maintenance's warnings before access ends */
extern int	RevocationWarningsDue(void);
extern int	LicenseExpiryWarningsDue(void);

/* email_render.c: the message of an email job, or NULL (*error says why) */
extern char *EmailRender(int64 job_id, char **mail_from, char **rcpt, char **error);

#endif
