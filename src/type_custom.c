/*
 * type_custom.c — the custom benefit type: a note (markdown) shown to the
 * customers who hold it.
 *
 * Properties: {note}, normalized to {"note": text|null}.  A custom benefit
 * whose properties carry meter_id and credits is a meter credit benefit, and
 * is stored as one.  Granting has nothing to deliver.
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "properties.h"

static void
NormalizeCustom(PropertiesState *state, JsonbContainer *root)
{
	static const char *const keys[] = {"note", NULL};
	JsonbValue *note;

	PropCheckKeys(state, root, "properties", keys);
	PropPutKey(state, "note");
	if ((note = PropField(root, "note")) == NULL)
		PropPutNull(state);
	else if (note->type == jbvString)
		PropPutString(state, WJB_VALUE, PropStringOf(note));
	else
		ereport(ERROR, PROPERTY_ERROR, errmsg("properties.note must be a string"));
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

/* The note, as written (escaped, not rendered). */
static void
CustomPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	char	   *note = PageText(benefit, "note");

	if (note && note[0] != '\0')
	{
		appendStringInfoString(page->buf, "<p class=\"note\">");
		PageEsc(page->buf, note);
		appendStringInfoString(page->buf, "</p>\n");
	}
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
	.grant = GrantLocal,
	.grant_many = GrantLocalMany,
	.portal_key = "note",
	.portal_member = CustomPortalMember,
	.portal_label = "Note from the seller",
	.portal_html = CustomPortalHtml,
	.admin_editable = CustomEditable,
};
