/*
 * catalog.c — the benefit catalog: create, edit and delete benefits, and
 * attach them to products in order.
 *
 * Each function checks everything before it writes and writes inside the
 * caller's transaction, so a refused call leaves nothing behind.  Rows are
 * locked in one order (product, then benefits) and every statement is
 * schema-qualified, as these functions run with a pinned search_path.
 *
 * update_benefit, delete_benefit and update_product_benefits end with the
 * catalog written and everything the grant engine needs at hand (the previous
 * and new properties, the detached products, the previous and new benefit
 * lists); live grants are brought in line from that point, in the same
 * transaction.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "engine.h"
#include "benefit_type.h"

PG_FUNCTION_INFO_V1(create_benefit);
PG_FUNCTION_INFO_V1(update_benefit);
PG_FUNCTION_INFO_V1(delete_benefit);
PG_FUNCTION_INFO_V1(update_product_benefits);

#define CATALOG_ERROR	errcode(ERRCODE_INVALID_PARAMETER_VALUE)

/* Plans kept for the life of the backend. */
static SPIPlanPtr organization_plan = NULL;
static SPIPlanPtr benefit_lock_plan = NULL;
static SPIPlanPtr benefit_insert_plan = NULL;
static SPIPlanPtr benefit_update_plan = NULL;
static SPIPlanPtr benefit_delete_plan = NULL;
static SPIPlanPtr benefit_detach_plan = NULL;
static SPIPlanPtr product_lock_plan = NULL;
static SPIPlanPtr benefits_share_plan = NULL;
static SPIPlanPtr attached_plan = NULL;
static SPIPlanPtr detach_others_plan = NULL;
static SPIPlanPtr attach_plan = NULL;

/* The benefit row as update_benefit and delete_benefit find it, locked. */
typedef struct BenefitRow
{
	pg_uuid_t	organization_id;
	char	   *type;
	Jsonb	   *properties;
	Jsonb	   *metadata;
	bool		deleted;
} BenefitRow;

/* What update_product_benefits found for one element of benefit_ids. */
typedef enum ElementStatus
{
	ELEMENT_UNKNOWN = 0,
	ELEMENT_OK,
	ELEMENT_OTHER_ORGANIZATION,
	ELEMENT_DELETED,
} ElementStatus;

/*
 * The longest description, in characters: it is in every webhook payload,
 * email and portal document about the benefit.
 */
#define DESCRIPTION_MAX 1000
/* Benefits of one product: each is granted, revoked and diffed per holder. */
#define PRODUCT_BENEFITS_MAX 100

/* A description is shown to customers: it must say something, briefly. */
static void
CheckDescription(text *description)
{
	char	   *s = text_to_cstring(description);
	int			length = pg_mbstrlen(s);

	if (length > DESCRIPTION_MAX)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("description must be at most %d characters", DESCRIPTION_MAX),
				errdetail("It has %d.", length));
	for (char *p = s; *p; p++)
		if (!isspace((unsigned char) *p))
			return;
	ereport(ERROR, CATALOG_ERROR, errmsg("description must not be empty"));
}

/* Checks the organization exists and keeps it from being deleted meanwhile. */
static void
LockOrganization(pg_uuid_t *organization_id)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {UUIDPGetDatum(organization_id)};
	SPIPlanPtr	plan = BenefitsPlan(&organization_plan,
								"SELECT 1 FROM benefits.organizations"
								" WHERE id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE",
								1, argtypes);

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up an organization failed");
	if (SPI_processed != 1)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("organization %s does not exist", BenefitsUuidText(organization_id)));
}

/*
 * Locks a benefit for an edit and reads it.  FOR UPDATE also waits for
 * transactions granting the benefit (they hold a key-share lock on it), so an
 * edit sees every grant committed before it.
 */
static BenefitRow
LockBenefit(pg_uuid_t *benefit_id)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {UUIDPGetDatum(benefit_id)};
	SPIPlanPtr	plan = BenefitsPlan(&benefit_lock_plan,
								"SELECT organization_id, type, properties, deleted_at IS NOT NULL, metadata"
								" FROM benefits.benefits"
								" WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
								1, argtypes);
	BenefitRow	row;
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;

	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up a benefit failed");
	if (SPI_processed != 1)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("benefit %s does not exist", BenefitsUuidText(benefit_id)));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row.organization_id = *DatumGetUUIDP(SPI_getbinval(tuple, desc, 1, &isnull));
	row.type = SPI_getvalue(tuple, desc, 2);
	row.properties = DatumGetJsonbPCopy(SPI_getbinval(tuple, desc, 3, &isnull));
	row.deleted = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
	row.metadata = DatumGetJsonbPCopy(SPI_getbinval(tuple, desc, 5, &isnull));
	return row;
}

/* The whole-row result of a RETURNING b statement, copied out of SPI. */
static Datum
ReturnedRow(void)
{
	bool		isnull;
	Datum		row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	return SPI_datumTransfer(row, false, -1);
}

/*
 * The metadata argument at argno (NULL when absent or null): 0.1.0's
 * functions had none.
 */
static Jsonb *
MetadataArgument(FunctionCallInfo fcinfo, int argno)
{
	return PG_NARGS() > argno && !PG_ARGISNULL(argno) ? PG_GETARG_JSONB_P(argno) : NULL;
}

/*
 * benefits.create_benefit(type, organization_id, description, properties,
 * metadata): validates and normalizes the properties (the type's file),
 * checks the metadata, and stores the benefit under its canonical type.
 */
Datum
create_benefit(PG_FUNCTION_ARGS)
{
	char	   *type;
	pg_uuid_t  *organization_id;
	text	   *description;
	Jsonb	   *properties;
	Jsonb	   *normalized;
	Jsonb	   *metadata = MetadataArgument(fcinfo, 4);
	const BenefitType *stored_type;
	Oid			argtypes[5] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	Datum		result;

	BenefitsRequireArgument(fcinfo, 0, "type", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 1, "organization_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 2, "description", ERRCODE_INVALID_PARAMETER_VALUE);
	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	organization_id = PG_GETARG_UUID_P(1);
	description = PG_GETARG_TEXT_PP(2);
	properties = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	(void) BenefitTypeRequire(type);
	CheckDescription(description);

	BenefitsSpiConnect();
	LockOrganization(organization_id);
	normalized = BenefitPropertiesNormalize(type, properties, *organization_id, &stored_type);
	BenefitMetadataCheck(stored_type, metadata, NULL);

	plan = BenefitsPlan(&benefit_insert_plan,
					"INSERT INTO benefits.benefits AS b (organization_id, type, description, properties, metadata)"
					" VALUES ($1, $2, $3, $4, COALESCE($5, '{}')) RETURNING b",
					5, argtypes);
	args[0] = UUIDPGetDatum(organization_id);
	args[1] = CStringGetTextDatum(stored_type->name);
	args[2] = PointerGetDatum(description);
	args[3] = JsonbPGetDatum(normalized);
	args[4] = metadata ? JsonbPGetDatum(metadata) : (Datum) 0;
	nulls[4] = metadata ? ' ' : 'n';
	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "inserting a benefit failed");
	result = ReturnedRow();
	EngineBenefitCreated(EngineBenefitIdOfRow(result));
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * benefits.update_benefit(benefit_id, description, properties, metadata):
 * replaces the description, the properties and/or the metadata (NULL keeps
 * them).  The type cannot change, so properties that describe another type
 * are refused.
 */
Datum
update_benefit(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *benefit_id;
	text	   *description;
	Jsonb	   *properties;
	Jsonb	   *normalized = NULL;
	Jsonb	   *metadata = MetadataArgument(fcinfo, 3);
	BenefitRow	previous;
	Oid			argtypes[4] = {UUIDOID, TEXTOID, JSONBOID, JSONBOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	Datum		result;

	BenefitsRequireArgument(fcinfo, 0, "benefit_id", ERRCODE_INVALID_PARAMETER_VALUE);
	benefit_id = PG_GETARG_UUID_P(0);
	description = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	properties = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	if (description != NULL)
		CheckDescription(description);

	BenefitsSpiConnect();
	previous = LockBenefit(benefit_id);
	if (previous.deleted)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("benefit %s is deleted", BenefitsUuidText(benefit_id)));
	if (properties != NULL)
	{
		const BenefitType *type;

		normalized = BenefitPropertiesNormalize(previous.type, properties,
												previous.organization_id, &type);
		if (strcmp(type->name, previous.type) != 0)
			ereport(ERROR, CATALOG_ERROR,
					errmsg("the type of a benefit cannot change"),
					errdetail("The benefit is a %s benefit; these properties describe a %s benefit.",
							  previous.type, type->name));
	}
	BenefitMetadataCheck(BenefitTypeOf(previous.type), metadata, previous.metadata);

	plan = BenefitsPlan(&benefit_update_plan,
					"UPDATE benefits.benefits AS b"
					" SET description = COALESCE($2, b.description),"
					"     properties = COALESCE($3, b.properties),"
					"     metadata = COALESCE($4, b.metadata),"
					"     modified_at = pg_catalog.now()"
					" WHERE b.id OPERATOR(pg_catalog.=) $1 RETURNING b",
					4, argtypes);
	args[0] = UUIDPGetDatum(benefit_id);
	args[1] = PointerGetDatum(description);
	args[2] = JsonbPGetDatum(normalized);
	nulls[1] = description ? ' ' : 'n';
	nulls[2] = normalized ? ' ' : 'n';
	args[3] = metadata ? JsonbPGetDatum(metadata) : (Datum) 0;
	nulls[3] = metadata ? ' ' : 'n';
	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "updating a benefit failed");
	result = ReturnedRow();

	/*
	 * The catalog is written.  Live grants of this benefit follow it from
	 * here: `previous.properties` is what they were granted with, `normalized`
	 * (NULL when only the description changed) what they must now reflect.
	 */
	EngineBenefitUpdated(*benefit_id, previous.type, normalized);

	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * benefits.delete_benefit(benefit_id): a soft delete.  The row stays (grants
 * and license keys refer to it) with deleted_at set, and the benefit leaves
 * every product (the other benefits of those products keep their positions:
 * only their order matters).  Deleting a deleted benefit does nothing.
 */
Datum
delete_benefit(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *benefit_id;
	BenefitRow	benefit;
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1];
	SPIPlanPtr	plan;
	uint64		ndetached;
	pg_uuid_t  *detached_products;

	BenefitsRequireArgument(fcinfo, 0, "benefit_id", ERRCODE_INVALID_PARAMETER_VALUE);
	benefit_id = PG_GETARG_UUID_P(0);
	args[0] = UUIDPGetDatum(benefit_id);

	BenefitsSpiConnect();
	benefit = LockBenefit(benefit_id);
	if (benefit.deleted)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}

	plan = BenefitsPlan(&benefit_delete_plan,
					"UPDATE benefits.benefits"
					" SET deleted_at = pg_catalog.now(), modified_at = pg_catalog.now()"
					" WHERE id OPERATOR(pg_catalog.=) $1",
					1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "deleting a benefit failed");

	plan = BenefitsPlan(&benefit_detach_plan,
					"DELETE FROM benefits.product_benefits"
					" WHERE benefit_id OPERATOR(pg_catalog.=) $1 RETURNING product_id",
					1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "detaching a benefit failed");
	ndetached = SPI_processed;
	detached_products = palloc0(Max(ndetached, 1) * sizeof(pg_uuid_t));
	for (uint64 i = 0; i < ndetached; i++)
	{
		bool		isnull;

		detached_products[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
	}

	/*
	 * The catalog is written.  Live grants of this benefit follow it from
	 * here: the benefit (`benefit`, as it was) is deleted and no longer
	 * belongs to the `ndetached` products in `detached_products`.
	 */
	EngineBenefitDeleted(*benefit_id);

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * benefits.update_product_benefits(product_id, benefit_ids): makes
 * benefit_ids, in this order, the product's benefits.  Every element must be
 * a live benefit of the product's organization, given once.  Positions count
 * from 0.
 */
Datum
update_product_benefits(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *product_id;
	ArrayType  *array;
	Datum	   *elements;
	bool	   *elements_null;
	int			n;
	int			lower;
	pg_uuid_t	organization_id;
	Oid			argtypes[2] = {UUIDOID, UUIDARRAYOID};
	Datum		args[2];
	SPIPlanPtr	plan;
	ElementStatus *status;
	uint64		nprevious;
	pg_uuid_t  *previous_benefits;
	bool		isnull;

	BenefitsRequireArgument(fcinfo, 0, "product_id", ERRCODE_INVALID_PARAMETER_VALUE);
	BenefitsRequireArgument(fcinfo, 1, "benefit_ids", ERRCODE_INVALID_PARAMETER_VALUE);
	product_id = PG_GETARG_UUID_P(0);
	array = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR, CATALOG_ERROR, errmsg("benefit_ids must be a one-dimensional array"));
	lower = ARR_NDIM(array) == 1 ? ARR_LBOUND(array)[0] : 1;
	if (ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array)) > PRODUCT_BENEFITS_MAX)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("benefit_ids must have at most %d elements", PRODUCT_BENEFITS_MAX),
				errdetail("It has %d.", ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array))));
	deconstruct_array(array, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &elements, &elements_null, &n);

	/* Refuse NULLs and repeats before touching a table. */
	for (int i = 0; i < n; i++)
	{
		if (elements_null[i])
			ereport(ERROR, CATALOG_ERROR,
					errmsg("benefit_ids[%d] must not be null", lower + i));
		for (int j = 0; j < i; j++)
			if (memcmp(DatumGetUUIDP(elements[i]), DatumGetUUIDP(elements[j]), UUID_LEN) == 0)
				ereport(ERROR, CATALOG_ERROR,
						errmsg("benefit_ids[%d] repeats benefit_ids[%d]", lower + i, lower + j),
						errdetail("A benefit is attached to a product once."));
	}

	BenefitsSpiConnect();

	/* The product lock serializes changes of this product's benefit list. */
	args[0] = UUIDPGetDatum(product_id);
	args[1] = PointerGetDatum(array);
	plan = BenefitsPlan(&product_lock_plan,
					"UPDATE benefits.products SET modified_at = pg_catalog.now()"
					" WHERE id OPERATOR(pg_catalog.=) $1 RETURNING organization_id",
					1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "locking a product failed");
	if (SPI_processed != 1)
		ereport(ERROR, CATALOG_ERROR,
				errmsg("product %s does not exist", BenefitsUuidText(product_id)));
	organization_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Share-lock the benefits: delete_benefit takes FOR UPDATE, so a benefit
	 * cannot be deleted between this check and our commit.
	 */
	plan = BenefitsPlan(&benefits_share_plan,
					"SELECT id, organization_id, deleted_at IS NOT NULL FROM benefits.benefits"
					" WHERE id OPERATOR(pg_catalog.=) ANY ($2) ORDER BY id FOR SHARE",
					2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "looking up benefits failed");
	status = palloc0(Max(n, 1) * sizeof(ElementStatus));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		pg_uuid_t  *id = DatumGetUUIDP(SPI_getbinval(tuple, desc, 1, &isnull));
		pg_uuid_t  *organization = DatumGetUUIDP(SPI_getbinval(tuple, desc, 2, &isnull));
		bool		deleted = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));

		for (int i = 0; i < n; i++)
			if (memcmp(id, DatumGetUUIDP(elements[i]), UUID_LEN) == 0)
				status[i] = memcmp(organization, &organization_id, UUID_LEN) != 0 ? ELEMENT_OTHER_ORGANIZATION
					: deleted ? ELEMENT_DELETED : ELEMENT_OK;
	}
	for (int i = 0; i < n; i++)
	{
		if (status[i] == ELEMENT_UNKNOWN)
			ereport(ERROR, CATALOG_ERROR,
					errmsg("benefit_ids[%d] is not a benefit", lower + i),
					errdetail("No benefit %s exists.", BenefitsUuidText(DatumGetUUIDP(elements[i]))));
		if (status[i] == ELEMENT_OTHER_ORGANIZATION)
			ereport(ERROR, CATALOG_ERROR,
					errmsg("benefit_ids[%d] is a benefit of another organization", lower + i),
					errdetail("A product has benefits of its own organization only."));
		if (status[i] == ELEMENT_DELETED)
			ereport(ERROR, CATALOG_ERROR,
					errmsg("benefit_ids[%d] is a deleted benefit", lower + i));
	}

	/* The list before the change, in order. */
	plan = BenefitsPlan(&attached_plan,
					"SELECT benefit_id FROM benefits.product_benefits"
					" WHERE product_id OPERATOR(pg_catalog.=) $1 ORDER BY position",
					1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading a product's benefits failed");
	nprevious = SPI_processed;
	previous_benefits = palloc0(Max(nprevious, 1) * sizeof(pg_uuid_t));
	for (uint64 r = 0; r < nprevious; r++)
		previous_benefits[r] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r],
															SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Detach what is no longer listed, then attach or move the rest; the
	 * unique (product_id, position) constraint is deferred, so positions may
	 * swap within the statement.
	 */
	plan = BenefitsPlan(&detach_others_plan,
					"DELETE FROM benefits.product_benefits"
					" WHERE product_id OPERATOR(pg_catalog.=) $1"
					" AND benefit_id OPERATOR(pg_catalog.<>) ALL ($2)",
					2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "detaching benefits failed");
	plan = BenefitsPlan(&attach_plan,
					"INSERT INTO benefits.product_benefits AS pb (product_id, benefit_id, position)"
					" SELECT $1, t.id, (t.n OPERATOR(pg_catalog.-) 1)::pg_catalog.int4"
					" FROM pg_catalog.unnest($2) WITH ORDINALITY AS t(id, n)"
					" ON CONFLICT (product_id, benefit_id) DO UPDATE SET position = excluded.position"
					" WHERE pb.position OPERATOR(pg_catalog.<>) excluded.position",
					2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "attaching benefits failed");

	/*
	 * The catalog is written.  Holders of the product follow it from here:
	 * `previous_benefits` (`nprevious` ids) was the list, `elements` (`n`
	 * uuids) is the list now, both in attachment order.
	 */
	EngineProductBenefitsChanged(*product_id);

	SPI_finish();
	PG_RETURN_VOID();
}
