/*
 * portal_document.c — the customer portal document (customer_portal's jsonb).
 *
 * Built in C from kept SPI plans, each a short index lookup: the customer and
 * organization (for customer_portal found through the session token in the
 * same statement), live subscriptions, the held grants with their benefits,
 * the subscriptions and orders that granted them with their products' benefit
 * order.  Each benefit object gets its type's member (portal_key) from the
 * type's file (type_*.c, through the registry): each type first fetches, once
 * per document, what its shown benefits need (license keys and activations,
 * the files named, with download URLs signed there; linked accounts come
 * from PortalAccount, once).
 * Benefit properties and grant errors are read from the jsonb in C, each
 * result row is deformed once, and the jsonb is assembled directly with
 * pushJsonbValue.  Every object's members are pushed in jsonb's own key order
 * (shorter keys first, then bytewise), so closing an object finds it already
 * sorted instead of sorting its pairs.  (Measured per call: joining these lookups into fewer
 * statements, sorting or applying jsonb operators in SQL all cost more than
 * the plain lookups; the document as one query of nested jsonb_build_object
 * subqueries cost several times more.)
 *
 * Shape:
 *   {customer: {id, external_id, email, name}, organization: {id, name},
 *    generated_at, subscriptions: [{id, product: {id, name}, status,
 *    current_period_start, current_period_end, cancel_at_period_end}],
 *    benefits: [{id, grant_id, type, description, state, granted_at} plus
 *      the type's member:
 *      license_keys: license_key {id, key, display_key, status, usage,
 *        limit_usage, limit_activations, validations, last_validated_at,
 *        expires_at, customer_admin, activations: [{id, label, meta, created_at}]}
 *      downloadable: files [{id, name, size, mime_type, checksum_sha256,
 *        download_url, download_expires_at}]
 *      custom: note, and for a manually fulfilled grant fulfillment
 *        {state: pending|completed, note}
 *      meter_credits: meter {id, name, units, rollover, recurring, balance,
 *        period_start, credited_in_period, used_in_period, credits_expire_at,
 *        expiring, recent: [{at, kind, units, balance_after}], daily: [{date, used}]}
 *      github_repository: github {repositories, account, delivery, action, message, link}
 *      discord: discord {guild_id, roles, account, delivery, action, message, link}]}
 * Times are RFC 3339 in UTC with a Z.  delivery is granted, pending,
 * action_required (with the action the engine recorded, e.g. link_github)
 * or failed.  link is the customer's account of the platform: {status:
 * unlinked | pending | linked | failed, error}.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefits.h"
#include "benefit_type.h"
#include "portal.h"
#include "portal_json.h"

static SPIPlanPtr customer_plan = NULL;
static SPIPlanPtr session_plan = NULL;
static SPIPlanPtr subscriptions_plan = NULL;
static SPIPlanPtr held_plan = NULL;
static SPIPlanPtr attached_plan = NULL;

/* The customer row both entry points start from (C_* columns). */
#define CUSTOMER_COLUMNS "SELECT c.id, c.external_id, c.email, c.name, o.id, o.name"

enum
{
	C_ID = 1, C_EXTERNAL_ID, C_EMAIL, C_NAME, C_ORGANIZATION_ID, C_ORGANIZATION_NAME
};

/*
 * The customer's live grants with their benefits.  PortalDocument orders them
 * by attachment (ATTACHED_SQL): the order of the subscriptions/orders that
 * granted them, then each product's benefit order, manual grants last; a
 * benefit held several times appears once, in its first place, showing an
 * active grant when there is one.  (Two plain queries and a sort in C cost
 * less than one query doing it all.)
 */
#define HELD_SQL \
	"SELECT g.id, g.benefit_id, b.type, b.description, g.state, g.granted_at, g.error, b.properties," \
	"       coalesce(g.subscription_id, g.order_id), b.metadata, g.properties" \
	"  FROM benefits.grants g" \
	"  JOIN benefits.benefits b ON b.id = g.benefit_id AND b.deleted_at IS NULL" \
	" WHERE g.customer_id = $1 AND g.state <> 'revoked'"

/* Every subscription and order of the customer with the benefits of its product. */
#define ATTACHED_SQL \
	"SELECT x.id, x.created_at, pb.benefit_id, pb.position" \
	"  FROM (SELECT s.id, s.created_at, s.product_id FROM benefits.subscriptions s WHERE s.customer_id = $1" \
	"        UNION ALL" \
	"        SELECT o.id, o.created_at, o.product_id FROM benefits.orders o WHERE o.customer_id = $1) x" \
	"  JOIN benefits.product_benefits pb ON pb.product_id = x.product_id"

enum
{
	S_ID = 1, S_PRODUCT_ID, S_PRODUCT_NAME, S_STATUS, S_CURRENT_PERIOD_START, S_CURRENT_PERIOD_END,
	S_CANCEL_AT_PERIOD_END, S_CREATED_AT
};

/*
 * The document's statements, prepared on first use.  Each runs on every
 * call, so always with its generic plan.
 */
static void
PreparePlans(void)
{
	Oid			one_uuid[1] = {UUIDOID};
	Oid			one_bytea[1] = {BYTEAOID};

	if (attached_plan != NULL)
		return;
	BenefitsGenericPlan(&customer_plan,
				 CUSTOMER_COLUMNS
				 "  FROM benefits.customers c JOIN benefits.organizations o ON o.id = c.organization_id"
				 " WHERE c.id = $1", 1, one_uuid);
	BenefitsGenericPlan(&session_plan,
				 CUSTOMER_COLUMNS
				 CUSTOMER_SESSION_JOIN_SQL
				 "  JOIN benefits.organizations o ON o.id = c.organization_id"
				 " WHERE " CUSTOMER_SESSION_LIVE_SQL, 1, one_bytea);
	BenefitsGenericPlan(&subscriptions_plan,
				 "SELECT s.id, p.id, p.name, s.status, s.current_period_start, s.current_period_end,"
				 "       s.cancel_at_period_end, s.created_at"
				 "  FROM benefits.subscriptions s JOIN benefits.products p ON p.id = s.product_id"
				 " WHERE s.customer_id = $1 AND s.status IN ('trialing', 'active', 'past_due', 'unpaid')",
				 1, one_uuid);
	BenefitsGenericPlan(&held_plan, HELD_SQL, 1, one_uuid);
	BenefitsGenericPlan(&attached_plan, ATTACHED_SQL, 1, one_uuid);
}

/* A held row with its attachment sort key. */
typedef struct HeldOrder
{
	int			row;
	bool		has_source;
	TimestampTz source_at;
	bool		has_position;
	int32		position;
	TimestampTz granted_at;		/* DT_NOEND when null */
	pg_uuid_t	benefit_id;
} HeldOrder;

/* Attachment order: sourced before manual, then by source time and position. */
static int
HeldOrderCmp(const void *a, const void *b)
{
	const HeldOrder *x = a;
	const HeldOrder *y = b;

	if (x->has_source != y->has_source)
		return x->has_source ? -1 : 1;
	if (x->has_source && x->source_at != y->source_at)
		return x->source_at < y->source_at ? -1 : 1;
	if (x->has_position != y->has_position)
		return x->has_position ? -1 : 1;
	if (x->has_position && x->position != y->position)
		return x->position < y->position ? -1 : 1;
	if (x->granted_at != y->granted_at)
		return x->granted_at < y->granted_at ? -1 : 1;
	return memcmp(x->benefit_id.data, y->benefit_id.data, UUID_LEN);
}

/* The held rows in attachment order. */
static HeldOrder *
OrderHeld(const Rows *held, const Rows *attached)
{
	HeldOrder  *order = palloc0(sizeof(HeldOrder) * (held->n + 1));

	for (int i = 0; i < held->n; i++)
	{
		HeldOrder  *o = &order[i];

		o->row = i;
		o->granted_at = RowsIsNull(held, i, HELD_GRANTED_AT) ? DT_NOEND
			: DatumGetTimestampTz(RowsGet(held, i, HELD_GRANTED_AT));
		memcpy(o->benefit_id.data, DatumGetUUIDP(RowsGet(held, i, HELD_BENEFIT_ID))->data, UUID_LEN);
		for (int a = 0; a < attached->n; a++)
		{
			if (!RowsSameUuid(attached, a, 1, held, i, HELD_SOURCE_ID))
				continue;
			o->has_source = true;
			o->source_at = DatumGetTimestampTz(RowsGet(attached, a, 2));
			if (RowsSameUuid(attached, a, 3, held, i, HELD_BENEFIT_ID))
			{
				o->has_position = true;
				o->position = DatumGetInt32(RowsGet(attached, a, 4));
				break;
			}
		}
	}
	qsort(order, held->n, sizeof(HeldOrder), HeldOrderCmp);
	return order;
}

/* The customer and organization members of the document. */
static void
Customer(Doc *doc, const Rows *customer)
{
	DocBeginObject(doc);
	DocKey(doc, "id");
	DocUuidCol(doc, customer, 0, C_ID);
	DocKey(doc, "name");
	DocTextCol(doc, customer, 0, C_NAME);
	DocKey(doc, "email");
	DocTextCol(doc, customer, 0, C_EMAIL);
	DocKey(doc, "external_id");
	DocTextCol(doc, customer, 0, C_EXTERNAL_ID);
	DocEndObject(doc);
}

static void
Organization(Doc *doc, const Rows *customer)
{
	DocBeginObject(doc);
	DocKey(doc, "id");
	DocUuidCol(doc, customer, 0, C_ORGANIZATION_ID);
	DocKey(doc, "name");
	DocTextCol(doc, customer, 0, C_ORGANIZATION_NAME);
	DocEndObject(doc);
}

/* Subscriptions in the order shown: by created_at, then id. */
static int
SubscriptionCmp(const void *a, const void *b, void *arg)
{
	const Rows *r = arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	TimestampTz tx = DatumGetTimestampTz(RowsGet(r, x, S_CREATED_AT));
	TimestampTz ty = DatumGetTimestampTz(RowsGet(r, y, S_CREATED_AT));

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return memcmp(DatumGetUUIDP(RowsGet(r, x, S_ID)), DatumGetUUIDP(RowsGet(r, y, S_ID)), UUID_LEN);
}

/* The customer's live subscriptions (ordered here: a sort node costs more per call). */
static void
Subscriptions(Doc *doc, Datum customer_id)
{
	Rows		subscriptions = RowsFetch(subscriptions_plan, &customer_id);
	int		   *order = palloc(sizeof(int) * (subscriptions.n + 1));

	for (int i = 0; i < subscriptions.n; i++)
		order[i] = i;
	qsort_arg(order, subscriptions.n, sizeof(int), SubscriptionCmp, &subscriptions);
	DocBeginArray(doc);
	for (int k = 0; k < subscriptions.n; k++)
	{
		int			i = order[k];

		DocBeginObject(doc);
		DocKey(doc, "id");
		DocUuidCol(doc, &subscriptions, i, S_ID);
		DocKey(doc, "status");
		DocTextCol(doc, &subscriptions, i, S_STATUS);
		DocKey(doc, "product");
		DocBeginObject(doc);
		DocKey(doc, "id");
		DocUuidCol(doc, &subscriptions, i, S_PRODUCT_ID);
		DocKey(doc, "name");
		DocTextCol(doc, &subscriptions, i, S_PRODUCT_NAME);
		DocEndObject(doc);
		DocKey(doc, "current_period_end");
		DocTimeCol(doc, &subscriptions, i, S_CURRENT_PERIOD_END);
		DocKey(doc, "cancel_at_period_end");
		DocBool(doc, RowsIsTrue(&subscriptions, i, S_CANCEL_AT_PERIOD_END));
		DocKey(doc, "current_period_start");
		DocTimeCol(doc, &subscriptions, i, S_CURRENT_PERIOD_START);
		DocEndObject(doc);
	}
	DocEndArray(doc);
}

/* A common member of every benefit object. */
typedef struct CommonMember
{
	const char *key;
	int			column;			/* of the held row; 0: the type */
	void		(*write) (Doc *doc, const Rows *r, int row, int col);
} CommonMember;

/* In jsonb key order (portal_json.h). */
static const CommonMember common_members[] = {
	{"id", HELD_BENEFIT_ID, DocUuidCol},
	{"type", 0, NULL},
	{"state", HELD_STATE, DocTextCol},
	{"grant_id", HELD_GRANT_ID, DocUuidCol},
	{"granted_at", HELD_GRANTED_AT, DocTimeCol},
	{"description", HELD_DESCRIPTION, DocTextCol},
};

/* One benefit object: the common members and its type's, in key order. */
static void
BenefitObject(PortalBuild *ctx, PortalBenefit *b)
{
	const BenefitType *bt = BenefitTypeOf(b->type);
	bool		typed = bt->portal_key == NULL;
	int			n = lengthof(common_members);

	DocBeginObject(&ctx->doc);
	for (int i = 0; i <= n; i++)
	{
		if (!typed && (i == n || PortalKeyBefore(bt->portal_key, common_members[i].key)))
		{
			DocKey(&ctx->doc, bt->portal_key);
			bt->portal_member(ctx, b);
			typed = true;
		}
		if (i == n)
			break;
		DocKey(&ctx->doc, common_members[i].key);
		if (common_members[i].write)
			common_members[i].write(&ctx->doc, ctx->held, b->chosen, common_members[i].column);
		else
			DocStr(&ctx->doc, b->type);
	}
	if (bt->portal_grant)
		bt->portal_grant(ctx, b);
	DocEndObject(&ctx->doc);
}

/*
 * The benefits the customer holds, each once (first place, an active grant
 * preferred), with what each type shows.  Each type fetches what its shown
 * benefits need once per document.
 */
static void
Benefits(PortalBuild *ctx, const Rows *customer)
{
	Rows		held = RowsFetch(held_plan, &ctx->customer_id);
	Rows		attached = RowsFetch(attached_plan, &ctx->customer_id);
	HeldOrder  *order = OrderHeld(&held, &attached);
	PortalBenefit *shown = palloc0(sizeof(PortalBenefit) * (held.n + 1));
	PortalBenefit **group = palloc(sizeof(PortalBenefit *) * (held.n + 1));
	int			nshown = 0;
	int			ntypes;
	const BenefitType *const *types = BenefitTypeAll(&ntypes);

	ctx->held = &held;
	for (int k = 0; k < held.n; k++)
	{
		int			i = order[k].row;
		int			j;

		for (j = 0; j < nshown; j++)
			if (RowsSameUuid(&held, i, HELD_BENEFIT_ID, &held, shown[j].first, HELD_BENEFIT_ID))
				break;
		if (j < nshown)
		{
			if (strcmp(RowsText(&held, i, HELD_STATE), "active") == 0 &&
				strcmp(RowsText(&held, shown[j].chosen, HELD_STATE), "active") != 0)
				shown[j].chosen = i;
			continue;
		}
		shown[nshown].first = shown[nshown].chosen = i;
		shown[nshown].type = RowsText(&held, i, HELD_TYPE);
		shown[nshown].properties = RowsJsonb(&held, i, HELD_PROPERTIES);
		shown[nshown].metadata = RowsJsonb(&held, i, HELD_METADATA);
		nshown++;
	}

	for (int t = 0; t < ntypes; t++)
	{
		int			n = 0;

		if (types[t]->portal_collect == NULL)
			continue;
		for (int j = 0; j < nshown; j++)
			if (strcmp(shown[j].type, types[t]->name) == 0)
				group[n++] = &shown[j];
		if (n > 0)
			types[t]->portal_collect(ctx, group, n);
	}

	DocBeginArray(&ctx->doc);
	for (int j = 0; j < nshown; j++)
		BenefitObject(ctx, &shown[j]);
	DocEndArray(&ctx->doc);
}

/*
 * The document of the customer in row 0 of CUSTOMER (CUSTOMER_COLUMNS).
 * Runs inside the caller's SPI connection.
 */
static Jsonb *
BuildDocument(const Rows *customer)
{
	PortalBuild ctx = {0};

	PreparePlans();
	ctx.now = GetCurrentTransactionStartTimestamp();
	ctx.customer_id = RowsGet(customer, 0, C_ID);
	ctx.organization_id = RowsGet(customer, 0, C_ORGANIZATION_ID);
	DocBeginObject(&ctx.doc);
	DocKey(&ctx.doc, "benefits");
	Benefits(&ctx, customer);
	DocKey(&ctx.doc, "customer");
	Customer(&ctx.doc, customer);
	DocKey(&ctx.doc, "generated_at");
	DocStr(&ctx.doc, PortalTimeText(ctx.now));
	DocKey(&ctx.doc, "organization");
	Organization(&ctx.doc, customer);
	DocKey(&ctx.doc, "subscriptions");
	Subscriptions(&ctx.doc, ctx.customer_id);
	return JsonbValueToJsonb(pushJsonbValue(&ctx.doc, WJB_END_OBJECT, NULL));
}

/*
 * The portal document of one customer, or NULL when there is no such
 * customer.  Runs inside the caller's SPI connection; the result is
 * allocated in the caller's (SPI) context.
 */
Jsonb *
PortalDocument(Datum customer_id)
{
	Rows		customer;

	PreparePlans();
	customer = RowsFetch(customer_plan, &customer_id);
	if (customer.n != 1)
		return NULL;
	return BuildDocument(&customer);
}

/*
 * The portal document of a session token's customer, found in the same
 * statement that checks the session; the one session error (28000) for a
 * bad, expired or revoked token.  Runs inside the caller's SPI connection.
 */
Jsonb *
PortalDocumentForSession(text *token)
{
	Datum		hash = PointerGetDatum(CustomerSessionTokenHash(token));
	Rows		customer;

	PreparePlans();
	customer = RowsFetch(session_plan, &hash);
	if (customer.n != 1)
		CustomerSessionInvalid();
	return BuildDocument(&customer);
}

PG_FUNCTION_INFO_V1(portal_document);

/*
 * portal_document(customer_id): the portal document of a customer (NULL for
 * an unknown customer).  For administrators; customers reach it through
 * customer_portal with a session token.
 */
Datum
portal_document(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	BenefitsSpiConnect();
	doc = PortalDocument(PG_GETARG_DATUM(0));
	if (doc != NULL)
	{
		Jsonb	   *copy = SPI_palloc(VARSIZE(doc));

		memcpy(copy, doc, VARSIZE(doc));
		doc = copy;
	}
	SPI_finish();
	if (doc == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(doc);
}

PG_FUNCTION_INFO_V1(customer_portal);

/*
 * customer_portal(token): everything the session's customer holds.  A bad,
 * expired or revoked token gets the one session error (SQLSTATE 28000).
 */
Datum
customer_portal(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;
	Jsonb	   *copy;

	if (PG_ARGISNULL(0))
		CustomerSessionInvalid();
	BenefitsSpiConnect();
	doc = PortalDocumentForSession(PG_GETARG_TEXT_PP(0));
	copy = SPI_palloc(VARSIZE(doc));
	memcpy(copy, doc, VARSIZE(doc));
	SPI_finish();
	PG_RETURN_JSONB_P(copy);
}

