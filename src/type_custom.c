/*
 * type_custom.c — the custom benefit type: a note (markdown) shown to the
 * customers who hold it.
 *
 * Properties: {note, fulfillment}, normalized to {"note": text|null}, plus
 * "fulfillment": "manual" when the seller delivers it by hand ("automatic",
 * the default, is left out).  A custom benefit whose properties carry
 * meter_id and credits is a meter credit benefit, and is stored as one.
 *
 * An automatic grant has nothing to deliver: it is active at once.  A manual
 * one stays created, with grant properties {"fulfillment": "pending"}, until
 * complete_fulfillment (fulfillment.c) makes it active and stores the
 * seller's note; the portal shows both.
 *
 * Concurrency: the grant operations run under the customer's lock (grants.h);
 * the rest reads its arguments only.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "properties.h"

/* The grant properties of a manual grant waiting for the seller. */
#define PENDING_GRANT_PROPERTIES "{\"fulfillment\": \"pending\"}"

/*
 * The longest note, in characters: it goes into every grant's webhook
 * payloads, emails and portal document.
 */
#define NOTE_MAX 10000

/* Validates {note, fulfillment}; "fulfillment" is kept only when manual. */
static void
NormalizeCustom(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"note", "fulfillment", NULL};
	static const char *const fulfillments[] = {"automatic", "manual", NULL};
	JsonbValue *note;
	JsonbValue *fulfillment;

	PropCheckKeys(state, root, "properties", keys);
	PropPutKey(state, "note");
	if ((note = PropField(root, "note")) == NULL)
		PropPutNull(state);
	else if (note->type == jbvString)
	{
		char	   *text = PropStringOf(note);

		if (pg_mbstrlen(text) > NOTE_MAX)
			ereport(ERROR, PROPERTY_ERROR,
					errmsg("properties.note must be at most %d characters", NOTE_MAX),
					errdetail("It has %d.", pg_mbstrlen(text)));
		PropPutString(state, WJB_VALUE, text);
	}
	else
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties.note must be a string"));

	if ((fulfillment = PropField(root, "fulfillment")) == NULL)
		return;
	if (fulfillment->type != jbvString || !PropInList(PropStringOf(fulfillment), fulfillments))
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties.fulfillment must be one of %s", PropJoinList(fulfillments)));
	if (strcmp(PropStringOf(fulfillment), "manual") == 0)
		PropPutKeyString(state, "fulfillment", "manual");
}

/* Does the seller fulfill grants of a benefit with these properties by hand? */
static bool
IsManual(Jsonb *benefit_properties)
{
	char	   *fulfillment = BenefitsJsonText(benefit_properties, "fulfillment");

	return fulfillment != NULL && strcmp(fulfillment, "manual") == 0;
}

/*
 * Automatic: active at once; manual: created, waiting for the seller.  The
 * grant's properties start afresh either way (a revoked grant granted again
 * waits again, and one whose benefit became automatic shows no fulfillment).
 */
static void
GrantCustom(GrantChange *change)
{
	bool		manual = IsManual(change->benefit_properties);

	change->new_state = manual ? "created" : "active";
	change->new_properties = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																CStringGetDatum(manual ? PENDING_GRANT_PROPERTIES : "{}")));
}

/* GrantCustom for a batch. */
static void
GrantCustomMany(GrantBatch *batch)
{
	if (IsManual(batch->benefit_properties))
		GrantLocalManyAs(batch, "created", PENDING_GRANT_PROPERTIES);
	else
		GrantLocalMany(batch);
}

/* With a meter and credits, a custom benefit is a meter_credits benefit. */
static const BenefitType *
CustomStoredAs(JsonbContainer *root, const char **hint)
{
	if (PropField(root, "meter_id") == NULL && PropField(root, "credits") == NULL &&
		PropField(root, "units") == NULL)
		return NULL;
	*hint = "A custom benefit whose properties carry meter_id and credits is a meter_credits benefit.";
	return &MeterCreditsBenefit;
}

/* The portal shows the note as written (markdown). */
static void
CustomPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	DocJson(&ctx->doc, JsonMember(b->properties, "note"));
}

/*
 * A manually fulfilled grant's own member: fulfillment {state: pending or
 * completed, note: the seller's note or null}.  Other grants have none.
 */
static void
CustomPortalGrant(PortalBuild *ctx, PortalBenefit *b)
{
	JsonbContainer *grant = RowsJsonb(ctx->held, b->chosen, HELD_GRANT_PROPERTIES);
	JsonbValue *state = JsonMember(grant, "fulfillment");
	JsonbValue *note = JsonMember(grant, "fulfillment_note");

	if (state == NULL)
		return;
	DocKey(&ctx->doc, "fulfillment");
	DocBeginObject(&ctx->doc);
	DocKey(&ctx->doc, "note");
	if (note)
		DocJson(&ctx->doc, note);
	else
		DocNull(&ctx->doc);
	DocKey(&ctx->doc, "state");
	DocJson(&ctx->doc, state);
	DocEndObject(&ctx->doc);
}

/* One paragraph of escaped text (nothing for NULL or empty text). */
static void
NoteParagraph(PortalPage *page, const char *css_class, const char *prefix, const char *text)
{
	if (text == NULL || text[0] == '\0')
		return;
	appendStringInfo(page->buf, "<p class=\"%s\">%s", css_class, prefix);
	PageEsc(page->buf, text);
	appendStringInfoString(page->buf, "</p>\n");
}

/*
 * The note, as written (escaped, not rendered); for a manual grant, whether
 * the seller is still preparing it, and the seller's note once delivered.
 */
static void
CustomPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	JsonbContainer *fulfillment = PageContainer(benefit, "fulfillment");
	char	   *state = fulfillment ? PageText(fulfillment, "state") : NULL;

	NoteParagraph(page, "note", "", PageText(benefit, "note"));
	if (state != NULL && strcmp(state, "pending") == 0)
		appendStringInfoString(page->buf,
							   "<p class=\"status pending\">Pending: the seller is preparing this for you.</p>\n");
	if (fulfillment != NULL)
		NoteParagraph(page, "note fulfillment-note", "Delivered: ", PageText(fulfillment, "note"));
}

/*
 * The note, as written; for a manual grant, that the seller is preparing it,
 * or the seller's note once delivered.
 */
static void
CustomEmail(EmailBody *body, const EmailGrant *grant)
{
	char	   *note = BenefitsJsonText(grant->benefit_properties, "note");
	char	   *fulfillment = BenefitsJsonText(grant->grant_properties, "fulfillment");
	char	   *delivered = BenefitsJsonText(grant->grant_properties, "fulfillment_note");

	if (note && note[0] != '\0')
		EmailLine(body, note);
	if (fulfillment && strcmp(fulfillment, "pending") == 0)
		EmailLine(body, "The seller is preparing this for you; you will get an email when it is ready.");
	if (delivered && delivered[0] != '\0')
		EmailLine(body, psprintf("From the seller: %s", delivered));
}

/* What the dashboard may edit in place. */
static const BenefitEditableProperty CustomEditable[] = {
	{"note", "Note shown to customers", false},
	{NULL, NULL, false}
};

const BenefitType CustomBenefit = {
	.name = "custom",
	.webhook_name = "custom",
	.normalize = NormalizeCustom,
	.stored_as = CustomStoredAs,
	.grant = GrantCustom,
	.grant_many = GrantCustomMany,
	.portal_key = "note",
	.portal_member = CustomPortalMember,
	.portal_grant = CustomPortalGrant,
	.portal_label = "Note from the seller",
	.portal_html = CustomPortalHtml,
	.email_instructions = CustomEmail,
	.admin_editable = CustomEditable,
};
