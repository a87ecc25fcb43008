/*
 * type_feature_flag.c — the feature_flag benefit type (Polar's): a named
 * feature of the seller's application that holders may use.
 *
 * Properties are {} as in Polar; the feature's name is the benefit's
 * metadata.feature, which every feature_flag benefit carries.  Granting has
 * nothing to deliver: benefits.has_feature(customer_id, feature) (here, two
 * direct index lookups) and
 * benefits.customer_features(customer_id) (SQL, sql/install/55_features.sql;
 * FeatureFlagCustomerFeatures is its direct-scan twin) read the live grants, so access follows the grant in the same
 * transaction.  The portal shows the feature's name.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "catalog/pg_collation.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"
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
 * What has_feature and FeatureFlagCustomerFeatures read, resolved once and
 * forgotten when one of them changes: the live feature_flag benefits by
 * their feature's name (the expression index benefits_feature) and by id,
 * the customers' live grants by benefit and customer
 * (grants_live_benefit_customer), and a customer's grants (grants_source_key
 * leads with customer_id).
 */
static struct
{
	bool		valid;
	Oid			benefits_relid;
	Oid			feature_indexid;
	Oid			feature_collation;
	Oid			benefits_pkey_indexid;
	AttrNumber	benefit_id;
	AttrNumber	benefit_type;
	AttrNumber	benefit_deleted_at;
	AttrNumber	benefit_metadata;
	Oid			grants_relid;
	Oid			live_indexid;
	Oid			customer_grants_indexid;
	AttrNumber	grant_state;
	AttrNumber	grant_benefit_id;
} Features;

/* Relcache callback: forget what was resolved when one of those relations changes. */
static void
FeaturesInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == Features.benefits_relid || relid == Features.feature_indexid ||
		relid == Features.benefits_pkey_indexid || relid == Features.grants_relid ||
		relid == Features.live_indexid || relid == Features.customer_grants_indexid)
		Features.valid = false;
}

/* Resolves what Features holds, unless it is still valid. */
static void
FeaturesLoad(void)
{
	static bool registered = false;
	Relation	index;

	if (Features.valid)
		return;
	if (!registered)
	{
		CacheRegisterRelcacheCallback(FeaturesInvalidate, (Datum) 0);
		registered = true;
	}
	Features.benefits_relid = BenefitsRelid("benefits");
	Features.feature_indexid = BenefitsRelid("benefits_feature");
	Features.benefits_pkey_indexid = BenefitsRelid("benefits_pkey");
	Features.benefit_id = BenefitsColumnNumber(Features.benefits_relid, "id");
	Features.benefit_type = BenefitsColumnNumber(Features.benefits_relid, "type");
	Features.benefit_deleted_at = BenefitsColumnNumber(Features.benefits_relid, "deleted_at");
	Features.benefit_metadata = BenefitsColumnNumber(Features.benefits_relid, "metadata");
	Features.grants_relid = BenefitsRelid("grants");
	Features.live_indexid = BenefitsRelid("grants_live_benefit_customer");
	Features.customer_grants_indexid = BenefitsRelid("grants_source_key");
	Features.grant_state = BenefitsColumnNumber(Features.grants_relid, "state");
	Features.grant_benefit_id = BenefitsColumnNumber(Features.grants_relid, "benefit_id");
	index = index_open(Features.feature_indexid, AccessShareLock);
	Features.feature_collation = index->rd_indcollation[0];
	index_close(index, AccessShareLock);
	Features.valid = true;
}

/* Is the slot's text column equal to value? */
static bool
TextColumnIs(TupleTableSlot *slot, AttrNumber attnum, const char *value)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	return !isnull && strcmp(TextDatumGetCString(d), value) == 0;
}

/* Does the customer hold a live grant of this benefit that is active? */
static bool
ActiveGrant(Relation grants, Relation live, Datum benefit_id, Datum customer_id, TupleTableSlot *slot)
{
	IndexScanDesc scan = index_beginscan(grants, live, GetActiveSnapshot(), 2, 0);
	ScanKeyData keys[2];
	bool		active = false;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_UUID_EQ, benefit_id);
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_UUID_EQ, customer_id);
	index_rescan(scan, keys, 2, NULL, 0);
	while (!active && index_getnext_slot(scan, ForwardScanDirection, slot))
		active = TextColumnIs(slot, Features.grant_state, "active");
	index_endscan(scan);
	return active;
}

/* The benefits and grants relations a feature lookup scans, each through one index. */
typedef struct FeatureScan
{
	Relation	benefits;
	Relation	benefits_index;
	Relation	grants;
	Relation	grants_index;
	TupleTableSlot *benefit_slot;
	TupleTableSlot *grant_slot;
} FeatureScan;

/* Opens the relations of a lookup (after FeaturesLoad). */
static void
FeatureScanOpen(FeatureScan *fs, Oid benefits_indexid, Oid grants_indexid)
{
	fs->benefits = table_open(Features.benefits_relid, AccessShareLock);
	fs->benefits_index = index_open(benefits_indexid, AccessShareLock);
	fs->grants = table_open(Features.grants_relid, AccessShareLock);
	fs->grants_index = index_open(grants_indexid, AccessShareLock);
	fs->benefit_slot = table_slot_create(fs->benefits, NULL);
	fs->grant_slot = table_slot_create(fs->grants, NULL);
}

/* Closes them, keeping the locks until the transaction ends. */
static void
FeatureScanClose(FeatureScan *fs)
{
	ExecDropSingleTupleTableSlot(fs->grant_slot);
	ExecDropSingleTupleTableSlot(fs->benefit_slot);
	index_close(fs->grants_index, NoLock);
	table_close(fs->grants, NoLock);
	index_close(fs->benefits_index, NoLock);
	table_close(fs->benefits, NoLock);
}

/*
 * SQL: benefits.has_feature(customer_id, feature) — whether the customer
 * holds an active grant of a live feature_flag benefit whose metadata names
 * the feature.  Two direct index lookups, for a Row-Level Security policy's
 * every row: the feature's benefits (the partial expression index holds only
 * live feature_flag benefits), then the customer's live grant of each.
 * Nothing is resolved by name at call time and no privilege is checked:
 * EXECUTE is granted only to roles that read both tables.
 */
Datum
has_feature(PG_FUNCTION_ARGS)
{
	FeatureScan fs;
	IndexScanDesc scan;
	ScanKeyData key;
	bool		held = false;

	FeaturesLoad();
	FeatureScanOpen(&fs, Features.feature_indexid, Features.live_indexid);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   Features.feature_collation, F_TEXTEQ, PG_GETARG_DATUM(1));
	scan = index_beginscan(fs.benefits, fs.benefits_index, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (!held && index_getnext_slot(scan, ForwardScanDirection, fs.benefit_slot))
	{
		bool		isnull;
		Datum		benefit_id = slot_getattr(fs.benefit_slot, Features.benefit_id, &isnull);

		held = !isnull && ActiveGrant(fs.grants, fs.grants_index, benefit_id, PG_GETARG_DATUM(0), fs.grant_slot);
	}
	index_endscan(scan);
	FeatureScanClose(&fs);
	PG_RETURN_BOOL(held);
}

/* The feature named by a live feature_flag benefit, by id; NULL for any other benefit. */
static char *
LiveBenefitFeature(Relation benefits, Relation pkey, Datum benefit_id, TupleTableSlot *slot)
{
	IndexScanDesc scan = index_beginscan(benefits, pkey, GetActiveSnapshot(), 1, 0);
	ScanKeyData key;
	char	   *feature = NULL;
	bool		isnull;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, benefit_id);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot) &&
		TextColumnIs(slot, Features.benefit_type, FeatureFlagBenefit.name))
	{
		(void) slot_getattr(slot, Features.benefit_deleted_at, &isnull);
		if (isnull)
		{
			Datum		metadata = slot_getattr(slot, Features.benefit_metadata, &isnull);

			if (!isnull)
				feature = BenefitsJsonText(DatumGetJsonbP(metadata), "feature");
		}
	}
	index_endscan(scan);
	return feature;
}

/* list_sort's order of feature names: the database's default collation, as ORDER BY. */
static int
FeatureNameCompare(const ListCell *a, const ListCell *b)
{
	const char *x = lfirst(a);
	const char *y = lfirst(b);

	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

/*
 * The names of the features the customer holds, distinct and in name
 * order: what benefits.customer_features(customer_id) answers, by direct
 * index scans (the customer's grants, then each active grant's benefit) for
 * callers on a hot path (checkout_license).
 */
List *
FeatureFlagCustomerFeatures(const pg_uuid_t *customer_id)
{
	FeatureScan fs;
	IndexScanDesc scan;
	ScanKeyData key;
	List	   *names = NIL;
	List	   *distinct = NIL;
	ListCell   *lc;

	FeaturesLoad();
	FeatureScanOpen(&fs, Features.benefits_pkey_indexid, Features.customer_grants_indexid);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(customer_id));
	scan = index_beginscan(fs.grants, fs.grants_index, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, fs.grant_slot))
	{
		bool		isnull;
		Datum		benefit_id;
		char	   *feature;

		if (!TextColumnIs(fs.grant_slot, Features.grant_state, "active"))
			continue;
		benefit_id = slot_getattr(fs.grant_slot, Features.grant_benefit_id, &isnull);
		feature = LiveBenefitFeature(fs.benefits, fs.benefits_index, benefit_id, fs.benefit_slot);
		if (feature != NULL)
			names = lappend(names, feature);
	}
	index_endscan(scan);
	FeatureScanClose(&fs);

	list_sort(names, FeatureNameCompare);
	foreach(lc, names)
	{
		if (distinct == NIL || strcmp(llast(distinct), lfirst(lc)) != 0)
			distinct = lappend(distinct, lfirst(lc));
	}
	return distinct;
}

/* The feature the customer may use. */
static void
FeatureFlagPortalHtml(PortalPage *page, JsonbContainer *benefit)
{
	appendStringInfoString(page->buf, "<p class=\"status ok\">Included: <code>");
	PageEsc(page->buf, PageText(benefit, "feature"));
	appendStringInfoString(page->buf, "</code></p>\n");
}

/* The feature now available. */
static void
FeatureFlagEmail(EmailBody *body, const EmailGrant *grant)
{
	char	   *feature = BenefitsJsonText(grant->benefit_metadata, "feature");

	if (feature)
		EmailValue(body, "Now available in your account", feature);
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
	.email_instructions = FeatureFlagEmail,
};
