/*
 * type_feature_flag.c — the feature_flag benefit type (Polar's): a named
 * feature of the seller's application that holders may use.
 *
 * Properties are {} as in Polar; the feature's name is the benefit's
 * metadata.feature, which every feature_flag benefit carries.  Granting has
 * nothing to deliver: benefits.has_feature(customer_id, feature) (here) and
 * benefits.customer_features(customer_id) (SQL, sql/install/55_features.sql)
 * read the live grants, so access follows the grant in the same
 * transaction.  The portal shows the feature's name.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "benefits.h"
#include "benefit_type.h"
#include "properties.h"

/* No properties: the benefit is its feature's name (metadata.feature). */
static void
NormalizeFeatureFlag(PropertiesState *state, JsonbContainer *root)
{
	if (JsonContainerSize(root) > 0)
		ereport(ERROR, PROPERTY_ERROR,
				errmsg("properties must be {} for a feature_flag benefit"),
				errhint("Name the feature in the benefit's metadata: metadata => '{\"feature\": \"export_pdf\"}'."));
}

/* The portal shows the feature's name. */
static void
FeatureFlagPortalMember(PortalBuild *ctx, PortalBenefit *b)
{
	DocJson(&ctx->doc, JsonMember(b->metadata, "feature"));
}

PG_FUNCTION_INFO_V1(has_feature);

/*
 * SQL: benefits.has_feature(customer_id, feature) — whether the customer
 * holds an active grant of a live feature_flag benefit whose metadata names
 * the feature.  One kept plan: the feature's benefits by their expression
 * index, then the customer's live grant of each by (benefit_id,
 * customer_id).  Every name and operator is schema-qualified, so the plan
 * means the same under any search_path of the caller whose rights it runs
 * with.
 */
Datum
has_feature(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
	bool		held;

	BenefitsSpiConnect();
	BenefitsExec(BenefitsGenericPlan(&plan,
									 "SELECT 1 FROM benefits.benefits b JOIN benefits.grants g"
									 "    ON g.benefit_id OPERATOR(pg_catalog.=) b.id"
									 " WHERE b.type OPERATOR(pg_catalog.=) 'feature_flag'::pg_catalog.text"
									 "   AND b.deleted_at IS NULL"
									 "   AND (b.metadata OPERATOR(pg_catalog.->>) 'feature'::pg_catalog.text)"
									 "       OPERATOR(pg_catalog.=) $2"
									 "   AND g.customer_id OPERATOR(pg_catalog.=) $1"
									 "   AND g.state OPERATOR(pg_catalog.<>) 'revoked'::pg_catalog.text"
									 "   AND g.state OPERATOR(pg_catalog.=) 'active'::pg_catalog.text"
									 " LIMIT 1",
									 2, types),
				 values, NULL, true, 1);
	held = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(held);
}

/* The feature the customer may use. */
static void
FeatureFlagPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	appendStringInfoString(page->buf, "<p class=\"status ok\">Included: <code>");
	PageEsc(page->buf, PageText(benefit, "feature"));
	appendStringInfoString(page->buf, "</code></p>\n");
}

const BenefitType FeatureFlagBenefit = {
	.name = "feature_flag",
	.webhook_name = "feature_flag",
	.metadata_key = "feature",
	.normalize = NormalizeFeatureFlag,
	.grant = GrantLocal,
	.grant_many = GrantLocalMany,
	.portal_key = "feature",
	.portal_member = FeatureFlagPortalMember,
	.portal_label = "Feature",
	.portal_html = FeatureFlagPortalHtml,
};
